#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo's table of the variants (scripts/demo_variants.py) on made-up bench JSONs: one row
# per run, named by model.conf's variant line, with its own requests, other-variant answers,
# latency, accuracy and early-exit share; the card's final accuracy in the served precision
# (int8 here) from the variant's accuracy= (the base's 'accuracy = final:' line); a figure the
# run or model.conf lacks reads "?", never a made-up one; a missing file is named.
# Usage: tests/demo_variants.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_dvar.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

cat >"$TMP/model.conf" <<'CONF'
id = 1
dtype = int8
accuracy = final:92.40:92.32
variant = 1 sparse splits=0,4,6,8 exits=exit1:0.5 accuracy=exit1:51.03:48.93,final:80.20:80.04
variant = 2 nob1 drop=/layer1/layer1.0/Add
CONF
echo '{"result": {"variant": 0, "ok": 1190, "scheduled": 1204, "other_variant": 0, "latency_ms": {"p50": 4.5, "p99": 30.25}, "accuracy": 93.81, "exits": {"exit1": 800, "exit2": 200, "final": 190}}}' >"$TMP/b0.json"
echo '{"result": {"variant": 1, "ok": 200, "scheduled": 200, "other_variant": 3, "latency_ms": {"p50": 2.5, "p99": 9.0}, "accuracy": 82.5, "exits": {"exit1": 0, "exit2": 50, "final": 150}}}' >"$TMP/b1.json"
echo '{"result": {"variant": 2, "ok": 10, "scheduled": 12}}' >"$TMP/b2.json"
/usr/bin/python3 scripts/demo_variants.py "$TMP/model.conf" "$TMP/b0.json" "$TMP/b1.json" \
	"$TMP/b2.json" "$TMP/missing.json" >"$TMP/out" 2>"$TMP/err"
rc=$?
sed 's/^/    | /' "$TMP/out"
row() { grep -E "^$1 " "$TMP/out" | tr -s ' '; }
check "it runs (status $rc, $(head -c 200 "$TMP/err"))" test "$rc" -eq 0 -a ! -s "$TMP/err"
check "base row: 1190/1204 OK, 0 other, p50 4.50, p99 30.25, 93.81%, 84.0% early, card int8 92.32%" \
	test "$(row '0 base')" = "0 base 1190/1204 0 4.50 30.25 93.81% 84.0% 92.32%"
check "sparse row: its own figures, 3 other, 25.0% early, its card int8 80.04%" \
	test "$(row '1 sparse')" = "1 sparse 200/200 3 2.50 9.00 82.50% 25.0% 80.04%"
check "nob1 row: what the run and model.conf lack is '?'" \
	test "$(row '2 nob1')" = "2 nob1 10/12 ? ? ? ? ? ?"
check "a missing file is named" grep -q "missing.json: no result" "$TMP/out"
sed -i 's/^dtype = int8/dtype = f32/' "$TMP/model.conf"
/usr/bin/python3 scripts/demo_variants.py "$TMP/model.conf" "$TMP/b1.json" >"$TMP/out32" 2>&1
check "served in f32: the card's fp32 figure (80.20%)" \
	test "$(grep -E '^1 sparse ' "$TMP/out32" | tr -s ' ' | cut -d" " -f9)" = "80.20%"
usage=$(/usr/bin/python3 scripts/demo_variants.py 2>&1 >/dev/null; echo "rc=$?")
check "no arguments: usage, exit 2" grep -q "rc=2" <<<"$usage"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
