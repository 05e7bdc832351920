/* fuzz_common.h: helpers shared by the libFuzzer harnesses in fuzz/.
 *
 * Readers that take a path (safetensors, the feature-cache shard reader,
 * video) read the input from an anonymous in-memory file (memfd) named by
 * /proc/self/fd/N: a regular file for stat/fstat, no disk I/O, rewritten in
 * place for every input. A harness reports a broken invariant with
 * FUZZ_CHECK, which aborts (libFuzzer records the input as a crash). */
#ifndef OE_FUZZ_COMMON_H
#define OE_FUZZ_COMMON_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond, ...)                                                       \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "fuzz check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fputc('\n', stderr);                                                          \
      abort();                                                                      \
    }                                                                               \
  } while (0)

/* The path of a memfd holding exactly data[0..len); the same file for every call. */
static inline const char *fuzz_memfile(const uint8_t *data, size_t len) {
  static int fd = -1;
  static char path[64];
  if (fd < 0) {
    fd = memfd_create("oe-fuzz-input", MFD_CLOEXEC);
    if (fd < 0) { perror("memfd_create"); abort(); }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  }
  if (ftruncate(fd, 0) != 0) { perror("ftruncate"); abort(); }
  size_t done = 0;
  while (done < len) {
    ssize_t w = pwrite(fd, data + done, len - done, (off_t)done);
    if (w <= 0) { perror("pwrite"); abort(); }
    done += (size_t)w;
  }
  return path;
}

/* The message of an error must be a NUL-terminated, non-empty string. */
#define FUZZ_CHECK_MSG(e) FUZZ_CHECK(memchr((e).msg, 0, sizeof (e).msg) && (e).msg[0], "empty or unterminated message")
#include <string.h>

#endif
