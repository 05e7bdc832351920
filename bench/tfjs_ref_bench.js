// tfjs_ref_bench.js: TensorFlow.js's own timing of nsfwjs's MobileNetV2 for bench/tfjs_bench.lua
// (the reference measured in the same run): @tensorflow/tfjs-core, -layers, -backend-cpu 4.22.0
// (pure JavaScript, one thread) from $TFJS_DIR/node_modules.
//   node bench/tfjs_ref_bench.js MODEL_DIR BATCH REPS
// Prints "tfjs_seconds: <median wall seconds per forward>" on a (BATCH, 224, 224, 3) input of values
// in [0, 1] (the same formula as the Lua side), after a warm-up forward of one image (a batch of 16
// takes half a minute on this backend).
'use strict';
const fs = require('fs');
const path = require('path');
const dir = process.env.TFJS_DIR || path.join(__dirname, '..', 'data', 'tfjs');
const req = (m) => require(path.join(path.resolve(dir), 'node_modules', m));
const tf = req('@tensorflow/tfjs-core');
req('@tensorflow/tfjs-backend-cpu');
const tl = req('@tensorflow/tfjs-layers');

async function main() {
  const [modelDir, batch, reps] = process.argv.slice(2);
  await tf.setBackend('cpu');
  const json = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json'), 'utf8'));
  const g = json.weightsManifest[0];
  const bytes = Buffer.concat(g.paths.map((p) => fs.readFileSync(path.join(modelDir, p))));
  const model = await tl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: g.weights,
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) }));
  const B = Number(batch), n = B * 224 * 224 * 3;
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (i % 251) / 250;
  const x = tf.tensor4d(v, [B, 224, 224, 3]);
  const run = (t) => { const y = model.predict(t || x); y.dataSync(); y.dispose(); };
  const one = tf.slice(x, [0, 0, 0, 0], [1, 224, 224, 3]);
  run(one);
  const t = [];
  for (let r = 0; r < Number(reps); r++) {
    const t0 = process.hrtime.bigint();
    run();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((a, b) => a - b);
  console.log('tfjs_seconds: ' + t[Math.floor((t.length - 1) / 2)]);
}
main().catch((e) => { console.error(e); process.exit(1); });
