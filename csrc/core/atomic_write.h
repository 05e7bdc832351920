/* atomic_write.h: replace a file so that a crash or a kill at any moment
 * leaves either the old file or the new one, never a mix.
 *
 * The bytes go to a temporary file in the target's folder named
 *     <path>.tmp.<pid>.<8 lowercase hex digits>
 * created with O_EXCL (mode 0666 minus the umask, like any new file; when a
 * regular file is replaced its permission bits are kept). Commit flushes it
 * with fsync, renames it over the target and fsyncs the folder so the rename
 * itself survives a power cut. On every failure the temporary file is
 * removed and the target is left as it was. A process killed before commit
 * leaves its temporary file behind: OE_ATOMIC_TMP_PATTERN (a Lua pattern
 * matched against a file name) recognises those leftovers for cleaning.
 *
 * Messages do not start with the path (callers add their own prefix). */
#ifndef OE_ATOMIC_WRITE_H
#define OE_ATOMIC_WRITE_H
#include <stddef.h>
#include "tensor.h"

#define OE_ATOMIC_TMP_PATTERN "%.tmp%.%d+%.%x%x%x%x%x%x%x%x$"

typedef struct oe_atomic_file {
  int fd;     /* the temporary file, open for writing; -1 when closed */
  char *path; /* target */
  char *tmp;  /* temporary file name (NULL once renamed or removed) */
} oe_atomic_file;

/* Create the temporary file. On failure nothing is left behind. */
int oe_atomic_begin(oe_atomic_file *a, const char *path, oe_err *e);
/* Append n bytes; on failure the temporary is removed (no abort needed). */
int oe_atomic_write(oe_atomic_file *a, const void *buf, size_t n, oe_err *e);
/* fsync, close, rename over the target, fsync the folder. Always releases a:
 * on failure the temporary file is removed. */
int oe_atomic_commit(oe_atomic_file *a, oe_err *e);
/* Give up: close and remove the temporary file. Safe to call twice. */
void oe_atomic_abort(oe_atomic_file *a);
/* The whole sequence for bytes already in memory. */
int oe_atomic_write_file(const char *path, const void *buf, size_t n, oe_err *e);

#endif
