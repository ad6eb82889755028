#!/usr/bin/env bash
# The 3-seed table of docs/PERFORMANCE.md: MeZO with the shipped recipe settings on fine-food
# reviews, Austen novels and fortunes, seeds 1-3; zero-shot (step 0) vs the run's result (the
# best of steps 0, 30, 60 on the validation split), both on the task's whole test file.
# Usage: scripts/seed_table.sh [--method M] [--SECTION.KEY VALUE ...] [SEEDS...]
#   (default mezo-sgd, seeds 1 2 3); results: runs/table/results.jsonl, one line per run.
# --method sets optim.method, and the pairs after it override recipe keys in every run: that
# method's settings (e.g. --optim.lr 1e-5 --optim.momentum 0.8), or --placement.threads 1 for
# runs side by side. Give every method the recipe's forward passes (60 steps x 2 forwards of
# 16 prompts): fzoo runs samples + 1 forwards a step, so e.g. --optim.samples 4 --trainer.steps 24
# (--trainer.eval_interval 12 --trainer.save_interval 12 keeps three validations).
# The zero-shot accuracy depends on neither the seed nor the method: it is measured in mezo-sgd's
# seed 1 runs only.
set -euo pipefail
cd "$(dirname "$0")/.."
method=mezo-sgd
settings=()
while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do
  [ $# -ge 2 ] || { echo "seed_table.sh: $1 needs a value" >&2; exit 2; }
  case $1 in
    --method) method=$2 ;;
    --*.*) settings+=("$1" "$2") ;;
    *) echo "seed_table.sh: $1: only --method and --SECTION.KEY VALUE are options" >&2; exit 2 ;;
  esac
  shift 2
done
seeds=("$@")
# ZOFT: the binary to run (default build/release/zoft), e.g. a copy, so that rebuilding during a
# long table does not change the program halfway.
zoft=${ZOFT:-./build/release/zoft}
# TABLE: the directory of the runs and results.jsonl (default runs/table), e.g. one per seed for
# seeds run side by side.
table=${TABLE:-runs/table}
# TASKS: the tasks to run, in order (default all three).
read -r -a tasks <<< "${TASKS:-demo_fine_foods austen_novels fortunes}"
[ ${#seeds[@]} -eq 0 ] && seeds=(1 2 3)
./scripts/install_model.sh
mkdir -p "$table"
for seed in "${seeds[@]}"; do
  for task in "${tasks[@]}"; do
    out=$table/${task}_seed$seed
    [ "$method" != mezo-sgd ] && out=$table/${method}_${task}_seed$seed
    [ -f "$out.json" ] && continue
    before=true
    { [ "$seed" != 1 ] || [ "$method" != mezo-sgd ]; } && before=false
    rm -rf "$out"
    start=$(date +%s)
    "$zoft" train "recipes/$task.yaml" --trainer.seed "$seed" --optim.method "$method" \
      ${settings[@]+"${settings[@]}"} \
      --trainer.eval_before $before --trainer.output_dir "$out" --json 2> "$out.log" |
      tail -1 > "$out.json.tmp"
    seconds=$(( $(date +%s) - start ))
    python3 - "$method" "${settings[*]:-}" "$task" "$seed" "$seconds" "$out.json.tmp" "$out.log" \
      <<'PY' >> "$table/results.jsonl"
import json, re, sys
method, settings, task, seed, seconds, path, log = sys.argv[1:]
r = json.load(open(path))
text = open(log).read()
stopped = re.search(r"zoft: stopped early at step (\d+)", text)
best = re.search(r"ending with the best model, .*checkpoint-(\d+)", text)
print(json.dumps({"method": method, "settings": settings, "task": task, "seed": int(seed),
                  "before": r["accuracy_before"],
                  "after": r["accuracy_after"], "wall_s": int(seconds),
                  "best_step": int(best.group(1)) if best else r["steps"],
                  "stopped_early": int(stopped.group(1)) if stopped else None,
                  "final_train_loss": r["final_train_loss"]}))
PY
    mv "$out.json.tmp" "$out.json"
    tail -1 "$table/results.jsonl"
  done
done
