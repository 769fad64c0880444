#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make bench`: every benchmark of the project, one after the other; each prints its own table
# (and writes its section of docs/BENCHMARKS.md). Speed is measured here, never tested.
# Usage: scripts/bench.sh [BUILD]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}

scripts/bench_engine.sh "$BUILD"	# tailgate vs ONNX Runtime vs PyTorch on the same tails
scripts/bench_ingest.sh "$BUILD"	# ingest: DPDK dataplane vs kernel recvmmsg, CPU per chunk
scripts/bench_gateway.sh "$BUILD"	# the gateway on the shipped model: scheduling modes, saturation vs engine
scripts/bench_int8.sh "$BUILD"		# the gateway on the shipped model: int8 vs fp32 tails, side by side
scripts/bench_e2e.sh "$BUILD"		# tailgate-bench end to end: saturation, p50/p99 at 10/50/80%
# the request path: end to end over engine alone, CPU per request outside oneDNN by thread
TG_PATH_DOC=docs/BENCHMARKS.md scripts/bench_path.sh "$BUILD" "$BUILD/tailgate"
scripts/bench_idle.sh "$BUILD"		# an idle gateway's CPU per thread; latency at 10 req/s
"$BUILD/bench/seal-bench"		# CRC32C and BLAKE2b-128 per datagram (docs/protocol.md 12.5)
