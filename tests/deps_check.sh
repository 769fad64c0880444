#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Building needs no root: `make`, `make install` and `make deb` only check the build
# dependencies (scripts/deps.sh --check), which installs nothing and, when a package is
# missing, stops with one line naming the Debian packages to install; `make test`, `make demo`
# (and the benchmarks, fuzzing) run the installing scripts/deps.sh first. Checked with a
# dpkg-query that reports two packages missing and an apt-get and npm that record any call,
# all first in PATH, and with `make -n` (what make would run, nothing run).
# Usage: tests/deps_check.sh [BUILD]
set -u
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_deps.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

mkdir -p "$TMP/bin"
cat >"$TMP/bin/dpkg-query" <<'SH'
#!/bin/sh
# Installed, except the two packages the test pretends are missing.
for a in "$@"; do p=$a; done
case "$p" in
libdnnl-dev|libjansson-dev) echo "unknown ok not-installed" ;;
*) echo "install ok installed" ;;
esac
SH
for t in apt-get apt npm; do
	printf '#!/bin/sh\necho "%s $*" >>"%s/installers"\nexit 0\n' "$t" "$TMP" >"$TMP/bin/$t"
done
chmod +x "$TMP/bin"/*

PATH=$TMP/bin:$PATH scripts/deps.sh --check >"$TMP/out" 2>"$TMP/err"
rc=$?
check "deps.sh --check with two packages missing: status 1 ($rc)" test "$rc" -eq 1
check "one line, naming both packages to install ($(head -n 1 "$TMP/err"))" \
	bash -c "[ \$(wc -l <'$TMP/err') -eq 1 ] && [ ! -s '$TMP/out' ] &&
		 grep -q '^missing build dependencies: apt-get install libdnnl-dev libjansson-dev' '$TMP/err'"
check "nothing was installed (no apt-get, apt or npm call)" test ! -e "$TMP/installers"

# What each goal runs, from make's own dry run with deps.sh taken as changed (-W): the build
# goals only the check, the goals that run things the installer.
for goal in all install deb; do
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -n -W scripts/deps.sh "$goal" >"$TMP/n.$goal" 2>&1
	check "make $goal runs deps.sh --check, never the installer" \
		bash -c "grep -q 'scripts/deps.sh --check' '$TMP/n.$goal' &&
			 ! grep -Eq 'scripts/deps.sh( --no-npm)? *$' '$TMP/n.$goal'"
done
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -n -W scripts/deps.sh test >"$TMP/n.test" 2>&1
check "make test runs the installer first (scripts/deps.sh)" \
	grep -Eq 'scripts/deps.sh( --no-npm)? *$' "$TMP/n.test"
# make demo's recipe is marked + (it runs make itself), so even make -n would run it: read it.
check "make demo runs scripts/demo.sh, which runs the installer before make" \
	bash -c "grep -q 'scripts/demo.sh' Makefile &&
		 grep -q '{ scripts/deps.sh --no-npm && \${MAKE:-make} BUILD=\"\$BUILD\" all; }' scripts/demo.sh"
check_done
