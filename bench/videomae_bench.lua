-- bench/videomae_bench.lua: VideoMAE-base forward (random weights), 2 videos of 16 frames at
-- 224x224 (2 x 1568 tokens), against the PyTorch composition of VideoMAEModel
-- (bench/videomae_torch.py, the fixtures' reference at full size) with the same thread count,
-- the same OPENBLAS_CORETYPE as this process's OpenBLAS (oe.info().blas_core) and the same
-- OMP_WAIT_POLICY (inherited), the two alternating forward by forward.
-- The weights (VideoMAEModel keys, 86 M parameters, 345 MB float32) are written to a temporary
-- file by a child process, so this process only maps them: its peak RSS is the mapped weights
-- plus the runtime's scratch, the input and the output.
-- Prints `name: value`: medians of wall and process-CPU seconds per forward, the speedup, the
-- peak RSS of each side and the budget (the weights file + 600 MB).
-- Usage: lua5.4 bench/videomae_bench.lua [threads] [rounds]
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local B = require "common"
local report, median = B.report, B.median

local D, M, LAYERS = 768, 3072, 12

if arg[1] == "--write" then
  oe.manual_seed(0)
  local t = {}
  local function lin(name, o, i, bias)
    t[name .. ".weight"] = oe.normal({ o, i }, 0, 0.02)
    if bias then t[name .. ".bias"] = oe.zeros({ o }) end
  end
  local function ln(name)
    t[name .. ".weight"] = oe.ones({ D })
    t[name .. ".bias"] = oe.zeros({ D })
  end
  t["embeddings.patch_embeddings.projection.weight"] = oe.normal({ D, 3, 2, 16, 16 }, 0, 0.02)
  t["embeddings.patch_embeddings.projection.bias"] = oe.zeros({ D })
  for i = 0, LAYERS - 1 do
    local p = "encoder.layer." .. i .. "."
    ln(p .. "layernorm_before"); ln(p .. "layernorm_after")
    lin(p .. "attention.attention.query", D, D, false)
    lin(p .. "attention.attention.key", D, D, false)
    lin(p .. "attention.attention.value", D, D, false)
    t[p .. "attention.attention.q_bias"] = oe.normal({ D }, 0, 0.02)
    t[p .. "attention.attention.v_bias"] = oe.normal({ D }, 0, 0.02)
    lin(p .. "attention.output.dense", D, D, true)
    lin(p .. "intermediate.dense", M, D, true)
    lin(p .. "output.dense", D, M, true)
  end
  ln("layernorm")
  assert(oe.save(arg[2], t))
  os.exit(0)
end

local threads = tonumber(arg[1]) or 2
local rounds = tonumber(arg[2]) or 3
oe.set_num_threads(threads)
local info = oe.info()
report("threads", threads, "%d")
B.print_machine(info)

local path = os.tmpname() .. ".safetensors"
assert(os.execute(string.format("lua5.4 bench/videomae_bench.lua --write '%s'", path)))
local fsize = core.fs_stat(path).size
report("videomae_weights_file_mb", fsize / 2 ^ 20, "%.0f")

-- the reference process, driven through a FIFO
local torch
do
  local ok = os.execute("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1")
  if ok then
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local env = string.format("OMP_NUM_THREADS=%d ", threads)
    if info.blas_core then env = env .. "OPENBLAS_CORETYPE=" .. info.blas_core .. " " end
    local out = io.popen(env .. "/usr/bin/python3 bench/videomae_torch.py " .. threads .. " '" .. fifo .. "' 2>/dev/null")
    local cmd = assert(io.open(fifo, "r+"))
    if out:read("l") == "ready" then
      torch = {}
      function torch.ask(what)
        cmd:write(what, "\n")
        cmd:flush()
        return out:read("l")
      end
      function torch.close()
        cmd:write("quit\n"); cmd:close(); out:close(); os.remove(fifo)
      end
    else
      cmd:close(); out:close(); os.remove(fifo)
      print("reference: bench/videomae_torch.py did not start")
    end
  else
    print("reference: no PyTorch (/usr/bin/python3 -c 'import torch' failed)")
  end
end

local enc = assert(oe.encoders.create("videomae", { weights = path, config = false, preprocessor = false }))
oe.manual_seed(1)
local x = oe.normal({ 2, 16, 3, 224, 224 }, 0, 1)
enc:forward(x)                                               -- warm-up: pages, scratch

local ow, oc, tw, tc = {}, {}, {}, {}
for i = 1, rounds do
  local t0, c0 = core.now(), os.clock()
  local y = enc:forward(x)
  ow[i], oc[i] = core.now() - t0, os.clock() - c0
  assert(core.shape(y)[2] == 1568)
  if torch then
    local w, c = torch.ask("run"):match("^run (%S+) (%S+)")
    tw[i], tc[i] = tonumber(w), tonumber(c)
  end
end
local flops = 2 * (2 * 1568 * 1536 * D + LAYERS * (2 * 1568 * (4 * D * D + 2 * D * M) + 4 * 1568 * 1568 * D))
report("videomae_base_b2_seconds", median(ow))
report("videomae_base_b2_cpu_seconds", median(oc))
report("videomae_base_b2_gflops", flops / median(ow) / 1e9, "%.1f")
if torch then
  report("torch_videomae_base_b2_seconds", median(tw))
  report("torch_videomae_base_b2_cpu_seconds", median(tc))
  report("videomae_speedup_vs_torch", median(tw) / median(ow), "%.2f")
  report("videomae_cpu_time_ratio_torch_over_ours", median(tc) / median(oc), "%.2f")
end
report("videomae_peak_rss_mb", core.peak_rss_mb(), "%.0f")
report("videomae_rss_budget_mb", fsize / 2 ^ 20 + 600, "%.0f")
if torch then
  local rss = tonumber(torch.ask("rss"):match("^rss (%S+)"))
  report("torch_videomae_peak_rss_mb", rss, "%.0f")
  torch.close()
end
f = io.open("/proc/loadavg")
if f then print("loadavg at end: " .. f:read("l")); f:close() end
os.remove(path)
