/* bind/omp_env.c: oneencoder/omp_env.so, a module that links no OpenMP runtime, loaded by
 * lua/oneencoder/core.lua just before core.so.
 *
 * libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when it is loaded (as a dependency
 * of core.so), so this is the last moment to choose. Neither policy wins everywhere (Intel
 * Xeon AVX-512 VM, 2 vCPU, the small Linear of bench/core_bench.lua against raw sgemm):
 *   - machine busy with other work: libgomp's default (spin up to 300,000 iterations after
 *     every parallel region) gave 0.42-0.54, passive (sleep at once) 0.76-0.83: a spinning
 *     worker holds a CPU that the other thread or another process needs;
 *   - machine quiet: spin 0.79-0.82, passive 0.39-0.45: waking a sleeping thread costs a
 *     futex wake and, on a virtual machine, the wake of a halted vCPU, at every region.
 * So, unless the user set either variable, the choice follows the machine when the module
 * loads: passive when the 1-minute load average is at least half the online CPUs (others
 * already use them), libgomp's default otherwise. A job started on a quiet machine that gets
 * busy later keeps spinning; set OMP_WAIT_POLICY yourself to fix the choice.
 *
 * Returns {wait_policy = "passive" | "default" | the user's, spincount = the user's | nil,
 * source = "environment" | "load average <l> on <n> CPUs" | "openmp already loaded"}. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <lua.h>

/* the 1-minute load average, or -1 when /proc/loadavg cannot be read */
static double load_average(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (!f) return -1;
  if (fscanf(f, "%lf", &l) != 1) l = -1;
  fclose(f);
  return l;
}

int luaopen_oneencoder_omp_env(lua_State *L) {
  char source[96];
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) {
    snprintf(source, sizeof source, "environment");
  } else if (dlsym(RTLD_DEFAULT, "omp_get_num_threads")) {
    snprintf(source, sizeof source, "openmp already loaded"); /* too late: its policy stays */
  } else {
    double load = load_average();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    if (load >= 0.5 * (double)cpus) setenv("OMP_WAIT_POLICY", "passive", 0);
    snprintf(source, sizeof source, "load average %.2f on %ld CPUs", load, cpus);
  }
  const char *policy = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
  lua_createtable(L, 0, 3);
  lua_pushstring(L, policy ? policy : "default");
  lua_setfield(L, -2, "wait_policy");
  if (spin) {
    lua_pushstring(L, spin);
    lua_setfield(L, -2, "spincount");
  }
  lua_pushstring(L, source);
  lua_setfield(L, -2, "source");
  return 1;
}
