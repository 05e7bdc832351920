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

int oe_conv_is_depthwise(const oe_conv_shape *s) { return s->groups > 1 && s->groups == s->C; }

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

/* rows r (rows, n; row stride ld) get bias[r] and the post-ops */
static void epilogue(const oe_post *p, const float *bias, float *y, int64_t rows, int64_t n, int64_t ld, int par) {
  if ((!p || p->n == 0) && !bias) return;
#pragma omp parallel for schedule(static) if (par && rows * n > 32768)
  for (int64_t r = 0; r < rows; r++) post_row(p, bias ? bias + r : NULL, y + r * ld, n);
}

/* ---- im2col ---- */

static inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/* rows r0..r1-1 of cols (each row: one (c, i, j) tap), output positions p0..p1-1 */
OE_SIMD_CLONES
static void im2col_rows(const oe_conv_shape *s, const float *x, int64_t c0, int64_t r0, int64_t r1, int64_t p0,
                        int64_t p1, float *cols) {
  const int64_t kk = s->kh * s->kw, len = p1 - p0, OW = s->OW, W = s->W, H = s->H, sw = s->sw;
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

/* How a convolution is run: over images in parallel (par) or one image at a time with
 * threaded products, and the column tile of the im2col buffer. */
typedef struct { int par; int64_t tile; } conv_path;
#define TILE_FLOATS_SERIAL (INT64_C(1) << 22)   /* 16 MB of columns */
#define TILE_FLOATS_PAR (INT64_C(1) << 19)      /* 2 MB per thread */

static conv_path choose_path(const oe_conv_shape *s, int nthreads) {
  conv_path c;
  int64_t Cg = s->C / s->groups, K = Cg * s->kh * s->kw, OHW = s->OH * s->OW, jobs = s->N * s->groups;
  double flops = 2.0 * (double)(s->M / s->groups) * (double)K * (double)OHW;
  c.par = nthreads > 1 && jobs >= nthreads && flops < 6e7;
  int64_t cap = c.par ? TILE_FLOATS_PAR : TILE_FLOATS_SERIAL;
  int64_t t = cap / (K > 0 ? K : 1);
  if (t < 256) t = 256;
  c.tile = t < OHW ? t : OHW;
  return c;
}

size_t oe_conv_scratch_floats(const oe_conv_shape *s, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (oe_conv_is_depthwise(s) || is_pointwise(s)) return 0;
  conv_path c = choose_path(s, nthreads);
  int64_t K = s->C / s->groups * s->kh * s->kw;
  return (size_t)K * (size_t)c.tile * (size_t)(c.par ? nthreads : 1);
}

/* one (image, group) job: y block (Mg, OHW) of image n, group g */
static void conv_job(const oe_conv_shape *s, const float *x, const float *w, const float *bias, float *y,
                     const oe_post *post, float *cols, int64_t tile, int64_t n, int64_t g, int par_inner) {
  int64_t Cg = s->C / s->groups, Mg = s->M / s->groups, K = Cg * s->kh * s->kw, OHW = s->OH * s->OW;
  const float *xn = x + n * s->C * s->H * s->W;
  const float *wg = w + g * Mg * K;
  const float *bg = bias ? bias + g * Mg : NULL;
  float *yg = y + (n * s->M + g * Mg) * OHW;
  if (is_pointwise(s)) {
    oe_gemm(0, 0, Mg, OHW, K, 1.0f, wg, K, xn + g * Cg * OHW, OHW, 0.0f, yg, OHW);
    epilogue(post, bg, yg, Mg, OHW, OHW, par_inner);
    return;
  }
  for (int64_t p0 = 0; p0 < OHW; p0 += tile) {
    int64_t p1 = p0 + tile < OHW ? p0 + tile : OHW, len = p1 - p0;
    if (par_inner) {
      const int64_t RB = 8;
      int64_t nrb = (K + RB - 1) / RB;
#pragma omp parallel for schedule(static) if (K * len > 32768)
      for (int64_t rb = 0; rb < nrb; rb++) {
        int64_t r0 = rb * RB, r1 = r0 + RB < K ? r0 + RB : K;
        im2col_rows(s, xn, g * Cg, r0, r1, p0, p1, cols);
      }
    } else {
      im2col_rows(s, xn, g * Cg, 0, K, p0, p1, cols);
    }
    oe_gemm(0, 0, Mg, len, K, 1.0f, wg, K, cols, len, 0.0f, yg + p0, OHW);
    epilogue(post, bg, yg + p0, Mg, len, OHW, par_inner);
  }
}

void oe_conv_forward(const oe_conv_shape *s, const float *x, const float *w, const float *bias, float *y,
                     const oe_post *post, float *scratch, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  if (s->N == 0) return;
  if (oe_conv_is_depthwise(s)) {
    oe_conv_depthwise(s, x, w, bias, y, post, nthreads);
    return;
  }
  conv_path c = choose_path(s, nthreads);
  int64_t K = s->C / s->groups * s->kh * s->kw, jobs = s->N * s->groups;
  if (c.par) {
#pragma omp parallel num_threads(nthreads)
    {
      float *cols = scratch ? scratch + (size_t)omp_get_thread_num() * (size_t)K * (size_t)c.tile : NULL;
#pragma omp for schedule(dynamic, 1)
      for (int64_t j = 0; j < jobs; j++) conv_job(s, x, w, bias, y, post, cols, c.tile, j / s->groups, j % s->groups, 0);
    }
  } else {
    for (int64_t j = 0; j < jobs; j++) conv_job(s, x, w, bias, y, post, scratch, c.tile, j / s->groups, j % s->groups, 1);
  }
}

/* ---- depthwise ---- */

/* one output plane (OH, OW) of channel m from input plane xc (H, W) and kernel wk (kh, kw) */
OE_SIMD_CLONES
static void depthwise_plane(const oe_conv_shape *s, const float *xc, const float *wk, const float *bias_v, float *yp,
                            const oe_post *post) {
  const int64_t OH = s->OH, OW = s->OW, H = s->H, W = s->W, sw = s->sw;
  for (int64_t oh = 0; oh < OH; oh++) {
    float *yr = yp + oh * OW;
    for (int64_t ow = 0; ow < OW; ow++) yr[ow] = 0.0f;
    for (int64_t i = 0; i < s->kh; i++) {
      int64_t ih = oh * s->sh - s->pt + i * s->dh;
      if (ih < 0 || ih >= H) continue;
      const float *xr = xc + ih * W;
      for (int64_t j = 0; j < s->kw; j++) {
        float wv = wk[i * s->kw + j];
        int64_t off = j * s->dw - s->pl;
        int64_t lo = ceil_div(-off, sw), hi = ceil_div(W - off, sw);
        if (lo < 0) lo = 0;
        if (hi > OW) hi = OW;
        if (sw == 1) {
          const float *xs = xr + off;
          for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xs[ow];
        } else if (sw == 2) {
          const float *xs = xr + off;
          for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xs[2 * ow];
        } else {
          for (int64_t ow = lo; ow < hi; ow++) yr[ow] += wv * xr[ow * sw + off];
        }
      }
    }
    post_row(post, bias_v, yr, OW);
  }
}

void oe_conv_depthwise(const oe_conv_shape *s, const float *x, const float *w, const float *bias, float *y,
                       const oe_post *post, int nthreads) {
  if (nthreads < 1) nthreads = 1;
  int64_t mult = s->M / s->C, planes = s->N * s->M, HW = s->H * s->W, OHW = s->OH * s->OW, kk = s->kh * s->kw;
  int par = nthreads > 1 && planes * OHW * kk > 16384;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (par)
  for (int64_t pl = 0; pl < planes; pl++) {
    int64_t n = pl / s->M, m = pl % s->M, c = m / mult;
    depthwise_plane(s, x + (n * s->C + c) * HW, w + m * kk, bias ? bias + m : NULL, y + pl * OHW,
                    post && post->n ? post : NULL);
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
