/* bind/glove.c: GloVe tables (csrc/text/glove.h) for Lua; functions glove_* in the core
 * table, wrapped by lua/oneencoder/encoders/glove.lua. A bad or changed table file gives
 * nil, message naming the file; wrong arguments raise. */
#include <stdlib.h>
#include <string.h>
#include "../text/glove.h"
#include "bind.h"

#define GLOVE_MT "oe.GloveTable"

typedef struct { oe_glove *g; } glove_box;

static int box_gc(lua_State *L) {
  glove_box *b = luaL_checkudata(L, 1, GLOVE_MT);
  oe_glove_close(b->g);
  b->g = NULL;
  return 0;
}

static oe_glove *check_table(lua_State *L, int idx, const char *fn) {
  glove_box *b = luaL_testudata(L, idx, GLOVE_MT);
  if (!b || !b->g) oe_lua_fail(L, fn, "argument %d must be an open GloVe table", idx);
  return b->g;
}

/* glove_open(path) -> table | nil, message */
static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  glove_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->g = NULL;
  luaL_setmetatable(L, GLOVE_MT);
  oe_err e;
  if (oe_glove_open(&b->g, path, &e) != OE_OK) {
    luaL_pushfail(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

/* glove_close(table): releases the mapping now (idempotent) */
static int l_close(lua_State *L) {
  glove_box *b = luaL_checkudata(L, 1, GLOVE_MT);
  oe_glove_close(b->g);
  b->g = NULL;
  return 0;
}

/* glove_info(table) -> {path, words, dim, unk} */
static int l_info(lua_State *L) {
  oe_glove *g = check_table(L, 1, "glove_info");
  lua_createtable(L, 0, 4);
  lua_pushstring(L, oe_glove_path(g));
  lua_setfield(L, -2, "path");
  lua_pushinteger(L, oe_glove_size(g));
  lua_setfield(L, -2, "words");
  lua_pushinteger(L, oe_glove_dim(g));
  lua_setfield(L, -2, "dim");
  lua_pushboolean(L, oe_glove_has_unk(g));
  lua_setfield(L, -2, "unk");
  return 1;
}

/* glove_find(table, word) -> row (0-based) | nil */
static int l_find(lua_State *L) {
  oe_glove *g = check_table(L, 1, "glove_find");
  size_t n;
  const char *w = luaL_checklstring(L, 2, &n);
  int64_t r = oe_glove_find(g, w, n);
  if (r < 0) lua_pushnil(L);
  else lua_pushinteger(L, r);
  return 1;
}

/* glove_word(table, row) -> word | nil */
static int l_word(lua_State *L) {
  oe_glove *g = check_table(L, 1, "glove_word");
  size_t n;
  const char *w = oe_glove_word(g, luaL_checkinteger(L, 2), &n);
  if (!w) lua_pushnil(L);
  else lua_pushlstring(L, w, n);
  return 1;
}

/* glove_vector(table, row) -> float32 (D) (row -1: the out-of-vocabulary vector) | nil, message */
static int l_vector(lua_State *L) {
  oe_glove *g = check_table(L, 1, "glove_vector");
  lua_Integer row = luaL_checkinteger(L, 2);
  if (row < -1 || row >= oe_glove_size(g))
    oe_lua_fail(L, "glove_vector", "row %lld is outside -1..%lld", (long long)row, (long long)oe_glove_size(g) - 1);
  oe_err e;
  if (oe_glove_check(g, &e) != OE_OK) {
    luaL_pushfail(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  int64_t shape[1] = { oe_glove_dim(g) };
  oe_tensor *t = oe_lua_push_uninit(L, "glove_vector", OE_F32, 1, shape);
  if (oe_glove_row(g, row, oe_f32(t), &e) != OE_OK) {
    luaL_pushfail(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

/* glove_verify(table) -> true | nil, message */
static int l_verify(lua_State *L) {
  oe_glove *g = check_table(L, 1, "glove_verify");
  oe_err e;
  if (oe_glove_verify(g, &e) != OE_OK) {
    luaL_pushfail(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int tokens_gc(lua_State *L) {
  oe_glove_tokens_free(lua_touserdata(L, 1));
  return 0;
}

static oe_glove_tokens *push_tokens_box(lua_State *L) {
  oe_glove_tokens *t = lua_newuserdatauv(L, sizeof *t, 0);
  memset(t, 0, sizeof *t);
  if (luaL_newmetatable(L, "oe.GloveTokens")) {
    lua_pushcfunction(L, tokens_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return t;
}

/* glove_tokenize(table | nil, text) -> {token strings}, {rows, 0-based, -1 out of vocabulary} */
static int l_tokenize(lua_State *L) {
  const char *fn = "glove_tokenize";
  oe_glove *g = lua_isnil(L, 1) ? NULL : check_table(L, 1, fn);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  oe_glove_tokens *t = push_tokens_box(L);
  oe_err e;
  if (oe_glove_tokenize(g, s, n, t, &e) != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  lua_createtable(L, (int)(t->n < 1u << 30 ? t->n : 0), 0);
  lua_createtable(L, (int)(t->n < 1u << 30 ? t->n : 0), 0);
  for (size_t i = 0; i < t->n; i++) {
    lua_pushlstring(L, t->text + t->tok[i].off, t->tok[i].len);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
    lua_pushinteger(L, t->tok[i].row);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 2;
}

/* glove_encode(table, texts, max_len, skip_oov) -> features (B, L, D), lengths, stats | nil, message
 * stats: {tokens = {...}, oov = {...}, truncated = {...}} per text */
static int l_encode(lua_State *L) {
  const char *fn = "glove_encode";
  oe_glove *g = check_table(L, 1, fn);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer max_len = luaL_checkinteger(L, 3);
  int skip = lua_toboolean(L, 4);
  if (max_len < 1) oe_lua_fail(L, fn, "max_len must be >= 1, got %lld", (long long)max_len);
  lua_Integer B = luaL_len(L, 2);
  if (B < 1) oe_lua_fail(L, fn, "empty batch");
  if ((lua_Unsigned)B > (SIZE_MAX / 4) / (sizeof(char *) + sizeof(size_t) + sizeof(oe_glove_item_stats)))
    oe_lua_fail(L, fn, "batch too large");
  /* scratch in a userdata: freed by the GC if anything below raises */
  size_t nb = (size_t)B * (sizeof(char *) + sizeof(size_t) + sizeof(oe_glove_item_stats));
  char *scratch = lua_newuserdatauv(L, nb, 0);
  int scratch_idx = lua_gettop(L);
  oe_glove_item_stats *stats = (oe_glove_item_stats *)scratch;
  const char **texts = (const char **)(scratch + (size_t)B * sizeof *stats);
  size_t *lens = (size_t *)(scratch + (size_t)B * (sizeof *stats + sizeof(char *)));
  for (lua_Integer i = 1; i <= B; i++) {
    if (lua_rawgeti(L, 2, i) != LUA_TSTRING)
      oe_lua_fail(L, fn, "item %lld is a %s, expected a string", (long long)i, luaL_typename(L, -1));
    texts[i - 1] = lua_tolstring(L, -1, &lens[i - 1]); /* anchored by the table at 2 */
    lua_pop(L, 1);
  }
  oe_tensor *out = oe_lua_push_empty(L);
  oe_err e;
  int rc = oe_glove_encode(g, texts, lens, (size_t)B, max_len, skip, out, stats, &e);
  if (rc == OE_ENOMEM) return oe_lua_fail(L, fn, "%s", e.msg);
  if (rc != OE_OK) {
    luaL_pushfail(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_createtable(L, (int)B, 0);
  lua_createtable(L, 0, 3);
  const char *names[3] = { "tokens", "oov", "truncated" };
  for (int f = 0; f < 3; f++) {
    lua_createtable(L, (int)B, 0);
    for (lua_Integer i = 0; i < B; i++) {
      const oe_glove_item_stats *s = &stats[i];
      lua_pushinteger(L, f == 0 ? s->tokens : f == 1 ? s->oov : s->truncated);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, names[f]);
  }
  for (lua_Integer i = 0; i < B; i++) {
    lua_pushinteger(L, stats[i].length);
    lua_rawseti(L, -3, i + 1);
  }
  (void)scratch_idx;
  return 3;
}

static const luaL_Reg fns[] = {
  { "glove_open", l_open }, { "glove_close", l_close }, { "glove_info", l_info }, { "glove_find", l_find },
  { "glove_word", l_word }, { "glove_vector", l_vector }, { "glove_verify", l_verify },
  { "glove_tokenize", l_tokenize }, { "glove_encode", l_encode }, { NULL, NULL },
};

void oe_bind_glove(lua_State *L) {
  luaL_newmetatable(L, GLOVE_MT);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
