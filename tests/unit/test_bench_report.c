/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tailgate-bench's reports from known results: the JSON (jansson) has every figure the
 * scripts read, percentiles never above the max, the gateway's queue/compute breakdown, and
 * the CSV's header and rows have the same columns.
 */
#include "bench/bench.h"
#include "tests/harness.h"

#include <jansson.h>
#include <stdlib.h>

/* 1,000 OK answers of 1..1000 ms, the server's queue 0..99 us and compute 2 ms each. */
static int
fill(struct bench_results *r)
{
	if (bench_results_init(r) < 0)
		return -1;
	r->rate = 100;
	r->sched_s = 10;
	r->scheduled = r->answered = r->ok = r->ok_in_deadline = r->correct = r->agree = 1000;
	r->win_answered = r->win_good = 1000;
	r->status[PROTO_ST_OK] = 1000;
	for (int i = 1; i <= 1000; i++) {
		bench_hdr_record(&r->lat_us, i * 1000 + 7);
		bench_hdr_record(&r->srv_queue_us, i % 100);
		bench_hdr_record(&r->srv_compute_us, 2000);
	}
	return 0;
}

static double
num(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_is_number(v) ? json_number_value(v) : -1;
}

static void
test_json_has_every_figure(void)
{
	static const char *const pct[] = { "p50", "p90", "p95", "p99", "p99.9" };
	struct bench_results r;
	json_t *o;
	double last = 0;

	TH_CHECK(fill(&r) == 0);
	o = bench_report_json(&r, NULL);
	TH_CHECK(o != NULL);
	if (o == NULL) {
		bench_results_fini(&r);
		return;
	}
	TH_CHECK(num(o, "offered_rps", NULL) == 100.0);
	TH_CHECK(num(o, "ok", NULL) == 1000 && num(o, "timeouts", NULL) == 0);
	for (unsigned i = 0; i < sizeof(pct) / sizeof(pct[0]); i++) {
		double v = num(o, "latency_ms", pct[i]);

		TH_CHECK_MSG(v >= last && v <= num(o, "latency_ms", "max"), "%s %g", pct[i], v);
		last = v;
	}
	TH_CHECK(num(o, "latency_ms", "max") == 1000.007);
	TH_CHECK(num(o, "server_compute_ms", "p50") > 1.99 &&
		 num(o, "server_compute_ms", "p99") < 2.01);
	TH_CHECK(num(o, "server_queue_ms", "max") == 0.099);
	TH_CHECK(json_integer_value(json_object_get(json_object_get(o, "statuses"), "ok")) == 1000);
	TH_CHECK(num(o, "accuracy", NULL) == 100.0);
	json_decref(o);
	bench_results_fini(&r);
}

static unsigned
columns(const char *line)
{
	unsigned n = 1;

	for (; *line != '\0' && *line != '\n'; line++)
		n += *line == ',';
	return n;
}

static void
test_csv_rows_match_header(void)
{
	struct bench_results r;
	FILE *f = tmpfile();
	char head[1024], row[1024];

	TH_CHECK(f != NULL && fill(&r) == 0);
	if (f == NULL)
		return;
	bench_report_csv_header(f);
	bench_report_csv_row(f, &r);
	rewind(f);
	TH_CHECK(fgets(head, sizeof(head), f) != NULL && fgets(row, sizeof(row), f) != NULL);
	TH_CHECK_MSG(columns(head) == columns(row) && columns(head) > 20, "%u vs %u columns",
		     columns(head), columns(row));
	TH_CHECK(strstr(head, "p95_ms") != NULL && strstr(head, "server_compute_p99_ms") != NULL);
	TH_CHECK_MSG(strncmp(row, "100.000,100.000,100.000,1000,1000,1000,1000,0,0,", 48) == 0, "%s", row);
	fclose(f);
	bench_results_fini(&r);
}

int
main(void)
{
	TH_RUN(test_json_has_every_figure);
	TH_RUN(test_csv_rows_match_header);
	TH_DONE();
}
