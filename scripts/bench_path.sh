#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The request path, measured for one or more tailgate binaries side by side (issue 12 part 1):
# the shipped model behind each binary in turn (1 worker, 2 engine threads, af_packet on a
# veth), tests/gw_client in the other namespace (split 0 as u8: one datagram per request, the
# whole model's compute; four sockets).
#   1. capacity: a closed loop of 128 for SECS s (deadlines 1 s): OK answers per second;
#      the engine alone right after (tailgate-model bench, split 0, batch 64, 2 threads):
#      end-to-end over engine-only;
#   2. CPU per request by thread during that closed loop, from /proc/PID/task/*/stat: the
#      RX lcore (lcore-worker-*), the main thread (the feeder before the change, idle
#      after), everything else (scheduler workers with oneDNN on them, log, HTTP); and, from
#      /metrics where the binary exports it (tailgate_thread_cpu_seconds_total,
#      tailgate_engine_*), the worker thread's CPU outside oneDNN and inside it, oneDNN's
#      other threads with the log and HTTP threads, and the engine's wall time;
#   3. the reload stall: an open loop at a third of the capacity for 12 s, deadlines 100 ms, once
#      without and once with a SIGHUP at 3 s: the client's p99 latency and goodput, and the
#      longest time without an answer (access log).
# Prints one block per binary. Usage: scripts/bench_path.sh BUILD TAILGATE... (each a path to
# a tailgate binary; BUILD gives gw_client and tailgate-model). env SECS (5); TG_PATH_DOC: a
# file (docs/BENCHMARKS.md under make bench) whose section between <!-- path:begin --> and
# <!-- path:end --> is replaced by this run's table (appended when absent); unset: none.
# TG_PATH_CONF: extra tailgate.conf lines (e.g. "idle_sleep_max_us = 1000"), for experiments;
# TG_PATH_PERF=1: perf record of the gateway during the closed loop, its top symbols by thread;
# TG_PATH_SCHED=1: perf stat of the gateway's context switches and migrations during it.
# TG_PATH_RELOAD=0: no SIGHUP run (part 3's reload stall), for a shorter measurement.
# PREBUILT (1): the closed loop's client sends prebuilt requests with sendmmsg and reads
# answers with recvmmsg (gw_client --prebuilt 1), so it takes little of the cores it shares
# with the gateway; 0: one encode (LZ4) and one sendto per request, as before.
# Besides the ratio of rates, each block gives the ratio per CPU-second, which the client on
# the same cores does not move: the engine alone's CPU per image (the process over its timed
# runs) over the gateway process's CPU per answer.
set -u
BUILD=${1:-build}
shift
cd "$(dirname "$0")/.."
SECS=${SECS:-5}
PREBUILT=${PREBUILT:-1}
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
${TG_PATH_CONF:-}
CONF
ns_up || { echo "bench_path: namespaces failed"; exit 1; }

# The client's CPU (user + system seconds) goes to out_file.time: on these 2 cores it is part
# of what the gateway's threads compete with.
client() {	# out_file client_base [options]
	local f=$1 base=$2
	shift 2
	ip netns exec "$NS_CL" /usr/bin/time -f '%U %S' -o "$f.time" \
		timeout 120 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 512 \
		--block 512 --splits 0 --dtypes u8 --clients 4 --client-base "$base" "$@" \
		>"$f" 2>"$f.err"
}

# utime+stime ticks per thread group of the tailgate process: "rx main other rx_system"
ticks() {	# pid
	local pid=$1 rx=0 main=0 other=0 rxs=0 t name n s
	for t in /proc/"$pid"/task/*; do
		name=$(cat "$t/comm" 2>/dev/null) || continue
		read -r n s < <(awk '{ sub(/^.*\) /, ""); print $12 + $13, $13 }' "$t/stat" \
			2>/dev/null) || continue
		if [[ "$name" == tg-rx-* || "$name" == lcore-worker* || "$name" == rte-worker* ]]; then
			rx=$((rx + n)) rxs=$((rxs + s))
		elif [ "$(basename "$t")" = "$pid" ]; then main=$((main + n))
		else other=$((other + n)); fi
	done
	echo "$rx $main $other $rxs"
}

# The longest time without an answer to clients NXXX (from the access log), ms: a reload that
# stalls the request path shows as a gap of its build time.
gap() {	# first digit of the client ids, access.log
	grep "\"client\":$1[0-9][0-9][0-9]," "$2" |
		sed -n 's/.*"time":"[^T]*T\([0-9:.]*\)Z".*/\1/p' |
		awk -F: '{ printf "%.6f\n", $1 * 3600 + $2 * 60 + $3 }' | sort -n |
		awk 'NR > 1 && $1 - p > m { m = $1 - p } { p = $1 } END { printf "%.0f", m * 1000 }'
}

# CPU seconds by thread from a /metrics scrape: "rx main worker engine_cpu engine_wall process"
# (workers and RX lcores summed over their index; "-" when the binary exports none).
mcpu() {	# scrape
	awk '
		/^tailgate_thread_cpu_seconds_total\{thread="rx"/ { rx += $2; f = 1 }
		/^tailgate_thread_cpu_seconds_total\{thread="main"/ { mn += $2 }
		/^tailgate_thread_cpu_seconds_total\{thread="worker"/ { wk += $2 }
		/^tailgate_engine_thread_cpu_seconds_total\{/ { ec += $2 }
		/^tailgate_engine_seconds_total\{/ { ew += $2 }
		/^tailgate_process_cpu_seconds_total / { pr += $2 }
		END { if (f) printf "%.6f %.6f %.6f %.6f %.6f %.6f\n", rx, mn, wk, ec, ew, pr
		      else print "- - - - - -" }' "$1" 2>/dev/null
}

# "tid name voluntary nonvoluntary" per thread of pid: who gave the CPU up, who was preempted.
csw() {	# pid
	local t
	for t in /proc/"$1"/task/*; do
		awk -v t="$(basename "$t")" -v c="$(cat "$t/comm" 2>/dev/null)" '
			/^voluntary_ctxt_switches/ { v = $2 }
			/^nonvoluntary_ctxt_switches/ { n = $2 }
			END { print t, c, v + 0, n + 0 }' "$t/status" 2>/dev/null
	done
}

# Batches of the closed loop by size, from two /metrics scrapes: "mean; <=1 a, <=2 b, ...".
batches() {	# scrape0 scrape1
	awk '
		FNR == 1 { f++ }
		/^tailgate_batch_size_bucket\{/ {
			match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
			b[le] += (f == 1 ? -$2 : $2); if (!(le in seen)) { seen[le] = 1; ord[n++] = le } }
		/^tailgate_batch_size_sum\{/ { sum += (f == 1 ? -$2 : $2) }
		/^tailgate_batch_size_count\{/ { cnt += (f == 1 ? -$2 : $2) }
		END {
			printf "mean %.1f over %d batches;", cnt ? sum / cnt : 0, cnt
			p = 0
			for (i = 0; i < n; i++) { if (b[ord[i]] - p > 0) printf " <=%s: %d", ord[i], b[ord[i]] - p; p = b[ord[i]] }
			print ""
		}' "$1" "$2" 2>/dev/null
}

hz=$(getconf CLK_TCK)
# The engine alone runs the precision the gateway serves (the repository's model.conf, which
# gw_repo sets: f32 unless GW_DTYPE says otherwise; int8 with the model's .calib).
DT=$(sed -n 's/^dtype *= *\([a-z0-9]*\).*/\1/p' "$TMP/repo/fmnist-resnet/model.conf")
DT=${DT:-f32}
rows=$TMP/rows
: >"$rows"
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
	http_get /metrics "$out/m0"
	read -r r0 m0 o0 rs0 <<<"$(ticks "$tg")"
	csw "$tg" >"$out/csw0"
	if [ -n "${TG_PATH_SCHED:-}" ] && command -v perf >/dev/null; then
		perf stat -e context-switches,cpu-migrations --per-thread -p "$tg" \
			-o "$out/sched.txt" -- sleep "$SECS" >/dev/null 2>&1 &
		spid=$!
	fi
	if [ -n "${TG_PATH_PERF:-}" ] && command -v perf >/dev/null; then
		perf record -q -F 499 -g -p "$tg" -o "$out/perf.data" -- sleep "$SECS" \
			>/dev/null 2>&1 &
		ppid=$!
	fi
	client "$out/cap" 2000 --closed 128 --duration "$SECS" --warmup 1 --deadline-us 1000000 \
		--prebuilt "$PREBUILT"
	read -r r1 m1 o1 rs1 <<<"$(ticks "$tg")"
	csw "$tg" >"$out/csw1"
	if [ -n "${spid:-}" ]; then
		wait "$spid"
		spid=
		grep -E 'context-switches|cpu-migrations' "$out/sched.txt" | sort -k2 -n -r |
			head -n 12 | sed 's/^ */  perf stat: /'
	fi
	if [ -n "${ppid:-}" ]; then
		wait "$ppid"
		ppid=
		# by thread and object: where the samples fell (kernel: [kernel.kallsyms])
		perf report -q -i "$out/perf.data" --no-children --sort comm,dso -g none \
			--stdio 2>/dev/null | grep -v '^$' | head -n 16 | sed 's/^/  perf: /'
	fi
	http_get /metrics "$out/m1"
	cap=$(val ok_rps "$out/cap")
	n=$(val answered "$out/cap")
	# images/s at the median batch latency, and the mean over the timed runs (what a loaded
	# machine's preemptions lower, as they lower the gateway's capacity)
	"$BUILD/tailgate-model" bench models/fmnist-resnet/model.onnx --split 0 --batch 64 \
		--threads 2 --seconds "$SECS" --dtype "$DT" >"$out/engine" 2>/dev/null
	read -r eng engm < <(sed -n \
		's/^images\/s *\([0-9.]*\) (median; mean \([0-9.]*\)).*/\1 \2/p' "$out/engine")
	engc=$(sed -n 's/^CPU\/image *\([0-9.]*\) us.*/\1/p' "$out/engine")
	half=$(awk -v c="$cap" 'BEGIN { printf "%.0f", c / 3 }')
	client "$out/calm" 3000 --rate "$half" --duration 12 --warmup 0 --deadline-us 100000 \
		--drain-ms 10000
	if [ "${TG_PATH_RELOAD:-1}" != 0 ]; then
		client "$out/hup" 4000 --rate "$half" --duration 12 --warmup 0 --deadline-us 100000 \
			--drain-ms 10000 &
		cpid=$!
		sleep 3
		kill -HUP "$tg"
		wait "$cpid"
	fi
	gw_term
	read -r xr0 xm0 xw0 xe0 xew0 xp0 <<<"$(mcpu "$out/m0")"
	read -r xr1 xm1 xw1 xe1 xew1 xp1 <<<"$(mcpu "$out/m1")"
	gcalm=$(gap 3 "$out/access.log") ghup=$(gap 4 "$out/access.log")
	grep -E 'SIGHUP|reload' "$out/event.log" | sed 's/^/  event: /'
	echo "  batches during the closed loop: $(batches "$out/m0" "$out/m1")"
	# context switches during the closed loop, by thread (tid name voluntary nonvoluntary)
	awk 'NR == FNR { v[$1] = $3; n[$1] = $4; next }
	     { printf "%s%s %d/%d", (k++ ? ", " : "  context switches (voluntary/preempted): "),
		      $2, $3 - v[$1], $4 - n[$1] } END { print "" }' "$out/csw0" "$out/csw1"
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
	# /metrics: the same closed loop, per request (us), each thread of the gateway's own.
	awk -v b="$bin" -v n="$n" -v l0="$load0" -v l1="$(cut -d' ' -f1 /proc/loadavg)" \
	    -v cap="$cap" -v eng="${eng:-0}" -v engm="${engm:-0}" \
	    -v a="$xr0 $xm0 $xw0 $xe0 $xew0 $xp0" -v z="$xr1 $xm1 $xw1 $xe1 $xew1 $xp1" \
	    -v rxt=$((r1 - r0)) -v rxs=$((rs1 - rs0)) -v cl="$(cat "$out/cap.time" 2>/dev/null)" \
	    -v cll="$(val cpu_us_per_answer "$out/cap")" -v engc="${engc:-0}" \
	    -v mb="$(batches "$out/m0" "$out/m1" | awk '{ print $2 }')" \
	    -v rows="$rows" 'BEGIN {
		split(a, x); split(z, y)
		if (x[1] == "-" || y[1] == "-" || n <= 0) {
			print "  (no per-thread CPU in /metrics)"
			exit
		}
		u = 1e6 / n
		rx = (y[1] - x[1]) * u; mn = (y[2] - x[2]) * u; wk = (y[3] - x[3]) * u
		ec = (y[4] - x[4]) * u; ew = (y[5] - x[5]) * u; pr = (y[6] - x[6]) * u
		oth = pr - rx - mn - wk
		split(cl, c)
		cu = (c[1] + c[2]) * u
		ks = rxt > 0 ? 100 * rxs / rxt : 0
		busy = ew * cap / 1e4
		printf "  CPU per request (us, /metrics): RX lcore %.1f (%.0f%% in the kernel), main %.1f, worker outside oneDNN %.1f, worker inside oneDNN %.1f, other threads (oneDNN pool, log, HTTP) %.1f; client %.1f\n",
		       rx, ks, mn, wk - ec, ec, oth, cu
		printf "  engine: busy %.0f%% of the loop, %.1f images/s while busy (alone: %.1f median, %.1f mean); ratio %.2f to the median, %.2f to the mean\n",
		       busy, (ew > 0 ? 1e6 / ew : 0), eng, engm, (eng > 0 ? cap / eng : 0),
		       (engm > 0 ? cap / engm : 0)
		printf "  per CPU-second: the gateway %.1f us per answer (all its threads), the engine alone %.1f us per image; ratio %.2f; the client'"'"'s loop %.1f us per answer (%.1f with its set-up)\n",
		       pr, engc, (pr > 0 ? engc / pr : 0), cll, cu
		printf "| %s | %s-%s | %.1f | %.1f (%.1f) | %.2f (%.2f) | %.0f%% | %.1f | %s | %.1f (%.0f%%) | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f |\n",
		       b, l0, l1, cap, eng, engm, (eng > 0 ? cap / eng : 0),
		       (engm > 0 ? cap / engm : 0), busy, (ew > 0 ? 1e6 / ew : 0), mb, rx, ks, mn,
		       wk - ec, rx + mn + wk - ec, ec + oth, pr, engc, (pr > 0 ? engc / pr : 0),
		       cll >> rows
	}'
done

if [ -n "${TG_PATH_DOC:-}" ] && [ -s "$rows" ]; then
	section=$(cat <<EOF
Command: \`SECS=$SECS PREBUILT=$PREBUILT TG_PATH_DOC=docs/BENCHMARKS.md scripts/bench_path.sh $BUILD $*\` (part of
\`make bench\`), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)).
The load is the 1-minute load average before and after each run: other work on the same
cores takes CPU from the gateway and the engine alone alike, but not at the same moments.
Capacity: a closed loop of 128 for $SECS s at split 0 as u8 (tests/gw_client$( [ "$PREBUILT" = 1 ] && echo ' --prebuilt 1: requests encoded once, sendmmsg/recvmmsg'), 4 sockets, in the
other namespace on the same cores; tailgate with 1 worker, 2 engine threads, af_packet on a
veth; the model's precision: $DT). Engine alone right after: \`tailgate-model bench
models/fmnist-resnet/model.onnx --split 0 --batch 64 --threads 2 --seconds $SECS --dtype $DT\`, images/s at the median batch latency and
the mean over the runs. Engine busy: the worker's batch wall time
(\`tailgate_engine_seconds_total\`) over the loop's; images/s while busy: answers over that
time, so the ratio is about busy x (while busy / alone). Mean batch: samples per engine batch
(\`tailgate_batch_size\`; the model's early exits make later segments' batches smaller). CPU per answer from /metrics before
and after the loop: outside oneDNN is the RX lcore (\`tailgate_thread_cpu_seconds_total\`,
its kernel share from /proc: af_packet's copies and the veth's delivery to the client), the
main thread and the worker thread less its time inside oneDNN
(\`tailgate_engine_thread_cpu_seconds_total\`); oneDNN's column is that plus the process's
other threads (\`tailgate_process_cpu_seconds_total\` less the gateway's own threads: oneDNN's
pool, with the log writer and HTTP). **Per CPU-second** (what the client on the same cores
does not move): the engine alone's CPU per image (its process over the timed runs, \`CPU/image\`)
over the gateway's (\`tailgate_process_cpu_seconds_total\`) per answer. The client's CPU is its
loop's own (gw_client's \`cpu_us_per_answer\`: the model load and reference tails before the loop
not counted).

| tailgate | load | capacity OK/s | engine alone images/s, median (mean) | ratio to median (to mean) | engine busy | engine images/s while busy | mean batch | RX lcore us/req (in the kernel) | main us/req | worker outside oneDNN us/req | outside oneDNN us/req | oneDNN us/req (worker + pool, log, HTTP) | gateway CPU us/answer | engine alone CPU us/image | ratio per CPU-second | client loop us/req |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
$(cat "$rows")
EOF
)
	scripts/doc_section.py "$TG_PATH_DOC" path "The request path: CPU per request outside oneDNN" "$section"
	echo "bench_path: wrote the section in $TG_PATH_DOC"
fi
