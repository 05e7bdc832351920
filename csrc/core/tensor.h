/* tensor.h: contiguous, reference-counted tensors in PyTorch dimension order.
 * Storage is 64-byte aligned. A tensor is a (storage, element offset, shape,
 * dtype) view; views share storage, anything non-contiguous is copied.
 * C never exits or prints: functions return OE_OK or an error code and fill
 * the caller's message buffer (oe_err). */
#ifndef OE_TENSOR_H
#define OE_TENSOR_H
#include <stddef.h>
#include <stdint.h>

#define OE_MAX_DIMS 8
#define OE_ALIGN 64

typedef enum { OE_F32 = 0, OE_I32 = 1, OE_I64 = 2, OE_U8 = 3 } oe_dtype;

typedef struct oe_storage {
  void *data;     /* 64-byte aligned */
  size_t nbytes;  /* requested */
  size_t cap;     /* allocated (rounded) */
  int refcount;
} oe_storage;

typedef struct oe_tensor {
  oe_storage *storage; /* NULL only for an empty placeholder */
  size_t offset;       /* in elements */
  int ndim;
  int64_t shape[OE_MAX_DIMS];
  oe_dtype dtype;
} oe_tensor;

typedef struct oe_err { char msg[512]; } oe_err;
enum { OE_OK = 0, OE_ENOMEM = 1, OE_EINVAL = 2, OE_EIO = 3 };

size_t oe_dtype_size(oe_dtype dt);
const char *oe_dtype_name(oe_dtype dt);
int oe_dtype_from_name(const char *name, oe_dtype *out);

oe_storage *oe_storage_new(size_t nbytes);          /* zero-filled; NULL on OOM */
oe_storage *oe_storage_new_uninit(size_t nbytes);   /* contents undefined */
void oe_storage_retain(oe_storage *s);
void oe_storage_release(oe_storage *s);

int64_t oe_numel_of(int ndim, const int64_t *shape);
static inline int64_t oe_numel(const oe_tensor *t) { return oe_numel_of(t->ndim, t->shape); }
static inline void *oe_data(const oe_tensor *t) {
  return (char *)t->storage->data + t->offset * oe_dtype_size(t->dtype);
}
static inline float *oe_f32(const oe_tensor *t) { return (float *)oe_data(t); }

/* Allocate a fresh zero-filled tensor into *t (t must not hold storage). */
int oe_tensor_alloc(oe_tensor *t, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e);
/* Same, contents undefined: for outputs a kernel overwrites completely. */
int oe_tensor_alloc_uninit(oe_tensor *t, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e);
/* Make dst a view of src sharing storage (retains). */
void oe_tensor_view(oe_tensor *dst, const oe_tensor *src);
void oe_tensor_release(oe_tensor *t);
int oe_same_shape(const oe_tensor *a, const oe_tensor *b);
/* "(2, 3, 4)" into buf */
const char *oe_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

/* Memory accounting and the block cache (large blocks are reused). */
typedef struct oe_memstats { size_t live_bytes, peak_bytes, cache_bytes, since_collect; } oe_memstats;
void oe_memory_stats(oe_memstats *m);
void oe_memory_collected(void);   /* the Lua GC just ran a full cycle */
void oe_memory_reset_peak(void);
void oe_cache_clear(void);
void oe_memory_init(void);        /* allocator settings; called when the module opens */
void oe_cache_set_limit(size_t bytes);

/* Threads: one setting for OpenBLAS and the project's OpenMP kernels. */
void oe_set_num_threads(int n);
void oe_threads_init(void); /* OpenBLAS single-threaded; called when the module opens */
int oe_get_num_threads(void);

#endif
