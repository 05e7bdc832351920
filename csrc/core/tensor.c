#include "tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

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

/* Large blocks are recycled through a cache keyed by rounded size: training repeats
 * the same shapes every step, and handing the same pages back avoids the page faults
 * (and kernel zeroing) of fresh mmap'd blocks. The cap: the feed-forward of
 * TransformerEncoderLayer(256, ff 2048) at B=64, L=197 holds 103 MB tensors, and with
 * 128 MB most of them went back to the system every step (6% of the step in the kernel's
 * page-fault path); with 512 MB the layer's forward+backward took 0.594 s against
 * 0.69-0.70 s and the step-1 step 0.91-0.93 s against 1.00 s (Intel Xeon AVX-512, 2
 * threads), its peak RSS 596 MB against 580. Build with -DOE_CACHE_CAP_MB=N to change it. */
#define CACHE_MIN (1u << 18)
#define CACHE_SLOTS 64
#ifndef OE_CACHE_CAP_MB
#define OE_CACHE_CAP_MB 512
#endif
static struct { void *p; size_t n; } g_cache[CACHE_SLOTS];
static size_t g_cache_bytes, g_cache_cap = (size_t)OE_CACHE_CAP_MB << 20;
static size_t g_live_bytes, g_peak_bytes, g_alloc_since_collect;

static size_t round_size(size_t n) {
  if (n < CACHE_MIN) return (n + OE_ALIGN - 1) / OE_ALIGN * OE_ALIGN;
  return (n + 65535) / 65536 * 65536;
}

static void *block_get(size_t n) {
  if (n >= CACHE_MIN) {
    for (int i = 0; i < CACHE_SLOTS; i++)
      if (g_cache[i].p && g_cache[i].n == n) {
        void *p = g_cache[i].p;
        g_cache[i].p = NULL;
        g_cache_bytes -= n;
        return p;
      }
  }
  void *p = aligned_alloc(OE_ALIGN, n);
  if (!p && g_cache_bytes) { oe_cache_clear(); p = aligned_alloc(OE_ALIGN, n); }
  return p;
}

static void block_put(void *p, size_t n) {
  if (n >= CACHE_MIN && n <= g_cache_cap) {
    while (g_cache_bytes + n > g_cache_cap) { /* evict the largest */
      int big = -1;
      for (int i = 0; i < CACHE_SLOTS; i++)
        if (g_cache[i].p && (big < 0 || g_cache[i].n > g_cache[big].n)) big = i;
      if (big < 0) break;
      free(g_cache[big].p);
      g_cache_bytes -= g_cache[big].n;
      g_cache[big].p = NULL;
    }
    for (int i = 0; i < CACHE_SLOTS; i++)
      if (!g_cache[i].p) {
        g_cache[i].p = p;
        g_cache[i].n = n;
        g_cache_bytes += n;
        return;
      }
  }
  free(p);
}

/* Blocks of CACHE_MIN and more always come from mmap, and go back to the system
 * when freed (unless the cache keeps them): glibc's adaptive threshold would
 * otherwise move them to the heap, which keeps its peak size for good. */
void oe_memory_init(void) {
  mallopt(M_MMAP_THRESHOLD, CACHE_MIN);
}

void oe_cache_clear(void) {
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (g_cache[i].p) { free(g_cache[i].p); g_cache[i].p = NULL; }
  g_cache_bytes = 0;
}

void oe_cache_set_limit(size_t bytes) {
  g_cache_cap = bytes;
  if (g_cache_bytes > bytes) oe_cache_clear();
}

void oe_memory_stats(oe_memstats *m) {
  m->live_bytes = g_live_bytes;
  m->peak_bytes = g_peak_bytes;
  m->cache_bytes = g_cache_bytes;
  m->since_collect = g_alloc_since_collect;
}
void oe_memory_collected(void) { g_alloc_since_collect = 0; }
void oe_memory_reset_peak(void) { g_peak_bytes = g_live_bytes; }

oe_storage *oe_storage_new_uninit(size_t nbytes) {
  oe_storage *s = malloc(sizeof *s);
  if (!s) return NULL;
  size_t rounded = round_size(nbytes ? nbytes : 1);
  s->data = block_get(rounded);
  if (!s->data) { free(s); return NULL; }
  s->nbytes = nbytes;
  s->cap = rounded;
  s->refcount = 1;
  g_live_bytes += rounded;
  g_alloc_since_collect += rounded;
  if (g_live_bytes > g_peak_bytes) g_peak_bytes = g_live_bytes;
  return s;
}

oe_storage *oe_storage_new(size_t nbytes) {
  oe_storage *s = oe_storage_new_uninit(nbytes);
  if (s) memset(s->data, 0, s->cap);
  return s;
}

void oe_storage_retain(oe_storage *s) { if (s) s->refcount++; }

void oe_storage_release(oe_storage *s) {
  if (!s) return;
  if (--s->refcount == 0) {
    g_live_bytes -= s->cap;
    block_put(s->data, s->cap);
    free(s);
  }
}

int64_t oe_numel_of(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

static int tensor_alloc(oe_tensor *t, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e, int zero) {
  if (ndim < 0 || ndim > OE_MAX_DIMS) {
    snprintf(e->msg, sizeof e->msg, "at most %d dimensions are supported, got %d", OE_MAX_DIMS, ndim);
    return OE_EINVAL;
  }
  int64_t n = 1, nz = 1; /* nz: product of the non-zero sizes, so strides of empty tensors fit in int64 too */
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) {
      snprintf(e->msg, sizeof e->msg, "negative size %lld in dimension %d", (long long)shape[i], i + 1);
      return OE_EINVAL;
    }
    if (shape[i] > 0 && nz > (INT64_C(1) << 40) / shape[i]) {
      char sb[200];
      snprintf(e->msg, sizeof e->msg, "tensor too large: the non-zero sizes of shape %s multiply past 2^40",
               oe_shape_str(ndim, shape, sb, sizeof sb));
      for (int j = 0; j < ndim; j++)
        if (shape[j] == 0) return OE_EINVAL; /* empty: a bad shape, not a lack of memory */
      return OE_ENOMEM;
    }
    n *= shape[i];
    if (shape[i] > 0) nz *= shape[i];
  }
  size_t nb = (size_t)n * oe_dtype_size(dt);
  oe_storage *s = zero ? oe_storage_new(nb) : oe_storage_new_uninit(nb);
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

int oe_tensor_alloc(oe_tensor *t, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e) {
  return tensor_alloc(t, dt, ndim, shape, e, 1);
}
int oe_tensor_alloc_uninit(oe_tensor *t, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e) {
  return tensor_alloc(t, dt, ndim, shape, e, 0);
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
