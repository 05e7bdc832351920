/* mmap_features.h: read rows of a feature-cache shard without loading the
 * whole file. A shard is a safetensors file holding the rows of N items
 * back to back, ragged (no padding): feats (T, D) F16 or F32 with
 * T = sum of the lengths, and lengths (N) I32/I64; item i occupies
 * positions offsets[i] .. offsets[i] + lengths[i] - 1.
 *
 * The shard is opened with oe_st_open, so the whole header is validated
 * (offsets inside the file, sizes consistent) before any data is touched;
 * the lengths are read, checked (each >= 1) and must sum to T. Rows are then read either
 * from a read-only shared mapping of the file (use_mmap = 1) or with pread
 * (use_mmap = 0). Both go through the page cache; a mapping avoids a copy and
 * a system call per row, pread never faults. Before every batch the caller
 * runs oe_featmap_check, which compares the file's size with the size seen
 * at open: shards are only ever replaced by rename (a new inode), so an
 * open shard can only shrink if someone truncates it in place, and that is
 * reported as an error instead of touching pages past the end (which would
 * raise SIGBUS under a mapping). F16 rows are converted to float32 on copy.
 *
 * Content checksum: XXH3-64 (xxhash.h from libxxhash-dev, compiled in) of the
 * whole file, header included, read by pread (never through the mapping, which
 * would fault on a truncated file). The cache records it in its manifest when the
 * shard is written and compares it whenever the shard is opened, so flipped bytes,
 * a damaged lengths table or a shard truncated and re-extended in place are refused.
 *
 * Also: SHA-256 of a file (libavutil), for content-keyed cache entries. */
#ifndef OE_MMAP_FEATURES_H
#define OE_MMAP_FEATURES_H
#include <stddef.h>
#include <stdint.h>
#include "safetensors.h"

typedef struct {
  oe_st_file st;              /* validated header, st.fd open */
  int st_open;
  const unsigned char *map;   /* whole file, or NULL (pread mode) */
  size_t map_len;
  int f16;                    /* feats stored as F16, else F32 */
  int64_t n, T, D, Lmax;      /* items, positions, dim, longest item */
  uint64_t feats_off;         /* absolute byte offset of feats' data */
  int64_t *lengths;           /* n lengths, each >= 1 */
  int64_t *offsets;           /* n starting positions */
} oe_featmap;

/* Open path; feats_name / lengths_name are the tensor names. On failure
 * everything is released and e names the file and the reason. */
int oe_featmap_open(oe_featmap *m, const char *path, const char *feats_name, const char *lengths_name, int use_mmap,
                    oe_err *e);
void oe_featmap_close(oe_featmap *m);
/* The file still has the size it had at open. */
int oe_featmap_check(const oe_featmap *m, oe_err *e);
/* Copy the first len (<= lengths[row]) positions of item row (0-based) into dst (len * D floats).
 * Thread-safe for concurrent calls on the same map. */
int oe_featmap_copy_row(const oe_featmap *m, int64_t row, int64_t len, float *dst, oe_err *e);

/* *hash = XXH3-64 of the whole shard file as opened (its size at open; pread in 1 MB blocks). */
int oe_featmap_checksum(const oe_featmap *m, uint64_t *hash, oe_err *e);
/* *hash = XXH3-64 of the file's bytes, *size its length (either may be NULL). */
int oe_file_xxh3(const char *path, uint64_t *hash, uint64_t *size, oe_err *e);
/* XXH3-64 of n bytes in memory */
uint64_t oe_xxh3(const void *p, size_t n);

/* Convert n half floats to float32 (F16C when the compiler targets it). */
void oe_f16_to_f32_n(const uint16_t *src, float *dst, size_t n);

/* hex (64 characters + NUL) = SHA-256 of the file's bytes; also its size. */
int oe_file_sha256(const char *path, char hex[65], uint64_t *size, oe_err *e);

#endif
