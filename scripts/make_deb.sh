#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb: one Debian package, tailgate_<version>_<arch>.deb in BUILD, built with dpkg-deb
# from what `make` built: the daemon and tools (/usr/bin), libtailgate-client (static and
# shared with its soname link, multiarch libdir), its headers and tailgate-client.pc, the
# shipped model (/usr/share/tailgate/models), the systemd unit, /etc/default/tailgate, the
# logrotate file and a default /etc/tailgate/tailgate.conf (conffiles, kept on upgrade).
# Depends are computed by dpkg-shlibdeps from the binaries' own NEEDED entries.
# Usage: scripts/make_deb.sh BUILD VERSION
set -euo pipefail
BUILD=${1:?BUILD}
VERSION=${2:?VERSION}
cd "$(dirname "$0")/.."

ARCH=$(dpkg --print-architecture)
MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
STAGE=$(mktemp -d /tmp/tg_deb.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
ROOT=$STAGE/root
OUT=$BUILD/tailgate_${VERSION}_${ARCH}.deb

echo "deb: staging into $ROOT"
env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory install BUILD="$BUILD" \
	DESTDIR="$ROOT" PREFIX=/usr LIBDIR="/usr/lib/$MULTIARCH"
install -D -m 644 dist/tailgate.service "$ROOT/lib/systemd/system/tailgate.service"
install -D -m 644 dist/tailgate.default "$ROOT/etc/default/tailgate"
install -D -m 644 dist/tailgate.conf "$ROOT/etc/tailgate/tailgate.conf"
install -D -m 644 dist/tailgate.logrotate "$ROOT/etc/logrotate.d/tailgate"
install -d -m 755 "$ROOT/var/log/tailgate"
install -D -m 644 README.md "$ROOT/usr/share/doc/tailgate/README.md"
install -D -m 644 docs/protocol.md "$ROOT/usr/share/doc/tailgate/protocol.md"
install -D -m 644 LICENSE "$ROOT/usr/share/doc/tailgate/copyright"

# dpkg-shlibdeps reads debian/control from the current directory: give it a minimal one.
mkdir -p "$STAGE/src/debian"
printf 'Source: tailgate\n\nPackage: tailgate\nArchitecture: any\n' >"$STAGE/src/debian/control"
bins=()
for f in "$ROOT"/usr/bin/* "$ROOT/usr/lib/$MULTIARCH"/libtailgate-client.so.*.*; do
	file -b "$f" | grep -q ELF && bins+=("$f")
done
depends=$(cd "$STAGE/src" && dpkg-shlibdeps -O -l"$ROOT/usr/lib/$MULTIARCH" \
	--ignore-missing-info "${bins[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$ROOT/DEBIAN"
cat >"$ROOT/DEBIAN/control" <<CONTROL
Package: tailgate
Version: $VERSION
Architecture: $ARCH
Maintainer: tailgate developers <tailgate@localhost>
Section: net
Priority: optional
Installed-Size: $(du -sk "$ROOT" | cut -f1)
Depends: $depends
Recommends: logrotate, librte-net-af-xdp23, librte-net-af-packet23
Description: gateway serving the tails of split deep neural networks over UDP
 Devices run the head of a CNN up to a split point and send the quantized, compressed
 feature tensor over UDP; tailgate reassembles it off a DPDK dataplane, batches requests
 and runs the tail with oneDNN. This package holds the daemon (a systemd service with
 sd_notify readiness and watchdog), tailgate-bench, tailgate-model, the device library
 libtailgate-client with its headers and pkg-config file, and the shipped Fashion-MNIST
 model.
CONTROL
(cd "$ROOT" && find etc -type f | sed 's|^|/|') >"$ROOT/DEBIAN/conffiles"
cat >"$ROOT/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
# The service needs the host's address and port first: installed, not enabled or started.
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
POSTINST
chmod 755 "$ROOT/DEBIAN/postinst"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$OUT" >/dev/null
echo "deb: $OUT ($(du -h "$OUT" | cut -f1)); Depends: $depends"
