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
 * loads: passive when other tasks are running on at least half the online CPUs, libgomp's
 * default otherwise. "Running" is the kernel's count of runnable tasks (/proc/loadavg's
 * fourth field, ours excluded), averaged over 5 looks 2 ms apart: the 1-minute load average
 * would still count a job that just ended (back-to-back benchmarks all looked busy). A job
 * started on a quiet machine that gets busy later keeps spinning; set OMP_WAIT_POLICY
 * yourself to fix the choice.
 *
 * Returns {wait_policy = "passive" | "default" | the user's, spincount = the user's | nil,
 * source = "environment" | "<r> other tasks running on <n> CPUs" | "openmp already
 * loaded"}. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <lua.h>

/* runnable tasks other than this one, averaged over a few looks; -1 when unknown */
static double others_running(void) {
  double sum = 0;
  int looks = 0;
  for (int i = 0; i < 5; i++) {
    if (i) nanosleep(&(struct timespec){0, 2000000}, NULL);
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    int running = 0, total = 0;
    int ok = fscanf(f, "%*f %*f %*f %d/%d", &running, &total) == 2;
    fclose(f);
    if (!ok) return -1;
    sum += running > 1 ? running - 1 : 0; /* this thread is one of them */
    looks++;
  }
  return sum / looks;
}

int luaopen_oneencoder_omp_env(lua_State *L) {
  char source[96];
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) {
    snprintf(source, sizeof source, "environment");
  } else if (dlsym(RTLD_DEFAULT, "omp_get_num_threads")) {
    snprintf(source, sizeof source, "openmp already loaded"); /* too late: its policy stays */
  } else {
    double others = others_running();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    if (others >= 0.5 * (double)cpus) setenv("OMP_WAIT_POLICY", "passive", 0);
    snprintf(source, sizeof source, "%.1f other tasks running on %ld CPUs", others, cpus);
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
