#!/usr/bin/env python3
"""NumPy reference of zoft's perturbation z and fused update (docs/zo-rng.md), and the writer of
the fixtures tests/fixtures/zo/*.json that tests/zo/ compares the C++ kernels with bit for bit.

    python3 tools/zo_reference.py            # self-test (Philox known answers), write fixtures

Every float operation below is a float32 NumPy operation (no FMA, correctly rounded), done in
the order docs/zo-rng.md prescribes; integer work is done in uint64 and masked to 32 bits.
"""
import json
import pathlib
import sys

import numpy as np

# ---- the reference: docs/zo-rng.md in code --------------------------------------------------
F, U32 = np.float32, 0xFFFFFFFF
LOG_Q = [F(v) for v in (-0.49999988079071045, 0.33333325386047363, -0.25001582503318787,
                        0.20001976191997528, -0.16609077155590057, 0.14181777834892273,
                        -0.13242976367473602, 0.1290469467639923, -0.07622110843658447)]
SIN_P = [F(v) for v in (6.2831854820251465, -41.34170150756836, 81.6052017211914,
                        -76.69786834716797, 41.47296142578125)]
COS_P = [F(v) for v in (-19.739208221435547, 64.93939208984375, -85.4567642211914,
                        60.23826217651367, -26.05941390991211)]


def philox(c, seed):  # c: 4 uint64 arrays of 32-bit values -> 4 arrays, Philox4x32-10
    k0, k1 = np.uint64(seed & U32), np.uint64(seed >> 32)
    c = [np.asarray(x, np.uint64) & np.uint64(U32) for x in c]
    for _ in range(10):
        p0, p1 = c[0] * np.uint64(0xD2511F53), c[2] * np.uint64(0xCD9E8D57)
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & np.uint64(U32),
             (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & np.uint64(U32)]
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & np.uint64(U32), (k1 + np.uint64(0xBB67AE85)) & np.uint64(U32)
    return c


def horner(coefs, x):
    p = np.full_like(x, coefs[-1])
    for c in coefs[-2::-1]:
        p = p * x + c
    return p


def uniform(x):  # 23 random bits -> (m + 0.5) / 2^23, exact, in [2^-24, 1 - 2^-24]
    return (x >> np.uint64(9)).astype(F) * F(2.0**-23) + F(2.0**-24)


def log(u):  # u = 2^e * m, m in [sqrt(1/2), sqrt(2)); log(1 + f) = f + f^2 Q(f)
    b = u.view(np.uint32).astype(np.int64)
    e, mb = (b >> 23) - 127, (b & 0x7FFFFF) | 0x3F800000
    big = mb > 0x3FB504F3
    e, mb = e + big, np.where(big, mb - 0x800000, mb)
    f = mb.astype(np.uint32).view(F) - F(1)
    p = f + (f * f) * horner(LOG_Q, f)
    ef = e.astype(F)
    return ef * F(0.693145751953125) + (ef * F(1.428606765330187e-06) + p)


def sincos_2pi(u):  # 2 pi u = 2 pi t + j pi/2 with |t| <= 1/8, both steps exact
    j = np.floor(u * F(4) + F(0.5))
    t = u - j * F(0.25)
    t2 = t * t
    s, c = t * horner(SIN_P, t2), F(1) + t2 * horner(COS_P, t2)
    q = j.astype(np.int64) & 3
    s, c = np.where(q & 1, c, s), np.where(q & 1, s, c)
    return np.where(q >= 2, -s, s), np.where((q == 1) | (q == 2), -c, c)


def normals(seed, param_id, step, sample, begin, count):
    i = np.arange(begin, begin + count, dtype=np.uint64)
    x = philox([i >> np.uint64(2), param_id, step & U32, sample], seed)
    lane = (i & np.uint64(3)).astype(np.int64)
    xa, xb = np.where(lane < 2, x[0], x[2]), np.where(lane < 2, x[1], x[3])
    r = np.sqrt(log(uniform(xa)) * F(-2))
    s, c = sincos_2pi(uniform(xb))
    return np.where(lane % 2 == 0, r * c, r * s)
# ---- end of the reference --------------------------------------------------------------------


def rounding_bits(seed, param_id, rounding_step, count):
    """16 random bits per element from the stochastic-rounding stream: element 8q + h takes
    half-word h (words in order, low half first) of the call with counter q."""
    i = np.arange(count, dtype=np.uint64)
    hi = 0x80000000 | ((rounding_step >> 32) & 0x7FFFFFFF)
    x = philox([i >> np.uint64(3), param_id, rounding_step & U32, hi], seed)
    h = (i & np.uint64(7)).astype(np.int64)
    word = np.choose(h // 2, x)
    return (word >> (np.uint64(16) * (h % 2).astype(np.uint64))) & np.uint64(0xFFFF)


def apply_z_terms(theta, dtype, param_id, seed, terms, rounding_step, decay):
    """theta: float32 values (f32) or uint16 bits (bf16); returns the new array."""
    n = theta.size
    acc = np.zeros(n, F)
    for step, sample, scale in terms:
        acc = acc + normals(seed, param_id, step, sample, 0, n) * F(scale)
    x = theta if dtype == "f32" else (theta.astype(np.uint32) << 16).view(F)
    y = x * F(decay) + acc
    if dtype == "f32":
        return y
    bits = y.view(np.uint32).astype(np.uint64)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    out = np.where(nan, (bits >> 16) | 0x40, (bits + rounding_bits(seed, param_id, rounding_step, n)) >> 16)
    return out.astype(np.uint16)


def self_test():
    kat = [([0, 0, 0, 0], 0, [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
           ([U32] * 4, U32 | (U32 << 32), [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
           ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], 0xA4093822 | (0x299F31D0 << 32),
            [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1])]
    for ctr, key, want in kat:
        got = [int(v[0]) for v in philox([np.array([v]) for v in ctr], key)]
        assert got == want, (ctr, [hex(v) for v in got])


def hexbytes(a):  # float32 or uint16 elements, little-endian
    return a.astype("<f4" if a.dtype == F else "<u2").tobytes().hex()


def fnv1a64(words):
    h = 0xCBF29CE484222325
    for w in words.view(np.uint32).tolist():
        h = ((h ^ w) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


NORMAL_CASES = [  # seed, param_id, step, sample, begin, count
    (0, 0, 0, 0, 0, 1024),
    (42, 7, 1, 1, 3, 1001),
    (0xDEADBEEFCAFEF00D, 0xFFFFFFFF, (1 << 32) + 5, 3, 1_000_000_001, 333),
    (1234567, 12, 1000, 0, (1 << 33) + 1, 77),
    (1, 1, 123456789, 0x7FFFFFFF, 65, 130),
    (1 << 63, 3, 0, 0, 0, 5),
    (2024, 5, 17, 2, 62, 3),
]
HASH_CASES = [(99, 2, 3, 0, 0, 1 << 20), (7, 100, 250, 1, 12345, 999_999)]
APPLY_CASES = [  # dtype, n, param_id, seed, terms, rounding_step, decay
    ("f32", 1003, 4, 11, [(5, 0, 1e-3), (5, 1, -2e-3), (4, 0, -3.5e-5)], 0, 1.0),
    ("f32", 517, 9, 12, [(8, 0, -2e-3)], 0, 0.999),
    ("bf16", 1003, 4, 13, [(5, 0, 1e-3), (6, 0, 2e-3)], 7, 1.0),
    ("bf16", 258, 1, 14, [(3, 1, 1e-7)], (1 << 32) + 3, 0.99),
    ("bf16", 64, 0, 15, [], 2, 0.5),
]


def make_fixtures(out_dir):
    rng = np.random.default_rng(0)
    cases = []
    for seed, pid, step, sample, begin, count in NORMAL_CASES:
        z = normals(seed, pid, step, sample, begin, count)
        cases.append(dict(seed=str(seed), param_id=pid, step=str(step), sample=sample,
                          begin=begin, count=count, z=hexbytes(z)))
    for seed, pid, step, sample, begin, count in HASH_CASES:
        z = normals(seed, pid, step, sample, begin, count)
        cases.append(dict(seed=str(seed), param_id=pid, step=str(step), sample=sample,
                          begin=begin, count=count, fnv1a64=str(fnv1a64(z))))
    apply = []
    for dtype, n, pid, seed, terms, rstep, decay in APPLY_CASES:
        theta = rng.standard_normal(n).astype(F) * F(0.05)
        if dtype == "bf16":
            theta = (theta.view(np.uint32) >> 16).astype(np.uint16)
        theta[min(5, n - 1)] = 0  # a zero (of either type) stays covered
        out = apply_z_terms(theta, dtype, pid, seed, terms, rstep, decay)
        apply.append(dict(dtype=dtype, param_id=pid, seed=str(seed), rounding_step=str(rstep),
                          decay=decay, terms=[dict(step=str(s), sample=j, scale=c) for s, j, c in terms],
                          theta=hexbytes(theta), out=hexbytes(out)))
    doc = {"about": "made by tools/zo_reference.py; hex = little-endian element bytes",
           "numpy_version": np.__version__, "normals": cases, "apply": apply}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "zo_reference.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    self_test()
    root = pathlib.Path(__file__).resolve().parent.parent
    make_fixtures(root / "tests" / "fixtures" / "zo")
    print("philox known answers ok; wrote tests/fixtures/zo/zo_reference.json", file=sys.stderr)
