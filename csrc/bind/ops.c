/* bind/ops.c: elementwise, reductions, matmul and optimiser kernels. */
#include "bind.h"
#include "../ops/ops.h"
#include <math.h>
#include <string.h>

static const char *binop_names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge", "pow", NULL};
static const char *unop_names[] = {"neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "relu", "gelu", "gelu_tanh",
                                   "pows", "clamp", "adds", "muls", "rsubs", "rdivs", "square", "sign", NULL};

static oe_tensor *check_f32(lua_State *L, int idx, const char *fn, const char *arg) {
  oe_tensor *t = oe_lua_check(L, idx, fn, arg);
  oe_lua_check_dtype(L, t, OE_F32, fn, arg);
  return t;
}

/* binary(op, a, b) with broadcasting */
static int o_binary(lua_State *L) {
  int op = luaL_checkoption(L, 1, NULL, binop_names);
  const char *fn = binop_names[op];
  oe_tensor *a = check_f32(L, 2, fn, "a"), *b = check_f32(L, 3, fn, "b");
  int nd;
  int64_t shape[OE_MAX_DIMS];
  if (!oe_broadcast_shape(a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) {
    char x[160], y[160];
    return oe_lua_fail(L, fn, "shapes %s and %s cannot be broadcast together", oe_lua_shape_str(a, x, sizeof x), oe_lua_shape_str(b, y, sizeof y));
  }
  oe_tensor *o = oe_lua_push_uninit(L, fn, OE_F32, nd, shape);
  if (oe_numel(o) > 0) oe_binary_f32((oe_binop)op, oe_f32(a), a->ndim, a->shape, oe_f32(b), b->ndim, b->shape, oe_f32(o), nd, shape);
  return 1;
}

static int o_unary(lua_State *L) {
  int op = luaL_checkoption(L, 1, NULL, unop_names);
  oe_tensor *x = check_f32(L, 2, unop_names[op], "x");
  float p1 = (float)luaL_optnumber(L, 3, 0), p2 = (float)luaL_optnumber(L, 4, 0);
  oe_tensor *o = oe_lua_push_uninit(L, unop_names[op], OE_F32, x->ndim, x->shape);
  oe_unary_f32((oe_unop)op, oe_f32(x), oe_f32(o), oe_numel(x), p1, p2);
  return 1;
}

/* unary_backward(op, x, y, g, p1, p2); x or y may be nil where the op does not need it */
static int o_unary_backward(lua_State *L) {
  int op = luaL_checkoption(L, 1, NULL, unop_names);
  const char *fn = unop_names[op];
  oe_tensor *x = oe_lua_opt(L, 2, fn, "x"), *y = oe_lua_opt(L, 3, fn, "y"), *g = check_f32(L, 4, fn, "grad");
  float p1 = (float)luaL_optnumber(L, 5, 0), p2 = (float)luaL_optnumber(L, 6, 0);
  if ((x && oe_numel(x) != oe_numel(g)) || (y && oe_numel(y) != oe_numel(g))) return oe_lua_fail(L, fn, "backward: size mismatch");
  oe_tensor *o = oe_lua_push_uninit(L, fn, OE_F32, g->ndim, g->shape);
  oe_unary_backward_f32((oe_unop)op, x ? oe_f32(x) : NULL, y ? oe_f32(y) : NULL, oe_f32(g), oe_f32(o), oe_numel(g), p1, p2);
  return 1;
}

/* sum_to(g, shape): reduce a broadcast gradient back to shape */
static int o_sum_to(lua_State *L) {
  oe_tensor *g = check_f32(L, 1, "sum_to", "grad");
  int64_t shape[OE_MAX_DIMS], bs[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 2, shape, "sum_to", "shape"), nb;
  if (!oe_broadcast_shape(nd, shape, g->ndim, g->shape, &nb, bs) || nb != g->ndim || memcmp(bs, g->shape, sizeof(int64_t) * (size_t)nb))
    return oe_lua_fail(L, "sum_to", "shape does not broadcast to the gradient's shape");
  oe_tensor *o = oe_lua_push_uninit(L, "sum_to", OE_F32, nd, shape);
  oe_sum_to_f32(oe_f32(g), g->ndim, g->shape, oe_f32(o), nd, shape);
  return 1;
}

static int o_expand(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "expand", "x");
  int64_t shape[OE_MAX_DIMS], bs[OE_MAX_DIMS];
  int nd = oe_lua_shape(L, 2, shape, "expand", "shape"), nb;
  if (!oe_broadcast_shape(x->ndim, x->shape, nd, shape, &nb, bs) || nb != nd || memcmp(bs, shape, sizeof(int64_t) * (size_t)nb)) {
    char a[160], b[160];
    return oe_lua_fail(L, "expand", "cannot expand %s to %s", oe_lua_shape_str(x, a, sizeof a), oe_shape_str(nd, shape, b, sizeof b));
  }
  oe_tensor *o = oe_lua_push_uninit(L, "expand", OE_F32, nd, shape);
  if (oe_numel(o)) oe_expand_f32(oe_f32(x), x->ndim, x->shape, oe_f32(o), nd, shape);
  return 1;
}

/* axpy_(y, x, alpha): y += alpha x in place */
static int o_axpy_(lua_State *L) {
  oe_tensor *y = check_f32(L, 1, "add_", "self"), *x = check_f32(L, 2, "add_", "other");
  if (oe_numel(x) != oe_numel(y)) {
    char a[160], b[160];
    return oe_lua_fail(L, "add_", "shapes %s and %s differ", oe_lua_shape_str(y, a, sizeof a), oe_lua_shape_str(x, b, sizeof b));
  }
  oe_axpy_f32(oe_f32(y), oe_f32(x), oe_numel(x), (float)luaL_optnumber(L, 3, 1));
  lua_settop(L, 1);
  return 1;
}

static int o_mul_(lua_State *L) {
  oe_tensor *y = check_f32(L, 1, "mul_", "self");
  float s = (float)luaL_checknumber(L, 2);
  oe_unary_f32(OE_MULS, oe_f32(y), oe_f32(y), oe_numel(y), s, 0);
  lua_settop(L, 1);
  return 1;
}

/* reduce(op, x, dim, keepdim) -> out [, idx] ; dim nil = all elements */
static int o_reduce(lua_State *L) {
  static const char *names[] = {"sum", "mean", "max", "min", NULL};
  int op = luaL_checkoption(L, 1, NULL, names);
  const char *fn = names[op];
  oe_tensor *x = check_f32(L, 2, fn, "x");
  int keep = lua_toboolean(L, 4);
  int64_t n = oe_numel(x);
  if (lua_isnoneornil(L, 3)) {
    if (n == 0 && op >= 2) return oe_lua_fail(L, fn, "empty tensor has no %s", fn);
    oe_tensor *o = oe_lua_push_uninit(L, fn, OE_F32, 0, NULL);
    int64_t idx;
    oe_reduce_f32((oe_redop)op, oe_f32(x), 1, n, 1, oe_f32(o), op >= 2 ? &idx : NULL);
    if (op >= 2) {
      oe_tensor *it = oe_lua_push_uninit(L, fn, OE_I64, 0, NULL);
      ((int64_t *)oe_data(it))[0] = idx;
      return 2;
    }
    return 1;
  }
  if (x->ndim == 0) return oe_lua_fail(L, fn, "cannot reduce a 0-dimensional tensor along a dimension");
  int d = oe_lua_dim(L, 3, x->ndim, fn);
  if (x->shape[d] == 0 && op >= 2) return oe_lua_fail(L, fn, "dimension %d is empty", d + 1);
  int64_t outer = 1, inner = 1, shape[OE_MAX_DIMS];
  int nd = 0;
  for (int i = 0; i < x->ndim; i++) {
    if (i < d) outer *= x->shape[i];
    if (i > d) inner *= x->shape[i];
    if (i != d) shape[nd++] = x->shape[i];
    else if (keep) shape[nd++] = 1;
  }
  oe_tensor *o = oe_lua_push_uninit(L, fn, OE_F32, nd, shape);
  oe_tensor *it = op >= 2 ? oe_lua_push_uninit(L, fn, OE_I64, nd, shape) : NULL;
  oe_reduce_f32((oe_redop)op, oe_f32(x), outer, x->shape[d], inner, oe_f32(o), it ? (int64_t *)oe_data(it) : NULL);
  return it ? 2 : 1;
}

static int o_sum_all(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "sum", "x");
  lua_pushnumber(L, oe_sum_all_f32(oe_f32(x), oe_numel(x)));
  return 1;
}

/* sumsq(x): sum of squares in double (gradient norms) */
static int o_sumsq(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "sumsq", "x");
  const float *p = oe_f32(x);
  int64_t n = oe_numel(x);
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)p[i] * p[i];
  lua_pushnumber(L, s);
  return 1;
}

/* all_finite(x) -> bool */
static int o_all_finite(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "all_finite", "x");
  const float *p = oe_f32(x);
  int64_t n = oe_numel(x);
  int ok = 1;
  for (int64_t i = 0; i < n && ok; i++) if (!isfinite(p[i])) ok = 0;
  lua_pushboolean(L, ok);
  return 1;
}

/* topk(x, k, largest) along the last dim */
static int o_topk(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "topk", "x");
  lua_Integer k = luaL_checkinteger(L, 2);
  int largest = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
  if (x->ndim == 0) return oe_lua_fail(L, "topk", "needs at least one dimension");
  int64_t n = x->shape[x->ndim - 1];
  if (k < 1 || k > n) return oe_lua_fail(L, "topk", "k = %lld out of range 1..%lld", (long long)k, (long long)n);
  int64_t shape[OE_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = k;
  oe_tensor *v = oe_lua_push_uninit(L, "topk", OE_F32, x->ndim, shape);
  oe_tensor *i = oe_lua_push_uninit(L, "topk", OE_I64, x->ndim, shape);
  if (oe_topk_f32(oe_f32(x), oe_numel(x) / n, n, k, largest, oe_f32(v), (int64_t *)oe_data(i)))
    return oe_lua_fail(L, "topk", "out of memory");
  return 2;
}

/* matmul(a, b, transA, transB):
 *   (M,K) x (K,N); (B,M,K) x (B,K,N); (...,M,K) x (K,N) with leading dims flattened.
 *   transA / transB transpose the last two dims of a / b. */
static int o_matmul(lua_State *L) {
  oe_tensor *a = check_f32(L, 1, "matmul", "a"), *b = check_f32(L, 2, "matmul", "b");
  int ta = lua_toboolean(L, 3), tb = lua_toboolean(L, 4);
  char x[160], y[160];
  if (a->ndim < 2 || b->ndim < 2 || b->ndim > 3 || (b->ndim == 3 && a->ndim != 3))
    return oe_lua_fail(L, "matmul", "unsupported shapes %s and %s", oe_lua_shape_str(a, x, sizeof x), oe_lua_shape_str(b, y, sizeof y));
  int64_t ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1], br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
  int64_t M = ta ? ac : ar, K = ta ? ar : ac, K2 = tb ? bc : br, N = tb ? br : bc;
  if (K != K2) return oe_lua_fail(L, "matmul", "inner sizes differ: %s%s x %s%s", oe_lua_shape_str(a, x, sizeof x), ta ? "^T" : "",
                                  oe_lua_shape_str(b, y, sizeof y), tb ? "^T" : "");
  int64_t shape[OE_MAX_DIMS];
  if (b->ndim == 3) {
    if (a->shape[0] != b->shape[0]) return oe_lua_fail(L, "matmul", "batch sizes differ: %s x %s", oe_lua_shape_str(a, x, sizeof x), oe_lua_shape_str(b, y, sizeof y));
    int64_t Bn = a->shape[0];
    shape[0] = Bn; shape[1] = M; shape[2] = N;
    oe_tensor *o = oe_lua_push_uninit(L, "matmul", OE_F32, 3, shape);
    for (int64_t i = 0; i < Bn; i++)
      oe_gemm(ta, tb, M, N, K, 1.0f, oe_f32(a) + i * ar * ac, ac, oe_f32(b) + i * br * bc, bc, 0.0f, oe_f32(o) + i * M * N, N);
    return 1;
  }
  if (a->ndim > 2 && ta) return oe_lua_fail(L, "matmul", "transA with a batched a needs a batched b");
  int64_t lead = oe_numel_of(a->ndim - 2, a->shape);
  for (int i = 0; i < a->ndim - 2; i++) shape[i] = a->shape[i];
  shape[a->ndim - 2] = M;
  shape[a->ndim - 1] = N;
  oe_tensor *o = oe_lua_push_uninit(L, "matmul", OE_F32, a->ndim, shape);
  oe_gemm(ta, tb, lead * M, N, K, 1.0f, oe_f32(a), ac, oe_f32(b), bc, 0.0f, oe_f32(o), N);
  return 1;
}

/* linear(x (..., in), w (out, in), b (out) or nil) -> (..., out) */
static int o_linear(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "linear", "input"), *w = check_f32(L, 2, "linear", "weight");
  oe_tensor *b = oe_lua_opt(L, 3, "linear", "bias");
  char s1[160], s2[160];
  if (w->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != w->shape[1])
    return oe_lua_fail(L, "linear", "input of shape %s does not match weight of shape %s (out, in)", oe_lua_shape_str(x, s1, sizeof s1),
                       oe_lua_shape_str(w, s2, sizeof s2));
  if (b && (b->dtype != OE_F32 || oe_numel(b) != w->shape[0]))
    return oe_lua_fail(L, "linear", "bias of shape %s does not match %lld outputs", oe_lua_shape_str(b, s1, sizeof s1), (long long)w->shape[0]);
  int64_t rows = oe_numel(x) / w->shape[1], out = w->shape[0], in = w->shape[1];
  if (in == 0) rows = oe_numel_of(x->ndim - 1, x->shape);
  int64_t shape[OE_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = out;
  oe_tensor *o = oe_lua_push_uninit(L, "linear", OE_F32, x->ndim, shape);
  float *po = oe_f32(o);
  if (b) {
    const float *pb = oe_f32(b);
#pragma omp parallel for schedule(static) if (rows * out > 65536)
    for (int64_t r = 0; r < rows; r++) memcpy(po + r * out, pb, sizeof(float) * (size_t)out);
  }
  oe_gemm(0, 1, rows, out, in, 1.0f, oe_f32(x), in, oe_f32(w), in, b ? 1.0f : 0.0f, po, out);
  return 1;
}

/* linear_backward(x, w, g, need_x, need_w, need_b) -> gx, gw, gb (nil where not needed) */
static int o_linear_backward(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "linear_backward", "input"), *w = check_f32(L, 2, "linear_backward", "weight");
  oe_tensor *g = check_f32(L, 3, "linear_backward", "grad");
  int nx = lua_toboolean(L, 4), nw = lua_toboolean(L, 5), nb = lua_toboolean(L, 6);
  int64_t out = w->shape[0], in = w->shape[1], rows = in ? oe_numel(x) / in : 0;
  if (oe_numel(g) != rows * out) return oe_lua_fail(L, "linear_backward", "grad size mismatch");
  if (nx) {
    oe_tensor *gx = oe_lua_push_uninit(L, "linear_backward", OE_F32, x->ndim, x->shape);
    oe_gemm(0, 0, rows, in, out, 1.0f, oe_f32(g), out, oe_f32(w), in, 0.0f, oe_f32(gx), in);
  } else lua_pushnil(L);
  if (nw) {
    oe_tensor *gw = oe_lua_push_uninit(L, "linear_backward", OE_F32, 2, w->shape);
    oe_gemm(1, 0, out, in, rows, 1.0f, oe_f32(g), out, oe_f32(x), in, 0.0f, oe_f32(gw), in);
  } else lua_pushnil(L);
  if (nb) {
    oe_tensor *gb = oe_lua_push_uninit(L, "linear_backward", OE_F32, 1, &out);
    oe_reduce_f32(OE_RSUM, oe_f32(g), 1, rows, out, oe_f32(gb), NULL);
  } else lua_pushnil(L);
  return 3;
}

/* adamw_step(p, g, m, v, lr, beta1, beta2, eps, wd, step) */
static int o_adamw_step(lua_State *L) {
  oe_tensor *p = check_f32(L, 1, "adamw", "param"), *g = check_f32(L, 2, "adamw", "grad");
  oe_tensor *m = check_f32(L, 3, "adamw", "exp_avg"), *v = check_f32(L, 4, "adamw", "exp_avg_sq");
  int64_t n = oe_numel(p);
  if (oe_numel(g) != n || oe_numel(m) != n || oe_numel(v) != n) return oe_lua_fail(L, "adamw", "state sizes differ from the parameter");
  oe_adamw_step(oe_f32(p), oe_f32(g), oe_f32(m), oe_f32(v), n, luaL_checknumber(L, 5), luaL_checknumber(L, 6),
                luaL_checknumber(L, 7), luaL_checknumber(L, 8), luaL_checknumber(L, 9), luaL_checkinteger(L, 10));
  return 0;
}

/* sgd_step(p, g, buf, lr, momentum, dampening, wd, nesterov, first) */
static int o_sgd_step(lua_State *L) {
  oe_tensor *p = check_f32(L, 1, "sgd", "param"), *g = check_f32(L, 2, "sgd", "grad");
  oe_tensor *b = oe_lua_opt(L, 3, "sgd", "momentum_buffer");
  int64_t n = oe_numel(p);
  if (oe_numel(g) != n || (b && oe_numel(b) != n)) return oe_lua_fail(L, "sgd", "state sizes differ from the parameter");
  float mom = (float)luaL_checknumber(L, 5);
  if (mom != 0 && !b) return oe_lua_fail(L, "sgd", "momentum needs a buffer");
  oe_sgd_step(oe_f32(p), oe_f32(g), b ? oe_f32(b) : NULL, n, (float)luaL_checknumber(L, 4), mom, (float)luaL_checknumber(L, 6),
              (float)luaL_checknumber(L, 7), lua_toboolean(L, 8), lua_toboolean(L, 9));
  return 0;
}

static const luaL_Reg ops_fns[] = {
  {"binary", o_binary}, {"unary", o_unary}, {"unary_backward", o_unary_backward}, {"sum_to", o_sum_to},
  {"expand", o_expand}, {"axpy_", o_axpy_}, {"mul_", o_mul_}, {"reduce", o_reduce}, {"sum_all", o_sum_all},
  {"sumsq", o_sumsq}, {"all_finite", o_all_finite}, {"topk", o_topk}, {"matmul", o_matmul}, {"linear", o_linear},
  {"linear_backward", o_linear_backward}, {"adamw_step", o_adamw_step}, {"sgd_step", o_sgd_step}, {NULL, NULL}};

void oe_bind_ops(lua_State *L) { luaL_setfuncs(L, ops_fns, 0); }
