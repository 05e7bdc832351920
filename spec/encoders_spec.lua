-- encoders: the built-in weight-free encoders (patches, words, logmel, frames), their
-- registry and encode_files, checked against values worked out by hand, explicit
-- matmuls, the underlying modules (image, audio) and each other. Small synthetic inputs.
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"
local E = oe.encoders
local image = oe.image
local audio = oe.audio

local function bytes(t) return core.to_bytes(t) end
local function rows(t) return core.totable(t) end
local function near(a, b, tol, what)
  if math.abs(a - b) > tol then error(string.format("%s: %.9g vs %.9g (tol %g)", what or "value", a, b, tol), 2) end
end
local function err_of(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end
local function has(msg, pat) assert.is_truthy(msg:find(pat, 1, true), "message '" .. msg .. "' lacks '" .. pat .. "'") end
-- float (B, C, H, W) from a Lua function f(b, c, y, x) (0-based)
local function img4(B, Cc, H, W, f)
  local t = {}
  for b = 1, B do
    t[b] = {}
    for c = 1, Cc do
      t[b][c] = {}
      for y = 1, H do
        t[b][c][y] = {}
        for x = 1, W do t[b][c][y][x] = f(b - 1, c - 1, y - 1, x - 1) end
      end
    end
  end
  return core.from_table(t)
end
local function u8(H, W, C, f)
  local t = {}
  for y = 1, H do
    t[y] = {}
    for x = 1, W do
      if C then
        t[y][x] = {}
        for c = 1, C do t[y][x][c] = f(y - 1, x - 1, c - 1) end
      else
        t[y][x] = f(y - 1, x - 1)
      end
    end
  end
  return core.from_table(t, "uint8")
end
local function sine(n, freq, rate, amp)
  local t = {}
  for i = 1, n do t[i] = (amp or 0.5) * math.sin(2 * math.pi * freq * (i - 1) / rate) + 0.01 * math.sin(i * 0.37) end
  return core.from_table(t)
end

describe("encoders registry", function()
  it("lists and creates the built-in encoders", function()
    assert.same({ "bert", "frames", "glove", "logmel", "mobilenet_v2", "onnx", "patches", "speech_embedding", "videomae", "vit", "wav2vec2", "words" }, E.list())
    for _, n in ipairs({ "frames", "logmel", "patches", "words" }) do -- vit and bert need weights (vit_spec, bert_spec)
      local e = E.create(n, n == "frames" and { size = 16, patch = 8 } or nil)
      assert.equal(n, e.name)
      assert.is_true(math.type(e.dim) == "integer" and e.dim > 0)
      assert.equal("string", type(e.id))
      assert.equal("table", type(e.preprocess))
      assert.equal("string", type(e.preprocess.input))
    end
  end)
  it("rejects unknown encoders and options", function()
    has(err_of(E.create, "clip"), "unknown encoder 'clip' (known: bert, frames, glove, logmel, mobilenet_v2, onnx, patches, speech_embedding, videomae, vit, wav2vec2, words)")
    has(err_of(E.create, "patches", { patch_size = 4 }), "unknown option 'patch_size'")
    has(err_of(E.create, "patches", { patch = 0 }), "option 'patch' = 0 is outside 1..4096")
    has(err_of(E.create, "patches", { normalize = "imagenette" }), "unknown normalize preset 'imagenette'")
    has(err_of(E.create, "patches", { patch = 3 }), "2-D positions need a dim divisible by 4, got 27")
    has(err_of(E.create, "patches", { size = 30, patch = 4 }), "size 30x30 is not a multiple of the patch size 4")
    has(err_of(E.create, "words", { dim = 7 }), "positions need an even dim, got 7")
    has(err_of(E.create, "words", { ngrams = { 5, 3 } }), "min <= max")
    has(err_of(E.create, "logmel", { normalize = "global" }), "normalize must be \"clip\" or false")
    has(err_of(E.create, "logmel", { mel = { n_fft = 0 } }), "bad mel options")
    has(err_of(E.create, "frames", { size = false }), "size is required")
    has(err_of(E.create, "frames", { start = "random", strategy = "consecutive" }), "needs sample_seed")
  end)
  it("registers new encoders", function()
    E.register("spec_dummy", function() return { name = "spec_dummy", dim = 1 } end)
    assert.equal("spec_dummy", E.create("spec_dummy").name)
    has(err_of(E.register, "spec_dummy", function() end), "already registered")
    E.unregister("spec_dummy")
    assert.same({ "bert", "frames", "glove", "logmel", "mobilenet_v2", "onnx", "patches", "speech_embedding", "videomae", "vit", "wav2vec2", "words" }, E.list())
    has(err_of(E.unregister, "words"), "built in")
  end)
end)

describe("patches", function()
  -- 4x4 image, values 1..16 row-major
  local x = img4(1, 1, 4, 4, function(_, _, y, xx) return y * 4 + xx + 1 end)

  it("extracts P x P patches in row-major order (hand-worked 4x4, P = 2)", function()
    local e = E.create("patches", { patch = 2, channels = 1, pos = false })
    local f, lengths = e:encode(x)
    assert.same({ 1, 4, 4 }, core.shape(f))
    assert.same({ 4 }, lengths)
    assert.same({ { { 1, 2, 5, 6 }, { 3, 4, 7, 8 }, { 9, 10, 13, 14 }, { 11, 12, 15, 16 } } }, rows(f))
  end)

  it("flattens patches in (C, P, P) order", function()
    local x3 = img4(1, 3, 4, 4, function(_, c, y, xx) return 100 * c + y * 4 + xx + 1 end)
    local e = E.create("patches", { patch = 2, channels = 3, pos = false })
    local f = rows(e:encode(x3))
    assert.same({ 1, 2, 5, 6, 101, 102, 105, 106, 201, 202, 205, 206 }, f[1][1])
    assert.same({ 11, 12, 15, 16, 111, 112, 115, 116, 211, 212, 215, 216 }, f[1][4])
  end)

  it("cls = true prepends the mean patch token", function()
    local e = E.create("patches", { patch = 2, channels = 1, pos = false, cls = true })
    local f, lengths = e:encode(x)
    assert.same({ 5 }, lengths)
    assert.same({ 6, 7, 10, 11 }, rows(f)[1][1])
    assert.same({ 1, 2, 5, 6 }, rows(f)[1][2])
  end)

  it("adds 2-D sinusoidal positions (hand-worked, D = 4 and D = 8)", function()
    local e = E.create("patches", { patch = 2, channels = 1, pos = true, cls = true })
    local f = rows(e:encode(x))
    local raw = { { 6, 7, 10, 11 }, { 1, 2, 5, 6 }, { 3, 4, 7, 8 }, { 9, 10, 13, 14 }, { 11, 12, 15, 16 } }
    -- D/2 = 2 dims per axis: [sin r, cos r, sin c, cos c]; the cls token gets none
    local pe = { { 0, 0, 0, 0 }, { 0, 1, 0, 1 }, { 0, 1, math.sin(1), math.cos(1) }, { math.sin(1), math.cos(1), 0, 1 },
      { math.sin(1), math.cos(1), math.sin(1), math.cos(1) } }
    for l = 1, 5 do
      for d = 1, 4 do near(f[1][l][d], raw[l][d] + pe[l][d], 1e-6, "token " .. l .. " dim " .. d) end
    end
    -- D = 8 (projected), pos_scale 0.5: per axis [sin p, cos p, sin(p/100), cos(p/100)] (w_1 = 10000^(-2/4))
    local ep = E.create("patches", { patch = 2, channels = 1, proj = 8, seed = 3, pos = true, pos_scale = 0.5 })
    local en = E.create("patches", { patch = 2, channels = 1, proj = 8, seed = 3, pos = false })
    local a, b = rows(ep:encode(x)), rows(en:encode(x))
    local function code(p) return { math.sin(p), math.cos(p), math.sin(p / 100), math.cos(p / 100) } end
    for l = 1, 4 do
      local r, c = (l - 1) // 2, (l - 1) % 2
      local want = {}
      for _, v in ipairs(code(r)) do want[#want + 1] = v end
      for _, v in ipairs(code(c)) do want[#want + 1] = v end
      for d = 1, 8 do near(a[1][l][d] - b[1][l][d], 0.5 * want[d], 2e-6, "pos token " .. l .. " dim " .. d) end
    end
    -- the table itself
    local pe = rows(core.enc_pos2d(2, 3, 8, 0.5))
    near(pe[6][1], 0.5 * math.sin(1), 1e-7, "pos2d r")
    near(pe[6][7], 0.5 * math.sin(2 / 100), 1e-7, "pos2d c")
    near(pe[6][8], 0.5 * math.cos(2 / 100), 1e-7, "pos2d c")
  end)

  it("projects with a fixed seeded Gaussian matrix: equal to an explicit matmul", function()
    local xb = img4(3, 3, 8, 8, function(b, c, y, xx) return math.sin(b * 7 + c * 3 + y * 0.9 + xx * 1.7) end)
    local raw = E.create("patches", { patch = 4, pos = false })
    local e = E.create("patches", { patch = 4, proj = 20, seed = 11, pos = false })
    local W = e.proj_weight
    assert.same({ 48, 20 }, core.shape(W))
    local tok = raw:encode(xb)                       -- (3, 4, 48)
    local f = e:encode(xb)                           -- (3, 4, 20)
    assert.same({ 3, 4, 20 }, core.shape(f))
    local want = oe.matmul(core.reshape(tok, { 12, 48 }), W)
    assert.equal(bytes(want), bytes(core.reshape(f, { 12, 20 })))
    -- and by hand in Lua (double sums)
    local T, Wt, F = rows(core.reshape(tok, { 12, 48 })), rows(W), rows(core.reshape(f, { 12, 20 }))
    for i = 1, 12 do
      for j = 1, 20 do
        local s = 0
        for k = 1, 48 do s = s + T[i][k] * Wt[k][j] end
        near(F[i][j], s, 1e-5, "projected " .. i .. "," .. j)
      end
    end
    -- N(0, 1/48) entries, independent of the global RNG
    oe.manual_seed(1)
    local W1 = E.create("patches", { patch = 4, proj = 20, seed = 11 }).proj_weight
    oe.manual_seed(2)
    local W2 = E.create("patches", { patch = 4, proj = 20, seed = 11 }).proj_weight
    assert.equal(bytes(W1), bytes(W2))
    local big = E.create("patches", { patch = 16, proj = 256, seed = 5, pos = false }).proj_weight -- (768, 256)
    local n, s, ss = 768 * 256, core.sum_all(big), core.sumsq(big)
    near(s / n, 0, 0.01 / math.sqrt(768), "mean")
    near(ss / n * 768, 1, 0.02, "variance * fan-in")
  end)

  it("converts uint8 images: x / 255 then (x - mean) / std, gray <-> RGB", function()
    local g = u8(4, 4, nil, function(y, xx) return (y * 4 + xx) * 17 end)      -- (4, 4)
    local e = E.create("patches", { patch = 2, channels = 1, pos = false })   -- normalize "half"
    local f = rows(e:encode({ g }))
    local function v(y, xx) return ((y * 4 + xx) * 17 / 255 - 0.5) / 0.5 end
    local want = { v(0, 0), v(0, 1), v(1, 0), v(1, 1) }
    for d = 1, 4 do near(f[1][1][d], want[d], 1e-6, "uint8 half") end
    -- imagenet on a gray image made RGB: per-channel mean/std after repetition
    local ei = E.create("patches", { patch = 2, channels = 3, normalize = "imagenet", pos = false })
    local fi = rows(ei:encode({ g }))
    local mean, std = { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 }
    for c = 1, 3 do
      near(fi[1][4][(c - 1) * 4 + 4], (255 / 255 - mean[c]) / std[c], 1e-5, "imagenet channel " .. c)
    end
    -- RGB -> gray: luma 0.299 R + 0.587 G + 0.114 B
    local rgb = u8(2, 2, 3, function(y, xx, c) return ({ 200, 100, 50 })[c + 1] + y + xx end)
    local eg = E.create("patches", { patch = 2, channels = 1, normalize = false, pos = false })
    local fg = rows(eg:encode({ rgb }))
    near(fg[1][1][1], (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, 1e-6, "luma")
    -- a uint8 batch tensor and a list of the same images give the same bytes
    local list = { u8(4, 4, 3, function(y, xx, c) return y * 50 + xx * 9 + c end), u8(4, 4, 3, function(y, xx, c) return 255 - y * 3 - xx - c end) }
    local batch = core.cat({ core.reshape(list[1], { 1, 4, 4, 3 }), core.reshape(list[2], { 1, 4, 4, 3 }) }, 1)
    local e3 = E.create("patches", { patch = 2 })
    assert.equal(bytes((e3:encode(list))), bytes((e3:encode(batch))))
    -- mixed float and uint8 items: the uint8 one as the float it becomes
    local fl = core.reshape(e3:to_batch({ list[2] }), { 3, 4, 4 })
    assert.equal(bytes((e3:encode(list))), bytes((e3:encode({ list[1], fl }))))
  end)

  it("resizes to size first (as oneencoder.image.resize)", function()
    local big = u8(8, 8, 3, function(y, xx, c) return (y * 29 + xx * 13 + c * 71) % 256 end)
    local e = E.create("patches", { patch = 2, size = 4, pos = false, normalize = false })
    local f = e:encode({ big })
    local small = image.resize(big, 4, 4, "bilinear_cv")
    local ref = E.create("patches", { patch = 2, pos = false, normalize = false }):encode({ small })
    assert.equal(bytes(ref), bytes(f))
    -- float input: resized in HWC order through the same function
    local fl = core.reshape(e:to_batch({ big }), { 3, 4, 4 }) -- already at size: untouched
    assert.same({ 3, 4, 4 }, core.shape(fl))
    local f8 = img4(1, 3, 8, 8, function(_, c, y, xx) return c + y * 0.25 + xx * 0.5 end)
    local ff = e:encode(f8)
    local hwc = core.permute(core.reshape(f8, { 3, 8, 8 }), { 2, 3, 1 })
    local r = core.permute(image.resize(hwc, 4, 4, "bilinear_cv"), { 3, 1, 2 })
    local want = E.create("patches", { patch = 2, pos = false }):encode(core.reshape(r, { 1, 3, 4, 4 }))
    assert.equal(bytes(want), bytes(ff))
  end)

  it("has demo shapes and lengths", function()
    local e = E.create("patches", { patch = 4, size = 28, channels = 1, proj = 64, seed = 7, cls = true })
    local imgs = {}
    for i = 1, 3 do imgs[i] = u8(28, 28, nil, function(y, xx) return (y * 9 + xx * 5 + i * 40) % 256 end) end
    local f, lengths = e:encode(imgs)
    assert.same({ 3, 50, 64 }, core.shape(f))
    assert.same({ 50, 50, 50 }, lengths)
    assert.equal(64, e.dim)
    assert.equal("patches:p4:c1:size28x28:bilinear_cv:norm=half:proj64:seed7:cls1:pos1x1:v1", e.id)
  end)

  it("is deterministic; the seed changes id and output", function()
    local xb = img4(2, 3, 8, 8, function(b, c, y, xx) return math.cos(b + c * 2 + y * 0.3 + xx * 0.7) end)
    local o = { patch = 4, proj = 32, seed = 9, cls = true }
    local e1, e2 = E.create("patches", o), E.create("patches", o)
    local a = bytes((e1:encode(xb)))
    assert.equal(a, bytes((e1:encode(xb))))
    assert.equal(a, bytes((e2:encode(xb))))
    assert.equal(e1.id, e2.id)
    local e3 = E.create("patches", { patch = 4, proj = 32, seed = 10, cls = true })
    assert.not_equal(e1.id, e3.id)
    assert.not_equal(a, bytes((e3:encode(xb))))
  end)

  it("changes the id with every setting", function()
    local base = { patch = 4, size = 8, channels = 3, method = "bilinear_cv", normalize = "half", proj = 16, seed = 1,
      cls = false, pos = true, pos_scale = 1 }
    local variants = { patch = 2, size = 16, channels = 1, method = "bicubic_pil", normalize = "imagenet", proj = 32,
      seed = 2, cls = true, pos = false, pos_scale = 0.5 }
    local seen = { [E.create("patches", base).id] = "base" }
    for k, v in pairs(variants) do
      local o = {}
      for a, b in pairs(base) do o[a] = b end
      o[k] = v
      local id = E.create("patches", o).id
      assert.is_nil(seen[id], k .. " does not change the id " .. id)
      seen[id] = k
    end
    local o = {}
    for a, b in pairs(base) do o[a] = b end
    o.normalize = { mean = { 0.1, 0.2, 0.3 }, std = { 1, 1, 1 } }
    assert.is_nil(seen[E.create("patches", o).id])
    o.proj = nil
    assert.is_nil(seen[E.create("patches", o).id])
  end)

  it("the C kernels check their arguments", function()
    has(err_of(core.enc_patchify, core.zeros({ 1, 3, 5, 5 }), 2), "image size 5x5 is not a multiple of the patch size 2")
    has(err_of(core.enc_patchify, core.zeros({ 1, 3, 4, 4 }, "int32"), 2), "must be float32")
    has(err_of(core.enc_pos2d, 2, 2, 6), "must be a multiple of 4")
    has(err_of(core.enc_add_rows_, core.zeros({ 2, 3, 4 }), 0, core.zeros({ 2, 4 })), "pe has 2 rows, 3 needed")
    has(err_of(core.enc_add_rows_, core.zeros({ 2, 3, 4 }), 0, core.zeros({ 3, 4 }), { 1, 4 }), "lengths[2] must be an integer in 0..3")
    has(err_of(core.enc_stack_frames, { core.zeros({ 4, 3 }), core.zeros({ 5, 3 }) }, 2), "item 2 has 5 mel bands, item 1 has 4")
    has(err_of(core.enc_u8_to_chw, core.zeros({ 1, 2, 2, 3 }, "uint8"), 3, { 0, 0, 0 }, { 1, 0, 1 }), "std[2] is 0")
    has(err_of(core.enc_words, { "a" }, { ng_min = 1 }), "n-gram sizes must satisfy 2 <= min")
  end)

  it("gives clear errors on bad input", function()
    local e = E.create("patches", { patch = 2 })
    has(err_of(e.encode, e, {}), "patches:encode: empty batch")
    has(err_of(e.encode, e, core.zeros({ 0, 3, 4, 4 })), "empty batch (0, 3, 4, 4)")
    has(err_of(e.encode, e, core.zeros({ 3, 4, 4 })), "expected a batch")
    has(err_of(e.encode, e, core.zeros({ 1, 3, 4, 4 }, "int32")), "must be float32 or uint8, got int32")
    has(err_of(e.encode, e, core.zeros({ 1, 2, 4, 4 })), "float32 batches must be (B, 3, H, W) or (B, 1, H, W)")
    has(err_of(e.encode, e, { core.zeros({ 4, 4, 3 }, "uint8"), "cat.jpg" }), "item 2: expected an image tensor, got string")
    has(err_of(e.encode, e, { core.zeros({ 4, 4, 2 }, "uint8") }), "item 1: uint8 images must be (H, W, 3)")
    has(err_of(e.encode, e, { core.zeros({ 4, 5 }, "uint8") }), "image 4x5 is not a multiple of the patch size 2")
    has(err_of(e.encode, e, { core.zeros({ 3, 4, 4 }), core.zeros({ 3, 6, 6 }) }), "item 2 is 6x6 but item 1 is 4x4")
    has(err_of(e.encode, e, "cat.jpg"), "expected a batch of images, got string")
  end)
end)

describe("words", function()
  it("normalises text into tokens (lowercase, Unicode-aware split, digits kept)", function()
    local e = E.create("words")
    local t, n = e:tokenize("Hello, WORLD! It\u{2019}s 42 \u{C9}COLE na\u{EF}ve\u{2014}Stra\u{DF}e \u{1F600}emoji \u{3A3}\u{399}\u{3A3}\u{3A5}\u{3A6}\u{39F}\u{3A3} \u{41C}\u{418}\u{420} x\255y")
    assert.same({ "hello", "world", "it", "s", "42", "\u{E9}cole", "na\u{EF}ve", "stra\u{DF}e", "emoji",
      "\u{3C3}\u{3B9}\u{3C3}\u{3C5}\u{3C6}\u{3BF}\u{3C3}", "\u{43C}\u{438}\u{440}", "x", "y" }, t)
    assert.equal(13, n)
    assert.same({}, (e:tokenize(" \t\n.,;!?\u{A0}\u{3000}")))
  end)

  it("survives arbitrary bytes: tokens are valid lowercase UTF-8 without separators", function()
    math.randomseed(42)
    local e = E.create("words", { dim = 8, max_len = 1000 })
    local alphabet = { "a", "B", "7", " ", ",", "\u{E9}", "\u{C9}", "\u{2019}", "\u{1F600}", "\u{4E2D}", "\xC3", "\x80", "\xFF", "\xF4\x90\x80\x80", "\xED\xA0\x80", "\0" }
    for n = 0, 200 do
      local parts = {}
      for i = 1, n % 37 do
        if n % 3 == 0 then parts[i] = string.char(math.random(0, 255)) else parts[i] = alphabet[math.random(#alphabet)] end
      end
      local text = table.concat(parts)
      local toks, count = e:tokenize(text)
      assert.equal(#toks, count)
      local total = 0
      for _, t in ipairs(toks) do
        assert.is_truthy(utf8.len(t), "invalid UTF-8 token")
        assert.is_nil(t:find("[%s%p%c%u]"), "token with a separator or capital: " .. t)
        total = total + #t
      end
      assert.is_true(total <= #text)
      local f, lengths = e:encode({ text, text .. " x" })
      assert.equal(math.max(#toks, 1), lengths[1])
      assert.equal(#toks + 1, lengths[2])
      assert.is_true(core.all_finite(f))
    end
  end)

  it("maps the same word to the same vector in any text, case and punctuation aside", function()
    local e = E.create("words", { dim = 16, seed = 5, pos = false })
    local f, lengths = e:encode({ "cat", "The CAT!", "a dog, a cat" })
    assert.same({ 1, 2, 4 }, lengths)
    local r = rows(f)
    assert.same(r[1][1], r[2][2])
    assert.same(r[1][1], r[3][4])
    assert.same(r[3][1], r[3][3])          -- "a" twice
    assert.same(rows(e:vector("cat")), r[1][1])
    assert.not_same(r[1][1], r[3][2])      -- cat vs dog
    -- with positions: normalisation gives identical features
    local ep = E.create("words", { dim = 16, seed = 5 })
    assert.equal(bytes((ep:encode({ "Two  Words." }))), bytes((ep:encode({ "two words" }))))
    -- padding rows are zero
    for l = 2, 4 do assert.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, r[1][l]) end
  end)

  it("word vectors are standard normal and nearly orthogonal", function()
    local e = E.create("words", { dim = 4096, seed = 1, pos = false })
    local a, b = e:vector("sneaker"), e:vector("sandal")
    near(core.sum_all(a) / 4096, 0, 0.06, "mean")
    near(core.sumsq(a) / 4096, 1, 0.08, "variance")
    local dot = core.sum_all(oe.mul(a, b))
    assert.is_true(math.abs(dot / math.sqrt(core.sumsq(a) * core.sumsq(b))) < 0.08)
    -- four moments of a normal: E z^4 = 3
    local z4 = core.sum_all(oe.mul(oe.mul(a, a), oe.mul(a, a))) / 4096
    near(z4, 3, 0.5, "fourth moment")
  end)

  it("adds sinusoidal positions (hand-worked, D = 4)", function()
    local ep = E.create("words", { dim = 4, seed = 2, pos = true })
    local en = E.create("words", { dim = 4, seed = 2, pos = false })
    local a, b = rows(ep:encode({ "one two three" })), rows(en:encode({ "one two three" }))
    for p = 0, 2 do
      -- w_0 = 1, w_1 = 10000^(-2/4) = 0.01
      local want = { math.sin(p), math.cos(p), math.sin(0.01 * p), math.cos(0.01 * p) }
      for d = 1, 4 do near(a[1][p + 1][d] - b[1][p + 1][d], want[d], 2e-6, "position " .. p .. " dim " .. d) end
    end
    local pe = rows(core.enc_pos1d(3, 6, 2))
    near(pe[3][5], 2 * math.sin(2 * 10000 ^ (-4 / 6)), 1e-6, "pos1d D 6 dim 4")
    near(pe[3][6], 2 * math.cos(2 * 10000 ^ (-4 / 6)), 1e-6, "pos1d D 6 dim 5")
  end)

  it("truncates to max_len and encodes empty texts as one [EMPTY] token", function()
    local e = E.create("words", { dim = 8, max_len = 3 })
    local f, lengths = e:encode({ "a b c d e", "a b c", "", "?!" })
    assert.same({ 3, 3, 1, 1 }, lengths)
    assert.same({ 4, 3, 8 }, core.shape(f))
    local r = rows(f)
    assert.same(r[2], r[1])
    local en = E.create("words", { dim = 8, max_len = 3, pos = false })
    assert.same(rows(en:vector("[EMPTY]")), rows(en:encode({ "" }))[1][1])
    assert.same(r[3], r[4])
    assert.not_same(r[3][1], r[1][1])
  end)

  it("character n-grams make similar spellings similar", function()
    local plain = E.create("words", { dim = 1024, seed = 3, pos = false })
    local ng = E.create("words", { dim = 1024, seed = 3, pos = false, ngrams = { 3, 5 } })
    local function cos(e, a, b)
      local x, y = e:vector(a), e:vector(b)
      return core.sum_all(oe.mul(x, y)) / math.sqrt(core.sumsq(x) * core.sumsq(y))
    end
    assert.is_true(math.abs(cos(plain, "sneaker", "sneakers")) < 0.15)
    -- <sneaker>: 7 + 6 + 5 n-grams of 3, 4, 5 code points + the word = 19 vectors; <sneakers>: 22;
    -- 6 + 5 + 4 = 15 shared: cosine about 15 / sqrt(19 * 22)
    near(cos(ng, "sneaker", "sneakers"), 15 / math.sqrt(19 * 22), 0.06, "shared n-grams")
    assert.is_true(math.abs(cos(ng, "sneaker", "trouser")) < 0.15)
    -- unit variance per coordinate kept: (word + 3-, 4-, 5-grams of "<sneaker>") / sqrt(1 + 7 + 6 + 5)
    near(core.sumsq(ng:vector("sneaker")) / 1024, 1, 0.15, "n-gram variance")
    -- code points, not bytes: "naïve" vs "naive" share n-grams but are different
    -- 2 of 13 vectors shared ("<na", "ve>"), so about 2 / 13
    near(cos(ng, "na\u{EF}ve", "naive"), 2 / 13, 0.06, "code-point n-grams")
    assert.not_equal(plain.id, ng.id)
  end)

  it("is deterministic; the seed changes id and output; every setting changes the id", function()
    local texts = { "a photo of a sneaker", "seven" }
    local e1, e2 = E.create("words", { seed = 4 }), E.create("words", { seed = 4 })
    assert.equal(bytes((e1:encode(texts))), bytes((e2:encode(texts))))
    local e3 = E.create("words", { seed = 5 })
    assert.not_equal(e1.id, e3.id)
    assert.not_equal(bytes((e1:encode(texts))), bytes((e3:encode(texts))))
    local ids = {}
    for _, o in ipairs({ {}, { dim = 32 }, { seed = 1 }, { max_len = 8 }, { ngrams = 3 }, { ngrams = { 3, 4 } },
      { pos = false }, { pos_scale = 0.5 } }) do
      local id = E.create("words", o).id
      assert.is_nil(ids[id], id)
      ids[id] = true
    end
  end)

  it("gives the same bytes in another process", function()
    local e = E.create("words", { dim = 8, seed = 77, ngrams = 3 })
    local here = core.sum_all(oe.mul((e:encode({ "Fresh process, same vectors" })), 1000))
    local code = [[local oe = require "oneencoder"; local e = oe.encoders.create("words", { dim = 8, seed = 77, ngrams = 3 });]] ..
      [[io.write(string.format("%.17g", oe.core.sum_all(oe.mul((e:encode({ "Fresh process, same vectors" })), 1000))))]]
    local p = assert(io.popen(H.lua_cmd() .. " -e '" .. code .. "'"))
    local there = tonumber(p:read("a"))
    p:close()
    assert.equal(here, there)
  end)

  it("gives clear errors on bad input", function()
    local e = E.create("words")
    has(err_of(e.encode, e, {}), "words:encode: empty batch (no texts)")
    has(err_of(e.encode, e, "one text"), "got one string")
    has(err_of(e.encode, e, { "a", 3 }), "item 2 is a number, expected a string")
    has(err_of(e.encode, e, core.zeros({ 2 })), "expected a list of strings")
  end)
end)

describe("logmel", function()
  local rate = 16000
  local w1, w2 = sine(16000, 440, rate), sine(8000, 1000, rate, 0.3)

  it("tokens are the log-mel frames of each clip, lengths from its true duration", function()
    local e = E.create("logmel", { n_mels = 20, normalize = false })
    assert.equal(20, e.dim)
    local f, lengths = e:encode({ w1, w2 })
    assert.same({ 101, 51 }, lengths)  -- 1 + T / 160 (centered frames)
    assert.same({ 2, 101, 20 }, core.shape(f))
    local r = rows(f)
    for b, w in ipairs({ w1, w2 }) do
      local mel = rows(audio.log_mel(w, rate, { n_mels = 20 }))   -- (20, frames)
      for t = 1, lengths[b] do
        for m = 1, 20 do assert.equal(mel[m][t], r[b][t][m]) end
      end
    end
    for t = 52, 101 do
      for m = 1, 20 do assert.equal(0, r[2][t][m]) end
    end
    -- a (B, T) tensor: every clip has T samples (and the tokens of a clip alone)
    local f2, l2 = e:encode(core.cat({ core.reshape(w2, { 1, 8000 }), core.reshape(w2, { 1, 8000 }) }, 1))
    assert.same({ 51, 51 }, l2)
    assert.same(rows(core.narrow(core.narrow(f, 1, 2, 1), 2, 1, 51))[1], rows(f2)[2])
  end)

  it("stacks k frames per token exactly", function()
    for _, norm in ipairs({ false, "clip" }) do
      local e1 = E.create("logmel", { n_mels = 8, normalize = norm })
      local e3 = E.create("logmel", { n_mels = 8, stack = 3, normalize = norm })
      assert.equal(24, e3.dim)
      local f1, l1 = e1:encode({ w1, w2 })
      local f3, l3 = e3:encode({ w1, w2 })
      assert.same({ 34, 17 }, l3)   -- ceil(101 / 3), ceil(51 / 3)
      assert.same({ 2, 34, 24 }, core.shape(f3))
      local a, b = rows(f1), rows(f3)
      for c = 1, 2 do
        for t = 1, 34 do
          for j = 0, 2 do
            local fr = (t - 1) * 3 + j + 1
            for m = 1, 8 do
              local want = fr <= l1[c] and a[c][fr][m] or 0
              assert.equal(want, b[c][t][j * 8 + m])
            end
          end
        end
      end
    end
  end)

  it("normalize = \"clip\" standardises each clip over its true frames, independent of the batch", function()
    local e = E.create("logmel", { n_mels = 10 })
    local f, lengths = e:encode({ w1, w2 })
    local r = rows(f)
    for b = 1, 2 do
      local s, ss, n = 0, 0, 0
      for t = 1, lengths[b] do
        for m = 1, 10 do s = s + r[b][t][m]; ss = ss + r[b][t][m] ^ 2; n = n + 1 end
      end
      near(s / n, 0, 1e-4, "mean")
      near(ss / n, 1, 1e-3, "variance")
    end
    local alone = rows((e:encode({ w2 })))
    for t = 1, 51 do assert.same(alone[1][t], r[2][t]) end
  end)

  it("projects with a fixed seeded matrix: equal to an explicit matmul; padding stays 0", function()
    local raw = E.create("logmel", { n_mels = 8, stack = 2 })
    local e = E.create("logmel", { n_mels = 8, stack = 2, proj = 12, seed = 3 })
    local t = raw:encode({ w1, w2 })
    local f, lengths = e:encode({ w1, w2 })
    local s = core.shape(t)
    assert.equal(bytes(oe.matmul(core.reshape(t, { s[1] * s[2], 16 }), e.proj_weight)), bytes(core.reshape(f, { s[1] * s[2], 12 })))
    local r = rows(f)
    for l = lengths[2] + 1, s[2] do
      for d = 1, 12 do assert.equal(0, r[2][l][d]) end
    end
  end)

  it("is deterministic and changes the id with every setting", function()
    local o = { n_mels = 16, stack = 2, proj = 8, seed = 1 }
    local a = bytes((E.create("logmel", o):encode({ w1 })))
    assert.equal(a, bytes((E.create("logmel", o):encode({ w1 }))))
    local b = bytes((E.create("logmel", { n_mels = 16, stack = 2, proj = 8, seed = 2 }):encode({ w1 })))
    assert.not_equal(a, b)
    local ids = {}
    for _, v in ipairs({ {}, { rate = 8000 }, { n_mels = 40 }, { mel = { hop = 80 } }, { mel = { n_fft = 512 } }, { stack = 2 },
      { normalize = false }, { proj = 32 }, { proj = 32, seed = 1 }, { max_seconds = 5 } }) do
      local id = E.create("logmel", v).id
      assert.is_nil(ids[id], id)
      ids[id] = true
    end
  end)

  it("gives clear errors on bad input", function()
    local e = E.create("logmel")
    has(err_of(e.encode, e, {}), "logmel:encode: empty batch (no waveforms)")
    has(err_of(e.encode, e, { w1, core.zeros({ 2, 100 }) }), "item 2: waveforms must be mono (T), got (2, 100)")
    has(err_of(e.encode, e, { core.zeros({ 100 }, "int32") }), "item 1: waveforms must be float32, got int32")
    has(err_of(e.encode, e, { core.zeros({ 0 }) }), "item 1: empty waveform")
    has(err_of(e.encode, e, core.zeros({ 3 })), "expected a list of (T) waveforms or a float32 (B, T) tensor")
  end)
end)

describe("frames", function()
  local function clip(T, seed)
    return img4(T, 3, 8, 8, function(t, c, y, x) return math.sin(seed + t * 1.3 + c * 0.7 + y * 0.45 + x * 0.8) end)
  end

  it("one token per frame: the mean of the frame's patch tokens", function()
    local o = { size = 8, patch = 4, proj = 16, seed = 2 }
    local e = E.create("frames", { size = 8, patch = 4, proj = 16, seed = 2, pos = false })
    local p = E.create("patches", { size = 8, patch = 4, proj = 16, seed = 2, pos = false })
    assert.equal(16, e.dim)
    local c = clip(3, 0)
    local f, lengths = e:encode({ c })
    assert.same({ 1, 3, 16 }, core.shape(f))
    assert.same({ 3 }, lengths)
    local tok = rows(p:encode(c))     -- (3, 4, 16)
    local r = rows(f)
    for t = 1, 3 do
      for d = 1, 16 do
        local s = 0
        for l = 1, 4 do s = s + tok[t][l][d] end
        near(r[1][t][d], s / 4, 1e-6, "frame " .. t .. " dim " .. d)
      end
    end
    -- with temporal positions: + [sin t w_i, cos t w_i]
    local ep = E.create("frames", o)
    local rp = rows(ep:encode({ c }))
    for t = 0, 2 do
      for i = 0, 7 do
        local w = 10000 ^ (-2 * i / 16)
        near(rp[1][t + 1][2 * i + 1] - r[1][t + 1][2 * i + 1], math.sin(t * w), 2e-6, "sin")
        near(rp[1][t + 1][2 * i + 2] - r[1][t + 1][2 * i + 2], math.cos(t * w), 2e-6, "cos")
      end
    end
  end)

  it("clips of different lengths: lengths, zero padding, same tokens as alone", function()
    local e = E.create("frames", { size = 8, patch = 4, proj = 16, seed = 2 })
    local a, b = clip(4, 1), clip(2, 2)
    local f, lengths = e:encode({ a, b })
    assert.same({ 4, 2 }, lengths)
    assert.same({ 2, 4, 16 }, core.shape(f))
    local r = rows(f)
    local alone = rows((e:encode({ b })))
    -- alone: other GEMM shapes. Each value sums 48 products of |pixel| <= 1 and weights, then
    -- averages 4 patches and adds the position code: (48 + 4 + 1) roundings of at most the
    -- largest column sum of |W|
    local W = E.create("patches", { size = 8, patch = 4, proj = 16, seed = 2 }).proj_weight
    local tol = H.sum_tol(48 + 4 + 1, math.max(table.unpack(core.totable(W:abs():sum(1)))) + 1)
    for t = 1, 2 do for d = 1, 16 do near(r[2][t][d], alone[1][t][d], tol, "alone") end end
    for t = 3, 4 do for d = 1, 16 do assert.equal(0, r[2][t][d]) end end
    -- a (B, T, C, H, W) tensor equals the list of its clips
    local five = core.reshape(core.cat({ clip(2, 5), clip(2, 6) }, 1), { 2, 2, 3, 8, 8 })
    local g = e:encode(five)
    local h = e:encode({ clip(2, 5), clip(2, 6) })
    assert.equal(bytes(h), bytes(g))
  end)

  it("uint8 (T, H, W, C) clips are converted like images", function()
    local e = E.create("frames", { size = 4, patch = 2, pos = false })
    local frames = {}
    for t = 1, 2 do frames[t] = core.reshape(u8(4, 4, 3, function(y, x, c) return (y * 60 + x * 20 + c * 5 + t * 30) % 256 end), { 1, 4, 4, 3 }) end
    local cu = core.cat(frames, 1)       -- (2, 4, 4, 3)
    local as_float = oe.div(oe.sub(oe.mul(core.permute(core.to(cu, "float32"), { 1, 4, 2, 3 }), 1 / 255), 0.5), 0.5)
    local a, b = rows(e:encode({ cu })), rows(e:encode({ as_float }))
    for t = 1, 2 do for d = 1, 12 do near(a[1][t][d], b[1][t][d], 1e-6, "uint8 clip") end end
  end)

  it("is deterministic and changes the id with every setting", function()
    local c = clip(2, 3)
    local o = { size = 8, patch = 4, proj = 8, seed = 1 }
    assert.equal(bytes((E.create("frames", o):encode({ c }))), bytes((E.create("frames", o):encode({ c }))))
    assert.not_equal(bytes((E.create("frames", o):encode({ c }))),
      bytes((E.create("frames", { size = 8, patch = 4, proj = 8, seed = 2 }):encode({ c }))))
    local ids = {}
    for _, v in ipairs({ {}, { frames = 4 }, { size = 16 }, { patch = 8 }, { channels = 1 }, { normalize = "imagenet" },
      { method = "bicubic_pil" }, { proj = 16 }, { proj = 16, seed = 1 }, { pos = false }, { pos_scale = 2 },
      { strategy = "consecutive" }, { strategy = "consecutive", stride = 2 }, { strategy = "consecutive", start = "center" } }) do
      local opts = { size = 8, patch = 4 }
      for k, x in pairs(v) do opts[k] = x end
      local id = E.create("frames", opts).id
      assert.is_nil(ids[id], id)
      ids[id] = true
    end
  end)

  it("gives clear errors on bad input", function()
    local e = E.create("frames", { size = 8, patch = 4 })
    has(err_of(e.encode, e, {}), "frames:encode: empty batch (no clips)")
    has(err_of(e.encode, e, { core.zeros({ 3, 8, 8 }) }), "item 1: clips must be float32 (T, C, H, W) or uint8 (T, H, W, C)")
    has(err_of(e.encode, e, { core.zeros({ 0, 3, 8, 8 }) }), "item 1: clip without frames")
    has(err_of(e.encode, e, { core.zeros({ 2, 2, 8, 8 }) }), "item 1: float32 images must be (3, H, W) or (1, H, W)")
    has(err_of(e.encode, e, core.zeros({ 2, 3, 8, 8 })), "expected a float32 (B, T, C, H, W) tensor")
  end)
end)

describe("encode_files", function()
  local tmp
  local function sh(cmd) return os.execute(cmd .. " >/dev/null 2>&1") end
  local function write(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
  setup(function()
    tmp = os.tmpname(); os.remove(tmp); assert(sh("mkdir -p " .. tmp))
  end)
  teardown(function() if tmp then sh("rm -rf " .. tmp) end end)

  local function images()
    local a = u8(8, 8, 3, function(y, x, c) return (y * 30 + x * 7 + c * 50) % 256 end)
    local b = u8(8, 8, 3, function(y, x, c) return (255 - y * 20 - x * 3 - c) % 256 end)
    assert(image.save(a, tmp .. "/a.png"))
    assert(image.save(b, tmp .. "/b.png"))
    write(tmp .. "/bad.png", "\137PNG\r\n\26\n this is not a png")
    write(tmp .. "/empty.jpg", "")
    return { tmp .. "/a.png", tmp .. "/bad.png", tmp .. "/b.png", tmp .. "/missing.png", tmp .. "/empty.jpg" }, a, b
  end

  it("fail: raises on the first bad item, naming it", function()
    local paths = images()
    local e = E.create("patches", { patch = 4, proj = 8 })
    local msg = err_of(E.encode_files, e, paths)
    has(msg, "encode_files: item 2: " .. tmp .. "/bad.png: ")
    has(err_of(E.encode_files, e, paths, { on_error = "stop" }), "on_error must be \"fail\" or \"skip\"")
  end)

  it("skip: encodes the good items and reports the bad ones at the end", function()
    local paths, a, b = images()
    local e = E.create("patches", { patch = 4, proj = 8, cls = true })
    local f, lengths, kept, bad = E.encode_files(e, paths, { on_error = "skip", batch = 1 })
    assert.same({ 1, 3 }, kept)
    assert.same({ 5, 5 }, lengths)
    -- batches of one against a batch of two: other GEMM shapes; each feature is a sum of
    -- 4 * 4 * 3 = 48 products of pixels in [0, 1] and projection weights (+ a bias)
    local want = e:encode({ a, b })
    -- ("half" normalisation: |pixel| <= 1, so sum |x_i w_ij| <= the largest column sum of |W|)
    local colsum = core.totable(e.proj_weight:abs():sum(1))
    H.allclose(f, want, H.sum_tol(49, math.max(table.unpack(colsum)) + 1), "features")
    assert.equal(3, #bad)
    assert.same({ 2, 4, 5 }, { bad[1].index, bad[2].index, bad[3].index })
    assert.equal(tmp .. "/bad.png", bad[1].path)
    assert.equal(tmp .. "/missing.png", bad[2].path)
    for _, item in ipairs(bad) do assert.equal("string", type(item.reason)); assert.is_true(#item.reason > 0) end
    has(bad[2].reason, "missing.png")
  end)

  it("items the encoder cannot take are bad items too; batches are padded to the longest", function()
    local e = E.create("words", { dim = 8 })
    write(tmp .. "/t1.txt", "A short caption.")
    write(tmp .. "/t2.txt", "a much longer caption with many more words")
    assert(sh("mkdir -p " .. tmp .. "/dir.txt"))
    local paths = { tmp .. "/t1.txt", tmp .. "/dir.txt", tmp .. "/t2.txt", tmp .. "/none.txt" }
    local f, lengths, kept, bad = E.encode_files(e, paths, { on_error = "skip", batch = 1 })
    assert.same({ 1, 3 }, kept)
    assert.same({ 3, 8 }, lengths)
    assert.equal(bytes((e:encode({ "A short caption.", "a much longer caption with many more words" }))), bytes(f))
    assert.same({ 2, 4 }, { bad[1].index, bad[2].index })
    -- a loader whose result the encoder rejects
    local ep = E.create("patches", { patch = 2 })
    local loader = function(p)
      if p == "gray2" then return core.zeros({ 4, 4, 2 }, "uint8") end
      return core.zeros({ 4, 4, 3 }, "uint8")
    end
    local g, _, k, bd = E.encode_files(ep, { "ok", "gray2", "ok" }, { loader = loader, on_error = "skip" })
    assert.same({ 2, 4, 12 }, core.shape(g))
    assert.same({ 1, 3 }, k)
    has(bd[1].reason, "uint8 images must be (H, W, 3)")
    has(err_of(E.encode_files, ep, { "ok", "gray2" }, { loader = loader }), "encode_files: item 2: gray2: uint8 images must be")
    -- every item bad
    local z, zl, zk, zb = E.encode_files(ep, { "gray2" }, { loader = loader, on_error = "skip" })
    assert.same({ 0, 0, 12 }, core.shape(z))
    assert.same({}, zl)
    assert.same({}, zk)
    assert.equal(1, #zb)
  end)

  it("loads audio and video through their modules", function()
    local w = sine(8000, 300, 16000)
    assert(audio.save_wav(w, 16000, tmp .. "/a.wav", "float"))
    write(tmp .. "/b.wav", "RIFF\0\0\0\0WAVEfmt ")
    local e = E.create("logmel", { n_mels = 8 })
    local f, lengths, kept, bad = E.encode_files(e, { tmp .. "/a.wav", tmp .. "/b.wav" }, { on_error = "skip" })
    assert.same({ 1 }, kept)
    assert.same({ 51 }, lengths)
    assert.equal(bytes((e:encode({ w }))), bytes(f))
    assert.equal(1, #bad)
    local ok = sh("ffmpeg -nostdin -v error -y -f lavfi -i testsrc=size=32x32:rate=10:duration=1 -c:v ffv1 " .. tmp .. "/v.mkv")
    assert.is_truthy(ok)
    local ev = E.create("frames", { frames = 3, size = 16, patch = 8, proj = 8 })
    local fv, lv, kv, bv = E.encode_files(ev, { tmp .. "/v.mkv", tmp .. "/a.wav" }, { on_error = "skip" })
    assert.same({ 1 }, kv)
    assert.same({ 3 }, lv)
    assert.same({ 1, 3, 8 }, core.shape(fv))
    assert.equal(bytes((ev:encode({ (ev:load(tmp .. "/v.mkv")) }))), bytes(fv))
    assert.equal(tmp .. "/a.wav", bv[1].path)
  end)
end)
