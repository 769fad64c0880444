/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine against PyTorch's own numbers: every DIR/<name>/manifest.txt (written by
 * scripts/make_fixtures.py) names a model, an input batch, the reference outputs and
 * reference tensors at some split points. For each model:
 *   whole        the tail from split 0 at batch N (the input's dim 0) vs every output;
 *   head S       for each split with a reference tensor: the head from the input, its split
 *                tensor (and device-side exits) vs the references;
 *   tail S       the tail fed with PyTorch's tensor at S, every output it makes vs the refs;
 *   compose S    for EVERY split: head then tail, all exits vs the references;
 *   batch1 ...   the whole model, and the composition at the first, middle and last
 *                referenced splits, sample by sample (batch-1 plans); and a bucketed
 *                kern_tail run of N-1 samples: plans of different batch sizes must agree.
 * Each check counts once in "N passed, N failed, N skipped".
 * Manifest lines (space separated; '#' starts a comment):
 *   model model.onnx | input <name> <file>.npy | output <name> <file>.npy |
 *   tensor <name> <file>.npy | tolerance <abs> <rel>
 * Usage: fixtures_check DIR
 */
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "tests/harness.h"
#include "util/util.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { FX_MAX_REFS = 256 };
#define FX_MAX_NPY ((size_t)1 << 30)

struct fx_ref {
	char *name;		/* ONNX tensor name */
	struct tg_tensor t;	/* f32, dim 0 = samples */
	bool used;		/* tensor refs: matched a split of the engine's table */
};

struct fx_manifest {
	char dir[4096];
	char model[8192 + 8];
	char input_name[256];
	struct tg_tensor input;
	struct fx_ref out[FX_MAX_REFS];		/* graph outputs */
	unsigned n_out;
	struct fx_ref tens[FX_MAX_REFS];	/* intermediate tensors */
	unsigned n_tens;
	double atol, rtol;
};

static void
fx_manifest_free(struct fx_manifest *mf)
{
	tg_tensor_free(&mf->input);
	for (unsigned i = 0; i < mf->n_out; i++) {
		free(mf->out[i].name);
		tg_tensor_free(&mf->out[i].t);
	}
	for (unsigned i = 0; i < mf->n_tens; i++) {
		free(mf->tens[i].name);
		tg_tensor_free(&mf->tens[i].t);
	}
}

/* A reference .npy as f32 (f16/f64 references converted). */
static int
fx_load_npy(const char *dir, const char *file, struct tg_tensor *out, struct tg_err *err)
{
	char path[8192];
	struct tg_tensor t = { 0 }, u;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	rc = tg_npy_load(path, FX_MAX_NPY, &t, err);
	if (rc < 0) {
		tg_err_prefix(err, "%s: ", path);
		return rc;
	}
	if (t.dtype == TG_DT_F32) {
		*out = t;
		return 0;
	}
	if (t.dtype != TG_DT_F16 && t.dtype != TG_DT_F64) {
		tg_tensor_free(&t);
		return tg_err_set(err, -EINVAL, "%s: dtype %s, expected f32", path,
				  tg_dtype_name(t.dtype));
	}
	u = t;
	u.dtype = TG_DT_F32;
	if (tg_tensor_alloc(&u) < 0) {
		tg_tensor_free(&t);
		return tg_err_set(err, -ENOMEM, "%s: out of memory", path);
	}
	for (size_t i = 0; i < tg_tensor_numel(&t); i++)
		((float *)u.data)[i] = t.dtype == TG_DT_F16 ? proto_f16_to_f32(((uint16_t *)t.data)[i]) :
							      (float)((double *)t.data)[i];
	tg_tensor_free(&t);
	*out = u;
	return 0;
}

static int
fx_manifest_parse(const char *dir, struct fx_manifest *mf, struct tg_err *err)
{
	char path[8192], line[8192];
	unsigned lineno = 0;
	FILE *f;
	int rc = 0;

	memset(mf, 0, sizeof(*mf));
	snprintf(mf->dir, sizeof(mf->dir), "%s", dir);
	mf->atol = 1e-4;
	mf->rtol = 1e-3;
	snprintf(path, sizeof(path), "%s/manifest.txt", dir);
	f = fopen(path, "r");
	if (f == NULL)
		return tg_err_set(err, -errno, "%s: %s", path, strerror(errno));
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		char kw[64], a[4096], b[4096];
		int n;

		lineno++;
		line[strcspn(line, "#\r\n")] = '\0';
		n = sscanf(line, "%63s %4095s %4095s", kw, a, b);
		if (n <= 0)
			continue;
		if (strcmp(kw, "model") == 0 && n == 2) {
			snprintf(mf->model, sizeof(mf->model), "%s/%s", dir, a);
		} else if (strcmp(kw, "input") == 0 && n == 3) {
			snprintf(mf->input_name, sizeof(mf->input_name), "%.255s", a);
			tg_tensor_free(&mf->input);
			rc = fx_load_npy(dir, b, &mf->input, err);
		} else if ((strcmp(kw, "output") == 0 || strcmp(kw, "tensor") == 0) && n == 3) {
			bool is_out = kw[0] == 'o';
			struct fx_ref *r = is_out ? &mf->out[mf->n_out] : &mf->tens[mf->n_tens];

			if ((is_out ? mf->n_out : mf->n_tens) == FX_MAX_REFS) {
				rc = tg_err_set(err, -EFBIG, "%s:%u: more than %d %s lines", path,
						lineno, FX_MAX_REFS, kw);
				break;
			}
			rc = fx_load_npy(dir, b, &r->t, err);
			if (rc == 0) {
				r->name = strdup(a);
				if (r->name == NULL) {
					tg_tensor_free(&r->t);
					rc = tg_err_set(err, -ENOMEM, "out of memory");
				} else {
					*(is_out ? &mf->n_out : &mf->n_tens) += 1;
				}
			}
		} else if (strcmp(kw, "tolerance") == 0 && n == 3) {
			char *e1, *e2;

			mf->atol = strtod(a, &e1);
			mf->rtol = strtod(b, &e2);
			if (*e1 || *e2 || !(mf->atol >= 0) || !(mf->rtol >= 0))
				rc = tg_err_set(err, -EINVAL, "%s:%u: bad tolerance", path, lineno);
		} else {
			rc = tg_err_set(err, -EINVAL, "%s:%u: cannot read '%s'", path, lineno, line);
		}
	}
	fclose(f);
	if (rc == 0 && (mf->model[0] == '\0' || mf->input.data == NULL || mf->n_out == 0))
		rc = tg_err_set(err, -EINVAL, "%s: needs model, input and at least one output",
				path);
	if (rc == 0 && (mf->input.ndim < 1 || mf->input.dims[0] < 1))
		rc = tg_err_set(err, -EINVAL, "%s: input has no samples", path);
	if (rc < 0)
		fx_manifest_free(mf);
	return rc;
}

static struct fx_ref *
fx_find(struct fx_ref *refs, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(refs[i].name, name) == 0)
			return &refs[i];
	return NULL;
}

/* Compare got with want (both f32, same shape). @return true within tolerance. */
static bool
fx_close(const struct fx_manifest *mf, const struct tg_tensor *got, const struct tg_tensor *want,
	 char *why, size_t len)
{
	size_t n = tg_tensor_numel(want), bad = 0, worst = 0;
	double worst_ex = -1, max_abs = 0;
	bool same = got->ndim == want->ndim && got->dtype == TG_DT_F32;

	for (int i = 0; same && i < want->ndim; i++)
		same = got->dims[i] == want->dims[i];
	if (!same) {
		snprintf(why, len, "shape or dtype differs (%d dims [%lld,...], %s; want %d dims "
			 "[%lld,...])", got->ndim, (long long)got->dims[0], tg_dtype_name(got->dtype),
			 want->ndim, (long long)want->dims[0]);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		double g = ((const float *)got->data)[i], w = ((const float *)want->data)[i];
		double d = fabs(g - w), ex = d - (mf->atol + mf->rtol * fabs(w));

		if (isnan(g) != isnan(w))
			ex = INFINITY;
		else if (isnan(g))
			continue;
		max_abs = d > max_abs ? d : max_abs;
		if (ex > 0) {
			bad++;
			if (ex > worst_ex) {
				worst_ex = ex;
				worst = i;
			}
		}
	}
	if (bad == 0)
		return true;
	snprintf(why, len, "%zu of %zu elements off (atol %g rtol %g), max abs err %.3g, worst at "
		 "flat index %zu: got %.6g want %.6g", bad, n, mf->atol, mf->rtol, max_abs, worst,
		 (double)((const float *)got->data)[worst], (double)((const float *)want->data)[worst]);
	return false;
}

/*
 * Compare every output in o (from index k0) that has a reference; mark the model outputs
 * seen in covered[]. @return false with why set on the first mismatch.
 */
static bool
fx_check_outs(struct fx_manifest *mf, const struct kern_model *m, const struct kern_outs *o,
	      unsigned k0, bool *covered, char *why, size_t len)
{
	struct kern_model_info mi;

	kern_model_get_info(m, &mi);
	for (unsigned k = k0; k < o->n; k++) {
		struct fx_ref *r = fx_find(mf->out, mf->n_out, o->name[k]);
		char cmp[512];

		if (r == NULL)
			continue;
		if (!fx_close(mf, &o->t[k], &r->t, cmp, sizeof(cmp))) {
			snprintf(why, len, "output \"%s\": %s", o->name[k], cmp);
			return false;
		}
		for (unsigned e = 0; e < mi.n_outputs; e++)
			if (strcmp(kern_model_output(m, e)->name, o->name[k]) == 0)
				covered[e] = true;
	}
	return true;
}

/* Every model output with a reference was compared. */
static bool
fx_all_covered(struct fx_manifest *mf, const struct kern_model *m, const bool *covered,
	       char *why, size_t len)
{
	struct kern_model_info mi;

	kern_model_get_info(m, &mi);
	for (unsigned e = 0; e < mi.n_outputs; e++) {
		const char *name = kern_model_output(m, e)->name;

		if (!covered[e] && fx_find(mf->out, mf->n_out, name) != NULL) {
			snprintf(why, len, "output \"%s\" was not produced", name);
			return false;
		}
	}
	return true;
}

static const char *fx_cur;	/* the model being checked, for messages */

static void
fx_result(const char *check, bool ok, const char *why)
{
	if (ok) {
		th_passed++;
		return;
	}
	th_failed++;
	printf("FAIL %s: %s: %s\n", fx_cur, check, why);
}

/*
 * head S then tail S at batch b; compares every exit, device- and server-side. h, when not
 * NULL, is the head's output already computed at batch b.
 */
static void
fx_compose(struct fx_manifest *mf, struct kern_stage *head, struct kern_stage *tail, unsigned b,
	   const struct kern_outs *h_done, const char *label)
{
	const struct kern_model *m = head->m;
	unsigned s = head->spec.split;
	struct kern_outs h = { 0 }, t = { 0 };
	const struct kern_outs *hp = h_done ? h_done : &h;
	struct tg_err err = { 0 };
	bool covered[FX_MAX_REFS] = { false };
	char why[1024] = "", check[512];
	bool ok;

	snprintf(check, sizeof(check), "%s %u \"%s\" (batch %u)", label, s,
		 kern_model_split(m, s)->name, b);
	ok = (h_done != NULL || kern_stage_run(head, b, &mf->input, &h, &err) == 0) &&
	     kern_stage_run(tail, b, &hp->t[0], &t, &err) == 0;
	if (!ok)
		snprintf(why, sizeof(why), "%s", err.msg);
	ok = ok && fx_check_outs(mf, m, hp, 1, covered, why, sizeof(why)) &&
	     fx_check_outs(mf, m, &t, 0, covered, why, sizeof(why)) &&
	     fx_all_covered(mf, m, covered, why, sizeof(why));
	fx_result(check, ok, why);
	kern_outs_free(&h);
	kern_outs_free(&t);
}

/* The gateway's path: a kern_tail with batch buckets, fed fewer samples than its bucket. */
static void
fx_bucketed(struct fx_manifest *mf, const struct kern_model *m, unsigned s,
	    const struct tg_tensor *x)
{
	size_t n = (size_t)x->dims[0];
	unsigned use = n > 1 ? (unsigned)n - 1 : 1;
	struct kern_tail *kt = NULL;
	struct kern_outs o = { 0 };
	struct tg_err err = { 0 };
	char why[1024] = "", check[512];
	struct kern_plan *p;
	bool ok = false;

	snprintf(check, sizeof(check), "bucketed tail %u \"%s\" (%u samples, max batch %zu)", s,
		 kern_model_split(m, s)->name, use, n);
	struct kern_plan_spec spec = { .kind = KERN_PLAN_TAIL, .split = s };

	if (kern_tail_create(m, &spec, (unsigned)n, &kt, &err) < 0) {
		snprintf(why, sizeof(why), "kern_tail_create: %s", err.msg);
		goto out;
	}
	p = kern_tail_plan(kt, use);
	if (p == NULL) {
		snprintf(why, sizeof(why), "no plan for %u samples", use);
		goto out;
	}
	if (kern_plan_feed(p, x, 0, use, &err) < 0 || kern_plan_run(p) < 0 ||
	    kern_outs_take(&o, p, 0, use, 0, use, &err) < 0) {
		snprintf(why, sizeof(why), "%s", err.msg[0] ? err.msg : "run failed");
		goto out;
	}
	/* Compare against the first `use` rows of each reference. */
	ok = true;
	for (unsigned k = 0; ok && k < o.n; k++) {
		struct fx_ref *r = fx_find(mf->out, mf->n_out, o.name[k]);
		struct tg_tensor want;
		char cmp[512];

		if (r == NULL)
			continue;
		want = r->t;
		want.dims[0] = use;
		if (!fx_close(mf, &o.t[k], &want, cmp, sizeof(cmp))) {
			snprintf(why, sizeof(why), "output \"%s\": %s", o.name[k], cmp);
			ok = false;
		}
	}
out:
	fx_result(check, ok, why);
	kern_outs_free(&o);
	kern_tail_free(kt);
}

static void
fx_model(const char *dir, const char *name)
{
	struct fx_manifest mf;
	struct kern_model *m = NULL;
	struct kern_model_info mi;
	struct tg_err err = { 0 };
	unsigned n_ref_splits = 0, n_before = (unsigned)(th_passed + th_failed + th_skipped);
	unsigned f_before = (unsigned)th_failed, unmatched = 0, nb, n_refd = 0;
	char why[1024], check[512];
	const struct kern_split *s0;

	fx_cur = name;
	if (fx_manifest_parse(dir, &mf, &err) < 0) {
		fx_result("manifest", false, err.msg);
		return;
	}
	if (kern_model_load(mf.model, NULL, &m, &err) < 0) {
		fx_result("load", false, err.msg);
		fx_manifest_free(&mf);
		return;
	}
	kern_model_get_info(m, &mi);
	nb = (unsigned)mf.input.dims[0];
	s0 = kern_model_split(m, 0);
	{
		bool ok = mf.input.ndim == s0->ndim;

		for (int i = 1; ok && i < s0->ndim; i++)
			ok = mf.input.dims[i] == s0->dims[i];
		snprintf(why, sizeof(why), "input has %d dims, the model's %d (or dims differ)",
			 mf.input.ndim, s0->ndim);
		fx_result("input shape", ok, why);
		if (!ok)
			goto out;
	}
	for (unsigned r = 0; r < mf.n_out; r++) {
		bool found = false;

		for (unsigned e = 0; e < mi.n_outputs; e++)
			found = found || strcmp(kern_model_output(m, e)->name, mf.out[r].name) == 0;
		snprintf(why, sizeof(why), "reference output \"%s\" is not a graph output",
			 mf.out[r].name);
		if (!found)
			fx_result("outputs", false, why);
	}

	/* whole: the tail from the input. */
	{
		struct kern_stage whole = { .m = m, .spec = { .kind = KERN_PLAN_TAIL, .split = 0 } };
		struct kern_outs o = { 0 };
		bool covered[FX_MAX_REFS] = { false }, ok;

		why[0] = '\0';
		ok = kern_stage_run(&whole, nb, &mf.input, &o, &err) == 0;
		if (!ok)
			snprintf(why, sizeof(why), "%s", err.msg);
		ok = ok && fx_check_outs(&mf, m, &o, 0, covered, why, sizeof(why)) &&
		     fx_all_covered(&mf, m, covered, why, sizeof(why));
		snprintf(check, sizeof(check), "whole model (batch %u)", nb);
		fx_result(check, ok, why);
		kern_outs_free(&o);

		/* Sample by sample: batch-1 plans must agree with batch-N ones. */
		memset(covered, 0, sizeof(covered));
		why[0] = '\0';
		ok = kern_stage_run(&whole, 1, &mf.input, &o, &err) == 0;
		if (!ok)
			snprintf(why, sizeof(why), "%s", err.msg);
		ok = ok && fx_check_outs(&mf, m, &o, 0, covered, why, sizeof(why)) &&
		     fx_all_covered(&mf, m, covered, why, sizeof(why));
		fx_result("whole model (batch 1, sample by sample)", ok, why);
		kern_outs_free(&o);
		kern_stage_free(&whole);
	}

	for (unsigned s = 1; s < mi.n_splits; s++)
		n_refd += fx_find(mf.tens, mf.n_tens, kern_model_split(m, s)->name) != NULL;
	for (unsigned s = 1; s < mi.n_splits; s++) {
		const struct kern_split *sp = kern_model_split(m, s);
		struct fx_ref *ref = fx_find(mf.tens, mf.n_tens, sp->name);
		struct kern_stage head = { .m = m, .spec = { .kind = KERN_PLAN_HEAD, .split = s } };
		struct kern_stage tail = { .m = m, .spec = { .kind = KERN_PLAN_TAIL, .split = s } };
		struct kern_outs h = { 0 }, t = { 0 };
		bool covered[FX_MAX_REFS] = { false }, ok, head_ok;
		char cmp[512];

		/* head S: the split tensor (vs the reference, if any) and the device-side exits. */
		why[0] = '\0';
		head_ok = ok = kern_stage_run(&head, nb, &mf.input, &h, &err) == 0;
		if (!ok)
			snprintf(why, sizeof(why), "%s", err.msg);
		if (ref != NULL) {
			ref->used = true;
			n_ref_splits++;
			if (ok && !fx_close(&mf, &h.t[0], &ref->t, cmp, sizeof(cmp))) {
				snprintf(why, sizeof(why), "split tensor: %s", cmp);
				ok = false;
			}
			ok = ok && fx_check_outs(&mf, m, &h, 1, covered, why, sizeof(why));
			snprintf(check, sizeof(check), "head %u \"%s\"", s, sp->name);
			fx_result(check, ok, why);

			/* tail S fed with PyTorch's tensor. */
			memset(covered, 0, sizeof(covered));
			why[0] = '\0';
			ok = kern_stage_run(&tail, nb, &ref->t, &t, &err) == 0;
			if (!ok)
				snprintf(why, sizeof(why), "%s", err.msg);
			ok = ok && fx_check_outs(&mf, m, &t, 0, covered, why, sizeof(why));
			for (unsigned e = 0; ok && e < mi.n_outputs; e++)
				if (kern_model_output_in_tail(m, s, e) && !covered[e] &&
				    fx_find(mf.out, mf.n_out, kern_model_output(m, e)->name)) {
					snprintf(why, sizeof(why), "server-side exit \"%s\" not produced",
						 kern_model_output(m, e)->name);
					ok = false;
				}
			snprintf(check, sizeof(check), "tail %u \"%s\" from the reference", s,
				 sp->name);
			fx_result(check, ok, why);
			kern_outs_free(&t);
		}
		/* compose S, from the head's own tensor: every split, referenced or not. */
		if (head_ok)
			fx_compose(&mf, &head, &tail, nb, &h, "compose");
		else
			fx_result("compose", false, why);
		/*
		 * And sample by sample at the first, middle and last referenced splits: enough to
		 * catch a plan whose result depends on its batch size, at a third of the plans.
		 */
		if (ref != NULL && (n_ref_splits == 1 || n_ref_splits == n_refd / 2 + 1 ||
				    n_ref_splits == n_refd))
			fx_compose(&mf, &head, &tail, 1, NULL, "batch1 compose");
		kern_outs_free(&h);
		kern_stage_free(&head);
		kern_stage_free(&tail);
	}

	/* A bucket fed fewer samples than it holds, as the gateway's batches are. */
	fx_bucketed(&mf, m, 0, &mf.input);
	for (unsigned i = 0; i < mf.n_tens; i++)
		unmatched += !mf.tens[i].used;
	if (unmatched > 0) {
		printf("note %s: %u reference tensors are not split points of the engine:", name,
		       unmatched);
		for (unsigned i = 0, k = 0; i < mf.n_tens && k < 8; i++)
			if (!mf.tens[i].used) {
				printf(" \"%s\"", mf.tens[i].name);
				k++;
			}
		printf("%s\n", unmatched > 8 ? " ..." : "");
	}
out:
	printf("model %s: %u splits, %u with reference tensors (%u tensors in the manifest), "
	       "%u outputs, %u samples: %u checks, %u failed\n", name, mi.n_splits, n_ref_splits,
	       mf.n_tens, mi.n_outputs, nb,
	       (unsigned)(th_passed + th_failed + th_skipped) - n_before,
	       (unsigned)th_failed - f_before);
	kern_model_free(m);
	fx_manifest_free(&mf);
}

static int
fx_filter(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
	const char *root = argc > 1 ? argv[1] : "tests/fixtures";
	struct dirent **ents = NULL;
	unsigned n_models = 0;
	int n;

	(void)th_cur_failed;	/* counts are kept per check here, not per TH_RUN */
	(void)th_cur_skipped;
	/* Batches of a few samples gain nothing from a second thread; OpenMP barriers on a busy
	 * 2-core machine cost most of the run (perf: 85% in libgomp spin-waits with 2). */
	kern_set_threads(1);
	n = scandir(root, &ents, fx_filter, alphasort);
	if (n < 0) {
		fprintf(stderr, "skip: %s: %s (fixtures come from scripts/make_fixtures.py)\n", root,
			strerror(errno));
		th_skipped++;
		TH_DONE();
	}
	for (int i = 0; i < n; i++) {
		char dir[4096], path[4200];

		snprintf(dir, sizeof(dir), "%s/%s", root, ents[i]->d_name);
		snprintf(path, sizeof(path), "%s/manifest.txt", dir);
		if (access(path, R_OK) == 0) {
			fx_model(dir, ents[i]->d_name);
			n_models++;
		}
		free(ents[i]);
	}
	free(ents);
	if (n_models == 0) {
		fprintf(stderr, "skip: no %s/*/manifest.txt (scripts/make_fixtures.py)\n", root);
		th_skipped++;
	}
	TH_DONE();
}
