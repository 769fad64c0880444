#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Integration: integrity and authentication (docs/protocol.md 12.5) over veth, in 10.86.0.0/24.
# tailgate serves models/fmnist-resnet with auth = required and a key file of four devices.
# Checked: a signed tgc-example (--key-file) and a signed tailgate-bench (each device its own
# key) are served (the bench every request, with resends enough for a loaded machine) and
# every reply they take is tagged; an unsigned client and one with a wrong key get no answer; a raw sender (Python, its own BLAKE2b) sees forged
# and untagged chunks from the session's address answered UNAUTHENTICATED bad_mac / no_mac,
# a chunk replayed after its answer was forgotten answered UNAUTHENTICATED replay, and
# forgeries from another address and an old HELLO nonce not answered; the refusals show in
# /metrics by reason. A SIGHUP with a new key file takes the old key away and serves the new.
# Then, auth off (CRC by default): tailgate-bench with 3% of chunks corrupted after sealing
# (the UDP checksum right for the changed bytes): every request answered OK, every answer the
# offline one, the corrupted chunks refused bad_crc. Bounded loops; everything removed on exit.
# Usage: tests/auth_gateway.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgau$$ NET=10.86 SUBNET=0
TMP=$(mktemp -d /tmp/tg_tgauth.XXXXXX)
. tests/gw_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM
jv() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["result"]
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$2" "$1" 2>/dev/null || echo -1; }
# A counter from a /metrics scrape; empty (a failed check) when the line is missing.
mval() { metric "$1" "$2"; }
gw_require "$BUILD/tailgate" "$BUILD/tailgate-bench" "$BUILD/tgc-example"

finish() {
	if [ "$fail" -ne 0 ] && [ -n "${TG_KEEP_LOGS:-}" ]; then
		rm -rf "$TG_KEEP_LOGS" && cp -r "$TMP" "$TG_KEEP_LOGS"
	fi
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
	exit
}

keyhex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
umask 077
KA=$(keyhex) KB=$(keyhex) KC=$(keyhex) KD=$(keyhex) KX=$(keyhex)
printf '# devices of the test\n201 %s\n202 %s\n203 %s\n204 %s\n' "$KA" "$KB" "$KC" "$KD" \
	>"$TMP/keys"
printf '201 %s\n' "$KX" >"$TMP/wrong"
umask 022
gw_repo "$TMP/repo"
cat >"$TMP/auth.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
max_inflight_messages = 64
max_inflight_client = 16
gap_timeout_us = 5000
msg_timeout_us = 400000
auth = required
auth_keys = $TMP/keys
CONF

if ! ns_up; then
	bad "namespaces"
	finish
fi
out=$TMP/auth
if ! gw_start "$TMP/auth.conf" "$out" --engine-threads 1; then
	bad "tailgate started with auth = required"
	finish
fi
ok "tailgate started with auth = required and 4 device keys"

tgc() {	# out_name, tgc-example options...
	local o=$1
	shift
	ip netns exec "$NS_CL" timeout 120 "$BUILD/tgc-example" --gateway "$IP_GW:7700" \
		--model models/fmnist-resnet/model.onnx --model-id 1 --split 4 --dtype u8 \
		--quiet "$@" >"$out/$o.out" 2>"$out/$o.err"
}

tgc signed --key-file "$TMP/keys" --client-id 201 --n 100
rc=$?
sed 's/^/    ! /' "$out/signed.err" | head -n 5
echo "  signed: $(grep -E '^(requests|answered|ok|failed|rx_unauth) ' "$out/signed.out" | tr '\n' ' ')"
# Served: answered with RESPONSEs, which the client took only with the gateway's valid tag
# (an unsigned client gets nothing at all, below). Not all 100, nor all OK: on a loaded
# machine the client may give up on a request after its resends (issue 11, item 3) and the
# scheduler may shed some (OVERLOADED, DEADLINE_INFEASIBLE), which is not what this tests.
check "signed tgc-example: served, at least 90 of 100 answered (status $rc)" \
	test "$(val answered "$out/signed.out")" -ge 90
check "signed tgc-example: no reply without a valid tag" \
	grep -qx 'rx_unauth 0' "$out/signed.out"

tgc unsigned --n 5 --client-id 201
rc=$?
check "unsigned client: refused, no answer (status $rc)" \
	test "$rc" -ne 0 -a "$(grep -c 'HELLO: no reply' "$out/unsigned.err")" -eq 1
tgc wrongkey --key-file "$TMP/wrong" --n 5
rc=$?
check "client with a wrong key: refused, no answer (status $rc)" \
	test "$rc" -ne 0 -a "$(grep -c 'HELLO: no reply' "$out/wrongkey.err")" -eq 1

MIX='split=0,4,6,8;dtype=f32,f16,s8,u8;uplink=50000-200000kbps;deadline=5s'
ip netns exec "$NS_CL" timeout 240 "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
	--model models/fmnist-resnet --model-id 1 --images 300 --threads 1 --cache "$TMP/cache" \
	--devices 4 --concurrency 4 --warmup 0 --duration 0 --requests 200 --mix "$MIX" \
	--key-file "$TMP/keys" --timeout-ms 200 --retries 8 --seed 5 --quiet --check \
	--json "$out/bench.json" >"$out/bench.out" 2>"$out/bench.err"
rc=$?
sed 's/^/    ! /' "$out/bench.err" | tail -n 3
check "signed tailgate-bench (4 devices, 4 keys): 200 answered OK, as offline (status $rc)" \
	test "$rc" -eq 0 -a "$(jv ok "$out/bench.json")" -eq 200 -a \
	"$(jv agree "$out/bench.json")" -eq 200
check "signed tailgate-bench: no reply without a valid tag" \
	test "$(jv unauthenticated "$out/bench.json")" -eq 0

# Raw datagrams: forged, untagged and replayed chunks; a forger at another address.
cat >"$TMP/attack.py" <<'PY'
import hashlib, socket, struct, sys, time
gw, key = (sys.argv[1], 7700), bytes.fromhex(sys.argv[2])
MAC, CRC = 0x02, 0x08

def seal(d, how):
	d = bytearray(d)
	d[24:40] = bytes(16)
	f = struct.unpack_from(">H", d, 4)[0] & ~(MAC | CRC)
	if how == "mac" or how == "forge":
		struct.pack_into(">H", d, 4, f | MAC)
		d[24:40] = hashlib.blake2b(bytes(d), key=key, digest_size=16).digest()
		if how == "forge":
			d[30] ^= 0x20
	else:
		struct.pack_into(">H", d, 4, f)
	return bytes(d)

def tag_ok(d):
	z = bytearray(d)
	z[24:40] = bytes(16)
	return (struct.unpack_from(">H", d, 4)[0] & MAC) != 0 and \
		hashlib.blake2b(bytes(z), key=key, digest_size=16).digest() == d[24:40]

def hello(nonce, sid=0):
	h = struct.pack(">HBBHHIIQ16s", 0x5447, 1, 1, 0, 1200 - 64, 202, nonce, sid, bytes(16))
	h += struct.pack(">IIIIHHHH", 0, 0, 0, 0, 0, 1472, 0, 0)
	return h + bytes(1200 - 64)

def echo(sid, rid, payload):
	h = struct.pack(">HBBHHIIQ16s", 0x5447, 1, 3, 0, len(payload), 202, rid, sid, bytes(16))
	h += struct.pack(">HBBHHBBBBIII", 0xFFFF, 0, 0, 0, 1, 0, 0, 0, 0, len(payload), 0,
			 len(payload))
	h += bytes(24) + struct.pack(">fiII", 1.0, 0, 0, 0)
	return h + payload

def ask(s, d, wait=5.0):	# an answer expected: generous (the machine may be busy)
	s.sendto(d, gw)
	s.settimeout(wait)
	try:
		return s.recv(2048)
	except socket.timeout:
		return None

def err_of(r):
	if r is None or len(r) != 48 or r[3] != 6:
		return "none"
	return "%d/%d/%s" % (r[40], r[41], "tagged" if tag_ok(r) else "untagged")

a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
evil = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
nonce = (int(time.time() * 1e9) >> 26) & 0xffffffff
r = ask(a, seal(hello(nonce), "mac"))
print("hello", "tagged" if r and r[3] == 2 and tag_ok(r) else "bad")
sid = struct.unpack_from(">Q", r, 16)[0] if r else 0
chunk = seal(echo(sid, 7, b"tailgate" * 16), "mac")
r = ask(a, chunk)
print("echo", "tagged" if r and r[3] == 4 and r[50] == 0 and tag_ok(r) else "bad")
print("forged", err_of(ask(a, seal(echo(sid, 8, b"x" * 64), "forge"))))
print("untagged", err_of(ask(a, seal(echo(sid, 9, b"x" * 64), "none"))))
print("evil_forged", err_of(ask(evil, seal(echo(sid, 10, b"x" * 64), "forge"), 0.5)))
print("evil_hello_replay", err_of(ask(evil, seal(hello(nonce - 1), "mac"), 0.5)))
time.sleep(1.5)	# well past msg_timeout (400 ms): the answer to request 7 is forgotten
print("replay", err_of(ask(a, chunk)))
# Nothing came to the other address later either (its 0.5 s waits above were short).
evil.settimeout(0.5)
try:
	evil.recv(2048)
	print("evil_late", "answered")
except socket.timeout:
	print("evil_late", "none")
PY
ip netns exec "$NS_CL" timeout 60 python3 "$TMP/attack.py" "$IP_GW" "$KB" \
	>"$out/attack.out" 2>"$out/attack.err"
sed 's/^/    | /' "$out/attack.out"
sed 's/^/    ! /' "$out/attack.err" | tail -n 3
av() { awk -v k="$1" '$1 == k { print $2 }' "$out/attack.out"; }
check "raw signed HELLO and echo: answered, tagged" \
	test "$(av hello)" = tagged -a "$(av echo)" = tagged
check "forged tag from the session's address: ERROR UNAUTHENTICATED bad_mac, tagged" \
	test "$(av forged)" = 10/42/tagged
check "untagged chunk from the session's address: ERROR UNAUTHENTICATED no_mac, tagged" \
	test "$(av untagged)" = 10/43/tagged
check "chunk replayed after its answer was forgotten: ERROR UNAUTHENTICATED replay" \
	test "$(av replay)" = 10/44/tagged
check "forged chunk from another address: no answer" \
	test "$(av evil_forged)" = none -a "$(av evil_late)" = none
check "old HELLO nonce from another address: no answer" \
	test "$(av evil_hello_replay)" = none -a "$(av evil_late)" = none

http_get /metrics "$out/metrics"
check "refusals counted: dp drops auth >= 4, replay >= 2" \
	awk -v a="$(mval "$out/metrics" 'tailgate_dp_drops_total{reason="auth"}')" \
	-v r="$(mval "$out/metrics" 'tailgate_dp_drops_total{reason="replay"}')" \
	'BEGIN { exit !(a != "" && r != "" && a >= 4 && r >= 2) }'
check "refusals counted by reason: bad_mac, no_mac, replay" \
	test -n "$(mval "$out/metrics" 'tailgate_proto_rejects_total{reason="bad_mac"}')" -a \
	-n "$(mval "$out/metrics" 'tailgate_proto_rejects_total{reason="no_mac"}')" -a \
	-n "$(mval "$out/metrics" 'tailgate_proto_rejects_total{reason="replay"}')"

# Reload: device 201 gets a new key; the old one stops working at once.
umask 077
printf '201 %s\n202 %s\n' "$KX" "$KB" >"$TMP/keys.new"
umask 022
mv "$TMP/keys.new" "$TMP/keys"
kill -HUP "$gw_pid"
# The whole reload (models too) before going on: requests stall while plans are built.
for _ in $(seq 1200); do
	grep -q 'reload: generation' "$out/event.log" 2>/dev/null && break
	sleep 0.2
done
check "SIGHUP reloaded the key file" grep -q 'reload: 2 device key(s)' "$out/event.log"
printf '201 %s\n' "$KA" >"$TMP/old" && chmod 600 "$TMP/old"
tgc oldkey --key-file "$TMP/old" --n 3
rc=$?
check "after the reload the old key gets no answer (status $rc)" test "$rc" -ne 0
tgc newkey --key-file "$TMP/wrong" --n 20
rc=$?
check "after the reload the new key is served: at least 18 of 20 answered (status $rc)" \
	test "$(val answered "$out/newkey.out")" -ge 18
chmod 644 "$TMP/keys"
kill -HUP "$gw_pid"
# Bounded at 240 s, not 60: a reload builds every plan again, and beside stress-ng and a
# compile that took over a minute once (the check below then read a log the reload had not
# yet written to).
for _ in $(seq 1200); do
	[ "$(grep -c 'reload: generation' "$out/event.log" 2>/dev/null)" -ge 2 ] && break
	sleep 0.2
done
if ! grep -q 'reload: keys kept: .*lets the group or others' "$out/event.log"; then
	bad "a world-readable key file is refused on reload, the keys in use kept"
	tail -n 8 "$out/event.log" | sed 's/^/    | /'
else
	ok "a world-readable key file is refused on reload, the keys in use kept"
fi
check "tailgate stopped cleanly" gw_term

# Integrity without keys: chunks corrupted after their CRC, never answered wrong.
cat >"$TMP/crc.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
max_inflight_messages = 64
max_inflight_client = 16
gap_timeout_us = 5000
msg_timeout_us = 2000000
CONF
out=$TMP/crc
if ! gw_start "$TMP/crc.conf" "$out" --engine-threads 1; then
	bad "tailgate started with auth off"
	finish
fi
ip netns exec "$NS_CL" timeout 240 "$BUILD/tailgate-bench" --gateway "$IP_GW:7700" \
	--model models/fmnist-resnet --model-id 1 --images 300 --threads 1 --cache "$TMP/cache" \
	--devices 50 --concurrency 4 --warmup 0 --duration 0 --requests 300 --mix "$MIX" \
	--corrupt 0.03 --timeout-ms 200 --retries 8 --seed 6 --quiet --check \
	--json "$out/corrupt.json" >"$out/corrupt.out" 2>"$out/corrupt.err"
rc=$?
grep -E '^(achieved|retransmits|nacks|corrupted|timeouts|agreement)' "$out/corrupt.out" |
	sed 's/^/    | /'
sed 's/^/    ! /' "$out/corrupt.err" | tail -n 3
check "3% of chunks corrupted: all 300 answered OK and as offline (status $rc)" \
	test "$rc" -eq 0 -a "$(jv ok "$out/corrupt.json")" -eq 300 -a \
	"$(jv agree "$out/corrupt.json")" -eq 300
check "chunks were corrupted and resent" \
	test "$(jv corrupted "$out/corrupt.json")" -gt 0 -a \
	"$(jv retransmits "$out/corrupt.json")" -ge "$(jv corrupted "$out/corrupt.json")"
http_get /metrics "$out/metrics"
bc=$(mval "$out/metrics" 'tailgate_proto_rejects_total{reason="bad_crc"}')
check "corrupted chunks were refused bad_crc (${bc:-missing} of $(jv corrupted "$out/corrupt.json"))" \
	test -n "$bc" -a "${bc:-0}" -gt 0 -a "${bc:-0}" -le "$(jv corrupted "$out/corrupt.json")"
check "tailgate stopped cleanly" gw_term
finish
