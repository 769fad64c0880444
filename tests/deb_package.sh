#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb, checked as an operator installing it would: dpkg-deb -c lists the daemon, the
# tools, the library (shared with its soname link, static), headers, pkg-config file,
# systemd unit, logrotate file, default configuration and the shipped model; the control
# file's version is the daemon's, its Depends came from dpkg-shlibdeps, /etc files are
# conffiles. Then the package is unpacked into a temporary root: the daemon there says its
# version, its unit passes systemd-analyze verify against that root, its default
# configuration (pointed at the unpacked models) passes --check-config, the logrotate file
# signals SIGUSR1 (log reopen), never SIGHUP (model reload).
# Usage: tests/deb_package.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_debtest.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

SAN=
[[ "$BUILD" == */san ]] && SAN=1
version=$("$BUILD/tailgate" --version | awk '{ print $2 }')
arch=$(dpkg --print-architecture)
deb=$BUILD/tailgate_${version}_${arch}.deb
rm -f "$deb"
if env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory deb BUILD="$BUILD" \
	${SAN:+SAN=1} >"$TMP/make.log" 2>&1 && [ -f "$deb" ]; then
	ok "make deb built $(basename "$deb")"
else
	bad "make deb: $(tail -n 5 "$TMP/make.log")"
fi
dpkg-deb -c "$deb" 2>/dev/null | awk '{ print $6 }' | sed 's|^\./|/|' >"$TMP/contents"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
for f in /usr/bin/tailgate /usr/bin/tailgate-bench /usr/bin/tailgate-model \
	"/usr/lib/$ma/libtailgate-client.so.1.0.0" "/usr/lib/$ma/libtailgate-client.so.1" \
	"/usr/lib/$ma/libtailgate-client.so" "/usr/lib/$ma/libtailgate-client.a" \
	/usr/include/tailgate/tgc.h "/usr/lib/$ma/pkgconfig/tailgate-client.pc" \
	/lib/systemd/system/tailgate.service /etc/logrotate.d/tailgate /etc/tailgate/tailgate.conf \
	/etc/default/tailgate /usr/share/tailgate/models/fmnist-resnet/model.onnx \
	/usr/share/tailgate/models/fmnist-resnet/model.conf /usr/share/doc/tailgate/copyright; do
	check "dpkg-deb -c lists $f" grep -qx -- "$f" "$TMP/contents"
done
dpkg-deb -f "$deb" Package Version Depends >"$TMP/fields" 2>&1
check "control: Package tailgate, Version $version" \
	bash -c "grep -qx 'Package: tailgate' '$TMP/fields' && grep -qx 'Version: $version' '$TMP/fields'"
check "control: Depends from dpkg-shlibdeps (libdnnl, DPDK, libsystemd)" \
	bash -c "grep '^Depends:' '$TMP/fields' | grep -q 'libdnnl' &&
		 grep '^Depends:' '$TMP/fields' | grep -q 'librte-eal' &&
		 grep '^Depends:' '$TMP/fields' | grep -q 'libsystemd0'"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles >"$TMP/conffiles" 2>/dev/null
check "conffiles: the configuration, defaults and logrotate file" \
	test "$(sort "$TMP/conffiles" | tr '\n' ' ')" = \
	"/etc/default/tailgate /etc/logrotate.d/tailgate /etc/tailgate/tailgate.conf "

root=$TMP/root
dpkg-deb -x "$deb" "$root" 2>/dev/null
check "the packaged daemon says its version" \
	bash -c "'$root/usr/bin/tailgate' --version | grep -qx 'tailgate $version (git .*)'"
if command -v systemd-analyze >/dev/null; then
	# Against this host's units, with the unpacked daemon (verify checks ExecStart exists).
	sed "s|/usr/bin/tailgate|$root/usr/bin/tailgate|g" "$root/lib/systemd/system/tailgate.service" \
		>"$TMP/tailgate.service"
	systemd-analyze verify --man=no "$TMP/tailgate.service" >"$TMP/verify" 2>&1
	check "systemd-analyze verify: the unit is clean $(head -n 2 "$TMP/verify" | tr '\n' ' ')" \
		test ! -s "$TMP/verify"
else
	echo "skip: systemd-analyze missing"; skip=$((skip + 1))
fi
check "unit: Type=notify, reload by SIGHUP, watchdog, config checked before start" \
	bash -c "grep -qx 'Type=notify' '$root/lib/systemd/system/tailgate.service' &&
		 grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' '$root/lib/systemd/system/tailgate.service' &&
		 grep -q '^WatchdogSec=' '$root/lib/systemd/system/tailgate.service' &&
		 grep -q '^ExecStartPre=/usr/bin/tailgate --check-config' '$root/lib/systemd/system/tailgate.service'"
check "logrotate: SIGUSR1 reopens the logs, no SIGHUP" \
	bash -c "grep -q -- '--signal=SIGUSR1' '$root/etc/logrotate.d/tailgate' &&
		 ! grep -v '^#' '$root/etc/logrotate.d/tailgate' | grep -q HUP"
if command -v logrotate >/dev/null; then
	check "logrotate -d parses it" logrotate -d "$root/etc/logrotate.d/tailgate" 
fi
sed "s|^models = .*|models = $root/usr/share/tailgate/models|" "$root/etc/tailgate/tailgate.conf" \
	>"$TMP/tailgate.conf"
"$root/usr/bin/tailgate" --check-config "$TMP/tailgate.conf" >"$TMP/check.out" 2>&1
check "the default configuration is valid with the packaged model ($(tail -n 1 "$TMP/check.out"))" \
	grep -q '^model fmnist-resnet: id 1' "$TMP/check.out"
check_done
