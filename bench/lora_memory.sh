#!/usr/bin/env bash
# Peak RSS of AdamW-LoRA training against the frozen base's bytes (issue 15's memory goal:
# under 1.3x), with a breakdown sampled from /proc/PID/status every 0.1 s: file-backed pages
# (the mmap-ed base plus the binary's and libraries' code) and anonymous memory (tokenizer,
# data, adapters, optimizer state, activations, LM-head chunk, allocator slack) once the base
# is mapped, at the peak and at the end.
#
#   bench/lora_memory.sh ZOFT MODEL_DIR [extra zoft train options...]
# e.g. bench/lora_memory.sh build/release/zoft models/gemma3-270m
set -euo pipefail
zoft=$1 model=$2
shift 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$zoft" train recipes/finetune_austen.yaml --model.path "$model" --peft.method lora \
  --peft.r 8 --peft.alpha 16 --peft.target_modules all-linear --trainer.batch_size 1 \
  --trainer.gradient_checkpointing true --trainer.steps 2 --trainer.save_interval 0 \
  --logging.tensorboard false --trainer.output_dir "$out/run" "$@" >"$out/log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  awk '/^(VmHWM|RssAnon|RssFile):/{printf "%s %s ", $1, $2} END{print ""}' \
    "/proc/$pid/status" 2>/dev/null >>"$out/rss" || true
  sleep 0.1
done
wait "$pid" || { cat "$out/log"; exit 1; }
tail -1 "$out/log"
base=0
for f in "$model"/*.safetensors; do base=$((base + $(stat -c %s "$f"))); done
# Each line: VmHWM: a RssAnon: b RssFile: c (kB).
awk -v base="$base" '
  NF >= 6 { hwm = $2; anon = $4; file = $6
            if (file * 1024 >= 0.95 * base && !loaded) { loaded = 1; load_anon = anon }
            if (hwm > peak) { peak = hwm; peak_anon = anon; peak_file = file }
            last_anon = anon }
  END {
    printf "base weights (safetensors bytes)       %8.1f MiB\n", base / 1048576
    printf "peak RSS (VmHWM)                       %8.1f MiB = %.3fx the base\n", peak / 1024, peak * 1024 / base
    printf "  file-backed at the peak              %8.1f MiB (%.1f MiB beyond the base: code)\n", peak_file / 1024, (peak_file * 1024 - base) / 1048576
    printf "  anonymous at the peak                %8.1f MiB\n", peak_anon / 1024
    printf "    of which present once base mapped  %8.1f MiB (runtime, libraries, data)\n", load_anon / 1024
    printf "    of which added by eval + training  %8.1f MiB (adapters, grads, AdamW, activations, LM-head chunk)\n", (peak_anon - load_anon) / 1024
    printf "  anonymous at the end                 %8.1f MiB\n", last_anon / 1024
  }' "$out/rss"
