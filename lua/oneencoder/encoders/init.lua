-- oneencoder.encoders: frozen encoders behind one interface, and a registry.
--   local enc = oe.encoders.create("patches", { patch = 4, size = 28, channels = 1, proj = 64, seed = 7 })
--   local feats, lengths = enc:encode(batch)   -- features (B, L, D) float32, lengths {L_1, ..., L_B}
--   enc.dim          -- D
--   enc.id           -- identity for the feature cache; changes with every setting that changes the output
--   enc.preprocess   -- the input the encoder expects (a table with a readable `input` entry)
--   enc:check(item)  -- true | nil, reason (one item of a batch)
--   enc:load(path)   -- the item for a file | nil, message (image, text, audio or video loader)
--   oe.encoders.list()                        -- {"frames", "logmel", "patches", "words"}
--   local f, lengths, kept, bad = oe.encoders.encode_files(enc, paths, { on_error = "skip", batch = 64 })
--
-- Built-in encoders (no downloaded weights, deterministic: the same settings give the
-- same bytes in every run and process on a machine):
--   patches  image -> P x P patch tokens, optional fixed random projection, mean token, 2-D positions
--   words    text  -> hashed word vectors (+ character n-grams), 1-D positions
--   logmel   audio -> log-mel frames, k stacked per token, optional projection
--   frames   video -> per frame the mean of its patch tokens, 1-D positions
-- Each file documents its settings and defaults. Later encoders (pretrained) join with
-- oe.encoders.register(name, constructor).
local core = require "oneencoder.core"

local M = {}

M.Patches = require "oneencoder.encoders.patches"
M.Words = require "oneencoder.encoders.words"
M.Logmel = require "oneencoder.encoders.logmel"
M.Frames = require "oneencoder.encoders.frames"
M.ViT = require "oneencoder.encoders.vit"     -- pretrained, from safetensors files
M.Bert = require "oneencoder.encoders.bert"
M.Onnx = require "oneencoder.encoders.onnx"  -- any ONNX model (oneencoder.onnx)
M.SpeechEmbedding = require "oneencoder.encoders.speech_embedding"
M.MobileNetV2 = require "oneencoder.encoders.mobilenet_v2"  -- nsfwjs's MobileNetV2 (oneencoder.tfjs)
M.VideoMAE = require "oneencoder.encoders.videomae"
M.Wav2Vec2 = require "oneencoder.encoders.wav2vec2"
M.Glove = require "oneencoder.encoders.glove"      -- GloVe word vectors (memory-mapped table)

local registry = {
  patches = M.Patches.new,
  words = M.Words.new,
  logmel = M.Logmel.new,
  frames = M.Frames.new,
  vit = M.ViT.new,
  bert = M.Bert.new,
  onnx = M.Onnx.new,
  speech_embedding = M.SpeechEmbedding.new,
  mobilenet_v2 = M.MobileNetV2.new,
  videomae = M.VideoMAE.new,
  wav2vec2 = M.Wav2Vec2.new,
  glove = M.Glove.new,
}

-- register(name, constructor): constructor(opts) -> encoder (replace = true to override)
function M.register(name, ctor, replace)
  if type(name) ~= "string" or name == "" then error("encoders.register: name must be a non-empty string", 2) end
  if type(ctor) ~= "function" then error("encoders.register: constructor must be a function", 2) end
  if registry[name] and not replace then error("encoders.register: '" .. name .. "' is already registered", 2) end
  registry[name] = ctor
end

-- unregister(name): remove an encoder added with register (built-ins stay)
function M.unregister(name)
  if name == "patches" or name == "words" or name == "logmel" or name == "frames" or name == "vit" or name == "bert"
      or name == "onnx" or name == "speech_embedding" or name == "glove"
      or name == "videomae" or name == "wav2vec2" or name == "mobilenet_v2" then
    error("encoders.unregister: '" .. name .. "' is built in", 2)
  end
  registry[name] = nil
end

-- list() -> sorted names
function M.list()
  local names = {}
  for k in pairs(registry) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- create(name, opts) -> encoder
function M.create(name, opts)
  local ctor = registry[name]
  if not ctor then
    error(string.format("encoders.create: unknown encoder '%s' (known: %s)", tostring(name), table.concat(M.list(), ", ")), 2)
  end
  return ctor(opts)
end

-- encode_files(enc, paths, opts) -> features (N, L, D), lengths, kept_indices, bad_items
-- opts: loader (fn(path) -> item | nil, message; default enc:load), on_error "fail"
-- (default: raise on the first bad item, naming its index, path and reason) or "skip"
-- (leave it out and list it in bad_items), batch (items per encode call; 64).
-- An item is bad when the loader returns nil (a missing, empty, corrupt or unsupported
-- file) or when enc:check rejects what it returned (wrong type, shape or dtype).
-- kept_indices: the 1-based positions in paths of the N encoded items, in order;
-- bad_items: {index = i, path = p, reason = message} in order. Rows are padded with 0 to
-- the longest L over all batches; with every item bad, features is (0, 0, D).
function M.encode_files(enc, paths, opts)
  if type(enc) ~= "table" or type(enc.encode) ~= "function" or type(enc.check) ~= "function" then
    error("encode_files: the first argument must be an encoder (oe.encoders.create)", 2)
  end
  if type(paths) ~= "table" then error("encode_files: paths must be a list of paths, got " .. type(paths), 2) end
  opts = opts or {}
  local policy = opts.on_error or "fail"
  if policy ~= "fail" and policy ~= "skip" then
    error("encode_files: on_error must be \"fail\" or \"skip\", got " .. tostring(policy), 2)
  end
  local bsize = opts.batch or 64
  if math.type(bsize) ~= "integer" or bsize < 1 then error("encode_files: batch must be a positive integer", 2) end
  local loader = opts.loader or function(p) return enc:load(p) end
  if type(loader) ~= "function" then error("encode_files: loader must be a function", 2) end

  local kept, bad, lengths = {}, {}, {}
  local pending, chunks = {}, {}
  local function flush()
    if #pending == 0 then return end
    local f, l = enc:encode(pending)
    chunks[#chunks + 1] = f
    for _, n in ipairs(l) do lengths[#lengths + 1] = n end
    pending = {}
  end
  for i = 1, #paths do
    local path = paths[i]
    local reason, item
    if type(path) ~= "string" then
      reason = "not a path (" .. type(path) .. ")"
    else
      local msg
      item, msg = loader(path)
      if item == nil then
        reason = msg ~= nil and tostring(msg) or "the loader returned nothing"
      else
        local ok, why = enc:check(item)
        if not ok then reason = why end
      end
    end
    if reason then
      if policy == "fail" then error(string.format("encode_files: item %d: %s: %s", i, tostring(path), reason), 2) end
      bad[#bad + 1] = { index = i, path = path, reason = reason }
    else
      pending[#pending + 1] = item
      kept[#kept + 1] = i
      if #pending >= bsize then flush() end
    end
  end
  flush()

  if #chunks == 0 then return core.zeros({ 0, 0, enc.dim }), lengths, kept, bad end
  if #chunks == 1 then return chunks[1], lengths, kept, bad end
  local Lmax = 0
  for _, f in ipairs(chunks) do Lmax = math.max(Lmax, core.shape(f)[2]) end
  local out = core.zeros({ #kept, Lmax, enc.dim })
  local at = 1
  for _, f in ipairs(chunks) do
    local s = core.shape(f)
    if s[2] < Lmax then
      local padded = core.zeros({ s[1], Lmax, s[3] })
      core.set_slice(padded, 2, 1, f)
      f = padded
    end
    core.set_slice(out, 1, at, f)
    at = at + s[1]
  end
  return out, lengths, kept, bad
end

return M
