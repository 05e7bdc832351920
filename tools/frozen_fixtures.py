#!/usr/bin/python3
"""Reference fixtures for the frozen encoders (spec/vit_spec.lua, spec/bert_spec.lua).

Run with Debian's python3-torch 1.13 / python3-torchvision / python3-opencv / python3-pil:
    /usr/bin/python3 tools/frozen_fixtures.py
Output: spec/fixtures/frozen/ (about 2 MB). Fixed seeds: running it again writes the same files.

ViT. The reference is torchvision's VisionTransformer (an implementation independent of
timm and of Hugging Face) at a small config: 224 input, patch 16, depth 2, width 96,
3 heads, MLP 192, LayerNorm eps 1e-6, every parameter drawn at random (not the library's
init, whose zero biases and unit norms would hide mistakes). Its state dict is renamed
  - to timm's layout (vit_timm.safetensors, F32): in_proj_weight stacks q, k, v exactly as
    timm's attn.qkv.weight does; heads.head -> head (a key the runtime must ignore);
  - to Hugging Face's ViTModel layout under "vit." (vit_hf.safetensors, F16, with
    config.json saying layer_norm_eps 1e-6): in_proj split into query/key/value; the F16
    rounding is applied to the torchvision model too before its HF reference is computed,
    so the runtime's F16 -> F32 conversion is checked against the same numbers.
The compared output is the encoder's sequence after its final LayerNorm (a forward hook on
`encoder`), i.e. timm's forward_features / HF's last_hidden_state: (B, 197, 96).
Inputs are pixels from an integer hash (the spec rebuilds them exactly, see pixels()),
plus a 192x256 input through timm's position-embedding resampling (bicubic, antialias,
as timm.layers.resample_abs_pos_embed), plus the full image pipeline from a JPEG made here
with PIL through each preprocessing preset: `original` with OpenCV (imread, BGR->RGB,
resize 224x224 INTER_LINEAR, /255, ImageNet mean/std), `timm` with torchvision transforms
on PIL (Resize(248, bicubic), CenterCrop(224), mean = std = 0.5), `hf` as
ViTImageProcessor (PIL resize to 224x224 bilinear, /255, mean = std = 0.5).

BERT. The reference is written here from nn.Embedding / nn.Linear / nn.LayerNorm and
functional ops with BertModel's semantics (post-norm layers, additive finfo.min mask on
padded keys, GELU erf, tanh pooler on [CLS]), small config: vocab 120, width 64, 2 layers,
4 heads, intermediate 128, 40 positions, 2 token types, eps 1e-12, random weights. Saved
under "bert." with the embeddings.position_ids buffer and a cls.* head outside the prefix.
Padded batch: lengths 9, 5, 2, a left-padded row, and a row with no real token.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402  (tools/st.py: safetensors writer)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "frozen")

torch.set_num_threads(1)


def pixels(B, C, H, W, salt):
    """x[b, c, h, w] in [-1, 1) from an integer hash of the flat index (exact in Lua too)."""
    i = np.arange(B * C * H * W, dtype=np.uint64) + np.uint64(salt)
    v = (i * np.uint64(2654435761)) % np.uint64(4294967296)
    v = (v >> np.uint64(8)) % np.uint64(1000)
    return torch.from_numpy((v.astype(np.float64) / 500.0 - 1.0).astype(np.float32).reshape(B, C, H, W))


def randomise(module, gen):
    """Every parameter random at a scale that keeps activations O(1)."""
    for name, p in module.named_parameters():
        with torch.no_grad():
            if name.endswith("weight") and p.dim() == 1:      # LayerNorm gains
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:                               # biases
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                if "pos" in name or "class_token" in name or "embeddings" in name:
                    fan_in = 1
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


# ---------------------------------------------------------------- ViT

def build_vit():
    import torchvision
    torch.manual_seed(0)
    m = torchvision.models.VisionTransformer(image_size=224, patch_size=16, num_layers=2, num_heads=3,
                                             hidden_dim=96, mlp_dim=192, num_classes=10)
    randomise(m, torch.Generator().manual_seed(1))
    return m.eval()


def vit_features(m, x):
    got = {}
    h = m.encoder.register_forward_hook(lambda mod, inp, out: got.__setitem__("seq", out.detach().clone()))
    with torch.no_grad():
        m(x)
    h.remove()
    return got["seq"]


def vit_features_any_size(m, x, pos):
    """torchvision's encoder with another position table (torchvision refuses other sizes)."""
    with torch.no_grad():
        n = x.shape[0]
        t = m.conv_proj(x)                                  # (B, D, gh, gw)
        t = t.reshape(n, m.hidden_dim, -1).permute(0, 2, 1)
        t = torch.cat([m.class_token.expand(n, -1, -1), t], dim=1)
        t = t + pos
        return m.encoder.ln(m.encoder.layers(t))


def timm_resample_pos(pos, gh, gw):
    """timm.layers.resample_abs_pos_embed(pos, (gh, gw), num_prefix_tokens=1): bicubic, antialias."""
    prefix, grid = pos[:, :1], pos[:, 1:]
    g = int(math.isqrt(grid.shape[1]))
    grid = grid.reshape(1, g, g, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)
    return torch.cat([prefix, grid], dim=1)


def to_timm(sd):
    out = {}
    for k, v in sd.items():
        k2 = (k.replace("class_token", "cls_token").replace("conv_proj", "patch_embed.proj")
              .replace("encoder.pos_embedding", "pos_embed").replace("encoder.layers.encoder_layer_", "blocks.")
              .replace("ln_1", "norm1").replace("ln_2", "norm2").replace("self_attention.in_proj_weight", "attn.qkv.weight")
              .replace("self_attention.in_proj_bias", "attn.qkv.bias").replace("self_attention.out_proj", "attn.proj")
              .replace("mlp.0", "mlp.fc1").replace("mlp.3", "mlp.fc2").replace("encoder.ln", "norm")
              .replace("heads.head", "head"))
        out[k2] = v
    return out


def to_hf(sd, D):
    out = {}
    for k, v in sd.items():
        if k.startswith("heads."):
            out[k.replace("heads.head", "classifier")] = v      # outside the vit. prefix
            continue
        if k == "class_token":
            out["vit.embeddings.cls_token"] = v
        elif k == "encoder.pos_embedding":
            out["vit.embeddings.position_embeddings"] = v
        elif k.startswith("conv_proj."):
            out["vit.embeddings.patch_embeddings.projection." + k.split(".")[-1]] = v
        elif k.startswith("encoder.ln."):
            out["vit.layernorm." + k.split(".")[-1]] = v
        else:
            i = k.split(".")[2].replace("encoder_layer_", "")
            rest = ".".join(k.split(".")[3:])
            base = "vit.encoder.layer.%s." % i
            if rest.startswith("self_attention.in_proj_"):
                kind = rest.split("_")[-1]
                for j, name in enumerate(("query", "key", "value")):
                    out[base + "attention.attention.%s.%s" % (name, kind)] = v[j * D:(j + 1) * D]
            else:
                rest = (rest.replace("self_attention.out_proj", "attention.output.dense").replace("ln_1", "layernorm_before")
                        .replace("ln_2", "layernorm_after").replace("mlp.0", "intermediate.dense").replace("mlp.3", "output.dense"))
                out[base + rest] = v
    return out


def make_jpeg(path):
    from PIL import Image
    H, W = 240, 320
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    rng = np.random.default_rng(3)
    r = 128 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    g = 128 + 90 * np.cos((xx + yy) / 17.0)
    b = 255 * (xx / W) * (1 - yy / H) + 20 * rng.standard_normal((H, W))
    img = np.stack([r, g, b], axis=2)
    img[60:140, 90:200] = [220, 40, 30]                      # a sharp-edged block
    img = np.clip(img, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=90)


def preprocess_original(path):
    import cv2
    img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    img = cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR)
    x = img.astype(np.float32) / 255.0
    x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0)


def preprocess_timm(path):
    from PIL import Image
    import torchvision.transforms as T
    tf = T.Compose([T.Resize(248, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.5] * 3, [0.5] * 3)])
    return tf(Image.open(path).convert("RGB")).unsqueeze(0)


def preprocess_hf(path):
    from PIL import Image
    img = Image.open(path).convert("RGB").resize((224, 224), resample=Image.BILINEAR)
    x = np.asarray(img).astype(np.float32) * np.float32(1 / 255)
    x = (x - 0.5) / 0.5
    return torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0)


def vit_fixtures():
    m = build_vit()
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    st.save(os.path.join(OUT, "vit_timm.safetensors"), to_timm(sd))
    x = pixels(2, 3, 224, 224, 0)
    ref = {"features": vit_features(m, x)}
    # another input size through timm's position resampling: 192 x 256 -> 12 x 16 grid
    x2 = pixels(1, 3, 192, 256, 7)
    ref["features_192x256"] = vit_features_any_size(m, x2, timm_resample_pos(m.encoder.pos_embedding, 12, 16))
    # the image pipeline from a JPEG, each preset
    jpg = os.path.join(OUT, "photo.jpg")
    make_jpeg(jpg)
    ref["jpeg_original"] = vit_features(m, preprocess_original(jpg))
    ref["jpeg_timm"] = vit_features(m, preprocess_timm(jpg))
    ref["jpeg_hf"] = vit_features(m, preprocess_hf(jpg))
    # the HF layout in F16: the reference uses the same rounded weights
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    ref["features_hf_f16"] = vit_features(m, x)
    hf = {k: v.half() for k, v in to_hf(sd, 96).items()}
    st.save(os.path.join(OUT, "vit_hf.safetensors"), hf)
    cfg = {"model_type": "vit", "hidden_size": 96, "num_hidden_layers": 2, "num_attention_heads": 3,
           "intermediate_size": 192, "hidden_act": "gelu", "image_size": 224, "patch_size": 16, "num_channels": 3,
           "layer_norm_eps": 1e-6, "qkv_bias": True, "architectures": ["ViTModel"], "torch_dtype": "float16"}
    with open(os.path.join(OUT, "vit_hf_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    st.save(os.path.join(OUT, "vit_ref.safetensors"), ref)


# ---------------------------------------------------------------- BERT

class Bert(nn.Module):
    """BertModel's forward from plain modules (eval mode: no dropout)."""

    def __init__(self, V, D, Lyr, Hh, I, P, T, eps):
        super().__init__()
        self.Hh, self.eps = Hh, eps
        self.word, self.pos, self.ttype = nn.Embedding(V, D), nn.Embedding(P, D), nn.Embedding(T, D)
        self.emb_ln = nn.LayerNorm(D, eps=eps)
        self.layers = nn.ModuleList()
        for _ in range(Lyr):
            self.layers.append(nn.ModuleDict({
                "q": nn.Linear(D, D), "k": nn.Linear(D, D), "v": nn.Linear(D, D), "ao": nn.Linear(D, D),
                "ln1": nn.LayerNorm(D, eps=eps), "fc1": nn.Linear(D, I), "fc2": nn.Linear(I, D),
                "ln2": nn.LayerNorm(D, eps=eps)}))
        self.pool = nn.Linear(D, D)

    def forward(self, ids, mask, types):
        B, L = ids.shape
        x = self.word(ids) + self.pos(torch.arange(L)).unsqueeze(0) + self.ttype(types)
        x = self.emb_ln(x)
        add = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        D = x.shape[-1]
        hd = D // self.Hh
        for ly in self.layers:
            def heads(t):
                return t.view(B, L, self.Hh, hd).permute(0, 2, 1, 3)
            q, k, v = heads(ly["q"](x)), heads(ly["k"](x)), heads(ly["v"](x))
            s = q @ k.transpose(-1, -2) / math.sqrt(hd) + add
            a = (F.softmax(s, dim=-1) @ v).permute(0, 2, 1, 3).reshape(B, L, D)
            x = ly["ln1"](ly["ao"](a) + x)
            x = ly["ln2"](ly["fc2"](F.gelu(ly["fc1"](x))) + x)
        return x, torch.tanh(self.pool(x[:, 0]))

    def hf_state_dict(self, prefix):
        sd = {}
        P = prefix
        sd[P + "embeddings.word_embeddings.weight"] = self.word.weight
        sd[P + "embeddings.position_embeddings.weight"] = self.pos.weight
        sd[P + "embeddings.token_type_embeddings.weight"] = self.ttype.weight
        sd[P + "embeddings.LayerNorm.weight"] = self.emb_ln.weight
        sd[P + "embeddings.LayerNorm.bias"] = self.emb_ln.bias
        names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                 "ao": "attention.output.dense", "ln1": "attention.output.LayerNorm", "fc1": "intermediate.dense",
                 "fc2": "output.dense", "ln2": "output.LayerNorm"}
        for i, ly in enumerate(self.layers):
            for short, long_ in names.items():
                for kind in ("weight", "bias"):
                    sd["%sencoder.layer.%d.%s.%s" % (P, i, long_, kind)] = getattr(ly[short], kind)
        sd[P + "pooler.dense.weight"] = self.pool.weight
        sd[P + "pooler.dense.bias"] = self.pool.bias
        return {k: v.detach().clone() for k, v in sd.items()}


def bert_fixtures():
    torch.manual_seed(0)
    V, D, Lyr, Hh, I, P, T = 120, 64, 2, 4, 128, 40, 2
    m = Bert(V, D, Lyr, Hh, I, P, T, 1e-12)
    randomise(m, torch.Generator().manual_seed(2))
    m.eval()
    sd = m.hf_state_dict("bert.")
    sd["bert.embeddings.position_ids"] = torch.arange(P).unsqueeze(0)            # old HF buffer
    sd["cls.predictions.bias"] = torch.zeros(V)                                  # outside the prefix
    st.save(os.path.join(OUT, "bert.safetensors"), sd)
    cfg = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": D, "num_hidden_layers": Lyr,
           "num_attention_heads": Hh, "intermediate_size": I, "vocab_size": V, "max_position_embeddings": P,
           "type_vocab_size": T, "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute",
           "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "pad_token_id": 0}
    with open(os.path.join(OUT, "bert_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    L = 9
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(1, V, (5, L), generator=g)
    mask = torch.zeros(5, L, dtype=torch.int64)
    for b, n in enumerate((9, 5, 2)):
        mask[b, :n] = 1
    mask[3, 3:] = 1            # left padding: real tokens at 4..9
    # row 4: no real token at all
    ids[mask == 0] = 0         # [PAD]
    ids[:4, 0] = 101 % V       # a [CLS]-like first id
    types = torch.zeros(5, L, dtype=torch.int64)
    types[0, 5:] = 1
    types[3, 6:] = 1
    with torch.no_grad():
        hidden, pooled = m(ids, mask, types)
    st.save(os.path.join(OUT, "bert_ref.safetensors"), {"input_ids": ids, "attention_mask": mask, "token_type_ids": types,
                                                        "last_hidden_state": hidden, "pooler_output": pooled})


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    vit_fixtures()
    bert_fixtures()
    for f in sorted(os.listdir(OUT)):
        print("%-28s %8d bytes" % (f, os.path.getsize(os.path.join(OUT, f))))
