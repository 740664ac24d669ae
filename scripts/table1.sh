#!/usr/bin/env bash
# LRA's Table 1 on the lra-small configs: every mechanism on every task, one report per point in
# DIR/TASK/lra-small-TASK-MIXER.json, then the table. Points whose report exists are skipped
# (unless it says the run was interrupted), so a stopped sweep resumes where it stopped and a new
# mechanism costs only its own runs.
#   scripts/table1.sh [-o DIR] [-j JOBS] [--threads N] [--tasks a,b] [--mixers a,b] [--dry-run]
# Defaults: DIR results/lra-small, 2 jobs of 1 thread each (on 2 cores two single-thread runs
# finish more work than one run of two threads at these model sizes), every task of
# configs/lra-small and every mechanism of `xformer-bench list`.
#
# Each mechanism keeps the options of `xformer-bench list` (its paper's or LRA's), except where at
# lra-small's lengths (301 to 1024 tokens) they would let every query see (nearly) the whole
# sequence and the row would measure full attention again. Those are scaled down once, the same
# for every task, as LRA fixed one setting per mechanism across its tasks:
declare -A OPTS=(
    [sliding]="window=128"          # default 256 of 301 ListOps tokens
    [longformer]="window=128"       # default 512: the whole ListOps and Retrieval sequence
    [linformer]="k=64"              # default 256: no compression of 301 tokens
    [bigbird]="block=16"            # default 64: 8 blocks of 5 (ListOps) would be every block
    [reformer]="chunk=32"           # default 128: two chunks of three (ListOps)
    [luna]="length=64"              # default 256 packed rows, near the ListOps length
)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${XB_BIN:-./build/src/xformer-bench}
dir=results/lra-small jobs=2 threads=1 tasks="" mixers="" dry=0
while [ $# -gt 0 ]; do
    case "$1" in
    -o) dir=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tasks) tasks=${2//,/ }; shift 2 ;;
    --mixers) mixers=${2//,/ }; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h | --help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "table1.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "table1.sh: $bin not found; build first: ninja -C build" >&2; exit 2; }
[ -n "$tasks" ] || tasks="listops text retrieval image pathfinder"   # LRA's column order
known=$("$bin" list | sed -n '2,/^$/p' | awk '/^[a-z]/ {print $1}')
[ -n "$mixers" ] || mixers=$known
for m in "${!OPTS[@]}" $mixers; do
    grep -qx "$m" <<<"$known" || { echo "table1.sh: unknown mechanism $m (xformer-bench list shows them)" >&2; exit 2; }
done

# One line per missing point: task, mixer, then its --set arguments.
points=$(mktemp)
trap 'rm -f "$points"' EXIT
for t in $tasks; do
    [ -f "configs/lra-small/$t.yaml" ] || { echo "table1.sh: no configs/lra-small/$t.yaml" >&2; exit 2; }
    mkdir -p "$dir/$t"
    for m in $mixers; do
        # A report is a point unless its run was interrupted (a signal writes such a report).
        rep="$dir/$t/lra-small-$t-$m.json"
        [ -f "$rep" ] && ! grep -q '"status": "interrupted"' "$rep" && continue
        sets="--set experiment.name=lra-small-$t-$m --set model.mixer.name=$m"
        for kv in ${OPTS[$m]:-}; do sets+=" --set model.mixer.$kv"; done
        # shellcheck disable=SC2086
        "$bin" run "configs/lra-small/$t.yaml" $sets --check >/dev/null || exit 2
        echo "$t $m $sets" >>"$points"
    done
done
echo "table1.sh: $(wc -l <"$points") runs to do in $dir ($jobs at a time, $threads thread(s) each)"
if [ "$dry" = 1 ]; then cat "$points"; exit 0; fi

export bin dir threads
# A run that stops on bad input (exit 2) leaves no report, so the next call retries it; one that
# diverges (exit 3) leaves a report that says so, which is a result. Either keeps its log.
xargs -P "$jobs" -L 1 bash -c '
    t=$0 m=$1; shift
    log="$dir/$t/lra-small-$t-$m.log"
    start=$(date +%s)
    if "$bin" run "configs/lra-small/$t.yaml" "$@" --threads "$threads" -o "$dir/$t" --quiet >"$log" 2>&1; then
        rm -f "$dir/$t/lra-small-$t-$m.safetensors" "$log"
        echo "table1.sh: $t $m done in $(( $(date +%s) - start )) s"
    else
        rm -f "$dir/$t/lra-small-$t-$m.safetensors"
        echo "table1.sh: $t $m FAILED after $(( $(date +%s) - start )) s, see $log" >&2
    fi
' <"$points" || true
cols=()
for t in $tasks; do compgen -G "$dir/$t/*.json" >/dev/null && cols+=("$dir/$t"); done
"$bin" table "${cols[@]}" --order class
