-- bench/pretrained_bench.lua: oe.pretrained at the released model's size, random weights.
--   A checkpoint in the original layout with the released text-image model's shapes (timm
--   ViT-B/16, BERT-base, projection heads 768 -> 256, tokens, one UP layer with ff 2048: about
--   198 M parameters, ~790 MB of float32) is written to a temporary file; a child process loads it
--   with oe.pretrained.load and embeds images (16 JPEG files, the original preprocessing) and
--   captions (128 strings of 9-23 tokens, bert-base-uncased vocabulary), three rounds alternating
--   with the reference, and prints (medians; per wall second and per process CPU second, the
--   steadier figure on a shared machine):
--     pretrained_peak_rss_mb                peak resident set of the child (VmHWM), with the budget
--     pretrained_rss_budget_mb              the weights file's size + 400 MB
--     embed_images_per_s / embed_texts_per_s   the whole pipeline (decode, preprocess, encoder,
--                                            head, UP, pooling)
--     encoder_only_images_per_s / ..._texts_per_s   the reference in the same child: the same
--                                            inputs through the frozen encoder alone (image
--                                            decoding and preprocessing included)
-- Usage: lua5.4 bench/pretrained_bench.lua [threads]   (needs the vocabulary:
-- sh scripts/fetch-vocab.sh)
package.path = "bench/?.lua;" .. package.path
local oe = require "oneencoder"
local core = oe.core
local report = require("common").report

local VOCAB = "data/vocab/bert-base-uncased-vocab.txt"
local JPEG = "spec/fixtures/frozen/photo.jpg"

local function captions(n)
  local words = { "a", "dog", "runs", "on", "the", "beach", "two", "cats", "sleep", "red", "sofa", "man", "rides", "bicycle",
    "down", "street", "near", "old", "building", "with", "green", "trees", "children", "play", "in", "park", "small",
    "boat", "lake", "at", "sunset", "woman", "holding", "umbrella", "rain" }
  local out, s = {}, 7
  for i = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    local len = 6 + s % 15
    local t = {}
    for j = 1, len do
      s = (s * 1103515245 + 12345) % 2147483648
      t[j] = words[1 + (s >> 8) % #words]
    end
    out[i] = table.concat(t, " ") .. "."
  end
  return out
end

-- ---- the child: load, embed, report ----
if arg[1] == "--child" then
  local path, threads = arg[2], tonumber(arg[3])
  oe.set_num_threads(threads)
  local m = assert(oe.pretrained.load(path, { vocab = VOCAB, batch = 8 }))
  local paths = {}
  for i = 1, 16 do paths[i] = JPEG end
  local caps = captions(128)
  m:embed_images({ JPEG, JPEG })                                   -- warm-up: pages, scratch
  m:embed_texts({ caps[1], caps[2] })
  local vit, bert = m:encoder("image"), m:encoder("text")
  -- the whole pipeline and the reference (the frozen encoders alone on the same inputs) alternate
  -- in rounds, so both see the same load; medians of wall and process CPU seconds
  local function timed(fn)
    local t0, c0 = core.now(), os.clock()
    fn()
    return core.now() - t0, os.clock() - c0
  end
  local rec = { img = { {}, {} }, ref_img = { {}, {} }, txt = { {}, {} }, ref_txt = { {}, {} } }
  local function add(r, w, c) r[1][#r[1] + 1] = w; r[2][#r[2] + 1] = c end
  for _ = 1, 3 do
    add(rec.img, timed(function() assert(core.shape((m:embed_images(paths)))[1] == #paths) end))
    add(rec.ref_img, timed(function() vit:encode_files(paths, { batch = 8, loader = oe.pretrained.load_image }) end))
    add(rec.txt, timed(function() assert(core.shape((m:embed_texts(caps, { batch = 64 })))[1] == #caps) end))
    add(rec.ref_txt, timed(function()
      for s = 1, #caps, 64 do bert:encode({ table.unpack(caps, s, math.min(#caps, s + 63)) }) end
    end))
  end
  local function med(t) table.sort(t); return t[(#t + 1) // 2] end
  for _, k in ipairs { "img", "ref_img", "txt", "ref_txt" } do rec[k] = { med(rec[k][1]), med(rec[k][2]) } end
  local ni, nt = #paths, #caps
  report("embed_images_per_s", ni / rec.img[1], "%.2f")
  report("encoder_only_images_per_s", ni / rec.ref_img[1], "%.2f")
  report("embed_images_per_cpu_s", ni / rec.img[2], "%.2f")
  report("encoder_only_images_per_cpu_s", ni / rec.ref_img[2], "%.2f")
  report("embed_texts_per_s", nt / rec.txt[1], "%.1f")
  report("encoder_only_texts_per_s", nt / rec.ref_txt[1], "%.1f")
  report("embed_texts_per_cpu_s", nt / rec.txt[2], "%.1f")
  report("encoder_only_texts_per_cpu_s", nt / rec.ref_txt[2], "%.1f")
  report("pretrained_peak_rss_mb", core.peak_rss_mb(), "%.0f")
  local info = core.frozen_info(vit.weights)
  report("weights_tensors_in_place", info.inplace, "%d")
  report("weights_tensors_converted", info.converted, "%d")
  os.exit(0)
end

local threads = tonumber(arg and arg[1]) or 2
oe.set_num_threads(threads)
local info = oe.info()
report("threads", threads, "%d")
print("cpu: " .. tostring(info.cpu) .. ", blas_core: " .. tostring(info.blas_core))
if not core.fs_stat(VOCAB) then
  print("no vocabulary at " .. VOCAB .. ": run sh scripts/fetch-vocab.sh first")
  os.exit(1)
end

-- ---- a released-size checkpoint in the original layout, random weights ----
local D, M = 768, 3072
local g = oe.Generator(0)
local t = {}
local function lin(name, o, i, std)
  t[name .. ".weight"] = g:randn({ o, i }, 0, std or 0.02)
  t[name .. ".bias"] = oe.zeros({ o })
end
local function ln(name, n)
  t[name .. ".weight"] = oe.ones({ n })
  t[name .. ".bias"] = oe.zeros({ n })
end
local V = "image_encoder.pretrained_vit."
t[V .. "cls_token"] = g:randn({ 1, 1, D }, 0, 0.02)
t[V .. "pos_embed"] = g:randn({ 1, 197, D }, 0, 0.02)
t[V .. "patch_embed.proj.weight"] = g:randn({ D, 3, 16, 16 }, 0, 0.02)
t[V .. "patch_embed.proj.bias"] = oe.zeros({ D })
for i = 0, 11 do
  local p = V .. "blocks." .. i .. "."
  ln(p .. "norm1", D); ln(p .. "norm2", D)
  lin(p .. "attn.qkv", 3 * D, D); lin(p .. "attn.proj", D, D)
  lin(p .. "mlp.fc1", M, D); lin(p .. "mlp.fc2", D, M)
end
ln(V .. "norm", D)
local T = "text_encoder.pretrained_bert."
t[T .. "embeddings.word_embeddings.weight"] = g:randn({ 30522, D }, 0, 0.02)
t[T .. "embeddings.position_embeddings.weight"] = g:randn({ 512, D }, 0, 0.02)
t[T .. "embeddings.token_type_embeddings.weight"] = g:randn({ 2, D }, 0, 0.02)
ln(T .. "embeddings.LayerNorm", D)
for i = 0, 11 do
  local p = T .. "encoder.layer." .. i .. "."
  lin(p .. "attention.self.query", D, D); lin(p .. "attention.self.key", D, D)
  lin(p .. "attention.self.value", D, D); lin(p .. "attention.output.dense", D, D)
  ln(p .. "attention.output.LayerNorm", D)
  lin(p .. "intermediate.dense", M, D); lin(p .. "output.dense", D, M)
  ln(p .. "output.LayerNorm", D)
end
lin(T .. "pooler.dense", D, D)
-- heads, tokens, UP: a model of the original's sizes written in its layout
local model = oe.OneEncoder()
model:add_modality("image", { input_dim = D, generator = g })
model:add_modality("text", { input_dim = D, generator = g })
local top = os.tmpname() .. ".safetensors"
assert(oe.checkpoint.export_original(model, top))
for k, v in pairs(assert(oe.load(top))) do t[k] = v end
os.remove(top)
local nparams = 0
for _, v in pairs(t) do nparams = nparams + core.numel(v) end
local path = os.tmpname() .. ".safetensors"
assert(oe.save(path, t))
t, model = nil, nil
collectgarbage("collect")
local fsize = core.fs_stat(path).size
report("checkpoint_million_params", nparams / 1e6, "%.1f")
report("checkpoint_file_mb", fsize / 2 ^ 20, "%.0f")

-- ---- the child ----
local p = io.popen(string.format("lua5.4 bench/pretrained_bench.lua --child '%s' %d", path, threads))
local child = {}
for line in p:lines() do
  print(line)
  local k, v = line:match("^([%w_]+):%s*([%d%.eE+-]+)")
  if k then child[k] = tonumber(v) end
end
p:close()
os.remove(path)
if child.pretrained_peak_rss_mb then
  report("pretrained_rss_budget_mb", fsize / 2 ^ 20 + 400, "%.0f")
  report("pretrained_peak_rss_over_weights_mb", child.pretrained_peak_rss_mb - fsize / 2 ^ 20, "%.0f")
  report("embed_images_share_of_encoder_only_cpu", child.embed_images_per_cpu_s / child.encoder_only_images_per_cpu_s, "%.3f")
  report("embed_texts_share_of_encoder_only_cpu", child.embed_texts_per_cpu_s / child.encoder_only_texts_per_cpu_s, "%.3f")
end
