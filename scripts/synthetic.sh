#!/usr/bin/env bash
# The synthetic tasks that separate the state-space and recurrent mixers from attention, measured:
#   selcopy  selective copying (Mamba, arXiv 2312.00752 §3.1): configs/synthetic/selcopy.yaml with
#            the causal full attention, Mamba (selective: its step, B and C depend on the input)
#            and S4D (time-invariant) at the same width and depth;
#   mqar     multi-query associative recall (Zoology, arXiv 2312.04927): configs/synthetic/mqar.yaml
#            at 8, 16, 32 and 64 key-value pairs, width fixed at 64, with causal full attention and
#            the causal forms of the gated and recurrent mixers (mamba, rwkv, retnet, hyena, s4d)
#            and of linear attention (linear, the kernel class).
# Each run is one report in DIR/TASK/ (default results/synthetic); a point that already has its
# report is skipped, so the script resumes. Then it prints the tables (per-position test
# accuracy and the share of examples exactly right) in Markdown.
#   scripts/synthetic.sh [-o DIR] [--tasks selcopy,mqar] [--mixers full,mamba,...] [--pairs 8,16]
#                        [--threads N] [--table-only] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."

out=results/synthetic
tasks=selcopy,mqar
mixers=""
pairs=8,16,32,64
threads=1
table_only=0
dry=0
bin=${XB_BIN:-build/src/xformer-bench}
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
    -o) out="${2:?-o needs a directory}"; shift 2 ;;
    --tasks) tasks="${2:?--tasks needs a list}"; shift 2 ;;
    --mixers) mixers="${2:?--mixers needs a list}"; shift 2 ;;
    --pairs) pairs="${2:?--pairs needs a list}"; shift 2 ;;
    --threads) threads="${2:?--threads needs a number}"; shift 2 ;;
    --table-only) table_only=1; shift ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "synthetic.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

# The causal form of each mechanism: the option that makes it so.
causal_set() {
    case "$1" in
    full|local|sliding|sparse_transformer|retnet|linear) echo "model.mixer.causal=true" ;;
    s4d|hyena|mamba|rwkv) echo "model.mixer.bidirectional=false" ;;
    *) echo "synthetic.sh: $1 has no causal form here (valid: full, local, sliding," \
            "sparse_transformer, retnet, linear, s4d, hyena, mamba, rwkv)" >&2; return 2 ;;
    esac
}

# point TASK MIXER RUN_ID [--set ...]: one run, unless its report is there
point() {
    local task=$1 mixer=$2 id=$3; shift 3
    local dir="$out/$task" cs
    cs=$(causal_set "$mixer") || exit 2
    if [ -f "$dir/$id.json" ]; then return 0; fi
    if [ "$dry" = 1 ]; then echo "to do: $task $mixer ($id)"; return 0; fi
    echo "synthetic.sh: $task $mixer ($id)" >&2
    "$bin" run "$cfgs/$task.yaml" -o "$dir" --threads "$threads" --quiet \
        --set "experiment.name=$id" --set "model.mixer.name=$mixer" --set "$cs" "$@" \
        || echo "synthetic.sh: $id failed (exit $?)" >&2
}

# The task's config without its mixer's own option (full attention's causal: true), which the
# other mechanisms do not take; each point sets its mechanism's causal form instead.
cfgs=$(mktemp -d)
trap 'rm -rf "$cfgs"' EXIT
for f in configs/synthetic/selcopy.yaml configs/synthetic/mqar.yaml; do
    grep -v '^    causal: true' "$f" > "$cfgs/$(basename "$f")"
done

IFS=, read -r -a T <<< "$tasks"
IFS=, read -r -a P <<< "$pairs"
if [ "$table_only" = 0 ]; then
    for task in "${T[@]}"; do
        case "$task" in
        selcopy)
            IFS=, read -r -a M <<< "${mixers:-full,mamba,s4d}"
            for m in "${M[@]}"; do point selcopy "$m" "selcopy-$m"; done ;;
        mqar)
            IFS=, read -r -a M <<< "${mixers:-full,mamba,rwkv,retnet,hyena,s4d,linear}"
            for p in "${P[@]}"; do
                for m in "${M[@]}"; do
                    # length 2p + 1 + queries; keys at least the pairs (they are distinct)
                    point mqar "$m" "mqar-p$p-$m" --set "task.min_pairs=$p" \
                        --set "task.max_pairs=$p" --set "model.max_len=$((2 * p + 9))"
                done
            done ;;
        *) echo "synthetic.sh: no task '$task' (valid: selcopy, mqar)" >&2; exit 2 ;;
        esac
    done
fi
[ "$dry" = 1 ] && exit 0

python3 - "$out" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
def rows(task):
    r = {}
    for f in sorted(glob.glob(os.path.join(out, task, "*.json"))):
        if f.endswith("index.json"):
            continue
        d = json.load(open(f))
        c = d["config"]
        t = d.get("test") or {}
        acc, em = t.get("accuracy"), t.get("exact_match")
        cell = "-" if acc is None else "%.2f (%.1f)" % (100 * acc, 100 * (em or 0))
        if d.get("status") != "ok":
            cell = d.get("status", "?")
        r[(c["model"]["mixer"]["name"], c["task"].get("max_pairs"))] = cell
    return r
for task in ("selcopy", "mqar"):
    r = rows(task)
    if not r:
        continue
    mixers = list(dict.fromkeys(m for m, _ in r))
    cols = sorted({p for _, p in r}, key=lambda p: p or 0)
    head = ["test accuracy % (exactly right %)"] if task == "selcopy" else ["%d pairs" % p for p in cols]
    print("\n%s: per-position test accuracy %% (examples exactly right %%)\n" % task)
    print("| mechanism | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    for m in mixers:
        print("| %s | %s |" % (m, " | ".join(r.get((m, p), "-") for p in cols)))
EOF
