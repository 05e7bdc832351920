// onnx_ort_bench.js: ONNX Runtime's timings for bench/onnx_bench.lua (the reference measured in the
// same run, at the same thread count). onnxruntime-node from $ORT_DIR (see tools/onnx_ort_run.js).
//   node bench/onnx_ort_bench.js speech MODEL_DIR SECONDS THREADS REPS
//       openWakeWord's pipeline (tools/onnx_speech_reference.js) on SECONDS of audio in one call
//       of the mel model and one of the embedding model, as the speech_embedding encoder with
//       window_batch >= the window count
//   node bench/onnx_ort_bench.js model PATH BATCH,C,H,W THREADS REPS
//       one model on a float32 input of that shape
// Prints "ort_seconds: <median wall seconds per run>" (after one warm-up run).
'use strict';
const path = require('path');
const ref = require(path.join(__dirname, '..', 'tools', 'onnx_speech_reference.js'));

async function median(fn, reps) {
  await fn();
  const t = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor((t.length - 1) / 2)];
}

async function main() {
  const [mode, a, b, threads, reps] = process.argv.slice(2);
  const ort = ref.loadOrt();
  const opts = { intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  let t;
  if (mode === 'speech') {
    const mel = await ort.InferenceSession.create(path.join(a, 'melspectrogram.onnx'), opts);
    const emb = await ort.InferenceSession.create(path.join(a, 'embedding_model.onnx'), opts);
    const n = Math.round(Number(b) * 16000), x = new Float32Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) >>> 0; x[i] = Math.round(8000 * Math.sin(i * 0.05) + ((s >>> 16) % 2000) - 1000); }
    t = await median(() => ref.features(ort, mel, emb, x), Number(reps));
  } else if (mode === 'model') {
    const s = await ort.InferenceSession.create(a, opts);
    const shape = b.split(',').map(Number);
    const x = new Float32Array(shape.reduce((p, q) => p * q, 1));
    for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.001);
    const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x, shape) };
    t = await median(() => s.run(feeds), Number(reps));
  } else {
    throw new Error('usage: node onnx_ort_bench.js speech DIR SECONDS THREADS REPS | model PATH SHAPE THREADS REPS');
  }
  console.log('ort_seconds: ' + t.toFixed(5));
}

main().catch((err) => { console.error(err); process.exit(1); });
