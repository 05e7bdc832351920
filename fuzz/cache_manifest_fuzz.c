/* cache_manifest_fuzz.c: the feature cache's manifest and shard metadata as
 * parsed by lua/oneencoder/cache.lua, driven through Lua 5.4.
 *
 * Input: the manifest's "shards" text, a NUL byte, then the shard's "items"
 * text (no NUL: items are empty); the last byte also picks the read mode
 * (mmap, pread or memory). fuzz/cache_manifest_fuzz.lua writes the cache
 * folder and uses it; any Lua error that reaches this file is a crash.
 *
 * The Lua code runs under a line hook that feeds libFuzzer's extra counters
 * (a hash of the chunk, the line and the previous line), so the fuzzer is
 * guided by the Lua lines it reaches, not only by this file's C edges. The
 * module oneencoder.core is the project's normal build (gcc), loaded with
 * require from OE_FUZZ_CPATH; the C readers it calls are fuzzed directly by
 * the other targets. */
#include "fuzz_common.h"
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <sys/stat.h>

#ifndef OE_FUZZ_ROOT
#define OE_FUZZ_ROOT "."
#endif
#ifndef OE_FUZZ_CPATH
#define OE_FUZZ_CPATH "build/fuzz/lua/?.so"
#endif

#define NCOUNTERS (1 << 16)
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t lua_counters[NCOUNTERS];

static lua_State *L;
static int driver_ref = LUA_NOREF;
static int prev_line;

static void line_hook(lua_State *l, lua_Debug *ar) {
  if (!lua_getinfo(l, "S", ar)) return;
  uintptr_t h = (uintptr_t)ar->source * 0x9E3779B97F4A7C15u;
  h ^= (uintptr_t)ar->currentline * 0x85EBCA6Bu + (uintptr_t)prev_line * 0xC2B2AE35u;
  h ^= h >> 29;
  uint8_t *c = &lua_counters[h & (NCOUNTERS - 1)];
  if (*c < 255) (*c)++;
  prev_line = ar->currentline;
}

static int traceback(lua_State *l) {
  luaL_traceback(l, l, lua_tostring(l, 1), 1);
  return 1;
}

static void init(void) {
  if (L) return;
  L = luaL_newstate();
  FUZZ_CHECK(L != NULL, "luaL_newstate");
  luaL_openlibs(L);
  const char *root = getenv("OE_FUZZ_ROOT") ? getenv("OE_FUZZ_ROOT") : OE_FUZZ_ROOT;
  const char *cpath = getenv("OE_FUZZ_CPATH") ? getenv("OE_FUZZ_CPATH") : OE_FUZZ_CPATH;
  char dir[512], script[600];
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(dir, sizeof dir, "%s/oe-fuzz-cache-%d", base, (int)getpid());
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) { perror("mkdir"); abort(); }
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua", root, root);
  lua_setfield(L, -2, "path");
  lua_pushstring(L, cpath);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  snprintf(script, sizeof script, "%s/fuzz/cache_manifest_fuzz.lua", root);
  lua_pushcfunction(L, traceback);
  if (luaL_loadfile(L, script) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); abort(); }
  lua_pushstring(L, dir);
  if (lua_pcall(L, 1, 1, -3) != LUA_OK) { fprintf(stderr, "%s\n", lua_tostring(L, -1)); abort(); }
  driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  init();
  static const char *const modes[3] = { "mmap", "pread", "memory" };
  const uint8_t *nul = memchr(data, 0, len);
  size_t sl = nul ? (size_t)(nul - data) : len;
  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, driver_ref);
  lua_pushlstring(L, (const char *)data, sl);
  if (nul) lua_pushlstring(L, (const char *)nul + 1, len - sl - 1);
  else lua_pushliteral(L, "");
  lua_pushstring(L, modes[len ? data[len - 1] % 3 : 0]);
  prev_line = 0;
  if (lua_pcall(L, 3, 0, -5) != LUA_OK) {
    fprintf(stderr, "Lua error: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0); /* feature maps and files are closed by __gc: no build-up between inputs */
  return 0;
}
