#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Network namespaces for tests and demos on a host without a NIC: a gateway namespace and a
# client namespace joined by one veth pair, as DESIGN.md's measured pitfalls require:
#   - both ends numtxqueues 1 numrxqueues 1 (af_xdp on veth sees one combined queue; a second
#     RX queue steers traffic to the kernel);
#   - MTU 1500 (a 9000 peer refuses XDP);
#   - TX checksum offload off on the client end (else the kernel leaves UDP checksums
#     unfinished and the gateway, which checks them, drops every datagram);
#   - no address on the gateway end: the DPDK port owns 10.77.N.1 and answers ARP and ping
#     itself; the kernel there stays silent (no port-unreachable replies under af_packet).
# Addresses: 10.77.N.0/24 only (TG_NETNS_NET=A.B: A.B.N.0/24 instead, for a caller given
# another /16), inside namespaces this script creates.
#
# Use as a command:
#   scripts/netns.sh up NAME [N]    create NAME-gw, NAME-cl, veths NAME-g / NAME-c, subnet N
#   scripts/netns.sh down NAME      delete them (idempotent)
#   scripts/netns.sh env NAME [N]   print the shell variables the names and addresses give
# or source it and call tg_netns_up / tg_netns_down / tg_netns_env with the same arguments.
# NAME: up to 12 characters of [a-z0-9] (interface names are at most 15).

tg_netns_env() {	# NAME [N]
	local name=$1 n=${2:-0}
	echo "TG_NS_GW=$name-gw TG_NS_CL=$name-cl TG_IF_GW=$name-g TG_IF_CL=$name-c" \
		"TG_IP_GW=${TG_NETNS_NET:-10.77}.$n.1 TG_IP_CL=${TG_NETNS_NET:-10.77}.$n.2"
}

tg_netns_down() {	# NAME
	local name=$1
	ip netns del "$name-gw" 2>/dev/null
	ip netns del "$name-cl" 2>/dev/null
	ip link del "$name-g" 2>/dev/null	# only if it never moved into a namespace
	return 0
}

tg_netns_up() {	# NAME [N]
	local name=$1 n=${2:-0}
	if ! [[ "$name" =~ ^[a-z0-9]{1,12}$ ]] || ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -gt 255 ]; then
		echo "netns: bad name '$name' or subnet '$n'" >&2
		return 2
	fi
	tg_netns_down "$name"
	{
		ip netns add "$name-gw" &&
		ip netns add "$name-cl" &&
		ip link add "$name-g" numtxqueues 1 numrxqueues 1 type veth \
			peer name "$name-c" numtxqueues 1 numrxqueues 1 &&
		ip link set "$name-g" netns "$name-gw" &&
		ip link set "$name-c" netns "$name-cl" &&
		ip -n "$name-gw" link set lo up &&
		ip -n "$name-cl" link set lo up &&
		ip -n "$name-gw" link set "$name-g" mtu 1500 up &&
		ip -n "$name-cl" link set "$name-c" mtu 1500 up &&
		ip -n "$name-cl" addr add "${TG_NETNS_NET:-10.77}.$n.2/24" dev "$name-c" &&
		ip netns exec "$name-cl" ethtool -K "$name-c" tx off >/dev/null
	} || {
		echo "netns: setting up $name failed" >&2
		tg_netns_down "$name"
		return 1
	}
	# IPv6 would send router solicitations and ND at the gateway port: only noise there.
	ip netns exec "$name-gw" sysctl -qw "net.ipv6.conf.$name-g.disable_ipv6=1" 2>/dev/null
	ip netns exec "$name-cl" sysctl -qw "net.ipv6.conf.$name-c.disable_ipv6=1" 2>/dev/null
	return 0
}

# The dataplane alone in a gateway namespace (tests/dp_echo), as the ingest scripts and tests
# run it: no hugepages, no shared config, no PCI (EAL files under /var/run/dpdk/PREFIX*),
# the main thread on CPU 0 and the RX lcore on CPU 1. Runs in the background (the caller
# takes $! as its pid); stdout and stderr go to OUT.out and OUT.err; killed after LIMIT
# seconds (0: never).
tg_dp_echo() {	# NAME PREFIX VDEV OUT LIMIT DP_ECHO [dp_echo options...]
	local name=$1 prefix=$2 vdev=$3 out=$4 limit=$5 bin=$6
	shift 6
	ip netns exec "$name-gw" timeout "$limit" "$bin" --no-huge --no-shconf -m 1024 --no-pci --no-telemetry \
		-l 0-1 --file-prefix "$prefix" --vdev "$vdev" --log-level='lib.*:warning' -- \
		"$@" >"$out.out" 2>"$out.err" &
}

# Wait for a receiver's ready file. @return 0 once it exists, 1 when PID ended first or
# TRIES x 0.2 s passed (the caller shows its stderr).
tg_wait_ready() {	# FILE PID TRIES
	local i
	for ((i = 0; i < $3; i++)); do
		[ -f "$1" ] && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.2
	done
	[ -f "$1" ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	case "${1:-}" in
	up) shift; tg_netns_up "$@" ;;
	down) shift; tg_netns_down "$@" ;;
	env) shift; tg_netns_env "$@" ;;
	*) echo "usage: $0 up|down|env NAME [N]" >&2; exit 2 ;;
	esac
fi
