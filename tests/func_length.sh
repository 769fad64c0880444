#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Style (STYLE.md, issue 12's "done when"): no function of the product code is longer than
# 150 lines, so that a reader sees one function whole. Product code is every C file outside
# tests/, fuzz/ and bench/engine/ (peers and measurement programs); program mains in
# programs/ count. A function is what the project's layout writes: its opening brace alone
# on a line in column 0, its closing brace alone in column 0; the count is the lines between.
# Fails naming each function over the limit.
# Usage: tests/func_length.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_funclen.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash
LIMIT=${TG_FUNC_LIMIT:-150}	# a lower one lists the longest (the check fails then)

n=0 long=()
while IFS= read -r f; do
	n=$((n + 1))
	while IFS= read -r row; do
		long+=("$row")
	done < <(awk -v F="$f" -v L="$LIMIT" '
		/^\{/ { start = NR; name = prev }
		/^\}/ && start { if (NR - start - 1 > L) print F ": " name " (" NR - start - 1 " lines)"; start = 0 }
		{ prev = $0 }' "$f")
done < <(git ls-files '*.c' 2>/dev/null | grep -vE '^(tests|fuzz|bench/engine)/' ||
	find . -name '*.c' -not -path './tests/*' -not -path './fuzz/*' -not -path './bench/engine/*' \
		-not -path './build/*')
check "product C files found to check ($n)" test "$n" -gt 50
for row in "${long[@]}"; do
	echo "    | $row"
done
check "no function of the product code over $LIMIT lines (${#long[@]} over)" test "${#long[@]}" -eq 0
check_done
