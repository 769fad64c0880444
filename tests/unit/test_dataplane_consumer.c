/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dataplane's consumer API while the RX lcore runs (dp_start()): the deliver hook gets
 * completed requests in bursts on the RX lcore and may answer them there; the catalog is
 * replaced while serving (a HELLO_REPLY lists the old or the new one, whole) without
 * dp_stop(); dp_synchronize() returns while the lcore runs; dp_stop() sends every answer
 * posted before it; dp_set_deliver() and dp_set_busy_hint() refuse while running; with the
 * consumer's busy hint the lcore sleeps while the consumer computes (never with a message
 * open), and an answer still wakes it.
 */
#include "tests/harness.h"
#include "dataplane/dp_testkit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

enum { GW_PORT = PROTO_PORT, MAX_DGRAM = 1472, N_REQ = 6 };

static struct dptk_port port;
static struct dp *dp;
static uint8_t rbuf[DPTK_MAX_FRAME];

/* What the hook saw: requests held for the test thread to answer, or answered at once. */
static struct dp_req *_Atomic held[64];
static atomic_uint n_held, n_calls, n_answered_in_hook;
static atomic_bool answer_in_hook;

static void
hook(void *ctx, struct dp_req **reqs, unsigned n)
{
	TH_CHECK(ctx == &port && n >= 1 && n <= 32);
	atomic_fetch_add(&n_calls, 1);
	for (unsigned i = 0; i < n; i++) {
		if (atomic_load(&answer_in_hook)) {
			reqs[i]->resp.status = PROTO_ST_OVERLOADED;
			reqs[i]->resp.reason = PROTO_E_QUEUE_FULL;
			atomic_fetch_add(&n_answered_in_hook, 1);
			dp_req_respond(reqs[i]);
			continue;
		}
		held[atomic_fetch_add(&n_held, 1) % 64] = reqs[i];
	}
}

/* The busy hint: what it answers (ns), and how often the lcore asked. */
static _Atomic uint64_t busy_ns;
static atomic_uint busy_asked;

static uint64_t
busy(void *ctx)
{
	TH_CHECK(ctx == &port);
	atomic_fetch_add(&busy_asked, 1);
	return atomic_load(&busy_ns);
}

static void
sleep_ms(unsigned ms)
{
	struct timespec t = { 0, (long)ms * 1000000L };

	nanosleep(&t, NULL);
}

/* Wait (at most ms) for a UDP datagram from the gateway; decode it. */
static bool
reply(struct proto_msg *out, unsigned ms)
{
	for (unsigned i = 0; i <= ms; i++) {
		int n = dptk_take_udp(&port, rbuf, sizeof(rbuf), NULL);

		if (n >= 0)
			return proto_decode(rbuf, (size_t)n, NULL, out, NULL) == PROTO_OK;
		sleep_ms(1);
	}
	return false;
}

static bool
hello(uint32_t client, struct proto_msg *r)
{
	static uint8_t buf[PROTO_HELLO_MIN_DGRAM + 64];
	struct proto_hdr h = { .client_id = client, .request_id = 77 };
	struct proto_hello m = { .max_dgram = MAX_DGRAM };
	int n = proto_encode_hello(buf, sizeof(buf), &h, &m, PROTO_HELLO_MIN_DGRAM);

	if (n < 0 || dptk_send(&port, (uint16_t)(40000 + client), GW_PORT, buf, (size_t)n) != 0)
		return false;
	return reply(r, 2000) && r->h.type == PROTO_T_HELLO_REPLY;
}

/* One single-chunk request of model 7 in client's session. */
static bool
request(uint32_t client, uint64_t session, uint32_t id)
{
	static uint8_t raw[64], out[2048];
	struct proto_hdr h = { .client_id = client, .request_id = id, .session_id = session };
	struct proto_request rq;
	struct proto_dgram dg[2];
	unsigned n;

	memset(&rq, 0, sizeof(rq));
	rq.c.model_id = 7;
	rq.c.t.dtype = PROTO_DT_RAW;
	rq.c.t.raw_total = sizeof(raw);
	rq.c.t.scale = 1.0f;
	if (proto_request_chunk(&h, &rq, raw, MAX_DGRAM, false, out, sizeof(out), dg, 2, &n) != 0)
		return false;
	return dptk_send(&port, (uint16_t)(40000 + client), GW_PORT, dg[0].data, dg[0].len) == 0;
}

/* Chunk k (0 or 1) of a two-chunk request of model 7 in client's session. */
static bool
request_chunk(uint32_t client, uint64_t session, uint32_t id, unsigned k)
{
	static uint8_t raw[2000], out[4096];
	struct proto_hdr h = { .client_id = client, .request_id = id, .session_id = session };
	struct proto_request rq;
	struct proto_dgram dg[4];
	unsigned n;

	memset(&rq, 0, sizeof(rq));
	rq.c.model_id = 7;
	rq.c.t.dtype = PROTO_DT_RAW;
	rq.c.t.raw_total = sizeof(raw);
	rq.c.t.scale = 1.0f;
	if (proto_request_chunk(&h, &rq, raw, MAX_DGRAM, false, out, sizeof(out), dg, 4, &n) != 0 ||
	    n != 2)
		return false;
	return dptk_send(&port, (uint16_t)(40000 + client), GW_PORT, dg[k].data, dg[k].len) == 0;
}

static void
test_hook_refused_while_running(void)
{
	TH_CHECK(dp_set_deliver(dp, hook, &port) == -EBUSY);
	TH_CHECK(dp_set_busy_hint(dp, busy, &port) == -EBUSY);
}

/* The catalog changes while the lcore runs; the next HELLO_REPLY lists the new one whole. */
static void
test_catalog_swapped_while_running(void)
{
	struct proto_catalog_entry e[3] = {
		{ .model_id = 1, .split_id = 0, .dtype_mask = 2, .name = "a" },
		{ .model_id = 2, .split_id = 3, .dtype_mask = 2, .name = "b" },
		{ .model_id = 3, .split_id = 4, .dtype_mask = 2, .name = "c" },
	};
	struct proto_catalog_entry got;
	struct proto_msg r;

	TH_CHECK(hello(1, &r) && r.u.hello_reply.catalog_gen == 1 &&
		 r.u.hello_reply.catalog_total == 1);
	TH_CHECK(dp_catalog_set(dp, e, 3, 2, NULL) == 0);
	TH_CHECK(hello(2, &r) && r.u.hello_reply.catalog_gen == 2 &&
		 r.u.hello_reply.catalog_total == 4);
	proto_catalog_get(&r.u.hello_reply, 2, &got);
	TH_CHECK(got.model_id == 3 && strcmp(got.name, "c") == 0);
	/* Many swaps in a row: each returns (the lcore passes quiescent states). */
	for (uint32_t g = 3; g < 200; g++)
		TH_CHECK(dp_catalog_set(dp, e, 1 + g % 3, g, NULL) == 0);
	dp_synchronize(dp);
	TH_CHECK(hello(3, &r) && r.u.hello_reply.catalog_gen == 199 &&
		 r.u.hello_reply.catalog_total == 1 + 199 % 3 + 1);
}

/* Completed requests reach the hook on the RX lcore; answers from any thread go out. */
static void
test_hook_gets_requests(void)
{
	struct dp_stats a, b;
	struct proto_msg r;
	uint64_t sid;

	TH_CHECK(hello(10, &r));
	sid = r.h.session_id;
	dp_stats_get(dp, &a);
	for (uint32_t i = 0; i < N_REQ; i++)
		TH_CHECK(request(10, sid, 100 + i));
	for (unsigned i = 0; i < 2000 && atomic_load(&n_held) < N_REQ; i++)
		sleep_ms(1);
	TH_CHECK(atomic_load(&n_held) == N_REQ && atomic_load(&n_calls) >= 1);
	{
		struct dp_req *none;

		TH_CHECK(dp_req_dequeue_burst(dp, &none, 1) == 0);	/* not the ring */
	}
	for (unsigned i = 0; i < N_REQ; i++) {
		struct dp_req *q = held[i];

		TH_CHECK(q->req.c.model_id == 7 && q->hdr.client_id == 10);
		/* priv is the consumer's: written freely, the answer unaffected. */
		memset(q->priv, 0xa5, sizeof(q->priv));
		q->resp.status = PROTO_ST_UNKNOWN_MODEL;
		dp_req_respond(q);
	}
	for (unsigned i = 0; i < N_REQ; i++)
		TH_CHECK(reply(&r, 2000) && r.h.type == PROTO_T_RESPONSE &&
			 r.u.resp.status == PROTO_ST_UNKNOWN_MODEL);
	dp_stats_get(dp, &b);
	TH_CHECK(b.msgs_delivered - a.msgs_delivered == N_REQ);
	atomic_store(&n_held, 0);
}

/* A hook answering on the lcore itself (the gateway's refusals): sent in the same loop. */
static void
test_hook_answers_on_lcore(void)
{
	struct proto_msg r;

	atomic_store(&answer_in_hook, true);
	TH_CHECK(hello(11, &r));
	TH_CHECK(request(11, r.h.session_id, 1));
	TH_CHECK(reply(&r, 2000) && r.h.type == PROTO_T_RESPONSE &&
		 r.u.resp.status == PROTO_ST_OVERLOADED && r.h.request_id == 1);
	TH_CHECK(atomic_load(&n_answered_in_hook) == 1);
	atomic_store(&answer_in_hook, false);
}

/* Answers posted just before dp_stop() are sent by the stopping lcore, none left behind. */
static void
test_stop_sends_posted_answers(void)
{
	struct proto_msg r;
	struct dp_stats s;
	unsigned got = 0;
	uint64_t sid;

	TH_CHECK(hello(12, &r));
	sid = r.h.session_id;
	for (uint32_t i = 0; i < N_REQ; i++)
		TH_CHECK(request(12, sid, 200 + i));
	for (unsigned i = 0; i < 2000 && atomic_load(&n_held) < N_REQ; i++)
		sleep_ms(1);
	TH_CHECK(atomic_load(&n_held) == N_REQ);
	for (unsigned i = 0; i < N_REQ && i < atomic_load(&n_held); i++)
		dp_req_respond(held[i]);
	dp_stop(dp);
	while (dptk_take_udp(&port, rbuf, sizeof(rbuf), NULL) >= 0)
		got++;
	TH_CHECK_MSG(got == N_REQ, "%u of %u answers sent by the stop", got, N_REQ);
	dp_slots_get(dp, &got, &(unsigned){ 0 });
	TH_CHECK(got == 0);
	dp_stats_get(dp, &s);
	TH_CHECK(s.drop[DP_DROP_TX_FULL] == 0);
	TH_CHECK(dp_set_deliver(dp, NULL, NULL) == 0);
}

/* A fresh ring port and a running dataplane on it, the hook set (and the busy hint when
 * with_busy); deep sleep as given (0: the defaults). */
static int
start_dp(uint32_t deep_after_us, uint32_t deep_sleep_us, bool with_busy)
{
	struct dp_config cfg;
	struct tg_err err = { 0 };

	if (dptk_port_make(&port, 1024) != 0) {
		fprintf(stderr, "ring port unavailable\n");
		return -1;
	}
	dptk_config(&cfg, &port);
	cfg.limits.max_inflight_total = 16;
	cfg.limits.max_inflight_client = 8;
	if (deep_sleep_us != 0) {
		cfg.idle_deep_after_us = deep_after_us;
		cfg.idle_deep_sleep_us = deep_sleep_us;
	}
	if (dp_create(&dp, &cfg, &err) != 0 || dp_catalog_set(dp, NULL, 0, 1, &err) != 0 ||
	    dp_set_deliver(dp, hook, &port) != 0 ||
	    (with_busy && dp_set_busy_hint(dp, busy, &port) != 0) || dp_start(dp, &err) != 0) {
		fprintf(stderr, "dataplane: %s\n", err.msg);
		return -1;
	}
	dp_mac_get(dp, port.mac);
	return 0;
}

/*
 * Held requests, nothing open: the lcore takes its deep sleep (1 s here), and an answer
 * posted meanwhile wakes it (idle_wakes) instead of waiting out the sleep. Up to 3 rounds:
 * an answer posted in the microseconds between two sleeps is sent without a wake.
 */
static void
test_answer_wakes_deep_sleep(void)
{
	struct dp_stats a, b = { 0 };
	struct proto_msg r;
	unsigned got = 0, woken = 0;
	uint64_t sid;

	if (start_dp(1000, 1000000, false) != 0) {
		TH_CHECK(!"a dataplane with a 1 s deep sleep started");
		return;
	}
	TH_CHECK(hello(20, &r));
	sid = r.h.session_id;
	for (uint32_t round = 0; round < 3 && woken == 0; round++) {
		atomic_store(&n_held, 0);
		for (uint32_t i = 0; i < N_REQ; i++)
			TH_CHECK(request(20, sid, 300 + round * N_REQ + i));
		for (unsigned i = 0; i < 5000 && atomic_load(&n_held) < N_REQ; i++)
			sleep_ms(1);
		TH_CHECK(atomic_load(&n_held) == N_REQ);
		sleep_ms(50);	/* idle_deep_after_us is 1 ms: asleep for 1 s by now */
		dp_stats_get(dp, &a);
		for (unsigned i = 0; i < N_REQ && i < atomic_load(&n_held); i++) {
			held[i]->resp.status = PROTO_ST_UNKNOWN_MODEL;
			dp_req_respond(held[i]);
		}
		for (got = 0; got < N_REQ && reply(&r, 5000); got++)
			TH_CHECK(r.h.type == PROTO_T_RESPONSE);
		TH_CHECK_MSG(got == N_REQ, "%u of %u answers", got, N_REQ);
		dp_stats_get(dp, &b);
		woken += (unsigned)(b.idle_wakes - a.idle_wakes);
	}
	TH_CHECK_MSG(woken >= 1, "no sleep ended by an answer (idle_wakes %llu)",
		     (unsigned long long)b.idle_wakes);
	atomic_store(&n_held, 0);
	dp_stop(dp);
}

/*
 * The busy hint, on a dataplane whose deep sleep (1 s) never starts by itself (after 100 s
 * idle): while it says 0, or while a message is open (a gap to NACK), the lcore only backs
 * off as usual; while it says 10 s, the lcore sleeps (1 s, the deep sleep's length), a
 * request sent meanwhile is still delivered, and an answer posted ends the sleep (up to 3
 * rounds: one posted between two sleeps is sent without a wake).
 */
static void
test_busy_hint(void)
{
	struct dp_stats a, b = { 0 };
	struct proto_msg r;
	unsigned woken = 0, got;
	uint64_t sid;

	atomic_store(&busy_ns, 0);
	if (start_dp(100000000, 1000000, true) != 0) {
		TH_CHECK(!"a dataplane with the busy hint started");
		return;
	}
	TH_CHECK(hello(30, &r));
	sid = r.h.session_id;
	atomic_store(&n_held, 0);
	TH_CHECK(request(30, sid, 1));
	for (unsigned i = 0; i < 5000 && atomic_load(&n_held) < 1; i++)
		sleep_ms(1);
	TH_CHECK(atomic_load(&n_held) == 1);
	/* Hint 0: back-off sleeps only, and the lcore did ask. */
	dp_stats_get(dp, &a);
	atomic_store(&busy_asked, 0);
	sleep_ms(50);
	dp_stats_get(dp, &b);
	TH_CHECK_MSG(b.busy_sleeps == a.busy_sleeps, "%llu busy sleeps on a hint of 0",
		     (unsigned long long)(b.busy_sleeps - a.busy_sleeps));
	for (unsigned i = 0; i < 5000 && atomic_load(&busy_asked) == 0; i++)
		sleep_ms(1);
	TH_CHECK(atomic_load(&busy_asked) > 0);
	/* A message open: no busy sleep whatever the hint says. */
	dp_stats_get(dp, &a);
	TH_CHECK(request_chunk(30, sid, 2, 0));
	for (unsigned i = 0; i < 5000 && b.msgs_opened == a.msgs_opened; i++) {
		sleep_ms(1);
		dp_stats_get(dp, &b);
	}
	TH_CHECK(b.msgs_opened == a.msgs_opened + 1);
	atomic_store(&busy_ns, 10000000000ull);
	dp_stats_get(dp, &a);
	sleep_ms(50);
	dp_stats_get(dp, &b);
	TH_CHECK_MSG(b.busy_sleeps == a.busy_sleeps, "%llu busy sleeps with a message open",
		     (unsigned long long)(b.busy_sleeps - a.busy_sleeps));
	TH_CHECK(request_chunk(30, sid, 2, 1));
	for (unsigned i = 0; i < 5000 && atomic_load(&n_held) < 2; i++)
		sleep_ms(1);
	TH_CHECK(atomic_load(&n_held) == 2);
	while (dptk_take_udp(&port, rbuf, sizeof(rbuf), NULL) >= 0)
		;	/* the NACKs of its gap */
	/* Nothing open, hint 10 s: the lcore sleeps; a request sent meanwhile is delivered
	 * after the sleep, and answers end sleeps. */
	for (unsigned i = 0; i < 5000 && b.busy_sleeps == a.busy_sleeps; i++) {
		sleep_ms(1);
		dp_stats_get(dp, &b);
	}
	TH_CHECK_MSG(b.busy_sleeps > a.busy_sleeps, "no busy sleep on a hint of 10 s");
	TH_CHECK(request(30, sid, 3));
	for (unsigned i = 0; i < 5000 && atomic_load(&n_held) < 3; i++)
		sleep_ms(1);
	TH_CHECK_MSG(atomic_load(&n_held) == 3, "a request sent during a busy sleep delivered");
	for (uint32_t round = 0; round < 3 && woken == 0; round++) {
		unsigned h = atomic_load(&n_held);

		if (round > 0) {	/* one more held request to answer */
			TH_CHECK(request(30, sid, 10 + round));
			for (unsigned i = 0; i < 5000 && atomic_load(&n_held) == h; i++)
				sleep_ms(1);
			TH_CHECK(atomic_load(&n_held) == h + 1);
			h++;
		}
		sleep_ms(50);	/* in a busy sleep of 1 s by now */
		dp_stats_get(dp, &a);
		for (unsigned i = round == 0 ? 0 : h - 1; i < h; i++) {
			held[i]->resp.status = PROTO_ST_UNKNOWN_MODEL;
			dp_req_respond(held[i]);
		}
		for (got = 0; got < h - (round == 0 ? 0 : h - 1) && reply(&r, 5000); got++)
			TH_CHECK(r.h.type == PROTO_T_RESPONSE);
		TH_CHECK(got == h - (round == 0 ? 0 : h - 1));
		dp_stats_get(dp, &b);
		woken += (unsigned)(b.idle_wakes - a.idle_wakes);
	}
	TH_CHECK_MSG(woken >= 1, "no busy sleep ended by an answer (idle_wakes %llu)",
		     (unsigned long long)b.idle_wakes);
	atomic_store(&busy_ns, 0);
	atomic_store(&n_held, 0);
	dp_stop(dp);
}

/* The RX lcore's thread CPU clock, read from this thread: only for a queue that runs, and
 * it never goes back. */
static void
test_lcore_cpu_clock(void)
{
	uint64_t a = 0, b = 0;
	int rc = -ENOENT;

	TH_CHECK(dp_lcore_cpu_ns(dp, dp_n_queues(dp), &a) == -ENOENT);
	for (int t = 0; t < 100 && rc != 0; t++) {	/* bounded: 1 s for the loop to start */
		rc = dp_lcore_cpu_ns(dp, 0, &a);
		if (rc != 0)
			usleep(10000);
	}
	TH_CHECK_MSG(rc == 0, "rc %d", rc);
	usleep(20000);
	TH_CHECK(dp_lcore_cpu_ns(dp, 0, &b) == 0);
	TH_CHECK_MSG(b >= a && b > 0, "%llu then %llu ns", (unsigned long long)a,
		     (unsigned long long)b);
}

int
main(void)
{
	if (dptk_eal_init("dpconsumer") != 0 || start_dp(0, 0, false) != 0) {
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	TH_RUN(test_hook_refused_while_running);
	TH_RUN(test_lcore_cpu_clock);
	TH_RUN(test_catalog_swapped_while_running);
	TH_RUN(test_hook_gets_requests);
	TH_RUN(test_hook_answers_on_lcore);
	TH_RUN(test_stop_sends_posted_answers);
	dp_destroy(dp);
	dp = NULL;
	dptk_port_free(&port);

	/* Its own dataplane: a deep sleep long enough that only a wake explains a prompt
	 * answer. */
	TH_RUN(test_answer_wakes_deep_sleep);
	dp_destroy(dp);
	dptk_port_free(&port);
	TH_RUN(test_busy_hint);
	dp_destroy(dp);
	dptk_port_free(&port);
	dp_eal_cleanup();
	TH_DONE();
}
