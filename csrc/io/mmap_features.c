/* mmap_features.c: rows of feature-cache shards, by mapping or pread (see mmap_features.h). */
#include "../core/util.h"
#include "mmap_features.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
/* xxHash from Debian's libxxhash-dev, compiled in (header-only): nothing to link */
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__F16C__)
#include <immintrin.h>
#endif

#define fail oe_fail


void oe_f16_to_f32_n(const uint16_t *src, float *dst, size_t n) {
  size_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
#endif
  for (; i < n; i++) dst[i] = oe_f16_to_f32(src[i]);
}

void oe_featmap_close(oe_featmap *m) {
  if (!m) return;
  if (m->map) munmap((void *)m->map, m->map_len);
  if (m->st_open) oe_st_close(&m->st);
  free(m->lengths);
  free(m->offsets);
  memset(m, 0, sizeof *m);
  m->st.fd = -1;
}

int oe_featmap_open(oe_featmap *m, const char *path, const char *feats_name, const char *lengths_name, int use_mmap,
                    oe_err *e) {
  memset(m, 0, sizeof *m);
  m->st.fd = -1;
  int rc = oe_st_open(&m->st, path, e);
  if (rc != OE_OK) return rc;
  m->st_open = 1;
  long fi = oe_st_find(&m->st, feats_name, strlen(feats_name));
  long li = oe_st_find(&m->st, lengths_name, strlen(lengths_name));
  if (fi < 0 || li < 0) {
    rc = fail(e, OE_EIO, "%s: not a feature shard (no '%s' tensor)", path, fi < 0 ? feats_name : lengths_name);
    goto out;
  }
  const oe_st_entry *fe = &m->st.entries[fi], *le = &m->st.entries[li];
  if ((fe->dtype != OE_ST_F16 && fe->dtype != OE_ST_F32) || fe->ndim != 2) {
    rc = fail(e, OE_EIO, "%s: '%s' must be a 2-dimensional F16 or F32 tensor (T, D), got %s with %d dimensions", path,
              feats_name, oe_st_dtype_name(fe->dtype), fe->ndim);
    goto out;
  }
  m->f16 = fe->dtype == OE_ST_F16;
  m->T = fe->shape[0];
  m->D = fe->shape[1];
  if ((le->dtype != OE_ST_I32 && le->dtype != OE_ST_I64) || le->ndim != 1 || le->shape[0] < 1) {
    rc = fail(e, OE_EIO, "%s: '%s' must be a non-empty I32 or I64 vector", path, lengths_name);
    goto out;
  }
  m->n = le->shape[0];
  if (m->T < 1 || m->D < 1) {
    rc = fail(e, OE_EIO, "%s: '%s' has an empty shape (%lld, %lld)", path, feats_name, (long long)m->T, (long long)m->D);
    goto out;
  }
  m->feats_off = m->st.data_start + fe->begin;
  /* oe_st_open checked that end - begin = T*D*element size and end <= data_size */
  m->lengths = malloc((size_t)m->n * sizeof *m->lengths);
  m->offsets = malloc((size_t)m->n * sizeof *m->offsets);
  if (!m->lengths || !m->offsets) { rc = fail(e, OE_ENOMEM, "%s: out of memory for %lld lengths", path, (long long)m->n); goto out; }
  {
    oe_tensor lt;
    memset(&lt, 0, sizeof lt);
    rc = oe_st_read(&m->st, (size_t)li, &lt, e);
    if (rc != OE_OK) goto out;
    int64_t pos = 0;
    for (int64_t i = 0; i < m->n; i++) {
      int64_t v = lt.dtype == OE_I64 ? ((const int64_t *)oe_data(&lt))[i] : ((const int32_t *)oe_data(&lt))[i];
      if (v < 1 || v > m->T - pos) {
        oe_tensor_release(&lt);
        rc = fail(e, OE_EIO, "%s: length %lld of item %lld is outside 1..%lld (the positions left in '%s')", path,
                  (long long)v, (long long)i, (long long)(m->T - pos), feats_name);
        goto out;
      }
      m->lengths[i] = v;
      m->offsets[i] = pos;
      pos += v;
      if (v > m->Lmax) m->Lmax = v;
    }
    oe_tensor_release(&lt);
    if (pos != m->T) {
      rc = fail(e, OE_EIO, "%s: the lengths add up to %lld positions, '%s' has %lld", path, (long long)pos, feats_name,
                (long long)m->T);
      goto out;
    }
  }
  if (use_mmap) {
    if (m->st.file_size > (uint64_t)SIZE_MAX) { rc = fail(e, OE_EIO, "%s: file too large to map", path); goto out; }
    m->map_len = (size_t)m->st.file_size;
    void *p = mmap(NULL, m->map_len, PROT_READ, MAP_SHARED, m->st.fd, 0);
    if (p == MAP_FAILED) {
      m->map_len = 0;
      rc = fail(e, OE_EIO, "%s: cannot map: %s", path, strerror(errno));
      goto out;
    }
    m->map = p;
  }
  return OE_OK;
out:
  oe_featmap_close(m);
  return rc;
}

int oe_featmap_check(const oe_featmap *m, oe_err *e) {
  struct stat st;
  if (fstat(m->st.fd, &st) != 0) return fail(e, OE_EIO, "%s: cannot stat: %s", m->st.path, strerror(errno));
  if ((uint64_t)st.st_size != m->st.file_size)
    return fail(e, OE_EIO, "%s: the shard changed size on disk (%llu bytes, %llu when opened)", m->st.path,
                (unsigned long long)st.st_size, (unsigned long long)m->st.file_size);
  return OE_OK;
}

int oe_featmap_copy_row(const oe_featmap *m, int64_t row, int64_t len, float *dst, oe_err *e) {
  if (row < 0 || row >= m->n || len < 0 || len > m->lengths[row])
    return fail(e, OE_EINVAL, "%s: item %lld / length %lld outside the shard (%lld items)", m->st.path, (long long)row,
                (long long)len, (long long)m->n);
  size_t es = m->f16 ? 2 : 4;
  size_t cnt = (size_t)len * (size_t)m->D;
  uint64_t off = m->feats_off + (uint64_t)m->offsets[row] * (uint64_t)m->D * es;
  if (m->map) {
    const unsigned char *src = m->map + off;
    if (m->f16) oe_f16_to_f32_n((const uint16_t *)(const void *)src, dst, cnt);
    else memcpy(dst, src, cnt * 4);
    return OE_OK;
  }
  if (!m->f16) {
    if (oe_pread_full(m->st.fd, dst, cnt * 4, off))
      return fail(e, OE_EIO, "%s: cannot read row %lld: %s", m->st.path, (long long)row, errno ? strerror(errno) : "end of file");
    return OE_OK;
  }
  /* F16 by pread: read into a temporary buffer, then convert */
  uint16_t *tmp = malloc(cnt * 2 + 1);
  if (!tmp) return fail(e, OE_ENOMEM, "%s: out of memory reading row %lld", m->st.path, (long long)row);
  if (oe_pread_full(m->st.fd, tmp, cnt * 2, off)) {
    int en = errno;
    free(tmp);
    return fail(e, OE_EIO, "%s: cannot read row %lld: %s", m->st.path, (long long)row, en ? strerror(en) : "end of file");
  }
  oe_f16_to_f32_n(tmp, dst, cnt);
  free(tmp);
  return OE_OK;
}

#define HASH_BLOCK ((size_t)1 << 20)

/* XXH3-64 of fd's bytes from offset 0: exactly `size` bytes (known) or up to the end of
 * the file (size_known = 0); *total = bytes hashed */
static int hash_fd(int fd, const char *path, uint64_t size, int size_known, uint64_t *hash, uint64_t *total, oe_err *e) {
  XXH3_state_t *st = XXH3_createState();
  unsigned char *buf = malloc(HASH_BLOCK);
  int rc = OE_OK;
  if (!st || !buf) { rc = fail(e, OE_ENOMEM, "%s: out of memory for the checksum", path); goto out; }
  XXH3_64bits_reset(st);
  uint64_t pos = 0;
  for (;;) {
    size_t want = HASH_BLOCK;
    if (size_known) {
      if (pos >= size) break;
      if (size - pos < want) want = (size_t)(size - pos);
    }
    ssize_t r = pread(fd, buf, want, (off_t)pos);
    if (r < 0) {
      if (errno == EINTR) continue;
      rc = fail(e, OE_EIO, "%s: cannot read: %s", path, strerror(errno));
      goto out;
    }
    if (r == 0) {
      if (size_known) rc = fail(e, OE_EIO, "%s: the file ends at %llu bytes, %llu expected", path,
                                (unsigned long long)pos, (unsigned long long)size);
      break;
    }
    XXH3_64bits_update(st, buf, (size_t)r);
    pos += (uint64_t)r;
  }
  if (rc == OE_OK) {
    *hash = XXH3_64bits_digest(st);
    if (total) *total = pos;
  }
out:
  free(buf);
  XXH3_freeState(st);
  return rc;
}

/* By pread even when the shard is mapped: a file truncated by someone else meanwhile gives
 * an error here, where reading its mapping would raise SIGBUS. The pages read stay in the
 * page cache for the mapping. */
int oe_featmap_checksum(const oe_featmap *m, uint64_t *hash, oe_err *e) {
  return hash_fd(m->st.fd, m->st.path, m->st.file_size, 1, hash, NULL, e);
}

uint64_t oe_xxh3(const void *p, size_t n) { return XXH3_64bits(p, n); }

int oe_file_xxh3(const char *path, uint64_t *hash, uint64_t *size, oe_err *e) {
  char why[300];
  uint64_t fsize;
  int fd = oe_open_regular(path, &fsize, why, sizeof why); /* a pipe or device is refused, never read */
  if (fd < 0) return fail(e, OE_EIO, "%s: %s", path, why);
  uint64_t h = 0, n = 0;
  int rc = hash_fd(fd, path, 0, 0, &h, &n, e);
  close(fd);
  if (rc != OE_OK) return rc;
  if (hash) *hash = h;
  if (size) *size = n;
  return OE_OK;
}

int oe_file_sha256(const char *path, char hex[65], uint64_t *size, oe_err *e) {
  char why[300];
  uint64_t fsize;
  int fd = oe_open_regular(path, &fsize, why, sizeof why); /* a pipe or device is refused, never read */
  if (fd < 0) return fail(e, OE_EIO, "%s: %s", path, why);
  struct AVSHA *sha = av_sha_alloc();
  unsigned char *buf = malloc(1 << 20);
  int rc = OE_OK;
  if (!sha || !buf) { rc = fail(e, OE_ENOMEM, "%s: out of memory", path); goto out; }
  av_sha_init(sha, 256);
  uint64_t total = 0;
  for (;;) {
    ssize_t r = read(fd, buf, 1 << 20);
    if (r < 0) {
      if (errno == EINTR) continue;
      rc = fail(e, OE_EIO, "%s: cannot read: %s", path, strerror(errno));
      goto out;
    }
    if (r == 0) break;
    av_sha_update(sha, buf, (size_t)r);
    total += (uint64_t)r;
  }
  unsigned char d[32];
  av_sha_final(sha, d);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  if (size) *size = total;
out:
  free(buf);
  av_free(sha);
  close(fd);
  return rc;
}
