/* bind/generator.c: random generators as userdata (oe.Generator), each its own
 * counter-based stream (csrc/core/rng.h), so a trainer, a model's initialisation or a
 * dropout layer can draw without touching the global stream or anyone's seeding.
 *   core.generator(seed)    -> gen seeded like core.manual_seed(seed): its draws equal the
 *                              global stream's after manual_seed(seed), draw for draw
 *   core.generator()        -> gen whose seed is one draw taken from the global stream
 *   core.default_generator() -> the global stream itself, as a generator
 *   gen:state() -> {seed, counter} ; gen:set_state({seed, counter}) or (seed, counter)
 *   gen:manual_seed(s) ; gen:clone() -> an independent copy at the same position
 *   gen:randn(shape, mean = 0, std = 1) ; gen:rand(shape, lo = 0, hi = 1) -> float32
 *   gen:randint(lo, hi, shape, dtype = "int64") -> integers in [lo, hi)
 *   gen:permutation(n) -> Lua list of 1..n shuffled (Fisher-Yates on n draws)
 * Other bindings take an optional generator argument through oe_lua_rng_opt. */
#include "bind.h"
#include "../core/rng.h"
#include <string.h>

#define GEN_MT "oe.Generator"

typedef struct {
  oe_rng own;
  oe_rng *r; /* &own, or the global stream */
} lua_gen;

static lua_gen *check_gen(lua_State *L, int idx, const char *fn) {
  lua_gen *g = luaL_testudata(L, idx, GEN_MT);
  if (!g) oe_lua_fail(L, fn, "self must be an oe.Generator, got %s", luaL_typename(L, idx));
  return g;
}

oe_rng *oe_lua_rng_opt(lua_State *L, int idx, const char *fn) {
  if (lua_isnoneornil(L, idx)) return oe_rng_global();
  lua_gen *g = luaL_testudata(L, idx, GEN_MT);
  if (!g) oe_lua_fail(L, fn, "argument 'generator' must be an oe.Generator or nil, got %s", luaL_typename(L, idx));
  return g->r;
}

static lua_gen *push_gen(lua_State *L) {
  lua_gen *g = lua_newuserdatauv(L, sizeof *g, 0);
  memset(g, 0, sizeof *g);
  g->r = &g->own;
  luaL_setmetatable(L, GEN_MT);
  return g;
}

static int gen_new(lua_State *L) {
  uint64_t seed;
  if (lua_isnoneornil(L, 1)) {
    oe_rng *glob = oe_rng_global();
    seed = oe_rng_at(glob, oe_rng_reserve(glob, 1), 0);
  } else {
    int ok;
    lua_Integer s = lua_tointegerx(L, 1, &ok);
    if (!ok) return oe_lua_fail(L, "Generator", "seed must be an integer or nil, got %s", luaL_typename(L, 1));
    seed = (uint64_t)s;
  }
  lua_gen *g = push_gen(L);
  oe_rng_seed(g->r, seed);
  return 1;
}

static int gen_default(lua_State *L) {
  lua_gen *g = push_gen(L);
  g->r = oe_rng_global();
  return 1;
}

static int gen_state(lua_State *L) {
  lua_gen *g = check_gen(L, 1, "Generator:state");
  lua_createtable(L, 2, 0);
  lua_pushinteger(L, (lua_Integer)g->r->seed);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, (lua_Integer)g->r->counter);
  lua_rawseti(L, -2, 2);
  return 1;
}

static lua_Integer state_int(lua_State *L, int idx, const char *what) {
  int ok;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok) oe_lua_fail(L, "Generator:set_state", "%s must be an integer, got %s", what, luaL_typename(L, idx));
  return v;
}

static int gen_set_state(lua_State *L) {
  lua_gen *g = check_gen(L, 1, "Generator:set_state");
  lua_Integer s, c;
  if (lua_istable(L, 2)) {
    lua_rawgeti(L, 2, 1);
    lua_rawgeti(L, 2, 2);
    s = state_int(L, -2, "state[1] (seed)");
    c = state_int(L, -1, "state[2] (counter)");
    lua_pop(L, 2);
  } else {
    s = state_int(L, 2, "seed");
    c = state_int(L, 3, "counter");
  }
  g->r->seed = (uint64_t)s;
  g->r->counter = (uint64_t)c;
  lua_settop(L, 1);
  return 1;
}

static int gen_manual_seed(lua_State *L) {
  lua_gen *g = check_gen(L, 1, "Generator:manual_seed");
  oe_rng_seed(g->r, (uint64_t)state_int(L, 2, "seed"));
  lua_settop(L, 1);
  return 1;
}

static int gen_clone(lua_State *L) {
  lua_gen *g = check_gen(L, 1, "Generator:clone");
  lua_gen *c = push_gen(L);
  c->own = *g->r;
  return 1;
}

static int gen_randn(lua_State *L) {
  lua_gen *g = check_gen(L, 1, "Generator:randn");
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 2, shape, "Generator:randn", "shape");
  float mean = (float)luaL_optnumber(L, 3, 0), std = (float)luaL_optnumber(L, 4, 1);
  oe_tensor *t = oe_lua_push_uninit(L, "Generator:randn", OE_F32, nd, shape);
  oe_rng_fill_normal(g->r, oe_f32(t), oe_numel(t), mean, std);
  return 1;
}

static int gen_rand(lua_State *L) {
  lua_gen *g = check_gen(L, 1, "Generator:rand");
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 2, shape, "Generator:rand", "shape");
  float lo = (float)luaL_optnumber(L, 3, 0), hi = (float)luaL_optnumber(L, 4, 1);
  oe_tensor *t = oe_lua_push_uninit(L, "Generator:rand", OE_F32, nd, shape);
  oe_rng_fill_uniform(g->r, oe_f32(t), oe_numel(t), lo, hi);
  return 1;
}

/* the draws of core.randint: value i = lo + draw_i mod (hi - lo) */
static int gen_randint(lua_State *L) {
  const char *fn = "Generator:randint";
  lua_gen *g = check_gen(L, 1, fn);
  lua_Integer lo = luaL_checkinteger(L, 2), hi = luaL_checkinteger(L, 3);
  if (hi <= lo) return oe_lua_fail(L, fn, "empty range [%lld, %lld)", (long long)lo, (long long)hi);
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 4, shape, fn, "shape");
  oe_dtype dt = oe_lua_dtype_opt(L, 5, OE_I64, fn);
  oe_tensor *t = oe_lua_push_uninit(L, fn, dt, nd, shape);
  int64_t n = oe_numel(t);
  uint64_t span = (uint64_t)hi - (uint64_t)lo, base = oe_rng_reserve(g->r, (uint64_t)n);
  void *d = oe_data(t);
  for (int64_t i = 0; i < n; i++) {
    int64_t v = (int64_t)((uint64_t)lo + oe_rng_at(g->r, base, (uint64_t)i) % span);
    switch (dt) {
      case OE_F32: ((float *)d)[i] = (float)v; break;
      case OE_I32: ((int32_t *)d)[i] = (int32_t)v; break;
      case OE_I64: ((int64_t *)d)[i] = v; break;
      case OE_U8: ((uint8_t *)d)[i] = (uint8_t)v; break;
    }
  }
  return 1;
}

/* permutation(n): the shuffle of data.permutation (n draws r_i in [0, 2^30); for i = n..2
 * swap p[i] with p[r_i mod i + 1]) */
static int gen_permutation(lua_State *L) {
  const char *fn = "Generator:permutation";
  lua_gen *g = check_gen(L, 1, fn);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0 || n > (lua_Integer)1 << 31) return oe_lua_fail(L, fn, "n must be in 0..2^31, got %lld", (long long)n);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_pushinteger(L, i);
    lua_rawseti(L, -2, i);
  }
  if (n < 2) return 1;
  uint64_t base = oe_rng_reserve(g->r, (uint64_t)n);
  for (lua_Integer i = n; i >= 2; i--) {
    uint64_t r = oe_rng_at(g->r, base, (uint64_t)(i - 1)) % (UINT64_C(1) << 30);
    lua_Integer j = (lua_Integer)(r % (uint64_t)i) + 1;
    lua_rawgeti(L, -1, i);
    lua_rawgeti(L, -2, j);
    lua_rawseti(L, -3, i);
    lua_rawseti(L, -2, j);
  }
  return 1;
}

static int gen_tostring(lua_State *L) {
  lua_gen *g = check_gen(L, 1, "Generator:__tostring");
  lua_pushfstring(L, "oe.Generator(%s, seed state %I, counter %I)", g->r == &g->own ? "own stream" : "global stream",
                  (lua_Integer)g->r->seed, (lua_Integer)g->r->counter);
  return 1;
}

static int gen_is(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, GEN_MT) != NULL);
  return 1;
}

void oe_bind_generator(lua_State *L) {
  if (luaL_newmetatable(L, GEN_MT)) {
    lua_pushcfunction(L, gen_tostring);
    lua_setfield(L, -2, "__tostring");
    static const luaL_Reg methods[] = {
      {"state", gen_state}, {"set_state", gen_set_state}, {"manual_seed", gen_manual_seed}, {"clone", gen_clone},
      {"randn", gen_randn}, {"rand", gen_rand}, {"randint", gen_randint}, {"permutation", gen_permutation},
      {NULL, NULL},
    };
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    {"generator", gen_new}, {"default_generator", gen_default}, {"is_generator", gen_is}, {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
}
