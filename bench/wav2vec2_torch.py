#!/usr/bin/python3
"""PyTorch reference for bench/wav2vec2_bench.lua: torchaudio's wav2vec2_base (random weights,
eval, no_grad) on a batch of 10 s clips at 16 kHz.

    /usr/bin/python3 bench/wav2vec2_torch.py save DIR         write DIR/model.safetensors (these
        random weights under Hugging Face's Wav2Vec2Model names, torchaudio's keys mapped as
        import_huggingface_model does) and DIR/config.json (wav2vec2-base's)
    /usr/bin/python3 bench/wav2vec2_torch.py run THREADS BATCH SECONDS REPS
        prints torch_w2v_seconds (median of REPS forwards after one warm-up), torch_w2v_cpu_seconds
        and torch_w2v_peak_rss_mb (the process's peak resident set, model and activations included)

The weights come from torch.manual_seed(0), so "save" and "run" hold the same model. OpenBLAS
reads OPENBLAS_CORETYPE and libgomp OMP_WAIT_POLICY from the environment the Lua bench passes.
"""
import json
import os
import resource
import sys
import time

import torch
import torchaudio

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))


def model():
    torch.manual_seed(0)
    return torchaudio.models.wav2vec2_base().eval()


def save(d):
    import st
    os.makedirs(d, exist_ok=True)
    sd = {}
    for k, v in model().state_dict().items():
        if k.startswith("encoder.feature_projection."):
            k = k[len("encoder."):]
        elif k.startswith("encoder.transformer."):
            k = "encoder." + k[len("encoder.transformer."):]
        sd[k] = v
    sd["masked_spec_embed"] = torch.zeros(768)
    st.save(os.path.join(d, "model.safetensors"), sd)
    cfg = {"model_type": "wav2vec2", "conv_dim": [512] * 7, "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
           "conv_stride": [5, 2, 2, 2, 2, 2, 2], "conv_bias": False, "feat_extract_norm": "group",
           "do_stable_layer_norm": False, "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
           "num_hidden_layers": 12, "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
           "layer_norm_eps": 1e-5, "hidden_act": "gelu", "feat_extract_activation": "gelu"}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)


def run(threads, batch, seconds, reps):
    torch.set_num_threads(threads)
    m = model()
    x = torch.randn(batch, int(16000 * seconds), generator=torch.Generator().manual_seed(1))
    x = (x - x.mean(1, keepdim=True)) / x.std(1, keepdim=True)
    wall, cpu = [], []
    with torch.no_grad():
        m(x)
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            m(x)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    wall.sort()
    cpu.sort()
    print("torch_w2v_seconds: %.4f" % wall[len(wall) // 2])
    print("torch_w2v_cpu_seconds: %.4f" % cpu[len(cpu) // 2])
    print("torch_w2v_peak_rss_mb: %.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2])
    else:
        run(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
