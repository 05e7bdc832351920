/* onnx_fuzz.c: the ONNX loader and planner (csrc/onnx) on arbitrary files: protobuf parse
 * (protobuf-c behind the loader's nesting check), initializers, attributes, opset and op
 * checks, graph resolution and ordering; then, for a model that loads, a plan for a fixed
 * small input shape and two runs of it.
 *
 * Inputs of the model get their declared dtype (float32 when undeclared) and shape, with
 * every unknown or symbolic dimension set to 2 and an undeclared rank taken as (2, 2);
 * models whose inputs would exceed 2^16 elements are loaded but not planned. float32 inputs
 * hold sin(i), integer inputs i mod 3 (small, valid as indices and axes in many graphs).
 * Plans whose arena passes 64 MB or outputs 2^22 elements are not run (memory, not bugs).
 * Beyond "no crash, no leak, no undefined behaviour" the harness checks: every failure has
 * a message that starts with the model's path; a model that loads has consistent inputs,
 * outputs and nodes; output shapes are within the element limit; the second run, reusing
 * the plan, gives the same bytes as the first (one thread). */
#include "fuzz_common.h"
#include "../csrc/core/util.h"
#include "../csrc/onnx/onnx.h"
#include <math.h>
#include <omp.h>

#define PATH "fuzz.onnx"
#define MAX_IN_NUMEL (1 << 16)
#define MAX_OUT_NUMEL (1 << 22)
#define MAX_ARENA ((size_t)64 << 20)

extern void openblas_set_num_threads(int);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  return 0;
}

static void check_msg(const oe_err *e) {
  FUZZ_CHECK_MSG(*e);
  FUZZ_CHECK(strncmp(e->msg, PATH, strlen(PATH)) == 0, "message without the model's path: %s", e->msg);
}

static void check_model(const oe_onnx_model *m) {
  oe_onnx_info info;
  oe_onnx_get_info(m, &info);
  FUZZ_CHECK(info.opset >= OE_ONNX_MIN_OPSET && info.opset <= OE_ONNX_MAX_OPSET, "opset %lld", (long long)info.opset);
  FUZZ_CHECK(info.n_nodes >= 0 && info.n_initializers >= 0 && info.n_weights >= 0, "info");
  for (int i = 0; i < info.n_nodes; i++)
    FUZZ_CHECK(oe_onnx_node_op(m, i) && oe_onnx_node_name(m, i), "node %d", i);
  for (int i = 0; i < oe_onnx_n_inputs(m); i++) {
    oe_onnx_io io;
    oe_onnx_input(m, i, &io);
    FUZZ_CHECK(io.name && oe_onnx_find_input(m, io.name) >= 0, "input %d", i);
    FUZZ_CHECK(io.ndim >= -1 && io.ndim <= 64 && (io.ndim <= 0 || io.dims), "input %d rank %d", i, io.ndim);
  }
  for (int i = 0; i < oe_onnx_n_outputs(m); i++) {
    oe_onnx_io io;
    oe_onnx_output(m, i, &io);
    FUZZ_CHECK(io.name && oe_onnx_find_output(m, io.name) >= 0, "output %d", i);
  }
}

/* input tensors for the fixed shape; 0 when the model's inputs are too large to plan */
static int make_inputs(const oe_onnx_model *m, oe_tensor *in) {
  for (int i = 0; i < oe_onnx_n_inputs(m); i++) {
    oe_onnx_io io;
    oe_onnx_input(m, i, &io);
    int64_t shape[OE_MAX_DIMS];
    int ndim = io.ndim < 0 ? 2 : io.ndim;
    if (ndim > OE_MAX_DIMS) return 0;
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
      shape[d] = io.ndim < 0 || io.dims[d] < 0 ? 2 : io.dims[d];
      if (shape[d] > MAX_IN_NUMEL) return 0;
      numel *= shape[d];
      if (numel > MAX_IN_NUMEL) return 0;
    }
    oe_dtype dt = io.dtype < 0 ? OE_F32 : (oe_dtype)io.dtype;
    oe_err e;
    FUZZ_CHECK(oe_tensor_alloc(&in[i], dt, ndim, shape, &e) == OE_OK, "alloc: %s", e.msg);
    for (int64_t k = 0; k < numel; k++) {
      switch (dt) {
        case OE_F32: oe_f32(&in[i])[k] = sinf((float)k); break;
        case OE_I64: ((int64_t *)oe_data(&in[i]))[k] = k % 3; break;
        case OE_I32: ((int32_t *)oe_data(&in[i]))[k] = (int32_t)(k % 3); break;
        case OE_U8: ((uint8_t *)oe_data(&in[i]))[k] = (uint8_t)(k % 3); break;
      }
    }
  }
  return 1;
}

/* run the plan into fresh outputs; 1 when it ran */
static int run(oe_onnx_model *m, const oe_tensor *in, oe_tensor *out, int n_out) {
  for (int i = 0; i < n_out; i++) {
    oe_dtype dt;
    int ndim;
    int64_t shape[OE_MAX_DIMS];
    oe_onnx_output_shape(m, i, &dt, &ndim, shape);
    FUZZ_CHECK(ndim >= 0 && ndim <= OE_MAX_DIMS, "output %d rank %d", i, ndim);
    int64_t numel = oe_numel_of(ndim, shape);
    FUZZ_CHECK(numel >= 0 && numel <= (INT64_C(1) << 40), "output %d has %lld elements", i, (long long)numel);
    if (numel > MAX_OUT_NUMEL) return 0;
    oe_err e;
    FUZZ_CHECK(oe_tensor_alloc(&out[i], dt, ndim, shape, &e) == OE_OK, "alloc: %s", e.msg);
  }
  oe_err e;
  if (oe_onnx_execute(m, in, out, &e) != OE_OK) {
    check_msg(&e);
    return 0;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  oe_onnx_model *m = NULL;
  oe_err e;
  if (oe_onnx_load_bytes(PATH, data, len, &m, &e) != OE_OK) {
    check_msg(&e);
    FUZZ_CHECK(m == NULL, "model left after a failed load");
    return 0;
  }
  check_model(m);
  int n_in = oe_onnx_n_inputs(m), n_out = oe_onnx_n_outputs(m);
  oe_tensor *in = calloc((size_t)n_in + 1, sizeof *in);
  oe_tensor *out1 = calloc((size_t)n_out + 1, sizeof *out1), *out2 = calloc((size_t)n_out + 1, sizeof *out2);
  FUZZ_CHECK(in && out1 && out2, "oom");
  if (make_inputs(m, in)) {
    if (oe_onnx_plan(m, in, &e) != OE_OK) {
      check_msg(&e);
    } else {
      oe_onnx_plan_info pi;
      oe_onnx_get_plan_info(m, &pi);
      if (pi.arena_bytes <= MAX_ARENA && run(m, in, out1, n_out) && run(m, in, out2, n_out)) {
        for (int i = 0; i < n_out; i++) {
          size_t nb = (size_t)oe_numel(&out1[i]) * oe_dtype_size(out1[i].dtype);
          FUZZ_CHECK(nb == 0 || memcmp(oe_data(&out1[i]), oe_data(&out2[i]), nb) == 0, "output %d differs between runs", i);
        }
      }
    }
  }
  for (int i = 0; i < n_in; i++) oe_tensor_release(&in[i]);
  for (int i = 0; i < n_out; i++) oe_tensor_release(&out1[i]), oe_tensor_release(&out2[i]);
  free(in), free(out1), free(out2);
  oe_onnx_free(m);
  return 0;
}
