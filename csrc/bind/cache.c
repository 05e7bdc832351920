/* bind/cache.c: file-system helpers and shard readers for the feature cache
 * (lua/oneencoder/cache.lua).
 *   core.fs_stat(path)        -> {size, mtime, mtime_ns, ino, dev, is_dir, is_file} | nil, msg
 *   core.fs_listdir(path)     -> {names...} (without . and ..) | nil, msg
 *   core.fs_mkdir(path)       -> true | nil, msg (an existing directory is fine)
 *   core.fs_sha256(path)      -> hex, size | nil, msg
 *   core.fs_lock(path)        -> lock (exclusive flock, not blocking; lock:release(), __gc, __close) | nil, msg
 *   core.pid_alive(pid)       -> whether a process with this id exists (kill(pid, 0); pid >= 1)
 *   core.fs_xxh3(path)        -> hex (16 digits: XXH3-64 of the bytes), size | nil, msg
 *   core.xxh3(s)              -> hex (16 digits: XXH3-64 of the string's bytes)
 *   core.featmap_open(path, {mmap = true, checksum = hex|nil}) -> map | nil, msg
 *       with checksum: the whole file's XXH3-64 must equal it (else nil, msg naming both)
 *       map:info() -> n, T, D, "F16"|"F32", mapped, Lmax ; map:lengths() -> {n lengths} ; map:close()
 *       map:checksum() -> hex | nil, msg
 *   core.featmap_gather(sources, rows, lens) -> (B, Lmax, D) float32 | nil, msg
 *       sources[b] is a map (rows[b] = 0-based item, lens[b] in 1..its length) or a
 *       ragged (T, D) float32 tensor (rows[b] = 0-based first position, lens[b] positions);
 *       Lmax = max of lens, positions past lens[b] are zero. */
#include "bind.h"
#include "../io/mmap_features.h"
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FEATMAP_MT "oe.FeatMap"
#define LOCK_MT "oe.CacheLock"

static int push_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

static int fs_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if (stat(path, &st) != 0) return push_fail(L, lua_pushfstring(L, "%s: cannot stat: %s", path, strerror(errno)));
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, (lua_Integer)st.st_size); lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec); lua_setfield(L, -2, "mtime");
  lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_nsec); lua_setfield(L, -2, "mtime_ns");
  lua_pushinteger(L, (lua_Integer)st.st_ino); lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st.st_dev); lua_setfield(L, -2, "dev");
  lua_pushboolean(L, S_ISDIR(st.st_mode)); lua_setfield(L, -2, "is_dir");
  lua_pushboolean(L, S_ISREG(st.st_mode)); lua_setfield(L, -2, "is_file");
  return 1;
}

static int fs_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return push_fail(L, lua_pushfstring(L, "%s: cannot list: %s", path, strerror(errno)));
  lua_newtable(L);
  int i = 0;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL) {
    if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
    lua_pushstring(L, ent->d_name);
    lua_rawseti(L, -2, ++i);
  }
  closedir(d);
  return 1;
}

static int fs_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (mkdir(path, 0777) == 0) { lua_pushboolean(L, 1); return 1; }
  int en = errno;
  struct stat st;
  if (en == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) { lua_pushboolean(L, 1); return 1; }
  return push_fail(L, lua_pushfstring(L, "%s: cannot create directory: %s", path, strerror(en)));
}

static int fs_sha256(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char hex[65];
  uint64_t size = 0;
  oe_err e;
  if (oe_file_sha256(path, hex, &size, &e) != OE_OK) return push_fail(L, e.msg);
  lua_pushstring(L, hex);
  lua_pushinteger(L, (lua_Integer)size);
  return 2;
}

static int pid_alive(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  if (pid < 1 || pid > INT32_MAX) return oe_lua_fail(L, "pid_alive", "pid must be in 1..%d, got %lld", INT32_MAX, (long long)pid);
  /* EPERM: it exists but belongs to someone else */
  lua_pushboolean(L, kill((pid_t)pid, 0) == 0 || errno == EPERM);
  return 1;
}

static void hex64(uint64_t v, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)v); }

static int l_xxh3(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  char hex[17];
  hex64(oe_xxh3(s, n), hex);
  lua_pushstring(L, hex);
  return 1;
}

static int fs_xxh3(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  uint64_t h = 0, size = 0;
  oe_err e;
  if (oe_file_xxh3(path, &h, &size, &e) != OE_OK) return push_fail(L, e.msg);
  char hex[17];
  hex64(h, hex);
  lua_pushstring(L, hex);
  lua_pushinteger(L, (lua_Integer)size);
  return 2;
}

/* ---- lock ---- */
typedef struct { int fd; } cache_lock;

static int lock_release(lua_State *L) {
  cache_lock *k = luaL_checkudata(L, 1, LOCK_MT);
  if (k->fd >= 0) {
    flock(k->fd, LOCK_UN);
    close(k->fd);
    k->fd = -1;
  }
  return 0;
}

static int fs_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  cache_lock *k = lua_newuserdatauv(L, sizeof *k, 0);
  k->fd = -1;
  luaL_setmetatable(L, LOCK_MT);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return push_fail(L, lua_pushfstring(L, "%s: cannot open the lock file: %s", path, strerror(errno)));
  k->fd = fd;
  while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    int en = errno;
    close(fd);
    k->fd = -1;
    if (en == EWOULDBLOCK) return push_fail(L, lua_pushfstring(L, "%s: locked by another process (a build is running)", path));
    return push_fail(L, lua_pushfstring(L, "%s: cannot lock: %s", path, strerror(en)));
  }
  return 1;
}

/* ---- feature maps ---- */
static oe_featmap *check_map(lua_State *L, int idx, const char *fn) {
  oe_featmap *m = luaL_checkudata(L, idx, FEATMAP_MT);
  if (!m->st_open) luaL_error(L, "%s: the shard map is closed", fn);
  return m;
}

static int featmap_gc(lua_State *L) {
  oe_featmap *m = luaL_checkudata(L, 1, FEATMAP_MT);
  if (m->st_open) oe_featmap_close(m);
  return 0;
}

static int featmap_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int use_mmap = 1;
  const char *want = NULL;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "mmap");
    if (!lua_isnil(L, -1)) use_mmap = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "checksum"); /* stays on the stack (the string is used below) */
    if (!lua_isnil(L, -1)) {
      want = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
      if (!want || strlen(want) != 16 || strspn(want, "0123456789abcdef") != 16)
        return oe_lua_fail(L, "featmap_open", "checksum must be 16 lowercase hex digits");
    }
  }
  oe_featmap *m = lua_newuserdatauv(L, sizeof *m, 0);
  memset(m, 0, sizeof *m);
  m->st.fd = -1;
  luaL_setmetatable(L, FEATMAP_MT);
  oe_err e;
  if (oe_featmap_open(m, path, "feats", "lengths", use_mmap, &e) != OE_OK) return push_fail(L, e.msg);
  if (want) {
    uint64_t h = 0;
    char got[17];
    if (oe_featmap_checksum(m, &h, &e) != OE_OK) {
      oe_featmap_close(m);
      return push_fail(L, e.msg);
    }
    hex64(h, got);
    if (strcmp(got, want) != 0) {
      oe_featmap_close(m);
      return push_fail(L, lua_pushfstring(L, "%s: content checksum %s, the manifest recorded %s (the shard is damaged)",
                                          path, got, want));
    }
  }
  return 1;
}

static int featmap_checksum(lua_State *L) {
  oe_featmap *m = check_map(L, 1, "featmap:checksum");
  uint64_t h = 0;
  oe_err e;
  if (oe_featmap_checksum(m, &h, &e) != OE_OK) return push_fail(L, e.msg);
  char hex[17];
  hex64(h, hex);
  lua_pushstring(L, hex);
  return 1;
}

static int featmap_info(lua_State *L) {
  oe_featmap *m = check_map(L, 1, "featmap:info");
  lua_pushinteger(L, m->n);
  lua_pushinteger(L, m->T);
  lua_pushinteger(L, m->D);
  lua_pushstring(L, m->f16 ? "F16" : "F32");
  lua_pushboolean(L, m->map != NULL);
  lua_pushinteger(L, m->Lmax);
  return 6;
}

static int featmap_lengths(lua_State *L) {
  oe_featmap *m = check_map(L, 1, "featmap:lengths");
  lua_createtable(L, (int)m->n, 0);
  for (int64_t i = 0; i < m->n; i++) {
    lua_pushinteger(L, m->lengths[i]);
    lua_rawseti(L, -2, (lua_Integer)(i + 1));
  }
  return 1;
}

typedef struct {
  const oe_featmap *map;  /* or */
  const float *base;      /* an in-memory ragged (T, D) tensor */
  int64_t n, D, row, len;
} gather_src;

static int featmap_gather(lua_State *L) {
  const char *fn = "featmap_gather";
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer B = (lua_Integer)luaL_len(L, 1);
  if (B < 1) return oe_lua_fail(L, fn, "empty batch");
  if ((lua_Integer)luaL_len(L, 2) != B || (lua_Integer)luaL_len(L, 3) != B)
    return oe_lua_fail(L, fn, "sources, rows and lengths must have the same length (%d)", (int)B);
  gather_src *src = lua_newuserdatauv(L, (size_t)B * sizeof *src, 0); /* freed by the GC */
  int64_t D = -1, Lmax = 0;
  for (lua_Integer b = 0; b < B; b++) {
    gather_src *s = &src[b];
    memset(s, 0, sizeof *s);
    lua_rawgeti(L, 1, b + 1);
    oe_featmap *m = luaL_testudata(L, -1, FEATMAP_MT);
    if (m) {
      if (!m->st_open) return oe_lua_fail(L, fn, "source %d is a closed shard map", (int)(b + 1));
      s->map = m;
      s->n = m->n; s->D = m->D;
    } else {
      oe_tensor *t = luaL_testudata(L, -1, OE_TENSOR_MT);
      if (!t) return oe_lua_fail(L, fn, "source %d must be a shard map or a tensor", (int)(b + 1));
      if (t->dtype != OE_F32 || t->ndim != 2) return oe_lua_fail(L, fn, "source %d must be a (T, D) float32 tensor", (int)(b + 1));
      s->base = oe_f32(t);
      s->n = t->shape[0]; s->D = t->shape[1];
    }
    lua_pop(L, 1);
    lua_rawgeti(L, 2, b + 1);
    int ok;
    s->row = (int64_t)lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    if (!ok || s->row < 0 || s->row >= s->n) return oe_lua_fail(L, fn, "row of item %d is outside 0..%lld", (int)(b + 1), (long long)(s->n - 1));
    lua_rawgeti(L, 3, b + 1);
    s->len = (int64_t)lua_tointegerx(L, -1, &ok);
    lua_pop(L, 1);
    int64_t maxlen = s->map ? s->map->lengths[s->row] : s->n - s->row;
    if (!ok || s->len < 1 || s->len > maxlen) return oe_lua_fail(L, fn, "length of item %d is outside 1..%lld", (int)(b + 1), (long long)maxlen);
    if (D < 0) D = s->D;
    else if (s->D != D) return oe_lua_fail(L, fn, "item %d has dim %lld, the batch has %lld", (int)(b + 1), (long long)s->D, (long long)D);
    if (s->len > Lmax) Lmax = s->len;
  }
  /* the shards must still be the files that were opened */
  oe_err e;
  for (lua_Integer b = 0; b < B; b++) {
    if (src[b].map && (b == 0 || src[b].map != src[b - 1].map) && oe_featmap_check(src[b].map, &e) != OE_OK)
      return push_fail(L, e.msg);
  }
  int64_t shape[3] = {(int64_t)B, Lmax, D};
  oe_tensor *out = oe_lua_push_uninit(L, fn, OE_F32, 3, shape);
  float *o = oe_f32(out);
  int failed = 0;
  oe_err first;
  first.msg[0] = 0;
  size_t total = (size_t)B * (size_t)Lmax * (size_t)D;
#pragma omp parallel for schedule(dynamic, 1) if (total > 65536)
  for (lua_Integer b = 0; b < B; b++) {
    const gather_src *s = &src[b];
    float *dst = o + (size_t)b * (size_t)Lmax * (size_t)D;
    size_t cnt = (size_t)s->len * (size_t)D;
    if (s->map) {
      oe_err le;
      if (oe_featmap_copy_row(s->map, s->row, s->len, dst, &le) != OE_OK) {
#pragma omp critical(oe_featmap_gather_err)
        {
          if (!failed) first = le;
          failed = 1;
        }
      }
    } else {
      memcpy(dst, s->base + (size_t)s->row * (size_t)D, cnt * 4);
    }
    memset(dst + cnt, 0, ((size_t)Lmax * (size_t)D - cnt) * 4);
  }
  if (failed) return push_fail(L, first.msg);
  return 1;
}

void oe_bind_cache(lua_State *L) {
  if (luaL_newmetatable(L, FEATMAP_MT)) {
    lua_pushcfunction(L, featmap_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, featmap_gc);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, featmap_info); lua_setfield(L, -2, "info");
    lua_pushcfunction(L, featmap_checksum); lua_setfield(L, -2, "checksum");
    lua_pushcfunction(L, featmap_lengths); lua_setfield(L, -2, "lengths");
    lua_pushcfunction(L, featmap_gc); lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, LOCK_MT)) {
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, lock_release);
    lua_setfield(L, -2, "__close");
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, lock_release); lua_setfield(L, -2, "release");
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {
    {"fs_stat", fs_stat}, {"fs_listdir", fs_listdir}, {"fs_mkdir", fs_mkdir}, {"fs_sha256", fs_sha256}, {"fs_xxh3", fs_xxh3}, {"xxh3", l_xxh3},
    {"fs_lock", fs_lock}, {"pid_alive", pid_alive}, {"featmap_open", featmap_open}, {"featmap_gather", featmap_gather}, {NULL, NULL},
  };
  luaL_setfuncs(L, fns, 0);
}
