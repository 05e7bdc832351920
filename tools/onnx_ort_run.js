// onnx_ort_run.js: runs ONNX models with ONNX Runtime (npm onnxruntime-node) for reference
// outputs. Development tool only (tools/onnx_op_fixtures.sh, tools/onnx_speech_fixtures.sh).
//   node tools/onnx_ort_run.js cases.json results.json
// cases.json: {"cases": [{"name", "model" (path), "inputs": [{"name", "dtype" ("float32" |
//   "int64" | "int32"), "shape", "b64" (little-endian bytes)}], "outputs": [names]}]}
// results.json: {"ort": version, "results": [{"name", "outputs": [{"name", "dtype", "shape",
//   "b64"}]} | {"name", "error"}]}
// onnxruntime-node is taken from $ORT_DIR (a folder holding node_modules/onnxruntime-node,
// e.g. after `npm install --ignore-scripts onnxruntime-node@1.30.0` there) or the usual paths.
// One intra-op thread: the reference does not depend on the machine's thread count.
'use strict';
const fs = require('fs');
const path = require('path');

function loadOrt() {
  const dir = process.env.ORT_DIR;
  if (dir) return require(path.join(path.resolve(dir), 'node_modules', 'onnxruntime-node'));
  return require('onnxruntime-node');
}

const TYPED = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array };

function toTensor(ort, spec) {
  const buf = Buffer.from(spec.b64, 'base64');
  const T = TYPED[spec.dtype];
  if (!T) throw new Error('unsupported dtype ' + spec.dtype);
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return new ort.Tensor(spec.dtype, new T(copy.buffer, 0, buf.length / T.BYTES_PER_ELEMENT), spec.shape);
}

function fromTensor(name, t) {
  const d = t.data;
  const bytes = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return { name, dtype: t.type, shape: t.dims.map(Number), b64: bytes.toString('base64') };
}

async function main() {
  const [casesPath, outPath] = process.argv.slice(2);
  if (!casesPath || !outPath) throw new Error('usage: node onnx_ort_run.js cases.json results.json');
  const ort = loadOrt();
  const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8')).cases;
  const results = [];
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  for (const c of cases) {
    try {
      const s = await ort.InferenceSession.create(c.model, opts);
      const feeds = {};
      for (const i of c.inputs) feeds[i.name] = toTensor(ort, i);
      const out = await s.run(feeds);
      results.push({ name: c.name, outputs: c.outputs.map((n) => fromTensor(n, out[n])) });
      if (s.release) await s.release();
    } catch (err) {
      results.push({ name: c.name, error: String(err && err.message ? err.message : err) });
    }
  }
  fs.writeFileSync(outPath, JSON.stringify({ ort: ort.env.versions ? ort.env.versions.node : '?', results }));
}

main().catch((err) => { console.error(err); process.exit(1); });
