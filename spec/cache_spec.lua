-- cache_spec.lua: the on-disk feature cache (lua/oneencoder/cache.lua).
local oe = require "oneencoder"
local core = require "oneencoder.core"
local S = require "oneencoder.serialize"

-- A toy frozen encoder, deterministic from the item's content (the file's bytes or the key):
-- item length = #content % 5 + 1, value[l][k] from a hash; positions past the length hold 99
-- (garbage the cache must not keep). Shared as source so that a child process runs the same one.
local ENC_SRC = [[
local oe = require "oneencoder"
local D = ...
local function read(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function content(it) return it.path and read(it.path) or it.key end
local function value(c, l, k)
  local h = 0
  for i = 1, #c do h = (h * 31 + c:byte(i)) % 1000003 end
  return ((h + l * 131 + k * 17) % 2001 - 1000) / 997
end
local function expected(it)
  local c = content(it)
  local n = #c % 5 + 1
  local rows = {}
  for l = 1, n do rows[l] = {} for k = 1, D do rows[l][k] = value(c, l, k) end end
  return rows, n
end
local function encoder(calls)
  return function(list)
    local x, lens, Lmax = {}, {}, 1
    for b, it in ipairs(list) do
      if calls then calls[it.key] = (calls[it.key] or 0) + 1; calls.n = (calls.n or 0) + 1 end
      local rows, n = expected(it)
      lens[b] = n
      x[b] = rows
      Lmax = math.max(Lmax, n)
    end
    for b = 1, #list do
      for l = lens[b] + 1, Lmax do x[b][l] = {} for k = 1, D do x[b][l][k] = 99 end end
    end
    return oe.tensor(x), lens
  end
end
return { encoder = encoder, expected = expected }
]]
local D = 6
local toy = load(ENC_SRC)(D)

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  return d .. "_cache"
end
local function write(path, s) local f = assert(io.open(path, "wb")); f:write(s); f:close() end
local function rm_rf(d) os.execute("rm -rf '" .. d .. "'") end
local function count(calls) local n = 0 for k, v in pairs(calls) do if k ~= "n" then n = n + 1 end end return n end

-- check every item of a set against the toy encoder, exactly (float32) or to float16
local function check_set(set, items, f16)
  assert.are.equal(#items, set:size())
  assert.are.equal(D, set:dim())
  local ids = {}
  for i = 1, #items do ids[i] = i end
  local x, lens = set:batch(ids)
  local s = core.shape(x)
  local Lmax = 0
  for i, it in ipairs(items) do
    local rows, n = toy.expected(it)
    assert.are.equal(n, lens[i])
    Lmax = math.max(Lmax, n)
    for l = 1, s[2] do
      for k = 1, D do
        local got = core.get(x, i, l, k)
        if l > n then
          assert.are.equal(0, got)
        else
          local want = string.unpack("<f", string.pack("<f", rows[l][k]))
          if f16 then want = core.st_f16_value(core.st_f16_bits(want)) end
          assert.are.equal(want, got)
        end
      end
    end
  end
  assert.are.same({ #items, Lmax, D }, s)
end

describe("feature cache", function()
  local dir, files, items
  before_each(function()
    dir = tmpdir()
    core.fs_mkdir(dir .. "_in")
    files, items = {}, {}
    for i = 1, 9 do
      files[i] = string.format("%s_in/f%d.bin", dir, i)
      write(files[i], string.rep("x", i) .. "content " .. i)
      items[i] = { key = "item" .. i, path = files[i] }
    end
  end)
  after_each(function() rm_rf(dir); rm_rf(dir .. "_in") end)

  it("encodes each item once, stores true lengths, reads back exactly (mmap, pread, memory)", function()
    local calls = {}
    local c = oe.cache.open(dir, { encoder_id = "toy-1", shard_items = 4 })
    local st = c:build(items, toy.encoder(calls), { batch = 3 })
    assert.are.equal(9, st.computed)
    assert.are.equal(0, st.hits)
    assert.are.equal(3, st.shards_written)      -- 4 + 4 + 1 items
    assert.are.equal(9, calls.n)
    for i = 1, 9 do assert.are.equal(1, calls["item" .. i]) end
    for _, mode in ipairs({ "mmap", "pread", "memory" }) do
      local c2 = oe.cache.open(dir, { encoder_id = "toy-1", read = mode, lru_shards = 1 })
      check_set(c2:feature_set(items), items)
      -- a batch in another order, across shards, and the same as an in-memory FeatureSet
      local set = c2:feature_set({ "item9", "item2", "item5" })
      local x, lens = set:batch({ 3, 1, 2, 1 })
      local want = toy.encoder()({ items[5], items[9], items[2], items[9] })
      local fs = oe.data.FeatureSet(want, { lens[1], lens[2], lens[3], lens[4] })
      local y = fs:batch({ 1, 2, 3, 4 })
      assert.are.same(core.shape(y), core.shape(x))
      assert.is_true(core.all_finite(x))
      for b = 1, 4 do for l = lens[b] + 1, core.shape(x)[2] do for k = 1, D do core.set(y, 0, b, l, k) end end end
      assert.are.same(core.totable(y), core.totable(x))
    end
    -- the stored rows are ragged: T = sum of lengths, no padding on disk
    local total = 0
    for i = 1, 9 do total = total + select(2, toy.expected(items[i])) end
    local T = 0
    for _, rec in ipairs(c.shards) do T = T + S.header(dir .. "/" .. rec.file).feats.shape[1] end
    assert.are.equal(total, T)
  end)

  it("recomputes only items whose file content, mtime or version changed, or for another encoder", function()
    local calls = {}
    local c = oe.cache.open(dir, { encoder_id = "toy-1", shard_items = 4 })
    c:build(items, toy.encoder(calls), { batch = 4 })
    calls = {}
    local st = oe.cache.open(dir, { encoder_id = "toy-1" }):build(items, toy.encoder(calls))
    assert.are.equal(0, calls.n or 0)
    assert.are.equal(9, st.hits)
    -- content (size changes), mtime only (same bytes), version
    write(files[2], "new content, longer than before")
    os.execute("touch -d '2001-02-03 04:05:06' '" .. files[7] .. "'")
    items[4].version = "v2"
    calls = {}
    c = oe.cache.open(dir, { encoder_id = "toy-1", shard_items = 4 })
    assert.has_error(function() c:feature_set({ items[2] }) end,
      "cache:feature_set: 'item2' is stale (its input or version changed; run cache:build)")
    st = c:build(items, toy.encoder(calls))
    assert.are.same({ item2 = 1, item7 = 1, item4 = 1, n = 3 }, calls)
    assert.are.equal(6, st.hits)
    check_set(c:feature_set(items), items)
    -- another encoder id: everything once; the first encoder's entries stay valid
    calls = {}
    local c2 = oe.cache.open(dir, { encoder_id = "toy-2" })
    assert.has_error(function() c2:feature_set({ "item1" }) end,
      "cache:feature_set: 'item1' is not in the cache for encoder 'toy-2' (run cache:build first)")
    c2:build(items, toy.encoder(calls))
    assert.are.equal(9, calls.n)
    calls = {}
    oe.cache.open(dir, { encoder_id = "toy-1" }):build(items, toy.encoder(calls))
    assert.are.equal(0, calls.n or 0)
    -- a shard whose every row was superseded is removed
    local names = core.fs_listdir(dir)
    local shards = 0
    for _, n in ipairs(names) do if n:match("^shard%-") then shards = shards + 1 end end
    assert.are.equal(#oe.cache.open(dir, { encoder_id = "toy-1" }).shards + #c2.shards, shards)
  end)

  it("sha256 identity ignores mtime, sees same-size content changes", function()
    local calls = {}
    local c = oe.cache.open(dir, { encoder_id = "toy", identity = "sha256" })
    c:build(items, toy.encoder(calls))
    local p = io.popen("sha256sum '" .. files[3] .. "'")
    local want = p:read("a"):match("^(%x+)")
    p:close()
    assert.are.equal(want, (core.fs_sha256(files[3])))
    assert.are.equal("sha256:" .. want .. ":" .. #("xxx" .. "content 3"), c:item_identity(items[3]))
    os.execute("touch -d '2001-02-03 04:05:06' '" .. files[3] .. "'")
    -- same size, same mtime as before, different bytes: only the content hash sees it
    local st = core.fs_stat(files[5])
    write(files[5], "XXXXXcontent 5")
    os.execute(string.format("touch -d @%d.%09d '%s'", st.mtime, st.mtime_ns, files[5]))
    assert.are.equal(st.mtime_ns, core.fs_stat(files[5]).mtime_ns)
    calls = {}
    c:build(items, toy.encoder(calls))
    assert.are.same({ item5 = 1, n = 1 }, calls)
    check_set(c:feature_set(items), items)
  end)

  it("an error thrown by encode_fn leaves only complete shards; the next build computes the rest", function()
    local calls, n = {}, 0
    local enc = toy.encoder(calls)
    local c = oe.cache.open(dir, { encoder_id = "toy", shard_items = 2 })
    assert.has_error(function()
      c:build(items, function(list)
        n = n + 1
        if n == 4 then error("killed", 0) end
        return enc(list)
      end, { batch = 2 })
    end, "killed")
    assert.are.equal(6, calls.n)  -- three batches of 2 before the failure
    local c2 = oe.cache.open(dir, { encoder_id = "toy" })
    assert.are.equal(0, #c2.problems)
    local todo, hits = c2:status(items)
    assert.are.equal(6, hits)
    assert.are.equal(3, #todo)
    calls = {}
    c2:build(items, toy.encoder(calls), { batch = 2 })
    assert.are.same({ item7 = 1, item8 = 1, item9 = 1, n = 3 }, calls)
    check_set(c2:feature_set(items), items)
  end)

  it("a process killed (SIGKILL) mid-build leaves a valid cache; leftovers are cleaned", function()
    local script = string.format([[
      local toy = load(%q)(%d)
      local oe = require "oneencoder"
      local c = oe.cache.open(%q, { encoder_id = "toy", shard_items = 2 })
      local items = {}
      for i = 1, 8 do items[i] = { key = "k" .. i } end
      local n, enc = 0, toy.encoder()
      c:build(items, function(list)
        n = n + 1
        if n == 3 then os.execute("kill -9 $PPID"); os.execute("sleep 5") end
        return enc(list)
      end, { batch = 2 })
    ]], ENC_SRC, D, dir)
    local path = dir .. "_child.lua"
    write(path, script)
    local ok = os.execute("lua5.4 '" .. path .. "' 2>/dev/null")
    os.remove(path)
    assert.is_falsy(ok)
    -- leftovers of killed writes: a temporary file and a shard no manifest names
    write(dir .. "/shard-000099-deadbeef.safetensors.tmp.123.abc", "partial")
    write(dir .. "/shard-000098-deadbeef.safetensors", "orphan")
    local keys = {}
    for i = 1, 8 do keys[i] = { key = "k" .. i } end
    local c = oe.cache.open(dir, { encoder_id = "toy" })
    local _, hits = c:status(keys)
    assert.are.equal(4, hits)      -- two complete shards of 2
    local calls = {}
    c:build(keys, toy.encoder(calls), { batch = 2 })
    assert.are.same({ k5 = 1, k6 = 1, k7 = 1, k8 = 1, n = 4 }, calls)
    check_set(c:feature_set(keys), keys)
    for _, name in ipairs(core.fs_listdir(dir)) do
      assert.is_nil(name:match("deadbeef"))
    end
  end)

  it("detects a corrupted or truncated shard and rebuilds exactly its items", function()
    local calls = {}
    local c = oe.cache.open(dir, { encoder_id = "toy", shard_items = 3 })
    c:build(items, toy.encoder(calls), { batch = 3 })
    local rec1, rec2 = c.shards[1], c.shards[2]
    -- header garbage (same size) in shard 1, truncation of shard 2
    local p1, p2 = dir .. "/" .. rec1.file, dir .. "/" .. rec2.file
    local f = assert(io.open(p1, "r+b")); f:write("\255\255\255\255\255\255\255\255"); f:close()
    local f2 = assert(io.open(p2, "rb")); local bytes = f2:read("a"); f2:close()
    write(p2, bytes:sub(1, #bytes - 10))
    local c2 = oe.cache.open(dir, { encoder_id = "toy" })
    assert.are.equal(2, #c2.problems)
    assert.truthy(c2.problems[1].msg:find(rec1.file, 1, true))
    assert.truthy(c2.problems[2].msg:find("bytes on disk", 1, true))
    assert.has_error(function() c2:feature_set({ "item1" }) end)
    calls = {}
    local st = c2:build(items, toy.encoder(calls), { batch = 3 })
    assert.are.same({ item1 = 1, item2 = 1, item3 = 1, item4 = 1, item5 = 1, item6 = 1, n = 6 }, calls)
    assert.are.equal(2, st.shards_removed)
    local c3 = oe.cache.open(dir, { encoder_id = "toy" })
    assert.are.equal(0, #c3.problems)
    check_set(c3:feature_set(items), items)
    -- a shard truncated under an open feature set: an error, not a crash
    local set = c3:feature_set(items)
    local victim = dir .. "/" .. c3.index.item1.shard.file
    local f3 = assert(io.open(victim, "r+b")); f3:seek("set", 0); local head = f3:read(16); f3:close()
    write(victim, head)
    local ok, err = pcall(set.batch, set, { 1 })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("changed size on disk", 1, true))
  end)

  -- ---- shard contents (checksums) ----
  -- absolute byte range of tensor `name` in a safetensors file
  local function tensor_range(path, name)
    local f = assert(io.open(path, "rb")); local n = string.unpack("<I8", f:read(8)); f:close()
    local off = S.header(path)[name].data_offsets
    return 8 + n + off[1], 8 + n + off[2]   -- first byte (0-based), end
  end
  local function patch(path, pos, bytes)    -- overwrite in place, same size
    local f = assert(io.open(path, "r+b")); f:seek("set", pos); f:write(bytes); f:close()
  end
  local function read_all(path) local f = assert(io.open(path, "rb")); local b = f:read("a"); f:close(); return b end
  -- build 9 items in shards of 3, damage the shard holding item4 with fn(path), then: every read
  -- mode refuses it, the other shards still read, and one build recomputes exactly its 3 items
  local function damaged_shard_case(fn)
    local c = oe.cache.open(dir, { encoder_id = "toy", shard_items = 3 })
    c:build(items, toy.encoder(), { batch = 3 })
    local rec = c.index.item4.shard
    local path = dir .. "/" .. rec.file
    local size = #read_all(path)
    fn(path)
    assert.are.equal(size, #read_all(path))  -- same size: the manifest's size check cannot see it
    for _, mode in ipairs({ "mmap", "pread", "memory" }) do
      local c2 = oe.cache.open(dir, { encoder_id = "toy", read = mode })
      assert.are.equal(0, #c2.problems)      -- the header still validates
      local ok, err = pcall(c2.feature_set, c2, { "item4" })
      assert.is_false(ok, mode .. ": the damaged shard was served")
      assert.truthy(tostring(err):find(rec.file, 1, true), tostring(err))
      assert.truthy(tostring(err):find("run cache:build", 1, true), tostring(err))
      check_set(c2:feature_set({ items[1], items[8] }), { items[1], items[8] })
    end
    local calls = {}
    local c3 = oe.cache.open(dir, { encoder_id = "toy" })
    local st = c3:build(items, toy.encoder(calls), { batch = 3 })
    assert.are.same({ item4 = 1, item5 = 1, item6 = 1, n = 3 }, calls)
    assert.are.equal(6, st.hits)
    assert.are.equal(1, st.shards_removed)
    assert.truthy(c3.problems[1].msg:find(rec.file, 1, true))
    -- repaired: every mode reads everything exactly, and the next build has nothing to do
    for _, mode in ipairs({ "mmap", "pread", "memory" }) do
      check_set(oe.cache.open(dir, { encoder_id = "toy", read = mode }):feature_set(items), items)
    end
    calls = {}
    st = oe.cache.open(dir, { encoder_id = "toy" }):build(items, toy.encoder(calls))
    assert.are.equal(9, st.hits)
    assert.are.equal(0, calls.n or 0)
    assert.is_nil(io.open(path, "rb"))
  end

  it("records the XXH3-64 of every shard in the manifest", function()
    write(dir .. "_in/empty", "")
    write(dir .. "_in/abc", "abc")
    -- reference values: XXH3_64bits("") from xxHash's documentation, "abc" from xxhsum -H3
    assert.are.same({ "2d06800538d394c2", 0 }, { core.fs_xxh3(dir .. "_in/empty") })
    assert.are.same({ "78af5f94892f3950", 3 }, { core.fs_xxh3(dir .. "_in/abc") })
    -- the same hash of a string in memory
    assert.are.equal("2d06800538d394c2", core.xxh3(""))
    assert.are.equal("78af5f94892f3950", core.xxh3("abc"))
    local c = oe.cache.open(dir, { encoder_id = "toy", shard_items = 4 })
    c:build(items, toy.encoder())
    local _, meta = S.header(dir .. "/manifest.safetensors")
    local n = 0
    for line in meta.shards:gmatch("[^\n]+") do
      local f = {}
      for x in (line .. "\t"):gmatch("(.-)\t") do f[#f + 1] = x end
      assert.are.equal(6, #f)
      assert.are.equal((core.fs_xxh3(dir .. "/" .. f[1])), f[6])
      n = n + 1
    end
    assert.are.equal(3, n)
  end)

  it("refuses a shard whose feature bytes were flipped (same size) and rebuilds its items", function()
    damaged_shard_case(function(path)
      local first = tensor_range(path, "feats")
      local b = read_all(path):sub(first + 5, first + 8)
      patch(path, first + 4, b:gsub(".", function(ch) return string.char(ch:byte() ~ 0x40) end))
    end)
  end)

  it("refuses a shard whose lengths table had two entries swapped (same sum) and rebuilds its items", function()
    damaged_shard_case(function(path)
      local first, stop = tensor_range(path, "lengths")
      local lens = read_all(path):sub(first + 1, stop)
      assert.are.equal(12, #lens)          -- three int32 lengths: 4, 5, 1 for items 4, 5, 6
      assert.are_not.equal(lens:sub(1, 4), lens:sub(5, 8))
      patch(path, first, lens:sub(5, 8) .. lens:sub(1, 4))
    end)
  end)

  it("refuses a shard truncated and re-extended in place (zeros) and rebuilds its items", function()
    damaged_shard_case(function(path)
      local bytes = read_all(path)
      local first = tensor_range(path, "feats")
      local keep = first + 8
      local f = assert(io.open(path, "r+b")); f:seek("set", keep); f:write(string.rep("\0", #bytes - keep)); f:close()
    end)
  end)

  it("treats a shard without a checksum (an older manifest) as damaged", function()
    local c = oe.cache.open(dir, { encoder_id = "toy", shard_items = 5 })
    c:build(items, toy.encoder())
    local mpath = dir .. "/manifest.safetensors"
    local _, meta = S.header(mpath)
    local old = meta.shards:gsub("\t%x+\n", "\n"):gsub("\t%x+$", "")  -- the five fields of before
    assert.is_nil(old:find("\t%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x"))
    assert(S.save(mpath, {}, { format = meta.format, shards = old }))
    local c2 = oe.cache.open(dir, { encoder_id = "toy" })
    assert.are.equal(2, #c2.problems)
    assert.truthy(c2.problems[1].msg:find("no content checksum", 1, true))
    local calls = {}
    c2:build(items, toy.encoder(calls))
    assert.are.equal(9, calls.n)
    check_set(oe.cache.open(dir, { encoder_id = "toy" }):feature_set(items), items)
  end)

  it("float16 halves the size on disk and keeps values to float16 precision", function()
    local big = {}
    for i = 1, 9 do big[i] = items[i] end
    local D2 = 64
    local toy2 = load(ENC_SRC)(D2)
    local c32 = oe.cache.open(dir .. "/f32", { encoder_id = "toy" })
    local c16 = oe.cache.open(dir .. "/f16", { encoder_id = "toy", dtype = "float16" })
    c32:build(big, toy2.encoder())
    c16:build(big, toy2.encoder())
    local ratio = c16:bytes() / c32:bytes()
    assert.is_true(ratio > 0.5 and ratio < 0.56, "ratio " .. ratio)
    local ids = {}
    for i = 1, 9 do ids[i] = i end
    local x32 = c32:feature_set(big):batch(ids)
    local x16 = c16:feature_set(big):batch(ids)
    local a, b = core.totable(x32), core.totable(x16)
    local worst = 0
    for i = 1, #a do for l = 1, #a[i] do for k = 1, D2 do
      local want = core.st_f16_value(core.st_f16_bits(a[i][l][k]))
      assert.are.equal(want, b[i][l][k])
      if a[i][l][k] ~= 0 then worst = math.max(worst, math.abs(b[i][l][k] - a[i][l][k]) / math.abs(a[i][l][k])) end
    end end end
    assert.is_true(worst <= 2 ^ -11, "relative error " .. worst)
    assert.is_true(worst > 0)
  end)

  it("rejects bad input with clear messages", function()
    local c = oe.cache.open(dir, { encoder_id = "toy" })
    assert.has_error(function() oe.cache.open(dir, {}) end,
      "cache.open: opts.encoder_id must be a non-empty string naming the encoder (and its weights)")
    assert.has_error(function() oe.cache.open(dir, { encoder_id = "x", dtype = "int8" }) end,
      "cache.open: dtype must be 'float16' or 'float32', got int8")
    assert.has_error(function() c:build({ { key = "a" }, { key = "a" } }, toy.encoder()) end,
      "cache:build: key 'a' appears twice (items 1 and 2)")
    assert.has_error(function() c:build({ { key = "a", path = dir .. "/nope" } }, toy.encoder()) end)
    assert.has_error(function() c:build({ { key = "a" } }, function() return oe.zeros(2, 3, D), { 3, 3 } end) end,
      "cache:build: encode_fn returned 2 rows for 1 items")
    assert.has_error(function() c:build({ { key = "a" } }, function() return oe.zeros(1, 3, D), { 4 } end) end,
      "cache:build: length 4 of item 'a' is outside 1..3")
    assert.has_error(function() c:build({ { key = "a" } }, function() return oe.full({ 1, 2, D }, 0 / 0) end) end,
      "cache:build: encode_fn returned NaN or Inf for one of the items a .. a")
    local c16 = oe.cache.open(dir .. "/h", { encoder_id = "toy", dtype = "float16" })
    assert.has_error(function() c16:build({ { key = "a" } }, function() return oe.full({ 1, 2, D }, 1e5) end) end,
      "cache: features reach 100000, outside the float16 range (65504); use dtype = 'float32'")
    c:build({ { key = "a" } }, function() return oe.ones(1, 2, D) end)
    assert.has_error(function() c:build({ { key = "b" } }, function() return oe.ones(1, 2, D + 1) end) end,
      "cache:build: encode_fn returned dim 7, this encoder's cache holds dim 6")
    local set = c:feature_set({ "a" })
    assert.has_error(function() set:batch({ 2 }) end, "cache feature set: item 2 outside 1..1")
    -- a second builder waits for nobody: the lock is reported
    local lock = core.fs_lock(dir .. "/.lock")
    assert.has_error(function() c:build({ { key = "z" } }, toy.encoder()) end,
      "cache:build: " .. dir .. "/.lock: locked by another process (a build is running)")
    lock:release()
    -- nothing above damaged the cache
    local c2 = oe.cache.open(dir, { encoder_id = "toy" })
    assert.are.equal(0, #c2.problems)
    assert.are.same({ "a" }, c2:keys())
  end)
end)
