-- examples/step2_audio_from_files.lua: step 2 of OneEncoder (audio brought in against text) from
-- audio files and caption strings, in one script: a step-1 model with its BERT -> a frozen
-- Wav2Vec2 -> audio and caption features cached on disk -> the UP frozen, the audio alignment
-- layer and token trained -> the model embeds audio files directly -> retrieval figures.
--
--   lua5.4 examples/step2_audio_from_files.lua
--       No download: the step-1 model is the small random-weight one of the test fixtures
--       (spec/fixtures/pretrained/text_image.safetensors: ViT, BERT, heads, UP, d = 32) and the
--       Wav2Vec2 the small random one of spec/fixtures/wav2vec2/group_post (32-d). Runs in seconds;
--       random encoders carry no pretrained knowledge, so the figures only show that the alignment
--       layer learns these pairs.
--   lua5.4 examples/step2_audio_from_files.lua OneEncoder-text-image/model.safetensors vocab.txt wav2vec2-base-960h
--       The released step-1 file (its BERT and UP) and facebook/wav2vec2-base-960h as a Hugging Face
--       folder (model.safetensors, config.json, preprocessor_config.json).
--
-- Data: spoken captions synthesised with espeak-ng (when installed: 3 training voices, 1 held-out
-- voice) into runs/step2_audio/audio/, from captions written with the fixture vocabulary's words;
-- without espeak-ng, the two speech clips of spec/fixtures/wav2vec2. Run it again: the features come
-- from the cache (runs/step2_audio/cache/), training resumes or is skipped (runs/step2_audio/ckpt/).
local oe = require "oneencoder"
local core = oe.core

local ROOT = "runs/step2_audio"
os.execute("mkdir -p " .. ROOT .. "/audio")
local t_start = core.now()
local function exists(p) return core.fs_stat(p) ~= nil end

-- ---------------------------------------------------------------- the step-1 model and Wav2Vec2
local step1 = arg[1] or "spec/fixtures/pretrained/text_image.safetensors"
local vocab = arg[2] or "spec/fixtures/pretrained/vocab.txt"
local w2v_dir = arg[3] or "spec/fixtures/wav2vec2/group_post"
local small = arg[1] == nil
local model = assert(oe.pretrained.load(step1, { vocab = vocab, vit = small and { heads = 3 } or nil,
  bert = small and { heads = 4 } or nil }))
local bert = model:encoder("text")
local w2v = assert(oe.encoders.create("wav2vec2", { path = w2v_dir, truncate_seconds = 10 }))  -- the original trains on 10 s
print(string.format("step-1 model d = %d; BERT %d-d; Wav2Vec2 %d-d (%d layers, %s norm)", model.cfg.d, bert.dim, w2v.dim,
  w2v.config.layers, w2v.config.feat_extract_norm))

-- ---------------------------------------------------------------- spoken captions
local SUBJECTS = { "a dog", "two cats", "an old man", "a woman", "a red car", "a small house", "a big tree", "the city" }
local PLACES = { "on the beach", "in the park", "on the street", "in the field", "with water", "on a sofa" }
local captions, train_paths, train_caps, test_paths, test_caps = {}, {}, {}, {}, {}
for i, s in ipairs(SUBJECTS) do
  for j, p in ipairs(PLACES) do
    if (i + j) % 2 == 0 then captions[#captions + 1] = s .. " " .. p end
  end
end
local VOICES = { { "en-us", 150 }, { "en-gb", 170 }, { "en-us+f3", 190 } }
local HELD_OUT = { "en-gb+m3", 160 }
local have_espeak = os.execute("command -v espeak-ng >/dev/null 2>&1")
if have_espeak then
  local function speak(voice, text, path)
    if exists(path) then return path end
    local cmd = string.format("espeak-ng -v %s -s %d -w '%s' '%s' 2>/dev/null", voice[1], voice[2], path, text)
    assert(os.execute(cmd), "espeak-ng failed: " .. cmd)
    return path
  end
  for k, c in ipairs(captions) do
    for v, voice in ipairs(VOICES) do
      train_paths[#train_paths + 1] = speak(voice, c, string.format("%s/audio/c%02d_v%d.wav", ROOT, k, v))
      train_caps[#train_caps + 1] = c
    end
    test_paths[#test_paths + 1] = speak(HELD_OUT, c, string.format("%s/audio/c%02d_test.wav", ROOT, k))
    test_caps[#test_caps + 1] = c
  end
else
  print("espeak-ng not found: using the two fixture clips")
  captions = { "a dog runs on the beach", "two cats" }
  train_paths = { "spec/fixtures/wav2vec2/speech.flac", "spec/fixtures/wav2vec2/short.wav" }
  train_caps, test_paths, test_caps = captions, { "spec/fixtures/wav2vec2/speech.wav" }, { captions[1] }
end
print(string.format("%d training clips (%d captions x %d voices), %d held-out clips", #train_paths, #captions,
  have_espeak and #VOICES or 1, #test_paths))

-- ---------------------------------------------------------------- features, once (cached)
local t0 = core.now()
local audio = assert(oe.pretrained.extract(w2v, train_paths, { cache = ROOT .. "/cache/audio", batch = 8, progress = true }))
local texts = assert(oe.pretrained.extract(bert, train_caps, { cache = ROOT .. "/cache/text", batch = 64, progress = true }))
print(string.format("features: %d clips, %d captions in %.1f s", audio:size(), texts:size(), core.now() - t0))

-- ---------------------------------------------------------------- step 2: audio against text
model:freeze()                                           -- UP, heads and tokens of step 1 stay fixed
model:add_modality("audio", { input_dim = w2v.dim, generator = oe.Generator(1) })
t0 = core.now()
local result = oe.train.extend(model, {
  a = { name = "audio", set = audio }, b = { name = "text", set = texts },
  epochs = 30, batch_size = 16, val_split = 0.15, seed = 0, progress = false, drop_duplicates = true,
  checkpoint_dir = ROOT .. "/ckpt", log_path = ROOT .. "/ckpt/log.jsonl",
})
print(string.format("step 2: %d epochs in %.1f s, best validation loss %.4f", result.epochs, core.now() - t0, result.best_val_loss))

-- ---------------------------------------------------------------- audio files -> the shared space
model:set_encoder("audio", w2v)
local ae = model:embed_audio(test_paths, { batch = 8 })   -- (N, d), L2-normalised, each clip alone
local te = model:embed_texts(test_caps)
local r = oe.eval.retrieval(ae, te)
print(string.format("held-out voice, audio -> caption over %d pairs: R@1 %.3f, R@5 %.3f (chance %.3f)", #test_paths,
  r.a2b.R1, r.a2b.R5, 1 / #test_paths))
print(string.format("total %.1f s", core.now() - t_start))
