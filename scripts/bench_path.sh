#!/usr/bin/env bash
# The request path, measured for one or more tailgate binaries side by side (issue 12 part 1):
# the shipped model behind each binary in turn (1 worker, 2 engine threads, af_packet on a
# veth), tests/gw_client in the other namespace (split 0 as u8: one datagram per request, the
# whole model's compute; four sockets).
#   1. capacity: a closed loop of 128 for SECS s (deadlines 1 s): OK answers per second;
#      the engine alone right after (tailgate-model bench, split 0, batch 64, 2 threads):
#      end-to-end over engine-only;
#   2. CPU per request by thread during that closed loop, from /proc/PID/task/*/stat: the
#      RX lcore (lcore-worker-*), the main thread (the feeder before the change, idle
#      after), everything else (scheduler workers with oneDNN on them, log, HTTP);
#   3. the reload stall: an open loop at a third of the capacity for 12 s, deadlines 100 ms, once
#      without and once with a SIGHUP at 3 s: the client's p99 latency and goodput, and the
#      longest time without an answer (access log).
# Prints one block per binary. Usage: scripts/bench_path.sh BUILD TAILGATE... (each a path to
# a tailgate binary; BUILD gives gw_client and tailgate-model). env SECS (5).
set -u
BUILD=${1:-build}
shift
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
NAME=tgbp$$ NET=10.85 SUBNET=1
TMP=$(mktemp -d /tmp/tg_bench_path.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM
FM=/usr/share/datasets/fashion-mnist

gw_repo "$TMP/repo"
cat >"$TMP/tailgate.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
max_inflight_messages = 4096
max_inflight_client = 2048
max_inflight = 4096
queue_cap = 2048
CONF
ns_up || { echo "bench_path: namespaces failed"; exit 1; }

client() {	# out_file client_base [options]
	local f=$1 base=$2
	shift 2
	ip netns exec "$NS_CL" timeout 120 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 512 \
		--block 512 --splits 0 --dtypes u8 --clients 4 --client-base "$base" "$@" \
		>"$f" 2>"$f.err"
}

# utime+stime ticks per thread group of the tailgate process: "rx main other"
ticks() {	# pid
	local pid=$1 rx=0 main=0 other=0 t name n
	for t in /proc/"$pid"/task/*; do
		name=$(cat "$t/comm" 2>/dev/null) || continue
		n=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null) || continue
		if [[ "$name" == lcore-worker* || "$name" == rte-worker* ]]; then rx=$((rx + n))
		elif [ "$(basename "$t")" = "$pid" ]; then main=$((main + n))
		else other=$((other + n)); fi
	done
	echo "$rx $main $other"
}

# The longest time without an answer to clients NXXX (from the access log), ms: a reload that
# stalls the request path shows as a gap of its build time.
gap() {	# first digit of the client ids, access.log
	grep "\"client\":$1[0-9][0-9][0-9]," "$2" |
		sed -n 's/.*"time":"[^T]*T\([0-9:.]*\)Z".*/\1/p' |
		awk -F: '{ printf "%.6f\n", $1 * 3600 + $2 * 60 + $3 }' | sort -n |
		awk 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { printf "%.0f", m * 1000 }'
}

hz=$(getconf CLK_TCK)
for bin in "$@"; do
	out=$TMP/$(echo "$bin" | tr '/' '_')
	load0=$(cut -d' ' -f1 /proc/loadavg)
	ln -sf "$(readlink -f "$bin")" "$TMP/tailgate"
	BUILD_SAVE=$BUILD
	BUILD=$TMP gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2 || {
		echo "bench_path: $bin did not start"; continue; }
	BUILD=$BUILD_SAVE
	tg=$(pgrep -P "$gw_pid" -x tailgate || echo "$gw_pid")
	client "$out/warm" 1000 --closed 128 --duration 2 --warmup 1 --deadline-us 1000000
	read -r r0 m0 o0 <<<"$(ticks "$tg")"
	client "$out/cap" 2000 --closed 128 --duration "$SECS" --warmup 1 --deadline-us 1000000
	read -r r1 m1 o1 <<<"$(ticks "$tg")"
	cap=$(val ok_rps "$out/cap")
	n=$(val answered "$out/cap")
	eng=$("$BUILD/tailgate-model" bench models/fmnist-resnet/model.onnx --split 0 --batch 64 \
		--threads 2 2>/dev/null | sed -n 's/^images\/s *\([0-9.]*\).*/\1/p' | tail -n 1)
	half=$(awk -v c="$cap" 'BEGIN { printf "%.0f", c / 3 }')
	client "$out/calm" 3000 --rate "$half" --duration 12 --warmup 0 --deadline-us 100000 \
		--drain-ms 10000
	client "$out/hup" 4000 --rate "$half" --duration 12 --warmup 0 --deadline-us 100000 \
		--drain-ms 10000 &
	cpid=$!
	sleep 3
	kill -HUP "$tg"
	wait "$cpid"
	gw_term
	gcalm=$(gap 3 "$out/access.log") ghup=$(gap 4 "$out/access.log")
	grep -E 'SIGHUP|reload' "$out/event.log" | sed 's/^/  event: /'
	awk -v b="$bin" -v l0="$load0" -v l1="$(cut -d' ' -f1 /proc/loadavg)" -v cap="$cap" \
	    -v eng="${eng:-0}" -v n="$n" -v hz="$hz" \
	    -v rx=$((r1 - r0)) -v mn=$((m1 - m0)) -v ot=$((o1 - o0)) \
	    -v cp99="$(val lat_p99_us "$out/calm")" -v cg="$(val goodput_rps "$out/calm")" \
	    -v hp99="$(val lat_p99_us "$out/hup")" -v hg="$(val goodput_rps "$out/hup")" \
	    -v hl="$(val lost "$out/hup")" -v rate="$half" -v gc="$gcalm" -v gh="$ghup" 'BEGIN {
		us = n > 0 ? 1e6 / hz / n : 0
		printf "%s (load %s -> %s)\n", b, l0, l1
		printf "  capacity %.1f OK/s; engine alone %.1f images/s; ratio %.2f\n", cap, eng,
		       (eng > 0 ? cap / eng : 0)
		printf "  CPU per request (us): RX lcore %.1f, main %.1f, other threads %.1f (%d answers)\n",
		       rx * us, mn * us, ot * us, n
		printf "  open loop %d/s: p99 %.1f ms, goodput %.1f/s; with a SIGHUP: p99 %.1f ms, goodput %.1f/s, lost %d\n",
		       rate, cp99 / 1000, cg, hp99 / 1000, hg, hl
		printf "  longest time without an answer: %d ms without, %d ms with the SIGHUP\n", gc, gh
	}'
done
