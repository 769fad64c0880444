#!/usr/bin/env bash
# Overload on the shipped model: tailgate serves models/fmnist-resnet on af_packet in a
# namespace; gw_client, in another, sends Fashion-MNIST images at split 0 as u8 (one datagram,
# the whole model's compute: the gateway is the bottleneck, not the wire).
#   1. capacity: a closed loop of 128 open requests (two full batches) for 4 s, deadlines of
#      1 s; OK answers per second after a 1 s warm-up, measured before and after the overload
#      (C: their mean). Measured here, every run: the machine is shared, its speed varies.
#   2. overload: an open loop (paced, requests spread over 4 client sockets, thousands in
#      flight) at 2 C for 10 s with the model's deadline (100 ms). Checked: tailgate stays up,
#      every request is answered with a result or a status (OVERLOADED, DEADLINE_INFEASIBLE),
#      and the goodput (answered OK within 100 ms as the client sees it, send to answer) is at
#      least 0.8 C. On a miss the round (capacity, overload, capacity) is run once more (the
#      other tenants of this machine come and go); the second result counts.
#   3. SIGHUP under the same load: the reload's new generation takes over, nothing is lost.
#   4. SIGTERM under the same load (the client stops sending at the signal): every request
#      sent is answered, tailgate exits 0, and the access log (flushed at exit) has exactly
#      one line per RESPONSE the client got.
# Usage: tests/gateway_overload.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgol$$ SUBNET=2
TMP=$(mktemp -d /tmp/tg_gwol.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM
summary() { echo "  $1: $(tr '\n' ' ' <"$2")" | fold -s -w 100; }

FM=/usr/share/datasets/fashion-mnist
gw_require "$BUILD/tailgate" "$BUILD/tests/gw_client"

gw_repo "$TMP/repo"
# Room for thousands in flight: the dataplane's slots and the scheduler's queue must not be
# what sheds (they answer OVERLOADED too, but the test is about the scheduler's choices).
cat >"$TMP/tailgate.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
max_inflight_messages = 4096
max_inflight_client = 2048
max_inflight = 4096
queue_cap = 2048
CONF

out=$TMP/run
if ! ns_up; then
	bad "namespaces"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2; then
	bad "tailgate started on the shipped repository"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
ok "tailgate started on the shipped repository"

client() {	# out_file ids_file client_base [gw_client options...]
	local f=$1 ids=$2 base=$3
	shift 3
	ip netns exec "$NS_CL" timeout 60 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 512 \
		--block 512 --splits 0 --dtypes u8 --clients 4 --client-base "$base" --ids "$ids" \
		"$@" >"$f" 2>"$f.err"
}

capacity() {	# out_file
	client "$1" "$1.ids" 1000 --closed 128 --duration 4 --warmup 1 --deadline-us 1000000
	cat "$1.ids" >>"$out/ids"
	val ok_rps "$1"
}

overload() {	# out_file rate
	client "$1" "$1.ids" 2000 --rate "$2" --duration 10 --warmup 1 --deadline-us 100000
	local rc=$?
	cat "$1.ids" >>"$out/ids"
	return $rc
}

: >"$out/ids"
# One round: capacity, overload at twice it, capacity again; the bound is against the mean
# of the two capacities (the machine's speed during the overload is what counts).
round() {	# suffix
	local c0 c1
	c0=$(capacity "$out/cap$1a")
	summary "capacity (closed loop)" "$out/cap$1a"
	rate=$(awk -v c="$c0" 'BEGIN { printf "%.0f", 2 * c }')
	overload "$out/ol$1" "$rate"
	rc=$?
	summary "overload at $rate/s" "$out/ol$1"
	c1=$(capacity "$out/cap$1b")
	summary "capacity after (closed loop)" "$out/cap$1b"
	cap=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", (a + b) / 2 }')
	good=$(val goodput_rps "$out/ol$1")
	cp "$out/ol$1" "$out/ol"
}
round 1
check "capacity measured: $cap OK/s (mean of before and after)" awk -v c="$cap" 'BEGIN { exit !(c > 0) }'
if awk -v g="$good" -v c="$cap" 'BEGIN { exit !(g < 0.8 * c) }'; then
	echo "  goodput $good/s < 0.8 x $cap: the round is run once more"
	round 2
fi
check "overload: every request answered, with a result or a status (client status $rc, lost $(val lost "$out/ol"))" \
	test "$rc" -eq 0 -a "$(val lost "$out/ol")" -eq 0 -a \
	"$(val answered "$out/ol")" -eq "$(val sent "$out/ol")"
check "overload: answers carry statuses, OK or shed (ok $(val ok "$out/ol"), overloaded $(val status_overloaded "$out/ol"), infeasible $(val status_deadline_infeasible "$out/ol"))" \
	test "$(val ok "$out/ol")" -gt 0 -a \
	"$(( $(val status_overloaded "$out/ol") + $(val status_deadline_infeasible "$out/ol") ))" -gt 0
check "overload: goodput $good/s >= 0.8 x capacity $cap/s" \
	awk -v g="$good" -v c="$cap" 'BEGIN { exit !(g >= 0.8 * c) }'
check "overload: OK answers equal the engine's offline classes" \
	test "$(val mismatch "$out/ol")" -eq 0
check "overload: tailgate still up" kill -0 "$gw_pid"
http_get /healthz "$out/healthz"
check "overload: /healthz ok" grep -q '^ok' "$out/healthz"
http_get /metrics "$out/metrics"
shed=$(metric "$out/metrics" tailgate_sched_shed_on_arrival_total)
exp=$(metric "$out/metrics" tailgate_sched_expired_in_queue_total)
echo "  scheduler: shed on arrival ${shed:-?}, expired in queue (no compute) ${exp:-?}"

# SIGHUP at 2 s into 6 s of the same load.
client "$out/hup" "$out/hup.ids" 3000 --rate "$rate" --duration 6 --warmup 1 \
	--deadline-us 100000 &
cpid=$!
for _ in $(seq 100); do	# the client answered at least once (at most 10 s), then 1 s more
	[ -s "$out/hup.ids" ] && break
	sleep 0.1
done
sleep 1
kill -HUP "$(pgrep -P "$gw_pid" | head -n 1 || echo "$gw_pid")" 2>/dev/null || kill -HUP "$gw_pid"
wait "$cpid"
rc=$?
cat "$out/hup.ids" >>"$out/ids"
summary "SIGHUP under load" "$out/hup"
for _ in $(seq 100); do
	grep -q 'reload: generation 2' "$out/event.log" 2>/dev/null && break
	sleep 0.1
done
check "SIGHUP under load: generation 2 serves" grep -q 'reload: generation 2 serves' "$out/event.log"
check "SIGHUP under load: every request answered (status $rc, lost $(val lost "$out/hup"))" \
	test "$rc" -eq 0 -a "$(val lost "$out/hup")" -eq 0 -a "$(val sent "$out/hup")" -gt 0

# SIGTERM at 2 s into the same load; the client stops sending at the signal, then waits.
client "$out/term" "$out/term.ids" 4000 --rate "$rate" --duration 8 --warmup 1 \
	--deadline-us 100000 --drain-ms 5000 &
cpid=$!
for _ in $(seq 100); do	# the client answered at least once (at most 10 s), then 1 s more
	[ -s "$out/term.ids" ] && break
	sleep 0.1
done
sleep 1
kill -TERM "$gw_pid" 2>/dev/null
# gw_client itself (not timeout(1), which a USR1 would end): it stops sending and waits.
kill -USR1 $(pgrep -f "^$BUILD/tests/gw_client .*--client-base 4000") 2>/dev/null
t_term=$(date +%s)
for _ in $(seq 150); do
	kill -0 "$gw_pid" 2>/dev/null || break
	sleep 0.2
done
wait "$gw_pid" 2>/dev/null
grc=$?
gw_pid=
wait "$cpid"
rc=$?
cat "$out/term.ids" >>"$out/ids"
summary "SIGTERM under load" "$out/term"
check "SIGTERM under load: every request sent answered (status $rc, lost $(val lost "$out/term"))" \
	test "$rc" -eq 0 -a "$(val lost "$out/term")" -eq 0 -a "$(val sent "$out/term")" -gt 0
check "SIGTERM under load: tailgate exited 0 (status $grc, $(( $(date +%s) - t_term )) s)" \
	test "$grc" -eq 0
grep -o 'stopped: .*' "$out/event.log" | sed 's/^/  /'
logged=$(cat "$out/access.log" 2>/dev/null | wc -l)
answered=$(wc -l <"$out/ids")
check "logs flushed: one access-log line per RESPONSE the clients got ($logged, $answered)" \
	test "$logged" -eq "$answered"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
