-- cache_manifest_fuzz.lua: the Lua side of cache_manifest_fuzz.c. The cache's
-- manifest and shard headers are safetensors files (read by the C reader,
-- fuzzed by safetensors_fuzz and featmap_fuzz); what lua/oneencoder/cache.lua
-- parses itself are their metadata texts: the manifest's "shards" (one line per
-- shard: file, encoder id, dtype, items, bytes, checksum, tab-separated,
-- percent-encoded) and a shard's "items" (key and identity per line). This
-- driver gets those two texts from the fuzzer, writes a cache folder holding
-- one valid shard (2 items, D = 4) whose "items" is the fuzzed text and a
-- manifest whose "shards" is the fuzzed text ("{bytes}" and "{sum}" in it
-- become the shard's real size and checksum, so the fuzzer also reaches the
-- paths past those checks), then uses the cache as a program would.
--
-- Contract checked (any other error reaching the C side is a crash):
--   cache.open never raises on a damaged folder: problems are listed;
--   index entries point at rows inside their shard;
--   feature_set either works (and batch gives (B, Lmax, 4)) or raises the
--   documented "cache: ... (run cache:build ...)" error;
--   build of every indexed key (and k1, k2) succeeds, after which a fresh
--   open counts every item as a hit and reads them all.
local dir = ...
local core = require "oneencoder.core"
local S = require "oneencoder.serialize"
local cache = require "oneencoder.cache"

local FORMAT = "oneencoder-cache-1"
local SHARD = "shard-000001-0a1b2c3d.safetensors"
local D = 4

local function clear()
  for _, name in ipairs(core.fs_listdir(dir) or {}) do
    if name ~= "." and name ~= ".." then os.remove(dir .. "/" .. name) end
  end
end

local function check(cond, ...)
  if not cond then error("FUZZ CHECK FAILED: " .. string.format(...), 2) end
end

local function encode(list)
  local x = core.zeros({ #list, 1, D })
  core.fill_(x, 0.5)
  return x, nil
end

local function use(c, keys, mode)
  for _, p in ipairs(c.problems) do
    check(type(p.file) == "string" and type(p.msg) == "string", "problem without file and message")
  end
  for _, k in ipairs(keys) do
    local e = c.index[k]
    check(e.row >= 0 and e.row < e.shard.n, "key row %d outside shard of %s items", e.row, tostring(e.shard.n))
  end
  if #keys == 0 then return end
  local ok, set = pcall(c.feature_set, c, keys)
  if not ok then
    check(type(set) == "string" and set:match("^cache: ") and set:match("run cache:build"), "feature_set raised: %s", tostring(set))
    return
  end
  local ids = {}
  for i = 1, #keys do ids[i] = i end
  local x, lens = set:batch(ids)
  local s = core.shape(x)
  check(s[1] == #keys and s[3] == D and #lens == #keys, "batch shape (%d, %d, %d) in mode %s", s[1], s[2], s[3], mode)
  core.release(x)
end

return function(shards, items, mode)
  clear()
  local shard_path = dir .. "/" .. SHARD
  local feats = core.from_table({ { 1, 2, 3, 4 }, { 5, 6, 7, 8 } })
  -- metadata must be UTF-8: the writer raises for anything else (an argument error), nothing to read then
  local pok, ok, err = pcall(S.save, shard_path, { feats = feats, lengths = core.from_table({ 1, 1 }, "int32") },
    { format = FORMAT, encoder_id = "enc", items = items })
  if not (pok and ok) then
    err = pok and err or ok
    check(not utf8.len(items), "saving a shard failed: %s", tostring(err))
    return
  end
  local sum, size = core.fs_xxh3(shard_path)
  check(sum, "fs_xxh3: %s", tostring(size))
  shards = shards:gsub("{bytes}", tostring(size)):gsub("{sum}", sum)
  pok, ok, err = pcall(S.save, dir .. "/manifest.safetensors", {}, { format = FORMAT, shards = shards })
  if not (pok and ok) then
    err = pok and err or ok
    check(not utf8.len(shards), "saving the manifest failed: %s", tostring(err))
    return
  end

  local c = cache.open(dir, { encoder_id = "enc", read = mode })
  local keys = {}
  for _, k in ipairs(c:keys()) do if k ~= "" then keys[#keys + 1] = k end end
  use(c, keys, mode)

  local want, seen = {}, {}
  for _, k in ipairs(keys) do want[#want + 1] = { key = k }; seen[k] = true end
  for _, k in ipairs({ "k1", "k2" }) do if not seen[k] then want[#want + 1] = { key = k } end end
  c:build(want, encode, { batch = 8 })
  local c2 = cache.open(dir, { encoder_id = "enc", read = mode })
  local todo, hits = c2:status(want)
  check(#todo == 0 and hits == #want, "after build: %d of %d items still to compute", #todo, #want)
  local all = {}
  for i, it in ipairs(want) do all[i] = it.key end
  local set = c2:feature_set(all)
  local ids = {}
  for i = 1, #all do ids[i] = i end
  local x = set:batch(ids)
  check(core.shape(x)[1] == #all, "batch after build")
  core.release(x)
end
