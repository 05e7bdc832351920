/* vit.c: Vision Transformer inference (timm and Hugging Face layouts); see vit.h.
 *
 * One forward, per batch of B images, L = 1 + N positions (N = grid_h * grid_w):
 *   cols (B*N, C*P*P) = im2col(x); tok (B*N, D) = cols W_patch^T       one GEMM
 *   x[b, 0] = cls + pos[0]; x[b, 1 + i] = tok + b_patch + pos[1 + i]    x lives in out
 *   per block:  h = LN1(x)                          (+ the pending fc2 bias of the block before)
 *               qkv (B*L, 3D) = h W_qkv^T + b_qkv   one GEMM (timm) or three into the same rows (hf)
 *               a = attention(qkv)                  per (batch, head), OpenMP
 *               x += a W_proj^T                     GEMM with beta = 1: the residual add is free
 *               h = LN2(x + b_proj)                 the bias joins the norm's pass
 *               m = gelu(h W_fc1^T + b_fc1)         bias and GELU in one pass
 *               x += m W_fc2^T                      beta = 1 again; b_fc2 joins the next norm
 *   out = LN(x + b_fc2 of the last block), in place.
 * Scratch (reused): h (B*L, D), qkv (B*L, 3D), a (B*L, D), m (B*L, mlp), attention
 * rows (threads x L x L); the patch columns and tokens borrow the qkv/m space.
 * Threads: a batch of at least as many images as threads is cut into one share per thread
 * and each thread runs all of the above on its share with single-threaded products (one
 * barrier per forward; about 13 per block otherwise, where waiting threads spin); a smaller
 * batch splits each product (oe_gemm) and the attention's (image, head) pairs instead. */
#include "vit.h"
#include "kernels.h"
#include "../core/util.h"
#include "../io/image.h"
#include "../ops/ops.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fail oe_fail
#define MAX_DIM ((int64_t)1 << 16)
#define MAX_DEPTH 512

/* timm: qkv_w (3D, D), qkv_b (3D); hf: q_w, k_w, v_w (D, D) each with their biases */
typedef oe_fz_prenorm_layer vit_block;

struct oe_vit {
  oe_vit_config cfg;
  oe_fz_file *file;
  const float *patch_w, *patch_b, *cls, *pos, *norm_w, *norm_b;
  vit_block *blocks;
  int interpolate_pos;
  float *pos_grid;          /* resampled patch positions (gh * gw, D) for pos_gh x pos_gw */
  int64_t pos_gh, pos_gw;
  oe_fz_arena arena;
};

void oe_vit_free(oe_vit *m) {
  if (!m) return;
  free(m->blocks);
  free(m->pos_grid);
  oe_fz_arena_free(&m->arena);
  free(m);
}

const oe_vit_config *oe_vit_get_config(const oe_vit *m) { return &m->cfg; }

/* ---- loading ---- */

typedef struct {
  const char *cls, *pos, *pw, *pb, *norm_w, *norm_b;
  const char *blk;  /* "blocks.%lld." */
} vit_names;

static const vit_names TIMM = { "cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                "norm.weight", "norm.bias", "blocks.%lld." };
static const vit_names HF = { "embeddings.cls_token", "embeddings.position_embeddings",
                              "embeddings.patch_embeddings.projection.weight", "embeddings.patch_embeddings.projection.bias",
                              "layernorm.weight", "layernorm.bias", "encoder.layer.%lld." };

static const char *const TIMM_IGNORE[] = { "head.*", NULL };
static const char *const HF_IGNORE[] = { "pooler.*", "embeddings.mask_token", "classifier.*", NULL };

static int get(oe_fz_take *t, const char *key, int nd, int64_t a, int64_t b, const float **out, oe_err *e) {
  int64_t s[2] = { a, b };
  return oe_fz_get(t, key, nd, s, out, e);
}

static int blk_get(oe_fz_take *t, const char *fmt, int64_t i, const char *rest, int nd, int64_t a, int64_t b,
                   const float **out, oe_err *e) {
  char key[256];
  int n = snprintf(key, sizeof key, fmt, (long long)i);
  if (n < 0 || (size_t)n >= sizeof key) return fail(e, OE_EINVAL, "key too long");
  snprintf(key + n, sizeof key - (size_t)n, "%s", rest);
  return get(t, key, nd, a, b, out, e);
}

static int blk_exists(const oe_fz_take *t, const char *fmt, int64_t i, const char *rest) {
  char key[256];
  int n = snprintf(key, sizeof key, fmt, (long long)i);
  if (n < 0 || (size_t)n >= sizeof key) return 0;
  snprintf(key + n, sizeof key - (size_t)n, "%s", rest);
  return oe_fz_find(t, key) >= 0;
}

/* the HF config.json values that matter here, checked against the weights later */
typedef struct {
  oe_fz_encoder_config enc; /* hidden, layers, heads, inter, eps */
  int64_t image, patch, channels;
  int qkv_bias;
} hf_cfg;

static int read_hf_config(const char *path, hf_cfg *c, oe_err *e) {
  memset(c, 0, sizeof *c);
  c->qkv_bias = 1;
  oe_fz_config cf;
  int rc = oe_fz_config_read(path, &cf, e);
  if (rc != OE_OK) return rc;
  rc = OE_EIO;
  if (oe_fz_config_encoder(&cf, "vit", MAX_DEPTH, &c->enc, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "image_size", 1, MAX_DIM, &c->image, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "patch_size", 1, MAX_DIM, &c->patch, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "num_channels", 1, 64, &c->channels, e) < 0) goto out;
  if (oe_fz_config_bool(&cf, "qkv_bias", &c->qkv_bias, e) < 0) goto out;
  rc = OE_OK;
out:
  oe_fz_config_free(&cf);
  return rc;
}

static int64_t isqrt(int64_t n) {
  int64_t r = (int64_t)sqrt((double)n);
  while (r * r > n) r--;
  while ((r + 1) * (r + 1) <= n) r++;
  return r;
}

int oe_vit_load(oe_vit **out, oe_fz_file *f, const oe_vit_opts *o, oe_err *e) {
  *out = NULL;
  const char *prefix = o->prefix ? o->prefix : "";
  oe_fz_take t;
  int rc = oe_fz_take_begin(&t, f, prefix, e);
  if (rc != OE_OK) return rc;
  oe_vit *m = calloc(1, sizeof *m);
  if (!m) { oe_fz_take_end(&t); return fail(e, OE_ENOMEM, "out of memory"); }
  m->file = f;
  m->interpolate_pos = o->interpolate_pos;
  oe_vit_config *c = &m->cfg;
  const char *path = f->st.path;

  /* layout */
  int layout = o->layout;
  if (layout == OE_VIT_AUTO) {
    if (oe_fz_find(&t, TIMM.cls) >= 0) layout = OE_VIT_TIMM;
    else if (oe_fz_find(&t, HF.cls) >= 0) layout = OE_VIT_HF;
    else {
      rc = fail(e, OE_EINVAL, "%s: no ViT under the prefix '%s' (neither '%s%s' (timm) nor '%s%s' (Hugging Face))", path,
                prefix, prefix, TIMM.cls, prefix, HF.cls);
      goto fail_;
    }
  }
  const vit_names *N = layout == OE_VIT_TIMM ? &TIMM : &HF;
  c->layout = layout;

  /* dims from the shapes */
  int nd;
  int64_t s[OE_MAX_DIMS];
  if (!oe_fz_shape(&t, N->pw, &nd, s)) { rc = fail(e, OE_EINVAL, "%s: missing tensor '%s%s'", path, prefix, N->pw); goto fail_; }
  if (nd != 4 || s[2] != s[3] || s[0] < 1 || s[0] > MAX_DIM || s[1] < 1 || s[1] > 64 || s[2] < 1 || s[2] > 1024) {
    char b[96];
    rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected (D, C, P, P)", path, prefix, N->pw,
              oe_shape_str(nd, s, b, sizeof b));
    goto fail_;
  }
  c->dim = s[0];
  c->channels = s[1];
  c->patch = s[2];
  const int64_t D = c->dim;
  if (!oe_fz_shape(&t, N->pos, &nd, s)) { rc = fail(e, OE_EINVAL, "%s: missing tensor '%s%s'", path, prefix, N->pos); goto fail_; }
  if (nd != 3 || s[0] != 1 || s[1] < 2 || s[1] > MAX_DIM * 16 || s[2] != D) {
    char b[96];
    rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected (1, 1 + N, %lld)", path, prefix, N->pos,
              oe_shape_str(nd, s, b, sizeof b), (long long)D);
    goto fail_;
  }
  int64_t npos = s[1] - 1;
  c->depth = 0;
  while (c->depth < MAX_DEPTH && blk_exists(&t, N->blk, c->depth, layout == OE_VIT_TIMM ? "norm1.weight" : "layernorm_before.weight"))
    c->depth++;
  if (c->depth == 0) {
    char k[128];
    snprintf(k, sizeof k, N->blk, 0LL);
    rc = fail(e, OE_EINVAL, "%s: no transformer blocks (missing '%s%s%s')", path, prefix, k,
              layout == OE_VIT_TIMM ? "norm1.weight" : "layernorm_before.weight");
    goto fail_;
  }
  if (!blk_exists(&t, N->blk, 0, layout == OE_VIT_TIMM ? "mlp.fc1.weight" : "intermediate.dense.weight")) {
    char k[128];
    snprintf(k, sizeof k, N->blk, 0LL);
    rc = fail(e, OE_EINVAL, "%s: missing tensor '%s%s%s'", path, prefix, k, layout == OE_VIT_TIMM ? "mlp.fc1.weight" : "intermediate.dense.weight");
    goto fail_;
  }
  {
    char k[160];
    int n = snprintf(k, sizeof k, N->blk, 0LL);
    snprintf(k + n, sizeof k - (size_t)n, "%s", layout == OE_VIT_TIMM ? "mlp.fc1.weight" : "intermediate.dense.weight");
    oe_fz_shape(&t, k, &nd, s);
    if (nd != 2 || s[0] < 1 || s[0] > MAX_DIM * 8) {
      char b[96];
      rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected (mlp, %lld)", path, prefix, k, oe_shape_str(nd, s, b, sizeof b),
                (long long)D);
      goto fail_;
    }
    c->mlp = s[0];
  }

  /* heads and eps: options, config.json, defaults */
  hf_cfg hc;
  int have_cfg = 0;
  if (o->config_path) {
    if ((rc = read_hf_config(o->config_path, &hc, e)) != OE_OK) goto fail_;
    have_cfg = 1;
    const char *cp = o->config_path;
    if (hc.enc.hidden && hc.enc.hidden != D) { rc = oe_fz_config_mismatch(e, cp, "hidden_size", hc.enc.hidden, "patch projection width", D); goto fail_; }
    if (hc.enc.layers && hc.enc.layers != c->depth) { rc = oe_fz_config_mismatch(e, cp, "num_hidden_layers", hc.enc.layers, "blocks found", c->depth); goto fail_; }
    if (hc.enc.inter && hc.enc.inter != c->mlp) { rc = oe_fz_config_mismatch(e, cp, "intermediate_size", hc.enc.inter, "fc1 rows", c->mlp); goto fail_; }
    if (hc.patch && hc.patch != c->patch) { rc = oe_fz_config_mismatch(e, cp, "patch_size", hc.patch, "patch kernel", c->patch); goto fail_; }
    if (hc.channels && hc.channels != c->channels) { rc = oe_fz_config_mismatch(e, cp, "num_channels", hc.channels, "patch channels", c->channels); goto fail_; }
    if (hc.image && (hc.image / c->patch) * (hc.image / c->patch) != npos) {
      rc = oe_fz_config_mismatch(e, cp, "image_size", hc.image, "positions without the class token", npos);
      goto fail_;
    }
    if (!hc.qkv_bias) { rc = fail(e, OE_EINVAL, "%s: qkv_bias = false is not supported", cp); goto fail_; }
    if (hc.enc.heads && o->heads && hc.enc.heads != o->heads) {
      rc = fail(e, OE_EINVAL, "%s: num_attention_heads = %lld but the heads option says %lld", cp, (long long)hc.enc.heads, (long long)o->heads);
      goto fail_;
    }
  }
  c->heads = o->heads ? o->heads : (have_cfg && hc.enc.heads ? hc.enc.heads : 12);
  if (c->heads < 1 || D % c->heads != 0) {
    rc = fail(e, OE_EINVAL, "%s: width %lld is not divisible by %lld heads", path, (long long)D, (long long)c->heads);
    goto fail_;
  }
  c->eps = o->eps > 0 ? o->eps : (have_cfg && hc.enc.has_eps ? hc.enc.eps : (layout == OE_VIT_TIMM ? 1e-6 : 1e-12));
  {
    int64_t g = isqrt(npos);
    if (have_cfg && hc.image) g = hc.image / c->patch;
    if (g * g != npos) {
      rc = fail(e, OE_EINVAL, "%s: %lld patch positions do not form a square grid", path, (long long)npos);
      goto fail_;
    }
    c->grid_h = c->grid_w = g;
  }

  /* tensors */
  const int64_t K = c->channels * c->patch * c->patch;
  {
    int64_t s4[4] = { D, c->channels, c->patch, c->patch };
    if ((rc = oe_fz_get(&t, N->pw, 4, s4, &m->patch_w, e)) != OE_OK) goto fail_;
    int64_t s3[3] = { 1, 1, D };
    if ((rc = oe_fz_get(&t, N->cls, 3, s3, &m->cls, e)) != OE_OK) goto fail_;
    int64_t sp[3] = { 1, npos + 1, D };
    if ((rc = oe_fz_get(&t, N->pos, 3, sp, &m->pos, e)) != OE_OK) goto fail_;
  }
  (void)K;
  if ((rc = get(&t, N->pb, 1, D, 0, &m->patch_b, e)) != OE_OK) goto fail_;
  if ((rc = get(&t, N->norm_w, 1, D, 0, &m->norm_w, e)) != OE_OK) goto fail_;
  if ((rc = get(&t, N->norm_b, 1, D, 0, &m->norm_b, e)) != OE_OK) goto fail_;
  m->blocks = calloc((size_t)c->depth, sizeof *m->blocks);
  if (!m->blocks) { rc = fail(e, OE_ENOMEM, "out of memory"); goto fail_; }
  for (int64_t i = 0; i < c->depth; i++) {
    vit_block *bk = &m->blocks[i];
    const char *F = N->blk;
    const int64_t M = c->mlp;
#define G(rest, nd_, a, b, dst) if ((rc = blk_get(&t, F, i, rest, nd_, a, b, dst, e)) != OE_OK) goto fail_
    if (layout == OE_VIT_TIMM) {
      G("norm1.weight", 1, D, 0, &bk->ln1_w); G("norm1.bias", 1, D, 0, &bk->ln1_b);
      G("attn.qkv.weight", 2, 3 * D, D, &bk->qkv_w); G("attn.qkv.bias", 1, 3 * D, 0, &bk->qkv_b);
      G("attn.proj.weight", 2, D, D, &bk->proj_w); G("attn.proj.bias", 1, D, 0, &bk->proj_b);
      G("norm2.weight", 1, D, 0, &bk->ln2_w); G("norm2.bias", 1, D, 0, &bk->ln2_b);
      G("mlp.fc1.weight", 2, M, D, &bk->fc1_w); G("mlp.fc1.bias", 1, M, 0, &bk->fc1_b);
      G("mlp.fc2.weight", 2, D, M, &bk->fc2_w); G("mlp.fc2.bias", 1, D, 0, &bk->fc2_b);
    } else {
      G("layernorm_before.weight", 1, D, 0, &bk->ln1_w); G("layernorm_before.bias", 1, D, 0, &bk->ln1_b);
      G("attention.attention.query.weight", 2, D, D, &bk->q_w); G("attention.attention.query.bias", 1, D, 0, &bk->q_b);
      G("attention.attention.key.weight", 2, D, D, &bk->k_w); G("attention.attention.key.bias", 1, D, 0, &bk->k_b);
      G("attention.attention.value.weight", 2, D, D, &bk->v_w); G("attention.attention.value.bias", 1, D, 0, &bk->v_b);
      G("attention.output.dense.weight", 2, D, D, &bk->proj_w); G("attention.output.dense.bias", 1, D, 0, &bk->proj_b);
      G("layernorm_after.weight", 1, D, 0, &bk->ln2_w); G("layernorm_after.bias", 1, D, 0, &bk->ln2_b);
      G("intermediate.dense.weight", 2, M, D, &bk->fc1_w); G("intermediate.dense.bias", 1, M, 0, &bk->fc1_b);
      G("output.dense.weight", 2, D, M, &bk->fc2_w); G("output.dense.bias", 1, D, 0, &bk->fc2_b);
    }
#undef G
  }
  if ((rc = oe_fz_unexpected(&t, layout == OE_VIT_TIMM ? TIMM_IGNORE : HF_IGNORE, e)) != OE_OK) goto fail_;
  oe_fz_take_end(&t);
  *out = m;
  return OE_OK;
fail_:
  oe_fz_take_end(&t);
  oe_vit_free(m);
  return rc;
}

/* ---- forward ---- */

int64_t oe_vit_seq_len(const oe_vit *m, int64_t Hh, int64_t W, oe_err *e) {
  const oe_vit_config *c = &m->cfg;
  if (Hh < c->patch || W < c->patch || Hh % c->patch || W % c->patch)
    return fail(e, OE_EINVAL, "input %lldx%lld is not a positive multiple of the patch size %lld", (long long)Hh, (long long)W,
                (long long)c->patch), -1;
  int64_t gh = Hh / c->patch, gw = W / c->patch;
  if ((gh != c->grid_h || gw != c->grid_w) && !m->interpolate_pos)
    return fail(e, OE_EINVAL, "input %lldx%lld gives a %lldx%lld patch grid, the weights have %lldx%lld positions "
                "(resize to %lldx%lld, or set interpolate_pos)", (long long)Hh, (long long)W, (long long)gh, (long long)gw,
                (long long)c->grid_h, (long long)c->grid_w, (long long)(c->grid_h * c->patch), (long long)(c->grid_w * c->patch)), -1;
  if (gh > 1024 || gw > 1024) return fail(e, OE_EINVAL, "input %lldx%lld is too large", (long long)Hh, (long long)W), -1;
  return 1 + gh * gw;
}

/* patch positions for a gh x gw grid: the checkpoint's, or resampled (cached) */
static int patch_positions(oe_vit *m, int64_t gh, int64_t gw, const float **out, oe_err *e) {
  const oe_vit_config *c = &m->cfg;
  if (gh == c->grid_h && gw == c->grid_w) { *out = m->pos + c->dim; return OE_OK; }
  if (m->pos_grid && m->pos_gh == gh && m->pos_gw == gw) { *out = m->pos_grid; return OE_OK; }
  free(m->pos_grid);
  m->pos_grid = malloc(sizeof(float) * (size_t)(gh * gw * c->dim));
  if (!m->pos_grid) return fail(e, OE_ENOMEM, "out of memory resampling the position table");
  /* (grid_h, grid_w, D) is an HWC image of D channels */
  int rc = oe_resize_f32(m->pos + c->dim, (int)c->grid_h, (int)c->grid_w, (int)c->dim, m->pos_grid, (int)gh, (int)gw,
                         OE_RESIZE_BICUBIC_PIL, e);
  if (rc != OE_OK) { free(m->pos_grid); m->pos_grid = NULL; return rc; }
  m->pos_gh = gh;
  m->pos_gw = gw;
  *out = m->pos_grid;
  return OE_OK;
}

/* The whole network on nb images (x (nb, C, Hh, W) -> out (nb, L, D)) with the scratch scr
 * (nb * per_image floats, see oe_vit_forward) and att (attention rows for att_threads threads). */
static void vit_rows(const oe_vit *m, const float *x, int64_t nb, int64_t Hh, int64_t W, const float *pos_patch,
                     float *out, float *scr, float *att, int att_threads) {
  const oe_vit_config *c = &m->cfg;
  const int64_t D = c->dim, M = c->mlp, H = c->heads, P = c->patch, C = c->channels, K = C * P * P;
  const int64_t N = (Hh / P) * (W / P), L = 1 + N, rows = nb * L;
  float *h = scr, *a = h + rows * D, *big = a + rows * D;
  float *qkv = big, *mm = big + rows * 3 * D;
  float *cols = big, *tok = big + nb * N * K;

  /* patch embedding: one im2col and one GEMM, then class token, bias and positions */
  oe_fz_im2col(x, nb, C, Hh, W, P, cols);
  oe_gemm(0, 1, nb * N, D, K, 1.0f, cols, K, m->patch_w, K, 0.0f, tok, D);
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    int64_t b = r / L, l = r % L;
    float *dst = out + r * D;
    if (l == 0) {
      for (int64_t j = 0; j < D; j++) dst[j] = m->cls[j] + m->pos[j];
    } else {
      const float *src = tok + (b * N + l - 1) * D, *pp = pos_patch + (l - 1) * D;
      for (int64_t j = 0; j < D; j++) dst[j] = src[j] + m->patch_b[j] + pp[j];
    }
  }

  const float eps = (float)c->eps;
  const float *pending = NULL; /* bias of the last product added into out, not yet applied */
  for (int64_t i = 0; i < c->depth; i++)
    oe_fz_prenorm_layer_forward(&m->blocks[i], out, &pending, nb, L, D, H, M, eps, h, qkv, a, mm, att, att_threads);
  oe_fz_add_layernorm(out, pending, m->norm_w, m->norm_b, out, rows, D, eps);
}

int oe_vit_forward(oe_vit *m, const float *x, int64_t B, int64_t C, int64_t Hh, int64_t W, float *out, oe_err *e) {
  const oe_vit_config *c = &m->cfg;
  const int64_t D = c->dim, M = c->mlp, P = c->patch, K = c->channels * P * P;
  if (C != c->channels) return fail(e, OE_EINVAL, "input has %lld channels, the weights expect %lld", (long long)C, (long long)c->channels);
  int64_t L = oe_vit_seq_len(m, Hh, W, e);
  if (L < 0) return OE_EINVAL;
  if (B < 1) return fail(e, OE_EINVAL, "empty batch");
  int rc = oe_fz_check(m->file, e);
  if (rc != OE_OK) return rc;
  const int64_t N = L - 1, gh = Hh / P, gw = W / P;
  const float *pos_patch;
  if ((rc = patch_positions(m, gh, gw, &pos_patch, e)) != OE_OK) return rc;

  /* scratch per image: h and a (L, D) each, then the larger of qkv + mlp (L, 3D + M) and
   * the patch columns + tokens (N, K + D); sizes checked against overflow first */
  int nt = omp_get_max_threads();
  if (nt < 1) nt = 1;
  const int64_t lim = (int64_t)1 << 40;
  int64_t s_big1, s_big2, per_image, s_scr, s_att;
  if (!oe_fz_mul_ok(L, 3 * D + M, lim, &s_big1) || !oe_fz_mul_ok(N, K + D, lim, &s_big2) ||
      !oe_fz_mul_ok(nt, oe_fz_attention_scratch(L), lim, &s_att))
    return fail(e, OE_ENOMEM, "images of %lldx%lld are too large", (long long)Hh, (long long)W);
  per_image = 2 * L * D + (s_big1 > s_big2 ? s_big1 : s_big2);
  if (!oe_fz_mul_ok(B, per_image, lim, &s_scr))
    return fail(e, OE_ENOMEM, "batch of %lld images of %lldx%lld is too large", (long long)B, (long long)Hh, (long long)W);
  if ((rc = oe_fz_arena_reserve(&m->arena, oe_fz_round((size_t)s_scr) + (size_t)s_att, e)) != OE_OK) return rc;
  float *scr = m->arena.buf, *att = scr + oe_fz_round((size_t)s_scr);

  /* Images are independent until the output: with at least as many images as threads, each
   * thread runs the whole network on its share (single-threaded products, no barrier until the
   * end); a smaller batch splits every product and the attention over the threads instead. */
  const int64_t img_in = C * Hh * W, img_out = L * D;
  if (B >= nt && nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      int t = omp_get_thread_num();
      int64_t b0 = B * t / nt, b1 = B * (t + 1) / nt;
      if (b1 > b0)
        vit_rows(m, x + b0 * img_in, b1 - b0, Hh, W, pos_patch, out + b0 * img_out, scr + b0 * per_image,
                 att + (int64_t)t * oe_fz_attention_scratch(L), 1);
    }
  } else {
    vit_rows(m, x, B, Hh, W, pos_patch, out, scr, att, nt);
  }
  return OE_OK;
}
