/* plan.c: shapes inferred once per input shape, constants folded, elementwise ops fused
 * into the producing Conv/MatMul/Gemm, buffers planned in one arena; and the executor. */
#include "graph.h"
#include "../core/util.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { K_NONE = 0, K_INPUT, K_STATIC, K_ARENA };

typedef struct ox_step {
  int node;
  ox_call call;
  int fused;          /* applied as post-ops of another step: not run */
  int fused_from;     /* value it was fused onto (its input holding the producer's output) */
  size_t scratch_off;
} ox_step;

typedef struct ox_plan {
  int n_inputs, nthreads;
  oe_dtype *in_dt;
  int *in_ndim;
  int64_t *in_shape;          /* n_inputs * OE_MAX_DIMS */
  int n_values;
  ox_t *vals;
  int *kind;                  /* per value: K_* of its storage */
  int *root;                  /* per value: the value whose storage it shares */
  size_t *offset;             /* per root in the arena */
  ox_step *steps;
  int n_steps;
  void **owned;               /* buffers of values folded at planning */
  int n_owned, cap_owned;
  size_t arena_bytes;
  int fused, folded;
} ox_plan;

/* fusing (ops_math.c): 1 and the post-op when the step t, reading the value `from` of
 * shape like its output, can run as an elementwise post-op */
int ox_post_of(const ox_call *t, int from_slot, oe_post *into);

static float zero_buf[16] __attribute__((aligned(64)));

void ox_plan_free(ox_plan *p) {
  if (!p) return;
  for (int i = 0; i < p->n_steps; i++) {
    free(p->steps[i].call.aux);
    free(p->steps[i].call.in);
    free(p->steps[i].call.out);
  }
  free(p->steps);
  for (int i = 0; i < p->n_owned; i++) free(p->owned[i]);
  free(p->owned);
  free(p->in_dt);
  free(p->in_ndim);
  free(p->in_shape);
  free(p->vals);
  free(p->kind);
  free(p->root);
  free(p->offset);
  free(p);
}

static const char *label(const oe_onnx_model *m, int node, char *buf, size_t cap) {
  const ox_node *n = &m->nodes[node];
  char a[96], b[64];
  if (n->name[0])
    snprintf(buf, cap, "node '%s' (%s)", oe_escape(n->name, strlen(n->name), a, sizeof a),
             oe_escape(n->op_type, strlen(n->op_type), b, sizeof b));
  else snprintf(buf, cap, "node #%d (%s)", node, oe_escape(n->op_type, strlen(n->op_type), b, sizeof b));
  return buf;
}

static int node_fail(const oe_onnx_model *m, int node, int code, const oe_err *inner, oe_err *e) {
  char lab[200];
  return oe_fail_path(e, code, m->path, "%s: %s", label(m, node, lab, sizeof lab), inner->msg);
}

static int own(ox_plan *p, void *buf) {
  if (p->n_owned == p->cap_owned) {
    int cap = p->cap_owned ? 2 * p->cap_owned : 16;
    void **o = realloc(p->owned, (size_t)cap * sizeof(void *));
    if (!o) return 0;
    p->owned = o;
    p->cap_owned = cap;
  }
  p->owned[p->n_owned++] = buf;
  return 1;
}

static void *alloc_bytes(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64 + 64); }

static int key_matches(const ox_plan *p, const oe_onnx_model *m, const oe_tensor *in, int nt) {
  if (!p || p->nthreads != nt || p->n_inputs != m->n_inputs) return 0;
  for (int i = 0; i < m->n_inputs; i++) {
    if (p->in_dt[i] != in[i].dtype || p->in_ndim[i] != in[i].ndim) return 0;
    for (int k = 0; k < in[i].ndim; k++)
      if (p->in_shape[i * OE_MAX_DIMS + k] != in[i].shape[k]) return 0;
  }
  return 1;
}

/* the caller's input i against the declaration */
static int check_input(const oe_onnx_model *m, int i, const oe_tensor *t, oe_err *e) {
  const ox_value *v = &m->values[m->inputs[i]];
  char a[96], s1[128], s2[128];
  const char *nm = oe_escape(v->name, strlen(v->name), a, sizeof a);
  if (v->decl_onnx_type && v->decl_dt < 0)
    return oe_fail_path(e, OE_EINVAL, m->path, "input '%s' is declared with ONNX data type %d (supported: float32, int64, int32)",
                        nm, v->decl_onnx_type);
  if (t->dtype != OE_F32 && t->dtype != OE_I64 && t->dtype != OE_I32)
    return oe_fail_path(e, OE_EINVAL, m->path, "input '%s' is %s (float32, int64 or int32 are supported)", nm, oe_dtype_name(t->dtype));
  if (v->decl_dt >= 0 && (oe_dtype)v->decl_dt != t->dtype)
    return oe_fail_path(e, OE_EINVAL, m->path, "input '%s' is %s, the model declares %s", nm, oe_dtype_name(t->dtype),
                        oe_dtype_name((oe_dtype)v->decl_dt));
  oe_shape_str(t->ndim, t->shape, s1, sizeof s1);
  if (v->decl_ndim >= 0) {
    int bad = v->decl_ndim != t->ndim;
    for (int k = 0; !bad && k < t->ndim; k++) bad = v->decl_dims[k] >= 0 && v->decl_dims[k] != t->shape[k];
    if (bad) {
      size_t o = 0;
      s2[o++] = '(';
      for (int k = 0; k < v->decl_ndim && o < sizeof s2 - 24; k++) {
        if (v->decl_dims[k] >= 0) o += (size_t)snprintf(s2 + o, sizeof s2 - o, "%s%lld", k ? ", " : "", (long long)v->decl_dims[k]);
        else o += (size_t)snprintf(s2 + o, sizeof s2 - o, "%s%.12s", k ? ", " : "", v->decl_names[k] ? v->decl_names[k] : "?");
      }
      snprintf(s2 + o, sizeof s2 - o, ")");
      return oe_fail_path(e, OE_EINVAL, m->path, "input '%s' has shape %s, the model declares %s", nm, s1, s2);
    }
  }
  return oe_shape_check(t->ndim, t->shape, e) == OE_OK ? OE_OK : oe_fail_path(e, OE_EINVAL, m->path, "input '%s': %s", nm, e->msg);
}

static int setup_call(ox_plan *p, const oe_onnx_model *m, int node, ox_call *c) {
  const ox_node *n = &m->nodes[node];
  memset(c, 0, sizeof *c);
  c->m = m;
  c->node = n;
  c->opset = (int)m->opset;
  c->n_in = n->n_in;
  c->n_out = n->n_out;
  c->nthreads = p->nthreads;
  c->in = calloc((size_t)n->n_in + 1, sizeof(ox_t *));
  c->out = calloc((size_t)n->n_out + 1, sizeof(ox_t *));
  if (!c->in || !c->out) return 0;
  for (int k = 0; k < n->n_in; k++) c->in[k] = n->in[k] >= 0 ? &p->vals[n->in[k]] : NULL;
  for (int k = 0; k < n->n_out; k++) c->out[k] = n->out[k] >= 0 ? &p->vals[n->out[k]] : NULL;
  return 1;
}

/* evaluate a node whose inputs are all known, now */
static int fold(ox_plan *p, const oe_onnx_model *m, int node, ox_call *c, oe_err *e) {
  const ox_node *n = &m->nodes[node];
  oe_err ie;
  if (n->op->flags & OX_VIEW) {
    c->out[0]->data = c->in[0]->data;
    for (int k = 1; k < c->n_out; k++)
      if (c->out[k]) return oe_fail_path(e, OE_EINVAL, m->path, "internal: view op with several outputs");
    return OE_OK;
  }
  for (int k = 0; k < c->n_out; k++) {
    if (!c->out[k]) continue;
    void *buf = alloc_bytes(ox_nbytes(c->out[k]));
    if (!buf || !own(p, buf)) {
      free(buf);
      return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory folding constants");
    }
    c->out[k]->data = buf;
  }
  void *scratch = NULL;
  if (c->scratch_bytes) {
    scratch = alloc_bytes(c->scratch_bytes);
    if (!scratch) return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory (%zu bytes of scratch)", c->scratch_bytes);
  }
  c->scratch = scratch;
  int rc = n->op->run(c, &ie);
  free(scratch);
  c->scratch = NULL;
  if (rc != OE_OK) return node_fail(m, node, rc, &ie, e);
  return OE_OK;
}

/* ---- arena placement: greedy, largest first, lowest offset free over the lifetime ---- */
typedef struct { size_t size, off; int start, end, id; } item;
static int by_size(const void *a, const void *b) {
  const item *x = a, *y = b;
  if (x->size != y->size) return x->size < y->size ? 1 : -1;
  return x->start - y->start;
}
static int by_off(const void *a, const void *b) {
  const item *x = *(const item *const *)a, *y = *(const item *const *)b;
  return x->off < y->off ? -1 : x->off > y->off;
}
static int place(item *it, int n, size_t *total) {
  qsort(it, (size_t)n, sizeof *it, by_size);
  item **live = malloc(((size_t)n + 1) * sizeof(item *));
  if (!live) return 0;
  size_t top = 0;
  for (int i = 0; i < n; i++) {
    int nl = 0;
    for (int j = 0; j < i; j++)
      if (it[j].start <= it[i].end && it[i].start <= it[j].end) live[nl++] = &it[j];
    qsort(live, (size_t)nl, sizeof *live, by_off);
    size_t off = 0;
    for (int j = 0; j < nl; j++) {
      if (live[j]->off >= off + it[i].size) break;
      if (live[j]->off + live[j]->size > off) off = live[j]->off + live[j]->size;
    }
    it[i].off = off;
    if (off + it[i].size > top) top = off + it[i].size;
  }
  free(live);
  *total = top;
  return 1;
}

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

static int build_plan(oe_onnx_model *m, ox_plan *p, const oe_tensor *inputs, oe_err *e) {
  int NV = m->n_values;
  p->n_values = NV;
  p->vals = calloc((size_t)NV + 1, sizeof(ox_t));
  p->kind = calloc((size_t)NV + 1, sizeof(int));
  p->root = malloc(((size_t)NV + 1) * sizeof(int));
  p->offset = calloc((size_t)NV + 1, sizeof(size_t));
  p->steps = calloc((size_t)m->n_nodes + 1, sizeof(ox_step));
  int *step_of = malloc(((size_t)m->n_nodes + 1) * sizeof(int));
  int *last_read = malloc(((size_t)NV + 1) * sizeof(int));
  int *gend = malloc(((size_t)NV + 1) * sizeof(int));
  int *gstart = malloc(((size_t)NV + 1) * sizeof(int));
  uint8_t *gout = calloc((size_t)NV + 1, 1);
  item *items = NULL;
  int rc = OE_OK;
#define OOM() do { rc = oe_fail_path(e, OE_ENOMEM, m->path, "out of memory planning the graph"); goto out; } while (0)
  if (!p->vals || !p->kind || !p->root || !p->offset || !p->steps || !step_of || !last_read || !gend || !gstart || !gout) OOM();
  for (int v = 0; v < NV; v++) p->root[v] = v;

  /* constants and inputs */
  for (int v = 0; v < NV; v++) {
    const ox_value *val = &m->values[v];
    if (val->init >= 0) {
      const ox_const *c = &m->inits[val->init];
      ox_set(&p->vals[v], c->dt, c->ndim, c->shape);
      p->vals[v].data = c->data;
      p->kind[v] = K_STATIC;
    }
  }
  for (int i = 0; i < m->n_inputs; i++) {
    if ((rc = check_input(m, i, &inputs[i], e)) != OE_OK) goto out;
    int v = m->inputs[i];
    ox_set(&p->vals[v], inputs[i].dtype, inputs[i].ndim, inputs[i].shape);
    p->vals[v].data = NULL;
    p->kind[v] = K_INPUT;
  }

  /* shapes, folding, steps */
  for (int oi = 0; oi < m->n_nodes; oi++) {
    int node = m->order[oi];
    const ox_node *n = &m->nodes[node];
    step_of[node] = -1;
    ox_call c;
    if (!setup_call(p, m, node, &c)) { free(c.in); free(c.out); OOM(); }
    oe_err ie;
    int r = n->op->infer(&c, &ie);
    if (r == OE_OK)
      for (int k = 0; k < c.n_out && r == OE_OK; k++)
        if (c.out[k] && ox_check_shape(c.out[k], &ie) != OE_OK) r = OE_EINVAL;
    if (r != OE_OK) {
      free(c.aux); free(c.in); free(c.out);
      rc = node_fail(m, node, r, &ie, e);
      goto out;
    }
    int known = 1;
    for (int k = 0; k < c.n_in; k++) {
      if (!c.in[k]) continue;
      if (k == 0 && (n->op->flags & OX_SHAPE_ONLY)) continue;
      if (p->kind[n->in[k]] != K_STATIC) known = 0;
    }
    if (known) {
      r = fold(p, m, node, &c, e);
      free(c.aux); free(c.in); free(c.out);
      if (r != OE_OK) { rc = r; goto out; }
      for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0) p->kind[n->out[k]] = K_STATIC;
      p->folded++;
    } else {
      for (int k = 0; k < n->n_out; k++)
        if (n->out[k] >= 0) { p->vals[n->out[k]].data = NULL; p->kind[n->out[k]] = K_ARENA; }
      ox_step *s = &p->steps[p->n_steps];
      s->node = node;
      s->call = c;
      s->fused_from = -1;
      step_of[node] = p->n_steps++;
    }
  }

  /* fusion: elementwise ops consuming a Conv/MatMul/Gemm output (and nothing else reading it) */
  for (int si = 0; si < p->n_steps; si++) {
    ox_step *s = &p->steps[si];
    if (s->fused || !(m->nodes[s->node].op->flags & OX_POST_SINK) || !s->call.out[0] || s->call.out[0]->dt != OE_F32) continue;
    int cur = m->nodes[s->node].out[0];
    while (s->call.post.n < OE_POST_MAX_OPS) {
      const ox_value *cv = &m->values[cur];
      if (cv->is_output || cv->n_uses != 1) break;
      int ti = -1, slot = -1;
      for (int k = si + 1; k < p->n_steps && ti < 0; k++) {
        const ox_node *tn = &m->nodes[p->steps[k].node];
        for (int q = 0; q < tn->n_in; q++)
          if (tn->in[q] == cur) { ti = k; slot = q; break; }
      }
      if (ti < 0) break;
      ox_step *t = &p->steps[ti];
      if (t->fused || !t->call.out[0] || m->nodes[t->node].n_out != 1) break;
      const ox_t *a = &p->vals[cur], *o = t->call.out[0];
      if (o->dt != OE_F32 || o->ndim != a->ndim || memcmp(o->shape, a->shape, (size_t)a->ndim * sizeof(int64_t))) break;
      if (!ox_post_of(&t->call, slot, &s->call.post)) break;
      t->fused = 1;
      t->fused_from = cur;
      p->fused++;
      cur = m->nodes[t->node].out[0];
    }
  }

  /* reads: the last step reading each value (a fused step reads inside its producer's pass) */
  for (int v = 0; v < NV; v++) last_read[v] = -1;
  for (int si = 0; si < p->n_steps; si++) {
    const ox_step *s = &p->steps[si];
    if (s->fused) continue;
    const ox_node *n = &m->nodes[s->node];
    for (int k = 0; k < n->n_in; k++)
      if (n->in[k] >= 0) last_read[n->in[k]] = si;
  }
  /* fused chains: their values are read where the chain's last value is read */
  for (int si = p->n_steps - 1; si >= 0; si--) {
    const ox_step *s = &p->steps[si];
    if (!s->fused) continue;
    int outv = m->nodes[s->node].out[0];
    if (last_read[outv] > last_read[s->fused_from]) last_read[s->fused_from] = last_read[outv];
  }

  /* storage: views and fused ops share their input's bytes; elementwise ops may overwrite
   * an input that nothing reads afterwards */
  for (int v = 0; v < NV; v++) { gend[v] = last_read[v]; gstart[v] = -1; gout[v] = (uint8_t)m->values[v].is_output; }
  int *prod_step = malloc(((size_t)NV + 1) * sizeof(int));
  if (!prod_step) OOM();
  for (int v = 0; v < NV; v++) prod_step[v] = -1;
  for (int si = 0; si < p->n_steps; si++) {
    ox_step *s = &p->steps[si];
    const ox_node *n = &m->nodes[s->node];
    int o0 = n->out[0];
    int join = -1;
    if (s->fused) {
      join = p->root[s->fused_from];
    } else if (n->op->flags & OX_VIEW) {
      join = p->root[n->in[0]];
    } else if ((n->op->flags & OX_INPLACE) && o0 >= 0 && n->in[0] >= 0) {
      int r = p->root[n->in[0]];
      int ok = p->kind[r] == K_ARENA && !gout[r] && gend[r] <= si && ox_nbytes(&p->vals[r]) == ox_nbytes(&p->vals[o0]);
      for (int k = 1; ok && k < n->n_in; k++)
        if (n->in[k] >= 0 && n->in[k] != n->in[0] && p->root[n->in[k]] == r) ok = 0;
      if (ok) join = r;
    }
    for (int k = 0; k < n->n_out; k++) {
      int v = n->out[k];
      if (v < 0) continue;
      if (k == 0 && join >= 0) {
        p->root[v] = join;
        p->kind[v] = p->kind[join];
        if (gend[v] > gend[join]) gend[join] = gend[v];
        if (gout[v]) gout[join] = 1;
      } else {
        prod_step[v] = s->fused ? -1 : si;
        gstart[v] = si;
        if (gend[v] < si) gend[v] = si;
      }
    }
  }
  free(prod_step);

  /* arena */
  int n_items = 0;
  items = calloc((size_t)NV + (size_t)p->n_steps + 1, sizeof(item));
  if (!items) OOM();
  for (int v = 0; v < NV; v++) {
    if (p->kind[v] != K_ARENA || p->root[v] != v) continue;
    item *it = &items[n_items++];
    it->size = round64(ox_nbytes(&p->vals[v]));
    it->start = gstart[v] < 0 ? 0 : gstart[v];
    it->end = gout[v] ? p->n_steps : gend[v];
    if (it->end < it->start) it->end = it->start;
    it->id = v;
  }
  for (int si = 0; si < p->n_steps; si++) {
    if (!p->steps[si].call.scratch_bytes || p->steps[si].fused) continue;
    item *it = &items[n_items++];
    it->size = round64(p->steps[si].call.scratch_bytes);
    it->start = it->end = si;
    it->id = NV + si;
  }
  if (!place(items, n_items, &p->arena_bytes)) OOM();
  for (int i = 0; i < n_items; i++) {
    if (items[i].id < NV) p->offset[items[i].id] = items[i].off;
    else p->steps[items[i].id - NV].scratch_off = items[i].off;
  }
out:
#undef OOM
  free(items);
  free(step_of);
  free(last_read);
  free(gend);
  free(gstart);
  free(gout);
  return rc;
}

int oe_onnx_plan(oe_onnx_model *m, const oe_tensor *inputs, oe_err *e) {
  int nt = omp_get_max_threads();
  if (nt < 1) nt = 1;
  if (key_matches(m->plan, m, inputs, nt)) return OE_OK;
  ox_plan_free(m->plan);
  m->plan = NULL;
  ox_plan *p = calloc(1, sizeof *p);
  if (!p) return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  p->nthreads = nt;
  p->n_inputs = m->n_inputs;
  p->in_dt = calloc((size_t)m->n_inputs + 1, sizeof(oe_dtype));
  p->in_ndim = calloc((size_t)m->n_inputs + 1, sizeof(int));
  p->in_shape = calloc(((size_t)m->n_inputs + 1) * OE_MAX_DIMS, sizeof(int64_t));
  if (!p->in_dt || !p->in_ndim || !p->in_shape) {
    ox_plan_free(p);
    return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  }
  for (int i = 0; i < m->n_inputs; i++) {
    p->in_dt[i] = inputs[i].dtype;
    p->in_ndim[i] = inputs[i].ndim;
    for (int k = 0; k < inputs[i].ndim; k++) p->in_shape[i * OE_MAX_DIMS + k] = inputs[i].shape[k];
  }
  int rc = build_plan(m, p, inputs, e);
  if (rc != OE_OK) {
    ox_plan_free(p);
    return rc;
  }
  m->plan = p;
  return OE_OK;
}

void oe_onnx_output_shape(const oe_onnx_model *m, int i, oe_dtype *dt, int *ndim, int64_t *shape) {
  const ox_t *t = &m->plan->vals[m->outputs[i]];
  *dt = t->dt;
  *ndim = t->ndim;
  for (int k = 0; k < t->ndim; k++) shape[k] = t->shape[k];
}

void oe_onnx_get_plan_info(const oe_onnx_model *m, oe_onnx_plan_info *pi) {
  memset(pi, 0, sizeof *pi);
  if (!m->plan) return;
  pi->arena_bytes = m->plan->arena_bytes;
  pi->steps = m->plan->n_steps - m->plan->fused;
  pi->fused = m->plan->fused;
  pi->folded = m->plan->folded;
}

/* profiling clock: the process's CPU time on one thread (steadier on a shared machine: time
 * spent preempted is not counted), wall time on several */
static double profile_clock(int nthreads) {
  if (nthreads > 1) return omp_get_wtime();
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int oe_onnx_execute(oe_onnx_model *m, const oe_tensor *inputs, oe_tensor *outputs, oe_err *e) {
  int rc = oe_onnx_plan(m, inputs, e);
  if (rc != OE_OK) return rc;
  ox_plan *p = m->plan;
  if (m->arena_cap < p->arena_bytes) {
    free(m->arena);
    m->arena_cap = 0;
    m->arena = aligned_alloc(64, round64(p->arena_bytes) + 64);
    if (!m->arena) return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory (%zu bytes of activations)", p->arena_bytes);
    m->arena_cap = p->arena_bytes;
  }
  char *base = m->arena;
  for (int i = 0; i < m->n_inputs; i++) {
    int v = m->inputs[i];
    p->vals[v].data = oe_numel(&inputs[i]) ? oe_data(&inputs[i]) : (void *)zero_buf;
  }
  for (int v = 0; v < p->n_values; v++) {
    int r = p->root[v];
    if (p->kind[v] == K_ARENA && r == v) p->vals[v].data = ox_nbytes(&p->vals[v]) ? base + p->offset[v] : (void *)zero_buf;
  }
  for (int v = 0; v < p->n_values; v++) {
    int r = p->root[v];
    if (r != v) p->vals[v].data = p->vals[r].data;
  }
  for (int si = 0; si < p->n_steps; si++) {
    ox_step *s = &p->steps[si];
    if (s->fused) continue;
    s->call.scratch = s->call.scratch_bytes ? base + s->scratch_off : NULL;
    oe_err ie;
    double t0 = m->profile ? profile_clock(p->nthreads) : 0;
    rc = m->nodes[s->node].op->run(&s->call, &ie);
    if (m->profile) m->node_seconds[s->node] += profile_clock(p->nthreads) - t0;
    if (rc != OE_OK) return node_fail(m, s->node, rc, &ie, e);
  }
  for (int i = 0; i < m->n_outputs; i++) {
    const ox_t *t = &p->vals[m->outputs[i]];
    size_t nb = ox_nbytes(t);
    if (nb) memcpy(oe_data(&outputs[i]), t->data, nb);
  }
  return OE_OK;
}

int oe_onnx_set_profile(oe_onnx_model *m, int on, oe_err *e) {
  if (on && !m->node_seconds) {
    m->node_seconds = calloc((size_t)m->n_nodes + 1, sizeof(double));
    if (!m->node_seconds) return oe_fail_path(e, OE_ENOMEM, m->path, "out of memory");
  }
  if (on) memset(m->node_seconds, 0, ((size_t)m->n_nodes + 1) * sizeof(double));
  m->profile = on;
  return OE_OK;
}

double oe_onnx_node_seconds(const oe_onnx_model *m, int i) {
  return m->node_seconds ? m->node_seconds[m->order[i]] : 0.0;
}
