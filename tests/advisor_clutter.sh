#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Integration: the advisor's choice on a camera-like model (models/clutter-resnet: a 96x96
# frame, 9,216 bytes as u8 that LZ4 cannot shrink, and its 64-value pooled tensor at split 11;
# README, "The advisor"), through the daemon over veth in 10.92.0.0/24. On this model the
# split a device is advised depends on the device, by margins no load can swamp:
#  1. tailgate-bench --follow-advice, two device classes, every device starting at split 7:
#     "slowwifi" (100 MFLOP/s, 100 Mbit/s): the input costs 0.7 ms of upload, split 11's
#     head 171 ms: moved to the input and never to split 11; "fastcell" (10 GFLOP/s,
#     1 Mbit/s): the input costs 74 ms of upload, split 11 1.7 ms of head and one datagram:
#     moved to split 11 and never to the input.
#  2. A device with an accuracy floor both variants meet (so it may be advised across them),
#     200 MFLOP/s on 1 Mbit/s, sending the base's input: the bottleneck variant's split 8
#     (5 MFLOP of encoder, then 576 bytes: about 30 ms) beats the base's input (74 ms of
#     upload) and its split 11 (86 ms of head) by over 40 ms: advised variant 1, split 8,
#     in every answer.
# What is checked holds on a busy machine: where devices are sent, with margins of tens of
# milliseconds against a gateway estimate of a few; no speed. Namespaces, processes and files
# go away on exit, whatever happened.
# Usage: tests/advisor_clutter.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgadc$$ NET=10.92 SUBNET=0
TMP=$(mktemp -d /tmp/tg_advclut.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

MODEL=models/clutter-resnet
gw_require "$BUILD/tailgate" "$BUILD/tailgate-bench" "$BUILD/tests/gw_client"
FM=${TG_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$FM/t10k-images-idx3-ubyte.gz" ] && [ ! -e "$FM/t10k-images-idx3-ubyte" ]; then
	echo "skip: no Fashion-MNIST in $FM (the samples are made from it)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

# 200 test samples of the model's data set (numpy, no torch): the bench's inputs with labels.
if ! gw_clutter_samples "$TMP/samples" 200 "$FM"; then
	sed 's/^/    | /' "$TMP/samples.log" | tail -n 4
	bad "scripts/make_clutter.py wrote the samples"
	check_done
	exit 1
fi
ok "200 Cluttered Fashion-MNIST test samples made"

gw_model_repo "$TMP/repo" "$MODEL"
gw_advice_conf "$TMP/tailgate.conf" "$TMP/repo"
out=$TMP/run
mkdir -p "$out"
ns_up_or_exit
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 1; then
	bad "tailgate started"
	check_done
	exit 1
fi
ok "tailgate started with $MODEL and its bottleneck variant"
id=$(sed -n 's/^id *= *\([0-9]*\).*/\1/p' "$MODEL/model.conf")

# 1. Closed loop, 8 in flight over 20 devices, 300 requests; every device's first request
# from split 7, the rest as advised.
ip netns exec "$NS_CL" timeout 300 "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
	--model "$MODEL" --model-id "$id" --inputs "$TMP/samples" --threads 1 \
	--cache "$TMP/cache" --calib "$MODEL/model.calib" \
	--devices 20 --concurrency 8 --warmup 0 --duration 0 --requests 300 \
	--mix 'split=7,0:0.0001,11:0.0001;dtype=u8;deadline=5s' --timeout-ms 4000 \
	--class slowwifi:100:100mbps --class fastcell:10000:1mbps --follow-advice --seed 3 \
	--quiet >"$out/move.out" 2>"$out/move.err"
rc=$?
grep -E '^(advised|run) ' "$out/move.out" | sed 's/^/    | /'
sed 's/^/    ! /' "$out/move.err" | tail -n 3
check "bench with classes and --follow-advice ran (status $rc)" test "$rc" -eq 0
s0=$(adv_share "$out/move.out" slowwifi 0) s11=$(adv_share "$out/move.out" slowwifi 11)
f0=$(adv_share "$out/move.out" fastcell 0) f11=$(adv_share "$out/move.out" fastcell 11)
check "slow device on a fast uplink moved to the input: $s0% of its requests from split 0 (> 60%)" \
	num_ge "$s0" 60
check "slow device never advised split 11 ($s11%)" num_le "$s11" 0
check "fast device on a slow uplink moved to split 11: $f11% of its requests from there (> 60%)" \
	num_ge "$f11" 60
check "fast device never advised the input ($f0%)" num_le "$f0" 0

# 2. Across variants: a floor both meet. 2 samples, 8 requests (split 0 and 11, f32 and u8):
# fewer than the 4 messages of 8+ datagrams after which the gateway would measure this
# client's uplink (a veth, not 1 Mbit/s) instead of taking the declared one.
floor=$(awk '/^variant *= *1 /' "$MODEL/model.conf" | sed 's/.*final:\([0-9.]*\).*/\1/')
base=$(sed -n 's/^accuracy_bp *= *\([0-9]*\).*/\1/p' "$MODEL/model.conf")
# 10 points under the less accurate of the two finals (1/100 %), exits off.
fl=$(awk -v a="$floor" -v b="$base" 'BEGIN { m = a * 100 < b ? a * 100 : b; printf "%d", m - 1000 }')
ip netns exec "$NS_CL" timeout 60 "$BUILD/tests/gw_client" --gw "$IP_GW" \
	--model "$MODEL/model.onnx" --model-id "$id" --input "$TMP/samples/inputs.npy" \
	--split 11 --samples 2 --requests 8 --clients 1 --window 1 --time-limit 50 \
	--client-base 2300 --profile "200,1000,1000,0,$fl" >"$out/var.out" 2>&1
rc=$?
echo "  advice, floor $fl: $(grep -E '^(ok|advice_[a-z0-9_]*) ' "$out/var.out" | tr '\n' ' ')"
check "gw_client: 8 answered OK as the engine answers offline (status $rc)" \
	test "$rc" -eq 0 -a "$(val ok "$out/var.out")" -eq 8
check "advised the bottleneck variant (id 1) in every answer" \
	test "$(val advice_variant_1 "$out/var.out")" -eq 8
check "advised its split 8 (576 bytes) in every answer" \
	test "$(val advice_split_8 "$out/var.out")" -eq 8

gw_term
check_done
