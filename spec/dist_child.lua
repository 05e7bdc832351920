-- dist_child.lua: the training runs that spec/dist_spec.lua launches, in one process
-- (`lua5.4 spec/dist_child.lua cfg.lua`) or under `mpirun -np N` (cfg.dist = true).
-- cfg.lua returns a table: dist, timeout, and either the fields of one run or runs = {...}
-- (each run's fields completed by the outer table's). A run:
--   stage 1 | 2, batch (per rank), epochs, dropout, seed, local_loss, gather_with_grad,
--   temperature ("fixed" | "learnable"), clip_grad_norm, checkpoint_dir,
--   out (prefix of the result files), kill_at = {rank, step} (SIGKILL there)
-- Each run writes <out>.rank<r>.safetensors on every rank (every parameter, plus emb.<name>:
-- the trained modalities' embeddings of every item) and, on rank 0, <out>.lua:
-- return {losses = {...per step}, val = {...per epoch}}; a killed rank first writes
-- <out>.killed: return <core.now() at the kill>.
local oe = require "oneencoder"
local cfg = dofile(assert(arg[1], "dist_child.lua: the config file is the first argument"))
oe.set_num_threads(1)
if cfg.dist then oe.dist.init({ timeout = cfg.timeout or 60 }) end
local rank = oe.dist.rank()

-- two sets whose items pair up through shared class prototypes (the same on every rank)
local function toy_sets(n, D, seed)
  local g = oe.Generator(seed)
  local pa, pb = g:randn({ 8, D }), g:randn({ 8, D })
  local fa, fb = oe.zeros({ n, 4, D }), oe.zeros({ n, 3, D })
  local la, lb = {}, {} -- lengths vary, so shares of a batch pad to other lengths than the whole
  for i = 1, n do
    local c = (i - 1) % 8
    fa:set_slice(1, i, pa:narrow(1, c + 1, 1):reshape({ 1, 1, D }) + g:randn({ 1, 4, D }) * 0.3)
    fb:set_slice(1, i, pb:narrow(1, c + 1, 1):reshape({ 1, 1, D }) + g:randn({ 1, 3, D }) * 0.3)
    la[i], lb[i] = 1 + (i * 7 % 4), 1 + (i * 5 % 3)
  end
  return oe.data.FeatureSet(fa, la), oe.data.FeatureSet(fb, lb)
end

local function run(cfg)
  local n = cfg.n or 720 -- 648 training pairs: 10 global batches of 64 and a remainder of 8
  local D = 12
  local images, texts = toy_sets(n, D, 3)
  oe.manual_seed(11)
  local m = oe.OneEncoder({ d = 16, ff = 32, dropout = cfg.dropout or 0, temperature = cfg.temperature or "fixed" })
  m:add_modality("image", { input_dim = D })
  m:add_modality("text", { input_dim = D })

  local losses, vals = {}, {}
  local kill_time
  local function on_step(rec)
    losses[#losses + 1] = rec.loss
    if cfg.kill_at and rank == cfg.kill_at[1] and rec.step == cfg.kill_at[2] then
      local f = assert(io.open(cfg.out .. ".killed", "w"))
      f:write(string.format("return %.17g", oe.core.now()))
      f:close()
      local st = assert(io.open("/proc/self/stat")):read("l")
      os.execute("kill -9 " .. st:match("^(%d+)"))
    end
end
local opts = { batch_size = cfg.batch, epochs = cfg.epochs or 2, seed = cfg.seed or 5, progress = false,
  local_loss = cfg.local_loss, gather_with_grad = cfg.gather_with_grad, checkpoint_dir = cfg.checkpoint_dir,
  on_step = on_step, on_epoch = function(rec) vals[#vals + 1] = rec.val_loss end, early_stopping = 100,
  clip_grad_norm = cfg.clip_grad_norm }

local trained
if (cfg.stage or 1) == 1 then
  opts.a, opts.b = { name = "image", set = images }, { name = "text", set = texts }
  oe.train.align(m, opts)
  trained = m
else
  m:freeze()
  local audio = toy_sets(n, D, 9)
  m:add_modality("audio", { input_dim = D })
  opts.a, opts.b = { name = "audio", set = audio }, { name = "text", set = texts }
  oe.train.extend(m, opts)
  trained = m
end

local weights = {}
for _, p in ipairs(trained:named_parameters()) do weights[p[1]] = p[2] end
weights["emb." .. opts.a.name] = trained:embed_set(opts.a.name, opts.a.set)
weights["emb." .. opts.b.name] = trained:embed_set(opts.b.name, opts.b.set)
assert(oe.save(cfg.out .. ".rank" .. rank .. ".safetensors", weights))
if rank == 0 then
  local parts = {}
  for i, v in ipairs(losses) do parts[i] = string.format("%.17g", v) end
  local vparts = {}
  for i, v in ipairs(vals) do vparts[i] = string.format("%.17g", v) end
  local f = assert(io.open(cfg.out .. ".lua", "w"))
  f:write("return { losses = {", table.concat(parts, ", "), "}, val = {", table.concat(vparts, ", "), "} }\n")
  f:close()
end
end

for _, r in ipairs(cfg.runs or { {} }) do
  setmetatable(r, { __index = cfg })
  run(r)
end
