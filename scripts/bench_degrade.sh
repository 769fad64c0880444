#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Degrade instead of shed, measured (docs/BENCHMARKS.md, "Degrade instead of shed"): the
# shipped model (models/fmnist-resnet, its variants sparse and nob1 only: the other variant
# lines of its model.conf are left out; tails in f32 unless
# TG_DGBENCH_DTYPE=int8: int8's capacity here, about 6,000 requests/s, makes 5x capacity
# 30,000 datagrams/s in and out on the 2 shared cores, and the client and the RX lcore,
# not the engine, then decide what is answered: the runs of 16:55 UTC collapsed to 0-1,400
# OK/s in some 5x runs whatever the policy)
# behind tailgate on af_packet in a network namespace, tests/gw_client in another sending
# Fashion-MNIST images at split 0 as u8 (the only split with stand-ins on this model: nob1's
# dropped block lies before splits 4, 6 and 8), open loop, the model's 100 ms deadline.
#   capacity C: a closed loop of 512 open requests for SECS s after a 1 s warm-up, deadlines
#     of 1 s, devices without a floor (the base only): OK answers per second.
#   then at 2 C and 5 C, SECS s each after a 1 s warm-up, one run per mode:
#     shed      devices declare no accuracy floor: never degraded (what degrade = false does)
#     deg75     floor 75.00%: the sparse variant (card: 91.47% f32, 91.35% int8) may stand
#               in, nob1 not
#     deg10     floor 10.00%: sparse first, nob1 (13.71%, 13.89%) when sparse does not fit
#     nob1      floor 10.00% against a repository with the nob1 line only: the skip-dropped
#               variant alone (a second gateway, same settings)
#   per run: goodput (OK within 100 ms, client side, after the warm-up), OK/s, the share of
#   OK answers a stand-in gave, the accuracy of the goodput answers against the labels, and
#   the right answers within the deadline per second.
# TG_DGBENCH_PAIR=droptrained measures the drop-trained pair instead: the devices ask for
# variant 4 (droptrained, the base fine-tuned with stochastic depth on layer1.0, same graph
# and FLOPs as the shipped base) from a repository serving only it and variant 5
# (droptrained_nob1: the same weights without layer1.0, 67.5% of the FLOPs, 85.50% f32),
# the shipped base staying variant 0 but no stand-in (its tail is not cheaper). Capacity
# from a closed loop on variant 4; modes shed (no floor) and deg80 (floor 80.00%: variant 5
# may stand in), the counterpart of the nob1 rows above with a lighter variant trained for it.
# Prints a markdown table and the machine's load before and after (the machine is shared:
# say so beside the figures). Addresses: 10.85.7.0/24.
# Medians of REPS interleaved repetitions (the modes' order rotated each time), every run
# listed too.
# Usage: scripts/bench_degrade.sh [BUILD]
#   env: TG_DGBENCH_SECONDS (10), TG_DGBENCH_IMAGES (1000), TG_DGBENCH_REPS (3),
#        TG_DGBENCH_DTYPE (f32; or int8), TG_DGBENCH_PAIR (shipped; or droptrained)
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
SECS=${TG_DGBENCH_SECONDS:-10}
REPS=${TG_DGBENCH_REPS:-3}
DTYPE=${TG_DGBENCH_DTYPE:-f32}
IMAGES=${TG_DGBENCH_IMAGES:-1000}
PAIR=${TG_DGBENCH_PAIR:-shipped}
FM=/usr/share/datasets/fashion-mnist
MODEL=models/fmnist-resnet/model.onnx CALIB=models/fmnist-resnet/model.calib VARIANT=0
MODES=(shed deg75 deg10)
case $PAIR in
shipped) ;;
droptrained)
	MODEL=models/fmnist-resnet/variants/droptrained/model.onnx VARIANT=4
	CALIB=models/fmnist-resnet/variants/droptrained/model.calib MODES=(shed deg80) ;;
*) echo "bench_degrade: TG_DGBENCH_PAIR=$PAIR: shipped or droptrained" >&2; exit 1 ;;
esac
NAME=tgdb$$ SUBNET=7 NET=10.85
TMP=$(mktemp -d /tmp/tg_dgbench.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ] || [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
	echo "bench_degrade: needs root and $FM; skipped"
	exit 0
fi
for p in "$BUILD/tailgate" "$BUILD/tests/gw_client"; do
	[ -x "$p" ] || { echo "bench_degrade: missing $p (make first)"; exit 1; }
done
load0=$(cut -d' ' -f1-3 /proc/loadavg)
date0=$(date -u '+%Y-%m-%d %H:%M UTC')
GW_DTYPE=$DTYPE gw_repo "$TMP/repo"
GW_DTYPE=$DTYPE gw_repo "$TMP/repo_nob1"
# Only the variants a mode is about: model.conf serves more (bottleneck, the drop-trained
# pair), and any lighter one with a final accuracy would stand in too.
keep() {	# model.conf NAME-regex: every variant line but those out
	sed -i -E "/^variant *= *[0-9]+ +($2) /!{/^variant *=/d}" "$1"
}
if [ "$PAIR" = shipped ]; then
	keep "$TMP/repo/fmnist-resnet/model.conf" 'sparse|nob1'
	keep "$TMP/repo_nob1/fmnist-resnet/model.conf" nob1
else
	keep "$TMP/repo/fmnist-resnet/model.conf" 'droptrained|droptrained_nob1'
fi
ns_up || { echo "bench_degrade: namespaces failed"; exit 1; }

gw_conf() {	# file repo
	cat >"$1" <<-CONF
	address = $IP_GW
	models = $2
	workers = 1
	max_inflight_messages = 4096
	max_inflight_client = 2048
	max_inflight = 4096
	queue_cap = 2048
	degrade = true
	CONF
}
gw_conf "$TMP/all.conf" "$TMP/repo"
gw_conf "$TMP/nob1.conf" "$TMP/repo_nob1"

calib=
[ "$DTYPE" = int8 ] && calib="--calib $CALIB"	# offline answers as served
client() {	# out [options]
	local f=$1
	shift
	ip netns exec "$NS_CL" timeout 300 "$BUILD/tests/gw_client" --gw "$IP_GW" --model "$MODEL" \
		--model-id 1 --variant "$VARIANT" --fmnist "$FM" --images "$IMAGES" --block "$IMAGES" --splits 0 \
		--dtypes u8 $calib --clients 4 --drain-ms 30000 \
		"$@" >"$f" 2>"$f.err"
}

# floor in 1/100 %: the HELLO profile (compute, uplink, RTT, SLO as in the demo's devices).
overload() {	# out rate floor
	client "$1" --rate "$2" --duration "$SECS" --warmup 1 --deadline-us 100000 \
		--profile "2000,100000,1000,100000,$3"
}

# One run's figures on one line: load mode rep offered goodput ok stand-in-share accuracy right
rec() {	# load-factor mode rep file
	local f=$4
	printf '%s %s %s %s %s %s %s %s %s %s %s\n' "$1" "$2" "$3" "$(show offered_rps "$f")" \
		"$(show goodput_rps "$f")" "$(show ok_rps "$f")" \
		"$(awk -v d="$(show degraded "$f")" -v o="$(show ok "$f")" 'BEGIN { print (o > 0 ? 100 * d / o : 0) }')" \
		"$(awk -v a="$(show good_accuracy "$f")" 'BEGIN { print 100 * a }')" \
		"$(show goodput_correct_rps "$f")" "$(show status_overloaded "$f")" \
		"$(show status_deadline_infeasible "$f")" >>"$TMP/rows"
}

rate_of() { awk -v c="$cap" -v x="$1" 'BEGIN { printf "%.0f", c * x }'; }

: >"$TMP/rows"
out=$TMP/all
gw_start "$TMP/all.conf" "$out" --engine-threads 2 || { echo "bench_degrade: tailgate did not start"; exit 1; }
# 512 open: 128 (two full batches) left the engine idle between batches here (an open loop
# at "2x" that served 1.7x).
client "$TMP/cap" --closed 512 --duration "$SECS" --warmup 1 --deadline-us 1000000
cap=$(show ok_rps "$TMP/cap")
echo "capacity (closed loop of 512, variant $VARIANT only): $cap OK/s"
for rep in $(seq "$REPS"); do
	for x in 2 5; do
		# the modes in turn, the order rotated each repetition: drift hits each alike
		modes=("${MODES[@]}")
		for k in $(seq 0 $((rep - 1))); do modes=("${modes[@]:1}" "${modes[0]}"); done
		for m in "${modes[@]}"; do
			case $m in
			shed) floor=0 ;; deg75) floor=7500 ;; deg10) floor=1000 ;; deg80) floor=8000 ;;
			esac
			overload "$TMP/${m}_${x}_$rep" "$(rate_of "$x")" "$floor"
			rec "${x}x" "$m" "$rep" "$TMP/${m}_${x}_$rep"
		done
	done
done
http_get /metrics "$TMP/metrics_all"
gw_term
out=$TMP/nob1
if [ "$PAIR" = shipped ] && gw_start "$TMP/nob1.conf" "$out" --engine-threads 2; then
	for rep in $(seq "$REPS"); do
		for x in 2 5; do
			overload "$TMP/nob1_${x}_$rep" "$(rate_of "$x")" 1000
			rec "${x}x" nob1 "$rep" "$TMP/nob1_${x}_$rep"
		done
	done
	http_get /metrics "$TMP/metrics_nob1"
	gw_term
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "$date0, load average before $load0, after $load1; capacity $cap OK/s (variant $VARIANT, split 0 u8, tails in $DTYPE); medians of $REPS runs"
echo
echo "| load | devices | offered/s | goodput/s | OK/s | OK by a stand-in | accuracy of goodput | right in time/s | overloaded + infeasible |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for x in 2x 5x; do
	for m in shed deg75 deg10 nob1 deg80; do
		case $m in
		shed) label="shed (no floor)" ;; deg75) label="degrade, floor 75%" ;;
		deg10) label="degrade, floor 10%" ;; nob1) label="degrade to nob1 only, floor 10%" ;;
		deg80) label="degrade to droptrained_nob1, floor 80%" ;;
		esac
		awk -v x="$x" -v m="$m" -v label="$label" '
			function med(c,   n, i, j, t, a) {
				n = 0
				for (i = 1; i <= nr; i++) a[++n] = v[i, c]
				for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
					if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
				return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			}
			$1 == x && $2 == m { nr++; for (c = 4; c <= 11; c++) v[nr, c] = $c; v[nr, 12] = $10 + $11 }
			END {
				if (!nr) exit
				printf "| %s | %s | %.0f | %.0f | %.0f | %.1f%% | %.2f%% | %.0f | %.0f |\n", x, label,
				       med(4), med(5), med(6), med(7), med(8), med(9), med(12)
			}' "$TMP/rows"
	done
done
echo
echo "runs (load mode rep offered/s goodput/s OK/s stand-in% accuracy% right/s overloaded infeasible):"
sed 's/^/    /' "$TMP/rows"
echo
if [ "$PAIR" = shipped ]; then
	echo "stand-ins that answered (gateway with both variants, then nob1 only):"
else
	echo "stand-ins that answered (gateway with the drop-trained pair):"
fi
grep '^tailgate_degraded_total' "$TMP/metrics_all" "$TMP/metrics_nob1" 2>/dev/null | sed "s|$TMP/||"
shopt -s nullglob
for f in "$TMP"/deg*_?_? "$TMP"/nob1_?_?; do
	if [ "$PAIR" = droptrained ]; then
		printf '%s: ran_variant_4 (droptrained) %s, ran_variant_5 (droptrained_nob1) %s, accuracy of their answers: %s, %s\n' \
			"$(basename "$f")" "$(show ran_variant_4 "$f")" "$(show ran_variant_5 "$f")" \
			"$(show accuracy_variant_4 "$f")" "$(show accuracy_variant_5 "$f")"
		continue
	fi
	printf '%s: ran_variant_1 (sparse) %s, ran_variant_2 (nob1) %s, accuracy of their answers: sparse %s, nob1 %s, base %s\n' \
		"$(basename "$f")" "$(show ran_variant_1 "$f")" "$(show ran_variant_2 "$f")" \
		"$(show accuracy_variant_1 "$f")" "$(show accuracy_variant_2 "$f")" \
		"$(show accuracy_variant_0 "$f")"
done
