#!/bin/sh
# fetch-nsfwjs.sh: puts nsfwjs's MobileNetV2 (a TF.js layers model, 224x224 RGB in [0, 1],
# uint8-quantised weights) at data/nsfwjs/mobilenet_v2/model.json + group1-shard1of1.bin
# (git-ignored), for the mobilenet_v2 encoder, spec/tfjs_spec.lua and bench/tfjs_bench.lua.
# Source: the npm package nsfwjs@4.3.0 (MIT), which ships the model as JavaScript modules
# (dist/models/mobilenet_v2/model.min.js: topology and manifest; group1-shard1of1.min.js: the
# weights as one base64 string); tools/nsfwjs_convert.js writes them out with node, unchanged.
# The tarball and both results are checked against pinned SHA-256 sums. Idempotent: does
# nothing when both checked files are there. Needs npm and node at set-up time only; nothing
# at run time needs node.
set -eu
PKG="nsfwjs@4.3.0"
TGZ_NAME="nsfwjs-4.3.0.tgz"
TGZ_SHA256="4496790efc9bdc6f3e85a826a8e482c1fa1e9db4b3d18c095e98cc0c73cfb12f"
JSON_SHA256="eb83e54380650bba231d92b88b8de0cbc45797016f2992b527c9b65e161ceb36"
BIN_SHA256="8e7dddbb16acacc1bf1601b1b8a761e730ff934b7f2d7771312b2f000e5f5f13"

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/data/nsfwjs"
out="$dir/mobilenet_v2"
json="$out/model.json"
bin="$out/group1-shard1of1.bin"

NAME=fetch-nsfwjs
. "$root/scripts/npm-pack.sh"

sha_ok "$json" "$JSON_SHA256" && sha_ok "$bin" "$BIN_SHA256" && exit 0

command -v node >/dev/null 2>&1 || fail "node not found (as root: apt-get install -y nodejs)"
mkdir -p "$dir"
tgz="$dir/$TGZ_NAME"
npm_pack_checked "$PKG" "$dir" "$TGZ_NAME" "$TGZ_SHA256"
work=$(mktemp -d "$dir/extract.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" package/dist/models/mobilenet_v2/model.min.js \
  package/dist/models/mobilenet_v2/group1-shard1of1.min.js ||
  fail "$tgz: no package/dist/models/mobilenet_v2/{model,group1-shard1of1}.min.js"
mkdir -p "$work/out"
node "$root/tools/nsfwjs_convert.js" "$work/package/dist/models/mobilenet_v2" "$work/out" || fail "conversion failed"
sha_ok "$work/out/model.json" "$JSON_SHA256" || fail "model.json: SHA-256 $(sha256sum "$work/out/model.json" | cut -d' ' -f1), expected $JSON_SHA256"
sha_ok "$work/out/group1-shard1of1.bin" "$BIN_SHA256" || fail "group1-shard1of1.bin: unexpected SHA-256"
mkdir -p "$out"
mv "$work/out/group1-shard1of1.bin" "$bin"
mv "$work/out/model.json" "$json"
echo "fetch-nsfwjs: wrote $json and $bin"
