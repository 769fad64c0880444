/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's inputs, built once before any load: every image's REQUEST datagrams at every
 * (split, dtype) the mix uses, and the engine's own answer for exactly those bytes. Init
 * code: allocates, runs the engine; nothing here runs during a phase.
 */
#include "bench/bench.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

enum { BENCH_BATCH = 64 };	/* samples per engine run: the shipped model's max_batch */

static int bench_cache_key(const struct bench_inputs_cfg *cfg, const char *model_path, char *key,
			size_t len);
static void bench_cache_path(const char *dir, const char *key, char *path, size_t len);
static int bench_cache_load(struct bench_inputs *in, const char *path, const char *key);
static void bench_cache_save(const struct bench_inputs *in, const char *dir, const char *path,
			  const char *key);

static int
bench_arena_append(struct bench_inputs *in, const struct proto_dgram *dg, unsigned n, struct tg_err *err)
{
	size_t need = 0;

	for (unsigned i = 0; i < n; i++)
		need += dg[i].len;
	if (in->arena_len + need > in->arena_cap) {
		size_t cap = in->arena_cap ? in->arena_cap : 1 << 20;
		uint8_t *a;

		while (cap < in->arena_len + need)
			cap *= 2;
		a = realloc(in->arena, cap);
		if (a == NULL)
			return tg_err_set(err, -ENOMEM, "inputs: %zu bytes of datagrams", cap);
		in->arena = a;
		in->arena_cap = cap;
	}
	if (in->n_dg + n > in->cap_dg) {
		size_t cap = in->cap_dg ? in->cap_dg : 4096;
		struct bench_dgram_ref *d;

		while (cap < in->n_dg + n)
			cap *= 2;
		d = realloc(in->dg, cap * sizeof(*d));
		if (d == NULL)
			return tg_err_set(err, -ENOMEM, "inputs: %zu datagram refs", cap);
		in->dg = d;
		in->cap_dg = cap;
	}
	for (unsigned i = 0; i < n; i++) {
		memcpy(in->arena + in->arena_len, dg[i].data, dg[i].len);
		in->dg[in->n_dg++] = (struct bench_dgram_ref){ .off = in->arena_len, .len = dg[i].len };
		in->arena_len += dg[i].len;
	}
	return 0;
}

/* The tail plan output that is the model's final exit: the one with the most FLOPs. */
static int
bench_final_output(const struct kern_model *m, struct kern_plan *p, unsigned *out,
		struct tg_err *err)
{
	struct kern_model_info info;
	uint64_t best_flops = 0;
	bool found = false;

	kern_model_get_info(m, &info);
	for (unsigned k = 0; k < kern_plan_n_outputs(p); k++) {
		struct tg_tensor v;
		const char *name = NULL;

		if (kern_plan_output(p, k, &v, &name) < 0 || name == NULL)
			continue;
		for (unsigned o = 0; o < info.n_outputs; o++) {
			const struct kern_output *ko = kern_model_output(m, o);

			if (strcmp(ko->name, name) == 0 && (!found || ko->flops > best_flops)) {
				best_flops = ko->flops;
				*out = k;
				found = true;
			}
		}
	}
	return found ? 0 : tg_err_set(err, -EINVAL, "model: no exit after the split");
}

static uint16_t
bench_argmax(const float *x, size_t n)
{
	size_t best = 0;

	for (size_t i = 1; i < n && i < BENCH_NO_LABEL; i++)
		if (x[i] > x[best])
			best = i;
	return (uint16_t)best;
}

struct bench_build {			/* scratch of one split's build */
	const struct kern_model *m;
	const struct bench_inputs_cfg *cfg;
	const struct kern_calib *calib;	/* int8 offline answers; NULL: f32 */
	unsigned split;
	const struct kern_split *ks;
	struct kern_tail *tail;
	uint8_t *q;			/* one quantized sample */
	uint8_t *out;			/* one sample's datagrams */
	size_t out_cap;
	struct proto_dgram *dg;
	unsigned max_dg;
};

/* Each model output's top-1 in the tail plan p (run), for the exit that answers. */
static void
bench_offline_exits(struct bench_inputs *in, const struct bench_build *bd, struct kern_plan *p,
		 unsigned dtype, unsigned first, unsigned b)
{
	for (unsigned i = 0; i < b; i++)
		memset(in->msg[bd->split][dtype][first + i].offline_at, 0xFF,
		       sizeof(in->msg[bd->split][dtype][first + i].offline_at));
	for (unsigned k = 0; k < kern_plan_n_outputs(p); k++) {
		struct tg_tensor v;
		const char *name = NULL;

		if (kern_plan_output(p, k, &v, &name) < 0 || name == NULL)
			continue;
		for (unsigned o = 0; o < in->n_exits && o < BENCH_MAX_EXITS; o++) {
			size_t per = tg_tensor_numel(&v) / (size_t)v.dims[0];

			if (strcmp(kern_model_output(bd->m, o)->name, name) != 0)
				continue;
			for (unsigned i = 0; i < b; i++)
				in->msg[bd->split][dtype][first + i].offline_at[o] =
					bench_argmax((const float *)v.data + (size_t)i * per, per);
		}
	}
}

/* One dtype for a batch of b samples (rows: f32 split tensors): datagrams and offline. */
static int
bench_build_dtype(struct bench_inputs *in, struct bench_build *bd, unsigned dtype, const float *rows,
	       unsigned first, unsigned b, struct tg_err *err)
{
	size_t numel = bd->ks->numel, bytes = numel * proto_dtype_size(dtype);
	struct kern_plan *p = kern_tail_plan(bd->tail, b);
	struct tg_tensor v;
	unsigned fin = 0;
	int rc;

	if (p == NULL)
		return tg_err_set(err, -EINVAL, "tail from split %u: no plan for %u", bd->split, b);
	rc = bench_final_output(bd->m, p, &fin, err);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < b; i++) {
		const float *x = rows + (size_t)i * numel;
		struct proto_hdr h = { .client_id = 1, .request_id = 1, .session_id = 1 };
		struct proto_request rq = { .top_k = 1, .flags = bd->cfg->early_exits ? 0 :
							  PROTO_RF_NO_EARLY_EXIT };
		struct bench_msg *msg = &in->msg[bd->split][dtype][first + i];
		const void *raw = x;
		unsigned n_dg = 0;

		rq.c.model_id = bd->cfg->model_id;
		rq.c.variant_id = bd->cfg->variant_id;
		rq.c.split_id = (uint8_t)bd->split;
		rq.c.t.dtype = (uint8_t)dtype;
		rq.c.t.ndim = (uint8_t)bd->ks->ndim;
		for (int d = 0; d < bd->ks->ndim; d++)
			rq.c.t.dims[d] = (uint32_t)bd->ks->dims[d];
		rq.c.t.raw_total = (uint32_t)bytes;
		rq.c.t.scale = 1.0f;
		if (dtype != PROTO_DT_F32) {
			rc = proto_quant_params(dtype, x, numel, &rq.c.t.scale, &rq.c.t.zero_point);
			if (rc == 0)
				rc = proto_quantize(dtype, x, numel, rq.c.t.scale, rq.c.t.zero_point,
						    bd->q);
			if (rc < 0)
				return tg_err_set(err, rc, "split %u: quantizing to dtype %u failed",
						  bd->split, dtype);
			raw = bd->q;
		}
		rc = proto_request_chunk(&h, &rq, raw, in->max_dgram, true, bd->out, bd->out_cap,
					 bd->dg, bd->max_dg, &n_dg);
		if (rc < 0)
			return tg_err_set(err, rc, "split %u dtype %u: chunking failed", bd->split,
					  dtype);
		msg->first_dg = (uint32_t)in->n_dg;
		msg->n_dg = (uint16_t)n_dg;
		if (n_dg > in->max_chunks)
			in->max_chunks = (uint16_t)n_dg;
		rc = bench_arena_append(in, bd->dg, n_dg, err);
		if (rc < 0)
			return rc;
		/* The same bytes, dequantized by the gateway's own loader. */
		rc = kern_plan_load_rows(p, 0, i, 1, (enum tg_dtype)dtype, raw, rq.c.t.scale,
					 rq.c.t.zero_point);
		if (rc < 0)
			return tg_err_set(err, rc, "split %u: loading row %u failed", bd->split, i);
	}
	if (kern_plan_run(p) != 0)
		return tg_err_set(err, -EIO, "tail from split %u: the engine failed", bd->split);
	rc = kern_plan_output(p, fin, &v, NULL);
	if (rc < 0)
		return tg_err_set(err, rc, "tail from split %u: no output", bd->split);
	for (unsigned i = 0; i < b; i++) {
		size_t per = tg_tensor_numel(&v) / (size_t)v.dims[0];
		uint16_t pred = bench_argmax((const float *)v.data + (size_t)i * per, per);

		in->msg[bd->split][dtype][first + i].offline = pred;
		in->offline_hits += pred == in->labels[first + i];
		in->offline_total++;
	}
	bench_offline_exits(in, bd, p, dtype, first, b);
	return 0;
}

/* Every dtype of one split, over all images, in batches. */
static int
bench_build_split(struct bench_inputs *in, struct bench_build *bd, const struct bench_samples *ds,
	       struct tg_err *err)
{
	struct kern_plan_spec hspec = { .kind = KERN_PLAN_HEAD, .split = bd->split };
	struct kern_plan_spec tspec = { .kind = KERN_PLAN_TAIL, .split = bd->split,
					.calib = bd->calib,
					.precision = bd->calib ? KERN_PREC_INT8 : KERN_PREC_F32 };
	struct kern_tail *head = NULL;
	size_t in_numel = kern_model_split(bd->m, 0)->numel, bytes;
	unsigned k;
	size_t b_max;
	int rc;

	rc = kern_tail_create(bd->m, &tspec, BENCH_BATCH, &bd->tail, err);
	if (rc < 0)
		return tg_err_prefix(err, "tail from split %u: ", bd->split);
	if (bd->split > 0) {
		rc = kern_tail_create(bd->m, &hspec, BENCH_BATCH, &head, err);
		if (rc < 0) {
			tg_err_prefix(err, "head to split %u: ", bd->split);
			goto out;
		}
	}
	bytes = bd->ks->numel * sizeof(float);
	rc = proto_chunk_bound(PROTO_T_REQUEST, PROTO_DT_F32, bytes, in->max_dgram, &k, &b_max);
	if (rc < 0 || k > PROTO_MAX_CHUNKS) {
		rc = tg_err_set(err, -EINVAL, "split %u: %zu bytes do not chunk", bd->split, bytes);
		goto out;
	}
	/* f32 bounds every narrower dtype: fewer bytes, never more chunks. */
	bd->q = malloc(bytes);
	bd->out = malloc(b_max);
	bd->dg = calloc(k, sizeof(*bd->dg));
	bd->out_cap = b_max;
	bd->max_dg = k;
	if (bd->q == NULL || bd->out == NULL || bd->dg == NULL) {
		rc = tg_err_set(err, -ENOMEM, "split %u: scratch", bd->split);
		goto out;
	}
	for (unsigned dt = PROTO_DT_F32; dt < PROTO_DT__COUNT; dt++) {
		if (!(in->dtype_mask & (1u << dt)))
			continue;
		in->msg[bd->split][dt] = calloc(in->n_items, sizeof(struct bench_msg));
		if (in->msg[bd->split][dt] == NULL) {
			rc = tg_err_set(err, -ENOMEM, "split %u: messages", bd->split);
			goto out;
		}
	}
	for (unsigned first = 0; first < in->n_items; first += BENCH_BATCH) {
		unsigned b = in->n_items - first < BENCH_BATCH ? in->n_items - first : BENCH_BATCH;
		const float *imgs = ds->x + (size_t)first * in_numel;
		const float *rows = imgs;

		if (head != NULL) {
			struct kern_plan *hp = kern_tail_plan(head, b);
			struct tg_tensor v;

			if (hp == NULL || kern_plan_input(hp, 0, &v) < 0) {
				rc = tg_err_set(err, -EIO, "head to split %u: no plan", bd->split);
				goto out;
			}
			memcpy(v.data, imgs, (size_t)b * in_numel * sizeof(float));
			if (kern_plan_run(hp) != 0 || kern_plan_output(hp, 0, &v, NULL) < 0) {
				rc = tg_err_set(err, -EIO, "head to split %u: the engine failed",
						bd->split);
				goto out;
			}
			rows = v.data;
		}
		for (unsigned dt = PROTO_DT_F32; dt < PROTO_DT__COUNT; dt++) {
			if (!(in->dtype_mask & (1u << dt)))
				continue;
			rc = bench_build_dtype(in, bd, dt, rows, first, b, err);
			if (rc < 0)
				goto out;
		}
	}
	rc = 0;
out:
	free(bd->q);
	free(bd->out);
	free(bd->dg);
	bd->q = bd->out = NULL;
	bd->dg = NULL;
	kern_tail_free(head);
	kern_tail_free(bd->tail);
	bd->tail = NULL;
	return rc;
}

/* Free what a failed cache load left, keep the configuration. */
static void
bench_inputs_reset(struct bench_inputs *in)
{
	for (unsigned s = 0; s < 64; s++)
		for (unsigned d = 0; d < PROTO_DT__COUNT; d++) {
			free(in->msg[s][d]);
			in->msg[s][d] = NULL;
		}
	free(in->labels);
	free(in->dg);
	free(in->arena);
	in->labels = NULL;
	in->dg = NULL;
	in->arena = NULL;
	in->n_items = 0;
	in->n_dg = in->cap_dg = in->arena_len = in->arena_cap = 0;
	in->max_chunks = 0;
	in->offline_hits = in->offline_total = 0;
}

/* The model's outputs, for the report: names, FLOPs, the final one. */
static void
bench_exits_info(struct bench_inputs *in, const struct kern_model *m, const struct kern_model_info *mi)
{
	in->n_exits = mi->n_outputs < BENCH_MAX_EXITS ? mi->n_outputs : BENCH_MAX_EXITS;
	in->final_exit = 0;
	for (unsigned o = 0; o < in->n_exits; o++) {
		const struct kern_output *ko = kern_model_output(m, o);

		snprintf(in->exit_name[o], sizeof(in->exit_name[o]), "%s", ko->name);
		in->exit_flops[o] = ko->flops;
		if (ko->flops >= in->exit_flops[in->final_exit])
			in->final_exit = o;
	}
}

int
bench_inputs_build(struct bench_inputs **out, const struct bench_inputs_cfg *cfg, struct tg_err *err)
{
	struct bench_inputs *in;
	struct kern_model *m = NULL;
	struct kern_model_info info;
	struct bench_samples ds = { 0 };
	struct kern_calib *calib = NULL;
	const struct kern_split *in0;
	char path[4096], cpath[4096], key[8192];
	struct stat stb;
	uint64_t t0 = tg_now_ns();
	int rc;

	if (cfg->model == NULL || cfg->split_mask == 0 || cfg->dtype_mask == 0)
		return tg_err_set(err, -EINVAL, "inputs: a model, splits and dtypes are required");
	if (cfg->dtype_mask & ~(((1u << PROTO_DT__COUNT) - 1) & ~1u))
		return tg_err_set(err, -EINVAL, "inputs: dtype mask 0x%x", cfg->dtype_mask);
	in = calloc(1, sizeof(*in));
	if (in == NULL)
		return tg_err_set(err, -ENOMEM, "inputs: out of memory");
	in->split_mask = cfg->split_mask;
	in->dtype_mask = cfg->dtype_mask;
	in->max_dgram = cfg->max_dgram ? cfg->max_dgram : PROTO_DEFAULT_DGRAM;
	if (stat(cfg->model, &stb) == 0 && S_ISDIR(stb.st_mode))
		snprintf(path, sizeof(path), "%s/model.onnx", cfg->model);
	else
		snprintf(path, sizeof(path), "%s", cfg->model);
	/* Only Fashion-MNIST inputs are cached: a folder's key would need its every file. */
	if (cfg->cache_dir != NULL && cfg->inputs_dir == NULL && cfg->n_random == 0 &&
	    bench_cache_key(cfg, path, key, sizeof(key)) == 0) {
		bench_cache_path(cfg->cache_dir, key, cpath, sizeof(cpath));
		if (bench_cache_load(in, cpath, key) == 0) {
			in->from_cache = true;
			in->has_labels = true;	/* only Fashion-MNIST inputs are cached */
			snprintf(in->what, sizeof(in->what), "%u Fashion-MNIST test images",
				 in->n_items);
			in->build_s = (double)(tg_now_ns() - t0) / 1e9;
			*out = in;
			return 0;
		}
		bench_inputs_reset(in);
	} else {
		cpath[0] = 0;
	}
	kern_set_threads(cfg->threads);
	rc = kern_model_load(path, NULL, &m, err);
	if (rc < 0)
		goto out_free;
	kern_model_get_info(m, &info);
	bench_exits_info(in, m, &info);
	for (unsigned s = 0; s < 64; s++)
		if ((cfg->split_mask >> s & 1) && s >= info.n_splits) {
			rc = tg_err_set(err, -EINVAL, "split %u: %s has splits 0..%u", s, path,
					info.n_splits - 1);
			goto out_model;
		}
	if (cfg->calib != NULL && (rc = kern_calib_load(m, cfg->calib, &calib, err)) < 0)
		goto out_model;
	in0 = kern_model_split(m, 0);
	rc = bench_samples_load(&ds, cfg, in0->dims, in0->ndim, err);
	if (rc < 0)
		goto out_model;
	in->n_items = ds.n;
	in->has_labels = ds.labels != NULL;
	snprintf(in->what, sizeof(in->what), "%s", ds.what);
	in->labels = malloc(ds.n * sizeof(*in->labels));
	if (in->labels == NULL) {
		rc = tg_err_set(err, -ENOMEM, "inputs: labels");
		goto out_ds;
	}
	for (unsigned i = 0; i < ds.n; i++)
		in->labels[i] = ds.labels != NULL ? ds.labels[i] : BENCH_NO_LABEL;
	for (unsigned s = 0; s < 64; s++) {
		struct bench_build bd = { .m = m, .cfg = cfg, .calib = calib, .split = s };

		if (!(cfg->split_mask >> s & 1))
			continue;
		bd.ks = kern_model_split(m, s);
		if (bd.ks->ndim > PROTO_MAX_DIMS) {
			rc = tg_err_set(err, -EINVAL, "split %u: %d dims", s, bd.ks->ndim);
			goto out_ds;
		}
		rc = bench_build_split(in, &bd, &ds, err);
		if (rc < 0)
			goto out_ds;
	}
	in->build_s = (double)(tg_now_ns() - t0) / 1e9;
	if (cpath[0] != 0)
		bench_cache_save(in, cfg->cache_dir, cpath, key);
	bench_samples_free(&ds);
	kern_calib_free(calib);
	kern_model_free(m);
	*out = in;
	return 0;

out_ds:
	bench_samples_free(&ds);
out_model:
	kern_calib_free(calib);
	kern_model_free(m);
out_free:
	bench_inputs_free(in);
	return rc;
}

void
bench_inputs_free(struct bench_inputs *in)
{
	if (in == NULL)
		return;
	bench_inputs_reset(in);
	free(in);
}

/* ---- the cache: built inputs kept on disk, for the next run with the same key ---- */

enum { BENCH_CACHE_VERSION = 3 };	/* 2: labels and offline answers are 16 bits; 3: offline
					 * answers per exit */

/* What the inputs depend on, as text: written at the top of the file and compared whole. */
static int
bench_cache_key(const struct bench_inputs_cfg *cfg, const char *model_path, char *key, size_t len)
{
	struct stat st, cst = { 0 };
	char real[4096], creal[4096] = "f32";

	if (stat(model_path, &st) < 0 || realpath(model_path, real) == NULL)
		return -errno;
	/* The offline answers depend on the precision: int8 ones on the calibration file. */
	if (cfg->calib != NULL && (stat(cfg->calib, &cst) < 0 || realpath(cfg->calib, creal) == NULL))
		return -errno;
	snprintf(key, len, "tailgate-bench inputs v%d\nmodel %s %lld %lld.%09ld\nid %u variant %u\n"
		 "images %u %s\nsplits %llx\ndtypes %x\ndgram %u\noffline %s %lld %lld.%09ld\n"
		 "exits %d\n", BENCH_CACHE_VERSION, real,
		 (long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
		 cfg->model_id, cfg->variant_id, cfg->n_images,
		 cfg->dataset_dir ? cfg->dataset_dir : BENCH_FMNIST_DIR,
		 (unsigned long long)cfg->split_mask, cfg->dtype_mask,
		 cfg->max_dgram ? cfg->max_dgram : PROTO_DEFAULT_DGRAM, creal,
		 (long long)cst.st_size, (long long)cst.st_mtim.tv_sec, cst.st_mtim.tv_nsec,
		 cfg->early_exits);
	return 0;
}

static void
bench_cache_path(const char *dir, const char *key, char *path, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	snprintf(path, len, "%s/inputs-%016llx.bin", dir, (unsigned long long)h);
}

static bool
bench_rd(FILE *f, void *p, size_t n)
{
	return n == 0 || fread(p, 1, n, f) == n;
}

static bool
bench_wr(FILE *f, const void *p, size_t n)
{
	return n == 0 || fwrite(p, 1, n, f) == n;
}

/* Fields in a fixed order; native byte order (a cache is for this machine). */
#define BENCH_CACHE_FIELDS(io, f, in, ok)						\
	do {									\
		ok = ok && io(f, &in->n_items, sizeof(in->n_items));		\
		ok = ok && io(f, &in->max_chunks, sizeof(in->max_chunks));	\
		ok = ok && io(f, &in->max_dgram, sizeof(in->max_dgram));	\
		ok = ok && io(f, &in->offline_hits, sizeof(in->offline_hits));	\
		ok = ok && io(f, &in->offline_total, sizeof(in->offline_total));\
		ok = ok && io(f, &in->n_dg, sizeof(in->n_dg));			\
		ok = ok && io(f, &in->arena_len, sizeof(in->arena_len));	\
		ok = ok && io(f, &in->n_exits, sizeof(in->n_exits));		\
		ok = ok && io(f, in->exit_name, sizeof(in->exit_name));	\
		ok = ok && io(f, in->exit_flops, sizeof(in->exit_flops));	\
		ok = ok && io(f, &in->final_exit, sizeof(in->final_exit));	\
	} while (0)

static int
bench_cache_load(struct bench_inputs *in, const char *path, const char *key)
{
	FILE *f = fopen(path, "rb");
	size_t klen = strlen(key);
	uint16_t want_dgram = in->max_dgram;
	char *head;
	bool ok = true;

	if (f == NULL)
		return -ENOENT;
	head = malloc(klen + 1);
	ok = head != NULL && bench_rd(f, head, klen) && memcmp(head, key, klen) == 0;
	free(head);
	BENCH_CACHE_FIELDS(bench_rd, f, in, ok);
	/* Sizes from the file are checked against what the key promises before allocating. */
	ok = ok && in->n_items >= 1 && in->n_items <= BENCH_FMNIST_MAX_ITEMS &&
	     in->max_dgram == want_dgram && in->max_chunks >= 1 &&
	     in->n_dg <= (size_t)in->n_items * 64 * PROTO_DT__COUNT * PROTO_MAX_CHUNKS &&
	     in->arena_len <= (size_t)in->n_dg * in->max_dgram;
	if (ok) {
		in->labels = malloc(in->n_items * sizeof(*in->labels));
		in->dg = malloc((in->n_dg ? in->n_dg : 1) * sizeof(*in->dg));
		in->arena = malloc(in->arena_len ? in->arena_len : 1);
		in->cap_dg = in->n_dg;
		in->arena_cap = in->arena_len;
		ok = in->labels && in->dg && in->arena &&
		     bench_rd(f, in->labels, in->n_items * sizeof(*in->labels)) &&
		     bench_rd(f, in->dg, in->n_dg * sizeof(*in->dg)) &&
		     bench_rd(f, in->arena, in->arena_len);
	}
	for (unsigned s = 0; ok && s < 64; s++)
		for (unsigned d = 0; ok && d < PROTO_DT__COUNT; d++) {
			if (!((in->split_mask >> s & 1) && (in->dtype_mask >> d & 1)))
				continue;
			in->msg[s][d] = malloc((size_t)in->n_items * sizeof(struct bench_msg));
			ok = in->msg[s][d] != NULL &&
			     bench_rd(f, in->msg[s][d], (size_t)in->n_items * sizeof(struct bench_msg));
			/* The sender's bitmaps and tx slots are sized from max_chunks and
			 * max_dgram: a file may not exceed them (a corrupt one would overflow). */
			for (unsigned i = 0; ok && i < in->n_items; i++)
				ok = in->msg[s][d][i].n_dg >= 1 &&
				     in->msg[s][d][i].n_dg <= in->max_chunks &&
				     (uint64_t)in->msg[s][d][i].first_dg + in->msg[s][d][i].n_dg <=
				     in->n_dg;
		}
	for (size_t i = 0; ok && i < in->n_dg; i++)
		ok = in->dg[i].len >= PROTO_REQUEST_LEN && in->dg[i].len <= in->max_dgram &&
		     in->dg[i].off <= in->arena_len && in->dg[i].len <= in->arena_len - in->dg[i].off;
	ok = ok && fgetc(f) == EOF;
	fclose(f);
	if (!ok)
		in->max_dgram = want_dgram;	/* the build that follows cuts for the config */
	return ok ? 0 : -EINVAL;
}

static void
bench_cache_save(const struct bench_inputs *in, const char *dir, const char *path, const char *key)
{
	char tmp[4200];
	FILE *f;
	bool ok = true;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		goto warn;
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	f = fopen(tmp, "wb");
	if (f == NULL)
		goto warn;
	ok = bench_wr(f, key, strlen(key));
	BENCH_CACHE_FIELDS(bench_wr, f, in, ok);
	ok = ok && bench_wr(f, in->labels, in->n_items * sizeof(*in->labels)) &&
	     bench_wr(f, in->dg, in->n_dg * sizeof(*in->dg)) && bench_wr(f, in->arena, in->arena_len);
	for (unsigned s = 0; ok && s < 64; s++)
		for (unsigned d = 0; ok && d < PROTO_DT__COUNT; d++)
			if (in->msg[s][d] != NULL)
				ok = bench_wr(f, in->msg[s][d],
					   (size_t)in->n_items * sizeof(struct bench_msg));
	ok = fclose(f) == 0 && ok;
	if (ok && rename(tmp, path) == 0)
		return;
	unlink(tmp);
warn:
	fprintf(stderr, "tailgate-bench: warning: inputs not cached in %s: %s\n", dir,
		strerror(errno ? errno : EIO));
}
