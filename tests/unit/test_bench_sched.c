/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's arrivals and impairment (bench/mix.c): Poisson gaps with the asked mean and
 * an exponential's spread, reproducible per seed; impairment fates in the asked fractions.
 */
#include "bench/bench.h"
#include "tests/harness.h"

#include <errno.h>
#include <math.h>

static void
test_poisson_mean_rate_and_spread(void)
{
	enum { N = 200000 };
	struct bench_rng r;
	double sum = 0, sum_sq = 0, mean, sd;
	unsigned below_mean = 0;

	bench_rng_seed(&r, 7);
	for (int i = 0; i < N; i++) {
		double g = (double)bench_poisson_gap_ns(&r, 1000.0);	/* mean 1 ms */

		sum += g;
		sum_sq += g * g;
		below_mean += g < 1e6;
	}
	mean = sum / N;
	sd = sqrt(sum_sq / N - mean * mean);
	/* Standard error of the mean is 1/sqrt(N) = 0.22 %: 1 % is over 4 sigma. */
	TH_CHECK_MSG(fabs(mean - 1e6) < 1e4, "mean gap %.0f ns", mean);
	TH_CHECK_MSG(fabs(sd / mean - 1) < 0.02, "coefficient of variation %.3f", sd / mean);
	/* P(gap < mean) = 1 - 1/e = 63.2 % for an exponential. */
	TH_CHECK_MSG(fabs((double)below_mean / N - 0.632) < 0.01, "%u below the mean",
		     below_mean);
}

static void
test_poisson_is_reproducible_per_seed(void)
{
	struct bench_rng a, b, c;
	bool same = true, differ = false;

	bench_rng_seed(&a, 11);
	bench_rng_seed(&b, 11);
	bench_rng_seed(&c, 12);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = bench_poisson_gap_ns(&a, 50), y = bench_poisson_gap_ns(&b, 50);

		same = same && x == y;
		differ = differ || x != bench_poisson_gap_ns(&c, 50);
	}
	TH_CHECK(same);
	TH_CHECK(differ);
}

static void
test_rng_range_and_unit_bounds(void)
{
	struct bench_rng r;
	bool lo = false, hi = false;

	bench_rng_seed(&r, 3);
	for (int i = 0; i < 10000; i++) {
		uint64_t v = bench_rng_range(&r, 5, 9);
		double u = bench_rng_unit(&r);

		TH_CHECK(v >= 5 && v <= 9);
		TH_CHECK(u >= 0 && u < 1);
		lo = lo || v == 5;
		hi = hi || v == 9;
	}
	TH_CHECK(lo && hi);
	TH_CHECK(bench_rng_range(&r, 7, 7) == 7);
}

static void
test_impair_fractions(void)
{
	enum { N = 400000 };
	struct bench_impair im = { .drop = 0.10, .dup = 0.05, .reorder = 0.02 };
	unsigned n[4] = { 0 };
	struct bench_rng r;

	TH_CHECK(bench_impair_check(&im, NULL) == 0);
	bench_rng_seed(&r, 5);
	for (int i = 0; i < N; i++)
		n[bench_impair_fate(&im, &r)]++;
	/* Binomial 3 sigma at N = 400k is under 0.15 points for these fractions. */
	TH_CHECK_MSG(fabs((double)n[BENCH_FATE_DROP] / N - 0.10) < 0.002, "drop %u", n[BENCH_FATE_DROP]);
	TH_CHECK_MSG(fabs((double)n[BENCH_FATE_DUP] / N - 0.05) < 0.002, "dup %u", n[BENCH_FATE_DUP]);
	TH_CHECK_MSG(fabs((double)n[BENCH_FATE_REORDER] / N - 0.02) < 0.002, "reorder %u",
		     n[BENCH_FATE_REORDER]);
}

/* No impairment draws nothing: an unimpaired run's items do not depend on the option. */
static void
test_impair_off_draws_nothing(void)
{
	struct bench_impair off = { 0 };
	struct bench_rng a, b;

	bench_rng_seed(&a, 9);
	bench_rng_seed(&b, 9);
	for (int i = 0; i < 100; i++)
		TH_CHECK(bench_impair_fate(&off, &a) == BENCH_FATE_SEND);
	TH_CHECK(bench_rng_next(&a) == bench_rng_next(&b));
}

static void
test_impair_check_refuses_bad_fractions(void)
{
	struct tg_err err = { 0 };
	struct bench_impair bad[] = {
		{ .drop = 1.0 }, { .dup = -0.1 }, { .reorder = NAN },
		{ .drop = 0.6, .dup = 0.3, .reorder = 0.2 },
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		TH_CHECK(bench_impair_check(&bad[i], &err) == -EINVAL);
		TH_CHECK(err.msg[0] != 0);
	}
}

int
main(void)
{
	TH_RUN(test_poisson_mean_rate_and_spread);
	TH_RUN(test_poisson_is_reproducible_per_seed);
	TH_RUN(test_rng_range_and_unit_bounds);
	TH_RUN(test_impair_fractions);
	TH_RUN(test_impair_off_draws_nothing);
	TH_RUN(test_impair_check_refuses_bad_fractions);
	TH_DONE();
}
