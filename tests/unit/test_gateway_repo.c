/* SPDX-License-Identifier: Apache-2.0 */
/* The model repository: folders, model.conf resolution against the graph, and one error
 * per misconfiguration naming the file. Uses the multi-exit fixture model. */
#include "gateway/gateway.h"
#include "tests/harness.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[64];

static void
put(const char *model, const char *conf)
{
	char p[256], src[4096];

	snprintf(p, sizeof(p), "%s/%s", root, model);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%s/model.onnx", root, model);
	if (realpath("tests/fixtures/multiexit/model.onnx", src) != NULL)
		symlink(src, p);
	if (conf != NULL) {
		FILE *f;

		snprintf(p, sizeof(p), "%s/%s/model.conf", root, model);
		f = fopen(p, "w");
		fputs(conf, f);
		fclose(f);
	}
}

static void
fresh(void)
{
	char cmd[128];

	if (root[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		if (system(cmd) != 0)
			return;
	}
	snprintf(root, sizeof(root), "/tmp/tg_repo_XXXXXX");
	if (mkdtemp(root) == NULL)
		root[0] = '\0';
}

static void
expect(int want, const char *words)
{
	struct gw_repo *r = NULL;
	struct tg_err err = { 0 };
	int rc = gw_repo_load(root, &r, &err);

	TH_CHECK_MSG(rc == want, "rc %d want %d: %s", rc, want, err.msg);
	if (words)
		TH_CHECK_MSG(strstr(err.msg, words) != NULL, "'%s' not in '%s'", words, err.msg);
	gw_repo_free(r);
}

static void
test_models_load_and_resolve(void)
{
	struct gw_repo *r = NULL;
	struct tg_err err = { 0 };

	fresh();
	put("b-multi", "id = 2\nsplits = 0, /layer2/layer2.0/relu2/Relu_output_0\n"
		       "exit = exit1:0.9\nmax_batch = 16\n");
	put("a-all", "id = 1\n");
	{	/* a folder without model.onnx is not a model */
		char p[128];

		snprintf(p, sizeof(p), "%s/notes", root);
		mkdir(p, 0755);
	}
	TH_CHECK_MSG(gw_repo_load(root, &r, &err) == 0, "%s", err.msg);
	if (r == NULL)
		return;
	TH_CHECK(r->n == 2 && strcmp(r->models[0].conf.name, "a-all") == 0);
	TH_CHECK(r->models[0].n_splits == 11);	/* none listed: all of them */
	TH_CHECK(r->models[1].n_splits == 2 && r->models[1].splits[1] == 6);
	TH_CHECK(r->models[1].exit_conf[0] == 0.9f && r->models[1].exit_conf[1] == 2.f);
	TH_CHECK(r->models[1].conf.max_batch == 16);
	gw_repo_free(r);
}

static void
test_each_misconfiguration_is_named(void)
{
	fresh();
	expect(-ENOENT, "no <name>/model.onnx");
	put("m", "id = 1\nsplits = 3, nope\n");
	expect(-EINVAL, "m/model.conf: splits: no split point named \"nope\"");
	fresh();
	put("m", "id = 1\nexit = exit9:0.5\n");
	expect(-EINVAL, "m/model.conf: exit: the model has no output 'exit9'");
	fresh();
	put("m", "id = 1\nsplits = 2, 2\n");
	expect(-EINVAL, "is split 2 twice");
	fresh();
	put("m", NULL);
	expect(-ENOENT, "m/model.conf");
	fresh();
	put("x", "id = 4\n");
	put("y", "id = 4\n");
	expect(-EINVAL, "models x and y both have id 4");
	fresh();
	put("q", "id = 5\ndtype = int8\n");
	expect(-ENOENT, "model q: dtype = int8 needs its calibration");
}

static void
put_variant(const char *model, const char *variant)
{
	char p[256], src[4096];

	snprintf(p, sizeof(p), "%s/%s/variants", root, model);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%s/variants/%s", root, model, variant);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%s/variants/%s/model.onnx", root, model, variant);
	if (realpath("tests/fixtures/multiexit/model.onnx", src) != NULL)
		symlink(src, p);
}

/* A drop variant (no second file) and a file variant: entries of their own, resolved. */
static void
test_variants_load_and_resolve(void)
{
	struct gw_repo *r = NULL;
	struct tg_err err = { 0 };
	bool known;

	fresh();
	put("m", "id = 1\nsplits = 0, /layer1/layer1.0/relu2/Relu_output_0, "
		 "/layer2/layer2.0/relu2/Relu_output_0\nexit = exit1:0.9\n"
		 "accuracy = final:92.40:92.32\naccuracy = exit1:87.5\n"
		 "variant = 1 nob1 drop=/layer1/layer1.0/Add accuracy=final:91.05\n"
		 "variant = 2 file1 splits=0 exits=exit2:0.5\n");
	put_variant("m", "file1");
	TH_CHECK_MSG(gw_repo_load(root, &r, &err) == 0, "%s", err.msg);
	if (r == NULL)
		return;
	TH_CHECK(r->n == 3);
	if (r->n == 3) {
		const struct gw_model *b = &r->models[0], *d = &r->models[1], *f = &r->models[2];
		struct kern_model_info bi, di;

		kern_model_get_info(b->m, &bi);
		kern_model_get_info(d->m, &di);
		TH_CHECK(b->variant == 0 && strcmp(b->label, "m") == 0 && b->accuracy_bp == 9240);
		TH_CHECK(b->acc_fp32[0] == 8750 && b->acc_int8[2] == 9232);
		TH_CHECK(d->variant == 1 && strcmp(d->label, "m/nob1") == 0 && d->conf.id == 1 &&
			 d->accuracy_bp == 9105 && d->n_drop == 1 && d->drop[0] == 0);
		TH_CHECK(di.flops < bi.flops && di.n_splits < bi.n_splits);
		/* The base's splits it keeps, by tensor name; the base's exits. */
		TH_CHECK_MSG(d->n_splits == 3, "%u", d->n_splits);
		for (unsigned k = 0; k < d->n_splits && k < b->n_splits; k++)
			TH_CHECK(strcmp(kern_model_split(d->m, d->splits[k])->name,
					kern_model_split(b->m, b->splits[k])->name) == 0);
		TH_CHECK(d->exit_conf[0] == 0.9f && d->exit_conf[1] > 1.f);
		TH_CHECK(f->variant == 2 && f->n_splits == 1 && f->splits[0] == 0 &&
			 f->exit_conf[0] > 1.f && f->exit_conf[1] == 0.5f && f->accuracy_bp == 0);
	}
	TH_CHECK(gw_repo_find(r, 1, 0, &known) == 0 && known);
	TH_CHECK(gw_repo_find(r, 1, 2, &known) == 2 && known);
	TH_CHECK(gw_repo_find(r, 1, 3, &known) == -1 && known);
	TH_CHECK(gw_repo_find(r, 9, 0, &known) == -1 && !known);
	gw_repo_free(r);
}

/* A broken variant fails the whole load, naming the model and the variant. */
static void
test_each_variant_error_is_named(void)
{
	fresh();
	put("m", "id = 1\nvariant = 3 gone\n");
	expect(-ENOENT, "m/variants/gone/model.onnx");
	fresh();
	put("m", "id = 1\nvariant = 3 gone\n");
	expect(-ENOENT, "model m variant 3 'gone'");
	fresh();
	put("m", "id = 1\nvariant = 3 strided drop=/layer2/layer2.0/Add\n");
	expect(-EINVAL, "block 1 \"/layer2/layer2.0/Add\" is not droppable");
	fresh();
	put("m", "id = 1\nvariant = 3 nob drop=9\n");
	expect(-ENOENT, "model m variant 3 'nob': drop: no residual block \"9\"");
	fresh();
	put("m", "id = 1\nsplits = /layer1/layer1.0/Add_output_0\nvariant = 3 nob drop=0\n");
	expect(-EINVAL, "none of the base model's served splits is left");
	fresh();
	put("m", "id = 1\nvariant = 3 f splits=99\n");
	put_variant("m", "f");
	expect(-EINVAL, "model m variant 3 'f': splits: split 99");
	fresh();
	put("m", "id = 1\nvariant = 3 f exits=nope:0.5\n");
	put_variant("m", "f");
	expect(-EINVAL, "model m variant 3 'f': exit: the model has no output 'nope'");
	fresh();
	put("m", "id = 1\naccuracy = nope:50\n");
	expect(-EINVAL, "m/model.conf: accuracy: the model has no output 'nope'");
	fresh();
	{	/* a file that is not ONNX */
		char p[256];
		FILE *f;

		put("m", "id = 1\nvariant = 3 junk\n");
		snprintf(p, sizeof(p), "%s/m/variants", root);
		mkdir(p, 0755);
		snprintf(p, sizeof(p), "%s/m/variants/junk", root);
		mkdir(p, 0755);
		snprintf(p, sizeof(p), "%s/m/variants/junk/model.onnx", root);
		f = fopen(p, "w");
		fputs("not a model", f);
		fclose(f);
		expect(-EINVAL, "model m variant 3 'junk'");
	}
}

int
main(void)
{
	TH_RUN(test_models_load_and_resolve);
	TH_RUN(test_each_misconfiguration_is_named);
	TH_RUN(test_variants_load_and_resolve);
	TH_RUN(test_each_variant_error_is_named);
	fresh();	/* removes the last one */
	rmdir(root);
	TH_DONE();
}
