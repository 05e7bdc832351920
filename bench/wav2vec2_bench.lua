-- bench/wav2vec2_bench.lua: Wav2Vec2-base (random weights, wav2vec2-base's shapes and config) on a
-- batch of 4 clips of 10 s at 16 kHz, against torchaudio's wav2vec2_base with the same weights at
-- the same thread count, rounds alternating ours / theirs in the same run; peak RSS of each.
--   lua5.4 bench/wav2vec2_bench.lua [threads] [rounds]
-- The weights: bench/wav2vec2_torch.py save writes torchaudio's wav2vec2_base (torch.manual_seed(0))
-- under Hugging Face's names with wav2vec2-base's config.json into $OE_W2V_BENCH_DIR (default
-- /tmp/oe_w2v_base_bench, 360 MiB, written once). Each round runs one child process of ours (load,
-- one warm-up forward, REPS timed forwards: median wall and CPU seconds, peak RSS of the child) and
-- then one of torchaudio's (the same), so both see the same drifting load of a shared machine.
-- Prints `name: value`; the reference gets this process's OpenBLAS kernels (OPENBLAS_CORETYPE) and
-- inherits OMP_WAIT_POLICY.
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local B = require "common"
local median = B.median
local report = B.report

local BATCH, SECONDS, REPS = 4, 10, 3

-- ---- the child: ours, in a process of its own (its peak RSS is the figure) ----
if arg[1] == "--child" then
  local dir, threads = arg[2], tonumber(arg[3])
  oe.set_num_threads(threads)
  local enc = assert(oe.encoders.create("wav2vec2", { path = dir }))
  local g = oe.Generator(1)
  local clips = {}
  for b = 1, BATCH do clips[b] = g:randn({ SECONDS * 16000 }) end
  local x = enc:prepare(clips)                        -- (4, 160000) normalised input_values
  clips = nil
  enc:forward(x)
  local wall, cpu = {}, {}
  for i = 1, REPS do
    local t0, c0 = core.now(), os.clock()
    local y = enc:forward(x)
    wall[i], cpu[i] = core.now() - t0, os.clock() - c0
    assert(core.shape(y)[2] == 499)
  end
  table.sort(wall); table.sort(cpu)
  report("w2v_seconds", wall[(REPS + 1) // 2])
  report("w2v_cpu_seconds", cpu[(REPS + 1) // 2])
  report("w2v_peak_rss_mb", core.peak_rss_mb(), "%.0f")
  os.exit(0)
end

local threads = tonumber(arg[1]) or 2
local rounds = tonumber(arg[2]) or 3
oe.set_num_threads(threads)
local info = oe.info()
report("threads", threads, "%d")
B.print_machine(info)

local dir = os.getenv("OE_W2V_BENCH_DIR") or "/tmp/oe_w2v_base_bench"
if not core.fs_stat(dir .. "/model.safetensors") then
  if not os.execute("/usr/bin/python3 bench/wav2vec2_torch.py save '" .. dir .. "' 2>/dev/null") then
    print("wav2vec2 bench: Debian's python3-torch / torchaudio are needed for the weights and the reference")
    os.exit(0)
  end
end
local wsize = core.fs_stat(dir .. "/model.safetensors").size / 2 ^ 20
report("w2v_weights_file_mb", wsize, "%.0f")

local function ours()
  local cmd = string.format("LUA_PATH='%s' LUA_CPATH='%s' lua5.4 bench/wav2vec2_bench.lua --child '%s' %d", package.path,
    package.cpath, dir, threads)
  return B.figures(cmd)
end

local r = { w = {}, c = {}, rss = 0, tw = {}, tc = {}, trss = 0 }
for i = 1, rounds do
  local a = ours()
  r.w[i], r.c[i], r.rss = a.w2v_seconds, a.w2v_cpu_seconds, math.max(r.rss, a.w2v_peak_rss_mb or 0)
  local t = B.python("bench/wav2vec2_torch.py", string.format("run %d %d %d %d", threads, BATCH, SECONDS, REPS))
  if t and t.torch_w2v_seconds then
    r.tw[#r.tw + 1], r.tc[#r.tc + 1] = t.torch_w2v_seconds, t.torch_w2v_cpu_seconds
    r.trss = math.max(r.trss, t.torch_w2v_peak_rss_mb)
  end
  print(string.format("round %d: ours %.2f s (%.2f CPU s), torchaudio %s", i, r.w[i], r.c[i],
    r.tw[#r.tw] and string.format("%.2f s (%.2f CPU s)", r.tw[#r.tw], r.tc[#r.tc]) or "unavailable"))
end
report("w2v_base_b4_10s_seconds", median(r.w))
report("w2v_base_b4_10s_cpu_seconds", median(r.c))
report("w2v_peak_rss_mb", r.rss, "%.0f")
report("w2v_rss_over_weights_mb", r.rss - wsize, "%.0f")
if #r.tw > 0 then
  report("torch_w2v_base_b4_10s_seconds", median(r.tw))
  report("torch_w2v_base_b4_10s_cpu_seconds", median(r.tc))
  report("torch_w2v_peak_rss_mb", r.trss, "%.0f")
  report("w2v_speedup_vs_torchaudio", median(r.tw) / median(r.w), "%.2f")
  report("w2v_cpu_time_ratio_torchaudio_over_ours", median(r.tc) / median(r.c), "%.2f")
end
f = io.open("/proc/loadavg")
if f then print("load average at end: " .. f:read("l")); f:close() end
