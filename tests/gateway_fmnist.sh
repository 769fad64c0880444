#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Integration on the SHIPPED model: tailgate serves models/fmnist-resnet (its own model.conf:
# splits 0, 4, 6, 8, max_batch 64) on af_packet in a network namespace; gw_client sends the
# 10,000 Fashion-MNIST test images' tensors from a second namespace, image i at split
# (0, 4, 6, 8)[i % 4] in dtype (f32, f16, s8, u8)[(i / 4) % 4]: every (split, dtype) pair gets
# 625 images. The client computes the heads batched with the engine, and for every tensor
# the expected class offline: the reference tail (batched) on the rows loaded from the very
# bytes it sends, by the engine's own dequantizing copy (kern_plan_load_rows), as the
# gateway does. Checked: every request answered OK, every prediction equal to the offline
# one (a top-2 near tie within 1e-3 counts as "close"), the accuracy against the labels
# sane, /metrics counting them, SIGTERM exit 0.
# Under SAN=1 (BUILD ending in /san) it sends the first 1,000 images only, and says so.
# Usage: tests/gateway_fmnist.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgfm$$ SUBNET=1
TMP=$(mktemp -d /tmp/tg_gwfm.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

FM=/usr/share/datasets/fashion-mnist
IMAGES=${GW_FMNIST_IMAGES:-10000}
if [[ "$BUILD" == */san || "$BUILD" == san ]]; then
	IMAGES=${GW_FMNIST_IMAGES:-1000}
	echo "note: sanitizer build: the first $IMAGES images only (the same checks)"
fi
gw_require "$BUILD/tailgate" "$BUILD/tests/gw_client"

gw_repo "$TMP/repo"
# The shipped model answers from early exits (model.conf's exit lines): the first part checks
# every answer against the engine's final exit, so it runs without them; the early-exit part
# below puts them back.
sed -i '/^exit = /d' "$TMP/repo/fmnist-resnet/model.conf"
grep -q '^exit = ' models/fmnist-resnet/model.conf || bad "the shipped model.conf has exit lines"
cat >"$TMP/tailgate.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
max_inflight_messages = 256
max_inflight_client = 32
max_inflight = 1024
queue_cap = 256
gap_timeout_us = 20000
msg_timeout_us = 2000000
CONF

out=$TMP/run
t0=$(date +%s.%N)
if ! ns_up; then
	bad "namespaces"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2; then
	bad "tailgate started on the shipped repository"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
ok "tailgate started on the shipped repository"
check "startup summary names fmnist-resnet, id 1" grep -q '^model fmnist-resnet: id 1' "$out/gw.err"

# 8 clients x 8 open: 64 in flight, a full batch. Deadlines of 10 s: this test is about the
# answers, not the timing (the overload test is about that).
ip netns exec "$NS_CL" timeout 170 "$BUILD/tests/gw_client" --gw "$IP_GW" \
	--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images "$IMAGES" \
	--splits 0,4,6,8 --dtypes f32,f16,s8,u8 --block 512 --clients 8 --window 8 \
	--deadline-us 10000000 --time-limit 150 \
	>"$out/client.out" 2>"$out/client.err"
rc=$?
echo "  client: $(tr '\n' ' ' <"$out/client.out")" | fold -s -w 100
sed 's/^/    | /' "$out/client.err" | head -n 10
check "gw_client finished cleanly (status $rc)" test "$rc" -eq 0
check "$IMAGES requests answered OK" test "$(val ok "$out/client.out")" -eq "$IMAGES"
check "none failed, none lost" \
	test "$(val failed "$out/client.out")" -eq 0 -a "$(val lost "$out/client.out")" -eq 0
all16=1
for s in 0 4 6 8; do
	for d in f32 f16 s8 u8; do
		[ "$(val "ok_s${s}_$d" "$out/client.out")" -gt 0 ] || all16=0
	done
done
check "every (split, dtype) pair of 0,4,6,8 x f32,f16,s8,u8 answered" test "$all16" -eq 1
check "predictions equal the engine's offline ones (mismatch $(val mismatch "$out/client.out"), near ties $(val close "$out/client.out"))" \
	test "$(val mismatch "$out/client.out")" -eq 0
check "near ties are rare (at most 0.5%)" \
	test "$(val close "$out/client.out")" -le $((IMAGES / 200))
# The shipped model scores 92.40% offline at its final exit (models/fmnist-resnet/CARD.md);
# through the gateway each dtype must stay close (int8 quantization of a tensor costs little).
for d in f32 f16 s8 u8; do
	a=$(val "accuracy_$d" "$out/client.out")
	check "accuracy of the $d quarter vs the labels: $a (>= 0.89)" num_ge "$a" 0.89
done

if [ -n "$gw_port" ]; then
	http_get /metrics "$out/metrics"
	served=$(metric "$out/metrics" 'tailgate_requests_total{model="fmnist-resnet",status="ok"}')
	check "/metrics counts the $IMAGES OK requests (got $served)" \
		test "$served" -ge "$IMAGES"
else
	bad "control plane port printed"
fi
check "/metrics: reassembly slots in use and in the pool (256)" \
	test -n "$(metric "$out/metrics" tailgate_dp_slots_in_use)" -a \
	"$(metric "$out/metrics" tailgate_dp_slots)" = 256
check "/metrics: answers by exit name and index (final, 2: all $IMAGES)" \
	test "$(metric "$out/metrics" 'tailgate_exit_answers_total{model="fmnist-resnet",exit="final",index="2"}')" = "$IMAGES"

# Every variant of the shipped model.conf, end to end: requests naming its variant id, at
# the first, a middle and the last of the splits /v1/models lists for it, in every wire
# dtype; each answer equal to the engine's offline class from that variant's own file (a drop
# variant: the file 'tailgate-model drop' writes; a file variant: variants/NAME/model.onnx),
# the final exit's (flag "no early exit": the variants' own exits= stay on).
http_get /v1/models "$out/models.json"
VIMAGES=$((IMAGES < 512 ? IMAGES : 512))
nvar=0
while read -r _ _ vid vname vopts; do
	vfile=models/fmnist-resnet/variants/$vname/model.onnx
	vdrop=$(tr ' ' '\n' <<<"$vopts" | sed -n 's/^drop=//p')
	if [ -n "$vdrop" ]; then
		vfile=$TMP/variant$vid.onnx
		"$BUILD/tailgate-model" drop models/fmnist-resnet/model.onnx --blocks "$vdrop" \
			--output "$vfile" >/dev/null 2>"$out/drop$vid.err" || bad "drop $vdrop"
	fi
	vsplits=$(python3 -c 'import json, sys
body = open(sys.argv[1]).read().split("\n\n", 1)[-1]	# after the HTTP header (newlines read as \n)
m = [m for m in json.loads(body)["models"] if m["id"] == 1 and m["variant"] == int(sys.argv[2])]
s = [p["split_id"] for p in m[0]["splits"]] if m else []
print(",".join(str(x) for x in sorted({s[0], s[len(s) // 2], s[-1]})) if s else "")' \
		"$out/models.json" "$vid")
	ip netns exec "$NS_CL" timeout 170 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model "$vfile" --model-id 1 --variant "$vid" --fmnist "$FM" --images "$VIMAGES" \
		--splits "${vsplits:-none}" --dtypes f32,f16,s8,u8 --block 256 --clients 4 \
		--window 8 --deadline-us 10000000 --time-limit 150 --client-base 4000 --flags 2 \
		>"$out/variant$vid.out" 2>"$out/variant$vid.err"
	rc=$?
	echo "  variant $vid $vname (splits $vsplits): $(grep -E '^(ok|mismatch|close|failed|lost) ' "$out/variant$vid.out" | tr '\n' ' ')"
	sed 's/^/    | /' "$out/variant$vid.err" | head -n 5
	check "variant $vid $vname: listed by /v1/models with splits ($vsplits), $VIMAGES answered OK in every dtype, as its file offline (status $rc)" \
		test -n "$vsplits" -a "$rc" -eq 0 -a "$(val ok "$out/variant$vid.out")" -eq "$VIMAGES" -a \
		"$(val mismatch "$out/variant$vid.out")" -eq 0
	nvar=$((nvar + 1))
done < <(grep '^variant = ' "$TMP/repo/fmnist-resnet/model.conf")
check "every variant line of the shipped model.conf checked ($nvar)" \
	test "$nvar" -eq "$(grep -c '^variant = ' models/fmnist-resnet/model.conf)" -a "$nvar" -ge 1

# Split advice from the HELLO's device profile (compute MFLOP/s, uplink kbit/s, RTT us, SLO
# us, accuracy floor): 64 images from the input as f32 per profile. A 100 MFLOP/s device on a
# fast link is told to send the input (the last split's head alone is ~0.9 s there); a
# 1 TFLOP/s one to send split 8 (89 MFLOP in 0.09 ms, 25 KB in 0.2 ms at 1 Gbit/s, and
# almost no tail left on the gateway); a floor above the model's 92.40% gets no advice. One
# request at a time: one joining a batch already queued costs the gateway almost nothing more,
# and the input would then be the better split for the fast device too.
advice() {	# label profile
	ip netns exec "$NS_CL" timeout 60 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 64 \
		--splits 0 --dtypes f32 --block 64 --clients 1 --window 1 --deadline-us 10000000 \
		--time-limit 50 --client-base 1500 --profile "$2" >"$out/adv_$1.out" 2>&1
	echo "  advice, $1 ($2): $(grep -E '^(ok|advice_[a-z0-9_]*) ' "$out/adv_$1.out" | tr '\n' ' ')"
}
advice slow 100,1000000,500,0,0
advice fast 1000000,1000000,200,50000,9000
advice floor 1000000,1000000,200,50000,9500
check "advice: a slow device is told to send the input (64 of 64)" \
	test "$(val advice_split_0 "$out/adv_slow.out")" -eq 64
check "advice: a fast device is told to send split 8 (64 of 64)" \
	test "$(val advice_split_8 "$out/adv_fast.out")" -eq 64
check "advice: none above the model's accuracy (64 of 64)" \
	test "$(val advice_none "$out/adv_floor.out")" -eq 64 -a "$(val ok "$out/adv_floor.out")" -eq 64

# Early exits: the shipped model.conf's exits put back, reloaded (SIGHUP). A request flagged
# "no early exit" (PROTO_RF_NO_EARLY_EXIT) is answered by the final exit, equal to the
# offline final class; unflagged, some leave at exit1 or exit2; /metrics counts each exit
# by name. A sixteenth of the images per (split, dtype) pair, as above.
grep '^exit = ' models/fmnist-resnet/model.conf >>"$TMP/repo/fmnist-resnet/model.conf"
# Counters are monotonic across reloads: the exits' figures below are differences.
http_get /metrics "$out/metrics1"
exitc() {	# file exit index
	local v
	v=$(metric "$1" "tailgate_exit_answers_total{model=\"fmnist-resnet\",exit=\"$2\",index=\"$3\"}")
	echo "${v:-x}"
}
e1_0=$(exitc "$out/metrics1" exit1 0) e2_0=$(exitc "$out/metrics1" exit2 1)
fin_0=$(exitc "$out/metrics1" final 2)
kill -HUP "$gw_pid"
for _ in $(seq 600); do	# at most 120 s: a reload builds and measures every plan, slow when busy
	grep -q 'reload: generation 2' "$out/event.log" 2>/dev/null && break
	sleep 0.2
done
check "exits enabled by a reload (generation 2)" grep -q 'reload: generation 2 serves' "$out/event.log"
for flag in 2 0; do
	ip netns exec "$NS_CL" timeout 120 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 1024 \
		--splits 0,4,6,8 --dtypes f32,f16,s8,u8 --block 512 --clients 4 --window 8 \
		--deadline-us 10000000 --time-limit 100 --client-base 2000 --flags "$flag" \
		>"$out/exit$flag.out" 2>"$out/exit$flag.err"
	echo "  flags $flag: $(grep -E '^(ok|mismatch|close|failed|lost|early_exits) ' "$out/exit$flag.out" | tr '\n' ' ')"
	sed 's/^/    | /' "$out/exit$flag.err" | head -n 5
done
check "no-early-exit flag: all 1024 answered by the final exit, as offline" \
	test "$(val ok "$out/exit2.out")" -eq 1024 -a "$(val early_exits "$out/exit2.out")" -eq 0 -a \
	"$(val mismatch "$out/exit2.out")" -eq 0
check "without the flag: all 1024 answered, some by an early exit ($(val early_exits "$out/exit0.out"))" \
	test "$(val ok "$out/exit0.out")" -eq 1024 -a "$(val early_exits "$out/exit0.out")" -gt 0
http_get /metrics "$out/metrics2"
e1=$(exitc "$out/metrics2" exit1 0) e2=$(exitc "$out/metrics2" exit2 1)
fin=$(exitc "$out/metrics2" final 2)
if [[ "$e1_0$e2_0$fin_0$e1$e2$fin" =~ ^[0-9]+$ ]]; then
	d1=$((e1 - e1_0)) d2=$((e2 - e2_0)) dfin=$((fin - fin_0))
else
	d1=x d2=x dfin=x	# a counter missing: the check fails
fi
check "/metrics: exits by name since the reload: exit1 $d1 + exit2 $d2 = the client's early answers, final $dfin" \
	test "$d1" != x -a "$(( ${d1/x/0} + ${d2/x/0} ))" -eq "$(val early_exits "$out/exit0.out")" -a \
	"$(( ${d1/x/0} + ${d2/x/0} + ${dfin/x/0} ))" -eq 2048
t1=$(sed -n 's/^exit = exit1://p' "$TMP/repo/fmnist-resnet/model.conf")
m1=$(metric "$out/metrics2" 'tailgate_exit_confidence{model="fmnist-resnet",exit="exit1",index="0"}')
check "/metrics: exit thresholds by name (exit1 $m1, model.conf ${t1:-missing})" \
	awk -v a="$m1" -v b="${t1:-x}" 'BEGIN { d = a - b; exit !(b != "x" && d < 1e-6 && d > -1e-6) }'

# A variant whose file is missing fails a reload cleanly: the event log names it, and the
# generation serving (2) keeps serving every request.
echo "variant = 9 missing" >>"$TMP/repo/fmnist-resnet/model.conf"
kill -HUP "$gw_pid"
for _ in $(seq 600); do	# at most 120 s
	grep -q 'reload failed' "$out/event.log" 2>/dev/null && break
	sleep 0.2
done
check "reload with a missing variant file fails, naming it; the old generation serves" \
	grep -q "reload failed, previous models kept: .*variant 9 'missing'" "$out/event.log"
ip netns exec "$NS_CL" timeout 120 "$BUILD/tests/gw_client" --gw "$IP_GW" \
	--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 64 \
	--splits 0,8 --dtypes u8 --block 64 --clients 1 --window 8 --deadline-us 10000000 \
	--time-limit 100 --client-base 5000 --flags 2 >"$out/after.out" 2>"$out/after.err"
http_get /metrics "$out/metrics3"
check "after the failed reload: 64 answered OK as offline, generation still 2" \
	test "$(val ok "$out/after.out")" -eq 64 -a "$(val mismatch "$out/after.out")" -eq 0 -a \
	"$(metric "$out/metrics3" tailgate_model_generation)" = 2

# The cheap load generator of scripts/bench_path.sh (gw_client --prebuilt 1): each tensor's
# request chunked once, sent under new client/request/session ids by sendmmsg, answers read
# by recvmmsg; split 4 as f32 is 70 datagrams a request. A closed loop of 32 for 2 s: every
# request it started is answered OK once, as offline (no early exits: flag 2).
ip netns exec "$NS_CL" timeout 120 "$BUILD/tests/gw_client" --gw "$IP_GW" \
	--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 64 \
	--splits 0,4 --dtypes u8,f32 --block 64 --clients 4 --closed 32 --duration 2 \
	--warmup 0 --deadline-us 10000000 --drain-ms 60000 --flags 2 --client-base 6000 \
	--prebuilt 1 >"$out/pre.out" 2>"$out/pre.err"
rc=$?
echo "  prebuilt closed loop: $(grep -E '^(sent|answered|ok|lost|mismatch|answers_again|nacks|sendmmsg_calls|recvmmsg_calls|cpu_us_per_answer) ' "$out/pre.out" | tr '\n' ' ')"
sed 's/^/    | /' "$out/pre.err" | head -n 5
pre_ok=$(val ok "$out/pre.out")
check "prebuilt closed loop (sendmmsg/recvmmsg): every request started answered OK once, as offline (status $rc)" \
	test "$rc" -eq 0 -a "$(val prebuilt "$out/pre.out")" = 1 -a "${pre_ok:-0}" -ge 32 -a \
	"${pre_ok:-0}" -eq "$(val sent "$out/pre.out")" -a "$(val lost "$out/pre.out")" -eq 0 -a \
	"$(val mismatch "$out/pre.out")" -eq 0 -a "$(val answers_again "$out/pre.out")" -eq 0
check "prebuilt closed loop: datagrams left by sendmmsg, its loop's CPU per answer reported" \
	awk -v s="$(val sendmmsg_calls "$out/pre.out")" -v r="$(val recvmmsg_calls "$out/pre.out")" \
	    -v c="$(val cpu_us_per_answer "$out/pre.out")" \
	    'BEGIN { exit !(s > 0 && r > 0 && c > 0) }'

gw_term
rc=$?
check "SIGTERM: tailgate exited 0 (status $rc)" test "$rc" -eq 0
check "access log: one OK line per request" \
	test "$(grep -c '"status":0' "$out/access.log")" -eq "$((IMAGES + 192 + 2048 + nvar * VIMAGES + 64 + ${pre_ok:-0}))"
echo "  elapsed: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')"
check_done
