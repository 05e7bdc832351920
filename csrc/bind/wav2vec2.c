/* bind/wav2vec2.c: Wav2Vec2 (csrc/frozen/wav2vec2.c) for Lua.
 *   core.w2v_load(weights, opts) -> model | nil, msg
 *       weights: core.frozen_open's object; opts: prefix, config (config.json path), heads,
 *       stable (true/false: pre-norm or post-norm encoder; default from the config)
 *   core.w2v_config(model) -> {dim, layers, heads, inter, conv_dim = {...}, conv_kernel, conv_stride,
 *       conv_bias, feat_extract_norm ("group" | "layer"), stable, pos_kernel, pos_groups, eps, receptive}
 *   core.w2v_frames(model, samples) -> frames (0 below the receptive field)
 *   core.w2v_forward(model, x float32 (B, N), lengths (list of B integers) | nil) -> float32 (B, T', D)
 *   core.w2v_forward_each(model, clips) -> list of float32 (T'_b, D): clips (list of float32 (T)
 *       input_values of different lengths) each alone, whole clips spread over the threads
 *   core.w2v_prepare(clips, opts) -> x float32 (B, N), kept (list of real samples per clip)
 *       clips: list of float32 (T) tensors; opts: max_samples (truncation, 0 none), normalize
 *       (default true), masked (default false): Wav2Vec2FeatureExtractor (wav2vec2.h)
 *   core.w2v_json_scalars(path) -> {key = number | string | boolean} | nil, msg
 *       the top-level scalar members of a small JSON object file (preprocessor_config.json)
 * A model keeps its weights object alive (user value). Problems with the files give nil, msg;
 * wrong arguments raise naming the function. */
#include "bind.h"
#include "../frozen/wav2vec2.h"
#include "../io/json.h"
#include <stdlib.h>
#include <string.h>

#define W2V_MT "oe.FrozenWav2Vec2"

typedef struct { oe_w2v *m; } w2v_box;

static int w2v_gc(lua_State *L) {
  w2v_box *b = luaL_checkudata(L, 1, W2V_MT);
  oe_w2v_free(b->m);
  b->m = NULL;
  return 0;
}

static oe_w2v *check_model(lua_State *L, int idx, const char *fn) {
  w2v_box *b = luaL_testudata(L, idx, W2V_MT);
  if (!b || !b->m) oe_lua_fail(L, fn, "argument 'model' must be a Wav2Vec2 (core.w2v_load), got %s", luaL_typename(L, idx));
  return b->m;
}

static int l_load(lua_State *L) {
  const char *fn = "w2v_load";
  oe_fz_file *wf = oe_lua_frozen_file(L, 1, fn);
  oe_lua_opt_table(L, 2, fn);
  oe_w2v_opts o;
  memset(&o, 0, sizeof o);
  o.prefix = oe_lua_opt_str(L, 2, "prefix", fn);
  o.config_path = oe_lua_opt_str(L, 2, "config", fn);
  o.heads = oe_lua_opt_int(L, 2, "heads", 0, 1, 4096, fn);
  o.stable = oe_lua_opt_bool(L, 2, "stable", -1, fn);
  w2v_box *b = lua_newuserdatauv(L, sizeof *b, 1);
  b->m = NULL;
  luaL_setmetatable(L, W2V_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  oe_err e;
  if (oe_w2v_load(&b->m, wf, &o, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

static void push_list(lua_State *L, const int64_t *v, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)v[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int l_config(lua_State *L) {
  const oe_w2v_config *c = oe_w2v_get_config(check_model(L, 1, "w2v_config"));
  lua_createtable(L, 0, 16);
  lua_pushinteger(L, c->dim); lua_setfield(L, -2, "dim");
  lua_pushinteger(L, c->layers); lua_setfield(L, -2, "layers");
  lua_pushinteger(L, c->heads); lua_setfield(L, -2, "heads");
  lua_pushinteger(L, c->inter); lua_setfield(L, -2, "inter");
  push_list(L, c->conv_dim, c->n_conv); lua_setfield(L, -2, "conv_dim");
  push_list(L, c->conv_kernel, c->n_conv); lua_setfield(L, -2, "conv_kernel");
  push_list(L, c->conv_stride, c->n_conv); lua_setfield(L, -2, "conv_stride");
  lua_pushboolean(L, c->conv_bias); lua_setfield(L, -2, "conv_bias");
  lua_pushstring(L, c->layer_norm_features ? "layer" : "group"); lua_setfield(L, -2, "feat_extract_norm");
  lua_pushboolean(L, c->stable); lua_setfield(L, -2, "stable");
  lua_pushinteger(L, c->pos_kernel); lua_setfield(L, -2, "pos_kernel");
  lua_pushinteger(L, c->pos_groups); lua_setfield(L, -2, "pos_groups");
  lua_pushnumber(L, c->eps); lua_setfield(L, -2, "eps");
  lua_pushinteger(L, c->receptive); lua_setfield(L, -2, "receptive");
  return 1;
}

static int l_frames(lua_State *L) {
  oe_w2v *m = check_model(L, 1, "w2v_frames");
  lua_Integer n = luaL_checkinteger(L, 2);
  lua_pushinteger(L, n < 0 ? 0 : (lua_Integer)oe_w2v_frames(oe_w2v_get_config(m), (int64_t)n));
  return 1;
}

static int l_forward(lua_State *L) {
  const char *fn = "w2v_forward";
  oe_w2v *m = check_model(L, 1, fn);
  oe_tensor *x = oe_lua_check(L, 2, fn, "x");
  oe_lua_check_dtype(L, x, OE_F32, fn, "x");
  char buf[128];
  if (x->ndim != 2 || x->shape[0] < 1 || x->shape[1] < 1)
    oe_lua_fail(L, fn, "x must be a non-empty (B, N) batch of samples, got %s", oe_lua_shape_str(x, buf, sizeof buf));
  const oe_w2v_config *c = oe_w2v_get_config(m);
  const int64_t B = x->shape[0], N = x->shape[1];
  int64_t T = oe_w2v_frames(c, N);
  if (T < 1)
    oe_lua_fail(L, fn, "x %s: %lld samples are fewer than the %lld the convolutions need for one frame",
                oe_lua_shape_str(x, buf, sizeof buf), (long long)N, (long long)c->receptive);
  int64_t *lengths = NULL;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    if ((int64_t)luaL_len(L, 3) != B) oe_lua_fail(L, fn, "lengths has %lld entries for a batch of %lld", (long long)luaL_len(L, 3), (long long)B);
    lengths = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)B, 0); /* freed by the GC */
    for (int64_t b = 0; b < B; b++) {
      lua_rawgeti(L, 3, b + 1);
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      lua_pop(L, 1);
      if (!ok || v < c->receptive || v > N)
        oe_lua_fail(L, fn, "lengths[%lld] must be an integer in %lld..%lld", (long long)(b + 1), (long long)c->receptive, (long long)N);
      lengths[b] = v;
    }
  }
  int64_t shape[3] = { B, T, c->dim };
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 3, shape);
  oe_err e;
  int rc = oe_w2v_forward(m, oe_f32(x), B, N, lengths, oe_f32(out), &e);
  if (rc == OE_EIO) { lua_pushnil(L); lua_pushstring(L, e.msg); return 2; }
  if (rc != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  return 1;
}

static int l_forward_each(lua_State *L) {
  const char *fn = "w2v_forward_each";
  oe_w2v *m = check_model(L, 1, fn);
  luaL_checktype(L, 2, LUA_TTABLE);
  const oe_w2v_config *c = oe_w2v_get_config(m);
  int64_t B = (int64_t)luaL_len(L, 2);
  if (B < 1) oe_lua_fail(L, fn, "empty list of clips");
  const float **x = lua_newuserdatauv(L, sizeof(float *) * (size_t)B, 0);
  float **out = lua_newuserdatauv(L, sizeof(float *) * (size_t)B, 0);
  int64_t *len = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)B, 0);
  char buf[128];
  lua_createtable(L, (int)B, 0);
  int list = lua_gettop(L);
  for (int64_t b = 0; b < B; b++) {
    lua_rawgeti(L, 2, b + 1);
    oe_tensor *t = oe_lua_check(L, -1, fn, "clip");
    oe_lua_check_dtype(L, t, OE_F32, fn, "clip");
    if (t->ndim != 1) oe_lua_fail(L, fn, "clip %lld must be a (T) waveform, got %s", (long long)(b + 1), oe_lua_shape_str(t, buf, sizeof buf));
    int64_t T = oe_w2v_frames(c, t->shape[0]);
    if (T < 1)
      oe_lua_fail(L, fn, "clip %lld: %lld samples are fewer than the %lld the convolutions need for one frame", (long long)(b + 1),
                  (long long)t->shape[0], (long long)c->receptive);
    x[b] = oe_f32(t);
    len[b] = t->shape[0];
    lua_pop(L, 1);
    int64_t shape[2] = { T, c->dim };
    oe_tensor *o = oe_lua_push_uninit(L, fn, OE_F32, 2, shape);
    out[b] = oe_f32(o);
    lua_rawseti(L, list, b + 1);
  }
  oe_err e;
  int rc = oe_w2v_forward_each(m, x, len, B, out, &e);
  if (rc == OE_EIO) { lua_pushnil(L); lua_pushstring(L, e.msg); return 2; }
  if (rc != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  lua_pushvalue(L, list);
  return 1;
}

static int l_prepare(lua_State *L) {
  const char *fn = "w2v_prepare";
  luaL_checktype(L, 1, LUA_TTABLE);
  oe_lua_opt_table(L, 2, fn);
  int64_t max_len = oe_lua_opt_int(L, 2, "max_samples", 0, 0, (int64_t)1 << 40, fn);
  int normalize = oe_lua_opt_bool(L, 2, "normalize", 1, fn);
  int masked = oe_lua_opt_bool(L, 2, "masked", 0, fn);
  int64_t B = (int64_t)luaL_len(L, 1);
  if (B < 1) oe_lua_fail(L, fn, "empty list of clips");
  const float **clips = lua_newuserdatauv(L, sizeof(float *) * (size_t)B, 0);
  int64_t *len = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)B * 2, 0);
  int64_t *kept = len + B;
  char buf[128];
  for (int64_t b = 0; b < B; b++) {
    lua_rawgeti(L, 1, b + 1);
    oe_tensor *t = oe_lua_check(L, -1, fn, "clip");
    oe_lua_check_dtype(L, t, OE_F32, fn, "clip");
    if (t->ndim != 1 || t->shape[0] < 1)
      oe_lua_fail(L, fn, "clip %lld must be a non-empty (T) waveform, got %s", (long long)(b + 1), oe_lua_shape_str(t, buf, sizeof buf));
    clips[b] = oe_f32(t);
    len[b] = t->shape[0];
    lua_pop(L, 1); /* the list keeps it alive */
  }
  int64_t N = oe_w2v_padded_len(len, B, max_len);
  int64_t shape[2] = { B, N };
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 2, shape);
  oe_w2v_prepare(clips, len, B, max_len, normalize, masked, oe_f32(out), N, kept);
  push_list(L, kept, (int)B);
  return 2;
}

static int l_json_scalars(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  oe_fz_config c;
  oe_err e;
  if (oe_fz_config_read(path, &c, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_createtable(L, 0, (int)c.n);
  for (size_t i = 0; i < c.n; i++) {
    const oe_fz_cfg_item *it = &c.items[i];
    switch (it->type) {
      case OE_JSON_NUMBER:
        if (it->is_int && !it->overflow && it->mag <= ((uint64_t)1 << 53)) lua_pushinteger(L, it->neg ? -(lua_Integer)it->mag : (lua_Integer)it->mag);
        else lua_pushnumber(L, it->num);
        break;
      case OE_JSON_STRING: lua_pushstring(L, it->str); break;
      case OE_JSON_TRUE: lua_pushboolean(L, 1); break;
      case OE_JSON_FALSE: lua_pushboolean(L, 0); break;
      default: continue;
    }
    lua_setfield(L, -2, it->key);
  }
  oe_fz_config_free(&c);
  return 1;
}

static const luaL_Reg fns[] = {
  {"w2v_load", l_load}, {"w2v_config", l_config}, {"w2v_frames", l_frames}, {"w2v_forward", l_forward}, {"w2v_forward_each", l_forward_each},
  {"w2v_prepare", l_prepare}, {"w2v_json_scalars", l_json_scalars}, {NULL, NULL}};

void oe_bind_wav2vec2(lua_State *L) {
  luaL_newmetatable(L, W2V_MT);
  lua_pushcfunction(L, w2v_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, W2V_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
