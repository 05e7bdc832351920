/* load.c: oe_tfjs_load (model.json, shards, weight conversion, layout transposition,
 * folding) and the model's accessors. See tfjs.h. */
#include "internal.h"
#include "../core/util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

void oe_tfjs_opts_default(oe_tfjs_opts *o) {
  o->fold = 1;
  o->max_json_bytes = (size_t)64 << 20;
  o->max_weight_bytes = (size_t)4 << 30;
}

static float half_to_float(uint16_t h) {
  uint32_t s = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 31, mant = h & 1023, bits;
  if (ex == 0) {
    if (!mant) bits = s;
    else { /* subnormal */
      float f = (float)mant * (1.0f / 16777216.0f);
      return s ? -f : f;
    }
  } else if (ex == 31) {
    bits = s | 0x7f800000u | (mant << 13);
  } else {
    bits = s | ((ex + 112) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* dequantise one weight's bytes into dst (numel floats) as TF.js does: min + scale * q in
 * double, stored as float32 */
static void convert_weight(const tl_weight *t, const unsigned char *src, float *dst) {
  int64_t n = t->numel;
  switch (t->qdtype) {
  case 0: memcpy(dst, src, (size_t)n * 4); break;
  case 1: for (int64_t i = 0; i < n; i++) dst[i] = (float)(t->qmin + t->qscale * src[i]); break;
  case 2:
    for (int64_t i = 0; i < n; i++) dst[i] = (float)(t->qmin + t->qscale * (double)(src[2 * i] | (src[2 * i + 1] << 8)));
    break;
  default:
    for (int64_t i = 0; i < n; i++) dst[i] = half_to_float((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
  }
}

/* a weight's float32 values, freshly allocated */
static float *weight_floats(const tl_weight *t, unsigned char *const *group_bytes, oe_err *e) {
  float *d = malloc(sizeof(float) * (size_t)(t->numel ? t->numel : 1));
  if (!d) { oe_fail(e, OE_ENOMEM, "out of memory for weight %s", t->name); return NULL; }
  convert_weight(t, group_bytes[t->group] + t->offset, d);
  return d;
}

/* read a group's shards, concatenated; their total size must equal the manifest's */
static int read_group(const oe_tfjs_model *m, const tl_group *g, int gi, size_t max_bytes, unsigned char **out,
                      oe_err *e) {
  uint64_t total = 0;
  uint64_t *sizes = calloc((size_t)g->n_paths + 1, sizeof *sizes);
  if (!sizes) return oe_fail(e, OE_ENOMEM, "out of memory");
  char full[2200], why[256], b[200];
  for (int k = 0; k < g->n_paths; k++) {
    snprintf(full, sizeof full, "%s%s", m->dir, g->paths[k]);
    int fd = oe_open_regular(full, &sizes[k], why, sizeof why);
    if (fd < 0) {
      free(sizes);
      return oe_fail(e, OE_EIO, "weight file '%s' (group %d): %s", oe_escape(g->paths[k], strlen(g->paths[k]), b, sizeof b),
                     gi + 1, why);
    }
    close(fd);
    total += sizes[k];
  }
  if (total != g->bytes) {
    free(sizes);
    return oe_fail(e, OE_EINVAL, "weight group %d: the manifest's weights take %llu bytes, its %d shard file(s) hold %llu",
                   gi + 1, (unsigned long long)g->bytes, g->n_paths, (unsigned long long)total);
  }
  if (total > max_bytes) {
    free(sizes);
    return oe_fail(e, OE_EINVAL, "weight group %d: %llu bytes, more than the limit %zu", gi + 1, (unsigned long long)total, max_bytes);
  }
  unsigned char *buf = malloc(total ? total : 1);
  if (!buf) { free(sizes); return oe_fail(e, OE_ENOMEM, "out of memory for %llu weight bytes", (unsigned long long)total); }
  uint64_t at = 0;
  for (int k = 0; k < g->n_paths; k++) {
    snprintf(full, sizeof full, "%s%s", m->dir, g->paths[k]);
    uint8_t *data = NULL;
    size_t len = 0;
    oe_err fe;
    if (oe_read_regular_file(full, max_bytes, &data, &len, &fe) != OE_OK || len != sizes[k]) {
      free(data); free(buf); free(sizes);
      return oe_fail(e, OE_EIO, "weight file '%s': %s", oe_escape(g->paths[k], strlen(g->paths[k]), b, sizeof b),
                     len != sizes[k] && !fe.msg[0] ? "changed size while read" : fe.msg);
    }
    memcpy(buf + at, data, len);
    at += len;
    free(data);
  }
  free(sizes);
  *out = buf;
  return OE_OK;
}

/* kernels into the NCHW layout the conv kernels take, BN into scale/shift */
static int build_layer_weights(tl_layer *l, const tl_refs *r, unsigned char *const *gb, oe_err *e) {
  if (l->kind == TL_CONV) {
    float *k = weight_floats(r->r[0], gb, e);
    if (!k) return OE_ENOMEM;
    int64_t kh = l->kh, kw = l->kw, M = l->filters, Cg = l->cin / l->groups;
    l->w_numel = M * Cg * kh * kw;
    l->w = malloc(sizeof(float) * (size_t)l->w_numel);
    if (!l->w) { free(k); return oe_fail(e, OE_ENOMEM, "out of memory"); }
    if (l->depthwise) {
      /* (kh, kw, C, mult) -> (C * mult, 1, kh, kw) */
      int64_t C = l->cin, mult = l->depth_mult;
      for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++)
          for (int64_t c = 0; c < C; c++)
            for (int64_t q = 0; q < mult; q++) l->w[((c * mult + q) * kh + i) * kw + j] = k[((i * kw + j) * C + c) * mult + q];
    } else {
      /* (kh, kw, Cin / groups, M) -> (M, Cin / groups, kh, kw) */
      for (int64_t i = 0; i < kh; i++)
        for (int64_t j = 0; j < kw; j++)
          for (int64_t c = 0; c < Cg; c++)
            for (int64_t o = 0; o < M; o++) l->w[((o * Cg + c) * kh + i) * kw + j] = k[((i * kw + j) * Cg + c) * M + o];
    }
    free(k);
    if (r->r[1] && !(l->b = weight_floats(r->r[1], gb, e))) return OE_ENOMEM;
  } else if (l->kind == TL_DENSE) {
    /* kept (in, units): y (rows, units) = x (rows, in) k (in, units) */
    if (!(l->w = weight_floats(r->r[0], gb, e))) return OE_ENOMEM;
    l->w_numel = r->r[0]->numel;
    if (r->r[1] && !(l->b = weight_floats(r->r[1], gb, e))) return OE_ENOMEM;
  } else if (l->kind == TL_BN) {
    int64_t C = l->channels;
    float *v[4] = { 0 };
    int rc = OE_OK;
    for (int k = 0; k < 4 && !rc; k++)
      if (r->r[k] && !(v[k] = weight_floats(r->r[k], gb, e))) rc = OE_ENOMEM;
    l->bn_scale = malloc(sizeof(float) * (size_t)C);
    l->bn_shift = malloc(sizeof(float) * (size_t)C);
    if (!rc && (!l->bn_scale || !l->bn_shift)) rc = oe_fail(e, OE_ENOMEM, "out of memory");
    for (int64_t c = 0; !rc && c < C; c++) {
      /* y = (x - mean) * gamma / sqrt(var + eps) + beta = x * scale + shift */
      double var = v[3][c], den = sqrt(var + l->eps);
      if (!(var + l->eps > 0)) {
        rc = oe_fail(e, OE_EINVAL, "layer '%s' (BatchNormalization): moving_variance + epsilon is not positive in channel %lld",
                     l->name, (long long)c);
        break;
      }
      double g = v[0] ? v[0][c] : 1.0, beta = v[1] ? v[1][c] : 0.0;
      double s = g / den;
      l->bn_scale[c] = (float)s;
      l->bn_shift[c] = (float)(beta - v[2][c] * s);
    }
    for (int k = 0; k < 4; k++) free(v[k]);
    return rc;
  }
  return OE_OK;
}

/* fold BN and activations into the convolution or Dense before them */
static int is_elementwise_act(const tl_layer *l) {
  return l->kind == TL_ACT && (l->act == TA_RELU || l->act == TA_CLIP || l->act == TA_SIGMOID || l->act == TA_TANH);
}
static int is_output(const oe_tfjs_model *m, int i) {
  for (int k = 0; k < m->n_outputs; k++)
    if (m->outputs[k] == i) return 1;
  return 0;
}
/* the single consumer of layer i (first[i]: a consumer), or -1 */
static int sole_consumer(const oe_tfjs_model *m, const int *first, int i) {
  if (m->layers[i].n_consumers != 1 || is_output(m, i)) return -1;
  return first[i];
}
static int fold_layers(oe_tfjs_model *m, oe_err *e) {
  int *first = malloc(sizeof(int) * (size_t)m->n_layers);
  if (!first) return oe_fail(e, OE_ENOMEM, "out of memory");
  for (int i = 0; i < m->n_layers; i++) first[i] = -1;
  for (int j = 0; j < m->n_layers; j++)
    for (int k = 0; k < m->layers[j].n_in; k++)
      if (first[m->layers[j].in[k]] < 0) first[m->layers[j].in[k]] = j;
  for (int i = 0; i < m->n_layers; i++) {
    tl_layer *h = &m->layers[i];
    if (h->kind != TL_CONV && h->kind != TL_DENSE) continue;
    int cur = i;
    int j = sole_consumer(m, first, cur);
    int64_t M = h->kind == TL_CONV ? h->filters : h->units;
    if (j >= 0 && h->act == TA_LINEAR && m->layers[j].kind == TL_BN && m->layers[j].channels == M &&
        (m->layers[j].target[0] == -1 || (h->kind == TL_CONV && m->layers[j].target[0] == 3))) {
      tl_layer *bn = &m->layers[j];
      if (!h->b) {
        h->b = calloc((size_t)M, sizeof(float));
        if (!h->b) { free(first); return oe_fail(e, OE_ENOMEM, "out of memory"); }
      }
      int64_t per = h->w_numel / M; /* conv: rows of (C/g * kh * kw); dense: columns */
      for (int64_t o = 0; o < M; o++) {
        float s = bn->bn_scale[o];
        if (h->kind == TL_CONV)
          for (int64_t q = 0; q < per; q++) h->w[o * per + q] *= s;
        else
          for (int64_t q = 0; q < h->in_units; q++) h->w[q * M + o] *= s;
        h->b[o] = h->b[o] * s + bn->bn_shift[o];
      }
      bn->folded_into = i;
      cur = j;
      j = sole_consumer(m, first, cur);
    }
    if (j >= 0 && h->act == TA_LINEAR && is_elementwise_act(&m->layers[j])) {
      h->act = m->layers[j].act;
      h->act_hi = m->layers[j].act_hi;
      m->layers[j].folded_into = i;
      cur = j;
    }
    h->output_of = cur; /* when cur != i, the head's own output (before the folded layers) is gone */
  }
  free(first);
  /* identity layers read through to the layer computing their input */
  for (int i = 0; i < m->n_layers; i++) {
    tl_layer *l = &m->layers[i];
    l->alias = l->kind == TL_IDENTITY ? m->layers[l->in[0]].alias : i;
  }
  return OE_OK;
}

static void set_dir(oe_tfjs_model *m, const char *path) {
  snprintf(m->path, sizeof m->path, "%s", path);
  const char *slash = strrchr(path, '/');
  size_t n = slash ? (size_t)(slash - path) + 1 : 0;
  if (n >= sizeof m->dir) n = 0;
  memcpy(m->dir, path, n);
  m->dir[n] = 0;
}

/* parse + check a document into m; weights are loaded when load_weights */
static int load_doc(oe_tfjs_model *m, const char *buf, size_t len, int load_weights, size_t max_wbytes, oe_err *e) {
  oe_jtree t;
  char jerr[256];
  if (oe_jtree_parse(&t, buf, len, jerr, sizeof jerr)) return oe_fail(e, OE_EINVAL, "%s", jerr);
  tl_weight *w = NULL;
  tl_group *g = NULL;
  tl_refs *refs = NULL;
  int nw = 0, ng = 0;
  e->msg[0] = 0;
  int rc = tl_parse(m, t.root, &w, &nw, &g, &ng, &refs, e);
  if (!rc) {
    for (int i = 0; i < nw; i++) {
      m->n_weights++;
      m->n_floats += w[i].numel;
      if (w[i].qdtype) m->n_quantized++;
    }
    uint64_t sum = 0;
    for (int k = 0; k < ng; k++) sum += g[k].bytes;
    if (sum > max_wbytes) rc = oe_fail(e, OE_EINVAL, "the manifest's weights take %llu bytes, more than the limit %zu",
                                       (unsigned long long)sum, max_wbytes);
  }
  if (!rc && load_weights) {
    unsigned char **gb = calloc((size_t)(ng ? ng : 1), sizeof *gb);
    if (!gb) rc = oe_fail(e, OE_ENOMEM, "out of memory");
    for (int k = 0; !rc && k < ng; k++) rc = read_group(m, &g[k], k, max_wbytes, &gb[k], e);
    for (int i = 0; !rc && i < m->n_layers; i++) rc = build_layer_weights(&m->layers[i], &refs[i], gb, e);
    for (int k = 0; gb && k < ng; k++) free(gb[k]);
    free(gb);
    if (!rc && m->fold) rc = fold_layers(m, e);
  }
  free(refs);
  tl_free_manifest(w, g, ng);
  oe_jtree_free(&t);
  if (rc && !e->msg[0]) oe_fail(e, rc, "failed");
  return rc;
}

int oe_tfjs_load(const char *path, const oe_tfjs_opts *o, oe_tfjs_model **out, oe_err *e) {
  oe_tfjs_opts def;
  if (!o) { oe_tfjs_opts_default(&def); o = &def; }
  *out = NULL;
  oe_tfjs_model *m = calloc(1, sizeof *m);
  if (!m) return oe_fail(e, OE_ENOMEM, "%s: out of memory", path);
  set_dir(m, path);
  m->fold = o->fold;
  uint8_t *buf = NULL;
  size_t len = 0;
  int rc = oe_read_regular_file(path, o->max_json_bytes, &buf, &len, e);
  if (!rc) rc = load_doc(m, (const char *)buf, len, 1, o->max_weight_bytes, e);
  free(buf);
  if (rc) {
    oe_err inner = *e;
    oe_fail_path(e, rc, path, "%s", inner.msg);
    oe_tfjs_free(m);
    return rc;
  }
  *out = m;
  return OE_OK;
}

int oe_tfjs_check_json(const char *buf, size_t len, oe_err *e) {
  oe_tfjs_model *m = calloc(1, sizeof *m);
  if (!m) return oe_fail(e, OE_ENOMEM, "out of memory");
  int rc = load_doc(m, buf, len, 0, (size_t)4 << 30, e);
  oe_tfjs_free(m);
  return rc;
}

void oe_tfjs_free(oe_tfjs_model *m) {
  if (!m) return;
  tl_plan_free(m);
  tl_free_layers(m);
  for (int k = 0; k < m->n_slots; k++) free(m->slots[k].buf);
  free(m->slots);
  free(m->scratch);
  free(m);
}

const char *oe_tfjs_path(const oe_tfjs_model *m) { return m->path; }
int oe_tfjs_n_layers(const oe_tfjs_model *m) { return m->n_layers; }
const char *oe_tfjs_layer_name(const oe_tfjs_model *m, int i) { return m->layers[i].name; }
const char *oe_tfjs_layer_class(const oe_tfjs_model *m, int i) { return m->layers[i].cls; }
const char *oe_tfjs_layer_folded_into(const oe_tfjs_model *m, int i) {
  int f = m->layers[i].folded_into;
  return f >= 0 ? m->layers[f].name : NULL;
}
int oe_tfjs_find_layer(const oe_tfjs_model *m, const char *name) {
  for (int i = 0; i < m->n_layers; i++)
    if (!strcmp(m->layers[i].name, name)) return i;
  return -1;
}
int oe_tfjs_n_outputs(const oe_tfjs_model *m) { return m->n_outputs; }
int oe_tfjs_output_layer(const oe_tfjs_model *m, int k) { return m->outputs[k]; }
int oe_tfjs_input_shape(const oe_tfjs_model *m, int64_t *dims) {
  const tl_layer *l = &m->layers[m->input];
  memcpy(dims, l->in_dims, sizeof(int64_t) * (size_t)l->in_rank);
  return l->in_rank;
}
void oe_tfjs_weight_stats(const oe_tfjs_model *m, int64_t *n_weights, int64_t *n_floats, int64_t *n_quantized) {
  *n_weights = m->n_weights;
  *n_floats = m->n_floats;
  *n_quantized = m->n_quantized;
}
