/* bind/nn.c: softmax, layer norm, dropout, L2 normalisation, cross entropy,
 * masked fill and multi-head attention (forward and backward). */
#include "bind.h"
#include "../ops/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static oe_tensor *check_f32(lua_State *L, int idx, const char *fn, const char *arg) {
  oe_tensor *t = oe_lua_check(L, idx, fn, arg);
  oe_lua_check_dtype(L, t, OE_F32, fn, arg);
  return t;
}
static int64_t last_dim(lua_State *L, const oe_tensor *t, const char *fn) {
  if (t->ndim == 0) oe_lua_fail(L, fn, "needs at least one dimension");
  return t->shape[t->ndim - 1];
}

/* softmax(x, log) over the last dim */
static int n_softmax(lua_State *L) {
  int lg = lua_toboolean(L, 2);
  const char *fn = lg ? "log_softmax" : "softmax";
  oe_tensor *x = check_f32(L, 1, fn, "x");
  int64_t n = last_dim(L, x, fn);
  oe_tensor *y = oe_lua_push_uninit(L, fn, OE_F32, x->ndim, x->shape);
  if (n) oe_softmax_f32(oe_f32(x), oe_f32(y), oe_numel(x) / n, n, lg);
  return 1;
}
static int n_softmax_backward(lua_State *L) {
  oe_tensor *y = check_f32(L, 1, "softmax_backward", "y"), *g = check_f32(L, 2, "softmax_backward", "grad");
  int lg = lua_toboolean(L, 3);
  int64_t n = last_dim(L, y, "softmax_backward");
  if (!oe_same_shape(y, g)) return oe_lua_fail(L, "softmax_backward", "grad shape differs from output shape");
  oe_tensor *gx = oe_lua_push_uninit(L, "softmax_backward", OE_F32, y->ndim, y->shape);
  if (n) oe_softmax_backward_f32(oe_f32(y), oe_f32(g), oe_f32(gx), oe_numel(y) / n, n, lg);
  return 1;
}

static void check_vec(lua_State *L, const oe_tensor *v, int64_t n, const char *fn, const char *arg) {
  if (v && (v->dtype != OE_F32 || oe_numel(v) != n)) {
    char b[160];
    oe_lua_fail(L, fn, "%s of shape %s does not match normalized size %lld", arg, oe_lua_shape_str(v, b, sizeof b), (long long)n);
  }
}

/* layer_norm(x, w, b, eps) -> y, mean, rstd */
static int n_layer_norm(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "layer_norm", "input");
  oe_tensor *w = oe_lua_opt(L, 2, "layer_norm", "weight"), *b = oe_lua_opt(L, 3, "layer_norm", "bias");
  float eps = (float)luaL_optnumber(L, 4, 1e-5);
  int64_t n = last_dim(L, x, "layer_norm");
  check_vec(L, w, n, "layer_norm", "weight");
  check_vec(L, b, n, "layer_norm", "bias");
  int64_t rows = n ? oe_numel(x) / n : 0;
  oe_tensor *y = oe_lua_push_uninit(L, "layer_norm", OE_F32, x->ndim, x->shape);
  oe_tensor *m = oe_lua_push_uninit(L, "layer_norm", OE_F32, 1, &rows);
  oe_tensor *r = oe_lua_push_uninit(L, "layer_norm", OE_F32, 1, &rows);
  if (n) oe_layernorm_forward(oe_f32(x), w ? oe_f32(w) : NULL, b ? oe_f32(b) : NULL, oe_f32(y), oe_f32(m), oe_f32(r), rows, n, eps);
  return 3;
}

/* layer_norm_backward(x, w, mean, rstd, g, need_x, need_w, need_b) -> gx, gw, gb */
static int n_layer_norm_backward(lua_State *L) {
  const char *fn = "layer_norm_backward";
  oe_tensor *x = check_f32(L, 1, fn, "input");
  oe_tensor *w = oe_lua_opt(L, 2, fn, "weight");
  oe_tensor *m = check_f32(L, 3, fn, "mean"), *r = check_f32(L, 4, fn, "rstd"), *g = check_f32(L, 5, fn, "grad");
  int nx = lua_toboolean(L, 6), nw = lua_toboolean(L, 7), nb = lua_toboolean(L, 8);
  int64_t n = last_dim(L, x, fn), rows = n ? oe_numel(x) / n : 0;
  if (!oe_same_shape(x, g) || oe_numel(m) != rows || oe_numel(r) != rows) return oe_lua_fail(L, fn, "shape mismatch");
  check_vec(L, w, n, fn, "weight");
  oe_tensor *gx = nx ? oe_lua_push_uninit(L, fn, OE_F32, x->ndim, x->shape) : (lua_pushnil(L), NULL);
  oe_tensor *gw = nw ? oe_lua_push_new(L, fn, OE_F32, 1, &n) : (lua_pushnil(L), NULL);
  oe_tensor *gb = nb ? oe_lua_push_new(L, fn, OE_F32, 1, &n) : (lua_pushnil(L), NULL);
  if (n)
    oe_layernorm_backward(oe_f32(x), w ? oe_f32(w) : NULL, oe_f32(m), oe_f32(r), oe_f32(g), gx ? oe_f32(gx) : NULL,
                          gw ? oe_f32(gw) : NULL, gb ? oe_f32(gb) : NULL, rows, n);
  return 3;
}

/* dropout(x, p, generator|nil) -> y, mask (uint8) */
static int n_dropout(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "dropout", "input");
  double p = luaL_checknumber(L, 2);
  if (!(p >= 0 && p < 1)) return oe_lua_fail(L, "dropout", "p must be in [0, 1), got %g", p);
  struct oe_rng *rng = oe_lua_rng_opt(L, 3, "dropout");
  oe_tensor *y = oe_lua_push_uninit(L, "dropout", OE_F32, x->ndim, x->shape);
  oe_tensor *m = oe_lua_push_uninit(L, "dropout", OE_U8, x->ndim, x->shape);
  oe_dropout_forward(rng, oe_f32(x), oe_f32(y), (uint8_t *)oe_data(m), oe_numel(x), (float)p);
  return 2;
}

/* relu_dropout(x, p, generator|nil) -> y ; relu_dropout_backward(y, g, p) -> gx */
static int n_relu_dropout(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "relu_dropout", "input");
  double p = luaL_optnumber(L, 2, 0);
  if (!(p >= 0 && p < 1)) return oe_lua_fail(L, "relu_dropout", "p must be in [0, 1), got %g", p);
  struct oe_rng *rng = oe_lua_rng_opt(L, 3, "relu_dropout");
  oe_tensor *y = oe_lua_push_uninit(L, "relu_dropout", OE_F32, x->ndim, x->shape);
  oe_relu_dropout_forward(rng, oe_f32(x), oe_f32(y), oe_numel(x), (float)p);
  return 1;
}
static int n_relu_dropout_backward(lua_State *L) {
  oe_tensor *y = check_f32(L, 1, "relu_dropout_backward", "y"), *g = check_f32(L, 2, "relu_dropout_backward", "grad");
  double p = luaL_optnumber(L, 3, 0);
  if (oe_numel(y) != oe_numel(g)) return oe_lua_fail(L, "relu_dropout_backward", "grad size differs from output size");
  oe_tensor *gx;
  if (lua_toboolean(L, 4)) { /* in place: the caller owns g */
    lua_pushvalue(L, 2);
    gx = g;
  } else {
    gx = oe_lua_push_uninit(L, "relu_dropout_backward", OE_F32, g->ndim, g->shape);
  }
  oe_relu_dropout_backward(oe_f32(y), oe_f32(g), oe_f32(gx), oe_numel(g), (float)p);
  return 1;
}

/* masked_scale(g, mask, scale): g * mask * scale, mask uint8 of the same size */
static int n_masked_scale(lua_State *L) {
  oe_tensor *g = check_f32(L, 1, "dropout_backward", "grad"), *m = oe_lua_check(L, 2, "dropout_backward", "mask");
  oe_lua_check_dtype(L, m, OE_U8, "dropout_backward", "mask");
  float s = (float)luaL_checknumber(L, 3);
  if (oe_numel(m) != oe_numel(g)) return oe_lua_fail(L, "dropout_backward", "mask size differs from grad size");
  oe_tensor *o = oe_lua_push_uninit(L, "dropout_backward", OE_F32, g->ndim, g->shape);
  const float *pg = oe_f32(g);
  const uint8_t *pm = oe_data(m);
  float *po = oe_f32(o);
  int64_t n = oe_numel(g);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) po[i] = pm[i] ? pg[i] * s : 0.0f;
  return 1;
}

/* masked_fill(x, mask, value): mask uint8 broadcastable to x; where mask != 0, value */
static int n_masked_fill(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "masked_fill", "input"), *m = oe_lua_check(L, 2, "masked_fill", "mask");
  oe_lua_check_dtype(L, m, OE_U8, "masked_fill", "mask");
  float v = (float)luaL_checknumber(L, 3);
  int nd;
  int64_t shape[OE_MAX_DIMS];
  if (!oe_broadcast_shape(x->ndim, x->shape, m->ndim, m->shape, &nd, shape) || nd != x->ndim || memcmp(shape, x->shape, sizeof(int64_t) * (size_t)nd)) {
    char a[160], b[160];
    return oe_lua_fail(L, "masked_fill", "mask of shape %s does not broadcast to input of shape %s", oe_lua_shape_str(m, a, sizeof a), oe_lua_shape_str(x, b, sizeof b));
  }
  oe_tensor *o = oe_lua_push_uninit(L, "masked_fill", OE_F32, x->ndim, x->shape);
  int64_t n = oe_numel(x);
  /* expand the mask as float through the broadcasting kernel, then select */
  oe_tensor tmp = {0};
  oe_err e;
  if (oe_tensor_alloc(&tmp, OE_F32, nd, shape, &e)) return oe_lua_fail(L, "masked_fill", "%s", e.msg);
  int64_t nm = oe_numel(m);
  float *mf = malloc(sizeof(float) * (size_t)(nm ? nm : 1));
  if (!mf) { oe_tensor_release(&tmp); return oe_lua_fail(L, "masked_fill", "out of memory"); }
  for (int64_t i = 0; i < nm; i++) mf[i] = ((const uint8_t *)oe_data(m))[i] ? 1.0f : 0.0f;
  if (n) oe_expand_f32(mf, m->ndim, m->shape, oe_f32(&tmp), nd, shape);
  free(mf);
  const float *px = oe_f32(x), *pm = oe_f32(&tmp);
  float *po = oe_f32(o);
  for (int64_t i = 0; i < n; i++) po[i] = pm[i] != 0.0f ? v : px[i];
  oe_tensor_release(&tmp);
  return 1;
}

/* l2norm(x, eps) -> y, norm */
static int n_l2norm(lua_State *L) {
  oe_tensor *x = check_f32(L, 1, "normalize", "input");
  float eps = (float)luaL_optnumber(L, 2, 1e-12);
  int64_t n = last_dim(L, x, "normalize"), rows = n ? oe_numel(x) / n : 0;
  oe_tensor *y = oe_lua_push_uninit(L, "normalize", OE_F32, x->ndim, x->shape);
  oe_tensor *nr = oe_lua_push_uninit(L, "normalize", OE_F32, 1, &rows);
  if (n) oe_l2norm_forward(oe_f32(x), oe_f32(y), oe_f32(nr), rows, n, eps);
  return 2;
}
static int n_l2norm_backward(lua_State *L) {
  const char *fn = "normalize_backward";
  oe_tensor *x = check_f32(L, 1, fn, "input"), *y = check_f32(L, 2, fn, "y"), *nr = check_f32(L, 3, fn, "norm"), *g = check_f32(L, 4, fn, "grad");
  float eps = (float)luaL_optnumber(L, 5, 1e-12);
  int64_t n = last_dim(L, x, fn), rows = n ? oe_numel(x) / n : 0;
  if (!oe_same_shape(x, g) || oe_numel(nr) != rows) return oe_lua_fail(L, fn, "shape mismatch");
  oe_tensor *gx = oe_lua_push_uninit(L, fn, OE_F32, x->ndim, x->shape);
  if (n) oe_l2norm_backward(oe_f32(x), oe_f32(y), oe_f32(nr), oe_f32(g), oe_f32(gx), rows, n, eps);
  return 1;
}

static const oe_tensor *check_targets(lua_State *L, int idx, int64_t N, const char *fn) {
  oe_tensor *t = oe_lua_check(L, idx, fn, "target");
  if (t->dtype != OE_I64) oe_lua_fail(L, fn, "target must be int64 class ids, got %s", oe_dtype_name(t->dtype));
  if (oe_numel(t) != N) oe_lua_fail(L, fn, "target has %lld entries for %lld rows of logits", (long long)oe_numel(t), (long long)N);
  return t;
}

/* cross_entropy(logits (N, C), target (N) int64, ignore_index, smoothing) -> loss, probs, count */
static int n_cross_entropy(lua_State *L) {
  const char *fn = "cross_entropy";
  oe_tensor *x = check_f32(L, 1, fn, "input");
  if (x->ndim != 2) {
    char b[160];
    return oe_lua_fail(L, fn, "input must be (N, C) logits, got shape %s", oe_lua_shape_str(x, b, sizeof b));
  }
  int64_t N = x->shape[0], C = x->shape[1];
  const oe_tensor *t = check_targets(L, 2, N, fn);
  int64_t ignore = luaL_optinteger(L, 3, -100);
  float sm = (float)luaL_optnumber(L, 4, 0);
  oe_tensor *p = oe_lua_push_uninit(L, fn, OE_F32, 2, x->shape);
  double loss;
  int64_t cnt, bad;
  if (oe_cross_entropy_forward(oe_f32(x), oe_data(t), N, C, ignore, sm, oe_f32(p), &loss, &cnt, &bad))
    return oe_lua_fail(L, fn, "target %lld at row %lld is out of range 0..%lld", (long long)((const int64_t *)oe_data(t))[bad],
                       (long long)(bad + 1), (long long)(C - 1));
  lua_pushnumber(L, loss);
  lua_insert(L, -2);
  lua_pushinteger(L, cnt);
  return 3;
}
/* cross_entropy_backward(probs, target, ignore, smoothing, gscale) -> glogits */
static int n_cross_entropy_backward(lua_State *L) {
  const char *fn = "cross_entropy_backward";
  oe_tensor *p = check_f32(L, 1, fn, "probs");
  int64_t N = p->shape[0], C = p->shape[1];
  const oe_tensor *t = check_targets(L, 2, N, fn);
  oe_tensor *g = oe_lua_push_uninit(L, fn, OE_F32, 2, p->shape);
  oe_cross_entropy_backward(oe_f32(p), oe_data(t), N, C, luaL_optinteger(L, 3, -100), (float)luaL_optnumber(L, 4, 0),
                            (float)luaL_checknumber(L, 5), oe_f32(g));
  return 1;
}

/* attention(q, k, v, heads, key_padding_mask|nil, p, generator|nil) -> out, probs, mask|nil
 * Separate: q (B, L, D), k, v (B, S, D). Packed (q given as qkv (B, L, 3D), k and v nil). */
static void attn_setup(lua_State *L, oe_attn_args *a, const char *fn, oe_tensor **qt, oe_tensor **kt, oe_tensor **vt, int *packed) {
  memset(a, 0, sizeof *a);
  oe_tensor *q = check_f32(L, 1, fn, "query");
  oe_tensor *k = lua_isnoneornil(L, 2) ? NULL : check_f32(L, 2, fn, "key");
  oe_tensor *v = lua_isnoneornil(L, 3) ? NULL : check_f32(L, 3, fn, "value");
  lua_Integer H = luaL_checkinteger(L, 4);
  char s1[160], s2[160], s3[160];
  if (q->ndim != 3) oe_lua_fail(L, fn, "query must be (B, L, D), got %s", oe_lua_shape_str(q, s1, sizeof s1));
  *packed = !k && !v;
  int64_t B = q->shape[0], Lq = q->shape[1], D;
  if (*packed) {
    if (q->shape[2] % 3) oe_lua_fail(L, fn, "packed qkv last size %lld is not a multiple of 3", (long long)q->shape[2]);
    D = q->shape[2] / 3;
    a->S = Lq;
    a->q = oe_f32(q); a->k = a->q + D; a->v = a->q + 2 * D;
    a->ldq = a->ldk = a->ldv = 3 * D;
  } else {
    if (!k || !v) oe_lua_fail(L, fn, "key and value must both be given");
    D = q->shape[2];
    if (k->ndim != 3 || v->ndim != 3 || k->shape[0] != B || v->shape[0] != B || k->shape[2] != D || v->shape[2] != D || k->shape[1] != v->shape[1])
      oe_lua_fail(L, fn, "query %s, key %s and value %s shapes do not match", oe_lua_shape_str(q, s1, sizeof s1),
                  oe_lua_shape_str(k, s2, sizeof s2), oe_lua_shape_str(v, s3, sizeof s3));
    a->S = k->shape[1];
    a->q = oe_f32(q); a->k = oe_f32(k); a->v = oe_f32(v);
    a->ldq = a->ldk = a->ldv = D;
  }
  if (H < 1 || D % H) oe_lua_fail(L, fn, "embed dim %lld is not divisible by %lld heads", (long long)D, (long long)H);
  a->B = B; a->L = Lq; a->H = H; a->hd = D / H;
  *qt = q; *kt = k; *vt = v;
}

static const uint8_t *attn_mask_arg(lua_State *L, int idx, int64_t B, int64_t S, const char *fn) {
  if (lua_isnoneornil(L, idx)) return NULL;
  oe_tensor *m = oe_lua_check(L, idx, fn, "key_padding_mask");
  oe_lua_check_dtype(L, m, OE_U8, fn, "key_padding_mask");
  if (m->ndim != 2 || m->shape[0] != B || m->shape[1] != S) {
    char b[160];
    oe_lua_fail(L, fn, "key_padding_mask must be (B, S) = (%lld, %lld), got %s", (long long)B, (long long)S, oe_lua_shape_str(m, b, sizeof b));
  }
  return oe_data(m);
}

static int n_attention(lua_State *L) {
  const char *fn = "attention";
  oe_attn_args a;
  oe_tensor *q, *k, *v;
  int packed;
  attn_setup(L, &a, fn, &q, &k, &v, &packed);
  a.key_pad = attn_mask_arg(L, 5, a.B, a.S, fn);
  double p = luaL_optnumber(L, 6, 0);
  if (!(p >= 0 && p < 1)) return oe_lua_fail(L, fn, "dropout p must be in [0, 1), got %g", p);
  a.p = (float)p;
  struct oe_rng *rng = oe_lua_rng_opt(L, 7, fn);
  int64_t so[3] = {a.B, a.L, a.H * a.hd}, sp[4] = {a.B, a.H, a.L, a.S};
  oe_tensor *out = a.S ? oe_lua_push_uninit(L, fn, OE_F32, 3, so) : oe_lua_push_new(L, fn, OE_F32, 3, so);
  oe_tensor *pr = oe_lua_push_uninit(L, fn, OE_F32, 4, sp);
  oe_tensor *mk = a.p > 0 ? oe_lua_push_uninit(L, fn, OE_U8, 4, sp) : (lua_pushnil(L), NULL);
  a.out = oe_f32(out);
  a.probs = oe_f32(pr);
  a.mask = mk ? (uint8_t *)oe_data(mk) : NULL;
  oe_err e;
  if (oe_numel(out) && a.S && oe_attention_forward(&a, rng, &e) != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  return 3;
}

/* attention_backward(q, k, v, heads, probs, mask|nil, p, gout) -> gq, gk, gv (packed: gqkv) */
static int n_attention_backward(lua_State *L) {
  const char *fn = "attention_backward";
  oe_attn_args a;
  oe_tensor *q, *k, *v;
  int packed;
  attn_setup(L, &a, fn, &q, &k, &v, &packed);
  oe_tensor *pr = check_f32(L, 5, fn, "probs");
  oe_tensor *mk = oe_lua_opt(L, 6, fn, "mask");
  a.p = (float)luaL_optnumber(L, 7, 0);
  oe_tensor *go = check_f32(L, 8, fn, "grad");
  if (oe_numel(pr) != a.B * a.H * a.L * a.S || (mk && oe_numel(mk) != oe_numel(pr)) || oe_numel(go) != a.B * a.L * a.H * a.hd)
    return oe_lua_fail(L, fn, "saved tensors do not match the inputs");
  a.probs = oe_f32(pr);
  a.mask = mk ? (uint8_t *)oe_data(mk) : NULL;
  a.gout = oe_f32(go);
  if (packed) {
    oe_tensor *g = a.S ? oe_lua_push_uninit(L, fn, OE_F32, 3, q->shape) : oe_lua_push_new(L, fn, OE_F32, 3, q->shape);
    int64_t D = a.H * a.hd;
    a.gq = oe_f32(g); a.gk = a.gq + D; a.gv = a.gq + 2 * D;
    oe_err e;
    if (oe_numel(g) && a.S && oe_attention_backward(&a, &e) != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
    return 1;
  }
  oe_tensor *gq = a.S ? oe_lua_push_uninit(L, fn, OE_F32, 3, q->shape) : oe_lua_push_new(L, fn, OE_F32, 3, q->shape);
  oe_tensor *gk = a.S ? oe_lua_push_uninit(L, fn, OE_F32, 3, k->shape) : oe_lua_push_new(L, fn, OE_F32, 3, k->shape);
  oe_tensor *gv = a.S ? oe_lua_push_uninit(L, fn, OE_F32, 3, v->shape) : oe_lua_push_new(L, fn, OE_F32, 3, v->shape);
  a.gq = oe_f32(gq); a.gk = oe_f32(gk); a.gv = oe_f32(gv);
  oe_err e;
  if (oe_numel(gq) && a.S && oe_attention_backward(&a, &e) != OE_OK) return oe_lua_fail(L, fn, "%s", e.msg);
  return 3;
}

static const luaL_Reg nn_fns[] = {
  {"softmax", n_softmax}, {"softmax_backward", n_softmax_backward}, {"layer_norm", n_layer_norm},
  {"layer_norm_backward", n_layer_norm_backward}, {"dropout", n_dropout}, {"relu_dropout", n_relu_dropout}, {"relu_dropout_backward", n_relu_dropout_backward}, {"masked_scale", n_masked_scale},
  {"masked_fill", n_masked_fill}, {"l2norm", n_l2norm}, {"l2norm_backward", n_l2norm_backward},
  {"cross_entropy", n_cross_entropy}, {"cross_entropy_backward", n_cross_entropy_backward},
  {"attention", n_attention}, {"attention_backward", n_attention_backward}, {NULL, NULL}};

void oe_bind_nn(lua_State *L) { luaL_setfuncs(L, nn_fns, 0); }
