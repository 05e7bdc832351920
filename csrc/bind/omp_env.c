/* bind/omp_env.c: oneencoder/omp_env.so, a module that links no OpenMP runtime, loaded by
 * lua/oneencoder/core.lua just before core.so.
 *
 * libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, when it is loaded (as a dependency
 * of core.so), so this is the last moment to choose. Unless the user set either variable,
 * idle OpenMP threads are told to sleep (OMP_WAIT_POLICY=passive) instead of spinning for up
 * to 300,000 iterations after every parallel region (libgomp's default). On the 2-vCPU Intel
 * machine of the README, with other work running, the spin made the small Linear of
 * bench/core_bench.lua 0.48 of raw sgemm against 0.81 when passive, and the transformer layer
 * 1.84 s against 1.65 s: a spinning worker holds a CPU the other thread or another process
 * needs. GOMP_SPINCOUNT=300000 in the environment restores libgomp's default.
 *
 * Returns {wait_policy = ..., spincount = ... | nil, source = "environment" | "oneencoder" |
 * "openmp already loaded"}. */
#include <dlfcn.h>
#include <stdlib.h>
#include <lua.h>

int luaopen_oneencoder_omp_env(lua_State *L) {
  const char *source;
  if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) {
    source = "environment";
  } else if (dlsym(RTLD_DEFAULT, "omp_get_num_threads")) {
    source = "openmp already loaded"; /* too late: its policy stays */
  } else {
    setenv("OMP_WAIT_POLICY", "passive", 0);
    source = "oneencoder";
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
