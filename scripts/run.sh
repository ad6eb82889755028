#!/usr/bin/env bash
# Installs what is missing, builds zoft, and runs the main job on the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --target zoft

model=tests/fixtures/golden/gemma3
./build/release/zoft inspect "$model"
