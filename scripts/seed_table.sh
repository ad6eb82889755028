#!/usr/bin/env bash
# The 3-seed table of docs/PERFORMANCE.md: MeZO with the shipped recipe settings on fine-food
# reviews, Austen novels and fortunes, seeds 1-3; zero-shot (step 0) vs the run's result (the
# best of steps 0, 30, 60 on the validation split), both on the task's whole test file.
# Usage: scripts/seed_table.sh [SEEDS...]   (default 1 2 3); results: runs/table/results.jsonl
# The zero-shot accuracy does not depend on the seed: it is measured in seed 1's runs only.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("$@")
[ ${#seeds[@]} -eq 0 ] && seeds=(1 2 3)
./scripts/install_model.sh
mkdir -p runs/table
for seed in "${seeds[@]}"; do
  for task in demo_fine_foods austen_novels fortunes; do
    out=runs/table/${task}_seed$seed
    [ -f "$out.json" ] && continue
    before=true
    [ "$seed" != 1 ] && before=false
    rm -rf "$out"
    start=$(date +%s)
    ./build/release/zoft train "recipes/$task.yaml" --trainer.seed "$seed" \
      --trainer.eval_before $before --trainer.output_dir "$out" --json 2> "$out.log" |
      tail -1 > "$out.json.tmp"
    python3 - "$task" "$seed" "$(( $(date +%s) - start ))" "$out.json.tmp" "$out.log" <<'PY' >> runs/table/results.jsonl
import json, re, sys
task, seed, seconds, path, log = sys.argv[1:]
r = json.load(open(path))
text = open(log).read()
stopped = re.search(r"zoft: stopped early at step (\d+)", text)
best = re.search(r"ending with the best model, .*checkpoint-(\d+)", text)
print(json.dumps({"task": task, "seed": int(seed), "before": r["accuracy_before"],
                  "after": r["accuracy_after"], "wall_s": int(seconds),
                  "best_step": int(best.group(1)) if best else r["steps"],
                  "stopped_early": int(stopped.group(1)) if stopped else None,
                  "final_train_loss": r["final_train_loss"]}))
PY
    mv "$out.json.tmp" "$out.json"
    tail -1 runs/table/results.jsonl
  done
done
