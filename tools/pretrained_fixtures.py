#!/usr/bin/python3
"""End-to-end fixtures for oe.pretrained (spec/pretrained_spec.lua): a OneEncoder text-image
checkpoint in the original code's layout, image files, a vocabulary, captions, and the
embeddings the PyTorch pipeline gives for them.

Run with Debian's python3-torch 1.13 / python3-torchvision / python3-opencv / python3-pil:
    /usr/bin/python3 tools/pretrained_fixtures.py
Output: spec/fixtures/pretrained/ (about 2 MB). Fixed seeds: running it again writes the same files.

The checkpoint (text_image.safetensors) holds, under the original's names, every part at a small
config with random weights:
  image_encoder.pretrained_vit.*   torchvision's VisionTransformer (tools/frozen_fixtures.py
                                   build_vit: 224 input, patch 16, depth 2, width 96, 3 heads),
                                   renamed to timm's layout (to_timm), no classifier head (the
                                   original creates the ViT with num_classes=0)
  text_encoder.pretrained_bert.*   the BertModel composition of tools/frozen_fixtures.py (width 64,
                                   2 layers, 4 heads, intermediate 128, 160 positions, the
                                   vocabulary below), with the old embeddings.position_ids buffer
  the rest                         tools/oneencoder_mirror.py Step1Model (d 32, 4 UP heads, ff 64,
                                   addition), every parameter random, its transformer_encoder_block
                                   copy and temperature included.
The pipeline reproduced (the original's text_image.py, read in b-faye/OneEncoder):
  images   cv2.imread (BGR, alpha dropped, grey replicated) -> RGB -> resize 224x224 INTER_LINEAR
           -> /255, ImageNet mean/std -> ViT forward_features -> projection head -> UP -> mean
           over the 197 positions -> L2 normalisation;
  captions BertTokenizer (bert-base-uncased rules; written below, independent of the project's C
           tokenizer) with truncation 128 -> BertModel last_hidden_state with the attention mask
           -> projection head -> UP without a mask -> mean over every position, padding included
           -> L2 normalisation.
Three padding policies for the captions: "none" (each caption alone, no padding), "set" (every
caption padded to the longest of the whole list: the original's DataGenerator, which calls the
tokenizer once on all captions with padding=True; for the six captions, whose longest is cut at
128, and for the first five, padded to 12), "batch" (padded to the longest of each batch
of 4). Dropout is set to 0 with the modules left in train mode, so PyTorch's inference fast path
is not taken (the same arithmetic as the original in eval mode).
"""
import os
import sys
import unicodedata

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import frozen_fixtures as FF  # noqa: E402
import oneencoder_mirror as MI  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "pretrained")

torch.set_num_threads(1)

# ---------------------------------------------------------------- vocabulary and tokenizer

VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?", "-", "'"] +
         ["a", "an", "the", "on", "in", "of", "two", "dog", "cat", "beach", "sleep", "run", "red", "sofa",
          "old", "cafe", "park", "photo", "blue", "sky", "small", "house", "with", "and", "tree", "man",
          "woman", "street", "car", "water", "white", "black", "big", "green", "field", "city"] +
         ["##s", "##ing", "##ning", "##ed", "##er", "##e", "##y", "##a", "##o"])


def is_punct(ch):
    o = ord(ch)
    if 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_tokens(text):
    """BertTokenizer's BasicTokenizer for the cases used here: cleaning, lowercase, accents
    stripped by NFD, split on whitespace and punctuation."""
    out = []
    for ch in text:
        o = ord(ch)
        if o == 0 or o == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        out.append(" " if ch.isspace() else ch)
    words = []
    for w in "".join(out).split():
        w = unicodedata.normalize("NFD", w.lower())
        w = "".join(c for c in w if unicodedata.category(c) != "Mn")
        cur = ""
        for c in w:
            if is_punct(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end] if start == 0 else "##" + word[start:end]
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


def token_ids(text, vocab, max_length=128):
    ids = [vocab["[CLS]"]]
    for w in basic_tokens(text):
        ids += [vocab[p] for p in wordpiece(w, vocab)]
    ids = ids[:max_length - 1] + [vocab["[SEP]"]]
    return ids


CAPTIONS = [
    "A dog on the beach.",
    "Two cats sleeping on a red sofa!",
    "An old Caf\u00e9, in the park?",
    "dogs running",
    "zebra",
    " ".join(["a small white house with a green tree"] * 20),   # 161 tokens before truncation
]

# ---------------------------------------------------------------- images

def make_images():
    from PIL import Image
    files = []
    jpg = os.path.join(OUT, "photo.jpg")
    FF.make_jpeg(jpg)
    files.append("photo.jpg")
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:70, 0:50].astype(np.float64)
    rgb = np.stack([128 + 120 * np.sin(xx / 7.0), 40 + 3 * yy, 255 - 4 * xx], axis=2)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(os.path.join(OUT, "small.png"))
    files.append("small.png")
    yy, xx = np.mgrid[0:90, 0:100].astype(np.float64)
    g = 128 + 100 * np.cos(xx / 9.0 + yy / 13.0) + 10 * rng.standard_normal((90, 100))
    Image.fromarray(np.clip(g, 0, 255).astype(np.uint8), mode="L").save(os.path.join(OUT, "gray.jpg"), quality=92)
    files.append("gray.jpg")
    # RGBA whose transparent pixels hold colours: OpenCV (and PIL's convert("RGB")) drop alpha
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., 0] = (np.arange(64)[None, :] * 4) % 256
    rgba[..., 1] = rng.integers(0, 256, (64, 64))
    rgba[..., 2] = 200
    rgba[..., 3] = 0
    rgba[16:48, 16:48, 3] = 255
    rgba[20:30, 20:40, 3] = 128
    Image.fromarray(rgba, mode="RGBA").save(os.path.join(OUT, "alpha.png"))
    files.append("alpha.png")
    return files


def preprocess_original(path):
    import cv2
    img = cv2.imread(path)                      # IMREAD_COLOR: BGR, alpha dropped, grey replicated
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR)
    x = img.astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0)

# ---------------------------------------------------------------- the model


def build():
    vit = FF.build_vit()
    vocab = {t: i for i, t in enumerate(VOCAB)}
    V, D, Lyr, Hh, I, P, T = len(VOCAB), 64, 2, 4, 128, 160, 2
    torch.manual_seed(0)
    bert = FF.Bert(V, D, Lyr, Hh, I, P, T, 1e-12)
    FF.randomise(bert, torch.Generator().manual_seed(21))
    bert.eval()
    torch.manual_seed(0)
    top = MI.Step1Model(d=32, input_dims=(96, 64), num_head=4, num_layers=1, dim_feedforward=64, dropout=0.1)
    FF.randomise(top, torch.Generator().manual_seed(22))
    MI.set_dropout(top, 0.0)
    top.train()
    return vit, bert, top, vocab


def checkpoint(vit, bert, top):
    sd = {}
    for k, v in FF.to_timm({k: v.detach().clone() for k, v in vit.state_dict().items()}).items():
        if not k.startswith("head."):
            sd["image_encoder.pretrained_vit." + k] = v
    for k, v in bert.hf_state_dict("text_encoder.pretrained_bert.").items():
        sd[k] = v
    sd["text_encoder.pretrained_bert.embeddings.position_ids"] = torch.arange(160).unsqueeze(0)
    for k, v in top.state_dict().items():
        sd[k] = v.detach().clone()
    return sd


def text_features(bert, rows, lengths, L):
    ids = torch.zeros(len(rows), L, dtype=torch.int64)
    mask = torch.zeros(len(rows), L, dtype=torch.int64)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
    with torch.no_grad():
        hidden, _ = bert(ids, mask, torch.zeros_like(ids))
    return hidden, ids


def main():
    os.makedirs(OUT, exist_ok=True)
    vit, bert, top, vocab = build()
    with open(os.path.join(OUT, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    st.save(os.path.join(OUT, "text_image.safetensors"), checkpoint(vit, bert, top))
    files = make_images()
    ref = {}
    with torch.no_grad():
        x = torch.cat([preprocess_original(os.path.join(OUT, f)) for f in files], 0)
        ref["image_embeddings"] = top.encode("image", FF.vit_features(vit, x))
        rows = [token_ids(c, vocab) for c in CAPTIONS]
        lens = [len(r) for r in rows]
        # the tokenizer's ids for the whole list padded to its longest caption
        feats, ids = text_features(bert, rows, lens, max(lens))
        ref["ids_set"] = ids
        ref["text_embeddings_set"] = top.encode("text", feats)
        # the first five alone as a set: padded to 12, not to 128
        feats5, _ = text_features(bert, rows[:5], lens[:5], max(lens[:5]))
        ref["text_embeddings_set5"] = top.encode("text", feats5)
        ref["text_embeddings_none"] = torch.cat(
            [top.encode("text", text_features(bert, [r], [len(r)], len(r))[0]) for r in rows], 0)
        out = []
        for s in range(0, len(rows), 4):
            part = rows[s:s + 4]
            out.append(top.encode("text", text_features(bert, part, None, max(len(r) for r in part))[0]))
        ref["text_embeddings_batch4"] = torch.cat(out, 0)
    st.save(os.path.join(OUT, "expected.safetensors"), ref,
            metadata={"images": "\n".join(files), "captions": "\n".join(CAPTIONS), "lengths": ",".join(map(str, lens))})
    for f in sorted(os.listdir(OUT)):
        print("%-28s %8d bytes" % (f, os.path.getsize(os.path.join(OUT, f))))


if __name__ == "__main__":
    main()
