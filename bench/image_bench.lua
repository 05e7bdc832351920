-- image_bench.lua: JPEG pipeline throughput (decode + resize to 224x224 +
-- ImageNet normalisation into a (B, 3, 224, 224) batch), in images per second,
-- for oneencoder's image.load_batch and, in the same run, a PIL + numpy
-- pipeline (and OpenCV + numpy) through /usr/bin/python3 when it has them.
--
-- Photos: real photographs shipped by Debian packages when installed
-- (python3-skimage's data folder: rocket, retina, hubble_deep_field JPEGs and
-- astronaut, chelsea, coffee, motorcycle PNGs; python3-matplotlib's
-- grace_hopper.jpg). PNG photos are re-encoded to JPEG quality 90 (4:2:0) with
-- image.save so every input is a JPEG. Without any of them the bench falls
-- back to synthetic pictures and says so.
--   lua5.4 bench/image_bench.lua          (make bench runs it)
-- Figures: name: value.
local oe = require "oneencoder"
local image = require "oneencoder.image"
local core = require "oneencoder.core"

local SK = "/usr/lib/python3/dist-packages/skimage/data/"
local jpeg_candidates = {
  SK .. "rocket.jpg", SK .. "retina.jpg", SK .. "hubble_deep_field.jpg",
  "/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
}
local png_candidates = {
  SK .. "astronaut.png", SK .. "chelsea.png", SK .. "coffee.png", SK .. "motorcycle_left.png",
  SK .. "motorcycle_right.png",
}

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local tmp = io.popen("mktemp -d"):read("l")
local paths, kinds = {}, {}
for _, p in ipairs(jpeg_candidates) do
  if exists(p) and image.info(p) then paths[#paths + 1] = p; kinds[#kinds + 1] = p:match("[^/]+$") end
end
for _, p in ipairs(png_candidates) do
  local img = exists(p) and image.load(p)
  if img then
    local out = tmp .. "/" .. p:match("([^/]+)%.png$") .. ".jpg"
    assert(image.save(img, out, { quality = 90 }))
    paths[#paths + 1] = out
    kinds[#kinds + 1] = p:match("[^/]+$") .. "->jpg"
  end
end
local synthetic = false
if #paths == 0 then
  synthetic = true
  for i = 1, 8 do
    local big = image.resize(core.from_bytes(string.rep(string.char(i * 20, 100, 200 - i * 10), 64), "uint8", { 8, 8, 3 }), 480, 640, "bicubic_pil")
    local out = tmp .. "/synthetic" .. i .. ".jpg"
    assert(image.save(big, out, { quality = 90 }))
    paths[#paths + 1] = out
  end
end

local pixels = 0
for _, p in ipairs(paths) do local i = image.info(p); pixels = pixels + i.width * i.height end
print("photos: " .. #paths .. (synthetic and " (synthetic: no photos found)" or ""))
print("photo_set: " .. table.concat(kinds, ","))
print(string.format("mean_megapixels: %.3f", pixels / #paths / 1e6))

local REPEAT = tonumber(os.getenv("IMAGE_BENCH_REPEAT") or "") or 8
local list = {}
for _ = 1, REPEAT do for _, p in ipairs(paths) do list[#list + 1] = p end end

local function now() return os.clock() end
local function wall()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

-- best of 3 runs over the list: wall-clock images/s and images per CPU-second
-- (process CPU time over all threads; robust when other jobs share the cores)
local function rate(opts)
  image.load_batch({ paths[1] }, opts) -- warm up
  local best, best_cpu = 0, 0
  for _ = 1, 3 do
    local t0, c0 = wall(), now()
    local b = image.load_batch(list, opts)
    local dt, dc = wall() - t0, now() - c0
    assert(core.shape(b)[1] == #list)
    best = math.max(best, #list / dt)
    best_cpu = math.max(best_cpu, #list / dc)
  end
  return best, best_cpu
end

local threads = oe.get_num_threads()
local results, cpu = {}, {}
for _, m in ipairs { "bilinear_cv", "bilinear_pil", "bicubic_pil" } do
  for _, fast in ipairs { false, true } do
    for _, th in ipairs { 1, threads } do
      local key = string.format("oe_%s%s_%dthread", m, fast and "_fast" or "", th)
      if not results[key] then
        results[key], cpu[key] = rate { size = { 224, 224 }, method = m, normalize = "imagenet", threads = th, fast = fast }
        print(string.format("%s_images_per_s: %.1f", key, results[key]))
        print(string.format("%s_images_per_cpu_s: %.1f", key, cpu[key]))
      end
    end
  end
end

-- reference pipelines in Python, same photos, same run
local listfile = tmp .. "/list.txt"
local f = assert(io.open(listfile, "w"))
for _, p in ipairs(paths) do f:write(p, "\n") end
f:close()
local bench_dir = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$")) or "bench"
local py = exists("/usr/bin/python3") and io.popen(string.format("/usr/bin/python3 '%s/image_bench_pil.py' '%s' %d 2>&1",
  bench_dir, listfile, REPEAT))
local ref = {}
if py then
  for line in py:lines() do
    print(line)
    local k, v = line:match("^([%w_]+): ([%d%.]+)$")
    if k then ref[k] = tonumber(v) end
  end
  py:close()
end
local function ratio(name, a, b)
  if a and b and b > 0 then print(string.format("%s: %.2f", name, a / b)) end
end
local T = threads
-- wall-clock ratios (ours with T threads vs the single-process Python pipeline)
ratio("ratio_bilinear_pil_vs_pil_" .. T .. "thread", results[("oe_bilinear_pil_%dthread"):format(T)], ref.pil_bilinear_images_per_s)
ratio("ratio_bicubic_pil_vs_pil_" .. T .. "thread", results[("oe_bicubic_pil_%dthread"):format(T)], ref.pil_bicubic_images_per_s)
ratio("ratio_bilinear_cv_vs_pil_bilinear_" .. T .. "thread", results[("oe_bilinear_cv_%dthread"):format(T)], ref.pil_bilinear_images_per_s)
ratio("ratio_bilinear_pil_fast_vs_pil_" .. T .. "thread", results[("oe_bilinear_pil_fast_%dthread"):format(T)], ref.pil_bilinear_images_per_s)
ratio("ratio_bicubic_pil_fast_vs_pil_" .. T .. "thread", results[("oe_bicubic_pil_fast_%dthread"):format(T)], ref.pil_bicubic_images_per_s)
-- one thread each, per CPU-second (same work, contention-robust)
ratio("ratio_cpu_bilinear_pil_vs_pil_1thread", cpu.oe_bilinear_pil_1thread, ref.pil_bilinear_images_per_cpu_s)
ratio("ratio_cpu_bicubic_pil_vs_pil_1thread", cpu.oe_bicubic_pil_1thread, ref.pil_bicubic_images_per_cpu_s)
ratio("ratio_cpu_bilinear_cv_vs_cv2_1thread", cpu.oe_bilinear_cv_1thread, ref.cv2_linear_1thread_images_per_cpu_s)
ratio("ratio_cpu_bilinear_cv_vs_pil_bilinear_1thread", cpu.oe_bilinear_cv_1thread, ref.pil_bilinear_images_per_cpu_s)
ratio("ratio_cpu_bilinear_pil_fast_vs_pil_1thread", cpu.oe_bilinear_pil_fast_1thread, ref.pil_bilinear_images_per_cpu_s)
ratio("ratio_cpu_bicubic_pil_fast_vs_pil_1thread", cpu.oe_bicubic_pil_fast_1thread, ref.pil_bicubic_images_per_cpu_s)
os.execute("rm -rf '" .. tmp .. "'")
