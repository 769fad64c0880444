#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Chaos: the gateway stopped under load (issue 11, item 3: SIGTERM under load once lost 61 of
# 792 answers while the event log said every request was answered). tailgate serves the
# shipped model on af_packet in a namespace; clients load it from another.
#   1. SIGTERM under load: gw_client sends an open loop at the measured capacity (split 0,
#      u8, four sockets); SIGTERM to tailgate, then the client stops sending (SIGUSR1) and
#      waits for its answers. Asserted: every request the client sent got exactly one answer
#      (nothing lost), tailgate exits 0, the drain line's delivered = taken = answered with
#      none after the port stopped, and the access log holds one line per RESPONSE the
#      clients got.
#   2. SIGKILL, then restart: tailgate-bench's devices (sessions opened by HELLO) load the
#      gateway; SIGKILL; a new tailgate starts on the same port; the same bench process goes
#      on. Asserted: the new process serves (OK answers counted by it), devices whose session
#      the old process held recovered by a new HELLO (re-HELLOs > 0), and the new process
#      stops cleanly (exit 0, delivered = taken = answered).
# CHAOS_LONG=1 (make chaos): longer loads. Usage: tests/chaos_shutdown.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgcs$$ NET=10.84 SUBNET=2
TMP=$(mktemp -d /tmp/tg_chaos_shutdown.XXXXXX)
. tests/gw_lib.bash
. tests/chaos_lib.bash	# chaos_figure: a row of the "Faults and attacks" table
trap gw_cleanup EXIT
trap 'exit 130' INT TERM
SECS=4
[ "${CHAOS_LONG:-0}" = 1 ] && SECS=20

FM=/usr/share/datasets/fashion-mnist
gw_require "$BUILD/tailgate" "$BUILD/tests/gw_client" "$BUILD/tailgate-bench"

gw_roomy_conf "$TMP"

ns_up_or_exit

# The drain line of an event log: "delivered taken answered late", or nothing.
drain_line() {	# event.log
	grep -o 'stopped: .*' "$1" | tail -n 1 |
		sed -n 's/^stopped: \([0-9]*\) requests delivered by the dataplane, \([0-9]*\) taken, \([0-9]*\) answered, \([0-9]*\) after the port stopped.*/\1 \2 \3 \4/p'
}
check_drain() {	# label event.log
	local d t a l
	read -r d t a l <<<"$(drain_line "$2")"
	check "$1: drain: delivered ${d:-?} = taken ${t:-?} = answered ${a:-?}, ${l:-?} after the port stopped" \
		test -n "${d:-}" -a "${d:-0}" -gt 0 -a "${d:-x}" = "${t:-y}" -a "${t:-x}" = "${a:-y}" \
		-a "${l:-x}" = 0
}

# ---- 1. SIGTERM under load ----
out=$TMP/term
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2; then
	bad "tailgate started on the shipped repository"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
ok "tailgate started on the shipped repository"
client() {	# out_file client_base [gw_client options...]
	local f=$1 base=$2
	shift 2
	ip netns exec "$NS_CL" timeout $((SECS + 90)) "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 512 \
		--block 512 --splits 0 --dtypes u8 --clients 4 --client-base "$base" --ids "$f.ids" \
		"$@" >"$f" 2>"$f.err"
}
client "$out/cap" 1000 --closed 128 --duration 3 --warmup 1 --deadline-us 1000000
cap=$(val ok_rps "$out/cap")
summary "capacity (closed loop)" "$out/cap"
rate=$(awk -v c="$cap" 'BEGIN { printf "%.0f", c < 20 ? 20 : c }')
client "$out/load" 2000 --rate "$rate" --duration $((SECS + 30)) --warmup 1 \
	--deadline-us 100000 --drain-ms 10000 &
cpid=$!
for _ in $(seq 3000); do	# sending (an answer came back), at most 300 s on a busy machine
	[ -s "$out/load.ids" ] && break
	kill -0 "$cpid" 2>/dev/null || break
	sleep 0.1
done
sleep "$SECS"
kill -TERM "$gw_pid" 2>/dev/null
# gw_client itself (not timeout(1)): it stops sending and waits for what it sent.
kill -USR1 $(pgrep -f "^$BUILD/tests/gw_client .*--client-base 2000") 2>/dev/null
t_term=$(date +%s)
for _ in $(seq 300); do
	kill -0 "$gw_pid" 2>/dev/null || break
	sleep 0.1
done
wait "$gw_pid" 2>/dev/null
grc=$?
gw_pid=
wait "$cpid"
rc=$?
summary "SIGTERM during an open loop at $rate/s" "$out/load"
check "SIGTERM: every request sent answered exactly once (client status $rc, sent $(val sent "$out/load"), answered $(val answered "$out/load"), lost $(val lost "$out/load"))" \
	test "$rc" -eq 0 -a "$(val lost "$out/load")" -eq 0 -a "$(val sent "$out/load")" -gt 0 -a \
	"$(val answered "$out/load")" -eq "$(val sent "$out/load")"
check "SIGTERM: tailgate exited 0 (status $grc, $(( $(date +%s) - t_term )) s)" test "$grc" -eq 0
grep -o 'stopped: .*' "$out/event.log" | sed 's/^/  /'
check_drain "SIGTERM" "$out/event.log"
logged=$(cat "$out/access.log" 2>/dev/null | wc -l)
answered=$(cat "$out"/*.ids 2>/dev/null | wc -l)
check "SIGTERM: one access-log line per RESPONSE the clients got ($logged, $answered)" \
	test "$logged" -gt 0 -a "$logged" -eq "$answered"
chaos_figure "SIGTERM under load" "$([ "$fail" -eq 0 ] && echo pass || echo FAIL)" \
	"open loop at $rate/s: $(show sent "$out/load") sent, $(show answered "$out/load") answered once, $(show lost "$out/load") lost; exit status $grc; $logged access-log lines for $answered answers"
fail_term=$fail

# ---- 2. SIGKILL, restart, devices recover by HELLO ----
out=$TMP/kill
t0=$(date +%s)
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2; then
	bad "SIGKILL: first tailgate started"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
t_start=$(( $(date +%s) - t0 ))
# Long enough to span the kill, a restart as slow as this start, and SECS of service. A
# device gives up a request after 4 resends (50 ms doubling: 1.5 s), so devices are free
# again for new arrivals once the new process serves: their first send finds no session.
dur=$(( 2 + 3 * (t_start + 1) + SECS ))
ip netns exec "$NS_CL" timeout $((dur + 120)) "$BUILD/tailgate-bench" --gateway "$IP_GW" \
	--model models/fmnist-resnet --model-id 1 --images 64 --threads 1 --devices 100 \
	--rate 40 --warmup 0 --duration "$dur" --drain 5 --retries 4 --timeout-ms 50 \
	--mix 'split=0;dtype=u8;deadline=1s' --cache "$TMP/cache" --quiet \
	--json "$out/bench.json" >"$out/bench.out" 2>"$out/bench.err" &
bpid=$!
for _ in $(seq 600); do	# the bench's devices are served (its inputs take a while)
	http_get /metrics "$out/m0"
	v=$(metric "$out/m0" 'tailgate_requests_total{model="fmnist-resnet",status="ok"}')
	[ "${v:-0}" -gt 20 ] 2>/dev/null && break
	kill -0 "$bpid" 2>/dev/null || break
	sleep 0.1
done
check "SIGKILL: the first tailgate served the bench (${v:-?} OK)" test "${v:-0}" -gt 20
kill -KILL "$gw_pid" 2>/dev/null
wait "$gw_pid" 2>/dev/null
gw_pid=
rm -rf "/var/run/dpdk/${PREFIX}_kill"
if gw_start "$TMP/tailgate.conf" "$TMP/kill2" --engine-threads 2; then
	ok "SIGKILL: a new tailgate started on the same port"
else
	bad "SIGKILL: a new tailgate started on the same port"
fi
wait "$bpid"
brc=$?
sed 's/^/    | /' "$out/bench.out" | grep -E 'answered|OK|timeouts|re-HELLO|ERROR|status' | head -n 12
jv() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["result"]
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$2" "$1" 2>/dev/null || echo -1; }
check "SIGKILL: the bench ran to its end (status $brc: not killed)" test "$brc" -lt 128
check "SIGKILL: devices recovered by a new HELLO (re-HELLOs $(jv rehellos "$out/bench.json"))" \
	test "$(jv rehellos "$out/bench.json")" -gt 0
if [ -n "$gw_pid" ]; then
	http_get /metrics "$out/m1"
	v=$(metric "$out/m1" 'tailgate_requests_total{model="fmnist-resnet",status="ok"}')
	check "SIGKILL: the new tailgate served the same devices (${v:-?} OK)" test "${v:-0}" -gt 0
	awk '($1 ~ /^tailgate_dp_(drops|refusals)_total/ && $2 != 0) ||
	     $1 ~ /^tailgate_dp_(rx_pkts|udp_rx|msgs_completed|msgs_delivered|errors_sent)_total/' \
		"$out/m1" | sed 's/^/  new tailgate: /'
	grep -v '^model\|^  ' "$TMP/kill2/gw.err" | tail -n 5 | sed 's/^/  new tailgate stderr: /' 
	gw_term
	grc=$?
	check "SIGKILL: the new tailgate exited 0 on SIGTERM (status $grc)" test "$grc" -eq 0
	check_drain "SIGKILL: the new tailgate" "$TMP/kill2/event.log"
fi
chaos_figure "SIGKILL and restart" "$([ "$fail" -eq "$fail_term" ] && echo pass || echo FAIL)" \
	"100 devices at 40 req/s; restart on the same port; devices re-HELLOed $(jv rehellos "$out/bench.json") times and the new tailgate served ${v:-?} OK"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
