#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every committed file variant of a model (models/*/variants/<name>/model.onnx) against
# PyTorch: its training script saved the first test images and PyTorch's logits of every exit
# beside it (reference/*.npy, named by manifest.txt), and tests/fixtures_check.c runs the
# engine on them: the whole model, head then tail at every split, batch-1 plans, bucketed
# plans. A broken kernel, a broken file or a missing reference fails. No torch needed.
# Usage: tests/variants_check.sh [BUILD]
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
check=$BUILD/tests/fixtures_check
pass=0 fail=0 n=0

[ -x "$check" ] || { echo "FAIL: $check missing (make)"; echo "0 passed, 1 failed"; exit 1; }
for vdir in models/*/variants; do
	[ -d "$vdir" ] || continue
	for v in "$vdir"/*/; do
		[ -f "$v/model.onnx" ] || continue
		n=$((n + 1))
		if [ ! -f "$v/manifest.txt" ]; then
			echo "FAIL $v: model.onnx without manifest.txt and reference outputs"
			fail=$((fail + 1))
		fi
	done
	out=$("$check" "$vdir" 2>&1)
	rc=$?
	echo "$out"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n 1)
	p=$(sed -nE 's/^([0-9]+) passed.*/\1/p' <<<"$line")
	f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
	# A skip here means a variant folder the checker found nothing in: a failure.
	if [ -z "$line" ] || [ "$rc" -ne 0 ] || [ "${s:-0}" -ne 0 ]; then
		echo "FAIL $vdir: fixtures_check exited $rc (${line:-no count line})"
		fail=$((fail + 1))
	fi
	pass=$((pass + ${p:-0})) fail=$((fail + ${f:-0}))
done
if [ "$n" -eq 0 ]; then
	echo "FAIL: no models/*/variants/*/model.onnx (the committed variants are gone)"
	fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
