/* bind/safetensors.c: core.st_load, st_load_names, st_header, st_save.
 * Bad files give nil, message (the message starts with the path); bad
 * arguments raise errors. */
#include "bind.h"
#include "../core/util.h"
#include "../io/safetensors.h"
#include <string.h>

#define ST_FILE_MT "oe.SafetensorsFile"

/* the string at idx, escaped for a message */
static const char *shown_at(lua_State *L, int idx, char *buf, size_t cap) {
  size_t n;
  const char *s = lua_tolstring(L, idx, &n);
  return oe_escape(s, n, buf, cap);
}

static int stfile_gc(lua_State *L) {
  oe_st_file *f = luaL_checkudata(L, 1, ST_FILE_MT);
  oe_st_close(f);
  return 0;
}

/* Push a file handle (closed by __gc even if a Lua error unwinds), or push nil, msg. */
static oe_st_file *open_file(lua_State *L, const char *path) {
  oe_st_file *f = lua_newuserdatauv(L, sizeof *f, 0);
  memset(f, 0, sizeof *f);
  f->fd = -1;
  luaL_setmetatable(L, ST_FILE_MT);
  oe_err e;
  if (oe_st_open(f, path, &e) != OE_OK) {
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return NULL;
  }
  return f;
}

static void push_metadata(lua_State *L, const oe_st_file *f) {
  lua_createtable(L, 0, (int)f->nmeta);
  for (size_t i = 0; i < f->nmeta; i++) {
    lua_pushlstring(L, oe_st_meta_key(f, i), f->meta[i].key_len);
    lua_pushlstring(L, oe_st_meta_val(f, i), f->meta[i].val_len);
    lua_rawset(L, -3);
  }
}

/* read tensor i into a new userdata left on the stack; on failure pushes nothing and returns 0 with msg */
static int push_tensor(lua_State *L, const oe_st_file *f, size_t i, oe_err *e) {
  oe_tensor *t = oe_lua_push_empty(L);
  if (oe_st_read(f, i, t, e) != OE_OK) { lua_pop(L, 1); return 0; }
  return 1;
}

/* st_load(path) -> tensors, metadata | nil, msg */
static int st_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  oe_st_file *f = open_file(L, path);
  if (!f) return 2;
  int fi = lua_gettop(L);
  lua_createtable(L, 0, (int)f->n);
  oe_err e;
  for (size_t i = 0; i < f->n; i++) {
    lua_pushlstring(L, f->entries[i].name, f->entries[i].name_len);
    if (!push_tensor(L, f, i, &e)) { lua_pushnil(L); lua_pushstring(L, e.msg); return 2; }
    lua_rawset(L, -3);
  }
  push_metadata(L, f);
  oe_st_close(f);
  (void)fi;
  return 2;
}

/* st_load_names(path, {names}) -> tensors, metadata | nil, msg */
static int st_load_names(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 2);
  for (lua_Integer k = 1; k <= n; k++) {
    if (lua_geti(L, 2, k) != LUA_TSTRING) oe_lua_fail(L, "st_load_names", "names[%d] must be a string, got %s", (int)k, luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  oe_st_file *f = open_file(L, path);
  if (!f) return 2;
  lua_createtable(L, 0, (int)n);
  oe_err e;
  for (lua_Integer k = 1; k <= n; k++) {
    size_t len;
    lua_geti(L, 2, k);
    const char *name = lua_tolstring(L, -1, &len);
    long i = oe_st_find(f, name, len);
    if (i < 0) {
      char shown[200];
      lua_pushnil(L);
      lua_pushfstring(L, "%s: no tensor named '%s' in the file", path, oe_escape(name, len, shown, sizeof shown));
      return 2;
    }
    if (!push_tensor(L, f, (size_t)i, &e)) { lua_pushnil(L); lua_pushstring(L, e.msg); return 2; }
    lua_rawset(L, -3);
  }
  push_metadata(L, f);
  oe_st_close(f);
  return 2;
}

/* st_header(path) -> {name = {dtype=, shape=, data_offsets=, loads_as=}}, metadata | nil, msg */
static int st_header(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  oe_st_file *f = open_file(L, path);
  if (!f) return 2;
  lua_createtable(L, 0, (int)f->n);
  for (size_t i = 0; i < f->n; i++) {
    const oe_st_entry *t = &f->entries[i];
    lua_pushlstring(L, t->name, t->name_len);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, oe_st_dtype_name(t->dtype));
    lua_setfield(L, -2, "dtype");
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) { lua_pushinteger(L, t->shape[d]); lua_rawseti(L, -2, d + 1); }
    lua_setfield(L, -2, "shape");
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, (lua_Integer)t->begin); lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)t->end); lua_rawseti(L, -2, 2);
    lua_setfield(L, -2, "data_offsets");
    oe_dtype dt;
    if (oe_st_load_dtype(t->dtype, &dt)) { lua_pushstring(L, oe_dtype_name(dt)); lua_setfield(L, -2, "loads_as"); }
    lua_rawset(L, -3);
  }
  push_metadata(L, f);
  oe_st_close(f);
  return 2;
}

/* st_save(path, tensors, metadata, {dtype = "float16"|"bfloat16"|"float32"}) -> true | nil, msg */
static int st_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int has_meta = !lua_isnoneornil(L, 3);
  if (has_meta && lua_type(L, 3) != LUA_TTABLE)
    oe_lua_fail(L, "st_save", "metadata must be a table of strings, got %s", luaL_typename(L, 3));
  oe_st_dtype float_as = OE_ST_F32;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    if (lua_getfield(L, 4, "dtype") != LUA_TNIL) {
      const char *d = lua_tostring(L, -1);
      if (!d) oe_lua_fail(L, "st_save", "option dtype must be a string, got %s", luaL_typename(L, -1));
      if (!strcmp(d, "float16") || !strcmp(d, "half") || !strcmp(d, "F16")) float_as = OE_ST_F16;
      else if (!strcmp(d, "bfloat16") || !strcmp(d, "BF16")) float_as = OE_ST_BF16;
      else if (!strcmp(d, "float32") || !strcmp(d, "float") || !strcmp(d, "F32")) float_as = OE_ST_F32;
      else oe_lua_fail(L, "st_save", "option dtype must be \"float16\", \"bfloat16\" or \"float32\", got \"%s\"", d);
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 3);
  /* count, check and collect the tensors */
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      oe_lua_fail(L, "st_save", "tensor names must be strings, got a %s key", luaL_typename(L, -2));
    oe_tensor *t = luaL_testudata(L, -1, OE_TENSOR_MT);
    char kb[200];
    if (!t) oe_lua_fail(L, "st_save", "value for '%s' must be a tensor, got %s", shown_at(L, -2, kb, sizeof kb), luaL_typename(L, -1));
    if (!t->storage) oe_lua_fail(L, "st_save", "value for '%s' is a released tensor", shown_at(L, -2, kb, sizeof kb));
    n++;
    lua_pop(L, 1);
  }
  oe_st_item *items = lua_newuserdatauv(L, (n ? n : 1) * sizeof *items, 0); /* index 4 */
  size_t k = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    items[k].name = lua_tolstring(L, -2, &items[k].name_len); /* key is a string: no conversion in place */
    items[k].t = lua_touserdata(L, -1);
    k++;
    lua_pop(L, 1);
  }
  size_t nmeta = 0;
  if (has_meta) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      if (lua_type(L, -2) != LUA_TSTRING)
        oe_lua_fail(L, "st_save", "metadata keys must be strings, got a %s key", luaL_typename(L, -2));
      if (lua_type(L, -1) != LUA_TSTRING)
        oe_lua_fail(L, "st_save", "metadata value for '%s' must be a string, got %s", shown_at(L, -2, (char[200]){0}, 200), luaL_typename(L, -1));
      nmeta++;
      lua_pop(L, 1);
    }
  }
  size_t m1 = nmeta ? nmeta : 1;
  char *blk = lua_newuserdatauv(L, m1 * (2 * sizeof(const char *) + 2 * sizeof(size_t)), 0); /* index 5 */
  const char **mk = (const char **)blk, **mv = mk + m1;
  size_t *mkl = (size_t *)(mv + m1), *mvl = mkl + m1;
  if (has_meta) {
    size_t j = 0;
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      mk[j] = lua_tolstring(L, -2, &mkl[j]);
      mv[j] = lua_tolstring(L, -1, &mvl[j]);
      j++;
      lua_pop(L, 1);
    }
  }
  oe_err e;
  int rc = oe_st_save(path, n, items, has_meta, nmeta, mk, mkl, mv, mvl, float_as, &e);
  if (rc == OE_EINVAL) return luaL_error(L, "st_save: %s", e.msg);
  if (rc != OE_OK) { lua_pushnil(L); lua_pushstring(L, e.msg); return 2; }
  lua_pushboolean(L, 1);
  return 1;
}

/* f16/bf16 bit conversions, exposed for tests and tools:
 * st_f16_bits(x) / st_bf16_bits(x) -> integer; st_f16_value(bits) / st_bf16_value(bits) -> number */
static int st_f16_bits(lua_State *L) { lua_pushinteger(L, oe_f32_to_f16((float)luaL_checknumber(L, 1))); return 1; }
static int st_bf16_bits(lua_State *L) { lua_pushinteger(L, oe_f32_to_bf16((float)luaL_checknumber(L, 1))); return 1; }
static int st_f16_value(lua_State *L) { lua_pushnumber(L, oe_f16_to_f32((uint16_t)luaL_checkinteger(L, 1))); return 1; }
static int st_bf16_value(lua_State *L) { lua_pushnumber(L, oe_bf16_to_f32((uint16_t)luaL_checkinteger(L, 1))); return 1; }

void oe_bind_safetensors(lua_State *L) {
  if (luaL_newmetatable(L, ST_FILE_MT)) {
    lua_pushcfunction(L, stfile_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    {"st_load", st_load}, {"st_load_names", st_load_names}, {"st_header", st_header}, {"st_save", st_save},
    {"st_f16_bits", st_f16_bits}, {"st_bf16_bits", st_bf16_bits}, {"st_f16_value", st_f16_value},
    {"st_bf16_value", st_bf16_value}, {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
}
