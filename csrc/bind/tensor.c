/* bind/tensor.c: creation, inspection, views and copies. Positions and dims
 * passed as Lua numbers are 1-based; ids stored inside tensors are 0-based. */
#include "bind.h"
#include "../core/rng.h"
#include "../core/util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* raises naming fn unless every size is >= 0 and the non-zero sizes multiply
 * to at most OE_MAX_NUMEL (so no element count or stride overflows) */
static void check_shape(lua_State *L, int nd, const int64_t *shape, const char *fn) {
  oe_err e;
  if (oe_shape_check(nd, shape, &e) != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
}

static int t_gc(lua_State *L) {
  oe_tensor *t = luaL_checkudata(L, 1, OE_TENSOR_MT);
  oe_tensor_release(t);
  return 0;
}

/* getattrs(t): the tensor's attribute table (grad, requires_grad, node), created on demand */
static int t_attrs(lua_State *L) {
  luaL_checkudata(L, 1, OE_TENSOR_MT);
  if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    if (lua_toboolean(L, 2)) { lua_pushnil(L); return 1; }
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 1);
  }
  return 1;
}
/* rawattrs(t): attribute table or nil, never creates */
static int t_rawattrs(lua_State *L) {
  luaL_checkudata(L, 1, OE_TENSOR_MT);
  if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) { lua_pop(L, 1); lua_pushnil(L); }
  return 1;
}

static int t_is_tensor(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, OE_TENSOR_MT) != NULL);
  return 1;
}

static int t_new(lua_State *L) {
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 1, shape, "zeros", "shape");
  oe_dtype dt = oe_lua_dtype_opt(L, 2, OE_F32, "zeros");
  oe_lua_push_new(L, "zeros", dt, nd, shape);
  return 1;
}

static void fill_value(oe_tensor *t, double v) {
  int64_t n = oe_numel(t);
  void *d = oe_data(t);
  switch (t->dtype) {
    case OE_F32: for (int64_t i = 0; i < n; i++) ((float *)d)[i] = (float)v; break;
    case OE_I32: for (int64_t i = 0; i < n; i++) ((int32_t *)d)[i] = (int32_t)v; break;
    case OE_I64: for (int64_t i = 0; i < n; i++) ((int64_t *)d)[i] = (int64_t)v; break;
    case OE_U8: for (int64_t i = 0; i < n; i++) ((uint8_t *)d)[i] = (uint8_t)v; break;
  }
}

static int t_fill_(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "fill_", "self");
  fill_value(t, luaL_checknumber(L, 2));
  lua_settop(L, 1);
  return 1;
}

static double get_at(const oe_tensor *t, int64_t i) {
  const void *d = oe_data(t);
  switch (t->dtype) {
    case OE_F32: return ((const float *)d)[i];
    case OE_I32: return ((const int32_t *)d)[i];
    case OE_I64: return (double)((const int64_t *)d)[i];
    case OE_U8: return ((const uint8_t *)d)[i];
  }
  return 0;
}

static void push_at(lua_State *L, const oe_tensor *t, int64_t i) {
  const void *d = oe_data(t);
  switch (t->dtype) {
    case OE_F32: lua_pushnumber(L, ((const float *)d)[i]); break;
    case OE_I32: lua_pushinteger(L, ((const int32_t *)d)[i]); break;
    case OE_I64: lua_pushinteger(L, ((const int64_t *)d)[i]); break;
    case OE_U8: lua_pushinteger(L, ((const uint8_t *)d)[i]); break;
  }
}

static void set_at(oe_tensor *t, int64_t i, double v) {
  void *d = oe_data(t);
  switch (t->dtype) {
    case OE_F32: ((float *)d)[i] = (float)v; break;
    case OE_I32: ((int32_t *)d)[i] = (int32_t)v; break;
    case OE_I64: ((int64_t *)d)[i] = (int64_t)v; break;
    case OE_U8: ((uint8_t *)d)[i] = (uint8_t)v; break;
  }
}

static int t_arange(lua_State *L) {
  double start = luaL_checknumber(L, 1), stop = luaL_checknumber(L, 2), step = luaL_optnumber(L, 3, 1);
  oe_dtype dt = oe_lua_dtype_opt(L, 4, OE_F32, "arange");
  if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step)) return oe_lua_fail(L, "arange", "invalid range");
  double cnt = ceil((stop - start) / step);
  if (cnt < 0) cnt = 0;
  if (cnt > 1e10) return oe_lua_fail(L, "arange", "range has too many elements");
  int64_t n = (int64_t)cnt;
  oe_tensor *t = oe_lua_push_new(L, "arange", dt, 1, &n);
  for (int64_t i = 0; i < n; i++) set_at(t, i, start + step * (double)i);
  return 1;
}

/* from_table(nested, dtype): infers the shape from the first elements, checks every row */
static void table_shape(lua_State *L, int idx, int *nd, int64_t *shape) {
  *nd = 0;
  lua_pushvalue(L, idx);
  while (lua_type(L, -1) == LUA_TTABLE) {
    if (*nd >= OE_MAX_DIMS) { lua_pop(L, 1); oe_lua_fail(L, "tensor", "nesting deeper than %d", OE_MAX_DIMS); }
    shape[(*nd)++] = (int64_t)luaL_len(L, -1);
    lua_geti(L, -1, 1);
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
}

static void table_fill(lua_State *L, int idx, int dim, int nd, const int64_t *shape, oe_tensor *t, int64_t *pos) {
  if (lua_type(L, idx) != LUA_TTABLE || (int64_t)luaL_len(L, idx) != shape[dim]) {
    char buf[128];
    oe_lua_fail(L, "tensor", "ragged nested table: expected %lld entries at depth %d for shape %s",
                (long long)shape[dim], dim + 1, oe_shape_str(nd, shape, buf, sizeof buf));
  }
  for (int64_t i = 1; i <= shape[dim]; i++) {
    lua_geti(L, idx, i);
    if (dim == nd - 1) {
      int isnum;
      double v = lua_tonumberx(L, -1, &isnum);
      if (!isnum) {
        if (lua_isboolean(L, -1)) v = lua_toboolean(L, -1);
        else oe_lua_fail(L, "tensor", "entry is a %s, not a number", luaL_typename(L, -1));
      }
      set_at(t, (*pos)++, v);
    } else {
      table_fill(L, lua_gettop(L), dim + 1, nd, shape, t, pos);
    }
    lua_pop(L, 1);
  }
}

static int t_from_table(lua_State *L) {
  oe_dtype dt = oe_lua_dtype_opt(L, 2, OE_F32, "tensor");
  if (lua_type(L, 1) == LUA_TNUMBER) {
    oe_tensor *t = oe_lua_push_new(L, "tensor", dt, 0, NULL);
    set_at(t, 0, lua_tonumber(L, 1));
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  int nd;
  int64_t shape[OE_MAX_DIMS];
  table_shape(L, 1, &nd, shape);
  oe_tensor *t = oe_lua_push_new(L, "tensor", dt, nd, shape);
  int64_t pos = 0;
  if (oe_numel(t) > 0) table_fill(L, 1, 0, nd, shape, t, &pos);
  return 1;
}

static int t_from_bytes(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  oe_dtype dt = oe_lua_dtype_opt(L, 2, OE_F32, "from_bytes");
  int64_t shape[OE_MAX_DIMS];
  int nd;
  size_t es = oe_dtype_size(dt);
  if (lua_isnoneornil(L, 3)) {
    if (len % es) return oe_lua_fail(L, "from_bytes", "%zu bytes is not a multiple of the %s size %zu", len, oe_dtype_name(dt), es);
    nd = 1;
    shape[0] = (int64_t)(len / es);
  } else {
    nd = oe_lua_shape(L, 3, shape, "from_bytes", "shape");
  }
  check_shape(L, nd, shape, "from_bytes");
  int64_t n = oe_numel_of(nd, shape);
  if ((size_t)n * es != len)
    return oe_lua_fail(L, "from_bytes", "%zu bytes do not hold %lld %s values", len, (long long)n, oe_dtype_name(dt));
  oe_tensor *t = oe_lua_push_uninit(L, "from_bytes", dt, nd, shape);
  memcpy(oe_data(t), s, len);
  return 1;
}

static int t_to_bytes(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "to_bytes", "self");
  lua_pushlstring(L, oe_data(t), (size_t)oe_numel(t) * oe_dtype_size(t->dtype));
  return 1;
}

static int t_manual_seed(lua_State *L) {
  oe_rng_seed(oe_rng_global(), (uint64_t)luaL_checkinteger(L, 1));
  return 0;
}
static int t_rng_state(lua_State *L) {
  oe_rng *r = oe_rng_global();
  lua_pushinteger(L, (lua_Integer)r->seed);
  lua_pushinteger(L, (lua_Integer)r->counter);
  return 2;
}
static int t_set_rng_state(lua_State *L) {
  oe_rng *r = oe_rng_global();
  r->seed = (uint64_t)luaL_checkinteger(L, 1);
  r->counter = (uint64_t)luaL_checkinteger(L, 2);
  return 0;
}

static int t_randn(lua_State *L) {
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 1, shape, "randn", "shape");
  float mean = (float)luaL_optnumber(L, 2, 0), std = (float)luaL_optnumber(L, 3, 1);
  oe_tensor *t = oe_lua_push_new(L, "randn", OE_F32, nd, shape);
  oe_rng_fill_normal(oe_rng_global(), oe_f32(t), oe_numel(t), mean, std);
  return 1;
}
static int t_rand(lua_State *L) {
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 1, shape, "rand", "shape");
  float lo = (float)luaL_optnumber(L, 2, 0), hi = (float)luaL_optnumber(L, 3, 1);
  oe_tensor *t = oe_lua_push_new(L, "rand", OE_F32, nd, shape);
  oe_rng_fill_uniform(oe_rng_global(), oe_f32(t), oe_numel(t), lo, hi);
  return 1;
}
/* randint(lo, hi, shape, dtype): uniform integers in [lo, hi) */
static int t_randint(lua_State *L) {
  lua_Integer lo = luaL_checkinteger(L, 1), hi = luaL_checkinteger(L, 2);
  if (hi <= lo) return oe_lua_fail(L, "randint", "empty range [%lld, %lld)", (long long)lo, (long long)hi);
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 3, shape, "randint", "shape");
  oe_dtype dt = oe_lua_dtype_opt(L, 4, OE_I64, "randint");
  oe_tensor *t = oe_lua_push_new(L, "randint", dt, nd, shape);
  int64_t n = oe_numel(t);
  oe_rng *r = oe_rng_global();
  uint64_t base = oe_rng_reserve(r, (uint64_t)n), span = (uint64_t)(hi - lo);
  for (int64_t i = 0; i < n; i++) set_at(t, i, (double)(lo + (lua_Integer)(oe_rng_at(r, base, (uint64_t)i) % span)));
  return 1;
}

static int t_shape(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "shape", "self");
  if (!lua_isnoneornil(L, 2)) {
    int d = oe_lua_dim(L, 2, t->ndim, "size");
    lua_pushinteger(L, t->shape[d]);
    return 1;
  }
  lua_createtable(L, t->ndim, 0);
  for (int i = 0; i < t->ndim; i++) { lua_pushinteger(L, t->shape[i]); lua_rawseti(L, -2, i + 1); }
  return 1;
}
static int t_dim(lua_State *L) { lua_pushinteger(L, oe_lua_check(L, 1, "dim", "self")->ndim); return 1; }
static int t_numel(lua_State *L) { lua_pushinteger(L, oe_numel(oe_lua_check(L, 1, "numel", "self"))); return 1; }
static int t_dtype(lua_State *L) { lua_pushstring(L, oe_dtype_name(oe_lua_check(L, 1, "dtype", "self")->dtype)); return 1; }

static int t_item(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "item", "self");
  if (oe_numel(t) != 1) {
    char b[128];
    return oe_lua_fail(L, "item", "tensor of shape %s has %lld elements, item needs exactly one", oe_lua_shape_str(t, b, sizeof b), (long long)oe_numel(t));
  }
  push_at(L, t, 0);
  return 1;
}

/* get(t, i1, i2, ...) / set(t, v, i1, i2, ...) : single element, 1-based */
static int64_t flat_index(lua_State *L, oe_tensor *t, int first, const char *fn) {
  int n = lua_gettop(L) - first + 1;
  if (n != t->ndim) return oe_lua_fail(L, fn, "expected %d indices, got %d", t->ndim, n);
  int64_t off = 0;
  for (int i = 0; i < t->ndim; i++) {
    lua_Integer k = luaL_checkinteger(L, first + i);
    if (k < 0) k += t->shape[i] + 1;
    if (k < 1 || k > t->shape[i]) return oe_lua_fail(L, fn, "index %lld out of range 1..%lld in dimension %d", (long long)k, (long long)t->shape[i], i + 1);
    off = off * t->shape[i] + (k - 1);
  }
  return off;
}
static int t_get(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "get", "self");
  push_at(L, t, flat_index(L, t, 2, "get"));
  return 1;
}
static int t_set(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "set", "self");
  double v = luaL_checknumber(L, 2);
  set_at(t, flat_index(L, t, 3, "set"), v);
  return 0;
}

static void push_table(lua_State *L, const oe_tensor *t, int dim, int64_t *pos) {
  lua_createtable(L, (int)t->shape[dim], 0);
  for (int64_t i = 0; i < t->shape[dim]; i++) {
    if (dim == t->ndim - 1) push_at(L, t, (*pos)++);
    else push_table(L, t, dim + 1, pos);
    lua_rawseti(L, -2, i + 1);
  }
}
static int t_totable(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "totable", "self");
  if (t->ndim == 0) { push_at(L, t, 0); return 1; }
  int64_t pos = 0;
  luaL_checkstack(L, t->ndim + 10, "totable");
  push_table(L, t, 0, &pos);
  return 1;
}

static int t_tostring(lua_State *L) {
  oe_tensor *t = luaL_checkudata(L, 1, OE_TENSOR_MT);
  if (!t->storage) { lua_pushstring(L, "tensor(released)"); return 1; }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int64_t n = oe_numel(t);
  int64_t last = t->ndim ? t->shape[t->ndim - 1] : 1;
  char s[256];
  luaL_addstring(&b, "tensor(");
  int64_t shown = n <= 64 ? n : 6;
  for (int64_t i = 0; i < n && i < shown; i++) {
    if (i && last && i % last == 0) luaL_addstring(&b, "\n       ");
    double v = get_at(t, i);
    if (t->dtype == OE_F32) snprintf(s, sizeof s, "%s%.4g", i % (last ? last : 1) ? ", " : "", v);
    else snprintf(s, sizeof s, "%s%lld", i % (last ? last : 1) ? ", " : "", (long long)v);
    luaL_addstring(&b, s);
  }
  if (shown < n) luaL_addstring(&b, ", ...");
  char sh[160];
  snprintf(s, sizeof s, ", shape=%s, dtype=%s)", oe_lua_shape_str(t, sh, sizeof sh), oe_dtype_name(t->dtype));
  luaL_addstring(&b, s);
  luaL_pushresult(&b);
  return 1;
}

/* reshape(t, shape): view; one entry may be -1 */
static int t_reshape(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "reshape", "self");
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 2, shape, "reshape", "shape");
  int64_t known = 1;
  int infer = -1;
  for (int i = 0; i < nd; i++) {
    if (shape[i] == -1) {
      if (infer >= 0) return oe_lua_fail(L, "reshape", "only one dimension can be -1");
      infer = i;
    } else if (shape[i] < 0) return oe_lua_fail(L, "reshape", "negative size %lld", (long long)shape[i]);
  }
  {
    int64_t rest[OE_MAX_DIMS]; /* the sizes given, the one to infer counted as 1 */
    for (int i = 0; i < nd; i++) rest[i] = i == infer ? 1 : shape[i];
    check_shape(L, nd, rest, "reshape");
    known = oe_numel_of(nd, rest);
  }
  int64_t n = oe_numel(t);
  if (infer >= 0) {
    if (known == 0 || n % known) goto bad;
    shape[infer] = n / known;
  }
  if (oe_numel_of(nd, shape) != n) goto bad;
  oe_lua_push_view(L, t, nd, shape, t->offset);
  return 1;
bad : {
  char a[160], b[160];
  return oe_lua_fail(L, "reshape", "cannot view a tensor of shape %s (%lld elements) as %s", oe_lua_shape_str(t, a, sizeof a),
                     (long long)n, oe_shape_str(nd, shape, b, sizeof b));
}
}

/* block copy helper: src viewed as (outer, n_src * inner) rows, copy a (outer, len*inner) slab */
static void copy_slab(void *dst, int64_t dst_row, int64_t dst_off, const void *src, int64_t src_row, int64_t src_off,
                      int64_t outer, int64_t len, size_t es) {
  for (int64_t o = 0; o < outer; o++)
    memcpy((char *)dst + (size_t)(o * dst_row + dst_off) * es, (const char *)src + (size_t)(o * src_row + src_off) * es,
           (size_t)len * es);
}

static void outer_inner(const oe_tensor *t, int d, int64_t *outer, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int i = 0; i < d; i++) *outer *= t->shape[i];
  for (int i = d + 1; i < t->ndim; i++) *inner *= t->shape[i];
}

/* narrow(t, dim, start, length): view when the slab is contiguous, else a copy */
static int t_narrow(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "narrow", "self");
  if (t->ndim == 0) return oe_lua_fail(L, "narrow", "cannot narrow a 0-dimensional tensor");
  int d = oe_lua_dim(L, 2, t->ndim, "narrow");
  lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  if (start < 1 || len < 0 || start - 1 > t->shape[d] || len > t->shape[d] - (start - 1))
    return oe_lua_fail(L, "narrow", "range start %lld length %lld out of bounds for size %lld in dimension %d", (long long)start,
                       (long long)len, (long long)t->shape[d], d + 1);
  int64_t outer, inner;
  outer_inner(t, d, &outer, &inner);
  int64_t shape[OE_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[d] = len;
  if (outer == 1 || len == t->shape[d]) {
    oe_lua_push_view(L, t, t->ndim, shape, t->offset + (size_t)((start - 1) * inner));
    return 1;
  }
  oe_tensor *o = oe_lua_push_uninit(L, "narrow", t->dtype, t->ndim, shape);
  copy_slab(oe_data(o), len * inner, 0, oe_data(t), t->shape[d] * inner, (start - 1) * inner, outer, len * inner,
            oe_dtype_size(t->dtype));
  return 1;
}

/* narrow_copy_(t, dim, start, src): t[..., start:start+len, ...] = src (in place) */
static int t_narrow_copy_(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "set_slice", "self");
  int d = oe_lua_dim(L, 2, t->ndim, "set_slice");
  lua_Integer start = luaL_checkinteger(L, 3);
  oe_tensor *s = oe_lua_check(L, 4, "set_slice", "src");
  if (s->dtype != t->dtype) return oe_lua_fail(L, "set_slice", "src is %s, target is %s", oe_dtype_name(s->dtype), oe_dtype_name(t->dtype));
  int ok = s->ndim == t->ndim;
  for (int i = 0; ok && i < t->ndim; i++)
    if (i != d && s->shape[i] != t->shape[i]) ok = 0;
  int64_t len = ok ? s->shape[d] : 0;
  if (!ok || start < 1 || start - 1 > t->shape[d] || len > t->shape[d] - (start - 1)) {
    char a[160], b[160];
    return oe_lua_fail(L, "set_slice", "src of shape %s does not fit target %s at dim %d start %lld", oe_lua_shape_str(s, a, sizeof a),
                       oe_lua_shape_str(t, b, sizeof b), d + 1, (long long)start);
  }
  int64_t outer, inner;
  outer_inner(t, d, &outer, &inner);
  copy_slab(oe_data(t), t->shape[d] * inner, (start - 1) * inner, oe_data(s), len * inner, 0, outer, len * inner,
            oe_dtype_size(t->dtype));
  lua_settop(L, 1);
  return 1;
}

/* select(t, dim, i): removes dim; view when contiguous */
static int t_select(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "select", "self");
  if (t->ndim == 0) return oe_lua_fail(L, "select", "cannot select from a 0-dimensional tensor");
  int d = oe_lua_dim(L, 2, t->ndim, "select");
  lua_Integer i = luaL_checkinteger(L, 3);
  if (i < 0) i += t->shape[d] + 1;
  if (i < 1 || i > t->shape[d]) return oe_lua_fail(L, "select", "index %lld out of range 1..%lld in dimension %d", (long long)i, (long long)t->shape[d], d + 1);
  int64_t outer, inner;
  outer_inner(t, d, &outer, &inner);
  int64_t shape[OE_MAX_DIMS];
  int nd = 0;
  for (int k = 0; k < t->ndim; k++) if (k != d) shape[nd++] = t->shape[k];
  if (outer == 1) {
    oe_lua_push_view(L, t, nd, shape, t->offset + (size_t)((i - 1) * inner));
    return 1;
  }
  oe_tensor *o = oe_lua_push_uninit(L, "select", t->dtype, nd, shape);
  copy_slab(oe_data(o), inner, 0, oe_data(t), t->shape[d] * inner, (i - 1) * inner, outer, inner, oe_dtype_size(t->dtype));
  return 1;
}

static int64_t id_at(const oe_tensor *ids, int64_t i) {
  return ids->dtype == OE_I64 ? ((const int64_t *)oe_data(ids))[i] : ((const int32_t *)oe_data(ids))[i];
}
static void check_ids(lua_State *L, const oe_tensor *ids, int64_t rows, const char *fn) {
  if (ids->dtype != OE_I64 && ids->dtype != OE_I32) oe_lua_fail(L, fn, "ids must be int64 or int32, got %s", oe_dtype_name(ids->dtype));
  int64_t n = oe_numel(ids);
  for (int64_t i = 0; i < n; i++) {
    int64_t k = id_at(ids, i);
    if (k < 0 || k >= rows) oe_lua_fail(L, fn, "id %lld at position %lld out of range 0..%lld", (long long)k, (long long)(i + 1), (long long)(rows - 1));
  }
}

/* index_select(t, ids): rows of t (dim 1) picked by 0-based ids of any shape -> ids.shape .. t.shape[2:] */
static int t_index_select(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "index_select", "self");
  oe_tensor *ids = oe_lua_check(L, 2, "index_select", "ids");
  if (t->ndim == 0) return oe_lua_fail(L, "index_select", "cannot index a 0-dimensional tensor");
  check_ids(L, ids, t->shape[0], "index_select");
  if (ids->ndim + t->ndim - 1 > OE_MAX_DIMS) return oe_lua_fail(L, "index_select", "too many dimensions");
  int64_t shape[OE_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < ids->ndim; i++) shape[nd++] = ids->shape[i];
  for (int i = 1; i < t->ndim; i++) shape[nd++] = t->shape[i];
  oe_tensor *o = oe_lua_push_uninit(L, "index_select", t->dtype, nd, shape);
  int64_t row = oe_numel(t) / (t->shape[0] ? t->shape[0] : 1), n = oe_numel(ids);
  size_t rb = (size_t)row * oe_dtype_size(t->dtype);
  for (int64_t i = 0; i < n; i++) memcpy((char *)oe_data(o) + i * rb, (char *)oe_data(t) + id_at(ids, i) * rb, rb);
  return 1;
}

/* index_add_(dst, ids, src): dst[ids[i]] += src[i] (rows), float32 */
static int t_index_add_(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "index_add_", "self");
  oe_tensor *ids = oe_lua_check(L, 2, "index_add_", "ids");
  oe_tensor *s = oe_lua_check(L, 3, "index_add_", "src");
  oe_lua_check_dtype(L, t, OE_F32, "index_add_", "self");
  oe_lua_check_dtype(L, s, OE_F32, "index_add_", "src");
  check_ids(L, ids, t->shape[0], "index_add_");
  int64_t row = oe_numel(t) / (t->shape[0] ? t->shape[0] : 1), n = oe_numel(ids);
  if (oe_numel(s) != n * row) return oe_lua_fail(L, "index_add_", "src has %lld elements, expected %lld", (long long)oe_numel(s), (long long)(n * row));
  float *d = oe_f32(t);
  const float *src = oe_f32(s);
  for (int64_t i = 0; i < n; i++) {
    float *dr = d + id_at(ids, i) * row;
    const float *sr = src + i * row;
    for (int64_t j = 0; j < row; j++) dr[j] += sr[j];
  }
  lua_settop(L, 1);
  return 1;
}

/* permute(t, perm): contiguous copy, perm 1-based */
static int t_permute(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "permute", "self");
  int64_t perm[OE_MAX_DIMS];
  int np = oe_lua_shape(L, 2, perm, "permute", "dims");
  if (np != t->ndim) return oe_lua_fail(L, "permute", "got %d dims for a %d-dimensional tensor", np, t->ndim);
  int seen[OE_MAX_DIMS] = {0};
  int64_t shape[OE_MAX_DIMS], stride[OE_MAX_DIMS], ostride[OE_MAX_DIMS];
  int64_t acc = 1;
  for (int i = t->ndim - 1; i >= 0; i--) { stride[i] = acc; acc *= t->shape[i]; }
  for (int i = 0; i < np; i++) {
    int64_t p = perm[i] < 0 ? perm[i] + np : perm[i] - 1;
    if (p < 0 || p >= np || seen[p]) return oe_lua_fail(L, "permute", "dims are not a permutation of 1..%d", np);
    seen[p] = 1;
    perm[i] = p;
    shape[i] = t->shape[p];
    ostride[i] = stride[p];
  }
  oe_tensor *o = oe_lua_push_uninit(L, "permute", t->dtype, t->ndim, shape);
  int64_t n = oe_numel(o);
  if (n == 0) return 1;
  size_t es = oe_dtype_size(t->dtype);
  const char *src = oe_data(t);
  char *dst = oe_data(o);
  int nd = t->ndim;
  int64_t inner = nd ? shape[nd - 1] : 1, rows = n / inner, is = nd ? ostride[nd - 1] : 1;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t r = 0; r < rows; r++) {
    int64_t off = 0, rem = r;
    for (int k = nd - 2; k >= 0; k--) { off += (rem % shape[k]) * ostride[k]; rem /= shape[k]; }
    if (es == 4) {
      const float *s4 = (const float *)src;
      float *d4 = (float *)dst + r * inner;
      for (int64_t j = 0; j < inner; j++) d4[j] = s4[off + j * is];
    } else {
      for (int64_t j = 0; j < inner; j++) memcpy(dst + (size_t)(r * inner + j) * es, src + (size_t)(off + j * is) * es, es);
    }
  }
  return 1;
}

/* cat({t1, t2, ...}, dim) */
static int t_cat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  if (n == 0) return oe_lua_fail(L, "cat", "needs at least one tensor");
  lua_geti(L, 1, 1);
  oe_tensor *first = oe_lua_check(L, -1, "cat", "tensors[1]");
  lua_pop(L, 1);
  int d = oe_lua_dim(L, 2, first->ndim, "cat");
  int64_t shape[OE_MAX_DIMS];
  memcpy(shape, first->shape, sizeof shape);
  shape[d] = 0;
  for (int i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    oe_tensor *t = luaL_testudata(L, -1, OE_TENSOR_MT);
    lua_pop(L, 1);
    if (!t || !t->storage) return oe_lua_fail(L, "cat", "entry %d is not a tensor", i);
    int ok = t->ndim == first->ndim && t->dtype == first->dtype;
    for (int k = 0; ok && k < t->ndim; k++) if (k != d && t->shape[k] != first->shape[k]) ok = 0;
    if (!ok) {
      char a[160], b[160];
      return oe_lua_fail(L, "cat", "tensor %d of shape %s %s does not match tensor 1 of shape %s %s along dims other than %d", i,
                         oe_lua_shape_str(t, a, sizeof a), oe_dtype_name(t->dtype), oe_lua_shape_str(first, b, sizeof b),
                         oe_dtype_name(first->dtype), d + 1);
    }
    if (__builtin_add_overflow(shape[d], t->shape[d], &shape[d]))
      return oe_lua_fail(L, "cat", "the sizes along dim %d add up past 2^63", d + 1);
  }
  check_shape(L, first->ndim, shape, "cat");
  oe_tensor *o = oe_lua_push_uninit(L, "cat", first->dtype, first->ndim, shape);
  int64_t outer, inner;
  outer_inner(o, d, &outer, &inner);
  int64_t pos = 0;
  for (int i = 1; i <= n; i++) {
    lua_geti(L, 1, i);
    oe_tensor *t = lua_touserdata(L, -1);
    copy_slab(oe_data(o), shape[d] * inner, pos * inner, oe_data(t), t->shape[d] * inner, 0, outer, t->shape[d] * inner,
              oe_dtype_size(t->dtype));
    pos += t->shape[d];
    lua_pop(L, 1);
  }
  return 1;
}

static int t_clone(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "clone", "self");
  oe_tensor *o = oe_lua_push_uninit(L, "clone", t->dtype, t->ndim, t->shape);
  memcpy(oe_data(o), oe_data(t), (size_t)oe_numel(t) * oe_dtype_size(t->dtype));
  return 1;
}

/* view(t): a new userdata sharing storage (used for detach) */
static int t_alias(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "detach", "self");
  oe_lua_push_view(L, t, t->ndim, t->shape, t->offset);
  return 1;
}

static int t_copy_(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "copy_", "self");
  oe_tensor *s = oe_lua_check(L, 2, "copy_", "src");
  if (oe_numel(s) != oe_numel(t)) {
    char a[160], b[160];
    return oe_lua_fail(L, "copy_", "src of shape %s has %lld elements, target %s has %lld", oe_lua_shape_str(s, a, sizeof a),
                       (long long)oe_numel(s), oe_lua_shape_str(t, b, sizeof b), (long long)oe_numel(t));
  }
  int64_t n = oe_numel(t);
  if (s->dtype == t->dtype) memcpy(oe_data(t), oe_data(s), (size_t)n * oe_dtype_size(t->dtype));
  else for (int64_t i = 0; i < n; i++) set_at(t, i, get_at(s, i));
  lua_settop(L, 1);
  return 1;
}

static int t_to(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "to", "self");
  oe_dtype dt = oe_lua_dtype_opt(L, 2, OE_F32, "to");
  oe_tensor *o = oe_lua_push_uninit(L, "to", dt, t->ndim, t->shape);
  int64_t n = oe_numel(t);
  if (dt == t->dtype) memcpy(oe_data(o), oe_data(t), (size_t)n * oe_dtype_size(dt));
  else for (int64_t i = 0; i < n; i++) set_at(o, i, get_at(t, i));
  return 1;
}

static int t_same_storage(lua_State *L) {
  oe_tensor *a = oe_lua_check(L, 1, "same_storage", "a"), *b = oe_lua_check(L, 2, "same_storage", "b");
  lua_pushboolean(L, a->storage == b->storage);
  return 1;
}

static int t_nbytes(lua_State *L) {
  oe_tensor *t = oe_lua_check(L, 1, "nbytes", "self");
  lua_pushinteger(L, (lua_Integer)((size_t)oe_numel(t) * oe_dtype_size(t->dtype)));
  return 1;
}

/* release(t): drop t's hold on its storage now, instead of at garbage
 * collection; later use of t raises "released tensor". For internal buffers. */
static int t_release(lua_State *L) {
  oe_tensor *t = luaL_checkudata(L, 1, OE_TENSOR_MT);
  oe_tensor_release(t);
  return 0;
}

/* collect(): a full Lua GC cycle, and the allocation counter restarts */
static int t_collect(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
  oe_memory_collected();
  return 0;
}

static int t_set_num_threads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  if (n < 1) return oe_lua_fail(L, "set_num_threads", "need at least 1 thread, got %lld", (long long)n);
  oe_set_num_threads((int)n);
  return 0;
}
static int t_get_num_threads(lua_State *L) { lua_pushinteger(L, oe_get_num_threads()); return 1; }

static const luaL_Reg tensor_fns[] = {
  {"attrs", t_attrs}, {"rawattrs", t_rawattrs}, {"is_tensor", t_is_tensor},
  {"zeros", t_new}, {"fill_", t_fill_}, {"arange", t_arange}, {"from_table", t_from_table},
  {"from_bytes", t_from_bytes}, {"to_bytes", t_to_bytes}, {"manual_seed", t_manual_seed},
  {"rng_state", t_rng_state}, {"set_rng_state", t_set_rng_state}, {"randn", t_randn}, {"rand", t_rand},
  {"randint", t_randint}, {"shape", t_shape}, {"dim", t_dim}, {"numel", t_numel}, {"dtype", t_dtype},
  {"item", t_item}, {"get", t_get}, {"set", t_set}, {"totable", t_totable}, {"tostring", t_tostring},
  {"reshape", t_reshape}, {"narrow", t_narrow}, {"set_slice", t_narrow_copy_}, {"select", t_select},
  {"index_select", t_index_select}, {"index_add_", t_index_add_}, {"permute", t_permute}, {"cat", t_cat},
  {"clone", t_clone}, {"alias", t_alias}, {"copy_", t_copy_}, {"to", t_to}, {"same_storage", t_same_storage},
  {"nbytes", t_nbytes}, {"release", t_release}, {"collect", t_collect}, {"set_num_threads", t_set_num_threads}, {"get_num_threads", t_get_num_threads},
  {NULL, NULL}};

void oe_bind_tensor(lua_State *L) {
  luaL_newmetatable(L, OE_TENSOR_MT);
  lua_pushcfunction(L, t_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, t_gc);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, t_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_setfield(L, -2, "Tensor_mt"); /* core.Tensor_mt: Lua side adds __index and operators */
  luaL_setfuncs(L, tensor_fns, 0);
}
