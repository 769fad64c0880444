#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# int8 served end to end: tailgate serves the SHIPPED model with "dtype = int8" (its
# model.conf otherwise as shipped, its model.calib) on af_packet in a network namespace;
# gw_client sends the Fashion-MNIST test images from a second namespace, image i at split
# (0, 4, 6, 8)[i % 4] in wire dtype (f32, f16, s8, u8)[(i / 4) % 4], heads in f32 as a device
# runs them. The expected class of every request is the offline int8 engine's on the very
# bytes sent: an int8 reference tail (gw_client --calib, the same calibration) fed by
# kern_plan_load_rows, the gateway's own dequantizing copy. Checked: the gateway says it
# serves int8 (startup summary and /v1/models), every request answered OK, every prediction
# equal to the offline int8 one (top-2 near ties within 1e-3 counted apart), the accuracy
# against the labels within 0.5 points of `tailgate-model eval --dtype int8` on the same
# images (the wire's own quantization costs little), /metrics counting them; then
# tailgate-bench --calib (offline answers in int8) agrees with every answer; SIGTERM exit 0.
# Under SAN=1 (BUILD ending in /san) it sends the first 1,000 images only, and says so.
# Usage: tests/gateway_int8.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgi8$$ NET=10.88 SUBNET=0
TMP=$(mktemp -d /tmp/tg_gwi8.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

FM=/usr/share/datasets/fashion-mnist
MODEL=models/fmnist-resnet
IMAGES=${GW_INT8_IMAGES:-10000}
if [[ "$BUILD" == */san || "$BUILD" == san ]]; then
	IMAGES=${GW_INT8_IMAGES:-1000}
	echo "note: sanitizer build: the first $IMAGES images only (the same checks)"
fi
gw_require "$BUILD/tailgate" "$BUILD/tests/gw_client" "$BUILD/tailgate-model" \
	"$BUILD/tailgate-bench"

# The shipped model.conf with its dtype line set to int8 (whatever it ships with).
gw_repo "$TMP/repo"
sed -i 's/^dtype *=.*/dtype = int8/' "$TMP/repo/fmnist-resnet/model.conf"
# Every answer is checked against the int8 engine's final exit: the shipped early exits off.
sed -i '/^exit = /d' "$TMP/repo/fmnist-resnet/model.conf"
check "model.conf of the repository says dtype = int8" \
	grep -q '^dtype = int8$' "$TMP/repo/fmnist-resnet/model.conf"
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
mkdir -p "$out"
# The offline int8 engine's accuracy on the same images, final exit (the card's int8 column).
"$BUILD/tailgate-model" eval "$MODEL/model.onnx" --fashion-mnist --dtype int8 \
	--calib "$MODEL/model.calib" --limit "$IMAGES" --threads 1 >"$out/eval.out" 2>&1
eval_acc=$(awk '$3 == "final" { sub("%", "", $6); print $6 / 100 }' "$out/eval.out")
echo "  offline: $(grep final "$out/eval.out")"
check "tailgate-model eval --dtype int8 scored the final exit (${eval_acc:-none})" \
	test -n "$eval_acc"

if ! ns_up; then
	bad "namespaces"
	check_done
	exit 1
fi
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2; then
	bad "tailgate started on the shipped repository with dtype = int8"
	check_done
	exit 1
fi
ok "tailgate started on the shipped repository with dtype = int8"
check "startup summary: fmnist-resnet served in int8" \
	grep -q '^model fmnist-resnet: id 1, int8,' "$out/gw.err"
http_get /v1/models "$out/models.json"
check "/v1/models: precision int8" grep -q '"precision":"int8"' "$out/models.json"

# 8 clients x 8 open: 64 in flight, a full batch. Deadlines of 10 s: this test is about the
# answers, not the timing.
ip netns exec "$NS_CL" timeout 170 "$BUILD/tests/gw_client" --gw "$IP_GW" \
	--model "$MODEL/model.onnx" --calib "$MODEL/model.calib" --model-id 1 --fmnist "$FM" \
	--images "$IMAGES" --splits 0,4,6,8 --dtypes f32,f16,s8,u8 --block 512 --clients 8 \
	--window 8 --deadline-us 10000000 --time-limit 150 \
	>"$out/client.out" 2>"$out/client.err"
rc=$?
echo "  client: $(grep -E '^(ok|mismatch|close|failed|lost|accuracy_[a-z0-9]*|offline_accuracy) ' \
	"$out/client.out" | tr '\n' ' ')" | fold -s -w 100
sed 's/^/    | /' "$out/client.err" | head -n 10
check "gw_client finished cleanly (status $rc)" test "$rc" -eq 0
check "$IMAGES requests answered OK" test "$(val ok "$out/client.out")" -eq "$IMAGES"
check "none failed, none lost" \
	test "$(val failed "$out/client.out")" -eq 0 -a "$(val lost "$out/client.out")" -eq 0
check "predictions equal the offline int8 engine's on the same bytes (mismatch $(val mismatch "$out/client.out"), near ties $(val close "$out/client.out"))" \
	test "$(val mismatch "$out/client.out")" -eq 0
check "near ties are rare (at most 0.5%)" \
	test "$(val close "$out/client.out")" -le $((IMAGES / 200))
acc=$(val accuracy_all "$out/client.out")
check "accuracy vs the labels through the gateway ($acc) within 0.5 points of eval's int8 ($eval_acc)" \
	awk -v a="$acc" -v e="${eval_acc:-x}" \
	'BEGIN { exit !(a ~ /^[0-9.]+$/ && e ~ /^[0-9.]+$/ && a - e <= 0.005 && e - a <= 0.005) }'
for d in f32 f16 s8 u8; do
	a=$(val "accuracy_$d" "$out/client.out")
	check "accuracy of the $d quarter vs the labels: $a (>= 0.89)" num_ge "$a" 0.89
done

if [ -n "$gw_port" ]; then
	http_get /metrics "$out/metrics"
	served=$(metric "$out/metrics" 'tailgate_requests_total{model="fmnist-resnet",status="ok"}')
	check "/metrics counts the $IMAGES OK requests (got $served)" test "$served" -ge "$IMAGES"
else
	bad "control plane port printed"
fi

# tailgate-bench --calib: its offline answers in int8 too, so its agreement check holds
# against an int8 gateway (300 requests at 60/s, every split, u8 and f32 on the wire; 5 s
# deadlines and a 1 s request timer: this checks answers, not timing).
jv() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["result"]
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$2" "$1" 2>/dev/null || echo -1; }
ip netns exec "$NS_CL" timeout 240 "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
	--model "$MODEL" --calib "$MODEL/model.calib" --model-id 1 --images 300 --threads 1 \
	--devices 100 --rate 60 --warmup 0 --duration 0 --requests 300 --no-cache \
	--mix 'split=0,4,6,8;dtype=u8,f32;uplink=50000-200000kbps;deadline=5s' \
	--timeout-ms 1000 --seed 7 --quiet --check --json "$out/bench.json" \
	>"$out/bench.out" 2>"$out/bench.err"
rc=$?
grep -E '^(ok|agreement|accuracy|offline)' "$out/bench.out" | sed 's/^/    | /'
sed 's/^/    ! /' "$out/bench.err" | tail -n 5
check "tailgate-bench --calib against the int8 gateway: --check passed (status $rc)" test "$rc" -eq 0
check "tailgate-bench: all 300 answered OK, all agreeing with its int8 offline answers" \
	test "$(jv ok "$out/bench.json")" -eq 300 -a "$(jv agree "$out/bench.json")" -eq 300

gw_term
rc=$?
check "SIGTERM: tailgate exited 0 (status $rc)" test "$rc" -eq 0
check "access log: one OK line per request" \
	test "$(grep -c '"status":0' "$out/access.log")" -eq "$((IMAGES + 300))"
check_done
