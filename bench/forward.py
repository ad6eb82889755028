#!/usr/bin/env python3
"""Forward-pass tokens/s: zoft vs PyTorch (HF transformers) on the same random models, same
shapes, same thread count, in one run. Models of ~100M+ parameters per family are built from
configs with random weights and saved as HF directories that both sides load.

  python3 bench/forward.py [--batch 8] [--seq 256] [--threads 2] [--archs opt,gpt2,...]
                           [--dtypes f32,bf16] [--rounds 1] [--out bench/results/forward.json]
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import transformers

CONFIGS = {
    # OPT-125m
    "opt": lambda: transformers.OPTConfig(hidden_size=768, num_hidden_layers=12, ffn_dim=3072,
                                          num_attention_heads=12, vocab_size=50272,
                                          max_position_embeddings=2048),
    # GPT-2 small
    "gpt2": lambda: transformers.GPT2Config(n_embd=768, n_layer=12, n_head=12, vocab_size=50257),
    # SmolLM2-135M shape
    "llama": lambda: transformers.LlamaConfig(hidden_size=576, num_hidden_layers=30,
                                              num_attention_heads=9, num_key_value_heads=3,
                                              intermediate_size=1536, vocab_size=49152,
                                              tie_word_embeddings=True, rope_theta=100000.0),
    # Qwen3 family, scaled to ~150M
    "qwen3": lambda: transformers.Qwen3Config(hidden_size=768, num_hidden_layers=12,
                                              num_attention_heads=12, num_key_value_heads=4,
                                              head_dim=64, intermediate_size=2048,
                                              vocab_size=151936, tie_word_embeddings=True),
    # Gemma-3-270M shape
    "gemma3": lambda: transformers.Gemma3TextConfig(hidden_size=640, num_hidden_layers=18,
                                                    num_attention_heads=4, num_key_value_heads=1,
                                                    head_dim=256, intermediate_size=2048,
                                                    vocab_size=262144, sliding_window=512,
                                                    query_pre_attn_scalar=256),
}


def make_model(arch, root):
    path = os.path.join(root, arch)
    if not os.path.exists(os.path.join(path, "config.json")):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(CONFIGS[arch](), dtype=torch.float32)
        model.save_pretrained(path, safe_serialization=True)
    return path


def forward_flops(model, tokens, seq):
    """2 x tokens x matmul parameters + causal attention (QK^T and PV, half the square)."""
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    matmul = 0
    for name, p in model.named_parameters():
        if p.dim() == 2 and "embed" not in name and "wte" not in name and "wpe" not in name:
            matmul += p.numel()
    vocab, hidden = model.get_output_embeddings().weight.shape
    if model.get_output_embeddings().weight is model.get_input_embeddings().weight:
        matmul += vocab * hidden  # tied head is an extra GEMM
    layers = cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    attention = 2 * 2 * tokens * seq / 2 * heads * head_dim * layers
    return 2 * tokens * matmul + attention


def load_torch(path, dtype):
    tdtype = torch.float32 if dtype == "f32" else torch.bfloat16
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=tdtype,
                                                             attn_implementation="sdpa").eval()


def time_torch(model, batch, seq, iters):
    """Best of `iters` forwards after one warm-up."""
    vocab = model.config.vocab_size
    g = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        model(input_ids=ids, attention_mask=mask)  # warm-up
        best = 1e30
        for _ in range(iters):
            t = time.perf_counter()
            model(input_ids=ids, attention_mask=mask).logits
            best = min(best, time.perf_counter() - t)
    return best


def time_zoft(args, path, dtype):
    out = subprocess.run([args.zoft, path, "--batch", str(args.batch), "--seq", str(args.seq),
                          "--dtype", dtype, "--threads", str(args.threads), "--iters",
                          str(args.iters)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate PyTorch and zoft this many times, keep each side's best "
                         "(a VM whose speed drifts over minutes hits both sides alike)")
    ap.add_argument("--archs", default="opt,gpt2,llama,qwen3,gemma3")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--models", default="/tmp/zoft_bench_models")
    ap.add_argument("--zoft", default="build/release/bench_forward")
    ap.add_argument("--peak-gflops", type=float, default=0.0,
                    help="measured GEMM peak per dtype is printed by bench_gemm; f32 value here")
    ap.add_argument("--out", default="bench/results/forward.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'arch':8} {'dtype':5} {'params':>8} {'torch tok/s':>12} {'zoft tok/s':>11} "
          f"{'ratio':>6} {'zoft GFLOP/s':>13}  zoft CPU path")
    for arch in args.archs.split(","):
        path = make_model(arch, args.models)
        for dtype in args.dtypes.split(","):
            model = load_torch(path, dtype)
            flops = forward_flops(model, args.batch * args.seq, args.seq)
            torch_runs, zoft_runs = [], []
            for _ in range(args.rounds):
                torch_runs.append(time_torch(model, args.batch, args.seq, args.iters))
                zoft_runs.append(time_zoft(args, path, dtype))
            del model
            torch_s = min(torch_runs)
            z = min(zoft_runs, key=lambda r: r["best_s"])
            tokens = args.batch * args.seq
            row = {"arch": arch, "dtype": dtype, "batch": args.batch, "seq": args.seq,
                   "threads": args.threads, "parameters": z["parameters"],
                   "torch_tokens_per_s": tokens / torch_s, "zoft_tokens_per_s": z["tokens_per_s"],
                   "ratio": z["tokens_per_s"] / (tokens / torch_s), "gflop": flops / 1e9,
                   "zoft_gflops": flops / 1e9 / z["best_s"], "torch_gflops": flops / 1e9 / torch_s,
                   "rounds": args.rounds, "torch_s_per_round": torch_runs,
                   "zoft_s_per_round": [r["best_s"] for r in zoft_runs]}
            row["zoft_cpu_path"] = z.get("cpu_path", "?")
            rows.append(row)
            print(f"{arch:8} {dtype:5} {z['parameters']/1e6:7.1f}M {row['torch_tokens_per_s']:12.1f} "
                  f"{row['zoft_tokens_per_s']:11.1f} {row['ratio']:6.2f} {row['zoft_gflops']:13.1f}  {row['zoft_cpu_path']}",
                  flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
