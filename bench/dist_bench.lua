-- dist_bench.lua: data-parallel training over MPI on this machine, and the same on paper for
-- 8 and 64 ranks.
--   1. A step-1 epoch over cached features (float16 feature cache, the original's shapes:
--      images (197, 768), captions (32, 768), d 256, ff 2048, 1.88 M trainable parameters):
--      1 process x 2 threads with batch 64 (the reference, in the same run) against
--      2 ranks x 1 thread with batch 32 each (the same global batch of 64); the time the ranks
--      spend in collectives (gathers, the gradient all-reduce), and the collectives alone.
--   2. Measured per-step compute of one rank (1 thread, batch 64; step 1 and step 2 with
--      10 s audio, 499 frames) and a model of the step time on R ranks (weak scaling: batch 64
--      per rank, global batch 64 R):
--        T(R) = t_c + t_loss(R) + t_allreduce(R) + t_gather(R)
--        t_allreduce = 2 (R - 1) a + 2 (R - 1) / R * 4 P / W          (ring all-reduce, P floats)
--        t_gather    = k [(R - 1) a + (R - 1) / R * 4 * 64 R * d / W] (k gathered (64 R, d) tensors,
--                      doubled when gather_with_grad adds the reduce-scatter in backward)
--        t_loss      = (F(R) - F(1)) / G                              (the extra loss FLOPs)
--        F(R)        = 6 (64 R)^2 d      the whole global-batch loss on every rank (one logits
--                                        matrix: 2 N^2 d forward, 4 N^2 d backward)
--                      12 * 64 * (64 R) d  local loss rows (local_loss + gather_with_grad: two
--                                        (64, 64 R) logits matrices)
--        t_c         = one rank's measured step at batch 64 (its own 6 * 64^2 d loss included,
--                      hence F(R) - F(1)); the fastest of 3, the machine being shared
--        efficiency  = t_c / T(R)
--      W = link bandwidth (10 or 100 Gbit/s), a = per-message latency (30 us for TCP over
--      10 GbE, 3 us for 100 Gbit/s RDMA), G = measured one-thread GEMM rate.
-- Env: DIST_BENCH_N (training pairs, default 384), DIST_BENCH_DIR (cache folder, default a
-- temporary one), DIST_BENCH_ROUNDS (alternations of the two configurations, default 2).
-- Prints `name: value`. The child runs: lua5.4 bench/dist_bench.lua child <args>.
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core

local L_IMG, L_TXT, L_AUD, D = 197, 32, 499, 768

local function report(name, v, fmt) print(string.format("%s: " .. (fmt or "%.4g"), name, v)) end

-- the feature cache: seeded noise stands for the frozen encoders' outputs; built once by the
-- parent (build = true), read by every child
local function open_caches(dir, n, build)
  local function one(name, L, seed)
    local c = oe.cache.open(dir .. "/" .. name, { encoder_id = "bench-noise-" .. name, dtype = "float16" })
    local items = {}
    for i = 1, n do items[i] = { key = name .. i } end
    if build then
      c:build(items, function(list)
        local g = oe.Generator(seed + tonumber(list[1].key:match("%d+$")))
        return g:randn({ #list, L, D }), nil
      end, { batch = 64 })
    end
    return c:feature_set(items)
  end
  return one("images", L_IMG, 1000), one("texts", L_TXT, 2000)
end

-- ---------------------------------------------------------------- child: one training run
if arg[1] == "child" then
  local dir, threads, batch, use_dist, n = arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5] == "1", tonumber(arg[6])
  oe.set_num_threads(threads)
  if use_dist then oe.dist.init({ timeout = 600 }) end
  local rank, size = oe.dist.rank(), oe.dist.size()
  local images, texts = open_caches(dir, n)
  oe.manual_seed(0)
  local m = oe.OneEncoder()
  m:add_modality("image", { input_dim = D })
  m:add_modality("text", { input_dim = D })
  -- time spent inside collectives (includes waiting for the slower rank)
  local comm = { gather = 0, reduce = 0, scatter = 0 }
  for name, key in pairs({ gather_rows = "gather", all_reduce_list = "reduce", reduce_scatter = "scatter" }) do
    local f = oe.dist[name]
    oe.dist[name] = function(...)
      local t0 = core.now()
      local r = f(...)
      comm[key] = comm[key] + core.now() - t0
      return r
    end
  end
  local steps = {}
  local t_last
  local res = oe.train.align(m, { a = { name = "image", set = images }, b = { name = "text", set = texts },
    batch_size = batch, epochs = 1, val_split = 0, seed = 1, progress = false, scheduler = "none",
    on_step = function()
      local t = core.now()
      if t_last then steps[#steps + 1] = t - t_last end
      t_last = t
    end })
  local epoch_s = res.history[1].seconds
  table.sort(steps)
  local out = { epoch_s, steps[(#steps + 1) // 2] or epoch_s, comm.gather, comm.reduce, comm.scatter }
  if use_dist then
    out = oe.dist.all_reduce_numbers(out, "max") -- the slowest rank's figures
    -- the collectives alone, every rank arriving together: the gradient all-reduce (1.88 M
    -- floats, the buckets of the trainer) and the gather of one (64, 256) batch of embeddings
    local grads = {}
    for i, p in ipairs(m:parameters(true)) do grads[i] = oe.zeros(p:shape()) end
    local function timed(fn, reps)
      local t = {}
      for i = 1, reps do
        oe.dist.barrier()
        local t0 = core.now()
        fn()
        t[i] = core.now() - t0
      end
      table.sort(t)
      return oe.dist.all_reduce_numbers({ t[(reps + 1) // 2] }, "max")[1]
    end
    out[#out + 1] = timed(function() oe.dist.all_reduce_list(grads, "sum", 1 << 22) end, 15)
    local e = oe.zeros({ batch, 256 })
    out[#out + 1] = timed(function() oe.dist.gather_rows(e, oe.dist.split_rows(batch * size)) end, 15)
    local flat = oe.zeros({ m:num_parameters(true) })
    out[#out + 1] = timed(function() oe.dist.all_reduce(flat) end, 15)
  end
  if rank == 0 then print("RESULT " .. table.concat(out, " ")) end
  return
end

-- child2: per-step compute of one rank at batch 64 on one thread (step 1 and step 2) and the
-- one-thread GEMM rate
if arg[1] == "compute" then
  oe.set_num_threads(1)
  local Bm = require "common"
  oe.manual_seed(0)
  local m = oe.OneEncoder()
  m:add_modality("image", { input_dim = D })
  m:add_modality("text", { input_dim = D })
  local opt = oe.optim.AdamW(m:parameters(true), { lr = 1e-3 })
  local xi, xt = oe.randn({ 64, L_IMG, D }), oe.randn({ 64, L_TXT, D })
  local function fastest(fn)
    fn() -- warm-up
    local t = Bm.samples(fn, 3)
    table.sort(t)
    return t[1]
  end
  local t1 = fastest(function()
    local loss = oe.train.clip_loss(m:embed("image", xi), m:embed("text", xt), m:logit_scale())
    opt:zero_grad(); loss:backward(); opt:step()
  end)
  xi = nil
  m:freeze()
  m:add_modality("audio", { input_dim = D })
  local opt2 = oe.optim.AdamW(m:parameters(true), { lr = 1e-3 })
  local xa = oe.randn({ 64, L_AUD, D })
  local anchor = oe.no_grad(function() return m:embed("text", xt) end)
  local t2 = fastest(function()
    local loss = oe.train.clip_loss(m:embed("audio", xa), anchor, m:logit_scale())
    opt2:zero_grad(); loss:backward(); opt2:step()
  end)
  local gflops = 2 * 1024 * 1024 * 256 / core.sgemm_seconds(1024, 1024, 256, false, false, 3) / 1e9
  print(string.format("RESULT %.6g %.6g %.6g %d %d", t1, t2, gflops, m:num_parameters(true), 0))
  return
end

-- ---------------------------------------------------------------- parent
local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local text = p:read("a")
  p:close()
  local r = text:match("RESULT ([^\n]+)")
  if not r then error("dist_bench: a child failed:\n" .. text, 0) end
  local v = {}
  for x in r:gmatch("%S+") do v[#v + 1] = tonumber(x) end
  return v
end

local env = string.format("LUA_PATH='%s' LUA_CPATH='%s'", package.path, package.cpath)
local info = oe.info()
local function loadavg()
  local f = io.open("/proc/loadavg")
  local s = f and f:read("l") or "?"
  if f then f:close() end
  return s:match("^(%S+)") or "?"
end
print(string.format("# %s, BLAS %s (%s), load average %s", info.cpu, info.blas_core, info.simd, loadavg()))

local n = tonumber(os.getenv("DIST_BENCH_N") or "384")
local dir = os.getenv("DIST_BENCH_DIR") or (os.tmpname() .. "_dist_bench")
local t0 = core.now()
open_caches(dir, n, true) -- built once here, read by every child
report("dist_cache_build_s", core.now() - t0, "%.1f")

local have_mpi = os.execute("command -v mpirun > /dev/null 2>&1") == true and oe.dist.available()
local rounds = tonumber(os.getenv("DIST_BENCH_ROUNDS") or "2")
local one, two = {}, {}
for _ = 1, rounds do -- alternate, so both see the same machine load
  one[#one + 1] = run(string.format("%s lua5.4 bench/dist_bench.lua child '%s' 2 64 0 %d", env, dir, n))
  if have_mpi then
    two[#two + 1] = run(string.format("%s mpirun --allow-run-as-root --oversubscribe -np 2 lua5.4 bench/dist_bench.lua child '%s' 1 32 1 %d",
      env, dir, n))
  end
end
local function median(list, i)
  local t = {}
  for k, v in ipairs(list) do t[k] = v[i] end
  table.sort(t)
  return #t % 2 == 1 and t[(#t + 1) // 2] or (t[#t // 2] + t[#t // 2 + 1]) / 2
end
print(string.format("# step-1 epoch over %d cached pairs (float16 cache), global batch 64", n))
report("dist_epoch_1proc_2threads_s", median(one, 1), "%.2f")
report("dist_step_1proc_2threads_s", median(one, 2), "%.3f")
local comm_share, comm_step
if have_mpi then
  report("dist_epoch_2ranks_1thread_s", median(two, 1), "%.2f")
  report("dist_step_2ranks_1thread_s", median(two, 2), "%.3f")
  report("dist_2ranks_speedup_vs_1proc_2threads", median(one, 1) / median(two, 1), "%.2f")
  local steps = n // 64
  comm_step = (median(two, 3) + median(two, 4) + median(two, 5)) / steps
  report("dist_collectives_per_step_ms", 1e3 * comm_step, "%.1f")
  report("dist_gathers_per_step_ms", 1e3 * median(two, 3) / steps, "%.2f")
  report("dist_grad_allreduce_per_step_ms", 1e3 * median(two, 4) / steps, "%.2f")
  comm_share = comm_step / median(two, 2)
  report("dist_collectives_share_of_step", comm_share, "%.3f")
  report("dist_allreduce_1.88M_floats_alone_ms", 1e3 * median(two, 6), "%.2f")
  report("dist_allreduce_1.88M_floats_one_buffer_ms", 1e3 * median(two, 8), "%.2f")
  report("dist_gather_64x256_alone_ms", 1e3 * median(two, 7), "%.3f")
else
  print("dist_2ranks: unavailable (no mpirun or no oneencoder.dist_mpi)")
end

print("# load average after the epochs: " .. loadavg())

-- ---------------------------------------------------------------- on paper
local c = run(string.format("%s lua5.4 bench/dist_bench.lua compute", env))
local t1, t2, G = c[1], c[2], c[3] * 1e9
report("dist_compute_step1_b64_1thread_s", t1, "%.3f")
report("dist_compute_step2_b64_1thread_s", t2, "%.3f")
report("dist_sgemm_1thread_gflops", G / 1e9, "%.1f")
local d, b = 256, 64
local stages = { { name = "step1", tc = t1, P = 1884038, gathered = 2 }, { name = "step2", tc = t2, P = 305283, gathered = 1 } }
local links = { { name = "10gbit", W = 10e9 / 8, a = 30e-6 }, { name = "100gbit", W = 100e9 / 8, a = 3e-6 } }
print("# weak scaling: batch 64 per rank; T(R) = t_c + t_loss + t_allreduce + t_gather (see the header)")
for _, st in ipairs(stages) do
  for _, variant in ipairs({ "whole", "local" }) do
    for _, R in ipairs({ 8, 64 }) do
      for _, link in ipairs(links) do
        local N = b * R
        local flops = (variant == "whole" and 6 * N * N * d or 12 * b * N * d) - 6 * b * b * d
        local k = st.gathered * (variant == "local" and 2 or 1) -- gather_with_grad adds a reduce-scatter
        local t_loss = flops / G
        local t_ar = 2 * (R - 1) * link.a + 2 * (R - 1) / R * 4 * st.P / link.W
        local t_g = k * ((R - 1) * link.a + (R - 1) / R * 4 * N * d / link.W)
        local T = st.tc + t_loss + t_ar + t_g
        local key = string.format("dist_paper_%s_%s_%dranks_%s", st.name, variant, R, link.name)
        print(string.format("%s_step_s: %.3f", key, T))
        print(string.format("%s_efficiency: %.3f", key, st.tc / T))
        print(string.format("%s_comm_ms: %.2f", key, 1e3 * (t_ar + t_g)))
      end
    end
  end
end
os.execute("rm -rf '" .. dir .. "'")
