#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The "Faults and attacks" table of docs/BENCHMARKS.md: runs every chaos test
# (tests/chaos_*.sh, long versions unless CHAOS_LONG=0) with every scenario enabled
# (CHAOS_ATTACKS=all: the disabled ones too, so the table says where a defence is missing),
# collects the figures each scenario reports (tests/chaos_lib.bash chaos_figure), and writes
# them as a table between the markers of the section "Faults and attacks" (the section is
# appended when it is not there yet). Each row: scenario, result (pass or FAIL), figures,
# the command that reproduces it. Figures taken on a shared machine say so (load average).
# Usage: scripts/chaos_table.sh [BUILD] [--dry-run]   (--dry-run: print the table only)
set -u
BUILD=${1:-build}
DRY=0
[ "${2:-}" = --dry-run ] && DRY=1
cd "$(dirname "$0")/.."

DOC=docs/BENCHMARKS.md
BEGIN='<!-- chaos-table:begin (scripts/chaos_table.sh writes this part) -->'
END='<!-- chaos-table:end -->'
TMP=$(mktemp -d /tmp/tg_chaostable.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

export CHAOS_FIGURES=$TMP/figures CHAOS_LONG=${CHAOS_LONG:-1} CHAOS_ATTACKS=${CHAOS_ATTACKS:-all}
: >"$CHAOS_FIGURES"
load0=$(cut -d' ' -f1 /proc/loadavg)
start=$(date -u +%Y-%m-%dT%H:%MZ)
for t in tests/chaos_*.sh; do
	[ -f "$t" ] || continue
	echo "chaos_table: $t (CHAOS_LONG=$CHAOS_LONG)"
	bash "$t" "$BUILD" >"$TMP/$(basename "$t" .sh).log" 2>&1
	grep -E '^FAIL ' "$TMP/$(basename "$t" .sh).log" | sed 's/^/  /'
	grep -E '^(ok|FAIL|skip) |passed, ' "$TMP/$(basename "$t" .sh).log" | tail -n 3 | sed 's/^/  /'
done
load1=$(cut -d' ' -f1 /proc/loadavg)
if [ ! -s "$CHAOS_FIGURES" ]; then
	echo "chaos_table: no scenario reported figures" >&2
	exit 1
fi

{
	echo "$BEGIN"
	echo
	echo "Run $start, \`CHAOS_LONG=$CHAOS_LONG CHAOS_ATTACKS=$CHAOS_ATTACKS scripts/chaos_table.sh $BUILD\`" \
		"on $(nproc) cores, load average $load0 before and $load1 after" \
		"(other jobs on the machine make runs slower, not different: nothing here is a speed)."
	echo
	echo "| scenario | result | figures | command |"
	echo "| --- | --- | --- | --- |"
	while IFS='|' read -r sc res figs cmd; do
		echo "| $sc | $res | $figs | \`$cmd\` |"
	done <"$CHAOS_FIGURES"
	echo
	echo "$END"
} >"$TMP/table"

if [ "$DRY" = 1 ]; then
	cat "$TMP/table"
	exit 0
fi
if grep -qF "$BEGIN" "$DOC"; then
	# Replace what lies between the markers, keep the rest of the document.
	awk -v b="$BEGIN" -v e="$END" -v f="$TMP/table" '
		$0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
		$0 == e { skip = 0; next }
		!skip' "$DOC" >"$TMP/doc" && cp "$TMP/doc" "$DOC"
else
	{
		echo
		echo "## Faults and attacks"
		echo
		echo "The chaos tests (tests/chaos_*.sh; short versions in \`make test\`, long ones in"
		echo "\`make chaos\`) attack or break a running tailgate while a legitimate device sends, and"
		echo "check that nothing crashes, every request of the device is answered exactly once and"
		echo "correctly, no unverified address receives more than it sent, and the counters add up."
		echo
		cat "$TMP/table"
	} >>"$DOC"
fi
echo "chaos_table: $(wc -l <"$CHAOS_FIGURES") scenarios written to $DOC"
