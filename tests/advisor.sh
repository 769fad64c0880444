#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Integration: the advisor (README, "The advisor"; docs/protocol.md 7.3) through the daemon,
# over veth in 10.91.0.0/24, serving the shipped fmnist-resnet (base, sparse and nob1
# variants; splits 0, 4, 6, 8).
#  1. tailgate-bench --follow-advice with two device classes, every device starting at split
#     4: slow ones (100 MFLOP/s, 100 Mbit/s: a head at split 4 takes 0.3 s) are moved to the
#     input; fast ones (1 TFLOP/s, 1 Gbit/s: split 8's 89 MFLOP take 0.09 ms, and it leaves
#     almost no tail to queue for) to the deepest split, where slow ones never go.
#  2. A device whose floor (75%) the sparse variant meets (91.35% in int8 since its retraining) and nob1 never
#     (13.87%), with the latency goal (so exit policies are advised too), sending the base's
#     input from a slow processor (10 MFLOP/s: any head costs it seconds, so only the inputs
#     compete): advised the lighter variant while the gateway is idle, and while it is
#     loaded far past its capacity (the advice's congestion term, README "The advisor":
#     before it, the advice went back to the base under load, 31 of 31 and 20 of 32 answers);
#     never nob1. A device without a floor, probed under the same load, is never advised
#     another variant; a fast one (1 TFLOP/s, 1 Gbit/s) is advised the deepest split: under
#     load the choice rests on the wait each tail's share of work brings, not on split 8's
#     half millisecond less of tail that decides it idle (and that a preempted worker's
#     inflated estimate could swamp: section 1's fast devices are a figure for that reason).
#  3. Energy goal (HELLO energy profile): advice flags come back, NONE_FITS for a floor above
#     every variant with no advice; a floor between the accuracy with exits (91.91%) and
#     without (92.32%) is advised the final exit only (NO_EARLY_EXIT).
#  4. The oracle over (variant, split) (tailgate-bench --oracle): a class with a floor of 85%
#     (the sparse variant's inputs are built; nob1's are not, below it) and one without;
#     the advised run sends the first from the sparse variant and never the second; the
#     oracle runs every admitted (variant, split), the class without a floor is held only
#     against its own variant's, and so is the best single choice for all; the best single
#     split of the base alone (a fixed design without variants) is reported too.
# What is checked holds on a busy machine: where devices end up, not how fast they got there.
# Namespaces, processes and files go away on exit, whatever happened.
# Usage: tests/advisor.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgadv$$ NET=10.91 SUBNET=0
TMP=$(mktemp -d /tmp/tg_advisor.XXXXXX)
. tests/gw_lib.bash
load_pid=
cleanup() {
	[ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null && wait "$load_pid" 2>/dev/null
	gw_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gw_require "$BUILD/tailgate" "$BUILD/tailgate-bench" "$BUILD/tests/gw_client"
FM=${TG_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$FM/t10k-images-idx3-ubyte.gz" ] && [ ! -e "$FM/t10k-images-idx3-ubyte" ]; then
	echo "skip: no Fashion-MNIST in $FM"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

GW_DTYPE=int8 gw_repo "$TMP/repo"
# The expectations below are worked out for the base and its variants 1 (sparse) and 2
# (nob1): the variants added later (bottleneck, drop-trained) are other choices the
# advisor may rightly prefer, so this test serves the catalog it was written for.
sed -i '/^variant *= *[3-9]/d; /^variant *= *[1-9][0-9]/d' "$TMP/repo/fmnist-resnet/model.conf"
gw_advice_conf "$TMP/tailgate.conf" "$TMP/repo"
out=$TMP/run
mkdir -p "$out"
ns_up_or_exit
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 1; then
	bad "tailgate started"
	check_done
	exit 1
fi
ok "tailgate started with models/fmnist-resnet and its variants"

# 1. Slow devices to the input, fast ones to the deepest split. Closed loop, 8 in flight
# over 40 devices: the first request of each device is from split 4, the rest as advised.
ip netns exec "$NS_CL" timeout 300 "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
	--model models/fmnist-resnet --model-id 1 --images 500 --threads 1 \
	--cache "$TMP/cache" --calib models/fmnist-resnet/model.calib \
	--devices 40 --concurrency 8 --warmup 0 --duration 0 --requests 400 \
	--mix 'split=4,0:0.0001,8:0.0001;dtype=s8;deadline=5s' --timeout-ms 2000 \
	--class slow:100:100mbps --class fast:1000000:1gbps --follow-advice --seed 3 --quiet \
	>"$out/move.out" 2>"$out/move.err"
rc=$?
grep -E '^(advised|run) ' "$out/move.out" | sed 's/^/    | /'
sed 's/^/    ! /' "$out/move.err" | tail -n 3
slow0=$(adv_share "$out/move.out" slow 0) fast8=$(adv_share "$out/move.out" fast 8)
check "bench with classes and --follow-advice ran (status $rc)" test "$rc" -eq 0
check "slow devices moved to the input: $slow0% of their requests from split 0 (> 60%)" \
	num_ge "$slow0" 60
# How many of the fast ones go deep depends on the gateway's online estimates: split 8 wins
# by the tail it leaves to the gateway (~0.5 ms at batch 1), and a worker preempted on a busy
# machine inflates that estimate now and then (runs at load 15: 84-89% from split 8, once 19%).
slow8=$(adv_share "$out/move.out" slow 8)
# So the fast devices' share is a figure, not a check (speed is never pass/fail: one run of
# three at load 2 on 2026-12-07 gave 0%); what must hold is that no slow device goes deep.
# That fast devices go deep is checked in 2, under load, where it rests on the wait each
# tail's share of work brings (the congestion term), not on half a millisecond.
echo "  figure: fast devices sent $fast8% of their requests from split 8"
check "slow devices never advised the deepest split: $slow8% of their requests from split 8" \
	num_le "$slow8" 0

# 2. The lighter variant for a device whose floor it meets; never the one below it.
probe() {	# label [client-base profile]
	ip netns exec "$NS_CL" timeout 60 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 32 \
		--splits 0 --dtypes s8 --block 32 --clients 1 --window 1 --deadline-us 10000000 \
		--time-limit 50 --client-base "${2:-2100}" --profile "${3:-10,100000,0,0,7500,0,0,1}" \
		>"$out/var_$1.out" 2>&1
	echo "  advice, $1: $(grep -E '^(ok|advice_(variant|split)_[0-9]*|advice_none) ' "$out/var_$1.out" | tr '\n' ' ')"
}
probe idle
v1=$(val advice_variant_1 "$out/var_idle.out")
check "idle gateway: the lighter variant advised ($v1 of 32, at least half)" \
	test "${v1:-0}" -ge 16 -a "$(val ok "$out/var_idle.out")" -eq 32
# Load: open loop at the input of the base variant, far more than one worker serves.
ip netns exec "$NS_CL" timeout 120 "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
	--model models/fmnist-resnet --model-id 1 --images 500 --threads 1 \
	--cache "$TMP/cache" --calib models/fmnist-resnet/model.calib \
	--devices 400 --rate 6000 --warmup 0 --duration 40 --mix 'split=0;dtype=s8;deadline=5s' \
	--timeout-ms 2000 --seed 5 --quiet >"$out/load.out" 2>"$out/load.err" &
load_pid=$!
# Probe once its sessions are open and its arrivals have run 3 s (at most 60 s of waiting).
for _ in $(seq 120); do
	grep -q 'sessions open' "$out/load.err" 2>/dev/null && break
	sleep 0.5
done
sleep 3
probe loaded_nofloor 2300 10,100000,0,0,0,0,0,1 &
nofloor_pid=$!
probe loaded_fast 2400 1000000,1000000,0,0,0,0,0,1 &
fast_pid=$!
probe loaded
wait "$nofloor_pid" "$fast_pid"
kill "$load_pid" 2>/dev/null
wait "$load_pid" 2>/dev/null
load_pid=
lv1=$(val advice_variant_1 "$out/var_loaded.out")
lv0=$(sed -n 's/^advice_variant_0 //p' "$out/var_loaded.out")
check "loaded gateway: the lighter variant advised (${lv1:-none} of 32, at least half; base ${lv0:-0})" \
	test "${lv1:-0}" -ge 16
check "never the variant below the floor (nob1)" \
	test "$(cat "$out/var_idle.out" "$out/var_loaded.out" | grep -c '^advice_variant_2 ')" -eq 0
nv0=$(val advice_variant_0 "$out/var_loaded_nofloor.out")
nother=$(grep -cE '^advice_variant_[1-9]' "$out/var_loaded_nofloor.out")
check "loaded gateway, no floor: advised its own variant only (${nv0:-none} of 32 the base, $nother lines of others)" \
	test "${nv0:-0}" -ge 1 -a "$nother" -eq 0
# Fast devices go deep, decided by far more than a tail's half millisecond: under this load
# the input's estimate carries the wait at its full share, split 8's at its small one.
fs8=$(val advice_split_8 "$out/var_loaded_fast.out")
fo=$(grep -cE '^advice_variant_[1-9]' "$out/var_loaded_fast.out")
check "loaded gateway: a fast device without a floor advised the deepest split (${fs8:-none} of 32, at least half), its own variant only" \
	test "${fs8:-0}" -ge 16 -a "$fo" -eq 0

# 3. The energy profile's advice flags.
flags() {	# label floor
	ip netns exec "$NS_CL" timeout 60 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 16 \
		--splits 0 --dtypes s8 --block 16 --clients 1 --window 1 --deadline-us 10000000 \
		--time-limit 50 --client-base 2200 --profile "1000,10000,1000,0,$2,10,100000,2" \
		>"$out/fl_$1.out" 2>&1
	echo "  advice, $1: $(grep -E '^(ok|advice_[a-z0-9_]*) ' "$out/fl_$1.out" | tr '\n' ' ')"
}
flags high 9500
check "floor 95%: no advice, NONE_FITS said (16 of 16)" \
	test "$(val advice_none "$out/fl_high.out")" -eq 16 -a \
	"$(val advice_none_fits "$out/fl_high.out")" -eq 16 -a "$(val ok "$out/fl_high.out")" -eq 16
flags mid 9200
check "floor 92% (above 91.91% with exits): advised the final exit only, and it fits (16 of 16)" \
	test "$(val advice_none "$out/fl_mid.out")" -eq 0 -a \
	"$(val advice_none_fits "$out/fl_mid.out")" -eq 0 -a \
	"$(val advice_no_early_exit "$out/fl_mid.out")" -eq 16
flags low 9000
check "floor 90%: exits stay on (no NO_EARLY_EXIT in 16)" \
	test "$(val advice_none "$out/fl_low.out")" -eq 0 -a \
	"$(val advice_no_early_exit "$out/fl_low.out")" -eq 0

# 4. The oracle over (variant, split), the gateway idle but for the bench's own 4 in flight.
ip netns exec "$NS_CL" timeout 600 "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
	--model "$TMP/repo/fmnist-resnet" --model-id 1 --images 200 --threads 1 \
	--cache "$TMP/cache" --calib models/fmnist-resnet/model.calib \
	--devices 20 --concurrency 4 --warmup 0 --duration 0 --requests 80 \
	--mix 'split=0,4;dtype=s8;deadline=5s' --timeout-ms 2000 \
	--class floor:1000:100mbps:0:0:85 --class none:1000:100mbps --follow-advice --oracle \
	--seed 7 --quiet >"$out/oracle.out" 2>"$out/oracle.err"
rc=$?
grep -E '^(advised|oracle|  [a-z]+ |best single)' "$out/oracle.out" | sed 's/^/    | /'
sed 's/^/    ! /' "$out/oracle.err" | grep -v 'building\|sessions open' | tail -n 4
check "bench --oracle with a floor class ran (status $rc)" test "$rc" -eq 0
check "the sparse variant's inputs built, nob1's not (below every floor)" \
	sh -c "grep -q 'variant 1 (sparse): inputs' '$out/oracle.err' && ! grep -q 'variant 2 ' '$out/oracle.err'"
fl_v1=$(awk '$1 == "advised" && $2 == "floor"' "$out/oracle.out" | grep -c ' v1/')
no_v1=$(awk '$1 == "advised" && $2 == "none"' "$out/oracle.out" | grep -c ' v1/')
check "advised run: the floor class sent from the sparse variant ($fl_v1), the other never ($no_v1)" \
	test "$fl_v1" -eq 1 -a "$no_v1" -eq 0 -a "$(awk '$1 == "advised"' "$out/oracle.out" | wc -l)" -eq 3
# Fixed phases: the base's splits 0 and 4, the sparse variant's every served split 0, 4, 6, 8.
check "the oracle ran every admitted (variant, split): $(grep -c '^split [0-9]* *class' "$out/oracle.out") of the base, $(grep -c '^v1/split [0-9]* *class' "$out/oracle.out") of the sparse variant" \
	test "$(grep -c '^split [0-9]* *class' "$out/oracle.out")" -eq 2 -a \
	"$(grep -c '^v1/split [0-9]* *class' "$out/oracle.out")" -eq 4
check "oracle: the floor class held against an admitted choice, the other against its own variant only" \
	sh -c "grep -qE '^  floor +[0-9.]+ / +[0-9.]+ +(v1/)?split [0-9]' '$out/oracle.out' &&
	       grep -qE '^  none +[0-9.]+ / +[0-9.]+ +split [0-9]' '$out/oracle.out'"
check "best single fixed choice for all: one the class without a floor admits (the base's)" \
	grep -qE '^best single fixed choice for all: split [0-9]+ ' "$out/oracle.out"
check "best single fixed split of the devices' variant: one of the base's, against the advised run" \
	grep -qE "^best single fixed split of the devices' variant for all: split [0-9]+ \(p50 [0-9.]+ ms, [0-9.]+ mJ/request\); advised: p50 [0-9.]+ ms" "$out/oracle.out"

gw_term
check_done
