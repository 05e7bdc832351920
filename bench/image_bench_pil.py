#!/usr/bin/python3
"""Reference pipelines for bench/image_bench.lua: decode + resize to 224x224 +
ImageNet normalisation into a (B, 3, 224, 224) float32 array, with PIL + numpy
(BILINEAR and BICUBIC, antialiased as Pillow does) and with OpenCV + numpy
(INTER_LINEAR). Single process, as a data loader worker would run it.

usage: image_bench_pil.py LISTFILE REPEATS
prints "name: value" lines (images per second)."""
import sys
import time

import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def pil_pipeline(paths, resample):
    from PIL import Image
    out = np.empty((len(paths), 3, 224, 224), np.float32)
    for i, p in enumerate(paths):
        with Image.open(p) as im:
            im = im.convert("RGB").resize((224, 224), resample=resample)
        x = np.asarray(im, dtype=np.float32) * (1 / 255.0)
        out[i] = ((x - MEAN) / STD).transpose(2, 0, 1)
    return out


def cv2_pipeline(paths):
    import cv2
    out = np.empty((len(paths), 3, 224, 224), np.float32)
    for i, p in enumerate(paths):
        im = cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        im = cv2.resize(im, (224, 224), interpolation=cv2.INTER_LINEAR)
        x = im.astype(np.float32) * (1 / 255.0)
        out[i] = ((x - MEAN) / STD).transpose(2, 0, 1)
    return out


def rate(fn, paths, repeats):
    """best of 3: (wall images/s, images per CPU-second)"""
    fn(paths[:2])  # warm up
    best = best_cpu = 0.0
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            fn(paths)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        best = max(best, repeats * len(paths) / dt)
        best_cpu = max(best_cpu, repeats * len(paths) / dc)
    return best, best_cpu


def show(name, r):
    print("%s_images_per_s: %.1f" % (name, r[0]))
    print("%s_images_per_cpu_s: %.1f" % (name, r[1]))


def main():
    paths = [l.strip() for l in open(sys.argv[1]) if l.strip()]
    repeats = int(sys.argv[2])
    from PIL import Image
    show("pil_bilinear", rate(lambda p: pil_pipeline(p, Image.BILINEAR), paths, repeats))
    show("pil_bicubic", rate(lambda p: pil_pipeline(p, Image.BICUBIC), paths, repeats))
    try:
        import cv2
        cv2.setNumThreads(1)
        show("cv2_linear_1thread", rate(cv2_pipeline, paths, repeats))
    except ImportError:
        pass


if __name__ == "__main__":
    main()
