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
 * out (B, L, D) contiguous. scratch: oe_fz_attention_scratch(L) floats per thread. */
void oe_fz_attention(const float *qkv, int64_t ld, int64_t B, int64_t L, int64_t H, int64_t hd, const uint8_t *keep,
                     float *out, float *scratch, int nthreads);
int64_t oe_fz_attention_scratch(int64_t L);

/* Patches of x (B, C, Hh, W) in row-major order, each flattened in (C, P, P) order
 * (a Conv2d with kernel = stride = P reads them so):
 * cols (B * (Hh/P) * (W/P), C * P * P). */
void oe_fz_im2col(const float *x, int64_t B, int64_t C, int64_t Hh, int64_t W, int64_t P, float *cols);
#endif
