/* cpu.h: what the CPU can run, read once from cpuid (through GCC's __builtin_cpu_*),
 * and the SIMD dispatch of the project's own kernels.
 *
 * The library is compiled for the portable x86-64 baseline; hot kernels carry
 * OE_SIMD_CLONES, which makes GCC emit an x86-64-v4 (AVX-512), an x86-64-v3 (AVX2,
 * FMA) and a baseline body and pick one at load time (an ifunc resolver reading the
 * same cpuid bits as oe_cpu_simd_level). `make NATIVE=1` compiles everything for the
 * build machine instead (-march=native) and turns the clones off. */
#ifndef OE_CPU_H
#define OE_CPU_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(OE_NATIVE)
#define OE_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OE_SIMD_CLONES
#endif

enum { OE_SIMD_BASELINE = 0, OE_SIMD_AVX2 = 1, OE_SIMD_AVX512 = 2 };

/* the level the clones dispatch to on this CPU: AVX512 needs F, BW, CD, DQ and VL
 * (x86-64-v4), AVX2 needs AVX2, FMA, BMI1/2, F16C, MOVBE (x86-64-v3) */
int oe_cpu_simd_level(void);
const char *oe_cpu_simd_name(int level); /* "avx512" | "avx2" | "baseline" */
/* "Intel(R) Xeon(R) Processor", from the cpuid brand string ("unknown" elsewhere) */
const char *oe_cpu_model(void);
int oe_cpu_is_amd(void);
#endif
