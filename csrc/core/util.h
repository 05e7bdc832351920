/* util.h: small helpers shared by the I/O and text code. */
#ifndef OE_UTIL_H
#define OE_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

/* Largest product of the non-zero sizes of a shape (the element count limit
 * of oe_tensor_alloc): every element count, stride and byte offset of such a
 * shape and of its views and permutations stays far inside int64. */
#define OE_MAX_NUMEL (INT64_C(1) << 40)

/* pread exactly n bytes at off (EINTR retried); -1 with errno set (0 at end of file) */
int oe_pread_full(int fd, void *buf, size_t n, uint64_t off);
/* write exactly n bytes (EINTR retried); -1 with errno set */
int oe_write_full(int fd, const void *buf, size_t n);
/* write code point cp as UTF-8 into o (4 bytes room); returns the byte count */
size_t oe_utf8_encode(uint32_t cp, char *o);
/* e->msg = formatted message; returns code */
int oe_fail(oe_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* e->msg = "<path>: <formatted reason>" (path NULL: "<bytes>"); returns code */
int oe_fail_path(oe_err *e, int code, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Printable form of n bytes for messages, NUL-terminated in buf (cap >= 8):
 * printable ASCII and valid UTF-8 sequences as they are, a backslash as \\,
 * control bytes, DEL and invalid UTF-8 as \xNN; cut with "..." to fit cap. */
const char *oe_escape(const char *s, size_t n, char *buf, size_t cap);

/* OE_OK when ndim is in 0..OE_MAX_DIMS, every size is >= 0 and the non-zero
 * sizes multiply to at most OE_MAX_NUMEL; else OE_EINVAL with the reason. */
int oe_shape_check(int ndim, const int64_t *shape, oe_err *e);

/* Files that readers expect to be regular. A path naming a named pipe, a
 * device, a socket or a folder is refused without blocking and without
 * reading from it: the path is checked with stat, opened with O_NONBLOCK
 * (so a pipe swapped in after the check cannot block either), and the open
 * file checked again with fstat. */
/* Open for reading: returns a descriptor (O_CLOEXEC, blocking mode) and the
 * file's size in *size; or -1 with the reason in why ("cannot open: <errno
 * text>", "not a regular file (it is a named pipe)", ...). */
int oe_open_regular(const char *path, uint64_t *size, char *why, size_t whylen);
/* For libraries that open the path themselves (libsndfile, FFmpeg): -1 with
 * the reason when path exists and is not a regular file; 0 otherwise (a
 * missing file is left to the library to report in its own words). */
int oe_refuse_special_file(const char *path, char *why, size_t whylen);
/* Whole regular file into a malloc'd buffer (NUL-terminated, len excludes
 * the NUL): reads at most the size fstat reported, refuses files larger
 * than max_bytes before reading. OE_OK, or OE_EIO / OE_ENOMEM with the
 * reason (without the path) in e. */
int oe_read_regular_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, oe_err *e);
#endif
