#!/usr/bin/python3
"""PyTorch references for bench/frozen_bench.lua, run one at a time on request so that the
Lua bench can interleave them with its own runs (the machine is shared: load drifts, and
alternating ours / theirs exposes both to the same conditions).

    /usr/bin/python3 bench/frozen_torch.py THREADS COMMAND_FIFO

Loads both models, runs each once (warm-up), prints "ready", then for every line read from
COMMAND_FIFO runs one forward and prints "<what> <wall seconds> <process CPU seconds>":
- vit:  torchvision's vit_b_16 (random weights, eval, no_grad), batch 8 at 224x224, the whole
        forward (its classification head is one 768x1000 product, under 0.1% of the work);
- bert: nn.TransformerEncoder of 12 post-norm layers (d 768, 12 heads, 3072, GELU,
        batch_first) in eval + no_grad, which takes PyTorch's fused fast path
        (torch._transformer_encoder_layer_fwd), on 64 x 32 tokens, every token real (no mask:
        no nested tensors and no rows skipped, the same work as a BertModel forward without
        its embeddings);
- quit: exit.
CPU seconds count every thread of the process. The thread count is THREADS; OpenBLAS reads
OPENBLAS_CORETYPE and libgomp OMP_WAIT_POLICY from the environment the Lua bench passes.
"""
import sys
import time

import torch
import torch.nn as nn
import torchvision

threads = int(sys.argv[1])
fifo = sys.argv[2]
torch.set_num_threads(threads)
torch.manual_seed(0)

with torch.no_grad():
    vit = torchvision.models.vit_b_16().eval()
    x = torch.randn(8, 3, 224, 224)
    layer = nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=False, layer_norm_eps=1e-12)
    enc = nn.TransformerEncoder(layer, 12, enable_nested_tensor=False).eval()
    h = torch.randn(64, 32, 768)
    runs = {"vit": lambda: vit(x), "bert": lambda: enc(h)}
    for fn in runs.values():
        fn()
    print("ready", flush=True)
    with open(fifo) as commands:
        for line in commands:
            what = line.strip()
            if what == "quit":
                break
            if what not in runs:
                print("unknown %s" % what, flush=True)
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            runs[what]()
            print("%s %.6f %.6f" % (what, time.perf_counter() - t0, time.process_time() - c0), flush=True)
