#!/usr/bin/env python3
"""Writes the tiny GGUF fixtures of tests/io/gguf_test.cc with gguf-py (pip install gguf).

  meta.gguf    one metadata key per value type (scalars, strings, arrays of each element type,
               nested arrays), general.alignment = 64 and two small F32 tensors.
  quants.gguf  for each supported GGML type a [2, 512] tensor `<type>` of random-but-valid
               blocks (random f16 scales, random quant bytes) and `<type>.ref`, its f32 values
               from gguf.quants.dequantize (the reference implementation in Python). Q8_K has
               no Python dequantiser; its reference is d * q computed here in f32.

Deterministic (fixed seed); rerun after changing it and commit the outputs:
  python3 tools/make_gguf_fixtures.py [--out tests/fixtures/gguf]
"""
import argparse
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

ROWS, COLS = 2, 512


def f16_scales(rng, n):
    """Random f16 scales as bytes, with a zero, a negative and a subnormal among them."""
    s = (rng.standard_normal(n) * 0.05).astype(np.float16)
    s[0] = 0.0
    if n > 2:
        s[1] = -abs(s[1])
        s[2] = np.float16(3e-6)  # subnormal in f16, normal in f32
    return s.view(np.uint8).reshape(n, 2)


def random_blocks(rng, qtype, n_blocks):
    """n_blocks blocks of qtype as an (n_blocks, type_size) uint8 array."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    b = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    # Offsets of the f16 fields in each layout (ggml-common.h); the rest stays random bytes.
    f16_fields = {
        T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
        T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    }
    for off in f16_fields.get(qtype, []):
        b[:, off:off + 2] = f16_scales(rng, n_blocks)
    if qtype == T.Q8_K:  # d is an f32; bsums are not used by dequantisation
        b[:, 0:4] = (rng.standard_normal(n_blocks) * 0.01).astype(np.float32).view(np.uint8).reshape(-1, 4)
    return b


def reference(qtype, data):
    if qtype == T.Q8_K:
        d = data[:, 0:4].copy().view(np.float32)          # (n_blocks, 1)
        q = data[:, 4:260].copy().view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    return gguf.quants.dequantize(data, qtype).reshape(-1)


def write_quants(path, rng):
    w = gguf.GGUFWriter(path, arch="zoft-test")
    # Plain types: every bit pattern is valid, so f16 / bf16 include Inf, NaN and subnormals.
    f32 = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    f32[0, :4] = [np.inf, -0.0, 1e-40, np.nan]
    f16 = rng.integers(0, 1 << 16, size=(ROWS, COLS), dtype=np.uint16)
    bf16 = rng.integers(0, 1 << 16, size=(ROWS, COLS), dtype=np.uint16)
    w.add_tensor("F32", f32)
    w.add_tensor("F32.ref", f32.copy())
    w.add_tensor("F16", f16.view(np.float16))
    w.add_tensor("F16.ref", f16.view(np.float16).astype(np.float32))
    w.add_tensor("BF16", bf16.view(np.uint8).reshape(ROWS, -1), raw_dtype=T.BF16)
    w.add_tensor("BF16.ref", (bf16.astype(np.uint32) << 16).view(np.float32))
    for qtype in [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]:
        block_size, _ = gguf.GGML_QUANT_SIZES[qtype]
        blocks = random_blocks(rng, qtype, ROWS * COLS // block_size)
        ref = reference(qtype, blocks).astype(np.float32).reshape(ROWS, COLS)
        assert np.isfinite(ref).all(), qtype.name
        w.add_tensor(qtype.name, blocks.reshape(ROWS, -1), raw_dtype=qtype)
        w.add_tensor(qtype.name + ".ref", ref)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_meta(path):
    w = gguf.GGUFWriter(path, arch="zoft-test")
    w.add_custom_alignment(64)
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 0.25)
    w.add_bool("t.bool", True)
    w.add_string("t.string", "héllo ✓")
    w.add_uint64("t.u64", 1 << 40)
    w.add_int64("t.i64", -(1 << 40))
    w.add_float64("t.f64", -1.5)
    w.add_array("t.arr.string", ["a", "", "ĠHello", "<0x0A>"])
    w.add_key_value("t.arr.u8", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    w.add_key_value("t.arr.i8", [-1, 2, -128], V.ARRAY, sub_type=V.INT8)
    w.add_key_value("t.arr.u16", [1, 65535], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("t.arr.i16", [-1, 32767], V.ARRAY, sub_type=V.INT16)
    w.add_key_value("t.arr.u32", [7, 4000000000], V.ARRAY, sub_type=V.UINT32)
    w.add_key_value("t.arr.i32", [3, -1, 2147483647], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("t.arr.u64", [1, 1 << 40], V.ARRAY, sub_type=V.UINT64)
    w.add_key_value("t.arr.i64", [-5, 1 << 40], V.ARRAY, sub_type=V.INT64)
    w.add_key_value("t.arr.f32", [0.5, -2.0, 1e-3], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("t.arr.f64", [0.5, -2.5], V.ARRAY, sub_type=V.FLOAT64)
    w.add_key_value("t.arr.bool", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    w.add_array("t.arr.nested", [[1, 2], [3, 4, 5]])  # array of arrays of i32
    w.add_array("t.arr.nested_str", [["x", "y"], ["z"]])
    # A 3-D tensor checks the dim order (HF [2, 3, 4] is GGUF ne = {4, 3, 2}); the second
    # tensor's offset must be padded to 64.
    w.add_tensor("cube", np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    w.add_tensor("vec", np.array([1.0, -1.0, 0.5], dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "gguf"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_meta(os.path.join(args.out, "meta.gguf"))
    write_quants(os.path.join(args.out, "quants.gguf"), np.random.default_rng(20240601))
    for name in ("meta.gguf", "quants.gguf"):
        print(name, os.path.getsize(os.path.join(args.out, name)), "bytes")


if __name__ == "__main__":
    main()
