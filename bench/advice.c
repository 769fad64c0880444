/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device classes for tailgate-bench (--class): their spec, their per-phase figures and the
 * table that reports them (bench.h). The run's side (head time, energy, advice followed) is
 * in run.c's bench_class_* hooks.
 */
#include "bench/bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A decimal field of a class spec; *end past it. */
static int
bench_class_num(const char *s, char **end, double *out)
{
	errno = 0;
	*out = strtod(s, end);
	return *end == s || errno != 0 || !(*out >= 0) || *out > 4e9 ? -1 : 0;
}

int
bench_class_parse(struct bench_class *c, const char *spec, struct tg_err *err)
{
	const char *colon = strchr(spec, ':'), *p;
	double v[5] = { 0 };
	unsigned n = 0;
	char *end;

	memset(c, 0, sizeof(*c));
	if (colon == NULL || colon == spec || (size_t)(colon - spec) >= BENCH_CLASS_NAME)
		return tg_err_set(err, -EINVAL, "class '%s': NAME:MFLOPS:UPLINK[:UJ_PER_MFLOP:"
				  "PJ_PER_BIT[:FLOOR]] (a name of 1-15 characters first)", spec);
	memcpy(c->name, spec, (size_t)(colon - spec));
	for (p = colon + 1; n < 5; n++) {
		if (bench_class_num(p, &end, &v[n]) < 0)
			return tg_err_set(err, -EINVAL, "class '%s': field %u is not a number",
					  spec, n + 2);
		if (n == 1) {	/* the uplink: a unit may follow */
			if (strncasecmp(end, "gbps", 4) == 0)
				v[n] *= 1e6, end += 4;
			else if (strncasecmp(end, "mbps", 4) == 0)
				v[n] *= 1e3, end += 4;
			else if (strncasecmp(end, "kbps", 4) == 0)
				end += 4;
		}
		if (*end == '\0')
			break;
		if (*end != ':')
			return tg_err_set(err, -EINVAL, "class '%s': unexpected '%s'", spec, end);
		p = end + 1;
	}
	if (n < 1 || n == 2 || n >= 5 || v[1] > UINT32_MAX || v[4] > 100)
		return tg_err_set(err, -EINVAL, "class '%s': NAME:MFLOPS:UPLINK[:UJ_PER_MFLOP:"
				  "PJ_PER_BIT[:FLOOR]], the floor a percentage", spec);
	c->compute_mflops = (uint32_t)v[0];
	c->uplink_kbps = (uint32_t)v[1];
	c->head_uj_per_mflop = (uint32_t)v[2];
	c->tx_pj_per_bit = (uint32_t)v[3];
	c->floor_bp = (uint16_t)(v[4] * 100 + 0.5);
	return 0;
}

int
bench_class_stats_init(struct bench_class_stats *s)
{
	memset(s, 0, sizeof(*s));
	return bench_hdr_init(&s->lat_us, 1, 3600000000ll, 3);
}

void
bench_class_stats_fini(struct bench_class_stats *s)
{
	bench_hdr_fini(&s->lat_us);
}

void
bench_class_stats_reset(struct bench_class_stats *s)
{
	struct bench_hdr h = s->lat_us;

	memset(s, 0, sizeof(*s));
	s->lat_us = h;
	bench_hdr_reset(&s->lat_us);
}

/* "S:PCT% vV/S:PCT% ...": where a class's requests were sent from, the run's variant vid
 * without a prefix. */
static void
bench_class_choices(char *buf, size_t len, const struct bench_class_stats *s, unsigned vid)
{
	size_t o = 0;

	buf[0] = '\0';
	for (unsigned v = 0; v < BENCH_MAX_VARIANTS; v++)
		for (unsigned i = 0; i < 64 && o + 32 < len; i++) {
			double pct = s->requests ? 100.0 * (double)s->by_split[v][i] /
						   (double)s->requests : 0;
			char vp[8] = "";

			if (s->by_split[v][i] == 0)
				continue;
			if (v != vid)
				snprintf(vp, sizeof(vp), "v%u/", v);
			o += (size_t)snprintf(buf + o, len - o, "%s%s%u:%.0f%%", o ? " " : "", vp,
					      i, pct);
		}
}

void
bench_report_classes(FILE *f, const char *label, const struct bench_class *cls,
		     const struct bench_class_stats *st, unsigned n, unsigned vid)
{
	fprintf(f, "%-10s %-8s %8s %9s %9s %9s %10s %8s  %s\n", label, "class", "requests",
		"p50_ms", "p90_ms", "p99_ms", "mJ/req", "top1", "splits sent from");
	for (unsigned k = 0; k < n; k++) {
		const struct bench_class_stats *s = &st[k];
		char splits[512];

		bench_class_choices(splits, sizeof(splits), s, vid);
		fprintf(f, "%-10s %-8s %8" PRIu64 " %9.2f %9.2f %9.2f %10.3f %7.2f%%  %s\n", label,
			cls[k].name, s->requests, (double)bench_hdr_value_at(&s->lat_us, 50) / 1e3,
			(double)bench_hdr_value_at(&s->lat_us, 90) / 1e3,
			(double)bench_hdr_value_at(&s->lat_us, 99) / 1e3,
			s->requests ? s->energy_uj / 1e3 / (double)s->requests : 0,
			s->ok ? 100.0 * (double)s->correct / (double)s->ok : 0, splits);
	}
}
