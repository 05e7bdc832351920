-- oe.pretrained: a OneEncoder text-image checkpoint in the original layout, end to end, against the
-- PyTorch pipeline on fixtures written by tools/pretrained_fixtures.py (torchvision ViT in timm
-- names, the BertModel composition, the original classes' heads/tokens/UP from
-- tools/oneencoder_mirror.py; small configs, random weights; OpenCV for the image preprocessing, a
-- BertTokenizer written in Python for the ids). The spec needs no Python.
--
-- Tolerance 1e-4 (absolute) on L2-normalised embeddings (entries of magnitude ~0.2, d = 32): both
-- sides run the same float32 arithmetic in another order; the longest sums are the ViT's patch
-- projection (K = 768, see vit_spec's bound, realistic error ~5e-5 before the LayerNorms) and the
-- UP's mean over 197 or 128 positions. Measured: 9e-8. A wrong preprocessing (alpha composited,
-- another resize), a padding policy mixed up, or a mask put where the original has none moves
-- entries by 1e-2 to 2e-1 (asserted below for two of them).
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local DIR = "spec/fixtures/pretrained/"
local CKPT = DIR .. "text_image.safetensors"
local VOCAB = DIR .. "vocab.txt"
local OPTS = { vocab = VOCAB, vit = { heads = 3 }, bert = { heads = 4 } }
local TOL = 1e-4

local ref, meta = assert(oe.load(DIR .. "expected.safetensors"))
local FILES, CAPS = {}, {}
for f in meta.images:gmatch("[^\n]+") do FILES[#FILES + 1] = DIR .. f end
for c in (meta.captions .. "\n"):gmatch("(.-)\n") do CAPS[#CAPS + 1] = c end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function rows(t, a, n) return core.narrow(t, 1, a, n) end
local function first(list, n) return { table.unpack(list, 1, n) } end

local M, REPORT = oe.pretrained.load(CKPT, OPTS)

-- a copy of the checkpoint changed by f(tensors), removed at the end of the spec
local VARIANTS = {}
local function variant(f)
  local t, m = assert(oe.load(CKPT))
  f(t)
  local base = os.tmpname()
  os.remove(base)
  local p = base .. ".safetensors"
  assert(oe.save(p, t, m))
  VARIANTS[#VARIANTS + 1] = p
  return p
end
teardown(function()
  for _, p in ipairs(VARIANTS) do os.remove(p) end
end)

local function load_fails(path, opts, ...)
  local m, msg = oe.pretrained.load(path, opts or OPTS)
  assert.is_nil(m)
  assert.is_string(msg)
  for _, frag in ipairs({ ... }) do
    assert(msg:find(frag, 1, true), string.format("message %q does not mention %q", msg, frag))
  end
  return msg
end

describe("pretrained.load: the original layout", function()
  it("builds the model and attaches both encoders on one mapping of the file", function()
    assert(M, REPORT)
    assert.same({ "image", "text" }, M.order)
    local vit, bert = M:encoder("image"), M:encoder("text")
    assert.equal("vit", vit.name)
    assert.equal("bert", bert.name)
    assert.equal("original", vit.preset_name)
    assert.equal(128, bert.max_length)
    assert.equal(vit.weights, bert.weights)                   -- one weights object, one mapping
    local info = core.frozen_info(vit.weights)
    assert.equal(0, info.converted)                           -- float32 used in place: no copy
    assert.is_true(info.inplace > 30)
    assert.equal("original", M.cfg.pooling)
    assert.same({ "image_encoder.pretrained_vit." }, REPORT.checkpoint.encoders.image)
    assert.same({ "text_encoder.pretrained_bert." }, REPORT.checkpoint.encoders.text)
    assert.equal(vit.id, REPORT.encoders.image)
    assert.is_false(M.training)
  end)

  it("loads a step-2 file: image and text attached from text_image_encoder.*, a new modality of a kind not run here left to set_encoder", function()
    -- (audio and video files get their Wav2Vec2 / VideoMAE attached: spec/wav2vec2_spec.lua, videomae_spec.lua)
    local p = variant(function(t)
      local names = {}
      for k in pairs(t) do names[#names + 1] = k end
      for _, k in ipairs(names) do
        t["text_image_encoder." .. k] = t[k]
        t[k] = nil
      end
      t.temperature = oe.tensor(0.07)
      local g = oe.Generator(3)
      local A = "xray_encoder.alignment_layer."
      t[A .. "linear_layer1.weight"], t[A .. "linear_layer1.bias"] = g:randn({ 32, 48 }), g:randn({ 32 })
      t[A .. "linear_layer2.weight"], t[A .. "linear_layer2.bias"] = g:randn({ 32, 32 }), g:randn({ 32 })
      t[A .. "normalization_layer.weight"], t[A .. "normalization_layer.bias"] = oe.ones({ 32 }), oe.zeros({ 32 })
      local T = "modality_token_encoder."
      t[T .. "xray_token"] = g:randn({ 1, 3 })
      for i, s in pairs({ [0] = { 64, 3 }, [2] = { 128, 64 }, [4] = { 32, 128 } }) do
        t[T .. "token_projection." .. i .. ".weight"], t[T .. "token_projection." .. i .. ".bias"] = g:randn(s), g:randn({ s[1] })
      end
      t[T .. "token_projection.5.weight"], t[T .. "token_projection.5.bias"] = oe.ones({ 32 }), oe.zeros({ 32 })
      t["xray_encoder.pretrained_encoder.feature_projection.projection.weight"] = g:randn({ 48, 4 })
    end)
    local m, rep = assert(oe.pretrained.load(p, OPTS))
    assert.same({ "image", "text", "xray" }, m.order)
    assert.same({ "xray_encoder.pretrained_encoder." }, rep.unattached.xray)
    assert.is_nil(m:encoder("xray"))
    assert.equal("text_image_encoder.image_encoder.pretrained_vit.", m:encoder("image").settings.prefix)
    H.allclose(m:embed_images({ FILES[1] }), rows(ref.image_embeddings, 1, 1), TOL, "image from a step-2 file")
    H.allclose(m:embed_texts({ CAPS[2] }), rows(ref.text_embeddings_none, 2, 1), TOL, "text from a step-2 file")
  end)

  it("tokenises the captions as BertTokenizer does (ids of the whole list padded to its longest)", function()
    local e = M:encoder("text"):tokenizer():encode(CAPS, { padding = "longest" })
    assert.same(core.totable(ref.ids_set), core.totable(e.input_ids))
  end)
end)

describe("pretrained: embeddings against the PyTorch pipeline", function()
  it("embeds image files (JPEG, PNG, grey JPEG, RGBA PNG) through the original preprocessing", function()
    local e, kept, bad = M:embed_images(FILES)
    H.allclose(e, ref.image_embeddings, TOL, "image embeddings")
    assert.same({ 1, 2, 3, 4 }, kept)
    assert.same({}, bad)
    -- rows are unit vectors
    H.allclose((e * e):sum(2), { 1, 1, 1, 1 }, 1e-5, "norms")
  end)

  it("takes decoded images too, and batches of any size give the same rows", function()
    local imgs = {}
    for i, f in ipairs(FILES) do imgs[i] = assert(oe.pretrained.load_image(f)) end
    H.allclose(M:embed_images(imgs, { batch = 3 }), ref.image_embeddings, TOL, "decoded images, batch 3")
  end)

  it("drops alpha as cv2.imread does: compositing on white would be another image", function()
    local white = M:embed_images({ assert(oe.image.load(FILES[4])) })
    local diff = (white - rows(ref.image_embeddings, 4, 1)):abs():max():item()
    assert(diff > 1e-2, "the composited image should differ, got " .. diff)
  end)

  it("embeds each caption as if alone by default (padding_policy none)", function()
    local e = M:embed_texts(CAPS)
    H.allclose(e, ref.text_embeddings_none, TOL, "captions alone")
    -- one caption alone, and the list in another order, give the same rows
    H.allclose(M:embed_texts({ CAPS[3] }), rows(ref.text_embeddings_none, 3, 1), TOL, "caption 3 alone")
    local rev = {}
    for i = #CAPS, 1, -1 do rev[#rev + 1] = CAPS[i] end
    local er = M:embed_texts(rev, { batch = 2 })
    for i = 1, #CAPS do
      H.allclose(rows(er, #CAPS + 1 - i, 1), rows(ref.text_embeddings_none, i, 1), TOL, "reversed row " .. i)
    end
  end)

  it("pads every caption to the longest of the whole list with padding_policy set (the original's training)", function()
    H.allclose(M:embed_texts(CAPS, { padding_policy = "set", batch = 4 }), ref.text_embeddings_set, TOL, "set of six (128)")
    H.allclose(M:embed_texts(first(CAPS, 5), { padding_policy = "set" }), ref.text_embeddings_set5, TOL, "set of five (12)")
    local d = (rows(ref.text_embeddings_set5, 1, 5) - rows(ref.text_embeddings_none, 1, 5)):abs():max():item()
    assert(d > 1e-2, "padding must change the original's embeddings, got " .. d)
  end)

  it("pads to the longest of each batch with padding_policy batch", function()
    H.allclose(M:embed_texts(CAPS, { padding_policy = "batch", batch = 4 }), ref.text_embeddings_batch4, TOL, "batches of 4")
  end)

  it("takes the policy and batch given at load as defaults", function()
    local m = assert(oe.pretrained.load(CKPT, { vocab = VOCAB, vit = { heads = 3 }, bert = { heads = 4 },
      padding_policy = "batch", batch = 4 }))
    H.allclose(m:embed_texts(CAPS), ref.text_embeddings_batch4, TOL, "defaults from load")
  end)

  it("leaves the model's mode and the gradient switch as they were", function()
    M:train()
    M:embed_texts({ CAPS[1] })
    assert.is_true(M.training)
    M:eval()
    assert.is_true(oe.is_grad_enabled())
  end)
end)

describe("pretrained: encoders attached to a model trained here", function()
  local vit = assert(oe.encoders.create("vit", { weights = CKPT, prefix = "image_encoder.pretrained_vit.", heads = 3 }))
  local bert = assert(oe.encoders.create("bert", { weights = CKPT, prefix = "text_encoder.pretrained_bert.", heads = 4,
    vocab = VOCAB, config = false }))

  local function model()
    local g = oe.Generator(5)
    local m = oe.OneEncoder({ d = 32, heads = 4, ff = 64 })
    m:add_modality("image", { input_dim = 96, generator = g })
    m:add_modality("text", { input_dim = 64, generator = g })
    return m:eval()
  end

  it("set_encoder makes embed_images / embed_texts equal to encode + embed", function()
    local m = model()
    m:set_encoder("image", vit):set_encoder("text", bert)
    local f, l = vit:encode({ oe.pretrained.load_image(FILES[1]), oe.pretrained.load_image(FILES[2]) })
    local want = oe.no_grad(function() return m:embed("image", f, l) end)
    H.allclose(m:embed_images({ FILES[1], FILES[2] }), want, TOL, "images")
    local tf, tl = bert:encode(first(CAPS, 4))
    local twant = oe.no_grad(function() return m:embed("text", tf, tl) end)
    H.allclose(m:embed_texts(first(CAPS, 4)), twant, TOL, "texts")
  end)

  it("with masked pooling the three padding policies agree", function()
    local m = model()
    m:set_encoder("text", bert)
    local a = m:embed_texts(CAPS)
    H.allclose(m:embed_texts(CAPS, { padding_policy = "set" }), a, TOL, "set")
    H.allclose(m:embed_texts(CAPS, { padding_policy = "batch", batch = 4 }), a, TOL, "batch")
  end)

  it("refuses an encoder of the wrong width, and embedding without an encoder", function()
    local m = model()
    H.fails_with(function() m:set_encoder("image", bert) end, "64-d features", "'image' takes 96")
    H.fails_with(function() m:set_encoder("audio", vit) end, "unknown modality 'audio'")
    H.fails_with(function() m:set_encoder("image", {}) end, "expected an encoder")
    H.fails_with(function() m:embed_images({ FILES[1] }) end, "no encoder attached for 'image'")
    m:set_encoder("image", vit)
    assert.equal(vit, m:encoder("image"))
    m:set_encoder("image", nil)
    assert.is_nil(m:encoder("image"))
    assert.is_nil(m:state_dict()["_encoders"])
  end)
end)

describe("pretrained: bad input gives a clear message", function()
  it("names missing keys with their shape", function()
    load_fails(variant(function(t) t["image_encoder.pretrained_vit.blocks.1.mlp.fc2.bias"] = nil end), nil,
      "missing tensor 'image_encoder.pretrained_vit.blocks.1.mlp.fc2.bias'", "(96,)", "vit encoder of modality 'image'")
    load_fails(variant(function(t) t["text_encoder.pretrained_bert.encoder.layer.1.output.dense.bias"] = nil end), nil,
      "text_encoder.pretrained_bert.encoder.layer.1.output.dense.bias", "(64,)")
    load_fails(variant(function(t) t["text_encoder.projection_head.linear_layer2.bias"] = nil end), nil,
      "missing text_encoder.projection_head.linear_layer2.bias (32,)")
    load_fails(variant(function(t)
      for k in pairs(t) do if k:match("pretrained_vit") then t[k] = nil end end
    end), nil, "no frozen encoder weights for modality 'image'", "image_encoder.pretrained_vit.*")
  end)

  it("names mis-shaped keys with both shapes", function()
    load_fails(variant(function(t) t["text_encoder.pretrained_bert.encoder.layer.0.intermediate.dense.weight"] = oe.zeros({ 128, 63 }) end),
      nil, "text_encoder.pretrained_bert.encoder.layer.0.intermediate.dense.weight", "(128, 63)", "(128, 64)")
    load_fails(variant(function(t) t["image_encoder.projection_head.linear_layer1.weight"] = oe.zeros({ 32, 95 }) end),
      nil, "image_encoder.projection_head.linear_layer1.weight", "(32, 95)", "(32, 96)")
    load_fails(variant(function(t) t["universal_projection_encoder.transformer_encoder.layers.0.linear2.weight"] = oe.zeros({ 32, 63 }) end),
      nil, "universal_projection_encoder.transformer_encoder.layers.0.linear2.weight", "(32, 63)", "(32, 64)")
  end)

  it("names unexpected keys with their shape", function()
    load_fails(variant(function(t) t["foo.bar"] = oe.zeros({ 2, 2 }) end), nil, "unexpected keys", "foo.bar (2, 2)")
    load_fails(variant(function(t) t["image_encoder.pretrained_vit.blocks.0.extra"] = oe.zeros({ 3 }) end), nil,
      "unexpected", "image_encoder.pretrained_vit.blocks.0.extra", "(3,)")
    load_fails(variant(function(t) t["image_encoder.other.weight"] = oe.zeros({ 3 }) end), nil,
      "unexpected keys", "image_encoder.other.weight (3,)", "image_encoder.pretrained_vit.*")
  end)

  it("refuses files that are not a checkpoint", function()
    load_fails("/nonexistent/model.safetensors", nil, "/nonexistent/model.safetensors")
    load_fails(VOCAB, nil, VOCAB)
    load_fails(DIR .. "expected.safetensors", nil, "not a OneEncoder state dict")
  end)

  it("refuses a vocabulary without [UNK], [CLS] or [SEP], or larger than the BERT's table", function()
    local d = tmpdir()
    local f = assert(io.open(d .. "/v.txt", "w"))
    f:write("[PAD]\n[CLS]\n[SEP]\ndog\n")
    f:close()
    load_fails(CKPT, { vocab = d .. "/v.txt", vit = { heads = 3 }, bert = { heads = 4 } }, "[UNK]")
    f = assert(io.open(d .. "/big.txt", "w"))
    f:write("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
    for i = 1, 200 do f:write("w" .. i .. "\n") end
    f:close()
    load_fails(CKPT, { vocab = d .. "/big.txt", vit = { heads = 3 }, bert = { heads = 4 } }, "204 tokens", "56 rows")
    load_fails(CKPT, { vocab = d .. "/none.txt", vit = { heads = 3 }, bert = { heads = 4 } }, "none.txt")
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("raises for wrong options and arguments", function()
    H.fails_with(function() oe.pretrained.load(CKPT, { vocabulary = VOCAB }) end, "unknown option 'vocabulary'")
    H.fails_with(function() oe.pretrained.load(CKPT, { batch = 0 }) end, "'batch'")
    H.fails_with(function() oe.pretrained.load(CKPT, { padding_policy = "longest" }) end, "padding_policy")
    H.fails_with(function() oe.pretrained.load(CKPT, { vit = { weights = "x" } }) end, "cannot set 'weights'")
    H.fails_with(function() oe.pretrained.load(42) end, "path must be a string")
    H.fails_with(function() M:embed_texts({}) end, "empty list")
    H.fails_with(function() M:embed_texts("a dog") end, "expected a list")
    H.fails_with(function() M:embed_texts({ "a dog", 3 }) end, "item 2: expected a string")
    H.fails_with(function() M:embed_images({ 3 }) end, "item 1: expected a path or a tensor")
    H.fails_with(function() M:embed_texts({ "a" }, { on_error = "ignore" }) end, "on_error")
  end)

  it("refuses empty texts (nil, message), or leaves them out with on_error = skip", function()
    for _, s in ipairs({ "", "   \t\n", "\1\2\127" }) do
      local e, msg = M:embed_texts({ "a dog", s })
      assert.is_nil(e)
      assert.matches("item 2: empty text", msg, 1, true)
    end
    local e, kept, bad = M:embed_texts({ "", CAPS[2], " ", CAPS[1] }, { on_error = "skip" })
    assert.same({ 2, 4 }, kept)
    assert.same({ 1, 3 }, { bad[1].index, bad[2].index })
    H.allclose(e, core.cat({ rows(ref.text_embeddings_none, 2, 1), rows(ref.text_embeddings_none, 1, 1) }, 1), TOL, "kept rows")
  end)

  it("refuses unreadable images naming the item and the file, or skips them", function()
    local d = tmpdir()
    local f = assert(io.open(d .. "/text.jpg", "w"))
    f:write("not an image\n")
    f:close()
    local src = assert(io.open(FILES[1], "rb")):read("a")
    f = assert(io.open(d .. "/cut.jpg", "wb"))
    f:write(src:sub(1, 600))
    f:close()
    for _, p in ipairs({ d .. "/missing.png", d .. "/text.jpg", d .. "/cut.jpg", d }) do
      local e, msg = M:embed_images({ FILES[1], p })
      assert.is_nil(e, p)
      assert(msg:find("item 2 (" .. p .. ")", 1, true), msg)
    end
    local e, kept, bad = M:embed_images({ d .. "/text.jpg", FILES[2], d .. "/missing.png", FILES[3] }, { on_error = "skip", batch = 1 })
    assert.same({ 2, 4 }, kept)
    assert.same({ 1, 3 }, { bad[1].index, bad[3 - 1].index })
    H.allclose(e, core.cat({ rows(ref.image_embeddings, 2, 1), rows(ref.image_embeddings, 3, 1) }, 1), TOL, "kept images")
    local none = M:embed_images({ d .. "/text.jpg" }, { on_error = "skip" })
    assert.same({ 0, 32 }, core.shape(none))
    local e2, msg2 = M:embed_images({ oe.zeros({ 4, 4 }) })
    assert.is_nil(e2)
    assert.matches("item 1: float32 images must be (3, H, W)", msg2, 1, true)
    os.execute("rm -rf '" .. d .. "'")
  end)
end)

describe("pretrained.extract: features from files and strings through the cache", function()
  local vit = assert(oe.encoders.create("vit", { weights = CKPT, prefix = "image_encoder.pretrained_vit.", heads = 3 }))
  local bert = assert(oe.encoders.create("bert", { weights = CKPT, prefix = "text_encoder.pretrained_bert.", heads = 4,
    vocab = VOCAB, config = false }))

  it("writes image features once and reads them back, rows in input order", function()
    local d = tmpdir()
    local inputs = { FILES[2], FILES[1], FILES[2], FILES[3] }
    local set, info = assert(oe.pretrained.extract(vit, inputs, { cache = d, batch = 2 }))
    assert.equal(4, set:size())
    assert.equal(96, set:dim())
    assert.same({ 1, 2, 3, 4 }, info.kept)
    assert.equal(3, info.stats.computed)
    local want = vit:encode({ oe.pretrained.load_image(FILES[2]), oe.pretrained.load_image(FILES[1]) })
    local x, l = set:batch({ 1, 2 })
    assert.same({ 197, 197 }, l)
    H.allclose(x, want, TOL, "cached features")
    local x3 = set:batch({ 3 })
    assert.equal(0, (x3 - core.narrow(x, 1, 1, 1)):abs():max():item())   -- a repeated input: the same row
    local _, info2 = assert(oe.pretrained.extract(vit, inputs, { cache = d }))
    assert.equal(0, info2.stats.computed)
    assert.equal(3, info2.stats.hits)
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("keys the cache by the encoder's weights file: another file means new features", function()
    local d = tmpdir()
    assert(oe.pretrained.extract(bert, first(CAPS, 2), { cache = d }))
    local copy = d .. "/copy.safetensors"
    assert(os.execute(string.format("cp '%s' '%s'", CKPT, copy)))
    local bert2 = assert(oe.encoders.create("bert", { weights = copy, prefix = "text_encoder.pretrained_bert.", heads = 4,
      vocab = VOCAB, config = false }))
    assert.are_not.equal(bert.id, bert2.id)
    local _, info = assert(oe.pretrained.extract(bert2, first(CAPS, 2), { cache = d .. "/c" }))
    assert.equal(2, info.stats.computed)
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("encodes strings with true lengths, in memory without a cache", function()
    local set, info = assert(oe.pretrained.extract(bert, { CAPS[1], CAPS[4], CAPS[1] }))
    assert.same({ 1, 2, 3 }, info.kept)
    local x, l = set:batch({ 1, 2, 3 })
    assert.same({ 8, 6, 8 }, l)
    local want, wl = bert:encode({ CAPS[1], CAPS[4] })
    assert.same({ 8, 6 }, wl)
    H.allclose(core.narrow(x, 1, 1, 1), core.narrow(want, 1, 1, 1), TOL, "caption 1")
    H.allclose(core.narrow(core.narrow(x, 1, 2, 1), 2, 1, 6), core.narrow(core.narrow(want, 1, 2, 1), 2, 1, 6), TOL, "caption 4")
    assert.equal(0, core.narrow(core.narrow(x, 1, 2, 1), 2, 7, 2):abs():max():item())   -- zero past its length
  end)

  it("skips or refuses bad inputs", function()
    local d = tmpdir()
    local f = assert(io.open(d .. "/text.png", "w"))
    f:write("no")
    f:close()
    local set, info = assert(oe.pretrained.extract(vit, { FILES[1], d .. "/text.png", FILES[2] },
      { cache = d .. "/c", on_error = "skip", batch = 1 }))
    assert.equal(2, set:size())
    assert.same({ 1, 3 }, info.kept)
    assert.equal(2, info.bad[1].index)
    local none, msg = oe.pretrained.extract(vit, { FILES[1], d .. "/text.png" }, { cache = d .. "/c" })
    assert.is_nil(none)
    assert(msg:find("item 2 (" .. d .. "/text.png)", 1, true), msg)
    local s2, msg2 = oe.pretrained.extract(bert, { "a dog", "" })
    assert.is_nil(s2)
    assert.matches("item 2: empty text", msg2, 1, true)
    local s3, info3 = assert(oe.pretrained.extract(bert, { "a dog", " " }, { on_error = "skip" }))
    assert.equal(1, s3:size())
    assert.equal(2, info3.bad[1].index)
    H.fails_with(function() oe.pretrained.extract(bert, { "a", 1 }) end, "item 2 must be a string")
    H.fails_with(function() oe.pretrained.extract({}, { "a" }) end, "must be an encoder")
    os.execute("rm -rf '" .. d .. "'")
  end)
end)
