-- bench/onnx_bench.lua: ONNX models run by the project (csrc/onnx on csrc/ops kernels) against
-- ONNX Runtime (npm onnxruntime-node 1.30.0, bench/onnx_ort_bench.js) at the same thread count,
-- rounds alternating between the two so both see the same machine load:
--   speech embedding over 60 s of audio (openWakeWord's mel + embedding models, one call of
--   each for the whole clip, as the reference does; and the encoder's default of 64 windows
--   per embedding call), and torchvision's mobilenet_v2 exported to ONNX by Debian's PyTorch
--   (tools/onnx_export_mobilenet.py, random weights) at batch 1 and 8, 224x224.
-- Prints `name: value` (median wall seconds of each side, and ours / theirs).
-- Set-up on first use (all git-ignored under data/): scripts/fetch-openwakeword.sh, the
-- mobilenet export (/usr/bin/python3 with python3-torch), and onnxruntime-node installed with
-- `npm install --ignore-scripts` into data/ort (or $ORT_DIR). A missing piece skips its rows.
-- OpenMP's wait policy matters on a shared machine: with the default (threads spin between
-- parallel regions) a loaded 2-vCPU machine deschedules the spinning worker and every region
-- then waits for it; a graph runs ~70 regions a forward. So with more than one thread, and
-- OMP_WAIT_POLICY unset, the rows are measured twice: as inherited, and in a child process
-- with OMP_WAIT_POLICY=passive (rows named ..._passive_...); ONNX Runtime has its own pool.
-- Usage: lua5.4 bench/onnx_bench.lua [threads...]   (default: 1 2)
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local B = require "common"
local report, median, time_of, load_average = B.report, B.median, B.median_time, B.load_average

local ROUNDS, SPEECH_REPS, MB1_REPS, MB8_REPS = 3, 3, 20, 3

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end

local function sh(cmd) return os.execute(cmd .. " >/dev/null 2>&1") end

-- ---- set-up ----
local OWW = "data/openwakeword"
if not exists(OWW .. "/embedding_model.onnx") then sh("sh scripts/fetch-openwakeword.sh") end
local MB = "data/onnx/mobilenet_v2.onnx"
if not exists(MB) then sh("/usr/bin/python3 tools/onnx_export_mobilenet.py " .. MB) end
local ORT_DIR = os.getenv("ORT_DIR") or "data/ort"
if not exists(ORT_DIR .. "/node_modules/onnxruntime-node/package.json") then
  sh(string.format("mkdir -p %s && cd %s && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0", ORT_DIR, ORT_DIR))
end
local have_ort = exists(ORT_DIR .. "/node_modules/onnxruntime-node/package.json") and sh("command -v node")

local function ort(args)
  if not have_ort then return nil end
  local p = io.popen(string.format("ORT_DIR='%s' node bench/onnx_ort_bench.js %s 2>/dev/null", ORT_DIR, args))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("ort_seconds:%s*([%d%.eE+-]+)"))
end




-- the reference's 60 s of int16-range audio (bench/onnx_ort_bench.js), as [-1, 1] floats
local function speech(seconds)
  local n = math.floor(seconds * 16000 + 0.5)
  local t, s = {}, 12345
  for i = 0, n - 1 do
    s = (s * 1103515245 + 12345) % 4294967296
    local v = 8000 * math.sin(i * 0.05)
    v = math.floor(v + 0.5) -- Math.round for these values (no .5 ties arise from sin)
    t[i + 1] = (v + ((s >> 16) % 2000) - 1000) / 32768
  end
  return core.from_table(t)
end

local threads, child = {}, arg[1] == "--child"
for i = child and 2 or 1, #arg do threads[#threads + 1] = tonumber(arg[i]) end
if #threads == 0 then threads = { 1, 2 } end
local tag = child and "_passive" or ""

if not child then
  report("onnx_loadavg_at_start", load_average() or -1, "%.2f")
  report("onnx_ort_available", have_ort and 1 or 0, "%d")
  print("OMP_WAIT_POLICY: " .. (os.getenv("OMP_WAIT_POLICY") or "unset"))
end

local wave = speech(60)
local enc_all = exists(OWW .. "/embedding_model.onnx") and oe.encoders.create("speech_embedding", { dir = OWW, window_batch = 65536 })
local enc_default = enc_all and oe.encoders.create("speech_embedding", { dir = OWW })
local mb = exists(MB) and oe.onnx.load(MB)
local x1 = core.randn({ 1, 3, 224, 224 })
local x8 = core.randn({ 8, 3, 224, 224 })

for _, th in ipairs(threads) do
  oe.set_num_threads(th)
  local rows = {}
  local function add(name, ours, theirs)
    rows[name] = rows[name] or { ours = {}, theirs = {} }
    if ours then table.insert(rows[name].ours, ours) end
    if theirs then table.insert(rows[name].theirs, theirs) end
  end
  for _ = 1, ROUNDS do
    if enc_all then
      add("speech60", time_of(function() enc_all:encode({ wave }) end, SPEECH_REPS),
        ort(string.format("speech %s 60 %d %d", OWW, th, SPEECH_REPS)))
      add("speech60_window_batch64", time_of(function() enc_default:encode({ wave }) end, SPEECH_REPS), nil)
    end
    if mb then
      add("mobilenet_v2_b1", time_of(function() mb:run(x1) end, MB1_REPS), ort(string.format("model %s 1,3,224,224 %d %d", MB, th, MB1_REPS)))
      add("mobilenet_v2_b8", time_of(function() mb:run(x8) end, MB8_REPS), ort(string.format("model %s 8,3,224,224 %d %d", MB, th, MB8_REPS)))
    end
  end
  for _, name in ipairs({ "speech60", "speech60_window_batch64", "mobilenet_v2_b1", "mobilenet_v2_b8" }) do
    local r = rows[name]
    if r and #r.ours > 0 then
      local ours = median(r.ours)
      report(string.format("onnx_%s%s_t%d_seconds", name, tag, th), ours, "%.4f")
      if #r.theirs > 0 then
        local theirs = median(r.theirs)
        report(string.format("onnx_%s%s_t%d_ort_seconds", name, tag, th), theirs, "%.4f")
        report(string.format("onnx_%s%s_t%d_ratio", name, tag, th), ours / theirs, "%.2f")
      end
    end
  end
  if not child and th > 1 and not os.getenv("OMP_WAIT_POLICY") then
    io.stdout:flush()
    os.execute(string.format("OMP_WAIT_POLICY=passive ORT_DIR='%s' %s bench/onnx_bench.lua --child %d", ORT_DIR,
      arg[-1] or "lua5.4", th))
  end
end
if not child then report("onnx_loadavg_at_end", load_average() or -1, "%.2f") end
