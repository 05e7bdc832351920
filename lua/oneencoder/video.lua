-- oneencoder.video: probe videos and sample frames with FFmpeg.
--   local video = require "oneencoder.video"
--   local info = video.info("clip.mp4")   -- {duration, fps, frames, width, height, codec, ...}
--   local x, meta = video.sample("clip.mp4", { frames = 16, size = { 224, 224 }, normalize = "imagenet" })
--   -- x: (16, 3, 224, 224) float32; meta.indices: the 0-based frame indices sampled;
--   -- meta.decoded_frames: how many frames were decoded to get them
--   local clip = video.sample("clip.mp4", { frames = 16, strategy = "consecutive", stride = 4,
--                                          start = "random", seed = 7 })
-- Strategies (N = frame count, T = frames wanted; indices are 0-based):
--   uniform      frame floor((i + 0.5) * N / T) for i = 0..T-1 (the centre of T equal segments)
--   consecutive  T frames start, start + stride, ...: start uniform in [0, N - span] from
--                `seed` (or the global RNG: oe.manual_seed) with start = "random", or
--                (N - span) // 2 with start = "center" (span = (T - 1) * stride + 1); clips
--                shorter than the span repeat their last frame (VideoMAE-style sampling)
--   indices      opts.indices = {0, 10, 20}: exactly these frames
-- Frames are converted with libswscale to RGB and resized there (SWS_BILINEAR) to
-- opts.size = {height, width}; format "float" (default) gives (T, 3, H, W) in [0, 1], then
-- normalize = "imagenet" (mean 0.485 0.456 0.406, std 0.229 0.224 0.225) or "half" (0.5, 0.5);
-- format "uint8" gives (T, H, W, 3).
-- The sampler seeks (to the keyframe before a wanted frame) only when that keyframe lies
-- past the current decode position; seek = false decodes forward from the start.
-- N is the video stream's own frame count: the container's count when it has one (MP4,
-- AVI), else the index of the stream's last packet + 1, read by seeking near the end
-- (Matroska/WebM give only a duration, which covers the longest stream: an audio track
-- 0.2 s longer than the video announces 5 frames that do not exist), or a packet count
-- (raw streams). A wanted frame past the end of what decodes, within 2% + 2 frames of
-- N, is the stream's last decoded frame (meta.shown says which frame each slot holds);
-- further past the end is an error. info.truncated: every stream ends well before the
-- duration the container announces (a cut file); explicit indices past its end are
-- refused as truncated, uniform and consecutive sampling plan over the frames present.
-- I/O failures return nil, message naming the file and the reason (strict = true raises).
-- Caps: max_packets (10 million demuxed packets), max_pixels (2^26 per frame),
-- max_output_bytes (2^30: T x 3 x H x W x 4 bytes for float, x 1 for uint8, checked from
-- the header before anything is decoded; pass size to resize the frames).
local core = require "oneencoder.core"

local video = {}

local function result(strict, a, b, ...)
  if a == nil and strict then error(b, 3) end
  return a, b, ...
end

-- info(path, opts) -> {duration, fps, frames, frames_estimated, frames_announced, truncated,
--                      width, height, start_time, codec, container, pix_fmt, has_audio}
--                     | nil, message
-- frames: the video stream's frame count as the sampler plans with it (see above);
-- frames_announced: duration * fps from the container's duration (absent when unknown).
function video.info(path, opts)
  opts = opts or {}
  if type(path) ~= "string" then error("video.info: path must be a string", 2) end
  return result(opts.strict, core.video_info(path, opts))
end

-- sample(path, opts) -> frames tensor, info (+ indices, shown, decoded_frames, packets, seeks)
function video.sample(path, opts)
  opts = opts or {}
  if type(path) ~= "string" then error("video.sample: path must be a string", 2) end
  if type(opts.size) == "number" then opts.size = { opts.size, opts.size } end
  return result(opts.strict, core.video_sample(path, opts))
end

-- decode_all(path) -> {decoded_frames, packets}: decodes every frame (no conversion);
-- the baseline for the sampler in bench/video_bench.lua.
function video.decode_all(path, opts)
  opts = opts or {}
  return result(opts.strict, core.video_decode_all(path, opts))
end

return video
