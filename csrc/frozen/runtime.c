/* runtime.c: mapped safetensors weights, taken by name; scratch arena; config.json helpers.
 * See runtime.h. */
#include "runtime.h"
#include "../core/util.h"
#include "../io/json.h"
#include "../io/mmap_features.h"
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define fail oe_fail

void oe_fz_close(oe_fz_file *f) {
  if (!f) return;
  if (f->converted) {
    for (size_t i = 0; i < f->st.n; i++) free(f->converted[i]);
    free(f->converted);
  }
  free(f->counted);
  if (f->map) munmap((void *)f->map, f->map_len);
  if (f->st_open) oe_st_close(&f->st);
  memset(f, 0, sizeof *f);
  f->st.fd = -1;
}

int oe_fz_open(oe_fz_file *f, const char *path, oe_err *e) {
  memset(f, 0, sizeof *f);
  f->st.fd = -1;
  int rc = oe_st_open(&f->st, path, e);
  if (rc != OE_OK) return rc;
  f->st_open = 1;
  size_t n = f->st.n ? f->st.n : 1;
  f->converted = calloc(n, sizeof *f->converted);
  f->counted = calloc(n, 1);
  if (!f->converted || !f->counted) {
    oe_fz_close(f);
    return fail(e, OE_ENOMEM, "%s: out of memory for %zu tensor records", path, n);
  }
  if (f->st.file_size > (uint64_t)SIZE_MAX) {
    oe_fz_close(f);
    return fail(e, OE_EIO, "%s: file too large to map", path);
  }
  f->map_len = (size_t)f->st.file_size;
  void *p = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, f->st.fd, 0);
  if (p == MAP_FAILED) {
    int en = errno;
    f->map_len = 0;
    oe_fz_close(f);
    return fail(e, OE_EIO, "%s: cannot map: %s", path, strerror(en));
  }
  f->map = p;
  return OE_OK;
}

int oe_fz_check(const oe_fz_file *f, oe_err *e) {
  struct stat st;
  if (fstat(f->st.fd, &st) != 0) return fail(e, OE_EIO, "%s: cannot stat: %s", f->st.path, strerror(errno));
  if ((uint64_t)st.st_size != f->st.file_size)
    return fail(e, OE_EIO, "%s: the weights file changed size on disk (%llu bytes, %llu when opened)", f->st.path,
                (unsigned long long)st.st_size, (unsigned long long)f->st.file_size);
  return OE_OK;
}

int oe_fz_take_begin(oe_fz_take *t, oe_fz_file *f, const char *prefix, oe_err *e) {
  memset(t, 0, sizeof *t);
  size_t pl = prefix ? strlen(prefix) : 0;
  if (pl >= sizeof t->prefix) return fail(e, OE_EINVAL, "key prefix is too long (%zu bytes, at most %zu)", pl, sizeof t->prefix - 1);
  if (pl) memcpy(t->prefix, prefix, pl);
  t->prefix[pl] = 0;
  t->f = f;
  t->taken = calloc(f->st.n ? f->st.n : 1, 1);
  if (!t->taken) return fail(e, OE_ENOMEM, "out of memory");
  return OE_OK;
}

void oe_fz_take_end(oe_fz_take *t) {
  free(t->taken);
  t->taken = NULL;
}

long oe_fz_find(const oe_fz_take *t, const char *key) {
  char full[512];
  int n = snprintf(full, sizeof full, "%s%s", t->prefix, key);
  if (n < 0 || (size_t)n >= sizeof full) return -1;
  return oe_st_find(&t->f->st, full, (size_t)n);
}

int oe_fz_shape(const oe_fz_take *t, const char *key, int *ndim, int64_t *shape) {
  long i = oe_fz_find(t, key);
  if (i < 0) return 0;
  const oe_st_entry *en = &t->f->st.entries[i];
  *ndim = en->ndim;
  for (int d = 0; d < en->ndim; d++) shape[d] = en->shape[d];
  return 1;
}

/* release the resident pages of [p, p + n) that lie wholly inside the range */
static void drop_pages(const void *p, size_t n) {
  long pg = sysconf(_SC_PAGESIZE);
  if (pg <= 0) return;
  uintptr_t a = (uintptr_t)p, b = a + n;
  uintptr_t a2 = (a + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), b2 = b & ~((uintptr_t)pg - 1);
  if (b2 > a2) madvise((void *)a2, b2 - a2, MADV_DONTNEED);
}

int oe_fz_get(oe_fz_take *t, const char *key, int ndim, const int64_t *shape, const float **out, oe_err *e) {
  oe_fz_file *f = t->f;
  long i = oe_fz_find(t, key);
  char want[128], got[128];
  oe_shape_str(ndim, shape, want, sizeof want);
  if (i < 0) return fail(e, OE_EINVAL, "%s: missing tensor '%s%s' (expected shape %s)", f->st.path, t->prefix, key, want);
  const oe_st_entry *en = &f->st.entries[i];
  int same = en->ndim == ndim;
  for (int d = 0; same && d < ndim; d++) same = en->shape[d] == shape[d];
  if (!same) {
    oe_shape_str(en->ndim, en->shape, got, sizeof got);
    return fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected %s", f->st.path, t->prefix, key, got, want);
  }
  const unsigned char *src = f->map + f->st.data_start + en->begin;
  size_t cnt = (size_t)oe_numel_of(en->ndim, en->shape);
  t->taken[i] = 1;
  if (en->dtype == OE_ST_F32 && ((uintptr_t)src & 3) == 0) {
    if (!f->counted[i]) { f->counted[i] = 1; f->n_inplace++; }
    *out = (const float *)(const void *)src;
    return OE_OK;
  }
  if (f->converted[i]) { *out = f->converted[i]; return OE_OK; }
  if (en->dtype != OE_ST_F32 && en->dtype != OE_ST_F16 && en->dtype != OE_ST_BF16 && en->dtype != OE_ST_F64)
    return fail(e, OE_EINVAL, "%s: tensor '%s%s' is %s; weights must be F32, F16, BF16 or F64", f->st.path, t->prefix, key,
                oe_st_dtype_name(en->dtype));
  float *dst = aligned_alloc(64, oe_fz_round(cnt ? cnt : 1) * sizeof(float));
  if (!dst) return fail(e, OE_ENOMEM, "%s: out of memory converting '%s%s' (%zu values)", f->st.path, t->prefix, key, cnt);
  switch (en->dtype) {
    case OE_ST_F32: memcpy(dst, src, cnt * 4); break;
    case OE_ST_F16:
      if (((uintptr_t)src & 1) == 0) oe_f16_to_f32_n((const uint16_t *)(const void *)src, dst, cnt);
      else for (size_t k = 0; k < cnt; k++) { uint16_t h; memcpy(&h, src + 2 * k, 2); dst[k] = oe_f16_to_f32(h); }
      break;
    case OE_ST_BF16:
      for (size_t k = 0; k < cnt; k++) { uint16_t h; memcpy(&h, src + 2 * k, 2); dst[k] = oe_bf16_to_f32(h); }
      break;
    default:
      for (size_t k = 0; k < cnt; k++) { double v; memcpy(&v, src + 8 * k, 8); dst[k] = (float)v; }
      break;
  }
  drop_pages(src, (size_t)(en->end - en->begin));
  f->converted[i] = dst;
  f->converted_bytes += cnt * sizeof(float);
  if (!f->counted[i]) { f->counted[i] = 1; f->n_converted++; }
  *out = dst;
  return OE_OK;
}

static int has_prefix(const char *s, size_t n, const char *p) {
  size_t pl = strlen(p);
  return n >= pl && !memcmp(s, p, pl);
}

size_t oe_fz_count_prefix(const oe_fz_file *f, const char *prefix) {
  size_t c = 0;
  for (size_t i = 0; i < f->st.n; i++)
    if (has_prefix(f->st.entries[i].name, f->st.entries[i].name_len, prefix)) c++;
  return c;
}

static int ignored(const char *key, size_t n, const char *const *ignore) {
  for (; ignore && *ignore; ignore++) {
    size_t pl = strlen(*ignore);
    if (pl && (*ignore)[pl - 1] == '*') {
      if (n >= pl - 1 && !memcmp(key, *ignore, pl - 1)) return 1;
    } else if (n == pl && !memcmp(key, *ignore, pl)) return 1;
  }
  return 0;
}

int oe_fz_unexpected(const oe_fz_take *t, const char *const *ignore, oe_err *e) {
  const oe_fz_file *f = t->f;
  size_t pl = strlen(t->prefix), count = 0;
  char list[360];
  size_t used = 0;
  list[0] = 0;
  for (size_t i = 0; i < f->st.n; i++) {
    const oe_st_entry *en = &f->st.entries[i];
    if (t->taken[i] || !has_prefix(en->name, en->name_len, t->prefix)) continue;
    if (ignored(en->name + pl, en->name_len - pl, ignore)) continue;
    if (count < 4 && used + 8 < sizeof list) {
      char shp[96];
      oe_shape_str(en->ndim, en->shape, shp, sizeof shp);
      int w = snprintf(list + used, sizeof list - used, "%s'%.*s' %s", count ? ", " : "", (int)(en->name_len > 120 ? 120 : en->name_len),
                       en->name, shp);
      if (w > 0) used += (size_t)w < sizeof list - used ? (size_t)w : sizeof list - used - 1;
    }
    count++;
  }
  if (!count) return OE_OK;
  return fail(e, OE_EINVAL, "%s: %zu unexpected tensor%s under the prefix '%s': %s%s", f->st.path, count, count == 1 ? "" : "s",
              t->prefix, list, count > 4 ? ", ..." : "");
}

int oe_fz_mul_ok(int64_t a, int64_t b, int64_t limit, int64_t *out) {
  if (a < 0 || b < 0) return 0;
  if (a && b > limit / a) return 0;
  *out = a * b;
  return 1;
}

int oe_fz_arena_reserve(oe_fz_arena *a, size_t n, oe_err *e) {
  if (n <= a->cap) return OE_OK;
  free(a->buf);
  a->buf = NULL;
  a->cap = 0;
  if (n > SIZE_MAX / sizeof(float) - 64) return fail(e, OE_ENOMEM, "scratch of %zu floats is too large", n);
  a->buf = aligned_alloc(64, oe_fz_round(n) * sizeof(float));
  if (!a->buf) return fail(e, OE_ENOMEM, "out of memory for %.1f MB of scratch", (double)n * 4 / 1e6);
  a->cap = n;
  return OE_OK;
}

void oe_fz_arena_free(oe_fz_arena *a) {
  free(a->buf);
  a->buf = NULL;
  a->cap = 0;
}

/* ---- config.json ---- */

void oe_fz_config_free(oe_fz_config *c) {
  free(c->items);
  c->items = NULL;
  c->n = 0;
}

static int cfg_parse(oe_fz_config *c, const char *buf, size_t len, size_t cap, oe_err *e) {
  char jerr[200];
  oe_json_reader r;
  oe_json_init(&r, buf, len, jerr, sizeof jerr);
  oe_json_type ty;
  if (oe_json_peek(&r, &ty)) return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
  if (ty != OE_JSON_OBJECT) return fail(e, OE_EIO, "%s: must hold a JSON object, got %s", c->path, oe_json_type_name(ty));
  oe_json_iter it;
  if (oe_json_enter(&r, &it)) return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
  for (;;) {
    int more = oe_json_next(&r, &it);
    if (more < 0) return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
    if (!more) break;
    oe_json_str k;
    if (oe_json_key(&r, &k) || oe_json_peek(&r, &ty)) return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
    oe_fz_cfg_item *it_ = NULL;
    if (k.len < sizeof it_->key && c->n < cap) {
      it_ = &c->items[c->n];
      memset(it_, 0, sizeof *it_);
      oe_json_decode(&k, it_->key);
      it_->key[k.len] = 0;
      if (strlen(it_->key) != k.len) it_ = NULL; /* a key holding NUL is none of ours */
    }
    if (it_)
      for (size_t j = 0; j < c->n; j++)
        if (!strcmp(c->items[j].key, it_->key)) return fail(e, OE_EIO, "%s: the key \"%s\" appears twice", c->path, it_->key);
    if (it_) it_->type = (int)ty;
    if (it_ && ty == OE_JSON_NUMBER) {
      oe_json_num num;
      if (oe_json_number(&r, &num)) return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
      it_->is_int = num.is_int;
      it_->neg = num.neg;
      it_->overflow = num.overflow;
      it_->mag = num.mag;
      it_->num = num.num;
    } else if (it_ && ty == OE_JSON_STRING) {
      oe_json_str sv;
      if (oe_json_string(&r, &sv)) return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
      if (sv.len < sizeof it_->str) {
        oe_json_decode(&sv, it_->str);
        it_->str[sv.len] = 0;
      } else {
        memcpy(it_->str, "(a long string)", 16);
      }
    } else if (oe_json_skip(&r)) {
      return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
    }
    if (it_) c->n++;
  }
  if (oe_json_finish(&r)) return fail(e, OE_EIO, "%s: not valid JSON: %s", c->path, jerr);
  return OE_OK;
}

int oe_fz_config_read(const char *path, oe_fz_config *c, oe_err *e) {
  memset(c, 0, sizeof *c);
  snprintf(c->path, sizeof c->path, "%s", path);
  char why[300];
  uint64_t size;
  int fd = oe_open_regular(path, &size, why, sizeof why); /* a pipe or device: refused without blocking */
  if (fd < 0) return fail(e, OE_EIO, "%s: %s", path, why);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return fail(e, OE_EIO, "%s: not a regular file", path);
  }
  if (st.st_size > (1 << 20)) {
    close(fd);
    return fail(e, OE_EIO, "%s: %lld bytes, more than the 1 MB a config.json may have", path, (long long)st.st_size);
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n + 1);
  if (!buf) { close(fd); return fail(e, OE_ENOMEM, "%s: out of memory", path); }
  if (n && oe_pread_full(fd, buf, n, 0)) {
    int en = errno;
    free(buf);
    close(fd);
    return fail(e, OE_EIO, "%s: cannot read: %s", path, en ? strerror(en) : "end of file");
  }
  close(fd);
  const size_t cap = 512;
  c->items = calloc(cap, sizeof *c->items);
  if (!c->items) { free(buf); return fail(e, OE_ENOMEM, "%s: out of memory", path); }
  int rc = cfg_parse(c, buf, n, cap, e);
  free(buf);
  if (rc != OE_OK) oe_fz_config_free(c);
  return rc;
}

static const oe_fz_cfg_item *cfg_find(const oe_fz_config *c, const char *key) {
  for (size_t i = 0; i < c->n; i++)
    if (!strcmp(c->items[i].key, key)) return c->items[i].type == OE_JSON_NULL ? NULL : &c->items[i];
  return NULL;
}

int oe_fz_config_int(const oe_fz_config *c, const char *key, int64_t lo, int64_t hi, int64_t *out, oe_err *e) {
  const oe_fz_cfg_item *v = cfg_find(c, key);
  if (!v) return 0;
  if (v->type != OE_JSON_NUMBER || !v->is_int || v->overflow || (v->neg && v->mag) || v->mag > (uint64_t)INT64_MAX) {
    fail(e, OE_EIO, "%s: \"%s\" must be a non-negative integer, got %s", c->path, key,
         v->type == OE_JSON_NUMBER ? "a fraction or an out-of-range number" : oe_json_type_name((oe_json_type)v->type));
    return -1;
  }
  int64_t x = (int64_t)v->mag;
  if (x < lo || x > hi) {
    fail(e, OE_EIO, "%s: \"%s\" = %lld is outside %lld..%lld", c->path, key, (long long)x, (long long)lo, (long long)hi);
    return -1;
  }
  *out = x;
  return 1;
}

int oe_fz_config_num(const oe_fz_config *c, const char *key, int positive, double *out, oe_err *e) {
  const oe_fz_cfg_item *v = cfg_find(c, key);
  if (!v) return 0;
  if (v->type != OE_JSON_NUMBER || !isfinite(v->num) || (positive && !(v->num > 0))) {
    fail(e, OE_EIO, "%s: \"%s\" must be a %snumber, got %s", c->path, key, positive ? "positive " : "",
         v->type == OE_JSON_NUMBER ? "a value out of range" : oe_json_type_name((oe_json_type)v->type));
    return -1;
  }
  *out = v->num;
  return 1;
}

int oe_fz_config_str(const oe_fz_config *c, const char *key, const char **out, oe_err *e) {
  const oe_fz_cfg_item *v = cfg_find(c, key);
  if (!v) return 0;
  if (v->type != OE_JSON_STRING) {
    fail(e, OE_EIO, "%s: \"%s\" must be a string, got %s", c->path, key, oe_json_type_name((oe_json_type)v->type));
    return -1;
  }
  *out = v->str;
  return 1;
}

int oe_fz_config_bool(const oe_fz_config *c, const char *key, int *out, oe_err *e) {
  const oe_fz_cfg_item *v = cfg_find(c, key);
  if (!v) return 0;
  if (v->type != OE_JSON_TRUE && v->type != OE_JSON_FALSE) {
    fail(e, OE_EIO, "%s: \"%s\" must be true or false, got %s", c->path, key, oe_json_type_name((oe_json_type)v->type));
    return -1;
  }
  *out = v->type == OE_JSON_TRUE;
  return 1;
}

int oe_fz_config_encoder(const oe_fz_config *c, const char *expect_type, int64_t max_layers, oe_fz_encoder_config *out,
                         oe_err *e) {
  const int64_t max_dim = (int64_t)1 << 16;
  memset(out, 0, sizeof *out);
  const char *s;
  int r;
  if (expect_type) {
    if ((r = oe_fz_config_str(c, "model_type", &s, e)) < 0) return -1;
    if (r && strcmp(s, expect_type) != 0) {
      fail(e, OE_EIO, "%s: model_type is \"%s\", expected \"%s\"", c->path, s, expect_type);
      return -1;
    }
  }
  if ((r = oe_fz_config_str(c, "hidden_act", &s, e)) < 0) return -1;
  if (r && strcmp(s, "gelu") != 0) {
    fail(e, OE_EIO, "%s: hidden_act \"%s\" is not supported (only \"gelu\", the erf form)", c->path, s);
    return -1;
  }
  if (oe_fz_config_int(c, "hidden_size", 1, max_dim, &out->hidden, e) < 0) return -1;
  if (oe_fz_config_int(c, "num_hidden_layers", 1, max_layers, &out->layers, e) < 0) return -1;
  if (oe_fz_config_int(c, "num_attention_heads", 1, max_dim, &out->heads, e) < 0) return -1;
  if (oe_fz_config_int(c, "intermediate_size", 1, max_dim * 8, &out->inter, e) < 0) return -1;
  if ((r = oe_fz_config_num(c, "layer_norm_eps", 1, &out->eps, e)) < 0) return -1;
  out->has_eps = r;
  return 0;
}

int oe_fz_config_mismatch(oe_err *e, const char *path, const char *key, int64_t cfg, const char *what, int64_t w) {
  return fail(e, OE_EINVAL, "%s: \"%s\" = %lld disagrees with the weights (%s: %lld)", path, key, (long long)cfg, what,
              (long long)w);
}
