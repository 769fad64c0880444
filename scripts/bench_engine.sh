#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The engine benchmark: tailgate's tails side by side with ONNX Runtime and PyTorch on the same
# tails, same threads, same batches. Called by `make bench-engine` (and `make bench`).
#
# Models: the shipped models/fmnist-resnet/model.onnx (skipped with a message when absent) and
# build/bench/resnet224.onnx (ResNet-18 at 224x224, random weights, made here by
# scripts/make_bench_models.py when missing). Per model: the whole model and three split points
# at stage boundaries, present in both the ONNX split table and PyTorch (bench/engine/torch_models.py).
# Per (model, split, batch): tailgate fp32 (`tailgate-model bench`), tailgate int8 (only when
# `tailgate-model bench --dtype` exists, else n/a), ONNX Runtime fp32 (bench/engine/ort_bench.js on the
# tail written by `tailgate-model extract`), ONNX Runtime int8 (the same on the QDQ tail written by
# `tailgate-model export-qdq --split --batch`: tailgate's quantization, ORT's int8 kernels),
# PyTorch fp32 eager (bench/engine/torch_bench.py).
# Both int8 runtimes use one calibration per model: the .calib sidecar beside the file, else one
# made here (fmnist: 2000 Fashion-MNIST training images; resnet224: 32 random inputs).
# REPS repetitions; in each, every runtime measures all configurations of a model, and the order
# of the runtimes rotates between repetitions, so noise on this shared machine spreads over all
# of them. The table (medians) is printed and written into docs/BENCHMARKS.md.
#
# Usage: scripts/bench_engine.sh [BUILD]
# Environment: TG_WAIT_POLICY (ACTIVE: OpenMP threads spin, like ORT's), THREADS (2),
#   REPS (3), BATCHES ("1 8 32 64"), MIN_TIME (0.5 s timed per
#   measurement, at least 3 runs), MODELS ("fmnist resnet224"), DOC (docs/BENCHMARKS.md; "" = do
#   not write it), KEEP_TAILS=1 keeps the extracted tails (build/bench/tails, ~1 GB for
#   resnet224), VERBOSE_IMPL=1 (default) also lists the oneDNN implementations (ONEDNN_VERBOSE),
#   FMNIST_ONNX (models/fmnist-resnet/model.onnx) another file of the demo architecture, and
#   FMNIST_WEIGHTS (build/bench/fmnist-resnet.pt: where scripts/train_fmnist.py's state_dict of
#   the shipped model was kept; a state_dict of another run makes the check report a mismatch).
# Before timing, one input goes through all three runtimes at each split and their outputs are
# compared (bench/engine/torch_bench.py --check), where PyTorch has the file's weights; and two
# int8 checks run, whose failures are printed as CHECK FAILED lines and mark the table's cells:
#   - ORT int8 and tailgate int8 agree (bench/engine/int8_check.py: top-1 of INT8_CHECK_N (1000)
#     Fashion-MNIST test images for fmnist, at least 95%; for resnet224, random weights, its
#     outputs for 64 test images scaled to 224x224: within 5% of each other, the parts that
#     depend on the input at a median cosine >= 0.9),
#   - ORT's int8 kernels ran (ort_bench.js --profile on every QDQ tail: as many int8 Conv/Gemm
#     kernels, QLinearConv/QGemm/..., as export-qdq quantized Conv/Gemm, and no fp32 Conv/Gemm).
# The run exits 1 when one of them failed (the table is written all the same).
# A runtime that is missing (no torch, no onnxruntime-node) is skipped with a message; its
# cells read n/a.
set -uo pipefail
cd "$(dirname "$0")/.."

BUILD=${1:-build}
TOOL=$BUILD/tailgate-model
THREADS=${THREADS:-2}
REPS=${REPS:-3}
BATCHES=${BATCHES:-"1 8 32 64"}
MIN_TIME=${MIN_TIME:-0.5}
MODELS=${MODELS:-"fmnist resnet224"}
DOC=${DOC-docs/BENCHMARKS.md}
VERBOSE_IMPL=${VERBOSE_IMPL:-1}
PY=/usr/bin/python3		# Debian's torch lives in the system interpreter only
W=build/bench
RES=$W/engine-results.jsonl
META=$W/engine-meta.json
T0=$(date +%s)

log() { printf 'bench-engine: %s\n' "$*" >&2; }

[ -x "$TOOL" ] || { log "$TOOL missing: run make first"; exit 1; }
mkdir -p "$W/tails"
: >"$RES"

# ---- which runtimes are here ----
have_torch=0 have_ort=0 have_int8=0
if "$PY" -c 'import torch' 2>/dev/null; then have_torch=1; else
	log "PyTorch not importable by $PY: its column will read n/a"; fi
if [ -e build/peer/node_modules/onnxruntime-node/package.json ] && command -v node >/dev/null; then
	have_ort=1
else
	log "onnxruntime-node not in build/peer (scripts/deps.sh installs it): ORT will read n/a"
fi
if "$TOOL" bench --help 2>&1 | grep -q -- '--dtype'; then have_int8=1; fi
have_qdq=0
if [ $have_ort = 1 ] && [ $have_int8 = 1 ] && "$TOOL" export-qdq --help 2>&1 | grep -q -- '--batch'; then
	have_qdq=1
else
	log "no ORT or no 'export-qdq --batch': ORT int8 will read n/a"
fi
if [ $have_qdq = 1 ] && ! "$PY" -c 'import numpy' 2>/dev/null; then
	log "numpy not importable by $PY: the int8 agreement check cannot run"
fi

# ---- peak of this machine ----
${CC:-gcc} -std=c11 -D_GNU_SOURCE -O2 -march=native -Wall -Wextra -pthread bench/engine/peak.c \
	-o "$W/peak" || { log "bench/engine/peak.c did not build"; exit 1; }
PEAK=$("$W/peak" --threads "$THREADS")
log "peak: $PEAK"

# ---- models ----
declare -A ONNX=([fmnist]=${FMNIST_ONNX:-models/fmnist-resnet/model.onnx} [resnet224]=$W/resnet224.onnx)
# PyTorch runs the file's weights when their state_dict is at hand (train_fmnist.py leaves it in
# /tmp), random ones of the same shapes otherwise: speed does not depend on them.
declare -A WEIGHTS=([fmnist]=${FMNIST_WEIGHTS:-$W/fmnist-resnet.pt} [resnet224]=$W/resnet224.pt)
# Split points per architecture (torch names; bench/engine/torch_models.py maps them to ONNX tensors).
# fmnist: not layer3, whose tail (GAP + Linear, 9 KFLOPs) is call overhead only; resnet224 has
# one such tail (layer4: GAP + Linear 512x1000, 1 MFLOP) to show that overhead, and leaves out
# layer1 so that a run stays near 15 minutes.
declare -A SPLITS=([fmnist]="input stem layer1 layer2" [resnet224]="input layer2 layer3 layer4")
if [[ " $MODELS " == *" resnet224 "* ]]; then
	if [ ! -e "$W/resnet224.onnx" ] || [ scripts/make_bench_models.py -nt "$W/resnet224.onnx" ] ||
	   [ bench/engine/torch_models.py -nt "$W/resnet224.onnx" ]; then
		if [ $have_torch = 1 ]; then
			"$PY" scripts/make_bench_models.py --out "$W" >&2 || log "make_bench_models.py failed"
		else
			log "cannot make $W/resnet224.onnx without PyTorch"
		fi
	fi
fi
archs=()
for a in $MODELS; do
	if [ -e "${ONNX[$a]:-/nonexistent}" ]; then archs+=("$a"); else
		log "skipping $a: ${ONNX[$a]:-unknown model} is absent"; fi
done
[ ${#archs[@]} -gt 0 ] || { log "no model to measure"; exit 0; }

# ---- one calibration per model, for tailgate int8 and the QDQ files alike ----
declare -A CALIB
for a in "${archs[@]}"; do
	[ $have_int8 = 1 ] || break
	side=${ONNX[$a]%.onnx}.calib
	if [ -e "$side" ]; then CALIB[$a]=$side; continue; fi
	c=$W/$a.calib
	if [ ! -e "$c" ] || [ "${ONNX[$a]}" -nt "$c" ]; then
		if [ "$a" = fmnist ]; then
			"$TOOL" calibrate "${ONNX[$a]}" --fashion-mnist --limit 2000 --output "$c" \
				--threads "$THREADS" >&2
		else
			"$PY" bench/engine/int8_check.py --tool "$TOOL" --onnx "${ONNX[$a]}" \
				--write-random "$W/$a-calib-inputs.npy" --n 32 &&
			"$TOOL" calibrate "${ONNX[$a]}" --input "$W/$a-calib-inputs.npy" --batch 8 \
				--output "$c" --threads "$THREADS" >&2
			rm -f "$W/$a-calib-inputs.npy"
		fi || { log "$a: calibration failed"; rm -f "$c"; continue; }
	fi
	CALIB[$a]=$c
done

# ---- splits, their ONNX names and FLOPs; tails for ORT ----
declare -A NAME FLOPS QN
for a in "${archs[@]}"; do
	if [ $have_torch = 1 ]; then
		map=$("$PY" bench/engine/torch_bench.py --arch "$a" --onnx "${ONNX[$a]}" --tool "$TOOL" --list) ||
			{ log "$a: torch_bench.py --list failed"; map='{}'; }
	else
		map='{}'
	fi
	for s in ${SPLITS[$a]}; do
		n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' \
			"$map" "$s")
		[ -z "$n" ] && [ "$s" = input ] && n=input
		if [ -z "$n" ]; then log "$a: no split point for $s"; continue; fi
		NAME[$a/$s]=$n
		for b in $BATCHES; do
			f=$W/tails/${a}_${s}_b$b.onnx
			[ $have_ort = 1 ] || break
			[ -e "$f" ] && [ "$f" -nt "${ONNX[$a]}" ] && continue
			"$TOOL" extract "${ONNX[$a]}" --split "$n" --batch "$b" --output "$f" >/dev/null ||
				log "$a $s b$b: extract failed"
		done
		for b in $BATCHES; do
			[ $have_qdq = 1 ] && [ -n "${CALIB[$a]:-}" ] || break
			f=$W/tails/${a}_${s}_b$b.qdq.onnx
			# "wrote F (N bytes): tail from split ... at batch B, Q Conv/Gemm in int8, ..."
			if out=$("$TOOL" export-qdq "${ONNX[$a]}" --calib "${CALIB[$a]}" --split "$n" \
				--batch "$b" --output "$f" 2>&1); then
				QN[$a/$s]=$(sed -n 's/.*, \([0-9]*\) Conv\/Gemm in int8.*/\1/p' <<<"$out")
			else
				log "$a $s b$b: export-qdq failed: $(tail -n 1 <<<"$out")"
				rm -f "$f"
			fi
		done
		f=$W/tails/${a}_${s}_flops.onnx
		"$TOOL" extract "${ONNX[$a]}" --split "$n" --batch 1 --output "$f" >/dev/null &&
			FLOPS[$a/$s]=$("$TOOL" info "$f" | awk '$1 == "FLOPs" { print $2 }')
		rm -f "$f"
	done
done

# Runs one measurement's JSON through: tag it with arch/split/runtime/rep, append to $RES.
tag() {	# arch split runtime rep
	python3 -c '
import json, sys
a, s, rt, rep, name = sys.argv[1:6]
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    r.update(arch=a, split=s, runtime=rt, rep=int(rep))
    r.setdefault("split_name", name)
    print(json.dumps(r))' "$1" "$2" "$3" "$4" "${NAME[$1/$2]}" >>"$RES"
}

err_row() {	# arch split batch runtime rep message
	python3 -c 'import json,sys; a,s,b,rt,rep,e=sys.argv[1:7]; print(json.dumps(dict(arch=a,
split=s, batch=int(b), runtime=rt, rep=int(rep), error=e)))' "$@" >>"$RES"
}

# tailgate has no time-bounded warm-up: pick runs from an estimate at 60 GFLOP/s.
tg_args() {	# flops batch
	python3 -c '
import math, sys
fl, b, mt = float(sys.argv[1] or 1e9), int(sys.argv[2]), float(sys.argv[3])
est = fl * b / 60e9
if est * 3 >= mt:
    print(f"--iters 3 --warmup 1")
else:
    print(f"--seconds {mt} --warmup {max(1, min(10, math.ceil(0.2 / est)))}")' "$1" "$2" "$MIN_TIME"
}

run_tailgate() {	# arch rep [int8]
	local a=$1 rep=$2 dt=${3:-} s b out rt=tailgate
	[ -n "$dt" ] && rt=tailgate_int8
	for s in ${SPLITS[$a]}; do
		[ -n "${NAME[$a/$s]:-}" ] || continue
		for b in $BATCHES; do
			# ORT's intra-op threads spin between parallel regions by default; tailgate
			# is measured spinning too (TG_WAIT_POLICY=PASSIVE: as the gateway runs,
			# threads sleeping, one thread for small runs; see kern_prefer_passive_wait).
			# shellcheck disable=SC2046
			if out=$(OMP_WAIT_POLICY=${TG_WAIT_POLICY:-ACTIVE} \
				"$TOOL" bench "${ONNX[$a]}" --split "${NAME[$a/$s]}" --batch "$b" \
				--threads "$THREADS" $(tg_args "${FLOPS[$a/$s]:-}" "$b") \
				${dt:+--dtype $dt} ${dt:+${CALIB[$a]:+--calib ${CALIB[$a]}}} --json 2>&1); then
				tag "$a" "$s" "$rt" "$rep" <<<"$out"
			else
				err_row "$a" "$s" "$b" "$rt" "$rep" "$(tail -n 1 <<<"$out")"
			fi
		done
	done
}

run_ort() {	# arch rep [int8]
	local a=$1 rep=$2 dt=${3:-} s b f line rt=ort sfx=.onnx
	[ $have_ort = 1 ] || return 0
	[ -n "$dt" ] && rt=ort_int8 sfx=.qdq.onnx
	for s in ${SPLITS[$a]}; do
		[ -n "${NAME[$a/$s]:-}" ] || continue
		for b in $BATCHES; do
			f=$W/tails/${a}_${s}_b$b$sfx
			if [ ! -e "$f" ]; then err_row "$a" "$s" "$b" "$rt" "$rep" "no tail file"; continue; fi
			line=$(node bench/engine/ort_bench.js --threads "$THREADS" --min-time "$MIN_TIME" \
				--min-runs 3 "$f" 2>&1 | tail -n 1)
			if [[ "$line" == *'"error"'* || "$line" != '{'* ]]; then
				err_row "$a" "$s" "$b" "$rt" "$rep" "${line:0:200}"
			else
				tag "$a" "$s" "$rt" "$rep" <<<"$line"
			fi
		done
	done
}

run_torch() {	# arch rep
	local a=$1 rep=$2 splits="" s b out
	[ $have_torch = 1 ] || return 0
	for s in ${SPLITS[$a]}; do [ -n "${NAME[$a/$s]:-}" ] && splits+="${splits:+,}$s"; done
	out=$("$PY" bench/engine/torch_bench.py --arch "$a" --onnx "${ONNX[$a]}" --tool "$TOOL" \
		--splits "$splits" --batches "$(tr ' ' , <<<"$BATCHES")" --threads "$THREADS" \
		--weights "${WEIGHTS[$a]}" --min-time "$MIN_TIME" --min-runs 3 2>&1)
	while IFS= read -r line; do
		[[ "$line" == '{'* ]] || continue
		s=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["split"])' "$line")
		tag "$a" "$s" torch "$rep" <<<"$line"
	done <<<"$out"
	grep -q '^{' <<<"$out" || log "$a: torch_bench.py failed: $(tail -n 2 <<<"$out")"
}

# ---- the same computation in every runtime: one input, outputs compared ----
NOTES=$W/engine-notes.txt
: >"$NOTES"
for a in "${archs[@]}"; do
	[ $have_torch = 1 ] && [ $have_ort = 1 ] || break
	if [ ! -e "${WEIGHTS[$a]}" ]; then
		echo "$a: outputs not compared across runtimes (no state_dict of the file's weights at" \
			"${WEIGHTS[$a]}; PyTorch times random weights of the same shapes)." >>"$NOTES"
		continue
	fi
	splits=""
	for s in ${SPLITS[$a]}; do [ -n "${NAME[$a/$s]:-}" ] && splits+="${splits:+,}$s"; done
	"$PY" bench/engine/torch_bench.py --arch "$a" --onnx "${ONNX[$a]}" --tool "$TOOL" --check \
		--splits "$splits" --weights "${WEIGHTS[$a]}" >"$W/engine-check.jsonl" 2>/dev/null
	python3 bench/engine/engine_report.py --check-note "$a" "$W/engine-check.jsonl" \
		"weights ${WEIGHTS[$a]}" >>"$NOTES" || log "$a: check failed"
	log "$(tail -n 1 "$NOTES")"
done

# ---- int8: ORT and tailgate agree on top-1; ORT's int8 kernels ran (its profiler says) ----
AGREE=$W/engine-int8-agree.jsonl PROF=$W/engine-ort-profile.jsonl
: >"$AGREE"
: >"$PROF"
INT8_CHECK_N=${INT8_CHECK_N:-1000}
for a in "${archs[@]}"; do
	[ $have_qdq = 1 ] && [ -n "${CALIB[$a]:-}" ] || break
	bmax=${BATCHES##* }
	for s in ${SPLITS[$a]}; do
		[ -n "${NAME[$a/$s]:-}" ] || continue
		f=$W/tails/${a}_${s}_b$bmax.qdq.onnx
		[ -e "$f" ] || continue
		if [ "$a" = fmnist ]; then inp="--inputs fashion-mnist --n $INT8_CHECK_N"; else
			inp="--inputs fashion-mnist-scaled --n 64"; fi
		# shellcheck disable=SC2086
		line=$("$PY" bench/engine/int8_check.py --tool "$TOOL" --onnx "${ONNX[$a]}" \
			--calib "${CALIB[$a]}" --split "${NAME[$a/$s]}" --qdq "$f" $inp \
			--threads "$THREADS" --work "$W/int8check" --label "$a/$s" 2>&1 | tail -n 1)
		[[ "$line" == '{'* ]] || line=$(python3 -c 'import json,sys; print(json.dumps({"label":
sys.argv[1], "ok": False, "error": sys.argv[2][:300]}))' "$a/$s" "$line")
		echo "$line" >>"$AGREE"
		python3 bench/engine/engine_report.py --agree-line "$line" >&2
	done
	for s in ${SPLITS[$a]}; do
		[ -n "${NAME[$a/$s]:-}" ] || continue
		for b in $BATCHES; do
			f=$W/tails/${a}_${s}_b$b.qdq.onnx
			[ -e "$f" ] || continue
			line=$(node bench/engine/ort_bench.js --threads "$THREADS" --profile "$W/ort-profile" \
				"$f" 2>&1 | tail -n 1)
			[[ "$line" == '{'* ]] || line=$(python3 -c 'import json,sys; print(json.dumps({
"error": sys.argv[1][:300]}))' "$line")
			python3 -c '
import json, sys
r = json.loads(sys.argv[1])
r.update(arch=sys.argv[2], split=sys.argv[3], batch=int(sys.argv[4]))
if sys.argv[5]:
    r["quantized"] = int(sys.argv[5])
print(json.dumps(r))' "$line" "$a" "$s" "$b" "${QN[$a/$s]:-}" >>"$PROF"
			python3 bench/engine/engine_report.py --profile-line "$(tail -n 1 "$PROF")" >&2
		done
	done
	rm -rf "$W/ort-profile" "$W/int8check"
done

load1() { cut -d' ' -f1 /proc/loadavg; }
# Whether anything else ran: the CPU time every CPU spent busy (/proc/stat) less this script's
# own and its children's (/proc/$$/stat utime stime cutime cstime: every runtime below is a
# child waited for), in clock ticks. The load average cannot tell: the runtimes' own threads
# keep it near THREADS.
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
own_ticks() { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$$/stat"; }
LOAD0=$(load1)
[ "${LOAD0%.*}" -ge 1 ] && log "load average is $LOAD0: the machine may be busy"
BUSY0=$(busy_ticks) OWN0=$(own_ticks) WALL0=$(date +%s)

order=(tailgate ort torch)
for ((rep = 1; rep <= REPS; rep++)); do
	for a in "${archs[@]}"; do
		for rt in "${order[@]}"; do
			log "rep $rep/$REPS $a $rt ($(($(date +%s) - T0)) s)"
			case $rt in
			tailgate)
				run_tailgate "$a" "$rep"
				[ $have_int8 = 1 ] && run_tailgate "$a" "$rep" int8 ;;
			ort)
				run_ort "$a" "$rep"
				[ $have_qdq = 1 ] && run_ort "$a" "$rep" int8 ;;
			torch) run_torch "$a" "$rep" ;;
			esac
		done
	done
	order=("${order[@]:1}" "${order[0]}")	# rotate: every runtime goes first once
done
LOAD1=$(load1)
OTHERS=$(awk -v b="$(( $(busy_ticks) - BUSY0 ))" -v o="$(( $(own_ticks) - OWN0 ))" \
	-v w="$(( $(date +%s) - WALL0 ))" -v hz="$(getconf CLK_TCK)" \
	'BEGIN { s = (b - o) / hz; if (s < 0) s = 0; printf "%.1f %d %.1f", s, w, w ? 100 * s / w : 0 }')
log "other processes (and the kernel) used ${OTHERS%% *} CPU s during the timed runs"

# ---- which oneDNN implementation ran each primitive (whole model, batch 1 and the largest) ----
if [ "$VERBOSE_IMPL" = 1 ]; then
	for a in "${archs[@]}"; do
		for b in 1 ${BATCHES##* }; do
			impl=$(ONEDNN_VERBOSE=1 "$TOOL" bench "${ONNX[$a]}" --split input --batch "$b" \
				--threads "$THREADS" --iters 1 --warmup 0 2>/dev/null |
				awk -F, '$1 == "onednn_verbose" && $2 == "exec" { n[$4 " " $5]++ }
					END { for (k in n) printf "%s x%d; ", k, n[k] }')
			echo "oneDNN primitives executed, tailgate $a whole model batch $b (plan build, whose" \
				"reorders include the one-time weight reorders, and one run): ${impl%; }." \
				>>"$NOTES"
		done
	done
fi

# ---- table ----
flops_kv="" paths_kv=""
for k in "${!FLOPS[@]}"; do flops_kv+="$k=${FLOPS[$k]} "; done
for a in "${archs[@]}"; do paths_kv+="$a=${ONNX[$a]} "; done
export B_COMMAND="${FMNIST_ONNX:+FMNIST_ONNX=$FMNIST_ONNX }${FMNIST_WEIGHTS:+FMNIST_WEIGHTS=$FMNIST_WEIGHTS }make bench-engine (THREADS=$THREADS REPS=$REPS BATCHES='$BATCHES' MIN_TIME=$MIN_TIME)"
export B_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export B_CPU=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
export B_CORES=$(nproc) B_THREADS=$THREADS B_REPS=$REPS B_PEAK=$PEAK B_FLOPS=$flops_kv
export B_LOAD="$LOAD0 $LOAD1" B_NOTES=$NOTES B_PATHS=$paths_kv B_AGREE=$AGREE B_PROF=$PROF
calib_kv=""
for a in "${!CALIB[@]}"; do calib_kv+="$a=${CALIB[$a]} "; done
export B_CALIB=$calib_kv B_LOADED=""
read -r others_s wall_s others_pct <<<"$OTHERS"
B_QUIET="While the runtimes were timed (${wall_s} s), everything else on the machine (other"
B_QUIET+=" processes, the kernel's own threads and interrupts) used ${others_s} CPU s, ${others_pct}%"
B_QUIET+=" of one core (/proc/stat's busy time less this script's and its children's)."
export B_QUIET
# 5% of one core: the kernel's own housekeeping stays well under it on an idle machine.
if awk -v p="$others_pct" 'BEGIN { exit !(p > 5) }'; then
	B_LOADED="This run was measured on a loaded machine (other work took ${others_pct}% of a"
	B_LOADED+=" core beside it): its ratios are not the quiet-machine figures issue 16 asks for,"
	B_LOADED+=" and meet or miss no goal."
fi
export B_DNNL=$(dpkg-query -W -f='${Version}' libdnnl-dev 2>/dev/null || echo '?')
export B_TORCH=$([ $have_torch = 1 ] && "$PY" -c 'import torch; print(torch.__version__)' || echo n/a)
export B_ORT=$([ $have_ort = 1 ] && node -p \
	'require("./build/peer/node_modules/onnxruntime-node/package.json").version' || echo n/a)
python3 -c '
import json, os, sys
e = os.environ
meta = {"command": e["B_COMMAND"], "date": e["B_DATE"], "cpu": e["B_CPU"],
        "cores": int(e["B_CORES"]), "threads": int(e["B_THREADS"]), "reps": int(e["B_REPS"]),
        "peak": json.loads(e["B_PEAK"]),
        "flops": {k: int(v) for k, v in (kv.split("=", 1) for kv in e["B_FLOPS"].split())},
        "models": dict(kv.split("=", 1) for kv in e["B_PATHS"].split()),
        "versions": {"oneDNN (libdnnl-dev)": e["B_DNNL"], "onnxruntime-node": e["B_ORT"],
                     "PyTorch": e["B_TORCH"]},
        "load": e["B_LOAD"].split(), "notes": open(e["B_NOTES"]).read().splitlines(),
        "calib": dict(kv.split("=", 1) for kv in e["B_CALIB"].split()),
        "loaded_note": e["B_LOADED"], "quiet_note": e["B_QUIET"],
        "int8_agree": [json.loads(l) for l in open(e["B_AGREE"]) if l.startswith("{")],
        "ort_profile": [json.loads(l) for l in open(e["B_PROF"]) if l.startswith("{")]}
json.dump(meta, open(sys.argv[1], "w"), indent=1)' "$META"
python3 bench/engine/engine_report.py "$RES" "$META" ${DOC:+--doc "$DOC"}
[ "${KEEP_TAILS:-0}" = 1 ] || rm -rf "$W/tails"
log "done in $(($(date +%s) - T0)) s; raw results in $RES"
# The CHECK FAILED lines again, last, where they are seen; a failed check fails the run.
python3 bench/engine/engine_report.py --failed "$META" >&2
