/* bind/info.c: what the library runs on (oe.info), and forcing the BLAS kernels. */
#include "bind.h"
#include "../core/blas.h"
#include "../core/cpu.h"
#include <omp.h>

static void set_str(lua_State *L, const char *k, const char *v) { lua_pushstring(L, v); lua_setfield(L, -2, k); }

/* info() -> {blas, blas_core, blas_core_source, blas_library_core, blas_note, cpu, simd, threads} */
static int i_info(lua_State *L) {
  oe_blas_info b;
  oe_blas_get_info(&b);
  lua_createtable(L, 0, 10);
  set_str(L, "blas", b.config);
  set_str(L, "blas_core", b.core);
  set_str(L, "blas_core_source", b.source);
  set_str(L, "blas_library_core", b.library_core);
  if (b.note[0]) set_str(L, "blas_note", b.note);
  set_str(L, "cpu", oe_cpu_model());
  set_str(L, "simd", oe_cpu_simd_name(oe_cpu_simd_level()));
#ifdef OE_NATIVE
  set_str(L, "build", "native");
#else
  set_str(L, "build", "portable");
#endif
  lua_pushinteger(L, oe_get_num_threads());
  lua_setfield(L, -2, "threads");
  return 1;
}

static int i_set_blas_core(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  char err[200];
  if (oe_blas_set_core(name, err, sizeof err) != 0) return oe_lua_fail(L, "set_blas_core", "%s", err);
  lua_pushboolean(L, 1);
  return 1;
}

/* blas_better_core(library_core, cpu_level 0|1|2, is_amd) -> name | nil (the pure choice, for specs) */
static int i_better_core(lua_State *L) {
  const char *c = oe_blas_better_core(luaL_checkstring(L, 1), (int)luaL_checkinteger(L, 2), lua_toboolean(L, 3));
  if (c) lua_pushstring(L, c); else lua_pushnil(L);
  return 1;
}

static const luaL_Reg info_fns[] = {{"info", i_info}, {"set_blas_core", i_set_blas_core}, {"blas_better_core", i_better_core}, {NULL, NULL}};

void oe_bind_info(lua_State *L) { luaL_setfuncs(L, info_fns, 0); }
