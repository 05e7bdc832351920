-- examples/toy_data.lua: a small synthetic world for the examples, so they run
-- anywhere in seconds: images of coloured shapes, captions that describe them,
-- and "recordings" in which each colour is a tone and each shape a rhythm.
-- (The main job, examples/demo.lua, uses real data instead.)
local oe = require "oneencoder"

local T = {}
T.colors = { "red", "green", "blue", "yellow" }
T.shapes = { "square", "circle", "cross", "stripes" }
local RGB = { red = { 220, 30, 30 }, green = { 30, 200, 60 }, blue = { 40, 60, 230 }, yellow = { 230, 220, 40 } }
local TONE = { red = 330, green = 440, blue = 550, yellow = 660 }
local RHYTHM = { square = 2, circle = 3, cross = 5, stripes = 7 }

-- class c in 0..15 -> colour, shape
function T.class(c) return T.colors[c // 4 + 1], T.shapes[c % 4 + 1] end

local function inside(shape, x, y, cx, cy, r)
  local dx, dy = x - cx, y - cy
  if shape == "square" then return math.abs(dx) <= r and math.abs(dy) <= r end
  if shape == "circle" then return dx * dx + dy * dy <= r * r end
  if shape == "cross" then return (math.abs(dx) <= r / 3 and math.abs(dy) <= r) or (math.abs(dy) <= r / 3 and math.abs(dx) <= r) end
  return math.abs(dx) <= r and math.abs(dy) <= r and (y // 3) % 2 == 0 -- stripes
end

-- image(c, rng) -> uint8 (28, 28, 3): the shape at a random place and size, noisy background
function T.image(c, rnd)
  local color, shape = T.class(c)
  local cx, cy, r = 8 + rnd() * 12, 8 + rnd() * 12, 4 + rnd() * 4
  local img = oe.zeros({ 28, 28, 3 }, "uint8")
  local rgb = RGB[color]
  for y = 1, 28 do
    for x = 1, 28 do
      local on = inside(shape, x, y, cx, cy, r)
      for k = 1, 3 do
        local v = on and rgb[k] or 20
        img:set(math.max(0, math.min(255, v + math.floor((rnd() - 0.5) * 40))), y, x, k)
      end
    end
  end
  return img
end

local TEMPLATES = { "a {c} {s}", "a picture of a {c} {s}", "the {s} is {c}", "one {c} {s} on a dark background" }
T.test_templates = { "a photo of a {c} {s}", "this is a {c} {s}" }
function T.caption(c, k, templates)
  local color, shape = T.class(c)
  templates = templates or TEMPLATES
  return (templates[(k - 1) % #templates + 1]:gsub("{c}", color):gsub("{s}", shape))
end

-- recording(c, rnd) -> float32 (T) at 16 kHz, 1 s: the colour's tone, pulsed at the shape's rate
function T.recording(c, rnd)
  local color, shape = T.class(c)
  local n, f, pulses = 16000, TONE[color] * (0.97 + 0.06 * rnd()), RHYTHM[shape]
  local w = {}
  for i = 1, n do
    local t = (i - 1) / 16000
    w[i] = math.sin(2 * math.pi * f * t) * 0.5 * (1 + math.sin(2 * math.pi * pulses * t)) + (rnd() - 0.5) * 0.1
  end
  return oe.tensor(w)
end

-- dataset(n, seed) -> {images = {...}, captions = {...}, recordings = {...}, labels = {...}}
function T.dataset(n, seed, templates)
  local state = seed
  local function rnd() -- a small LCG, independent of oe's generator
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648
  end
  oe.manual_seed(seed)
  local d = { images = {}, captions = {}, recordings = {}, labels = {} }
  for i = 1, n do
    local c = (i - 1) % 16
    d.labels[i] = c
    d.images[i] = T.image(c, rnd)
    d.captions[i] = T.caption(c, i, templates)
    d.recordings[i] = T.recording(c, rnd)
  end
  return d
end

-- the encoders the examples use (built in, no downloaded weights)
function T.encoders()
  return {
    image = oe.encoders.create("patches", { patch = 7, size = 28, channels = 3, proj = 64, seed = 1 }),
    text = oe.encoders.create("words", { dim = 64, seed = 2 }),
    audio = oe.encoders.create("logmel", { n_mels = 40, stack = 4, seed = 3 }),
  }
end

-- features(enc, items) -> an oe.data.FeatureSet
function T.features(enc, items)
  local f, lengths = enc:encode(items)
  return oe.data.FeatureSet(f, lengths)
end

return T
