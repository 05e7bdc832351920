-- encoders/patches.lua: image -> patch tokens, a ViT without learned weights.
--   local enc = oe.encoders.create("patches", { patch = 4, size = 28, channels = 1, proj = 64, seed = 7 })
--   local feats, lengths = enc:encode(images)   -- (B, 49, 64), {49, 49, ...}
--
-- Input (enc.preprocess): a float32 (B, C, H, W) batch, a uint8 (B, H, W, C) batch, or a
-- list of images, each uint8 (H, W, C) / (H, W) as oneencoder.image.load gives them, or
-- float32 (C, H, W). uint8 images are rescaled to [0, 1] and normalised per channel,
-- (x - mean) / std, with `normalize` ("half" by default: [-1, 1]); float32 images are
-- taken as already normalised. Images are resized (uint8 before normalising) to `size`
-- when given, with `method` (oneencoder.image.resize). Channels are then made to match
-- `channels`: gray is repeated into RGB, RGB becomes gray by luma 0.299 R + 0.587 G +
-- 0.114 B (uint8: after rescaling, before normalising, and one channel uses the first
-- mean/std; float32: on the values as given).
--
-- Tokens: the image is split into P x P patches in row-major order (row r, column c is
-- token r * W/P + c), each flattened in (C, P, P) order like a ViT's patch embedding
-- reads it: Din = C * P * P values. Then, in order:
--   proj  = D: tokens times a fixed (Din, D) matrix of N(0, 1) / sqrt(Din) draws from
--           the seed (counter-based hash of seed and "patches.proj", not the global RNG);
--           nil/false: no projection, D = Din
--   cls   = true: a first token equal to the mean of the patch tokens (no position)
--   pos   = true: 2-D sinusoidal positions times pos_scale added to the patch tokens:
--           dims 0..D/2-1 encode the row r, dims D/2..D-1 the column c, each as
--           sin(p w_i), cos(p w_i) at dims 2i, 2i+1 with w_i = 10000^(-2i/(D/2)); D % 4 == 0
-- L = (H/P)(W/P) (+1 with cls); every image has the same length.
-- Defaults: patch 16, size none (all images of one batch must then have the same size, a
-- multiple of P), channels 3, method "bilinear_cv", normalize "half", proj none, seed 0,
-- cls false, pos true, pos_scale 1.
local core = require "oneencoder.core"
local T = require "oneencoder.tensor"
local C = require "oneencoder.encoders.common"

local NAME = "patches"
local Patches = C.class(NAME)

local PRESETS = {
  imagenet = { mean = { 0.485, 0.456, 0.406 }, std = { 0.229, 0.224, 0.225 } },
  half = { mean = { 0.5, 0.5, 0.5 }, std = { 0.5, 0.5, 0.5 } },
  clip = { mean = { 0.48145466, 0.4578275, 0.40821073 }, std = { 0.26862954, 0.26130258, 0.27577711 } },
  none = { mean = { 0, 0, 0 }, std = { 1, 1, 1 } },
}
local METHODS = { bilinear_cv = true, bilinear_pil = true, bicubic_pil = true }

local DEFAULTS = {
  patch = 16, size = C.NONE, channels = 3, method = "bilinear_cv", normalize = "half",
  proj = C.NONE, seed = 0, cls = false, pos = true, pos_scale = 1,
}

local function norm_of(v)
  if v == false or v == nil then return "none", PRESETS.none end
  if type(v) == "string" then
    local p = PRESETS[v]
    if not p then error("encoders.create(\"patches\"): unknown normalize preset '" .. v .. "' (imagenet, half, clip, none)", 4) end
    return v, p
  end
  if type(v) == "table" and type(v.mean) == "table" and type(v.std) == "table" and #v.mean == 3 and #v.std == 3 then
    for i = 1, 3 do
      C.num(NAME, "normalize.mean", v.mean[i])
      if C.num(NAME, "normalize.std", v.std[i]) == 0 then error("encoders.create(\"patches\"): normalize.std must not be 0", 4) end
    end
    return C.fmt(v), { mean = { v.mean[1], v.mean[2], v.mean[3] }, std = { v.std[1], v.std[2], v.std[3] } }
  end
  error("encoders.create(\"patches\"): normalize must be a preset name, false, or {mean = {r, g, b}, std = {r, g, b}}", 4)
end

-- Patches.new(opts) -> encoder (oe.encoders.create("patches", opts))
function Patches.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  local self = setmetatable({ name = NAME, modality = "image" }, Patches)
  self.patch = C.int(NAME, "patch", o.patch, 1, 4096)
  self.size = C.size(NAME, "size", o.size)
  self.channels = C.int(NAME, "channels", o.channels, 1, 3)
  if self.channels == 2 then error("encoders.create(\"patches\"): channels must be 1 or 3", 3) end
  if not METHODS[o.method] then
    error("encoders.create(\"patches\"): unknown method '" .. tostring(o.method) .. "' (bilinear_cv, bilinear_pil, bicubic_pil)", 3)
  end
  self.method = o.method
  self.norm_name, self.norm = norm_of(o.normalize)
  self.seed = C.seed(NAME, o.seed)
  self.cls = C.bool(NAME, "cls", o.cls)
  self.pos = C.bool(NAME, "pos", o.pos)
  self.pos_scale = C.num(NAME, "pos_scale", o.pos_scale)
  if self.size and (self.size[1] % self.patch ~= 0 or self.size[2] % self.patch ~= 0) then
    error(string.format("encoders.create(\"patches\"): size %dx%d is not a multiple of the patch size %d",
      self.size[1], self.size[2], self.patch), 3)
  end
  self.token_dim = self.channels * self.patch * self.patch
  if o.proj ~= nil and o.proj ~= false then
    self.proj = C.int(NAME, "proj", o.proj, 1, 1 << 20)
    self.proj_weight = C.projection(self.seed, "patches.proj", self.token_dim, self.proj)
  end
  self.dim = self.proj or self.token_dim
  if self.pos and self.dim % 4 ~= 0 then
    error(string.format("encoders.create(\"patches\"): 2-D positions need a dim divisible by 4, got %d (set pos = false or proj)", self.dim), 3)
  end
  self.settings = { patch = self.patch, size = self.size, channels = self.channels, method = self.method,
    normalize = o.normalize, proj = self.proj, seed = self.seed, cls = self.cls, pos = self.pos, pos_scale = self.pos_scale }
  self.id = string.format("patches:p%d:c%d:size%s:%s:norm=%s:proj%s%s:cls%s:pos%s:v1", self.patch, self.channels,
    self.size and (self.size[1] .. "x" .. self.size[2]) or "any", self.method, self.norm_name,
    self.proj and tostring(self.proj) or "none", self.proj and (":seed" .. C.fmt(self.seed)) or "",
    C.fmt(self.cls), self.pos and ("1x" .. C.fmt(self.pos_scale)) or "0")
  self.preprocess = {
    modality = "image",
    input = "float32 (B, C, H, W), uint8 (B, H, W, C), or a list of uint8 (H, W, C)/(H, W) or float32 (C, H, W) images",
    channels = self.channels, size = self.size, resize = self.method,
    normalize = self.norm_name, mean = self.norm.mean, std = self.norm.std,
    uint8 = "x / 255, channels matched, then (x - mean) / std", float32 = "taken as already normalised",
    loader = "oneencoder.image.load (RGB uint8, EXIF orientation applied)",
  }
  self._pe = {}
  return self
end

-- ---- input conversion ----

local function fail(self, fmt, ...) C.fail(self, fmt, ...) end

-- item i -> nil | message
function Patches:check(item)
  if not core.is_tensor(item) then return nil, "expected an image tensor, got " .. type(item) end
  local dt, s = core.dtype(item), core.shape(item)
  if dt == "uint8" then
    if #s == 2 then s = { s[1], s[2], 1 } end
    if #s ~= 3 or (s[3] ~= 1 and s[3] ~= 3) then
      return nil, "uint8 images must be (H, W, 3) or (H, W, 1) or (H, W), got " .. C.shape_str(item)
    end
    if s[1] < 1 or s[2] < 1 then return nil, "empty image " .. C.shape_str(item) end
    if not self.size and (s[1] % self.patch ~= 0 or s[2] % self.patch ~= 0) then
      return nil, string.format("image %dx%d is not a multiple of the patch size %d (set size to resize)", s[1], s[2], self.patch)
    end
    return true
  elseif dt == "float32" then
    if #s ~= 3 or (s[1] ~= 1 and s[1] ~= 3) then
      return nil, "float32 images must be (3, H, W) or (1, H, W), got " .. C.shape_str(item)
    end
    if s[2] < 1 or s[3] < 1 then return nil, "empty image " .. C.shape_str(item) end
    if not self.size and (s[2] % self.patch ~= 0 or s[3] % self.patch ~= 0) then
      return nil, string.format("image %dx%d is not a multiple of the patch size %d (set size to resize)", s[2], s[3], self.patch)
    end
    return true
  end
  return nil, "images must be uint8 or float32, got " .. dt
end

-- resize an (H, W, C) uint8/float32 image to self.size if it differs
local function resize_hwc(self, t)
  local s = core.shape(t)
  if self.size and (s[1] ~= self.size[1] or s[2] ~= self.size[2]) then
    return require("oneencoder.image").resize(t, self.size[1], self.size[2], self.method)
  end
  return t
end

-- float (B, c, H, W) in [0, 1] or normalised -> self.channels channels
local function match_channels(self, f)
  local c = core.shape(f)[2]
  if c == self.channels then return f end
  if c == 1 then return core.cat({ f, f, f }, 2) end
  local r, g, b = core.narrow(f, 2, 1, 1), core.narrow(f, 2, 2, 1), core.narrow(f, 2, 3, 1)
  return T.add(T.add(T.mul(r, 0.299), T.mul(g, 0.587)), T.mul(b, 0.114))
end

-- uint8 (B, H, W, c) -> float32 (B, channels, H, W), normalised (one C pass)
function Patches:from_uint8(x)
  return core.enc_u8_to_chw(x, self.channels, self.norm.mean, self.norm.std)
end

-- list item -> (1, channels, h, w) float32
local function item_to_float(self, t, i)
  local ok, msg = self:check(t)
  if not ok then fail(self, "item %d: %s", i, msg) end
  if core.dtype(t) == "uint8" then
    local s = core.shape(t)
    if #s == 2 then t = core.reshape(t, { s[1], s[2], 1 }) end
    t = resize_hwc(self, t)
    s = core.shape(t)
    return self:from_uint8(core.reshape(t, { 1, s[1], s[2], s[3] }))
  end
  local s = core.shape(t)
  if self.size and (s[2] ~= self.size[1] or s[3] ~= self.size[2]) then
    t = core.permute(resize_hwc(self, core.permute(t, { 2, 3, 1 })), { 3, 1, 2 })
    s = core.shape(t)
  end
  return match_channels(self, core.reshape(t, { 1, s[1], s[2], s[3] }))
end

local function same_uint8_shapes(list)
  local s0
  for _, t in ipairs(list) do
    if not core.is_tensor(t) or core.dtype(t) ~= "uint8" then return false end
    local s = core.shape(t)
    if #s ~= 3 and #s ~= 2 then return false end
    if s0 == nil then s0 = s
    elseif #s ~= #s0 or s[1] ~= s0[1] or s[2] ~= s0[2] or (#s == 3 and s[3] ~= s0[3]) then return false end
  end
  return true
end

-- batch -> float32 (B, channels, H, W) at the encoder's size
function Patches:to_batch(batch)
  if core.is_tensor(batch) then
    local dt, s = core.dtype(batch), core.shape(batch)
    if #s ~= 4 then
      fail(self, "expected a batch: float32 (B, C, H, W), uint8 (B, H, W, C) or a list of images; got a %s tensor %s", dt, C.shape_str(batch))
    end
    if s[1] < 1 then fail(self, "empty batch %s", C.shape_str(batch)) end
    if dt == "float32" then
      if s[2] ~= 1 and s[2] ~= 3 then fail(self, "float32 batches must be (B, 3, H, W) or (B, 1, H, W), got %s", C.shape_str(batch)) end
      if not self.size or (s[3] == self.size[1] and s[4] == self.size[2]) then
        local ok, msg = self:check(core.select(batch, 1, 1))
        if not ok then fail(self, "%s", msg) end
        return match_channels(self, batch)
      end
      local list = {}
      for b = 1, s[1] do list[b] = core.select(batch, 1, b) end
      return self:to_batch(list)
    elseif dt == "uint8" then
      if s[4] ~= 1 and s[4] ~= 3 then fail(self, "uint8 batches must be (B, H, W, 3) or (B, H, W, 1), got %s", C.shape_str(batch)) end
      if not self.size or (s[2] == self.size[1] and s[3] == self.size[2]) then
        local ok, msg = self:check(core.select(batch, 1, 1))
        if not ok then fail(self, "%s", msg) end
        return self:from_uint8(batch)
      end
      local list = {}
      for b = 1, s[1] do list[b] = core.select(batch, 1, b) end
      return self:to_batch(list)
    end
    fail(self, "image batches must be float32 or uint8, got %s", dt)
  end
  if type(batch) ~= "table" then fail(self, "expected a batch of images, got %s", type(batch)) end
  local n = #batch
  if n == 0 then fail(self, "empty batch (no images)") end
  if same_uint8_shapes(batch) then
    -- one conversion for the whole batch
    local parts = {}
    for i, t in ipairs(batch) do
      local ok, msg = self:check(t)
      if not ok then fail(self, "item %d: %s", i, msg) end
      local s = core.shape(t)
      if #s == 2 then t = core.reshape(t, { s[1], s[2], 1 }) end
      t = resize_hwc(self, t)
      s = core.shape(t)
      parts[i] = core.reshape(t, { 1, s[1], s[2], s[3] })
    end
    return self:from_uint8(n == 1 and parts[1] or core.cat(parts, 1))
  end
  local parts, s0 = {}, nil
  for i = 1, n do
    parts[i] = item_to_float(self, batch[i], i)
    local s = core.shape(parts[i])
    if s0 and (s[3] ~= s0[3] or s[4] ~= s0[4]) then
      fail(self, "item %d is %dx%d but item 1 is %dx%d (set size to resize every image)", i, s[3], s[4], s0[3], s0[4])
    end
    s0 = s0 or s
  end
  return n == 1 and parts[1] or core.cat(parts, 1)
end

-- the position table for a gh x gw grid (cached)
function Patches:positions(gh, gw)
  local key = gh .. "x" .. gw
  local pe = self._pe[key]
  if not pe then
    pe = core.enc_pos2d(gh, gw, self.dim, self.pos_scale)
    self._pe[key] = pe
  end
  return pe
end

-- tokens of a float32 (B, channels, H, W) batch, no input conversion
function Patches:encode_float(x)
  local s = core.shape(x)
  local tok = core.enc_patchify(x, self.patch, self.cls)
  if self.proj_weight then tok = C.project(tok, self.proj_weight) end
  if self.pos then
    core.enc_add_rows_(tok, self.cls and 1 or 0, self:positions(s[3] // self.patch, s[4] // self.patch))
  end
  local L = core.shape(tok)[2]
  local lengths = {}
  for b = 1, s[1] do lengths[b] = L end
  return tok, lengths
end

-- encode(batch) -> features (B, L, D) float32, lengths
function Patches:encode(batch)
  return self:encode_float(self:to_batch(batch))
end

-- load(path) -> uint8 (H, W, 3) | nil, message
function Patches:load(path)
  return require("oneencoder.image").load(path)
end

return Patches
