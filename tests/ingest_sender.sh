#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Integration: the sender of make bench's ingest table (scripts/bench_ingest.sh), dp_sender
# with its chunks sent as frames through a packet socket (--raw-if) and each window slot's
# message resent under new ids (--prebuilt 1), end to end over a veth pair at a modest fixed
# rate (20,000 datagrams/s, open loop) against the receivers that table measures:
# kudp-recv (kernel recvmmsg) and dp_echo on net_af_xdp (a counted skip where AF_XDP is
# unavailable); then a run with impairment (2% loss, 2% reordering, 1% duplication) against
# dp_echo on net_af_packet, whose NACKs are answered by resends through the packet socket.
# Checked per run:
#   - every request completed with a matching CRC32C, none lost or failed;
#   - every message answered exactly once: the receiver completed and answered as many
#     messages as were requested and the sender heard no second answer, give or take one
#     per whole resend (a request that heard nothing for 5 s on a starved machine is resent
#     whole, and may then be answered again);
#   - without impairment every chunk placed exactly once (placed = the sender's first
#     transmissions, unless a whole resend happened);
#   - the chunks went through the packet socket: the client namespace's UDP layer sent the
#     HELLOs and nothing else (Udp OutDatagrams), and its veth carried every datagram.
# Nothing here depends on speed: a busy machine makes a run slower (bounded at 120 s).
# Namespaces, veths and EAL runtime files are removed on exit, whatever happened (no
# hugepage files: EAL runs with --no-huge).
# Usage: tests/ingest_sender.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
. scripts/netns.sh

REQUESTS=${TG_INGEST_TEST_REQUESTS:-2000}
NAME=tgis$$
PREFIX=tg_ingsnd_$$
export TG_NETNS_NET=10.82	# 10.82.0.0/24, inside this test's namespaces only
GW=10.82.0.1
TMP=$(mktemp -d /tmp/tg_ingsnd.XXXXXX)
rx_pid=
. tests/check_lib.bash	# ok, bad, check, val (a missing value fails), check_done

cleanup() {
	[ -n "$rx_pid" ] && kill -TERM "$rx_pid" 2>/dev/null && wait "$rx_pid" 2>/dev/null
	tg_netns_down "$NAME"
	rm -rf "/var/run/dpdk/${PREFIX}"_* "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v ethtool >/dev/null; then
	echo "skip: needs root, ip and ethtool"
	echo "0 passed, 0 failed, 3 skipped"
	exit 0
fi
for p in tests/dp_echo tests/dp_sender bench/kudp-recv; do
	if [ ! -x "$BUILD/$p" ]; then
		echo "missing $BUILD/$p"
		echo "0 passed, 1 failed, 0 skipped"
		exit 1
	fi
done
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)	# receivers have CPU 1
echo "leak:xsk_umem__create" >"$TMP/lsan.supp"	# DPDK 22.11's af_xdp PMD (see dataplane_echo.sh)
LSAN_OPTIONS="suppressions=$TMP/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS

# The client namespace's UDP datagrams sent (Udp OutDatagrams of /proc/net/snmp).
udp_out() {
	ip netns exec "$NAME-cl" awk '$1 == "Udp:" { if (h) { print $f; exit } for (i = 1; \
		i <= NF; i++) if ($i == "OutDatagrams") f = i; h = 1 }' /proc/net/snmp
}
tx_frames() { ip netns exec "$NAME-cl" cat "/sys/class/net/$NAME-c/statistics/tx_packets"; }

# Start a receiver on the gateway end. @return 0 ready, 1 failed, 2 AF_XDP unavailable
start_rx() {	# receiver (kernel, af_xdp, af_packet), out dir
	local rx=$1 out=$2 vdev
	case $rx in
	kernel)
		ip -n "$NAME-gw" addr add "$GW/24" dev "$NAME-g" || return 1
		ip netns exec "$NAME-gw" timeout 150 "$BUILD/bench/kudp-recv" --ip "$GW" \
			--time-limit 140 --max-msg 280000 --ready "$out/ready" \
			>"$out/rx.out" 2>"$out/rx.err" &
		;;
	*)
		vdev="net_af_packet0,iface=$NAME-g,blocksz=4096,framesz=2048,framecnt=8192,qpairs=1"
		[ "$rx" = af_xdp ] && vdev="net_af_xdp0,iface=$NAME-g,start_queue=0,queue_count=1"
		tg_dp_echo "$NAME" "${PREFIX}_$rx" "$vdev" "$out/rx" 150 "$BUILD/tests/dp_echo" \
			--ip "$GW" --max-msg 280000 --inflight-client 8 --inflight-total 64 \
			--gap-us 20000 --timeout-us 10000000 --rx-desc 4096 --ready "$out/ready"
		;;
	esac
	rx_pid=$!
	tg_wait_ready "$out/ready" "$rx_pid" 300 && return 0	# at most 60 s (a busy machine)
	sed 's/^/    | /' "$out/rx.err" | tail -n 8
	[ "$rx" = af_xdp ] && return 2
	return 1
}

run() {	# label, receiver, impair (0/1), seed
	local label=$1 rx=$2 imp=$3 seed=$4 out=$TMP/$1 u0 u1 f0 f1 rc imopt=()
	mkdir -p "$out"
	[ "$imp" = 1 ] && imopt=(--loss 0.02 --reorder 0.02 --dup 0.01)
	if ! tg_netns_up "$NAME" 0; then
		bad "$label: namespaces"
		return
	fi
	start_rx "$rx" "$out"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		[ -n "$rx_pid" ] && kill -TERM "$rx_pid" 2>/dev/null && wait "$rx_pid" 2>/dev/null
		rx_pid=
		if [ "$rc" -eq 2 ]; then
			echo "skip $label: dp_echo did not start on net_af_xdp (AF_XDP unavailable here?)"
			skip=$((skip + 1))
		else
			bad "$label: receiver started"
		fi
		tg_netns_down "$NAME"
		return
	fi
	u0=$(udp_out); f0=$(tx_frames)
	ip netns exec "$NAME-cl" "${pin[@]}" timeout 130 "$BUILD/tests/dp_sender" --gw "$GW" \
		--requests "$REQUESTS" --min-chunks 1 --max-chunks 32 --clients 4 --window 8 \
		--seed "$seed" --time-limit 120 --rate 20000 --req-timeout-ms 5000 --prebuilt 1 \
		--raw-if "$NAME-c" "${imopt[@]}" >"$out/tx.out" 2>"$out/tx.err"
	check "$label: dp_sender finished cleanly" test $? -eq 0
	u1=$(udp_out); f1=$(tx_frames)
	kill -TERM "$rx_pid" 2>/dev/null
	wait "$rx_pid" 2>/dev/null
	check "$label: receiver exited cleanly (status $?)" test $? -eq 0
	rx_pid=
	tg_netns_down "$NAME"

	local s=$out/tx.out r=$out/rx.out n=$REQUESTS whole
	echo "  sender: $(grep -v ' 0$' "$s" | tr '\n' ' ')" | fold -s -w 100
	echo "  receiver (non-zero): $(grep -v ' 0$' "$r" | tr '\n' ' ')" | fold -s -w 100
	sed 's/^/    | /' "$out/tx.err" | tail -n 4
	whole=$(val resent_whole "$s")
	check "$label: the chunks went out through the packet socket" \
		test "$(val tx_path "$s")" = packet
	check "$label: the UDP layer sent only the $(val hello_tx "$s") HELLOs ($((u1 - u0)))" \
		test $((u1 - u0)) -eq "$(val hello_tx "$s")"
	check "$label: the veth carried every datagram ($((f1 - f0)) frames >= $(val tx_dgrams "$s") + HELLOs)" \
		test $((f1 - f0)) -ge $(( $(val tx_dgrams "$s") + $(val hello_tx "$s") ))
	check "$label: $n requests completed, none lost or failed, every CRC32C matched" \
		test "$(val completed "$s")" -eq "$n" -a "$(val lost "$s")" -eq 0 -a \
		"$(val failed "$s")" -eq 0 -a "$(val crc_bad "$s")" -eq 0
	local done resp
	done=$(val msgs_completed "$r")
	resp=$(val resp_sent "$r")
	check "$label: every message answered once (completed $done, responses $resp, second answers heard $(val stale_responses "$s"), whole resends $whole)" \
		test "$done" -ge "$n" -a "$done" -le $((n + whole)) -a "$resp" -eq "$done" -a \
		"$(val stale_responses "$s")" -le "$whole"
	if [ "$imp" = 1 ]; then
		check "$label: losses recovered by resends through the packet socket" \
			test "$(val resent_nack "$s")" -gt 0 -a "$(val impair_dropped "$s")" -gt 0
	elif [ "$whole" -eq 0 ]; then
		check "$label: every chunk placed once ($(val chunks_placed "$r") of $(val chunks "$s"))" \
			test "$(val chunks_placed "$r")" -eq "$(val chunks "$s")"
	else
		check "$label: every chunk placed, at most once more per whole resend" \
			test "$(val chunks_placed "$r")" -ge "$(val chunks "$s")"
	fi
}

run kernel kernel 0 21
run af_xdp af_xdp 0 22
run af_packet_impaired af_packet 1 23

check_done
