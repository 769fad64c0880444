#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The control plane as Prometheus, a JSON client and DPDK's telemetry client see it, on a
# gateway on net_null (no namespaces, no traffic needed). The repository serves the
# multi-exit fixture under a folder name with a quote and a backslash, its ONNX exit names
# rewritten to hold a quote (ex"t1) and a backslash (ex\t2): names that need escaping in
# every format. Checked: /metrics passes `promtool check metrics` (Debian's prometheus
# package) and has tailgate_build_info; /v1/models is valid JSON holding those names
# exactly; under a systemd-style NOTIFY_SOCKET (a Python listener) it says READY=1 once
# serving, RELOADING=1 then READY=1 around a SIGHUP, WATCHDOG=1 keep-alives with
# WATCHDOG_USEC, STOPPING=1 on SIGTERM. The operator's flags: --version, --check-config on a
# valid configuration (exit 0), a broken model (1) and a broken file (2), and EAL without
# hugepages ends with a hint saying what to do. Tailgate's own telemetry commands (/tailgate/models, /tailgate/model,ID with a bad
# and an unknown id, /tailgate/sessions) answer.
# Usage: tests/gateway_control.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_control.XXXXXX)
PREFIX=tg_ctl$$
gw_pid=
notify_pid=
cleanup() {
	[ -n "$gw_pid" ] && kill -KILL "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null
	[ -n "$notify_pid" ] && kill "$notify_pid" 2>/dev/null
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

# The operator's flags, before anything starts.
for prog in tailgate tailgate-model tailgate-bench tgc-example; do
	check "--version: $prog X.Y.Z (git ...), the same release for every program" \
		bash -c "'$BUILD/$prog' --version | grep -qE '^$prog [0-9]+\.[0-9]+\.[0-9]+ \(git [^)]+\)$' &&
			 [ \"\$('$BUILD/$prog' --version | cut -d' ' -f2)\" = \"\$('$BUILD/tailgate' --version | cut -d' ' -f2)\" ]"
done
printf 'address = 10.78.9.1\nmodels = %s\n' "$TMP/repo" >"$TMP/good.conf"
"$BUILD/tailgate" --check-config "$TMP/good.conf" >"$TMP/cc.out" 2>&1
rc=$?
check "--check-config: a valid file and repository, exit 0, what would be served printed" \
	bash -c "[ $rc -eq 0 ] && grep -q '^model q\"uo.te: id 7' '$TMP/cc.out' &&
		 grep -qx 'tailgate: $TMP/good.conf: valid' '$TMP/cc.out'"
mkdir -p "$TMP/badrepo/m"
cp "$TMP/repo/$MODEL/model.onnx" "$TMP/badrepo/m/"
printf 'id = 7\nsplits = 0, 99\n' >"$TMP/badrepo/m/model.conf"
printf 'address = 10.78.9.1\nmodels = %s\n' "$TMP/badrepo" >"$TMP/badm.conf"
"$BUILD/tailgate" --check-config "$TMP/badm.conf" >"$TMP/cc2.out" 2>&1
rc=$?
check "--check-config: a split the model lacks, exit 1, named ($(tail -n 1 "$TMP/cc2.out"))" \
	bash -c "[ $rc -eq 1 ] && grep -q 'model.conf' '$TMP/cc2.out'"
printf 'address = 10.78.9.1\nworkers = many\n' >"$TMP/bad.conf"
"$BUILD/tailgate" --check-config "$TMP/bad.conf" >"$TMP/cc3.out" 2>&1
rc=$?
check "--check-config: a bad key value, exit 2, file:line:key" \
	bash -c "[ $rc -eq 2 ] && grep -q 'bad.conf:2: workers' '$TMP/cc3.out'"
mkdir -p "$TMP/nohuge"
timeout 60 "$BUILD/tailgate" --address 10.78.9.1 --models "$TMP/repo" -- -l 0-1 --no-pci \
	--vdev net_null0 --huge-dir "$TMP/nohuge" --file-prefix "${PREFIX}_hp" \
	--log-level='lib.*:warning' >/dev/null 2>"$TMP/hp.err"
rc=$?
rm -rf "/var/run/dpdk/${PREFIX}_hp"
check "EAL without usable hugepages: exit 1 with a hint ($(grep -o 'hint: [^:;]*' "$TMP/hp.err"))" \
	bash -c "[ $rc -eq 1 ] && grep -q '^tailgate: EAL init: .*hint: .*\(hugepages\|root\)' '$TMP/hp.err'"

# A service manager's notification socket (sd_notify(3)): every datagram, one per line.
python3 - "$TMP/notify" "$TMP/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(1.0)
end = time.time() + 200
with open(sys.argv[2], "w", buffering=1) as log:
    while time.time() < end:
        try:
            log.write(s.recv(4096).decode().replace("\n", " ") + "\n")
        except socket.timeout:
            pass
PY
notify_pid=$!
for _ in $(seq 50); do [ -S "$TMP/notify" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$TMP/notify WATCHDOG_USEC=400000 \
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
port=
for _ in $(seq 50); do
	port=$(sed -n 's/^tailgate: control plane on port \([0-9]*\)$/\1/p' "$TMP/gw.err")
	[ -n "$port" ] && break
	sleep 0.1
done
check "control plane port printed (${port:-none})" test -n "$port"

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

# tailgate-model's --json goes through jansson too: the model's path and exit names hold a
# quote and a backslash.
"$BUILD/tailgate-model" eval "$TMP/repo/$MODEL/model.onnx" --fashion-mnist --limit 20 --json \
	>"$TMP/eval.json" 2>"$TMP/eval.err"
python3 - "$TMP/eval.json" "$TMP/repo/$MODEL/model.onnx" >"$TMP/evalj.out" 2>&1 <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["model"] == sys.argv[2], doc["model"]
assert [e["name"] for e in doc["exits"]] == ['ex"t1', 'ex\\t2', "final"], doc["exits"]
assert doc["images"] == 20 and all(0 <= e["correct"] <= 20 for e in doc["exits"]), doc
print("ok")
PY
check "tailgate-model eval --json is valid JSON with the names as written: $(tail -n 1 "$TMP/evalj.out")" \
	grep -qx ok "$TMP/evalj.out"

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

check "sd_notify: READY=1 once serving" grep -q '^READY=1 STATUS=serving 1 model' "$TMP/notify.log"
kill -HUP "$gw_pid"
for _ in $(seq 600); do	# a reload builds and measures plans: slow on a busy machine
	grep -q 'STATUS=serving generation 2' "$TMP/notify.log" 2>/dev/null && break
	sleep 0.2
done
rl=$(grep -n '^RELOADING=1' "$TMP/notify.log" | head -n 1 | cut -d: -f1)
rd=$(grep -n '^READY=1 STATUS=serving generation 2' "$TMP/notify.log" | head -n 1 | cut -d: -f1)
check "sd_notify: SIGHUP: RELOADING=1 (line ${rl:-none}), then READY=1 on generation 2 (${rd:-none})" \
	test -n "$rl" -a -n "$rd" -a "${rl:-0}" -lt "${rd:-0}"
check "sd_notify: WATCHDOG=1 keep-alives with WATCHDOG_USEC ($(grep -c '^WATCHDOG=1' "$TMP/notify.log"))" \
	test "$(grep -c '^WATCHDOG=1' "$TMP/notify.log")" -ge 2
kill -TERM "$gw_pid" 2>/dev/null
wait "$gw_pid"
rc=$?
gw_pid=
check "SIGTERM: exit 0 (status $rc)" test "$rc" -eq 0
sleep 1.2	# the listener writes what it got
check "sd_notify: STOPPING=1 on SIGTERM" grep -q '^STOPPING=1' "$TMP/notify.log"
kill "$notify_pid" 2>/dev/null
wait "$notify_pid" 2>/dev/null
check_done
