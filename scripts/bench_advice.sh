#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The advisor's benchmark (docs/BENCHMARKS.md, "Advice"): a model as shipped (its model.conf,
# int8) behind tailgate on af_packet in a network namespace; tailgate-bench in a second one
# with four device classes, 10x apart in compute (1 and 10 GFLOP/s) and 100x in uplink (1 and
# 100 Mbit/s), each with an energy profile; devices start at the served splits (an equal
# share each) and follow the advice (--follow-advice); then --oracle runs the same arrivals
# once per (variant, split) a class admits, every device fixed there (a class without an
# accuracy floor admits its own variant only; a floor, the sixth field of a TG_ADV_CLASSES
# spec, admits every file variant whose accuracy meets it). Twice: goal latency, then goal
# energy. Prints
# the bench's tables and the load average before and after (figures are ratios within one
# run). MODEL_DIR: models/fmnist-resnet (default; Fashion-MNIST's test images) or
# models/clutter-resnet (1,000 test samples of scripts/make_clutter.py, made into BUILD).
# Addresses: 10.91.1.0/24. Usage: scripts/bench_advice.sh [BUILD] [MODEL_DIR]
#   env: TG_ADV_SECONDS (15 measured s per phase), TG_ADV_CONC (8 in flight),
#   TG_ADV_CLASSES (the --class specs, space separated, instead of the four)
set -u
BUILD=${1:-build}
MODEL=${2:-models/fmnist-resnet}
cd "$(dirname "$0")/.."
MNAME=$(basename "$MODEL")
SECS=${TG_ADV_SECONDS:-15}
CONC=${TG_ADV_CONC:-8}
FM=/usr/share/datasets/fashion-mnist
NAME=tgba$$ NET=10.91 SUBNET=1
TMP=$(mktemp -d /tmp/tg_advbench.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ] || [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
	echo "bench_advice: needs root and $FM; skipped"
	exit 0
fi
if [ "$MNAME" = fmnist-resnet ]; then
	GW_DTYPE=int8 gw_repo "$TMP/repo"
	inputs=(--images 1000)
else
	mkdir -p "$TMP/repo/$MNAME"
	for f in model.onnx model.calib model.conf variants; do
		[ -e "$MODEL/$f" ] && ln -s "$PWD/$MODEL/$f" "$TMP/repo/$MNAME/$f"
	done
	if [ ! -f "$BUILD/clutter-t10k-1000/labels.npy" ]; then
		/usr/bin/python3 scripts/make_clutter.py --split t10k --count 1000 \
			--out "$BUILD/clutter-t10k-1000" || exit 1
	fi
	inputs=(--inputs "$BUILD/clutter-t10k-1000")
fi
id=$(sed -n 's/^id *= *\([0-9]*\).*/\1/p' "$MODEL/model.conf")
splits=$(sed -n 's/^splits *= *//p' "$MODEL/model.conf" | tr -d ' ')
gw_advice_conf "$TMP/tailgate.conf" "$TMP/repo"
ns_up || { echo "bench_advice: namespaces failed"; exit 1; }
gw_start "$TMP/tailgate.conf" "$TMP/gw" --engine-threads 1 || {
	echo "bench_advice: tailgate did not start"; exit 1; }

CLASSES=(--class slow-cell:1000:1mbps:1000:100000 --class slow-wifi:1000:100mbps:1000:10000
	 --class fast-cell:10000:1mbps:200:100000 --class fast-wifi:10000:100mbps:200:10000)
if [ -n "${TG_ADV_CLASSES:-}" ]; then
	CLASSES=()
	for c in $TG_ADV_CLASSES; do CLASSES+=(--class "$c"); done
fi
for goal in latency energy; do
	echo "== goal $goal: load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%H:%M UTC')"
	ip netns exec "$NS_CL" "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
		--model "$MODEL" --model-id "$id" "${inputs[@]}" --threads 1 \
		--calib "$MODEL/model.calib" --cache build/bench-cache \
		--devices 40 --concurrency "$CONC" --warmup 2 --duration "$SECS" \
		--mix "split=$splits;dtype=s8;deadline=5s" --timeout-ms 2000 --seed 1 --quiet \
		"${CLASSES[@]}" --goal "$goal" --follow-advice --oracle 2>&1 |
		grep -vE '^(tailgate-bench: (building|inputs)|  [a-z0-9]+ +[0-9]+ )'
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
done
gw_term
