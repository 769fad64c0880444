/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kern_model_export_qdq(): tailgate's int8 model as a standard QDQ ONNX file, and that file
 * loaded back. On tests/fixtures/resnet_bnfolded (Conv, Relu, residual Adds, MaxPool,
 * GlobalAveragePool, Gemm) with the calibration committed beside its QDQ export in
 * tests/fixtures_qdq/resnet_bnfolded/ (made by `tailgate-model calibrate --input` on the
 * fixture's input.npy, then `tailgate-model export-qdq`):
 *   - the export is the committed file, byte for byte (deterministic; scripts/check_qdq.py
 *     runs python3-onnx's checker on both, tests/qdq_onnx_check.sh);
 *   - its structure: opset >= 13, every Conv/Gemm reads DequantizeLinear outputs for its
 *     input, weight and bias; weights s8 per channel (axis 0), biases int32, activations u8;
 *   - loaded back, it has the original's split points and outputs, and runs in int8 with the
 *     original's calibration to the same outputs as the original in int8 (same weights after
 *     tailgate's own requantization), and in f32 close to the original's f32;
 *   - bad inputs: a calibration of another model, one with no range for any Conv input, a
 *     DequantizeLinear whose scales do not match its weight's channels;
 *   - the tail from a split (kern_model_export_qdq_tail): its input is the split tensor at
 *     the batch, with its own Q/DQ pair; every scale, zero point and quantized weight it
 *     holds is the whole model's export's, byte for byte; it loads back in tailgate and runs
 *     in f32 close to the original's tail; bad split, batch and calibration refused.
 */
#include "kernels/kernels.h"
#include "onnx/onnx.pb-c.h"
#include "tests/harness.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FX "tests/fixtures/resnet_bnfolded"
#define QFX "tests/fixtures_qdq/resnet_bnfolded"

static uint8_t *
read_all(const char *path, size_t *len)
{
	struct tg_err err = { 0 };
	uint8_t *buf = NULL;

	if (tg_file_read(path, 64u << 20, &buf, len, &err) < 0) {
		fprintf(stderr, "  %s\n", err.msg);
		return NULL;
	}
	return buf;
}

/* The fixture model, its calibration and its QDQ export. */
struct qfx {
	struct kern_model *m;
	struct kern_calib *c;
	uint8_t *q;
	size_t qlen;
	struct kern_qdq_info info;
};

static int
qfx_open(struct qfx *f)
{
	struct tg_err err = { 0 };

	memset(f, 0, sizeof(*f));
	if (kern_model_load(FX "/model.onnx", NULL, &f->m, &err) < 0 ||
	    kern_calib_load(f->m, QFX "/model.calib", &f->c, &err) < 0 ||
	    kern_model_export_qdq(f->m, f->c, &f->q, &f->qlen, &f->info, &err) < 0) {
		fprintf(stderr, "  %s\n", err.msg);
		return -1;
	}
	return 0;
}

static void
qfx_close(struct qfx *f)
{
	free(f->q);
	kern_calib_free(f->c);
	kern_model_free(f->m);
}

static void
test_export_is_the_committed_fixture(void)
{
	struct qfx f;
	uint8_t *want;
	size_t wlen = 0;

	TH_CHECK(qfx_open(&f) == 0);
	want = read_all(QFX "/model.qdq.onnx", &wlen);
	TH_CHECK(want != NULL);
	TH_CHECK_MSG(want != NULL && wlen == f.qlen && memcmp(want, f.q, wlen) == 0,
		     "export %zu bytes, committed %zu", f.qlen, wlen);
	/* 8 Conv and the Gemm; inputs of each and what they compute past a Relu */
	TH_CHECK_MSG(f.info.n_nodes == 9 && f.info.n_tensors >= 9, "nodes %u tensors %u",
		     f.info.n_nodes, f.info.n_tensors);
	free(want);
	qfx_close(&f);
}

static const Onnx__NodeProto *
producer(const Onnx__GraphProto *g, const char *name)
{
	for (size_t j = 0; j < g->n_node; j++)
		for (size_t k = 0; k < g->node[j]->n_output; k++)
			if (strcmp(g->node[j]->output[k], name) == 0)
				return g->node[j];
	return NULL;
}

static const Onnx__TensorProto *
init(const Onnx__GraphProto *g, const char *name)
{
	for (size_t i = 0; i < g->n_initializer; i++)
		if (strcmp(g->initializer[i]->name, name) == 0)
			return g->initializer[i];
	return NULL;
}

/* Input k of np comes from a DequantizeLinear of an initializer of type dt (0: activation,
 * from a QuantizeLinear), per axis 0 when axis0. */
static bool
dq_input(const Onnx__GraphProto *g, const Onnx__NodeProto *np, size_t k, int dt, bool axis0)
{
	const Onnx__NodeProto *dq = k < np->n_input ? producer(g, np->input[k]) : NULL;
	const Onnx__TensorProto *t;
	const Onnx__NodeProto *q;

	if (dq == NULL || strcmp(dq->op_type, "DequantizeLinear") != 0 || dq->n_input != 3)
		return false;
	if (dt == 0) {
		q = producer(g, dq->input[0]);
		t = init(g, dq->input[2]);
		return q != NULL && strcmp(q->op_type, "QuantizeLinear") == 0 && t != NULL &&
		       t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 && t->n_dims == 0;
	}
	t = init(g, dq->input[0]);
	if (t == NULL || t->data_type != dt)
		return false;
	return !axis0 || (dq->n_attribute == 1 && strcmp(dq->attribute[0]->name, "axis") == 0 &&
			  dq->attribute[0]->i == 0);
}

static void
test_conv_and_gemm_read_dequantized_tensors(void)
{
	struct qfx f;
	Onnx__ModelProto *mp;
	unsigned convs = 0, gemms = 0, bad = 0;

	TH_CHECK(qfx_open(&f) == 0);
	mp = onnx__model_proto__unpack(NULL, f.qlen, f.q);
	TH_CHECK(mp != NULL && mp->graph != NULL);
	if (mp == NULL || mp->graph == NULL) {
		qfx_close(&f);
		return;
	}
	TH_CHECK(mp->n_opset_import >= 1 && mp->opset_import[0]->version >= 13);
	TH_CHECK(mp->ir_version >= 7);
	for (size_t j = 0; j < mp->graph->n_node; j++) {
		const Onnx__NodeProto *np = mp->graph->node[j];
		bool conv = strcmp(np->op_type, "Conv") == 0, gemm = strcmp(np->op_type, "Gemm") == 0;

		if (!conv && !gemm)
			continue;
		convs += conv;
		gemms += gemm;
		if (!dq_input(mp->graph, np, 0, 0, false) ||
		    !dq_input(mp->graph, np, 1, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, conv) ||
		    (np->n_input > 2 &&
		     !dq_input(mp->graph, np, 2, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, true))) {
			fprintf(stderr, "  node %s: an input is not dequantized as expected\n",
				np->name);
			bad++;
		}
	}
	TH_CHECK_MSG(convs == 8 && gemms == 1 && bad == 0, "conv %u gemm %u bad %u", convs, gemms,
		     bad);
	onnx__model_proto__free_unpacked(mp, NULL);
	qfx_close(&f);
}

/* Outputs of the whole model on the fixture's input, in the given precision. */
static int
run_all(const struct kern_model *m, const struct kern_calib *c, const struct tg_tensor *x,
	struct kern_outs *o)
{
	struct kern_stage st = { .m = m };
	struct tg_err err = { 0 };
	int rc;

	st.spec.kind = KERN_PLAN_TAIL;
	st.spec.split = 0;
	st.spec.precision = c ? KERN_PREC_INT8 : KERN_PREC_F32;
	st.spec.calib = c;
	rc = kern_stage_run(&st, (unsigned)x->dims[0], x, o, &err);
	if (rc < 0)
		fprintf(stderr, "  %s\n", err.msg);
	kern_stage_free(&st);
	return rc;
}

static float
max_diff(const struct kern_outs *a, const struct kern_outs *b, float *range)
{
	float d = 0.f;

	*range = 0.f;
	if (a->n != b->n || a->n == 0)
		return INFINITY;
	for (unsigned k = 0; k < a->n; k++) {
		size_t n = tg_tensor_numel(&a->t[k]);
		const float *x = a->t[k].data, *y = b->t[k].data;

		if (n != tg_tensor_numel(&b->t[k]))
			return INFINITY;
		for (size_t i = 0; i < n; i++) {
			d = fmaxf(d, fabsf(x[i] - y[i]));
			*range = fmaxf(*range, fabsf(x[i]));
		}
	}
	return d;
}

static void
test_loads_back_and_runs_as_the_original(void)
{
	struct kern_outs o8 = { 0 }, q8 = { 0 }, o32 = { 0 }, q32 = { 0 };
	struct kern_model_info a, b;
	struct kern_calib *qc = NULL;
	struct kern_model *qm = NULL;
	struct tg_tensor x = { 0 };
	struct tg_err err = { 0 };
	struct qfx f;
	float d8, d32, r8, r32;

	TH_CHECK(qfx_open(&f) == 0);
	TH_CHECK(tg_npy_load(FX "/input.npy", 1u << 20, &x, &err) == 0);
	TH_CHECK_MSG(kern_model_load_mem(f.q, f.qlen, "qdq", NULL, &qm, &err) == 0, "%s", err.msg);
	if (qm == NULL || x.data == NULL) {
		tg_tensor_free(&x);
		qfx_close(&f);
		return;
	}
	kern_model_get_info(f.m, &a);
	kern_model_get_info(qm, &b);
	TH_CHECK_MSG(a.n_splits == b.n_splits && a.n_outputs == b.n_outputs,
		     "splits %u/%u outputs %u/%u", a.n_splits, b.n_splits, a.n_outputs, b.n_outputs);
	/* The activations keep their names: the original's calibration applies. */
	TH_CHECK_MSG(kern_calib_load(qm, QFX "/model.calib", &qc, &err) == 0, "%s", err.msg);
	TH_CHECK(run_all(f.m, f.c, &x, &o8) == 0 && run_all(qm, qc, &x, &q8) == 0);
	TH_CHECK(run_all(f.m, NULL, &x, &o32) == 0 && run_all(qm, NULL, &x, &q32) == 0);
	d8 = max_diff(&o8, &q8, &r8);
	d32 = max_diff(&o32, &q32, &r32);
	fprintf(stderr, "  int8: max |diff| %.3g of %.3g; f32 (weights quantized): %.3g of %.3g\n",
		d8, r8, d32, r32);
	/* int8: the same q weights after requantization; only the int32 bias rounding differs */
	TH_CHECK_MSG(d8 <= 0.02f * r8, "int8 diff %g range %g", d8, r8);
	TH_CHECK_MSG(d32 <= 0.1f * r32, "f32 diff %g range %g", d32, r32);
	kern_outs_free(&o8);
	kern_outs_free(&q8);
	kern_outs_free(&o32);
	kern_outs_free(&q32);
	kern_calib_free(qc);
	kern_model_free(qm);
	tg_tensor_free(&x);
	qfx_close(&f);
}

static void
test_bad_calibrations_are_refused(void)
{
	struct kern_model *other = NULL;
	struct kern_calib *empty = NULL;
	struct tg_err err = { 0 };
	uint8_t *out = (uint8_t *)1;
	size_t len = 1;
	struct qfx f;

	TH_CHECK(qfx_open(&f) == 0);
	TH_CHECK(kern_model_load(FX "/model.onnx", NULL, &other, &err) == 0);
	/* a calibration of another model (even of the same file) */
	TH_CHECK(kern_model_export_qdq(other, f.c, &out, &len, NULL, &err) == -EINVAL);
	TH_CHECK_MSG(out == NULL && len == 0 && strstr(err.msg, "not this model's"), "%s", err.msg);
	TH_CHECK(kern_model_export_qdq(f.m, NULL, &out, &len, NULL, &err) == -EINVAL);
	/* no range at all: nothing would run in int8 */
	TH_CHECK(kern_calib_create(f.m, &empty, &err) == 0);
	TH_CHECK(kern_model_export_qdq(f.m, empty, &out, &len, NULL, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "nothing would run in int8") != NULL, "%s", err.msg);
	kern_calib_free(empty);
	kern_model_free(other);
	qfx_close(&f);
}

/* A weight's DequantizeLinear with one scale too few: a load error naming it, no crash. */
static void
test_bad_dequantize_is_a_load_error(void)
{
	struct kern_model *qm = NULL;
	struct tg_err err = { 0 };
	Onnx__ModelProto *mp;
	uint8_t *buf = NULL;
	size_t len = 0;
	bool cut = false;
	struct qfx f;

	TH_CHECK(qfx_open(&f) == 0);
	mp = onnx__model_proto__unpack(NULL, f.qlen, f.q);
	TH_CHECK(mp != NULL);
	for (size_t i = 0; mp != NULL && i < mp->graph->n_initializer && !cut; i++) {
		Onnx__TensorProto *t = mp->graph->initializer[i];
		size_t n = strlen(t->name);

		if (n > 8 && strcmp(t->name + n - 8, "_W_scale") == 0 && t->n_dims == 1) {
			t->dims[0]--;
			t->raw_data.len -= sizeof(float);
			cut = true;
		}
	}
	TH_CHECK(cut);
	if (mp != NULL) {
		len = onnx__model_proto__get_packed_size(mp);
		buf = malloc(len);
		TH_CHECK(buf != NULL && onnx__model_proto__pack(mp, buf) == len);
		onnx__model_proto__free_unpacked(mp, NULL);
	}
	TH_CHECK(buf != NULL && kern_model_load_mem(buf, len, "bad", NULL, &qm, &err) == -EINVAL);
	TH_CHECK_MSG(qm == NULL && strstr(err.msg, "DequantizeLinear") != NULL, "%s", err.msg);
	free(buf);
	qfx_close(&f);
}

#define QFX_SPLIT "/layer1/layer1.0/relu2/Relu_output_0"	/* split 5: feeds 2 Convs */

/* Quantization parameters (scales, zero points, quantized weights and biases) of the tail
 * that the whole export does not hold with the same bytes; *n_q counts those compared. */
static unsigned
tail_params_differ(const Onnx__GraphProto *tail, const Onnx__GraphProto *whole, unsigned *n_q)
{
	static const char *const sfx[] = { "_scale", "_zero_point", "_quantized" };
	unsigned bad = 0;

	*n_q = 0;
	for (size_t i = 0; i < tail->n_initializer; i++) {
		const Onnx__TensorProto *t = tail->initializer[i], *w;
		size_t n = strlen(t->name);
		bool q = false;

		for (size_t k = 0; k < 3; k++)
			q |= n >= strlen(sfx[k]) && strcmp(t->name + n - strlen(sfx[k]), sfx[k]) == 0;
		if (!q)
			continue;
		(*n_q)++;
		w = init(whole, t->name);
		if (w == NULL || w->data_type != t->data_type || w->raw_data.len != t->raw_data.len ||
		    memcmp(w->raw_data.data, t->raw_data.data, t->raw_data.len) != 0) {
			fprintf(stderr, "  %s: not the whole export's\n", t->name);
			bad++;
		}
	}
	return bad;
}

static void
test_tail_carries_the_whole_models_quantization(void)
{
	Onnx__ModelProto *tp = NULL, *wp = NULL;
	struct kern_qdq_info ti = { 0 };
	struct tg_err err = { 0 };
	uint8_t *t = NULL;
	size_t tlen = 0;
	unsigned n_q = 0, convs = 0, bad = 1;
	int split;
	struct qfx f;

	TH_CHECK(qfx_open(&f) == 0);
	split = kern_model_find_split(f.m, QFX_SPLIT, &err);
	TH_CHECK_MSG(split == 5, "split %d: %s", split, err.msg);
	TH_CHECK_MSG(kern_model_export_qdq_tail(f.m, f.c, 5, 2, &t, &tlen, &ti, &err) == 0, "%s",
		     err.msg);
	if (t != NULL)
		tp = onnx__model_proto__unpack(NULL, tlen, t);
	wp = onnx__model_proto__unpack(NULL, f.qlen, f.q);
	TH_CHECK(tp != NULL && wp != NULL);
	if (tp != NULL && wp != NULL) {
		const Onnx__ValueInfoProto *in = tp->graph->n_input ? tp->graph->input[0] : NULL;
		const Onnx__TensorShapeProto *sh = in && in->type && in->type->tensor_type ?
						   in->type->tensor_type->shape : NULL;

		TH_CHECK_MSG(in != NULL && strcmp(in->name, QFX_SPLIT) == 0, "input %s",
			     in ? in->name : "none");
		TH_CHECK(sh != NULL && sh->n_dim == 4 && sh->dim[0]->dim_value == 2 &&
			 sh->dim[1]->dim_value == 8);
		for (size_t j = 0; j < tp->graph->n_node; j++) {
			const Onnx__NodeProto *np = tp->graph->node[j];

			if (strcmp(np->op_type, "Conv") == 0 || strcmp(np->op_type, "Gemm") == 0)
				convs += dq_input(tp->graph, np, 0, 0, false);
		}
		/* layer2.0 (3 Conv, one the shortcut's), layer2.1 (2) and the Gemm, each
		 * reading a Q/DQ pair */
		TH_CHECK_MSG(ti.n_nodes == 6 && convs == 6, "quantized %u, reading Q/DQ %u",
			     ti.n_nodes, convs);
		bad = tail_params_differ(tp->graph, wp->graph, &n_q);
		TH_CHECK_MSG(bad == 0 && n_q >= 3 * ti.n_nodes, "%u of %u differ", bad, n_q);
	}
	if (tp)
		onnx__model_proto__free_unpacked(tp, NULL);
	if (wp)
		onnx__model_proto__free_unpacked(wp, NULL);
	free(t);
	qfx_close(&f);
}

/* The tail loaded back runs, in f32 with its quantized weights, as the original's tail. */
static void
test_tail_loads_back_and_runs(void)
{
	struct kern_outs o32 = { 0 }, q32 = { 0 };
	struct kern_stage a = { 0 }, b = { 0 };
	struct kern_model *qm = NULL;
	struct tg_tensor x = { .dtype = TG_DT_F32, .ndim = 4, .dims = { 2, 8, 8, 8 } };
	struct tg_err err = { 0 };
	uint8_t *t = NULL;
	size_t tlen = 0;
	float d, r;
	struct qfx f;

	TH_CHECK(qfx_open(&f) == 0);
	TH_CHECK(tg_tensor_alloc(&x) == 0);
	for (size_t i = 0; x.data != NULL && i < tg_tensor_numel(&x); i++)
		((float *)x.data)[i] = (float)((i * 37) % 101) / 50.f;	/* >= 0: after a Relu */
	TH_CHECK(kern_model_export_qdq_tail(f.m, f.c, 5, 2, &t, &tlen, NULL, &err) == 0);
	TH_CHECK_MSG(t != NULL && kern_model_load_mem(t, tlen, "tail", NULL, &qm, &err) == 0, "%s",
		     err.msg);
	if (qm == NULL || x.data == NULL)
		goto out;
	a.m = f.m;
	a.spec.kind = KERN_PLAN_TAIL;
	a.spec.split = 5;
	b.m = qm;
	b.spec.kind = KERN_PLAN_TAIL;
	b.spec.split = 0;
	TH_CHECK_MSG(kern_stage_run(&a, 2, &x, &o32, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(kern_stage_run(&b, 2, &x, &q32, &err) == 0, "%s", err.msg);
	d = max_diff(&o32, &q32, &r);
	fprintf(stderr, "  tail f32 (weights quantized): max |diff| %.3g of %.3g\n", d, r);
	TH_CHECK_MSG(d <= 0.1f * r, "diff %g range %g", d, r);
out:
	kern_stage_free(&a);
	kern_stage_free(&b);
	kern_outs_free(&o32);
	kern_outs_free(&q32);
	kern_model_free(qm);
	tg_tensor_free(&x);
	free(t);
	qfx_close(&f);
}

static void
test_tail_bad_arguments_are_refused(void)
{
	struct kern_model *other = NULL;
	struct tg_err err = { 0 };
	uint8_t *out = (uint8_t *)1;
	size_t len = 1;
	struct qfx f;

	TH_CHECK(qfx_open(&f) == 0);
	TH_CHECK(kern_model_export_qdq_tail(f.m, f.c, 12, 1, &out, &len, NULL, &err) == -EINVAL);
	TH_CHECK_MSG(out == NULL && len == 0 && strstr(err.msg, "split points"), "%s", err.msg);
	TH_CHECK(kern_model_export_qdq_tail(f.m, f.c, 5, 0, &out, &len, NULL, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "batch 0") != NULL, "%s", err.msg);
	TH_CHECK(kern_model_load(FX "/model.onnx", NULL, &other, &err) == 0);
	TH_CHECK(kern_model_export_qdq_tail(other, f.c, 5, 1, &out, &len, NULL, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "not this model's") != NULL, "%s", err.msg);
	TH_CHECK(kern_model_export_qdq_tail(f.m, NULL, 5, 1, &out, &len, NULL, &err) == -EINVAL);
	TH_CHECK(out == NULL && len == 0);
	kern_model_free(other);
	qfx_close(&f);
}

int
main(void)
{
	kern_set_threads(1);
	TH_RUN(test_export_is_the_committed_fixture);
	TH_RUN(test_conv_and_gemm_read_dequantized_tensors);
	TH_RUN(test_loads_back_and_runs_as_the_original);
	TH_RUN(test_bad_calibrations_are_refused);
	TH_RUN(test_bad_dequantize_is_a_load_error);
	TH_RUN(test_tail_carries_the_whole_models_quantization);
	TH_RUN(test_tail_loads_back_and_runs);
	TH_RUN(test_tail_bad_arguments_are_refused);
	TH_DONE();
}
