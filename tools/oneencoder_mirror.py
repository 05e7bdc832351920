"""PyTorch mirror of the original OneEncoder trainable parts (development tool).

Written from the description in /work/shared/ONEENCODER.md and a reading of the
original repository b-faye/OneEncoder (files "contrastive learning/.../text_image.py",
".../audio-image/addition/audio_image.py", ".../text and audio/text_audio.py");
no code was copied. Runs with Debian's python3-torch (1.13, CPU). Only used by
tools/gen_oneencoder_fixtures.py and bench/oneencoder_step_torch.py; the project
itself never needs Python.

The frozen pretrained encoders (ViT, BERT, Wav2Vec2, ...) are left OUT: the
models below take their outputs directly, as (B, L, input_dim) tensors.

State-dict names (exactly the original's, minus the pretrained encoders)
------------------------------------------------------------------------
Step 1 model (the original `OneEncoder` / `TextImageEncoder` of text_image.py):
    image_encoder.projection_head.{linear_layer1,linear_layer2,normalization_layer}.{weight,bias}
    text_encoder.projection_head.{linear_layer1,linear_layer2,normalization_layer}.{weight,bias}
    modality_token_encoder.image_token                      (1, 3)
    modality_token_encoder.text_token                       (1, 3)
    modality_token_encoder.token_projection.{0,2,4,5}.{weight,bias}
        (Sequential: 0 Linear(3,64), 1 ReLU, 2 Linear(64,128), 3 ReLU,
         4 Linear(128,d), 5 LayerNorm(d))
    universal_projection_encoder.layer_normalization.{weight,bias}
    universal_projection_encoder.transformer_encoder.layers.0.{self_attn.in_proj_weight,
        self_attn.in_proj_bias, self_attn.out_proj.weight, self_attn.out_proj.bias,
        linear1.weight, linear1.bias, linear2.weight, linear2.bias,
        norm1.weight, norm1.bias, norm2.weight, norm2.bias}
    universal_projection_encoder.transformer_encoder_block.<same 12 names>
        (the layer object handed to nn.TransformerEncoder, which deep-copies it:
         present in the state dict, equal to layers.0 at construction, never
         used in forward, so it never receives a gradient)
    temperature                                             () scalar, 0.07
        (used only through a detached clamp to [2.5, 3.0]: never receives a
         gradient; the logit scale is the constant exp(2.5))
  Absent here, present in the original: image_encoder.pretrained_vit.*,
  text_encoder.pretrained_bert.*.

Step 2 model (the original `OneEncoder` of audio-image/addition/audio_image.py;
text_audio.py is an older variant whose audio token is a raw (1, d) vector
with no MLP, not mirrored):
    modality_token_encoder.audio_token                      (1, 3)   NEW, trained
    modality_token_encoder.token_projection.{0,2,4,5}.*              NEW, trained
    audio_encoder.alignment_layer.{linear_layer1,linear_layer2,normalization_layer}.*
                                                                     NEW, trained
    text_image_encoder.<every step-1 name above>                     frozen
    temperature                                             () 0.07, no gradient
  i.e. the new token encoder takes the top-level name `modality_token_encoder`
  and the whole step-1 model is nested under `text_image_encoder.` (its token
  encoder becomes text_image_encoder.modality_token_encoder.*).
  Absent here: audio_encoder.pretrained_encoder.* (Wav2Vec2),
  text_image_encoder.*.pretrained_*.
  The modality name is a parameter (audio by default): for "video" the names
  are video_token and video_encoder.alignment_layer.*.

Trainable counts (parameters that receive a gradient), 768-d inputs, d = 256,
4 heads, ff 2048, one UP layer: step 1 = 1,884,038; step 2 = 305,283 per new
modality (count_params() below reports them).

Fusions: UniversalProjectionEncoder(fusion=...) mirrors the original's four
working variants (addition, multiplication, concatenation with token_size 15,
scaled dot product, whose attention adds
universal_projection_encoder.scaled_dot_product.{query,key,value}.{weight,bias}).

Forward (addition fusion, "original" pooling):
    m  = token_projection(raw_token)            (1, d)
    H0 = X + m                                   X = head(features), (B, L, d)
    Z  = layer_normalization(H0)
    T  = transformer_encoder(Z)                  post-norm layer, ReLU, no mask
    R  = T + H0
    e  = normalize(mean(R, dim=1))               mean over every position
Loss: logits = (E_a @ E_b.T) * exp(clamp(temperature.data, 2.5, 3.0));
      loss = (CE(logits, arange B) + CE(logits.T, arange B)) / 2.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ProjectionHead(nn.Module):
    """Token-wise Linear(in->d), exact GELU, Linear(d->d), Dropout, LayerNorm(d)."""

    def __init__(self, input_dim, projection_dim, dropout_rate=0.1):
        super().__init__()
        self.input_dim = input_dim
        self.projection_dim = projection_dim
        self.linear_layer1 = nn.Linear(input_dim, projection_dim)
        self.gelu = nn.GELU()
        self.linear_layer2 = nn.Linear(projection_dim, projection_dim)
        self.dropout = nn.Dropout(dropout_rate)
        self.normalization_layer = nn.LayerNorm(projection_dim)

    def forward(self, x):
        x = self.linear_layer1(x)
        x = self.gelu(x)
        x = self.linear_layer2(x)
        x = self.dropout(x)
        return self.normalization_layer(x)


class AlignmentLayer(ProjectionHead):
    """Step-2 layer: the same structure and parameter names as ProjectionHead."""


class FeatureEncoder(nn.Module):
    """Stands for ImageEncoder / TextEncoder / AudioEncoder with the pretrained
    encoder removed: only the trainable head, under the original attribute name
    (`projection_head` in step 1, `alignment_layer` in step 2)."""

    def __init__(self, head_name, input_dim, d, dropout_rate=0.1):
        super().__init__()
        self.head_name = head_name
        cls = ProjectionHead if head_name == "projection_head" else AlignmentLayer
        self.add_module(head_name, cls(input_dim, d, dropout_rate))

    def forward(self, features):
        return getattr(self, self.head_name)(features)


def _token_mlp(token_dim, d):
    return nn.Sequential(
        nn.Linear(token_dim, 64), nn.ReLU(),
        nn.Linear(64, 128), nn.ReLU(),
        nn.Linear(128, d), nn.LayerNorm(d))


class ModalityTokenEncoder(nn.Module):
    """Raw (token_size, token_dim) tokens, one per modality, and one shared MLP.

    Initialisation as in the original: for each modality s = U(0.1, 0.6) drawn
    once (torch.rand(1) * 0.5 + 0.1), token ~ N(0, s^2). In the original step-1
    class the draws are made in the order text_variance, image_variance, then
    text_token, image_token; pass modalities=("text", "image") for that order.
    forward(name) -> token_projection(<name>_token), shape (token_size, d)."""

    def __init__(self, d, modalities=("text", "image"), token_size=1, token_dim=3):
        super().__init__()
        self.modalities = tuple(modalities)
        stds = [(torch.rand(1) * 0.5 + 0.1).item() for _ in self.modalities]
        for name, s in zip(self.modalities, stds):
            self.register_parameter(
                name + "_token",
                nn.Parameter(torch.normal(mean=0.0, std=s, size=(token_size, token_dim))))
        self.token_projection = _token_mlp(token_dim, d)

    def forward(self, name):
        return self.token_projection(getattr(self, name + "_token"))


class ScaledDotProduct(nn.Module):
    """The original's fusion attention (module `scaled_dot_product` of the UP):
    c = softmax(q k^T / sqrt(d)) v with q from the token rows, k and v from the
    features; the original adds c (B, token_size, d) to X (B, L, d), so
    token_size is 1 in practice."""

    def __init__(self, d):
        super().__init__()
        self.d = d
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)

    def forward(self, x, tokens):
        keys = self.key(x)                                   # (B, L, d)
        values = self.value(x)                               # (B, L, d)
        query = self.query(tokens)                           # (B, ts, d)
        scores = torch.bmm(query, keys.transpose(1, 2)) / (self.d ** 0.5)
        return torch.bmm(F.softmax(scores, dim=-1), values)  # (B, ts, d)


FUSIONS = ("addition", "multiplication", "concatenation", "scaled_dot_product")


class UniversalProjectionEncoder(nn.Module):
    """LayerNorm + nn.TransformerEncoder (post-norm, ReLU) with the outer
    residual from the fused input. forward(x, token) returns R (B, L, d).

    fusion (the original's variants, one per folder of its repository):
      addition            H0 = X + m
      multiplication      H0 = X * m
      concatenation       H0 = cat(m rows, X) along the sequence; the token_size
                          leading positions are dropped from R
      scaled_dot_product  H0 = X + softmax(q k^T / sqrt(d)) v (ScaledDotProduct,
                          state-dict names scaled_dot_product.{query,key,value}.*)"""

    def __init__(self, d, num_head=4, num_layers=1, dim_feedforward=2048, dropout=0.1,
                 fusion="addition", token_size=1):
        super().__init__()
        assert fusion in FUSIONS, fusion
        self.fusion = fusion
        self.token_size = token_size
        if fusion == "scaled_dot_product":
            self.scaled_dot_product = ScaledDotProduct(d)
        self.transformer_encoder_block = nn.TransformerEncoderLayer(
            d_model=d, nhead=num_head, dim_feedforward=dim_feedforward,
            dropout=dropout, activation="relu", batch_first=True, norm_first=False)
        self.transformer_encoder = nn.TransformerEncoder(
            self.transformer_encoder_block, num_layers=num_layers,
            enable_nested_tensor=False)
        self.layer_normalization = nn.LayerNorm(d)

    def forward(self, x, token):
        tokens = token.unsqueeze(0).expand(x.size(0), -1, -1)   # (B, token_size, d)
        if self.fusion == "addition":
            h0 = x + tokens
        elif self.fusion == "multiplication":
            h0 = x * tokens
        elif self.fusion == "concatenation":
            h0 = torch.cat((tokens, x), dim=1)
        else:
            h0 = x + self.scaled_dot_product(x, tokens)
        z = self.layer_normalization(h0)
        t = self.transformer_encoder(z)
        r = t + h0
        if self.fusion == "concatenation":
            r = r[:, self.token_size:, :]
        return r


def pool_original(r):
    """Mean over every position (padding and CLS included), as the original."""
    return torch.mean(r, dim=1)


def clip_loss(a, b, temperature):
    """Symmetric InfoNCE with the original's detached clamp of the temperature."""
    t = torch.clamp(temperature.data, min=2.5, max=3.0)
    logits = (a @ b.T) * torch.exp(t)
    labels = torch.arange(logits.size(0))
    loss_a = F.cross_entropy(logits, labels, reduction="mean")
    loss_b = F.cross_entropy(logits.t(), labels, reduction="mean")
    return (loss_a + loss_b) / 2.0


class Step1Model(nn.Module):
    """Image-text alignment (heads + tokens + MLP + UP trained)."""

    def __init__(self, d=256, input_dims=(768, 768), num_head=4, num_layers=1,
                 dim_feedforward=2048, dropout=0.1, fusion="addition", token_size=1):
        super().__init__()
        # child order as in the original __init__ arguments
        self.image_encoder = FeatureEncoder("projection_head", input_dims[0], d, dropout)
        self.text_encoder = FeatureEncoder("projection_head", input_dims[1], d, dropout)
        self.universal_projection_encoder = UniversalProjectionEncoder(
            d, num_head, num_layers, dim_feedforward, dropout, fusion, token_size)
        self.modality_token_encoder = ModalityTokenEncoder(d, ("text", "image"), token_size)
        self.temperature = nn.Parameter(torch.tensor(0.07))

    def encode(self, name, features):
        """L2-normalised (B, d) embedding of one modality's features."""
        enc = self.image_encoder if name == "image" else self.text_encoder
        x = enc(features)
        m = self.modality_token_encoder(name)
        r = self.universal_projection_encoder(x, m)
        return F.normalize(pool_original(r), p=2, dim=-1)

    def forward(self, image_features, text_features):
        e_img = self.encode("image", image_features)
        e_txt = self.encode("text", text_features)
        return clip_loss(e_img, e_txt, self.temperature), e_img, e_txt


class Step2Model(nn.Module):
    """A new modality aligned against an already aligned one (step-1 model
    frozen, gradients flowing through its UP into the new AL and token)."""

    def __init__(self, step1, name="audio", input_dim=768, d=256, dropout=0.1, token_size=1):
        super().__init__()
        self.name = name
        self.modality_token_encoder = ModalityTokenEncoder(d, (name,), token_size)
        self.text_image_encoder = step1
        self.add_module(name + "_encoder", FeatureEncoder("alignment_layer", input_dim, d, dropout))
        self.temperature = nn.Parameter(torch.tensor(0.07))
        for p in self.text_image_encoder.parameters():
            p.requires_grad = False

    def encode_new(self, features):
        x = getattr(self, self.name + "_encoder")(features)
        m = self.modality_token_encoder(self.name)
        r = self.text_image_encoder.universal_projection_encoder(x, m)
        return F.normalize(pool_original(r), p=2, dim=-1)

    def encode_anchor(self, anchor, features):
        # the original computes the anchor side under torch.no_grad()
        with torch.no_grad():
            return self.text_image_encoder.encode(anchor, features)

    def forward(self, anchor, anchor_features, new_features):
        e_anchor = self.encode_anchor(anchor, anchor_features)
        e_new = self.encode_new(new_features)
        # text_audio.py: logits = text @ audio.T (the loss is symmetric anyway)
        return clip_loss(e_anchor, e_new, self.temperature), e_anchor, e_new


def set_dropout(model, p):
    """Set every dropout probability (nn.Dropout modules and the attention
    dropout of nn.MultiheadAttention). p = 0 disables dropout while the model
    stays in train mode (so PyTorch's inference fast path is never taken)."""
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = p
        if isinstance(mod, nn.MultiheadAttention):
            mod.dropout = p


def make_adamw(model, lr=1e-3, weight_decay=1e-3):
    """AdamW over every parameter with requires_grad, as the original's
    basic_train branch; parameters whose .grad stays None (the unused
    transformer_encoder_block, the temperature) are skipped by AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=weight_decay)


def count_params(model, names_with_grad=None):
    """(total, requires_grad, receiving a gradient) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    req = sum(p.numel() for p in model.parameters() if p.requires_grad)
    got = None
    if names_with_grad is not None:
        sd = dict(model.named_parameters())
        got = sum(sd[n].numel() for n in names_with_grad)
    return total, req, got


def trainable_names(model):
    """Names of the parameters that receive a gradient (call after backward)."""
    return [n for n, p in model.named_parameters() if p.grad is not None]


if __name__ == "__main__":
    # Parameter counts at the original's size: 768-d inputs, d = 256.
    torch.manual_seed(0)
    m1 = Step1Model(d=256, input_dims=(768, 768))
    loss, _, _ = m1(torch.randn(2, 5, 768), torch.randn(2, 4, 768))
    loss.backward()
    n1 = trainable_names(m1)
    print("step1 total/requires_grad/with_grad:", count_params(m1, n1))
    m2 = Step2Model(m1, "audio", 768, 256)
    m1.zero_grad(set_to_none=True)
    loss, _, _ = m2("text", torch.randn(2, 4, 768), torch.randn(2, 6, 768))
    loss.backward()
    n2 = trainable_names(m2)
    print("step2 total/requires_grad/with_grad:", count_params(m2, n2))
    assert math.isclose(count_params(m1, n1)[2], 1884038)
    assert count_params(m2, n2)[2] == 305283
