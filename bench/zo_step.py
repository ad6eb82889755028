#!/usr/bin/env python3
"""ZO (MeZO-SGD) step tokens/s: zoft vs a PyTorch MeZO loop, same model, batch, sequence
length, samples and threads, in one run. The PyTorch loop is MeZO's algorithm as its reference
implementation runs it: perturb every parameter in place with z from a seeded generator
(+eps), forward, perturb (-2 eps), forward, restore (+eps), then update theta -= lr * g * z
with z regenerated from the same seed.

  python3 bench/zo_step.py [--batch 8] [--seq 256] [--threads 2] [--archs llama,opt]
                           [--dtypes f32,bf16] [--out bench/results/zo_step.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forward import make_model  # noqa: E402


def perturb(model, seed, scale):
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        z = torch.normal(0.0, 1.0, size=p.shape, generator=gen, dtype=p.dtype)
        p.data.add_(z, alpha=scale)


def mezo_step(model, ids, mask, labels, seed, lr, eps):
    perturb(model, seed, eps)
    loss_plus = model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    perturb(model, seed, -2 * eps)
    loss_minus = model(input_ids=ids, attention_mask=mask, labels=labels).loss.item()
    perturb(model, seed, eps)
    g = (loss_plus - loss_minus) / (2 * eps)
    perturb(model, seed, -lr * g)
    return loss_plus, loss_minus


def time_torch(path, dtype, batch, seq, steps):
    tdtype = torch.float32 if dtype == "f32" else torch.bfloat16
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=tdtype,
                                                              attn_implementation="sdpa").eval()
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        mezo_step(model, ids, mask, ids, 0, 1e-6, 1e-3)  # warm-up
        best = 1e30
        for step in range(steps):
            t = time.perf_counter()
            mezo_step(model, ids, mask, ids, step + 1, 1e-6, 1e-3)
            best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--archs", default="llama,opt")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--models", default="/tmp/zoft_bench_models")
    ap.add_argument("--zoft", default="build/release/bench_zo_step")
    ap.add_argument("--out", default="bench/results/zo_step.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'arch':8} {'dtype':5} {'torch tok/s':>12} {'zoft tok/s':>11} {'ratio':>6}  zoft CPU path")
    for arch in args.archs.split(","):
        path = make_model(arch, args.models)
        for dtype in args.dtypes.split(","):
            torch_s = time_torch(path, dtype, args.batch, args.seq, args.steps)
            out = subprocess.run([args.zoft, path, "--batch", str(args.batch), "--seq",
                                  str(args.seq), "--dtype", dtype, "--threads", str(args.threads),
                                  "--steps", str(args.steps)],
                                 check=True, capture_output=True, text=True).stdout
            z = json.loads(out.strip().splitlines()[-1])
            tokens = args.batch * args.seq
            row = {"arch": arch, "dtype": dtype, "batch": args.batch, "seq": args.seq,
                   "threads": args.threads, "torch_tokens_per_s": tokens / torch_s,
                   "zoft_tokens_per_s": z["tokens_per_s"],
                   "ratio": z["tokens_per_s"] / (tokens / torch_s),
                   "torch_step_s": torch_s, "zoft_step_s": z["best_s"]}
            row["zoft_cpu_path"] = z.get("cpu_path", "?")
            rows.append(row)
            print(f"{arch:8} {dtype:5} {row['torch_tokens_per_s']:12.1f} "
                  f"{row['zoft_tokens_per_s']:11.1f} {row['ratio']:6.2f}  {row['zoft_cpu_path']}", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
