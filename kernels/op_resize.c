/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Resize (opset 10..18) and Upsample (7, 9): oneDNN's resampling, nearest for whole upscale
 * factors and linear upscaling with half-pixel centres; other modes are refused where ONNX
 * and oneDNN would disagree (kern_resize_geometry).
 */
#include "kernels/kp_int.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* The modes; what is not computed exactly is refused when shapes are known. */
static int
kern_resize_attrs(struct kern_attrs *a)
{
	static const char *const modes[] = { "nearest", "linear", "cubic", NULL };
	static const char *const coords[] = { "half_pixel", "pytorch_half_pixel", "align_corners",
					      "asymmetric", "tf_crop_and_resize",
					      "half_pixel_symmetric", NULL };
	static const char *const nearest[] = { "round_prefer_floor", "round_prefer_ceil", "floor",
					       "ceil", NULL };
	struct kern_node *n = a->n;
	bool legacy = n->op == KOP_UPSAMPLE || a->m->opset < 11;
	int ns;

	/* Upsample and Resize-10 say "bilinear"/"linear" and map coordinates asymmetrically. */
	if (kern_attr_enum(a, "mode", (const char *const[]){ "bilinear", NULL }, -1) == 0)
		n->a.resize.mode = KERN_RS_LINEAR;
	else
		n->a.resize.mode = kern_attr_enum(a, "mode", modes, KERN_RS_NEAREST);
	n->a.resize.coord = legacy ? KERN_RS_ASYMMETRIC :
		kern_attr_enum(a, "coordinate_transformation_mode", coords, KERN_RS_HALF_PIXEL);
	n->a.resize.nearest = legacy ? KERN_RS_FLOOR :
		kern_attr_enum(a, "nearest_mode", nearest, KERN_RS_ROUND_PREFER_FLOOR);
	if (n->a.resize.mode < 0 || n->a.resize.coord < 0 || n->a.resize.nearest < 0)
		return kern_attr_bad(a, "mode/coordinate_transformation_mode/nearest_mode",
				     "value not supported");
	if (kern_attr_int(a, "antialias", 0) != 0)
		return kern_attr_bad(a, "antialias", "not supported");
	if (kern_attr_has(a, "axes"))
		return kern_attr_bad(a, "axes", "not supported");
	if (kern_attr_enum(a, "keep_aspect_ratio_policy", (const char *const[]){ "stretch", NULL },
			   0) != 0)
		return kern_attr_bad(a, "keep_aspect_ratio_policy", "only stretch is supported");
	ns = kern_attr_floats(a, "scales", n->a.resize.scales, TG_MAX_DIMS);
	if (ns < 0)
		return ns;
	n->a.resize.n_scales = ns;
	return 0;
}

/* Where the scales and sizes are: Upsample-7 an attribute, Upsample-9 and Resize-10 the
 * second input, Resize-11.. the third (scales) or the fourth (sizes). @return -EINVAL or 0
 * with out_dims and scales for the nd dims of d */
static int
kern_resize_dims(const struct kern_model *m, const struct kern_shapes *s,
		 const struct kern_node *n, int64_t *out_dims, float *scales, const char **why)
{
	int x = n->in[0], nd = s->ndim[x], sv = -1, zv = -1, ns = 0;
	int64_t sizes[TG_MAX_DIMS];
	const int64_t *d = s->dims[x];

	if (n->op == KOP_UPSAMPLE && n->a.resize.n_scales) {
		ns = n->a.resize.n_scales;
		memcpy(scales, n->a.resize.scales, (size_t)ns * sizeof(float));
	} else if (n->op == KOP_UPSAMPLE || m->opset < 11) {
		sv = n->in[1];
	} else {
		sv = n->in[2];
		zv = n->in[3];
	}
	if (sv >= 0 && (ns = kern_static_floats(s, sv, scales, TG_MAX_DIMS)) < 0) {
		*why = "scales must be constants";
		return -EINVAL;
	}
	if (ns == 0 && zv >= 0) {
		if (kern_static_ints(s, zv, sizes, TG_MAX_DIMS) != nd) {
			*why = "sizes must be constants, one per dim";
			return -EINVAL;
		}
		for (int i = 0; i < nd; i++) {
			out_dims[i] = sizes[i];
			scales[i] = d[i] > 0 ? (float)sizes[i] / (float)d[i] : 0.f;
		}
	} else if (ns == nd) {
		for (int i = 0; i < nd; i++)
			out_dims[i] = (int64_t)floor((double)d[i] * scales[i]);
	} else {
		*why = "scales or sizes must give one value per dim";
		return -EINVAL;
	}
	return 0;
}

int
kern_resize_geometry(const struct kern_model *m, const struct kern_shapes *s,
		     const struct kern_node *n, int64_t *out_dims, float *scales, const char **why)
{
	int x = n->in[0], nd = s->ndim[x];
	const int64_t *d = s->dims[x];
	bool half = n->a.resize.coord == KERN_RS_HALF_PIXEL ||
		    n->a.resize.coord == KERN_RS_PYTORCH_HALF_PIXEL;
	bool rounds = n->a.resize.nearest == KERN_RS_ROUND_PREFER_FLOOR ||
		      n->a.resize.nearest == KERN_RS_ROUND_PREFER_CEIL;

	if (kern_resize_dims(m, s, n, out_dims, scales, why) < 0)
		return -EINVAL;
	if (nd < 3 || nd > 5 || out_dims[0] != d[0] || out_dims[1] != d[1]) {
		*why = "only the 1 to 3 spatial dims may be resized";
		return -EINVAL;
	}
	for (int i = 2; i < nd; i++) {
		if (d[i] < 1 || out_dims[i] < 1 || out_dims[i] > (1 << 24) || !(scales[i] > 0.f)) {
			*why = "output size out of range";
			return -EINVAL;
		}
		/* Nearest: for a whole upscale factor k ONNX picks floor(dst / k), as oneDNN
		 * does, with half-pixel centres and rounding to nearest (never exactly at .5), or
		 * with asymmetric coordinates and floor. */
		if (n->a.resize.mode == KERN_RS_NEAREST &&
		    (out_dims[i] % d[i] != 0 || scales[i] != (float)(out_dims[i] / d[i]) ||
		     !((half && rounds) || (n->a.resize.coord == KERN_RS_ASYMMETRIC &&
					    n->a.resize.nearest == KERN_RS_FLOOR)))) {
			*why = "nearest is supported for whole upscale factors with half_pixel "
			       "coordinates rounding to nearest, or asymmetric ones and floor";
			return -EINVAL;
		}
		/* Linear: oneDNN's half-pixel interpolation, upscaling only (downscaling differs). */
		if (n->a.resize.mode == KERN_RS_LINEAR &&
		    (!half || out_dims[i] < d[i] || scales[i] < 1.f)) {
			*why = "linear is supported for upscaling with half_pixel or "
			       "pytorch_half_pixel coordinates only";
			return -EINVAL;
		}
	}
	if (n->a.resize.mode == KERN_RS_CUBIC) {
		*why = "cubic interpolation is not supported";
		return -EINVAL;
	}
	return 0;
}

static int
kern_resize_infer(const struct kern_model *m, struct kern_shapes *s, const struct kern_node *n,
		  int *nd, int64_t *d, struct tg_err *err)
{
	float sc[TG_MAX_DIMS];
	const char *why = "";

	(void)nd;
	if (kern_resize_geometry(m, s, n, d, sc, &why) < 0)
		return kern_bad(err, n, "%s", why);
	return 0;
}

/* oneDNN's resampling with ONNX's own scales (see kern_resize_geometry for which modes
 * compute exactly what ONNX says). */
static int
kp_build_resize(struct kern_plan *p, const struct kern_node *n, const struct kp_chain *c)
{
	const struct kern_shapes *s = &p->sh;
	int x = n->in[0], y = n->out[0], nd = s->ndim[x];
	int64_t od[TG_MAX_DIMS];
	float sc[TG_MAX_DIMS];
	const char *why = "";
	dnnl_memory_desc_t dst_md;
	dnnl_resampling_desc_t rd;
	struct kp_prim pr = { 0 };
	dnnl_memory_t src;
	int rc;

	(void)c;
	if (kern_resize_geometry(p->m, s, n, od, sc, &why) < 0)
		return tg_err_set(p->err, -EINVAL, "node \"%s\" (%s): %s", n->name,
				  kern_op_names[n->op], why);
	rc = kp_get_src(p, x, &src, n);
	if (rc < 0)
		return rc;
	kp_any_md(&dst_md, nd, s->dims[y]);
	rc = KP_CHK(p, dnnl_resampling_forward_desc_init(&rd, dnnl_forward_inference,
			n->a.resize.mode == KERN_RS_LINEAR ? dnnl_resampling_linear :
							     dnnl_resampling_nearest,
			sc + 2, kp_md(src), &dst_md), n, "resampling");
	rc = kp_prim_desc(p, &pr, rc, &rd, n, "resampling pd");
	kp_arg(&pr, DNNL_ARG_SRC, src);
	return kp_prim_end(p, &pr, rc, y, n);
}

#define KERN_RESIZE_KNOWN                                                                   \
	(const char *const[]){ "mode", "coordinate_transformation_mode", "nearest_mode",       \
			       "cubic_coeff_a", "exclude_outside", "extrapolation_value",      \
			       "antialias", "axes", "keep_aspect_ratio_policy", "scales", NULL }

const struct kern_op_def kern_op_resize = {
	.known = KERN_RESIZE_KNOWN,
	.attrs = kern_resize_attrs,
	.infer = kern_resize_infer,
	.build = kp_build_resize,
};

const struct kern_op_def kern_op_upsample = {
	.known = KERN_RESIZE_KNOWN,
	.attrs = kern_resize_attrs,
	.infer = kern_resize_infer,
	.build = kp_build_resize,
};
