#!/usr/bin/env python3
"""First-order training step tokens/s and peak RSS: zoft vs PyTorch (transformers + torch.optim.AdamW),
the same model, batch, sequence length, threads, with and without activation checkpointing, in
one run. A step is forward + backward (mean next-token cross-entropy) + clip_grad_norm_(1.0) +
AdamW update. Each measurement runs in its own process so that peak RSS is its own.

  python3 bench/train_step.py [--batch 4] [--seq 256] [--threads 2] [--archs llama]
                              [--out bench/results/train_step.json]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def torch_step(path, batch, seq, steps, threads, checkpointing):
    """Runs in a child process: prints best step seconds and peak RSS (MB) as JSON."""
    import torch
    import transformers
    torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                              attn_implementation="sdpa")
    model.train()
    model.config.use_cache = False
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-5)
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=g)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    best = 1e30
    for _ in range(steps):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"best_s": best, "peak_rss_mb": rss}))


def run_torch(path, args, checkpointing):
    out = subprocess.run([sys.executable, __file__, "--torch-child", path, "--batch",
                          str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps),
                          "--threads", str(args.threads), "--checkpointing", str(int(checkpointing))],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_zoft(path, args, checkpointing):
    out = subprocess.run([args.zoft, path, "--batch", str(args.batch), "--seq", str(args.seq),
                          "--threads", str(args.threads), "--steps", str(args.steps),
                          "--checkpointing", str(int(checkpointing))],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--archs", default="llama")
    ap.add_argument("--models", default="/tmp/zoft_bench_models")
    ap.add_argument("--zoft", default="build/release/bench_train_step")
    ap.add_argument("--out", default="bench/results/train_step.json")
    ap.add_argument("--torch-child", default=None)
    ap.add_argument("--checkpointing", type=int, default=0)
    args = ap.parse_args()
    if args.torch_child:
        return torch_step(args.torch_child, args.batch, args.seq, args.steps, args.threads,
                          bool(args.checkpointing))
    import torch
    import transformers
    from forward import make_model
    rows = []
    print(f"{'arch':8} {'ckpt':5} {'torch tok/s':>12} {'zoft tok/s':>11} {'ratio':>6} "
          f"{'torch MB':>9} {'zoft MB':>8}")
    for arch in args.archs.split(","):
        path = make_model(arch, args.models)
        for ckpt in (False, True):
            t = run_torch(path, args, ckpt)
            z = run_zoft(path, args, ckpt)
            tokens = args.batch * args.seq
            row = {"arch": arch, "checkpointing": ckpt, "batch": args.batch, "seq": args.seq,
                   "threads": args.threads, "parameters": z["parameters"],
                   "torch_tokens_per_s": tokens / t["best_s"],
                   "zoft_tokens_per_s": z["tokens_per_s"],
                   "ratio": z["tokens_per_s"] / (tokens / t["best_s"]),
                   "torch_peak_rss_mb": t["peak_rss_mb"], "zoft_peak_rss_mb": z["peak_rss_mb"],
                   "torch_step_s": t["best_s"], "zoft_step_s": z["best_s"]}
            rows.append(row)
            print(f"{arch:8} {str(ckpt):5} {row['torch_tokens_per_s']:12.1f} "
                  f"{row['zoft_tokens_per_s']:11.1f} {row['ratio']:6.2f} "
                  f"{row['torch_peak_rss_mb']:9.0f} {row['zoft_peak_rss_mb']:8.0f}", flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
