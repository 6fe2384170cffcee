#!/usr/bin/python3
"""Writes the safetensors fixtures of tests/test_safetensors.c (run from this directory with
Debian's /usr/bin/python3 + numpy).  The format is written by hand: u64 LE header length, JSON
header (space-padded to 8 bytes), data buffer.

  basic.safetensors      F32/F16/BF16/F64/I64/I32/I16/I8/U8/BOOL tensors, a scalar, a zero-size
                         tensor and __metadata__; F32 data 8-byte aligned (zero copy)
  unaligned.safetensors  F32 data at an odd offset (must be copied)
  expected.safetensors   every tensor of basic as F32, converted by numpy (the oracle)
  sharded/               model.safetensors.index.json + two shards
  bad/*.safetensors      hostile files, each must fail with a clear message
"""
import json
import os
import struct

import numpy as np

rng = np.random.default_rng(20240531)


def header_bytes(hdr, pad_to=8, extra=0):
    h = json.dumps(hdr, separators=(",", ":")).encode()
    n = len(h) + extra
    while (8 + n) % pad_to:
        n += 1
    return h + b" " * (n - len(h))


def write(path, tensors, meta=None, pad_to=8, extra=0):
    """tensors: list of (name, dtype_name, shape, raw bytes)."""
    hdr = {}
    if meta is not None:
        hdr["__metadata__"] = meta
    off = 0
    data = b""
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = header_bytes(hdr, pad_to, extra)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def raw_file(path, header_text, data, n_override=None):
    h = header_text.encode() if isinstance(header_text, str) else header_text
    n = len(h) if n_override is None else n_override
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + h + data)


def bf16_bytes(a32):
    bits = a32.astype(np.float32).view(np.uint32)
    return (bits >> 16).astype(np.uint16).tobytes()


def main():
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    h16 = np.array([1.0, -2.5, 65504.0, 6e-8, -0.0, np.inf, 0.333], np.float16)
    b16src = rng.standard_normal((2, 5)).astype(np.float32)
    b16 = (b16src.view(np.uint32) & 0xFFFF0000).view(np.float32)  # exactly representable
    f64 = rng.standard_normal((3, 2)) * 1e3
    i64 = np.array([[-(2**40), 7], [123456789, -1]], np.int64)
    i32 = np.array([-5, 0, 2**31 - 1], np.int32)
    i16 = np.array([-32768, 12, 32767], np.int16)
    i8 = np.array([-128, -1, 0, 127], np.int8)
    u8 = np.array([0, 1, 200, 255], np.uint8)
    bl = np.array([True, False, True], np.bool_)
    sc = np.array(2.385, np.float32)
    zero = np.zeros((0, 3), np.float32)
    tensors = [
        ("conv.weight", "F32", w.shape, w.tobytes()),
        ("half", "F16", h16.shape, h16.tobytes()),
        ("bf", "BF16", b16.shape, bf16_bytes(b16)),
        ("dbl", "F64", f64.shape, f64.tobytes()),
        ("long", "I64", i64.shape, i64.tobytes()),
        ("int", "I32", i32.shape, i32.tobytes()),
        ("short", "I16", i16.shape, i16.tobytes()),
        ("byte", "I8", i8.shape, i8.tobytes()),
        ("ubyte", "U8", u8.shape, u8.tobytes()),
        ("flags", "BOOL", bl.shape, bl.tobytes()),
        ("scalar", "F32", (), sc.tobytes()),
        ("empty", "F32", (0, 3), zero.tobytes()),
    ]
    # F32 first so its data starts at the 8-aligned buffer start.
    write("basic.safetensors", tensors, meta={"format": "pt", "note": "lkprobe fixture"})
    exp = [
        ("conv.weight", w), ("half", h16.astype(np.float32)), ("bf", b16),
        ("dbl", f64.astype(np.float32)), ("long", i64.astype(np.float32)),
        ("int", i32.astype(np.float32)), ("short", i16.astype(np.float32)),
        ("byte", i8.astype(np.float32)), ("ubyte", u8.astype(np.float32)),
        ("flags", bl.astype(np.float32)), ("scalar", sc), ("empty", zero),
    ]
    write("expected.safetensors", [(n, "F32", a.shape, a.astype(np.float32).tobytes()) for n, a in exp])
    # Unaligned F32: a one-byte U8 tensor first shifts the F32 data by one byte.
    write("unaligned.safetensors",
          [("pad", "U8", (1,), b"\x07"), ("w", "F32", w.shape, w.tobytes())])

    # Sharded pair.
    os.makedirs("sharded", exist_ok=True)
    a = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal((8,)).astype(np.float16)
    c = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    write("sharded/model-00001-of-00002.safetensors",
          [("layer1.weight", "F32", a.shape, a.tobytes()), ("layer1.bias", "F16", b.shape, b.tobytes())])
    write("sharded/model-00002-of-00002.safetensors", [("layer2.weight", "F32", c.shape, c.tobytes())])
    with open("sharded/model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {"total_size": a.nbytes + b.nbytes + c.nbytes},
                   "weight_map": {"layer1.weight": "model-00001-of-00002.safetensors",
                                  "layer1.bias": "model-00001-of-00002.safetensors",
                                  "layer2.weight": "model-00002-of-00002.safetensors"}}, f, indent=1)
    write("sharded/expected.safetensors",
          [("layer1.weight", "F32", a.shape, a.tobytes()),
           ("layer1.bias", "F32", b.shape, b.astype(np.float32).tobytes()),
           ("layer2.weight", "F32", c.shape, c.tobytes())])
    # Broken sharded sets.
    with open("sharded/bad-missing.index.json", "w") as f:
        json.dump({"weight_map": {"layer1.weight": "model-00001-of-00002.safetensors",
                                  "layer1.bias": "model-00001-of-00002.safetensors",
                                  "layer2.weight": "model-00003-of-00002.safetensors"}}, f)
    with open("sharded/bad-escape.index.json", "w") as f:
        json.dump({"weight_map": {"layer1.weight": "../basic.safetensors"}}, f)
    with open("sharded/bad-unlisted.index.json", "w") as f:
        json.dump({"weight_map": {"layer1.weight": "model-00001-of-00002.safetensors",
                                  "layer2.weight": "model-00002-of-00002.safetensors"}}, f)
    with open("sharded/bad-wrongshard.index.json", "w") as f:
        json.dump({"weight_map": {"layer1.weight": "model-00001-of-00002.safetensors",
                                  "layer1.bias": "model-00002-of-00002.safetensors",
                                  "layer2.weight": "model-00002-of-00002.safetensors"}}, f)
    with open("sharded/bad-notlisted2.index.json", "w") as f:
        json.dump({"weight_map": {"layer1.weight": "model-00001-of-00002.safetensors",
                                  "layer1.bias": "model-00001-of-00002.safetensors",
                                  "layer3.weight": "model-00001-of-00002.safetensors",
                                  "layer2.weight": "model-00002-of-00002.safetensors"}}, f)
    # Same tensor name in two shards (each shard is fine on its own).
    write("sharded/dup-a.safetensors", [("x", "F32", (2,), np.ones(2, np.float32).tobytes())])
    write("sharded/dup-b.safetensors", [("x", "F32", (2,), np.ones(2, np.float32).tobytes())])
    with open("sharded/bad-dup.index.json", "w") as f:
        f.write('{"weight_map": {"x": "dup-a.safetensors", "y": "dup-b.safetensors"}}')

    # Hostile single files.
    d8 = np.arange(4, dtype=np.float32).tobytes()
    raw_file("bad/overlap.safetensors",
             '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
             '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', d8)
    raw_file("bad/hole.safetensors",
             '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
             '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', d8)
    raw_file("bad/wrong_size.safetensors",
             '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}', d8)
    raw_file("bad/trailing.safetensors",
             '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}', d8)
    raw_file("bad/past_end.safetensors",
             '{"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}', d8)
    raw_file("bad/header_past_eof.safetensors", '{"a":1}', b"", n_override=4096)
    raw_file("bad/huge_header.safetensors", '{"a":1}', b"", n_override=200_000_000)
    raw_file("bad/dup_key.safetensors",
             '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
             '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d8[:8])
    raw_file("bad/unknown_dtype.safetensors",
             '{"a":{"dtype":"Q7","shape":[4],"data_offsets":[0,16]}}', d8)
    raw_file("bad/f8.safetensors",
             '{"a":{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}}', d8)
    raw_file("bad/non_utf8.safetensors",
             b'{"a\xff\xfe":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', d8)
    raw_file("bad/deep.safetensors", '{"a":' + "[" * 200 + "]" * 200 + "}", b"")
    raw_file("bad/not_object.safetensors", '{"a":[1,2]}', b"")
    raw_file("bad/bad_metadata.safetensors", '{"__metadata__":{"k":3}}', b"")
    raw_file("bad/neg_shape.safetensors",
             '{"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}', d8)
    raw_file("bad/end_before_begin.safetensors",
             '{"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}}', d8)
    raw_file("bad/overflow.safetensors",
             '{"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,16]}}', d8)
    raw_file("bad/bad_json.safetensors", '{"a":{"dtype":"F32",}}', b"")
    with open("bad/truncated.safetensors", "wb") as f:
        f.write(b"\x10\x00\x00")


if __name__ == "__main__":
    main()
