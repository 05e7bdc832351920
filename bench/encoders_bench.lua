-- bench/encoders_bench.lua: items per second of the built-in encoders at demo-like
-- sizes (28x28 gray images, 10-word captions, 2 s clips at 16 kHz, 8 frames of 64x64),
-- whole batches through enc:encode, inputs already decoded. Figures: `name: value`.
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local BC = require "common"

local E = oe.encoders
local report = BC.report

local function rate(n, fn) return n / BC.median_time(fn, 9) end

report("encoders_threads", oe.get_num_threads(), "%d")

-- ---- patches: 256 uint8 28x28 images (as decoded), patch 4, projection to 64 ----
do
  local B = 256
  local imgs = {}
  for i = 1, B do imgs[i] = core.to(core.randint(0, 256, { 28, 28 }), "uint8") end
  local batch = core.reshape(core.cat(imgs, 1), { B, 28, 28, 1 })
  local x = core.randn({ B, 1, 28, 28 })
  local e = E.create("patches", { patch = 4, size = 28, channels = 1, proj = 64, seed = 7 })
  report("patches_28x28_list_u8_images_per_s", rate(B, function() e:encode(imgs) end), "%.0f")
  report("patches_28x28_batch_u8_images_per_s", rate(B, function() e:encode(batch) end), "%.0f")
  report("patches_28x28_batch_f32_images_per_s", rate(B, function() e:encode(x) end), "%.0f")
  local big = E.create("patches", { patch = 16, proj = 256, seed = 1 })
  local xb = core.randn({ 32, 3, 224, 224 })
  report("patches_224x224_p16_proj256_images_per_s", rate(32, function() big:encode(xb) end), "%.0f")
end

-- ---- words: 256 ten-word captions ----
do
  local vocab = { "a", "photo", "of", "the", "sneaker", "sandal", "shirt", "trouser", "pullover", "dress", "coat", "bag",
    "ankle", "boot", "picture", "showing", "small", "grey", "image", "this", "is", "digit", "seven", "zero", "handwritten" }
  math.randomseed(1)
  local texts = {}
  for i = 1, 256 do
    local w = {}
    for j = 1, 10 do w[j] = vocab[math.random(#vocab)] end
    texts[i] = table.concat(w, " ") .. "."
  end
  local e = E.create("words", { dim = 64 })
  report("words_10w_d64_captions_per_s", rate(#texts, function() e:encode(texts) end), "%.0f")
  local e2 = E.create("words", { dim = 256, ngrams = { 3, 5 } })
  report("words_10w_d256_ngrams3to5_captions_per_s", rate(#texts, function() e2:encode(texts) end), "%.0f")
  -- every word new (worst case: no repeated words inside the batch)
  local uniq = {}
  for i = 1, 256 do
    local w = {}
    for j = 1, 10 do w[j] = "w" .. (i * 10 + j) end
    uniq[i] = table.concat(w, " ")
  end
  report("words_10w_d256_ngrams3to5_unique_captions_per_s", rate(#uniq, function() e2:encode(uniq) end), "%.0f")
end

-- ---- logmel: 32 clips of 2 s at 16 kHz (and clips of mixed lengths) ----
do
  local clips, mixed = {}, {}
  for i = 1, 32 do
    clips[i] = oe.mul(core.randn({ 32000 }), 0.1)
    mixed[i] = oe.mul(core.randn({ 16000 + i * 500 }), 0.1)
  end
  local e = E.create("logmel", {})
  report("logmel_2s_80mels_clips_per_s", rate(#clips, function() e:encode(clips) end), "%.0f")
  local e4 = E.create("logmel", { n_mels = 40, stack = 4, proj = 128 })
  report("logmel_2s_40mels_stack4_proj128_clips_per_s", rate(#clips, function() e4:encode(clips) end), "%.0f")
  report("logmel_1to2.5s_mixed_lengths_clips_per_s", rate(#mixed, function() e:encode(mixed) end), "%.0f")
end

-- ---- frames: 16 clips of 8 frames 64x64 ----
do
  local clips = {}
  for i = 1, 16 do clips[i] = core.randn({ 8, 3, 64, 64 }) end
  local u8clips = {}
  for i = 1, 16 do u8clips[i] = core.to(core.randint(0, 256, { 8, 64, 64, 3 }), "uint8") end
  local e = E.create("frames", { size = 64, patch = 16, proj = 128 })
  report("frames_8x64x64_f32_clips_per_s", rate(#clips, function() e:encode(clips) end), "%.0f")
  report("frames_8x64x64_u8_clips_per_s", rate(#u8clips, function() e:encode(u8clips) end), "%.0f")
end
