-- encoders/vit.lua: a pretrained Vision Transformer from a safetensors file (csrc/frozen/vit.c).
--   local enc = oe.encoders.create("vit", { weights = "vit_base_patch16_224.safetensors" })
--   local feats, lengths = enc:encode({ img1, img2 })   -- (B, 197, 768), {197, 197}
--   local f, l, kept, bad = enc:encode_files({ "a.jpg", "b.png" })
--
-- Options:
--   weights          path of a .safetensors file, or a weights object from core.frozen_open
--                    (shared with other encoders, e.g. the ViT and BERT of one released file)
--   prefix           key prefix ("image_encoder.pretrained_vit."); default: "" or, when nothing
--                    is found there, "vit." (Hugging Face ViTForImageClassification files)
--   layout           "auto" (default: timm when <prefix>cls_token exists, else HF), "timm", "hf"
--   config           HF config.json (heads, eps, checked against the weights); default: the
--                    config.json next to the weights file when the layout is HF and one exists;
--                    false: none
--   heads            attention heads (default: config, else 12)
--   eps              LayerNorm eps (default: config, else 1e-6 for timm, 1e-12 for HF)
--   preprocess       "original" (default; what OneEncoder did: resize to 224x224 with OpenCV's
--                    INTER_LINEAR, aspect not kept, /255, ImageNet mean/std), "timm" (bicubic
--                    resize of the shorter side to 248, centre crop 224 as torchvision does,
--                    mean = std = 0.5), "hf" (ViTImageProcessor: resize to 224x224 bilinear as
--                    PIL does it, mean = std = 0.5)
--   interpolate_pos  accept float32 inputs of another size (a multiple of the patch): the position
--                    table is resampled as timm's resample_abs_pos_embed does (bicubic, antialias)
--
-- Input (enc.preprocess): a list of uint8 (H, W, 3) images as oneencoder.image.load gives them
-- (RGB, EXIF orientation applied: the same pixels as cv2.imread + BGR->RGB), preprocessed with the
-- preset; or a float32 (B, 3, H, W) batch taken as already preprocessed. Output: the sequence
-- after the final LayerNorm, class token first (timm forward_features, HF last_hidden_state).
-- Weights are memory-mapped and used in place when float32 (F16/BF16 are converted once at
-- load); no autograd; the activations live in a scratch buffer reused across batches.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "vit"
local ViT = C.class(NAME)

local PRESETS = {
  original = { size = { 224, 224 }, method = "bilinear_cv", normalize = "imagenet" },
  timm = { shortest_edge = 248, size = { 224, 224 }, method = "bicubic_pil", normalize = "half" },
  hf = { size = { 224, 224 }, method = "bilinear_pil", normalize = "half" },
}

local DEFAULTS = {
  weights = C.NONE, prefix = C.NONE, layout = "auto", config = C.NONE, heads = C.NONE, eps = C.NONE,
  preprocess = "original", interpolate_pos = false,
}

-- open(weights) -> weights object, identity string | nil, message
local function open_weights(w)
  local obj = w
  if type(w) == "string" then
    local msg
    obj, msg = core.frozen_open(w)
    if not obj then return nil, msg end
  elseif type(w) ~= "userdata" then
    error(string.format("encoders.create(\"%s\"): option 'weights' must be a path or a weights object (core.frozen_open), got %s",
      NAME, type(w)), 4)
  end
  local info = core.frozen_info(obj)
  local st = core.fs_stat(info.path)
  local ident = st and string.format("%s:%d:%d.%09d", info.path, st.size, st.mtime, st.mtime_ns)
      or string.format("%s:%d", info.path, info.size)
  return obj, ident, info.path
end
ViT.open_weights = open_weights

local function exists(path)
  local st = core.fs_stat(path)
  return st and st.is_file
end

local function dir_of(path) return path:match("^(.*)/[^/]*$") or "." end

-- ViT.new(opts) -> encoder | nil, message (a missing or bad weights file)
function ViT.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if o.weights == nil then error("encoders.create(\"vit\"): option 'weights' is required (a .safetensors path)", 3) end
  local pre = PRESETS[o.preprocess]
  if not pre then
    error("encoders.create(\"vit\"): unknown preprocess '" .. tostring(o.preprocess) .. "' (original, timm, hf)", 3)
  end
  if o.layout ~= "auto" and o.layout ~= "timm" and o.layout ~= "hf" then
    error("encoders.create(\"vit\"): option 'layout' must be \"auto\", \"timm\" or \"hf\", got " .. tostring(o.layout), 3)
  end
  if o.prefix ~= nil and type(o.prefix) ~= "string" then error("encoders.create(\"vit\"): option 'prefix' must be a string", 3) end
  if o.config ~= nil and o.config ~= false and type(o.config) ~= "string" then
    error("encoders.create(\"vit\"): option 'config' must be a path or false", 3)
  end
  local heads = o.heads ~= nil and C.int(NAME, "heads", o.heads, 1, 4096) or nil
  local eps = o.eps ~= nil and C.num(NAME, "eps", o.eps) or nil
  if eps and not (eps > 0 and eps < 1) then error("encoders.create(\"vit\"): option 'eps' must be in (0, 1)", 3) end
  local interp = C.bool(NAME, "interpolate_pos", o.interpolate_pos)

  local w, ident, wpath = open_weights(o.weights)
  if not w then return nil, ident end
  local prefix = o.prefix
  if prefix == nil then
    prefix = ""
    if not core.frozen_has(w, "cls_token") and not core.frozen_has(w, "embeddings.cls_token")
        and core.frozen_count_prefix(w, "vit.") > 0 then
      prefix = "vit."
    end
  end
  local config = o.config
  if config == nil then
    local cand = dir_of(wpath) .. "/config.json"
    local hf = o.layout == "hf" or (o.layout == "auto" and core.frozen_has(w, prefix .. "embeddings.cls_token"))
    if hf and exists(cand) then config = cand end
  end
  if config == false then config = nil end
  local model, err = core.vit_load(w, { prefix = prefix, layout = o.layout, config = config, heads = heads, eps = eps,
    interpolate_pos = interp })
  if not model then return nil, err end
  local cfg = core.vit_config(model)

  local self = setmetatable({ name = NAME, modality = "image" }, ViT)
  self.weights, self.model, self.config = w, model, cfg
  self.dim = cfg.dim
  self.preset_name, self.preset = o.preprocess, pre
  self.image_size = { cfg.grid_h * cfg.patch, cfg.grid_w * cfg.patch }
  self.settings = { weights = wpath, prefix = prefix, layout = cfg.layout, config = config, heads = cfg.heads,
    eps = cfg.eps, preprocess = o.preprocess, interpolate_pos = interp }
  self.id = string.format("vit:%s:%s:prefix=%s:heads%d:eps%s:pre=%s%s:v1", ident, cfg.layout, prefix, cfg.heads,
    C.fmt(cfg.eps), o.preprocess, interp and ":interp" or "")
  local norm = require("oneencoder.image").presets[pre.normalize]
  self.preprocess = {
    modality = "image", preset = o.preprocess,
    input = "a list of uint8 (H, W, 3) images (oneencoder.image.load), or float32 (B, 3, H, W) already preprocessed",
    size = pre.size, shortest_edge = pre.shortest_edge, resize = pre.method, normalize = pre.normalize,
    mean = norm.mean, std = norm.std, loader = "oneencoder.pretrained.load_image (RGB uint8, EXIF orientation applied, alpha dropped)",
  }
  return self
end

-- item -> true | nil, reason
function ViT:check(item)
  if not core.is_tensor(item) then return nil, "expected an image tensor, got " .. type(item) end
  local dt, s = core.dtype(item), core.shape(item)
  if dt == "uint8" then
    if #s ~= 3 or (s[3] ~= 3 and s[3] ~= 1) then return nil, "uint8 images must be (H, W, 3) or (H, W, 1), got " .. C.shape_str(item) end
    if s[1] < 1 or s[2] < 1 then return nil, "empty image " .. C.shape_str(item) end
    return true
  elseif dt == "float32" then
    if #s ~= 3 or s[1] ~= self.config.channels then
      return nil, string.format("float32 images must be (%d, H, W), got %s", self.config.channels, C.shape_str(item))
    end
    return true
  end
  return nil, "images must be uint8 (H, W, 3) or float32 (3, H, W), got " .. dt
end

-- round half to even, as Python's round() (torchvision's CenterCrop offsets)
local function round_half_even(x)
  local f = math.floor(x)
  local d = x - f
  if d > 0.5 or (d == 0.5 and f % 2 == 1) then return f + 1 end
  return f
end

-- one uint8 (H, W, 3) image -> float32 (3, h, w) with the preset
function ViT:preprocess_image(img)
  local image = require "oneencoder.image"
  local p = self.preset
  local s = core.shape(img)
  if s[3] == 1 then img = core.cat({ img, img, img }, 3) end
  if p.shortest_edge then
    img = image.resize_shortest(img, p.shortest_edge, { method = p.method })
    s = core.shape(img)
    local th, tw = p.size[1], p.size[2]
    if s[1] < th or s[2] < tw then
      error(string.format("vit:encode: image resized to %dx%d is smaller than the %dx%d crop", s[1], s[2], th, tw), 0)
    end
    local top, left = round_half_even((s[1] - th) / 2), round_half_even((s[2] - tw) / 2)
    img = core.narrow(core.narrow(img, 1, top + 1, th), 2, left + 1, tw)
  else
    img = image.resize(img, p.size[1], p.size[2], { method = p.method })
  end
  return image.to_float(img, { normalize = p.normalize })
end

-- batch -> float32 (B, C, H, W)
function ViT:to_batch(batch)
  if core.is_tensor(batch) then
    local s = core.shape(batch)
    if core.dtype(batch) ~= "float32" or #s ~= 4 then
      C.fail(self, "expected a list of images or a float32 (B, %d, H, W) batch, got %s %s", self.config.channels,
        core.dtype(batch), C.shape_str(batch))
    end
    return batch
  end
  if type(batch) ~= "table" then C.fail(self, "expected a batch of images, got %s", type(batch)) end
  if #batch == 0 then C.fail(self, "empty batch (no images)") end
  local parts = {}
  for i, item in ipairs(batch) do
    local ok, msg = self:check(item)
    if not ok then C.fail(self, "item %d: %s", i, msg) end
    local x = core.dtype(item) == "uint8" and self:preprocess_image(item) or item
    local s = core.shape(x)
    parts[i] = core.reshape(x, { 1, s[1], s[2], s[3] })
    if i > 1 then
      local s1 = core.shape(parts[1])
      if s1[3] ~= s[2] or s1[4] ~= s[3] then
        C.fail(self, "item %d is %dx%d but item 1 is %dx%d", i, s[2], s[3], s1[3], s1[4])
      end
    end
  end
  return #parts == 1 and parts[1] or core.cat(parts, 1)
end

-- forward(x float32 (B, C, H, W)) -> (B, L, D): the raw model, no preprocessing
function ViT:forward(x)
  local y, err = core.vit_forward(self.model, x)
  if not y then error("vit:encode: " .. err, 0) end
  return y
end

-- encode(batch) -> features (B, L, D) float32, lengths
function ViT:encode(batch)
  local y = self:forward(self:to_batch(batch))
  local s = core.shape(y)
  local lengths = {}
  for b = 1, s[1] do lengths[b] = s[2] end
  return y, lengths
end

-- load(path) -> uint8 (H, W, 3) | nil, message. Alpha is dropped, not composited: every
-- reference pipeline does so (cv2.imread for the original, PIL's convert("RGB") for timm and
-- Hugging Face)
function ViT:load(path)
  return require("oneencoder.pretrained").load_image(path)
end

return ViT
