#!/usr/bin/python3
"""gen_fuzz_seeds.py: the seed corpora of the libFuzzer harnesses (fuzz/corpus/<target>/).

A handful of small valid files and broken variants per target, written by hand
(safetensors, JSON, shards, vocabularies, texts), with PIL (JPEG, PNG) and with
ffmpeg (audio, video). Run from the repository root with Debian's Python:

    /usr/bin/python3 tools/gen_fuzz_seeds.py

The files are committed; fuzzing never needs Python. Total size stays far
below 1 MB (printed at the end).
"""
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- safetensors
def st_bytes(tensors, metadata=None, pad=True, header_override=None):
    """tensors: list of (name, dtype, shape, raw bytes); laid out back to back."""
    hdr, off, blob = {}, 0, b""
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = header_override if header_override is not None else json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(*shape, start=0.0):
    return np.arange(start, start + np.prod(shape, dtype=np.int64), dtype=np.float32).reshape(shape).tobytes()


def safetensors_seeds():
    t = "safetensors"
    put(t, "f32_meta.st", st_bytes([("w", "F32", (2, 3), f32(2, 3)), ("b", "F32", (3,), f32(3))], {"format": "pt", "k": "v"}))
    put(t, "dtypes.st", st_bytes([
        ("a_f16", "F16", (2, 2), np.array([1, -2, 0.5, 65504], np.float16).tobytes()),
        ("b_bf16", "BF16", (2,), b"\x80\x3f\x00\xc0"),
        ("c_f64", "F64", (1,), np.array([3.25]).tobytes()),
        ("d_i64", "I64", (2,), np.array([-1, 2 ** 40], np.int64).tobytes()),
        ("e_i32", "I32", (1,), np.array([7], np.int32).tobytes()),
        ("f_i16", "I16", (1,), np.array([-3], np.int16).tobytes()),
        ("g_i8", "I8", (2,), b"\xff\x01"),
        ("h_u8", "U8", (3,), b"\x00\x80\xff"),
        ("i_bool", "BOOL", (2,), b"\x00\x02"),
        ("j_u16", "U16", (1,), b"\xff\xff"),
        ("k_u32", "U32", (1,), b"\xff\xff\xff\xff"),
        ("l_u64", "U64", (1,), struct.pack("<Q", 5)),
        ("m_f8", "F8_E4M3", (1,), b"\x38"),
    ]))
    put(t, "empty_and_scalar.st", st_bytes([("e", "F32", (0, 3), b""), ("s", "F32", (), f32(1)), ("z", "I64", (4, 0, 2), b"")]))
    put(t, "unicode_names.st", st_bytes([("caf\u00e9.\u4e2d", "F32", (1,), f32(1)), ("a\\\"q", "F32", (1,), f32(1, start=2))], {"\u00e9": "\ud83d\ude00".encode("utf-16", "surrogatepass").decode("utf-16")}))
    put(t, "no_tensors.st", st_bytes([], {"only": "metadata"}))
    put(t, "empty_header.st", struct.pack("<Q", 2) + b"{}")
    good = st_bytes([("w", "F32", (2, 2), f32(2, 2))])
    put(t, "bad_truncated.st", good[:-3])
    put(t, "bad_trailing.st", good + b"\x00\x00\x00\x00")
    put(t, "bad_header_len.st", struct.pack("<Q", 1 << 40) + good[8:])
    put(t, "bad_overlap.st", st_bytes([], header_override=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}') + b"\x00" * 12)
    put(t, "bad_hole.st", st_bytes([], header_override=b'{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}') + b"\x00" * 6)
    put(t, "bad_shape.st", st_bytes([], header_override=b'{"a":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}'))
    put(t, "bad_dtype.st", st_bytes([], header_override=b'{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}') + b"\x00" * 4)
    put(t, "bad_json.st", st_bytes([], header_override=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},}') + b"\x00" * 4)
    put(t, "bad_dup.st", st_bytes([], header_override=b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}') + b"\x00" * 2)
    put(t, "bad_nul_name.st", st_bytes([], header_override=b'{"a\\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}') + b"\x00")
    put(t, "bad_meta.st", st_bytes([], header_override=b'{"__metadata__":{"k":1}}'))
    put(t, "bad_u64.st", st_bytes([("x", "U64", (1,), b"\xff" * 8)]))
    put(t, "tiny.st", b"\x02\x00\x00\x00")


# ---------------------------------------------------------------- JSON
def json_seeds():
    t = "json"
    put(t, "object.json", '{"a":[1,-2.5e3,0,-0,1e-7,true,false,null,{}],"b":{"c":"d","e":[]}}')
    put(t, "escapes.json", '["\\"\\\\\\/\\b\\f\\n\\r\\t","\\u00e9\\u4e2d","\\ud83d\\ude00","caf\u00e9 \u4e2d\u6587 \U0001F600","\\u0000"]')
    put(t, "numbers.json", "[18446744073709551615,18446744073709551616,-9223372036854775808,1.7976931348623157e308,4.9e-324,123456789012345678901234567890,0.5E+2]")
    put(t, "ws.json", ' \t\r\n{ "k" : [ 1 , 2 ] } \n')
    put(t, "scalar.json", '"just a string"')
    put(t, "deep.json", "[" * 64 + "]" * 64)
    put(t, "bad_deep.json", "[" * 65 + "]" * 65)
    put(t, "bad_surrogate.json", '["\\ud800"]')
    put(t, "bad_low_surrogate.json", '["\\udc00x"]')
    put(t, "bad_leading_zero.json", "[01]")
    put(t, "bad_trailing_comma.json", '{"a":1,}')
    put(t, "bad_utf8.json", b'["\xc0\xaf", "\xed\xa0\x80"]')
    put(t, "bad_control.json", '["a\tb"]')
    put(t, "bad_after.json", "{} {}")
    put(t, "header.json", '{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}')


# ---------------------------------------------------------------- feature shards
def shard_seeds():
    t = "featmap"
    feats = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)
    put(t, "f32_i32.st", st_bytes([("feats", "F32", (3, 4), feats.tobytes()), ("lengths", "I32", (2,), np.array([2, 1], np.int32).tobytes())],
                                  {"encoder_id": "e", "items": "k1\tkey\nk2\tkey"}))
    put(t, "f16_i64.st", st_bytes([("feats", "F16", (4, 2), np.array([1, 2, 3, 4, -0.0, 65504, 1e-7, 0.333], np.float16).tobytes()),
                                   ("lengths", "I64", (3,), np.array([1, 2, 1], np.int64).tobytes())]))
    put(t, "one_row.st", st_bytes([("feats", "F32", (1, 1), f32(1, 1)), ("lengths", "I32", (1,), np.array([1], np.int32).tobytes())]))
    put(t, "bad_sum.st", st_bytes([("feats", "F32", (3, 1), f32(3, 1)), ("lengths", "I32", (2,), np.array([2, 2], np.int32).tobytes())]))
    put(t, "bad_zero_len.st", st_bytes([("feats", "F32", (2, 1), f32(2, 1)), ("lengths", "I32", (2,), np.array([2, 0], np.int32).tobytes())]))
    put(t, "bad_negative.st", st_bytes([("feats", "F32", (2, 1), f32(2, 1)), ("lengths", "I64", (2,), np.array([3, -1], np.int64).tobytes())]))
    put(t, "bad_empty_dim.st", st_bytes([("feats", "F32", (2, 0), b""), ("lengths", "I32", (1,), np.array([2], np.int32).tobytes())]))
    put(t, "bad_no_lengths.st", st_bytes([("feats", "F32", (2, 1), f32(2, 1))]))
    put(t, "bad_dtype.st", st_bytes([("feats", "BF16", (2, 1), b"\x00" * 4), ("lengths", "U8", (1,), b"\x02")]))


# ---------------------------------------------------------------- cache manifests (Lua harness)
def manifest_seeds():
    """Input format of cache_manifest_fuzz: manifest metadata "shards" text, a NUL, then the
    shard's "items" metadata text (see fuzz/cache_manifest_fuzz.c)."""
    t = "cache_manifest"
    line = "shard-000001-0a1b2c3d.safetensors\tenc\tF32\t2\t{bytes}\t{sum}"
    put(t, "good.txt", line + "\x00" + "k1\tkey\nk2\tkey")
    put(t, "two_lines.txt", line + "\n" + line.replace("000001", "000002") + "\x00" + "k%201\tkey|v1\nk2\tkey")
    put(t, "no_checksum.txt", "shard-000001-0a1b2c3d.safetensors\tenc\tF32\t2\t{bytes}\x00k1\tkey\nk2\tkey")
    put(t, "bad_fields.txt", "\t\t\t\n\t\x00\t\n")
    put(t, "other_encoder.txt", "shard-9-x.safetensors\tother%09id\tF16\tx\t-1\tzz\x00%ZZ\t%41")
    put(t, "path_escape.txt", "../../etc/passwd\tenc\tF32\t2\t{bytes}\t0123456789abcdef\x00k1\tkey")


# ---------------------------------------------------------------- images
def image_seeds():
    t = "image"
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    b = io.BytesIO(); rgb.save(b, "JPEG", quality=80); put(t, "rgb.jpg", b.getvalue())
    b = io.BytesIO(); rgb.save(b, "JPEG", quality=80, progressive=True); put(t, "progressive.jpg", b.getvalue())
    b = io.BytesIO(); rgb.convert("L").save(b, "JPEG"); put(t, "gray.jpg", b.getvalue())
    b = io.BytesIO(); rgb.convert("CMYK").save(b, "JPEG"); put(t, "cmyk.jpg", b.getvalue())
    exif = Image.Exif(); exif[0x0112] = 6
    b = io.BytesIO(); rgb.save(b, "JPEG", exif=exif.tobytes()); put(t, "orient6.jpg", b.getvalue())
    exif[0x0112] = 3
    b = io.BytesIO(); rgb.save(b, "JPEG", exif=exif.tobytes(), subsampling=0); put(t, "orient3_444.jpg", b.getvalue())
    b = io.BytesIO(); rgb.save(b, "PNG"); put(t, "rgb.png", b.getvalue())
    rgba = Image.fromarray(rng.integers(0, 256, (5, 7, 4), dtype=np.uint8))
    b = io.BytesIO(); rgba.save(b, "PNG"); put(t, "rgba.png", b.getvalue())
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=4); pal.info["transparency"] = 0
    b = io.BytesIO(); pal.save(b, "PNG", transparency=0); put(t, "palette_trns.png", b.getvalue())
    g16 = Image.fromarray((rng.integers(0, 65536, (4, 3))).astype(np.uint16))
    b = io.BytesIO(); g16.save(b, "PNG"); put(t, "gray16.png", b.getvalue())
    b = io.BytesIO(); rgb.convert("1").save(b, "PNG"); put(t, "bilevel.png", b.getvalue())
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "a.png"); rgb.save(src)
        out = os.path.join(d, "i.png")
        subprocess.run(["ffmpeg", "-v", "error", "-i", src, "-pred", "mixed", "-y", out], check=True)  # plain PNG through another encoder
        put(t, "ffmpeg.png", open(out, "rb").read())
    good = open(os.path.join(ROOT, t, "rgb.jpg"), "rb").read()
    put(t, "bad_truncated.jpg", good[: len(good) // 2])
    png = open(os.path.join(ROOT, t, "rgb.png"), "rb").read()
    put(t, "bad_truncated.png", png[:-20])
    big = bytearray(png); big[16:24] = struct.pack(">II", 100000, 100000)
    put(t, "bad_bomb.png", bytes(big))
    put(t, "bad_gif.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")


# ---------------------------------------------------------------- audio and video
def ff(args, out_ext):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "o." + out_ext)
        subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-fflags", "+bitexact"] + args + ["-flags", "+bitexact", "-y", out], check=True)
        return open(out, "rb").read()


def ff_pipe(args, fmt):
    return subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-fflags", "+bitexact"] + args + ["-flags", "+bitexact", "-f", fmt, "pipe:1"],
                          check=True, capture_output=True).stdout


def audio_seeds():
    t = "audio"
    sine = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=0.05"]
    put(t, "pcm16.wav", ff(sine, "wav"))
    put(t, "float_stereo.wav", ff(sine + ["-ac", "2", "-c:a", "pcm_f32le"], "wav"))
    put(t, "u8_22k.wav", ff(sine + ["-ar", "22050", "-c:a", "pcm_u8"], "wav"))
    put(t, "tone.flac", ff(sine, "flac"))
    put(t, "pipe.flac", ff_pipe(sine, "flac"))
    put(t, "tone.ogg", ff(sine + ["-c:a", "libvorbis"], "ogg"))
    put(t, "tone.opus", ff(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.05", "-c:a", "libopus"], "opus"))
    put(t, "tone.mp3", ff(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=0.1", "-c:a", "libmp3lame", "-b:a", "32k"], "mp3"))
    put(t, "noxing.mp3", ff(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000:duration=0.1", "-c:a", "libmp3lame", "-b:a", "32k", "-write_xing", "0"], "mp3"))
    put(t, "tone.aiff", ff(sine, "aiff"))
    put(t, "tone.au", ff(sine, "au"))
    put(t, "tone.m4a", ff(sine + ["-c:a", "aac", "-b:a", "16k"], "m4a"))
    wav = open(os.path.join(ROOT, t, "pcm16.wav"), "rb").read()
    put(t, "bad_half.wav", wav[: len(wav) // 2])
    nan = bytearray(open(os.path.join(ROOT, t, "float_stereo.wav"), "rb").read()); nan[-4:] = struct.pack("<f", float("nan"))
    put(t, "bad_nan.wav", bytes(nan))
    ogg = open(os.path.join(ROOT, t, "tone.ogg"), "rb").read()
    put(t, "bad_cut.ogg", ogg[: len(ogg) * 2 // 3])


def video_seeds():
    t = "video"
    src = ["-f", "lavfi", "-i", "testsrc=size=16x12:rate=5:duration=1"]
    put(t, "mjpeg.avi", ff(src + ["-c:v", "mjpeg", "-q:v", "20"], "avi"))
    put(t, "mpeg4.mp4", ff(src + ["-c:v", "mpeg4", "-q:v", "20"], "mp4"))
    put(t, "h264.mkv", ff(src + ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-pix_fmt", "yuv420p"], "mkv"))
    put(t, "ffv1.mkv", ff(["-f", "lavfi", "-i", "testsrc=size=8x8:rate=5:duration=0.6", "-c:v", "ffv1"], "mkv"))
    put(t, "vp8.webm", ff(src + ["-c:v", "libvpx", "-b:v", "20k"], "webm"))
    put(t, "anim.gif", ff(["-f", "lavfi", "-i", "testsrc=size=8x8:rate=5:duration=0.6"], "gif"))
    put(t, "with_audio.mkv", ff(src + ["-f", "lavfi", "-i", "sine=sample_rate=4000:duration=1.2", "-c:v", "mjpeg", "-q:v", "25", "-c:a", "pcm_u8"], "mkv"))
    mkv = open(os.path.join(ROOT, t, "h264.mkv"), "rb").read()
    put(t, "bad_cut.mkv", mkv[: len(mkv) * 2 // 3])
    mp4 = open(os.path.join(ROOT, t, "mpeg4.mp4"), "rb").read()
    put(t, "bad_cut.mp4", mp4[: len(mp4) // 2])


# ---------------------------------------------------------------- text
TEXTS = [
    "A photo of a sneaker.",
    "The naïve café's CRÈME brûlée — 42 × 7 ÷ 3!",
    "ΣΊΣΥΦΟΣ σοφός; Ελληνικά. Привет, МИР! Բարեւ",
    "中文分词 日本語テキスト 한국어 ｆｕｌｌｗｉｄｔｈ　ＡＢＣ",
    "emoji 😀👍🏽 arrows → ⇒ «quotes» ‘single’",
    b"bad \xff\xfe utf8 \xc3\x28 \xe2\x82 \xf0\x9f\x98 ok \xed\xa0\x80 surrogate \xc0\xaf overlong",
    "İstanbul ǅ ẞ ß ﬁ Å Ω K",
    "[CLS] hello [SEP] [MASK][UNK] [PAD]x",
    "tab\there\r\nnew\u2028line\u00a0nbsp\u200bzero width\ufeffbom\x00nul\x07bell",
    "combining e\u0301 a\u0308\u0304 \u0345 Hangul \u1100\u1161",
    "x" * 120 + " " + "é" * 60,
]


def text_seeds(t):
    for i, s in enumerate(TEXTS):
        put(t, "text%02d.txt" % i, s)


def vocab_seeds():
    t = "wordpiece_vocab"
    small = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "un", "##aff", "##able", "hello", "world", ",", "!",
             "a", "b", "##b", "café", "中", "σ", "##ς"]
    put(t, "vocab.txt", "\n".join(small) + "\n")
    put(t, "vocab_crlf.txt", "\r\n".join(small) + "\r\n")
    put(t, "vocab_nofinal.txt", "\n".join(small))
    put(t, "bad_dup.txt", "\n".join(small + ["the"]) + "\n")
    put(t, "bad_missing_sep.txt", "\n".join(s for s in small if s != "[SEP]") + "\n")
    put(t, "bad_utf8.txt", ("\n".join(small) + "\n").encode() + b"\xff\xfe\n")
    put(t, "empty_lines.txt", "\n".join(small[:4]) + "\n\n\nx\n")
    put(t, "long_token.txt", "\n".join(small) + "\n" + "z" * 600 + "\n")
    j = "wordpiece_json"
    vocab = {tok: i for i, tok in enumerate(small)}
    added = [{"id": 3, "content": "[SEP]", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}]
    norm = {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True}
    model = {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab}
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": norm,
           "pre_tokenizer": {"type": "BertPreTokenizer"}, "post_processor": None, "decoder": None, "model": model}
    put(j, "tokenizer.json", json.dumps(doc, ensure_ascii=False))
    put(j, "tokenizer_ascii.json", json.dumps(doc, ensure_ascii=True, indent=1))
    d2 = dict(doc); d2["normalizer"] = None; d2["added_tokens"] = []
    put(j, "no_normalizer.json", json.dumps(d2))
    d3 = json.loads(json.dumps(doc)); d3["normalizer"]["lowercase"] = False; d3["normalizer"]["strip_accents"] = True
    d3["model"]["continuing_subword_prefix"] = "@@"; d3["model"]["max_input_chars_per_word"] = 5
    put(j, "cased_prefix.json", json.dumps(d3))
    d4 = json.loads(json.dumps(doc)); d4["model"]["type"] = "BPE"
    put(j, "bad_bpe.json", json.dumps(d4))
    d5 = json.loads(json.dumps(doc)); d5["model"]["vocab"]["extra"] = 5
    put(j, "bad_dup_id.json", json.dumps(d5))
    d6 = json.loads(json.dumps(doc)); d6["added_tokens"][0]["lstrip"] = True
    put(j, "bad_added.json", json.dumps(d6))
    put(j, "bad_syntax.json", json.dumps(doc)[:-5])


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    safetensors_seeds()
    json_seeds()
    shard_seeds()
    manifest_seeds()
    image_seeds()
    audio_seeds()
    video_seeds()
    text_seeds("words")
    text_seeds("wordpiece")
    vocab_seeds()
    total = 0
    for d, _, files in os.walk(ROOT):
        for f in files:
            total += os.path.getsize(os.path.join(d, f))
    print("fuzz/corpus: %d bytes" % total, file=sys.stderr)


if __name__ == "__main__":
    main()
