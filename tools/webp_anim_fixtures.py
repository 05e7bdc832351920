"""WebP fixtures for spec/webp_anim_spec.lua, decoded by Pillow (Debian's python3-pil 9.4).

    /usr/bin/python3 tools/webp_anim_fixtures.py      -> spec/fixtures/webp/

Writes small WebP files made by Pillow's encoders (animated: WebPAnimEncoder, which stores
later frames as sub-rectangles with blending and disposal, so the reader must compose them)
and, for each, the frames Pillow decodes: <name>.rgba (T*H*W*4 bytes, straight alpha) and
<name>.rgb (the same composited on white: (c*a + 255*(255-a) + 127) // 255, computed here with
numpy), plus manifest.lua (a Lua table: size, frame count, per-frame durations in ms, loop count).
"""
import json
import os

import numpy as np
from PIL import Image, features

OUT = os.path.join(os.path.dirname(__file__), "..", "spec", "fixtures", "webp")
assert features.check("webp_anim"), "this Pillow cannot write animated WebP"


def frames_rgba(seed, n, h, w, alpha):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    out = []
    for k in range(n):
        f = base.copy()
        # a moving opaque square and a changing patch: later frames differ in part only
        y, x = (2 * k) % (h - 4), (3 * k) % (w - 4)
        f[y:y + 4, x:x + 4, :3] = (40 * k) % 256
        f[y:y + 4, x:x + 4, 3] = 255
        f[h // 2:, : w // 3, :3] = rng.integers(0, 256, (h - h // 2, w // 3, 3), dtype=np.uint8)
        if not alpha:
            f[..., 3] = 255
        else:
            f[0, :, 3] = 0          # a transparent row
            f[1, :, 3] = 128        # half transparent
        out.append(Image.fromarray(f, "RGBA"))
    return out


def decode(path):
    im = Image.open(path)
    n = getattr(im, "n_frames", 1)
    fr, dur = [], []
    for i in range(n):
        im.seek(i)
        fr.append(np.asarray(im.convert("RGBA")))
        dur.append(int(im.info.get("duration", 0)))
    return np.stack(fr), dur


def composite_white(rgba):
    c = rgba[..., :3].astype(np.int64)
    a = rgba[..., 3:4].astype(np.int64)
    return ((c * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = {}
    # animated, lossless, with transparency, durations that differ per frame
    fr = frames_rgba(1, 5, 12, 16, alpha=True)
    fr[0].save(os.path.join(OUT, "anim_lossless_alpha.webp"), save_all=True, append_images=fr[1:],
               duration=[40, 80, 40, 120, 60], loop=0, lossless=True)
    # animated, lossy, opaque, looping twice
    fr = frames_rgba(2, 4, 16, 20, alpha=False)
    fr[0].save(os.path.join(OUT, "anim_lossy.webp"), save_all=True, append_images=fr[1:],
               duration=50, loop=2, lossless=False, quality=80)
    # animated, lossy with alpha (ALPH chunks inside ANMF)
    fr = frames_rgba(3, 3, 10, 14, alpha=True)
    fr[0].save(os.path.join(OUT, "anim_lossy_alpha.webp"), save_all=True, append_images=fr[1:],
               duration=100, loop=0, lossless=False, quality=90)
    # still images: lossless RGBA (VP8L) and lossy opaque (simple VP8 format)
    frames_rgba(4, 1, 9, 11, alpha=True)[0].save(os.path.join(OUT, "still_lossless_alpha.webp"), lossless=True)
    frames_rgba(5, 1, 8, 8, alpha=False)[0].convert("RGB").save(os.path.join(OUT, "still_lossy.webp"), quality=75)
    for name in sorted(os.listdir(OUT)):
        if not name.endswith(".webp"):
            continue
        stem = name[:-5]
        rgba, dur = decode(os.path.join(OUT, name))
        rgba.tofile(os.path.join(OUT, stem + ".rgba"))
        composite_white(rgba).tofile(os.path.join(OUT, stem + ".rgb"))
        t, h, w, _ = rgba.shape
        loop = Image.open(os.path.join(OUT, name)).info.get("loop", 0)
        cases[stem] = {"frames": t, "height": h, "width": w, "durations": dur, "loop": loop}
    with open(os.path.join(OUT, "manifest.lua"), "w") as f:
        f.write("-- written by tools/webp_anim_fixtures.py: what Pillow reads from each fixture\nreturn {\n")
        for stem in sorted(cases):
            c = cases[stem]
            f.write("  %s = { frames = %d, height = %d, width = %d, loop = %d, durations = { %s } },\n" % (
                stem, c["frames"], c["height"], c["width"], c["loop"], ", ".join(str(d) for d in c["durations"])))
        f.write("}\n")
    print(json.dumps(cases))


if __name__ == "__main__":
    main()
