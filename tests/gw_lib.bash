# SPDX-License-Identifier: Apache-2.0
# Sourced by the scripted tests that run the shipped model behind tailgate
# (tests/gateway_fmnist.sh, gateway_overload.sh, bench_gateway.sh, client_gateway.sh,
# advisor*.sh) and by scripts/bench_gateway.sh, bench_e2e.sh, bench_idle.sh and
# bench_advice.sh: namespaces, the daemon, GETs, checks.
# Not a test itself (run_tests.sh runs tests/*.sh only). The caller sets, before sourcing:
#   NAME (unique: include $$), SUBNET (third octet of NET.N.0/24), TMP (a directory it
#   removes), BUILD; NET (first two octets, default 10.82; bench_gateway.sh 10.80,
#   client_gateway.sh 10.79).
# Same measured veth pitfalls as tests/gateway_serve.sh: one queue each end, MTU 1500, TX
# checksum offload off on the client end, no address on the gateway end.

NS_GW=$NAME-gw NS_CL=$NAME-cl IF_GW=$NAME-g IF_CL=$NAME-c
IP_GW=${NET:-10.82}.$SUBNET.1 IP_CL=${NET:-10.82}.$SUBNET.2
PREFIX=tg_${NAME}
gw_pid=
gw_port=

ns_down() {
	ip netns del "$NS_GW" 2>/dev/null
	ip netns del "$NS_CL" 2>/dev/null
	ip link del "$IF_GW" 2>/dev/null
	return 0
}

ns_up() {
	ns_down
	ip netns add "$NS_GW" && ip netns add "$NS_CL" &&
	ip link add "$IF_GW" numtxqueues 1 numrxqueues 1 type veth \
		peer name "$IF_CL" numtxqueues 1 numrxqueues 1 &&
	ip link set "$IF_GW" netns "$NS_GW" && ip link set "$IF_CL" netns "$NS_CL" &&
	ip -n "$NS_GW" link set lo up && ip -n "$NS_CL" link set lo up &&
	ip -n "$NS_GW" link set "$IF_GW" mtu 1500 up &&
	ip -n "$NS_CL" link set "$IF_CL" mtu 1500 up &&
	ip -n "$NS_CL" addr add "$IP_CL/24" dev "$IF_CL" &&
	ip netns exec "$NS_CL" ethtool -K "$IF_CL" tx off >/dev/null || { ns_down; return 1; }
	ip netns exec "$NS_GW" sysctl -qw "net.ipv6.conf.$IF_GW.disable_ipv6=1" 2>/dev/null
	ip netns exec "$NS_CL" sysctl -qw "net.ipv6.conf.$IF_CL.disable_ipv6=1" 2>/dev/null
	# The open loop's answers come in bursts: room in the client's socket buffers.
	ip netns exec "$NS_CL" sysctl -qw net.core.rmem_max=8388608 2>/dev/null
	return 0
}

gw_stop_kill() {
	if [ -n "$gw_pid" ]; then
		kill -KILL "$gw_pid" 2>/dev/null
		wait "$gw_pid" 2>/dev/null
	fi
	gw_pid=
}

gw_cleanup() {
	gw_stop_kill
	ns_down
	rm -rf "/var/run/dpdk/${PREFIX}"_* "$TMP"
}

# A repository holding the shipped model (its own model.conf, or the one given).
gw_repo() {	# dir [model.conf to use instead]
	mkdir -p "$1/fmnist-resnet"
	ln -sf "$PWD/models/fmnist-resnet/model.onnx" "$1/fmnist-resnet/model.onnx"
	ln -sf "$PWD/models/fmnist-resnet/model.calib" "$1/fmnist-resnet/model.calib"
	# File variants that model.conf's variant lines name live there.
	[ -d models/fmnist-resnet/variants ] &&
		ln -sfn "$PWD/models/fmnist-resnet/variants" "$1/fmnist-resnet/variants"
	cp "${2:-models/fmnist-resnet/model.conf}" "$1/fmnist-resnet/model.conf"
	# The shipped model.conf says int8; the tests and benches that check answers against the
	# engine's f32 ones serve f32 (GW_DTYPE=int8: as shipped; tests/gateway_int8.sh).
	sed -i "s/^dtype *=.*/dtype = ${GW_DTYPE:-f32}/" "$1/fmnist-resnet/model.conf"
}

# The shipped repository in dir/repo and dir/tailgate.conf serving it with room for thousands
# in flight: the dataplane's slots and the scheduler's queue are not what sheds (they answer
# OVERLOADED too, but these tests are about the scheduler, reloads and stops).
gw_roomy_conf() {	# dir
	gw_repo "$1/repo"
	cat >"$1/tailgate.conf" <<-CONF
	address = $IP_GW
	models = $1/repo
	workers = 1
	max_inflight_messages = 4096
	max_inflight_client = 2048
	max_inflight = 4096
	queue_cap = 2048
	CONF
}

# tailgate.conf for the advisor's runs (tests/advisor*.sh, scripts/bench_advice.sh): one
# worker, a queue deep enough that the advice, not admission, decides, and each device's 64
# in flight held long enough (10 s) for slow simulated uplinks.
gw_advice_conf() {	# conf_file repo_dir
	cat >"$1" <<-CONF
	address = $IP_GW
	models = $2
	workers = 1
	max_inflight_messages = 4096
	max_inflight_client = 64
	max_inflight = 4096
	queue_cap = 4096
	msg_timeout_us = 10000000
	CONF
}

# A repository holding a model folder as shipped: its model.onnx, model.calib and variants/
# linked, its model.conf copied (tests/advisor_clutter.sh, scripts/bench_advice.sh).
gw_model_repo() {	# repo_dir model_dir
	local d
	d="$1/$(basename "$2")"
	mkdir -p "$d" || return 1
	for f in model.onnx model.calib variants; do
		[ -e "$2/$f" ] && ln -sfn "$PWD/$2/$f" "$d/$f"
	done
	cp "$2/model.conf" "$d/model.conf"
}

# COUNT test samples of models/clutter-resnet's data set in out_dir (numpy, no torch;
# scripts/make_clutter.py), unless there already; its output in out_dir.log.
# @return make_clutter.py's status (0 when the samples were there)
gw_clutter_samples() {	# out_dir count [fashion-mnist dir]
	[ -f "$1/labels.npy" ] && return 0
	/usr/bin/python3 scripts/make_clutter.py --split t10k --count "$2" \
		--data-dir "${3:-/usr/share/datasets/fashion-mnist}" --out "$1" >"$1.log" 2>&1
}

# A class's share (%) of the requests it sent from a split, from tailgate-bench's class table
# ("advised  NAME  requests p50 p90 p99 mJ top1  S:PCT% vV/S:PCT% ..."): 0 when none from
# there, "?missing" when the table has no such class (num_ge and the like then fail).
adv_share() {	# file class split
	awk -v c="$2" -v s="$3" '$1 == "advised" && $2 == c { found = 1
		for (i = 9; i <= NF; i++) { split($i, a, ":"); if (a[1] == s) { sub("%", "", a[2]);
		print a[2]; exit } } print 0; exit } END { if (!found) print "?missing" }' "$1"
}

# Namespaces up, or the test ends here with a failure.
ns_up_or_exit() {
	ns_up && return 0
	bad "namespaces"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
}

# A client's "name value" lines on one folded line.
summary() {	# label file
	echo "  $1: $(tr '\n' ' ' <"$2")" | fold -s -w 100
}

# Start tailgate on af_packet in the gateway namespace; sets gw_pid and gw_port.
# Extra tailgate options after the config. @return 0 once ready (at most 120 s: plans are built and measured, slow when busy).
gw_start() {	# config out_dir [tailgate options...]
	local conf=$1 out=$2
	shift 2
	mkdir -p "$out"
	rm -f "$out/ready"
	ip netns exec "$NS_GW" "$BUILD/tailgate" --config "$conf" \
		--metrics 127.0.0.1:0 --access-log "$out/access.log" --event-log "$out/event.log" \
		--ready "$out/ready" "$@" -- \
		--no-huge --no-shconf -m 1024 --no-pci --no-telemetry -l 0-1 \
		--file-prefix "${PREFIX}_$(basename "$out")" --log-level='lib.*:warning' \
		--vdev "net_af_packet0,iface=$IF_GW,blocksz=4096,framesz=2048,framecnt=4096,qpairs=1" \
		>"$out/gw.out" 2>"$out/gw.err" &
	gw_pid=$!
	for _ in $(seq 600); do
		[ -f "$out/ready" ] && break
		kill -0 "$gw_pid" 2>/dev/null || break
		sleep 0.2
	done
	if [ ! -f "$out/ready" ]; then
		sed 's/^/    | /' "$out/gw.err" | tail -n 8
		gw_stop_kill
		return 1
	fi
	gw_port=$(sed -n 's/^tailgate: control plane on port \([0-9]*\)$/\1/p' "$out/gw.err")
	# Ready is not yet reachable on a busy machine: the RX lcore may not have run, and the
	# client's first ARP can go unanswered (the kernel then drops what waited for it, a
	# HELLO included). Wait for an ICMP echo reply from the dataplane (at most 60 s).
	if ! gw_reachable; then
		echo "    | $IP_GW answered no ICMP echo in 60 s"
		gw_stop_kill
		return 1
	fi
	return 0
}

# The dataplane answers an ICMP echo from the client namespace: 60 tries, 1 s each.
gw_reachable() {
	ip netns exec "$NS_CL" python3 - "$IP_GW" <<'PY'
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1.0)
ident = os.getpid() & 0xffff
for seq in range(60):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"tailgate"
    s.sendto(body[:2] + struct.pack("!H", csum(body)) + body[4:], (sys.argv[1], 0))
    end = time.time() + 1.0
    while time.time() < end:
        try:
            pkt = s.recv(2048)
        except socket.timeout:
            break
        ihl = (pkt[0] & 15) * 4
        if pkt[ihl] == 0 and struct.unpack("!HH", pkt[ihl + 4:ihl + 8]) == (ident, seq):
            sys.exit(0)
sys.exit(1)
PY
}

# SIGTERM and wait (at most 30 s); @return tailgate's exit status.
gw_term() {
	local rc
	kill -TERM "$gw_pid" 2>/dev/null
	for _ in $(seq 150); do
		kill -0 "$gw_pid" 2>/dev/null || break
		sleep 0.2
	done
	wait "$gw_pid" 2>/dev/null
	rc=$?
	gw_pid=
	return $rc
}

# A GET over a plain TCP socket (bash's /dev/tcp), inside the gateway namespace.
http_get() {	# path out
	ip netns exec "$NS_GW" timeout 5 bash -c \
		'exec 3<>/dev/tcp/127.0.0.1/$1 && printf "GET %s HTTP/1.0\r\nHost: x\r\n\r\n" "$2" >&3 &&
		 cat <&3' _ "$gw_port" "$1" >"$2" 2>/dev/null
}

# Test bookkeeping (ok, bad, check, check_done) and strict readers of values (val, metric,
# num_ge ...): a value that is missing fails the check that reads it.
. "$(dirname "${BASH_SOURCE[0]}")/check_lib.bash"

# What every test here needs: root, ip, ethtool and the Fashion-MNIST test set (a skip when
# missing: the machine cannot run it), and the programs given (a failure: the build should
# have made them). Exits with the closing line then. Also tells LeakSanitizer about the
# af_xdp PMD's umem, which DPDK 22.11 never frees.
gw_require() {	# program...
	if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v ethtool >/dev/null; then
		echo "skip: needs root, ip and ethtool"
		echo "0 passed, 0 failed, 1 skipped"
		exit 0
	fi
	if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
		echo "skip: Fashion-MNIST (dataset-fashion-mnist) not installed"
		echo "0 passed, 0 failed, 1 skipped"
		exit 0
	fi
	for p in "$@"; do
		if [ ! -x "$p" ]; then
			echo "missing $p"
			echo "0 passed, 1 failed, 0 skipped"
			exit 1
		fi
	done
	echo "leak:xsk_umem__create" >"$TMP/lsan.supp"
	export LSAN_OPTIONS="suppressions=$TMP/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
}

# The start of a scripts/bench_*.sh run of the shipped model: skips (exit 0) without root or
# Fashion-MNIST, exits 1 when a binary is missing or the gateway does not start; sets load0
# and date0 (the load average and time before the run, for the doc).
gw_bench_start() {	# name for messages
	local who=$1 p
	if [ "$(id -u)" -ne 0 ] || [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
		echo "$who: needs root and Fashion-MNIST (make deps); skipped"
		exit 0
	fi
	for p in "$BUILD/tailgate" "$BUILD/tailgate-bench"; do
		[ -x "$p" ] || { echo "$who: $p missing (make)"; exit 1; }
	done
	load0=$(cut -d' ' -f1 /proc/loadavg)
	date0=$(date -u '+%Y-%m-%d %H:%M UTC')
	gw_repo "$TMP/repo"
	cat >"$TMP/gw.conf" <<CONF
address = $IP_GW
models = $TMP/repo
CONF
	ns_up || { echo "$who: namespaces failed"; exit 1; }
	gw_start "$TMP/gw.conf" "$TMP/gw" || { echo "$who: tailgate did not start"; exit 1; }
}
