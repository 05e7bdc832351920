/* safetensors.c: see safetensors.h */
#include "safetensors.h"
#include "../core/util.h"
#include "json.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

static const char *const st_names[OE_ST_NDTYPES] = {
  "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64", "U64",
};
static const unsigned char st_sizes[OE_ST_NDTYPES] = { 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8 };

const char *oe_st_dtype_name(oe_st_dtype d) { return (unsigned)d < OE_ST_NDTYPES ? st_names[d] : "?"; }
size_t oe_st_dtype_size(oe_st_dtype d) { return (unsigned)d < OE_ST_NDTYPES ? st_sizes[d] : 1; }

int oe_st_load_dtype(oe_st_dtype d, oe_dtype *out) {
  switch (d) {
    case OE_ST_F32: case OE_ST_F16: case OE_ST_BF16: case OE_ST_F64: *out = OE_F32; return 1;
    case OE_ST_I64: case OE_ST_U32: case OE_ST_U64: *out = OE_I64; return 1;
    case OE_ST_I32: case OE_ST_I16: case OE_ST_I8: case OE_ST_U16: *out = OE_I32; return 1;
    case OE_ST_U8: case OE_ST_BOOL: *out = OE_U8; return 1;
    default: return 0;
  }
}

/* ---------------------------------------------------------------- halves */

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float oe_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  if (exp == 0x1F) return u2f(sign | 0x7F800000u | (man << 13)); /* inf, nan (payload kept) */
  if (exp == 0) {
    if (man == 0) return u2f(sign);
    /* subnormal: man x 2^-24, normalise */
    int e = -1;
    do { man <<= 1; e++; } while (!(man & 0x400));
    return u2f(sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13));
  }
  return u2f(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

float oe_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t oe_f32_to_f16(float f) {
  uint32_t u = f2u(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) /* inf or nan */
    return sign | 0x7C00 | (a > 0x7F800000u ? (uint16_t)(0x200 | ((a >> 13) & 0x3FF)) : 0);
  if (a >= 0x477FF000u) return sign | 0x7C00; /* >= 65520 rounds to inf */
  if (a < 0x38800000u) {                       /* below 2^-14: subnormal half or zero */
    if (a < 0x33000000u) return sign;          /* < 2^-25: rounds to zero (2^-25 itself is a tie to 0) */
    uint32_t e = a >> 23, man = (a & 0x7FFFFF) | 0x800000;
    int shift = (int)(126 - e); /* value = man x 2^(e-150); half units are 2^-24 */
    /* result = man >> (shift - 0)... computed as man x 2^(e-150+24) = man >> (126 - e) */
    uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (q & 1))) q++;
    return sign | (uint16_t)q;
  }
  /* normal: rebias and round the 13 dropped bits to nearest even */
  uint32_t r = a - 0x38000000u; /* exponent 127-15 */
  uint32_t q = r >> 13, rem = r & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* carry into the exponent is correct */
  return sign | (uint16_t)q;
}

uint16_t oe_f32_to_bf16(float f) {
  uint32_t u = f2u(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
  u += 0x7FFFu + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}

/* ---------------------------------------------------------------- errors */

#define err oe_fail

/* printable form of a name for messages */
static const char *shown(const char *s, size_t n, char *buf, size_t cap) {
  size_t j = 0, lim = cap - 4;
  for (size_t i = 0; i < n && j < lim; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[j++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
  }
  if (n > lim) { buf[j++] = '.'; buf[j++] = '.'; buf[j++] = '.'; }
  buf[j] = 0;
  return buf;
}


/* ---------------------------------------------------------------- reading */

void oe_st_close(oe_st_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  for (size_t i = 0; i < f->n; i++) free(f->entries[i].name);
  for (size_t i = 0; i < f->nmeta; i++) { free(f->meta_keys[i]); free(f->meta_vals[i]); }
  free(f->entries);
  free(f->meta_keys);
  free(f->meta_vals);
  free(f->meta_key_lens);
  free(f->meta_val_lens);
  free(f->path);
  memset(f, 0, sizeof *f);
  f->fd = -1;
}

static char *dup_bytes(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = 0; }
  return p;
}

static int steal_metadata(oe_st_file *f, oe_json *m, const char *path, oe_err *e) {
  if (m->type != OE_JSON_OBJECT)
    return err(e, OE_EINVAL, "%s: __metadata__ must be an object of strings, got %s", path, oe_json_type_name(m->type));
  f->has_metadata = 1;
  size_t n = m->n ? m->n : 1;
  f->meta_keys = calloc(n, sizeof(char *));
  f->meta_vals = calloc(n, sizeof(char *));
  f->meta_key_lens = calloc(n, sizeof(size_t));
  f->meta_val_lens = calloc(n, sizeof(size_t));
  if (!f->meta_keys || !f->meta_vals || !f->meta_key_lens || !f->meta_val_lens)
    return err(e, OE_ENOMEM, "%s: out of memory reading the header", path);
  for (size_t i = 0; i < m->n; i++) {
    char b[160];
    if (m->items[i].type != OE_JSON_STRING)
      return err(e, OE_EINVAL, "%s: __metadata__ must be an object of strings, but key '%s' holds %s", path,
                 shown(m->keys[i], m->key_lens[i], b, sizeof b), oe_json_type_name(m->items[i].type));
    f->meta_keys[i] = m->keys[i];
    f->meta_key_lens[i] = m->key_lens[i];
    m->keys[i] = NULL;
    f->meta_vals[i] = m->items[i].str;
    f->meta_val_lens[i] = m->items[i].len;
    m->items[i].str = NULL;
    f->nmeta++;
  }
  return OE_OK;
}

static int json_uint(const oe_json *v, uint64_t max, uint64_t *out) {
  if (v->type != OE_JSON_NUMBER || !v->is_int || v->int_overflow || (v->neg && v->mag) || v->mag > max) return 0;
  *out = v->mag;
  return 1;
}

static const char *number_desc(const oe_json *v, char *buf, size_t n) {
  if (v->type != OE_JSON_NUMBER) return oe_json_type_name(v->type);
  if (v->is_int && v->int_overflow) return "an integer too large for 64 bits";
  if (v->is_int) snprintf(buf, n, "%s%llu", v->neg ? "-" : "", (unsigned long long)v->mag);
  else snprintf(buf, n, "%.17g", v->num);
  return buf;
}

static int parse_entry(oe_st_entry *t, const oe_json *v, const char *path, const char *nm, uint64_t data_size, oe_err *e) {
  if (v->type != OE_JSON_OBJECT)
    return err(e, OE_EINVAL, "%s: tensor '%s' must be described by an object, got %s", path, nm, oe_json_type_name(v->type));
  const oe_json *dt = oe_json_get(v, "dtype"), *sh = oe_json_get(v, "shape"), *off = oe_json_get(v, "data_offsets");
  if (!dt) return err(e, OE_EINVAL, "%s: tensor '%s' has no \"dtype\"", path, nm);
  if (!sh) return err(e, OE_EINVAL, "%s: tensor '%s' has no \"shape\"", path, nm);
  if (!off) return err(e, OE_EINVAL, "%s: tensor '%s' has no \"data_offsets\"", path, nm);
  if (dt->type != OE_JSON_STRING) return err(e, OE_EINVAL, "%s: tensor '%s' dtype must be a string, got %s", path, nm, oe_json_type_name(dt->type));
  int found = 0;
  for (int k = 0; k < OE_ST_NDTYPES; k++)
    if (dt->len == strlen(st_names[k]) && !memcmp(dt->str, st_names[k], dt->len)) { t->dtype = (oe_st_dtype)k; found = 1; }
  if (!found) {
    char b[80];
    return err(e, OE_EINVAL, "%s: tensor '%s' has unknown dtype '%s'", path, nm, shown(dt->str, dt->len, b, sizeof b));
  }
  if (sh->type != OE_JSON_ARRAY) return err(e, OE_EINVAL, "%s: tensor '%s' shape must be an array, got %s", path, nm, oe_json_type_name(sh->type));
  if (sh->n > OE_MAX_DIMS)
    return err(e, OE_EINVAL, "%s: tensor '%s' has %zu dimensions, at most %d are supported", path, nm, sh->n, OE_MAX_DIMS);
  t->ndim = (int)sh->n;
  for (size_t d = 0; d < sh->n; d++) {
    uint64_t s;
    char b[64];
    if (!json_uint(&sh->items[d], INT64_MAX, &s))
      return err(e, OE_EINVAL, "%s: tensor '%s' shape entry %zu is %s; sizes must be non-negative integers", path, nm, d + 1,
                 number_desc(&sh->items[d], b, sizeof b));
    t->shape[d] = (int64_t)s;
  }
  if (off->type != OE_JSON_ARRAY || off->n != 2)
    return err(e, OE_EINVAL, "%s: tensor '%s' data_offsets must be an array [begin, end]", path, nm);
  char b0[64], b1[64], sb[200];
  if (!json_uint(&off->items[0], UINT64_MAX, &t->begin) || !json_uint(&off->items[1], UINT64_MAX, &t->end))
    return err(e, OE_EINVAL, "%s: tensor '%s' data_offsets [%s, %s] must be non-negative integers", path, nm,
               number_desc(&off->items[0], b0, sizeof b0), number_desc(&off->items[1], b1, sizeof b1));
  if (t->begin > t->end)
    return err(e, OE_EINVAL, "%s: tensor '%s' data_offsets [%llu, %llu] are reversed (begin > end)", path, nm,
               (unsigned long long)t->begin, (unsigned long long)t->end);
  uint64_t numel = 1, es = st_sizes[t->dtype], need;
  int ovf = 0;
  for (int d = 0; d < t->ndim; d++) {
    uint64_t s = (uint64_t)t->shape[d];
    if (s && numel > UINT64_MAX / s) ovf = 1;
    else numel *= s;
  }
  if (!ovf && numel > UINT64_MAX / es) ovf = 1;
  oe_shape_str(t->ndim, t->shape, sb, sizeof sb);
  if (ovf)
    return err(e, OE_EINVAL, "%s: tensor '%s' shape %s overflows: its size does not fit in 64 bits", path, nm, sb);
  need = numel * es;
  if (t->end - t->begin != need)
    return err(e, OE_EINVAL, "%s: tensor '%s' data range [%llu, %llu) has %llu bytes but shape %s %s needs %llu", path, nm,
               (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)(t->end - t->begin), sb,
               st_names[t->dtype], (unsigned long long)need);
  if (t->end > data_size)
    return err(e, OE_EINVAL, "%s: tensor '%s' data range [%llu, %llu) ends outside the data area of %llu bytes (truncated file or bad offsets)",
               path, nm, (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)data_size);
  return OE_OK;
}

typedef struct { uint64_t begin, end; size_t i; } range;
static int range_cmp(const void *a, const void *b) {
  const range *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int check_overlaps(const oe_st_file *f, oe_err *e) {
  size_t m = 0;
  range *r = malloc((f->n ? f->n : 1) * sizeof *r);
  if (!r) return err(e, OE_ENOMEM, "%s: out of memory reading the header", f->path);
  for (size_t i = 0; i < f->n; i++)
    if (f->entries[i].end > f->entries[i].begin) { r[m].begin = f->entries[i].begin; r[m].end = f->entries[i].end; r[m].i = i; m++; }
  qsort(r, m, sizeof *r, range_cmp);
  for (size_t k = 1; k < m; k++) {
    if (r[k].begin < r[k - 1].end) {
      const oe_st_entry *a = &f->entries[r[k - 1].i], *b = &f->entries[r[k].i];
      char na[120], nb[120];
      err(e, OE_EINVAL, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) have overlapping data ranges", f->path,
          shown(a->name, a->name_len, na, sizeof na), (unsigned long long)a->begin, (unsigned long long)a->end,
          shown(b->name, b->name_len, nb, sizeof nb), (unsigned long long)b->begin, (unsigned long long)b->end);
      free(r);
      return OE_EINVAL;
    }
  }
  free(r);
  return OE_OK;
}

int oe_st_open(oe_st_file *f, const char *path, oe_err *e) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  f->path = dup_bytes(path, strlen(path));
  if (!f->path) return err(e, OE_ENOMEM, "%s: out of memory", path);
  int rc = OE_OK;
  char *hdr = NULL;
  oe_json root;
  memset(&root, 0, sizeof root);
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) { rc = err(e, OE_EIO, "%s: cannot open: %s", path, strerror(errno)); goto fail; }
  struct stat st;
  if (fstat(f->fd, &st) != 0) { rc = err(e, OE_EIO, "%s: cannot stat: %s", path, strerror(errno)); goto fail; }
  if (!S_ISREG(st.st_mode)) { rc = err(e, OE_EIO, "%s: not a regular file", path); goto fail; }
  f->file_size = (uint64_t)st.st_size;
  if (f->file_size == 0) { rc = err(e, OE_EIO, "%s: file is empty, not a safetensors file", path); goto fail; }
  if (f->file_size < 8) {
    rc = err(e, OE_EIO, "%s: file is too short (%llu bytes) to hold the 8-byte header length", path, (unsigned long long)f->file_size);
    goto fail;
  }
  unsigned char lenbuf[8];
  if (oe_pread_full(f->fd, lenbuf, 8, 0)) { rc = err(e, OE_EIO, "%s: cannot read the header length: %s", path, errno ? strerror(errno) : "end of file"); goto fail; }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenbuf[i];
  if (hlen > f->file_size - 8) {
    rc = err(e, OE_EIO, "%s: header length %llu is larger than the rest of the file (%llu bytes)", path, (unsigned long long)hlen,
             (unsigned long long)(f->file_size - 8));
    goto fail;
  }
  if (hlen > OE_ST_MAX_HEADER) {
    rc = err(e, OE_EIO, "%s: header length %llu is over the %u-byte limit", path, (unsigned long long)hlen, OE_ST_MAX_HEADER);
    goto fail;
  }
  f->data_start = 8 + hlen;
  f->data_size = f->file_size - f->data_start;
  hdr = malloc(hlen ? hlen : 1);
  if (!hdr) { rc = err(e, OE_ENOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)hlen); goto fail; }
  if (oe_pread_full(f->fd, hdr, hlen, 8)) { rc = err(e, OE_EIO, "%s: cannot read the header: %s", path, errno ? strerror(errno) : "end of file"); goto fail; }
  char jerr[256];
  if (oe_json_parse(hdr, hlen, &root, jerr, sizeof jerr)) { rc = err(e, OE_EIO, "%s: header is not valid JSON: %s", path, jerr); goto fail; }
  free(hdr);
  hdr = NULL;
  if (root.type != OE_JSON_OBJECT) {
    rc = err(e, OE_EIO, "%s: header must be a JSON object, got %s", path, oe_json_type_name(root.type));
    goto fail;
  }
  f->entries = calloc(root.n ? root.n : 1, sizeof *f->entries);
  if (!f->entries) { rc = err(e, OE_ENOMEM, "%s: out of memory reading the header", path); goto fail; }
  for (size_t i = 0; i < root.n; i++) {
    char *k = root.keys[i];
    size_t kl = root.key_lens[i];
    if (kl == 12 && !memcmp(k, "__metadata__", 12)) {
      if ((rc = steal_metadata(f, &root.items[i], path, e)) != OE_OK) { if (rc == OE_EINVAL) rc = OE_EIO; goto fail; }
      continue;
    }
    oe_st_entry *t = &f->entries[f->n];
    char nm[160];
    shown(k, kl, nm, sizeof nm);
    if ((rc = parse_entry(t, &root.items[i], path, nm, f->data_size, e)) != OE_OK) { rc = OE_EIO; goto fail; }
    t->name = k;
    t->name_len = kl;
    root.keys[i] = NULL; /* owned by the entry now */
    f->n++;
  }
  oe_json_free(&root);
  if ((rc = check_overlaps(f, e)) != OE_OK) { if (rc == OE_EINVAL) rc = OE_EIO; goto fail; }
  return OE_OK;
fail:
  free(hdr);
  oe_json_free(&root);
  oe_st_close(f);
  return rc;
}

long oe_st_find(const oe_st_file *f, const char *name, size_t len) {
  for (size_t i = 0; i < f->n; i++)
    if (f->entries[i].name_len == len && !memcmp(f->entries[i].name, name, len)) return (long)i;
  return -1;
}

#define CHUNK_BYTES (1u << 18)

int oe_st_read(const oe_st_file *f, size_t i, oe_tensor *out, oe_err *e) {
  char nm[160];
  if (i >= f->n) return err(e, OE_EINVAL, "%s: no tensor %zu", f->path, i);
  const oe_st_entry *t = &f->entries[i];
  shown(t->name, t->name_len, nm, sizeof nm);
  oe_dtype dt;
  if (!oe_st_load_dtype(t->dtype, &dt))
    return err(e, OE_EIO, "%s: tensor '%s' has dtype %s, which cannot be loaded (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, U16, U32, U64, BOOL)",
               f->path, nm, st_names[t->dtype]);
  int rc = oe_tensor_alloc_uninit(out, dt, t->ndim, t->shape, e); /* every element is written below */
  if (rc != OE_OK) {
    char m[sizeof e->msg];
    memcpy(m, e->msg, sizeof m);
    return err(e, rc, "%s: tensor '%s': %s", f->path, nm, m);
  }
  uint64_t nbytes = t->end - t->begin, off = f->data_start + t->begin;
  size_t es = st_sizes[t->dtype];
  uint64_t numel = nbytes / es;
  int same = (t->dtype == OE_ST_F32 && dt == OE_F32) || (t->dtype == OE_ST_I64 && dt == OE_I64) ||
             (t->dtype == OE_ST_I32 && dt == OE_I32) || (t->dtype == OE_ST_U8 && dt == OE_U8);
  if (same) {
    if (nbytes && oe_pread_full(f->fd, oe_data(out), (size_t)nbytes, off)) goto ioerr;
    return OE_OK;
  }
  unsigned char *buf = malloc(CHUNK_BYTES);
  if (!buf) { oe_tensor_release(out); return err(e, OE_ENOMEM, "%s: out of memory", f->path); }
  size_t per = CHUNK_BYTES / es;
  for (uint64_t done = 0; done < numel;) {
    size_t cnt = numel - done < per ? (size_t)(numel - done) : per;
    if (oe_pread_full(f->fd, buf, cnt * es, off + done * es)) { free(buf); goto ioerr; }
    float *of = dt == OE_F32 ? oe_f32(out) + done : NULL;
    int32_t *oi = dt == OE_I32 ? (int32_t *)oe_data(out) + done : NULL;
    int64_t *ol = dt == OE_I64 ? (int64_t *)oe_data(out) + done : NULL;
    uint8_t *ob = dt == OE_U8 ? (uint8_t *)oe_data(out) + done : NULL;
    for (size_t k = 0; k < cnt; k++) {
      const unsigned char *p = buf + k * es;
      uint16_t h; uint32_t w; uint64_t q; double d; int16_t s16;
      switch (t->dtype) {
        case OE_ST_F16: memcpy(&h, p, 2); of[k] = oe_f16_to_f32(h); break;
        case OE_ST_BF16: memcpy(&h, p, 2); of[k] = oe_bf16_to_f32(h); break;
        case OE_ST_F64: memcpy(&d, p, 8); of[k] = (float)d; break;
        case OE_ST_I16: memcpy(&s16, p, 2); oi[k] = s16; break;
        case OE_ST_U16: memcpy(&h, p, 2); oi[k] = h; break;
        case OE_ST_I8: oi[k] = (int8_t)p[0]; break;
        case OE_ST_U32: memcpy(&w, p, 4); ol[k] = w; break;
        case OE_ST_U64:
          memcpy(&q, p, 8);
          if (q > (uint64_t)INT64_MAX) {
            free(buf);
            oe_tensor_release(out);
            return err(e, OE_EIO, "%s: tensor '%s' (U64) holds %llu, which does not fit in int64", f->path, nm, (unsigned long long)q);
          }
          ol[k] = (int64_t)q;
          break;
        case OE_ST_BOOL: ob[k] = p[0] != 0; break;
        default: break;
      }
    }
    done += cnt;
  }
  free(buf);
  return OE_OK;
ioerr:
  oe_tensor_release(out);
  return err(e, OE_EIO, "%s: cannot read tensor '%s': %s", f->path, nm, errno ? strerror(errno) : "unexpected end of file");
}

/* ---------------------------------------------------------------- writing */

typedef struct { char *p; size_t n, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + n + 1) nc *= 2;
    char *q = realloc(b->p, nc);
    if (!q) { b->oom = 1; return; }
    b->p = q;
    b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* JSON string as serde_json writes it */
static void sb_json_string(sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  sb_put(b, "\"", 1);
  size_t start = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[7];
    if (c == '"') esc = "\\\"";
    else if (c == '\\') esc = "\\\\";
    else if (c == '\b') esc = "\\b";
    else if (c == '\f') esc = "\\f";
    else if (c == '\n') esc = "\\n";
    else if (c == '\r') esc = "\\r";
    else if (c == '\t') esc = "\\t";
    else if (c < 0x20) {
      u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0'; u[4] = hex[c >> 4]; u[5] = hex[c & 15]; u[6] = 0;
      esc = u;
    }
    if (esc) {
      sb_put(b, s + start, i - start);
      sb_str(b, esc);
      start = i + 1;
    }
  }
  sb_put(b, s + start, n - start);
  sb_put(b, "\"", 1);
}

typedef struct { const char *k; size_t kl; size_t idx; int rank; } sortkey;
static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
  size_t m = al < bl ? al : bl;
  int c = memcmp(a, b, m);
  if (c) return c;
  return al < bl ? -1 : al > bl;
}
static int sortkey_cmp(const void *x, const void *y) {
  const sortkey *a = x, *b = y;
  if (a->rank != b->rank) return a->rank > b->rank ? -1 : 1; /* larger alignment first */
  return bytes_cmp(a->k, a->kl, b->k, b->kl);
}

static int write_full(int fd, const void *buf, size_t n) {
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

static oe_st_dtype file_dtype(oe_dtype dt, oe_st_dtype float_as) {
  switch (dt) {
    case OE_F32: return float_as;
    case OE_I32: return OE_ST_I32;
    case OE_I64: return OE_ST_I64;
    case OE_U8: return OE_ST_U8;
  }
  return OE_ST_U8;
}

int oe_st_save(const char *path, size_t n, const oe_st_item *items, int has_metadata, size_t nmeta,
               const char *const *meta_keys, const size_t *meta_key_lens, const char *const *meta_vals,
               const size_t *meta_val_lens, oe_st_dtype float_as, oe_err *e) {
  if (float_as != OE_ST_F32 && float_as != OE_ST_F16 && float_as != OE_ST_BF16)
    return err(e, OE_EINVAL, "%s: float32 tensors can be stored as F32, F16 or BF16, not %s", path, oe_st_dtype_name(float_as));
  char nm[160];
  int rc = OE_OK;
  sortkey *order = malloc((n ? n : 1) * sizeof *order);
  sortkey *morder = malloc((nmeta ? nmeta : 1) * sizeof *morder);
  sbuf h = { 0 };
  char *tmp = NULL;
  unsigned char *cbuf = NULL;
  int fd = -1;
  if (!order || !morder) { rc = err(e, OE_ENOMEM, "%s: out of memory", path); goto done; }
  for (size_t i = 0; i < n; i++) {
    const oe_st_item *it = &items[i];
    shown(it->name, it->name_len, nm, sizeof nm);
    if (it->name_len == 12 && !memcmp(it->name, "__metadata__", 12)) {
      rc = err(e, OE_EINVAL, "%s: '__metadata__' is reserved and cannot name a tensor", path);
      goto done;
    }
    if (!oe_utf8_valid((const unsigned char *)it->name, it->name_len)) {
      rc = err(e, OE_EINVAL, "%s: tensor name '%s' is not valid UTF-8", path, nm);
      goto done;
    }
    if (!it->t || !it->t->storage) { rc = err(e, OE_EINVAL, "%s: tensor '%s' has no data", path, nm); goto done; }
    order[i].k = it->name; order[i].kl = it->name_len; order[i].idx = i;
    order[i].rank = (int)file_dtype(it->t->dtype, float_as);
  }
  qsort(order, n, sizeof *order, sortkey_cmp);
  /* duplicates: equal names may sit in different dtype groups, so compare by name only */
  {
    sortkey *byname = malloc((n ? n : 1) * sizeof *byname);
    if (!byname) { rc = err(e, OE_ENOMEM, "%s: out of memory", path); goto done; }
    for (size_t i = 0; i < n; i++) { byname[i] = order[i]; byname[i].rank = 0; }
    qsort(byname, n, sizeof *byname, sortkey_cmp);
    for (size_t i = 1; i < n; i++)
      if (!bytes_cmp(byname[i - 1].k, byname[i - 1].kl, byname[i].k, byname[i].kl)) {
        rc = err(e, OE_EINVAL, "%s: tensor name '%s' appears twice", path, shown(byname[i].k, byname[i].kl, nm, sizeof nm));
        free(byname);
        goto done;
      }
    free(byname);
  }
  for (size_t i = 0; i < nmeta; i++) {
    shown(meta_keys[i], meta_key_lens[i], nm, sizeof nm);
    if (!oe_utf8_valid((const unsigned char *)meta_keys[i], meta_key_lens[i])) {
      rc = err(e, OE_EINVAL, "%s: metadata key '%s' is not valid UTF-8", path, nm);
      goto done;
    }
    if (!oe_utf8_valid((const unsigned char *)meta_vals[i], meta_val_lens[i])) {
      rc = err(e, OE_EINVAL, "%s: metadata value for key '%s' is not valid UTF-8", path, nm);
      goto done;
    }
    morder[i].k = meta_keys[i]; morder[i].kl = meta_key_lens[i]; morder[i].idx = i; morder[i].rank = 0;
  }
  qsort(morder, nmeta, sizeof *morder, sortkey_cmp);
  for (size_t i = 1; i < nmeta; i++)
    if (!bytes_cmp(morder[i - 1].k, morder[i - 1].kl, morder[i].k, morder[i].kl)) {
      rc = err(e, OE_EINVAL, "%s: metadata key '%s' appears twice", path, shown(morder[i].k, morder[i].kl, nm, sizeof nm));
      goto done;
    }

  /* header */
  sb_put(&h, "{", 1);
  int first = 1;
  if (has_metadata) {
    sb_str(&h, "\"__metadata__\":{");
    for (size_t i = 0; i < nmeta; i++) {
      size_t j = morder[i].idx;
      if (i) sb_put(&h, ",", 1);
      sb_json_string(&h, meta_keys[j], meta_key_lens[j]);
      sb_put(&h, ":", 1);
      sb_json_string(&h, meta_vals[j], meta_val_lens[j]);
    }
    sb_put(&h, "}", 1);
    first = 0;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < n; i++) {
    const oe_st_item *it = &items[order[i].idx];
    oe_st_dtype fd_t = (oe_st_dtype)order[i].rank;
    char num[64];
    if (!first) sb_put(&h, ",", 1);
    first = 0;
    sb_json_string(&h, it->name, it->name_len);
    sb_str(&h, ":{\"dtype\":\"");
    sb_str(&h, st_names[fd_t]);
    sb_str(&h, "\",\"shape\":[");
    for (int d = 0; d < it->t->ndim; d++) {
      snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)it->t->shape[d]);
      sb_str(&h, num);
    }
    uint64_t nb = (uint64_t)oe_numel(it->t) * st_sizes[fd_t];
    snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset, (unsigned long long)(offset + nb));
    sb_str(&h, num);
    offset += nb;
  }
  sb_put(&h, "}", 1);
  while (!h.oom && h.n % 8) sb_put(&h, " ", 1);
  if (h.oom) { rc = err(e, OE_ENOMEM, "%s: out of memory building the header", path); goto done; }

  /* temporary file next to the target */
  size_t plen = strlen(path);
  tmp = malloc(plen + 64);
  if (!tmp) { rc = err(e, OE_ENOMEM, "%s: out of memory", path); goto done; }
  for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
      rnd = (uint64_t)time(NULL) * 6364136223846793005ull + (uint64_t)clock() + (uint64_t)attempt * 1442695040888963407ull;
    snprintf(tmp, plen + 64, "%s.tmp.%ld.%08llx", path, (long)getpid(), (unsigned long long)(rnd & 0xFFFFFFFFull));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    rc = err(e, OE_EIO, "%s: cannot create the temporary file %s: %s", path, tmp, strerror(errno));
    free(tmp);
    tmp = NULL; /* nothing to remove */
    goto done;
  }
  {
    /* keep the permissions of the file being replaced */
    struct stat old;
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode)) (void)fchmod(fd, old.st_mode & 07777);
  }
  unsigned char lenb[8];
  uint64_t hl = h.n;
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(hl >> (8 * i));
  if (write_full(fd, lenb, 8) || write_full(fd, h.p, h.n)) goto ioerr;
  for (size_t i = 0; i < n; i++) {
    const oe_st_item *it = &items[order[i].idx];
    oe_st_dtype fd_t = (oe_st_dtype)order[i].rank;
    size_t numel = (size_t)oe_numel(it->t);
    if (fd_t != OE_ST_F16 && fd_t != OE_ST_BF16) {
      if (numel && write_full(fd, oe_data(it->t), numel * oe_dtype_size(it->t->dtype))) goto ioerr;
      continue;
    }
    if (!cbuf && !(cbuf = malloc(CHUNK_BYTES))) { rc = err(e, OE_ENOMEM, "%s: out of memory", path); goto cleanup; }
    const float *src = oe_f32(it->t);
    size_t per = CHUNK_BYTES / 2;
    for (size_t done = 0; done < numel;) {
      size_t cnt = numel - done < per ? numel - done : per;
      for (size_t k = 0; k < cnt; k++) {
        uint16_t v = fd_t == OE_ST_F16 ? oe_f32_to_f16(src[done + k]) : oe_f32_to_bf16(src[done + k]);
        memcpy(cbuf + 2 * k, &v, 2);
      }
      if (write_full(fd, cbuf, cnt * 2)) goto ioerr;
      done += cnt;
    }
  }
  if (fsync(fd) != 0) goto ioerr;
  {
    int c = close(fd);
    fd = -1;
    if (c != 0) goto ioerr;
  }
  if (rename(tmp, path) != 0) {
    rc = err(e, OE_EIO, "%s: cannot rename the temporary file over the target: %s", path, strerror(errno));
    goto cleanup;
  }
  /* make the rename durable: fsync the folder (best effort) */
  {
    char *dir = dup_bytes(path, plen);
    if (dir) {
      char *slash = strrchr(dir, '/');
      const char *d = ".";
      if (slash == dir) d = "/";
      else if (slash) { *slash = 0; d = dir; }
      int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
      free(dir);
    }
  }
  free(tmp);
  tmp = NULL;
  goto done;
ioerr:
  rc = err(e, OE_EIO, "%s: cannot write %s: %s", path, tmp, strerror(errno));
cleanup:
  if (fd >= 0) close(fd);
  fd = -1;
  if (tmp) unlink(tmp);
done:
  free(tmp);
  free(cbuf);
  free(h.p);
  free(order);
  free(morder);
  return rc;
}
