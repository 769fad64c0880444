#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The client library's ABI is the one recorded in abi/ (scripts/abi_dump.sh --baseline):
# abidiff (libabigail) finds no change between the recorded corpus and the built
# libtailgate-client.so.1, limited to the types of the installed headers. A change fails
# here with abidiff's report. What to do then: a struct of tgc.h that changes size or
# layout, or a function whose type changes, breaks programs built against the older header
# (raise TGC_SOVERSION in the Makefile, rename the Debian package libtailgate-client1, and
# record the new baseline); a function added is compatible (record the new baseline in the
# same commit). Also checked: abidiff itself sees a struct that grows (the check can fail).
# Usage: tests/abi_check.sh [BUILD]
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_abi.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

BASE=abi/libtailgate-client.so.1.xml.gz
if ! command -v abidiff >/dev/null || ! command -v abidw >/dev/null; then
	echo "skip: abidiff and abidw missing (Debian: abigail-tools; make deps installs it)"
	skip=$((skip + 1))
	check_done
	exit
fi
check "the recorded ABI is there ($BASE)" test -s "$BASE"
check "the built library's ABI dumped" scripts/abi_dump.sh "$BUILD" "$TMP/now.xml.gz"
gunzip -c "$BASE" >"$TMP/base.xml" 2>/dev/null
gunzip -c "$TMP/now.xml.gz" >"$TMP/now.xml" 2>/dev/null
abidiff "$TMP/base.xml" "$TMP/now.xml" >"$TMP/diff.txt" 2>&1
rc=$?
[ $rc -ne 0 ] && sed 's/^/  | /' "$TMP/diff.txt" | head -60
check "libtailgate-client.so.1: no ABI change against $BASE (abidiff status $rc)" test $rc -eq 0

# The check can fail: the same library described with struct tgc_result one field longer
# is a change abidiff reports (size and layout of a type the API passes).
python3 - "$TMP/now.xml" "$TMP/grown.xml" <<'PY'
import re, sys
x = open(sys.argv[1]).read()
m = re.search(r"<class-decl name='tgc_result' size-in-bits='(\d+)'", x)
if m:
    old = int(m.group(1))
    x = x.replace(m.group(0), m.group(0).replace(str(old), str(old + 64)), 1)
open(sys.argv[2], "w").write(x)
PY
abidiff "$TMP/now.xml" "$TMP/grown.xml" >"$TMP/diff2.txt" 2>&1
rc2=$?
check "abidiff reports tgc_result grown by 8 bytes (status $rc2)" \
	bash -c "[ $rc2 -ne 0 ] && grep -q 'tgc_result' '$TMP/diff2.txt'"
check_done
