/* conv.c: forward convolution (im2col + oe_gemm, direct depthwise) and pooling, NCHW.
 * See conv.h for the shapes and the threading rules. */
#include "conv.h"
#include "ops.h"
#include "../core/cpu.h"
#include "../core/util.h"
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* The 64-byte vector helpers below are static inline, used inside this file only: GCC's
 * note that returning such a vector without AVX-512 changes the ABI does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* ---- geometry ---- */

static int mul_ok(int64_t a, int64_t b, int64_t *out) {
  if (a < 0 || b < 0) return 0;
  if (a != 0 && b > OE_MAX_NUMEL / a) return 0;
  *out = a * b;
  return 1;
}
static int numel_ok(int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t t;
  return mul_ok(a, b, &t) && mul_ok(t, c, &t) && mul_ok(t, d, &t);
}

/* effective kernel extent (k - 1) * d + 1 and the output size along one axis */
static int axis_out(int64_t in, int64_t k, int64_t st, int64_t dil, int64_t p0, int64_t p1, int ceil_mode,
                    int64_t *out, oe_err *e, const char *axis) {
  const int64_t LIM = INT64_C(1) << 31;
  if (k < 1 || k > LIM) return oe_fail(e, OE_EINVAL, "kernel size %lld along %s must be in 1..2^31", (long long)k, axis);
  if (st < 1 || st > LIM) return oe_fail(e, OE_EINVAL, "stride %lld along %s must be in 1..2^31", (long long)st, axis);
  if (dil < 1 || dil > LIM) return oe_fail(e, OE_EINVAL, "dilation %lld along %s must be in 1..2^31", (long long)dil, axis);
  if (p0 < 0 || p1 < 0 || p0 > LIM || p1 > LIM)
    return oe_fail(e, OE_EINVAL, "pads %lld, %lld along %s must be in 0..2^31", (long long)p0, (long long)p1, axis);
  if (in < 1 || in > OE_MAX_NUMEL) return oe_fail(e, OE_EINVAL, "input size %lld along %s must be positive", (long long)in, axis);
  int64_t ek = (k - 1) * dil + 1, padded = in + p0 + p1;
  if (padded < ek)
    return oe_fail(e, OE_EINVAL, "kernel extent %lld along %s exceeds the padded input %lld", (long long)ek, axis,
                   (long long)padded);
  int64_t o = (padded - ek) / st + 1;
  if (ceil_mode) {
    if ((padded - ek) % st) o++;
    if ((o - 1) * st >= in + p0) o--; /* the last window must start inside the input or the leading pad */
  }
  *out = o;
  return OE_OK;
}

static int geometry(oe_conv_shape *s, int ceil_mode, oe_err *e) {
  if (s->N < 0 || s->C < 1 || s->M < 1)
    return oe_fail(e, OE_EINVAL, "batch %lld, channels %lld -> %lld must be non-negative / positive", (long long)s->N,
                   (long long)s->C, (long long)s->M);
  if (axis_out(s->H, s->kh, s->sh, s->dh, s->pt, s->pb, ceil_mode, &s->OH, e, "height") != OE_OK) return OE_EINVAL;
  if (axis_out(s->W, s->kw, s->sw, s->dw, s->pl, s->pr, ceil_mode, &s->OW, e, "width") != OE_OK) return OE_EINVAL;
  if (!numel_ok(s->N, s->C, s->H, s->W) || !numel_ok(s->N, s->M, s->OH, s->OW))
    return oe_fail(e, OE_EINVAL, "input or output of %lld x %lld x %lld x %lld elements is too large", (long long)s->N,
                   (long long)s->M, (long long)s->OH, (long long)s->OW);
  return OE_OK;
}

int oe_conv_check(oe_conv_shape *s, oe_err *e) {
  if (s->groups < 1 || s->C % s->groups || s->M % s->groups)
    return oe_fail(e, OE_EINVAL, "groups %lld must divide the input channels %lld and the output channels %lld",
                   (long long)s->groups, (long long)s->C, (long long)s->M);
  if (geometry(s, 0, e) != OE_OK) return OE_EINVAL;
  if (!numel_ok(s->M, s->C / s->groups, s->kh, s->kw) || !numel_ok(s->C / s->groups, s->kh, s->kw, s->OH * s->OW))
    return oe_fail(e, OE_EINVAL, "kernel (%lld, %lld, %lld, %lld) is too large", (long long)s->M,
                   (long long)(s->C / s->groups), (long long)s->kh, (long long)s->kw);
  return OE_OK;
}

int oe_pool_check(oe_conv_shape *s, int ceil_mode, oe_err *e) {
  s->M = s->C;
  s->groups = s->C;
  return geometry(s, ceil_mode, e);
}


/* ---- post-ops ---- */

/* one op over a row: separate loops so each vectorises */
OE_SIMD_CLONES
static void post_row(const oe_post *p, const float *bias_v, float *y, int64_t n) {
  if (bias_v) {
    float b = *bias_v;
    for (int64_t j = 0; j < n; j++) y[j] += b;
  }
  if (!p) return;
  for (int k = 0; k < p->n; k++) {
    float a = p->op[k].a, hi = p->op[k].b;
    switch (p->op[k].kind) {
      case OE_POST_RELU: for (int64_t j = 0; j < n; j++) y[j] = y[j] > 0.0f ? y[j] : 0.0f; break;
      case OE_POST_CLIP:
        for (int64_t j = 0; j < n; j++) { float v = y[j] < a ? a : y[j]; y[j] = v > hi ? hi : v; }
        break;
      case OE_POST_LEAKY: for (int64_t j = 0; j < n; j++) y[j] = y[j] >= 0.0f ? y[j] : a * y[j]; break;
      case OE_POST_MAXC: for (int64_t j = 0; j < n; j++) y[j] = y[j] > a ? y[j] : a; break;
      case OE_POST_MINC: for (int64_t j = 0; j < n; j++) y[j] = y[j] < a ? y[j] : a; break;
      case OE_POST_ADDC: for (int64_t j = 0; j < n; j++) y[j] += a; break;
      case OE_POST_SUBC: for (int64_t j = 0; j < n; j++) y[j] -= a; break;
      case OE_POST_RSUBC: for (int64_t j = 0; j < n; j++) y[j] = a - y[j]; break;
      case OE_POST_MULC: for (int64_t j = 0; j < n; j++) y[j] *= a; break;
      case OE_POST_DIVC: for (int64_t j = 0; j < n; j++) y[j] /= a; break;
      case OE_POST_RDIVC: for (int64_t j = 0; j < n; j++) y[j] = a / y[j]; break;
      case OE_POST_SIGMOID: for (int64_t j = 0; j < n; j++) y[j] = 1.0f / (1.0f + expf(-y[j])); break;
      case OE_POST_TANH: for (int64_t j = 0; j < n; j++) y[j] = tanhf(y[j]); break;
    }
  }
}

void oe_post_apply(const oe_post *p, float *y, int64_t n) {
  if (!p || p->n == 0) return;
  const int64_t CH = 4096;
  int64_t nb = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > 32768 && !omp_in_parallel())
  for (int64_t b = 0; b < nb; b++) {
    int64_t j0 = b * CH, len = n - j0 < CH ? n - j0 : CH;
    post_row(p, NULL, y + j0, len);
  }
}

void oe_post_bias_rows(const oe_post *p, const float *bias, float *y, int64_t rows, int64_t n) {
  if ((!p || p->n == 0) && !bias) return;
#pragma omp parallel for schedule(static) if (rows * n > 32768 && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) post_row(p, bias ? bias + r : NULL, y + r * n, n);
}

/* rows r (rows, n; row stride ld) get bias[r] and the post-ops, on the calling thread (a
 * convolution job's block) */
static void epilogue(const oe_post *p, const float *bias, float *y, int64_t rows, int64_t n, int64_t ld) {
  if ((!p || p->n == 0) && !bias) return;
  for (int64_t r = 0; r < rows; r++) post_row(p, bias ? bias + r : NULL, y + r * ld, n);
}

/* ---- im2col ---- */

static inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* rows r0..r1-1 of cols (each row: one (c, i, j) tap), output positions p0..p1-1 */
OE_SIMD_CLONES
static void im2col_rows(const oe_conv_shape *s, const float *x, int64_t c0, int64_t r0, int64_t r1, int64_t p0,
                        int64_t p1, float *cols) {
  const int64_t kk = s->kh * s->kw, len = p1 - p0, OW = s->OW, W = s->W, H = s->H, sw = s->sw;
  if (sw == 1 && p0 % OW == 0 && len % OW == 0) { /* whole output rows, stride 1 along them */
    const int64_t oh0 = p0 / OW, nrows = len / OW;
    for (int64_t r = r0; r < r1; r++) {
      int64_t c = r / kk, i = (r % kk) / s->kw, j = r % s->kw;
      const float *xc = x + (c0 + c) * H * W;
      int64_t off_w = j * s->dw - s->pl;
      int64_t a = -off_w > 0 ? -off_w : 0, b = W - off_w < OW ? W - off_w : OW; /* 0 <= ow + off_w < W */
      if (a > OW) a = OW;
      if (b < a) b = a;
      float *dst = cols + r * len;
      if (s->sh == 1 && OW == W) {
        /* rows of the tap are consecutive rows of x: one shifted copy of the span (zero
         * outside the plane), then the columns that fall in a horizontal pad zeroed */
        int64_t base = (oh0 - s->pt + i * s->dh) * W + off_w, n = nrows * W;
        int64_t k0 = -base > 0 ? -base : 0, k1 = H * W - base < n ? H * W - base : n;
        if (k0 > n) k0 = n;
        if (k1 < k0) k1 = k0;
        memset(dst, 0, (size_t)k0 * sizeof(float));
        if (k1 > k0) memcpy(dst + k0, xc + (base + k0), (size_t)(k1 - k0) * sizeof(float));
        memset(dst + k1, 0, (size_t)(n - k1) * sizeof(float));
        if (a > 0 || b < OW)
          for (int64_t q = 0; q < nrows; q++) {
            for (int64_t ow = 0; ow < a; ow++) dst[q * OW + ow] = 0.0f;
            for (int64_t ow = b; ow < OW; ow++) dst[q * OW + ow] = 0.0f;
          }
        continue;
      }
      for (int64_t q = 0; q < nrows; q++) {
        float *d = dst + q * OW;
        int64_t ih = (oh0 + q) * s->sh - s->pt + i * s->dh;
        if (ih < 0 || ih >= H) {
          for (int64_t ow = 0; ow < OW; ow++) d[ow] = 0.0f;
          continue;
        }
        const float *xr = xc + ih * W + off_w;
        for (int64_t ow = 0; ow < a; ow++) d[ow] = 0.0f;
        for (int64_t ow = a; ow < b; ow++) d[ow] = xr[ow];
        for (int64_t ow = b; ow < OW; ow++) d[ow] = 0.0f;
      }
    }
    return;
  }
  for (int64_t r = r0; r < r1; r++) {
    int64_t c = r / kk, i = (r % kk) / s->kw, j = r % s->kw;
    const float *xc = x + (c0 + c) * H * W;
    float *dst = cols + r * len;
    int64_t off_w = j * s->dw - s->pl;
    /* ow with 0 <= ow * sw + off_w < W */
    int64_t lo = ceil_div(-off_w, sw), hi = ceil_div(W - off_w, sw);
    if (lo < 0) lo = 0;
    if (hi > OW) hi = OW;
    int64_t p = p0;
    while (p < p1) {
      int64_t oh = p / OW, ow0 = p % OW;
      int64_t ow1 = OW < ow0 + (p1 - p) ? OW : ow0 + (p1 - p);
      float *d = dst + (p - p0);
      int64_t ih = oh * s->sh - s->pt + i * s->dh;
      if (ih < 0 || ih >= H) {
        memset(d, 0, (size_t)(ow1 - ow0) * sizeof(float));
      } else {
        const float *xr = xc + ih * W + off_w;
        int64_t a = lo > ow0 ? lo : ow0, b = hi < ow1 ? hi : ow1;
        if (a > b) a = b;
        for (int64_t ow = ow0; ow < a; ow++) d[ow - ow0] = 0.0f;
        if (sw == 1) {
          if (b > a) memcpy(d + (a - ow0), xr + a, (size_t)(b - a) * sizeof(float));
        } else {
          for (int64_t ow = a; ow < b; ow++) d[ow - ow0] = xr[ow * sw];
        }
        for (int64_t ow = b > ow0 ? b : ow0; ow < ow1; ow++) d[ow - ow0] = 0.0f;
      }
      p += ow1 - ow0;
    }
  }
}

void oe_im2col(const oe_conv_shape *s, const float *x_image, int64_t c0, int64_t Cg, int64_t p0, int64_t p1,
               float *cols) {
  im2col_rows(s, x_image, c0, 0, Cg * s->kh * s->kw, p0, p1, cols);
}

/* ---- convolution ---- */

static int is_pointwise(const oe_conv_shape *s) {
  return s->kh == 1 && s->kw == 1 && s->sh == 1 && s->sw == 1 && s->pt == 0 && s->pl == 0 && s->pb == 0 && s->pr == 0;
}

/* A convolution as a grid of independent jobs (image, group, column tile): a job
 * im2cols its tile of output positions into its thread's scratch (a 1x1 convolution reads x
 * in place), multiplies it on one thread and gives its output block bias and post-ops while
 * the block is still warm. Tiles hold (K + Mg) x tile floats within 4 MB (at least 256
 * columns): fewer, larger products measured faster on MobileNetV2 than L2-sized tiles (8.3
 * against 9.5 ms a forward on one thread here: OpenBLAS's per-call packing and edge handling
 * weigh more than the cache misses of the epilogue). Each job's product runs on one thread
 * (oe_gemm_serial), so its blocks never depend on the threads (see grid_of). */
typedef struct { int64_t tile, ntiles, jobs; int par; } conv_grid;
#define TILE_BUDGET_FLOATS (INT64_C(1) << 20)

static conv_grid grid_of(const oe_conv_shape *s, int nthreads) {
  conv_grid c;
  int64_t Cg = s->C / s->groups, Mg = s->M / s->groups, K = Cg * s->kh * s->kw, OHW = s->OH * s->OW;
  int64_t t = TILE_BUDGET_FLOATS / (K + Mg);
  t = t < 256 ? 256 : (t + 15) / 16 * 16;
  c.tile = t < OHW ? t : OHW;
  if (c.tile < 1) c.tile = 1;
  c.ntiles = (OHW + c.tile - 1) / c.tile;
  /* Jobs (image, group, tile) follow the shape of one image's product alone, never the batch
   * or the thread count, so every output's bits are the same whether the image is alone or in a
   * batch, on one thread or more. Rows are not split: splitting them when the batch left threads idle made a lone
   * image's features differ from the same image's in a batch (by up to 1.2e-6), and splitting
   * them by shape for every image cost 4.5% at batches of 8. MobileNetV2 on X, 2 threads: batches
   * of 4 and more as before (5.6-5.9 ms an image), of 2 faster (6.1 -> 5.1), a lone image slower
   * (6.7 -> 8.1: its 14x14 and 7x7 layers are one job each). */
  c.jobs = s->N * s->groups * c.ntiles;
  double flops = 2.0 * (double)s->M * (double)K * (double)OHW * (double)s->N;
  c.par = nthreads > 1 && c.jobs > 1 && flops > 2e5;
  return c;
}

size_t oe_conv_scratch_floats(const oe_conv_shape *s, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (oe_conv_is_depthwise(s)) return oe_conv_depthwise_scratch_floats(s, nthreads);
  if (is_pointwise(s)) return 0;
  conv_grid c = grid_of(s, nthreads);
  int64_t K = s->C / s->groups * s->kh * s->kw;
  return (size_t)K * (size_t)c.tile * (size_t)(c.par ? nthreads : 1);
}

/* job j of the grid */
static void conv_job(const oe_conv_shape *s, const conv_grid *c, const float *x, const float *w, const float *bias,
                     float *y, const oe_post *post, float *cols, int64_t j) {
  int64_t Cg = s->C / s->groups, Mg = s->M / s->groups, K = Cg * s->kh * s->kw, OHW = s->OH * s->OW;
  int64_t ti = j % c->ntiles, ng = j / c->ntiles;
  int64_t n = ng / s->groups, g = ng % s->groups;
  int64_t p0 = ti * c->tile, len = OHW - p0 < c->tile ? OHW - p0 : c->tile;
  if (len <= 0) return;
  const float *xn = x + n * s->C * s->H * s->W;
  const float *wg = w + g * Mg * K;
  const float *bg = bias ? bias + g * Mg : NULL;
  float *yg = y + (n * s->M + g * Mg) * OHW + p0;
  if (is_pointwise(s)) {
    oe_gemm_serial(0, 0, Mg, len, K, 1.0f, wg, K, xn + g * Cg * OHW + p0, OHW, 0.0f, yg, OHW);
  } else {
    im2col_rows(s, xn, g * Cg, 0, K, p0, p0 + len, cols);
    oe_gemm_serial(0, 0, Mg, len, K, 1.0f, wg, K, cols, len, 0.0f, yg, OHW);
  }
  epilogue(post, bg, yg, Mg, len, OHW);
}

void oe_conv_forward(const oe_conv_shape *s, const float *x, const float *w, const float *bias, float *y,
                     const oe_post *post, float *scratch, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (s->N == 0) return;
  if (oe_conv_is_depthwise(s)) {
    oe_conv_depthwise(s, x, w, bias, y, post, scratch, nthreads);
    return;
  }
  conv_grid c = grid_of(s, nthreads);
  int64_t K = s->C / s->groups * s->kh * s->kw;
  if (c.par) {
#pragma omp parallel num_threads(nthreads)
    {
      float *cols = scratch ? scratch + (size_t)omp_get_thread_num() * (size_t)K * (size_t)c.tile : NULL;
#pragma omp for schedule(dynamic, 1)
      for (int64_t j = 0; j < c.jobs; j++) conv_job(s, &c, x, w, bias, y, post, cols, j);
    }
  } else {
    for (int64_t j = 0; j < c.jobs; j++) conv_job(s, &c, x, w, bias, y, post, scratch, j);
  }
}

/* ---- depthwise ---- */

/* 16 floats as one GCC vector (a zmm register in the AVX-512 clone, split into smaller
 * registers in the others); loads and stores through memcpy, so unaligned */
typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
static inline v16f ld16(const float *p) { v16f v; memcpy(&v, p, sizeof v); return v; }
static inline void st16(float *p, v16f v) { memcpy(p, &v, sizeof v); }
static inline v16f sel16(v16i m, v16f a, v16f b) { return (v16f)(((v16i)a & m) | ((v16i)b & ~m)); }
static inline v16f splat16(float c) { return c - (v16f){0}; } /* a broadcast; c - 0 keeps -0 */

/* r[16] (16 x 16) transposed in registers: four stages swapping b x b blocks (b = 8, 4, 2, 1),
 * each a two-source shuffle per row (one vpermt2ps on AVX-512) */
static inline void transpose16(v16f *r) {
  static const v16i lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  static const v16i hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  static const v16i lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
  static const v16i hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
  static const v16i lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  static const v16i hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  static const v16i lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
  static const v16i hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
  for (int i = 0; i < 8; i++) {
    v16f a = r[i], b = r[i + 8];
    r[i] = __builtin_shuffle(a, b, lo8);
    r[i + 8] = __builtin_shuffle(a, b, hi8);
  }
  for (int g = 0; g < 16; g += 8)
    for (int i = g; i < g + 4; i++) {
      v16f a = r[i], b = r[i + 4];
      r[i] = __builtin_shuffle(a, b, lo4);
      r[i + 4] = __builtin_shuffle(a, b, hi4);
    }
  for (int g = 0; g < 16; g += 4)
    for (int i = g; i < g + 2; i++) {
      v16f a = r[i], b = r[i + 2];
      r[i] = __builtin_shuffle(a, b, lo2);
      r[i + 2] = __builtin_shuffle(a, b, hi2);
    }
  for (int i = 0; i < 16; i += 2) {
    v16f a = r[i], b = r[i + 1];
    r[i] = __builtin_shuffle(a, b, lo1);
    r[i + 1] = __builtin_shuffle(a, b, hi1);
  }
}

/* the post-ops on 16 values in registers, each exactly as post_row computes it; pa, pb: the
 * ops' constants broadcast once (built per block, they went through the stack) */
static inline v16f post16(const oe_post *p, const v16f *pa, const v16f *pb, v16f a) {
  const v16f z = splat16(0.0f);
  for (int k = 0; k < p->n; k++) {
    const v16f c = pa[k], hi = pb[k];
    switch (p->op[k].kind) {
      case OE_POST_RELU: a = sel16(a > z, a, z); break;
      case OE_POST_CLIP: a = sel16(a < c, c, a); a = sel16(a > hi, hi, a); break;
      case OE_POST_LEAKY: a = sel16(a >= z, a, c * a); break;
      case OE_POST_MAXC: a = sel16(a > c, a, c); break;
      case OE_POST_MINC: a = sel16(a < c, a, c); break;
      case OE_POST_ADDC: a = a + c; break;
      case OE_POST_SUBC: a = a - c; break;
      case OE_POST_RSUBC: a = c - a; break;
      case OE_POST_MULC: a = a * c; break;
      case OE_POST_DIVC: a = a / c; break;
      case OE_POST_RDIVC: a = c / a; break;
      default: { /* sigmoid, tanh: through memory */
        float t[16];
        st16(t, a);
        oe_post one = { 1, { p->op[k] } };
        post_row(&one, NULL, t, 16);
        a = ld16(t);
        break;
      }
    }
  }
  return a;
}

/* Three kernels, by the shape of the output rows:
 *  - short rows (OW <= 16): 16 channels at a time, vectorised across channels: their planes
 *    are transposed once into a padded channel-last tile (in L1), each output pixel is 16
 *    channels' sums of taps in one register, then scattered back (what ONNX Runtime's NCHWc
 *    layout gives, for the 14x14 and 7x7 layers where per-row work is too short);
 *  - otherwise a padded copy of each plane (for a horizontal stride of 2 split into even and
 *    odd columns, so every tap reads contiguous columns), then 32 output columns at a time
 *    with every tap accumulated in registers (four independent sums), bias and post-ops
 *    applied before the one store;
 *  - other horizontal strides and dilations: the same with gathered columns. */
#define DW_V 16
enum { DW_ROWS = 0, DW_SPLIT2 = 1, DW_GATHER = 2, DW_CHANNELS = 3 };
typedef struct {
  int kind;
  int64_t taps;
  int64_t ws;        /* source row width (padded width, or half of it when split) */
  int64_t plane;     /* floats of one source plane (rows of ws plus slack) */
  int64_t hp, wp;    /* padded height and width */
  size_t scratch;    /* floats per thread */
} dw_geom;

static dw_geom dw_plan(const oe_conv_shape *s) {
  dw_geom g;
  memset(&g, 0, sizeof g);
  g.taps = s->kh * s->kw;
  g.wp = s->W + s->pl + s->pr;
  g.hp = s->H + s->pt + s->pb;
  if (s->OW <= DW_V && g.hp * g.wp * DW_V <= (INT64_C(1) << 16)) {
    g.kind = DW_CHANNELS;
    g.scratch = (size_t)(g.hp * g.wp * DW_V + g.taps * DW_V + s->OH * s->OW * DW_V + DW_V);
    return g;
  }
  g.kind = s->sw == 1 ? DW_ROWS : (s->sw == 2 && s->dw == 1) ? DW_SPLIT2 : DW_GATHER;
  int64_t cstep = g.kind == DW_GATHER ? s->sw : 1;       /* source columns per output column */
  g.ws = g.kind == DW_SPLIT2 ? (g.wp + 1) / 2 : g.wp;
  int64_t rstep = s->sh * g.ws;                          /* source floats per output row */
  int64_t blocks = (s->OW + 2 * DW_V - 1) / (2 * DW_V);
  int64_t jmax = g.kind == DW_SPLIT2 ? (s->kw - 1) / 2 : (s->kw - 1) * s->dw;
  int64_t last = (s->OH - 1) * rstep + blocks * 2 * DW_V * cstep + (s->kh - 1) * s->dh * g.ws + jmax;
  g.plane = last + 1 > g.hp * g.ws ? last + 1 : g.hp * g.ws;
  g.plane = (g.plane + 15) & ~(int64_t)15;
  g.scratch = (size_t)(g.plane * (g.kind == DW_SPLIT2 ? 2 : 1) + g.wp + 16);
  return g;
}

int oe_conv_is_depthwise(const oe_conv_shape *s) {
  if (!(s->groups > 1 && s->groups == s->C) || s->kh * s->kw > OE_DW_MAX_TAPS) return 0;
  return dw_plan(s).scratch <= ((size_t)1 << 24); /* 64 MB per thread at most */
}

size_t oe_conv_depthwise_scratch_floats(const oe_conv_shape *s, int nthreads) {
  return dw_plan(s).scratch * (size_t)(nthreads < 1 ? 1 : nthreads);
}

/* one plane into the source buffer: zero rows above and below (and the slack), each row with
 * its zero pads, split into even and odd columns for DW_SPLIT2 (row: a padded row buffer) */
static void dw_fill(const oe_conv_shape *s, const dw_geom *g, const float *xc, float *P, float *row) {
  const int64_t ws = g->ws, W = s->W;
  int np = g->kind == DW_SPLIT2 ? 2 : 1;
  for (int k = 0; k < np; k++) {
    float *q = P + k * g->plane;
    memset(q, 0, (size_t)(s->pt * ws) * sizeof(float));
    memset(q + (s->pt + s->H) * ws, 0, (size_t)(g->plane - (s->pt + s->H) * ws) * sizeof(float));
  }
  for (int64_t r = 0; r < s->H; r++) {
    const float *xr = xc + r * W;
    int64_t rr = (r + s->pt) * ws;
    if (g->kind != DW_SPLIT2) {
      float *d = P + rr;
      for (int64_t c = 0; c < s->pl; c++) d[c] = 0.0f;
      memcpy(d + s->pl, xr, (size_t)W * sizeof(float));
      for (int64_t c = s->pl + W; c < ws; c++) d[c] = 0.0f;
    } else {
      for (int64_t c = 0; c < s->pl; c++) row[c] = 0.0f;
      memcpy(row + s->pl, xr, (size_t)W * sizeof(float));
      for (int64_t c = s->pl + W; c < 2 * ws; c++) row[c] = 0.0f;
      float *e = P + rr, *o = P + g->plane + rr;
      for (int64_t c = 0; c < ws; c++) { e[c] = row[2 * c]; o[c] = row[2 * c + 1]; }
    }
  }
}

OE_SIMD_CLONES
static void dw_plane(const oe_conv_shape *s, const dw_geom *g, const int64_t *offs, const float *xc, const float *wk,
                     const float *bias_v, float *yp, const oe_post *post, float *P) {
  const int64_t OW = s->OW, taps = g->taps, gs = g->kind == DW_GATHER ? s->sw : 1;
  const int64_t rstep = s->sh * g->ws;
  dw_fill(s, g, xc, P, P + g->plane * (g->kind == DW_SPLIT2 ? 2 : 1));
  const v16f bias = splat16(bias_v ? *bias_v : 0.0f);
  v16f pa[OE_POST_MAX_OPS], pb[OE_POST_MAX_OPS];
  for (int k = 0; post && k < post->n; k++) { pa[k] = splat16(post->op[k].a); pb[k] = splat16(post->op[k].b); }
  for (int64_t oh = 0; oh < s->OH; oh++) {
    const float *base = P + oh * rstep;
    float *yr = yp + oh * OW;
    /* 32 columns at a time, each half in two accumulators (even and odd taps): four
     * independent addition chains */
    for (int64_t ow = 0; ow < OW; ow += 2 * DW_V) {
      v16f a0 = splat16(0.0f), a1 = a0, c0 = a0, c1 = a0;
      if (gs == 1) {
        const float *b = base + ow;
        const int64_t t2 = taps & ~(int64_t)1;
        for (int64_t t = 0; t < t2; t += 2) {
          const float *q = b + offs[t], *r = b + offs[t + 1];
          a0 += wk[t] * ld16(q);
          c0 += wk[t] * ld16(q + DW_V);
          a1 += wk[t + 1] * ld16(r);
          c1 += wk[t + 1] * ld16(r + DW_V);
        }
        if (taps & 1) {
          const float *q = b + offs[t2];
          a0 += wk[t2] * ld16(q);
          c0 += wk[t2] * ld16(q + DW_V);
        }
      } else {
        const float *b = base + ow * gs;
        for (int64_t t = 0; t < taps; t++) {
          const float *q = b + offs[t];
          v16f v, u;
          for (int k = 0; k < DW_V; k++) { v[k] = q[k * gs]; u[k] = q[(k + DW_V) * gs]; }
          a0 += wk[t] * v;
          c0 += wk[t] * u;
        }
      }
      v16f out[2] = { a0 + a1, c0 + c1 };
      for (int h = 0; h < 2; h++) {
        int64_t at = ow + h * DW_V;
        if (at >= OW) break;
        v16f a = out[h];
        if (bias_v) a = a + bias;
        if (post) a = post16(post, pa, pb, a);
        if (OW - at >= DW_V) {
          st16(yr + at, a);
        } else {
          float t[DW_V];
          st16(t, a);
          for (int64_t v = 0; v < OW - at; v++) yr[at + v] = t[v];
        }
      }
    }
  }
}

/* 16 output channels m0..m0+nc-1 of one image, vectorised across channels (DW_CHANNELS) */
OE_SIMD_CLONES
static void dw_channels(const oe_conv_shape *s, const dw_geom *g, const float *x_img, const float *w, const float *bias,
                        float *y_img, const oe_post *post, int64_t m0, int64_t nc, float *buf) {
  const int64_t mult = s->M / s->C, HW = s->H * s->W, OHW = s->OH * s->OW, wp = g->wp, taps = g->taps;
  float *T = buf, *Wt = buf + g->hp * wp * DW_V;
  /* the tile, pixel after pixel: 16 channels' values side by side (16 sequential read streams,
   * one contiguous 64-byte write); pad rows and columns zeroed, nothing else */
  const float *xk[DW_V];
  for (int64_t k = 0; k < DW_V; k++) xk[k] = k < nc ? x_img + ((m0 + k) / mult) * HW : NULL;
  memset(T, 0, (size_t)(s->pt * wp * DW_V) * sizeof(float));
  memset(T + (s->pt + s->H) * wp * DW_V, 0, (size_t)((g->hp - s->pt - s->H) * wp * DW_V) * sizeof(float));
  for (int64_t r = 0; r < s->H; r++) {
    float *tr = T + (r + s->pt) * wp * DW_V;
    memset(tr, 0, (size_t)(s->pl * DW_V) * sizeof(float));
    memset(tr + (s->pl + s->W) * DW_V, 0, (size_t)((wp - s->pl - s->W) * DW_V) * sizeof(float));
  }
  /* 16 consecutive pixels (of the flattened plane) x 16 channels through registers; each
   * pixel's 16 values go to its place in the padded tile */
  int64_t q0 = 0;
  if (nc == DW_V)
    for (; q0 + DW_V <= HW; q0 += DW_V) {
      v16f blk[DW_V];
      for (int k = 0; k < DW_V; k++) blk[k] = ld16(xk[k] + q0);
      transpose16(blk);
      for (int q = 0; q < DW_V; q++) {
        int64_t p = q0 + q, r = p / s->W, c = p - r * s->W;
        st16(T + ((r + s->pt) * wp + c + s->pl) * DW_V, blk[q]);
      }
    }
  for (int64_t p = q0; p < HW; p++) {
    int64_t r = p / s->W, c = p - r * s->W;
    float *d = T + ((r + s->pt) * wp + c + s->pl) * DW_V;
    for (int k = 0; k < DW_V; k++) d[k] = k < nc ? xk[k][p] : 0.0f;
  }
  for (int64_t t = 0; t < taps; t++)
    for (int64_t k = 0; k < DW_V; k++) Wt[t * DW_V + k] = k < nc ? w[(m0 + k) * taps + t] : 0.0f;
  float *O = Wt + taps * DW_V; /* the outputs, pixel after pixel */
  float bv[DW_V];
  for (int64_t k = 0; k < DW_V; k++) bv[k] = bias && k < nc ? bias[m0 + k] : 0.0f;
  const v16f bias16 = ld16(bv);
  int64_t toff[OE_DW_MAX_TAPS];
  for (int64_t i = 0; i < s->kh; i++)
    for (int64_t j = 0; j < s->kw; j++) toff[i * s->kw + j] = (i * s->dh * wp + j * s->dw) * DW_V;
  const int64_t t2 = taps & ~(int64_t)1;
  for (int64_t oh = 0; oh < s->OH; oh++)
    for (int64_t ow = 0; ow < s->OW; ow++) {
      const float *b = T + ((oh * s->sh) * wp + ow * s->sw) * DW_V;
      v16f a0 = splat16(0.0f), a1 = a0;
      for (int64_t t = 0; t < t2; t += 2) {
        a0 += ld16(Wt + t * DW_V) * ld16(b + toff[t]);
        a1 += ld16(Wt + (t + 1) * DW_V) * ld16(b + toff[t + 1]);
      }
      if (taps & 1) a0 += ld16(Wt + t2 * DW_V) * ld16(b + toff[t2]);
      v16f a = a0 + a1;
      if (bias) a = a + bias16;
      st16(O + (oh * s->OW + ow) * DW_V, a);
    }
  if (post) post_row(post, NULL, O, OHW * DW_V);
  /* back to planes: 16 pixels x 16 channels through registers, the rest one by one */
  q0 = 0;
  if (nc == DW_V)
    for (; q0 + DW_V <= OHW; q0 += DW_V) {
      v16f blk[DW_V];
      for (int q = 0; q < DW_V; q++) blk[q] = ld16(O + (q0 + q) * DW_V);
      transpose16(blk);
      for (int k = 0; k < DW_V; k++) st16(y_img + (m0 + k) * OHW + q0, blk[k]);
    }
  for (int64_t k = 0; k < nc; k++) {
    float *yk = y_img + (m0 + k) * OHW;
    for (int64_t q = q0; q < OHW; q++) yk[q] = O[q * DW_V + k];
  }
}

void oe_conv_depthwise(const oe_conv_shape *s, const float *x, const float *w, const float *bias, float *y,
                       const oe_post *post, float *scratch, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int64_t mult = s->M / s->C, planes = s->N * s->M, HW = s->H * s->W, OHW = s->OH * s->OW, kk = s->kh * s->kw;
  int par = nthreads > 1 && planes * OHW * kk > 16384;
  const oe_post *pp = post && post->n ? post : NULL;
  dw_geom g = dw_plan(s);
  if (g.kind == DW_CHANNELS) {
    int64_t blocks = (s->M + DW_V - 1) / DW_V, jobs = s->N * blocks;
#pragma omp parallel num_threads(nthreads) if (par)
    {
      float *buf = scratch + g.scratch * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
      for (int64_t j = 0; j < jobs; j++) {
        int64_t n = j / blocks, m0 = (j % blocks) * DW_V, nc = s->M - m0 < DW_V ? s->M - m0 : DW_V;
        dw_channels(s, &g, x + n * s->C * HW, w, bias, y + n * s->M * OHW, pp, m0, nc, buf);
      }
    }
    return;
  }
  /* tap offsets in the source buffer, relative to an output pixel's base */
  int64_t offs[OE_DW_MAX_TAPS];
  for (int64_t i = 0; i < s->kh; i++)
    for (int64_t j = 0; j < s->kw && i * s->kw + j < OE_DW_MAX_TAPS; j++)
      offs[i * s->kw + j] = g.kind == DW_SPLIT2 ? (j & 1) * g.plane + i * s->dh * g.ws + (j >> 1)
                                                : i * s->dh * g.ws + j * s->dw;
#pragma omp parallel num_threads(nthreads) if (par)
  {
    float *P = scratch + g.scratch * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
      int64_t n = pl / s->M, m = pl % s->M, c = m / mult;
      dw_plane(s, &g, offs, x + (n * s->C + c) * HW, w + m * kk, bias ? bias + m : NULL, y + pl * OHW, pp, P);
    }
  }
}

/* ---- pooling ---- */

OE_SIMD_CLONES
static void maxpool_plane(const oe_conv_shape *s, const float *xc, float *yp) {
  for (int64_t oh = 0; oh < s->OH; oh++) {
    int64_t h0 = oh * s->sh - s->pt;
    for (int64_t ow = 0; ow < s->OW; ow++) {
      int64_t w0 = ow * s->sw - s->pl;
      float m = -FLT_MAX;
      for (int64_t i = 0; i < s->kh; i++) {
        int64_t ih = h0 + i * s->dh;
        if (ih < 0 || ih >= s->H) continue;
        const float *xr = xc + ih * s->W;
        for (int64_t j = 0; j < s->kw; j++) {
          int64_t iw = w0 + j * s->dw;
          if (iw < 0 || iw >= s->W) continue;
          float v = xr[iw];
          m = v > m ? v : m;
        }
      }
      yp[oh * s->OW + ow] = m;
    }
  }
}

void oe_maxpool_forward(const oe_conv_shape *s, const float *x, float *y, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int64_t planes = s->N * s->C, HW = s->H * s->W, OHW = s->OH * s->OW;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && planes * OHW * s->kh * s->kw > 16384)
  for (int64_t p = 0; p < planes; p++) maxpool_plane(s, x + p * HW, y + p * OHW);
}

static void avgpool_plane(const oe_conv_shape *s, const float *xc, float *yp, int include_pad) {
  for (int64_t oh = 0; oh < s->OH; oh++) {
    int64_t h0 = oh * s->sh - s->pt, h1 = h0 + s->kh;
    if (h1 > s->H + s->pb) h1 = s->H + s->pb;
    int64_t span_h = h1 - h0;
    int64_t a = h0 < 0 ? 0 : h0, b = h1 > s->H ? s->H : h1;
    for (int64_t ow = 0; ow < s->OW; ow++) {
      int64_t w0 = ow * s->sw - s->pl, w1 = w0 + s->kw;
      if (w1 > s->W + s->pr) w1 = s->W + s->pr;
      int64_t span_w = w1 - w0;
      int64_t c = w0 < 0 ? 0 : w0, d = w1 > s->W ? s->W : w1;
      double acc = 0;
      for (int64_t ih = a; ih < b; ih++)
        for (int64_t iw = c; iw < d; iw++) acc += xc[ih * s->W + iw];
      int64_t cnt = include_pad ? span_h * span_w : (b - a) * (d - c);
      yp[oh * s->OW + ow] = cnt > 0 ? (float)(acc / (double)cnt) : 0.0f;
    }
  }
}

void oe_avgpool_forward(const oe_conv_shape *s, const float *x, float *y, int count_include_pad, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int64_t planes = s->N * s->C, HW = s->H * s->W, OHW = s->OH * s->OW;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && planes * OHW * s->kh * s->kw > 16384)
  for (int64_t p = 0; p < planes; p++) avgpool_plane(s, x + p * HW, y + p * OHW, count_include_pad);
}

OE_SIMD_CLONES
void oe_global_avgpool(const float *x, int64_t N, int64_t C, int64_t HW, float *y, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int64_t planes = N * C;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1 && planes * HW > 32768)
  for (int64_t p = 0; p < planes; p++) {
    const float *xp = x + p * HW;
    double acc = 0;
    for (int64_t i = 0; i < HW; i++) acc += xp[i];
    y[p] = HW > 0 ? (float)(acc / (double)HW) : 0.0f;
  }
}
