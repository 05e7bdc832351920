/* matmul.c: the one place that calls cblas_sgemm.
 * OpenBLAS runs single-threaded; large products are split into blocks of rows
 * (or columns) over the project's OpenMP threads instead. One thread pool for
 * everything: two pools (OpenBLAS's pthreads spinning in sched_yield next to
 * OpenMP's) oversubscribe a 2-core machine and made training twice slower than
 * with one thread. Each block is a plain sgemm on a sub-matrix, so the result
 * does not depend on the thread count beyond OpenBLAS's own kernel choice. */
#include "ops.h"
#include <cblas.h>
#include <omp.h>

static void gemm1(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, (blasint)M,
              (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

void oe_gemm_serial(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return;
  }
  gemm1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void oe_gemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  double flops = 2.0 * (double)M * (double)N * (double)K;
  if (nt <= 1 || flops < 4e6) { /* also every empty product */
    oe_gemm_serial(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  /* each thread packs all of the operand it does not split: split rows (B packed twice) when
   * M >= N, columns (A packed twice) when N > M and there are columns enough. A weight gradient
   * g^T x of a 2048 -> 256 Linear over 12,608 rows (M 256, N 2048) took 55 ms split by rows, 47
   * split by columns, raw multi-threaded sgemm 47 (X, 2 threads). */
  if (M >= N || N < 64 * nt) { /* split rows of C: rows of op(A) */
    int64_t step = (M + nt - 1) / nt;
    step = (step + 15) / 16 * 16;
    int64_t nblk = (M + step - 1) / step;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t b = 0; b < nblk; b++) {
      int64_t m0 = b * step, m = M - m0 < step ? M - m0 : step;
      const float *Ab = transA ? A + m0 : A + m0 * lda;
      gemm1(transA, transB, m, N, K, alpha, Ab, lda, B, ldb, beta, C + m0 * ldc, ldc);
    }
  } else { /* split columns of C: columns of op(B) */
    int64_t step = (N + nt - 1) / nt;
    step = (step + 63) / 64 * 64;
    int64_t nblk = (N + step - 1) / step;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int64_t b = 0; b < nblk; b++) {
      int64_t n0 = b * step, n = N - n0 < step ? N - n0 : step;
      const float *Bb = transB ? B + n0 * ldb : B + n0;
      gemm1(transA, transB, M, n, K, alpha, A, lda, Bb, ldb, beta, C + n0, ldc);
    }
  }
}
