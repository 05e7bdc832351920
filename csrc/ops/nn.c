/* nn.c: softmax, layer norm, dropout, L2 normalisation, cross entropy. */
#include "ops.h"
#include "../core/cpu.h"
#include <math.h>
#include <omp.h>
#include <string.h>

/* out[j] = exp(x[j] - m) through glibc's vector expf (libmvec: 16 lanes with AVX-512,
 * 8 with AVX2), chosen at run time like the clones; scalar expf elsewhere */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__m256 _ZGVdN8v_expf(__m256);
__m512 _ZGVeN16v_expf(__m512);
__attribute__((target("avx2,fma"))) static void exp_shift_avx2(const float *x, float m, float *out, int64_t n) {
  __m256 vm = _mm256_set1_ps(m);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(out + j, _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm)));
  for (; j < n; j++) out[j] = expf(x[j] - m);
}
__attribute__((target("avx512f"))) static void exp_shift_avx512(const float *x, float m, float *out, int64_t n) {
  __m512 vm = _mm512_set1_ps(m);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) _mm512_storeu_ps(out + j, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm)));
  for (; j < n; j++) out[j] = expf(x[j] - m);
}
#endif
static void exp_shift_scalar(const float *x, float m, float *out, int64_t n) {
  for (int64_t j = 0; j < n; j++) out[j] = expf(x[j] - m);
}
typedef void (*exp_shift_fn)(const float *, float, float *, int64_t);
static exp_shift_fn exp_shift_pick(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  static int level = -1;
  if (level < 0) level = oe_cpu_simd_level(); /* same value from every thread */
  if (level == OE_SIMD_AVX512) return exp_shift_avx512;
  if (level == OE_SIMD_AVX2) return exp_shift_avx2;
#endif
  return exp_shift_scalar;
}

OE_SIMD_CLONES
void oe_softmax_f32(const float *x, float *y, int64_t rows, int64_t n, int take_log) {
  const exp_shift_fn exp_shift = exp_shift_pick();
#pragma omp parallel for schedule(static) if (rows * n > 32768 && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    const float *px = x + r * n;
    float *py = y + r * n;
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) if (px[j] > mx) mx = px[j];
    if (mx == -INFINITY) { /* every entry masked: PyTorch gives NaN; we give NaN too */
      for (int64_t j = 0; j < n; j++) py[j] = NAN;
      continue;
    }
    double s = 0;
    if (take_log) {
      float tmp[256];
      for (int64_t c = 0; c < n; c += 256) {
        int64_t len = n - c < 256 ? n - c : 256;
        exp_shift(px + c, mx, tmp, len);
        for (int64_t j = 0; j < len; j++) s += tmp[j];
      }
      float ls = (float)log(s) + mx;
      for (int64_t j = 0; j < n; j++) py[j] = px[j] - ls;
    } else {
      exp_shift(px, mx, py, n);
      for (int64_t j = 0; j < n; j++) s += py[j];
      float inv = (float)(1.0 / s);
      for (int64_t j = 0; j < n; j++) py[j] *= inv;
    }
  }
}

OE_SIMD_CLONES
void oe_softmax_backward_f32(const float *y, const float *g, float *gx, int64_t rows, int64_t n, int log) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (int64_t r = 0; r < rows; r++) {
    const float *py = y + r * n, *pg = g + r * n;
    float *px = gx + r * n;
    double s = 0;
    if (log) {
      for (int64_t j = 0; j < n; j++) s += pg[j];
      for (int64_t j = 0; j < n; j++) px[j] = pg[j] - expf(py[j]) * (float)s;
    } else {
      for (int64_t j = 0; j < n; j++) s += (double)pg[j] * py[j];
      for (int64_t j = 0; j < n; j++) px[j] = py[j] * (pg[j] - (float)s);
    }
  }
}

OE_SIMD_CLONES
void oe_layernorm_forward(const float *x, const float *w, const float *b, float *y, float *mean, float *rstd,
                          int64_t rows, int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (int64_t r = 0; r < rows; r++) {
    const float *px = x + r * n;
    float *py = y + r * n;
    double s = 0, ss = 0;
    for (int64_t j = 0; j < n; j++) s += px[j];
    double m = s / (double)n;
    for (int64_t j = 0; j < n; j++) { double d = px[j] - m; ss += d * d; }
    float rs = (float)(1.0 / sqrt(ss / (double)n + eps)), mf = (float)m;
    for (int64_t j = 0; j < n; j++) {
      float v = (px[j] - mf) * rs;
      py[j] = v * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f);
    }
    if (mean) mean[r] = mf;
    if (rstd) rstd[r] = rs;
  }
}

OE_SIMD_CLONES
void oe_layernorm_backward(const float *x, const float *w, const float *mean, const float *rstd, const float *g,
                           float *gx, float *gw, float *gb, int64_t rows, int64_t n) {
  if (gx) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
    for (int64_t r = 0; r < rows; r++) {
      const float *px = x + r * n, *pg = g + r * n;
      float *pgx = gx + r * n;
      float m = mean[r], rs = rstd[r];
      double a = 0, bsum = 0; /* mean(g*w), mean(g*w*xhat) */
      for (int64_t j = 0; j < n; j++) {
        float gw_ = pg[j] * (w ? w[j] : 1.0f);
        a += gw_;
        bsum += (double)gw_ * (px[j] - m) * rs;
      }
      float fa = (float)(a / (double)n), fb = (float)(bsum / (double)n);
      for (int64_t j = 0; j < n; j++) {
        float xhat = (px[j] - m) * rs;
        pgx[j] = rs * (pg[j] * (w ? w[j] : 1.0f) - fa - xhat * fb);
      }
    }
  }
  if (gw || gb) {
    /* column sums: parallel over columns, deterministic order over rows */
#pragma omp parallel for schedule(static) if (rows * n > 32768)
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
      int64_t j1 = j0 + 64 < n ? j0 + 64 : n;
      double aw[64] = {0}, ab[64] = {0};
      for (int64_t r = 0; r < rows; r++) {
        const float *px = x + r * n, *pg = g + r * n;
        float m = mean[r], rs = rstd[r];
        for (int64_t j = j0; j < j1; j++) {
          aw[j - j0] += (double)pg[j] * (px[j] - m) * rs;
          ab[j - j0] += pg[j];
        }
      }
      for (int64_t j = j0; j < j1; j++) {
        if (gw) gw[j] += (float)aw[j - j0];
        if (gb) gb[j] += (float)ab[j - j0];
      }
    }
  }
}

OE_SIMD_CLONES
void oe_dropout_forward(oe_rng *r, const float *x, float *y, uint8_t *mask, int64_t n, float p) {
  uint64_t base = oe_rng_reserve(r, (uint64_t)n);
  const uint64_t thresh = oe_rng_keep_threshold(p);
  float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    uint8_t keep = oe_rng_keep(oe_rng_at(r, base, (uint64_t)i), thresh);
    mask[i] = keep;
    y[i] = keep ? x[i] * scale : 0.0f;
  }
}

/* fused relu + dropout: y = relu(x) * keep / (1 - p). Only y is kept for
 * backward: y > 0 exactly where x > 0 and the unit was kept. */
OE_SIMD_CLONES
void oe_relu_dropout_forward(oe_rng *r, const float *x, float *y, int64_t n, float p) {
  uint64_t base = p > 0 ? oe_rng_reserve(r, (uint64_t)n) : 0;
  float scale = 1.0f / (1.0f - p);
  const uint64_t thresh = oe_rng_keep_threshold(p);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    float v = x[i] > 0 ? x[i] : 0.0f;
    if (p > 0) v = oe_rng_keep(oe_rng_at(r, base, (uint64_t)i), thresh) ? v * scale : 0.0f;
    y[i] = v;
  }
}

OE_SIMD_CLONES
void oe_relu_dropout_backward(const float *y, const float *g, float *gx, int64_t n, float p) {
  float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) gx[i] = y[i] > 0 ? g[i] * scale : 0.0f;
}

OE_SIMD_CLONES
void oe_l2norm_forward(const float *x, float *y, float *norm, int64_t rows, int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (int64_t r = 0; r < rows; r++) {
    const float *px = x + r * n;
    double s = 0;
    for (int64_t j = 0; j < n; j++) s += (double)px[j] * px[j];
    float nr = (float)sqrt(s);
    norm[r] = nr;
    float d = nr > eps ? nr : eps;
    for (int64_t j = 0; j < n; j++) y[r * n + j] = px[j] / d;
  }
}

/* y = x / max(|x|, eps): gx = (g - y (g.y)) / |x| when |x| > eps, else g / eps */
OE_SIMD_CLONES
void oe_l2norm_backward(const float *x, const float *y, const float *norm, const float *g, float *gx, int64_t rows,
                        int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (rows * n > 32768)
  for (int64_t r = 0; r < rows; r++) {
    const float *py = y + r * n, *pg = g + r * n;
    float *pgx = gx + r * n;
    float nr = norm[r];
    if (nr > eps) {
      double dot = 0;
      for (int64_t j = 0; j < n; j++) dot += (double)pg[j] * py[j];
      for (int64_t j = 0; j < n; j++) pgx[j] = (pg[j] - py[j] * (float)dot) / nr;
    } else {
      for (int64_t j = 0; j < n; j++) pgx[j] = pg[j] / eps;
    }
  }
  (void)x;
}

OE_SIMD_CLONES
int oe_cross_entropy_forward(const float *logits, const int64_t *targets, int64_t N, int64_t C, int64_t ignore,
                             float smoothing, float *probs, double *loss, int64_t *count, int64_t *bad) {
  for (int64_t i = 0; i < N; i++) {
    if (targets[i] == ignore) continue;
    if (targets[i] < 0 || targets[i] >= C) { *bad = i; return -1; }
  }
  oe_softmax_f32(logits, probs, N, C, 0);
  double s = 0;
  int64_t cnt = 0;
  for (int64_t i = 0; i < N; i++) {
    int64_t t = targets[i];
    if (t == ignore) continue;
    const float *pl = logits + i * C;
    float mx = -INFINITY;
    for (int64_t j = 0; j < C; j++) if (pl[j] > mx) mx = pl[j];
    double z = 0;
    for (int64_t j = 0; j < C; j++) z += exp((double)pl[j] - mx);
    double lse = log(z) + mx;
    double nll = lse - pl[t];
    if (smoothing > 0) {
      double mean_l = 0;
      for (int64_t j = 0; j < C; j++) mean_l += lse - pl[j];
      nll = (1.0 - smoothing) * nll + smoothing * mean_l / (double)C;
    }
    s += nll;
    cnt++;
  }
  *count = cnt;
  *loss = cnt ? s / (double)cnt : NAN;
  return 0;
}

/* glogits = gscale * (probs - onehot_smoothed) for non-ignored rows, 0 otherwise */
OE_SIMD_CLONES
void oe_cross_entropy_backward(const float *probs, const int64_t *targets, int64_t N, int64_t C, int64_t ignore,
                               float smoothing, float gscale, float *glogits) {
#pragma omp parallel for schedule(static) if (N * C > 32768)
  for (int64_t i = 0; i < N; i++) {
    float *pg = glogits + i * C;
    const float *pp = probs + i * C;
    int64_t t = targets[i];
    if (t == ignore) { memset(pg, 0, sizeof(float) * (size_t)C); continue; }
    for (int64_t j = 0; j < C; j++) {
      float target = (j == t ? 1.0f - smoothing : 0.0f) + smoothing / (float)C;
      pg[j] = gscale * (pp[j] - target);
    }
  }
}
