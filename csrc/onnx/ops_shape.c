/* ops_shape.c: ops that move or describe data without arithmetic: Reshape, Flatten,
 * Squeeze, Unsqueeze, Identity, Dropout (views), Transpose, Shape, Gather, Concat, Slice,
 * Split, Expand, Constant. Any of float32, int64, int32 unless stated. Inputs that give
 * shapes, axes or indices of slices must be known before running. */
#include "graph.h"
#include "../core/util.h"
#include "../ops/ops.h"
#include <stdlib.h>
#include <string.h>

#define PAR_MIN 32768

static int alloc_params(ox_node *n, size_t size, oe_err *e) {
  n->params = calloc(1, size);
  if (!n->params) return oe_fail(e, OE_ENOMEM, "out of memory");
  return OE_OK;
}

/* copy src viewed with element strides st (over out's shape, plus offset off) into dst,
 * contiguous in out's shape; es bytes per element */
static void strided_copy(void *dst, const void *src, size_t es, int nd, const int64_t *shape, const int64_t *st, int64_t off) {
  int64_t total = oe_numel_of(nd, shape);
  if (total == 0) return;
  if (nd == 0) { memcpy(dst, (const char *)src + off * (int64_t)es, es); return; }
  int64_t inner = shape[nd - 1], rows = total / inner, si = st[nd - 1];
#pragma omp parallel for schedule(static) if (total > PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t o = off, rem = r;
    for (int d = nd - 2; d >= 0; d--) { o += (rem % shape[d]) * st[d]; rem /= shape[d]; }
    char *dp = (char *)dst + r * inner * (int64_t)es;
    const char *sp = (const char *)src + o * (int64_t)es;
    if (si == 1) memcpy(dp, sp, (size_t)inner * es);
    else if (es == 4) for (int64_t j = 0; j < inner; j++) ((uint32_t *)dp)[j] = *(const uint32_t *)(sp + j * si * 4);
    else for (int64_t j = 0; j < inner; j++) ((uint64_t *)dp)[j] = *(const uint64_t *)(sp + j * si * 8);
  }
}

static void contiguous_strides(int nd, const int64_t *shape, int64_t *st) {
  int64_t acc = 1;
  for (int d = nd - 1; d >= 0; d--) { st[d] = acc; acc *= shape[d]; }
}

static int view_run(ox_call *c, oe_err *e) { return OE_OK; } /* the output shares the input's bytes */

/* ================= Reshape ================= */

typedef struct { int allowzero; } reshape_params;

static int reshape_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(reshape_params), e)) return OE_ENOMEM;
  int64_t az;
  if (ox_attr_int(n, "allowzero", 0, &az, e)) return OE_EIO;
  ((reshape_params *)n->params)->allowzero = az != 0;
  return OE_OK;
}

static int reshape_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  int64_t s[OE_MAX_DIMS];
  int n;
  char s1[128];
  if (ox_read_ints(c->in[1], "the shape input", s, OE_MAX_DIMS, &n, e)) return OE_EINVAL;
  int az = ((const reshape_params *)c->node->params)->allowzero, minus = -1;
  int64_t known = 1;
  for (int i = 0; i < n; i++) {
    if (s[i] == 0 && !az) {
      if (i >= x->ndim) return oe_fail(e, OE_EINVAL, "shape entry %d is 0 (copy) but the input %s has rank %d", i, ox_shape_str(x, s1, sizeof s1), x->ndim);
      s[i] = x->shape[i];
    }
    if (s[i] == -1) {
      if (minus >= 0) return oe_fail(e, OE_EINVAL, "more than one -1 in the shape");
      minus = i;
      continue;
    }
    if (s[i] < 0) return oe_fail(e, OE_EINVAL, "shape entry %lld is negative", (long long)s[i]);
    if (s[i] > OE_MAX_NUMEL || (s[i] && known > OE_MAX_NUMEL / s[i]))
      return oe_fail(e, OE_EINVAL, "shape entries multiply past 2^40");
    known *= s[i];
  }
  int64_t total = ox_numel(x);
  if (minus >= 0) {
    if (known == 0 || total % known)
      return oe_fail(e, OE_EINVAL, "cannot reshape %s (%lld elements) with a -1 entry next to entries multiplying to %lld",
                     ox_shape_str(x, s1, sizeof s1), (long long)total, (long long)known);
    s[minus] = total / known;
  } else if (known != total) {
    ox_t t = {0};
    t.ndim = n;
    memcpy(t.shape, s, sizeof s);
    char s2[128];
    return oe_fail(e, OE_EINVAL, "cannot reshape %s (%lld elements) into %s (%lld)", ox_shape_str(x, s1, sizeof s1),
                   (long long)total, ox_shape_str(&t, s2, sizeof s2), (long long)known);
  }
  ox_set(c->out[0], x->dt, n, s);
  return OE_OK;
}

/* ================= Flatten ================= */

typedef struct { int64_t axis; } axis_params;

static int axis_parse_def(ox_node *n, int64_t def, oe_err *e) {
  if (alloc_params(n, sizeof(axis_params), e)) return OE_ENOMEM;
  return ox_attr_int(n, "axis", def, &((axis_params *)n->params)->axis, e);
}
static int flatten_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) { return axis_parse_def(n, 1, e); }

static int flatten_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  int64_t ax = ((const axis_params *)c->node->params)->axis;
  if (ax < -x->ndim || ax > x->ndim)
    return oe_fail(e, OE_EINVAL, "axis %lld is outside -%d..%d", (long long)ax, x->ndim, x->ndim);
  if (ax < 0) ax += x->ndim;
  int64_t s[2] = { oe_numel_of((int)ax, x->shape), oe_numel_of(x->ndim - (int)ax, x->shape + ax) };
  ox_set(c->out[0], x->dt, 2, s);
  return OE_OK;
}

/* ================= Squeeze / Unsqueeze ================= */

typedef struct { size_t n; int64_t axes[OE_MAX_DIMS]; int from_input; } axes_params;

static int axes_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(axes_params), e)) return OE_ENOMEM;
  axes_params *p = n->params;
  const int64_t *v;
  if (ox_attr_ints(n, "axes", &p->n, &v, e)) return OE_EIO;
  p->from_input = opset >= 13;
  if (p->from_input && v) return oe_fail(e, OE_EIO, "axes is an input at opset %d, not an attribute", opset);
  if (!p->from_input && n->n_in > 1 && n->in[1] >= 0) return oe_fail(e, OE_EIO, "axes is an attribute at opset %d, not an input", opset);
  if (p->n > OE_MAX_DIMS) return oe_fail(e, OE_EIO, "%zu axes (at most %d)", p->n, OE_MAX_DIMS);
  for (size_t i = 0; i < p->n; i++) p->axes[i] = v[i];
  if (!strcmp(n->op_type, "Unsqueeze") && !p->from_input && !v) return oe_fail(e, OE_EIO, "attribute 'axes' is required");
  if (!strcmp(n->op_type, "Unsqueeze") && p->from_input && (n->n_in < 2 || n->in[1] < 0))
    return oe_fail(e, OE_EIO, "input 'axes' is required");
  return OE_OK;
}

static int get_axes(const ox_call *c, int64_t *axes, int *n, oe_err *e) {
  const axes_params *p = c->node->params;
  if (p->from_input) {
    *n = 0;
    if (c->n_in > 1 && c->in[1]) return ox_read_ints(c->in[1], "axes", axes, OE_MAX_DIMS, n, e);
    return OE_OK;
  }
  *n = (int)p->n;
  for (size_t i = 0; i < p->n; i++) axes[i] = p->axes[i];
  return OE_OK;
}

static int squeeze_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  int64_t axes[OE_MAX_DIMS];
  int na;
  char s1[128];
  if (get_axes(c, axes, &na, e)) return OE_EINVAL;
  uint8_t drop[OE_MAX_DIMS] = {0};
  for (int i = 0; i < na; i++) {
    int a;
    if (ox_axis(axes[i], x->ndim, &a, "axis", e)) return OE_EINVAL;
    if (x->shape[a] != 1)
      return oe_fail(e, OE_EINVAL, "axis %lld of %s has size %lld, not 1", (long long)axes[i], ox_shape_str(x, s1, sizeof s1), (long long)x->shape[a]);
    drop[a] = 1;
  }
  if (na == 0)
    for (int d = 0; d < x->ndim; d++) drop[d] = x->shape[d] == 1;
  int64_t s[OE_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < x->ndim; d++)
    if (!drop[d]) s[n++] = x->shape[d];
  ox_set(c->out[0], x->dt, n, s);
  return OE_OK;
}

static int unsqueeze_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  int64_t axes[OE_MAX_DIMS];
  int na;
  if (get_axes(c, axes, &na, e)) return OE_EINVAL;
  int r = x->ndim + na;
  if (r > OE_MAX_DIMS) return oe_fail(e, OE_EINVAL, "output rank %d (at most %d)", r, OE_MAX_DIMS);
  uint8_t ins[OE_MAX_DIMS] = {0};
  for (int i = 0; i < na; i++) {
    int a;
    if (ox_axis(axes[i], r, &a, "axis", e)) return OE_EINVAL;
    if (ins[a]) return oe_fail(e, OE_EINVAL, "axis %lld is listed twice", (long long)axes[i]);
    ins[a] = 1;
  }
  int64_t s[OE_MAX_DIMS];
  for (int d = 0, k = 0; d < r; d++) s[d] = ins[d] ? 1 : x->shape[k++];
  ox_set(c->out[0], x->dt, r, s);
  return OE_OK;
}

/* ================= Identity / Dropout ================= */

static int identity_infer(ox_call *c, oe_err *e) {
  ox_set(c->out[0], c->in[0]->dt, c->in[0]->ndim, c->in[0]->shape);
  return OE_OK;
}

static int dropout_infer(ox_call *c, oe_err *e) {
  if (c->n_in > 2 && c->in[2]) {
    const ox_t *t = c->in[2];
    if (!t->data) return oe_fail(e, OE_EINVAL, "training_mode must be known before running");
    if (ox_numel(t) != 1 || ((const uint8_t *)t->data)[0]) return oe_fail(e, OE_EINVAL, "training mode is not supported");
  }
  return identity_infer(c, e);
}

static int dropout_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  int64_t is_test;
  if (ox_attr_int(n, "is_test", 1, &is_test, e)) return OE_EIO;
  if (!is_test) return oe_fail(e, OE_EIO, "is_test = 0 (training) is not supported");
  return OE_OK;
}

/* ================= Transpose ================= */

typedef struct { size_t n; int64_t perm[OE_MAX_DIMS]; } perm_params;

static int transpose_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(perm_params), e)) return OE_ENOMEM;
  perm_params *p = n->params;
  const int64_t *v;
  if (ox_attr_ints(n, "perm", &p->n, &v, e)) return OE_EIO;
  if (p->n > OE_MAX_DIMS) return oe_fail(e, OE_EIO, "perm has %zu entries (at most %d)", p->n, OE_MAX_DIMS);
  for (size_t i = 0; i < p->n; i++) p->perm[i] = v[i];
  if (!v) p->n = (size_t)-1; /* reverse */
  return OE_OK;
}

static int transpose_infer(ox_call *c, oe_err *e) {
  const perm_params *p = c->node->params;
  const ox_t *x = c->in[0];
  int64_t *perm = malloc(OE_MAX_DIMS * sizeof(int64_t));
  if (!perm) return oe_fail(e, OE_ENOMEM, "out of memory");
  c->aux = perm;
  if (p->n == (size_t)-1) {
    for (int d = 0; d < x->ndim; d++) perm[d] = x->ndim - 1 - d;
  } else {
    if ((int)p->n != x->ndim) return oe_fail(e, OE_EINVAL, "perm has %zu entries for a rank-%d input", p->n, x->ndim);
    uint8_t seen[OE_MAX_DIMS] = {0};
    for (int d = 0; d < x->ndim; d++) {
      int a;
      if (ox_axis(p->perm[d], x->ndim, &a, "perm entry", e)) return OE_EINVAL;
      if (seen[a]) return oe_fail(e, OE_EINVAL, "perm repeats axis %d", a);
      seen[a] = 1;
      perm[d] = a;
    }
  }
  int64_t s[OE_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) s[d] = x->shape[perm[d]];
  ox_set(c->out[0], x->dt, x->ndim, s);
  return OE_OK;
}

static int transpose_run(ox_call *c, oe_err *e) {
  const int64_t *perm = c->aux;
  const ox_t *x = c->in[0];
  ox_t *y = c->out[0];
  int64_t xs[OE_MAX_DIMS], st[OE_MAX_DIMS];
  contiguous_strides(x->ndim, x->shape, xs);
  for (int d = 0; d < x->ndim; d++) st[d] = xs[perm[d]];
  strided_copy(y->data, x->data, oe_dtype_size(x->dt), y->ndim, y->shape, st, 0);
  return OE_OK;
}

/* ================= Shape ================= */

typedef struct { int64_t start, end; } shape_params;

static int shape_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(shape_params), e)) return OE_ENOMEM;
  shape_params *p = n->params;
  if (ox_attr_int(n, "start", 0, &p->start, e) || ox_attr_int(n, "end", INT64_MAX, &p->end, e)) return OE_EIO;
  return OE_OK;
}

static void shape_range(const ox_call *c, int64_t *a, int64_t *b) {
  const shape_params *p = c->node->params;
  int64_t r = c->in[0]->ndim, s = p->start, t = p->end;
  if (s < 0) s += r;
  if (t < 0) t += r;
  s = s < 0 ? 0 : s > r ? r : s;
  t = t < 0 ? 0 : t > r ? r : t;
  *a = s;
  *b = t < s ? s : t;
}

static int shape_infer(ox_call *c, oe_err *e) {
  int64_t a, b;
  shape_range(c, &a, &b);
  int64_t n = b - a;
  ox_set(c->out[0], OE_I64, 1, &n);
  return OE_OK;
}

static int shape_run(ox_call *c, oe_err *e) {
  int64_t a, b;
  shape_range(c, &a, &b);
  for (int64_t i = a; i < b; i++) ((int64_t *)c->out[0]->data)[i - a] = c->in[0]->shape[i];
  return OE_OK;
}

/* ================= Gather ================= */

static int gather_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) { return axis_parse_def(n, 0, e); }

static int gather_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0], *idx = c->in[1];
  if (idx->dt != OE_I64 && idx->dt != OE_I32) return oe_fail(e, OE_EINVAL, "indices must be int64 or int32, got %s", ox_dtype_name(idx->dt));
  int ax;
  if (ox_axis(((const axis_params *)c->node->params)->axis, x->ndim, &ax, "axis", e)) return OE_EINVAL;
  if (x->ndim == 0) return oe_fail(e, OE_EINVAL, "data is a scalar");
  int r = x->ndim - 1 + idx->ndim;
  if (r > OE_MAX_DIMS) return oe_fail(e, OE_EINVAL, "output rank %d (at most %d)", r, OE_MAX_DIMS);
  int64_t s[OE_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < ax; d++) s[n++] = x->shape[d];
  for (int d = 0; d < idx->ndim; d++) s[n++] = idx->shape[d];
  for (int d = ax + 1; d < x->ndim; d++) s[n++] = x->shape[d];
  int *a = malloc(sizeof(int));
  if (!a) return oe_fail(e, OE_ENOMEM, "out of memory");
  *a = ax;
  c->aux = a;
  ox_set(c->out[0], x->dt, n, s);
  return OE_OK;
}

static int gather_run(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0], *idx = c->in[1];
  int ax = *(const int *)c->aux;
  int64_t outer = oe_numel_of(ax, x->shape), dim = x->shape[ax], inner = oe_numel_of(x->ndim - ax - 1, x->shape + ax + 1);
  int64_t ni = ox_numel(idx);
  size_t es = oe_dtype_size(x->dt);
  for (int64_t j = 0; j < ni; j++) {
    int64_t k = idx->dt == OE_I64 ? ((const int64_t *)idx->data)[j] : ((const int32_t *)idx->data)[j];
    if (k < -dim || k >= dim) return oe_fail(e, OE_EINVAL, "index %lld is outside -%lld..%lld", (long long)k, (long long)dim, (long long)dim - 1);
  }
  char *y = c->out[0]->data;
  const char *xd = x->data;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < ni; j++) {
      int64_t k = idx->dt == OE_I64 ? ((const int64_t *)idx->data)[j] : ((const int32_t *)idx->data)[j];
      if (k < 0) k += dim;
      memcpy(y + ((o * ni + j) * inner) * (int64_t)es, xd + ((o * dim + k) * inner) * (int64_t)es, (size_t)inner * es);
    }
  return OE_OK;
}

/* ================= Concat ================= */

static int concat_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (!ox_attr_get(n, "axis")) return oe_fail(e, OE_EIO, "attribute 'axis' is required");
  return axis_parse_def(n, 0, e);
}

static int concat_infer(ox_call *c, oe_err *e) {
  const ox_t *a = c->in[0];
  char s1[128], s2[128];
  int ax;
  if (ox_axis(((const axis_params *)c->node->params)->axis, a->ndim, &ax, "axis", e)) return OE_EINVAL;
  int64_t s[OE_MAX_DIMS];
  for (int d = 0; d < a->ndim; d++) s[d] = a->shape[d];
  for (int k = 1; k < c->n_in; k++) {
    const ox_t *b = c->in[k];
    if (!b) return oe_fail(e, OE_EINVAL, "input %d is empty", k + 1);
    if (b->dt != a->dt) return oe_fail(e, OE_EINVAL, "inputs are %s and %s", ox_dtype_name(a->dt), ox_dtype_name(b->dt));
    int ok = b->ndim == a->ndim;
    for (int d = 0; ok && d < a->ndim; d++) ok = d == ax || b->shape[d] == a->shape[d];
    if (!ok)
      return oe_fail(e, OE_EINVAL, "input 1 %s and input %d %s differ outside axis %d", ox_shape_str(a, s1, sizeof s1), k + 1,
                     ox_shape_str(b, s2, sizeof s2), ax);
    s[ax] += b->shape[ax];
  }
  int *x = malloc(sizeof(int));
  if (!x) return oe_fail(e, OE_ENOMEM, "out of memory");
  *x = ax;
  c->aux = x;
  ox_set(c->out[0], a->dt, a->ndim, s);
  return OE_OK;
}

static int concat_run(ox_call *c, oe_err *e) {
  int ax = *(const int *)c->aux;
  ox_t *y = c->out[0];
  size_t es = oe_dtype_size(y->dt);
  int64_t outer = oe_numel_of(ax, y->shape), inner = oe_numel_of(y->ndim - ax - 1, y->shape + ax + 1);
  int64_t row = y->shape[ax] * inner;
  int64_t at = 0;
  for (int k = 0; k < c->n_in; k++) {
    const ox_t *x = c->in[k];
    int64_t blk = x->shape[ax] * inner;
    for (int64_t o = 0; o < outer; o++)
      memcpy((char *)y->data + (o * row + at) * (int64_t)es, (const char *)x->data + o * blk * (int64_t)es, (size_t)blk * es);
    at += blk;
  }
  return OE_OK;
}

/* ================= Slice ================= */

typedef struct { int64_t start[OE_MAX_DIMS], step[OE_MAX_DIMS]; } slice_aux;

static int slice_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (opset < 10) {
    size_t a, b;
    const int64_t *v;
    if (ox_attr_ints(n, "starts", &a, &v, e) || ox_attr_ints(n, "ends", &b, &v, e)) return OE_EIO;
    if (!ox_attr_get(n, "starts") || !ox_attr_get(n, "ends")) return oe_fail(e, OE_EIO, "attributes 'starts' and 'ends' are required");
    if (n->n_in > 1) return oe_fail(e, OE_EIO, "starts and ends are attributes at opset %d, not inputs", opset);
  } else if (n->n_in < 3 || n->in[1] < 0 || n->in[2] < 0) {
    return oe_fail(e, OE_EIO, "inputs 'starts' and 'ends' are required at opset %d", opset);
  }
  return OE_OK;
}

static int slice_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  int64_t st[OE_MAX_DIMS], en[OE_MAX_DIMS], ax[OE_MAX_DIMS], sp[OE_MAX_DIMS];
  int ns, ne, na, nst;
  if (c->opset < 10) {
    size_t k;
    const int64_t *v;
    ox_attr_ints(c->node, "starts", &k, &v, e);
    if (k > OE_MAX_DIMS) return oe_fail(e, OE_EINVAL, "too many starts");
    ns = (int)k; memcpy(st, v, k * sizeof *v);
    ox_attr_ints(c->node, "ends", &k, &v, e);
    if (k > OE_MAX_DIMS) return oe_fail(e, OE_EINVAL, "too many ends");
    ne = (int)k; memcpy(en, v, k * sizeof *v);
    ox_attr_ints(c->node, "axes", &k, &v, e);
    if (k > OE_MAX_DIMS) return oe_fail(e, OE_EINVAL, "too many axes");
    na = v ? (int)k : -1;
    if (v) memcpy(ax, v, k * sizeof *v);
    nst = -1;
  } else {
    if (ox_read_ints(c->in[1], "starts", st, OE_MAX_DIMS, &ns, e) || ox_read_ints(c->in[2], "ends", en, OE_MAX_DIMS, &ne, e))
      return OE_EINVAL;
    na = nst = -1;
    if (c->n_in > 3 && c->in[3] && ox_read_ints(c->in[3], "axes", ax, OE_MAX_DIMS, &na, e)) return OE_EINVAL;
    if (c->n_in > 4 && c->in[4] && ox_read_ints(c->in[4], "steps", sp, OE_MAX_DIMS, &nst, e)) return OE_EINVAL;
  }
  if (ns != ne) return oe_fail(e, OE_EINVAL, "%d starts and %d ends", ns, ne);
  if (na >= 0 && na != ns) return oe_fail(e, OE_EINVAL, "%d axes for %d starts", na, ns);
  if (nst >= 0 && nst != ns) return oe_fail(e, OE_EINVAL, "%d steps for %d starts", nst, ns);
  slice_aux *a = malloc(sizeof *a);
  if (!a) return oe_fail(e, OE_ENOMEM, "out of memory");
  c->aux = a;
  int64_t s[OE_MAX_DIMS];
  uint8_t seen[OE_MAX_DIMS] = {0};
  for (int d = 0; d < x->ndim; d++) { a->start[d] = 0; a->step[d] = 1; s[d] = x->shape[d]; }
  for (int i = 0; i < ns; i++) {
    int d;
    if (ox_axis(na >= 0 ? ax[i] : i, x->ndim, &d, "axis", e)) return OE_EINVAL;
    if (seen[d]) return oe_fail(e, OE_EINVAL, "axis %d is sliced twice", d);
    seen[d] = 1;
    int64_t step = nst >= 0 ? sp[i] : 1, dim = x->shape[d], b = st[i], t = en[i];
    if (step == 0) return oe_fail(e, OE_EINVAL, "step 0 on axis %d", d);
    if (b < 0) b += dim;
    if (t < 0) t += dim;
    int64_t cnt;
    /* |step| as unsigned: steps near +-2^63 neither overflow the count nor the strides
     * (a slice of at most one element keeps step 1; found by fuzz/onnx_fuzz.c) */
    uint64_t mag = step > 0 ? (uint64_t)step : (uint64_t)0 - (uint64_t)step;
    if (step > 0) {
      b = b < 0 ? 0 : b > dim ? dim : b;
      t = t < 0 ? 0 : t > dim ? dim : t;
      cnt = t > b ? 1 + (int64_t)((uint64_t)(t - b - 1) / mag) : 0;
    } else {
      b = b < 0 ? 0 : b > dim - 1 ? dim - 1 : b;
      t = t < -1 ? -1 : t > dim - 1 ? dim - 1 : t;
      cnt = b > t ? 1 + (int64_t)((uint64_t)(b - t - 1) / mag) : 0;
    }
    a->start[d] = cnt ? b : 0;
    a->step[d] = cnt > 1 ? step : 1;
    s[d] = cnt;
  }
  ox_set(c->out[0], x->dt, x->ndim, s);
  return OE_OK;
}

static int slice_run(ox_call *c, oe_err *e) {
  const slice_aux *a = c->aux;
  const ox_t *x = c->in[0];
  ox_t *y = c->out[0];
  int64_t xs[OE_MAX_DIMS], st[OE_MAX_DIMS], off = 0;
  contiguous_strides(x->ndim, x->shape, xs);
  for (int d = 0; d < x->ndim; d++) { st[d] = xs[d] * a->step[d]; off += a->start[d] * xs[d]; }
  strided_copy(y->data, x->data, oe_dtype_size(x->dt), y->ndim, y->shape, st, off);
  return OE_OK;
}

/* ================= Split ================= */

typedef struct { int64_t axis, num_outputs; size_t n; int64_t *split; } split_params;

static int split_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  size_t cnt;
  const int64_t *v;
  if (ox_attr_ints(n, "split", &cnt, &v, e)) return OE_EIO;
  if (cnt > 4096) return oe_fail(e, OE_EIO, "too many parts");
  split_params *p = calloc(1, sizeof *p + (cnt + 1) * sizeof(int64_t));
  if (!p) return oe_fail(e, OE_ENOMEM, "out of memory");
  n->params = p;
  p->split = (int64_t *)(p + 1);
  if (v && opset >= 13) return oe_fail(e, OE_EIO, "split is an input at opset %d, not an attribute", opset);
  p->n = v ? cnt : 0;
  if (v) memcpy(p->split, v, cnt * sizeof *v);
  if (ox_attr_int(n, "axis", 0, &p->axis, e) || ox_attr_int(n, "num_outputs", 0, &p->num_outputs, e)) return OE_EIO;
  if (p->num_outputs && p->num_outputs != n->n_out)
    return oe_fail(e, OE_EIO, "num_outputs %lld but %d outputs", (long long)p->num_outputs, n->n_out);
  return OE_OK;
}

typedef struct { int axis; int64_t parts[]; } split_aux;

static int split_infer(ox_call *c, oe_err *e) {
  const split_params *p = c->node->params;
  const ox_t *x = c->in[0];
  int ax;
  if (ox_axis(p->axis, x->ndim, &ax, "axis", e)) return OE_EINVAL;
  split_aux *a = malloc(sizeof *a + ((size_t)c->n_out + 1) * sizeof(int64_t));
  if (!a) return oe_fail(e, OE_ENOMEM, "out of memory");
  c->aux = a;
  a->axis = ax;
  int64_t dim = x->shape[ax];
  int no = c->n_out;
  const ox_t *si = c->n_in > 1 ? c->in[1] : NULL;
  if (si || p->n) {
    int64_t *v = malloc(((size_t)no + 1) * sizeof(int64_t));
    if (!v) return oe_fail(e, OE_ENOMEM, "out of memory");
    int cnt = 0;
    if (si) {
      if (ox_read_ints(si, "split", v, no, &cnt, e)) { free(v); return OE_EINVAL; }
    } else {
      cnt = (int)p->n;
      if (cnt <= no) memcpy(v, p->split, (size_t)cnt * sizeof(int64_t));
    }
    if (cnt != no) { free(v); return oe_fail(e, OE_EINVAL, "%d split sizes for %d outputs", cnt, no); }
    int64_t sum = 0;
    for (int k = 0; k < no; k++) {
      if (v[k] < 0 || v[k] > dim) {
        long long bad = (long long)v[k]; /* read before v is freed (found by fuzz/onnx_fuzz.c) */
        free(v);
        return oe_fail(e, OE_EINVAL, "split size %lld is outside 0..%lld", bad, (long long)dim);
      }
      sum += v[k];
      a->parts[k] = v[k];
    }
    free(v);
    if (sum != dim) return oe_fail(e, OE_EINVAL, "split sizes add up to %lld, axis %d has %lld", (long long)sum, ax, (long long)dim);
  } else if (c->opset >= 18) {
    int64_t each = (dim + no - 1) / no;
    for (int k = 0; k < no; k++) {
      int64_t left = dim - each * k;
      a->parts[k] = left < 0 ? 0 : left < each ? left : each;
    }
  } else {
    if (dim % no) return oe_fail(e, OE_EINVAL, "axis %d of size %lld does not split into %d equal parts", ax, (long long)dim, no);
    for (int k = 0; k < no; k++) a->parts[k] = dim / no;
  }
  for (int k = 0; k < no; k++) {
    if (!c->out[k]) continue;
    int64_t s[OE_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) s[d] = d == ax ? a->parts[k] : x->shape[d];
    ox_set(c->out[k], x->dt, x->ndim, s);
  }
  return OE_OK;
}

static int split_run(ox_call *c, oe_err *e) {
  const split_aux *a = c->aux;
  const ox_t *x = c->in[0];
  size_t es = oe_dtype_size(x->dt);
  int ax = a->axis;
  int64_t outer = oe_numel_of(ax, x->shape), inner = oe_numel_of(x->ndim - ax - 1, x->shape + ax + 1);
  int64_t row = x->shape[ax] * inner, at = 0;
  for (int k = 0; k < c->n_out; k++) {
    int64_t blk = a->parts[k] * inner;
    if (c->out[k])
      for (int64_t o = 0; o < outer; o++)
        memcpy((char *)c->out[k]->data + o * blk * (int64_t)es, (const char *)x->data + (o * row + at) * (int64_t)es, (size_t)blk * es);
    at += blk;
  }
  return OE_OK;
}

/* ================= Expand ================= */

static int expand_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  int64_t s[OE_MAX_DIMS];
  int n;
  if (ox_read_ints(c->in[1], "the shape input", s, OE_MAX_DIMS, &n, e)) return OE_EINVAL;
  ox_t t = {0}, o = {0};
  t.ndim = n;
  for (int i = 0; i < n; i++) {
    if (s[i] < 0) return oe_fail(e, OE_EINVAL, "shape entry %lld is negative", (long long)s[i]);
    t.shape[i] = s[i];
  }
  if (!oe_broadcast_shape(x->ndim, x->shape, n, t.shape, &o.ndim, o.shape)) {
    char s1[128], s2[128];
    return oe_fail(e, OE_EINVAL, "%s does not broadcast to %s", ox_shape_str(x, s1, sizeof s1), ox_shape_str(&t, s2, sizeof s2));
  }
  ox_set(c->out[0], x->dt, o.ndim, o.shape);
  return OE_OK;
}

static int expand_run(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  ox_t *y = c->out[0];
  int64_t st[OE_MAX_DIMS], acc = 1;
  for (int i = y->ndim - 1; i >= 0; i--) {
    int j = i - (y->ndim - x->ndim);
    if (j < 0 || x->shape[j] == 1) st[i] = 0;
    else { st[i] = acc; acc *= x->shape[j]; }
  }
  strided_copy(y->data, x->data, oe_dtype_size(x->dt), y->ndim, y->shape, st, 0);
  return OE_OK;
}

/* ================= Constant ================= */

/* the constant, with the data of value_float(s)/value_int(s) stored right after it */
static int constant_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  static const char *unsupported[] = {"sparse_value", "value_string", "value_strings"};
  for (size_t i = 0; i < 3; i++)
    if (ox_attr_get(n, unsupported[i])) return oe_fail(e, OE_EIO, "attribute '%s' is not supported", unsupported[i]);
  const ox_attr *t = ox_attr_get(n, "value"), *f = ox_attr_get(n, "value_float"), *fs = ox_attr_get(n, "value_floats");
  const ox_attr *i1 = ox_attr_get(n, "value_int"), *is = ox_attr_get(n, "value_ints");
  int count = !!t + !!f + !!fs + !!i1 + !!is;
  if (count != 1) return oe_fail(e, OE_EIO, "exactly one value attribute is needed, %d given", count);
  size_t payload = fs ? fs->n * sizeof(float) : is ? is->n * sizeof(int64_t) : 8;
  ox_const *c = calloc(1, sizeof *c + 64 + payload);
  if (!c) return oe_fail(e, OE_ENOMEM, "out of memory");
  n->params = c;
  void *data = (char *)c + (sizeof *c + 63) / 64 * 64;
  if (t) {
    if (t->type != OX_A_TENSOR || !t->t) return oe_fail(e, OE_EIO, "attribute 'value' must be a tensor");
    *c = *t->t; /* data stays owned by the attribute */
    return OE_OK;
  }
  c->data = data;
  if (f || fs) {
    const ox_attr *a = f ? f : fs;
    if (a->type != (f ? OX_A_FLOAT : OX_A_FLOATS)) return oe_fail(e, OE_EIO, "attribute '%s' has the wrong type", a->name);
    c->dt = OE_F32;
    c->ndim = f ? 0 : 1;
    c->shape[0] = f ? 1 : (int64_t)fs->n;
    if (f) *(float *)data = f->f;
    else if (fs->n) memcpy(data, fs->floats, fs->n * sizeof(float));
  } else {
    const ox_attr *a = i1 ? i1 : is;
    if (a->type != (i1 ? OX_A_INT : OX_A_INTS)) return oe_fail(e, OE_EIO, "attribute '%s' has the wrong type", a->name);
    c->dt = OE_I64;
    c->ndim = i1 ? 0 : 1;
    c->shape[0] = i1 ? 1 : (int64_t)is->n;
    if (i1) *(int64_t *)data = i1->i;
    else if (is->n) memcpy(data, is->ints, is->n * sizeof(int64_t));
  }
  return OE_OK;
}

static int constant_infer(ox_call *c, oe_err *e) {
  const ox_const *k = c->node->params;
  ox_set(c->out[0], k->dt, k->ndim, k->shape);
  return OE_OK;
}

static int constant_run(ox_call *c, oe_err *e) {
  const ox_const *k = c->node->params;
  size_t nb = (size_t)oe_numel_of(k->ndim, k->shape) * oe_dtype_size(k->dt);
  if (nb) memcpy(c->out[0]->data, k->data, nb);
  return OE_OK;
}

const ox_op ox_ops_shape[] = {
  {"Reshape", 2, 2, 1, 1, OX_VIEW, reshape_parse, reshape_infer, view_run},
  {"Flatten", 1, 1, 1, 1, OX_VIEW, flatten_parse, flatten_infer, view_run},
  {"Squeeze", 1, 2, 1, 1, OX_VIEW, axes_parse, squeeze_infer, view_run},
  {"Unsqueeze", 1, 2, 1, 1, OX_VIEW, axes_parse, unsqueeze_infer, view_run},
  {"Identity", 1, 1, 1, 1, OX_VIEW, NULL, identity_infer, view_run},
  {"Dropout", 1, 3, 1, 1, OX_VIEW, dropout_parse, dropout_infer, view_run},
  {"Transpose", 1, 1, 1, 1, 0, transpose_parse, transpose_infer, transpose_run},
  {"Shape", 1, 1, 1, 1, OX_SHAPE_ONLY, shape_parse, shape_infer, shape_run},
  {"Gather", 2, 2, 1, 1, 0, gather_parse, gather_infer, gather_run},
  {"Concat", 1, -1, 1, 1, 0, concat_parse, concat_infer, concat_run},
  {"Slice", 1, 5, 1, 1, 0, slice_parse, slice_infer, slice_run},
  {"Split", 1, 2, 1, 4096, 0, split_parse, split_infer, split_run},
  {"Expand", 2, 2, 1, 1, 0, NULL, expand_infer, expand_run},
  {"Constant", 0, 0, 1, 1, 0, constant_parse, constant_infer, constant_run},
  {NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL}};
