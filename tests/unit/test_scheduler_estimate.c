/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The advice's estimate under load (sched_estimate_splits(), sched.c's
 * sched_advice_estimate()): idle, the admission's batch of one; under load, the wait scaled
 * by the tail's per-sample work against that of what is queued, plus its own batch at the
 * size the load forms. A table of loads on a fake clock with fixed estimates, each row with
 * the figures expected; then the advisor fed with them: a device whose floor admits the
 * lighter variant is advised it under load (it was advised the base before: joining the
 * base's forming batch looked cheaper), one without a floor keeps the base's variant.
 * The busy hint from the same estimates (sched_busy_ns()).
 * Two scheduler models on the multi-exit fixture (tests/fixtures/multiexit): model 0 the
 * "base" served at splits 0 and 6, model 1 a "light" variant at split 0.
 */
#include "advisor/advisor.h"
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "tests/harness.h"
#include "tests/sched_testkit.h"

#include <stdlib.h>

#define US 1000ull
#define MS 1000000ull

static void
on_done(void *ctx, struct sched_req **r, unsigned n)
{
	(void)ctx;
	(void)r;
	(void)n;
}

static struct kern_model *model;
static struct tg_tensor x;

static const unsigned splits_0_6[] = { 0, 6 }, splits_0[] = { 0 };
static const float never[3] = { 2.f, 2.f, 2.f };

enum { MAX_BATCH = 8, N_REQ = 64 };

/*
 * Batch time by bucket (1, 2, 4, 8), a fixed cost plus a per-sample one: the base from its
 * input 2 ms + 1 ms a sample; its deeper split 6 (less tail) 1 ms + 0.25 ms; the light
 * variant from the input 1 ms + 0.5 ms.
 */
static uint64_t
est(unsigned m, unsigned seg_split, unsigned b)
{
	if (m == 1)
		return 1 * MS + b * MS / 2;
	return seg_split == 6 ? 1 * MS + b * MS / 4 : 2 * MS + b * MS;
}

static struct sched *
make_delay(uint64_t max_delay_ns)
{
	struct sched_model_cfg mc[2];
	struct sched_cfg cfg = { .models = mc, .n_models = 2, .queue_cap = 1024,
				 .max_inflight = 1024, .n_workers = 1, .mode = SCHED_MODE_WHOLE,
				 .done = on_done, .clock = fake_clock };
	struct tg_err err = { 0 };
	struct sched *s = NULL;

	for (unsigned m = 0; m < 2; m++)
		mc[m] = (struct sched_model_cfg){
			.model = model, .splits = m == 0 ? splits_0_6 : splits_0,
			.n_splits = m == 0 ? 2 : 1, .exit_conf = never, .max_batch = MAX_BATCH,
			.max_delay_ns = max_delay_ns, .default_deadline_ns = 10000 * MS,
		};
	fake_now = 1000 * MS;
	if (sched_create(&cfg, &s, &err) < 0) {
		fprintf(stderr, "sched_create: %s\n", err.msg);
		return NULL;
	}
	for (unsigned m = 0; m < 2; m++) {
		unsigned starts[8], n = sched_segments(s, m, starts, 8);

		for (unsigned q = 0; q < n; q++)
			for (unsigned b = 1; b <= MAX_BATCH; b *= 2)
				sched_set_estimate(s, m, q, b, est(m, starts[q], b));
	}
	return s;
}

static struct sched *
make(void)
{
	return make_delay(1000 * MS);
}

/* Queue n requests at model m's input (no worker runs them: the fake clock stands still). */
static void
queue(struct sched *s, struct sched_req *r, unsigned m, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].model = (uint16_t)m;
		r[i].dtype = TG_DT_F32;
		r[i].data = x.data;
		r[i].top_k = 1;
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK);
	}
}

/* The three estimates: base at 0, base at 6, light at 0. */
static void
estimates(struct sched *s, uint64_t *base0, uint64_t *base6, uint64_t *light0)
{
	uint64_t b[2];

	sched_estimate_splits(s, 0, splits_0_6, 2, b);
	sched_estimate_splits(s, 1, splits_0, 1, light0);
	*base0 = b[0];
	*base6 = b[1];
}

/*
 * Rows: requests queued at the base's and the light variant's inputs, and the estimates
 * expected. Worked (ms): backlog = the queued work (queued n at 8 a batch, bucketed),
 * Q = requests queued, mean = backlog / Q, b = min(Q + 1, 8); own = est(b), ratio =
 * (own / b) / mean, estimate = own + backlog x ratio. Idle: the batch of one.
 */
static const struct {
	unsigned base_q, light_q;
	uint64_t base0, base6, light0;
	const char *what;
} rows[] = {
	{ 0, 0, 3 * MS, 1250 * US, 1500 * US, "idle: the batch of one alone" },
	/* backlog 6 (bucket 4), mean 2, b 4: base 6 + 6 x 0.75; split 6: 2 + 6 x 0.25;
	 * light 3 + 6 x 0.375. Admission's figure gave the base 6 (joining its forming
	 * batch costs nothing more) and the light variant 7.5: advice went back to the base. */
	{ 3, 0, 10500 * US, 3500 * US, 5250 * US, "3 queued at the base's input" },
	/* backlog 10, mean 1.25, b 8: base 10 + 10; split 6 3 + 10 x 0.3; light 5 + 10 x 0.5 */
	{ 8, 0, 20 * MS, 6 * MS, 10 * MS, "a full batch queued at the base's input" },
	/* backlog 20, mean 1.25, b 8: the gap grows with the backlog */
	{ 16, 0, 30 * MS, 9 * MS, 15 * MS, "two batches queued at the base's input" },
	/* after the move: 8 at the light input, backlog 5, mean 0.625: the base still heavier
	 * (10 + 5 x 2), the light 5 + 5: advice does not flap back */
	{ 0, 8, 20 * MS, 6 * MS, 10 * MS, "a full batch queued at the light variant" },
};

static void
test_estimate_table(void)
{
	static struct sched_req r[N_REQ];

	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sched *s = make();
		uint64_t b0 = 0, b6 = 0, l0 = 0;

		TH_CHECK(s != NULL);
		if (s == NULL)
			return;
		queue(s, r, 0, rows[i].base_q);
		queue(s, r + rows[i].base_q, 1, rows[i].light_q);
		estimates(s, &b0, &b6, &l0);
		TH_CHECK_MSG(b0 == rows[i].base0 && b6 == rows[i].base6 && l0 == rows[i].light0,
			     "%s: base 0 %.3f ms (want %.3f), base 6 %.3f (%.3f), light 0 %.3f "
			     "(%.3f)", rows[i].what, b0 / 1e6, rows[i].base0 / 1e6, b6 / 1e6,
			     rows[i].base6 / 1e6, l0 / 1e6, rows[i].light0 / 1e6);
		sched_free(s);
	}
}

/* A split not served, a model out of range: UINT64_MAX. */
static void
test_estimate_unserved(void)
{
	struct sched *s = make();
	const unsigned bad[] = { 3, 300 };
	uint64_t out[2] = { 0, 0 };

	TH_CHECK(s != NULL);
	if (s == NULL)
		return;
	sched_estimate_splits(s, 0, bad, 2, out);
	TH_CHECK(out[0] == UINT64_MAX && out[1] == UINT64_MAX);
	out[0] = 0;
	sched_estimate_splits(s, 2, splits_0, 1, out);
	TH_CHECK(out[0] == UINT64_MAX);
	sched_free(s);
}

/*
 * The advisor on these estimates: base 92%, light 80%; split 6 costs the device a 10 MFLOP
 * head. A slow device (100 MFLOP/s: 100 ms of head) with a floor of 75% is advised the light
 * variant's input at every load of the table (admission's figure advised it the base's at 3
 * queued: 6 ms against 7.5); without a floor, the base's input always. A fast one without a
 * floor: the base's deeper split (its tail is the lightest), never the light variant.
 */
static void
test_advice_under_load_moves_floor_devices(void)
{
	static struct sched_req r[N_REQ];
	struct adv_device slow = { .compute_mflops = 100, .uplink_kbps = 1000000,
				   .accuracy_floor_bp = 7500 };
	struct adv_device slow_none = slow, fast_none = slow;

	slow_none.accuracy_floor_bp = 0;
	fast_none.accuracy_floor_bp = 0;
	fast_none.compute_mflops = 10000000;
	for (unsigned i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct sched *s = make();
		struct adv_cand c[3] = {
			{ .variant = 0, .split = 0, .bytes = 3136, .accuracy_bp = 9200 },
			{ .variant = 0, .split = 6, .head_flops = 10000000, .bytes = 3136,
			  .accuracy_bp = 9200 },
			{ .variant = 1, .split = 0, .bytes = 3136, .accuracy_bp = 8000 },
		};
		struct adv_choice a;

		TH_CHECK(s != NULL);
		if (s == NULL)
			return;
		queue(s, r, 0, rows[i].base_q);
		queue(s, r + rows[i].base_q, 1, rows[i].light_q);
		estimates(s, &c[0].server_ns, &c[1].server_ns, &c[2].server_ns);
		adv_choose(&slow, c, 3, 0, 0, ADV_EXITS_ON, &a);
		TH_CHECK_MSG(a.fits && a.variant == 1 && a.split == 0,
			     "%s: floor 75%%: variant %u split %u", rows[i].what, a.variant, a.split);
		adv_choose(&slow_none, c, 3, 0, 0, ADV_EXITS_ON, &a);
		TH_CHECK_MSG(a.fits && a.variant == 0 && a.split == 0,
			     "%s: slow, no floor: variant %u split %u", rows[i].what, a.variant,
			     a.split);
		adv_choose(&fast_none, c, 3, 0, 0, ADV_EXITS_ON, &a);
		TH_CHECK_MSG(a.fits && a.variant == 0 && a.split == 6,
			     "%s: fast, no floor: variant %u split %u", rows[i].what, a.variant,
			     a.split);
		sched_free(s);
	}
}

/*
 * The busy hint (sched_busy_ns(), the RX lcores' back-off): 0 while nothing is computing,
 * queued requests or not; while worker 0 computes a batch of 8 (est 10 ms), its estimated
 * end less the 200 us guard, counting down with the clock; 0 within the guard and once the
 * batch has run.
 */
static void
test_busy_hint(void)
{
	struct sched *s = make();
	struct sched_req r[MAX_BATCH], *slots[MAX_BATCH];
	struct sched_batch b = { .req = slots };
	uint64_t wake;

	TH_CHECK(s != NULL);
	if (s == NULL)
		return;
	TH_CHECK(sched_busy_ns(s) == 0);
	queue(s, r, 0, MAX_BATCH);
	TH_CHECK(sched_busy_ns(s) == 0);
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == MAX_BATCH);
	TH_CHECK_MSG(sched_busy_ns(s) == 10 * MS - 200 * US, "computing: %llu ns",
		     (unsigned long long)sched_busy_ns(s));
	fake_now += 4 * MS;
	TH_CHECK_MSG(sched_busy_ns(s) == 6 * MS - 200 * US, "4 ms later: %llu ns",
		     (unsigned long long)sched_busy_ns(s));
	fake_now += 6 * MS - 100 * US;
	TH_CHECK_MSG(sched_busy_ns(s) == 0, "100 us before the end: %llu ns",
		     (unsigned long long)sched_busy_ns(s));
	TH_CHECK(sched_run_batch(s, 0, &b) == 0);
	TH_CHECK(sched_busy_ns(s) == 0);
	sched_free(s);
}

/*
 * The busy hint below capacity (max_delay 2 ms): a batch of 2 of 8 (est 4 ms) with nothing
 * else queued holds arrivals only until a max_delay before its end (less the guard), so that
 * a request delivered when the hint falls to 0 has waited out its max_delay by the end and
 * starts at once when the worker is free, not a max_delay later. While another queue is due
 * by the end (model 1's request, its max_delay run out), arrivals join the next batch
 * whenever they come: the hint holds them to the end.
 */
static void
test_busy_hint_below_capacity(void)
{
	struct sched_req r[4], *slots[MAX_BATCH];
	struct sched_batch b = { .req = slots };
	struct sched *s = make_delay(2 * MS);
	uint64_t wake, end;

	TH_CHECK(s != NULL);
	if (s == NULL)
		return;
	queue(s, r, 0, 2);
	fake_now += 2 * MS;
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n == 2);
	end = fake_now + est(0, 0, 2);
	TH_CHECK_MSG(sched_busy_ns(s) == 4 * MS - 2 * MS - 200 * US, "batch of 2: %llu ns",
		     (unsigned long long)sched_busy_ns(s));
	fake_now = end - 2 * MS - 200 * US;
	TH_CHECK_MSG(sched_busy_ns(s) == 0, "a max_delay and the guard before the end: %llu ns",
		     (unsigned long long)sched_busy_ns(s));
	queue(s, &r[2], 0, 1);	/* delivered now, as the RX lcore would */
	fake_now = end;
	TH_CHECK(sched_run_batch(s, 0, &b) == 0);
	TH_CHECK_MSG(sched_take_batch(s, 0, &b, &wake) && b.n == 1 && b.req[0] == &r[2],
		     "the request delivered then starts at the end (%u taken, wake in %lld ns)",
		     b.n, (long long)(wake - fake_now));
	TH_CHECK(sched_run_batch(s, 0, &b) == 0);
	sched_free(s);

	s = make_delay(2 * MS);
	TH_CHECK(s != NULL);
	if (s == NULL)
		return;
	queue(s, r, 0, 2);
	queue(s, &r[2], 1, 1);
	fake_now += 2 * MS;
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n > 0);
	end = fake_now + est(b.model, 0, b.n == 1 ? 1 : 2);
	TH_CHECK_MSG(sched_busy_ns(s) == end - fake_now - 200 * US,
		     "another queue due by the end: %llu ns, batch %llu ns",
		     (unsigned long long)sched_busy_ns(s), (unsigned long long)(end - fake_now));
	TH_CHECK(sched_run_batch(s, 0, &b) == 0);
	TH_CHECK(sched_take_batch(s, 0, &b, &wake) && b.n > 0);
	TH_CHECK(sched_run_batch(s, 0, &b) == 0);
	sched_free(s);
}

int
main(void)
{
	if (load_multiexit(&model, &x) < 0) {
		printf("0 passed, 1 failed\n");
		return 1;
	}
	TH_RUN(test_estimate_table);
	TH_RUN(test_estimate_unserved);
	TH_RUN(test_advice_under_load_moves_floor_devices);
	TH_RUN(test_busy_hint);
	TH_RUN(test_busy_hint_below_capacity);
	kern_model_free(model);
	tg_tensor_free(&x);
	TH_DONE();
}
