#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# int8 vs fp32 served end to end (make bench; issue 16 part 2): the shipped model
# (models/fmnist-resnet) behind tailgate on af_packet in a network namespace, once with
# "dtype = f32" and once with "dtype = int8" in its model.conf, interleaved, REPS times each,
# driven by tests/gw_client from a second namespace:
#   saturation: a closed loop of 128 open requests (two full batches) for SECS s after a 1 s
#     warm-up, deadlines of 1 s, mixed load: Fashion-MNIST images at splits 0, 4, 6, 8 in
#     f32, f16, s8, u8 (a sixteenth each): OK answers per second, p50 latency;
#   split-0 u8 capacity: the same closed loop with every request at split 0 as u8 (one
#     datagram, the whole model's compute).
# The int8 runs' client checks every answer against the offline int8 engine (--calib), the
# fp32 runs' against the fp32 one: mismatches are printed beside the rates.
# Engine only beside each repetition: `tailgate-model bench` of the whole model (split 0) at
# batch 64, 2 threads, f32 and int8. The 1-minute load average is printed with every row:
# the machine is shared, and a figure taken under load is not the machine's speed.
# Writes the section "Gateway: int8 vs fp32 end to end" of docs/BENCHMARKS.md between its
# markers (TG_I8BENCH_DOC=- writes none). Addresses: 10.88.1.0/24.
# Usage: scripts/bench_int8.sh [BUILD]   env: TG_I8BENCH_REPS (3), TG_I8BENCH_SECONDS (5)
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
REPS=${TG_I8BENCH_REPS:-3}
SECS=${TG_I8BENCH_SECONDS:-5}
DOC=${TG_I8BENCH_DOC:-docs/BENCHMARKS.md}
FM=/usr/share/datasets/fashion-mnist
MODEL=models/fmnist-resnet/model.onnx
CALIB=models/fmnist-resnet/model.calib
NAME=tgi8b$$ NET=10.88 SUBNET=1
TMP=$(mktemp -d /tmp/tg_i8bench.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ] || [ ! -f "$FM/t10k-images-idx3-ubyte.gz" ]; then
	echo "bench_int8: needs root and $FM; skipped"
	exit 0
fi
for p in "$BUILD/tailgate" "$BUILD/tests/gw_client" "$BUILD/tailgate-model"; do
	[ -x "$p" ] || { echo "bench_int8: missing $p"; exit 1; }
done
date0=$(date -u '+%Y-%m-%d %H:%M UTC')
load() { cut -d' ' -f1 /proc/loadavg; }
for d in f32 int8; do
	gw_repo "$TMP/repo_$d"
	sed -i "s/^dtype *=.*/dtype = $d/" "$TMP/repo_$d/fmnist-resnet/model.conf"
done
ns_up || { echo "bench_int8: namespaces failed"; exit 1; }

client() {	# out dtype [options]
	local f=$1 ref=()
	[ "$2" = int8 ] && ref=(--calib "$CALIB")
	shift 2
	ip netns exec "$NS_CL" timeout 120 "$BUILD/tests/gw_client" --gw "$IP_GW" --model "$MODEL" \
		"${ref[@]}" --model-id 1 --fmnist "$FM" --images 512 --block 512 --clients 4 "$@" \
		>"$f" 2>"$f.err"
}

run_dtype() {	# f32|int8 rep
	local d=$1 rep=$2 o=$TMP/$1_$2 l0
	mkdir -p "$o"
	cat >"$TMP/gw_$d.conf" <<CONF
address = $IP_GW
models = $TMP/repo_$d
workers = 1
max_inflight_messages = 4096
max_inflight_client = 2048
max_inflight = 4096
queue_cap = 2048
CONF
	gw_start "$TMP/gw_$d.conf" "$o" --engine-threads 2 || { echo "tailgate failed ($d)"; return 1; }
	l0=$(load)
	client "$o/sat" "$d" --splits 0,4,6,8 --dtypes f32,f16,s8,u8 --closed 128 \
		--duration $((SECS + 1)) --warmup 1 --deadline-us 1000000
	client "$o/cap0" "$d" --splits 0 --dtypes u8 --closed 128 --duration $((SECS + 1)) \
		--warmup 1 --deadline-us 1000000
	gw_term
	# dtype rep saturation/s p50_us mismatch cap0/s cap0_mismatch load_before load_after
	echo "$d $rep $(show ok_rps "$o/sat") $(show lat_p50_us "$o/sat") $(show mismatch "$o/sat") $(show ok_rps "$o/cap0") $(show mismatch "$o/cap0") $l0 $(load)" >>"$TMP/rows"
	echo "  $d rep $rep: saturation $(show ok_rps "$o/sat")/s (mismatch $(show mismatch "$o/sat")), split-0 u8 $(show ok_rps "$o/cap0")/s, load $l0 -> $(load)"
}

eng() {	# dtype -> images/s of the whole model at batch 64
	"$BUILD/tailgate-model" bench "$MODEL" --split 0 --batch 64 --threads 2 --seconds 2 \
		--dtype "$1" --calib "$CALIB" --json 2>/dev/null |
		sed -n 's/.*"images_per_s": *\([0-9.e+]*\).*/\1/p'
}

: >"$TMP/rows"
: >"$TMP/eng"
for rep in $(seq "$REPS"); do
	for d in f32 int8; do
		run_dtype "$d" "$rep"
	done
	l0=$(load)
	echo "$rep $(eng f32) $(eng int8) $l0 $(load)" >>"$TMP/eng"
	echo "  engine rep $rep (split 0, batch 64: f32, int8, load): $(tail -n 1 "$TMP/eng")"
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); else print 0 }'; }
col() { awk -v d="$1" -v k="$2" '$1 == d && $k ~ /^[0-9.]+$/ { print $k }' "$TMP/rows" | median; }
ecol() { awk -v k="$1" '$k ~ /^[0-9.]+$/ { print $k }' "$TMP/eng" | median; }
# per repetition: int8 over f32 (saturation, split-0 capacity)
per_rep() {	# column
	awk -v k="$1" '{ v[$1 " " $2] = $k } END { for (r = 1; ("f32 " r) in v; r++) if (v["f32 " r] > 0) printf "%s%.2f", (r > 1 ? ", " : ""), v["int8 " r] / v["f32 " r] }' "$TMP/rows"
}
lmin=$(awk '{ print $8; print $9 }' "$TMP/rows"; awk '{ print $4; print $5 }' "$TMP/eng")
lrange=$(echo "$lmin" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }')

{
	echo "<!-- bench-int8:begin -->"
	echo "## Gateway: int8 vs fp32 end to end"
	echo
	echo "Command: \`make bench\` (this section: \`scripts/bench_int8.sh $BUILD\`, REPS=$REPS, SECS=$SECS)  "
	echo "Date: $date0. Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, shared: 1-minute load average during the runs $lrange (a figure taken at a load above ~1 is not the machine's speed: re-measure on a quiet machine).  "
	echo "Setup: tailgate (1 worker, 2 engine threads, whole_tail, af_packet on a veth) serving models/fmnist-resnet with its model.conf's dtype set to f32, then int8 (model.calib), interleaved; tests/gw_client (4 sockets, closed loop of 128, deadlines 1 s) in the other namespace on the same 2 cores; every answer checked against the offline engine of the same precision on the same bytes. Medians of $REPS runs."
	echo
	echo "| tail arithmetic | saturation, mixed splits/dtypes (OK/s) | p50 at saturation (ms) | split-0 u8 capacity (OK/s) | engine only, split 0, batch 64 (images/s) | answers differing from the offline engine |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
	k=2
	for d in f32 int8; do
		mm=$(awk -v d="$d" '$1 == d { s += $5 + $7 } END { print s + 0 }' "$TMP/rows")
		echo "| $d | $(col "$d" 3) | $(awk -v x="$(col "$d" 4)" 'BEGIN { printf "%.1f", x / 1000 }') | $(col "$d" 6) | $(ecol $k) | $mm |"
		k=$((k + 1))
	done
	echo
	echo "int8 over f32 per repetition: saturation $(per_rep 3); split-0 capacity $(per_rep 6)."
	echo
	echo "Rows (dtype, rep, saturation/s, p50 us, mismatches, split-0 u8 capacity/s, its mismatches, load before, load after):"
	echo
	sed 's/^/    /' "$TMP/rows"
	echo
	echo "Engine rows (rep, f32 images/s, int8 images/s, load before, load after):"
	echo
	sed 's/^/    /' "$TMP/eng"
	echo "<!-- bench-int8:end -->"
} >"$TMP/section.md"
cat "$TMP/section.md"
if [ "$DOC" != "-" ] && [ -f "$DOC" ]; then
	if grep -q '<!-- bench-int8:begin -->' "$DOC"; then
		awk -v f="$TMP/section.md" '
			/<!-- bench-int8:begin -->/ { while ((getline l < f) > 0) print l; skip = 1; next }
			/<!-- bench-int8:end -->/ { skip = 0; next }
			!skip { print }' "$DOC" >"$TMP/doc" && cat "$TMP/doc" >"$DOC"
	else
		{ echo; cat "$TMP/section.md"; } >>"$DOC"
	fi
fi
