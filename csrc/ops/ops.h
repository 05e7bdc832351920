/* ops.h: numeric kernels over flat float32 buffers (llm.c style).
 * Shapes are written in the comments; backward kernels ACCUMULATE (+=) only
 * where stated, otherwise they overwrite. No kernel allocates except where
 * noted, none prints or exits. */
#ifndef OE_OPS_H
#define OE_OPS_H
#include <stdint.h>
#include "../core/tensor.h"
#include "../core/rng.h"

/* ---- elementwise ---- */
typedef enum { OE_ADD, OE_SUB, OE_MUL, OE_DIV, OE_MAXIMUM, OE_MINIMUM, OE_EQ, OE_NE, OE_LT, OE_LE, OE_GT, OE_GE, OE_POW } oe_binop;
typedef enum {
  OE_NEG, OE_EXP, OE_LOG, OE_SQRT, OE_RSQRT, OE_ABS, OE_TANH, OE_SIGMOID, OE_RELU, OE_GELU, OE_GELU_TANH,
  OE_POWS, OE_CLAMP, OE_ADDS, OE_MULS, OE_RSUBS, OE_RDIVS, OE_SQUARE, OE_SIGN
} oe_unop;

/* Broadcast shapes a and b (numpy rules) into out; 0 if incompatible. */
int oe_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb, int *nout, int64_t *sout);
/* out[out_shape] = a op b, a and b broadcast to out_shape. */
void oe_binary_f32(oe_binop op, const float *a, int na, const int64_t *sa, const float *b, int nb,
                   const int64_t *sb, float *out, int nout, const int64_t *sout);
/* out = op(x; p1, p2), n elements */
void oe_unary_f32(oe_unop op, const float *x, float *out, int64_t n, float p1, float p2);
/* gx = d op / dx * g, using x and y = op(x) */
void oe_unary_backward_f32(oe_unop op, const float *x, const float *y, const float *g, float *gx, int64_t n,
                           float p1, float p2);
/* Sum g (shape sg) down to a broadcast-compatible smaller shape st; out overwritten. */
void oe_sum_to_f32(const float *g, int ng, const int64_t *sg, float *out, int nt, const int64_t *st);
/* Copy x (shape sx) broadcast to shape so. */
void oe_expand_f32(const float *x, int nx, const int64_t *sx, float *out, int no, const int64_t *so);
/* y += alpha * x */
void oe_axpy_f32(float *y, const float *x, int64_t n, float alpha);

/* ---- reductions along one dimension: x viewed as (outer, n, inner) ---- */
typedef enum { OE_RSUM, OE_RMEAN, OE_RMAX, OE_RMIN } oe_redop;
/* out (outer, inner); idx (outer, inner) for max/min if not NULL (first index wins) */
void oe_reduce_f32(oe_redop op, const float *x, int64_t outer, int64_t n, int64_t inner, float *out, int64_t *idx);
double oe_sum_all_f32(const float *x, int64_t n);
/* top-k along the last dim, x (rows, n) -> values (rows, k), idx (rows, k); ties by lower index */
int oe_topk_f32(const float *x, int64_t rows, int64_t n, int64_t k, int largest, float *vals, int64_t *idx);

/* ---- matmul ---- */
/* C (M,N) = alpha * op(A) op(B) + beta * C, row-major, through cblas_sgemm. */
void oe_gemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
             const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* the same on the calling thread only, never split (its result depends on the shape alone) */
void oe_gemm_serial(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* ---- nn kernels ---- */
/* softmax / log_softmax over the last dim, x (rows, n) */
void oe_softmax_f32(const float *x, float *y, int64_t rows, int64_t n, int log);
/* gx = y * (g - sum(g*y)) [softmax] or g - exp(y) * sum(g) [log_softmax] */
void oe_softmax_backward_f32(const float *y, const float *g, float *gx, int64_t rows, int64_t n, int log);
/* layer norm over the last dim: x (rows, n), w, b (n) or NULL -> y, mean (rows), rstd (rows) */
void oe_layernorm_forward(const float *x, const float *w, const float *b, float *y, float *mean, float *rstd,
                          int64_t rows, int64_t n, float eps);
/* gx overwritten (if not NULL); gw, gb accumulated (if not NULL) */
void oe_layernorm_backward(const float *x, const float *w, const float *mean, const float *rstd, const float *g,
                           float *gx, float *gw, float *gb, int64_t rows, int64_t n);
/* dropout: y = x * mask / (1 - p); mask (n) bytes 0/1 */
void oe_dropout_forward(oe_rng *r, const float *x, float *y, uint8_t *mask, int64_t n, float p);
/* fused relu + dropout (p may be 0): y only is needed for backward */
void oe_relu_dropout_forward(oe_rng *r, const float *x, float *y, int64_t n, float p);
void oe_relu_dropout_backward(const float *y, const float *g, float *gx, int64_t n, float p);
/* L2 normalise rows: x (rows, n) -> y, norm (rows); y = x / max(norm, eps) */
void oe_l2norm_forward(const float *x, float *y, float *norm, int64_t rows, int64_t n, float eps);
void oe_l2norm_backward(const float *x, const float *y, const float *norm, const float *g, float *gx, int64_t rows,
                        int64_t n, float eps);
/* cross entropy: logits (N, C), targets (N) -> loss (mean over non-ignored), probs (N, C) saved.
 * Returns -1 and sets *bad to the row of an out-of-range target. */
int oe_cross_entropy_forward(const float *logits, const int64_t *targets, int64_t N, int64_t C, int64_t ignore,
                             float smoothing, float *probs, double *loss, int64_t *count, int64_t *bad);
void oe_cross_entropy_backward(const float *probs, const int64_t *targets, int64_t N, int64_t C, int64_t ignore,
                               float smoothing, float gscale, float *glogits);

/* ---- attention ---- */
/* Multi-head scaled dot-product attention on packed rows.
 * q (B, L, *) rows of stride ldq, k, v (B, S, *) strides ldk, ldv, D = H * hd.
 * key_pad (B, S) bytes, 1 = padding (ignored key), or NULL.
 * out (B, L, D) contiguous; probs (B, H, L, S) softmax saved; mask (B, H, L, S)
 * dropout bytes or NULL when p == 0. */
typedef struct oe_attn_args {
  int64_t B, L, S, H, hd;
  const float *q, *k, *v;
  int64_t ldq, ldk, ldv;
  const uint8_t *key_pad;
  float p;
  float *out, *probs;
  uint8_t *mask;
  /* backward */
  const float *gout;
  float *gq, *gk, *gv; /* same row strides as q, k, v; overwritten */
  float *scratch;      /* NULL (allocated per call) or oe_attention_scratch_floats(a, backward) floats */
} oe_attn_args;
/* floats of scratch a call needs: (L, S) per worker with dropout, 2 (L, S) per worker backward */
size_t oe_attention_scratch_floats(const oe_attn_args *a, int backward);
/* OE_OK, or OE_ENOMEM (scratch) before anything is computed or drawn */
int oe_attention_forward(oe_attn_args *a, oe_rng *r, oe_err *e);
int oe_attention_backward(oe_attn_args *a, oe_err *e);

/* ---- optimisers (in place, n elements) ---- */
void oe_adamw_step(float *p, const float *g, float *m, float *v, int64_t n, double lr, double beta1, double beta2,
                   double eps, double wd, int64_t step);
void oe_sgd_step(float *p, const float *g, float *buf, int64_t n, float lr, float momentum, float dampening,
                 float wd, int nesterov, int first);
#endif
