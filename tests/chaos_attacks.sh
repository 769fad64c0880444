#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Chaos: attacks on tailgate while a legitimate device is served. For each scenario a fresh
# tailgate serves the multi-exit fixture (id 1) on af_packet in a network namespace; from the
# client namespace tests/tg_attack (raw socket, IP_HDRINCL) attacks it while gw_client, the
# legitimate device, sends its requests (each one's class known offline). The attacker's
# spoofed sources (A.B.C.100 and up) and the victim (A.B.C.250) are added to the client's
# veth, so the kernel there answers the gateway's ARP for them and tg_attack's sockets on
# them count every byte the gateway sends there.
#   vanish       16 messages of 20 chunks, 2 sent each, then silence: every one gets its final
#                ERROR, at most 48 NACKs each after its last chunk (docs/protocol.md: 48 in a
#                row without progress), and every slot is free again afterwards.
#   hello-flood  spoofed HELLOs from 64 sources, more than the session table holds: no reply
#                larger than its HELLO (amplification <= 1.0), a retransmitted HELLO gets the
#                same session, and the legitimate device still gets a session and is served.
#   slot-hog     24 sessions each holding 16 half-finished messages (more than the 256
#                slots): the legitimate device is served, never refused, while the hog holds on.
#   rebind-amp   a session re-bound to a victim by a HELLO "from" it, then NACKs and half
#                messages "from" it: the victim receives no more than was sent from it.
#   forge-mac    requests with flag MAC and a random tag: none is served.
#   replay       a session's requests sent again, byte for byte, after the answers' keeping
#                time: none is served again.
#   corrupt      echo requests with CRC32C, 5% of the chunk transmissions with a flipped
#                payload byte (UDP checksum recomputed): every answer exact, none wrong.
# In every scenario: tailgate does not crash and exits 0 on SIGTERM, every request of the
# legitimate device is answered exactly once and correctly (its own view and the access
# log's), the gateway's OK count of the model is the device's, and no address the attacker
# claimed received more than was sent from it unless it proved it receives there.
# Scenarios whose defence has not landed yet are listed in CHAOS_DISABLED below with the
# reason; CHAOS_ATTACKS="name ..." (or "all") runs a chosen set, disabled ones included.
# CHAOS_LONG=1 (`make chaos`): more requests, longer attacks. Speed is never checked.
# Usage: tests/chaos_attacks.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."

NAME=tgca$$ NET=10.84 SUBNET=0
TMP=$(mktemp -d /tmp/tg_chaosatk.XXXXXX)
. tests/gw_lib.bash
. tests/chaos_lib.bash
trap gw_cleanup EXIT
trap 'exit 130' INT TERM

# Each entry: scenario, then why it is off (what must land first). Enable one by removing it.
CHAOS_DISABLED=(
)
ALL="vanish hello-flood slot-hog rebind-amp forge-mac replay corrupt"

disabled_reason() {	# scenario
	local e
	for e in "${CHAOS_DISABLED[@]}"; do
		[ "${e%%:*}" = "$1" ] && { echo "${e#*: }"; return 0; }
	done
	return 1
}

gw_require "$BUILD/tailgate" "$BUILD/tests/gw_client" "$BUILD/tests/tg_attack"

chaos_repo "$TMP/repo"
cat >"$TMP/tailgate.conf" <<CONF
address = $IP_GW
models = $TMP/repo
workers = 1
max_inflight_messages = 256
max_inflight_client = 16
queue_cap = 256
CONF

ATK_BASE=${NET}.$SUBNET.100 VICTIM=${NET}.$SUBNET.250
N_SRC=64
REQS=$(chaos_pick 200 2000)

# The attacker's addresses on the client's veth (/32 each: the /24 route stays the client's).
attacker_addrs() {
	local i
	for i in $(seq 0 $((N_SRC - 1))); do
		echo "addr add ${NET}.$SUBNET.$((100 + i))/32 dev $IF_CL"
	done
	echo "addr add $VICTIM/32 dev $IF_CL"
}

attack() {	# out mode [tg_attack options...]: in the background, sets atk_pid
	local out=$1 mode=$2
	shift 2
	rm -f "$out.ready"
	ip netns exec "$NS_CL" timeout 300 "$BUILD/tests/tg_attack" "$mode" --gw "$IP_GW" \
		--src "$ATK_BASE" --ready "$out.ready" "$@" >"$out" 2>"$out.err" &
	atk_pid=$!
	for _ in $(seq 600); do	# the attack in effect (at most 60 s), or over
		[ -f "$out.ready" ] && break
		kill -0 "$atk_pid" 2>/dev/null || break
		sleep 0.1
	done
}

attack_wait() {	# out: @return tg_attack's status
	local rc
	wait "$atk_pid"
	rc=$?
	echo "  attacker: $(grep -vE '^(reason_|status_|rx_type_|addr )' "$1" | tr '\n' ' ')" |
		fold -s -w 100
	echo "  attacker's answers: $(grep -E '^(status|reason)_' "$1" | grep -v ' 0$' | tr '\n' ' ')" |
		fold -s -w 100
	sed 's/^/    ! /' "$1.err" | head -n 5
	return $rc
}

# The largest received/sent ratio over the attacker's addresses (amplification_max).
amp_ok() {	# attack_out
	num_le "$(val amplification_max "$1")" 1.0
}

ok_count() {	# metrics file: the model's OK answers
	metric "$1" 'tailgate_requests_total{model="multiexit",status="ok"}'
}

# One scenario: a fresh gateway, the attack beside the legitimate client, the common checks;
# the scenario's own checks run in scenario_<name>_checks with the attack's output.
scenario() {	# name
	local name=$1 out=$TMP/$1 grc fail0=$fail
	mkdir -p "$out"
	fig=
	echo "-- $name"
	if ! ns_up || ! ip -n "$NS_CL" -batch <(attacker_addrs); then
		bad "$name: namespaces and the attacker's addresses"
		return
	fi
	cp "$TMP/tailgate.conf" "$out/tailgate.conf"
	if declare -F "conf_${name//-/_}" >/dev/null; then
		"conf_${name//-/_}" >>"$out/tailgate.conf"
	fi
	if ! gw_start "$out/tailgate.conf" "$out" --engine-threads 1; then
		bad "$name: tailgate started"
		ns_down
		return
	fi
	"scenario_${name//-/_}" "$out"
	chaos_check_alive "$name" "$out"
	http_get /metrics "$out/metrics"
	check "$name: the gateway's OK answers of the model are the device's ($(ok_count "$out/metrics"), $(val ok "$out/client"))" \
		test "$(ok_count "$out/metrics")" -eq "$(val ok "$out/client")"
	gw_term
	grc=$?
	check "$name: tailgate exited 0 on SIGTERM (status $grc)" test "$grc" -eq 0
	[ "$grc" -ne 0 ] && sed 's/^/    | /' "$out/gw.err" | tail -n 10
	chaos_check_client "$name" "$out/client" "$REQS" "$out/access.log" 5000
	ns_down
	CHAOS_CMD="CHAOS_ATTACKS=$name tests/chaos_attacks.sh $BUILD" chaos_figure "$name" \
		"$([ "$fail" -eq "$fail0" ] && echo pass || echo FAIL)" \
		"$fig; device: $(show ok "$out/client") of $REQS OK, $(show lost "$out/client") lost"
}

scenario_vanish() {	# out
	# As many as one client may hold (max_inflight_client): each one takes a slot.
	local o=$1/attack n=16
	attack "$o" vanish --messages $n --chunks 20 --send 2 --duration 60
	chaos_client "$1/client" "$REQS" 5000
	attack_wait "$o"
	check "vanish: tg_attack ran (status $?)" test $? -eq 0
	check "vanish: each of the $n half-sent messages got its final answer ($(val msgs_final "$o"))" \
		test "$(val msgs_final "$o")" -eq $n -a "$(val reason_reasm_timeout "$o")" -eq $n
	check "vanish: at most 48 NACKs per message after its last chunk ($(val nacks_max_per_msg "$o"); $(val nacks_before_last_chunk "$o") before it)" \
		test "$(val nacks_max_per_msg "$o")" -le 48
	http_get /metrics "$1/metrics.after"
	fig="$n messages 2 of 20 chunks sent: $(show msgs_final "$o") final answers in $(show seconds_to_final "$o") s, NACKs at most $(show nacks_max_per_msg "$o") per message"
	check "vanish: every message slot free again ($(metric "$1/metrics.after" tailgate_dp_slots_in_use) in use)" \
		test "$(metric "$1/metrics.after" tailgate_dp_slots_in_use)" -eq 0
}

scenario_hello_flood() {	# out
	local o=$1/attack per=$(chaos_pick 80 200)
	# 64 x 80 = 5,120 new sessions asked for (the table holds 4,096), each HELLO sent twice.
	attack "$o" hello-flood --sources $N_SRC --hellos "$per" --repeat 2 --rate 3000 \
		--duration 120
	chaos_client "$1/client" "$REQS" 5000
	attack_wait "$o"
	check "hello-flood: tg_attack ran (status $?)" test $? -eq 0
	check "hello-flood: no reply larger than its HELLO (amplification_max $(val amplification_max "$o"))" \
		amp_ok "$o"
	fig="$(show hellos_sent "$o") HELLOs from $N_SRC sources: $(show hello_replies "$o") replies, $(show sessions_distinct "$o") sessions, amplification max x$(show amplification_max "$o"), retransmits opening a new session $(show retransmit_new_session "$o")"
	check "hello-flood: a retransmitted HELLO gets the same session ($(val retransmit_new_session "$o") new)" \
		test "$(val retransmit_new_session "$o")" -eq 0 -a "$(val hello_replies "$o")" -gt 0
	http_get /metrics "$1/metrics.flood"
	fig="$fig, $(metric "$1/metrics.flood" tailgate_dp_sessions_evicted_total) sessions evicted"
	# The flood asked for more sessions than the table holds: evictions, not refusals.
	check "hello-flood: the flood overflowed the session table ($(metric "$1/metrics.flood" tailgate_dp_sessions_evicted_total) evicted, $(metric "$1/metrics.flood" tailgate_dp_hello_dups_total) retransmits answered alike)" \
		test "$(metric "$1/metrics.flood" tailgate_dp_sessions_evicted_total)" -gt 0 -a \
		"$(metric "$1/metrics.flood" tailgate_dp_hello_dups_total)" -gt 0
}

scenario_slot_hog() {	# out
	local o=$1/attack
	attack "$o" slot-hog --sessions 24 --messages 16 --sources 8 --duration 240
	chaos_client "$1/client" "$REQS" 5000
	check "slot-hog: the hog still held on when the device was done" kill -0 "$atk_pid"
	kill -TERM "$atk_pid" 2>/dev/null
	attack_wait "$o"
	check "slot-hog: tg_attack ran (status $?)" test $? -eq 0
	fig="24 sessions x 16 half messages: $(show msgs_opened "$o") opened, $(show msgs_refused "$o") refused, $(show msgs_freed "$o") freed, device OVERLOADED retries $(show overloaded_retries "$1/client")"
	# Served while the hog holds on: never refused for want of a slot (with 10 s deadlines
	# and 8 requests in flight the scheduler has no reason to shed the device either). The
	# hog's own addresses received what they asked for (NACKs): they are verified sources.
	check "slot-hog: the device was never refused meanwhile ($(val overloaded_retries "$1/client") OVERLOADED)" \
		test "$(val overloaded_retries "$1/client")" -eq 0
}

scenario_rebind_amp() {	# out
	local o=$1/attack
	attack "$o" rebind-amp --victim "$VICTIM" --tensor-bytes 60000 --nacks 20 --half 16 \
		--duration 60
	chaos_client "$1/client" "$REQS" 5000
	attack_wait "$o"
	check "rebind-amp: tg_attack ran (status $?)" test $? -eq 0
	fig="victim received $(show victim_rx_bytes "$o") B for $(show victim_tx_bytes "$o") B sent from its address (x$(show victim_amplification "$o")), path challenge $(show victim_path_token "$o")"
	check "rebind-amp: the victim got no more than was sent from its address ($(val victim_rx_bytes "$o") for $(val victim_tx_bytes "$o") bytes: x$(val victim_amplification "$o"))" \
		num_le "$(val victim_amplification "$o")" 1.0
}

# The device key file (auth): a key for the attacker's own client id (replay signs with it;
# forge-mac's tags are made up). auth = optional: the legitimate device signs nothing and is
# served, a datagram that carries a tag must carry a valid one, and tagged request ids only
# grow (docs/protocol.md 12.5).
ATK_CLIENT=2097152001	# tg_attack's default --client-id, 0x7d000001
ATK_KEY=5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a
conf_auth() {
	(umask 077 && echo "$ATK_CLIENT $ATK_KEY" >"$TMP/keys")
	printf 'auth = optional\nauth_keys = %s\n' "$TMP/keys"
}
conf_forge_mac() { conf_auth; }
conf_replay() { conf_auth; }

scenario_forge_mac() {	# out
	local o=$1/attack
	attack "$o" forge-mac --requests 100 --duration 60
	chaos_client "$1/client" "$REQS" 5000
	attack_wait "$o"
	check "forge-mac: tg_attack ran (status $?)" test $? -eq 0
	fig="$(show requests "$o") forged requests: $(show ok "$o") served, $(show status_unauthenticated "$o") UNAUTHENTICATED"
	check "forge-mac: no forged request served ($(val ok "$o") OK of $(val requests "$o"))" \
		test "$(val ok "$o")" -eq 0 -a "$(val status_ok "$o")" -eq 0
}

scenario_replay() {	# out
	local o=$1/attack
	attack "$o" replay --requests 50 --tensor-bytes 1000 --key "$ATK_KEY" --duration 60
	chaos_client "$1/client" "$REQS" 5000
	attack_wait "$o"
	check "replay: tg_attack ran (status $?)" test $? -eq 0
	fig="$(show requests "$o") requests replayed: $(show replay_ok "$o") served again of $(show replay_answers "$o") answers"
	check "replay: the requests were served once ($(val ok "$o") of $(val requests "$o"))" \
		test "$(val ok "$o")" -eq "$(val requests "$o")"
	check "replay: none served again ($(val replay_ok "$o") OK of $(val replay_answers "$o") answers to replays)" \
		test "$(val replay_ok "$o")" -eq 0
}

scenario_corrupt() {	# out
	local o=$1/attack n=$(chaos_pick 200 2000)
	attack "$o" corrupt --requests "$n" --tensor-bytes 20000 --corrupt 0.05 --duration 200
	chaos_client "$1/client" "$REQS" 5000
	attack_wait "$o"
	check "corrupt: tg_attack ran (status $?)" test $? -eq 0
	http_get /metrics "$1/metrics.crc"
	fig="$n echo requests, $(show chunks_corrupted "$o") chunks corrupted: $(show ok "$o") OK, $(show wrong "$o") wrong; the gateway refused $(metric "$1/metrics.crc" 'tailgate_proto_rejects_total{reason="bad_crc"}') chunks bad_crc (never answered: NACKs recovered them)"
	check "corrupt: chunks were corrupted ($(val chunks_corrupted "$o")), every request answered OK, none wrong ($(val wrong "$o"))" \
		test "$(val chunks_corrupted "$o")" -gt 0 -a "$(val ok "$o")" -eq "$n" -a \
		"$(val wrong "$o")" -eq 0
}

run=${CHAOS_ATTACKS:-}
[ "$run" = all ] && run=$ALL
for s in $ALL; do
	if [ -n "$run" ]; then
		[[ " $run " == *" $s "* ]] || continue
	elif why=$(disabled_reason "$s"); then
		echo "skip $s: disabled until it lands: $why"
		skip=$((skip + 1))
		continue
	fi
	scenario "$s"
done
check_done
