-- train_dist.lua: the data-parallel pieces of the trainers (train.lua), used when oe.dist is
-- initialised with more than one rank. Every rank runs the same trainer on its own shard
-- of each global batch; these helpers keep the ranks identical:
--   context(opts)            nil for one process; else {rank, size, local_loss, gather_with_grad}
--   ctx:shard(m)             rows per rank of a global batch of m pairs, this rank's offset and count
--   ctx:sync_generator(gen)  rank 0's generator position on every rank
--   ctx:dropout_generator(seed, saved)  this rank's own dropout stream
--   ctx:share_checkpoint(tensors, meta) rank 0's loaded checkpoint on every rank
--   ctx:broadcast_module(model)         rank 0's weights on every rank (in place)
--   ctx:reduce_gradients(params, scale_of, x)  gradients summed over ranks (in buckets)
--   ctx:root_values(list, n) rank 0's values (numbers, strings, booleans, nil) on every rank
--   ctx:generator_states(gen) every rank's {seed, counter}, in rank order
--   ctx:embed_set(model, name, set, batch)  model:embed_set computed in shards, gathered
local core = require "oneencoder.core"
local A = require "oneencoder.autograd"
local dist = require "oneencoder.dist"

local TD = {}
local Ctx = {}
Ctx.__index = Ctx

-- context(opts) -> nil (one process) or the data-parallel context. Negatives are always the
-- whole global batch; opts.local_loss and opts.gather_with_grad choose how (OpenCLIP's flags):
--   false, false (default): every rank computes the whole global-batch loss from the gathered
--     embeddings, its own block carrying the gradient; gradients are summed over ranks.
--   true, true: every rank computes the loss rows of its own pairs against the gathered batch,
--     and the gather's backward sums the gradient of every rank's copy (a reduce-scatter).
--   false, true: the whole loss on every rank with the gradient through the gather.
-- true, false is refused: it drops the gradient the other ranks' rows send to this rank's
-- embeddings, so it is not the gradient of the global-batch loss.
function TD.context(opts)
  if not (dist.is_initialized() and dist.size() > 1) then return nil end
  local local_loss, with_grad = opts.local_loss == true, opts.gather_with_grad == true
  if local_loss and not with_grad then
    error("train: local_loss = true needs gather_with_grad = true (without it the loss rows of the other ranks "
      .. "send no gradient to this rank's embeddings, and the update is not the global batch's)", 4)
  end
  local bucket = opts.bucket_floats or (1 << 22)
  if math.type(bucket) ~= "integer" or bucket < 1 then error("train: bucket_floats must be a positive integer", 4) end
  return setmetatable({ rank = dist.rank(), size = dist.size(), local_loss = local_loss, gather_with_grad = with_grad,
    bucket = bucket }, Ctx)
end

function Ctx:shard(m)
  local rows = dist.split_rows(m, self.size)
  local off = 0
  for r = 1, self.rank do off = off + rows[r] end
  return rows, off, rows[self.rank + 1]
end

-- ---- exact encoding of small value lists (integers, floats, strings, booleans, nil) ----
local function pack_values(list, n)
  local parts = { string.pack("<i4", n) }
  for i = 1, n do
    local v = list[i]
    if v == nil then parts[#parts + 1] = "n"
    elseif type(v) == "boolean" then parts[#parts + 1] = v and "t" or "f"
    elseif math.type(v) == "integer" then parts[#parts + 1] = "i" .. string.pack("<j", v)
    elseif type(v) == "number" then parts[#parts + 1] = "d" .. string.pack("<d", v)
    else parts[#parts + 1] = "s" .. string.pack("<s4", tostring(v)) end
  end
  return table.concat(parts)
end
local function unpack_values(s)
  local n, pos = string.unpack("<i4", s)
  local out = {}
  for i = 1, n do
    local tag = s:sub(pos, pos)
    pos = pos + 1
    if tag == "t" or tag == "f" then out[i] = tag == "t"
    elseif tag == "i" then out[i], pos = string.unpack("<j", s, pos)
    elseif tag == "d" then out[i], pos = string.unpack("<d", s, pos)
    elseif tag == "s" then out[i], pos = string.unpack("<s4", s, pos) end
  end
  return out, n
end

-- root_values(list, n) -> rank 0's list (n entries, nils kept) on every rank
function Ctx:root_values(list, n)
  local s = dist.broadcast_string(self.rank == 0 and pack_values(list, n) or nil, 0)
  return unpack_values(s)
end

function Ctx:sync_generator(gen)
  local st = self:root_values(gen:state(), 2)
  gen:set_state(st[1], st[2])
end

-- a seed of its own for every rank, from the run's seed (SplitMix64's finaliser over the
-- seed and the rank), so no draw is taken from the shared generator
local function mix64(z)
  z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
  z = (z ~ (z >> 27)) * 0x94d049bb133111eb
  return z ~ (z >> 31)
end
TD.mix64 = mix64

-- dropout_generator(seed, saved): saved = the checkpoint's "seed,counter;..." of every rank
-- (used when it lists this rank), else a fresh stream seeded from (seed, rank)
function Ctx:dropout_generator(seed, saved)
  local states = {}
  for s, c in (saved or ""):gmatch("(%-?%d+),(%-?%d+)") do states[#states + 1] = { math.tointeger(tonumber(s)), math.tointeger(tonumber(c)) } end
  local g = core.generator(0)
  local mine = #states == self.size and states[self.rank + 1] or nil
  if mine then g:set_state(mine[1], mine[2])
  else g:set_state(mix64(seed + 0x632BE59BD9B4E019 * (self.rank + 1)), 0) end
  return g
end

-- generator_states(gen) -> "seed,counter;seed,counter;..." of every rank (64-bit integers
-- travel as two exact 32-bit halves)
function Ctx:generator_states(gen)
  local st = gen:state()
  local halves = { st[1] >> 32, st[1] & 0xffffffff, st[2] >> 32, st[2] & 0xffffffff }
  local all = dist.all_gather_numbers(halves)
  local parts = {}
  for r, h in ipairs(all) do
    local v = {}
    for i = 1, 4 do v[i] = math.tointeger(h[i]) end
    parts[r] = string.format("%d,%d", (v[1] << 32) | v[2], (v[3] << 32) | v[4])
  end
  return table.concat(parts, ";")
end

-- share_checkpoint(tensors, meta): rank 0 passes what it loaded, the others nil; every rank
-- gets the same tensors (by name) and metadata (strings)
function Ctx:share_checkpoint(tensors, meta)
  local header
  if self.rank == 0 then
    local keys, mkeys = {}, {}
    for k in pairs(tensors) do keys[#keys + 1] = k end
    for k in pairs(meta) do mkeys[#mkeys + 1] = k end
    table.sort(keys)
    table.sort(mkeys)
    local list = { #keys, #mkeys }
    for _, k in ipairs(keys) do
      local s = core.shape(tensors[k])
      list[#list + 1] = k
      list[#list + 1] = core.dtype(tensors[k])
      list[#list + 1] = table.concat(s, ",")
    end
    for _, k in ipairs(mkeys) do list[#list + 1] = k; list[#list + 1] = tostring(meta[k]) end
    header = pack_values(list, #list)
  end
  local list = unpack_values(dist.broadcast_string(header, 0))
  local nk, nm, pos = list[1], list[2], 3
  local out_t, out_m = {}, {}
  for _ = 1, nk do
    local k, dt, dims = list[pos], list[pos + 1], list[pos + 2]
    pos = pos + 3
    local t = tensors and tensors[k]
    if not t then
      local s = {}
      for d in dims:gmatch("%d+") do s[#s + 1] = math.tointeger(tonumber(d)) end
      t = core.zeros(s, dt)
    end
    A.no_grad(function() dist.broadcast(t, 0) end)
    out_t[k] = t
  end
  for _ = 1, nm do out_m[list[pos]] = list[pos + 1]; pos = pos + 2 end
  return out_t, out_m
end

-- broadcast_module(model): rank 0's parameters and buffers copied into every rank's (the
-- ranks must hold the same model: names and shapes are compared first)
function Ctx:broadcast_module(model)
  local sd = model:state_dict()
  local names = {}
  for k in pairs(sd) do names[#names + 1] = k end
  table.sort(names)
  local sig = {}
  for i, k in ipairs(names) do sig[i] = k .. "(" .. table.concat(core.shape(sd[k]), ",") .. ")" .. core.dtype(sd[k]) end
  sig = table.concat(sig, ";")
  local root_sig = dist.broadcast_string(self.rank == 0 and sig or nil, 0)
  local bad = dist.all_reduce_numbers({ root_sig == sig and 0 or 1 }, "max")[1]
  if bad ~= 0 then
    error(string.format("train: the model on rank %d differs from rank 0's (%s); every rank must build the same model",
      self.rank, root_sig == sig and "another rank differs" or "names, shapes or dtypes"), 0)
  end
  A.no_grad(function()
    for _, k in ipairs(names) do dist.broadcast(sd[k], 0) end
  end)
end

-- reduce_gradients(params, scale_of, x) -> sum over ranks of x. Every parameter's gradient is
-- summed over ranks in place, packed in buckets (a parameter without a gradient counts as
-- zeros, and stays without one when no rank has one); scale_of[p] multiplies p's own
-- gradient first. x (a number, e.g. this rank's share of the loss) rides in the same buckets.
function Ctx:reduce_gradients(params, scale_of, x)
  local list, extra = {}, {}
  for i, p in ipairs(params) do
    local g = p.grad
    if g then
      extra[i] = 1
      if scale_of and scale_of[p] then core.mul_(g, scale_of[p]) end
    else
      extra[i] = 0
      g = core.zeros(core.shape(p))
      p.grad = g
    end
    list[i] = g
  end
  extra[#params + 1] = x
  local ex = core.from_table(extra, "float32")
  list[#list + 1] = ex
  dist.all_reduce_list(list, "sum", self.bucket)
  local flags = core.totable(ex)
  for i, p in ipairs(params) do
    if flags[i] == 0 then p.grad = nil end
  end
  return flags[#params + 1]
end

-- adopt_decisions(opt, sched, state, train_loss, val_loss, val_r1, improved) -> rank 0's
-- train_loss, val_loss, val_r1, improved; rank 0's learning rates, scheduler state and
-- early-stopping state (state.epoch, best, bad, finished) are set on every rank
function Ctx:adopt_decisions(opt, sched, state, train_loss, val_loss, val_r1, improved)
  local sst = sched and sched.state and sched:state() or {}
  local skeys = {}
  for k in pairs(sst) do skeys[#skeys + 1] = k end
  table.sort(skeys)
  local list = { train_loss, val_loss, val_r1, improved, state.epoch, state.best, state.bad, state.finished }
  local n = 8
  for _, k in ipairs(skeys) do n = n + 1; list[n] = sst[k] end
  for _, g in ipairs(opt.param_groups) do n = n + 1; list[n] = g.lr end
  local v, nv = self:root_values(list, n)
  if nv ~= n then error("train: rank 0's scheduler and optimiser differ from rank " .. self.rank .. "'s", 0) end
  state.epoch, state.best, state.bad, state.finished = v[5], v[6], v[7], v[8]
  local pos = 8
  if #skeys > 0 then
    local st = {}
    for _, k in ipairs(skeys) do pos = pos + 1; st[k] = v[pos] end
    sched:load_state(st)
  end
  for _, g in ipairs(opt.param_groups) do pos = pos + 1; g.lr = v[pos] end
  return v[1], v[2], v[3], v[4]
end

-- embed_set(model, name, set, batch): model:embed_set(name, set, batch) with its batches
-- shared out in contiguous runs over the ranks and gathered: the same batches, so the same
-- numbers as one process computes
function Ctx:embed_set(model, name, set, batch)
  batch = batch or 256
  local n = set:size()
  local nbatches = (n + batch - 1) // batch
  local brows = dist.split_rows(nbatches, self.size)
  local first = 1
  for r = 1, self.rank do first = first + brows[r] end
  local rows = {}
  for r = 1, self.size do
    local lo = 0
    for q = 1, r - 1 do lo = lo + brows[q] end
    local from, to = lo * batch + 1, math.min(n, (lo + brows[r]) * batch)
    rows[r] = math.max(0, to - from + 1)
  end
  local mine = A.no_grad(function()
    local was = model.training
    model:eval()
    local parts = {}
    for k = first, first + brows[self.rank + 1] - 1 do
      local ids = {}
      for i = (k - 1) * batch + 1, math.min(n, k * batch) do ids[#ids + 1] = i end
      local x, l = set:batch(ids)
      parts[#parts + 1] = model:embed(name, x, l)
    end
    model:train(was)
    if #parts == 0 then return core.zeros({ 0, model.cfg.d }) end
    return #parts == 1 and parts[1] or core.cat(parts, 1)
  end)
  return dist.gather_rows(mine, rows)
end

return TD
