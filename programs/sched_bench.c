/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sched-bench: the scheduler alone, fed in-process (no network, no RX lcore, no client on the
 * same cores), so that its batching is what is measured: one model served at several splits
 * at once, in one scheduling mode (whole tails, segments, or the scheduler's own choice),
 * under an open-loop Poisson load or a closed loop at saturation.
 *
 * The requests carry real split tensors: the model's head run on real inputs (Fashion-MNIST
 * test images with --fmnist, else uniform random inputs from a fixed seed), so early exits
 * answer the share they would answer for devices.
 * Part of `scripts/bench_confluence.sh` (docs/BENCHMARKS.md, "Confluence batching"), never of
 * `make test`: speed is measured, not tested.
 *
 * Usage: sched-bench MODEL --splits S,S,.. [--mix W,W,..] [--mode whole|segment|auto]
 *        [--int8 CALIB] [--exit NAME:THRESHOLD]... [--fmnist] [--samples K]
 *        [--rate R | --window N] [--seconds S] [--warmup S] [--deadline-ms D]
 *        [--max-batch B] [--max-delay-us U] [--threads T] [--seed N]
 * Prints one line of key=value pairs (README of the script says what each is).
 */
#include "bench/bench.h"
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
	SB_MAX_SPLITS = 16,
	SB_MAX_OUT = 16,
	SB_POOL = 4096,			/* requests in flight at most (open loop) */
	SB_MAX_LAT = 1 << 20,		/* latencies kept */
};

struct sb_req {
	struct sched_req r;		/* first: done() gets &r */
	uint64_t t_submit;
	unsigned idx;
};

struct sb {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sb_req pool[SB_POOL];
	unsigned free_idx[SB_POOL];
	unsigned n_free;
	uint64_t t0, t1;		/* measured window: requests submitted in it count */
	uint64_t ok, by_status[16], exits[SB_MAX_OUT];
	uint64_t ok_in_window;		/* answered OK inside it, whenever submitted */
	uint32_t *lat_us;
	size_t n_lat;
};

static struct sb sb;

static void
sb_done(void *ctx, struct sched_req **r, unsigned n)
{
	uint64_t now = tg_now_ns();

	(void)ctx;
	pthread_mutex_lock(&sb.mu);
	for (unsigned i = 0; i < n; i++) {
		struct sb_req *q = (struct sb_req *)r[i];

		if (q->r.status == PROTO_ST_OK && now >= sb.t0 && now < sb.t1)
			sb.ok_in_window++;
		if (q->t_submit >= sb.t0 && q->t_submit < sb.t1) {
			if (q->r.status < 16)
				sb.by_status[q->r.status]++;
			if (q->r.status == PROTO_ST_OK) {
				sb.ok++;
				if (q->r.exit_taken < SB_MAX_OUT)
					sb.exits[q->r.exit_taken]++;
				if (sb.n_lat < SB_MAX_LAT)
					sb.lat_us[sb.n_lat++] = (uint32_t)((now - q->t_submit) / 1000);
			}
		}
		sb.free_idx[sb.n_free++] = q->idx;
	}
	pthread_cond_broadcast(&sb.cv);
	pthread_mutex_unlock(&sb.mu);
}

static uint64_t sb_rng = 0x9E3779B97F4A7C15ull;

static double
sb_uniform(void)
{
	sb_rng ^= sb_rng << 13;
	sb_rng ^= sb_rng >> 7;
	sb_rng ^= sb_rng << 17;
	return ((sb_rng >> 11) + 0.5) / 9007199254740992.0;
}

static int
sb_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct sb_opts {
	const char *model, *calib, *mode, *wait;
	const char *splits, *mix;
	const char *exit_arg[SB_MAX_OUT];
	unsigned n_exit_arg;
	bool fmnist;
	unsigned samples, window, max_batch, threads;
	double rate, seconds, warmup, deadline_ms, max_delay_us;
	uint64_t seed;
};

static int
sb_usage(void)
{
	fprintf(stderr, "usage: sched-bench MODEL --splits S,S,.. [--mix W,W,..] "
		"[--mode whole|segment|auto] [--int8 CALIB] [--exit NAME:THRESHOLD]... [--fmnist] "
		"[--samples K] [--rate R | --window N] [--seconds S] [--warmup S] "
		"[--deadline-ms D] [--max-batch B] [--max-delay-us U] [--batch-wait adaptive|fixed] "
		"[--threads T] [--seed N]\n");
	return 2;
}

static int
sb_parse(int argc, char **argv, struct sb_opts *o)
{
	*o = (struct sb_opts){ .mode = "whole", .wait = "adaptive", .samples = 32, .max_batch = 64, .threads = 2,
			       .seconds = 10, .warmup = 2, .deadline_ms = 1000,
			       .max_delay_us = 2000, .seed = 1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-') {
			if (o->model)
				return sb_usage();
			o->model = a;
			continue;
		}
		if (strcmp(a, "--fmnist") == 0) {
			o->fmnist = true;
			continue;
		}
		if (v == NULL)
			return sb_usage();
		i++;
		if (strcmp(a, "--splits") == 0)
			o->splits = v;
		else if (strcmp(a, "--mix") == 0)
			o->mix = v;
		else if (strcmp(a, "--mode") == 0)
			o->mode = v;
		else if (strcmp(a, "--int8") == 0)
			o->calib = v;
		else if (strcmp(a, "--exit") == 0 && o->n_exit_arg < SB_MAX_OUT)
			o->exit_arg[o->n_exit_arg++] = v;
		else if (strcmp(a, "--samples") == 0)
			o->samples = (unsigned)atoi(v);
		else if (strcmp(a, "--rate") == 0)
			o->rate = atof(v);
		else if (strcmp(a, "--window") == 0)
			o->window = (unsigned)atoi(v);
		else if (strcmp(a, "--seconds") == 0)
			o->seconds = atof(v);
		else if (strcmp(a, "--warmup") == 0)
			o->warmup = atof(v);
		else if (strcmp(a, "--deadline-ms") == 0)
			o->deadline_ms = atof(v);
		else if (strcmp(a, "--max-batch") == 0)
			o->max_batch = (unsigned)atoi(v);
		else if (strcmp(a, "--max-delay-us") == 0)
			o->max_delay_us = atof(v);
		else if (strcmp(a, "--batch-wait") == 0)
			o->wait = v;
		else if (strcmp(a, "--threads") == 0)
			o->threads = (unsigned)atoi(v);
		else if (strcmp(a, "--seed") == 0)
			o->seed = strtoull(v, NULL, 10);
		else
			return sb_usage();
	}
	if (o->model == NULL || o->splits == NULL || o->samples < 1 || o->samples > 1024 ||
	    (o->rate > 0) == (o->window > 0) || o->window > SB_POOL || o->seconds <= 0 ||
	    o->max_batch < 1 || o->max_batch > 4096 || o->deadline_ms <= 0 ||
	    (strcmp(o->wait, "adaptive") != 0 && strcmp(o->wait, "fixed") != 0))
		return sb_usage();
	return 0;
}

/* K model inputs: Fashion-MNIST test images, or uniform random values. */
static int
sb_inputs(const struct kern_model *m, const struct sb_opts *o, struct tg_tensor *x,
	  struct tg_err *err)
{
	const struct kern_split *in = kern_model_split(m, 0);

	if (o->fmnist) {
		struct bench_fmnist ds = { 0 };
		int rc = bench_fmnist_load(NULL, false, o->samples, &ds, err);

		if (rc < 0)
			return rc;
		*x = ds.images;
		ds.images = (struct tg_tensor){ 0 };
		bench_fmnist_free(&ds);
		return x->dims[0] == (int64_t)o->samples ? 0
			: tg_err_set(err, -EINVAL, "fewer than %u images", o->samples);
	}
	*x = (struct tg_tensor){ .dtype = TG_DT_F32, .ndim = in->ndim };
	memcpy(x->dims, in->dims, sizeof(x->dims));
	x->dims[0] = o->samples;
	if (tg_tensor_alloc(x) < 0)
		return tg_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < tg_tensor_numel(x); i++)
		((float *)x->data)[i] = (float)sb_uniform();
	return 0;
}

/* The tensor at split row s of each of x's samples (the head run in f32, as a device). */
static int
sb_split_tensors(const struct kern_model *m, unsigned s, const struct tg_tensor *x,
		 float **out, struct tg_err *err)
{
	const struct kern_split *sp = kern_model_split(m, s);
	size_t k = (size_t)x->dims[0], n = sp->numel;
	struct kern_plan_spec spec = { .kind = KERN_PLAN_HEAD, .split = s, .batch = (unsigned)k };
	struct kern_plan *p = NULL;
	struct tg_tensor v;
	int rc;

	*out = malloc(k * n * sizeof(float));
	if (*out == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	if (s == 0) {
		memcpy(*out, x->data, k * n * sizeof(float));
		return 0;
	}
	rc = kern_plan_create(m, &spec, &p, err);
	if (rc < 0)
		return rc;
	kern_plan_input(p, 0, &v);
	memcpy(v.data, x->data, tg_tensor_bytes(&v));
	rc = kern_plan_run(p);
	if (rc == 0) {
		kern_plan_output(p, 0, &v, NULL);
		memcpy(*out, v.data, k * n * sizeof(float));
	} else {
		tg_err_set(err, rc, "head to split %u failed", s);
	}
	kern_plan_free(p);
	return rc;
}

/* Comma-separated list of splits (names, "input" or rows) and weights. */
static int
sb_splits(const struct kern_model *m, const struct sb_opts *o, unsigned *splits,
	  double *cum, unsigned *n, struct tg_err *err)
{
	char buf[1024], *save = NULL, *t;
	double w[SB_MAX_SPLITS], sum = 0;

	snprintf(buf, sizeof(buf), "%s", o->splits);
	*n = 0;
	for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int rc = kern_model_find_split(m, t, err);

		if (rc < 0)
			return rc;
		if (*n == SB_MAX_SPLITS)
			return tg_err_set(err, -EINVAL, "more than %d splits", SB_MAX_SPLITS);
		splits[(*n)++] = (unsigned)rc;
	}
	for (unsigned i = 0; i < *n; i++)
		w[i] = 1;
	if (o->mix) {
		unsigned k = 0;

		snprintf(buf, sizeof(buf), "%s", o->mix);
		for (t = strtok_r(buf, ",", &save); t && k < *n; t = strtok_r(NULL, ",", &save))
			w[k++] = atof(t);
		if (k != *n)
			return tg_err_set(err, -EINVAL, "--mix: %u weights for %u splits", k, *n);
	}
	for (unsigned i = 0; i < *n; i++)
		sum += w[i] > 0 ? w[i] : 0;
	if (sum <= 0)
		return tg_err_set(err, -EINVAL, "--mix: no positive weight");
	for (unsigned i = 0; i < *n; i++)
		cum[i] = (i ? cum[i - 1] : 0) + (w[i] > 0 ? w[i] : 0) / sum;
	return 0;
}

static int
sb_exits(const struct kern_model *m, const struct sb_opts *o, float *conf, struct tg_err *err)
{
	struct kern_model_info info;

	kern_model_get_info(m, &info);
	if (info.n_outputs > SB_MAX_OUT)
		return tg_err_set(err, -EINVAL, "more than %d outputs", SB_MAX_OUT);
	for (unsigned k = 0; k < info.n_outputs; k++)
		conf[k] = 2.f;
	for (unsigned e = 0; e < o->n_exit_arg; e++) {
		const char *c = strchr(o->exit_arg[e], ':');
		unsigned k;

		for (k = 0; c && k < info.n_outputs; k++)
			if (strncmp(kern_model_output(m, k)->name, o->exit_arg[e],
				    (size_t)(c - o->exit_arg[e])) == 0 &&
			    kern_model_output(m, k)->name[c - o->exit_arg[e]] == '\0')
				break;
		if (c == NULL || k == info.n_outputs)
			return tg_err_set(err, -EINVAL, "--exit %s: no such output", o->exit_arg[e]);
		conf[k] = (float)atof(c + 1);
	}
	return 0;
}

static void
sb_sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / 1000000000ull),
			       .tv_nsec = (long)(t % 1000000000ull) };

	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Offer load until t_end: Poisson arrivals at rate, or a closed loop of window requests.
 * @return arrivals the pool had no room for (open loop) */
static uint64_t
sb_feed(struct sched *s, const struct sb_opts *o, const unsigned *splits, const double *cum,
	unsigned n_splits, float *const *data, size_t *numel, uint64_t t_end)
{
	uint64_t next = tg_now_ns(), no_room = 0;

	for (;;) {
		struct sb_req *q;
		double u = sb_uniform();
		unsigned k = 0, smp = (unsigned)(sb_uniform() * o->samples) % o->samples;
		uint64_t now;

		if (o->rate > 0) {
			next += (uint64_t)(-log(sb_uniform()) / o->rate * 1e9);
			if (next >= t_end)
				break;
			sb_sleep_until(next);
		}
		now = tg_now_ns();
		if (now >= t_end)
			break;
		pthread_mutex_lock(&sb.mu);
		while (o->window && sb.n_free == 0 && tg_now_ns() < t_end) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&sb.cv, &sb.mu, &ts);
		}
		if (sb.n_free == 0) {
			pthread_mutex_unlock(&sb.mu);
			no_room += o->rate > 0;
			continue;
		}
		q = &sb.pool[sb.free_idx[--sb.n_free]];
		pthread_mutex_unlock(&sb.mu);
		while (k + 1 < n_splits && u > cum[k])
			k++;
		q->idx = (unsigned)(q - sb.pool);
		q->t_submit = tg_now_ns();
		q->r = (struct sched_req){
			.owner = q, .model = 0, .split = (uint8_t)splits[k], .dtype = TG_DT_F32,
			.scale = 1, .data = data[k] + (size_t)smp * numel[k],
			.deadline_ns = q->t_submit + (uint64_t)(o->deadline_ms * 1e6), .top_k = 1,
		};
		if (sched_submit(s, &q->r) != PROTO_ST_OK)
			sb_done(NULL, (struct sched_req *[]){ &q->r }, 1);
	}
	return no_room;
}

static const char *
sb_status_name(unsigned st)
{
	switch (st) {
	case PROTO_ST_OK: return "ok";
	case PROTO_ST_OVERLOADED: return "overloaded";
	case PROTO_ST_DEADLINE_INFEASIBLE: return "infeasible";
	default: return "other";
	}
}

static void
sb_report(const struct sb_opts *o, struct sched *s, const struct sched_stats *a,
	  const struct sched_stats *b, uint64_t no_room, unsigned n_out)
{
	double secs = (double)(sb.t1 - sb.t0) / 1e9;
	uint64_t batches = b->batches - a->batches, samples = b->samples_run - a->samples_run;
	uint64_t other = 0;
	unsigned starts[64], nseg = sched_segments(s, 0, starts, 64);

	qsort(sb.lat_us, sb.n_lat, sizeof(sb.lat_us[0]), sb_cmp_u32);
	printf("mode=%s segments=%u offered=%s%g ok_per_s=%.1f ok=%llu", o->mode, nseg,
	       o->rate > 0 ? "rate:" : "window:", o->rate > 0 ? o->rate : (double)o->window,
	       (double)sb.ok_in_window / secs, (unsigned long long)sb.ok);
	for (unsigned st = 1; st < 16; st++) {
		if (st == PROTO_ST_OVERLOADED || st == PROTO_ST_DEADLINE_INFEASIBLE)
			printf(" %s=%llu", sb_status_name(st), (unsigned long long)sb.by_status[st]);
		else
			other += sb.by_status[st];
	}
	printf(" other=%llu no_room=%llu", (unsigned long long)other, (unsigned long long)no_room);
	if (sb.n_lat)
		printf(" p50_ms=%.2f p99_ms=%.2f", sb.lat_us[sb.n_lat / 2] / 1e3,
		       sb.lat_us[(size_t)((double)sb.n_lat * 0.99)] / 1e3);
	printf(" batches=%llu mean_batch=%.2f batches_per_ok=%.3f", (unsigned long long)batches,
	       batches ? (double)samples / (double)batches : 0,
	       sb.ok ? (double)samples / (double)sb.ok : 0);
	printf(" exits=");
	for (unsigned k = 0; k < n_out; k++)
		printf("%s%llu", k ? "," : "", (unsigned long long)sb.exits[k]);
	printf(" hist=");
	for (unsigned h = 0; h < SCHED_BATCH_BUCKETS; h++)
		printf("%s%llu", h ? "," : "",
		       (unsigned long long)(b->batch_hist[h] - a->batch_hist[h]));
	/* The layout arrivals entered at the end, and the last prediction (auto only): engine
	 * time per request at capacity in each layout. */
	printf(" layout=%s switches=%llu predicted_whole_us=%.1f predicted_segments_us=%.1f\n",
	       b->model_segments[0] ? "segments" : "whole",
	       (unsigned long long)b->layout_switches, b->model_cost_ns[0][0] / 1e3,
	       b->model_cost_ns[0][1] / 1e3);
}

int
main(int argc, char **argv)
{
	struct sb_opts o;
	struct tg_err err = { 0 };
	struct kern_model *m = NULL;
	struct kern_calib *calib = NULL;
	struct tg_tensor x = { 0 };
	struct sched *s = NULL;
	struct sched_stats st0, st1;
	unsigned splits[SB_MAX_SPLITS], n_splits = 0;
	double cum[SB_MAX_SPLITS];
	float *data[SB_MAX_SPLITS] = { 0 }, conf[SB_MAX_OUT];
	size_t numel[SB_MAX_SPLITS];
	struct kern_model_info info;
	uint64_t no_room, t_end;
	int rc = 1;

	kern_prefer_passive_wait(argv);
	if (sb_parse(argc, argv, &o) != 0)
		return 2;
	sb_rng ^= o.seed * 0x2545F4914F6CDD1Dull;
	kern_set_threads(o.threads);
	pthread_mutex_init(&sb.mu, NULL);
	pthread_cond_init(&sb.cv, NULL);
	sb.lat_us = malloc(SB_MAX_LAT * sizeof(*sb.lat_us));
	if (sb.lat_us == NULL)
		goto out;
	if (kern_model_load(o.model, NULL, &m, &err) < 0 ||
	    (o.calib && kern_calib_load(m, o.calib, &calib, &err) < 0) ||
	    sb_splits(m, &o, splits, cum, &n_splits, &err) < 0 || sb_exits(m, &o, conf, &err) < 0 ||
	    sb_inputs(m, &o, &x, &err) < 0)
		goto fail;
	kern_model_get_info(m, &info);
	for (unsigned i = 0; i < n_splits; i++) {
		numel[i] = kern_model_split(m, splits[i])->numel;
		if (sb_split_tensors(m, splits[i], &x, &data[i], &err) < 0)
			goto fail;
	}
	{
		struct sched_model_cfg mc = {
			.model = m, .precision = calib ? KERN_PREC_INT8 : KERN_PREC_F32,
			.calib = calib, .splits = splits, .n_splits = n_splits, .exit_conf = conf,
			.max_batch = o.max_batch, .max_delay_ns = (uint64_t)(o.max_delay_us * 1e3),
			.batch_wait = strcmp(o.wait, "fixed") == 0 ? SCHED_WAIT_FIXED
							    : SCHED_WAIT_ADAPTIVE,
			.default_deadline_ns = (uint64_t)(o.deadline_ms * 1e6),
		};
		struct sched_cfg sc = {
			.models = &mc, .n_models = 1, .queue_cap = SB_POOL, .max_inflight = SB_POOL,
			.n_workers = 1, .done = sb_done,
			.mode = strcmp(o.mode, "whole") == 0 ? SCHED_MODE_WHOLE
				: strcmp(o.mode, "segment") == 0 ? SCHED_MODE_SEGMENTS
				: SCHED_MODE_AUTO,
		};

		if (strcmp(o.mode, "whole") != 0 && strcmp(o.mode, "segment") != 0 &&
		    strcmp(o.mode, "auto") != 0) {
			tg_err_set(&err, -EINVAL, "--mode %s: whole, segment or auto", o.mode);
			goto fail;
		}
		if (sched_create(&sc, &s, &err) < 0 || sched_start(s, &err) < 0)
			goto fail;
	}
	sb.t0 = tg_now_ns() + (uint64_t)(o.warmup * 1e9);
	sb.t1 = sb.t0 + (uint64_t)(o.seconds * 1e9);
	t_end = sb.t1;
	{
		unsigned cap = o.window ? o.window : SB_POOL;

		for (unsigned i = 0; i < cap; i++)
			sb.free_idx[sb.n_free++] = cap - 1 - i;
	}
	/* The window's statistics: the counters at its start, taken by a first, short feed. */
	sb_feed(s, &o, splits, cum, n_splits, data, numel, sb.t0);
	sched_get_stats(s, &st0);
	no_room = sb_feed(s, &o, splits, cum, n_splits, data, numel, t_end);
	sched_get_stats(s, &st1);
	sched_stop(s);
	sb_report(&o, s, &st0, &st1, no_room, info.n_outputs);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "sched-bench: %s\n", err.msg);
out:
	sched_free(s);
	for (unsigned i = 0; i < n_splits; i++)
		free(data[i]);
	tg_tensor_free(&x);
	kern_calib_free(calib);
	kern_model_free(m);
	free(sb.lat_us);
	return rc;
}
