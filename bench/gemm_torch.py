#!/usr/bin/env python3
"""PyTorch peer of bench/gemm.cc: y = F.linear(x, W) on the same LLM shapes, f32 and bf16.

Run: python3 bench/gemm_torch.py [--threads 2] [--seconds 3] [--cpu-time] [--json out.json]
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


def best_times(fns, seconds, clock=time.perf_counter):
    """Best time of one call of each function; they take turns round after round until `seconds`
    have passed, so that on a shared machine each sees the same quiet moments (as bench/gemm.cc)."""
    for fn in fns:
        fn()  # warm-up: lets oneDNN / MKL pick and cache kernels
    best = [float("inf")] * len(fns)
    start, rounds = time.perf_counter(), 0
    while rounds < 3 or time.perf_counter() - start < seconds:
        for i, fn in enumerate(fns):
            t = clock()
            fn()
            best[i] = min(best[i], clock() - t)
        rounds += 1
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="per shape, all variants together")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time calls by process CPU time (for --threads 1 on a shared machine)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'M':>5} {'N':>6} {'K':>5} {'linear f32':>12} {'matmul f32':>12} {'linear bf16':>12} {'matmul bf16':>12}  GFLOP/s")
    results = []
    for m, n, k in SHAPES:
        row = {"M": m, "N": n, "K": k}
        fns, names = [], []
        for dtype, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            x = torch.randn(m, k, dtype=dtype)
            w = torch.randn(n, k, dtype=dtype)
            wt = w.t().contiguous()
            fns += [lambda x=x, w=w: F.linear(x, w), lambda x=x, wt=wt: torch.matmul(x, wt)]
            names += [f"linear_{name}", f"matmul_{name}"]
        with torch.inference_mode():
            times = best_times(fns, args.seconds, time.process_time if args.cpu_time else time.perf_counter)
        for name, t in zip(names, times):
            row[name] = 2.0 * m * n * k / t / 1e9
        results.append(row)
        print(f"{m:>5} {n:>6} {k:>5} {row['linear_f32']:>12.1f} {row['matmul_f32']:>12.1f} "
              f"{row['linear_bf16']:>12.1f} {row['matmul_bf16']:>12.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
