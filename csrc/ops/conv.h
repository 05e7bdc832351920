/* conv.h: forward-only convolution and pooling over NCHW float32 buffers, for frozen
 * encoders (ONNX import, TF.js import). 1-D inputs are 2-D ones with H = 1 and kh = 1.
 *
 *   x (N, C, H, W)  w (M, C / groups, kh, kw)  bias (M) or NULL  ->  y (N, M, OH, OW)
 *   OH = (H + pad_top + pad_bottom - ((kh - 1) * dh + 1)) / sh + 1   (likewise OW)
 *
 * Ordinary convolutions go through im2col and oe_gemm (one product per image and group:
 * y_g (M/g, OH*OW) = w_g (M/g, C/g*kh*kw) x cols (C/g*kh*kw, OH*OW)); a 1x1 convolution with
 * stride 1 and no padding reads x in place. Depthwise convolutions (groups == C, any channel
 * multiplier M / C, up to OE_DW_MAX_TAPS taps) run a direct kernel vectorised along
 * output rows (16 outputs in registers, every tap added before one store). Every output block gets
 * its bias and an optional chain of elementwise post-ops (activation fused into the pass that
 * writes y, while the block is in cache).
 *
 * Threads: a convolution is a grid of independent jobs (image, group, tile of output
 * positions) spread over the OpenMP threads, each job's product on one thread with its own
 * scratch. The jobs follow the shape of one image alone, so an image's outputs have the same
 * bits whatever the batch around it and the thread count.
 * Nothing here allocates, prints or exits; oe_conv_check reports bad geometry. */
#ifndef OE_CONV_H
#define OE_CONV_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

typedef struct oe_conv_shape {
  int64_t N, C, H, W;           /* input */
  int64_t M;                    /* output channels */
  int64_t groups;               /* >= 1, divides C and M */
  int64_t kh, kw;               /* kernel */
  int64_t sh, sw;               /* strides >= 1 */
  int64_t dh, dw;               /* dilations >= 1 */
  int64_t pt, pl, pb, pr;       /* pads top, left, bottom, right >= 0 */
  int64_t OH, OW;               /* filled by oe_conv_check */
} oe_conv_shape;

/* Checks every size (positive, groups dividing C and M, pads >= 0, a non-empty output,
 * every element count within OE_MAX_NUMEL) and fills OH, OW. OE_OK, or OE_EINVAL with
 * the reason in e. */
int oe_conv_check(oe_conv_shape *s, oe_err *e);
/* 1 when the direct depthwise kernel applies (groups == C, so C / groups == 1, at most
 * OE_DW_MAX_TAPS kernel taps and a padded plane of at most 2^24 floats; others take the
 * im2col path) */
#define OE_DW_MAX_TAPS 256
int oe_conv_is_depthwise(const oe_conv_shape *s);

/* ---- elementwise post-ops, applied in order to every output value ---- */
typedef enum {
  OE_POST_RELU,   /* max(x, 0) */
  OE_POST_CLIP,   /* min(max(x, a), b) */
  OE_POST_LEAKY,  /* x >= 0 ? x : a * x */
  OE_POST_MAXC,   /* max(x, a) */
  OE_POST_MINC,   /* min(x, a) */
  OE_POST_ADDC,   /* x + a */
  OE_POST_SUBC,   /* x - a */
  OE_POST_RSUBC,  /* a - x */
  OE_POST_MULC,   /* x * a */
  OE_POST_DIVC,   /* x / a */
  OE_POST_RDIVC,  /* a / x */
  OE_POST_SIGMOID,/* 1 / (1 + exp(-x)) */
  OE_POST_TANH
} oe_post_kind;
#define OE_POST_MAX_OPS 8
typedef struct oe_post {
  int n;
  struct { oe_post_kind kind; float a, b; } op[OE_POST_MAX_OPS];
} oe_post;
/* y (n) = post(y), in place; p NULL or p->n == 0: nothing */
void oe_post_apply(const oe_post *p, float *y, int64_t n);
/* y (rows, n) = post(y + bias[row]) (bias NULL: no bias) */
void oe_post_bias_rows(const oe_post *p, const float *bias, float *y, int64_t rows, int64_t n);

/* ---- convolution ---- */
/* floats of scratch oe_conv_forward needs with nthreads threads (0 for depthwise and
 * for 1x1 convolutions read in place) */
size_t oe_conv_scratch_floats(const oe_conv_shape *s, int nthreads);
/* y = post(conv(x, w) + bias); s checked by oe_conv_check; scratch holds
 * oe_conv_scratch_floats(s, nthreads) floats (nthreads: the OpenMP threads to use, >= 1) */
void oe_conv_forward(const oe_conv_shape *s, const float *x, const float *w, const float *bias, float *y,
                     const oe_post *post, float *scratch, int nthreads);
/* the direct depthwise kernel alone (oe_conv_is_depthwise(s)); scratch holds
 * oe_conv_depthwise_scratch_floats(s, nthreads) floats (a padded copy of one plane per thread) */
size_t oe_conv_depthwise_scratch_floats(const oe_conv_shape *s, int nthreads);
void oe_conv_depthwise(const oe_conv_shape *s, const float *x, const float *w, const float *bias, float *y,
                       const oe_post *post, float *scratch, int nthreads);
/* cols (Cg * kh * kw, p1 - p0) for output positions p0..p1-1 (row-major over OH x OW) of
 * channels c0..c0+Cg-1 of one image x (C, H, W); row stride of cols = p1 - p0 */
void oe_im2col(const oe_conv_shape *s, const float *x_image, int64_t c0, int64_t Cg, int64_t p0, int64_t p1,
               float *cols);

/* ---- pooling (same geometry: M = C, groups and w unused; kh, kw the window) ---- */
/* ceil_mode: output sizes rounded up, a last window starting past the padded end dropped
 * (as ONNX Runtime and PyTorch do). Fills OH, OW. */
int oe_pool_check(oe_conv_shape *s, int ceil_mode, oe_err *e);
/* y (N, C, OH, OW) = max over each window (padding and NaN never win, as in ONNX Runtime) */
void oe_maxpool_forward(const oe_conv_shape *s, const float *x, float *y, int nthreads);
/* y = mean over each window; count_include_pad: divide by the window clipped to the padded
 * input, else by the number of real input elements it covers (dilations must be 1) */
void oe_avgpool_forward(const oe_conv_shape *s, const float *x, float *y, int count_include_pad, int nthreads);
/* y (N, C) = mean over H x W */
void oe_global_avgpool(const float *x, int64_t N, int64_t C, int64_t HW, float *y, int nthreads);
#endif
