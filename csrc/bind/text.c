/* bind/text.c: tokenizers (WordPiece) for Lua; functions wordpiece_* in the
 * core table, wrapped by lua/oneencoder/text.lua. Bad vocabulary files give
 * nil, message; wrong arguments raise. Id lists that could outlive a Lua error
 * live in GC'd boxes. */
#include <stdlib.h>
#include <string.h>
#include "../text/wordpiece.h"
#include "bind.h"

#define WP_MT "oe.WordPiece"
#define IDS_MT "oe.WordPiece.ids"

typedef struct { oe_wordpiece *wp; } wp_box;

static int wp_gc(lua_State *L) {
  wp_box *b = luaL_checkudata(L, 1, WP_MT);
  oe_wordpiece_free(b->wp);
  b->wp = NULL;
  return 0;
}

static const oe_wordpiece *check_wp(lua_State *L, int idx, const char *fn) {
  wp_box *b = luaL_testudata(L, idx, WP_MT);
  if (!b || !b->wp) oe_lua_fail(L, fn, "argument %d must be a WordPiece tokenizer", idx);
  return b->wp;
}

static int ids_gc(lua_State *L) {
  oe_wp_ids_free(luaL_checkudata(L, 1, IDS_MT));
  return 0;
}

static oe_wp_ids *push_ids_box(lua_State *L) {
  oe_wp_ids *v = lua_newuserdatauv(L, sizeof *v, 0);
  memset(v, 0, sizeof *v);
  luaL_setmetatable(L, IDS_MT);
  return v;
}

/* boolean option k of the table at idx: -1 when absent */
static int opt_flag(lua_State *L, int idx, const char *k, const char *fn) {
  if (lua_type(L, idx) != LUA_TTABLE) return -1;
  int t = lua_getfield(L, idx, k), v = -1;
  if (t == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (t != LUA_TNIL) oe_lua_fail(L, fn, "option '%s' must be a boolean, got %s", k, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static lua_Integer opt_integer(lua_State *L, int idx, const char *k, lua_Integer def, const char *fn) {
  if (lua_type(L, idx) != LUA_TTABLE) return def;
  lua_Integer v = def;
  if (lua_getfield(L, idx, k) != LUA_TNIL) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok) oe_lua_fail(L, fn, "option '%s' must be an integer, got %s", k, luaL_typename(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

/* wordpiece_load(path, opts) -> tokenizer | nil, msg */
static int l_load(lua_State *L) {
  const char *fn = "text.WordPiece";
  const char *path = luaL_checkstring(L, 1);
  oe_wordpiece_opts o;
  oe_wordpiece_opts_default(&o);
  o.lowercase = opt_flag(L, 2, "lowercase", fn);
  o.strip_accents = opt_flag(L, 2, "strip_accents", fn);
  o.tokenize_chinese_chars = opt_flag(L, 2, "tokenize_chinese_chars", fn);
  o.final_sigma = opt_flag(L, 2, "final_sigma", fn);
  o.split_special_tokens = opt_flag(L, 2, "split_special_tokens", fn);
  lua_Integer mc = opt_integer(L, 2, "max_chars_per_word", -1, fn);
  if (mc != -1 && (mc < 1 || mc > OE_WP_MAX_WORD_CHARS))
    oe_lua_fail(L, fn, "option 'max_chars_per_word' must be 1 .. %d, got %lld", OE_WP_MAX_WORD_CHARS, (long long)mc);
  o.max_chars_per_word = (int)mc;
  wp_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->wp = NULL;
  luaL_setmetatable(L, WP_MT);
  oe_err e;
  if (oe_wordpiece_load(path, &o, &b->wp, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", fn, e.msg);
    return 2;
  }
  return 1;
}

/* wordpiece_info(tok) -> {vocab_size, pad_id, unk_id, cls_id, sep_id, mask_id, options = {...}} */
static int l_info(lua_State *L) {
  const oe_wordpiece *wp = check_wp(L, 1, "text.WordPiece");
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, oe_wordpiece_vocab_size(wp));
  lua_setfield(L, -2, "vocab_size");
  static const char *const names[5] = {"pad", "unk", "cls", "sep", "mask"};
  lua_createtable(L, 0, 5);
  for (int k = 0; k < 5; k++) {
    int32_t id = oe_wordpiece_special(wp, (oe_wp_special)k);
    if (id >= 0) {
      lua_pushinteger(L, id);
      lua_setfield(L, -2, names[k]);
    }
  }
  lua_setfield(L, -2, "special_ids");
  oe_wordpiece_opts o;
  oe_wordpiece_get_opts(wp, &o);
  lua_createtable(L, 0, 6);
  lua_pushboolean(L, o.lowercase);
  lua_setfield(L, -2, "lowercase");
  lua_pushboolean(L, o.strip_accents);
  lua_setfield(L, -2, "strip_accents");
  lua_pushboolean(L, o.tokenize_chinese_chars);
  lua_setfield(L, -2, "tokenize_chinese_chars");
  lua_pushboolean(L, o.final_sigma);
  lua_setfield(L, -2, "final_sigma");
  lua_pushboolean(L, o.split_special_tokens);
  lua_setfield(L, -2, "split_special_tokens");
  lua_pushinteger(L, o.max_chars_per_word);
  lua_setfield(L, -2, "max_chars_per_word");
  lua_setfield(L, -2, "options");
  return 1;
}

static size_t opt_max_ids(lua_State *L, int idx, const char *fn) {
  if (lua_isnoneornil(L, idx)) return SIZE_MAX;
  lua_Integer m = luaL_checkinteger(L, idx);
  if (m < 0) oe_lua_fail(L, fn, "max_tokens must be >= 0, got %lld", (long long)m);
  return (size_t)m;
}

static oe_wp_ids *encode_one(lua_State *L, const oe_wordpiece *wp, int text_idx, size_t max_ids, const char *fn) {
  size_t len;
  const char *s = lua_tolstring(L, text_idx, &len);
  if (!s || lua_type(L, text_idx) != LUA_TSTRING)
    oe_lua_fail(L, fn, "text must be a string, got %s", luaL_typename(L, text_idx));
  oe_wp_ids *v = push_ids_box(L);
  oe_err e;
  if (oe_wordpiece_encode(wp, s, len, max_ids, v, &e) != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
  return v;
}

/* wordpiece_ids(tok, text, max_tokens) -> {id, ...} (0-based ids, no specials) */
static int l_ids(lua_State *L) {
  const char *fn = "WordPiece:ids";
  const oe_wordpiece *wp = check_wp(L, 1, fn);
  oe_wp_ids *v = encode_one(L, wp, 2, opt_max_ids(L, 3, fn), fn);
  lua_createtable(L, (int)(v->n < INT32_MAX ? v->n : INT32_MAX), 0);
  for (size_t i = 0; i < v->n; i++) {
    lua_pushinteger(L, v->ids[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* wordpiece_tokens(tok, text, max_tokens) -> {token, ...} */
static int l_tokens(lua_State *L) {
  const char *fn = "WordPiece:tokenize";
  const oe_wordpiece *wp = check_wp(L, 1, fn);
  oe_wp_ids *v = encode_one(L, wp, 2, opt_max_ids(L, 3, fn), fn);
  lua_createtable(L, (int)(v->n < INT32_MAX ? v->n : INT32_MAX), 0);
  for (size_t i = 0; i < v->n; i++) {
    size_t tl;
    const char *t = oe_wordpiece_token_of(wp, v->ids[i], &tl);
    lua_pushlstring(L, t, tl);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_id_of(lua_State *L) {
  const oe_wordpiece *wp = check_wp(L, 1, "WordPiece:id_of");
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  int32_t id = oe_wordpiece_id_of(wp, s, len);
  if (id < 0) lua_pushnil(L);
  else lua_pushinteger(L, id);
  return 1;
}

static int l_token_of(lua_State *L) {
  const oe_wordpiece *wp = check_wp(L, 1, "WordPiece:token_of");
  lua_Integer id = luaL_checkinteger(L, 2);
  size_t len;
  const char *t = id >= 0 && id <= INT32_MAX ? oe_wordpiece_token_of(wp, (int32_t)id, &len) : NULL;
  if (!t) lua_pushnil(L);
  else lua_pushlstring(L, t, len);
  return 1;
}

/* wordpiece_encode(tok, texts, max_length, add_special_tokens, pad_to)
 *   pad_to: 0 the batch's longest, -1 no padding (one text), else that length
 * -> input_ids (B, L) int64, attention_mask (B, L) int64, token_type_ids
 *    (B, L) int64 zeros, lengths {n1, ...} (real lengths with specials) */
static int l_encode(lua_State *L) {
  const char *fn = "WordPiece:encode";
  const oe_wordpiece *wp = check_wp(L, 1, fn);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer max_length = luaL_checkinteger(L, 3);
  int specials = lua_toboolean(L, 4);
  lua_Integer pad_to = luaL_checkinteger(L, 5);
  lua_Integer nb = (lua_Integer)lua_rawlen(L, 2);
  if (nb < 1) oe_lua_fail(L, fn, "texts must be a non-empty list of strings");
  if (nb > INT32_MAX) oe_lua_fail(L, fn, "too many texts");
  if (max_length < (specials ? 2 : 1) || max_length > INT32_MAX)
    oe_lua_fail(L, fn, "max_length must be at least %d (room for [CLS] and [SEP]), got %lld", specials ? 2 : 1,
                (long long)max_length);
  if (pad_to > 0 && pad_to < max_length) max_length = pad_to; /* cannot hold more than the padded length */
  size_t budget = (size_t)(max_length - (specials ? 2 : 0));
  for (lua_Integer b = 1; b <= nb; b++)
    if (lua_rawgeti(L, 2, b) != LUA_TSTRING) oe_lua_fail(L, fn, "texts[%lld] must be a string, got %s", (long long)b, luaL_typename(L, -1));
    else lua_pop(L, 1);
  /* one id list for all texts; starts[b] is where text b begins */
  oe_wp_ids *all = push_ids_box(L);
  size_t *starts = lua_newuserdatauv(L, (size_t)(nb + 1) * sizeof *starts, 0);
  for (lua_Integer b = 0; b < nb; b++) {
    lua_rawgeti(L, 2, b + 1);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    starts[b] = all->n;
    oe_err e;
    int rc = oe_wordpiece_encode(wp, s, len, budget, all, &e);
    lua_pop(L, 1);
    if (rc != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
  }
  starts[nb] = all->n;
  size_t longest = 0;
  for (lua_Integer b = 0; b < nb; b++)
    if (starts[b + 1] - starts[b] > longest) longest = starts[b + 1] - starts[b];
  longest += specials ? 2 : 0;
  int64_t len_out = pad_to > 0 ? pad_to : (int64_t)longest;
  if (pad_to < 0 && nb > 1) oe_lua_fail(L, fn, "padding = false needs a single text, got %lld", (long long)nb);
  int64_t shape[2] = {nb, len_out};
  oe_tensor *ids_t = oe_lua_push_uninit(L, fn, OE_I64, 2, shape);
  oe_tensor *mask_t = oe_lua_push_uninit(L, fn, OE_I64, 2, shape);
  oe_lua_push_new(L, fn, OE_I64, 2, shape); /* token_type_ids: zeros */
  lua_createtable(L, (int)nb, 0);
  int64_t *ids = oe_data(ids_t), *mask = oe_data(mask_t);
  int64_t pad = oe_wordpiece_special(wp, OE_WP_PAD), cls = oe_wordpiece_special(wp, OE_WP_CLS),
          sep = oe_wordpiece_special(wp, OE_WP_SEP);
  const int32_t *src = all->ids;
  for (lua_Integer b = 0; b < nb; b++) {
    int64_t *row = ids + b * len_out, *mrow = mask + b * len_out;
    int64_t k = 0;
    if (specials) row[k++] = cls;
    for (size_t i = starts[b]; i < starts[b + 1]; i++) row[k++] = src[i];
    if (specials) row[k++] = sep;
    lua_pushinteger(L, k);
    lua_rawseti(L, -2, b + 1);
    for (int64_t j = 0; j < len_out; j++) mrow[j] = j < k;
    for (; k < len_out; k++) row[k] = pad;
  }
  return 4;
}

static const luaL_Reg fns[] = {
    {"wordpiece_load", l_load},         {"wordpiece_info", l_info},         {"wordpiece_ids", l_ids},
    {"wordpiece_tokens", l_tokens},     {"wordpiece_id_of", l_id_of},       {"wordpiece_token_of", l_token_of},
    {"wordpiece_encode", l_encode},     {NULL, NULL},
};

void oe_bind_text(lua_State *L) {
  luaL_newmetatable(L, WP_MT);
  lua_pushcfunction(L, wp_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, IDS_MT);
  lua_pushcfunction(L, ids_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
