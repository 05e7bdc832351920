/* attention.c: multi-head scaled dot-product attention, forward and backward.
 * Heads are read in place from packed rows (PyTorch in_proj layout), so no
 * reshape/permute copies are made. Work is split over (batch, head) pairs;
 * inside the parallel loop oe_gemm runs each product on the calling thread.
 * Scratch memory is taken (or allocated) before any work starts, so a
 * failed allocation is an error with nothing computed, never a skipped head. */
#include "ops.h"
#include "../core/util.h"
#include "../core/cpu.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int workers(void) {
  int n = omp_get_max_threads();
  return n < 1 ? 1 : n;
}

size_t oe_attention_scratch_floats(const oe_attn_args *a, int backward) {
  size_t ls = (size_t)a->L * (size_t)a->S, per = backward ? 2 * ls : a->p > 0 ? ls : 0;
  return per * (size_t)workers();
}

/* a->scratch, or a fresh block of n floats in *owned; NULL when n is 0 */
static int take_scratch(const oe_attn_args *a, size_t n, float **buf, float **owned, oe_err *e) {
  *owned = NULL;
  *buf = a->scratch;
  if (*buf || n == 0) return OE_OK;
  *owned = *buf = malloc(sizeof(float) * n);
  if (!*buf)
    return oe_fail(e, OE_ENOMEM, "out of memory for the scratch of %d workers, (%lld, %lld) floats each%s", workers(),
                   (long long)a->L, (long long)a->S, n > (size_t)workers() * (size_t)a->L * (size_t)a->S ? " twice" : "");
  return OE_OK;
}

OE_SIMD_CLONES
int oe_attention_forward(oe_attn_args *a, oe_rng *r, oe_err *e) {
  const int64_t B = a->B, L = a->L, S = a->S, H = a->H, hd = a->hd, D = H * hd;
  const float scale = 1.0f / sqrtf((float)hd);
  const float keep_scale = a->p > 0 ? 1.0f / (1.0f - a->p) : 1.0f;
  const int nth = workers();
  float *scratch, *owned;
  int rc = take_scratch(a, oe_attention_scratch_floats(a, 0), &scratch, &owned, e);
  if (rc != OE_OK) return rc;
  uint64_t base = a->p > 0 ? oe_rng_reserve(r, (uint64_t)(B * H * L * S)) : 0;
  const uint64_t thresh = oe_rng_keep_threshold(a->p);
#pragma omp parallel num_threads(nth)
  {
    float *tmp = a->p > 0 ? scratch + (size_t)omp_get_thread_num() * (size_t)(L * S) : NULL;
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
      int64_t b = bh / H, h = bh % H;
      const float *q = a->q + b * L * a->ldq + h * hd;
      const float *k = a->k + b * S * a->ldk + h * hd;
      const float *v = a->v + b * S * a->ldv + h * hd;
      float *P = a->probs + bh * L * S;
      oe_gemm(0, 1, L, S, hd, scale, q, a->ldq, k, a->ldk, 0.0f, P, S);
      if (a->key_pad) {
        const uint8_t *kp = a->key_pad + b * S;
        for (int64_t i = 0; i < L; i++)
          for (int64_t j = 0; j < S; j++)
            if (kp[j]) P[i * S + j] = -INFINITY;
      }
      oe_softmax_f32(P, P, L, S, 0);
      const float *Pd = P;
      if (tmp) {
        uint8_t *m = a->mask + bh * L * S;
        for (int64_t i = 0; i < L * S; i++) {
          uint8_t keep = oe_rng_keep(oe_rng_at(r, base, (uint64_t)(bh * L * S + i)), thresh);
          m[i] = keep;
          tmp[i] = keep ? P[i] * keep_scale : 0.0f;
        }
        Pd = tmp;
      }
      oe_gemm(0, 0, L, hd, S, 1.0f, Pd, S, v, a->ldv, 0.0f, a->out + b * L * D + h * hd, D);
    }
  }
  free(owned);
  return OE_OK;
}

OE_SIMD_CLONES
int oe_attention_backward(oe_attn_args *a, oe_err *e) {
  const int64_t B = a->B, L = a->L, S = a->S, H = a->H, hd = a->hd, D = H * hd;
  const float scale = 1.0f / sqrtf((float)hd);
  const float keep_scale = a->p > 0 ? 1.0f / (1.0f - a->p) : 1.0f;
  const int nth = workers();
  float *scratch, *owned;
  int rc = take_scratch(a, oe_attention_scratch_floats(a, 1), &scratch, &owned, e);
  if (rc != OE_OK) return rc;
#pragma omp parallel num_threads(nth)
  {
    float *Pd = scratch + (size_t)omp_get_thread_num() * 2 * (size_t)(L * S);
    float *dP = Pd + (size_t)(L * S);
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; bh++) {
      int64_t b = bh / H, h = bh % H;
      const float *q = a->q + b * L * a->ldq + h * hd;
      const float *k = a->k + b * S * a->ldk + h * hd;
      const float *v = a->v + b * S * a->ldv + h * hd;
      const float *go = a->gout + b * L * D + h * hd;
      const float *P = a->probs + bh * L * S;
      const uint8_t *m = a->mask ? a->mask + bh * L * S : NULL;
      if (m) for (int64_t i = 0; i < L * S; i++) Pd[i] = m[i] ? P[i] * keep_scale : 0.0f;
      else memcpy(Pd, P, sizeof(float) * (size_t)(L * S));
      /* dV (S, hd) = Pd^T dO */
      oe_gemm(1, 0, S, hd, L, 1.0f, Pd, S, go, D, 0.0f, a->gv + b * S * a->ldv + h * hd, a->ldv);
      /* dPd (L, S) = dO V^T */
      oe_gemm(0, 1, L, S, hd, 1.0f, go, D, v, a->ldv, 0.0f, dP, S);
      for (int64_t i = 0; i < L; i++) {
        float *row = dP + i * S;
        const float *prow = P + i * S;
        if (m) for (int64_t j = 0; j < S; j++) row[j] = m[i * S + j] ? row[j] * keep_scale : 0.0f;
        double s = 0;
        for (int64_t j = 0; j < S; j++) s += (double)row[j] * prow[j];
        for (int64_t j = 0; j < S; j++) row[j] = prow[j] * (row[j] - (float)s);
      }
      /* dQ (L, hd) = dS K * scale ; dK (S, hd) = dS^T Q * scale */
      oe_gemm(0, 0, L, hd, S, scale, dP, S, k, a->ldk, 0.0f, a->gq + b * L * a->ldq + h * hd, a->ldq);
      oe_gemm(1, 0, S, hd, L, scale, dP, S, q, a->ldq, 0.0f, a->gk + b * S * a->ldk + h * hd, a->ldk);
    }
  }
  free(owned);
  return OE_OK;
}
