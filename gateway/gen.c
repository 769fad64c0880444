/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Generations of served models and reload. A generation is a repository and the scheduler
 * built on it (plans built and measured: seconds for large models). SIGHUP builds the next
 * one on a thread of its own, off the serving path: the current generation serves
 * meanwhile. Then it is published (the RX lcores' deliver hook submits to it from its next
 * burst, the catalog swaps without stopping them), the old one finishes what it accepted and
 * is retired, its scheduler counters folded into the totals so /metrics never goes back.
 */
#include "gateway/gw_int.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum { GW_BUILDER_NICE = 10 };

/* Counter slot of a model name: found, or added with its exits' names (under gen_mu). */
static unsigned
gw_slot_of(struct gw *g, const struct gw_model *gm)
{
	struct kern_model_info info;
	unsigned i;

	for (i = 0; i < g->n_slots; i++)
		if (strcmp(g->slot_name[i], gm->label) == 0)
			break;
	if (i == GW_N_SLOTS)
		return GW_SLOT_UNKNOWN;	/* 128 names over reloads: counted as unknown */
	if (i == g->n_slots) {
		snprintf(g->slot_name[i], sizeof(g->slot_name[i]), "%s", gm->label);
		g->n_slots++;
	}
	/* A reload may change the exits: the names are the latest generation's. */
	kern_model_get_info(gm->m, &info);
	for (unsigned e = 0; e < info.n_outputs && e < GW_N_EXITS; e++)
		snprintf(g->exit_name[i][e], GW_NAME_MAX, "%s", kern_model_output(gm->m, e)->name);
	return i;
}

static void
gw_gen_free(struct gw_gen *gen)
{
	if (gen == NULL)
		return;
	sched_free(gen->sched);
	gw_repo_free(gen->repo);
	free(gen);
}

/*
 * Whether variant b's split sb computes from the tensor a device sent for variant a's
 * split sa, as a would have it: the same shape, and the same head made it. That holds at
 * the model input (nothing computed yet), and at a tensor of the same name when both are
 * the base or a drop variant of it whose head to there is the base's own (a block dropped
 * before the split would cost the head FLOPs: equal FLOPs, nothing dropped there).
 */
static bool
gw_same_tensor(const struct gw_model *base, const struct gw_model *a, unsigned sa,
	       const struct gw_model *b, unsigned sb)
{
	const struct kern_split *pa = kern_model_split(a->m, sa), *pb = kern_model_split(b->m, sb);
	const struct kern_split *pbase;
	int rb;

	if (pa == NULL || pb == NULL || pa->ndim != pb->ndim)
		return false;
	for (int d = 0; d < pa->ndim; d++)
		if (pa->dims[d] != pb->dims[d])
			return false;
	if (sa == 0 && sb == 0)
		return true;	/* the model input */
	if ((a->variant != 0 && a->n_drop == 0) || (b->variant != 0 && b->n_drop == 0) ||
	    base == NULL || strcmp(pa->name, pb->name) != 0)
		return false;	/* a file variant's inner tensors are its own */
	rb = kern_model_find_split(base->m, pa->name, NULL);
	pbase = rb < 0 ? NULL : kern_model_split(base->m, (unsigned)rb);
	return pbase != NULL && pa->head_flops == pbase->head_flops &&
	       pb->head_flops == pbase->head_flops;
}

/*
 * Degrade instead of shed (sched.h): for each served split of model i, the other variants
 * of its family that take that very tensor, with a cheaper tail and a known accuracy.
 * Computed once per generation (load, reload), so admission only walks a short list.
 * @return how many (at most SCHED_MAX_DEGRADE; the rest are left out)
 */
static unsigned
gw_degrade_find(const struct gw_repo *repo, unsigned i, struct sched_degrade *out)
{
	const struct gw_model *a = &repo->models[i], *base = NULL;
	unsigned n = 0;

	for (unsigned j = 0; j < repo->n; j++)
		if (repo->models[j].conf.id == a->conf.id && repo->models[j].variant == 0)
			base = &repo->models[j];
	for (unsigned k = 0; k < a->n_splits; k++) {
		unsigned sa = a->splits[k];
		const struct kern_split *pa = kern_model_split(a->m, sa);

		for (unsigned j = 0; j < repo->n; j++) {
			const struct gw_model *b = &repo->models[j];

			if (j == i || b->conf.id != a->conf.id || b->accuracy_bp == 0)
				continue;
			for (unsigned l = 0; l < b->n_splits && n < SCHED_MAX_DEGRADE; l++) {
				unsigned sb = b->splits[l];

				if (!gw_same_tensor(base, a, sa, b, sb) ||
				    kern_model_split(b->m, sb)->tail_flops >= pa->tail_flops)
					continue;
				out[n++] = (struct sched_degrade){ .split = (uint8_t)sa,
					.to_split = (uint8_t)sb, .to_model = (uint16_t)j,
					.accuracy_bp = b->accuracy_bp };
			}
		}
	}
	return n;
}

/*
 * Load the repository (io_uring reads; the summary on stderr) and build and start its
 * scheduler: plans built and measured on the calling thread.
 */
int
gw_gen_build(struct gw *g, uint32_t id, struct gw_gen **out, struct tg_err *err)
{
	struct sched_cfg sc = { 0 };
	struct gw_gen *gen;
	int rc;

	gen = calloc(1, sizeof(*gen));
	if (gen == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	gen->g = g;
	gen->id = id;
	gen->log_base = (id % 2) * g->cfg.workers;
	rc = gw_repo_load(g->cfg.models_dir, &gen->repo, err);
	if (rc < 0)
		goto out_free;
	gw_repo_summary(gen->repo, stderr);
	pthread_mutex_lock(&g->gen_mu);
	for (unsigned i = 0; i < gen->repo->n; i++)
		gen->slot[i] = gw_slot_of(g, &gen->repo->models[i]);
	pthread_mutex_unlock(&g->gen_mu);
	for (unsigned i = 0; i < gen->repo->n; i++) {
		const struct gw_model *gm = &gen->repo->models[i];

		gen->mc[i] = (struct sched_model_cfg){
			.model = gm->m,
			.precision = gm->conf.precision,
			.calib = gm->calib,
			.splits = gm->splits,
			.n_splits = gm->n_splits,
			.exit_conf = gm->exit_conf,
			.max_batch = gm->conf.max_batch,
			.max_delay_ns = (uint64_t)gm->conf.max_delay_us * 1000ull,
			.batch_wait = (enum sched_batch_wait)gm->conf.batch_wait,
			.default_deadline_ns = (uint64_t)gm->conf.deadline_ms * 1000000ull,
		};
		if (g->cfg.degrade) {
			gen->mc[i].n_degrade = gw_degrade_find(gen->repo, i, gen->deg[i]);
			gen->mc[i].degrade = gen->deg[i];
		}
	}
	pthread_mutex_lock(&g->gen_mu);
	for (unsigned i = 0; i < gen->repo->n; i++)
		for (unsigned k = 0; k < gen->mc[i].n_degrade; k++) {
			unsigned a = gen->slot[i], b = gen->slot[gen->deg[i][k].to_model];

			if (a < GW_N_SLOTS && b < GW_N_SLOTS)
				g->degrade_pair[a][b] = true;
		}
	pthread_mutex_unlock(&g->gen_mu);
	sc.models = gen->mc;
	sc.n_models = gen->repo->n;
	sc.queue_cap = g->cfg.queue_cap;
	sc.max_inflight = g->cfg.max_inflight;
	sc.n_workers = g->cfg.workers;
	sc.mode = (enum sched_mode)g->cfg.whole_tail;
	sc.done = gw_path_done;
	sc.ctx = gen;
	rc = sched_create(&sc, &gen->sched, err);
	if (rc < 0)
		goto out_repo;
	rc = sched_start(gen->sched, err);
	if (rc < 0)
		goto out_free;	/* gw_gen_free: sched_free stops the workers started */
	*out = gen;
	return 0;

out_repo:
	gw_repo_free(gen->repo);
	free(gen);
	return rc;
out_free:
	gw_gen_free(gen);
	return rc;
}

/* One catalog entry per served (model, variant, split): what a device needs before its first
 * request. */
static void
gw_catalog_model(const struct gw_model *gm, struct proto_catalog_entry *e)
{
	struct kern_model_info info;
	const struct kern_output *fin;
	unsigned f = 0;
	uint64_t classes = 1;

	kern_model_get_info(gm->m, &info);
	for (unsigned o = 1; o < info.n_outputs; o++)	/* final: most FLOPs, as sched */
		if (kern_model_output(gm->m, o)->flops >= kern_model_output(gm->m, f)->flops)
			f = o;
	fin = kern_model_output(gm->m, f);
	for (int d = 1; d < fin->ndim; d++)
		classes *= (uint64_t)fin->dims[d];
	for (unsigned k = 0; k < gm->n_splits; k++) {
		const struct kern_split *sp = kern_model_split(gm->m, gm->splits[k]);
		struct proto_catalog_entry *c = &e[k];

		c->model_id = gm->conf.id;
		c->variant_id = gm->variant;
		c->split_id = (uint8_t)sp->index;
		c->ndim = (uint8_t)(sp->ndim < PROTO_MAX_DIMS ? sp->ndim : PROTO_MAX_DIMS);
		for (unsigned d = 0; d < c->ndim; d++)
			c->dims[d] = (uint32_t)sp->dims[d];
		c->dtype_mask = 1u << PROTO_DT_F32 | 1u << PROTO_DT_F16 | 1u << PROTO_DT_S8 |
				1u << PROTO_DT_U8;
		c->n_classes = (uint16_t)(classes <= UINT16_MAX ? classes : 0);
		c->head_kflop = (uint32_t)(sp->head_flops / 1000);
		c->tail_kflop = (uint32_t)(sp->tail_flops / 1000);
		c->accuracy_bp = gm->accuracy_bp;
		for (unsigned o = 0; o < info.n_outputs; o++)
			c->n_exits += kern_model_output_in_tail(gm->m, sp->index, o);
		/* The wire's name is 15 characters and a NUL: longer names are cut. */
		_Static_assert(PROTO_NAME_LEN == 16, "name format below");
		snprintf(c->name, sizeof(c->name), "%.15s", gm->conf.name);
	}
}

/*
 * Make gen the one requests go to (the RX lcores' next burst), then the catalog HELLO_REPLYs
 * list, swapped while the RX lcores run. @return 0, or -errno with err set (catalog: the
 * previous one stays listed, gen serves anyway).
 */
int
gw_gen_publish(struct gw *g, struct gw_gen *gen, struct tg_err *err)
{
	const struct gw_repo *repo = gen->repo;
	struct proto_catalog_entry *e;
	unsigned n = 0;
	int rc;

	pthread_mutex_lock(&g->gen_mu);
	gen->next = g->live;
	g->live = gen;
	atomic_store_explicit(&g->cur, gen, memory_order_release);
	pthread_mutex_unlock(&g->gen_mu);
	for (unsigned i = 0; i < repo->n; i++)
		n += repo->models[i].n_splits;
	e = calloc(n ? n : 1, sizeof(*e));
	if (e == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory for the catalog");
	n = 0;
	for (unsigned i = 0; i < repo->n; i++) {
		gw_catalog_model(&repo->models[i], e + n);
		n += repo->models[i].n_splits;
	}
	rc = dp_catalog_set(g->dp, e, n, gen->id, err);
	free(e);
	return rc;
}

/* Fold a generation's scheduler counters into *t, by slot. */
static void
gw_stats_add(struct gw_totals *t, const struct gw_gen *gen, const struct sched_stats *s)
{
	t->st.submitted += s->submitted;
	t->st.completed += s->completed;
	t->st.batches += s->batches;
	t->st.samples_run += s->samples_run;
	t->st.expired_in_queue += s->expired_in_queue;
	t->st.shed_on_arrival += s->shed_on_arrival;
	t->st.degraded += s->degraded;
	t->st.layout_switches += s->layout_switches;
	for (unsigned i = 0; i < 16; i++) {
		t->st.by_status[i] += s->by_status[i];
		t->st.exits[i] += s->exits[i];
	}
	for (unsigned h = 0; h < SCHED_BATCH_BUCKETS; h++)
		t->st.batch_hist[h] += s->batch_hist[h];
	for (unsigned w = 0; w < SCHED_MAX_WORKERS; w++) {	/* by worker index, over gens */
		t->st.engine_ns[w] += s->engine_ns[w];
		t->st.engine_cpu_ns[w] += s->engine_cpu_ns[w];
		t->st.worker_cpu_ns[w] += s->worker_cpu_ns[w];
	}
	for (unsigned m = 0; m < gen->repo->n && m < SCHED_MAX_MODELS; m++) {
		unsigned sl = gen->slot[m];

		if (sl >= GW_N_SLOTS)
			continue;
		for (unsigned e = 0; e < GW_N_EXITS; e++)
			t->exits[sl][e] += s->model_exits[m][e];
		for (unsigned h = 0; h < SCHED_BATCH_BUCKETS; h++)
			t->batch_hist[sl][h] += s->model_batch_hist[m][h];
		t->samples_run[sl] += s->model_samples_run[m];
	}
}

void
gw_stats_sum(struct gw *g, struct gw_totals *out)
{
	struct sched_stats s;

	*out = g->tot;
	for (struct gw_gen *gen = g->live; gen != NULL; gen = gen->next) {
		sched_get_stats(gen->sched, &s);
		gw_stats_add(out, gen, &s);
	}
}

/*
 * Retire a generation that no longer serves: once no RX lcore can still be submitting to
 * it (dp_synchronize()), its scheduler finishes what it accepted (its done hook answers
 * each), its counters go to the totals and it is freed. Thread: main or builder.
 */
void
gw_gen_retire(struct gw *g, struct gw_gen *old)
{
	struct gw_gen **pp;
	struct sched_stats s;

	if (old == NULL)
		return;
	dp_synchronize(g->dp);
	sched_stop(old->sched);	/* drains: every accepted request answered */
	/* Its final counters leave the live list and join the totals in one step. */
	pthread_mutex_lock(&g->gen_mu);
	sched_get_stats(old->sched, &s);
	gw_stats_add(&g->tot, old, &s);
	for (pp = &g->live; *pp != NULL && *pp != old; pp = &(*pp)->next)
		;
	if (*pp == old)
		*pp = old->next;
	pthread_mutex_unlock(&g->gen_mu);
	gw_gen_free(old);
}

/* The builder thread: build, publish, retire the generation replaced. */
static void *
gw_reload_main(void *arg)
{
	struct gw *g = arg;
	struct tg_err err = { 0 };
	struct gw_gen *gen, *old = atomic_load(&g->cur);
	unsigned p;

	gw_producer_set(g, GW_RING_BUILDER);
	p = gw_producer(g, NULL);
	/* Below the serving threads: on a 2-core host the build (oneDNN's threads it starts
	 * inherit this) would otherwise take half the compute the old generation serves with.
	 * Its first latency estimates are then pessimistic; the EWMA corrects them in a few
	 * batches. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), GW_BUILDER_NICE);
	gw_log_event(g->log, p, "SIGHUP: reloading models from %s (generation %u serves meanwhile)",
		     g->cfg.models_dir, old->id);
	gw_keys_reload(g, p);
	if (gw_gen_build(g, old->id + 1, &gen, &err) < 0) {
		gw_log_event(g->log, p, "reload failed, previous models kept: %s", err.msg);
		goto out;
	}
	if (atomic_load(&g->stopping)) {	/* SIGTERM meanwhile: it never serves */
		gw_gen_free(gen);
		goto out;
	}
	if (gw_gen_publish(g, gen, &err) < 0)
		gw_log_event(g->log, p, "reload: catalog: %s (previous one listed)", err.msg);
	gw_log_event(g->log, p, "reload: generation %u serves %u model(s)", gen->id,
		     gen->repo->n);
	gw_gen_retire(g, old);	/* drains: its done hook answers through it */
out:
	atomic_store(&g->build_state, GW_BUILD_DONE);
	return NULL;
}

/* Start a build; the caller saw build_state IDLE (main thread only). */
void
gw_reload_start(struct gw *g)
{
	int rc;

	atomic_store(&g->build_state, GW_BUILD_RUNNING);
	rc = pthread_create(&g->builder, NULL, gw_reload_main, g);
	if (rc == 0)
		pthread_setname_np(g->builder, "tg-reload");	/* top -H, perf; only a name */
	if (rc != 0) {
		atomic_store(&g->build_state, GW_BUILD_IDLE);
		gw_log_event(g->log, gw_producer(g, NULL), "reload: thread: %s", strerror(rc));
	}
}

void
gw_reload_reap(struct gw *g, bool wait)
{
	int st = atomic_load(&g->build_state);

	if (st == GW_BUILD_IDLE || (st == GW_BUILD_RUNNING && !wait))
		return;
	pthread_join(g->builder, NULL);
	atomic_store(&g->build_state, GW_BUILD_IDLE);
}
