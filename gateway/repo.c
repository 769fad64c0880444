/*
 * The model repository: every models/<name>/ folder with a model.onnx and a model.conf is
 * a served model. Names in model.conf are resolved against the loaded graph here, once, so
 * a typo is a startup error that names the file, not a request that fails later.
 */
#include "gateway/gateway.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int
gw_cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
gw_model_resolve(struct gw_model *gm, const char *conf_path, struct tg_err *err)
{
	struct kern_model_info info;

	kern_model_get_info(gm->m, &info);
	if (info.n_splits == 0)
		return tg_err_set(err, -EINVAL, "%s: the model has no split points (one input?)",
				  conf_path);
	if (info.n_outputs > GW_MAX_EXITS)
		return tg_err_set(err, -EINVAL, "%s: more than %d outputs", conf_path, GW_MAX_EXITS);
	gm->n_splits = 0;
	if (gm->conf.n_splits == 0) {	/* none listed: every split is served */
		for (unsigned i = 0; i < info.n_splits && i < GW_MAX_SPLITS; i++)
			gm->splits[gm->n_splits++] = i;
	}
	for (unsigned i = 0; i < gm->conf.n_splits; i++) {
		struct tg_err e2 = { 0 };
		int row = kern_model_find_split(gm->m, gm->conf.splits[i], &e2);

		if (row < 0)
			return tg_err_set(err, -EINVAL, "%s: splits: %s", conf_path, e2.msg);
		for (unsigned k = 0; k < gm->n_splits; k++)
			if (gm->splits[k] == (unsigned)row)
				return tg_err_set(err, -EINVAL, "%s: splits: '%s' is split %d twice",
						  conf_path, gm->conf.splits[i], row);
		gm->splits[gm->n_splits++] = (unsigned)row;
	}
	for (unsigned o = 0; o < GW_MAX_EXITS; o++)
		gm->exit_conf[o] = 2.f;
	for (unsigned i = 0; i < gm->conf.n_exits; i++) {
		bool found = false;

		for (unsigned o = 0; o < info.n_outputs; o++)
			if (strcmp(kern_model_output(gm->m, o)->name, gm->conf.exit_name[i]) == 0) {
				gm->exit_conf[o] = gm->conf.exit_conf[i];
				found = true;
			}
		if (!found)
			return tg_err_set(err, -EINVAL, "%s: exit: the model has no output '%s'",
					  conf_path, gm->conf.exit_name[i]);
	}
	return 0;
}

static int
gw_model_load(struct gw_model *gm, const char *dir, const char *name, struct tg_err *err)
{
	char path[GW_PATH_MAX * 2];
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	gw_model_conf_default(&gm->conf);
	snprintf(gm->conf.name, sizeof(gm->conf.name), "%s", name);
	snprintf(path, sizeof(path), "%s/%s/model.conf", dir, name);
	rc = tg_file_read(path, 1u << 20, &buf, &len, err);
	if (rc < 0)
		return rc;
	rc = gw_model_conf_parse((const char *)buf, len, path, &gm->conf, err);
	free(buf);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s/model.onnx", dir, name);
	rc = kern_model_load(path, NULL, &gm->m, err);
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s/model.conf", dir, name);
	rc = gw_model_resolve(gm, path, err);
	if (rc < 0)
		return rc;
	if (gm->conf.precision == KERN_PREC_INT8) {
		snprintf(path, sizeof(path), "%s/%s/model.calib", dir, name);
		rc = kern_calib_load(gm->m, path, &gm->calib, err);
		if (rc < 0)
			return tg_err_prefix(err, "model %s: dtype = int8 needs its calibration: ",
					     name);
	}
	return 0;
}

int
gw_repo_load(const char *dir, struct gw_repo **out, struct tg_err *err)
{
	struct gw_repo *r;
	DIR *d;
	struct dirent *e;
	char *names[GW_MAX_MODELS];
	unsigned n_names = 0;
	int rc = 0;

	d = opendir(dir);
	if (d == NULL)
		return tg_err_set(err, -errno, "model repository %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char p[GW_PATH_MAX * 2];
		struct stat st;

		if (e->d_name[0] == '.' || strlen(e->d_name) >= GW_NAME_MAX)
			continue;
		snprintf(p, sizeof(p), "%s/%s/model.onnx", dir, e->d_name);
		if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
			continue;	/* not a model folder */
		if (n_names == GW_MAX_MODELS) {
			rc = tg_err_set(err, -E2BIG, "model repository %s: more than %d models", dir,
					GW_MAX_MODELS);
			break;
		}
		names[n_names] = strdup(e->d_name);
		if (names[n_names] == NULL) {
			rc = tg_err_set(err, -ENOMEM, "out of memory");
			break;
		}
		n_names++;
	}
	closedir(d);
	if (rc == 0 && n_names == 0)
		rc = tg_err_set(err, -ENOENT, "model repository %s: no <name>/model.onnx in it", dir);
	r = calloc(1, sizeof(*r));
	if (rc == 0 && (r == NULL || (r->models = calloc(n_names, sizeof(*r->models))) == NULL))
		rc = tg_err_set(err, -ENOMEM, "out of memory");
	qsort(names, n_names, sizeof(names[0]), gw_cmp_name);	/* a stable order to report */
	for (unsigned i = 0; rc == 0 && i < n_names; i++) {
		struct gw_model *gm = &r->models[r->n++];

		rc = gw_model_load(gm, dir, names[i], err);
		for (unsigned k = 0; rc == 0 && k + 1 < r->n; k++)
			if (r->models[k].conf.id == gm->conf.id)
				rc = tg_err_set(err, -EINVAL, "models %s and %s both have id %u",
						r->models[k].conf.name, gm->conf.name, gm->conf.id);
	}
	for (unsigned i = 0; i < n_names; i++)
		free(names[i]);
	if (rc < 0) {
		gw_repo_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void
gw_repo_free(struct gw_repo *r)
{
	if (r == NULL)
		return;
	for (unsigned i = 0; r->models && i < r->n; i++) {
		kern_calib_free(r->models[i].calib);
		kern_model_free(r->models[i].m);
	}
	free(r->models);
	free(r);
}

void
gw_repo_summary(const struct gw_repo *r, FILE *f)
{
	for (unsigned i = 0; i < r->n; i++) {
		const struct gw_model *gm = &r->models[i];
		struct kern_model_info info;

		kern_model_get_info(gm->m, &info);
		fprintf(f, "model %s: id %u, %s, %llu FLOPs per sample, max batch %u, max delay %u us, "
			"deadline %u ms\n", gm->conf.name, gm->conf.id,
			gm->conf.precision == KERN_PREC_INT8 ? "int8" : "f32",
			(unsigned long long)info.flops, gm->conf.max_batch, gm->conf.max_delay_us,
			gm->conf.deadline_ms);
		for (unsigned k = 0; k < gm->n_splits; k++) {
			const struct kern_split *sp = kern_model_split(gm->m, gm->splits[k]);

			fprintf(f, "  split %u %s: %llu values per sample (%llu B at f32, %llu at int8)\n",
				sp->index, sp->name, (unsigned long long)sp->numel,
				(unsigned long long)sp->numel * 4, (unsigned long long)sp->numel);
		}
		for (unsigned o = 0; o < info.n_outputs; o++) {
			const struct kern_output *ko = kern_model_output(gm->m, o);

			if (gm->exit_conf[o] <= 1.f)
				fprintf(f, "  exit %u %s: answers at confidence >= %.2f\n", o, ko->name,
					gm->exit_conf[o]);
			else
				fprintf(f, "  exit %u %s: %s\n", o, ko->name,
					"answers only when no other exit did");
		}
	}
}
