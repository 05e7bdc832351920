/* blas.h: which BLAS does the products, with which kernels.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from the CPU model
 * when it loads; a model newer than the library (an AVX-512 Xeon for 0.3.21) gets
 * the generic Prescott (SSE3) kernels, five times slower. oe_blas_init, called when
 * the module opens, compares the library's choice with the CPU's features (cpuid)
 * and, when the choice is below them, re-initialises OpenBLAS with the matching core
 * (SkylakeX for AVX-512, Haswell or Zen for AVX2/FMA). A choice the user forced with
 * OPENBLAS_CORETYPE is always kept. */
#ifndef OE_BLAS_H
#define OE_BLAS_H
#include <stddef.h>

typedef struct {
  char config[160];       /* the library's own description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ..." */
  char core[32];          /* kernels in use, e.g. "SkylakeX" */
  char library_core[32];  /* what the library chose by itself (or the user's OPENBLAS_CORETYPE) */
  const char *source;     /* "library" | "cpuid" | "OPENBLAS_CORETYPE" | "oe.set_blas_core" */
  char note[160];         /* why a better core could not be set, or "" */
} oe_blas_info;

void oe_blas_init(void);
void oe_blas_get_info(oe_blas_info *out);
/* switch the kernels now (a core this CPU can run; names as OPENBLAS_CORETYPE takes them,
 * e.g. "SkylakeX", "Haswell", "Zen", "Prescott"); 0, or -1 with err set. Not while a
 * product runs. */
int oe_blas_set_core(const char *name, char *err, size_t n);

/* the core the CPU's features call for, or NULL when the library's choice matches them
 * (pure: level 2 = AVX-512, 1 = AVX2/FMA, 0 = older; exposed for the specs) */
const char *oe_blas_better_core(const char *library_core, int cpu_level, int is_amd);
#endif
