#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds zoft, installs the demo
# model, then runs recipes/demo_fine_foods.yaml: evaluation before, MeZO fine-tuning (forward
# passes only), evaluation after. Extra arguments are recipe overrides (--trainer.steps 20).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target zoft
./scripts/install_model.sh
./build/release/zoft inspect models/smollm2-135m
./build/release/zoft train recipes/demo_fine_foods.yaml "$@"
