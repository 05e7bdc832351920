-- encoders/mobilenet_v2.lua: the ImageNet-initialised MobileNetV2 that nsfwjs@4.3.0 ships (a TF.js
-- layers model with uint8-quantised weights, fine-tuned by nsfwjs on its five classes), run by
-- oneencoder.tfjs; scripts/fetch-nsfwjs.sh puts it at data/nsfwjs/mobilenet_v2.
--   local enc = oe.encoders.create("mobilenet_v2", { dir = "data/nsfwjs/mobilenet_v2" })
--   local feats, lengths = enc:encode({ img1, img2 })   -- (2, 49, 1280): one token per 32x32 cell
--   local enc = oe.encoders.create("mobilenet_v2", { output = "pooled" })   -- (B, 1, 1280)
--
-- Options:
--   dir      folder holding model.json and its shard (default "data/nsfwjs/mobilenet_v2")
--   output   "map" (default): the 1280-channel map before pooling (layer out_relu, 7x7 at
--            224), as 49 tokens in row-major order of the cells; "pooled": its mean over the
--            7x7 cells (the model's own average_pooling2d_1 + flatten_1), one 1280-d token
--   size     input side (default 224, what the model was trained at; the map is size / 32
--            cells a side)
--
-- Preprocessing is nsfwjs's own (NSFWJS.infer in nsfwjs 4.3.0's dist/cjs/core.js): the RGB
-- pixels as float32 divided by 255 (range [0, 1]; no mean/std normalisation), then, unless the
-- image is already size x size, TF.js's tf.image.resizeBilinear to size x size with
-- alignCorners = true (source position = i * (in - 1) / (out - 1); the aspect ratio is not
-- kept, no crop). Images come from oneencoder.image.load (EXIF orientation applied, gray
-- expanded to RGB, alpha composited on white); the resize is oneencoder.tfjs's
-- resize_bilinear_align_corners (the project's resizers implement OpenCV's and Pillow's
-- half-pixel conventions, not TF.js's aligned corners).
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "mobilenet_v2"
local MN = C.class(NAME)

local DEFAULTS = { dir = "data/nsfwjs/mobilenet_v2", output = "map", size = 224 }
local LAYERS = { map = "out_relu", pooled = "flatten_1" }
local DIM = 1280

local function identity(path)
  local st = core.fs_stat(path)
  return st and string.format("%s:%d:%d.%09d", path, st.size, st.mtime, st.mtime_ns) or path
end

-- MN.new(opts) -> encoder | nil, message (a missing or bad model)
function MN.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if type(o.dir) ~= "string" then error("encoders.create(\"mobilenet_v2\"): option 'dir' must be a path", 3) end
  if not LAYERS[o.output] then
    error("encoders.create(\"mobilenet_v2\"): option 'output' must be \"map\" or \"pooled\", got " .. tostring(o.output), 3)
  end
  local size = C.int(NAME, "size", o.size, 32, 4096)
  if o.output == "pooled" and size ~= 224 then
    error("encoders.create(\"mobilenet_v2\"): output \"pooled\" needs size 224 (the model's 7x7 average pooling)", 3)
  end
  local path = o.dir .. "/model.json"
  local m, err = require("oneencoder.tfjs").load(path)
  if not m then return nil, err .. " (run: sh scripts/fetch-nsfwjs.sh)" end
  for _, l in pairs(LAYERS) do
    local found = false
    for _, x in ipairs(m:layers()) do found = found or x.name == l end
    if not found then return nil, string.format("%s: no layer '%s' (not nsfwjs's MobileNetV2)", path, l) end
  end
  local self = setmetatable({ name = NAME, modality = "image" }, MN)
  self.model, self.layer, self.size, self.output = m, LAYERS[o.output], size, o.output
  self.dim = DIM
  self.settings = { dir = o.dir, output = o.output, size = size }
  self.id = string.format("mobilenet_v2:%s:%s:%d:v1", identity(path), o.output, size)
  self.preprocess = {
    modality = "image",
    input = "a list of uint8 (H, W, 3) images (oneencoder.image.load), or a float32 (B, size, size, 3) batch already preprocessed",
    scale = "x / 255 (range [0, 1], no mean/std)", resize = "TF.js resizeBilinear, alignCorners = true, to size x size (aspect not kept)",
    size = size, layout = "NHWC", source = "nsfwjs 4.3.0 NSFWJS.infer",
  }
  return self
end

function MN:check(item)
  if not core.is_tensor(item) then return nil, "expected an image tensor, got " .. type(item) end
  local s = core.shape(item)
  if core.dtype(item) ~= "uint8" then return nil, "images must be uint8 (H, W, 3), got " .. core.dtype(item) end
  if #s ~= 3 or (s[3] ~= 3 and s[3] ~= 1) then return nil, "images must be (H, W, 3) or (H, W, 1), got " .. C.shape_str(item) end
  if s[1] < 1 or s[2] < 1 then return nil, "empty image " .. C.shape_str(item) end
  return true
end

-- one uint8 (H, W, 3) or (H, W, 1) image -> float32 (1, size, size, 3), nsfwjs's preprocessing:
-- x / 255 (gray repeated), TF.js's align-corners resize (core.tfjs_images, in C)
function MN:preprocess_image(img) return core.tfjs_images({ img }, self.size) end

-- batch -> float32 (B, size, size, 3)
function MN:to_batch(batch)
  if core.is_tensor(batch) then
    local s = core.shape(batch)
    if core.dtype(batch) ~= "float32" or #s ~= 4 or s[2] ~= self.size or s[3] ~= self.size or s[4] ~= 3 then
      C.fail(self, "expected a list of images or a float32 (B, %d, %d, 3) batch, got %s %s", self.size, self.size,
        core.dtype(batch), C.shape_str(batch))
    end
    return batch
  end
  if type(batch) ~= "table" then C.fail(self, "expected a batch of images, got %s", type(batch)) end
  if #batch == 0 then C.fail(self, "empty batch (no images)") end
  for i, item in ipairs(batch) do
    local ok, msg = self:check(item)
    if not ok then C.fail(self, "item %d: %s", i, msg) end
  end
  -- preprocess_image on every image, over the threads
  return core.tfjs_images(batch, self.size)
end

-- encode(batch) -> features (B, L, 1280) float32 (L = 49 for "map" at 224, 1 for "pooled"), lengths
function MN:encode(batch)
  local x = self:to_batch(batch)
  local y = self.model:output(x, self.layer)
  local s = core.shape(y)
  local L = #s == 4 and s[2] * s[3] or 1
  y = core.reshape(y, { s[1], L, DIM })
  local lengths = {}
  for b = 1, s[1] do lengths[b] = L end
  return y, lengths
end

-- load(path) -> uint8 (H, W, 3) | nil, message
function MN:load(path)
  return require("oneencoder.image").load(path)
end

return MN
