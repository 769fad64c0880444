#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Confluence batching (issue 16 part 4): whole tails against segments, the scheduler alone
# (build/bench/sched-bench: requests fed in-process, no network, so the batching is what is
# measured), one worker, 2 oneDNN threads, modes (whole, segment, auto) interleaved REPS times:
#   resnet224: build/bench/resnet224.onnx (ResNet-18 at 224 px, random weights,
#     scripts/make_bench_models.py), fp32, devices at three splits at once, a third each: the
#     ends of layer1, layer2 and layer3 (rows 7, 11, 15; tails of 2.47, 1.65 and 0.82 GFLOP:
#     segments would merge them where they meet), max_batch 16, deadlines 5 s; no exits.
#   fmnist: models/fmnist-resnet as shipped (int8 with model.calib, splits 0, 4, 6, 8 a
#     quarter each, max_batch 64, max_delay 2 ms, deadlines 100 ms at the fixed load and 1 s
#     at saturation), Fashion-MNIST test images through the head to each split, with the
#     model.conf's early exits, and without them (the case measured before over the network);
#     fm32: the same in fp32 with the exits (tails 4-5x heavier: what exits spare is more).
# For each: saturation (a closed loop of WINDOW open requests; OK answers per second) and a
# fixed load (Poisson arrivals at a rate below both modes' saturation; p50/p99 latency of
# the OK answers, arrival to answer).
# A part per call, so that each stays well under 15 minutes of tg-quiet:
#   scripts/bench_confluence.sh BUILD PART...   PART: r224-sat r224-load fm-sat fm-load
#     fm-noexit-sat fm32-sat fm32-load (in order: a -load part reads its -sat part's rows);
#     rows go to BUILD/confluence/rows.txt (a PART's old rows are replaced)
#   scripts/bench_confluence.sh BUILD table  the markdown of docs/BENCHMARKS.md's section
# env: TG_CONFL_REPS (3), TG_CONFL_SECONDS (12), TG_CONFL_R224_RATE (req/s of the fixed load,
#   default 0.6 x whole tails' median saturation from the rows), TG_CONFL_FM_RATE (likewise)
#   TG_CONFL_MODES (whole segment auto: the modes run; a part's rows of other modes are kept)
# Fixed-load rows carry offered=rate:R; the load average before and after each run is kept.
set -u
BUILD=${1:-build}
PART=${2:-}
cd "$(dirname "$0")/.."
REPS=${TG_CONFL_REPS:-3}
SECS=${TG_CONFL_SECONDS:-12}
MODES=${TG_CONFL_MODES:-whole segment auto}
SB=$BUILD/bench/sched-bench
R224=$BUILD/bench/resnet224.onnx
FM=models/fmnist-resnet
ROWS=$BUILD/confluence/rows.txt
mkdir -p "$BUILD/confluence"
touch "$ROWS"

fm_exits() {	# the model.conf's exits as sched-bench options
	sed -n 's/^exit *= *\([^ ]*\) *$/--exit \1/p' "$FM/model.conf"
}

# One run: part mode rep args...: one row "part mode rep load0 load1 key=value..."
run() {
	local part=$1 mode=$2 rep=$3 l0 out
	shift 3
	l0=$(cut -d' ' -f1 /proc/loadavg)
	out=$("$SB" "$@" --mode "$mode" --seconds "$SECS" --seed "$rep") || {
		echo "bench_confluence: sched-bench failed: $*" >&2
		return 1
	}
	echo "$part $mode $rep $l0 $(cut -d' ' -f1 /proc/loadavg) $out" | tee -a "$ROWS.new"
}

# Median of whole tails' ok_per_s over the rows of a part.
med_sat() {
	awk -v p="$1" '$1 == p && $2 == "whole" { for (i = 6; i <= NF; i++) if ($i ~ /^ok_per_s=/) { sub(/ok_per_s=/, "", $i); print $i } }' "$ROWS" |
		sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

part() {
	local p=$1 rate
	shift
	: >"$ROWS.new"
	case $p in
	r224-sat|r224-load)
		[ -f "$R224" ] || { echo "bench_confluence: $R224 missing (scripts/make_bench_models.py)"; exit 1; }
		set -- "$R224" --splits 7,11,15 --max-batch 16 --deadline-ms 5000 --samples 16 --warmup 4
		if [ "$p" = r224-sat ]; then
			set -- "$@" --window 64
		else
			rate=${TG_CONFL_R224_RATE:-$(med_sat r224-sat | awk '{ printf "%.1f", $1 * 0.6 }')}
			[ -n "$rate" ] || { echo "bench_confluence: run r224-sat first"; exit 1; }
			set -- "$@" --rate "$rate"
		fi ;;
	fm-sat|fm-load|fm-noexit-sat|fm32-sat|fm32-load)
		set -- "$FM/model.onnx" --fmnist --samples 512 \
			--splits 0,4,6,8 --max-batch 64 --max-delay-us 2000 --warmup 2
		case $p in fm32-*) ;; *) set -- "$@" --int8 "$FM/model.calib" ;; esac
		[ "$p" = fm-noexit-sat ] || set -- "$@" $(fm_exits)
		if [ "$p" = fm-load ] || [ "$p" = fm32-load ]; then
			rate=${TG_CONFL_FM_RATE:-$(med_sat "${p%-load}-sat" | awk '{ printf "%.0f", $1 * 0.6 }')}
			[ -n "$rate" ] || { echo "bench_confluence: run ${p%-load}-sat first"; exit 1; }
			set -- "$@" --rate "$rate" --deadline-ms 100
		else
			set -- "$@" --window 256 --deadline-ms 1000
		fi ;;
	*)
		echo "usage: scripts/bench_confluence.sh BUILD r224-sat|r224-load|fm-sat|fm-load|fm-noexit-sat|fm32-sat|fm32-load|table" >&2
		exit 2 ;;
	esac
	for rep in $(seq 1 "$REPS"); do
		for mode in $MODES; do
			run "$p" "$mode" "$rep" "$@" || exit 1
		done
	done
	{ awk -v p="$p" -v m=" $MODES " '$1 != p || index(m, " " $2 " ") == 0' "$ROWS"
	  cat "$ROWS.new"; } >"$ROWS.tmp" && mv "$ROWS.tmp" "$ROWS"
	rm -f "$ROWS.new"
}

if [ "$PART" = table ]; then
	exec python3 scripts/confluence_table.py "$ROWS"
fi
[ -x "$SB" ] || { echo "bench_confluence: $SB missing (make)"; exit 1; }
shift
for p in "$@"; do
	part "$p"
done
