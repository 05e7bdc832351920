/* encoders.c (bind): kernels of the built-in encoders (lua/oneencoder/encoders/).
 *   core.enc_patchify(x (B, C, H, W), P, cls) -> (B, [1 +] (H/P)(W/P), C*P*P)
 *   core.enc_u8_to_chw(x (B, H, W, cin) uint8, cout, mean, std) -> (B, cout, H, W) float32
 *   core.enc_gaussian(seed, tag, shape, scale) -> float32 tensor of seeded normals
 *   core.enc_pos1d(L, D, scale) -> (L, D); core.enc_pos2d(gh, gw, D, scale) -> (gh*gw, D)
 *   core.enc_add_rows_(t (B, Lt, D), first, pe (N, D), lengths|nil) -> t (in place)
 *   core.enc_tokenize(text[, max]) -> {tokens}, count
 *   core.enc_word_vector(word, seed, D, ng_min, ng_max) -> (D)
 *   core.enc_words(texts, opts) -> (B, L, D), lengths
 *   core.enc_stack_frames({mel (M, F_b)}, k, normalize) -> (B, max ceil(F_b/k), k*M), lengths
 * Every argument is checked before use; wrong arguments raise naming the function. */
#include "bind.h"
#include "../ops/encoders.h"
#include <stdint.h>
#include <string.h>

#define MAX_DIM (INT64_C(1) << 24)

static int64_t check_int(lua_State *L, int idx, const char *fn, const char *arg, int64_t lo, int64_t hi) {
  int ok;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok) oe_lua_fail(L, fn, "argument '%s' must be an integer, got %s", arg, luaL_typename(L, idx));
  if (v < lo || v > hi) oe_lua_fail(L, fn, "argument '%s' = %lld is outside %lld..%lld", arg, (long long)v, (long long)lo, (long long)hi);
  return (int64_t)v;
}

static float check_num(lua_State *L, int idx, const char *fn, const char *arg) {
  if (lua_type(L, idx) != LUA_TNUMBER) oe_lua_fail(L, fn, "argument '%s' must be a number, got %s", arg, luaL_typename(L, idx));
  return (float)lua_tonumber(L, idx);
}

static uint64_t check_seed(lua_State *L, int idx, const char *fn) {
  int ok;
  lua_Integer v = lua_tointegerx(L, idx, &ok);
  if (!ok) oe_lua_fail(L, fn, "seed must be an integer, got %s", luaL_typename(L, idx));
  return (uint64_t)v;
}

/* scratch memory owned by the Lua GC (freed even when an error unwinds) */
static void *scratch(lua_State *L, const char *fn, size_t n) {
  if (n == 0) n = 1;
  void *p = lua_newuserdatauv(L, n, 0);
  if (!p) oe_lua_fail(L, fn, "out of memory");
  return p;
}

static int l_patchify(lua_State *L) {
  const char *fn = "encoders.patchify";
  oe_tensor *x = oe_lua_check(L, 1, fn, "x");
  oe_lua_check_dtype(L, x, OE_F32, fn, "x");
  char buf[128];
  if (x->ndim != 4) oe_lua_fail(L, fn, "x must be (B, C, H, W), got %s", oe_lua_shape_str(x, buf, sizeof buf));
  int64_t P = check_int(L, 2, fn, "P", 1, 1 << 16);
  int cls = lua_toboolean(L, 3);
  int64_t B = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
  if (B < 1 || C < 1) oe_lua_fail(L, fn, "x %s is empty", oe_lua_shape_str(x, buf, sizeof buf));
  if (H < P || W < P || H % P || W % P)
    oe_lua_fail(L, fn, "image size %lldx%lld is not a multiple of the patch size %lld", (long long)H, (long long)W, (long long)P);
  int64_t first = cls ? 1 : 0, Lt = first + (H / P) * (W / P);
  int64_t shape[3] = {B, Lt, C * P * P};
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 3, shape);
  oe_enc_patchify(oe_f32(x), B, C, H, W, P, oe_f32(out), first, cls);
  return 1;
}

static int l_u8_to_chw(lua_State *L) {
  const char *fn = "encoders.u8_to_chw";
  oe_tensor *x = oe_lua_check(L, 1, fn, "x");
  oe_lua_check_dtype(L, x, OE_U8, fn, "x");
  char buf[128];
  if (x->ndim != 4 || (x->shape[3] != 1 && x->shape[3] != 3))
    oe_lua_fail(L, fn, "x must be (B, H, W, 1) or (B, H, W, 3), got %s", oe_lua_shape_str(x, buf, sizeof buf));
  int64_t cout = check_int(L, 2, fn, "cout", 1, 3);
  if (cout == 2) oe_lua_fail(L, fn, "cout must be 1 or 3");
  float mean[3], std[3];
  for (int i = 0; i < 2; i++) {
    int idx = 3 + i;
    if (lua_type(L, idx) != LUA_TTABLE) oe_lua_fail(L, fn, "argument '%s' must be a table of %lld numbers", i ? "std" : "mean", (long long)cout);
    for (int64_t c = 0; c < cout; c++) {
      lua_geti(L, idx, c + 1);
      if (lua_type(L, -1) != LUA_TNUMBER) oe_lua_fail(L, fn, "%s[%lld] must be a number", i ? "std" : "mean", (long long)c + 1);
      (i ? std : mean)[c] = (float)lua_tonumber(L, -1);
      lua_pop(L, 1);
      if (i && std[c] == 0.0f) oe_lua_fail(L, fn, "std[%lld] is 0", (long long)c + 1);
    }
  }
  int64_t shape[4] = {x->shape[0], cout, x->shape[1], x->shape[2]};
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 4, shape);
  oe_enc_u8_to_chw(oe_data(x), x->shape[0], x->shape[1], x->shape[2], x->shape[3], cout, mean, std, oe_f32(out));
  return 1;
}

static int l_gaussian(lua_State *L) {
  const char *fn = "encoders.gaussian";
  uint64_t seed = check_seed(L, 1, fn);
  size_t tn;
  const char *tag = luaL_checklstring(L, 2, &tn);
  int64_t shape[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 3, shape, fn, "shape");
  for (int i = 0; i < nd; i++)
    if (shape[i] < 0 || shape[i] > MAX_DIM * 16) oe_lua_fail(L, fn, "size %lld out of range", (long long)shape[i]);
  float scale = lua_isnoneornil(L, 4) ? 1.0f : check_num(L, 4, fn, "scale");
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, nd, shape);
  oe_enc_gaussian(oe_enc_key(seed, oe_enc_fnv1a64(tag, tn)), oe_f32(out), oe_numel(out), scale);
  return 1;
}

static int l_pos1d(lua_State *L) {
  const char *fn = "encoders.pos1d";
  int64_t Lp = check_int(L, 1, fn, "L", 0, MAX_DIM);
  int64_t D = check_int(L, 2, fn, "D", 2, MAX_DIM);
  if (D % 2) oe_lua_fail(L, fn, "D = %lld must be even", (long long)D);
  float scale = lua_isnoneornil(L, 3) ? 1.0f : check_num(L, 3, fn, "scale");
  if (Lp * D > MAX_DIM * 16) oe_lua_fail(L, fn, "table too large");
  int64_t shape[2] = {Lp, D};
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 2, shape);
  oe_enc_pos1d_table(oe_f32(out), Lp, D, scale);
  return 1;
}

static int l_pos2d(lua_State *L) {
  const char *fn = "encoders.pos2d";
  int64_t gh = check_int(L, 1, fn, "gh", 1, MAX_DIM), gw = check_int(L, 2, fn, "gw", 1, MAX_DIM);
  int64_t D = check_int(L, 3, fn, "D", 4, MAX_DIM);
  if (D % 4) oe_lua_fail(L, fn, "D = %lld must be a multiple of 4", (long long)D);
  float scale = lua_isnoneornil(L, 4) ? 1.0f : check_num(L, 4, fn, "scale");
  if (gh * gw > MAX_DIM || gh * gw * D > MAX_DIM * 16) oe_lua_fail(L, fn, "table too large");
  int64_t shape[2] = {gh * gw, D};
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 2, shape);
  oe_enc_pos2d_table(oe_f32(out), gh, gw, D, scale);
  return 1;
}

/* reads a Lua list of B integers in lo..hi at idx into a scratch array (pushed) */
static int64_t *int_list(lua_State *L, int idx, int64_t B, const char *fn, const char *arg, int64_t lo, int64_t hi) {
  if (lua_type(L, idx) != LUA_TTABLE) oe_lua_fail(L, fn, "argument '%s' must be a table of %lld integers", arg, (long long)B);
  if ((int64_t)luaL_len(L, idx) != B)
    oe_lua_fail(L, fn, "argument '%s' has %lld entries for %lld items", arg, (long long)luaL_len(L, idx), (long long)B);
  int64_t *v = scratch(L, fn, (size_t)B * sizeof(int64_t));
  for (int64_t b = 0; b < B; b++) {
    lua_geti(L, idx, b + 1);
    int ok;
    lua_Integer x = lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || x < lo || x > hi)
      oe_lua_fail(L, fn, "%s[%lld] must be an integer in %lld..%lld", arg, (long long)b + 1, (long long)lo, (long long)hi);
    v[b] = x;
  }
  return v;
}

static int l_add_rows(lua_State *L) {
  const char *fn = "encoders.add_rows_";
  oe_tensor *t = oe_lua_check(L, 1, fn, "t");
  oe_lua_check_dtype(L, t, OE_F32, fn, "t");
  char buf[128], buf2[128];
  if (t->ndim != 3) oe_lua_fail(L, fn, "t must be (B, L, D), got %s", oe_lua_shape_str(t, buf, sizeof buf));
  int64_t B = t->shape[0], Lt = t->shape[1], D = t->shape[2];
  int64_t first = check_int(L, 2, fn, "first", 0, Lt);
  oe_tensor *pe = oe_lua_check(L, 3, fn, "pe");
  oe_lua_check_dtype(L, pe, OE_F32, fn, "pe");
  if (pe->ndim != 2 || pe->shape[1] != D)
    oe_lua_fail(L, fn, "pe %s does not fit t %s", oe_lua_shape_str(pe, buf2, sizeof buf2), oe_lua_shape_str(t, buf, sizeof buf));
  int64_t *len = NULL;
  int64_t need = Lt - first;
  if (!lua_isnoneornil(L, 4)) {
    len = int_list(L, 4, B, fn, "lengths", 0, Lt - first);
    need = 0;
    for (int64_t b = 0; b < B; b++) need = len[b] > need ? len[b] : need;
  }
  if (pe->shape[0] < need) oe_lua_fail(L, fn, "pe has %lld rows, %lld needed", (long long)pe->shape[0], (long long)need);
  oe_enc_add_rows(oe_f32(t), B, Lt, D, first, oe_f32(pe), len);
  lua_pushvalue(L, 1);
  return 1;
}

static int l_tokenize(lua_State *L) {
  const char *fn = "encoders.tokenize";
  size_t n;
  if (lua_type(L, 1) != LUA_TSTRING) oe_lua_fail(L, fn, "text must be a string, got %s", luaL_typename(L, 1));
  const char *s = lua_tolstring(L, 1, &n);
  int64_t max = lua_isnoneornil(L, 2) ? (int64_t)n + 1 : check_int(L, 2, fn, "max", 0, MAX_DIM);
  if (max > (int64_t)n + 1) max = (int64_t)n + 1;
  char *out = scratch(L, fn, n + 1);
  int64_t *st = scratch(L, fn, (size_t)(max + 1) * sizeof(int64_t));
  int64_t *ln = scratch(L, fn, (size_t)(max + 1) * sizeof(int64_t));
  int64_t cnt = oe_text_tokens(s, n, out, st, ln, max);
  int64_t kept = cnt < max ? cnt : max;
  lua_createtable(L, (int)kept, 0);
  for (int64_t i = 0; i < kept; i++) {
    lua_pushlstring(L, out + st[i], (size_t)ln[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, cnt);
  return 2;
}

static void check_ngrams(lua_State *L, const char *fn, int64_t mn, int64_t mx) {
  if (mn == 0 && mx == 0) return;
  if (mn < 2 || mx < mn || mx > 16) oe_lua_fail(L, fn, "n-gram sizes must satisfy 2 <= min <= max <= 16, got %lld..%lld", (long long)mn, (long long)mx);
}

static int l_word_vector(lua_State *L) {
  const char *fn = "encoders.word_vector";
  size_t n;
  const char *w = luaL_checklstring(L, 1, &n);
  uint64_t seed = check_seed(L, 2, fn);
  int64_t D = check_int(L, 3, fn, "D", 1, MAX_DIM);
  int64_t mn = lua_isnoneornil(L, 4) ? 0 : check_int(L, 4, fn, "ng_min", 0, 16);
  int64_t mx = lua_isnoneornil(L, 5) ? mn : check_int(L, 5, fn, "ng_max", 0, 16);
  check_ngrams(L, fn, mn, mx);
  int64_t shape[1] = {D};
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 1, shape);
  oe_enc_word_vector(w, n, seed, (int)mn, (int)mx, oe_f32(out), D);
  return 1;
}

static int opt_field(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  return 1;
}
static int64_t opt_int(lua_State *L, int idx, const char *k, int64_t def, int64_t lo, int64_t hi, const char *fn) {
  if (!opt_field(L, idx, k)) return def;
  int64_t v = check_int(L, -1, fn, k, lo, hi);
  lua_pop(L, 1);
  return v;
}

#define EMPTY_TOKEN "[EMPTY]"

/* core.enc_words(texts, {dim, seed, max_len, ng_min, ng_max, pos, pos_scale}) -> (B, L, D), lengths */
static int l_words(lua_State *L) {
  const char *fn = "encoders.words";
  luaL_checkstack(L, 40, fn);
  if (lua_type(L, 1) != LUA_TTABLE) oe_lua_fail(L, fn, "expected a list of strings, got %s", luaL_typename(L, 1));
  luaL_checktype(L, 2, LUA_TTABLE);
  int64_t B = (int64_t)luaL_len(L, 1);
  if (B < 1) oe_lua_fail(L, fn, "empty batch (no texts)");
  int64_t D = opt_int(L, 2, "dim", 64, 1, MAX_DIM, fn);
  uint64_t seed = 0;
  if (opt_field(L, 2, "seed")) { seed = check_seed(L, -1, fn); lua_pop(L, 1); }
  int64_t max_len = opt_int(L, 2, "max_len", 32, 1, MAX_DIM, fn);
  int64_t mn = opt_int(L, 2, "ng_min", 0, 0, 16, fn), mx = opt_int(L, 2, "ng_max", mn, 0, 16, fn);
  check_ngrams(L, fn, mn, mx);
  int pos = 0;
  if (opt_field(L, 2, "pos")) { pos = lua_toboolean(L, -1); lua_pop(L, 1); }
  float pos_scale = 1.0f;
  if (opt_field(L, 2, "pos_scale")) { pos_scale = check_num(L, -1, fn, "pos_scale"); lua_pop(L, 1); }
  if (pos && D % 2) oe_lua_fail(L, fn, "positions need an even dim, got %lld", (long long)D);

  /* the strings stay referenced by the texts table for the whole call */
  const char **txt = scratch(L, fn, (size_t)B * sizeof(char *));
  size_t *tlen = scratch(L, fn, (size_t)B * sizeof(size_t));
  size_t total = 0;
  for (int64_t b = 0; b < B; b++) {
    lua_geti(L, 1, b + 1);
    if (lua_type(L, -1) != LUA_TSTRING) oe_lua_fail(L, fn, "item %lld is a %s, expected a string", (long long)b + 1, luaL_typename(L, -1));
    txt[b] = lua_tolstring(L, -1, &tlen[b]);
    lua_pop(L, 1);
    total += tlen[b];
  }
  if ((uint64_t)B * (uint64_t)max_len > (uint64_t)MAX_DIM * 16) oe_lua_fail(L, fn, "batch %lld x max_len %lld is too large", (long long)B, (long long)max_len);
  char *bytes = scratch(L, fn, total + sizeof(EMPTY_TOKEN));
  int64_t *st = scratch(L, fn, (size_t)(B * max_len) * sizeof(int64_t));
  int64_t *ln = scratch(L, fn, (size_t)(B * max_len) * sizeof(int64_t));
  int64_t *len = scratch(L, fn, (size_t)B * sizeof(int64_t));
  size_t off = 0;
  int64_t Lmax = 1, ntok = 0;
  memcpy(bytes + total, EMPTY_TOKEN, sizeof(EMPTY_TOKEN) - 1);
  for (int64_t b = 0; b < B; b++) {
    int64_t cnt = oe_text_tokens(txt[b], tlen[b], bytes + off, st + b * max_len, ln + b * max_len, max_len);
    int64_t kept = cnt < max_len ? cnt : max_len;
    for (int64_t i = 0; i < kept; i++) st[b * max_len + i] += (int64_t)off;
    /* next text's tokens start after this one's (its output never exceeds its input) */
    off += kept > 0 ? (size_t)(st[b * max_len + kept - 1] + ln[b * max_len + kept - 1]) - off : 0;
    if (kept == 0) { st[b * max_len] = (int64_t)total; ln[b * max_len] = (int64_t)sizeof(EMPTY_TOKEN) - 1; kept = 1; }
    len[b] = kept;
    if (kept > Lmax) Lmax = kept;
    ntok += kept;
  }
  /* unique tokens: open addressing on (hash, bytes) */
  int64_t cap = 16;
  while (cap < 2 * ntok) cap <<= 1;
  int64_t *slot = scratch(L, fn, (size_t)cap * sizeof(int64_t)); /* token index + 1 of the first occurrence, 0 empty */
  memset(slot, 0, (size_t)cap * sizeof(int64_t));
  int64_t *uid = scratch(L, fn, (size_t)(B * max_len) * sizeof(int64_t)); /* token -> unique number */
  int64_t *ufirst = scratch(L, fn, (size_t)ntok * sizeof(int64_t));       /* unique number -> token index */
  int64_t nu = 0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < len[b]; i++) {
      int64_t t = b * max_len + i;
      const char *w = bytes + st[t];
      uint64_t h = oe_enc_fnv1a64(w, (size_t)ln[t]);
      int64_t s = (int64_t)(h & (uint64_t)(cap - 1));
      for (;;) {
        if (slot[s] == 0) { slot[s] = t + 1; uid[t] = nu; ufirst[nu++] = t; break; }
        int64_t o = slot[s] - 1;
        if (ln[o] == ln[t] && memcmp(bytes + st[o], w, (size_t)ln[t]) == 0) { uid[t] = uid[o]; break; }
        s = (s + 1) & (cap - 1);
      }
    }
  if ((uint64_t)nu * (uint64_t)D > (uint64_t)MAX_DIM * 64) oe_lua_fail(L, fn, "too many distinct tokens for dim %lld", (long long)D);
  float *U = scratch(L, fn, (size_t)(nu * D) * sizeof(float));
  float *pe = NULL;
  if (pos) {
    pe = scratch(L, fn, (size_t)(Lmax * D) * sizeof(float));
    oe_enc_pos1d_table(pe, Lmax, D, pos_scale);
  }
  int64_t shape[3] = {B, Lmax, D};
  oe_tensor *out = oe_lua_push_new(L, fn, OE_F32, 3, shape);
  float *o = oe_f32(out);
#pragma omp parallel for schedule(dynamic, 16) if (nu * D >= 8192)
  for (int64_t u = 0; u < nu; u++) {
    int64_t t = ufirst[u];
    oe_enc_word_vector(bytes + st[t], (size_t)ln[t], seed, (int)mn, (int)mx, U + u * D, D);
  }
#pragma omp parallel for schedule(static) if (B * Lmax * D >= (1 << 20))
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < len[b]; i++) {
      float *row = o + (b * Lmax + i) * D;
      memcpy(row, U + uid[b * max_len + i] * D, (size_t)D * sizeof(float));
      if (pe)
        for (int64_t d = 0; d < D; d++) row[d] += pe[i * D + d];
    }
  lua_createtable(L, (int)B, 0);
  for (int64_t b = 0; b < B; b++) {
    lua_pushinteger(L, len[b]);
    lua_rawseti(L, -2, b + 1);
  }
  return 2;
}

/* core.enc_stack_frames({mel (M, F_b) ...}, k, normalize) -> (B, Lt, k*M), lengths */
static int l_stack_frames(lua_State *L) {
  const char *fn = "encoders.stack_frames";
  if (lua_type(L, 1) != LUA_TTABLE) oe_lua_fail(L, fn, "expected a list of (n_mels, frames) tensors, got %s", luaL_typename(L, 1));
  int64_t B = (int64_t)luaL_len(L, 1);
  if (B < 1) oe_lua_fail(L, fn, "empty batch (no log-mel tensors)");
  int64_t k = check_int(L, 2, fn, "k", 1, 1 << 16);
  int normalize = lua_toboolean(L, 3);
  luaL_checkstack(L, 8, fn);
  const oe_tensor **mel = scratch(L, fn, (size_t)B * sizeof(oe_tensor *));
  int64_t M = 0, Lt = 1;
  char buf[128];
  for (int64_t b = 0; b < B; b++) {
    lua_geti(L, 1, b + 1);
    oe_tensor *t = luaL_testudata(L, -1, OE_TENSOR_MT);
    if (!t || !t->storage) oe_lua_fail(L, fn, "item %lld is not a tensor", (long long)b + 1);
    if (t->dtype != OE_F32 || t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1)
      oe_lua_fail(L, fn, "item %lld must be a non-empty float32 (n_mels, frames) tensor, got %s %s", (long long)b + 1,
                  oe_dtype_name(t->dtype), oe_lua_shape_str(t, buf, sizeof buf));
    if (b == 0) M = t->shape[0];
    else if (t->shape[0] != M) oe_lua_fail(L, fn, "item %lld has %lld mel bands, item 1 has %lld", (long long)b + 1, (long long)t->shape[0], (long long)M);
    mel[b] = t;  /* kept alive by the list at index 1 */
    lua_pop(L, 1);
    int64_t n = (t->shape[1] + k - 1) / k;
    if (n > Lt) Lt = n;
  }
  if (k * M > MAX_DIM) oe_lua_fail(L, fn, "token size %lld x %lld is too large", (long long)k, (long long)M);
  int64_t shape[3] = {B, Lt, k * M};
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 3, shape);
  float *o = oe_f32(out);
#pragma omp parallel for schedule(dynamic, 1) if (B * Lt * k * M >= 65536)
  for (int64_t b = 0; b < B; b++)
    oe_enc_stack_clip(oe_f32(mel[b]), M, mel[b]->shape[1], mel[b]->shape[1], k, normalize, o + b * Lt * k * M, Lt);
  lua_createtable(L, (int)B, 0);
  for (int64_t b = 0; b < B; b++) {
    lua_pushinteger(L, (mel[b]->shape[1] + k - 1) / k);
    lua_rawseti(L, -2, b + 1);
  }
  return 2;
}

void oe_bind_encoders(lua_State *L) {
  static const luaL_Reg fns[] = {{"enc_patchify", l_patchify},
                                 {"enc_gaussian", l_gaussian},
                                 {"enc_u8_to_chw", l_u8_to_chw},
                                 {"enc_pos1d", l_pos1d},
                                 {"enc_pos2d", l_pos2d},
                                 {"enc_add_rows_", l_add_rows},
                                 {"enc_tokenize", l_tokenize},
                                 {"enc_word_vector", l_word_vector},
                                 {"enc_words", l_words},
                                 {"enc_stack_frames", l_stack_frames},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
