/* safetensors.h: read and write the safetensors format
 * (8-byte little-endian header length N, N bytes of JSON header, raw data).
 *
 * Reading opens only regular files (a named pipe, a device or a folder is
 * refused without blocking) and validates the whole header before any data
 * is touched: header length against the file size (and a 100 MB cap), strict
 * JSON, no duplicate tensor names or metadata keys, `__metadata__` as a
 * string -> string map, and for every tensor a known dtype, non-negative
 * integer shape entries (at most OE_MAX_DIMS, their non-zero product at most
 * OE_MAX_NUMEL so no size, stride or byte count can overflow), numel x
 * element size equal to the byte range, the range inside the data area. As
 * in the reference implementation the ranges, sorted, must tile the data
 * area exactly: from byte 0 to the end of the file, no hole, no overlap, no
 * trailing bytes. The header is parsed without building a JSON tree: memory
 * is the header bytes plus one entry per tensor and 16 bytes per metadata
 * pair. Data is read with pread into fresh 64-byte aligned tensors (tensors
 * inside the file need not be aligned). File dtypes map to tensor dtypes:
 * F32/F16/BF16/F64 -> float32, I64/U32 -> int64 (U64 -> int64 when every
 * value fits), I32/I16/I8/U16 -> int32, U8/BOOL -> uint8. Every message
 * starts with the file path; names in messages are escaped (oe_escape).
 *
 * Writing follows the reference implementation: tensors ordered by dtype
 * (largest alignment first) then name, header JSON (serde_json compact form,
 * "__metadata__" first, its keys sorted) padded with spaces to a multiple of
 * 8 bytes, then the data, through core/atomic_write (temporary file
 * "<path>.tmp.<pid>.<random>", fsync, rename, folder fsync; on any failure
 * the temporary file is removed and the old file is left as it was). */
#ifndef OE_SAFETENSORS_H
#define OE_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

/* File dtypes, in the reference implementation's order (increasing alignment). */
typedef enum {
  OE_ST_BOOL, OE_ST_U8, OE_ST_I8, OE_ST_F8_E5M2, OE_ST_F8_E4M3, OE_ST_I16, OE_ST_U16, OE_ST_F16, OE_ST_BF16,
  OE_ST_I32, OE_ST_U32, OE_ST_F32, OE_ST_F64, OE_ST_I64, OE_ST_U64, OE_ST_NDTYPES
} oe_st_dtype;

#define OE_ST_MAX_HEADER 100000000u

const char *oe_st_dtype_name(oe_st_dtype d);     /* "F32", ... */
size_t oe_st_dtype_size(oe_st_dtype d);
/* the tensor dtype a file dtype loads as; 0 when it cannot be loaded */
int oe_st_load_dtype(oe_st_dtype d, oe_dtype *out);

typedef struct {
  char *name;      /* NUL-terminated; may hold NUL bytes, use name_len */
  size_t name_len;
  oe_st_dtype dtype;
  int ndim;
  int64_t shape[OE_MAX_DIMS];
  uint64_t begin, end; /* byte range relative to the data area */
} oe_st_entry;

/* one metadata pair: byte ranges in oe_st_file.meta_bytes (not NUL-terminated) */
typedef struct { uint32_t key_off, key_len, val_off, val_len; } oe_st_meta;

typedef struct {
  char *path;
  int fd;
  uint64_t file_size, data_start, data_size;
  size_t n;               /* tensors, sorted by name (bytewise) */
  oe_st_entry *entries;
  char *names;            /* every tensor name, NUL-terminated, one after another */
  int has_metadata;       /* the header had a "__metadata__" object */
  size_t nmeta;           /* metadata pairs, sorted by key */
  oe_st_meta *meta;
  char *meta_bytes;
} oe_st_file;

static inline const char *oe_st_meta_key(const oe_st_file *f, size_t i) { return f->meta_bytes + f->meta[i].key_off; }
static inline const char *oe_st_meta_val(const oe_st_file *f, size_t i) { return f->meta_bytes + f->meta[i].val_off; }

/* Open and validate. On failure everything is released and e names the file. */
int oe_st_open(oe_st_file *f, const char *path, oe_err *e);
void oe_st_close(oe_st_file *f);
/* index of the tensor with this name, or -1 */
long oe_st_find(const oe_st_file *f, const char *name, size_t len);
/* Read tensor i into *out (must hold no storage), converting as described. */
int oe_st_read(const oe_st_file *f, size_t i, oe_tensor *out, oe_err *e);

/* Half-precision conversions (round to nearest even; nan stays nan). */
float oe_f16_to_f32(uint16_t h);
float oe_bf16_to_f32(uint16_t h);
uint16_t oe_f32_to_f16(float f);
uint16_t oe_f32_to_bf16(float f);

typedef struct {
  const char *name;
  size_t name_len;
  const oe_tensor *t; /* contiguous (every oe_tensor is) */
} oe_st_item;

/* Save. float32 tensors are stored as float_as (OE_ST_F32, OE_ST_F16 or
 * OE_ST_BF16). has_metadata = 0 leaves "__metadata__" out. Returns OE_EINVAL
 * for bad arguments (duplicate or reserved name, invalid UTF-8), OE_EIO or
 * OE_ENOMEM for failures; e names the file. */
int oe_st_save(const char *path, size_t n, const oe_st_item *items, int has_metadata, size_t nmeta,
               const char *const *meta_keys, const size_t *meta_key_lens, const char *const *meta_vals,
               const size_t *meta_val_lens, oe_st_dtype float_as, oe_err *e);

#endif
