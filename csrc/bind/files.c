/* bind/files.c: whole-file reading and crash-safe writing for Lua code.
 *   core.read_file(path, max_bytes)   -> bytes | nil, "<path>: reason"
 *       regular files only (a pipe, device or folder is refused without
 *       blocking); max_bytes defaults to 1 GiB
 *   core.write_file_atomic(path, bytes) -> true | nil, "<path>: reason"
 *       through core/atomic_write: "<path>.tmp.<pid>.<8 hex>", fsync, rename,
 *       folder fsync; the temporary file is removed on every failure
 *   core.atomic_tmp_pattern           Lua pattern matching a file name left
 *       by a write killed before its rename
 *   core.escape(s)                    printable form of bytes for messages */
#include "bind.h"
#include "../core/atomic_write.h"
#include "../core/util.h"
#include <stdlib.h>

#define FILEBUF_MT "oe.FileBuffer"
typedef struct { uint8_t *p; } filebuf; /* freed by __gc if a Lua error interrupts */

static int filebuf_gc(lua_State *L) {
  filebuf *b = luaL_checkudata(L, 1, FILEBUF_MT);
  free(b->p);
  b->p = NULL;
  return 0;
}

static int f_read_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, (lua_Integer)1 << 30);
  if (max < 0) return oe_lua_fail(L, "read_file", "max_bytes must be >= 0, got %lld", (long long)max);
  filebuf *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  luaL_setmetatable(L, FILEBUF_MT);
  size_t len;
  oe_err e;
  if (oe_read_regular_file(path, (size_t)max, &b->p, &len, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, e.msg);
    return 2;
  }
  lua_pushlstring(L, (const char *)b->p, len);
  free(b->p);
  b->p = NULL;
  return 1;
}

static int f_write_file_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t n;
  const char *bytes = luaL_checklstring(L, 2, &n);
  oe_err e;
  if (oe_atomic_write_file(path, bytes, n, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, e.msg);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int f_escape(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char buf[1024];
  lua_pushstring(L, oe_escape(s, n, buf, sizeof buf));
  return 1;
}

void oe_bind_files(lua_State *L) {
  if (luaL_newmetatable(L, FILEBUF_MT)) {
    lua_pushcfunction(L, filebuf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    {"read_file", f_read_file}, {"write_file_atomic", f_write_file_atomic}, {"escape", f_escape}, {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
  lua_pushstring(L, OE_ATOMIC_TMP_PATTERN);
  lua_setfield(L, -2, "atomic_tmp_pattern");
}
