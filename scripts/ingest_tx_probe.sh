#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Which sender can outrun the ingest benchmark's receivers (scripts/bench_ingest.sh)? Each
# candidate sends as fast as it can, pinned to CPU 0, from the client end of a veth pair to
# dp_echo on net_af_xdp (RX lcore on CPU 1), for SECS seconds:
#   dp_sender udp      dp_sender's connected UDP sockets, sendmmsg (closed loop, 64-chunk
#                      echo requests, each window slot's message prebuilt, answers read)
#   dp_sender packet   the same, its chunks as frames through a packet socket (--raw-if)
#   testpmd af_packet  dpdk-testpmd txonly on net_af_packet (qdisc bypass), 1400-byte
#                      frames, nothing read back (a DPDK TX process on the other veth end)
#   testpmd af_xdp     the same on net_af_xdp (copy mode on veth)
# Figures: frames/s the sender put out, and frames/s the gateway end received (dp_echo's
# rx_pkts) or lost there (veth rx_dropped, which counts every drop on the XDP path; the
# PMD's imissed counts some of them again), in the proportions of the whole run at the
# sender's own rate (testpmd: the median of its per-second figures, its start left out):
# only what arrives loads a receiver. testpmd rows are skipped without dpdk-testpmd (Debian package dpdk-dev).
# Usage: scripts/ingest_tx_probe.sh [BUILD]   env: TG_PROBE_SECONDS (5)
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
. scripts/netns.sh
SECS=${TG_PROBE_SECONDS:-5}
NAME=tgtp$$
export TG_NETNS_NET=10.83
GW=10.83.0.1
PREFIX=tg_txprobe_$$
TMP=$(mktemp -d /tmp/tg_txprobe.XXXXXX)
rx_pid=

cleanup() {
	[ -n "$rx_pid" ] && kill -TERM "$rx_pid" 2>/dev/null && wait "$rx_pid" 2>/dev/null
	tg_netns_down "$NAME"
	rm -rf "/var/run/dpdk/${PREFIX}"_* "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -ne 0 ] || ! command -v ethtool >/dev/null || ! command -v taskset >/dev/null; then
	echo "skip: needs root, ethtool and taskset"
	exit 0
fi
val() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "?" }' "$2"; }

probe() {	# label
	local label=$1 out=$TMP/$1 d0 d1 sent pps vdev
	mkdir -p "$out"
	tg_netns_up "$NAME" 0 || return 1
	tg_dp_echo "$NAME" "${PREFIX}_rx" "net_af_xdp0,iface=$NAME-g,start_queue=0,queue_count=1" \
		"$out/rx" 0 "$BUILD/tests/dp_echo" --ip "$GW" --max-msg 280000 --inflight-client 32 \
		--inflight-total 512 --rx-desc 4096 --ready "$out/ready"
	rx_pid=$!
	tg_wait_ready "$out/ready" "$rx_pid" 100
	d0=$(ip netns exec "$NAME-gw" cat "/sys/class/net/$NAME-g/statistics/rx_dropped")
	case $label in
	dp_sender_*)
		local raw=()
		[ "$label" = dp_sender_packet ] && raw=(--raw-if "$NAME-c")
		ip netns exec "$NAME-cl" taskset -c 0 timeout $((SECS + 30)) \
			"$BUILD/tests/dp_sender" --gw "$GW" --requests 100000000 --min-chunks 64 \
			--max-chunks 64 --clients 8 --window 4 --time-limit "$SECS" --rate 0 \
			--req-timeout-ms 1000 --prebuilt 1 "${raw[@]}" >"$out/tx.out" 2>&1
		sent=$(val tx_dgrams "$out/tx.out")
		pps=$(awk -v s="$sent" -v t="$(val elapsed_s "$out/tx.out")" 'BEGIN { print s / t }')
		;;
	testpmd_*)
		vdev="net_af_xdp0,iface=$NAME-c,start_queue=0,queue_count=1"
		[ "$label" = testpmd_af_packet ] &&
			vdev="net_af_packet0,iface=$NAME-c,qpairs=1,qdisc_bypass=1,blocksz=4096,framesz=2048,framecnt=4096"
		# Both EAL lcores on CPU 0: the main one only prints; the forwarding one sends.
		ip netns exec "$NAME-cl" timeout -s INT $((SECS + 2)) dpdk-testpmd --no-huge \
			--no-shconf -m 1024 --no-pci --no-telemetry --file-prefix "${PREFIX}_tx" \
			--lcores '(0,1)@0' --vdev "$vdev" --log-level='lib.*:warning' -- \
			--forward-mode=txonly --txpkts=1400 --burst=32 --auto-start --stats-period=1 \
			--nb-cores=1 --txd=1024 --rxd=1024 </dev/null >"$out/tx.out" 2>&1
		sent=$(awk '/TX-total:/ { v = $NF } END { print v + 0 }' "$out/tx.out")
		# its own per-second figures (its start is not part of them), the median
		pps=$(awk '$1 == "Tx-pps:" && $2 > 0 { print $2 }' "$out/tx.out" | sort -n |
			awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }')
		;;
	esac
	d1=$(ip netns exec "$NAME-gw" cat "/sys/class/net/$NAME-g/statistics/rx_dropped")
	kill -TERM "$rx_pid" 2>/dev/null; wait "$rx_pid" 2>/dev/null; rx_pid=
	tg_netns_down "$NAME"
	# Received and lost in the proportions of the whole run, at the sender's rate.
	awk -v l="$label" -v s="$sent" -v p="$pps" -v r="$(val rx_pkts "$out/rx.out")" \
		-v d=$((d1 - d0)) \
		'BEGIN { if (s <= 0) { printf "| %s | (nothing sent) | | |\n", l; exit }
			 printf "| %s | %.0f | %.0f | %.0f |\n", l, p, p * r / s, p * d / s }'
}

echo "== senders against dp_echo on net_af_xdp, ${SECS} s each (load $(cut -d ' ' -f 1-3 /proc/loadavg)) =="
echo "| sender | sent, frames/s | received by the gateway end, frames/s | lost there, frames/s |"
echo "| --- | ---: | ---: | ---: |"
probe dp_sender_udp
probe dp_sender_packet
if command -v dpdk-testpmd >/dev/null; then
	probe testpmd_af_packet
	probe testpmd_af_xdp
else
	echo "(testpmd rows skipped: no dpdk-testpmd)"
fi
echo "(load after: $(cut -d ' ' -f 1-3 /proc/loadavg))"
