/* atomic_write.c: see atomic_write.h */
#include "atomic_write.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void release(oe_atomic_file *a) {
  if (a->fd >= 0) close(a->fd);
  a->fd = -1;
  if (a->tmp) unlink(a->tmp);
  free(a->tmp);
  free(a->path);
  a->tmp = a->path = NULL;
}

void oe_atomic_abort(oe_atomic_file *a) {
  if (a) release(a);
}

static uint32_t random32(int attempt) {
  uint32_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t x = (uint64_t)ts.tv_nsec * 6364136223846793005ull + (uint64_t)ts.tv_sec + (uint64_t)attempt * 1442695040888963407ull;
  return (uint32_t)(x >> 32);
}

int oe_atomic_begin(oe_atomic_file *a, const char *path, oe_err *e) {
  a->fd = -1;
  a->tmp = NULL;
  size_t plen = strlen(path);
  a->path = malloc(plen + 1);
  a->tmp = malloc(plen + 48);
  if (!a->path || !a->tmp) {
    free(a->tmp);
    a->tmp = NULL; /* not a file name yet: nothing to remove */
    release(a);
    return oe_fail(e, OE_ENOMEM, "out of memory");
  }
  memcpy(a->path, path, plen + 1);
  int en = 0;
  for (int attempt = 0; attempt < 32 && a->fd < 0; attempt++) {
    snprintf(a->tmp, plen + 48, "%s.tmp.%ld.%08x", path, (long)getpid(), (unsigned)random32(attempt));
    a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    en = errno;
    if (a->fd < 0 && en != EEXIST) break;
  }
  if (a->fd < 0) {
    oe_fail(e, OE_EIO, "cannot create the temporary file %s: %s", a->tmp, strerror(en));
    free(a->tmp);
    a->tmp = NULL; /* nothing to remove */
    release(a);
    return OE_EIO;
  }
  /* keep the permission bits of the regular file being replaced */
  struct stat old;
  if (stat(path, &old) == 0 && S_ISREG(old.st_mode)) (void)fchmod(a->fd, old.st_mode & 07777);
  return OE_OK;
}

int oe_atomic_write(oe_atomic_file *a, const void *buf, size_t n, oe_err *e) {
  if (a->fd < 0) return oe_fail(e, OE_EIO, "write after the temporary file was closed");
  if (oe_write_full(a->fd, buf, n)) {
    oe_fail(e, OE_EIO, "cannot write %s: %s", a->tmp, strerror(errno));
    release(a);
    return OE_EIO;
  }
  return OE_OK;
}

static void fsync_folder(const char *path) {
  size_t n = strlen(path);
  char *dir = malloc(n + 2);
  if (!dir) return;
  memcpy(dir, path, n + 1);
  char *slash = strrchr(dir, '/');
  if (!slash) strcpy(dir, ".");
  else if (slash == dir) dir[1] = 0;
  else *slash = 0;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd); /* best effort: some file systems refuse fsync on folders */
    close(dfd);
  }
  free(dir);
}

int oe_atomic_commit(oe_atomic_file *a, oe_err *e) {
  if (a->fd < 0) return oe_fail(e, OE_EIO, "commit after the temporary file was closed");
  if (fsync(a->fd) != 0) {
    oe_fail(e, OE_EIO, "cannot write %s: %s", a->tmp, strerror(errno));
    release(a);
    return OE_EIO;
  }
  int c = close(a->fd);
  a->fd = -1;
  if (c != 0) {
    oe_fail(e, OE_EIO, "cannot write %s: %s", a->tmp, strerror(errno));
    release(a);
    return OE_EIO;
  }
  if (rename(a->tmp, a->path) != 0) {
    oe_fail(e, OE_EIO, "cannot rename the temporary file over the target: %s", strerror(errno));
    release(a);
    return OE_EIO;
  }
  free(a->tmp);
  a->tmp = NULL; /* renamed: nothing to remove */
  fsync_folder(a->path);
  release(a);
  return OE_OK;
}

int oe_atomic_write_file(const char *path, const void *buf, size_t n, oe_err *e) {
  oe_atomic_file a;
  int rc = oe_atomic_begin(&a, path, e);
  if (rc != OE_OK) return rc;
  if ((rc = oe_atomic_write(&a, buf, n, e)) != OE_OK) return rc;
  return oe_atomic_commit(&a, e);
}
