/* bind/tfjs.c: TF.js layers models (csrc/tfjs) for Lua.
 *   core.tfjs_load(path, fold) -> model | nil, msg     (fold: BN/activation folding, default true)
 *   core.tfjs_info(model) -> {path, layers = {{name, class, folded_into, available}...},
 *       outputs = {layer names}, input_shape = {size or false for None...},
 *       weights, floats, quantized}
 *   core.tfjs_forward(model, x, {layer name...}, nchw) -> {tensor per name}
 *       x float32 (N, H, W, C) as TF.js takes it, or (N, C, H, W) when nchw; outputs in
 *       TF.js's order (NHWC for maps); raises "tfjs_forward: <path>: <problem>"
 *   core.tfjs_arena_bytes(model) -> bytes of activations and scratch kept for reuse
 *   core.tfjs_check_json(string) -> true | nil, msg      (model.json checks, no shards)
 *   core.tfjs_resize_bilinear_ac(x (H, W, C) float32, h, w) -> (h, w, C): TF.js's
 *       resizeBilinear with alignCorners = true
 *   core.tfjs_images({uint8 (H, W, 3) or (H, W, 1) image...}, size) -> float32 (B, size, size, 3):
 *       each image / 255 (gray repeated), resized as above unless already size x size; the
 *       images spread over the OpenMP threads
 *   core.tfjs_close(model)
 * Problems with files give nil, msg; wrong arguments raise naming the function. */
#include "bind.h"
#include "../tfjs/tfjs.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TFJS_MT "oe.TfjsModel"

typedef struct { oe_tfjs_model *m; } tfjs_box;

static int tfjs_gc(lua_State *L) {
  tfjs_box *b = luaL_checkudata(L, 1, TFJS_MT);
  oe_tfjs_free(b->m);
  b->m = NULL;
  return 0;
}

static oe_tfjs_model *check_model(lua_State *L, int idx, const char *fn) {
  tfjs_box *b = luaL_testudata(L, idx, TFJS_MT);
  if (!b || !b->m) oe_lua_fail(L, fn, "argument 'model' must be an open TF.js model (core.tfjs_load), got %s", luaL_typename(L, idx));
  return b->m;
}

static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  oe_tfjs_opts o;
  oe_tfjs_opts_default(&o);
  if (!lua_isnoneornil(L, 2)) o.fold = lua_toboolean(L, 2);
  tfjs_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->m = NULL;
  luaL_setmetatable(L, TFJS_MT);
  oe_err e;
  if (oe_tfjs_load(path, &o, &b->m, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  return 1;
}

static int l_info(lua_State *L) {
  oe_tfjs_model *m = check_model(L, 1, "tfjs_info");
  lua_createtable(L, 0, 8);
  lua_pushstring(L, oe_tfjs_path(m));
  lua_setfield(L, -2, "path");
  int n = oe_tfjs_n_layers(m);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, oe_tfjs_layer_name(m, i));
    lua_setfield(L, -2, "name");
    lua_pushstring(L, oe_tfjs_layer_class(m, i));
    lua_setfield(L, -2, "class");
    const char *f = oe_tfjs_layer_folded_into(m, i);
    if (f) {
      lua_pushstring(L, f);
      lua_setfield(L, -2, "folded_into");
    }
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "layers");
  int no = oe_tfjs_n_outputs(m);
  lua_createtable(L, no, 0);
  for (int k = 0; k < no; k++) {
    lua_pushstring(L, oe_tfjs_layer_name(m, oe_tfjs_output_layer(m, k)));
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "outputs");
  int64_t dims[8];
  int r = oe_tfjs_input_shape(m, dims);
  lua_createtable(L, r, 0);
  for (int k = 0; k < r; k++) {
    if (dims[k] < 0) lua_pushboolean(L, 0);
    else lua_pushinteger(L, dims[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "input_shape");
  int64_t nw, nf, nq;
  oe_tfjs_weight_stats(m, &nw, &nf, &nq);
  lua_pushinteger(L, nw);
  lua_setfield(L, -2, "weights");
  lua_pushinteger(L, nf);
  lua_setfield(L, -2, "floats");
  lua_pushinteger(L, nq);
  lua_setfield(L, -2, "quantized");
  return 1;
}

static int l_forward(lua_State *L) {
  const char *fn = "tfjs_forward";
  oe_tfjs_model *m = check_model(L, 1, fn);
  oe_tensor *x = oe_lua_check(L, 2, fn, "x");
  oe_lua_check_dtype(L, x, OE_F32, fn, "x");
  luaL_checktype(L, 3, LUA_TTABLE);
  int nchw = lua_toboolean(L, 4);
  int n_out = (int)lua_rawlen(L, 3);
  if (n_out < 1 || n_out > 64) return oe_lua_fail(L, fn, "give 1 to 64 layer names, got %d", n_out);
  int outs[64];
  for (int k = 0; k < n_out; k++) {
    lua_rawgeti(L, 3, k + 1);
    const char *name = lua_tostring(L, -1);
    if (!name || lua_type(L, -1) != LUA_TSTRING) return oe_lua_fail(L, fn, "layer %d must be a name (string)", k + 1);
    outs[k] = oe_tfjs_find_layer(m, name);
    if (outs[k] < 0) return oe_lua_fail(L, fn, "%s: no layer named '%s'", oe_tfjs_path(m), name);
    lua_pop(L, 1);
  }
  int out_ndim[64];
  int64_t out_shape[64][8];
  oe_err e;
  if (oe_tfjs_plan(m, x->ndim, x->shape, nchw, outs, n_out, out_ndim, out_shape, &e) != OE_OK)
    return oe_lua_fail(L, fn, "%s", e.msg);
  lua_createtable(L, n_out, 0);
  int base = lua_gettop(L);
  float **ys = lua_newuserdatauv(L, sizeof(float *) * (size_t)n_out, 0);
  for (int k = 0; k < n_out; k++) {
    oe_tensor *t = oe_lua_push_uninit(L, fn, OE_F32, out_ndim[k], out_shape[k]);
    ys[k] = oe_f32(t);
    lua_rawseti(L, base, k + 1);
  }
  if (oe_tfjs_execute(m, oe_f32(x), ys, &e) != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  lua_settop(L, base);
  return 1;
}

static int l_arena(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)oe_tfjs_arena_bytes(check_model(L, 1, "tfjs_arena_bytes")));
  return 1;
}

static int l_check_json(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  oe_err e;
  if (oe_tfjs_check_json(s, len, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_resize(lua_State *L) {
  const char *fn = "tfjs_resize_bilinear_ac";
  oe_tensor *x = oe_lua_check(L, 1, fn, "x");
  oe_lua_check_dtype(L, x, OE_F32, fn, "x");
  if (x->ndim != 3 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1 || x->shape[0] > (1 << 16) ||
      x->shape[1] > (1 << 16) || x->shape[2] > 64)
    return oe_lua_fail(L, fn, "x must be (H, W, C) with H, W in 1..65536 and C in 1..64");
  lua_Integer h = luaL_checkinteger(L, 2), w = luaL_checkinteger(L, 3);
  if (h < 1 || w < 1 || h > 16384 || w > 16384) return oe_lua_fail(L, fn, "h and w must be in 1..16384");
  int64_t shape[3] = { h, w, x->shape[2] };
  oe_tensor *y = oe_lua_push_uninit(L, fn, OE_F32, 3, shape);
  oe_tfjs_resize_bilinear_ac(oe_f32(x), (int)x->shape[0], (int)x->shape[1], (int)x->shape[2], oe_f32(y), (int)h, (int)w);
  return 1;
}

static int l_images(lua_State *L) {
  const char *fn = "tfjs_images";
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer size = luaL_checkinteger(L, 2);
  if (size < 1 || size > 16384) return oe_lua_fail(L, fn, "size must be in 1..16384");
  int64_t B = (int64_t)luaL_len(L, 1);
  if (B < 1 || B > (1 << 20)) return oe_lua_fail(L, fn, "expected 1..2^20 images, got %lld", (long long)B);
  const oe_tensor **img = lua_newuserdatauv(L, (size_t)B * sizeof *img, 0); /* freed by the GC */
  size_t most = 0;
  for (int64_t i = 0; i < B; i++) {
    lua_geti(L, 1, (lua_Integer)(i + 1));
    const oe_tensor *t = luaL_testudata(L, -1, OE_TENSOR_MT);
    if (!t || !t->storage) return oe_lua_fail(L, fn, "image %lld is not a tensor", (long long)(i + 1));
    if (t->dtype != OE_U8 || t->ndim != 3 || (t->shape[2] != 3 && t->shape[2] != 1) || t->shape[0] < 1 ||
        t->shape[1] < 1 || t->shape[0] > (1 << 16) || t->shape[1] > (1 << 16))
      return oe_lua_fail(L, fn, "image %lld must be uint8 (H, W, 3) or (H, W, 1) with H, W in 1..65536",
                         (long long)(i + 1));
    size_t need = (size_t)t->shape[0] * (size_t)t->shape[1] * 3;
    if (need > most) most = need;
    img[i] = t;
    lua_pop(L, 1); /* the table keeps it */
  }
  int nt = omp_get_max_threads();
  int64_t shape[4] = { B, size, size, 3 };
  oe_tensor *y = oe_lua_push_uninit(L, fn, OE_F32, 4, shape);
  float *out = oe_f32(y);
  float *scratch = malloc(most * sizeof(float) * (size_t)nt);
  if (!scratch) return oe_lua_fail(L, fn, "out of memory (%zu bytes of scratch)", most * sizeof(float) * (size_t)nt);
  const size_t per = (size_t)size * (size_t)size * 3;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (B > 1 && nt > 1)
  for (int64_t i = 0; i < B; i++) {
    const oe_tensor *t = img[i];
    oe_tfjs_image_input((const uint8_t *)oe_data(t), (int)t->shape[0], (int)t->shape[1], (int)t->shape[2], out + (size_t)i * per,
                        (int)size, scratch + most * (size_t)omp_get_thread_num());
  }
  free(scratch);
  return 1;
}

static int l_close(lua_State *L) {
  tfjs_box *b = luaL_checkudata(L, 1, TFJS_MT);
  oe_tfjs_free(b->m);
  b->m = NULL;
  return 0;
}

void oe_bind_tfjs(lua_State *L) {
  luaL_newmetatable(L, TFJS_MT);
  lua_pushcfunction(L, tfjs_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, tfjs_gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    { "tfjs_load", l_load }, { "tfjs_info", l_info }, { "tfjs_forward", l_forward }, { "tfjs_arena_bytes", l_arena },
    { "tfjs_check_json", l_check_json }, { "tfjs_resize_bilinear_ac", l_resize }, { "tfjs_images", l_images },
    { "tfjs_close", l_close },
    { NULL, NULL }
  };
  luaL_setfuncs(L, fns, 0);
}
