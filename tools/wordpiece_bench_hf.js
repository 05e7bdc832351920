// wordpiece_bench_hf.js: times @huggingface/tokenizers (JavaScript) on the
// WordPiece fixture strings, for bench/tokenizer_bench.lua's reference column.
//   node tools/wordpiece_bench_hf.js <@huggingface/tokenizers dir> <vocab.txt> <reference.tsv> [reps]
// Prints name: value lines: the median over reps of one pass over all strings
// (each encoded with [CLS]/[SEP], no truncation), in MB/s of UTF-8 input, and
// the same per second of the process's CPU time (node's own threads included).
"use strict";
const fs = require("fs");
const { makeTokenizer } = require("./wordpiece_hf.js");

const [pkgDir, vocabPath, fixturePath, repsArg] = process.argv.slice(2);
const reps = Number(repsArg || 5);
const { tok, pkgVersion } = makeTokenizer(pkgDir, vocabPath);
const decoder = new TextDecoder("utf-8", { fatal: false });
const texts = [];
let bytes = 0;
for (const line of fs.readFileSync(fixturePath, "utf8").split("\n")) {
  if (line === "" || line[0] === "#") continue;
  const escaped = line.split("\t")[1];
  // undo the fixture's \xHH escapes at the byte level, then decode as the C side reads bytes
  const buf = [];
  const raw = Buffer.from(escaped, "utf8");
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === 0x5c && raw[i + 1] === 0x78) { buf.push(parseInt(raw.toString("latin1", i + 2, i + 4), 16)); i += 3; } else buf.push(raw[i]);
  }
  const b = Buffer.from(buf);
  bytes += b.length;
  texts.push(decoder.decode(b));
}
let sink = 0;
const pass = () => { for (const t of texts) sink += tok.encode(t).ids.length; };
pass();
const times = [];
const c0 = process.cpuUsage();
for (let r = 0; r < reps; r++) {
  const t0 = process.hrtime.bigint();
  pass();
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
const cu = process.cpuUsage(c0);
const cpuPerPass = (cu.user + cu.system) / 1e6 / reps;
times.sort((a, b) => a - b);
const med = times[(reps - 1) >> 1];
console.log(`hf_js_version: ${pkgVersion}`);
console.log(`hf_js_tokenizer_mbps: ${(bytes / 1e6 / med).toFixed(3)}`);
console.log(`hf_js_tokenizer_cpu_mbps: ${(bytes / 1e6 / cpuPerPass).toFixed(3)}`);
console.log(`hf_js_tokens_per_pass: ${sink / (reps + 1)}`);
