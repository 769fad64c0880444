/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's reports: the final table, the same as JSON, and a sweep's rows.
 */
#include "bench/bench.h"

#include <inttypes.h>
#include <jansson.h>

enum { BENCH_N_PCTS = 5 };
static const double bench_pcts[BENCH_N_PCTS] = { 50, 90, 95, 99, 99.9 };
static const char *const bench_pct_names[BENCH_N_PCTS] = { "p50", "p90", "p95", "p99", "p99.9" };

static double
bench_pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}


/* FLOPs per answer to the exit that answered, from the input, over OK answers (0: none). */
static double
bench_exit_flops(const struct bench_results *r, const struct bench_inputs *in)
{
	double fl = 0;
	uint64_t n = 0;

	for (unsigned e = 0; e <= BENCH_MAX_EXITS; e++) {
		unsigned k = e < in->n_exits ? e : in->final_exit;

		fl += (double)r->by_exit[e] * (double)in->exit_flops[k];
		n += r->by_exit[e];
	}
	return n ? fl / (double)n : 0;
}

/* The share of OK answers at each exit, and the compute that saves. */
static void
bench_report_exits(FILE *f, const struct bench_results *r, const struct bench_inputs *in)
{
	double fin = (double)in->exit_flops[in->final_exit], fl = bench_exit_flops(r, in);

	fprintf(f, "answers by exit:\n");
	for (unsigned e = 0; e < in->n_exits; e++)
		fprintf(f, "  %-26s %.2f%% (%" PRIu64 ")\n", in->exit_name[e],
			bench_pct(r->by_exit[e], r->ok), r->by_exit[e]);
	if (r->by_exit[BENCH_MAX_EXITS])
		fprintf(f, "  %-26s %" PRIu64 "\n", "other", r->by_exit[BENCH_MAX_EXITS]);
	fprintf(f, "%-28s %.1f M FLOPs per answer to its exit, %.1f M to the final one "
		"(%.1f%% less where computing stops at the exit)\n", "compute", fl / 1e6, fin / 1e6,
		fin > 0 && r->ok ? 100.0 * (1.0 - fl / fin) : 0.0);
}

void
bench_report_table(FILE *f, const struct bench_results *r, const struct bench_inputs *in)
{
	fprintf(f, "%-28s %s\n", "mode", r->rate > 0 ? "open loop (Poisson)" : "closed loop");
	if (r->rate > 0)
		fprintf(f, "%-28s %.1f req/s\n", "target rate", r->rate);
	else
		fprintf(f, "%-28s %u\n", "concurrency", r->concurrency);
	fprintf(f, "%-28s %.1f req/s (%" PRIu64 " arrivals in %.2f s)\n", "offered",
		bench_results_offered(r), r->scheduled, r->sched_s);
	fprintf(f, "%-28s %.1f req/s (%" PRIu64 " answers in those %.2f s)\n", "achieved",
		bench_results_achieved(r), r->win_answered, r->sched_s);
	fprintf(f, "%-28s %.1f req/s (%" PRIu64 " of them OK within deadline)\n", "goodput",
		bench_results_goodput(r), r->win_good);
	fprintf(f, "%-28s %" PRIu64 " of %" PRIu64 " (%" PRIu64 " OK, %" PRIu64
		" within deadline); last at %.2f s\n", "measured requests answered", r->answered,
		r->scheduled, r->ok, r->ok_in_deadline, r->window_s);
	if (r->variant != 0 || r->other_variant != 0)
		fprintf(f, "%-28s %u (%" PRIu64 " OK answers named another)\n", "variant asked",
			r->variant, r->other_variant);
	fprintf(f, "latency (OK answers, from the scheduled send time), ms:\n");
	for (unsigned i = 0; i < BENCH_N_PCTS; i++)
		fprintf(f, "  %-26s %.3f\n", bench_pct_names[i],
			(double)bench_hdr_value_at(&r->lat_us, bench_pcts[i]) / 1000.0);
	fprintf(f, "  %-26s %.3f\n", "max", (double)(r->lat_us.total ? r->lat_us.max : 0) / 1000.0);
	fprintf(f, "  %-26s %.3f\n", "mean", bench_hdr_mean(&r->lat_us) / 1000.0);
	fprintf(f, "server side (the gateway's queue_us and compute_us of those answers), ms:\n");
	fprintf(f, "  %-26s p50 %.3f  p99 %.3f  mean %.3f\n", "queue (last chunk to batch)",
		(double)bench_hdr_value_at(&r->srv_queue_us, 50) / 1000.0,
		(double)bench_hdr_value_at(&r->srv_queue_us, 99) / 1000.0,
		bench_hdr_mean(&r->srv_queue_us) / 1000.0);
	fprintf(f, "  %-26s p50 %.3f  p99 %.3f  mean %.3f\n", "compute (its batch's run)",
		(double)bench_hdr_value_at(&r->srv_compute_us, 50) / 1000.0,
		(double)bench_hdr_value_at(&r->srv_compute_us, 99) / 1000.0,
		bench_hdr_mean(&r->srv_compute_us) / 1000.0);
	fprintf(f, "%-28s %" PRIu64 "\n", "timeouts (gave up)", r->gave_up);
	fprintf(f, "%-28s %" PRIu64 "\n", "unfinished", r->unfinished);
	fprintf(f, "%-28s %" PRIu64 "\n", "timer fires", r->timer_fires);
	fprintf(f, "%-28s %" PRIu64 " of %" PRIu64 " chunks sent\n", "retransmits",
		r->chunks_resent, r->chunks_sent);
	fprintf(f, "%-28s %" PRIu64 "\n", "nacks", r->nacks);
	fprintf(f, "%-28s %" PRIu64 " dropped, %" PRIu64 " duplicated, %" PRIu64 " reordered\n",
		"impairment", r->dropped, r->duped, r->reordered);
	fprintf(f, "%-28s %" PRIu64 "\n", "corrupted in flight", r->corrupted);
	fprintf(f, "%-28s %" PRIu64 "\n", "unauthenticated replies", r->rx_unauth);
	fprintf(f, "%-28s %" PRIu64 "\n", "re-HELLOs", r->rehellos);
	fprintf(f, "%-28s %" PRIu64 "\n", "path challenges", r->path_challenges);
	fprintf(f, "%-28s %" PRIu64 "\n", "PENDING answers", r->pendings);
	fprintf(f, "%-28s %" PRIu64 "\n", "send errors", r->send_errors);
	fprintf(f, "%-28s %" PRIu64 "\n", "ignored datagrams", r->rx_ignored);
	fprintf(f, "statuses:\n");
	for (unsigned s = 0; s < PROTO_ST__COUNT; s++)
		if (r->status[s])
			fprintf(f, "  %-26s %" PRIu64 "\n", proto_status_name(s), r->status[s]);
	for (unsigned s = 0; s < PROTO_ST__COUNT; s++)
		if (r->error[s])
			fprintf(f, "  ERROR %-20s %" PRIu64 "\n", proto_status_name(s), r->error[s]);
	for (unsigned s = 0; s < PROTO_REASON__COUNT; s++)
		if (r->reason[s])
			fprintf(f, "  reason %-19s %" PRIu64 "\n", proto_reason_name(s), r->reason[s]);
	if (in != NULL && !in->has_labels) {
		fprintf(f, "%-28s none: the inputs have no labels\n", "accuracy");
	} else {
		fprintf(f, "%-28s %.2f%% (%" PRIu64 " of %" PRIu64 " OK answers)\n", "accuracy",
			bench_pct(r->correct, r->ok), r->correct, r->ok);
		fprintf(f, "%-28s %.2f%% (the engine, same requests)\n", "offline accuracy",
			bench_pct(r->offline_correct, r->ok));
	}
	fprintf(f, "%-28s %.2f%% (%" PRIu64 " of %" PRIu64 ")\n", "agreement with offline",
		bench_pct(r->agree, r->ok), r->agree, r->ok);
	if (in != NULL)
		bench_report_exits(f, r, in);
	if (in != NULL && in->has_labels)
		fprintf(f, "%-28s %u images, %.2f%% offline over all built, %.1f MB, %.1f s%s\n",
			"inputs", in->n_items, bench_pct(in->offline_hits, in->offline_total),
			(double)in->arena_len / 1e6, in->build_s,
			in->from_cache ? " (from the cache)" : "");
	if (in != NULL)
		fprintf(f, "%-28s %s\n", "samples", in->what);
}

/* A histogram's percentiles, max and mean, in ms. @return a new object, NULL on ENOMEM. */
static json_t *
bench_json_latency(const struct bench_hdr *h)
{
	json_t *o = json_object();

	for (unsigned i = 0; o != NULL && i < BENCH_N_PCTS; i++)
		if (json_object_set_new(o, bench_pct_names[i],
					json_real((double)bench_hdr_value_at(h, bench_pcts[i]) / 1000.0)))
			goto fail;
	if (o == NULL ||
	    json_object_set_new(o, "max", json_real((double)(h->total ? h->max : 0) / 1000.0)) ||
	    json_object_set_new(o, "mean", json_real(bench_hdr_mean(h) / 1000.0)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* The non-zero counters of an array indexed by status or reason, by their metric label. */
static json_t *
bench_json_counts(const uint64_t *v, unsigned n, const char *(*name)(unsigned))
{
	json_t *o = json_object();

	for (unsigned i = 0; o != NULL && i < n; i++)
		if (v[i] && json_object_set_new(o, name(i), json_integer((json_int_t)v[i]))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

json_t *
bench_report_json(const struct bench_results *r, const struct bench_inputs *in)
{
	json_t *o = json_pack(
		"{s:s, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I,"
		" s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o,"
		" s:f, s:f, s:f, s:I, s:I}",
		"mode", r->rate > 0 ? "open" : "closed", "rate", r->rate,
		"concurrency", (json_int_t)r->concurrency,
		"offered_rps", bench_results_offered(r), "achieved_rps", bench_results_achieved(r),
		"goodput_rps", bench_results_goodput(r), "window_s", r->sched_s,
		"last_answer_s", r->window_s,
		"latency_ms", bench_json_latency(&r->lat_us),
		"server_queue_ms", bench_json_latency(&r->srv_queue_us),
		"server_compute_ms", bench_json_latency(&r->srv_compute_us),
		"scheduled", (json_int_t)r->scheduled, "answered", (json_int_t)r->answered,
		"ok", (json_int_t)r->ok, "ok_in_deadline", (json_int_t)r->ok_in_deadline,
		"timeouts", (json_int_t)r->gave_up, "unfinished", (json_int_t)r->unfinished,
		"timer_fires", (json_int_t)r->timer_fires,
		"retransmits", (json_int_t)r->chunks_resent,
		"chunks_sent", (json_int_t)r->chunks_sent, "nacks", (json_int_t)r->nacks,
		"dropped", (json_int_t)r->dropped, "duplicated", (json_int_t)r->duped,
		"reordered", (json_int_t)r->reordered, "rehellos", (json_int_t)r->rehellos,
		"send_errors", (json_int_t)r->send_errors, "ignored", (json_int_t)r->rx_ignored,
		"bytes_sent", (json_int_t)r->bytes_sent,
		"statuses", bench_json_counts(r->status, PROTO_ST__COUNT, proto_status_name),
		"errors", bench_json_counts(r->error, PROTO_ST__COUNT, proto_status_name),
		"reasons", bench_json_counts(r->reason, PROTO_REASON__COUNT, proto_reason_name),
		"accuracy", bench_pct(r->correct, r->ok),
		"offline_accuracy", bench_pct(r->offline_correct, r->ok),
		"agreement", bench_pct(r->agree, r->ok),
		"correct", (json_int_t)r->correct, "agree", (json_int_t)r->agree);

	if (o != NULL && in != NULL) {
		json_t *ex = json_object();

		for (unsigned e = 0; ex != NULL && e < in->n_exits; e++)
			json_object_set_new(ex, in->exit_name[e],
					    json_integer((json_int_t)r->by_exit[e]));
		if (ex == NULL || json_object_set_new(o, "exits", ex) ||
		    json_object_set_new(o, "flops_per_answer", json_real(bench_exit_flops(r, in))) ||
		    json_object_set_new(o, "flops_final",
					json_real((double)in->exit_flops[in->final_exit]))) {
			json_decref(o);
			return NULL;
		}
	}

	if (o != NULL && (json_object_set_new(o, "variant", json_integer(r->variant)) ||
			  json_object_set_new(o, "other_variant",
					      json_integer((json_int_t)r->other_variant)))) {
		json_decref(o);
		return NULL;
	}
	if (o != NULL && (json_object_set_new(o, "path_challenges",
					      json_integer((json_int_t)r->path_challenges)) ||
			  json_object_set_new(o, "pendings", json_integer((json_int_t)r->pendings)))) {
		json_decref(o);
		return NULL;
	}
	if (o != NULL &&
	    (json_object_set_new(o, "corrupted", json_integer((json_int_t)r->corrupted)) ||
	     json_object_set_new(o, "unauthenticated", json_integer((json_int_t)r->rx_unauth)))) {
		json_decref(o);
		return NULL;
	}
	if (o != NULL && in != NULL && !in->has_labels &&	/* nothing to be accurate against */
	    (json_object_set_new(o, "accuracy", json_null()) ||
	     json_object_set_new(o, "offline_accuracy", json_null()))) {
		json_decref(o);
		return NULL;
	}
	if (o != NULL && in != NULL &&
	    json_object_set_new(o, "inputs", json_pack("{s:I, s:I, s:f, s:b, s:f}",
			"images", (json_int_t)in->n_items, "bytes", (json_int_t)in->arena_len,
			"build_s", in->build_s, "from_cache", in->from_cache,
			"offline_accuracy_all", bench_pct(in->offline_hits, in->offline_total)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* One CSV line per phase (a sweep: per step); columns named by bench_report_csv_header(). */
void
bench_report_csv_header(FILE *f)
{
	fprintf(f, "offered_rps,achieved_rps,goodput_rps,scheduled,answered,ok,ok_in_deadline,"
		"timeouts,non_ok");
	for (unsigned i = 0; i < BENCH_N_PCTS; i++)
		fprintf(f, ",%s_ms", bench_pct_names[i]);
	fprintf(f, ",max_ms,mean_ms,server_queue_p50_ms,server_queue_p99_ms,"
		"server_compute_p50_ms,server_compute_p99_ms,retransmits,chunks_sent,accuracy,"
		"agreement\n");
}

void
bench_report_csv_row(FILE *f, const struct bench_results *r)
{
	fprintf(f, "%.3f,%.3f,%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		",%" PRIu64, bench_results_offered(r), bench_results_achieved(r),
		bench_results_goodput(r), r->scheduled, r->answered, r->ok, r->ok_in_deadline,
		r->gave_up, r->answered - r->ok);
	for (unsigned i = 0; i < BENCH_N_PCTS; i++)
		fprintf(f, ",%.3f", (double)bench_hdr_value_at(&r->lat_us, bench_pcts[i]) / 1000.0);
	fprintf(f, ",%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%" PRIu64 ",%" PRIu64 ",%.4f,%.4f\n",
		(double)(r->lat_us.total ? r->lat_us.max : 0) / 1000.0, bench_hdr_mean(&r->lat_us) / 1000.0,
		(double)bench_hdr_value_at(&r->srv_queue_us, 50) / 1000.0,
		(double)bench_hdr_value_at(&r->srv_queue_us, 99) / 1000.0,
		(double)bench_hdr_value_at(&r->srv_compute_us, 50) / 1000.0,
		(double)bench_hdr_value_at(&r->srv_compute_us, 99) / 1000.0, r->chunks_resent,
		r->chunks_sent, bench_pct(r->correct, r->ok), bench_pct(r->agree, r->ok));
}

void
bench_report_sweep_header(FILE *f)
{
	fprintf(f, "%10s %10s %10s %10s %9s %9s %9s %9s %8s %8s %6s\n", "offered", "achieved",
		"goodput", "answered", "p50_ms", "p90_ms", "p99_ms", "max_ms", "timeouts",
		"non_ok", "sat");
}

void
bench_report_sweep_row(FILE *f, const struct bench_results *r, bool saturated)
{
	fprintf(f, "%10.1f %10.1f %10.1f %10" PRIu64 " %9.3f %9.3f %9.3f %9.3f %8" PRIu64
		" %8" PRIu64 " %6s\n",
		bench_results_offered(r), bench_results_achieved(r), bench_results_goodput(r), r->answered,
		(double)bench_hdr_value_at(&r->lat_us, 50) / 1000.0,
		(double)bench_hdr_value_at(&r->lat_us, 90) / 1000.0,
		(double)bench_hdr_value_at(&r->lat_us, 99) / 1000.0,
		(double)(r->lat_us.total ? r->lat_us.max : 0) / 1000.0, r->gave_up,
		r->answered - r->ok, saturated ? "yes" : "no");
}
