#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cc) with clang, ASan and UBSan in build/fuzz, and
# runs each for N seconds (default 20) on a copy of its seed corpus fuzz/corpus/<target>/.
# Exits non-zero on any finding (crash, sanitizer report, leak, timeout, out-of-memory, a single
# allocation over 512 MB), naming the target and the saved reproducer; rerun one with
#   build/fuzz/<target> -malloc_limit_mb=512 <reproducer>
#
#   ./scripts/fuzz.sh [seconds_per_target]
#   ZOFT_FUZZ_TARGETS="fuzz_gguf fuzz_recipe" ./scripts/fuzz.sh 60   # only some targets
#   ZOFT_FUZZ_BUILD=build/asan ./scripts/fuzz.sh   # in a build configured with ZOFT_FUZZ=ON
#                                                  # (the debug-asan preset is; test.sh uses it)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [seconds_per_target]" >&2; exit 2; }
build="${ZOFT_FUZZ_BUILD:-build/fuzz}"
jobs="${ZOFT_FUZZ_JOBS:-2}"

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (./scripts/setup.sh installs it)" >&2; exit 2; }
done

start=$(date +%s)
# Debug keeps assert()s on; line tables are all the stack traces need and compile faster than -g.
if [ -z "${ZOFT_FUZZ_BUILD:-}" ]; then
  cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" -DCMAKE_C_FLAGS_DEBUG="-O1 -gline-tables-only" \
    -DZOFT_FUZZ=ON -DZOFT_MARCH=native -DZOFT_TESTS=OFF -DZOFT_BENCH=OFF -DZOFT_CUDA=OFF >/dev/null
elif ! grep -q "^ZOFT_FUZZ:BOOL=ON" "$build/CMakeCache.txt" 2>/dev/null; then
  echo "fuzz: $build is not a build configured with -DZOFT_FUZZ=ON" >&2
  exit 2
fi

targets=()
if [ -n "${ZOFT_FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$ZOFT_FUZZ_TARGETS"
else
  for src in fuzz/fuzz_*.cc; do targets+=("$(basename "$src" .cc)"); done
fi
# The build's compiler chatter goes to a log, shown only when the build fails.
if ! cmake --build "$build" -j "$jobs" --target "${targets[@]}" >"$build/build.log" 2>&1; then
  { grep -aE 'error|Error' "$build/build.log" || true; } | head -40
  echo "fuzz: build failed; full log: $build/build.log" >&2
  exit 2
fi
built=$(date +%s)
echo "fuzz: built ${#targets[@]} targets in $((built - start)) s"

# Findings go to build/fuzz/findings/<target>/; the corpus grows in a scratch copy.
work="$build/run"
rm -rf "$work"
mkdir -p "$work/tmp" "$build/findings"
export TMPDIR="$PWD/$work/tmp"  # the targets' input files (fuzz/fuzz_util.h), left behind by a crash
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if ! command -v llvm-symbolizer >/dev/null; then  # Debian's llvm-14 keeps it off PATH
  for s in /usr/lib/llvm-*/bin/llvm-symbolizer; do
    if [ -x "$s" ]; then export ASAN_SYMBOLIZER_PATH="$s"; fi
  done
fi

failed=()
for t in "${targets[@]}"; do
  corpus="$work/$t/corpus"
  found="$build/findings/$t"
  rm -rf "$found"
  mkdir -p "$corpus" "$found"
  if [ -d "fuzz/corpus/$t" ]; then cp -r "fuzz/corpus/$t/." "$corpus/"; fi
  log="$work/$t/log"
  t0=$(date +%s)
  status=0
  # A hostile file must never cost a huge allocation: one malloc over 512 MB is a finding.
  "$build/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$found/" "$corpus" >"$log" 2>&1 || status=$?
  stats=$(grep -aE '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  cov=$(grep -aE '#[0-9]+[[:space:]]+DONE' "$log" | grep -oE 'cov: [0-9]+' | tail -1 || true)
  if [ "$status" -ne 0 ]; then
    reproducer=$(grep -aoE "Test unit written to [^ ]+" "$log" | tail -1 | sed 's/Test unit written to //' || true)
    echo "fuzz: FINDING in $t (exit $status) after $(($(date +%s) - t0)) s; reproducer: ${reproducer:-none saved}"
    echo "fuzz:   rerun: $build/$t -malloc_limit_mb=512 ${reproducer:-<input>}   full log: $log"
    { grep -aE '^(==[0-9]+== ?ERROR|SUMMARY|.*runtime error:|fuzz: |terminate called|.*what\(\):)' "$log" || true; } |
      head -5 | sed 's/^/fuzz:   /'
    { grep -aE -m1 '#[0-9]+ 0x[0-9a-f]+ in zoft::' "$log" || true; } | cut -c1-200 | sed 's/^ */fuzz:   at /'
    failed+=("$t")
  else
    echo "fuzz: $t ok: ${stats:-?} runs in $(($(date +%s) - t0)) s, ${cov:-cov ?}, corpus $(ls "$corpus" | wc -l) inputs"
  fi
done

echo "fuzz: total $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
