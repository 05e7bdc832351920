/* audio.c (bind): core.audio_* functions. I/O failures return nil, message;
 * bad arguments raise. */
#include "bind.h"
#include "../io/audio.h"
#include "../io/mel.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int opt_field(lua_State *L, int idx, const char *k) {
  if (lua_type(L, idx) != LUA_TTABLE) return 0;
  lua_getfield(L, idx, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  return 1; /* value on top */
}
static double opt_num(lua_State *L, int idx, const char *k, double def, const char *fn) {
  if (!opt_field(L, idx, k)) return def;
  int ok;
  double v = lua_tonumberx(L, -1, &ok);
  if (!ok) oe_lua_fail(L, fn, "option '%s' must be a number, got %s", k, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}
static lua_Integer opt_int(lua_State *L, int idx, const char *k, lua_Integer def, const char *fn) {
  if (!opt_field(L, idx, k)) return def;
  int ok;
  lua_Integer v = lua_tointegerx(L, -1, &ok);
  if (!ok) oe_lua_fail(L, fn, "option '%s' must be an integer, got %s", k, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}
static int opt_bool(lua_State *L, int idx, const char *k, int def) {
  if (!opt_field(L, idx, k)) return def;
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}
/* returns a string that stays valid while the options table lives, or def */
static const char *opt_str(lua_State *L, int idx, const char *k, const char *def, const char *fn) {
  if (!opt_field(L, idx, k)) return def;
  if (lua_type(L, -1) != LUA_TSTRING) oe_lua_fail(L, fn, "option '%s' must be a string, got %s", k, luaL_typename(L, -1));
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s;
}

static void read_audio_opts(lua_State *L, int idx, oe_audio_opts *o, const char *fn) {
  oe_audio_default_opts(o);
  lua_Integer rate = opt_int(L, idx, "rate", 16000, fn);
  if (rate < 0 || rate > 1536000) oe_lua_fail(L, fn, "option 'rate' out of range: %d", (int)rate);
  o->rate = (int)rate;
  o->mono = opt_bool(L, idx, "mono", 1);
  o->max_seconds = opt_num(L, idx, "max_seconds", 0, fn);
  if (!(o->max_seconds >= 0) || o->max_seconds > 1e7) oe_lua_fail(L, fn, "option 'max_seconds' out of range");
  o->pad = opt_bool(L, idx, "pad", 0);
  o->cap_seconds = opt_num(L, idx, "cap_seconds", o->cap_seconds, fn);
  if (!(o->cap_seconds > 0)) oe_lua_fail(L, fn, "option 'cap_seconds' must be > 0");
  o->max_packets = opt_int(L, idx, "max_packets", o->max_packets, fn);
  if (o->max_packets < 1) oe_lua_fail(L, fn, "option 'max_packets' must be >= 1");
  const char *norm = opt_str(L, idx, "normalize", NULL, fn);
  if (norm && strcmp(norm, "wav2vec2") != 0) oe_lua_fail(L, fn, "option 'normalize' must be \"wav2vec2\" or nil, got '%s'", norm);
  o->normalize = norm != NULL;
  o->allow_truncated = opt_bool(L, idx, "allow_truncated", 0);
}

/* core.audio_load(path, opts) / core.audio_decode(bytes, opts, name) */
static int load_common(lua_State *L, int from_bytes) {
  const char *fn = from_bytes ? "audio.decode" : "audio.load";
  size_t nbytes = 0;
  const char *s = luaL_checklstring(L, 1, &nbytes);
  oe_audio_opts o;
  read_audio_opts(L, 2, &o, fn);
  const char *name = from_bytes ? luaL_optstring(L, 3, "<bytes>") : s;
  oe_tensor *t = oe_lua_push_empty(L);
  oe_err e;
  int rate = 0;
  oe_audio_notes nt;
  if (oe_audio_load(name, from_bytes ? s : NULL, nbytes, &o, t, &rate, &nt, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_pushinteger(L, rate);
  /* notes: {frames_decoded, frames_announced?, frames_estimated, truncated, warning?} */
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, nt.frames_decoded); lua_setfield(L, -2, "frames_decoded");
  if (nt.frames_announced >= 0) { lua_pushinteger(L, nt.frames_announced); lua_setfield(L, -2, "frames_announced"); }
  lua_pushboolean(L, nt.announced_estimated); lua_setfield(L, -2, "frames_estimated");
  lua_pushboolean(L, nt.truncated); lua_setfield(L, -2, "truncated");
  if (nt.warning[0]) { lua_pushstring(L, nt.warning); lua_setfield(L, -2, "warning"); }
  return 3;
}
static int l_audio_load(lua_State *L) { return load_common(L, 0); }
static int l_audio_decode(lua_State *L) { return load_common(L, 1); }

static int l_audio_info(lua_State *L) {
  int from_bytes = lua_toboolean(L, 2);
  size_t n = 0;
  const char *s = luaL_checklstring(L, 1, &n);
  const char *name = from_bytes ? luaL_optstring(L, 3, "<bytes>") : s;
  oe_audio_info info;
  oe_err e;
  if (oe_audio_info_get(name, from_bytes ? s : NULL, n, &info, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, info.rate); lua_setfield(L, -2, "rate");
  lua_pushinteger(L, info.channels); lua_setfield(L, -2, "channels");
  if (info.frames >= 0) { lua_pushinteger(L, info.frames); lua_setfield(L, -2, "frames"); }
  if (info.duration >= 0) { lua_pushnumber(L, info.duration); lua_setfield(L, -2, "duration"); }
  lua_pushstring(L, info.format); lua_setfield(L, -2, "format");
  lua_pushstring(L, info.backend); lua_setfield(L, -2, "backend");
  lua_pushboolean(L, info.frames_estimated); lua_setfield(L, -2, "frames_estimated");
  return 1;
}

/* (T) or (C, T) float32 -> channels, frames */
static oe_tensor *check_wave(lua_State *L, int idx, const char *fn, int *C, int64_t *T) {
  oe_tensor *t = oe_lua_check(L, idx, fn, "t");
  oe_lua_check_dtype(L, t, OE_F32, fn, "t");
  if (t->ndim == 1) { *C = 1; *T = t->shape[0]; }
  else if (t->ndim == 2) {
    if (t->shape[0] < 1 || t->shape[0] > 64) oe_lua_fail(L, fn, "channel count %d out of range (1..64)", (int)t->shape[0]);
    *C = (int)t->shape[0]; *T = t->shape[1];
  } else {
    char b[96];
    oe_lua_fail(L, fn, "expected a (T) or (C, T) waveform, got shape %s", oe_lua_shape_str(t, b, sizeof b));
  }
  return t;
}

static int l_audio_resample(lua_State *L) {
  const char *fn = "audio.resample";
  int C;
  int64_t T;
  oe_tensor *t = check_wave(L, 1, fn, &C, &T);
  lua_Integer from = luaL_checkinteger(L, 2), to = luaL_checkinteger(L, 3);
  if (from < 1 || to < 1 || from > 1536000 || to > 1536000) oe_lua_fail(L, fn, "rates must be in 1..1536000 Hz");
  float *out;
  int64_t nT;
  oe_err e;
  if (oe_audio_resample(oe_f32(t), C, T, (int)from, (int)to, &out, &nT, &e) != OE_OK) {
    return oe_lua_fail(L, fn, "%s", e.msg);
  }
  int64_t shape[2] = {C, nT};
  oe_tensor *r = oe_lua_push_empty(L);
  if (oe_tensor_alloc(r, OE_F32, t->ndim, t->ndim == 1 ? shape + 1 : shape, &e) != OE_OK) {
    free(out);
    return oe_lua_fail(L, fn, "%s", e.msg);
  }
  memcpy(oe_f32(r), out, sizeof(float) * (size_t)C * nT);
  free(out);
  return 1;
}

static void read_mel_opts(lua_State *L, int idx, oe_mel_opts *o, int rate, const char *fn) {
  oe_mel_default_opts(o, rate);
  const char *preset = opt_str(L, idx, "preset", NULL, fn);
  if (preset) {
    if (strcmp(preset, "whisper") == 0) {
      o->n_fft = o->win_length = 400; o->hop = 160; o->n_mels = 80;
      o->htk = 0; o->norm_slaney = 1; o->whisper = 1; o->log_mode = OE_MEL_LOG_LOG10;
    } else if (strcmp(preset, "torchaudio") == 0) {
      o->n_fft = o->win_length = 400; o->hop = 200; o->n_mels = 128; o->log_mode = OE_MEL_LOG_NONE;
    } else if (strcmp(preset, "default") != 0)
      oe_lua_fail(L, fn, "unknown preset '%s' (default, whisper, torchaudio)", preset);
  }
  lua_Integer n_fft = opt_int(L, idx, "n_fft", o->n_fft, fn);
  lua_Integer win = opt_int(L, idx, "win_length", opt_field(L, idx, "n_fft") ? (lua_pop(L, 1), n_fft) : o->win_length, fn);
  lua_Integer hop = opt_int(L, idx, "hop", opt_int(L, idx, "hop_length", o->hop, fn), fn);
  lua_Integer nm = opt_int(L, idx, "n_mels", o->n_mels, fn);
  if (n_fft < 2 || n_fft > 65536 || win < 1 || win > 65536 || hop < 1 || hop > (1 << 20) || nm < 1 || nm > 4096)
    oe_lua_fail(L, fn, "n_fft, win_length, hop or n_mels out of range");
  o->n_fft = (int)n_fft; o->win_length = (int)win; o->hop = (int)hop; o->n_mels = (int)nm;
  o->f_min = opt_num(L, idx, "f_min", o->f_min, fn);
  o->f_max = opt_num(L, idx, "f_max", o->f_max, fn);
  o->power = opt_num(L, idx, "power", o->power, fn);
  o->center = opt_bool(L, idx, "center", o->center);
  const char *pm = opt_str(L, idx, "pad_mode", "reflect", fn);
  if (strcmp(pm, "reflect") == 0) o->pad_reflect = 1;
  else if (strcmp(pm, "constant") == 0) o->pad_reflect = 0;
  else oe_lua_fail(L, fn, "option 'pad_mode' must be \"reflect\" or \"constant\"");
  const char *ms = opt_str(L, idx, "mel_scale", o->htk ? "htk" : "slaney", fn);
  if (strcmp(ms, "htk") == 0) o->htk = 1;
  else if (strcmp(ms, "slaney") == 0) o->htk = 0;
  else oe_lua_fail(L, fn, "option 'mel_scale' must be \"htk\" or \"slaney\"");
  const char *nr = opt_str(L, idx, "norm", o->norm_slaney ? "slaney" : "none", fn);
  if (strcmp(nr, "slaney") == 0) o->norm_slaney = 1;
  else if (strcmp(nr, "none") == 0) o->norm_slaney = 0;
  else oe_lua_fail(L, fn, "option 'norm' must be \"none\" or \"slaney\"");
  if (!o->whisper) {
    const char *lg = opt_str(L, idx, "log", o->log_mode == OE_MEL_LOG_LN ? "ln" : o->log_mode == OE_MEL_LOG_LOG10 ? "log10" : "none", fn);
    if (strcmp(lg, "ln") == 0) o->log_mode = OE_MEL_LOG_LN;
    else if (strcmp(lg, "log10") == 0) o->log_mode = OE_MEL_LOG_LOG10;
    else if (strcmp(lg, "none") == 0) o->log_mode = OE_MEL_LOG_NONE;
    else oe_lua_fail(L, fn, "option 'log' must be \"ln\", \"log10\" or \"none\"");
  }
  o->log_offset = opt_num(L, idx, "log_offset", o->log_offset, fn);
  oe_err e;
  if (oe_mel_check(o, &e) != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
}

/* core.audio_log_mel(list_or_tensor, rate, opts) -> (B, n_mels, F), {frames...} */
static int l_audio_log_mel(lua_State *L) {
  const char *fn = "audio.log_mel";
  lua_Integer rate = luaL_checkinteger(L, 2);
  if (rate < 1 || rate > 1536000) oe_lua_fail(L, fn, "rate %d out of range", (int)rate);
  oe_mel_opts o;
  read_mel_opts(L, 3, &o, (int)rate, fn);
  int B;
  if (lua_type(L, 1) == LUA_TTABLE) {
    B = (int)luaL_len(L, 1);
    if (B < 1 || B > 1000000) oe_lua_fail(L, fn, "expected a non-empty list of waveforms");
  } else {
    oe_tensor *t = oe_lua_check(L, 1, fn, "t");
    if (t->ndim != 2) oe_lua_fail(L, fn, "expected a (B, T) tensor or a list of (T) tensors");
    B = (int)t->shape[0];
    if (B < 1) oe_lua_fail(L, fn, "empty batch");
  }
  const float **clips = lua_newuserdatauv(L, sizeof(float *) * B, 0);
  int64_t *lens = lua_newuserdatauv(L, sizeof(int64_t) * B, 0);
  int64_t Lmax = 0;
  if (lua_type(L, 1) == LUA_TTABLE) {
    for (int b = 0; b < B; b++) {
      lua_geti(L, 1, b + 1);
      oe_tensor *t = oe_lua_check(L, -1, fn, "list item");
      oe_lua_check_dtype(L, t, OE_F32, fn, "list item");
      if (t->ndim != 1) oe_lua_fail(L, fn, "list item %d must be a (T) waveform", b + 1);
      clips[b] = oe_f32(t);
      lens[b] = t->shape[0];
      lua_pop(L, 1); /* the list keeps the tensor alive */
    }
  } else {
    oe_tensor *t = oe_lua_check(L, 1, fn, "t");
    oe_lua_check_dtype(L, t, OE_F32, fn, "t");
    for (int b = 0; b < B; b++) { clips[b] = oe_f32(t) + (size_t)b * t->shape[1]; lens[b] = t->shape[1]; }
  }
  for (int b = 0; b < B; b++) {
    if (lens[b] < 1) oe_lua_fail(L, fn, "waveform %d is empty", b + 1);
    if (lens[b] > Lmax) Lmax = lens[b];
  }
  int64_t F = oe_mel_frames(&o, Lmax);
  if (F < 1) oe_lua_fail(L, fn, "waveform of %lld samples is too short for n_fft %d without centring", (long long)Lmax, o.n_fft);
  int64_t shape[3] = {B, o.n_mels, F};
  oe_tensor *out = oe_lua_push_new(L, fn, OE_F32, 3, shape);
  oe_err e;
  if (oe_log_mel(&o, clips, lens, B, F, oe_f32(out), &e) != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
  lua_createtable(L, B, 0);
  for (int b = 0; b < B; b++) {
    lua_pushinteger(L, oe_mel_frames(&o, lens[b]));
    lua_rawseti(L, -2, b + 1);
  }
  return 2;
}

static int l_audio_mel_filterbank(lua_State *L) {
  const char *fn = "audio.mel_filterbank";
  lua_Integer rate = luaL_checkinteger(L, 1);
  if (rate < 1 || rate > 1536000) oe_lua_fail(L, fn, "rate out of range");
  oe_mel_opts o;
  read_mel_opts(L, 2, &o, (int)rate, fn);
  int64_t shape[2] = {o.n_fft / 2 + 1, o.n_mels};
  oe_tensor *t = oe_lua_push_new(L, fn, OE_F32, 2, shape);
  oe_err e;
  if (oe_mel_filterbank(&o, oe_f32(t), &e) != OE_OK) oe_lua_fail(L, fn, "%s", e.msg);
  return 1;
}

/* core.audio_save_wav(t, rate, path, "pcm16"|"float") -> true | nil, msg */
static int l_audio_save_wav(lua_State *L) {
  const char *fn = "audio.save_wav";
  int C;
  int64_t T;
  oe_tensor *t = check_wave(L, 1, fn, &C, &T);
  lua_Integer rate = luaL_checkinteger(L, 2);
  const char *path = luaL_checkstring(L, 3);
  const char *sub = luaL_optstring(L, 4, "pcm16");
  int as_float;
  if (strcmp(sub, "pcm16") == 0) as_float = 0;
  else if (strcmp(sub, "float") == 0) as_float = 1;
  else return oe_lua_fail(L, fn, "format must be \"pcm16\" or \"float\", got '%s'", sub);
  if (rate < 1 || rate > 1536000) return oe_lua_fail(L, fn, "rate out of range");
  oe_err e;
  if (oe_audio_save_wav(path, oe_f32(t), C, T, (int)rate, as_float, &e) != OE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, e.msg);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

void oe_bind_audio(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"audio_load", l_audio_load},           {"audio_decode", l_audio_decode},
      {"audio_info", l_audio_info},           {"audio_resample", l_audio_resample},
      {"audio_log_mel", l_audio_log_mel},     {"audio_mel_filterbank", l_audio_mel_filterbank},
      {"audio_save_wav", l_audio_save_wav},   {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
