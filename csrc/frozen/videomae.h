/* videomae.h: VideoMAE video encoder (Hugging Face VideoMAEModel layout), inference only,
 * weights taken from a mapped safetensors file (runtime.h).
 *
 * Keys (under the caller's prefix: "", "videomae.", "video_encoder.pretrained_encoder."):
 *   embeddings.patch_embeddings.projection.{weight (D, C, t, P, P), bias (D)}   Conv3d
 *   encoder.layer.i.{layernorm_before, attention.attention.{query,key,value}.weight (no bias),
 *     attention.attention.{q_bias, v_bias} (qkv_bias: the key has no bias), attention.output.dense,
 *     layernorm_after, intermediate.dense, output.dense}.*
 *   layernorm.{weight, bias}   present when use_mean_pooling is false (the final LayerNorm)
 * The position table is not a weight: the fixed sinusoid table of HF's
 * get_sinusoid_encoding_table(tokens, D) is computed at load (a file's
 * embeddings.position_embeddings, if any, is ignored).
 * config.json (optional): model_type "videomae", hidden_size, num_hidden_layers,
 * num_attention_heads, intermediate_size, image_size, patch_size, num_channels, num_frames,
 * tubelet_size, hidden_act ("gelu", erf), layer_norm_eps, qkv_bias, use_mean_pooling; every
 * value given is checked against the weights. Without it: heads 12, eps 1e-12, 16 frames,
 * 224 pixels, use_mean_pooling = no final LayerNorm in the file (videomae-base's values).
 *
 * forward: x (B, T, C, S, S) normalised pixels (HF pixel_values order) with T = num_frames and
 * S = image_size -> out (B, tokens, D), tokens = (T / t) (S / P)^2 (1568 for 16 x 224 x 224,
 * t = 2, P = 16): last_hidden_state, after the final LayerNorm when use_mean_pooling is false,
 * the raw encoder output otherwise. pooled (B, D), only when fc_norm weights were given
 * (VideoMAEForVideoClassification's fc_norm): fc_norm(mean over the tokens). */
#ifndef OE_FROZEN_VIDEOMAE_H
#define OE_FROZEN_VIDEOMAE_H
#include "runtime.h"

typedef struct oe_videomae_opts {
  const char *prefix;          /* "" when NULL */
  const char *config_path;     /* HF config.json or NULL */
  int64_t heads;               /* 0: config or 12 */
  int64_t frames;              /* 0: config or 16 */
  int64_t image_size;          /* 0: config or 224 */
  double eps;                  /* 0: config or 1e-12 */
  const char *fc_norm_prefix;  /* NULL: no pooled output; else fc_norm.{weight,bias} under it */
  double fc_norm_eps;          /* 0: 1e-5 (nn.LayerNorm's default, as HF builds fc_norm) */
} oe_videomae_opts;

typedef struct oe_videomae_config {
  int64_t dim, depth, heads, mlp, patch, tubelet, channels, frames, image_size, tokens;
  double eps, fc_norm_eps;
  int qkv_bias, mean_pooling, has_fc_norm;
} oe_videomae_config;

typedef struct oe_videomae oe_videomae;

/* Build a model from f (which must outlive it). OE_EINVAL/OE_EIO with a message naming
 * the file and key for bad or missing weights or config. */
int oe_videomae_load(oe_videomae **out, oe_fz_file *f, const oe_videomae_opts *o, oe_err *e);
void oe_videomae_free(oe_videomae *m);
const oe_videomae_config *oe_videomae_get_config(const oe_videomae *m);
/* OE_OK when x (B, T, C, Hh, W) fits the model, else OE_EINVAL naming the mismatch */
int oe_videomae_check_input(const oe_videomae *m, int64_t B, int64_t T, int64_t C, int64_t Hh, int64_t W, oe_err *e);
/* x (B, T, C, S, S) -> out (B, tokens, D), pooled (B, D) or NULL (needs fc_norm).
 * The batch runs in chunks of at most as many videos as threads: the scratch does not
 * grow with B. */
int oe_videomae_forward(oe_videomae *m, const float *x, int64_t B, int64_t T, int64_t C, int64_t Hh, int64_t W,
                        float *out, float *pooled, oe_err *e);
/* the position table (tokens, D) the model adds (for tests) */
const float *oe_videomae_positions(const oe_videomae *m);
#endif
