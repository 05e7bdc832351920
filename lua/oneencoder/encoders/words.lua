-- encoders/words.lua: text -> hashed word vectors (no vocabulary, no weights).
--   local enc = oe.encoders.create("words", { dim = 64, seed = 7 })
--   local feats, lengths = enc:encode({ "A photo of a sneaker.", "seven" })   -- (2, 5, 64), {5, 1}
--
-- Tokens (enc:tokenize(text)): the UTF-8 text is lowercased (ASCII, Latin-1, Latin
-- Extended-A and Additional, Greek, Cyrillic, Armenian, fullwidth Latin) and split on
-- every character that is not a letter, digit, mark or other alphanumeric (ASCII
-- punctuation and spaces, Unicode punctuation and spaces, symbols, arrows, emoji;
-- invalid UTF-8 bytes too). Digits are kept: "7" and "seven" are different words.
-- No Unicode normalisation (NFC and NFD spellings differ). The first max_len tokens are
-- kept; a text without any token becomes the single token "[EMPTY]" (which no text can
-- produce), so every length is at least 1.
-- Vectors: word w gets the standard normal vector of the key mix(FNV-1a 64(w) ^ mix(seed)),
-- coordinates drawn by Box-Muller from a counter-based hash of the key (the same word gives
-- the same vector in every batch, run and process). With ngrams = {min, max} (or n for
-- {n, n}) the vectors of every character n-gram of "<w>" (fastText-style, in code points)
-- are added and the sum divided by sqrt(1 + count): unit variance per coordinate and
-- similar vectors for similar spellings. Then pos = true adds pos_scale times the
-- sinusoidal code of the token's position p (0-based): dim 2i gets sin(p w_i), dim 2i+1
-- cos(p w_i), w_i = 10000^(-2i/D) (D even). Padding rows are 0.
-- Defaults: dim 64, seed 0, max_len 32, ngrams none, pos true, pos_scale 1.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "words"
local Words = C.class(NAME)

local DEFAULTS = { dim = 64, seed = 0, max_len = 32, ngrams = false, pos = true, pos_scale = 1 }

function Words.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  local self = setmetatable({ name = NAME, modality = "text" }, Words)
  self.dim = C.int(NAME, "dim", o.dim, 1, 1 << 20)
  self.seed = C.seed(NAME, o.seed)
  self.max_len = C.int(NAME, "max_len", o.max_len, 1, 1 << 20)
  self.pos = C.bool(NAME, "pos", o.pos)
  self.pos_scale = C.num(NAME, "pos_scale", o.pos_scale)
  if self.pos and self.dim % 2 ~= 0 then
    error(string.format("encoders.create(\"words\"): positions need an even dim, got %d (or set pos = false)", self.dim), 3)
  end
  local ng = o.ngrams
  if ng == false or ng == nil then
    self.ng_min, self.ng_max = 0, 0
  else
    if type(ng) == "number" then ng = { ng, ng } end
    if type(ng) ~= "table" or #ng ~= 2 then error("encoders.create(\"words\"): ngrams must be false, n or {min, max}", 3) end
    self.ng_min, self.ng_max = C.int(NAME, "ngrams", ng[1], 2, 16), C.int(NAME, "ngrams", ng[2], 2, 16)
    if self.ng_max < self.ng_min then error("encoders.create(\"words\"): ngrams {min, max} needs min <= max", 3) end
  end
  self.settings = { dim = self.dim, seed = self.seed, max_len = self.max_len, pos = self.pos, pos_scale = self.pos_scale,
    ngrams = self.ng_min > 0 and { self.ng_min, self.ng_max } or false }
  self.id = string.format("words:d%d:seed%s:max%d:ng%s:pos%s:v1", self.dim, C.fmt(self.seed), self.max_len,
    self.ng_min > 0 and (self.ng_min .. "-" .. self.ng_max) or "0", self.pos and ("1x" .. C.fmt(self.pos_scale)) or "0")
  self.preprocess = {
    modality = "text",
    input = "a list of UTF-8 strings",
    tokenizer = "lowercase, split on non-alphanumerics (Unicode-aware), digits kept, no vocabulary",
    max_len = self.max_len,
    empty = "[EMPTY]",
    loader = "the whole file read as UTF-8 text",
  }
  self._opts = { dim = self.dim, seed = self.seed, max_len = self.max_len, ng_min = self.ng_min, ng_max = self.ng_max,
    pos = self.pos, pos_scale = self.pos_scale }
  return self
end

function Words:check(item)
  if type(item) ~= "string" then return nil, "expected a string, got " .. type(item) end
  return true
end

-- tokenize(text) -> list of normalised tokens (all of them, before truncation), count
function Words:tokenize(text)
  if type(text) ~= "string" then error("words:tokenize: expected a string, got " .. type(text), 2) end
  return core.enc_tokenize(text)
end

-- vector(word) -> (D) the vector of one normalised token, without position
function Words:vector(word)
  return core.enc_word_vector(word, self.seed, self.dim, self.ng_min, self.ng_max)
end

-- encode(texts) -> features (B, L, D) float32, lengths (number of tokens, >= 1)
function Words:encode(texts)
  if type(texts) == "string" then C.fail(self, "expected a list of strings, got one string (wrap it: {text})") end
  if type(texts) ~= "table" or core.is_tensor(texts) then C.fail(self, "expected a list of strings, got %s", type(texts)) end
  if #texts == 0 then C.fail(self, "empty batch (no texts)") end
  for i = 1, #texts do
    if type(texts[i]) ~= "string" then C.fail(self, "item %d is a %s, expected a string", i, type(texts[i])) end
  end
  return core.enc_words(texts, self._opts)
end

-- load(path) -> the file's text | nil, message
function Words:load(path)
  if type(path) ~= "string" then error("words:load: path must be a string", 2) end
  return core.read_file(path) -- regular files only: a pipe or device is refused without blocking
end

return Words
