/* SPDX-License-Identifier: Apache-2.0 */
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

/* The final exit: the output with the most FLOPs, as the scheduler picks it. */
static unsigned
gw_final_output(const struct kern_model *m)
{
	struct kern_model_info info;
	unsigned f = 0;

	kern_model_get_info(m, &info);
	for (unsigned o = 1; o < info.n_outputs; o++)
		if (kern_model_output(m, o)->flops >= kern_model_output(m, f)->flops)
			f = o;
	return f;
}

static int
gw_output_index(const struct kern_model *m, const char *name)
{
	struct kern_model_info info;

	kern_model_get_info(m, &info);
	for (unsigned o = 0; o < info.n_outputs; o++)
		if (strcmp(kern_model_output(m, o)->name, name) == 0)
			return (int)o;
	return -1;
}

/* Served split rows from names (rows or tensor names); none listed: every split. */
static int
gw_resolve_splits(struct gw_model *gm, const char (*names)[GW_NAME_MAX], unsigned n,
		  const char *where, struct tg_err *err)
{
	struct kern_model_info info;

	kern_model_get_info(gm->m, &info);
	gm->n_splits = 0;
	if (n == 0)
		for (unsigned i = 0; i < info.n_splits && i < GW_MAX_SPLITS; i++)
			gm->splits[gm->n_splits++] = i;
	for (unsigned i = 0; i < n; i++) {
		struct tg_err e2 = { 0 };
		int row = kern_model_find_split(gm->m, names[i], &e2);

		if (row < 0)
			return tg_err_set(err, -EINVAL, "%s: splits: %s", where, e2.msg);
		for (unsigned k = 0; k < gm->n_splits; k++)
			if (gm->splits[k] == (unsigned)row)
				return tg_err_set(err, -EINVAL, "%s: splits: '%s' is split %d twice",
						  where, names[i], row);
		gm->splits[gm->n_splits++] = (unsigned)row;
	}
	return 0;
}

/* Exit thresholds and card accuracies by output name; the catalog's accuracy. */
static int
gw_resolve_exits(struct gw_model *gm, const char (*names)[GW_NAME_MAX], const float *conf,
		 unsigned n, const struct gw_exit_acc *acc, unsigned n_acc, const char *where,
		 struct tg_err *err)
{
	unsigned f = gw_final_output(gm->m);

	for (unsigned o = 0; o < GW_MAX_EXITS; o++)
		gm->exit_conf[o] = 2.f;
	for (unsigned i = 0; i < n; i++) {
		int o = gw_output_index(gm->m, names[i]);

		if (o < 0)
			return tg_err_set(err, -EINVAL, "%s: exit: the model has no output '%s'",
					  where, names[i]);
		gm->exit_conf[o] = conf[i];
	}
	for (unsigned i = 0; i < n_acc; i++) {
		int o = gw_output_index(gm->m, acc[i].exit);

		if (o < 0)
			return tg_err_set(err, -EINVAL, "%s: accuracy: the model has no output '%s'",
					  where, acc[i].exit);
		gm->acc_fp32[o] = acc[i].fp32_bp;
		gm->acc_int8[o] = acc[i].int8_bp;
	}
	if (gm->accuracy_bp == 0)
		gm->accuracy_bp = gm->conf.precision == KERN_PREC_INT8 && gm->acc_int8[f] ?
				  gm->acc_int8[f] : gm->acc_fp32[f];
	return 0;
}

static int
gw_model_resolve(struct gw_model *gm, const char *conf_path, struct tg_err *err)
{
	struct kern_model_info info;
	int rc;

	kern_model_get_info(gm->m, &info);
	if (info.n_splits == 0)
		return tg_err_set(err, -EINVAL, "%s: the model has no split points (one input?)",
				  conf_path);
	if (info.n_outputs > GW_MAX_EXITS)
		return tg_err_set(err, -EINVAL, "%s: more than %d outputs", conf_path, GW_MAX_EXITS);
	rc = gw_resolve_splits(gm, gm->conf.splits, gm->conf.n_splits, conf_path, err);
	if (rc == 0)
		rc = gw_resolve_exits(gm, gm->conf.exit_name, gm->conf.exit_conf, gm->conf.n_exits,
				      gm->conf.acc, gm->conf.n_acc, conf_path, err);
	return rc;
}

static int
gw_model_load(struct gw_model *gm, const char *dir, const char *name, struct tg_err *err)
{
	char path[GW_PATH_MAX * 2];
	int rc;

	snprintf(gm->label, sizeof(gm->label), "%s", name);
	gm->accuracy_bp = gm->conf.accuracy_bp;
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

/* A drop variant: the base's file with its blocks dropped, loaded from memory. */
static int
gw_variant_drop(struct gw_model *gv, const struct gw_model *base, const struct gw_variant_conf *vc,
		struct tg_err *err)
{
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	for (unsigned i = 0; i < vc->n_drop; i++) {
		rc = kern_model_find_block(base->m, vc->drop[i], err);
		if (rc < 0)
			return tg_err_prefix(err, "drop: ");
		gv->drop[gv->n_drop++] = (unsigned)rc;
	}
	rc = kern_model_drop(base->m, gv->drop, gv->n_drop, &buf, &len, err);
	if (rc == 0)
		rc = kern_model_load_mem(buf, len, gv->label, NULL, &gv->m, err);
	free(buf);
	if (rc == 0 && base->calib != NULL)
		rc = kern_calib_subset(base->calib, gv->m, &gv->calib, err);
	return rc;
}

/* A drop variant serves the base's splits it keeps (by tensor name) and has its exits,
 * unless its line says otherwise. */
static int
gw_variant_inherit(struct gw_model *gv, const struct gw_model *base, bool splits, bool exits,
		   const char *where, struct tg_err *err)
{
	struct kern_model_info info;

	kern_model_get_info(base->m, &info);
	for (unsigned k = 0; splits && k < base->n_splits; k++) {
		const struct kern_split *sp = kern_model_split(base->m, base->splits[k]);
		int row = kern_model_find_split(gv->m, sp->name, NULL);

		if (k == 0)
			gv->n_splits = 0;
		if (row >= 0)
			gv->splits[gv->n_splits++] = (unsigned)row;
	}
	if (gv->n_splits == 0)
		return tg_err_set(err, -EINVAL, "%s: none of the base model's served splits is left "
				  "(give splits=)", where);
	for (unsigned o = 0; exits && o < info.n_outputs; o++) {
		int vo = gw_output_index(gv->m, kern_model_output(base->m, o)->name);

		if (vo >= 0)
			gv->exit_conf[vo] = base->exit_conf[o];
	}
	return 0;
}

/* Variant vc of the model whose base is loaded in *base, into gv. */
static int
gw_variant_load(struct gw_model *gv, const struct gw_model *base, const struct gw_variant_conf *vc,
		const char *dir, struct tg_err *err)
{
	char path[GW_PATH_MAX * 2], where[GW_NAME_MAX * 3];
	int rc;

	gv->conf = base->conf;
	gv->conf.n_variants = 0;	/* the base's entry lists them */
	gv->variant = vc->id;
	snprintf(gv->label, sizeof(gv->label), "%s/%s", base->conf.name, vc->name);
	snprintf(where, sizeof(where), "model %s variant %u '%s'", base->conf.name, vc->id,
		 vc->name);
	if (vc->n_drop > 0) {
		rc = gw_variant_drop(gv, base, vc, err);
	} else {
		snprintf(path, sizeof(path), "%s/%s/variants/%s/model.onnx", dir, base->conf.name,
			 vc->name);
		rc = kern_model_load(path, NULL, &gv->m, err);
		if (rc == 0 && gv->conf.precision == KERN_PREC_INT8) {
			snprintf(path, sizeof(path), "%s/%s/variants/%s/model.calib", dir,
				 base->conf.name, vc->name);
			rc = kern_calib_load(gv->m, path, &gv->calib, err);
		}
	}
	if (rc < 0)
		return tg_err_prefix(err, "%s: ", where);
	rc = gw_resolve_splits(gv, vc->splits, vc->n_splits, where, err);
	if (rc == 0)
		rc = gw_resolve_exits(gv, vc->exit_name, vc->exit_conf, vc->n_exits, vc->acc,
				      vc->n_acc, where, err);
	if (rc == 0 && vc->n_drop > 0)
		rc = gw_variant_inherit(gv, base, vc->n_splits == 0, vc->n_exits == 0, where, err);
	return rc;
}

/* The folder's model.conf, then its base and each variant, appended to r. */
static int
gw_folder_load(struct gw_repo *r, const char *dir, const char *name, struct tg_err *err)
{
	struct gw_model_conf *mc = calloc(1, sizeof(*mc));
	char path[GW_PATH_MAX * 2];
	struct gw_model *grown;
	unsigned bi;
	uint8_t *buf = NULL;
	size_t len;
	int rc;

	if (mc == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	gw_model_conf_default(mc);
	snprintf(mc->name, sizeof(mc->name), "%s", name);
	snprintf(path, sizeof(path), "%s/%s/model.conf", dir, name);
	rc = tg_file_read(path, 1u << 20, &buf, &len, err);
	if (rc == 0) {
		rc = gw_model_conf_parse((const char *)buf, len, path, mc, err);
		free(buf);
	}
	if (rc == 0 && r->n + 1 + mc->n_variants > GW_MAX_MODELS)
		rc = tg_err_set(err, -E2BIG, "%s: more than %d models and variants in the repository",
				path, GW_MAX_MODELS);
	if (rc == 0 && (grown = realloc(r->models, (r->n + 1 + mc->n_variants) *
					sizeof(*grown))) == NULL)
		rc = tg_err_set(err, -ENOMEM, "out of memory");
	if (rc < 0) {
		free(mc);
		return rc;
	}
	r->models = grown;
	memset(&r->models[r->n], 0, (1 + mc->n_variants) * sizeof(*grown));
	r->models[r->n].conf = *mc;
	free(mc);
	bi = r->n++;
	rc = gw_model_load(&r->models[bi], dir, name, err);
	for (unsigned v = 0; rc == 0 && v < r->models[bi].conf.n_variants; v++)
		rc = gw_variant_load(&r->models[r->n++], &r->models[bi],
				     &r->models[bi].conf.variants[v], dir, err);
	return rc;
}

int
gw_repo_find(const struct gw_repo *r, uint16_t model_id, uint8_t variant, bool *known_model)
{
	*known_model = false;
	for (unsigned i = 0; i < r->n; i++)
		if (r->models[i].conf.id == model_id) {
			*known_model = true;
			if (r->models[i].variant == variant)
				return (int)i;
		}
	return -1;
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
	if (rc == 0 && r == NULL)
		rc = tg_err_set(err, -ENOMEM, "out of memory");
	qsort(names, n_names, sizeof(names[0]), gw_cmp_name);	/* a stable order to report */
	for (unsigned i = 0; rc == 0 && i < n_names; i++) {
		unsigned first = r->n;

		rc = gw_folder_load(r, dir, names[i], err);
		for (unsigned k = 0; rc == 0 && k < first; k++)
			if (r->models[k].conf.id == r->models[first].conf.id)
				rc = tg_err_set(err, -EINVAL, "models %s and %s both have id %u",
						r->models[k].conf.name, r->models[first].conf.name,
						r->models[first].conf.id);
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

/* The output the scheduler treats as the final exit: the most FLOPs, the last on a tie. */
static unsigned
gw_final_exit(const struct kern_model *m)
{
	struct kern_model_info info;
	unsigned fin = 0;
	uint64_t best = 0;

	kern_model_get_info(m, &info);
	for (unsigned o = 0; o < info.n_outputs; o++)
		if (o == 0 || kern_model_output(m, o)->flops >= best) {
			best = kern_model_output(m, o)->flops;
			fin = o;
		}
	return fin;
}

void
gw_repo_summary(const struct gw_repo *r, FILE *f)
{
	for (unsigned i = 0; i < r->n; i++) {
		const struct gw_model *gm = &r->models[i];
		struct kern_model_info info;

		kern_model_get_info(gm->m, &info);
		char vid[32] = "";

		if (gm->variant != 0)
			snprintf(vid, sizeof(vid), " variant %u", gm->variant);
		fprintf(f, "model %s: id %u%s, %s, %llu FLOPs per sample, max batch %u, max delay %u us, "
			"deadline %u ms\n", gm->label, gm->conf.id, vid,
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
			else if (o == gw_final_exit(gm->m))
				fprintf(f, "  exit %u %s: the final exit, answers what no early exit "
					"did\n", o, ko->name);
			else
				fprintf(f, "  exit %u %s: early exit, off (model.conf has no "
					"'exit = %s:CONF' line)\n", o, ko->name, ko->name);
		}
	}
}
