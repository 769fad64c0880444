/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Calibration for int8 tails: the range of every tensor over representative inputs, from an
 * fp32 run of the whole model with every tensor exposed. Scales are derived when a plan is
 * built (u8 for tensors never negative, s8 otherwise), so one calibration serves any split.
 */
#include "kernels/kern_int.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
kern_calib_create(const struct kern_model *m, struct kern_calib **out, struct tg_err *err)
{
	struct kern_calib *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	c->m = m;
	c->lo = malloc(m->n_values * sizeof(float));
	c->hi = malloc(m->n_values * sizeof(float));
	if (c->lo == NULL || c->hi == NULL) {
		kern_calib_free(c);
		return tg_err_set(err, -ENOMEM, "out of memory");
	}
	for (unsigned v = 0; v < m->n_values; v++) {
		c->lo[v] = FLT_MAX;
		c->hi[v] = -FLT_MAX;
	}
	*out = c;
	return 0;
}

void
kern_calib_free(struct kern_calib *c)
{
	if (c == NULL)
		return;
	free(c->lo);
	free(c->hi);
	free(c);
}

bool
kern_calib_range(const struct kern_calib *c, int v, float *lo, float *hi)
{
	if (c == NULL || v < 0 || (unsigned)v >= c->m->n_values || c->lo[v] > c->hi[v])
		return false;
	*lo = c->lo[v];
	*hi = c->hi[v];
	return true;
}

unsigned
kern_calib_count(const struct kern_calib *c)
{
	unsigned n = 0;

	for (unsigned v = 0; v < c->m->n_values; v++)
		n += c->lo[v] <= c->hi[v];
	return n;
}

static void
kern_calib_widen(struct kern_calib *c, int v, const float *x, size_t n)
{
	float lo = c->lo[v], hi = c->hi[v];

	for (size_t i = 0; i < n; i++) {
		lo = x[i] < lo ? x[i] : lo;
		hi = x[i] > hi ? x[i] : hi;
	}
	c->lo[v] = lo;
	c->hi[v] = hi;
}

int
kern_calib_observe(struct kern_calib *c, const struct tg_tensor *input, struct tg_err *err)
{
	const struct kern_model *m = c->m;
	struct kern_plan_spec spec = { .kind = KERN_PLAN_TAIL, .split = 0 };
	struct kern_plan *p = NULL;
	struct tg_tensor in, out;
	int rc;

	if (m->n_splits == 0 || input->dtype != TG_DT_F32 || input->ndim < 1 || input->dims[0] < 1)
		return tg_err_set(err, -EINVAL, "calibration needs a single-input model and f32 samples");
	spec.batch = (unsigned)input->dims[0];
	rc = kern_plan_create_all(m, &spec, &p, err);
	if (rc < 0)
		return rc;
	kern_plan_input(p, 0, &in);
	if (tg_tensor_bytes(&in) != tg_tensor_bytes(input)) {
		kern_plan_free(p);
		return tg_err_set(err, -EINVAL, "calibration input has the wrong shape");
	}
	memcpy(in.data, input->data, tg_tensor_bytes(&in));
	kern_calib_widen(c, m->inputs[0], in.data, tg_tensor_numel(&in));
	rc = kern_plan_run(p);
	for (unsigned i = 0; rc == 0 && i < kern_plan_n_outputs(p); i++) {
		kern_plan_output(p, i, &out, NULL);
		kern_calib_widen(c, kern_plan_output_value(p, i), out.data, tg_tensor_numel(&out));
	}
	if (rc < 0)
		tg_err_set(err, rc, "calibration run failed");
	c->n_obs++;
	kern_plan_free(p);
	return rc;
}

int
kern_calib_save(const struct kern_calib *c, const char *path, struct tg_err *err)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return tg_err_set(err, -errno, "%s: %s", path, strerror(errno));
	fprintf(f, "tailgate-calib 1\n");
	for (unsigned v = 0; v < c->m->n_values; v++)
		if (c->lo[v] <= c->hi[v])
			fprintf(f, "%s %.9g %.9g\n", c->m->values[v].name, c->lo[v], c->hi[v]);
	if (fclose(f) != 0)
		return tg_err_set(err, -EIO, "%s: write failed", path);
	return 0;
}

int
kern_calib_load(const struct kern_model *m, const char *path, struct kern_calib **out,
		struct tg_err *err)
{
	struct kern_calib *c = NULL;
	uint8_t *buf = NULL;
	size_t len;
	char *line, *save = NULL;
	unsigned lineno = 0;
	int rc;

	rc = tg_file_read(path, 64u << 20, &buf, &len, err);
	if (rc < 0)
		return rc;
	rc = kern_calib_create(m, &c, err);
	if (rc < 0)
		goto out;
	char *text = realloc(buf, len + 1);

	if (text == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	buf = (uint8_t *)text;
	text[len] = '\0';
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[1024];
		float lo, hi;
		int v = -1;

		lineno++;
		if (lineno == 1) {
			if (strcmp(line, "tailgate-calib 1") != 0) {
				rc = tg_err_set(err, -EINVAL, "%s:1: not a tailgate calibration", path);
				goto out;
			}
			continue;
		}
		if (sscanf(line, "%1023s %g %g", name, &lo, &hi) != 3 || !(lo <= hi) ||
		    !isfinite(lo) || !isfinite(hi)) {
			rc = tg_err_set(err, -EINVAL, "%s:%u: expected \"<tensor> <min> <max>\"", path,
					lineno);
			goto out;
		}
		for (unsigned k = 0; k < m->n_values; k++)
			if (strcmp(m->values[k].name, name) == 0) {
				v = (int)k;
				break;
			}
		if (v < 0) {
			rc = tg_err_set(err, -EINVAL, "%s:%u: no tensor \"%s\" in the model", path,
					lineno, name);
			goto out;
		}
		c->lo[v] = lo;
		c->hi[v] = hi;
	}
	if (lineno == 0) {
		rc = tg_err_set(err, -EINVAL, "%s: empty", path);
		goto out;
	}
	*out = c;
	c = NULL;
out:
	kern_calib_free(c);
	free(buf);
	return rc;
}
