/* bind.h: helpers shared by the binding files (the only files that include lua.h). */
#ifndef OE_BIND_H
#define OE_BIND_H
#include <lua.h>
#include <lauxlib.h>
#include "../core/tensor.h"

#define OE_TENSOR_MT "oe.Tensor"

/* Push a new empty tensor userdata (no storage yet) and return it. */
oe_tensor *oe_lua_push_empty(lua_State *L);
/* Push a new zero-filled tensor; raises a Lua error naming fn on failure. */
oe_tensor *oe_lua_push_new(lua_State *L, const char *fn, oe_dtype dt, int ndim, const int64_t *shape);
/* Same, contents undefined: only for outputs the kernel writes completely. */
oe_tensor *oe_lua_push_uninit(lua_State *L, const char *fn, oe_dtype dt, int ndim, const int64_t *shape);
/* Push a view sharing storage with src, with a new shape. */
oe_tensor *oe_lua_push_view(lua_State *L, const oe_tensor *src, int ndim, const int64_t *shape, size_t offset);
/* Check argument idx is a tensor; the error names fn and arg. */
oe_tensor *oe_lua_check(lua_State *L, int idx, const char *fn, const char *arg);
oe_tensor *oe_lua_opt(lua_State *L, int idx, const char *fn, const char *arg); /* nil -> NULL */
void oe_lua_check_dtype(lua_State *L, const oe_tensor *t, oe_dtype dt, const char *fn, const char *arg);
/* Read a shape from a table at idx; returns ndim. */
int oe_lua_shape(lua_State *L, int idx, int64_t *shape, const char *fn, const char *arg);
/* 1-based, negative-from-end dim argument -> 0-based */
int oe_lua_dim(lua_State *L, int idx, int ndim, const char *fn);
oe_dtype oe_lua_dtype_opt(lua_State *L, int idx, oe_dtype def, const char *fn);
const char *oe_lua_shape_str(const oe_tensor *t, char *buf, size_t n);
/* raise "fn: msg" */
int oe_lua_fail(lua_State *L, const char *fn, const char *fmt, ...);

/* Options tables (the frozen-model loaders): idx is a table or nil (every option absent); a
 * value of the wrong type or outside its range raises "fn: option 'k' must be ...". */
void oe_lua_opt_table(lua_State *L, int idx, const char *fn); /* a table or nil, else raises */
int oe_lua_opt_field(lua_State *L, int idx, const char *k); /* pushes t[k] (nil when no table); its type */
const char *oe_lua_opt_str(lua_State *L, int idx, const char *k, const char *fn); /* NULL when absent */
int64_t oe_lua_opt_int(lua_State *L, int idx, const char *k, int64_t def, int64_t lo, int64_t hi, const char *fn);
double oe_lua_opt_unit(lua_State *L, int idx, const char *k, const char *fn); /* in (0, 1); 0 when absent */
int oe_lua_opt_bool(lua_State *L, int idx, const char *k, int def, const char *fn);

void oe_bind_tensor(lua_State *L);      /* bind/tensor.c */
void oe_bind_ops(lua_State *L);         /* bind/ops.c */
void oe_bind_nn(lua_State *L);          /* bind/nn.c */
void oe_bind_safetensors(lua_State *L); /* bind/safetensors.c */
void oe_bind_bench(lua_State *L);       /* bind/bench.c */
void oe_bind_image(lua_State *L);       /* bind/image.c */
void oe_bind_audio(lua_State *L);       /* bind/audio.c */
void oe_bind_video(lua_State *L);       /* bind/video.c */
void oe_bind_eval(lua_State *L);
void oe_bind_cache(lua_State *L);       /* bind/cache.c */
void oe_bind_files(lua_State *L);       /* bind/files.c: read_file, write_file_atomic, escape */
void oe_bind_encoders(lua_State *L);    /* bind/encoders.c */
void oe_bind_info(lua_State *L);        /* bind/info.c: oe.info, BLAS kernels */
void oe_bind_text(lua_State *L);        /* bind/text.c: tokenizers */
void oe_bind_frozen(lua_State *L);      /* bind/frozen.c: pretrained encoders */
/* bind/frozen.c: the mapped file of a weights object (core.frozen_open) at idx; raises naming fn */
struct oe_fz_file *oe_lua_frozen_file(lua_State *L, int idx, const char *fn);
void oe_bind_videomae(lua_State *L);    /* bind/videomae.c: VideoMAE */
void oe_bind_wav2vec2(lua_State *L);    /* bind/wav2vec2.c: Wav2Vec2 */
void oe_bind_generator(lua_State *L);   /* bind/generator.c: oe.Generator */
void oe_bind_onnx(lua_State *L);        /* bind/onnx.c: ONNX models */
void oe_bind_tfjs(lua_State *L);        /* bind/tfjs.c: TF.js layers models */
void oe_bind_glove(lua_State *L);       /* bind/glove.c: GloVe tables */
void oe_bind_webp(lua_State *L);        /* bind/webp.c: WebP frames (animated or still) */
/* idx nil/none -> the global stream, else an oe.Generator (raises naming fn otherwise) */
struct oe_rng *oe_lua_rng_opt(lua_State *L, int idx, const char *fn);
#endif
