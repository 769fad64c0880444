/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every error path of plan creation, walked as SQLite's malloc tests walk theirs: the nth
 * allocation or oneDNN call of kern_plan_create() fails (kern_fault_arm), n = 1, 2, ... until
 * a build meets no fault. Each failed build must return an error with a message and leave
 * *out unset; ASan/LSan (make test SAN=1) see that nothing leaks and nothing is touched after
 * it is freed. The build that meets no fault must run and give what an undisturbed plan
 * gives. Walked: the shipped model (tail, head, segment, int8 tail) and fixtures that
 * together hold every op family (conv and transposed conv, pools, activations, arithmetic,
 * reductions, normalisations, resize, gemm, layout and shape ops, fused residual adds).
 */
#include "kernels/kernels.h"
#include "tests/harness.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fill input 0 with a fixed pattern, run, and copy output 0 out (caller frees). */
static float *
run_plan(struct kern_plan *p, size_t *n_out)
{
	struct tg_tensor in, out;
	float *copy;

	if (kern_plan_input(p, 0, &in) < 0)
		return NULL;
	for (size_t i = 0; i < tg_tensor_numel(&in); i++)
		((float *)in.data)[i] = (float)((i * 7919) % 257) / 256.f - 0.5f;
	if (kern_plan_run(p) < 0 || kern_plan_output(p, 0, &out, NULL) < 0)
		return NULL;
	*n_out = tg_tensor_numel(&out);
	copy = malloc(*n_out * sizeof(float));
	if (copy != NULL)
		memcpy(copy, out.data, *n_out * sizeof(float));
	return copy;
}

/*
 * Walk every fault of one plan's creation. @return how many builds failed as they should
 * (0 with a check failed when the walk itself went wrong).
 */
static unsigned long
walk(const char *what, const struct kern_model *m, const struct kern_plan_spec *spec)
{
	struct kern_plan *ref = NULL, *p;
	struct tg_err err = { 0 };
	float *want = NULL, *got = NULL;
	size_t n_want = 0, n_got = 0;
	unsigned long n, faults = 0;

	if (kern_plan_create(m, spec, &ref, &err) < 0) {
		TH_CHECK_MSG(0, "%s: undisturbed build: %s", what, err.msg);
		return 0;
	}
	want = run_plan(ref, &n_want);
	kern_plan_free(ref);
	TH_CHECK_MSG(want != NULL, "%s: undisturbed plan does not run", what);
	for (n = 1; n < 1000000; n++) {
		int rc;

		p = (struct kern_plan *)&err;	/* a sentinel: a failed build must not set it */
		memset(&err, 0, sizeof(err));
		kern_fault_arm(n);
		rc = kern_plan_create(m, spec, &p, &err);
		unsigned long calls = kern_fault_count();

		kern_fault_arm(0);
		if (calls < n) {	/* no fault met: the walk is over */
			TH_CHECK_MSG(rc == 0, "%s: build without a fault failed: %s", what, err.msg);
			if (rc == 0) {
				got = run_plan(p, &n_got);
				kern_plan_free(p);
			}
			break;
		}
		if (rc == 0) {	/* a failure that was swallowed: the plan may be wrong */
			TH_CHECK_MSG(rc < 0, "%s: fault %lu of %lu was ignored", what, n, calls);
			kern_plan_free(p);
			continue;
		}
		faults++;
		TH_CHECK_MSG(p == (struct kern_plan *)&err, "%s: fault %lu: *out set on failure",
			     what, n);
		TH_CHECK_MSG(err.msg[0] != '\0' && err.code == rc, "%s: fault %lu: rc %d, no message",
			     what, n, rc);
	}
	TH_CHECK_MSG(faults > 10, "%s: only %lu faults walked (is the hook wired?)", what, faults);
	TH_CHECK_MSG(got != NULL && n_got == n_want, "%s: the last build does not run", what);
	for (size_t i = 0; got && want && n_got == n_want && i < n_got; i++)
		if (!(fabsf(got[i] - want[i]) <= 1e-5f + 1e-5f * fabsf(want[i]))) {
			TH_CHECK_MSG(0, "%s: output %zu: %g, undisturbed %g", what, i, got[i],
				     want[i]);
			break;
		}
	fprintf(stderr, "  %s: %lu faults, each a clean error\n", what, faults);
	free(want);
	free(got);
	return faults;
}

static struct kern_model *
load(const char *path)
{
	struct kern_model *m = NULL;
	struct tg_err err = { 0 };

	if (kern_model_load(path, NULL, &m, &err) < 0)
		TH_CHECK_MSG(0, "%s: %s", path, err.msg);
	return m;
}

/* The shipped model: the tail from the input, a head, a segment, and an int8 tail. */
static void
test_fault_walk_fmnist_resnet(void)
{
	struct kern_model *m = load("models/fmnist-resnet/model.onnx");
	struct kern_calib *cal = NULL;
	struct kern_model_info info;
	struct tg_err err = { 0 };

	if (m == NULL)
		return;
	kern_model_get_info(m, &info);
	TH_CHECK(info.n_splits >= 4);
	if (info.n_splits >= 4) {
		walk("fmnist tail 0", m, &(struct kern_plan_spec){ .kind = KERN_PLAN_TAIL,
								    .split = 0, .batch = 2 });
		walk("fmnist head 2", m, &(struct kern_plan_spec){ .kind = KERN_PLAN_HEAD,
								    .split = 2, .batch = 1 });
		walk("fmnist segment 1-3", m, &(struct kern_plan_spec){ .kind = KERN_PLAN_SEGMENT,
									 .split = 1, .split_to = 3,
									 .batch = 1 });
		if (kern_calib_load(m, "models/fmnist-resnet/model.calib", &cal, &err) < 0)
			TH_CHECK_MSG(0, "calibration: %s", err.msg);
		else
			walk("fmnist int8 tail 1", m, &(struct kern_plan_spec){
				.kind = KERN_PLAN_TAIL, .precision = KERN_PREC_INT8, .calib = cal,
				.split = 1, .batch = 2 });
	}
	kern_calib_free(cal);
	kern_model_free(m);
}

/* Fixtures whose ops together cover every family, each run whole (tail from the input). */
static void
test_fault_walk_fixtures(void)
{
	static const char *const names[] = {
		"opsmix",		/* activations, arithmetic, ReduceMean, PRelu, LogSoftmax */
		"decoder",		/* ConvTranspose, Concat, Resize, BatchNormalization */
		"shuffle",		/* Shape/Gather/Cast arithmetic, Reshape, Slice, Transpose */
		"layernorm_op17",	/* LayerNormalization, Identity */
		"mobilenet_op17",	/* HardSwish, HardSigmoid, Clip, Sigmoid, Softmax */
		"avgpool_pad",		/* Pad, AveragePool */
		"resnet_bn",		/* MaxPool, residual Adds fused into Conv */
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[256];
		struct kern_model *m;

		snprintf(path, sizeof(path), "tests/fixtures/%s/model.onnx", names[i]);
		m = load(path);
		if (m == NULL)
			continue;
		walk(names[i], m, &(struct kern_plan_spec){ .kind = KERN_PLAN_TAIL, .split = 0,
							     .batch = 2 });
		kern_model_free(m);
	}
}

/* Disarmed, the hook counts nothing: plan building pays no more than the check. */
static void
test_fault_disarmed_counts_nothing(void)
{
	struct kern_model *m = load("tests/fixtures/opsmix/model.onnx");
	struct kern_plan *p = NULL;
	struct tg_err err = { 0 };

	if (m == NULL)
		return;
	kern_fault_arm(0);
	TH_CHECK(kern_plan_create(m, &(struct kern_plan_spec){ .kind = KERN_PLAN_TAIL,
							       .batch = 1 }, &p, &err) == 0);
	TH_CHECK(kern_fault_count() == 0);
	kern_plan_free(p);
	kern_model_free(m);
}

int
main(void)
{
	TH_RUN(test_fault_disarmed_counts_nothing);
	TH_RUN(test_fault_walk_fmnist_resnet);
	TH_RUN(test_fault_walk_fixtures);
	TH_DONE();
}
