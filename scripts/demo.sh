#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo: the gateway serving the shipped model over a veth pair, loaded for a few seconds by
# tailgate-bench, then a report. Steps:
#   1. two network namespaces joined by a veth pair (scripts/netns.sh, subnet 10.77.DEMO_NET.0/24);
#   2. build/tailgate in the gateway namespace with models/fmnist-resnet, on net_af_xdp, or on
#      net_af_packet when the kernel refuses AF_XDP on the veth;
#   3. build/tailgate-bench in the client namespace: DEMO_DEVICES simulated devices, open-loop
#      Poisson arrivals at DEMO_RATE requests/s for DEMO_SECONDS, mixed split points and dtypes,
#      real Fashion-MNIST tensors, every answer checked against its label; the model's early
#      exits answer (--exits: the report gives the share at each exit and the compute saved);
#   4. the variants: each 'variant = ...' line of model.conf loaded for DEMO_VARIANT_SECONDS by
#      tailgate-bench --variant ID (a file variant's own file, a drop variant's from
#      'tailgate-model drop'), at split 0 and the variant's last split; a table per variant:
#      requests, latency p50/p99, accuracy against the labels, early exits' share;
#   5. the report: the bench's table, one line per figure saying what it counts (warm-up,
#      resends at zero loss, why the gateway's counts differ, which accuracy is which), the
#      gateway's own view (/metrics), where the plots and logs are; then a teardown of
#      everything - namespaces, processes, temporary files - on success, failure or Ctrl-C.
# Package installation and compiler output go to BUILD/demo/setup.log, the gateway's start-up
# output to BUILD/demo/gw.err: the terminal shows the report.
# Usage: scripts/demo.sh BUILD      (as root; make demo; it installs and builds first)
# Environment: DEMO_SECONDS (10), DEMO_RATE (150), DEMO_DEVICES (1000), DEMO_IMAGES (1000:
#   the bench computes every image's head at each split first), DEMO_NET (200),
#   DEMO_MIX (the bench's --mix), DEMO_PMD (auto | af_xdp | af_packet), DEMO_VARIANT_SECONDS
#   (4; 0: no variant runs), DEMO_VARIANT_RATE (60), DEMO_VARIANT_IMAGES (300). The gateway's logs, the
#   bench's JSON and .hgrm stay in BUILD/demo/.
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
source scripts/netns.sh

SECONDS_RUN=${DEMO_SECONDS:-10}
RATE=${DEMO_RATE:-150}
IMAGES=${DEMO_IMAGES:-1000}
DEVICES=${DEMO_DEVICES:-1000}
NET=${DEMO_NET:-200}
MIX=${DEMO_MIX:-split=0,4,6,8;dtype=f32,f16,s8,u8;uplink=20000-100000kbps;deadline=100ms}
PMD=${DEMO_PMD:-auto}
VSECONDS=${DEMO_VARIANT_SECONDS:-4}
VRATE=${DEMO_VARIANT_RATE:-60}
VIMAGES=${DEMO_VARIANT_IMAGES:-300}
NAME=tgdemo
eval "$(tg_netns_env "$NAME" "$NET")"
PREFIX=tg_demo_$$
OUT=$BUILD/demo
gw_pid=
ns_made=

say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

teardown() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$gw_pid" ]; then
		kill -TERM "$gw_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$gw_pid" 2>/dev/null
		wait "$gw_pid" 2>/dev/null
	fi
	[ -n "$ns_made" ] && tg_netns_down "$NAME"
	rm -rf /var/run/dpdk/"${PREFIX}"_*
	rm -rf "$OUT/repo"
	[ -n "$ns_made" ] && echo "demo: namespaces and gateway removed"
	exit "$rc"
}
trap teardown EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || die "run as root (network namespaces, veth pairs and DPDK need it)"
mkdir -p "$OUT"
# make deps and make: their output is a log, not the demo's first screen.
say "setup: packages and build (scripts/deps.sh, make; output in $OUT/setup.log)"
t0=$(date +%s)
if ! { scripts/deps.sh --no-npm && ${MAKE:-make} BUILD="$BUILD" all; } >"$OUT/setup.log" 2>&1; then
	tail -n 15 "$OUT/setup.log" | sed 's/^/  | /'
	die "setup failed: the end of $OUT/setup.log is above"
fi
echo "  done in $(( $(date +%s) - t0 )) s"
for p in "$BUILD/tailgate" "$BUILD/tailgate-bench"; do
	[ -x "$p" ] || die "$p is missing: run 'make' first (make demo does)"
done
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] ||
	die "Fashion-MNIST is missing: run 'make deps' (Debian package dataset-fashion-mnist)"
ip netns list 2>/dev/null | grep -q "^$NAME-gw" && echo "demo: removing a stale $NAME setup"

rm -f "$OUT"/gw.* "$OUT/ready" "$OUT"/access.log "$OUT"/event.log "$OUT"/variant*
rm -rf "$OUT/plots"
rm -rf "$OUT/repo" && mkdir -p "$OUT/repo/fmnist-resnet"
for f in model.onnx model.conf model.calib; do
	ln -s "$PWD/models/fmnist-resnet/$f" "$OUT/repo/fmnist-resnet/$f"
done
# The file variants model.conf's variant lines name (without them the gateway refuses to start).
[ -d models/fmnist-resnet/variants ] &&
	ln -s "$PWD/models/fmnist-resnet/variants" "$OUT/repo/fmnist-resnet/variants"
cat >"$OUT/tailgate.conf" <<CONF
# Written by scripts/demo.sh: the shipped model behind one veth pair.
address = $TG_IP_GW
models = $OUT/repo
CONF

say "network: namespaces $TG_NS_GW (gateway, $TG_IP_GW) and $TG_NS_CL (devices, $TG_IP_CL)"
tg_netns_up "$NAME" "$NET" || die "could not create the namespaces"
ns_made=1

# start_gateway LABEL VDEV: 0 once it serves (the --ready file exists), 1 if it gave up.
start_gateway() {
	local label=$1 vdev=$2
	rm -f "$OUT/ready"
	ip netns exec "$TG_NS_GW" "$BUILD/tailgate" --config "$OUT/tailgate.conf" \
		--metrics 127.0.0.1:0 --access-log "$OUT/access.log" --event-log "$OUT/event.log" \
		--ready "$OUT/ready" -- \
		--no-huge --no-shconf -m 1024 --no-pci --no-telemetry -l 0-1 \
		--file-prefix "${PREFIX}_$label" --vdev "$vdev" --log-level='lib.*:warning' \
		>"$OUT/gw.out" 2>"$OUT/gw.err" &
	gw_pid=$!
	for _ in $(seq 300); do	# at most 60 s: plans are built and timed at start
		[ -f "$OUT/ready" ] && return 0
		kill -0 "$gw_pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$gw_pid" 2>/dev/null
	wait "$gw_pid" 2>/dev/null
	gw_pid=
	return 1
}

XDP="net_af_xdp0,iface=$TG_IF_GW,start_queue=0,queue_count=1"
PKT="net_af_packet0,iface=$TG_IF_GW,blocksz=4096,framesz=2048,framecnt=4096,qpairs=1"
pmd=
if [ "$PMD" != af_packet ] && start_gateway af_xdp "$XDP"; then
	pmd=af_xdp
elif [ "$PMD" != af_xdp ]; then
	[ "$PMD" = auto ] && echo "demo: AF_XDP unavailable on this kernel/veth, using af_packet:" &&
		grep '^tailgate' "$OUT/gw.err" | tail -n 3 | sed 's/^/  | /'
	start_gateway af_packet "$PKT" && pmd=af_packet
fi
if [ -z "$pmd" ]; then
	sed 's/^/  | /' "$OUT/gw.err" | tail -n 15
	die "the gateway did not start (its log is above)"
fi
say "gateway: build/tailgate on net_$pmd, serving models/fmnist-resnet (start-up output: $OUT/gw.err)"
port=$(sed -n 's/^tailgate: control plane on port \([0-9]*\)$/\1/p' "$OUT/gw.err")
# The base model and its variants (model.conf's variant lines), each with its early exits.
awk 'function out() { if (m != "") print m (e == "" ? ": no early exit" : ": exits" e) }
     /^model / { out(); v = match($0, / variant [0-9]+/) ? substr($0, RSTART + 1, RLENGTH - 1) : "variant 0"
		 m = "  serving " substr($2, 1, length($2) - 1) " (" v ")"; e = "" }
     /^  exit [0-9]+ [^ ]+: answers at confidence >= / { e = e " " substr($3, 1, length($3) - 1) " >= " $NF }
     END { out() }' "$OUT/gw.err"

say "bench: $DEVICES devices, Poisson arrivals at $RATE requests/s for $SECONDS_RUN s, $IMAGES images, mix $MIX"
# The offline answers the bench checks against are in the precision the gateway serves.
calib=()
grep -q '^dtype *= *int8' models/fmnist-resnet/model.conf &&
	calib=(--calib models/fmnist-resnet/model.calib)
ip netns exec "$TG_NS_CL" "$BUILD/tailgate-bench" --gateway "$TG_IP_GW:7700" \
	--bind "$TG_IP_CL" --model models/fmnist-resnet --model-id 1 --devices "$DEVICES" \
	--images "$IMAGES" "${calib[@]}" \
	--rate "$RATE" --duration "$SECONDS_RUN" --warmup 1 --mix "$MIX" --exits \
	--json "$OUT/bench.json" --hgrm "$OUT/latency.hgrm" --plot "$OUT/plots" \
	>"$OUT/report.txt" 2>"$OUT/bench.err"
bench_rc=$?
say "report: tailgate-bench ($OUT/report.txt)"
sed 's/^/  /' "$OUT/report.txt"
grep -v '^progress' "$OUT/bench.err" | sed 's/^/  | /' | tail -n 5

if [ -n "$port" ]; then
	ip netns exec "$TG_NS_GW" timeout 5 bash -c \
		'exec 3<>/dev/tcp/127.0.0.1/$1 && printf "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n" >&3 &&
		 cat <&3' _ "$port" >"$OUT/metrics.txt" 2>/dev/null
	say "how to read it"
	/usr/bin/python3 scripts/demo_explain.py "$OUT/bench.json" "$OUT/report.txt" "$OUT/metrics.txt" \
		models/fmnist-resnet/CARD.md "$IMAGES" "$MIX" | fold -s -w 100 | sed 's/^/  /'
	say "the gateway's view (/metrics)"
	awk '/^tailgate_requests_total\{/ && $2 > 0 { print "  " $0 }
	     /^tailgate_refusals_total\{/ && $2 > 0 { print "  " $0 }
	     /^tailgate_exit_answers_total\{/ && $2 > 0 { print "  " $0 }
	     /^tailgate_batch_size_(sum|count)\{/ { k = $1; sub(/\{.*/, "", k); s[k] += $2 }
	     /^tailgate_dp_drops_total\{/ && $2 > 0 { print "  " $0 }
	     END { if (s["tailgate_batch_size_count"] > 0)
		printf "  mean batch size %.1f over %d batches\n",
		s["tailgate_batch_size_sum"] / s["tailgate_batch_size_count"],
		s["tailgate_batch_size_count"] }' "$OUT/metrics.txt"
fi

# Each variant of model.conf, loaded alone: requests naming its id (tailgate-bench --variant),
# answers checked against that variant's own file offline, in the precision served.
vjson=()
vrc=0
[ "$VSECONDS" != 0 ] && while read -r _ _ vid vname vopts; do
	vmodel=models/fmnist-resnet
	vcalib=models/fmnist-resnet/variants/$vname/model.calib
	vdrop=$(tr ' ' '\n' <<<"$vopts" | sed -n 's/^drop=//p')
	if [ -n "$vdrop" ]; then	# no file of its own: the one 'tailgate-model drop' writes
		vmodel=$OUT/variant$vid.onnx vcalib=$OUT/variant$vid.calib
		"$BUILD/tailgate-model" drop models/fmnist-resnet/model.onnx --blocks "$vdrop" \
			--output "$vmodel" >/dev/null 2>"$OUT/variant$vid.err" ||
			{ vrc=1; sed 's/^/  | /' "$OUT/variant$vid.err"; continue; }
	fi
	vsplits=$(tr ' ' '\n' <<<"$vopts" | sed -n 's/^splits=//p')
	vsplit=${vsplits##*,}
	vcal=()
	[ ${#calib[@]} -gt 0 ] && vcal=(--calib "$vcalib")
	[ ${#vjson[@]} -eq 0 ] && say "variants: each for $VSECONDS s at $VRATE requests/s, $VIMAGES images, split 0 and the variant's last"
	echo "  variant $vid $vname ($([ -n "$vdrop" ] && echo "drop $vdrop" || echo "variants/$vname/model.onnx"))"
	ip netns exec "$TG_NS_CL" "$BUILD/tailgate-bench" --gateway "$TG_IP_GW:7700" \
		--bind "$TG_IP_CL" --model "$vmodel" --variant "$vid" --model-id 1 --devices 100 \
		--images "$VIMAGES" "${vcal[@]}" --rate "$VRATE" --duration "$VSECONDS" --warmup 1 \
		--mix "split=0${vsplit:+,$vsplit};dtype=u8,f32;uplink=20000-100000kbps;deadline=100ms" \
		--exits --quiet --json "$OUT/variant$vid.json" >"$OUT/variant$vid.txt" 2>>"$OUT/variant$vid.err" ||
		{ vrc=1; tail -n 3 "$OUT/variant$vid.err" | sed 's/^/  | /'; }
	vjson+=("$OUT/variant$vid.json")
done < <(grep '^variant *= ' models/fmnist-resnet/model.conf)
if [ ${#vjson[@]} -gt 0 ]; then
	say "variants: the base (the run above) and each variant (tables in $OUT/variant*.txt)"
	/usr/bin/python3 scripts/demo_variants.py models/fmnist-resnet/model.conf "$OUT/bench.json" \
		"${vjson[@]}" | fold -s -w 100 | sed 's/^/  /'
	if [ -n "$port" ]; then	# the gateway's counters per variant (label model/variant)
		ip netns exec "$TG_NS_GW" timeout 5 bash -c \
			'exec 3<>/dev/tcp/127.0.0.1/$1 && printf "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n" >&3 &&
			 cat <&3' _ "$port" >"$OUT/metrics_variants.txt" 2>/dev/null
		awk '/^tailgate_(requests|exit_answers)_total\{model="[^"]*\// && $2 > 0 { print "  " $0 }' \
			"$OUT/metrics_variants.txt"
	fi
fi

kill -TERM "$gw_pid" 2>/dev/null
for _ in $(seq 150); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.2; done
wait "$gw_pid" 2>/dev/null
gw_rc=$?
gw_pid=
say "done: bench status $bench_rc, variants' $vrc, gateway exit status $gw_rc (SIGTERM drains and exits 0)"
pngs=$(ls "$OUT"/plots/*.png 2>/dev/null | tr '\n' ' ')
echo "  plots: ${pngs:-none written (gnuplot missing? apt-get install gnuplot-nox; see $OUT/bench.err)}"
echo "  bench JSON $OUT/bench.json, latency percentiles $OUT/latency.hgrm," \
	"access log $OUT/access.log, event log $OUT/event.log, setup $OUT/setup.log"
[ "$bench_rc" -eq 0 ] && [ "$vrc" -eq 0 ] && [ "$gw_rc" -eq 0 ]
