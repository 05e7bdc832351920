/* bind/webp.c: WebP files, animated or still (csrc/io/webp_anim.h), for Lua:
 *   core.webp_info(path [, opts])   -> {width, height, frames, animated, loop_count, out_frames} | nil, message
 *   core.webp_read(path [, opts])   -> uint8 (T, H, W, C), info (+ timestamps, ms) | nil, message
 *   core.webp_read_bytes(s [, opts]) the same from a string (messages name "<bytes>")
 *   core.webp_read_list({path...} [, opts]) -> {uint8 (T, H, W, C) or false...}, {false or message...}:
 *       webp_read on each file, the decoding spread over the OpenMP threads (files are read
 *       and checked first, one after the other); a bad file gives false and its message
 * opts: channels (3: RGB on bg, default; 4: RGBA), bg ({r, g, b}, default white), frames (0: all;
 * K: K frames spread evenly), max_pixels, max_frames, max_out_bytes, max_work (caps, see the
 * header), max_file_bytes (default 256 MiB). Bad files give nil, "<path>: <reason>"; wrong
 * arguments raise. The file buffer is owned by a GC'd box, so a Lua error cannot leak it. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "../core/util.h"
#include "../io/webp_anim.h"
#include "bind.h"

#define WEBP_BUF_MT "oe.webp.buffer"
#define DEFAULT_MAX_FILE ((lua_Integer)256 << 20)

typedef struct { uint8_t *p; } webp_box;

static int box_gc(lua_State *L) {
  webp_box *b = luaL_checkudata(L, 1, WEBP_BUF_MT);
  free(b->p);
  b->p = NULL;
  return 0;
}

static lua_Integer opt_int(lua_State *L, int idx, const char *k, lua_Integer def, const char *fn) {
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

static void read_opts(lua_State *L, int idx, oe_webp_anim_opts *o, lua_Integer *max_file, const char *fn) {
  if (!lua_isnoneornil(L, idx)) luaL_checktype(L, idx, LUA_TTABLE);
  oe_webp_anim_opts_default(o);
  lua_Integer c = opt_int(L, idx, "channels", 3, fn);
  if (c != 3 && c != 4) oe_lua_fail(L, fn, "option 'channels' must be 3 or 4, got %lld", (long long)c);
  o->channels = (int)c;
  lua_Integer k = opt_int(L, idx, "frames", 0, fn);
  if (k < 0 || k > 1000000) oe_lua_fail(L, fn, "option 'frames' must be in 0..1000000, got %lld", (long long)k);
  o->frames = (int)k;
  o->max_pixels = opt_int(L, idx, "max_pixels", 0, fn);
  lua_Integer mf = opt_int(L, idx, "max_frames", 0, fn);
  if (mf < 0 || mf > 1000000) oe_lua_fail(L, fn, "option 'max_frames' must be in 0..1000000");
  o->max_frames = (int)mf;
  o->max_out_bytes = opt_int(L, idx, "max_out_bytes", 0, fn);
  o->max_work = opt_int(L, idx, "max_work", 0, fn);
  *max_file = opt_int(L, idx, "max_file_bytes", DEFAULT_MAX_FILE, fn);
  if (*max_file <= 0) oe_lua_fail(L, fn, "option 'max_file_bytes' must be positive");
  if (lua_type(L, idx) == LUA_TTABLE) {
    if (lua_getfield(L, idx, "bg") != LUA_TNIL) {
      if (!lua_istable(L, -1)) oe_lua_fail(L, fn, "option 'bg' must be a table {r, g, b}");
      for (int i = 0; i < 3; i++) {
        lua_rawgeti(L, -1, i + 1);
        int ok;
        lua_Integer v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v > 255) oe_lua_fail(L, fn, "option 'bg' must hold three integers in 0..255");
        o->bg[i] = (uint8_t)v;
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
}

static void push_info(lua_State *L, const oe_webp_anim_info *in) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, in->width);
  lua_setfield(L, -2, "width");
  lua_pushinteger(L, in->height);
  lua_setfield(L, -2, "height");
  lua_pushinteger(L, in->frames);
  lua_setfield(L, -2, "frames");
  lua_pushboolean(L, in->animated);
  lua_setfield(L, -2, "animated");
  lua_pushinteger(L, in->loop_count);
  lua_setfield(L, -2, "loop_count");
  lua_pushinteger(L, in->out_frames);
  lua_setfield(L, -2, "out_frames");
}

static int push_fail(lua_State *L, const char *name, const char *msg) {
  luaL_pushfail(L);
  lua_pushfstring(L, "%s: %s", name, msg);
  return 2;
}

/* the input's bytes: from the file at arg 1 (kept in a box pushed on the stack) or the string */
static const uint8_t *input(lua_State *L, int from_bytes, size_t *len, lua_Integer max_file, const char **name,
                            char *why, size_t whylen) {
  if (from_bytes) {
    *name = "<bytes>";
    return (const uint8_t *)luaL_checklstring(L, 1, len);
  }
  *name = luaL_checkstring(L, 1);
  webp_box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  luaL_setmetatable(L, WEBP_BUF_MT);
  oe_err e;
  if (oe_read_regular_file(*name, (size_t)max_file, &b->p, len, &e) != OE_OK) {
    snprintf(why, whylen, "%s", e.msg);
    return NULL;
  }
  return b->p;
}

static int do_read(lua_State *L, int from_bytes, int decode, const char *fn) {
  oe_webp_anim_opts o;
  lua_Integer max_file;
  read_opts(L, 2, &o, &max_file, fn);
  lua_settop(L, 2);
  size_t len = 0;
  const char *name;
  char why[sizeof ((oe_err *)0)->msg];
  const uint8_t *buf = input(L, from_bytes, &len, max_file, &name, why, sizeof why);
  if (!buf) return push_fail(L, name, why);
  oe_err e;
  oe_webp_anim_info info;
  if (oe_webp_anim_info_of(buf, len, &o, &info, &e) != OE_OK) return push_fail(L, name, e.msg);
  if (!decode) {
    push_info(L, &info);
    return 1;
  }
  int64_t shape[4] = { info.out_frames, info.height, info.width, o.channels };
  oe_tensor *t = oe_lua_push_uninit(L, fn, OE_U8, 4, shape);
  int *ts = lua_newuserdatauv(L, sizeof(int) * (size_t)info.out_frames, 0);
  if (oe_webp_anim_decode(buf, len, &o, &info, (uint8_t *)oe_data(t), ts, &e) != OE_OK)
    return push_fail(L, name, e.msg);
  push_info(L, &info); /* the ts box stays on the stack (GC-safe) until the table is built */
  lua_createtable(L, info.out_frames, 0);
  for (int i = 0; i < info.out_frames; i++) {
    lua_pushinteger(L, ts[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "timestamps");
  lua_remove(L, -2);
  return 2;
}

static int l_info(lua_State *L) { return do_read(L, 0, 0, "webp_info"); }
static int l_read(lua_State *L) { return do_read(L, 0, 1, "webp_read"); }
static int l_read_bytes(lua_State *L) { return do_read(L, 1, 1, "webp_read_bytes"); }

typedef struct {
  const char *name;
  const uint8_t *buf;
  size_t len;
  oe_webp_anim_info info;
  uint8_t *out;
  int *ts;
  int ok;
  oe_err e;
} list_job;

static int l_read_list(lua_State *L) {
  const char *fn = "webp_read_list";
  luaL_checktype(L, 1, LUA_TTABLE);
  oe_webp_anim_opts o;
  lua_Integer max_file;
  read_opts(L, 2, &o, &max_file, fn);
  lua_settop(L, 2);
  lua_Integer n = luaL_len(L, 1);
  if (n < 0 || n > 65536) return oe_lua_fail(L, fn, "expected at most 65536 paths, got %lld", (long long)n);
  list_job *jobs = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *jobs, 0); /* 3 */
  lua_createtable(L, (int)(2 * n), 0); /* 4: file buffers and timestamp boxes, kept alive */
  lua_createtable(L, (int)n, 0);       /* 5: results */
  lua_createtable(L, (int)n, 0);       /* 6: messages */
  for (lua_Integer i = 0; i < n; i++) {
    list_job *j = &jobs[i];
    memset(j, 0, sizeof *j);
    lua_geti(L, 1, i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) return oe_lua_fail(L, fn, "path %lld must be a string", (long long)(i + 1));
    j->name = lua_tostring(L, -1); /* the string stays in the caller's table */
    lua_pop(L, 1);
    webp_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->p = NULL;
    luaL_setmetatable(L, WEBP_BUF_MT);
    lua_rawseti(L, 4, 2 * i + 1);
    if (oe_read_regular_file(j->name, (size_t)max_file, &b->p, &j->len, &j->e) != OE_OK) continue;
    j->buf = b->p;
    if (oe_webp_anim_info_of(j->buf, j->len, &o, &j->info, &j->e) != OE_OK) continue;
    int64_t shape[4] = { j->info.out_frames, j->info.height, j->info.width, o.channels };
    oe_tensor *t = oe_lua_push_uninit(L, fn, OE_U8, 4, shape);
    j->out = (uint8_t *)oe_data(t);
    lua_rawseti(L, 5, i + 1);
    j->ts = lua_newuserdatauv(L, sizeof(int) * (size_t)j->info.out_frames, 0);
    lua_rawseti(L, 4, 2 * i + 2);
    j->ok = 1;
  }
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (lua_Integer i = 0; i < n; i++)
    if (jobs[i].ok && oe_webp_anim_decode(jobs[i].buf, jobs[i].len, &o, &jobs[i].info, jobs[i].out, jobs[i].ts,
                                          &jobs[i].e) != OE_OK)
      jobs[i].ok = 0;
  for (lua_Integer i = 0; i < n; i++) { /* results[i] false and messages[i] the reason, or messages[i] false */
    lua_pushboolean(L, 0);
    if (!jobs[i].ok) {
      lua_rawseti(L, 5, i + 1);
      lua_pushfstring(L, "%s: %s", jobs[i].name, jobs[i].e.msg);
    }
    lua_rawseti(L, 6, i + 1);
  }
  return 2;
}

static const luaL_Reg fns[] = {
  { "webp_info", l_info }, { "webp_read", l_read }, { "webp_read_bytes", l_read_bytes },
  { "webp_read_list", l_read_list }, { NULL, NULL },
};

void oe_bind_webp(lua_State *L) {
  luaL_newmetatable(L, WEBP_BUF_MT);
  lua_pushcfunction(L, box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
