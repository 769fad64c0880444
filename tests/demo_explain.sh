#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo's "how to read it" (scripts/demo_explain.py) on a made-up run: one line per figure,
# each carrying the run's own value; the accuracy lines say which precision computed them
# (model.conf's dtype: int8 as shipped, with model.calib; f32 otherwise) and quote the card's
# fp32 and int8 figures; max_batch comes from model.conf; a card without the table reads "?",
# never a made-up figure.
# Usage: tests/demo_explain.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_explain.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

mkdir -p "$TMP/m"
cat >"$TMP/m/CARD.md" <<'CARD'
| exit | output | top-1 fp32 | top-1 int8 | int8 - fp32 |
| ---: | --- | ---: | ---: | ---: |
| 0 | exit1 | 87.53% | 87.46% | -0.07 |
| 2 | final | 91.11% | 90.99% | -0.12 |
CARD
printf 'id = 1\nmax_batch = 48\ndtype = int8\n' >"$TMP/m/model.conf"
cat >"$TMP/bench.json" <<'JSON'
{"devices": 10, "result": {"offered_rps": 150.5, "achieved_rps": 151.25, "goodput_rps": 149.0,
 "window_s": 8.0, "scheduled": 1204, "answered": 1203, "ok": 1190, "timeouts": 1,
 "timer_fires": 31, "retransmits": 76, "chunks_sent": 20974, "nacks": 2, "ignored": 17,
 "accuracy": 93.81, "offline_accuracy": 93.80, "agreement": 99.92, "pendings": 5,
 "latency_ms": {"p50": 4.5, "max": 61.25}, "errors": {"unknown_request": 2},
 "statuses": {"ok": 1190, "overloaded": 11, "deadline_infeasible": 2}}}
JSON
echo 'inputs                       1000 images, 93.76% offline over all built, 197.9 MB, 30.9 s' \
	>"$TMP/report.txt"
printf 'tailgate_requests_total{model="fmnist-resnet",status="ok"} 1300\ntailgate_dp_pending_sent_total 7\ntailgate_dp_answers_resent_total 3\n# reason chunk_dup: chunk already placed (duplicate or resend)\ntailgate_dp_drops_total{reason="chunk_dup"} 212\ntailgate_dp_drops_total{reason="runt"} 0\n' \
	>"$TMP/metrics.txt"
mix='split=0,4;dtype=u8;uplink=0;deadline=100ms'
explain() { /usr/bin/python3 scripts/demo_explain.py "$TMP/bench.json" "$TMP/report.txt" \
	"$TMP/metrics.txt" "$TMP/m/CARD.md" 1000 "$mix"; }
explain >"$TMP/out" 2>"$TMP/err"
check "it runs ($(head -c 200 "$TMP/err"))" test -s "$TMP/out" -a ! -s "$TMP/err"
line() { grep "^$1" "$TMP/out"; }	# the line explaining a figure
for want in "offered 150.5 req/s" "achieved 151.2 req/s" "goodput 149.0 req/s" \
	"retransmits 76 of 20974 chunks" "timeouts 1:" "latency p50 4.5 .. max 61.25 ms" \
	"server side:" "measured requests answered 1203 of 1204" "ignored datagrams 17" \
	"ERROR answers (unknown_request 2)" "accuracy 93.81%" "offline accuracy 93.80%" \
	"inputs' offline 93.76%" "the model card's" "non-OK answers: 11 overloaded, 2 deadline_infeasible" \
	"the gateway answered 1300 requests" "the rows at 0" "the gateway's view below" \
	"dataplane drops (chunk_dup 212: chunk already placed (duplicate or resend))"; do
	check "a line explains: $want" test "$(grep -cF -- "$want" "$TMP/out")" -ge 1
done
check "accuracy: computed in int8 with model.calib, as served" \
	bash -c "grep '^accuracy 93.81%' '$TMP/out' | grep -q 'in int8 with model.calib'"
check "offline accuracy: the engine in int8 too" \
	bash -c "grep '^offline accuracy' '$TMP/out' | grep -q 'in int8 with model.calib'"
check "the card: its int8 figure as the served one, its fp32 figure beside it" \
	bash -c "grep \"^the model card's\" '$TMP/out' | grep -q '90.99% in int8 (what is served) and 91.11% in fp32'"
check "the gateway's view: max_batch from model.conf (48)" \
	bash -c "grep \"^the gateway's view\" '$TMP/out' | grep -q 'max_batch (48)'"
check "achieved above offered is explained (warm-up answers in the window)" \
	bash -c "grep '^achieved' '$TMP/out' | grep -q 'above offered'"

check "a drop reason at 0 is not listed" bash -c "! grep -q 'runt' '$TMP/out'"
printf 'id = 1\nmax_batch = 8\n' >"$TMP/m/model.conf"
explain >"$TMP/out" 2>&1
check "a model served in f32: the accuracy says f32, the card's fp32 figure first" \
	bash -c "grep '^accuracy' '$TMP/out' | grep -q 'in f32' &&
		 grep \"^the model card's\" '$TMP/out' | grep -q '91.11% in fp32 (90.99% in int8)'"
printf '# no table\n' >"$TMP/m/CARD.md"
explain >"$TMP/out" 2>&1
check "a card without the accuracy table: '?', not a figure" \
	bash -c "grep \"^the model card's\" '$TMP/out' | grep -q \"card's ?% in fp32\""
check_done
