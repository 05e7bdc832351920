/* util.h: small helpers shared by the I/O and text code. */
#ifndef OE_UTIL_H
#define OE_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include "tensor.h"

/* pread exactly n bytes at off (EINTR retried); -1 with errno set (0 at end of file) */
int oe_pread_full(int fd, void *buf, size_t n, uint64_t off);
/* write code point cp as UTF-8 into o (4 bytes room); returns the byte count */
size_t oe_utf8_encode(uint32_t cp, char *o);
/* e->msg = formatted message; returns code */
int oe_fail(oe_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* e->msg = "<path>: <formatted reason>" (path NULL: "<bytes>"); returns code */
int oe_fail_path(oe_err *e, int code, const char *path, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#endif
