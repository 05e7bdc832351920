# gen_onnx_slice_steps.py: spec/fixtures/fuzz/onnx_slice_step_extremes.onnx, a one-node Slice
# with steps INT64_MAX and INT64_MIN (regression of fuzz/onnx_fuzz.c's Slice finding, see
# spec/fuzz_regressions_spec.lua). Run with Debian's python3-onnx:
#   /usr/bin/python3 tools/gen_onnx_slice_steps.py spec/fixtures/fuzz/onnx_slice_step_extremes.onnx
import sys
import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

I64_MAX, I64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min
inits = [numpy_helper.from_array(np.array(v, dtype=np.int64), name) for name, v in
         [("st", [0, 3]), ("en", [3, -10]), ("ax", [1, 2]), ("sp", [I64_MAX, I64_MIN])]]
node = helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="slice_extremes")
graph = helper.make_graph([node], "slice_step_extremes",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="oneencoder tools/gen_onnx_slice_steps.py")
model.ir_version = 8
save(model, sys.argv[1])
