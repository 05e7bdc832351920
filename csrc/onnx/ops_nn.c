/* ops_nn.c: Conv, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization (inference),
 * MatMul, Gemm; float32, 1-D and 2-D spatial. Every product goes through oe_gemm. */
#include "graph.h"
#include "../core/util.h"
#include "../ops/conv.h"
#include "../ops/ops.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int need_f32(const ox_t *t, const char *what, oe_err *e) {
  if (t->dt != OE_F32) return oe_fail(e, OE_EINVAL, "%s must be float32, got %s", what, ox_dtype_name(t->dt));
  return OE_OK;
}

/* ================= window attributes (Conv and pools) ================= */

enum { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

typedef struct {
  int nsp;                    /* spatial rank from kernel_shape, 0 when not given (Conv: taken from W) */
  int64_t k[2], s[2], d[2], p[4]; /* kernel, strides, dilations, pads (begin..., end...) */
  int has_s, has_d, has_p;
  int auto_pad;
  int64_t group;
  int ceil_mode, count_include_pad;
} win_params;

static int read_list(const ox_node *n, const char *name, int64_t *dst, size_t want, int *has, int64_t lo, oe_err *e) {
  size_t cnt;
  const int64_t *v;
  if (ox_attr_ints(n, name, &cnt, &v, e)) return OE_EIO;
  *has = v != NULL;
  if (!v) return OE_OK;
  if (want && cnt != want) return oe_fail(e, OE_EIO, "attribute '%s' has %zu values, %zu expected", name, cnt, want);
  for (size_t i = 0; i < cnt; i++) {
    if (v[i] < lo || v[i] > (INT64_C(1) << 31))
      return oe_fail(e, OE_EIO, "attribute '%s' value %lld is outside %lld..2^31", name, (long long)v[i], (long long)lo);
    dst[i] = v[i];
  }
  return OE_OK;
}

static int win_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  win_params *p = calloc(1, sizeof *p);
  if (!p) return oe_fail(e, OE_ENOMEM, "out of memory");
  n->params = p;
  int is_conv = !strcmp(n->op_type, "Conv"), is_avg = !strcmp(n->op_type, "AveragePool");
  size_t cnt;
  const int64_t *ks;
  if (ox_attr_ints(n, "kernel_shape", &cnt, &ks, e)) return OE_EIO;
  if (!ks && !is_conv) return oe_fail(e, OE_EIO, "attribute 'kernel_shape' is required");
  if (ks) {
    if (cnt < 1 || cnt > 2)
      return oe_fail(e, OE_EIO, "%zu-D windows are not supported (1-D and 2-D are)", cnt);
    p->nsp = (int)cnt;
    int has;
    if (read_list(n, "kernel_shape", p->k, cnt, &has, 1, e)) return OE_EIO;
  }
  size_t r = (size_t)p->nsp;
  if (r && (read_list(n, "strides", p->s, r, &p->has_s, 1, e) || read_list(n, "dilations", p->d, r, &p->has_d, 1, e) ||
            read_list(n, "pads", p->p, 2 * r, &p->has_p, 0, e)))
    return OE_EIO;
  if (!r) { /* Conv without kernel_shape: the lists are checked against W's rank when planning */
    size_t c1, c2, c3;
    const int64_t *v;
    if (ox_attr_ints(n, "strides", &c1, &v, e) || ox_attr_ints(n, "dilations", &c2, &v, e) || ox_attr_ints(n, "pads", &c3, &v, e))
      return OE_EIO;
    if (c1 > 2 || c2 > 2 || c3 > 4) return oe_fail(e, OE_EIO, "3-D and higher convolutions are not supported");
  }
  const char *ap;
  if (ox_attr_string(n, "auto_pad", "NOTSET", &ap, e)) return OE_EIO;
  if (!strcmp(ap, "NOTSET")) p->auto_pad = PAD_NOTSET;
  else if (!strcmp(ap, "SAME_UPPER")) p->auto_pad = PAD_SAME_UPPER;
  else if (!strcmp(ap, "SAME_LOWER")) p->auto_pad = PAD_SAME_LOWER;
  else if (!strcmp(ap, "VALID")) p->auto_pad = PAD_VALID;
  else return oe_fail(e, OE_EIO, "attribute 'auto_pad' has an unknown value");
  if (p->auto_pad != PAD_NOTSET && p->has_p) return oe_fail(e, OE_EIO, "'pads' and 'auto_pad' are both given");
  int64_t v;
  if (ox_attr_int(n, "group", 1, &p->group, e)) return OE_EIO;
  if (p->group < 1 || p->group > (INT64_C(1) << 31)) return oe_fail(e, OE_EIO, "group %lld must be positive", (long long)p->group);
  if (ox_attr_int(n, "ceil_mode", 0, &v, e)) return OE_EIO;
  p->ceil_mode = v != 0;
  if (ox_attr_int(n, "count_include_pad", 0, &v, e)) return OE_EIO;
  p->count_include_pad = v != 0;
  if (is_avg && p->has_d)
    for (size_t i = 0; i < r; i++)
      if (p->d[i] != 1) return oe_fail(e, OE_EIO, "dilated average pooling is not supported");
  if (!strcmp(n->op_type, "MaxPool")) {
    if (ox_attr_int(n, "storage_order", 0, &v, e)) return OE_EIO;
  }
  return OE_OK;
}

/* window geometry over X (N, C, spatial...) with nsp spatial dims */
static int win_geometry(const win_params *p, const int64_t *k, int nsp, const ox_t *x, oe_conv_shape *s, oe_err *e) {
  int64_t st[2] = {1, 1}, dl[2] = {1, 1}, pb[2] = {0, 0}, pe[2] = {0, 0};
  for (int i = 0; i < nsp; i++) {
    if (p->has_s) st[i] = p->s[i];
    if (p->has_d) dl[i] = p->d[i];
    if (p->has_p) { pb[i] = p->p[i]; pe[i] = p->p[nsp + i]; }
    if (p->auto_pad == PAD_SAME_UPPER || p->auto_pad == PAD_SAME_LOWER) {
      int64_t in = x->shape[2 + i], ek = (k[i] - 1) * dl[i] + 1, out = (in + st[i] - 1) / st[i];
      int64_t total = (out - 1) * st[i] + ek - in;
      if (total < 0) total = 0;
      pb[i] = p->auto_pad == PAD_SAME_UPPER ? total / 2 : total - total / 2;
      pe[i] = total - pb[i];
    }
  }
  memset(s, 0, sizeof *s);
  s->N = x->shape[0];
  s->C = x->shape[1];
  if (nsp == 1) {
    s->H = 1; s->kh = 1; s->sh = 1; s->dh = 1;
    s->W = x->shape[2]; s->kw = k[0]; s->sw = st[0]; s->dw = dl[0]; s->pl = pb[0]; s->pr = pe[0];
  } else {
    s->H = x->shape[2]; s->kh = k[0]; s->sh = st[0]; s->dh = dl[0]; s->pt = pb[0]; s->pb = pe[0];
    s->W = x->shape[3]; s->kw = k[1]; s->sw = st[1]; s->dw = dl[1]; s->pl = pb[1]; s->pr = pe[1];
  }
  (void)e;
  return OE_OK;
}

static void win_out_shape(const oe_conv_shape *s, int nsp, int64_t channels, ox_t *y) {
  int64_t sh[4] = { s->N, channels, nsp == 1 ? s->OW : s->OH, s->OW };
  ox_set(y, OE_F32, 2 + nsp, sh);
}

/* ================= Conv ================= */

static int conv_infer(ox_call *c, oe_err *e) {
  const win_params *p = c->node->params;
  const ox_t *x = c->in[0], *w = c->in[1], *b = c->n_in > 2 ? c->in[2] : NULL;
  char s1[128], s2[128];
  if (need_f32(x, "X", e) || need_f32(w, "W", e) || (b && need_f32(b, "B", e))) return OE_EINVAL;
  if (x->ndim != 3 && x->ndim != 4)
    return oe_fail(e, OE_EINVAL, "X has shape %s: 1-D (N, C, W) and 2-D (N, C, H, W) convolutions are supported", ox_shape_str(x, s1, sizeof s1));
  int nsp = x->ndim - 2;
  if (w->ndim != x->ndim)
    return oe_fail(e, OE_EINVAL, "W has shape %s, X %s: ranks differ", ox_shape_str(w, s1, sizeof s1), ox_shape_str(x, s2, sizeof s2));
  if (p->nsp && p->nsp != nsp) return oe_fail(e, OE_EINVAL, "kernel_shape has %d values, X has %d spatial dimensions", p->nsp, nsp);
  if (p->nsp)
    for (int i = 0; i < nsp; i++)
      if (p->k[i] != w->shape[2 + i])
        return oe_fail(e, OE_EINVAL, "kernel_shape disagrees with W %s", ox_shape_str(w, s1, sizeof s1));
  if (!p->nsp) { /* lists given without kernel_shape must fit W's rank */
    size_t cnt;
    const int64_t *v;
    oe_err ie;
    ox_attr_ints(c->node, "strides", &cnt, &v, &ie);
    if (v && cnt != (size_t)nsp) return oe_fail(e, OE_EINVAL, "strides has %zu values for %d spatial dimensions", cnt, nsp);
    ox_attr_ints(c->node, "dilations", &cnt, &v, &ie);
    if (v && cnt != (size_t)nsp) return oe_fail(e, OE_EINVAL, "dilations has %zu values for %d spatial dimensions", cnt, nsp);
    ox_attr_ints(c->node, "pads", &cnt, &v, &ie);
    if (v && cnt != 2 * (size_t)nsp) return oe_fail(e, OE_EINVAL, "pads has %zu values for %d spatial dimensions", cnt, nsp);
  }
  win_params q = *p;
  if (!p->nsp) {
    int has;
    q.nsp = nsp;
    if (read_list(c->node, "strides", q.s, 0, &has, 1, e)) return OE_EINVAL;
    q.has_s = has;
    if (read_list(c->node, "dilations", q.d, 0, &has, 1, e)) return OE_EINVAL;
    q.has_d = has;
    if (read_list(c->node, "pads", q.p, 0, &has, 0, e)) return OE_EINVAL;
    q.has_p = has;
  }
  int64_t k[2];
  for (int i = 0; i < nsp; i++) k[i] = w->shape[2 + i];
  if (x->shape[1] != w->shape[1] * p->group)
    return oe_fail(e, OE_EINVAL, "X %s has %lld channels, W %s with group %lld expects %lld", ox_shape_str(x, s1, sizeof s1),
                   (long long)x->shape[1], ox_shape_str(w, s2, sizeof s2), (long long)p->group, (long long)(w->shape[1] * p->group));
  if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
    return oe_fail(e, OE_EINVAL, "B has shape %s, W has %lld output channels", ox_shape_str(b, s1, sizeof s1), (long long)w->shape[0]);
  oe_conv_shape *s = malloc(sizeof *s);
  if (!s) return oe_fail(e, OE_ENOMEM, "out of memory");
  c->aux = s;
  win_geometry(&q, k, nsp, x, s, e);
  s->M = w->shape[0];
  s->groups = p->group;
  if (oe_conv_check(s, e)) return OE_EINVAL;
  win_out_shape(s, nsp, s->M, c->out[0]);
  c->scratch_bytes = oe_conv_scratch_floats(s, c->nthreads) * sizeof(float);
  return OE_OK;
}

static int conv_run(ox_call *c, oe_err *e) {
  const oe_conv_shape *s = c->aux;
  const float *b = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL;
  oe_conv_forward(s, c->in[0]->data, c->in[1]->data, b, c->out[0]->data, &c->post, c->scratch, c->nthreads);
  return OE_OK;
}

/* ================= pools ================= */

static int pool_infer(ox_call *c, oe_err *e) {
  const win_params *p = c->node->params;
  const ox_t *x = c->in[0];
  char s1[128];
  if (need_f32(x, "X", e)) return OE_EINVAL;
  if (x->ndim != 2 + p->nsp)
    return oe_fail(e, OE_EINVAL, "X has shape %s, a %d-D window needs rank %d", ox_shape_str(x, s1, sizeof s1), p->nsp, 2 + p->nsp);
  oe_conv_shape *s = malloc(sizeof *s);
  if (!s) return oe_fail(e, OE_ENOMEM, "out of memory");
  c->aux = s;
  win_geometry(p, p->k, p->nsp, x, s, e);
  if (oe_pool_check(s, p->ceil_mode, e)) return OE_EINVAL;
  win_out_shape(s, p->nsp, s->C, c->out[0]);
  return OE_OK;
}

static int maxpool_run(ox_call *c, oe_err *e) {
  oe_maxpool_forward(c->aux, c->in[0]->data, c->out[0]->data, c->nthreads);
  return OE_OK;
}

static int avgpool_run(ox_call *c, oe_err *e) {
  const win_params *p = c->node->params;
  oe_avgpool_forward(c->aux, c->in[0]->data, c->out[0]->data, p->count_include_pad, c->nthreads);
  return OE_OK;
}

static int gap_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  char s1[128];
  if (need_f32(x, "X", e)) return OE_EINVAL;
  if (x->ndim < 2) return oe_fail(e, OE_EINVAL, "X has shape %s, (N, C, ...) expected", ox_shape_str(x, s1, sizeof s1));
  int64_t sh[OE_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) sh[d] = d < 2 ? x->shape[d] : 1;
  ox_set(c->out[0], OE_F32, x->ndim, sh);
  return OE_OK;
}

static int gap_run(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  oe_global_avgpool(x->data, x->shape[0], x->shape[1], oe_numel_of(x->ndim - 2, x->shape + 2), c->out[0]->data, c->nthreads);
  return OE_OK;
}

/* ================= BatchNormalization (inference) ================= */

typedef struct { float eps; } bn_params;

static int bn_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  bn_params *p = calloc(1, sizeof *p);
  if (!p) return oe_fail(e, OE_ENOMEM, "out of memory");
  n->params = p;
  int64_t tm, spatial;
  if (ox_attr_float(n, "epsilon", 1e-5f, &p->eps, e) || ox_attr_int(n, "training_mode", 0, &tm, e) ||
      ox_attr_int(n, "spatial", 1, &spatial, e))
    return OE_EIO;
  if (tm) return oe_fail(e, OE_EIO, "training_mode is not supported (inference only)");
  if (!spatial) return oe_fail(e, OE_EIO, "spatial = 0 is not supported");
  return OE_OK;
}

static int bn_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  char s1[128], s2[128];
  static const char *names[] = {"X", "scale", "B", "input_mean", "input_var"};
  for (int k = 0; k < 5; k++)
    if (need_f32(c->in[k], names[k], e)) return OE_EINVAL;
  if (x->ndim < 2) return oe_fail(e, OE_EINVAL, "X has shape %s, (N, C, ...) expected", ox_shape_str(x, s1, sizeof s1));
  for (int k = 1; k < 5; k++)
    if (ox_numel(c->in[k]) != x->shape[1] || c->in[k]->ndim != 1)
      return oe_fail(e, OE_EINVAL, "%s has shape %s, X %s has %lld channels", names[k], ox_shape_str(c->in[k], s1, sizeof s1),
                     ox_shape_str(x, s2, sizeof s2), (long long)x->shape[1]);
  ox_set(c->out[0], OE_F32, x->ndim, x->shape);
  return OE_OK;
}

static int bn_run(ox_call *c, oe_err *e) {
  const bn_params *p = c->node->params;
  const ox_t *x = c->in[0];
  const float *sc = c->in[1]->data, *bi = c->in[2]->data, *mu = c->in[3]->data, *var = c->in[4]->data;
  int64_t N = x->shape[0], C = x->shape[1], S = oe_numel_of(x->ndim - 2, x->shape + 2);
  const float *xi = x->data;
  float *y = c->out[0]->data;
#pragma omp parallel for schedule(static) if (N * C * S > 32768)
  for (int64_t pl = 0; pl < N * C; pl++) {
    int64_t ch = pl % C;
    float a = sc[ch] / sqrtf(var[ch] + p->eps), b = bi[ch] - mu[ch] * a;
    const float *px = xi + pl * S;
    float *py = y + pl * S;
    for (int64_t i = 0; i < S; i++) py[i] = px[i] * a + b;
  }
  return OE_OK;
}

/* ================= MatMul ================= */

typedef struct {
  int64_t M, N, K, batches;
  int flat;                       /* B is one matrix: one product over every row of A */
  int nb;                         /* batch dims of the output */
  int64_t bshape[OE_MAX_DIMS], sa[OE_MAX_DIMS], sb[OE_MAX_DIMS]; /* batch sizes, element strides of A and B batches */
} mm_aux;

static int matmul_infer(ox_call *c, oe_err *e) {
  const ox_t *a = c->in[0], *b = c->in[1];
  char s1[128], s2[128];
  if (need_f32(a, "A", e) || need_f32(b, "B", e)) return OE_EINVAL;
  if (a->ndim < 1 || b->ndim < 1) return oe_fail(e, OE_EINVAL, "scalars cannot be multiplied as matrices");
  int64_t M = a->ndim == 1 ? 1 : a->shape[a->ndim - 2], K = a->shape[a->ndim - 1];
  int64_t Kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2], N = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
  if (K != Kb)
    return oe_fail(e, OE_EINVAL, "A %s and B %s: inner dimensions %lld and %lld differ", ox_shape_str(a, s1, sizeof s1),
                   ox_shape_str(b, s2, sizeof s2), (long long)K, (long long)Kb);
  int na = a->ndim > 2 ? a->ndim - 2 : 0, nbb = b->ndim > 2 ? b->ndim - 2 : 0;
  ox_t ba = {0}, bb = {0}, bo = {0};
  ba.ndim = na; bb.ndim = nbb;
  for (int i = 0; i < na; i++) ba.shape[i] = a->shape[i];
  for (int i = 0; i < nbb; i++) bb.shape[i] = b->shape[i];
  if (!oe_broadcast_shape(na, ba.shape, nbb, bb.shape, &bo.ndim, bo.shape))
    return oe_fail(e, OE_EINVAL, "batch dimensions of A %s and B %s do not broadcast", ox_shape_str(a, s1, sizeof s1),
                   ox_shape_str(b, s2, sizeof s2));
  mm_aux *x = calloc(1, sizeof *x);
  if (!x) return oe_fail(e, OE_ENOMEM, "out of memory");
  c->aux = x;
  x->M = M; x->N = N; x->K = K;
  x->nb = bo.ndim;
  x->batches = oe_numel_of(bo.ndim, bo.shape);
  int64_t acc_a = M * K, acc_b = K * N;
  for (int i = bo.ndim - 1; i >= 0; i--) {
    x->bshape[i] = bo.shape[i];
    int ja = i - (bo.ndim - na), jb = i - (bo.ndim - nbb);
    if (ja < 0 || ba.shape[ja] == 1) x->sa[i] = 0; else { x->sa[i] = acc_a; acc_a *= ba.shape[ja]; }
    if (jb < 0 || bb.shape[jb] == 1) x->sb[i] = 0; else { x->sb[i] = acc_b; acc_b *= bb.shape[jb]; }
  }
  x->flat = oe_numel_of(nbb, bb.shape) == 1 && oe_numel_of(na, ba.shape) == x->batches;
  int64_t os[OE_MAX_DIMS];
  int on = 0;
  for (int i = 0; i < bo.ndim; i++) os[on++] = bo.shape[i];
  if (a->ndim > 1) os[on++] = M;
  if (b->ndim > 1) os[on++] = N;
  if (on > OE_MAX_DIMS) return oe_fail(e, OE_EINVAL, "output rank %d (at most %d)", on, OE_MAX_DIMS);
  ox_set(c->out[0], OE_F32, on, os);
  return OE_OK;
}

static int matmul_run(ox_call *c, oe_err *e) {
  const mm_aux *x = c->aux;
  const float *A = c->in[0]->data, *B = c->in[1]->data;
  float *Y = c->out[0]->data;
  int64_t M = x->M, N = x->N, K = x->K;
  if (x->flat) {
    oe_gemm(0, 0, x->batches * M, N, K, 1.0f, A, K, B, N, 0.0f, Y, N);
  } else {
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int par = c->nthreads > 1 && x->batches >= c->nthreads && flops < 4e6;
#pragma omp parallel for schedule(static) num_threads(c->nthreads) if (par)
    for (int64_t bi = 0; bi < x->batches; bi++) {
      int64_t oa = 0, ob = 0, rem = bi;
      for (int d = x->nb - 1; d >= 0; d--) {
        int64_t i = rem % x->bshape[d];
        rem /= x->bshape[d];
        oa += i * x->sa[d];
        ob += i * x->sb[d];
      }
      oe_gemm(0, 0, M, N, K, 1.0f, A + oa, K, B + ob, N, 0.0f, Y + bi * M * N, N);
    }
  }
  oe_post_apply(&c->post, Y, x->batches * M * N);
  return OE_OK;
}

/* ================= Gemm ================= */

typedef struct { float alpha, beta; int ta, tb; } gemm_params;

static int gemm_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  gemm_params *p = calloc(1, sizeof *p);
  if (!p) return oe_fail(e, OE_ENOMEM, "out of memory");
  n->params = p;
  int64_t ta, tb;
  if (ox_attr_float(n, "alpha", 1.0f, &p->alpha, e) || ox_attr_float(n, "beta", 1.0f, &p->beta, e) ||
      ox_attr_int(n, "transA", 0, &ta, e) || ox_attr_int(n, "transB", 0, &tb, e))
    return OE_EIO;
  p->ta = ta != 0;
  p->tb = tb != 0;
  return OE_OK;
}

typedef struct { int64_t M, N, K; } gemm_aux;
#define GEMM_FEW_ROWS 16

static int gemm_infer(ox_call *c, oe_err *e) {
  const gemm_params *p = c->node->params;
  const ox_t *a = c->in[0], *b = c->in[1], *cc = c->n_in > 2 ? c->in[2] : NULL;
  char s1[128], s2[128];
  if (need_f32(a, "A", e) || need_f32(b, "B", e) || (cc && need_f32(cc, "C", e))) return OE_EINVAL;
  if (a->ndim != 2 || b->ndim != 2)
    return oe_fail(e, OE_EINVAL, "A %s and B %s must be matrices", ox_shape_str(a, s1, sizeof s1), ox_shape_str(b, s2, sizeof s2));
  int64_t M = p->ta ? a->shape[1] : a->shape[0], K = p->ta ? a->shape[0] : a->shape[1];
  int64_t Kb = p->tb ? b->shape[1] : b->shape[0], N = p->tb ? b->shape[0] : b->shape[1];
  if (K != Kb)
    return oe_fail(e, OE_EINVAL, "A %s and B %s (transA %d, transB %d): inner dimensions %lld and %lld differ",
                   ox_shape_str(a, s1, sizeof s1), ox_shape_str(b, s2, sizeof s2), p->ta, p->tb, (long long)K, (long long)Kb);
  int64_t ys[2] = {M, N};
  if (cc) {
    int ok = cc->ndim <= 2;
    for (int i = 0; ok && i < cc->ndim; i++) {
      int64_t want = ys[2 - cc->ndim + i];
      ok = cc->shape[i] == 1 || cc->shape[i] == want;
    }
    if (!ok) return oe_fail(e, OE_EINVAL, "C %s does not broadcast to (%lld, %lld)", ox_shape_str(cc, s1, sizeof s1), (long long)M, (long long)N);
  }
  gemm_aux *x = malloc(sizeof *x);
  if (!x) return oe_fail(e, OE_ENOMEM, "out of memory");
  x->M = M; x->N = N; x->K = K;
  c->aux = x;
  /* a few rows (a classifier on a small batch): the product is taken transposed, the weights
   * as the row side (OpenBLAS streams the large operand better so: 0.40 against 0.52 ms for
   * 1 x 1280 by 1280 x 1000 with cold caches here), into scratch when M > 1 */
  if (M <= GEMM_FEW_ROWS && N >= 64 && M > 1) c->scratch_bytes = (size_t)(M * N) * sizeof(float);
  ox_set(c->out[0], OE_F32, 2, ys);
  return OE_OK;
}

static int gemm_run(ox_call *c, oe_err *e) {
  const gemm_params *p = c->node->params;
  const gemm_aux *x = c->aux;
  const ox_t *a = c->in[0], *b = c->in[1], *cc = c->n_in > 2 ? c->in[2] : NULL;
  float *Y = c->out[0]->data;
  float beta = 0.0f;
  if (cc && p->beta != 0.0f) {
    oe_expand_f32(cc->data, cc->ndim, cc->shape, Y, 2, c->out[0]->shape);
    beta = p->beta;
  }
  if (x->M <= GEMM_FEW_ROWS && x->N >= 64) {
    /* Y^T (N, M) = op(B)^T (N, K) op(A)^T (K, M): op(B)^T is B when transB, else B read transposed */
    float *T = x->M == 1 ? Y : c->scratch;
    float tb = x->M == 1 ? beta : 0.0f;
    oe_gemm(!p->tb, !p->ta, x->N, x->M, x->K, p->alpha, b->data, b->shape[1], a->data, a->shape[1], tb, T, x->M);
    if (x->M > 1)
      for (int64_t i = 0; i < x->M; i++)
        for (int64_t j = 0; j < x->N; j++) Y[i * x->N + j] = beta != 0.0f ? beta * Y[i * x->N + j] + T[j * x->M + i] : T[j * x->M + i];
  } else {
    oe_gemm(p->ta, p->tb, x->M, x->N, x->K, p->alpha, a->data, a->shape[1], b->data, b->shape[1], beta, Y, x->N);
  }
  oe_post_apply(&c->post, Y, x->M * x->N);
  return OE_OK;
}

const ox_op ox_ops_nn[] = {
  {"Conv", 2, 3, 1, 1, OX_POST_SINK, win_parse, conv_infer, conv_run},
  {"MaxPool", 1, 1, 1, 1, 0, win_parse, pool_infer, maxpool_run},
  {"AveragePool", 1, 1, 1, 1, 0, win_parse, pool_infer, avgpool_run},
  {"GlobalAveragePool", 1, 1, 1, 1, 0, NULL, gap_infer, gap_run},
  {"BatchNormalization", 5, 5, 1, 1, 0, bn_parse, bn_infer, bn_run},
  {"MatMul", 2, 2, 1, 1, OX_POST_SINK, NULL, matmul_infer, matmul_run},
  {"Gemm", 2, 3, 1, 1, OX_POST_SINK, gemm_parse, gemm_infer, gemm_run},
  {NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL}};
