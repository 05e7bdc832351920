/* bind/dist_mpi.c: luaopen_oneencoder_dist_mpi, the optional module behind oe.dist
 * (lua/oneencoder/dist.lua loads it lazily). Built as its own shared object
 * (oneencoder/dist_mpi.so) against Open MPI only when the build finds it; core.so never
 * links MPI. It works on the core's tensor userdata in place (the oe.Tensor metatable is
 * found by name in the registry) and calls nothing of core.so.
 * Communication failures return nil, message (dist.lua raises them); wrong arguments raise.
 *   init(timeout_s) -> rank, size         rank(), size(), initialized(), broken()
 *   timeout(), set_timeout(s)              barrier(), finalize(), abort(code)
 *   all_reduce_(t, op)                     op "sum" | "max" | "min"; in place, returns t
 *   all_reduce_list_({float32 t...}, op, bucket_floats)
 *   all_gather_into(src, dst, rows)        rows[r]: first-dim size of rank r's src
 *   reduce_scatter_into(src, dst, rows)    dst = this rank's rows of the sum of every src
 *   broadcast_(t, root)                    in place, returns t
 *   broadcast_string(s or nil, root) -> s  all_reduce_numbers({x...}, op) -> {x...}
 *   all_gather_numbers({x...}) -> {{x...} per rank} */
#include "bind.h"
#include "../dist/comm.h"
#include <stdlib.h>
#include <string.h>

#define PENDING_KEY "oneencoder.dist_mpi.pending"

static size_t elem_size(oe_dtype dt) { return dt == OE_I64 ? 8 : dt == OE_U8 ? 1 : 4; }
static int64_t count_of(const oe_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}
static void *data_of(const oe_tensor *t) { return (char *)t->storage->data + t->offset * elem_size(t->dtype); }
static oe_dist_type dist_type(oe_dtype dt) {
  return dt == OE_I32 ? OE_DIST_I32 : dt == OE_I64 ? OE_DIST_I64 : dt == OE_U8 ? OE_DIST_U8 : OE_DIST_F32;
}
static const char *dtype_name(oe_dtype dt) {
  return dt == OE_I32 ? "int32" : dt == OE_I64 ? "int64" : dt == OE_U8 ? "uint8" : "float32";
}

static oe_tensor *check_tensor(lua_State *L, int idx, const char *fn, const char *arg) {
  oe_tensor *t = luaL_testudata(L, idx, OE_TENSOR_MT);
  if (!t) luaL_error(L, "%s: argument '%s' must be a tensor, got %s", fn, arg, luaL_typename(L, idx));
  if (!t->storage) luaL_error(L, "%s: argument '%s' is a released tensor", fn, arg);
  return t;
}

static oe_dist_op check_op(lua_State *L, int idx, const char *fn) {
  static const char *const names[] = { "sum", "max", "min", NULL };
  const char *s = luaL_optstring(L, idx, "sum");
  for (int i = 0; names[i]; i++)
    if (strcmp(s, names[i]) == 0) return (oe_dist_op)i;
  luaL_error(L, "%s: op must be \"sum\", \"max\" or \"min\", got \"%s\"", fn, s);
  return OE_DIST_SUM;
}

/* after a failed wait the collective stays pending inside MPI and may still touch the
 * memory of the values at idx...: they are kept alive until the process ends */
static void keep_pending(lua_State *L, int from, int to) {
  if (!oe_dist_broken()) return;
  lua_getfield(L, LUA_REGISTRYINDEX, PENDING_KEY);
  for (int i = from; i <= to; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
  }
  lua_pop(L, 1);
}

static int push_fail(lua_State *L, const oe_err *e) {
  lua_pushnil(L);
  lua_pushstring(L, e->msg);
  return 2;
}

/* rows[r] for every rank, from a Lua list of sizes() numbers */
static int64_t *check_rows(lua_State *L, int idx, const char *fn) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = oe_dist_size();
  if ((int)luaL_len(L, idx) != n) luaL_error(L, "%s: rows must list one count per rank (%d), got %d", fn, n, (int)luaL_len(L, idx));
  int64_t *rows = lua_newuserdatauv(L, (size_t)n * sizeof(int64_t), 0); /* freed by the GC */
  for (int r = 0; r < n; r++) {
    lua_rawgeti(L, idx, r + 1);
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < 0) luaL_error(L, "%s: rows[%d] must be a non-negative integer", fn, r + 1);
    rows[r] = v;
    lua_pop(L, 1);
  }
  return rows; /* the userdata stays on the stack */
}

static int d_init(lua_State *L) {
  double timeout = luaL_optnumber(L, 1, 600);
  oe_err e;
  if (oe_dist_init(timeout, &e) != OE_OK) return push_fail(L, &e);
  lua_pushinteger(L, oe_dist_rank());
  lua_pushinteger(L, oe_dist_size());
  return 2;
}
static int d_rank(lua_State *L) { lua_pushinteger(L, oe_dist_rank()); return 1; }
static int d_size(lua_State *L) { lua_pushinteger(L, oe_dist_size()); return 1; }
static int d_initialized(lua_State *L) { lua_pushboolean(L, oe_dist_initialized()); return 1; }
static int d_broken(lua_State *L) { lua_pushboolean(L, oe_dist_broken()); return 1; }
static int d_timeout(lua_State *L) { lua_pushnumber(L, oe_dist_timeout()); return 1; }
static int d_set_timeout(lua_State *L) { oe_dist_set_timeout(luaL_checknumber(L, 1)); return 0; }

static int d_barrier(lua_State *L) {
  oe_err e;
  if (oe_dist_barrier("oe.dist.barrier", &e) != OE_OK) return push_fail(L, &e);
  lua_pushboolean(L, 1);
  return 1;
}

static int d_finalize(lua_State *L) {
  oe_err e;
  if (oe_dist_finalize(&e) != OE_OK) return push_fail(L, &e);
  lua_pushboolean(L, 1);
  return 1;
}

static int d_abort(lua_State *L) {
  oe_dist_abort((int)luaL_optinteger(L, 1, 1));
  return 0;
}

static int d_all_reduce_(lua_State *L) {
  const char *fn = "oe.dist.all_reduce";
  oe_tensor *t = check_tensor(L, 1, fn, "tensor");
  oe_dist_op op = check_op(L, 2, fn);
  oe_err e;
  if (oe_dist_all_reduce(data_of(t), count_of(t), dist_type(t->dtype), op, fn, &e) != OE_OK) {
    keep_pending(L, 1, 1);
    return push_fail(L, &e);
  }
  lua_settop(L, 1);
  return 1;
}

static int d_all_reduce_list_(lua_State *L) {
  const char *fn = "oe.dist.all_reduce_list";
  luaL_checktype(L, 1, LUA_TTABLE);
  oe_dist_op op = check_op(L, 2, fn);
  lua_Integer bucket = luaL_optinteger(L, 3, INT64_C(1) << 22);
  int n = (int)luaL_len(L, 1);
  float **bufs = lua_newuserdatauv(L, (size_t)(n ? n : 1) * (sizeof(float *) + sizeof(int64_t)), 0);
  int64_t *lens = (int64_t *)(bufs + (n ? n : 1));
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    oe_tensor *t = check_tensor(L, -1, fn, "list entry");
    if (t->dtype != OE_F32) luaL_error(L, "%s: list entry %d must be float32, got %s", fn, i + 1, dtype_name(t->dtype));
    bufs[i] = data_of(t);
    lens[i] = count_of(t);
    lua_pop(L, 1);
  }
  oe_err e;
  if (oe_dist_all_reduce_buckets(bufs, lens, n, bucket, op, fn, &e) != OE_OK) {
    keep_pending(L, 1, 1);
    return push_fail(L, &e);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* src and dst agree on dtype and on every dim after the first; returns the elements per row */
static int64_t row_elems(lua_State *L, const oe_tensor *src, const oe_tensor *dst, const char *fn) {
  if (src->dtype != dst->dtype) luaL_error(L, "%s: src is %s but dst is %s", fn, dtype_name(src->dtype), dtype_name(dst->dtype));
  if (src->ndim < 1 || src->ndim != dst->ndim) luaL_error(L, "%s: src and dst need the same number of dims (at least 1)", fn);
  int64_t n = 1;
  for (int i = 1; i < src->ndim; i++) {
    if (src->shape[i] != dst->shape[i]) luaL_error(L, "%s: src and dst differ in dim %d (%lld and %lld)", fn, i + 1,
                                                   (long long)src->shape[i], (long long)dst->shape[i]);
    n *= src->shape[i];
  }
  return n;
}

static int d_all_gather_into(lua_State *L) {
  const char *fn = "oe.dist.all_gather";
  oe_tensor *src = check_tensor(L, 1, fn, "src"), *dst = check_tensor(L, 2, fn, "dst");
  int64_t *rows = check_rows(L, 3, fn);
  int64_t per = row_elems(L, src, dst, fn), total = 0;
  int n = oe_dist_size(), me = oe_dist_rank();
  for (int r = 0; r < n; r++) total += rows[r];
  if (src->shape[0] != rows[me] || dst->shape[0] != total)
    luaL_error(L, "%s: this rank's src has %lld rows and dst %lld, rows say %lld and %lld", fn, (long long)src->shape[0],
               (long long)dst->shape[0], (long long)rows[me], (long long)total);
  int64_t *counts = lua_newuserdatauv(L, (size_t)n * sizeof(int64_t), 0);
  for (int r = 0; r < n; r++) counts[r] = rows[r] * per;
  oe_err e;
  if (oe_dist_all_gatherv(data_of(src), data_of(dst), counts, dist_type(src->dtype), fn, &e) != OE_OK) {
    keep_pending(L, 1, lua_gettop(L));
    return push_fail(L, &e);
  }
  lua_settop(L, 2);
  return 1;
}

static int d_reduce_scatter_into(lua_State *L) {
  const char *fn = "oe.dist.reduce_scatter";
  oe_tensor *src = check_tensor(L, 1, fn, "src"), *dst = check_tensor(L, 2, fn, "dst");
  int64_t *rows = check_rows(L, 3, fn);
  int64_t per = row_elems(L, src, dst, fn), total = 0;
  if (src->dtype != OE_F32) luaL_error(L, "%s: tensors must be float32, got %s", fn, dtype_name(src->dtype));
  int n = oe_dist_size(), me = oe_dist_rank();
  for (int r = 0; r < n; r++) total += rows[r];
  if (src->shape[0] != total || dst->shape[0] != rows[me])
    luaL_error(L, "%s: src has %lld rows and this rank's dst %lld, rows say %lld and %lld", fn, (long long)src->shape[0],
               (long long)dst->shape[0], (long long)total, (long long)rows[me]);
  int64_t *counts = lua_newuserdatauv(L, (size_t)n * sizeof(int64_t), 0);
  for (int r = 0; r < n; r++) counts[r] = rows[r] * per;
  oe_err e;
  if (oe_dist_reduce_scatterv(data_of(src), data_of(dst), counts, fn, &e) != OE_OK) {
    keep_pending(L, 1, lua_gettop(L));
    return push_fail(L, &e);
  }
  lua_settop(L, 2);
  return 1;
}

static int check_root(lua_State *L, int idx, const char *fn) {
  lua_Integer root = luaL_optinteger(L, idx, 0);
  if (root < 0 || root >= oe_dist_size()) luaL_error(L, "%s: root %lld outside 0..%d", fn, (long long)root, oe_dist_size() - 1);
  return (int)root;
}

static int d_broadcast_(lua_State *L) {
  const char *fn = "oe.dist.broadcast";
  oe_tensor *t = check_tensor(L, 1, fn, "tensor");
  int root = check_root(L, 2, fn);
  oe_err e;
  if (oe_dist_broadcast(data_of(t), count_of(t) * (int64_t)elem_size(t->dtype), root, fn, &e) != OE_OK) {
    keep_pending(L, 1, 1);
    return push_fail(L, &e);
  }
  lua_settop(L, 1);
  return 1;
}

static int d_broadcast_string(lua_State *L) {
  const char *fn = "oe.dist.broadcast_string";
  int root = check_root(L, 2, fn);
  int me = oe_dist_rank();
  size_t len = 0;
  const char *s = NULL;
  if (me == root) s = luaL_checklstring(L, 1, &len);
  int64_t n = (int64_t)len;
  oe_err e;
  if (oe_dist_broadcast(&n, sizeof n, root, fn, &e) != OE_OK) return push_fail(L, &e);
  if (n < 0) luaL_error(L, "%s: negative length received", fn);
  char *buf = lua_newuserdatauv(L, (size_t)n + 1, 0);
  if (me == root) memcpy(buf, s, len);
  if (oe_dist_broadcast(buf, n, root, fn, &e) != OE_OK) {
    keep_pending(L, lua_gettop(L), lua_gettop(L));
    return push_fail(L, &e);
  }
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

static double *numbers_of(lua_State *L, int idx, int *n, const char *fn) {
  luaL_checktype(L, idx, LUA_TTABLE);
  *n = (int)luaL_len(L, idx);
  double *v = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * sizeof(double), 0);
  for (int i = 0; i < *n; i++) {
    lua_rawgeti(L, idx, i + 1);
    if (!lua_isnumber(L, -1)) luaL_error(L, "%s: entry %d must be a number, got %s", fn, i + 1, luaL_typename(L, -1));
    v[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  return v;
}

static int d_all_reduce_numbers(lua_State *L) {
  const char *fn = "oe.dist.all_reduce_numbers";
  oe_dist_op op = check_op(L, 2, fn);
  int n;
  double *v = numbers_of(L, 1, &n, fn);
  oe_err e;
  if (oe_dist_all_reduce(v, n, OE_DIST_F64, op, fn, &e) != OE_OK) {
    keep_pending(L, lua_gettop(L), lua_gettop(L));
    return push_fail(L, &e);
  }
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushnumber(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int d_all_gather_numbers(lua_State *L) {
  const char *fn = "oe.dist.all_gather_numbers";
  int n, size = oe_dist_size();
  double *v = numbers_of(L, 1, &n, fn);
  int top = lua_gettop(L);
  int64_t *counts = lua_newuserdatauv(L, 2 * (size_t)size * sizeof(int64_t), 0);
  int64_t *ones = counts + size, mine = n;
  oe_err e;
  for (int r = 0; r < size; r++) ones[r] = 1;
  if (oe_dist_all_gatherv(&mine, counts, ones, OE_DIST_I64, fn, &e) != OE_OK) goto failed;
  int64_t total = 0;
  for (int r = 0; r < size; r++) total += counts[r];
  double *all = lua_newuserdatauv(L, (size_t)(total ? total : 1) * sizeof(double), 0);
  if (oe_dist_all_gatherv(v, all, counts, OE_DIST_F64, fn, &e) != OE_OK) goto failed;
  lua_createtable(L, size, 0);
  for (int r = 0, k = 0; r < size; r++) {
    lua_createtable(L, (int)counts[r], 0);
    for (int i = 0; i < counts[r]; i++, k++) {
      lua_pushnumber(L, all[k]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_rawseti(L, -2, r + 1);
  }
  return 1;
failed:
  keep_pending(L, top, lua_gettop(L));
  return push_fail(L, &e);
}

static const luaL_Reg fns[] = {
  { "init", d_init }, { "rank", d_rank }, { "size", d_size }, { "initialized", d_initialized }, { "broken", d_broken },
  { "timeout", d_timeout }, { "set_timeout", d_set_timeout }, { "barrier", d_barrier }, { "finalize", d_finalize },
  { "abort", d_abort }, { "all_reduce_", d_all_reduce_ }, { "all_reduce_list_", d_all_reduce_list_ },
  { "all_gather_into", d_all_gather_into }, { "reduce_scatter_into", d_reduce_scatter_into }, { "broadcast_", d_broadcast_ },
  { "broadcast_string", d_broadcast_string }, { "all_reduce_numbers", d_all_reduce_numbers },
  { "all_gather_numbers", d_all_gather_numbers }, { NULL, NULL } };

int luaopen_oneencoder_dist_mpi(lua_State *L) {
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, PENDING_KEY);
  luaL_newlib(L, fns);
  return 1;
}
