-- video: probing and frame sampling on clips made inside the spec with the ffmpeg CLI,
-- whose frame colours encode the frame index (FFV1 lossless, H.264 lossless with
-- keyframes every 10 frames, MJPEG lossy), plus bad input.
local oe = require "oneencoder"
local video = require "oneencoder.video"
local audio = require "oneencoder.audio"
local core = oe.core

local tmp
local function sh(cmd) return os.execute(cmd .. " >/dev/null 2>&1") end
local function ffmpeg(args) return sh("ffmpeg -nostdin -v error -y " .. args) end
local function read_file(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function write_file(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end

-- frame n: R = n mod 256, G = 255 - (n mod 256), B = 7n mod 256
local CODED = "format=rgb24,geq=r='mod(N\\,256)':g='255-mod(N\\,256)':b='mod(7*N\\,256)'"
-- coarser code for lossy codecs: R = 4n mod 256
local COARSE = "format=rgb24,geq=r='mod(4*N\\,256)':g='128':b='64'"
local FFV1, H264, MJPEG, RAW

setup(function()
  tmp = os.tmpname(); os.remove(tmp); assert(sh("mkdir -p " .. tmp))
  FFV1, H264, MJPEG, RAW = tmp .. "/idx.mkv", tmp .. "/idx.mp4", tmp .. "/idx.avi", tmp .. "/idx.h264"
  assert(ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=25:d=4," .. CODED .. "\" -c:v ffv1 -pix_fmt bgr0 " .. FFV1))
  assert(ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=25:d=12," .. COARSE .. "\" -c:v libx264 -qp 0 -bf 3 -pix_fmt yuv444p -g 10 " .. H264))
  assert(ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=25:d=2," .. COARSE .. "\" -c:v mjpeg -q:v 2 " .. MJPEG))
  assert(ffmpeg("-f lavfi -i \"color=c=black:s=64x48:r=25:d=2," .. COARSE .. "\" -c:v libx264 -qp 0 -pix_fmt yuv444p -g 10 -f h264 " .. RAW))
end)
teardown(function() if tmp then sh("rm -rf " .. tmp) end end)

-- every pixel of frame t of a uint8 (T, H, W, 3) tensor
local function frame_pixels(x, t)
  local s = core.shape(x)
  local bytes = core.to_bytes(core.select(x, 1, t))
  return bytes, s[2] * s[3]
end
local function assert_coded_u8(x, indices)
  for t, n in ipairs(indices) do
    local px, count = frame_pixels(x, t)
    local want = string.char(n % 256, 255 - n % 256, (7 * n) % 256)
    assert.are.equal(string.rep(want, count), px, "frame " .. t .. " should be index " .. n)
  end
end

describe("video.info", function()
  it("reports size, fps, frame count, duration and codec", function()
    local i = assert(video.info(FFV1))
    assert.are.equal(64, i.width); assert.are.equal(48, i.height)
    assert.are.equal(25, i.fps); assert.are.equal(100, i.frames)
    assert.are.equal(4, i.duration); assert.are.equal("ffv1", i.codec)
    assert.is_true(i.frames_estimated) -- Matroska has no frame count: duration * fps
    local h = assert(video.info(H264))
    assert.are.equal(300, h.frames); assert.is_false(h.frames_estimated)
    assert.are.equal("h264", h.codec); assert.are.equal(12, h.duration)
    -- a raw H.264 stream has neither: its packets are counted
    local r = assert(video.info(RAW))
    assert.are.equal(50, r.frames)
  end)
end)

describe("video.sample", function()
  it("uniform sampling returns the frames whose index the colours encode (FFV1, exact)", function()
    local x, m = assert(video.sample(FFV1, { frames = 8, format = "uint8" }))
    assert.are.same({ 8, 48, 64, 3 }, core.shape(x))
    assert.are.same({ 6, 18, 31, 43, 56, 68, 81, 93 }, m.indices)
    assert.are.same(m.indices, m.shown)
    assert_coded_u8(x, m.indices)
  end)

  it("explicit indices, in any order and repeated", function()
    local x, m = assert(video.sample(FFV1, { indices = { 99, 0, 50, 50, 7 }, format = "uint8" }))
    assert.are.same({ 99, 0, 50, 50, 7 }, m.indices)
    assert_coded_u8(x, { 99, 0, 50, 50, 7 })
    assert.is_nil(video.sample(FFV1, { indices = { 100 } }))
  end)

  it("float (T, 3, H, W) output resized with swscale, normalised with the imagenet and half presets", function()
    local x = assert(video.sample(FFV1, { indices = { 40 }, size = { 20, 30 } }))
    assert.are.same({ 1, 3, 20, 30 }, core.shape(x))
    local want = { 40, 215, 24 }
    for c = 1, 3 do
      for _, yx in ipairs({ { 1, 1 }, { 10, 15 }, { 20, 30 } }) do
        assert.is_true(math.abs(core.get(x, 1, c, yx[1], yx[2]) - want[c] / 255) < 1e-6)
      end
    end
    local mean, std = { 0.485, 0.456, 0.406 }, { 0.229, 0.224, 0.225 }
    local xi = assert(video.sample(FFV1, { indices = { 40 }, size = { 20, 30 }, normalize = "imagenet" }))
    local xh = assert(video.sample(FFV1, { indices = { 40 }, size = { 20, 30 }, normalize = "half" }))
    for c = 1, 3 do
      assert.is_true(math.abs(core.get(xi, 1, c, 5, 5) - (want[c] / 255 - mean[c]) / std[c]) < 1e-5)
      assert.is_true(math.abs(core.get(xh, 1, c, 5, 5) - (want[c] / 255 - 0.5) / 0.5) < 1e-5)
    end
  end)

  it("consecutive frames at a stride: seeded random start (reproducible) or centred", function()
    local _, a = assert(video.sample(FFV1, { frames = 4, strategy = "consecutive", stride = 3, seed = 11, format = "uint8" }))
    local _, b = assert(video.sample(FFV1, { frames = 4, strategy = "consecutive", stride = 3, seed = 11, format = "uint8" }))
    assert.are.same(a.indices, b.indices)
    for i = 2, 4 do assert.are.equal(a.indices[1] + 3 * (i - 1), a.indices[i]) end
    assert.is_true(a.indices[1] >= 0 and a.indices[4] <= 99)
    local starts = {}
    for s = 1, 8 do
      local _, m = assert(video.sample(FFV1, { frames = 4, strategy = "consecutive", stride = 3, seed = s, format = "uint8" }))
      starts[m.indices[1]] = true
    end
    local distinct = 0
    for _ in pairs(starts) do distinct = distinct + 1 end
    assert.is_true(distinct >= 3)
    local x, c = assert(video.sample(FFV1, { frames = 16, strategy = "consecutive", stride = 4, start = "center", format = "uint8" }))
    -- span 61 of 100 frames: start (100 - 61) // 2 = 19
    assert.are.equal(19, c.indices[1]); assert.are.equal(79, c.indices[16])
    assert_coded_u8(x, c.indices)
    -- a span longer than the clip repeats the last frame
    local _, l = assert(video.sample(FFV1, { frames = 5, strategy = "consecutive", stride = 40, start = "center", format = "uint8" }))
    assert.are.same({ 0, 40, 80, 99, 99 }, l.indices)
    -- without a seed the global RNG decides, reproducibly after manual_seed
    oe.manual_seed(3)
    local _, g1 = video.sample(FFV1, { frames = 4, strategy = "consecutive" })
    oe.manual_seed(3)
    local _, g2 = video.sample(FFV1, { frames = 4, strategy = "consecutive" })
    assert.are.same(g1.indices, g2.indices)
  end)

  it("seeks in H.264 instead of decoding everything, and returns the same frames as decoding forward", function()
    local x, m = assert(video.sample(H264, { frames = 6, format = "uint8" }))
    assert.are.same({ 25, 75, 125, 175, 225, 275 }, m.indices)
    assert.are.same(m.indices, m.shown)
    assert.is_true(m.seeks >= 3, "seeks " .. m.seeks)
    assert.is_true(m.decoded_frames < 150, "decoded " .. m.decoded_frames .. " of 300")
    local y, n = assert(video.sample(H264, { frames = 6, format = "uint8", seek = false }))
    assert.are.equal(0, n.seeks)
    assert.is_true(n.decoded_frames >= 276)
    assert.are.equal(core.to_bytes(y), core.to_bytes(x))
    for t, k in ipairs(m.indices) do
      local r = core.get(x, t, 24, 32, 1)
      assert.is_true(math.abs(r - (4 * k) % 256) <= 2, "frame " .. k .. " red " .. r)
    end
    local all = assert(video.decode_all(H264))
    assert.are.equal(300, all.decoded_frames)
  end)

  it("reads MJPEG in AVI and a raw H.264 stream", function()
    local x, m = assert(video.sample(MJPEG, { frames = 5, format = "uint8" }))
    assert.are.equal(50, m.frames)
    for t, k in ipairs(m.indices) do
      assert.is_true(math.abs(core.get(x, t, 24, 32, 1) - (4 * k) % 256) <= 6)
    end
    local y, r = assert(video.sample(RAW, { frames = 5, format = "uint8" }))
    for t, k in ipairs(r.indices) do
      assert.is_true(math.abs(core.get(y, t, 24, 32, 1) - (4 * k) % 256) <= 2)
    end
  end)

  it("rejects bad arguments with an error", function()
    assert.has_error(function() video.sample(FFV1, { strategy = "random" }) end)
    assert.has_error(function() video.sample(FFV1, { frames = 0 }) end)
    assert.has_error(function() video.sample(FFV1, { size = { 0, 10 } }) end)
    assert.has_error(function() video.sample(FFV1, { normalize = "clip" }) end)
    assert.has_error(function() video.sample(FFV1, { format = "int8" }) end)
  end)
end)

describe("video bad input", function()
  local function bad(path, opts, pattern)
    local t, msg = video.sample(path, opts)
    assert.is_nil(t)
    assert.is_string(msg)
    assert.truthy(msg:find(path, 1, true), msg)
    if pattern then assert.truthy(msg:find(pattern), msg) end
    local i, msg2 = video.info(path)
    if not (opts and opts.max_packets) then assert.is_nil(i); assert.is_string(msg2) end
    return msg
  end

  it("missing, empty, directory, garbage, text and an image named .mp4", function()
    bad(tmp .. "/nope.mp4", nil, "No such file")
    write_file(tmp .. "/empty.mp4", "")
    bad(tmp .. "/empty.mp4", nil, "empty")
    bad(tmp, nil, "directory")
    local g = {}
    for i = 1, 5000 do g[i] = string.char((i * 131 + 7) % 256) end
    write_file(tmp .. "/garbage.mp4", table.concat(g))
    bad(tmp .. "/garbage.mp4")
    write_file(tmp .. "/text.mp4", "not a video at all\n")
    bad(tmp .. "/text.mp4")
  end)

  it("audio only: no video stream", function()
    local p = tmp .. "/a.wav"
    assert.is_true(audio.save_wav(oe.zeros(800), 8000, p))
    bad(p, nil, "no video stream")
  end)

  it("truncated files", function()
    local s = read_file(H264)
    write_file(tmp .. "/cut.mp4", s:sub(1, #s // 2)) -- moov atom at the end: gone
    bad(tmp .. "/cut.mp4")
    local m = read_file(FFV1)
    write_file(tmp .. "/cut.mkv", m:sub(1, math.floor(#m * 0.6)))
    local t, msg = video.sample(tmp .. "/cut.mkv", { indices = { 95 } })
    assert.is_nil(t)
    assert.truthy(msg:find("truncated"), msg)
    -- the frames that remain still decode
    local x = assert(video.sample(tmp .. "/cut.mkv", { indices = { 5 }, format = "uint8" }))
    assert_coded_u8(x, { 5 })
  end)

  it("corrupt data never crashes", function()
    local s = read_file(H264)
    local mid = #s // 3
    write_file(tmp .. "/corrupt.mp4", s:sub(1, mid) .. string.rep("\0\255", 200) .. s:sub(mid + 401))
    local x, m = video.sample(tmp .. "/corrupt.mp4", { frames = 8, format = "uint8" })
    assert.is_true((x == nil and type(m) == "string") or core.shape(x)[1] == 8)
  end)

  it("caps: packets (decoding that would not end), pixels; strict mode raises", function()
    bad(H264, { max_packets = 20 }, "max_packets")
    local t, msg = video.sample(FFV1, { max_pixels = 1000 })
    assert.is_nil(t); assert.truthy(msg:find("frame size"), msg)
    assert.has_error(function() video.sample(tmp .. "/nope.mp4", { strict = true }) end)
    assert.has_error(function() video.info(tmp .. "/nope.mp4", { strict = true }) end)
  end)
end)
