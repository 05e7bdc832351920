#!/usr/bin/python3
"""Reference fixtures for VideoMAE (spec/videomae_spec.lua) and the step-2 video file
(the original layout, text_image_encoder.* + video_encoder.*).

Run with Debian's python3-torch 1.13 / python3-pil / python3-numpy and the ffmpeg CLI:
    /usr/bin/python3 tools/videomae_fixtures.py
Output: spec/fixtures/videomae/ (about 0.6 MB). Fixed seeds: running it again writes the same files.

The reference model is written here from nn.Conv3d, nn.Linear, nn.LayerNorm and functional
attention with Hugging Face VideoMAEModel's semantics (read in transformers'
modeling_videomae.py): pixel_values (B, T, C, H, W) permuted to (B, C, T, H, W) into a Conv3d
with kernel = stride = (tubelet, patch, patch), flattened to (B, N, D) in (frame group, row,
column) order; plus the fixed sinusoid table of get_sinusoid_encoding_table (angle = pos /
10000^(2 (j // 2) / D), sin on even j, cos on odd, float64 then float32), written again here
with numpy; pre-norm layers: layernorm_before, queries/keys/values by F.linear with q_bias, no
key bias (HF passes zeros), v_bias (none at all when qkv_bias is false), softmax(q k^T /
sqrt(hd)) v, output dense + residual, layernorm_after, intermediate dense, exact GELU, output
dense + residual; then the final LayerNorm (use_mean_pooling false) or nothing (true), and for
a VideoMAEForVideoClassification file fc_norm (nn.LayerNorm, eps 1e-5) of the token mean.
Every parameter random (frozen_fixtures.randomise). Two models, small config (hidden 32,
2 layers, 4 heads, intermediate 64, 4 frames of 32x32, tubelet 2, patch 8: 32 tokens):
  model_a/   model.safetensors (keys without prefix), config.json (layer_norm_eps 0.01, so a
             runtime ignoring the config's eps fails), preprocessor_config.json (shortest edge
             32, crop 32, the HF processor's other defaults)
  model_b/   VideoMAEForVideoClassification layout: videomae.* + fc_norm.* + classifier.*,
             qkv_bias false, use_mean_pooling true, config.json
Inputs: pixels from an integer hash (frozen_fixtures.pixels; the spec rebuilds them) for a
batch of 3, and clip.mp4: 7 frames of 40x48 made here in numpy (a gradient plus noise),
encoded losslessly in RGB (libx264rgb -qp 0, so every decoder returns these exact pixels: the
spec checks that) and short.mp4 (4 frames). The frames go through VideoMAEImageProcessor's
steps written here with PIL: resize of the shorter side to 32 (PIL bilinear, long side
int(32 * long / short)), center crop 32 (top = (h - 32) // 2), x / 255, ImageNet mean/std.
Clips: uniform sampling (frames 0, 2, 4, 6) and the original's window sampling
(sample_frame_indices(clip_len=4, frame_sample_rate=1, seg_len=7): end uniform in
randint(4, 7), frames end-4 .. end-1, i.e. a start in 0..2), one reference per start.

step2_video.safetensors: a OneEncoder step-2 video file in the original's layout at small
sizes: text_image_encoder.* = a step-1 model (tools/oneencoder_mirror.py Step1Model, d 16)
with a tiny timm ViT (torchvision VisionTransformer 32x32, patch 16, 1 layer, width 16) and
a tiny BertModel composition (frozen_fixtures.Bert: width 16, 1 layer, 2 heads) as its frozen
encoders; video_encoder.pretrained_encoder.* = model_a's VideoMAE; video_encoder.alignment_layer.*,
modality_token_encoder.{video_token, token_projection.*} and temperature from
oneencoder_mirror.Step2Model(name = "video"), every parameter random, dropout 0. Reference
embeddings: the original's encode_video (VideoMAE last_hidden_state -> alignment layer -> UP
with the video token -> mean over the tokens -> L2 normalisation) for the uniform clip and for
each original window.
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import frozen_fixtures as FF  # noqa: E402
import oneencoder_mirror as MI  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "videomae")
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
torch.set_num_threads(1)


def sinusoid_table(n, d):
    pos = np.arange(n, dtype=np.float64)[:, None]
    j = np.arange(d)
    angle = pos / np.power(10000.0, 2 * (j // 2) / d)
    return torch.tensor(np.where(j % 2 == 0, np.sin(angle), np.cos(angle)), dtype=torch.float32)


class Layer(nn.Module):
    def __init__(self, D, H, inter, eps, qkv_bias):
        super().__init__()
        self.H = H
        self.layernorm_before = nn.LayerNorm(D, eps=eps)
        self.query = nn.Linear(D, D, bias=False)
        self.key = nn.Linear(D, D, bias=False)
        self.value = nn.Linear(D, D, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(D)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(D)) if qkv_bias else None
        self.dense = nn.Linear(D, D)
        self.layernorm_after = nn.LayerNorm(D, eps=eps)
        self.intermediate = nn.Linear(D, inter)
        self.output = nn.Linear(inter, D)

    def forward(self, x):
        B, L, D = x.shape
        hd = D // self.H
        h = self.layernorm_before(x)
        k_bias = torch.zeros_like(self.v_bias) if self.q_bias is not None else None
        q = F.linear(h, self.query.weight, self.q_bias)
        k = F.linear(h, self.key.weight, k_bias)
        v = F.linear(h, self.value.weight, self.v_bias)
        q, k, v = (t.view(B, L, self.H, hd).transpose(1, 2) for t in (q, k, v))
        p = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * hd ** -0.5, dim=-1)
        a = torch.matmul(p, v).transpose(1, 2).reshape(B, L, D)
        x = x + self.dense(a)
        m = F.gelu(self.intermediate(self.layernorm_after(x)))
        return x + self.output(m)


class VideoMAE(nn.Module):
    def __init__(self, D=32, layers=2, H=4, inter=64, C=3, t=2, P=8, frames=4, image=32, eps=1e-12,
                 qkv_bias=True, mean_pooling=False):
        super().__init__()
        self.cfg = dict(hidden_size=D, num_hidden_layers=layers, num_attention_heads=H, intermediate_size=inter,
                        num_channels=C, tubelet_size=t, patch_size=P, num_frames=frames, image_size=image,
                        layer_norm_eps=eps, qkv_bias=qkv_bias, use_mean_pooling=mean_pooling,
                        hidden_act="gelu", model_type="videomae")
        self.projection = nn.Conv3d(C, D, kernel_size=(t, P, P), stride=(t, P, P))
        self.layers = nn.ModuleList([Layer(D, H, inter, eps, qkv_bias) for _ in range(layers)])
        self.layernorm = None if mean_pooling else nn.LayerNorm(D, eps=eps)
        self.fc_norm = nn.LayerNorm(D) if mean_pooling else None
        self.pos = sinusoid_table((frames // t) * (image // P) ** 2, D)

    def forward(self, pixel_values):
        x = self.projection(pixel_values.permute(0, 2, 1, 3, 4)).flatten(2).transpose(1, 2)
        x = x + self.pos
        for layer in self.layers:
            x = layer(x)
        if self.layernorm is not None:
            x = self.layernorm(x)
        pooled = self.fc_norm(x.mean(1)) if self.fc_norm is not None else None
        return x, pooled

    def hf_state_dict(self, prefix=""):
        sd = {prefix + "embeddings.patch_embeddings.projection.weight": self.projection.weight,
              prefix + "embeddings.patch_embeddings.projection.bias": self.projection.bias}
        for i, l in enumerate(self.layers):
            p = "%sencoder.layer.%d." % (prefix, i)
            sd[p + "layernorm_before.weight"] = l.layernorm_before.weight
            sd[p + "layernorm_before.bias"] = l.layernorm_before.bias
            sd[p + "attention.attention.query.weight"] = l.query.weight
            sd[p + "attention.attention.key.weight"] = l.key.weight
            sd[p + "attention.attention.value.weight"] = l.value.weight
            if l.q_bias is not None:
                sd[p + "attention.attention.q_bias"] = l.q_bias
                sd[p + "attention.attention.v_bias"] = l.v_bias
            sd[p + "attention.output.dense.weight"] = l.dense.weight
            sd[p + "attention.output.dense.bias"] = l.dense.bias
            sd[p + "layernorm_after.weight"] = l.layernorm_after.weight
            sd[p + "layernorm_after.bias"] = l.layernorm_after.bias
            sd[p + "intermediate.dense.weight"] = l.intermediate.weight
            sd[p + "intermediate.dense.bias"] = l.intermediate.bias
            sd[p + "output.dense.weight"] = l.output.weight
            sd[p + "output.dense.bias"] = l.output.bias
        if self.layernorm is not None:
            sd[prefix + "layernorm.weight"] = self.layernorm.weight
            sd[prefix + "layernorm.bias"] = self.layernorm.bias
        return {k: v.detach().clone() for k, v in sd.items()}


# ---------------------------------------------------------------- video files

def make_frames(T, H, W, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    f = np.zeros((T, H, W, 3), np.int64)
    for t in range(T):
        f[t, ..., 0] = (xx * 5 + t * 20) % 256
        f[t, ..., 1] = (yy * 6 + t * 7) % 256
        f[t, ..., 2] = ((xx + yy) * 3 + t * 30) % 256
    return np.clip(f + rng.integers(0, 12, f.shape), 0, 255).astype(np.uint8)


def write_mp4(path, frames):
    T, H, W, _ = frames.shape
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "%dx%d" % (W, H),
                    "-r", "25", "-i", "-", "-c:v", "libx264rgb", "-qp", "0", "-preset", "veryslow", "-an",
                    "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", path],
                   input=frames.tobytes(), check=True)


def hf_process(frames, shortest, crop):
    """VideoMAEImageProcessor on a list of uint8 (H, W, 3) frames -> (T, 3, crop, crop)."""
    out = []
    for f in frames:
        h, w = f.shape[:2]
        if h <= w:
            nh, nw = shortest, int(shortest * w / h)
        else:
            nh, nw = int(shortest * h / w), shortest
        a = np.array(Image.fromarray(f).resize((nw, nh), Image.BILINEAR))
        top, left = (nh - crop) // 2, (nw - crop) // 2
        a = a[top:top + crop, left:left + crop].astype(np.float32) * np.float32(1 / 255)
        a = (a - IMAGENET_MEAN) / IMAGENET_STD
        out.append(a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(out).astype(np.float32))


# ---------------------------------------------------------------- step 2

def tiny_step1():
    import torchvision
    torch.manual_seed(0)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16,
                                               mlp_dim=32, num_classes=10)
    FF.randomise(vit, torch.Generator().manual_seed(31))
    import pretrained_fixtures as PF
    bert = FF.Bert(len(PF.VOCAB), 16, 1, 2, 32, 40, 2, 1e-12)
    FF.randomise(bert, torch.Generator().manual_seed(32))
    top = MI.Step1Model(d=16, input_dims=(16, 16), num_head=4, num_layers=1, dim_feedforward=32, dropout=0.1)
    FF.randomise(top, torch.Generator().manual_seed(33))
    sd = {}
    for k, v in FF.to_timm({k: v.detach().clone() for k, v in vit.state_dict().items()}).items():
        if not k.startswith("head."):
            sd["text_image_encoder.image_encoder.pretrained_vit." + k] = v
    for k, v in bert.hf_state_dict("text_image_encoder.text_encoder.pretrained_bert.").items():
        sd[k] = v
    return top, sd


def main():
    os.makedirs(os.path.join(OUT, "model_a"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "model_b"), exist_ok=True)
    torch.manual_seed(0)
    a = VideoMAE(eps=0.01)
    FF.randomise(a, torch.Generator().manual_seed(11))
    b = VideoMAE(qkv_bias=False, mean_pooling=True)
    FF.randomise(b, torch.Generator().manual_seed(12))
    a.eval(), b.eval()

    st.save(os.path.join(OUT, "model_a", "model.safetensors"), a.hf_state_dict(), metadata={"format": "pt"})
    with open(os.path.join(OUT, "model_a", "config.json"), "w") as f:
        json.dump(dict(a.cfg, architectures=["VideoMAEModel"]), f, indent=2, sort_keys=True)
    pre = {"crop_size": {"height": 32, "width": 32}, "do_center_crop": True, "do_normalize": True, "do_rescale": True,
           "do_resize": True, "image_mean": IMAGENET_MEAN.tolist(), "image_processor_type": "VideoMAEImageProcessor",
           "image_std": IMAGENET_STD.tolist(), "resample": 2, "rescale_factor": 1 / 255, "size": {"shortest_edge": 32}}
    with open(os.path.join(OUT, "model_a", "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2, sort_keys=True)
    sd_b = b.hf_state_dict("videomae.")
    sd_b["fc_norm.weight"] = b.fc_norm.weight.detach().clone()
    sd_b["fc_norm.bias"] = b.fc_norm.bias.detach().clone()
    sd_b["classifier.weight"] = torch.randn(5, 32, generator=torch.Generator().manual_seed(13))
    sd_b["classifier.bias"] = torch.zeros(5)
    st.save(os.path.join(OUT, "model_b", "model.safetensors"), sd_b, metadata={"format": "pt"})
    with open(os.path.join(OUT, "model_b", "config.json"), "w") as f:
        json.dump(dict(b.cfg, architectures=["VideoMAEForVideoClassification"]), f, indent=2, sort_keys=True)

    frames = make_frames(7, 40, 48, 5)
    write_mp4(os.path.join(OUT, "clip.mp4"), frames)
    write_mp4(os.path.join(OUT, "short.mp4"), make_frames(4, 40, 48, 6))

    ref = {}
    with torch.no_grad():
        x = FF.pixels(3 * 4, 3, 32, 32, 7).reshape(3, 4, 3, 32, 32)
        ref["pixels_out_a"], _ = a(x)
        ref["pixels_out_b"], ref["pixels_pooled_b"] = b(x)
        ref["positions"] = a.pos
        uniform = [0, 2, 4, 6]
        px = hf_process(frames[uniform], 32, 32)
        ref["uniform_pixels"] = px
        ref["uniform_out_a"], _ = a(px.unsqueeze(0))
        ref["frames_sum"] = torch.tensor([float(frames.astype(np.int64).sum())], dtype=torch.float64)
        windows = []
        for start in range(0, 7 - 4):
            windows.append(a(hf_process(frames[start:start + 4], 32, 32).unsqueeze(0))[0])
        ref["window_out_a"] = torch.cat(windows, 0)

        # the step-2 file and its embeddings
        top, sd = tiny_step1()
        step2 = MI.Step2Model(top, name="video", input_dim=32, d=16)
        FF.randomise(step2, torch.Generator().manual_seed(34))
        MI.set_dropout(step2, 0.0)
        step2.train()
        for k, v in step2.state_dict().items():
            sd[k] = v.detach().clone()
        for k, v in a.hf_state_dict("video_encoder.pretrained_encoder.").items():
            sd[k] = v
        st.save(os.path.join(OUT, "step2_video.safetensors"), sd)
        ref["step2_uniform"] = step2.encode_new(ref["uniform_out_a"])
        ref["step2_windows"] = step2.encode_new(ref["window_out_a"])
    st.save(os.path.join(OUT, "expected.safetensors"), ref)
    for f in sorted(os.listdir(OUT)):
        p = os.path.join(OUT, f)
        if os.path.isfile(p):
            print("%-28s %8d bytes" % (f, os.path.getsize(p)))


if __name__ == "__main__":
    main()
