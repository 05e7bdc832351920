-- Wav2Vec2 (csrc/frozen/wav2vec2.c, encoders/wav2vec2.lua) against torchaudio's own Wav2Vec2
-- (torchaudio.models.wav2vec2_model) on fixtures written by tools/wav2vec2_fixtures.py: four
-- small models with random weights (wav2vec2-base's kernels and strides, 24 channels, width 32,
-- 4 heads, 2 layers), group/layer feature norms x post/pre-norm encoders, the positional
-- convolution weight-normalised (weight_g/weight_v, or parametrizations.weight.original0/1 under
-- "wav2vec2." beside an lm_head), and real speech (espeak-ng, 16 kHz FLAC) decoded by this
-- project, the reference reading the same samples (torchaudio's sox: int16 / 32768).
--
-- Tolerance 1e-4 absolute on outputs up to ~5 (they leave a LayerNorm with gains 1 +- 0.2).
-- Both sides compute float32 in another order; the longest sums are the second convolution's
-- (K = 3 x 24 = 72 products of O(1) terms) and the feed-forward's (K = 64): K u sum|ab| is a few
-- 1e-6, and LayerNorms rescale by ~1. Measured: 1e-6 to 5e-6. A wrong stride, norm order, eps,
-- weight norm axis or mask moves outputs by 0.1 to 1.
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local F = "spec/fixtures/wav2vec2/"
local TOL = 1e-4
local MODELS = { "group_post", "group_pre", "layer_post", "layer_pre" }
local inputs = assert(oe.load(F .. "inputs.safetensors"))

local function create(opts)
  local enc, err = oe.encoders.create("wav2vec2", opts)
  assert(enc, err)
  return enc
end
local function expected(name) return assert(oe.load(F .. "expected_" .. name .. ".safetensors")) end
local function load(enc, file) return (assert(enc:load(F .. file))) end
local function row(t, i) return core.narrow(t, 1, i, 1) end
local function frames(t, n) return core.narrow(t, 2, 1, n) end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end
local function copy(src, dst)
  local a = assert(io.open(src, "rb"))
  local b = assert(io.open(dst, "wb"))
  b:write(a:read("a"))
  a:close(); b:close()
end
local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end
local function same_bits(a, b, what)
  assert.are.same(core.shape(b), core.shape(a), what .. ": shape")
  assert.equal(0, (a - b):abs():max():item(), what .. ": not bit-identical")
end

describe("wav2vec2 against torchaudio", function()
  for _, name in ipairs(MODELS) do
    describe(name, function()
      local exp = expected(name)
      local enc = create({ path = F .. name, preprocessor = F .. "preprocessor_config.json" })
      local speech, short = load(enc, "speech.flac"), load(enc, "short.wav")

      it("reads the layout and config", function()
        local c = enc.config
        assert.are.equal(32, enc.dim)
        assert.are.same({ 5, 2, 2, 2, 2, 2, 2 }, c.conv_stride)
        assert.are.equal(name:match("^group") and "group" or "layer", c.feat_extract_norm)
        assert.are.equal(name:match("pre$") ~= nil, c.stable)
        assert.are.equal(400, c.receptive)
        assert.are.equal(name == "layer_pre" and "wav2vec2." or "", enc.settings.prefix)
        assert.are.equal(16000, core.shape(speech)[1])
      end)

      it("speech from a FLAC decoded by the project, alone", function()
        local f, l = enc:encode({ speech })
        assert.are.same({ 49 }, l)
        H.allclose(f, exp.speech, TOL, name .. " speech")
        -- the WAV holds the same samples: the same bits
        same_bits(enc:encode({ load(enc, "speech.wav") }), f, name .. " wav vs flac")
      end)

      it("a padded batch without attention mask (the original's batches)", function()
        local b = create({ path = F .. name, padding = "batch" })
        local f, l = b:encode({ speech, short })
        assert.are.same({ 49, 24 }, l)
        H.allclose(f, exp.pair, TOL, name .. " pair")
      end)

      it("a padded batch with an attention mask", function()
        local b = create({ path = F .. name, padding = "batch", attention_mask = true })
        H.allclose(b:encode({ speech, short }), exp.pair_masked, TOL, name .. " pair_masked")
      end)

      it("a silent clip (zero variance) gives finite features", function()
        local f = enc:encode({ oe.zeros({ 1000 }) })
        H.allclose(f, exp.silence, TOL, name .. " silence")
      end)

      it("truncation (max_length with truncation=True)", function()
        local b = create({ path = F .. name, padding = "batch", truncate_seconds = 0.5 })
        local f, l = b:encode({ speech, short })
        assert.are.same({ 24, 24 }, l)
        H.allclose(f, exp.trunc, TOL, name .. " trunc")
      end)

      it("padding \"none\": each clip as if alone, zeros past its frames", function()
        local f, l = enc:encode({ short, speech })
        assert.are.same({ 24, 49 }, l)
        -- (two clips run one per thread, one clip splits its products: another path, so a tolerance)
        H.allclose(row(f, 2), enc:encode({ speech }), TOL, "row 2")
        H.allclose(frames(row(f, 1), 24), enc:encode({ short }), TOL, "row 1")
        same_bits(enc:encode({ short, speech }), f, "the same call again")
        assert.are.equal(0, core.narrow(row(f, 1), 2, 25, 25):abs():max():item())
      end)
    end)
  end

  it("the feature extractor's padding and normalisation", function()
    local enc = create({ path = F .. "group_post" })
    local speech, short = load(enc, "speech.flac"), load(enc, "short.wav")
    local x, kept = core.w2v_prepare({ speech, short }, { normalize = true, masked = false })
    assert.are.same({ 16000, 8000 }, kept)
    H.allclose(x, inputs.pair, 2e-6, "pair input")
    local xm = core.w2v_prepare({ speech, short }, { normalize = true, masked = true })
    H.allclose(row(xm, 2), core.reshape(inputs.short_masked, { 1, 16000 }), 2e-6, "masked input")
    assert.are.equal(0, core.narrow(row(xm, 2), 2, 8001, 8000):abs():max():item())
    local xt, kt = core.w2v_prepare({ speech, short }, { max_samples = 100 })
    assert.are.same({ 2, 100 }, core.shape(xt))
    assert.are.same({ 100, 100 }, kt)
    local raw = core.w2v_prepare({ short }, { normalize = false })
    same_bits(core.reshape(raw, { 8000 }), short, "normalize = false")
  end)

  it("float32 (B, N) input_values go to the model as they are", function()
    local enc = create({ path = F .. "group_post" })
    local exp = expected("group_post")
    local f, l = enc:encode(inputs.pair)
    assert.are.same({ 49, 49 }, l)
    H.allclose(f, exp.pair, TOL, "input_values")
  end)

  it("a batch cut into chunks and shared between threads matches clip by clip", function()
    local exp = expected("layer_pre")
    local enc = create({ path = F .. "layer_pre", padding = "batch", chunk = 1 })
    local whole = create({ path = F .. "layer_pre", padding = "batch", chunk = 8 })
    local speech = load(enc, "speech.flac")
    local list = { speech, speech, speech }
    local was = oe.get_num_threads()
    for _, t in ipairs { 1, 2 } do
      oe.set_num_threads(t)
      local a = enc:encode(list)
      local b = whole:encode(list)
      for i = 1, 3 do
        H.allclose(row(a, i), exp.speech, TOL, "chunked row " .. i .. " threads " .. t)
        H.allclose(row(b, i), exp.speech, TOL, "whole row " .. i .. " threads " .. t)
      end
    end
    oe.set_num_threads(was)
  end)

  it("without config.json: base strides, the heads and the encoder kind from options or the rule", function()
    local speech = load(create({ path = F .. "group_post" }), "speech.flac")
    local w = F .. "group_post/model.safetensors"
    local enc, err = oe.encoders.create("wav2vec2", { weights = w, config = false })
    assert.is_nil(enc)
    assert.truthy(err:find("not divisible by 0 heads", 1, true), err)
    local bare = create({ weights = w, config = false, heads = 4 })
    assert.are.same({ 5, 2, 2, 2, 2, 2, 2 }, bare.config.conv_stride)
    assert.is_false(bare.config.stable)
    H.allclose(bare:encode({ speech }), expected("group_post").speech, TOL, "no config")
    -- group norm + pre-norm: the rule says post-norm, the option corrects it
    local gp = F .. "group_pre/model.safetensors"
    local wrong = create({ weights = gp, config = false, heads = 4 }):encode({ speech })
    assert.is_true((wrong - expected("group_pre").speech):abs():max():item() > 0.05)
    H.allclose(create({ weights = gp, config = false, heads = 4, stable = true }):encode({ speech }),
      expected("group_pre").speech, TOL, "stable option")
  end)
end)

describe("wav2vec2 bad input", function()
  local enc = create({ path = F .. "group_post" })
  local speech = load(enc, "speech.flac")

  it("clips shorter than the receptive field are refused, 400 samples give one frame", function()
    local ok, why = enc:check(oe.zeros({ 399 }))
    assert.is_nil(ok)
    assert.truthy(why:find("shorter than the 400 samples", 1, true), why)
    H.fails_with(function() enc:encode({ speech, oe.randn({ 399 }) }) end, "item 2", "399 samples")
    local f, l = enc:encode({ core.narrow(speech, 1, 1, 400) })
    assert.are.same({ 1 }, l)
    assert.are.same({ 1, 1, 32 }, core.shape(f))
    H.fails_with(function() enc:encode(oe.zeros({ 2, 399 })) end, "at least 400 samples")
    H.fails_with(function() core.w2v_forward(enc.model, oe.zeros({ 1, 300 })) end, "fewer than the 400")
    H.fails_with(function() core.w2v_forward(enc.model, oe.zeros({ 2, 1000 }), { 1000, 399 }) end, "lengths[2]")
    local dir = tmpdir()
    assert(oe.audio.save_wav(oe.zeros({ 100 }), 16000, dir .. "/tiny.wav"))
    local fe, le, kept, bad = enc:encode_files({ F .. "speech.flac", dir .. "/tiny.wav" }, { on_error = "skip" })
    assert.are.same({ 1 }, kept)
    assert.are.equal(2, bad[1].index)
    assert.truthy(bad[1].reason:find("100 samples", 1, true))
    assert.are.same({ 49 }, le)
    assert.are.same({ 1, 49, 32 }, core.shape(fe))
  end)

  it("long clips: refused past max_seconds (before decoding them whole), or truncated", function()
    local short_max = create({ path = F .. "group_post", max_seconds = 0.5 })
    local ok, why = short_max:check(speech)
    assert.is_nil(ok)
    assert.truthy(why:find("longer than max_seconds", 1, true), why)
    local w, err = short_max:load(F .. "speech.flac")
    assert.is_nil(w)
    assert.truthy(err:find("speech.flac", 1, true), err)
    local cut = create({ path = F .. "group_post", max_seconds = 0.5, truncate_seconds = 0.5 })
    local t = assert(cut:load(F .. "speech.flac"))
    assert.are.equal(8000, core.shape(t)[1])
    local _, l = cut:encode({ speech })
    assert.are.same({ 24 }, l)
    -- the default cap, 60 s: a 61 s file is refused by the reader, a 61 s tensor by check
    local dir = tmpdir()
    assert(oe.audio.save_wav(oe.zeros({ 61 * 8000 }), 8000, dir .. "/long.wav"))
    local lw, lerr = enc:load(dir .. "/long.wav")
    assert.is_nil(lw)
    assert.truthy(lerr:find("long.wav", 1, true), lerr)
    -- the raw model refuses a forward past 32768 frames (11 min) instead of allocating for it
    H.fails_with(function() core.w2v_forward(enc.model, oe.zeros({ 1, 16000 * 700 })) end, "more than the 32768")
    local _, lwhy = enc:check(oe.zeros({ 61 * 16000 }))
    assert.truthy(lwhy:find("61.0 s is longer than max_seconds = 60", 1, true), lwhy)
  end)

  it("bad folders, files, keys and configs give nil and a message", function()
    local function fails(opts, ...)
      local e, msg = oe.encoders.create("wav2vec2", opts)
      assert.is_nil(e)
      for _, frag in ipairs({ ... }) do assert.truthy(msg:find(frag, 1, true), msg) end
    end
    fails({ path = F .. "nothing_here" }, "no such folder")
    fails({ path = F .. "speech.flac" }, "not a folder")
    local dir = tmpdir()
    fails({ path = dir }, "model.safetensors: missing")
    -- a tensor missing, one mis-shaped, one unexpected
    local t = assert(oe.load(F .. "group_post/model.safetensors"))
    local function variant(edit, cfg)
      local d = tmpdir()
      local tt = {}
      for k, v in pairs(t) do tt[k] = v end
      edit(tt)
      assert(oe.save(d .. "/model.safetensors", tt))
      if cfg ~= false then copy(F .. "group_post/config.json", d .. "/config.json") end
      return d
    end
    fails({ path = variant(function(x) x["encoder.layers.1.final_layer_norm.bias"] = nil end) },
      "missing tensor 'encoder.layers.1.final_layer_norm.bias'")
    fails({ path = variant(function(x) x["encoder.layers.0.attention.k_proj.weight"] = oe.zeros({ 32, 31 }) end) },
      "'encoder.layers.0.attention.k_proj.weight' has shape (32, 31), expected (32, 32)")
    fails({ path = variant(function(x) x["encoder.extra.weight"] = oe.zeros({ 2 }) end) }, "unexpected tensor", "encoder.extra.weight")
    fails({ path = variant(function(x) x["encoder.pos_conv_embed.conv.weight_v"] = nil end) }, "pos_conv_embed.conv.weight_v")
    fails({ path = variant(function(x) x["feature_extractor.conv_layers.3.conv.weight"] = oe.zeros({ 24, 23, 3 }) end) },
      "feature_extractor.conv_layers.3.conv.weight", "(24, 23, 3)")
    fails({ path = variant(function(x)
      for k in pairs(x) do if k:match("^feature_extractor") then x[k] = nil end end
    end) }, "no Wav2Vec2 under the prefix")
    -- configs that disagree or are not JSON
    local d = variant(function() end)
    local cfg = io.open(d .. "/config.json"):read("a")
    write(d .. "/config.json", (cfg:gsub('"hidden_size": 32', '"hidden_size": 48')))
    fails({ path = d }, "config.json", '"hidden_size" = 48 disagrees')
    write(d .. "/config.json", (cfg:gsub('"conv_stride": %[[^%]]*%]', '"conv_stride": [5, 2, 2]')))
    fails({ path = d }, '"conv_stride" = 3 disagrees')
    write(d .. "/config.json", (cfg:gsub('"feat_extract_norm": "group"', '"feat_extract_norm": "layer"')))
    fails({ path = d }, 'feat_extract_norm is "layer"')
    write(d .. "/config.json", (cfg:gsub('"model_type": "wav2vec2"', '"model_type": "hubert"')))
    fails({ path = d }, 'model_type is "hubert"')
    write(d .. "/config.json", (cfg:gsub('"hidden_act": "gelu"', '"hidden_act": "relu"')))
    fails({ path = d }, 'hidden_act "relu" is not supported')
    write(d .. "/config.json", '{"conv_dim": [24, ')
    fails({ path = d }, "config.json", "JSON")
    write(d .. "/config.json", cfg)
    write(d .. "/preprocessor_config.json", '{"sampling_rate": 8000}')
    fails({ path = d }, "sampling_rate 8000 is not supported")
    write(d .. "/preprocessor_config.json", "[1, 2]")
    fails({ path = d }, "preprocessor_config.json")
    -- strides not in the weights and kernels not base's: the config is required
    local odd = variant(function(x)
      x["feature_extractor.conv_layers.6.conv.weight"] = nil
    end, false)
    fails({ path = odd, heads = 4 }, "config.json (conv_stride) is needed")
    -- not a safetensors file
    write(d .. "/model.safetensors", "not a safetensors file at all")
    fails({ path = d }, d .. "/model.safetensors")
  end)

  it("wrong arguments raise naming the function", function()
    H.fails_with(function() oe.encoders.create("wav2vec2", {}) end, "give exactly one of 'path'")
    H.fails_with(function() oe.encoders.create("wav2vec2", { path = F .. "group_post", padding = "set" }) end, "option 'padding'")
    H.fails_with(function() oe.encoders.create("wav2vec2", { path = F .. "group_post", bogus = 1 }) end, "unknown option 'bogus'")
    H.fails_with(function() enc:encode({}) end, "empty batch")
    H.fails_with(function() enc:encode({ oe.zeros({ 2, 500 }) }) end, "mono")
    H.fails_with(function() core.w2v_forward(enc.model, oe.zeros({ 2, 500 }, "int64")) end, "w2v_forward")
    H.fails_with(function() core.w2v_load({}, {}) end, "w2v_load")
  end)
end)

describe("wav2vec2: features of files through the cache", function()
  it("extract: progress, one row per input, the second run reads the cache", function()
    local enc = create({ path = F .. "layer_pre" })
    local exp = expected("layer_pre")
    local dir = tmpdir()
    local paths = { F .. "speech.flac", F .. "short.wav", F .. "speech.flac" }
    local set, info = assert(oe.pretrained.extract(enc, paths, { cache = dir, batch = 2 }))
    assert.are.equal(3, set:size())
    assert.are.same({ 1, 2, 3 }, info.kept)
    local f, l = set:batch({ 1, 2, 3 })
    assert.are.same({ 49, 24, 49 }, l)
    H.allclose(frames(row(f, 1), 49), exp.speech, TOL, "cached speech")
    H.allclose(frames(row(f, 2), 24), enc:encode({ load(enc, "short.wav") }), TOL, "cached short")
    local again, info2 = assert(oe.pretrained.extract(enc, paths, { cache = dir }))
    assert.are.equal(0, info2.stats.computed)
    same_bits(again:batch({ 1, 2, 3 }), f, "from the cache")
    -- a bad file is left out and listed
    write(dir .. "/bad.wav", "RIFF")
    local s3, i3 = assert(oe.pretrained.extract(enc, { F .. "short.wav", dir .. "/bad.wav" }, { cache = dir, on_error = "skip" }))
    assert.are.equal(1, s3:size())
    assert.are.equal(2, i3.bad[1].index)
  end)
end)

-- The released step-2 audio layout end to end: text_image_encoder.* (the step-1 model of
-- spec/fixtures/pretrained, ViT and BERT included), audio_encoder.pretrained_encoder.* (the
-- group_post Wav2Vec2), audio_encoder.alignment_layer.*, modality_token_encoder.* (audio token)
-- and temperature, assembled here from two committed files; embeddings against the PyTorch
-- pipeline of tools/wav2vec2_step2_fixtures.py (the original's processor + encode_audio + mean).
-- Tolerance 1e-4 as above: the embeddings are unit vectors whose components pass one more
-- LayerNorm, the UP and a mean; measured about 1e-6.
describe("wav2vec2: the released step-2 audio layout", function()
  local PDIR = "spec/fixtures/pretrained/"
  local part = assert(oe.load(F .. "step2_audio.safetensors"))
  local path = os.tmpname() .. ".safetensors"
  local t = {}
  for k, v in pairs(assert(oe.load(PDIR .. "text_image.safetensors"))) do t["text_image_encoder." .. k] = v end
  for k, v in pairs(part) do if not k:match("^expected%.") then t[k] = v end end
  assert(oe.save(path, t))
  local OPTS = { vocab = PDIR .. "vocab.txt", vit = { heads = 3 }, bert = { heads = 4 }, audio = { heads = 4 } }
  local m, rep = assert(oe.pretrained.load(path, OPTS))
  local clips = { F .. "speech.flac", F .. "short.wav", F .. "short.wav" }
  teardown(function() os.remove(path) end)

  it("attaches the Wav2Vec2 from audio_encoder.pretrained_encoder.*", function()
    assert.same({ "image", "text", "audio" }, m.order)
    assert.is_nil(rep.unattached.audio)
    local enc = m:encoder("audio")
    assert.are.equal("wav2vec2", enc.name)
    assert.are.equal("audio_encoder.pretrained_encoder.", enc.settings.prefix)
    assert.is_false(enc.config.stable)
    assert.are.equal(15, enc.truncate_seconds)
    assert.is_false(enc.masked)
  end)

  it("embed_audio: each clip alone (default) and the original's padded batches", function()
    local e, kept, bad = m:embed_audio(clips)
    assert.are.same({ 1, 2, 3 }, kept)
    assert.are.same({}, bad)
    H.allclose(e, part["expected.audio_none"], TOL, "padding_policy none")
    H.allclose(m:embed_audio(clips, { batch = 2, padding_policy = "batch" }), part["expected.audio_batch2"], TOL, "batch")
    -- the padding matters: the short clip padded to the long one is another vector
    assert.is_true((row(part["expected.audio_batch2"], 2) - row(part["expected.audio_none"], 2)):abs():max():item() > 1e-2)
    -- waveforms work as paths do
    local w = m:encoder("audio"):load(clips[2])
    H.allclose(m:embed_audio({ w }), row(part["expected.audio_none"], 2), TOL, "waveform")
  end)

  it("the step-1 modalities still embed from the same file", function()
    local ref = assert(oe.load(PDIR .. "expected.safetensors"))
    H.allclose(m:embed_texts({ "dogs running" }), row(ref.text_embeddings_none, 4), TOL, "text")
  end)

  it("bad audio is data, wrong options raise", function()
    local dir = tmpdir()
    write(dir .. "/broken.wav", "RIFF....WAVEfmt garbage")
    local e, msg = m:embed_audio({ clips[1], dir .. "/broken.wav" })
    assert.is_nil(e)
    assert.truthy(msg:find("embed_audio: item 2", 1, true), msg)
    local e2, kept, bad = m:embed_audio({ clips[1], dir .. "/broken.wav" }, { on_error = "skip" })
    assert.are.same({ 1 }, kept)
    assert.are.equal(2, bad[1].index)
    H.allclose(e2, row(part["expected.audio_none"], 1), TOL, "skip")
    H.fails_with(function() m:embed_audio(clips, { padding_policy = "set" }) end, "padding_policy \"set\" is for texts")
  end)

  it("a broken Wav2Vec2 in the file gives nil and a message naming the key", function()
    local t2 = {}
    for k, v in pairs(t) do t2[k] = v end
    t2["audio_encoder.pretrained_encoder.encoder.layers.1.feed_forward.output_dense.weight"] = nil
    local p2 = os.tmpname() .. ".safetensors"
    assert(oe.save(p2, t2))
    local m2, msg = oe.pretrained.load(p2, OPTS)
    os.remove(p2)
    assert.is_nil(m2)
    assert.truthy(msg:find("audio_encoder.pretrained_encoder.encoder.layers.1.feed_forward.output_dense.weight", 1, true), msg)
    assert.truthy(msg:find("wav2vec2 encoder of modality 'audio'", 1, true), msg)
  end)
end)
