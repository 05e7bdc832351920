// nsfwjs_convert.js: turns nsfwjs's MobileNetV2 JavaScript modules (set-up time only) into a
// TF.js layers model on disk:
//   node tools/nsfwjs_convert.js <package>/dist/models/mobilenet_v2 <out_dir>
// reads model.min.js (a UMD module exporting {modelTopology, weightsManifest}) and
// group1-shard*.min.js (each exporting the shard's bytes as one base64 string), writes
// <out_dir>/model.json (format "layers-model", the manifest's paths renamed to the .bin
// files) and <out_dir>/group1-shard1of1.bin (the decoded bytes). Nothing is changed in the
// topology or the weights; run scripts/fetch-nsfwjs.sh rather than this file.
'use strict';
const fs = require('fs');
const path = require('path');

function main() {
  const [src, out] = process.argv.slice(2);
  if (!src || !out) throw new Error('usage: node nsfwjs_convert.js <models/mobilenet_v2 folder> <out_dir>');
  const model = require(path.resolve(src, 'model.min.js'));
  if (!model.modelTopology || !Array.isArray(model.weightsManifest)) throw new Error('model.min.js: no modelTopology / weightsManifest');
  const manifest = model.weightsManifest.map((g) => {
    const paths = g.paths.map((p) => {
      const mod = require(path.resolve(src, p + '.min.js'));
      const b64 = typeof mod === 'string' ? mod : mod.default;
      if (typeof b64 !== 'string') throw new Error(p + '.min.js: no base64 string');
      const bytes = Buffer.from(b64, 'base64');
      fs.writeFileSync(path.join(out, p + '.bin'), bytes);
      return p + '.bin';
    });
    return { paths, weights: g.weights };
  });
  const json = { format: 'layers-model', generatedBy: 'nsfwjs@4.3.0 (converted by tools/nsfwjs_convert.js)',
    convertedBy: null, modelTopology: model.modelTopology, weightsManifest: manifest };
  fs.writeFileSync(path.join(out, 'model.json'), JSON.stringify(json));
}
main();
