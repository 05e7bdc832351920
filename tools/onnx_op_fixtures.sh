#!/bin/sh
# onnx_op_fixtures.sh: regenerates spec/fixtures/onnx/ops/*.onnx (one-node models built with
# Debian's python3-onnx, tools/onnx_op_cases.py) and spec/fixtures/onnx/ops.safetensors (their
# inputs and ONNX Runtime's outputs, tools/onnx_ort_run.js). Development tool only.
# Needs /usr/bin/python3 with python3-onnx, and node with onnxruntime-node@1.30.0 installed in
# $ORT_DIR (default /tmp/onnx_ort):
#   mkdir -p /tmp/onnx_ort && (cd /tmp/onnx_ort && npm install --ignore-scripts onnxruntime-node@1.30.0)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
export ORT_DIR=${ORT_DIR:-/tmp/onnx_ort}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
/usr/bin/python3 tools/onnx_op_cases.py make spec/fixtures/onnx/ops "$work/cases.json"
node tools/onnx_ort_run.js "$work/cases.json" "$work/results.json"
/usr/bin/python3 tools/onnx_op_cases.py pack "$work/cases.json" "$work/results.json" spec/fixtures/onnx/ops.safetensors
