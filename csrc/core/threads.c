/* One thread setting for OpenBLAS and the OpenMP kernels, so the two never
 * oversubscribe the cores: kernels run one after another, each using n. */
#include "tensor.h"
#include <omp.h>

extern void openblas_set_num_threads(int);

static int g_threads = 0;

void oe_set_num_threads(int n) {
  if (n < 1) n = 1;
  g_threads = n;
  openblas_set_num_threads(n);
  omp_set_num_threads(n);
}

int oe_get_num_threads(void) {
  if (g_threads == 0) g_threads = omp_get_max_threads();
  return g_threads;
}
