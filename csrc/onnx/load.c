/* load.c: ONNX file -> oe_onnx_model. The ModelProto is parsed by protobuf-c (the code in
 * onnx.pb-c.c is generated from ONNX's own onnx.proto); this file only checks and converts
 * what the message holds, then frees it. */
#include "graph.h"
#include "onnx.pb-c.h"
#include "../core/util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* protobuf-c recurses once per nested message and has no depth limit of its own: a
 * crafted file of a few kilobytes nesting messages (a graph attribute inside a node inside
 * a graph ...) would exhaust the stack. The nesting is measured first, walking the wire
 * format along the same descriptors protobuf-c uses (only message-typed fields are
 * entered; everything else is skipped by its wire type). ONNX Runtime's limit is 100. */
#define MAX_NESTING 100

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t r = 0;
  for (int s = 0; s < 70 && *p < end; s += 7) {
    uint8_t b = *(*p)++;
    r |= (uint64_t)(b & 0x7f) << s;
    if (!(b & 0x80)) { *v = r; return 1; }
  }
  return 0;
}

/* 0 when the nesting goes deeper than MAX_NESTING; malformed data is left to protobuf-c */
static int nesting_ok(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d, int depth) {
  const uint8_t *end = p + len;
  while (p < end) {
    uint64_t key, n;
    if (!read_varint(&p, end, &key)) return 1;
    switch (key & 7) {
      case 0: if (!read_varint(&p, end, &n)) return 1; break;
      case 1: if ((size_t)(end - p) < 8) return 1; p += 8; break;
      case 5: if ((size_t)(end - p) < 4) return 1; p += 4; break;
      case 2: {
        if (!read_varint(&p, end, &n) || n > (uint64_t)(end - p)) return 1;
        uint64_t num = key >> 3;
        const ProtobufCFieldDescriptor *f = num <= 0xffffffffu ? protobuf_c_message_descriptor_get_field(d, (unsigned)num) : NULL;
        if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
          if (depth + 1 > MAX_NESTING) return 0;
          if (!nesting_ok(p, (size_t)n, f->descriptor, depth + 1)) return 0;
        }
        p += n;
        break;
      }
      default: return 1;
    }
  }
  return 1;
}

/* ---- small helpers ---- */

static char *dup_str(const char *s) {
  if (!s) s = "";
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

/* printable, length-limited form of a name from the file */
static const char *esc(const char *s, char *buf, size_t cap) { return oe_escape(s ? s : "", s ? strlen(s) : 0, buf, cap); }

static const char *type_name(int t) {
  switch (t) {
    case OX_FLOAT: return "FLOAT"; case OX_UINT8: return "UINT8"; case OX_INT8: return "INT8";
    case 4: return "UINT16"; case 5: return "INT16"; case OX_INT32: return "INT32"; case OX_INT64: return "INT64";
    case OX_STRING: return "STRING"; case OX_BOOL: return "BOOL"; case OX_FLOAT16: return "FLOAT16";
    case OX_DOUBLE: return "DOUBLE"; case 12: return "UINT32"; case 13: return "UINT64"; case 14: return "COMPLEX64";
    case 15: return "COMPLEX128"; case 16: return "BFLOAT16";
  }
  return "UNDEFINED";
}

static int dtype_of(int onnx_type) {
  switch (onnx_type) {
    case OX_FLOAT: return OE_F32;
    case OX_INT64: return OE_I64;
    case OX_INT32: return OE_I32;
  }
  return -1;
}

int ox_const_alloc(ox_const *c, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e) {
  memset(c, 0, sizeof *c);
  if (oe_shape_check(ndim, shape, e) != OE_OK) return OE_EINVAL;
  c->dt = dt;
  c->ndim = ndim;
  for (int i = 0; i < ndim; i++) c->shape[i] = shape[i];
  size_t bytes = (size_t)oe_numel_of(ndim, shape) * oe_dtype_size(dt);
  c->data = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
  if (!c->data) return oe_fail(e, OE_ENOMEM, "out of memory (%zu bytes)", bytes);
  return OE_OK;
}

void ox_const_free(ox_const *c) {
  if (c) free(c->data);
}

/* TensorProto -> constant; what names the tensor in messages */
static int convert_tensor(const Onnx__TensorProto *tp, ox_const *c, const char *what, oe_err *e) {
  memset(c, 0, sizeof *c);
  if (tp->n_dims > OE_MAX_DIMS)
    return oe_fail(e, OE_EIO, "%s has %zu dimensions (at most %d are supported)", what, tp->n_dims, OE_MAX_DIMS);
  int64_t shape[OE_MAX_DIMS];
  for (size_t i = 0; i < tp->n_dims; i++) shape[i] = tp->dims[i];
  oe_err se;
  if (oe_shape_check((int)tp->n_dims, shape, &se) != OE_OK) return oe_fail(e, OE_EIO, "%s: %s", what, se.msg);
  if (tp->segment) return oe_fail(e, OE_EIO, "%s is a segment of a larger tensor (not supported)", what);
  if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
    return oe_fail(e, OE_EIO, "%s is stored in an external data file (not supported)", what);
  int dt = dtype_of(tp->data_type);
  if (dt < 0)
    return oe_fail(e, OE_EIO, "%s has data type %s (supported: FLOAT, INT64, INT32)", what, type_name(tp->data_type));
  /* the data present is checked against the shape before allocating: a small file declaring
   * a huge initializer must not cost its declared size (found by fuzz/onnx_fuzz.c) */
  int64_t n = oe_numel_of((int)tp->n_dims, shape);
  size_t es = oe_dtype_size((oe_dtype)dt), bytes = (size_t)n * es;
  if (tp->has_raw_data) {
    if (tp->raw_data.len != bytes)
      return oe_fail(e, OE_EIO, "%s: raw_data holds %zu bytes, %lld %s elements need %zu", what, tp->raw_data.len,
                     (long long)n, type_name(tp->data_type), bytes);
    if (ox_const_alloc(c, (oe_dtype)dt, (int)tp->n_dims, shape, e) != OE_OK) return OE_ENOMEM;
    if (bytes) memcpy(c->data, tp->raw_data.data, bytes); /* little-endian, as this host */
    return OE_OK;
  }
  size_t have = dt == OE_F32 ? tp->n_float_data : dt == OE_I64 ? tp->n_int64_data : tp->n_int32_data;
  if (have != (size_t)n)
    return oe_fail(e, OE_EIO, "%s: %s holds %zu values, its shape has %lld elements", what,
                   dt == OE_F32 ? "float_data" : dt == OE_I64 ? "int64_data" : "int32_data", have, (long long)n);
  if (ox_const_alloc(c, (oe_dtype)dt, (int)tp->n_dims, shape, e) != OE_OK) return OE_ENOMEM;
  if (bytes) memcpy(c->data, dt == OE_F32 ? (const void *)tp->float_data : dt == OE_I64 ? (const void *)tp->int64_data
                                                                                       : (const void *)tp->int32_data,
                    bytes);
  return OE_OK;
}

/* ---- name table: open addressing over value indices ---- */
typedef struct { int *slot; size_t cap; } name_map;
static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}
static int map_init(name_map *t, size_t n) {
  t->cap = 16;
  while (t->cap < 2 * n + 2) t->cap *= 2;
  t->slot = malloc(t->cap * sizeof(int));
  if (!t->slot) return 0;
  for (size_t i = 0; i < t->cap; i++) t->slot[i] = -1;
  return 1;
}
static int map_find(const name_map *t, const ox_value *v, const char *name) {
  for (size_t i = hash_str(name) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    if (t->slot[i] < 0) return -1;
    if (!strcmp(v[t->slot[i]].name, name)) return t->slot[i];
  }
}
static void map_put(name_map *t, const ox_value *v, int idx) {
  size_t i = hash_str(v[idx].name) & (t->cap - 1);
  while (t->slot[i] >= 0) i = (i + 1) & (t->cap - 1);
  t->slot[i] = idx;
}

/* ---- the model ---- */

void oe_onnx_free(oe_onnx_model *m) {
  if (!m) return;
  ox_plan_free(m->plan);
  free(m->arena);
  free(m->node_seconds);
  for (int i = 0; i < m->n_values; i++) {
    free(m->values[i].name);
    for (int k = 0; k < OE_MAX_DIMS; k++) free(m->values[i].decl_names[k]);
  }
  free(m->values);
  for (int i = 0; i < m->n_nodes; i++) {
    ox_node *n = &m->nodes[i];
    free(n->name);
    free(n->op_type);
    free(n->in);
    free(n->out);
    for (int k = 0; k < n->n_attr; k++) {
      ox_attr *a = &n->attr[k];
      free(a->name);
      free(a->s);
      free(a->floats);
      free(a->ints);
      if (a->t) { ox_const_free(a->t); free(a->t); }
    }
    free(n->attr);
    free(n->params);
  }
  free(m->nodes);
  free(m->order);
  for (int i = 0; i < m->n_inits; i++) ox_const_free(&m->inits[i]);
  free(m->inits);
  free(m->inputs);
  free(m->outputs);
  free(m->path);
  free(m->producer);
  free(m->producer_version);
  free(m);
}

/* "node 'name' (Op)" or "node #i (Op)" */
static const char *node_label(const Onnx__NodeProto *np, int i, char *buf, size_t cap) {
  char a[96], b[64];
  if (np->name && np->name[0]) snprintf(buf, cap, "node '%s' (%s)", esc(np->name, a, sizeof a), esc(np->op_type, b, sizeof b));
  else snprintf(buf, cap, "node #%d (%s)", i, esc(np->op_type, b, sizeof b));
  return buf;
}

/* declared tensor type of a graph input or output */
static void read_decl(ox_value *v, const Onnx__ValueInfoProto *vi) {
  v->decl_dt = -1;
  v->decl_ndim = -1;
  if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type) return;
  const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
  if (tt->has_elem_type) {
    v->decl_onnx_type = tt->elem_type;
    v->decl_dt = dtype_of(tt->elem_type);
  }
  if (!tt->shape || tt->shape->n_dim > OE_MAX_DIMS) return;
  v->decl_ndim = (int)tt->shape->n_dim;
  for (size_t k = 0; k < tt->shape->n_dim; k++) {
    const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
    v->decl_dims[k] = -1;
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value >= 0) v->decl_dims[k] = d->dim_value;
    else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && d->dim_param) v->decl_names[k] = dup_str(d->dim_param);
  }
}

static int copy_attr(ox_attr *a, const Onnx__AttributeProto *ap, const char *where, oe_err *e) {
  char nb[96];
  memset(a, 0, sizeof *a);
  a->name = dup_str(ap->name);
  if (!a->name) return oe_fail(e, OE_ENOMEM, "out of memory");
  if (ap->ref_attr_name && ap->ref_attr_name[0])
    return oe_fail(e, OE_EIO, "%s: attribute '%s' refers to a function attribute (not supported)", where, esc(ap->name, nb, sizeof nb));
  a->type = ap->has_type ? ap->type : 0;
  a->f = ap->f;
  a->i = ap->i;
  if (a->type == OX_A_STRING) {
    a->s = malloc(ap->s.len + 1);
    if (!a->s) return oe_fail(e, OE_ENOMEM, "out of memory");
    if (ap->s.len) memcpy(a->s, ap->s.data, ap->s.len);
    a->s[ap->s.len] = 0;
  } else if (a->type == OX_A_FLOATS) {
    a->n = ap->n_floats;
    a->floats = malloc((a->n ? a->n : 1) * sizeof(float));
    if (!a->floats) return oe_fail(e, OE_ENOMEM, "out of memory");
    if (a->n) memcpy(a->floats, ap->floats, a->n * sizeof(float));
  } else if (a->type == OX_A_INTS) {
    a->n = ap->n_ints;
    a->ints = malloc((a->n ? a->n : 1) * sizeof(int64_t));
    if (!a->ints) return oe_fail(e, OE_ENOMEM, "out of memory");
    if (a->n) memcpy(a->ints, ap->ints, a->n * sizeof(int64_t));
  } else if (a->type == OX_A_TENSOR) {
    if (!ap->t) return oe_fail(e, OE_EIO, "%s: attribute '%s' holds no tensor", where, esc(ap->name, nb, sizeof nb));
    a->t = calloc(1, sizeof *a->t);
    if (!a->t) return oe_fail(e, OE_ENOMEM, "out of memory");
    char what[300];
    snprintf(what, sizeof what, "%s: attribute '%s'", where, esc(ap->name, nb, sizeof nb));
    int rc = convert_tensor(ap->t, a->t, what, e);
    if (rc != OE_OK) { free(a->t); a->t = NULL; return rc == OE_ENOMEM ? rc : OE_EIO; }
  }
  return OE_OK;
}

/* a node of the cycle that keeps node `start` (not sorted by Kahn's algorithm) from running */
static int cycle_member(const oe_onnx_model *m, const uint8_t *done, int start) {
  uint8_t *seen = calloc((size_t)m->n_nodes, 1);
  if (!seen) return start;
  int cur = start;
  while (!seen[cur]) {
    seen[cur] = 1;
    const ox_node *n = &m->nodes[cur];
    int next = -1;
    for (int k = 0; k < n->n_in && next < 0; k++) {
      if (n->in[k] < 0) continue;
      int p = m->values[n->in[k]].producer;
      if (p >= 0 && !done[p]) next = p;
    }
    if (next < 0) break;
    cur = next;
  }
  free(seen);
  return cur;
}

static int topo_sort(oe_onnx_model *m, oe_err *e) {
  int N = m->n_nodes;
  int *pending = calloc((size_t)N + 1, sizeof(int));
  uint8_t *done = calloc((size_t)N + 1, 1);
  int *queue = malloc(((size_t)N + 1) * sizeof(int));
  /* consumers lists: CSR over values */
  int *cstart = calloc((size_t)m->n_values + 1, sizeof(int));
  int total = 0;
  for (int i = 0; i < N; i++) total += m->nodes[i].n_in;
  int *clist = malloc(((size_t)total + 1) * sizeof(int));
  m->order = malloc(((size_t)N + 1) * sizeof(int));
  if (!pending || !done || !queue || !cstart || !clist || !m->order) {
    free(pending); free(done); free(queue); free(cstart); free(clist);
    return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  }
  for (int i = 0; i < N; i++)
    for (int k = 0; k < m->nodes[i].n_in; k++)
      if (m->nodes[i].in[k] >= 0) cstart[m->nodes[i].in[k] + 1]++;
  for (int v = 0; v < m->n_values; v++) cstart[v + 1] += cstart[v];
  int *fill = calloc((size_t)m->n_values + 1, sizeof(int));
  if (!fill) {
    free(pending); free(done); free(queue); free(cstart); free(clist);
    return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  }
  for (int i = 0; i < N; i++)
    for (int k = 0; k < m->nodes[i].n_in; k++) {
      int v = m->nodes[i].in[k];
      if (v < 0) continue;
      clist[cstart[v] + fill[v]++] = i;
      if (m->values[v].producer >= 0) pending[i]++;
    }
  free(fill);
  int head = 0, tail = 0, n_done = 0;
  for (int i = 0; i < N; i++)
    if (!pending[i]) queue[tail++] = i;
  while (head < tail) {
    int i = queue[head++];
    done[i] = 1;
    m->order[n_done++] = i;
    const ox_node *n = &m->nodes[i];
    for (int k = 0; k < n->n_out; k++) {
      int v = n->out[k];
      if (v < 0) continue;
      for (int c = cstart[v]; c < cstart[v + 1]; c++)
        if (--pending[clist[c]] == 0) queue[tail++] = clist[c];
    }
  }
  int rc = OE_OK;
  if (n_done < N) {
    int start = 0;
    while (done[start]) start++;
    int c = cycle_member(m, done, start);
    const ox_node *n = &m->nodes[c];
    char a[96], b[64];
    if (n->name[0])
      rc = oe_fail_path(e, OE_EIO, m->path, "the graph has a cycle: node '%s' (%s) depends on its own output",
                        esc(n->name, a, sizeof a), esc(n->op_type, b, sizeof b));
    else
      rc = oe_fail_path(e, OE_EIO, m->path, "the graph has a cycle: node #%d (%s) depends on its own output", c,
                        esc(n->op_type, b, sizeof b));
  }
  free(pending); free(done); free(queue); free(cstart); free(clist);
  return rc;
}

static int add_value(oe_onnx_model *m, name_map *map, const char *name, int *idx, oe_err *e) {
  ox_value *v = &m->values[m->n_values];
  memset(v, 0, sizeof *v);
  v->producer = v->input = v->init = -1;
  v->decl_dt = v->decl_ndim = -1;
  v->name = dup_str(name);
  if (!v->name) return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  map_put(map, m->values, m->n_values);
  *idx = m->n_values++;
  return OE_OK;
}

static int build(oe_onnx_model *m, const Onnx__ModelProto *mp, oe_err *e) {
  const Onnx__GraphProto *g = mp->graph;
  char a[96], b[96], lab[240];
  m->ir_version = mp->has_ir_version ? mp->ir_version : 0;
  m->producer = dup_str(mp->producer_name);
  m->producer_version = dup_str(mp->producer_version);
  if (!m->producer || !m->producer_version) return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  m->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if ((!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")) && o->has_version) m->opset = o->version;
  }
  if (m->opset < 0) return oe_fail_path(e, OE_EIO, m->path, "imports no opset of the default ONNX domain");
  if (m->opset < OE_ONNX_MIN_OPSET || m->opset > OE_ONNX_MAX_OPSET)
    return oe_fail_path(e, OE_EIO, m->path, "opset %lld is not supported (%d to %d are)", (long long)m->opset,
                        OE_ONNX_MIN_OPSET, OE_ONNX_MAX_OPSET);
  if (g->n_sparse_initializer) return oe_fail_path(e, OE_EIO, m->path, "sparse initializers are not supported");
  if (g->n_initializer > 1u << 24 || g->n_node > 1u << 24 || g->n_input > 1u << 24 || g->n_output > 1u << 24)
    return oe_fail_path(e, OE_EIO, m->path, "graph too large");

  size_t max_values = g->n_initializer + g->n_input;
  for (size_t i = 0; i < g->n_node; i++) max_values += g->node[i]->n_output;
  if (max_values > 1u << 26) return oe_fail_path(e, OE_EIO, m->path, "graph too large");
  m->values = calloc(max_values + 1, sizeof(ox_value));
  m->inits = calloc(g->n_initializer + 1, sizeof(ox_const));
  m->nodes = calloc(g->n_node + 1, sizeof(ox_node));
  m->inputs = malloc((g->n_input + 1) * sizeof(int));
  m->outputs = malloc((g->n_output + 1) * sizeof(int));
  name_map map = {0};
  if (!m->values || !m->inits || !m->nodes || !m->inputs || !m->outputs || !map_init(&map, max_values))
    return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  int rc = OE_OK;
#define FAIL(code, ...) do { rc = oe_fail_path(e, code, m->path, __VA_ARGS__); goto out; } while (0)

  /* initializers */
  for (size_t i = 0; i < g->n_initializer; i++) {
    const Onnx__TensorProto *tp = g->initializer[i];
    if (!tp->name || !tp->name[0]) FAIL(OE_EIO, "initializer #%zu has no name", i);
    if (map_find(&map, m->values, tp->name) >= 0) FAIL(OE_EIO, "initializer '%s' is defined twice", esc(tp->name, a, sizeof a));
    char what[200];
    snprintf(what, sizeof what, "initializer '%s'", esc(tp->name, a, sizeof a));
    oe_err ce;
    int r = convert_tensor(tp, &m->inits[m->n_inits], what, &ce);
    if (r != OE_OK) FAIL(r == OE_ENOMEM ? OE_ENOMEM : OE_EIO, "%s", ce.msg);
    int idx;
    if ((rc = add_value(m, &map, tp->name, &idx, e)) != OE_OK) goto out;
    m->values[idx].init = m->n_inits++;
  }
  /* graph inputs (an initializer listed as an input stays a constant) */
  for (size_t i = 0; i < g->n_input; i++) {
    const Onnx__ValueInfoProto *vi = g->input[i];
    if (!vi->name || !vi->name[0]) FAIL(OE_EIO, "graph input #%zu has no name", i);
    int idx = map_find(&map, m->values, vi->name);
    if (idx >= 0 && m->values[idx].init >= 0) continue;
    if (idx >= 0) FAIL(OE_EIO, "graph input '%s' is listed twice", esc(vi->name, a, sizeof a));
    if ((rc = add_value(m, &map, vi->name, &idx, e)) != OE_OK) goto out;
    m->values[idx].input = m->n_inputs;
    m->inputs[m->n_inputs++] = idx;
    read_decl(&m->values[idx], vi);
  }
  /* node outputs first (nodes may be listed in any order), then node inputs */
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *np = g->node[i];
    ox_node *n = &m->nodes[i];
    m->n_nodes = (int)i + 1;
    n->name = dup_str(np->name);
    n->op_type = dup_str(np->op_type);
    n->in = malloc((np->n_input + 1) * sizeof(int));
    n->out = malloc((np->n_output + 1) * sizeof(int));
    if (!n->name || !n->op_type || !n->in || !n->out) FAIL(OE_ENOMEM, "out of memory");
    node_label(np, (int)i, lab, sizeof lab);
    if (!np->op_type || !np->op_type[0]) FAIL(OE_EIO, "node #%zu has no op_type", i);
    if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx"))
      FAIL(OE_EIO, "%s: op '%s' of domain '%s' is not supported (only the default ONNX domain is, at opset %lld)", lab,
           esc(np->op_type, b, sizeof b), esc(np->domain, a, sizeof a), (long long)m->opset);
    n->op = ox_find_op(np->op_type);
    if (!n->op)
      FAIL(OE_EIO, "%s: op '%s' (opset %lld) is not supported (oe.onnx.supported_ops() lists those that are)", lab,
           esc(np->op_type, b, sizeof b), (long long)m->opset);
    n->n_out = (int)np->n_output;
    for (size_t k = 0; k < np->n_output; k++) {
      const char *on = np->output[k];
      n->out[k] = -1;
      if (!on || !on[0]) continue;
      int idx = map_find(&map, m->values, on);
      if (idx >= 0) {
        const ox_value *v = &m->values[idx];
        if (v->producer >= 0) FAIL(OE_EIO, "%s: output '%s' is also produced by node #%d", lab, esc(on, a, sizeof a), v->producer);
        FAIL(OE_EIO, "%s: output '%s' has the name of a graph %s", lab, esc(on, a, sizeof a), v->init >= 0 ? "initializer" : "input");
      }
      if ((rc = add_value(m, &map, on, &idx, e)) != OE_OK) goto out;
      m->values[idx].producer = (int)i;
      n->out[k] = idx;
    }
  }
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *np = g->node[i];
    ox_node *n = &m->nodes[i];
    node_label(np, (int)i, lab, sizeof lab);
    n->n_in = (int)np->n_input;
    for (size_t k = 0; k < np->n_input; k++) {
      const char *in = np->input[k];
      n->in[k] = -1;
      if (!in || !in[0]) continue;
      int idx = map_find(&map, m->values, in);
      if (idx < 0)
        FAIL(OE_EIO, "%s: input '%s' is not a graph input, an initializer or any node's output (a missing initializer?)",
             lab, esc(in, a, sizeof a));
      n->in[k] = idx;
      m->values[idx].n_uses++;
    }
    /* arity: trailing absent inputs/outputs do not count */
    int nin = n->n_in, nout = n->n_out;
    while (nin > 0 && n->in[nin - 1] < 0) nin--;
    while (nout > 0 && n->out[nout - 1] < 0) nout--;
    const ox_op *op = n->op;
    if (nin < op->min_in || (op->max_in >= 0 && nin > op->max_in)) {
      if (op->max_in < 0) FAIL(OE_EIO, "%s: %d inputs given, at least %d expected", lab, nin, op->min_in);
      FAIL(OE_EIO, "%s: %d inputs given, %d to %d expected", lab, nin, op->min_in, op->max_in);
    }
    for (int k = 0; k < op->min_in; k++)
      if (n->in[k] < 0) FAIL(OE_EIO, "%s: required input %d is empty", lab, k + 1);
    if (nout < 1) FAIL(OE_EIO, "%s: no output", lab);
    if (nout > op->max_out)
      FAIL(OE_EIO, "%s: output %d is requested, this op gives %d here (training outputs and indices are not supported)",
           lab, nout, op->max_out);
    if (nout < op->min_out) FAIL(OE_EIO, "%s: %d outputs, at least %d expected", lab, nout, op->min_out);
    if (np->n_attribute > 4096) FAIL(OE_EIO, "%s: too many attributes", lab);
    n->attr = calloc(np->n_attribute + 1, sizeof(ox_attr));
    if (!n->attr) FAIL(OE_ENOMEM, "out of memory");
    for (size_t k = 0; k < np->n_attribute; k++) {
      n->n_attr = (int)k + 1;
      oe_err ae;
      int r = copy_attr(&n->attr[k], np->attribute[k], lab, &ae);
      if (r != OE_OK) FAIL(r, "%s", ae.msg);
    }
    if (op->parse) {
      oe_err pe;
      int r = op->parse(m, n, (int)m->opset, &pe);
      if (r != OE_OK) FAIL(r == OE_ENOMEM ? OE_ENOMEM : OE_EIO, "%s: %s", lab, pe.msg);
    }
  }
  /* graph outputs */
  if (!g->n_output) FAIL(OE_EIO, "the graph has no outputs");
  for (size_t i = 0; i < g->n_output; i++) {
    const Onnx__ValueInfoProto *vi = g->output[i];
    if (!vi->name || !vi->name[0]) FAIL(OE_EIO, "graph output #%zu has no name", i);
    int idx = map_find(&map, m->values, vi->name);
    if (idx < 0) FAIL(OE_EIO, "graph output '%s' is produced by no node", esc(vi->name, a, sizeof a));
    if (m->values[idx].is_output) FAIL(OE_EIO, "graph output '%s' is listed twice", esc(vi->name, a, sizeof a));
    m->values[idx].is_output = 1;
    m->outputs[m->n_outputs++] = idx;
    if (m->values[idx].input < 0) read_decl(&m->values[idx], vi);
  }
  rc = topo_sort(m, e);
out:
#undef FAIL
  free(map.slot);
  return rc;
}

int oe_onnx_load_bytes(const char *path, const uint8_t *buf, size_t len, oe_onnx_model **out, oe_err *e) {
  *out = NULL;
  if (!path) path = "<bytes>";
  if (len == 0) return oe_fail_path(e, OE_EIO, path, "empty file (not an ONNX model)");
  if (!nesting_ok(buf, len, &onnx__model_proto__descriptor, 0))
    return oe_fail_path(e, OE_EIO, path, "messages nested more than %d deep (corrupt or hostile file)", MAX_NESTING);
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);
  if (!mp) return oe_fail_path(e, OE_EIO, path, "not an ONNX model: the protobuf message is truncated or corrupt");
  int rc = OE_OK;
  if (!mp->has_ir_version || !mp->graph) {
    rc = oe_fail_path(e, OE_EIO, path, "not an ONNX model: %s", !mp->has_ir_version ? "no ir_version" : "no graph");
  } else {
    oe_onnx_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = dup_str(path))) {
      free(m);
      rc = oe_fail_path(e, OE_ENOMEM, path, "out of memory");
    } else {
      rc = build(m, mp, e);
      if (rc == OE_OK) *out = m;
      else oe_onnx_free(m);
    }
  }
  onnx__model_proto__free_unpacked(mp, NULL);
  return rc;
}

int oe_onnx_load(const char *path, oe_onnx_model **out, oe_err *e) {
  uint8_t *buf;
  size_t len;
  oe_err re;
  *out = NULL;
  int rc = oe_read_regular_file(path, OE_ONNX_MAX_FILE_BYTES, &buf, &len, &re);
  if (rc != OE_OK) return oe_fail_path(e, rc, path, "%s", re.msg);
  rc = oe_onnx_load_bytes(path, buf, len, out, e);
  free(buf);
  return rc;
}

/* ---- description ---- */

const char *oe_onnx_path(const oe_onnx_model *m) { return m->path; }
int oe_onnx_n_inputs(const oe_onnx_model *m) { return m->n_inputs; }
int oe_onnx_n_outputs(const oe_onnx_model *m) { return m->n_outputs; }

static void describe(const ox_value *v, oe_onnx_io *io) {
  io->name = v->name;
  io->dtype = v->decl_dt;
  io->onnx_type = v->decl_onnx_type;
  io->ndim = v->decl_ndim;
  io->dims = v->decl_dims;
  io->dim_names = (const char *const *)v->decl_names;
}
void oe_onnx_input(const oe_onnx_model *m, int i, oe_onnx_io *io) { describe(&m->values[m->inputs[i]], io); }
void oe_onnx_output(const oe_onnx_model *m, int i, oe_onnx_io *io) { describe(&m->values[m->outputs[i]], io); }
int oe_onnx_find_input(const oe_onnx_model *m, const char *name) {
  for (int i = 0; i < m->n_inputs; i++)
    if (!strcmp(m->values[m->inputs[i]].name, name)) return i;
  return -1;
}
int oe_onnx_find_output(const oe_onnx_model *m, const char *name) {
  for (int i = 0; i < m->n_outputs; i++)
    if (!strcmp(m->values[m->outputs[i]].name, name)) return i;
  return -1;
}

void oe_onnx_get_info(const oe_onnx_model *m, oe_onnx_info *info) {
  info->ir_version = m->ir_version;
  info->opset = m->opset;
  info->producer = m->producer;
  info->producer_version = m->producer_version;
  info->n_nodes = m->n_nodes;
  info->n_initializers = m->n_inits;
  info->n_weights = 0;
  for (int i = 0; i < m->n_inits; i++) info->n_weights += oe_numel_of(m->inits[i].ndim, m->inits[i].shape);
}
const char *oe_onnx_node_op(const oe_onnx_model *m, int i) { return m->nodes[m->order[i]].op_type; }
const char *oe_onnx_node_name(const oe_onnx_model *m, int i) { return m->nodes[m->order[i]].name; }
