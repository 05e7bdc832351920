-- train.lua: the progressive-alignment trainers.
--   oe.train.align(model, opts)   step 1: two new modalities, heads + tokens + MLP + UP trained
--   oe.train.extend(model, opts)  step 2: a new modality against an aligned (frozen) one
-- Both: symmetric InfoNCE, AdamW, ReduceLROnPlateau on the validation loss once
-- per epoch, early stopping, best checkpoint kept, per-epoch log, and resume
-- from the last epoch checkpoint (weights, optimizer moments, scheduler, generator,
-- epoch) so that a killed run restarted with the same command ends with the
-- same weights as an uninterrupted one.
-- Random draws (validation split, shuffles, the model's dropout) come from one
-- generator: opts.generator (an oe.Generator), else oe.Generator(opts.seed) when a seed
-- is given, else a generator seeded by one draw of the global stream. The global
-- stream is not reseeded; the model draws dropout from the trainer's generator only
-- while the trainer runs.
-- opts.group_by_length (default false): batches of pairs whose a-side items have similar
-- lengths (see length_grouped): for sequence features of very different lengths (speech).
-- Data-parallel (oe.dist initialised with more than one rank, `mpirun -np N`): batch_size is
-- per rank and the global batch of N x batch_size pairs gives the negatives; every epoch's
-- permutation is the same on every rank and each rank embeds its contiguous share of every
-- global batch; the embeddings are all-gathered (opts.local_loss / opts.gather_with_grad, see
-- train_dist.lua) so the loss is the one-process loss over the global batch; gradients are
-- summed over ranks in buckets (opts.bucket_floats); validation runs over global batches and
-- rank 0's scheduler and early-stopping decisions are broadcast; rank 0 alone writes the
-- checkpoints, the log and the progress, and its checkpoint (with every rank's dropout
-- generator) is handed to every rank on resume. Each rank draws its dropout from a stream of
-- its own, seeded from the run's seed and the rank.
local core = require "oneencoder.core"
local T = require "oneencoder.tensor"
local F = require "oneencoder.functional"
local A = require "oneencoder.autograd"
local optim = require "oneencoder.optim"
local data = require "oneencoder.data"
local dist = require "oneencoder.dist"
local TD = require "oneencoder.train_dist"

local TR = {}

-- clip_loss(ea (B, d), eb (B, d), scale, dup_mask (B, B) uint8 or nil) -> scalar
-- logits = ea eb^T * scale; loss = (CE(logits, i) + CE(logits^T, i)) / 2.
-- dup_mask marks pairs j ~= i that share an item: they are not negatives.
function TR.clip_loss(ea, eb, scale, dup_mask)
  local logits = T.matmul(ea, T.t(eb)) * scale
  if dup_mask then logits = T.masked_fill(logits, dup_mask, -math.huge) end
  local B = core.shape(ea)[1]
  local target = core.arange(0, B, 1, "int64")
  local la = F.cross_entropy(logits, target)
  local lb = F.cross_entropy(T.t(logits), target)
  return (la + lb) * 0.5
end

-- dup_mask from item ids of both sides: (i, j), i ~= j, share an a-item or a b-item
-- (positions grouped by item, so a global batch of thousands costs only its shared items)
local function duplicate_mask(ids_a, ids_b)
  local B = #ids_a
  local m
  for _, ids in ipairs({ ids_a, ids_b }) do
    local at = {}
    for i = 1, B do
      local list = at[ids[i]]
      if list then list[#list + 1] = i else at[ids[i]] = { i } end
    end
    for i = 1, B do
      local list = at[ids[i]]
      if #list > 1 then
        for _, j in ipairs(list) do
          if j ~= i then
            m = m or core.zeros({ B, B }, "uint8")
            core.set(m, 1, i, j)
          end
        end
      end
    end
  end
  return m
end

-- local_clip_loss(ea (n, d), eb (n, d), EA (N, d), EB (N, d), scale, dup_mask, off) -> scalar:
-- the loss rows of pairs off+1 .. off+n of a global batch of N (both directions), each
-- direction's cross-entropy averaged over these n rows
local function local_clip_loss(ea, eb, EA, EB, scale, dup_mask, off)
  local n = core.shape(ea)[1]
  local la = T.matmul(ea, T.t(EB)) * scale
  local lb = T.matmul(eb, T.t(EA)) * scale
  if dup_mask then
    local rows = core.narrow(dup_mask, 1, off + 1, n) -- symmetric: the same rows serve both directions
    la = T.masked_fill(la, rows, -math.huge)
    lb = T.masked_fill(lb, rows, -math.huge)
  end
  local target = core.arange(off, off + n, 1, "int64")
  return (F.cross_entropy(la, target) + F.cross_entropy(lb, target)) * 0.5
end

-- rank1(ea, eb, ids_b): fraction of rows of ea whose best match in eb is their own
-- partner: the same row, or a row holding the same b item (pairs may share a caption)
local function rank1(ea, eb, ids_b)
  local sims = core.matmul(ea, eb, false, true)
  local _, idx = core.reduce("max", sims, 2)
  local hits, t = 0, core.totable(idx)
  for i = 1, #t do
    local j = t[i] + 1
    if j == i or (ids_b and ids_b[j] == ids_b[i]) then hits = hits + 1 end
  end
  return hits / #t
end

-- ---------- small helpers: metadata encoding, logging, progress ----------
local function encode_flat(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = k .. "=" .. string.format("%.17g", v) end
  table.sort(parts)
  return table.concat(parts, ";")
end
local function decode_flat(s)
  local t = {}
  for k, v in (s or ""):gmatch("([%w_]+)=([^;]+)") do t[k] = tonumber(v) end
  return t
end

local function isatty() return core.isatty and core.isatty(1) end

local function progress(opts, stage, epoch, done, total, loss, lr, rate)
  if opts.progress == false then return end
  if isatty() then
    local w = 24
    local filled = math.floor(w * done / math.max(total, 1))
    io.write(string.format("\r%s epoch %d [%s%s] %d/%d loss %.4f lr %.2e %.0f samples/s ", stage, epoch,
      string.rep("#", filled), string.rep(".", w - filled), done, total, loss, lr, rate))
    io.flush()
  end
end

local function ensure_dir(dir)
  if dir then os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'") end
end

local function file_exists(path)
  local st = core.fs_stat(path)
  return st ~= nil and st.is_file
end

-- remove_stale_temporaries(dir): the temporary files of saves killed before their rename
-- (<name>.safetensors.tmp.<pid>.<hex>, as serialize.save names them) whose writer process
-- is gone; a live writer's file is left alone
local function remove_stale_temporaries(dir)
  for _, name in ipairs(core.fs_listdir(dir) or {}) do
    local pid = name:match("^.+%.safetensors%.tmp%.(%d+)%.%x+$")
    pid = pid and math.tointeger(tonumber(pid))
    if pid and not core.pid_alive(pid) then os.remove(dir .. "/" .. name) end
  end
end

-- write_file_atomic(path, bytes): temporary file, fsync, rename (core/atomic_write), so that
-- a kill at any moment leaves either the old or the new content
local function write_file_atomic(path, bytes)
  local ok, err = core.write_file_atomic(path, bytes)
  if not ok then error("train: " .. tostring(err), 0) end
end

-- keep_finished_epochs(log_path, epoch): on resume, drop the log lines of epochs after
-- the checkpoint's (a kill between a line and its checkpoint); the file is replaced
-- atomically and only when a line must go, so the finished epochs' lines are never lost
local function keep_finished_epochs(log_path, epoch)
  local lf = io.open(log_path, "r")
  if not lf then return end
  local kept, dropped = {}, false
  for line in lf:lines() do
    local e = tonumber(line:match('"epoch":(%d+)'))
    if e and e <= epoch then kept[#kept + 1] = line .. "\n" else dropped = true end
  end
  lf:close()
  if dropped then write_file_atomic(log_path, table.concat(kept)) end
end

local function json_line(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    local s
    if type(v) == "number" then
      if v ~= v or v == math.huge or v == -math.huge then s = "null" else s = string.format("%.6g", v) end
    elseif type(v) == "boolean" then s = tostring(v)
    else s = string.format("%q", tostring(v)) end
    parts[#parts + 1] = string.format("%q:%s", k, s)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- ---------- the shared loop ----------
local function make_pairs(n_a, n_b, pairs_list)
  if pairs_list then return pairs_list end
  if n_a ~= n_b then
    error(string.format("train: without explicit pairs both sets need the same size (got %d and %d)", n_a, n_b), 3)
  end
  local p = {}
  for i = 1, n_a do p[i] = { i, i } end
  return p
end

local function split_pairs(pairs_list, val_split, gen)
  local perm = data.permutation(#pairs_list, gen)
  local nval = math.floor(#pairs_list * val_split + 0.5)
  local tr, va = {}, {}
  for i, k in ipairs(perm) do
    if i <= nval then va[#va + 1] = pairs_list[k] else tr[#tr + 1] = pairs_list[k] end
  end
  return tr, va
end

-- length_grouped(order, pairs_list, lengths, NB, gen) -> order: the shuffled order cut into runs
-- of 50 batches of NB pairs, each run sorted by its a-side items' lengths (ties keep the shuffled
-- order) and its full batches drawn in a random order; a last, partial batch stays last. Batches
-- of similar lengths pad less: mixed-length sequences train several times faster.
local function length_grouped(order, pairs_list, lengths, NB, gen)
  local out = {}
  for s = 1, #order, 50 * NB do
    local run_ = table.move(order, s, math.min(#order, s + 50 * NB - 1), 1, {})
    local pos = {}
    for i, k in ipairs(run_) do pos[k] = i end
    table.sort(run_, function(x, y)
      local lx, ly = lengths[pairs_list[x][1]], lengths[pairs_list[y][1]]
      if lx ~= ly then return lx < ly end
      return pos[x] < pos[y]
    end)
    local full = #run_ // NB
    for _, b in ipairs(data.permutation(full, gen)) do table.move(run_, (b - 1) * NB + 1, b * NB, #out + 1, out) end
    table.move(run_, full * NB + 1, #run_, #out + 1, out)
  end
  return out
end
TR._length_grouped = length_grouped -- for the tests

local DEFAULTS = {
  epochs = 100, batch_size = 64, lr = 1e-3, weight_decay = 1e-3, betas = { 0.9, 0.999 }, eps = 1e-8,
  scheduler = "plateau", plateau_factor = 0.8, plateau_patience = 5, early_stopping = 5,
  clip_grad_norm = nil, drop_duplicates = true, val_split = 0.1, seed = nil, resume = true,
  max_val_items = 2000, group_by_length = false,
}

local function run(model, o, stage)
  local opts = {}
  for k, v in pairs(DEFAULTS) do opts[k] = v end
  if stage == 2 then opts.early_stopping = 10; opts.plateau_patience = 10 end
  for k, v in pairs(o) do opts[k] = v end
  local a, b = opts.a, opts.b
  model:modality(a.name)
  model:modality(b.name)
  if a.set:dim() ~= model:modality(a.name).input_dim or b.set:dim() ~= model:modality(b.name).input_dim then
    error(string.format("train: feature dims (%d, %d) do not match the modalities' input dims (%d, %d)", a.set:dim(),
      b.set:dim(), model:modality(a.name).input_dim, model:modality(b.name).input_dim), 3)
  end
  if a.set:size() == 0 or b.set:size() == 0 then error("train: empty dataset", 3) end
  if opts.group_by_length and type(a.set.lengths) ~= "table" then
    error("train: group_by_length needs the lengths of opts.a.set (a FeatureSet or a cache's feature_set)", 3)
  end

  -- data-parallel context (nil in one process); rank 0 alone writes files and prints
  local P = TD.context(opts)
  local root = P == nil or P.rank == 0
  if not root then opts.progress = false; opts.log_path = nil end

  local gen = opts.generator
  if gen ~= nil and not core.is_generator(gen) then error("train: opts.generator must be an oe.Generator", 3) end
  local seed = opts.seed ~= nil and math.tointeger(opts.seed) or nil
  if opts.seed ~= nil and not seed then error("train: opts.seed must be an integer, got " .. tostring(opts.seed), 3) end
  gen = gen or core.generator(seed) -- no seed: seeded by one draw of the global stream
  if P then P:sync_generator(gen) end -- the same split and permutations on every rank
  local dir = root and opts.checkpoint_dir or nil
  ensure_dir(dir)
  if dir then remove_stale_temporaries(dir) end
  local S = require "oneencoder.serialize"
  local last_path = dir and (dir .. "/last.safetensors")
  local best_path = dir and (dir .. "/best.safetensors")
  local resuming = dir and opts.resume and file_exists(last_path) or false
  local start
  if resuming then -- the run's split comes from the generator position it started from
    local info, meta = S.header(last_path)
    start = info and meta.rng_start and decode_flat(meta.rng_start)
    start = start and { math.tointeger(start.seed), math.tointeger(start.counter) }
  end
  if P then
    local v = P:root_values({ resuming, start and start[1], start and start[2] }, 3)
    resuming, start = v[1], v[2] and { v[2], v[3] } or nil
  end
  if start then gen:set_state(start[1], start[2]) end
  local gen_start = gen:state()
  local pairs_all = make_pairs(a.set:size(), b.set:size(), opts.pairs)
  local train_pairs, val_pairs = opts.train_pairs, opts.val_pairs
  if not train_pairs then train_pairs, val_pairs = split_pairs(pairs_all, opts.val_split, gen) end
  if #train_pairs < 2 then error("train: fewer than 2 training pairs", 3) end

  local B = opts.batch_size
  local NB = P and B * P.size or B                  -- the global batch
  local min_batch = P and math.max(2, P.size) or 2  -- smaller remainders are left out
  local params = model:parameters(true)
  if #params == 0 then error("train: the model has no trainable parameters", 3) end
  local opt = optim.AdamW(params, { lr = opts.lr, weight_decay = opts.weight_decay, betas = opts.betas, eps = opts.eps })
  local sched
  if opts.scheduler == "plateau" then
    sched = optim.ReduceLROnPlateau(opt, { factor = opts.plateau_factor, patience = opts.plateau_patience })
  elseif opts.scheduler == "step" then
    sched = optim.StepLR(opt, { step_size = opts.step_size or 10, gamma = opts.gamma or 0.5 })
  elseif opts.scheduler == "cosine" then
    local steps = opts.epochs * math.ceil(#train_pairs / NB)
    sched = optim.CosineWarmup(opt, { warmup = opts.warmup or 0, total = steps })
  elseif opts.scheduler ~= "none" then
    error("train: unknown scheduler '" .. tostring(opts.scheduler) .. "' (plateau, step, cosine, none)", 3)
  end

  -- step 2: the anchor side cannot change, embed it once (in shards over the ranks)
  local anchor
  if stage == 2 then
    anchor = P and P:embed_set(model, b.name, b.set, 256) or model:embed_set(b.name, b.set, 256)
  end
  local function embed_b(ids, training)
    if anchor then
      local z = {}
      for i, id in ipairs(ids) do z[i] = id - 1 end
      return core.index_select(anchor, core.from_table(z, "int64"))
    end
    local x, l = b.set:batch(ids)
    return model:embed(b.name, x, l)
  end

  local state = { epoch = 0, best = math.huge, bad = 0, finished = 0 }
  local history = {}
  local rank_rng -- the checkpoint's dropout generators of every rank (data-parallel)

  -- resume: rank 0 reads the checkpoint and hands it to the other ranks
  if resuming then
    local tensors, meta
    if root then
      tensors, meta = S.load(last_path)
      if not tensors then error("train: cannot resume from " .. last_path .. ": " .. tostring(meta), 3) end
    end
    if P then tensors, meta = P:share_checkpoint(tensors, meta) end
    local weights, ostate = {}, {}
    for k, t in pairs(tensors) do
      local on = k:match("^optim%.(.+)$")
      if on then ostate[on] = t else weights[k] = t end
    end
    model:load_state_dict(weights)
    opt:load_state_dict({ tensors = ostate, meta = { steps = decode_flat(meta.optim_steps), lrs = decode_flat(meta.optim_lrs) } })
    if sched and sched.load_state then sched:load_state(decode_flat(meta.sched)) end
    state = decode_flat(meta.state)
    local rng = decode_flat(meta.rng)
    gen:set_state(math.tointeger(rng.seed), math.tointeger(rng.counter))
    rank_rng = meta.rng_ranks
    if opts.log_path then keep_finished_epochs(opts.log_path, state.epoch) end
    if opts.progress ~= false then
      print(string.format("%s: resuming after epoch %d from %s", opts.name or "train", state.epoch, last_path))
    end
  elseif P then
    P:broadcast_module(model) -- every rank starts from rank 0's weights
  end
  if opts.log_path and state.epoch == 0 then local wf = io.open(opts.log_path, "w"); if wf then wf:close() end end
  -- dropout: the run's generator in one process; a stream of its own on every rank
  local dgen = P and P:dropout_generator(gen_start[1], rank_rng) or gen

  local function save_checkpoint(path, extra, rank_states)
    local tensors = {}
    for k, t in pairs(model:state_dict()) do tensors[k] = t end
    local sd = opt:state_dict()
    for k, t in pairs(sd.tensors) do tensors["optim." .. k] = t end
    local rng = gen:state()
    local meta = model:config_metadata()
    meta.state = encode_flat(state)
    meta.rng = string.format("seed=%d;counter=%d", rng[1], rng[2])
    meta.rng_start = string.format("seed=%d;counter=%d", gen_start[1], gen_start[2])
    if rank_states then meta.rng_ranks = rank_states end
    meta.optim_steps = encode_flat(sd.meta.steps)
    meta.optim_lrs = encode_flat(sd.meta.lrs)
    meta.sched = sched and sched.state and encode_flat(sched:state()) or ""
    for k, v in pairs(extra or {}) do meta[k] = v end
    local ok, err = S.save(path, tensors, meta)
    if not ok then error("train: saving checkpoint failed: " .. tostring(err), 0) end
  end

  -- the pairs first .. first+m-1 of list (global positions), and this rank's share of them
  local function batch_ids(list, pick, first, m)
    local ia, ib = {}, {}
    for i = first, first + m - 1 do
      local p = list[pick and pick[i] or i]
      ia[#ia + 1], ib[#ib + 1] = p[1], p[2]
    end
    return ia, ib
  end
  local function share(ids, off, n) return table.move(ids, off + 1, off + n, 1, {}) end

  local function validate()
    if #val_pairs == 0 then return nil, nil end
    return A.no_grad(function()
      model:eval()
      local total, count = 0, 0
      local ea_all, eb_all, ids_b = {}, {}, {}
      for s = 1, #val_pairs, NB do
        local m = math.min(NB, #val_pairs - s + 1)
        if m >= min_batch then
          local ia, ib = batch_ids(val_pairs, nil, s, m)
          local ea, eb
          if P then -- every rank embeds its share; the global batch is gathered
            local rows, off, n = P:shard(m)
            local xa, la = a.set:batch(share(ia, off, n))
            ea = dist.gather_rows(model:embed(a.name, xa, la), rows)
            eb = anchor and embed_b(ib, false) or dist.gather_rows(embed_b(share(ib, off, n), false), rows)
          else
            local xa, la = a.set:batch(ia)
            ea = model:embed(a.name, xa, la)
            eb = embed_b(ib, false)
          end
          local loss = TR.clip_loss(ea, eb, model:logit_scale(),
            opts.drop_duplicates and duplicate_mask(ia, ib) or nil)
          total = total + core.item(loss) * #ia
          count = count + #ia
          if s <= opts.max_val_items then
            ea_all[#ea_all + 1] = ea
            eb_all[#eb_all + 1] = eb
            for _, id in ipairs(ib) do ids_b[#ids_b + 1] = id end
          end
        end
      end
      model:train()
      local r1 = nil
      if #ea_all > 0 then r1 = rank1(core.cat(ea_all, 1), core.cat(eb_all, 1), ids_b) end
      return count > 0 and total / count or nil, r1
    end)
  end

  -- one process: forward, NaN check, backward; returns the loss
  local function local_step(ia, ib, epoch, bi)
    local xa, la = a.set:batch(ia)
    local ea = model:embed(a.name, xa, la)
    local eb = embed_b(ib, true)
    local loss = TR.clip_loss(ea, eb, model:logit_scale(), opts.drop_duplicates and duplicate_mask(ia, ib) or nil)
    local lv = core.item(loss)
    if lv ~= lv or lv == math.huge or lv == -math.huge then
      error(string.format("%s: loss is %s at epoch %d, batch %d; stopping (the last good checkpoint is kept)",
        opts.name or "train", tostring(lv), epoch, bi), 0)
    end
    opt:zero_grad()
    loss:backward()
    return lv
  end

  -- data-parallel: this rank's share forward, the global batch gathered, backward, gradients
  -- summed over ranks; the NaN check on the reduced loss, so every rank stops together
  local temperature = model.temperature
  local replicated = {} -- used whole on every rank (not through an embedding): summed R times
  if not P or P.local_loss or P.gather_with_grad then replicated = nil
  elseif core.is_tensor(temperature) and A.requires_grad(temperature) then replicated[temperature] = 1 / P.size end
  local function parallel_step(ia, ib, epoch, bi)
    local m = #ia
    local rows, off, n = P:shard(m)
    local ia_l, ib_l = share(ia, off, n), share(ib, off, n)
    local mode = P.gather_with_grad and "sum" or "local"
    local xa, la = a.set:batch(ia_l)
    local ea = model:embed(a.name, xa, la)
    local EA = dist.gather_with_grad(ea, rows, mode)
    local eb, EB
    if anchor then -- step 2: every rank has the whole anchor; nothing to gather
      EB = embed_b(ib, true)
      eb = core.narrow(EB, 1, off + 1, n)
    else
      eb = embed_b(ib_l, true)
      EB = dist.gather_with_grad(eb, rows, mode)
    end
    local scale = model:logit_scale()
    local dup = opts.drop_duplicates and duplicate_mask(ia, ib) or nil
    local objective, share_of_loss, whole
    if P.local_loss then
      objective = local_clip_loss(ea, eb, EA, EB, scale, dup, off) * (n / m)
      share_of_loss = core.item(objective)
    else
      local loss = TR.clip_loss(EA, EB, scale, dup)
      objective = P.gather_with_grad and loss * (1 / P.size) or loss
      whole = core.item(loss) -- the global batch's loss, the same on every rank
      share_of_loss = whole / P.size
    end
    opt:zero_grad()
    objective:backward()
    local total = P:reduce_gradients(params, replicated, share_of_loss) -- NaN if any rank's is
    local lv = whole or total
    if total ~= total then lv = total end
    if lv ~= lv or lv == math.huge or lv == -math.huge then
      error(string.format("%s: loss is %s at epoch %d, batch %d; stopping (the last good checkpoint is kept)",
        opts.name or "train", tostring(lv), epoch, bi), 0)
    end
    return lv
  end

  -- the model draws its dropout from dgen while this function runs (on errors too)
  local modules, previous = model:modules(), {}
  for i, mod in ipairs(modules) do previous[i] = rawget(mod, "generator") end
  local restore_generators <close> = setmetatable({}, { __close = function()
    for i, mod in ipairs(modules) do rawset(mod, "generator", previous[i]) end
  end })
  model:set_generator(dgen)
  model:train()
  local global_step = 0
  while state.finished == 0 and state.epoch < opts.epochs do
    local epoch = state.epoch + 1
    local t0 = core.now()
    local order = data.permutation(#train_pairs, gen)
    if opts.group_by_length then order = length_grouped(order, train_pairs, a.set.lengths, NB, gen) end
    local loss_sum, n_seen = 0, 0
    local nb = #train_pairs // NB + ((#train_pairs % NB >= min_batch) and 1 or 0)
    for bi = 1, nb do
      local first = (bi - 1) * NB + 1
      local ia, ib = batch_ids(train_pairs, order, first, math.min(NB, #train_pairs - first + 1))
      local lv = (P and parallel_step or local_step)(ia, ib, epoch, bi)
      global_step = global_step + 1
      if opts.clip_grad_norm then optim.clip_grad_norm(params, opts.clip_grad_norm) end
      opt:step()
      if opts.scheduler == "cosine" then sched:step() end
      loss_sum = loss_sum + lv * #ia
      n_seen = n_seen + #ia
      progress(opts, opts.name or "train", epoch, bi, nb, loss_sum / n_seen, opt.param_groups[1].lr, n_seen / (core.now() - t0))
      if opts.on_step then opts.on_step({ epoch = epoch, batch = bi, step = global_step, loss = lv }) end
    end
    if isatty() and opts.progress ~= false then io.write("\n") end
    local train_loss = loss_sum / math.max(n_seen, 1)
    local val_loss, val_r1 = validate()
    local monitor = val_loss or train_loss
    local lr = opt.param_groups[1].lr
    if sched and opts.scheduler == "plateau" then sched:step(monitor)
    elseif sched and opts.scheduler == "step" then sched:step() end
    state.epoch = epoch
    local improved = monitor < state.best
    if improved then
      state.best = monitor
      state.bad = 0
    else
      state.bad = state.bad + 1
      if opts.early_stopping and state.bad >= opts.early_stopping then state.finished = 1 end
    end
    if epoch >= opts.epochs then state.finished = 1 end
    local rank_states
    if P then -- rank 0's decisions on every rank; every rank's dropout generator for the checkpoint
      train_loss, val_loss, val_r1, improved = P:adopt_decisions(opt, sched, state, train_loss, val_loss, val_r1, improved)
      rank_states = P:generator_states(dgen)
    end
    if improved and best_path then save_checkpoint(best_path, { epoch = tostring(epoch) }, rank_states) end
    local rec = { epoch = epoch, train_loss = train_loss, val_loss = val_loss or -1, lr = lr, val_r1 = val_r1 or -1,
      seconds = core.now() - t0, stage = opts.name or "train" }
    history[#history + 1] = rec
    if opts.log_path then
      local lf = io.open(opts.log_path, "a")
      if lf then lf:write(json_line(rec), "\n"); lf:close() end
    end
    if opts.progress ~= false then
      print(string.format("%s epoch %d: train %.4f val %s R@1 %s lr %.2e (%.1fs)%s", opts.name or "train", epoch, train_loss,
        val_loss and string.format("%.4f", val_loss) or "-", val_r1 and string.format("%.3f", val_r1) or "-", lr,
        rec.seconds, improved and " *" or ""))
    end
    if last_path then save_checkpoint(last_path, nil, rank_states) end
    if opts.on_epoch then opts.on_epoch(rec) end
  end

  -- finish with the best weights (read by rank 0, handed to the others)
  if best_path then
    local tensors = S.load(best_path)
    if tensors then
      local w = {}
      for k, t in pairs(tensors) do if not k:match("^optim%.") then w[k] = t end end
      model:load_state_dict(w)
    end
  end
  if P then P:broadcast_module(model) end
  model:train()
  return { epochs = state.epoch, best_val_loss = state.best, history = history }
end

-- align(model, {a = {name, set}, b = {name, set}, ...options}) : step 1
function TR.align(model, opts)
  if model.frozen_stage then error("align: the model is frozen; step 1 trains a model before freeze()", 2) end
  return run(model, opts, 1)
end

-- extend(model, {a = {name = new, set}, b = {name = anchor, set}, ...}) : step 2
function TR.extend(model, opts)
  local info = model:modality(opts.a.name)
  if info.stage ~= 2 then error("extend: '" .. opts.a.name .. "' was added before freeze(); add it after model:freeze()", 2) end
  return run(model, opts, 2)
end

TR.defaults = DEFAULTS
TR.rank1 = rank1
return TR
