#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Chaos: SIGHUP every 100 ms under load (issue 11, item 1: a reload under load used to abort
# the gateway in dp_req_respond, a request answered twice). tailgate serves the shipped model
# on af_packet in a namespace; gw_client, in another, measures the capacity with a short
# closed loop, then sends an open loop at 0.9 of it (split 0 as u8, four sockets) while this
# script sends SIGHUP every 100 ms. Asserted (what must always hold, never a speed):
#   - tailgate stays up (and /healthz answers) and at least one reload took over;
#   - every request the client sent got exactly one answer (gw_client: nothing lost, no OK
#     answer differing from the engine's offline class);
#   - counters (every counter and histogram sample of /metrics) are monotonic across the
#     reloads, and none scraped before is missing after;
#   - SIGTERM at the end: exit 0, and the drain line's requests delivered by the dataplane =
#     taken = answered, none answered after the port stopped;
#   - the access log holds exactly one line per RESPONSE the clients got.
# Short by default (8 s of reloads under load); CHAOS_LONG=1 (make chaos): 60 s.
# Usage: tests/chaos_reload.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgcr$$ NET=10.84 SUBNET=1
TMP=$(mktemp -d /tmp/tg_chaos_reload.XXXXXX)
. tests/gw_lib.bash
. tests/chaos_lib.bash	# chaos_figure: a row of the "Faults and attacks" table
trap gw_cleanup EXIT
trap 'exit 130' INT TERM
SECS=8
[ "${CHAOS_LONG:-0}" = 1 ] && SECS=60

FM=/usr/share/datasets/fashion-mnist
gw_require "$BUILD/tailgate" "$BUILD/tests/gw_client"

gw_roomy_conf "$TMP"

out=$TMP/run
ns_up_or_exit
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2; then
	bad "tailgate started on the shipped repository"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
ok "tailgate started on the shipped repository"

client() {	# out_file client_base [gw_client options...]
	local f=$1 base=$2
	shift 2
	ip netns exec "$NS_CL" timeout $((SECS + 60)) "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 512 \
		--block 512 --splits 0 --dtypes u8 --clients 4 --client-base "$base" --ids "$f.ids" \
		"$@" >"$f" 2>"$f.err"
}

# Counter and histogram samples of scrape $1 that went down, or vanished, in scrape $2.
not_monotonic() {	# before after
	awk 'FNR == 1 { f++ }
	     /^# TYPE / { t[$3] = $4; next }
	     /^#/ || NF < 2 { next }
	     { name = $1; sub(/\{.*/, "", name); base = name; sub(/_(bucket|sum|count)$/, "", base)
	       kind = (name in t) ? t[name] : t[base]
	       if (kind != "counter" && kind != "histogram") next
	       if (f == 1) b[$1] = $2; else a[$1] = $2 }
	     END { for (k in b) {
		     if (!(k in a)) print "missing " k
		     else if (a[k] + 0 < b[k] + 0) print "decreased " k " " b[k] " -> " a[k] } }' "$1" "$2"
}

client "$out/cap" 1000 --closed 128 --duration 3 --warmup 1 --deadline-us 1000000
cap=$(val ok_rps "$out/cap")
summary "capacity (closed loop)" "$out/cap"
check "capacity measured: $cap OK/s" awk -v c="$cap" 'BEGIN { exit !(c > 0) }'
rate=$(awk -v c="$cap" 'BEGIN { r = 0.9 * c; printf "%.0f", r < 20 ? 20 : r }')

http_get /metrics "$out/m0"
gen0=$(metric "$out/m0" tailgate_model_generation)
client "$out/hup" 2000 --rate "$rate" --duration "$SECS" --warmup 1 --deadline-us 100000 \
	--drain-ms 15000 &
cpid=$!
for _ in $(seq 3000); do	# sending (at least one answer, at most 300 s on a busy machine)
	[ -s "$out/hup.ids" ] && break
	kill -0 "$cpid" 2>/dev/null || break
	sleep 0.1
done
http_get /metrics "$out/m1"
hups=0
t_end=$(( $(date +%s) + SECS ))
while [ "$(date +%s)" -lt "$t_end" ] && kill -0 "$cpid" 2>/dev/null; do
	kill -HUP "$gw_pid" 2>/dev/null && hups=$((hups + 1))
	sleep 0.1
done
wait "$cpid"
rc=$?
summary "open loop at $rate/s, $hups SIGHUPs" "$out/hup"
check "SIGHUP x$hups: tailgate still up" kill -0 "$gw_pid"
http_get /healthz "$out/healthz"
check "SIGHUP x$hups: /healthz ok" grep -q '^ok' "$out/healthz"
# Reloads may still be building (one at a time, the last SIGHUPs queue one more): wait until
# every reload started has ended, twice 1 s apart (at most 180 s: a build at nice 10 on a
# busy machine takes long).
stable=0
for _ in $(seq 180); do
	started=$(grep -c 'SIGHUP: reloading' "$out/event.log" 2>/dev/null)
	ended=$(grep -cE 'reload: generation [0-9]+ serves|reload failed' "$out/event.log" 2>/dev/null)
	if [ "${started:-0}" -gt 0 ] && [ "$started" = "$ended" ]; then
		stable=$((stable + 1))
		[ "$stable" -ge 2 ] && break
	else
		stable=0
	fi
	sleep 1
done
echo "  reloads started ${started:-?}, ended ${ended:-?}"
http_get /metrics "$out/m2"
gen2=$(metric "$out/m2" tailgate_model_generation)
check "SIGHUP x$hups: reloads took over (generation ${gen0:-?} -> ${gen2:-?})" \
	awk -v a="${gen0:-x}" -v b="${gen2:-x}" 'BEGIN { exit !(a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && b > a) }'
check "SIGHUP x$hups: every request answered exactly once (client status $rc, sent $(val sent "$out/hup"), answered $(val answered "$out/hup"), lost $(val lost "$out/hup"), mismatch $(val mismatch "$out/hup"))" \
	test "$rc" -eq 0 -a "$(val lost "$out/hup")" -eq 0 -a "$(val sent "$out/hup")" -gt 0 -a \
	"$(val answered "$out/hup")" -eq "$(val sent "$out/hup")"
# Where requests went missing, if any: the port, the dataplane's drops and refusals.
awk '$1 ~ /^tailgate_dp_(drops|refusals)_total/ && $2 != 0 || $1 ~ /^tailgate_dp_port_missed/' \
	"$out/m2" | sed 's/^/  /'
for pair in "m0 m1" "m1 m2"; do
	set -- $pair
	not_monotonic "$out/$1" "$out/$2" >"$out/mono.$1$2"
	check "counters monotonic from scrape $1 to $2 ($(wc -l <"$out/mono.$1$2") went back or vanished)" \
		test -s "$out/$1" -a -s "$out/$2" -a ! -s "$out/mono.$1$2"
	sed 's/^/    /' "$out/mono.$1$2" | head -n 10
done

gw_term
grc=$?
check "SIGTERM: tailgate exited 0 (status $grc)" test "$grc" -eq 0
line=$(grep -o 'stopped: .*' "$out/event.log" | tail -n 1)
echo "  $line"
read -r deliv taken answ late <<<"$(sed -n 's/^stopped: \([0-9]*\) requests delivered by the dataplane, \([0-9]*\) taken, \([0-9]*\) answered, \([0-9]*\) after the port stopped.*/\1 \2 \3 \4/p' <<<"$line")"
check "drain: delivered ${deliv:-?} = taken ${taken:-?} = answered ${answ:-?}, ${late:-?} after the port stopped" \
	test -n "${deliv:-}" -a "${deliv:-0}" -gt 0 -a "${deliv:-x}" = "${taken:-y}" -a \
	"${taken:-x}" = "${answ:-y}" -a "${late:-x}" = 0
logged=$(cat "$out/access.log" 2>/dev/null | wc -l)
answered=$(cat "$out"/*.ids 2>/dev/null | wc -l)
check "access log: one line per RESPONSE the clients got ($logged, $answered)" \
	test "$logged" -gt 0 -a "$logged" -eq "$answered"
chaos_figure "SIGHUP every 100 ms" "$([ "$fail" -eq 0 ] && echo pass || echo FAIL)" \
	"$hups SIGHUPs (a SIGHUP during a build queues one more, so they coalesce) under an open loop at $rate/s (0.9 of the measured capacity): $(show sent "$out/hup") sent, $(show answered "$out/hup") answered once, $(show ok "$out/hup") OK, $(show lost "$out/hup") lost; generation ${gen0:-?} to ${gen2:-?}, $(cat "$out"/mono.* 2>/dev/null | wc -l) counters went back; drain ${deliv:-?} delivered = ${answ:-?} answered"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
