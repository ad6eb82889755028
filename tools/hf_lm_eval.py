#!/usr/bin/env python3
"""Reference eval loss of a causal-LM checkpoint with transformers, on the blocks zoft's
data.format text makes (data/causal_lm.h): each line of a TXT file one document with its "\n"
(HF's text loader, keep_linebreaks), tokenizer(text) + EOS per document, 1000 documents
concatenated at a time and cut into block_size blocks, the remainder dropped (run_clm's
group_texts). Prints the mean next-token loss over the first N blocks and its exponential,
to compare with zoft's eval/loss and eval/perplexity.

  python3 tools/hf_lm_eval.py CHECKPOINT_DIR datasets/austen/persuasion.txt.xz --blocks 16
"""
import argparse
import lzma
import math

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def read_lines(path):
    opener = lzma.open if path.endswith(".xz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines(keepends=True)


def lm_blocks(lines, tokenizer, block_size, limit):
    blocks = []
    for start in range(0, len(lines), 1000):
        ids = []
        for line in lines[start:start + 1000]:
            ids += tokenizer(line)["input_ids"] + [tokenizer.eos_token_id]
        usable = len(ids) // block_size * block_size
        blocks += [ids[i:i + block_size] for i in range(0, usable, block_size)]
        if len(blocks) >= limit:
            break
    return blocks[:limit]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--blocks", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=256)
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    blocks = lm_blocks(read_lines(args.data), tokenizer, args.block_size, args.blocks)
    total, count = 0.0, 0
    with torch.no_grad():
        for block in blocks:  # every block has block_size - 1 targets: the mean of the means
            ids = torch.tensor([block])
            total += model(input_ids=ids, labels=ids).loss.double().item()
            count += 1
    loss = total / count
    print(f"{args.model}: {count} blocks, eval loss {loss:.6f}, perplexity {math.exp(loss):.4f}")


if __name__ == "__main__":
    main()
