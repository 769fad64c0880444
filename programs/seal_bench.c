/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cost of sealing and checking one datagram (docs/protocol.md 12.5): CRC32C (flag CRC)
 * and keyed BLAKE2b-128 (flag MAC) over full 1472-byte REQUEST chunks and small 48-byte
 * ERRORs, per datagram: the thread's CPU time (CLOCK_THREAD_CPUTIME_ID: time the thread
 * spent descheduled on a shared machine is not counted) and the wall clock, the median of
 * several rounds.
 * Part of `make bench` (scripts/bench.sh), never of `make test`: speed is measured, not tested.
 * Usage: seal-bench [ROUNDS] (default 9)
 */
#include "proto/proto.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { N_DG = 64, ITERS = 20000, MAX_ROUNDS = 64 };

static uint8_t dgs[N_DG][PROTO_DEFAULT_DGRAM];
static uint8_t key[PROTO_KEY_LEN];
static volatile unsigned sink;

enum op { OP_CRC_SEAL, OP_CRC_CHECK, OP_MAC_SEAL, OP_MAC_CHECK, OP__COUNT };
static const char *const op_name[OP__COUNT] = {
	"CRC32C seal (proto_seal_crc)", "CRC32C check (proto_crc_ok)",
	"BLAKE2b-128 seal (proto_seal_mac)", "BLAKE2b-128 check (proto_mac_ok)",
};

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static uint64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One round: ITERS datagrams through op; CPU and wall ns per datagram. */
static void
round_of(enum op op, size_t len, double *cpu, double *wall)
{
	uint64_t t0 = tg_now_ns(), c0 = cpu_ns(), t1, c1;
	unsigned ok = 0;

	for (unsigned i = 0; i < ITERS; i++) {
		uint8_t *d = dgs[i % N_DG];

		switch (op) {
		case OP_CRC_SEAL:
			ok += proto_seal_crc(d, len) == 0;
			break;
		case OP_CRC_CHECK:
			ok += proto_crc_ok(d, len);
			break;
		case OP_MAC_SEAL:
			ok += proto_seal_mac(d, len, key) == 0;
			break;
		case OP_MAC_CHECK:
			ok += proto_mac_ok(d, len, key);
			break;
		default:
			break;
		}
	}
	c1 = cpu_ns();
	t1 = tg_now_ns();
	sink += ok;
	*cpu = (double)(c1 - c0) / ITERS;
	*wall = (double)(t1 - t0) / ITERS;
}

int
main(int argc, char **argv)
{
	static const size_t lens[] = { PROTO_DEFAULT_DGRAM, PROTO_ERROR_LEN };
	unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 9;
	double cpu[MAX_ROUNDS], wall[MAX_ROUNDS];

	if (rounds == 0 || rounds > MAX_ROUNDS) {
		fprintf(stderr, "usage: seal-bench [ROUNDS 1..%d]\n", MAX_ROUNDS);
		return 2;
	}
	for (unsigned i = 0; i < PROTO_KEY_LEN; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (unsigned d = 0; d < N_DG; d++) {
		memset(dgs[d], 0, sizeof(dgs[d]));
		dgs[d][0] = 0x54;
		dgs[d][1] = 0x47;
		for (unsigned i = PROTO_HDR_LEN; i < sizeof(dgs[d]); i++)
			dgs[d][i] = (uint8_t)(i * 31 + d);
	}
	printf("bytes  operation                           CPU ns/dgram  wall ns/dgram  CPU GB/s\n");
	for (unsigned l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
		for (unsigned op = 0; op < OP__COUNT; op++) {
			/* Checks run over datagrams sealed the same way: the work a receiver does. */
			if (op == OP_CRC_CHECK || op == OP_MAC_CHECK)
				for (unsigned d = 0; d < N_DG; d++)
					op == OP_CRC_CHECK ? proto_seal_crc(dgs[d], lens[l])
							   : proto_seal_mac(dgs[d], lens[l], key);
			round_of((enum op)op, lens[l], &cpu[0], &wall[0]);	/* warm-up */
			for (unsigned r = 0; r < rounds; r++)
				round_of((enum op)op, lens[l], &cpu[r], &wall[r]);
			qsort(cpu, rounds, sizeof(cpu[0]), cmp_double);
			qsort(wall, rounds, sizeof(wall[0]), cmp_double);
			printf("%5zu  %-36s %12.1f  %13.1f  %8.2f\n", lens[l], op_name[op],
			       cpu[rounds / 2], wall[rounds / 2], (double)lens[l] / cpu[rounds / 2]);
		}
	printf("(median of %u rounds of %d datagrams; CRC32C %s)\n", rounds, ITERS,
	       __builtin_cpu_supports("sse4.2") ? "with the SSE4.2 instruction" : "in software");
	return 0;
}
