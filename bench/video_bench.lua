-- bench/video_bench.lua: sampling 16 frames from a 30-second 640x360 H.264 clip
-- (made with ffmpeg's testsrc2 and libx264 in a temporary folder) versus decoding
-- every frame of it. Figures: `name: value`.
local oe = require "oneencoder"
local video = require "oneencoder.video"
local core = oe.core

package.path = "bench/?.lua;" .. package.path
local B = require "common"
local median, report = B.median_time, B.report

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local clip = dir .. "/clip.mp4"
assert(os.execute("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=640x360:rate=30 -t 30 " ..
                  "-c:v libx264 -preset veryfast -pix_fmt yuv420p " .. clip .. " >/dev/null 2>&1"))
local info = assert(video.info(clip))
report("video_clip_frames", info.frames, "%d")

local m_seek, m_lin, all
local opts = { frames = 16, size = { 224, 224 }, normalize = "imagenet" }
local t_seek = median(function() _, m_seek = assert(video.sample(clip, opts)) end, 5)
local t_lin = median(function()
  _, m_lin = assert(video.sample(clip, { frames = 16, size = { 224, 224 }, normalize = "imagenet", seek = false }))
end, 3)
local t_all = median(function() all = assert(video.decode_all(clip)) end, 3)
local t_cons = median(function()
  assert(video.sample(clip, { frames = 16, strategy = "consecutive", stride = 4, start = "center", size = { 224, 224 } }))
end, 5)
assert(m_seek.decoded_frames < all.decoded_frames, "the sampled path decoded the whole clip")

report("video_sample16_uniform_seek_ms", t_seek * 1e3, "%.1f")
report("video_sample16_uniform_seek_decoded_frames", m_seek.decoded_frames, "%d")
report("video_sample16_uniform_seek_seeks", m_seek.seeks, "%d")
report("video_sample16_uniform_noseek_ms", t_lin * 1e3, "%.1f")
report("video_sample16_uniform_noseek_decoded_frames", m_lin.decoded_frames, "%d")
report("video_decode_all_ms", t_all * 1e3, "%.1f")
report("video_decode_all_decoded_frames", all.decoded_frames, "%d")
report("video_sample16_consecutive_center_ms", t_cons * 1e3, "%.1f")
report("video_sample_speedup_vs_decode_all", t_all / t_seek, "%.2f")

-- the same clip with a keyframe every second (-g 30) instead of x264's default 250
local clip30 = dir .. "/clip_g30.mp4"
assert(os.execute("ffmpeg -nostdin -v error -y -f lavfi -i testsrc2=size=640x360:rate=30 -t 30 " ..
                  "-c:v libx264 -preset veryfast -g 30 -pix_fmt yuv420p " .. clip30 .. " >/dev/null 2>&1"))
local m30, all30
local t30 = median(function() _, m30 = assert(video.sample(clip30, opts)) end, 5)
local t30all = median(function() all30 = assert(video.decode_all(clip30)) end, 3)
assert(m30.decoded_frames < all30.decoded_frames)
report("video_g30_sample16_uniform_seek_ms", t30 * 1e3, "%.1f")
report("video_g30_sample16_uniform_seek_decoded_frames", m30.decoded_frames, "%d")
report("video_g30_decode_all_ms", t30all * 1e3, "%.1f")
report("video_g30_decode_all_decoded_frames", all30.decoded_frames, "%d")
report("video_g30_sample_speedup_vs_decode_all", t30all / t30, "%.2f")
os.execute("rm -rf " .. dir)
