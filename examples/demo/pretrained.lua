-- examples/demo/pretrained.lua: the main job on real pretrained encoders, what `make demo` runs
-- (`lua5.4 examples/demo.lua [--quick] [--fresh]`; --builtin runs the weight-free pipeline instead).
--   step 1   image <-> text   drawings (Open Clip Art) and emoji (Noto, Twemoji) with their
--                             captions, Fashion-MNIST and digits with class captions
--   step 2   audio  -> text   spoken names and class captions (espeak-ng voices), the UP frozen
--   step 2   video  -> text   animated Fluent emoji with their names
-- Encoders: MobileNetV2 (nsfwjs, pooled 1280-d: one token per image, one per video frame),
-- GloVe 100-d (one token per word), the speech embedding (one 96-d token per 80 ms).
-- Then evaluation on held-out data (next to the untrained UP) and runs/demo/report.md.
local oe = require "oneencoder"
local data = require "demo.data"
local rich = require "demo.rich"
local augment = require "demo.augment"
local core = oe.core

local P = {}

local function say(fmt, ...) print(string.format(fmt, ...)); io.stdout:flush() end

-- take(list, n, seed) -> at most n items of list, a seeded choice in the original order
local function take(list, n, seed)
  if not n or n >= #list then return list end
  local idx = {}
  for i = 1, #list do idx[i] = i end
  local r = data.rng(seed)
  for i = #idx, 2, -1 do local j = r(i); idx[i], idx[j] = idx[j], idx[i] end
  local keep = {}
  for i = 1, n do keep[#keep + 1] = idx[i] end
  table.sort(keep)
  local out = {}
  for i, k in ipairs(keep) do out[i] = list[k] end
  return out
end

function P.run(flags)
  local QUICK = flags.quick
  local RUN = os.getenv("OE_RUN_DIR") or "runs/demo"
  local T0 = core.now()
  oe.set_num_threads(tonumber(os.getenv("OE_THREADS") or "2"))
  if flags.fresh then os.execute("rm -rf '" .. RUN .. "'") end
  os.execute("mkdir -p '" .. RUN .. "'")

  -- ---------------------------------------------------------------- data
  local S = rich.prepare({ progress = true, n_train = 1000, n_test = 1000, digits_test = 300,
    n_speech_train = 600, n_speech_test = 200, train_names = false })
  local N = QUICK and { fashion = 300, fashion_test = 300, digits = 300, drawings = 400, emoji = 400, spoken = 500,
    videos = 60, d_test = 200, e_test = 200, s_test = 200, v_test = 40, g3d = 100, class_speech = 100,
    class_speech_test = 100 } or {}
  local t_data = core.now() - T0
  say("data: %.1f s", t_data)

  -- ---------------------------------------------------------------- encoders and features
  local K = 8   -- frames per video
  local enc = {
    image = assert(oe.encoders.create("mobilenet_v2", { output = "pooled" })),
    text = assert(oe.encoders.create("glove", { path = "data/glove/glove-100d.safetensors" })),
    audio = assert(oe.encoders.create("speech_embedding", { dir = "data/openwakeword" })),
  }
  enc.video = { dim = enc.image.dim, id = string.format("webp_frames:%d:%s", K, enc.image.id) }
  function enc.video:encode(paths)
    -- the animations decoded side by side (one thread each), then 8 frames at a time through
    -- MobileNetV2 (its fastest batch)
    local vids, errs = core.webp_read_list(paths, { frames = K })
    local frames = {}
    for i, v in ipairs(vids) do
      if not v then error(errs[i], 0) end
      local T = core.shape(v)[1]
      for t = 1, K do frames[#frames + 1] = core.select(v, 1, math.min(t, T)) end
    end
    local parts = {}
    for at = 1, #frames, 8 do
      parts[#parts + 1] = enc.image:encode(table.move(frames, at, math.min(#frames, at + 7), 1, {}))
    end
    local f = #parts == 1 and parts[1] or core.cat(parts, 1)   -- (B*K, 1, 1280)
    local lengths = {}
    for i = 1, #paths do lengths[i] = K end
    return core.reshape(core.contiguous and core.contiguous(f) or f, { #paths, K, enc.image.dim }), lengths
  end
  local CACHE = (os.getenv("OE_DATA_DIR") or "data") .. "/features"
  local function features(kind, items, key_fn, input_fn)
    -- MobileNetV2 runs fastest on batches of about 8 images (X, 2 threads: 6.4 ms an image
    -- against 7.1 at 32, the activations staying in cache); videos 4 at a time (decoded in
    -- parallel, their frames 8 at a time)
    local batch = ({ video = 4, image = 8 })[kind] or 32
    return data.features(kind, CACHE .. "/pretrained_" .. kind, enc[kind], items, key_fn, input_fn, batch)
  end
  local function gray(t) local s = core.shape(t) return core.reshape(t, { s[1], s[2], 1 }) end
  local img_input = function(it)
    if it.img then return gray(it.img) end
    if it.webp then return core.select(assert(core.webp_read(it.webp, { frames = 1 })), 1, 1) end
    return oe.image.load(it.path)
  end
  local img_key = function(it) return it.key end
  local text_key = function(it) return "t:" .. it.text end
  local text_input = function(it) return it.text end
  local wav_key = function(it) return (it.aug and ("aug:" .. it.aug .. ":") or "a:") .. it.path end
  local wav_input = function(it)
    local w, err = enc.audio:load(it.path)
    if w and it.aug then w = augment.apply(it.aug, w) end
    return w, err
  end
  local vid_key = function(it) return "v:" .. it.path end
  local vid_input = function(it) return it.path end

  local function tensor_items(set, name, captions_by_label)
    local out = {}
    for i = 1, #set.index do
      local label = math.tointeger(core.get(set.labels, i))
      local img = core.select(set.images, 1, i)
      out[i] = { img = img, label = label, key = data.tensor_key(name, set.index[i], img) }
    end
    return out
  end
  -- step-1 training pairs: (image item, caption text)
  local ftrain = take(tensor_items(S.fashion.train, "fashion"), N.fashion, 1)
  local dtrain = take(tensor_items(S.digits.train, "digits"), N.digits, 2)
  local drawings_train = take(S.drawings.train, N.drawings, 3)
  local emoji_train = take(S.emoji_images.train, N.emoji, 4)
  local caps_by = {}
  for _, c in ipairs(S.captions.train) do
    local k = c.source .. c.label
    caps_by[k] = caps_by[k] or {}
    table.insert(caps_by[k], c.text)
  end
  local img1, cap1 = {}, {}
  local function add_pair(img, text) img1[#img1 + 1] = img; cap1[#cap1 + 1] = text end
  for i, it in ipairs(ftrain) do local l = caps_by["fashion" .. it.label]; add_pair(it, l[(i * 7) % #l + 1]) end
  for i, it in ipairs(dtrain) do local l = caps_by["digits" .. it.label]; add_pair(it, l[(i * 7) % #l + 1]) end
  for _, it in ipairs(drawings_train) do add_pair({ path = it.path, key = "oc:" .. it.id }, it.caption) end
  for _, it in ipairs(emoji_train) do add_pair({ path = it.path, key = "em:" .. it.style .. ":" .. it.code }, it.caption) end
  -- the 3D renders of training concepts with their names (a third drawing style; the animated
  -- emoji of step 2 share its look, the held-out concepts' renders are the video -> image gallery)
  for _, it in ipairs(take(S.fluent_3d.train, N.emoji, 15)) do add_pair({ webp = it.path, key = "3d:" .. it.code }, it.caption) end
  local function make_pairs(strings)
    local items, index, pairs_ = {}, {}, {}
    for i, t in ipairs(strings) do
      if not index[t] then items[#items + 1] = { text = t }; index[t] = #items end
      pairs_[i] = { i, index[t] }
    end
    return items, pairs_
  end
  local cap1_items, pairs1 = make_pairs(cap1)
  -- step-2 audio pairs: the Asterisk vocabulary (digits, letters, phonetic alphabet) in the
  -- training voices and the class captions' speech. The spoken drawing and emoji names are left
  -- out of training: measured with them (one copy each, 2,700 more sentences), the stage took 35%
  -- longer and the real digits fell from 0.8 to 0.7, the phonetic alphabet from 0.69 to 0.62,
  -- while the held-out names rose only from 0.001 to 0.026 (R@1); they stay in the evaluation.
  local spoken_train = {}
  for _, it in ipairs(take(S.spoken.train, N.spoken, 5)) do
    if it.source == "vocabulary" then spoken_train[#spoken_train + 1] = it end
  end
  for _, it in ipairs(take(S.speech.train, N.class_speech, 13)) do
    spoken_train[#spoken_train + 1] = { path = it.path, text = it.text, source = "class" }
  end
  local class_speech_test = take(S.speech.test, N.class_speech_test, 14)
  -- the audio stage's items: the spoken items above, then every vocabulary word and class caption
  -- again in each augmentation (demo/augment.lua: telephone band after a silent lead as the real
  -- prompts are, 0.9x and 1.1x speed); trained in batches of 128 of similar lengths (measured on
  -- the audio stage alone, fresh data: batches of 64 gave real digits 0.7, phonetic 0.85, class
  -- captions 0.68 in 168 s; 128 gave 0.9, 0.88, 0.64 in 111 s)
  local aud_items = {}
  for i, it in ipairs(spoken_train) do aud_items[i] = it end
  for _, kind in ipairs(augment.KINDS) do
    for _, it in ipairs(spoken_train) do
      aud_items[#aud_items + 1] = { path = it.path, text = it.text, source = it.source, aug = kind }
    end
  end
  local sp_strings = {}
  for i, it in ipairs(aud_items) do sp_strings[i] = it.text end
  local sp_items, pairs_a = make_pairs(sp_strings)
  -- step-2 video pairs
  local videos_train = take(S.videos.train, N.videos, 6)
  local v_strings = {}
  for i, it in ipairs(videos_train) do v_strings[i] = it.caption end
  local v_items, pairs_v = make_pairs(v_strings)

  -- held-out sets
  local ftest = take(tensor_items(S.fashion.test, "fashion"), N.fashion_test, 7)
  local dtest = tensor_items(S.digits.test, "digits")
  local d_test = take(S.drawings.test, N.d_test, 8)
  local e_test = take(S.emoji_images.test, N.e_test, 9)
  local ov_img = {}
  for _, it in ipairs(d_test) do ov_img[#ov_img + 1] = { path = it.path, key = "oc:" .. it.id, caption = it.caption, ref = "oc:" .. it.id, kind = "drawing" } end
  for _, it in ipairs(e_test) do ov_img[#ov_img + 1] = { path = it.path, key = "em:" .. it.style .. ":" .. it.code, caption = it.caption, ref = "em:" .. it.code, kind = "emoji", category = it.category, style = it.style, code = it.code } end
  local s_test = take(S.spoken.test, N.s_test, 10)
  local v_test = take(S.videos.test, N.v_test, 11)
  local g3d = take(S.fluent_3d.test, N.g3d, 12)
  local g3d_items = {}
  for i, it in ipairs(g3d) do g3d_items[i] = { webp = it.path, key = "3d:" .. it.code, code = it.code } end
  local ast = {}
  for _, g in ipairs({ "digits", "letters", "phonetic", "other" }) do
    for _, it in ipairs(S.asterisk_groups[g]) do ast[#ast + 1] = { path = it.path, text = it.text, group = g, label = it.label, id = it.id } end
  end

  local F = {
    img1 = features("image", img1, img_key, img_input),
    cap1 = features("text", cap1_items, text_key, text_input),
    aud = features("audio", aud_items, wav_key, wav_input),
    aud_text = features("text", sp_items, text_key, text_input),
    vid = features("video", videos_train, vid_key, vid_input),
    vid_text = features("text", v_items, text_key, text_input),
    ftest = features("image", ftest, img_key, img_input),
    dtest = features("image", dtest, img_key, img_input),
    ov_img = features("image", ov_img, img_key, img_input),
    s_test = features("audio", s_test, wav_key, wav_input),
    class_speech_test = features("audio", class_speech_test, wav_key, wav_input),
    ast = features("audio", ast, wav_key, wav_input),
    v_test = features("video", v_test, vid_key, vid_input),
    g3d = features("image", g3d_items, img_key, img_input),
  }
  local t_features = core.now() - T0 - t_data

  -- ---------------------------------------------------------------- model and stages
  local CFG = { d = 256, heads = 4, layers = 1, ff = 2048, dropout = 0.1 }
  -- epochs chosen for the time budget on a shared 2-core machine (step 1 ~1 min per epoch there)
  local EPOCHS = QUICK and { 3, 3, 3 } or { 10, 12, 30 }
  local function build() return data.build_model(CFG, enc, 2024) end
  local function add_step2(m) return data.add_step2(m, enc) end
  -- ---------------------------------------------------------------- evaluation
  local function embed_texts(m, texts)
    local out = {}
    for i = 1, #texts, 256 do
      local part = { table.unpack(texts, i, math.min(#texts, i + 255)) }
      local f, l = enc.text:encode(part)
      out[#out + 1] = oe.no_grad(function() m:eval(); return m:embed("text", f, l) end)
    end
    return #out == 1 and out[1] or core.cat(out, 1)
  end
  local function class_emb(m, nouns)
    local per = {}
    for k, texts in ipairs(data.prompts(nouns)) do per[k] = embed_texts(m, texts) end
    return per
  end
  -- group ids of strings (equal strings share an id) and the distinct strings
  local function groups(strings)
    local ids, uniq, index = {}, {}, {}
    for i, s in ipairs(strings) do
      if not index[s] then uniq[#uniq + 1] = s; index[s] = #uniq - 1 end
      ids[i] = index[s]
    end
    return ids, uniq, index
  end
  local function top1(q, cls, labels)
    local zs = oe.eval.zero_shot(q, cls, labels, { k = 1 })
    return zs.top1
  end
  local function evaluate(m)
    local o = {}
    local function emb(name, set) return m:embed_set(name, set, 256) end
    -- zero-shot by prompts
    local fl, dl = {}, {}
    for i, it in ipairs(ftest) do fl[i] = it.label end
    for i, it in ipairs(dtest) do dl[i] = it.label end
    o.ftest_emb, o.dtest_emb = emb("image", F.ftest), emb("image", F.dtest)
    o.fashion = top1(o.ftest_emb, class_emb(m, data.FASHION_NOUNS), fl)
    o.digits = top1(o.dtest_emb, class_emb(m, data.DIGIT_NOUNS), dl)
    local ov = emb("image", F.ov_img)
    local cats, cat_index = {}, {}
    for i, c in ipairs(require("demo.emoji").CATEGORIES) do cats[i] = require("demo.emoji").CATEGORY_NOUNS[c]; cat_index[c] = i - 1 end
    local e_idx, e_lab = {}, {}
    for i, it in ipairs(ov_img) do if it.kind == "emoji" then e_idx[#e_idx + 1] = i - 1; e_lab[#e_lab + 1] = cat_index[it.category] end end
    local per = {}
    for k, tpl in ipairs({ "an emoji of {}", "a small picture of {}", "an icon showing {}" }) do
      local texts = {}
      for c, noun in ipairs(cats) do texts[c] = data.fill(tpl, noun) end
      per[k] = embed_texts(m, texts)
    end
    o.emoji_cat = top1(ov:index_select(oe.tensor(e_idx, "int64")), per, e_lab)
    o.emoji_cat_chance = 1 / #cats
    -- open-vocabulary retrieval: held-out images <-> their captions (same caption relevant)
    local caps = {}
    for i, it in ipairs(ov_img) do caps[i] = it.caption end
    local gid, uniq = groups(caps)
    local ui = {}
    for i = 1, #uniq do ui[i] = i - 1 end
    local txt = embed_texts(m, uniq)
    o.ov = oe.eval.retrieval(ov, txt, { a = gid, b = ui })
    o.ov_emb, o.txt_emb, o.uniq_caps, o.cap_gid = ov, txt, uniq, gid
    o.ov_n_img, o.ov_n_txt = #ov_img, #uniq
    -- the other style of a held-out emoji (Noto -> Twemoji)
    local gi, tw, gcode, tcode = {}, {}, {}, {}
    for i, it in ipairs(ov_img) do
      if it.kind == "emoji" then
        if it.style == "google" then gi[#gi + 1] = i - 1; gcode[#gcode + 1] = it.code else tw[#tw + 1] = i - 1; tcode[#tcode + 1] = it.code end
      end
    end
    local cgid, _, cindex = groups(gcode)
    local tg = {}
    for i, c in ipairs(tcode) do tg[i] = cindex[c] or -1 - i end
    o.style = oe.eval.retrieval(ov:index_select(oe.tensor(gi, "int64")), ov:index_select(oe.tensor(tw, "int64")), { a = cgid, b = tg }).a2b
    -- audio -> text, held-out voices: each spoken name among the held-out names
    local st = {}
    for i, it in ipairs(s_test) do st[i] = it.text end
    local sg, su = groups(st)
    local sui = {}
    for i = 1, #su do sui[i] = i - 1 end
    local aud = emb("audio", F.s_test)
    o.aud_emb = aud
    o.a2t = oe.eval.retrieval(aud, embed_texts(m, su), { a = sg, b = sui }).a2b
    o.a2t_n = #su
    -- the class captions' speech (the built-in pipeline's task): class of the caption
    local fc, dc = oe.eval.class_embeddings(class_emb(m, data.FASHION_NOUNS)), oe.eval.class_embeddings(class_emb(m, data.DIGIT_NOUNS))
    o.cs_emb = emb("audio", F.class_speech_test)
    local cs = o.cs_emb:totable()
    local hits = 0
    for i, it in ipairs(class_speech_test) do
      local s = oe.matmul(oe.tensor({ cs[i] }), (it.source == "fashion" and fc or dc):t())
      if s:argmax(2):item() == it.label then hits = hits + 1 end
    end
    o.class_speech = hits / #class_speech_test
    -- Asterisk: every transcribed recording against every transcript; digits, phonetic, letters
    local ae = emb("audio", F.ast)
    o.ast_emb = ae
    local at = {}
    for i, it in ipairs(ast) do at[i] = it.text end
    local ag, au = groups(at)
    local aui = {}
    for i = 1, #au do aui[i] = i - 1 end
    o.ast_all = oe.eval.retrieval(ae, embed_texts(m, au), { a = ag, b = aui }).a2b
    o.ast_n = #ast
    local function group_top1(g, texts_for_labels)
      local idx, lab = {}, {}
      for i, it in ipairs(ast) do if it.group == g then idx[#idx + 1] = i - 1; lab[#lab + 1] = it.label end end
      return top1(ae:index_select(oe.tensor(idx, "int64")), { embed_texts(m, texts_for_labels) }, lab), #idx
    end
    o.ast_digit_prompts = top1(ae:index_select(oe.tensor((function() local t = {} for i, it in ipairs(ast) do if it.group == "digits" then t[#t + 1] = i - 1 end end return t end)(), "int64")),
      class_emb(m, data.DIGIT_NOUNS), (function() local t = {} for _, it in ipairs(ast) do if it.group == "digits" then t[#t + 1] = it.label end end return t end)())
    o.ast_digit_words = group_top1("digits", data.DIGIT_CLASSES)
    o.ast_phonetic = group_top1("phonetic", rich.PHONETIC)
    local letters = {}
    for c = 97, 122 do letters[#letters + 1] = string.char(c) end
    o.ast_letters = group_top1("letters", letters)
    -- transitive audio -> image: spoken held-out names -> held-out drawings and emoji
    local sref = {}
    for i, it in ipairs(s_test) do sref[i] = (it.source == "drawing" and "oc:" or "em:") .. it.ref end
    local iref = {}
    for i, it in ipairs(ov_img) do iref[i] = it.ref end
    local all = {}
    for _, r in ipairs(sref) do all[#all + 1] = r end
    for _, r in ipairs(iref) do all[#all + 1] = r end
    local rg = groups(all)
    local qa, kb = {}, {}
    for i = 1, #sref do qa[i] = rg[i] end
    for i = 1, #iref do kb[i] = rg[#sref + i] end
    o.a2i = oe.eval.retrieval(aud, ov, { a = qa, b = kb }).a2b
    -- video -> 3D image (never trained together) and video -> text
    local ve = emb("video", F.v_test)
    o.vid_emb = ve
    local g3 = emb("image", F.g3d)
    local codes = {}
    for _, it in ipairs(v_test) do codes[#codes + 1] = it.code end
    for _, it in ipairs(g3d) do codes[#codes + 1] = it.code end
    local cg = groups(codes)
    local vq, gk = {}, {}
    for i = 1, #v_test do vq[i] = cg[i] end
    for i = 1, #g3d do gk[i] = cg[#v_test + i] end
    o.v2i = oe.eval.retrieval(ve, g3, { a = vq, b = gk }).a2b
    o.v2i_n = #g3d
    local names, ncode = {}, {}
    for _, c in ipairs(S.emoji.test) do names[#names + 1] = c.caption; ncode[#ncode + 1] = c.code end
    local all2 = {}
    for _, it in ipairs(v_test) do all2[#all2 + 1] = it.code end
    for _, c in ipairs(ncode) do all2[#all2 + 1] = c end
    local g2 = groups(all2)
    local vq2, nk = {}, {}
    for i = 1, #v_test do vq2[i] = g2[i] end
    for i = 1, #ncode do nk[i] = g2[#v_test + i] end
    o.v2t = oe.eval.retrieval(ve, embed_texts(m, names), { a = vq2, b = nk }).a2b
    o.v2t_n = #names
    return o
  end
  local t_train0 = core.now()
  local model = build()
  local logs = { step1 = RUN .. "/step1/log.jsonl", audio = RUN .. "/step2_audio/log.jsonl", video = RUN .. "/step2_video/log.jsonl" }
  oe.train.align(model, { a = { name = "image", set = F.img1 }, b = { name = "text", set = F.cap1 }, pairs = pairs1,
    epochs = EPOCHS[1], batch_size = 64, checkpoint_dir = RUN .. "/step1", log_path = logs.step1, name = "step 1 image-text", seed = 1 })
  add_step2(model)
  oe.train.extend(model, { a = { name = "audio", set = F.aud }, b = { name = "text", set = F.aud_text }, pairs = pairs_a,
    epochs = EPOCHS[2], batch_size = 128, group_by_length = true, checkpoint_dir = RUN .. "/step2_audio", log_path = logs.audio, name = "step 2 audio-text", seed = 2 })
  oe.train.extend(model, { a = { name = "video", set = F.vid }, b = { name = "text", set = F.vid_text }, pairs = pairs_v,
    epochs = EPOCHS[3], batch_size = 32, checkpoint_dir = RUN .. "/step2_video", log_path = logs.video, name = "step 2 video-text", seed = 3 })
  local t_train = core.now() - t_train0
  local untrained = add_step2(build())

  local t_eval0 = core.now()
  local E, U = evaluate(model), evaluate(untrained)

  -- the linear probe on the frozen speech embedding (mean over windows), trained on the
  -- synthetic voices' vocabulary words, tested on the real Asterisk words
  local function mean_pooled(set, n)
    local out = {}
    for i0 = 1, n, 128 do
      local ids = {}
      for i = i0, math.min(n, i0 + 127) do ids[#ids + 1] = i end
      local x, l = set:batch(ids)
      local xt = x:totable()
      for b = 1, #ids do
        local v = {}
        for d = 1, enc.audio.dim do
          local s = 0
          for t = 1, l[b] do s = s + xt[b][t][d] end
          v[d] = s / math.max(1, l[b])
        end
        out[#out + 1] = v
      end
    end
    return out
  end
  -- probe(train_x, train_y, C, test_x, test_y) -> hits, n: multinomial logistic regression on
  -- features standardised by the training rows, 120 steps of full-batch gradient descent on the
  -- mean cross-entropy + (1e-3 / 2) |W|^2, learning rate 1; X (N, D), W (C, D), b (C)
  local function probe(train_x, train_y, C, test_x, test_y)
    local D = #train_x[1]
    local mu, sd = {}, {}
    for d = 1, D do
      local s, s2 = 0, 0
      for _, v in ipairs(train_x) do s = s + v[d]; s2 = s2 + v[d] * v[d] end
      mu[d] = s / #train_x
      sd[d] = math.sqrt(math.max(1e-8, s2 / #train_x - mu[d] * mu[d]))
    end
    local function z(rows)
      local out = {}
      for i, v in ipairs(rows) do
        local o = {}
        for d = 1, D do o[d] = (v[d] - mu[d]) / sd[d] end
        out[i] = o
      end
      return oe.tensor(out)
    end
    local X, Xt = z(train_x), z(test_x)
    local onehot = {}
    for i, y in ipairs(train_y) do
      local row = {}
      for c = 1, C do row[c] = (c - 1 == y) and 1 or 0 end
      onehot[i] = row
    end
    local Y, N = oe.tensor(onehot), #train_x
    local W, bias = oe.zeros({ C, D }), oe.zeros({ 1, C })
    local lr, l2 = 1.0, 1e-3
    for _ = 1, 120 do
      local G = (oe.matmul(X, W:t()) + bias):softmax(2):sub(Y) / N          -- (N, C)
      W = W - (oe.matmul(G:t(), X) + W * l2) * lr
      bias = bias - G:sum(1, true) * lr
    end
    local pred = (oe.matmul(Xt, W:t()) + bias):argmax(2):totable()
    local hit = 0
    for i, y in ipairs(test_y) do if pred[i] == y then hit = hit + 1 end end
    return hit, #test_y
  end
  local vocab_idx = {}
  for i, it in ipairs(spoken_train) do if it.source == "vocabulary" then vocab_idx[#vocab_idx + 1] = i end end
  local vx_all = mean_pooled(F.aud, #spoken_train)
  local ax_all = mean_pooled(F.ast, #ast)
  local probes = {}
  local words = { digits = data.DIGIT_CLASSES, phonetic = rich.PHONETIC, letters = {} }
  for c = 97, 122 do words.letters[#words.letters + 1] = string.char(c) end
  for _, g in ipairs({ "digits", "phonetic", "letters" }) do
    local li = {}
    for i, w in ipairs(words[g]) do li[w] = i - 1 end
    local tx, ty, sx, sy = {}, {}, {}, {}
    for _, i in ipairs(vocab_idx) do
      local y = li[spoken_train[i].text]
      if y then tx[#tx + 1] = vx_all[i]; ty[#ty + 1] = y end
    end
    for i, it in ipairs(ast) do if it.group == g then sx[#sx + 1] = ax_all[i]; sy[#sy + 1] = it.label end end
    if #tx > 0 then probes[g] = { probe(tx, ty, #words[g], sx, sy) } end
  end
  local t_eval = core.now() - t_eval0

  -- ---------------------------------------------------------------- report
  -- the weight-free pipeline's figures on the same tasks, from its last full run (--builtin)
  local builtin_path = (os.getenv("OE_BUILTIN_RUN_DIR") or "runs/demo_builtin") .. "/results.jsonl"
  local B = oe.report.read_jsonl(builtin_path)[1]
  if B and B.quick == 1 then B = nil end
  local rows = { { "task", "metric", "trained", "untrained UP", "weight-free pipeline", "chance" } }
  local function add(task, metric, a, b, chance, builtin_key)
    local w = builtin_key and (B and B[builtin_key] and string.format("%.3f", B[builtin_key]) or "(not run)") or ""
    rows[#rows + 1] = { task, metric, string.format("%.3f", a), string.format("%.3f", b), w, chance and string.format("%.3f", chance) or "" }
  end
  add(string.format("Fashion-MNIST test (%d), classification by text prompts", #ftest), "top-1", E.fashion, U.fashion, 0.1, "fashion_top1")
  add(string.format("digits test (%d), by prompts", #dtest), "top-1", E.digits, U.digits, 0.1)
  add("held-out emoji (both styles), category by prompts", "top-1", E.emoji_cat, U.emoji_cat, E.emoji_cat_chance)
  for _, k in ipairs({ "R1", "R5", "R10" }) do
    add(string.format("open vocabulary: %d held-out drawings and emoji -> their captions (%d)", E.ov_n_img, E.ov_n_txt), k, E.ov.a2b[k], U.ov.a2b[k])
  end
  for _, k in ipairs({ "R1", "R5", "R10" }) do add("open vocabulary: caption -> held-out images", k, E.ov.b2a[k], U.ov.b2a[k]) end
  add("held-out emoji, Noto -> the same emoji in Twemoji", "R1", E.style.R1, U.style.R1)
  add(string.format("audio -> text, held-out voices: spoken held-out names among %d names", E.a2t_n), "R1", E.a2t.R1, U.a2t.R1)
  add("", "R5", E.a2t.R5, U.a2t.R5)
  add("audio -> text, held-out voices: class of the spoken class caption", "top-1", E.class_speech, U.class_speech, 0.1, "class_speech")
  add(string.format("real Asterisk speech (%d) -> all transcripts", E.ast_n), "R1", E.ast_all.R1, U.ast_all.R1)
  add("", "R5", E.ast_all.R5, U.ast_all.R5)
  add("real Asterisk digits -> digit prompts", "top-1", E.ast_digit_prompts, U.ast_digit_prompts, 0.1, "asterisk_digit_prompts")
  add("real Asterisk digits -> the ten words", "top-1", E.ast_digit_words, U.ast_digit_words, 0.1)
  add("real Asterisk phonetic alphabet -> alpha..zulu", "top-1", E.ast_phonetic, U.ast_phonetic, 1 / 26)
  add("real Asterisk letters -> a..z", "top-1", E.ast_letters, U.ast_letters, 1 / 26)
  for _, k in ipairs({ "R1", "R5", "R10" }) do add("transitive audio -> image: spoken held-out names -> held-out drawings and emoji", k, E.a2i[k], U.a2i[k]) end
  for _, k in ipairs({ "R1", "R5" }) do add(string.format("transitive video -> image: animated -> 3D renders (%d)", E.v2i_n), k, E.v2i[k], U.v2i[k]) end
  for _, k in ipairs({ "R1", "R5" }) do add(string.format("video -> text: held-out animations -> held-out emoji names (%d)", E.v2t_n), k, E.v2t[k], U.v2t[k]) end
  -- figures: loss per stage, the shared space by modality, retrieval rows with their queries
  local R = oe.report
  os.execute("mkdir -p '" .. RUN .. "/figures'")
  local series = {}
  for i, st in ipairs({ { "step 1 image-text", logs.step1 }, { "step 2 audio-text", logs.audio }, { "step 2 video-text", logs.video } }) do
    local recs = R.read_jsonl(st[2])
    local x, ytr, yva = {}, {}, {}
    for j, r in ipairs(recs) do x[j], ytr[j], yva[j] = r.epoch, r.train_loss, r.val_loss end
    series[#series + 1] = { name = st[1] .. " train", x = x, y = ytr, color = R.palette[i] }
    series[#series + 1] = { name = st[1] .. " val", x = x, y = yva, color = R.palette[i], dash = true }
  end
  R.save_text(RUN .. "/figures/loss.svg", R.line_chart(series, { title = "InfoNCE loss per stage", xlabel = "epoch", width = 760 }))
  local pts, meta = {}, {}
  local function put(emb, n, group)
    for i = 1, math.min(n, core.shape(emb)[1]) do pts[#pts + 1] = core.narrow(emb, 1, i, 1); meta[#meta + 1] = group end
  end
  put(E.ov_emb, 300, 1); put(E.txt_emb, 300, 2); put(E.aud_emb, 300, 3); put(E.vid_emb, 300, 4)
  local xy = R.pca(core.cat(pts, 1), 2):totable()
  local points = {}
  for i, p in ipairs(xy) do points[i] = { p[1], p[2], class = meta[i] - 1, group = meta[i] } end
  local modalities = { "image", "text", "audio (spoken name)", "video" }
  R.save_text(RUN .. "/figures/space.svg", R.scatter(points, { title = "shared space (PCA of held-out embeddings), by modality",
    classes = modalities, groups = modalities, width = 760 }))
  local grid_md = {}
  local queries = {}
  for k = 1, 4 do
    local c = E.uniq_caps[(k * 37) % #E.uniq_caps + 1]
    local gi = (k * 37) % #E.uniq_caps
    queries[#queries + 1] = { text = string.format("text query: \"%s\"", c), emb = core.narrow(E.txt_emb, 1, gi + 1, 1),
      good = function(j) return E.cap_gid[j] == gi end }
  end
  -- spoken queries: class captions in held-out voices -> held-out Fashion-MNIST or digits images,
  -- real Asterisk digits -> held-out digit images (never trained together), a held-out name
  for _, src in ipairs({ "fashion", "digits" }) do
    local i = 1
    for j, c in ipairs(class_speech_test) do if c.source == src then i = j; if j > 60 then break end end end
    local it = class_speech_test[i]
    local fashion = it.source == "fashion"
    queries[#queries + 1] = { text = string.format("spoken query: \"%s\" (held-out voice %s) -> held-out %s images", it.text,
      it.voice, fashion and "Fashion-MNIST" or "digits"), emb = core.narrow(E.cs_emb, 1, i, 1),
      gallery = fashion and E.ftest_emb or E.dtest_emb, items = fashion and ftest or dtest,
      good = function(j) return (fashion and ftest or dtest)[j].label == it.label end }
  end
  for _, d in ipairs({ 7, 3 }) do
    for i, it in ipairs(ast) do
      if it.group == "digits" and it.label == d then
        queries[#queries + 1] = { text = string.format("real Asterisk recording \"%s\" (8 kHz telephone prompt) -> held-out digit images", it.text),
          emb = core.narrow(E.ast_emb, 1, i, 1), gallery = E.dtest_emb, items = dtest,
          good = function(j) return dtest[j].label == d end }
      end
    end
  end
  do
    local i = 54 % #s_test + 1
    local it = s_test[i]
    local ref = (it.source == "drawing" and "oc:" or "em:") .. it.ref
    queries[#queries + 1] = { text = string.format("spoken query: \"%s\" (held-out voice %s; names are not trained)", it.text, it.voice),
      emb = core.narrow(E.aud_emb, 1, i, 1), good = function(j) return ov_img[j].ref == ref end }
  end
  for qi, qy in ipairs(queries) do
    local items = qy.items or ov_img
    local _, ids = oe.eval.topk_search(qy.emb, qy.gallery or E.ov_emb, 6)
    local row, marks = {}, {}
    for j, id in ipairs(ids:totable()[1]) do
      row[j] = assert(img_input(items[id + 1]))
      marks[j] = qy.good(id + 1) and { 0, 170, 0 } or { 210, 0, 0 }
    end
    local f = string.format("figures/query_%d.png", qi)
    assert(oe.image.save(R.grid({ row }, { cell = 96, marks = { marks } }), RUN .. "/" .. f))
    grid_md[#grid_md + 1] = string.format("%d. %s\n\n   ![](%s)\n", qi, qy.text, f)
  end
  local md = { "# OneEncoder demo on pretrained encoders: results" .. (QUICK and " (--quick: small subsets, not the real table)" or ""), "",
    string.format("MobileNetV2 (nsfwjs, pooled 1280-d), GloVe 100-d, speech embedding 96-d; UP d = %d, %d heads, ff = %d. Step 1: %d image-caption pairs; step 2: %d spoken items (and %d augmented copies of the vocabulary words and class captions: telephone band after a 0.25 s silence, 0.9x and 1.1x speed; batches of 128 of similar lengths), %d animations.",
      CFG.d, CFG.heads, CFG.ff, #img1, #spoken_train, #aud_items - #spoken_train, #videos_train), "", oe.eval.format_table(rows), "",
    "Linear probe on the frozen speech embedding (mean over windows, logistic regression trained on the synthetic voices saying the words, tested on the real Asterisk words):" }
  for _, g in ipairs({ "digits", "phonetic", "letters" }) do
    if probes[g] then md[#md + 1] = string.format("- %s: %d / %d", g, probes[g][1], probes[g][2]) end
  end
  local counts = S.counts
  md[#md + 1] = string.format("\nData: drawings %d kept (%d dropped by category, %d without a caption, %d corrupt, %d failed to render); emoji %d concepts (%d corrupt animations); held out: %d drawings, %d emoji images, %d spoken names, %d animations.",
    #S.drawings.train + #S.drawings.test, counts.drawings.dropped_category, counts.drawings.dropped_caption, counts.drawings.corrupt,
    counts.drawings.render_failed, counts.emoji.kept, counts.emoji.corrupt_anim, #S.drawings.test, #S.emoji_images.test, #S.spoken.test, #S.videos.test)
  md[#md + 1] = "\nFigures: `figures/loss.svg` (loss per stage), `figures/space.svg` (PCA of held-out embeddings by modality). Retrieval (top 6 held-out images; green border = the query's own drawing or emoji, or its class; red = another):\n"
  for _, l in ipairs(grid_md) do md[#md + 1] = l end
  local total = core.now() - T0
  md[#md + 1] = string.format("\nTimings: data %.1f s, features %.1f s, training %.1f s, evaluation %.1f s, total %.1f s.", t_data, t_features, t_train, t_eval, total)
  oe.report.save_text(RUN .. "/report.md", table.concat(md, "\n") .. "\n")
  print("")
  print(oe.eval.format_table(rows))
  for _, g in ipairs({ "digits", "phonetic", "letters" }) do if probes[g] then say("probe %s: %d / %d", g, probes[g][1], probes[g][2]) end end
  say("\nreport: %s/report.md; total %.1f s (data %.1f, features %.1f, training %.1f, evaluation %.1f)", RUN, total, t_data, t_features, t_train, t_eval)
end

return P
