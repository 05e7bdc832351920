#!/usr/bin/python3
"""Generate the small image fixtures used by spec/image_spec.lua.

Run from the repository root with Debian's interpreter (it has PIL, cv2, numpy):
    /usr/bin/python3 tools/gen_image_fixtures.py

Writes spec/fixtures/image/. Reference arrays are stored as "raw" files:
    b"OERAW <dtype> <d1> <d2> ... \n" followed by the C-order bytes
with dtype u8 or f32 (little endian). The specs parse that header in Lua.
"""
import io
import os
import struct
import zlib

import cv2
import numpy as np
from PIL import Image, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "image")
OUT = os.path.normpath(OUT)


def path(name):
    return os.path.join(OUT, name)


def save_raw(name, arr):
    arr = np.ascontiguousarray(arr)
    dt = {np.dtype(np.uint8): "u8", np.dtype(np.float32): "f32"}[arr.dtype]
    header = ("OERAW %s %s\n" % (dt, " ".join(str(d) for d in arr.shape))).encode()
    with open(path(name), "wb") as f:
        f.write(header)
        f.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def source(h, w, seed):
    """Smooth colour gradients plus a sinusoid plus noise: photo-like detail."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 127.5 + 100 * np.sin(x * 0.7) * np.cos(y * 0.5)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 18, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def pil_resize(arr, w, h, resample):
    return np.asarray(Image.fromarray(arr).resize((w, h), resample=resample))


def pil_resize_f32(arr, w, h, resample):
    chans = [np.asarray(Image.fromarray(arr[:, :, c], mode="F").resize((w, h), resample=resample))
             for c in range(arr.shape[2])]
    return np.stack(chans, axis=-1).astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    # ---------------- resize references ----------------
    src = source(23, 37, 1)                      # (H, W, C) = (23, 37, 3)
    Image.fromarray(src).save(path("src_37x23.png"))
    save_raw("src_37x23.raw", src)
    src40 = source(30, 40, 2)                    # exact 2x downscale case
    Image.fromarray(src40).save(path("src_40x30.png"))
    sizes = [(17, 11), (9, 6), (61, 50), (50, 13), (37, 23)]   # (w, h)
    for (w, h) in sizes:
        save_raw("cv_linear_%dx%d.raw" % (w, h), cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR))
        save_raw("pil_bicubic_%dx%d.raw" % (w, h), pil_resize(src, w, h, Image.BICUBIC))
        save_raw("pil_bilinear_%dx%d.raw" % (w, h), pil_resize(src, w, h, Image.BILINEAR))
    save_raw("cv_linear_40x30_to_20x15.raw", cv2.resize(src40, (20, 15), interpolation=cv2.INTER_LINEAR))
    save_raw("cv_linear_40x30_to_13x10.raw", cv2.resize(src40, (13, 10), interpolation=cv2.INTER_LINEAR))
    # float32 inputs (values in 0..1): cv2 float path and PIL mode "F"
    srcf = (src.astype(np.float32) / 255.0).astype(np.float32)
    for (w, h) in [(17, 11), (45, 30)]:
        save_raw("cv_linear_f32_%dx%d.raw" % (w, h), cv2.resize(srcf, (w, h), interpolation=cv2.INTER_LINEAR))
        save_raw("pil_bicubic_f32_%dx%d.raw" % (w, h), pil_resize_f32(srcf, w, h, Image.BICUBIC))
        save_raw("pil_bilinear_f32_%dx%d.raw" % (w, h), pil_resize_f32(srcf, w, h, Image.BILINEAR))
    # normalisation reference: imagenet preset on the source, (3, H, W) float32
    mean = np.array([0.485, 0.456, 0.406], np.float64)
    std = np.array([0.229, 0.224, 0.225], np.float64)
    norm = ((src.astype(np.float64) / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1)
    save_raw("norm_imagenet.raw", norm)

    # ---------------- JPEG variants ----------------
    jsrc = source(27, 45, 3)
    im = Image.fromarray(jsrc)
    variants = {
        "baseline.jpg": dict(quality=90),
        "baseline444.jpg": dict(quality=95, subsampling=0),
        "progressive.jpg": dict(quality=85, progressive=True),
    }
    for name, kw in variants.items():
        im.save(path(name), "JPEG", **kw)
    im.convert("L").save(path("gray.jpg"), "JPEG", quality=90)
    im.convert("CMYK").save(path("cmyk.jpg"), "JPEG", quality=90)
    # EXIF orientation 1..8 on a small, clearly asymmetric picture
    osrc = source(13, 21, 4)
    osrc[0:3, 0:5] = [255, 0, 0]   # a red block in the top-left corner
    for o in range(1, 9):
        ex = Image.Exif()
        ex[0x0112] = o
        Image.fromarray(osrc).save(path("orient%d.jpg" % o), "JPEG", quality=92, exif=ex.tobytes())
    # big-endian (Motorola) EXIF orientation: hand-built APP1 so both byte orders are covered
    buf = io.BytesIO()
    Image.fromarray(osrc).save(buf, "JPEG", quality=92)
    jb = buf.getvalue()
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + \
        struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0)
    app1 = b"Exif\x00\x00" + tiff
    seg = b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1
    with open(path("orient6_be.jpg"), "wb") as f:
        f.write(jb[:2] + seg + jb[2:])
    for name in list(variants) + ["gray.jpg", "cmyk.jpg", "orient6_be.jpg"] + ["orient%d.jpg" % o for o in range(1, 9)]:
        with Image.open(path(name)) as j:
            j = ImageOps.exif_transpose(j)
            save_raw(name.replace(".jpg", ".raw"), np.asarray(j.convert("RGB")))

    # ---------------- PNG variants ----------------
    psrc = source(11, 19, 5)
    Image.fromarray(psrc).save(path("rgb8.png"))
    save_raw("rgb8.raw", psrc)
    Image.fromarray(psrc).convert("L").save(path("gray8.png"))
    save_raw("gray8.raw", np.asarray(Image.open(path("gray8.png"))))      # (H, W)
    rng = np.random.default_rng(6)
    alpha = rng.integers(0, 256, size=(11, 19), dtype=np.uint8)
    alpha[0, :] = 0
    alpha[1, :] = 255
    rgba = np.dstack([psrc, alpha])
    Image.fromarray(rgba, "RGBA").save(path("rgba8.png"))
    save_raw("rgba8.raw", rgba)
    la = np.dstack([np.asarray(Image.open(path("gray8.png"))), alpha])
    Image.fromarray(la, "LA").save(path("gray_alpha8.png"))
    save_raw("gray_alpha8.raw", la)
    pal = Image.fromarray(psrc).quantize(colors=16)
    pal.save(path("palette.png"))
    save_raw("palette.raw", np.asarray(pal.convert("RGB")))
    # 16-bit: cv2 writes 16-bit PNGs (BGR order on disk is handled by cv2)
    rgb16 = (rng.integers(0, 65536, size=(9, 14, 3))).astype(np.uint16)
    cv2.imwrite(path("rgb16.png"), rgb16[:, :, ::-1])
    save_raw("rgb16.raw", (rgb16 >> 8).astype(np.uint8))
    gray16 = (rng.integers(0, 65536, size=(9, 14))).astype(np.uint16)
    cv2.imwrite(path("gray16.png"), gray16)
    save_raw("gray16.raw", (gray16 >> 8).astype(np.uint8))
    # a PNG carrying a .jpg name: decoded by magic bytes
    Image.fromarray(psrc).save(path("png_named.jpg"), "PNG")

    # ---------------- unsupported / bombs ----------------
    Image.fromarray(psrc).save(path("small.gif"), "GIF")
    Image.fromarray(psrc).save(path("small.bmp"), "BMP")

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    with open(path("bomb.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    # zero-size PNG: a well-formed IHDR declaring width 0
    ihdr0 = struct.pack(">IIBBBBB", 0, 7, 8, 2, 0, 0, 0)
    with open(path("zero.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr0) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    # JPEG bomb: a real small JPEG whose SOF0 declares 60000 x 60000
    jb = bytearray(open(path("baseline.jpg"), "rb").read())
    i = 2
    while i < len(jb):
        marker, seglen = jb[i + 1], struct.unpack(">H", jb[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            jb[i + 5:i + 9] = struct.pack(">HH", 60000, 60000)
            break
        i += 2 + seglen
    open(path("bomb.jpg"), "wb").write(bytes(jb))


if __name__ == "__main__":
    main()
