-- examples/demo.lua: the main job. Progressive alignment image -> text -> audio -> video on
-- real data. By default on the real pretrained encoders (examples/demo/pretrained.lua:
-- MobileNetV2, GloVe, the speech embedding; drawings, emoji, speech, animated emoji); with
-- --builtin on the built-in (weight-free) encoders, the pipeline below:
--   step 1   image <-> text   Fashion-MNIST and sklearn digits images with captions
--   step 2   audio  -> text   spoken captions (espeak-ng / flite voices), the UP frozen
--   step 2   video  -> text   clips made from real images, decoded through the video path
-- then evaluation on held-out data (every figure next to chance and next to the
-- same pipeline without training), and a report with a results table and figures.
--   lua5.4 examples/demo.lua [--builtin] [--fresh] [--ablations] [--quick]
-- --fresh retrains every stage (finished stages are otherwise kept), --ablations
-- adds the step-1 ablations (no token, each fusion, original pooling; --builtin only), --quick
-- is a small run for trying the pipeline. Data: ./data (or $OE_DATA_DIR); run folder:
-- runs/demo, runs/demo_builtin with --builtin (or $OE_RUN_DIR).
package.path = "examples/?.lua;" .. package.path
local oe = require "oneencoder"
local data = require "demo.data"
local core = oe.core
local R = oe.report

local flags = {}
for _, a in ipairs(arg or {}) do flags[a:gsub("^%-%-", "")] = true end
if not flags.builtin then require("demo.pretrained").run(flags) do return end end
local QUICK = flags.quick
local RUN = os.getenv("OE_RUN_DIR") or "runs/demo_builtin"
local T0 = core.now()
oe.set_num_threads(tonumber(os.getenv("OE_THREADS") or "2"))

local function say(fmt, ...) print(string.format(fmt, ...)); io.stdout:flush() end
local function sh(cmd) return os.execute(cmd) end
if flags.fresh then sh("rm -rf '" .. RUN .. "'") end
sh("mkdir -p '" .. RUN .. "/figures'")

-- ------------------------------------------------------------------ data
local SIZES = QUICK and { n_train = 1000, n_test = 1000, n_speech_train = 200, n_speech_test = 100,
  n_clips_train = 60, n_clips_test = 40, digits_test = 200 }
  or { n_train = 6000, n_test = 10000, n_speech_train = 2400, n_speech_test = 300,
  n_clips_train = 300, n_clips_test = 100, digits_test = 500 }
SIZES.progress = true
local S = data.prepare(SIZES)
local t_data = core.now() - T0
say("data: %.1f s (first fetch %.1f s)", t_data, S.timings.fetch or 0)

-- ------------------------------------------------------------------ encoders and features
local enc = {
  image = oe.encoders.create("patches", { patch = 7, size = 28, channels = 1, proj = 64, seed = 11 }),
  text = oe.encoders.create("words", { dim = 64, seed = 12 }),
  -- log-mel limited to the telephone band (up to 4 kHz): 8 kHz recordings (the flite test voices,
  -- the Asterisk prompts) and 16 kHz speech then cover the same bands
  audio = oe.encoders.create("logmel", { n_mels = 40, mel = { f_max = 4000 }, stack = 8, seed = 13, max_seconds = 4 }),
  video = oe.encoders.create("frames", { frames = 8, size = 28, patch = 28, channels = 1, proj = 64, seed = 14 }),
}

local CACHE = (os.getenv("OE_DATA_DIR") or "data") .. "/features"

-- features(kind, items, key_fn, item_fn) -> FeatureSet, through the on-disk feature cache
local function features(kind, items, key_fn, input_fn)
  return data.features(kind, CACHE .. "/" .. kind, enc[kind], items, key_fn, input_fn, 128)
end

local function images_of(set, name)
  local items = {}
  for i = 1, #set.index do
    local img = core.select(set.images, 1, i)
    items[i] = { img = img, label = math.tointeger(core.get(set.labels, i)), source = name, index = set.index[i],
      key = data.tensor_key(name, set.index[i], img) }
  end
  return items
end
local image_key = function(it) return it.key end
local image_input = function(it) return it.img end
local text_key = function(it) return "t:" .. it.text end
local text_input = function(it) return it.text end
local wav_key = function(it) return "a:" .. it.path end
local wav_input = function(it) return enc.audio:load(it.path) end
local clip_key = function(it) return "v:" .. it.path end
local clip_input = function(it) return enc.video:load(it.path) end

local img_train = {}
for _, x in ipairs(images_of(S.fashion.train, "fashion")) do img_train[#img_train + 1] = x end
for _, x in ipairs(images_of(S.digits.train, "digits")) do img_train[#img_train + 1] = x end
local img_test_f = images_of(S.fashion.test, "fashion")
local img_test_d = images_of(S.digits.test, "digits")

-- texts are stored once; pairs point at them, so pairs that share a caption are
-- recognised as such and are not used as each other's negatives (drop_duplicates)
local function text_table(list_of_strings)
  local items, index = {}, {}
  for _, t in ipairs(list_of_strings) do
    if not index[t] then items[#items + 1] = { text = t }; index[t] = #items end
  end
  return items, index
end

-- step-1 pairs: each training image with a caption of its class (training templates)
local caps_by = {}
for _, c in ipairs(S.captions.train) do
  local k = c.source .. c.label
  caps_by[k] = caps_by[k] or {}
  table.insert(caps_by[k], c.text)
end
local cap_strings = {}
for i, it in ipairs(img_train) do
  local list = caps_by[it.source .. it.label]
  cap_strings[i] = list[(i * 7) % #list + 1]
end
local function make_pairs(strings)
  local items, index = text_table(strings)
  local pairs_ = {}
  for i, t in ipairs(strings) do pairs_[i] = { i, index[t] } end
  return items, pairs_
end
local cap_items, cap_pairs = make_pairs(cap_strings)
local speech_strings, clip_strings = {}, {}
for i, it in ipairs(S.speech.train) do speech_strings[i] = it.text end
for i, it in ipairs(S.clips.train) do clip_strings[i] = it.caption end
local speech_text_items, speech_pairs = make_pairs(speech_strings)
local clip_text_items, clip_pairs = make_pairs(clip_strings)

local F = {
  img_train = features("image", img_train, image_key, image_input),
  cap_train = features("text", cap_items, text_key, text_input),
  img_test_f = features("image", img_test_f, image_key, image_input),
  img_test_d = features("image", img_test_d, image_key, image_input),
  speech_train = features("audio", S.speech.train, wav_key, wav_input),
  speech_text_train = features("text", speech_text_items, text_key, text_input),
  speech_test = features("audio", S.speech.test, wav_key, wav_input),
  clips_train = features("video", S.clips.train, clip_key, clip_input),
  clips_text_train = features("text", clip_text_items, text_key, text_input),
  clips_test = features("video", S.clips.test, clip_key, clip_input),
  asterisk = features("audio", S.asterisk_digits, wav_key, wav_input),
}
local t_features = core.now() - T0 - t_data

-- ------------------------------------------------------------------ the model and its stages
local CFG = { d = 256, heads = 4, layers = 1, ff = 512, dropout = 0.1 }
local EPOCHS = QUICK and { 3, 3, 3 } or { 12, 40, 15 }

local function build(cfg_over, seed)
  local cfg = {}
  for k, v in pairs(CFG) do cfg[k] = v end
  for k, v in pairs(cfg_over or {}) do cfg[k] = v end
  return data.build_model(cfg, enc, seed)
end

local function add_step2(m) return data.add_step2(m, enc) end

local function train_all(tag, cfg_over, step2)
  local m = build(cfg_over)
  local logs = {}
  logs.step1 = RUN .. "/" .. tag .. "_step1/log.jsonl"
  oe.train.align(m, { a = { name = "image", set = F.img_train }, b = { name = "text", set = F.cap_train }, pairs = cap_pairs,
    epochs = EPOCHS[1], batch_size = 64, checkpoint_dir = RUN .. "/" .. tag .. "_step1", log_path = logs.step1,
    name = tag .. " step 1 image-text", seed = 1 })
  if not step2 then return m, logs end
  add_step2(m)
  logs.audio = RUN .. "/" .. tag .. "_step2_audio/log.jsonl"
  oe.train.extend(m, { a = { name = "audio", set = F.speech_train }, b = { name = "text", set = F.speech_text_train },
    pairs = speech_pairs, epochs = EPOCHS[2], batch_size = 64, checkpoint_dir = RUN .. "/" .. tag .. "_step2_audio", log_path = logs.audio,
    name = tag .. " step 2 audio-text", seed = 2 })
  logs.video = RUN .. "/" .. tag .. "_step2_video/log.jsonl"
  oe.train.extend(m, { a = { name = "video", set = F.clips_train }, b = { name = "text", set = F.clips_text_train },
    pairs = clip_pairs, epochs = EPOCHS[3], batch_size = 32, checkpoint_dir = RUN .. "/" .. tag .. "_step2_video", log_path = logs.video,
    name = tag .. " step 2 video-text", seed = 3 })
  return m, logs
end

local t_train0 = core.now()
local model, logs = train_all("main", nil, true)
local t_train = core.now() - t_train0
local untrained = add_step2(build(nil)) -- the same pipeline and initial weights, no training

-- ------------------------------------------------------------------ evaluation
local function embed_set(m, name, set) return m:embed_set(name, set, 512) end

local function embed_texts(m, texts)
  local f, l = enc.text:encode(texts)
  return oe.no_grad(function() m:eval(); return m:embed("text", f, l) end)
end

-- class embeddings from the held-out templates (averaged, as OpenCLIP does)
local function class_embeddings(m, nouns)
  local per = {}
  for k, texts in ipairs(data.prompts(nouns)) do per[k] = embed_texts(m, texts) end
  return per
end

local function labels_of(items) local t = {} for i, it in ipairs(items) do t[i] = it.label end return t end
local function label_tensor(items) return oe.tensor(labels_of(items), "int64") end

-- chance of R@k when ranking at random: mean over queries of 1 - prod (N-r-i)/(N-i)
local function chance_recall(qlabels, klabels, k)
  local count = {}
  for _, l in ipairs(klabels) do count[l] = (count[l] or 0) + 1 end
  local N, s = #klabels, 0
  for _, l in ipairs(qlabels) do
    local r, miss = count[l] or 0, 1
    for i = 0, k - 1 do miss = miss * math.max(0, N - r - i) / (N - i) end
    s = s + 1 - miss
  end
  return s / #qlabels
end

local rows = { { "task", "metric", "trained", "untrained UP", "chance" } }
local results = {}
local function add(task, metric, trained, base, chance)
  rows[#rows + 1] = { task, metric, string.format("%.3f", trained), string.format("%.3f", base), string.format("%.3f", chance) }
  results[#results + 1] = { task = task, metric = metric, trained = trained, untrained = base, chance = chance }
end

local function zero_shot(m, emb, nouns, labels)
  return oe.eval.zero_shot(emb, class_embeddings(m, nouns), labels, { k = 5 })
end

-- evaluate(m) -> table of figures (used for the trained and the untrained model)
local function evaluate(m, full)
  local out = {}
  local fl = label_tensor(img_test_f)
  out.img_f = embed_set(m, "image", F.img_test_f)
  out.zs = zero_shot(m, out.img_f, S.fashion.nouns, fl)
  -- image <-> text retrieval: held-out images against every held-out caption (the test
  -- templates filled with each class name); relevant = same class
  local n_ret = math.min(2000, #img_test_f)
  local caps, cap_lab = {}, {}
  for _, tpl in ipairs(data.TEMPLATES.test) do
    for c, noun in ipairs(S.fashion.nouns) do caps[#caps + 1] = data.fill(tpl, noun); cap_lab[#cap_lab + 1] = c - 1 end
  end
  local lab = {}
  for i = 1, n_ret do lab[i] = img_test_f[i].label end
  out.txt = embed_texts(m, caps)
  out.ret = oe.eval.retrieval(out.img_f:narrow(1, 1, n_ret), out.txt, { a = lab, b = cap_lab })
  out.ret_labels, out.cap_labels = lab, cap_lab
  -- audio: held-out voices
  out.aud = embed_set(m, "audio", F.speech_test)
  local al = labels_of(S.speech.test)
  local asrc = {}
  for i, it in ipairs(S.speech.test) do asrc[i] = it.source end
  -- audio -> text: the spoken caption's class among the class prompts of its source
  local hits, n = 0, 0
  local fashion_cls = class_embeddings(m, S.fashion.nouns)
  local digit_cls = class_embeddings(m, S.digits.nouns)
  local fc = oe.eval.class_embeddings(fashion_cls)
  local dc = oe.eval.class_embeddings(digit_cls)
  local ae = out.aud:totable()
  local function best(vec, cls)
    local s = oe.matmul(oe.tensor({ vec }), cls:t())
    return s:argmax(2):item()
  end
  for i = 1, #ae do
    local pred = best(ae[i], asrc[i] == "fashion" and fc or dc)
    if pred == al[i] then hits = hits + 1 end
    n = n + 1
  end
  out.audio_text_acc = hits / n
  -- audio -> image (transitive: no audio-image pair was ever trained), fashion recordings against test images
  local fa_idx, fa_lab = {}, {}
  for i, it in ipairs(S.speech.test) do if it.source == "fashion" then fa_idx[#fa_idx + 1] = i - 1; fa_lab[#fa_lab + 1] = it.label end end
  local n_img = math.min(2000, #img_test_f)
  local img_lab = {}
  for i = 1, n_img do img_lab[i] = img_test_f[i].label end
  out.aud_f = out.aud:index_select(oe.tensor(fa_idx, "int64"))
  out.a2i = oe.eval.retrieval(out.aud_f, out.img_f:narrow(1, 1, n_img), { a = fa_lab, b = img_lab }).a2b
  out.a2i_chance = { chance_recall(fa_lab, img_lab, 1), chance_recall(fa_lab, img_lab, 5) }
  out.a2t_chance = 0.1
  -- the real Asterisk recordings "zero" .. "nine" against digit images and digit prompts
  out.ast = embed_set(m, "audio", F.asterisk)
  local ast_lab = labels_of(S.asterisk_digits)
  out.img_d = embed_set(m, "image", F.img_test_d)
  local dl = labels_of(img_test_d)
  out.ast_img = oe.eval.retrieval(out.ast, out.img_d, { a = ast_lab, b = dl }).a2b
  out.ast_img_chance = chance_recall(ast_lab, dl, 1)
  local ah = 0
  for i, v in ipairs(out.ast:totable()) do if best(v, dc) == ast_lab[i] then ah = ah + 1 end end
  out.ast_text_acc = ah / #ast_lab
  -- video <-> text and video <-> image on held-out clips
  out.vid = embed_set(m, "video", F.clips_test)
  local vl, vcap, vsrc = {}, {}, {}
  for i, it in ipairs(S.clips.test) do vl[i] = it.label; vsrc[i] = it.source end
  local vh = 0
  for i, v in ipairs(out.vid:totable()) do
    if best(v, vsrc[i] == "fashion" and fc or dc) == vl[i] then vh = vh + 1 end
  end
  out.video_text_acc = vh / #vl
  local vf_idx, vf_lab = {}, {}
  for i, it in ipairs(S.clips.test) do if it.source == "fashion" then vf_idx[#vf_idx + 1] = i - 1; vf_lab[#vf_lab + 1] = it.label end end
  out.v2i = oe.eval.retrieval(out.vid:index_select(oe.tensor(vf_idx, "int64")), out.img_f:narrow(1, 1, n_img),
    { a = vf_lab, b = img_lab }).a2b
  out.v2i_chance = chance_recall(vf_lab, img_lab, 1)
  out.i2v = oe.eval.retrieval(out.img_f:narrow(1, 1, n_img), out.vid:index_select(oe.tensor(vf_idx, "int64")),
    { a = img_lab, b = vf_lab }).a2b
  out.i2v_chance = chance_recall(img_lab, vf_lab, 1)
  return out
end

local t_eval0 = core.now()
local E = evaluate(model)
local U = evaluate(untrained)
local t_eval = core.now() - t_eval0

add("Fashion-MNIST test (10 classes), classification by text prompts", "top-1", E.zs.top1, U.zs.top1, 0.1)
add("", "top-5", E.zs.top5, U.zs.top5, 0.5)
local rl, cl = E.ret_labels, E.cap_labels
add("image -> text retrieval (40 held-out captions, same class relevant)", "R@1", E.ret.a2b.R1, U.ret.a2b.R1, chance_recall(rl, cl, 1))
add("", "R@5", E.ret.a2b.R5, U.ret.a2b.R5, chance_recall(rl, cl, 5))
add("text -> image retrieval (2,000 held-out images)", "R@1", E.ret.b2a.R1, U.ret.b2a.R1, chance_recall(cl, rl, 1))
add("", "R@5", E.ret.b2a.R5, U.ret.b2a.R5, chance_recall(cl, rl, 5))
add("audio -> text, held-out voices (class of the spoken caption)", "top-1", E.audio_text_acc, U.audio_text_acc, 0.1)
add("audio -> image (transitive: never trained together)", "R@1", E.a2i.R1, U.a2i.R1, E.a2i_chance[1])
add("", "R@5", E.a2i.R5, U.a2i.R5, E.a2i_chance[2])
add("real Asterisk recordings zero..nine -> digit images", "R@1", E.ast_img.R1, U.ast_img.R1, E.ast_img_chance)
add("real Asterisk recordings zero..nine -> digit prompts", "top-1", E.ast_text_acc, U.ast_text_acc, 0.1)
add("video -> text (class prompts)", "top-1", E.video_text_acc, U.video_text_acc, 0.1)
add("video -> image", "R@1", E.v2i.R1, U.v2i.R1, E.v2i_chance)
add("image -> video", "R@1", E.i2v.R1, U.i2v.R1, E.i2v_chance)

-- ------------------------------------------------------------------ ablations (one flag away)
local ablation_rows
if flags.ablations then
  ablation_rows = { { "variant (step 1 only)", "zero-shot top-1", "image->text R@1" } }
  local variants = {
    { "addition, masked pooling (main)", nil },
    { "no modality token", { use_token = false } },
    { "multiplication", { fusion = "multiplication" } },
    { "concatenation", { fusion = "concatenation" } },
    { "scaled dot product", { fusion = "scaled_dot_product" } },
    { "original pooling", { pooling = "original" } },
  }
  for i, v in ipairs(variants) do
    local m = i == 1 and model or train_all("ablation" .. i, v[2], false)
    local img = embed_set(m, "image", F.img_test_f)
    local zs = zero_shot(m, img, S.fashion.nouns, label_tensor(img_test_f))
    local caps = {}
    for _, tpl in ipairs(data.TEMPLATES.test) do
      for _, noun in ipairs(S.fashion.nouns) do caps[#caps + 1] = data.fill(tpl, noun) end
    end
    local txt = embed_texts(m, caps)
    local r = oe.eval.retrieval(img:narrow(1, 1, #E.ret_labels), txt, { a = E.ret_labels, b = E.cap_labels })
    ablation_rows[#ablation_rows + 1] = { v[1], string.format("%.3f", zs.top1), string.format("%.3f", r.a2b.R1) }
    say("ablation %-34s zero-shot %.3f  R@1 %.3f", v[1], zs.top1, r.a2b.R1)
  end
end

-- ------------------------------------------------------------------ figures
-- loss curves per stage
local series = {}
for i, st in ipairs { { "step 1 image-text", logs.step1 }, { "step 2 audio-text", logs.audio }, { "step 2 video-text", logs.video } } do
  local recs = R.read_jsonl(st[2])
  local x, ytr, yva = {}, {}, {}
  for j, r in ipairs(recs) do x[j], ytr[j], yva[j] = r.epoch, r.train_loss, r.val_loss end
  series[#series + 1] = { name = st[1] .. " train", x = x, y = ytr, color = R.palette[i] }
  series[#series + 1] = { name = st[1] .. " val", x = x, y = yva, color = R.palette[i], dash = true }
end
R.save_text(RUN .. "/figures/loss.svg", R.line_chart(series, { title = "InfoNCE loss per stage", xlabel = "epoch", width = 760 }))

-- the shared space: PCA of held-out embeddings, colour = class, marker = modality
local pts_emb, meta = {}, {}
local function take(emb, labels, group, n)
  for i = 1, math.min(n, #labels) do
    pts_emb[#pts_emb + 1] = core.narrow(emb, 1, i, 1)
    meta[#meta + 1] = { class = labels[i], group = group }
  end
end
take(E.img_f, labels_of(img_test_f), 1, 300)
take(E.txt, E.cap_labels, 2, 300)
take(E.aud_f, (function() local t = {} for _, it in ipairs(S.speech.test) do if it.source == "fashion" then t[#t + 1] = it.label end end return t end)(), 3, 300)
take(E.vid:index_select(oe.tensor((function() local t = {} for i, it in ipairs(S.clips.test) do if it.source == "fashion" then t[#t + 1] = i - 1 end end return t end)(), "int64")),
  (function() local t = {} for _, it in ipairs(S.clips.test) do if it.source == "fashion" then t[#t + 1] = it.label end end return t end)(), 4, 300)
local xy = R.pca(core.cat(pts_emb, 1), 2):totable()
local points = {}
for i, p in ipairs(xy) do points[i] = { p[1], p[2], class = meta[i].class, group = meta[i].group } end
R.save_text(RUN .. "/figures/space.svg", R.scatter(points, { title = "shared space (PCA of held-out Fashion-MNIST embeddings)",
  classes = S.fashion.classes, groups = { "image", "text (caption)", "audio (spoken caption)", "video" }, width = 760 }))

-- retrieval examples: text prompts and spoken captions as queries, top-6 test images
local grid_rows, marks, grid_text = {}, {}, {}
local fashion_prompts = {}
for c, noun in ipairs(S.fashion.nouns) do fashion_prompts[c] = data.fill(data.TEMPLATES.test[1], noun) end
local prompt_emb = embed_texts(model, fashion_prompts)
local queries = {}
for c = 1, 5 do queries[#queries + 1] = { kind = "text", text = fashion_prompts[c * 2 - 1], emb = core.narrow(prompt_emb, 1, c * 2 - 1, 1), label = c * 2 - 2 } end
local fa_items = {}
for i, it in ipairs(S.speech.test) do if it.source == "fashion" then fa_items[#fa_items + 1] = it end end
for k = 1, math.min(3, #fa_items) do
  local it = fa_items[k * 3]
  if it then queries[#queries + 1] = { kind = "audio", text = it.text .. " (" .. it.voice .. ")", emb = core.narrow(E.aud_f, 1, k * 3, 1), label = it.label } end
end
for qi, q in ipairs(queries) do
  local _, ids = oe.eval.topk_search(q.emb, E.img_f, 6)
  local row, mrow = {}, {}
  for j, id in ipairs(ids:totable()[1]) do
    local it = img_test_f[id + 1]
    row[j] = it.img
    mrow[j] = it.label == q.label and { 0, 170, 0 } or { 210, 0, 0 }
  end
  grid_rows[qi], marks[qi] = row, mrow
  grid_text[qi] = string.format("%d. %s query: \"%s\"", qi, q.kind, q.text)
end
assert(oe.image.save(R.grid(grid_rows, { cell = 56, marks = marks }), RUN .. "/figures/retrieval.png"))

-- ------------------------------------------------------------------ report
local total = core.now() - T0
local md = {}
md[#md + 1] = "# OneEncoder demo: results\n"
md[#md + 1] = string.format("Built-in encoders (no pretrained weights), d = %d, ff = %d; %d image-caption pairs in step 1, %d spoken captions and %d clips in step 2.\n",
  CFG.d, CFG.ff, F.img_train:size(), F.speech_train:size(), F.clips_train:size())
md[#md + 1] = oe.eval.format_table(rows)
md[#md + 1] = ""
md[#md + 1] = "Confusion matrix, Fashion-MNIST test by prompts (rows: true class, columns: predicted):\n"
local crow = { { "true \\ predicted", table.unpack((function() local t = {} for c = 0, 9 do t[#t + 1] = tostring(c) end return t end)()) } }
for c, row in ipairs(E.zs.confusion:totable()) do
  local r = { string.format("%d %s", c - 1, S.fashion.classes[c]) }
  for _, v in ipairs(row) do r[#r + 1] = tostring(v) end
  crow[#crow + 1] = r
end
md[#md + 1] = oe.eval.format_table(crow)
if ablation_rows then
  md[#md + 1] = "\nAblations (step 1 only, same data and epochs):\n"
  md[#md + 1] = oe.eval.format_table(ablation_rows)
end
md[#md + 1] = "\nFigures: `figures/loss.svg` (loss per stage), `figures/space.svg` (PCA of the shared space), `figures/retrieval.png` (rows: queries below; green border = same class, red = other):\n"
for _, l in ipairs(grid_text) do md[#md + 1] = "- " .. l end
md[#md + 1] = string.format("\nTimings: data %.1f s (first fetch %.1f s), features %.1f s, training %.1f s, evaluation %.1f s, total %.1f s.",
  t_data, S.timings.fetch or 0, t_features, t_train, t_eval, total)
R.save_text(RUN .. "/report.md", table.concat(md, "\n") .. "\n")
-- the figures the pretrained pipeline's report sets next to its own (same tasks), one flat record
local shared = { fashion_top1 = E.zs.top1, class_speech = E.audio_text_acc, asterisk_digit_prompts = E.ast_text_acc,
  quick = QUICK and 1 or 0 }
local rec = {}
for _, k in ipairs({ "fashion_top1", "class_speech", "asterisk_digit_prompts", "quick" }) do
  rec[#rec + 1] = string.format('"%s":%.6g', k, shared[k])
end
R.save_text(RUN .. "/results.jsonl", "{" .. table.concat(rec, ",") .. "}\n")

print("")
print(oe.eval.format_table(rows))
if ablation_rows then print(""); print(oe.eval.format_table(ablation_rows)) end
say("\nreport: %s/report.md, figures in %s/figures; total %.1f s (data %.1f, features %.1f, training %.1f, evaluation %.1f)",
  RUN, RUN, total, t_data, t_features, t_train, t_eval)
