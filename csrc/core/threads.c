/* One thread setting for the whole library. OpenBLAS itself always runs
 * single-threaded (oe_gemm splits large products over the OpenMP threads), so
 * there is one pool of n threads and never two pools competing for the cores. */
#include "tensor.h"
#include <omp.h>

extern void openblas_set_num_threads(int);

static int g_threads = 0;

void oe_set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads = n;
  openblas_set_num_threads(1);
  omp_set_num_threads(n);
}

void oe_threads_init(void) {
  openblas_set_num_threads(1);
}

int oe_get_num_threads(void) {
  if (g_threads == 0) g_threads = omp_get_max_threads();
  return g_threads;
}
