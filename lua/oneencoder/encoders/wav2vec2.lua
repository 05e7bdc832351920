-- encoders/wav2vec2.lua: a pretrained Wav2Vec2 (Hugging Face Wav2Vec2Model layout) from a
-- model folder or a safetensors file (csrc/frozen/wav2vec2.c).
--   local enc = assert(oe.encoders.create("wav2vec2", { path = "wav2vec2-base-960h" }))
--   local feats, lengths = enc:encode({ wav1, wav2 })       -- (B, T', 768), frames of each clip
--   local f, l, kept, bad = enc:encode_files({ "a.flac", "b.wav" }, { on_error = "skip" })
--
-- Options:
--   path              a Hugging Face folder: model.safetensors, config.json, preprocessor_config.json
--                     (the last two optional); or
--   weights           a .safetensors path or a weights object (core.frozen_open), e.g. a released
--                     OneEncoder step-2 file with prefix "audio_encoder.pretrained_encoder."
--   prefix            key prefix; default "" or, when nothing is found there, "wav2vec2."
--                     (Wav2Vec2ForCTC files: lm_head.* is then outside the prefix and ignored)
--   config            config.json (default: the one in the folder / beside the weights, if any;
--                     false: none, the shapes decide, see csrc/frozen/wav2vec2.h)
--   preprocessor      preprocessor_config.json (default: the one in the folder, if any; false: none)
--   heads, stable     attention heads; true/false for the pre-norm / post-norm encoder (default:
--                     config, else the rule of wav2vec2.h)
--   attention_mask    pass an attention mask (default: the preprocessor's return_attention_mask,
--                     false for wav2vec2-base-960h): with it each clip is normalised over its real
--                     samples and its padded frames are never attended to; without it the padded
--                     row is normalised as a whole and the model sees the zeros (the original)
--   normalize         zero mean, unit variance per clip, eps 1e-7 (default: do_normalize, true)
--   padding           "none" (default: each clip as if alone, so a clip's features never depend
--                     on the rest of its batch; whole clips spread over the threads) or "batch"
--                     (padded to the longest of the encode call: Wav2Vec2FeatureExtractor with
--                     padding=True on the whole batch, as the original OneEncoder calls it)
--   truncate_seconds  cut longer clips (the original's processor calls: 15 s in process_audio, its
--                     inference helper, 10 s in audio-image training (audio_image.py forward), 20 s in
--                     text-audio training (text-audio/*/text_audio.py forward)); default none
--   max_seconds       a longer clip (after truncation) is refused with a message (default 60:
--                     memory grows with the length, about 10 MB per second of audio and thread)
--   chunk             clips per forward call with padding "batch" (default 8): rows are
--                     independent, so this only bounds the scratch
-- Input: a list of mono float32 (T) waveforms at 16 kHz, or a float32 (B, N) tensor of
-- input_values already preprocessed (sent to the model as they are). Output: last_hidden_state
-- (B, T', D), zero rows past a clip's own frames with padding "none", and each clip's own
-- frame count (T' = 49 per second: 499 for 10 s). Clips shorter than the receptive field (400
-- samples, 25 ms) are refused; silent clips (zero variance) normalise to zeros, as in the extractor.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"
local ViT = require "oneencoder.encoders.vit"

local NAME = "wav2vec2"
local W2V = C.class(NAME)
local RATE = 16000

local DEFAULTS = {
  path = C.NONE, weights = C.NONE, prefix = C.NONE, config = C.NONE, preprocessor = C.NONE, heads = C.NONE,
  stable = C.NONE, attention_mask = C.NONE, normalize = C.NONE, padding = "none", truncate_seconds = C.NONE,
  max_seconds = 60, chunk = 8,
}

local function exists(path)
  local st = core.fs_stat(path)
  return st and st.is_file
end
local function dir_of(path) return path:match("^(.*)/[^/]*$") or "." end
local function err(msg) error("encoders.create(\"wav2vec2\"): " .. msg, 4) end

-- W2V.new(opts) -> encoder | nil, message (missing or bad files)
function W2V.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if (o.path == nil) == (o.weights == nil) then err("give exactly one of 'path' (a model folder) and 'weights'") end
  if o.path ~= nil and type(o.path) ~= "string" then err("option 'path' must be a folder path") end
  for _, k in ipairs { "prefix" } do
    if o[k] ~= nil and type(o[k]) ~= "string" then err("option '" .. k .. "' must be a string") end
  end
  for _, k in ipairs { "config", "preprocessor" } do
    if o[k] ~= nil and o[k] ~= false and type(o[k]) ~= "string" then err("option '" .. k .. "' must be a path or false") end
  end
  for _, k in ipairs { "stable", "attention_mask", "normalize" } do
    if o[k] ~= nil then C.bool(NAME, k, o[k]) end
  end
  if o.padding ~= "none" and o.padding ~= "batch" then err("option 'padding' must be \"none\" or \"batch\", got " .. tostring(o.padding)) end
  local heads = o.heads ~= nil and C.int(NAME, "heads", o.heads, 1, 4096) or nil
  local trunc = o.truncate_seconds ~= nil and C.num(NAME, "truncate_seconds", o.truncate_seconds) or nil
  if trunc and not (trunc * RATE >= 1) then err("option 'truncate_seconds' must be positive") end
  local maxs = C.num(NAME, "max_seconds", o.max_seconds)
  if not (maxs > 0 and maxs <= 4 * 3600) then err("option 'max_seconds' must be in (0, 14400]") end
  local chunk = C.int(NAME, "chunk", o.chunk, 1, 4096)

  local folder = o.path
  local weights = o.weights
  if folder then
    local st = core.fs_stat(folder)
    if not st then return nil, folder .. ": no such folder" end
    if not st.is_dir then return nil, folder .. ": not a folder (give 'weights' for a file)" end
    weights = folder .. "/model.safetensors"
    if not exists(weights) then
      local bin = exists(folder .. "/pytorch_model.bin")
      return nil, weights .. ": missing" .. (bin and " (pytorch_model.bin is not read: convert it to model.safetensors)" or "")
    end
  end
  local w, ident, wpath = ViT.open_weights(weights)
  if not w then return nil, ident end
  local base = folder or dir_of(wpath)
  local prefix = o.prefix
  if prefix == nil then
    prefix = ""
    if not core.frozen_has(w, "feature_extractor.conv_layers.0.conv.weight")
        and core.frozen_has(w, "wav2vec2.feature_extractor.conv_layers.0.conv.weight") then
      prefix = "wav2vec2."
    end
  end
  local config = o.config
  if config == nil then config = exists(base .. "/config.json") and base .. "/config.json" or false end
  local pre_path = o.preprocessor
  if pre_path == nil then pre_path = exists(base .. "/preprocessor_config.json") and base .. "/preprocessor_config.json" or false end
  local pre = {}
  if pre_path then
    local t, perr = core.w2v_json_scalars(pre_path)
    if not t then return nil, perr end
    pre = t
    if pre.sampling_rate ~= nil and pre.sampling_rate ~= RATE then
      return nil, string.format("%s: sampling_rate %s is not supported (16000)", pre_path, tostring(pre.sampling_rate))
    end
    if pre.feature_size ~= nil and pre.feature_size ~= 1 then
      return nil, string.format("%s: feature_size %s is not supported (1)", pre_path, tostring(pre.feature_size))
    end
    if pre.padding_value ~= nil and pre.padding_value ~= 0 then
      return nil, string.format("%s: padding_value %s is not supported (0)", pre_path, tostring(pre.padding_value))
    end
    for _, k in ipairs { "return_attention_mask", "do_normalize" } do
      if pre[k] ~= nil and type(pre[k]) ~= "boolean" then return nil, string.format("%s: \"%s\" must be true or false", pre_path, k) end
    end
  end
  local masked = o.attention_mask
  if masked == nil then masked = pre.return_attention_mask == true end
  local normalize = o.normalize
  if normalize == nil then normalize = pre.do_normalize ~= false end

  local model, lerr = core.w2v_load(w, { prefix = prefix, config = config or nil, heads = heads, stable = o.stable })
  if not model then return nil, lerr end
  local cfg = core.w2v_config(model)

  local self = setmetatable({ name = NAME, modality = "audio" }, W2V)
  self.weights, self.model, self.config = w, model, cfg
  self.dim, self.rate = cfg.dim, RATE
  self.masked, self.normalize, self.padding, self.chunk = masked, normalize, o.padding, chunk
  self.truncate_seconds, self.max_seconds = trunc, maxs
  self.max_samples = trunc and math.floor(trunc * RATE) or nil
  self.receptive = cfg.receptive
  self.settings = { weights = wpath, prefix = prefix, config = config or nil, preprocessor = pre_path or nil, heads = cfg.heads,
    stable = cfg.stable, attention_mask = masked, normalize = normalize, padding = o.padding, truncate_seconds = trunc,
    max_seconds = maxs }
  self.id = string.format("wav2vec2:%s:prefix=%s:heads%d:%s:%s:mask%s:norm%s:pad=%s:trunc=%s:v1", ident, prefix, cfg.heads,
    cfg.feat_extract_norm, cfg.stable and "pre" or "post", masked and 1 or 0, normalize and 1 or 0, o.padding,
    trunc and C.fmt(trunc) or "none")
  self.preprocess = {
    modality = "audio", rate = RATE,
    input = "a list of mono float32 (T) waveforms at 16 kHz, or float32 (B, N) input_values already preprocessed",
    normalize = normalize and "zero mean, unit variance per clip (eps 1e-7)" or "none",
    attention_mask = masked, padding = o.padding, truncate_seconds = trunc, max_seconds = maxs,
    min_samples = cfg.receptive,
    loader = "oneencoder.audio.load (mono, resampled to 16 kHz by libswresample)",
  }
  return self
end

-- item -> true | nil, reason
function W2V:check(item)
  if not core.is_tensor(item) then return nil, "expected a waveform tensor, got " .. type(item) end
  if core.dtype(item) ~= "float32" then return nil, "waveforms must be float32, got " .. core.dtype(item) end
  local s = core.shape(item)
  if #s ~= 1 then return nil, "waveforms must be mono (T), got " .. C.shape_str(item) end
  local n = s[1]
  if self.max_samples and n > self.max_samples then n = self.max_samples end
  if n < self.receptive then
    return nil, string.format("clip of %d samples is shorter than the %d samples (%.1f ms at 16 kHz) Wav2Vec2 needs for one frame",
      n, self.receptive, self.receptive / 16)
  end
  if n > self.max_seconds * RATE then
    return nil, string.format("clip of %.1f s is longer than max_seconds = %s (set truncate_seconds to cut it, or raise max_seconds)",
      n / RATE, C.fmt(self.max_seconds))
  end
  return true
end

-- forward(x float32 (B, N), lengths or nil) -> (B, T', D): the raw model, in chunks of rows
function W2V:forward(x, lengths)
  local s = core.shape(x)
  if s[1] <= self.chunk then
    local y, ferr = core.w2v_forward(self.model, x, lengths)
    if not y then error("wav2vec2:encode: " .. ferr, 0) end
    return y
  end
  local parts = {}
  for b0 = 1, s[1], self.chunk do
    local n = math.min(self.chunk, s[1] - b0 + 1)
    local l
    if lengths then l = table.move(lengths, b0, b0 + n - 1, 1, {}) end
    parts[#parts + 1] = self:forward(core.narrow(x, 1, b0, n), l)
  end
  return core.cat(parts, 1)
end

-- the padded, normalised input_values of clips and their real lengths (after truncation)
function W2V:prepare(list)
  return core.w2v_prepare(list, { max_samples = self.max_samples or 0, normalize = self.normalize, masked = self.masked })
end

-- encode(batch, opts) -> features (B, T', D) float32, frames per clip
-- opts.padding: "none" or "batch" for this call (default: the encoder's setting)
function W2V:encode(batch, opts)
  local padding = opts and opts.padding or self.padding
  if padding ~= "none" and padding ~= "batch" then C.fail(self, "padding must be \"none\" or \"batch\", got %s", tostring(padding)) end
  if core.is_tensor(batch) then
    local s = core.shape(batch)
    if core.dtype(batch) ~= "float32" or #s ~= 2 then
      C.fail(self, "expected a list of (T) waveforms or a float32 (B, N) tensor, got a %s tensor %s", core.dtype(batch), C.shape_str(batch))
    end
    if s[1] < 1 or s[2] < self.receptive then C.fail(self, "input_values %s: at least %d samples are needed", C.shape_str(batch), self.receptive) end
    local y = self:forward(batch)
    local T = core.shape(y)[2]
    local lengths = {}
    for b = 1, s[1] do lengths[b] = T end
    return y, lengths
  end
  if type(batch) ~= "table" then C.fail(self, "expected a list of waveforms, got %s", type(batch)) end
  if #batch == 0 then C.fail(self, "empty batch (no waveforms)") end
  for i = 1, #batch do
    local ok, msg = self:check(batch[i])
    if not ok then C.fail(self, "item %d: %s", i, msg) end
  end
  if padding == "batch" then
    local x, kept = self:prepare(batch)
    local y = self:forward(x, self.masked and kept or nil)
    local lengths = {}
    for b, n in ipairs(kept) do lengths[b] = core.w2v_frames(self.model, n) end
    return y, lengths
  end
  -- each clip alone: normalised over its own samples, whole clips spread over the threads
  local rows = {}
  for i, w in ipairs(batch) do
    local x = self:prepare({ w })
    rows[i] = core.reshape(x, { core.shape(x)[2] })
  end
  local outs, ferr = core.w2v_forward_each(self.model, rows)
  if not outs then error("wav2vec2:encode: " .. ferr, 0) end
  local lengths, Tmax = {}, 0
  for i, y in ipairs(outs) do
    lengths[i] = core.shape(y)[1]
    Tmax = math.max(Tmax, lengths[i])
  end
  for i, y in ipairs(outs) do
    local T = lengths[i]
    y = core.reshape(y, { 1, T, self.dim })
    if T < Tmax then y = core.cat({ y, core.zeros({ 1, Tmax - T, self.dim }) }, 2) end
    outs[i] = y
  end
  return #outs == 1 and outs[1] or core.cat(outs, 1), lengths
end

-- load(path) -> float32 (T) at 16 kHz mono | nil, message. With truncate_seconds the decoding
-- stops there; otherwise files longer than max_seconds are refused before they are decoded
-- whole (the reader's cap).
function W2V:load(path)
  local opts = { rate = RATE, mono = true }
  if self.truncate_seconds then opts.max_seconds = self.truncate_seconds else opts.cap_seconds = self.max_seconds end
  return require("oneencoder.audio").load(path, opts)
end

return W2V
