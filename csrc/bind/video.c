/* video.c (bind): core.video_info, core.video_sample, core.video_decode_all.
 * I/O failures return nil, message; bad arguments raise. */
#include "bind.h"
#include "../io/video.h"
#include <stdlib.h>
#include <string.h>

static int getfield(lua_State *L, int idx, const char *k) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_getfield(L, idx, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
  return 1;
}
static lua_Integer opt_int(lua_State *L, int idx, const char *k, lua_Integer def, const char *fn) {
  if (!getfield(L, idx, k)) return def;
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) oe_lua_fail(L, fn, "option '%s' must be an integer, got %s", k, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}
static const char *opt_str(lua_State *L, int idx, const char *k, const char *def, const char *fn) {
  if (!getfield(L, idx, k)) return def;
  if (lua_type(L, -1) != LUA_TSTRING) oe_lua_fail(L, fn, "option '%s' must be a string, got %s", k, luaL_typename(L, -1));
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s;
}

static void push_info(lua_State *L, const oe_video_info *in) {
  lua_createtable(L, 0, 14);
  if (in->duration >= 0) { lua_pushnumber(L, in->duration); lua_setfield(L, -2, "duration"); }
  lua_pushnumber(L, in->fps); lua_setfield(L, -2, "fps");
  lua_pushinteger(L, in->frames); lua_setfield(L, -2, "frames");
  lua_pushboolean(L, in->frames_estimated); lua_setfield(L, -2, "frames_estimated");
  if (in->frames_announced >= 0) { lua_pushinteger(L, in->frames_announced); lua_setfield(L, -2, "frames_announced"); }
  lua_pushboolean(L, in->truncated); lua_setfield(L, -2, "truncated");
  lua_pushinteger(L, in->width); lua_setfield(L, -2, "width");
  lua_pushinteger(L, in->height); lua_setfield(L, -2, "height");
  lua_pushnumber(L, in->start_time); lua_setfield(L, -2, "start_time");
  lua_pushstring(L, in->codec); lua_setfield(L, -2, "codec");
  lua_pushstring(L, in->container); lua_setfield(L, -2, "container");
  lua_pushstring(L, in->pix_fmt); lua_setfield(L, -2, "pix_fmt");
  lua_pushboolean(L, in->has_audio); lua_setfield(L, -2, "has_audio");
}

static int l_video_info(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer maxpix = opt_int(L, 2, "max_pixels", (lua_Integer)1 << 26, "video.info");
  oe_video_info info;
  oe_err e;
  if (oe_video_probe(path, maxpix, &info, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  push_info(L, &info);
  return 1;
}

/* core.video_sample(path, opts) -> tensor, info | nil, msg */
static int l_video_sample(lua_State *L) {
  const char *fn = "video.sample";
  const char *path = luaL_checkstring(L, 1);
  oe_video_opts o;
  oe_video_default_opts(&o);
  int64_t *given = NULL;
  if (getfield(L, 2, "indices")) {
    if (lua_type(L, -1) != LUA_TTABLE) oe_lua_fail(L, fn, "option 'indices' must be a list of 0-based frame indices");
    int n = (int)luaL_len(L, -1);
    if (n < 1 || n > 100000) oe_lua_fail(L, fn, "option 'indices' must hold 1..100000 indices");
    given = lua_newuserdatauv(L, sizeof(int64_t) * n, 0);
    for (int i = 0; i < n; i++) {
      lua_geti(L, -2, i + 1);
      int ok;
      given[i] = lua_tointegerx(L, -1, &ok);
      if (!ok) oe_lua_fail(L, fn, "option 'indices': item %d is not an integer", i + 1);
      lua_pop(L, 1);
    }
    lua_remove(L, -2); /* keep the userdata on the stack */
    o.strategy = OE_VS_INDICES;
    o.indices = given;
    o.nframes = n;
  } else {
    lua_Integer nf = opt_int(L, 2, "frames", 16, fn);
    if (nf < 1 || nf > 100000) oe_lua_fail(L, fn, "option 'frames' must be in 1..100000");
    o.nframes = (int)nf;
    const char *strat = opt_str(L, 2, "strategy", "uniform", fn);
    if (strcmp(strat, "uniform") == 0) o.strategy = OE_VS_UNIFORM;
    else if (strcmp(strat, "consecutive") == 0) o.strategy = OE_VS_CONSECUTIVE;
    else oe_lua_fail(L, fn, "option 'strategy' must be \"uniform\" or \"consecutive\", got '%s'", strat);
  }
  lua_Integer stride = opt_int(L, 2, "stride", 4, fn);
  if (stride < 1 || stride > 100000) oe_lua_fail(L, fn, "option 'stride' must be in 1..100000");
  o.stride = (int)stride;
  const char *start = opt_str(L, 2, "start", "random", fn);
  if (strcmp(start, "random") == 0) o.start_center = 0;
  else if (strcmp(start, "center") == 0) o.start_center = 1;
  else oe_lua_fail(L, fn, "option 'start' must be \"random\" or \"center\", got '%s'", start);
  if (getfield(L, 2, "seed")) {
    int ok;
    lua_Integer s = lua_tointegerx(L, -1, &ok);
    if (!ok) oe_lua_fail(L, fn, "option 'seed' must be an integer");
    lua_pop(L, 1);
    o.has_seed = 1;
    o.seed = (uint64_t)s;
  }
  if (getfield(L, 2, "size")) {
    int64_t sz[OE_MAX_DIMS];
    int n = oe_lua_shape(L, lua_gettop(L), sz, fn, "size");
    lua_pop(L, 1);
    if (n != 2 || sz[0] < 1 || sz[1] < 1 || sz[0] > 32768 || sz[1] > 32768)
      oe_lua_fail(L, fn, "option 'size' must be {height, width} with sides in 1..32768");
    o.out_h = (int)sz[0];
    o.out_w = (int)sz[1];
  }
  const char *norm = opt_str(L, 2, "normalize", NULL, fn);
  if (!norm) o.norm = OE_VN_NONE;
  else if (strcmp(norm, "imagenet") == 0) o.norm = OE_VN_IMAGENET;
  else if (strcmp(norm, "half") == 0) o.norm = OE_VN_HALF;
  else oe_lua_fail(L, fn, "option 'normalize' must be \"imagenet\", \"half\" or nil, got '%s'", norm);
  const char *fmt = opt_str(L, 2, "format", "float", fn);
  if (strcmp(fmt, "float") == 0) o.out_u8 = 0;
  else if (strcmp(fmt, "uint8") == 0) o.out_u8 = 1;
  else oe_lua_fail(L, fn, "option 'format' must be \"float\" (T, 3, H, W) or \"uint8\" (T, H, W, 3)");
  if (getfield(L, 2, "seek")) { o.seek = lua_toboolean(L, -1); lua_pop(L, 1); }
  o.max_packets = opt_int(L, 2, "max_packets", o.max_packets, fn);
  if (o.max_packets < 1) oe_lua_fail(L, fn, "option 'max_packets' must be >= 1");
  o.max_pixels = opt_int(L, 2, "max_pixels", o.max_pixels, fn);
  if (o.max_pixels < 1) oe_lua_fail(L, fn, "option 'max_pixels' must be >= 1");
  o.max_output_bytes = opt_int(L, 2, "max_output_bytes", o.max_output_bytes, fn);
  if (o.max_output_bytes < 1) oe_lua_fail(L, fn, "option 'max_output_bytes' must be >= 1");

  int64_t *idx = lua_newuserdatauv(L, sizeof(int64_t) * 2 * o.nframes, 0);
  oe_tensor *t = oe_lua_push_empty(L);
  oe_video_info info;
  oe_video_stats st;
  oe_err e;
  if (oe_video_sample(path, &o, t, idx, idx + o.nframes, &info, &st, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  push_info(L, &info);
  lua_createtable(L, o.nframes, 0);
  for (int i = 0; i < o.nframes; i++) { lua_pushinteger(L, idx[i]); lua_rawseti(L, -2, i + 1); }
  lua_setfield(L, -2, "indices");
  lua_createtable(L, o.nframes, 0);
  for (int i = 0; i < o.nframes; i++) { lua_pushinteger(L, idx[o.nframes + i]); lua_rawseti(L, -2, i + 1); }
  lua_setfield(L, -2, "shown");
  lua_pushinteger(L, st.decoded); lua_setfield(L, -2, "decoded_frames");
  lua_pushinteger(L, st.packets); lua_setfield(L, -2, "packets");
  lua_pushinteger(L, st.seeks); lua_setfield(L, -2, "seeks");
  return 2;
}

static int l_video_decode_all(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  lua_Integer mp = opt_int(L, 2, "max_packets", 10000000, "video.decode_all");
  if (mp < 1) oe_lua_fail(L, "video.decode_all", "option 'max_packets' must be >= 1");
  oe_video_stats st;
  oe_err e;
  if (oe_video_decode_all(path, mp, &st, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, st.decoded); lua_setfield(L, -2, "decoded_frames");
  lua_pushinteger(L, st.packets); lua_setfield(L, -2, "packets");
  return 1;
}

void oe_bind_video(lua_State *L) {
  static const luaL_Reg fns[] = {{"video_info", l_video_info},
                                 {"video_sample", l_video_sample},
                                 {"video_decode_all", l_video_decode_all},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
