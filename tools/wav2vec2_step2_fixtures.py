#!/usr/bin/python3
"""End-to-end fixture for the released step-2 audio layout (spec/wav2vec2_spec.lua, "step-2 file").

Run after tools/pretrained_fixtures.py and tools/wav2vec2_fixtures.py (it reads their outputs):
    /usr/bin/python3 tools/wav2vec2_step2_fixtures.py
Output: spec/fixtures/wav2vec2/step2_audio.safetensors (about 150 KB), fixed seeds.

The original's step-2 audio file (audio-image/addition/audio_image.py, class OneEncoder) holds
    text_image_encoder.*                  the whole frozen step-1 model (ViT and BERT included)
    audio_encoder.pretrained_encoder.*    Hugging Face Wav2Vec2Model keys
    audio_encoder.alignment_layer.*       the alignment layer (a projection head's structure)
    modality_token_encoder.{audio_token, token_projection.*}   the new modality's token encoder
    temperature
To keep the committed fixture small, this file holds every key of that layout except
text_image_encoder.*, which the spec prepends to every key of spec/fixtures/pretrained/
text_image.safetensors (the step-1 model of tools/pretrained_fixtures.py) when it assembles the
step-2 file. The frozen step-1 model here is that file's (d 32, 4 UP heads, ff 64, addition),
read back with tools/oneencoder_mirror.py Step1Model; the Wav2Vec2 is tools/wav2vec2_fixtures.py's
"group_post" model (wav2vec2-base's kind: group norm, post-norm; width 32, 4 heads) under the
prefix audio_encoder.pretrained_encoder.; the alignment layer (32 -> 32) and audio token encoder
are random (oneencoder_mirror Step2Model).

The pipeline reproduced is the original's encode_audio with its processor call: clips as the
project decodes them (16 kHz mono, the same samples torchaudio's sox gives), the
Wav2Vec2FeatureExtractor with padding=True and truncation at 15 s on a list, no attention mask
(return_attention_mask false, as wav2vec2-base-960h's), pretrained_encoder(input_values)
.last_hidden_state -> alignment_layer -> UP with the audio token -> mean over every frame
(padding included) -> L2 normalisation. Two paddings:
    audio_none     each clip alone (no padding reaches the model)
    audio_batch2   the list in batches of 2, each batch padded to its longest clip
for the clips speech.flac, short.wav, short.wav (batches of 2: the second short clip alone). Dropout 0 with the modules in train
mode (the same arithmetic as eval without PyTorch's fast path); the Wav2Vec2 in eval.
"""
import os
import sys

import torch
import torchaudio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import frozen_fixtures as FF  # noqa: E402
import oneencoder_mirror as MI  # noqa: E402
import wav2vec2_fixtures as W  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures")
OUT = os.path.join(ROOT, "wav2vec2", "step2_audio.safetensors")
CLIPS = ["speech.flac", "short.wav", "short.wav"]
torch.set_num_threads(1)


def step1_model():
    sd, _ = st.load(os.path.join(ROOT, "pretrained", "text_image.safetensors"))
    top = MI.Step1Model(d=32, input_dims=(96, 64), num_head=4, num_layers=1, dim_feedforward=64, dropout=0.1)
    own = {k: torch.from_numpy(v) for k, v in sd.items()
           if not k.startswith(("image_encoder.pretrained_vit.", "text_encoder.pretrained_bert."))}
    top.load_state_dict(own, strict=True)
    return top


def main():
    top = step1_model()
    torch.manual_seed(5)
    s2 = MI.Step2Model(top, "audio", input_dim=W.D, d=32, dropout=0.1)
    g = torch.Generator().manual_seed(55)
    FF.randomise(s2.audio_encoder, g)
    FF.randomise(s2.modality_token_encoder, g)
    MI.set_dropout(s2, 0.0)
    s2.train()
    w2v = W.build("group_post")
    sd = {}
    for k, v in s2.state_dict().items():
        if not k.startswith("text_image_encoder."):
            sd[k] = v.detach().clone()
    for k, v in W.hf_state_dict("group_post", w2v).items():
        sd["audio_encoder.pretrained_encoder." + k] = v
    clips = [torchaudio.load(os.path.join(ROOT, "wav2vec2", c))[0][0].numpy() for c in CLIPS]

    def embed(group):
        x, _ = W.feature_extractor(group, False, 15 * 16000)
        with torch.no_grad():
            return s2.encode_new(w2v(x)[0])

    with torch.no_grad():
        sd["expected.audio_none"] = torch.cat([embed([c]) for c in clips], 0)
        sd["expected.audio_batch2"] = torch.cat([embed(clips[i:i + 2]) for i in range(0, len(clips), 2)], 0)
    st.save(OUT, sd, metadata={"clips": "\n".join(CLIPS)})
    print("%s: %d bytes" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
