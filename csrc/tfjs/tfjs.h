/* tfjs.h: TensorFlow.js layers models (model.json + weight shards), inference only.
 *
 * Loading reads model.json (the Keras topology TF.js saves: a "Sequential" or functional
 * "Model"/"Functional" config, layers wired by inbound_nodes) and its weights manifest
 * (groups of shard files, each group's shards concatenated in manifest order, weights laid
 * out in manifest order: float32, or quantised as uint8 / uint16 with w = min + scale * q, or
 * float16). Every layer's class and configuration is checked (an unsupported class, option
 * or activation fails here, naming the layer), every weight's shape against its layer, the
 * manifest's byte count against the shard files.
 *
 * Layers: InputLayer, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU (max_value),
 * Activation (linear, relu, relu6, sigmoid, tanh, softmax), Softmax, Add, ZeroPadding2D,
 * AveragePooling2D, MaxPooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D, Dense, Dropout,
 * Flatten, Reshape. channels_last only, as TF.js runs them; 'same' padding as TensorFlow
 * computes it (total pad max((ceil(in/s) - 1) * s + (k - 1) * d + 1 - in, 0), the extra
 * pixel at the bottom/right).
 *
 * Layout: TF.js tensors are NHWC. Inside, every 4-D activation is kept NCHW so that the
 * project's convolution kernels (csrc/ops/conv.h, NCHW) run unchanged: kernels are
 * transposed once at load ((kh, kw, Cin, Cout) -> (Cout, Cin, kh, kw); depthwise
 * (kh, kw, C, mult) -> (C * mult, 1, kh, kw)), the input is transposed on entry
 * (or taken as it is when given NCHW) and outputs are returned NHWC, in TF.js's order.
 * Flatten and Reshape read in NHWC order, as Keras does.
 *
 * Folding (default on): a BatchNormalization whose only consumer-side producer is a
 * convolution or Dense layer read by nothing else is folded into its weights
 * (w * gamma / sqrt(var + eps), (b - mean) * gamma / sqrt(var + eps) + beta), and a ReLU /
 * Activation that follows becomes the kernel's post-op; the outputs of the layers folded away
 * are then not available by name (load with fold = 0 to keep every layer's output). At planning,
 * a ZeroPadding2D read only by a convolution, and not asked for, becomes that convolution's pads
 * (no padded copy; the same products, hence the same bits).
 *
 * Nothing here prints or exits; errors name the file and the layer. */
#ifndef OE_TFJS_H
#define OE_TFJS_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

typedef struct oe_tfjs_model oe_tfjs_model;

typedef struct oe_tfjs_opts {
  int fold;                 /* fold BatchNormalization and activations (1, default) */
  size_t max_json_bytes;    /* model.json larger than this is refused (default 64 MB) */
  size_t max_weight_bytes;  /* total shard bytes (default 4 GB) */
} oe_tfjs_opts;
void oe_tfjs_opts_default(oe_tfjs_opts *o);

/* Load path (a model.json; shards are looked up next to it). */
int oe_tfjs_load(const char *path, const oe_tfjs_opts *o, oe_tfjs_model **out, oe_err *e);
/* Parse and check model.json held in memory without reading shards: topology, layer
 * configs and manifest (the sizes the shards would need). For the fuzzer and for specs. */
int oe_tfjs_check_json(const char *buf, size_t len, oe_err *e);
void oe_tfjs_free(oe_tfjs_model *m);

const char *oe_tfjs_path(const oe_tfjs_model *m);
int oe_tfjs_n_layers(const oe_tfjs_model *m);
const char *oe_tfjs_layer_name(const oe_tfjs_model *m, int i);
const char *oe_tfjs_layer_class(const oe_tfjs_model *m, int i);
/* name of the layer whose kernel computes layer i's output when i was folded away, else NULL */
const char *oe_tfjs_layer_folded_into(const oe_tfjs_model *m, int i);
/* index of a layer by name, or -1 */
int oe_tfjs_find_layer(const oe_tfjs_model *m, const char *name);
/* the model's declared outputs (layer indices) */
int oe_tfjs_n_outputs(const oe_tfjs_model *m);
int oe_tfjs_output_layer(const oe_tfjs_model *m, int k);
/* the input layer's declared shape without the batch dim (-1 for None); returns its rank */
int oe_tfjs_input_shape(const oe_tfjs_model *m, int64_t *dims);
/* weights: total float count after conversion, and per manifest dtype counts */
void oe_tfjs_weight_stats(const oe_tfjs_model *m, int64_t *n_weights, int64_t *n_floats, int64_t *n_quantized);

/* Plan a forward for an input of shape x_shape (rank 4: NHWC, or NCHW when nchw) computing
 * the layers listed (indices; n_out >= 1): checks every shape and fills each output's
 * shape (TF.js order, batch first). Returns OE_OK or an error naming the layer. */
int oe_tfjs_plan(oe_tfjs_model *m, int ndim, const int64_t *x_shape, int nchw, const int *outs, int n_out,
                 int out_ndim[], int64_t out_shape[][8], oe_err *e);
/* Run the last plan: x as planned, y[k] holds the planned output k. */
int oe_tfjs_execute(oe_tfjs_model *m, const float *x, float *const *y, oe_err *e);
/* bytes the last plan needs for activations and scratch (what oe_tfjs_execute will hold) */
size_t oe_tfjs_plan_bytes(const oe_tfjs_model *m);
/* bytes held by the activation arena (slots) after the last run */
size_t oe_tfjs_arena_bytes(const oe_tfjs_model *m);

/* TF.js's tf.image.resizeBilinear with alignCorners = true, on float HWC images:
 * src (sh, sw, c) -> dst (dh, dw, c), source position = dst index * (in - 1) / (out - 1)
 * (0 when out == 1), computed in double as TF.js's CPU backend does. */
void oe_tfjs_resize_bilinear_ac(const float *src, int sh, int sw, int c, float *dst, int dh, int dw);
/* one image as nsfwjs feeds it: src uint8 (h, w, c), c = 3 or 1 (gray, repeated) ->
 * dst (size, size, 3) = resize_ac(float(src) / 255) (the division in float, as TF.js's div);
 * scratch: h * w * 3 floats, unused when h == w == size */
void oe_tfjs_image_input(const uint8_t *src, int h, int w, int c, float *dst, int size, float *scratch);
#endif
