#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tailgate's dependencies, from Debian's archive (apt-get) and the npm registry.
#   scripts/deps.sh            install what is missing, idempotently: Debian packages with
#                              apt-get (one 'apt-get update' only when something is missing),
#                              and ONNX Runtime's CPU library from the npm package
#                              onnxruntime-node (the engine benchmark's peer). Needs root only
#                              when something is missing. `make deps`, `make test`, `make demo`.
#   scripts/deps.sh --no-npm   the same without the npm peer
#   scripts/deps.sh --check    install nothing: exit 1 with one line naming the Debian packages
#                              a build needs and lacks. Plain `make` and `make install` run this.
set -euo pipefail
cd "$(dirname "$0")/.."

# What compiling and linking tailgate needs.
BUILD_PKGS=(
	build-essential pkg-config
	libdpdk-dev libdnnl-dev liblz4-dev liburing-dev libsodium-dev libmicrohttpd-dev zlib1g-dev
	libjansson-dev libsystemd-dev
	libonnx-dev libprotobuf-c-dev protobuf-c-compiler
)
# What the tests, fuzzing, the demo, the benchmarks and the model scripts need on top.
RUN_PKGS=(
	clang llvm
	libonnx-testdata dataset-fashion-mnist
	python3-torch python3-numpy python3-protobuf protobuf-compiler
	python3-onnx	# onnx.checker on tailgate-model export-qdq's files (tests/qdq_onnx_check.sh)
	iproute2 ethtool gnuplot-nox
	stress-ng	# the suite must pass with `stress-ng --cpu 2` beside it (busy machine)
	prometheus	# for promtool: the tests lint a live /metrics (Debian has no promtool
			# alone; on a host running systemd the package also enables its server)
	dpkg-dev debhelper lintian	# make deb (dpkg-buildpackage, dh) and its check
	abigail-tools	# abidw/abidiff: the client library's ABI against abi/ (tests/abi_check.sh)
)

missing_of() {	# packages of "$@" not installed, on stdout
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			echo "$p"
	done
}

if [ "${1:-}" = "--check" ]; then
	mapfile -t missing < <(missing_of "${BUILD_PKGS[@]}")
	if [ ${#missing[@]} -gt 0 ]; then
		echo "missing build dependencies: apt-get install ${missing[*]}  (or, as root: make deps)" >&2
		exit 1
	fi
	mkdir -p build
	touch build/.build-deps-ok
	exit 0
fi

mapfile -t missing < <(missing_of "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}")
# The machine image may bring its own Node.js with npm; Debian's only when there is none.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: must run as root to install packages: ${missing[*]}" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "${1:-}" != "--no-npm" ]; then
	# The native library ships inside the package; its install script would download more.
	ORT_DIR=build/peer
	if [ ! -e "$ORT_DIR/node_modules/onnxruntime-node/package.json" ]; then
		mkdir -p "$ORT_DIR"
		if ! (cd "$ORT_DIR" && npm install --silent --no-audit --no-fund --ignore-scripts \
			onnxruntime-node@1.x >/dev/null); then
			echo "deps: warning: npm install onnxruntime-node failed; the engine benchmark will skip ONNX Runtime" >&2
		fi
	fi
fi
mkdir -p build
touch build/.deps-ok build/.build-deps-ok
