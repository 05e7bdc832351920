#include "rng.h"
#include <math.h>

static oe_rng g_rng = {UINT64_C(0x5eed), 0};

oe_rng *oe_rng_global(void) { return &g_rng; }

void oe_rng_seed(oe_rng *r, uint64_t seed) {
  r->seed = oe_rng_mix(seed ^ UINT64_C(0x6a09e667f3bcc909));
  r->counter = 0;
}

uint64_t oe_rng_reserve(oe_rng *r, uint64_t n) {
  uint64_t base = r->counter;
  r->counter += n;
  return base;
}

void oe_rng_fill_uniform(oe_rng *r, float *out, int64_t n, float lo, float hi) {
  uint64_t base = oe_rng_reserve(r, (uint64_t)n);
  float span = hi - lo;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) out[i] = lo + span * oe_rng_uniform(oe_rng_at(r, base, (uint64_t)i));
}

/* Box-Muller on pairs of draws: element i uses draws 2i and 2i+1. */
void oe_rng_fill_normal(oe_rng *r, float *out, int64_t n, float mean, float std) {
  uint64_t base = oe_rng_reserve(r, 2 * (uint64_t)n);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) {
    double u1 = oe_rng_uniform_open(oe_rng_at(r, base, 2 * (uint64_t)i));
    double u2 = oe_rng_uniform_open(oe_rng_at(r, base, 2 * (uint64_t)i + 1));
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    out[i] = (float)(mean + std * z);
  }
}
