/* ops_math.c: elementwise (unary, binary with numpy broadcasting, variadic), Clip, Cast,
 * Softmax, LayerNormalization, reductions. float32 unless stated; Add/Sub/Mul/Div, Max,
 * Min also on int64/int32 (shape arithmetic). */
#include "graph.h"
#include "../core/cpu.h"
#include "../core/util.h"
#include "../ops/ops.h"
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define PAR_MIN 32768

static int need_f32(const ox_t *t, const char *what, oe_err *e) {
  if (t->dt != OE_F32) return oe_fail(e, OE_EINVAL, "%s must be float32, got %s", what, ox_dtype_name(t->dt));
  return OE_OK;
}

static int alloc_params(ox_node *n, size_t size, oe_err *e) {
  n->params = calloc(1, size);
  if (!n->params) return oe_fail(e, OE_ENOMEM, "out of memory");
  return OE_OK;
}

/* ================= unary ================= */

typedef enum { U_RELU, U_LEAKY, U_LOG, U_SIGMOID, U_TANH, U_ERF, U_GELU, U_GELU_TANH, U_SQRT, U_EXP, U_NEG, U_ABS,
               U_RECIP, U_IDENTITY } ukind;
typedef struct { ukind kind; float alpha; } unary_params;

static ukind unary_kind(const char *op) {
  static const struct { const char *n; ukind k; } t[] = {
    {"Relu", U_RELU}, {"LeakyRelu", U_LEAKY}, {"Log", U_LOG}, {"Sigmoid", U_SIGMOID}, {"Tanh", U_TANH},
    {"Erf", U_ERF}, {"Gelu", U_GELU}, {"Sqrt", U_SQRT}, {"Exp", U_EXP}, {"Neg", U_NEG}, {"Abs", U_ABS},
    {"Reciprocal", U_RECIP}};
  for (size_t i = 0; i < sizeof t / sizeof *t; i++)
    if (!strcmp(t[i].n, op)) return t[i].k;
  return U_IDENTITY;
}

static int unary_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(unary_params), e)) return OE_ENOMEM;
  unary_params *p = n->params;
  p->kind = unary_kind(n->op_type);
  if (p->kind == U_LEAKY) return ox_attr_float(n, "alpha", 0.01f, &p->alpha, e);
  if (p->kind == U_GELU) {
    if (opset < 20) return oe_fail(e, OE_EIO, "Gelu is an opset-20 op, the model imports opset %d", opset);
    const char *ap;
    if (ox_attr_string(n, "approximate", "none", &ap, e)) return OE_EIO;
    if (!strcmp(ap, "tanh")) p->kind = U_GELU_TANH;
    else if (strcmp(ap, "none")) return oe_fail(e, OE_EIO, "attribute 'approximate' must be \"none\" or \"tanh\"");
  }
  return OE_OK;
}

static int unary_infer(ox_call *c, oe_err *e) {
  if (need_f32(c->in[0], "the input", e)) return OE_EINVAL;
  ox_set(c->out[0], OE_F32, c->in[0]->ndim, c->in[0]->shape);
  return OE_OK;
}

static inline float gelu_erf(float v) { return 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2)); }
static inline float gelu_tanh(float v) {
  const float k = 0.7978845608028654f; /* sqrt(2/pi) */
  return 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}

OE_SIMD_CLONES
static void unary_chunk(ukind k, float alpha, const float *x, float *y, int64_t n) {
  switch (k) {
    case U_RELU: for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f; break;
    case U_LEAKY: for (int64_t i = 0; i < n; i++) y[i] = x[i] >= 0.0f ? x[i] : alpha * x[i]; break;
    case U_LOG: for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]); break;
    case U_SIGMOID: for (int64_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-x[i])); break;
    case U_TANH: for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]); break;
    case U_ERF: for (int64_t i = 0; i < n; i++) y[i] = erff(x[i]); break;
    case U_GELU: for (int64_t i = 0; i < n; i++) y[i] = gelu_erf(x[i]); break;
    case U_GELU_TANH: for (int64_t i = 0; i < n; i++) y[i] = gelu_tanh(x[i]); break;
    case U_SQRT: for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]); break;
    case U_EXP: for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]); break;
    case U_NEG: for (int64_t i = 0; i < n; i++) y[i] = -x[i]; break;
    case U_ABS: for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]); break;
    case U_RECIP: for (int64_t i = 0; i < n; i++) y[i] = 1.0f / x[i]; break;
    case U_IDENTITY: if (y != x) memmove(y, x, (size_t)n * sizeof(float)); break;
  }
}

static void unary_apply(ukind k, float alpha, const float *x, float *y, int64_t n) {
  const int64_t CH = 8192;
  int64_t nb = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > PAR_MIN && !omp_in_parallel())
  for (int64_t b = 0; b < nb; b++) {
    int64_t i0 = b * CH;
    unary_chunk(k, alpha, x + i0, y + i0, n - i0 < CH ? n - i0 : CH);
  }
}

static int unary_run(ox_call *c, oe_err *e) {
  const unary_params *p = c->node->params;
  unary_apply(p->kind, p->alpha, c->in[0]->data, c->out[0]->data, ox_numel(c->out[0]));
  return OE_OK;
}

/* ================= binary with broadcasting ================= */

typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAX, B_MIN } bkind;
typedef struct { bkind kind; } binary_params;

static int binary_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(binary_params), e)) return OE_ENOMEM;
  binary_params *p = n->params;
  const char *o = n->op_type;
  p->kind = !strcmp(o, "Add") ? B_ADD : !strcmp(o, "Sub") ? B_SUB : !strcmp(o, "Mul") ? B_MUL : !strcmp(o, "Div") ? B_DIV
          : !strcmp(o, "Pow") ? B_POW : !strcmp(o, "Max") ? B_MAX : B_MIN;
  if (opset < 7 && ox_attr_get(n, "broadcast")) return oe_fail(e, OE_EIO, "legacy 'broadcast' attributes are not supported");
  return OE_OK;
}

static int broadcast(const ox_t *a, const ox_t *b, ox_t *out, oe_err *e) {
  int n;
  if (!oe_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &n, out->shape)) {
    char s1[128], s2[128];
    return oe_fail(e, OE_EINVAL, "shapes %s and %s do not broadcast", ox_shape_str(a, s1, sizeof s1), ox_shape_str(b, s2, sizeof s2));
  }
  out->ndim = n;
  return OE_OK;
}

static int int_dtype(oe_dtype d) { return d == OE_I64 || d == OE_I32; }

static int binary_infer(ox_call *c, oe_err *e) {
  const binary_params *p = c->node->params;
  /* Max / Min are variadic: fold every input's shape */
  const ox_t *a = c->in[0];
  if (p->kind == B_POW) {
    if (need_f32(a, "the base", e)) return OE_EINVAL;
    if (c->in[1]->dt != OE_F32 && !int_dtype(c->in[1]->dt))
      return oe_fail(e, OE_EINVAL, "the exponent must be float32, int64 or int32, got %s", ox_dtype_name(c->in[1]->dt));
  } else if (a->dt != OE_F32 && !int_dtype(a->dt)) {
    return oe_fail(e, OE_EINVAL, "inputs must be float32, int64 or int32, got %s", ox_dtype_name(a->dt));
  }
  if (int_dtype(a->dt) && c->n_in > 2)
    return oe_fail(e, OE_EINVAL, "%d integer inputs (more than two are supported for float32 only)", c->n_in);
  ox_t acc = *a;
  for (int k = 1; k < c->n_in; k++) {
    const ox_t *b = c->in[k];
    if (!b) return oe_fail(e, OE_EINVAL, "input %d is empty", k + 1);
    if (p->kind != B_POW && b->dt != a->dt)
      return oe_fail(e, OE_EINVAL, "inputs are %s and %s (they must have one type)", ox_dtype_name(a->dt), ox_dtype_name(b->dt));
    ox_t o = acc;
    if (broadcast(&acc, b, &o, e)) return OE_EINVAL;
    acc = o;
  }
  ox_set(c->out[0], a->dt, acc.ndim, acc.shape);
  return OE_OK;
}

/* element strides of t inside the shape of o (0 where broadcast) */
static void bstrides(const ox_t *t, const ox_t *o, int64_t *st) {
  int64_t acc = 1;
  for (int i = o->ndim - 1; i >= 0; i--) {
    int j = i - (o->ndim - t->ndim);
    if (j < 0 || t->shape[j] == 1) st[i] = 0;
    else { st[i] = acc; acc *= t->shape[j]; }
  }
}

static inline int64_t geti(const void *d, oe_dtype dt, int64_t i) {
  return dt == OE_I64 ? ((const int64_t *)d)[i] : ((const int32_t *)d)[i];
}

/* integer a op b broadcast into out; division by zero and overflowing division refused */
static int binary_int(bkind k, const ox_t *a, const ox_t *b, ox_t *out, oe_err *e) {
  int64_t sa[OE_MAX_DIMS], sb[OE_MAX_DIMS], idx[OE_MAX_DIMS] = {0};
  bstrides(a, out, sa);
  bstrides(b, out, sb);
  int64_t n = ox_numel(out), oa = 0, ob = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t x = geti(a->data, a->dt, oa), y = geti(b->data, b->dt, ob), r = 0;
    switch (k) {
      case B_ADD: r = (int64_t)((uint64_t)x + (uint64_t)y); break;
      case B_SUB: r = (int64_t)((uint64_t)x - (uint64_t)y); break;
      case B_MUL: r = (int64_t)((uint64_t)x * (uint64_t)y); break;
      case B_DIV:
        if (y == 0) return oe_fail(e, OE_EINVAL, "integer division by zero (element %lld)", (long long)i);
        if (y == -1 && x == INT64_MIN) return oe_fail(e, OE_EINVAL, "integer division overflows (element %lld)", (long long)i);
        r = x / y;
        break;
      case B_MAX: r = x > y ? x : y; break;
      case B_MIN: r = x < y ? x : y; break;
      case B_POW: break;
    }
    if (out->dt == OE_I64) ((int64_t *)out->data)[i] = r;
    else ((int32_t *)out->data)[i] = (int32_t)r;
    for (int d = out->ndim - 1; d >= 0; d--) {
      oa += sa[d];
      ob += sb[d];
      if (++idx[d] < out->shape[d]) break;
      oa -= sa[d] * out->shape[d];
      ob -= sb[d] * out->shape[d];
      idx[d] = 0;
    }
  }
  return OE_OK;
}

static oe_binop binop_of(bkind k) {
  switch (k) {
    case B_ADD: return OE_ADD; case B_SUB: return OE_SUB; case B_MUL: return OE_MUL; case B_DIV: return OE_DIV;
    case B_POW: return OE_POW; case B_MAX: return OE_MAXIMUM; case B_MIN: return OE_MINIMUM;
  }
  return OE_ADD;
}

static int binary_run(ox_call *c, oe_err *e) {
  const binary_params *p = c->node->params;
  ox_t *o = c->out[0];
  if (int_dtype(o->dt)) {
    if (c->n_in == 1) { memmove(o->data, c->in[0]->data, ox_nbytes(o)); return OE_OK; }
    ox_t acc = *c->in[0];
    for (int k = 1; k < c->n_in; k++) {
      ox_t t = *o;
      if (broadcast(&acc, c->in[k], &t, e)) return OE_EINVAL;
      if (binary_int(p->kind, &acc, c->in[k], &t, e)) return OE_EINVAL;
      acc = t;
    }
    return OE_OK;
  }
  const ox_t *a = c->in[0], *b = c->n_in > 1 ? c->in[1] : NULL;
  if (p->kind == B_POW) {
    /* as ONNX Runtime: a scalar exponent 2 or 3 is a product, an integer exponent is converted */
    int64_t nb = ox_numel(b);
    float *yb = NULL;
    const float *fb = b->data;
    if (b->dt != OE_F32) {
      yb = malloc((size_t)(nb ? nb : 1) * sizeof(float));
      if (!yb) return oe_fail(e, OE_ENOMEM, "out of memory");
      for (int64_t i = 0; i < nb; i++) yb[i] = (float)geti(b->data, b->dt, i);
      fb = yb;
    }
    if (nb == 1 && (fb[0] == 2.0f || fb[0] == 3.0f) && ox_numel(o) == ox_numel(a)) {
      const float *x = a->data;
      float *y = o->data;
      int64_t n = ox_numel(o);
      if (fb[0] == 2.0f) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
      } else {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i] * x[i];
      }
    } else {
      oe_binary_f32(OE_POW, a->data, a->ndim, a->shape, fb, b->ndim, b->shape, o->data, o->ndim, o->shape);
    }
    free(yb);
    return OE_OK;
  }
  if (!b) { if (o->data != a->data) memmove(o->data, a->data, ox_nbytes(o)); return OE_OK; }
  /* variadic Max / Min: the first input expanded to the output, then folded in place */
  if (c->n_in > 2 || ox_numel(a) != ox_numel(o)) {
    oe_expand_f32(a->data, a->ndim, a->shape, o->data, o->ndim, o->shape);
    for (int k = 1; k < c->n_in; k++) {
      const ox_t *t = c->in[k];
      oe_binary_f32(binop_of(p->kind), o->data, o->ndim, o->shape, t->data, t->ndim, t->shape, o->data, o->ndim, o->shape);
    }
    return OE_OK;
  }
  oe_binary_f32(binop_of(p->kind), a->data, a->ndim, a->shape, b->data, b->ndim, b->shape, o->data, o->ndim, o->shape);
  return OE_OK;
}

/* ================= Clip ================= */

typedef struct { float lo, hi; } clip_params;

static int clip_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(clip_params), e)) return OE_ENOMEM;
  clip_params *p = n->params;
  p->lo = -FLT_MAX;
  p->hi = FLT_MAX;
  if (opset < 11) {
    if (ox_attr_float(n, "min", -FLT_MAX, &p->lo, e) || ox_attr_float(n, "max", FLT_MAX, &p->hi, e)) return OE_EIO;
  } else if (ox_attr_get(n, "min") || ox_attr_get(n, "max")) {
    return oe_fail(e, OE_EIO, "min and max are inputs since opset 11, not attributes");
  }
  return OE_OK;
}

static int clip_infer(ox_call *c, oe_err *e) {
  if (need_f32(c->in[0], "the input", e)) return OE_EINVAL;
  for (int k = 1; k < c->n_in; k++) {
    if (!c->in[k]) continue;
    if (need_f32(c->in[k], k == 1 ? "min" : "max", e)) return OE_EINVAL;
    if (ox_numel(c->in[k]) != 1) {
      char s[96];
      return oe_fail(e, OE_EINVAL, "%s must hold one value, got shape %s", k == 1 ? "min" : "max", ox_shape_str(c->in[k], s, sizeof s));
    }
  }
  ox_set(c->out[0], OE_F32, c->in[0]->ndim, c->in[0]->shape);
  return OE_OK;
}

static void clip_bounds(const ox_call *c, float *lo, float *hi) {
  const clip_params *p = c->node->params;
  *lo = p->lo;
  *hi = p->hi;
  if (c->n_in > 1 && c->in[1]) *lo = *(const float *)c->in[1]->data;
  if (c->n_in > 2 && c->in[2]) *hi = *(const float *)c->in[2]->data;
}

OE_SIMD_CLONES
static void clip_chunk(const float *x, float *y, int64_t n, float lo, float hi) {
  for (int64_t i = 0; i < n; i++) {
    float v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

static int clip_run(ox_call *c, oe_err *e) {
  float lo, hi;
  clip_bounds(c, &lo, &hi);
  const float *x = c->in[0]->data;
  float *y = c->out[0]->data;
  int64_t n = ox_numel(c->out[0]);
  const int64_t CH = 8192;
  int64_t nb = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
  for (int64_t b = 0; b < nb; b++) clip_chunk(x + b * CH, y + b * CH, n - b * CH < CH ? n - b * CH : CH, lo, hi);
  return OE_OK;
}

/* ================= fusing into a producer's output pass ================= */

static int scalar_static(const ox_t *t, float *v) {
  if (!t || !t->data || t->dt != OE_F32 || ox_numel(t) != 1) return 0;
  *v = *(const float *)t->data;
  return 1;
}

int ox_post_of(const ox_call *t, int from_slot, oe_post *into) {
  const ox_op *op = t->node->op;
  if (into->n >= OE_POST_MAX_OPS) return 0;
  oe_post_kind k;
  float a = 0, b = 0;
  if (op->run == unary_run && from_slot == 0) {
    const unary_params *p = t->node->params;
    switch (p->kind) {
      case U_RELU: k = OE_POST_RELU; break;
      case U_LEAKY: k = OE_POST_LEAKY; a = p->alpha; break;
      case U_SIGMOID: k = OE_POST_SIGMOID; break;
      case U_TANH: k = OE_POST_TANH; break;
      default: return 0;
    }
  } else if (op->run == clip_run && from_slot == 0) {
    for (int q = 1; q < t->n_in; q++)
      if (t->in[q] && !t->in[q]->data) return 0;
    clip_bounds(t, &a, &b);
    k = OE_POST_CLIP;
  } else if (op->run == binary_run && t->n_in == 2 && t->out[0]->dt == OE_F32) {
    const binary_params *p = t->node->params;
    const ox_t *other = t->in[1 - from_slot];
    if (!scalar_static(other, &a) || other->ndim > t->out[0]->ndim) return 0;
    switch (p->kind) {
      case B_ADD: k = OE_POST_ADDC; break;
      case B_MUL: k = OE_POST_MULC; break;
      case B_SUB: k = from_slot == 0 ? OE_POST_SUBC : OE_POST_RSUBC; break;
      case B_DIV: k = from_slot == 0 ? OE_POST_DIVC : OE_POST_RDIVC; break;
      case B_MAX: k = OE_POST_MAXC; break;
      case B_MIN: k = OE_POST_MINC; break;
      default: return 0;
    }
  } else {
    return 0;
  }
  into->op[into->n].kind = k;
  into->op[into->n].a = a;
  into->op[into->n].b = b;
  into->n++;
  return 1;
}

/* ================= Cast ================= */

typedef struct { oe_dtype to; } cast_params;

static int cast_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(cast_params), e)) return OE_ENOMEM;
  cast_params *p = n->params;
  int64_t to;
  if (ox_attr_int(n, "to", -1, &to, e)) return OE_EIO;
  if (to == OX_FLOAT) p->to = OE_F32;
  else if (to == OX_INT64) p->to = OE_I64;
  else if (to == OX_INT32) p->to = OE_I32;
  else if (to < 0) return oe_fail(e, OE_EIO, "attribute 'to' is missing");
  else return oe_fail(e, OE_EIO, "Cast to ONNX data type %lld is not supported (FLOAT, INT64, INT32 are)", (long long)to);
  return OE_OK;
}

static int cast_infer(ox_call *c, oe_err *e) {
  const cast_params *p = c->node->params;
  ox_set(c->out[0], p->to, c->in[0]->ndim, c->in[0]->shape);
  return OE_OK;
}

/* float -> integer: truncation toward zero; NaN and values out of range give the type's
 * minimum (what x86's conversion instructions give ONNX Runtime's static_cast) */
static int64_t f2i(float v, int64_t lo, int64_t hi) {
  if (!(v >= (float)lo && v < -(float)lo)) return lo;
  int64_t r = (int64_t)v;
  return r > hi ? lo : r;
}

static int cast_run(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  ox_t *y = c->out[0];
  int64_t n = ox_numel(y);
  if (x->dt == y->dt) { if (x->data != y->data) memmove(y->data, x->data, ox_nbytes(y)); return OE_OK; }
  for (int64_t i = 0; i < n; i++) {
    if (x->dt == OE_F32) {
      float v = ((const float *)x->data)[i];
      if (y->dt == OE_I64) ((int64_t *)y->data)[i] = f2i(v, INT64_MIN, INT64_MAX);
      else ((int32_t *)y->data)[i] = (int32_t)f2i(v, INT32_MIN, INT32_MAX);
    } else {
      int64_t v = geti(x->data, x->dt, i);
      if (y->dt == OE_F32) ((float *)y->data)[i] = (float)v;
      else if (y->dt == OE_I64) ((int64_t *)y->data)[i] = v;
      else ((int32_t *)y->data)[i] = (int32_t)v;
    }
  }
  return OE_OK;
}

/* ================= Softmax ================= */

typedef struct { int64_t axis; } axis_params;

static int softmax_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(axis_params), e)) return OE_ENOMEM;
  return ox_attr_int(n, "axis", opset < 13 ? 1 : -1, &((axis_params *)n->params)->axis, e);
}

typedef struct { int64_t outer, n, inner; } sm_aux;

static int softmax_infer(ox_call *c, oe_err *e) {
  const ox_t *x = c->in[0];
  if (need_f32(x, "the input", e)) return OE_EINVAL;
  int ax;
  if (ox_axis(((const axis_params *)c->node->params)->axis, x->ndim, &ax, "axis", e)) return OE_EINVAL;
  sm_aux *a = malloc(sizeof *a);
  if (!a) return oe_fail(e, OE_ENOMEM, "out of memory");
  a->outer = oe_numel_of(ax, x->shape);
  if (c->opset < 13) { /* the input seen as (outer, rest): one softmax over everything after axis */
    a->n = oe_numel_of(x->ndim - ax, x->shape + ax);
    a->inner = 1;
  } else {
    a->n = x->shape[ax];
    a->inner = oe_numel_of(x->ndim - ax - 1, x->shape + ax + 1);
  }
  c->aux = a;
  ox_set(c->out[0], OE_F32, x->ndim, x->shape);
  return OE_OK;
}

static int softmax_run(ox_call *c, oe_err *e) {
  const sm_aux *a = c->aux;
  const float *x = c->in[0]->data;
  float *y = c->out[0]->data;
  if (a->n == 0) return OE_OK;
  if (a->inner == 1) {
    oe_softmax_f32(x, y, a->outer, a->n, 0);
    return OE_OK;
  }
  /* softmax along a middle axis: strided rows */
#pragma omp parallel for schedule(static) if (a->outer * a->n * a->inner > PAR_MIN)
  for (int64_t r = 0; r < a->outer * a->inner; r++) {
    int64_t o = r / a->inner, i = r % a->inner;
    const float *px = x + o * a->n * a->inner + i;
    float *py = y + o * a->n * a->inner + i;
    float mx = -INFINITY;
    for (int64_t j = 0; j < a->n; j++) mx = px[j * a->inner] > mx ? px[j * a->inner] : mx;
    double s = 0;
    for (int64_t j = 0; j < a->n; j++) { float v = expf(px[j * a->inner] - mx); py[j * a->inner] = v; s += v; }
    float inv = (float)(1.0 / s);
    for (int64_t j = 0; j < a->n; j++) py[j * a->inner] *= inv;
  }
  return OE_OK;
}

/* ================= LayerNormalization ================= */

typedef struct { int64_t axis; float eps; } ln_params;

static int ln_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (opset < 17) return oe_fail(e, OE_EIO, "LayerNormalization is an opset-17 op, the model imports opset %d", opset);
  if (alloc_params(n, sizeof(ln_params), e)) return OE_ENOMEM;
  ln_params *p = n->params;
  int64_t stash;
  if (ox_attr_int(n, "axis", -1, &p->axis, e) || ox_attr_float(n, "epsilon", 1e-5f, &p->eps, e) ||
      ox_attr_int(n, "stash_type", 1, &stash, e))
    return OE_EIO;
  if (stash != 1) return oe_fail(e, OE_EIO, "stash_type %lld is not supported (1: float32)", (long long)stash);
  return OE_OK;
}

typedef struct { int64_t rows, n; } ln_aux;

static int ln_infer(ox_call *c, oe_err *e) {
  const ln_params *p = c->node->params;
  const ox_t *x = c->in[0];
  if (need_f32(x, "X", e)) return OE_EINVAL;
  int ax;
  if (ox_axis(p->axis, x->ndim, &ax, "axis", e)) return OE_EINVAL;
  int64_t n = oe_numel_of(x->ndim - ax, x->shape + ax);
  for (int k = 1; k < 3; k++) {
    const ox_t *t = k < c->n_in ? c->in[k] : NULL;
    if (!t) continue;
    char s1[128], s2[128];
    if (need_f32(t, k == 1 ? "Scale" : "B", e)) return OE_EINVAL;
    /* the normalized shape, possibly with leading 1s */
    int ok = t->ndim <= x->ndim - ax || ox_numel(t) == n;
    for (int d = 0; ok && d < t->ndim; d++) {
      int xd = x->ndim - t->ndim + d;
      ok = xd >= ax ? t->shape[d] == x->shape[xd] : t->shape[d] == 1;
    }
    if (!ok || ox_numel(t) != n)
      return oe_fail(e, OE_EINVAL, "%s has shape %s, the normalized part of X %s is its last %d dimensions",
                     k == 1 ? "Scale" : "B", ox_shape_str(t, s1, sizeof s1), ox_shape_str(x, s2, sizeof s2), x->ndim - ax);
  }
  ln_aux *a = malloc(sizeof *a);
  if (!a) return oe_fail(e, OE_ENOMEM, "out of memory");
  a->rows = oe_numel_of(ax, x->shape);
  a->n = n;
  c->aux = a;
  ox_set(c->out[0], OE_F32, x->ndim, x->shape);
  int64_t st[OE_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) st[d] = d < ax ? x->shape[d] : 1;
  for (int k = 1; k < c->n_out; k++)
    if (c->out[k]) ox_set(c->out[k], OE_F32, x->ndim, st);
  return OE_OK;
}

static int ln_run(ox_call *c, oe_err *e) {
  const ln_params *p = c->node->params;
  const ln_aux *a = c->aux;
  const float *w = c->n_in > 1 && c->in[1] ? c->in[1]->data : NULL;
  const float *b = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL;
  float *mean = c->n_out > 1 && c->out[1] ? c->out[1]->data : NULL;
  float *rstd = c->n_out > 2 && c->out[2] ? c->out[2]->data : NULL;
  if (a->n == 0) return OE_OK;
  oe_layernorm_forward(c->in[0]->data, w, b, c->out[0]->data, mean, rstd, a->rows, a->n, p->eps);
  return OE_OK;
}

/* ================= ReduceMax / ReduceMean / ReduceSum ================= */

typedef struct { int kind; int keepdims, noop; size_t n_axes; int64_t axes[OE_MAX_DIMS]; int axes_input; } reduce_params;
enum { R_MAX, R_MEAN, R_SUM };

static int reduce_parse(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e) {
  if (alloc_params(n, sizeof(reduce_params), e)) return OE_ENOMEM;
  reduce_params *p = n->params;
  p->kind = !strcmp(n->op_type, "ReduceMax") ? R_MAX : !strcmp(n->op_type, "ReduceMean") ? R_MEAN : R_SUM;
  int64_t kd, noop;
  if (ox_attr_int(n, "keepdims", 1, &kd, e) || ox_attr_int(n, "noop_with_empty_axes", 0, &noop, e)) return OE_EIO;
  p->keepdims = kd != 0;
  p->noop = noop != 0;
  /* axes became an input at opset 13 for ReduceSum, 18 for the others */
  p->axes_input = opset >= (p->kind == R_SUM ? 13 : 18);
  const int64_t *ax;
  if (ox_attr_ints(n, "axes", &p->n_axes, &ax, e)) return OE_EIO;
  if (p->n_axes && p->axes_input) return oe_fail(e, OE_EIO, "axes is an input at opset %d, not an attribute", opset);
  if (p->n_axes > OE_MAX_DIMS) return oe_fail(e, OE_EIO, "%zu axes (at most %d)", p->n_axes, OE_MAX_DIMS);
  for (size_t i = 0; i < p->n_axes; i++) p->axes[i] = ax[i];
  if (!p->axes_input && n->n_in > 1 && n->in[1] >= 0) return oe_fail(e, OE_EIO, "axes is an attribute at opset %d, not an input", opset);
  return OE_OK;
}

typedef struct { uint8_t red[OE_MAX_DIMS]; int ndim; int64_t shape[OE_MAX_DIMS]; int64_t outer, n, inner; int contiguous, identity; } reduce_aux;

static int reduce_infer(ox_call *c, oe_err *e) {
  const reduce_params *p = c->node->params;
  const ox_t *x = c->in[0];
  if (need_f32(x, "the input", e)) return OE_EINVAL;
  int64_t axes[OE_MAX_DIMS];
  int na = 0;
  if (p->axes_input) {
    if (c->n_in > 1 && c->in[1] && ox_read_ints(c->in[1], "axes", axes, OE_MAX_DIMS, &na, e)) return OE_EINVAL;
  } else {
    na = (int)p->n_axes;
    for (int i = 0; i < na; i++) axes[i] = p->axes[i];
  }
  reduce_aux *a = calloc(1, sizeof *a);
  if (!a) return oe_fail(e, OE_ENOMEM, "out of memory");
  c->aux = a;
  a->ndim = x->ndim;
  for (int d = 0; d < x->ndim; d++) a->shape[d] = x->shape[d];
  if (na == 0 && p->noop) a->identity = 1;
  for (int i = 0; i < na; i++) {
    int ax;
    if (ox_axis(axes[i], x->ndim, &ax, "axis", e)) return OE_EINVAL;
    if (a->red[ax]) return oe_fail(e, OE_EINVAL, "axis %lld is listed twice", (long long)axes[i]);
    a->red[ax] = 1;
  }
  if (na == 0 && !p->noop)
    for (int d = 0; d < x->ndim; d++) a->red[d] = 1;
  int64_t os[OE_MAX_DIMS];
  int on = 0;
  for (int d = 0; d < x->ndim; d++) {
    if (a->red[d] && x->shape[d] == 0 && !a->identity)
      return oe_fail(e, OE_EINVAL, "reduces over dimension %d of size 0", d);
    if (!a->red[d]) os[on++] = x->shape[d];
    else if (p->keepdims) os[on++] = 1;
  }
  /* reduced axes forming one run: (outer, n, inner) */
  int first = -1, last = -1;
  for (int d = 0; d < x->ndim; d++)
    if (a->red[d] && x->shape[d] != 1) { if (first < 0) first = d; last = d; }
  a->contiguous = 1;
  for (int d = first; first >= 0 && d <= last; d++)
    if (!a->red[d] && x->shape[d] != 1) a->contiguous = 0;
  if (first < 0) { a->outer = ox_numel(x); a->n = 1; a->inner = 1; }
  else {
    a->outer = oe_numel_of(first, x->shape);
    a->n = oe_numel_of(last - first + 1, x->shape + first);
    a->inner = oe_numel_of(x->ndim - last - 1, x->shape + last + 1);
  }
  ox_set(c->out[0], OE_F32, on, os);
  return OE_OK;
}

static int reduce_run(ox_call *c, oe_err *e) {
  const reduce_params *p = c->node->params;
  const reduce_aux *a = c->aux;
  const float *x = c->in[0]->data;
  float *y = c->out[0]->data;
  if (a->identity) { if (y != x) memmove(y, x, ox_nbytes(c->out[0])); return OE_OK; }
  if (a->contiguous) {
    if (p->kind == R_MAX || a->outer * a->inner > 1 || a->n < 4096) {
      oe_reduce_f32(p->kind == R_MAX ? OE_RMAX : p->kind == R_MEAN ? OE_RMEAN : OE_RSUM, x, a->outer, a->n, a->inner, y, NULL);
    } else { /* one long sum: parallel */
      double s = oe_sum_all_f32(x, a->n);
      y[0] = (float)(p->kind == R_MEAN ? s / (double)a->n : s);
    }
    return OE_OK;
  }
  /* scattered axes: odometer over the reduced index space for each output element */
  int64_t stride[OE_MAX_DIMS], acc = 1;
  for (int d = a->ndim - 1; d >= 0; d--) { stride[d] = acc; acc *= a->shape[d]; }
  int kd[OE_MAX_DIMS], rd[OE_MAX_DIMS], nk = 0, nr = 0;
  int64_t count = 1;
  for (int d = 0; d < a->ndim; d++) {
    if (a->red[d]) { rd[nr++] = d; count *= a->shape[d]; }
    else kd[nk++] = d;
  }
  int64_t nout = ox_numel(c->out[0]);
#pragma omp parallel for schedule(static) if (nout * count > PAR_MIN)
  for (int64_t o = 0; o < nout; o++) {
    int64_t base = 0, rem = o;
    for (int q = nk - 1; q >= 0; q--) { base += (rem % a->shape[kd[q]]) * stride[kd[q]]; rem /= a->shape[kd[q]]; }
    double s = 0;
    float mx = -INFINITY;
    int64_t idx[OE_MAX_DIMS] = {0}, off = 0;
    for (int64_t i = 0; i < count; i++) {
      float v = x[base + off];
      s += v;
      if (v > mx || v != v) mx = v;
      for (int q = nr - 1; q >= 0; q--) {
        off += stride[rd[q]];
        if (++idx[q] < a->shape[rd[q]]) break;
        off -= stride[rd[q]] * a->shape[rd[q]];
        idx[q] = 0;
      }
    }
    y[o] = p->kind == R_MAX ? mx : (float)(p->kind == R_MEAN ? s / (double)count : s);
  }
  return OE_OK;
}

const ox_op ox_ops_math[] = {
  {"Relu", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"LeakyRelu", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Log", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Sigmoid", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Tanh", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Erf", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Gelu", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Sqrt", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Exp", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Neg", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Abs", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Reciprocal", 1, 1, 1, 1, OX_INPLACE, unary_parse, unary_infer, unary_run},
  {"Add", 2, 2, 1, 1, OX_INPLACE, binary_parse, binary_infer, binary_run},
  {"Sub", 2, 2, 1, 1, OX_INPLACE, binary_parse, binary_infer, binary_run},
  {"Mul", 2, 2, 1, 1, OX_INPLACE, binary_parse, binary_infer, binary_run},
  {"Div", 2, 2, 1, 1, OX_INPLACE, binary_parse, binary_infer, binary_run},
  {"Pow", 2, 2, 1, 1, OX_INPLACE, binary_parse, binary_infer, binary_run},
  {"Max", 1, -1, 1, 1, OX_INPLACE, binary_parse, binary_infer, binary_run},
  {"Min", 1, -1, 1, 1, OX_INPLACE, binary_parse, binary_infer, binary_run},
  {"Clip", 1, 3, 1, 1, OX_INPLACE, clip_parse, clip_infer, clip_run},
  {"Cast", 1, 1, 1, 1, OX_INPLACE, cast_parse, cast_infer, cast_run},
  {"Softmax", 1, 1, 1, 1, 0, softmax_parse, softmax_infer, softmax_run},
  {"LayerNormalization", 1, 3, 1, 3, 0, ln_parse, ln_infer, ln_run},
  {"ReduceMax", 1, 2, 1, 1, 0, reduce_parse, reduce_infer, reduce_run},
  {"ReduceMean", 1, 2, 1, 1, 0, reduce_parse, reduce_infer, reduce_run},
  {"ReduceSum", 1, 2, 1, 1, 0, reduce_parse, reduce_infer, reduce_run},
  {NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL}};
