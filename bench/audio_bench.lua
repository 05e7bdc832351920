-- bench/audio_bench.lua: seconds of 44.1 kHz stereo audio loaded, mixed to mono,
-- resampled to 16 kHz and turned into log-mel per second of wall time.
-- The 60 s test file (two tones plus noise, 16-bit WAV and FLAC) is made with the
-- ffmpeg CLI in a temporary folder. Figures: `name: value`.
local oe = require "oneencoder"
local audio = require "oneencoder.audio"
local core = oe.core

package.path = "bench/?.lua;" .. package.path
local B = require "common"
local median, report = B.median_time, B.report

local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
local wav, flac = dir .. "/a60.wav", dir .. "/a60.flac"
local gen = "ffmpeg -nostdin -v error -y -f lavfi -i \"sine=frequency=440:sample_rate=44100:duration=60\" " ..
            "-f lavfi -i \"anoisesrc=color=pink:sample_rate=44100:duration=60:amplitude=0.1\" " ..
            "-filter_complex \"[0][1]amerge=inputs=2\" -ac 2 "
assert(os.execute(gen .. "-c:a pcm_s16le " .. wav .. " >/dev/null 2>&1"))
assert(os.execute("ffmpeg -nostdin -v error -y -i " .. wav .. " -c:a flac " .. flac .. " >/dev/null 2>&1"))
local info = assert(audio.info(wav))
assert(info.rate == 44100 and info.channels == 2 and math.abs(info.duration - 60) < 0.01)
local secs = info.duration
report("audio_threads", oe.get_num_threads(), "%d")

local wave
local t_load = median(function() wave = assert(audio.load(wav, { rate = 16000 })) end, 5)
local t_mel = median(function() audio.log_mel(wave, 16000) end, 5)
local t_all = median(function()
  local w = assert(audio.load(wav, { rate = 16000 }))
  audio.log_mel(w, 16000)
end, 5)
local t_flac = median(function()
  local w = assert(audio.load(flac, { rate = 16000 }))
  audio.log_mel(w, 16000)
end, 5)
local t_raw = median(function() assert(audio.load(wav, { rate = 0, mono = false })) end, 5)

report("audio_wav_load_resample_logmel_audio_seconds_per_second", secs / t_all, "%.1f")
report("audio_flac_load_resample_logmel_audio_seconds_per_second", secs / t_flac, "%.1f")
report("audio_wav_decode_only_ms", t_raw * 1e3, "%.2f")
report("audio_wav_load_resample_16k_mono_ms", t_load * 1e3, "%.2f")
report("audio_logmel_60s_16k_ms", t_mel * 1e3, "%.2f")

-- batched log-mel: 32 clips of 10 s
local clips = {}
for i = 1, 32 do clips[i] = core.narrow(wave, 1, 1 + (i - 1) * 1000, 160000) end
local t_b = median(function() audio.log_mel_batch(clips, 16000) end, 3)
report("audio_logmel_batch32x10s_audio_seconds_per_second", 320 / t_b, "%.1f")
oe.set_num_threads(1)
local t_b1 = median(function() audio.log_mel_batch(clips, 16000) end, 3)
report("audio_logmel_batch32x10s_1thread_audio_seconds_per_second", 320 / t_b1, "%.1f")
os.execute("rm -rf " .. dir)
