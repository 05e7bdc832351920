/* wav2vec2.h: Wav2Vec2 (Hugging Face Wav2Vec2Model layout) inference, weights taken from a
 * mapped safetensors file (runtime.h), and the Wav2Vec2FeatureExtractor's normalisation.
 *
 * Keys under the caller's prefix ("", "wav2vec2.", "audio_encoder.pretrained_encoder."):
 *   feature_extractor.conv_layers.i.conv.{weight (C_i, C_{i-1}, k_i), bias (conv_bias)}
 *   feature_extractor.conv_layers.0.layer_norm.{weight,bias}         "group": GroupNorm(C, C)
 *   feature_extractor.conv_layers.i.layer_norm.{weight,bias} (every i) "layer": LayerNorm(C_i)
 *   feature_projection.{layer_norm (C), projection (D, C)}.{weight,bias}
 *   encoder.pos_conv_embed.conv.{weight_g (1,1,K), weight_v (D, D/G, K)} or
 *     encoder.pos_conv_embed.conv.parametrizations.weight.{original0, original1}, and .bias (D)
 *   encoder.layer_norm.*, encoder.layers.j.{attention.{q,k,v,out}_proj, layer_norm,
 *     feed_forward.{intermediate_dense, output_dense}, final_layer_norm}.{weight,bias}
 *   masked_spec_embed (D): taken, unused (inference never masks)
 * config.json (optional): conv_dim / conv_kernel / conv_stride lists, conv_bias,
 * feat_extract_norm, do_stable_layer_norm, hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_conv_pos_embeddings, num_conv_pos_embedding_groups, layer_norm_eps,
 * hidden_act / feat_extract_activation ("gelu"), all checked against the shapes. Without it:
 * the shapes give every size; strides are wav2vec2-base's (5,2,2,2,2,2,2) when the kernels are
 * its (10,3,3,3,3,2,2), else the config is required; heads D/64; eps 1e-5; pre-norm
 * (do_stable_layer_norm) exactly when feat_extract_norm is "layer" (as in every released
 * checkpoint: base = group + post-norm, large-lv60 = layer + pre-norm).
 *
 * forward: x (B, N) samples (already normalised) -> out (B, T', D) last_hidden_state,
 * T' from the convolution arithmetic (499 for N = 160000). lengths (B) real samples per row or
 * NULL: with lengths, as Hugging Face with an attention_mask (and torchaudio with lengths):
 * frames past each row's own T' are zeroed after the feature projection and never attended
 * to; their outputs are computed but meaningless. */
#ifndef OE_FROZEN_WAV2VEC2_H
#define OE_FROZEN_WAV2VEC2_H
#include "runtime.h"

#define OE_W2V_MAX_CONV 16

typedef struct oe_w2v_opts {
  const char *prefix;      /* "" when NULL */
  const char *config_path; /* config.json or NULL */
  int64_t heads;           /* 0: config or D / 64 */
  int stable;              /* -1: config or the rule above; 0 post-norm; 1 pre-norm */
} oe_w2v_opts;

typedef struct oe_w2v_config {
  int n_conv;
  int64_t conv_dim[OE_W2V_MAX_CONV], conv_kernel[OE_W2V_MAX_CONV], conv_stride[OE_W2V_MAX_CONV];
  int conv_bias;
  int layer_norm_features;  /* 0 "group", 1 "layer" */
  int stable;               /* do_stable_layer_norm */
  int64_t dim, layers, heads, inter, pos_kernel, pos_groups;
  int64_t receptive;        /* fewest samples giving one frame */
  double eps;
} oe_w2v_config;

typedef struct oe_w2v oe_w2v;

int oe_w2v_load(oe_w2v **out, oe_fz_file *f, const oe_w2v_opts *o, oe_err *e);
void oe_w2v_free(oe_w2v *m);
const oe_w2v_config *oe_w2v_get_config(const oe_w2v *m);
/* frames for n samples; 0 when n is shorter than the receptive field */
int64_t oe_w2v_frames(const oe_w2v_config *c, int64_t n);
/* x (B, N) -> out (B, T', D); lengths NULL or (B) in 1..N */
int oe_w2v_forward(oe_w2v *m, const float *x, int64_t B, int64_t N, const int64_t *lengths, float *out, oe_err *e);
/* clips of different lengths, each alone (no padding, no mask): x[b] (len[b]) -> out[b]
 * (frames(len[b]), D). With at least as many clips as threads, each thread runs whole clips
 * (longest first); otherwise every thread works on one clip at a time. */
int oe_w2v_forward_each(oe_w2v *m, const float *const *x, const int64_t *len, int64_t B, float *const *out, oe_err *e);

/* Wav2Vec2FeatureExtractor on clips already at 16 kHz mono: clip b (len[b] samples) is
 * truncated to max_len (0: none), zero-padded to N = the longest (after truncation), and,
 * when normalize, brought to zero mean and unit variance with eps 1e-7: over the padded row
 * (pads included) when masked is 0 (the extractor without an attention mask), over its real
 * samples only when masked is 1 (pads then stay 0). Statistics in double.
 * out (B, N); kept[b] = real samples after truncation. */
int64_t oe_w2v_padded_len(const int64_t *len, int64_t B, int64_t max_len);
void oe_w2v_prepare(const float *const *clips, const int64_t *len, int64_t B, int64_t max_len, int normalize, int masked,
                    float *out, int64_t N, int64_t *kept);
#endif
