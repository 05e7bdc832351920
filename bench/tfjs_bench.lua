-- bench/tfjs_bench.lua: nsfwjs's MobileNetV2 (a TF.js layers model, scripts/fetch-nsfwjs.sh) run by
-- the project (csrc/tfjs on the csrc/ops convolution kernels) at 224x224, batch 16, against
-- TensorFlow.js's CPU backend (pure JavaScript, one thread; bench/tfjs_ref_bench.js) in the same
-- run, rounds alternating so both see the same machine load.
-- Prints `name: value`: median wall seconds per batch-16 forward, images per second, for 1 and 2
-- threads (ours) and TF.js; the load average at start and end.
-- Set-up on first use (git-ignored under data/): scripts/fetch-nsfwjs.sh, and the TF.js packages
-- installed with `npm install --ignore-scripts` into data/tfjs (or $TFJS_DIR). A missing piece
-- skips its rows. Usage: lua5.4 bench/tfjs_bench.lua [threads...]   (default: 1 2)
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local B = require "common"
local report, median, time_of, load_average = B.report, B.median, B.median_time, B.load_average

local BATCH, ROUNDS, OUR_REPS, TFJS_REPS = 16, 2, 3, 1
local MODEL = "data/nsfwjs/mobilenet_v2"

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() end
  return f ~= nil
end
local function sh(cmd) return os.execute(cmd .. " >/dev/null 2>&1") end

if not exists(MODEL .. "/model.json") then sh("sh scripts/fetch-nsfwjs.sh") end
local TFJS_DIR = os.getenv("TFJS_DIR") or "data/tfjs"
local PKGS = "@tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-layers@4.22.0 @tensorflow/tfjs-backend-cpu@4.22.0"
if not exists(TFJS_DIR .. "/node_modules/@tensorflow/tfjs-layers/package.json") then
  sh(string.format("mkdir -p %s && cd %s && npm install --ignore-scripts --no-audit --no-fund %s", TFJS_DIR, TFJS_DIR, PKGS))
end
local have_tfjs = exists(TFJS_DIR .. "/node_modules/@tensorflow/tfjs-layers/package.json") and sh("command -v node")

local function tfjs_seconds()
  if not have_tfjs then return nil end
  local p = io.popen(string.format("TFJS_DIR='%s' node bench/tfjs_ref_bench.js %s %d %d 2>/dev/null", TFJS_DIR, MODEL, BATCH, TFJS_REPS))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("tfjs_seconds:%s*([%d%.eE+-]+)"))
end


local threads = {}
for i = 1, #arg do threads[#threads + 1] = tonumber(arg[i]) end
if #threads == 0 then threads = { 1, 2 } end
report("tfjs_loadavg_at_start", load_average() or -1, "%.2f")
report("tfjs_reference_available", have_tfjs and 1 or 0, "%d")
print("OMP_WAIT_POLICY: " .. (os.getenv("OMP_WAIT_POLICY") or "unset"))
local m = exists(MODEL .. "/model.json") and assert(oe.tfjs.load(MODEL .. "/model.json"))
if not m then
  print("tfjs_bench: " .. MODEL .. " missing (sh scripts/fetch-nsfwjs.sh); nothing measured")
  return
end
-- the reference's input: (i mod 251) / 250 in NHWC order
local n = BATCH * 224 * 224 * 3
local vals = {}
for i = 0, n - 1 do vals[i + 1] = (i % 251) / 250 end
local x = core.reshape(core.from_table(vals), { BATCH, 224, 224, 3 })
vals = nil

local ours, theirs = {}, {}
for _, th in ipairs(threads) do ours[th] = {} end
for _ = 1, ROUNDS do
  for _, th in ipairs(threads) do
    oe.set_num_threads(th)
    table.insert(ours[th], time_of(function() m:forward(x) end, OUR_REPS))
  end
  local t = tfjs_seconds()
  if t then theirs[#theirs + 1] = t end
end
for _, th in ipairs(threads) do
  local s = median(ours[th])
  report(string.format("tfjs_mobilenet_v2_b%d_t%d_seconds", BATCH, th), s, "%.4f")
  report(string.format("tfjs_mobilenet_v2_b%d_t%d_images_per_second", BATCH, th), BATCH / s, "%.1f")
end
if #theirs > 0 then
  local s = median(theirs)
  report(string.format("tfjs_mobilenet_v2_b%d_tfjs_cpu_seconds", BATCH), s, "%.4f")
  report(string.format("tfjs_mobilenet_v2_b%d_tfjs_cpu_images_per_second", BATCH), BATCH / s, "%.2f")
  for _, th in ipairs(threads) do
    report(string.format("tfjs_mobilenet_v2_b%d_t%d_speedup_over_tfjs_cpu", BATCH, th), s / median(ours[th]), "%.1f")
  end
end
report("tfjs_arena_bytes", m:arena_bytes(), "%d")
report("tfjs_loadavg_at_end", load_average() or -1, "%.2f")
