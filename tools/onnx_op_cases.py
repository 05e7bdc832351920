"""One-node ONNX models for every supported op, with broadcasting and attribute variants,
plus a few small multi-node graphs (computed shapes, fused activations, buffer reuse).
Development tool, run by tools/onnx_op_fixtures.sh with Debian's python3-onnx:

    /usr/bin/python3 tools/onnx_op_cases.py make  MODEL_DIR cases.json
    /usr/bin/python3 tools/onnx_op_cases.py pack  cases.json results.json OUT.safetensors

`make` writes MODEL_DIR/<case>.onnx and cases.json (inputs, base64) for tools/onnx_ort_run.js;
`pack` joins the inputs and ONNX Runtime's outputs into one safetensors file: tensors
"<case>/in/<i>" and "<case>/out/<i>" (1-based, the model's input and output order), and the
metadata entry "cases": one line per case "<name> <exact|close> <inputs> <outputs>".
exact: the project's result must equal ONNX Runtime's bit for bit (data movement, integer
arithmetic, max/min, ReLU); close: within 1e-5 relative (spec/onnx_spec.lua states the bound).
"""
import base64
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

RNG = np.random.default_rng(20261203)
F, I64, I32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
NP = {F: np.float32, I64: np.int64, I32: np.int32}
CASES = []


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def positive(*shape):
    return (RNG.random(shape) * 3 + 0.05).astype(np.float32)


def typed_init(name, arr):
    """an initializer in the typed fields (float_data / int64_data / int32_data), not raw_data"""
    t = {np.dtype(np.float32): F, np.dtype(np.int64): I64, np.dtype(np.int32): I32}[arr.dtype]
    return helper.make_tensor(name, t, list(arr.shape), arr.flatten().tolist(), raw=False)


def case(name, nodes, inputs, outputs, inits=(), opset=13, exact=False, dims=None):
    """inputs: [(name, array)]; outputs: [(name, elem_type)]; inits: TensorProtos;
    dims: {input name: declared shape with names for symbolic dims} (default: the array's)"""
    g = helper.make_graph(
        nodes if isinstance(nodes, list) else [nodes], name,
        [helper.make_tensor_value_info(n, {np.dtype(np.float32): F, np.dtype(np.int64): I64,
                                           np.dtype(np.int32): I32}[a.dtype], (dims or {}).get(n, list(a.shape)))
         for n, a in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        initializer=list(inits))
    ir = 10 if opset >= 20 else 9 if opset >= 18 else 8
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir,
                          producer_name="oneencoder tools/onnx_op_cases.py")
    CASES.append({"name": name, "model": m, "inputs": inputs, "outputs": [n for n, _ in outputs], "exact": exact})


def node(op, ins, outs=("y",), **attrs):
    return helper.make_node(op, list(ins), list(outs), name=op.lower() + "_0", **attrs)


def define():
    x234 = randn(2, 3, 4)
    # ---- unary ----
    for op, data, kw, ex in [
            ("Relu", x234, {}, True), ("LeakyRelu", x234, {}, True), ("Log", positive(2, 3, 4), {}, False),
            ("Sigmoid", randn(2, 3, 4) * 4, {}, False), ("Tanh", randn(2, 3, 4) * 2, {}, False),
            ("Erf", randn(2, 3, 4), {}, False), ("Sqrt", positive(2, 3, 4), {}, False),
            ("Exp", randn(2, 3, 4), {}, False), ("Neg", x234, {}, True), ("Abs", x234, {}, True),
            ("Reciprocal", positive(2, 3, 4), {}, False)]:
        case(op, node(op, ["x"], **kw), [("x", data)], [("y", F)], exact=ex)
    case("LeakyRelu_alpha", node("LeakyRelu", ["x"], alpha=0.3), [("x", x234)], [("y", F)], exact=True)
    case("Gelu", node("Gelu", ["x"]), [("x", randn(3, 5) * 2)], [("y", F)], opset=20)
    case("Gelu_tanh", node("Gelu", ["x"], approximate="tanh"), [("x", randn(3, 5) * 2)], [("y", F)], opset=20)

    # ---- binary with broadcasting ----
    shapes = [("same", (2, 3, 4), (2, 3, 4)), ("row", (2, 3, 4), (4,)), ("cross", (2, 1, 4), (3, 1)),
              ("scalar", (2, 3, 4), ()), ("lead", (1,), (2, 3))]
    for op in ["Add", "Sub", "Mul", "Div"]:
        for tag, sa, sb in shapes:
            b = randn(*sb) if op != "Div" else (positive(*sb) * np.where(RNG.random(sb) < 0.5, -1, 1)).astype(np.float32)
            case(f"{op}_{tag}", node(op, ["a", "b"]), [("a", randn(*sa)), ("b", np.asarray(b, np.float32))], [("y", F)],
                 exact=op != "Div")
        case(f"{op}_int64", node(op, ["a", "b"]),
             [("a", RNG.integers(-50, 50, (2, 3)).astype(np.int64)), ("b", RNG.integers(1, 7, (3,)).astype(np.int64))],
             [("y", I64)], exact=True)
    case("Pow_broadcast", node("Pow", ["a", "b"]), [("a", positive(2, 3, 4)), ("b", randn(4))], [("y", F)])
    case("Pow_square_init", node("Pow", ["a", "two"]), [("a", randn(2, 3, 4))], [("y", F)],
         inits=[numpy_helper.from_array(np.array(2.0, np.float32), "two")], exact=True)
    case("Pow_int_exponent", node("Pow", ["a", "b"]), [("a", randn(2, 3)), ("b", np.array([1, 2, 3], np.int64))], [("y", F)])
    case("Max_two", node("Max", ["a", "b"]), [("a", randn(2, 3, 4)), ("b", randn(3, 1))], [("y", F)], exact=True)
    case("Max_three", node("Max", ["a", "b", "c"]), [("a", randn(3, 1)), ("b", randn(2, 1, 4)), ("c", randn(4))],
         [("y", F)], exact=True)
    case("Max_one", node("Max", ["a"]), [("a", randn(2, 3))], [("y", F)], exact=True)
    case("Min_two", node("Min", ["a", "b"]), [("a", randn(2, 3, 4)), ("b", randn(4))], [("y", F)], exact=True)

    # ---- Clip ----
    lo = numpy_helper.from_array(np.array(-0.5, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(0.7, np.float32), "hi")
    case("Clip_both", node("Clip", ["x", "lo", "hi"]), [("x", x234)], [("y", F)], inits=[lo, hi], exact=True)
    case("Clip_min", node("Clip", ["x", "lo"]), [("x", x234)], [("y", F)], inits=[lo], exact=True)
    case("Clip_max", node("Clip", ["x", "", "hi"]), [("x", x234)], [("y", F)], inits=[hi], exact=True)
    case("Clip_none", node("Clip", ["x"]), [("x", x234)], [("y", F)], exact=True)
    case("Clip_dynamic", node("Clip", ["x", "a", "b"]),
         [("x", x234), ("a", np.array(-0.2, np.float32)), ("b", np.array(0.3, np.float32))], [("y", F)], exact=True)
    case("Clip_opset10_attrs", node("Clip", ["x"], min=-0.1, max=0.4), [("x", x234)], [("y", F)], opset=10, exact=True)

    # ---- Cast ----
    frac = (randn(2, 5) * 40).astype(np.float32)
    case("Cast_f32_i64", node("Cast", ["x"], to=I64), [("x", frac)], [("y", I64)], exact=True)
    case("Cast_f32_i32", node("Cast", ["x"], to=I32), [("x", frac)], [("y", I32)], exact=True)
    case("Cast_i64_f32", node("Cast", ["x"], to=F), [("x", RNG.integers(-1000, 1000, (7,)).astype(np.int64))], [("y", F)], exact=True)
    case("Cast_f32_f32", node("Cast", ["x"], to=F), [("x", x234)], [("y", F)], exact=True)

    # ---- Softmax ----
    case("Softmax_last", node("Softmax", ["x"]), [("x", randn(2, 3, 5) * 3)], [("y", F)])
    case("Softmax_axis1", node("Softmax", ["x"], axis=1), [("x", randn(2, 3, 5) * 3)], [("y", F)])
    case("Softmax_opset11", node("Softmax", ["x"], axis=1), [("x", randn(2, 3, 5) * 3)], [("y", F)], opset=11)

    # ---- LayerNormalization (opset 17) ----
    case("LayerNorm_last", node("LayerNormalization", ["x", "w", "b"], epsilon=1e-5),
         [("x", randn(2, 3, 8) * 2 + 1), ("w", randn(8)), ("b", randn(8))], [("y", F)], opset=17)
    case("LayerNorm_axis-2_nobias", node("LayerNormalization", ["x", "w"], axis=-2, epsilon=1e-3),
         [("x", randn(2, 3, 4)), ("w", randn(3, 4))], [("y", F)], opset=17)
    case("LayerNorm_stats", node("LayerNormalization", ["x", "w", "b"], ["y", "mean", "inv_std"]),
         [("x", randn(4, 6)), ("w", randn(6)), ("b", randn(6))], [("y", F), ("mean", F), ("inv_std", F)], opset=17)

    # ---- reductions ----
    x3 = randn(3, 4, 5)
    case("ReduceMax_axis1", node("ReduceMax", ["x"], axes=[1], keepdims=0), [("x", x3)], [("y", F)], exact=True)
    case("ReduceMax_all", node("ReduceMax", ["x"]), [("x", x3)], [("y", F)], exact=True)
    case("ReduceMax_scattered", node("ReduceMax", ["x"], axes=[0, 2]), [("x", x3)], [("y", F)], exact=True)
    case("ReduceMax_opset18_input", node("ReduceMax", ["x", "axes"], keepdims=0), [("x", x3)], [("y", F)],
         inits=[numpy_helper.from_array(np.array([-1], np.int64), "axes")], opset=18, exact=True)
    case("ReduceMean_last", node("ReduceMean", ["x"], axes=[-1]), [("x", x3)], [("y", F)])
    case("ReduceMean_scattered", node("ReduceMean", ["x"], axes=[0, 2], keepdims=0), [("x", x3)], [("y", F)])
    case("ReduceMean_all", node("ReduceMean", ["x"], keepdims=0), [("x", x3)], [("y", F)])
    case("ReduceMean_opset18_noop", node("ReduceMean", ["x"], noop_with_empty_axes=1), [("x", x3)], [("y", F)],
         opset=18, exact=True)
    case("ReduceSum_opset13_input", node("ReduceSum", ["x", "axes"], keepdims=1), [("x", x3)], [("y", F)],
         inits=[numpy_helper.from_array(np.array([1, 2], np.int64), "axes")])
    case("ReduceSum_opset11_attr", node("ReduceSum", ["x"], axes=[0]), [("x", x3)], [("y", F)], opset=11)

    # ---- Conv ----
    def conv(name, xs, ws, bias=True, typed=False, **attrs):
        w = randn(*ws) * 0.5
        inits = [typed_init("w", w) if typed else numpy_helper.from_array(w, "w")]
        ins = ["x", "w"]
        if bias:
            inits.append(numpy_helper.from_array(randn(ws[0]), "b"))
            ins.append("b")
        case(name, node("Conv", ins, **attrs), [("x", randn(*xs))], [("y", F)], inits=inits)
    conv("Conv_3x3_pad1", (2, 3, 7, 6), (4, 3, 3, 3), kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    conv("Conv_typed_weights", (1, 3, 5, 5), (4, 3, 3, 3), typed=True, kernel_shape=[3, 3])
    conv("Conv_stride2_dilation2", (1, 2, 11, 9), (3, 2, 3, 3), kernel_shape=[3, 3], strides=[2, 2], dilations=[2, 2],
         pads=[2, 1, 2, 1])
    conv("Conv_groups2", (2, 4, 6, 6), (6, 2, 3, 3), group=2, pads=[1, 1, 1, 1])
    conv("Conv_depthwise", (2, 5, 8, 7), (5, 1, 3, 3), group=5, pads=[1, 1, 1, 1])
    conv("Conv_depthwise_stride2", (1, 6, 9, 10), (6, 1, 3, 3), group=6, strides=[2, 2], pads=[1, 1, 1, 1])
    conv("Conv_depthwise_mult2", (1, 3, 6, 6), (6, 1, 3, 3), group=3, pads=[0, 1, 2, 1], bias=False)
    conv("Conv_depthwise_dilated", (1, 4, 9, 9), (4, 1, 3, 3), group=4, dilations=[2, 2], pads=[2, 2, 2, 2])
    conv("Conv_same_upper", (1, 2, 7, 8), (3, 2, 4, 3), auto_pad="SAME_UPPER", strides=[2, 2])
    conv("Conv_same_lower", (1, 2, 7, 8), (3, 2, 4, 3), auto_pad="SAME_LOWER", strides=[2, 2])
    conv("Conv_valid", (1, 2, 7, 8), (3, 2, 3, 2), auto_pad="VALID", bias=False)
    conv("Conv_asym_pads", (2, 1, 10, 8), (4, 1, 3, 3), pads=[0, 1, 0, 1])
    conv("Conv_1x1", (2, 8, 5, 5), (6, 8, 1, 1))
    conv("Conv_1x1_stride2", (1, 8, 6, 6), (4, 8, 1, 1), strides=[2, 2])
    conv("Conv_no_kernel_shape", (1, 3, 6, 5), (2, 3, 2, 3), strides=[1, 2])
    conv("Conv_1d", (2, 3, 40), (4, 3, 5), kernel_shape=[5], strides=[3], pads=[2, 1])
    conv("Conv_1d_stft_like", (1, 1, 1000), (9, 1, 64), kernel_shape=[64], strides=[16], bias=False)
    conv("Conv_1d_depthwise", (1, 4, 20), (4, 1, 3), group=4, pads=[1, 1], dilations=[2])

    # ---- MatMul / Gemm ----
    mm = [("2d", (3, 4), (4, 5)), ("flat", (2, 3, 4), (4, 5)), ("batched", (2, 3, 4), (2, 4, 5)),
          ("broadcast", (2, 1, 3, 4), (3, 4, 5)), ("vec_mat", (4,), (4, 5)), ("mat_vec", (3, 4), (4,)),
          ("vec_vec", (4,), (4,)), ("a_broadcast", (3, 4), (2, 4, 5))]
    for tag, sa, sb in mm:
        case(f"MatMul_{tag}", node("MatMul", ["a", "b"]), [("a", randn(*sa)), ("b", randn(*sb))], [("y", F)])
    for tag, ta, tb, cs, kw in [("plain", 0, 0, (5,), {}), ("transA", 1, 0, (3, 5), {}), ("transB", 0, 1, (3, 1), {}),
                                ("alpha_beta", 1, 1, (), {"alpha": 0.5, "beta": 2.0}), ("no_c", 0, 0, None, {})]:
        a = randn(4, 3) if ta else randn(3, 4)
        b = randn(5, 4) if tb else randn(4, 5)
        ins = [("a", a), ("b", b)] + ([("c", randn(*cs))] if cs is not None else [])
        case(f"Gemm_{tag}", node("Gemm", [n for n, _ in ins], transA=ta, transB=tb, **kw), ins, [("y", F)])

    # ---- pooling ----
    xp = randn(2, 3, 9, 8)
    case("MaxPool_2x2", node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2]), [("x", xp)], [("y", F)], exact=True)
    case("MaxPool_3x3_pad", node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), [("x", xp)],
         [("y", F)], exact=True)
    case("MaxPool_ceil", node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), [("x", xp)], [("y", F)],
         exact=True)
    case("MaxPool_dilated", node("MaxPool", ["x"], kernel_shape=[2, 2], dilations=[2, 2]), [("x", xp)], [("y", F)], exact=True)
    case("MaxPool_same_upper", node("MaxPool", ["x"], kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_UPPER"),
         [("x", xp)], [("y", F)], exact=True)
    case("MaxPool_1d", node("MaxPool", ["x"], kernel_shape=[3], strides=[2]), [("x", randn(2, 3, 11))], [("y", F)], exact=True)
    case("AveragePool_pad_exclude", node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
         [("x", xp)], [("y", F)])
    case("AveragePool_pad_include", node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                         count_include_pad=1), [("x", xp)], [("y", F)])
    case("AveragePool_ceil", node("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), [("x", xp)],
         [("y", F)])
    case("AveragePool_1d", node("AveragePool", ["x"], kernel_shape=[4], strides=[3]), [("x", randn(1, 2, 13))], [("y", F)])
    case("GlobalAveragePool", node("GlobalAveragePool", ["x"]), [("x", randn(2, 3, 5, 7))], [("y", F)])
    case("BatchNormalization", node("BatchNormalization", ["x", "s", "b", "m", "v"], epsilon=1e-3),
         [("x", randn(2, 3, 4, 5))], [("y", F)],
         inits=[numpy_helper.from_array(randn(3), "s"), numpy_helper.from_array(randn(3), "b"),
                numpy_helper.from_array(randn(3), "m"), numpy_helper.from_array(positive(3), "v")])

    # ---- shapes and data movement ----
    x2345 = randn(2, 3, 4, 5)
    for ax in [1, 0, -1, 3]:
        case(f"Flatten_axis{ax}".replace("-", "m"), node("Flatten", ["x"], axis=ax), [("x", x2345)], [("y", F)], exact=True)
    case("Reshape_zero_minus1", node("Reshape", ["x", "s"]), [("x", x2345)], [("y", F)],
         inits=[numpy_helper.from_array(np.array([0, -1, 5], np.int64), "s")], exact=True)
    case("Reshape_allowzero", node("Reshape", ["x", "s"], allowzero=1), [("x", x2345)], [("y", F)],
         inits=[numpy_helper.from_array(np.array([6, 20], np.int64), "s")], opset=14, exact=True)
    case("Transpose_default", node("Transpose", ["x"]), [("x", x2345)], [("y", F)], exact=True)
    case("Transpose_perm", node("Transpose", ["x"], perm=[0, 2, 3, 1]), [("x", x2345)], [("y", F)], exact=True)
    case("Transpose_int64", node("Transpose", ["x"], perm=[1, 0]), [("x", RNG.integers(0, 99, (3, 4)).astype(np.int64))],
         [("y", I64)], exact=True)
    case("Unsqueeze_input", node("Unsqueeze", ["x", "a"]), [("x", randn(3, 4))], [("y", F)],
         inits=[numpy_helper.from_array(np.array([0, -1], np.int64), "a")], exact=True)
    case("Unsqueeze_opset11", node("Unsqueeze", ["x"], axes=[1]), [("x", randn(3, 4))], [("y", F)], opset=11, exact=True)
    case("Squeeze_input", node("Squeeze", ["x", "a"]), [("x", randn(3, 1, 4, 1))], [("y", F)],
         inits=[numpy_helper.from_array(np.array([-1], np.int64), "a")], exact=True)
    case("Squeeze_all", node("Squeeze", ["x"]), [("x", randn(1, 3, 1, 4))], [("y", F)], exact=True)
    case("Squeeze_opset11", node("Squeeze", ["x"], axes=[0]), [("x", randn(1, 3, 4))], [("y", F)], opset=11, exact=True)
    case("Identity", node("Identity", ["x"]), [("x", x234)], [("y", F)], exact=True)
    case("Dropout_inference", node("Dropout", ["x"]), [("x", x234)], [("y", F)], exact=True)
    case("Shape", node("Shape", ["x"]), [("x", x2345)], [("y", I64)], exact=True)
    case("Shape_start_end", node("Shape", ["x"], start=1, end=-1), [("x", x2345)], [("y", I64)], opset=15, exact=True)
    case("Gather_axis0_int64", node("Gather", ["x", "i"]), [("x", randn(5, 3)), ("i", np.array([[0, -1], [2, 4]], np.int64))],
         [("y", F)], exact=True)
    case("Gather_axis1_int32", node("Gather", ["x", "i"], axis=1), [("x", randn(2, 6, 3)), ("i", np.array([5, 0, 2], np.int32))],
         [("y", F)], exact=True)
    case("Gather_scalar_index", node("Gather", ["x", "i"], axis=0), [("x", RNG.integers(0, 9, (4,)).astype(np.int64))],
         [("y", I64)], inits=[numpy_helper.from_array(np.array(2, np.int64), "i")], exact=True)
    case("Concat_axis1", node("Concat", ["a", "b", "c"], axis=1),
         [("a", randn(2, 1, 3)), ("b", randn(2, 4, 3)), ("c", randn(2, 2, 3))], [("y", F)], exact=True)
    case("Concat_last_int64", node("Concat", ["a", "b"], axis=-1),
         [("a", np.array([[1, 2]], np.int64)), ("b", np.array([[3, 4, 5]], np.int64))], [("y", I64)], exact=True)
    for tag, st_, en_, ax_, sp_ in [("basic", [1, 0], [3, 4], [0, 2], [1, 2]), ("negative_step", [-1], [-100], [1], [-2]),
                                    ("clamped", [-3, 0], [2 ** 62, 2 ** 62], [2, 3], None),
                                    ("no_axes", [0, 1], [1, 3], None, None)]:
        inits = [numpy_helper.from_array(np.array(st_, np.int64), "st"), numpy_helper.from_array(np.array(en_, np.int64), "en")]
        ins = ["x", "st", "en"]
        if ax_ is not None:
            inits.append(numpy_helper.from_array(np.array(ax_, np.int64), "ax"))
            ins.append("ax")
        if sp_ is not None:
            if ax_ is None:
                ins.append("")
            inits.append(numpy_helper.from_array(np.array(sp_, np.int64), "sp"))
            ins.append("sp")
        case(f"Slice_{tag}", node("Slice", ins), [("x", x2345)], [("y", F)], inits=inits, exact=True)
    case("Slice_opset9_attrs", node("Slice", ["x"], starts=[1], ends=[3], axes=[1]), [("x", x2345)], [("y", F)], opset=9,
         exact=True)
    case("Split_input", node("Split", ["x", "s"], ["y1", "y2", "y3"], axis=1), [("x", randn(2, 6, 3))],
         [("y1", F), ("y2", F), ("y3", F)], inits=[numpy_helper.from_array(np.array([1, 3, 2], np.int64), "s")], exact=True)
    case("Split_equal", node("Split", ["x"], ["y1", "y2"], axis=-1), [("x", randn(2, 6))], [("y1", F), ("y2", F)], exact=True)
    case("Split_opset18_uneven", node("Split", ["x"], ["y1", "y2", "y3"], axis=0, num_outputs=3), [("x", randn(7, 2))],
         [("y1", F), ("y2", F), ("y3", F)], opset=18, exact=True)
    case("Split_opset11_attr", node("Split", ["x"], ["y1", "y2"], axis=1, split=[2, 1]), [("x", randn(2, 3))],
         [("y1", F), ("y2", F)], opset=11, exact=True)
    case("Expand", node("Expand", ["x", "s"]), [("x", randn(3, 1))], [("y", F)],
         inits=[numpy_helper.from_array(np.array([2, 1, 4], np.int64), "s")], exact=True)
    case("Constant_tensor", node("Constant", [], value=numpy_helper.from_array(randn(2, 3), "v")), [], [("y", F)], exact=True)
    case("Constant_value_ints", node("Constant", [], value_ints=[3, -1, 4]), [], [("y", I64)], exact=True)
    case("Constant_value_float", node("Constant", [], value_float=2.5), [], [("y", F)], exact=True)

    # ---- small graphs ----
    # shapes computed in the graph: y = reshape(x, [shape(x)[0], -1]) * 2 + concat-built sizes
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Gather", ["s", "i0"], ["n"], name="gather", axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"], name="unsqueeze"),
             helper.make_node("Concat", ["n1", "m1"], ["target"], name="concat", axis=0),
             helper.make_node("Reshape", ["x", "target"], ["r"], name="reshape"),
             helper.make_node("Cast", ["s"], ["sf"], name="cast", to=F),
             helper.make_node("ReduceMax", ["sf"], ["smax"], name="reducemax", keepdims=0),
             helper.make_node("Mul", ["r", "smax"], ["y"], name="mul")]
    case("Graph_computed_shape", nodes, [("x", randn(3, 2, 5))], [("y", F)],
         inits=[numpy_helper.from_array(np.array(0, np.int64), "i0"), numpy_helper.from_array(np.array([0], np.int64), "ax0"),
                numpy_helper.from_array(np.array([-1], np.int64), "m1")])
    # activations fused into Conv / MatMul / Gemm, and a chain that must not be fused (two readers)
    w1, w2 = randn(4, 3, 3, 3) * 0.5, randn(4, 1, 3, 3) * 0.5
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["l1"], name="leaky", alpha=0.2),
             helper.make_node("Max", ["l1", "zero"], ["m1"], name="max"),
             helper.make_node("Conv", ["m1", "w2"], ["c2"], name="dw", group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c2", "lo6", "hi6"], ["r6"], name="relu6"),
             helper.make_node("Add", ["r6", "m1"], ["res"], name="residual"),
             helper.make_node("Relu", ["m1"], ["other"], name="second_reader"),
             helper.make_node("Sub", ["res", "other"], ["d"], name="sub"),
             helper.make_node("Flatten", ["d"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], name="gemm", transB=1),
             helper.make_node("Div", ["g", "two"], ["g2"], name="div"),
             helper.make_node("Sigmoid", ["g2"], ["y"], name="sigmoid")]
    case("Graph_fused_activations", nodes, [("x", randn(2, 3, 6, 5))], [("y", F)],
         inits=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(randn(4), "b1"),
                numpy_helper.from_array(np.array(0.05, np.float32), "zero"), numpy_helper.from_array(w2, "w2"),
                numpy_helper.from_array(np.array(0.0, np.float32), "lo6"), numpy_helper.from_array(np.array(6.0, np.float32), "hi6"),
                numpy_helper.from_array(randn(7, 120) * 0.1, "wg"), numpy_helper.from_array(randn(7), "bg"),
                numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    # buffer reuse: a long elementwise chain with branches read late; two outputs, one of them mid-chain
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="n1"),
             helper.make_node("Mul", ["a", "x"], ["b"], name="n2"),
             helper.make_node("Tanh", ["b"], ["c"], name="n3"),
             helper.make_node("Add", ["c", "a"], ["d"], name="n4"),
             helper.make_node("Sigmoid", ["d"], ["e"], name="n5"),
             helper.make_node("Mul", ["e", "e"], ["f"], name="n6"),
             helper.make_node("Sub", ["f", "b"], ["g"], name="n7"),
             helper.make_node("Transpose", ["g"], ["h"], name="n8", perm=[1, 0]),
             helper.make_node("Neg", ["h"], ["mid"], name="n9"),
             helper.make_node("Abs", ["mid"], ["k"], name="n10"),
             helper.make_node("Add", ["k", "c"], ["y"], name="n11"),
             helper.make_node("Exp", ["d"], ["z"], name="n12")]
    # c is (6, 6) square so the transposed chain can add it back
    case("Graph_buffer_reuse", nodes, [("x", randn(6, 6))], [("y", F), ("mid", F), ("z", F)])
    # a symbolic batch dimension: planned again for every batch size
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="pool"),
             helper.make_node("Flatten", ["g"], ["y"], name="flatten")]
    case("Graph_symbolic_batch", nodes, [("x", randn(3, 2, 8, 8))], [("y", F)], dims={"x": ["N", 2, 8, 8]},
         inits=[numpy_helper.from_array(randn(5, 2, 3, 3), "w")])

    # depthwise convolutions wide enough for the row kernels (output rows of more than 16), and
    # channel-vectorised ones with a partial block of channels (csrc/ops/conv.c picks by shape)
    conv("Conv_depthwise_rows", (1, 20, 9, 40), (20, 1, 3, 3), group=20, pads=[1, 1, 1, 1])
    conv("Conv_depthwise_rows_stride2", (1, 18, 10, 70), (18, 1, 3, 3), group=18, strides=[2, 2], pads=[1, 1, 1, 1])
    conv("Conv_depthwise_rows_stride3", (1, 4, 7, 100), (4, 1, 3, 3), group=4, strides=[3, 3], pads=[1, 2, 1, 0])
    conv("Conv_depthwise_rows_dilated_s2", (1, 4, 9, 80), (8, 1, 3, 3), group=4, strides=[2, 2], dilations=[2, 2],
         pads=[2, 2, 2, 2])
    conv("Conv_depthwise_5x5_channels", (1, 33, 12, 12), (33, 1, 5, 5), group=33, pads=[2, 2, 2, 2])
    conv("Conv_depthwise_channels_stride2", (2, 32, 20, 20), (32, 1, 3, 3), group=32, strides=[2, 2], pads=[1, 1, 1, 1])
    conv("Conv_im2col_tiles", (1, 3, 150, 140), (8, 3, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1])
    conv("Conv_1x1_tiles", (1, 64, 40, 40), (64, 64, 1, 1))
    conv("Conv_1x1_rowblocks", (1, 32, 4, 4), (128, 32, 1, 1))
    # symbolic spatial sizes: spec/onnx_spec.lua runs these on inputs large enough for several
    # column tiles and checks them against halves of the input (the fixture input is small)
    case("Conv_1x1_symbolic", node("Conv", ["x", "w", "b"]), [("x", randn(1, 16, 4, 5))], [("y", F)],
         dims={"x": [1, 16, "H", "W"]}, inits=[numpy_helper.from_array(randn(96, 16, 1, 1) * 0.3, "w"),
                                                numpy_helper.from_array(randn(96), "b")])
    case("Conv_3x3_symbolic", node("Conv", ["x", "w"]), [("x", randn(1, 8, 5, 6))], [("y", F)],
         dims={"x": [1, 8, "H", "W"]}, inits=[numpy_helper.from_array(randn(8, 8, 3, 3) * 0.3, "w")])
    # Gemm with few rows and many columns (computed transposed, csrc/onnx/ops_nn.c)
    case("Gemm_one_row_transB", node("Gemm", ["a", "b", "c"], transB=1), [("a", randn(1, 40)), ("b", randn(70, 40)),
                                                                        ("c", randn(70))], [("y", F)])
    case("Gemm_few_rows_transA_beta", node("Gemm", ["a", "b", "c"], transA=1, alpha=0.7, beta=0.3),
         [("a", randn(40, 5)), ("b", randn(40, 90)), ("c", randn(5, 1))], [("y", F)])
    case("Gemm_few_rows_no_c", node("Gemm", ["a", "b"]), [("a", randn(3, 20)), ("b", randn(20, 64))], [("y", F)])
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="dw_rows", group=16, pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c1", "lo6", "hi6"], ["r1"], name="relu6"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], name="dw_channels", group=16, strides=[4, 4]),
             helper.make_node("LeakyRelu", ["c2"], ["l2"], name="leaky", alpha=0.1),
             helper.make_node("Sub", ["one", "l2"], ["y"], name="rsub")]
    case("Graph_depthwise_fused", nodes, [("x", randn(2, 16, 10, 40))], [("y", F)],
         inits=[numpy_helper.from_array(randn(16, 1, 3, 3), "w1"), numpy_helper.from_array(randn(16), "b1"),
                numpy_helper.from_array(np.array(0.0, np.float32), "lo6"), numpy_helper.from_array(np.array(6.0, np.float32), "hi6"),
                numpy_helper.from_array(randn(16, 1, 3, 3), "w2"), numpy_helper.from_array(np.array(1.0, np.float32), "one")])


def make(model_dir, cases_json):
    define()
    os.makedirs(model_dir, exist_ok=True)
    for f in os.listdir(model_dir):
        if f.endswith(".onnx"):
            os.remove(os.path.join(model_dir, f))
    out = []
    for c in CASES:
        path = os.path.join(model_dir, c["name"] + ".onnx")
        onnx.save(c["model"], path)
        out.append({"name": c["name"], "model": path, "exact": c["exact"], "outputs": c["outputs"],
                    "inputs": [{"name": n, "dtype": str(a.dtype), "shape": list(a.shape),
                                "b64": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()} for n, a in c["inputs"]]})
    with open(cases_json, "w") as f:
        json.dump({"cases": out}, f)
    print("onnx_op_cases: %d models in %s" % (len(out), model_dir))


def pack(cases_json, results_json, out_path):
    cases = json.load(open(cases_json))["cases"]
    res = json.load(open(results_json))
    by = {r["name"]: r for r in res["results"]}
    tensors, lines, bad = {}, [], []
    for c in cases:
        r = by[c["name"]]
        if "error" in r:
            bad.append("%s: %s" % (c["name"], r["error"]))
            continue
        for i, t in enumerate(c["inputs"]):
            tensors["%s/in/%d" % (c["name"], i + 1)] = np.frombuffer(base64.b64decode(t["b64"]), dtype=t["dtype"]).reshape(t["shape"])
        for i, t in enumerate(r["outputs"]):
            dt = {"float32": np.float32, "int64": np.int64, "int32": np.int32}[t["dtype"]]
            tensors["%s/out/%d" % (c["name"], i + 1)] = np.frombuffer(base64.b64decode(t["b64"]), dtype=dt).reshape(t["shape"])
        lines.append("%s %s %d %d" % (c["name"], "exact" if c["exact"] else "close", len(c["inputs"]), len(c["outputs"])))
    if bad:
        raise SystemExit("ONNX Runtime failed on:\n  " + "\n  ".join(bad))
    st.save(out_path, tensors, {"cases": "\n".join(lines), "onnxruntime": res.get("ort", "?"),
                                "generator": "tools/onnx_op_cases.py (python3-onnx %s)" % onnx.__version__})
    print("onnx_op_cases: %d cases, %d tensors in %s" % (len(lines), len(tensors), out_path))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "pack":
        pack(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)
