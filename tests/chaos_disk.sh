#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Disk full under load: tailgate serves the shipped model with its access log on a 256 KiB
# tmpfs, of which a filler file leaves 48 KiB (about 200 lines); the event log is on another
# file system. gw_client sends 200 requests/s for 4 s (about 800 answers, 180 KB of lines):
# the disk fills mid-run. Checked:
#   - the gateway keeps serving: every request answered, tailgate still up;
#   - the event log says so once (one "write failed: No space left on device" line for the
#     episode, not one per record), /metrics shows it (tailgate_log_failing{log="access"} 1,
#     dropped{reason="disk_full"} > 0), and produced = written + dropped;
#   - no torn line: every line of the access log is one JSON object, and there are exactly
#     tailgate_log_written_total{log="access"} of them;
#   - after the filler is removed, a second run's answers are all logged: the event log says
#     "writing again", failing is 0, written grew by every record produced meanwhile;
#   - SIGTERM: exit 0, and the event log's last line counts exactly the access log's lines.
# Usage: tests/chaos_disk.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgcd$$ SUBNET=41
TMP=$(mktemp -d /tmp/tg_chdisk.XXXXXX)
DISK=$TMP/disk
. tests/gw_lib.bash
. tests/chaos_lib.bash	# chaos_figure: a row of the "Faults and attacks" table
disk_cleanup() {
	gw_stop_kill
	mountpoint -q "$DISK" && umount -l "$DISK"
	gw_cleanup
}
trap disk_cleanup EXIT
trap 'exit 130' INT TERM

FM=/usr/share/datasets/fashion-mnist
gw_require "$BUILD/tailgate" "$BUILD/tests/gw_client"
if ! command -v python3 >/dev/null || ! command -v mountpoint >/dev/null; then
	echo "skip: needs python3 (the JSON check) and mountpoint"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
fi

gw_repo "$TMP/repo"
cat >"$TMP/tailgate.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
fsync_ms = 100
CONF

out=$TMP/run
mkdir -p "$DISK" "$out"
if ! mount -t tmpfs -o size=256k tg_chaos_disk "$DISK"; then
	bad "mount a 256 KiB tmpfs on $DISK"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
dd if=/dev/zero of="$DISK/filler" bs=4k count=52 status=none	# 48 KiB left
if ! ns_up; then
	bad "namespaces"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
# The later --access-log wins over gw_start's own.
if ! gw_start "$TMP/tailgate.conf" "$out" --engine-threads 2 --access-log "$DISK/access.log"; then
	bad "tailgate started"
	echo "$pass passed, $fail failed, $skip skipped"
	exit 1
fi
ok "tailgate started, access log on a 256 KiB tmpfs with 48 KiB free"

client() {	# out_file client_base seconds
	ip netns exec "$NS_CL" timeout 60 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --fmnist "$FM" --images 64 \
		--block 64 --splits 8 --dtypes u8 --clients 2 --client-base "$2" \
		--rate 200 --duration "$3" --deadline-us 2000000 --drain-ms 5000 \
		>"$1" 2>"$1.err"
}
# The access log's lines: all JSON objects with a newline at the end; prints how many, or
# "torn" / "bad LINE" when one is not.
json_lines() {
	python3 - "$1" <<'PY'
import json, sys
n = 0
with open(sys.argv[1], 'rb') as f:
    data = f.read()
if data and not data.endswith(b'\n'):
    print('torn'); sys.exit(0)
for line in data.splitlines():
    try:
        if not isinstance(json.loads(line), dict):
            raise ValueError
    except ValueError:
        print('bad %d' % (n + 1)); sys.exit(0)
    n += 1
print(n)
PY
}
acc() { metric "$1" "$2{log=\"access\"}"; }
dropped() { metric "$1" "tailgate_log_dropped_total{log=\"access\",reason=\"$2\"}"; }
adds_up() {	# metrics file: produced = written + every dropped reason (nothing in flight)
	local p w d
	p=$(acc "$1" tailgate_log_produced_total) w=$(acc "$1" tailgate_log_written_total)
	d=$(( $(dropped "$1" ring_full) + $(dropped "$1" disk_full) + $(dropped "$1" write_error) ))
	[ -n "$p" ] && [ -n "$w" ] && [ "$p" -eq $((w + d)) ]
}
# Scrape until produced = written + dropped (the writer has caught up), at most 10 s.
settle() {	# metrics file
	for _ in $(seq 50); do
		http_get /metrics "$1"
		adds_up "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# The client's neighbour entry first: a HELLO queued behind an unanswered ARP for longer than
# gw_client waits for its reply (3 x 200 ms, on a loaded machine) leaves it session 0.
for _ in $(seq 10); do
	ip netns exec "$NS_CL" ping -c 1 -W 1 "$IP_GW" >/dev/null 2>&1 && break
done

# 1. The disk fills under load.
client "$out/fill" 1000 4
rc=$?
echo "  fill: $(tr '\n' ' ' <"$out/fill")" | fold -s -w 100
check "disk full: every request answered (client status $rc, lost $(val lost "$out/fill"))" \
	test "$rc" -eq 0 -a "$(val lost "$out/fill")" -eq 0 -a "$(val sent "$out/fill")" -gt 0
check "disk full: tailgate still up" kill -0 "$gw_pid"
settle "$out/m1"
check "disk full: produced = written + dropped" adds_up "$out/m1"
d1=$(dropped "$out/m1" disk_full) w1=$(acc "$out/m1" tailgate_log_written_total)
p1=$(acc "$out/m1" tailgate_log_produced_total)
echo "  access log: produced ${p1:-?}, written ${w1:-?}, lost to the full disk ${d1:-?}"
# Answers the RX lcore gives itself (refusals before the scheduler) have no access record.
echo "  answers without a record (RX lcore refusals): client_inflight" \
	"$(metric "$out/m1" 'tailgate_dp_drops_total{reason="client_inflight"}')," \
	"pool_full $(metric "$out/m1" 'tailgate_dp_drops_total{reason="pool_full"}')"
check "disk full: /metrics shows lost records (disk_full ${d1:-none})" test "${d1:-0}" -gt 0
check "disk full: /metrics says the access log is failing" \
	test "$(acc "$out/m1" tailgate_log_failing)" = 1
n1=$(json_lines "$DISK/access.log")
check "disk full: no torn line, every line JSON, as many as written ($n1, ${w1:-none})" \
	test "$n1" = "${w1:-none}"
check "disk full: one event line for the episode" \
	test "$(grep -c 'access log .*write failed: No space left on device' "$out/event.log")" -eq 1

# 2. Room again: logging resumes cleanly.
rm -f "$DISK/filler"
client "$out/room" 2000 2
rc=$?
echo "  room: $(tr '\n' ' ' <"$out/room")" | fold -s -w 100
check "room again: every request answered (client status $rc)" \
	test "$rc" -eq 0 -a "$(val lost "$out/room")" -eq 0
settle "$out/m2"
d2=$(dropped "$out/m2" disk_full) w2=$(acc "$out/m2" tailgate_log_written_total)
p2=$(acc "$out/m2" tailgate_log_produced_total)
check "room again: every record since written ($((${w2:-0} - ${w1:-0})) of $((${p2:-0} - ${p1:-0})))" \
	test -n "$w2" -a "$((w2 - w1))" -eq "$((p2 - p1))" -a "$((p2 - p1))" -gt 0 -a "$d2" -eq "$d1"
check "room again: /metrics says it is no longer failing" \
	test "$(acc "$out/m2" tailgate_log_failing)" = 0
check "room again: the event log says writing again" \
	grep -q 'access log .*writing again; [0-9]* record(s) lost' "$out/event.log"
n2=$(json_lines "$DISK/access.log")
check "room again: no torn line, every line JSON, as many as written ($n2, ${w2:-none})" \
	test "$n2" = "${w2:-none}"

# 3. SIGTERM: the last event line counts what the access log holds.
gw_term
rc=$?
check "SIGTERM: tailgate exited 0 (status $rc)" test "$rc" -eq 0
last=$(tail -n 1 "$out/event.log")
echo "  last event line: ${last#* }"
lw=$(sed -n 's/.*log: closed: access [0-9]* produced, \([0-9]*\) written.*/\1/p' <<<"$last")
n3=$(json_lines "$DISK/access.log")
check "SIGTERM: the last event line's written count is the access log's lines (${lw:-none}, $n3)" \
	test "${lw:-none}" = "$n3"
chaos_figure "log disk full" "$([ "$fail" -eq 0 ] && echo pass || echo FAIL)" \
	"every request answered while full and after; access log: ${p1:-?} produced, ${w1:-?} written, ${d1:-?} counted lost to the full disk, no torn line; after room again all $((${p2:-0} - ${p1:-0})) new records written"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
