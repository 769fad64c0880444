#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tailgate-model export-qdq end to end (issue 16 part 1): the committed fixture
# (tests/fixtures_qdq/resnet_bnfolded: tests/fixtures/resnet_bnfolded exported with the
# calibration beside it) is what the tool writes today, byte for byte; the shipped model
# exports with its model.calib; ONNX's own checker (python3-onnx, scripts/check_qdq.py:
# onnx.checker with full_check, and the QDQ form of every Conv/Gemm) accepts both, and the
# files load back in tailgate (tailgate-model info); bad usage gets exit 2 and a message,
# a model without a calibration exit 1 naming the file. The tail from a split at a fixed
# batch (--split --batch, what the engine benchmark gives ONNX Runtime) passes the same
# checks. Without python3-onnx the checker checks are counted skips, with the package to
# install.
# Usage: tests/qdq_onnx_check.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_qdq.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

TM=$BUILD/tailgate-model
FX=tests/fixtures/resnet_bnfolded
QFX=tests/fixtures_qdq/resnet_bnfolded
if [ ! -x "$TM" ]; then
	echo "missing $TM"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

"$TM" export-qdq "$FX/model.onnx" --calib "$QFX/model.calib" --output "$TMP/fx.onnx" \
	>"$TMP/fx.out" 2>&1
rc=$?
sed 's/^/  | /' "$TMP/fx.out"
check "export-qdq of the fixture model exits 0 (status $rc)" test "$rc" -eq 0
check "the export is the committed fixture, byte for byte" cmp -s "$TMP/fx.onnx" "$QFX/model.qdq.onnx"
"$TM" export-qdq models/fmnist-resnet/model.onnx --output "$TMP/shipped.onnx" >"$TMP/sh.out" 2>&1
rc=$?
sed 's/^/  | /' "$TMP/sh.out"
check "export-qdq of the shipped model with its model.calib exits 0 (status $rc)" test "$rc" -eq 0
check "it quantized the shipped model's 14 Conv/Gemm" grep -q ': 14 Conv/Gemm in int8' "$TMP/sh.out"

TAIL_SPLIT=/layer1/layer1.0/relu2/Relu_output_0
"$TM" export-qdq models/fmnist-resnet/model.onnx --split "$TAIL_SPLIT" --batch 4 \
	--output "$TMP/tail.onnx" >"$TMP/tail.out" 2>&1
rc=$?
sed 's/^/  | /' "$TMP/tail.out"
check "export-qdq of the shipped model's tail from layer1 at batch 4 exits 0 (status $rc)" \
	test "$rc" -eq 0
check "it names the split and quantized the tail's 11 Conv/Gemm" \
	grep -q "\"$TAIL_SPLIT\" at batch 4, 11 Conv/Gemm in int8" "$TMP/tail.out"

for f in "$QFX/model.qdq.onnx" "$TMP/shipped.onnx" "$TMP/tail.onnx"; do
	"$TM" info "$f" >"$TMP/info.out" 2>&1
	rc=$?
	check "$(basename "$f") loads back in tailgate (info: status $rc, $(sed -n 's/^splits *//p' "$TMP/info.out") splits)" \
		test "$rc" -eq 0
done

if [ -x /usr/bin/python3 ]; then
	/usr/bin/python3 scripts/check_qdq.py "$QFX/model.qdq.onnx" "$TMP/shipped.onnx" \
		"$TMP/tail.onnx" >"$TMP/chk.out" 2>&1
	rc=$?
else
	echo "skip: python3-onnx is not installed (apt-get install python3-onnx, or make deps)" >"$TMP/chk.out"
	rc=77
fi
sed 's/^/  | /' "$TMP/chk.out"
if [ "$rc" -eq 77 ]; then
	echo "skip onnx.checker on the fixture, the shipped export and its tail: $(head -n 1 "$TMP/chk.out")"
	skip=$((skip + 3))
else
	check "onnx.checker (full) accepts the committed fixture" grep -q "^ok $QFX/model.qdq.onnx" "$TMP/chk.out"
	check "onnx.checker (full) accepts the shipped model's export" grep -q "^ok $TMP/shipped.onnx" "$TMP/chk.out"
	check "onnx.checker (full) accepts the shipped model's tail" grep -q "^ok $TMP/tail.onnx" "$TMP/chk.out"
	check "the checker script exited 0 (status $rc)" test "$rc" -eq 0
fi

# Bad usage and bad files: clear errors, never a crash.
"$TM" export-qdq "$FX/model.onnx" --calib "$QFX/model.calib" --split 5 --output "$TMP/x.onnx" \
	>"$TMP/e0" 2>&1
rc=$?
named=$(grep -c -- "--split needs --batch" "$TMP/e0")
check "--split without --batch: exit 2, '--split needs --batch' (status $rc)" \
	test "$rc" -eq 2 -a "$named" -gt 0
"$TM" export-qdq "$FX/model.onnx" --calib "$QFX/model.calib" --split nope --batch 1 \
	--output "$TMP/x.onnx" >"$TMP/e4" 2>&1
rc=$?
check "an unknown split: exit 2 with a message (status $rc)" test "$rc" -eq 2 -a -s "$TMP/e4"
"$TM" export-qdq "$FX/model.onnx" >"$TMP/e1" 2>&1
rc=$?
check "no --output: exit 2 with a message (status $rc)" test "$rc" -eq 2 -a -s "$TMP/e1"
"$TM" export-qdq "$TMP/none.onnx" --output "$TMP/x.onnx" >"$TMP/e2" 2>&1
rc=$?
named=$(grep -c none.onnx "$TMP/e2")
check "a missing model: exit 1 naming it (status $rc)" test "$rc" -eq 1 -a "$named" -gt 0
"$TM" export-qdq "$FX/model.onnx" --output "$TMP/x.onnx" >"$TMP/e3" 2>&1
rc=$?
named=$(grep -c "needs a calibration" "$TMP/e3")
check "no calibration beside the model: exit 1, 'needs a calibration' (status $rc)" \
	test "$rc" -eq 1 -a "$named" -gt 0
check "nothing written on failure" test ! -e "$TMP/x.onnx"
check_done
