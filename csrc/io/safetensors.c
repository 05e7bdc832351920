/* safetensors.c: see safetensors.h */
#include "safetensors.h"
#include "../core/atomic_write.h"
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

/* printable form of a name for messages (control bytes escaped) */
static const char *shown(const char *s, size_t n, char *buf, size_t cap) { return oe_escape(s, n, buf, cap); }

/* ---------------------------------------------------------------- reading
 *
 * The header is read in three passes over the JSON text, building nothing
 * but the result: the first checks the syntax of the whole document, the
 * second counts the tensors, the metadata pairs and their string bytes, the
 * third fills arrays of exactly that size. Memory is the header itself plus
 * one entry per tensor and 16 bytes per metadata pair, whatever the JSON
 * holds besides (unknown fields are checked and skipped). */

void oe_st_close(oe_st_file *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  free(f->entries);
  free(f->names);
  free(f->meta);
  free(f->meta_bytes);
  free(f->path);
  memset(f, 0, sizeof *f);
  f->fd = -1;
}

static char *dup_bytes(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = 0; }
  return p;
}

typedef struct {
  oe_json_reader r;
  char jerr[256];
  const char *path;
  oe_err *e;
} hreader;

/* a JSON syntax error found after the first pass cannot happen; report it anyway */
static int json_err(hreader *h) { return err(h->e, OE_EIO, "%s: header is not valid JSON: %s", h->path, h->jerr); }

/* A number or another value, described for messages ("-2", "2.5", "a string"). */
typedef struct { int is_num; oe_json_num num; oe_json_type type; } jval;

static int read_jval(hreader *h, jval *v) {
  if (oe_json_peek(&h->r, &v->type)) return -1;
  v->is_num = v->type == OE_JSON_NUMBER;
  if (v->is_num) return oe_json_number(&h->r, &v->num);
  return oe_json_skip(&h->r);
}

static int jval_uint(const jval *v, uint64_t max, uint64_t *out) {
  const oe_json_num *n = &v->num;
  if (!v->is_num || !n->is_int || n->overflow || (n->neg && n->mag) || n->mag > max) return 0;
  *out = n->mag;
  return 1;
}

static const char *jval_desc(const jval *v, char *buf, size_t n) {
  if (!v->is_num) return oe_json_type_name(v->type);
  if (v->num.is_int && v->num.overflow) return "an integer too large for 64 bits";
  if (v->num.is_int) snprintf(buf, n, "%s%llu", v->num.neg ? "-" : "", (unsigned long long)v->num.mag);
  else snprintf(buf, n, "%.17g", v->num.num);
  return buf;
}

/* What one tensor description holds, gathered before it is judged (so the
 * messages come in a fixed order whatever the order of the fields). */
typedef struct {
  int has_dtype, has_shape, has_off, dup;
  const char *dup_name;
  oe_json_type dtype_type, shape_type, off_type;
  oe_json_str dtype;
  size_t ndims, noff;
  jval dims[OE_MAX_DIMS], off[2];
  size_t bad_dim;   /* first shape entry that is not a size (1-based), 0 when none */
  jval bad_dim_val;
} raw_entry;

static int read_entry_fields(hreader *h, raw_entry *x) {
  oe_json_reader *r = &h->r;
  oe_json_iter it, at;
  oe_json_str k;
  int more;
  memset(x, 0, sizeof *x);
  if (oe_json_enter(r, &it)) return -1;
  while ((more = oe_json_next(r, &it)) == 1) {
    if (oe_json_key(r, &k)) return -1;
    int is_dtype = oe_json_str_is(&k, "dtype"), is_shape = oe_json_str_is(&k, "shape"), is_off = oe_json_str_is(&k, "data_offsets");
    if ((is_dtype && x->has_dtype) || (is_shape && x->has_shape) || (is_off && x->has_off)) {
      if (!x->dup) x->dup_name = is_dtype ? "dtype" : is_shape ? "shape" : "data_offsets";
      x->dup = 1;
    }
    if (is_dtype) {
      x->has_dtype = 1;
      if (oe_json_peek(r, &x->dtype_type)) return -1;
      if (x->dtype_type == OE_JSON_STRING ? oe_json_string(r, &x->dtype) : oe_json_skip(r)) return -1;
    } else if (is_shape || is_off) {
      oe_json_type *t = is_shape ? &x->shape_type : &x->off_type;
      if (is_shape) x->has_shape = 1; else x->has_off = 1;
      if (oe_json_peek(r, t)) return -1;
      if (*t != OE_JSON_ARRAY) { if (oe_json_skip(r)) return -1; continue; }
      size_t *cnt = is_shape ? &x->ndims : &x->noff;
      *cnt = 0;
      if (is_shape) x->bad_dim = 0;
      if (oe_json_enter(r, &at)) return -1;
      while ((more = oe_json_next(r, &at)) == 1) {
        jval v;
        if (read_jval(h, &v)) return -1;
        if (is_shape) {
          if (*cnt < OE_MAX_DIMS) x->dims[*cnt] = v;
          uint64_t s;
          if (!x->bad_dim && !jval_uint(&v, INT64_MAX, &s)) { x->bad_dim = *cnt + 1; x->bad_dim_val = v; }
        } else if (*cnt < 2) x->off[*cnt] = v;
        (*cnt)++;
      }
      if (more < 0) return -1;
    } else if (oe_json_skip(r)) return -1;
  }
  return more;
}

static int parse_entry(hreader *h, oe_st_entry *t, const char *nm, uint64_t data_size) {
  const char *path = h->path;
  oe_err *e = h->e;
  oe_json_type vt;
  if (oe_json_peek(&h->r, &vt)) return json_err(h);
  if (vt != OE_JSON_OBJECT)
    return err(e, OE_EIO, "%s: tensor '%s' must be described by an object, got %s", path, nm, oe_json_type_name(vt));
  raw_entry x;
  if (read_entry_fields(h, &x)) return json_err(h);
  if (x.dup) return err(e, OE_EIO, "%s: tensor '%s' has \"%s\" twice", path, nm, x.dup_name);
  if (!x.has_dtype) return err(e, OE_EIO, "%s: tensor '%s' has no \"dtype\"", path, nm);
  if (!x.has_shape) return err(e, OE_EIO, "%s: tensor '%s' has no \"shape\"", path, nm);
  if (!x.has_off) return err(e, OE_EIO, "%s: tensor '%s' has no \"data_offsets\"", path, nm);
  if (x.dtype_type != OE_JSON_STRING)
    return err(e, OE_EIO, "%s: tensor '%s' dtype must be a string, got %s", path, nm, oe_json_type_name(x.dtype_type));
  int found = 0;
  for (int k = 0; k < OE_ST_NDTYPES && !found; k++)
    if (oe_json_str_is(&x.dtype, st_names[k])) { t->dtype = (oe_st_dtype)k; found = 1; }
  if (!found) {
    char raw[80], b[120];
    size_t n = x.dtype.len < sizeof raw ? x.dtype.len : 0;
    if (n) oe_json_decode(&x.dtype, raw);
    return err(e, OE_EIO, "%s: tensor '%s' has unknown dtype '%s'", path, nm,
               n ? shown(raw, n, b, sizeof b) : x.dtype.len ? "(a long string)" : "");
  }
  if (x.shape_type != OE_JSON_ARRAY)
    return err(e, OE_EIO, "%s: tensor '%s' shape must be an array, got %s", path, nm, oe_json_type_name(x.shape_type));
  if (x.ndims > OE_MAX_DIMS)
    return err(e, OE_EIO, "%s: tensor '%s' has %zu dimensions, at most %d are supported", path, nm, x.ndims, OE_MAX_DIMS);
  if (x.bad_dim) {
    char b[64];
    return err(e, OE_EIO, "%s: tensor '%s' shape entry %zu is %s; sizes must be non-negative integers", path, nm, x.bad_dim,
               jval_desc(&x.bad_dim_val, b, sizeof b));
  }
  t->ndim = (int)x.ndims;
  for (int d = 0; d < t->ndim; d++) t->shape[d] = (int64_t)x.dims[d].num.mag;
  if (x.off_type != OE_JSON_ARRAY || x.noff != 2)
    return err(e, OE_EIO, "%s: tensor '%s' data_offsets must be an array [begin, end]", path, nm);
  char b0[64], b1[64], sb[200];
  if (!jval_uint(&x.off[0], UINT64_MAX, &t->begin) || !jval_uint(&x.off[1], UINT64_MAX, &t->end))
    return err(e, OE_EIO, "%s: tensor '%s' data_offsets [%s, %s] must be non-negative integers", path, nm,
               jval_desc(&x.off[0], b0, sizeof b0), jval_desc(&x.off[1], b1, sizeof b1));
  if (t->begin > t->end)
    return err(e, OE_EIO, "%s: tensor '%s' data_offsets [%llu, %llu] are reversed (begin > end)", path, nm,
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
  if (ovf) return err(e, OE_EIO, "%s: tensor '%s' shape %s overflows: its size does not fit in 64 bits", path, nm, sb);
  oe_err se;
  if (oe_shape_check(t->ndim, t->shape, &se) != OE_OK) return err(e, OE_EIO, "%s: tensor '%s': %s", path, nm, se.msg);
  need = numel * es;
  if (t->end - t->begin != need)
    return err(e, OE_EIO, "%s: tensor '%s' data range [%llu, %llu) has %llu bytes but shape %s %s needs %llu", path, nm,
               (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)(t->end - t->begin), sb,
               st_names[t->dtype], (unsigned long long)need);
  if (t->end > data_size)
    return err(e, OE_EIO, "%s: tensor '%s' data range [%llu, %llu) ends outside the data area of %llu bytes (truncated file or bad offsets)",
               path, nm, (unsigned long long)t->begin, (unsigned long long)t->end, (unsigned long long)data_size);
  return OE_OK;
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
  size_t m = al < bl ? al : bl;
  int c = m ? memcmp(a, b, m) : 0;
  if (c) return c;
  return al < bl ? -1 : al > bl;
}

static int entry_name_cmp(const void *x, const void *y) {
  const oe_st_entry *a = x, *b = y;
  return bytes_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int meta_key_cmp(const void *x, const void *y, void *base) {
  const oe_st_meta *a = x, *b = y;
  const char *m = base;
  return bytes_cmp(m + a->key_off, a->key_len, m + b->key_off, b->key_len);
}

/* __metadata__: an object of strings, decoded into f->meta_bytes from *mpos */
static int parse_metadata(hreader *h, oe_st_file *f, size_t *mpos) {
  oe_json_reader *r = &h->r;
  oe_json_type t;
  oe_json_iter it;
  oe_json_str k, v;
  int more;
  if (oe_json_peek(r, &t)) return json_err(h);
  if (t != OE_JSON_OBJECT)
    return err(h->e, OE_EIO, "%s: __metadata__ must be an object of strings, got %s", h->path, oe_json_type_name(t));
  f->has_metadata = 1;
  if (oe_json_enter(r, &it)) return json_err(h);
  while ((more = oe_json_next(r, &it)) == 1) {
    if (oe_json_key(r, &k) || oe_json_peek(r, &t)) return json_err(h);
    oe_st_meta *m = &f->meta[f->nmeta];
    m->key_off = (uint32_t)*mpos;
    m->key_len = (uint32_t)oe_json_decode(&k, f->meta_bytes + *mpos);
    *mpos += m->key_len;
    if (t != OE_JSON_STRING) {
      char b[160];
      return err(h->e, OE_EIO, "%s: __metadata__ must be an object of strings, but key '%s' holds %s", h->path,
                 shown(f->meta_bytes + m->key_off, m->key_len, b, sizeof b), oe_json_type_name(t));
    }
    if (oe_json_string(r, &v)) return json_err(h);
    m->val_off = (uint32_t)*mpos;
    m->val_len = (uint32_t)oe_json_decode(&v, f->meta_bytes + *mpos);
    *mpos += m->val_len;
    f->nmeta++;
  }
  return more < 0 ? json_err(h) : OE_OK;
}

/* second pass: sizes of everything the third pass stores */
typedef struct { size_t tensors, name_bytes, meta_pairs, meta_bytes; } header_counts;

static int count_header(hreader *h, header_counts *c) {
  oe_json_reader *r = &h->r;
  oe_json_iter it, mt;
  oe_json_str k, v;
  oe_json_type t;
  int more, mmore;
  memset(c, 0, sizeof *c);
  if (oe_json_enter(r, &it)) return -1;
  while ((more = oe_json_next(r, &it)) == 1) {
    if (oe_json_key(r, &k) || oe_json_peek(r, &t)) return -1;
    if (!oe_json_str_is(&k, "__metadata__")) {
      c->tensors++;
      c->name_bytes += k.len + 1;
      if (oe_json_skip(r)) return -1;
      continue;
    }
    if (t != OE_JSON_OBJECT) { if (oe_json_skip(r)) return -1; continue; }
    if (oe_json_enter(r, &mt)) return -1;
    while ((mmore = oe_json_next(r, &mt)) == 1) {
      if (oe_json_key(r, &k) || oe_json_peek(r, &t)) return -1;
      c->meta_pairs++;
      c->meta_bytes += k.len;
      if (t == OE_JSON_STRING) {
        if (oe_json_string(r, &v)) return -1;
        c->meta_bytes += v.len;
      } else if (oe_json_skip(r)) return -1;
    }
    if (mmore < 0) return -1;
  }
  return more;
}

/* order of tensor indices by (begin, end), ties by name */
static int range_cmp(const void *x, const void *y, void *ctx) {
  const oe_st_entry *en = ctx, *a = &en[*(const uint32_t *)x], *b = &en[*(const uint32_t *)y];
  if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1;
  return *(const uint32_t *)x < *(const uint32_t *)y ? -1 : 1;
}

/* As in the reference implementation: sorted by offsets, the tensors' byte
 * ranges must follow each other from 0 to the end of the file, without a
 * hole, an overlap or bytes left over. (A header under 100 MB holds fewer
 * than 2^32 tensors, so 32-bit indices do.) */
static int check_tiling(const oe_st_file *f, oe_err *e) {
  uint32_t *ix = malloc((f->n ? f->n : 1) * sizeof *ix);
  if (!ix) return err(e, OE_ENOMEM, "%s: out of memory reading the header", f->path);
  for (size_t i = 0; i < f->n; i++) ix[i] = (uint32_t)i;
  qsort_r(ix, f->n, sizeof *ix, range_cmp, f->entries);
  uint64_t at = 0;
  int rc = OE_OK;
  char na[120], nb[120];
  for (size_t k = 0; k < f->n && rc == OE_OK; k++) {
    const oe_st_entry *b = &f->entries[ix[k]];
    if (b->begin < at) {
      const oe_st_entry *a = &f->entries[ix[k - 1]];
      rc = err(e, OE_EIO, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) have overlapping data ranges", f->path,
               shown(a->name, a->name_len, na, sizeof na), (unsigned long long)a->begin, (unsigned long long)a->end,
               shown(b->name, b->name_len, nb, sizeof nb), (unsigned long long)b->begin, (unsigned long long)b->end);
    } else if (b->begin > at) {
      rc = err(e, OE_EIO, "%s: no tensor holds data bytes [%llu, %llu) (before tensor '%s'); tensors must cover the data area without holes",
               f->path, (unsigned long long)at, (unsigned long long)b->begin, shown(b->name, b->name_len, nb, sizeof nb));
    }
    at = b->end;
  }
  if (rc == OE_OK && at != f->data_size)
    rc = err(e, OE_EIO, "%s: %llu bytes follow the last tensor's data (the data area has %llu bytes, the tensors cover %llu)",
             f->path, (unsigned long long)(f->data_size - at), (unsigned long long)f->data_size, (unsigned long long)at);
  free(ix);
  return rc;
}

int oe_st_open(oe_st_file *f, const char *path, oe_err *e) {
  memset(f, 0, sizeof *f);
  f->fd = -1;
  f->path = dup_bytes(path, strlen(path));
  if (!f->path) return err(e, OE_ENOMEM, "%s: out of memory", path);
  int rc = OE_OK;
  char *hdr = NULL, why[300];
  f->fd = oe_open_regular(path, &f->file_size, why, sizeof why);
  if (f->fd < 0) { rc = err(e, OE_EIO, "%s: %s", path, why); goto fail; }
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

  hreader h;
  h.path = path;
  h.e = e;
  /* pass 1: syntax of the whole document */
  if (oe_json_validate(hdr, hlen, h.jerr, sizeof h.jerr)) { rc = json_err(&h); goto fail; }
  oe_json_init(&h.r, hdr, hlen, h.jerr, sizeof h.jerr);
  oe_json_reader start = h.r;
  oe_json_type root;
  if (oe_json_peek(&h.r, &root)) { rc = json_err(&h); goto fail; }
  if (root != OE_JSON_OBJECT) {
    rc = err(e, OE_EIO, "%s: header must be a JSON object, got %s", path, oe_json_type_name(root));
    goto fail;
  }
  /* pass 2: counts */
  header_counts c;
  if (count_header(&h, &c) < 0) { rc = json_err(&h); goto fail; }
  f->entries = calloc(c.tensors ? c.tensors : 1, sizeof *f->entries);
  f->names = malloc(c.name_bytes ? c.name_bytes : 1);
  f->meta = calloc(c.meta_pairs ? c.meta_pairs : 1, sizeof *f->meta);
  f->meta_bytes = malloc(c.meta_bytes ? c.meta_bytes : 1);
  if (!f->entries || !f->names || !f->meta || !f->meta_bytes) {
    rc = err(e, OE_ENOMEM, "%s: out of memory reading the header (%zu tensors, %zu metadata pairs)", path, c.tensors, c.meta_pairs);
    goto fail;
  }
  /* pass 3: the tensors and the metadata */
  h.r = start;
  oe_json_iter it;
  oe_json_str k;
  int more, seen_meta = 0;
  size_t npos = 0, mpos = 0;
  if (oe_json_enter(&h.r, &it)) { rc = json_err(&h); goto fail; }
  while ((more = oe_json_next(&h.r, &it)) == 1) {
    if (oe_json_key(&h.r, &k)) { rc = json_err(&h); goto fail; }
    if (oe_json_str_is(&k, "__metadata__")) {
      if (seen_meta++) { rc = err(e, OE_EIO, "%s: duplicate key '__metadata__' in the header", path); goto fail; }
      if ((rc = parse_metadata(&h, f, &mpos)) != OE_OK) goto fail;
      continue;
    }
    oe_st_entry *t = &f->entries[f->n];
    t->name = f->names + npos;
    t->name_len = oe_json_decode(&k, t->name);
    t->name[t->name_len] = 0;
    npos += t->name_len + 1;
    char nm[160];
    shown(t->name, t->name_len, nm, sizeof nm);
    if ((rc = parse_entry(&h, t, nm, f->data_size)) != OE_OK) goto fail;
    f->n++;
  }
  if (more < 0) { rc = json_err(&h); goto fail; }
  free(hdr);
  hdr = NULL;
  /* names: sorted, so duplicates sit side by side and oe_st_find can bisect */
  qsort(f->entries, f->n, sizeof *f->entries, entry_name_cmp);
  for (size_t i = 1; i < f->n; i++)
    if (!entry_name_cmp(&f->entries[i - 1], &f->entries[i])) {
      char nm[160];
      rc = err(e, OE_EIO, "%s: duplicate key '%s' in the header", path, shown(f->entries[i].name, f->entries[i].name_len, nm, sizeof nm));
      goto fail;
    }
  qsort_r(f->meta, f->nmeta, sizeof *f->meta, meta_key_cmp, f->meta_bytes);
  for (size_t i = 1; i < f->nmeta; i++)
    if (!meta_key_cmp(&f->meta[i - 1], &f->meta[i], f->meta_bytes)) {
      char nm[160];
      rc = err(e, OE_EIO, "%s: duplicate key '%s' in __metadata__", path,
               shown(oe_st_meta_key(f, i), f->meta[i].key_len, nm, sizeof nm));
      goto fail;
    }
  if ((rc = check_tiling(f, e)) != OE_OK) goto fail;
  return OE_OK;
fail:
  free(hdr);
  oe_st_close(f);
  return rc;
}

long oe_st_find(const oe_st_file *f, const char *name, size_t len) {
  size_t lo = 0, hi = f->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = bytes_cmp(f->entries[mid].name, f->entries[mid].name_len, name, len);
    if (c == 0) return (long)mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
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
static int sortkey_cmp(const void *x, const void *y) {
  const sortkey *a = x, *b = y;
  if (a->rank != b->rank) return a->rank > b->rank ? -1 : 1; /* larger alignment first */
  return bytes_cmp(a->k, a->kl, b->k, b->kl);
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
  unsigned char *cbuf = NULL;
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

  /* temporary file next to the target, renamed over it once complete */
  oe_atomic_file af;
  oe_err ae;
  if (oe_atomic_begin(&af, path, &ae) != OE_OK) goto atomic_fail;
  unsigned char lenb[8];
  uint64_t hl = h.n;
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(hl >> (8 * i));
  if (oe_atomic_write(&af, lenb, 8, &ae) || oe_atomic_write(&af, h.p, h.n, &ae)) goto atomic_fail;
  for (size_t i = 0; i < n; i++) {
    const oe_st_item *it = &items[order[i].idx];
    oe_st_dtype fd_t = (oe_st_dtype)order[i].rank;
    size_t numel = (size_t)oe_numel(it->t);
    if (fd_t != OE_ST_F16 && fd_t != OE_ST_BF16) {
      if (numel && oe_atomic_write(&af, oe_data(it->t), numel * oe_dtype_size(it->t->dtype), &ae)) goto atomic_fail;
      continue;
    }
    if (!cbuf && !(cbuf = malloc(CHUNK_BYTES))) {
      oe_atomic_abort(&af);
      rc = err(e, OE_ENOMEM, "%s: out of memory", path);
      goto done;
    }
    const float *src = oe_f32(it->t);
    size_t per = CHUNK_BYTES / 2;
    for (size_t done = 0; done < numel;) {
      size_t cnt = numel - done < per ? numel - done : per;
      for (size_t k = 0; k < cnt; k++) {
        uint16_t v = fd_t == OE_ST_F16 ? oe_f32_to_f16(src[done + k]) : oe_f32_to_bf16(src[done + k]);
        memcpy(cbuf + 2 * k, &v, 2);
      }
      if (oe_atomic_write(&af, cbuf, cnt * 2, &ae)) goto atomic_fail;
      done += cnt;
    }
  }
  if (oe_atomic_commit(&af, &ae) == OE_OK) goto done;
atomic_fail: /* the helper has removed the temporary file */
  rc = err(e, OE_EIO, "%s: %s", path, ae.msg);
done:
  free(cbuf);
  free(h.p);
  free(order);
  free(morder);
  return rc;
}
