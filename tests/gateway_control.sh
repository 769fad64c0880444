#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The control plane as Prometheus, a JSON client and DPDK's telemetry client see it, on a
# gateway on net_null (no namespaces, no traffic needed). The repository serves the
# multi-exit fixture under a folder name with a quote and a backslash, its ONNX exit names
# rewritten to hold a quote (ex"t1) and a backslash (ex\t2): names that need escaping in
# every format. Checked: /metrics passes `promtool check metrics` (Debian's prometheus
# package) and has tailgate_build_info; /v1/models is valid JSON holding those names
# exactly; tailgate's own telemetry commands (/tailgate/models, /tailgate/model,ID with a bad
# and an unknown id, /tailgate/sessions) answer.
# Usage: tests/gateway_control.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_control.XXXXXX)
PREFIX=tg_ctl$$
gw_pid=
cleanup() {
	[ -n "$gw_pid" ] && kill -KILL "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
	rm -rf "$TMP" "/var/run/dpdk/$PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
. tests/check_lib.bash

http_get() {	# port path out
	timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1 &&
		printf "GET %s HTTP/1.0\r\nHost: x\r\n\r\n" "$2" >&3 && cat <&3' _ "$1" "$2" >"$3.http" &&
		sed '1,/^\r$/d' "$3.http" >"$3"
}

MODEL='q"uo\te'
mkdir -p "$TMP/repo/$MODEL"
python3 - "$TMP/repo/$MODEL/model.onnx" <<'PY'
import sys
d = open("tests/fixtures/multiexit/model.onnx", "rb").read()
# Same lengths: every protobuf string keeps its size, only names change.
d = d.replace(b"exit1", b'ex"t1').replace(b"exit2", b"ex\\t2")
open(sys.argv[1], "wb").write(d)
PY
printf 'id = 7\nsplits = 0, 4\nexit = ex"t1:0.9\n' >"$TMP/repo/$MODEL/model.conf"

timeout 120 "$BUILD/tailgate" --address 10.78.9.1 --models "$TMP/repo" --metrics 127.0.0.1:0 \
	--workers 1 --engine-threads 1 --ready "$TMP/ready" -- \
	--no-huge --no-shconf -m 512 --no-pci -l 0-1 --vdev net_null0 --file-prefix "$PREFIX" \
	--log-level='lib.*:warning' >"$TMP/gw.out" 2>"$TMP/gw.err" &
gw_pid=$!
for _ in $(seq 300); do
	[ -f "$TMP/ready" ] && break
	kill -0 "$gw_pid" 2>/dev/null || break
	sleep 0.2
done
check "tailgate started on net_null serving model '$MODEL'" test -f "$TMP/ready"
[ -f "$TMP/ready" ] || sed 's/^/    | /' "$TMP/gw.err" | tail -n 8
port=$(sed -n 's/^tailgate: control plane on port \([0-9]*\)$/\1/p' "$TMP/gw.err")

http_get "$port" /metrics "$TMP/metrics"
check "/metrics scraped ($(wc -l <"$TMP/metrics" 2>/dev/null) lines)" test -s "$TMP/metrics"
if command -v promtool >/dev/null; then
	promtool check metrics <"$TMP/metrics" >"$TMP/promtool" 2>&1
	rc=$?
	check "promtool check metrics: clean (status $rc)" test "$rc" -eq 0 -a ! -s "$TMP/promtool"
	sed 's/^/    | /' "$TMP/promtool" | head -n 20
else
	bad "promtool missing (Debian package prometheus; make deps installs it)"
fi
check "tailgate_build_info says the version" \
	grep -qE '^tailgate_build_info\{version="[0-9]+\.[0-9]+\.[0-9]+",git="[^"]+"\} 1$' "$TMP/metrics"
check "the histograms are labelled by model, escaped" \
	grep -qF 'tailgate_queue_seconds_count{model="q\"uo\\te"} 0' "$TMP/metrics"
check "batch sizes by model" grep -qF 'tailgate_batch_size_count{model="q\"uo\\te"} 0' "$TMP/metrics"
check "no series for model=\"unknown\" before any such request" \
	test "$(grep -c 'model="unknown"' "$TMP/metrics")" -eq 0
check "every counter ends in _total" \
	test "$(awk '$1 == "#" && $2 == "TYPE" && $4 == "counter" && $3 !~ /_total$/' "$TMP/metrics" | wc -l)" -eq 0

http_get "$port" /v1/models "$TMP/models"
python3 - "$TMP/models" "$MODEL" >"$TMP/json.out" 2>&1 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
m = doc["models"][0]
assert m["name"] == sys.argv[2], m["name"]
names = [e["name"] for e in m["exits"]]
assert names == ['ex"t1', 'ex\\t2', "final"], names
assert [s["split_id"] for s in m["splits"]] == [0, 4], m["splits"]
assert m["exits"][0]["confidence"] == 0.9 and m["exits"][1]["confidence"] is None, m["exits"]
print("ok")
PY
check "/v1/models is valid JSON with the names as written: $(tail -n 1 "$TMP/json.out")" \
	grep -qx ok "$TMP/json.out"

# DPDK's telemetry socket (v2: a JSON reply to every command written to a SEQPACKET socket).
python3 - "/var/run/dpdk/$PREFIX/dpdk_telemetry.v2" "$MODEL" >"$TMP/tel.out" 2>&1 <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.recv(1 << 16)				# the greeting
def ask(cmd):
    s.send(cmd.encode())
    return json.loads(s.recv(1 << 20).decode())
cmds = ask("/")["/"]
print("commands", " ".join(c for c in cmds if c.startswith("/tailgate")))
models = ask("/tailgate/models")["/tailgate/models"]
assert models == [7], models
m = ask("/tailgate/model,7")["/tailgate/model"]
assert m["name"] == sys.argv[2] and m["splits"] == [0, 4], m
bad = ask("/tailgate/model,7x")["/tailgate/model"]
assert "usage" in bad["error"], bad
assert "error" in ask("/tailgate/model,8")["/tailgate/model"]
sess = ask("/tailgate/sessions")["/tailgate/sessions"]
assert sess["sessions"] == 0 and sess["max_sessions"] > 0, sess
print("ok")
PY
check "telemetry: /tailgate/models and /tailgate/sessions answer: $(tail -n 1 "$TMP/tel.out")" \
	grep -qx ok "$TMP/tel.out"
grep -v '^ok$' "$TMP/tel.out" | sed 's/^/    | /' | head -n 8

kill -TERM "$gw_pid" 2>/dev/null
wait "$gw_pid"
rc=$?
gw_pid=
check "SIGTERM: exit 0 (status $rc)" test "$rc" -eq 0
check_done
