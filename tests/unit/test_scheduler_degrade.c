/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Degrade instead of shed (sched.h): a request that would be refused for time joins the
 * queue of the most accurate stand-in that meets its accuracy floor and finishes in time;
 * with none, it is refused as before. Three scheduler models on the multi-exit fixture
 * (tests/fixtures/multiexit): model 0 the "base" (4 ms a batch on the fake clock), model 1 a
 * stand-in at 80.00 % (2 ms), model 2 one at 30.00 % (1 ms). They compute the same function,
 * so a degraded answer can be checked against the fixture's reference output.
 */
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "tests/harness.h"
#include "tests/sched_testkit.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define FIXTURE "tests/fixtures/multiexit/"
#define MS 1000000ull

enum { LOG_MAX = 4096 };
static struct sched_req *done_log[LOG_MAX];
static unsigned n_done;
static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;

static void
on_done(void *ctx, struct sched_req **r, unsigned n)
{
	(void)ctx;
	pthread_mutex_lock(&done_mu);
	for (unsigned i = 0; i < n; i++)
		if (n_done < LOG_MAX)
			done_log[n_done++] = r[i];
	pthread_mutex_unlock(&done_mu);
}

static struct kern_model *model;
static struct tg_tensor x;		/* 3 input samples */
static float ref_final[3][10];

static int
setup(void)
{
	struct tg_err err = { 0 };
	struct tg_tensor a = { 0 };

	if (kern_model_load(FIXTURE "model.onnx", NULL, &model, &err) < 0 ||
	    tg_npy_load(FIXTURE "input.npy", 1 << 20, &x, &err) < 0 ||
	    tg_npy_load(FIXTURE "output_2.npy", 1 << 20, &a, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	memcpy(ref_final, a.data, sizeof(ref_final));
	tg_tensor_free(&a);
	return 0;
}

static const unsigned splits_0[] = { 0 };
static const unsigned splits_0_6[] = { 0, 6 };
static const float never[3] = { 2.f, 2.f, 2.f };
static const uint64_t est_of[3] = { 4 * MS, 2 * MS, 1 * MS };

/* The base's stand-ins at split 0, deliberately not in accuracy order. */
static const struct sched_degrade stand_ins[] = {
	{ .split = 0, .to_model = 2, .to_split = 0, .accuracy_bp = 3000 },
	{ .split = 0, .to_model = 1, .to_split = 0, .accuracy_bp = 8000 },
};

static int
make_cfg(struct sched **out, const struct sched_degrade *deg, unsigned n_deg, unsigned max_batch,
	 unsigned queue_cap, bool fake, struct tg_err *err)
{
	struct sched_model_cfg mc[3];
	struct sched_cfg cfg = {
		.models = mc, .n_models = 3, .queue_cap = queue_cap, .max_inflight = 1024,
		.n_workers = 1, .mode = SCHED_MODE_WHOLE, .done = on_done,
		.clock = fake ? fake_clock : NULL,
	};

	for (unsigned m = 0; m < 3; m++)
		mc[m] = (struct sched_model_cfg){
			.model = model, .splits = m == 0 ? splits_0_6 : splits_0,
			.n_splits = m == 0 ? 2 : 1, .exit_conf = never, .max_batch = max_batch,
			.max_delay_ns = 1000 * MS, .default_deadline_ns = 1000 * MS,
		};
	mc[0].degrade = deg;
	mc[0].n_degrade = n_deg;
	n_done = 0;
	fake_now = 1000 * MS;
	return sched_create(&cfg, out, err);
}

/* Fixed estimates per model (every bucket), so deadlines are exact on the fake clock. */
static struct sched *
make(unsigned max_batch, unsigned queue_cap)
{
	struct sched *s = NULL;
	struct tg_err err = { 0 };

	if (make_cfg(&s, stand_ins, 2, max_batch, queue_cap, true, &err) < 0) {
		fprintf(stderr, "sched_create: %s\n", err.msg);
		return NULL;
	}
	for (unsigned m = 0; m < 3; m++) {
		unsigned starts[8], n = sched_segments(s, m, starts, 8);

		for (unsigned q = 0; q < n; q++)
			for (unsigned b = 1; b <= 4096; b *= 2)
				sched_set_estimate(s, m, q, b, est_of[m]);
	}
	return s;
}

static void
req_init(struct sched_req *r, unsigned sample, uint64_t deadline, uint16_t floor_bp)
{
	memset(r, 0, sizeof(*r));
	r->dtype = TG_DT_F32;
	r->data = (const float *)x.data + (size_t)(sample % 3) * 784;
	r->deadline_ns = deadline;
	r->top_k = 3;
	r->accuracy_floor_bp = floor_bp;
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

/* Take and run every due batch; the fake clock jumps to each wake-up. */
/* How many times r is in the done log. */
static unsigned
times_done(const struct sched_req *r)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n_done; i++)
		k += done_log[i] == r;
	return k;
}

/* Cannot finish in time on the base (4 ms > 3 ms) but can on the 80 % stand-in (2 ms): it
 * runs there, says so, and its answer is the stand-in's (here: the same function). */
static void
test_degrade_chosen_when_it_fits(void)
{
	struct sched *s = make(8, 64);
	struct sched_req r;
	struct sched_stats st;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	req_init(&r, 1, fake_now + 3 * MS, 7000);
	TH_CHECK(sched_submit(s, &r) == PROTO_ST_OK);
	run_until_idle(s);
	TH_CHECK(times_done(&r) == 1);
	TH_CHECK(r.status == PROTO_ST_OK && r.degraded);
	TH_CHECK(r.model == 1 && r.split == 0 && r.asked_model == 0 && r.asked_split == 0);
	TH_CHECK(r.n_top == 3 && r.top_cls[0] == argmax10(ref_final[1]));
	sched_get_stats(s, &st);
	TH_CHECK(st.degraded == 1 && st.model_degraded[0] == 1 && st.model_degraded[1] == 0);
	TH_CHECK(st.model_samples_run[1] == 1 && st.model_samples_run[0] == 0);
	TH_CHECK(st.by_status[PROTO_ST_OK] == 1 && st.completed == 1 && st.submitted == 1);
	sched_free(s);
}

/* A request that fits the base is never degraded, whatever its floor. */
static void
test_no_degrade_when_the_base_fits(void)
{
	struct sched *s = make(8, 64);
	struct sched_req r;
	struct sched_stats st;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	req_init(&r, 0, fake_now + 50 * MS, 1000);
	TH_CHECK(sched_submit(s, &r) == PROTO_ST_OK);
	run_until_idle(s);
	TH_CHECK(r.status == PROTO_ST_OK && !r.degraded && r.model == 0);
	sched_get_stats(s, &st);
	TH_CHECK(st.degraded == 0);
	sched_free(s);
}

/* Both stand-ins fit and meet a 20 % floor: the more accurate one, not the cheaper, is used.
 * When only the cheaper one is fast enough, that one. */
static void
test_most_accurate_that_fits(void)
{
	struct sched *s = make(8, 64);
	struct sched_req a, b;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	req_init(&a, 0, fake_now + 3 * MS, 2000);
	TH_CHECK(sched_submit(s, &a) == PROTO_ST_OK);
	TH_CHECK(a.degraded && a.model == 1);
	run_until_idle(s);
	req_init(&b, 2, fake_now + 3 * MS / 2, 2000);	/* 1.5 ms: only the 1 ms stand-in */
	TH_CHECK(sched_submit(s, &b) == PROTO_ST_OK);
	TH_CHECK(b.degraded && b.model == 2);
	run_until_idle(s);
	TH_CHECK(a.status == PROTO_ST_OK && b.status == PROTO_ST_OK);
	TH_CHECK(b.top_cls[0] == argmax10(ref_final[2]));
	TH_CHECK(times_done(&a) == 1 && times_done(&b) == 1);
	sched_free(s);
}

/* Refused as before: the only stand-in in time is under the floor; no floor declared; a
 * deadline nothing meets; a split with no stand-ins (6). */
static void
test_shed_when_no_candidate_fits(void)
{
	struct sched *s = make(8, 64);
	struct sched_req r[4];
	struct sched_stats st;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	req_init(&r[0], 0, fake_now + 3 * MS / 2, 5000);	/* 30 % < 50 %; 80 % too slow */
	req_init(&r[1], 0, fake_now + 3 * MS, 0);		/* no floor: never degraded */
	req_init(&r[2], 0, fake_now + MS / 2, 1000);		/* nothing finishes in 0.5 ms */
	req_init(&r[3], 0, fake_now + MS / 2, 1000);
	r[3].split = 6;
	for (unsigned i = 0; i < 4; i++) {
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_DEADLINE_INFEASIBLE);
		TH_CHECK(!r[i].degraded && r[i].model == 0 && r[i].asked_model == 0);
	}
	TH_CHECK(r[3].split == 6);
	sched_get_stats(s, &st);
	TH_CHECK(st.degraded == 0 && st.by_status[PROTO_ST_DEADLINE_INFEASIBLE] == 4);
	TH_CHECK(n_done == 0);	/* refusals are the caller's to answer */
	sched_free(s);
}

/*
 * Backlog: one request per batch; the base queue fills until the next would finish past its
 * deadline (20 ms, due at 18.75): the 5th joins the 80 % stand-in (16 + 2 ms), the 6th fits
 * nowhere (18 + 2 and 18 + 1 > 18.75) and is shed OVERLOADED backlog. Every request taken is
 * answered once; submitted = taken + refused; degraded are among the taken.
 */
static void
test_backlog_degrades_then_sheds(void)
{
	struct sched *s = make(1, 64);
	struct sched_req r[6];
	struct sched_stats st;
	uint64_t deadline = fake_now + 20 * MS;

	if (s == NULL)
		{ TH_CHECK(0); return; }
	for (unsigned i = 0; i < 4; i++) {
		req_init(&r[i], i, deadline, 2000);
		TH_CHECK(sched_submit(s, &r[i]) == PROTO_ST_OK && !r[i].degraded);
	}
	req_init(&r[4], 4, deadline, 2000);
	TH_CHECK(sched_submit(s, &r[4]) == PROTO_ST_OK);
	TH_CHECK(r[4].degraded && r[4].model == 1);
	req_init(&r[5], 5, deadline, 2000);
	TH_CHECK(sched_submit(s, &r[5]) == PROTO_ST_OVERLOADED);
	TH_CHECK(r[5].reason == PROTO_E_BACKLOG && !r[5].degraded && r[5].model == 0);
	run_until_idle(s);
	for (unsigned i = 0; i < 5; i++)
		TH_CHECK_MSG(times_done(&r[i]) == 1 && r[i].status == PROTO_ST_OK,
			     "request %u: answered %u times, status %u", i, times_done(&r[i]),
			     r[i].status);
	TH_CHECK(times_done(&r[5]) == 0);
	sched_get_stats(s, &st);
	TH_CHECK(st.submitted == 6 && st.completed == 5 && st.degraded == 1);
	TH_CHECK(st.shed_on_arrival == 1 && st.by_status[PROTO_ST_OVERLOADED] == 1);
	TH_CHECK(st.by_status[PROTO_ST_OK] == 5);
	TH_CHECK(st.model_samples_run[0] == 4 && st.model_samples_run[1] == 1);
	sched_free(s);
}

/* Stand-in lists that cannot be right are refused at create, naming the problem. */
static void
test_bad_stand_ins_refused(void)
{
	static const struct sched_degrade bad[][1] = {
		{ { .split = 0, .to_model = 0, .to_split = 0, .accuracy_bp = 5000 } },	/* itself */
		{ { .split = 3, .to_model = 1, .to_split = 0, .accuracy_bp = 5000 } },	/* not served */
		{ { .split = 0, .to_model = 1, .to_split = 6, .accuracy_bp = 5000 } },	/* not served */
		{ { .split = 6, .to_model = 1, .to_split = 0, .accuracy_bp = 5000 } },	/* sizes */
		{ { .split = 0, .to_model = 1, .to_split = 0, .accuracy_bp = 0 } },	/* accuracy */
		{ { .split = 0, .to_model = 9, .to_split = 0, .accuracy_bp = 5000 } },	/* model */
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sched *s = NULL;
		struct tg_err err = { 0 };
		int rc = make_cfg(&s, bad[i], 1, 8, 64, true, &err);

		TH_CHECK_MSG(rc == -EINVAL && s == NULL && err.msg[0] != '\0', "case %u: rc %d", i,
			     rc);
		sched_free(s);
	}
}

/*
 * Worker threads on the real clock, requests with tight deadlines in bursts: whatever is
 * degraded or shed, every request is answered exactly once (taken: by done(); refused: by
 * its status), and the counters add up.
 */
static void
test_threads_answer_each_once(void)
{
	enum { N = 600 };
	static struct sched_req r[N];
	struct sched *s = NULL;
	struct sched_stats st;
	struct tg_err err = { 0 };
	unsigned taken = 0, refused = 0, degraded = 0, ok = 0;

	if (make_cfg(&s, stand_ins, 2, 8, 64, false, &err) < 0 || sched_start(s, &err) < 0) {
		TH_CHECK_MSG(0, "%s", err.msg);
		sched_free(s);
		return;
	}
	/* The base looks slow until its own batches correct the estimate: a mix of degrades. */
	for (unsigned b = 1; b <= 8; b *= 2)
		sched_set_estimate(s, 0, 0, b, 6 * MS);
	for (unsigned i = 0; i < N; i += 20) {
		struct sched_req *b[20];
		unsigned k;

		for (unsigned j = 0; j < 20; j++) {
			/* deadlines of 1-8 ms, floors none, 20 %, 50 % */
			req_init(&r[i + j], i + j, tg_now_ns() + (1 + (i + j) % 8) * MS,
				 (uint16_t)((i + j) % 3 == 0 ? 0 : (i + j) % 3 == 1 ? 2000 : 5000));
			b[j] = &r[i + j];
		}
		k = sched_submit_burst(s, b, 20);
		taken += k;
		for (unsigned j = k; j < 20; j++) {
			TH_CHECK(b[j]->status == PROTO_ST_OVERLOADED ||
				 b[j]->status == PROTO_ST_DEADLINE_INFEASIBLE);
			TH_CHECK(!b[j]->degraded);
			refused++;
		}
		usleep(500);
	}
	sched_stop(s);		/* finishes what it accepted */
	for (unsigned i = 0; i < N; i++) {
		unsigned t = times_done(&r[i]);

		TH_CHECK_MSG(t <= 1, "request %u answered %u times", i, t);
		if (t == 1) {
			degraded += r[i].degraded;
			ok += r[i].status == PROTO_ST_OK;
			if (r[i].degraded)
				TH_CHECK(r[i].accuracy_floor_bp != 0 && r[i].model != 0 &&
					 (r[i].model == 1 || r[i].accuracy_floor_bp <= 3000));
		}
	}
	sched_get_stats(s, &st);
	TH_CHECK_MSG(n_done == taken && taken + refused == N, "done %u, taken %u, refused %u",
		     n_done, taken, refused);
	TH_CHECK(st.submitted == N && st.completed == taken);
	TH_CHECK(st.degraded == degraded && st.model_degraded[0] == degraded);
	TH_CHECK(st.by_status[PROTO_ST_OK] == ok);
	TH_CHECK(st.by_status[PROTO_ST_OVERLOADED] + st.by_status[PROTO_ST_DEADLINE_INFEASIBLE] +
		 st.by_status[PROTO_ST_OK] + st.by_status[PROTO_ST_INTERNAL] == N);
	printf("  threads: %u requests, %u taken (%u degraded, %u OK), %u refused\n", N, taken,
	       degraded, ok, refused);
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
	TH_RUN(test_degrade_chosen_when_it_fits);
	TH_RUN(test_no_degrade_when_the_base_fits);
	TH_RUN(test_most_accurate_that_fits);
	TH_RUN(test_shed_when_no_candidate_fits);
	TH_RUN(test_backlog_degrades_then_sheds);
	TH_RUN(test_bad_stand_ins_refused);
	TH_RUN(test_threads_answer_each_once);
	tg_tensor_free(&x);
	kern_model_free(model);
	TH_DONE();
}
