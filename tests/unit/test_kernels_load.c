/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine on models built here with protobuf-c: loader errors (unsupported op and
 * attribute, cycles, missing initializers, truncation, hostile sizes), BatchNormalization
 * folding, split points of a residual graph, and numerics against a naive reference.
 */
#include "kernels/kernels.h"
#include "kernels/kp_int.h"
#include "onnx/onnx.pb-c.h"
#include "proto/proto.h"
#include "tests/harness.h"
#include "tests/onnx_builder.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- the residual block used by several tests ----
 *   x -> Conv(w1,b1) -> BN -> Relu -> r1 -> Conv(w2) -> c2 ; Add(c2, r1) -> Relu -> y
 * Split points: x, bn1, r1 and a; not c2 (the Add also reads r1), not y (nothing after it). */
enum { C = 4, H = 5, W = 5 };
static float w1[C * C * 9], b1[C], w2[C * C * 9], bn_s[C], bn_b[C], bn_m[C], bn_v[C];

static void
residual_params(void)
{
	unsigned seed = 7;

	for (size_t i = 0; i < sizeof(w1) / sizeof(w1[0]); i++) {
		seed = seed * 1103515245 + 12345;
		w1[i] = ((seed >> 16) % 2001) / 1000.f - 1.f;
		seed = seed * 1103515245 + 12345;
		w2[i] = ((seed >> 16) % 2001) / 1000.f - 1.f;
	}
	for (int c = 0; c < C; c++) {
		b1[c] = 0.1f * c - 0.2f;
		bn_s[c] = 0.5f + 0.25f * c;
		bn_b[c] = -0.3f + 0.2f * c;
		bn_m[c] = 0.05f * c;
		bn_v[c] = 0.5f + c;
	}
}

static void
residual_model(struct mb *b, bool with_bn)
{
	static const int64_t xd[4] = { 1, C, H, W }, wd[4] = { C, C, 3, 3 }, cd[1] = { C };
	static const int64_t pads[4] = { 1, 1, 1, 1 };
	Onnx__NodeProto *n;

	mb_init(b, 13);
	mb_init_tensor(b, "w1", wd, 4, w1, NULL);
	mb_init_tensor(b, "b1", cd, 1, b1, NULL);
	mb_init_tensor(b, "w2", wd, 4, w2, NULL);
	n = mb_node(b, "Conv", "conv1", (const char *const[]){ "x", "w1", "b1" }, 3,
		    with_bn ? "c1" : "bn1");
	mb_attr_ints(b, n, "pads", pads, 4);
	if (with_bn) {
		mb_init_tensor(b, "s", cd, 1, bn_s, NULL);
		mb_init_tensor(b, "bb", cd, 1, bn_b, NULL);
		mb_init_tensor(b, "mm", cd, 1, bn_m, NULL);
		mb_init_tensor(b, "vv", cd, 1, bn_v, NULL);
		mb_node(b, "BatchNormalization", "bn",
			(const char *const[]){ "c1", "s", "bb", "mm", "vv" }, 5, "bn1");
	}
	mb_node(b, "Relu", "relu1", (const char *const[]){ "bn1" }, 1, "r1");
	n = mb_node(b, "Conv", "conv2", (const char *const[]){ "r1", "w2" }, 2, "c2");
	mb_attr_ints(b, n, "pads", pads, 4);
	mb_node(b, "Add", "add", (const char *const[]){ "c2", "r1" }, 2, "a");
	mb_node(b, "Relu", "relu2", (const char *const[]){ "a" }, 1, "y");
	mb_io(b, "x", xd, 4, "y");
}

/* Naive reference of the same block, one sample. */
static void
ref_conv(const float *x, const float *w, const float *bias, float *y)
{
	for (int o = 0; o < C; o++)
		for (int i = 0; i < H; i++)
			for (int j = 0; j < W; j++) {
				double acc = bias ? bias[o] : 0;

				for (int c = 0; c < C; c++)
					for (int ki = 0; ki < 3; ki++)
						for (int kj = 0; kj < 3; kj++) {
							int ii = i + ki - 1, jj = j + kj - 1;

							if (ii < 0 || jj < 0 || ii >= H || jj >= W)
								continue;
							acc += (double)x[(c * H + ii) * W + jj] *
							       w[((o * C + c) * 3 + ki) * 3 + kj];
						}
				y[(o * H + i) * W + j] = (float)acc;
			}
}

static void
ref_residual(const float *x, float *y, bool with_bn, float *r1_out)
{
	float c1[C * H * W], c2[C * H * W];

	ref_conv(x, w1, b1, c1);
	for (int o = 0; o < C; o++)
		for (int k = 0; k < H * W; k++) {
			float v = c1[o * H * W + k];

			if (with_bn)
				v = (v - bn_m[o]) / sqrtf(bn_v[o] + 1e-5f) * bn_s[o] + bn_b[o];
			c1[o * H * W + k] = v > 0 ? v : 0;
		}
	memcpy(r1_out, c1, sizeof(c1));
	ref_conv(c1, w2, NULL, c2);
	for (int k = 0; k < C * H * W; k++) {
		float v = c2[k] + c1[k];

		y[k] = v > 0 ? v : 0;
	}
}

static float
max_abs_diff(const float *a, const float *b, size_t n)
{
	float m = 0;

	for (size_t i = 0; i < n; i++)
		m = fmaxf(m, fabsf(a[i] - b[i]));
	return m;
}

/* ---- tests ---- */

static void
test_bn_is_folded_and_splits_found(void)
{
	struct mb b;
	struct kern_model *m = NULL;
	struct kern_model_info info;
	struct tg_err err = { 0 };

	residual_model(&b, true);
	TH_CHECK_MSG(mb_load(&b, &m, &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	kern_model_get_info(m, &info);
	TH_CHECK(info.n_nodes == 6);
	TH_CHECK_MSG(info.n_exec_nodes == 5, "%u", info.n_exec_nodes);	/* BN gone */
	TH_CHECK_MSG(info.n_splits == 4, "%u splits", info.n_splits);
	TH_CHECK(strcmp(kern_model_split(m, 0)->name, "x") == 0);
	TH_CHECK(kern_model_split(m, 1) && strcmp(kern_model_split(m, 1)->name, "bn1") == 0);
	TH_CHECK(kern_model_split(m, 2) && strcmp(kern_model_split(m, 2)->name, "r1") == 0);
	TH_CHECK(kern_model_find_split(m, "r1", NULL) == 2);
	TH_CHECK(kern_model_find_split(m, "2", NULL) == 2);
	TH_CHECK(kern_model_split(m, 3) && strcmp(kern_model_split(m, 3)->name, "a") == 0);
	TH_CHECK(kern_model_find_split(m, "4", &err) == -ENOENT);
	TH_CHECK(kern_model_find_split(m, "y", &err) == -ENOENT);
	TH_CHECK(kern_model_find_split(m, "c2", &err) == -ENOENT);	/* inside the block */
	TH_CHECK(kern_model_split(m, 2)->head_flops + kern_model_split(m, 2)->tail_flops ==
		 info.flops);
	kern_model_free(m);
}

static void
run_residual(bool with_bn, unsigned batch)
{
	struct mb b;
	struct kern_model *m = NULL;
	struct kern_plan *p = NULL;
	struct kern_plan_spec spec = { .kind = KERN_PLAN_TAIL, .split = 0, .batch = batch };
	struct tg_err err = { 0 };
	struct tg_tensor in, out;
	float ref[C * H * W], r1[C * H * W];

	residual_model(&b, with_bn);
	TH_CHECK_MSG(mb_load(&b, &m, &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	TH_CHECK_MSG(kern_plan_create(m, &spec, &p, &err) == 0, "%s", err.msg);
	if (p == NULL)
		goto out;
	TH_CHECK(kern_plan_input(p, 0, &in) == 0 && in.dims[0] == batch && in.dims[1] == C);
	for (size_t i = 0; i < tg_tensor_numel(&in); i++)
		((float *)in.data)[i] = sinf((float)i * 0.37f);
	TH_CHECK(kern_plan_run(p) == 0);
	TH_CHECK(kern_plan_output(p, 0, &out, NULL) == 0);
	for (unsigned s = 0; s < batch; s++) {
		ref_residual((float *)in.data + s * C * H * W, ref, with_bn, r1);
		TH_CHECK_MSG(max_abs_diff(ref, (float *)out.data + s * C * H * W, C * H * W) < 1e-4f,
			     "sample %u: %g", s,
			     max_abs_diff(ref, (float *)out.data + s * C * H * W, C * H * W));
	}
	kern_plan_free(p);
	p = NULL;
	/* The tail from r1, fed the reference r1, gives the same output. */
	spec.split = 2;
	TH_CHECK_MSG(kern_plan_create(m, &spec, &p, &err) == 0, "%s", err.msg);
	if (p != NULL) {
		float x[C * H * W];

		for (size_t i = 0; i < C * H * W; i++)
			x[i] = cosf((float)i);
		ref_residual(x, ref, with_bn, r1);
		kern_plan_input(p, 0, &in);
		for (unsigned s = 0; s < batch; s++)
			memcpy((float *)in.data + s * C * H * W, r1, sizeof(r1));
		TH_CHECK(kern_plan_run(p) == 0);
		kern_plan_output(p, 0, &out, NULL);
		TH_CHECK(max_abs_diff(ref, out.data, C * H * W) < 1e-4f);
		kern_plan_free(p);
		p = NULL;
	}
	/* The head to r1 gives r1. */
	spec.kind = KERN_PLAN_HEAD;
	TH_CHECK_MSG(kern_plan_create(m, &spec, &p, &err) == 0, "%s", err.msg);
	if (p != NULL) {
		const char *name = NULL;
		float x[C * H * W];

		for (size_t i = 0; i < C * H * W; i++)
			x[i] = cosf((float)i);
		ref_residual(x, ref, with_bn, r1);
		kern_plan_input(p, 0, &in);
		memcpy(in.data, x, sizeof(x));
		TH_CHECK(kern_plan_run(p) == 0);
		kern_plan_output(p, 0, &out, &name);
		TH_CHECK(name && strcmp(name, "r1") == 0);
		TH_CHECK(max_abs_diff(r1, out.data, C * H * W) < 1e-4f);
	}
out:
	kern_plan_free(p);
	kern_model_free(m);
}

static void
test_residual_matches_reference_with_bn(void)
{
	run_residual(true, 3);
}

static void
test_residual_matches_reference_without_bn(void)
{
	run_residual(false, 1);
}

static void
expect_load_error(struct mb *b, int code, const char *const *words)
{
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };
	int rc = mb_load(b, &m, &err);

	TH_CHECK_MSG(rc == code, "rc %d, want %d (%s)", rc, code, err.msg);
	TH_CHECK(m == NULL);
	for (; *words; words++)
		TH_CHECK_MSG(strstr(err.msg, *words) != NULL, "\"%s\" not in \"%s\"", *words, err.msg);
	kern_model_free(m);
}

static void
test_unsupported_op_names_node_and_op(void)
{
	struct mb b;

	residual_model(&b, false);
	b.nodes[1].op_type = "LSTM";
	expect_load_error(&b, -EINVAL, (const char *const[]){ "relu1", "LSTM", NULL });
}

static void
test_unsupported_attribute_names_it(void)
{
	struct mb b;
	static const int64_t one = 1;

	residual_model(&b, false);
	mb_attr_ints(&b, &b.nodes[b.n_nodes - 1], "bogus", &one, 1);
	expect_load_error(&b, -EINVAL, (const char *const[]){ "relu2", "Relu", "bogus", NULL });
}

static void
test_cycle_is_refused(void)
{
	struct mb b;

	residual_model(&b, false);
	b.nodes[1].input[0] = "y";	/* relu1 now reads the last output */
	expect_load_error(&b, -EINVAL, (const char *const[]){ "cycle", NULL });
}

static void
test_missing_initializer_is_refused(void)
{
	struct mb b;

	residual_model(&b, false);
	b.graph.n_initializer = 2;	/* drop w2 */
	expect_load_error(&b, -EINVAL, (const char *const[]){ "conv2", "w2", NULL });
}

static void
test_hostile_initializer_dims_are_refused(void)
{
	struct mb b;

	residual_model(&b, false);
	b.inits[0].dims[0] = 1ll << 40;
	expect_load_error(&b, -EFBIG, (const char *const[]){ "w1", NULL });
	residual_model(&b, false);
	b.inits[0].dims[0] = 5;	/* more elements declared than given */
	expect_load_error(&b, -EINVAL, (const char *const[]){ "w1", NULL });
}

static void
test_shape_mismatch_is_refused(void)
{
	struct mb b;

	residual_model(&b, false);
	b.dims[1].dim_value = C + 1;	/* input channels no longer match w1 */
	expect_load_error(&b, -EINVAL, (const char *const[]){ "conv1", "channels", NULL });
}

static void
test_truncated_files_never_load(void)
{
	struct mb b;
	size_t len;
	uint8_t *buf;
	unsigned loaded = 0;

	residual_model(&b, true);
	len = onnx__model_proto__get_packed_size(&b.model);
	buf = malloc(len);
	onnx__model_proto__pack(&b.model, buf);
	for (size_t cut = 0; cut < len; cut += 7) {
		struct kern_model *m = NULL;

		if (kern_model_load_mem(buf, cut, "cut", NULL, &m, NULL) == 0)
			loaded++;
		kern_model_free(m);
	}
	/* Protobuf can end cleanly at a field boundary; such a prefix is a smaller valid
	 * message only if it still has a whole graph, which these prefixes do not. */
	TH_CHECK_MSG(loaded == 0, "%u truncated prefixes loaded", loaded);
	free(buf);
}

static void
test_file_over_the_limit_is_refused(void)
{
	struct kern_load_opts o = { .max_file_bytes = 16 };
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };

	TH_CHECK(kern_model_load("/etc/passwd", &o, &m, &err) == -EFBIG);
	TH_CHECK(m == NULL);
}

static void
test_tail_buckets_pick_the_smallest_plan_that_fits(void)
{
	struct mb b;
	struct kern_model *m = NULL;
	struct kern_tail *t = NULL;
	struct tg_err err = { 0 };
	struct tg_tensor in;

	residual_model(&b, true);
	TH_CHECK_MSG(mb_load(&b, &m, &err) == 0, "%s", err.msg);
	if (m == NULL)
		return;
	struct kern_plan_spec spec = { .kind = KERN_PLAN_TAIL, .split = 2 };

	TH_CHECK_MSG(kern_tail_create(m, &spec, 6, &t, &err) == 0, "%s", err.msg);
	if (t != NULL) {
		TH_CHECK(kern_tail_max_batch(t) == 6);
		TH_CHECK(kern_tail_plan(t, 0) == NULL && kern_tail_plan(t, 7) == NULL);
		kern_plan_input(kern_tail_plan(t, 3), 0, &in);
		TH_CHECK(in.dims[0] == 4);
		kern_plan_input(kern_tail_plan(t, 5), 0, &in);
		TH_CHECK(in.dims[0] == 6);
		kern_plan_input(kern_tail_plan(t, 1), 0, &in);
		TH_CHECK(in.dims[0] == 1);
	}
	spec.split = 9;
	TH_CHECK(kern_tail_create(m, &spec, 4, &t, &err) == -EINVAL);
	kern_tail_free(t);
	kern_model_free(m);
}

/* Calibrate on random inputs, then the int8 tail stays close to fp32 (a few % of range). */
static void
test_int8_tail_tracks_fp32(void)
{
	struct mb b;
	struct kern_model *m = NULL;
	struct kern_calib *cal = NULL, *cal2 = NULL;
	struct kern_plan *pf = NULL, *pq = NULL;
	struct tg_err err = { 0 };
	struct tg_tensor x = { .dtype = TG_DT_F32, .ndim = 4, .dims = { 8, C, H, W } }, in, of, oq;
	char path[] = "/tmp/tg_calib_XXXXXX";
	int fd = mkstemp(path);

	close(fd);
	residual_model(&b, true);
	TH_CHECK_MSG(mb_load(&b, &m, &err) == 0, "%s", err.msg);
	if (m == NULL || tg_tensor_alloc(&x) < 0)
		goto out;
	TH_CHECK(kern_calib_create(m, &cal, &err) == 0);
	for (int rep = 0; rep < 4; rep++) {
		for (size_t i = 0; i < tg_tensor_numel(&x); i++)
			((float *)x.data)[i] = sinf((float)(i * 7 + rep * 13) * 0.11f);
		TH_CHECK_MSG(kern_calib_observe(cal, &x, &err) == 0, "%s", err.msg);
	}
	TH_CHECK_MSG(kern_calib_count(cal) == 6, "%u", kern_calib_count(cal));	/* x,bn1,r1,c2,a,y */
	TH_CHECK_MSG(kern_calib_save(cal, path, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(kern_calib_load(m, path, &cal2, &err) == 0, "%s", err.msg);
	for (unsigned split = 0; split < 4 && cal2; split++) {
		struct kern_plan_spec sf = { .kind = KERN_PLAN_TAIL, .split = split, .batch = 2 };
		struct kern_plan_spec sq = sf;
		float range = 0, worst = 0;

		sq.precision = KERN_PREC_INT8;
		sq.calib = cal2;
		TH_CHECK_MSG(kern_plan_create(m, &sf, &pf, &err) == 0, "%s", err.msg);
		TH_CHECK_MSG(kern_plan_create(m, &sq, &pq, &err) == 0, "split %u: %s", split, err.msg);
		if (pf == NULL || pq == NULL)
			break;
		/* Realistic inputs at the split: the head's own output for a fresh sample. */
		kern_plan_input(pf, 0, &in);
		for (size_t i = 0; i < tg_tensor_numel(&in); i++)
			((float *)in.data)[i] = fabsf(cosf((float)i * 0.3f));
		kern_plan_input(pq, 0, &of);
		memcpy(of.data, in.data, tg_tensor_bytes(&in));
		TH_CHECK(kern_plan_run(pf) == 0 && kern_plan_run(pq) == 0);
		kern_plan_output(pf, 0, &of, NULL);
		kern_plan_output(pq, 0, &oq, NULL);
		for (size_t i = 0; i < tg_tensor_numel(&of); i++) {
			range = fmaxf(range, fabsf(((float *)of.data)[i]));
			worst = fmaxf(worst, fabsf(((float *)of.data)[i] - ((float *)oq.data)[i]));
		}
		TH_CHECK_MSG(worst <= 0.05f * range, "split %u: int8 off by %g of range %g", split,
			     worst, range);
		kern_plan_free(pf);
		kern_plan_free(pq);
		pf = pq = NULL;
	}
out:
	unlink(path);
	kern_plan_free(pf);
	kern_plan_free(pq);
	kern_calib_free(cal);
	kern_calib_free(cal2);
	tg_tensor_free(&x);
	kern_model_free(m);
}

/* ---- the same model as an fp32 and an int8 plan, calibrated on sine waves ---- */
struct int8_pair {
	struct kern_model *m;
	struct kern_calib *cal;
	struct kern_plan *pf, *pq;
};

static float
wave(size_t i, int rep, unsigned mul, float freq)
{
	return sinf((float)(i * mul + (size_t)rep * 17) * freq);
}

/* Load b's model, calibrate it on 4 batches shaped like x, build both tail plans at split 0. */
static int
int8_pair_make(struct int8_pair *ip, struct mb *b, struct tg_tensor *x, unsigned mul,
	       float freq)
{
	struct tg_err err = { 0 };
	struct kern_plan_spec sf = { .kind = KERN_PLAN_TAIL, .split = 0,
				     .batch = (unsigned)x->dims[0] }, sq;

	memset(ip, 0, sizeof(*ip));
	TH_CHECK_MSG(mb_load(b, &ip->m, &err) == 0, "%s", err.msg);
	if (ip->m == NULL || tg_tensor_alloc(x) < 0)
		return -1;
	TH_CHECK(kern_calib_create(ip->m, &ip->cal, &err) == 0);
	for (int rep = 0; rep < 4 && ip->cal; rep++) {
		for (size_t i = 0; i < tg_tensor_numel(x); i++)
			((float *)x->data)[i] = wave(i, rep, mul, freq);
		TH_CHECK_MSG(kern_calib_observe(ip->cal, x, &err) == 0, "%s", err.msg);
	}
	sq = sf;
	sq.precision = KERN_PREC_INT8;
	sq.calib = ip->cal;
	TH_CHECK_MSG(kern_plan_create(ip->m, &sf, &ip->pf, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(kern_plan_create(ip->m, &sq, &ip->pq, &err) == 0, "%s", err.msg);
	return ip->pf != NULL && ip->pq != NULL ? 0 : -1;
}

/* Run both plans on the first calibration batch; the outputs' largest magnitude (fp32), the
 * largest difference and how many elements differ. @return output elements (0: none ran) */
static size_t
int8_pair_run(struct int8_pair *ip, unsigned mul, float freq, float *range, float *worst,
	      size_t *differ)
{
	struct tg_tensor in, of, oq;

	*range = *worst = 0;
	*differ = 0;
	kern_plan_input(ip->pf, 0, &in);
	for (size_t i = 0; i < tg_tensor_numel(&in); i++)
		((float *)in.data)[i] = wave(i, 0, mul, freq);	/* within calibration */
	kern_plan_input(ip->pq, 0, &of);
	memcpy(of.data, in.data, tg_tensor_bytes(&in));
	TH_CHECK(kern_plan_run(ip->pf) == 0 && kern_plan_run(ip->pq) == 0);
	kern_plan_output(ip->pf, 0, &of, NULL);
	kern_plan_output(ip->pq, 0, &oq, NULL);
	if (tg_tensor_numel(&of) != tg_tensor_numel(&oq))
		return 0;
	for (size_t i = 0; i < tg_tensor_numel(&of); i++) {
		float d = fabsf(((float *)of.data)[i] - ((float *)oq.data)[i]);

		*range = fmaxf(*range, fabsf(((float *)of.data)[i]));
		*worst = fmaxf(*worst, d);
		*differ += d > 0;
	}
	return tg_tensor_numel(&of);
}

static void
int8_pair_free(struct int8_pair *ip)
{
	kern_plan_free(ip->pf);
	kern_plan_free(ip->pq);
	kern_calib_free(ip->cal);
	kern_model_free(ip->m);
}

/* ---- a classifier head: x[8,C,H,W] -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm ---- */
static void
pool_head_model(struct mb *b)
{
	static const int64_t xd[4] = { 8, C, H, W }, wd[4] = { C, C, 3, 3 }, cd[1] = { C },
			     gd[2] = { 10, C };
	static const int64_t pads[4] = { 1, 1, 1, 1 };
	Onnx__NodeProto *n;

	mb_init(b, 13);
	mb_init_tensor(b, "w1", wd, 4, w1, NULL);
	mb_init_tensor(b, "b1", cd, 1, b1, NULL);
	mb_init_tensor(b, "gw", gd, 2, w2, NULL);
	n = mb_node(b, "Conv", "conv", (const char *const[]){ "x", "w1", "b1" }, 3, "c");
	mb_attr_ints(b, n, "pads", pads, 4);
	mb_node(b, "Relu", "relu", (const char *const[]){ "c" }, 1, "r");
	mb_node(b, "GlobalAveragePool", "gap", (const char *const[]){ "r" }, 1, "g");
	mb_node(b, "Flatten", "flat", (const char *const[]){ "g" }, 1, "f");
	n = mb_node(b, "Gemm", "fc", (const char *const[]){ "f", "gw" }, 2, "y");
	mb_attr_ints(b, n, "transB", (const int64_t[]){ 1 }, 1);
	mb_io(b, "x", xd, 4, "y");
}

/* Reorders of plan p that cross between f32 and int8, by direction. */
static void
count_crossing_reorders(const struct kern_plan *p, unsigned *quant, unsigned *dequant)
{
	*quant = *dequant = 0;
	for (unsigned i = 0; i < p->n_steps; i++) {
		const_dnnl_primitive_desc_t pd;
		dnnl_primitive_kind_t kind;
		bool src8, dst8;

		if (dnnl_primitive_get_primitive_desc(p->steps[i].prim, &pd) != dnnl_success ||
		    dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind) !=
			    dnnl_success || kind != dnnl_reorder)
			continue;
		src8 = kp_is_int8(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
		dst8 = kp_is_int8(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
		*quant += !src8 && dst8;
		*dequant += src8 && !dst8;
	}
}

/*
 * The Flatten between an int8 pool and an int8 Gemm is a view of the int8 bytes: the plan
 * quantizes its input once and never goes back to f32 before the Gemm's f32 output (it used
 * to dequantize the pooled tensor and quantize it again, two reorders per batch and exit).
 */
static void
test_int8_flatten_stays_int8(void)
{
	struct mb b;
	struct int8_pair ip;
	struct tg_tensor x = { .dtype = TG_DT_F32, .ndim = 4, .dims = { 8, C, H, W } };
	unsigned quant = 99, dequant = 99;
	float range, worst;
	size_t differ;

	pool_head_model(&b);
	if (int8_pair_make(&ip, &b, &x, 3, 0.21f) == 0) {
		count_crossing_reorders(ip.pq, &quant, &dequant);
		TH_CHECK_MSG(quant == 1 && dequant == 0,
			     "int8 plan crosses f32/int8 by reorder %u times in, %u times out "
			     "(want 1, 0)", quant, dequant);
		TH_CHECK(int8_pair_run(&ip, 3, 0.21f, &range, &worst, &differ) == 8 * 10);
		TH_CHECK_MSG(range > 0 && worst <= 0.05f * range, "int8 off by %g of range %g",
			     worst, range);
	}
	int8_pair_free(&ip);
	tg_tensor_free(&x);
}

/* ---- a Gemm-only model: x[8,48] -> Gemm(0.5 * x W1^T + 2 * b1) -> Relu -> Gemm(W2) -> y ---- */
enum { GK = 48, GN = 32, GO = 10 };
static float gw1[GN * GK], gb1[GN], gw2[GN * GO];

static void
gemm_model(struct mb *b)
{
	static const int64_t xd[2] = { 8, GK }, w1d[2] = { GN, GK }, b1d[1] = { GN },
			     w2d[2] = { GN, GO };
	Onnx__NodeProto *n;
	Onnx__AttributeProto *a;
	unsigned seed = 11;

	for (size_t i = 0; i < GN * GK; i++) {
		seed = seed * 1103515245 + 12345;
		gw1[i] = ((seed >> 16) % 2001) / 1000.f - 1.f;
	}
	for (size_t i = 0; i < GN * GO; i++) {
		seed = seed * 1103515245 + 12345;
		gw2[i] = ((seed >> 16) % 2001) / 1000.f - 1.f;
	}
	for (int i = 0; i < GN; i++)
		gb1[i] = 0.05f * (float)(i % 7) - 0.1f;
	mb_init(b, 13);
	mb_init_tensor(b, "gw1", w1d, 2, gw1, NULL);
	mb_init_tensor(b, "gb1", b1d, 1, gb1, NULL);
	mb_init_tensor(b, "gw2", w2d, 2, gw2, NULL);
	n = mb_node(b, "Gemm", "g1", (const char *const[]){ "x", "gw1", "gb1" }, 3, "h");
	mb_attr_ints(b, n, "transB", (const int64_t[]){ 1 }, 1);
	a = mb_attr(b, n, "alpha");
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
	a->has_f = 1;
	a->f = 0.5f;
	a = mb_attr(b, n, "beta");
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
	a->has_f = 1;
	a->f = 2.f;
	mb_node(b, "Relu", "relu", (const char *const[]){ "h" }, 1, "r");
	mb_node(b, "Gemm", "g2", (const char *const[]){ "r", "gw2" }, 2, "y");
	mb_io(b, "x", xd, 2, "y");
}

/*
 * In an int8 plan a Gemm with a calibrated input runs as an int8 inner product, as
 * export-qdq writes it for other engines: its output is close to fp32's (a few % of range)
 * but not bit-identical, which it would be if the Gemms still ran in f32.
 */
static void
test_int8_gemm_runs_int8(void)
{
	struct mb b;
	struct int8_pair ip;
	struct tg_tensor x = { .dtype = TG_DT_F32, .ndim = 2, .dims = { 8, GK } };
	float range, worst;
	size_t differ;

	gemm_model(&b);
	if (int8_pair_make(&ip, &b, &x, 5, 0.13f) == 0) {
		TH_CHECK(int8_pair_run(&ip, 5, 0.13f, &range, &worst, &differ) == 8 * GO);
		TH_CHECK_MSG(range > 0 && worst <= 0.05f * range, "int8 off by %g of range %g",
			     worst, range);
		TH_CHECK_MSG(differ > 0,
			     "int8 plan's Gemm outputs are fp32's bit for bit: ran in f32");
	}
	int8_pair_free(&ip);
	tg_tensor_free(&x);
}

static void
test_load_rows_dequantizes(void)
{
	struct mb b;
	struct kern_model *m = NULL;
	struct kern_plan *p = NULL;
	struct kern_plan_spec spec = { .kind = KERN_PLAN_TAIL, .split = 0, .batch = 2 };
	struct tg_tensor in;
	uint8_t q[C * H * W];
	uint16_t h[C * H * W];

	residual_model(&b, false);
	if (mb_load(&b, &m, NULL) < 0 || kern_plan_create(m, &spec, &p, NULL) < 0) {
		TH_CHECK(0);
		goto out;
	}
	for (int i = 0; i < C * H * W; i++) {
		q[i] = (uint8_t)i;
		h[i] = proto_f32_to_f16((float)i * 0.5f);
	}
	TH_CHECK(kern_plan_load_rows(p, 0, 1, 1, TG_DT_U8, q, 0.5f, 10) == 0);
	TH_CHECK(kern_plan_load_rows(p, 0, 0, 1, TG_DT_F16, h, 0, 0) == 0);
	TH_CHECK(kern_plan_load_rows(p, 0, 2, 1, TG_DT_U8, q, 1, 0) == -EINVAL);
	TH_CHECK(kern_plan_load_rows(p, 0, 1, 2, TG_DT_U8, q, 1, 0) == -EINVAL);
	kern_plan_input(p, 0, &in);
	TH_CHECK(((float *)in.data)[C * H * W + 30] == 0.5f * (30 - 10));
	TH_CHECK(((float *)in.data)[7] == 3.5f);
out:
	kern_plan_free(p);
	kern_model_free(m);
}

/* Segments 0->1->3 then the tail from 3 compose to the whole model. */
static void
test_segments_compose_to_the_whole_model(void)
{
	struct mb b;
	struct kern_model *m = NULL;
	struct kern_plan *s1 = NULL, *s2 = NULL, *t3 = NULL, *whole = NULL;
	struct kern_plan_spec sp1 = { .kind = KERN_PLAN_SEGMENT, .split = 0, .split_to = 1, .batch = 2 };
	struct kern_plan_spec sp2 = { .kind = KERN_PLAN_SEGMENT, .split = 1, .split_to = 3, .batch = 2 };
	struct kern_plan_spec st = { .kind = KERN_PLAN_TAIL, .split = 3, .batch = 2 };
	struct kern_plan_spec sw = { .kind = KERN_PLAN_TAIL, .split = 0, .batch = 2 };
	struct kern_plan_spec bad = { .kind = KERN_PLAN_SEGMENT, .split = 2, .split_to = 1, .batch = 2 };
	struct tg_err err = { 0 };
	struct tg_tensor a, o;
	const char *name = NULL;

	residual_model(&b, true);
	if (mb_load(&b, &m, &err) < 0 || kern_plan_create(m, &sp1, &s1, &err) < 0 ||
	    kern_plan_create(m, &sp2, &s2, &err) < 0 || kern_plan_create(m, &st, &t3, &err) < 0 ||
	    kern_plan_create(m, &sw, &whole, &err) < 0) {
		TH_CHECK_MSG(0, "%s", err.msg);
		goto out;
	}
	TH_CHECK(kern_plan_create(m, &bad, &t3, NULL) == -EINVAL);
	kern_plan_input(s1, 0, &a);
	for (size_t i = 0; i < tg_tensor_numel(&a); i++)
		((float *)a.data)[i] = sinf((float)i);
	kern_plan_input(whole, 0, &o);
	memcpy(o.data, a.data, tg_tensor_bytes(&a));
	TH_CHECK(kern_plan_run(s1) == 0 && kern_plan_run(whole) == 0);
	kern_plan_output(s1, 0, &o, &name);
	TH_CHECK(name && strcmp(name, "bn1") == 0);
	kern_plan_input(s2, 0, &a);
	memcpy(a.data, o.data, tg_tensor_bytes(&o));
	TH_CHECK(kern_plan_run(s2) == 0);
	kern_plan_output(s2, 0, &o, &name);
	TH_CHECK(name && strcmp(name, "a") == 0);
	kern_plan_input(t3, 0, &a);
	memcpy(a.data, o.data, tg_tensor_bytes(&o));
	TH_CHECK(kern_plan_run(t3) == 0);
	kern_plan_output(t3, 0, &o, NULL);
	kern_plan_output(whole, 0, &a, NULL);
	TH_CHECK(max_abs_diff(o.data, a.data, tg_tensor_numel(&o)) < 1e-5f);
out:
	kern_plan_free(s1);
	kern_plan_free(s2);
	kern_plan_free(t3);
	kern_plan_free(whole);
	kern_model_free(m);
}

/* kern_stage_run over 7 samples in batches of 3 (two plans: 3 and the remainder 1) gives
 * each sample what the reference gives it; the head stage's split tensor feeds the tail
 * stage; bad feeds are refused with a message. */
static void
test_stage_runs_samples_in_batches(void)
{
	enum { N = 7 };
	struct mb b;
	struct kern_model *m = NULL;
	struct kern_stage whole = { 0 }, head = { 0 };
	struct kern_outs o = { 0 }, h = { 0 };
	struct tg_tensor x = { .dtype = TG_DT_F32, .ndim = 4, .dims = { N, C, H, W } };
	struct tg_tensor bad = { .dtype = TG_DT_F32, .ndim = 2, .dims = { N, 5 } };
	struct tg_err err = { 0 };
	float ref[C * H * W], r1[C * H * W];
	struct kern_plan *p;

	residual_model(&b, true);
	TH_CHECK_MSG(mb_load(&b, &m, &err) == 0, "%s", err.msg);
	if (m == NULL || tg_tensor_alloc(&x) < 0 || tg_tensor_alloc(&bad) < 0)
		goto out;
	for (size_t i = 0; i < tg_tensor_numel(&x); i++)
		((float *)x.data)[i] = sinf((float)i * 0.11f);
	whole = (struct kern_stage){ .m = m, .spec = { .kind = KERN_PLAN_TAIL, .split = 0 } };
	head = (struct kern_stage){ .m = m, .spec = { .kind = KERN_PLAN_HEAD, .split = 2 } };
	TH_CHECK_MSG(kern_stage_run(&whole, 3, &x, &o, &err) == 0, "%s", err.msg);
	TH_CHECK(whole.batch[0] == 3 && whole.batch[1] == 1);
	TH_CHECK(kern_stage_run(&head, 3, &x, &h, &err) == 0);
	TH_CHECK(o.n == 1 && o.t[0].dims[0] == N && h.n >= 1 && h.t[0].dims[0] == N);
	for (unsigned s = 0; o.n == 1 && h.n >= 1 && s < N; s++) {
		ref_residual((float *)x.data + s * C * H * W, ref, true, r1);
		TH_CHECK_MSG(max_abs_diff(ref, (float *)o.t[0].data + s * C * H * W, C * H * W) <
			     1e-4f, "sample %u", s);
		TH_CHECK_MSG(max_abs_diff(r1, (float *)h.t[0].data + s * C * H * W, C * H * W) <
			     1e-4f, "head, sample %u", s);
	}
	TH_CHECK(strcmp(o.name[0], "y") == 0);
	/* Wrong sample size, and batch 0, are refused with a message. */
	err.msg[0] = '\0';
	TH_CHECK(kern_stage_plan(&whole, 3, &p, &err) == 0);
	TH_CHECK(kern_plan_feed(p, &bad, 0, 3, &err) == -EINVAL && strstr(err.msg, "values"));
	TH_CHECK(kern_plan_feed(p, &x, 5, 3, &err) == -EINVAL);	/* past the last sample */
	TH_CHECK(kern_stage_plan(&whole, 0, &p, &err) == -EINVAL);
out:
	kern_outs_free(&o);
	kern_outs_free(&h);
	kern_stage_free(&whole);
	kern_stage_free(&head);
	tg_tensor_free(&x);
	tg_tensor_free(&bad);
	kern_model_free(m);
}

int
main(void)
{
	residual_params();
	kern_set_threads(1);
	TH_RUN(test_bn_is_folded_and_splits_found);
	TH_RUN(test_residual_matches_reference_with_bn);
	TH_RUN(test_residual_matches_reference_without_bn);
	TH_RUN(test_unsupported_op_names_node_and_op);
	TH_RUN(test_unsupported_attribute_names_it);
	TH_RUN(test_cycle_is_refused);
	TH_RUN(test_missing_initializer_is_refused);
	TH_RUN(test_hostile_initializer_dims_are_refused);
	TH_RUN(test_shape_mismatch_is_refused);
	TH_RUN(test_truncated_files_never_load);
	TH_RUN(test_file_over_the_limit_is_refused);
	TH_RUN(test_tail_buckets_pick_the_smallest_plan_that_fits);
	TH_RUN(test_int8_tail_tracks_fp32);
	TH_RUN(test_int8_gemm_runs_int8);
	TH_RUN(test_int8_flatten_stays_int8);
	TH_RUN(test_load_rows_dequantizes);
	TH_RUN(test_segments_compose_to_the_whole_model);
	TH_RUN(test_stage_runs_samples_in_batches);
	TH_DONE();
}
