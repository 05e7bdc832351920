-- text.lua: BERT's WordPiece tokenizer (bert-base-uncased semantics), in C
-- (csrc/text/wordpiece.c; the header comment there states the exact rules).
--
--   local text = require "oneencoder.text"
--   local tok = assert(text.WordPiece("vocab.txt"))   -- or a tokenizer.json
--   tok:tokenize("Hello, world!")    --> {"hello", ",", "world", "!"}
--   tok:ids("Hello")                 --> {7592}          (0-based ids, no specials)
--   local enc = tok:encode({"a dog", "two cats on a mat"}, {max_length = 128, padding = "longest"})
--   -- enc.input_ids, enc.attention_mask, enc.token_type_ids: int64 (B, L); enc.lengths {n1, n2}
--   tok.vocab_size, tok:id_of("[CLS]"), tok:token_of(101)
--
-- Options of text.WordPiece(path, opts), defaults as bert-base-uncased's
-- BertTokenizer (a tokenizer.json's BertNormalizer settings come in between):
--   lowercase = true
--   strip_accents = nil         (follows lowercase)
--   tokenize_chinese_chars = true
--   max_chars_per_word = 100    (longer words are one [UNK])
--   final_sigma = true          (str.lower()'s word-final sigma; false: U+03C3
--                                always, as BertTokenizerFast's Rust lowercase)
--   split_special_tokens = false ([CLS], [SEP], ... written in the text are
--                                those tokens, as in Hugging Face's tokenizers)
-- A bad vocabulary file gives nil, "text.WordPiece: <path>: <reason>".
-- Invalid UTF-8 never fails: each bad byte becomes U+FFFD, which the cleaning
-- step removes. Wrong arguments raise.
local core = require "oneencoder.core"

local text = {}

local WordPiece = {}
WordPiece.__index = WordPiece

local LOAD_OPTIONS = {
  lowercase = "boolean", strip_accents = "boolean", tokenize_chinese_chars = "boolean",
  max_chars_per_word = "number", final_sigma = "boolean", split_special_tokens = "boolean",
}
local ENCODE_OPTIONS = { max_length = "number", padding = true, add_special_tokens = "boolean" }

local function check_options(fn, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(fn .. ": options must be a table, got " .. type(opts), 3) end
  for k, v in pairs(opts) do
    local want = allowed[k]
    if not want then error(fn .. ": unknown option '" .. tostring(k) .. "'", 3) end
    if want ~= true and type(v) ~= want then
      error(fn .. ": option '" .. k .. "' must be a " .. want .. ", got " .. type(v), 3)
    end
  end
  return opts
end

--- text.WordPiece(path, opts) -> tokenizer | nil, message
-- path: a vocab.txt (one token per line, id = line number - 1) or a Hugging
-- Face tokenizer.json (name ending in ".json") with a WordPiece model.
function text.WordPiece(path, opts)
  if type(path) ~= "string" then error("text.WordPiece: path must be a string, got " .. type(path), 2) end
  opts = check_options("text.WordPiece", opts, LOAD_OPTIONS)
  local h, err = core.wordpiece_load(path, opts)
  if not h then return nil, err end
  local info = core.wordpiece_info(h)
  return setmetatable({
    _h = h,
    path = path,
    vocab_size = info.vocab_size,
    special_ids = info.special_ids, -- {pad, unk, cls, sep, mask (when present)}
    options = info.options,        -- the settings in force
  }, WordPiece)
end

local function check_text(fn, s)
  if type(s) ~= "string" then error(fn .. ": text must be a string, got " .. type(s), 3) end
end

local function check_max_tokens(fn, n)
  if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
    error(fn .. ": max_tokens must be a non-negative integer, got " .. tostring(n), 3)
  end
end

--- tok:tokenize(s, max_tokens) -> {token, ...}: the WordPiece tokens, no
-- [CLS]/[SEP]; at most max_tokens of them when given.
function WordPiece:tokenize(s, max_tokens)
  check_text("WordPiece:tokenize", s)
  check_max_tokens("WordPiece:tokenize", max_tokens)
  return core.wordpiece_tokens(self._h, s, max_tokens)
end

--- tok:ids(s, max_tokens) -> {id, ...}: 0-based vocabulary ids, no specials.
function WordPiece:ids(s, max_tokens)
  check_text("WordPiece:ids", s)
  check_max_tokens("WordPiece:ids", max_tokens)
  return core.wordpiece_ids(self._h, s, max_tokens)
end

--- tok:id_of(token) -> id | nil
function WordPiece:id_of(token)
  if type(token) ~= "string" then error("WordPiece:id_of: token must be a string, got " .. type(token), 2) end
  return core.wordpiece_id_of(self._h, token)
end

--- tok:token_of(id) -> token | nil
function WordPiece:token_of(id)
  if math.type(id) ~= "integer" then error("WordPiece:token_of: id must be an integer, got " .. tostring(id), 2) end
  return core.wordpiece_token_of(self._h, id)
end

--- tok:encode(texts, opts) -> {input_ids, attention_mask, token_type_ids, lengths}
-- texts: a list of strings (or one string, a batch of one).
-- opts.max_length (default 128, the original OneEncoder's): texts are cut so
--   that with [CLS] and [SEP] they fit (the ids past it are never computed).
-- opts.padding: "longest" (default; to the batch's longest), "max_length"
--   (every row max_length long) or false (no padding; one text only).
-- opts.add_special_tokens (default true): [CLS] ... [SEP].
-- Padding uses the [PAD] id and attention mask 0; token_type_ids are zeros.
-- lengths: the real length of each row, specials included.
function WordPiece:encode(texts, opts)
  local fn = "WordPiece:encode"
  opts = check_options(fn, opts, ENCODE_OPTIONS)
  if type(texts) == "string" then texts = { texts } end
  if type(texts) ~= "table" or #texts == 0 then error(fn .. ": texts must be a non-empty list of strings", 2) end
  local max_length = opts.max_length or 128
  if math.type(max_length) ~= "integer" then error(fn .. ": max_length must be an integer", 2) end
  local specials = opts.add_special_tokens ~= false
  local padding = opts.padding
  if padding == nil then padding = "longest" end
  local pad_to
  if padding == "longest" then pad_to = 0
  elseif padding == "max_length" then pad_to = max_length
  elseif padding == false then
    if #texts ~= 1 then error(fn .. ": padding = false needs a single text, got " .. #texts, 2) end
    pad_to = -1
  else
    error(fn .. ": padding must be \"longest\", \"max_length\" or false, got " .. tostring(padding), 2)
  end
  local ids, mask, types, lengths = core.wordpiece_encode(self._h, texts, max_length, specials, pad_to)
  return { input_ids = ids, attention_mask = mask, token_type_ids = types, lengths = lengths }
end

text.WordPieceTokenizer = WordPiece -- the method table, for extension

return text
