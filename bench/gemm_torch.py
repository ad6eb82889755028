#!/usr/bin/env python3
"""PyTorch peer of bench/gemm.cc: y = F.linear(x, W) on the same LLM shapes, f32 and bf16.

Run: python3 bench/gemm_torch.py [--threads 2] [--json out.json]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

# (M, N, K): M tokens, N outputs, K inputs. Same list as bench/gemm.cc.
SHAPES = [
    (2048, 768, 768),
    (2048, 3072, 768),
    (2048, 768, 3072),
    (2048, 50272, 768),
    (2048, 2048, 576),
    (2048, 1536, 576),
]


def time_it(fn, min_seconds=0.5):
    fn()  # warm-up: lets oneDNN / MKL pick and cache kernels
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and runs >= 3:
            return elapsed / runs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'M':>5} {'N':>6} {'K':>5} {'linear f32':>12} {'matmul f32':>12} {'linear bf16':>12} {'matmul bf16':>12}  GFLOP/s")
    results = []
    for m, n, k in SHAPES:
        row = {"M": m, "N": n, "K": k}
        for dtype, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            x = torch.randn(m, k, dtype=dtype)
            w = torch.randn(n, k, dtype=dtype)
            wt = w.t().contiguous()
            flops = 2.0 * m * n * k
            with torch.inference_mode():
                row[f"linear_{name}"] = flops / time_it(lambda: F.linear(x, w)) / 1e9
                row[f"matmul_{name}"] = flops / time_it(lambda: torch.matmul(x, wt)) / 1e9
        results.append(row)
        print(f"{m:>5} {n:>6} {k:>5} {row['linear_f32']:>12.1f} {row['matmul_f32']:>12.1f} "
              f"{row['linear_bf16']:>12.1f} {row['matmul_bf16']:>12.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
