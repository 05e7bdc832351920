"""Write the OneEncoder PyTorch-mirror fixtures into spec/fixtures/oneencoder/.

    /usr/bin/python3 tools/gen_oneencoder_fixtures.py [outdir] [--only=training|fusions]

See spec/fixtures/oneencoder/README.md for every file, tensor and tolerance.
Summary:
  * two configs: "small" (d 32, 4 heads, ff 64, inputs 48, B 6, image L 7,
    text L 5, audio L 9; everything stored) and "full" (d 256, 4 heads,
    ff 2048, inputs 768, B 8, image L 50, text L 16, audio L 40; weights and
    features regenerated from an integer hash, only outputs, gradient norms and
    short gradient slices stored).
  * step 1: image-text, heads + tokens + MLP + UP trained.
    step 2: audio against text, the step-1 model (at its INITIAL weights)
    frozen, new alignment layer + audio token + its MLP trained.
  * features from an integer hash (FEATURE_FORMULA); small: 4 batches reused
    cyclically (step s uses batch s mod 4), full: 21 distinct batches
    (step s uses batch s).
  * dropout disabled (p = 0), AdamW lr 1e-3, wd 1e-3, betas 0.9/0.999,
    eps 1e-8; losses[s] for s = 0..20 is the loss of batch s mod 4 with the
    weights after s updates (21 values, 20 updates).
  * the reference numbers are computed in float64 from the float32 weights and
    features; a float32 PyTorch run is compared against them and the observed
    deviations are printed (and recorded in the metadata as strings).
  * fusions (fusion_<f>_*.safetensors): for each of the original's fusions
    (addition, multiplication, concatenation with 15-row tokens, scaled dot
    product) a step-1 state dict and the new parts of a step-2 one in the
    original layout, features and the embeddings they give (no training).
"""
import copy
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import oneencoder_mirror as M  # noqa: E402
import st  # noqa: E402

ARGS = [a for a in sys.argv[1:] if not a.startswith("--only=")]
ONLY = ([a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--only=")] or ["all"])[0]
OUT = ARGS[0] if ARGS else os.path.join(HERE, "..", "spec", "fixtures", "oneencoder")

STEPS = 20
LR, WD = 1e-3, 1e-3
MOD_CODE = {"image": 0, "text": 1, "audio": 2}

CONFIGS = {
    # small: 4 stored batches reused cyclically; full: 21 distinct batches
    # (regenerated from the hash, nothing stored), one per evaluated loss
    "small": dict(d=32, heads=4, ff=64, din=48, B=6, L={"image": 7, "text": 5, "audio": 9}, nb=4),
    "full": dict(d=256, heads=4, ff=2048, din=768, B=8, L={"image": 50, "text": 16, "audio": 40},
                 nb=21),
}

# ---------------------------------------------------------------- hash values
MASK = 0xFFFFFFFF


def hash_u(seed, n):
    """u(seed, i) in [0, 1) for i = 0..n-1 (exact integer arithmetic; the same
    operations in Lua 5.4 integers give the same bits)."""
    x = np.arange(n, dtype=np.uint64)
    x = (x * np.uint64(0x9E3779B1) + np.uint64(seed * 0x85EBCA77 + 0x165667B1)) & np.uint64(MASK)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x2C1B3C6D)) & np.uint64(MASK)
    x ^= x >> np.uint64(12)
    x = (x * np.uint64(0x297A2D39)) & np.uint64(MASK)
    x ^= x >> np.uint64(15)
    return x.astype(np.float64) / 4294967296.0


def hash_uniform(seed, shape, center, halfwidth):
    """float32(center + halfwidth * (2u - 1)), evaluated in float64 in that order."""
    n = int(np.prod(shape, dtype=np.int64))
    v = center + halfwidth * (2.0 * hash_u(seed, n) - 1.0)
    return v.astype(np.float32).reshape(shape)


FEATURE_FORMULA = ("x[b,l,k] = float32((2*u(1000+10*j, b*D+k) - 1) + "
                   "(2*u(1001+10*j+code, (b*L+l)*D+k) - 1)), code image 0 text 1 audio 2, "
                   "j = batch index, D = input_dim, evaluated in float64 left to right")


def hash_features(j, modality, B, L, din):
    """Batch j of one modality, (B, L, din): a per-sample part shared by every
    modality of pair b (so the pairs can be aligned) plus a per-token part.
    See FEATURE_FORMULA."""
    a = (2.0 * hash_u(1000 + 10 * j, B * din) - 1.0).reshape(B, 1, din)
    t = (2.0 * hash_u(1001 + 10 * j + MOD_CODE[modality], B * L * din) - 1.0).reshape(B, L, din)
    return (a + t).astype(np.float32)


def init_spec(name, shape, d):
    """(center, halfwidth) of a parameter's hash initialisation (full config)."""
    last = name.rsplit(".", 1)[-1]
    if name.endswith("temperature"):
        return 0.07, 0.0
    if name.endswith("_token"):
        return 0.0, 0.5
    if "in_proj_weight" in name:
        return 0.0, math.sqrt(6.0 / (d + 3 * d))          # xavier_uniform bound
    if "in_proj_bias" in name or "out_proj.bias" in name:
        return 0.0, 0.1
    if len(shape) == 1 and ("norm" in name or "normalization" in name or name.endswith(".5." + last)):
        return (1.0, 0.2) if last == "weight" else (0.0, 0.1)
    return None


def linear_bound(name, sd):
    """1/sqrt(fan_in) for a Linear weight or bias (PyTorch's default bound)."""
    base = name.rsplit(".", 1)[0]
    return 1.0 / math.sqrt(sd[base + ".weight"].shape[1])


def hash_init(model, d, first_seed, only=None):
    """Fill model parameters from the hash; returns {name: "seed center hw shape"}.
    transformer_encoder_block.* gets the same values as transformer_encoder.layers.0.*
    (as the original's deep copy)."""
    sd = model.state_dict()
    spec = {}
    seed = first_seed
    for name, t in sd.items():
        if only is not None and not only(name):
            continue
        if ".transformer_encoder_block." in name:
            continue
        shape = tuple(t.shape)
        cs = init_spec(name, shape, d)
        if cs is None:
            cs = (0.0, linear_bound(name, sd))
        center, hw = cs
        vals = hash_uniform(seed, shape, center, hw)
        with torch.no_grad():
            t.copy_(torch.from_numpy(vals))
        spec[name] = "%d %r %r %s" % (seed, center, hw, "x".join(str(s) for s in shape) or "scalar")
        seed += 1
    for name, t in sd.items():
        if ".transformer_encoder_block." in name and (only is None or only(name)):
            src = name.replace(".transformer_encoder_block.", ".transformer_encoder.layers.0.")
            with torch.no_grad():
                t.copy_(sd[src])
            spec[name] = "same_as " + src
    return spec


def perturb_small(model, gen, only=None):
    """Small config: mirror init, then LayerNorm weights 1 + U(-0.2, 0.2), LayerNorm
    biases U(-0.1, 0.1), attention in/out biases U(-0.1, 0.1) so that no
    parameter is a constant; the unused block is re-copied from layers.0."""
    sd = model.state_dict()
    with torch.no_grad():
        for name, t in sd.items():
            if only is not None and not only(name):
                continue
            if ".transformer_encoder_block." in name or name.endswith("temperature"):
                continue
            cs = init_spec(name, tuple(t.shape), 32)
            if cs is None or name.endswith("_token") or "in_proj_weight" in name:
                continue
            center, hw = cs
            t.copy_(center + hw * (2 * torch.rand(t.shape, generator=gen, dtype=torch.float64) - 1))
        for name, t in sd.items():
            if ".transformer_encoder_block." in name and (only is None or only(name)):
                t.copy_(sd[name.replace(".transformer_encoder_block.", ".transformer_encoder.layers.0.")])


# ---------------------------------------------------------------- training runs
def run(model, forward, batches, dtype):
    n_batches = len(batches)
    """20 AdamW steps with dropout disabled; returns a dict of results."""
    model = model.to(dtype)
    M.set_dropout(model, 0.0)
    model.train()
    opt = M.make_adamw(model, LR, WD)
    res = {"losses": []}
    for s in range(STEPS + 1):
        j = s % n_batches
        opt.zero_grad(set_to_none=True)
        loss, ea, eb = forward(model, *[b.to(dtype) for b in batches[j]])
        res["losses"].append(loss.item())
        if s == STEPS:
            break
        loss.backward()
        if s == 0:
            res["loss"] = loss.item()
            res["ea"], res["eb"] = ea.detach().clone(), eb.detach().clone()
            res["grads"] = {n: p.grad.detach().clone() for n, p in model.named_parameters()
                            if p.grad is not None}
            res["no_grad"] = [n for n, p in model.named_parameters() if p.grad is None]
        opt.step()
    res["final"] = {n: p.detach().clone() for n, p in model.named_parameters()}
    return res


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    den = np.max(np.abs(b))
    return float(np.max(np.abs(a - b)) / den) if den > 0 else float(np.max(np.abs(a - b)))


def drop_kbias(name, t, d):
    """in_proj_bias without its key slice [d, 2d): the true gradient of the key
    bias is exactly zero (softmax over keys ignores a constant shift), so in
    float32 its gradient is rounding noise that AdamW (eps 1e-8) turns into
    updates of up to about lr per step; it never changes any output."""
    if name.endswith("in_proj_bias"):
        return torch.cat([t[:d], t[2 * d:]])
    return t


def step1_forward(model, img, txt):
    return model(img, txt)


def step2_forward(model, txt, aud):
    return model("text", txt, aud)


def np32(t):
    return t.detach().to(torch.float32).cpu().numpy()


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for cfg_name, cfg in CONFIGS.items():
        d, heads, ff, din, B, L = cfg["d"], cfg["heads"], cfg["ff"], cfg["din"], cfg["B"], cfg["L"]
        N_BATCHES = cfg["nb"]
        small = cfg_name == "small"
        torch.manual_seed(1234 if small else 4321)

        # ---- features
        feats = {m: [hash_features(j, m, B, L[m], din) for j in range(N_BATCHES)]
                 for m in ("image", "text", "audio")}
        tfeats = {m: [torch.from_numpy(x) for x in v] for m, v in feats.items()}

        # ---- step-1 model and initial weights
        m1 = M.Step1Model(d=d, input_dims=(din, din), num_head=heads, num_layers=1,
                          dim_feedforward=ff, dropout=0.1)
        if small:
            perturb_small(m1, torch.Generator().manual_seed(99))
            init1_spec = None
        else:
            init1_spec = hash_init(m1, d, first_seed=1)
        init1 = {k: v.detach().clone() for k, v in m1.state_dict().items()}

        # ---- step-2 model: step-1 model at its initial weights, frozen
        m1_frozen = copy.deepcopy(m1)
        m2 = M.Step2Model(m1_frozen, "audio", din, d, dropout=0.1)
        new_part = lambda n: not n.startswith("text_image_encoder.")  # noqa: E731
        if small:
            perturb_small(m2, torch.Generator().manual_seed(98), only=new_part)
            init2_spec = None
        else:
            init2_spec = hash_init(m2, d, first_seed=101, only=new_part)
        init2 = {k: v.detach().clone() for k, v in m2.state_dict().items()}

        base_meta = {
            "config": cfg_name, "d": d, "heads": heads, "ff": ff, "layers": 1,
            "input_dim": din, "batch": B, "len_image": L["image"], "len_text": L["text"],
            "len_audio": L["audio"], "token_dim": 3, "token_size": 1,
            "lr": repr(LR), "weight_decay": repr(WD), "beta1": "0.9", "beta2": "0.999",
            "eps": "1e-08", "steps": STEPS, "n_batches": N_BATCHES,
            "schedule": "training step s (0-based) uses feature batch s mod %d" % N_BATCHES,
            "features": FEATURE_FORMULA,
            "dropout": "0 (disabled; the model default is 0.1)",
            "logit_scale": "exp(clamp(temperature, 2.5, 3.0)) = exp(2.5)",
            "fusion": "addition", "pooling": "original (mean over all positions)",
            "reference_dtype": "float64 run from float32 weights and features",
            "generator": "tools/gen_oneencoder_fixtures.py (torch %s)" % torch.__version__,
        }

        results = {}
        for step, model, fwd, bats in (
                ("step1", m1, step1_forward,
                 [(tfeats["image"][j], tfeats["text"][j]) for j in range(N_BATCHES)]),
                ("step2", m2, step2_forward,
                 [(tfeats["text"][j], tfeats["audio"][j]) for j in range(N_BATCHES)])):
            ref = run(copy.deepcopy(model), fwd, bats, torch.float64)
            f32 = run(copy.deepcopy(model), fwd, bats, torch.float32)
            dev = {
                "emb": max(rel_err(f32["ea"], ref["ea"]), rel_err(f32["eb"], ref["eb"])),
                "loss": abs(f32["loss"] - ref["loss"]) / abs(ref["loss"]),
                "grad": max(rel_err(f32["grads"][n], ref["grads"][n]) for n in ref["grads"]),
                "traj": max(abs(a - b) / abs(b) for a, b in zip(f32["losses"], ref["losses"])),
                "final": max(rel_err(drop_kbias(n, f32["final"][n], d), drop_kbias(n, ref["final"][n], d))
                             for n in ref["grads"]),
                "final_kbias_abs": max([float((f32["final"][n][d:2 * d].double()
                                               - ref["final"][n][d:2 * d].double()).abs().max())
                                        for n in ref["grads"] if n.endswith("in_proj_bias")] or [0.0]),
                "final_norm": max(abs(float(f32["final"][n].double().norm()) - float(ref["final"][n].norm()))
                                  / float(ref["final"][n].norm()) for n in ref["grads"]),
                "final_head": max(rel_err(f32["final"][n].reshape(-1)[:32], ref["final"][n].reshape(-1)[:32])
                                  for n in ref["grads"]),
            }
            results[step] = (ref, dev)
            ntrain = sum(ref["grads"][n].numel() for n in ref["grads"])
            print("%s %s: trainable (with grad) %d params in %d tensors; %d tensors without grad: %s" % (
                cfg_name, step, ntrain, len(ref["grads"]), len(ref["no_grad"]),
                ", ".join(sorted(set(".".join(n.split(".")[:2]) for n in ref["no_grad"])))))
            print("  loss %.6f -> %.6f (losses[0] -> losses[20])" % (
                ref["losses"][0], ref["losses"][STEPS]))
            print("  losses:", " ".join("%.5f" % x for x in ref["losses"]))
            print("  min |grad| norm %.3e, max %.3e" % (
                min(float(g.norm()) for g in ref["grads"].values()),
                max(float(g.norm()) for g in ref["grads"].values())))
            print("  float32 torch vs float64 reference (max rel, per tensor max|diff|/max|ref|):",
                  ", ".join("%s %.2e" % kv for kv in dev.items()))
            # sanity checks
            assert ref["losses"][STEPS] < ref["losses"][0], "loss did not decrease"
            assert all(float(g.abs().max()) > 0 for g in ref["grads"].values()), "zero gradient"
            if step == "step2":
                assert all(n.startswith("text_image_encoder.") or n == "temperature"
                           for n in ref["no_grad"])
                assert not any(n.startswith("text_image_encoder.") for n in ref["grads"])
                for n, p in ref["final"].items():
                    if n.startswith("text_image_encoder."):
                        assert torch.equal(p.to(torch.float32), init2[n]), n
                assert ntrain == (305283 if not small else ntrain)
            else:
                assert all("transformer_encoder_block" in n or n == "temperature" for n in ref["no_grad"])
                if not small:
                    assert ntrain == 1884038, ntrain
            for n, p in ref["final"].items():
                if n not in ref["grads"]:
                    init = init1 if step == "step1" else init2
                    assert torch.equal(p.to(torch.float32), init[n]), n + " changed"

        # ---- write files
        def meta_with(step, extra):
            ref, dev = results[step]
            m = dict(base_meta)
            m.update(extra)
            m["step"] = step
            m["trainable_params"] = sum(g.numel() for g in ref["grads"].values())
            m["observed_f32_torch_vs_ref"] = " ".join("%s=%.2e" % kv for kv in dev.items())
            m["trainable_names"] = ",".join(sorted(ref["grads"]))
            return {k: str(v) for k, v in m.items()}

        p = lambda name: os.path.join(OUT, "%s_%s.safetensors" % (cfg_name, name))  # noqa: E731
        s1, _ = results["step1"]
        s2, _ = results["step2"]
        extra1 = {"embeddings": "image_embeddings = a (image), text_embeddings = b (text)"}
        extra2 = {"embeddings": "text_embeddings = anchor (frozen), audio_embeddings = new",
                  "anchor": "text", "new_modality": "audio",
                  "frozen": "text_image_encoder.* = the step-1 INITIAL weights"}
        if small:
            st.save(p("features"), {"%s.%d" % (m, j): feats[m][j] for m in feats for j in range(N_BATCHES)},
                    dict((k, str(v)) for k, v in base_meta.items()))
            st.save(p("step1_init"), {k: np32(v) for k, v in init1.items()}, meta_with("step1", extra1))
            # new parts only; the frozen text_image_encoder.* part is small_step1_init
            st.save(p("step2_init"), {k: np32(v) for k, v in init2.items() if new_part(k)},
                    meta_with("step2", extra2))
            for step, ref, extra, (na, nb) in (("step1", s1, extra1, ("image", "text")),
                                               ("step2", s2, extra2, ("text", "audio"))):
                out = {na + "_embeddings": np32(ref["ea"]), nb + "_embeddings": np32(ref["eb"]),
                       "loss": np.array([ref["loss"]], dtype=np.float32),
                       "losses": np.array(ref["losses"], dtype=np.float32)}
                for n, g in ref["grads"].items():
                    out["grad." + n] = np32(g)
                    out["final." + n] = np32(ref["final"][n])
                st.save(p(step + "_expected"), out, meta_with(step, extra))
        else:
            for step, ref, extra, spec, (na, nb) in (
                    ("step1", s1, extra1, init1_spec, ("image", "text")),
                    ("step2", s2, extra2, init2_spec, ("text", "audio"))):
                meta = meta_with(step, extra)
                for n, v in spec.items():
                    meta["init." + n] = v
                out = {na + "_embeddings": np32(ref["ea"]), nb + "_embeddings": np32(ref["eb"]),
                       "loss": np.array([ref["loss"]], dtype=np.float32),
                       "losses": np.array(ref["losses"], dtype=np.float32)}
                init = init1 if step == "step1" else init2
                for n, g in ref["grads"].items():
                    out["grad_norm." + n] = np.array([float(g.norm())], dtype=np.float32)
                    out["grad_head." + n] = np32(g.reshape(-1)[:32])
                    out["final_norm." + n] = np.array([float(ref["final"][n].norm())], dtype=np.float32)
                    out["final_head." + n] = np32(ref["final"][n].reshape(-1)[:32])
                for n in spec:
                    if not n.startswith("text_image_encoder."):
                        out["init_head." + n] = np32(init[n].reshape(-1)[:8])
                for m in ((na, nb)):
                    for j in (0, 1, N_BATCHES - 1):
                        out["features_head.%s.%d" % (m, j)] = feats[m][j].reshape(-1)[:16].copy()
                st.save(p(step + "_expected"), out, meta)


# ---------------------------------------------------------------- fusion fixtures
# One small config per fusion; distinct input dims per modality so a swapped head shows.
FUSION_CFG = dict(d=16, heads=4, ff=40, din={"image": 24, "text": 20, "audio": 12}, B=3,
                  L={"image": 5, "text": 4, "audio": 6})
FUSION_LAYERS = {"addition": 1, "multiplication": 2, "concatenation": 1, "scaled_dot_product": 2}
FUSION_TOKENS = {"addition": 1, "multiplication": 1, "concatenation": 15, "scaled_dot_product": 1}


def embed_all(m1, m2, feats, dtype):
    """(image, text, audio, anchor text through the step-2 model) embeddings in dtype."""
    m1 = copy.deepcopy(m1).to(dtype)
    m2 = copy.deepcopy(m2).to(dtype)
    for m in (m1, m2):
        M.set_dropout(m, 0.0)
        m.train()   # dropout p = 0 and never PyTorch's inference fast path
    with torch.no_grad():
        f = {k: torch.from_numpy(v).to(dtype) for k, v in feats.items()}
        return {"image_embeddings": m1.encode("image", f["image"]),
                "text_embeddings": m1.encode("text", f["text"]),
                "audio_embeddings": m2.encode_new(f["audio"]),
                "step2_text_embeddings": m2.encode_anchor("text", f["text"])}


def fusion_fixtures():
    c = FUSION_CFG
    d = c["d"]
    for k, fusion in enumerate(("addition", "multiplication", "concatenation", "scaled_dot_product")):
        torch.manual_seed(2000 + k)
        ts, layers = FUSION_TOKENS[fusion], FUSION_LAYERS[fusion]
        m1 = M.Step1Model(d=d, input_dims=(c["din"]["image"], c["din"]["text"]), num_head=c["heads"],
                          num_layers=layers, dim_feedforward=c["ff"], dropout=0.1,
                          fusion=fusion, token_size=ts)
        perturb_small(m1, torch.Generator().manual_seed(300 + k))
        m2 = M.Step2Model(copy.deepcopy(m1), "audio", c["din"]["audio"], d, dropout=0.1, token_size=ts)
        new_part = lambda n: not n.startswith("text_image_encoder.")  # noqa: E731
        perturb_small(m2, torch.Generator().manual_seed(400 + k), only=new_part)
        feats = {m: hash_features(k, m, c["B"], c["L"][m], c["din"][m]) for m in ("image", "text", "audio")}
        ref = embed_all(m1, m2, feats, torch.float64)
        f32 = embed_all(m1, m2, feats, torch.float32)
        dev = max(rel_err(f32[n], ref[n]) for n in ref)
        assert torch.allclose(ref["text_embeddings"], ref["step2_text_embeddings"])
        meta = {"fusion": fusion, "d": d, "heads": c["heads"], "ff": c["ff"], "layers": layers,
                "token_size": ts, "input_dims": "image %d, text %d, audio %d" % (
                    c["din"]["image"], c["din"]["text"], c["din"]["audio"]),
                "pooling": "original (mean over all positions)", "dropout": "0 in the embeddings",
                "features": FEATURE_FORMULA + " (j = %d; D, L per modality)" % k,
                "reference_dtype": "float64 run from float32 weights and features",
                "observed_f32_torch_vs_ref": "%.2e" % dev,
                "generator": "tools/gen_oneencoder_fixtures.py (torch %s)" % torch.__version__}
        meta = {a: str(b) for a, b in meta.items()}
        p = lambda name: os.path.join(OUT, "fusion_%s_%s.safetensors" % (fusion, name))  # noqa: E731
        st.save(p("step1"), {n: np32(t) for n, t in m1.state_dict().items()}, meta)
        st.save(p("step2_new"), {n: np32(t) for n, t in m2.state_dict().items() if new_part(n)}, meta)
        out = {n: np32(t) for n, t in ref.items() if n != "step2_text_embeddings"}
        for m in feats:
            out["features." + m] = feats[m]
        st.save(p("expected"), out, meta)
        print("fusion %s: %d step-1 tensors, layers %d, token rows %d, float32 torch vs float64 %.2e" % (
            fusion, len(m1.state_dict()), layers, ts, dev))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    if ONLY in ("all", "training"):
        main()
    if ONLY in ("all", "fusions"):
        fusion_fixtures()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("wrote %s: %d bytes total" % (OUT, total))
