#!/usr/bin/python3
"""Writes the safetensors fixtures in spec/fixtures/safetensors/.

An implementation independent of the C writer: struct + json + numpy only,
following the format as the Hugging Face safetensors library writes it:
  * 8-byte little-endian unsigned header length N, then N bytes of JSON,
    then the raw little-endian, C-ordered tensor data;
  * tensors ordered by dtype (largest alignment first, in the library's
    Dtype enum order) then by name; data_offsets relative to the data area;
  * the JSON is serde_json's compact form: "__metadata__" first, then each
    tensor as {"dtype":..,"shape":[..],"data_offsets":[b,e]}, no spaces,
    non-ASCII characters kept as UTF-8;
  * the header is padded with spaces to a multiple of 8 bytes.
(The library keeps __metadata__ in a hash map, so its key order is not
fixed; here, as in the C writer, the keys are sorted.)

Run: /usr/bin/python3 tools/make_safetensors_fixtures.py
"""
import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "spec", "fixtures", "safetensors")

# the library's Dtype enum order (increasing alignment)
ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
         "I32", "U32", "F32", "F64", "I64", "U64"]
NP = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
      "F16": np.float16, "BF16": np.uint16, "I32": np.int32, "U32": np.uint32,
      "F32": np.float32, "F64": np.float64, "I64": np.int64, "U64": np.uint64}


def serialize(tensors, metadata=None):
    """tensors: dict name -> (dtype string, numpy array). Returns the file bytes."""
    items = sorted(tensors.items(), key=lambda kv: (-ORDER.index(kv[1][0]), kv[0].encode("utf-8")))
    header = {}
    if metadata is not None:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata, key=lambda s: s.encode("utf-8"))}
    blobs, offset = [], 0
    for name, (dt, arr) in items:
        arr = np.asarray(arr, dtype=np.dtype(NP[dt]).newbyteorder("<"))  # keeps 0-d arrays 0-d
        raw = arr.tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def bf16_bits(x32):
    """float32 array -> bfloat16 bit patterns, round to nearest even (nan kept quiet)."""
    u = np.asarray(x32, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    r = np.where(nan, (u >> 16) | 0x40, r)
    return r.astype(np.uint16)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(name, len(data), "bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    f16_bits = np.array([0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x7C00, 0xFC00, 0x7E00, 0x8000, 0x3555, 0x3800],
                        dtype=np.uint16)
    bf16 = np.array([0x3F80, 0xC000, 0x7F7F, 0x0001, 0x7F80, 0xFF80, 0x7FC0, 0x3EAB], dtype=np.uint16)
    tensors = {
        "f32": ("F32", np.array([[0, 1, -2.5], [3.25, 0.15625, -1048576]], dtype=np.float32)),
        "f16": ("F16", f16_bits.view(np.float16)),
        "bf16": ("BF16", bf16),
        "f64": ("F64", np.array([[0.1, -3.0], [1e300, 2.0 ** -149]], dtype=np.float64)),
        "i64": ("I64", np.array([-(2 ** 62), 0, 2 ** 53 + 1], dtype=np.int64)),
        "i32": ("I32", np.array([[-2147483648, 2147483647], [0, -1]], dtype=np.int32)),
        "u8": ("U8", np.array([0, 1, 127, 255], dtype=np.uint8)),
        "i16": ("I16", np.array([-32768, 32767, -1], dtype=np.int16)),
        "i8": ("I8", np.array([-128, 127, 0], dtype=np.int8)),
        "u16": ("U16", np.array([65535, 0], dtype=np.uint16)),
        "u32": ("U32", np.array([4294967295], dtype=np.uint32)),
        "bool": ("BOOL", np.array([True, False, True])),
        "scalar": ("F32", np.array(42.5, dtype=np.float32)),
        "empty": ("F32", np.zeros((0, 3), dtype=np.float32)),
        "layer.0.weight": ("F32", np.arange(6, dtype=np.float32).reshape(3, 2) / 4),
    }
    write("dtypes.safetensors", serialize(tensors, {"format": "pt", "note": "fixture \"quoted\" é\n\ttab"}))

    # what the C writer must reproduce byte for byte (dtypes it can write)
    mixed = {
        "z.weight": ("F32", np.array([[1, 2], [3, 4]], dtype=np.float32)),
        "a.bias": ("F32", np.array([0.5, -0.5], dtype=np.float32)),
        "ids": ("I64", np.array([0, 5, 7], dtype=np.int64)),
        "mask": ("U8", np.array([1, 0], dtype=np.uint8)),
        "count": ("I32", np.array(7, dtype=np.int32)),
        "nothing": ("F32", np.zeros((0,), dtype=np.float32)),
    }
    write("reference_mixed.safetensors", serialize(mixed, {"epoch": "3", "name": "tiny"}))
    write("reference_no_metadata.safetensors", serialize({"attn.0": ("F32", np.arange(6, dtype=np.float32).reshape(1, 2, 3))}))

    # rounding: float32 inputs (exact bit patterns) and their F16 (numpy's
    # round-to-nearest-even cast) and BF16 (integer RNE) encodings
    x = np.array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519.99, 65520.0, 2.0 ** -25, 1.5 * 2 ** -25, 2.0 ** -25 * (1 + 2 ** -20),
                  -0.0, 1e-8, 0.1, 1 / 3, -7.3, np.nan, np.inf, -np.inf, 3.0e38, 1 + 2 ** -8, 1 + 3 * 2 ** -8,
                  2.0 ** -14 - 2.0 ** -25, 6.0e-5, 1e-7, -65504.0], dtype=np.float32)
    with np.errstate(over="ignore"):
        h = x.astype(np.float16)
    write("rounding_f32.safetensors", serialize({"x": ("F32", x)}))
    write("rounding_f16.safetensors", serialize({"x": ("F16", h)}))
    write("rounding_bf16.safetensors", serialize({"x": ("BF16", bf16_bits(x))}))
    try:  # cross-check the integer BF16 rounding against torch when it is there
        import torch
        tb = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        ok = np.isnan(x) | (tb == bf16_bits(x))
        assert ok.all(), "bf16 rounding disagrees with torch"
        print("bf16 rounding matches torch")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
