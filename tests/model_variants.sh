#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tailgate-model's variant commands from the command line, on the PyTorch fixtures
# tests/fixtures/resnet_drop_* (scripts/make_fixtures.py; no torch needed here) and the
# shipped model:
#   blocks   lists the three residual Adds, the strided one not droppable, with a reason;
#   drop     refuses a block that is not droppable by name (exit 2), and unknown blocks, bad
#            arguments and a file that is not ONNX with a message, never a crash; the file it
#            writes, run by 'tailgate-model run', equals PyTorch's model with those residual
#            branches removed (drops.txt), for every drop set and fixture, passes
#            onnx.checker and, with onnxruntime-node installed, gives the same in ONNX Runtime;
#   adapt    prints the frontier, exhaustive and greedy, on --eval DIR data;
#   drop     of the shipped model writes OUT.calib (its model.calib's kept tensors), and
#            the file runs in int8 on it;
#   calibrate-exits  on the shipped model (a few images), in fp32 and int8 at once: both
#            reported; the exit lines it writes replace the model.conf's own and keep every
#            other line.
# Usage: tests/model_variants.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_modvar.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash
TM=$BUILD/tailgate-model
[ -x "$TM" ] || { echo "FAIL $TM not built"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

# Elementwise |a - b| <= 1e-4 + 1e-3 |b| (the fixtures' tolerance), numpy.
close() {	# got.npy want.npy
	/usr/bin/python3 -c 'import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
sys.exit(0 if a.shape == b.shape and np.all(np.abs(a - b) <= 1e-4 + 1e-3 * np.abs(b)) else 1)' "$1" "$2"
}

# ONNX Runtime (onnxruntime-node, scripts/deps.sh) runs the dropped files too, when installed.
ort=no
if command -v node >/dev/null && [ -d build/peer/node_modules/onnxruntime-node ]; then
	ort=yes
else
	echo "skip ONNX Runtime runs: no node or build/peer/node_modules/onnxruntime-node"
	skip=$((skip + 1))
fi
for fx in resnet_drop_op11 resnet_drop_op17 resnet_drop_bnfolded_op11 resnet_drop_bnfolded_op17; do
	d=tests/fixtures/$fx
	"$TM" blocks "$d/model.onnx" >"$TMP/blocks.out" 2>&1
	check "$fx: blocks lists 0 and 2 droppable, 1 (strided) not" \
		awk '$1 == 0 && / yes$/ { a++ } $1 == 1 && / no: no identity shortcut/ { b++ }
		     $1 == 2 && / yes$/ { c++ } END { exit !(a == 1 && b == 1 && c == 1) }' \
		"$TMP/blocks.out"
	"$TM" drop "$d/model.onnx" --blocks /layer2/layer2.0/Add --output "$TMP/x.onnx" \
		>"$TMP/refuse.out" 2>&1
	rc=$?
	check "$fx: drop refuses the strided block by name (exit $rc)" \
		test "$rc" -eq 2 -a ! -e "$TMP/x.onnx" -a \
		"$(grep -c 'block 1 "/layer2/layer2.0/Add" is not droppable' "$TMP/refuse.out")" -eq 1
	k=0
	while read -r _ names npy; do
		"$TM" drop "$d/model.onnx" --blocks "$names" --output "$TMP/d$k.onnx" \
			>"$TMP/drop$k.out" 2>&1 &&
		"$TM" run "$TMP/d$k.onnx" --split 0 --input "$d/input.npy" \
			--output "$TMP/y$k.npy" >/dev/null 2>"$TMP/run$k.err"
		check "$fx: drop $names runs as PyTorch without those branches" \
			close "$TMP/y$k.npy" "$d/$npy"
		check "$fx: drop $names passes onnx.checker (full_check)" /usr/bin/python3 -c \
			'import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' \
			"$TMP/d$k.onnx"
		if [ "$ort" = yes ]; then
			node tests/ort_run.js "$TMP/d$k.onnx" "$d/input.npy" "$TMP/o$k.npy" 2>"$TMP/ort$k.err"
			check "$fx: drop $names runs in ONNX Runtime as PyTorch without those branches" \
				close "$TMP/o$k.npy" "$d/$npy"
		fi
		k=$((k + 1))
	done <"$d/drops.txt"
	check "$fx: three drop sets checked" test "$k" -eq 3
done

d=tests/fixtures/resnet_drop_op17
for args in "--blocks 9" "--blocks 0,,2" "--blocks 0,0" "--output $TMP/z.onnx" "--blocks 0"; do
	"$TM" drop "$d/model.onnx" $args >"$TMP/bad.out" 2>&1
	rc=$?
	check "drop $args: usage error, exit 2 ($rc), a message" \
		test "$rc" -eq 2 -a -s "$TMP/bad.out"
done
"$TM" drop "$TMP/none.onnx" --blocks 0 --output "$TMP/z.onnx" >"$TMP/bad.out" 2>&1
check "drop of a missing file: exit 1, named" \
	test "$?" -eq 1 -a "$(grep -c none.onnx "$TMP/bad.out")" -ge 1
head -c 3000 /dev/urandom >"$TMP/junk.onnx"
"$TM" drop "$TMP/junk.onnx" --blocks 0 --output "$TMP/z.onnx" >"$TMP/bad.out" 2>&1
check "drop of a file that is not ONNX: exit 1" test "$?" -eq 1 -a ! -e "$TMP/z.onnx"

# --eval DIR: the fixture's three inputs labelled with the model's own classes (100%).
mkdir -p "$TMP/ev"
/usr/bin/python3 -c 'import sys, numpy as np
np.save(sys.argv[2] + "/inputs.npy", np.load(sys.argv[1] + "/input.npy"))
np.save(sys.argv[2] + "/labels.npy", np.load(sys.argv[1] + "/output_0.npy").argmax(1).astype(np.int64))' \
	"$d" "$TMP/ev"
"$TM" blocks "$d/model.onnx" --eval "$TMP/ev" >"$TMP/blocks_ev.out" 2>&1
check "blocks --eval: the model scores 100% on its own classes" \
	grep -q 'final exit top-1 100.00% on 3 samples' "$TMP/blocks_ev.out"
"$TM" adapt "$d/model.onnx" --eval "$TMP/ev" >"$TMP/adapt.out" 2>&1
check "adapt: exhaustive over 4 sets; both blocks dropped (the fewest FLOPs) on the frontier" \
	test "$(grep -c 'exhaustive (every subset), 4 sets evaluated on 3 samples' "$TMP/adapt.out")" \
	-eq 1 -a "$(awk '$1 == "0,2"' "$TMP/adapt.out" | wc -l)" -eq 1
"$TM" adapt "$d/model.onnx" --eval "$TMP/ev" --greedy >"$TMP/greedy.out" 2>&1
check "adapt --greedy: 1 + 2 + 1 sets evaluated" \
	grep -q 'greedy backward elimination, 4 sets evaluated' "$TMP/greedy.out"
"$TM" adapt "$d/model.onnx" >"$TMP/bad.out" 2>&1
check "adapt without data: exit 2" test "$?" -eq 2
sed 's/^/    | /' "$TMP/adapt.out"

# calibrate-exits on the shipped model: a few images, written into a copy of model.conf.
FM=/usr/share/datasets/fashion-mnist
if [ -d "$FM" ]; then
	cp models/fmnist-resnet/model.conf "$TMP/model.conf"
	printf 'exit = exit1:0.99\n' >>"$TMP/model.conf"
	"$TM" calibrate-exits models/fmnist-resnet/model.onnx --fashion-mnist --calib-images 500 \
		--limit 500 --max-loss 1 --dtype f32,int8 --write "$TMP/model.conf" >"$TMP/ce.out" 2>&1
	rc=$?
	sed 's/^/    | /' "$TMP/ce.out"
	check "calibrate-exits: done (exit $rc), test-set report printed for fp32 and int8" \
		test "$rc" -eq 0 -a "$(grep -c '^fp32, test set (500 images)' "$TMP/ce.out")" -eq 1 -a \
		"$(grep -c '^int8, test set (500 images)' "$TMP/ce.out")" -eq 1
	check "calibrate-exits --write: its exit lines replaced the old ones, the rest kept" \
		test "$(grep -c '^exit = ' "$TMP/model.conf")" -eq \
		"$(grep -c '^exit = ' "$TMP/ce.out")" -a \
		"$(grep -c 'exit1:0.99$' "$TMP/model.conf")" -eq 0 -a \
		"$(grep -v -e '^exit = ' -e '^# exits:' "$TMP/model.conf" | cmp - \
		   <(grep -v -e '^exit = ' -e '^# exits:' models/fmnist-resnet/model.conf) && echo same)" = same
	"$TM" drop models/fmnist-resnet/model.onnx --blocks 0 --output "$TMP/nob.onnx" \
		>"$TMP/nob.out" 2>&1
	check "drop of the shipped model: OUT.calib written beside it from model.calib" \
		test "$?" -eq 0 -a -s "$TMP/nob.calib" -a "$(grep -c "wrote $TMP/nob.calib" "$TMP/nob.out")" -eq 1
	"$TM" eval "$TMP/nob.onnx" --fashion-mnist --dtype int8 --limit 200 >"$TMP/nob8.out" 2>&1
	check "the dropped file runs in int8 on that calibration (eval --dtype int8)" \
		test "$?" -eq 0 -a "$(grep -c 'exit 2 final' "$TMP/nob8.out")" -eq 1
	"$TM" calibrate-exits models/fmnist-resnet/model.onnx --fashion-mnist --max-loss x \
		>"$TMP/bad.out" 2>&1
	check "calibrate-exits --max-loss x: exit 2" test "$?" -eq 2
	"$TM" calibrate-exits models/fmnist-resnet/model.onnx --fashion-mnist --dtype f16 \
		>"$TMP/bad.out" 2>&1
	check "calibrate-exits --dtype f16: exit 2, a message" test "$?" -eq 2 -a -s "$TMP/bad.out"
	"$TM" calibrate-exits models/fmnist-resnet/model.onnx --fashion-mnist --dtype int8 \
		--calib "$TMP/none.calib" --limit 100 --calib-images 100 >"$TMP/bad.out" 2>&1
	check "calibrate-exits --dtype int8 with a missing calibration: exit 1, named" \
		test "$?" -eq 1 -a "$(grep -c none.calib "$TMP/bad.out")" -ge 1
else
	echo "skip calibrate-exits: no $FM"
	skip=$((skip + 1))
fi
check_done
