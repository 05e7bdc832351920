// wordpiece_reference.js: reference ids for spec/fixtures/wordpiece/reference.tsv
// from @huggingface/tokenizers (pure JavaScript port of Hugging Face's
// tokenizers), with the bert-base-uncased vocabulary.
//
//   mkdir -p /tmp/hf && (cd /tmp/hf && npm install --ignore-scripts @huggingface/tokenizers@0.2.0)
//   sh scripts/fetch-vocab.sh
//   /usr/bin/python3 tools/wordpiece_gather.py > /tmp/wordpiece_strings.jsonl
//   node tools/wordpiece_reference.js /tmp/hf/node_modules/@huggingface/tokenizers \
//        data/vocab/bert-base-uncased-vocab.txt /tmp/wordpiece_strings.jsonl > spec/fixtures/wordpiece/reference.tsv
//
// The tokenizer is built by tools/wordpiece_hf.js (bert-base-uncased's
// tokenizer.json settings around the given vocabulary).
//
// Where the port is known to depart from BertTokenizer (Python) and the Rust
// tokenizers, the expected ids follow BertTokenizer's rules, and are computed
// by the same port on a corrected text:
//   - it walks UTF-16 code units when isolating CJK ideographs, so the
//     ideographs at U+20000 and above are not split into words of their own:
//     the corrected text has spaces around them (what _tokenize_chinese_chars
//     does);
//   - its control test leaves out Cn, so it keeps unassigned code points
//     that BertTokenizer's _is_control (category "C*") removes: the corrected
//     text drops them. "Unassigned" is per the C tokenizer's Unicode data
//     (libutf8proc, Unicode 15.0), listed by wordpiece_gather.py; node's ICU
//     may know newer characters, which BertTokenizer on Unicode 15.0 removes.
// Such rows carry the port's own ids and the reason.
//
// Output: one row per string, tab-separated:
//   source  text  expected ids  port ids ("=" when the same)  reason
// The text is escaped: \xHH for bytes below 0x20, 0x7F, the backslash, and
// every byte of a string that is not valid UTF-8; other bytes are as they are.
// Ids are 0-based vocabulary ids without [CLS]/[SEP] (each encoding was
// checked to start with [CLS] and end with [SEP]).
"use strict";
const fs = require("fs");
const path = require("path");

const [pkgDir, vocabPath, stringsPath] = process.argv.slice(2);
if (!pkgDir || !vocabPath || !stringsPath) {
  process.stderr.write("usage: node tools/wordpiece_reference.js <@huggingface/tokenizers dir> <vocab.txt> <strings.jsonl>\n");
  process.exit(2);
}
const { makeTokenizer } = require("./wordpiece_hf.js");
const { tok, vocab, pkgVersion } = makeTokenizer(pkgDir, vocabPath);

function encode(text) {
  const ids = tok.encode(text).ids;
  if (ids[0] !== vocab["[CLS]"] || ids[ids.length - 1] !== vocab["[SEP]"]) throw new Error("no [CLS]/[SEP] around " + JSON.stringify(text));
  return ids.slice(1, -1);
}

// BertTokenizer's _is_chinese_char ranges at U+20000 and above
const ASTRAL_CJK = [[0x20000, 0x2a6df], [0x2a700, 0x2b73f], [0x2b740, 0x2b81f], [0x2b820, 0x2ceaf], [0x2f800, 0x2fa1f]];
const isAstralCjk = (cp) => ASTRAL_CJK.some(([a, b]) => cp >= a && cp <= b);
const hex = (cp) => "U+" + cp.toString(16).toUpperCase().padStart(4, "0");

function escapeBytes(buf, validUtf8) {
  let out = "";
  let i = 0;
  while (i < buf.length) {
    const b = buf[i];
    if (b < 0x20 || b === 0x7f || b === 0x5c || (b >= 0x80 && !validUtf8)) {
      out += "\\x" + b.toString(16).toUpperCase().padStart(2, "0");
      i++;
    } else {
      let j = i;
      while (j < buf.length && !(buf[j] < 0x20 || buf[j] === 0x7f || buf[j] === 0x5c || (buf[j] >= 0x80 && !validUtf8))) j++;
      out += buf.subarray(i, j).toString("utf8");
      i = j;
    }
  }
  return out;
}

const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const rows = fs.readFileSync(stringsPath, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
const out = [];
out.push(`# WordPiece reference: @huggingface/tokenizers@${pkgVersion} (node ${process.version}, ICU Unicode ${process.versions.unicode}),`);
out.push("# bert-base-uncased vocabulary; made by tools/wordpiece_reference.js from tools/wordpiece_gather.py's strings.");
out.push("# source<TAB>text (\\xHH escapes)<TAB>expected ids (BertTokenizer's rules)<TAB>port ids or =<TAB>reason when they differ");
let departures = 0;
for (const r of rows) {
  const buf = Buffer.from(r.hex, "hex");
  const text = decoder.decode(buf);
  const validUtf8 = Buffer.from(text, "utf8").equals(buf);
  const portIds = encode(text);
  const reasons = [];
  const cn = new Set(r.cn);
  let corrected = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0);
    if (cn.has(cp)) continue;
    corrected += isAstralCjk(cp) ? " " + ch + " " : ch;
  }
  let expected = portIds;
  if (corrected !== text) {
    expected = encode(corrected);
    if (expected.join(" ") !== portIds.join(" ")) {
      const astral = [...new Set([...text].map((c) => c.codePointAt(0)).filter(isAstralCjk))];
      if (astral.length) reasons.push("CJK ideographs at U+20000 and above (" + astral.map(hex).join(" ") + ") not split by the port (UTF-16 units)");
      if (cn.size) reasons.push("unassigned code points (" + [...cn].map(hex).join(" ") + ") kept by the port, removed by BertTokenizer (category Cn, Unicode 15.0)");
      departures++;
    }
  }
  const same = expected.join(" ") === portIds.join(" ");
  out.push([r.src, escapeBytes(buf, validUtf8), expected.join(" "), same ? "=" : portIds.join(" "), reasons.join("; ")].join("\t"));
}
process.stdout.write(out.join("\n") + "\n");
process.stderr.write(`${rows.length} strings, ${departures} departures of the port\n`);
