/* blas.c: make OpenBLAS use kernels that match the CPU (see blas.h). */
#include "blas.h"
#include "cpu.h"
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char *openblas_get_corename(void);
extern char *openblas_get_config(void);

static oe_blas_info g_info;
static int g_done;

/* ISA level of an OpenBLAS core name: 2 AVX-512, 1 AVX2/FMA, 0 older or unknown */
static int core_level(const char *name) {
  static const char *avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  static const char *avx2[] = {"Haswell", "Zen", "Excavator"};
  for (size_t i = 0; i < sizeof avx512 / sizeof *avx512; i++)
    if (!strcasecmp(name, avx512[i])) return 2;
  for (size_t i = 0; i < sizeof avx2 / sizeof *avx2; i++)
    if (!strcasecmp(name, avx2[i])) return 1;
  return 0;
}

const char *oe_blas_better_core(const char *library_core, int cpu_level, int is_amd) {
  if (core_level(library_core) >= cpu_level) return NULL;
  if (cpu_level >= 2) return "SkylakeX";
  if (cpu_level == 1) return is_amd ? "Zen" : "Haswell";
  return NULL;
}

static void copy(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : "unknown"); }

/* re-initialise OpenBLAS with core `want` (DYNAMIC_ARCH builds export their own
 * (re)initialisation, which reads OPENBLAS_CORETYPE); 0, or -1 with note set */
static int switch_core(const char *want, char *note, size_t n) {
  Dl_info di;
  void *lib = NULL;
  if (dladdr((void *)cblas_sgemm, &di) && di.dli_fname) lib = dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
  void (*quit)(void) = lib ? (void (*)(void))dlsym(lib, "gotoblas_dynamic_quit") : NULL;
  void (*init)(void) = lib ? (void (*)(void))dlsym(lib, "gotoblas_dynamic_init") : NULL;
  if (!quit || !init) {
    snprintf(note, n, "the BLAS cannot switch kernels at run time (not an OpenBLAS DYNAMIC_ARCH build); %s would suit this CPU", want);
    if (lib) dlclose(lib);
    return -1;
  }
  /* an unknown name would make OpenBLAS print and fall back: accept only cores it has */
  char sym[64] = "gotoblas_";
  for (size_t i = 0; want[i] && i < 40; i++) sym[9 + i] = (char)(want[i] >= 'a' && want[i] <= 'z' ? want[i] - 32 : want[i]), sym[10 + i] = 0;
  if (strlen(want) > 40 || !dlsym(lib, sym)) {
    snprintf(note, n, "OpenBLAS has no core named '%.40s'", want);
    dlclose(lib);
    return -1;
  }
  const char *user = getenv("OPENBLAS_CORETYPE");
  char *saved = user ? strdup(user) : NULL;
  setenv("OPENBLAS_CORETYPE", want, 1);
  quit();
  init();
  if (saved) setenv("OPENBLAS_CORETYPE", saved, 1); else unsetenv("OPENBLAS_CORETYPE"); /* children see what they saw */
  free(saved);
  dlclose(lib);
  const char *now = openblas_get_corename();
  snprintf(g_info.core, sizeof g_info.core, "%s", now ? now : "unknown");
  if (strcasecmp(g_info.core, want) != 0) {
    snprintf(note, n, "asked OpenBLAS for %s, it runs %s", want, g_info.core);
    return -1;
  }
  return 0;
}

void oe_blas_init(void) {
  if (g_done) return;
  g_done = 1;
  copy(g_info.config, sizeof g_info.config, openblas_get_config());
  copy(g_info.library_core, sizeof g_info.library_core, openblas_get_corename());
  copy(g_info.core, sizeof g_info.core, g_info.library_core);
  g_info.source = "library";
  if (getenv("OPENBLAS_CORETYPE")) { g_info.source = "OPENBLAS_CORETYPE"; return; }
  const char *want = oe_blas_better_core(g_info.library_core, oe_cpu_simd_level(), oe_cpu_is_amd());
  if (want && switch_core(want, g_info.note, sizeof g_info.note) == 0) g_info.source = "cpuid";
}

int oe_blas_set_core(const char *name, char *err, size_t n) {
  oe_blas_init();
  int level = core_level(name), cpu = oe_cpu_simd_level();
  if (level > cpu) {
    snprintf(err, n, "core '%s' needs %s, which this CPU lacks (it has %s)", name, level == 2 ? "AVX-512" : "AVX2/FMA",
             oe_cpu_simd_name(cpu));
    return -1;
  }
  char note[160] = "";
  if (switch_core(name, note, sizeof note) != 0) { snprintf(err, n, "%s", note); return -1; }
  g_info.source = "oe.set_blas_core";
  g_info.note[0] = 0;
  return 0;
}

void oe_blas_get_info(oe_blas_info *out) {
  oe_blas_init();
  *out = g_info;
}
