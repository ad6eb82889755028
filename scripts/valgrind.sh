#!/usr/bin/env bash
# Runs the parser test suites (io, text, data, optim state, recipe / metrics) under valgrind memcheck: reads
# of uninitialised memory, invalid reads / writes and definite leaks that ASan (scripts/test.sh)
# does not see. Opt-in, not part of CI; about 10 minutes on 2 cores.
#
# Builds the portable configuration (preset `portable`: no -march=native, since valgrind does not
# know AVX-512) into build/portable. Prints "valgrind: clean" and exits 0, or names the unclean
# suites (their reports are in build/portable/valgrind/<suite>.log) and exits 1.
#   ZOFT_VALGRIND_FILTER_<suite>=... replaces a suite's gtest filter (suite: io text data optim
#   train).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v valgrind >/dev/null || {
  echo "valgrind: not installed (apt-get install valgrind)" >&2
  exit 2
}

mkdir -p build/portable
cmake --preset portable >/dev/null
if ! cmake --build --preset portable --target test_io test_text test_data test_optim test_train \
  >build/portable/valgrind-build.log 2>&1; then
  tail -n 30 build/portable/valgrind-build.log
  echo "valgrind: the portable build failed (build/portable/valgrind-build.log)"
  exit 2
fi

# What each suite runs under memcheck (~10-30x slower than native). Left out: the CLI tests
# (their work happens in a child zoft process, which valgrind does not follow), the corpus
# timing test, and the training runs (not parsers). optim runs whole: its state files
# (optimizer.json / .safetensors, loaded and refused) and the PyTorch fixture, on small tensors.
declare -A filters=(
  [io]='*'
  [text]='-TokenizeCli.*:CorpusTiming.*'
  [data]='*'
  [optim]='*'
  [train]='Recipe.*:Metrics.*'
)

logs=build/portable/valgrind
mkdir -p "$logs"
unclean=()
for suite in io text data optim train; do
  override="ZOFT_VALGRIND_FILTER_$suite"
  filter=${!override:-${filters[$suite]}}
  t0=$SECONDS
  if valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --track-origins=yes --log-file="$logs/$suite.log" \
    "build/portable/test_$suite" --gtest_filter="$filter" --gtest_brief=1 >"$logs/$suite.out" 2>&1; then
    echo "valgrind: test_$suite clean ($((SECONDS - t0)) s, filter $filter)"
  else
    echo "valgrind: test_$suite UNCLEAN ($((SECONDS - t0)) s): $logs/$suite.log, $logs/$suite.out"
    grep -m1 "ERROR SUMMARY" "$logs/$suite.log" | sed 's/^==[0-9]*== /    /' || true
    tail -n 5 "$logs/$suite.out" | sed 's/^/    /'
    unclean+=("$suite")
  fi
done

if [ ${#unclean[@]} -eq 0 ]; then
  echo "valgrind: clean"
else
  echo "valgrind: UNCLEAN: ${unclean[*]}"
  exit 1
fi
