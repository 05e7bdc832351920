-- encoders/videomae.lua: a pretrained VideoMAE (Hugging Face VideoMAEModel) from a model folder
-- or a safetensors file (csrc/frozen/videomae.c).
--   local enc = assert(oe.encoders.create("videomae", { path = "videomae-base" }))
--   local clip = assert(enc:load("a.mp4"))              -- uint8 (16, H, W, 3): the sampled frames
--   local feats, lengths = enc:encode({ clip })         -- (1, 1568, 768), {1568}
--   local f, l, kept, bad = oe.encoders.encode_files(enc, { "a.mp4", "b.mkv" }, { on_error = "skip" })
--
-- Options:
--   path        a Hugging Face model folder: model.safetensors, config.json (read and checked
--               against the weights) and preprocessor_config.json (VideoMAEImageProcessor's
--               settings) when present
--   weights     instead of path: a .safetensors file or a weights object (core.frozen_open, shared
--               with other encoders, e.g. inside a released OneEncoder step-2 file)
--   prefix      key prefix; default "" or, when nothing is found there, "videomae."
--               (VideoMAEForPreTraining / VideoMAEForVideoClassification files)
--   config      config.json path (default: the one beside the weights when it exists), false: none
--   preprocessor  preprocessor_config.json path (default: the one beside the weights), false: none
--   heads, eps, frames, image_size   override config.json (defaults without one: 12, 1e-12, 16, 224)
--   fc_norm     true: load fc_norm.* (beside the prefix, as in VideoMAEForVideoClassification) and
--               give enc:pooled(); default: when the file has them and use_mean_pooling holds
--   sampling    how enc:load picks the frames (N = the video's frame count, T = num_frames):
--                 "original" (default) the original OneEncoder code's sample_frame_indices(T, 1, N):
--                            the window's end drawn from randint(T, N), frames end-T .. end-1:
--                            T consecutive frames starting in 0 .. N-T-1, a new draw at every
--                            load; it needs N >= T + 1 (the original raises for shorter videos:
--                            here load returns nil and a message saying so)
--                 "uniform"  frame floor((i + 0.5) N / T) for i = 0 .. T-1: any N >= 1 (videos
--                            shorter than T repeat frames)
--                 "center"   T consecutive frames starting at (N - T) // 2; needs N >= T
--   seed        integer: the "original" windows come from oe.Generator(seed) (reproducible
--               runs); default: the global stream (oe.manual_seed)
--   generator   an oe.Generator for the windows (instead of seed)
--   batch       videos per forward call inside encode (default 2: the scratch and the float
--               input stay small; the output of a whole encode call is one tensor)
--
-- Preprocessing (VideoMAEImageProcessor, from preprocessor_config.json or its defaults with 224
-- replaced by the model's image_size): each frame's shorter side resized to shortest_edge
-- (Pillow's bilinear filter, long side int(edge * long / short)), center crop (top = (h - c)
-- // 2), x * rescale_factor (1/255), (x - mean) / std (ImageNet). Items: uint8 (T, H, W, 3)
-- clips (enc:load, or oneencoder.video.sample with format = "uint8"), or float32 (T, 3, S, S)
-- clips already preprocessed; encode also takes a float32 (B, T, 3, S, S) batch as it is.
-- Output: last_hidden_state (B, tokens, D) (after the final LayerNorm when use_mean_pooling is
-- false, as videomae-base); enc:pooled(batch) -> (B, D) with fc_norm.
-- With the feature cache, the cached features keep the first window drawn for each video.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "videomae"
local VideoMAE = C.class(NAME)

local DEFAULTS = {
  path = C.NONE, weights = C.NONE, prefix = C.NONE, config = C.NONE, preprocessor = C.NONE, heads = C.NONE,
  eps = C.NONE, frames = C.NONE, image_size = C.NONE, fc_norm = C.NONE, sampling = "original", seed = C.NONE,
  generator = C.NONE, batch = 2,
}
local SAMPLINGS = { original = true, uniform = true, center = true }

local function bad(msg) error(string.format("encoders.create(\"%s\"): %s", NAME, msg), 4) end

local function exists(path)
  local st = core.fs_stat(path)
  return st and st.is_file
end
local function dir_of(path) return path:match("^(.*)/[^/]*$") or "." end

-- ---------------------------------------------------------------- a small JSON reader
-- (preprocessor_config.json: objects, arrays, strings, numbers, true/false/null; at most 1 MB)

local JSON_OBJECT = setmetatable({}, { __mode = "k" })   -- tables that were JSON objects (not arrays)

local function json_decode(s, where)
  local pos, depth = 1, 0
  local function err(what) error({ json = string.format("%s: %s at byte %d", where, what, pos) }) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then err("unterminated string") end
      if c == '"' then pos = i + 1 return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if map[e] then out[#out + 1] = map[e]; i = i + 2
        elseif e == "u" then
          local h = s:sub(i + 2, i + 5)
          if not h:match("^%x%x%x%x$") then err("bad \\u escape") end
          out[#out + 1] = utf8.char(tonumber(h, 16)); i = i + 6
        else err("bad escape") end
      else
        out[#out + 1] = c; i = i + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" or c == "[" then
      depth = depth + 1
      if depth > 32 then err("nesting too deep") end
      local obj, close = {}, c == "{" and "}" or "]"
      if close == "}" then JSON_OBJECT[obj] = true end
      pos = pos + 1
      ws()
      if s:sub(pos, pos) == close then pos = pos + 1; depth = depth - 1; return obj end
      while true do
        if close == "}" then
          ws()
          if s:sub(pos, pos) ~= '"' then err("expected a key") end
          local k = str()
          ws()
          if s:sub(pos, pos) ~= ":" then err("expected ':'") end
          pos = pos + 1
          obj[k] = value()
        else
          obj[#obj + 1] = value()
        end
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == close then depth = depth - 1; return obj end
        if d ~= "," then err("expected ',' or '" .. close .. "'") end
      end
    elseif c == '"' then return str()
    elseif s:find("^true", pos) then pos = pos + 4; return true
    elseif s:find("^false", pos) then pos = pos + 5; return false
    elseif s:find("^null", pos) then pos = pos + 4; return nil
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" or not tonumber(num) then err("unexpected character") end
      pos = pos + #num
      return tonumber(num)
    end
  end
  local ok, v = pcall(function()
    local r = value()
    ws()
    if pos <= #s then err("trailing characters") end
    return r
  end)
  if not ok then
    if type(v) == "table" and v.json then return nil, v.json end
    error(v, 0)
  end
  return v
end

-- the VideoMAEImageProcessor settings: {shortest_edge | height, width; crop; resample; rescale; mean; std}
local function processor_settings(path, image_size)
  local p = { shortest_edge = image_size, crop = { image_size, image_size }, method = "bilinear_pil",
    rescale = 1 / 255, mean = { 0.485, 0.456, 0.406 }, std = { 0.229, 0.224, 0.225 }, do_crop = true,
    do_resize = true, do_rescale = true, do_normalize = true }
  if not path then return p end
  local st = core.fs_stat(path)
  if not st or not st.is_file then return nil, path .. ": not a regular file" end
  if st.size > (1 << 20) then return nil, path .. ": larger than 1 MB" end
  local f, ferr = io.open(path, "rb")
  if not f then return nil, ferr end
  local text = f:read("a")
  f:close()
  local j, jerr = json_decode(text, path)
  if not j then return nil, jerr end
  if not JSON_OBJECT[j] then return nil, path .. ": not a JSON object" end
  local function num(k, v, positive)
    if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge or (positive and v <= 0) then
      error({ json = string.format("%s: \"%s\" must be a %snumber", path, k, positive and "positive " or "") })
    end
    return v
  end
  local function side(k, v)
    if math.type(v) ~= "integer" and not (type(v) == "number" and v == math.floor(v)) then
      error({ json = string.format("%s: \"%s\" must be an integer", path, k) })
    end
    if v < 1 or v > 8192 then error({ json = string.format("%s: \"%s\" = %s is outside 1..8192", path, k, tostring(v)) }) end
    return math.tointeger(v)
  end
  local function bool(k, v)
    if v == nil then return true end
    if type(v) ~= "boolean" then error({ json = string.format("%s: \"%s\" must be true or false", path, k) }) end
    return v
  end
  local function triple(k, v)
    if type(v) == "number" then v = { v, v, v } end
    if type(v) ~= "table" or #v ~= 3 then error({ json = string.format("%s: \"%s\" must be a list of 3 numbers", path, k) }) end
    return { num(k, v[1]), num(k, v[2], k == "image_std"), num(k, v[3], k == "image_std") }
  end
  local ok, e = pcall(function()
    p.do_resize, p.do_crop = bool("do_resize", j.do_resize), bool("do_center_crop", j.do_center_crop)
    p.do_rescale, p.do_normalize = bool("do_rescale", j.do_rescale), bool("do_normalize", j.do_normalize)
    local size = j.size
    if type(size) == "number" then p.shortest_edge = side("size", size)
    elseif type(size) == "table" then
      if size.shortest_edge ~= nil then p.shortest_edge = side("size.shortest_edge", size.shortest_edge)
      elseif size.height ~= nil and size.width ~= nil then
        p.shortest_edge, p.size = nil, { side("size.height", size.height), side("size.width", size.width) }
      else error({ json = path .. ": \"size\" needs shortest_edge, or height and width" }) end
    elseif size ~= nil then error({ json = path .. ": \"size\" must be a number or an object" }) end
    local crop = j.crop_size
    if type(crop) == "number" then p.crop = { side("crop_size", crop), side("crop_size", crop) }
    elseif type(crop) == "table" then p.crop = { side("crop_size.height", crop.height), side("crop_size.width", crop.width) }
    elseif crop ~= nil then error({ json = path .. ": \"crop_size\" must be a number or an object" }) end
    if j.resample ~= nil then
      local r = j.resample
      if r == 2 then p.method = "bilinear_pil" elseif r == 3 then p.method = "bicubic_pil"
      else error({ json = string.format("%s: \"resample\" = %s is not supported (2 bilinear, 3 bicubic)", path, tostring(r)) }) end
    end
    if j.rescale_factor ~= nil then p.rescale = num("rescale_factor", j.rescale_factor, true) end
    if j.image_mean ~= nil then p.mean = triple("image_mean", j.image_mean) end
    if j.image_std ~= nil then p.std = triple("image_std", j.image_std) end
  end)
  if not ok then
    if type(e) == "table" and e.json then return nil, e.json end
    error(e, 0)
  end
  return p
end

-- ---------------------------------------------------------------- construction

function VideoMAE.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if (o.path == nil) == (o.weights == nil) then bad("give one of 'path' (a model folder) or 'weights' (a .safetensors file)") end
  if o.path ~= nil and type(o.path) ~= "string" then bad("option 'path' must be a folder path") end
  if o.prefix ~= nil and type(o.prefix) ~= "string" then bad("option 'prefix' must be a string") end
  for _, k in ipairs { "config", "preprocessor" } do
    if o[k] ~= nil and o[k] ~= false and type(o[k]) ~= "string" then bad("option '" .. k .. "' must be a path or false") end
  end
  if not SAMPLINGS[o.sampling] then bad("option 'sampling' must be \"original\", \"uniform\" or \"center\", got " .. tostring(o.sampling)) end
  local heads = o.heads ~= nil and C.int(NAME, "heads", o.heads, 1, 4096) or nil
  local frames = o.frames ~= nil and C.int(NAME, "frames", o.frames, 1, 4096) or nil
  local image_size = o.image_size ~= nil and C.int(NAME, "image_size", o.image_size, 1, 8192) or nil
  local eps = o.eps ~= nil and C.num(NAME, "eps", o.eps) or nil
  if eps and not (eps > 0 and eps < 1) then bad("option 'eps' must be in (0, 1)") end
  local seed = o.seed ~= nil and C.int(NAME, "seed", o.seed) or nil
  if o.generator ~= nil and not core.is_generator(o.generator) then bad("option 'generator' must be an oe.Generator") end
  if seed and o.generator then bad("give 'seed' or 'generator', not both") end
  local batch = C.int(NAME, "batch", o.batch, 1, 1024)
  if o.fc_norm ~= nil then C.bool(NAME, "fc_norm", o.fc_norm) end

  local weights = o.weights
  if o.path then
    local st = core.fs_stat(o.path)
    if not st then return nil, o.path .. ": no such folder" end
    if st.is_file then return nil, o.path .. ": option 'path' names a file; give the model folder, or the file as 'weights'" end
    weights = o.path .. "/model.safetensors"
    if not exists(weights) then return nil, o.path .. ": no model.safetensors in the folder" end
  end
  local w, ident, wpath = require("oneencoder.encoders.vit").open_weights(weights)
  if not w then return nil, ident end
  local prefix = o.prefix
  if prefix == nil then
    prefix = ""
    if not core.frozen_has(w, "embeddings.patch_embeddings.projection.weight")
        and core.frozen_has(w, "videomae.embeddings.patch_embeddings.projection.weight") then
      prefix = "videomae."
    end
  end
  local config, pre_path = o.config, o.preprocessor
  if config == nil and type(weights) == "string" and exists(dir_of(wpath) .. "/config.json") then config = dir_of(wpath) .. "/config.json" end
  if pre_path == nil and type(weights) == "string" and exists(dir_of(wpath) .. "/preprocessor_config.json") then
    pre_path = dir_of(wpath) .. "/preprocessor_config.json"
  end
  if config == false then config = nil end
  if pre_path == false then pre_path = nil end
  -- fc_norm sits beside the backbone: "videomae." -> "", "" -> "" (a classification file's head)
  local fc_prefix = prefix:gsub("videomae%.$", "")
  local fc = o.fc_norm
  if fc == nil then fc = prefix == "videomae." and core.frozen_has(w, fc_prefix .. "fc_norm.weight") end
  local model, err = core.videomae_load(w, { prefix = prefix, config = config, heads = heads, eps = eps, frames = frames,
    image_size = image_size, fc_norm_prefix = fc and fc_prefix or nil })
  if not model then return nil, err end
  local cfg = core.videomae_config(model)
  local pre, perr = processor_settings(pre_path, cfg.image_size)
  if not pre then return nil, perr end
  if pre.do_crop and (pre.crop[1] ~= cfg.image_size or pre.crop[2] ~= cfg.image_size) then
    return nil, string.format("%s: crop_size %dx%d, the model takes %dx%d frames (image_size)", pre_path, pre.crop[1], pre.crop[2],
      cfg.image_size, cfg.image_size)
  end

  local self = setmetatable({ name = NAME, modality = "video" }, VideoMAE)
  self.weights, self.model, self.config = w, model, cfg
  self.dim, self.frames, self.tokens = cfg.dim, cfg.frames, cfg.tokens
  self.pre, self.sampling, self.batch = pre, o.sampling, batch
  self.generator = o.generator or (seed and core.generator(seed)) or nil
  self.settings = { weights = wpath, prefix = prefix, config = config, preprocessor = pre_path, heads = cfg.heads,
    eps = cfg.eps, frames = cfg.frames, image_size = cfg.image_size, sampling = o.sampling, seed = seed, fc_norm = fc }
  self.id = string.format("videomae:%s:prefix=%s:heads%d:eps%s:T%d:S%d:pre=%s:sampling=%s%s:v1", ident, prefix, cfg.heads,
    C.fmt(cfg.eps), cfg.frames, cfg.image_size,
    C.fmt({ pre.shortest_edge or 0, pre.size and pre.size[1] or 0, pre.size and pre.size[2] or 0, pre.crop[1], pre.crop[2],
      pre.do_resize, pre.do_crop, pre.do_rescale, pre.do_normalize, pre.rescale, pre.mean[1], pre.mean[2], pre.mean[3],
      pre.std[1], pre.std[2], pre.std[3] }) .. pre.method, o.sampling, seed and (":seed" .. seed) or "")
  self.preprocess = {
    modality = "video", input = string.format("uint8 (%d, H, W, 3) clips (enc:load), or float32 (%d, 3, %d, %d) preprocessed",
      cfg.frames, cfg.frames, cfg.image_size, cfg.image_size),
    frames = cfg.frames, sampling = o.sampling, shortest_edge = pre.shortest_edge, size = pre.size, crop = pre.crop,
    resize = pre.method, rescale = pre.rescale, mean = pre.mean, std = pre.std,
    loader = "oneencoder.video.sample (frames chosen by the sampling, uint8 RGB at the video's size)",
  }
  return self
end

-- ---------------------------------------------------------------- frames

-- indices(n) -> 0-based frame indices for a video of n frames | nil, reason
function VideoMAE:indices(n)
  local T = self.frames
  if math.type(n) ~= "integer" or n < 1 then return nil, "the video has no frames" end
  local idx = {}
  if self.sampling == "uniform" then
    for i = 0, T - 1 do idx[i + 1] = math.floor((i + 0.5) * n / T) end
    return idx
  end
  if self.sampling == "center" then
    if n < T then return nil, string.format("%d frames; sampling \"center\" takes %d consecutive frames (sampling \"uniform\" repeats frames of shorter videos)", n, T) end
    local s = (n - T) // 2
    for i = 0, T - 1 do idx[i + 1] = s + i end
    return idx
  end
  if n < T + 1 then
    return nil, string.format("%d frames; the original sampling takes %d consecutive frames whose end is drawn from " ..
      "randint(%d, frames), so it needs at least %d (the original raises here; sampling \"uniform\" repeats frames of " ..
      "shorter videos)", n, T, T, T + 1)
  end
  local e
  if self.generator then e = core.totable(self.generator:randint(T, n, { 1 }))[1]
  else e = core.totable(core.randint(T, n, { 1 }))[1] end
  for i = 0, T - 1 do idx[i + 1] = e - T + i end
  return idx
end

-- load(path) -> uint8 (T, H, W, 3), info (info.indices: the frames taken) | nil, message
function VideoMAE:load(path)
  if type(path) ~= "string" then error("videomae:load: path must be a string, got " .. type(path), 2) end
  local video = require "oneencoder.video"
  local info, err = video.info(path)
  if not info then return nil, err end
  local idx, why = self:indices(info.frames)
  if not idx then return nil, path .. ": " .. why end
  return video.sample(path, { indices = idx, format = "uint8" })
end

-- item -> true | nil, reason
function VideoMAE:check(item)
  if not core.is_tensor(item) then return nil, "expected a video clip tensor, got " .. type(item) end
  local dt, s, T, S = core.dtype(item), core.shape(item), self.frames, self.config.image_size
  if dt == "uint8" then
    if #s ~= 4 or s[1] ~= T or (s[4] ~= 3 and s[4] ~= 1) then
      return nil, string.format("uint8 clips must be (%d, H, W, 3), got %s", T, C.shape_str(item))
    end
    if s[2] < 1 or s[3] < 1 then return nil, "empty frames " .. C.shape_str(item) end
    return true
  elseif dt == "float32" then
    if #s ~= 4 or s[1] ~= T or s[2] ~= self.config.channels or s[3] ~= S or s[4] ~= S then
      return nil, string.format("float32 clips must be (%d, %d, %d, %d), got %s", T, self.config.channels, S, S, C.shape_str(item))
    end
    return true
  end
  return nil, "clips must be uint8 (T, H, W, 3) or float32 (T, 3, S, S), got " .. dt
end

-- one uint8 (H, W, 3) frame -> float32 (1, 3, S, S), VideoMAEImageProcessor's steps
function VideoMAE:preprocess_frame(img)
  local image = require "oneencoder.image"
  local p = self.pre
  if core.shape(img)[3] == 1 then img = core.cat({ img, img, img }, 3) end
  if p.do_resize then
    if p.shortest_edge then img = image.resize_shortest(img, p.shortest_edge, { method = p.method })
    else img = image.resize(img, p.size[1], p.size[2], { method = p.method }) end
  end
  local s = core.shape(img)
  if p.do_crop then
    if s[1] < p.crop[1] or s[2] < p.crop[2] then
      error(string.format("videomae:encode: frame resized to %dx%d is smaller than the %dx%d crop", s[1], s[2], p.crop[1], p.crop[2]), 0)
    end
    img = image.center_crop(img, p.crop[1], p.crop[2])
    s = core.shape(img)
  end
  if s[1] ~= self.config.image_size or s[2] ~= self.config.image_size then
    error(string.format("videomae:encode: preprocessed frames are %dx%d, the model takes %dx%d", s[1], s[2],
      self.config.image_size, self.config.image_size), 0)
  end
  local x = image.to_float(img, { rescale = p.do_rescale and p.rescale or 1,
    normalize = p.do_normalize and { mean = p.mean, std = p.std } or nil })
  return core.reshape(x, { 1, 3, s[1], s[2] })
end

-- one clip -> float32 (1, T, 3, S, S)
function VideoMAE:preprocess_clip(clip)
  local ok, why = self:check(clip)
  if not ok then C.fail(self, "%s", why) end
  local s = core.shape(clip)
  if core.dtype(clip) == "float32" then return core.reshape(clip, { 1, s[1], s[2], s[3], s[4] }) end
  local parts = {}
  for t = 1, s[1] do parts[t] = self:preprocess_frame(core.reshape(core.narrow(clip, 1, t, 1), { s[2], s[3], s[4] })) end
  local x = core.cat(parts, 1)
  local S = self.config.image_size
  return core.reshape(x, { 1, s[1], 3, S, S })
end

-- batch (list of clips, or float32 (B, T, 3, S, S)) -> list of float32 (b, T, 3, S, S) chunks
local function chunks(self, batch)
  if core.is_tensor(batch) then
    local s = core.shape(batch)
    if core.dtype(batch) ~= "float32" or #s ~= 5 then
      C.fail(self, "expected a list of clips or a float32 (B, T, 3, S, S) batch, got %s %s", core.dtype(batch), C.shape_str(batch))
    end
    return { batch }, s[1]
  end
  if type(batch) ~= "table" then C.fail(self, "expected a list of video clips, got %s", type(batch)) end
  if #batch == 0 then C.fail(self, "empty batch (no clips)") end
  for i, item in ipairs(batch) do
    local ok, why = self:check(item)
    if not ok then C.fail(self, "item %d: %s", i, why) end
  end
  local out = {}
  for i = 1, #batch, self.batch do
    local parts = {}
    for j = i, math.min(i + self.batch - 1, #batch) do parts[#parts + 1] = self:preprocess_clip(batch[j]) end
    out[#out + 1] = #parts == 1 and parts[1] or core.cat(parts, 1)
  end
  return out, #batch
end

local function run(self, x, pooled)
  local y, p = core.videomae_forward(self.model, x, pooled)
  if not y then error("videomae:encode: " .. tostring(p), 0) end
  return y, p
end

-- forward(x float32 (B, T, 3, S, S)) -> (B, tokens, D): the raw model, no preprocessing
function VideoMAE:forward(x) return (run(self, x, false)) end

-- encode(batch) -> features (B, tokens, D) float32, lengths
function VideoMAE:encode(batch)
  local parts, B = chunks(self, batch)
  local ys = {}
  for i, x in ipairs(parts) do ys[i] = run(self, x, false) end
  local y = #ys == 1 and ys[1] or core.cat(ys, 1)
  local lengths = {}
  for b = 1, B do lengths[b] = self.tokens end
  return y, lengths
end

-- pooled(batch) -> (B, D): fc_norm of the token mean (VideoMAEForVideoClassification's pooling)
function VideoMAE:pooled(batch)
  if not self.config.fc_norm then error("videomae:pooled: the model has no fc_norm (use_mean_pooling and fc_norm.* weights)", 2) end
  local parts = chunks(self, batch)
  local ps = {}
  for i, x in ipairs(parts) do
    local _, p = run(self, x, true)
    ps[i] = p
  end
  return #ps == 1 and ps[1] or core.cat(ps, 1)
end

return VideoMAE
