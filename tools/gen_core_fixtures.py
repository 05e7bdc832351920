#!/usr/bin/python3
"""Writes the PyTorch reference fixtures for the core (spec/torch_fixtures_spec.lua).

Run with Debian's python3-torch (1.13):  /usr/bin/python3 tools/gen_core_fixtures.py
Output: spec/fixtures/core/*.safetensors (small: B=2, L=5, D=16, 4 heads, ff 32).

Every file holds float32 (F32) and int64 (I64) tensors in the safetensors
layout, written here by hand (there is no safetensors package on Debian):
8-byte little-endian header length, a JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}
padded with spaces to a multiple of 8, then the raw little-endian data.

Gradients are those of loss = sum(out * gout) with a fixed random gout, so
every output element is weighted differently; gout is stored too.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "core")
B, L, D, H, FF = 2, 5, 16, 4, 32


def write_safetensors(path, tensors, metadata=None):
    header = {}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        if a.dtype == np.float32 or a.dtype == np.float64:
            a, dt = a.astype("<f4"), "F32"
        elif a.dtype in (np.int64, np.int32, np.bool_):
            a, dt = a.astype("<i8"), "I64"
        else:
            raise TypeError(f"{name}: unsupported dtype {a.dtype}")
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return os.path.getsize(path)


def rnd(*shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape) * (hi - lo) + lo


def grads_of(out, gout, named):
    """backward of sum(out * gout); returns {"grad."+name: grad}"""
    for t in named.values():
        if t.grad is not None:
            t.grad = None
    (out * gout).sum().backward()
    return {"grad." + k: v.grad.clone() for k, v in named.items()}


def leaf(t):
    return t.clone().detach().requires_grad_(True)


def fx_linear():
    x, w, b = leaf(rnd(B, L, D)), leaf(rnd(8, D, lo=-0.25, hi=0.25)), leaf(rnd(8, lo=-0.25, hi=0.25))
    out = F.linear(x, w, b)
    gout = rnd(*out.shape)
    t = {"x": x, "weight": w, "bias": b, "out": out, "gout": gout}
    t.update(grads_of(out, gout, {"x": x, "weight": w, "bias": b}))
    return t


def fx_layer_norm():
    x, w, b = leaf(rnd(B, L, D, lo=-2, hi=3)), leaf(rnd(D, lo=0.5, hi=1.5)), leaf(rnd(D, lo=-0.5, hi=0.5))
    out = F.layer_norm(x, (D,), w, b, eps=1e-5)
    gout = rnd(*out.shape)
    t = {"x": x, "weight": w, "bias": b, "out": out, "gout": gout}
    t.update(grads_of(out, gout, {"x": x, "weight": w, "bias": b}))
    return t


def fx_gelu():
    x = leaf(rnd(B, L, D, lo=-4, hi=4))
    t = {"x": x}
    for name, approx in (("erf", "none"), ("tanh", "tanh")):
        out = F.gelu(x, approximate=approx)
        gout = rnd(*out.shape)
        x.grad = None
        (out * gout).sum().backward()
        t[f"out.{name}"] = out
        t[f"gout.{name}"] = gout
        t[f"grad.x.{name}"] = x.grad.clone()
    return t


def fx_softmax_ce():
    N, C = 10, 7
    logits = leaf(rnd(N, C, lo=-3, hi=3))
    target = torch.randint(0, C, (N,))
    target[3] = -100  # ignored row (PyTorch's default ignore_index)
    t = {"logits": logits, "target": target}
    t["softmax"] = F.softmax(logits, -1)
    t["log_softmax"] = F.log_softmax(logits, -1)
    t["softmax.dim0"] = F.softmax(logits, 0)
    gout = rnd(N, C)
    t["gout"] = gout
    logits.grad = None
    (F.softmax(logits, -1) * gout).sum().backward()
    t["grad.softmax"] = logits.grad.clone()
    logits.grad = None
    (F.log_softmax(logits, -1) * gout).sum().backward()
    t["grad.log_softmax"] = logits.grad.clone()
    for name, kw in (("ce", {}), ("ce_smooth", {"label_smoothing": 0.1})):
        logits.grad = None
        loss = F.cross_entropy(logits, target, **kw)
        loss.backward()
        t[f"loss.{name}"] = loss.detach().reshape(())
        t[f"grad.{name}"] = logits.grad.clone()
    # ignore_index other than -100 (the row with target 2 is then skipped)
    t2 = target.clone()
    t2[3] = 2
    t["target2"] = t2
    logits.grad = None
    loss = F.cross_entropy(logits, t2, ignore_index=2, label_smoothing=0.2)
    loss.backward()
    t["loss.ce_ignore2_smooth"] = loss.detach().reshape(())
    t["grad.ce_ignore2_smooth"] = logits.grad.clone()
    return t


def randomize_(module):
    """non-default values everywhere so every parameter's gradient is exercised"""
    with torch.no_grad():
        for n, p in module.named_parameters():
            if p.dim() == 1 and "norm" in n and n.endswith("weight"):
                p.copy_(rnd(*p.shape, lo=0.5, hi=1.5))
            else:
                p.copy_(rnd(*p.shape, lo=-0.3, hi=0.3))


def module_fixture(m, inputs, call):
    """runs call(m, *inputs) -> out; stores params, inputs, out and all gradients"""
    named = {k: leaf(v) for k, v in inputs.items()}
    out = call(m, **named)
    gout = rnd(*out.shape)
    t = {}
    for k, p in m.named_parameters():
        t[k] = p.detach().clone()
    t.update({k: v.detach() for k, v in named.items()})
    t["out"] = out.detach()
    t["gout"] = gout
    m.zero_grad()
    (out * gout).sum().backward()
    for k, v in named.items():
        t["grad." + k] = v.grad.clone()
    for k, p in m.named_parameters():
        t["grad." + k] = p.grad.clone()
    return t


def key_padding_mask():
    m = torch.zeros(B, L, dtype=torch.bool)
    m[0, 3:] = True  # first sequence has 3 real tokens
    m[1, 4:] = True  # second has 4
    return m


def fx_mha():
    m = torch.nn.MultiheadAttention(D, H, dropout=0.0, batch_first=True)
    randomize_(m)
    x = rnd(B, L, D)
    mask = key_padding_mask()
    res = {}
    t = module_fixture(m, {"x": x}, lambda m, x: m(x, x, x, need_weights=False)[0])
    res.update(t)
    with torch.no_grad():
        w = m(x, x, x, need_weights=True, average_attn_weights=False)[1]
    res["attn_weights"] = w  # (B, H, L, S)
    tm = module_fixture(m, {"x": x}, lambda m, x: m(x, x, x, key_padding_mask=mask, need_weights=False)[0])
    for k, v in tm.items():
        if k.startswith("grad.") or k in ("out", "gout"):
            res["masked." + k] = v
    res["mask"] = mask
    # cross-attention with separate query / key / value (S = 3)
    q, k, v = rnd(B, L, D), rnd(B, 3, D), rnd(B, 3, D)
    tc = module_fixture(m, {"q": q, "k": k, "v": v}, lambda m, q, k, v: m(q, k, v, need_weights=False)[0])
    for name, val in tc.items():
        if name.startswith("grad.") or name in ("out", "gout", "q", "k", "v"):
            res["cross." + name] = val
    return res


def fx_tel(norm_first, activation):
    # dropout=0.0 and train mode: PyTorch 1.13's fast path is never taken (it needs
    # eval mode and no grad), so padded positions keep their full outputs.
    m = torch.nn.TransformerEncoderLayer(D, H, dim_feedforward=FF, dropout=0.0, activation=activation,
                                         batch_first=True, norm_first=norm_first)
    randomize_(m)
    m.train()
    x = rnd(B, L, D)
    mask = key_padding_mask()
    t = module_fixture(m, {"x": x}, lambda m, x: m(x, src_key_padding_mask=mask))
    t["mask"] = mask
    # the same layer without a mask
    tn = module_fixture(m, {"x": x}, lambda m, x: m(x))
    for k, v in tn.items():
        if k.startswith("grad.") or k in ("out", "gout"):
            t["nomask." + k] = v
    return t


def fx_adamw():
    model = torch.nn.Linear(4, 3)
    x, y = rnd(6, 4), rnd(6, 3)
    t = {"x": x, "y": y, "step0.weight": model.weight.detach().clone(), "step0.bias": model.bias.detach().clone()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3)
    losses = []
    for s in range(1, 6):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        opt.step()
        t[f"step{s}.weight"] = model.weight.detach().clone()
        t[f"step{s}.bias"] = model.bias.detach().clone()
    t["losses"] = torch.tensor(losses)
    return t


def main():
    torch.manual_seed(1234)
    os.makedirs(OUT, exist_ok=True)
    meta = {"generator": "tools/gen_core_fixtures.py", "torch": torch.__version__}
    jobs = [
        ("linear", fx_linear),
        ("layer_norm", fx_layer_norm),
        ("gelu", fx_gelu),
        ("softmax_ce", fx_softmax_ce),
        ("mha", fx_mha),
        ("tel_post_relu", lambda: fx_tel(False, "relu")),
        ("tel_post_gelu", lambda: fx_tel(False, "gelu")),
        ("tel_pre_relu", lambda: fx_tel(True, "relu")),
        ("tel_pre_gelu", lambda: fx_tel(True, "gelu")),
        ("adamw", fx_adamw),
    ]
    total = 0
    for name, fn in jobs:
        size = write_safetensors(os.path.join(OUT, name + ".safetensors"), fn(), meta)
        total += size
        print(f"{name}.safetensors: {size} bytes")
    print(f"total: {total} bytes")


if __name__ == "__main__":
    sys.exit(main())
