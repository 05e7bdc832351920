/* cpu.c: CPU features and model name from cpuid. */
#include "cpu.h"
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

int oe_cpu_simd_level(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return OE_SIMD_AVX512;
  if (__builtin_cpu_supports("x86-64-v3")) return OE_SIMD_AVX2;
#endif
  return OE_SIMD_BASELINE;
}

const char *oe_cpu_simd_name(int level) {
  return level == OE_SIMD_AVX512 ? "avx512" : level == OE_SIMD_AVX2 ? "avx2" : "baseline";
}

int oe_cpu_is_amd(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return 0;
#endif
}

const char *oe_cpu_model(void) {
  static char brand[49];
#if defined(__x86_64__) || defined(__i386__)
  if (brand[0]) return brand;
  unsigned a, b, c, d;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
    unsigned r[12];
    for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(brand, r, 48);
    brand[48] = 0;
    /* trim the padding some CPUs put around the name */
    char *s = brand;
    while (*s == ' ') s++;
    memmove(brand, s, strlen(s) + 1);
    for (size_t n = strlen(brand); n > 0 && brand[n - 1] == ' '; n--) brand[n - 1] = 0;
    if (brand[0]) return brand;
  }
#endif
  strcpy(brand, "unknown");
  return brand;
}
