-- encoders/frames.lua: video -> one token per sampled frame, the mean of the frame's
-- `patches` tokens.
--   local enc = oe.encoders.create("frames", { frames = 8, size = 64, patch = 16, proj = 128 })
--   local feats, lengths = enc:encode({ clip1, clip2 })   -- clips (T, 3, H, W) -> (2, T, 128)
--
-- Input (enc.preprocess): a float32 (B, T, C, H, W) tensor, or a list of clips, each a
-- float32 (T, C, H, W) frame stack (oneencoder.video.sample's default output) or a uint8
-- (T, H, W, C) one (video.sample with format = "uint8"); clips may have different T
-- (lengths = T, shorter clips padded with 0 rows). Frames go through a `patches` encoder
-- with the same patch, size, channels, method, normalize, proj and seed (and cls = false,
-- pos = false): see encoders/patches.lua for the conversions. Each frame's token is the
-- mean of its patch tokens; then pos = true adds pos_scale times the 1-D sinusoidal code
-- of the frame's index t (0-based; dims 2i, 2i+1: sin, cos of t 10000^(-2i/D)).
-- The loader samples `frames` frames with oneencoder.video.sample (strategy, stride,
-- start, seed as there; default "uniform") resized to size, as uint8.
-- Defaults: frames 8, size {224, 224}, patch 16, channels 3, method "bilinear_cv",
-- normalize "half", proj none, seed 0, pos true, pos_scale 1, strategy "uniform".
local core = require "oneencoder.core"
local T = require "oneencoder.tensor"
local C = require "oneencoder.encoders.common"
local Patches = require "oneencoder.encoders.patches"

local NAME = "frames"
local Frames = C.class(NAME)

local DEFAULTS = {
  frames = 8, size = { 224, 224 }, patch = 16, channels = 3, method = "bilinear_cv", normalize = "half",
  proj = C.NONE, seed = 0, pos = true, pos_scale = 1,
  strategy = "uniform", stride = C.NONE, start = C.NONE, sample_seed = C.NONE,
}

function Frames.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  local self = setmetatable({ name = NAME, modality = "video" }, Frames)
  self.frames = C.int(NAME, "frames", o.frames, 1, 4096)
  self.size = C.size(NAME, "size", o.size)
  if not self.size then error("encoders.create(\"frames\"): size is required (frames are resized to it)", 3) end
  local ok, inner = pcall(Patches.new, { patch = o.patch, size = self.size, channels = o.channels, method = o.method,
    normalize = o.normalize, proj = o.proj, seed = o.seed, cls = false, pos = false })
  if not ok then error((tostring(inner):gsub("encoders.create%(\"patches\"%)", "encoders.create(\"frames\")")), 3) end
  self.patches = inner
  self.dim = inner.dim
  self.pos = C.bool(NAME, "pos", o.pos)
  self.pos_scale = C.num(NAME, "pos_scale", o.pos_scale)
  if self.pos and self.dim % 2 ~= 0 then
    error(string.format("encoders.create(\"frames\"): temporal positions need an even dim, got %d (set pos = false or proj)", self.dim), 3)
  end
  local strategies = { uniform = true, consecutive = true }
  if not strategies[o.strategy] then error("encoders.create(\"frames\"): strategy must be \"uniform\" or \"consecutive\"", 3) end
  self.sample = { frames = self.frames, size = self.size, format = "uint8", strategy = o.strategy }
  if o.stride ~= nil then self.sample.stride = C.int(NAME, "stride", o.stride, 1, 1 << 20) end
  if o.start ~= nil then
    if o.start ~= "center" and o.start ~= "random" then error("encoders.create(\"frames\"): start must be \"center\" or \"random\"", 3) end
    self.sample.start = o.start
  end
  if o.sample_seed ~= nil then self.sample.seed = C.int(NAME, "sample_seed", o.sample_seed) end
  if self.sample.start == "random" and self.sample.seed == nil then
    error("encoders.create(\"frames\"): start = \"random\" needs sample_seed (the output must be reproducible)", 3)
  end
  self.settings = { frames = self.frames, size = self.size, patches = inner.settings, pos = self.pos,
    pos_scale = self.pos_scale, sample = self.sample }
  self.id = string.format("frames:T%d:%s:sample=%s:pos%s:v1", self.frames, inner.id,
    C.fmt({ strategy = o.strategy, stride = self.sample.stride, start = self.sample.start, seed = self.sample.seed }),
    self.pos and ("1x" .. C.fmt(self.pos_scale)) or "0")
  self.preprocess = {
    modality = "video",
    input = "float32 (B, T, C, H, W), or a list of float32 (T, C, H, W) / uint8 (T, H, W, C) clips",
    frames = self.frames, size = self.size, channels = inner.channels, resize = inner.method,
    normalize = inner.norm_name, mean = inner.norm.mean, std = inner.norm.std,
    uint8 = inner.preprocess.uint8, float32 = inner.preprocess.float32,
    loader = "oneencoder.video.sample (" .. o.strategy .. ", uint8 frames resized to size)",
  }
  return self
end

-- a clip -> true | nil, message
function Frames:check(item)
  if not core.is_tensor(item) then return nil, "expected a clip tensor, got " .. type(item) end
  local dt, s = core.dtype(item), core.shape(item)
  if #s ~= 4 then
    return nil, "clips must be float32 (T, C, H, W) or uint8 (T, H, W, C), got a " .. dt .. " tensor " .. C.shape_str(item)
  end
  if s[1] < 1 then return nil, "clip without frames " .. C.shape_str(item) end
  if dt ~= "float32" and dt ~= "uint8" then return nil, "clips must be float32 or uint8, got " .. dt end
  return self.patches:check(core.select(item, 1, 1))
end

-- frames (N, C, H, W) float32 / (N, H, W, C) uint8 -> pooled (N, D)
local function pool(self, x)
  local tok = self.patches:encode(x)
  return T.mean(tok, 2)
end

function Frames:encode(batch)
  local pooled, lengths, B
  if core.is_tensor(batch) then
    local s = core.shape(batch)
    if core.dtype(batch) ~= "float32" or #s ~= 5 then
      C.fail(self, "expected a float32 (B, T, C, H, W) tensor or a list of clips, got a %s tensor %s", core.dtype(batch), C.shape_str(batch))
    end
    if s[1] < 1 or s[2] < 1 then C.fail(self, "empty batch %s", C.shape_str(batch)) end
    B = s[1]
    local p = pool(self, core.reshape(batch, { s[1] * s[2], s[3], s[4], s[5] }))
    lengths = {}
    for b = 1, B do lengths[b] = s[2] end
    pooled = core.reshape(p, { B, s[2], self.dim })
  else
    if type(batch) ~= "table" then C.fail(self, "expected a list of clips, got %s", type(batch)) end
    B = #batch
    if B == 0 then C.fail(self, "empty batch (no clips)") end
    lengths = {}
    local same, dt0, Tmax = true, nil, 0
    for i = 1, B do
      local ok, msg = self:check(batch[i])
      if not ok then C.fail(self, "item %d: %s", i, msg) end
      local dt = core.dtype(batch[i])
      if dt0 and dt ~= dt0 then same = false end
      dt0 = dt0 or dt
      lengths[i] = core.shape(batch[i])[1]
      if lengths[i] > Tmax then Tmax = lengths[i] end
    end
    -- every frame of every clip in one patches batch
    local frames = {}
    if same then
      local ok, all = pcall(core.cat, batch, 1)
      if ok then frames = all end
    end
    if not core.is_tensor(frames) then
      for i = 1, B do
        for t = 1, lengths[i] do
          local f = core.select(batch[i], 1, t)
          frames[#frames + 1] = f
        end
      end
    end
    local p = pool(self, frames)   -- (N, D)
    pooled = core.zeros({ B, Tmax, self.dim })
    local at = 1
    for b = 1, B do
      core.set_slice(core.select(pooled, 1, b), 1, 1, core.narrow(p, 1, at, lengths[b]))
      at = at + lengths[b]
    end
  end
  if self.pos then
    local Tmax = core.shape(pooled)[2]
    if not self._pe or core.shape(self._pe)[1] < Tmax then self._pe = core.enc_pos1d(Tmax, self.dim, self.pos_scale) end
    core.enc_add_rows_(pooled, 0, self._pe, lengths)
  end
  return pooled, lengths
end

-- load(path) -> uint8 (T, H, W, 3) | nil, message
function Frames:load(path)
  local s = {}
  for k, v in pairs(self.sample) do s[k] = v end
  return require("oneencoder.video").sample(path, s)
end

return Frames
