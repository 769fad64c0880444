/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler on a fake clock, with the real engine running the multi-exit fixture
 * (tests/fixtures/multiexit: exits exit1, exit2, final): batch formation, max delay,
 * deadline dispatch, shedding, expiry in the queue, early exits, segments merging requests
 * from different splits, and worker threads answering everything.
 */
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "tests/harness.h"
#include "tests/sched_testkit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define FIXTURE "tests/fixtures/multiexit/"
#define MS 1000000ull

static struct sched_req *done_log[512];
static unsigned n_done;
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;

static void
on_done(void *ctx, struct sched_req **r, unsigned n)
{
	(void)ctx;
	pthread_mutex_lock(&done_mu);
	for (unsigned i = 0; i < n; i++)
		if (n_done < 512)
			done_log[n_done++] = r[i];
	pthread_mutex_unlock(&done_mu);
}

static struct kern_model *model;
static struct tg_tensor x;		/* 3 input samples */
static float ref_final[3][10], ref_exit1[3][10];

static int
setup(void)
{
	struct tg_err err = { 0 };
	struct tg_tensor a = { 0 }, b = { 0 };

	if (kern_model_load(FIXTURE "model.onnx", NULL, &model, &err) < 0 ||
	    tg_npy_load(FIXTURE "input.npy", 1 << 20, &x, &err) < 0 ||
	    tg_npy_load(FIXTURE "output_2.npy", 1 << 20, &a, &err) < 0 ||
	    tg_npy_load(FIXTURE "output_0.npy", 1 << 20, &b, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	memcpy(ref_final, a.data, sizeof(ref_final));
	memcpy(ref_exit1, b.data, sizeof(ref_exit1));
	tg_tensor_free(&a);
	tg_tensor_free(&b);
	return 0;
}

static const unsigned splits_0[] = { 0 };
static const unsigned splits_0_6[] = { 0, 6 };
static const float never[3] = { 2.f, 2.f, 2.f };
static const float exit1_always[3] = { 0.f, 2.f, 2.f };

/* The batch_wait of the next make(): FIXED only in the tests of the fixed wait itself (a
 * batch waiting to fill, max_delay, a deadline before it), which need a queue that waits
 * at any load; tests/unit/test_scheduler_wait.c tests the adaptive wait. */
static enum sched_batch_wait make_wait = SCHED_WAIT_ADAPTIVE;

static struct sched *
make(const unsigned *splits, unsigned n_splits, const float *conf, unsigned max_batch,
     uint64_t max_delay, unsigned queue_cap, bool whole, bool fake)
{
	struct sched_model_cfg mc = {
		.model = model, .splits = splits, .n_splits = n_splits, .exit_conf = conf,
		.max_batch = max_batch, .max_delay_ns = max_delay,
		.default_deadline_ns = 1000 * MS, .batch_wait = make_wait,
	};
	struct sched_cfg cfg = {
		.models = &mc, .n_models = 1, .queue_cap = queue_cap, .max_inflight = 64,
		.n_workers = 1, .mode = whole ? SCHED_MODE_WHOLE : SCHED_MODE_SEGMENTS,
		.done = on_done,
		.clock = fake ? fake_clock : NULL,
	};
	struct sched *s = NULL;
	struct tg_err err = { 0 };

	n_done = 0;
	fake_now = 1000 * MS;
	make_wait = SCHED_WAIT_ADAPTIVE;
	if (sched_create(&cfg, &s, &err) < 0)
		fprintf(stderr, "sched_create: %s\n", err.msg);
	return s;
}

/* Split 0 alone, segments, no exits, a queue of 16, the fake clock, and the fixed wait. */
static struct sched *
make_fixed(unsigned max_batch, uint64_t max_delay)
{
	make_wait = SCHED_WAIT_FIXED;
	return make(splits_0, 1, never, max_batch, max_delay, 16, false, true);
}

/* All estimates of every segment to ns, so deadlines are exact on the fake clock. */
static void
fix_estimates(struct sched *s, uint64_t ns)
{
	unsigned starts[8], n = sched_segments(s, 0, starts, 8);

	for (unsigned q = 0; q < n; q++)
		for (unsigned b = 1; b <= 4096; b *= 2)
			sched_set_estimate(s, 0, q, b, ns);
}

static void
req_init(struct sched_req *r, unsigned sample, unsigned split, uint64_t deadline)
{
	memset(r, 0, sizeof(*r));
	r->split = (uint8_t)split;
	r->dtype = TG_DT_F32;
	r->data = (const float *)x.data + (size_t)sample * 784;
	r->deadline_ns = deadline;
	r->top_k = 3;
}

static unsigned
argmax10(const float *v)
{
	unsigned k = 0;

	for (unsigned i = 1; i < 10; i++)
		if (v[i] > v[k])
			k = i;
	return k;
}

static void
test_batch_leaves_when_full(void)
{
	struct sched *s = make_fixed(4, 500 * MS);
	struct sched_req r[4];
	struct sched_req *slots[4];
	struct sched_batch b = { .req = slots };
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);
	for (int i = 0; i < 3; i++) {
		req_init(&r[i], (unsigned)i, 0, 0);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
	}
	TH_CHECK(!sched_take_batch(s, 0, &b, &wake));
	TH_CHECK_MSG(wake == fake_now + 500 * MS, "wake %llu", (unsigned long long)wake);
	req_init(&r[3], 0, 0, 0);
	TH_CHECK(sched_submit(s, &r[3]) == PROTO_ST_OK);
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == 4);
	TH_CHECK(sched_run_batch(s, 0, &b) == 0);
	TH_CHECK(n_done == 4);
	for (unsigned i = 0; i < 3; i++) {
		TH_CHECK(r[i].status == PROTO_ST_OK && r[i].exit_taken == 2 && r[i].batch_size == 4);
		TH_CHECK(r[i].n_top == 3 && r[i].top_cls[0] == argmax10(ref_final[i]));
		TH_CHECK(r[i].top_score[0] >= r[i].top_score[1]);
	}
	sched_free(s);
}

static void
test_max_delay_sends_a_partial_batch(void)
{
	struct sched *s = make_fixed(8, 5 * MS);
	struct sched_req r[2];
	struct sched_req *slots[8];
	struct sched_batch b = { .req = slots };
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);
	req_init(&r[0], 0, 0, 0);
	req_init(&r[1], 1, 0, 0);
	sched_submit(s, &r[0]);
	fake_now += 2 * MS;
	sched_submit(s, &r[1]);
	TH_CHECK(!sched_take_batch(s, 0, &b, &wake) && wake == fake_now + 3 * MS);
	fake_now += 3 * MS;
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == 2);
	sched_run_batch(s, 0, &b);
	TH_CHECK(n_done == 2 && r[1].batch_size == 2);
	sched_free(s);
}

static void
test_deadline_dispatches_before_max_delay(void)
{
	struct sched *s = make_fixed(8, 1000 * MS);
	struct sched_req r;
	struct sched_req *slots[8];
	struct sched_batch b = { .req = slots };
	uint64_t wake, deadline;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);
	deadline = fake_now + 10 * MS;
	req_init(&r, 0, 0, deadline);
	TH_CHECK(sched_submit(s, &r) == PROTO_ST_OK);
	TH_CHECK(!sched_take_batch(s, 0, &b, &wake));
	/* due when the deadline less its margin (1/16 of 10 ms), the estimate (1 ms) and the
	 * guard (0.2 ms) arrives */
	TH_CHECK_MSG(wake == deadline - 10 * MS / 16 - 1 * MS - 200000, "wake in %lld us",
		     (long long)(wake - fake_now) / 1000);
	fake_now = wake;
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == 1);
	sched_run_batch(s, 0, &b);
	TH_CHECK(r.status == PROTO_ST_OK);
	sched_free(s);
}

static void
test_infeasible_and_overloaded_on_arrival(void)
{
	struct sched *s = make(splits_0, 1, never, 8, 1000 * MS, 2, false, true);
	struct sched_req r[4];

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);
	req_init(&r[0], 0, 0, fake_now + MS / 2);	/* less than one batch's time */
	TH_CHECK(sched_submit(s, &r[0]) == PROTO_ST_DEADLINE_INFEASIBLE);
	req_init(&r[1], 0, 0, 0);
	req_init(&r[2], 0, 0, 0);
	req_init(&r[3], 0, 0, 0);
	TH_CHECK(sched_submit(s, &r[1]) == PROTO_ST_OK);
	TH_CHECK(sched_submit(s, &r[2]) == PROTO_ST_OK);
	TH_CHECK(sched_submit(s, &r[3]) == PROTO_ST_OVERLOADED);
	TH_CHECK(r[3].reason == PROTO_E_QUEUE_FULL);
	TH_CHECK(n_done == 0);	/* refusals are the caller's to answer */
	sched_free(s);		/* the two queued are answered, never dropped */
	TH_CHECK(n_done == 2 && r[1].status == PROTO_ST_INTERNAL);
}

/*
 * A burst under one lock: each request admitted or refused on its own; the taken ones first
 * in the array (the scheduler's), the refused after them with their statuses (the caller's).
 */
static void
test_submit_burst_partitions(void)
{
	struct sched *s = make(splits_0_6, 2, never, 8, 1000 * MS, 2, false, true);
	struct sched_req r[6], *b[6];
	unsigned k;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);
	req_init(&r[0], 0, 3, 0);			/* split not served */
	req_init(&r[1], 0, 0, 0);			/* taken */
	req_init(&r[2], 0, 0, fake_now + MS / 2);	/* infeasible */
	req_init(&r[3], 1, 0, 0);			/* taken */
	req_init(&r[4], 2, 0, 0);			/* the queue holds 2: full */
	req_init(&r[5], 0, 0, 0);
	r[5].dtype = TG_DT_S64;				/* dtype */
	for (unsigned i = 0; i < 6; i++)
		b[i] = &r[i];
	k = sched_submit_burst(s, b, 6);
	TH_CHECK(k == 2);
	TH_CHECK((b[0] == &r[1] && b[1] == &r[3]) || (b[0] == &r[3] && b[1] == &r[1]));
	for (unsigned i = k; i < 6; i++)
		TH_CHECK(b[i] != &r[1] && b[i] != &r[3] && b[i]->status != PROTO_ST_OK);
	TH_CHECK(r[0].status == PROTO_ST_UNKNOWN_SPLIT);
	TH_CHECK(r[2].status == PROTO_ST_DEADLINE_INFEASIBLE);
	TH_CHECK(r[4].status == PROTO_ST_OVERLOADED && r[4].reason == PROTO_E_QUEUE_FULL);
	TH_CHECK(r[5].status == PROTO_ST_BAD_REQUEST);
	TH_CHECK(sched_submit_burst(s, b, 0) == 0);
	TH_CHECK(n_done == 0);
	sched_stop(s);		/* the two taken are answered once, in a burst */
	TH_CHECK(n_done == 2);
	req_init(&r[1], 0, 0, 0);
	TH_CHECK(sched_submit(s, &r[1]) == PROTO_ST_OVERLOADED);	/* stopped: refused */
	sched_free(s);
	TH_CHECK(n_done == 2);
}

static void
test_bad_model_split_dtype(void)
{
	struct sched *s = make(splits_0_6, 2, never, 8, MS, 8, false, true);
	struct sched_req r;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	req_init(&r, 0, 3, 0);
	TH_CHECK(sched_submit(s, &r) == PROTO_ST_UNKNOWN_SPLIT);
	req_init(&r, 0, 0, 0);
	r.model = 1;
	TH_CHECK(sched_submit(s, &r) == PROTO_ST_UNKNOWN_MODEL);
	req_init(&r, 0, 0, 0);
	r.dtype = TG_DT_S64;
	TH_CHECK(sched_submit(s, &r) == PROTO_ST_BAD_REQUEST);
	sched_free(s);
}

static void
test_expired_in_queue_takes_no_compute(void)
{
	struct sched *s = make(splits_0, 1, never, 8, 1000 * MS, 16, false, true);
	struct sched_req r;
	struct sched_req *slots[8];
	struct sched_batch b = { .req = slots };
	struct sched_stats st;
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);
	req_init(&r, 0, 0, fake_now + 5 * MS);
	TH_CHECK(sched_submit(s, &r) == PROTO_ST_OK);
	fake_now += 20 * MS;	/* the worker was busy elsewhere */
	TH_CHECK(!sched_take_batch(s, 0, &b, &wake));
	TH_CHECK(n_done == 1 && r.status == PROTO_ST_DEADLINE_INFEASIBLE);
	sched_get_stats(s, &st);
	TH_CHECK(st.batches == 0 && st.expired_in_queue == 1);
	sched_free(s);
}

/* Overload: a request whose predicted finish (the queued work ahead) is past its deadline is
 * shed on arrival, OVERLOADED, before it takes a queue slot. */
static void
test_shed_on_predicted_finish(void)
{
	struct sched *s = make(splits_0, 1, never, 4, 1000 * MS, 32, false, true);
	struct sched_req r[12];
	struct sched_stats st;
	unsigned ok = 0;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);	/* a batch of any size: 1 ms */
	for (unsigned i = 0; i < 12; i++) {
		req_init(&r[i], i % 3, 0, fake_now + 2 * MS + MS / 2);
		ok += sched_submit(s, &r[i]) == PROTO_ST_OK;
	}
	/* two batches of 4 end by 2 ms; the ninth would need a third */
	TH_CHECK_MSG(ok == 8 && r[8].status == PROTO_ST_OVERLOADED, "%u accepted", ok);
	TH_CHECK(r[8].reason == PROTO_E_BACKLOG && r[0].reason == PROTO_OK);
	sched_get_stats(s, &st);
	TH_CHECK(st.shed_on_arrival == 4);
	sched_free(s);
}

/* More than a batch waiting: the newest are taken first, they still have the slack. */
static void
test_newest_first_under_overload(void)
{
	struct sched *s = make(splits_0, 1, never, 4, 1000 * MS, 32, false, true);
	struct sched_req r[10];
	struct sched_req *slots[4];
	struct sched_batch b = { .req = slots };
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1 * MS);
	for (unsigned i = 0; i < 10; i++) {
		req_init(&r[i], i % 3, 0, 0);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
	}
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == 4);
	TH_CHECK(b.req[0] == &r[9] && b.req[3] == &r[6]);
	sched_run_batch(s, 0, &b);
	sched_free(s);
}

/* A batch stops growing where one more would end past a deadline in it. */
static void
test_batch_sized_by_its_deadlines(void)
{
	struct sched *s = make(splits_0, 1, never, 4, 1000 * MS, 32, false, true);
	struct sched_req r[4];
	struct sched_req *slots[4];
	struct sched_batch b = { .req = slots };
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	for (unsigned n = 1; n <= 4; n *= 2)
		sched_set_estimate(s, 0, 0, n, n * MS);	/* 1, 2, 4 ms */
	req_init(&r[0], 0, 0, fake_now + 2 * MS + MS / 2);
	for (unsigned i = 1; i < 4; i++)
		req_init(&r[i], i % 3, 0, 0);
	for (unsigned i = 0; i < 4; i++)
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
	/* 2 requests end at 2 ms (+ the 0.2 ms guard) within r[0]'s 2.5 ms; 3 would take 4 */
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == 2);
	TH_CHECK(b.req[0] == &r[0] && b.req[1] == &r[1]);
	sched_run_batch(s, 0, &b);
	TH_CHECK(r[0].status == PROTO_ST_OK);
	sched_free(s);
}

/* A batch cut short of its bucket goes down to the bucket below when that is faster per
 * sample: 6 samples run the plan of 8 (16 ms), 4 take 4 ms. */
static void
test_short_batch_trimmed_to_a_bucket(void)
{
	struct sched *s = make(splits_0, 1, never, 8, 1000 * MS, 32, false, true);
	struct sched_req r[7];
	struct sched_req *slots[8];
	struct sched_batch b = { .req = slots };
	struct sched_stats st;
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	for (unsigned n = 1; n <= 4; n *= 2)
		sched_set_estimate(s, 0, 0, n, n * MS);
	sched_set_estimate(s, 0, 0, 8, 16 * MS);
	for (unsigned i = 0; i < 6; i++)
		req_init(&r[i], i % 3, 0, 0);
	/* due at 17.1 ms less 1/16 of it, 16.03 ms: admitted (a batch of 7 ends at 16 ms) but
	 * not in a batch of 8 once the 0.2 ms guard of batch formation counts */
	req_init(&r[6], 0, 0, fake_now + 17 * MS + MS / 10);
	for (unsigned i = 0; i < 7; i++)
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == 4);
	TH_CHECK(b.req[0] == &r[0] && b.req[3] == &r[3]);
	sched_run_batch(s, 0, &b);
	/* the next batch, once r[6]'s deadline makes it due: r[4], r[5], r[6], in order */
	if (!sched_take_batch(s, 0, &b, &wake)) {
		TH_CHECK(wake != UINT64_MAX);
		fake_now = wake;
		TH_CHECK(sched_take_batch(s, 0, &b, &wake));
	}
	TH_CHECK(b.n == 3 && b.req[0] == &r[4] && b.req[2] == &r[6]);
	sched_run_batch(s, 0, &b);
	sched_get_stats(s, &st);
	TH_CHECK(st.completed == 7 && st.by_status[PROTO_ST_OK] == 7);
	sched_free(s);
}

static void
test_confident_exit_answers_early(void)
{
	struct sched *s = make(splits_0, 1, exit1_always, 4, MS, 16, false, true);
	struct sched_req r[3];
	unsigned starts[8];
	struct sched_stats st;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	/* exit1 is computed before split 5: a segment boundary there */
	TH_CHECK_MSG(sched_segments(s, 0, starts, 8) == 2 && starts[1] == 5, "%u segments",
		     sched_segments(s, 0, starts, 8));
	for (unsigned i = 0; i < 3; i++) {
		req_init(&r[i], i, 0, 0);
		r[i].full_out = calloc(10, sizeof(float));
		r[i].full_cap = 10;
		sched_submit(s, &r[i]);
	}
	run_until_idle(s);
	sched_get_stats(s, &st);
	for (unsigned i = 0; i < 3; i++) {
		TH_CHECK(r[i].status == PROTO_ST_OK && r[i].exit_taken == 0);
		TH_CHECK(r[i].full_len == 10);
		for (unsigned k = 0; k < 10; k++)
			TH_CHECK(fabsf(r[i].full_out[k] - ref_exit1[i][k]) < 1e-3f);
		free(r[i].full_out);
	}
	TH_CHECK_MSG(st.batches == 1, "%llu batches: the rest of the tail never ran",
		     (unsigned long long)st.batches);
	sched_free(s);
}

static void
test_segments_merge_requests_from_two_splits(void)
{
	struct sched *s = make(splits_0_6, 2, never, 8, MS, 16, false, true);
	struct kern_plan *head = NULL;
	struct kern_plan_spec hs = { .kind = KERN_PLAN_HEAD, .split = 6, .batch = 3 };
	struct sched_req r[6];
	struct tg_tensor in, mid;

	if (s == NULL || kern_plan_create(model, &hs, &head, NULL) < 0)
		{ TH_CHECK(0); return; }
	kern_plan_input(head, 0, &in);
	memcpy(in.data, x.data, tg_tensor_bytes(&x));
	kern_plan_run(head);
	kern_plan_output(head, 0, &mid, NULL);
	for (unsigned i = 0; i < 3; i++) {
		req_init(&r[i], i, 0, 0);		/* whole model */
		req_init(&r[3 + i], 0, 6, 0);	/* devices that ran the head to split 6 */
		r[3 + i].data = (const float *)mid.data + i * (tg_tensor_numel(&mid) / 3);
		sched_submit(s, &r[i]);
		sched_submit(s, &r[3 + i]);
	}
	run_until_idle(s);
	for (unsigned i = 0; i < 6; i++) {
		TH_CHECK(r[i].status == PROTO_ST_OK && r[i].exit_taken == 2);
		TH_CHECK_MSG(r[i].batch_size == 6, "request %u finished in a batch of %u", i,
			     r[i].batch_size);
		TH_CHECK(r[i].top_cls[0] == argmax10(ref_final[i % 3]));
	}
	kern_plan_free(head);
	sched_free(s);
}

static void
test_whole_tail_mode_answers_the_same(void)
{
	struct sched *s = make(splits_0_6, 2, never, 8, MS, 16, true, true);
	struct sched_req r[3];
	unsigned starts[8];

	if (s == NULL)
		{ TH_CHECK(0); return; }
	TH_CHECK(sched_segments(s, 0, starts, 8) == 2);
	for (unsigned i = 0; i < 3; i++) {
		req_init(&r[i], i, 0, 0);
		sched_submit(s, &r[i]);
	}
	run_until_idle(s);
	for (unsigned i = 0; i < 3; i++)
		TH_CHECK(r[i].status == PROTO_ST_OK && r[i].top_cls[0] == argmax10(ref_final[i]));
	sched_free(s);
}

static void
test_workers_answer_every_request(void)
{
	struct sched *s = make(splits_0_6, 2, never, 8, 2 * MS, 64, false, false);
	static struct sched_req r[60];
	struct tg_err err = { 0 };

	if (s == NULL)
		{ TH_CHECK(0); return; }
	TH_CHECK_MSG(sched_start(s, &err) == 0, "%s", err.msg);
	for (unsigned i = 0; i < 60; i++) {
		req_init(&r[i], i % 3, 0, 0);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
		if (i % 10 == 9)
			usleep(2000);
	}
	for (int t = 0; t < 500; t++) {	/* bounded: 5 s */
		pthread_mutex_lock(&done_mu);
		unsigned d = n_done;
		pthread_mutex_unlock(&done_mu);
		if (d == 60)
			break;
		usleep(10000);
	}
	TH_CHECK_MSG(n_done == 60, "%u of 60 answered", n_done);
	for (unsigned i = 0; i < 60; i++)
		TH_CHECK(r[i].status == PROTO_ST_OK && r[i].top_cls[0] == argmax10(ref_final[i % 3]));
	sched_free(s);
}

/* Each worker's time: wall and own CPU inside oneDNN per batch, and its whole CPU, which
 * holds the part inside oneDNN; no worker index beyond the running ones is charged. */
static void
test_worker_time_is_accounted(void)
{
	struct sched *s = make(splits_0_6, 2, never, 8, 2 * MS, 64, false, false);
	static struct sched_req r[40];
	struct sched_stats st;
	struct tg_err err = { 0 };
	uint64_t eng = 0, eng_cpu = 0;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	TH_CHECK_MSG(sched_start(s, &err) == 0, "%s", err.msg);
	for (unsigned i = 0; i < 40; i++) {
		req_init(&r[i], i % 3, 0, 0);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
	}
	sched_stop(s);		/* every request answered; workers took their last clock */
	sched_get_stats(s, &st);
	TH_CHECK_MSG(st.completed == 40 && st.batches > 0, "%llu answered in %llu batches",
		     (unsigned long long)st.completed, (unsigned long long)st.batches);
	for (unsigned w = 0; w < SCHED_MAX_WORKERS; w++) {
		eng += st.engine_ns[w];
		eng_cpu += st.engine_cpu_ns[w];
		if (w < 1)	/* make() starts one worker */
			TH_CHECK_MSG(st.worker_cpu_ns[w] >= st.engine_cpu_ns[w] &&
				     st.worker_cpu_ns[w] > 0, "worker %u: %llu ns CPU, %llu in oneDNN",
				     w, (unsigned long long)st.worker_cpu_ns[w],
				     (unsigned long long)st.engine_cpu_ns[w]);
		else
			TH_CHECK(st.worker_cpu_ns[w] == 0 && st.engine_ns[w] == 0);
	}
	TH_CHECK_MSG(eng > 0 && eng_cpu > 0, "engine %llu ns wall, %llu ns CPU",
		     (unsigned long long)eng, (unsigned long long)eng_cpu);
	sched_free(s);
}

int
main(void)
{
	if (setup() < 0) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	kern_set_threads(1);
	TH_RUN(test_batch_leaves_when_full);
	TH_RUN(test_max_delay_sends_a_partial_batch);
	TH_RUN(test_deadline_dispatches_before_max_delay);
	TH_RUN(test_infeasible_and_overloaded_on_arrival);
	TH_RUN(test_bad_model_split_dtype);
	TH_RUN(test_submit_burst_partitions);
	TH_RUN(test_expired_in_queue_takes_no_compute);
	TH_RUN(test_confident_exit_answers_early);
	TH_RUN(test_segments_merge_requests_from_two_splits);
	TH_RUN(test_whole_tail_mode_answers_the_same);
	TH_RUN(test_workers_answer_every_request);
	TH_RUN(test_worker_time_is_accounted);
	TH_RUN(test_shed_on_predicted_finish);
	TH_RUN(test_newest_first_under_overload);
	TH_RUN(test_batch_sized_by_its_deadlines);
	TH_RUN(test_short_batch_trimmed_to_a_bucket);
	tg_tensor_free(&x);
	kern_model_free(model);
	TH_DONE();
}
