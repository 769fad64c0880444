#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Degrade instead of shed (README, "Degrade instead of shed"; docs/protocol.md 7.4), end to
# end over veth: tailgate serves "slowtail" (tests/mk_slowtail: a 455 MFLOP residual block
# after a small stem, tens of milliseconds a sample here) with two stand-ins: "light", the
# same model with that block dropped (a drop= variant: it takes the base's tensor at the
# input and at s1, a tail thousands of times cheaper), and "tiny", a file variant (the
# multi-exit fixture) that takes the model input only. Card accuracies are declared in the
# test's model.conf: base 90%, light 70%, tiny 60%. gw_client sends Fashion-MNIST images at
# the input and at s1 (u8), open loop, from devices whose HELLO declares a floor.
# The overload is forced, not measured: a 3 ms deadline no batch of the base can meet (its
# tail alone takes far longer even on a fast core) while the stand-ins' tails take
# microseconds to a millisecond. What must always hold is checked, never a speed:
#   1. floor 50%: every request answered once; every OK answer ran on a stand-in and says so
#      (its variant_id), none on the base; at least one OK; refusals name the request's
#      own variant; /metrics tailgate_degraded_total by pair and the access log's
#      ran_variant equal what the devices got; no answer at s1 ran on "tiny" (the access
#      log's ran_split and ran_variant).
#   2. floor 80% (above every stand-in) and no profile at all: no OK answer, none degraded:
#      refused as before.
#   3. a backlog (2 s deadlines, 1000/s: far more than the base can do): every request answered
#      once, OK answers are the base's (checked against the offline class) or a stand-in's
#      that says so; counters add up (information: how many were degraded).
#   4. degrade = false (a restart): the 3 ms requests of (1) are all refused, none degraded.
# Usage: tests/gateway_degrade.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgdg$$ SUBNET=6 NET=10.84
TMP=$(mktemp -d /tmp/tg_gwdg.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

FM=/usr/share/datasets/fashion-mnist
gw_require "$BUILD/tailgate" "$BUILD/tailgate-model" "$BUILD/tests/gw_client" \
	"$BUILD/tests/mk_slowtail"

repo=$TMP/repo
mkdir -p "$repo/slowtail/variants/tiny"
"$BUILD/tests/mk_slowtail" "$repo/slowtail/model.onnx" || bad "mk_slowtail wrote the model"
ln -s "$PWD/tests/fixtures/multiexit/model.onnx" "$repo/slowtail/variants/tiny/model.onnx"
cat >"$repo/slowtail/model.conf" <<-CONF
	# tests/gateway_degrade.sh: accuracies declared for the test, not measured.
	id = 7
	splits = input, s1
	max_batch = 8
	max_delay_us = 500
	deadline_ms = 1000
	top_k = 3
	accuracy = logits:90.00
	variant = 1 light drop=blk_add accuracy=logits:70.00
	variant = 2 tiny splits=0 accuracy=final:60.00
CONF
conf() {	# file degrade
	cat >"$1" <<-CONF
	address = $IP_GW
	models = $repo
	workers = 1
	max_inflight_messages = 4096
	max_inflight_client = 2048
	max_inflight = 4096
	queue_cap = 2048
	degrade = $2
	CONF
}
conf "$TMP/on.conf" true
conf "$TMP/off.conf" false

ns_up_or_exit
out=$TMP/on
if ! gw_start "$TMP/on.conf" "$out" --engine-threads 1; then
	bad "tailgate started on the slow-tail repository"
	check_done
	exit 1
fi
ok "tailgate started on the slow-tail repository"

# Rows of the served splits in the base's table (the input is 0).
s1=$("$BUILD/tailgate-model" info "$repo/slowtail/model.onnx" | awk '$2 == "s1" { print $1 }')
check "split s1 found in the model's table (row $s1)" test -n "$s1"

client() {	# out_file client_base [gw_client options...]
	local f=$1 base=$2
	shift 2
	ip netns exec "$NS_CL" timeout 240 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model "$repo/slowtail/model.onnx" --model-id 7 --fmnist "$FM" --images 32 \
		--block 32 --splits "0,$s1" --dtypes u8 --clients 4 --client-base "$base" \
		--drain-ms 30000 "$@" >"$f" 2>"$f.err"
}

# Statuses, ok + refusals = answered = sent, nothing lost or answered twice differently.
answered_once() {	# label file rc
	check "$1: every request answered once (client status $3, sent $(val sent "$2"), answered $(val answered "$2"), lost $(val lost "$2"), differ $(val answers_differ "$2"))" \
		test "$3" -eq 0 -a "$(val lost "$2")" -eq 0 -a \
		"$(val answered "$2")" -eq "$(val sent "$2")" -a "$(val answers_differ "$2")" -eq 0
	# Every answer has one status (an ERROR unknown_request too: a resend of a request whose
	# chunks came late under load); the OK ones are those judged.
	local n_all
	n_all=$(awk '/^status_/ { n += $2 } END { print n + 0 }' "$2")
	check "$1: statuses add up (OK $(val status_ok "$2") = ok $(val ok "$2"); all $n_all = answered)" \
		test "$(val status_ok "$2")" -eq "$(val ok "$2")" -a "$n_all" -eq "$(val answered "$2")"
	check "$1: refusals name the request's own variant (others $(val refused_other_variant "$2"))" \
		test "$(val refused_other_variant "$2")" -eq 0
}

metric0() {	# file name{labels}: 0 when the series is not there yet (a delta's start)
	awk -v k="$2" '$1 == k { print $2; f = 1; exit } END { if (!f) print 0 }' "$1"
}
pair() { echo "tailgate_degraded_total{from=\"slowtail\",to=\"slowtail/$1\"}"; }

# 1. floor 50%, deadline 3 ms: the base never fits, the stand-ins do.
http_get /metrics "$out/m0"
client "$out/a" 1000 --rate 200 --duration 3 --warmup 0 --deadline-us 3000 \
	--profile 1000,100000,1000,3000,5000
rc=$?
summary "floor 50%, deadline 3 ms" "$out/a"
http_get /metrics "$out/m1"
answered_once "floor 50%" "$out/a" "$rc"
a_ok=$(val ok "$out/a")
a_t=$(awk '$1 == "ran_variant_2" { print $2; f = 1 } END { if (!f) print 0 }' "$out/a")
a_l=$(awk '$1 == "ran_variant_1" { print $2; f = 1 } END { if (!f) print 0 }' "$out/a")
check "floor 50%: some answered OK ($a_ok of $(val sent "$out/a"))" test "$a_ok" -gt 0
check "floor 50%: no OK answer from the base, every one degraded and saying so (base $(val ran_variant_0 "$out/a"), degraded $(val degraded "$out/a"), light $a_l, tiny $a_t)" \
	test "$(val ran_variant_0 "$out/a")" -eq 0 -a "$(val degraded "$out/a")" -eq "$a_ok" -a \
	"$((a_l + a_t))" -eq "$a_ok"
d_l=$(( $(metric "$out/m1" "$(pair light)") - $(metric0 "$out/m0" "$(pair light)") ))
d_t=$(( $(metric "$out/m1" "$(pair tiny)") - $(metric0 "$out/m0" "$(pair tiny)") ))
check "floor 50%: /metrics counts each pair as the devices saw them (light $d_l, tiny $d_t)" \
	test "$d_l" -eq "$a_l" -a "$d_t" -eq "$a_t"
d_ok=$(( $(metric "$out/m1" 'tailgate_requests_total{model="slowtail",status="ok"}') - \
	$(metric0 "$out/m0" 'tailgate_requests_total{model="slowtail",status="ok"}') ))
check "floor 50%: degraded answers counted under the model asked for (ok $d_ok)" \
	test "$d_ok" -eq "$a_ok"

# 2. a floor above every stand-in, and devices without a profile: refused as before.
client "$out/b" 2000 --rate 100 --duration 2 --warmup 0 --deadline-us 3000 \
	--profile 1000,100000,1000,3000,8000
rc=$?
summary "floor 80%" "$out/b"
answered_once "floor 80%" "$out/b" "$rc"
check "floor 80%: nothing answered OK, nothing degraded (ok $(val ok "$out/b"), degraded $(val degraded "$out/b"))" \
	test "$(val ok "$out/b")" -eq 0 -a "$(val degraded "$out/b")" -eq 0
client "$out/c" 3000 --rate 100 --duration 2 --warmup 0 --deadline-us 3000
rc=$?
summary "no profile" "$out/c"
answered_once "no profile" "$out/c" "$rc"
check "no profile: nothing answered OK, nothing degraded (ok $(val ok "$out/c"), degraded $(val degraded "$out/c"))" \
	test "$(val ok "$out/c")" -eq 0 -a "$(val degraded "$out/c")" -eq 0

# 3. backlog: 2 s deadlines, 1000 requests/s against a base that does a few hundred at most.
http_get /metrics "$out/m2"
client "$out/d" 4000 --rate 1000 --duration 3 --warmup 0 --deadline-us 2000000 \
	--profile 1000,100000,1000,2000000,5000
rc=$?
summary "backlog, floor 50%" "$out/d"
http_get /metrics "$out/m3"
answered_once "backlog" "$out/d" "$rc"
check "backlog: OK answers are the base's (as offline: mismatch $(val mismatch "$out/d")) or a stand-in's saying so (ok $(val ok "$out/d") = base $(val ran_variant_0 "$out/d") + degraded $(val degraded "$out/d"))" \
	test "$(val mismatch "$out/d")" -eq 0 -a \
	"$(( $(val ran_variant_0 "$out/d") + $(val degraded "$out/d") ))" -eq "$(val ok "$out/d")"
d_all=$(( $(metric "$out/m3" "$(pair light)") - $(metric0 "$out/m2" "$(pair light)") + \
	$(metric "$out/m3" "$(pair tiny)") - $(metric0 "$out/m2" "$(pair tiny)") ))
check "backlog: /metrics degraded pairs add up to what the devices got ($d_all)" \
	test "$d_all" -eq "$(val degraded "$out/d")"
echo "  information: backlog: $(val degraded "$out/d") of $(val ok "$out/d") OK answers degraded, shed on arrival $(metric "$out/m3" tailgate_sched_shed_on_arrival_total) in all (not checked)"

# The access log, flushed at exit: one line per answer, each naming what ran.
check "tailgate exits 0 on SIGTERM" gw_term
log=$out/access.log
n_log=$(wc -l <"$log")
n_sent=$(( $(val sent "$out/a") + $(val sent "$out/b") + $(val sent "$out/c") + $(val sent "$out/d") ))
check "access log: one line per request ($n_log, $n_sent)" test "$n_log" -eq "$n_sent"
l_deg=$(grep -c '"variant":0,"ran_variant":[12],' "$log")
c_deg=$(( $(val degraded "$out/a") + $(val degraded "$out/d") ))
check "access log: degraded answers recorded with the variant that ran ($l_deg, devices $c_deg)" \
	test "$l_deg" -eq "$c_deg"
l_bad=$(grep '"ran_variant":[12],' "$log" | grep -vc '"status":0,')
check "access log: only OK answers name a stand-in ($l_bad others)" test "$l_bad" -eq 0
l_tiny_s1=$(grep "\"split\":$s1," "$log" | grep -c '"ran_variant":2,')
check "access log: no request at s1 ran on tiny, which does not take that tensor ($l_tiny_s1)" \
	test "$l_tiny_s1" -eq 0

# 4. degrade = false: the requests of (1) are refused as before.
out=$TMP/off
if gw_start "$TMP/off.conf" "$out" --engine-threads 1; then
	ok "tailgate started with degrade = false"
	client "$out/a" 5000 --rate 200 --duration 2 --warmup 0 --deadline-us 3000 \
		--profile 1000,100000,1000,3000,5000
	rc=$?
	summary "degrade = false" "$out/a"
	answered_once "degrade = false" "$out/a" "$rc"
	check "degrade = false: nothing answered OK, nothing degraded (ok $(val ok "$out/a"), degraded $(val degraded "$out/a"))" \
		test "$(val ok "$out/a")" -eq 0 -a "$(val degraded "$out/a")" -eq 0
	http_get /metrics "$out/m"
	check "degrade = false: no pair to degrade between is listed" \
		test "$(grep -c '^tailgate_degraded_total' "$out/m")" -eq 0
	check "degrade = false: tailgate exits 0 on SIGTERM" gw_term
else
	bad "tailgate started with degrade = false"
fi
check_done
