/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's event loop (bench/run.c) against a fake gateway: a thread on a loopback UDP
 * socket that speaks enough of the protocol (HELLO_REPLY with a one-entry catalog, chunk
 * reassembly, NACK, RESPONSE, ERROR) and misbehaves on demand: it ignores first HELLOs, loses
 * a chunk and NACKs it, ignores first sends (the timer must resend), or forgets sessions
 * (UNKNOWN_SESSION: re-HELLO), or serves two variants and advises the second. Inputs are
 * synthetic (no model needed): 3-chunk f32 tensors.
 * Also: a phase allocates nothing (malloc counted on the bench's thread; skipped under ASan).
 */
#include "bench/bench.h"
#include "tests/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- counting allocations of this thread (glibc's own underneath) ---- */

#if defined(__SANITIZE_ADDRESS__)
#define RUN_ASAN 1
#else
#define RUN_ASAN 0
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static _Thread_local int counting;
static atomic_ulong n_alloc;

void *
malloc(size_t n)
{
	if (counting)
		atomic_fetch_add(&n_alloc, 1);
	return __libc_malloc(n);
}

void *
calloc(size_t n, size_t size)
{
	if (counting)
		atomic_fetch_add(&n_alloc, 1);
	return __libc_calloc(n, size);
}

void *
realloc(void *p, size_t n)
{
	if (counting)
		atomic_fetch_add(&n_alloc, 1);
	return __libc_realloc(p, n);
}
#endif

/* ---- the fake gateway ---- */

enum {
	FK_DEVICES = 64,		/* client state slots: client id & 0xFFFFF (base has low bits 0) */
	FK_CLASS = 3,			/* every answer's top-1 */
	FK_DIMS = 784,			/* f32 [1,1,28,28]: 3136 bytes, 3 chunks at 1472 */
};

enum fk_mode {
	FK_LOSE_HELLO = 1,		/* ignore each client's first HELLO */
	FK_NACK = 2,			/* lose chunk 1 of each request's first send; NACK it */
	FK_SILENT = 4,			/* ignore chunks not flagged RETRANSMIT */
	FK_FORGET = 8,			/* the first chunk a client sends: UNKNOWN_SESSION, new id */
	FK_PENDING = 32,		/* a request's first complete send: PENDING; the resend
					 * its timer makes: the answer */
	FK_MOVED = 16,			/* the first chunk: path_unverified; the session is served
					 * again once a HELLO echoed the challenge's token */
	FK_VARIANTS = 64,		/* the catalog lists variant 1 (80%) beside variant 0
					 * (90%) at split 0; every answer advises variant 1 */
};

struct fk_client {
	bool hello_seen, forgot, moved, token_ok;
	uint64_t session;
	uint32_t req;
	uint64_t got;			/* chunks received, bit per index */
	bool lost1, done, pended;
};

struct fk {
	int fd;
	uint16_t port;
	unsigned mode;
	atomic_bool stop;
	pthread_t th;
	struct fk_client cl[FK_DEVICES];
	unsigned responses, nacks_sent, errors_sent;
	atomic_uint by_variant[2];	/* answers by the variant the request named */
};

static void
fk_send(struct fk *g, const struct sockaddr_in *to, const uint8_t *b, int n)
{
	if (n > 0)
		(void)sendto(g->fd, b, (size_t)n, 0, (const struct sockaddr *)to, sizeof(*to));
}

static void
fk_hello(struct fk *g, struct fk_client *c, const struct proto_msg *m,
	 const struct sockaddr_in *from)
{
	struct proto_hdr h = { .client_id = m->h.client_id, .request_id = m->h.request_id };
	struct proto_hello_reply r = { .session_ttl_ms = 60000, .max_msg_bytes = 1 << 20,
				       .max_dgram = 1472, .max_chunks = 1024, .max_inflight = 16,
				       .nack_gap_ms = 2, .reasm_timeout_ms = 1000,
				       .catalog_total = 1, .catalog_count = 1 };
	struct proto_catalog_entry e[2] = { { .model_id = 1, .split_id = 0, .ndim = 4,
					 .dtype_mask = 0x1e, .n_classes = 10, .dims = { 1, 1, 28, 28 },
					 .tail_us = 1000, .accuracy_bp = 9000, .n_exits = 1,
					 .name = "fake" } };
	uint8_t buf[PROTO_HELLO_MIN_DGRAM];

	if (g->mode & FK_VARIANTS) {
		e[1] = e[0];
		e[1].variant_id = 1;
		e[1].accuracy_bp = 8000;
		r.catalog_total = r.catalog_count = 2;
	}
	if ((g->mode & FK_LOSE_HELLO) && !c->hello_seen) {
		c->hello_seen = true;
		return;
	}
	if (c->session == 0)
		c->session = 0x5E55000000000000ull | m->h.client_id;
	h.session_id = c->session;
	if (c->moved && !c->token_ok) {
		uint32_t tok = 0x70000000u | m->h.client_id;

		c->token_ok = m->h.session_id == c->session && m->u.hello.path_token == tok;
		if (!c->token_ok) {
			r.path_token = tok;
			r.catalog_count = 0;
		}
	}
	fk_send(g, from, buf, proto_encode_hello_reply(buf, sizeof(buf), &h, &r, e));
}

static void
fk_respond(struct fk *g, const struct proto_msg *m, const struct sockaddr_in *from)
{
	struct proto_hdr h = m->h;
	struct proto_response r = { .status = PROTO_ST_OK, .result_kind = PROTO_RES_TOPK,
				    .exit_taken = 0, .advice_variant = PROTO_NONE,
				    .advice_split = PROTO_NONE, .batch_size = 1, .queue_us = 50,
				    .compute_us = 50 };
	struct proto_topk t = { .class_id = FK_CLASS, .score = 1 };
	uint8_t scratch[8], buf[512];

	h.flags = 0;
	memset(h.mac, 0, sizeof(h.mac));	/* the request's seal is not ours */
	r.c.model_id = m->u.req.c.model_id;
	r.c.variant_id = m->u.req.c.variant_id;
	r.c.split_id = m->u.req.c.split_id;
	r.c.count = 1;
	if (g->mode & FK_VARIANTS) {
		r.advice_variant = 1;
		r.advice_split = 0;
	}
	atomic_fetch_add(&g->by_variant[m->u.req.c.variant_id & 1], 1);
	proto_response_set_topk(&r, scratch, &t, 1);
	fk_send(g, from, buf, proto_encode_response(buf, sizeof(buf), &h, &r));
	g->responses++;
}

/* A RESPONSE with no result: status st, reason why. */
static void
fk_respond_status(struct fk *g, const struct proto_msg *m, const struct sockaddr_in *from,
		  unsigned st, unsigned why)
{
	struct proto_hdr h = m->h;
	struct proto_response r = { .status = (uint8_t)st, .reason = (uint8_t)why,
				    .exit_taken = PROTO_NONE, .advice_variant = PROTO_NONE,
				    .advice_split = PROTO_NONE };
	uint8_t buf[512];

	h.flags = 0;
	memset(h.mac, 0, sizeof(h.mac));	/* the request's seal is not ours */
	r.c.model_id = m->u.req.c.model_id;
	r.c.split_id = m->u.req.c.split_id;
	r.c.count = 1;
	r.c.t.scale = 1.0f;
	fk_send(g, from, buf, proto_encode_response(buf, sizeof(buf), &h, &r));
}

static void
fk_request(struct fk *g, struct fk_client *c, const struct proto_msg *m,
	   const uint8_t *dg, size_t len, const struct sockaddr_in *from)
{
	const struct proto_chunk *ch = &m->u.req.c;
	uint8_t buf[PROTO_HELLO_MIN_DGRAM];
	uint64_t all = ch->count >= 64 ? ~0ull : (1ull << ch->count) - 1;

	if ((g->mode & FK_FORGET) && !c->forgot) {
		c->forgot = true;
		c->session++;	/* the device must HELLO again to learn it */
	}
	if ((g->mode & FK_MOVED) && !c->moved)
		c->moved = true;
	if (c->moved && !c->token_ok) {
		fk_send(g, from, buf, proto_error_reply(buf, sizeof(buf), dg, len,
							PROTO_ST_UNKNOWN_SESSION,
							PROTO_E_PATH_UNVERIFIED));
		return;
	}
	if (m->h.session_id != c->session) {
		fk_send(g, from, buf, proto_error_reply(buf, sizeof(buf), dg, len,
							PROTO_ST_UNKNOWN_SESSION, PROTO_OK));
		g->errors_sent++;
		return;
	}
	if ((g->mode & FK_SILENT) && !(m->h.flags & PROTO_F_RETRANSMIT))
		return;
	if (c->req != m->h.request_id) {
		c->req = m->h.request_id;
		c->got = 0;
		c->lost1 = c->done = c->pended = false;
	}
	if (c->done)
		return;	/* late: as the gateway, dropped */
	if ((g->mode & FK_NACK) && ch->index == 1 && !c->lost1) {
		c->lost1 = true;
		return;
	}
	c->got |= 1ull << ch->index;
	if (c->got == all && (g->mode & FK_PENDING) && !c->pended) {
		c->pended = true;
		c->got = 0;	/* the timer's resend completes it again */
		fk_respond_status(g, m, from, PROTO_ST_PENDING, PROTO_E_PENDING);
	} else if (c->got == all) {
		c->done = true;
		fk_respond(g, m, from);
	} else if (ch->index == ch->count - 1) {
		struct proto_hdr h = m->h;
		struct proto_nack n;

		h.flags = 0;
		memset(h.mac, 0, sizeof(h.mac));
		if (proto_nack_from_bitmap(&n, &c->got, ch->count, 8) > 0) {
			fk_send(g, from, buf, proto_encode_nack(buf, sizeof(buf), &h, &n));
			g->nacks_sent++;
		}
	}
}

static void *
fk_main(void *arg)
{
	struct fk *g = arg;
	uint8_t dg[2048];

	while (!atomic_load(&g->stop)) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(g->fd, dg, sizeof(dg), 0, (struct sockaddr *)&from, &fl);
		struct proto_msg m;
		struct fk_client *c;

		if (n <= 0 || proto_decode(dg, (size_t)n, NULL, &m, NULL) != PROTO_OK)
			continue;
		c = &g->cl[(m.h.client_id & 0xFFFFF) % FK_DEVICES];
		if (m.h.type == PROTO_T_HELLO)
			fk_hello(g, c, &m, &from);
		else if (m.h.type == PROTO_T_REQUEST)
			fk_request(g, c, &m, dg, (size_t)n, &from);
	}
	return NULL;
}

static int
fk_start(struct fk *g, unsigned mode)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_usec = 20000 };
	socklen_t al = sizeof(a);

	memset(g, 0, sizeof(*g));
	g->mode = mode;
	g->fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (g->fd < 0 || bind(g->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(g->fd, (struct sockaddr *)&a, &al) < 0 ||
	    setsockopt(g->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	/* Deep enough that a descheduled fake loses nothing (it NACKs only on a last chunk). */
	if (setsockopt(g->fd, SOL_SOCKET, SO_RCVBUFFORCE, &(int){ 8 << 20 }, sizeof(int)) < 0)
		(void)setsockopt(g->fd, SOL_SOCKET, SO_RCVBUF, &(int){ 8 << 20 }, sizeof(int));
	g->port = ntohs(a.sin_port);
	return -pthread_create(&g->th, NULL, fk_main, g);
}

static void
fk_stop(struct fk *g)
{
	atomic_store(&g->stop, true);
	pthread_join(g->th, NULL);
	close(g->fd);
}

/* ---- synthetic inputs: 8 "images" at split 0, f32, 3 chunks each ---- */

static struct bench_inputs *
fake_inputs(uint8_t variant)
{
	struct bench_inputs *in = calloc(1, sizeof(*in));
	static float x[FK_DIMS];
	uint8_t out[8192];
	struct proto_dgram dg[8];

	if (in == NULL)
		return NULL;
	in->n_items = 8;
	in->labels = calloc(8, sizeof(*in->labels));
	in->msg[0][PROTO_DT_F32] = calloc(8, sizeof(struct bench_msg));
	in->split_mask = 1;
	in->dtype_mask = 1u << PROTO_DT_F32;
	in->max_dgram = 1472;
	in->dg = calloc(64, sizeof(*in->dg));
	in->arena = malloc(8 * sizeof(out));
	if (in->labels == NULL || in->msg[0][PROTO_DT_F32] == NULL || in->dg == NULL ||
	    in->arena == NULL)
		goto fail;
	for (unsigned i = 0; i < 8; i++) {
		struct proto_hdr h = { .client_id = 1, .request_id = 1, .session_id = 1 };
		struct proto_request rq = { .top_k = 1 };
		unsigned n = 0;

		uint64_t st = 0x9E3779B97F4A7C15ull * (i + 1);

		for (unsigned k = 0; k < FK_DIMS; k++) {	/* random bits: LZ4 cannot shrink */
			st ^= st << 13;
			st ^= st >> 7;
			st ^= st << 17;
			x[k] = (float)(st >> 40) / 65536.0f;
		}
		rq.c.model_id = 1;
		rq.c.variant_id = variant;
		rq.c.t = (struct proto_tensor){ .dtype = PROTO_DT_F32, .ndim = 4,
						.dims = { 1, 1, 28, 28 },
						.raw_total = FK_DIMS * 4, .scale = 1 };
		if (proto_request_chunk(&h, &rq, x, 1472, true, out, sizeof(out), dg, 8, &n) < 0)
			goto fail;
		in->msg[0][PROTO_DT_F32][i] = (struct bench_msg){ .first_dg = (uint32_t)in->n_dg,
							       .n_dg = (uint16_t)n,
							       .offline = FK_CLASS };
		in->labels[i] = i % 2 ? FK_CLASS : 0;
		for (unsigned k = 0; k < n; k++) {
			memcpy(in->arena + in->arena_len, dg[k].data, dg[k].len);
			in->dg[in->n_dg++] = (struct bench_dgram_ref){ .off = in->arena_len,
								    .len = dg[k].len };
			in->arena_len += dg[k].len;
		}
		in->max_chunks = (uint16_t)(n > in->max_chunks ? n : in->max_chunks);
		if (n != 3)
			goto fail;	/* the tests count on 3 chunks per request */
	}
	return in;
fail:
	bench_inputs_free(in);
	return NULL;
}

/*
 * One run: n_dev devices, requests at rate (0: closed loop of 4), against a fake in mode,
 * request timer timer_ms (long where only NACKs may recover: this machine is shared, and a
 * descheduled fake must not make a timer fire).
 */
static void
run_against(unsigned mode, unsigned n_dev, double rate, uint64_t requests, uint32_t timer_ms,
	    const struct bench_impair *imp, struct bench_results *res, struct fk *g, bool count_allocs)
{
	struct bench_inputs *in = fake_inputs(0);
	struct bench_config cfg = { .model_id = 1, .n_devices = n_dev, .seed = 5, .retries = 3,
				 .timer_ms = timer_ms, .hello_rate = 20000, .in = in };
	struct bench_run *r = NULL;
	struct tg_err err = { 0 };

	TH_CHECK(in != NULL);
	TH_CHECK(bench_results_init(res) == 0);
	TH_CHECK(fk_start(g, mode) == 0);
	if (in == NULL)
		return;
	if (imp != NULL)
		cfg.impair = *imp;
	bench_mix_default(&cfg.mix);
	TH_CHECK(bench_mix_parse(&cfg.mix, "split=0;dtype=f32;uplink=0,200mbps;deadline=1s", NULL) == 0);
	cfg.gw_ip = htonl(INADDR_LOOPBACK);
	cfg.gw_port = g->port;
	TH_CHECK_MSG(bench_run_create(&r, &cfg, &err) == 0, "%s", err.msg);
	if (r != NULL) {
#if !RUN_ASAN
		atomic_store(&n_alloc, 0);
		counting = count_allocs;
#endif
		TH_CHECK_MSG(bench_run_phase(r, rate, rate > 0 ? 0 : 4, 0, 0, requests, 2, res,
					  &err) == 0, "%s", err.msg);
#if !RUN_ASAN
		counting = 0;
#endif
	}
	(void)count_allocs;
	bench_run_free(r);
	fk_stop(g);
	bench_inputs_free(in);
}

static void
check_all_ok(const struct bench_results *res, uint64_t n)
{
	TH_CHECK_MSG(res->scheduled == n && res->ok == n, "%llu scheduled, %llu OK",
		     (unsigned long long)res->scheduled, (unsigned long long)res->ok);
	TH_CHECK(res->gave_up == 0 && res->unfinished == 0);
	TH_CHECK(res->agree == res->ok);
	TH_CHECK(res->lat_us.total == (int64_t)n);
}

static void
test_run_plain_answers_everything_without_allocating(void)
{
	struct bench_results res;
	struct fk g;

	run_against(0, 40, 2000, 300, 5000, NULL, &res, &g, true);
	check_all_ok(&res, 300);
	TH_CHECK_MSG(res.chunks_resent == 0 && res.timer_fires == 0 && res.nacks == 0,
		     "%llu resent, %llu timer fires, %llu NACKs", (unsigned long long)res.chunks_resent,
		     (unsigned long long)res.timer_fires, (unsigned long long)res.nacks);
	TH_CHECK(res.chunks_sent == 300 * 3);
	TH_CHECK(res.correct * 4 > res.ok && res.correct * 4 < res.ok * 3);	/* half labels */
#if RUN_ASAN
	TH_SKIP("AddressSanitizer replaces malloc: allocations not counted");
#else
	TH_CHECK_MSG(atomic_load(&n_alloc) == 0, "%lu allocations in the phase",
		     atomic_load(&n_alloc));
#endif
	bench_results_fini(&res);
}

static void
test_run_lost_hellos_are_retried(void)
{
	struct bench_results res;
	struct fk g;

	run_against(FK_LOSE_HELLO, 20, 1000, 50, 5000, NULL, &res, &g, false);
	check_all_ok(&res, 50);
	bench_results_fini(&res);
}

static void
test_run_nacked_chunks_are_resent(void)
{
	struct bench_results res;
	struct fk g;

	run_against(FK_NACK, 20, 1000, 100, 5000, NULL, &res, &g, false);
	check_all_ok(&res, 100);
	TH_CHECK_MSG(res.nacks == 100 && res.chunks_resent == 100, "%llu NACKs, %llu resent",
		     (unsigned long long)res.nacks, (unsigned long long)res.chunks_resent);
	TH_CHECK(res.timer_fires == 0);
	bench_results_fini(&res);
}

static void
test_run_timer_resends_whole_request(void)
{
	struct bench_results res;
	struct fk g;

	run_against(FK_SILENT, 20, 0, 40, 30, NULL, &res, &g, false);	/* closed loop */
	check_all_ok(&res, 40);
	TH_CHECK_MSG(res.timer_fires >= 40 && res.chunks_resent == 3 * res.timer_fires,
		     "%llu timer fires, %llu resent", (unsigned long long)res.timer_fires,
		     (unsigned long long)res.chunks_resent);
	/* Latency counts the 30 ms timer each request waited. */
	TH_CHECK(bench_hdr_value_at(&res.lat_us, 0) >= 30000);
	bench_results_fini(&res);
}

static void
test_run_unknown_session_rehellos(void)
{
	struct bench_results res;
	struct fk g;

	run_against(FK_FORGET, 10, 500, 60, 5000, NULL, &res, &g, false);
	check_all_ok(&res, 60);
	TH_CHECK_MSG(res.rehellos >= 1 && res.rehellos <= 10, "%llu re-HELLOs",
		     (unsigned long long)res.rehellos);
	bench_results_fini(&res);
}

/* NAT rebinding: path_unverified, a re-HELLO challenged, its token echoed, served. */
static void
test_run_path_challenge_followed(void)
{
	struct bench_results res;
	struct fk g;

	run_against(FK_MOVED, 10, 500, 60, 5000, NULL, &res, &g, false);
	check_all_ok(&res, 60);
	TH_CHECK_MSG(res.path_challenges >= 1 && res.path_challenges <= 10,
		     "%llu path challenges", (unsigned long long)res.path_challenges);
	bench_results_fini(&res);
}

/* PENDING: not an answer, not a resend; the timer's resend gets the answer. */
static void
test_run_pending_waits_for_the_answer(void)
{
	struct bench_results res;
	struct fk g;

	run_against(FK_PENDING, 10, 500, 40, 30, NULL, &res, &g, false);
	check_all_ok(&res, 40);
	TH_CHECK_MSG(res.pendings == 40 && res.timer_fires >= 40, "%llu PENDING, %llu timer fires",
		     (unsigned long long)res.pendings, (unsigned long long)res.timer_fires);
	TH_CHECK(res.status[PROTO_ST_PENDING] == 0);	/* never counted as an answer */
	bench_results_fini(&res);
}

static void
test_run_impaired_chunks_still_answered(void)
{
	struct bench_impair imp = { .drop = 0.05, .dup = 0.05, .reorder = 0.05 };
	struct bench_results res;
	struct fk g;

	run_against(0, 20, 1000, 200, 100, &imp, &res, &g, false);
	check_all_ok(&res, 200);
	TH_CHECK(res.dropped > 0 && res.duped > 0 && res.reordered > 0);
	TH_CHECK(res.chunks_resent >= res.dropped);
	bench_results_fini(&res);
}

/* One closed-loop phase of n requests; the fake's per-variant count restarts. */
static void
variants_phase(struct bench_run *r, struct fk *g, uint64_t n, struct bench_results *res)
{
	struct tg_err err = { 0 };

	atomic_store(&g->by_variant[0], 0);
	atomic_store(&g->by_variant[1], 0);
	TH_CHECK_MSG(bench_run_phase(r, 0, 4, 0, 0, n, 2, res, &err) == 0, "%s", err.msg);
	check_all_ok(res, n);
	TH_CHECK(res->other_variant == 0);	/* each answer names the variant asked */
}

/*
 * Another variant's inputs (bench_run_add_inputs): the catalog says what is served and at
 * what accuracy; --follow-advice moves devices to the advised variant; bench_run_fix() (the
 * oracle's runs) sends every request from the fixed (variant, split), and back.
 */
static void
test_run_variants_followed_and_fixed(void)
{
	struct bench_inputs *in0 = fake_inputs(0), *in1 = fake_inputs(1);
	struct bench_class cls = { .name = "floor", .floor_bp = 7000 };
	struct bench_config cfg = { .model_id = 1, .n_devices = 8, .seed = 5, .retries = 3,
				    .timer_ms = 5000, .hello_rate = 20000, .in = in0,
				    .classes = &cls, .n_classes = 1, .follow_advice = true };
	const struct bench_class_stats *st;
	struct bench_results res;
	struct bench_run *r = NULL;
	struct tg_err err = { 0 };
	struct fk g;

	TH_CHECK(in0 != NULL && in1 != NULL && bench_results_init(&res) == 0);
	TH_CHECK(fk_start(&g, FK_VARIANTS) == 0);
	bench_mix_default(&cfg.mix);
	TH_CHECK(bench_mix_parse(&cfg.mix, "split=0;dtype=f32;uplink=0;deadline=1s", NULL) == 0);
	cfg.gw_ip = htonl(INADDR_LOOPBACK);
	cfg.gw_port = g.port;
	if (in0 != NULL && in1 != NULL)
		TH_CHECK_MSG(bench_run_create(&r, &cfg, &err) == 0, "%s", err.msg);
	if (r == NULL)
		goto out;
	TH_CHECK(bench_run_catalog(r, 0, 0) == 9000 && bench_run_catalog(r, 1, 0) == 8000);
	TH_CHECK(bench_run_catalog(r, 2, 0) == -1 && bench_run_catalog(r, 1, 1) == -1);
	TH_CHECK(bench_run_has(r, 0, 0) && !bench_run_has(r, 1, 0));
	TH_CHECK(bench_run_add_inputs(r, 0, in1, &err) == -EINVAL);	/* the run's own */
	TH_CHECK(bench_run_add_inputs(r, 2, in1, &err) == -EINVAL);	/* not served */
	TH_CHECK_MSG(bench_run_add_inputs(r, 1, in1, &err) == 0, "%s", err.msg);
	TH_CHECK(bench_run_has(r, 1, 0));

	variants_phase(r, &g, 40, &res);	/* advice followed: the first 8 from variant 0 */
	st = bench_run_class(r, 0);
	TH_CHECK_MSG(st->by_split[1][0] >= 40 - 8 && st->by_split[0][0] + st->by_split[1][0] == 40,
		     "%llu from variant 0, %llu from variant 1",
		     (unsigned long long)st->by_split[0][0], (unsigned long long)st->by_split[1][0]);
	TH_CHECK(atomic_load(&g.by_variant[1]) == st->by_split[1][0]);
	TH_CHECK(bench_run_fix(r, 0, 1) == -EINVAL);	/* not built, not served */
	TH_CHECK(bench_run_fix(r, 2, 0) == -EINVAL);
	TH_CHECK(bench_run_fix(r, 0, 0) == 0);
	variants_phase(r, &g, 20, &res);
	TH_CHECK(bench_run_class(r, 0)->by_split[0][0] == 20 && atomic_load(&g.by_variant[1]) == 0);
	TH_CHECK(bench_run_fix(r, 1, 0) == 0);
	variants_phase(r, &g, 20, &res);
	TH_CHECK(bench_run_class(r, 0)->by_split[1][0] == 20 && atomic_load(&g.by_variant[0]) == 0);
	TH_CHECK(bench_run_fix(r, 0, -1) == 0);	/* back to the advice: variant 1 */
	variants_phase(r, &g, 20, &res);
	TH_CHECK(bench_run_class(r, 0)->by_split[1][0] == 20);
out:
	bench_run_free(r);
	fk_stop(&g);
	bench_results_fini(&res);
	bench_inputs_free(in0);
	bench_inputs_free(in1);
}

int
main(void)
{
	TH_RUN(test_run_plain_answers_everything_without_allocating);
	TH_RUN(test_run_lost_hellos_are_retried);
	TH_RUN(test_run_nacked_chunks_are_resent);
	TH_RUN(test_run_timer_resends_whole_request);
	TH_RUN(test_run_unknown_session_rehellos);
	TH_RUN(test_run_path_challenge_followed);
	TH_RUN(test_run_pending_waits_for_the_answer);
	TH_RUN(test_run_impaired_chunks_still_answered);
	TH_RUN(test_run_variants_followed_and_fixed);
	TH_DONE();
}
