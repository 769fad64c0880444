#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The device library as a device developer gets it: `make install` into a temporary DESTDIR,
# then a C and a C++ program (tests/install/device.c, device.cpp) built against the
# *installed* copy through pkg-config alone (no -I or -L into the source tree), linked
# shared and static, and run. Also checked: the soname is versioned, the shared library
# exports the tgc_* API and nothing else, tgc.h compiles alone in C and C++ (-Wall -Wextra
# -pedantic -Werror), and it is self-contained: the installed headers are tgc.h and the types
# it uses (types.h), nothing of the tree's proto/ or util/, and compiling it reads no other
# header of ours (gcc -M).
# Usage: tests/install_lib.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/tg_install.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
. tests/check_lib.bash

SAN= SANFLAGS=()
if [[ "$BUILD" == */san ]]; then	# the sanitized library needs the runtime in the program
	SAN=1 SANFLAGS=(-fsanitize=address,undefined)
fi
PREFIX=/usr/local DEST=$TMP/root
# A make of its own: not the jobserver of the make test that may be running us.
if env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS make -s --no-print-directory install \
	BUILD="$BUILD" ${SAN:+SAN=1} PREFIX=$PREFIX DESTDIR="$DEST" >"$TMP/install.log" 2>&1; then
	ok "make install DESTDIR=... PREFIX=$PREFIX"
else
	bad "make install failed: $(tail -n 5 "$TMP/install.log")"
fi
LIB=$DEST$PREFIX/lib
for f in bin/tailgate bin/tailgate-bench bin/tailgate-model lib/libtailgate-client.a \
	lib/libtailgate-client.so.1 lib/libtailgate-client.so include/tailgate/tgc.h \
	lib/pkgconfig/tailgate-client.pc share/tailgate/models/fmnist-resnet/model.onnx; do
	check "installed $f" test -e "$DEST$PREFIX/$f"
done

soname=$(readelf -d "$LIB/libtailgate-client.so" 2>/dev/null | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
check "soname is versioned (${soname:-none})" test "$soname" = libtailgate-client.so.1
mapfile -t syms < <(nm -D --defined-only "$LIB/libtailgate-client.so" | awk '$2 != "A" { sub(/@.*/, "", $3); print $3 }')
others=$(printf '%s\n' "${syms[@]}" | grep -v '^tgc_' | head -n 5 | tr '\n' ' ')
check "the .so exports ${#syms[@]} symbols, all tgc_*${others:+ (also: $others)}" \
	test "${#syms[@]}" -gt 10 -a -z "$others"
for s in tgc_open tgc_request tgc_close tgc_head_open tgc_run_head; do
	check "the .so exports $s" grep -qx "$s" < <(printf '%s\n' "${syms[@]}")
done

export PKG_CONFIG_SYSROOT_DIR=$DEST PKG_CONFIG_LIBDIR=$LIB/pkgconfig
cflags=$(pkg-config --cflags tailgate-client | xargs) libs=$(pkg-config --libs tailgate-client)
slibs=$(pkg-config --static --libs tailgate-client)
check "pkg-config knows tailgate-client $(pkg-config --modversion tailgate-client 2>/dev/null)" \
	test -n "$libs"
check "pkg-config's include dir is the installed one ($cflags)" test "$cflags" = "-I$DEST$PREFIX/include"

# The public headers are tgc.h and the types it uses, nothing of the tree's proto/ or util/.
inc=$DEST$PREFIX/include/tailgate
check "installed headers: tgc.h and types.h only ($(cd "$inc" 2>/dev/null && find . -type f | sort | tr '\n' ' '))" \
	test "$(cd "$inc" 2>/dev/null && find . -type f | sort | tr '\n' ' ')" = "./tgc.h ./types.h "
printf '#include <tailgate/tgc.h>\n' >"$TMP/alone.c"
# shellcheck disable=SC2086
gcc -std=c11 $cflags -M "$TMP/alone.c" 2>"$TMP/deps.err" | tr -d '\\' | tr ' ' '\n' | grep '\.h$' >"$TMP/deps"
mine=$(grep -c "^$inc/" "$TMP/deps")
others=$(grep -v -e "^$inc/" -e '^/usr/include/' -e '^/usr/lib/gcc/' "$TMP/deps" | head -n 3 | tr '\n' ' ')
check "tgc.h pulls in tailgate/tgc.h and tailgate/types.h and system headers, nothing else (${mine} of ours${others:+; also: $others})" \
	test "$mine" -eq 2 -a -z "$others" -a -s "$TMP/deps"
check "no header of the source tree is reachable: nothing under $PWD" \
	bash -c "! grep -q '^$PWD/' '$TMP/deps' && ! grep -q -e 'proto/proto.h' -e 'util/util.h' '$TMP/deps'"
# shellcheck disable=SC2086	# pkg-config's words are separate flags
check "tgc.h compiles alone as C11" \
	gcc -std=c11 -Wall -Wextra -pedantic -Werror $cflags -c "$TMP/alone.c" -o "$TMP/alone.o"
cp "$TMP/alone.c" "$TMP/alone.cpp"
check "tgc.h compiles alone as C++11" \
	g++ -std=c++11 -Wall -Wextra -pedantic -Werror $cflags -c "$TMP/alone.cpp" -o "$TMP/alone2.o"

model=$DEST$PREFIX/share/tailgate/models/fmnist-resnet/model.onnx
port=$((40000 + $$ % 20000))	# nothing listens there: tgc_open must fail cleanly
# shellcheck disable=SC2086
if gcc -std=c11 -Wall -Werror "${SANFLAGS[@]}" $cflags tests/install/device.c -o "$TMP/device-c" \
	$libs 2>"$TMP/cc.log"; then
	ok "C program built against the installed shared library"
	dep=$(readelf -d "$TMP/device-c" | grep -o 'libtailgate-client[^]]*')
	check "it needs the soname ($dep)" test "$dep" = libtailgate-client.so.1
	LD_LIBRARY_PATH=$LIB "$TMP/device-c" "$model" "$port" >"$TMP/c.out" 2>&1
	check "C program runs: $(tail -n 1 "$TMP/c.out")" grep -qx '3 passed, 0 failed' "$TMP/c.out"
else
	bad "C program against the installed library: $(head -n 5 "$TMP/cc.log")"
fi
# shellcheck disable=SC2086
if g++ -std=c++11 -Wall -Werror "${SANFLAGS[@]}" $cflags tests/install/device.cpp \
	-o "$TMP/device-cxx" $libs 2>"$TMP/cxx.log"; then
	ok "C++ program built against the installed shared library"
	LD_LIBRARY_PATH=$LIB "$TMP/device-cxx" "$model" >"$TMP/cxx.out" 2>&1
	check "C++ program runs: $(tail -n 1 "$TMP/cxx.out")" grep -qx '3 passed, 0 failed' "$TMP/cxx.out"
else
	bad "C++ program against the installed library: $(head -n 5 "$TMP/cxx.log")"
fi
# shellcheck disable=SC2086
if gcc -std=c11 "${SANFLAGS[@]}" $cflags tests/install/device.c -o "$TMP/device-static" \
	-Wl,-Bstatic -ltailgate-client -Wl,-Bdynamic ${slibs/-ltailgate-client/} 2>"$TMP/st.log"; then
	ok "C program linked statically through pkg-config --static"
	check "the static program does not need the .so" \
		test -z "$(readelf -d "$TMP/device-static" | grep libtailgate-client)"
	"$TMP/device-static" "$model" "$port" >"$TMP/st.out" 2>&1
	check "static program runs: $(tail -n 1 "$TMP/st.out")" grep -qx '3 passed, 0 failed' "$TMP/st.out"
else
	bad "static link: $(head -n 5 "$TMP/st.log")"
fi
check_done
