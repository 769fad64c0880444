# SPDX-License-Identifier: Apache-2.0
# tailgate build. `make` builds everything under build/, `make test` runs every test,
# `make bench` the benchmarks, `make demo` the demo; SAN=1 builds with ASan+UBSan (build/san).
# Plain `make` needs no root: it only checks that the build dependencies are there (one line
# naming the Debian packages otherwise). `make deps` installs everything; `make test`,
# `make demo` and the benchmarks run it first (scripts/deps.sh, idempotent).

BUILD ?= build
CC ?= gcc
ifeq ($(origin CC),default)
CC := gcc
endif

ifeq ($(SAN),1)
BUILD := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
endif

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -fno-strict-aliasing \
	-I. -Iinclude -I$(BUILD)/gen -pthread
LDFLAGS_BASE := -pthread


CFLAGS_ALL := $(CFLAGS_BASE) $(SANFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(LDFLAGS_BASE) $(SANFLAGS) $(LDFLAGS)
LDLIBS_ALL := -ldnnl -lgomp -lmicrohttpd -ljansson -lprotobuf-c -llz4 -luring -lsodium -lz -lm $(LDLIBS)

# Modules in link order (a module may use those after it). One folder, one library.
MODULE_ORDER := gateway advisor bench client scheduler kernels dataplane proto util
MODULES := $(foreach m,$(MODULE_ORDER),$(if $(wildcard $(m)/*.c),$(m)))
LIBS := $(foreach m,$(MODULES),$(BUILD)/lib/libtg_$(m).a)

ONNX_PROTO := /usr/include/onnx/onnx.proto
GEN_ONNX := $(BUILD)/gen/onnx/onnx.pb-c.c

# Every program's main() is in programs/ (one file per program, named after it); the
# modules are libraries.
objs_of = $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard $(1)/*.c))

# DPDK's flags reach only the dataplane's objects and the programs that link it (deferred:
# pkg-config may only exist once deps ran). Unit tests build ports on rings: net_ring.
DPDK_CFLAGS = $(shell pkg-config --cflags libdpdk)
DPDK_LIBS = $(shell pkg-config --libs libdpdk) -lrte_net_ring
DP_PROGS := $(BUILD)/tests/test_dataplane_% $(BUILD)/tests/dp_% $(BUILD)/tailgate
$(call objs_of,dataplane) $(DP_PROGS): private CFLAGS_ALL += $(DPDK_CFLAGS)
$(DP_PROGS): private LDLIBS_ALL += $(DPDK_LIBS)
# The attacker's tool signs datagrams with libsodium's keyed BLAKE2b (tests/chaos_attacks.sh).
$(BUILD)/tests/tg_attack: private LDLIBS_ALL += -lsodium

# The release (tailgate --version, tailgate_build_info, tailgate-client.pc, the Debian
# package) and the client library's ABI version: libtailgate-client.so.$(TGC_SOVERSION).
TG_VERSION := 0.1.0
TGC_SOVERSION := 1
TGC_SONAME := libtailgate-client.so.$(TGC_SOVERSION)
TGC_SOFILE := $(TGC_SONAME).0.0
TG_GIT := $(or $(shell git describe --always --dirty --abbrev=12 2>/dev/null),unknown)
TG_VERSION_H := $(BUILD)/gen/tg_version.h

# libtailgate-client: the device library alone, with the modules it uses, static and shared.
TGC_MODULES := client kernels proto util
TGC_LIBS := $(BUILD)/lib/libtailgate-client.a $(BUILD)/lib/libtailgate-client.so
TOOLS := $(BUILD)/tailgate-model $(BUILD)/tailgate $(BUILD)/tailgate-bench \
	$(BUILD)/tgc-example $(TGC_LIBS)
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
TEST_PROGS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/*.c))
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_REPLAY := $(patsubst %,$(BUILD)/fuzz-replay/%,$(FUZZ_TARGETS))

DEPS_STAMP := build/.deps-ok
BUILD_DEPS := build/.build-deps-ok

.PHONY: all deps test chaos bench bench-engine demo fuzz clean fixtures model install deb FORCE
.DEFAULT_GOAL := all

all: $(BUILD_DEPS) $(LIBS) $(TOOLS) $(UNIT_TESTS) $(TEST_PROGS) $(FUZZ_REPLAY) \
	$(BUILD)/bench/kudp-recv $(BUILD)/bench/seal-bench $(BUILD)/bench/codec-table \
	$(BUILD)/bench/sched-bench

deps:
	@scripts/deps.sh

$(DEPS_STAMP): scripts/deps.sh
	@scripts/deps.sh

$(BUILD_DEPS): scripts/deps.sh
	@scripts/deps.sh --check

# Goals that run things install what they need before anything is built.
ifneq ($(filter test demo bench bench-engine chaos fuzz,$(MAKECMDGOALS)),)
$(BUILD_DEPS): $(DEPS_STAMP)
endif

# protobuf-c code generated from Debian's onnx.proto at build time.
# Debian's onnx.proto arrives with make deps: with -j, make must not look for it first.
$(ONNX_PROTO): | $(BUILD_DEPS)
$(GEN_ONNX): $(ONNX_PROTO) | $(BUILD_DEPS)
	@mkdir -p $(BUILD)/gen/onnx
	protoc-c --c_out=$(BUILD)/gen/onnx -I$(dir $(ONNX_PROTO)) $(ONNX_PROTO)

$(BUILD)/obj/gen/onnx.pb-c.o: $(GEN_ONNX)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror -Wextra,$(CFLAGS_ALL)) -w -c $< -o $@

$(BUILD)/obj/%.o: %.c | $(BUILD_DEPS) $(TG_VERSION_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# The version the programs and /metrics report; rewritten only when it changes, so only
# what includes it is rebuilt.
$(TG_VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@printf '#define TG_VERSION "%s"\n#define TG_GIT "%s"\n' '$(TG_VERSION)' '$(TG_GIT)' >$@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi
FORCE:

# kernels include the generated header.
$(call objs_of,kernels): $(GEN_ONNX)

define module_lib
$(BUILD)/lib/libtg_$(1).a: $(call objs_of,$(1)) $(if $(filter kernels,$(1)),$(BUILD)/obj/gen/onnx.pb-c.o)
	@mkdir -p $$(dir $$@)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_lib,$(m))))

# The .so is linked from position-independent objects of its own (build/pic).
TGC_PIC := $(patsubst %.c,$(BUILD)/pic/%.o,$(foreach m,$(TGC_MODULES),$(wildcard $(m)/*.c))) \
	$(BUILD)/pic/gen/onnx.pb-c.o
$(BUILD)/lib/libtailgate-client.a: $(patsubst $(BUILD)/pic/%,$(BUILD)/obj/%,$(TGC_PIC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
# Versioned soname; client/tgc.map exports the tgc_* API only (the engine, wire format and
# protobuf-c code inside stay private, so they can change without an ABI bump).
$(BUILD)/lib/$(TGC_SOFILE): $(TGC_PIC) client/tgc.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(TGC_SONAME) -Wl,--version-script,client/tgc.map \
		-Wl,--no-undefined -Wl,--as-needed -o $@ $(TGC_PIC) $(LDFLAGS_ALL) \
		$(filter-out -lmicrohttpd -ljansson,$(LDLIBS_ALL))
$(BUILD)/lib/libtailgate-client.so: $(BUILD)/lib/$(TGC_SOFILE)
	ln -sf $(TGC_SOFILE) $(BUILD)/lib/$(TGC_SONAME)
	ln -sf $(TGC_SONAME) $@
$(BUILD)/pic/%.o: %.c | $(BUILD_DEPS) $(TG_VERSION_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -MMD -MP -c $< -o $@
$(BUILD)/pic/gen/onnx.pb-c.o: $(GEN_ONNX)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Werror -Wextra,$(CFLAGS_ALL)) -fPIC -w -c $< -o $@
$(filter $(BUILD)/pic/kernels/%,$(TGC_PIC)): $(GEN_ONNX)

# Programs that print the version are relinked when it changes (no -MMD on these rules).
$(BUILD)/tgc-example: programs/tgc_example.c $(LIBS) $(TG_VERSION_H)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

$(BUILD)/tailgate-model: programs/tailgate_model.c $(LIBS) $(TG_VERSION_H)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

# The load tester (bench/, README "Load testing with tailgate-bench").
$(BUILD)/tailgate-bench: programs/tailgate_bench.c $(LIBS) $(TG_VERSION_H)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

$(BUILD)/tailgate: programs/tailgate.c $(LIBS)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL) -lsystemd

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/*.h) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

# The kernel recvmmsg receiver make bench compares the dataplane's ingest with.
$(BUILD)/bench/kudp-recv: programs/kudp_recv.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

# The cost of the CRC and MAC seals per datagram (make bench, docs/BENCHMARKS.md).
$(BUILD)/bench/seal-bench: programs/seal_bench.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

# Bytes on the wire against accuracy per split and wire dtype (the model cards' codec table).
$(BUILD)/bench/codec-table: programs/codec_table.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

# The scheduler alone, fed in-process: whole tails against segments (docs/BENCHMARKS.md,
# "Confluence batching").
$(BUILD)/bench/sched-bench: programs/sched_bench.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

# Every fuzz target is also built with a replay driver, so make test replays its corpus
# (kept crashes included) without clang's libFuzzer.
$(BUILD)/fuzz-replay/%: fuzz/fuzz_%.c fuzz/replay.c $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< fuzz/replay.c $(LIBS) $(LDFLAGS_ALL) $(LDLIBS_ALL)

# libFuzzer builds (clang): make fuzz; run e.g. build/fuzz/npy -max_total_time=60 fuzz/corpus/npy
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -O1 -g -I. -Iinclude -I$(BUILD)/fuzz/gen -pthread \
	-fsanitize=fuzzer-no-link,address,undefined
fuzz: $(patsubst %,$(BUILD)/fuzz/%,$(FUZZ_TARGETS))
$(BUILD)/fuzz/%: fuzz/fuzz_%.c $(GEN_ONNX) $(foreach m,$(MODULES),$(wildcard $(m)/*.[ch])) | $(BUILD_DEPS)
	@mkdir -p $(dir $@) $(BUILD)/fuzz/gen
	cp -r $(BUILD)/gen/onnx $(BUILD)/fuzz/gen/
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< \
		$(foreach m,$(filter-out dataplane gateway,$(MODULES)),$(wildcard $(m)/*.c)) \
		$(if $(filter config,$*),gateway/config.c) \
		$(if $(filter l2l4,$*),dataplane/parse.c) \
		$(if $(filter kernels,$(MODULES)),$(GEN_ONNX)) $(LDLIBS_ALL)

test: all
	@scripts/run_tests.sh $(BUILD)

# The chaos tests (tests/chaos_*.sh) in their long versions; make test runs the short ones.
chaos: all
	@CHAOS_LONG=1 scripts/run_tests.sh $(BUILD) chaos_

bench: all
	@scripts/bench.sh $(BUILD)

# The README's first command: the gateway on a veth pair, a 10 s tailgate-bench run, the report.
# It runs make deps and make itself, into build/demo/setup.log: the terminal shows the report.
demo:
	+@MAKE="$(MAKE)" scripts/demo.sh $(BUILD)

# tailgate's tails side by side with ONNX Runtime and PyTorch (docs/BENCHMARKS.md).
bench-engine: all
	@scripts/bench_engine.sh $(BUILD)

clean:
	rm -rf build/obj build/pic build/lib build/tests build/gen build/fuzz build/fuzz-replay \
		build/san build/tailgate-model build/tailgate build/tailgate-bench build/bench-cache \
		build/tgc-example build/bench/kudp-recv

# make install PREFIX=/usr/local DESTDIR=: the daemon and tools, the client library (static,
# shared with its soname links), its headers under include/tailgate/ and tailgate-client.pc.
# Only copies what `make` built; never builds as root what a user did not.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DATADIR ?= $(PREFIX)/share
# The client's own dependencies, for a static link (pkg-config --static).
TGC_LIBS_PRIVATE := -ldnnl -lgomp -lprotobuf-c -llz4 -luring -lsodium -lz -lm -pthread
# The public headers: tgc.h and the types it uses (nothing of proto/ or util/ is installed).
TGC_HEADERS := client/tgc.h include/tailgate/types.h

install: $(BUILD_DEPS) $(TOOLS) client/tailgate-client.pc.in
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(INCLUDEDIR)/tailgate $(DESTDIR)$(DATADIR)/tailgate/models
	install -m 755 $(filter-out $(TGC_LIBS),$(TOOLS)) $(DESTDIR)$(BINDIR)/
	install -m 644 $(BUILD)/lib/libtailgate-client.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(BUILD)/lib/$(TGC_SOFILE) $(DESTDIR)$(LIBDIR)/
	ln -sf $(TGC_SOFILE) $(DESTDIR)$(LIBDIR)/$(TGC_SONAME)
	ln -sf $(TGC_SONAME) $(DESTDIR)$(LIBDIR)/libtailgate-client.so
	install -m 644 $(TGC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/tailgate/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(TG_VERSION)|; s|@LIBS_PRIVATE@|$(TGC_LIBS_PRIVATE)|' \
		client/tailgate-client.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/tailgate-client.pc
	cp -r models/fmnist-resnet $(DESTDIR)$(DATADIR)/tailgate/models/

# Debian packages of everything above plus the systemd unit, logrotate file and default
# configuration (dist/): dpkg-buildpackage (debian/) into build/deb/: tailgate,
# libtailgate-client1 and libtailgate-client-dev.
deb: $(BUILD_DEPS) $(TOOLS)
	@scripts/make_deb.sh $(BUILD) $(TG_VERSION)

-include $(shell find $(BUILD)/obj $(BUILD)/pic -name '*.d' 2>/dev/null)
