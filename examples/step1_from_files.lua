-- examples/step1_from_files.lua: step 1 of OneEncoder from image files and caption strings, in one
-- script: frozen ViT and BERT -> features cached on disk -> heads, tokens and UP trained -> the
-- trained model embeds files and strings directly -> retrieval figures.
--
--   lua5.4 examples/step1_from_files.lua
--       No download: the script writes a SMALL RANDOM-WEIGHT ViT (timm layout) and BERT (Hugging
--       Face layout) with a vocabulary of the captions' words to runs/step1_files/weights/ and
--       uses them. It shows the pipeline end to end in well under a minute; random encoders carry
--       no pretrained knowledge, so the figures only show that the UP learns these pairs.
--   lua5.4 examples/step1_from_files.lua MODELS
--       Real weights from a folder holding two Hugging Face model folders: MODELS/vit/
--       (model.safetensors [+ config.json]: google/vit-base-patch16-224 or timm's
--       vit_base_patch16_224) and MODELS/bert/ (model.safetensors, vocab.txt [+ config.json]:
--       bert-base-uncased).
--   lua5.4 examples/step1_from_files.lua OneEncoder-text-image/model.safetensors vocab.txt
--       The ViT and BERT inside the released OneEncoder file (a fresh UP is trained on top).
--
-- Data: images are up to 40 of the 512x512 PNG icons of Debian's adwaita-icon-theme, when installed
-- (captioned from their file names, "an icon of folder pictures"), plus 24 images drawn here (coloured squares,
-- discs, stripes and crosses, "a red disc"), written to runs/step1_files/images/.
-- Run it again: the features come from the cache (runs/step1_files/cache/), training resumes or
-- is skipped (runs/step1_files/ckpt/).
local oe = require "oneencoder"
local core = oe.core

local ROOT = "runs/step1_files"
os.execute("mkdir -p " .. ROOT .. "/weights " .. ROOT .. "/images")
local t_start = core.now()

local function exists(p)
  local st = core.fs_stat(p)
  return st ~= nil
end

-- ---------------------------------------------------------------- images and captions
local COLOURS = { red = { 220, 30, 30 }, green = { 30, 180, 60 }, blue = { 40, 70, 220 }, yellow = { 240, 220, 40 },
  black = { 10, 10, 10 }, purple = { 140, 40, 170 } }
local SHAPES = { "square", "disc", "stripes", "cross" }

-- one 96x96 RGB image: a shape of colour c on a light grey background
local function draw(shape, c)
  local n, bytes = 96, {}
  for y = 0, n - 1 do
    for x = 0, n - 1 do
      local dx, dy = x - 47.5, y - 47.5
      local on
      if shape == "square" then on = math.abs(dx) < 28 and math.abs(dy) < 28
      elseif shape == "disc" then on = dx * dx + dy * dy < 32 * 32
      elseif shape == "stripes" then on = (x // 12) % 2 == 0
      else on = math.abs(dx) < 10 or math.abs(dy) < 10 end
      local p = on and c or { 225, 225, 225 }
      bytes[#bytes + 1] = string.char(p[1], p[2], p[3])
    end
  end
  return oe.from_bytes(table.concat(bytes), "uint8", { n, n, 3 })
end

local paths, captions = {}, {}
local names = {}
for name in pairs(COLOURS) do names[#names + 1] = name end
table.sort(names)
for _, colour in ipairs(names) do
  for _, shape in ipairs(SHAPES) do
    local p = string.format("%s/images/%s_%s.png", ROOT, colour, shape)
    if not exists(p) then assert(oe.image.save(draw(shape, COLOURS[colour]), p)) end
    paths[#paths + 1] = p
    captions[#captions + 1] = shape == "stripes" and ("a picture of " .. colour .. " stripes") or ("a " .. colour .. " " .. shape)
  end
end
local icons = io.popen("find /usr/share/icons/Adwaita -path '*512x512*' -name '*.png' 2>/dev/null | sort | head -40")
for p in icons:lines() do
  local base = p:match("([^/]+)%.png$"):gsub("%-symbolic", ""):gsub("[-_]", " ")
  paths[#paths + 1] = p
  captions[#captions + 1] = "an icon of " .. base
end
icons:close()
print(string.format("%d images with captions (%d drawn, %d icons)", #paths, 24, #paths - 24))

-- ---------------------------------------------------------------- frozen encoders
local vit, bert
if arg[1] and arg[1]:match("%.safetensors$") then
  -- the released OneEncoder file: its ViT and BERT, one mapping shared
  local w = assert(core.frozen_open(arg[1]))
  vit = assert(oe.encoders.create("vit", { weights = w, prefix = "image_encoder.pretrained_vit." }))
  bert = assert(oe.encoders.create("bert", { weights = w, prefix = "text_encoder.pretrained_bert.", config = false,
    vocab = assert(arg[2], "give the bert-base-uncased vocab.txt after the checkpoint") }))
elseif arg[1] then
  vit = assert(oe.encoders.create("vit", { weights = arg[1] .. "/vit/model.safetensors" }))
  bert = assert(oe.encoders.create("bert", { weights = arg[1] .. "/bert/model.safetensors", vocab = arg[1] .. "/bert/vocab.txt" }))
else
  -- small random encoders, written once (their files' identity keys the feature cache)
  local W = ROOT .. "/weights/"
  if not exists(W .. "bert.safetensors") then
    local g = oe.Generator(1)
    local D, Mlp = 64, 128
    local function lin(t, name, o, i)
      t[name .. ".weight"] = g:randn({ o, i }, 0, 0.02)
      t[name .. ".bias"] = oe.zeros({ o })
    end
    local function ln(t, name) t[name .. ".weight"] = oe.ones({ D }); t[name .. ".bias"] = oe.zeros({ D }) end
    local v = { cls_token = g:randn({ 1, 1, D }, 0, 0.02), pos_embed = g:randn({ 1, 197, D }, 0, 0.02),
      ["patch_embed.proj.weight"] = g:randn({ D, 3, 16, 16 }, 0, 0.02), ["patch_embed.proj.bias"] = oe.zeros({ D }) }
    for i = 0, 1 do
      local p = "blocks." .. i .. "."
      ln(v, p .. "norm1"); ln(v, p .. "norm2")
      lin(v, p .. "attn.qkv", 3 * D, D); lin(v, p .. "attn.proj", D, D)
      lin(v, p .. "mlp.fc1", Mlp, D); lin(v, p .. "mlp.fc2", D, Mlp)
    end
    ln(v, "norm")
    assert(oe.save(W .. "vit.safetensors", v))
    -- vocabulary: the specials, punctuation and every word of the captions
    local vocab, seen = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-" }, {}
    for _, c in ipairs(captions) do
      for word in c:lower():gmatch("%w+") do
        if not seen[word] then seen[word] = true; vocab[#vocab + 1] = word end
      end
    end
    local f = assert(io.open(W .. "vocab.txt", "w"))
    f:write(table.concat(vocab, "\n"), "\n")
    f:close()
    local b = { ["embeddings.word_embeddings.weight"] = g:randn({ #vocab, D }, 0, 1),
      ["embeddings.position_embeddings.weight"] = g:randn({ 128, D }, 0, 0.02),
      ["embeddings.token_type_embeddings.weight"] = g:randn({ 2, D }, 0, 0.02) }
    ln(b, "embeddings.LayerNorm")
    for i = 0, 1 do
      local p = "encoder.layer." .. i .. "."
      lin(b, p .. "attention.self.query", D, D); lin(b, p .. "attention.self.key", D, D)
      lin(b, p .. "attention.self.value", D, D); lin(b, p .. "attention.output.dense", D, D)
      ln(b, p .. "attention.output.LayerNorm")
      lin(b, p .. "intermediate.dense", Mlp, D); lin(b, p .. "output.dense", D, Mlp)
      ln(b, p .. "output.LayerNorm")
    end
    assert(oe.save(W .. "bert.safetensors", b))
  end
  vit = assert(oe.encoders.create("vit", { weights = W .. "vit.safetensors", heads = 4 }))
  bert = assert(oe.encoders.create("bert", { weights = W .. "bert.safetensors", vocab = W .. "vocab.txt", heads = 4 }))
end
print(string.format("encoders: ViT %d-d, BERT %d-d", vit.dim, bert.dim))

-- ---------------------------------------------------------------- features, once
local t0 = core.now()
local images = assert(oe.pretrained.extract(vit, paths, { cache = ROOT .. "/cache/image", batch = 16, progress = true }))
local texts = assert(oe.pretrained.extract(bert, captions, { cache = ROOT .. "/cache/text", batch = 64, progress = true }))
print(string.format("features: %d images, %d captions in %.1f s", images:size(), texts:size(), core.now() - t0))

-- ---------------------------------------------------------------- step 1
local model = oe.OneEncoder({ d = 64, heads = 4, ff = 256 })    -- oe.OneEncoder() has the original sizes
local g = oe.Generator(0)
model:add_modality("image", { input_dim = vit.dim, generator = g })
model:add_modality("text", { input_dim = bert.dim, generator = g })
t0 = core.now()
local result = oe.train.align(model, {
  a = { name = "image", set = images }, b = { name = "text", set = texts },
  epochs = 60, batch_size = 16, val_split = 0.15, seed = 0, progress = false,
  checkpoint_dir = ROOT .. "/ckpt", log_path = ROOT .. "/ckpt/log.jsonl",
})
print(string.format("step 1: %d epochs in %.1f s, best validation loss %.4f", result.epochs, core.now() - t0, result.best_val_loss))
assert(oe.checkpoint.save(model, ROOT .. "/step1.safetensors"))

-- ---------------------------------------------------------------- the trained model on raw inputs
model:set_encoder("image", vit)
model:set_encoder("text", bert)
local ie = model:embed_images(paths)          -- (N, d), L2-normalised
local te = model:embed_texts(captions)
local r = oe.eval.retrieval(ie, te)
print(string.format("image -> caption over all %d pairs: R@1 %.3f, R@5 %.3f; caption -> image: R@1 %.3f, R@5 %.3f",
  #paths, r.a2b.R1, r.a2b.R5, r.b2a.R1, r.b2a.R5))
local q = model:embed_texts({ "a blue disc" })
local scores = q:matmul(ie:t())
local best, at = scores:max(2)
print(string.format("\"a blue disc\" -> %s (cosine %.3f)", paths[math.tointeger(at:item()) + 1], best:item()))
print(string.format("total %.1f s", core.now() - t_start))
