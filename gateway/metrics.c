/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control plane's pages: /metrics (Prometheus text), /healthz, /v1/models (JSON), on the
 * HTTP server's thread. Counters are monotonic across reloads: the scheduler's are the
 * retired generations' totals plus every live generation's, by model name.
 */
#include "gateway/gw_int.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static void
gw_prom_counter(struct gw_prom *p, const char *name, const char *help, double v)
{
	gw_prom_family(p, name, "counter", help);
	gw_prom_sample(p, name, NULL, v);
}

static void
gw_prom_lat(struct gw_prom *p, const char *name, const char *help, struct gw_lat *l)
{
	char n2[128], lab[64];
	uint64_t cum = 0;

	gw_prom_family(p, name, "histogram", help);
	snprintf(n2, sizeof(n2), "%s_bucket", name);
	for (unsigned b = 0; b <= GW_N_LAT; b++) {
		cum += atomic_load_explicit(&l->le[b], memory_order_relaxed);
		if (b < GW_N_LAT)
			snprintf(lab, sizeof(lab), "le=\"%g\"", gw_lat_le_us[b] / 1e6);
		else
			snprintf(lab, sizeof(lab), "le=\"+Inf\"");
		gw_prom_sample(p, n2, lab, (double)cum);
	}
	snprintf(n2, sizeof(n2), "%s_sum", name);
	gw_prom_sample(p, n2, NULL, atomic_load(&l->sum_us) / 1e6);
	snprintf(n2, sizeof(n2), "%s_count", name);
	gw_prom_sample(p, n2, NULL, (double)atomic_load(&l->count));
}

/* Answers per exit, labelled by model, exit name and output index; and each threshold. */
static void
gw_render_exits(struct gw *g, struct gw_prom *p, const struct gw_totals *t)
{
	const struct gw_gen *cur = atomic_load(&g->cur);
	const struct gw_repo *repo = cur->repo;
	char lab[512], mq[160], eq[160];

	gw_prom_family(p, "tailgate_exit_answers_total", "counter",
		       "requests answered by each exit, by model name (over reloads)");
	for (unsigned m = 0; m < g->n_slots; m++)
		for (unsigned e = 0; e < GW_N_EXITS && g->exit_name[m][e][0] != '\0'; e++) {
			snprintf(lab, sizeof(lab), "model=\"%s\",exit=\"%s\",index=\"%u\"",
				 gw_prom_escape(mq, sizeof(mq), g->slot_name[m]),
				 gw_prom_escape(eq, sizeof(eq), g->exit_name[m][e]), e);
			gw_prom_sample(p, "tailgate_exit_answers_total", lab, (double)t->exits[m][e]);
		}
	gw_prom_family(p, "tailgate_exit_confidence", "gauge",
		       "softmax confidence at which an early exit answers (exits enabled only)");
	for (unsigned i = 0; i < repo->n; i++) {
		struct kern_model_info info;

		kern_model_get_info(repo->models[i].m, &info);
		for (unsigned e = 0; e < info.n_outputs; e++) {
			if (repo->models[i].exit_conf[e] > 1.f)
				continue;
			snprintf(lab, sizeof(lab), "model=\"%s\",exit=\"%s\",index=\"%u\"",
				 gw_prom_escape(mq, sizeof(mq), repo->models[i].label),
				 gw_prom_escape(eq, sizeof(eq),
						kern_model_output(repo->models[i].m, e)->name), e);
			gw_prom_sample(p, "tailgate_exit_confidence", lab,
				       (double)repo->models[i].exit_conf[e]);
		}
	}
}

/* Requests answered, by model name and status; refusals by reason; in flight. */
static void
gw_render_requests(struct gw *g, struct gw_prom *p)
{
	char lab[512], mq[160];
	uint64_t taken, answered;

	gw_prom_family(p, "tailgate_requests_total", "counter",
		       "requests answered by the gateway, by model and status (refusals by the "
		       "dataplane: tailgate_dp_refusals_total)");
	for (unsigned m = 0; m <= g->n_slots; m++)
		for (unsigned s = 0; s < GW_N_ST; s++) {
			unsigned slot = m < g->n_slots ? m : GW_SLOT_UNKNOWN;
			uint64_t v = atomic_load_explicit(&g->req_by[slot][s], memory_order_relaxed);

			if (v == 0 && s != PROTO_ST_OK)
				continue;
			snprintf(lab, sizeof(lab), "model=\"%s\",status=\"%s\"",
				 gw_prom_escape(mq, sizeof(mq), m < g->n_slots ? g->slot_name[m] :
					       "unknown"), proto_status_name(s));
			gw_prom_sample(p, "tailgate_requests_total", lab, (double)v);
		}
	gw_prom_family(p, "tailgate_refusals_total", "counter",
		       "requests the gateway refused (admission and scheduler), by reason");
	for (unsigned r = 0; r < PROTO_REASON__COUNT; r++) {
		uint64_t v = atomic_load_explicit(&g->bad_reason[r], memory_order_relaxed);

		if (v == 0)
			continue;
		snprintf(lab, sizeof(lab), "reason=\"%s\"", proto_reason_name(r));
		gw_prom_sample(p, "tailgate_refusals_total", lab, (double)v);
	}
	/* answered first: a request is taken before it is answered, so the gauge is >= 0. */
	answered = atomic_load(&g->answered);
	taken = atomic_load(&g->taken);
	gw_prom_family(p, "tailgate_inflight", "gauge",
		       "requests the gateway holds: delivered by the dataplane, not yet answered");
	gw_prom_sample(p, "tailgate_inflight", NULL, (double)(taken - answered));
	gw_prom_counter(p, "tailgate_delivered_total", "requests the dataplane delivered",
			(double)taken);
	gw_prom_counter(p, "tailgate_answered_total", "of those, answered", (double)answered);
}

/* The scheduler's counters, over every generation (gw_stats_sum()). */
static void
gw_render_sched(struct gw *g, struct gw_prom *p, const struct gw_totals *t)
{
	const struct sched_stats *ss = &t->st;
	char lab[64];
	uint64_t cum = 0;

	/* The scheduler's batch sizes: buckets 1, 2, 4, ... 4096 */
	gw_prom_family(p, "tailgate_batch_size", "histogram", "samples per engine batch");
	for (unsigned h = 0, v = 1; h < 13; h++, v *= 2) {
		cum += ss->batch_hist[h];
		snprintf(lab, sizeof(lab), "le=\"%u\"", v);
		gw_prom_sample(p, "tailgate_batch_size_bucket", lab, (double)cum);
	}
	gw_prom_sample(p, "tailgate_batch_size_bucket", "le=\"+Inf\"", (double)cum);
	gw_prom_sample(p, "tailgate_batch_size_sum", NULL, (double)ss->samples_run);
	gw_prom_sample(p, "tailgate_batch_size_count", NULL, (double)ss->batches);
	gw_prom_lat(p, "tailgate_queue_seconds",
		    "last chunk's arrival to its batch's start, less compute (OK answers)",
		    &g->lat_queue);
	gw_prom_lat(p, "tailgate_compute_seconds", "engine time of a request's batches (OK answers)",
		    &g->lat_compute);
	gw_prom_counter(p, "tailgate_model_generation", "model repository loads (1 + reloads)",
			(double)atomic_load(&g->cur)->id);
	gw_prom_counter(p, "tailgate_sched_submitted_total", "requests offered to the scheduler",
			(double)ss->submitted);
	gw_prom_counter(p, "tailgate_sched_completed_total", "requests the scheduler answered",
			(double)ss->completed);
	gw_prom_counter(p, "tailgate_sched_expired_in_queue_total",
			"requests answered DEADLINE_INFEASIBLE at batch formation",
			(double)ss->expired_in_queue);
	gw_prom_counter(p, "tailgate_sched_shed_on_arrival_total",
			"requests answered OVERLOADED: their predicted finish was past the deadline",
			(double)ss->shed_on_arrival);
	gw_render_exits(g, p, t);
}

/*
 * Requests the dataplane refuses itself (a reply is sent; they never reach the gateway's
 * counters): the drop reasons that refuse a whole message. Names absent from this build's
 * DP_FOREACH_DROP are skipped.
 */
static const char *const gw_dp_refusals[] = {
	"client_inflight", "pool_full", "source_inflight", "evicted", "chunk_mismatch",
	"chunk_place", "chunk_lz4", "msg_timeout",
};

static void
gw_render_dp_refusals(struct gw_prom *p, const struct dp_stats *ds)
{
	char lab[128];

	gw_prom_family(p, "tailgate_dp_refusals_total", "counter",
		       "requests the dataplane refused before delivering them, by reason "
		       "(answered OVERLOADED or with an ERROR; also in tailgate_dp_drops_total)");
	for (unsigned i = 0; i < sizeof(gw_dp_refusals) / sizeof(gw_dp_refusals[0]); i++)
		for (unsigned d = 0; d < DP_DROP__COUNT; d++) {
			if (strcmp(dp_drop_name((enum dp_drop)d), gw_dp_refusals[i]) != 0)
				continue;
			snprintf(lab, sizeof(lab), "reason=\"%s\"", gw_dp_refusals[i]);
			gw_prom_sample(p, "tailgate_dp_refusals_total", lab, (double)ds->drop[d]);
		}
}

static void
gw_render_dp(struct gw *g, struct gw_prom *p)
{
	struct dp_stats ds;
	unsigned used, total;
	char lab[128];

	dp_stats_get(g->dp, &ds);
	dp_slots_get(g->dp, &used, &total);
	gw_prom_family(p, "tailgate_dp_slots_in_use", "gauge",
		       "message (reassembly) slots held: reassembling, queued or computing");
	gw_prom_sample(p, "tailgate_dp_slots_in_use", NULL, (double)used);
	gw_prom_family(p, "tailgate_dp_slots", "gauge", "message slots in the pool");
	gw_prom_sample(p, "tailgate_dp_slots", NULL, (double)total);
	gw_render_dp_refusals(p, &ds);
	gw_prom_family(p, "tailgate_dp_drops_total", "counter",
		       "dataplane drops by reason (see the comment line of each reason)");
	for (unsigned d = 0; d < DP_DROP__COUNT; d++) {
		gw_prom_printf(p, "# reason %s: %s\n", dp_drop_name((enum dp_drop)d),
			       dp_drop_help((enum dp_drop)d));
		snprintf(lab, sizeof(lab), "reason=\"%s\"", dp_drop_name((enum dp_drop)d));
		gw_prom_sample(p, "tailgate_dp_drops_total", lab, (double)ds.drop[d]);
	}
	gw_prom_family(p, "tailgate_proto_rejects_total", "counter",
		       "datagrams the wire decoder refused, by reason");
	for (unsigned r = 1; r < PROTO_REASON__COUNT; r++) {
		if (ds.proto.reject[r] == 0)
			continue;
		snprintf(lab, sizeof(lab), "reason=\"%s\"", proto_reason_name(r));
		gw_prom_sample(p, "tailgate_proto_rejects_total", lab, (double)ds.proto.reject[r]);
	}
#define GW_DP(f, help) gw_prom_counter(p, "tailgate_dp_" #f "_total", help, (double)ds.f)
	GW_DP(rx_pkts, "frames received from the port");
	GW_DP(tx_pkts, "frames the port took");
	GW_DP(rx_bytes, "bytes received");
	GW_DP(tx_bytes, "bytes sent");
	GW_DP(arp_replies, "ARP requests answered");
	GW_DP(icmp_replies, "ICMP echo requests answered");
	GW_DP(udp_rx, "datagrams to our port that passed IPv4/UDP checks");
	GW_DP(hello_replies, "HELLO_REPLY datagrams sent");
	GW_DP(sessions_opened, "sessions a HELLO opened");
	GW_DP(sessions_expired, "sessions forgotten after session_ttl_ms idle");
	GW_DP(sessions_evicted, "unverified sessions a new HELLO took the place of (table full)");
	GW_DP(sessions_moved, "sessions moved to an address that echoed their path token");
	GW_DP(path_challenges, "HELLO_REPLYs carrying a path token (address not yet proved)");
	GW_DP(hello_dups, "retransmitted HELLOs given their session again");
	GW_DP(pending_sent, "PENDING answers to chunks of requests already held");
	GW_DP(chunks_placed, "REQUEST chunks placed into their slot");
	GW_DP(msgs_opened, "messages given a reassembly slot");
	GW_DP(msgs_completed, "messages whose every chunk arrived");
	GW_DP(msgs_echoed, "messages answered by the echo model");
	GW_DP(msgs_delivered, "messages handed to the gateway");
	GW_DP(resp_sent, "RESPONSE datagrams sent");
	GW_DP(nacks_sent, "NACK datagrams sent");
	GW_DP(errors_sent, "ERROR datagrams sent");
	GW_DP(tensor_answers, "TENSOR RESPONSEs built (WANT_TENSOR), one or more chunks each");
	GW_DP(answers_resent, "kept answers resent to a duplicate of their request");
	GW_DP(resp_chunks_resent, "RESPONSE chunks resent (device NACKs, duplicate requests)");
	GW_DP(answers_lost, "kept tensor answers overwritten before their request was forgotten");
	GW_DP(idle_sleeps, "idle back-off sleeps of the RX lcores");
	GW_DP(port_missed, "frames the port dropped before RX");
#undef GW_DP
}

static double
gw_clock_s(clockid_t c)
{
	struct timespec ts;

	return clock_gettime(c, &ts) == 0 ? (double)ts.tv_sec + ts.tv_nsec / 1e9 : 0.0;
}

/*
 * Where the CPU goes, per thread of the gateway's own: the main thread, each RX lcore
 * (polling and back-off included), each scheduler worker index (over generations); the
 * time inside oneDNN per worker, wall and the worker thread's own CPU, so that a worker's
 * CPU outside oneDNN is thread_cpu{worker} - engine_thread_cpu{worker}; and the process
 * (the rest: oneDNN's other threads, the log writer, HTTP, reload builders).
 */
static void
gw_render_threads(struct gw *g, struct gw_prom *p, const struct gw_totals *t)
{
	const char *cpu = "tailgate_thread_cpu_seconds_total";
	char lab[64];
	uint64_t ns;

	gw_prom_family(p, cpu, "counter",
		       "CPU time of the gateway's threads: main (signals, reload start), rx (each "
		       "RX lcore: polling and back-off too), worker (each scheduler worker thread: "
		       "batching, its share of oneDNN, answers; oneDNN's other threads not included)");
	if (g->main_clock_set)
		gw_prom_sample(p, cpu, "thread=\"main\"", gw_clock_s(g->main_clock));
	for (unsigned q = 0; q < dp_n_queues(g->dp); q++)
		if (dp_lcore_cpu_ns(g->dp, q, &ns) == 0) {
			snprintf(lab, sizeof(lab), "thread=\"rx\",index=\"%u\"", q);
			gw_prom_sample(p, cpu, lab, ns / 1e9);
		}
	for (unsigned w = 0; w < g->cfg.workers && w < SCHED_MAX_WORKERS; w++) {
		snprintf(lab, sizeof(lab), "thread=\"worker\",index=\"%u\"", w);
		gw_prom_sample(p, cpu, lab, t->st.worker_cpu_ns[w] / 1e9);
	}
	gw_prom_family(p, "tailgate_engine_seconds_total", "counter",
		       "wall time of engine batches (oneDNN primitives), by worker");
	for (unsigned w = 0; w < g->cfg.workers && w < SCHED_MAX_WORKERS; w++) {
		snprintf(lab, sizeof(lab), "worker=\"%u\"", w);
		gw_prom_sample(p, "tailgate_engine_seconds_total", lab, t->st.engine_ns[w] / 1e9);
	}
	gw_prom_family(p, "tailgate_engine_thread_cpu_seconds_total", "counter",
		       "CPU time the worker thread itself spent inside engine batches (oneDNN), by "
		       "worker: its CPU outside oneDNN is tailgate_thread_cpu_seconds_total minus this");
	for (unsigned w = 0; w < g->cfg.workers && w < SCHED_MAX_WORKERS; w++) {
		snprintf(lab, sizeof(lab), "worker=\"%u\"", w);
		gw_prom_sample(p, "tailgate_engine_thread_cpu_seconds_total", lab,
			       t->st.engine_cpu_ns[w] / 1e9);
	}
	gw_prom_counter(p, "tailgate_process_cpu_seconds_total",
			"CPU time of the whole process (every thread, oneDNN's pool included)",
			gw_clock_s(CLOCK_PROCESS_CPUTIME_ID));
}

static void
gw_render_metrics(struct gw *g, struct gw_prom *p)
{
	static struct gw_totals t;	/* large; the HTTP thread alone renders, under gen_mu */

	gw_stats_sum(g, &t);
	gw_render_requests(g, p);
	gw_render_sched(g, p, &t);
	gw_render_dp(g, p);
	gw_render_threads(g, p, &t);
	gw_log_prom(g->log, p);
}

static void
gw_render_models(struct gw *g, struct gw_prom *p)
{
	static const struct { const char *name; unsigned size; } dts[] = {
		{ "f32", 4 }, { "f16", 2 }, { "s8", 1 }, { "u8", 1 },
	};
	const struct gw_gen *cur = atomic_load(&g->cur);

	gw_prom_printf(p, "{\"generation\":%u,\"models\":[", cur->id);
	for (unsigned i = 0; i < cur->repo->n; i++) {
		const struct gw_model *gm = &cur->repo->models[i];
		const char *vname = strchr(gm->label, '/');
		struct kern_model_info info;

		kern_model_get_info(gm->m, &info);
		gw_prom_printf(p, "%s{\"id\":%u,\"name\":\"%s\",\"variant\":%u,\"variant_name\":"
		       "\"%s\",\"precision\":\"%s\",\"max_batch\":%u,\"max_delay_us\":%u,"
		       "\"deadline_ms\":%u,\"top_k\":%u,\"accuracy_bp\":%u,\"flops\":%llu,"
		       "\"params\":%llu,\"splits\":[", i ? "," : "", gm->conf.id, gm->conf.name,
		       gm->variant, vname ? vname + 1 : "base",
		       gm->conf.precision == KERN_PREC_INT8 ? "int8" : "f32", gm->conf.max_batch,
		       gm->conf.max_delay_us, gm->conf.deadline_ms, gm->conf.top_k, gm->accuracy_bp,
		       (unsigned long long)info.flops, (unsigned long long)info.n_params);
		for (unsigned k = 0; k < gm->n_splits; k++) {
			const struct kern_split *sp = kern_model_split(gm->m, gm->splits[k]);

			gw_prom_printf(p, "%s{\"split_id\":%u,\"name\":\"%s\",\"shape\":[", k ? "," : "",
			       sp->index, sp->name);
			for (int d = 0; d < sp->ndim; d++)
				gw_prom_printf(p, "%s%lld", d ? "," : "", (long long)sp->dims[d]);
			gw_prom_printf(p, "],\"bytes\":{");
			for (unsigned t = 0; t < 4; t++)
				gw_prom_printf(p, "%s\"%s\":%llu", t ? "," : "", dts[t].name,
				       (unsigned long long)sp->numel * dts[t].size);
			gw_prom_printf(p, "}}");
		}
		gw_prom_printf(p, "],\"exits\":[");
		for (unsigned o = 0; o < info.n_outputs; o++) {
			const struct kern_output *ko = kern_model_output(gm->m, o);

			gw_prom_printf(p, "%s{\"index\":%u,\"name\":\"%s\",\"accuracy_fp32_bp\":%u,"
				       "\"accuracy_int8_bp\":%u", o ? "," : "", o, ko->name,
				       gm->acc_fp32[o], gm->acc_int8[o]);
			if (gm->exit_conf[o] <= 1.f)
				gw_prom_printf(p, ",\"confidence\":%.3f}", gm->exit_conf[o]);
			else
				gw_prom_printf(p, ",\"confidence\":null}");
		}
		gw_prom_printf(p, "]}");
	}
	gw_prom_printf(p, "]}\n");
}

int
gw_http_render(void *ctx, const char *path, char *buf, size_t cap, size_t *len,
	       const char **ctype)
{
	struct gw *g = ctx;
	struct gw_prom p = { .buf = buf, .cap = cap };

	if (strcmp(path, "/metrics") == 0) {
		pthread_mutex_lock(&g->gen_mu);	/* a reload frees the old generation */
		gw_render_metrics(g, &p);
		pthread_mutex_unlock(&g->gen_mu);
		*ctype = "text/plain; version=0.0.4";
	} else if (strcmp(path, "/healthz") == 0) {
		gw_prom_printf(&p, "ok\n");
		*ctype = "text/plain";
	} else if (strcmp(path, "/v1/models") == 0) {
		pthread_mutex_lock(&g->gen_mu);
		gw_render_models(g, &p);
		pthread_mutex_unlock(&g->gen_mu);
		*ctype = "application/json";
	} else {
		gw_prom_printf(&p, "not found\n");
		*ctype = "text/plain";
		*len = p.len;
		return 404;
	}
	if (p.overflow) {
		*len = 0;
		return 500;
	}
	*len = p.len;
	return 200;
}

