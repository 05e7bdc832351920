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

int64_t oe_fz_attention_scratch(int64_t L) { return (L * L + 15) & ~(int64_t)15; }

void oe_fz_attention(const float *qkv, int64_t ld, int64_t B, int64_t L, int64_t H, int64_t hd, const uint8_t *keep,
                     float *out, float *scratch, int nthreads) {
  const int64_t D = H * hd;
  const float scale = 1.0f / sqrtf((float)hd);
  const int64_t per = oe_fz_attention_scratch(L);
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
    /* scores (L, S) = q k^T * scale */
    oe_gemm(0, 1, L, S, hd, scale, q, ld, k, ld, 0.0f, P, S);
    if (keep && nreal == 0) {
      for (int64_t i = 0; i < L * S; i++) P[i] = 0.0f;
    } else if (kp) {
      for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < S; j++)
          if (!kp[j]) P[i * S + j] = -INFINITY;
    }
    oe_softmax_f32(P, P, L, S, 0);
    /* out (L, hd) = P v */
    oe_gemm(0, 0, L, hd, S, 1.0f, P, S, v, ld, 0.0f, o, D);
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
