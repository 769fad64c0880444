#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writes MODEL_DIR/CARD.md from what the engine itself reports: accuracy of every exit on the
# 10,000 Fashion-MNIST test images (fp32, and int8 when MODEL_DIR/model.calib exists), then
# `tailgate-model info --markdown` (operators, FLOPs, the split table with bytes per dtype),
# engine images/s at batch 1 and 64, the early exits (`calibrate-exits`, fp32 and int8), the residual blocks
# and the drop frontier (`blocks`, `adapt`), bytes on the wire against accuracy for every
# split and wire dtype (`build/bench/codec-table`), a table of the model and its variants
# side by side (FLOPs, parameters, accuracy per exit in fp32 and int8, images/s at batch 1
# and 64 from scripts/bench_variants.sh), and one section per `variant =` line of model.conf
# (a drop variant's file and calibration are written by `tailgate-model drop`; a file
# variant is variants/NAME/model.onnx): accuracy per exit, its early exits, FLOPs,
# parameters, split table, images/s. Every section is generated: edit this script, not the
# card.
# Usage: scripts/make_card.sh models/fmnist-resnet [BUILD]
# Environment: CARD_REPS (5): rounds of scripts/bench_variants.sh; CARD_IMAGES (10000): test
#   images of the codec table; CARD_SPEED=0: no images/s measured (a card made on a busy
#   machine says so instead of printing figures that measure the load).
#   CARD_EVAL=DIR CARD_CHOOSE=DIR2: a model that does not take Fashion-MNIST
#   (models/clutter-resnet): scored on DIR/inputs.npy and DIR/labels.npy (test samples, as
#   scripts/make_clutter.py writes them; tailgate-model eval --eval), exit thresholds chosen
#   on DIR2's (training samples); CARD_DATA names that data in the card's text.
set -euo pipefail
dir=${1:?usage: make_card.sh MODEL_DIR [BUILD]}
build=${2:-build}
tm=$build/tailgate-model
model=$dir/model.onnx
name=$(basename "$dir")
[ -x "$tm" ] || { echo "make_card: build $tm first (make)" >&2; exit 1; }
if [ -n "${CARD_EVAL:-}" ]; then
	ev=(--eval "$CARD_EVAL")
	ce=(--eval "$CARD_EVAL" --choose "${CARD_CHOOSE:?CARD_EVAL needs CARD_CHOOSE}")
	data=${CARD_DATA:-the samples of $CARD_EVAL}
	calsrc="\`tailgate-model calibrate $model --input $CARD_CHOOSE/inputs.npy\` (training samples)"
else
	ev=(--fashion-mnist) ce=(--fashion-mnist)
	data="Fashion-MNIST test set, 10,000 images"
	calsrc="\`tailgate-model calibrate $model --fashion-mnist\`
(first 2,000 training images)"
fi

# Engine images/s of the whole model (split 0) at batch 1 and 64, one run each.
speed() {	# model
	local b j
	if [ "${CARD_SPEED:-1}" = 0 ]; then
		echo "Engine speed: not measured in this run (CARD_SPEED=0; load $(cut -d' ' -f1 /proc/loadavg))."
		return
	fi
	echo "Engine speed, whole model (\`$tm bench MODEL --split 0 --batch B --threads 1"
	echo "--seconds 3\`: one engine thread, which a shared machine disturbs least; measured at"
	echo "load $(cut -d' ' -f1 /proc/loadavg), so compare rows of one card, not across runs):"
	echo
	echo "| batch | images/s | latency/batch p50 |"
	echo "| ---: | ---: | ---: |"
	for b in 1 64; do
		j=$("$tm" bench "$1" --split 0 --batch "$b" --threads 1 --seconds 3 --json)
		J="$j" B="$b" python3 -c 'import json, os
d = json.loads(os.environ["J"])
print("| %s | %.1f | %.3f ms |" % (os.environ["B"], d["images_per_s"], d["p50_ms"]))'
	done
}

# The accuracy table of an eval --json (and an int8 one, or "").
acc_table() {	# f32_json int8_json
	F32="$1" INT8="$2" python3 - <<'PY'
import json, os
f = json.loads(os.environ["F32"])
q = json.loads(os.environ["INT8"]) if os.environ["INT8"] else None
print("| exit | output | top-1 fp32 | top-1 int8 | int8 - fp32 |")
print("| ---: | --- | ---: | ---: | ---: |")
for i, e in enumerate(f["exits"]):
    a = 100 * e["accuracy"]
    if q:
        b = 100 * q["exits"][i]["accuracy"]
        print(f"| {e['index']} | {e['name']} | {a:.2f}% | {b:.2f}% | {b - a:+.2f} |")
    else:
        print(f"| {e['index']} | {e['name']} | {a:.2f}% | n/a | n/a |")
PY
}

# Early-exit thresholds of a model file, in fp32 and (with its calibration) int8 at once.
exits() {	# model heading-prefix
	local d=f32
	[ -f "${1%.onnx}.calib" ] && d=f32,int8
	echo "${2}Early exits"
	echo
	echo "Thresholds from \`$tm calibrate-exits $1 ${ce[*]} --max-loss 0.5 --dtype $d\`"
	echo "(model.conf's \`exit =\` lines, a variant's \`exits=\`; the first confident exit answers):"
	echo
	echo '```'
	"$tm" calibrate-exits "$1" "${ce[@]}" --max-loss 0.5 --dtype "$d"
	echo '```'
}

# The variant lines of model.conf, and each one's file: a drop variant's written (with its
# calibration) into $tmp by `tailgate-model drop`. Sets vid[], vname[], vopts[], vfile[].
vid=() vname=() vopts=() vfile=()
variant_files() {
	local id name opts drop file
	while read -r _ _ id name opts; do
		drop=$(tr ' ' '\n' <<<"$opts" | sed -n 's/^drop=//p')
		if [ -n "$drop" ]; then
			file=$tmp/$name.onnx
			"$tm" drop "$model" --blocks "$drop" --output "$file" >"$tmp/$name.drop"
		else
			file=$dir/variants/$name/model.onnx
		fi
		vid+=("$id") vname+=("$name") vopts+=("$opts") vfile+=("$file")
	done < <(grep '^variant = ' "$dir/model.conf" 2>/dev/null)
}

# eval --json of a file in fp32 and, with its calibration, int8 (kept in $tmp).
evals() {	# file key
	"$tm" eval "$1" "${ev[@]}" --json >"$tmp/$2.f32.json"
	: >"$tmp/$2.int8.json"
	[ -f "${1%.onnx}.calib" ] &&
		"$tm" eval "$1" "${ev[@]}" --dtype int8 --json >"$tmp/$2.int8.json"
	return 0
}

# One section per variant line of model.conf.
variants() {
	local k file drop
	for k in "${!vid[@]}"; do
		file=${vfile[$k]}
		drop=$(tr ' ' '\n' <<<"${vopts[$k]}" | sed -n 's/^drop=//p')
		echo
		echo "## Variant ${vid[$k]}: ${vname[$k]}"
		echo
		if [ -n "$drop" ]; then
			sed 's/^wrote [^ ]*\.onnx /Dropped /; s/^wrote [^ ]*\.calib: /int8 calibration: /' \
				"$tmp/${vname[$k]}.drop"
			echo "(\`variant = ${vid[$k]} ${vname[$k]} ${vopts[$k]}\`: the base model with blocks"
			echo "$drop dropped, no file of its own; int8 runs on the base's calibration of the"
			echo "tensors it keeps). Below, ${vname[$k]}.onnx is the file \`$tm drop\` writes."
		else
			echo "File \`variants/${vname[$k]}/model.onnx\` (see variants/${vname[$k]}/ for how it was"
			echo "made), \`variant = ${vid[$k]} ${vname[$k]} ${vopts[$k]}\`."
		fi
		echo
		acc_table "$(cat "$tmp/v$k.f32.json")" "$(cat "$tmp/v$k.int8.json")"
		echo
		exits "$file" "### " | sed "s|$tmp/||g"
		echo
		"$tm" info "$file" --markdown | sed '1d'
		echo
		speed "$file"
	done
}

# FLOPs or parameters from `info --markdown`'s property table, as a number.
info_num() {	# file "FLOPs per sample" | parameters
	"$tm" info "$1" --markdown | awk -F'|' -v k="$2" '$2 ~ "^ *" k " *$" { split($3, a, " "); print a[1]; exit }'
}

# The model and its variants side by side: size, accuracy per exit, engine speed.
variant_table() {
	local bv=""
	echo "## Variants"
	echo
	echo "The base model (variant 0) and every \`variant =\` line of model.conf; each variant's"
	echo "own section below has its split table and early exits."
	echo
	if [ "${CARD_SPEED:-1}" != 0 ]; then
		bv=$(REPS=${CARD_REPS:-5} scripts/bench_variants.sh "$build" "$model" "${vfile[@]}")
	fi
	BV="$bv" TMPD="$tmp" BASE_FL=$(info_num "$model" "FLOPs per sample") \
	BASE_P=$(info_num "$model" parameters) python3 - "$model" \
		"${vid[@]/#/id=}" "${vname[@]/#/name=}" "${vfile[@]/#/file=}" \
		$(for f in "${vfile[@]}"; do echo "fl=$(info_num "$f" "FLOPs per sample")"; \
			echo "p=$(info_num "$f" parameters)"; done) <<'PY'
import json, os, re, sys
model = sys.argv[1]
args = sys.argv[2:]
pick = lambda k: [a[len(k) + 1:] for a in args if a.startswith(k + "=")]
ids, names, files, fls, ps = pick("id"), pick("name"), pick("file"), pick("fl"), pick("p")
ips = {}
for line in os.environ["BV"].splitlines():
    m = re.match(r"^\| (\S+) \| (\d+) \| (\d+) \| ([0-9.]+) \|$", line)
    if m:
        ips[(m.group(1), int(m.group(2)))] = (int(m.group(3)), float(m.group(4)))
def acc(key):
    f = json.load(open(os.path.join(os.environ["TMPD"], key + ".f32.json")))
    q8 = open(os.path.join(os.environ["TMPD"], key + ".int8.json")).read()
    q = json.loads(q8) if q8.strip() else None
    out = []
    for i, e in enumerate(f["exits"]):
        a = "%.2f" % (100 * e["accuracy"])
        b = "%.2f" % (100 * q["exits"][i]["accuracy"]) if q else "n/a"
        out.append((e["name"], a + " / " + b))
    return out
base_fl, base_p = int(os.environ["BASE_FL"]), int(os.environ["BASE_P"])
rows = [("base", "0", model, base_fl, base_p, acc("base"))]
for k in range(len(ids)):
    rows.append((names[k], ids[k], files[k], int(fls[k]), int(ps[k]), acc("v%d" % k)))
exits = [n for n, _ in rows[0][5]]
print("| variant | id | FLOPs | parameters | " + " | ".join(f"{n} fp32 / int8" for n in exits) +
      " | images/s b=1 | images/s b=64 |")
print("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in exits) + " | ---: | ---: |")
for name, vid, f, fl, p, a in rows:
    d = dict(a)
    sp = []
    for b in (1, 64):
        v = ips.get((f, b))
        sp.append("not measured" if v is None else
                  ("%d" % v[0] if vid == "0" else "%d (%.2fx)" % (v[0], v[1])))
    pct = "" if vid == "0" else " (%.1f%%)" % (100.0 * fl / base_fl)
    ppct = "" if vid == "0" else " (%.1f%%)" % (100.0 * p / base_p)
    print(f"| {name} | {vid} | {fl / 1e6:.1f} M{pct} | {p:,}{ppct} | " +
          " | ".join(d.get(n, "-") for n in exits) + " | " + " | ".join(sp) + " |")
print()
fin = exits[-1]
for name, vid, f, fl, p, a in rows[1:]:
    d, b = dict(a), dict(rows[0][5])
    v = ips.get((f, 64))
    speed = "%.2fx the base's images/s at batch 64, " % v[1] if v else ""
    print(f"- {name}: {100.0 * fl / base_fl:.1f}% of the base's FLOPs, {100.0 * p / base_p:.1f}% of "
          f"its parameters, {speed}{fin} top-1 "
          f"{float(d[fin].split(' / ')[0]) - float(b[fin].split(' / ')[0]):+.2f} points (fp32).")
PY
	echo
	echo "Accuracy: \`$tm eval FILE ${ev[*]} [--dtype int8]\`, $data (a drop"
	echo "variant's FILE and its int8 calibration from \`$tm drop\`). FLOPs and parameters:"
	echo "\`$tm info\`. Images/s: whole model from the input, side by side in one run,"
	if [ -n "$bv" ]; then
		echo "\`REPS=${CARD_REPS:-5} scripts/bench_variants.sh $build $model ...\` (2 engine threads;"
		echo "in parentheses the median over rounds of the ratio to the base in the same round;"
		echo "load average $(sed -n 's/^load before: \([^ ]*\).*/\1/p' <<<"$bv") before and" \
			"$(sed -n 's/^load after: \([^ ]*\).*/\1/p' <<<"$bv") after: on a shared machine compare rows"
		echo "of one card, not across cards)."
	else
		echo "not measured in this run (CARD_SPEED=0)."
	fi
	echo "How each file variant was made, and what it reached against its targets: its"
	echo "variants/NAME/TRAINING.md."
}

# Bytes on the wire against accuracy, every split and wire dtype: build/bench/codec-table.
codec() {
	local n=${CARD_IMAGES:-10000}
	echo "## Bytes on the wire against accuracy (every split x wire dtype, LZ4 on)"
	echo
	echo "\`$build/bench/codec-table $model --images $n${CARD_EVAL:+ --eval $CARD_EVAL} --markdown\` ($(date -u +%Y-%m-%d), $n test"
	echo "images, load average $(cut -d' ' -f1 /proc/loadavg): accuracy and bytes do not depend on it):"
	echo "each image is one request, sent the way the client library sends it"
	echo "(\`proto_quant_params\` + \`proto_quantize\`, then \`proto_request_chunk\` with LZ4 at the client's"
	echo "default 1,472-byte datagrams: one LZ4 block per datagram, raw when LZ4 does not shrink it) and"
	echo "received the way the gateway does (\`proto_decode\`, \`proto_chunk_unpack\`, dequantised by"
	echo "\`kern_plan_load_rows\`), then the engine runs the tail (fp32). Payload: the tensor's bytes"
	echo "after quantisation and LZ4; wire: whole datagrams, 104-byte REQUEST headers included."
	echo "Accuracy is top-1 per exit computed on the gateway; \"device\" exits run before the split."
	echo
	"$build/bench/codec-table" "$model" --images "$n" ${CARD_EVAL:+--eval "$CARD_EVAL"} --markdown
	echo
	local bs
	bs=$(grep -E '^variant *= *[0-9]+ +bottleneck( |$)' "$dir/model.conf" 2>/dev/null |
		tr ' ' '\n' | sed -n 's/^splits=//p')
	if [ -f "$dir/variants/bottleneck/model.onnx" ]; then
		echo "The bottleneck-injected variant (variants/bottleneck: a learned encoder on the device,"
		echo "a decoder on the gateway before the base model's tail; its TRAINING.md) at the splits"
		echo "model.conf serves it at (${bs:-all}): the input, and its bottleneck tensor (u8 + LZ4"
		echo "payload), against the rows above."
		echo "\`$build/bench/codec-table $dir/variants/bottleneck/model.onnx --images $n${bs:+ --splits $bs}${CARD_EVAL:+ --eval $CARD_EVAL} --markdown\`:"
		echo
		"$build/bench/codec-table" "$dir/variants/bottleneck/model.onnx" --images "$n" \
			${bs:+--splits "$bs"} ${CARD_EVAL:+--eval "$CARD_EVAL"} --markdown
	else
		echo "No bottleneck-injected variant yet (issue 13 item 3: at most 196 bytes per image at"
		echo "its split; \`scripts/train_bottleneck.py\` has not produced one on this machine). For"
		echo "comparison: the raw image as u8 with LZ4 (split 0) and the cheapest plain split above,"
		echo "which leaves the device the whole network."
	fi
}

tmp=$(mktemp -d /tmp/tg_card.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
variant_files
evals "$model" base
for k in "${!vfile[@]}"; do evals "${vfile[$k]}" "v$k"; done
f32=$(cat "$tmp/base.f32.json")
int8=$(cat "$tmp/base.int8.json")

{
	echo "# Model card: $name"
	echo
	echo "Generated by \`scripts/make_card.sh $dir\` on $(date -u +%Y-%m-%d) from"
	echo "\`tailgate-model eval\` and \`tailgate-model info --markdown\`; how the model was"
	echo "trained is in [TRAINING.md](TRAINING.md)."
	echo
	echo "Input: \`input\`, f32 $("$tm" info "$model" --markdown | awk -F'|' '$2 ~ /^ *0 *$/ { gsub(/ /, "", $4); print $4; exit }') = pixel / 255, no other normalisation. Outputs:"
	echo "logits [N,10] per exit; the gateway applies softmax for exit confidence."
	echo
	echo "## Accuracy per exit ($data)"
	echo
	acc_table "$f32" "$int8"
	echo
	if [ -n "$int8" ]; then
		echo "int8: Conv and Gemm layers run in int8 (u8/s8 activations, s8 per-channel weights) with"
		echo "activation ranges from $calsrc, stored in \`model.calib\` beside the model."
		echo
	fi
	echo "Commands: \`$tm eval $model ${ev[*]} [--dtype int8]\`."
	echo
	"$tm" info "$model" --markdown | sed '1s/^## .*/## Structure and split points/'
	echo
	speed "$model"
	echo
	exits "$model" "## "
	echo
	echo "## Residual blocks and skip-dropped variants"
	echo
	echo "\`$tm blocks $model ${ev[*]} --markdown\`: the final exit's top-1 with each"
	echo "droppable block alone dropped."
	echo
	"$tm" blocks "$model" "${ev[@]}" --markdown | tail -n +2
	echo
	echo "\`$tm adapt $model ${ev[*]} --markdown\`:"
	echo
	"$tm" adapt "$model" "${ev[@]}" --markdown 2>/dev/null
	echo
	codec
	echo
	variant_table
	variants
} >"$tmp/CARD.md"
mv "$tmp/CARD.md" "$dir/CARD.md"
echo "wrote $dir/CARD.md"
