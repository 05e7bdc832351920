/* ops.c: the op registry and helpers shared by the op files. */
#include "graph.h"
#include "../core/util.h"
#include <stdio.h>
#include <string.h>

static const ox_op *const tables[] = { ox_ops_math, ox_ops_nn, ox_ops_shape };

const ox_op *ox_find_op(const char *op_type) {
  for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
    for (const ox_op *op = tables[t]; op->name; op++)
      if (!strcmp(op->name, op_type)) return op;
  return NULL;
}

const char *const *oe_onnx_supported_ops(void) {
  static const char *names[128];
  if (!names[0]) {
    int k = 0;
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
      for (const ox_op *op = tables[t]; op->name && k < 127; op++) names[k++] = op->name;
    /* sorted, for listing */
    for (int i = 1; i < k; i++)
      for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
        const char *x = names[j];
        names[j] = names[j - 1];
        names[j - 1] = x;
      }
  }
  return names;
}

/* ---- attributes ---- */

const ox_attr *ox_attr_get(const ox_node *n, const char *name) {
  for (int i = 0; i < n->n_attr; i++)
    if (!strcmp(n->attr[i].name, name)) return &n->attr[i];
  return NULL;
}

static int wrong_type(const ox_attr *a, const char *want, oe_err *e) {
  char b[96];
  return oe_fail(e, OE_EIO, "attribute '%s' must be %s (attribute type %d)", oe_escape(a->name, strlen(a->name), b, sizeof b),
                 want, a->type);
}

int ox_attr_int(const ox_node *n, const char *name, int64_t def, int64_t *out, oe_err *e) {
  const ox_attr *a = ox_attr_get(n, name);
  *out = def;
  if (!a) return OE_OK;
  if (a->type != OX_A_INT) return wrong_type(a, "an integer", e);
  *out = a->i;
  return OE_OK;
}

int ox_attr_float(const ox_node *n, const char *name, float def, float *out, oe_err *e) {
  const ox_attr *a = ox_attr_get(n, name);
  *out = def;
  if (!a) return OE_OK;
  if (a->type != OX_A_FLOAT) return wrong_type(a, "a float", e);
  *out = a->f;
  return OE_OK;
}

int ox_attr_ints(const ox_node *n, const char *name, size_t *count, const int64_t **v, oe_err *e) {
  const ox_attr *a = ox_attr_get(n, name);
  *count = 0;
  *v = NULL;
  if (!a) return OE_OK;
  if (a->type != OX_A_INTS) return wrong_type(a, "a list of integers", e);
  *count = a->n;
  *v = a->ints;
  return OE_OK;
}

int ox_attr_string(const ox_node *n, const char *name, const char *def, const char **out, oe_err *e) {
  const ox_attr *a = ox_attr_get(n, name);
  *out = def;
  if (!a) return OE_OK;
  if (a->type != OX_A_STRING) return wrong_type(a, "a string", e);
  *out = a->s;
  return OE_OK;
}

/* ---- tensors ---- */

int64_t ox_numel(const ox_t *t) { return oe_numel_of(t->ndim, t->shape); }
size_t ox_nbytes(const ox_t *t) { return (size_t)ox_numel(t) * oe_dtype_size(t->dt); }

const char *ox_shape_str(const ox_t *t, char *buf, size_t n) { return oe_shape_str(t->ndim, t->shape, buf, n); }

const char *ox_dtype_name(oe_dtype dt) { return oe_dtype_name(dt); }

int ox_check_shape(const ox_t *t, oe_err *e) { return oe_shape_check(t->ndim, t->shape, e); }

int ox_axis(int64_t axis, int rank, int *out, const char *what, oe_err *e) {
  if (axis < -rank || axis >= rank || (rank == 0 && axis != 0))
    return oe_fail(e, OE_EINVAL, "%s %lld is outside -%d..%d for a rank-%d input", what, (long long)axis, rank,
                   rank - 1, rank);
  *out = (int)(axis < 0 ? axis + rank : axis);
  return OE_OK;
}

int ox_read_ints(const ox_t *t, const char *what, int64_t *v, int cap, int *n, oe_err *e) {
  if (!t->data)
    return oe_fail(e, OE_EINVAL, "%s must be known before running (a constant, or computed from shapes), not from the input data", what);
  if (t->dt != OE_I64 && t->dt != OE_I32) return oe_fail(e, OE_EINVAL, "%s must be int64, got %s", what, ox_dtype_name(t->dt));
  if (t->ndim > 1) return oe_fail(e, OE_EINVAL, "%s must be 1-D, got %d dimensions", what, t->ndim);
  int64_t k = ox_numel(t);
  if (k > cap) return oe_fail(e, OE_EINVAL, "%s has %lld values, at most %d are supported", what, (long long)k, cap);
  for (int64_t i = 0; i < k; i++) v[i] = t->dt == OE_I64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
  *n = (int)k;
  return OE_OK;
}

int ox_read_scalar_f32(const ox_t *t, const char *what, float *v, oe_err *e) {
  if (t->dt != OE_F32) return oe_fail(e, OE_EINVAL, "%s must be float32, got %s", what, ox_dtype_name(t->dt));
  if (ox_numel(t) != 1) {
    char b[96];
    return oe_fail(e, OE_EINVAL, "%s must hold one value, got shape %s", what, ox_shape_str(t, b, sizeof b));
  }
  *v = *(const float *)t->data;
  return OE_OK;
}

void ox_set(ox_t *t, oe_dtype dt, int ndim, const int64_t *shape) {
  t->dt = dt;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
}
