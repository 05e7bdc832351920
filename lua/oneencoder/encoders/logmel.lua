-- encoders/logmel.lua: audio -> log-mel frames as tokens.
--   local enc = oe.encoders.create("logmel", { n_mels = 40, stack = 4 })
--   local feats, lengths = enc:encode({ wav1, wav2 })   -- (2, L, 160), lengths from the true durations
--
-- Input (enc.preprocess): a list of mono float32 (T) waveforms at enc.rate (16 kHz by
-- default), or a float32 (B, T) tensor (every clip then has T samples). The loader reads
-- files with oneencoder.audio.load (mixed to mono, resampled to rate, trimmed to
-- max_seconds).
-- Frames: oneencoder.audio.log_mel of each clip on its own (no padding between clips, so
-- a clip's tokens do not depend on its batch) with `mel` (its options: n_fft 400, hop 160,
-- n_mels 80, ..., see oneencoder.audio; `n_mels` may also be given here): a clip of T
-- samples has frames = 1 + T // hop (centred frames).
-- normalize = "clip" (default): each clip standardised by the mean and standard
-- deviation of its own log-mel values over its true frames; false: raw log-mel.
-- stack = k: k consecutive frames per token, concatenated frame after frame
-- (token t = frames tk .. tk+k-1, M values each; D = k * n_mels); lengths are
-- ceil(frames / k); frames past a clip's end are 0, in a partial last token too, and so
-- are the rows past a clip's length.
-- proj = D: the stacked tokens times a fixed (k * n_mels, D) matrix of N(0, 1) / sqrt(fan-in)
-- draws from the seed. Padding rows stay 0.
-- Defaults: rate 16000, mel {} (n_mels 80), stack 1, normalize "clip", proj none, seed 0,
-- max_seconds 30 (loader).
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "logmel"
local Logmel = C.class(NAME)

local DEFAULTS = { rate = 16000, mel = C.NONE, n_mels = C.NONE, stack = 1, normalize = "clip", proj = C.NONE, seed = 0,
  max_seconds = 30 }

function Logmel.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  local audio = require "oneencoder.audio"
  local self = setmetatable({ name = NAME, modality = "audio" }, Logmel)
  self.rate = C.int(NAME, "rate", o.rate, 1000, 384000)
  if o.mel ~= nil and type(o.mel) ~= "table" then error("encoders.create(\"logmel\"): mel must be a table of log-mel options", 3) end
  local mel = {}
  for k, v in pairs(o.mel or {}) do mel[k] = v end
  if o.n_mels ~= nil then mel.n_mels = C.int(NAME, "n_mels", o.n_mels, 1, 4096) end
  self.mel = mel
  -- the mel options are checked (and n_mels found) on a short silent clip
  local ok, probe = pcall(audio.log_mel, core.zeros({ self.rate // 10 }), self.rate, mel)
  if not ok then error("encoders.create(\"logmel\"): bad mel options: " .. tostring(probe), 3) end
  self.n_mels = core.shape(probe)[1]
  self.stack = C.int(NAME, "stack", o.stack, 1, 4096)
  if o.normalize ~= "clip" and o.normalize ~= false and o.normalize ~= "none" then
    error("encoders.create(\"logmel\"): normalize must be \"clip\" or false, got " .. tostring(o.normalize), 3)
  end
  self.normalize = o.normalize == "clip"
  self.seed = C.seed(NAME, o.seed)
  self.max_seconds = o.max_seconds and C.num(NAME, "max_seconds", o.max_seconds) or false
  self.token_dim = self.stack * self.n_mels
  if o.proj ~= nil and o.proj ~= false then
    self.proj = C.int(NAME, "proj", o.proj, 1, 1 << 20)
    self.proj_weight = C.projection(self.seed, "logmel.proj", self.token_dim, self.proj)
  end
  self.dim = self.proj or self.token_dim
  self.settings = { rate = self.rate, mel = mel, n_mels = self.n_mels, stack = self.stack, normalize = o.normalize,
    proj = self.proj, seed = self.seed, max_seconds = self.max_seconds }
  self.id = string.format("logmel:rate%d:mel%s:k%d:norm%s:proj%s%s:max%s:v1", self.rate, C.fmt(mel), self.stack,
    self.normalize and "clip" or "0", self.proj and tostring(self.proj) or "none",
    self.proj and (":seed" .. C.fmt(self.seed)) or "", self.max_seconds and C.fmt(self.max_seconds) or "none")
  self.preprocess = {
    modality = "audio",
    input = "a list of mono float32 (T) waveforms at `rate`, or a float32 (B, T) tensor",
    rate = self.rate, mel = mel, n_mels = self.n_mels, stack = self.stack,
    normalize = self.normalize and "clip" or "none",
    loader = "oneencoder.audio.load (mono, resampled to rate, trimmed to max_seconds)",
    max_seconds = self.max_seconds or nil,
  }
  return self
end

function Logmel:check(item)
  if not core.is_tensor(item) then return nil, "expected a waveform tensor, got " .. type(item) end
  if core.dtype(item) ~= "float32" then return nil, "waveforms must be float32, got " .. core.dtype(item) end
  local s = core.shape(item)
  if #s ~= 1 then return nil, "waveforms must be mono (T), got " .. C.shape_str(item) end
  if s[1] < 1 then return nil, "empty waveform (0 samples)" end
  return true
end

-- log_mels(list or (B, T) tensor) -> {(n_mels, frames_b)}: each clip on its own (clips of
-- equal length share one log_mel_batch call), so a clip's tokens never depend on the
-- other clips of its batch
function Logmel:log_mels(list)
  local audio = require "oneencoder.audio"
  local mels = {}
  if core.is_tensor(list) then
    local m = audio.log_mel_batch(list, self.rate, self.mel)
    for b = 1, core.shape(m)[1] do mels[b] = core.select(m, 1, b) end
    return mels
  end
  local groups, order = {}, {}
  for i, w in ipairs(list) do
    local n = core.shape(w)[1]
    if not groups[n] then groups[n] = {}; order[#order + 1] = n end
    local g = groups[n]
    g[#g + 1] = i
  end
  for _, n in ipairs(order) do
    local g = groups[n]
    if #g == 1 then
      mels[g[1]] = audio.log_mel(list[g[1]], self.rate, self.mel)
    else
      local ws = {}
      for j, i in ipairs(g) do ws[j] = list[i] end
      local m = audio.log_mel_batch(ws, self.rate, self.mel)
      for j, i in ipairs(g) do mels[i] = core.select(m, 1, j) end
    end
  end
  return mels
end

function Logmel:encode(batch)
  local list
  if core.is_tensor(batch) then
    local s = core.shape(batch)
    if core.dtype(batch) ~= "float32" or #s ~= 2 then
      C.fail(self, "expected a list of (T) waveforms or a float32 (B, T) tensor, got a %s tensor %s", core.dtype(batch), C.shape_str(batch))
    end
    if s[1] < 1 then C.fail(self, "empty batch %s", C.shape_str(batch)) end
    if s[2] < 1 then C.fail(self, "empty waveforms %s", C.shape_str(batch)) end
    list = batch
  else
    if type(batch) ~= "table" then C.fail(self, "expected a list of waveforms, got %s", type(batch)) end
    if #batch == 0 then C.fail(self, "empty batch (no waveforms)") end
    for i = 1, #batch do
      local ok, msg = self:check(batch[i])
      if not ok then C.fail(self, "item %d: %s", i, msg) end
    end
    list = batch
  end
  local mels = self:log_mels(list)
  local tok, lengths = core.enc_stack_frames(mels, self.stack, self.normalize)
  if self.proj_weight then tok = C.project(tok, self.proj_weight) end
  return tok, lengths
end

-- load(path) -> float32 (T) | nil, message
function Logmel:load(path)
  return require("oneencoder.audio").load(path, { rate = self.rate, mono = true, max_seconds = self.max_seconds or nil })
end

return Logmel
