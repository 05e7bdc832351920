/* kernels.h: inference-only kernels of the frozen encoders (no saved state for a
 * backward pass, fused where a pass over memory can be saved). Flat float32
 * buffers, shapes in the comments (B batch, L positions, D width, H heads,
 * hd = D / H). Rows are split over the OpenMP threads; every product goes through
 * oe_gemm. */
#ifndef OE_FROZEN_KERNELS_H
#define OE_FROZEN_KERNELS_H
#include <stdint.h>

/* y (rows, n) = LayerNorm(x) * w + b over the last dim; y == x allowed.
 * When add is not NULL, x += add (a bias row, broadcast over rows) first, in place:
 * the bias of the residual branch's last product joins the norm's pass. */
void oe_fz_add_layernorm(float *x, const float *add, const float *w, const float *b, float *y, int64_t rows, int64_t n,
                         float eps);
/* y (rows, n; row stride ld) += bias (n) */
void oe_fz_add_bias(float *y, const float *bias, int64_t rows, int64_t n, int64_t ld);
/* y (rows, n) = gelu_erf(y + bias), in place */
void oe_fz_bias_gelu(float *y, const float *bias, int64_t rows, int64_t n);
/* y (rows, n) = tanh(y + bias), in place */
void oe_fz_bias_tanh(float *y, const float *bias, int64_t rows, int64_t n);

/* Multi-head self-attention on packed rows, inference only.
 * qkv (B, L, 3D) rows [q | k | v] with row stride ld (>= 3D), heads read in place;
 * keep (B, L) 1 = real key, 0 = padding (NULL: all real). Padded keys get zero
 * weight (as an additive large negative does in PyTorch); a batch item without any
 * real key attends uniformly to all L keys (what PyTorch's additive finfo.min
 * mask gives). When an item's real keys are exactly its first n positions, the
 * products run over those n keys only.
 * Past 256 positions the queries run in blocks of 256 rows (scratch (256, L) per thread).
 * out (B, L, D) contiguous. scratch: oe_fz_attention_scratch(L) floats per thread. */
void oe_fz_attention(const float *qkv, int64_t ld, int64_t B, int64_t L, int64_t H, int64_t hd, const uint8_t *keep,
                     float *out, float *scratch, int nthreads);
int64_t oe_fz_attention_scratch(int64_t L);

/* Patches of x (B, C, Hh, W) in row-major order, each flattened in (C, P, P) order
 * (a Conv2d with kernel = stride = P reads them so):
 * cols (B * (Hh/P) * (W/P), C * P * P). */
void oe_fz_im2col(const float *x, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t P, float *cols);

/* One pre-norm transformer layer (timm / HF ViT, VideoMAE): the weights. Q, K, V are
 * either packed (qkv_w (3D, D), qkv_b (3D)) or separate (q_w, k_w, v_w (D, D) each, with
 * q_b, k_b, v_b (D) each, any of them NULL for no bias: VideoMAE has no key bias). */
typedef struct oe_fz_prenorm_layer {
  const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  const float *qkv_w, *qkv_b;
  const float *q_w, *k_w, *v_w;
  const float *q_b, *k_b, *v_b;
  const float *proj_w, *proj_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} oe_fz_prenorm_layer;

/* x (nb, L, D) in place:  h = LN1(x + *pending); x += attention(h) W_proj^T;
 *                         h = LN2(x + b_proj);   x += gelu(h W_fc1^T + b_fc1) W_fc2^T
 * *pending: a bias (D) not yet added to x (the previous layer's fc2 bias) or NULL; on
 * return it is this layer's fc2 bias, left for the next norm's pass (or the caller).
 * Scratch: h, a (nb*L, D), qkv (nb*L, 3D), mm (nb*L, M); att: attention rows for
 * att_threads threads (oe_fz_attention). Products split over the threads when called
 * outside a parallel region. */
void oe_fz_prenorm_layer_forward(const oe_fz_prenorm_layer *l, float *x, const float **pending, int64_t nb, int64_t L,
                                 int64_t D, int64_t H, int64_t M, float eps, float *h, float *qkv, float *a, float *mm,
                                 float *att, int att_threads);
#endif
