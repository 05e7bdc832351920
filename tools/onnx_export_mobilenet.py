"""torchvision's mobilenet_v2 exported to ONNX with Debian's PyTorch, for bench/onnx_bench.lua
(development and benchmark tool; the file is not committed):

    /usr/bin/python3 tools/onnx_export_mobilenet.py data/onnx/mobilenet_v2.onnx

Weights are torchvision's initialisation with a fixed seed (no download: pretrained weights are
not needed to time it). Eval mode (BatchNorm folded into the convolutions by the exporter's
constant folding), opset 13, a symbolic batch dimension.
"""
import os
import sys

import torch
import torchvision


def main(out):
    torch.manual_seed(0)
    m = torchvision.models.mobilenet_v2()
    m.eval()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    x = torch.randn(1, 3, 224, 224)
    tmp = out + ".tmp"
    torch.onnx.export(m, x, tmp, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
    os.replace(tmp, out)
    print("onnx_export_mobilenet: wrote %s (torch %s, torchvision %s)" % (out, torch.__version__, torchvision.__version__))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
