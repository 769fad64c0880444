/*
 * The bench's reports: the final table, the same as JSON, and a sweep's rows.
 */
#include "loadgen/loadgen.h"

#include <inttypes.h>

static const double lg_pcts[] = { 50, 90, 99, 99.9 };
static const char *const lg_pct_names[] = { "p50", "p90", "p99", "p99.9" };

static double
lg_pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

void
lg_report_table(FILE *f, const struct lg_results *r, const struct lg_inputs *in)
{
	fprintf(f, "%-28s %s\n", "mode", r->rate > 0 ? "open loop (Poisson)" : "closed loop");
	if (r->rate > 0)
		fprintf(f, "%-28s %.1f req/s\n", "target rate", r->rate);
	else
		fprintf(f, "%-28s %u\n", "concurrency", r->concurrency);
	fprintf(f, "%-28s %.1f req/s (%" PRIu64 " arrivals in %.2f s)\n", "offered",
		lg_results_offered(r), r->scheduled, r->sched_s);
	fprintf(f, "%-28s %.1f req/s (%" PRIu64 " answers in those %.2f s)\n", "achieved",
		lg_results_achieved(r), r->win_answered, r->sched_s);
	fprintf(f, "%-28s %.1f req/s (%" PRIu64 " of them OK within deadline)\n", "goodput",
		lg_results_goodput(r), r->win_good);
	fprintf(f, "%-28s %" PRIu64 " of %" PRIu64 " (%" PRIu64 " OK, %" PRIu64
		" within deadline); last at %.2f s\n", "measured requests answered", r->answered,
		r->scheduled, r->ok, r->ok_in_deadline, r->window_s);
	fprintf(f, "latency (OK answers, from the scheduled send time), ms:\n");
	for (unsigned i = 0; i < sizeof(lg_pcts) / sizeof(lg_pcts[0]); i++)
		fprintf(f, "  %-26s %.3f\n", lg_pct_names[i],
			(double)tg_hdr_value_at(&r->lat_us, lg_pcts[i]) / 1000.0);
	fprintf(f, "  %-26s %.3f\n", "max", (double)(r->lat_us.total ? r->lat_us.max : 0) / 1000.0);
	fprintf(f, "  %-26s %.3f\n", "mean", tg_hdr_mean(&r->lat_us) / 1000.0);
	fprintf(f, "%-28s %" PRIu64 "\n", "timeouts (gave up)", r->gave_up);
	fprintf(f, "%-28s %" PRIu64 "\n", "unfinished", r->unfinished);
	fprintf(f, "%-28s %" PRIu64 "\n", "timer fires", r->timer_fires);
	fprintf(f, "%-28s %" PRIu64 " of %" PRIu64 " chunks sent\n", "retransmits",
		r->chunks_resent, r->chunks_sent);
	fprintf(f, "%-28s %" PRIu64 "\n", "nacks", r->nacks);
	fprintf(f, "%-28s %" PRIu64 " dropped, %" PRIu64 " duplicated, %" PRIu64 " reordered\n",
		"impairment", r->dropped, r->duped, r->reordered);
	fprintf(f, "%-28s %" PRIu64 "\n", "re-HELLOs", r->rehellos);
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
	fprintf(f, "%-28s %.2f%% (%" PRIu64 " of %" PRIu64 " OK answers)\n", "accuracy",
		lg_pct(r->correct, r->ok), r->correct, r->ok);
	fprintf(f, "%-28s %.2f%% (the engine, same requests)\n", "offline accuracy",
		lg_pct(r->offline_correct, r->ok));
	fprintf(f, "%-28s %.2f%% (%" PRIu64 " of %" PRIu64 ")\n", "agreement with offline",
		lg_pct(r->agree, r->ok), r->agree, r->ok);
	if (in != NULL)
		fprintf(f, "%-28s %u images, %.2f%% offline over all built, %.1f MB, %.1f s%s\n",
			"inputs", in->n_items, lg_pct(in->offline_hits, in->offline_total),
			(double)in->arena_len / 1e6, in->build_s,
			in->from_cache ? " (from the cache)" : "");
}

void
lg_report_json(FILE *f, const struct lg_results *r, const struct lg_inputs *in)
{
	fprintf(f, "{\"mode\": \"%s\", \"rate\": %.3f, \"concurrency\": %u, ",
		r->rate > 0 ? "open" : "closed", r->rate, r->concurrency);
	fprintf(f, "\"offered_rps\": %.3f, \"achieved_rps\": %.3f, \"goodput_rps\": %.3f, ",
		lg_results_offered(r), lg_results_achieved(r), lg_results_goodput(r));
	fprintf(f, "\"window_s\": %.3f, \"last_answer_s\": %.3f, \"latency_ms\": {",
		r->sched_s, r->window_s);
	for (unsigned i = 0; i < sizeof(lg_pcts) / sizeof(lg_pcts[0]); i++)
		fprintf(f, "\"%s\": %.3f, ", lg_pct_names[i],
			(double)tg_hdr_value_at(&r->lat_us, lg_pcts[i]) / 1000.0);
	fprintf(f, "\"max\": %.3f, \"mean\": %.3f}, ",
		(double)(r->lat_us.total ? r->lat_us.max : 0) / 1000.0, tg_hdr_mean(&r->lat_us) / 1000.0);
	fprintf(f, "\"scheduled\": %" PRIu64 ", \"answered\": %" PRIu64 ", \"ok\": %" PRIu64
		", \"ok_in_deadline\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", \"unfinished\": %"
		PRIu64 ", \"timer_fires\": %" PRIu64 ", \"retransmits\": %" PRIu64
		", \"chunks_sent\": %" PRIu64 ", \"nacks\": %" PRIu64 ", \"dropped\": %" PRIu64
		", \"duplicated\": %" PRIu64 ", \"reordered\": %" PRIu64 ", \"rehellos\": %" PRIu64
		", \"send_errors\": %" PRIu64 ", \"ignored\": %" PRIu64 ", \"bytes_sent\": %" PRIu64
		", ",
		r->scheduled, r->answered, r->ok, r->ok_in_deadline, r->gave_up, r->unfinished,
		r->timer_fires, r->chunks_resent, r->chunks_sent, r->nacks, r->dropped, r->duped,
		r->reordered, r->rehellos, r->send_errors, r->rx_ignored, r->bytes_sent);
	fprintf(f, "\"statuses\": {");
	for (unsigned s = 0, first = 1; s < PROTO_ST__COUNT; s++)
		if (r->status[s]) {
			fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", proto_status_name(s),
				r->status[s]);
			first = 0;
		}
	fprintf(f, "}, \"errors\": {");
	for (unsigned s = 0, first = 1; s < PROTO_ST__COUNT; s++)
		if (r->error[s]) {
			fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", proto_status_name(s),
				r->error[s]);
			first = 0;
		}
	fprintf(f, "}, \"reasons\": {");
	for (unsigned s = 0, first = 1; s < PROTO_REASON__COUNT; s++)
		if (r->reason[s]) {
			fprintf(f, "%s\"%s\": %" PRIu64, first ? "" : ", ", proto_reason_name(s),
				r->reason[s]);
			first = 0;
		}
	fprintf(f, "}, \"accuracy\": %.4f, \"offline_accuracy\": %.4f, \"agreement\": %.4f, "
		"\"correct\": %" PRIu64 ", \"agree\": %" PRIu64,
		lg_pct(r->correct, r->ok), lg_pct(r->offline_correct, r->ok),
		lg_pct(r->agree, r->ok), r->correct, r->agree);
	if (in != NULL)
		fprintf(f, ", \"inputs\": {\"images\": %u, \"bytes\": %zu, \"build_s\": %.3f, "
			"\"from_cache\": %s, \"offline_accuracy_all\": %.4f}", in->n_items,
			in->arena_len, in->build_s, in->from_cache ? "true" : "false",
			lg_pct(in->offline_hits, in->offline_total));
	fputc('}', f);
}

void
lg_report_sweep_header(FILE *f)
{
	fprintf(f, "%10s %10s %10s %10s %9s %9s %9s %9s %8s %8s %6s\n", "offered", "achieved",
		"goodput", "answered", "p50_ms", "p90_ms", "p99_ms", "max_ms", "timeouts",
		"non_ok", "sat");
}

void
lg_report_sweep_row(FILE *f, const struct lg_results *r, bool saturated)
{
	fprintf(f, "%10.1f %10.1f %10.1f %10" PRIu64 " %9.3f %9.3f %9.3f %9.3f %8" PRIu64
		" %8" PRIu64 " %6s\n",
		lg_results_offered(r), lg_results_achieved(r), lg_results_goodput(r), r->answered,
		(double)tg_hdr_value_at(&r->lat_us, 50) / 1000.0,
		(double)tg_hdr_value_at(&r->lat_us, 90) / 1000.0,
		(double)tg_hdr_value_at(&r->lat_us, 99) / 1000.0,
		(double)(r->lat_us.total ? r->lat_us.max : 0) / 1000.0, r->gave_up,
		r->answered - r->ok, saturated ? "yes" : "no");
}
