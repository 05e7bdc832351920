"""PyTorch side of the step-1 training-step benchmark (issue 3, Performance).

    /usr/bin/python3 bench/oneencoder_step_torch.py [threads] [steps]   (default 2, 5)

One step-1 training step of the PyTorch mirror (tools/oneencoder_mirror.py):
B = 64 pairs, image features (64, 197, 768), text features (64, 32, 768),
d = 256, 4 heads, ff 2048, one UP layer; heads + tokens + MLP + UP forward and
backward, symmetric InfoNCE, AdamW (lr 1e-3, wd 1e-3) update; train mode with
dropout 0.1 everywhere. Features are fixed random tensors made once.
1 warm-up step, then 5 timed steps; prints the median and the process's peak
resident memory (ru_maxrss):

    torch_threads: <N>
    torch_step1_seconds: <median wall seconds>
    torch_step1_cpu_seconds: <median process CPU seconds, all threads>
    torch_peak_rss_mb: <MiB>
"""
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import oneencoder_mirror as M  # noqa: E402

B, L_IMAGE, L_TEXT, D_IN, D = 64, 197, 32, 768, 256
WARMUP, TIMED = 1, int(sys.argv[2]) if len(sys.argv) > 2 else 5


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = M.Step1Model(d=D, input_dims=(D_IN, D_IN), num_head=4, num_layers=1,
                         dim_feedforward=2048, dropout=0.1)
    model.train()
    opt = M.make_adamw(model, lr=1e-3, weight_decay=1e-3)
    image = torch.randn(B, L_IMAGE, D_IN)
    text = torch.randn(B, L_TEXT, D_IN)

    times, cpu = [], []
    for i in range(WARMUP + TIMED):
        c0 = time.process_time()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _, _ = model(image, text)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        dc = time.process_time() - c0
        if not torch.isfinite(loss):
            raise SystemExit("non-finite loss at step %d" % i)
        if i >= WARMUP:
            times.append(dt)
            cpu.append(dc)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print("torch_threads: %d" % threads)
    print("torch_step1_seconds: %.4f" % statistics.median(times))
    # CPU seconds of the whole process per step (all threads), useful when the
    # machine is shared and wall time is noisy
    print("torch_step1_cpu_seconds: %.4f" % statistics.median(cpu))
    print("torch_peak_rss_mb: %.1f" % (peak_kb / 1024.0))


if __name__ == "__main__":
    main()
