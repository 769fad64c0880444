#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# After a training script wrote models/<model>/variants/<name>/model.onnx: what the gateway
# needs beside it and the figures its model.conf line carries, all from the engine (no torch).
#   1. tailgate-model calibrate FILE --fashion-mnist     -> model.calib (int8 tails)
#   2. tailgate-model eval FILE --fashion-mnist [--dtype int8] -> accuracy per exit
#   3. tailgate-model calibrate-exits FILE --fashion-mnist --max-loss 0.5 --dtype f32,int8
#      -> each early exit's threshold (as the base's exit lines)
# Prints the 'variant = ...' line to put in model.conf (ID and splits given here) and writes
# the outputs of 2 and 3 to VARIANT_DIR/finish.log for its TRAINING.md.
# Usage: scripts/variant_finish.sh VARIANT_DIR ID SPLITS [BUILD]
#   e.g. scripts/variant_finish.sh models/fmnist-resnet/variants/bottleneck 3 0,8
# A model that does not take Fashion-MNIST (models/clutter-resnet): FINISH_EVAL=DIR (test
# samples, DIR/inputs.npy and DIR/labels.npy, as scripts/make_clutter.py writes them) and
# FINISH_CHOOSE=DIR2 (training samples): calibrated on DIR2/inputs.npy, scored on DIR, exit
# thresholds chosen on DIR2.
set -euo pipefail
dir=${1:?usage: variant_finish.sh VARIANT_DIR ID SPLITS [BUILD]}
id=${2:?usage: variant_finish.sh VARIANT_DIR ID SPLITS [BUILD]}
splits=${3:?usage: variant_finish.sh VARIANT_DIR ID SPLITS [BUILD]}
tm=${4:-build}/tailgate-model
file=$dir/model.onnx
name=$(basename "$dir")
log=$dir/finish.log
[ -x "$tm" ] || { echo "variant_finish: build $tm first (make)" >&2; exit 1; }
[ -f "$file" ] || { echo "variant_finish: $file missing" >&2; exit 1; }
if [ -n "${FINISH_EVAL:-}" ]; then
	cal=(--input "${FINISH_CHOOSE:?FINISH_EVAL needs FINISH_CHOOSE}/inputs.npy")
	ev=(--eval "$FINISH_EVAL")
	ce=(--eval "$FINISH_EVAL" --choose "$FINISH_CHOOSE")
else
	cal=(--fashion-mnist) ev=(--fashion-mnist) ce=(--fashion-mnist)
fi

{
	echo "# scripts/variant_finish.sh $dir $id $splits ($(date -u '+%Y-%m-%d %H:%M') UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "\$ $tm calibrate $file ${cal[*]}"
	"$tm" calibrate "$file" "${cal[@]}"
	echo "\$ $tm eval $file ${ev[*]}"
	"$tm" eval "$file" "${ev[@]}"
	echo "\$ $tm eval $file ${ev[*]} --dtype int8"
	"$tm" eval "$file" "${ev[@]}" --dtype int8
	echo "\$ $tm calibrate-exits $file ${ce[*]} --max-loss 0.5 --dtype f32,int8"
	"$tm" calibrate-exits "$file" "${ce[@]}" --max-loss 0.5 --dtype f32,int8
} >"$log" 2>&1

# accuracy=OUT:FP32:INT8,... from the two evals' "exit I NAME ... top-1  A%" lines.
acc=$(awk '/^\$ .* eval .*--dtype int8/ { q = 1; next } /^\$ .*calibrate-exits/ { q = 2 }
	   q < 2 && /^exit [0-9]+ / { v = $0; sub(/.*top-1 +/, "", v); sub(/%.*/, "", v)
		if (q) i8[$3] = v; else { f[$3] = v; order[n++] = $3 } }
	   END { for (k = 0; k < n; k++) printf "%s%s:%s:%s", k ? "," : "", order[k], f[order[k]], i8[order[k]] }' "$log")
# exits=NAME:CONF,... from calibrate-exits' 'exit = NAME:CONF' lines.
ex=$(sed -n 's/^exit = \([^ ]*\)$/\1/p' "$log" | paste -sd, -)
echo "variant = $id $name splits=$splits${ex:+ exits=$ex} accuracy=$acc"
