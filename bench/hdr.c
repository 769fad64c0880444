/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HDR latency histogram: HdrHistogram's layout (buckets per power of two, each split into
 * 2 x 10^sigfigs-ish linear sub-buckets), so percentiles keep a fixed relative precision
 * over a huge range (1 us .. an hour in 3 digits is ~45k counters, 360 KB) and its .hgrm text
 * format reads the same in HdrHistogram's plotters. Recording is two shifts and an add.
 */
#include "bench/bench.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
bench_hdr_bucket_index(const struct bench_hdr *h, int64_t v)
{
	int pow2ceiling = 64 - __builtin_clzll((uint64_t)(v | h->sub_bucket_mask));

	return pow2ceiling - h->unit_magnitude - (h->sub_bucket_half_count_magnitude + 1);
}

static int32_t
bench_hdr_sub_bucket_index(const struct bench_hdr *h, int64_t v, int bucket)
{
	return (int32_t)(v >> (bucket + h->unit_magnitude));
}

static int32_t
bench_hdr_counts_index(const struct bench_hdr *h, int64_t v)
{
	int b = bench_hdr_bucket_index(h, v);
	int32_t sb = bench_hdr_sub_bucket_index(h, v, b);

	return ((b + 1) << h->sub_bucket_half_count_magnitude) + (sb - h->sub_bucket_half_count);
}

/* The lowest value recorded in counts slot i. */
static int64_t
bench_hdr_value_at_index(const struct bench_hdr *h, int32_t i)
{
	int32_t b = (i >> h->sub_bucket_half_count_magnitude) - 1;
	int32_t sb = (i & (h->sub_bucket_half_count - 1)) + h->sub_bucket_half_count;

	if (b < 0) {
		sb -= h->sub_bucket_half_count;
		b = 0;
	}
	return (int64_t)sb << (b + h->unit_magnitude);
}

static int64_t
bench_hdr_range_size(const struct bench_hdr *h, int64_t v)
{
	int b = bench_hdr_bucket_index(h, v);
	int32_t sb = bench_hdr_sub_bucket_index(h, v, b);

	return (int64_t)1 << (h->unit_magnitude + (sb >= h->sub_bucket_count ? b + 1 : b));
}

static int64_t
bench_hdr_lowest_equivalent(const struct bench_hdr *h, int64_t v)
{
	int b = bench_hdr_bucket_index(h, v);
	int32_t sb = bench_hdr_sub_bucket_index(h, v, b);

	return (int64_t)sb << (b + h->unit_magnitude);
}

static int64_t
bench_hdr_highest_equivalent(const struct bench_hdr *h, int64_t v)
{
	return bench_hdr_lowest_equivalent(h, v) + bench_hdr_range_size(h, v) - 1;
}

bool
bench_hdr_equivalent(const struct bench_hdr *h, int64_t a, int64_t b)
{
	return bench_hdr_lowest_equivalent(h, a) == bench_hdr_lowest_equivalent(h, b);
}

int
bench_hdr_init(struct bench_hdr *h, int64_t lowest, int64_t highest, int sigfigs)
{
	int64_t single_unit, untrackable;
	int mag;

	memset(h, 0, sizeof(*h));
	if (lowest < 1 || sigfigs < 1 || sigfigs > 5 || highest < 2 * lowest)
		return -EINVAL;
	single_unit = 2;
	for (int i = 0; i < sigfigs; i++)
		single_unit *= 10;
	mag = (int)ceil(log2((double)single_unit));
	h->lowest = lowest;
	h->highest = highest;
	h->sigfigs = sigfigs;
	h->sub_bucket_half_count_magnitude = (mag > 1 ? mag : 1) - 1;
	h->unit_magnitude = (int)floor(log2((double)lowest));
	h->sub_bucket_count = (int32_t)1 << (h->sub_bucket_half_count_magnitude + 1);
	h->sub_bucket_half_count = h->sub_bucket_count / 2;
	h->sub_bucket_mask = ((int64_t)h->sub_bucket_count - 1) << h->unit_magnitude;
	/* Buckets until one covers highest: each doubles the range. */
	untrackable = (int64_t)h->sub_bucket_count << h->unit_magnitude;
	h->bucket_count = 1;
	while (untrackable <= highest) {
		if (untrackable > INT64_MAX / 2) {
			h->bucket_count++;
			break;
		}
		untrackable <<= 1;
		h->bucket_count++;
	}
	h->counts_len = (h->bucket_count + 1) * h->sub_bucket_half_count;
	h->counts = calloc((size_t)h->counts_len, sizeof(*h->counts));
	if (h->counts == NULL)
		return -ENOMEM;
	bench_hdr_reset(h);
	return 0;
}

void
bench_hdr_fini(struct bench_hdr *h)
{
	if (h == NULL)
		return;
	free(h->counts);
	h->counts = NULL;
}

void
bench_hdr_reset(struct bench_hdr *h)
{
	memset(h->counts, 0, (size_t)h->counts_len * sizeof(*h->counts));
	h->total = 0;
	h->clamped = 0;
	h->min = INT64_MAX;
	h->max = 0;
	h->sum = 0;
	h->sum_sq = 0;
}

void
bench_hdr_record_n(struct bench_hdr *h, int64_t v, int64_t count)
{
	if (count <= 0)
		return;
	if (v < h->lowest)
		v = h->lowest;
	if (v > h->highest) {
		v = h->highest;
		h->clamped += count;
	}
	h->counts[bench_hdr_counts_index(h, v)] += count;
	h->total += count;
	h->min = v < h->min ? v : h->min;
	h->max = v > h->max ? v : h->max;
	h->sum += (double)v * (double)count;
	h->sum_sq += (double)v * (double)v * (double)count;
}

int
bench_hdr_add(struct bench_hdr *dst, const struct bench_hdr *src)
{
	if (dst->lowest != src->lowest || dst->highest != src->highest ||
	    dst->sigfigs != src->sigfigs)
		return -EINVAL;
	for (int32_t i = 0; i < src->counts_len; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->clamped += src->clamped;
	if (src->total > 0) {
		dst->min = src->min < dst->min ? src->min : dst->min;
		dst->max = src->max > dst->max ? src->max : dst->max;
	}
	dst->sum += src->sum;
	dst->sum_sq += src->sum_sq;
	return 0;
}

/*
 * A bucket's highest equivalent value can lie past the largest value recorded in it (and
 * its lowest below the smallest): reports that printed p99.9 292.095 above a max of 291.971
 * confuse. Every value reported stays within the exact extremes.
 */
static int64_t
bench_hdr_clamp_seen(const struct bench_hdr *h, int64_t v)
{
	return v > h->max ? h->max : v < h->min ? h->min : v;
}

int64_t
bench_hdr_value_at(const struct bench_hdr *h, double p)
{
	int64_t want, seen = 0;

	if (h->total == 0)
		return 0;
	p = p < 0 ? 0 : p > 100 ? 100 : p;
	want = (int64_t)(p / 100.0 * (double)h->total + 0.5);
	want = want > 1 ? want : 1;
	for (int32_t i = 0; i < h->counts_len; i++) {
		seen += h->counts[i];
		if (seen >= want)
			return bench_hdr_clamp_seen(h, bench_hdr_highest_equivalent(h,
							bench_hdr_value_at_index(h, i)));
	}
	return 0;
}

double
bench_hdr_mean(const struct bench_hdr *h)
{
	return h->total ? h->sum / (double)h->total : 0;
}

double
bench_hdr_stddev(const struct bench_hdr *h)
{
	double m = bench_hdr_mean(h), v;

	if (h->total == 0)
		return 0;
	v = h->sum_sq / (double)h->total - m * m;
	return v > 0 ? sqrt(v) : 0;
}

/* Next reporting level after pct: HdrHistogram's percentile iterator halves the distance to
 * 100 % every ticks_per_half lines, so the tail gets as many lines as the body. */
static double
bench_hdr_next_level(double pct, int ticks_per_half)
{
	int64_t half = (int64_t)1 << ((int)(log2(100.0 / (100.0 - pct))) + 1);

	return pct + 100.0 / ((double)ticks_per_half * (double)half);
}

int
bench_hdr_write_hgrm(const struct bench_hdr *h, FILE *f, double scale, int ticks_per_half)
{
	int64_t cum = 0, last_v = 0;
	double level = 0;

	if (ticks_per_half < 1)
		ticks_per_half = 5;
	fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
		"1/(1-Percentile)");
	for (int32_t i = 0; i < h->counts_len && cum < h->total; i++) {
		double cur;

		if (h->counts[i] == 0)
			continue;
		cum += h->counts[i];
		cur = 100.0 * (double)cum / (double)h->total;
		last_v = bench_hdr_clamp_seen(h, bench_hdr_highest_equivalent(h,
							bench_hdr_value_at_index(h, i)));
		while (level <= cur) {
			fprintf(f, "%12.3f %2.12f %10lld %14.2f\n", (double)last_v / scale,
				level / 100.0, (long long)cum, 1.0 / (1.0 - level / 100.0));
			level = bench_hdr_next_level(level, ticks_per_half);
			if (cum == h->total)
				break;	/* the last slot: one level line, then the 100 % line */
		}
	}
	if (h->total > 0)
		fprintf(f, "%12.3f %2.12f %10lld\n", (double)last_v / scale, 1.0,
			(long long)h->total);
	fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", bench_hdr_mean(h) / scale,
		bench_hdr_stddev(h) / scale);
	fprintf(f, "#[Max     = %12.3f, Total count    = %12lld]\n",
		h->total ? (double)h->max / scale : 0.0,
		(long long)h->total);
	fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n", h->bucket_count,
		h->sub_bucket_count);
	return ferror(f) ? -EIO : 0;
}
