#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Idle cost and low-load latency (make bench): what an idle gateway costs in CPU, per thread,
# and what its idle back-off adds to a request that arrives after a quiet spell.
#   1. idle: the shipped model behind build/tailgate (net_af_packet, default configuration),
#      no traffic; the CPU time (user + system) of every thread over IDLE_SECONDS, as a share
#      of one core, from /proc/PID/task/*/stat;
#   2. low load: tailgate-bench at RATE requests/s (Poisson, 10 devices) for SECS seconds:
#      most requests arrive after the RX lcore has gone idle; p50/p99 latency, and the
#      gateway's CPU share meanwhile.
# Writes the section "Idle cost" of docs/BENCHMARKS.md between its markers (TG_IDLE_DOC=-
# writes none). Addresses: 10.82.201.0/24.
# Usage: scripts/bench_idle.sh [BUILD]
#   env: TG_IDLE_SECONDS (10), TG_IDLE_RATE (10), TG_IDLE_LOAD_SECONDS (10), TG_IDLE_DOC
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
IDLE_SECS=${TG_IDLE_SECONDS:-10}
RATE=${TG_IDLE_RATE:-10}
SECS=${TG_IDLE_LOAD_SECONDS:-10}
DOC=${TG_IDLE_DOC:-docs/BENCHMARKS.md}
NAME=tgidle$$ SUBNET=201
TMP=$(mktemp -d /tmp/tg_idle.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

gw_bench_start bench_idle	# sets load0, date0; skips or exits on failure

# "comm ticks" per thread of the gateway (utime + stime, fields 14 and 15 of stat; the comm
# field may hold spaces, so fields are counted after its closing parenthesis).
thread_ticks() {
	local t
	for t in /proc/"$gw_pid"/task/*; do
		[ -r "$t/stat" ] || continue
		awk -v c="$(cat "$t/comm")" '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " ");
			print c "\t" f[12] + f[13] }' "$t/stat"
	done
}
# CPU share of one core per thread name between two thread_ticks files over SECS seconds.
cpu_share() {	# before after seconds
	awk -F'\t' -v hz="$(getconf CLK_TCK)" -v s="$3" '
		NR == FNR { b[$1] += $2; next }
		{ a[$1] += $2 }
		END { for (k in a) { d = a[k] - b[k]; tot += d;
			printf "%s\t%.2f\n", k, 100 * d / hz / s }
		      printf "(all threads)\t%.2f\n", 100 * tot / hz / s }' "$1" "$2" | sort
}

sleep 3	# start-up work (plan measurements) is over once ready; let the back-off settle
thread_ticks >"$TMP/idle0"
sleep "$IDLE_SECS"
thread_ticks >"$TMP/idle1"
cpu_share "$TMP/idle0" "$TMP/idle1" "$IDLE_SECS" >"$TMP/idle.share"

thread_ticks >"$TMP/load0"
ip netns exec "$NS_CL" "$BUILD/tailgate-bench" --gateway "$IP_GW" --bind "$IP_CL" \
	--model models/fmnist-resnet --model-id 1 --devices 10 --images 1000 --rate "$RATE" \
	--duration "$SECS" --warmup 1 --quiet --json "$TMP/low.json" >"$TMP/low.txt" 2>"$TMP/low.err" ||
	{ echo "bench_idle: tailgate-bench failed"; cat "$TMP/low.err"; exit 1; }
thread_ticks >"$TMP/load1"
cpu_share "$TMP/load0" "$TMP/load1" "$((SECS + 1))" >"$TMP/load.share"
load1=$(cut -d' ' -f1 /proc/loadavg)
lat=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["result"]; l=r["latency_ms"];
print("%.2f | %.2f | %.2f | %d of %d" % (l["p50"], l["p99"], l["max"] if "max" in l else float("nan"),
      r["answered"], r["answered"] + r["timeouts"]))' "$TMP/low.json")
rows=$(join -t$'\t' "$TMP/idle.share" "$TMP/load.share" |
	awk -F'\t' '{ printf "| %s | %s | %s |\n", $1, $2, $3 }')

section=$(cat <<EOF
Measured by \`scripts/bench_idle.sh\` (make bench) on $date0, $(nproc) cores
($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)), load average $load0 before and
$load1 after. The shipped model behind \`build/tailgate\` on \`net_af_packet\` with the
default configuration; CPU time (user + system) of each of its threads as a share of one core:
first ${IDLE_SECS} s with no traffic at all, then ${SECS} s of tailgate-bench at $RATE requests/s
(Poisson, 10 devices): most requests arrive after the RX lcore has backed off.

| thread | idle, % of a core | $RATE req/s, % of a core |
| --- | ---: | ---: |
$rows

Latency at $RATE requests/s (from the scheduled send time): p50 | p99 | max ms | answered:
$lat.
EOF
)
echo "$section"
if [ "$DOC" != "-" ]; then
	scripts/doc_section.py "$DOC" idle "Idle cost" "$section"
	echo "bench_idle: wrote the section in $DOC"
fi
