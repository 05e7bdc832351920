/* bind/bench.c: a monotonic clock, isatty, peak memory and raw-sgemm timing. */
#include "bind.h"
#include "../ops/ops.h"
#include <cblas.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int b_now(lua_State *L) { lua_pushnumber(L, now_s()); return 1; }

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

extern void openblas_set_num_threads(int);

/* sgemm_seconds(M, N, K, transA, transB, reps) -> median seconds of one raw
 * cblas_sgemm, with OpenBLAS's own threads (as many as oe.set_num_threads) */
static int b_sgemm_seconds(lua_State *L) {
  int64_t M = luaL_checkinteger(L, 1), N = luaL_checkinteger(L, 2), K = luaL_checkinteger(L, 3);
  int ta = lua_toboolean(L, 4), tb = lua_toboolean(L, 5);
  int reps = (int)luaL_optinteger(L, 6, 5);
  if (M < 1 || N < 1 || K < 1 || reps < 1 || reps > 1000 || M * K > (1LL << 30) || K * N > (1LL << 30) || M * N > (1LL << 30))
    return oe_lua_fail(L, "sgemm_seconds", "bad sizes");
  float *A = aligned_alloc(64, (size_t)(M * K) * 4 + 64), *B = aligned_alloc(64, (size_t)(K * N) * 4 + 64),
        *C = aligned_alloc(64, (size_t)(M * N) * 4 + 64);
  double *t = malloc(sizeof(double) * (size_t)reps);
  if (!A || !B || !C || !t) { free(A); free(B); free(C); free(t); return oe_lua_fail(L, "sgemm_seconds", "out of memory"); }
  for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i % 7) - 3) * 0.1f;
  for (int64_t i = 0; i < K * N; i++) B[i] = (float)((i % 5) - 2) * 0.1f;
  openblas_set_num_threads(oe_get_num_threads());
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N,
              (blasint)K, 1.0f, A, (blasint)(ta ? M : K), B, (blasint)(tb ? K : N), 0.0f, C, (blasint)N); /* warm-up */
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N,
                (blasint)K, 1.0f, A, (blasint)(ta ? M : K), B, (blasint)(tb ? K : N), 0.0f, C, (blasint)N);
    t[r] = now_s() - t0;
  }
  openblas_set_num_threads(1);
  qsort(t, (size_t)reps, sizeof(double), cmp_d);
  lua_pushnumber(L, t[reps / 2]);
  free(A); free(B); free(C); free(t);
  return 1;
}

/* peak_rss_mb() from /proc/self/status VmHWM */
static int b_peak_rss(lua_State *L) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
  if (f) fclose(f);
  lua_pushnumber(L, kb / 1024.0);
  return 1;
}

static int b_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_optinteger(L, 1, 1)));
  return 1;
}

static int b_memory(lua_State *L) {
  oe_memstats m;
  oe_memory_stats(&m);
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, (lua_Integer)m.live_bytes); lua_setfield(L, -2, "live_bytes");
  lua_pushinteger(L, (lua_Integer)m.peak_bytes); lua_setfield(L, -2, "peak_bytes");
  lua_pushinteger(L, (lua_Integer)m.cache_bytes); lua_setfield(L, -2, "cache_bytes");
  return 1;
}
static int b_empty_cache(lua_State *L) { oe_cache_clear(); return 0; }

static const luaL_Reg bench_fns[] = {{"isatty", b_isatty}, {"memory", b_memory}, {"empty_cache", b_empty_cache},{"now", b_now}, {"sgemm_seconds", b_sgemm_seconds}, {"peak_rss_mb", b_peak_rss}, {NULL, NULL}};

void oe_bind_bench(lua_State *L) { luaL_setfuncs(L, bench_fns, 0); }
