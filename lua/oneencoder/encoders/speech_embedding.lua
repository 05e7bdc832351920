-- encoders/speech_embedding.lua: Google's speech_embedding network with its mel front end, as
-- openWakeWord runs them (its ONNX conversions, fetched by scripts/fetch-openwakeword.sh).
--   local enc = oe.encoders.create("speech_embedding", { dir = "data/openwakeword" })
--   local feats, lengths = enc:encode({ wav1, wav2 })   -- (2, L, 96): one 96-d vector per 80 ms
--   local f, l, kept, bad = enc:encode_files({ "a.wav", "b.flac" })
--
-- Options:
--   dir            folder holding melspectrogram.onnx and embedding_model.onnx
--                  (default "data/openwakeword", where scripts/fetch-openwakeword.sh puts them)
--   mel, embedding paths of the two models (default: in dir)
--   sample_scale   waveform multiplier to int16 range (default 32768: the [-1, 1] floats that
--                  oneencoder.audio.load gives become the file's int16 values; 1 for waveforms
--                  already in int16 range)
--   window_batch   windows per call of the embedding model (default 64: bounds the activations
--                  of long clips, about 15 MB)
--   max_seconds    the loader trims longer files (default: no trimming)
--
-- The pipeline is openWakeWord's (AudioFeatures): 16 kHz mono samples in int16 range (not
-- [-1, 1]: the package's own wake-word heads fire only on int16-range input); the mel model
-- on (1, samples) -> (1, 1, F, 32), F = (samples - 512) // 160 + 1 frames of 10 ms; x / 10 + 2;
-- windows of 76 frames every 8 frames; the embedding model on (windows, 76, 32, 1) -> 96 values
-- per window, one vector per 80 ms (token t covers samples 1280 t .. 1280 t + 12,511). A clip
-- shorter than one window (12,512 samples, 0.78 s) is centred in silence (zeros) first.
-- Features are computed per clip, not streamed: the mel model clips its output at 80 dB below
-- the loudest frame of each call, and each clip is one call, so the floor follows the clip's
-- loudest frame (openWakeWord's streaming mode calls it on 80 ms chunks and gets a floor per
-- chunk). Clips of a batch never affect each other; lengths are the clips' window counts and
-- rows past a clip's length are 0.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "speech_embedding"
local SE = C.class(NAME)

local RATE, WINDOW_SAMPLES, WINDOW_FRAMES, STEP, MELS, DIM = 16000, 12512, 76, 8, 32, 96

local DEFAULTS = { dir = "data/openwakeword", mel = C.NONE, embedding = C.NONE, sample_scale = 32768, window_batch = 64,
  max_seconds = C.NONE }

local function identity(path)
  local st = core.fs_stat(path)
  return st and string.format("%s:%d:%d.%09d", path, st.size, st.mtime, st.mtime_ns) or path
end

local function open(path, what)
  if type(path) ~= "string" then
    error(string.format("encoders.create(\"%s\"): option '%s' must be a path, got %s", NAME, what, type(path)), 4)
  end
  local m, err = require("oneencoder.onnx").load(path)
  if not m then return nil, err end
  if #m.inputs ~= 1 or #m.outputs < 1 then
    return nil, string.format("%s: expected one input and an output, the model has %d inputs", path, #m.inputs)
  end
  return m
end

-- SE.new(opts) -> encoder | nil, message (a missing or bad model file)
function SE.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if type(o.dir) ~= "string" then error("encoders.create(\"speech_embedding\"): option 'dir' must be a path", 3) end
  local mel_path = o.mel or (o.dir .. "/melspectrogram.onnx")
  local emb_path = o.embedding or (o.dir .. "/embedding_model.onnx")
  local scale = C.num(NAME, "sample_scale", o.sample_scale)
  if not (scale > 0) then error("encoders.create(\"speech_embedding\"): option 'sample_scale' must be positive", 3) end
  local wb = C.int(NAME, "window_batch", o.window_batch, 1, 65536)
  local max_seconds = o.max_seconds ~= nil and C.num(NAME, "max_seconds", o.max_seconds) or nil
  local mel, err = open(mel_path, "mel")
  if not mel then return nil, err .. " (run: sh scripts/fetch-openwakeword.sh)" end
  local emb
  emb, err = open(emb_path, "embedding")
  if not emb then return nil, err .. " (run: sh scripts/fetch-openwakeword.sh)" end
  local es = emb.inputs[1].shape
  if es and (#es ~= 4 or (type(es[2]) == "number" and es[2] ~= WINDOW_FRAMES) or (type(es[3]) == "number" and es[3] ~= MELS)) then
    return nil, string.format("%s: input shape is not (windows, %d, %d, 1)", emb_path, WINDOW_FRAMES, MELS)
  end

  local self = setmetatable({ name = NAME, modality = "audio" }, SE)
  self.mel, self.embedding = mel, emb
  self.mel_in, self.mel_out = mel.inputs[1].name, mel.outputs[1].name
  self.emb_in, self.emb_out = emb.inputs[1].name, emb.outputs[1].name
  self.dim, self.rate = DIM, RATE
  self.scale, self.window_batch, self.max_seconds = scale, wb, max_seconds
  self.ten, self.two = core.from_table({ 10 }), core.from_table({ 2 })
  self.settings = { mel = mel_path, embedding = emb_path, sample_scale = scale, window_batch = wb, max_seconds = max_seconds }
  self.id = string.format("speech_embedding:%s:%s:scale=%s:v1", identity(mel_path), identity(emb_path), C.fmt(scale))
  self.preprocess = {
    modality = "audio", rate = RATE,
    input = "a list of mono float32 (T) waveforms at 16 kHz in [-1, 1] (oneencoder.audio.load), or a float32 (B, T) tensor",
    sample_scale = scale, window_samples = WINDOW_SAMPLES, hop_samples = STEP * 160, token_ms = 80, short_clips = "centred in zeros to 12,512 samples", features = "per clip (one mel call per clip)",
    loader = "oneencoder.audio.load (mono, resampled to 16 kHz)",
  }
  return self
end

function SE:check(item)
  if not core.is_tensor(item) then return nil, "expected a waveform tensor, got " .. type(item) end
  if core.dtype(item) ~= "float32" then return nil, "waveforms must be float32, got " .. core.dtype(item) end
  local s = core.shape(item)
  if #s ~= 1 then return nil, "waveforms must be mono (T), got " .. C.shape_str(item) end
  if s[1] < 1 then return nil, "empty waveform (0 samples)" end
  return true
end

-- frames(wave float32 (T)) -> log-mel features (F, 32) after x / 10 + 2, as openWakeWord
function SE:frames(wave)
  local n = core.shape(wave)[1]
  local x = core.unary("muls", wave, self.scale)
  if n < WINDOW_SAMPLES then
    local padded = core.zeros({ WINDOW_SAMPLES })
    core.set_slice(padded, 1, (WINDOW_SAMPLES - n) // 2 + 1, x)
    x = padded
  end
  local mel = self.mel:run({ [self.mel_in] = core.reshape(x, { 1, -1 }) })[self.mel_out]
  local s = core.shape(mel)
  if #s ~= 4 or s[4] ~= MELS then
    error(string.format("%s:encode: the mel model gave %s, expected (1, 1, frames, %d)", NAME, C.shape_str(mel), MELS), 0)
  end
  local f = core.reshape(mel, { s[3], MELS })
  return core.binary("add", core.binary("div", f, self.ten), self.two)
end

-- windows(features (F, 32)) -> (W, 76, 32, 1), W = (F - 76) // 8 + 1
local function windows(feat)
  local F = core.shape(feat)[1]
  local W = (F - WINDOW_FRAMES) // STEP + 1
  local ids = {}
  for w = 0, W - 1 do
    for j = 0, WINDOW_FRAMES - 1 do ids[#ids + 1] = w * STEP + j end
  end
  return core.reshape(core.index_select(feat, core.from_table(ids, "int64")), { W, WINDOW_FRAMES, MELS, 1 }), W
end

-- embed(windows (W, 76, 32, 1)) -> (W, 96), window_batch windows per call
function SE:embed(win)
  local W = core.shape(win)[1]
  local parts = {}
  for at = 1, W, self.window_batch do
    local k = math.min(self.window_batch, W - at + 1)
    local y = self.embedding:run({ [self.emb_in] = core.narrow(win, 1, at, k) })[self.emb_out]
    if core.numel(y) ~= k * DIM then
      error(string.format("%s:encode: the embedding model gave %s for %d windows", NAME, C.shape_str(y), k), 0)
    end
    parts[#parts + 1] = core.reshape(y, { k, DIM })
  end
  return #parts == 1 and parts[1] or core.cat(parts, 1)
end

-- encode(batch) -> features (B, L, 96) float32, lengths (windows per clip)
function SE:encode(batch)
  local list = {}
  if core.is_tensor(batch) then
    local s = core.shape(batch)
    if core.dtype(batch) ~= "float32" or #s ~= 2 then
      C.fail(self, "expected a list of (T) waveforms or a float32 (B, T) tensor, got a %s tensor %s", core.dtype(batch), C.shape_str(batch))
    end
    if s[1] < 1 or s[2] < 1 then C.fail(self, "empty batch %s", C.shape_str(batch)) end
    for b = 1, s[1] do list[b] = core.select(batch, 1, b) end
  else
    if type(batch) ~= "table" then C.fail(self, "expected a list of waveforms, got %s", type(batch)) end
    if #batch == 0 then C.fail(self, "empty batch (no waveforms)") end
    for i = 1, #batch do
      local ok, msg = self:check(batch[i])
      if not ok then C.fail(self, "item %d: %s", i, msg) end
      list[i] = batch[i]
    end
  end
  -- every clip's windows, embedded together window_batch at a time
  local wins, lengths = {}, {}
  for i, w in ipairs(list) do wins[i], lengths[i] = windows(self:frames(w)) end
  local emb = self:embed(#wins == 1 and wins[1] or core.cat(wins, 1))
  local L = 0
  for _, n in ipairs(lengths) do L = math.max(L, n) end
  local out = core.zeros({ #list, L, DIM })
  local at = 1
  for i, n in ipairs(lengths) do
    local row = core.reshape(core.narrow(emb, 1, at, n), { 1, n, DIM })
    if n < L then
      local padded = core.zeros({ 1, L, DIM })
      core.set_slice(padded, 2, 1, row)
      row = padded
    end
    core.set_slice(out, 1, i, row)
    at = at + n
  end
  return out, lengths
end

-- load(path) -> float32 (T) at 16 kHz | nil, message
function SE:load(path)
  return require("oneencoder.audio").load(path, { rate = RATE, mono = true, max_seconds = self.max_seconds })
end

return SE
