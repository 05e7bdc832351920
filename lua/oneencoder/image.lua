-- image.lua: JPEG/PNG decoding and encoding, resize, crop, normalisation and
-- a parallel batch loader. The work is done in C (csrc/io/image*.c).
--
--   local image = require "oneencoder.image"
--   local img = assert(image.load("cat.jpg"))          -- uint8 (H, W, 3), EXIF orientation applied
--   local small = image.resize(img, 224, 224, { method = "bicubic_pil" })
--   local x = image.to_float(small, { normalize = "imagenet" })   -- float32 (3, 224, 224)
--   local batch, bad = image.load_batch(paths, { size = { 224, 224 }, on_error = "skip" })
--
-- Images are uint8 tensors in HWC order (height, width, channels), like what
-- PIL/numpy and OpenCV hand over. Failures to read a file return nil, message
-- (the message names the file and the reason); pass strict = true to raise
-- instead. Wrong arguments always raise.
local core = require "oneencoder.core"

local image = {}

-- mean/std presets for to_float / load_batch / preprocess
image.presets = {
  imagenet = { mean = { 0.485, 0.456, 0.406 }, std = { 0.229, 0.224, 0.225 } },
  half = { mean = { 0.5, 0.5, 0.5 }, std = { 0.5, 0.5, 0.5 } },
  clip = { mean = { 0.48145466, 0.4578275, 0.40821073 }, std = { 0.26862954, 0.26130258, 0.27577711 } },
  none = { mean = { 0, 0, 0 }, std = { 1, 1, 1 } },
}

image.methods = { "bilinear_cv", "bilinear_pil", "bicubic_pil" }
image.default_max_pixels = 100000000

local function copy(t)
  local o = {}
  if t then for k, v in pairs(t) do o[k] = v end end
  return o
end

local function fail(opts, msg)
  if opts and opts.strict then error(msg, 3) end
  return nil, msg
end

-- A Lua string is taken as image bytes when it starts with a JPEG or PNG
-- signature or holds a NUL byte (paths cannot); otherwise it is a path.
local function looks_like_bytes(s)
  return s:sub(1, 3) == "\xFF\xD8\xFF" or s:sub(1, 8) == "\x89PNG\r\n\x1a\n" or s:find("\0", 1, true) ~= nil
end

local function source_opts(src, opts, fn)
  if type(src) ~= "string" then error(fn .. ": expected a path or a byte string, got " .. type(src), 3) end
  local o = copy(opts)
  if o.bytes == nil then o.bytes = looks_like_bytes(src) end
  return o
end

--- image.load(path_or_bytes, opts) -> uint8 (H, W, 3) | nil, msg
-- opts: bytes (force the string to be taken as bytes), name (used in messages),
-- keep_alpha (return (H, W, 4) RGBA), background {r, g, b} (alpha is composited
-- on it; default white), exif (apply JPEG EXIF orientation; default true),
-- max_pixels (refuse larger declared sizes before allocating; default 100e6),
-- scale (JPEG only: decode at 1/2, 1/4 or 1/8 with TurboJPEG's DCT scaling),
-- strict (raise instead of returning nil, msg).
function image.load(src, opts)
  local o = source_opts(src, opts, "image.load")
  local t, msg = core.image_load(src, o)
  if not t then return fail(o, msg) end
  return t
end

--- image.decode(bytes, opts): image.load on a byte string.
function image.decode(bytes, opts)
  local o = copy(opts)
  o.bytes = true
  if type(bytes) ~= "string" then error("image.decode: expected a byte string, got " .. type(bytes), 2) end
  local t, msg = core.image_load(bytes, o)
  if not t then return fail(o, msg) end
  return t
end

--- image.info(path_or_bytes, opts) -> {width, height, channels, format, orientation, raw_width, raw_height, bit_depth, cmyk}
-- width/height are as displayed (after the EXIF orientation); channels are the
-- file's own (1 gray, 2 gray+alpha, 3 colour, 4 RGBA or CMYK).
function image.info(src, opts)
  local o = source_opts(src, opts, "image.info")
  local t, msg = core.image_info(src, o)
  if not t then return fail(o, msg) end
  return t
end

local function method_of(opts, default)
  if type(opts) == "string" then return opts end
  return (opts and opts.method) or default
end

--- image.resize(t, h, w, {method = "bilinear_cv" | "bilinear_pil" | "bicubic_pil"})
-- t: uint8 or float32 (H, W, C) or (H, W). bilinear_cv is OpenCV's INTER_LINEAR
-- (no antialias); *_pil are Pillow's resample filters (antialiased when
-- shrinking). Default bilinear_cv. The method may also be given as a string.
function image.resize(t, h, w, opts)
  return core.image_resize(t, h, w, method_of(opts, "bilinear_cv"))
end

--- image.center_crop(t, h, w): the h x w window at top = floor((H - h) / 2), left = floor((W - w) / 2).
function image.center_crop(t, h, w) return core.image_center_crop(t, h, w) end

--- image.resize_shortest(t, edge, opts): short side to `edge`, long side int(edge * long / short).
function image.resize_shortest(t, edge, opts)
  local s = core.shape(t)
  local H, W = s[1], s[2]
  local h, w
  if H <= W then h, w = edge, math.floor(edge * W / H) else w, h = edge, math.floor(edge * H / W) end
  return image.resize(t, h, w, opts)
end

local function mean_std(norm, fn)
  if norm == nil or norm == false then return image.presets.none end
  if type(norm) == "string" then
    local p = image.presets[norm]
    if not p then error(fn .. ": unknown normalize preset '" .. norm .. "' (imagenet, half, clip, none)", 3) end
    return p
  end
  if type(norm) == "table" and type(norm.mean) == "table" and type(norm.std) == "table" then return norm end
  error(fn .. ": normalize must be a preset name or {mean = {r, g, b}, std = {r, g, b}}", 3)
end

--- image.to_float(t, {normalize = "imagenet" | "half" | "clip" | {mean=, std=}, rescale = 1/255})
-- uint8 (H, W, 3) -> float32 (3, H, W) = (x * rescale - mean) / std. The
-- default rescale is 1/255 for uint8 and 1 for float32 input.
function image.to_float(t, opts)
  opts = opts or {}
  local ms = mean_std(opts.normalize, "image.to_float")
  local rescale = opts.rescale or (core.dtype(t) == "uint8" and 1 / 255 or 1)
  return core.image_to_float(t, rescale, ms.mean, ms.std)
end

--- image.preprocess(t, opts): the per-image pipeline of load_batch on a decoded image:
-- resize to size (or shortest_edge then center crop to size), then to_float.
function image.preprocess(t, opts)
  opts = opts or {}
  local size = opts.size or { 224, 224 }
  local r
  if opts.shortest_edge then
    r = image.center_crop(image.resize_shortest(t, opts.shortest_edge, opts), size[1], size[2])
  else
    r = image.resize(t, size[1], size[2], opts)
  end
  return image.to_float(r, { normalize = opts.normalize == nil and "imagenet" or opts.normalize, rescale = opts.rescale })
end

--- image.load_batch(paths, opts) -> float32 (B, 3, H, W), bad_items
-- opts: size {h, w} (default {224, 224}); shortest_edge (resize the short side
-- to it, then center-crop to size); method (default bilinear_cv); normalize
-- (default "imagenet"; false for none); on_error "fail" (raise on the first bad
-- item in list order) or "skip" (leave it out; B = number of good images);
-- fast (let TurboJPEG decode JPEGs at 1/2, 1/4 or 1/8 scale while the result
-- stays at least the resize input size: faster, not bit-identical to the full
-- decode); threads; and the load options (max_pixels, exif, background).
-- bad_items: list of {index = i, path = p, reason = msg}.
function image.load_batch(paths, opts)
  if type(paths) ~= "table" then error("image.load_batch: expected a list of paths", 2) end
  opts = opts or {}
  local policy = opts.on_error or "fail"
  if policy ~= "fail" and policy ~= "skip" then
    error("image.load_batch: on_error must be \"fail\" or \"skip\", got " .. tostring(policy), 2)
  end
  local o = copy(opts)
  local norm = opts.normalize
  if norm == nil then norm = "imagenet" end
  local ms = mean_std(norm, "image.load_batch")
  o.mean, o.std = ms.mean, ms.std
  o.size = opts.size or { 224, 224 }
  o.stop_on_error = policy == "fail"
  o.normalize = nil
  local batch, bad = core.image_batch(paths, o)
  if policy == "fail" and #bad > 0 then
    local b = bad[1]
    error(string.format("image.load_batch: item %d: %s: %s", b.index, b.path, b.reason), 2)
  end
  return batch, bad
end

local function format_of(path, opts)
  local f = opts and opts.format
  if f then return f end
  local ext = path:match("%.([%w]+)$")
  ext = ext and ext:lower()
  if ext == "jpg" or ext == "jpeg" then return "jpeg" end
  if ext == "png" then return "png" end
  error("image.save: cannot tell the format from '" .. path .. "'; pass {format = \"jpeg\" | \"png\"}", 3)
end

--- image.save(t, path, {format=, quality = 90, subsampling = "420", level = 6}) -> true | nil, msg
-- uint8 (H, W, C) with C = 1, 3 (or 4, alpha dropped for JPEG; 2 or 4 kept by PNG).
-- Written to a temporary file next to path, then renamed (crash-safe).
function image.save(t, path, opts)
  local ok, msg = core.image_save(t, path, format_of(path, opts), opts)
  if not ok then return fail(opts, msg) end
  return true
end

--- image.encode(t, "png" | "jpeg", opts) -> string
function image.encode(t, format, opts) return core.image_encode(t, format or "png", opts) end

return image
