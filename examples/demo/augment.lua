-- examples/demo/augment.lua: speech augmentation for the audio stage of the pretrained demo.
-- The training voices are synthetic, full-band and start speaking at once; the real Asterisk
-- prompts are 8 kHz telephone recordings with about 0.25 s of silence before the word. Each kind
-- turns a 16 kHz waveform (T) float32 into another 16 kHz waveform:
--   tel_lead   through 8 kHz and back (nothing above 4 kHz left), then 0.25 s of silence first
--   slow       0.9x speed (resampled to 17.6 kHz and read as 16 kHz: slower and lower)
--   fast       1.1x speed (resampled to 14.545 kHz: faster and higher)
--   local aug = require "demo.augment"
--   local w2 = aug.apply("slow", w)
local oe = require "oneencoder"
local core = oe.core

local A = {}
A.KINDS = { "tel_lead", "slow", "fast" }
local RATE = 16000

local function lead(w, seconds) return core.cat({ core.zeros({ math.floor(seconds * RATE) }), w }, 1) end

local BUILD = {
  tel_lead = function(w) return lead(oe.audio.resample(oe.audio.resample(w, RATE, 8000), 8000, RATE), 0.25) end,
  slow = function(w) return oe.audio.resample(w, RATE, 17600) end,
  fast = function(w) return oe.audio.resample(w, RATE, 14545) end,
}

-- apply(kind, w (T) float32 at 16 kHz) -> (T') float32 at 16 kHz
function A.apply(kind, w)
  local f = BUILD[kind]
  if not f then error("augment: unknown kind " .. tostring(kind) .. " (tel_lead, slow or fast)", 2) end
  return f(w)
end

return A
