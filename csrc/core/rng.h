/* rng.h: counter-based generator (SplitMix64 stream). State is (seed,
 * counter): draw i of a call is mix(seed + (counter + i + 1) * gamma), so
 * bulk draws can run in parallel and give the same numbers for any thread
 * count. The state is two integers, saved in checkpoints for resume. */
#ifndef OE_RNG_H
#define OE_RNG_H
#include <stdint.h>

typedef struct oe_rng { uint64_t seed, counter; } oe_rng;

oe_rng *oe_rng_global(void);
void oe_rng_seed(oe_rng *r, uint64_t seed);
/* Reserve n draws; returns the base counter to pass to oe_rng_at. */
uint64_t oe_rng_reserve(oe_rng *r, uint64_t n);

static inline uint64_t oe_rng_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}
static inline uint64_t oe_rng_at(const oe_rng *r, uint64_t base, uint64_t i) {
  return oe_rng_mix(r->seed + (base + i + 1) * UINT64_C(0x9e3779b97f4a7c15));
}
/* uniform in [0, 1) with 24 random bits (exactly representable as float) */
static inline float oe_rng_uniform(uint64_t bits) { return (float)(bits >> 40) * (1.0f / 16777216.0f); }
/* uniform in (0, 1] as double, for Box-Muller */
static inline double oe_rng_uniform_open(uint64_t bits) { return ((double)(bits >> 11) + 1.0) * (1.0 / 9007199254740992.0); }

/* Dropout: draw `bits` keeps its unit when its 24-bit uniform u satisfies u / 2^24 >= p,
 * tested in integers as u >= oe_rng_keep_threshold(p) = ceil(p 2^24). */
static inline uint64_t oe_rng_keep_threshold(float p) { return (uint64_t)__builtin_ceil((double)p * 16777216.0); }
static inline int oe_rng_keep(uint64_t bits, uint64_t threshold) { return (bits >> 40) >= threshold; }

void oe_rng_fill_uniform(oe_rng *r, float *out, int64_t n, float lo, float hi);
void oe_rng_fill_normal(oe_rng *r, float *out, int64_t n, float mean, float std);
#endif
