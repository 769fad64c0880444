/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The samples the bench's inputs are built from (init code, before any load): the
 * Fashion-MNIST test set (the shipped model's), a folder of .npy tensors with optional labels
 * (any model: the load tester brings its own data), or random tensors of the model's input
 * shape (any model, no data at all: latency and throughput, no accuracy). Every file is
 * checked against the model's input shape; an error names the file and what was expected.
 */
#include "bench/bench.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	BENCH_NPY_MAX_BYTES = 1 << 30,	/* one .npy file of inputs */
	BENCH_MAX_SAMPLES = 1 << 20,	/* samples of a folder or of --random */
};

/* Does t hold whole samples of shape in[1..ndim) (in[0] is the batch)? How many? */
static int
bench_samples_count(const struct tg_tensor *t, const int64_t *in, int ndim, const char *path,
		 size_t *n, struct tg_err *err)
{
	char want[128] = "", got[128] = "";
	int off;

	for (int d = 1, k = 0; d < ndim; d++)
		k += snprintf(want + k, sizeof(want) - (size_t)k, "%s%lld", d > 1 ? "," : "",
			      (long long)in[d]);
	for (int d = 0, k = 0; d < t->ndim && k < (int)sizeof(got); d++)
		k += snprintf(got + k, sizeof(got) - (size_t)k, "%s%lld", d ? "," : "",
			      (long long)t->dims[d]);
	if (t->dtype != TG_DT_F32)
		return tg_err_set(err, -EINVAL, "%s: dtype %s: the bench takes float32 (numpy: "
				  "a.astype('float32'))", path, tg_dtype_name(t->dtype));
	/* [rest] is one sample; [k, rest] is k samples. */
	off = t->ndim == ndim - 1 ? 0 : t->ndim == ndim ? 1 : -1;
	for (int d = 1; off >= 0 && d < ndim; d++)
		if (t->dims[d - 1 + off] != in[d])
			off = -1;
	if (off < 0)
		return tg_err_set(err, -EINVAL, "%s: shape [%s]: the model takes [%s] per sample "
				  "([N,%s] for N samples)", path, got, want, want);
	*n = off ? (size_t)t->dims[0] : 1;
	return 0;
}

static int
bench_npy_filter(const struct dirent *e)
{
	size_t n = strlen(e->d_name);

	return n > 4 && strcmp(e->d_name + n - 4, ".npy") == 0 &&
	       strcmp(e->d_name, "labels.npy") != 0 && e->d_name[0] != '.';
}

/* labels.npy: integers, one per sample, 0..65534. Missing: no labels (not an error). */
static int
bench_labels_load(struct bench_samples *s, const char *dir, struct tg_err *err)
{
	char path[4096];
	struct tg_tensor t = { 0 };
	int rc;

	snprintf(path, sizeof(path), "%s/labels.npy", dir);
	rc = tg_npy_load(path, BENCH_NPY_MAX_BYTES, &t, err);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (t.ndim != 1 || (size_t)t.dims[0] != s->n ||
	    (t.dtype != TG_DT_S32 && t.dtype != TG_DT_S64 && t.dtype != TG_DT_U8)) {
		rc = tg_err_set(err, -EINVAL, "%s: labels must be one integer per sample: "
				"int32/int64/uint8 of shape [%u]", path, s->n);
		goto out;
	}
	s->labels = malloc(s->n * sizeof(*s->labels));
	if (s->labels == NULL) {
		rc = tg_err_set(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	for (unsigned i = 0; i < s->n; i++) {
		int64_t v = t.dtype == TG_DT_U8 ? ((const uint8_t *)t.data)[i] :
			    t.dtype == TG_DT_S32 ? ((const int32_t *)t.data)[i] :
			    ((const int64_t *)t.data)[i];

		if (v < 0 || v >= BENCH_NO_LABEL) {
			rc = tg_err_set(err, -EINVAL, "%s: label %u is %lld, not a class 0..%u",
					path, i, (long long)v, BENCH_NO_LABEL - 1);
			goto out;
		}
		s->labels[i] = (uint16_t)v;
	}
out:
	tg_tensor_free(&t);
	return rc;
}

/* Append t's samples (as many as still fit under limit). */
static int
bench_samples_append(struct bench_samples *s, const struct tg_tensor *t, size_t n, unsigned limit,
		  const char *path, struct tg_err *err)
{
	float *x;

	if (limit != 0 && s->n + n > limit)
		n = limit - s->n;
	if (s->n + n > BENCH_MAX_SAMPLES)
		return tg_err_set(err, -E2BIG, "%s: more than %u samples", path, BENCH_MAX_SAMPLES);
	x = realloc(s->x, (s->n + n) * s->numel * sizeof(float));
	if (x == NULL)
		return tg_err_set(err, -ENOMEM, "%s: out of memory", path);
	memcpy(x + s->n * s->numel, t->data, n * s->numel * sizeof(float));
	s->x = x;
	s->n += (unsigned)n;
	return 0;
}

static int
bench_samples_dir(struct bench_samples *s, const char *dir, const int64_t *in, int ndim,
	       unsigned limit, struct tg_err *err)
{
	struct dirent **ents = NULL;
	char path[4096];
	int n_ent, rc = 0;

	n_ent = scandir(dir, &ents, bench_npy_filter, alphasort);	/* name order: reproducible */
	if (n_ent < 0)
		return tg_err_set(err, -errno, "--inputs %s: %s", dir, strerror(errno));
	for (int i = 0; i < n_ent && rc == 0 && (limit == 0 || s->n < limit); i++) {
		struct tg_tensor t = { 0 };
		size_t n = 0;

		snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name);
		rc = tg_npy_load(path, BENCH_NPY_MAX_BYTES, &t, err);
		if (rc == 0)
			rc = bench_samples_count(&t, in, ndim, path, &n, err);
		if (rc == 0)
			rc = bench_samples_append(s, &t, n, limit, path, err);
		tg_tensor_free(&t);
	}
	for (int i = 0; i < n_ent; i++)
		free(ents[i]);
	free(ents);
	if (rc == 0 && s->n == 0)
		rc = tg_err_set(err, -ENOENT, "--inputs %s: no .npy file of inputs (labels.npy "
				"aside)", dir);
	if (rc == 0)
		rc = bench_labels_load(s, dir, err);
	if (rc == 0)
		snprintf(s->what, sizeof(s->what), "%u samples from %s%s", s->n, dir,
			 s->labels ? " with labels.npy" : " (no labels.npy: no accuracy)");
	return rc;
}

static int
bench_samples_random(struct bench_samples *s, unsigned n, uint64_t seed, const int64_t *in,
		     int ndim, struct tg_err *err)
{
	struct bench_rng r;
	char shape[96];
	size_t off = 0;

	if (n > BENCH_MAX_SAMPLES)
		return tg_err_set(err, -E2BIG, "--random %u: at most %u samples", n, BENCH_MAX_SAMPLES);
	s->x = malloc((size_t)n * s->numel * sizeof(float));
	if (s->x == NULL)
		return tg_err_set(err, -ENOMEM, "--random: out of memory");
	bench_rng_seed(&r, seed);
	for (size_t i = 0; i < (size_t)n * s->numel; i++)
		s->x[i] = (float)bench_rng_unit(&r);
	s->n = n;
	/* The model input's shape less the batch dimension, as the report names it. */
	for (int d = 1; d < ndim && off < sizeof(shape); d++)
		off += (size_t)snprintf(shape + off, sizeof(shape) - off, "%s%lld", d > 1 ? "," : "",
					(long long)in[d]);
	snprintf(s->what, sizeof(s->what), "%u random samples of [%s], uniform in [0, 1), seed %llu "
		 "(no labels: no accuracy)", n, shape, (unsigned long long)seed);
	return 0;
}

static int
bench_samples_fmnist(struct bench_samples *s, const char *dir, unsigned limit, struct tg_err *err)
{
	struct bench_fmnist ds = { 0 };
	int rc;

	if (s->numel != BENCH_FMNIST_ROWS * BENCH_FMNIST_COLS)
		return tg_err_set(err, -EINVAL, "the model's input is not one 28x28 image: give "
				  "it inputs with --inputs DIR (.npy files) or --random N");
	rc = bench_fmnist_load(dir, false, limit, &ds, err);
	if (rc < 0)
		return rc;
	s->labels = malloc(ds.n * sizeof(*s->labels));
	s->x = malloc(ds.n * s->numel * sizeof(float));
	if (s->labels == NULL || s->x == NULL) {
		bench_fmnist_free(&ds);
		return tg_err_set(err, -ENOMEM, "Fashion-MNIST: out of memory");
	}
	memcpy(s->x, ds.images.data, ds.n * s->numel * sizeof(float));
	for (size_t i = 0; i < ds.n; i++)
		s->labels[i] = ds.labels[i];
	s->n = (unsigned)ds.n;
	snprintf(s->what, sizeof(s->what), "%u Fashion-MNIST test images", s->n);
	bench_fmnist_free(&ds);
	return 0;
}

int
bench_samples_load(struct bench_samples *s, const struct bench_inputs_cfg *cfg, const int64_t *in,
		int ndim, struct tg_err *err)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->numel = 1;
	for (int d = 1; d < ndim; d++)
		s->numel *= (size_t)in[d];
	if (cfg->inputs_dir != NULL)
		rc = bench_samples_dir(s, cfg->inputs_dir, in, ndim, cfg->n_images, err);
	else if (cfg->n_random != 0)
		rc = bench_samples_random(s, cfg->n_random, cfg->seed, in, ndim, err);
	else
		rc = bench_samples_fmnist(s, cfg->dataset_dir, cfg->n_images, err);
	if (rc < 0)
		bench_samples_free(s);
	return rc;
}

void
bench_samples_free(struct bench_samples *s)
{
	free(s->x);
	free(s->labels);
	s->x = NULL;
	s->labels = NULL;
	s->n = 0;
}
