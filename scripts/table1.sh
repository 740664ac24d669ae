#!/usr/bin/env bash
# LRA's Table 1 on the lra-small configs: every mechanism on every task, one report per point in
# DIR/TASK/lra-small-TASK-MIXER.json, then the table. Points whose report exists are skipped
# (unless it says the run was interrupted), so a stopped sweep resumes where it stopped and a new
# mechanism costs only its own runs; an interrupted run continues from its state (run --resume).
#   scripts/table1.sh [-o DIR] [-j JOBS] [--threads N] [--tasks a,b] [--mixers a,b] [--seeds N]
#                     [--shard I/N] [--checkpoint-every K] [--dry-run]
# Defaults: DIR results/lra-small, 2 jobs of 1 thread each (on 2 cores two single-thread runs
# finish more work than one run of two threads at these model sizes), every task of
# configs/lra-small, every mechanism of `xformer-bench list`, one seed. --seeds N runs each
# point at the config's experiment.seed S and at S+1 ... S+N-1: seed S keeps the report name
# above (so the reports of a one-seed table are its first seed), seed K writes
# lra-small-TASK-MIXER-seedK.json; `table` shows mean ± sd over them. Every first seed comes
# before any second one. --shard I/N runs only shard I (from 0) of N. The points, done or not,
# are dealt to the shards in turn, seed after seed and task after task, the r-th (seed, task)
# row (r = s*T + t, from 0) starting from its r-th mechanism: the j-th mechanism of M in row r is
# point k = r*M + (j - r mod M), in shard k mod N. Each shard gets an equal share (within one)
# of the table and of every task and seed, and a mechanism's runs go to different shards.
# Separate processes or machines sharing DIR (a Slurm job array:
# scripts/slurm/table1-array.sbatch) thus split the table, each given the same --tasks,
# --mixers and --seeds. --checkpoint-every K saves each run's state every K steps
# (train.checkpoint_every; a signal saves it anyway). SIGTERM, SIGINT or SIGHUP stop the runs
# under way (their reports say "interrupted"), start no other, and end the script by the same
# signal once those reports are written.
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
dir=results/lra-small jobs=2 threads=1 tasks="" mixers="" dry=0 shard=0 shards=1 every=0 seeds=1
while [ $# -gt 0 ]; do
    case "$1" in
    -o) dir=$2; shift 2 ;;
    -j) jobs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tasks) tasks=${2//,/ }; shift 2 ;;
    --mixers) mixers=${2//,/ }; shift 2 ;;
    --shard)
        if [[ ${2:-} =~ ^([0-9]+)/([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -lt "${BASH_REMATCH[2]}" ]; then
            shard=${BASH_REMATCH[1]} shards=${BASH_REMATCH[2]}
        else
            echo "table1.sh: --shard: expected I/N with 0 <= I < N, got '${2:-}'" >&2; exit 2
        fi
        shift 2 ;;
    --checkpoint-every)
        [[ ${2:-} =~ ^[0-9]+$ ]] || {
            echo "table1.sh: --checkpoint-every: expected a number of steps, got '${2:-}'" >&2; exit 2; }
        every=$2; shift 2 ;;
    --seeds)
        [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || {
            echo "table1.sh: --seeds: expected a number of seeds >= 1, got '${2:-}'" >&2; exit 2; }
        seeds=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "table1.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$bin" ] || { echo "table1.sh: $bin not found; build first: ninja -C build" >&2; exit 2; }
[ -n "$tasks" ] || tasks="listops text retrieval image pathfinder"   # LRA's column order
# the mechanisms and the seed's default from `list --json` (its text is for people)
known=$("$bin" list mechanisms --json |
    python3 -c 'import json, sys; print("\n".join(m["name"] for m in json.load(sys.stdin)["mechanisms"]))')
[ -n "$mixers" ] || mixers=$(tr '\n' ' ' <<<"$known") # one line: read -a reads one
for m in "${!OPTS[@]}" $mixers; do
    grep -qx "$m" <<<"$known" || { echo "table1.sh: unknown mechanism $m (xformer-bench list shows them)" >&2; exit 2; }
done

# experiment.seed of config $1 (block or flow style), or the schema's default when it has none.
config_seed() {
    local v
    v=$(awk '/^experiment:/ { e = 1
                              if (match($0, /seed: *[^ ,}#]+/)) { v = substr($0, RSTART, RLENGTH)
                                  sub(/seed: */, "", v); print v; exit }
                              next }
             e && /^[^ \t#]/ { e = 0 }
             e && /^[ \t]+seed:/ { print $2; exit }' "$1")
    [ -n "$v" ] || v=$("$bin" list config --json | python3 -c 'import json, sys
print(next(k["default"] for k in json.load(sys.stdin)["config"]["experiment"] if k["name"] == "seed"))')
    [[ $v =~ ^[0-9]+$ ]] || { echo "table1.sh: $1: cannot read experiment.seed (expected an integer, found '$v')" >&2; exit 2; }
    echo "$v"
}

# One line per missing point of this shard: task, mixer, then its --set arguments.
points=$(mktemp)
trap 'rm -f "$points"' EXIT
read -r -a mix <<<"$mixers"
read -r -a tsk <<<"$tasks"
M=${#mix[@]} T=${#tsk[@]}
declare -A first=() # task -> the config's seed
for t in "${tsk[@]}"; do
    [ -f "configs/lra-small/$t.yaml" ] || { echo "table1.sh: no configs/lra-small/$t.yaml" >&2; exit 2; }
    mkdir -p "$dir/$t"
    [ "$seeds" = 1 ] || first[$t]=$(config_seed "configs/lra-small/$t.yaml")
done
for ((s = 0; s < seeds; s++)); do
    for ti in "${!tsk[@]}"; do
        t=${tsk[$ti]} r=$((s * T + ti))
        for j in "${!mix[@]}"; do
            m=${mix[$j]}
            [ $(((r * M + ((j - r) % M + M) % M) % shards)) = "$shard" ] || continue
            name=lra-small-$t-$m
            [ "$s" = 0 ] || name+=-seed$((first[$t] + s))
            # A report is a point unless its run was interrupted (a signal writes such a report).
            rep="$dir/$t/$name.json"
            [ -f "$rep" ] && ! grep -q '"status": "interrupted"' "$rep" && continue
            sets="--set experiment.name=$name --set model.mixer.name=$m"
            [ "$s" = 0 ] || sets+=" --set experiment.seed=$((first[$t] + s))"
            for kv in ${OPTS[$m]:-}; do sets+=" --set model.mixer.$kv"; done
            [ "$every" = 0 ] || sets+=" --set train.checkpoint_every=$every"
            # shellcheck disable=SC2086
            "$bin" run "configs/lra-small/$t.yaml" $sets --check >/dev/null || exit 2
            echo "$t $m $sets" >>"$points"
        done
    done
done
of=""
[ "$shards" = 1 ] || of=", shard $shard of $shards"
echo "table1.sh: $(wc -l <"$points") runs to do in $dir$of ($jobs at a time, $threads thread(s) each)"
if [ "$dry" = 1 ]; then cat "$points"; exit 0; fi

# The runs are this shell's own children, so that a signal can be passed on to each. A run that
# stops on bad input (exit 2) leaves no report, so the next call retries it; one that diverges
# (exit 3) leaves a report that says so, which is a result; an interrupted one leaves its state,
# from which the next call resumes. Each keeps its log unless it finished.
declare -A running=() # pid -> "task name start"
stop=""
pass_on() { # the signal $1 to every run under way
    stop=$1
    local pid
    for pid in "${!running[@]}"; do kill -"$1" "$pid" 2>/dev/null || true; done
}
trap 'pass_on TERM' TERM
trap 'pass_on INT' INT
trap 'pass_on HUP' HUP
reap() { # until fewer than $1 runs are under way
    local pid rc t name start took what
    while :; do
        for pid in "${!running[@]}"; do
            kill -0 "$pid" 2>/dev/null && continue
            rc=0
            wait "$pid" || rc=$?
            read -r t name start <<<"${running[$pid]}"
            unset "running[$pid]"
            took=$(($(date +%s) - start))
            what="$t ${name#lra-small-"$t"-}" # "listops full", "listops full-seed1"
            if [ "$rc" = 0 ]; then
                rm -f "$dir/$t/$name.safetensors" "$dir/$t/$name.log"
                echo "table1.sh: $what done in $took s"
            elif [ -n "$stop" ] && [ -f "$dir/$t/$name.state" ]; then
                echo "table1.sh: $what interrupted after $took s (the next call resumes it)" >&2
            else
                rm -f "$dir/$t/$name.safetensors"
                echo "table1.sh: $what FAILED after $took s, see $dir/$t/$name.log" >&2
            fi
        done
        [ "${#running[@]}" -lt "$1" ] && return
        sleep 1 &
        wait $! || true # a signal ends the wait at once
    done
}
while [ -z "$stop" ] && read -r t m sets; do
    reap "$jobs"
    [ -z "$stop" ] || break
    name=${sets#--set experiment.name=}
    name=${name%% *}
    # shellcheck disable=SC2086
    "$bin" run "configs/lra-small/$t.yaml" $sets --resume --threads "$threads" -o "$dir/$t" \
        --quiet >"$dir/$t/$name.log" 2>&1 &
    running[$!]="$t $name $(date +%s)"
done <"$points"
reap 1
if [ -n "$stop" ]; then # end by the signal, as the runs did
    trap - "$stop"
    kill -"$stop" $$
fi
cols=()
for t in "${tsk[@]}"; do compgen -G "$dir/$t/*.json" >/dev/null && cols+=("$dir/$t"); done
"$bin" table "${cols[@]}" --order class
