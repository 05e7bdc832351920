/* kernels.c: inference kernels of the frozen encoders (see kernels.h). */
#include "kernels.h"
#include "../ops/ops.h"
#include "../core/cpu.h"
#include <math.h>
#include <omp.h>
#include <string.h>

/* Parallel only for enough work: a region costs a few microseconds. */
#define PAR_MIN 32768

/* ---- LayerNorm ---- */

/* Sums in 16 float lanes (vectorised without reassociating a single accumulator),
 * the lanes added in double: for rows of a few thousand values of order 1 the error
 * stays near 1e-7 relative, as with one double accumulator. */
#define LANES 16
static inline double lane_sum(const float *acc) {
  double s = 0;
  for (int k = 0; k < LANES; k++) s += acc[k];
  return s;
}

OE_SIMD_CLONES
void oe_fz_add_layernorm(float *x, const float *add, const float *w, const float *b, float *y, int64_t rows, int64_t n,
                         float eps) {
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    float *px = x + r * n;
    float *py = y + r * n;
    if (add)
      for (int64_t j = 0; j < n; j++) px[j] += add[j];
    float acc[LANES] = { 0 };
    int64_t j0 = n - n % LANES;
    for (int64_t j = 0; j < j0; j += LANES)
      for (int k = 0; k < LANES; k++) acc[k] += px[j + k];
    double s = lane_sum(acc);
    for (int64_t j = j0; j < n; j++) s += px[j];
    const float mf = (float)(s / (double)n);
    float acc2[LANES] = { 0 };
    for (int64_t j = 0; j < j0; j += LANES)
      for (int k = 0; k < LANES; k++) { float d = px[j + k] - mf; acc2[k] += d * d; }
    double ss = lane_sum(acc2);
    for (int64_t j = j0; j < n; j++) { double d = px[j] - mf; ss += d * d; }
    const float rs = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t j = 0; j < n; j++) py[j] = (px[j] - mf) * rs * w[j] + b[j];
  }
}

OE_SIMD_CLONES
void oe_fz_add_bias(float *y, const float *bias, int64_t rows, int64_t n, int64_t ld) {
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    float *py = y + r * ld;
    for (int64_t j = 0; j < n; j++) py[j] += bias[j];
  }
}

/* ---- GELU (erf): glibc's vector erff (libmvec) where the CPU has AVX2, chosen at run time ---- */

static void gelu_row_scalar(float *y, const float *bias, int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    float v = y[j] + bias[j];
    y[j] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
  }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_erff(__m256);
__attribute__((target("avx2,fma"))) static void gelu_row_avx2(float *y, const float *bias, int64_t n) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), r2 = _mm256_set1_ps((float)M_SQRT1_2);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(bias + j));
    __m256 er = _ZGVdN8v_erff(_mm256_mul_ps(v, r2));
    _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, er)));
  }
  gelu_row_scalar(y + j, bias + j, n - j);
}
static int have_avx2(void) {
  static int v = -1;
  if (v < 0) {
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  return v;
}
#else
static int have_avx2(void) { return 0; }
#define gelu_row_avx2 gelu_row_scalar
#endif

void oe_fz_bias_gelu(float *y, const float *bias, int64_t rows, int64_t n) {
  int v = have_avx2();
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    if (v) gelu_row_avx2(y + r * n, bias, n);
    else gelu_row_scalar(y + r * n, bias, n);
  }
}

void oe_fz_bias_tanh(float *y, const float *bias, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    float *py = y + r * n;
    for (int64_t j = 0; j < n; j++) py[j] = tanhf(py[j] + bias[j]);
  }
}

/* ---- attention ---- */

/* Row softmax of attention scores, in place: the max and the sum in vector lanes, exp through
 * glibc's vector expf (libmvec), chosen at run time; oe_softmax_f32 (scalar max, double sum) was
 * 40% of a VideoMAE attention. Rows of -inf only give NaN, as oe_softmax_f32 does. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target("avx2,fma"))) __m256 _ZGVdN8v_expf(__m256);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);
__attribute__((target("avx512f"))) static void softmax_rows_avx512(float *P, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    float *p = P + r * n;
    int64_t j = 0;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (; j + 16 <= n; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(p + j));
    float mx = _mm512_reduce_max_ps(vmax);
    for (; j < n; j++) if (p[j] > mx) mx = p[j];
    if (mx == -INFINITY) { for (j = 0; j < n; j++) p[j] = NAN; continue; }
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 vs = _mm512_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
      __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(p + j), vm));
      _mm512_storeu_ps(p + j, e);
      vs = _mm512_add_ps(vs, e);
    }
    double s = _mm512_reduce_add_ps(vs);
    for (; j < n; j++) { p[j] = expf(p[j] - mx); s += p[j]; }
    const __m512 vi = _mm512_set1_ps((float)(1.0 / s));
    for (j = 0; j + 16 <= n; j += 16) _mm512_storeu_ps(p + j, _mm512_mul_ps(_mm512_loadu_ps(p + j), vi));
    for (; j < n; j++) p[j] *= (float)(1.0 / s);
  }
}
__attribute__((target("avx2,fma"))) static void softmax_rows_avx2(float *P, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; r++) {
    float *p = P + r * n;
    int64_t j = 0;
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= n; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p + j));
    float lanes[8];
    _mm256_storeu_ps(lanes, vmax);
    float mx = -INFINITY;
    for (int k = 0; k < 8; k++) if (lanes[k] > mx) mx = lanes[k];
    for (; j < n; j++) if (p[j] > mx) mx = p[j];
    if (mx == -INFINITY) { for (j = 0; j < n; j++) p[j] = NAN; continue; }
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
      __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_loadu_ps(p + j), vm));
      _mm256_storeu_ps(p + j, e);
      vs = _mm256_add_ps(vs, e);
    }
    _mm256_storeu_ps(lanes, vs);
    double s = 0;
    for (int k = 0; k < 8; k++) s += lanes[k];
    for (; j < n; j++) { p[j] = expf(p[j] - mx); s += p[j]; }
    const __m256 vi = _mm256_set1_ps((float)(1.0 / s));
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), vi));
    for (; j < n; j++) p[j] *= (float)(1.0 / s);
  }
}
static void attention_softmax(float *P, int64_t rows, int64_t n) {
  static int level = -1;
  if (level < 0) level = oe_cpu_simd_level(); /* same value from every thread */
  if (level == OE_SIMD_AVX512) softmax_rows_avx512(P, rows, n);
  else if (level == OE_SIMD_AVX2) softmax_rows_avx2(P, rows, n);
  else oe_softmax_f32(P, P, rows, n, 0);
}
#else
static void attention_softmax(float *P, int64_t rows, int64_t n) { oe_softmax_f32(P, P, rows, n, 0); }
#endif

/* Queries run in blocks of QB rows once L exceeds ATT_BLOCK_MIN: the block's scores (QB, S)
 * stay in L2 through the softmax and the product with V, instead of an (L, L) matrix going
 * through memory three times (9.8 MB per head for VideoMAE's 1568 tokens). Each row's scores,
 * softmax and output are those of the unblocked computation (rows are independent). */
#define ATT_BLOCK_MIN 256
#define ATT_QB 256
static int64_t att_rows(int64_t L) { return L > ATT_BLOCK_MIN ? ATT_QB : L; }

int64_t oe_fz_attention_scratch(int64_t L) { return (att_rows(L) * L + 15) & ~(int64_t)15; }

void oe_fz_attention(const float *qkv, int64_t ld, int64_t B, int64_t L, int64_t H, int64_t hd, const uint8_t *keep,
                     float *out, float *scratch, int nthreads) {
  const int64_t D = H * hd;
  const float scale = 1.0f / sqrtf((float)hd);
  const int64_t per = oe_fz_attention_scratch(L), QB = att_rows(L);
  if (nthreads < 1) nthreads = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
  for (int64_t bh = 0; bh < B * H; bh++) {
    int64_t b = bh / H, h = bh % H;
    float *P = scratch + (int64_t)omp_get_thread_num() * per;
    const float *q = qkv + b * L * ld + h * hd;
    const float *k = q + D, *v = q + 2 * D;
    float *o = out + b * L * D + h * hd;
    /* keys used: all L, or the real prefix when the padding is a suffix */
    int64_t S = L, nreal = L;
    int prefix = 1;
    const uint8_t *kp = keep ? keep + b * L : NULL;
    if (kp) {
      nreal = 0;
      for (int64_t j = 0; j < L; j++) {
        if (kp[j]) { if (nreal != j) prefix = 0; nreal++; }
      }
      if (nreal == 0) { kp = NULL; }        /* no real key: uniform over all (see kernels.h) */
      else if (prefix) { S = nreal; kp = NULL; }
    }
    for (int64_t i0 = 0; i0 < L; i0 += QB) {
      const int64_t nq = L - i0 < QB ? L - i0 : QB;
      /* scores (nq, S) = q k^T * scale */
      oe_gemm(0, 1, nq, S, hd, scale, q + i0 * ld, ld, k, ld, 0.0f, P, S);
      if (keep && nreal == 0) {
        for (int64_t i = 0; i < nq * S; i++) P[i] = 0.0f;
      } else if (kp) {
        for (int64_t i = 0; i < nq; i++)
          for (int64_t j = 0; j < S; j++)
            if (!kp[j]) P[i * S + j] = -INFINITY;
      }
      attention_softmax(P, nq, S);
      /* out (nq, hd) = P v */
      oe_gemm(0, 0, nq, hd, S, 1.0f, P, S, v, ld, 0.0f, o + i0 * D, D);
    }
  }
}

/* ---- patch extraction ---- */

void oe_fz_im2col(const float *x, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t P, float *cols) {
  const int64_t gh = Hh / P, gw = W / P, K = C * P * P;
#pragma omp parallel for schedule(static) if (B * gh * gw * K > PAR_MIN && !omp_in_parallel())
  for (int64_t t = 0; t < B * gh; t++) {
    int64_t b = t / gh, r = t % gh;
    for (int64_t c = 0; c < gw; c++) {
      float *dst = cols + ((b * gh + r) * gw + c) * K;
      for (int64_t ch = 0; ch < C; ch++)
        for (int64_t i = 0; i < P; i++)
          memcpy(dst + (ch * P + i) * P, x + ((b * C + ch) * Hh + r * P + i) * W + c * P, (size_t)P * sizeof(float));
    }
  }
}

/* ---- one pre-norm transformer layer (see kernels.h) ---- */

void oe_fz_prenorm_layer_forward(const oe_fz_prenorm_layer *l, float *x, const float **pending, int64_t nb, int64_t L,
                                 int64_t D, int64_t H, int64_t M, float eps, float *h, float *qkv, float *a, float *mm,
                                 float *att, int att_threads) {
  const int64_t rows = nb * L, hd = D / H;
  oe_fz_add_layernorm(x, *pending, l->ln1_w, l->ln1_b, h, rows, D, eps);
  if (l->qkv_w) {
    oe_gemm(0, 1, rows, 3 * D, D, 1.0f, h, D, l->qkv_w, D, 0.0f, qkv, 3 * D);
    oe_fz_add_bias(qkv, l->qkv_b, rows, 3 * D, 3 * D);
  } else {
    oe_gemm(0, 1, rows, D, D, 1.0f, h, D, l->q_w, D, 0.0f, qkv, 3 * D);
    oe_gemm(0, 1, rows, D, D, 1.0f, h, D, l->k_w, D, 0.0f, qkv + D, 3 * D);
    oe_gemm(0, 1, rows, D, D, 1.0f, h, D, l->v_w, D, 0.0f, qkv + 2 * D, 3 * D);
    if (l->q_b) oe_fz_add_bias(qkv, l->q_b, rows, D, 3 * D);
    if (l->k_b) oe_fz_add_bias(qkv + D, l->k_b, rows, D, 3 * D);
    if (l->v_b) oe_fz_add_bias(qkv + 2 * D, l->v_b, rows, D, 3 * D);
  }
  oe_fz_attention(qkv, 3 * D, nb, L, H, hd, NULL, a, att, att_threads);
  oe_gemm(0, 1, rows, D, D, 1.0f, a, D, l->proj_w, D, 1.0f, x, D);
  oe_fz_add_layernorm(x, l->proj_b, l->ln2_w, l->ln2_b, h, rows, D, eps);
  oe_gemm(0, 1, rows, M, D, 1.0f, h, D, l->fc1_w, D, 0.0f, mm, M);
  oe_fz_bias_gelu(mm, l->fc1_b, rows, M);
  oe_gemm(0, 1, rows, D, M, 1.0f, mm, M, l->fc2_w, M, 1.0f, x, D);
  *pending = l->fc2_b;
}
