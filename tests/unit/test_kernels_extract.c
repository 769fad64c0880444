/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kern_model_extract(): the tail from every split, written as an ONNX model, loaded again and
 * run whole, gives what the original model's tail plan gives on the same input. The model,
 * built here with protobuf-c, has what an exporter writes: a BatchNormalization (folded at
 * load, written back unfolded), Shape -> Gather -> Unsqueeze -> Concat -> Reshape shape
 * arithmetic (kept when it reads the tail's own tensors, frozen as a constant at the batch
 * when it reads the head's), a Constant node read by the tail, and an early exit (an output
 * only some tails have). Models under tests/fixtures/ (made by scripts/make_fixtures.py) are
 * extracted at every split too.
 */
#include "kernels/kernels.h"
#include "onnx/onnx.pb-c.h"
#include "tests/harness.h"
#include "tests/onnx_builder.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- the model ----
 *   x -> Conv(w1,b1) -> c1 -> BN -> bn1 -> Relu -> r1 -> Conv(w2) -> c2 ; Add(c2, r1) -> a
 *   r1 -> GlobalAveragePool -> p -> Flatten -> exit            (early exit: output 0)
 *   a -> Relu -> y ; Shape(y) -> Gather(0) -> Unsqueeze -> Concat(.., Constant [-1]) -> shp
 *   Reshape(y, shp) -> f -> Gemm(wf, bf, transB) -> z ; Mul(z, Constant 0.5) -> logits
 * Split points: x, bn1, r1, a, y, f, z. */
enum { C = 4, H = 5, W = 5, K = 3 };
static float w1[C * C * 9], b1[C], w2[C * C * 9], bn_s[C], bn_b[C], bn_m[C], bn_v[C];
static float wf[K * C * H * W], bf[K];

static float
rnd(unsigned *seed)
{
	*seed = *seed * 1103515245 + 12345;
	return ((*seed >> 16) % 2001) / 1000.f - 1.f;
}

static void
params(void)
{
	unsigned seed = 11;

	for (size_t i = 0; i < sizeof(w1) / sizeof(w1[0]); i++) {
		w1[i] = rnd(&seed);
		w2[i] = rnd(&seed);
	}
	for (size_t i = 0; i < sizeof(wf) / sizeof(wf[0]); i++)
		wf[i] = 0.1f * rnd(&seed);
	for (int c = 0; c < C; c++) {
		b1[c] = 0.1f * c - 0.2f;
		bn_s[c] = 0.5f + 0.25f * c;
		bn_b[c] = -0.3f + 0.2f * c;
		bn_m[c] = 0.05f * c;
		bn_v[c] = 0.5f + c;
	}
	for (int k = 0; k < K; k++)
		bf[k] = 0.01f * k;
}

/* shape_of: the tensor whose Shape gives the Reshape its batch ("y", or "r1" earlier). */
static void
build_model(struct mb *b, const char *shape_of)
{
	static const int64_t xd[4] = { 1, C, H, W }, wd[4] = { C, C, 3, 3 }, cd[1] = { C };
	static const int64_t pads[4] = { 1, 1, 1, 1 }, wfd[2] = { K, C * H * W }, kd[1] = { K };
	static const int64_t zero = 0, one = 1, minus1 = -1;
	static const float half = 0.5f;
	Onnx__NodeProto *n;
	Onnx__AttributeProto *a;

	mb_init(b, 13);
	mb_init_tensor(b, "w1", wd, 4, w1, NULL);
	mb_init_tensor(b, "b1", cd, 1, b1, NULL);
	mb_init_tensor(b, "w2", wd, 4, w2, NULL);
	mb_init_tensor(b, "s", cd, 1, bn_s, NULL);
	mb_init_tensor(b, "bb", cd, 1, bn_b, NULL);
	mb_init_tensor(b, "mm", cd, 1, bn_m, NULL);
	mb_init_tensor(b, "vv", cd, 1, bn_v, NULL);
	mb_init_tensor(b, "wf", wfd, 2, wf, NULL);
	mb_init_tensor(b, "bf", kd, 1, bf, NULL);
	mb_init_tensor(b, "idx0", NULL, 0, NULL, &zero);
	mb_init_tensor(b, "axes0", &one, 1, NULL, &zero);
	n = mb_node(b, "Conv", "conv1", (const char *const[]){ "x", "w1", "b1" }, 3, "c1");
	mb_attr_ints(b, n, "pads", pads, 4);
	mb_node(b, "BatchNormalization", "bn", (const char *const[]){ "c1", "s", "bb", "mm", "vv" },
		5, "bn1");
	mb_node(b, "Relu", "relu1", (const char *const[]){ "bn1" }, 1, "r1");
	mb_node(b, "GlobalAveragePool", "gap", (const char *const[]){ "r1" }, 1, "p");
	mb_node(b, "Flatten", "flat", (const char *const[]){ "p" }, 1, "exit");
	n = mb_node(b, "Conv", "conv2", (const char *const[]){ "r1", "w2" }, 2, "c2");
	mb_attr_ints(b, n, "pads", pads, 4);
	mb_node(b, "Add", "add", (const char *const[]){ "c2", "r1" }, 2, "a");
	mb_node(b, "Relu", "relu2", (const char *const[]){ "a" }, 1, "y");
	mb_node(b, "Shape", "shape", (const char *const[]){ shape_of }, 1, "sh");
	mb_node(b, "Gather", "gather", (const char *const[]){ "sh", "idx0" }, 2, "g");
	mb_node(b, "Unsqueeze", "unsq", (const char *const[]){ "g", "axes0" }, 2, "u");
	n = mb_node(b, "Constant", "cminus1", NULL, 0, "k");
	a = mb_attr(b, n, "value");
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
	a->t = mb_tensor(b, &b->attr_t[b->n_at++], "k", &one, 1, NULL, &minus1);
	n = mb_node(b, "Concat", "concat", (const char *const[]){ "u", "k" }, 2, "shp");
	mb_attr_ints(b, n, "axis", &zero, 1);
	mb_node(b, "Reshape", "reshape", (const char *const[]){ "y", "shp" }, 2, "f");
	n = mb_node(b, "Gemm", "fc", (const char *const[]){ "f", "wf", "bf" }, 3, "z");
	mb_attr_ints(b, n, "transB", &one, 1);
	n = mb_node(b, "Constant", "chalf", NULL, 0, "half");
	a = mb_attr(b, n, "value");
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
	a->t = mb_tensor(b, &b->attr_t[b->n_at++], "half", NULL, 0, &half, NULL);
	mb_node(b, "Mul", "scale", (const char *const[]){ "z", "half" }, 2, "logits");
	b->in_ptrs[0] = mb_vi(b, "x", xd, 4);
	b->graph.n_input = 1;
	b->out_ptrs[b->graph.n_output++] = mb_vi(b, "exit", NULL, 0);
	b->out_ptrs[b->graph.n_output++] = mb_vi(b, "logits", NULL, 0);
}

static int
load_built(struct kern_model **m, const char *shape_of, struct tg_err *err)
{
	struct mb *b = malloc(sizeof(*b));
	uint8_t *buf;
	size_t len;
	int rc;

	if (b == NULL)
		return -ENOMEM;
	build_model(b, shape_of);
	buf = mb_pack(b, &len);
	rc = buf ? kern_model_load_mem(buf, len, "built", NULL, m, err) : -ENOMEM;
	free(buf);
	free(b);
	return rc;
}

/* ---- comparing a tail with its extraction ---- */

static void
fill(struct tg_tensor *t, unsigned salt)
{
	for (size_t i = 0; i < tg_tensor_numel(t); i++)
		((float *)t->data)[i] = sinf((float)(i + salt) * 0.37f);
}

/*
 * Extract split s at batch, load it, run both on one input, compare every output.
 * @return -1 when the original's tail cannot be planned (not the extraction's doing).
 */
static int
check_split_as(const struct kern_model *m, unsigned s, unsigned batch, float tol,
	       bool reload_may_fail)
{
	const struct kern_split *sp = kern_model_split(m, s);
	struct kern_plan_spec spec = { .kind = KERN_PLAN_TAIL, .split = s, .batch = batch };
	struct kern_model *e = NULL;
	struct kern_plan *po = NULL, *pe = NULL;
	struct kern_model_info ie;
	struct tg_err err = { 0 };
	struct tg_tensor io, ie_in;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = 0;

	if (kern_plan_create(m, &spec, &po, &err) < 0) {
		fprintf(stderr, "  split %u: the engine cannot plan the original tail: %s\n", s,
			err.msg);
		return -1;
	}
	TH_CHECK_MSG(kern_model_extract(m, s, batch, &buf, &len, &err) == 0, "split %u: %s", s,
		     err.msg);
	if (buf == NULL)
		goto out;
	if (kern_model_load_mem(buf, len, "extracted", NULL, &e, &err) < 0 && reload_may_fail) {
		rc = 1;
		goto out;
	}
	TH_CHECK_MSG(e != NULL, "split %u: extracted model: %s", s, err.msg);
	if (e == NULL)
		goto out;
	kern_model_get_info(e, &ie);
	TH_CHECK(ie.n_inputs == 1);
	TH_CHECK_MSG(strcmp(kern_model_split(e, 0)->name, sp->name) == 0, "input %s, split %s",
		     kern_model_split(e, 0)->name, sp->name);
	TH_CHECK_MSG(kern_model_split(e, 0)->tail_flops == sp->tail_flops, "split %u: %llu vs %llu",
		     s, (unsigned long long)kern_model_split(e, 0)->tail_flops,
		     (unsigned long long)sp->tail_flops);
	spec.split = 0;
	TH_CHECK_MSG(kern_plan_create(e, &spec, &pe, &err) == 0, "split %u: %s", s, err.msg);
	if (pe == NULL)
		goto out;
	TH_CHECK(kern_plan_n_outputs(pe) == kern_plan_n_outputs(po));
	kern_plan_input(po, 0, &io);
	kern_plan_input(pe, 0, &ie_in);
	TH_CHECK(io.ndim == ie_in.ndim && memcmp(io.dims, ie_in.dims, sizeof(io.dims)) == 0);
	TH_CHECK(ie_in.dims[0] == batch);
	fill(&io, s);
	memcpy(ie_in.data, io.data, tg_tensor_bytes(&io));
	TH_CHECK(kern_plan_run(po) == 0);
	TH_CHECK(kern_plan_run(pe) == 0);
	for (unsigned i = 0; i < kern_plan_n_outputs(po); i++) {
		struct tg_tensor a, b = { 0 };
		const char *na, *nb = NULL;
		bool found = false;

		kern_plan_output(po, i, &a, &na);
		for (unsigned j = 0; j < kern_plan_n_outputs(pe) && !found; j++) {
			kern_plan_output(pe, j, &b, &nb);
			found = strcmp(na, nb) == 0;
		}
		TH_CHECK_MSG(found, "split %u: output %s missing from the extraction", s, na);
		if (!found)
			continue;
		TH_CHECK(tg_tensor_numel(&a) == tg_tensor_numel(&b));
		float worst = 0;

		for (size_t k = 0; k < tg_tensor_numel(&a) && k < tg_tensor_numel(&b); k++) {
			float x = ((float *)a.data)[k], y = ((float *)b.data)[k];

			worst = fmaxf(worst, fabsf(x - y) / (1.f + fabsf(x)));
		}
		TH_CHECK_MSG(worst <= tol, "split %u output %s: differs by %g", s, na, worst);
	}
out:
	kern_plan_free(pe);
	kern_plan_free(po);
	kern_model_free(e);
	free(buf);
	return rc;
}

static int
check_split(const struct kern_model *m, unsigned s, unsigned batch, float tol)
{
	return check_split_as(m, s, batch, tol, false);
}

/* ---- tests ---- */

static void
test_every_tail_runs_as_its_extraction(void)
{
	struct kern_model *m = NULL;
	struct kern_model_info mi;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(load_built(&m, "y", &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	kern_model_get_info(m, &mi);
	TH_CHECK_MSG(mi.n_splits == 7, "%u splits", mi.n_splits);
	for (unsigned s = 0; s < mi.n_splits; s++)
		for (unsigned batch = 1; batch <= 3; batch += 2)
			TH_CHECK_MSG(check_split(m, s, batch, 1e-5f) == 0, "split %u", s);
	kern_model_free(m);
}

/* Ops and initializers named in an extracted file; returns the unpacked model. */
static Onnx__ModelProto *
unpack_counting(const uint8_t *buf, size_t len, const char *op, int *n_op)
{
	Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, buf);

	*n_op = 0;
	if (mp == NULL || mp->graph == NULL)
		return mp;
	for (size_t i = 0; i < mp->graph->n_node; i++)
		*n_op += strcmp(mp->graph->node[i]->op_type, op) == 0;
	return mp;
}

static const Onnx__TensorProto *
find_init(const Onnx__ModelProto *mp, const char *name)
{
	for (size_t i = 0; i < mp->graph->n_initializer; i++)
		if (strcmp(mp->graph->initializer[i]->name, name) == 0)
			return mp->graph->initializer[i];
	return NULL;
}

/* The whole model: the BN unfolded, the shape arithmetic kept (it reads y, in the tail). */
static void
test_whole_model_keeps_bn_and_shape_arithmetic(void)
{
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };
	Onnx__ModelProto *mp = NULL;
	uint8_t *buf = NULL;
	size_t len;
	int bn = 0, shape = 0;

	TH_CHECK_MSG(load_built(&m, "y", &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	TH_CHECK_MSG(kern_model_extract(m, 0, 6, &buf, &len, &err) == 0, "%s", err.msg);
	if (buf)
		mp = unpack_counting(buf, len, "BatchNormalization", &bn);
	TH_CHECK(mp != NULL && mp->graph != NULL);
	if (mp == NULL || mp->graph == NULL)
		goto out;
	onnx__model_proto__free_unpacked(mp, NULL);
	mp = unpack_counting(buf, len, "Shape", &shape);
	TH_CHECK(bn == 1);
	TH_CHECK(shape == 1);
	TH_CHECK(find_init(mp, "idx0") != NULL && find_init(mp, "axes0") != NULL);
	TH_CHECK(find_init(mp, "shp") == NULL);
	TH_CHECK(mp->graph->n_input == 1 && strcmp(mp->graph->input[0]->name, "x") == 0);
	TH_CHECK(mp->graph->input[0]->type->tensor_type->shape->dim[0]->dim_value == 6);
	TH_CHECK(mp->graph->n_output == 2);
out:
	if (mp)
		onnx__model_proto__free_unpacked(mp, NULL);
	free(buf);
	kern_model_free(m);
}

/* Shape arithmetic on a head tensor (r1) is frozen at the batch: Reshape gets [6, -1]. */
static void
test_head_shapes_are_frozen_at_the_batch(void)
{
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };
	Onnx__ModelProto *mp = NULL;
	const Onnx__TensorProto *t;
	uint8_t *buf = NULL;
	size_t len;
	int s, shape = 1, consts = 0;

	TH_CHECK_MSG(load_built(&m, "r1", &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	s = kern_model_find_split(m, "a", &err);
	TH_CHECK(s > 0);
	if (s > 0 && kern_model_extract(m, (unsigned)s, 6, &buf, &len, &err) == 0)
		mp = unpack_counting(buf, len, "Shape", &shape);
	TH_CHECK_MSG(mp != NULL && mp->graph != NULL, "%s", err.msg);
	if (mp == NULL || mp->graph == NULL)
		goto out;
	TH_CHECK(shape == 0);
	t = find_init(mp, "shp");
	TH_CHECK(t != NULL && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
		 t->raw_data.len == 16 && ((const int64_t *)t->raw_data.data)[0] == 6 &&
		 ((const int64_t *)t->raw_data.data)[1] == -1);
	TH_CHECK(find_init(mp, "idx0") == NULL && find_init(mp, "axes0") == NULL);
	for (size_t i = 0; i < mp->graph->n_node; i++)
		consts += strcmp(mp->graph->node[i]->op_type, "Constant") == 0;
	TH_CHECK_MSG(consts == 1, "%d Constant nodes (want the Mul's only)", consts);
	/* Frozen at batch 1, the engine (which analyses models at batch 1) runs it. */
	TH_CHECK_MSG(check_split(m, (unsigned)s, 1, 1e-5f) == 0, "split a");
out:
	if (mp)
		onnx__model_proto__free_unpacked(mp, NULL);
	free(buf);
	kern_model_free(m);
}

/* A tail past the early exit has the final output only. */
static void
test_exits_in_the_head_are_left_out(void)
{
	struct kern_model *m = NULL, *e = NULL;
	struct kern_model_info ie;
	struct tg_err err = { 0 };
	uint8_t *buf = NULL;
	size_t len;
	int s;

	TH_CHECK_MSG(load_built(&m, "y", &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	s = kern_model_find_split(m, "a", &err);
	TH_CHECK(s > 0);
	if (s > 0 && kern_model_extract(m, (unsigned)s, 2, &buf, &len, &err) == 0 &&
	    kern_model_load_mem(buf, len, "e", NULL, &e, &err) == 0) {
		kern_model_get_info(e, &ie);
		TH_CHECK(ie.n_outputs == 1);
		TH_CHECK(strcmp(kern_model_output(e, 0)->name, "logits") == 0);
	}
	TH_CHECK_MSG(e != NULL, "%s", err.msg);
	kern_model_free(e);
	free(buf);
	kern_model_free(m);
}

static void
test_bad_split_and_batch_are_refused(void)
{
	struct kern_model *m = NULL;
	struct kern_model_info mi;
	struct tg_err err = { 0 };
	uint8_t *buf = (uint8_t *)&err;
	size_t len = 1;

	TH_CHECK_MSG(load_built(&m, "y", &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	kern_model_get_info(m, &mi);
	TH_CHECK(kern_model_extract(m, mi.n_splits, 1, &buf, &len, &err) == -EINVAL);
	TH_CHECK(buf == NULL && len == 0);
	TH_CHECK(strstr(err.msg, "split") != NULL);
	TH_CHECK(kern_model_extract(m, 0, 0, &buf, &len, &err) == -EINVAL);
	TH_CHECK(strstr(err.msg, "batch") != NULL);
	TH_CHECK(kern_model_extract(m, 0, (1u << 20) + 1, &buf, &len, NULL) == -EINVAL);
	kern_model_free(m);
}

/* PyTorch exports, when scripts/make_fixtures.py has written them: every split, batch 2. */
static void
test_fixture_models_extract_at_every_split(void)
{
	DIR *d = opendir("tests/fixtures");
	struct dirent *de;
	unsigned models = 0, compared = 0, unplanned = 0, frozen = 0;

	if (d == NULL) {
		TH_SKIP("no tests/fixtures (scripts/make_fixtures.py writes it)");
		return;
	}
	while ((de = readdir(d)) != NULL) {
		char path[512];
		struct kern_model *m = NULL;
		struct kern_model_info mi;
		struct tg_err err = { 0 };
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "tests/fixtures/%s/model.onnx", de->d_name);
		f = fopen(path, "rb");
		if (f == NULL)
			continue;
		fclose(f);
		TH_CHECK_MSG(kern_model_load(path, NULL, &m, &err) == 0, "%s", err.msg);
		if (m == NULL)
			continue;
		models++;
		kern_model_get_info(m, &mi);
		for (unsigned s = 0; s < mi.n_splits; s++) {
			int rc = check_split_as(m, s, 2, 1e-4f, true);

			/* Shape arithmetic reading the head's shapes is frozen at the batch in the
			 * file; this engine analyses a model at batch 1, so such a file loads in other
			 * runtimes only: the extraction is then checked at batch 1. */
			if (rc == 1) {
				frozen++;
				rc = check_split(m, s, 1, 1e-4f);
			}
			if (rc == 0)
				compared++;
			else
				unplanned++;
		}
		kern_model_free(m);
	}
	closedir(d);
	fprintf(stderr, "  fixtures: %u models, %u tails compared (%u at batch 1: head shapes "
		"frozen in the file), %u the engine cannot plan\n", models, compared, frozen,
		unplanned);
	if (models == 0)
		TH_SKIP("no tests/fixtures/*/model.onnx");
}

int
main(void)
{
	params();
	kern_set_threads(1);
	TH_RUN(test_every_tail_runs_as_its_extraction);
	TH_RUN(test_whole_model_keeps_bn_and_shape_arithmetic);
	TH_RUN(test_head_shapes_are_frozen_at_the_batch);
	TH_RUN(test_exits_in_the_head_are_left_out);
	TH_RUN(test_bad_split_and_batch_are_refused);
	TH_RUN(test_fixture_models_extract_at_every_split);
	TH_DONE();
}
