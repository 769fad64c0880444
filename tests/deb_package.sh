#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deb, checked as an operator and a device developer installing it would. Three packages
# (dpkg-buildpackage, debian/): tailgate (daemon, tools, unit, configuration, model),
# libtailgate-client1 (the versioned shared library, its shlibs) and libtailgate-client-dev
# (headers, static library, .so link, tailgate-client.pc, the example). dpkg-deb -c lists
# each one's files and nothing of the others'; the control files' versions are the daemon's,
# the Depends came from dpkg-shlibdeps, the -dev depends on the library of its version, /etc
# files are conffiles; apt-get install -s resolves all three here. Unpacked into a temporary root: the daemon says its version, its unit
# passes systemd-analyze verify, the default configuration passes --check-config, logrotate
# signals SIGUSR1 (log reopen), never SIGHUP (model reload). The library and -dev packages
# unpacked into another root (dpkg -x): the packaged example builds through pkg-config alone
# (PKG_CONFIG_SYSROOT_DIR, PKG_CONFIG_LIBDIR), shared and static, and runs. lintian over the
# packages: an error fails (a skip, said so, only when lintian is not installed).
# Usage: tests/deb_package.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_debtest.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

SAN= SANFLAGS=()
if [[ "$BUILD" == */san ]]; then	# the sanitized library needs the runtime in the program
	SAN=1 SANFLAGS=(-fsanitize=address,undefined)
fi
version=$("$BUILD/tailgate" --version | awk '{ print $2 }')
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
d=$BUILD/deb
deb_d=$d/tailgate_${version}_${arch}.deb
deb_l=$d/libtailgate-client1_${version}_${arch}.deb
deb_v=$d/libtailgate-client-dev_${version}_${arch}.deb
rm -rf "$d"
if env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory deb BUILD="$BUILD" \
	${SAN:+SAN=1} >"$TMP/make.log" 2>&1 && [ -f "$deb_d" ] && [ -f "$deb_l" ] && [ -f "$deb_v" ]; then
	ok "make deb built $(cd "$d" && ls -- *.deb | tr '\n' ' ')"
else
	bad "make deb: $(tail -n 5 "$TMP/make.log")"
fi

contents() {	# deb: its paths, one a line
	dpkg-deb -c "$1" 2>/dev/null | awk '{ print $6 }' | sed 's|^\./|/|; s|/$||'
}
contents "$deb_d" >"$TMP/c_d"
contents "$deb_l" >"$TMP/c_l"
contents "$deb_v" >"$TMP/c_v"
for f in /usr/bin/tailgate /usr/bin/tailgate-bench /usr/bin/tailgate-model /usr/bin/tgc-example \
	/lib/systemd/system/tailgate.service /etc/logrotate.d/tailgate /etc/tailgate/tailgate.conf \
	/etc/default/tailgate /usr/share/tailgate/models/fmnist-resnet/model.onnx \
	/usr/share/tailgate/models/fmnist-resnet/model.conf /usr/share/doc/tailgate/copyright; do
	check "tailgate: lists $f" grep -qx -- "$f" "$TMP/c_d"
done
check "tailgate: no library or header (those are the lib packages')" \
	bash -c "! grep -q -e libtailgate-client -e /usr/include '$TMP/c_d'"
for f in "/usr/lib/$ma/libtailgate-client.so.1.0.0" "/usr/lib/$ma/libtailgate-client.so.1" \
	/usr/share/doc/libtailgate-client1/copyright; do
	check "libtailgate-client1: lists $f" grep -qx -- "$f" "$TMP/c_l"
done
check "libtailgate-client1: the runtime library only (no .so link, .a, header)" \
	bash -c "! grep -q -e '\.so$' -e '\.a$' -e /usr/include -e /usr/bin '$TMP/c_l'"
for f in /usr/include/tailgate/tgc.h /usr/include/tailgate/types.h \
	"/usr/lib/$ma/libtailgate-client.a" "/usr/lib/$ma/libtailgate-client.so" \
	"/usr/lib/$ma/pkgconfig/tailgate-client.pc" \
	/usr/share/doc/libtailgate-client-dev/examples/device.c; do
	check "libtailgate-client-dev: lists $f" grep -qx -- "$f" "$TMP/c_v"
done
check "libtailgate-client-dev: no shared object of its own, no proto/ or util/ header" \
	bash -c "! grep -q -e '\.so\.1' -e /proto/ -e /util/ '$TMP/c_v'"

field() { dpkg-deb -f "$1" "$2" 2>/dev/null; }
for deb in "$deb_d" "$deb_l" "$deb_v"; do
	check "$(basename "$deb"): Version $version" test "$(field "$deb" Version)" = "$version"
done
dep=$(field "$deb_d" Depends)
check "tailgate: Depends from dpkg-shlibdeps (libdnnl, DPDK, libsystemd)" \
	bash -c "grep -q libdnnl <<<'$dep' && grep -q librte-eal <<<'$dep' && grep -q libsystemd0 <<<'$dep'"
check "libtailgate-client1: Depends from dpkg-shlibdeps (libdnnl, libc6)" \
	bash -c "grep -q libdnnl <<<'$(field "$deb_l" Depends)' && grep -q libc6 <<<'$(field "$deb_l" Depends)'"
check "libtailgate-client-dev: Depends on libtailgate-client1 (= $version) ($(field "$deb_v" Depends | cut -c1-60))" \
	grep -q "libtailgate-client1 (= $version)" <<<"$(field "$deb_v" Depends)"
dpkg-deb --ctrl-tarfile "$deb_l" | tar -xO ./shlibs >"$TMP/shlibs" 2>/dev/null
check "libtailgate-client1: shlibs names the soname ($(head -n 1 "$TMP/shlibs"))" \
	grep -q '^libtailgate-client 1 libtailgate-client1' "$TMP/shlibs"
dpkg-deb --ctrl-tarfile "$deb_d" | tar -xO ./conffiles >"$TMP/conffiles" 2>/dev/null
check "tailgate: conffiles: the configuration, defaults and logrotate file" \
	test "$(sort "$TMP/conffiles" | tr '\n' ' ')" = \
	"/etc/default/tailgate /etc/logrotate.d/tailgate /etc/tailgate/tailgate.conf "

# Installable here: apt resolves every Depends (simulated: nothing is installed).
if command -v apt-get >/dev/null; then
	local_path() { case $1 in /*) echo "$1" ;; *) echo "./$1" ;; esac; }	# apt: a file, not a name
	timeout 300 apt-get install -s -q --no-install-recommends "$(local_path "$deb_d")" \
		"$(local_path "$deb_l")" "$(local_path "$deb_v")" \
		>"$TMP/apt" 2>&1
	rc=$?
	check "apt-get install -s of the three: every dependency resolves (status $rc$(grep -m1 -E '^E:' "$TMP/apt" | sed 's/^/; /'))" \
		bash -c "[ $rc -eq 0 ] && grep -q '^Conf tailgate ' '$TMP/apt' &&
			 grep -q '^Conf libtailgate-client1 ' '$TMP/apt' &&
			 grep -q '^Conf libtailgate-client-dev ' '$TMP/apt'"
else
	echo "skip: apt-get missing: installability not checked"; skip=$((skip + 1))
fi

# The daemon's package, as an operator gets it.
root=$TMP/root
dpkg-deb -x "$deb_d" "$root" 2>/dev/null
check "the packaged daemon says its version" \
	bash -c "'$root/usr/bin/tailgate' --version | grep -qx 'tailgate $version (git .*)'"
unit=$root/lib/systemd/system/tailgate.service
if command -v systemd-analyze >/dev/null; then
	# Against this host's units, with the unpacked daemon (verify checks ExecStart exists).
	sed "s|/usr/bin/tailgate|$root/usr/bin/tailgate|g" "$unit" >"$TMP/tailgate.service"
	systemd-analyze verify --man=no "$TMP/tailgate.service" >"$TMP/verify" 2>&1
	check "systemd-analyze verify: the unit is clean $(head -n 2 "$TMP/verify" | tr '\n' ' ')" \
		test ! -s "$TMP/verify"
else
	echo "skip: systemd-analyze missing"; skip=$((skip + 1))
fi
check "unit: Type=notify, reload by SIGHUP, watchdog, config checked before start" \
	bash -c "grep -qx 'Type=notify' '$unit' &&
		 grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' '$unit' &&
		 grep -q '^WatchdogSec=' '$unit' &&
		 grep -q '^ExecStartPre=/usr/bin/tailgate --check-config' '$unit'"
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

# The library packages, as a device developer gets them: the packaged example, built against
# that root through pkg-config alone.
dev=$TMP/devroot
dpkg -x "$deb_l" "$dev" 2>/dev/null
dpkg -x "$deb_v" "$dev" 2>/dev/null
export PKG_CONFIG_SYSROOT_DIR=$dev PKG_CONFIG_LIBDIR=$dev/usr/lib/$ma/pkgconfig
cflags=$(pkg-config --cflags tailgate-client 2>/dev/null | xargs)
libs=$(pkg-config --libs tailgate-client 2>/dev/null)
slibs=$(pkg-config --static --libs tailgate-client 2>/dev/null)
check "pkg-config finds tailgate-client $(pkg-config --modversion tailgate-client 2>/dev/null) in the root ($cflags)" \
	test "$cflags" = "-I$dev/usr/include"
example=$dev/usr/share/doc/libtailgate-client-dev/examples/device.c
model=$root/usr/share/tailgate/models/fmnist-resnet/model.onnx
port=$((40000 + $$ % 20000))	# nothing listens there: tgc_open must fail cleanly
# shellcheck disable=SC2086	# pkg-config's words are separate flags
if gcc -std=c11 -Wall -Werror "${SANFLAGS[@]}" $cflags "$example" -o "$TMP/example" $libs \
	2>"$TMP/cc.log"; then
	ok "the packaged example builds against the -dev package (shared)"
	LD_LIBRARY_PATH=$dev/usr/lib/$ma ldd "$TMP/example" >"$TMP/ldd" 2>&1
	check "it loads libtailgate-client.so.1 from the library package" \
		grep -q "libtailgate-client.so.1 => $dev/usr/lib/$ma/libtailgate-client.so.1" "$TMP/ldd"
	LD_LIBRARY_PATH=$dev/usr/lib/$ma "$TMP/example" "$model" "$port" >"$TMP/ex.out" 2>&1
	check "the example runs: $(tail -n 1 "$TMP/ex.out")" grep -qx '3 passed, 0 failed' "$TMP/ex.out"
else
	bad "the packaged example against the -dev package: $(head -n 5 "$TMP/cc.log")"
fi
# shellcheck disable=SC2086
if gcc -std=c11 "${SANFLAGS[@]}" $cflags "$example" -o "$TMP/example-static" \
	-Wl,-Bstatic -ltailgate-client -Wl,-Bdynamic ${slibs/-ltailgate-client/} 2>"$TMP/st.log"; then
	"$TMP/example-static" "$model" "$port" >"$TMP/st.out" 2>&1
	check "the example linked statically (pkg-config --static) runs: $(tail -n 1 "$TMP/st.out")" \
		grep -qx '3 passed, 0 failed' "$TMP/st.out"
else
	bad "static link against the -dev package: $(head -n 5 "$TMP/st.log")"
fi
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR

if command -v lintian >/dev/null; then
	changes=$d/tailgate_${version}_${arch}.changes
	check "the .changes lists the three packages" \
		test "$(grep -c -e " tailgate_${version}_" -e " libtailgate-client1_${version}_" \
			-e " libtailgate-client-dev_${version}_" "$changes" 2>/dev/null)" -ge 3
	lintian -I --fail-on error --tag-display-limit 0 "$changes" >"$TMP/lintian" 2>&1
	rc=$?
	grep -E '^[EW]:' "$TMP/lintian" | sed 's/^/    lintian /' | head -n 20
	check "lintian: no errors (status $rc; $(grep -c '^E:' "$TMP/lintian") errors, $(grep -c '^W:' "$TMP/lintian") warnings, $(grep -c '^I:' "$TMP/lintian") infos)" \
		bash -c "[ $rc -eq 0 ] && ! grep -q '^E:' '$TMP/lintian'"
else
	echo "skip: lintian is not installed (apt-get install lintian, or make deps): the packages were not linted"
	skip=$((skip + 1))
fi
check_done
