#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tailgate-bench on a model that is not Fashion-MNIST: the gateway serves the ResNet-style
# fixture resnet_bn (input [N,3,16,16], 10 classes) and the bench brings its own inputs. First a
# folder of .npy files (--inputs: the fixture's 3 samples as one [3,3,16,16] file plus one [3,16,16]
# sample, and labels.npy: PyTorch's own top-1 for each), so accuracy means agreement with
# PyTorch; then random samples of the model's input shape (--random, no labels). Checked:
# every request answered OK, the answers agree 100% with the engine's offline answers of the
# same bytes, the accuracy against PyTorch's classes is reported (and 100% for f32), no
# accuracy is claimed without labels; and the error when the inputs do not fit the model.
# The same gateway also serves the MobileNet-style fixture mobilenet (input [N,3,20,20]:
# depthwise convs, squeeze-excitation, HardSwish), benched with --random at a few hundred
# requests/s from 100 devices. A gateway that dies keeps its evidence: it runs in its own
# folder with core dumps on (core_pattern "core" writes them there), and that folder, its
# config, logs and the bench's output are copied to BUILD/crash.PID, named in the output.
# Usage: tests/bench_anymodel.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
BUILD=$(cd "$BUILD" 2>/dev/null && pwd || echo "$BUILD")

NAME=tgany$$ NET=10.83 SUBNET=0
TMP=$(mktemp -d /tmp/tg_anymodel.XXXXXX)
. tests/gw_lib.bash
# A dead gateway's folder (core, gw.err, config, bench output) outlives the cleanup.
keep_crash() {
	local keep=$BUILD/crash.$$
	[ -d "$keep" ] && return 0
	mkdir -p "$keep" && cp -a "$TMP/." "$keep/" 2>/dev/null
	echo "FAIL the gateway died: everything kept in $keep (gw.err, tailgate.conf, core if any)"
}
gw_alive() {	# label: fails, and keeps the evidence, when the gateway has died
	kill -0 "$gw_pid" 2>/dev/null && return 0
	keep_crash
	return 1
}
trap 'gw_pid_was=$gw_pid; [ -n "$gw_pid_was" ] && ! kill -0 "$gw_pid_was" 2>/dev/null && keep_crash; gw_cleanup' EXIT
trap 'exit 130' INT TERM
jv() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["result"]
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$2" "$1" 2>/dev/null || echo -1; }

gw_require "$BUILD/tailgate" "$BUILD/tailgate-bench"
FIX=tests/fixtures/resnet_bn
MNET=tests/fixtures/mobilenet
mkdir -p "$TMP/repo/resnet_bn" "$TMP/repo/mobilenet" "$TMP/in" "$TMP/bad"
ln -s "$PWD/$FIX/model.onnx" "$TMP/repo/resnet_bn/model.onnx"
printf 'id = 2\nsplits = 0, 4, 8\nmax_batch = 8\ndeadline_ms = 10000\ntop_k = 1\n' \
	>"$TMP/repo/resnet_bn/model.conf"
ln -s "$PWD/$MNET/model.onnx" "$TMP/repo/mobilenet/model.onnx"
printf 'id = 3\nsplits = 0, 3, 9\nmax_batch = 8\ndeadline_ms = 10000\ntop_k = 1\n' \
	>"$TMP/repo/mobilenet/model.conf"
if ! /usr/bin/python3 - "$FIX" "$TMP/in" "$TMP/bad" <<'PY'; then
import sys
import numpy as np
fix, out, bad = sys.argv[1:4]
x = np.load(f"{fix}/input.npy").astype(np.float32)          # [3,3,16,16]
y = np.load(f"{fix}/output_0.npy")                          # PyTorch's outputs
np.save(f"{out}/a_batch.npy", x)
np.save(f"{out}/b_one.npy", x[1])                           # one sample, no batch dim
np.save(f"{out}/labels.npy", np.concatenate([y.argmax(1), y[1:2].argmax(1)]).astype(np.int64))
np.save(f"{bad}/wrong.npy", np.zeros((2, 1, 28, 28), np.float32))
PY
	bad "numpy (python3-numpy) made the inputs"
fi
cat >"$TMP/tailgate.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
max_inflight_messages = 1024
msg_timeout_us = 10000000
CONF

out=$TMP/run
ns_up_or_exit
ulimit -c unlimited 2>/dev/null
cd "$TMP"	# the gateway's working directory: where a core dump lands
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 1; then
	cd - >/dev/null
	bad "tailgate started"
	check_done
	exit 1
fi
cd - >/dev/null
ok "tailgate serves the resnet_bn (input [N,3,16,16]) and mobilenet ([N,3,20,20]) fixtures"

bench() {	# label, extra options...
	local label=$1
	shift
	echo "$*" >"$out/$label.cmd"
	ip netns exec "$NS_CL" timeout 300 "$BUILD/tailgate-bench" --gateway "$IP_GW" \
		--bind "$IP_CL" --model "$FIX/model.onnx" --model-id 2 --devices 20 --rate 40 \
		--requests 160 --warmup 0 --drain 20 --quiet --no-cache --threads 1 \
		--mix 'split=0,4,8;dtype=f32,u8;uplink=0;deadline=10s' --json "$out/$label.json" \
		"$@" >"$out/$label.out" 2>"$out/$label.err"
}

bench folder --inputs "$TMP/in" --check
rc=$?
sed 's/^/    ! /' "$out/folder.err" | grep -v progress | tail -n 4
check "--inputs: the bench ran with --check passing (status $rc)" test "$rc" -eq 0
check "--inputs: 4 samples from the folder, labels.npy read" \
	grep -q '^samples .*4 samples from .* with labels.npy' "$out/folder.out"
check "--inputs: 160 requests, all answered OK" \
	test "$(jv ok "$out/folder.json")" -eq 160 -a "$(jv scheduled "$out/folder.json")" -eq 160
check "--inputs: agreement with the engine's offline answers 100% ($(jv agreement "$out/folder.json"))" \
	python3 -c "import sys; sys.exit(abs(float(sys.argv[1]) - 100) > 1e-9)" "$(jv agreement "$out/folder.json")"
acc=$(jv accuracy "$out/folder.json")
check "--inputs: accuracy against PyTorch's classes reported, at least 90% with u8 ($acc%)" \
	python3 -c "import sys; sys.exit(not float(sys.argv[1]) >= 90)" "$acc"

bench random --random 16 --seed 7 --check
rc=$?
check "--random: the bench ran with --check passing (status $rc)" test "$rc" -eq 0
check "--random: 160 answered OK, agreement 100%" \
	test "$(jv ok "$out/random.json")" -eq 160 -a "$(jv agreement "$out/random.json" | cut -d. -f1)" -eq 100
check "--random: no accuracy without labels (JSON null, table says so)" \
	bash -c "[ '$(jv accuracy "$out/random.json")' = None ] &&
		 grep -q '^accuracy  *none: the inputs have no labels' '$out/random.out'"

# A sweep of at most two steps (a busy machine may call the first saturated: achieved under
# 95% of offered): one .hgrm per step beside the last step's, one CDF line per step.
bench sweep --random 16 --sweep --rate 10 --sweep-factor 2 --sweep-steps 2 --requests 40 \
	--hgrm "$out/sw.hgrm" --plot "$out/plots"
rc=$?
steps_ok=$(python3 -c 'import json,sys; print(" ".join(str(s["ok"]) for s in json.load(open(sys.argv[1]))["sweep"]))' \
	"$out/sweep.json" 2>/dev/null)
n_steps=$(wc -w <<<"$steps_ok")
check "sweep: ran (status $rc, OK per step: ${steps_ok:-none})" test "$n_steps" -ge 1
n=1
for ok_n in $steps_ok; do
	check "sweep: step $n's own .hgrm counts its $ok_n OK answers" \
		grep -Eq "Total count += +$ok_n\]" "$out/sw-step$n.hgrm"
	n=$((n + 1))
done
check "sweep: --hgrm FILE still holds the last step" grep -q '^#\[Max ' "$out/sw.hgrm"
check "sweep: the CDF plot data has one block per step ($n_steps)" \
	test "$(awk 'BEGIN { b = 0 } NF == 0 { e++; next } e >= 2 || NR == 1 { b++ } { e = 0 }
		END { print b }' "$out/plots/latency_cdf.dat")" -eq "$n_steps"
if command -v gnuplot >/dev/null; then
	check "sweep: PNGs written (CDF by step, latency vs throughput)" \
		test -s "$out/plots/latency_cdf.png" -a -s "$out/plots/latency_vs_throughput.png"
fi
# The plots' script (plots.gp, kept beside them) titles both with the mix and each step's curve
# with its offered and achieved rates.
check "sweep: both plots titled with the mix" \
	test "$(grep -c '^set title .*mix split=0,4,8;dtype=f32,u8;uplink=0kbps' "$out/plots/plots.gp" 2>/dev/null)" -eq 2
check "sweep: each step's curve named by its offered and achieved rates ($n_steps)" \
	test "$(grep -o "title '[0-9.]* req/s offered, [0-9.]* achieved'" "$out/plots/plots.gp" 2>/dev/null | wc -l)" -eq "$n_steps"

# The MobileNet-style fixture: 100 devices, 300 requests/s offered, 1,500 random samples
# over splits 0, 3 and 9 (after the stem, the squeeze-excitation's pool, the block's projection).
mnet=(--model "$MNET/model.onnx" --model-id 3 --devices 100 --rate 300 --requests 1500
	--warmup 0 --drain 20 --quiet --no-cache --threads 1 --random 16 --seed 11 --check
	--mix 'split=0,3,9;dtype=f32,f16,u8;uplink=0;deadline=10s' --json "$out/mnet.json")
echo "ip netns exec $NS_CL $BUILD/tailgate-bench --gateway $IP_GW --bind $IP_CL ${mnet[*]}" \
	>"$out/mnet.cmd"
ip netns exec "$NS_CL" timeout 300 "$BUILD/tailgate-bench" --gateway "$IP_GW" --bind "$IP_CL" \
	"${mnet[@]}" >"$out/mnet.out" 2>"$out/mnet.err"
rc=$?
sed 's/^/    ! /' "$out/mnet.err" | grep -v progress | tail -n 4
check "mobilenet: the gateway is alive after 1,500 requests at 300/s" gw_alive
check "mobilenet --random: the bench ran with --check passing (status $rc)" test "$rc" -eq 0
check "mobilenet --random: 1500 answered OK of 1500, agreement 100% ($(jv agreement "$out/mnet.json"))" \
	bash -c "[ '$(jv ok "$out/mnet.json")' -eq 1500 ] && [ '$(jv scheduled "$out/mnet.json")' -eq 1500 ] &&
		 python3 -c 'import sys; sys.exit(abs(float(sys.argv[1]) - 100) > 1e-9)' '$(jv agreement "$out/mnet.json")'"
check "mobilenet --random: samples shaped [3,20,20] from the model's input" \
	grep -q '^samples .*16 random samples of \[3,20,20\]' "$out/mnet.out"

bench wrong --inputs "$TMP/bad"
rc=$?
check "inputs of another shape: refused, the file and both shapes named (status $rc)" \
	bash -c "[ $rc -ne 0 ] && grep -q 'wrong.npy: shape \[2,1,28,28\]: the model takes \[3,16,16\]' '$out/wrong.err'"
ip netns exec "$NS_CL" "$BUILD/tailgate-bench" --gateway "$IP_GW" --model "$FIX/model.onnx" \
	--rate 1 --duration 1 --no-cache >/dev/null 2>"$out/fm.err"
check "no inputs for a non-28x28 model: the error says to give --inputs or --random" \
	grep -q 'give it inputs with --inputs DIR (.npy files) or --random N' "$out/fm.err"
check "the gateway is alive at the end" gw_alive
gw_term
check_done
