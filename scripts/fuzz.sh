#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of the parsers that read what a guest writes.
#
#   bash scripts/fuzz.sh [--seconds N] [--build-only] [--seeds] [TARGET...]
#
# Builds the library modules once with `-sanitize=fuzzer,address` in .build-fuzz,
# links each fuzz/targets/<name>.swift (with fuzz/common/*.swift) against them,
# then runs each target for N seconds (default 60) on a copy of fuzz/corpus/<name>
# (the repository's corpus is never written to). Prints runs, coverage, new units
# and crashes per target; exits non-zero on any crash, leak, timeout or OOM, with
# the reproducer and log kept in a directory it prints.
#   --seeds       regenerate fuzz/corpus/<name>/ from each target's seed generator
#   --build-only  build the targets and stop
# Reproduce a crash: .build-fuzz/fuzzers/<name> <crash-file>
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

seconds=60
build_only=0
seeds=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --build-only) build_only=1; shift ;;
    --seeds) seeds=1; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/targets/*.swift; do targets+=("$(basename "$f" .swift)"); done
fi
for t in "${targets[@]}"; do
  [ -f "fuzz/targets/$t.swift" ] || { echo "fuzz: no target fuzz/targets/$t.swift" >&2; exit 2; }
done

scratch=.build-fuzz
sanitize=fuzzer,address
# The modules every target may import, and what they depend on (objects linked in).
modules=(OCIBundle AgentProtocol Digest VMM SystemPackage CSystem CKVM CPosix CSeccomp)
c_modules=(CKVM CPosix CSeccomp)

start=$(date +%s)
echo "fuzz: building the modules ($scratch, -sanitize=$sanitize)" >&2
for top in AgentProtocol VMM; do
  swift build --scratch-path "$scratch" --target "$top" \
    -Xswiftc "-sanitize=$sanitize" -Xcc -fsanitize=fuzzer-no-link,address >&2
done
debug="$scratch/debug"
objects=()
for m in "${modules[@]}"; do
  shopt -s nullglob
  objs=("$debug/$m.build/"*.o)
  shopt -u nullglob
  [ ${#objs[@]} -gt 0 ] || { echo "fuzz: no objects for module $m in $debug" >&2; exit 1; }
  objects+=("${objs[@]}")
done
import_flags=(-I "$debug/Modules")
for m in "${c_modules[@]}"; do
  import_flags+=(-Xcc "-fmodule-map-file=$debug/$m.build/module.modulemap")
done
# swift-system's C shims (a package dependency: its own module map).
import_flags+=(-Xcc "-fmodule-map-file=$scratch/checkouts/swift-system/Sources/CSystem/include/module.modulemap")
mkdir -p "$scratch/fuzzers"
for t in "${targets[@]}"; do
  out="$scratch/fuzzers/$t"
  if [ -f "$out" ] && [ -z "$(find fuzz/common fuzz/targets/$t.swift "${objects[@]}" -newer "$out" | head -1)" ]; then
    continue
  fi
  echo "fuzz: linking $t" >&2
  swiftc -sanitize="$sanitize" -parse-as-library -Onone -g -enable-testing \
    "${import_flags[@]}" fuzz/common/*.swift "fuzz/targets/$t.swift" "${objects[@]}" \
    -lseccomp -lcap -o "$out" 2> >(grep -v "Cannot export local symbol" >&2)
done
echo "fuzz: built ${#targets[@]} target(s) in $(( $(date +%s) - start )) s" >&2

# The Swift runtime's crash handler gets in ASan's way; ASan reports the crash.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:allocator_may_return_null=1}"

if [ $seeds -eq 1 ]; then
  for t in "${targets[@]}"; do
    rm -rf "fuzz/corpus/$t"
    mkdir -p "fuzz/corpus/$t"
    FUZZ_WRITE_SEEDS="$PWD/fuzz/corpus/$t" "$scratch/fuzzers/$t"
    echo "fuzz: $t: $(ls "fuzz/corpus/$t" | wc -l) seeds, $(du -sk "fuzz/corpus/$t" | cut -f1) KiB" >&2
  done
  exit 0
fi
[ $build_only -eq 0 ] || exit 0

work=$(mktemp -d /tmp/sm-fuzz.XXXXXX)
failed=0
printf '%-16s %10s %8s %8s %9s %8s  %s\n' target runs exec/s cov ft new result
for t in "${targets[@]}"; do
  corpus="$work/$t/corpus"
  artifacts="$work/$t/artifacts"
  mkdir -p "$corpus" "$artifacts"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$corpus/"
  initial=$(ls "$corpus" | wc -l)
  log="$work/$t/log"
  set +e
  "$scratch/fuzzers/$t" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -timeout=10 -max_len=70000 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  new=$(( $(ls "$corpus" | wc -l) - initial ))
  crashes=$(ls "$artifacts" | wc -l)
  if [ $rc -eq 0 ] && [ "$crashes" -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc): $(ls "$artifacts" | tr '\n' ' ')"
    failed=1
  fi
  printf '%-16s %10s %8s %8s %9s %8s  %s\n' "$t" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$new" "$result"
  if [ "$result" != ok ]; then
    grep -E 'ERROR|Fatal error|fuzz oracle|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/    /'
    echo "    log: $log" ; echo "    reproduce: $scratch/fuzzers/$t $artifacts/<file>"
  fi
done
if [ $failed -ne 0 ]; then
  echo "fuzz: FAILED; logs and reproducers kept in $work" >&2
  exit 1
fi
rm -rf "$work"
echo "fuzz: all ${#targets[@]} target(s) ran ${seconds} s each without a crash ($(( $(date +%s) - start )) s in all)" >&2
