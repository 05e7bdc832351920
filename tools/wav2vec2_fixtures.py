#!/usr/bin/python3
"""Wav2Vec2 reference fixtures for spec/wav2vec2_spec.lua.

Run with Debian's python3-torch 1.13 / python3-torchaudio 0.13 (and espeak-ng + ffmpeg for the
speech, made once and then reused):
    /usr/bin/python3 tools/wav2vec2_fixtures.py
Output: spec/fixtures/wav2vec2/ (about 1 MB). Fixed seeds: running it again writes the same files.

The reference is torchaudio's own Wav2Vec2 (torchaudio.models.wav2vec2_model), random weights at a
small config whose convolution kernels and strides are wav2vec2-base's (receptive field 400
samples, 320 samples per frame), four models:
    group_post   feat_extract_norm "group", do_stable_layer_norm false (wav2vec2-base's kind),
                 no conv bias, positional kernel 16 (even: last frame dropped), weight_g/weight_v
    layer_pre    "layer", true (large-lv60's kind), conv bias, positional kernel 9 (odd), stored as
                 parametrizations.weight.original0/original1 under the prefix "wav2vec2." beside an
                 lm_head (a Wav2Vec2ForCTC file)
    group_pre, layer_post   the two other combinations (config.json says which)
torchaudio's keys are renamed to Hugging Face's as torchaudio's import_huggingface_model maps
them (feature_extractor.* as is, encoder.feature_projection.* -> feature_projection.*,
encoder.transformer.* -> encoder.*), plus masked_spec_embed (unused in inference). Each model
has a config.json in Hugging Face's form.

Inputs: speech.flac / speech.wav (espeak-ng, 1 s, 16 kHz mono 16-bit, the same samples in both) and
short.wav (0.5 s); torchaudio.load (sox) decodes them to int16 / 32768 as libsndfile does. The
Wav2Vec2FeatureExtractor is written out below in numpy (float32 as it computes), as its current
code does it: truncation to max_length, zero padding to the longest clip, then zero mean / unit
variance with eps 1e-7 over the whole padded row (no attention mask) or over the real samples
with the pads left at 0 (attention mask). The extractor's outputs are in inputs.safetensors (pair; short_masked: the short clip's row with
an attention mask); expected outputs
per model (expected_<model>.safetensors):
    speech        the FLAC alone
    pair          [speech, short] padded together, no attention mask (the original's batches)
    pair_masked   the same with an attention mask: torchaudio's lengths (frames past each clip's
                  own count zeroed before the positional convolution and never attended to)
    silence       1,000 zero samples alone (zero variance)
    trunc         [speech, short] truncated at 8,000 samples, no mask
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torchaudio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import frozen_fixtures as FF  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "wav2vec2")
torch.set_num_threads(1)

CONV = [(24, 10, 5), (24, 3, 2), (24, 3, 2), (24, 3, 2), (24, 3, 2), (24, 2, 2), (24, 2, 2)]
D, HEADS, LAYERS, INTER = 32, 4, 2, 64

MODELS = {
    # name: (feat norm, stable, conv bias, pos kernel, pos groups, parametrizations, prefix)
    "group_post": ("group", False, False, 16, 4, False, ""),
    "layer_pre": ("layer", True, True, 9, 2, True, "wav2vec2."),
    "group_pre": ("group", True, False, 16, 4, False, ""),
    "layer_post": ("layer", False, True, 9, 2, True, ""),
}


def make_audio():
    os.makedirs(OUT, exist_ok=True)
    flac, wav, short = (os.path.join(OUT, n) for n in ("speech.flac", "speech.wav", "short.wav"))
    if not os.path.exists(flac):
        raw = "/tmp/w2v_speech_raw.wav"
        subprocess.check_call(["espeak-ng", "-v", "en-us", "-s", "170", "-w", raw, "a dog runs on the beach"])
        for dst in (flac, wav):
            subprocess.check_call(["ffmpeg", "-v", "error", "-y", "-i", raw, "-ac", "1", "-ar", "16000",
                                   "-sample_fmt", "s16", "-t", "1.0", dst])
        subprocess.check_call(["espeak-ng", "-v", "en-us", "-s", "200", "-w", raw, "two cats"])
        subprocess.check_call(["ffmpeg", "-v", "error", "-y", "-i", raw, "-ac", "1", "-ar", "16000",
                               "-sample_fmt", "s16", "-t", "0.5", short])
    a, ra = torchaudio.load(flac)
    b, rb = torchaudio.load(wav)
    c, rc = torchaudio.load(short)
    assert ra == rb == rc == 16000 and a.shape[0] == 1 and torch.equal(a, b), "speech.flac and speech.wav differ"
    return a[0].numpy().astype(np.float32), c[0].numpy().astype(np.float32)


def feature_extractor(clips, attention_mask, max_length=None):
    """Wav2Vec2FeatureExtractor(do_normalize=True, padding_value=0)(clips, padding=True,
    truncation=max_length is not None, max_length=max_length, return_attention_mask=...)"""
    if max_length is not None:
        clips = [c[:max_length] for c in clips]
    n = max(len(c) for c in clips)
    rows, lengths = [], []
    for c in clips:
        row = np.zeros(n, np.float32)
        row[:len(c)] = c
        if attention_mask:
            k = len(c)
            normed = (row - row[:k].mean()) / np.sqrt(row[:k].var() + 1e-7)
            normed[k:] = 0.0
        else:
            normed = (row - row.mean()) / np.sqrt(row.var() + 1e-7)
        rows.append(normed.astype(np.float32))
        lengths.append(len(c))
    return torch.from_numpy(np.stack(rows)), torch.tensor(lengths)


def build(name):
    norm, stable, bias, pk, pg, _, _ = MODELS[name]
    torch.manual_seed(0)
    m = torchaudio.models.wav2vec2_model(
        extractor_mode=norm + "_norm", extractor_conv_layer_config=CONV, extractor_conv_bias=bias,
        encoder_embed_dim=D, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=pk,
        encoder_pos_conv_groups=pg, encoder_num_layers=LAYERS, encoder_num_heads=HEADS,
        encoder_attention_dropout=0.0, encoder_ff_interm_features=INTER, encoder_ff_interm_dropout=0.0,
        encoder_dropout=0.0, encoder_layer_norm_first=stable, encoder_layer_drop=0.0, aux_num_out=None)
    FF.randomise(m, torch.Generator().manual_seed(100 + sorted(MODELS).index(name)))
    m.eval()
    return m


def hf_state_dict(name, m):
    _, _, _, _, _, param, prefix = MODELS[name]
    sd = {}
    for k, v in m.state_dict().items():
        if k.startswith("encoder.feature_projection."):
            k = k[len("encoder."):]
        elif k.startswith("encoder.transformer."):
            k = "encoder." + k[len("encoder.transformer."):]
        if param:
            k = k.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
            k = k.replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1")
        sd[prefix + k] = v.detach().clone()
    sd[prefix + "masked_spec_embed"] = torch.rand(D, generator=torch.Generator().manual_seed(7))
    if prefix:
        g = torch.Generator().manual_seed(8)
        sd["lm_head.weight"] = torch.randn(5, D, generator=g)
        sd["lm_head.bias"] = torch.randn(5, generator=g)
    return sd


def config(name):
    norm, stable, bias, pk, pg, _, _ = MODELS[name]
    return {
        "model_type": "wav2vec2", "architectures": ["Wav2Vec2ForCTC" if MODELS[name][6] else "Wav2Vec2Model"],
        "conv_dim": [c[0] for c in CONV], "conv_kernel": [c[1] for c in CONV], "conv_stride": [c[2] for c in CONV],
        "conv_bias": bias, "feat_extract_norm": norm, "feat_extract_activation": "gelu", "hidden_act": "gelu",
        "do_stable_layer_norm": stable, "hidden_size": D, "intermediate_size": INTER, "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS, "num_conv_pos_embeddings": pk, "num_conv_pos_embedding_groups": pg,
        "num_feat_extract_layers": len(CONV), "layer_norm_eps": 1e-5, "hidden_dropout": 0.1,
        "mask_time_prob": 0.05, "vocab_size": 5,
    }


def main():
    speech, short = make_audio()
    silence = np.zeros(1000, np.float32)
    with open(os.path.join(OUT, "preprocessor_config.json"), "w") as f:
        json.dump({"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
                   "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False,
                   "sampling_rate": 16000}, f, indent=2)
    inputs = {}
    for name in sorted(MODELS):
        m = build(name)
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        st.save(os.path.join(d, "model.safetensors"), hf_state_dict(name, m))
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config(name), f, indent=2)
        ref = {}
        with torch.no_grad():
            x, _ = feature_extractor([speech], False)
            ref["speech"] = m(x)[0]
            x, _ = feature_extractor([speech, short], False)
            inputs["pair"] = x
            ref["pair"] = m(x)[0]
            x, lens = feature_extractor([speech, short], True)
            inputs["short_masked"] = x[1]      # row 1 equals pair's (the longest clip has no pads)
            ref["pair_masked"] = m(x, lens)[0]
            x, _ = feature_extractor([silence], False)
            ref["silence"] = m(x)[0]
            x, _ = feature_extractor([speech, short], False, 8000)
            ref["trunc"] = m(x)[0]
        st.save(os.path.join(OUT, "expected_%s.safetensors" % name), ref,
                metadata={"speech_samples": str(len(speech)), "short_samples": str(len(short))})
    st.save(os.path.join(OUT, "inputs.safetensors"), inputs)
    total = 0
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            total += os.path.getsize(os.path.join(root, f))
    print("spec/fixtures/wav2vec2: %d bytes" % total)


if __name__ == "__main__":
    main()
