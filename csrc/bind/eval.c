/* eval.c: bindings of the evaluation kernels (csrc/ops/search.h).
 *   search_topk(q (Q,D), keys (N,D), k, block, qblock) -> vals (Q,k) float32, idx (Q,k) int64
 *   search_ranks(q, keys, qoff (Q+1), qlab, koff (N+1), klab, nlab, qblock)
 *       -> first (Q) int64, nrel (Q) int64, ap (Q) float32, ap_sum (double, over all queries)
 *   confusion(truth (n) int64, pred (n) int64, C) -> (C, C) int64 */
#include "bind.h"
#include "../ops/search.h"
#include <stdlib.h>

static oe_tensor *check_typed(lua_State *L, int idx, oe_dtype dt, const char *fn, const char *arg) {
  oe_tensor *t = oe_lua_check(L, idx, fn, arg);
  oe_lua_check_dtype(L, t, dt, fn, arg);
  return t;
}

static void check_matrix(lua_State *L, const oe_tensor *t, const char *fn, const char *arg) {
  char b[160];
  if (t->ndim != 2) oe_lua_fail(L, fn, "argument '%s' must be 2-D (rows, dim), got shape %s", arg, oe_lua_shape_str(t, b, sizeof b));
  if (t->shape[0] < 1) oe_lua_fail(L, fn, "argument '%s' is empty (shape %s)", arg, oe_lua_shape_str(t, b, sizeof b));
  if (t->shape[1] < 1) oe_lua_fail(L, fn, "argument '%s' has no features (shape %s)", arg, oe_lua_shape_str(t, b, sizeof b));
}

static void check_same_dim(lua_State *L, const oe_tensor *q, const oe_tensor *k, const char *fn) {
  char a[160], b[160];
  if (q->shape[1] != k->shape[1])
    oe_lua_fail(L, fn, "queries %s and keys %s have different embedding sizes", oe_lua_shape_str(q, a, sizeof a),
                oe_lua_shape_str(k, b, sizeof b));
}

static int e_search_topk(lua_State *L) {
  const char *fn = "search_topk";
  oe_tensor *q = check_typed(L, 1, OE_F32, fn, "queries"), *keys = check_typed(L, 2, OE_F32, fn, "keys");
  check_matrix(L, q, fn, "queries");
  check_matrix(L, keys, fn, "keys");
  check_same_dim(L, q, keys, fn);
  lua_Integer k = luaL_checkinteger(L, 3);
  lua_Integer kb = luaL_optinteger(L, 4, 4096), qb = luaL_optinteger(L, 5, 256);
  int64_t N = keys->shape[0], Q = q->shape[0], D = q->shape[1];
  if (k < 1 || k > N) return oe_lua_fail(L, fn, "k = %lld out of range 1..%lld (number of keys)", (long long)k, (long long)N);
  if (kb < 1) return oe_lua_fail(L, fn, "block = %lld must be positive", (long long)kb);
  if (qb < 1) return oe_lua_fail(L, fn, "qblock = %lld must be positive", (long long)qb);
  int64_t shape[2] = {Q, k};
  oe_tensor *v = oe_lua_push_new(L, fn, OE_F32, 2, shape);
  oe_tensor *i = oe_lua_push_new(L, fn, OE_I64, 2, shape);
  oe_err e;
  if (oe_search_topk(oe_f32(q), Q, oe_f32(keys), N, D, k, kb, qb, oe_f32(v), (int64_t *)oe_data(i), &e) != OE_OK)
    return oe_lua_fail(L, fn, "%s", e.msg);
  return 2;
}

static const int64_t *check_offsets(lua_State *L, int idx, int64_t rows, const oe_tensor *lab, const char *fn,
                                    const char *arg) {
  oe_tensor *o = check_typed(L, idx, OE_I64, fn, arg);
  if (o->ndim != 1 || o->shape[0] != rows + 1)
    oe_lua_fail(L, fn, "argument '%s' must have %lld entries (rows + 1)", arg, (long long)(rows + 1));
  const int64_t *p = oe_data(o);
  if (p[0] != 0 || p[rows] != oe_numel(lab))
    oe_lua_fail(L, fn, "argument '%s' must run from 0 to the number of labels (%lld)", arg, (long long)oe_numel(lab));
  for (int64_t r = 0; r < rows; r++)
    if (p[r + 1] < p[r]) oe_lua_fail(L, fn, "argument '%s' decreases at row %lld", arg, (long long)r);
  return p;
}

static int e_search_ranks(lua_State *L) {
  const char *fn = "search_ranks";
  oe_tensor *q = check_typed(L, 1, OE_F32, fn, "queries"), *keys = check_typed(L, 2, OE_F32, fn, "keys");
  check_matrix(L, q, fn, "queries");
  check_matrix(L, keys, fn, "keys");
  check_same_dim(L, q, keys, fn);
  int64_t Q = q->shape[0], N = keys->shape[0], D = q->shape[1];
  oe_tensor *qlab = check_typed(L, 4, OE_I64, fn, "query_labels");
  oe_tensor *klab = check_typed(L, 6, OE_I64, fn, "key_labels");
  const int64_t *qoff = check_offsets(L, 3, Q, qlab, fn, "query_offsets");
  const int64_t *koff = check_offsets(L, 5, N, klab, fn, "key_offsets");
  lua_Integer nlab = luaL_checkinteger(L, 7);
  lua_Integer qb = luaL_optinteger(L, 8, 64);
  if (nlab < 0) return oe_lua_fail(L, fn, "number of labels %lld is negative", (long long)nlab);
  if (qb < 1) return oe_lua_fail(L, fn, "qblock = %lld must be positive", (long long)qb);
  int64_t shape[1] = {Q};
  oe_tensor *first = oe_lua_push_new(L, fn, OE_I64, 1, shape);
  oe_tensor *nrel = oe_lua_push_new(L, fn, OE_I64, 1, shape);
  oe_tensor *apt = oe_lua_push_new(L, fn, OE_F32, 1, shape);
  double *ap = malloc(sizeof(double) * (size_t)Q);
  if (!ap) return oe_lua_fail(L, fn, "out of memory");
  oe_err e;
  int rc = oe_search_ranks(oe_f32(q), Q, oe_f32(keys), N, D, qoff, oe_data(qlab), koff, oe_data(klab), nlab, qb,
                           oe_data(first), oe_data(nrel), ap, &e);
  double sum = 0;
  float *apf = oe_f32(apt);
  if (rc == OE_OK)
    for (int64_t i = 0; i < Q; i++) { apf[i] = (float)ap[i]; sum += ap[i]; }
  free(ap);
  if (rc != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  lua_pushnumber(L, sum);
  return 4;
}

static int e_confusion(lua_State *L) {
  const char *fn = "confusion";
  oe_tensor *t = check_typed(L, 1, OE_I64, fn, "truth"), *p = check_typed(L, 2, OE_I64, fn, "pred");
  lua_Integer C = luaL_checkinteger(L, 3);
  if (C < 1 || C > 1000000) return oe_lua_fail(L, fn, "number of classes %lld out of range 1..1000000", (long long)C);
  if (oe_numel(t) != oe_numel(p))
    return oe_lua_fail(L, fn, "truth has %lld entries, pred %lld", (long long)oe_numel(t), (long long)oe_numel(p));
  int64_t shape[2] = {C, C};
  oe_tensor *out = oe_lua_push_new(L, fn, OE_I64, 2, shape);
  int64_t bad = 0;
  const int64_t *tp = oe_data(t), *pp = oe_data(p);
  if (oe_confusion(tp, pp, oe_numel(t), C, oe_data(out), &bad) != OE_OK)
    return oe_lua_fail(L, fn, "entry %lld: truth %lld / pred %lld outside [0, %lld)", (long long)bad,
                       (long long)tp[bad], (long long)pp[bad], (long long)C);
  return 1;
}

static const luaL_Reg eval_fns[] = {
  {"search_topk", e_search_topk}, {"search_ranks", e_search_ranks}, {"confusion", e_confusion}, {NULL, NULL}};

void oe_bind_eval(lua_State *L) { luaL_setfuncs(L, eval_fns, 0); }
