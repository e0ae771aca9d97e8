#!/usr/bin/env bash
# Builds the fuzz targets (clang 14, libFuzzer, ASan + UBSan) in build-fuzz/ and runs each from the
# seed corpus the tests generate, with a fixed seed.
#   scripts/fuzz.sh --runs=N        N executions per target (reproducible; ./test.sh uses this)
#   scripts/fuzz.sh --seconds=S     S seconds per target (the long run: --seconds=600)
# FUZZ_TARGETS="idx image" limits the run to some targets. Prints one line per target (executions, seconds, crashes) and exits 1 if any target crashed;
# crash inputs are kept in build-fuzz/crashes/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
limit="-runs=2000"
case "${1:-}" in
  --runs=*) limit="-runs=${1#--runs=}" ;;
  --seconds=*) limit="-max_total_time=${1#--seconds=}" ;;
  "") ;;
  *) echo "usage: scripts/fuzz.sh [--runs=N | --seconds=S]" >&2; exit 2 ;;
esac
command -v clang++-14 >/dev/null || { echo "fuzz: clang++-14 missing (scripts/setup.sh installs it)" >&2; exit 1; }
cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
[ -x build/tests/fuzz_seeds ] || cmake --build build --target fuzz_seeds >/dev/null
corpus=build-fuzz/corpus
mkdir -p "$corpus" && build/tests/fuzz_seeds "$corpus" examples/data/digit_7.png >/dev/null
status=0
for t in ${FUZZ_TARGETS:-idx safetensors manifest image name_map graph}; do
  mkdir -p build-fuzz/crashes/$t build-fuzz/work/$t
  log=build-fuzz/$t.log
  start=$(date +%s%N)
  # The corpus copy grows with what the run finds; the seed directory stays as generated.
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 build-fuzz/${t}_fuzz \
      build-fuzz/work/$t "$corpus/$t" -seed=1 $limit -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      -artifact_prefix=build-fuzz/crashes/$t/ -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH; status=1
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf 'fuzz %-12s %s executions in %d.%03d s: %s\n' "$t" "${execs:-?}" $((ms / 1000)) \
    $((ms % 1000)) "$result"
  [ "$result" = ok ] || tail -30 "$log"
done
exit $status
