#!/usr/bin/env bash
# Ours against PyTorch at the same points, in one run: for each mechanism and length, the median
# training step of `xformer-bench bench` and of the same encoder written in PyTorch as its users
# write it (scripts/peers/: nn.Modules, loss.backward(), torch.set_num_threads), side by side.
#
#   scripts/peers.sh [--mechanisms full,local,linformer,linear,performer,nystrom]
#                    [--lengths 1024,4096] [--batch 2] [--threads 2] [--steps 10] [--warmup 2]
#
# Same shapes and FLOP-relevant settings on both sides: configs/bench/step-full.yaml's model
# (d_model 64, 2 heads, 2 layers, d_ff 128, dropout 0.1, CLS pooling), the mechanisms' options of
# scripts/peers/mechanisms.py (ours_sets in this script passes the same to bench), float32, the same
# threads. What differs: ours reads ListOps batches, theirs random tokens with random lengths
# (both masked; the work does not depend on the content); PyTorch's peak RSS includes the
# interpreter and its libraries (about 250 MiB before any tensor); their full attention
# materialises the L x L scores, so it is skipped where those would pass 4 GiB. The points run
# one after the other, ours then theirs, so both see the machine in about the same state; on a
# shared machine repeat it and compare the ratios rather than the times.
# Exit 77 when PyTorch is not installed (Debian: apt-get install python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
mechanisms=full,local,linformer,linear,performer,nystrom
lengths=1024,4096
batch=2 threads=2 steps=10 warmup=2
while [ $# -gt 0 ]; do
    case "$1" in
    --mechanisms | --lengths | --batch | --threads | --steps | --warmup)
        [ $# -ge 2 ] || { echo "peers.sh: $1 needs a value" >&2; exit 2; }
        v=${1#--}; printf -v "$v" '%s' "$2"; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "peers.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for n in "$batch" "$threads" "$steps"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: '$n' is not a positive integer" >&2; exit 2; }
done
[[ $warmup =~ ^[0-9]+$ ]] && [ "$warmup" -lt "$steps" ] ||
    { echo "peers.sh: --warmup $warmup must be below --steps $steps" >&2; exit 2; }
py=${PYTHON:-/usr/bin/python3}
bin=${XB_BIN:-./build/src/xformer-bench}
IFS=, read -ra mechs <<<"$mechanisms"
IFS=, read -ra lens <<<"$lengths"
# The options that make ours the peer's mechanism (scripts/peers/mechanisms.py, MECHANISMS).
ours_sets() {
    case "$1" in
    full | linear) echo "model.mixer.name=$1" ;;
    local) echo "model.mixer.name=local model.mixer.block=64" ;;
    linformer) echo "model.mixer.name=linformer model.mixer.k=256 model.mixer.sharing=headwise" ;;
    performer) echo "model.mixer.name=performer model.mixer.features=256 model.mixer.kernel=softmax model.mixer.redraw=1" ;;
    nystrom) echo "model.mixer.name=nystrom model.mixer.landmarks=64 model.mixer.pinv_iters=6 model.mixer.conv=33" ;;
    *) return 1 ;;
    esac
}
for m in "${mechs[@]}"; do
    ours_sets "$m" >/dev/null ||
        { echo "peers.sh: unknown mechanism '$m' (valid: full, local, linformer, linear, performer, nystrom)" >&2; exit 2; }
done
for L in "${lens[@]}"; do
    [[ $L =~ ^[1-9][0-9]*$ ]] || { echo "peers.sh: --lengths: '$L' is not a length" >&2; exit 2; }
done
if ! "$py" -c 'import torch' 2>/dev/null; then
    echo "peers.sh: PyTorch is not installed for $py (Debian: apt-get install python3-torch)" >&2
    exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "load average $(cut -d' ' -f1-3 /proc/loadavg), batch $batch, $threads threads, median of" \
     "$((steps - warmup)) steps after $warmup"
echo
echo "| mechanism | L | ours ms/step | PyTorch ms/step | PyTorch / ours | ours peak RSS MiB | PyTorch peak RSS MiB | parameters (ours, PyTorch) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for m in "${mechs[@]}"; do
    sets=()
    for s in $(ours_sets "$m"); do sets+=(--set "$s"); done
    for L in "${lens[@]}"; do
        "$bin" bench configs/bench/step-full.yaml --mixers "$m" --lengths "$L" --steps "$steps" \
            --warmup "$warmup" --threads "$threads" --set train.batch_size="$batch" "${sets[@]}" \
            -o "$out/$m-$L" --quiet >/dev/null || true
        "$py" scripts/peers/step.py --mixer "$m" --length "$L" --batch "$batch" \
            --threads "$threads" --steps "$steps" --warmup "$warmup" >"$out/$m-$L.torch.json" || true
        "$py" - "$out/$m-$L" "$out/$m-$L.torch.json" "$m" "$L" <<'PY'
import json, os, sys
d, theirs, m, L = sys.argv[1:]
ours = mine = None
try:
    q = json.load(open(os.path.join(d, "index.json")))["points"][0]
    if q["status"] == "ok":
        ours = q
        mine = json.load(open(os.path.join(d, q["report"])))["model"]["parameters"]
except (OSError, ValueError, KeyError, IndexError):
    q = {"status": "failed", "reason": "no report"}
try:
    t = json.loads(open(theirs).read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError):
    t = {"status": "failed", "reason": "no output"}
ms = lambda s: f"{1e3 * s:,.1f}"
a = ms(ours["step_s_median"]) if ours else f"{q['status']}: {q.get('reason', '')}"
b = ms(t["step_s_median"]) if t.get("status") == "ok" else f"{t['status']}: {t.get('reason', '')}"
ratio = (f"{t['step_s_median'] / ours['step_s_median']:.2f}x"
         if ours and t.get("status") == "ok" else "-")
ra = f"{ours['peak_rss'] / 2**20:.0f}" if ours else "-"
rb = f"{t['peak_rss'] / 2**20:.0f}" if t.get("status") == "ok" else "-"
pa = f"{mine:,}" if mine is not None else "-"
pb = f"{t['parameters']:,}" if t.get("status") == "ok" else "-"
print(f"| {m} | {L} | {a} | {b} | {ratio} | {ra} | {rb} | {pa}, {pb} |")
PY
    done
done
