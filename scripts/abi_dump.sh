#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The ABI of libtailgate-client.so.1 as libabigail describes it (abidw), restricted to the
# types of the installed headers (client/tgc.h, include/tailgate/types.h), without build
# paths, gzip-compressed: what tests/abi_check.sh compares the built library against.
# A device links a library it did not build: a struct of the API that grows, a field that
# moves, a function that changes its arguments, breaks every program built against the
# older header while the soname says nothing changed (tgc_result and tgc_config are the
# caller's memory, written and read by the library).
# Usage: scripts/abi_dump.sh BUILD OUT.xml.gz       (abigail-tools: abidw)
#        scripts/abi_dump.sh BUILD --baseline       writes abi/libtailgate-client.so.1.xml.gz
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: abi_dump.sh BUILD OUT.xml.gz|--baseline}
out=${2:?usage: abi_dump.sh BUILD OUT.xml.gz|--baseline}
[ "$out" = --baseline ] && out=abi/libtailgate-client.so.1.xml.gz
so=$(readlink -f "$build/lib/libtailgate-client.so.1")
command -v abidw >/dev/null || { echo "abi_dump: abidw missing: apt-get install abigail-tools" >&2; exit 1; }
[ -f "$so" ] || { echo "abi_dump: $build/lib/libtailgate-client.so.1 missing: make first" >&2; exit 1; }
hd=$(mktemp -d /tmp/tg_abihd.XXXXXX)
trap 'rm -rf "$hd"' EXIT
cp client/tgc.h include/tailgate/types.h "$hd/"
abidw --no-corpus-path --no-comp-dir-path --no-show-locs --drop-private-types \
	--headers-dir "$hd" "$so" | gzip -n -9 >"$out"
