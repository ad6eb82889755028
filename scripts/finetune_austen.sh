#!/usr/bin/env bash
# First-order fine-tuning on the embedded default: builds zoft, installs SmolLM2-135M if it is
# missing, then runs recipes/finetune_austen.yaml: AdamW on Pride and Prejudice (causal-LM
# blocks of 256 tokens), perplexity on the held-out Persuasion before and after, checkpoints,
# metrics.jsonl and TensorBoard under runs/finetune_austen. Run it again to resume after a
# crash. Extra arguments are recipe overrides (--trainer.steps 10 --trainer.output_dir runs/x).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target zoft
./scripts/install_model.sh
./build/release/zoft train recipes/finetune_austen.yaml "$@"
