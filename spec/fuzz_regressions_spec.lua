-- fuzz_regressions_spec.lua: defects found by the libFuzzer harnesses (fuzz/, scripts/fuzz.sh),
-- each reproduced through the Lua API. The inputs the fuzzers found are in spec/fixtures/fuzz/.
local oe = require "oneencoder"
local core = require "oneencoder.core"
local S = require "oneencoder.serialize"

local FIX = "spec/fixtures/fuzz/"
local function read(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end

describe("fuzz regressions: JPEG", function()
  -- image_fuzz: a JPEG whose data gives a libjpeg warning and then a fatal error ("two SOI
  -- markers") was decoded "successfully" with pixels never written (old heap bytes):
  -- TurboJPEG 2.x reports a fatal error after a warning with the warning code.
  local path = FIX .. "jpeg_fatal_after_warning.jpg"
  it("refuses a JPEG whose decoding stops at a fatal error after a warning (every option set)", function()
    for _, opts in ipairs({ {}, { exif = false }, { scale = 2 }, { scale = 8, keep_alpha = true }, { exif = false, scale = 4 } }) do
      local t, msg = oe.image.load(path, opts)
      assert.is_nil(t)
      assert.matches("corrupt JPEG data: Invalid JPEG file structure: two SOI markers", msg, 1, true)
      assert.matches("jpeg_fatal_after_warning.jpg", msg, 1, true)
    end
    local t, msg = oe.image.decode(read(path))
    assert.is_nil(t)
    assert.matches("two SOI markers", msg, 1, true)
  end)
  it("still decodes JPEGs with mere warnings (extraneous bytes) to the same pixels as a clean copy", function()
    local clean = read("spec/fixtures/image/baseline.jpg")
    -- 4 junk bytes before EOI: libjpeg warns "4 extraneous bytes before marker 0xd9" after the last row
    local warned = clean:sub(1, -3) .. "\1\2\3\4" .. clean:sub(-2)
    local a = assert(oe.image.decode(clean))
    local b = assert(oe.image.decode(warned))
    assert.are.same(core.shape(a), core.shape(b))
    assert.are.same(core.totable(a), core.totable(b))
  end)
end)

describe("fuzz regressions: the cache manifest", function()
  -- cache_manifest_fuzz: damaged "shards" lines in manifest.safetensors made cache.open or
  -- cache:build raise (a Lua error instead of a listed problem), and build failed again on
  -- every run, so the cache could never be repaired.
  local FORMAT = "oneencoder-cache-1"
  local function tmpdir() local d = os.tmpname(); os.remove(d); return d .. "_fuzzreg" end
  local function encode(list) local x = core.zeros({ #list, 2, 3 }); core.fill_(x, 0.25); return x end
  local items = { { key = "a" }, { key = "b" } }
  local function cache_with_manifest(edit)
    local dir = tmpdir()
    local c = oe.cache.open(dir, { encoder_id = "enc" })
    c:build(items, encode)
    local mpath = dir .. "/manifest.safetensors"
    local _, meta = assert(S.header(mpath))
    assert(S.save(mpath, {}, { format = FORMAT, shards = edit(meta.shards) }))
    return dir
  end
  -- build a, b and a new item c (so a shard and the manifest are written), then read all three
  local function rebuilt_reads(dir)
    local c = oe.cache.open(dir, { encoder_id = "enc" })
    local more = { items[1], items[2], { key = "c" } }
    local stats = c:build(more, encode)
    local c2 = oe.cache.open(dir, { encoder_id = "enc" })
    local todo = c2:status(more)
    assert.are.equal(0, #todo)
    local x, lens = c2:feature_set({ "a", "b", "c" }):batch({ 1, 2, 3 })
    assert.are.same({ 3, 2, 3 }, core.shape(x))
    assert.are.same({ 2, 2, 2 }, lens)
    os.execute("rm -rf '" .. dir .. "'")
    return c, stats
  end

  it("a line with fewer than three fields: open lists nothing wrong for this encoder, build works", function()
    local dir = cache_with_manifest(function(s) return s .. "\n\t" end)
    local c, stats = rebuilt_reads(dir) -- raised "invalid value (nil) at index 3 in table for 'concat'"
    assert.are.equal(2, stats.hits)
    assert.are.equal(1, stats.computed)
    assert.are.equal(0, #c.problems)
  end)
  it("a checksum that is hex but not 16 lowercase digits: a problem, and build recomputes the items", function()
    for _, bad in ipairs({ "ABCDEF0123456789", "abc", "0123456789abcdef0" }) do
      local dir = cache_with_manifest(function(s) return (s:gsub("%x+$", bad)) end)
      local c = oe.cache.open(dir, { encoder_id = "enc" })
      assert.are.equal(1, #c.problems)
      assert.matches("no content checksum", c.problems[1].msg, 1, true)
      local _, stats = rebuilt_reads(dir) -- raised "featmap_open: checksum must be 16 lowercase hex digits"
      assert.are.equal(3, stats.computed)
    end
  end)
  it("a size field that is not an integer: a problem naming it, and build recomputes the items", function()
    local dir = cache_with_manifest(function(s) return (s:gsub("\t(%d+)\t(%x+)$", "\t12x\t%2")) end)
    local c = oe.cache.open(dir, { encoder_id = "enc" }) -- raised "bad argument #4 to 'format' (number expected, got nil)"
    assert.are.equal(1, #c.problems)
    assert.matches("bytes on disk, the manifest recorded nil", c.problems[1].msg, 1, true)
    local _, stats = rebuilt_reads(dir)
    assert.are.equal(3, stats.computed)
  end)
end)

describe("fuzz regressions: ONNX", function()
  -- onnx_fuzz: a Split whose "split" initializer holds a size past the axis (16777217 for an
  -- axis of 6) freed the sizes and then read the bad one for the message (heap use after free
  -- in split_infer: the message showed whatever the freed memory held).
  it("names the bad split size of a Split node without reading freed memory", function()
    local path = FIX .. "onnx_split_size_use_after_free.onnx"
    local m = assert(oe.onnx.load(path))
    local ok, msg = pcall(function() return m:run(core.zeros({ 2, 6, 3 })) end)
    assert.is_false(ok)
    assert.matches(path .. ": node 'split_0' (Split): split size 16777217 is outside 0..6", msg, 1, true)
  end)
end)

describe("fuzz regressions: ONNX Slice steps", function()
  -- onnx_fuzz: a Slice step near 2^63 (7596446671467184129 on an axis where it keeps one
  -- element) overflowed int64 when multiplied into the strides (UBSan: signed overflow in
  -- slice_run), and steps near +-2^63 overflowed the element count. The count is now computed
  -- on the step's magnitude as unsigned and a one-element slice keeps step 1.
  it("slices with a step near 2^63 as with any step past the axis (one element kept)", function()
    local m = assert(oe.onnx.load(FIX .. "onnx_slice_huge_step.onnx"))
    -- starts {1, 0}, ends {3, 4}, axes {0, 2}, steps {7596446671467184129, 2} on x (2, 3, 4, 5)
    local x = oe.arange(120):reshape({ 2, 3, 4, 5 })
    local y = m:run(x).y
    assert.are.same({ 1, 3, 2, 5 }, core.shape(y))
    local t = core.totable(y)
    for j = 1, 3 do
      for k = 1, 2 do
        for l = 1, 5 do -- y[0, j, k, l] = x[1, j, 2k, l] (0-based), x[i, j, k, l] = 60i + 20j + 5k + l
          assert.are.equal(60 + 20 * (j - 1) + 5 * 2 * (k - 1) + (l - 1), t[1][j][k][l])
        end
      end
    end
  end)
  it("counts the elements of steps INT64_MAX and INT64_MIN without overflow", function()
    -- tools/gen_onnx_slice_steps.py: starts {0, 3}, ends {3, -10}, axes {1, 2},
    -- steps {INT64_MAX, INT64_MIN} on x (2, 3, 4, 5): y = x[:, 0:1, 3:4, :]
    local m = assert(oe.onnx.load(FIX .. "onnx_slice_step_extremes.onnx"))
    local y = m:run(oe.arange(120):reshape({ 2, 3, 4, 5 })).y
    assert.are.same({ 2, 1, 1, 5 }, core.shape(y))
    local t = core.totable(y)
    for i = 1, 2 do
      for l = 1, 5 do assert.are.equal(60 * (i - 1) + 15 + (l - 1), t[i][1][1][l]) end
    end
  end)
end)

describe("fuzz regressions: ONNX initializer sizes", function()
  -- onnx_fuzz: a 308-byte model declaring a (2113861630) float initializer with 144 bytes of
  -- raw_data allocated the declared 8.4 GB before comparing it with the data present. The
  -- loader now refuses the mismatch first. Run in a child under `ulimit -v` (2 GB) so that
  -- the old order fails ("out of memory") instead of succeeding on an overcommitting machine.
  it("refuses an initializer whose data does not match its shape before allocating it", function()
    local H = require "helpers"
    local path = FIX .. "onnx_initializer_declared_8gb.onnx"
    local limit = os.getenv("OE_SANITIZE") and "" or "ulimit -v 2097152; "
    local script = string.format("local m, msg = require('oneencoder').onnx.load(%q) io.write(tostring(m), '\\t', msg)", path)
    local p = assert(io.popen(limit .. H.lua_cmd() .. " -e " .. string.format("%q", script) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    assert.matches("^nil\t" .. path:gsub("%p", "%%%0") .. ": initializer 'w': raw_data holds 144 bytes, 2113861630 FLOAT elements need 8455446520", out)
  end)
end)
