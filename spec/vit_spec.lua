-- The pretrained ViT runtime (csrc/frozen/vit.c, encoders/vit.lua) against torchvision's
-- VisionTransformer on fixtures written by tools/frozen_fixtures.py (random weights, depth 2,
-- width 96, 3 heads, MLP 192, patch 16, 224 input; the spec itself needs no Python).
--
-- Tolerance 1e-4 (absolute) on outputs of magnitude up to ~4 (they leave a LayerNorm with random
-- gains 1 +- 0.2 and biases +-0.2). Both sides compute the same float32 arithmetic in another
-- order (OpenBLAS blocking and our fused passes against PyTorch's kernels). A dot product of
-- K terms moves by at most K u sum|a_i b_i| (spec/helpers.lua); the longest here is the patch
-- projection, K = 768 with sum|a b| about 30 (pixels in [-1, 1], weights N(0, 1/768)), bound
-- 768 * 6e-8 * 30 = 1.4e-3 in the worst case, but rounding errors of random sign add like a
-- random walk: sqrt(K) u * 30 = 5e-5 is the realistic size, and each LayerNorm rescales by its
-- 1/std (~1 here). Measured differences are 2e-6 to 4e-6. A wrong layout, head split, eps or
-- mask gives differences of order 0.1 to 1, so 1e-4 separates the two by orders of magnitude.
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local DIR = "spec/fixtures/frozen/"
local TIMM = DIR .. "vit_timm.safetensors"
local HF = DIR .. "vit_hf.safetensors"
local HF_CONFIG = DIR .. "vit_hf_config.json"
local TOL = 1e-4

local ref = assert(oe.load(DIR .. "vit_ref.safetensors"))

-- the fixture's pixels: an integer hash of the flat index (same as pixels() in the tool)
local function pixels(B, C, Hh, W, salt)
  local t = {}
  for i = 0, B * C * Hh * W - 1 do
    local v = ((i + salt) * 2654435761) % 4294967296
    t[i + 1] = ((v >> 8) % 1000) / 500.0 - 1.0
  end
  return core.reshape(oe.tensor(t), { B, C, Hh, W })
end
local X = pixels(2, 3, 224, 224, 0)

local function create(opts)
  local enc, err = oe.encoders.create("vit", opts)
  assert(enc, err)
  return enc
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function same_bits(a, b, what)
  assert.are.same(core.shape(b), core.shape(a), what .. ": shape")
  assert.equal(0, (a - b):abs():max():item(), what .. ": not bit-identical")
end

describe("vit: timm layout against torchvision", function()
  it("gives the encoder sequence after the final norm from pixels", function()
    local enc = create({ weights = TIMM, heads = 3 })
    assert.equal(96, enc.dim)
    local cfg = enc.config
    assert.same({ "timm", 2, 3, 192, 16, 14 }, { cfg.layout, cfg.depth, cfg.heads, cfg.mlp, cfg.patch, cfg.grid_h })
    H.near(cfg.eps, 1e-6, 1e-12, "timm eps")
    local f, lengths = enc:encode(X)
    assert.same({ 197, 197 }, lengths)
    H.allclose(f, ref.features, TOL, "timm features")
    -- the scratch buffers are reused: a smaller batch (another path: one image's products are
    -- split over the threads instead of one image per thread), then the first batch again
    local one = enc:encode(core.narrow(X, 1, 2, 1))
    H.allclose(one, core.narrow(ref.features, 1, 2, 1), TOL, "batch of 1 after 2")
    same_bits(enc:encode(X), f, "batch of 2 again")
  end)

  it("uses float32 weights in place, without copies", function()
    local w = assert(core.frozen_open(TIMM))
    local enc = create({ weights = w, heads = 3 })
    local info = core.frozen_info(w)
    -- every tensor but the ignored head.weight / head.bias
    assert.same({ info.tensors - 2, 0, 0 }, { info.inplace, info.converted, info.converted_bytes })
    assert(enc.id:find(TIMM, 1, true) and enc.id:find(":" .. info.size .. ":", 1, true), enc.id)
  end)

  it("resamples the position table for another input size as timm does", function()
    local enc = create({ weights = TIMM, heads = 3, interpolate_pos = true })
    local f = enc:encode(pixels(1, 3, 192, 256, 7))
    assert.same({ 1, 193, 96 }, core.shape(f))
    H.allclose(f, ref.features_192x256, TOL, "192x256 features")
    local fixed = create({ weights = TIMM, heads = 3 })
    H.fails_with(function() fixed:encode(pixels(1, 3, 192, 256, 7)) end, "12x16 patch grid", "14x14 positions",
      "interpolate_pos")
  end)
end)

describe("vit: Hugging Face layout", function()
  it("reads F16 weights under vit. with config.json (heads, eps) and matches torchvision", function()
    local w = assert(core.frozen_open(HF))
    local enc = create({ weights = w, config = HF_CONFIG })
    assert.equal("hf", enc.config.layout)
    assert.equal(3, enc.config.heads)
    assert.equal("vit.", enc.settings.prefix)
    H.allclose(enc:encode(X), ref.features_hf_f16, TOL, "hf features")
    local info = core.frozen_info(w)
    -- every tensor but classifier.* (outside the prefix) converted once, none in place
    assert.same({ 0, info.tensors - 2, (info.tensors - 2) > 0 }, { info.inplace, info.converted, info.converted_bytes > 0 })
  end)

  it("takes heads and eps from options when there is no config, and checks them against it", function()
    local a = create({ weights = HF, config = HF_CONFIG })
    local b = create({ weights = HF, config = false, heads = 3, eps = 1e-6 })
    same_bits(b:encode(X), a:encode(X), "options instead of config.json")
    local c = create({ weights = HF, config = false, heads = 3 })
    H.near(c.config.eps, 1e-12, 1e-20, "HF default eps")
    local enc, err = oe.encoders.create("vit", { weights = HF, config = HF_CONFIG, heads = 4 })
    assert.is_nil(enc)
    assert(err:find("num_attention_heads = 3 but the heads option says 4", 1, true), err)
  end)

  it("finds config.json next to the weights", function()
    local d = tmpdir()
    assert(os.execute(string.format("cp '%s' '%s/model.safetensors' && cp '%s' '%s/config.json'", HF, d, HF_CONFIG, d)))
    local enc = create({ weights = d .. "/model.safetensors" })
    assert.equal(d .. "/config.json", enc.settings.config)
    assert.equal(3, enc.config.heads)
    H.allclose(enc:encode(X), ref.features_hf_f16, TOL, "hf features, config found")
    os.execute("rm -rf '" .. d .. "'")
  end)
end)

describe("vit: weights in other precisions and shared files", function()
  it("converts F16 and BF16 once, to the same values as rounding the float32 weights", function()
    local t = assert(oe.load(TIMM))
    local d = tmpdir()
    local enc32 = create({ weights = TIMM, heads = 3 })
    for _, dt in ipairs({ "float16", "bfloat16" }) do
      local half = d .. "/" .. dt .. ".safetensors"
      assert(oe.save(half, t, nil, { dtype = dt }))
      local rounded = d .. "/" .. dt .. "_as_f32.safetensors"
      assert(oe.save(rounded, assert(oe.load(half))))
      local a = create({ weights = half, heads = 3 }):encode(X)
      local b = create({ weights = rounded, heads = 3 }):encode(X)
      same_bits(a, b, dt .. " converted at load vs rounded float32 in place")
      -- and the rounding really happened (not the float32 weights read again)
      assert((a - enc32:encode(X)):abs():max():item() > 0, dt)
    end
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("reads a prefix inside a larger file through one shared mapping", function()
    local t = assert(oe.load(TIMM))
    local both = {}
    for k, v in pairs(t) do both["image_encoder.pretrained_vit." .. k] = v end
    for k, v in pairs(assert(oe.load(DIR .. "bert.safetensors"))) do
      if k:sub(1, 5) == "bert." then both["text_encoder.pretrained_bert." .. k:sub(6)] = v end
    end
    both["image_encoder.projection_head.linear_layer1.weight"] = oe.zeros({ 4, 96 })
    local path = os.tmpname()
    assert(oe.save(path, both))
    local w = assert(core.frozen_open(path))
    local enc = create({ weights = w, prefix = "image_encoder.pretrained_vit.", heads = 3 })
    same_bits(enc:encode(X), create({ weights = TIMM, heads = 3 }):encode(X), "prefixed copy")
    local txt = assert(oe.encoders.create("bert", { weights = w, prefix = "text_encoder.pretrained_bert.", heads = 4 }))
    assert.equal(64, txt.dim)
    os.remove(path)
  end)
end)

describe("vit: the image pipeline from a JPEG", function()
  local jpg = DIR .. "photo.jpg"
  -- reference: OpenCV imread + cvtColor + resize INTER_LINEAR (original), torchvision
  -- transforms on PIL (timm), PIL resize (hf); then torchvision's model
  for _, p in ipairs({ "original", "timm", "hf" }) do
    it("matches the reference for the " .. p .. " preset", function()
      local enc = create({ weights = TIMM, heads = 3, preprocess = p })
      local f, lengths, kept, bad = enc:encode_files({ jpg })
      assert.same({ { 1 }, {} }, { kept, bad })
      assert.same({ 197 }, lengths)
      H.allclose(f, ref["jpeg_" .. p], TOL, p .. " pipeline")
    end)
  end
  it("drops alpha instead of compositing it, as cv2.imread and PIL's convert(\"RGB\") do", function()
    local enc = create({ weights = TIMM, heads = 3 })
    local img = assert(enc:load("spec/fixtures/image/rgba8.png"))
    local f = assert(io.open("spec/fixtures/image/rgba8.raw", "rb"))
    local rgba = f:read("a") -- PIL's RGBA bytes after a text header line
    f:close()
    local s = core.shape(img)
    assert.same(3, s[3])
    local got, n = core.to_bytes(img), s[1] * s[2]
    local px = rgba:sub(-4 * n)
    for i = 0, n - 1 do
      assert.equal(px:sub(4 * i + 1, 4 * i + 3), got:sub(3 * i + 1, 3 * i + 3), "pixel " .. i)
    end
  end)
  it("names bad files and keeps going when asked", function()
    local enc = create({ weights = TIMM, heads = 3 })
    local f, _, kept, bad = enc:encode_files({ "no/such.jpg", jpg }, { on_error = "skip" })
    assert.same({ 2 }, kept)
    assert.equal(1, #bad)
    assert(bad[1].reason:find("no/such.jpg", 1, true), bad[1].reason)
    H.allclose(f, ref.jpeg_original, TOL, "after a bad file")
  end)
end)

describe("vit: bad input", function()
  local t = assert(oe.load(TIMM))
  local function variant(edit)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    edit(c)
    local path = os.tmpname()
    assert(oe.save(path, c))
    local enc, err = oe.encoders.create("vit", { weights = path, heads = 3 })
    os.remove(path)
    assert.is_nil(enc)
    return err
  end
  local function has(s, ...)
    for _, frag in ipairs({ ... }) do assert(s:find(frag, 1, true), string.format("%q does not mention %q", s, frag)) end
  end

  it("names missing, mis-shaped and unexpected keys with their shapes", function()
    has(variant(function(c) c["blocks.1.attn.proj.bias"] = nil end), "missing tensor 'blocks.1.attn.proj.bias' (expected shape (96,))")
    has(variant(function(c) c["blocks.0.mlp.fc2.weight"] = core.permute(c["blocks.0.mlp.fc2.weight"], { 2, 1 }) end),
      "'blocks.0.mlp.fc2.weight' has shape (192, 96), expected (96, 192)")
    has(variant(function(c) c["blocks.0.ls1.gamma"] = oe.ones({ 96 }) end), "unexpected tensor", "'blocks.0.ls1.gamma' (96,)")
    has(variant(function(c) c["blocks.0.attn.qkv.weight"] = oe.zeros({ 288, 96 }, "int32") end),
      "'blocks.0.attn.qkv.weight' is I32")
    has(variant(function(c) c.cls_token = nil; c["embeddings.cls_token"] = nil end), "no ViT under the prefix")
    has(variant(function(c) c.pos_embed = oe.zeros({ 1, 190, 96 }) end), "189 patch positions do not form a square grid")
  end)

  it("refuses heads that do not divide the width, and bad files", function()
    local enc, err = oe.encoders.create("vit", { weights = TIMM, heads = 5 })
    assert.is_nil(enc)
    assert(err:find("width 96 is not divisible by 5 heads", 1, true), err)
    enc, err = oe.encoders.create("vit", { weights = "no/such/file.safetensors" })
    assert.is_nil(enc)
    assert(err:find("no/such/file.safetensors: cannot open", 1, true), err)
    local path = os.tmpname()
    local f = io.open(path, "wb"); f:write(io.open(TIMM, "rb"):read(50000)); f:close()
    enc, err = oe.encoders.create("vit", { weights = path })
    assert.is_nil(enc)
    assert(err:find(path, 1, true), err)
    os.remove(path)
    H.fails_with(function() oe.encoders.create("vit", { heads = 3 }) end, "option 'weights' is required")
    H.fails_with(function() oe.encoders.create("vit", { weights = TIMM, preprocess = "clip" }) end, "unknown preprocess 'clip'")
  end)

  it("reports a weights file truncated after opening instead of touching unmapped pages", function()
    local path = os.tmpname()
    assert(os.execute(string.format("cp '%s' '%s'", TIMM, path)))
    local enc = create({ weights = path, heads = 3 })
    assert(os.execute(string.format("truncate -s 4096 '%s'", path)))
    H.fails_with(function() enc:encode(X) end, path, "changed size on disk (4096 bytes")
    os.remove(path)
  end)

  it("refuses a config.json that is malformed or disagrees with the weights", function()
    local function with_config(text)
      local p = os.tmpname()
      local f = io.open(p, "w"); f:write(text); f:close()
      local enc, err = oe.encoders.create("vit", { weights = HF, config = p })
      os.remove(p)
      assert.is_nil(enc)
      return err
    end
    has(with_config('{"hidden_size": 96,'), "not valid JSON")
    has(with_config('[1, 2]'), "must hold a JSON object")
    has(with_config('{"hidden_size": 128}'), "\"hidden_size\" = 128 disagrees with the weights (patch projection width: 96)")
    has(with_config('{"num_hidden_layers": 3}'), "\"num_hidden_layers\" = 3 disagrees", "blocks found: 2")
    has(with_config('{"num_attention_heads": "three"}'), "\"num_attention_heads\" must be a non-negative integer")
    has(with_config('{"hidden_act": "gelu_new"}'), "hidden_act \"gelu_new\" is not supported")
    has(with_config('{"image_size": 256}'), "\"image_size\" = 256 disagrees")
    has(with_config('{"patch_size": 16, "patch_size": 16}'), "appears twice")
  end)

  it("rejects inputs of the wrong shape, channels or type", function()
    local enc = create({ weights = TIMM, heads = 3 })
    H.fails_with(function() enc:encode(oe.zeros({ 1, 1, 224, 224 })) end, "has 1 channels, the weights expect 3")
    H.fails_with(function() enc:encode(oe.zeros({ 1, 3, 200, 224 })) end, "not a positive multiple of the patch size 16")
    H.fails_with(function() enc:encode({}) end, "empty batch")
    H.fails_with(function() enc:encode({ "x" }) end, "item 1: expected an image tensor")
    H.fails_with(function() enc:encode({ oe.zeros({ 4, 4, 2 }, "uint8") }) end, "item 1: uint8 images must be")
    -- images of any size are resized by the preset
    local f = enc:encode({ oe.zeros({ 30, 50, 3 }, "uint8"), oe.zeros({ 300, 20, 3 }, "uint8") })
    assert.same({ 2, 197, 96 }, core.shape(f))
  end)
end)
