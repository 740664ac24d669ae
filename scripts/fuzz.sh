#!/usr/bin/env bash
# Fuzzes the readers of user input with libFuzzer under ASan+UBSan (tests/fuzz, README "Fuzzing").
#   scripts/fuzz.sh                          every harness, 10 minutes each, one process
#   scripts/fuzz.sh --minutes 60 --harness config,report --jobs 2
#   scripts/fuzz.sh --minutes 1              CI: every harness a minute
#   scripts/fuzz.sh --list                   the harnesses
# Builds build-fuzz/ (clang, -Dfuzzing=true) when needed. Each harness grows its corpus in
# build-fuzz/corpus/NAME (kept from run to run, seeded from tests/fuzz/corpus/NAME and the
# reproducers of fixed findings, tests/fuzz/regressions/NAME); findings (crash-*, leak-*,
# timeout-*, oom-*) go to build-fuzz/findings/NAME/ and are listed at the end, each with its
# cause and the command that reproduces it. libFuzzer runs in fork mode (--jobs workers), so a
# finding does not stop the run. XB_FUZZ_IGNORE=NAME:PROPERTY,... lets a property through, so
# that a long campaign gets past a finding known and being fixed (tests/fuzz/fuzz.h).
# Exit status: 0, 1 when this run found something, 2 bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

HARNESSES=(config report listops_tsv aan_tsv png pathfinder_meta idx cache)
minutes=10
jobs=1
only=""
build=build-fuzz
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift 2 ;;
    --harness) only="${only:+$only,}${2:?--harness needs a name}"; shift 2 ;;
    --jobs) jobs="${2:?--jobs needs a number}"; shift 2 ;;
    --build) build="${2:?--build needs a directory}"; shift 2 ;;
    --list) printf '%s\n' "${HARNESSES[@]}"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "fuzz.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
    echo "fuzz.sh: --minutes takes a number of minutes, --jobs a count of processes" >&2
    exit 2
fi
build=$(realpath -m "$build")
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60 + 0.5); print s < 1 ? 1 : s }')
run=()
IFS=, read -r -a wanted <<< "${only:-$(IFS=,; echo "${HARNESSES[*]}")}"
for h in "${wanted[@]}"; do
    if [[ " ${HARNESSES[*]} " != *" $h "* ]]; then
        echo "fuzz.sh: no harness '$h' (valid: ${HARNESSES[*]})" >&2
        exit 2
    fi
    run+=("$h")
done

if [ ! -f "$build/build.ninja" ]; then
    CC=clang meson setup "$build" -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dnative=false -Dbuildtype=debugoptimized -Dc_args=-Wno-pass-failed >/dev/null
fi
nice ninja -C "$build" $(printf "tests/fuzz/fuzz_%s " "${run[@]}") >/dev/null

scratch_root=/dev/shm
[ -w "$scratch_root" ] || scratch_root="$build"
scratch=$(mktemp -d "$scratch_root/xb-fuzz.XXXXXX") # the harnesses' files: tmpfs is faster
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch" OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

found=0
printf '%-16s %7s %9s %10s %8s %6s %6s %8s\n' harness seconds execs exec/s corpus KB cov features \
    > "$scratch/summary"
for h in "${run[@]}"; do
    bin="$build/tests/fuzz/fuzz_$h"
    corpus="$build/corpus/$h" findings="$build/findings/$h" log="$build/logs/$h.log"
    mkdir -p "$corpus" "$findings" "$(dirname "$log")"
    dict=() seeds=("tests/fuzz/corpus/$h")
    [ -f "tests/fuzz/dict/$h.dict" ] && dict=("-dict=tests/fuzz/dict/$h.dict")
    [ -d "tests/fuzz/regressions/$h" ] && seeds+=("tests/fuzz/regressions/$h")
    before=$(ls "$findings" | wc -l)
    echo "fuzz.sh: $h for ${seconds}s ($jobs job(s)); log $log" >&2
    nice -n 5 "$bin" -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=256 "${dict[@]}" \
        -artifact_prefix="$findings/" "$corpus" "${seeds[@]}" > "$log" 2>&1 || true
    # the last progress line of fork mode: "#EXECS: cov: C ft: F corp: N exec/s E ..."
    stats=$(grep -a -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
    execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<< "$stats")
    cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<< "$stats")
    ft=$(sed -E 's/.* ft: ([0-9]+).*/\1/' <<< "$stats")
    files=$(find "$corpus" -type f | wc -l)
    kb=$(( ($(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}') + 1023) / 1024 ))
    printf '%-16s %7s %9s %10s %8s %6s %6s %8s\n' "$h" "$seconds" "${execs:-?}" \
        "$(( ${execs:-0} / seconds ))" "$files" "$kb" "${cov:-?}" "${ft:-?}" >> "$scratch/summary"
    new=$(( $(ls "$findings" | wc -l) - before ))
    [ "$new" -gt 0 ] && found=1 && echo "fuzz.sh: $h: $new new finding(s)" >&2
done
cat "$scratch/summary"

# Every finding on record, with its cause (the harness's property, or the sanitizer's summary)
# and the commands that reproduce and minimise it.
for h in "${run[@]}"; do
    for f in "$build/findings/$h"/*; do
        [ -f "$f" ] || continue
        out=$("$build/tests/fuzz/fuzz_$h" -runs=1 "$f" 2>&1 || true)
        cause=$(grep -a -E '^fuzz: |^SUMMARY: |runtime error|internal error' <<< "$out" | head -1 \
            | tr -c '[:print:]' '?' | cut -c1-200 || true)
        echo
        echo "$h: $f"
        echo "  cause:     ${cause:-none: it no longer fails}"
        echo "  reproduce: $build/tests/fuzz/fuzz_$h $f"
        echo "             (no libFuzzer: build/tests/fuzz/fuzz-replay-$h $f)"
        echo "  minimise:  $build/tests/fuzz/fuzz_$h -minimize_crash=1 -runs=20000 -exact_artifact_path=$f.min $f"
    done
done
exit "$found"
