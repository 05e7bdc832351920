-- pretrained.lua: the released OneEncoder text-image checkpoint end to end, and raw inputs
-- (image files, strings) through any OneEncoder model with encoders attached.
--
--   local m = assert(oe.pretrained.load("OneEncoder-text-image/model.safetensors", {vocab = "vocab.txt"}))
--   local ie = m:embed_images({"a.jpg", "b.png"})         -- (B, d) L2-normalised, the original pipeline
--   local te = m:embed_texts({"a dog on a beach", "two cats"})
--   local te2 = m:embed_texts(captions, {padding_policy = "set"})   -- the original's training padding
--
-- load(path, opts) -> model, report | nil, message. The file holds, in the original code's layout,
--   image_encoder.pretrained_vit.*   timm ViT (vit_base_patch16_224)
--   text_encoder.pretrained_bert.*   Hugging Face BertModel (bert-base-uncased)
--   <m>_encoder.projection_head.*, modality_token_encoder.*, universal_projection_encoder.*, temperature
-- (a step-2 file holds these under text_image_encoder.). The model is built by
-- oe.checkpoint.import_original (its rules, its checks: pooling "original" unless opts.pooling),
-- the file is mapped once (core.frozen_open) and both encoders take their weights from that one
-- mapping (float32 tensors used in place: no second copy of the weights), and they are attached
-- with m:set_encoder. Every key of the file must be used: one that neither the model nor an
-- encoder takes is named with its shape; missing or mis-shaped keys are named with both shapes.
-- opts:
--   vocab           vocab.txt or tokenizer.json for embed_texts (checked at load: it must hold
--                   [PAD], [UNK], [CLS], [SEP] and fit the BERT's embedding table)
--   batch           items per encoder call in embed_images / embed_texts (default 32)
--   padding_policy  default policy of embed_texts (below; default "none")
--   vit, bert       extra options for oe.encoders.create("vit"/"bert", ...) (heads 12 and the
--                   `original` preprocessing by default; the released file has no config.json)
--   heads, fusion, pooling, dropout, temperature: options of oe.checkpoint.import_original
-- report: {checkpoint = import_original's report, encoders = {image = id, text = id}, weights = path,
--   unattached = {modality = {key prefixes}}: frozen encoders of a kind not run here (a step-2
--   modality other than audio and video): their weights are left in the file}
-- A step-2 file (text_image_encoder.* beside one new modality) loads too: image and text attached,
-- and a video file's video_encoder.pretrained_encoder.* (VideoMAEModel keys) as the "videomae"
-- encoder (videomae-base's config: 12 heads, eps 1e-12, 16 frames of 224; VideoMAEImageProcessor's
-- defaults; the original's random 16-frame window; opts.video: extra encoder options such as
-- sampling = "uniform" or seed), so m:embed_videos(paths) runs the original's encode_video.
-- An audio file's audio_encoder.pretrained_encoder.* (Wav2Vec2Model keys) becomes the "wav2vec2"
-- encoder (no config.json: the shapes, base's strides, width / 64 heads; the processor of
-- wav2vec2-base-960h: normalised, no attention mask; truncation at 15 s; opts.audio: extra encoder
-- options such as heads or truncate_seconds = 10), so m:embed_audio(paths) runs the original's
-- process_audio + encode_audio + mean. Audio takes padding_policy "none" (default: each clip alone)
-- or "batch" (the clips of each batch padded together and normalised over the padded row, the
-- padding reaching Wav2Vec2, the UP and the mean, as in the original's batches).
--
-- embed(model, name, inputs, opts) (m:embed_images / m:embed_texts) -> (N, d), kept, bad
--   images: paths (decoded as cv2.imread does: RGB, alpha dropped, EXIF orientation applied)
--           or uint8 (H, W, 3) tensors; the encoder's preset does the rest (original: resize
--           224x224 INTER_LINEAR, ImageNet mean/std)
--   texts:  strings; the encoder tokenises them (BERT: WordPiece, truncation 128)
--   opts.batch, opts.progress (a line on stderr), opts.on_error = "fail" (default: nil, message
--   naming the item on the first unreadable image or empty text) or "skip" (left out; kept lists
--   the 1-based positions embedded, bad = {index, input, reason} the others),
--   opts.padding_policy, for texts when the model's pooling is "original" (padding positions
--   then enter the UP's attention and the mean, as in the original code):
--     "none"  (default) each text as if alone: no padding reaches the UP, so a caption's
--             embedding does not depend on the others (texts are grouped by length)
--     "set"   every text padded to the longest of the whole list: the original's training and
--             evaluation (its DataGenerator tokenises all captions at once with padding=True)
--     "batch" padded to the longest of each batch of opts.batch texts (the tokenizer called on
--             a list, as the original's inference helpers do)
--   With the "masked" pooling (models trained here by default) the three give one result.
-- Wrong argument types raise; unreadable files and empty texts are data: nil, message.
local core = require "oneencoder.core"
local A = require "oneencoder.autograd"
local S = require "oneencoder.serialize"

local M = {}

M.PADDING_POLICIES = { none = true, set = true, batch = true }

local LOAD_OPTIONS = {
  vocab = "string", batch = "integer", padding_policy = "string", vit = "table", bert = "table", video = "table", audio = "table",
  heads = "integer", fusion = "string", pooling = "string", dropout = "number", temperature = "string",
}
local EMBED_OPTIONS = { batch = "integer", padding_policy = "string", on_error = "string", progress = "boolean" }

local function check_options(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(fn .. ": opts must be a table, got " .. type(opts), 3) end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = n end
      table.sort(names)
      error(string.format("%s: unknown option '%s' (known: %s)", fn, tostring(k), table.concat(names, ", ")), 3)
    end
    local ok = (want == "integer" and math.type(v) == "integer") or (want ~= "integer" and type(v) == want)
    if not ok then error(string.format("%s: option '%s' must be %s %s, got %s", fn, k, want == "integer" and "an" or "a", want, type(v)), 3) end
  end
  if opts.batch ~= nil and opts.batch < 1 then error(fn .. ": option 'batch' must be at least 1", 3) end
  if opts.padding_policy ~= nil and not M.PADDING_POLICIES[opts.padding_policy] then
    error(fn .. ": option 'padding_policy' must be \"none\", \"set\" or \"batch\", got \"" .. opts.padding_policy .. "\"", 3)
  end
  if opts.on_error ~= nil and opts.on_error ~= "fail" and opts.on_error ~= "skip" then
    error(fn .. ": option 'on_error' must be \"fail\" or \"skip\", got \"" .. opts.on_error .. "\"", 3)
  end
  return opts
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function dims(shape)
  local p = {}
  for i, v in ipairs(shape) do p[i] = tostring(v) end
  return "(" .. table.concat(p, ", ") .. (#p == 1 and ",)" or ")")
end

-- ---------------------------------------------------------------- images

-- load_image(path) -> uint8 (H, W, 3) | nil, message: the pixels cv2.imread(path) gives (the
-- original's loader), in RGB order: EXIF orientation applied, grey replicated, alpha dropped
-- rather than composited (PIL's convert("RGB") drops it too).
function M.load_image(path)
  local img, err = require("oneencoder.image").load(path, { keep_alpha = true })
  if not img then return nil, err end
  return core.narrow(img, 3, 1, 3)
end

-- ---------------------------------------------------------------- load

-- the encoder kind for a prefix of frozen-encoder keys (report.encoders): vit, bert or nil
local function kind_of(sub)
  if sub:match("%.pretrained_vit%.$") then return "vit" end
  if sub:match("%.pretrained_bert%.$") then return "bert" end
end

-- step-2 modalities whose frozen encoder runs here: modality -> {kind, options}; the encoder's keys
-- are <modality>_encoder.pretrained_encoder.* (opts[modality]: extra encoder options)
local STEP2_ENCODERS = {
  -- the released video file has no config.json / preprocessor_config.json: videomae-base's values
  -- (12 heads, eps 1e-12, 16 frames of 224) and VideoMAEImageProcessor's defaults
  video = { kind = "videomae", options = function(w, prefix) return { weights = w, prefix = prefix, config = false, preprocessor = false } end },
  -- the released audio file: wav2vec2-base-960h's Wav2Vec2Model without config.json (the shapes
  -- and base's strides; 12 heads for width 768; group norm, post-norm) and its processor
  -- (normalised, no attention mask), truncated at 15 s as the original's process_audio does
  audio = { kind = "wav2vec2", options = function(w, prefix)
    return { weights = w, prefix = prefix, config = false, preprocessor = false, attention_mask = false, normalize = true,
      truncate_seconds = 15 }
  end },
}

local function merged(base, extra)
  local o = {}
  for k, v in pairs(extra or {}) do o[k] = v end
  for k, v in pairs(base) do
    if o[k] ~= nil and (k == "weights" or k == "prefix") then
      error("pretrained.load: opts.vit / opts.bert cannot set '" .. k .. "' (taken from the checkpoint)", 4)
    end
    if o[k] == nil then o[k] = v end
  end
  return o
end

-- load(path, opts) -> model, report | nil, message
function M.load(path, opts)
  if type(path) ~= "string" then error("pretrained.load: path must be a string, got " .. type(path), 2) end
  opts = check_options("pretrained.load", opts, LOAD_OPTIONS)
  local info, meta = S.header(path)
  if not info then return nil, meta end
  local import_opts = {}
  for _, k in ipairs { "heads", "fusion", "pooling", "dropout", "temperature" } do import_opts[k] = opts[k] end
  local model, rep = require("oneencoder.checkpoint").import_original(path, import_opts)
  if not model then return nil, rep end
  if #rep.unknown > 0 then
    local names = {}
    for i, n in ipairs(rep.unknown) do
      if i > 20 then names[#names + 1] = string.format("and %d more", #rep.unknown - 20) break end
      names[#names + 1] = n .. " " .. dims(info[n].shape)
    end
    return nil, path .. ": unexpected keys (neither the OneEncoder model nor a frozen encoder takes them): " .. table.concat(names, ", ")
  end
  -- the frozen encoders: each step-1 modality's keys under one prefix of a known kind
  local plan, unattached = {}, {}
  local expected_kind = { image = "vit", text = "bert" }
  for _, name in ipairs(sorted_keys(rep.encoders)) do
    local subs, want = rep.encoders[name], expected_kind[name]
    if not want then
      local s2 = STEP2_ENCODERS[name]
      if s2 and #subs == 1 and subs[1] == name .. "_encoder.pretrained_encoder." then
        plan[name] = { kind = s2.kind, prefix = subs[1], step2 = s2 }
      else
        -- a step-2 modality without an encoder of its kind here; m:set_encoder attaches one
        unattached[name] = subs
      end
      goto next_modality
    end
    local odd = {}
    for _, sub in ipairs(subs) do
      if kind_of(sub) ~= want then odd[#odd + 1] = sub end
    end
    if #odd > 0 or #subs > 1 then
      local names = {}
      for _, k in ipairs(rep.encoder_keys) do
        for _, sub in ipairs(#odd > 0 and odd or subs) do
          if k:sub(1, #sub) == sub and #names < 20 then names[#names + 1] = k .. " " .. dims(info[k].shape) end
        end
      end
      local wanted = (subs[1]:match("^(.-" .. name .. "_encoder%.)") or "") .. (want == "vit" and "pretrained_vit.*" or "pretrained_bert.*")
      return nil, string.format("%s: unexpected keys (the frozen encoder of modality '%s' is %s): %s", path, name, wanted,
        table.concat(names, ", "))
    end
    plan[name] = { kind = kind_of(subs[1]), prefix = subs[1] }
    ::next_modality::
  end
  for _, name in ipairs { "image", "text" } do
    if model.modalities[name] and not plan[name] then
      return nil, string.format("%s: no frozen encoder weights for modality '%s' (%s_encoder.%s.* missing)", path, name, name,
        name == "image" and "pretrained_vit" or "pretrained_bert")
    end
  end
  local w, werr = core.frozen_open(path)
  if not w then return nil, werr end
  local tok
  if opts.vocab then
    local err
    tok, err = require("oneencoder.text").WordPiece(opts.vocab)
    if not tok then return nil, err end
  end
  local encoders = require "oneencoder.encoders"
  local ids = {}
  for _, name in ipairs(sorted_keys(plan)) do
    local p = plan[name]
    local eopts
    if p.step2 then
      eopts = merged(p.step2.options(w, p.prefix), opts[name])
    elseif p.kind == "vit" then
      eopts = merged({ weights = w, prefix = p.prefix, layout = "timm", preprocess = "original" }, opts.vit)
    else
      eopts = merged({ weights = w, prefix = p.prefix, config = false, vocab = opts.vocab }, opts.bert)
    end
    local enc, err = encoders.create(p.kind, eopts)
    if not enc then
      if err:sub(1, #path + 2) == path .. ": " then err = err:sub(#path + 3) end
      return nil, string.format("%s: %s (the %s encoder of modality '%s')", path, err, p.kind, name)
    end
    local din = model.modalities[name].input_dim
    if enc.dim ~= din then
      local key = p.prefix:gsub("pretrained_%a+%.$", "") .. (p.step2 and "alignment_layer" or "projection_head") .. ".linear_layer1.weight"
      return nil, string.format("%s: tensor '%s' has shape (%d, %d), expected (%d, %d): the %s under '%s' gives %d-d features",
        path, key, model.cfg.d, din, model.cfg.d, enc.dim, p.kind, p.prefix, enc.dim)
    end
    if p.kind == "bert" and tok and tok.vocab_size > enc.config.vocab then
      return nil, string.format("%s: the vocabulary has %d tokens, the BERT's word embeddings %s %d rows", opts.vocab,
        tok.vocab_size, p.prefix .. "embeddings.word_embeddings.weight", enc.config.vocab)
    end
    model:set_encoder(name, enc)
    ids[name] = enc.id
  end
  model.embed_options = { batch = opts.batch, padding_policy = opts.padding_policy }
  model:eval()
  return model, { checkpoint = rep, encoders = ids, unattached = unattached, weights = path }
end

-- ---------------------------------------------------------------- embed

local function progress_line(fn, done, n, t0, final)
  local dt = core.now() - t0
  local line = string.format("%s: %d/%d, %.1f items/s", fn, done, n, done / math.max(dt, 1e-9))
  if core.isatty(2) then io.stderr:write("\r", line, final and "\n" or "") elseif final then io.stderr:write(line, "\n") end
end

-- the embedding of features whose padding must not reach the UP: rows grouped by length
local function embed_unpadded(model, name, feats, lengths)
  local s = core.shape(feats)
  local groups, order = {}, {}
  for b = 1, s[1] do
    local n = lengths[b]
    if not groups[n] then groups[n] = {}; order[#order + 1] = n end
    table.insert(groups[n], b)
  end
  if #order == 1 and order[1] == s[2] then return model:embed(name, feats, lengths) end
  local rows = {}
  for _, n in ipairs(order) do
    local idx = {}
    for i, b in ipairs(groups[n]) do idx[i] = b - 1 end
    local x = core.index_select(feats, core.from_table(idx, "int64"))
    if n < s[2] then x = core.narrow(x, 2, 1, n) end
    local e = model:embed(name, x, nil)
    for i, b in ipairs(groups[n]) do rows[b] = core.narrow(e, 1, i, 1) end
  end
  return core.cat(rows, 1)
end

-- one text's problem (empty after the tokenizer's cleaning), or nil
local function empty_text(enc, s)
  if enc.tokenizer then
    if #enc:tokenizer():ids(s, 1) == 0 then return "empty text (no token after cleaning)" end
  elseif not s:find("%S") then
    return "empty text"
  end
end

-- embed(model, name, inputs, opts) -> (N, d), kept, bad | nil, message
function M.embed(model, name, inputs, opts)
  local fn = name == "image" and "embed_images" or name == "text" and "embed_texts" or name == "video" and "embed_videos"
      or name == "audio" and "embed_audio" or ("embed(" .. tostring(name) .. ")")
  opts = check_options(fn, opts, EMBED_OPTIONS)
  local defaults = model.embed_options or {}
  local enc = model:encoder(name)
  if not enc then error(string.format("%s: no encoder attached for '%s' (m:set_encoder(\"%s\", oe.encoders.create(...)))", fn, name, name), 3) end
  if type(inputs) ~= "table" or core.is_tensor(inputs) then error(fn .. ": expected a list of inputs, got " .. type(inputs), 3) end
  if #inputs == 0 then error(fn .. ": empty list", 3) end
  local batch = opts.batch or defaults.batch or 32
  local policy = opts.padding_policy or defaults.padding_policy or "none"
  local on_error = opts.on_error or "fail"
  local texts = enc.modality == "text"
  local tok = texts and enc.tokenizer and enc:tokenizer() or nil
  if texts and policy == "set" and not tok then
    error(fn .. ": padding_policy \"set\" needs a tokenizing text encoder (bert with a vocab)", 3)
  end
  local wav2vec2 = enc.name == "wav2vec2"   -- audio: the clips of a batch padded together or not
  if wav2vec2 and policy == "set" then error(fn .. ": padding_policy \"set\" is for texts (audio: \"none\" or \"batch\")", 3) end

  -- check and load the inputs (texts: all at once; files: batch by batch)
  local kept, bad = {}, {}
  local function reject(i, input, reason)
    if on_error == "fail" then
      return string.format("%s: item %d%s: %s", fn, i, type(input) == "string" and not texts and " (" .. input .. ")" or "", reason)
    end
    bad[#bad + 1] = { index = i, input = input, reason = reason }
  end
  local function load_item(i, x)
    if type(x) == "string" then
      if texts then return x end
      if enc.modality == "image" then return M.load_image(x) end
      return enc:load(x)
    end
    if texts then error(string.format("%s: item %d: expected a string, got %s", fn, i, type(x)), 4) end
    if not core.is_tensor(x) then error(string.format("%s: item %d: expected a path or a tensor, got %s", fn, i, type(x)), 4) end
    return x
  end
  local lengths_of = {}   -- texts: token count (specials included, truncated) per input
  local set_length = 0
  if texts then
    for i, s in ipairs(inputs) do
      load_item(i, s)
      local why = empty_text(enc, s)
      if why then
        local msg = reject(i, s, why)
        if msg then return nil, msg end
      else
        kept[#kept + 1] = i
        if tok then
          lengths_of[i] = math.min(#tok:ids(s, enc.max_length) + 2, enc.max_length)
          set_length = math.max(set_length, lengths_of[i])
        end
      end
    end
  else
    for i = 1, #inputs do kept[i] = i end
  end

  -- texts without padding: similar lengths in one batch (less BERT padding, fewer UP groups)
  local order = kept
  if texts and tok and policy == "none" then
    order = {}
    for j, k in ipairs(kept) do order[j] = k end
    table.sort(order, function(a, b)
      if lengths_of[a] ~= lengths_of[b] then return lengths_of[a] < lengths_of[b] end
      return a < b
    end)
  end

  local unpadded = policy == "none" and model.cfg.pooling == "original"
  local out_rows, pos_of, t0 = {}, {}, core.now()
  local err
  local was = model.training
  model:eval()
  local ok, perr = pcall(A.no_grad, function()
    local done, good = 0, {}
    local i = 1
    while i <= #order do
      local items, idx = {}, {}
      while #items < batch and i <= #order do
        local k = order[i]
        local item, why = load_item(k, inputs[k])
        if item == nil then
          err = reject(k, inputs[k], why or "the loader returned nothing")
          if err then return end
        else
          local okc, whyc = true, nil
          if not texts then okc, whyc = enc:check(item) end
          if not okc then
            err = reject(k, inputs[k], whyc)
            if err then return end
          else
            items[#items + 1] = item
            idx[#idx + 1] = k
          end
        end
        i = i + 1
      end
      if #items > 0 then
        local feats, lens
        if texts and policy == "set" then
          feats, lens = enc:encode(tok:encode(items, { max_length = set_length, padding = "max_length" }))
        elseif wav2vec2 then
          feats, lens = enc:encode(items, { padding = policy == "batch" and "batch" or "none" })
        else
          feats, lens = enc:encode(items)
        end
        local e
        if unpadded then e = embed_unpadded(model, name, feats, lens) else e = model:embed(name, feats, lens) end
        out_rows[#out_rows + 1] = e
        for j, k in ipairs(idx) do good[#good + 1] = k; pos_of[k] = #good end
        done = done + #items
        if opts.progress then progress_line(fn, done, #order, t0, false) end
      end
    end
    if opts.progress then progress_line(fn, done, #order, t0, true) end
    kept = {}
    for _, k in ipairs(good) do kept[#kept + 1] = k end
    table.sort(kept)
  end)
  model:train(was)
  if not ok then error(perr, 0) end
  if err then return nil, err end
  local d = model.cfg.d
  if #out_rows == 0 then return core.zeros({ 0, d }), kept, bad end
  local all = #out_rows == 1 and out_rows[1] or core.cat(out_rows, 1)
  -- back to input order
  local same = true
  local idx = {}
  for j, k in ipairs(kept) do
    idx[j] = pos_of[k] - 1
    if pos_of[k] ~= j then same = false end
  end
  if not same then all = core.index_select(all, core.from_table(idx, "int64")) end
  return all, kept, bad
end

M.extract = function(...) return require("oneencoder.extract").features(...) end

return M
