-- encoders/bert.lua: a pretrained BERT (Hugging Face BertModel layout) from a safetensors file
-- (csrc/frozen/bert.c).
--   local enc = oe.encoders.create("bert", { weights = "bert-base-uncased/model.safetensors",
--                                            vocab = "bert-base-uncased/vocab.txt" })
--   local feats, lengths = enc:encode({ "a dog on a beach", "two cats" })  -- (B, L, 768), real lengths
--   local hidden, pooled = enc:forward(ids, mask, types)                   -- last_hidden_state, pooler
--
-- Options:
--   weights     path of a .safetensors file, or a weights object from core.frozen_open
--   prefix      key prefix ("text_encoder.pretrained_bert."); default: "" or, when the embeddings
--               are not found there, "bert." (BertForPreTraining and similar files)
--   config      config.json (heads, eps, checked against the weights); default: the config.json
--               next to the weights file when one exists; false: none
--   heads, eps  without a config: 12 heads, eps 1e-12
--   vocab       vocab.txt or tokenizer.json for strings (oneencoder.text.WordPiece, loaded on
--               first use); without it encode takes token ids only
--   max_length  truncation of strings in tokens, [CLS] and [SEP] included (128, the original's, or
--               the model's positions when it has fewer)
--
-- Input (enc.preprocess): a list of strings (needs vocab), or a table of int64 (B, L) tensors
-- {input_ids =, attention_mask = (1 real, 0 padding; default all 1), token_type_ids = (default 0)}.
-- Output: last_hidden_state (B, L, D), padded to the longest item of the batch, and the real
-- lengths (the mask's row sums). Padded positions hold what BertModel computes there.
local core = require "oneencoder.core"
local C = require "oneencoder.encoders.common"
local ViT = require "oneencoder.encoders.vit"

local NAME = "bert"
local Bert = C.class(NAME)

local DEFAULTS = { weights = C.NONE, prefix = C.NONE, config = C.NONE, heads = C.NONE, eps = C.NONE, vocab = C.NONE,
  max_length = C.NONE }

local function exists(path)
  local st = core.fs_stat(path)
  return st and st.is_file
end

-- Bert.new(opts) -> encoder | nil, message (a missing or bad weights file)
function Bert.new(opts)
  local o = C.options(NAME, opts, DEFAULTS, 4)
  if o.weights == nil then error("encoders.create(\"bert\"): option 'weights' is required (a .safetensors path)", 3) end
  if o.prefix ~= nil and type(o.prefix) ~= "string" then error("encoders.create(\"bert\"): option 'prefix' must be a string", 3) end
  if o.config ~= nil and o.config ~= false and type(o.config) ~= "string" then
    error("encoders.create(\"bert\"): option 'config' must be a path or false", 3)
  end
  if o.vocab ~= nil and type(o.vocab) ~= "string" then error("encoders.create(\"bert\"): option 'vocab' must be a path", 3) end
  local heads = o.heads ~= nil and C.int(NAME, "heads", o.heads, 1, 4096) or nil
  local eps = o.eps ~= nil and C.num(NAME, "eps", o.eps) or nil
  if eps and not (eps > 0 and eps < 1) then error("encoders.create(\"bert\"): option 'eps' must be in (0, 1)", 3) end
  local max_length = o.max_length ~= nil and C.int(NAME, "max_length", o.max_length, 2, 1 << 20) or nil

  local w, ident, wpath = ViT.open_weights(o.weights)
  if not w then return nil, ident end
  local prefix = o.prefix
  if prefix == nil then
    prefix = ""
    if not core.frozen_has(w, "embeddings.word_embeddings.weight") and core.frozen_has(w, "bert.embeddings.word_embeddings.weight") then
      prefix = "bert."
    end
  end
  local config = o.config
  if config == nil then
    local cand = (wpath:match("^(.*)/[^/]*$") or ".") .. "/config.json"
    if exists(cand) then config = cand end
  end
  if config == false then config = nil end
  local model, err = core.bert_load(w, { prefix = prefix, config = config, heads = heads, eps = eps })
  if not model then return nil, err end
  local cfg = core.bert_config(model)
  max_length = max_length or math.min(128, cfg.max_pos)
  if max_length > cfg.max_pos then
    error(string.format("encoders.create(\"bert\"): max_length %d is more than the model's %d positions", max_length, cfg.max_pos), 3)
  end

  local self = setmetatable({ name = NAME, modality = "text" }, Bert)
  self.weights, self.model, self.config = w, model, cfg
  self.dim = cfg.dim
  self.vocab, self.max_length = o.vocab, max_length
  self.settings = { weights = wpath, prefix = prefix, config = config, heads = cfg.heads, eps = cfg.eps, vocab = o.vocab,
    max_length = max_length }
  local vocab_id = "none"
  if o.vocab then
    local st = core.fs_stat(o.vocab)
    vocab_id = st and string.format("%s:%d:%d.%09d", o.vocab, st.size, st.mtime, st.mtime_ns) or o.vocab
  end
  self.id = string.format("bert:%s:prefix=%s:heads%d:eps%s:vocab=%s:max%d:v1", ident, prefix, cfg.heads, C.fmt(cfg.eps),
    vocab_id, max_length)
  self.preprocess = {
    modality = "text",
    input = "a list of strings (with vocab), or {input_ids =, attention_mask =, token_type_ids =} int64 (B, L) tensors",
    tokenizer = o.vocab and "oneencoder.text.WordPiece" or nil, vocab = o.vocab, max_length = max_length,
    padding = "longest in the batch",
  }
  return self
end

function Bert:tokenizer()
  if not self._tok then
    if not self.vocab then C.fail(self, "strings need a vocabulary: create the encoder with vocab = \"vocab.txt\"") end
    local ok, text = pcall(require, "oneencoder.text")
    if not ok then C.fail(self, "the tokenizer (oneencoder.text) is not available: %s", tostring(text)) end
    local tok, err = text.WordPiece(self.vocab)
    if not tok then C.fail(self, "%s", tostring(err)) end
    self._tok = tok
  end
  return self._tok
end

-- item -> true | nil, reason (a string)
function Bert:check(item)
  if type(item) ~= "string" then return nil, "expected a string, got " .. type(item) end
  return true
end

local function check_ids(self, t, what)
  if not core.is_tensor(t) or core.dtype(t) ~= "int64" or #core.shape(t) ~= 2 then
    C.fail(self, "%s must be an int64 (B, L) tensor, got %s", what,
      core.is_tensor(t) and (core.dtype(t) .. " " .. C.shape_str(t)) or type(t))
  end
end

-- forward(input_ids, attention_mask|nil, token_type_ids|nil) -> hidden (B, L, D), pooled (B, D) | nil
function Bert:forward(ids, mask, types)
  check_ids(self, ids, "input_ids")
  if mask ~= nil then check_ids(self, mask, "attention_mask") end
  if types ~= nil then check_ids(self, types, "token_type_ids") end
  local h, p = core.bert_forward(self.model, ids, mask, types, self.config.pooler)
  if not h then error("bert:encode: " .. p, 0) end
  return h, self.config.pooler and p or nil
end

-- encode(batch) -> features (B, L, D) float32, lengths
function Bert:encode(batch)
  if type(batch) ~= "table" then C.fail(self, "expected a list of strings or {input_ids = ...}, got %s", type(batch)) end
  local enc = batch
  if batch.input_ids == nil then
    if #batch == 0 then C.fail(self, "empty batch (no strings)") end
    for i, s in ipairs(batch) do
      if type(s) ~= "string" then C.fail(self, "item %d: expected a string, got %s", i, type(s)) end
    end
    enc = self:tokenizer():encode(batch, { max_length = self.max_length, padding = "longest" })
  end
  local ids, mask = enc.input_ids, enc.attention_mask
  check_ids(self, ids, "input_ids")
  local h = self:forward(ids, mask, enc.token_type_ids)
  local s = core.shape(ids)
  local lengths = {}
  if mask ~= nil then
    for b, row in ipairs(core.totable(mask)) do
      local n = 0
      for _, v in ipairs(row) do n = n + v end
      lengths[b] = math.tointeger(n) or n
    end
  else
    for b = 1, s[1] do lengths[b] = s[2] end
  end
  return h, lengths
end

-- load(path) -> the file's text | nil, message
function Bert:load(path)
  if type(path) ~= "string" then error("bert:load: path must be a string", 2) end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s, rerr = f:read("a")
  f:close()
  if not s then return nil, path .. ": " .. tostring(rerr) end
  return s
end

return Bert
