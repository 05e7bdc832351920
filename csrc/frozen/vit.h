/* vit.h: Vision Transformer (pre-norm, class token, learned absolute positions),
 * inference only, weights taken from a mapped safetensors file (runtime.h).
 *
 * Layouts:
 *   timm:  cls_token (1,1,D), pos_embed (1,1+N,D), patch_embed.proj.{weight (D,C,P,P), bias},
 *          blocks.i.{norm1, attn.qkv (3D,D), attn.proj, norm2, mlp.fc1, mlp.fc2}.{weight,bias},
 *          norm.{weight,bias}; head.* ignored. Heads from the options (default 12),
 *          LayerNorm eps from the options (default 1e-6, timm's).
 *   hf:    embeddings.{cls_token, position_embeddings, patch_embeddings.projection.*},
 *          encoder.layer.i.{layernorm_before, attention.attention.{query,key,value},
 *          attention.output.dense, layernorm_after, intermediate.dense, output.dense}.*,
 *          layernorm.*; pooler.*, embeddings.mask_token ignored. config.json (when
 *          given) sets heads and eps (HF default 1e-12) and is checked against the shapes.
 * The key prefix is chosen by the caller ("" , "vit.", "image_encoder.pretrained_vit.").
 *
 * forward: x (B, C, Hh, W) normalised pixels -> out (B, 1 + (Hh/P)(W/P), D), the
 * sequence after the final LayerNorm (timm forward_features, HF last_hidden_state).
 * Another input size than the checkpoint's grid needs interpolate_pos: the position
 * table (without its class row) is resampled as timm's resample_abs_pos_embed does
 * (bicubic with antialias, i.e. Pillow's bicubic filter on each of the D channels). */
#ifndef OE_FROZEN_VIT_H
#define OE_FROZEN_VIT_H
#include "runtime.h"

enum { OE_VIT_AUTO = -1, OE_VIT_TIMM = 0, OE_VIT_HF = 1 };

typedef struct oe_vit_opts {
  const char *prefix;      /* "" when NULL */
  int layout;              /* OE_VIT_AUTO | OE_VIT_TIMM | OE_VIT_HF */
  const char *config_path; /* HF config.json or NULL */
  int64_t heads;           /* 0: config or 12 */
  double eps;              /* 0: config or the layout's default */
  int interpolate_pos;     /* accept other input sizes */
} oe_vit_opts;

typedef struct oe_vit_config {
  int layout;
  int64_t dim, depth, heads, mlp, patch, channels, grid_h, grid_w;
  double eps;
} oe_vit_config;

typedef struct oe_vit oe_vit;

/* Build a model from f (which must outlive it). OE_EINVAL/OE_EIO with a message
 * naming the file and key for bad or missing weights or config. */
int oe_vit_load(oe_vit **out, oe_fz_file *f, const oe_vit_opts *o, oe_err *e);
void oe_vit_free(oe_vit *m);
const oe_vit_config *oe_vit_get_config(const oe_vit *m);
/* sequence length for an Hh x W input, or -1 with e set (size not allowed) */
int64_t oe_vit_seq_len(const oe_vit *m, int64_t Hh, int64_t W, oe_err *e);
/* x (B, C, Hh, W) -> out (B, seq_len, D); scratch reused across calls */
int oe_vit_forward(oe_vit *m, const float *x, int64_t B, int64_t C, int64_t Hh, int64_t W, float *out, oe_err *e);
#endif
