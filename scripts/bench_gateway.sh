#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Gateway benchmark (make bench): the shipped model (models/fmnist-resnet) behind tailgate on
# af_packet in a network namespace, driven by tests/gw_client from a second one, in both
# scheduling modes (whole_tail = no: segment by segment; yes: a request's whole tail in one
# batch), interleaved, REPS times each:
#   saturation: a closed loop of 128 open requests (two full batches) for SECS s after a 1 s
#     warm-up, deadlines of 1 s, mixed load: Fashion-MNIST images at splits 0, 4, 6, 8 in
#     f32, f16, s8, u8 (a sixteenth each); OK answers per second, mean batch (from /metrics);
#   overload: an open loop at twice that run's saturation rate for SECS s, split 0 u8 (the
#     compute-bound kind), the model's 100 ms deadline: goodput (OK within 100 ms, client
#     side) over the saturation rate of split 0 u8 measured just before (closed loop).
# Engine-only throughput: `tailgate-model bench` (2 threads, as the gateway's engine) of the
# whole tail from each split at batch 64 (max_batch) and at the mean batch the gateway ran;
# the mixed load's engine rate is 4 / sum over the splits of 1 / rate (a quarter each).
# End-to-end / engine-only = the better mode's median saturation rate over it.
# Writes the section "Gateway: scheduling modes and saturation" of docs/BENCHMARKS.md between
# its markers (TG_GWBENCH_DOC=- writes none). Addresses: 10.82.3.0/24.
# Usage: scripts/bench_gateway.sh [BUILD]   env: TG_GWBENCH_REPS (3), TG_GWBENCH_SECONDS (5)
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
REPS=${TG_GWBENCH_REPS:-3}
SECS=${TG_GWBENCH_SECONDS:-5}
DOC=${TG_GWBENCH_DOC:-docs/BENCHMARKS.md}
FM=/usr/share/datasets/fashion-mnist
MODEL=models/fmnist-resnet/model.onnx
NAME=tgbg$$ SUBNET=3
TMP=$(mktemp -d /tmp/tg_gwbench.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ] || [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
	echo "bench_gateway: needs root and $FM; skipped"
	exit 0
fi
load0=$(cut -d' ' -f1 /proc/loadavg)
date0=$(date -u '+%Y-%m-%d %H:%M UTC')
gw_repo "$TMP/repo"
ns_up || { echo "bench_gateway: namespaces failed"; exit 1; }

client() {	# out [options]
	local f=$1
	shift
	ip netns exec "$NS_CL" timeout 120 "$BUILD/tests/gw_client" --gw "$IP_GW" --model "$MODEL" \
		--model-id 1 --fmnist "$FM" --images 512 --block 512 --clients 4 "$@" >"$f" 2>"$f.err"
}

run_mode() {	# whole(yes|no) rep
	local w=$1 rep=$2 o=$TMP/$1_$2
	mkdir -p "$o"
	cat >"$TMP/gw_$w.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
whole_tail = $w
max_inflight_messages = 4096
max_inflight_client = 2048
max_inflight = 4096
queue_cap = 2048
CONF
	gw_start "$TMP/gw_$w.conf" "$o" --engine-threads 2 || { echo "tailgate failed ($w)"; return 1; }
	http_get /metrics "$o/m0"
	client "$o/sat" --splits 0,4,6,8 --dtypes f32,f16,s8,u8 --closed 128 --duration $((SECS + 1)) \
		--warmup 1 --deadline-us 1000000
	http_get /metrics "$o/m1"
	client "$o/cap0" --splits 0 --dtypes u8 --closed 128 --duration $((SECS + 1)) --warmup 1 \
		--deadline-us 1000000
	local c0
	c0=$(val ok_rps "$o/cap0")
	client "$o/ol" --splits 0 --dtypes u8 --rate "$(awk -v c="$c0" 'BEGIN { print 2 * c }')" \
		--duration $((SECS + 1)) --warmup 1 --deadline-us 100000
	gw_term
	local bs bc
	bs=$(( $(metric "$o/m1" 'tailgate_batch_size_sum{model="fmnist-resnet"}') -
	       $(metric "$o/m0" 'tailgate_batch_size_sum{model="fmnist-resnet"}') ))
	bc=$(( $(metric "$o/m1" 'tailgate_batch_size_count{model="fmnist-resnet"}') -
	       $(metric "$o/m0" 'tailgate_batch_size_count{model="fmnist-resnet"}') ))
	# samples per batch; segment mode runs a request in several batches
	echo "$w $rep $(val ok_rps "$o/sat") $(awk -v s="$bs" -v c="$bc" 'BEGIN { printf "%.1f", c ? s / c : 0 }') $c0 $(val goodput_rps "$o/ol") $(val lat_p50_us "$o/sat")" >>"$TMP/rows"
	echo "  whole_tail=$w rep $rep: saturation $(val ok_rps "$o/sat")/s (mean batch $(awk -v s="$bs" -v c="$bc" 'BEGIN { printf "%.1f", c ? s / c : 0 }')), split-0 u8 capacity $c0/s, goodput at 2x $(val goodput_rps "$o/ol")/s"
}

: >"$TMP/rows"
: >"$TMP/eng"
eng() {	# split batch -> images/s
	"$BUILD/tailgate-model" bench "$MODEL" --split "$1" --batch "$2" --threads 2 --seconds 2 \
		--json 2>/dev/null | sed -n 's/.*"images_per_s": *\([0-9.e+]*\).*/\1/p'
}
# Engine-only beside each repetition (the machine's speed drifts): the whole tail from each
# split at batch 64 and at the mean batch whole_tail=yes ran; mixed = 4 / sum of 1 / rate.
for rep in $(seq "$REPS"); do
	for w in no yes; do
		run_mode "$w" "$rep"
	done
	mb=$(awk -v w=yes -v r="$rep" '$1 == w && $2 == r { n = int($4 + 0.5) } END { if (n < 1) n = 1; if (n > 64) n = 64; print n }' "$TMP/rows")
	line="$rep $mb"
	for s in 0 4 6 8; do
		line="$line $(eng "$s" 64) $(eng "$s" "$mb")"
	done
	echo "$line" >>"$TMP/eng"
	echo "  engine rep $rep (split: batch 64, batch $mb): $line"
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); else print 0 }'; }
col() { awk -v w="$1" -v k="$2" '$1 == w { print $k }' "$TMP/rows" | median; }
ecol() { awk -v k="$1" '{ print $k }' "$TMP/eng" | median; }
# per repetition: mixed engine rates (batch 64, mean batch) and end-to-end / engine
awk '{ a = 0; b = 0; for (i = 3; i <= 10; i += 2) { a += 1 / $i; b += 1 / $(i + 1) } print $1, 4 / a, 4 / b }' \
	"$TMP/eng" >"$TMP/mix"
ratios() {	# mode: each repetition's saturation over its engine mix at batch 64
	awk -v w="$1" 'NR == FNR { m[$1] = $2; next } $1 == w && m[$2] > 0 { printf "%s%.2f", (n++ ? ", " : ""), $3 / m[$2] }' \
		"$TMP/mix" "$TMP/rows"
}
ratio_med() {
	awk -v w="$1" 'NR == FNR { m[$1] = $2; next } $1 == w && m[$2] > 0 { printf "%.3f\n", $3 / m[$2] }' \
		"$TMP/mix" "$TMP/rows" | median
}
mix64=$(awk '{ print $2 }' "$TMP/mix" | median)
mixmb=$(awk '{ print $3 }' "$TMP/mix" | median)
mb=$(ecol 2)
sat_no=$(col no 3) sat_yes=$(col yes 3)
load1=$(cut -d' ' -f1 /proc/loadavg)

{
	echo "<!-- bench-gateway:begin -->"
	echo "## Gateway: scheduling modes and saturation"
	echo
	echo "Command: \`make bench\` (this section: \`scripts/bench_gateway.sh $BUILD\`, REPS=$REPS, SECS=$SECS)  "
	echo "Date: $date0. Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, shared (load average (1 min) before / after: $load0 / $load1).  "
	echo "Setup: tailgate (1 worker, 2 engine threads, RX lcore on CPU 1, af_packet on a veth) serving models/fmnist-resnet (splits 0, 4, 6, 8; max_batch 64; max_delay 2 ms); tests/gw_client in the other namespace on the same 2 cores. Medians of $REPS interleaved runs."
	echo
	echo "| whole_tail | saturation, mixed splits/dtypes (OK/s) | samples per engine batch | p50 latency at saturation (ms) | split-0 u8 capacity (OK/s) | goodput at 2x that, 100 ms deadline (OK/s) | goodput / capacity (median of each run's ratio) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	for w in no yes; do
		echo "| $w | $(col "$w" 3) | $(col "$w" 4) | $(awk -v x="$(col "$w" 7)" 'BEGIN { printf "%.1f", x / 1000 }') | $(col "$w" 5) | $(col "$w" 6) | $(awk -v w="$w" '$1 == w && $5 > 0 { printf "%.3f\n", $6 / $5 }' "$TMP/rows" | median) |"
	done
	echo
	echo "Engine only (\`tailgate-model bench $MODEL --split S --batch B --threads 2\`), images/s of the whole tail from each split:"
	echo
	echo "| split | batch 64 | batch $mb (the mean batch, whole_tail=yes; median over repetitions) |"
	echo "| ---: | ---: | ---: |"
	k=3
	for sp in 0 4 6 8; do
		echo "| $sp | $(ecol $k) | $(ecol $((k + 1))) |"
		k=$((k + 2))
	done
	echo
	echo "Mixed load (a quarter per split) on the engine alone: $(printf %.0f "$mix64") images/s at batch 64, $(printf %.0f "$mixmb") at batch $mb (medians). End-to-end saturation over engine-only, per repetition, each against the engine measured right after it (end-to-end / engine at batch 64; whole_tail=yes, then no): $(ratios yes), and $(ratios no); medians $(ratio_med yes) and $(ratio_med no)."
	echo
	echo "Raw rows (mode, rep, saturation/s, samples per batch, split-0 capacity/s, goodput/s, p50 us):"
	echo
	sed 's/^/    /' "$TMP/rows"
	echo
	echo "Engine rows (rep, mean batch, then per split 0, 4, 6, 8: images/s at batch 64 and at the mean batch):"
	echo
	sed 's/^/    /' "$TMP/eng"
	echo "<!-- bench-gateway:end -->"
} >"$TMP/section.md"
cat "$TMP/section.md"
if [ "$DOC" != "-" ] && [ -f "$DOC" ]; then
	if grep -q '<!-- bench-gateway:begin -->' "$DOC"; then
		awk -v f="$TMP/section.md" '
			/<!-- bench-gateway:begin -->/ { while ((getline l < f) > 0) print l; skip = 1; next }
			/<!-- bench-gateway:end -->/ { skip = 0; next }
			!skip { print }' "$DOC" >"$TMP/doc" && cat "$TMP/doc" >"$DOC"
	else
		{ echo; cat "$TMP/section.md"; } >>"$DOC"
	fi
fi
