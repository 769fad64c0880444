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

int
main(void)
{
	TH_RUN(test_models_load_and_resolve);
	TH_RUN(test_each_misconfiguration_is_named);
	fresh();	/* removes the last one */
	rmdir(root);
	TH_DONE();
}
