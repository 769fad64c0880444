#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every test program and prints one closing line for CI: "N passed, N failed, N skipped".
# Each program prints its own "N passed, N failed[, N skipped]" last; this sums them.
#   unit tests        BUILD/tests/test_*            (tests/unit/*.c)
#   test programs     BUILD/tests/<name> with tests/<name>.args (conformance, fixtures)
#   fuzz replays      BUILD/fuzz-replay/<t> fuzz/corpus/<t>
#   scripted tests    tests/*.sh                    (integration, network namespaces)
# Usage: scripts/run_tests.sh BUILD [FILTER]
set -u
BUILD=${1:-build}
FILTER=${2:-}
cd "$(dirname "$0")/.."

tp=0 tf=0 ts=0 failed_progs=()

# One whole suite at a time on a machine: several at once (worktrees, a CI runner beside a
# developer) share the cores, and every one of them then takes several times as long.
# TG_SUITE_LOCK= (empty) turns it off. A filtered run never waits.
lock=${TG_SUITE_LOCK-/tmp/tailgate-suite.lock}
if [ -z "$FILTER" ] && [ -n "$lock" ] && exec 9>>"$lock" 2>/dev/null; then
	if ! flock -n 9; then
		echo "run_tests: another whole suite runs on this machine; waiting for it ($lock)"
		flock 9
	fi
fi
log_dir=$BUILD/test-logs
mkdir -p "$log_dir"

run_one() {	# name, command...
	local name=$1; shift
	[ -n "$FILTER" ] && [[ "$name" != *"$FILTER"* ]] && return 0
	local log=$log_dir/$(echo "$name" | tr '/ ' '__').log start=$(date +%s.%N)
	"$@" >"$log" 2>&1 9>&-	# the suite lock stays with this shell, never with a daemon a test left
	local rc=$? line
	line=$(grep -E '^([A-Za-z_-]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	local p f s
	p=$(sed -nE 's/.*\b([0-9]+) passed.*/\1/p' <<<"$line")
	f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
	s=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
	p=${p:-0} f=${f:-0} s=${s:-0}
	if [ -z "$line" ] || { [ $rc -ne 0 ] && [ "$f" -eq 0 ]; }; then
		f=$((f + 1))	# crashed or printed no count: a failure, never a pass
	fi
	tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + s))
	printf '%-44s %5d passed %3d failed %4d skipped  (%.1fs)\n' "$name" "$p" "$f" "$s" \
		"$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')"
	if [ "$f" -ne 0 ]; then
		failed_progs+=("$name")
		sed 's/^/    | /' "$log" | grep -vE '^    \| (PASS|ok )' | tail -n 40
	fi
}

# Programs are found from their sources, not from what the build directory holds: a test
# whose source is gone (renamed, removed) must not keep running from an old binary, and one
# whose binary is missing is a failure, not silence.
not_built() {	# name, binary
	run_one "$1" bash -c "echo 'run_tests: $2 was not built (make)'; echo '0 passed, 1 failed'; exit 1"
}
for src in tests/unit/test_*.c; do
	t=$BUILD/tests/$(basename "$src" .c)
	if [ -x "$t" ]; then
		run_one "unit/$(basename "$t")" "$t"
	else
		not_built "unit/$(basename "$t")" "$t"
	fi
done
for t in "$BUILD"/tests/*; do
	name=$(basename "$t")
	[[ "$name" == test_* ]] && continue
	# A test program has its arguments in tests/<name>.args; other tests/*.c are helpers
	# (senders, clients) that the scripted tests start themselves.
	[ -x "$t" ] && [ -f "tests/$name.c" ] && [ -f "tests/$name.args" ] || continue
	args=()
	read -r -a args <"tests/$name.args"
	run_one "$name" "$t" "${args[@]}"
done
for src in fuzz/fuzz_*.c; do
	name=$(basename "$src" .c)
	name=${name#fuzz_}
	t=$BUILD/fuzz-replay/$name
	[ -d "fuzz/corpus/$name" ] || { not_built "fuzz-replay/$name" "fuzz/corpus/$name"; continue; }
	if [ -x "$t" ]; then
		run_one "fuzz-replay/$name" "$t" "fuzz/corpus/$name"
	else
		not_built "fuzz-replay/$name" "$t"
	fi
done
for t in tests/*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t" .sh)" bash "$t" "$BUILD"
done

[ ${#failed_progs[@]} -gt 0 ] && echo "failing: ${failed_progs[*]}"
echo "$tp passed, $tf failed, $ts skipped"
[ "$tf" -eq 0 ]
