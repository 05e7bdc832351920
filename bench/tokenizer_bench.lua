-- tokenizer_bench.lua: WordPiece tokenizer throughput (oneencoder.text, C) on
-- the reference fixture's 5,562 real strings (spec/fixtures/wordpiece), in MB/s
-- of UTF-8 input, and in the same run @huggingface/tokenizers (JavaScript, the
-- fixture's reference) through node when node and the package are under /tmp
-- (`npm install --ignore-scripts @huggingface/tokenizers@0.2.0` in a folder
-- there; OE_HF_TOKENIZERS=<package dir> to point at another). One thread.
--   lua5.4 bench/tokenizer_bench.lua        (make bench runs it)
-- Needs data/vocab/bert-base-uncased-vocab.txt (sh scripts/fetch-vocab.sh).
-- Figures: name: value. The machine is shared: besides wall-clock rates
-- (*_mbps) the main pass is also given per second of this process's CPU time
-- (*_cpu_mbps), for both sides.
local ROOT = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$")) or "."
package.path = ROOT .. "/bench/?.lua;" .. package.path
local text = require "oneencoder.text"
local B = require "common"
local VOCAB = ROOT .. "/data/vocab/bert-base-uncased-vocab.txt"
local FIXTURE = ROOT .. "/spec/fixtures/wordpiece/reference.tsv"

local tok, err = text.WordPiece(VOCAB)
if not tok then
  io.stderr:write(err .. "\nrun `sh scripts/fetch-vocab.sh` first\n")
  os.exit(1)
end

local texts, bytes = {}, 0
for line in io.lines(FIXTURE) do
  if line:sub(1, 1) ~= "#" then
    local t = line:match("^[^\t]*\t([^\t]*)\t")
    t = t:gsub("\\x(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    texts[#texts + 1] = t
    bytes = bytes + #t
  end
end
B.report("tokenizer_strings", #texts, "%d")
B.report("tokenizer_fixture_mb", bytes / 1e6, "%.3f")

-- one string at a time through tok:ids (a Lua list per string)
local ntok = 0
local t_ids = B.median_time(function()
  ntok = 0
  for i = 1, #texts do ntok = ntok + #tok:ids(texts[i]) end
end, 5)
B.report("tokenizer_ids_mbps", bytes / 1e6 / t_ids, "%.2f")
local c0 = os.clock()
for _ = 1, 5 do
  for i = 1, #texts do tok:ids(texts[i]) end
end
local cpu_ids = (os.clock() - c0) / 5
B.report("tokenizer_ids_cpu_mbps", bytes / 1e6 / cpu_ids, "%.2f")
B.report("tokenizer_tokens_per_pass", ntok, "%d")

-- batches of 64 through tok:encode (int64 tensors), no truncation
local batches = {}
for i = 1, #texts, 64 do
  local b = {}
  for j = i, math.min(i + 63, #texts) do b[#b + 1] = texts[j] end
  batches[#batches + 1] = b
end
local t_enc = B.median_time(function()
  for _, b in ipairs(batches) do tok:encode(b, { max_length = 1 << 20 }) end
end, 5)
B.report("tokenizer_encode_batch64_mbps", bytes / 1e6 / t_enc, "%.2f")

-- the whole fixture as one text: the C pass without per-call costs
local all = table.concat(texts, "\n")
local t_all = B.median_time(function() tok:ids(all) end, 5)
B.report("tokenizer_one_text_mbps", #all / 1e6 / t_all, "%.2f")

-- a 10 MB text truncated to 128 tokens: stops after the first 126
local big = string.rep("a dog on a beach ", 10 * 1024 * 1024 // 17)
local t_big = B.median_time(function() tok:encode({ big }, { max_length = 128 }) end, 5)
B.report("tokenizer_10mb_truncated_128_ms", t_big * 1e3, "%.3f")
local word = string.rep("a", 10 * 1024 * 1024)
local t_word = B.median_time(function() tok:encode({ word }, { max_length = 128 }) end, 3)
B.report("tokenizer_10mb_one_word_mbps", #word / 1e6 / t_word, "%.1f")

-- the reference, same strings, same machine, same run
local pkg = os.getenv("OE_HF_TOKENIZERS")
if not pkg then
  local p = io.popen("ls -d /tmp/*/node_modules/@huggingface/tokenizers /tmp/*/*/node_modules/@huggingface/tokenizers 2>/dev/null")
  pkg = p:read("l")
  p:close()
end
local has_node = os.execute("command -v node >/dev/null 2>&1")
if pkg and has_node then
  local cmd = string.format("node %q %q %q %q 5 2>/dev/null", ROOT .. "/tools/wordpiece_bench_hf.js", pkg, VOCAB, FIXTURE)
  local p = io.popen(cmd)
  local ref = {}
  for line in p:lines() do
    local k, v = line:match("^([%w_]+):%s*(.+)$")
    if k then ref[k] = v end
  end
  p:close()
  if ref.hf_js_tokenizer_mbps then
    print("hf_js_version: " .. ref.hf_js_version)
    B.report("hf_js_tokenizer_mbps", tonumber(ref.hf_js_tokenizer_mbps), "%.3f")
    B.report("hf_js_tokenizer_cpu_mbps", tonumber(ref.hf_js_tokenizer_cpu_mbps), "%.3f")
    B.report("tokenizer_ids_vs_hf_js_speedup", bytes / 1e6 / t_ids / tonumber(ref.hf_js_tokenizer_mbps), "%.1f")
    B.report("tokenizer_ids_vs_hf_js_cpu_speedup", bytes / 1e6 / cpu_ids / tonumber(ref.hf_js_tokenizer_cpu_mbps), "%.1f")
    if tonumber(ref.hf_js_tokens_per_pass) ~= ntok + 2 * #texts then
      print("note: the JavaScript pass produced " .. ref.hf_js_tokens_per_pass .. " tokens (with [CLS]/[SEP]), oneencoder "
        .. (ntok + 2 * #texts) .. " (the fixture lists where the port departs)")
    end
  else
    print("hf_js_tokenizer_mbps: unavailable (node failed)")
  end
else
  print("hf_js_tokenizer_mbps: unavailable (no node or no @huggingface/tokenizers under /tmp)")
end
