-- cache_bench.lua: an epoch over cached features versus recomputing them through a frozen
-- encoder, and the readers compared (mmap, pread, in-memory LRU), float32 and float16.
-- The toy frozen encoder is ViT-B-shaped but one block deep: Linear(768, 768) then one
-- TransformerEncoderLayer (d 768, 12 heads, ff 3072) over 197 tokens, under no_grad; a real
-- ViT-B/16 has 12 such blocks, so its recompute cost is about 12x the toy's.
-- Env: CACHE_BENCH_N (items, default 384), CACHE_BENCH_DIR (default a temporary folder).
-- Prints `name: value`.
local oe = require "oneencoder"
local core = require "oneencoder.core"

local N = tonumber(os.getenv("CACHE_BENCH_N") or "384")
local L, D, B = 197, 768, 64
local dir = os.getenv("CACHE_BENCH_DIR") or (os.tmpname() .. "_cache_bench")

oe.manual_seed(0)
local enc_lin = oe.nn.Linear(D, D)
local enc_layer = oe.nn.TransformerEncoderLayer(D, 12, { dim_feedforward = 3072, dropout = 0 })
enc_lin:eval(); enc_layer:eval()
enc_lin:freeze(); enc_layer:freeze()

-- the "input file" of item i: seeded noise (stands for a decoded, resized image)
local function inputs(list)
  local x = oe.zeros(#list, L, D)
  for b, it in ipairs(list) do
    oe.manual_seed(it.index)
    core.set_slice(x, 1, b, oe.randn(1, L, D))
  end
  return x
end
local function encode(list)
  return oe.no_grad(function()
    local h = enc_layer(enc_lin(inputs(list)))
    local lens = {}
    for b = 1, #list do lens[b] = L end
    return h, lens
  end)
end

local items = {}
for i = 1, N do items[i] = { key = "img" .. i, index = i } end

local function epoch_batches()
  oe.manual_seed(123)
  local p = oe.data.permutation(N)
  local out = {}
  for i = 1, N, B do
    local ids = {}
    for j = i, math.min(i + B - 1, N) do ids[#ids + 1] = p[j] end
    out[#out + 1] = ids
  end
  return out
end

local function report(name, v, fmt) print(string.format("%s: " .. (fmt or "%.3f"), name, v)) end
print(string.format("# %d items of (%d, %d), batch %d, %d threads", N, L, D, B, oe.get_num_threads()))

-- recompute epoch: the encoder on every batch
local batches = epoch_batches()
local t0 = core.now()
for _, ids in ipairs(batches) do
  local list = {}
  for i, id in ipairs(ids) do list[i] = items[id] end
  local x = encode(list)
  assert(core.shape(x)[1] == #ids)
end
local t_encode = core.now() - t0
report("cache_recompute_epoch_s", t_encode)

local results = {}
for _, dtype in ipairs({ "float32", "float16" }) do
  local cdir = dir .. "/" .. dtype
  local c = oe.cache.open(cdir, { encoder_id = "toy-vit-1block", dtype = dtype, shard_items = 64 })
  t0 = core.now()
  c:build(items, encode, { batch = B })
  report("cache_build_" .. dtype .. "_s", core.now() - t0)
  report("cache_size_" .. dtype .. "_mb", c:bytes() / 1048576, "%.1f")
  for _, mode in ipairs({ "mmap", "pread", "memory" }) do
    local cm = oe.cache.open(cdir, { encoder_id = "toy-vit-1block", dtype = dtype, read = mode, lru_shards = 2 })
    local set = cm:feature_set(items)
    -- one warm-up pass (page cache), then the timed epoch
    for _, ids in ipairs(batches) do set:batch(ids) end
    collectgarbage()
    t0 = core.now()
    for _, ids in ipairs(batches) do
      local x = set:batch(ids)
      assert(core.shape(x)[2] == L)
    end
    local t = core.now() - t0
    results[dtype .. "_" .. mode] = t
    report(string.format("cache_epoch_%s_%s_s", dtype, mode), t, "%.4f")
  end
end
report("cache_recompute_over_mmap_f16_ratio", t_encode / results.float16_mmap, "%.1f")
report("cache_recompute_over_mmap_f32_ratio", t_encode / results.float32_mmap, "%.1f")
report("cache_recompute_over_pread_f16_ratio", t_encode / results.float16_pread, "%.1f")
report("cache_vit_b16_12_blocks_estimated_ratio", 12 * t_encode / results.float16_mmap, "%.0f")
report("cache_peak_rss_mb", core.peak_rss_mb(), "%.0f")
if not os.getenv("CACHE_BENCH_DIR") then os.execute("rm -rf '" .. dir .. "'") end
