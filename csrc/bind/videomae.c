/* bind/videomae.c: VideoMAE (csrc/frozen/videomae.c) for Lua.
 *   core.videomae_load(weights, opts) -> model | nil, msg     weights: core.frozen_open
 *       opts: prefix, config (config.json path), heads, frames, image_size, eps,
 *       fc_norm_prefix (where fc_norm.* lives: pooled output), fc_norm_eps
 *   core.videomae_config(model) -> {dim, depth, heads, mlp, patch, tubelet, channels, frames,
 *       image_size, tokens, eps, qkv_bias, mean_pooling, fc_norm, fc_norm_eps}
 *   core.videomae_forward(model, x float32 (B, T, C, S, S), pooled) -> (B, tokens, D)[, (B, D)]
 *   core.videomae_positions(model) -> float32 (tokens, D), a copy of the sinusoid table
 * A model keeps its weights object alive (user value). Problems with the files give nil, msg;
 * wrong arguments raise naming the function. */
#include "bind.h"
#include "../frozen/videomae.h"
#include <string.h>

#define VMAE_MT "oe.FrozenVideoMAE"

typedef struct { oe_videomae *m; } vmae_box;

static int vmae_gc(lua_State *L) {
  vmae_box *b = luaL_checkudata(L, 1, VMAE_MT);
  oe_videomae_free(b->m);
  b->m = NULL;
  return 0;
}

static int l_load(lua_State *L) {
  const char *fn = "videomae_load";
  oe_fz_file *f = oe_lua_frozen_file(L, 1, fn);
  oe_lua_opt_table(L, 2, fn);
  oe_videomae_opts o;
  memset(&o, 0, sizeof o);
  o.prefix = oe_lua_opt_str(L, 2, "prefix", fn);
  o.config_path = oe_lua_opt_str(L, 2, "config", fn);
  o.heads = oe_lua_opt_int(L, 2, "heads", 0, 1, 1 << 16, fn);
  o.frames = oe_lua_opt_int(L, 2, "frames", 0, 1, 4096, fn);
  o.image_size = oe_lua_opt_int(L, 2, "image_size", 0, 1, 8192, fn);
  o.eps = oe_lua_opt_unit(L, 2, "eps", fn);
  o.fc_norm_prefix = oe_lua_opt_str(L, 2, "fc_norm_prefix", fn);
  o.fc_norm_eps = oe_lua_opt_unit(L, 2, "fc_norm_eps", fn);
  vmae_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->m = NULL;
  luaL_setmetatable(L, VMAE_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  oe_err e;
  if (oe_videomae_load(&b->m, f, &o, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

static oe_videomae *check_model(lua_State *L, int idx, const char *fn) {
  vmae_box *b = luaL_testudata(L, idx, VMAE_MT);
  if (!b || !b->m) oe_lua_fail(L, fn, "argument 'model' must be a VideoMAE (core.videomae_load), got %s", luaL_typename(L, idx));
  return b->m;
}

static int l_config(lua_State *L) {
  const oe_videomae_config *c = oe_videomae_get_config(check_model(L, 1, "videomae_config"));
  lua_createtable(L, 0, 16);
#define I(k, v) lua_pushinteger(L, (lua_Integer)(v)); lua_setfield(L, -2, k)
  I("dim", c->dim); I("depth", c->depth); I("heads", c->heads); I("mlp", c->mlp); I("patch", c->patch);
  I("tubelet", c->tubelet); I("channels", c->channels); I("frames", c->frames); I("image_size", c->image_size);
  I("tokens", c->tokens);
#undef I
  lua_pushnumber(L, c->eps); lua_setfield(L, -2, "eps");
  lua_pushboolean(L, c->qkv_bias); lua_setfield(L, -2, "qkv_bias");
  lua_pushboolean(L, c->mean_pooling); lua_setfield(L, -2, "mean_pooling");
  lua_pushboolean(L, c->has_fc_norm); lua_setfield(L, -2, "fc_norm");
  if (c->has_fc_norm) { lua_pushnumber(L, c->fc_norm_eps); lua_setfield(L, -2, "fc_norm_eps"); }
  return 1;
}

static int l_forward(lua_State *L) {
  const char *fn = "videomae_forward";
  oe_videomae *m = check_model(L, 1, fn);
  oe_tensor *x = oe_lua_check(L, 2, fn, "x");
  oe_lua_check_dtype(L, x, OE_F32, fn, "x");
  int want_pooled = lua_toboolean(L, 3);
  char buf[128];
  if (x->ndim != 5) oe_lua_fail(L, fn, "x must be (B, T, C, H, W), got %s", oe_lua_shape_str(x, buf, sizeof buf));
  const oe_videomae_config *c = oe_videomae_get_config(m);
  oe_err e;
  if (oe_videomae_check_input(m, x->shape[0], x->shape[1], x->shape[2], x->shape[3], x->shape[4], &e) != OE_OK)
    oe_lua_fail(L, fn, "x %s: %s", oe_lua_shape_str(x, buf, sizeof buf), e.msg);
  if (want_pooled && !c->has_fc_norm) oe_lua_fail(L, fn, "no pooled output: the model was loaded without fc_norm (fc_norm_prefix)");
  int64_t hs[3] = { x->shape[0], c->tokens, c->dim }, ps[2] = { x->shape[0], c->dim };
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 3, hs);
  oe_tensor *pooled = want_pooled ? oe_lua_push_uninit(L, fn, OE_F32, 2, ps) : NULL;
  int rc = oe_videomae_forward(m, oe_f32(x), x->shape[0], x->shape[1], x->shape[2], x->shape[3], x->shape[4], oe_f32(out),
                               pooled ? oe_f32(pooled) : NULL, &e);
  if (rc == OE_EIO) { lua_pushnil(L); lua_pushstring(L, e.msg); return 2; }
  if (rc != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  return want_pooled ? 2 : 1;
}

static int l_positions(lua_State *L) {
  const char *fn = "videomae_positions";
  oe_videomae *m = check_model(L, 1, fn);
  const oe_videomae_config *c = oe_videomae_get_config(m);
  int64_t s[2] = { c->tokens, c->dim };
  oe_tensor *t = oe_lua_push_uninit(L, fn, OE_F32, 2, s);
  memcpy(oe_f32(t), oe_videomae_positions(m), sizeof(float) * (size_t)(c->tokens * c->dim));
  return 1;
}

static const luaL_Reg fns[] = {
  {"videomae_load", l_load}, {"videomae_config", l_config}, {"videomae_forward", l_forward},
  {"videomae_positions", l_positions}, {NULL, NULL}};

void oe_bind_videomae(lua_State *L) {
  luaL_newmetatable(L, VMAE_MT);
  lua_pushcfunction(L, vmae_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, VMAE_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
