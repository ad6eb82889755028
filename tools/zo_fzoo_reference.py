#!/usr/bin/env python3
"""NumPy reference of optim.method fzoo (zo/mezo.h; Dang et al. 2025, arXiv 2506.09034): n
one-sided estimates around one unperturbed forward, normalised by the spread of the perturbed
losses,

    L_0 = L(theta_t), L_j = L(theta_t + eps z_{t,j}), sigma_t = std(L_1..L_n) (n - 1 denominator)
    g_{t,j} = (L_j - L_0) / (eps sigma_t)          (0 for every j when sigma_t = 0)
    theta_{t+1} = theta_t - lr / n sum_j g_{t,j} z_{t,j}   (applied once, at the next step)

on the toy quadratic of tools/zo_momentum_reference.py, with z and the fused update from
tools/zo_reference.py (the kernels' bit-exact reference). Writes
tests/fixtures/zo/fzoo_reference.json, which tests/zo/fzoo_test.cc compares with zo::MezoSgd
(estimator Fzoo) bit for bit.

    python3 tools/zo_fzoo_reference.py
"""
import json
import math
import pathlib

import numpy as np

import zo_reference as ref
from zo_momentum_reference import apply_all, initial, loss

F = np.float32


def sigma(perturbed):  # in double, summed in index order as the C++ does
    mean = 0.0
    for x in perturbed:
        mean += x
    mean /= len(perturbed)
    squares = 0.0
    for x in perturbed:
        squares += (x - mean) * (x - mean)
    return math.sqrt(squares / (len(perturbed) - 1))


def run(case):
    dtype, n, lr, eps, wd, steps, seed = (
        case[k] for k in ("dtype", "samples", "lr", "eps", "weight_decay", "steps", "seed"))
    sizes, decayable = case["sizes"], case["decayable"]
    params = [initial(c, dtype) for c in sizes]
    grads = []  # grads[t][j]: float32 g of step t, sample j
    slots = 2 * n + 1  # rounding streams per step, as MeZO's (slot 0 the update, 1 + k forward k)

    def update_terms(t):  # the update applied at the start of step t (or by finish after t-1)
        terms = []
        for j in range(n):
            scale = F(-lr * float(grads[t - 1][j]) / n)
            if scale != 0:
                terms.append((t - 1, j, float(scale)))
        return terms

    def apply(params, terms, rounding_step, decay):
        return apply_all(params, dtype, seed, decayable, terms, rounding_step, decay)

    decay = float(F(1.0 - lr * wd))
    for t in range(steps):
        if t > 0:
            params = apply(params, update_terms(t), t * slots, decay)
        losses = [loss(params, dtype)]  # forward 0: the weights themselves
        for j in range(n):
            perturbed = apply(params, [(t, j, float(F(eps)))], t * slots + 2 + j, 1.0)
            losses.append(loss(perturbed, dtype))
        s = sigma(losses[1:])
        grads.append([F(0.0 if s == 0 else (losses[1 + j] - losses[0]) / (eps * s))
                      for j in range(n)])
    params = apply(params, update_terms(steps), steps * slots, decay)  # finish()
    return {"grads": [[float(g) for g in row] for row in grads],
            "params": [ref.hexbytes(theta) for theta in params]}


CASES = [
    {"dtype": "f32", "samples": 4, "lr": 2e-4, "eps": 1e-3, "weight_decay": 0.1, "steps": 6,
     "seed": 77, "sizes": [37, 50], "decayable": [True, False]},
    {"dtype": "bf16", "samples": 3, "lr": 1e-3, "eps": 1e-2, "weight_decay": 0.0, "steps": 5,
     "seed": 5, "sizes": [41, 16], "decayable": [True, True]},
    {"dtype": "f32", "samples": 2, "lr": 5e-4, "eps": 1e-3, "weight_decay": 0.0, "steps": 4,
     "seed": 9, "sizes": [33], "decayable": [False]},
]


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    doc = {"generator": "tools/zo_fzoo_reference.py",
           "cases": [dict(case, **run(case)) for case in CASES]}
    out = root / "tests" / "fixtures" / "zo" / "fzoo_reference.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out.relative_to(root)}")


if __name__ == "__main__":
    main()
