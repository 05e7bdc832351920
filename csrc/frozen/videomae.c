/* videomae.c: VideoMAE inference (Hugging Face VideoMAEModel layout); see videomae.h.
 *
 * One forward, per chunk of nb videos, N = (T / t) * g * g tokens (g = S / P):
 *   cols (nb*N, C*t*P*P) = tubelets of x; x_tok (nb*N, D) = cols W^T     one GEMM (the Conv3d)
 *   x_tok += b_conv + pos                                                  one pass
 *   per layer: oe_fz_prenorm_layer_forward (kernels.c, shared with vit.c)
 *   out = LN(x + b_fc2 of the last layer) (use_mean_pooling false), else x + b_fc2
 *   pooled = fc_norm(mean over the tokens of out) when fc_norm was loaded
 * Threads: a chunk of as many videos as threads runs one video per thread with single-threaded
 * products (one barrier per chunk); a smaller remainder splits each product instead. The
 * scratch holds one chunk: h, a (N, D), the larger of qkv + mlp (N, 3D + M) and the tubelet
 * columns (N, C t P P), per video, plus threads x N x N attention rows. */
#include "videomae.h"
#include "kernels.h"
#include "../core/util.h"
#include "../ops/ops.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fail oe_fail
#define MAX_DIM ((int64_t)1 << 16)
#define MAX_DEPTH 512
#define MAX_TOKENS 16384   /* attention rows of N x N floats per thread: 1 GiB at the cap */

struct oe_videomae {
  oe_videomae_config cfg;
  oe_fz_file *file;
  const float *patch_w, *patch_b, *norm_w, *norm_b, *fc_w, *fc_b;
  oe_fz_prenorm_layer *layers;
  float *pos;   /* (tokens, D) sinusoid table */
  oe_fz_arena arena;
};

void oe_videomae_free(oe_videomae *m) {
  if (!m) return;
  free(m->layers);
  free(m->pos);
  oe_fz_arena_free(&m->arena);
  free(m);
}

const oe_videomae_config *oe_videomae_get_config(const oe_videomae *m) { return &m->cfg; }
const float *oe_videomae_positions(const oe_videomae *m) { return m->pos; }

/* ---- config.json ---- */

typedef struct {
  oe_fz_encoder_config enc; /* hidden, layers, heads, inter, eps */
  int64_t image, patch, channels, frames, tubelet;
  int has_qkv_bias, qkv_bias, has_pooling, mean_pooling;
} hf_cfg;

static int read_config(const char *path, hf_cfg *c, oe_err *e) {
  memset(c, 0, sizeof *c);
  oe_fz_config cf;
  int rc = oe_fz_config_read(path, &cf, e);
  if (rc != OE_OK) return rc;
  rc = OE_EIO;
  int r;
  if (oe_fz_config_encoder(&cf, "videomae", MAX_DEPTH, &c->enc, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "image_size", 1, 8192, &c->image, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "patch_size", 1, 1024, &c->patch, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "num_channels", 1, 64, &c->channels, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "num_frames", 1, 4096, &c->frames, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "tubelet_size", 1, 64, &c->tubelet, e) < 0) goto out;
  if ((r = oe_fz_config_bool(&cf, "qkv_bias", &c->qkv_bias, e)) < 0) goto out;
  c->has_qkv_bias = r;
  if ((r = oe_fz_config_bool(&cf, "use_mean_pooling", &c->mean_pooling, e)) < 0) goto out;
  c->has_pooling = r;
  rc = OE_OK;
out:
  oe_fz_config_free(&cf);
  return rc;
}

/* ---- loading ---- */

#define PW "embeddings.patch_embeddings.projection.weight"
#define PB "embeddings.patch_embeddings.projection.bias"
#define LAYER "encoder.layer.%lld."

static const char *const IGNORE[] = { "embeddings.position_embeddings", NULL };

static int key_of(char *key, size_t n, int64_t i, const char *rest, oe_err *e) {
  int k = snprintf(key, n, LAYER "%s", (long long)i, rest);
  if (k < 0 || (size_t)k >= n) return fail(e, OE_EINVAL, "key too long");
  return OE_OK;
}

static int layer_get(oe_fz_take *t, int64_t i, const char *rest, int nd, int64_t a, int64_t b, const float **out, oe_err *e) {
  char key[256];
  int rc = key_of(key, sizeof key, i, rest, e);
  if (rc != OE_OK) return rc;
  int64_t s[2] = { a, b };
  return oe_fz_get(t, key, nd, s, out, e);
}

static int layer_has(const oe_fz_take *t, int64_t i, const char *rest) {
  char key[256];
  oe_err e;
  if (key_of(key, sizeof key, i, rest, &e) != OE_OK) return 0;
  return oe_fz_find(t, key) >= 0;
}

/* HF get_sinusoid_encoding_table(n, D): angle = pos / 10000^(2 (j // 2) / D) in double,
 * sin on even j, cos on odd j, then float32 */
static void sinusoid_table(float *pos, int64_t n, int64_t D) {
  for (int64_t j = 0; j < D; j++) {
    double div = pow(10000.0, (double)(2 * (j / 2)) / (double)D);
    for (int64_t p = 0; p < n; p++) {
      double a = (double)p / div;
      pos[p * D + j] = (float)((j % 2 == 0) ? sin(a) : cos(a));
    }
  }
}

int oe_videomae_load(oe_videomae **out, oe_fz_file *f, const oe_videomae_opts *o, oe_err *e) {
  *out = NULL;
  const char *prefix = o->prefix ? o->prefix : "";
  oe_fz_take t;
  int rc = oe_fz_take_begin(&t, f, prefix, e);
  if (rc != OE_OK) return rc;
  oe_videomae *m = calloc(1, sizeof *m);
  if (!m) { oe_fz_take_end(&t); return fail(e, OE_ENOMEM, "out of memory"); }
  m->file = f;
  oe_videomae_config *c = &m->cfg;
  const char *path = f->st.path;
  char b[96];
  int nd;
  int64_t s[OE_MAX_DIMS];

  /* the Conv3d: D, C, t, P */
  if (!oe_fz_shape(&t, PW, &nd, s)) {
    rc = fail(e, OE_EINVAL, "%s: no VideoMAE under the prefix '%s' (missing tensor '%s%s')", path, prefix, prefix, PW);
    goto fail_;
  }
  if (nd != 5 || s[0] < 1 || s[0] > MAX_DIM || s[1] < 1 || s[1] > 64 || s[2] < 1 || s[2] > 64 || s[3] != s[4] || s[3] < 1 ||
      s[3] > 1024) {
    rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected (D, C, t, P, P)", path, prefix, PW,
              oe_shape_str(nd, s, b, sizeof b));
    goto fail_;
  }
  c->dim = s[0];
  c->channels = s[1];
  c->tubelet = s[2];
  c->patch = s[3];
  const int64_t D = c->dim;
  c->depth = 0;
  while (c->depth < MAX_DEPTH && layer_has(&t, c->depth, "layernorm_before.weight")) c->depth++;
  if (c->depth == 0) {
    rc = fail(e, OE_EINVAL, "%s: no transformer layers (missing '%sencoder.layer.0.layernorm_before.weight')", path, prefix);
    goto fail_;
  }
  {
    char k[256];
    if ((rc = key_of(k, sizeof k, 0, "intermediate.dense.weight", e)) != OE_OK) goto fail_;
    if (!oe_fz_shape(&t, k, &nd, s)) { rc = fail(e, OE_EINVAL, "%s: missing tensor '%s%s'", path, prefix, k); goto fail_; }
    if (nd != 2 || s[0] < 1 || s[0] > MAX_DIM * 8) {
      rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected (intermediate, %lld)", path, prefix, k,
                oe_shape_str(nd, s, b, sizeof b), (long long)D);
      goto fail_;
    }
    c->mlp = s[0];
  }
  int has_norm = oe_fz_find(&t, "layernorm.weight") >= 0;
  int has_qb = layer_has(&t, 0, "attention.attention.q_bias");

  /* config.json, options, defaults */
  hf_cfg hc;
  int have_cfg = 0;
  if (o->config_path) {
    if ((rc = read_config(o->config_path, &hc, e)) != OE_OK) goto fail_;
    have_cfg = 1;
    const char *cp = o->config_path;
    if (hc.enc.hidden && hc.enc.hidden != D) { rc = oe_fz_config_mismatch(e, cp, "hidden_size", hc.enc.hidden, "tubelet projection width", D); goto fail_; }
    if (hc.enc.layers && hc.enc.layers != c->depth) { rc = oe_fz_config_mismatch(e, cp, "num_hidden_layers", hc.enc.layers, "layers found", c->depth); goto fail_; }
    if (hc.enc.inter && hc.enc.inter != c->mlp) { rc = oe_fz_config_mismatch(e, cp, "intermediate_size", hc.enc.inter, "intermediate rows", c->mlp); goto fail_; }
    if (hc.patch && hc.patch != c->patch) { rc = oe_fz_config_mismatch(e, cp, "patch_size", hc.patch, "projection kernel", c->patch); goto fail_; }
    if (hc.tubelet && hc.tubelet != c->tubelet) { rc = oe_fz_config_mismatch(e, cp, "tubelet_size", hc.tubelet, "projection kernel depth", c->tubelet); goto fail_; }
    if (hc.channels && hc.channels != c->channels) { rc = oe_fz_config_mismatch(e, cp, "num_channels", hc.channels, "projection channels", c->channels); goto fail_; }
    if (hc.has_qkv_bias && hc.qkv_bias != has_qb) {
      rc = fail(e, OE_EINVAL, "%s: \"qkv_bias\" = %s but the weights have %s '%sencoder.layer.0.attention.attention.q_bias'", cp,
                hc.qkv_bias ? "true" : "false", has_qb ? "a" : "no", prefix);
      goto fail_;
    }
    if (hc.has_pooling && hc.mean_pooling == has_norm) {
      rc = fail(e, OE_EINVAL, "%s: \"use_mean_pooling\" = %s but the weights have %s final LayerNorm ('%slayernorm.weight')", cp,
                hc.mean_pooling ? "true" : "false", has_norm ? "a" : "no", prefix);
      goto fail_;
    }
    if (hc.enc.heads && o->heads && hc.enc.heads != o->heads) {
      rc = fail(e, OE_EINVAL, "%s: num_attention_heads = %lld but the heads option says %lld", cp, (long long)hc.enc.heads, (long long)o->heads);
      goto fail_;
    }
  }
  c->qkv_bias = has_qb;
  c->mean_pooling = !has_norm;
  c->heads = o->heads ? o->heads : (have_cfg && hc.enc.heads ? hc.enc.heads : 12);
  if (c->heads < 1 || D % c->heads != 0) {
    rc = fail(e, OE_EINVAL, "%s: width %lld is not divisible by %lld heads", path, (long long)D, (long long)c->heads);
    goto fail_;
  }
  c->eps = o->eps > 0 ? o->eps : (have_cfg && hc.enc.has_eps ? hc.enc.eps : 1e-12);
  c->frames = o->frames ? o->frames : (have_cfg && hc.frames ? hc.frames : 16);
  c->image_size = o->image_size ? o->image_size : (have_cfg && hc.image ? hc.image : 224);
  if (c->frames < c->tubelet || c->image_size < c->patch) {
    rc = fail(e, OE_EINVAL, "%s: %lld frames of %lld pixels give no tubelet of %lld x %lld x %lld", path, (long long)c->frames,
              (long long)c->image_size, (long long)c->tubelet, (long long)c->patch, (long long)c->patch);
    goto fail_;
  }
  {
    int64_t g = c->image_size / c->patch;
    int64_t n = (c->frames / c->tubelet) * g * g;
    if (g > 1024 || n > MAX_TOKENS) {
      rc = fail(e, OE_EINVAL, "%s: %lld frames of %lld pixels give %lld tokens (at most %d)", path, (long long)c->frames,
                (long long)c->image_size, (long long)n, MAX_TOKENS);
      goto fail_;
    }
    c->tokens = n;
  }

  /* tensors */
  {
    int64_t s5[5] = { D, c->channels, c->tubelet, c->patch, c->patch };
    if ((rc = oe_fz_get(&t, PW, 5, s5, &m->patch_w, e)) != OE_OK) goto fail_;
    int64_t s1[1] = { D };
    if ((rc = oe_fz_get(&t, PB, 1, s1, &m->patch_b, e)) != OE_OK) goto fail_;
    if (has_norm) {
      if ((rc = oe_fz_get(&t, "layernorm.weight", 1, s1, &m->norm_w, e)) != OE_OK) goto fail_;
      if ((rc = oe_fz_get(&t, "layernorm.bias", 1, s1, &m->norm_b, e)) != OE_OK) goto fail_;
    }
  }
  m->layers = calloc((size_t)c->depth, sizeof *m->layers);
  if (!m->layers) { rc = fail(e, OE_ENOMEM, "out of memory"); goto fail_; }
  for (int64_t i = 0; i < c->depth; i++) {
    oe_fz_prenorm_layer *l = &m->layers[i];
    const int64_t M = c->mlp;
#define G(rest, nd_, a, b_, dst) if ((rc = layer_get(&t, i, rest, nd_, a, b_, dst, e)) != OE_OK) goto fail_
    G("layernorm_before.weight", 1, D, 0, &l->ln1_w); G("layernorm_before.bias", 1, D, 0, &l->ln1_b);
    G("attention.attention.query.weight", 2, D, D, &l->q_w);
    G("attention.attention.key.weight", 2, D, D, &l->k_w);
    G("attention.attention.value.weight", 2, D, D, &l->v_w);
    if (c->qkv_bias) {
      G("attention.attention.q_bias", 1, D, 0, &l->q_b);
      G("attention.attention.v_bias", 1, D, 0, &l->v_b);
    }
    G("attention.output.dense.weight", 2, D, D, &l->proj_w); G("attention.output.dense.bias", 1, D, 0, &l->proj_b);
    G("layernorm_after.weight", 1, D, 0, &l->ln2_w); G("layernorm_after.bias", 1, D, 0, &l->ln2_b);
    G("intermediate.dense.weight", 2, M, D, &l->fc1_w); G("intermediate.dense.bias", 1, M, 0, &l->fc1_b);
    G("output.dense.weight", 2, D, M, &l->fc2_w); G("output.dense.bias", 1, D, 0, &l->fc2_b);
#undef G
  }
  if ((rc = oe_fz_unexpected(&t, IGNORE, e)) != OE_OK) goto fail_;

  /* fc_norm (a classification file's pooling norm), under its own prefix */
  if (o->fc_norm_prefix) {
    if (!c->mean_pooling) {
      rc = fail(e, OE_EINVAL, "%s: fc_norm is used with use_mean_pooling only, and the weights have a final LayerNorm", path);
      goto fail_;
    }
    oe_fz_take t2;
    if ((rc = oe_fz_take_begin(&t2, f, o->fc_norm_prefix, e)) != OE_OK) goto fail_;
    int64_t s1[1] = { D };
    rc = oe_fz_get(&t2, "fc_norm.weight", 1, s1, &m->fc_w, e);
    if (rc == OE_OK) rc = oe_fz_get(&t2, "fc_norm.bias", 1, s1, &m->fc_b, e);
    oe_fz_take_end(&t2);
    if (rc != OE_OK) goto fail_;
    c->has_fc_norm = 1;
    c->fc_norm_eps = o->fc_norm_eps > 0 ? o->fc_norm_eps : 1e-5;
  }

  m->pos = malloc(sizeof(float) * (size_t)(c->tokens * D));
  if (!m->pos) { rc = fail(e, OE_ENOMEM, "out of memory (position table)"); goto fail_; }
  sinusoid_table(m->pos, c->tokens, D);
  oe_fz_take_end(&t);
  *out = m;
  return OE_OK;
fail_:
  oe_fz_take_end(&t);
  oe_videomae_free(m);
  return rc;
}

/* ---- forward ---- */

int oe_videomae_check_input(const oe_videomae *m, int64_t B, int64_t T, int64_t C, int64_t Hh, int64_t W, oe_err *e) {
  const oe_videomae_config *c = &m->cfg;
  if (B < 1) return fail(e, OE_EINVAL, "empty batch");
  if (T != c->frames)
    return fail(e, OE_EINVAL, "videos of %lld frames, the model takes %lld (num_frames)", (long long)T, (long long)c->frames);
  if (C != c->channels)
    return fail(e, OE_EINVAL, "frames of %lld channels, the weights expect %lld", (long long)C, (long long)c->channels);
  if (Hh != c->image_size || W != c->image_size)
    return fail(e, OE_EINVAL, "frames of %lldx%lld, the model takes %lldx%lld (image_size)", (long long)Hh, (long long)W,
                (long long)c->image_size, (long long)c->image_size);
  return OE_OK;
}

/* tubelets of x (nb, T, C, S, S) -> cols (nb * N, C * t * P * P), token order (frame group,
 * row, column), each flattened in the Conv3d weight's (C, t, P, P) order */
static void tubelet_cols(const float *x, int64_t nb, int64_t T, int64_t C, int64_t S, int64_t t, int64_t P, float *cols) {
  const int64_t g = S / P, Tt = T / t, K = C * t * P * P;
#pragma omp parallel for schedule(static) if (nb * Tt * g > 1 && !omp_in_parallel())
  for (int64_t job = 0; job < nb * Tt * g; job++) {
    int64_t b = job / (Tt * g), tt = (job / g) % Tt, r = job % g;
    for (int64_t cc = 0; cc < g; cc++) {
      float *dst = cols + (((b * Tt + tt) * g + r) * g + cc) * K;
      for (int64_t ch = 0; ch < C; ch++)
        for (int64_t dt = 0; dt < t; dt++) {
          const float *src = x + (((b * T + tt * t + dt) * C + ch) * S + r * P) * S + cc * P;
          float *d = dst + (ch * t + dt) * P * P;
          for (int64_t i = 0; i < P; i++) memcpy(d + i * P, src + i * S, (size_t)P * sizeof(float));
        }
    }
  }
}

/* the whole network on nb videos: x (nb, T, C, S, S) -> out (nb, N, D), pooled (nb, D) or NULL */
static void videomae_rows(const oe_videomae *m, const float *x, int64_t nb, float *out, float *pooled, float *scr, float *att,
                          int att_threads) {
  const oe_videomae_config *c = &m->cfg;
  const int64_t D = c->dim, M = c->mlp, H = c->heads, N = c->tokens, rows = nb * N;
  const int64_t K = c->channels * c->tubelet * c->patch * c->patch;
  float *h = scr, *a = h + rows * D, *big = a + rows * D;
  float *qkv = big, *mm = big + rows * 3 * D, *cols = big;

  tubelet_cols(x, nb, c->frames, c->channels, c->image_size, c->tubelet, c->patch, cols);
  oe_gemm(0, 1, rows, D, K, 1.0f, cols, K, m->patch_w, K, 0.0f, out, D);
#pragma omp parallel for schedule(static) if (rows * D > 32768 && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    float *dst = out + r * D;
    const float *pp = m->pos + (r % N) * D;
    for (int64_t j = 0; j < D; j++) dst[j] += m->patch_b[j] + pp[j];
  }

  const float eps = (float)c->eps;
  const float *pending = NULL;
  for (int64_t i = 0; i < c->depth; i++)
    oe_fz_prenorm_layer_forward(&m->layers[i], out, &pending, nb, N, D, H, M, eps, h, qkv, a, mm, att, att_threads);
  if (m->norm_w) oe_fz_add_layernorm(out, pending, m->norm_w, m->norm_b, out, rows, D, eps);
  else if (pending) oe_fz_add_bias(out, pending, rows, D, D);

  if (pooled && m->fc_w) {
    /* mean over the tokens in double, then fc_norm */
    for (int64_t bi = 0; bi < nb; bi++) {
      float *pd = pooled + bi * D;
      for (int64_t j = 0; j < D; j++) {
        double sum = 0;
        for (int64_t n = 0; n < N; n++) sum += out[(bi * N + n) * D + j];
        pd[j] = (float)(sum / (double)N);
      }
    }
    oe_fz_add_layernorm(pooled, NULL, m->fc_w, m->fc_b, pooled, nb, D, (float)c->fc_norm_eps);
  }
}

int oe_videomae_forward(oe_videomae *m, const float *x, int64_t B, int64_t T, int64_t C, int64_t Hh, int64_t W,
                        float *out, float *pooled, oe_err *e) {
  const oe_videomae_config *c = &m->cfg;
  int rc = oe_videomae_check_input(m, B, T, C, Hh, W, e);
  if (rc != OE_OK) return rc;
  if (pooled && !c->has_fc_norm) return fail(e, OE_EINVAL, "no pooled output: fc_norm weights were not loaded");
  if ((rc = oe_fz_check(m->file, e)) != OE_OK) return rc;
  const int64_t D = c->dim, M = c->mlp, N = c->tokens, K = c->channels * c->tubelet * c->patch * c->patch;
  int nt = omp_get_max_threads();
  if (nt < 1) nt = 1;
  const int64_t lim = (int64_t)1 << 40;
  int64_t s_big1, s_big2, s_att, s_scr;
  if (!oe_fz_mul_ok(N, 3 * D + M, lim, &s_big1) || !oe_fz_mul_ok(N, K, lim, &s_big2) ||
      !oe_fz_mul_ok(nt, oe_fz_attention_scratch(N), lim, &s_att))
    return fail(e, OE_ENOMEM, "videos of %lld tokens are too large", (long long)N);
  const int64_t per_video = 2 * N * D + (s_big1 > s_big2 ? s_big1 : s_big2);
  const int64_t chunk = B < nt ? B : nt;
  if (!oe_fz_mul_ok(chunk, per_video, lim, &s_scr)) return fail(e, OE_ENOMEM, "scratch too large");
  if ((rc = oe_fz_arena_reserve(&m->arena, oe_fz_round((size_t)s_scr) + (size_t)s_att, e)) != OE_OK) return rc;
  float *scr = m->arena.buf, *att = scr + oe_fz_round((size_t)s_scr);
  const int64_t v_in = T * C * Hh * W, v_out = N * D;

  int64_t b0 = 0;
  /* whole chunks of nt videos: one video per thread */
  if (nt > 1) {
    for (; b0 + nt <= B; b0 += nt) {
#pragma omp parallel num_threads(nt)
      {
        int th = omp_get_thread_num();
        int64_t bi = b0 + th;
        videomae_rows(m, x + bi * v_in, 1, out + bi * v_out, pooled ? pooled + bi * D : NULL, scr + th * per_video,
                      att + (int64_t)th * oe_fz_attention_scratch(N), 1);
      }
    }
  }
  /* the rest (fewer videos than threads, or one thread): every product split over the threads */
  for (; b0 < B; b0 += chunk) {
    int64_t nb = B - b0 < chunk ? B - b0 : chunk;
    videomae_rows(m, x + b0 * v_in, nb, out + b0 * v_out, pooled ? pooled + b0 * D : NULL, scr, att, nt);
  }
  return OE_OK;
}
