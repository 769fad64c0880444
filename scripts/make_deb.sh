#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb: the Debian packages of debian/control, built by `dpkg-buildpackage -b -us -uc`
# (debhelper) from what `make` built, into BUILD/deb/:
#   tailgate               the daemon and tools (/usr/bin), the systemd unit (Type=notify),
#                          /etc/tailgate/tailgate.conf, /etc/default/tailgate, the logrotate
#                          file (SIGUSR1: log reopen), the shipped model (/usr/share/tailgate)
#   libtailgate-client1    libtailgate-client.so.1 (multiarch libdir)
#   libtailgate-client-dev <tailgate/tgc.h>, <tailgate/types.h>, libtailgate-client.a, the .so
#                          link, tailgate-client.pc, an example device program
# `make install` fills a temporary root; debian/ (and what its docs and examples name) is
# copied beside it into a staging folder where dpkg-buildpackage runs with TG_ROOT set
# (debian/rules): the tree is never cleaned, its build/ never rebuilt with other flags, and
# nothing is written outside BUILD. Depends come from dpkg-shlibdeps, the library's shlibs
# from dh_makeshlibs. tests/deb_package.sh runs lintian over them.
# Usage: scripts/make_deb.sh BUILD VERSION
set -euo pipefail
BUILD=${1:?BUILD}
VERSION=${2:?VERSION}
cd "$(dirname "$0")/.."

for tool in dpkg-buildpackage dh; do
	if ! command -v "$tool" >/dev/null; then
		echo "deb: $tool missing: apt-get install dpkg-dev debhelper  (or, as root: make deps)" >&2
		exit 1
	fi
done
changelog=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$changelog" != "$VERSION" ]; then
	echo "deb: debian/changelog says $changelog, the Makefile's TG_VERSION $VERSION: add a changelog entry" >&2
	exit 1
fi

ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
OUT=$BUILD/deb
STAGE=$(mktemp -d /tmp/tg_deb.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
ROOT=$STAGE/root
SRC=$STAGE/tailgate-$VERSION

echo "deb: make install into $ROOT"
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory install BUILD="$BUILD" \
	DESTDIR="$ROOT" PREFIX=/usr LIBDIR="/usr/lib/$MULTIARCH"
install -D -m 644 dist/tailgate.service "$ROOT/lib/systemd/system/tailgate.service"
install -D -m 644 dist/tailgate.default "$ROOT/etc/default/tailgate"
install -D -m 644 dist/tailgate.conf "$ROOT/etc/tailgate/tailgate.conf"
install -D -m 644 dist/tailgate.logrotate "$ROOT/etc/logrotate.d/tailgate"

mkdir -p "$SRC/docs" "$SRC/tests/install"
cp -a debian "$SRC/"
cp README.md "$SRC/"
cp docs/protocol.md "$SRC/docs/"
cp tests/install/device.c "$SRC/tests/install/"
echo "deb: dpkg-buildpackage -b -us -uc in $SRC"
if ! (cd "$SRC" && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS TG_ROOT="$ROOT" \
	dpkg-buildpackage -b -us -uc) >"$STAGE/build.log" 2>&1; then
	tail -n 30 "$STAGE/build.log" >&2
	echo "deb: dpkg-buildpackage failed" >&2
	exit 1
fi
rm -rf "$OUT"
mkdir -p "$OUT"
cp "$STAGE"/*.deb "$STAGE"/*.changes "$STAGE"/*.buildinfo "$OUT/"
for d in "$OUT"/*.deb; do
	echo "deb: $d ($(du -h "$d" | cut -f1)); Depends: $(dpkg-deb -f "$d" Depends)"
done
echo "deb: check them with lintian (tests/deb_package.sh does): lintian --fail-on error $OUT/tailgate_${VERSION}_${ARCH}.changes"
