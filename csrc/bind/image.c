/* bind/image.c: Lua binding of csrc/io/image*.c (functions image_* in the core table).
 * I/O failures (bad files) return nil, "<name>: <reason>"; programming errors raise.
 * Buffers that outlive a possible Lua error are owned by GC'd userdata boxes. */
#include <stdlib.h>
#include <string.h>
#include "../core/atomic_write.h"
#include "../io/image.h"
#include "bind.h"

#define BUF_MT "oe.image.buffer"
#define MAX_FILE_BYTES ((size_t)1 << 30)

typedef struct { uint8_t *p; size_t n; } buf_box;

static int buf_gc(lua_State *L) {
  buf_box *b = luaL_checkudata(L, 1, BUF_MT);
  free(b->p);
  b->p = NULL;
  return 0;
}

static buf_box *push_box(lua_State *L) {
  buf_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->n = 0;
  luaL_setmetatable(L, BUF_MT);
  return b;
}

/* ---- option helpers (table at idx, may be nil) ---- */
static int opt_field(lua_State *L, int idx, const char *k) {
  if (lua_type(L, idx) != LUA_TTABLE) return LUA_TNIL;
  return lua_getfield(L, idx, k);
}
static lua_Integer opt_int(lua_State *L, int idx, const char *k, lua_Integer def, const char *fn) {
  int t = opt_field(L, idx, k);
  lua_Integer v = def;
  if (t != LUA_TNIL) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok) oe_lua_fail(L, fn, "option '%s' must be an integer, got %s", k, luaL_typename(L, -1));
  }
  if (lua_type(L, idx) == LUA_TTABLE) lua_pop(L, 1);
  return v;
}
static double opt_num(lua_State *L, int idx, const char *k, double def, const char *fn) {
  int t = opt_field(L, idx, k);
  double v = def;
  if (t != LUA_TNIL) {
    int ok;
    v = lua_tonumberx(L, -1, &ok);
    if (!ok) oe_lua_fail(L, fn, "option '%s' must be a number, got %s", k, luaL_typename(L, -1));
  }
  if (lua_type(L, idx) == LUA_TTABLE) lua_pop(L, 1);
  return v;
}
static int opt_bool(lua_State *L, int idx, const char *k, int def) {
  int t = opt_field(L, idx, k);
  int v = t == LUA_TNIL ? def : lua_toboolean(L, -1);
  if (lua_type(L, idx) == LUA_TTABLE) lua_pop(L, 1);
  return v;
}
static const char *opt_str(lua_State *L, int idx, const char *k, const char *def, const char *fn) {
  int t = opt_field(L, idx, k);
  const char *v = def;
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING) oe_lua_fail(L, fn, "option '%s' must be a string, got %s", k, luaL_typename(L, -1));
    v = lua_tostring(L, -1); /* stays valid: the string is held by the options table */
  }
  if (lua_type(L, idx) == LUA_TTABLE) lua_pop(L, 1);
  return v;
}

static void read_image_opts(lua_State *L, int idx, oe_image_opts *o, const char *fn) {
  oe_image_opts_default(o);
  o->max_pixels = opt_int(L, idx, "max_pixels", OE_IMG_DEFAULT_MAX_PIXELS, fn);
  if (o->max_pixels <= 0) oe_lua_fail(L, fn, "option 'max_pixels' must be positive");
  o->keep_alpha = opt_bool(L, idx, "keep_alpha", 0);
  o->exif = opt_bool(L, idx, "exif", 1);
  o->scale_denom = (int)opt_int(L, idx, "scale", 1, fn);
  if (o->scale_denom != 1 && o->scale_denom != 2 && o->scale_denom != 4 && o->scale_denom != 8)
    oe_lua_fail(L, fn, "option 'scale' must be 1, 2, 4 or 8 (JPEG decodes at 1/scale), got %d", o->scale_denom);
  if (opt_field(L, idx, "background") != LUA_TNIL) {
    if (!lua_istable(L, -1)) oe_lua_fail(L, fn, "option 'background' must be a table {r, g, b} of 0..255");
    for (int k = 0; k < 3; k++) {
      lua_geti(L, -1, k + 1);
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      if (!ok || v < 0 || v > 255) oe_lua_fail(L, fn, "option 'background' must be a table {r, g, b} of 0..255");
      o->bg[k] = (uint8_t)v;
      lua_pop(L, 1);
    }
  }
  if (lua_type(L, idx) == LUA_TTABLE) lua_pop(L, 1);
}

/* Source at index 1: a path, or bytes when opts.bytes is true. Leaves a buffer box
 * on the stack for paths. Returns 0 and pushes nil, msg on an I/O failure. */
static int get_source(lua_State *L, int opts, const char *fn, const uint8_t **data, size_t *len, const char **name) {
  size_t sl;
  const char *s = luaL_checklstring(L, 1, &sl);
  int is_bytes = opt_bool(L, opts, "bytes", 0);
  *name = opt_str(L, opts, "name", is_bytes ? "<bytes>" : s, fn);
  if (is_bytes) {
    *data = (const uint8_t *)s;
    *len = sl;
    return 1;
  }
  buf_box *b = push_box(L);
  oe_err e;
  if (oe_read_file(s, MAX_FILE_BYTES, &b->p, &b->n, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s: %s", fn, *name, e.msg);
    return 0;
  }
  *data = b->p;
  *len = b->n;
  return 1;
}

static int fail_io(lua_State *L, const char *fn, const char *name, const char *msg) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s: %s", fn, name, msg);
  return 2;
}

/* the source at argument 1 with options at 2, read up to its header: 1 on
 * success, 0 with nil, message pushed (bad file) */
static int open_source(lua_State *L, const char *fn, oe_image_opts *o, const uint8_t **data, size_t *len,
                       const char **name, oe_image_info *info) {
  read_image_opts(L, 2, o, fn);
  if (!get_source(L, 2, fn, data, len, name)) return 0;
  oe_err e;
  if (oe_image_info_of(*data, *len, o, info, &e) != OE_OK) { fail_io(L, fn, *name, e.msg); return 0; }
  return 1;
}

/* image_load(src, opts) -> uint8 (H, W, 3|4) | nil, msg */
static int l_load(lua_State *L) {
  const char *fn = "image.load";
  oe_image_opts o;
  const uint8_t *data;
  size_t len;
  const char *name;
  oe_image_info info;
  oe_err e;
  if (!open_source(L, fn, &o, &data, &len, &name, &info)) return 2;
  int h, w, c;
  oe_image_out_size(&info, &o, &h, &w, &c);
  int64_t shape[3] = {h, w, c};
  oe_tensor *t = oe_lua_push_uninit(L, fn, OE_U8, 3, shape);
  if (oe_image_decode_into(data, len, &info, &o, oe_data(t), &e) != OE_OK) return fail_io(L, fn, name, e.msg);
  return 1;
}

/* image_info(src, opts) -> {width, height, channels, format, orientation, bit_depth} | nil, msg */
static int l_info(lua_State *L) {
  const char *fn = "image.info";
  oe_image_opts o;
  const uint8_t *data;
  size_t len;
  const char *name;
  oe_image_info info;
  if (!open_source(L, fn, &o, &data, &len, &name, &info)) return 2;
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, info.width); lua_setfield(L, -2, "width");
  lua_pushinteger(L, info.height); lua_setfield(L, -2, "height");
  lua_pushinteger(L, info.raw_width); lua_setfield(L, -2, "raw_width");
  lua_pushinteger(L, info.raw_height); lua_setfield(L, -2, "raw_height");
  lua_pushinteger(L, info.channels); lua_setfield(L, -2, "channels");
  lua_pushstring(L, oe_image_format_name(info.format)); lua_setfield(L, -2, "format");
  lua_pushinteger(L, info.orientation); lua_setfield(L, -2, "orientation");
  lua_pushinteger(L, info.bit_depth); lua_setfield(L, -2, "bit_depth");
  lua_pushboolean(L, info.cmyk != 0); lua_setfield(L, -2, "cmyk");
  return 1;
}

/* HWC (or HW) image tensor -> h, w, c */
static void hwc_of(lua_State *L, const oe_tensor *t, const char *fn, int *h, int *w, int *c) {
  if (t->ndim != 2 && t->ndim != 3)
    oe_lua_fail(L, fn, "expected an image of shape (H, W) or (H, W, C), got %d dimensions", t->ndim);
  if (t->dtype != OE_U8 && t->dtype != OE_F32)
    oe_lua_fail(L, fn, "expected a uint8 or float32 image, got %s", oe_dtype_name(t->dtype));
  int64_t hh = t->shape[0], ww = t->shape[1], cc = t->ndim == 3 ? t->shape[2] : 1;
  if (hh <= 0 || ww <= 0 || cc <= 0 || hh > 0x7FFFFFFF || ww > 0x7FFFFFFF || cc > 64)
    oe_lua_fail(L, fn, "image shape out of range");
  *h = (int)hh;
  *w = (int)ww;
  *c = (int)cc;
}

static int check_size_arg(lua_State *L, int idx, const char *fn, const char *what) {
  lua_Integer v = luaL_checkinteger(L, idx);
  if (v <= 0 || v > 1 << 20) oe_lua_fail(L, fn, "%s must be in 1..%d, got %d", what, 1 << 20, (int)v);
  return (int)v;
}

/* image_resize(t, h, w, method) */
static int l_resize(lua_State *L) {
  const char *fn = "image.resize";
  oe_tensor *t = oe_lua_check(L, 1, fn, "image");
  int h, w, c;
  hwc_of(L, t, fn, &h, &w, &c);
  int dh = check_size_arg(L, 2, fn, "height"), dw = check_size_arg(L, 3, fn, "width");
  const char *mname = luaL_optstring(L, 4, "bilinear_cv");
  oe_resize_method m;
  if (!oe_resize_method_from_name(mname, &m))
    return oe_lua_fail(L, fn, "unknown method '%s' (bilinear_cv, bilinear_pil, bicubic_pil)", mname);
  int64_t shape[3] = {dh, dw, c};
  oe_tensor *o = oe_lua_push_uninit(L, fn, t->dtype, t->ndim, shape);
  oe_err e;
  int st = t->dtype == OE_U8 ? oe_resize_u8(oe_data(t), h, w, c, oe_data(o), dh, dw, m, &e)
                             : oe_resize_f32(oe_f32(t), h, w, c, oe_f32(o), dh, dw, m, &e);
  if (st != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  return 1;
}

/* image_center_crop(t, h, w): top = floor((H - h) / 2), left likewise */
static int l_center_crop(lua_State *L) {
  const char *fn = "image.center_crop";
  oe_tensor *t = oe_lua_check(L, 1, fn, "image");
  int h, w, c;
  hwc_of(L, t, fn, &h, &w, &c);
  int ch = check_size_arg(L, 2, fn, "height"), cw = check_size_arg(L, 3, fn, "width");
  if (ch > h || cw > w) return oe_lua_fail(L, fn, "crop %d x %d is larger than the image %d x %d", ch, cw, h, w);
  int sy = (h - ch) / 2, sx = (w - cw) / 2;
  int64_t shape[3] = {ch, cw, c};
  oe_tensor *o = oe_lua_push_uninit(L, fn, t->dtype, t->ndim, shape);
  size_t es = oe_dtype_size(t->dtype), row = (size_t)cw * c * es;
  const char *s = oe_data(t);
  char *d = oe_data(o);
  for (int y = 0; y < ch; y++) memcpy(d + y * row, s + (((size_t)(y + sy) * w + sx) * c) * es, row);
  return 1;
}

static void read_mean_std(lua_State *L, int idx, float *v, const char *fn, const char *what) {
  luaL_checktype(L, idx, LUA_TTABLE);
  for (int k = 0; k < 3; k++) {
    lua_geti(L, idx, k + 1);
    int ok;
    double x = lua_tonumberx(L, -1, &ok);
    if (!ok) oe_lua_fail(L, fn, "%s must hold 3 numbers", what);
    v[k] = (float)x;
    lua_pop(L, 1);
  }
}

/* image_to_float(t, scale, mean{3}, std{3}) -> float32 (3, H, W) */
static int l_to_float(lua_State *L) {
  const char *fn = "image.to_float";
  oe_tensor *t = oe_lua_check(L, 1, fn, "image");
  int h, w, c;
  hwc_of(L, t, fn, &h, &w, &c);
  if (c < 3) return oe_lua_fail(L, fn, "expected 3 (or 4) channels, got %d", c);
  float scale = (float)luaL_checknumber(L, 2), mean[3], std[3];
  read_mean_std(L, 3, mean, fn, "mean");
  read_mean_std(L, 4, std, fn, "std");
  for (int k = 0; k < 3; k++)
    if (std[k] == 0.f) return oe_lua_fail(L, fn, "std must not be 0");
  int64_t shape[3] = {3, h, w};
  oe_tensor *o = oe_lua_push_uninit(L, fn, OE_F32, 3, shape);
  if (t->dtype == OE_U8) {
    oe_image_to_chw_f32(oe_data(t), h, w, c, 0, 0, h, w, w, scale, mean, std, oe_f32(o));
  } else {
    const float *s = oe_f32(t);
    float *d = oe_f32(o);
    size_t plane = (size_t)h * w;
    for (size_t i = 0; i < plane; i++)
      for (int k = 0; k < 3; k++) d[k * plane + i] = (s[i * c + k] * scale - mean[k]) / std[k];
  }
  return 1;
}

/* image_batch(paths, opts) -> float32 (B, 3, H, W), bad {{index, path, reason}...}
 * opts: size {h, w}, shortest_edge, method, fast, scale, mean, std, stop_on_error,
 * and the decode options (max_pixels, exif, background). */
static int l_batch(lua_State *L) {
  const char *fn = "image.load_batch";
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = (int)luaL_len(L, 1);
  oe_batch_opts o;
  memset(&o, 0, sizeof o);
  read_image_opts(L, 2, &o.img, fn);
  if (lua_getfield(L, 2, "size") != LUA_TTABLE) return oe_lua_fail(L, fn, "option 'size' must be a table {h, w}");
  lua_geti(L, -1, 1);
  lua_geti(L, -2, 2);
  o.out_h = (int)luaL_checkinteger(L, -2);
  o.out_w = (int)luaL_checkinteger(L, -1);
  lua_pop(L, 3);
  if (o.out_h <= 0 || o.out_w <= 0 || o.out_h > 1 << 16 || o.out_w > 1 << 16)
    return oe_lua_fail(L, fn, "option 'size' out of range");
  o.shortest_edge = (int)opt_int(L, 2, "shortest_edge", 0, fn);
  if (o.shortest_edge < 0 || o.shortest_edge > 1 << 16) return oe_lua_fail(L, fn, "option 'shortest_edge' out of range");
  const char *mname = opt_str(L, 2, "method", "bilinear_cv", fn);
  if (!oe_resize_method_from_name(mname, &o.method))
    return oe_lua_fail(L, fn, "unknown method '%s' (bilinear_cv, bilinear_pil, bicubic_pil)", mname);
  o.fast = opt_bool(L, 2, "fast", 0);
  o.scale = (float)opt_num(L, 2, "rescale", 1.0 / 255.0, fn);
  if (opt_field(L, 2, "mean") != LUA_TTABLE) return oe_lua_fail(L, fn, "option 'mean' must be a table of 3 numbers");
  read_mean_std(L, lua_gettop(L), o.mean, fn, "mean");
  lua_pop(L, 1);
  if (opt_field(L, 2, "std") != LUA_TTABLE) return oe_lua_fail(L, fn, "option 'std' must be a table of 3 numbers");
  read_mean_std(L, lua_gettop(L), o.std, fn, "std");
  lua_pop(L, 1);
  for (int k = 0; k < 3; k++)
    if (o.std[k] == 0.f) return oe_lua_fail(L, fn, "std must not be 0");
  int stop = opt_bool(L, 2, "stop_on_error", 0);
  o.threads = (int)opt_int(L, 2, "threads", oe_get_num_threads(), fn);

  /* scratch owned by userdata (freed by the GC if anything below raises) */
  const char **paths = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n ? n : 1), 0);
  int *ok = lua_newuserdatauv(L, sizeof(int) * (size_t)(n ? n : 1), 0);
  const size_t msz = 256;
  char *msgs = lua_newuserdatauv(L, msz * (size_t)(n ? n : 1), 0);
  for (int i = 0; i < n; i++) {
    if (lua_geti(L, 1, i + 1) != LUA_TSTRING) return oe_lua_fail(L, fn, "paths[%d] is not a string", i + 1);
    paths[i] = lua_tostring(L, -1); /* held by the paths table */
    lua_pop(L, 1);
    msgs[msz * i] = 0;
  }
  int64_t shape[4] = {n, 3, o.out_h, o.out_w};
  oe_tensor *t = oe_lua_push_uninit(L, fn, OE_F32, 4, shape);
  int tidx = lua_gettop(L);
  oe_image_batch(paths, n, &o, oe_f32(t), ok, msgs, msz, stop);
  /* compact the good items to the front */
  size_t per = (size_t)3 * o.out_h * o.out_w;
  int good = 0;
  lua_newtable(L);
  int nbad = 0;
  for (int i = 0; i < n; i++) {
    if (ok[i] == 1) {
      if (good != i) memmove(oe_f32(t) + per * good, oe_f32(t) + per * i, per * sizeof(float));
      good++;
    } else if (ok[i] == 0) {
      lua_createtable(L, 0, 3);
      lua_pushinteger(L, i + 1); lua_setfield(L, -2, "index");
      lua_pushstring(L, paths[i]); lua_setfield(L, -2, "path");
      lua_pushstring(L, msgs + msz * i); lua_setfield(L, -2, "reason");
      lua_rawseti(L, -2, ++nbad);
    }
  }
  if (good != n) {
    int64_t s2[4] = {good, 3, o.out_h, o.out_w};
    oe_lua_push_view(L, t, 4, s2, t->offset);
    lua_replace(L, tidx);
  }
  lua_pushvalue(L, tidx);
  lua_insert(L, -2);
  return 2;
}

static int subsamp_opt(lua_State *L, int idx, const char *fn) {
  const char *s = opt_str(L, idx, "subsampling", "420", fn);
  if (!strcmp(s, "444")) return 444;
  if (!strcmp(s, "422")) return 422;
  if (!strcmp(s, "420")) return 420;
  return oe_lua_fail(L, fn, "option 'subsampling' must be \"444\", \"422\" or \"420\", got \"%s\"", s);
}

/* encode t as fmt into a buffer box pushed on the stack; raises on bad arguments */
static buf_box *encode_to_box(lua_State *L, oe_tensor *t, const char *format, int opts, const char *fn) {
  int h, w, c;
  hwc_of(L, t, fn, &h, &w, &c);
  if (t->dtype != OE_U8) oe_lua_fail(L, fn, "expected a uint8 image, got %s", oe_dtype_name(t->dtype));
  int quality = (int)opt_int(L, opts, "quality", 90, fn);
  int level = (int)opt_int(L, opts, "level", 6, fn);
  int ss = subsamp_opt(L, opts, fn);
  buf_box *b = push_box(L);
  oe_err e;
  int st;
  if (!strcmp(format, "jpeg") || !strcmp(format, "jpg")) st = oe_image_encode_jpeg(oe_data(t), h, w, c, quality, ss, &b->p, &b->n, &e);
  else if (!strcmp(format, "png")) st = oe_image_encode_png(oe_data(t), h, w, c, level, &b->p, &b->n, &e);
  else return oe_lua_fail(L, fn, "unknown format '%s' (jpeg or png)", format), NULL;
  if (st != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
  return b;
}

/* image_encode(t, format, opts) -> string */
static int l_encode(lua_State *L) {
  const char *fn = "image.encode";
  oe_tensor *t = oe_lua_check(L, 1, fn, "image");
  const char *format = luaL_checkstring(L, 2);
  buf_box *b = encode_to_box(L, t, format, 3, fn);
  lua_pushlstring(L, (const char *)b->p, b->n);
  return 1;
}

/* image_save(t, path, format, opts) -> true | nil, msg */
static int l_save(lua_State *L) {
  const char *fn = "image.save";
  oe_tensor *t = oe_lua_check(L, 1, fn, "image");
  const char *path = luaL_checkstring(L, 2);
  const char *format = luaL_checkstring(L, 3);
  buf_box *b = encode_to_box(L, t, format, 4, fn);
  oe_err e;
  if (oe_atomic_write_file(path, b->p, b->n, &e) != OE_OK) return fail_io(L, fn, path, e.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg image_fns[] = {
    {"image_load", l_load},           {"image_info", l_info},     {"image_resize", l_resize},
    {"image_center_crop", l_center_crop}, {"image_to_float", l_to_float}, {"image_batch", l_batch},
    {"image_encode", l_encode},       {"image_save", l_save},     {NULL, NULL}};

void oe_bind_image(lua_State *L) {
  if (luaL_newmetatable(L, BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, image_fns, 0);
}
