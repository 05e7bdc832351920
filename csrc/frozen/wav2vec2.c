/* wav2vec2.c: Wav2Vec2 inference (Hugging Face Wav2Vec2Model layout); see wav2vec2.h.
 *
 * Everything runs channel-last, (frames, channels) rows, so no convolution needs im2col:
 *   conv 0 (1 -> C0, kernel k0, stride s0):  cols (T0, k0) = windows of x; y0 = cols W0^T
 *   conv i (C -> C', kernel k, stride s):    y (T', C') = sum over taps j of X[t s + j] W_j^T,
 *        taps taken s at a time: rows t s .. t s + s - 1 of X are contiguous, so one GEMM reads
 *        the window rows in place with row stride s C (K = taps x C <= s C); W reordered once
 *        at load to (C', k, C)
 *   group norm (layer 0, "group"): per-channel mean and variance over time (double), folded
 *        into one scale and shift per channel; GELU(erf) in the pass that applies the shift
 *   layer norm ("layer", every conv): one LayerNorm per frame row, then GELU
 *   feature projection: LayerNorm(C) per row, x = . W^T + b (x lives in out)
 *   [lengths: rows past each clip's own frame count zeroed]
 *   positional conv (D -> D, kernel K, G groups, pad K/2, last frame dropped when K is even):
 *        per group cols (T, K Cg) from a zero-padded copy, one GEMM with the weight-normalised
 *        kernel (g v / ||v|| over dims 0 and 1, computed at load, reordered to (D, K, Cg));
 *        x += GELU(. + b)
 *   post-norm (do_stable_layer_norm false): x = LN(x); per layer
 *        qkv = x W^T + b (three GEMMs into one row); a = attention; x += a Wo^T;
 *        x = LN1(x + bo); m = GELU(x W1^T + b1); x += m W2^T; x = LN2(x + b2)
 *   pre-norm (true): per layer h = LN1(x); qkv from h; x += a Wo^T;
 *        h = LN2(x + bo); m = GELU(h W1^T + b1); x += m W2^T (b2 joins the next norm);
 *        x = LN(x + b2) at the end
 * Threads: as vit.c, a batch of at least as many clips as threads is cut into one share per
 * thread, each running the whole network with single-threaded products; a smaller batch splits
 * every product. The convolution stack runs one clip at a time (conv 0's output, T0 x C0 floats,
 * is the largest buffer: 65 MB for 10 s of audio), so scratch grows with the threads, not the batch. */
#include "wav2vec2.h"
#include "kernels.h"
#include "../core/cpu.h"
#include "../core/util.h"
#include "../io/json.h"
#include "../ops/ops.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fail oe_fail
#define MAX_DIM ((int64_t)1 << 16)
#define MAX_DEPTH 256
#define PAR_MIN 32768

typedef struct {
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  const float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} w2v_layer;

struct oe_w2v {
  oe_w2v_config cfg;
  oe_fz_file *file;
  const float *conv_w[OE_W2V_MAX_CONV];  /* conv 0: (C0, k0) in place; others: owned (C', k, C) */
  float *conv_owned[OE_W2V_MAX_CONV];
  const float *conv_b[OE_W2V_MAX_CONV], *norm_w[OE_W2V_MAX_CONV], *norm_b[OE_W2V_MAX_CONV];
  const float *fp_ln_w, *fp_ln_b, *fp_w, *fp_b;
  float *pos_w;                          /* owned (D, K, Cg), weight-normalised */
  const float *pos_b, *enc_ln_w, *enc_ln_b;
  w2v_layer *layers;
  float *zeros;                          /* a zero bias row */
  oe_fz_arena arena;
};

void oe_w2v_free(oe_w2v *m) {
  if (!m) return;
  for (int i = 0; i < OE_W2V_MAX_CONV; i++) free(m->conv_owned[i]);
  free(m->pos_w);
  free(m->layers);
  free(m->zeros);
  oe_fz_arena_free(&m->arena);
  free(m);
}

const oe_w2v_config *oe_w2v_get_config(const oe_w2v *m) { return &m->cfg; }

int64_t oe_w2v_frames(const oe_w2v_config *c, int64_t n) {
  for (int i = 0; i < c->n_conv; i++) {
    if (n < c->conv_kernel[i]) return 0;
    n = (n - c->conv_kernel[i]) / c->conv_stride[i] + 1;
  }
  return n;
}

/* ---------------------------------------------------------------- config.json */

typedef struct {
  int n_dim, n_kernel, n_stride;
  int64_t dim[OE_W2V_MAX_CONV], kernel[OE_W2V_MAX_CONV], stride[OE_W2V_MAX_CONV];
  oe_fz_encoder_config enc; /* hidden, layers, heads, inter, eps */
  int64_t pos_k, pos_g, n_feat;
  int conv_bias, has_conv_bias, stable, has_stable, layer_norm_features, has_norm;
} w2v_hf_cfg;

/* the three integer lists of config.json (the scalar reader skips nested values) */
static int read_lists(const char *path, w2v_hf_cfg *c, oe_err *e) {
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = oe_read_regular_file(path, (size_t)1 << 20, &buf, &len, e);
  if (rc != OE_OK) return rc;
  char jerr[160];
  oe_json_reader r;
  oe_json_init(&r, (const char *)buf, len, jerr, sizeof jerr);
  oe_json_iter it;
  rc = OE_OK;
  if (oe_json_enter(&r, &it)) { rc = fail(e, OE_EIO, "%s: not a JSON object: %s", path, jerr); goto out; }
  for (;;) {
    int more = oe_json_next(&r, &it);
    if (more < 0) { rc = fail(e, OE_EIO, "%s: not valid JSON: %s", path, jerr); goto out; }
    if (!more) break;
    oe_json_str k;
    if (oe_json_key(&r, &k)) { rc = fail(e, OE_EIO, "%s: not valid JSON: %s", path, jerr); goto out; }
    int64_t *dst = NULL;
    int *cnt = NULL;
    const char *name = NULL;
    if (oe_json_str_is(&k, "conv_dim")) { dst = c->dim; cnt = &c->n_dim; name = "conv_dim"; }
    else if (oe_json_str_is(&k, "conv_kernel")) { dst = c->kernel; cnt = &c->n_kernel; name = "conv_kernel"; }
    else if (oe_json_str_is(&k, "conv_stride")) { dst = c->stride; cnt = &c->n_stride; name = "conv_stride"; }
    oe_json_type ty;
    if (oe_json_peek(&r, &ty)) { rc = fail(e, OE_EIO, "%s: not valid JSON: %s", path, jerr); goto out; }
    if (!dst || ty == OE_JSON_NULL) {
      if (oe_json_skip(&r)) { rc = fail(e, OE_EIO, "%s: not valid JSON: %s", path, jerr); goto out; }
      continue;
    }
    if (ty != OE_JSON_ARRAY) { rc = fail(e, OE_EIO, "%s: \"%s\" must be a list of integers, got %s", path, name, oe_json_type_name(ty)); goto out; }
    oe_json_iter ai;
    oe_json_enter(&r, &ai);
    *cnt = 0;
    for (;;) {
      int m2 = oe_json_next(&r, &ai);
      if (m2 < 0) { rc = fail(e, OE_EIO, "%s: not valid JSON: %s", path, jerr); goto out; }
      if (!m2) break;
      oe_json_num num;
      if (oe_json_number(&r, &num) || !num.is_int || num.neg || num.overflow || num.mag < 1 || num.mag > (uint64_t)MAX_DIM) {
        rc = fail(e, OE_EIO, "%s: \"%s\" must hold integers in 1..%lld", path, name, (long long)MAX_DIM);
        goto out;
      }
      if (*cnt >= OE_W2V_MAX_CONV) { rc = fail(e, OE_EIO, "%s: \"%s\" has more than %d entries", path, name, OE_W2V_MAX_CONV); goto out; }
      dst[(*cnt)++] = (int64_t)num.mag;
    }
  }
  if (oe_json_finish(&r)) rc = fail(e, OE_EIO, "%s: not valid JSON: %s", path, jerr);
out:
  free(buf);
  return rc;
}

static int read_hf_config(const char *path, w2v_hf_cfg *c, oe_err *e) {
  memset(c, 0, sizeof *c);
  oe_fz_config cf;
  int rc = oe_fz_config_read(path, &cf, e);
  if (rc != OE_OK) return rc;
  rc = OE_EIO;
  const char *s;
  int r;
  if (oe_fz_config_encoder(&cf, "wav2vec2", MAX_DEPTH, &c->enc, e) < 0) goto out;
  if ((r = oe_fz_config_str(&cf, "feat_extract_activation", &s, e)) < 0) goto out;
  if (r && strcmp(s, "gelu") != 0) {
    fail(e, OE_EIO, "%s: feat_extract_activation \"%s\" is not supported (only \"gelu\", the erf form)", path, s);
    goto out;
  }
  if ((r = oe_fz_config_str(&cf, "feat_extract_norm", &s, e)) < 0) goto out;
  if (r) {
    if (!strcmp(s, "group")) c->layer_norm_features = 0;
    else if (!strcmp(s, "layer")) c->layer_norm_features = 1;
    else { fail(e, OE_EIO, "%s: feat_extract_norm \"%s\" must be \"group\" or \"layer\"", path, s); goto out; }
    c->has_norm = 1;
  }
  if ((r = oe_fz_config_bool(&cf, "do_stable_layer_norm", &c->stable, e)) < 0) goto out;
  c->has_stable = r;
  if ((r = oe_fz_config_bool(&cf, "conv_bias", &c->conv_bias, e)) < 0) goto out;
  c->has_conv_bias = r;
  {
    int adapter = 0;
    if (oe_fz_config_bool(&cf, "add_adapter", &adapter, e) < 0) goto out;
    if (adapter) { fail(e, OE_EIO, "%s: add_adapter = true is not supported", path); goto out; }
  }
  if (oe_fz_config_int(&cf, "num_conv_pos_embeddings", 1, 4096, &c->pos_k, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "num_conv_pos_embedding_groups", 1, MAX_DIM, &c->pos_g, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "num_feat_extract_layers", 1, OE_W2V_MAX_CONV, &c->n_feat, e) < 0) goto out;
  rc = OE_OK;
out:
  oe_fz_config_free(&cf);
  if (rc == OE_OK) rc = read_lists(path, c, e);
  return rc;
}

/* ---------------------------------------------------------------- loading */

static int get1(oe_fz_take *t, const char *key, int64_t n, const float **out, oe_err *e) {
  return oe_fz_get(t, key, 1, &n, out, e);
}
static int get2(oe_fz_take *t, const char *key, int64_t a, int64_t b, const float **out, oe_err *e) {
  int64_t s[2] = { a, b };
  return oe_fz_get(t, key, 2, s, out, e);
}
static int keyf(char *buf, size_t n, const char *fmt, int64_t i, const char *rest) {
  int w = snprintf(buf, n, fmt, (long long)i, rest);
  return w > 0 && (size_t)w < n;
}

int oe_w2v_load(oe_w2v **out, oe_fz_file *f, const oe_w2v_opts *o, oe_err *e) {
  *out = NULL;
  const char *prefix = o->prefix ? o->prefix : "";
  oe_fz_take t;
  int rc = oe_fz_take_begin(&t, f, prefix, e);
  if (rc != OE_OK) return rc;
  oe_w2v *m = calloc(1, sizeof *m);
  if (!m) { oe_fz_take_end(&t); return fail(e, OE_ENOMEM, "out of memory"); }
  m->file = f;
  oe_w2v_config *c = &m->cfg;
  const char *path = f->st.path;
  char key[256], b1[96];
  int nd;
  int64_t s[OE_MAX_DIMS];

  if (oe_fz_find(&t, "feature_extractor.conv_layers.0.conv.weight") < 0) {
    rc = fail(e, OE_EINVAL, "%s: no Wav2Vec2 under the prefix '%s' (missing '%sfeature_extractor.conv_layers.0.conv.weight')", path,
              prefix, prefix);
    goto fail_;
  }
  /* the convolution stack from the shapes */
  int64_t cin = 1;
  c->n_conv = 0;
  while (c->n_conv < OE_W2V_MAX_CONV) {
    keyf(key, sizeof key, "feature_extractor.conv_layers.%lld.conv.%s", c->n_conv, "weight");
    if (!oe_fz_shape(&t, key, &nd, s)) break;
    if (nd != 3 || s[1] != cin || s[0] < 1 || s[0] > MAX_DIM || s[2] < 1 || s[2] > 4096) {
      rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected (C, %lld, k)", path, prefix, key,
                oe_shape_str(nd, s, b1, sizeof b1), (long long)cin);
      goto fail_;
    }
    c->conv_dim[c->n_conv] = s[0];
    c->conv_kernel[c->n_conv] = s[2];
    cin = s[0];
    c->n_conv++;
  }
  keyf(key, sizeof key, "feature_extractor.conv_layers.%lld.conv.%s", 0, "bias");
  c->conv_bias = oe_fz_find(&t, key) >= 0;
  keyf(key, sizeof key, "feature_extractor.conv_layers.%lld.layer_norm.%s", 1, "weight");
  c->layer_norm_features = c->n_conv > 1 && oe_fz_find(&t, key) >= 0;
  const int64_t Cl = cin;
  if (!oe_fz_shape(&t, "feature_projection.projection.weight", &nd, s)) {
    rc = fail(e, OE_EINVAL, "%s: missing tensor '%sfeature_projection.projection.weight'", path, prefix);
    goto fail_;
  }
  if (nd != 2 || s[1] != Cl || s[0] < 1 || s[0] > MAX_DIM) {
    rc = fail(e, OE_EINVAL, "%s: tensor '%sfeature_projection.projection.weight' has shape %s, expected (D, %lld)", path, prefix,
              oe_shape_str(nd, s, b1, sizeof b1), (long long)Cl);
    goto fail_;
  }
  c->dim = s[0];
  const int64_t D = c->dim;
  c->layers = 0;
  while (c->layers < MAX_DEPTH) {
    keyf(key, sizeof key, "encoder.layers.%lld.%s", c->layers, "attention.q_proj.weight");
    if (oe_fz_find(&t, key) < 0) break;
    c->layers++;
  }
  if (c->layers == 0) { rc = fail(e, OE_EINVAL, "%s: missing tensor '%sencoder.layers.0.attention.q_proj.weight'", path, prefix); goto fail_; }
  keyf(key, sizeof key, "encoder.layers.%lld.%s", 0, "feed_forward.intermediate_dense.weight");
  if (!oe_fz_shape(&t, key, &nd, s) || nd != 2 || s[1] != D || s[0] < 1 || s[0] > MAX_DIM * 8) {
    rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' is missing or not (I, %lld)", path, prefix, key, (long long)D);
    goto fail_;
  }
  c->inter = s[0];
  /* positional convolution: weight_g / weight_v or the parametrization's original0 / original1 */
  const char *g_key = "encoder.pos_conv_embed.conv.weight_g", *v_key = "encoder.pos_conv_embed.conv.weight_v";
  if (oe_fz_find(&t, v_key) < 0) {
    g_key = "encoder.pos_conv_embed.conv.parametrizations.weight.original0";
    v_key = "encoder.pos_conv_embed.conv.parametrizations.weight.original1";
  }
  if (!oe_fz_shape(&t, v_key, &nd, s)) {
    rc = fail(e, OE_EINVAL, "%s: missing tensor '%sencoder.pos_conv_embed.conv.weight_v' (or '...parametrizations.weight.original1')",
              path, prefix);
    goto fail_;
  }
  if (nd != 3 || s[0] != D || s[1] < 1 || D % s[1] != 0 || s[2] < 1 || s[2] > 4096) {
    rc = fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected (%lld, %lld / groups, K)", path, prefix, v_key,
              oe_shape_str(nd, s, b1, sizeof b1), (long long)D, (long long)D);
    goto fail_;
  }
  c->pos_kernel = s[2];
  c->pos_groups = D / s[1];
  c->eps = 1e-5;
  c->stable = c->layer_norm_features;
  c->heads = D % 64 == 0 ? D / 64 : 0;

  /* strides: config.json, else base's for base's kernels */
  w2v_hf_cfg hc;
  int have_cfg = 0;
  if (o->config_path) {
    if ((rc = read_hf_config(o->config_path, &hc, e)) != OE_OK) goto fail_;
    have_cfg = 1;
  }
  {
    static const int64_t base_k[7] = { 10, 3, 3, 3, 3, 2, 2 }, base_s[7] = { 5, 2, 2, 2, 2, 2, 2 };
    int is_base = c->n_conv == 7;
    for (int i = 0; is_base && i < 7; i++) is_base = c->conv_kernel[i] == base_k[i];
    if (have_cfg && hc.n_stride) {
      if (hc.n_stride != c->n_conv) { rc = oe_fz_config_mismatch(e, o->config_path, "conv_stride", hc.n_stride, "convolutions found", c->n_conv); goto fail_; }
      for (int i = 0; i < c->n_conv; i++) c->conv_stride[i] = hc.stride[i];
    } else if (is_base) {
      for (int i = 0; i < 7; i++) c->conv_stride[i] = base_s[i];
    } else {
      rc = fail(e, OE_EINVAL, "%s: the convolution strides are not in the weights and the kernels are not wav2vec2-base's: "
                "config.json (conv_stride) is needed", path);
      goto fail_;
    }
  }
  if (have_cfg) {
    const char *cp = o->config_path;
    if (hc.n_dim && hc.n_dim != c->n_conv) { rc = oe_fz_config_mismatch(e, cp, "conv_dim", hc.n_dim, "convolutions found", c->n_conv); goto fail_; }
    if (hc.n_kernel && hc.n_kernel != c->n_conv) { rc = oe_fz_config_mismatch(e, cp, "conv_kernel", hc.n_kernel, "convolutions found", c->n_conv); goto fail_; }
    if (hc.n_feat && hc.n_feat != c->n_conv) { rc = oe_fz_config_mismatch(e, cp, "num_feat_extract_layers", hc.n_feat, "convolutions found", c->n_conv); goto fail_; }
    for (int i = 0; i < c->n_conv; i++) {
      if (hc.n_dim && hc.dim[i] != c->conv_dim[i]) { rc = oe_fz_config_mismatch(e, cp, "conv_dim", hc.dim[i], "conv channels", c->conv_dim[i]); goto fail_; }
      if (hc.n_kernel && hc.kernel[i] != c->conv_kernel[i]) { rc = oe_fz_config_mismatch(e, cp, "conv_kernel", hc.kernel[i], "conv kernel", c->conv_kernel[i]); goto fail_; }
    }
    if (hc.has_conv_bias && hc.conv_bias != c->conv_bias) { rc = oe_fz_config_mismatch(e, cp, "conv_bias", hc.conv_bias, "conv bias present", c->conv_bias); goto fail_; }
    if (hc.has_norm && hc.layer_norm_features != c->layer_norm_features) {
      rc = fail(e, OE_EINVAL, "%s: feat_extract_norm is \"%s\" but the weights have %s", cp, hc.layer_norm_features ? "layer" : "group",
                c->layer_norm_features ? "a layer_norm after every convolution" : "a norm on the first convolution only");
      goto fail_;
    }
    if (hc.enc.hidden && hc.enc.hidden != D) { rc = oe_fz_config_mismatch(e, cp, "hidden_size", hc.enc.hidden, "projection width", D); goto fail_; }
    if (hc.enc.layers && hc.enc.layers != c->layers) { rc = oe_fz_config_mismatch(e, cp, "num_hidden_layers", hc.enc.layers, "layers found", c->layers); goto fail_; }
    if (hc.enc.inter && hc.enc.inter != c->inter) { rc = oe_fz_config_mismatch(e, cp, "intermediate_size", hc.enc.inter, "intermediate_dense rows", c->inter); goto fail_; }
    if (hc.pos_k && hc.pos_k != c->pos_kernel) { rc = oe_fz_config_mismatch(e, cp, "num_conv_pos_embeddings", hc.pos_k, "positional kernel", c->pos_kernel); goto fail_; }
    if (hc.pos_g && hc.pos_g != c->pos_groups) { rc = oe_fz_config_mismatch(e, cp, "num_conv_pos_embedding_groups", hc.pos_g, "positional groups", c->pos_groups); goto fail_; }
    if (hc.enc.heads) c->heads = hc.enc.heads;
    if (hc.enc.has_eps) c->eps = hc.enc.eps;
    if (hc.has_stable) c->stable = hc.stable;
  }
  if (o->heads) {
    if (have_cfg && hc.enc.heads && hc.enc.heads != o->heads) {
      rc = fail(e, OE_EINVAL, "%s: num_attention_heads = %lld but the heads option says %lld", o->config_path, (long long)hc.enc.heads, (long long)o->heads);
      goto fail_;
    }
    c->heads = o->heads;
  }
  if (o->stable >= 0) c->stable = o->stable;
  if (c->heads < 1 || D % c->heads != 0) {
    rc = fail(e, OE_EINVAL, "%s: width %lld is not divisible by %lld heads (give num_attention_heads in config.json or the heads option)",
              path, (long long)D, (long long)c->heads);
    goto fail_;
  }
  c->receptive = 1;
  for (int i = c->n_conv - 1; i >= 0; i--) c->receptive = (c->receptive - 1) * c->conv_stride[i] + c->conv_kernel[i];

  /* tensors: the convolutions (reordered to (C', k, C)) and their norms */
  cin = 1;
  for (int i = 0; i < c->n_conv; i++) {
    const int64_t Co = c->conv_dim[i], k = c->conv_kernel[i];
    const float *w;
    int64_t s3[3] = { Co, cin, k };
    keyf(key, sizeof key, "feature_extractor.conv_layers.%lld.conv.%s", i, "weight");
    if ((rc = oe_fz_get(&t, key, 3, s3, &w, e)) != OE_OK) goto fail_;
    if (i == 0) {
      m->conv_w[0] = w;
    } else {
      float *r = malloc(sizeof(float) * (size_t)(Co * k * cin));
      if (!r) { rc = fail(e, OE_ENOMEM, "out of memory"); goto fail_; }
      for (int64_t a = 0; a < Co; a++)
        for (int64_t j = 0; j < k; j++)
          for (int64_t ci = 0; ci < cin; ci++) r[(a * k + j) * cin + ci] = w[(a * cin + ci) * k + j];
      m->conv_owned[i] = r;
      m->conv_w[i] = r;
    }
    if (c->conv_bias) {
      keyf(key, sizeof key, "feature_extractor.conv_layers.%lld.conv.%s", i, "bias");
      if ((rc = get1(&t, key, Co, &m->conv_b[i], e)) != OE_OK) goto fail_;
    }
    if (c->layer_norm_features || i == 0) {
      keyf(key, sizeof key, "feature_extractor.conv_layers.%lld.layer_norm.%s", i, "weight");
      if ((rc = get1(&t, key, Co, &m->norm_w[i], e)) != OE_OK) goto fail_;
      keyf(key, sizeof key, "feature_extractor.conv_layers.%lld.layer_norm.%s", i, "bias");
      if ((rc = get1(&t, key, Co, &m->norm_b[i], e)) != OE_OK) goto fail_;
    }
    cin = Co;
  }
  if ((rc = get1(&t, "feature_projection.layer_norm.weight", Cl, &m->fp_ln_w, e)) != OE_OK) goto fail_;
  if ((rc = get1(&t, "feature_projection.layer_norm.bias", Cl, &m->fp_ln_b, e)) != OE_OK) goto fail_;
  if ((rc = get2(&t, "feature_projection.projection.weight", D, Cl, &m->fp_w, e)) != OE_OK) goto fail_;
  if ((rc = get1(&t, "feature_projection.projection.bias", D, &m->fp_b, e)) != OE_OK) goto fail_;
  {
    const int64_t K = c->pos_kernel, Cg = D / c->pos_groups;
    const float *g, *v;
    int64_t sg[3] = { 1, 1, K }, sv[3] = { D, Cg, K };
    if ((rc = oe_fz_get(&t, g_key, 3, sg, &g, e)) != OE_OK) goto fail_;
    if ((rc = oe_fz_get(&t, v_key, 3, sv, &v, e)) != OE_OK) goto fail_;
    if ((rc = get1(&t, "encoder.pos_conv_embed.conv.bias", D, &m->pos_b, e)) != OE_OK) goto fail_;
    m->pos_w = malloc(sizeof(float) * (size_t)(D * K * Cg));
    double *nrm = calloc((size_t)K, sizeof(double));
    if (!m->pos_w || !nrm) { free(nrm); rc = fail(e, OE_ENOMEM, "out of memory"); goto fail_; }
    for (int64_t a = 0; a < D * Cg; a++)
      for (int64_t j = 0; j < K; j++) nrm[j] += (double)v[a * K + j] * v[a * K + j];
    for (int64_t j = 0; j < K; j++) nrm[j] = nrm[j] > 0 ? (double)g[j] / sqrt(nrm[j]) : 0.0;
    for (int64_t a = 0; a < D; a++)
      for (int64_t j = 0; j < K; j++)
        for (int64_t ci = 0; ci < Cg; ci++) m->pos_w[(a * K + j) * Cg + ci] = (float)(v[(a * Cg + ci) * K + j] * nrm[j]);
    free(nrm);
  }
  if ((rc = get1(&t, "encoder.layer_norm.weight", D, &m->enc_ln_w, e)) != OE_OK) goto fail_;
  if ((rc = get1(&t, "encoder.layer_norm.bias", D, &m->enc_ln_b, e)) != OE_OK) goto fail_;
  {
    const float *mse;
    if (oe_fz_find(&t, "masked_spec_embed") >= 0 && (rc = get1(&t, "masked_spec_embed", D, &mse, e)) != OE_OK) goto fail_;
  }
  m->layers = calloc((size_t)c->layers, sizeof *m->layers);
  int64_t zn = D > c->inter ? D : c->inter;
  for (int i = 0; i < c->n_conv; i++) if (c->conv_dim[i] > zn) zn = c->conv_dim[i];
  m->zeros = calloc((size_t)zn, sizeof(float));
  if (!m->layers || !m->zeros) { rc = fail(e, OE_ENOMEM, "out of memory"); goto fail_; }
  for (int64_t i = 0; i < c->layers; i++) {
    w2v_layer *L = &m->layers[i];
    const int64_t I = c->inter;
#define G1(rest, n, dst) do { keyf(key, sizeof key, "encoder.layers.%lld.%s", i, rest); if ((rc = get1(&t, key, n, dst, e)) != OE_OK) goto fail_; } while (0)
#define G2(rest, a, b, dst) do { keyf(key, sizeof key, "encoder.layers.%lld.%s", i, rest); if ((rc = get2(&t, key, a, b, dst, e)) != OE_OK) goto fail_; } while (0)
    G2("attention.q_proj.weight", D, D, &L->q_w); G1("attention.q_proj.bias", D, &L->q_b);
    G2("attention.k_proj.weight", D, D, &L->k_w); G1("attention.k_proj.bias", D, &L->k_b);
    G2("attention.v_proj.weight", D, D, &L->v_w); G1("attention.v_proj.bias", D, &L->v_b);
    G2("attention.out_proj.weight", D, D, &L->o_w); G1("attention.out_proj.bias", D, &L->o_b);
    G1("layer_norm.weight", D, &L->ln1_w); G1("layer_norm.bias", D, &L->ln1_b);
    G2("feed_forward.intermediate_dense.weight", I, D, &L->fc1_w); G1("feed_forward.intermediate_dense.bias", I, &L->fc1_b);
    G2("feed_forward.output_dense.weight", D, I, &L->fc2_w); G1("feed_forward.output_dense.bias", D, &L->fc2_b);
    G1("final_layer_norm.weight", D, &L->ln2_w); G1("final_layer_norm.bias", D, &L->ln2_b);
#undef G1
#undef G2
  }
  if ((rc = oe_fz_unexpected(&t, NULL, e)) != OE_OK) goto fail_;
  oe_fz_take_end(&t);
  *out = m;
  return OE_OK;
fail_:
  oe_fz_take_end(&t);
  oe_w2v_free(m);
  return rc;
}

/* ---------------------------------------------------------------- forward */

/* y (T, C) GroupNorm with one group per channel (statistics over T), affine, then GELU.
 * Rows are summed in float over blocks of 128 (contiguous, vectorised across channels) and the
 * block sums added in double: mean, then the squared deviations from it (two passes, as the
 * variance of a large-mean channel needs). st: 6 C floats (two double rows, scale, shift). */
OE_SIMD_CLONES
static void channel_sums(const float *y, int64_t T, int64_t C, const float *mean, double *out, float *acc) {
  for (int64_t c = 0; c < C; c++) out[c] = 0.0;
  for (int64_t t0 = 0; t0 < T; t0 += 128) {
    int64_t t1 = T - t0 < 128 ? T : t0 + 128;
    for (int64_t c = 0; c < C; c++) acc[c] = 0.0f;
    if (mean) {
      for (int64_t t = t0; t < t1; t++)
        for (int64_t c = 0; c < C; c++) { float d = y[t * C + c] - mean[c]; acc[c] += d * d; }
    } else {
      for (int64_t t = t0; t < t1; t++)
        for (int64_t c = 0; c < C; c++) acc[c] += y[t * C + c];
    }
    for (int64_t c = 0; c < C; c++) out[c] += acc[c];
  }
}

OE_SIMD_CLONES
static void scale_rows(float *y, int64_t T, int64_t C, const float *scale) {
#pragma omp parallel for schedule(static) if (T * C > PAR_MIN && !omp_in_parallel())
  for (int64_t t = 0; t < T; t++)
    for (int64_t j = 0; j < C; j++) y[t * C + j] *= scale[j];
}

static void group_norm_gelu(float *y, int64_t T, int64_t C, const float *w, const float *b, float *st) {
  double *sum = (double *)(void *)st;
  float *scale = st + 4 * C, *shift = st + 5 * C;
  channel_sums(y, T, C, NULL, sum, scale);
  for (int64_t c = 0; c < C; c++) shift[c] = (float)(sum[c] / (double)T);   /* the mean, for now */
  channel_sums(y, T, C, shift, sum, scale);
  for (int64_t c = 0; c < C; c++) {
    double mean = shift[c], rs = 1.0 / sqrt(sum[c] / (double)T + 1e-5);
    scale[c] = (float)(rs * w[c]);
    shift[c] = (float)(b[c] - mean * rs * w[c]);
  }
  scale_rows(y, T, C, scale);
  oe_fz_bias_gelu(y, shift, T, C);
}

/* frames after each convolution for n samples */
static void conv_frames(const oe_w2v_config *c, int64_t n, int64_t *T) {
  for (int i = 0; i < c->n_conv; i++) {
    n = n >= c->conv_kernel[i] ? (n - c->conv_kernel[i]) / c->conv_stride[i] + 1 : 0;
    T[i] = n;
  }
}

/* floats of the convolution phase for one clip of n samples: cols0, ping, pong, norm rows */
static void conv_sizes(const oe_w2v_config *c, int64_t n, int64_t *cols0, int64_t *ping, int64_t *pong) {
  int64_t T[OE_W2V_MAX_CONV] = { 0 };
  conv_frames(c, n, T);
  *cols0 = oe_fz_round((size_t)(T[0] * c->conv_kernel[0]));
  *ping = *pong = 0;
  for (int i = 0; i < c->n_conv - 1; i++) {
    int64_t v = oe_fz_round((size_t)(T[i] * c->conv_dim[i]));
    if (i % 2 == 0) { if (v > *ping) *ping = v; }
    else if (v > *pong) *pong = v;
  }
}

/* the convolution stack on one clip x (n) -> feat (T_last, C_last); scr: conv_sizes floats + 2 C0 */
static void conv_stack(const oe_w2v *m, const float *x, int64_t n, float *feat, float *scr) {
  const oe_w2v_config *c = &m->cfg;
  int64_t T[OE_W2V_MAX_CONV], s_cols, s_ping, s_pong;
  conv_frames(c, n, T);
  conv_sizes(c, n, &s_cols, &s_ping, &s_pong);
  float *cols = scr, *ping = cols + s_cols, *pong = ping + s_ping, *st = pong + s_pong;
  const float *src = NULL;
  for (int i = 0; i < c->n_conv; i++) {
    const int64_t Co = c->conv_dim[i], k = c->conv_kernel[i], s = c->conv_stride[i], To = T[i];
    float *dst = i == c->n_conv - 1 ? feat : (i % 2 == 0 ? ping : pong);
    if (i == 0) {
#pragma omp parallel for schedule(static) if (To * k > PAR_MIN && !omp_in_parallel())
      for (int64_t tt = 0; tt < To; tt++) memcpy(cols + tt * k, x + tt * s, (size_t)k * sizeof(float));
      oe_gemm(0, 1, To, Co, k, 1.0f, cols, k, m->conv_w[0], k, 0.0f, dst, Co);
    } else {
      const int64_t Ci = c->conv_dim[i - 1];
      for (int64_t j0 = 0; j0 < k; j0 += s) {
        int64_t taps = k - j0 < s ? k - j0 : s;
        oe_gemm(0, 1, To, Co, taps * Ci, 1.0f, src + j0 * Ci, s * Ci, m->conv_w[i] + j0 * Ci, k * Ci, j0 ? 1.0f : 0.0f, dst, Co);
      }
    }
    const float *bias = m->conv_b[i];
    if (c->layer_norm_features) {
      oe_fz_add_layernorm(dst, bias, m->norm_w[i], m->norm_b[i], dst, To, Co, 1e-5f);
      oe_fz_bias_gelu(dst, m->zeros, To, Co);
    } else if (i == 0) {
      if (bias) oe_fz_add_bias(dst, bias, To, Co, Co);
      group_norm_gelu(dst, To, Co, m->norm_w[0], m->norm_b[0], st);
    } else {
      oe_fz_bias_gelu(dst, bias ? bias : m->zeros, To, Co);
    }
    src = dst;
  }
}

/* x (T, D) += GELU(posconv(x) + b) for one clip; scr: (T + 2p) D + T K Cg + T D floats */
static void pos_conv(const oe_w2v *m, float *x, int64_t T, float *scr) {
  const oe_w2v_config *c = &m->cfg;
  const int64_t D = c->dim, K = c->pos_kernel, G = c->pos_groups, Cg = D / G, p = K / 2, KC = K * Cg;
  float *xp = scr, *cols = xp + oe_fz_round((size_t)((T + 2 * p) * D)), *pos = cols + oe_fz_round((size_t)(T * KC));
  memset(xp, 0, sizeof(float) * (size_t)(p * D));
  memcpy(xp + p * D, x, sizeof(float) * (size_t)(T * D));
  memset(xp + (p + T) * D, 0, sizeof(float) * (size_t)(p * D));
  for (int64_t g = 0; g < G; g++) {
#pragma omp parallel for schedule(static) if (T * KC > PAR_MIN && !omp_in_parallel())
    for (int64_t t = 0; t < T; t++)
      for (int64_t j = 0; j < K; j++) memcpy(cols + t * KC + j * Cg, xp + (t + j) * D + g * Cg, (size_t)Cg * sizeof(float));
    oe_gemm(0, 1, T, Cg, KC, 1.0f, cols, KC, m->pos_w + g * Cg * KC, KC, 0.0f, pos + g * Cg, D);
  }
  oe_fz_bias_gelu(pos, m->pos_b, T, D);
#pragma omp parallel for schedule(static) if (T * D > PAR_MIN && !omp_in_parallel())
  for (int64_t i = 0; i < T * D; i++) x[i] += pos[i];
}

typedef struct {
  int64_t N, T, conv, pos, per_clip_rows;
} w2v_plan;

/* floats of one share of nb clips (see w2v_share) */
static int share_floats(const oe_w2v_config *c, const w2v_plan *p, int64_t nb, int64_t *out) {
  const int64_t D = c->dim, Cl = c->conv_dim[c->n_conv - 1], lim = (int64_t)1 << 40;
  int64_t rows, f_feat, f_h, f_big, f_keep, layer;
  if (!oe_fz_mul_ok(nb, p->T, lim, &rows)) return 0;
  if (!oe_fz_mul_ok(rows, Cl, lim, &f_feat) || !oe_fz_mul_ok(rows, D, lim, &f_h) || !oe_fz_mul_ok(rows, 3 * D + c->inter, lim, &layer))
    return 0;
  f_keep = rows / 4 + 16;
  f_big = layer;
  if (p->conv > f_big) f_big = p->conv;
  if (p->pos > f_big) f_big = p->pos;
  *out = (int64_t)oe_fz_round((size_t)f_feat) + 2 * (int64_t)oe_fz_round((size_t)f_h) + (int64_t)oe_fz_round((size_t)f_keep) + f_big;
  return *out < lim;
}

/* The whole network on nb clips x (nb, N) -> out (nb, T, D) with scratch scr. */
static void w2v_share(const oe_w2v *m, const w2v_plan *p, const float *x, int64_t nb, const int64_t *lengths, float *out,
                      float *scr, float *att, int att_threads) {
  const oe_w2v_config *c = &m->cfg;
  const int64_t D = c->dim, I = c->inter, H = c->heads, hd = D / H, T = p->T, N = p->N, rows = nb * T;
  const int64_t Cl = c->conv_dim[c->n_conv - 1];
  float *feat = scr, *h = feat + oe_fz_round((size_t)(rows * Cl)), *a = h + oe_fz_round((size_t)(rows * D));
  uint8_t *keep = (uint8_t *)(a + oe_fz_round((size_t)(rows * D)));
  float *big = a + oe_fz_round((size_t)(rows * D)) + oe_fz_round((size_t)(rows / 4 + 16));
  float *qkv = big, *mm = big + rows * 3 * D;
  const float eps = (float)c->eps;

  for (int64_t b = 0; b < nb; b++) conv_stack(m, x + b * N, N, feat + b * T * Cl, big);
  /* feature projection: LayerNorm, Linear into out */
  oe_fz_add_layernorm(feat, NULL, m->fp_ln_w, m->fp_ln_b, feat, rows, Cl, eps);
  oe_gemm(0, 1, rows, D, Cl, 1.0f, feat, Cl, m->fp_w, Cl, 0.0f, out, D);
  oe_fz_add_bias(out, m->fp_b, rows, D, D);
  int masked = 0;
  for (int64_t b = 0; b < nb; b++) {
    int64_t tb = lengths ? oe_w2v_frames(c, lengths[b]) : T;
    if (tb < T) {
      masked = 1;
      memset(out + (b * T + tb) * D, 0, sizeof(float) * (size_t)((T - tb) * D));
    }
    memset(keep + b * T, 1, (size_t)tb);
    if (tb < T) memset(keep + b * T + tb, 0, (size_t)(T - tb));
  }
  for (int64_t b = 0; b < nb; b++) pos_conv(m, out + b * T * D, T, big);
  if (!c->stable) oe_fz_add_layernorm(out, NULL, m->enc_ln_w, m->enc_ln_b, out, rows, D, eps);

  const float *pending = NULL;
  for (int64_t i = 0; i < c->layers; i++) {
    const w2v_layer *L = &m->layers[i];
    const float *src = out;
    if (c->stable) {
      oe_fz_add_layernorm(out, pending, L->ln1_w, L->ln1_b, h, rows, D, eps);
      src = h;
    }
    oe_gemm(0, 1, rows, D, D, 1.0f, src, D, L->q_w, D, 0.0f, qkv, 3 * D);
    oe_gemm(0, 1, rows, D, D, 1.0f, src, D, L->k_w, D, 0.0f, qkv + D, 3 * D);
    oe_gemm(0, 1, rows, D, D, 1.0f, src, D, L->v_w, D, 0.0f, qkv + 2 * D, 3 * D);
    oe_fz_add_bias(qkv, L->q_b, rows, D, 3 * D);
    oe_fz_add_bias(qkv + D, L->k_b, rows, D, 3 * D);
    oe_fz_add_bias(qkv + 2 * D, L->v_b, rows, D, 3 * D);
    oe_fz_attention(qkv, 3 * D, nb, T, H, hd, masked ? keep : NULL, a, att, att_threads);
    oe_gemm(0, 1, rows, D, D, 1.0f, a, D, L->o_w, D, 1.0f, out, D);
    if (c->stable) {
      oe_fz_add_layernorm(out, L->o_b, L->ln2_w, L->ln2_b, h, rows, D, eps);
      oe_gemm(0, 1, rows, I, D, 1.0f, h, D, L->fc1_w, D, 0.0f, mm, I);
      oe_fz_bias_gelu(mm, L->fc1_b, rows, I);
      oe_gemm(0, 1, rows, D, I, 1.0f, mm, I, L->fc2_w, I, 1.0f, out, D);
      pending = L->fc2_b;
    } else {
      oe_fz_add_layernorm(out, L->o_b, L->ln1_w, L->ln1_b, out, rows, D, eps);
      oe_gemm(0, 1, rows, I, D, 1.0f, out, D, L->fc1_w, D, 0.0f, mm, I);
      oe_fz_bias_gelu(mm, L->fc1_b, rows, I);
      oe_gemm(0, 1, rows, D, I, 1.0f, mm, I, L->fc2_w, I, 1.0f, out, D);
      oe_fz_add_layernorm(out, L->fc2_b, L->ln2_w, L->ln2_b, out, rows, D, eps);
    }
  }
  if (c->stable) oe_fz_add_layernorm(out, pending, m->enc_ln_w, m->enc_ln_b, out, rows, D, eps);
}

/* the plan of a forward on rows of n samples; 0 with e set when n is out of range */
static int make_plan(const oe_w2v *m, int64_t N, w2v_plan *p, oe_err *e) {
  const oe_w2v_config *c = &m->cfg;
  int64_t T = oe_w2v_frames(c, N);
  if (T < 1)
    return fail(e, OE_EINVAL, "%lld samples are fewer than the %lld the convolutions need for one frame", (long long)N,
                (long long)c->receptive), 0;
  if (T > 32768) /* attention rows of T^2 floats per thread: 4 GB here; about 11 minutes of audio */
    return fail(e, OE_EINVAL, "%lld samples give %lld frames, more than the 32768 one forward takes (cut the clip)", (long long)N,
                (long long)T), 0;
  p->N = N;
  p->T = T;
  int64_t s_cols, s_ping, s_pong;
  conv_sizes(c, N, &s_cols, &s_ping, &s_pong);
  p->conv = s_cols + s_ping + s_pong + 6 * c->conv_dim[0] + 64;
  const int64_t D = c->dim, K = c->pos_kernel, Cg = D / c->pos_groups;
  p->pos = (int64_t)oe_fz_round((size_t)((T + K) * D)) + (int64_t)oe_fz_round((size_t)(T * K * Cg)) + (int64_t)oe_fz_round((size_t)(T * D));
  return 1;
}

int oe_w2v_forward(oe_w2v *m, const float *x, int64_t B, int64_t N, const int64_t *lengths, float *out, oe_err *e) {
  const oe_w2v_config *c = &m->cfg;
  if (B < 1) return fail(e, OE_EINVAL, "empty batch");
  w2v_plan p;
  if (!make_plan(m, N, &p, e)) return OE_EINVAL;
  const int64_t T = p.T;
  if (lengths)
    for (int64_t b = 0; b < B; b++)
      if (lengths[b] < c->receptive || lengths[b] > N)
        return fail(e, OE_EINVAL, "clip %lld has %lld real samples: must be in %lld..%lld", (long long)(b + 1), (long long)lengths[b],
                    (long long)c->receptive, (long long)N);
  int rc = oe_fz_check(m->file, e);
  if (rc != OE_OK) return rc;
  int nt = omp_get_max_threads();
  if (nt < 1) nt = 1;
  const int per_thread = B >= nt && nt > 1;
  const int64_t lim = (int64_t)1 << 40;
  int64_t share_max = per_thread ? (B + nt - 1) / nt : B, s_share, s_scr, s_att;
  if (!share_floats(c, &p, share_max, &s_share) || !oe_fz_mul_ok(per_thread ? nt : 1, s_share, lim, &s_scr) ||
      !oe_fz_mul_ok(nt, oe_fz_attention_scratch(T), lim, &s_att))
    return fail(e, OE_ENOMEM, "a batch of %lld clips of %lld samples is too large", (long long)B, (long long)N);
  if ((rc = oe_fz_arena_reserve(&m->arena, (size_t)s_scr + (size_t)s_att, e)) != OE_OK) return rc;
  float *scr = m->arena.buf, *att = scr + s_scr;
  const int64_t D = c->dim;
  if (per_thread) {
#pragma omp parallel num_threads(nt)
    {
      int th = omp_get_thread_num();
      int64_t b0 = B * th / nt, b1 = B * (th + 1) / nt;
      if (b1 > b0)
        w2v_share(m, &p, x + b0 * N, b1 - b0, lengths ? lengths + b0 : NULL, out + b0 * T * D, scr + (int64_t)th * s_share,
                  att + (int64_t)th * oe_fz_attention_scratch(T), 1);
    }
  } else {
    w2v_share(m, &p, x, B, lengths, out, scr, att, nt);
  }
  return OE_OK;
}

int oe_w2v_forward_each(oe_w2v *m, const float *const *x, const int64_t *len, int64_t B, float *const *out, oe_err *e) {
  const oe_w2v_config *c = &m->cfg;
  if (B < 1) return fail(e, OE_EINVAL, "empty list of clips");
  int64_t nmax = 0;
  for (int64_t b = 0; b < B; b++) {
    w2v_plan p;
    if (!make_plan(m, len[b], &p, e)) return OE_EINVAL;
    if (len[b] > nmax) nmax = len[b];
  }
  int rc = oe_fz_check(m->file, e);
  if (rc != OE_OK) return rc;
  w2v_plan pmax;
  make_plan(m, nmax, &pmax, e);
  int nt = omp_get_max_threads();
  if (nt < 1) nt = 1;
  const int per_thread = B >= nt && nt > 1;
  const int64_t lim = (int64_t)1 << 40;
  int64_t s_share, s_scr, s_att;
  /* every size grows with the clip's length: scratch for the longest serves each */
  if (!share_floats(c, &pmax, 1, &s_share) || !oe_fz_mul_ok(per_thread ? nt : 1, s_share, lim, &s_scr) ||
      !oe_fz_mul_ok(nt, oe_fz_attention_scratch(pmax.T), lim, &s_att))
    return fail(e, OE_ENOMEM, "a clip of %lld samples is too large", (long long)nmax);
  if ((rc = oe_fz_arena_reserve(&m->arena, (size_t)s_scr + (size_t)s_att, e)) != OE_OK) return rc;
  float *scr = m->arena.buf, *att = scr + s_scr;
  if (per_thread) {
    /* longest clips first, one clip per thread at a time */
    int64_t *order = malloc(sizeof(int64_t) * (size_t)B);
    if (!order) return fail(e, OE_ENOMEM, "out of memory");
    for (int64_t b = 0; b < B; b++) order[b] = b;
    for (int64_t i = 1; i < B; i++) {
      int64_t v = order[i], j = i;
      while (j > 0 && len[order[j - 1]] < len[v]) { order[j] = order[j - 1]; j--; }
      order[j] = v;
    }
#pragma omp parallel num_threads(nt)
    {
      int th = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < B; i++) {
        int64_t b = order[i];
        w2v_plan p;
        oe_err e2;
        make_plan(m, len[b], &p, &e2);
        w2v_share(m, &p, x[b], 1, NULL, out[b], scr + (int64_t)th * s_share, att + (int64_t)th * oe_fz_attention_scratch(pmax.T), 1);
      }
    }
    free(order);
  } else {
    for (int64_t b = 0; b < B; b++) {
      w2v_plan p;
      make_plan(m, len[b], &p, e);
      w2v_share(m, &p, x[b], 1, NULL, out[b], scr, att, nt);
    }
  }
  return OE_OK;
}

/* ---------------------------------------------------------------- preprocessing */

int64_t oe_w2v_padded_len(const int64_t *len, int64_t B, int64_t max_len) {
  int64_t N = 0;
  for (int64_t b = 0; b < B; b++) {
    int64_t n = max_len > 0 && len[b] > max_len ? max_len : len[b];
    if (n > N) N = n;
  }
  return N;
}

void oe_w2v_prepare(const float *const *clips, const int64_t *len, int64_t B, int64_t max_len, int normalize, int masked,
                    float *out, int64_t N, int64_t *kept) {
#pragma omp parallel for schedule(dynamic, 1) if (B > 1 && B * N > PAR_MIN)
  for (int64_t b = 0; b < B; b++) {
    int64_t n = max_len > 0 && len[b] > max_len ? max_len : len[b];
    if (n > N) n = N;
    kept[b] = n;
    float *row = out + b * N;
    memcpy(row, clips[b], sizeof(float) * (size_t)n);
    memset(row + n, 0, sizeof(float) * (size_t)(N - n));
    if (!normalize) continue;
    int64_t cnt = masked ? n : N;
    if (cnt < 1) continue;
    double s = 0, ss = 0;
    for (int64_t i = 0; i < cnt; i++) s += row[i];
    double mean = s / (double)cnt;
    for (int64_t i = 0; i < cnt; i++) { double d = row[i] - mean; ss += d * d; }
    double inv = 1.0 / sqrt(ss / (double)cnt + 1e-7);
    for (int64_t i = 0; i < cnt; i++) row[i] = (float)((row[i] - mean) * inv);
  }
}
