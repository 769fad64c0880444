#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Licensing: the LICENSE file is the Apache License 2.0 (README "License"), and every source
# file (C, headers, shell, Python, JavaScript, the Makefile, the linker map) names it in an
# SPDX line within its first three lines, so a device maker copying one file into firmware
# knows its terms. Fails naming each file without one.
# Usage: tests/spdx.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_spdx.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

check "LICENSE is the Apache License 2.0" grep -q 'Apache License' LICENSE
check "LICENSE has the licence's terms, not a pointer" \
	grep -q 'TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION' LICENSE
n=0 missing=()
while IFS= read -r -d '' f; do
	n=$((n + 1))
	head -n 3 "$f" | grep -q 'SPDX-License-Identifier: Apache-2.0' || missing+=("$f")
done < <(find . \( -path ./build -o -path ./.git -o -path ./fuzz/corpus -o -path ./tests/fixtures \
	-o -path ./models -o -name node_modules \) -prune -o -type f \
	\( -name '*.[ch]' -o -name '*.cpp' -o -name '*.sh' -o -name '*.bash' -o -name '*.py' \
	-o -name '*.js' -o -name '*.map' -o -name '*.pc.in' -o -name Makefile -o -path './dist/*' \) -print0)
check "source files found to check ($n)" test "$n" -gt 100
check "every source file has an SPDX line${missing:+ (missing: ${missing[*]})}" \
	test "${#missing[@]}" -eq 0
check_done
