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
# tail written by `tailgate-model extract`), PyTorch fp32 eager (bench/engine/torch_bench.py).
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
# compared (bench/engine/torch_bench.py --check), where PyTorch has the file's weights.
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

# ---- splits, their ONNX names and FLOPs; tails for ORT ----
declare -A NAME FLOPS
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
				${dt:+--dtype $dt} --json 2>&1); then
				tag "$a" "$s" "$rt" "$rep" <<<"$out"
			else
				err_row "$a" "$s" "$b" "$rt" "$rep" "$(tail -n 1 <<<"$out")"
			fi
		done
	done
}

run_ort() {	# arch rep
	local a=$1 rep=$2 s b f line
	[ $have_ort = 1 ] || return 0
	for s in ${SPLITS[$a]}; do
		[ -n "${NAME[$a/$s]:-}" ] || continue
		for b in $BATCHES; do
			f=$W/tails/${a}_${s}_b$b.onnx
			if [ ! -e "$f" ]; then err_row "$a" "$s" "$b" ort "$rep" "no extracted tail"; continue; fi
			line=$(node bench/engine/ort_bench.js --threads "$THREADS" --min-time "$MIN_TIME" \
				--min-runs 3 "$f" 2>&1 | tail -n 1)
			if [[ "$line" == *'"error"'* || "$line" != '{'* ]]; then
				err_row "$a" "$s" "$b" ort "$rep" "${line:0:200}"
			else
				tag "$a" "$s" ort "$rep" <<<"$line"
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

load1() { cut -d' ' -f1 /proc/loadavg; }
LOAD0=$(load1)
[ "${LOAD0%.*}" -ge 1 ] && log "load average is $LOAD0: the machine is busy, numbers will be low"

order=(tailgate ort torch)
for ((rep = 1; rep <= REPS; rep++)); do
	for a in "${archs[@]}"; do
		for rt in "${order[@]}"; do
			log "rep $rep/$REPS $a $rt ($(($(date +%s) - T0)) s)"
			case $rt in
			tailgate)
				run_tailgate "$a" "$rep"
				[ $have_int8 = 1 ] && run_tailgate "$a" "$rep" int8 ;;
			ort) run_ort "$a" "$rep" ;;
			torch) run_torch "$a" "$rep" ;;
			esac
		done
	done
	order=("${order[@]:1}" "${order[0]}")	# rotate: every runtime goes first once
done
LOAD1=$(load1)

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
export B_LOAD="$LOAD0 $LOAD1" B_NOTES=$NOTES B_PATHS=$paths_kv
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
        "load": e["B_LOAD"].split(), "notes": open(e["B_NOTES"]).read().splitlines()}
json.dump(meta, open(sys.argv[1], "w"), indent=1)' "$META"
python3 bench/engine/engine_report.py "$RES" "$META" ${DOC:+--doc "$DOC"}
[ "${KEEP_TAILS:-0}" = 1 ] || rm -rf "$W/tails"
log "done in $(($(date +%s) - T0)) s; raw results in $RES"
