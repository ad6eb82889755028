#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the release build, then the whole
# suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
python3 tools/check_layers.py

cmake --preset release >/dev/null
cmake --build --preset release
ctest --preset release

if [ "${ZOFT_SKIP_ASAN:-0}" != "1" ]; then
  cmake --preset debug-asan >/dev/null
  cmake --build --preset debug-asan
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --preset debug-asan
fi
[ "${ZOFT_SKIP_FUZZ:-0}" = "1" ] || ./scripts/fuzz.sh 20  # libFuzzer targets, 20 s each (fuzz/)
