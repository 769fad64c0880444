#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Engine images/s of a model and its file variants, side by side in one run: REPS rounds, in
# each every model is timed at every batch size (`tailgate-model bench`, whole model from the
# input, THREADS engine threads, SECS seconds), the order rotating between rounds so that the
# load of this shared machine spreads over all of them. Prints per model and batch the median
# images/s and the median over rounds of its ratio to the first model's figure of the same
# round, and the load average before and after.
# Usage: scripts/bench_variants.sh [BUILD] MODEL.onnx VARIANT.onnx...
# Environment: REPS (5), BATCHES ("1 64"), THREADS (2), SECS (2).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build
[ $# -gt 0 ] && [ -d "$1" ] && { BUILD=$1; shift; }
[ $# -ge 2 ] || { echo "usage: $0 [BUILD] MODEL.onnx VARIANT.onnx..." >&2; exit 2; }
REPS=${REPS:-5} BATCHES=${BATCHES:-"1 64"} THREADS=${THREADS:-2} SECS=${SECS:-2}
models=("$@")
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 0; r < REPS; r++)); do
	for ((k = 0; k < ${#models[@]}; k++)); do
		m=${models[$(((k + r) % ${#models[@]}))]}
		for b in $BATCHES; do
			ips=$("$BUILD/tailgate-model" bench "$m" --split 0 --batch "$b" \
				--threads "$THREADS" --seconds "$SECS" --json |
				sed -nE 's/.*"images_per_s": ([0-9.]+).*/\1/p')
			echo "$r $b $m $ips" >>"$tmp"
		done
	done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$tmp" "${models[@]}" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
models = sys.argv[2:]
ips = {}
for r, b, m, v in rows:
    ips.setdefault((m, int(b)), {})[int(r)] = float(v)
print("| model | batch | images/s (median) | x first model (median of rounds) |")
print("| --- | ---: | ---: | ---: |")
for m in models:
    for b in sorted({int(r[1]) for r in rows}):
        mine, base = ips[(m, b)], ips[(models[0], b)]
        ratio = statistics.median(mine[r] / base[r] for r in mine if r in base)
        print(f"| {m} | {b} | {statistics.median(mine.values()):.0f} | {ratio:.2f} |")
PY
