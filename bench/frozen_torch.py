#!/usr/bin/python3
"""PyTorch references for bench/frozen_bench.lua, printed as `name: value` (seconds, median).

    /usr/bin/python3 bench/frozen_torch.py THREADS REPS

- torch_vit_b16_b8_seconds: torchvision's vit_b_16 (random weights, eval, no_grad), batch 8
  at 224x224, the whole forward (its classification head is one 768x1000 product, under 0.1%).
- torch_bert_base_b64x32_seconds: nn.TransformerEncoder of 12 post-norm layers (d 768,
  12 heads, 3072, GELU, batch_first) in eval + no_grad, which takes PyTorch's fused fast path
  (torch._transformer_encoder_layer_fwd); every token real (no mask, so no nested tensors and
  no rows skipped: the same work as a BertModel forward of 64 x 32 tokens without embeddings).
Wall and process CPU seconds (every thread): on a shared, loaded machine the CPU time is the
steadier figure. Both use the thread count given (OpenBLAS reads OPENBLAS_CORETYPE from the environment, which
the Lua bench sets to the core its own process uses).
"""
import statistics
import sys
import time

import torch
import torch.nn as nn

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(threads)
torch.manual_seed(0)


def median_time(fn):
    """(median wall seconds, median process CPU seconds over every thread)"""
    fn()
    t, c = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        t.append(time.perf_counter() - t0)
        c.append(time.process_time() - c0)
    return statistics.median(t), statistics.median(c)


with torch.no_grad():
    import torchvision
    vit = torchvision.models.vit_b_16().eval()
    x = torch.randn(8, 3, 224, 224)
    print("torch_vit_b16_b8_seconds: %.6f\ntorch_vit_b16_b8_cpu_seconds: %.6f" % median_time(lambda: vit(x)), flush=True)
    del vit

    layer = nn.TransformerEncoderLayer(768, 12, 3072, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=False, layer_norm_eps=1e-12)
    enc = nn.TransformerEncoder(layer, 12, enable_nested_tensor=False).eval()
    h = torch.randn(64, 32, 768)
    print("torch_bert_base_b64x32_seconds: %.6f\ntorch_bert_base_b64x32_cpu_seconds: %.6f" % median_time(lambda: enc(h)),
          flush=True)
