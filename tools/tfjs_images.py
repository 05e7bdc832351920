"""tfjs_images.py: the real images of the MobileNetV2 references (spec/tfjs_spec.lua).

Writes spec/fixtures/tfjs/raccoon.jpg (SciPy's scipy.misc.face photograph, BSD-3-Clause,
1024x768 resized to 320x240 with Pillow's LANCZOS, JPEG quality 90) and
spec/fixtures/tfjs/ascent.png (scipy.misc.ascent, BSD-3-Clause, 512x512 grayscale resized
to 200x160), then decodes them and spec/fixtures/frozen/photo.jpg with Pillow (libjpeg-turbo,
as the project's loader) to raw RGB bytes under /tmp/tfjs_images with list.json, which
tools/tfjs_fixtures.js (mobilenet) reads. Run with /usr/bin/python3 (Debian's SciPy, Pillow).
"""
import json
import os

import numpy as np
from PIL import Image
from scipy import misc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "spec", "fixtures", "tfjs")
TMP = "/tmp/tfjs_images"


def main():
    os.makedirs(OUT, exist_ok=True)
    os.makedirs(TMP, exist_ok=True)
    face = Image.fromarray(misc.face()).resize((320, 240), Image.LANCZOS)
    face.save(os.path.join(OUT, "raccoon.jpg"), quality=90)
    ascent = Image.fromarray(np.clip(misc.ascent(), 0, 255).astype(np.uint8)).resize((200, 160), Image.LANCZOS)
    ascent.save(os.path.join(OUT, "ascent.png"))
    items = []
    for name, path in [("raccoon", os.path.join(OUT, "raccoon.jpg")), ("ascent", os.path.join(OUT, "ascent.png")),
                       ("photo", os.path.join(ROOT, "spec", "fixtures", "frozen", "photo.jpg"))]:
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
        raw = os.path.join(TMP, name + ".raw")
        img.tofile(raw)
        items.append({"name": name, "raw": raw, "height": img.shape[0], "width": img.shape[1]})
    with open(os.path.join(TMP, "list.json"), "w") as f:
        json.dump(items, f)
    print("wrote", [i["name"] for i in items])


if __name__ == "__main__":
    main()
