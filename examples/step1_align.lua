-- examples/step1_align.lua: step 1 of OneEncoder on two feature sets.
-- Frozen encoders (here the built-in, weight-free ones) turn images and captions
-- into token sequences once; the projection heads, the modality tokens and the
-- Universal Projection are trained with symmetric InfoNCE; the model is saved.
--   lua5.4 examples/step1_align.lua [out.safetensors]
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local toy = require "toy_data"

local out = arg[1] or "runs/examples/step1.safetensors"
os.execute("mkdir -p runs/examples")
oe.manual_seed(0)

local data = toy.dataset(640, 1)
local enc = toy.encoders()
local images = toy.features(enc.image, data.images)      -- (N, 16, 64): 16 patch tokens per image
local texts = toy.features(enc.text, data.captions)      -- (N, L, 64): one token per word

local model = oe.OneEncoder({ d = 64, ff = 128 })         -- a small UP; oe.OneEncoder() has the original sizes
model:add_modality("image", { input_dim = enc.image.dim })
model:add_modality("text", { input_dim = enc.text.dim })
print(model:summary())

local result = oe.train.align(model, {
  a = { name = "image", set = images }, b = { name = "text", set = texts },
  epochs = 15, batch_size = 32, lr = 1e-3, weight_decay = 1e-3, seed = 0,
  checkpoint_dir = "runs/examples/step1", log_path = "runs/examples/step1/log.jsonl",
})
print(string.format("step 1 done: %d epochs, best validation loss %.4f", result.epochs, result.best_val_loss))

assert(oe.checkpoint.save(model, out))                   -- weights and config, crash-safe
print("saved " .. out)
