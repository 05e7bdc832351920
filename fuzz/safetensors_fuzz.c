/* safetensors_fuzz.c: oe_st_open / oe_st_read on arbitrary files (csrc/io/safetensors.c).
 *
 * Input: the whole file. Beyond "no crash, no leak, no undefined behaviour"
 * the harness checks what the header promises once a file is accepted:
 * entries sorted by name and unique, every range inside the data area, the
 * sorted ranges tiling it exactly, byte counts matching shapes and dtypes,
 * oe_st_find finding every name, metadata keys sorted and unique; every
 * loadable tensor reads back, and a tensor read without conversion holds
 * exactly the file's bytes. Small accepted files are then written again with
 * oe_st_save (into a folder under /dev/shm or TMPDIR) and read back: the same
 * names, values and metadata must come out. */
#include "fuzz_common.h"
#include "../csrc/core/util.h"
#include "../csrc/io/json.h"
#include "../csrc/io/safetensors.h"
#include <errno.h>
#include <sys/stat.h>

static char save_path[512];

static void init_save_path(void) {
  if (save_path[0]) return;
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  char dir[400];
  snprintf(dir, sizeof dir, "%s/oe-fuzz-st-%d", base, (int)getpid());
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) { perror("mkdir"); abort(); }
  snprintf(save_path, sizeof save_path, "%s/roundtrip.safetensors", dir);
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al < bl ? -1 : al > bl);
}

typedef struct { uint64_t begin, end; } range;
static int range_cmp(const void *x, const void *y) {
  const range *a = x, *b = y;
  if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
  return a->end < b->end ? -1 : a->end > b->end;
}

static void check_header(const oe_st_file *f, const uint8_t *data, size_t len) {
  FUZZ_CHECK(f->file_size == len, "file_size %llu, input %zu", (unsigned long long)f->file_size, len);
  FUZZ_CHECK(f->data_start >= 8 && f->data_start <= len && f->data_size == len - f->data_start, "data area");
  range *rs = malloc((f->n ? f->n : 1) * sizeof *rs);
  FUZZ_CHECK(rs != NULL, "oom");
  size_t nr = 0;
  for (size_t i = 0; i < f->n; i++) {
    const oe_st_entry *t = &f->entries[i];
    FUZZ_CHECK(t->name[t->name_len] == 0, "name not terminated");
    FUZZ_CHECK(oe_utf8_valid((const unsigned char *)t->name, t->name_len), "name is not UTF-8");
    FUZZ_CHECK(strcmp(t->name, "__metadata__") != 0, "__metadata__ as a tensor");
    if (i) FUZZ_CHECK(bytes_cmp(f->entries[i - 1].name, f->entries[i - 1].name_len, t->name, t->name_len) < 0, "names not sorted/unique");
    FUZZ_CHECK(oe_st_find(f, t->name, t->name_len) == (long)i, "oe_st_find");
    FUZZ_CHECK(t->dtype >= 0 && t->dtype < OE_ST_NDTYPES, "dtype");
    FUZZ_CHECK(t->ndim >= 0 && t->ndim <= OE_MAX_DIMS, "ndim %d", t->ndim);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
      FUZZ_CHECK(t->shape[d] >= 0, "negative size");
      FUZZ_CHECK(t->shape[d] == 0 || numel <= UINT64_MAX / (uint64_t)t->shape[d], "numel overflows");
      numel *= (uint64_t)t->shape[d];
    }
    FUZZ_CHECK(t->begin <= t->end && t->end <= f->data_size, "range outside the data");
    FUZZ_CHECK(numel * oe_st_dtype_size(t->dtype) == t->end - t->begin, "byte count does not match the shape");
    if (t->end > t->begin) rs[nr++] = (range){ t->begin, t->end };
  }
  qsort(rs, nr, sizeof *rs, range_cmp);
  uint64_t at = 0;
  for (size_t i = 0; i < nr; i++) {
    FUZZ_CHECK(rs[i].begin == at, "hole or overlap at %llu", (unsigned long long)at);
    at = rs[i].end;
  }
  FUZZ_CHECK(at == f->data_size, "ranges do not reach the end of the data");
  free(rs);
  for (size_t i = 1; i < f->nmeta; i++)
    FUZZ_CHECK(bytes_cmp(oe_st_meta_key(f, i - 1), f->meta[i - 1].key_len, oe_st_meta_key(f, i), f->meta[i].key_len) < 0,
               "metadata keys not sorted/unique");
  FUZZ_CHECK(f->nmeta == 0 || f->has_metadata, "metadata without __metadata__");
  (void)data;
}

/* read every tensor; tensors[i] holds storage when it loaded */
static void read_all(const oe_st_file *f, const uint8_t *data, oe_tensor *ts) {
  for (size_t i = 0; i < f->n; i++) {
    const oe_st_entry *t = &f->entries[i];
    oe_err e;
    memset(&ts[i], 0, sizeof ts[i]);
    int rc = oe_st_read(f, i, &ts[i], &e);
    oe_dtype dt;
    int loadable = oe_st_load_dtype(t->dtype, &dt);
    if (rc != OE_OK) {
      FUZZ_CHECK_MSG(e);
      FUZZ_CHECK(!loadable || t->dtype == OE_ST_U64, "a loadable %s tensor failed: %s", oe_st_dtype_name(t->dtype), e.msg);
      FUZZ_CHECK(ts[i].storage == NULL, "storage left after a failed read");
      continue;
    }
    FUZZ_CHECK(loadable && ts[i].dtype == dt && ts[i].ndim == t->ndim, "read result");
    for (int d = 0; d < t->ndim; d++) FUZZ_CHECK(ts[i].shape[d] == t->shape[d], "shape");
    const uint8_t *src = data + f->data_start + t->begin;
    size_t nb = (size_t)(t->end - t->begin);
    if (t->dtype == OE_ST_F32 || t->dtype == OE_ST_I64 || t->dtype == OE_ST_I32 || t->dtype == OE_ST_U8)
      FUZZ_CHECK(nb == 0 || memcmp(oe_data(&ts[i]), src, nb) == 0, "bytes differ from the file");
    if (t->dtype == OE_ST_BOOL)
      for (size_t k = 0; k < nb; k++) FUZZ_CHECK(((uint8_t *)oe_data(&ts[i]))[k] == (src[k] != 0), "BOOL");
  }
}

static void roundtrip(const oe_st_file *f, oe_tensor *ts) {
  size_t n = 0;
  oe_st_item *items = calloc(f->n ? f->n : 1, sizeof *items);
  const char **mk = calloc(f->nmeta ? f->nmeta : 1, sizeof *mk), **mv = calloc(f->nmeta ? f->nmeta : 1, sizeof *mv);
  size_t *mkl = calloc(f->nmeta ? f->nmeta : 1, sizeof *mkl), *mvl = calloc(f->nmeta ? f->nmeta : 1, sizeof *mvl);
  FUZZ_CHECK(items && mk && mv && mkl && mvl, "oom");
  for (size_t i = 0; i < f->n; i++)
    if (ts[i].storage) items[n++] = (oe_st_item){ f->entries[i].name, f->entries[i].name_len, &ts[i] };
  for (size_t i = 0; i < f->nmeta; i++) {
    mk[i] = oe_st_meta_key(f, i), mkl[i] = f->meta[i].key_len;
    mv[i] = oe_st_meta_val(f, i), mvl[i] = f->meta[i].val_len;
  }
  oe_err e;
  int rc = oe_st_save(save_path, n, items, f->has_metadata, f->nmeta, (const char *const *)mk, mkl,
                      (const char *const *)mv, mvl, OE_ST_F32, &e);
  FUZZ_CHECK(rc == OE_OK, "saving what was read failed: %s", e.msg);
  oe_st_file g;
  rc = oe_st_open(&g, save_path, &e);
  FUZZ_CHECK(rc == OE_OK, "reading what was saved failed: %s", e.msg);
  FUZZ_CHECK(g.n == n && g.nmeta == f->nmeta && g.has_metadata == f->has_metadata, "counts differ after a round trip");
  for (size_t i = 0; i < f->nmeta; i++) {
    FUZZ_CHECK(g.meta[i].key_len == f->meta[i].key_len && g.meta[i].val_len == f->meta[i].val_len &&
                   !memcmp(oe_st_meta_key(&g, i), mk[i], mkl[i]) && !memcmp(oe_st_meta_val(&g, i), mv[i], mvl[i]),
               "metadata pair %zu differs after a round trip", i);
  }
  for (size_t i = 0; i < n; i++) {
    long j = oe_st_find(&g, items[i].name, items[i].name_len);
    FUZZ_CHECK(j >= 0, "tensor lost in a round trip");
    oe_tensor t2;
    memset(&t2, 0, sizeof t2);
    rc = oe_st_read(&g, (size_t)j, &t2, &e);
    FUZZ_CHECK(rc == OE_OK, "reading a saved tensor failed: %s", e.msg);
    const oe_tensor *t1 = items[i].t;
    FUZZ_CHECK(t2.dtype == t1->dtype && t2.ndim == t1->ndim, "dtype or rank changed");
    for (int d = 0; d < t1->ndim; d++) FUZZ_CHECK(t2.shape[d] == t1->shape[d], "shape changed");
    size_t nb = (size_t)oe_numel(t1) * oe_dtype_size(t1->dtype);
    FUZZ_CHECK(nb == 0 || memcmp(oe_data(&t2), oe_data(t1), nb) == 0, "values changed in a round trip");
    oe_tensor_release(&t2);
  }
  oe_st_close(&g);
  free(items), free(mk), free(mv), free(mkl), free(mvl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  init_save_path();
  const char *path = fuzz_memfile(data, len);
  oe_st_file f;
  oe_err e;
  if (oe_st_open(&f, path, &e) != OE_OK) {
    FUZZ_CHECK_MSG(e);
    FUZZ_CHECK(f.fd == -1 && f.entries == NULL && f.path == NULL, "state left after a failed open");
    return 0;
  }
  check_header(&f, data, len);
  oe_tensor *ts = calloc(f.n ? f.n : 1, sizeof *ts);
  FUZZ_CHECK(ts != NULL, "oom");
  read_all(&f, data, ts);
  if (len <= 65536) roundtrip(&f, ts);
  for (size_t i = 0; i < f.n; i++) oe_tensor_release(&ts[i]);
  free(ts);
  oe_st_close(&f);
  return 0;
}
