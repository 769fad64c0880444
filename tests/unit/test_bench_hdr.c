/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HDR histogram (bench/hdr.c): percentiles against a sorted-array reference, exact
 * extremes and mean, clamping, merging, and the .hgrm text HdrHistogram's tools read.
 */
#include "bench/bench.h"
#include "tests/harness.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static uint64_t
xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
test_hdr_rejects_bad_bounds(void)
{
	struct bench_hdr h;

	TH_CHECK(bench_hdr_init(&h, 0, 1000, 3) == -EINVAL);
	TH_CHECK(bench_hdr_init(&h, 1, 1, 3) == -EINVAL);
	TH_CHECK(bench_hdr_init(&h, 1, 1000, 0) == -EINVAL);
	TH_CHECK(bench_hdr_init(&h, 1, 1000, 6) == -EINVAL);
	bench_hdr_fini(&h);	/* zeroed by the failed init: harmless */
	bench_hdr_fini(NULL);
}

/* Below 2048 (3 digits) every integer has its own slot: percentiles are exact. */
static void
test_hdr_small_values_are_exact(void)
{
	struct bench_hdr h;

	TH_CHECK(bench_hdr_init(&h, 1, 3600ll * 1000000, 3) == 0);
	for (int64_t v = 1; v <= 1000; v++)
		bench_hdr_record(&h, v);
	TH_CHECK(h.total == 1000);
	TH_CHECK(bench_hdr_value_at(&h, 50) == 500);
	TH_CHECK(bench_hdr_value_at(&h, 99) == 990);
	TH_CHECK(bench_hdr_value_at(&h, 100) == 1000);
	TH_CHECK(bench_hdr_value_at(&h, 0) == 1);
	TH_CHECK(h.min == 1 && h.max == 1000);
	TH_CHECK(fabs(bench_hdr_mean(&h) - 500.5) < 1e-9);
	bench_hdr_fini(&h);
}

/* Log-uniform values from 1 us to 10 minutes: each percentile is the reference's bucket. */
static void
test_hdr_percentiles_match_sorted_reference(void)
{
	enum { N = 200000 };
	static const double pcts[] = { 0, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100 };
	int64_t *ref = malloc(N * sizeof(*ref));
	struct bench_hdr h;
	uint64_t s = 0x1234567;

	TH_CHECK(ref != NULL);
	TH_CHECK(bench_hdr_init(&h, 1, 3600ll * 1000000, 3) == 0);
	if (ref == NULL || h.counts == NULL)
		return;
	for (int i = 0; i < N; i++) {
		double u = (double)(xs(&s) >> 11) * 0x1.0p-53;

		ref[i] = (int64_t)exp(u * log(600e6));	/* 1 .. 6e8 us */
		bench_hdr_record(&h, ref[i]);
	}
	qsort(ref, N, sizeof(*ref), cmp_i64);
	TH_CHECK(h.min == ref[0] && h.max == ref[N - 1]);
	for (unsigned k = 0; k < sizeof(pcts) / sizeof(pcts[0]); k++) {
		int64_t want = (int64_t)(pcts[k] / 100.0 * N + 0.5), got, r;

		want = want < 1 ? 1 : want;
		r = ref[want - 1];
		got = bench_hdr_value_at(&h, pcts[k]);
		TH_CHECK_MSG(bench_hdr_equivalent(&h, got, r) && got >= r,
			     "p%g: got %lld, reference %lld", pcts[k], (long long)got, (long long)r);
		TH_CHECK_MSG((double)(got - r) <= (double)r * 1e-3 + 1,
			     "p%g: %lld vs %lld: more than 3 digits apart", pcts[k],
			     (long long)got, (long long)r);
		TH_CHECK_MSG(got <= h.max && got >= h.min, "p%g: %lld outside [%lld, %lld]",
			     pcts[k], (long long)got, (long long)h.min, (long long)h.max);
	}
	TH_CHECK(bench_hdr_value_at(&h, 100) == h.max);
	bench_hdr_fini(&h);
	free(ref);
}

static void
test_hdr_clamps_and_counts_over_highest(void)
{
	struct bench_hdr h;

	TH_CHECK(bench_hdr_init(&h, 1, 1000000, 3) == 0);
	bench_hdr_record(&h, 5000000);
	bench_hdr_record(&h, 0);
	TH_CHECK(h.clamped == 1 && h.total == 2);
	TH_CHECK(h.max == 1000000 && h.min == 1);
	TH_CHECK(bench_hdr_value_at(&h, 100) == 1000000);
	bench_hdr_reset(&h);
	TH_CHECK(h.total == 0 && bench_hdr_value_at(&h, 50) == 0);
	bench_hdr_fini(&h);
}

static void
test_hdr_add_merges_counts(void)
{
	struct bench_hdr a, b, c;

	TH_CHECK(bench_hdr_init(&a, 1, 1000000, 3) == 0);
	TH_CHECK(bench_hdr_init(&b, 1, 1000000, 3) == 0);
	TH_CHECK(bench_hdr_init(&c, 1, 100000, 3) == 0);
	for (int v = 1; v <= 100; v++)
		bench_hdr_record(&a, v);
	for (int v = 101; v <= 200; v++)
		bench_hdr_record(&b, v);
	TH_CHECK(bench_hdr_add(&a, &b) == 0);
	TH_CHECK(a.total == 200 && a.min == 1 && a.max == 200);
	TH_CHECK(bench_hdr_value_at(&a, 50) == 100);
	TH_CHECK(bench_hdr_add(&a, &c) == -EINVAL);
	bench_hdr_fini(&a);
	bench_hdr_fini(&b);
	bench_hdr_fini(&c);
}

/* .hgrm: header, lines "value percentile count 1/(1-p)" non-decreasing, a 100% line with
 * every value counted, then the footer with the same total. */
static void
test_hdr_hgrm_format(void)
{
	struct bench_hdr h;
	FILE *f = tmpfile();
	char line[256];
	double last_v = -1, last_p = -1, v, p, inv;
	long long cnt, total = -1, last_cnt = -1;
	int lines = 0, saw_header = 0, saw_full = 0;
	uint64_t s = 99;

	TH_CHECK(f != NULL && bench_hdr_init(&h, 1, 3600ll * 1000000, 3) == 0);
	if (f == NULL || h.counts == NULL)
		return;
	for (int i = 0; i < 10000; i++)
		bench_hdr_record(&h, 1000 + (int64_t)(xs(&s) % 100000));
	TH_CHECK(bench_hdr_write_hgrm(&h, f, 1000.0, 5) == 0);
	rewind(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, " Value Percentile TotalCount %*s") == 0 &&
		    strstr(line, "1/(1-Percentile)") != NULL) {
			saw_header = 1;
			continue;
		}
		if (sscanf(line, "#[Max = %lf, Total count = %lld]", &v, &total) == 2) {
			TH_CHECK(fabs(v - (double)h.max / 1000.0) < 1e-3 && last_v <= v + 1e-9);
			continue;
		}
		if (sscanf(line, "%lf %lf %lld %lf", &v, &p, &cnt, &inv) == 4) {
			TH_CHECK(v >= last_v && p > last_p && cnt >= last_cnt);
			TH_CHECK(fabs(inv - 1.0 / (1.0 - p)) < 0.01 * inv + 0.01);
			last_v = v, last_p = p, last_cnt = cnt;
			lines++;
		} else if (sscanf(line, "%lf %lf %lld", &v, &p, &cnt) == 3) {
			TH_CHECK(p == 1.0 && cnt == 10000);
			TH_CHECK(fabs(v - (double)bench_hdr_value_at(&h, 100) / 1000.0) < 1e-3);
			saw_full = 1;
		}
	}
	TH_CHECK(saw_header && saw_full);
	TH_CHECK_MSG(lines > 50, "%d percentile lines", lines);
	TH_CHECK(total == 10000);
	fclose(f);
	bench_hdr_fini(&h);
}

int
main(void)
{
	TH_RUN(test_hdr_rejects_bad_bounds);
	TH_RUN(test_hdr_small_values_are_exact);
	TH_RUN(test_hdr_percentiles_match_sorted_reference);
	TH_RUN(test_hdr_clamps_and_counts_over_highest);
	TH_RUN(test_hdr_add_merges_counts);
	TH_RUN(test_hdr_hgrm_format);
	TH_DONE();
}
