#include "tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t oe_dtype_size(oe_dtype dt) {
  switch (dt) {
    case OE_F32: return 4;
    case OE_I32: return 4;
    case OE_I64: return 8;
    case OE_U8: return 1;
  }
  return 1;
}

const char *oe_dtype_name(oe_dtype dt) {
  switch (dt) {
    case OE_F32: return "float32";
    case OE_I32: return "int32";
    case OE_I64: return "int64";
    case OE_U8: return "uint8";
  }
  return "?";
}

int oe_dtype_from_name(const char *name, oe_dtype *out) {
  if (!strcmp(name, "float32") || !strcmp(name, "float")) { *out = OE_F32; return 1; }
  if (!strcmp(name, "int32") || !strcmp(name, "int")) { *out = OE_I32; return 1; }
  if (!strcmp(name, "int64") || !strcmp(name, "long")) { *out = OE_I64; return 1; }
  if (!strcmp(name, "uint8") || !strcmp(name, "byte")) { *out = OE_U8; return 1; }
  return 0;
}

oe_storage *oe_storage_new(size_t nbytes) {
  oe_storage *s = malloc(sizeof *s);
  if (!s) return NULL;
  size_t rounded = (nbytes + OE_ALIGN - 1) / OE_ALIGN * OE_ALIGN;
  if (rounded == 0) rounded = OE_ALIGN;
  s->data = aligned_alloc(OE_ALIGN, rounded);
  if (!s->data) { free(s); return NULL; }
  memset(s->data, 0, rounded);
  s->nbytes = nbytes;
  s->refcount = 1;
  return s;
}

void oe_storage_retain(oe_storage *s) { if (s) s->refcount++; }

void oe_storage_release(oe_storage *s) {
  if (!s) return;
  if (--s->refcount == 0) { free(s->data); free(s); }
}

int64_t oe_numel_of(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

int oe_tensor_alloc(oe_tensor *t, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e) {
  if (ndim < 0 || ndim > OE_MAX_DIMS) {
    snprintf(e->msg, sizeof e->msg, "at most %d dimensions are supported, got %d", OE_MAX_DIMS, ndim);
    return OE_EINVAL;
  }
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      snprintf(e->msg, sizeof e->msg, "negative size %lld in dimension %d", (long long)shape[i], i + 1);
      return OE_EINVAL;
    }
    if (shape[i] > 0 && n > (INT64_C(1) << 40) / shape[i]) {
      snprintf(e->msg, sizeof e->msg, "tensor too large");
      return OE_ENOMEM;
    }
    n *= shape[i];
  }
  oe_storage *s = oe_storage_new((size_t)n * oe_dtype_size(dt));
  if (!s) {
    snprintf(e->msg, sizeof e->msg, "out of memory allocating %lld elements", (long long)n);
    return OE_ENOMEM;
  }
  t->storage = s;
  t->offset = 0;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  t->dtype = dt;
  return OE_OK;
}

void oe_tensor_view(oe_tensor *dst, const oe_tensor *src) {
  *dst = *src;
  oe_storage_retain(dst->storage);
}

void oe_tensor_release(oe_tensor *t) {
  oe_storage_release(t->storage);
  t->storage = NULL;
}

int oe_same_shape(const oe_tensor *a, const oe_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

const char *oe_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
  size_t used = 0;
  used += snprintf(buf + used, n - used, "(");
  for (int i = 0; i < ndim && used < n; i++)
    used += snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (ndim == 1 && used < n) used += snprintf(buf + used, n - used, ",");
  if (used < n) snprintf(buf + used, n - used, ")");
  return buf;
}
