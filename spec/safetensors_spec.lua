-- safetensors reader/writer: round trips, fixtures written by an independent
-- implementation (tools/make_safetensors_fixtures.py), half-precision bit
-- patterns worked by hand, every kind of bad file, crash-safe saving.
local oe = require "oneencoder"
local core = oe.core
local S = require "oneencoder.serialize"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
local FIX = here .. "/fixtures/safetensors/"

local function read_bytes(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function write_bytes(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end
-- a safetensors file from a header string and raw data
local function st_bytes(header, data) return string.pack("<I8", #header) .. header .. (data or "") end
local function f32s(...)
  local t = {}
  for i, v in ipairs({ ... }) do t[i] = string.pack("<f", v) end
  return table.concat(t)
end
local function f32(x) return (string.unpack("<f", string.pack("<f", x))) end
local function u32bits(x) return (string.unpack("<I4", string.pack("<f", x))) end
local function listdir(d)
  local p = io.popen('ls -A "' .. d .. '"')
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  table.sort(out)
  return out
end
local function flat(t)
  local out = {}
  local function go(v)
    if type(v) == "table" then for _, x in ipairs(v) do go(x) end else out[#out + 1] = v end
  end
  go(t:totable())
  return out
end
local inf = math.huge

local dir
local function tmp(name) return dir .. "/" .. name end

setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute('mkdir -p "' .. dir .. '"'))
end)
teardown(function()
  os.execute('chmod -R u+w "' .. dir .. '" 2>/dev/null; rm -rf "' .. dir .. '"')
end)

describe("safetensors half-precision conversion", function()
  it("encodes float16 bit patterns worked by hand", function()
    local cases = {
      { 1.0, 0x3C00 }, { -2.0, 0xC000 }, { 65504, 0x7BFF }, { 2 ^ -24, 0x0001 }, { 2 ^ -14, 0x0400 },
      { 1023 * 2 ^ -24, 0x03FF }, { 0.5, 0x3800 }, { 0.0, 0x0000 }, { -0.0, 0x8000 }, { inf, 0x7C00 },
      { -inf, 0xFC00 }, { 65520, 0x7C00 }, { 1e10, 0x7C00 }, { 2 ^ -25, 0x0000 }, { 1.5 * 2 ^ -25, 0x0001 },
      { 1 + 2 ^ -11, 0x3C00 }, { 1 + 3 * 2 ^ -11, 0x3C02 }, { 2 ^ -14 - 2 ^ -25, 0x0400 },
    }
    for _, c in ipairs(cases) do
      assert.are.equal(c[2], core.st_f16_bits(c[1]), string.format("f16 bits of %.17g", c[1]))
    end
    local nan = core.st_f16_bits(0 / 0) & 0x7FFF
    assert.is_true(nan > 0x7C00, "nan stays nan")
  end)

  it("decodes float16 bit patterns, subnormals, inf and nan", function()
    assert.are.equal(1.0, core.st_f16_value(0x3C00))
    assert.are.equal(-2.0, core.st_f16_value(0xC000))
    assert.are.equal(65504, core.st_f16_value(0x7BFF))
    assert.are.equal(2 ^ -24, core.st_f16_value(0x0001))
    assert.are.equal(1023 * 2 ^ -24, core.st_f16_value(0x03FF))
    assert.are.equal(2 ^ -14, core.st_f16_value(0x0400))
    assert.are.equal(inf, core.st_f16_value(0x7C00))
    assert.are.equal(-inf, core.st_f16_value(0xFC00))
    local n = core.st_f16_value(0x7E00)
    assert.is_true(n ~= n)
    assert.are.equal(-inf, 1 / core.st_f16_value(0x8000))
    -- every finite half survives half -> float -> half
    for h = 0, 0xFFFF do
      if (h & 0x7C00) ~= 0x7C00 then
        local v = core.st_f16_value(h)
        if core.st_f16_bits(v) ~= h then error(string.format("0x%04X -> %.17g -> 0x%04X", h, v, core.st_f16_bits(v))) end
      end
    end
  end)

  it("encodes and decodes bfloat16 (round to nearest even)", function()
    assert.are.equal(0x3F80, core.st_bf16_bits(1.0))
    assert.are.equal(0xC000, core.st_bf16_bits(-2.0))
    assert.are.equal(0x7F80, core.st_bf16_bits(inf))
    assert.are.equal(0x3F80, core.st_bf16_bits(1 + 2 ^ -8))        -- tie, to even
    assert.are.equal(0x3F82, core.st_bf16_bits(1 + 3 * 2 ^ -8))    -- tie, to even (up)
    assert.are.equal(0x3F81, core.st_bf16_bits(1 + 2 ^ -8 + 2 ^ -20)) -- above the tie
    assert.are.equal(0x7F80, core.st_bf16_bits(3.4e38))             -- rounds past the largest bf16
    assert.are.equal(1.0, core.st_bf16_value(0x3F80))
    assert.are.equal(2 ^ -133, core.st_bf16_value(0x0001))
    local n = core.st_bf16_value(core.st_bf16_bits(0 / 0))
    assert.is_true(n ~= n)
  end)
end)

describe("safetensors files written by the independent Python writer", function()
  it("reads every dtype with exact values and the metadata", function()
    local t, meta = oe.load(FIX .. "dtypes.safetensors")
    assert.is_table(t, meta)
    assert.are.same({ format = "pt", note = 'fixture "quoted" é\n\ttab' }, meta)
    assert.are.equal("float32", t.f32:dtype())
    assert.are.same({ 2, 3 }, t.f32:shape())
    assert.are.same({ { 0, 1, -2.5 }, { 3.25, 0.15625, -1048576 } }, t.f32:totable())

    local h = flat(t.f16)
    assert.are.equal("float32", t.f16:dtype())
    local want = { 1, -2, 65504, 2 ^ -24, 1023 * 2 ^ -24, 2 ^ -14, inf, -inf }
    for i, w in ipairs(want) do assert.are.equal(w, h[i], "f16 element " .. i) end
    assert.is_true(h[9] ~= h[9], "f16 nan")
    assert.are.equal(0, h[10]); assert.are.equal(-inf, 1 / h[10])
    assert.are.equal(0.333251953125, h[11])
    assert.are.equal(0.5, h[12])

    local b = flat(t.bf16)
    local wb = { 1, -2, 3.3895313892515355e38, 2 ^ -133, inf, -inf }
    for i, w in ipairs(wb) do assert.are.equal(w, b[i], "bf16 element " .. i) end
    assert.is_true(b[7] ~= b[7], "bf16 nan")
    assert.are.equal(0.333984375, b[8])

    assert.are.equal("float32", t.f64:dtype())
    assert.are.same({ { f32(0.1), -3 }, { inf, 2 ^ -149 } }, t.f64:totable())
    assert.are.equal("int64", t.i64:dtype())
    assert.are.same({ -(1 << 62), 0, (1 << 53) + 1 }, t.i64:totable())
    assert.are.equal("int32", t.i32:dtype())
    assert.are.same({ { -2147483648, 2147483647 }, { 0, -1 } }, t.i32:totable())
    assert.are.equal("uint8", t.u8:dtype())
    assert.are.same({ 0, 1, 127, 255 }, t.u8:totable())
    assert.are.same({ -32768, 32767, -1 }, t.i16:totable()); assert.are.equal("int32", t.i16:dtype())
    assert.are.same({ -128, 127, 0 }, t.i8:totable()); assert.are.equal("int32", t.i8:dtype())
    assert.are.same({ 65535, 0 }, t.u16:totable())
    assert.are.same({ 4294967295 }, t.u32:totable()); assert.are.equal("int64", t.u32:dtype())
    assert.are.same({ 1, 0, 1 }, t.bool:totable()); assert.are.equal("uint8", t.bool:dtype())
    assert.are.same({}, t.scalar:shape()); assert.are.equal(42.5, t.scalar:item())
    assert.are.same({ 0, 3 }, t.empty:shape()); assert.are.equal(0, t.empty:numel())
    assert.are.same({ { 0, 0.25 }, { 0.5, 0.75 }, { 1, 1.25 } }, t["layer.0.weight"]:totable())
  end)

  it("inspects the header without loading data", function()
    local h, meta = oe.load_header(FIX .. "dtypes.safetensors")
    assert.are.equal("pt", meta.format)
    assert.are.same({ dtype = "F16", shape = { 12 }, data_offsets = { 144, 168 }, loads_as = "float32" }, h.f16)
    assert.are.same({ dtype = "I64", shape = { 3 }, data_offsets = { 0, 24 }, loads_as = "int64" }, h.i64)
    assert.are.same({}, h.scalar.shape)
    local n = 0
    for _ in pairs(h) do n = n + 1 end
    assert.are.equal(15, n)
  end)

  it("loads only the named tensors", function()
    local t, meta = S.load(FIX .. "dtypes.safetensors", { names = { "u8", "layer.0.weight" } })
    assert.are.same({ 0, 1, 127, 255 }, t.u8:totable())
    assert.are.same({ 3, 2 }, t["layer.0.weight"]:shape())
    assert.is_nil(t.f32)
    assert.are.equal("pt", meta.format)
    local none, msg = core.st_load_names(FIX .. "dtypes.safetensors", { "u8", "nope" })
    assert.is_nil(none)
    assert.matches("dtypes.safetensors: no tensor named 'nope'", msg, 1, true)
  end)

  it("writes byte for byte what the reference writer writes", function()
    local p = tmp("mixed.safetensors")
    local tensors = {
      ["z.weight"] = oe.tensor({ { 1, 2 }, { 3, 4 } }),
      ["a.bias"] = oe.tensor({ 0.5, -0.5 }),
      ids = oe.tensor({ 0, 5, 7 }, "int64"),
      mask = oe.tensor({ 1, 0 }, "uint8"),
      count = core.fill_(core.zeros({}, "int32"), 7),
      nothing = oe.zeros({ 0 }),
    }
    assert.is_true(oe.save(p, tensors, { name = "tiny", epoch = "3" }))
    assert.are.equal(read_bytes(FIX .. "reference_mixed.safetensors"), read_bytes(p))
    local q = tmp("attn.safetensors")
    assert.is_true(oe.save(q, { ["attn.0"] = oe.arange(0, 6):reshape({ 1, 2, 3 }) }))
    local ref = read_bytes(FIX .. "reference_no_metadata.safetensors")
    assert.are.equal(ref, read_bytes(q))
    assert.are.equal(64, string.unpack("<I8", ref)) -- the library's own test vector: 64-byte header
  end)

  it("rounds float32 to float16 and bfloat16 exactly like numpy / torch", function()
    local x = oe.load(FIX .. "rounding_f32.safetensors").x
    local p16, pb = tmp("r16.safetensors"), tmp("rb16.safetensors")
    assert.is_true(oe.save(p16, { x = x }, nil, { dtype = "float16" }))
    assert.are.equal(read_bytes(FIX .. "rounding_f16.safetensors"), read_bytes(p16))
    assert.is_true(oe.save(pb, { x = x }, nil, { dtype = "bfloat16" }))
    assert.are.equal(read_bytes(FIX .. "rounding_bf16.safetensors"), read_bytes(pb))
  end)
end)

describe("safetensors round trip", function()
  it("keeps every dtype and shape, including 0-d, empty and 8-d tensors", function()
    local special = string.pack("<I4I4I4I4I4I4", 0x7FC00000, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x7F7FFFFF)
    local tensors = {
      f = oe.from_bytes(special, "float32", { 2, 3 }),
      scalar = core.fill_(core.zeros({}), -1.25),
      empty = oe.zeros({ 0 }),
      empty3 = oe.zeros({ 2, 0, 3 }, "int64"),
      deep = oe.arange(0, 4):reshape({ 1, 1, 1, 2, 1, 1, 2, 1 }),
      i64 = oe.from_bytes(string.pack("<i8i8i8", math.mininteger, math.maxinteger, -1), "int64"),
      i32 = oe.tensor({ { -2147483648, 2147483647 } }, "int32"),
      u8 = oe.tensor({ 0, 255, 7 }, "uint8"),
      ["name with spaces/and.dots"] = oe.ones({ 1 }),
      ["ünï\"cödé\n"] = oe.ones({ 2 }),
    }
    local p = tmp("all.safetensors")
    assert.is_true(oe.save(p, tensors))
    local t, meta = oe.load(p)
    assert.are.same({}, meta)
    for name, v in pairs(tensors) do
      assert.is_not_nil(t[name], name)
      assert.are.equal(v:dtype(), t[name]:dtype(), name)
      assert.are.same(v:shape(), t[name]:shape(), name)
      assert.are.equal(v:to_bytes(), t[name]:to_bytes(), name)
    end
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    assert.are.equal(10, n)
    -- data starts at a multiple of 8
    local hl = string.unpack("<I8", read_bytes(p))
    assert.are.equal(0, hl % 8)
  end)

  it("keeps metadata strings, including empty, unicode and control characters", function()
    local meta = { [""] = "empty key", empty = "", uni = "日本語 ü", ctl = "a\0b\1\31\"\\/", json = '{"a": [1, 2]}' }
    local p = tmp("meta.safetensors")
    assert.is_true(oe.save(p, { x = oe.ones({ 1 }) }, meta))
    local _, m = oe.load(p)
    assert.are.same(meta, m)
    -- an empty metadata table is written as an empty object and read back as one
    assert.is_true(oe.save(p, { x = oe.ones({ 1 }) }, {}))
    assert.matches('{"__metadata__":{},"x"', read_bytes(p), 1, true)
    local _, m2 = oe.load(p)
    assert.are.same({}, m2)
  end)

  it("stores float32 as float16 or bfloat16 at half the size, leaving integer tensors alone", function()
    oe.manual_seed(3)
    local x = oe.randn({ 64, 33 })
    local ids = oe.tensor({ 1, 2, 3 }, "int64")
    local p32, p16, pb = tmp("x32.safetensors"), tmp("x16.safetensors"), tmp("xb.safetensors")
    assert.is_true(oe.save(p32, { x = x, ids = ids }))
    assert.is_true(oe.save(p16, { x = x, ids = ids }, nil, { dtype = "float16" }))
    assert.is_true(oe.save(pb, { x = x, ids = ids }, nil, { dtype = "bfloat16" }))
    local s32, s16 = #read_bytes(p32), #read_bytes(p16)
    assert.is_true(s16 < s32 * 0.52, "float16 file " .. s16 .. " vs " .. s32)
    assert.are.equal("F16", oe.load_header(p16).x.dtype)
    assert.are.equal("BF16", oe.load_header(pb).x.dtype)
    assert.are.equal("I64", oe.load_header(p16).ids.dtype)
    local a, b16, bb = flat(x), flat(oe.load(p16).x), flat(oe.load(pb).x)
    for i = 1, #a do
      assert.are.equal(core.st_f16_value(core.st_f16_bits(a[i])), b16[i])
      assert.are.equal(core.st_bf16_value(core.st_bf16_bits(a[i])), bb[i])
      assert.is_true(math.abs(b16[i] - a[i]) <= math.abs(a[i]) * 2 ^ -11 + 2 ^ -25)
      assert.is_true(math.abs(bb[i] - a[i]) <= math.abs(a[i]) * 2 ^ -8)
    end
    assert.are.same({ 1, 2, 3 }, oe.load(p16).ids:totable())
  end)
end)

describe("safetensors bad files", function()
  -- each case: file bytes, expected message fragment
  local function bad(name, bytes, fragment)
    local p = tmp(name)
    write_bytes(p, bytes)
    for _, fn in ipairs({ core.st_load, core.st_header }) do
      local t, msg = fn(p)
      assert.is_nil(t, name)
      assert.is_string(msg, name)
      assert.are.equal(p .. ": ", msg:sub(1, #p + 2), "message names the file: " .. msg)
      assert.matches(fragment, msg, 1, true)
    end
  end
  local hdr = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'

  it("reports a missing file and a folder", function()
    local t, msg = oe.load(tmp("does_not_exist.safetensors"))
    assert.is_nil(t)
    assert.matches("does_not_exist.safetensors: cannot open: No such file or directory", msg, 1, true)
    local t2, msg2 = oe.load(dir)
    assert.is_nil(t2)
    assert.matches(dir .. ": not a regular file", msg2, 1, true)
  end)

  it("reports an empty file and one shorter than 8 bytes", function()
    bad("empty.safetensors", "", "file is empty")
    bad("short.safetensors", "\1\0\0", "file is too short (3 bytes)")
  end)

  it("reports a header length larger than the file or the limit", function()
    bad("long.safetensors", st_bytes(hdr, f32s(1, 2)):sub(1, 8) .. "{}", "header length 54 is larger than the rest of the file (2 bytes)")
    bad("huge.safetensors", string.rep("\255", 8) .. "{}      ", "header length 18446744073709551615 is larger than the rest of the file")
    -- a sparse 150 MB file whose header length is over the 100 MB cap
    local p = tmp("cap.safetensors")
    local f = assert(io.open(p, "wb"))
    f:write(string.pack("<I8", 120000000))
    f:seek("set", 150000000)
    f:write(" ")
    f:close()
    local t, msg = oe.load(p)
    assert.is_nil(t)
    assert.matches(p .. ": header length 120000000 is over the 100000000-byte limit", msg, 1, true)
    os.remove(p)
  end)

  it("reports a header that is not JSON, not an object, or not valid UTF-8", function()
    bad("notjson.safetensors", st_bytes("{not json}   "), "header is not valid JSON: invalid JSON at byte 1: expected a string key")
    bad("trunc_json.safetensors", st_bytes('{"a":{"dtype":'), "unexpected end of input")
    bad("trailing.safetensors", st_bytes('{} x'), "unexpected data after the JSON value")
    bad("array.safetensors", st_bytes("[1, 2]  "), "header must be a JSON object, got an array")
    bad("string.safetensors", st_bytes('"ab"    '), "header must be a JSON object, got a string")
    bad("utf8.safetensors", st_bytes('{"\255":{}}'), "string is not valid UTF-8")
    bad("deep.safetensors", st_bytes('{"a":' .. string.rep("[", 100) .. string.rep("]", 100) .. "}"), "nesting too deep")
    bad("numkey.safetensors", st_bytes('{1:{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', f32s(1)), "expected a string key")
    bad("dup.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32s(1, 2)),
      "duplicate key 'a'")
  end)

  it("reports bad dtypes, shapes and tensor descriptions", function()
    bad("dtype.safetensors", st_bytes('{"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}', f32s(1, 2)), "tensor 'a' has unknown dtype 'F17'")
    bad("dtype_num.safetensors", st_bytes('{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}', f32s(1, 2)), "tensor 'a' dtype must be a string, got a number")
    bad("neg.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', f32s(1, 2)),
      "tensor 'a' shape entry 1 is -2; sizes must be non-negative integers")
    bad("frac.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[1,2.5],"data_offsets":[0,8]}}', f32s(1, 2)), "tensor 'a' shape entry 2 is 2.5")
    bad("strshape.safetensors", st_bytes('{"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}', f32s(1, 2)), "shape entry 1 is a string")
    bad("shapeobj.safetensors", st_bytes('{"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}}', f32s(1, 2)), "tensor 'a' shape must be an array, got a number")
    bad("ndim.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}', f32s(1, 2)),
      "tensor 'a' has 9 dimensions, at most 8 are supported")
    bad("nooff.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[2]}}', f32s(1, 2)), "tensor 'a' has no \"data_offsets\"")
    bad("info.safetensors", st_bytes('{"a":[1,2]}', f32s(1, 2)), "tensor 'a' must be described by an object, got an array")
    bad("meta.safetensors", st_bytes('{"__metadata__":{"k":1},' .. hdr:sub(2), f32s(1, 2)), "__metadata__ must be an object of strings, but key 'k' holds a number")
    bad("meta2.safetensors", st_bytes('{"__metadata__":[],' .. hdr:sub(2), f32s(1, 2)), "__metadata__ must be an object of strings, got an array")
  end)

  it("reports bad, reversed, out-of-range and overlapping offsets", function()
    bad("negoff.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}', f32s(1, 2)),
      "tensor 'a' data_offsets [-8, 0] must be non-negative integers")
    bad("off3.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,16]}}', f32s(1, 2)), "data_offsets must be an array [begin, end]")
    bad("reversed.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', f32s(1, 2)),
      "tensor 'a' data_offsets [8, 0] are reversed (begin > end)")
    bad("outside.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', f32s(1, 2)),
      "tensor 'a' data range [8, 16) ends outside the data area of 8 bytes")
    bad("overlap.safetensors",
      st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f32s(1, 2, 3)),
      "tensors 'a' [0, 8) and 'b' [4, 12) have overlapping data ranges")
    bad("same.safetensors",
      st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}', f32s(1, 2)),
      "have overlapping data ranges")
    bad("bigoff.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,18446744073709551623]}}', f32s(1, 2)),
      "must be non-negative integers")
  end)

  it("reports a size mismatch, an overflowing shape and truncated data", function()
    bad("model.safetensors", st_bytes('{"a.weight":{"dtype":"F32","shape":[5,6],"data_offsets":[0,100]}}', string.rep("\0", 100)),
      "tensor 'a.weight' data range [0, 100) has 100 bytes but shape (5, 6) F32 needs 120")
    bad("overflow.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}'),
      "tensor 'a' shape (4294967296, 4294967296, 16) overflows")
    bad("overflow2.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,0]}}'),
      "shape entry 1 is an integer too large for 64 bits")
    local full = st_bytes('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', f32s(1, 2, 3, 4))
    bad("truncated.safetensors", full:sub(1, #full - 3), "tensor 'a' data range [0, 16) ends outside the data area of 13 bytes (truncated file")
  end)

  it("reports tensors that cannot be loaded, but still shows their header", function()
    local p = tmp("f8.safetensors")
    write_bytes(p, st_bytes('{"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}', "\1\2"))
    local h = oe.load_header(p)
    assert.are.same({ dtype = "F8_E4M3", shape = { 2 }, data_offsets = { 0, 2 } }, h.a)
    local t, msg = oe.load(p)
    assert.is_nil(t)
    assert.matches(p .. ": tensor 'a' has dtype F8_E4M3, which cannot be loaded", msg, 1, true)
    local q = tmp("u64.safetensors")
    write_bytes(q, st_bytes('{"a":{"dtype":"U64","shape":[2],"data_offsets":[0,16]}}', string.pack("<I8I8", 5, -1)))
    local t2, msg2 = oe.load(q)
    assert.is_nil(t2)
    assert.matches(q .. ": tensor 'a' (U64) holds 18446744073709551615, which does not fit in int64", msg2, 1, true)
  end)

  it("never fails other than by nil + message on 3000 corrupted copies of a good file", function()
    local good = read_bytes(FIX .. "dtypes.safetensors")
    local hl = string.unpack("<I8", good)
    local p = tmp("mutant.safetensors")
    local rng_state = 12345
    local function rand(n) -- small LCG: the same mutants on every run
      rng_state = (rng_state * 6364136223846793005 + 1442695040888963407) & 0x7FFFFFFFFFFFFFFF
      return (rng_state >> 33) % n + 1
    end
    local loaded, rejected = 0, 0
    local alphabet = '{}[]",:0123456789-.eE \\u\0\255FIUB'
    for _ = 1, 3000 do
      local b = { good:byte(1, -1) }
      for _ = 1, rand(4) do
        local kind, pos = rand(3), rand(8 + hl)
        if kind == 1 then b[pos] = alphabet:byte(rand(#alphabet))
        elseif kind == 2 then table.remove(b, pos)
        else table.insert(b, pos, alphabet:byte(rand(#alphabet))) end
      end
      if rand(10) == 1 then for _ = 1, rand(#b - 1) do b[#b] = nil end end
      local parts = {}
      for i = 1, #b, 4000 do parts[#parts + 1] = string.char(table.unpack(b, i, math.min(i + 3999, #b))) end
      write_bytes(p, table.concat(parts))
      local t, msg = core.st_load(p)
      if t then
        loaded = loaded + 1
        assert.is_table(msg)
      else
        rejected = rejected + 1
        assert.are.equal(p .. ": ", msg:sub(1, #p + 2))
      end
    end
    assert.are.equal(3000, loaded + rejected)
    assert.is_true(rejected > 1500, "most mutants are rejected: " .. rejected)
  end)

  it("accepts padding, any key order, unknown fields and unaligned tensors", function()
    local p = tmp("odd.safetensors")
    -- header of odd length and a 3-byte tensor first (so data is unaligned), fields in another order
    local h = '{"b":{"shape":[2],"data_offsets":[3,11],"dtype":"F32","extra":true},"a":{"data_offsets":[0,3],"dtype":"U8","shape":[3]}} \n'
    write_bytes(p, st_bytes(h, "\1\2\3" .. f32s(1.5, -2)))
    local t = assert(oe.load(p))
    assert.are.same({ 1.5, -2 }, t.b:totable())
    assert.are.same({ 1, 2, 3 }, t.a:totable())
  end)
end)

describe("safetensors files the reference implementation refuses", function()
  local function bad(name, bytes, fragment)
    local p = tmp(name)
    write_bytes(p, bytes)
    for _, fn in ipairs({ core.st_load, core.st_header }) do
      local t, msg = fn(p)
      assert.is_nil(t, name)
      assert.are.equal(p .. ": ", msg:sub(1, #p + 2), "message names the file: " .. msg)
      assert.matches(fragment, msg, 1, true)
    end
  end
  local function good(name, bytes)
    local p = tmp(name)
    write_bytes(p, bytes)
    return assert(core.st_load(p))
  end

  it("data ranges must tile the data area: no trailing bytes, no hole, no gap at the start", function()
    bad("trailing.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', f32s(1, 2) .. "junk"),
      "4 bytes follow the last tensor's data (the data area has 12 bytes, the tensors cover 8)")
    bad("hole.safetensors",
      st_bytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', f32s(1, 2, 3)),
      "no tensor holds data bytes [4, 8) (before tensor 'b')")
    bad("gap.safetensors", st_bytes('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', f32s(1, 2)),
      "no tensor holds data bytes [0, 4) (before tensor 'a')")
    bad("nothing.safetensors", st_bytes("{}      ", "x"), "1 bytes follow the last tensor's data")
    -- an empty tensor inside another's range overlaps it, as in the reference
    bad("inside.safetensors",
      st_bytes('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}', f32s(1, 2)),
      "tensors 'a' [0, 8) and 'e' [4, 4) have overlapping data ranges")
  end)

  it("accepts empty tensors at the boundaries and a file with no tensors at all", function()
    local t = good("edges.safetensors", st_bytes(
      '{"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' ..
      '"e":{"dtype":"I64","shape":[4,0],"data_offsets":[8,8]}}', f32s(1, 2)))
    assert.are.same({ 1, 2 }, t.a:totable())
    assert.are.same({ 0, 3 }, core.shape(t.z))
    assert.are.same({ 4, 0 }, core.shape(t.e))
    local none, meta = good("none.safetensors", st_bytes('{"__metadata__":{"k":"v"}}'))
    assert.is_nil(next(none))
    assert.are.same({ k = "v" }, meta)
  end)

  it("refuses shapes whose sizes multiply past 2^40, empty ones included (their strides overflowed int64)", function()
    bad("huge_empty.safetensors", st_bytes('{"a":{"dtype":"U8","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}'),
      "tensor 'a': shape (0, 4611686018427387904, 4611686018427387904) is too large: its non-zero sizes multiply past 2^40")
    bad("huge.safetensors", st_bytes('{"a":{"dtype":"U8","shape":[1048576,2097152],"data_offsets":[0,0]}}'),
      "tensor 'a': shape (1048576, 2097152) is too large")
    -- 2^40 exactly is the limit
    local t = good("limit.safetensors", st_bytes('{"a":{"dtype":"U8","shape":[0,1048576,1048576],"data_offsets":[0,0]}}'))
    assert.are.same({ 0, 1048576, 1048576 }, core.shape(t.a))
  end)

  it("escapes control bytes of names in messages", function()
    bad("nul.safetensors", st_bytes('{"a\\u0000b\\u001bc\\\\d":{"dtype":"F17","shape":[],"data_offsets":[0,0]}}'),
      "tensor 'a\\x00b\\x1bc\\\\d' has unknown dtype 'F17'")
    bad("dupmeta.safetensors", st_bytes('{"__metadata__":{"k\\u0007":"1","k\\u0007":"2"}}'), "duplicate key 'k\\x07' in __metadata__")
    bad("dupname.safetensors", st_bytes(
      '{"w\\n":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w\\n":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', "ab"),
      "duplicate key 'w\\x0a' in the header")
    local p = tmp("names.safetensors")
    assert.is_true(oe.save(p, { ["x\0y"] = oe.ones({ 1 }), w = oe.ones({ 1 }) }))
    local t = assert(oe.load(p))
    assert.are.same({ 1 }, t["x\0y"]:totable())
    local none, msg = core.st_load_names(p, { "no\0pe" })
    assert.is_nil(none)
    assert.matches("no tensor named 'no\\x00pe' in the file", msg, 1, true)
    local m = oe.nn.Linear(1, 1)
    local r, msg2 = m:load(p)
    assert.is_nil(r)
    assert.matches("unexpected keys: w, x\\x00y", msg2, 1, true)
    for _, s in ipairs({ msg, msg2 }) do assert.is_nil(s:find("[%z\1-\31]"), "raw control byte in: " .. s) end
  end)
end)

describe("safetensors saving", function()
  it("raises on bad arguments and leaves the previous file intact", function()
    local p = tmp("keep.safetensors")
    assert.is_true(oe.save(p, { w = oe.ones({ 3 }) }, { v = "1" }))
    local before = read_bytes(p)
    assert.has_error(function() oe.save(p, { w = oe.ones({ 3 }), bad = "not a tensor" }) end,
      "st_save: value for 'bad' must be a tensor, got string")
    assert.has_error(function() oe.save(p, { [1] = oe.ones({ 3 }) }) end, "st_save: tensor names must be strings, got a number key")
    assert.has_error(function() oe.save(p, { w = oe.ones({ 3 }) }, { v = 2 }) end,
      "st_save: metadata value for 'v' must be a string, got number")
    assert.has_error(function() oe.save(p, { w = oe.ones({ 3 }) }, nil, { dtype = "int8" }) end)
    assert.has_error(function() oe.save(p, { __metadata__ = oe.ones({ 3 }) }) end)
    assert.has_error(function() oe.save(p, { ["\255"] = oe.ones({ 3 }) }) end)
    assert.has_error(function() oe.save(p, "x") end)
    assert.are.equal(before, read_bytes(p))
    for _, n in ipairs(listdir(dir)) do assert.is_nil(n:find(".tmp.", 1, true), "leftover " .. n) end
  end)

  it("replaces an existing file keeping its permissions", function()
    local p = tmp("perm.safetensors")
    assert.is_true(oe.save(p, { w = oe.ones({ 2 }) }))
    os.execute('chmod 600 "' .. p .. '"')
    assert.is_true(oe.save(p, { w = oe.zeros({ 3 }) }))
    assert.are.same({ 0, 0, 0 }, oe.load(p).w:totable())
    local f = io.popen('stat -c %a "' .. p .. '"')
    local mode = f:read("l")
    f:close()
    assert.are.equal("600", mode)
  end)

  it("returns nil and a message when the folder is missing or the target cannot be replaced", function()
    local ok, msg = oe.save(tmp("no/such/folder/x.safetensors"), { w = oe.ones({ 1 }) })
    assert.is_nil(ok)
    assert.matches("no/such/folder/x.safetensors: cannot create the temporary file", msg, 1, true)
    -- the target is a non-empty folder: rename fails after the data was written
    local d = tmp("target_dir")
    os.execute('mkdir -p "' .. d .. '/inner"')
    local ok2, msg2 = oe.save(d, { w = oe.ones({ 1 }) })
    assert.is_nil(ok2)
    assert.matches(d .. ": cannot rename the temporary file over the target", msg2, 1, true)
    for _, n in ipairs(listdir(dir)) do assert.is_nil(n:find(".tmp.", 1, true), "leftover " .. n) end
  end)

  it("an interrupted write (file size limit) leaves the old file and no temporary file", function()
    local sub = tmp("limited")
    os.execute('mkdir -p "' .. sub .. '"')
    local p = sub .. "/ckpt.safetensors"
    assert.is_true(oe.save(p, { w = oe.ones({ 10 }) }, { step = "1" }))
    local before = read_bytes(p)
    local script = sub .. "/big_save.lua"
    write_bytes(script, string.format([[
      local core = require "oneencoder.core"
      local ok, msg = core.st_save(%q, { w = core.zeros({ 200000 }) }, { step = "2" })
      io.stdout:write(tostring(msg))
      local quit = os["exit"]; quit(ok and 0 or 3) -- (indexed so a grep for skipped specs does not match)
    ]], p))
    -- ignore SIGXFSZ so write() fails with EFBIG instead of killing the process
    local pipe = io.popen("trap '' XFSZ; ulimit -f 64; lua5.4 '" .. script .. "' 2>&1; echo \" rc=$?\"")
    local out = pipe:read("a")
    pipe:close()
    assert.matches("rc=3", out, 1, true)
    assert.matches(p .. ": cannot write " .. p .. ".tmp.", out, 1, true)
    assert.matches("File too large", out, 1, true)
    assert.are.equal(before, read_bytes(p))
    assert.are.same({ "big_save.lua", "ckpt.safetensors" }, listdir(sub))
    local _, meta = oe.load(p)
    assert.are.equal("1", meta.step)
  end)
end)

describe("module save and load", function()
  local nn = oe.nn
  it("round-trips a module's state dict by name", function()
    oe.manual_seed(11)
    local a = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    local p = tmp("model.safetensors")
    assert.is_true(a:save(p, { arch = "mlp" }))
    local h = oe.load_header(p)
    assert.are.same({ 3, 4 }, h["0.weight"].shape)
    assert.are.same({ 2 }, h["2.bias"].shape)
    oe.manual_seed(12)
    local b = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    assert.are_not.equal(a["0"].weight:to_bytes(), b["0"].weight:to_bytes())
    local report, meta = b:load(p)
    assert.is_table(report, meta)
    assert.are.equal("mlp", meta.arch)
    assert.are.same({ "0.bias", "0.weight", "2.bias", "2.weight" }, report.loaded)
    for name, t in pairs(a:state_dict()) do
      assert.are.equal(t:to_bytes(), b:state_dict()[name]:to_bytes(), name)
    end
    assert.is_true(b["0"].weight.requires_grad)
  end)

  it("strict loading names missing and unexpected keys; non-strict loads the common part", function()
    oe.manual_seed(5)
    local big = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    local p = tmp("big.safetensors")
    assert.is_true(oe.save(p, { weight = big["1"].weight, bias = big["1"].bias, ["other.weight"] = big["0"].weight }))
    local head = nn.Linear(3, 2)
    local before = head.weight:to_bytes()
    local r, msg = head:load(p)
    assert.is_nil(r)
    assert.matches(p .. ": checkpoint does not match the module: unexpected keys: other.weight", msg, 1, true)
    assert.are.equal(before, head.weight:to_bytes())
    local report = assert(head:load(p, { strict = false }))
    assert.are.same({ "other.weight" }, report.unexpected)
    assert.are.same({ "bias", "weight" }, report.loaded)
    assert.are.equal(big["1"].weight:to_bytes(), head.weight:to_bytes())
    -- a module with a parameter the file lacks
    local two = nn.Sequential(nn.Linear(3, 2))
    local r2, msg2 = two:load(p)
    assert.is_nil(r2)
    assert.matches("missing keys: 0.bias, 0.weight", msg2, 1, true)
  end)

  it("refuses mismatched shapes and leaves the module unchanged", function()
    local p = tmp("shape.safetensors")
    assert.is_true(nn.Linear(3, 3):save(p))
    local m = nn.Linear(3, 2)
    local before = m.weight:to_bytes()
    local r, msg = m:load(p, { strict = false })
    assert.is_nil(r)
    assert.matches("mismatched: bias: module has (2,), file has (3,); weight: module has (2, 3), file has (3, 3)", msg, 1, true)
    assert.are.equal(before, m.weight:to_bytes())
    local r2, msg2 = m:load(tmp("nothing_here.safetensors"))
    assert.is_nil(r2)
    assert.matches("cannot open", msg2, 1, true)
  end)

  it("saves a module in float16 and loads it back as float32", function()
    oe.manual_seed(9)
    local a = nn.Linear(8, 5)
    local p = tmp("half.safetensors")
    assert.is_true(S.save_module(a, p, nil, { dtype = "float16" }))
    assert.are.equal("F16", oe.load_header(p).weight.dtype)
    local b = nn.Linear(8, 5)
    assert(S.load_module(b, p))
    local wa, wb = flat(a.weight), flat(b.weight)
    for i = 1, #wa do assert.are.equal(core.st_f16_value(core.st_f16_bits(wa[i])), wb[i]) end
    assert.are.equal("float32", b.weight:dtype())
  end)
end)
