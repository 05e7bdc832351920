#!/bin/sh
# onnx_speech_fixtures.sh: regenerates the speech_embedding fixtures in spec/fixtures/onnx/:
# two espeak-ng utterances as 16 kHz mono 16-bit WAV (a 2.5 s sentence, and a word shorter than
# one 0.78 s window, which the pipeline centres in silence) and speech_reference.safetensors,
# openWakeWord's pipeline on them run by ONNX Runtime (tools/onnx_speech_reference.js).
# Development tool only. Needs espeak-ng, ffmpeg, node with onnxruntime-node@1.30.0 in
# $ORT_DIR (default /tmp/onnx_ort) and the models (sh scripts/fetch-openwakeword.sh).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
export ORT_DIR=${ORT_DIR:-/tmp/onnx_ort}
out="$root/spec/fixtures/onnx"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sh "$root/scripts/fetch-openwakeword.sh"
espeak-ng -v en-us -s 160 -w "$work/sentence.wav" "The quick brown fox jumps over the lazy dog."
espeak-ng -v en-gb -s 170 -w "$work/word.wav" "Yes."
for n in sentence word; do
  ffmpeg -loglevel error -y -i "$work/$n.wav" -ar 16000 -ac 1 -c:a pcm_s16le -map_metadata -1 -fflags +bitexact "$out/speech_$n.wav"
done
node "$root/tools/onnx_speech_reference.js" "$root/data/openwakeword" "$out/speech_reference.safetensors" \
  "$out/speech_sentence.wav" "$out/speech_word.wav"
echo "onnx_speech_fixtures: wrote $out/speech_sentence.wav, speech_word.wav, speech_reference.safetensors"
