/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peak: this machine's multiply-accumulate peak, the denominator of the engine benchmark's
 * "fraction of peak" column. Each thread runs an unrolled loop of independent AVX-512 ops on
 * registers only (no memory traffic): VFMADD231PS for fp32 (16 lanes x 2 FLOPs) and VPDPBUSD
 * for int8 (64 u8*s8 products summed into 16 int32 lanes: 128 ops). 16 accumulators cover the
 * latency of two pipes; the best of several rounds is kept. Built with -march=native, alone
 * (scripts/bench_engine.sh), never linked into the engine.
 * Usage: peak [--threads T] [--seconds S]     prints one JSON object
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { PEAK_ACC = 16, PEAK_MAX_THREADS = 256, PEAK_ROUNDS = 3 };

struct peak_job {
	int kind;			/* 0 fp32 FMA, 1 int8 VPDPBUSD */
	uint64_t iters;
	double sink;			/* keeps the results alive */
	pthread_barrier_t *bar;
};

static double
peak_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define PEAK_REP16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) \
	X(13) X(14) X(15)

static double
peak_fp32(uint64_t iters)
{
#define DECL(i) __m512 a##i = _mm512_set1_ps(1.0f + (float)(i) * 1e-3f);
	PEAK_REP16(DECL)
#undef DECL
	const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);

	for (uint64_t n = 0; n < iters; n++) {
#define FMA(i) a##i = _mm512_fmadd_ps(a##i, b, c);
		PEAK_REP16(FMA)
#undef FMA
		__asm__ volatile("" ::: "memory");
	}
	__m512 s = a0;
#define SUM(i) s = _mm512_add_ps(s, a##i);
	PEAK_REP16(SUM)
#undef SUM
	return (double)_mm512_reduce_add_ps(s);
}

static double
peak_int8(uint64_t iters)
{
#define DECL(i) __m512i a##i = _mm512_set1_epi32(i);
	PEAK_REP16(DECL)
#undef DECL
	const __m512i u = _mm512_set1_epi8(3), w = _mm512_set1_epi8(-2);

	for (uint64_t n = 0; n < iters; n++) {
#define DP(i) a##i = _mm512_dpbusd_epi32(a##i, u, w);
		PEAK_REP16(DP)
#undef DP
		__asm__ volatile("" ::: "memory");
	}
	__m512i s = a0;
#define SUM(i) s = _mm512_add_epi32(s, a##i);
	PEAK_REP16(SUM)
#undef SUM
	return (double)_mm512_reduce_add_epi32(s);
}

static void *
peak_thread(void *arg)
{
	struct peak_job *j = arg;

	pthread_barrier_wait(j->bar);
	j->sink = j->kind == 0 ? peak_fp32(j->iters) : peak_int8(j->iters);
	return NULL;
}

/* Ops per second over nt threads running the same loop at once. */
static double
peak_run(int kind, int nt, uint64_t iters)
{
	pthread_t th[PEAK_MAX_THREADS];
	struct peak_job jobs[PEAK_MAX_THREADS];
	pthread_barrier_t bar;
	double t0, t1, sink = 0;

	pthread_barrier_init(&bar, NULL, (unsigned)nt + 1);
	for (int i = 0; i < nt; i++) {
		jobs[i] = (struct peak_job){ .kind = kind, .iters = iters, .bar = &bar };
		if (pthread_create(&th[i], NULL, peak_thread, &jobs[i]) != 0) {
			perror("peak: pthread_create");
			exit(1);
		}
	}
	pthread_barrier_wait(&bar);
	t0 = peak_now();
	for (int i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		sink += jobs[i].sink;
	}
	t1 = peak_now();
	pthread_barrier_destroy(&bar);
	if (sink == 12345.678)	/* never: the results must look used */
		fputc(' ', stderr);
	/* per iteration: 16 vector ops; fp32 16 lanes x 2 FLOPs, int8 64 products x 2 ops */
	return (double)nt * (double)iters * PEAK_ACC * (kind == 0 ? 32.0 : 128.0) / (t1 - t0);
}

/* Iterations that take about sec seconds on one thread, then the best of PEAK_ROUNDS. */
static double
peak_measure(int kind, int nt, double sec)
{
	uint64_t iters = 1u << 16;
	double best = 0, t;

	for (;;) {
		t = peak_now();
		peak_run(kind, 1, iters);
		t = peak_now() - t;
		if (t > 0.02)
			break;
		iters *= 4;
	}
	iters = (uint64_t)((double)iters * sec / t) + 1;
	for (int r = 0; r < PEAK_ROUNDS; r++) {
		double v = peak_run(kind, nt, iters);

		if (v > best)
			best = v;
	}
	return best;
}

int
main(int argc, char **argv)
{
	int nt = (int)sysconf(_SC_NPROCESSORS_ONLN);
	double sec = 0.15;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
			nt = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			sec = atof(argv[++i]);
		} else {
			fprintf(stderr, "Usage: peak [--threads T] [--seconds S]\n");
			return 2;
		}
	}
	if (nt < 1 || nt > PEAK_MAX_THREADS || !(sec > 0)) {
		fprintf(stderr, "peak: threads 1..%d, seconds > 0\n", PEAK_MAX_THREADS);
		return 2;
	}
	printf("{\"threads\": %d, \"fp32_gflops_1t\": %.1f, \"fp32_gflops\": %.1f, "
	       "\"int8_gops_1t\": %.1f, \"int8_gops\": %.1f}\n",
	       nt, peak_measure(0, 1, sec) / 1e9, peak_measure(0, nt, sec) / 1e9,
	       peak_measure(1, 1, sec) / 1e9, peak_measure(1, nt, sec) / 1e9);
	return 0;
}
