#!/usr/bin/env python3
"""The markdown table of scripts/seed_table.sh's runs/table/results.jsonl (docs/PERFORMANCE.md).

Per task and method: zero-shot (mezo-sgd's seed-1 run; the same model for every seed and
method), the accuracy after each seed, mean +- sample standard deviation, the gain over
zero-shot, the best step each run ended with, and the wall time of each run.
Usage: scripts/seed_table_summary.py [RESULTS.jsonl ...]   (default runs/table/results.jsonl)
"""
import json
import statistics
import sys
from collections import defaultdict

paths = sys.argv[1:] or ["runs/table/results.jsonl"]
rows = [json.loads(line) for path in paths for line in open(path) if line.strip()]
zero_shot = {r["task"]: r["before"] for r in rows if r["before"] >= 0}


def method_of(row):
    """The method and its settings; placement keys (threads) do not change what is trained."""
    words = row.get("settings", "").split()
    pairs = [f"{k} {v}" for k, v in zip(words[::2], words[1::2]) if not k.startswith("--placement.")]
    return " ".join([row["method"]] + pairs)


runs = defaultdict(dict)
for r in rows:
    runs[(r["task"], method_of(r))][r["seed"]] = r

print("| task | method | zero-shot | after, seeds 1 / 2 / 3 | mean ± std | gain | best step | wall s |")
print("|---|---|---|---|---|---|---|---|")
for (task, method), by_seed in runs.items():
    seeds = sorted(by_seed)
    after = [by_seed[s]["after"] for s in seeds]
    z = zero_shot.get(task)
    mean = statistics.mean(after)
    std = statistics.stdev(after) if len(after) > 1 else float("nan")
    gain = f"{mean - z:+.3f}" if z is not None else "?"
    print(f"| {task} | {method} | {z if z is not None else '?'} | "
          f"{' / '.join(f'{a:.3f}' for a in after)} | {mean:.3f} ± {std:.3f} | {gain} | "
          f"{' / '.join(str(by_seed[s]['best_step']) for s in seeds)} | "
          f"{' / '.join(str(by_seed[s]['wall_s']) for s in seeds)} |")
