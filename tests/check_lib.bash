# SPDX-License-Identifier: Apache-2.0
# Sourced by the scripted tests (directly, or through tests/gw_lib.bash): check bookkeeping
# and reading the "name value" files the test programs print. Not a test itself.
# The caller sets TMP (a directory it removes) before sourcing.
#
# A check must fail when the value it reads is missing (a key no longer printed, a metric
# renamed, a file never written). val and metric therefore never make a value up: a missing
# one reads as "?missing", which no numeric test accepts (`test -eq` says "integer expression
# expected", `$(( ))` "operand expected", num_ge and friends refuse it), and the key is recorded
# in $TMP/missing-values; check_done counts each one recorded as a failure, so even a check
# written as `test -n "$(metric ...)"` or one whose arithmetic aborted fails the test.

pass=0 fail=0 skip=0
CHECK_MISSING=$TMP/missing-values

ok() { echo "ok   $*"; pass=$((pass + 1)); }
bad() { echo "FAIL $*"; fail=$((fail + 1)); }
check() {	# description, then a test expression
	local what=$1; shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}

check_missing() {	# what, where: record a value read but not found
	echo "$1 in $2" >>"$CHECK_MISSING"
	echo "FAIL missing value: $1 in $2" >&2
	echo "?missing"
}

# The value of the first "key value" line of a file.
val() {	# key file
	local v
	v=$(awk -v k="$1" '$1 == k { print $2; exit }' "$2" 2>/dev/null)
	if [ -z "$v" ]; then
		check_missing "$1" "$2"
	else
		echo "$v"
	fi
}

# A value for display only (figures, summaries), never for a check: "?" when missing.
show() {	# key file
	local v
	v=$(awk -v k="$1" '$1 == k { print $2; exit }' "$2" 2>/dev/null)
	echo "${v:-?}"
}

# A metric's value from a scrape (the first sample whose name and labels match exactly).
metric() {	# file 'name{labels}'
	local v
	v=$(awk -v k="$2" '$1 == k { print $2; exit }' "$1" 2>/dev/null)
	if [ -z "$v" ]; then
		check_missing "$2" "$1"
	else
		echo "$v"
	fi
}

# Numeric comparisons that refuse anything but a number (awk alone compares "?missing" as a
# string, and bash's -ge takes integers only).
is_num() { [[ "$1" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }
num_ge() { is_num "$1" && is_num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
num_le() { is_num "$1" && is_num "$2" && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }
num_in() { num_ge "$1" "$2" && num_le "$1" "$3"; }	# value lo hi, inclusive

# The closing line "N passed, N failed, N skipped"; every missing value read is one failure
# more. @return 0 when nothing failed.
check_done() {
	local m=0
	if [ -s "$CHECK_MISSING" ]; then
		m=$(sort -u "$CHECK_MISSING" | wc -l)
		echo "FAIL values read but missing ($m): $(sort -u "$CHECK_MISSING" | tr '\n' ';')"
	fi
	fail=$((fail + m))
	echo "$pass passed, $fail failed, $skip skipped"
	[ "$fail" -eq 0 ]
}
