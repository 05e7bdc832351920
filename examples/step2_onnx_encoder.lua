-- examples/step2_onnx_encoder.lua: step 2 of OneEncoder with a frozen encoder you bring as
-- ONNX files. Speech is the new modality: spoken captions (espeak-ng voices) go through two
-- published ONNX models, openWakeWord's mel front end and Google's speech embedding (fetched
-- by `make deps` into data/openwakeword), run by the project's ONNX runtime through the generic
-- "onnx" encoder; the step-1 model stays frozen and only the audio alignment layer and the
-- audio token train, against the captions' text side. Held-out voices are then classified by
-- text prompts (audio -> text), before and after training.
--   lua5.4 examples/step1_align.lua            (once: the step-1 model)
--   lua5.4 examples/step2_onnx_encoder.lua [step1.safetensors] [out.safetensors]
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local toy = require "toy_data"

local step1 = arg[1] or "runs/examples/step1.safetensors"
local out = arg[2] or "runs/examples/step2_onnx.safetensors"
local OWW = "data/openwakeword"
local model, err = oe.checkpoint.load(step1)
if not model then error(err .. " (run examples/step1_align.lua first)") end

-- 1. The encoder: embedding_model.onnx takes windows of 76 mel frames (windows, 76, 32, 1) and
-- gives one 96-d vector per window. In sequence mode an item is its clip's windows (n, 76, 32, 1)
-- and gets one token per window (80 ms each). The windows come from the second ONNX model.
local mel = assert(oe.onnx.load(OWW .. "/melspectrogram.onnx"))  -- (1, samples) -> (1, 1, frames, 32)
local WINDOW, HOP, MIN_SAMPLES = 76, 8, 12512
local function windows(wave)                     -- float32 (T) in [-1, 1] at 16 kHz -> (n, 76, 32, 1)
  local x = wave * 32768                         -- openWakeWord feeds int16-range samples
  local n = x:shape()[1]
  if n < MIN_SAMPLES then                        -- shorter than one window: centred in silence
    local padded = oe.zeros({ MIN_SAMPLES })
    padded:set_slice(1, (MIN_SAMPLES - n) // 2 + 1, x)
    x = padded
  end
  local m = mel:run(x:reshape({ 1, -1 }))[mel.outputs[1].name]
  local frames = m:reshape({ -1, 32 }) / 10 + 2  -- (F, 32), scaled as openWakeWord does
  local rows = {}
  for t = 1, frames:shape()[1] - WINDOW + 1, HOP do rows[#rows + 1] = frames:narrow(1, t, WINDOW):reshape({ 1, WINDOW, 32, 1 }) end
  return oe.cat(rows, 1)
end
local speech = assert(oe.encoders.create("onnx", {
  path = OWW .. "/embedding_model.onnx", modality = "audio", layout = "flatten", dim = 96,
  sequence = true, preprocess = windows,
}))

-- 2. Data: the 16 colour-shape classes spoken in caption templates by espeak-ng voices; the
-- test voices are never heard in training.
local TRAIN_VOICES = { "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc" }
local TEST_VOICES = { "en-029", "en-gb-x-gbcwmd" }
local dir = "runs/examples/speech"
os.execute("mkdir -p " .. dir)
local function spoken(voices, templates, speeds)
  local waves, captions, labels = {}, {}, {}
  for _, voice in ipairs(voices) do
    for _, speed in ipairs(speeds) do
      for k = 1, #templates do
        for c = 0, 15 do
          local text = toy.caption(c, k, templates)
          local path = string.format("%s/%s_%d_%d_%d.wav", dir, voice, speed, k, c)
          if not io.open(path) then
            assert(os.execute(string.format("espeak-ng -v %s -s %d -w %s %q", voice, speed, path, text)), "espeak-ng failed")
          end
          waves[#waves + 1] = assert(oe.audio.load(path, { rate = 16000, mono = true }))
          captions[#captions + 1], labels[#labels + 1] = text, c
        end
      end
    end
  end
  return waves, captions, labels
end
local TEMPLATES = { "a {c} {s}", "a picture of a {c} {s}", "the {s} is {c}", "one {c} {s} on a dark background" }
local train_waves, train_captions = spoken(TRAIN_VOICES, TEMPLATES, { 150, 190 })
local test_waves, _, test_labels = spoken(TEST_VOICES, toy.test_templates, { 170 })
print(string.format("%d training clips, %d held-out clips (voices %s)", #train_waves, #test_waves,
  table.concat(TEST_VOICES, ", ")))

local t0 = oe.core.now()
local audio_train = toy.features(speech, train_waves)   -- (N, L, 96): one token per 80 ms
local audio_test = toy.features(speech, test_waves)
print(string.format("speech features: %.1f s for %d clips, %s", oe.core.now() - t0, #train_waves + #test_waves,
  table.concat(audio_train.feats:shape(), " x ")))
local text = toy.encoders().text                        -- the step-1 model's text encoder
local texts = toy.features(text, train_captions)

-- 3. Audio -> text zero-shot by class prompts (the prompts average over the test templates)
local function audio_to_text_top1()
  model:eval()
  return oe.no_grad(function()
    local a = model:embed("audio", audio_test.feats, audio_test.lengths)
    local per_template = {}
    for k, template in ipairs(toy.test_templates) do
      local prompts = {}
      for c = 0, 15 do prompts[c + 1] = toy.caption(c, 1, { template }) end
      local f, l = text:encode(prompts)
      per_template[k] = model:embed("text", f, l)
    end
    return oe.eval.zero_shot(a, per_template, oe.tensor(test_labels, "int64"), { k = 5 })
  end)
end

-- 4. Step 2: freeze everything from step 1, add the audio modality, train its parts only
model:freeze()
model:add_modality("audio", { input_dim = speech.dim })
local before = audio_to_text_top1()
local result = oe.train.extend(model, {
  a = { name = "audio", set = audio_train }, b = { name = "text", set = texts },
  epochs = 20, batch_size = 32, lr = 1e-3, seed = 0,
  checkpoint_dir = "runs/examples/step2_onnx", log_path = "runs/examples/step2_onnx/log.jsonl",
})
local after = audio_to_text_top1()
print(string.format("step 2 done: %d epochs, best validation loss %.4f", result.epochs, result.best_val_loss))
print(string.format("held-out voices, audio -> text top-1: untrained %.3f, trained %.3f (top-5 %.3f; chance %.3f)",
  before.top1, after.top1, after.top5, 1 / 16))
assert(oe.checkpoint.save(model, out))
print("saved " .. out)
