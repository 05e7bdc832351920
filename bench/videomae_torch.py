#!/usr/bin/python3
"""PyTorch reference for bench/videomae_bench.lua, run one forward at a time on request so that
the Lua bench can interleave it with its own runs (the machine is shared: load drifts).

    /usr/bin/python3 bench/videomae_torch.py THREADS COMMAND_FIFO

Builds the PyTorch composition of VideoMAEModel used for the fixtures
(tools/videomae_fixtures.py VideoMAE: nn.Conv3d tubelets, nn.Linear / nn.LayerNorm, functional
attention) at videomae-base's shape (hidden 768, 12 layers, 12 heads, 3072, patch 16,
tubelet 2, 16 frames of 224, final LayerNorm), random weights, eval + no_grad; input (2, 16, 3,
224, 224). Runs once (warm-up), prints "ready", then for every line read from COMMAND_FIFO:
  run   one forward; prints "run <wall seconds> <process CPU seconds>"
  rss   prints "rss <peak resident set in MB>" (ru_maxrss)
  quit  exit.
OpenBLAS reads OPENBLAS_CORETYPE and libgomp OMP_WAIT_POLICY from the environment the Lua bench
passes; the thread count is THREADS.
"""
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import videomae_fixtures as VF  # noqa: E402

threads = int(sys.argv[1])
fifo = sys.argv[2]
torch.set_num_threads(threads)
torch.manual_seed(0)

with torch.no_grad():
    model = VF.VideoMAE(D=768, layers=12, H=12, inter=3072, C=3, t=2, P=16, frames=16, image=224, eps=1e-12).eval()
    x = torch.randn(2, 16, 3, 224, 224)
    model(x)
    print("ready", flush=True)
    with open(fifo) as commands:
        for line in commands:
            what = line.strip()
            if what == "quit":
                break
            if what == "rss":
                print("rss %.1f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0), flush=True)
            elif what == "run":
                t0, c0 = time.perf_counter(), time.process_time()
                model(x)
                print("run %.6f %.6f" % (time.perf_counter() - t0, time.process_time() - c0), flush=True)
            else:
                print("unknown %s" % what, flush=True)
