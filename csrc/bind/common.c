#include "bind.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int oe_lua_fail(lua_State *L, const char *fn, const char *fmt, ...) {
  char buf[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return luaL_error(L, "%s: %s", fn, buf);
}

oe_tensor *oe_lua_push_empty(lua_State *L) {
  oe_tensor *t = lua_newuserdatauv(L, sizeof(oe_tensor), 1);
  memset(t, 0, sizeof *t);
  luaL_setmetatable(L, OE_TENSOR_MT);
  return t;
}

/* The Lua GC does not see the bytes behind a tensor, so garbage tensors could
 * pile up between its cycles. A full cycle runs first when more than
 * max(8 MB, live tensor bytes / 8, 32 x the Lua heap) has been allocated since
 * the last one: tensor memory stays bounded, and a script with a large Lua heap
 * (datasets held as tables) does not pay for a full traversal every few MB. */
static void gc_pressure(lua_State *L) {
  static size_t threshold = (size_t)8 << 20;
  oe_memstats m;
  oe_memory_stats(&m);
  if (m.since_collect < threshold) return;
  lua_gc(L, LUA_GCCOLLECT);
  oe_memory_collected();
  oe_memory_stats(&m);
  size_t heap = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024;
  threshold = (size_t)8 << 20;
  if (m.live_bytes / 8 > threshold) threshold = m.live_bytes / 8;
  if (32 * heap > threshold) threshold = 32 * heap;
}

static oe_tensor *push_alloc(lua_State *L, const char *fn, oe_dtype dt, int ndim, const int64_t *shape, int zero) {
  gc_pressure(L);
  oe_tensor *t = oe_lua_push_empty(L);
  oe_err e;
  int rc = zero ? oe_tensor_alloc(t, dt, ndim, shape, &e) : oe_tensor_alloc_uninit(t, dt, ndim, shape, &e);
  if (rc == OE_ENOMEM) { /* collect garbage and try once more */
    lua_gc(L, LUA_GCCOLLECT);
    oe_cache_clear();
    rc = zero ? oe_tensor_alloc(t, dt, ndim, shape, &e) : oe_tensor_alloc_uninit(t, dt, ndim, shape, &e);
  }
  if (rc != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
  return t;
}

oe_tensor *oe_lua_push_new(lua_State *L, const char *fn, oe_dtype dt, int ndim, const int64_t *shape) {
  return push_alloc(L, fn, dt, ndim, shape, 1);
}
oe_tensor *oe_lua_push_uninit(lua_State *L, const char *fn, oe_dtype dt, int ndim, const int64_t *shape) {
  return push_alloc(L, fn, dt, ndim, shape, 0);
}

oe_tensor *oe_lua_push_view(lua_State *L, const oe_tensor *src, int ndim, const int64_t *shape, size_t offset) {
  oe_tensor *t = oe_lua_push_empty(L);
  oe_tensor_view(t, src);
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  t->offset = offset;
  return t;
}

oe_tensor *oe_lua_check(lua_State *L, int idx, const char *fn, const char *arg) {
  oe_tensor *t = luaL_testudata(L, idx, OE_TENSOR_MT);
  if (!t) oe_lua_fail(L, fn, "argument '%s' must be a tensor, got %s", arg, luaL_typename(L, idx));
  if (!t->storage) oe_lua_fail(L, fn, "argument '%s' is a released tensor", arg);
  return t;
}

oe_tensor *oe_lua_opt(lua_State *L, int idx, const char *fn, const char *arg) {
  if (lua_isnoneornil(L, idx)) return NULL;
  return oe_lua_check(L, idx, fn, arg);
}

void oe_lua_check_dtype(lua_State *L, const oe_tensor *t, oe_dtype dt, const char *fn, const char *arg) {
  if (t->dtype != dt)
    oe_lua_fail(L, fn, "argument '%s' must be %s, got %s", arg, oe_dtype_name(dt), oe_dtype_name(t->dtype));
}

int oe_lua_shape(lua_State *L, int idx, int64_t *shape, const char *fn, const char *arg) {
  if (lua_type(L, idx) != LUA_TTABLE) oe_lua_fail(L, fn, "argument '%s' must be a shape table, got %s", arg, luaL_typename(L, idx));
  int n = (int)luaL_len(L, idx);
  if (n > OE_MAX_DIMS) oe_lua_fail(L, fn, "argument '%s' has %d dimensions, at most %d are supported", arg, n, OE_MAX_DIMS);
  for (int i = 0; i < n; i++) {
    lua_geti(L, idx, i + 1);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok) oe_lua_fail(L, fn, "argument '%s': size %d is not an integer", arg, i + 1);
    shape[i] = v;
  }
  return n;
}

int oe_lua_dim(lua_State *L, int idx, int ndim, const char *fn) {
  lua_Integer d = luaL_checkinteger(L, idx);
  lua_Integer d0 = d < 0 ? d + ndim : d - 1;
  if (d == 0 || d0 < 0 || d0 >= ndim)
    oe_lua_fail(L, fn, "dimension %d out of range for a %d-dimensional tensor (dims are 1..%d or -1..-%d)", (int)d, ndim,
                ndim, ndim);
  return (int)d0;
}

oe_dtype oe_lua_dtype_opt(lua_State *L, int idx, oe_dtype def, const char *fn) {
  if (lua_isnoneornil(L, idx)) return def;
  const char *name = luaL_checkstring(L, idx);
  oe_dtype dt;
  if (!oe_dtype_from_name(name, &dt)) oe_lua_fail(L, fn, "unknown dtype '%s' (float32, int32, int64, uint8)", name);
  return dt;
}

const char *oe_lua_shape_str(const oe_tensor *t, char *buf, size_t n) { return oe_shape_str(t->ndim, t->shape, buf, n); }

/* ---- options tables ---- */

void oe_lua_opt_table(lua_State *L, int idx, const char *fn) {
  if (!lua_isnoneornil(L, idx) && !lua_istable(L, idx)) oe_lua_fail(L, fn, "options must be a table, got %s", luaL_typename(L, idx));
}

int oe_lua_opt_field(lua_State *L, int idx, const char *k) {
  if (lua_isnoneornil(L, idx)) { lua_pushnil(L); return LUA_TNIL; }
  return lua_getfield(L, idx, k);
}

const char *oe_lua_opt_str(lua_State *L, int idx, const char *k, const char *fn) {
  int ty = oe_lua_opt_field(L, idx, k);
  const char *s = NULL;
  if (ty == LUA_TSTRING) s = lua_tostring(L, -1);
  else if (ty != LUA_TNIL) oe_lua_fail(L, fn, "option '%s' must be a string, got %s", k, lua_typename(L, ty));
  lua_pop(L, 1); /* the string stays alive: the options table holds it */
  return s;
}

int64_t oe_lua_opt_int(lua_State *L, int idx, const char *k, int64_t def, int64_t lo, int64_t hi, const char *fn) {
  int ty = oe_lua_opt_field(L, idx, k);
  int64_t v = def;
  if (ty != LUA_TNIL) {
    int ok;
    lua_Integer x = lua_tointegerx(L, -1, &ok);
    if (!ok || x < lo || x > hi) oe_lua_fail(L, fn, "option '%s' must be an integer in %lld..%lld", k, (long long)lo, (long long)hi);
    v = x;
  }
  lua_pop(L, 1);
  return v;
}

double oe_lua_opt_unit(lua_State *L, int idx, const char *k, const char *fn) {
  int ty = oe_lua_opt_field(L, idx, k);
  double v = 0;
  if (ty != LUA_TNIL) {
    double x = lua_tonumber(L, -1);
    if (ty != LUA_TNUMBER || !(x > 0) || !(x < 1)) oe_lua_fail(L, fn, "option '%s' must be a number in (0, 1)", k);
    v = x;
  }
  lua_pop(L, 1);
  return v;
}

int oe_lua_opt_bool(lua_State *L, int idx, const char *k, int def, const char *fn) {
  int ty = oe_lua_opt_field(L, idx, k);
  int v = def;
  if (ty == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL) oe_lua_fail(L, fn, "option '%s' must be true or false, got %s", k, lua_typename(L, ty));
  lua_pop(L, 1);
  return v;
}
