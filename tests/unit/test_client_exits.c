/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client: early exits on the device and progressive inference (tgc_head_exits, tgc_infer)
 * with the multi-exit fixture (tests/fixtures/multiexit: exit1, exit2, final).
 *   - at every split, the head's exits answer exactly when the cheapest exit computed
 *     before the split reaches its threshold (the gateway's rule), with that exit's classes;
 *     the best (deepest) device exit is named when none is confident;
 *   - tgc_infer answers on the device when an exit is confident, sending nothing; asks the
 *     gateway otherwise (and always with NO_EARLY_EXIT); falls back to the best device exit,
 *     marked as such, when the gateway stays silent past the deadline or answers OVERLOADED;
 *     without a device exit (split 0) a silent gateway is -ETIMEDOUT.
 * The gateway is a scripted fake on 127.0.0.1 (a thread with one UDP socket).
 */
#include "client/tgc.h"
#include "proto/proto.h"
#include "util/util.h"
#include "kernels/kernels.h"
#include "tests/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FIXTURE "tests/fixtures/multiexit/"
enum { N = 16, NOUT = 3, NCLS = 10, SESSION = 0x5E55 };

static struct kern_model *model;
static float xs[N][28 * 28];
static float logits[NOUT][N][NCLS];	/* the whole model, offline */
static float th[NOUT];
static unsigned dev_split;		/* the first split with exit1 before it */

static float
softmax_top(const float *row, unsigned *cls)
{
	unsigned c = 0;
	double sum = 0;

	for (unsigned k = 1; k < NCLS; k++)
		c = row[k] > row[c] ? k : c;
	for (unsigned k = 0; k < NCLS; k++)
		sum += exp((double)row[k] - row[c]);
	*cls = c;
	return (float)(1.0 / sum);
}

static int
cmp_float(const void *a, const void *b)
{
	float p = *(const float *)a, q = *(const float *)b;

	return p < q ? -1 : p > q;
}

static int
setup(void)
{
	struct tg_tensor x = { .dtype = TG_DT_F32, .ndim = 4, .dims = { N, 1, 28, 28 },
			       .data = xs };
	struct kern_stage st = { 0 };
	struct kern_outs o = { 0 };
	struct kern_model_info mi;
	struct tg_err err = { 0 };
	unsigned seed = 11, cls;

	if (kern_model_load(FIXTURE "model.onnx", NULL, &model, &err) < 0)
		return fprintf(stderr, "setup: %s\n", err.msg), -1;
	for (unsigned i = 0; i < N; i++)
		for (unsigned k = 0; k < 28 * 28; k++) {
			seed = seed * 1103515245 + 12345;
			xs[i][k] = (float)((seed >> 16) % 1000) / 1000.f;
		}
	st.m = model;
	st.spec.kind = KERN_PLAN_TAIL;
	if (kern_stage_run(&st, N, &x, &o, &err) < 0 || o.n != NOUT)
		return fprintf(stderr, "setup: %s\n", err.msg), -1;
	for (unsigned e = 0; e < NOUT; e++) {
		float c[N];

		memcpy(logits[e], o.t[e].data, sizeof(logits[e]));
		for (unsigned i = 0; i < N; i++)
			c[i] = softmax_top(logits[e][i], &cls);
		qsort(c, N, sizeof(float), cmp_float);
		th[e] = (c[N / 2 - 1] + c[N / 2]) / 2;	/* some pass, some do not */
	}
	kern_outs_free(&o);
	kern_stage_free(&st);
	kern_model_get_info(model, &mi);
	for (dev_split = 0; dev_split < mi.n_splits; dev_split++)
		if (!kern_model_output_in_tail(model, dev_split, 0))
			break;
	return dev_split < mi.n_splits ? 0 : -1;
}

/* The exit the device must answer with at split s, sample i (PROTO_NONE: none), and the
 * deepest device exit. Outputs of the fixture are in FLOPs order: exit1, exit2, final. */
static unsigned
want_exit(unsigned s, unsigned i, unsigned *best)
{
	unsigned cls, w = PROTO_NONE;

	*best = PROTO_NONE;
	for (unsigned e = 0; e < NOUT; e++) {
		if (kern_model_output_in_tail(model, s, e))
			continue;
		*best = e;
		if (w == PROTO_NONE && softmax_top(logits[e][i], &cls) >= th[e])
			w = e;
	}
	return w;
}

static void
test_device_exits_follow_thresholds_at_every_split(void)
{
	struct kern_model_info mi;
	struct tgc_head *h = NULL;
	struct tg_err err = { 0 };
	unsigned early = 0, fallbacks = 0;

	kern_model_get_info(model, &mi);
	TH_CHECK_MSG(tgc_head_open(&h, FIXTURE "model.onnx", &err) == 0, "%s", err.msg);
	if (h == NULL)
		return;
	TH_CHECK(tgc_head_set_exit(h, "exit1", th[0], &err) == 0);
	TH_CHECK(tgc_head_set_exit(h, "exit2", th[1], &err) == 0);
	for (unsigned s = 0; s < mi.n_splits; s++)
		for (unsigned i = 0; i < N; i++) {
			struct tgc_local loc;
			struct tg_tensor t;
			unsigned best, want = want_exit(s, i, &best), e, cls;

			TH_CHECK(tgc_run_head(h, s, xs[i], 28 * 28, &t, &err) == 0);
			TH_CHECK_MSG(tgc_head_exits(h, s, 3, &loc, &err) == 0, "%s", err.msg);
			TH_CHECK_MSG(loc.exit == want && loc.best == best,
				     "split %u sample %u: exit %u best %u, want %u %u", s, i,
				     loc.exit, loc.best, want, best);
			e = want != PROTO_NONE ? want : best;
			if (e == PROTO_NONE) {
				TH_CHECK(loc.top_k == 0);
				continue;
			}
			TH_CHECK(fabsf(loc.conf - softmax_top(logits[e][i], &cls)) < 1e-3f);
			TH_CHECK(loc.top_k == 3 && loc.top[0].class_id == cls &&
				 loc.top[0].score >= loc.top[1].score &&
				 loc.top[1].score >= loc.top[2].score);
			early += want != PROTO_NONE;
			fallbacks += want == PROTO_NONE;
		}
	TH_CHECK_MSG(early > 0 && fallbacks > 0, "early %u, not %u", early, fallbacks);
	TH_CHECK(tgc_head_exits(h, 0, 3, &(struct tgc_local){ 0 }, &err) == -EINVAL);
	TH_CHECK(tgc_head_set_exit(h, "nope", 0.5f, &err) == -ENOENT && strstr(err.msg, "nope"));
	TH_CHECK(tgc_head_set_exit(h, "exit1", -1.f, &err) == -EINVAL);
	TH_CHECK(tgc_head_set_exit(h, "exit1", NAN, &err) == -EINVAL);
	tgc_head_close(h);
}

/* ---- the fake gateway ---- */

enum { FK_SILENT, FK_OVERLOADED, FK_OK };

struct fake {
	int fd, mode;
	uint16_t port;
	struct sockaddr_in peer;
	struct proto_catalog_entry cat[2];
	unsigned requests;		/* REQUEST chunks received */
	volatile int stop;
};

static int
fake_recv(struct fake *f, uint8_t *buf, size_t cap, int ms)
{
	struct pollfd pfd = { .fd = f->fd, .events = POLLIN };
	socklen_t sl = sizeof(f->peer);

	if (poll(&pfd, 1, ms) <= 0)
		return 0;
	return (int)recvfrom(f->fd, buf, cap, 0, (struct sockaddr *)&f->peer, &sl);
}

static void
fake_send(struct fake *f, const uint8_t *buf, int len)
{
	if (len > 0)
		sendto(f->fd, buf, (size_t)len, 0, (struct sockaddr *)&f->peer, sizeof(f->peer));
}

static void
fake_hello(struct fake *f, struct proto_msg *m)
{
	struct proto_hello_reply hr = { .session_ttl_ms = 60000, .max_msg_bytes = 1 << 20,
					.max_dgram = PROTO_DEFAULT_DGRAM, .max_chunks = 1024,
					.max_inflight = 8, .nack_gap_ms = 5, .reasm_timeout_ms = 200,
					.catalog_total = 2, .catalog_count = 2 };
	uint8_t out[2048];

	m->h.session_id = SESSION;
	m->h.flags = 0;
	memset(m->h.mac, 0, sizeof(m->h.mac));
	fake_send(f, out, proto_encode_hello_reply(out, sizeof(out), &m->h, &hr, f->cat));
}

/* Answer a whole request (its last chunk seen) as the mode says. */
static void
fake_answer(struct fake *f, const struct proto_msg *req)
{
	struct proto_topk e[1] = { { 7, 0.75f } };
	struct proto_response r = { .c = req->u.req.c, .status = PROTO_ST_OK, .exit_taken = 2,
				    .advice_variant = PROTO_NONE, .advice_split = PROTO_NONE,
				    .batch_size = 1 };
	struct proto_hdr h = req->h;
	uint8_t out[2048], scratch[64];

	h.flags = 0;
	memset(h.mac, 0, sizeof(h.mac));
	if (f->mode == FK_OVERLOADED) {
		r.status = PROTO_ST_OVERLOADED;	/* a refusal: no result, as PENDING's form */
		r.reason = PROTO_E_QUEUE_FULL;
		r.exit_taken = PROTO_NONE;
		r.c.index = 0;
		r.c.count = 1;
		r.c.t = (struct proto_tensor){ .dtype = PROTO_DT_RAW, .scale = 1.0f };
		r.c.raw_offset = r.c.raw_len = 0;
		r.c.payload = NULL;
		r.c.payload_len = 0;
		r.c.lz4 = false;
	} else {
		proto_response_set_topk(&r, scratch, e, 1);
	}
	int len = proto_encode_response(out, sizeof(out), &h, &r);

	if (len <= 0)
		fprintf(stderr, "  fake: response not encoded (%d)\n", len);
	fake_send(f, out, len);
}

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	uint8_t buf[2048];
	uint32_t seen = 0;

	while (!f->stop) {
		struct proto_msg m;
		int len = fake_recv(f, buf, sizeof(buf), 50);

		if (len <= 0 || proto_decode(buf, (size_t)len, NULL, &m, NULL) != PROTO_OK)
			continue;
		if (m.h.type == PROTO_T_HELLO) {
			fake_hello(f, &m);
		} else if (m.h.type == PROTO_T_REQUEST) {
			f->requests++;
			if (f->mode != FK_SILENT && m.u.req.c.index + 1 == m.u.req.c.count &&
			    m.h.request_id != seen) {
				seen = m.h.request_id;
				fake_answer(f, &m);
			}
		}
	}
	return NULL;
}

struct rig {
	struct fake f;
	pthread_t th;
	bool th_ok;
	struct tgc *c;
	struct tgc_head *h;
};

static int
rig_open(struct rig *g, int mode)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(a);
	struct tgc_config cfg = { .gateway = "127.0.0.1", .client_id = 77,
				  .request_timeout_ms = 50, .hello_timeout_ms = 1000 };
	struct tg_err err = { 0 };
	const struct kern_split *sp[2] = { kern_model_split(model, 0),
					   kern_model_split(model, dev_split) };

	memset(g, 0, sizeof(*g));
	g->f.mode = mode;
	for (unsigned k = 0; k < 2; k++) {
		struct proto_catalog_entry *e = &g->f.cat[k];

		*e = (struct proto_catalog_entry){ .model_id = 1, .split_id = (uint8_t)sp[k]->index,
						   .ndim = (uint8_t)sp[k]->ndim, .dtype_mask = 0x1e,
						   .n_classes = NCLS, .n_exits = 3, .name = "fake" };
		for (int d = 0; d < sp[k]->ndim; d++)
			e->dims[d] = (uint32_t)sp[k]->dims[d];
	}
	g->f.fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (g->f.fd < 0 || bind(g->f.fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(g->f.fd, (struct sockaddr *)&a, &sl) < 0 ||
	    pthread_create(&g->th, NULL, fake_main, &g->f) != 0)
		return -1;
	g->th_ok = true;
	g->f.port = ntohs(a.sin_port);
	cfg.port = g->f.port;
	if (tgc_open(&g->c, &cfg, &err) < 0 || tgc_head_open(&g->h, FIXTURE "model.onnx", &err) < 0) {
		fprintf(stderr, "  rig: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void
rig_close(struct rig *g)
{
	g->f.stop = 1;
	if (g->th_ok)
		pthread_join(g->th, NULL);
	tgc_close(g->c);
	tgc_head_close(g->h);
	if (g->f.fd > 0)
		close(g->f.fd);
}

/* A sample whose exit1 confidence is below th[0] (so a threshold there is not met). */
static unsigned
unsure_sample(void)
{
	unsigned cls;

	for (unsigned i = 0; i < N; i++)
		if (softmax_top(logits[0][i], &cls) < th[0])
			return i;
	return 0;
}

static void
test_infer_answers_on_the_device_when_confident(void)
{
	struct tgc_request_opts o = { .model_id = 1, .split_id = (uint8_t)dev_split,
				      .wire_dtype = TG_DT_F32, .top_k = 2, .deadline_us = 200000 };
	struct tgc_result r;
	struct tgc_stats st;
	struct tg_err err = { 0 };
	struct rig g;
	unsigned cls;

	if (rig_open(&g, FK_OK) < 0) {
		TH_CHECK(0);
		rig_close(&g);
		return;
	}
	TH_CHECK(tgc_head_set_exit(g.h, "exit1", 0.f, &err) == 0);	/* always confident */
	TH_CHECK_MSG(tgc_infer(g.c, g.h, &o, xs[0], 28 * 28, &r, &err) == 0, "%s", err.msg);
	tgc_stats(g.c, &st);
	softmax_top(logits[0][0], &cls);
	TH_CHECK(r.status == PROTO_ST_OK && r.source == TGC_SRC_DEVICE && r.exit_taken == 0 &&
		 r.top_k == 2 && r.top[0].class_id == cls && r.device_conf > 0.f);
	TH_CHECK_MSG(st.requests == 0 && st.chunks_sent == 0, "%llu requests sent",
		     (unsigned long long)st.requests);
	/* NO_EARLY_EXIT: the gateway answers, whatever the device's exits say. */
	o.req_flags = PROTO_RF_NO_EARLY_EXIT;
	TH_CHECK_MSG(tgc_infer(g.c, g.h, &o, xs[0], 28 * 28, &r, &err) == 0, "%s", err.msg);
	TH_CHECK(r.status == PROTO_ST_OK && r.source == TGC_SRC_GATEWAY && r.exit_taken == 2 &&
		 r.top[0].class_id == 7);
	/* Not confident: the gateway's answer. */
	o.req_flags = 0;
	TH_CHECK(tgc_head_set_exit(g.h, "exit1", 2.f, &err) == 0);
	TH_CHECK_MSG(tgc_infer(g.c, g.h, &o, xs[1], 28 * 28, &r, &err) == 0, "%s", err.msg);
	TH_CHECK(r.source == TGC_SRC_GATEWAY && r.exit_taken == 2 && r.top[0].class_id == 7);
	/* Each run of the head was timed and reported (tgc_head_report()), answered on the
	 * device or not. */
	{
		uint64_t mean = 0;
		uint32_t n = 0;

		TH_CHECK_MSG(tgc_head_time(g.c, 1, 0, (uint8_t)dev_split, &mean, &n) && n == 3 &&
			     mean > 0, "%u head runs reported", n);
	}
	rig_close(&g);
}

static void
test_infer_falls_back_to_the_best_device_exit(void)
{
	struct tgc_request_opts o = { .model_id = 1, .split_id = (uint8_t)dev_split,
				      .wire_dtype = TG_DT_U8, .top_k = 1, .deadline_us = 150000 };
	unsigned i = unsure_sample(), cls, best;
	struct tgc_result r;
	struct tg_err err = { 0 };
	struct rig g;

	want_exit(dev_split, i, &best);
	softmax_top(logits[best][i], &cls);
	/* A silent gateway: the deadline passes, the device answers. */
	if (rig_open(&g, FK_SILENT) == 0) {
		TH_CHECK(tgc_head_set_exit(g.h, "exit1", th[0], &err) == 0);
		TH_CHECK_MSG(tgc_infer(g.c, g.h, &o, xs[i], 28 * 28, &r, &err) == 0, "%s", err.msg);
		TH_CHECK_MSG(r.status == PROTO_ST_OK && r.source == TGC_SRC_DEVICE_FALLBACK &&
			     r.gw_status == PROTO_NONE && r.exit_taken == best &&
			     r.top[0].class_id == cls && r.chunks > 0,
			     "status %u source %u gw %u exit %u", r.status, r.source, r.gw_status,
			     r.exit_taken);
		TH_CHECK(r.total_ns >= 150000000ull);	/* it did wait for the gateway */
		TH_CHECK(g.f.requests > 0);
	} else {
		TH_CHECK(0);
	}
	rig_close(&g);
	/* OVERLOADED: the device answers at once, saying what the gateway said. */
	if (rig_open(&g, FK_OVERLOADED) == 0) {
		TH_CHECK_MSG(tgc_infer(g.c, g.h, &o, xs[i], 28 * 28, &r, &err) == 0, "%s", err.msg);
		TH_CHECK(r.status == PROTO_ST_OK && r.source == TGC_SRC_DEVICE_FALLBACK &&
			 r.gw_status == PROTO_ST_OVERLOADED && r.exit_taken == best);
	} else {
		TH_CHECK(0);
	}
	rig_close(&g);
	/* Split 0: no device exit to fall back on; a silent gateway is a timeout. */
	o.split_id = 0;
	o.deadline_us = 50000;
	if (rig_open(&g, FK_SILENT) == 0) {
		TH_CHECK(tgc_infer(g.c, g.h, &o, xs[i], 28 * 28, &r, &err) == -ETIMEDOUT);
	} else {
		TH_CHECK(0);
	}
	rig_close(&g);
}

int
main(void)
{
	if (setup() < 0) {
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	TH_RUN(test_device_exits_follow_thresholds_at_every_split);
	TH_RUN(test_infer_answers_on_the_device_when_confident);
	TH_RUN(test_infer_falls_back_to_the_best_device_exit);
	kern_model_free(model);
	TH_DONE();
}
