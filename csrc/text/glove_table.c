/* glove_table.c: the memory-mapped GloVe table (glove.h): open, validate, index, read rows. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include "../core/util.h"
#include "../io/json.h"
#include "../io/safetensors.h"
#include "glove.h"

struct oe_glove {
  oe_st_file st;             /* validated header; st.fd open */
  const unsigned char *map;  /* whole file, read-only */
  size_t map_len;
  const unsigned char *vectors, *unk, *words; /* inside the mapping */
  int64_t n;
  int dim;
  size_t words_len;
  uint64_t *word_off;        /* n + 1 offsets into words: word i is [off[i], off[i+1] - 1) */
  uint32_t *slots;           /* row + 1, 0 = empty */
  uint64_t mask;             /* slots - 1 */
};

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h;
}

const char *oe_glove_path(const oe_glove *g) { return g->st.path; }
int64_t oe_glove_size(const oe_glove *g) { return g->n; }
int oe_glove_dim(const oe_glove *g) { return g->dim; }
int oe_glove_has_unk(const oe_glove *g) { return g->unk != NULL; }

void oe_glove_close(oe_glove *g) {
  if (!g) return;
  if (g->map) munmap((void *)g->map, g->map_len);
  oe_st_close(&g->st);
  free(g->word_off);
  free(g->slots);
  free(g);
}

static const char *word_of(const oe_glove *g, int64_t row, size_t *len) {
  uint64_t a = g->word_off[row], b = g->word_off[row + 1];
  *len = (size_t)(b - a - 1);
  return (const char *)g->words + a;
}

const char *oe_glove_word(const oe_glove *g, int64_t row, size_t *len) {
  if (row < 0 || row >= g->n) return NULL;
  return word_of(g, row, len);
}

int64_t oe_glove_find(const oe_glove *g, const char *w, size_t n) {
  for (uint64_t i = fnv1a(w, n) & g->mask;; i = (i + 1) & g->mask) {
    uint32_t s = g->slots[i];
    if (!s) return -1;
    size_t len;
    const char *c = word_of(g, (int64_t)s - 1, &len);
    if (len == n && memcmp(c, w, n) == 0) return (int64_t)s - 1;
  }
}

/* metadata value of key, or NULL */
static const char *meta(const oe_st_file *f, const char *key, size_t *len) {
  for (size_t i = 0; i < f->nmeta; i++)
    if (f->meta[i].key_len == strlen(key) && memcmp(oe_st_meta_key(f, i), key, f->meta[i].key_len) == 0) {
      *len = f->meta[i].val_len;
      return oe_st_meta_val(f, i);
    }
  return NULL;
}

/* an optional metadata integer must equal want */
static int meta_agrees(oe_glove *g, const char *key, int64_t want, const char *what, oe_err *e) {
  size_t len;
  const char *v = meta(&g->st, key, &len);
  if (!v) return OE_OK;
  char buf[32];
  int m = snprintf(buf, sizeof buf, "%lld", (long long)want);
  if ((size_t)m != len || memcmp(buf, v, len) != 0) {
    char esc[64];
    return oe_fail_path(e, OE_EINVAL, g->st.path, "metadata %s = \"%s\" disagrees with the %s (%lld)", key,
                        oe_escape(v, len, esc, sizeof esc), what, (long long)want);
  }
  return OE_OK;
}

static int check_layout(oe_glove *g, oe_err *e) {
  const oe_st_file *f = &g->st;
  const char *path = f->path;
  size_t flen;
  const char *fmt = meta(f, "format", &flen);
  if (!fmt) return oe_fail_path(e, OE_EINVAL, path, "not a GloVe table: no \"format\" = \"%s\" in the metadata", OE_GLOVE_FORMAT);
  if (flen != strlen(OE_GLOVE_FORMAT) || memcmp(fmt, OE_GLOVE_FORMAT, flen) != 0) {
    char esc[64];
    return oe_fail_path(e, OE_EINVAL, path, "not a GloVe table: metadata format is \"%s\", expected \"%s\"",
                        oe_escape(fmt, flen, esc, sizeof esc), OE_GLOVE_FORMAT);
  }
  long iv = oe_st_find(f, "vectors", 7), iw = oe_st_find(f, "words", 5), iu = oe_st_find(f, "unk", 3);
  for (size_t i = 0; i < f->n; i++)
    if ((long)i != iv && (long)i != iw && (long)i != iu) {
      char esc[80];
      return oe_fail_path(e, OE_EINVAL, path, "unexpected tensor \"%s\" (a GloVe table holds vectors, words and unk)",
                          oe_escape(f->entries[i].name, f->entries[i].name_len, esc, sizeof esc));
    }
  if (iv < 0) return oe_fail_path(e, OE_EINVAL, path, "no \"vectors\" tensor");
  if (iw < 0) return oe_fail_path(e, OE_EINVAL, path, "no \"words\" tensor");
  const oe_st_entry *v = &f->entries[iv], *w = &f->entries[iw];
  if (v->dtype != OE_ST_F32 || v->ndim != 2)
    return oe_fail_path(e, OE_EINVAL, path, "\"vectors\" must be F32 (words, dim), got %s with %d dims",
                        oe_st_dtype_name(v->dtype), v->ndim);
  if (v->shape[1] < 1 || v->shape[1] > OE_GLOVE_MAX_DIM)
    return oe_fail_path(e, OE_EINVAL, path, "\"vectors\" has dim %lld, expected 1..%d", (long long)v->shape[1], OE_GLOVE_MAX_DIM);
  if (v->shape[0] < 1 || v->shape[0] > OE_GLOVE_MAX_WORDS)
    return oe_fail_path(e, OE_EINVAL, path, "\"vectors\" has %lld rows, expected 1..%lld", (long long)v->shape[0],
                        (long long)OE_GLOVE_MAX_WORDS);
  if (w->dtype != OE_ST_U8 || w->ndim != 1)
    return oe_fail_path(e, OE_EINVAL, path, "\"words\" must be U8 with 1 dim, got %s with %d dims", oe_st_dtype_name(w->dtype),
                        w->ndim);
  g->n = v->shape[0];
  g->dim = (int)v->shape[1];
  if (iu >= 0) {
    const oe_st_entry *u = &f->entries[iu];
    if (u->dtype != OE_ST_F32 || u->ndim != 1 || u->shape[0] != g->dim)
      return oe_fail_path(e, OE_EINVAL, path, "\"unk\" must be F32 (%d), got %s with %d dims%s", g->dim,
                          oe_st_dtype_name(u->dtype), u->ndim, u->ndim == 1 ? " of another size" : "");
  }
  int rc = meta_agrees(g, "dim", g->dim, "vectors' dim", e);
  if (rc == OE_OK) rc = meta_agrees(g, "words", g->n, "number of rows", e);
  if (rc != OE_OK) return rc;
  const unsigned char *data = g->map + f->data_start;
  g->vectors = data + v->begin;
  g->words = data + w->begin;
  g->words_len = (size_t)(w->end - w->begin);
  g->unk = iu >= 0 ? data + f->entries[iu].begin : NULL;
  return OE_OK;
}

/* split the words tensor into rows and index them */
static int index_words(oe_glove *g, oe_err *e) {
  const char *path = g->st.path;
  g->word_off = malloc(((size_t)g->n + 1) * sizeof *g->word_off);
  uint64_t cap = 2;
  while (cap < 2 * (uint64_t)g->n) cap <<= 1;
  g->slots = calloc((size_t)cap, sizeof *g->slots);
  if (!g->word_off || !g->slots) return oe_fail_path(e, OE_ENOMEM, path, "out of memory indexing %lld words", (long long)g->n);
  g->mask = cap - 1;
  const char *w = (const char *)g->words;
  size_t at = 0;
  int64_t row = 0;
  for (; row < g->n; row++) {
    if (at >= g->words_len)
      return oe_fail_path(e, OE_EINVAL, path, "\"words\" holds %lld words but \"vectors\" has %lld rows", (long long)row,
                          (long long)g->n);
    const char *nl = memchr(w + at, '\n', g->words_len - at);
    if (!nl)
      return oe_fail_path(e, OE_EINVAL, path, "\"words\" is truncated: word %lld has no terminating newline", (long long)row);
    size_t len = (size_t)(nl - (w + at));
    if (len == 0) return oe_fail_path(e, OE_EINVAL, path, "word %lld is empty", (long long)row);
    if (!oe_utf8_valid((const unsigned char *)w + at, len))
      return oe_fail_path(e, OE_EINVAL, path, "word %lld is not valid UTF-8", (long long)row);
    g->word_off[row] = at;
    g->word_off[row + 1] = at + len + 1; /* word_of needs it while probing */
    for (uint64_t i = fnv1a(w + at, len) & g->mask;; i = (i + 1) & g->mask) {
      uint32_t s = g->slots[i];
      if (!s) {
        g->slots[i] = (uint32_t)row + 1;
        break;
      }
      size_t l2;
      const char *c = word_of(g, (int64_t)s - 1, &l2);
      if (l2 == len && memcmp(c, w + at, len) == 0) {
        char esc[96];
        return oe_fail_path(e, OE_EINVAL, path, "word \"%s\" appears twice (rows %lld and %lld)",
                            oe_escape(w + at, len, esc, sizeof esc), (long long)s - 1, (long long)row);
      }
    }
    at += len + 1;
  }
  if (at != g->words_len) {
    size_t extra = 0;
    for (size_t i = at; i < g->words_len; i++) extra += w[i] == '\n';
    return oe_fail_path(e, OE_EINVAL, path, "\"words\" holds more words than the %lld rows of \"vectors\" (%zu more bytes%s)",
                        (long long)g->n, g->words_len - at, extra ? "" : ", unterminated");
  }
  return OE_OK;
}

int oe_glove_open(oe_glove **out, const char *path, oe_err *e) {
  *out = NULL;
  oe_glove *g = calloc(1, sizeof *g);
  if (!g) return oe_fail_path(e, OE_ENOMEM, path, "out of memory");
  int rc = oe_st_open(&g->st, path, e);
  if (rc != OE_OK) {
    free(g);
    return rc;
  }
  if (g->st.file_size > (uint64_t)SIZE_MAX) {
    rc = oe_fail_path(e, OE_EIO, path, "file too large to map");
    goto fail;
  }
  g->map_len = (size_t)g->st.file_size;
  void *p = mmap(NULL, g->map_len, PROT_READ, MAP_PRIVATE, g->st.fd, 0);
  if (p == MAP_FAILED) {
    int en = errno;
    g->map_len = 0;
    rc = oe_fail_path(e, OE_EIO, path, "cannot map: %s", strerror(en));
    goto fail;
  }
  g->map = p;
  if ((rc = check_layout(g, e)) != OE_OK || (rc = index_words(g, e)) != OE_OK) goto fail;
  *out = g;
  return OE_OK;
fail:
  oe_glove_close(g);
  return rc;
}

int oe_glove_check(const oe_glove *g, oe_err *e) {
  struct stat st;
  if (fstat(g->st.fd, &st) != 0) return oe_fail_path(e, OE_EIO, g->st.path, "cannot stat: %s", strerror(errno));
  if ((uint64_t)st.st_size != g->st.file_size)
    return oe_fail_path(e, OE_EIO, g->st.path, "the table changed size on disk (%llu bytes, %llu when opened)",
                        (unsigned long long)st.st_size, (unsigned long long)g->st.file_size);
  return OE_OK;
}

int oe_glove_row(const oe_glove *g, int64_t row, float *out, oe_err *e) {
  if (row < -1 || row >= g->n)
    return oe_fail_path(e, OE_EINVAL, g->st.path, "row %lld is outside 0..%lld", (long long)row, (long long)g->n - 1);
  if (row == -1) {
    if (g->unk) memcpy(out, g->unk, (size_t)g->dim * sizeof *out);
    else memset(out, 0, (size_t)g->dim * sizeof *out);
  } else {
    memcpy(out, g->vectors + (size_t)row * (size_t)g->dim * sizeof(float), (size_t)g->dim * sizeof *out);
  }
  for (int k = 0; k < g->dim; k++)
    if (!isfinite(out[k])) {
      if (row == -1) return oe_fail_path(e, OE_EINVAL, g->st.path, "bad row: \"unk\" value %d is %g", k, (double)out[k]);
      size_t len;
      const char *w = word_of(g, row, &len);
      char esc[96];
      return oe_fail_path(e, OE_EINVAL, g->st.path, "bad row %lld (\"%s\"): value %d is %g", (long long)row,
                          oe_escape(w, len, esc, sizeof esc), k, (double)out[k]);
    }
  return OE_OK;
}

int oe_glove_verify(const oe_glove *g, oe_err *e) {
  int rc = oe_glove_check(g, e);
  if (rc != OE_OK) return rc;
  float *buf = malloc((size_t)g->dim * sizeof *buf);
  if (!buf) return oe_fail_path(e, OE_ENOMEM, g->st.path, "out of memory");
  for (int64_t r = -1; r < g->n && rc == OE_OK; r++) rc = oe_glove_row(g, r, buf, e);
  free(buf);
  return rc;
}
