#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int oe_pread_full(int fd, void *buf, size_t n, uint64_t off) {
  char *p = buf;
  while (n) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : n;
    ssize_t r = pread(fd, p, chunk, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) { errno = 0; return -1; }
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

int oe_write_full(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n) {
    size_t chunk = n > (1u << 30) ? (1u << 30) : n;
    ssize_t w = write(fd, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

size_t oe_utf8_encode(uint32_t cp, char *o) {
  if (cp < 0x80) { o[0] = (char)cp; return 1; }
  if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

int oe_fail(oe_err *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return code;
}

int oe_fail_path(oe_err *e, int code, const char *path, const char *fmt, ...) {
  char buf[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  snprintf(e->msg, sizeof e->msg, "%s: %s", path ? path : "<bytes>", buf);
  return code;
}

/* length of the valid UTF-8 sequence starting at s (at most n bytes), 0 when invalid */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t k;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
  else return 0;
  if (n <= k) return 0;
  for (size_t j = 1; j <= k; j++) {
    if ((s[j] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[j] & 0x3F);
  }
  if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return k + 1;
}

const char *oe_escape(const char *s, size_t n, char *buf, size_t cap) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  size_t j = 0, lim = cap - 4; /* room for "..." and the NUL */
  size_t i = 0;
  while (i < n) {
    unsigned c = u[i];
    size_t take = 1, out;
    char tmp[4];
    const char *src = tmp;
    if (c >= 0x20 && c < 0x7F && c != '\\') { tmp[0] = (char)c; out = 1; }
    else if (c == '\\') { tmp[0] = '\\'; tmp[1] = '\\'; out = 2; }
    else if (c >= 0x80 && (take = utf8_seq(u + i, n - i)) > 0) { src = s + i; out = take; }
    else { take = 1; tmp[0] = '\\'; tmp[1] = 'x'; tmp[2] = hex[c >> 4]; tmp[3] = hex[c & 15]; out = 4; }
    if (j + out > lim) break;
    memcpy(buf + j, src, out);
    j += out;
    i += take;
  }
  if (i < n) { memcpy(buf + j, "...", 3); j += 3; }
  buf[j] = 0;
  return buf;
}

int oe_shape_check(int ndim, const int64_t *shape, oe_err *e) {
  char sb[200];
  if (ndim < 0 || ndim > OE_MAX_DIMS)
    return oe_fail(e, OE_EINVAL, "at most %d dimensions are supported, got %d", OE_MAX_DIMS, ndim);
  int64_t nz = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return oe_fail(e, OE_EINVAL, "negative size %lld in dimension %d", (long long)shape[i], i + 1);
    if (shape[i] == 0) continue;
    if (shape[i] > OE_MAX_NUMEL / nz)
      return oe_fail(e, OE_EINVAL, "shape %s is too large: its non-zero sizes multiply past 2^40",
                     oe_shape_str(ndim, shape, sb, sizeof sb));
    nz *= shape[i];
  }
  return OE_OK;
}

static const char *kind_of(mode_t m) {
  if (S_ISDIR(m)) return "it is a directory";
  if (S_ISFIFO(m)) return "it is a named pipe";
  if (S_ISCHR(m)) return "it is a character device";
  if (S_ISBLK(m)) return "it is a block device";
  if (S_ISSOCK(m)) return "it is a socket";
  return "of an unknown kind";
}

static int stat_regular(const char *path, struct stat *st, char *why, size_t whylen) {
  if (stat(path, st) != 0) { snprintf(why, whylen, "cannot open: %s", strerror(errno)); return -1; }
  if (!S_ISREG(st->st_mode)) { snprintf(why, whylen, "not a regular file (%s)", kind_of(st->st_mode)); return -1; }
  return 0;
}

int oe_refuse_special_file(const char *path, char *why, size_t whylen) {
  struct stat st;
  if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return 0;
  snprintf(why, whylen, "not a regular file (%s)", kind_of(st.st_mode));
  return -1;
}

int oe_open_regular(const char *path, uint64_t *size, char *why, size_t whylen) {
  struct stat before, st;
  if (stat_regular(path, &before, why, whylen)) return -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) { snprintf(why, whylen, "cannot open: %s", strerror(errno)); return -1; }
  if (fstat(fd, &st) != 0) {
    snprintf(why, whylen, "cannot stat: %s", strerror(errno));
    close(fd);
    return -1;
  }
  if (!S_ISREG(st.st_mode) || st.st_dev != before.st_dev || st.st_ino != before.st_ino) {
    snprintf(why, whylen, "not a regular file (%s)", S_ISREG(st.st_mode) ? "it was replaced while being opened" : kind_of(st.st_mode));
    close(fd);
    return -1;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  *size = (uint64_t)st.st_size;
  return fd;
}

int oe_read_regular_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, oe_err *e) {
  char why[300];
  uint64_t size;
  *buf = NULL;
  *len = 0;
  int fd = oe_open_regular(path, &size, why, sizeof why);
  if (fd < 0) return oe_fail(e, OE_EIO, "%s", why);
  if (size > max_bytes) {
    close(fd);
    return oe_fail(e, OE_EIO, "file of %llu bytes is above the %zu-byte limit", (unsigned long long)size, max_bytes);
  }
  uint8_t *b = malloc((size_t)size + 1);
  if (!b) {
    close(fd);
    return oe_fail(e, OE_ENOMEM, "out of memory reading %llu bytes", (unsigned long long)size);
  }
  size_t n = 0;
  while (n < size) { /* a file that shrinks meanwhile ends early; one that grows is read up to its first size */
    ssize_t r = pread(fd, b + n, (size_t)size - n > (1u << 30) ? (1u << 30) : (size_t)size - n, (off_t)n);
    if (r < 0) {
      if (errno == EINTR) continue;
      int er = errno;
      free(b);
      close(fd);
      return oe_fail(e, OE_EIO, "read error: %s", strerror(er));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  b[n] = 0;
  *buf = b;
  *len = n;
  return OE_OK;
}
