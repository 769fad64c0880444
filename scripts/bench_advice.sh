#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The advisor's benchmark (docs/BENCHMARKS.md, "Advice"): a model as shipped (its model.conf,
# int8, its variants) behind tailgate on af_packet in a network namespace; tailgate-bench in a
# second one with device classes, each declaring its compute rate, uplink, energy profile and
# accuracy floor in its HELLO; devices start at the base variant's served splits (an equal
# share each) and follow the advice (--follow-advice), across variants where the floor
# admits them; then --oracle runs the same arrivals once per (variant, split) a class
# admits, every device fixed there (a class without a floor admits its own variant only; a
# floor, the sixth field of a class spec, admits every file variant whose accuracy meets
# it). Twice: goal latency, then goal energy. Prints the bench's tables and the load average
# before and after each (figures are ratios within one run).
#
# Load (TG_ADV_LOOP):
#   open    (default) every device sends TG_ADV_FPS frames per second whatever its answers
#           did, as a camera or sensor does: open-loop Poisson arrivals at devices x FPS per
#           second, dealt to idle devices in turn (first idle, first served), so that while
#           every device finishes a frame before its next turn (the run's lowest p99 is far
#           below devices / rate) each sends the same number, nearly periodic, and every
#           class weighs the same in the pooled figures. The class table's request counts
#           show it.
#   closed  TG_ADV_CONC requests always in flight: a device that is answered sooner sends
#           more, so fast uplinks weigh more in the pooled figures (the figures of sessions
#           before 8).
#
# Device classes (six by default: the issue's "compute 10x apart, uplinks 1-100 Mbit/s"),
# NAME:MFLOPS:UPLINK:UJ_PER_MFLOP:PJ_PER_BIT:FLOOR. Energy from published figures:
#   head:  the device's power in its compute mode over its compute rate (1 W at 1 GFLOP/s is
#          1 nJ/FLOP = 1000 uJ/MFLOP). An NVIDIA Jetson Nano module in its 5 W and 10 W
#          power modes (nvpmodel -m 1 / -m 0, "MAXN"; NVIDIA's Jetson Nano power modes): the
#          slow class 5 W at 1 GFLOP/s = 5000 uJ/MFLOP, the fast one 10 W at 10 GFLOP/s =
#          1000 uJ/MFLOP. The modes' budgets, not a draw measured on this model's heads.
#   radio: J. Huang, F. Qian, A. Gerber, Z. M. Mao, S. Sen, O. Spatscheck, "A Close
#          Examination of Performance and Power Characteristics of 4G LTE Networks", MobiSys
#          2012, its power model P = alpha_u x t_u + alpha_d x t_d + beta (uplink throughput
#          t_u in Mbit/s): LTE alpha_u 438.39 mW/(Mbit/s), beta 1288.04 mW; WiFi 283.17
#          mW/(Mbit/s), 132.86 mW. Per bit sent at an uplink of t_u: alpha_u / 1e6 + beta /
#          (t_u x 1e6) J, i.e. the base power over the transfer time. LTE at 1 Mbit/s 438.39
#          + 1288.04 = 1726.43 nJ/bit; LTE at 10 Mbit/s 438.39 + 128.80 = 567.19 nJ/bit;
#          WiFi at 100 Mbit/s 283.17 + 1.33 = 284.50 nJ/bit (their WiFi model extended past
#          the throughputs they measured). Not counted: LTE's promotion and its ~11.6 s
#          high-power tail after a transfer (same paper): at a frame or more every few
#          seconds the radio never leaves it, whatever the choice. (The paper is found by
#          the session's search tool, title, authors and abstract; its stored copies hold only
#          their opening pages, so these coefficients, from its power-model table, were not
#          re-read there: docs/BENCHMARKS.md says so beside the figures.)
#   floor: 74%, which both variants of models/clutter-resnet meet with the final exit (base
#          74.52%, bottleneck 76.16% in int8): devices may be sent across them.
# MODEL_DIR: models/clutter-resnet (default; 1,000 test samples of scripts/make_clutter.py,
# made into BUILD) or models/fmnist-resnet (Fashion-MNIST's test images).
# Addresses: 10.91.1.0/24. Usage: scripts/bench_advice.sh [BUILD] [MODEL_DIR]
#   env: TG_ADV_LOOP (open), TG_ADV_FPS (2 frames/s per device, open loop), TG_ADV_DEVICES
#   (60), TG_ADV_CONC (8 in flight, closed loop), TG_ADV_SECONDS (15 measured s per phase),
#   TG_ADV_GOALS ("latency energy"), TG_ADV_CLASSES (the --class specs, space separated,
#   instead of the six)
set -u
BUILD=${1:-build}
MODEL=${2:-models/clutter-resnet}
cd "$(dirname "$0")/.."
MNAME=$(basename "$MODEL")
SECS=${TG_ADV_SECONDS:-15}
CONC=${TG_ADV_CONC:-8}
FPS=${TG_ADV_FPS:-2}
DEVICES=${TG_ADV_DEVICES:-60}
LOOP=${TG_ADV_LOOP:-open}
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
case $LOOP in
open) load=(--rate "$(awk -v d="$DEVICES" -v f="$FPS" 'BEGIN { print d * f }')") ;;
closed) load=(--concurrency "$CONC") ;;
*) echo "bench_advice: TG_ADV_LOOP is open or closed, not '$LOOP'"; exit 2 ;;
esac
if [ "$MNAME" = fmnist-resnet ]; then
	GW_DTYPE=int8 gw_repo "$TMP/repo"
	inputs=(--images 1000)
else
	gw_model_repo "$TMP/repo" "$MODEL" || exit 1
	if ! gw_clutter_samples "$BUILD/clutter-t10k-1000" 1000 "$FM"; then
		tail -n 4 "$BUILD/clutter-t10k-1000.log"
		exit 1
	fi
	inputs=(--inputs "$BUILD/clutter-t10k-1000")
fi
id=$(sed -n 's/^id *= *\([0-9]*\).*/\1/p' "$MODEL/model.conf")
splits=$(sed -n 's/^splits *= *//p' "$MODEL/model.conf" | tr -d ' ')
gw_advice_conf "$TMP/tailgate.conf" "$TMP/repo"
ns_up || { echo "bench_advice: namespaces failed"; exit 1; }
gw_start "$TMP/tailgate.conf" "$TMP/gw" --engine-threads 1 || {
	echo "bench_advice: tailgate did not start"; exit 1; }

# slow: 1 GFLOP/s at 5 W; fast: 10 GFLOP/s at 10 W; lte1, lte10, wifi: the radio figures
# above in pJ/bit; floor 74%.
CLASSES=(--class slow-lte1:1000:1mbps:5000:1726430:74
	 --class slow-lte10:1000:10mbps:5000:567190:74
	 --class slow-wifi:1000:100mbps:5000:284500:74
	 --class fast-lte1:10000:1mbps:1000:1726430:74
	 --class fast-lte10:10000:10mbps:1000:567190:74
	 --class fast-wifi:10000:100mbps:1000:284500:74)
if [ -n "${TG_ADV_CLASSES:-}" ]; then
	CLASSES=()
	for c in $TG_ADV_CLASSES; do CLASSES+=(--class "$c"); done
fi
echo "== $MODEL, $LOOP loop (${load[*]}), $DEVICES devices, ${SECS} s per phase; $(nproc) cores, $(uname -r)"
for goal in ${TG_ADV_GOALS:-latency energy}; do
	echo "== goal $goal: load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%Y-%m-%d %H:%M UTC')"
	ip netns exec "$NS_CL" "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
		--model "$MODEL" --model-id "$id" "${inputs[@]}" --threads 1 \
		--calib "$MODEL/model.calib" --cache build/bench-cache \
		--devices "$DEVICES" "${load[@]}" --warmup 2 --duration "$SECS" \
		--mix "split=$splits;dtype=s8;deadline=5s" --timeout-ms 2000 --seed 1 --quiet \
		"${CLASSES[@]}" --goal "$goal" --follow-advice --oracle 2>&1 |
		grep -vE '^(tailgate-bench: (building|inputs)|  [a-z0-9]+ +[0-9]+ )'
	echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%H:%M UTC')"
done
http_get /metrics "$TMP/metrics"
echo "== gateway NACKs: $(grep -E '^tailgate_dp_nacks_(sent|deferred)_total ' "$TMP/metrics" | tr '\n' ' ')"
gw_term
