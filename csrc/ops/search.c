/* search.c: exact top-k search, ranks of relevant items, confusion counts.
 * Order: higher score first, equal scores by lower key index (see search.h). */
#include "search.h"
#include "ops.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a = (sa, ia) ranks before b = (sb, ib) */
static inline int better(float sa, int64_t ia, float sb, int64_t ib) { return sa > sb || (sa == sb && ia < ib); }

static int check_finite(const float *x, int64_t rows, int64_t D, const char *what, oe_err *e) {
  for (int64_t r = 0; r < rows; r++) {
    const float *p = x + r * D;
    for (int64_t c = 0; c < D; c++) {
      if (!isfinite(p[c])) {
        snprintf(e->msg, sizeof e->msg, "%s row %lld has a non-finite value (NaN or Inf)", what, (long long)r);
        return OE_EINVAL;
      }
    }
  }
  return OE_OK;
}

/* ---- top-k: one heap per query row, the worst kept entry on top ---- */

static void heap_sift_down(float *v, int64_t *ix, int64_t n, int64_t pos) {
  for (;;) {
    int64_t l = 2 * pos + 1, r = l + 1, w = pos;
    if (l < n && better(v[w], ix[w], v[l], ix[l])) w = l; /* child l is worse than w */
    if (r < n && better(v[w], ix[w], v[r], ix[r])) w = r;
    if (w == pos) return;
    float tv = v[pos]; v[pos] = v[w]; v[w] = tv;
    int64_t ti = ix[pos]; ix[pos] = ix[w]; ix[w] = ti;
    pos = w;
  }
}

static void heap_push(float *v, int64_t *ix, int64_t n, float s, int64_t j) {
  int64_t pos = n;
  while (pos > 0) {
    int64_t par = (pos - 1) / 2;
    if (!better(v[par], ix[par], s, j)) break; /* parent already worse: stop */
    v[pos] = v[par]; ix[pos] = ix[par];
    pos = par;
  }
  v[pos] = s; ix[pos] = j;
}

int oe_search_topk(const float *q, int64_t Q, const float *keys, int64_t N, int64_t D, int64_t k, int64_t kblock,
                   int64_t qblock, float *vals, int64_t *idx, oe_err *e) {
  if (Q < 1 || N < 1 || D < 1 || k < 1 || k > N || kblock < 1 || qblock < 1) {
    snprintf(e->msg, sizeof e->msg, "bad sizes Q=%lld N=%lld D=%lld k=%lld block=%lld qblock=%lld", (long long)Q,
             (long long)N, (long long)D, (long long)k, (long long)kblock, (long long)qblock);
    return OE_EINVAL;
  }
  if (check_finite(q, Q, D, "queries", e) || check_finite(keys, N, D, "keys", e)) return OE_EINVAL;
  if (kblock > N) kblock = N;
  if (qblock > Q) qblock = Q;
  float *buf = malloc(sizeof(float) * (size_t)qblock * (size_t)kblock);
  int64_t *cnt = calloc((size_t)Q, sizeof(int64_t));
  if (!buf || !cnt) {
    free(buf); free(cnt);
    snprintf(e->msg, sizeof e->msg, "out of memory for a %lld x %lld score tile", (long long)qblock, (long long)kblock);
    return OE_ENOMEM;
  }
  for (int64_t q0 = 0; q0 < Q; q0 += qblock) {
    int64_t qb = Q - q0 < qblock ? Q - q0 : qblock;
    for (int64_t k0 = 0; k0 < N; k0 += kblock) {
      int64_t kb = N - k0 < kblock ? N - k0 : kblock;
      /* buf (qb, kb) = q[q0:q0+qb] (qb, D) x keys[k0:k0+kb]^T (D, kb) */
      oe_gemm(0, 1, qb, kb, D, 1.0f, q + q0 * D, D, keys + k0 * D, D, 0.0f, buf, kb);
#pragma omp parallel for schedule(static) if (qb > 1)
      for (int64_t r = 0; r < qb; r++) {
        int64_t row = q0 + r;
        float *hv = vals + row * k;
        int64_t *hi = idx + row * k;
        int64_t n = cnt[row];
        const float *s = buf + r * kb;
        for (int64_t j = 0; j < kb; j++) {
          float v = s[j];
          int64_t id = k0 + j;
          if (n < k) {
            heap_push(hv, hi, n, v, id);
            n++;
          } else if (better(v, id, hv[0], hi[0])) {
            hv[0] = v; hi[0] = id;
            heap_sift_down(hv, hi, n, 0);
          }
        }
        cnt[row] = n;
      }
    }
  }
  /* heap sort each row: repeatedly move the worst entry to the end -> best first */
#pragma omp parallel for schedule(static) if (Q > 1)
  for (int64_t row = 0; row < Q; row++) {
    float *hv = vals + row * k;
    int64_t *hi = idx + row * k;
    for (int64_t n = k; n > 1; n--) {
      float tv = hv[0]; hv[0] = hv[n - 1]; hv[n - 1] = tv;
      int64_t ti = hi[0]; hi[0] = hi[n - 1]; hi[n - 1] = ti;
      heap_sift_down(hv, hi, n - 1, 0);
    }
  }
  free(buf);
  free(cnt);
  return OE_OK;
}

/* ---- ranks of relevant keys ---- */

typedef struct { float s; int64_t j; } scored;

static int cmp_scored(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (better(x->s, x->j, y->s, y->j)) return -1;
  if (better(y->s, y->j, x->s, x->j)) return 1;
  return 0;
}

static int check_csr(const int64_t *off, const int64_t *lab, int64_t rows, int64_t nlab, const char *what, oe_err *e) {
  if (off[0] != 0) {
    snprintf(e->msg, sizeof e->msg, "%s label offsets must start at 0", what);
    return OE_EINVAL;
  }
  for (int64_t r = 0; r < rows; r++) {
    if (off[r + 1] < off[r]) {
      snprintf(e->msg, sizeof e->msg, "%s label offsets decrease at row %lld", what, (long long)r);
      return OE_EINVAL;
    }
    for (int64_t t = off[r]; t < off[r + 1]; t++) {
      if (lab[t] < 0 || lab[t] >= nlab) {
        snprintf(e->msg, sizeof e->msg, "%s row %lld has label %lld outside [0, %lld)", what, (long long)r,
                 (long long)lab[t], (long long)nlab);
        return OE_EINVAL;
      }
    }
  }
  return OE_OK;
}

int oe_search_ranks(const float *q, int64_t Q, const float *keys, int64_t N, int64_t D, const int64_t *qoff,
                    const int64_t *qlab, const int64_t *koff, const int64_t *klab, int64_t nlab, int64_t qblock,
                    int64_t *first, int64_t *nrel, double *ap, oe_err *e) {
  if (Q < 1 || N < 1 || D < 1 || nlab < 0 || qblock < 1 || Q >= (int64_t)UINT32_MAX) {
    snprintf(e->msg, sizeof e->msg, "bad sizes Q=%lld N=%lld D=%lld labels=%lld qblock=%lld", (long long)Q,
             (long long)N, (long long)D, (long long)nlab, (long long)qblock);
    return OE_EINVAL;
  }
  if (check_finite(q, Q, D, "queries", e) || check_finite(keys, N, D, "keys", e)) return OE_EINVAL;
  if (check_csr(qoff, qlab, Q, nlab, "queries", e) || check_csr(koff, klab, N, nlab, "keys", e)) return OE_EINVAL;
  if (qblock > Q) qblock = Q;
  int nth = omp_get_max_threads();
  if (nth < 1) nth = 1;
  int64_t nk = koff[N];
  float *buf = malloc(sizeof(float) * (size_t)qblock * (size_t)N);
  int64_t *loff = calloc((size_t)nlab + 1, sizeof(int64_t));
  int64_t *lkeys = malloc(sizeof(int64_t) * (size_t)(nk > 0 ? nk : 1));
  uint32_t *stamp = calloc((size_t)nth * (size_t)N, sizeof(uint32_t));
  scored *rel = malloc(sizeof(scored) * (size_t)nth * (size_t)N);
  int64_t *cnt = malloc(sizeof(int64_t) * (size_t)nth * (size_t)N);
  if (!buf || !loff || !lkeys || !stamp || !rel || !cnt) {
    free(buf); free(loff); free(lkeys); free(stamp); free(rel); free(cnt);
    snprintf(e->msg, sizeof e->msg, "out of memory for %lld keys (%d threads, tile of %lld queries)", (long long)N, nth,
             (long long)qblock);
    return OE_ENOMEM;
  }
  /* inverted index label -> keys, keys in increasing order (counting sort) */
  for (int64_t t = 0; t < nk; t++) loff[klab[t] + 1]++;
  for (int64_t l = 0; l < nlab; l++) loff[l + 1] += loff[l];
  int64_t *fill = malloc(sizeof(int64_t) * (size_t)(nlab > 0 ? nlab : 1));
  if (!fill) {
    free(buf); free(loff); free(lkeys); free(stamp); free(rel); free(cnt);
    snprintf(e->msg, sizeof e->msg, "out of memory for %lld labels", (long long)nlab);
    return OE_ENOMEM;
  }
  for (int64_t l = 0; l < nlab; l++) fill[l] = loff[l];
  for (int64_t j = 0; j < N; j++)
    for (int64_t t = koff[j]; t < koff[j + 1]; t++) lkeys[fill[klab[t]]++] = j;
  free(fill);

  for (int64_t q0 = 0; q0 < Q; q0 += qblock) {
    int64_t qb = Q - q0 < qblock ? Q - q0 : qblock;
    oe_gemm(0, 1, qb, N, D, 1.0f, q + q0 * D, D, keys, D, 0.0f, buf, N);
#pragma omp parallel for schedule(dynamic, 4) if (qb > 1)
    for (int64_t r = 0; r < qb; r++) {
      int tid = omp_get_thread_num();
      uint32_t *st = stamp + (size_t)tid * (size_t)N;
      scored *rl = rel + (size_t)tid * (size_t)N;
      int64_t *ct = cnt + (size_t)tid * (size_t)N;
      int64_t i = q0 + r;
      uint32_t mark = (uint32_t)(i + 1); /* unique per query in this call (Q < 2^32 checked above) */
      const float *s = buf + r * N;
      int64_t R = 0;
      for (int64_t t = qoff[i]; t < qoff[i + 1]; t++) {
        int64_t l = qlab[t];
        for (int64_t u = loff[l]; u < loff[l + 1]; u++) {
          int64_t j = lkeys[u];
          if (st[j] != mark) { st[j] = mark; rl[R].s = s[j]; rl[R].j = j; R++; }
        }
      }
      nrel[i] = R;
      if (R == 0) { first[i] = 0; ap[i] = 0; continue; }
      qsort(rl, (size_t)R, sizeof(scored), cmp_scored);
      /* ct[p]: non-relevant keys ranked before relevant p but not before p-1.
       * "key j ranks before rl[p]" holds for a suffix of p (rl sorted in rank order). */
      memset(ct, 0, sizeof(int64_t) * (size_t)R);
      float worst = rl[R - 1].s;
      for (int64_t j = 0; j < N; j++) {
        float v = s[j];
        if (v < worst || st[j] == mark) continue;
        int64_t lo = 0, hi = R; /* first p with better(j, rl[p]) */
        while (lo < hi) {
          int64_t mid = (lo + hi) / 2;
          if (better(v, j, rl[mid].s, rl[mid].j)) hi = mid; else lo = mid + 1;
        }
        if (lo < R) ct[lo]++;
      }
      double sum = 0;
      int64_t above = 0;
      for (int64_t p = 0; p < R; p++) {
        above += ct[p];
        int64_t rank = 1 + p + above;
        if (p == 0) first[i] = rank;
        sum += (double)(p + 1) / (double)rank;
      }
      ap[i] = sum / (double)R;
    }
  }
  free(buf); free(loff); free(lkeys); free(stamp); free(rel); free(cnt);
  return OE_OK;
}

int oe_confusion(const int64_t *truth, const int64_t *pred, int64_t n, int64_t C, int64_t *out, int64_t *bad) {
  memset(out, 0, sizeof(int64_t) * (size_t)(C * C));
  for (int64_t i = 0; i < n; i++) {
    if (truth[i] < 0 || truth[i] >= C || pred[i] < 0 || pred[i] >= C) { *bad = i; return OE_EINVAL; }
    out[truth[i] * C + pred[i]]++;
  }
  return OE_OK;
}
