#!/usr/bin/env python3
"""NumPy reference of optim.method mezo-momentum (zo/mezo.h): MeZO's two-sided SPSA estimate with
heavy-ball momentum over the last W steps' seeded directions,

    u_t = -lr * sum_{s = t-W+1 .. t} beta^(t-s) * (1/n) sum_j g_{s,j} z_{s,j}   (applied once)
    g_{s,j} = (L(theta_s + eps z_{s,j}) - L(theta_s - eps z_{s,j})) / (2 eps)

on a toy quadratic, written as the plain math (a list of every step's gradients, no pending /
history bookkeeping), with z and the fused update from tools/zo_reference.py (the kernels'
bit-exact reference). Writes tests/fixtures/zo/momentum_reference.json, which
tests/zo/momentum_test.cc compares with zo::MezoSgd bit for bit.

    python3 tools/zo_momentum_reference.py

The toy loss is exact until its final sum: L = sum_i c_i (theta_i - 1/4)^2 with c_i = (i % 7 + 1)
/ 8, each term exact in double (a float's square has 48 bits), summed in index order.
"""
import json
import pathlib

import numpy as np

import zo_reference as ref

F = np.float32


def initial(count, dtype):
    values = np.array([((i * 37) % 101 - 50) / 64.0 for i in range(count)], F)
    return values if dtype == "f32" else (values.view(np.uint32) >> 16).astype(np.uint16)


def as_f32(theta, dtype):
    return theta if dtype == "f32" else (theta.astype(np.uint32) << 16).view(F)


def loss(params, dtype):
    total = 0.0
    for theta in params:
        for i, x in enumerate(as_f32(theta, dtype).tolist()):
            total += ((i % 7) + 1) / 8.0 * (x - 0.25) * (x - 0.25)
    return total


def apply_all(params, dtype, seed, decayable, terms, rounding_step, decay):
    """One fused pass over every parameter; decay only where the parameter is decayable."""
    return [ref.apply_z_terms(theta, dtype, pid, seed, terms, rounding_step,
                              float(F(decay)) if decayable[pid] else 1.0)
            for pid, theta in enumerate(params)]


def run(case):
    dtype, n, lr, eps, wd, beta, window, steps, seed = (
        case[k] for k in ("dtype", "samples", "lr", "eps", "weight_decay", "momentum", "window",
                          "steps", "seed"))
    sizes, decayable = case["sizes"], case["decayable"]
    params = [initial(c, dtype) for c in sizes]
    grads = []  # grads[s][j]: float32 projected gradient of step s, sample j
    slots = 2 * n + 1

    def update_terms(t):  # the update applied at the start of step t (or by finish after t-1)
        terms, weight = [], 1.0
        for s in range(t - 1, max(-1, t - 1 - window), -1):
            for j in range(n):
                scale = F(-lr * weight * float(grads[s][j]) / n)
                if scale != 0:
                    terms.append((s, j, float(scale)))
            weight *= beta
        return terms

    def apply(params, terms, rounding_step, decay):
        return apply_all(params, dtype, seed, decayable, terms, rounding_step, decay)

    decay = float(F(1.0 - lr * wd))
    for t in range(steps):
        if t > 0:
            params = apply(params, update_terms(t), t * slots, decay)
        losses = []
        for k in range(2 * n):
            sign = F(eps) if k % 2 == 0 else -F(eps)
            perturbed = apply(params, [(t, k // 2, float(sign))], t * slots + 1 + k, 1.0)
            losses.append(loss(perturbed, dtype))
        grads.append([F((losses[2 * j] - losses[2 * j + 1]) / (2.0 * eps)) for j in range(n)])
    params = apply(params, update_terms(steps), steps * slots, decay)  # finish()
    return {"grads": [[float(g) for g in row] for row in grads],
            "params": [ref.hexbytes(theta) for theta in params]}


CASES = [
    {"dtype": "f32", "samples": 1, "lr": 0.02, "eps": 1e-3, "weight_decay": 0.1, "momentum": 0.8,
     "window": 4, "steps": 7, "seed": 77, "sizes": [37, 50], "decayable": [True, False]},
    {"dtype": "bf16", "samples": 2, "lr": 0.01, "eps": 1e-2, "weight_decay": 0.0, "momentum": 0.9,
     "window": 3, "steps": 6, "seed": 5, "sizes": [41, 16], "decayable": [True, True]},
    {"dtype": "f32", "samples": 2, "lr": 0.02, "eps": 1e-3, "weight_decay": 0.0, "momentum": 0.5,
     "window": 1, "steps": 4, "seed": 9, "sizes": [33], "decayable": [False]},  # window 1: MeZO
]


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    doc = {"generator": "tools/zo_momentum_reference.py",
           "cases": [dict(case, **run(case)) for case in CASES]}
    out = root / "tests" / "fixtures" / "zo" / "momentum_reference.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out.relative_to(root)}")


if __name__ == "__main__":
    main()
