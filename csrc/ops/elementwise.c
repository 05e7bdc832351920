/* elementwise.c: broadcasting binary ops, unary ops and their backward. */
#include "ops.h"
#include "../core/cpu.h"
#include <math.h>
#include <string.h>

int oe_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout, int64_t *sout) {
  int n = na > nb ? na : nb;
  for (int i = 0; i < n; i++) {
    int64_t da = i < n - na ? 1 : sa[i - (n - na)];
    int64_t db = i < n - nb ? 1 : sb[i - (n - nb)];
    if (da != db && da != 1 && db != 1) return 0;
    sout[i] = da == 1 ? db : da;
  }
  *nout = n;
  return 1;
}

/* element strides of a tensor of shape s (ndim ns) seen inside shape so (ndim no); 0 where broadcast */
static void bcast_strides(int ns, const int64_t *s, int no, const int64_t *so, int64_t *st) {
  int64_t acc = 1;
  for (int i = no - 1; i >= 0; i--) {
    int j = i - (no - ns);
    if (j < 0 || s[j] == 1) st[i] = 0;
    else { st[i] = acc; acc *= s[j]; }
    (void)so;
  }
}

static inline float binop(oe_binop op, float x, float y) {
  switch (op) {
    case OE_ADD: return x + y;
    case OE_SUB: return x - y;
    case OE_MUL: return x * y;
    case OE_DIV: return x / y;
    case OE_MAXIMUM: return x > y || isnan(x) ? x : y;
    case OE_MINIMUM: return x < y || isnan(x) ? x : y;
    case OE_EQ: return x == y;
    case OE_NE: return x != y;
    case OE_LT: return x < y;
    case OE_LE: return x <= y;
    case OE_GT: return x > y;
    case OE_GE: return x >= y;
    case OE_POW: return powf(x, y);
  }
  return 0;
}

#define BIN_LOOP(EXPR)                                                             \
  _Pragma("omp parallel for schedule(static) if (rows * inner > 32768)")           \
  for (int64_t r = 0; r < rows; r++) {                                             \
    int64_t oa = 0, ob = 0, rem = r;                                               \
    for (int d = nout - 2; d >= 0; d--) {                                          \
      int64_t i = rem % sout[d]; rem /= sout[d];                                   \
      oa += i * sta[d]; ob += i * stb[d];                                          \
    }                                                                              \
    const float *pa = a + oa, *pb = b + ob; float *po = out + r * inner;           \
    for (int64_t j = 0; j < inner; j++) { float x = pa[j * ia], y = pb[j * ib]; po[j] = (EXPR); } \
  }

OE_SIMD_CLONES
void oe_binary_f32(oe_binop op, const float *a, int na, const int64_t *sa, const float *b, int nb,
                   const int64_t *sb, float *out, int nout, const int64_t *sout) {
  int64_t sta[OE_MAX_DIMS], stb[OE_MAX_DIMS];
  if (nout == 0) { out[0] = binop(op, a[0], b[0]); return; }
  bcast_strides(na, sa, nout, sout, sta);
  bcast_strides(nb, sb, nout, sout, stb);
  int64_t inner = sout[nout - 1], rows = oe_numel_of(nout - 1, sout);
  int64_t ia = sta[nout - 1], ib = stb[nout - 1];
  switch (op) {
    case OE_ADD: BIN_LOOP(x + y); break;
    case OE_SUB: BIN_LOOP(x - y); break;
    case OE_MUL: BIN_LOOP(x * y); break;
    case OE_DIV: BIN_LOOP(x / y); break;
    default: BIN_LOOP(binop(op, x, y)); break;
  }
}

static inline float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2)); }
static inline float gelu_tanh(float x) {
  const float k = 0.7978845608028654f; /* sqrt(2/pi) */
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

OE_SIMD_CLONES
void oe_unary_f32(oe_unop op, const float *x, float *out, int64_t n, float p1, float p2) {
#define UN_LOOP(EXPR) \
  _Pragma("omp parallel for schedule(static) if (n > 32768)") \
  for (int64_t i = 0; i < n; i++) { float v = x[i]; out[i] = (EXPR); }
  switch (op) {
    case OE_NEG: UN_LOOP(-v); break;
    case OE_EXP: UN_LOOP(expf(v)); break;
    case OE_LOG: UN_LOOP(logf(v)); break;
    case OE_SQRT: UN_LOOP(sqrtf(v)); break;
    case OE_RSQRT: UN_LOOP(1.0f / sqrtf(v)); break;
    case OE_ABS: UN_LOOP(fabsf(v)); break;
    case OE_TANH: UN_LOOP(tanhf(v)); break;
    case OE_SIGMOID: UN_LOOP(1.0f / (1.0f + expf(-v))); break;
    case OE_RELU: UN_LOOP(v > 0 ? v : 0.0f); break;
    case OE_GELU: UN_LOOP(gelu_erf(v)); break;
    case OE_GELU_TANH: UN_LOOP(gelu_tanh(v)); break;
    case OE_POWS: UN_LOOP(p1 == 2.0f ? v * v : powf(v, p1)); break;
    case OE_CLAMP: UN_LOOP(isnan(v) ? v : (v < p1 ? p1 : (v > p2 ? p2 : v))); break;
    case OE_ADDS: UN_LOOP(v + p1); break;
    case OE_MULS: UN_LOOP(v * p1); break;
    case OE_RSUBS: UN_LOOP(p1 - v); break;
    case OE_RDIVS: UN_LOOP(p1 / v); break;
    case OE_SQUARE: UN_LOOP(v * v); break;
    case OE_SIGN: UN_LOOP((float)((v > 0) - (v < 0))); break;
  }
#undef UN_LOOP
}

OE_SIMD_CLONES
void oe_unary_backward_f32(oe_unop op, const float *x, const float *y, const float *g, float *gx, int64_t n,
                           float p1, float p2) {
#define UB_LOOP(EXPR) \
  _Pragma("omp parallel for schedule(static) if (n > 32768)") \
  for (int64_t i = 0; i < n; i++) { float v = x ? x[i] : 0.0f, o = y ? y[i] : 0.0f, d = g[i]; (void)v; (void)o; gx[i] = (EXPR); }
  switch (op) {
    case OE_NEG: UB_LOOP(-d); break;
    case OE_EXP: UB_LOOP(d * o); break;
    case OE_LOG: UB_LOOP(d / v); break;
    case OE_SQRT: UB_LOOP(d * 0.5f / o); break;
    case OE_RSQRT: UB_LOOP(d * -0.5f * o * o * o); break;
    case OE_ABS: UB_LOOP(d * (float)((v > 0) - (v < 0))); break;
    case OE_TANH: UB_LOOP(d * (1.0f - o * o)); break;
    case OE_SIGMOID: UB_LOOP(d * o * (1.0f - o)); break;
    case OE_RELU: UB_LOOP(v > 0 ? d : 0.0f); break;
    case OE_GELU: {
      const float inv_sqrt_2pi = 0.3989422804014327f;
      UB_LOOP(d * (0.5f * (1.0f + erff(v * (float)M_SQRT1_2)) + v * inv_sqrt_2pi * expf(-0.5f * v * v)));
      break;
    }
    case OE_GELU_TANH: {
      const float k = 0.7978845608028654f;
      UB_LOOP(d * (0.5f * (1.0f + tanhf(k * (v + 0.044715f * v * v * v))) +
                   0.5f * v * (1.0f - tanhf(k * (v + 0.044715f * v * v * v)) * tanhf(k * (v + 0.044715f * v * v * v))) *
                       k * (1.0f + 3.0f * 0.044715f * v * v)));
      break;
    }
    case OE_POWS: UB_LOOP(d * p1 * powf(v, p1 - 1.0f)); break;
    case OE_CLAMP: UB_LOOP((v >= p1 && v <= p2) ? d : 0.0f); break;
    case OE_ADDS: UB_LOOP(d); break;
    case OE_MULS: UB_LOOP(d * p1); break;
    case OE_RSUBS: UB_LOOP(-d); break;
    case OE_RDIVS: UB_LOOP(-d * p1 / (v * v)); break;
    case OE_SQUARE: UB_LOOP(2.0f * v * d); break;
    case OE_SIGN: UB_LOOP(0.0f * d); break;
  }
#undef UB_LOOP
  (void)p2;
}

OE_SIMD_CLONES
void oe_sum_to_f32(const float *g, int ng, const int64_t *sg, float *out, int nt, const int64_t *st) {
  int64_t total_t = oe_numel_of(nt, st), total_g = oe_numel_of(ng, sg);
  memset(out, 0, (size_t)total_t * sizeof(float));
  int64_t str[OE_MAX_DIMS];
  bcast_strides(nt, st, ng, sg, str);
  if (ng == 0) { out[0] = g[0]; return; }
  int64_t inner = sg[ng - 1], rows = total_g / (inner ? inner : 1), it = str[ng - 1];
  if (inner == 0) return;
  for (int64_t r = 0; r < rows; r++) {
    int64_t o = 0, rem = r;
    for (int d = ng - 2; d >= 0; d--) { int64_t i = rem % sg[d]; rem /= sg[d]; o += i * str[d]; }
    const float *pg = g + r * inner;
    float *po = out + o;
    if (it == 0) { float s = 0; for (int64_t j = 0; j < inner; j++) s += pg[j]; po[0] += s; }
    else for (int64_t j = 0; j < inner; j++) po[j] += pg[j];
  }
}

OE_SIMD_CLONES
void oe_expand_f32(const float *x, int nx, const int64_t *sx, float *out, int no, const int64_t *so) {
  int64_t str[OE_MAX_DIMS];
  if (no == 0) { out[0] = x[0]; return; }
  bcast_strides(nx, sx, no, so, str);
  int64_t inner = so[no - 1], rows = oe_numel_of(no - 1, so), ix = str[no - 1];
#pragma omp parallel for schedule(static) if (rows * inner > 32768)
  for (int64_t r = 0; r < rows; r++) {
    int64_t o = 0, rem = r;
    for (int d = no - 2; d >= 0; d--) { int64_t i = rem % so[d]; rem /= so[d]; o += i * str[d]; }
    for (int64_t j = 0; j < inner; j++) out[r * inner + j] = x[o + j * ix];
  }
}

OE_SIMD_CLONES
void oe_axpy_f32(float *y, const float *x, int64_t n, float alpha) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}
