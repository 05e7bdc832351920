/* run.c: planning (shapes, which layers run, buffer slots reused by liveness) and execution
 * of a loaded TF.js model on the project's kernels. Activations of per-sample rank 3 (H, W, C)
 * are stored NCHW; every other rank in Keras order. See tfjs.h. */
#include "internal.h"
#include "../core/util.h"
#include "../ops/conv.h"
#include "../ops/ops.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

typedef struct tl_plan {
  int64_t N;
  int x_rank, nchw;
  int64_t x_shape[TL_MAX_RANK + 1];
  int *rank;                 /* per layer: per-sample rank (Keras order) */
  int64_t (*dims)[TL_MAX_RANK];
  int64_t *per;              /* per-sample element count */
  uint8_t *run;              /* per layer: a step that runs */
  int *slot;                 /* per step layer: its output slot */
  size_t *slot_need;         /* floats per slot */
  int n_slots;
  int n_out;
  int out_src[64], out_layer[64];
  size_t scratch;            /* floats */
  oe_conv_shape *conv;       /* per layer: conv / pool geometry */
  int *pad_of;               /* per convolution: the ZeroPadding2D folded into its pads, or -1 */
  int nthreads;              /* threads the scratch was sized for */
} tl_plan;

void tl_plan_free(oe_tfjs_model *m) {
  tl_plan *p = m->plan;
  if (!p) return;
  free(p->rank); free(p->dims); free(p->per); free(p->run); free(p->slot); free(p->slot_need); free(p->conv);
  free(p->pad_of);
  free(p);
  m->plan = NULL;
}

static int pfail(oe_err *e, const tl_layer *l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pfail(oe_err *e, const tl_layer *l, const char *fmt, ...) {
  char what[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return oe_fail(e, OE_EINVAL, "layer '%s' (%s): %s", l->name, l->cls, what);
}

static const char *shape_str(int r, const int64_t *d, char *buf, size_t n) {
  size_t at = (size_t)snprintf(buf, n, "(batch");
  for (int k = 0; k < r && at < n; k++) at += (size_t)snprintf(buf + at, n - at, ", %lld", (long long)d[k]);
  if (at < n) snprintf(buf + at, n - at, ")");
  return buf;
}

/* the step layer whose output holds layer i's value, or -1 when folded away */
static int source_of(const oe_tfjs_model *m, int i) {
  i = m->layers[i].alias; /* identity layers: the layer they read through to */
  const tl_layer *l = &m->layers[i];
  if (l->folded_into >= 0) return m->layers[l->folded_into].output_of == i ? l->folded_into : -1;
  if ((l->kind == TL_CONV || l->kind == TL_DENSE) && l->output_of != i) return -1;
  return i;
}

static int is_step(const tl_layer *l) { return l->kind != TL_IDENTITY && l->folded_into < 0; }

/* the layer feeding input k of step i (a ZeroPadding2D folded into a convolution's pads is
 * skipped: the convolution reads the padding's input), and the step holding its value */
static int input_layer(const oe_tfjs_model *m, const tl_plan *p, int i, int k) {
  if (k == 0 && p->pad_of[i] >= 0) return m->layers[p->pad_of[i]].in[0];
  return m->layers[i].in[k];
}
static int input_src(const oe_tfjs_model *m, const tl_plan *p, int i, int k) {
  return source_of(m, input_layer(m, p, i, k));
}

/* TensorFlow's 'same' / 'valid' geometry along one axis */
static void tf_pads(int same, int64_t in, int64_t k, int64_t s, int64_t d, int64_t *p0, int64_t *p1) {
  *p0 = *p1 = 0;
  if (!same) return;
  int64_t out = (in + s - 1) / s, eff = (k - 1) * d + 1;
  int64_t tot = (out - 1) * s + eff - in;
  if (tot < 0) tot = 0;
  *p0 = tot / 2;
  *p1 = tot - *p0;
}

static int checked_numel(const tl_layer *l, int r, const int64_t *d, int64_t N, int64_t *per, oe_err *e) {
  int64_t p = 1;
  for (int k = 0; k < r; k++) {
    if (d[k] < 1) return pfail(e, l, "output dim %d is %lld", k + 1, (long long)d[k]);
    if (p > OE_MAX_NUMEL / d[k]) return pfail(e, l, "the output has more than 2^40 elements per sample");
    p *= d[k];
  }
  if (N > 0 && p > OE_MAX_NUMEL / N) return pfail(e, l, "the output has more than 2^40 elements");
  *per = p;
  return OE_OK;
}

/* output shape of layer i from its inputs' */
static int infer(oe_tfjs_model *m, tl_plan *p, int i, oe_err *e) {
  tl_layer *l = &m->layers[i];
  int *r = &p->rank[i];
  int64_t *d = p->dims[i];
  char b1[160], b2[160];
  if (l->kind == TL_INPUT) {
    *r = p->x_rank - 1;
    for (int k = 0; k < *r; k++) d[k] = p->x_shape[k + 1];
    if (p->nchw) { d[0] = p->x_shape[2]; d[1] = p->x_shape[3]; d[2] = p->x_shape[1]; }
    int ok = *r == l->in_rank;
    for (int k = 0; ok && k < *r; k++) ok = l->in_dims[k] < 0 || l->in_dims[k] == d[k];
    if (!ok) {
      int64_t dd[TL_MAX_RANK];
      for (int k = 0; k < l->in_rank; k++) dd[k] = l->in_dims[k] < 0 ? 0 : l->in_dims[k];
      return pfail(e, l, "the input has shape %s, the model declares %s (0 = any)", shape_str(*r, d, b1, sizeof b1),
                   shape_str(l->in_rank, dd, b2, sizeof b2));
    }
    return checked_numel(l, *r, d, p->N, &p->per[i], e);
  }
  int s0 = input_layer(m, p, i, 0);
  int ri = p->rank[s0];
  const int64_t *di = p->dims[s0];
  switch (l->kind) {
  case TL_CONV:
  case TL_AVGPOOL:
  case TL_MAXPOOL: {
    if (ri != 3) return pfail(e, l, "needs a (batch, H, W, C) input, got %s", shape_str(ri, di, b1, sizeof b1));
    oe_conv_shape *s = &p->conv[i];
    memset(s, 0, sizeof *s);
    s->N = p->N; s->H = di[0]; s->W = di[1]; s->C = di[2];
    s->kh = l->kh; s->kw = l->kw; s->sh = l->sh; s->sw = l->sw;
    s->dh = l->kind == TL_CONV ? l->dh : 1;
    s->dw = l->kind == TL_CONV ? l->dw : 1;
    /* a folded ZeroPadding2D: TF's pads are those of the padded size, plus the explicit ones */
    const int64_t *zp = p->pad_of[i] >= 0 ? m->layers[p->pad_of[i]].pad : NULL;
    tf_pads(l->same, s->H + (zp ? zp[0] + zp[1] : 0), s->kh, s->sh, s->dh, &s->pt, &s->pb);
    tf_pads(l->same, s->W + (zp ? zp[2] + zp[3] : 0), s->kw, s->sw, s->dw, &s->pl, &s->pr);
    if (zp) { s->pt += zp[0]; s->pb += zp[1]; s->pl += zp[2]; s->pr += zp[3]; }
    oe_err ce;
    if (l->kind == TL_CONV) {
      if (s->C != l->cin) return pfail(e, l, "the kernel takes %lld input channels, the input %s has %lld", (long long)l->cin,
                                       shape_str(ri, di, b1, sizeof b1), (long long)s->C);
      s->M = l->filters;
      s->groups = l->groups;
      if (oe_conv_check(s, &ce)) return pfail(e, l, "%s", ce.msg);
    } else {
      s->M = s->C;
      s->groups = 1;
      if (oe_pool_check(s, 0, &ce)) return pfail(e, l, "%s", ce.msg);
    }
    *r = 3;
    d[0] = s->OH; d[1] = s->OW; d[2] = s->M;
    break;
  }
  case TL_BN:
  case TL_ACT:
    *r = ri;
    memcpy(d, di, sizeof(int64_t) * (size_t)ri);
    if (l->kind == TL_BN) {
      if (ri < 1 || di[ri - 1] != l->channels)
        return pfail(e, l, "normalises %lld channels, the input %s has %lld on its last axis", (long long)l->channels,
                     shape_str(ri, di, b1, sizeof b1), (long long)(ri ? di[ri - 1] : 0));
      if (l->target[0] != -1 && l->target[0] != ri) return pfail(e, l, "only the last axis is supported");
    }
    if (l->kind == TL_ACT && !strcmp(l->cls, "Softmax") && l->target[0] != -1 && l->target[0] != ri)
      return pfail(e, l, "softmax along axis %lld of a rank-%d input: only the last axis is supported",
                   (long long)l->target[0], ri + 1);
    break;
  case TL_ADD:
    *r = ri;
    memcpy(d, di, sizeof(int64_t) * (size_t)ri);
    for (int k = 1; k < l->n_in; k++) {
      int s = l->in[k];
      if (p->rank[s] != ri || memcmp(p->dims[s], di, sizeof(int64_t) * (size_t)ri))
        return pfail(e, l, "input %d has shape %s, input 1 %s", k + 1, shape_str(p->rank[s], p->dims[s], b1, sizeof b1),
                     shape_str(ri, di, b2, sizeof b2));
    }
    break;
  case TL_PAD:
    if (ri != 3) return pfail(e, l, "needs a (batch, H, W, C) input, got %s", shape_str(ri, di, b1, sizeof b1));
    *r = 3;
    d[0] = di[0] + l->pad[0] + l->pad[1];
    d[1] = di[1] + l->pad[2] + l->pad[3];
    d[2] = di[2];
    break;
  case TL_GAP:
  case TL_GMP:
    if (ri != 3) return pfail(e, l, "needs a (batch, H, W, C) input, got %s", shape_str(ri, di, b1, sizeof b1));
    if (l->keepdims) { *r = 3; d[0] = d[1] = 1; d[2] = di[2]; }
    else { *r = 1; d[0] = di[2]; }
    break;
  case TL_DENSE:
    if (ri < 1 || ri > 3 || di[ri - 1] != l->in_units)
      return pfail(e, l, "the kernel takes %lld inputs on the last axis, the input is %s", (long long)l->in_units,
                   shape_str(ri, di, b1, sizeof b1));
    *r = ri;
    memcpy(d, di, sizeof(int64_t) * (size_t)ri);
    d[ri - 1] = l->units;
    break;
  case TL_FLATTEN:
    *r = 1;
    d[0] = p->per[s0];
    break;
  case TL_RESHAPE: {
    int64_t known = 1;
    int neg = -1;
    for (int k = 0; k < l->target_n; k++) {
      if (l->target[k] < 0) { neg = k; continue; }
      if (known > OE_MAX_NUMEL / l->target[k]) return pfail(e, l, "target_shape too large");
      known *= l->target[k];
    }
    *r = l->target_n;
    memcpy(d, l->target, sizeof(int64_t) * (size_t)l->target_n);
    if (neg >= 0) {
      if (p->per[s0] % known) return pfail(e, l, "cannot reshape %lld elements into target_shape", (long long)p->per[s0]);
      d[neg] = p->per[s0] / known;
    }
    int64_t tot = 1;
    for (int k = 0; k < *r; k++) tot *= d[k];
    if (tot != p->per[s0])
      return pfail(e, l, "target_shape holds %lld elements, the input %s has %lld", (long long)tot,
                   shape_str(ri, di, b1, sizeof b1), (long long)p->per[s0]);
    break;
  }
  default: /* identity */
    *r = ri;
    memcpy(d, di, sizeof(int64_t) * (size_t)ri);
  }
  return checked_numel(l, *r, d, p->N, &p->per[i], e);
}

/* ---- planning ---- */
/* the output shapes of plan p */
static void fill_out_shapes(const tl_plan *p, int out_ndim[], int64_t out_shape[][8]) {
  for (int k = 0; k < p->n_out; k++) {
    int li = p->out_layer[k];
    int r = p->rank[li];
    out_ndim[k] = r + 1;
    out_shape[k][0] = p->N;
    for (int q = 0; q < r; q++) out_shape[k][q + 1] = p->dims[li][q];
  }
}

/* the last plan was made for this input shape, layout and outputs (and thread count) */
static int same_plan(const tl_plan *p, int ndim, const int64_t *x_shape, int nchw, const int *outs, int n_out) {
  if (!p || p->x_rank != ndim || p->nchw != nchw || p->n_out != n_out || p->nthreads != oe_get_num_threads()) return 0;
  if (memcmp(p->x_shape, x_shape, sizeof(int64_t) * (size_t)ndim)) return 0;
  for (int k = 0; k < n_out; k++)
    if (p->out_layer[k] != outs[k]) return 0;
  return 1;
}

int oe_tfjs_plan(oe_tfjs_model *m, int ndim, const int64_t *x_shape, int nchw, const int *outs, int n_out,
                 int out_ndim[], int64_t out_shape[][8], oe_err *e) {
  if (n_out >= 1 && n_out <= 64 && ndim >= 2 && ndim <= TL_MAX_RANK + 1 && same_plan(m->plan, ndim, x_shape, nchw, outs, n_out)) {
    fill_out_shapes(m->plan, out_ndim, out_shape);
    return OE_OK;
  }
  tl_plan_free(m);
  int n = m->n_layers;
  if (ndim < 2 || ndim > TL_MAX_RANK + 1) return oe_fail(e, OE_EINVAL, "%s: the input must have 2 to %d dims, got %d", m->path, TL_MAX_RANK + 1, ndim);
  if (nchw && ndim != 4) return oe_fail(e, OE_EINVAL, "%s: an NCHW input must have 4 dims", m->path);
  if (n_out < 1 || n_out > 64) return oe_fail(e, OE_EINVAL, "%s: 1 to 64 outputs may be asked for", m->path);
  for (int k = 0; k < ndim; k++)
    if (x_shape[k] < 1) return oe_fail(e, OE_EINVAL, "%s: input dim %d is %lld", m->path, k + 1, (long long)x_shape[k]);
  tl_plan *p = calloc(1, sizeof *p);
  if (!p) return oe_fail(e, OE_ENOMEM, "out of memory");
  m->plan = p;
  p->rank = calloc((size_t)n, sizeof(int));
  p->dims = calloc((size_t)n, sizeof *p->dims);
  p->per = calloc((size_t)n, sizeof(int64_t));
  p->run = calloc((size_t)n, 1);
  p->slot = malloc(sizeof(int) * (size_t)n);
  p->slot_need = calloc((size_t)n + 1, sizeof(size_t));
  p->conv = calloc((size_t)n, sizeof(oe_conv_shape));
  p->pad_of = malloc(sizeof(int) * (size_t)n);
  int *last = malloc(sizeof(int) * (size_t)n), *free_slots = malloc(sizeof(int) * ((size_t)n + 1));
  uint8_t *need = calloc((size_t)n, 1);
  int rc = OE_OK;
  if (!p->rank || !p->dims || !p->per || !p->run || !p->slot || !p->slot_need || !p->conv || !p->pad_of || !last || !free_slots || !need) {
    rc = oe_fail(e, OE_ENOMEM, "out of memory");
    goto done;
  }
  p->N = x_shape[0];
  p->x_rank = ndim;
  p->nchw = nchw;
  memcpy(p->x_shape, x_shape, sizeof(int64_t) * (size_t)ndim);
  p->n_out = n_out;
  for (int k = 0; k < n_out; k++) {
    if (outs[k] < 0 || outs[k] >= n) { rc = oe_fail(e, OE_EINVAL, "%s: output %d is not a layer", m->path, k + 1); goto done; }
    int s = source_of(m, outs[k]);
    if (s < 0) {
      const tl_layer *l = &m->layers[outs[k]];
      int f = l->folded_into >= 0 ? l->folded_into : outs[k];
      rc = oe_fail(e, OE_EINVAL, "%s: layer '%s' (%s) was folded at load with '%s' into one kernel and its own output is "
                   "not kept (load with fold = false to keep every layer's output)", m->path, l->name, l->cls,
                   m->layers[m->layers[f].output_of].name);
      goto done;
    }
    p->out_layer[k] = outs[k];
    p->out_src[k] = s;
    need[s] = 1;
  }
  /* a ZeroPadding2D read only by a convolution (and not asked for) becomes the convolution's pads */
  for (int i = 0; i < n; i++) {
    const tl_layer *l = &m->layers[i];
    p->pad_of[i] = -1;
    if (l->kind != TL_CONV || !is_step(l)) continue;
    int q = l->in[0];
    if (m->layers[q].kind != TL_PAD || m->layers[q].n_consumers != 1) continue;
    int asked = 0;
    for (int k = 0; k < n_out; k++) asked |= p->out_src[k] == q;
    if (!asked) p->pad_of[i] = q;
  }
  /* which steps run: back from the outputs (steps read their inputs' sources) */
  for (int i = n - 1; i >= 0; i--) {
    if (!need[i]) continue;
    tl_layer *l = &m->layers[i];
    p->run[i] = 1;
    for (int k = 0; k < l->n_in; k++) need[input_src(m, p, i, k)] = 1;
  }
  if (!p->run[m->input]) { rc = oe_fail(e, OE_EINVAL, "%s: the outputs asked for do not depend on the input", m->path); goto done; }
  /* shapes along the layers that run, and the layers folded into them or reading through */
  for (int i = 0; i < n; i++) {
    tl_layer *l = &m->layers[i];
    int s = is_step(l) ? i : source_of(m, i);
    if (!is_step(l) && s < 0) continue;
    if (is_step(l) && !p->run[i]) continue;
    if (!is_step(l) && !p->run[s]) continue;
    if (is_step(l)) {
      if ((rc = infer(m, p, i, e))) { oe_err in = *e; oe_fail(e, rc, "%s: %s", m->path, in.msg); goto done; }
    } else {
      p->rank[i] = p->rank[s];
      memcpy(p->dims[i], p->dims[s], sizeof p->dims[i]);
      p->per[i] = p->per[s];
    }
  }
  /* folded chains: the head's shape is its chain's */
  /* liveness: last step reading each step's output */
  for (int i = 0; i < n; i++) last[i] = p->run[i] ? i : -1;
  for (int i = 0; i < n; i++) {
    if (!p->run[i]) continue;
    for (int k = 0; k < m->layers[i].n_in; k++) {
      int s = input_src(m, p, i, k);
      if (last[s] < i) last[s] = i;
    }
  }
  for (int k = 0; k < n_out; k++) last[p->out_src[k]] = n; /* kept to the end */
  int nfree = 0;
  p->n_slots = 0;
  int nthreads = oe_get_num_threads();
  p->nthreads = nthreads;
  if (nthreads < 1) nthreads = 1;
  for (int i = 0; i < n; i++) {
    if (!p->run[i]) continue;
    size_t want = (size_t)(p->N * p->per[i]);
    int best = -1;
    for (int k = 0; k < nfree; k++) {
      int sl = free_slots[k];
      if (best < 0) { best = k; continue; }
      size_t have = p->slot_need[sl], bh = p->slot_need[free_slots[best]];
      int fits = have >= want, bfits = bh >= want;
      if ((fits && (!bfits || have < bh)) || (!fits && !bfits && have > bh)) best = k;
    }
    int sl;
    if (best >= 0) { sl = free_slots[best]; free_slots[best] = free_slots[--nfree]; }
    else sl = p->n_slots++;
    if (p->slot_need[sl] < want) p->slot_need[sl] = want;
    p->slot[i] = sl;
    if (m->layers[i].kind == TL_CONV) {
      size_t sc = oe_conv_scratch_floats(&p->conv[i], nthreads);
      if (sc > p->scratch) p->scratch = sc;
    }
    /* release what this step read for the last time (after its output took a slot) */
    for (int k = 0; k < m->layers[i].n_in; k++) {
      int s = input_src(m, p, i, k);
      if (last[s] == i) {
        int dup = 0;
        for (int q = 0; q < nfree; q++) dup |= free_slots[q] == p->slot[s];
        if (!dup) free_slots[nfree++] = p->slot[s];
        last[s] = -2;
      }
    }
    if (last[i] == i) free_slots[nfree++] = sl; /* read by nothing */
  }
  fill_out_shapes(p, out_ndim, out_shape);
done:
  free(last);
  free(free_slots);
  free(need);
  if (rc) tl_plan_free(m);
  return rc;
}

/* ---- kernels ---- */
static void make_post(int act, float hi, oe_post *po) {
  po->n = 0;
  if (act == TA_RELU) po->op[po->n++].kind = OE_POST_RELU;
  else if (act == TA_CLIP) { po->op[po->n].kind = OE_POST_CLIP; po->op[po->n].a = 0; po->op[po->n].b = hi; po->n++; }
  else if (act == TA_SIGMOID) po->op[po->n++].kind = OE_POST_SIGMOID;
  else if (act == TA_TANH) po->op[po->n++].kind = OE_POST_TANH;
}

/* softmax along an axis of length n with stride inner, over outer x inner lines */
static void softmax_axis(float *y, int64_t outer, int64_t n, int64_t inner) {
#pragma omp parallel for schedule(static) if (outer * n * inner > 65536)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t q = 0; q < inner; q++) {
      float *v = y + o * n * inner + q;
      float mx = v[0];
      for (int64_t k = 1; k < n; k++) if (v[k * inner] > mx) mx = v[k * inner];
      double sum = 0;
      for (int64_t k = 0; k < n; k++) { float t = expf(v[k * inner] - mx); v[k * inner] = t; sum += t; }
      float s = (float)sum;
      for (int64_t k = 0; k < n; k++) v[k * inner] /= s;
    }
}

/* activation (not folded into a kernel's post-op) applied in place to a layer's value */
static void apply_act(int act, float hi, float *y, int64_t N, int rank, const int64_t *d, int64_t per) {
  if (act == TA_LINEAR) return;
  if (act == TA_SOFTMAX) {
    if (rank == 3) softmax_axis(y, N, d[2], d[0] * d[1]);
    else softmax_axis(y, N * (per / d[rank - 1]), d[rank - 1], 1);
    return;
  }
  oe_post po;
  make_post(act, hi, &po);
  oe_post_apply(&po, y, N * per);
}

/* HWC-ordered flat index of a stored value: rank 3 is stored CHW */
static void to_keras_order(const float *x, float *y, int64_t N, int rank, const int64_t *d, int64_t per) {
  if (rank != 3) { memcpy(y, x, sizeof(float) * (size_t)(N * per)); return; }
  int64_t H = d[0], W = d[1], C = d[2], HW = H * W;
#pragma omp parallel for schedule(static) if (N * per > 65536)
  for (int64_t b = 0; b < N; b++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t q = 0; q < HW; q++) y[b * per + q * C + c] = x[b * per + c * HW + q];
}
static void from_keras_order(const float *x, float *y, int64_t N, int rank, const int64_t *d, int64_t per) {
  if (rank != 3) { memcpy(y, x, sizeof(float) * (size_t)(N * per)); return; }
  int64_t H = d[0], W = d[1], C = d[2], HW = H * W;
#pragma omp parallel for schedule(static) if (N * per > 65536)
  for (int64_t b = 0; b < N; b++)
    for (int64_t q = 0; q < HW; q++)
      for (int64_t c = 0; c < C; c++) y[b * per + c * HW + q] = x[b * per + q * C + c];
}

static int grow_slots(oe_tfjs_model *m, tl_plan *p, oe_err *e) {
  if (m->n_slots < p->n_slots) {
    tl_slot *ns = realloc(m->slots, sizeof(tl_slot) * (size_t)p->n_slots);
    if (!ns) return oe_fail(e, OE_ENOMEM, "out of memory");
    for (int k = m->n_slots; k < p->n_slots; k++) ns[k].buf = NULL, ns[k].cap = 0;
    m->slots = ns;
    m->n_slots = p->n_slots;
  }
  for (int k = 0; k < p->n_slots; k++) {
    size_t want = p->slot_need[k];
    if (m->slots[k].cap >= want) continue;
    free(m->slots[k].buf);
    m->slots[k].cap = 0;
    size_t bytes = ((want * sizeof(float)) + 63) & ~(size_t)63;
    m->slots[k].buf = aligned_alloc(64, bytes ? bytes : 64);
    if (!m->slots[k].buf) return oe_fail(e, OE_ENOMEM, "%s: out of memory for %zu bytes of activations", m->path, bytes);
    m->slots[k].cap = want;
  }
  if (m->scratch_cap < p->scratch) {
    free(m->scratch);
    m->scratch_cap = 0;
    m->scratch = aligned_alloc(64, ((p->scratch * sizeof(float)) + 63) & ~(size_t)63);
    if (!m->scratch) return oe_fail(e, OE_ENOMEM, "%s: out of memory for convolution scratch", m->path);
    m->scratch_cap = p->scratch;
  }
  return OE_OK;
}

size_t oe_tfjs_plan_bytes(const oe_tfjs_model *m) {
  const tl_plan *p = m->plan;
  if (!p) return 0;
  size_t b = p->scratch * sizeof(float);
  for (int k = 0; k < p->n_slots; k++) b += p->slot_need[k] * sizeof(float);
  return b;
}

size_t oe_tfjs_arena_bytes(const oe_tfjs_model *m) {
  size_t b = m->scratch_cap * sizeof(float);
  for (int k = 0; k < m->n_slots; k++) b += m->slots[k].cap * sizeof(float);
  return b;
}

static void run_dense(const tl_layer *l, const float *x, float *y, int64_t N, int rank, const int64_t *di) {
  int64_t in = l->in_units, U = l->units;
  oe_post po;
  make_post(l->act, l->act_hi, &po);
  if (rank == 3) {
    /* per image: y (U, HW) = k^T (U, in) x (in, HW) */
    int64_t HW = di[0] * di[1];
    for (int64_t b = 0; b < N; b++) {
      oe_gemm(1, 0, U, HW, in, 1.0f, l->w, U, x + b * in * HW, HW, 0.0f, y + b * U * HW, HW);
      oe_post_bias_rows(&po, l->b, y + b * U * HW, U, HW);
    }
    return;
  }
  int64_t rows = N * (rank == 2 ? di[0] : 1);
  oe_gemm(0, 0, rows, U, in, 1.0f, x, in, l->w, U, 0.0f, y, U);
  if (l->b)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t u = 0; u < U; u++) y[r * U + u] += l->b[u];
  oe_post_apply(&po, y, rows * U);
}

int oe_tfjs_execute(oe_tfjs_model *m, const float *x, float *const *y, oe_err *e) {
  tl_plan *p = m->plan;
  if (!p) return oe_fail(e, OE_EINVAL, "%s: no plan (oe_tfjs_plan first)", m->path);
  int rc = grow_slots(m, p, e);
  if (rc) return rc;
  int nthreads = p->nthreads < 1 ? 1 : p->nthreads; /* the scratch was sized for these */
  int64_t N = p->N;
  for (int i = 0; i < m->n_layers; i++) {
    if (!p->run[i]) continue;
    tl_layer *l = &m->layers[i];
    float *out = m->slots[p->slot[i]].buf;
    int r = p->rank[i];
    const int64_t *d = p->dims[i];
    int64_t per = p->per[i];
    const float *in0 = NULL;
    int s0 = -1;
    if (l->n_in) {
      s0 = input_src(m, p, i, 0);
      in0 = m->slots[p->slot[s0]].buf;
    }
    switch (l->kind) {
    case TL_INPUT:
      if (p->nchw || r != 3) memcpy(out, x, sizeof(float) * (size_t)(N * per));
      else from_keras_order(x, out, N, r, d, per);
      break;
    case TL_CONV: {
      oe_post po;
      make_post(l->act, l->act_hi, &po);
      oe_conv_forward(&p->conv[i], in0, l->w, l->b, out, &po, m->scratch, nthreads);
      if (l->act == TA_SOFTMAX) apply_act(TA_SOFTMAX, 0, out, N, r, d, per);
      break;
    }
    case TL_AVGPOOL: oe_avgpool_forward(&p->conv[i], in0, out, 0, nthreads); break;
    case TL_MAXPOOL: oe_maxpool_forward(&p->conv[i], in0, out, nthreads); break;
    case TL_BN: {
      int64_t C = l->channels, inner = r == 3 ? d[0] * d[1] : 1, outer = N * per / (C * inner);
      for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < C; c++) {
          const float *xs = in0 + (o * C + c) * inner;
          float *ys = out + (o * C + c) * inner, sc = l->bn_scale[c], sh = l->bn_shift[c];
          for (int64_t q = 0; q < inner; q++) ys[q] = xs[q] * sc + sh;
        }
      break;
    }
    case TL_ACT:
      memcpy(out, in0, sizeof(float) * (size_t)(N * per));
      apply_act(l->act, l->act_hi, out, N, r, d, per);
      break;
    case TL_ADD: {
      int64_t tot = N * per;
      const float *b = m->slots[p->slot[input_src(m, p, i, 1)]].buf;
      for (int64_t q = 0; q < tot; q++) out[q] = in0[q] + b[q];
      for (int k = 2; k < l->n_in; k++) {
        const float *c = m->slots[p->slot[input_src(m, p, i, k)]].buf;
        for (int64_t q = 0; q < tot; q++) out[q] += c[q];
      }
      break;
    }
    case TL_PAD: {
      const int64_t *di = p->dims[s0];
      int64_t H = di[0], W = di[1], C = di[2], OH = d[0], OW = d[1];
      memset(out, 0, sizeof(float) * (size_t)(N * per));
      for (int64_t b = 0; b < N; b++)
        for (int64_t c = 0; c < C; c++)
          for (int64_t h = 0; h < H; h++)
            memcpy(out + ((b * C + c) * OH + h + l->pad[0]) * OW + l->pad[2], in0 + ((b * C + c) * H + h) * W,
                   sizeof(float) * (size_t)W);
      break;
    }
    case TL_GAP:
    case TL_GMP: {
      const int64_t *di = p->dims[s0];
      int64_t C = di[2], HW = di[0] * di[1];
      if (l->kind == TL_GAP) oe_global_avgpool(in0, N, C, HW, out, nthreads);
      else
        for (int64_t q = 0; q < N * C; q++) {
          float mx = in0[q * HW];
          for (int64_t k = 1; k < HW; k++) if (in0[q * HW + k] > mx) mx = in0[q * HW + k];
          out[q] = mx;
        }
      break; /* (N, C) is also (N, C, 1, 1) */
    }
    case TL_DENSE:
      run_dense(l, in0, out, N, p->rank[s0], p->dims[s0]);
      if (l->act == TA_SOFTMAX) apply_act(TA_SOFTMAX, 0, out, N, r, d, per);
      break;
    case TL_FLATTEN:
      to_keras_order(in0, out, N, p->rank[s0], p->dims[s0], per);
      break;
    case TL_RESHAPE:
      if (p->rank[s0] == 3 && r == 3) {
        /* through Keras order: the input CHW -> HWC in the output slot's place is not
         * possible in place, so go element by element */
        const int64_t *di = p->dims[s0];
        int64_t HWi = di[0] * di[1], Ci = di[2], HWo = d[0] * d[1], Co = d[2];
        for (int64_t b = 0; b < N; b++)
          for (int64_t f = 0; f < per; f++)
            out[b * per + (f % Co) * HWo + f / Co] = in0[b * per + (f % Ci) * HWi + f / Ci];
      } else if (p->rank[s0] == 3) {
        to_keras_order(in0, out, N, 3, p->dims[s0], per);
      } else {
        from_keras_order(in0, out, N, r, d, per);
      }
      break;
    default:
      break;
    }
  }
  for (int k = 0; k < p->n_out; k++) {
    int li = p->out_layer[k];
    to_keras_order(m->slots[p->slot[p->out_src[k]]].buf, y[k], N, p->rank[li], p->dims[li], p->per[li]);
  }
  return OE_OK;
}

void oe_tfjs_resize_bilinear_ac(const float *src, int sh, int sw, int c, float *dst, int dh, int dw) {
  double rr = dh > 1 ? (double)(sh - 1) / (dh - 1) : (double)sh / dh;
  double cr = dw > 1 ? (double)(sw - 1) / (dw - 1) : (double)sw / dw;
  for (int r = 0; r < dh; r++) {
    double fr = rr * r;
    int r0 = (int)floor(fr), r1 = (int)ceil(fr);
    if (r0 < 0) r0 = 0;
    if (r1 > sh - 1) r1 = sh - 1;
    double rf = fr - r0;
    for (int q = 0; q < dw; q++) {
      double fc = cr * q;
      int c0 = (int)floor(fc), c1 = (int)ceil(fc);
      if (c0 < 0) c0 = 0;
      if (c1 > sw - 1) c1 = sw - 1;
      double cf = fc - c0;
      const float *tl = src + ((size_t)r0 * sw + c0) * c, *tr = src + ((size_t)r0 * sw + c1) * c;
      const float *bl = src + ((size_t)r1 * sw + c0) * c, *br = src + ((size_t)r1 * sw + c1) * c;
      float *o = dst + ((size_t)r * dw + q) * c;
      for (int k = 0; k < c; k++) {
        double top = tl[k] + (tr[k] - (double)tl[k]) * cf;
        double bot = bl[k] + (br[k] - (double)bl[k]) * cf;
        o[k] = (float)(top + (bot - top) * rf);
      }
    }
  }
}

void oe_tfjs_image_input(const uint8_t *src, int h, int w, int c, float *dst, int size, float *scratch) {
  const int same = h == size && w == size;
  float *x = same ? dst : scratch; /* (h, w, 3) = src / 255, gray repeated */
  const size_t n = (size_t)h * (size_t)w;
  for (size_t i = 0; i < n; i++)
    for (int k = 0; k < 3; k++) x[i * 3 + k] = (float)src[i * (size_t)c + (c == 1 ? 0 : (size_t)k)] / 255.0f;
  if (!same) oe_tfjs_resize_bilinear_ac(x, h, w, 3, dst, size, size);
}
