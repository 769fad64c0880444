/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The adaptive batching wait (sched.h, batch_wait ADAPTIVE) on a fake clock, with the real
 * engine running the multi-exit fixture (tests/fixtures/multiexit): at a low arrival rate a
 * lone request is dispatched at once (the fixed wait, the control, holds it); at a rate that
 * batches cannot keep up with, the queue waits and batches fill as before; a queue waiting
 * goes once arrivals stop; max_delay still bounds the wait, and a deadline still dispatches
 * before it; another queue's load counts against this one's; an unknown batch_wait is refused.
 * Every latency estimate is set by hand (sched_set_estimate) and set again after each batch
 * (a batch on the fake clock takes 0 ns, which the estimates would learn).
 */
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "tests/harness.h"
#include "tests/sched_testkit.h"

#include <errno.h>
#include <string.h>

#define MS 1000000ull
#define US 1000ull

static unsigned n_done;

static void
on_done(void *ctx, struct sched_req **r, unsigned n)
{
	(void)ctx;
	(void)r;
	n_done += n;
}

static struct kern_model *model;
static struct tg_tensor x;		/* 3 input samples */

static const unsigned splits_0[] = { 0 };
static const float never[3] = { 2.f, 2.f, 2.f };

/* n_models copies of the fixture, split 0 each, one worker, the fake clock. */
static struct sched *
make(unsigned n_models, unsigned max_batch, uint64_t max_delay, enum sched_batch_wait wait)
{
	struct sched_model_cfg mc[2];
	struct sched_cfg cfg = {
		.models = mc, .n_models = n_models, .queue_cap = 256, .max_inflight = 256,
		.n_workers = 1, .mode = SCHED_MODE_WHOLE, .done = on_done, .clock = fake_clock,
	};
	struct sched *s = NULL;
	struct tg_err err = { 0 };

	for (unsigned m = 0; m < 2; m++)
		mc[m] = (struct sched_model_cfg){
			.model = model, .splits = splits_0, .n_splits = 1, .exit_conf = never,
			.max_batch = max_batch, .max_delay_ns = max_delay,
			.default_deadline_ns = 1000 * MS, .batch_wait = wait,
		};
	n_done = 0;
	fake_now = 1000 * MS;
	if (sched_create(&cfg, &s, &err) < 0)
		fprintf(stderr, "sched_create: %s\n", err.msg);
	return s;
}

/* Every estimate of every model's queue to ns, so that the rule's arithmetic is exact. */
static void
fix_estimates(struct sched *s, unsigned n_models, uint64_t ns)
{
	for (unsigned m = 0; m < n_models; m++)
		for (unsigned b = 1; b <= 4096; b *= 2)
			sched_set_estimate(s, m, 0, b, ns);
}

static void
req_init(struct sched_req *r, unsigned m, unsigned sample)
{
	memset(r, 0, sizeof(*r));
	r->model = (uint16_t)m;
	r->dtype = TG_DT_F32;
	r->data = (const float *)x.data + (size_t)(sample % 3) * 784;
	r->top_k = 1;
}

/* Take a batch now and run it; its size, 0 when none was due (then *wake says when). */
static unsigned
take_run(struct sched *s, unsigned n_models, uint64_t est, uint64_t *wake)
{
	struct sched_req *slots[64];
	struct sched_batch b = { .req = slots };
	uint64_t w;

	if (!sched_take_batch(s, 0, &b, wake ? wake : &w))
		return 0;
	sched_run_batch(s, 0, &b);
	fix_estimates(s, n_models, est);
	return b.n;
}

/* Requests r[0..n) into model m, one every gap ns from now on (the first now), no batch
 * taken meanwhile; the clock is left at the last. */
static void
feed(struct sched *s, struct sched_req *r, unsigned n, unsigned m, uint64_t gap)
{
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			fake_now += gap;
		req_init(&r[i], m, i);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
	}
}

/* Low load: each request alone goes at once, never waiting for company; the fixed wait
 * holds the same request its max_delay. */
static void
test_lone_request_goes_at_once(void)
{
	struct sched *s = make(1, 8, 500 * MS, SCHED_WAIT_ADAPTIVE);
	struct sched_req r[3];
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1, 1 * MS);
	for (unsigned i = 0; i < 3; i++) {	/* 10 requests/s, each needing 1 ms alone */
		if (i > 0)
			fake_now += 100 * MS;
		req_init(&r[i], 0, i);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
		TH_CHECK_MSG(take_run(s, 1, 1 * MS, NULL) == 1, "request %u waited", i);
		TH_CHECK(r[i].status == PROTO_ST_OK && r[i].batch_size == 1 && r[i].queue_us == 0);
	}
	TH_CHECK(n_done == 3);
	sched_free(s);

	s = make(1, 8, 500 * MS, SCHED_WAIT_FIXED);
	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1, 1 * MS);
	for (unsigned i = 0; i < 3; i++) {
		if (i > 0)
			fake_now += 100 * MS;
		req_init(&r[i], 0, i);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
		TH_CHECK(take_run(s, 1, 1 * MS, &wake) == 0 && wake == fake_now + 500 * MS);
		fake_now = wake;
		TH_CHECK(take_run(s, 1, 1 * MS, NULL) == 1);
	}
	TH_CHECK(n_done == 3);
	sched_free(s);
}

/*
 * 10,000 requests/s against batches of 1 ms whatever their size (max_batch 8): even full
 * batches fall behind (8 per ms), so no batch leaves before it is full, as with the fixed
 * wait, and each wake-up asked for is in the future.
 */
static void
test_waits_when_batches_cannot_keep_up(void)
{
	struct sched *s = make(1, 8, 500 * MS, SCHED_WAIT_ADAPTIVE);
	struct sched_req r[16];
	uint64_t wake;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1, 1 * MS);
	feed(s, r, 8, 0, 100 * US);	/* the rate's history: a full batch */
	TH_CHECK(take_run(s, 1, 1 * MS, NULL) == 8);
	for (unsigned i = 8; i < 16; i++) {
		fake_now += 100 * US;
		req_init(&r[i], 0, i);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
		if (i < 15)
			TH_CHECK_MSG(take_run(s, 1, 1 * MS, &wake) == 0 && wake > fake_now,
				     "a batch of %u left at 10,000/s", i - 7);
	}
	TH_CHECK(take_run(s, 1, 1 * MS, NULL) == 8);
	for (unsigned i = 0; i < 16; i++)
		TH_CHECK(r[i].status == PROTO_ST_OK && r[i].batch_size == 8);
	sched_free(s);
}

/*
 * The same rate, then the stream stops after two: the queue goes once the gap open since
 * its last arrival is as long as a batch of two takes per request (0.5 ms), long before
 * max_delay (500 ms).
 */
static void
test_wait_ends_when_arrivals_stop(void)
{
	struct sched *s = make(1, 8, 500 * MS, SCHED_WAIT_ADAPTIVE);
	struct sched_req r[10];
	uint64_t wake, last;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1, 1 * MS);
	feed(s, r, 8, 0, 100 * US);
	TH_CHECK(take_run(s, 1, 1 * MS, NULL) == 8);
	fake_now += 100 * US;
	feed(s, r + 8, 2, 0, 100 * US);
	last = fake_now;
	TH_CHECK(take_run(s, 1, 1 * MS, &wake) == 0);
	TH_CHECK_MSG(wake > last && wake <= last + 600 * US, "wake in %lld us",
		     (long long)(wake - last) / 1000);
	fake_now = wake - 1;
	TH_CHECK(take_run(s, 1, 1 * MS, NULL) == 0);
	fake_now = wake;
	TH_CHECK(take_run(s, 1, 1 * MS, NULL) == 2);
	TH_CHECK(r[8].status == PROTO_ST_OK && r[9].status == PROTO_ST_OK);
	sched_free(s);
}

/*
 * 10,000 requests/s against 10 ms batches (max_batch 64: even full batches need 1.6
 * workers), and arrivals never stop: the queue waits, and max_delay (2 ms) sends what came
 * meanwhile, 21 requests, exactly when its oldest has waited that long.
 */
static void
test_max_delay_still_bounds(void)
{
	static struct sched_req r[64 + 21];
	struct sched *s = make(1, 64, 2 * MS, SCHED_WAIT_ADAPTIVE);
	uint64_t t0, wake;
	unsigned n;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1, 10 * MS);
	feed(s, r, 64, 0, 100 * US);
	TH_CHECK(take_run(s, 1, 10 * MS, NULL) == 64);
	fake_now += 100 * US;
	t0 = fake_now;
	for (unsigned i = 0; i < 21; i++) {
		fake_now = t0 + i * 100 * US;
		req_init(&r[64 + i], 0, i);
		TH_CHECK(sched_submit(s, &r[64 + i]) == PROTO_ST_OK);
		if (i < 20)
			TH_CHECK_MSG(take_run(s, 1, 10 * MS, &wake) == 0 && wake <= t0 + 2 * MS,
				     "left with %u at %llu us", i + 1,
				     (unsigned long long)(fake_now - t0) / 1000);
	}
	TH_CHECK(fake_now == t0 + 2 * MS);
	n = take_run(s, 1, 10 * MS, NULL);
	TH_CHECK_MSG(n == 21, "batch of %u", n);
	TH_CHECK(r[64].status == PROTO_ST_OK && r[64].queue_us == 2000);
	sched_free(s);
}

/*
 * Waiting (10,000/s against 5 ms batches), a request with 10 ms to its deadline goes when
 * its deadline says, as with the fixed wait: its due time (1/16 of the budget earlier), less
 * the estimate and the guard (0.2 ms); not at max_delay (1 s).
 */
static void
test_deadline_still_dispatches(void)
{
	struct sched *s = make(1, 8, 1000 * MS, SCHED_WAIT_ADAPTIVE);
	struct sched_req r[9];
	uint64_t wake, deadline;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 1, 5 * MS);
	feed(s, r, 8, 0, 100 * US);
	TH_CHECK(take_run(s, 1, 5 * MS, NULL) == 8);
	fake_now += 100 * US;
	deadline = fake_now + 10 * MS;
	req_init(&r[8], 0, 0);
	r[8].deadline_ns = deadline;
	TH_CHECK(sched_submit(s, &r[8]) == PROTO_ST_OK);
	TH_CHECK(take_run(s, 1, 5 * MS, &wake) == 0);
	TH_CHECK_MSG(wake == deadline - 10 * MS / 16 - 5 * MS - 200 * US, "wake in %lld us",
		     (long long)(wake - fake_now) / 1000);
	fake_now = wake;
	TH_CHECK(take_run(s, 1, 5 * MS, NULL) == 1);
	TH_CHECK(r[8].status == PROTO_ST_OK);
	sched_free(s);
}

/*
 * Two models on one worker. Model 0 takes 7,500 requests/s, whose full batches (8 per ms)
 * need 94% of the worker; model 1 about 110/s, whose lone request (1 ms) needs 11% of it,
 * which alone would go at once but beside model 0 does not fit: it waits. Once model 0's
 * traffic has stopped for long enough, model 1's next request goes at once.
 */
static void
test_other_queues_load_counts(void)
{
	struct sched *s = make(2, 8, 500 * MS, SCHED_WAIT_ADAPTIVE);
	struct sched_req a[16], b[4];

	if (s == NULL)
		{ TH_CHECK(0); return; }
	fix_estimates(s, 2, 1 * MS);
	for (unsigned i = 0; i < 2; i++) {	/* model 1: 100 requests/s, each alone */
		if (i > 0)
			fake_now += 10 * MS;
		req_init(&b[i], 1, i);
		TH_CHECK(sched_submit(s, &b[i]) == PROTO_ST_OK);
		TH_CHECK(take_run(s, 2, 1 * MS, NULL) == 1);
	}
	fake_now += 10 * MS;
	feed(s, a, 8, 0, 133333);	/* model 0: 7,500/s, two full batches */
	TH_CHECK(take_run(s, 2, 1 * MS, NULL) == 8);
	fake_now += 133333;
	feed(s, a + 8, 8, 0, 133333);
	TH_CHECK(take_run(s, 2, 1 * MS, NULL) == 8);
	req_init(&b[2], 1, 2);
	TH_CHECK(sched_submit(s, &b[2]) == PROTO_ST_OK);
	TH_CHECK_MSG(take_run(s, 2, 1 * MS, NULL) == 0, "model 1 went beside model 0's load");
	fake_now += 50 * MS;	/* model 0 silent: its rate is at most 1 per 50 ms */
	TH_CHECK(take_run(s, 2, 1 * MS, NULL) == 1 && b[2].status == PROTO_ST_OK);
	req_init(&b[3], 1, 3);
	TH_CHECK(sched_submit(s, &b[3]) == PROTO_ST_OK);
	TH_CHECK(take_run(s, 2, 1 * MS, NULL) == 1 && b[3].status == PROTO_ST_OK);
	TH_CHECK(n_done == 20);
	sched_free(s);
}

static void
test_unknown_batch_wait_refused(void)
{
	struct sched_model_cfg mc = {
		.model = model, .splits = splits_0, .n_splits = 1, .max_batch = 8,
		.max_delay_ns = MS, .default_deadline_ns = MS,
		.batch_wait = (enum sched_batch_wait)7,
	};
	struct sched_cfg cfg = {
		.models = &mc, .n_models = 1, .queue_cap = 8, .max_inflight = 8, .n_workers = 1,
		.done = on_done, .clock = fake_clock,
	};
	struct sched *s = NULL;
	struct tg_err err = { 0 };

	TH_CHECK(sched_create(&cfg, &s, &err) == -EINVAL && s == NULL);
	TH_CHECK_MSG(strstr(err.msg, "batch_wait 7: adaptive or fixed") != NULL, "%s", err.msg);
}

int
main(void)
{
	if (load_multiexit(&model, &x) < 0) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	kern_set_threads(1);
	TH_RUN(test_lone_request_goes_at_once);
	TH_RUN(test_waits_when_batches_cannot_keep_up);
	TH_RUN(test_wait_ends_when_arrivals_stop);
	TH_RUN(test_max_delay_still_bounds);
	TH_RUN(test_deadline_still_dispatches);
	TH_RUN(test_other_queues_load_counts);
	TH_RUN(test_unknown_batch_wait_refused);
	tg_tensor_free(&x);
	kern_model_free(model);
	TH_DONE();
}
