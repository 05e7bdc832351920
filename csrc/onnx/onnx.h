/* onnx.h: ONNX models run on the project's kernels (inference only).
 *
 *   oe_onnx_model *m;
 *   if (oe_onnx_load("model.onnx", &m, &e) != OE_OK) ... e.msg names the file and the problem
 *   oe_onnx_plan(m, inputs, &e);            shapes inferred, constants folded, buffers planned
 *   for each output i: oe_onnx_output_shape(m, i, &dt, &ndim, shape) -> allocate outs[i]
 *   oe_onnx_execute(m, inputs, outs, &e);   runs the planned steps
 *
 * Loading parses the ModelProto with protobuf-c (onnx.pb-c.c, generated from ONNX's own
 * onnx.proto), converts every initializer (raw_data or the typed fields) to float32, int64
 * or int32, checks that every node's op is supported at the model's opset (an unsupported
 * op is an error naming the op, the node and the opset), parses the attributes, checks that
 * every node input is a graph input, an initializer or another node's output, and orders
 * the nodes (a cycle is an error). Inputs are given in the order of m's graph inputs
 * (oe_onnx_input); initializers listed among the graph inputs are constants, not inputs.
 *
 * A plan is made once per set of input shapes (and thread count) and kept until the
 * shapes change: shapes and dtypes of every value are inferred node by node, nodes whose
 * inputs are all known before running (initializers, Constant, Shape of a known shape and
 * what is computed from those) are evaluated once at planning, an elementwise op following
 * a Conv/MatMul/Gemm is fused into its output pass, reshapes are views, and the remaining
 * values get offsets in one arena where buffers whose lifetimes do not overlap share bytes.
 * Shape errors (broadcasting, inner dimensions, channel counts, a reshape that does not
 * fit, a dimension past 2^40 elements) are found there and name the node.
 *
 * Nothing prints or exits; failures are a status plus a message: OE_EIO for a file that
 * cannot be read or is not a usable model, OE_EINVAL for inputs or graphs whose shapes do
 * not fit, OE_ENOMEM. Every message starts with the model's path. */
#ifndef OE_ONNX_H
#define OE_ONNX_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

typedef struct oe_onnx_model oe_onnx_model;

/* files larger than this are refused before reading (protobuf's own limit is 2 GB) */
#define OE_ONNX_MAX_FILE_BYTES ((size_t)2 << 30)
/* highest default-domain opset whose semantics are implemented */
#define OE_ONNX_MAX_OPSET 21
#define OE_ONNX_MIN_OPSET 7

int oe_onnx_load(const char *path, oe_onnx_model **out, oe_err *e);
/* the same from bytes already in memory (path is used in messages only) */
int oe_onnx_load_bytes(const char *path, const uint8_t *buf, size_t len, oe_onnx_model **out, oe_err *e);
void oe_onnx_free(oe_onnx_model *m);

/* a graph input or output as the model declares it */
typedef struct oe_onnx_io {
  const char *name;
  int dtype;                         /* oe_dtype, or -1 when undeclared or not supported */
  int onnx_type;                     /* the declared TensorProto elem_type (0: none) */
  int ndim;                          /* -1 when the rank is not declared */
  const int64_t *dims;               /* ndim sizes, -1 where symbolic or unknown */
  const char *const *dim_names;      /* ndim names of symbolic dims (NULL where none) */
} oe_onnx_io;

const char *oe_onnx_path(const oe_onnx_model *m);
int oe_onnx_n_inputs(const oe_onnx_model *m);
int oe_onnx_n_outputs(const oe_onnx_model *m);
void oe_onnx_input(const oe_onnx_model *m, int i, oe_onnx_io *io);
void oe_onnx_output(const oe_onnx_model *m, int i, oe_onnx_io *io);
int oe_onnx_find_input(const oe_onnx_model *m, const char *name);   /* index or -1 */
int oe_onnx_find_output(const oe_onnx_model *m, const char *name);  /* index or -1 */

typedef struct oe_onnx_info {
  int64_t ir_version, opset;
  const char *producer, *producer_version;
  int n_nodes, n_initializers;
  int64_t n_weights;                 /* elements over every initializer */
} oe_onnx_info;
void oe_onnx_get_info(const oe_onnx_model *m, oe_onnx_info *info);
/* node i in execution order: op type and name ("" when unnamed) */
const char *oe_onnx_node_op(const oe_onnx_model *m, int i);
const char *oe_onnx_node_name(const oe_onnx_model *m, int i);
/* the supported ops, NULL-terminated */
const char *const *oe_onnx_supported_ops(void);

/* Plan for these inputs (oe_onnx_n_inputs(m) tensors; only dtype and shape are read).
 * Reuses the current plan when shapes, dtypes and the thread count are unchanged. */
int oe_onnx_plan(oe_onnx_model *m, const oe_tensor *inputs, oe_err *e);
/* after oe_onnx_plan */
void oe_onnx_output_shape(const oe_onnx_model *m, int i, oe_dtype *dt, int *ndim, int64_t *shape);
/* planning statistics: bytes of the activation arena, steps run per call, ops fused away,
 * values folded at planning */
typedef struct oe_onnx_plan_info { size_t arena_bytes; int steps, fused, folded; } oe_onnx_plan_info;
void oe_onnx_get_plan_info(const oe_onnx_model *m, oe_onnx_plan_info *pi);
/* Profiling: when on, every run adds each node's seconds (0 for nodes folded or fused away:
 * a fused op's time is inside its producer's); turning it on clears the sums. Seconds are the
 * process's CPU time when the plan runs on one thread, wall time otherwise. */
int oe_onnx_set_profile(oe_onnx_model *m, int on, oe_err *e);
double oe_onnx_node_seconds(const oe_onnx_model *m, int i); /* node i in execution order */
/* Run the plan: inputs as given to oe_onnx_plan (contiguous, same shapes), outputs allocated
 * by the caller with the planned shapes and dtypes. */
int oe_onnx_execute(oe_onnx_model *m, const oe_tensor *inputs, oe_tensor *outputs, oe_err *e);
#endif
