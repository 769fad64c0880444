/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Skip-dropped variants: kern_model_blocks() finds the residual blocks of PyTorch's ResNet
 * exports (BN kept and folded, opsets 11 and 17: tests/fixtures/resnet_drop_*, made by
 * scripts/make_fixtures.py), refuses the strided block with a 1x1 conv shortcut by name, and
 * kern_model_drop() writes files that, loaded again, agree with PyTorch's model with those
 * residual branches removed (drops.txt), at every split: head to the split, tail from it.
 */
#include "kernels/kernels.h"
#include "tests/harness.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const fixtures[] = {
	"resnet_drop_op11", "resnet_drop_op17", "resnet_drop_bnfolded_op11",
	"resnet_drop_bnfolded_op17",
};

static struct kern_model *
load(const char *fx)
{
	char p[256];
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };

	snprintf(p, sizeof(p), "tests/fixtures/%s/model.onnx", fx);
	TH_CHECK_MSG(kern_model_load(p, NULL, &m, &err) == 0, "%s", err.msg);
	return m;
}

static bool
close_to(const struct tg_tensor *got, const struct tg_tensor *want, char *why, size_t wlen)
{
	size_t n = tg_tensor_numel(want);

	if (got->dtype != TG_DT_F32 || tg_tensor_numel(got) != n)
		return snprintf(why, wlen, "shape differs"), false;
	for (size_t i = 0; i < n; i++) {
		float g = ((const float *)got->data)[i], w = ((const float *)want->data)[i];

		if (!(fabsf(g - w) <= 1e-4f + 1e-3f * fabsf(w)))
			return snprintf(why, wlen, "element %zu: %g, PyTorch %g", i, g, w), false;
	}
	return true;
}

/* The residual Adds of ResNetSmall: layer1.0 and layer2.1 droppable, layer2.0 not. */
static void
test_blocks_found_and_strided_refused_by_name(void)
{
	for (size_t f = 0; f < sizeof(fixtures) / sizeof(fixtures[0]); f++) {
		struct kern_model *m = load(fixtures[f]);
		struct kern_block b[8];
		struct tg_err err = { 0 };
		unsigned n;
		int rc;

		if (m == NULL)
			continue;
		n = kern_model_blocks(m, b, 8);
		TH_CHECK_MSG(n == 3, "%s: %u blocks", fixtures[f], n);
		if (n == 3) {
			TH_CHECK(b[0].droppable && strcmp(b[0].add, "/layer1/layer1.0/Add") == 0);
			TH_CHECK(!b[1].droppable && strcmp(b[1].add, "/layer2/layer2.0/Add") == 0 &&
				 b[1].why != NULL && b[1].shortcut == NULL);
			TH_CHECK(b[2].droppable && strcmp(b[2].add, "/layer2/layer2.1/Add") == 0);
			/* Two 3x3 convs of 8 channels at 8x8 (and BN, Relu, Add): > 2*2*8*8*9*64 */
			TH_CHECK(b[0].flops_saved > 2ull * 2 * 8 * 8 * 9 * 64);
		}
		rc = kern_model_find_block(m, "/layer2/layer2.0/Add", &err);
		TH_CHECK_MSG(rc == -EINVAL && strstr(err.msg, "/layer2/layer2.0/Add") &&
			     strstr(err.msg, "not droppable"), "%d %s", rc, err.msg);
		rc = kern_model_find_block(m, "1", &err);
		TH_CHECK(rc == -EINVAL);
		rc = kern_model_find_block(m, "/nope/Add", &err);
		TH_CHECK_MSG(rc == -ENOENT && strstr(err.msg, "/nope/Add"), "%s", err.msg);
		TH_CHECK(kern_model_find_block(m, "3", &err) == -ENOENT);
		TH_CHECK(kern_model_find_block(m, "2", &err) == 2);
		TH_CHECK(kern_model_find_block(m, "/layer1/layer1.0/Add_output_0", &err) == 0);
		{
			unsigned bad[] = { 1 }, twice[] = { 0, 0 }, past[] = { 7 };
			uint8_t *buf = NULL;
			size_t len;

			TH_CHECK(kern_model_drop(m, bad, 1, &buf, &len, &err) == -EINVAL &&
				 strstr(err.msg, "/layer2/layer2.0/Add") && buf == NULL);
			TH_CHECK(kern_model_drop(m, twice, 2, &buf, &len, &err) == -EINVAL);
			TH_CHECK(kern_model_drop(m, past, 1, &buf, &len, &err) == -EINVAL);
		}
		kern_model_free(m);
	}
}

/* Head to s, tail from s, on the fixture's input: the dropped model's logits. */
static bool
run_split(const struct kern_model *v, unsigned s, const struct tg_tensor *x,
	  const struct tg_tensor *want, char *why, size_t wlen)
{
	struct kern_stage head = { .m = v, .spec = { .kind = KERN_PLAN_HEAD, .split = s } };
	struct kern_stage tail = { .m = v, .spec = { .kind = KERN_PLAN_TAIL, .split = s } };
	struct kern_outs h = { 0 }, t = { 0 };
	struct tg_err err = { 0 };
	const struct tg_tensor *in = x;
	bool ok = true;
	unsigned b = (unsigned)x->dims[0];

	if (s > 0) {
		ok = kern_stage_run(&head, b, x, &h, &err) == 0;
		in = ok ? &h.t[0] : NULL;
	}
	ok = ok && kern_stage_run(&tail, b, in, &t, &err) == 0;
	if (!ok)
		snprintf(why, wlen, "%s", err.msg);
	else
		ok = t.n >= 1 && strcmp(t.name[t.n - 1], "logits") == 0 &&
		     close_to(&t.t[t.n - 1], want, why, wlen);
	kern_outs_free(&h);
	kern_outs_free(&t);
	kern_stage_free(&head);
	kern_stage_free(&tail);
	return ok;
}

/* One drops.txt line: drop, reload, compare at every split of the dropped model. */
static void
check_drop(const char *fx, struct kern_model *m, const char *names, const char *npy,
	   const struct tg_tensor *x)
{
	char p[256], list[512], *tok, *rest = list, why[512] = "";
	unsigned blocks[8], n = 0, na = 0;
	struct kern_model *v = NULL;
	struct kern_model_info mi, vi;
	struct tg_tensor want = { 0 };
	struct tg_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len;
	const char *ops[32];
	unsigned counts[32];

	snprintf(list, sizeof(list), "%s", names);
	while ((tok = strsep(&rest, ",")) != NULL && n < 8) {
		int rc = kern_model_find_block(m, tok, &err);

		TH_CHECK_MSG(rc >= 0, "%s: %s", fx, err.msg);
		if (rc < 0)
			return;
		blocks[n++] = (unsigned)rc;
	}
	snprintf(p, sizeof(p), "tests/fixtures/%s/%s", fx, npy);
	TH_CHECK_MSG(tg_npy_load(p, 1 << 20, &want, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(kern_model_drop(m, blocks, n, &buf, &len, &err) == 0, "%s: %s", fx, err.msg);
	TH_CHECK_MSG(buf && kern_model_load_mem(buf, len, "dropped", NULL, &v, &err) == 0,
		     "%s: %s", fx, err.msg);
	if (v != NULL && want.data != NULL) {
		kern_model_get_info(m, &mi);
		kern_model_get_info(v, &vi);
		TH_CHECK(vi.flops < mi.flops && vi.n_params < mi.n_params);
		for (unsigned k = 0, c = kern_model_op_counts(v, ops, counts, 32); k < c; k++)
			if (strcmp(ops[k], "Add") == 0)
				na = counts[k];
		TH_CHECK_MSG(na == 3 - n, "%s drop %s: %u Adds left", fx, names, na);
		TH_CHECK(kern_model_blocks(v, NULL, 0) == 3 - n);
		for (unsigned s = 0; s < vi.n_splits; s++)
			TH_CHECK_MSG(run_split(v, s, x, &want, why, sizeof(why)),
				     "%s drop %s split %u: %s", fx, names, s, why);
		TH_CHECK(vi.n_splits >= 6);
	}
	kern_model_free(v);
	free(buf);
	tg_tensor_free(&want);
}

static void
test_dropped_models_match_pytorch_at_every_split(void)
{
	for (size_t f = 0; f < sizeof(fixtures) / sizeof(fixtures[0]); f++) {
		struct kern_model *m = load(fixtures[f]);
		struct tg_tensor x = { 0 };
		struct tg_err err = { 0 };
		char p[256], line[1024], names[512], npy[128];
		unsigned lines = 0;
		FILE *fp;

		snprintf(p, sizeof(p), "tests/fixtures/%s/input.npy", fixtures[f]);
		TH_CHECK_MSG(tg_npy_load(p, 1 << 20, &x, &err) == 0, "%s", err.msg);
		snprintf(p, sizeof(p), "tests/fixtures/%s/drops.txt", fixtures[f]);
		fp = fopen(p, "r");
		TH_CHECK_MSG(fp != NULL, "%s missing", p);
		while (m && x.data && fp && fgets(line, sizeof(line), fp))
			if (sscanf(line, "drop %511s %127s", names, npy) == 2) {
				check_drop(fixtures[f], m, names, npy, &x);
				lines++;
			}
		TH_CHECK_MSG(lines == 3, "%s: %u drop sets", fixtures[f], lines);
		if (fp)
			fclose(fp);
		tg_tensor_free(&x);
		kern_model_free(m);
	}
}

/* Dropping nothing writes the model again: the same outputs, the same split table. */
static void
test_drop_nothing_is_the_model(void)
{
	struct kern_model *m = load("resnet_drop_op17"), *v = NULL;
	struct kern_model_info mi, vi;
	struct tg_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len;

	if (m == NULL)
		return;
	TH_CHECK_MSG(kern_model_drop(m, NULL, 0, &buf, &len, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(buf && kern_model_load_mem(buf, len, "same", NULL, &v, &err) == 0, "%s",
		     err.msg);
	if (v != NULL) {
		kern_model_get_info(m, &mi);
		kern_model_get_info(v, &vi);
		TH_CHECK(vi.flops == mi.flops && vi.n_splits == mi.n_splits &&
			 vi.n_params == mi.n_params);
	}
	kern_model_free(v);
	kern_model_free(m);
	free(buf);
}

int
main(void)
{
	TH_RUN(test_blocks_found_and_strided_refused_by_name);
	TH_RUN(test_dropped_models_match_pytorch_at_every_split);
	TH_RUN(test_drop_nothing_is_the_model);
	TH_DONE();
}
