/* bind/frozen.c: the frozen pretrained-encoder runtime (csrc/frozen) for Lua.
 *   core.frozen_open(path) -> weights | nil, msg           mapped safetensors (runtime.h)
 *   core.frozen_info(weights) -> {path, size, tensors, inplace, converted, converted_bytes}
 *   core.frozen_has(weights, name) -> bool; core.frozen_count_prefix(weights, prefix) -> n
 *   core.vit_load(weights, opts) -> vit | nil, msg
 *       opts: prefix, layout ("auto" | "timm" | "hf"), config (config.json path), heads, eps,
 *       interpolate_pos (bool)
 *   core.vit_config(vit) -> {layout, dim, depth, heads, mlp, patch, channels, grid_h, grid_w, eps}
 *   core.vit_forward(vit, x float32 (B, C, H, W)) -> float32 (B, L, D)
 *   core.bert_load(weights, opts) -> bert | nil, msg      opts: prefix, config, heads, eps
 *   core.bert_config(bert) -> {dim, layers, heads, inter, vocab, max_pos, type_vocab, eps, pooler}
 *   core.bert_forward(bert, input_ids, attention_mask, token_type_ids|nil, pooled)
 *       -> hidden (B, L, D)[, pooled (B, D)]  (int64 (B, L) inputs)
 * A model keeps its weights object alive (user value), and the weights object is
 * only released by the garbage collector, so no model can outlive its mapping.
 * Problems with the files give nil, msg; wrong arguments raise naming the function. */
#include "bind.h"
#include "../frozen/bert.h"
#include "../frozen/vit.h"
#include <string.h>

#define FILE_MT "oe.FrozenWeights"
#define VIT_MT "oe.FrozenViT"
#define BERT_MT "oe.FrozenBERT"

typedef struct { oe_fz_file f; int open; } file_box;
typedef struct { oe_vit *m; } vit_box;
typedef struct { oe_bert *m; } bert_box;

static int file_gc(lua_State *L) {
  file_box *b = luaL_checkudata(L, 1, FILE_MT);
  if (b->open) oe_fz_close(&b->f);
  b->open = 0;
  return 0;
}
static int vit_gc(lua_State *L) {
  vit_box *b = luaL_checkudata(L, 1, VIT_MT);
  oe_vit_free(b->m);
  b->m = NULL;
  return 0;
}
static int bert_gc(lua_State *L) {
  bert_box *b = luaL_checkudata(L, 1, BERT_MT);
  oe_bert_free(b->m);
  b->m = NULL;
  return 0;
}

static file_box *check_file(lua_State *L, int idx, const char *fn) {
  file_box *b = luaL_testudata(L, idx, FILE_MT);
  if (!b || !b->open) oe_lua_fail(L, fn, "argument 'weights' must be an open weights object (core.frozen_open), got %s", luaL_typename(L, idx));
  return b;
}

/* the mapped file of a weights object, for the other binding files (bind.h) */
struct oe_fz_file *oe_lua_frozen_file(lua_State *L, int idx, const char *fn) { return &check_file(L, idx, fn)->f; }

static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  file_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, FILE_MT);
  oe_err e;
  if (oe_fz_open(&b->f, path, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  b->open = 1;
  return 1;
}

static int l_info(lua_State *L) {
  file_box *b = check_file(L, 1, "frozen_info");
  lua_createtable(L, 0, 6);
  lua_pushstring(L, b->f.st.path); lua_setfield(L, -2, "path");
  lua_pushinteger(L, (lua_Integer)b->f.st.file_size); lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)b->f.st.n); lua_setfield(L, -2, "tensors");
  lua_pushinteger(L, (lua_Integer)b->f.n_inplace); lua_setfield(L, -2, "inplace");
  lua_pushinteger(L, (lua_Integer)b->f.n_converted); lua_setfield(L, -2, "converted");
  lua_pushinteger(L, (lua_Integer)b->f.converted_bytes); lua_setfield(L, -2, "converted_bytes");
  return 1;
}

static int l_has(lua_State *L) {
  file_box *b = check_file(L, 1, "frozen_has");
  size_t n;
  const char *name = luaL_checklstring(L, 2, &n);
  lua_pushboolean(L, oe_st_find(&b->f.st, name, n) >= 0);
  return 1;
}

static int l_count_prefix(lua_State *L) {
  file_box *b = check_file(L, 1, "frozen_count_prefix");
  lua_pushinteger(L, (lua_Integer)oe_fz_count_prefix(&b->f, luaL_checkstring(L, 2)));
  return 1;
}

/* ---- ViT ---- */

static int l_vit_load(lua_State *L) {
  const char *fn = "vit_load";
  file_box *fb = check_file(L, 1, fn);
  oe_lua_opt_table(L, 2, fn);
  oe_vit_opts o;
  memset(&o, 0, sizeof o);
  o.prefix = oe_lua_opt_str(L, 2, "prefix", fn);
  const char *layout = oe_lua_opt_str(L, 2, "layout", fn);
  o.layout = OE_VIT_AUTO;
  if (layout && !strcmp(layout, "timm")) o.layout = OE_VIT_TIMM;
  else if (layout && !strcmp(layout, "hf")) o.layout = OE_VIT_HF;
  else if (layout && strcmp(layout, "auto")) oe_lua_fail(L, fn, "option 'layout' must be \"auto\", \"timm\" or \"hf\", got \"%s\"", layout);
  o.config_path = oe_lua_opt_str(L, 2, "config", fn);
  o.heads = oe_lua_opt_int(L, 2, "heads", 0, 1, 1 << 16, fn);
  o.eps = oe_lua_opt_unit(L, 2, "eps", fn);
  oe_lua_opt_field(L, 2, "interpolate_pos");
  o.interpolate_pos = lua_toboolean(L, -1);
  lua_pop(L, 1);
  vit_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->m = NULL;
  luaL_setmetatable(L, VIT_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  oe_err e;
  if (oe_vit_load(&b->m, &fb->f, &o, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

static oe_vit *check_vit(lua_State *L, int idx, const char *fn) {
  vit_box *b = luaL_testudata(L, idx, VIT_MT);
  if (!b || !b->m) oe_lua_fail(L, fn, "argument 'vit' must be a ViT (core.vit_load), got %s", luaL_typename(L, idx));
  return b->m;
}

static int l_vit_config(lua_State *L) {
  const oe_vit_config *c = oe_vit_get_config(check_vit(L, 1, "vit_config"));
  lua_createtable(L, 0, 10);
  lua_pushstring(L, c->layout == OE_VIT_TIMM ? "timm" : "hf"); lua_setfield(L, -2, "layout");
  lua_pushinteger(L, c->dim); lua_setfield(L, -2, "dim");
  lua_pushinteger(L, c->depth); lua_setfield(L, -2, "depth");
  lua_pushinteger(L, c->heads); lua_setfield(L, -2, "heads");
  lua_pushinteger(L, c->mlp); lua_setfield(L, -2, "mlp");
  lua_pushinteger(L, c->patch); lua_setfield(L, -2, "patch");
  lua_pushinteger(L, c->channels); lua_setfield(L, -2, "channels");
  lua_pushinteger(L, c->grid_h); lua_setfield(L, -2, "grid_h");
  lua_pushinteger(L, c->grid_w); lua_setfield(L, -2, "grid_w");
  lua_pushnumber(L, c->eps); lua_setfield(L, -2, "eps");
  return 1;
}

static int fail_run(lua_State *L, const char *fn, int rc, const oe_err *e) {
  if (rc == OE_EIO) { lua_pushnil(L); lua_pushstring(L, e->msg); return 2; }
  return oe_lua_fail(L, fn, "%s", e->msg);
}

static int l_vit_forward(lua_State *L) {
  const char *fn = "vit_forward";
  oe_vit *m = check_vit(L, 1, fn);
  oe_tensor *x = oe_lua_check(L, 2, fn, "x");
  oe_lua_check_dtype(L, x, OE_F32, fn, "x");
  char buf[128];
  if (x->ndim != 4) oe_lua_fail(L, fn, "x must be (B, C, H, W), got %s", oe_lua_shape_str(x, buf, sizeof buf));
  oe_err e;
  int64_t Lq = oe_vit_seq_len(m, x->shape[2], x->shape[3], &e);
  if (Lq < 0) oe_lua_fail(L, fn, "%s", e.msg);
  const oe_vit_config *c = oe_vit_get_config(m);
  if (x->shape[1] != c->channels)
    oe_lua_fail(L, fn, "x %s has %lld channels, the weights expect %lld", oe_lua_shape_str(x, buf, sizeof buf),
                (long long)x->shape[1], (long long)c->channels);
  if (x->shape[0] < 1) oe_lua_fail(L, fn, "empty batch %s", oe_lua_shape_str(x, buf, sizeof buf));
  int64_t shape[3] = { x->shape[0], Lq, c->dim };
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 3, shape);
  int rc = oe_vit_forward(m, oe_f32(x), x->shape[0], x->shape[1], x->shape[2], x->shape[3], oe_f32(out), &e);
  if (rc != OE_OK) return fail_run(L, fn, rc, &e);
  return 1;
}

/* ---- BERT ---- */

static int l_bert_load(lua_State *L) {
  const char *fn = "bert_load";
  file_box *fb = check_file(L, 1, fn);
  oe_lua_opt_table(L, 2, fn);
  oe_bert_opts o;
  memset(&o, 0, sizeof o);
  o.prefix = oe_lua_opt_str(L, 2, "prefix", fn);
  o.config_path = oe_lua_opt_str(L, 2, "config", fn);
  o.heads = oe_lua_opt_int(L, 2, "heads", 0, 1, 1 << 16, fn);
  o.eps = oe_lua_opt_unit(L, 2, "eps", fn);
  bert_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->m = NULL;
  luaL_setmetatable(L, BERT_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  oe_err e;
  if (oe_bert_load(&b->m, &fb->f, &o, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

static oe_bert *check_bert(lua_State *L, int idx, const char *fn) {
  bert_box *b = luaL_testudata(L, idx, BERT_MT);
  if (!b || !b->m) oe_lua_fail(L, fn, "argument 'bert' must be a BERT (core.bert_load), got %s", luaL_typename(L, idx));
  return b->m;
}

static int l_bert_config(lua_State *L) {
  const oe_bert_config *c = oe_bert_get_config(check_bert(L, 1, "bert_config"));
  lua_createtable(L, 0, 9);
  lua_pushinteger(L, c->dim); lua_setfield(L, -2, "dim");
  lua_pushinteger(L, c->layers); lua_setfield(L, -2, "layers");
  lua_pushinteger(L, c->heads); lua_setfield(L, -2, "heads");
  lua_pushinteger(L, c->inter); lua_setfield(L, -2, "inter");
  lua_pushinteger(L, c->vocab); lua_setfield(L, -2, "vocab");
  lua_pushinteger(L, c->max_pos); lua_setfield(L, -2, "max_pos");
  lua_pushinteger(L, c->type_vocab); lua_setfield(L, -2, "type_vocab");
  lua_pushnumber(L, c->eps); lua_setfield(L, -2, "eps");
  lua_pushboolean(L, c->has_pooler); lua_setfield(L, -2, "pooler");
  return 1;
}

static const oe_tensor *check_ids(lua_State *L, int idx, const char *fn, const char *arg, const oe_tensor *like) {
  oe_tensor *t = oe_lua_check(L, idx, fn, arg);
  oe_lua_check_dtype(L, t, OE_I64, fn, arg);
  char b1[96], b2[96];
  if (t->ndim != 2) oe_lua_fail(L, fn, "argument '%s' must be (B, L), got %s", arg, oe_lua_shape_str(t, b1, sizeof b1));
  if (like && (t->shape[0] != like->shape[0] || t->shape[1] != like->shape[1]))
    oe_lua_fail(L, fn, "argument '%s' is %s, input_ids %s", arg, oe_lua_shape_str(t, b1, sizeof b1), oe_lua_shape_str(like, b2, sizeof b2));
  return t;
}

static int l_bert_forward(lua_State *L) {
  const char *fn = "bert_forward";
  oe_bert *m = check_bert(L, 1, fn);
  const oe_tensor *ids = check_ids(L, 2, fn, "input_ids", NULL);
  const oe_tensor *mask = lua_isnoneornil(L, 3) ? NULL : check_ids(L, 3, fn, "attention_mask", ids);
  const oe_tensor *types = lua_isnoneornil(L, 4) ? NULL : check_ids(L, 4, fn, "token_type_ids", ids);
  int want_pooled = lua_toboolean(L, 5);
  const oe_bert_config *c = oe_bert_get_config(m);
  int64_t B = ids->shape[0], Lq = ids->shape[1];
  if (B < 1 || Lq < 1) oe_lua_fail(L, fn, "empty batch (%lld x %lld tokens)", (long long)B, (long long)Lq);
  if (Lq > c->max_pos) oe_lua_fail(L, fn, "%lld tokens per sequence, the model has %lld positions", (long long)Lq, (long long)c->max_pos);
  if (want_pooled && !c->has_pooler) oe_lua_fail(L, fn, "the weights have no pooler (pooler.dense.*)");
  int64_t hs[3] = { B, Lq, c->dim }, ps[2] = { B, c->dim };
  oe_tensor *hidden = oe_lua_push_uninit(L, fn, OE_F32, 3, hs);
  oe_tensor *pooled = want_pooled ? oe_lua_push_uninit(L, fn, OE_F32, 2, ps) : NULL;
  oe_err e;
  int rc = oe_bert_forward(m, (const int64_t *)oe_data(ids), mask ? (const int64_t *)oe_data(mask) : NULL,
                           types ? (const int64_t *)oe_data(types) : NULL, B, Lq, oe_f32(hidden), pooled ? oe_f32(pooled) : NULL, &e);
  if (rc != OE_OK) return fail_run(L, fn, rc, &e);
  return want_pooled ? 2 : 1;
}

static const luaL_Reg fns[] = {
  {"frozen_open", l_open}, {"frozen_info", l_info}, {"frozen_has", l_has}, {"frozen_count_prefix", l_count_prefix},
  {"vit_load", l_vit_load}, {"vit_config", l_vit_config}, {"vit_forward", l_vit_forward},
  {"bert_load", l_bert_load}, {"bert_config", l_bert_config}, {"bert_forward", l_bert_forward},
  {NULL, NULL}};

static void new_mt(lua_State *L, const char *name, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void oe_bind_frozen(lua_State *L) {
  new_mt(L, FILE_MT, file_gc);
  new_mt(L, VIT_MT, vit_gc);
  new_mt(L, BERT_MT, bert_gc);
  luaL_setfuncs(L, fns, 0);
}
