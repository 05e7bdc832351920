/* reduce.c: reductions along one dimension and top-k. */
#include "ops.h"
#include "../core/cpu.h"
#include <math.h>
#include <stdlib.h>

/* x viewed as (outer, n, inner) -> out (outer, inner). Sums walk rows
 * contiguously (accumulating a block of columns in double), in parallel over
 * (outer, column block) so the order of additions never depends on threads. */
OE_SIMD_CLONES
void oe_reduce_f32(oe_redop op, const float *x, int64_t outer, int64_t n, int64_t inner, float *out, int64_t *idx) {
  const int64_t CB = 256;
  int64_t nblk = (inner + CB - 1) / CB;
  /* one block (a bias gradient: outer 1, inner <= 256) gains nothing from a parallel region */
#pragma omp parallel for schedule(static) if (outer * nblk > 1 && outer * n * inner > 65536)
  for (int64_t ob = 0; ob < outer * nblk; ob++) {
    int64_t o = ob / nblk, i0 = (ob % nblk) * CB, i1 = i0 + CB < inner ? i0 + CB : inner;
    const float *base = x + o * n * inner;
    if (op == OE_RSUM || op == OE_RMEAN) {
      double acc[256];
      for (int64_t i = i0; i < i1; i++) acc[i - i0] = 0;
      for (int64_t j = 0; j < n; j++) {
        const float *row = base + j * inner;
        for (int64_t i = i0; i < i1; i++) acc[i - i0] += row[i];
      }
      for (int64_t i = i0; i < i1; i++) out[o * inner + i] = (float)(op == OE_RMEAN ? acc[i - i0] / (double)n : acc[i - i0]);
    } else {
      for (int64_t i = i0; i < i1; i++) {
        const float *p = base + i;
        float best = p[0];
        int64_t bi = 0;
        for (int64_t j = 1; j < n; j++) {
          float v = p[j * inner];
          if (isnan(best)) break;
          if (isnan(v) || (op == OE_RMAX ? v > best : v < best)) { best = v; bi = j; }
        }
        out[o * inner + i] = best;
        if (idx) idx[o * inner + i] = bi;
      }
    }
  }
}

OE_SIMD_CLONES
double oe_sum_all_f32(const float *x, int64_t n) {
  double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > 65536)
  for (int64_t i = 0; i < n; i++) s += x[i];
  return s;
}

typedef struct { float v; int64_t i; } vi;
static int cmp_desc(const void *a, const void *b) {
  const vi *x = a, *y = b;
  if (x->v > y->v) return -1;
  if (x->v < y->v) return 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}
static int cmp_asc(const void *a, const void *b) {
  const vi *x = a, *y = b;
  if (x->v < y->v) return -1;
  if (x->v > y->v) return 1;
  return x->i < y->i ? -1 : (x->i > y->i);
}

/* Keeps a sorted buffer of the best k (insertion), O(n k) worst case but O(n)
 * typical; ties are broken by the lower index. NaN is treated as smallest. */
int oe_topk_f32(const float *x, int64_t rows, int64_t n, int64_t k, int largest, float *vals, int64_t *idx) {
  int fail = 0;
#pragma omp parallel for schedule(static) if (rows > 4)
  for (int64_t r = 0; r < rows; r++) {
    vi *buf = malloc(sizeof(vi) * (size_t)(k + 1));
    if (!buf) {
#pragma omp atomic write
      fail = 1;
      continue; /* the caller gets an error; rows left unwritten are never seen */
    }
    int64_t cnt = 0;
    const float *p = x + r * n;
    for (int64_t j = 0; j < n; j++) {
      float v = p[j];
      if (isnan(v)) v = largest ? -INFINITY : INFINITY;
      if (cnt == k) {
        float worst = buf[k - 1].v;
        if (largest ? !(v > worst) : !(v < worst)) continue;
      }
      int64_t pos = cnt < k ? cnt : k - 1;
      while (pos > 0 && (largest ? v > buf[pos - 1].v : v < buf[pos - 1].v)) { buf[pos] = buf[pos - 1]; pos--; }
      buf[pos].v = v;
      buf[pos].i = j;
      if (cnt < k) cnt++;
    }
    qsort(buf, (size_t)cnt, sizeof(vi), largest ? cmp_desc : cmp_asc);
    for (int64_t j = 0; j < k; j++) { vals[r * k + j] = buf[j].v; idx[r * k + j] = buf[j].i; }
    free(buf);
  }
  return fail ? -1 : 0;
}
