-- examples/step2_extend.lua: step 2 of OneEncoder: a new modality (audio) is
-- brought into the space of a trained model. Everything trained in step 1 is
-- frozen, the Universal Projection included; only the new alignment layer and
-- modality token (with its small MLP) train, against the text side.
--   lua5.4 examples/step2_extend.lua [step1.safetensors] [out.safetensors]
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local toy = require "toy_data"

local path = arg[1] or "runs/examples/step1.safetensors"
local out = arg[2] or "runs/examples/step2.safetensors"
local model, err = oe.checkpoint.load(path)    -- the config travels in the file
if not model then error(err .. " (run examples/step1_align.lua first)") end

local data = toy.dataset(640, 2)
local enc = toy.encoders()
local audio = toy.features(enc.audio, data.recordings)  -- (N, 25, 160): 4 log-mel frames per token
local texts = toy.features(enc.text, data.captions)

model:freeze()
model:add_modality("audio", { input_dim = enc.audio.dim })
print(model:summary())                                  -- only audio_encoder and audio_token_encoder train

local result = oe.train.extend(model, {
  a = { name = "audio", set = audio }, b = { name = "text", set = texts },
  epochs = 15, batch_size = 32, seed = 0,
  checkpoint_dir = "runs/examples/step2", log_path = "runs/examples/step2/log.jsonl",
})
print(string.format("step 2 done: %d epochs, best validation loss %.4f", result.epochs, result.best_val_loss))
assert(oe.checkpoint.save(model, out))
print("saved " .. out)
