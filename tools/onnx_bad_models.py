"""Broken ONNX models for spec/onnx_spec.lua's bad-input cases, built with Debian's
python3-onnx (development tool only):

    /usr/bin/python3 tools/onnx_bad_models.py spec/fixtures/onnx/bad

Each file breaks one rule; the spec states the error it expects. Truncated, bit-flipped and
deeply nested files are made by the spec itself from good ones.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, inits=(), opset=13, name="bad"):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8,
                             producer_name="oneencoder tools/onnx_bad_models.py")


def vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def build():
    x = vi("x", [2, 3])
    y = vi("y", None)
    w = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    out = {}
    # a cycle: a = x + c, c = relu(a)
    out["cycle"] = model([helper.make_node("Add", ["x", "c"], ["a"], name="add_in_cycle"),
                          helper.make_node("Relu", ["a"], ["c"], name="relu_in_cycle"),
                          helper.make_node("Identity", ["c"], ["y"], name="out")], [x], [y])
    # a node reading its own output
    out["self_loop"] = model([helper.make_node("Add", ["x", "y"], ["y"], name="feeds_itself")], [x], [y])
    # the weight is neither an input nor an initializer
    out["missing_initializer"] = model([helper.make_node("MatMul", ["x", "w_missing"], ["y"], name="proj")], [x], [y])
    # an op outside the supported set, and one from another domain
    out["unknown_op"] = model([helper.make_node("NonMaxSuppression", ["x", "x"], ["y"], name="mystery_node")], [x], [y],
                              opset=17)
    out["custom_domain"] = model([helper.make_node("FusedConv", ["x"], ["y"], name="ms_node", domain="com.microsoft")],
                                 [x], [y])
    # initializer dims whose product passes 2^40 elements, and a negative dim
    big = TensorProto(name="w", data_type=F, dims=[1 << 21, 1 << 21])
    out["dims_overflow"] = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], inits=[big])
    neg = TensorProto(name="w", data_type=F, dims=[3, -3])
    out["negative_dim"] = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], inits=[neg])
    # raw_data of the wrong size, typed data of the wrong count, an unsupported data type
    short = TensorProto(name="w", data_type=F, dims=[3, 3], raw_data=b"\0" * 32)
    out["raw_data_size"] = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], inits=[short])
    few = TensorProto(name="w", data_type=F, dims=[3, 3], float_data=[1.0] * 8)
    out["typed_count"] = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], inits=[few])
    dbl = numpy_helper.from_array(np.ones((3, 3), np.float64), "w")
    out["double_initializer"] = model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], inits=[dbl])
    # shapes that do not fit (found when planning for the declared input shape)
    out["matmul_mismatch"] = model([helper.make_node("MatMul", ["x", "w4"], ["y"], name="proj")], [x], [y],
                                   inits=[numpy_helper.from_array(np.ones((4, 5), np.float32), "w4")])
    out["broadcast_mismatch"] = model([helper.make_node("Add", ["x", "b"], ["y"], name="bias")], [x], [y],
                                      inits=[numpy_helper.from_array(np.ones((4,), np.float32), "b")])
    out["reshape_mismatch"] = model([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")], [x], [y],
                                    inits=[numpy_helper.from_array(np.array([4, -1], np.int64), "s")])
    out["conv_channels"] = model([helper.make_node("Conv", ["x4", "wc"], ["y"], name="conv")], [vi("x4", [1, 3, 5, 5])], [y],
                                 inits=[numpy_helper.from_array(np.ones((2, 4, 3, 3), np.float32), "wc")])
    # a computed shape past 2^40 elements
    out["expand_overflow"] = model([helper.make_node("Expand", ["x", "s"], ["y"], name="expand")], [x], [y],
                                   inits=[numpy_helper.from_array(np.array([1 << 20, 1 << 20, 2, 3], np.int64), "s")])
    # a dynamic shape input (must be known before running)
    out["dynamic_shape"] = model([helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")],
                                 [x, vi("s", [2], TensorProto.INT64)], [y])
    # opsets: none of the default domain, one too new
    m = model([helper.make_node("Relu", ["x"], ["y"])], [x], [y])
    del m.opset_import[:]
    m.opset_import.append(helper.make_opsetid("ai.onnx.ml", 2))
    out["no_opset"] = m
    out["opset_too_new"] = model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=99)
    # an output nothing produces, and a value produced twice
    out["output_not_produced"] = model([helper.make_node("Relu", ["x"], ["r"])], [x], [vi("nowhere", None)])
    out["produced_twice"] = model([helper.make_node("Relu", ["x"], ["y"], name="first"),
                                   helper.make_node("Neg", ["x"], ["y"], name="second")], [x], [y])
    # Gather with an index out of range in the data (found when running)
    out["gather_out_of_range"] = model([helper.make_node("Gather", ["x", "i"], ["y"], name="gather")],
                                       [x, vi("i", [2], TensorProto.INT64)], [y])
    # integer division by zero (found when running)
    out["int_div_zero"] = model([helper.make_node("Div", ["a", "b"], ["y"], name="div")],
                                [vi("a", [3], TensorProto.INT64), vi("b", [3], TensorProto.INT64)], [vi("y", None, TensorProto.INT64)])
    # a bad attribute: kernel_shape with a zero, and a 3-D convolution
    out["bad_attribute"] = model([helper.make_node("MaxPool", ["x4"], ["y"], name="pool", kernel_shape=[0, 2])],
                                 [vi("x4", [1, 3, 5, 5])], [y])
    out["conv3d"] = model([helper.make_node("Conv", ["x5", "w5"], ["y"], name="conv3d", kernel_shape=[1, 1, 1])],
                          [vi("x5", [1, 1, 2, 2, 2])], [y],
                          inits=[numpy_helper.from_array(np.ones((1, 1, 1, 1, 1), np.float32), "w5")])
    return out


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    for name, m in sorted(build().items()):
        with open(os.path.join(outdir, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())
    print("onnx_bad_models: %d files in %s" % (len(build()), outdir))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
