-- The pretrained BERT runtime (csrc/frozen/bert.c, encoders/bert.lua) against a PyTorch
-- composition of nn.Embedding / nn.Linear / nn.LayerNorm and functional ops with BertModel's
-- semantics (tools/frozen_fixtures.py; random weights, vocab 120, width 64, 2 layers, 4 heads,
-- intermediate 128, 40 positions, 2 token types, eps 1e-12; saved under "bert." with the
-- embeddings.position_ids buffer). Batch of 5 x 9 tokens: lengths 9, 5, 2 (padding at the end),
-- a left-padded row (real tokens at 4..9), and a row with no real token (BertModel's additive
-- finfo.min mask then spreads attention evenly over all keys).
--
-- Tolerance 1e-4 (absolute) on last_hidden_state of magnitude up to ~5 and pooler outputs in
-- (-1, 1). The longest dot products have K = 128 terms (intermediate -> output); their rounding
-- in another summation order is bounded by K u sum|a b| = 128 * 6e-8 * ~20 = 1.5e-4 in the worst
-- case and of order sqrt(K) u * 20 = 1.4e-5 in practice, and each post-norm LayerNorm divides by
-- a standard deviation near 1. Measured: 1.4e-6 (hidden), 8e-7 (pooled). A wrong mask, head split
-- or norm order changes the outputs by 0.1 or more.
local oe = require "oneencoder"
local core = oe.core
local H = require "helpers"

local DIR = "spec/fixtures/frozen/"
local WEIGHTS = DIR .. "bert.safetensors"
local CONFIG = DIR .. "bert_config.json"
local TOL = 1e-4
local ref = assert(oe.load(DIR .. "bert_ref.safetensors"))

local function create(opts)
  local enc, err = oe.encoders.create("bert", opts)
  assert(enc, err)
  return enc
end

local function same_bits(a, b, what)
  assert.are.same(core.shape(b), core.shape(a), what .. ": shape")
  assert.equal(0, (a - b):abs():max():item(), what .. ": not bit-identical")
end

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p '" .. d .. "'"))
  return d
end

local function has(s, ...)
  for _, frag in ipairs({ ... }) do assert(s:find(frag, 1, true), string.format("%q does not mention %q", s, frag)) end
end

describe("bert: BertModel semantics against the PyTorch composition", function()
  it("gives last_hidden_state and the pooler output on a padded batch", function()
    local enc = create({ weights = WEIGHTS, config = CONFIG })
    assert.equal("bert.", enc.settings.prefix)
    local c = enc.config
    assert.same({ 64, 2, 4, 128, 120, 40, 2, true }, { c.dim, c.layers, c.heads, c.inter, c.vocab, c.max_pos, c.type_vocab, c.pooler })
    local h, p = enc:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids)
    H.allclose(h, ref.last_hidden_state, TOL, "last_hidden_state")
    H.allclose(p, ref.pooler_output, TOL, "pooler_output")
    local f, lengths = enc:encode({ input_ids = ref.input_ids, attention_mask = ref.attention_mask,
      token_type_ids = ref.token_type_ids })
    assert.same({ 9, 5, 2, 6, 0 }, lengths)
    same_bits(f, h, "encode = forward")
  end)

  it("uses float32 weights in place and ignores the position_ids buffer and keys outside the prefix", function()
    local w = assert(core.frozen_open(WEIGHTS))
    create({ weights = w, config = CONFIG })
    local info = core.frozen_info(w)
    -- all but bert.embeddings.position_ids and cls.predictions.bias
    assert.same({ info.tensors - 2, 0 }, { info.inplace, info.converted })
  end)

  it("reads the layout without the bert. prefix, old gamma/beta names and a config.json next to the weights", function()
    local t = assert(oe.load(WEIGHTS))
    local plain = {}
    for k, v in pairs(t) do
      if k:sub(1, 5) == "bert." then
        k = k:sub(6):gsub("LayerNorm%.weight$", "LayerNorm.gamma"):gsub("LayerNorm%.bias$", "LayerNorm.beta")
        plain[k] = v
      end
    end
    local d = tmpdir()
    assert(oe.save(d .. "/model.safetensors", plain))
    assert(os.execute(string.format("cp '%s' '%s/config.json'", CONFIG, d)))
    local a = create({ weights = d .. "/model.safetensors" })
    assert.equal("", a.settings.prefix)
    assert.equal(4, a.config.heads)
    local b = create({ weights = WEIGHTS, config = CONFIG })
    same_bits(a:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids),
      b:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids), "unprefixed, gamma/beta")
    -- no config: dims from the shapes, heads from the option
    os.remove(d .. "/config.json")
    local c = create({ weights = d .. "/model.safetensors", heads = 4 })
    same_bits(c:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids),
      b:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids), "heads from the option")
    local enc, err = oe.encoders.create("bert", { weights = d .. "/model.safetensors" })
    assert.is_nil(enc)
    has(err, "width 64 is not divisible by 12 heads")
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("defaults to an all-real mask and token type 0; the scratch is reused across batch shapes", function()
    local enc = create({ weights = WEIGHTS, config = CONFIG })
    local ids = core.narrow(ref.input_ids, 1, 1, 1)
    local a = enc:forward(ids, oe.ones({ 1, 9 }, "int64"), oe.zeros({ 1, 9 }, "int64"))
    local b = enc:forward(ids)
    same_bits(b, a, "defaults")
    local full = enc:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids)
    enc:forward(core.narrow(ref.input_ids, 2, 1, 3))
    same_bits(enc:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids), full, "after another shape")
  end)

  it("returns no pooled output when the weights have no pooler", function()
    local t = assert(oe.load(WEIGHTS))
    t["bert.pooler.dense.weight"], t["bert.pooler.dense.bias"] = nil, nil
    local path = os.tmpname()
    assert(oe.save(path, t))
    local enc = create({ weights = path, config = CONFIG })
    local h, p = enc:forward(ref.input_ids, ref.attention_mask, ref.token_type_ids)
    assert.is_nil(p)
    H.allclose(h, ref.last_hidden_state, TOL, "without pooler")
    os.remove(path)
  end)
end)

describe("bert: strings through the WordPiece tokenizer", function()
  it("encodes strings as the tokenizer's ids would be encoded", function()
    local text = require "oneencoder.text" -- part of the library: its absence is a failure
    local vocab = os.tmpname()
    local words = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "on", "the", "beach", "two", "cats", "##s", "cat" }
    local f = io.open(vocab, "w"); f:write(table.concat(words, "\n"), "\n"); f:close()
    local enc = create({ weights = WEIGHTS, config = CONFIG, vocab = vocab })
    local texts = { "a dog on the beach", "two cats" }
    local feats, lengths = enc:encode(texts)
    local tok = assert(text.WordPiece(vocab))
    local b = tok:encode(texts, { max_length = 40, padding = "longest" })
    same_bits(feats, enc:forward(b.input_ids, b.attention_mask, b.token_type_ids), "strings = ids")
    assert.same({ 7, 4 }, lengths) -- [CLS] a dog on the beach [SEP]; [CLS] two cats [SEP]
    os.remove(vocab)
  end)
  it("asks for a vocabulary when given strings without one", function()
    local enc = create({ weights = WEIGHTS, config = CONFIG })
    H.fails_with(function() enc:encode({ "a dog" }) end, "strings need a vocabulary")
  end)
end)

describe("bert: bad input", function()
  local t = assert(oe.load(WEIGHTS))
  local function variant(edit, opts)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    edit(c)
    local path = os.tmpname()
    assert(oe.save(path, c))
    local o = { weights = path, config = CONFIG }
    for k, v in pairs(opts or {}) do o[k] = v end
    local enc, err = oe.encoders.create("bert", o)
    os.remove(path)
    assert.is_nil(enc)
    return err
  end

  it("names missing, mis-shaped and unexpected keys with their shapes", function()
    has(variant(function(c) c["bert.encoder.layer.1.output.dense.bias"] = nil end),
      "missing tensor 'bert.encoder.layer.1.output.dense.bias' (expected shape (64,))")
    has(variant(function(c) c["bert.encoder.layer.0.intermediate.dense.weight"] = oe.zeros({ 128, 32 }) end),
      "'bert.encoder.layer.0.intermediate.dense.weight' has shape (128, 32), expected (128, 64)")
    has(variant(function(c) c["bert.encoder.layer.0.attention.self.rel_bias"] = oe.zeros({ 3 }) end),
      "unexpected tensor", "'bert.encoder.layer.0.attention.self.rel_bias' (3,)")
    has(variant(function(c) c["bert.embeddings.token_type_embeddings.weight"] = oe.zeros({ 2, 32 }) end),
      "token_type_embeddings.weight' is 32 wide, the word embeddings 64")
  end)

  it("refuses a config.json that is malformed or disagrees with the weights", function()
    local function with_config(text)
      local p = os.tmpname()
      local f = io.open(p, "w"); f:write(text); f:close()
      local enc, err = oe.encoders.create("bert", { weights = WEIGHTS, config = p })
      os.remove(p)
      assert.is_nil(enc)
      return err
    end
    has(with_config('{"vocab_size": 30522}'), "\"vocab_size\" = 30522 disagrees with the weights (word embedding rows: 120)")
    has(with_config('{"max_position_embeddings": 512}'), "\"max_position_embeddings\" = 512 disagrees")
    has(with_config('{"position_embedding_type": "relative_key"}'), "not supported")
    has(with_config('{"layer_norm_eps": -1}'), "\"layer_norm_eps\" must be a positive number")
    has(with_config('{"hidden_size": 64 64}'), "not valid JSON")
    local enc, err = oe.encoders.create("bert", { weights = WEIGHTS, config = "no/such/config.json" })
    assert.is_nil(enc)
    has(err, "no/such/config.json: cannot open")
  end)

  it("rejects ids, masks and types out of range or of the wrong shape", function()
    local enc = create({ weights = WEIGHTS, config = CONFIG })
    local ids = oe.zeros({ 2, 3 }, "int64")
    local bad = oe.tensor({ { 1, 2, 120 } }, "int64")
    H.fails_with(function() enc:forward(bad) end, "input_ids[1][3] = 120 is outside 0..119")
    H.fails_with(function() enc:forward(ids, oe.full({ 2, 3 }, 2, "int64")) end, "attention_mask[1][1] = 2, expected 0 or 1")
    H.fails_with(function() enc:forward(ids, nil, oe.full({ 2, 3 }, 2, "int64")) end, "token_type_ids[1][1] = 2 is outside 0..1")
    H.fails_with(function() enc:forward(ids, oe.ones({ 2, 4 }, "int64")) end, "attention_mask' is (2, 4), input_ids (2, 3)")
    H.fails_with(function() enc:forward(oe.zeros({ 1, 41 }, "int64")) end, "41 tokens per sequence, the model has 40 positions")
    H.fails_with(function() enc:forward(oe.zeros({ 2, 3 })) end, "input_ids must be an int64 (B, L) tensor")
    H.fails_with(function() enc:encode({}) end, "empty batch")
    H.fails_with(function() enc:encode({ "a", 3 }) end, "item 2: expected a string")
    H.fails_with(function() oe.encoders.create("bert", { weights = WEIGHTS, config = CONFIG, max_length = 64 }) end,
      "max_length 64 is more than the model's 40 positions")
  end)
end)
