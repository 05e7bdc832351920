-- media hardening (issue 10, items 5-10): valid media that used to be refused, broken
-- media that used to be accepted. Every file is made here with the ffmpeg CLI (or
-- audio.save_wav) and cut or patched byte by byte; the expected counts are worked out
-- from the bytes written.
local oe = require "oneencoder"
local audio = require "oneencoder.audio"
local video = require "oneencoder.video"
local core = oe.core

local tmp
local function sh(cmd) return os.execute("(" .. cmd .. ") >/dev/null 2>&1") end
local function ffmpeg(args) return sh("ffmpeg -nostdin -v error -y " .. args) end
local function read_file(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function write_file(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
local function flat(t) return core.totable(core.reshape(t, { -1 })) end
local function sine(f, rate, n, amp)
  local t = {}
  for i = 1, n do t[i] = amp * math.sin(2 * math.pi * f * (i - 1) / rate) end
  return oe.tensor(t)
end
-- amplitude of the component at frequency f (least squares on sin and cos), skipping edges
local function tone_amp(x, f, rate, skip)
  local v = flat(x)
  local s, c, n = 0, 0, 0
  for i = skip + 1, #v - skip do
    local a = 2 * math.pi * f * (i - 1) / rate
    s = s + v[i] * math.sin(a); c = c + v[i] * math.cos(a); n = n + 1
  end
  return 2 * math.sqrt(s * s + c * c) / n
end
-- an I/O failure: nil and a message naming the file (and matching each plain pattern)
local function refused(t, msg, path, ...)
  assert.is_nil(t, "expected a refusal for " .. path)
  assert.is_string(msg)
  assert.truthy(msg:find(path, 1, true), msg)
  for _, want in ipairs({ ... }) do assert.truthy(msg:find(want, 1, true), "'" .. want .. "' missing from: " .. msg) end
  return msg
end
-- the same with the call's results last: refused_by(path, { patterns }, audio.load(path))
local function refused_by(path, patterns, t, msg) return refused(t, msg, path, table.unpack(patterns)) end

setup(function()
  tmp = os.tmpname(); os.remove(tmp); assert(sh("mkdir -p " .. tmp))
end)
teardown(function() if tmp then sh("rm -rf " .. tmp) end end)

describe("item 5: audio whose header gives no length", function()
  -- 2 s of a 440 Hz sine at 16 kHz, 16-bit: the reference samples
  local function source()
    local p = tmp .. "/src.wav"
    assert.is_true(audio.save_wav(sine(440, 16000, 32000, 0.5), 16000, p))
    return p, flat((audio.load(p, { rate = 0 })))
  end

  it("a FLAC written to a pipe (STREAMINFO total_samples = 0) loads in full, sample for sample", function()
    local src, ref = source()
    local p = tmp .. "/pipe.flac"
    assert(sh("ffmpeg -nostdin -v error -i " .. src .. " -c:a flac -f flac pipe:1 > " .. p))
    -- bytes 18..35 hold STREAMINFO; its last 36 bits of bytes 21..26 are total_samples
    local s = read_file(p)
    assert.are.equal("fLaC", s:sub(1, 4))
    assert.are.equal(0, s:byte(22) & 0x0F); for i = 23, 26 do assert.are.equal(0, s:byte(i)) end
    local x, rate, notes = audio.load(p, { rate = 0 })
    assert.is_not_nil(x, rate)
    assert.are.equal(16000, rate)
    local v = flat(x)
    assert.are.equal(#ref, #v)
    for i = 1, #ref do assert.are.equal(ref[i], v[i]) end
    assert.is_nil(notes.frames_announced)
    assert.are.equal(32000, notes.frames_decoded)
    assert.is_false(notes.truncated)
    -- info says the length is unknown rather than inventing one
    local info = assert(audio.info(p))
    assert.is_nil(info.frames); assert.is_nil(info.duration)
    -- the same from bytes
    local b = flat((audio.decode(s, { rate = 0 }, "pipe.flac")))
    assert.are.equal(#ref, #b)
  end)

  it("an unknown length is decoded under cap_seconds, not refused from the header", function()
    local src = source()
    local p = tmp .. "/pipe2.flac"
    assert(sh("ffmpeg -nostdin -v error -i " .. src .. " -c:a flac -f flac pipe:1 > " .. p))
    local t, msg = audio.load(p, { cap_seconds = 1.5 })
    refused(t, msg, p, "decoded duration exceeds the cap of 1.5 s")
    assert.is_nil(msg:find("declared", 1, true), msg)
    -- trimming stops decoding before the cap matters
    local y = assert(audio.load(p, { rate = 0, cap_seconds = 1.5, max_seconds = 1 }))
    assert.are.same({ 16000 }, core.shape(y))
  end)

  it("a pipe-written FLAC cut short is refused as truncated, with the decoder's reason", function()
    local src = source()
    local p, cut = tmp .. "/pipe3.flac", tmp .. "/pipe3cut.flac"
    assert(sh("ffmpeg -nostdin -v error -i " .. src .. " -c:a flac -f flac pipe:1 > " .. p))
    local s = read_file(p)
    write_file(cut, s:sub(1, #s - 3000)) -- the last frames, one of them cut in half
    local t, msg = audio.load(cut)
    refused(t, msg, cut, "truncated or corrupt", "lost sync", "allow_truncated")
    local y, _, notes = audio.load(cut, { rate = 0, allow_truncated = true })
    assert.is_not_nil(y)
    local n = core.shape(y)[1]
    assert.is_true(n > 0 and n < 32000, n)
    assert.is_true(notes.truncated)
    assert.truthy(notes.warning:find(cut, 1, true), notes.warning)
  end)

  it("a truncated Ogg/Vorbis is refused for what it is: no end-of-stream page", function()
    local src = source()
    local p, cut = tmp .. "/s.ogg", tmp .. "/cut.ogg"
    assert(ffmpeg("-i " .. src .. " -c:a libvorbis " .. p))
    local s = read_file(p)
    -- the whole file loads (its last page carries the end-of-stream flag)
    local full, _, fnotes = audio.load(p, { rate = 0 })
    assert.are.same({ 32000 }, core.shape(full))
    assert.is_false(fnotes.truncated)
    write_file(cut, s:sub(1, math.floor(#s * 0.9)))
    local t, msg = audio.load(cut)
    refused(t, msg, cut, "truncated or corrupt", "end-of-stream page")
    assert.is_nil(msg:find("declared", 1, true), msg)
    local y, _, notes = audio.load(cut, { rate = 0, allow_truncated = true })
    assert.is_not_nil(y)
    assert.is_true(core.shape(y)[1] < 32000)
    assert.is_true(notes.truncated)
    assert.truthy(notes.warning:find("end-of-stream", 1, true))
    -- the tone survives in what remains
    assert.is_true(math.abs(tone_amp(y, 440, 16000, 2000) - 0.5) < 0.02)
  end)
end)

describe("item 6: MP3 without a Xing/Info header", function()
  it("a constant-bitrate MP3 with -write_xing 0 loads: the header's count is an estimate", function()
    local p = tmp .. "/cbr.mp3"
    assert(ffmpeg("-f lavfi -i sine=frequency=440:sample_rate=44100:duration=3 -c:a libmp3lame -b:a 128k -write_xing 0 " .. p))
    local info = assert(audio.info(p))
    assert.is_true(info.frames_estimated)
    local x, rate, notes = audio.load(p, { rate = 0 })
    assert.is_not_nil(x, rate)
    assert.are.equal(44100, rate)
    local n = core.shape(x)[1]
    -- every MPEG-1 layer III frame decodes to 1152 samples; 3 s plus encoder delay and padding
    assert.are.equal(0, n % 1152)
    assert.is_true(n >= 132300 and n <= 132300 + 2 * 1152, n)
    assert.are.equal(n, notes.frames_decoded)
    assert.is_true(notes.frames_estimated)
    assert.are.equal(info.frames, notes.frames_announced)
    assert.are_not.equal(n, notes.frames_announced) -- the estimate was off: the decoded count stands
    -- lavfi's sine has amplitude 1/8
    assert.is_true(math.abs(tone_amp(x, 440, 44100, 4000) - 0.125) < 0.01)
  end)

  it("an MP3 written to a pipe loads", function()
    local p = tmp .. "/pipe.mp3"
    assert(sh("ffmpeg -nostdin -v error -f lavfi -i sine=frequency=440:sample_rate=16000:duration=2 -c:a libmp3lame -f mp3 pipe:1 > " .. p))
    local x, rate = audio.load(p, { rate = 0 })
    assert.is_not_nil(x, rate)
    assert.is_true(math.abs(core.shape(x)[1] - 32000) <= 2 * 1152)
  end)

  it("an MP3 with a Xing/Info header cut in half is still refused: its count is exact", function()
    local p, cut = tmp .. "/xing.mp3", tmp .. "/xingcut.mp3"
    assert(ffmpeg("-f lavfi -i sine=frequency=440:sample_rate=44100:duration=3 -c:a libmp3lame -b:a 128k " .. p))
    local full = assert(audio.load(p, { rate = 0 }))
    assert.are.same({ 132300 }, core.shape(full)) -- gapless: exactly 3 s
    assert.is_false(assert(audio.info(p)).frames_estimated)
    local s = read_file(p)
    write_file(cut, s:sub(1, #s // 2))
    local t, msg = audio.load(cut)
    refused(t, msg, cut, "header announces 132300 frames")
  end)
end)

describe("item 7: a WAV cut short", function()
  -- audio.save_wav writes a 44-byte header; 16-bit mono: 2 bytes per frame
  it("is refused with an error naming the file and both frame counts", function()
    local p, cut = tmp .. "/full.wav", tmp .. "/half.wav"
    assert.is_true(audio.save_wav(sine(300, 16000, 16000, 0.5), 16000, p))
    local s = read_file(p)
    assert.are.equal(44 + 32000, #s)
    assert.are.equal("data", s:sub(37, 40))
    write_file(cut, s:sub(1, 44 + 16000))
    local t, msg = audio.load(cut)
    refused(t, msg, cut, "truncated", "announces 16000 frames", "holds 8000")
    -- from bytes too
    local t2, msg2 = audio.decode(s:sub(1, 44 + 16000), {}, "half-bytes.wav")
    refused(t2, msg2, "half-bytes.wav", "announces 16000 frames", "holds 8000")
    -- an odd cut (half a frame) counts whole frames
    write_file(cut, s:sub(1, 44 + 16001))
    refused_by(cut, { "holds 8000" }, audio.load(cut))
  end)

  it("allow_truncated loads the frames present, with a warning field", function()
    local p, cut = tmp .. "/full2.wav", tmp .. "/half2.wav"
    assert.is_true(audio.save_wav(sine(300, 16000, 16000, 0.5), 16000, p))
    local s = read_file(p)
    write_file(cut, s:sub(1, 44 + 16000))
    local ref = flat((audio.load(p, { rate = 0 })))
    local y, rate, notes = audio.load(cut, { rate = 0, allow_truncated = true })
    assert.are.equal(16000, rate)
    local v = flat(y)
    assert.are.equal(8000, #v)
    for i = 1, 8000 do assert.are.equal(ref[i], v[i]) end
    assert.is_true(notes.truncated)
    assert.are.equal(16000, notes.frames_announced)
    assert.are.equal(8000, notes.frames_decoded)
    assert.truthy(notes.warning:find(cut, 1, true))
    assert.truthy(notes.warning:find("announces 16000 frames", 1, true))
    -- a whole file carries no warning
    local _, _, ok_notes = audio.load(p)
    assert.is_false(ok_notes.truncated); assert.is_nil(ok_notes.warning)
  end)

  it("a WAV written to a pipe (data size 0xFFFFFFFF: unknown) still loads in full", function()
    local p = tmp .. "/pipe.wav"
    assert(sh("ffmpeg -nostdin -v error -f lavfi -i sine=frequency=440:sample_rate=16000:duration=1 -f wav pipe:1 > " .. p))
    local s = read_file(p)
    local at = s:find("data", 13, true)
    assert.are.equal(0xFFFFFFFF, string.unpack("<I4", s, at + 4))
    local x = assert(audio.load(p, { rate = 0 }))
    assert.are.same({ 16000 }, core.shape(x))
  end)
end)

describe("item 8: video frames past the real end of the stream", function()
  -- frame n: R = n mod 256, G = 255 - (n mod 256), B = 7n mod 256 (lossless FFV1)
  local CODED = "format=rgb24,geq=r='mod(N\\,256)':g='255-mod(N\\,256)':b='mod(7*N\\,256)'"
  local function assert_coded_u8(x, indices)
    local s = core.shape(x)
    for t, n in ipairs(indices) do
      local px = core.to_bytes(core.select(x, 1, t))
      local want = string.char(n % 256, 255 - n % 256, (7 * n) % 256)
      assert.are.equal(string.rep(want, s[2] * s[3]), px, "frame " .. t .. " should be index " .. n)
    end
  end

  it("an MKV whose audio runs 0.2 s longer than its video (the issue's recipe, H.264 + Vorbis)", function()
    local p = tmp .. "/longaudio.mkv"
    assert(ffmpeg("-f lavfi -i testsrc=size=160x120:rate=25:duration=4 -f lavfi -i sine=duration=4.2 -c:v libx264 -c:a libvorbis " .. p))
    local info = assert(video.info(p))
    assert.are.equal(100, info.frames) -- the video stream's, not 4.2 s * 25
    assert.are.equal(105, info.frames_announced)
    assert.is_false(info.truncated)
    local x, m = video.sample(p, { frames = 64 })
    assert.is_not_nil(x, m)
    assert.are.same({ 64, 3, 120, 160 }, core.shape(x))
    assert.are.equal(99, m.indices[64]) -- floor(63.5 * 100 / 64)
    assert.are.same(m.indices, m.shown)
  end)

  it("the same with FFV1: every sampled frame is the one its colours encode", function()
    local p = tmp .. "/longaudio_ffv1.mkv"
    assert(ffmpeg("-f lavfi -i \"color=c=black:s=32x24:r=25:d=4," .. CODED .. "\" -f lavfi -i sine=duration=4.2 " ..
      "-c:v ffv1 -pix_fmt bgr0 -c:a libvorbis " .. p))
    local x, m = video.sample(p, { frames = 64, format = "uint8" })
    assert.is_not_nil(x, m)
    assert.are.equal(100, m.frames)
    assert_coded_u8(x, m.indices)
    -- the last frames, asked for by index
    local y = assert(video.sample(p, { indices = { 99, 98, 0 }, format = "uint8" }))
    assert_coded_u8(y, { 99, 98, 0 })
    assert.is_nil((video.sample(p, { indices = { 100 } })))
  end)

  it("consecutive sampling on a truncated MKV plans over the frames present", function()
    local p, cut = tmp .. "/whole.mkv", tmp .. "/cut.mkv"
    assert(ffmpeg("-f lavfi -i \"color=c=black:s=32x24:r=25:d=4," .. CODED .. "\" -c:v ffv1 -pix_fmt bgr0 " .. p))
    local s = read_file(p)
    write_file(cut, s:sub(1, math.floor(#s * 0.6)))
    local info = assert(video.info(cut))
    assert.is_true(info.truncated)
    assert.are.equal(100, info.frames_announced)
    assert.is_true(info.frames > 30 and info.frames < 70, info.frames)
    for _, o in ipairs({ { frames = 16, strategy = "consecutive", start = "center", format = "uint8" },
                         { frames = 8, strategy = "consecutive", stride = 12, start = "center", format = "uint8" },
                         { frames = 16, format = "uint8" } }) do
      local x, m = video.sample(cut, o)
      assert.is_not_nil(x, m)
      assert.are.equal(o.frames, core.shape(x)[1])
      for i, k in ipairs(m.shown) do assert.is_true(k <= m.indices[i] and k < info.frames) end
      assert_coded_u8(x, m.shown)
    end
    -- an explicit index the container promises but the file no longer holds
    local t, msg = video.sample(cut, { indices = { 95 } })
    refused(t, msg, cut, "truncated")
  end)

  it("the same with H.264 (reordered frames, keyframes every 10 frames)", function()
    local p, cut = tmp .. "/whole264.mkv", tmp .. "/cut264.mkv"
    assert(ffmpeg("-f lavfi -i testsrc=size=64x48:rate=25:duration=4 -c:v libx264 -bf 3 -g 10 " .. p))
    local s = read_file(p)
    write_file(cut, s:sub(1, math.floor(#s * 0.6)))
    local x, m = video.sample(cut, { frames = 16, strategy = "consecutive", start = "center" })
    assert.is_not_nil(x, m)
    assert.are.same({ 16, 3, 48, 64 }, core.shape(x))
  end)
end)

describe("item 9: a cap on the whole output", function()
  it("refuses from the header, naming the file, the planned size and the option", function()
    local p = tmp .. "/big.avi"
    assert(ffmpeg("-f lavfi -i color=c=gray:s=2048x2048:r=25 -frames:v 1 -c:v mjpeg " .. p))
    -- 16 x 3 x 2048 x 2048 float32 = 805306368 bytes
    local t, msg = video.sample(p, { frames = 16, max_output_bytes = 1 << 28 })
    refused(t, msg, p, "805306368 bytes", "max_output_bytes", "268435456")
    assert.is_nil(video.sample(p, { frames = 16, max_output_bytes = 805306367 }))
    -- uint8 is a quarter of it; resizing brings it under the cap
    local x = assert(video.sample(p, { frames = 16, format = "uint8", max_output_bytes = 201326592 }))
    assert.are.same({ 16, 2048, 2048, 3 }, core.shape(x))
    local y = assert(video.sample(p, { frames = 16, size = { 64, 64 }, max_output_bytes = 1 << 20 }))
    assert.are.same({ 16, 3, 64, 64 }, core.shape(y))
    -- mid-gray (128 in full-range JPEG): within the codec's rounding
    assert.is_true(math.abs(core.get(y, 16, 2, 32, 32) - 128 / 255) < 3 / 255)
    assert.has_error(function() video.sample(p, { max_output_bytes = 0 }) end)
  end)

  it("the default (1 GiB) refuses an 8000x8000 clip asked for many frames before allocating", function()
    local p = tmp .. "/huge.avi"
    assert(ffmpeg("-f lavfi -i color=c=gray:s=8000x8000:r=25 -frames:v 1 -c:v mjpeg " .. p))
    local t, msg = video.sample(p, { frames = 100000 })
    refused(t, msg, p, "max_output_bytes", "1073741824", "8000x8000")
    -- 64 x 8000 x 8000 x 3 bytes = 12288000000 bytes of uint8 frames: still over
    local t2, msg2 = video.sample(p, { frames = 64, format = "uint8" })
    refused(t2, msg2, p, "12288000000 bytes")
  end)
end)

describe("item 10: non-finite samples", function()
  local function with_bad(value, at, p)
    local v = flat(sine(200, 8000, 4000, 0.5))
    v[at + 1] = value -- at is 0-based
    assert.is_true(audio.save_wav(oe.tensor(v), 8000, p, "float"))
  end

  it("a float WAV holding NaN or Inf is refused, naming the file and the first bad sample", function()
    local pn, pi = tmp .. "/nan.wav", tmp .. "/inf.wav"
    with_bad(0 / 0, 1234, pn)
    with_bad(math.huge, 3999, pi)
    refused_by(pn, { "NaN", "frame 1234" }, audio.load(pn))
    refused_by(pi, { "+Inf", "frame 3999" }, audio.load(pi, { rate = 0 }))
    -- a second channel: the index is the frame, the channel is named
    local st = oe.stack({ sine(200, 8000, 100, 0.5), sine(300, 8000, 100, 0.5) })
    local v = flat(st); v[100 + 42] = -math.huge -- channel 1 (0-based), frame 41
    local p2 = tmp .. "/inf2.wav"
    assert.is_true(audio.save_wav(oe.reshape(oe.tensor(v), { 2, 100 }), 8000, p2, "float"))
    refused_by(p2, { "-Inf", "frame 41, channel 1" }, audio.load(p2, { mono = false }))
  end)

  it("encode_files with on_error = \"skip\" leaves the file out", function()
    local good, bad = tmp .. "/good.wav", tmp .. "/bad.wav"
    assert.is_true(audio.save_wav(sine(200, 16000, 8000, 0.5), 16000, good, "float"))
    local v = flat(sine(200, 16000, 8000, 0.5)); v[77] = 0 / 0
    assert.is_true(audio.save_wav(oe.tensor(v), 16000, bad, "float"))
    local enc = oe.encoders.create("logmel", { n_mels = 16 })
    local f, lengths, kept, bad_items = oe.encoders.encode_files(enc, { good, bad }, { on_error = "skip" })
    assert.are.same({ 1 }, kept)
    assert.are.equal(1, #bad_items)
    assert.are.equal(2, bad_items[1].index)
    assert.truthy(bad_items[1].reason:find("NaN", 1, true), bad_items[1].reason)
    assert.are.equal(1, core.shape(f)[1]); assert.are.equal(1, #lengths)
    for _, x in ipairs(flat(f)) do assert.is_true(x == x) end
  end)

  it("log_mel raises on a waveform holding NaN", function()
    local v = flat(sine(200, 16000, 1600, 0.5)); v[10] = 0 / 0
    local ok, err = pcall(audio.log_mel, oe.tensor(v), 16000)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("index 9", 1, true), tostring(err))
  end)
end)

describe("playlists naming other files (found by fuzzing)", function()
  -- an HLS playlist or an ffconcat list, named like a video, whose segment is a named pipe:
  -- FFmpeg opened the pipe while probing and blocked forever. Only single-file containers
  -- are opened now; the child runs under `timeout` so a regression fails instead of hanging.
  it("refuses them without opening the files they name", function()
    local H = require "helpers"
    local dir = os.tmpname()
    os.remove(dir)
    assert(sh("mkdir -p " .. dir .. " && mkfifo " .. dir .. "/p.ts"))
    for _, name in ipairs { "hls_playlist_to_fifo.mp4", "concat_list_to_fifo.mkv" } do
      assert(sh("cp fuzz/crashes/" .. name .. " " .. dir .. "/"))
      local code = string.format([[local oe = require "oneencoder"
        local v, e1 = oe.video.info(%q); local a, e2 = oe.audio.load(%q)
        io.write(tostring(v), " ", tostring(a), " ", tostring(e1), " ", tostring(e2))]], dir .. "/" .. name, dir .. "/" .. name)
      local f = dir .. "/child.lua"
      write_file(f, code)
      local p = io.popen("timeout 20 env " .. H.lua_cmd() .. " " .. f .. " 2>&1; echo \" rc=$?\"")
      local out = p:read("a")
      p:close()
      assert.truthy(out:find(" rc=0", 1, true), out)
      assert.truthy(out:find("^nil nil "), out)
      assert.truthy(out:find(name, 1, true), out)
    end
    sh("rm -rf " .. dir)
  end)
end)

describe("WAV headers that hang libsndfile or make FFmpeg allocate gigabytes (found by fuzzing)", function()
  local H = require "helpers"
  -- run code in a child under `timeout` (a regression must fail, not hang); returns its output
  local function child(code)
    local dir = os.tmpname()
    os.remove(dir)
    assert(sh("mkdir -p " .. dir))
    write_file(dir .. "/child.lua", code)
    local p = io.popen("timeout 20 env " .. H.lua_cmd() .. " " .. dir .. "/child.lua 2>&1; echo \" rc=$?\"")
    local out = p:read("a")
    p:close()
    sh("rm -rf " .. dir)
    return out
  end
  local VMHWM = [[local function hwm_mb() for l in io.lines("/proc/self/status") do
      local kb = l:match("^VmHWM:%s*(%d+)"); if kb then return tonumber(kb) // 1024 end end end]]

  -- a LIST/INFO sub-chunk of id and size 0xFFFFFFFF: libsndfile 1.2.0's sf_open never
  -- returns (libsndfile#1118); such WAVs go to FFmpeg without trying libsndfile
  it("answers info, load and decode of a WAV whose LIST sub-chunk overruns its LIST", function()
    local path = "fuzz/crashes/libsndfile_wav_info_hang.wav"
    local out = child(string.format([[local oe = require "oneencoder"
      local f = io.open(%q, "rb"); local bytes = f:read("a"); f:close()
      local i, e1 = oe.audio.info(%q); local a, e2 = oe.audio.load(%q)
      local d, e3 = oe.audio.decode(bytes, { allow_truncated = true, mono = false })
      io.write(tostring(i), " ", tostring(a), " ", tostring(d), "|", e1, "|", e2, "|", e3)]], path, path, path))
    assert.truthy(out:find(" rc=0", 1, true), out)
    assert.truthy(out:find("^nil nil nil|"), out)
    assert.truthy(out:find("libsndfile_wav_info_hang.wav: not a readable audio file", 1, true), out)
    assert.truthy(out:find("LIST sub-chunk overruns its LIST chunk", 1, true), out)
  end)

  it("still reads the samples of a good WAV that carries such a LIST chunk (through FFmpeg)", function()
    local clean_path = tmp .. "/list_clean.wav"
    assert(audio.save_wav(sine(440, 16000, 4000, 0.5), 16000, clean_path))
    local clean = read_file(clean_path)
    assert.are.equal("fmt ", clean:sub(13, 16))
    local fmt_end = 20 + string.unpack("<I4", clean, 17)
    -- LIST (12 bytes: "INFO" + one sub-chunk header announcing 0xFFFFFFFF bytes) after fmt
    local list = "LIST" .. string.pack("<I4", 12) .. "INFO" .. "ISFT" .. string.pack("<I4", 0xFFFFFFFF)
    local body = clean:sub(13, fmt_end) .. list .. clean:sub(fmt_end + 1)
    local bad = "RIFF" .. string.pack("<I4", 4 + #body) .. "WAVE" .. body
    local bad_path = tmp .. "/list_overrun.wav"
    write_file(bad_path, bad)
    local want = assert(audio.load(clean_path, { rate = 16000 }))
    local info = assert(audio.info(bad_path))
    assert.are.equal("ffmpeg", info.backend)
    local got = assert(audio.load(bad_path, { rate = 16000 }))
    assert.are.same(core.shape(want), core.shape(got))
    -- two back ends (libsndfile, FFmpeg): both must decode the same 16-bit samples; half a
    -- sample step (0.5 / 32768) tells any different sample apart and allows for a back end
    -- that scales by 1/32767 or converts through another path
    require("helpers").allclose(got, want, 0.5 / 32768, "samples through FFmpeg")
  end)

  -- a LIST/INFO entry announcing 0x7E00000E bytes: FFmpeg's WAV demuxer allocated the 2 GB
  -- before reading failed; FFmpeg allocations are capped at 1 GiB (av_max_alloc)
  it("refuses a 139-byte WAV announcing a 2 GB INFO entry without allocating it", function()
    local path = "fuzz/crashes/ffmpeg_wav_list_info_2gb.wav"
    local out = child(VMHWM .. string.format([[
      local oe = require "oneencoder"
      local f = io.open(%q, "rb"); local bytes = f:read("a"); f:close()
      local a, e1 = oe.audio.load(%q)
      local d, e2 = oe.audio.decode(bytes, { allow_truncated = true, mono = false })
      io.write(tostring(a), " ", tostring(d), " hwm=", hwm_mb(), "|", e1, "|", e2)]], path, path))
    assert.truthy(out:find(" rc=0", 1, true), out)
    assert.truthy(out:find("^nil nil hwm="), out)
    assert.truthy(out:find("ffmpeg_wav_list_info_2gb.wav: not a readable audio file", 1, true), out)
    local hwm = tonumber(out:match("hwm=(%d+)"))
    assert.truthy(hwm and hwm < 400, "peak RSS " .. tostring(hwm) .. " MB")
  end)
end)
