-- oneencoder.audio: decode, resample, normalise, log-mel and write audio.
--   local audio = require "oneencoder.audio"
--   local wav, rate = audio.load("clip.flac", { rate = 16000, mono = true, max_seconds = 10,
--                                              pad = true, normalize = "wav2vec2" })
--   local mel = audio.log_mel(wav, rate)            -- (n_mels, frames)
--   local batch, frames = audio.log_mel_batch({ a, b }, 16000, { preset = "whisper" })
--   audio.save_wav(wav, rate, "out.wav")            -- 16-bit PCM (or "float")
-- Files are read with libsndfile (WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, ...) and,
-- when libsndfile cannot read them, with FFmpeg (audio inside MP4/MKV/WebM/..., AAC, ...).
-- I/O failures return nil, message naming the file and the reason; with
-- opts.strict = true they raise instead. Bad arguments always raise.
local core = require "oneencoder.core"

local audio = {}

local function result(strict, a, b, ...)
  if a == nil and strict then error(b, 3) end
  return a, b, ...
end

-- load(path, opts) -> tensor (T) (mono) or (C, T), rate, notes | nil, message
-- opts: rate (16000; 0 keeps the file's rate), mono (true), max_seconds (trim),
--       pad (zero-pad to max_seconds), normalize ("wav2vec2": zero mean and unit
--       variance over the real samples, eps 1e-7, before padding), cap_seconds
--       (refuse longer files; 4 h), max_packets (FFmpeg path), allow_truncated (false),
--       strict.
-- notes: { frames_decoded (at the file's rate, before trimming and resampling),
--          frames_announced (the header's count; absent when it gives none),
--          frames_estimated (true: that count is a guess), truncated, warning }.
-- Lengths: a header that gives no length (FLAC or Ogg written to a pipe) or only an
-- estimate (an MP3 without a Xing/Info header, e.g. written to a pipe: the count comes
-- from the file size) is decoded to its end under cap_seconds, and the decoded count
-- stands; an exact count that decoding falls short of is a truncation.
-- Truncated or damaged files are refused with a message naming the file and both counts
-- (a WAV whose data chunk announces more frames than the file holds, an Ogg stream
-- without its end-of-stream page, a decoder error such as a FLAC frame cut in half);
-- allow_truncated = true loads what decodes instead, with notes.truncated = true and
-- notes.warning saying why. Only the frames read are checked when max_seconds trims.
-- Samples that are NaN or infinite (a float WAV can hold them) are refused, naming the
-- first one's frame index and channel.
function audio.load(path, opts)
  opts = opts or {}
  if type(path) ~= "string" then error("audio.load: path must be a string", 2) end
  return result(opts.strict, core.audio_load(path, opts))
end

-- decode(bytes, opts, name): like load, from the file's bytes in a string.
function audio.decode(bytes, opts, name)
  opts = opts or {}
  if type(bytes) ~= "string" then error("audio.decode: bytes must be a string", 2) end
  return result(opts.strict, core.audio_decode(bytes, opts, name))
end

-- info(path) -> {rate, channels, frames, duration, frames_estimated, format, backend} | nil, message
-- frames and duration are absent when the header gives no length; frames_estimated is
-- true when they are a guess (an MP3 without a Xing/Info header, a container's duration).
function audio.info(path, opts)
  opts = opts or {}
  return result(opts.strict, core.audio_info(path, false))
end
function audio.info_bytes(bytes, name) return core.audio_info(bytes, true, name) end

-- resample(t, from, to): (T) or (C, T) float32, libswresample windowed sinc
-- (128 taps, Kaiser beta 9, cutoff 0.95 of the lower Nyquist: flat to 0.875 of it, >= 90 dB
-- stopband from just above it); output length ceil(T * to / from).
function audio.resample(t, from, to) return core.audio_resample(t, from, to) end

-- Log-mel options (defaults): n_fft 400, win_length n_fft, hop 160, n_mels 80, f_min 0,
-- f_max rate/2, window periodic Hann, center true with pad_mode "reflect", power 2,
-- mel_scale "htk", norm "none", log "ln" with log_offset 1e-6: log(mel + 1e-6).
-- These are torchaudio.transforms.MelSpectrogram's conventions with a 25 ms / 10 ms
-- frame at 16 kHz. Presets: "whisper" (slaney scale and norm, log10, floor at max - 8,
-- (x + 4) / 4, last frame dropped), "torchaudio" (torchaudio's own defaults: n_fft 400,
-- hop 200, n_mels 128, no log).
-- Waveforms holding NaN or infinity raise an error naming the clip and the sample.
-- log_mel(t, rate, opts): t (T) -> (n_mels, frames)
function audio.log_mel(t, rate, opts)
  if core.dim(t) ~= 1 then error("audio.log_mel: expected a (T) waveform (use log_mel_batch for several)", 2) end
  local out = core.audio_log_mel({ t }, rate, opts or {})
  local s = core.shape(out)
  return core.reshape(out, { s[2], s[3] })
end

-- log_mel_batch(list of (T) tensors or a (B, T) tensor, rate, opts) -> (B, n_mels, F), frames
-- Shorter clips are zero-padded at the end to the longest (as Hugging Face feature
-- extractors pad); frames[i] is the number of frames clip i has on its own.
function audio.log_mel_batch(list, rate, opts) return core.audio_log_mel(list, rate, opts or {}) end

-- mel_filterbank(rate, opts) -> (n_fft/2 + 1, n_mels), as torchaudio.functional.melscale_fbanks
function audio.mel_filterbank(rate, opts) return core.audio_mel_filterbank(rate, opts or {}) end

-- save_wav(t, rate, path, format) -> true | nil, message. t (T) or (C, T) float32 in [-1, 1];
-- format "pcm16" (default, clipped) or "float". Written to a temporary file, then renamed.
function audio.save_wav(t, rate, path, format) return core.audio_save_wav(t, rate, path, format) end

return audio
