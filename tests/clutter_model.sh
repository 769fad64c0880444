#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# models/clutter-resnet without torch: its data (scripts/make_clutter.py, numpy only) and the
# engine's tools on it (tailgate-model eval / calibrate-exits --eval, codec-table --eval).
#  1. The samples are a function of (seed, split, index): made twice, and a slice made on its
#     own, they are the same bytes; another seed gives other ones.
#  2. tailgate-model eval --eval scores the model and its bottleneck variant on 1,000 test
#     samples in fp32 and int8, each final exit far above chance (10%) and within 5 points of
#     the card's figure (model.conf's accuracy lines, on 5,000 samples; 1,000 of them differ
#     from that by sampling alone, 1.4 points at 1 sigma; the figure is deterministic, the
#     margin is for an engine built for another ISA);
#  3. the camera-like input: as u8 with the wire's LZ4 (codec-table) at least 95% of its
#     9,216 bytes stay, and split 11 sends a single datagram;
#  4. refusals: --fashion-mnist with --eval, --eval without --choose, samples of another
#     shape (exit 2 for usage, 1 with the shapes named).
# Usage: tests/clutter_model.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_clutter.XXXXXX)
. tests/check_lib.bash
trap 'rm -rf "$TMP"' EXIT
TM=$BUILD/tailgate-model
CT=$BUILD/bench/codec-table
MODEL=models/clutter-resnet
FM=${TG_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}

if [ ! -x "$TM" ] || [ ! -x "$CT" ]; then
	bad "$TM and $CT built (make)"
	check_done
	exit 1
fi
if [ ! -e "$FM/t10k-images-idx3-ubyte.gz" ] && [ ! -e "$FM/t10k-images-idx3-ubyte" ]; then
	echo "skip: no Fashion-MNIST in $FM (the samples are made from it)"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi
mk() {	# out, make_clutter options...
	local o=$1
	shift
	/usr/bin/python3 scripts/make_clutter.py --data-dir "$FM" --out "$TMP/$o" "$@" \
		>"$TMP/$o.out" 2>&1
}

# 1. Determinism.
mk a --split t10k --count 1000 && mk b --split t10k --count 1000 &&
	mk c --split t10k --first 100 --count 20 && mk d --split t10k --count 20 --seed 2
check "make_clutter.py wrote four sets (status $?)" test -f "$TMP/d/labels.npy"
/usr/bin/python3 - "$TMP" >"$TMP/det.out" 2>&1 <<'PY'
import sys
import numpy as np
t = sys.argv[1]
a, b = np.load(f"{t}/a/inputs.npy"), np.load(f"{t}/b/inputs.npy")
c, d = np.load(f"{t}/c/inputs.npy"), np.load(f"{t}/d/inputs.npy")
print("shape", "x".join(map(str, a.shape)), a.dtype)
print("same_twice", int(a.tobytes() == b.tobytes()))
print("slice_same", int(c.tobytes() == a[100:120].tobytes() and
      (np.load(f"{t}/c/labels.npy") == np.load(f"{t}/a/labels.npy")[100:120]).all()))
print("other_seed_differs", int(not np.array_equal(d, a[:20])))
print("range_ok", int(a.min() >= 0 and a.max() <= 1 and np.array_equal(np.round(a * 255), a * 255)))
PY
check "the samples are f32 [1000,1,96,96]" test "$(val shape "$TMP/det.out")" = 1000x1x96x96
check "made twice: the same bytes" test "$(val same_twice "$TMP/det.out")" = 1
check "samples 100..119 made alone (--first 100): the same bytes and labels" \
	test "$(val slice_same "$TMP/det.out")" = 1
check "another seed: other samples" test "$(val other_seed_differs "$TMP/det.out")" = 1
check "pixels are whole u8 steps in [0, 1] (a camera's 8 bits / 255)" \
	test "$(val range_ok "$TMP/det.out")" = 1

# 2. Accuracy: the engine on the committed files, against model.conf's figures.
card() {	# variant-line-or-base exit precision(2: fp32, 3: int8)
	if [ "$1" = base ]; then
		sed -n "s/^accuracy *= *$2:\(.*\)/\1/p" "$MODEL/model.conf" | cut -d: -f$(($3 - 1))
	else
		grep "^variant *= *$1 " "$MODEL/model.conf" | tr ' ,' '\n\n' |
			sed -n "s/^\(accuracy=\)\{0,1\}$2:\(.*\)/\2/p" | cut -d: -f$(($3 - 1))
	fi
}
for spec in "base $MODEL/model.onnx" "1 $MODEL/variants/bottleneck/model.onnx"; do
	set -- $spec
	for prec in 2 3; do
		dt=f32
		[ "$prec" = 3 ] && dt=int8
		"$TM" eval "$2" --eval "$TMP/a" --dtype "$dt" >"$TMP/ev.out" 2>&1
		got=$(awk '$1 == "exit" && $3 == "final" { v = $0; sub(/.*top-1 +/, "", v);
			sub(/%.*/, "", v); print v }' "$TMP/ev.out")
		want=$(card "$1" final "$prec")
		check "eval --eval ($1, $dt): final ${got:-?}% on 1000, card ${want:-?}%: over 40% and within 5 points" \
			bash -c "[ -n '$got' ] && [ -n '$want' ] && awk -v g='$got' -v w='$want' \
				'BEGIN { d = g - w; exit !(g > 40 && d <= 5 && d >= -5) }'"
	done
done

# 3. Bytes on the wire: the input is not squeezed by LZ4; the pooled split is one datagram.
"$CT" "$MODEL/model.onnx" --eval "$TMP/a" --images 100 --splits 0,11 >"$TMP/ct.out" 2>&1
pay=$(awk '$1 == 0 && $3 == "u8" { sub("payload=", "", $5); print $5 }' "$TMP/ct.out")
dg=$(awk '$1 == 11 && $3 == "u8" { sub("dgrams=", "", $7); print $7 }' "$TMP/ct.out")
check "u8 + LZ4 keeps ${pay:-?} of the input's 9216 bytes (>= 95%)" \
	num_ge "${pay:-?missing}" 8755
check "split 11 in u8: ${dg:-?} datagram per request" num_le "${dg:-?missing}" 1

# 4. Refusals.
"$TM" eval "$MODEL/model.onnx" --fashion-mnist --eval "$TMP/a" >"$TMP/r1.out" 2>&1
rc=$?
check "eval: --fashion-mnist and --eval together refused (status $rc)" \
	bash -c "[ $rc -eq 2 ] && grep -q 'name the data set: --fashion-mnist or --eval DIR' '$TMP/r1.out'"
"$TM" calibrate-exits "$MODEL/model.onnx" --eval "$TMP/a" >"$TMP/r2.out" 2>&1
rc=$?
check "calibrate-exits: --eval without --choose refused (status $rc)" \
	bash -c "[ $rc -eq 2 ] && grep -q 'and --choose DIR2' '$TMP/r2.out'"
"$TM" eval models/fmnist-resnet/model.onnx --eval "$TMP/a" >"$TMP/r3.out" 2>&1
rc=$?
check "eval: samples of another shape refused, the shapes named (status $rc)" \
	bash -c "[ $rc -eq 1 ] && grep -q '96' '$TMP/r3.out' && grep -q '28' '$TMP/r3.out'"
"$CT" models/fmnist-resnet/model.onnx --eval "$TMP/a" --images 10 >"$TMP/r4.out" 2>&1
rc=$?
check "codec-table: samples of another size refused (status $rc)" \
	bash -c "[ $rc -eq 1 ] && grep -q \"the model input's 784 values\" '$TMP/r4.out'"
check_done
