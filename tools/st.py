"""Tiny safetensors writer/reader in pure Python + numpy (development tool only).

There is no `safetensors` Python package on this machine, so the fixture
generators use this module. Format (as in the reference implementation):

    8 bytes   little-endian u64 N = length of the JSON header
    N bytes   JSON header: {"__metadata__": {str: str}, name: {"dtype": "F32",
              "shape": [..], "data_offsets": [begin, end]}, ...}
              compact separators, "__metadata__" first, padded with spaces to
              a multiple of 8 bytes
    rest      raw little-endian tensor data; offsets are relative to the start
              of this data area

Tensors are laid out like the reference writer does: ordered by dtype
alignment (largest first), then by name. Header keys are written in that
same order.

    save(path, {"name": numpy_array_or_torch_tensor}, metadata={"k": "v"})
    tensors, metadata = load(path)       # dict name -> numpy array, dict
"""
import json
import os
import struct

import numpy as np

_NP_TO_ST = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
_ST_TO_NP = {v: k for k, v in _NP_TO_ST.items()}


def _to_numpy(t):
    if isinstance(t, np.ndarray):
        return t
    # torch tensor (imported lazily so this module does not need torch)
    return t.detach().cpu().contiguous().numpy()


def save(path, tensors, metadata=None):
    arrays = {}
    for name, t in tensors.items():
        a = np.array(_to_numpy(t), copy=True, order="C")   # keeps 0-dim shapes
        if a.dtype not in _NP_TO_ST:
            raise TypeError("%s: unsupported dtype %s" % (name, a.dtype))
        arrays[name] = a.astype(a.dtype.newbyteorder("<"), copy=False)
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    offset = 0
    for name in order:
        a = arrays[name]
        n = a.nbytes
        header[name] = {
            "dtype": _NP_TO_ST[a.dtype.newbyteorder("=")],
            "shape": list(a.shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    hj = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name in order:
            f.write(arrays[name].tobytes(order="C"))
    os.replace(tmp, path)


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(path + ": too short")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(path + ": header length past end of file")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = _ST_TO_NP[info["dtype"]].newbyteorder("<")
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        a = np.frombuffer(data[b:e], dtype=dt)
        if a.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError("%s: %s: size does not match shape" % (path, name))
        out[name] = a.reshape(shape).astype(dt.newbyteorder("="))
    return out, meta
