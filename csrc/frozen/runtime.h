/* runtime.h: the inference-only runtime shared by the frozen pretrained encoders
 * (llama2.c style: a config, weights carved out of one mapping, a scratch arena).
 *
 * Weights. oe_fz_open validates the whole safetensors header (oe_st_open: every
 * range inside the file, no overlaps, sizes consistent with shapes) and maps the
 * file read-only. A model takes its tensors by name through an oe_fz_take context
 * (a key prefix such as "image_encoder.pretrained_vit.", and a per-model record of
 * what it took, so keys it did not take can be reported as unexpected):
 *   - F32 tensors whose bytes are 4-byte aligned in the mapping are used in place
 *     (no copy; safetensors data normally starts at a multiple of 8);
 *   - F16, BF16 and F64 tensors (and an F32 tensor at an odd address) are converted
 *     once, at load, into a float32 buffer owned by the file object, shared by every
 *     model taking that tensor; the mapped source pages are then released from the
 *     process's resident set (madvise DONTNEED: they are file pages, read again only
 *     if taken again).
 * Every other dtype is refused with the key's name. A file truncated in place after
 * opening would make the mapping fault: oe_fz_check compares the size with the one
 * seen at open and is run before every forward.
 *
 * Scratch. oe_fz_arena is one 64-byte aligned buffer, grown to the largest batch
 * seen and reused for every later batch (no allocation per call once warm).
 *
 * Nothing here prints or exits; every failure is a status plus a message (oe_err). */
#ifndef OE_FROZEN_RUNTIME_H
#define OE_FROZEN_RUNTIME_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"
#include "../io/safetensors.h"

typedef struct oe_fz_file {
  oe_st_file st;          /* validated header; st.fd open */
  int st_open;
  const unsigned char *map; /* whole file, read-only */
  size_t map_len;
  float **converted;      /* per entry: float32 copy (F16/BF16/F64/misaligned F32) or NULL */
  size_t converted_bytes; /* total of those copies */
  int64_t n_inplace, n_converted; /* tensors handed out in place / converted (counted once each) */
  uint8_t *counted;       /* per entry: already counted in n_inplace / n_converted */
} oe_fz_file;

/* Open and map path. On failure everything is released and e names the file. */
int oe_fz_open(oe_fz_file *f, const char *path, oe_err *e);
void oe_fz_close(oe_fz_file *f);
/* The file still has the size it had when opened (a file replaced by rename keeps
 * the old inode and is fine; one truncated in place is reported). */
int oe_fz_check(const oe_fz_file *f, oe_err *e);

/* One model's view of a file: names are prefix + key; taken[i] marks entry i. */
typedef struct oe_fz_take {
  oe_fz_file *f;
  char prefix[256];
  uint8_t *taken;   /* f->st.n flags, owned */
} oe_fz_take;

int oe_fz_take_begin(oe_fz_take *t, oe_fz_file *f, const char *prefix, oe_err *e);
void oe_fz_take_end(oe_fz_take *t);
/* index of prefix + key, or -1 */
long oe_fz_find(const oe_fz_take *t, const char *key);
/* shape of prefix + key: 1 and ndim/shape filled, or 0 when absent */
int oe_fz_shape(const oe_fz_take *t, const char *key, int *ndim, int64_t *shape);
/* float32 data of prefix + key, which must exist with exactly this shape; errors
 * name the key and both shapes ("... has shape (768, 3), expected (768, 768)") */
int oe_fz_get(oe_fz_take *t, const char *key, int ndim, const int64_t *shape, const float **out, oe_err *e);
/* Keys under the prefix neither taken nor matching one of the ignore patterns
 * (exact keys, or "pfx*" for every key starting with pfx; NULL-terminated list):
 * OE_EINVAL naming the first few of them, or OE_OK. */
int oe_fz_unexpected(const oe_fz_take *t, const char *const *ignore, oe_err *e);
/* number of keys under the prefix (0 means the prefix matches nothing) */
size_t oe_fz_count_prefix(const oe_fz_file *f, const char *prefix);

/* ---- scratch arena ---- */
typedef struct oe_fz_arena {
  float *buf;
  size_t cap;   /* floats */
} oe_fz_arena;
/* make room for n floats (contents not kept when it grows) */
int oe_fz_arena_reserve(oe_fz_arena *a, size_t n, oe_err *e);
void oe_fz_arena_free(oe_fz_arena *a);
/* floats rounded up to a whole number of 64-byte lines (carving keeps alignment) */
static inline size_t oe_fz_round(size_t n) { return (n + 15) & ~(size_t)15; }

/* checked products for sizes read from files: 0 on overflow past limit */
int oe_fz_mul_ok(int64_t a, int64_t b, int64_t limit, int64_t *out);

/* ---- config.json (Hugging Face) ---- */
/* The top-level scalar members of a small JSON object file (<= 1 MB): nested
 * values are checked and skipped, a repeated key is an error. */
typedef struct oe_fz_cfg_item {
  char key[64];
  int type;            /* oe_json_type */
  int is_int, neg, overflow;
  uint64_t mag;
  double num;
  char str[64];        /* strings (truncated past 63 bytes) */
} oe_fz_cfg_item;
typedef struct oe_fz_config {
  char path[256];
  size_t n;
  oe_fz_cfg_item *items;
} oe_fz_config;
/* OE_OK, or OE_EIO naming the file and the reason (missing, not JSON, not an object) */
int oe_fz_config_read(const char *path, oe_fz_config *c, oe_err *e);
void oe_fz_config_free(oe_fz_config *c);
/* 1 found (and checked lo..hi), 0 absent or null; -1 with e set when present but
 * not an integer in range */
int oe_fz_config_int(const oe_fz_config *c, const char *key, int64_t lo, int64_t hi, int64_t *out, oe_err *e);
/* a finite number (> 0 when positive): 1 / 0 / -1 as above */
int oe_fz_config_num(const oe_fz_config *c, const char *key, int positive, double *out, oe_err *e);
/* a string: 1 (*out points into c) / 0 / -1 */
int oe_fz_config_str(const oe_fz_config *c, const char *key, const char **out, oe_err *e);
/* true/false: 1 / 0 / -1 */
int oe_fz_config_bool(const oe_fz_config *c, const char *key, int *out, oe_err *e);

/* The keys every transformer encoder's config.json shares (ViT, VideoMAE, BERT, Wav2Vec2):
 * model_type (checked when expect_type is not NULL), hidden_act ("gelu", the erf form, only),
 * hidden_size, num_hidden_layers (1..max_layers), num_attention_heads, intermediate_size and
 * layer_norm_eps. Absent keys leave 0 (has_eps 0). 0, or -1 with e naming the file and key. */
typedef struct oe_fz_encoder_config {
  int64_t hidden, layers, heads, inter;
  double eps;
  int has_eps;
} oe_fz_encoder_config;
int oe_fz_config_encoder(const oe_fz_config *c, const char *expect_type, int64_t max_layers, oe_fz_encoder_config *out,
                         oe_err *e);
/* OE_EINVAL: "<path>: "<key>" = <cfg> disagrees with the weights (<what>: <w>)" */
int oe_fz_config_mismatch(oe_err *e, const char *path, const char *key, int64_t cfg, const char *what, int64_t w);
#endif
