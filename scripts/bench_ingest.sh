#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ingest benchmark (make bench): the DPDK dataplane (tests/dp_echo, the dataplane with only
# the echo model) on net_af_xdp and on net_af_packet, side by side with a plain kernel UDP
# receiver (build/bench/kudp-recv: recvmmsg, the same decode, reassembly, LZ4 and echo),
# all on the same veth pair, driven by the same sender (tests/dp_sender, no impairment, each
# window slot's message built once and resent under new ids, its chunks sent as frames
# through a packet socket: the cheapest kernel TX path, so the sender outruns the receivers)
# at the same fixed datagram rate (--rate, open loop) and closed loop (as fast as the
# window of open requests lets it: the receiver's saturation), for 1-chunk and 64-chunk
# messages.
#
# Per run: messages/s and chunks/s the receiver completed, Gbit/s of UDP payload, and the
# receiving side's CPU cost per million chunks:
#   DPDK:   TSC cycles of RX-lcore passes whose burst returned frames (dp_stats.busy_cycles;
#           idle polling is not work) / tsc_hz, plus softirq time;
#   kernel: kudp-recv's process time (getrusage, from its first datagram), plus softirq time.
# Softirq time is /proc/stat's softirq column over both CPUs during the sender's run. On a
# veth the receive softirq runs on the *sending* CPU (veth_xmit schedules the peer's NAPI or
# backlog locally), so all of it is charged to the receiver; it also holds the delivery of
# the echo answers to the sender's socket (one per message, the same for all receivers).
# The sender is pinned to CPU 0, the receiver (RX lcore, kudp-recv) to CPU 1.
# Which side limited, at a fixed rate: the receiver when it dropped chunks (veth rx_dropped,
# PMD imissed, UDP RcvbufErrors) or answered so late that the sender's window of open
# requests filled (slots of the fixed rate went unused: behind_s over 5% of the run); the
# sender when it did not reach the rate on its own (its CPU); else nobody: the fixed rate was
# served. Closed loop: the receiver when it dropped or its own CPU was over 85% busy, else
# CPU 0 when it was over 90% busy (the sender and the receive softirq share it), else the
# window (latency).
#
# Each (receiver, size) runs REPS times, interleaved; the table shows medians. Writes the
# section "Ingest: DPDK dataplane vs kernel recvmmsg" of docs/BENCHMARKS.md (replacing an
# older one, leaving the rest of the file alone).
# Usage: scripts/bench_ingest.sh [BUILD]   env: TG_INGEST_SECONDS (5), TG_INGEST_REPS (3),
#        TG_INGEST_DOC (docs/BENCHMARKS.md; "-" writes none),
#        TG_INGEST_POINTS ("1:200000 64:200000 1:0 64:0"): CHUNKS:RATE, messages of CHUNKS
#          chunks at RATE datagrams/s, 0 = closed loop,
#        TG_INGEST_RX ("af_xdp af_packet kernel"): the receivers,
#        TG_INGEST_TX (packet; udp: the sender's UDP sockets, sendmmsg),
#        TG_INGEST_PREBUILT (1; 0: every message generated and chunked anew),
#        TG_INGEST_KEEP (a file: each run's figures are appended to it and the table is made
#          from all of them, so a measurement can be split over several calls),
#        TG_INGEST_PERF (a directory: `perf record -a -g` of both CPUs for the middle of each
#          run, into DIR/RX-CHUNKS-RATE-REP.data, for the analysis in BENCHMARKS; sampling
#          costs CPU, so such runs are not the table's: use it with TG_INGEST_DOC=-)
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
. scripts/netns.sh

SECS=${TG_INGEST_SECONDS:-5}
REPS=${TG_INGEST_REPS:-3}
DOC=${TG_INGEST_DOC:-docs/BENCHMARKS.md}
POINTS=${TG_INGEST_POINTS:-1:200000 64:200000 1:0 64:0}
RXS=${TG_INGEST_RX:-af_xdp af_packet kernel}
TX=${TG_INGEST_TX:-packet}
PREBUILT=${TG_INGEST_PREBUILT:-1}	# the sender reuses each slot's message (dp_sender --prebuilt)
KEEP=${TG_INGEST_KEEP:-}
PERF=${TG_INGEST_PERF:-}
if [ -n "$PERF" ]; then
	mkdir -p "$PERF" && command -v perf >/dev/null || { echo "TG_INGEST_PERF: needs perf"; exit 2; }
fi
NAME=tgbi$$
SUBNET=80			# 10.81.80.0/24, inside this script's namespaces only
export TG_NETNS_NET=10.81
GW=$TG_NETNS_NET.$SUBNET.1
PREFIX=tg_bingest_$$
TMP=$(mktemp -d /tmp/tg_bingest.XXXXXX)
rx_pid=

cleanup() {
	[ -n "$rx_pid" ] && kill -TERM "$rx_pid" 2>/dev/null && wait "$rx_pid" 2>/dev/null
	tg_netns_down "$NAME"
	rm -rf "/var/run/dpdk/${PREFIX}"_* "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== ingest: DPDK dataplane (af_xdp, af_packet) vs kernel recvmmsg, ${SECS} s x $REPS =="
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v ethtool >/dev/null ||
   ! command -v taskset >/dev/null || [ "$(nproc)" -lt 2 ]; then
	echo "skip: needs root, ip, ethtool, taskset and 2 CPUs"
	exit 0
fi
for p in tests/dp_echo tests/dp_sender bench/kudp-recv; do
	[ -x "$BUILD/$p" ] || { echo "missing $BUILD/$p (make first)"; exit 1; }
done
for pt in $POINTS; do
	[[ "$pt" =~ ^(1|64):[0-9]+$ ]] || { echo "bad point '$pt' (CHUNKS:RATE, CHUNKS 1 or 64)"; exit 2; }
done
case $TX in
packet) txopt=(--raw-if "$NAME-c") ;;
udp) txopt=() ;;
*) echo "bad TG_INGEST_TX '$TX' (packet or udp)"; exit 2 ;;
esac

# A figure from a "name value" file; "?" when missing (never a made-up 0 in a report).
val() { awk -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print "?" }' "$2"; }
# "user nice system idle iowait irq softirq steal" of cpuN, in USER_HZ ticks.
cpustat() { awk -v c="cpu$1" '$1 == c { print $2, $3, $4, $5, $6, $7, $8, $9 }' /proc/stat; }
rcvbuf_errs() {
	ip netns exec "$NAME-gw" awk '$1 == "Udp:" { if (h) { print $f; exit } for (i = 1; \
		i <= NF; i++) if ($i == "RcvbufErrors") f = i; h = 1 }' /proc/net/snmp
}
rx_dropped() { ip netns exec "$NAME-gw" cat "/sys/class/net/$NAME-g/statistics/rx_dropped"; }
# Run-queue wait (ns) of the receiver's busiest thread (the RX lcore, or kudp-recv): time it
# was runnable but another task had its CPU. TSC busy cycles count such preemption inside a
# busy pass as work (getrusage does not): the script reports it so the reader can bound it.
rq_wait() {
	local best=0 wait=0 t cpu w
	for t in /proc/"$rx_pid"/task/*/schedstat; do
		read -r cpu w _ <"$t" 2>/dev/null || continue
		[ "$cpu" -gt "$best" ] && best=$cpu && wait=$w
	done
	echo "$wait"
}

XDP="net_af_xdp0,iface=$NAME-g,start_queue=0,queue_count=1"
PACKET="net_af_packet0,iface=$NAME-g,blocksz=4096,framesz=2048,framecnt=8192,qpairs=1"
RESULTS=$TMP/results
: >"$RESULTS"

# Start one receiver in a fresh namespace pair. @return 0 when it is ready.
start_rx() {	# receiver, out dir
	local rx=$1 out=$2 vdev
	tg_netns_up "$NAME" "$SUBNET" || return 1
	case $rx in
	kernel)
		ip -n "$NAME-gw" addr add "$GW/24" dev "$NAME-g" || return 1
		ip netns exec "$NAME-gw" taskset -c 1 "$BUILD/bench/kudp-recv" --ip "$GW" \
			--time-limit $((SECS + 60)) --max-msg 280000 --ready "$out/ready" \
			>"$out/rx.out" 2>"$out/rx.err" &
		;;
	*)
		[ "$rx" = af_xdp ] && vdev=$XDP || vdev=$PACKET
		# -l 0-1: the main thread (echo consumer, idle) on CPU 0, the RX lcore on CPU 1.
		tg_dp_echo "$NAME" "${PREFIX}_$rx" "$vdev" "$out/rx" 0 "$BUILD/tests/dp_echo" \
			--ip "$GW" --max-msg 280000 --inflight-client 32 --inflight-total 512 \
			--gap-us 20000 --timeout-us 2000000 --rx-desc 4096 --ready "$out/ready"
		;;
	esac
	rx_pid=$!
	tg_wait_ready "$out/ready" "$rx_pid" 100 && return 0	# at most 20 s
	sed 's/^/    | /' "$out/rx.err" | tail -n 5
	return 1
}

stop_rx() {
	[ -n "$rx_pid" ] && kill -TERM "$rx_pid" 2>/dev/null && wait "$rx_pid" 2>/dev/null
	rx_pid=
	tg_netns_down "$NAME"
}

run() {	# receiver, chunks per message, datagrams/s (0: closed loop), rep
	local rx=$1 c=$2 rate=$3 rep=$4 out=$TMP/$1-$2-$3-$4 a0 a1 b0 b1 d0 d1 e0 e1 w0 w1 l0 l1
	mkdir -p "$out"
	if ! start_rx "$rx" "$out"; then
		echo "  $rx, $c chunk(s) at $rate/s, run $rep: receiver did not start (skipped)"
		stop_rx
		return
	fi
	d0=$(rx_dropped); e0=$(rcvbuf_errs)
	a0=$(cpustat 0); b0=$(cpustat 1); w0=$(rq_wait); l0=$(cut -d ' ' -f 1 /proc/loadavg)
	# 8 clients with up to 32 (1 chunk) or 4 (64 chunks) requests open each: the window only
	# bounds what is open, the fixed rate decides what is sent. Small enough that what waits
	# in the sender's queues leaves within ~150 ms at the rate (a 64-chunk window of 32 would
	# queue a second's worth, and the request timer would resend what is merely queued).
	local perf_pid=
	if [ -n "$PERF" ] && [ "$SECS" -ge 3 ]; then	# the middle of the run: SECS - 2 s
		(sleep 1; exec perf record -q -a -g -o "$PERF/$rx-$c-$rate-$rep.data" -- \
			sleep $((SECS - 2))) >/dev/null 2>&1 &
		perf_pid=$!
	fi
	ip netns exec "$NAME-cl" taskset -c 0 timeout $((SECS + 30)) "$BUILD/tests/dp_sender" \
		--gw "$GW" --requests 20000000 --min-chunks "$c" --max-chunks "$c" \
		--clients 8 --window $(( c == 1 ? 32 : 4 )) --seed $((rep * 100 + c)) \
		--time-limit "$SECS" --rate "$rate" --req-timeout-ms 1000 --prebuilt "$PREBUILT" \
		"${txopt[@]}" >"$out/tx.out" 2>"$out/tx.err"
	a1=$(cpustat 0); b1=$(cpustat 1); w1=$(rq_wait); l1=$(cut -d ' ' -f 1 /proc/loadavg)
	[ -n "$perf_pid" ] && wait "$perf_pid"
	d1=$(rx_dropped); e1=$(rcvbuf_errs)
	stop_rx
	local R=$out/rx.out S=$out/tx.out
	# One line per run: receiver size rep, then name=value fields for the report.
	echo "$rx $c $rate $rep utc=$(date -u +%Y-%m-%dT%H:%M)" \
		"elapsed_s=$(val elapsed_s "$S") tx_dgrams=$(val tx_dgrams "$S")" \
		"rate_pps=$(val rate_pps "$S") achieved_pps=$(val achieved_pps "$S")" \
		"behind_s=$(val behind_s "$S")" \
		"tx_completed=$(val completed "$S") resent_whole=$(val resent_whole "$S")" \
		"cpu0_0='$a0' cpu0_1='$a1' cpu1_0='$b0' cpu1_1='$b1'" \
		"veth_dropped=$((d1 - d0)) rcvbuf_errors=$((e1 - e0))" \
		"rq_wait_ns=$((w1 - w0)) load=$(echo "$l0 $l1" | awk '{ print ($1 + $2) / 2 }')" \
		"$(if [ "$rx" = kernel ]; then
			echo "chunks=$(val chunks_placed "$R") msgs=$(val msgs_completed "$R")" \
			     "bytes=$(val payload_bytes "$R") rx_cpu_s=$(val cpu_s "$R")" \
			     "port_missed=0"
		else
			echo "chunks=$(val chunks_placed "$R") msgs=$(val msgs_completed "$R")" \
			     "rx_pkts=$(val rx_pkts "$R") rx_bytes=$(val rx_bytes "$R")" \
			     "udp_rx=$(val udp_rx "$R") busy_cycles=$(val busy_cycles "$R")" \
			     "tsc_hz=$(val tsc_hz "$R") port_missed=$(val port_missed "$R")"
		fi)" >>"$RESULTS"
	echo "  $(tail -n 1 "$RESULTS")" | cut -c 1-200
	[ -n "$KEEP" ] && tail -n 1 "$RESULTS" >>"$KEEP"
	return 0
}

t_start=$(date +%s)
for rep in $(seq "$REPS"); do
	for pt in $POINTS; do
		for rx in $RXS; do
			run "$rx" "${pt%%:*}" "${pt#*:}" "$rep"
		done
	done
done
echo "  (runs took $(( $(date +%s) - t_start )) s)"
[ -n "$KEEP" ] && RESULTS=$KEEP	# the table from every call's runs

MODEL=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
python3 - "$RESULTS" "$DOC" "$SECS" "$REPS" "$MODEL" "$(nproc)" "$(uname -r)" "$TX" \
	"$PREBUILT" <<'EOF'
import datetime, re, shlex, statistics, sys, textwrap

res, doc, secs, reps, model, ncpu, kernel, tx, prebuilt = sys.argv[1:10]
HZ = 100.0	# USER_HZ of /proc/stat
rows = {}
for line in open(res):
    f = shlex.split(line)
    rx, c, rate = f[0], int(f[1]), float(f[2])
    kv = dict(x.split("=", 1) for x in f[4:])
    num = lambda k, d=0.0: float(kv[k]) if kv.get(k, "?") != "?" else d
    t = lambda k: [float(v) for v in kv[k].split()]
    c00, c01, c10, c11 = t("cpu0_0"), t("cpu0_1"), t("cpu1_0"), t("cpu1_1")
    d0 = [b - a for a, b in zip(c00, c01)]
    d1 = [b - a for a, b in zip(c10, c11)]
    el = num("elapsed_s")
    chunks, msgs = num("chunks"), num("msgs")
    if chunks <= 0 or el <= 0:
        continue
    soft = (d0[6] + d1[6]) / HZ
    if rx == "kernel":
        own = num("rx_cpu_s")
        payload = num("bytes")
        drops = num("veth_dropped") + num("rcvbuf_errors")
    else:
        own = num("busy_cycles") / num("tsc_hz")
        # UDP payload: frame bytes less Ethernet, IPv4 and UDP headers of each datagram
        payload = num("rx_bytes") - 42 * num("udp_rx")
        drops = num("veth_dropped") + (num("port_missed") if rx == "af_packet" else 0)
    busy0 = sum(d0[i] for i in (0, 1, 2, 5, 6)) / max(1.0, sum(d0[:8]))
    rows.setdefault((rx, c, rate), []).append(dict(
        msgs_s=msgs / el, chunks_s=chunks / el, gbit=payload * 8 / el / 1e9,
        cpm=(own + soft) / chunks * 1e6, own=own / chunks * 1e6, soft=soft / chunks * 1e6,
        cpc=msgs and chunks / msgs, drops=drops / (chunks + drops) * 100,
        load=(own + soft) / el, ownload=own / el, cpu0=busy0 * 100,
        soft0=d0[6] / HZ, soft1=d1[6] / HZ,
        wait=num("rq_wait_ns") * 1e-9 / chunks * 1e6,
        loadavg=num("load"), achieved=num("tx_dgrams") / el, utc=kv.get("utc", ""),
        behind=num("behind_s") / el * 100,
        waitfrac=num("rq_wait_ns") * 1e-9 / el * 100))

if not rows:
    sys.exit("no run gave figures (see the lines above)")

def med(v, k):
    return statistics.median(x[k] for x in v)

hdr = ("| receiver | chunks/msg | rate asked, datagrams/s | sent, datagrams/s | messages/s | "
       "chunks/s | Gbit/s | CPU s per 1M chunks (own + softirq) | "
       "receiver preempted, s per 1M chunks | receiver CPU load | sender CPU 0 busy | "
       "dropped | limited by |")
out = [hdr, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
names = {"af_xdp": "dp_echo, net_af_xdp", "af_packet": "dp_echo, net_af_packet",
         "kernel": "kudp-recv, recvmmsg"}

def limit(v, rate):
    dr, wf, bh = med(v, "drops"), med(v, "waitfrac"), med(v, "behind")
    ach, own, cpu0 = med(v, "achieved"), med(v, "ownload"), med(v, "cpu0")
    late = ", its thread waited for CPU %.0f%%" % wf if wf > 10 else ""
    if dr > 0.1:
        return "receiver (dropped %.2f%%)" % dr
    if rate > 0:
        if bh > 5:
            return ("receiver (answers late: the sender's window was full %.0f%% of the run%s)"
                    % (bh, late))
        if ach < 0.97 * rate:
            return "sender (its CPU: %.0f%% of the rate)" % (100 * ach / rate)
        return "none: the fixed rate was served" + (
            " (receiver waited for CPU %.0f%% of the run)" % wf if wf > 10 else "")
    if own > 0.85:
        return "receiver (its own CPU %.0f%% busy%s)" % (100 * own, late)
    if cpu0 > 90:
        return ("CPU 0 (%.0f%% busy: the sender and the receive softirq; receiver's own CPU "
                "%.0f%% busy)" % (cpu0, 100 * own))
    return "the sender's window (latency; receiver's own CPU %.0f%% busy)" % (100 * own)

points = sorted({(c, rate) for (_, c, rate) in rows}, key=lambda p: (p[1] == 0, p[0], p[1]))
ratios = []
for c, rate in points:
    cpm = {}
    for rx in ("af_xdp", "af_packet", "kernel"):
        v = rows.get((rx, c, rate))
        if not v:
            continue
        # the CPU split of the run whose total is the median (the others: each its median)
        mid = sorted(v, key=lambda x: x["cpm"])[(len(v) - 1) // 2]
        cpm[rx] = mid["cpm"]
        out.append("| %s | %.1f | %s | %.0f | %.0f | %.0f | %.3f | %.3f (%.3f + %.3f) | %.3f | "
                   "%.0f%% | %.0f%% | %.2f%% | %s |" % (
                   names[rx], med(v, "cpc"), "%.0f" % rate if rate else "closed loop",
                   med(v, "achieved"), med(v, "msgs_s"), med(v, "chunks_s"), med(v, "gbit"),
                   mid["cpm"], mid["own"], mid["soft"], med(v, "wait"), 100 * med(v, "load"),
                   med(v, "cpu0"), med(v, "drops"), limit(v, rate)))
    if "kernel" in cpm:
        ratios.append("%d chunk(s), %s: %s" % (c, "%.0f/s" % rate if rate else "closed loop",
            ", ".join("%s %.2fx" % (names[rx].split(", ")[1], cpm[rx] / cpm["kernel"])
                      for rx in ("af_xdp", "af_packet") if rx in cpm)))
table = "\n".join(out)
print(table)
ratio_line = ("CPU per chunk of the dataplane over recvmmsg's, same point: " +
              "; ".join(ratios) + ".") if ratios else ""
print(ratio_line)
print("softirq s per run (cpu0 / cpu1), medians: " + ", ".join(
    "%s/%d/%.0f %.2f/%.2f" % (rx, c, rate, med(v, "soft0"), med(v, "soft1"))
    for (rx, c, rate), v in sorted(rows.items())))
loads = [x["loadavg"] for v in rows.values() for x in v]
loadline = "load average (1 min) during the runs: %.1f to %.1f" % (min(loads), max(loads))
print(loadline)
if max(loads) > float(ncpu):
    shared = ("This machine was shared while these numbers were taken (%s, on %s cores), so "
              "read the own-CPU figures of the dataplane rows as upper bounds." % (loadline, ncpu))
else:
    shared = loadline[0].upper() + loadline[1:] + "."
if doc == "-":
    sys.exit(0)
# The runs' own times (a table made from kept runs is dated by them, not by its writing).
utcs = sorted(x["utc"] for v in rows.values() for x in v if x["utc"])
date = (utcs[0].replace("T", " ") + ("" if utcs[0] == utcs[-1] else
        " to " + utcs[-1].split("T")[1]) + " UTC") if utcs else \
    datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
reps = str(max(len(v) for v in rows.values()))
txs = ("its chunks go out as whole frames through an `AF_PACKET` socket with the qdisc "
       "bypassed (`--raw-if`: Ethernet, IPv4 and UDP headers built by the sender; the "
       "answers still arrive on its UDP sockets)" if tx == "packet" else
       "its chunks go out through its connected UDP sockets with `sendmmsg`")
pre = ("each window slot's message is built once and resent under new request ids "
       "(`--prebuilt 1`)" if prebuilt == "1" else "every message is generated and chunked anew")
sec = f"""<!-- ingest:begin -->
## Ingest: DPDK dataplane vs kernel recvmmsg

Command: `make bench` (this section: `scripts/bench_ingest.sh build`). Machine: {model}, {ncpu}
cores, kernel {kernel}; {date}. Each row is the median of {reps} runs of {secs} s, the three
receivers interleaved (the CPU cost and its split are those of the median run).

Setup: one veth pair between two network namespaces (10.81.80.0/24), MTU 1500, TX checksum
offload off on the sender's end. Receivers on the gateway end: `tests/dp_echo` (the dataplane
with only the echo model) on `net_af_xdp` and on `net_af_packet`, and `build/bench/kudp-recv`
(a plain UDP socket read with `recvmmsg`, 32 at a time, doing the same work per chunk:
`proto_decode`, a per-message slot with bitmap and duplicate check, `proto_chunk_unpack`
(LZ4 straight into place), and on completion the CRC32C echo answer). The sender is
`tests/dp_sender`, pinned to CPU 0, the same options for every receiver: {pre}, and {txs}.
8 clients with up to 32 requests open each (4 for 64-chunk messages); either an open loop at a
fixed datagram rate (`--rate`; datagram k leaves at t0 + k / rate, waited for with
`clock_nanosleep(TIMER_ABSTIME)` and a 20 us spin) or a closed loop (as fast as the window of
open requests lets it: the receiver's saturation, unless CPU 0 saturates first), no
impairment, messages of exactly 1 or 64 chunks of raw, f32 or LZ4-compressible tensors (a
quarter are LZ4 ones, which pack into fewer chunks: hence 64-chunk rows average fewer than 64
chunks per message). The receiver runs on CPU 1.

CPU cost per million chunks = (receiver's own CPU + softirq) / chunks placed x 1e6.
Own CPU: for dp_echo the TSC cycles of RX-lcore loop passes whose burst returned frames
(`busy_cycles`, new in dp_stats; idle polling is not counted, as VPP reports clocks per
packet), for kudp-recv its process user + system time from its first datagram. Softirq:
`/proc/stat`'s softirq time of both CPUs during the run. Approximation: all of it is charged
to the receiver. On a veth the receive softirq runs on the sending CPU (CPU 0, not the
receiver's), so counting only the receiver's CPU would miss it; it also includes delivering
the echo answers into the sender's socket (one per message, the same for every receiver).
/proc/stat counts in 10 ms ticks. Gbit/s: UDP payload bytes the receiver got (the chunks as
sent, LZ4 ones compressed) over the sender's run time; messages/s likewise.

{table}

{ratio_line}

"Limited by", at a fixed rate: the receiver when it dropped chunks, or when it answered so late
that the sender's window of open requests filled and slots of the fixed rate went unused (over
5% of the run); the sender when it did not reach the rate on its own; else nobody, and then
rates tie and only the CPU cost tells the receivers apart (the point of a fixed rate: every
receiver does the same work per second). Closed loop: the receiver when it dropped or its own
CPU was over 85% busy; else CPU 0 when it was over 90% busy (the sender and, on a veth, the
receive softirq share it); else the sender's window (the round trip).
Drops are veth rx_dropped, PMD imissed, UDP RcvbufErrors.
"Receiver CPU load" is its own CPU + softirq over the run's wall time.
"Receiver preempted": run-queue wait of the receiver's busiest thread (RX lcore or
kudp-recv, /proc/PID/task/TID/schedstat) during the run. The dataplane's busy cycles are TSC
(wall) time, so a preemption inside a busy pass counts as work; getrusage does not count it.
The dataplane's own CPU may be overstated by up to that much (part of that wait falls in idle
polling, which is not counted anyway); kudp-recv's is not. {shared} "Sender CPU 0 busy"
includes the receive softirq that runs there.
"""
def wrap(sec):
    # prose paragraphs re-flowed to 96 columns; headings, markers and tables as they are
    paras = []
    for p in sec.strip("\n").split("\n\n"):
        if p.startswith("|") or p.startswith("#") or p.startswith("<!--"):
            paras.append(p)
        else:
            paras.append(textwrap.fill(" ".join(p.split()), width=96, break_long_words=False,
                                       break_on_hyphens=False))
    return "\n\n".join(paras) + "\n"
sec = wrap(sec)
# Text of the section the script does not write (analysis, kept across reruns): between
# <!-- ingest:notes --> and <!-- ingest:end -->.
try:
    text = open(doc).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
m = re.search(r"^<!-- ingest:begin -->\n.*?^<!-- ingest:end -->\n", text, re.M | re.S)
if m is None:	# the older layout: from the heading to the next heading or marker
    m = re.search(r"^## Ingest: DPDK dataplane vs kernel recvmmsg\n.*?(?=^## |^<!-- |\Z)",
                  text, re.M | re.S)
notes = ""
if m:
    n = re.search(r"^<!-- ingest:notes -->\n.*?(?=^<!-- ingest:end -->)", m.group(0), re.M | re.S)
    notes = "\n" + n.group(0) if n else ""
    sec = sec + notes + "<!-- ingest:end -->\n"
    marked = m.group(0).endswith("<!-- ingest:end -->\n")	# else the older layout's section
    text = (text[:m.start()] + sec + ("\n" if not marked and m.end() < len(text) else "") +
            text[m.end():])
else:
    text = text.rstrip("\n") + "\n\n" + sec + "<!-- ingest:end -->\n"
open(doc, "w").write(text)
print("wrote the ingest section of " + doc)
EOF
