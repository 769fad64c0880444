# SPDX-License-Identifier: Apache-2.0
# Sourced by the chaos tests (tests/chaos_*.sh) after tests/gw_lib.bash: the short or long
# version, a legitimate client beside the fault, and the checks every chaos test makes about
# it. Not a test itself. The caller sets what gw_lib.bash needs, and BUILD.
#
# CHAOS_LONG=1 (`make chaos`) runs the long version: more requests, longer faults. The short
# one is what `make test` runs (tests/chaos_*.sh are scripted tests like the others).
# Nothing here measures speed: a chaos check is about what must always hold (no crash, every
# request of the legitimate client answered exactly once and correctly, no amplification,
# counters that add up), however busy the machine is.

CHAOS_LONG=${CHAOS_LONG:-0}
chaos_pick() {	# short long: the value for this version
	if [ "$CHAOS_LONG" = 1 ]; then echo "$2"; else echo "$1"; fi
}

# A repository serving the multi-exit fixture (id 1, splits 0 and 4): small, so a gateway
# starts in seconds even on a busy machine, and gw_client knows every answer offline.
chaos_repo() {	# dir
	mkdir -p "$1/multiexit"
	ln -sf "$PWD/tests/fixtures/multiexit/model.onnx" "$1/multiexit/model.onnx"
	cat >"$1/multiexit/model.conf" <<-EOF
	id = 1
	splits = 0, 4
	max_batch = 16
	max_delay_us = 1000
	deadline_ms = 10000
	top_k = 3
	EOF
}

# The legitimate client: gw_client on kernel UDP sockets from the client namespace, each
# request's expected class computed offline. Writes OUT (its "name value" lines), OUT.err
# and OUT.ids ("client request" per RESPONSE). Deadlines of 10 s and a time limit far above
# what the requests need: a busy machine makes it slower, never wrong.
chaos_client() {	# out requests client_base [gw_client options...]
	local out=$1 n=$2 base=$3
	shift 3
	ip netns exec "$NS_CL" timeout 200 "$BUILD/tests/gw_client" --gw "$IP_GW" \
		--model tests/fixtures/multiexit/model.onnx \
		--input tests/fixtures/multiexit/input.npy --model-id 1 --split 4 \
		--requests "$n" --clients 2 --window 4 --samples 8 --seed "$base" \
		--time-limit 150 --client-base "$base" --ids "$out.ids" \
		"$@" >"$out" 2>"$out.err"
}

# Every request of the legitimate client answered exactly once and correctly: the client's
# own view (all OK, none lost or failed, every class as offline) and the access log's, read
# after SIGTERM flushed it: exactly the answers the client got, each once (OVERLOADED answers
# aside: the client retries those under a new request id and does not list them).
chaos_check_client() {	# label out requests access_log client_base
	local label=$1 out=$2 n=$3 log=$4 base=$5
	echo "  $label client: $(grep -E '^(ok|failed|lost|mismatch|overloaded_retries|nacks|sessions) ' "$out" | tr '\n' ' ')"
	sed 's/^/    | /' "$out.err" | head -n 5
	check "$label: legitimate client: $n requests answered OK, as offline, none lost, none answered twice differently ($(val answers_again "$out") again)" \
		test "$(val ok "$out")" -eq "$n" -a "$(val failed "$out")" -eq 0 -a \
		"$(val lost "$out")" -eq 0 -a "$(val mismatch "$out")" -eq 0 -a \
		"$(val answers_differ "$out")" -eq 0
	sort "$out.ids" >"$out.got"
	grep -v '"status":4[,}]' "$log" 2>/dev/null |
		sed -n 's/.*"client":\([0-9]*\),"request":\([0-9]*\),.*/\1 \2/p' |
		awk -v b="$base" '$1 >= b && $1 < b + 16' | sort >"$out.logged"
	check "$label: legitimate client: the access log has each of its answers once ($(wc -l <"$out.logged") lines, $(wc -l <"$out.got") answers)" \
		test -s "$out.got" -a -z "$(uniq -d "$out.logged")" -a \
		"$(cmp -s "$out.got" "$out.logged" && echo same)" = same
}

# The gateway is alive and says so.
chaos_check_alive() {	# label out_dir
	check "$1: tailgate still running" kill -0 "$gw_pid"
	http_get /healthz "$2/healthz"
	check "$1: /healthz ok" grep -q '^ok' "$2/healthz"
}

# A scenario's figures for the "Faults and attacks" table of docs/BENCHMARKS.md: with
# CHAOS_FIGURES set (scripts/chaos_table.sh), one line "scenario|result|figures|command" is
# appended there. result: pass or FAIL (the scenario's checks).
chaos_figure() {	# scenario result figures
	[ -n "${CHAOS_FIGURES:-}" ] || return 0
	echo "$1|$2|$3|CHAOS_LONG=$CHAOS_LONG ${CHAOS_CMD:-bash $0 $BUILD}" >>"$CHAOS_FIGURES"
}
