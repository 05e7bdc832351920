// tfjs_fixtures.js: references for spec/tfjs_spec.lua computed by TensorFlow.js itself
// (@tensorflow/tfjs-core, -layers, -backend-cpu 4.22.0, pure JavaScript, in node).
//   mkdir -p /tmp/tfjsref && cd /tmp/tfjsref && npm install --ignore-scripts \
//     @tensorflow/tfjs-core@4.22.0 @tensorflow/tfjs-layers@4.22.0 @tensorflow/tfjs-backend-cpu@4.22.0
//   NODE_PATH=/tmp/tfjsref/node_modules node tools/tfjs_fixtures.js small            # (a)
//   /usr/bin/python3 tools/tfjs_images.py && \
//   NODE_PATH=/tmp/tfjsref/node_modules node tools/tfjs_fixtures.js mobilenet [model dir]  # (b)
// (a) Small layers models with seeded random weights covering every supported layer, saved
//     through tf.io.withSaveHandler and re-encoded as float32, float16, uint8 (affine
//     w = min + scale * q per weight) and, for seqnet, uint16, each loaded back by TF.js (which decodes the manifest
//     itself) and run on fixed inputs: spec/fixtures/tfjs/<model>_<enc>/{model.json, *.bin} and
//     <model>_<enc>/ref.safetensors (x, and one entry per output / named layer).
// (b) nsfwjs's MobileNetV2 (data/nsfwjs/mobilenet_v2, from scripts/fetch-nsfwjs.sh) on the
//     images tools/tfjs_images.py decoded to raw RGB: nsfwjs's preprocessing done by TF.js
//     (x / 255, tf.image.resizeBilinear to 224 with alignCorners = true), then the pooled
//     features (flatten_1, 1280) and the class probabilities (dense_3, 5):
//     spec/fixtures/tfjs/mobilenet_v2_ref.safetensors.
'use strict';
const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tl = require('@tensorflow/tfjs-layers');

const OUT = path.join(__dirname, '..', 'spec', 'fixtures', 'tfjs');

// ---- a small seeded generator (mulberry32) so the fixtures do not depend on TF.js's RNG ----
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function uniform(r, n, lo, hi) {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

// ---- safetensors writer (8-byte little-endian header length, JSON header, raw F32) ----
function writeSafetensors(file, tensors) {
  const header = {};
  let off = 0;
  const bufs = [];
  for (const [name, t] of Object.entries(tensors)) {
    const data = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + data.length] };
    off += data.length;
    bufs.push(data);
  }
  let h = Buffer.from(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.from(' '.repeat(pad))]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, ...bufs]));
}

// ---- weight re-encoding: float32 | float16 | uint8 ----
function f32ToF16(v) {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const s = (x >>> 16) & 0x8000;
  let e = ((x >>> 23) & 0xff) - 127 + 15;
  let m = x & 0x7fffff;
  if (e <= 0) { // subnormal half (or zero), round to nearest even
    if (e < -10) return s;
    m |= 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return s | h;
  }
  if (e >= 31) return s | 0x7c00;
  let h = (e << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return s | h;
}
function encodeWeights(specs, data, enc) {
  const f = new Float32Array(data);
  let at = 0;
  const outSpecs = [], parts = [];
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const w = f.subarray(at, at + n);
    at += n;
    if (enc === 'f32') {
      outSpecs.push({ name: s.name, shape: s.shape, dtype: 'float32' });
      parts.push(Buffer.from(new Float32Array(w).buffer));
    } else if (enc === 'f16') {
      const h = new Uint16Array(n);
      for (let i = 0; i < n; i++) h[i] = f32ToF16(w[i]);
      outSpecs.push({ name: s.name, shape: s.shape, dtype: 'float32', quantization: { dtype: 'float16' } });
      parts.push(Buffer.from(h.buffer));
    } else {
      const top = enc === 'u8' ? 255 : 65535;
      let lo = Infinity, hi = -Infinity;
      for (const v of w) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const scale = hi > lo ? (hi - lo) / top : 1;
      const q = enc === 'u8' ? new Uint8Array(n) : new Uint16Array(n);
      for (let i = 0; i < n; i++) q[i] = Math.max(0, Math.min(top, Math.round((w[i] - lo) / scale)));
      outSpecs.push({ name: s.name, shape: s.shape, dtype: 'float32',
        quantization: { dtype: enc === 'u8' ? 'uint8' : 'uint16', min: lo, scale } });
      parts.push(Buffer.from(q.buffer));
    }
  }
  const buf = Buffer.concat(parts);
  return { specs: outSpecs, data: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) };
}

async function artifactsOf(model) {
  let art;
  await model.save(tf.io.withSaveHandler(async (a) => {
    art = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return art;
}

// ---- the small models ----
function setSeededWeights(model, seed) {
  const r = rng(seed);
  for (const layer of model.layers) {
    const ws = layer.getWeights();
    if (!ws.length) continue;
    const cls = layer.getClassName();
    const vals = ws.map((w, k) => {
      const n = w.size;
      let a;
      if (cls === 'BatchNormalization') {
        const name = layer.weights[k].originalName || layer.weights[k].name;
        if (/gamma/.test(name)) a = uniform(r, n, 0.5, 1.5);
        else if (/beta/.test(name)) a = uniform(r, n, -0.5, 0.5);
        else if (/moving_mean/.test(name)) a = uniform(r, n, -0.3, 0.3);
        else a = uniform(r, n, 0.5, 2.0);
      } else {
        const fanIn = w.shape.length >= 2 ? w.shape.slice(0, -1).reduce((x, y) => x * y, 1) : 4;
        const lim = w.shape.length >= 2 ? Math.sqrt(3 / fanIn) * 1.5 : 0.3;
        a = uniform(r, n, -lim, lim);
      }
      return tf.tensor(a, w.shape);
    });
    layer.setWeights(vals);
  }
}

// functional: every layer class, several outputs
function convnet() {
  const L = tl.layers;
  const x = tl.input({ shape: [9, 11, 3], name: 'image' });
  let t = L.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'pad' }).apply(x);
  t = L.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', name: 'conv_a' }).apply(t);
  t = L.batchNormalization({ epsilon: 1e-3, name: 'bn_a' }).apply(t);
  const a = L.reLU({ maxValue: 6, name: 'relu_a' }).apply(t);
  t = L.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, padding: 'same', useBias: false, name: 'dw_b' }).apply(a);
  t = L.batchNormalization({ name: 'bn_b' }).apply(t);
  t = L.activation({ activation: 'relu6', name: 'act_b' }).apply(t);
  t = L.conv2d({ filters: 8, kernelSize: 1, padding: 'same', useBias: false, name: 'proj_b' }).apply(t);
  t = L.batchNormalization({ name: 'bn_proj_b' }).apply(t);
  t = L.add({ name: 'add_b' }).apply([a, t]);
  t = L.batchNormalization({ name: 'bn_after_add' }).apply(t);
  const mp = L.maxPooling2d({ poolSize: 2, padding: 'same', name: 'maxpool' }).apply(t);
  t = L.averagePooling2d({ poolSize: 2, strides: 1, padding: 'same', name: 'avgpool_same' }).apply(mp);
  t = L.conv2d({ filters: 6, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'sigmoid', name: 'conv_dil' }).apply(t);
  t = L.activation({ activation: 'tanh', name: 'tanh' }).apply(t);
  const g = L.globalAveragePooling2d({ name: 'gap' }).apply(t);
  t = L.dense({ units: 5, activation: 'relu', name: 'fc1' }).apply(g);
  t = L.dropout({ rate: 0.5, name: 'drop' }).apply(t);
  const probs = L.dense({ units: 4, activation: 'softmax', name: 'probs' }).apply(t);
  // Flatten reads NHWC order; Dense on a map and on tokens; Reshape; GlobalMaxPooling2D
  let f = L.averagePooling2d({ poolSize: [2, 3], strides: [1, 2], padding: 'valid', name: 'avgpool_valid' }).apply(mp);
  f = L.flatten({ name: 'flat' }).apply(f);
  const flatOut = L.dense({ units: 3, name: 'flat_fc' }).apply(f);
  let d = L.dense({ units: 5, activation: 'tanh', name: 'fc_map' }).apply(mp);
  d = L.reshape({ targetShape: [-1, 5], name: 'tokens' }).apply(d);
  d = L.dense({ units: 4, name: 'fc_tokens' }).apply(d);
  d = L.activation({ activation: 'softmax', name: 'token_softmax' }).apply(d);
  const gm = L.globalMaxPooling2d({ name: 'gmp' }).apply(mp);
  let r = L.reshape({ targetShape: [2, 2, 2], name: 'reshape_map' }).apply(gm);
  r = L.conv2d({ filters: 3, kernelSize: 2, strides: 2, padding: 'same', name: 'conv_s2_same' }).apply(r);
  r = L.softmax({ axis: -1, name: 'map_softmax' }).apply(r);
  return tl.model({ inputs: x, outputs: [probs, flatOut, d, r], name: 'convnet' });
}

// Sequential without an InputLayer (the first layer declares the input shape)
function seqnet() {
  const L = tl.layers;
  return tl.sequential({
    name: 'seqnet',
    layers: [
      L.conv2d({ inputShape: [8, 8, 2], filters: 4, kernelSize: [3, 2], strides: [2, 1], padding: 'same', activation: 'relu', name: 's_conv' }),
      L.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', activation: 'relu6', name: 's_dw' }),
      L.batchNormalization({ name: 's_bn' }),
      L.maxPooling2d({ poolSize: 2, strides: 1, padding: 'valid', name: 's_pool' }),
      L.flatten({ name: 's_flat' }),
      L.dense({ units: 6, name: 's_fc' }),
      L.batchNormalization({ name: 's_fc_bn' }),
      L.activation({ activation: 'sigmoid', name: 's_sig' }),
      L.dense({ units: 3, activation: 'linear', name: 's_out' }),
    ],
  });
}

function inputOf(shape, seed) {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(uniform(r, n, -1, 1), shape);
}

async function small() {
  const models = [
    { name: 'convnet', build: convnet, input: [2, 9, 11, 3], seed: 11,
      encodings: ['f32', 'f16', 'u8'],
      named: ['conv_a', 'bn_a', 'relu_a', 'dw_b', 'add_b', 'bn_after_add', 'maxpool', 'avgpool_same', 'gap', 'drop', 'flat', 'tokens'] },
    { name: 'seqnet', build: seqnet, input: [3, 8, 8, 2], seed: 12, encodings: ['f32', 'f16', 'u8', 'u16'],
      named: ['s_conv', 's_dw', 's_bn', 's_flat', 's_fc'] },
  ];
  for (const spec of models) {
    const model = spec.build();
    setSeededWeights(model, spec.seed);
    const art = await artifactsOf(model);
    for (const enc of spec.encodings) {
      const dir = path.join(OUT, `${spec.name}_${enc}`);
      fs.mkdirSync(dir, { recursive: true });
      const { specs, data } = encodeWeights(art.weightSpecs, art.weightData, enc);
      const bin = 'group1-shard1of1.bin';
      fs.writeFileSync(path.join(dir, bin), Buffer.from(data));
      const json = { format: 'layers-model', generatedBy: `TensorFlow.js tfjs-layers v${tl.version_layers}`,
        convertedBy: 'tools/tfjs_fixtures.js (' + enc + ')', modelTopology: art.modelTopology,
        weightsManifest: [{ paths: [bin], weights: specs }] };
      fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
      // TF.js loads the encoded files back (it decodes float16 / uint8 itself) and runs them
      const loaded = await tl.loadLayersModel(tf.io.fromMemory({ modelTopology: art.modelTopology, weightSpecs: specs, weightData: data }));
      const x = inputOf(spec.input, spec.seed + 100);
      const refs = { x: { data: x.dataSync(), shape: x.shape } };
      const outs = [].concat(loaded.predict(x));
      loaded.outputNames.forEach((n, k) => { refs['out:' + loaded.outputLayers[k].name] = { data: outs[k].dataSync(), shape: outs[k].shape }; });
      const inner = tl.model({ inputs: loaded.inputs, outputs: spec.named.map((n) => loaded.getLayer(n).output) });
      const ys = [].concat(inner.predict(x));
      spec.named.forEach((n, k) => { refs['layer:' + n] = { data: ys[k].dataSync(), shape: ys[k].shape }; });
      writeSafetensors(path.join(dir, 'ref.safetensors'), refs);
      console.log('wrote', dir, Object.keys(refs).length - 1, 'references');
    }
  }
}

// ---- (b) the real MobileNetV2 ----
async function mobilenet(dir) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const g = json.weightsManifest[0];
  const bytes = Buffer.concat(g.paths.map((p) => fs.readFileSync(path.join(dir, p))));
  const model = await tl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: g.weights,
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) }));
  const feats = tl.model({ inputs: model.inputs, outputs: [model.getLayer('flatten_1').output, model.getLayer('dense_3').output] });
  const list = JSON.parse(fs.readFileSync('/tmp/tfjs_images/list.json', 'utf8'));
  const refs = {};
  for (const im of list) {
    const raw = fs.readFileSync(im.raw);
    const img = tf.tensor3d(new Int32Array(raw), [im.height, im.width, 3], 'int32');
    // nsfwjs 4.3.0 NSFWJS.infer: img.toFloat().div(255), resizeBilinear(size, alignCorners = true)
    // when the image is not already size x size, reshape to (1, size, size, 3)
    let x = tf.div(tf.cast(img, 'float32'), tf.scalar(255)); // toFloat() in nsfwjs's source: a cast
    if (im.height !== 224 || im.width !== 224) x = tf.image.resizeBilinear(x, [224, 224], true);
    x = tf.reshape(x, [1, 224, 224, 3]);
    const [p, c] = feats.predict(x);
    refs['pooled:' + im.name] = { data: p.dataSync(), shape: p.shape };
    refs['probs:' + im.name] = { data: c.dataSync(), shape: c.shape };
    refs['input:' + im.name] = { data: tf.slice(x, [0, 100, 100, 0], [1, 4, 4, 3]).dataSync(), shape: [1, 4, 4, 3] };
    console.log(im.name, Array.from(c.dataSync()).map((v) => v.toFixed(4)).join(' '));
  }
  writeSafetensors(path.join(OUT, 'mobilenet_v2_ref.safetensors'), refs);
}

(async () => {
  await tf.setBackend('cpu');
  const what = process.argv[2];
  if (what === 'small') await small();
  else if (what === 'mobilenet') await mobilenet(process.argv[3] || path.join(__dirname, '..', 'data', 'nsfwjs', 'mobilenet_v2'));
  else throw new Error('usage: node tools/tfjs_fixtures.js small | mobilenet [dir]');
})().catch((e) => { console.error(e); process.exit(1); });
