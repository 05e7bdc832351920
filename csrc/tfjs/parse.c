/* parse.c: model.json -> layers (topology, per-class configuration, execution order) and
 * the weights manifest (groups, shard paths, per-weight dtype, quantisation and byte range).
 * Every failure names the layer (or manifest entry) and the problem; the caller adds the
 * file. Sizes from the file are checked before use. See tfjs.h. */
#include "internal.h"
#include "../core/util.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 100000
#define MAX_WEIGHTS 1000000
#define MAX_PATHS 100000

/* ---- error helpers ---- */
static int lfail(oe_err *e, const tl_layer *l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int lfail(oe_err *e, const tl_layer *l, const char *fmt, ...) {
  char what[384], nb[96], cb[64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  oe_escape(l->name, strlen(l->name), nb, sizeof nb);
  oe_escape(l->cls, strlen(l->cls), cb, sizeof cb);
  return oe_fail(e, OE_EINVAL, "layer '%s' (%s): %s", nb, cb, what);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

/* ---- configuration readers: 1 found, 0 absent/null, -1 bad (e set) ---- */
static int cfg_int(const tl_layer *l, const oe_jnode *cfg, const char *key, int64_t lo, int64_t hi, int64_t *out,
                   oe_err *e) {
  const oe_jnode *v = oe_jget(cfg, key);
  if (oe_jnull(v)) return 0;
  if (v->type != OE_JSON_NUMBER || !v->is_int || v->ival < lo || v->ival > hi)
    return lfail(e, l, "'%s' must be an integer in %lld..%lld", key, (long long)lo, (long long)hi), -1;
  *out = v->ival;
  return 1;
}
/* an integer or a list of two: kernel_size, strides, dilation_rate, pool_size */
static int cfg_pair(const tl_layer *l, const oe_jnode *cfg, const char *key, int64_t lo, int64_t hi, int64_t *a,
                    int64_t *b, oe_err *e) {
  const oe_jnode *v = oe_jget(cfg, key);
  if (oe_jnull(v)) return 0;
  const oe_jnode *x = v, *y = v;
  if (v->type == OE_JSON_ARRAY) {
    if (v->n != 2) return lfail(e, l, "'%s' must be an integer or a list of two", key), -1;
    x = v->child;
    y = v->child->next;
  }
  if (x->type != OE_JSON_NUMBER || !x->is_int || x->ival < lo || x->ival > hi || y->type != OE_JSON_NUMBER ||
      !y->is_int || y->ival < lo || y->ival > hi)
    return lfail(e, l, "'%s' must hold integers in %lld..%lld", key, (long long)lo, (long long)hi), -1;
  *a = x->ival;
  *b = y->ival;
  return 1;
}
static int cfg_str(const tl_layer *l, const oe_jnode *cfg, const char *key, const char **out, oe_err *e) {
  const oe_jnode *v = oe_jget(cfg, key);
  if (oe_jnull(v)) return 0;
  if (v->type != OE_JSON_STRING) return lfail(e, l, "'%s' must be a string", key), -1;
  *out = v->str;
  return 1;
}
static int cfg_num(const tl_layer *l, const oe_jnode *cfg, const char *key, double *out, oe_err *e) {
  const oe_jnode *v = oe_jget(cfg, key);
  if (oe_jnull(v)) return 0;
  if (v->type != OE_JSON_NUMBER || !isfinite(v->num)) return lfail(e, l, "'%s' must be a finite number", key), -1;
  *out = v->num;
  return 1;
}
static int cfg_bool(const tl_layer *l, const oe_jnode *cfg, const char *key, int def, int *out, oe_err *e) {
  const oe_jnode *v = oe_jget(cfg, key);
  *out = def;
  if (oe_jnull(v)) return 0;
  if (v->type != OE_JSON_TRUE && v->type != OE_JSON_FALSE) return lfail(e, l, "'%s' must be true or false", key), -1;
  *out = v->type == OE_JSON_TRUE;
  return 1;
}

static int check_channels_last(const tl_layer *l, const oe_jnode *cfg, oe_err *e) {
  const char *df = NULL;
  int r = cfg_str(l, cfg, "data_format", &df, e);
  if (r < 0) return -1;
  if (r && strcmp(df, "channels_last"))
    return lfail(e, l, "data_format '%s' is not supported (channels_last only, as TF.js runs it)", df);
  return 0;
}

static int parse_activation(tl_layer *l, const char *a, oe_err *e) {
  l->act_hi = 0;
  if (!strcmp(a, "linear")) l->act = TA_LINEAR;
  else if (!strcmp(a, "relu")) l->act = TA_RELU;
  else if (!strcmp(a, "relu6")) { l->act = TA_CLIP; l->act_hi = 6; }
  else if (!strcmp(a, "sigmoid")) l->act = TA_SIGMOID;
  else if (!strcmp(a, "tanh")) l->act = TA_TANH;
  else if (!strcmp(a, "softmax")) l->act = TA_SOFTMAX;
  else {
    char b[64];
    return lfail(e, l, "activation '%s' is not supported (linear, relu, relu6, sigmoid, tanh, softmax)",
                 oe_escape(a, strlen(a), b, sizeof b));
  }
  return 0;
}
static int layer_activation(tl_layer *l, const oe_jnode *cfg, oe_err *e) {
  const char *a = "linear";
  if (cfg_str(l, cfg, "activation", &a, e) < 0) return -1;
  return parse_activation(l, a, e);
}

static int parse_padding_mode(tl_layer *l, const oe_jnode *cfg, oe_err *e) {
  const char *p = "valid";
  if (cfg_str(l, cfg, "padding", &p, e) < 0) return -1;
  if (!strcmp(p, "same")) l->same = 1;
  else if (!strcmp(p, "valid")) l->same = 0;
  else return lfail(e, l, "padding must be 'same' or 'valid'");
  return 0;
}

/* a shape list with null for unknown sizes: rank and dims (-1 for null) */
static int shape_list(const tl_layer *l, const oe_jnode *v, const char *what, int *rank, int64_t *dims, oe_err *e) {
  if (!v || v->type != OE_JSON_ARRAY || v->n < 1 || v->n > TL_MAX_RANK + 1)
    return lfail(e, l, "'%s' must be a list of 1 to %d sizes", what, TL_MAX_RANK + 1);
  int k = 0;
  for (const oe_jnode *c = v->child; c; c = c->next, k++) {
    if (c->type == OE_JSON_NULL) dims[k] = -1;
    else if (c->type == OE_JSON_NUMBER && c->is_int && c->ival >= 1 && c->ival <= (INT64_C(1) << 31)) dims[k] = c->ival;
    else return lfail(e, l, "'%s' entry %d must be null or a size in 1..2^31", what, k + 1);
  }
  *rank = (int)v->n;
  return 0;
}

/* ---- per-class configuration ---- */
static int parse_config(tl_layer *l, const oe_jnode *cfg, oe_err *e) {
  const char *c = l->cls;
  l->act = TA_LINEAR;
  l->kh = l->kw = l->sh = l->sw = l->dh = l->dw = 1;
  l->groups = 1;
  if (cfg && cfg->type != OE_JSON_OBJECT) return lfail(e, l, "config must be an object");
  if (!strcmp(c, "InputLayer")) {
    l->kind = TL_INPUT;
    const oe_jnode *s = oe_jget(cfg, "batch_input_shape");
    if (oe_jnull(s)) s = oe_jget(cfg, "batchInputShape");
    if (oe_jnull(s)) return lfail(e, l, "no batch_input_shape");
    int64_t d[TL_MAX_RANK + 1];
    int r = 0;
    if (shape_list(l, s, "batch_input_shape", &r, d, e)) return -1;
    if (r < 2) return lfail(e, l, "batch_input_shape must have a batch dim and at least one more");
    l->in_rank = r - 1;
    memcpy(l->in_dims, d + 1, sizeof(int64_t) * (size_t)(r - 1));
    const char *dt = "float32";
    if (cfg_str(l, cfg, "dtype", &dt, e) < 0) return -1;
    if (strcmp(dt, "float32")) return lfail(e, l, "input dtype must be float32");
    return 0;
  }
  if (!strcmp(c, "Conv2D") || !strcmp(c, "DepthwiseConv2D")) {
    l->kind = TL_CONV;
    l->depthwise = c[0] == 'D';
    if (check_channels_last(l, cfg, e) || parse_padding_mode(l, cfg, e) || layer_activation(l, cfg, e)) return -1;
    if (cfg_pair(l, cfg, "kernel_size", 1, 4096, &l->kh, &l->kw, e) != 1)
      return e->msg[0] ? -1 : lfail(e, l, "no kernel_size");
    if (cfg_pair(l, cfg, "strides", 1, 4096, &l->sh, &l->sw, e) < 0) return -1;
    if (cfg_pair(l, cfg, "dilation_rate", 1, 4096, &l->dh, &l->dw, e) < 0) return -1;
    if (cfg_bool(l, cfg, "use_bias", 1, &l->use_bias, e) < 0) return -1;
    if (l->depthwise) {
      l->depth_mult = 1;
      if (cfg_int(l, cfg, "depth_multiplier", 1, 1 << 16, &l->depth_mult, e) < 0) return -1;
    } else {
      if (cfg_int(l, cfg, "filters", 1, INT64_C(1) << 24, &l->filters, e) != 1)
        return e->msg[0] ? -1 : lfail(e, l, "no filters");
      if (cfg_int(l, cfg, "groups", 1, INT64_C(1) << 24, &l->groups, e) < 0) return -1;
      if (l->filters % l->groups) return lfail(e, l, "filters (%lld) not divisible by groups (%lld)",
                                               (long long)l->filters, (long long)l->groups);
    }
    return 0;
  }
  if (!strcmp(c, "BatchNormalization")) {
    l->kind = TL_BN;
    int64_t axis = -1;
    if (cfg_int(l, cfg, "axis", -1, 8, &axis, e) < 0) return -1;
    if (axis == 0) return lfail(e, l, "axis 0 (the batch) is not supported");
    l->target[0] = axis; /* checked against the rank at planning: must be the last axis */
    l->eps = 1e-3;
    if (cfg_num(l, cfg, "epsilon", &l->eps, e) < 0) return -1;
    if (!(l->eps >= 0)) return lfail(e, l, "epsilon must be >= 0");
    if (cfg_bool(l, cfg, "center", 1, &l->center, e) < 0 || cfg_bool(l, cfg, "scale", 1, &l->scale, e) < 0) return -1;
    return 0;
  }
  if (!strcmp(c, "ReLU")) {
    l->kind = TL_ACT;
    l->act = TA_RELU;
    double mv = 0, slope = 0, thr = 0;
    int has = cfg_num(l, cfg, "max_value", &mv, e);
    if (has < 0 || cfg_num(l, cfg, "negative_slope", &slope, e) < 0 || cfg_num(l, cfg, "threshold", &thr, e) < 0)
      return -1;
    if (slope != 0 || thr != 0) return lfail(e, l, "negative_slope and threshold other than 0 are not supported");
    if (has) {
      if (!(mv >= 0) || mv > 3.4e38) return lfail(e, l, "max_value must be >= 0");
      l->act = TA_CLIP;
      l->act_hi = (float)mv;
    }
    return 0;
  }
  if (!strcmp(c, "Activation")) {
    l->kind = TL_ACT;
    const char *a = NULL;
    if (cfg_str(l, cfg, "activation", &a, e) != 1) return e->msg[0] ? -1 : lfail(e, l, "no activation");
    if (parse_activation(l, a, e)) return -1;
    if (l->act == TA_LINEAR) l->kind = TL_IDENTITY;
    return 0;
  }
  if (!strcmp(c, "Softmax")) {
    l->kind = TL_ACT;
    l->act = TA_SOFTMAX;
    /* TF.js's default axis is 1; only the last axis is supported (checked at planning) */
    int64_t axis = 1;
    if (cfg_int(l, cfg, "axis", -1, 8, &axis, e) < 0) return -1;
    if (axis == 0) return lfail(e, l, "axis 0 (the batch) is not supported");
    l->target[0] = axis;
    return 0;
  }
  if (!strcmp(c, "Add")) {
    l->kind = TL_ADD;
    return 0;
  }
  if (!strcmp(c, "ZeroPadding2D")) {
    l->kind = TL_PAD;
    if (check_channels_last(l, cfg, e)) return -1;
    const oe_jnode *p = oe_jget(cfg, "padding");
    int64_t v[4] = { 1, 1, 1, 1 };
    if (!oe_jnull(p)) {
      const int64_t lim = INT64_C(1) << 20;
      if (p->type == OE_JSON_NUMBER) {
        if (!p->is_int || p->ival < 0 || p->ival > lim) return lfail(e, l, "padding must be in 0..2^20");
        v[0] = v[1] = v[2] = v[3] = p->ival;
      } else if (p->type == OE_JSON_ARRAY && p->n == 2) {
        int k = 0;
        for (const oe_jnode *q = p->child; q; q = q->next, k++) {
          if (q->type == OE_JSON_NUMBER && q->is_int && q->ival >= 0 && q->ival <= lim) {
            v[2 * k] = v[2 * k + 1] = q->ival;
          } else if (q->type == OE_JSON_ARRAY && q->n == 2 && q->child->type == OE_JSON_NUMBER &&
                     q->child->is_int && q->child->ival >= 0 && q->child->ival <= lim &&
                     q->child->next->type == OE_JSON_NUMBER && q->child->next->is_int &&
                     q->child->next->ival >= 0 && q->child->next->ival <= lim) {
            v[2 * k] = q->child->ival;
            v[2 * k + 1] = q->child->next->ival;
          } else {
            return lfail(e, l, "padding must be an integer, [h, w] or [[top, bottom], [left, right]] in 0..2^20");
          }
        }
      } else {
        return lfail(e, l, "padding must be an integer, [h, w] or [[top, bottom], [left, right]]");
      }
    }
    memcpy(l->pad, v, sizeof v);
    return 0;
  }
  if (!strcmp(c, "AveragePooling2D") || !strcmp(c, "MaxPooling2D")) {
    l->kind = c[0] == 'A' ? TL_AVGPOOL : TL_MAXPOOL;
    if (check_channels_last(l, cfg, e) || parse_padding_mode(l, cfg, e)) return -1;
    l->kh = l->kw = 2;
    if (cfg_pair(l, cfg, "pool_size", 1, 1 << 20, &l->kh, &l->kw, e) < 0) return -1;
    l->sh = l->kh;
    l->sw = l->kw;
    if (cfg_pair(l, cfg, "strides", 1, 1 << 20, &l->sh, &l->sw, e) < 0) return -1;
    return 0;
  }
  if (!strcmp(c, "GlobalAveragePooling2D") || !strcmp(c, "GlobalMaxPooling2D")) {
    l->kind = c[6] == 'A' ? TL_GAP : TL_GMP;
    if (check_channels_last(l, cfg, e) || cfg_bool(l, cfg, "keepdims", 0, &l->keepdims, e) < 0) return -1;
    return 0;
  }
  if (!strcmp(c, "Dense")) {
    l->kind = TL_DENSE;
    if (layer_activation(l, cfg, e) || cfg_bool(l, cfg, "use_bias", 1, &l->use_bias, e) < 0) return -1;
    if (cfg_int(l, cfg, "units", 1, INT64_C(1) << 24, &l->units, e) != 1)
      return e->msg[0] ? -1 : lfail(e, l, "no units");
    return 0;
  }
  if (!strcmp(c, "Dropout") || !strcmp(c, "SpatialDropout2D")) {
    l->kind = TL_IDENTITY; /* inference: the identity */
    return 0;
  }
  if (!strcmp(c, "Flatten")) {
    l->kind = TL_FLATTEN;
    return check_channels_last(l, cfg, e);
  }
  if (!strcmp(c, "Reshape")) {
    l->kind = TL_RESHAPE;
    const oe_jnode *t = oe_jget(cfg, "target_shape");
    if (!t || t->type != OE_JSON_ARRAY || t->n < 1 || t->n > TL_MAX_RANK)
      return lfail(e, l, "target_shape must be a list of 1 to %d sizes", TL_MAX_RANK);
    int k = 0, neg = 0;
    for (const oe_jnode *q = t->child; q; q = q->next, k++) {
      /* TF.js writes the inferred size (-1) as null */
      int64_t v = q->type == OE_JSON_NULL ? -1 : q->ival;
      if ((q->type != OE_JSON_NULL && (q->type != OE_JSON_NUMBER || !q->is_int)) || v < -1 || v == 0 || v > (INT64_C(1) << 31))
        return lfail(e, l, "target_shape entry %d must be -1, null or a size in 1..2^31", k + 1);
      if (v == -1 && neg++) return lfail(e, l, "target_shape may hold one unknown size");
      l->target[k] = v;
    }
    l->target_n = k;
    return 0;
  }
  return lfail(e, l, "unsupported layer class (supported: InputLayer, Conv2D, DepthwiseConv2D, BatchNormalization, "
                     "ReLU, Activation, Softmax, Add, ZeroPadding2D, AveragePooling2D, MaxPooling2D, "
                     "GlobalAveragePooling2D, GlobalMaxPooling2D, Dense, Dropout, Flatten, Reshape)");
}

/* ---- topology ---- */
typedef struct raw_layer {
  const oe_jnode *node, *cfg, *inbound;
} raw_layer;

/* layer lookup by name: indices sorted by name (built once the names are known) */
static const tl_layer *g_sort_layers; /* qsort has no context argument; parsing is not reentrant-sensitive */
static int cmp_idx(const void *a, const void *b) {
  return strcmp(g_sort_layers[*(const int *)a].name, g_sort_layers[*(const int *)b].name);
}
typedef struct { const tl_layer *ls; const int *idx; int n; } name_index;
static int find_name(const name_index *ix, const char *name) {
  int lo = 0, hi = ix->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2, c = strcmp(ix->ls[ix->idx[mid]].name, name);
    if (!c) return ix->idx[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/* [name, node_index, tensor_index, ...] -> layer index */
static int inbound_ref(const name_index *ix, const tl_layer *l, const oe_jnode *ref, const char *what, oe_err *e) {
  if (!ref || ref->type != OE_JSON_ARRAY || ref->n < 1 || ref->child->type != OE_JSON_STRING)
    return lfail(e, l, "%s entry must be [layer_name, node_index, tensor_index, ...]", what), -1;
  const oe_jnode *ni = ref->child->next, *ti = ni ? ni->next : NULL;
  if ((ni && !(ni->type == OE_JSON_NUMBER && ni->is_int && ni->ival == 0)) ||
      (ti && !(ti->type == OE_JSON_NUMBER && ti->is_int && ti->ival == 0)))
    return lfail(e, l, "%s: node and tensor indices other than 0 (shared layers, multi-output layers) are not supported",
                 what), -1;
  int k = find_name(ix, ref->child->str);
  if (k < 0) {
    char b[96];
    return lfail(e, l, "%s names layer '%s', which does not exist", what,
                 oe_escape(ref->child->str, strlen(ref->child->str), b, sizeof b)), -1;
  }
  return k;
}

void tl_free_manifest(tl_weight *w, tl_group *g, int ng) {
  for (int j = 0; g && j < ng; j++) free((void *)g[j].paths);
  free(g);
  free(w);
}

void tl_free_layers(oe_tfjs_model *m) {
  for (int i = 0; i < m->n_layers; i++) {
    tl_layer *l = &m->layers[i];
    free(l->name);
    free(l->cls);
    free(l->w);
    free(l->b);
    free(l->bn_scale);
    free(l->bn_shift);
  }
  free(m->layers);
  m->layers = NULL;
  m->n_layers = 0;
  free(m->outputs);
  m->outputs = NULL;
  m->n_outputs = 0;
}

/* order layers so that every input comes first (Kahn); the permutation is applied to m */
static int order_layers(oe_tfjs_model *m, oe_err *e) {
  int n = m->n_layers;
  int *indeg = calloc((size_t)n, sizeof(int)), *order = malloc(sizeof(int) * (size_t)n),
      *newpos = malloc(sizeof(int) * (size_t)n);
  tl_layer *nl = malloc(sizeof(tl_layer) * (size_t)n);
  if (!indeg || !order || !newpos || !nl) {
    free(indeg); free(order); free(newpos); free(nl);
    return oe_fail(e, OE_ENOMEM, "out of memory ordering %d layers", n);
  }
  for (int i = 0; i < n; i++) indeg[i] = m->layers[i].n_in;
  int head = 0, tail = 0;
  for (int i = 0; i < n; i++)
    if (!indeg[i]) order[tail++] = i;
  /* consumers found by scanning: O(n * inputs) per step is fine for the layer caps */
  int *cons_start = calloc((size_t)n + 1, sizeof(int)), *cons = NULL;
  int total = 0;
  for (int i = 0; i < n; i++) total += m->layers[i].n_in;
  cons = malloc(sizeof(int) * (size_t)(total > 0 ? total : 1));
  int *fill = calloc((size_t)n + 1, sizeof(int));
  if (!cons_start || !cons || !fill) {
    free(indeg); free(order); free(newpos); free(nl); free(cons_start); free(cons); free(fill);
    return oe_fail(e, OE_ENOMEM, "out of memory ordering %d layers", n);
  }
  for (int i = 0; i < n; i++)
    for (int k = 0; k < m->layers[i].n_in; k++) cons_start[m->layers[i].in[k] + 1]++;
  for (int i = 0; i < n; i++) cons_start[i + 1] += cons_start[i];
  for (int i = 0; i < n; i++)
    for (int k = 0; k < m->layers[i].n_in; k++) {
      int p = m->layers[i].in[k];
      cons[cons_start[p] + fill[p]++] = i;
    }
  while (head < tail) {
    int i = order[head++];
    for (int k = cons_start[i]; k < cons_start[i + 1]; k++)
      if (--indeg[cons[k]] == 0) order[tail++] = cons[k];
  }
  free(cons_start); free(cons); free(fill); free(indeg);
  if (tail < n) {
    int bad = -1;
    for (int k = 0; k < n; k++) newpos[k] = 0;
    for (int k = 0; k < tail; k++) newpos[order[k]] = 1;
    for (int i = 0; i < n && bad < 0; i++)
      if (!newpos[i]) bad = i;
    free(order); free(newpos); free(nl);
    return lfail(e, &m->layers[bad], "the layers form a cycle through this one");
  }
  for (int k = 0; k < n; k++) newpos[order[k]] = k;
  for (int k = 0; k < n; k++) {
    nl[k] = m->layers[order[k]];
    for (int j = 0; j < nl[k].n_in; j++) nl[k].in[j] = newpos[nl[k].in[j]];
  }
  for (int k = 0; k < m->n_outputs; k++) m->outputs[k] = newpos[m->outputs[k]];
  m->input = newpos[m->input];
  free(m->layers);
  m->layers = nl;
  free(order); free(newpos);
  return OE_OK;
}

static const oe_jnode *layer_list(const oe_jnode *cfg) {
  if (cfg && cfg->type == OE_JSON_ARRAY) return cfg; /* old Sequential: the config is the list */
  return oe_jget(cfg, "layers");
}

static int parse_topology(oe_tfjs_model *m, const oe_jnode *topo, oe_err *e) {
  const oe_jnode *mc = oe_jget(topo, "model_config");
  if (mc) topo = mc;
  const char *cls = oe_jstr(oe_jget(topo, "class_name"));
  const oe_jnode *cfg = oe_jget(topo, "config");
  if (!cls) return oe_fail(e, OE_EINVAL, "modelTopology has no class_name");
  int sequential = !strcmp(cls, "Sequential");
  if (!sequential && strcmp(cls, "Model") && strcmp(cls, "Functional")) {
    char b[64];
    return oe_fail(e, OE_EINVAL, "model class '%s' is not supported (Sequential, Model, Functional)",
                   oe_escape(cls, strlen(cls), b, sizeof b));
  }
  const oe_jnode *list = layer_list(cfg);
  if (!list || list->type != OE_JSON_ARRAY || list->n < 1) return oe_fail(e, OE_EINVAL, "the model has no layers list");
  if (list->n > MAX_LAYERS) return oe_fail(e, OE_EINVAL, "%zu layers (at most %d)", list->n, MAX_LAYERS);
  size_t cap = list->n + 1;
  m->layers = calloc(cap, sizeof(tl_layer));
  if (!m->layers) return oe_fail(e, OE_ENOMEM, "out of memory for %zu layers", list->n);
  raw_layer *raw = calloc(cap, sizeof(raw_layer));
  if (!raw) return oe_fail(e, OE_ENOMEM, "out of memory for %zu layers", list->n);
  int rc = OE_OK;
  int *idx = NULL;
  name_index ix = { 0 };
  int n = 0;
  /* names and classes */
  for (const oe_jnode *ln = list->child; ln; ln = ln->next) {
    if (ln->type != OE_JSON_OBJECT) { rc = oe_fail(e, OE_EINVAL, "layer %d is not an object", n + 1); goto done; }
    const char *lc = oe_jstr(oe_jget(ln, "class_name"));
    const oe_jnode *lcfg = oe_jget(ln, "config");
    const char *name = oe_jstr(oe_jget(ln, "name"));
    if (!name) name = oe_jstr(oe_jget(lcfg, "name"));
    if (!lc || !name || !*name) { rc = oe_fail(e, OE_EINVAL, "layer %d has no class_name or name", n + 1); goto done; }
    if (sequential && n == 0 && strcmp(lc, "InputLayer")) {
      /* Sequential without an InputLayer: the first layer declares the input shape */
      tl_layer *in = &m->layers[n];
      char buf[300];
      snprintf(buf, sizeof buf, "%.280s_input", name);
      in->name = dupstr(buf);
      in->cls = dupstr("InputLayer");
      in->folded_into = -1;
      if (!in->name || !in->cls) { rc = oe_fail(e, OE_ENOMEM, "out of memory"); goto done; }
      raw[n].cfg = lcfg;
      n++;
    }
    tl_layer *l = &m->layers[n];
    l->name = dupstr(name);
    l->cls = dupstr(lc);
    l->folded_into = -1;
    if (!l->name || !l->cls) { rc = oe_fail(e, OE_ENOMEM, "out of memory"); goto done; }
    raw[n].node = ln;
    raw[n].cfg = lcfg;
    raw[n].inbound = oe_jget(ln, "inbound_nodes");
    n++;
    m->n_layers = n;
  }
  m->n_layers = n;
  /* names: sorted index, no two alike */
  idx = malloc(sizeof(int) * (size_t)n);
  if (!idx) { rc = oe_fail(e, OE_ENOMEM, "out of memory"); goto done; }
  for (int i = 0; i < n; i++) idx[i] = i;
  g_sort_layers = m->layers;
  qsort(idx, (size_t)n, sizeof(int), cmp_idx);
  for (int i = 1; i < n; i++)
    if (!strcmp(m->layers[idx[i]].name, m->layers[idx[i - 1]].name)) {
      rc = lfail(e, &m->layers[idx[i] > idx[i - 1] ? idx[i] : idx[i - 1]], "a second layer has this name");
      goto done;
    }
  ix.ls = m->layers;
  ix.idx = idx;
  ix.n = n;
  /* configurations */
  for (int i = 0; i < n; i++) {
    tl_layer *l = &m->layers[i];
    l->alias = i;
    l->output_of = i;
    e->msg[0] = 0;
    if (parse_config(l, raw[i].cfg, e)) { rc = OE_EINVAL; goto done; }
  }
  /* wiring */
  m->input = -1;
  if (sequential) {
    if (m->layers[0].kind != TL_INPUT) { rc = lfail(e, &m->layers[0], "a Sequential model starts with its input"); goto done; }
    m->input = 0;
    for (int i = 1; i < n; i++) {
      if (m->layers[i].kind == TL_INPUT) { rc = lfail(e, &m->layers[i], "a second input layer"); goto done; }
      m->layers[i].n_in = 1;
      m->layers[i].in[0] = i - 1;
    }
    m->outputs = malloc(sizeof(int));
    if (!m->outputs) { rc = oe_fail(e, OE_ENOMEM, "out of memory"); goto done; }
    m->outputs[0] = n - 1;
    m->n_outputs = 1;
  } else {
    for (int i = 0; i < n; i++) {
      tl_layer *l = &m->layers[i];
      const oe_jnode *ib = raw[i].inbound;
      if (l->kind == TL_INPUT) {
        if (ib && ib->type == OE_JSON_ARRAY && ib->n) { rc = lfail(e, l, "an input layer with inbound nodes"); goto done; }
        continue;
      }
      if (!ib || ib->type != OE_JSON_ARRAY || ib->n != 1) {
        if (ib && ib->type == OE_JSON_ARRAY && ib->n > 1)
          rc = lfail(e, l, "called %zu times (shared layers are not supported)", ib->n);
        else
          rc = lfail(e, l, "inbound_nodes must hold one node");
        goto done;
      }
      const oe_jnode *node = ib->child;
      if (node->type != OE_JSON_ARRAY || node->n < 1 || node->n > TL_MAX_IN) {
        rc = lfail(e, l, "its inbound node must be a list of 1 to %d inputs [name, 0, 0, {}]", TL_MAX_IN);
        goto done;
      }
      for (const oe_jnode *ref = node->child; ref; ref = ref->next) {
        int k = inbound_ref(&ix, l, ref, "inbound node", e);
        if (k < 0) { rc = OE_EINVAL; goto done; }
        l->in[l->n_in++] = k;
      }
    }
    const oe_jnode *il = oe_jget(cfg, "input_layers"), *ol = oe_jget(cfg, "output_layers");
    if (!il || il->type != OE_JSON_ARRAY || il->n != 1) {
      rc = oe_fail(e, OE_EINVAL, "input_layers must name exactly one layer (one-input models only)");
      goto done;
    }
    tl_layer dummy = { .name = (char *)"model", .cls = (char *)cls };
    int k = inbound_ref(&ix, &dummy, il->child, "input_layers", e);
    if (k < 0) { rc = OE_EINVAL; goto done; }
    if (m->layers[k].kind != TL_INPUT) { rc = lfail(e, &m->layers[k], "named in input_layers but not an InputLayer"); goto done; }
    m->input = k;
    for (int i = 0; i < n; i++)
      if (m->layers[i].kind == TL_INPUT && i != k) { rc = lfail(e, &m->layers[i], "an input layer not in input_layers"); goto done; }
    if (!ol || ol->type != OE_JSON_ARRAY || ol->n < 1 || ol->n > 64) {
      rc = oe_fail(e, OE_EINVAL, "output_layers must name 1 to 64 layers");
      goto done;
    }
    m->outputs = malloc(sizeof(int) * ol->n);
    if (!m->outputs) { rc = oe_fail(e, OE_ENOMEM, "out of memory"); goto done; }
    for (const oe_jnode *ref = ol->child; ref; ref = ref->next) {
      int o = inbound_ref(&ix, &dummy, ref, "output_layers", e);
      if (o < 0) { rc = OE_EINVAL; goto done; }
      m->outputs[m->n_outputs++] = o;
    }
  }
  /* arity */
  for (int i = 0; i < n; i++) {
    tl_layer *l = &m->layers[i];
    if (l->kind == TL_ADD ? l->n_in < 2 : (l->kind != TL_INPUT && l->n_in != 1)) {
      rc = lfail(e, l, l->kind == TL_ADD ? "Add needs at least two inputs" : "takes one input, %d given", l->n_in);
      goto done;
    }
    for (int k = 0; k < l->n_in; k++) m->layers[l->in[k]].n_consumers++;
  }
  rc = order_layers(m, e);
  if (rc) goto done;
  for (int i = 0; i < n; i++) {
    tl_layer *l = &m->layers[i];
    l->alias = l->kind == TL_IDENTITY ? m->layers[l->in[0]].alias : i;
    l->output_of = i;
  }
done:
  free(idx);
  free(raw);
  return rc;
}

/* ---- manifest ---- */
static int cmp_weight(const void *a, const void *b) {
  return strcmp(((const tl_weight *)a)->name, ((const tl_weight *)b)->name);
}

static int parse_manifest(const oe_jnode *man, tl_weight **wout, int *nw_out, tl_group **gout, int *ng_out, oe_err *e) {
  if (!man || man->type != OE_JSON_ARRAY) return oe_fail(e, OE_EINVAL, "no weightsManifest list");
  size_t nw = 0;
  if (man->n > MAX_PATHS) return oe_fail(e, OE_EINVAL, "weightsManifest: too many groups (%zu)", man->n);
  for (const oe_jnode *g = man->child; g; g = g->next) {
    const oe_jnode *ws = oe_jget(g, "weights");
    if (g->type != OE_JSON_OBJECT || !ws || ws->type != OE_JSON_ARRAY)
      return oe_fail(e, OE_EINVAL, "weightsManifest: every group must be an object with a weights list");
    nw += ws->n;
    if (nw > MAX_WEIGHTS) return oe_fail(e, OE_EINVAL, "weightsManifest: more than %d weights", MAX_WEIGHTS);
  }
  tl_weight *w = calloc(nw ? nw : 1, sizeof *w);
  tl_group *gs = calloc(man->n ? man->n : 1, sizeof *gs);
  if (!w || !gs) { free(w); free(gs); return oe_fail(e, OE_ENOMEM, "out of memory for the manifest"); }
  int gi = 0;
  size_t k = 0;
  size_t npaths = 0;
  for (const oe_jnode *g = man->child; g; g = g->next, gi++) {
    const oe_jnode *ps = oe_jget(g, "paths");
    if (!ps || ps->type != OE_JSON_ARRAY) { free(w); free(gs); return oe_fail(e, OE_EINVAL, "weightsManifest group %d: no paths list", gi + 1); }
    npaths += ps->n;
    if (npaths > MAX_PATHS) { free(w); free(gs); return oe_fail(e, OE_EINVAL, "weightsManifest: too many paths"); }
    gs[gi].paths = calloc(ps->n ? ps->n : 1, sizeof(char *));
    if (!gs[gi].paths) goto oom;
    for (const oe_jnode *p = ps->child; p; p = p->next) {
      const char *s = oe_jstr(p);
      if (!s || !*s || s[0] == '/' || strstr(s, "..")) {
        for (int j = 0; j <= gi; j++) free((void *)gs[j].paths);
        free(w); free(gs);
        return oe_fail(e, OE_EINVAL, "weightsManifest group %d: a path must be a relative file name inside the model's folder", gi + 1);
      }
      gs[gi].paths[gs[gi].n_paths++] = s;
    }
    uint64_t off = 0;
    for (const oe_jnode *wn = oe_jget(g, "weights")->child; wn; wn = wn->next, k++) {
      tl_weight *t = &w[k];
      char b[96];
      t->group = gi;
      t->name = oe_jstr(oe_jget(wn, "name"));
      if (!t->name) { oe_fail(e, OE_EINVAL, "weightsManifest group %d: weight %zu has no name", gi + 1, k + 1); goto bad; }
      oe_escape(t->name, strlen(t->name), b, sizeof b);
      const oe_jnode *sh = oe_jget(wn, "shape");
      if (!sh || sh->type != OE_JSON_ARRAY || sh->n > TL_MAX_RANK) { oe_fail(e, OE_EINVAL, "weight '%s': shape must be a list of at most %d sizes", b, TL_MAX_RANK); goto bad; }
      t->numel = 1;
      for (const oe_jnode *d = sh->child; d; d = d->next) {
        if (d->type != OE_JSON_NUMBER || !d->is_int || d->ival < 0 || d->ival > (INT64_C(1) << 32)) {
          oe_fail(e, OE_EINVAL, "weight '%s': shape entries must be sizes in 0..2^32", b);
          goto bad;
        }
        t->shape[t->ndim++] = d->ival;
        if (d->ival && t->numel > (INT64_C(1) << 34) / d->ival) { oe_fail(e, OE_EINVAL, "weight '%s': more than 2^34 elements", b); goto bad; }
        t->numel *= d->ival;
      }
      const char *dt = oe_jstr(oe_jget(wn, "dtype"));
      if (!dt || strcmp(dt, "float32")) { oe_fail(e, OE_EINVAL, "weight '%s': dtype must be float32", b); goto bad; }
      int esize = 4;
      const oe_jnode *q = oe_jget(wn, "quantization");
      if (!oe_jnull(q)) {
        const char *qd = oe_jstr(oe_jget(q, "dtype"));
        if (!qd) { oe_fail(e, OE_EINVAL, "weight '%s': quantization without a dtype", b); goto bad; }
        if (!strcmp(qd, "uint8")) { t->qdtype = 1; esize = 1; }
        else if (!strcmp(qd, "uint16")) { t->qdtype = 2; esize = 2; }
        else if (!strcmp(qd, "float16")) { t->qdtype = 3; esize = 2; }
        else { oe_fail(e, OE_EINVAL, "weight '%s': quantization dtype must be uint8, uint16 or float16", b); goto bad; }
        if (t->qdtype != 3) {
          const oe_jnode *mn = oe_jget(q, "min"), *sc = oe_jget(q, "scale");
          if (!mn || mn->type != OE_JSON_NUMBER || !isfinite(mn->num) || !sc || sc->type != OE_JSON_NUMBER ||
              !isfinite(sc->num)) {
            oe_fail(e, OE_EINVAL, "weight '%s': %s quantization needs finite min and scale", b, qd);
            goto bad;
          }
          t->qmin = mn->num;
          t->qscale = sc->num;
        }
      }
      t->offset = off;
      t->bytes = (uint64_t)t->numel * (uint64_t)esize;
      off += t->bytes;
    }
    gs[gi].bytes = off;
  }
  qsort(w, nw, sizeof *w, cmp_weight);
  for (size_t i = 1; i < nw; i++)
    if (!strcmp(w[i].name, w[i - 1].name)) {
      char b[96];
      oe_fail(e, OE_EINVAL, "weightsManifest: weight '%s' appears twice", oe_escape(w[i].name, strlen(w[i].name), b, sizeof b));
      goto bad;
    }
  *wout = w;
  *nw_out = (int)nw;
  *gout = gs;
  *ng_out = (int)man->n;
  return OE_OK;
oom:
  oe_fail(e, OE_ENOMEM, "out of memory for the manifest");
bad:
  for (size_t j = 0; j < man->n; j++) free((void *)gs[j].paths);
  free(gs);
  free(w);
  return e->msg[0] ? OE_EINVAL : OE_ENOMEM;
}

/* ---- weights each layer needs: names and expected shapes ---- */
static tl_weight *find_weight(tl_weight *w, int nw, const char *layer, const char *param) {
  char key[600];
  snprintf(key, sizeof key, "%s/%s", layer, param);
  tl_weight probe = { .name = key };
  return bsearch(&probe, w, (size_t)nw, sizeof *w, cmp_weight);
}

static int need_weight(const tl_layer *l, tl_weight *w, int nw, const char *param, int ndim, const int64_t *shape,
                       tl_weight **out, oe_err *e) {
  tl_weight *t = find_weight(w, nw, l->name, param);
  if (!t) return lfail(e, l, "weight '%s/%s' is not in the manifest", l->name, param);
  int ok = t->ndim == ndim;
  for (int k = 0; ok && k < ndim; k++) ok = shape[k] < 0 || t->shape[k] == shape[k];
  if (!ok) {
    char got[128] = "(", want[128] = "(";
    for (int k = 0; k < t->ndim; k++)
      snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? ", " : "", (long long)t->shape[k]);
    for (int k = 0; k < ndim; k++)
      snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s%lld", k ? ", " : "", shape[k] < 0 ? "?" : "",
               (long long)(shape[k] < 0 ? 0 : shape[k]));
    return lfail(e, l, "weight '%s/%s' has shape %s), expected %s)", l->name, param, got, want);
  }
  if (t->used) return lfail(e, l, "weight '%s/%s' used twice", l->name, param);
  t->used = 1;
  *out = t;
  return OE_OK;
}

/* bind every layer's weights (refs[i].r[0..3] per layer) and set the sizes they imply */

static int bind_weights(oe_tfjs_model *m, tl_weight *w, int nw, tl_refs *refs, oe_err *e) {
  for (int i = 0; i < m->n_layers; i++) {
    tl_layer *l = &m->layers[i];
    tl_refs *r = &refs[i];
    if (l->kind == TL_CONV) {
      int64_t ks[4] = { l->kh, l->kw, -1, l->depthwise ? l->depth_mult : l->filters };
      if (need_weight(l, w, nw, l->depthwise ? "depthwise_kernel" : "kernel", 4, ks, &r->r[0], e)) return OE_EINVAL;
      if (l->depthwise) {
        l->cin = r->r[0]->shape[2];
        l->groups = l->cin;
        if (l->cin < 1 || l->depth_mult > (INT64_C(1) << 24) / l->cin) return lfail(e, l, "too many channels");
        l->filters = l->cin * l->depth_mult;
      } else {
        if (r->r[0]->shape[2] < 1 || r->r[0]->shape[2] > (INT64_C(1) << 24) / l->groups) return lfail(e, l, "bad input channels");
        l->cin = r->r[0]->shape[2] * l->groups;
      }
      if (l->use_bias && need_weight(l, w, nw, "bias", 1, &l->filters, &r->r[1], e)) return OE_EINVAL;
    } else if (l->kind == TL_DENSE) {
      int64_t ks[2] = { -1, l->units };
      if (need_weight(l, w, nw, "kernel", 2, ks, &r->r[0], e)) return OE_EINVAL;
      l->in_units = r->r[0]->shape[0];
      if (l->in_units < 1) return lfail(e, l, "kernel with no input units");
      if (l->use_bias && need_weight(l, w, nw, "bias", 1, &l->units, &r->r[1], e)) return OE_EINVAL;
    } else if (l->kind == TL_BN) {
      static const char *const names[4] = { "gamma", "beta", "moving_mean", "moving_variance" };
      int64_t c = -1;
      for (int k = 0; k < 4; k++) {
        if ((k == 0 && !l->scale) || (k == 1 && !l->center)) continue;
        if (need_weight(l, w, nw, names[k], 1, &c, &r->r[k], e)) return OE_EINVAL;
        c = r->r[k]->shape[0];
      }
      if (c < 1) return lfail(e, l, "no channels");
      l->channels = c;
    }
  }
  for (int i = 0; i < nw; i++)
    if (!w[i].used) {
      char b[96];
      return oe_fail(e, OE_EINVAL, "weightsManifest: weight '%s' belongs to no layer",
                     oe_escape(w[i].name, strlen(w[i].name), b, sizeof b));
    }
  return OE_OK;
}

/* root: the parsed model.json. On success m holds the layers; refs (per layer) point into
 * *weights, which the caller frees (with the groups' path lists). */
int tl_parse(oe_tfjs_model *m, const oe_jnode *root, tl_weight **weights, int *n_weights, tl_group **groups,
             int *n_groups, tl_refs **refs_out, oe_err *e) {
  if (!root || root->type != OE_JSON_OBJECT) return oe_fail(e, OE_EINVAL, "not a JSON object");
  const oe_jnode *topo = oe_jget(root, "modelTopology");
  if (!topo || topo->type != OE_JSON_OBJECT) return oe_fail(e, OE_EINVAL, "no modelTopology object (not a TF.js layers model)");
  const char *fmt = oe_jstr(oe_jget(root, "format"));
  if (fmt && strcmp(fmt, "layers-model")) {
    char b[64];
    return oe_fail(e, OE_EINVAL, "format '%s' is not a layers model", oe_escape(fmt, strlen(fmt), b, sizeof b));
  }
  int rc = parse_topology(m, topo, e);
  if (rc) return rc;
  rc = parse_manifest(oe_jget(root, "weightsManifest"), weights, n_weights, groups, n_groups, e);
  if (rc) return rc;
  tl_refs *refs = calloc((size_t)m->n_layers, sizeof *refs);
  if (!refs) return oe_fail(e, OE_ENOMEM, "out of memory");
  rc = bind_weights(m, *weights, *n_weights, refs, e);
  if (rc) { free(refs); return rc; }
  *refs_out = refs;
  return OE_OK;
}
