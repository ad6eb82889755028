#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the release build (gcc, with the CUDA
# backend where nvcc is installed; GPU tests skip themselves without a GPU), then the whole
# suite again under AddressSanitizer + UndefinedBehaviorSanitizer (clang), whose build also
# holds the libFuzzer targets that run last, 20 s each.
# The Python package (python/, installed by setup.sh) is tested with pytest after the release
# tests, against the release build's CLI.
#   ZOFT_SKIP_ASAN=1 / ZOFT_SKIP_FUZZ=1 / ZOFT_SKIP_PYTHON=1 leave a stage out.
set -euo pipefail
cd "$(dirname "$0")/.."

stage() { echo "== test.sh: $1 (at $((SECONDS / 60)) min $((SECONDS % 60)) s)"; }

stage "set-up"
./scripts/setup.sh
python3 tools/check_layers.py

stage "release build"
cmake --preset release >/dev/null
cmake --build --preset release
stage "release tests"
ctest --preset release
if [ "${ZOFT_SKIP_PYTHON:-0}" != "1" ]; then
  stage "python tests"
  ZOFT_CLI="$PWD/build/release/zoft" python3 -m pytest -q python/tests
fi

if [ "${ZOFT_SKIP_ASAN:-0}" != "1" ]; then
  stage "sanitizer build"
  cmake --preset debug-asan >/dev/null
  cmake --build --preset debug-asan
  stage "sanitizer tests"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset debug-asan
  fuzz_build=build/asan
else
  fuzz_build=""  # fuzz.sh configures a build of its own
fi
if [ "${ZOFT_SKIP_FUZZ:-0}" != "1" ]; then
  stage "fuzz"
  ZOFT_FUZZ_BUILD="$fuzz_build" ./scripts/fuzz.sh 20  # libFuzzer targets (fuzz/)
fi
stage "done"
