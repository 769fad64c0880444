#!/usr/bin/env bash
# Integration: the dataplane end to end over veth. dp_echo (the dataplane with only the echo
# model) owns 10.77.0.1 on one end of a veth pair in its own namespace, once on net_af_xdp
# and once on net_af_packet; dp_sender, on kernel UDP sockets in a second namespace, pings
# it, then sends 10,000 echo requests of 1 to 200 chunks (raw, f32 and LZ4 tensors) with 2%
# of chunk transmissions dropped, 2% swapped with their neighbour and 1% duplicated.
# A third, shorter af_packet run answers echo from the consumer thread (dp_req_dequeue_burst,
# dp_req_respond) instead of the RX lcore. Checked per run:
#   - ARP and ping are answered by the dataplane (the kernel there has no address);
#   - every request completes, through NACK-driven resends, with a matching CRC32C;
#   - the counters account for every datagram dp_sender put on the wire:
#       sent = udp_rx + dropped before the dataplane (veth rx_dropped, or PMD imissed)
#       udp_rx = HELLOs + chunks_placed + duplicates + late chunks, and no other drop;
#     and for every request: echoed, answered, none timed out.
# af_xdp missing here (kernel, libxdp) makes its run a counted skip; af_packet must work.
# Namespaces, veths, EAL runtime files are removed on exit, whatever happened (no hugepage
# files: EAL runs with --no-huge).
# Usage: tests/dataplane_echo.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
. scripts/netns.sh

REQUESTS=${DP_ECHO_REQUESTS:-10000}
NAME=tgde$$
PREFIX=tg_dpecho_$$
TMP=$(mktemp -d /tmp/tg_dpecho.XXXXXX)
pass=0 fail=0 skip=0
echo_pid=

cleanup() {
	[ -n "$echo_pid" ] && kill -TERM "$echo_pid" 2>/dev/null && wait "$echo_pid" 2>/dev/null
	tg_netns_down "$NAME"
	rm -rf "/var/run/dpdk/${PREFIX}"_* "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
check() {	# description, then a test expression
	local what=$1; shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}
val() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' "$2"; }

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v ethtool >/dev/null; then
	echo "skip: needs root, ip and ethtool"
	echo "0 passed, 0 failed, 3 skipped"
	exit 0
fi
for p in dp_echo dp_sender; do
	if [ ! -x "$BUILD/tests/$p" ]; then
		echo "missing $BUILD/tests/$p"
		echo "0 passed, 1 failed, 0 skipped"
		exit 1
	fi
done
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)	# the RX lcore has CPU 1 (-l 0-1)
# Under SAN=1: DPDK 22.11's af_xdp PMD never frees the umem struct libxdp's xsk_umem__create()
# allocates (80 bytes per port, at close); not ours to fix, so not ours to fail on.
echo "leak:xsk_umem__create" >"$TMP/lsan.supp"
LSAN_OPTIONS="suppressions=$TMP/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS

run() {	# label, vdev, seed, requests, [dp_echo option]
	local label=$1 vdev=$2 seed=$3 n=$4 opt=${5:-} out=$TMP/$1 d0 d1 missed sent udp
	local answered=msgs_echoed
	[ "$opt" = --worker-echo ] && answered=msgs_delivered
	mkdir -p "$out"
	if ! tg_netns_up "$NAME" 0; then
		bad "$label: namespaces"
		return
	fi
	ip netns exec "$NAME-gw" timeout 150 "$BUILD/tests/dp_echo" \
		--no-huge --no-shconf -m 1024 --no-pci --no-telemetry -l 0-1 \
		--file-prefix "${PREFIX}_$label" --vdev "$vdev" --log-level='lib.*:warning' -- \
		--ip 10.77.0.1 --max-msg 280000 --inflight-client 8 --inflight-total 64 \
		--gap-us 20000 --timeout-us 2000000 --rx-desc 4096 --ready "$out/ready" $opt \
		>"$out/echo.out" 2>"$out/echo.err" &
	echo_pid=$!
	for _ in $(seq 100); do	# at most 20 s
		[ -f "$out/ready" ] && break
		kill -0 "$echo_pid" 2>/dev/null || break
		sleep 0.2
	done
	if [ ! -f "$out/ready" ]; then
		kill -TERM "$echo_pid" 2>/dev/null; wait "$echo_pid" 2>/dev/null; echo_pid=
		sed 's/^/    | /' "$out/echo.err" | tail -n 8
		if [[ "$label" == af_xdp* ]]; then
			echo "skip $label: dp_echo did not start on $vdev (AF_XDP unavailable here?)"
			skip=$((skip + 1))
		else
			bad "$label: dp_echo started"
		fi
		tg_netns_down "$NAME"
		return
	fi
	d0=$(ip netns exec "$NAME-gw" cat "/sys/class/net/$NAME-g/statistics/rx_dropped")
	ip netns exec "$NAME-cl" "${pin[@]}" timeout 90 "$BUILD/tests/dp_sender" \
		--gw 10.77.0.1 --requests "$n" --min-chunks 1 --max-chunks 200 \
		--loss 0.02 --reorder 0.02 --dup 0.01 --clients 4 --window 4 --seed "$seed" \
		--time-limit 60 --ping 3 >"$out/sender.out" 2>"$out/sender.err"
	check "$label: dp_sender finished cleanly" test $? -eq 0
	d1=$(ip netns exec "$NAME-gw" cat "/sys/class/net/$NAME-g/statistics/rx_dropped")
	kill -TERM "$echo_pid" 2>/dev/null
	wait "$echo_pid" 2>/dev/null
	check "$label: dp_echo exited cleanly (status $?)" test $? -eq 0
	echo_pid=
	tg_netns_down "$NAME"

	local s=$out/sender.out e=$out/echo.out
	echo "  sender: $(tr '\n' ' ' <"$s")" | fold -s -w 100
	echo "  dataplane (non-zero): $(grep -v ' 0$' "$e" | tr '\n' ' ')" | fold -s -w 100
	check "$label: ARP answered" test "$(val arp_replies "$e")" -ge 1
	check "$label: 4 sessions opened by HELLO, echo in the catalog" \
		test "$(val sessions_opened "$e")" -eq 4 -a "$(val hello_replies "$e")" -eq 4 -a \
		"$(val echo_listed "$s")" -eq 1
	check "$label: 3 pings answered" test "$(val ping_replies "$s")" -eq 3 -a \
		"$(val icmp_replies "$e")" -eq 3
	check "$label: $n requests completed, none lost" \
		test "$(val completed "$s")" -eq "$n" -a "$(val lost "$s")" -eq 0 -a \
		"$(val failed "$s")" -eq 0
	check "$label: every CRC32C matched" test "$(val crc_bad "$s")" -eq 0
	check "$label: losses recovered by resends the NACKs asked for" \
		test "$(val nacks_sent "$e")" -gt 0 -a "$(val resent_nack "$s")" -gt 0 -a \
		"$(val nacks_sent "$e")" -eq "$(val nacks_rx "$s")"
	sent=$(( $(val tx_dgrams "$s") + $(val hello_tx "$s") ))
	udp=$(val udp_rx "$e")
	# Dropped before the dataplane saw them: with af_xdp the veth counts every drop on the
	# XDP path (XSK ring full, fill ring empty); the PMD's imissed counts the latter again.
	# With af_packet no XDP runs on the veth; the packet socket's drops are imissed.
	if [[ "$label" == af_xdp* ]]; then
		missed=$((d1 - d0))
	else
		missed=$(( d1 - d0 + $(val port_missed "$e") ))
	fi
	check "$label: sent $sent = received $udp + dropped before the port $missed" \
		test "$sent" -eq $((udp + missed))
	check "$label: received = HELLOs + placed + duplicates + late, no other drop" \
		test "$udp" -eq $(( $(val proto_rx_hello "$e") + $(val chunks_placed "$e") + \
			$(val drop_chunk_dup "$e") + $(val drop_chunk_late "$e") )) -a \
		"$(awk '$1 ~ /^drop_/ && $1 != "drop_chunk_dup" && $1 != "drop_chunk_late" \
			{ s += $2 } END { print s + 0 }' "$e")" -eq 0
	check "$label: every request answered once ($answered), no timeout" \
		test "$(val $answered "$e")" -eq "$n" -a \
		"$(val resp_sent "$e")" -eq "$n" -a "$(val drop_msg_timeout "$e")" -eq 0
}

XDP="net_af_xdp0,iface=$NAME-g,start_queue=0,queue_count=1"
PACKET="net_af_packet0,iface=$NAME-g,blocksz=4096,framesz=2048,framecnt=8192,qpairs=1"
run af_xdp "$XDP" 11 "$REQUESTS"
run af_packet "$PACKET" 12 "$REQUESTS"
# The consumer path: echo answered by the main thread through the rings a scheduler uses.
run af_packet_worker "$PACKET" 13 $((REQUESTS / 5)) --worker-echo

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
