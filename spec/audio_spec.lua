-- audio: decoding (libsndfile, FFmpeg), resampling, normalisation, log-mel against
-- torchaudio fixtures (tools/gen_audio_fixtures.py), WAV writing, bad input.
local oe = require "oneencoder"
local audio = require "oneencoder.audio"
local core = oe.core

local FIX = "spec/fixtures/audio/"

local function flat(t) return core.totable(core.reshape(t, { -1 })) end
local function read_file(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s
end
local function write_file(p, s)
  local f = assert(io.open(p, "wb")); f:write(s); f:close()
end
local function load_f32(p, shape) return oe.from_bytes(read_file(p), "float32", shape) end
local function sine(f, rate, n, amp, phase)
  local t = {}
  for i = 1, n do t[i] = amp * math.sin(2 * math.pi * f * (i - 1) / rate + (phase or 0)) end
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
local function rms(x, skip)
  local v = flat(x); local ss, n = 0, 0
  for i = skip + 1, #v - skip do ss = ss + v[i] * v[i]; n = n + 1 end
  return math.sqrt(ss / n)
end

local tmp
local function sh(cmd) return os.execute(cmd .. " >/dev/null 2>&1") end
local function ffmpeg(args) return sh("ffmpeg -nostdin -v error -y " .. args) end

setup(function()
  tmp = os.tmpname(); os.remove(tmp); assert(sh("mkdir -p " .. tmp))
end)
teardown(function() if tmp then sh("rm -rf " .. tmp) end end)

describe("audio.log_mel against torchaudio", function()
  local meta = dofile(FIX .. "cases.lua")
  local wave = load_f32(FIX .. "wave.f32", { meta.samples })
  for _, case in ipairs(meta.cases) do
    it("matches MelSpectrogram for case " .. case.name .. " within 1e-4 relative (before the log)", function()
      local ref = flat(load_f32(FIX .. case.name .. ".f32", case.shape))
      local got = audio.log_mel(wave, meta.rate, case.opts)
      assert.are.same(case.shape, core.shape(got))
      local g = flat(got)
      -- a relative error r on the mel values (plus log offset) is an absolute error
      -- log(1 + r) on their natural log: compare in whichever domain the case outputs
      local o = case.opts
      local scale = ({ ln = 1, log10 = 1 / math.log(10) })[o.log or "ln"]
      if o.preset == "whisper" then scale = 1 / (4 * math.log(10)) end
      local worst = 0
      if scale then
        for i = 1, #ref do worst = math.max(worst, math.abs(g[i] - ref[i]) / scale) end
      else -- linear output: relative, floored at 1e-6 of the largest value
        local maxabs = 0
        for i = 1, #ref do maxabs = math.max(maxabs, math.abs(ref[i])) end
        for i = 1, #ref do
          worst = math.max(worst, math.abs(g[i] - ref[i]) / math.max(math.abs(ref[i]), 1e-6 * maxabs))
        end
      end
      assert.is_true(worst <= 1e-4, case.name .. ": worst relative error " .. worst)
      assert.is_true(worst > 0 or #ref == 0) -- float32 vs float64: never bit-identical
    end)
  end

  it("builds the slaney filterbank like torchaudio.functional.melscale_fbanks", function()
    local ref = flat(load_f32(FIX .. "fbank.f32", meta.fbank.shape))
    local fb = audio.mel_filterbank(16000, meta.fbank.opts)
    assert.are.same(meta.fbank.shape, core.shape(fb))
    local g = flat(fb)
    for i = 1, #ref do assert.is_true(math.abs(g[i] - ref[i]) <= 1e-6 + 1e-5 * math.abs(ref[i])) end
  end)

  it("batches clips: each row equals the single-clip result; shorter clips are zero-padded", function()
    local short = core.narrow(wave, 1, 1, 2500)
    local batch, frames = audio.log_mel_batch({ wave, short }, 16000)
    assert.are.same({ 2, 80, 26 }, core.shape(batch))
    assert.are.same({ 26, 16 }, frames)
    local one = flat(audio.log_mel(wave, 16000))
    local row = flat(core.select(batch, 1, 1))
    for i = 1, #one do assert.are.equal(one[i], row[i]) end
    -- the short clip is computed as if zero-padded to 4000 samples
    local padded = oe.zeros(4000); core.set_slice(padded, 1, 1, short)
    local ref2 = flat(audio.log_mel(padded, 16000))
    local row2 = flat(core.select(batch, 1, 2))
    for i = 1, #ref2 do assert.are.equal(ref2[i], row2[i]) end
    -- a (B, T) tensor works too
    local bt = oe.stack({ wave, wave })
    local b2 = audio.log_mel_batch(bt, 16000)
    local r = flat(core.select(b2, 1, 2))
    for i = 1, #one do assert.are.equal(one[i], r[i]) end
  end)

  it("a pure tone peaks in the mel band holding its frequency", function()
    local x = sine(1000, 16000, 8000, 0.5)
    local m = audio.log_mel(x, 16000, { n_mels = 40, log = "none" })
    local fb = flat(audio.mel_filterbank(16000, { n_mels = 40 }))
    -- band with the largest weight at the 1000 Hz bin (bin 25 of 201)
    local best, bi = -1, 0
    for mm = 1, 40 do local w = fb[25 * 40 + mm]; if w > best then best, bi = w, mm end end
    local col = {}
    for mm = 1, 40 do col[mm] = core.get(m, mm, 20) end
    local cb, ci = -1, 0
    for mm = 1, 40 do if col[mm] > cb then cb, ci = col[mm], mm end end
    assert.are.equal(bi, ci)
  end)

  it("rejects bad options with an error naming them", function()
    assert.has_error(function() audio.log_mel(wave, 16000, { n_fft = 1 }) end)
    assert.has_error(function() audio.log_mel(wave, 16000, { mel_scale = "bark" }) end)
    assert.has_error(function() audio.log_mel(wave, 16000, { f_max = 9000 }) end)
    assert.has_error(function() audio.log_mel(oe.zeros(0), 16000) end)
    assert.has_error(function() audio.log_mel(oe.zeros(100), 16000, { center = false }) end)
  end)
end)

describe("audio.save_wav and audio.load", function()
  it("round-trips float WAV exactly and 16-bit PCM to the quantised values", function()
    local x = sine(440, 16000, 16000, 0.6)
    local pf, pi = tmp .. "/f.wav", tmp .. "/i.wav"
    assert.is_true(audio.save_wav(x, 16000, pf, "float"))
    assert.is_true(audio.save_wav(x, 16000, pi))
    local yf, rf = audio.load(pf)
    assert.are.equal(16000, rf)
    assert.are.same({ 16000 }, core.shape(yf))
    local a, b = flat(x), flat(yf)
    for i = 1, #a do assert.are.equal(a[i], b[i]) end
    local yi = flat((audio.load(pi)))
    for i = 1, #a do
      -- rounded to the nearest 16-bit step (ties are not hit by this sine)
      local q = math.min(32767, math.floor(a[i] * 32768 + 0.5))
      assert.are.equal(q / 32768, yi[i])
    end
    local info = audio.info(pi)
    assert.are.equal(16000, info.rate); assert.are.equal(1, info.channels)
    assert.are.equal(16000, info.frames); assert.are.equal(1.0, info.duration)
    assert.are.equal("sndfile", info.backend)
    assert.truthy(info.format:find("WAV"))
  end)

  it("keeps channels as (C, T) or mixes them down to mono", function()
    local l, r = sine(300, 8000, 800, 0.5), sine(500, 8000, 800, 0.25)
    local st = oe.stack({ l, r })
    local p = tmp .. "/st.wav"
    assert.is_true(audio.save_wav(st, 8000, p, "float"))
    local y = audio.load(p, { rate = 0, mono = false })
    assert.are.same({ 2, 800 }, core.shape(y))
    local a, b = flat(st), flat(y)
    for i = 1, #a do assert.are.equal(a[i], b[i]) end
    local m = flat((audio.load(p, { rate = 0 })))
    local lv, rv = flat(l), flat(r)
    for i = 1, 800 do assert.is_true(math.abs(m[i] - (lv[i] + rv[i]) / 2) < 1e-7) end
    assert.are.equal(2, audio.info(p).channels)
  end)

  it("decodes from a byte string exactly like from the path", function()
    local p = tmp .. "/b.wav"
    assert.is_true(audio.save_wav(sine(200, 8000, 1000, 0.3), 8000, p, "float"))
    local a = flat((audio.load(p)))
    local b, rate = audio.decode(read_file(p), {}, "b.wav")
    assert.are.equal(16000, rate)
    local bb = flat(b)
    assert.are.equal(#a, #bb)
    for i = 1, #a do assert.are.equal(a[i], bb[i]) end
  end)

  it("reads FLAC and OGG (libsndfile) and AAC in MP4 and FLAC in MKV with video (FFmpeg)", function()
    local x = sine(440, 16000, 16000, 0.5)
    local p = tmp .. "/s.wav"
    assert.is_true(audio.save_wav(x, 16000, p))
    local ref = flat((audio.load(p)))
    assert(ffmpeg("-i " .. p .. " -c:a flac " .. tmp .. "/s.flac"))
    assert(ffmpeg("-i " .. p .. " -c:a libvorbis " .. tmp .. "/s.ogg") or ffmpeg("-i " .. p .. " -c:a vorbis -strict -2 -ac 2 " .. tmp .. "/s.ogg"))
    assert(ffmpeg("-i " .. p .. " -c:a aac -b:a 128k " .. tmp .. "/s.m4a"))
    assert(ffmpeg("-f lavfi -i color=c=red:s=32x32:r=10 -i " .. p .. " -t 1 -c:v ffv1 -c:a flac -shortest " .. tmp .. "/s.mkv"))
    -- lossless: identical samples
    local fl = flat((audio.load(tmp .. "/s.flac")))
    for i = 1, #ref do assert.are.equal(ref[i], fl[i]) end
    assert.are.equal("sndfile", audio.info(tmp .. "/s.flac").backend)
    local mk = flat((audio.load(tmp .. "/s.mkv")))
    assert.are.equal(#ref, #mk)
    for i = 1, #ref do assert.are.equal(ref[i], mk[i]) end
    -- the same through FFmpeg's memory input
    local mb = flat((audio.decode(read_file(tmp .. "/s.mkv"), {}, "s.mkv")))
    assert.are.equal(#ref, #mb)
    for i = 1, #ref do assert.are.equal(ref[i], mb[i]) end
    assert.are.equal("ffmpeg", audio.info_bytes(read_file(tmp .. "/s.mkv")).backend)
    local mi = audio.info(tmp .. "/s.mkv")
    assert.are.equal("ffmpeg", mi.backend); assert.are.equal(16000, mi.rate)
    -- lossy: the tone keeps frequency and amplitude
    for _, ext in ipairs({ "ogg", "m4a" }) do
      local y = audio.load(tmp .. "/s." .. ext)
      assert.is_true(math.abs(tone_amp(y, 440, 16000, 2000) - 0.5) < 0.02, ext)
      assert.is_true(tone_amp(y, 1000, 16000, 2000) < 0.01, ext)
    end
    assert.are.equal("ffmpeg", audio.info(tmp .. "/s.m4a").backend)
  end)

  it("trims to max_seconds, zero-pads with pad = true", function()
    local p = tmp .. "/t.wav"
    assert.is_true(audio.save_wav(sine(100, 8000, 8000, 0.5), 8000, p, "float"))
    local full = flat((audio.load(p, { rate = 0 })))
    local y = audio.load(p, { rate = 0, max_seconds = 0.25 })
    assert.are.same({ 2000 }, core.shape(y))
    local v = flat(y)
    for i = 1, 2000 do assert.are.equal(full[i], v[i]) end
    local z = audio.load(p, { rate = 0, max_seconds = 1.5, pad = true })
    assert.are.same({ 12000 }, core.shape(z))
    local w = flat(z)
    for i = 1, 8000 do assert.are.equal(full[i], w[i]) end
    for i = 8001, 12000 do assert.are.equal(0, w[i]) end
    -- trimming before resampling gives the same samples as resampling everything
    local a = flat((audio.load(p, { rate = 16000 })))
    local b = flat((audio.load(p, { rate = 16000, max_seconds = 0.5 })))
    assert.are.equal(8000, #b)
    for i = 1, 8000 do assert.is_true(math.abs(a[i] - b[i]) < 1e-6) end
  end)

  it("normalises like Wav2Vec2FeatureExtractor (zero mean, unit variance, eps 1e-7) before padding", function()
    local p = tmp .. "/n.wav"
    local t = {}
    for i = 1, 4000 do t[i] = 0.3 * math.sin(i * 0.05) + 0.1 + 0.01 * (i % 7) end
    assert.is_true(audio.save_wav(oe.tensor(t), 8000, p, "float"))
    local raw = flat((audio.load(p, { rate = 0 })))
    local s, n = 0, #raw
    for i = 1, n do s = s + raw[i] end
    local mean = s / n
    local ss = 0
    for i = 1, n do ss = ss + (raw[i] - mean) ^ 2 end
    local sd = math.sqrt(ss / n + 1e-7)
    local y = flat((audio.load(p, { rate = 0, normalize = "wav2vec2", max_seconds = 0.75, pad = true })))
    assert.are.equal(6000, #y)
    for i = 1, n do assert.is_true(math.abs(y[i] - (raw[i] - mean) / sd) < 1e-5) end
    for i = n + 1, 6000 do assert.are.equal(0, y[i]) end
  end)
end)

describe("audio.resample", function()
  it("keeps a sine's frequency and amplitude (44.1 kHz -> 16 kHz and 8 kHz -> 22.05 kHz)", function()
    local y = audio.resample(sine(440, 44100, 44100, 0.5), 44100, 16000)
    assert.are.same({ 16000 }, core.shape(y))
    assert.is_true(math.abs(tone_amp(y, 440, 16000, 500) - 0.5) < 1e-3)
    assert.is_true(tone_amp(y, 430, 16000, 500) < 0.02)
    -- the phase is kept too: sample i sits at time i / 16000
    local ref = flat(sine(440, 16000, 16000, 0.5)); local v = flat(y)
    for i = 500, 15500 do assert.is_true(math.abs(v[i] - ref[i]) < 2e-3) end
    local u = audio.resample(sine(1000, 8000, 8000, 0.25), 8000, 22050)
    assert.are.same({ 22050 }, core.shape(u))
    assert.is_true(math.abs(tone_amp(u, 1000, 22050, 1000) - 0.25) < 1e-3)
  end)

  it("attenuates tones above the new Nyquist by at least 60 dB", function()
    for _, f in ipairs({ 8300, 10000, 15000, 20000 }) do
      local y = audio.resample(sine(f, 44100, 44100, 0.5), 44100, 16000)
      local db = 20 * math.log(rms(y, 500) / (0.5 / math.sqrt(2)), 10)
      assert.is_true(db <= -60, f .. " Hz: " .. db .. " dB")
    end
  end)

  it("resamples (C, T) channel by channel and checks its arguments", function()
    local st = oe.stack({ sine(300, 16000, 1600, 0.5), sine(600, 16000, 1600, 0.2) })
    local y = audio.resample(st, 16000, 8000)
    assert.are.same({ 2, 800 }, core.shape(y))
    assert.is_true(math.abs(tone_amp(core.select(y, 1, 2), 600, 8000, 100) - 0.2) < 2e-3)
    assert.has_error(function() audio.resample(st, 0, 8000) end)
    assert.has_error(function() audio.resample(oe.zeros(2, 2, 2), 16000, 8000) end)
  end)
end)

describe("audio bad input", function()
  local function bad(path, opts, pattern)
    local t, msg = audio.load(path, opts)
    assert.is_nil(t)
    assert.is_string(msg)
    assert.truthy(msg:find(path, 1, true), msg)
    if pattern then assert.truthy(msg:find(pattern), msg) end
    return msg
  end

  it("missing, empty, directory", function()
    bad(tmp .. "/nope.wav", nil, "No such file")
    write_file(tmp .. "/empty.wav", "")
    bad(tmp .. "/empty.wav", nil, "empty")
    bad(tmp, nil, "directory")
    assert.is_nil((audio.info(tmp .. "/empty.wav")))
    local t, msg = audio.decode("", {}, "buf")
    assert.is_nil(t); assert.truthy(msg:find("buf"))
  end)

  it("garbage, text and a PNG named .wav; a WAV named .mp3 still loads", function()
    local g = {}
    for i = 1, 3000 do g[i] = string.char((i * 37 + 11) % 256) end
    write_file(tmp .. "/garbage.wav", table.concat(g))
    bad(tmp .. "/garbage.wav", nil, "not a readable audio file")
    write_file(tmp .. "/text.wav", "hello, this is not audio\n")
    bad(tmp .. "/text.wav")
    write_file(tmp .. "/img.wav", "\137PNG\r\n\26\n" .. string.rep("\0", 100))
    bad(tmp .. "/img.wav")
    local p = tmp .. "/real.mp3"
    assert.is_true(audio.save_wav(sine(100, 8000, 800, 0.5), 8000, p, "float"))
    local y = audio.load(p, { rate = 0 })
    assert.are.same({ 800 }, core.shape(y))
  end)

  it("truncated files: a WAV cut in its header, a FLAC cut in its stream", function()
    local p = tmp .. "/full.wav"
    assert.is_true(audio.save_wav(sine(440, 16000, 16000, 0.5), 16000, p))
    local s = read_file(p)
    write_file(tmp .. "/cut.wav", s:sub(1, 30))
    bad(tmp .. "/cut.wav")
    write_file(tmp .. "/hdr.wav", s:sub(1, 44))
    bad(tmp .. "/hdr.wav", nil, "no audio frames")
    assert(ffmpeg("-i " .. p .. " -c:a flac " .. tmp .. "/full.flac"))
    local f = read_file(tmp .. "/full.flac")
    write_file(tmp .. "/cut.flac", f:sub(1, #f // 2))
    bad(tmp .. "/cut.flac", nil, "flac")
    -- corrupt stream: flipped bytes in the middle of the FLAC frames
    local mid = #f // 2
    write_file(tmp .. "/corrupt.flac", f:sub(1, mid) .. string.rep("\255", 64) .. f:sub(mid + 65))
    local t, msg = audio.load(tmp .. "/corrupt.flac")
    -- either a clean error or the decodable samples, never a crash
    assert.is_true((t == nil and type(msg) == "string") or core.shape(t)[1] > 0)
  end)

  it("zero frames and absurd durations", function()
    local p = tmp .. "/zero.wav"
    assert.is_true(audio.save_wav(oe.zeros(0), 16000, p))
    bad(p, nil, "no audio frames")
    local q = tmp .. "/long.wav"
    assert.is_true(audio.save_wav(sine(100, 8000, 8000, 0.5), 8000, q))
    bad(q, { cap_seconds = 0.5 }, "exceeds the cap")
    -- a header declaring an absurd rate
    local s = read_file(q)
    local hacked = s:sub(1, 24) .. string.pack("<I4", 4000000000) .. s:sub(29)
    write_file(tmp .. "/rate.wav", hacked)
    bad(tmp .. "/rate.wav")
  end)

  it("a video without audio, the packet cap, strict mode", function()
    assert(ffmpeg("-f lavfi -i color=c=blue:s=32x32:r=10 -t 1 -c:v ffv1 " .. tmp .. "/v.mkv"))
    bad(tmp .. "/v.mkv", nil, "no audio stream")
    assert(ffmpeg("-f lavfi -i sine=frequency=300:sample_rate=8000 -t 2 -c:a aac " .. tmp .. "/a.m4a"))
    bad(tmp .. "/a.m4a", { max_packets = 5 }, "max_packets")
    assert.has_error(function() audio.load(tmp .. "/v.mkv", { strict = true }) end)
    assert.has_error(function() audio.load(tmp .. "/nope.wav", { rate = -1 }) end)
    assert.has_error(function() audio.load(tmp .. "/nope.wav", { normalize = "zscore" }) end)
  end)
end)
