/*
 * Quantization of feature tensors: devices quantize before sending, the gateway dequantizes
 * on arrival. real = scale * (q - zero_point); elements little endian on the wire whatever
 * the host, read and written byte by byte so any alignment works (a chunk's place in an
 * mbuf or a slot is not aligned to its element size).
 */
#include "proto/proto_int.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>

_Static_assert((int)PROTO_DT_F32 == (int)TG_DT_F32 && (int)PROTO_DT_F16 == (int)TG_DT_F16 &&
	       (int)PROTO_DT_S8 == (int)TG_DT_S8 && (int)PROTO_DT_U8 == (int)TG_DT_U8,
	       "wire dtypes are tg_dtype values, so kern_plan_load_rows takes them as they come");

static void
proto_q_range(unsigned dtype, int32_t *lo, int32_t *hi)
{
	*lo = dtype == PROTO_DT_S8 ? INT8_MIN : 0;
	*hi = dtype == PROTO_DT_S8 ? INT8_MAX : UINT8_MAX;
}

int
proto_quant_params(unsigned dtype, const float *x, size_t n, float *scale, int32_t *zero_point)
{
	float lo = 0, hi = 0, m;

	switch (dtype) {
	case PROTO_DT_F32:
	case PROTO_DT_F16:
		*scale = 1.0f;
		*zero_point = 0;
		return 0;
	case PROTO_DT_S8:
	case PROTO_DT_U8:
		break;
	default:
		return -EINVAL;
	}
	/* The range always holds 0, so real 0 (ReLU's most common output) is exact. */
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(x[i]))
			continue;
		lo = x[i] < lo ? x[i] : lo;
		hi = x[i] > hi ? x[i] : hi;
	}
	if (dtype == PROTO_DT_S8) {
		m = -lo > hi ? -lo : hi;
		*scale = m > 0 ? m / 127.0f : 1.0f;
		*zero_point = 0;
	} else {
		*scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
		*zero_point = (int32_t)nearbyintf(-lo / *scale);
		if (*zero_point > UINT8_MAX)
			*zero_point = UINT8_MAX;
	}
	/* A range so narrow its scale underflows: any positive scale maps it to zero_point. */
	if (!(*scale > 0) || !isfinite(*scale))
		*scale = 1.0f;
	return 0;
}

static int32_t
proto_q_one(float x, float scale, int32_t zp, int32_t lo, int32_t hi)
{
	float r;
	double v;

	if (isnan(x))
		return zp;
	r = nearbyintf(x / scale);	/* ties to even in the default rounding mode */
	v = (double)r + zp;		/* clamp in double: converting an out-of-range float is UB */
	if (v < lo)
		return lo;
	if (v > hi)
		return hi;
	return (int32_t)v;
}

int
proto_quantize(unsigned dtype, const float *x, size_t n, float scale, int32_t zero_point,
	       void *dst)
{
	uint8_t *d = dst;
	int32_t lo, hi;

	if (dtype == PROTO_DT_RAW || !proto_quant_ok(dtype, scale, zero_point))
		return -EINVAL;
	switch (dtype) {
	case PROTO_DT_F32:
		for (size_t i = 0; i < n; i++) {
			uint32_t u;

			memcpy(&u, &x[i], 4);
			d[4 * i] = (uint8_t)u;
			d[4 * i + 1] = (uint8_t)(u >> 8);
			d[4 * i + 2] = (uint8_t)(u >> 16);
			d[4 * i + 3] = (uint8_t)(u >> 24);
		}
		return 0;
	case PROTO_DT_F16:
		for (size_t i = 0; i < n; i++) {
			uint16_t h = tg_f32_to_f16(x[i]);

			d[2 * i] = (uint8_t)h;
			d[2 * i + 1] = (uint8_t)(h >> 8);
		}
		return 0;
	default:
		proto_q_range(dtype, &lo, &hi);
		for (size_t i = 0; i < n; i++)
			d[i] = (uint8_t)proto_q_one(x[i], scale, zero_point, lo, hi);
		return 0;
	}
}

int
proto_dequantize(unsigned dtype, const void *src, size_t n, float scale, int32_t zero_point,
		 float *dst)
{
	const uint8_t *s = src;

	if (dtype == PROTO_DT_RAW || !proto_quant_ok(dtype, scale, zero_point))
		return -EINVAL;
	switch (dtype) {
	case PROTO_DT_F32:
		for (size_t i = 0; i < n; i++) {
			uint32_t u = (uint32_t)s[4 * i] | (uint32_t)s[4 * i + 1] << 8 |
				     (uint32_t)s[4 * i + 2] << 16 | (uint32_t)s[4 * i + 3] << 24;

			memcpy(&dst[i], &u, 4);
		}
		return 0;
	case PROTO_DT_F16:
		for (size_t i = 0; i < n; i++)
			dst[i] = tg_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
		return 0;
	case PROTO_DT_S8:
		for (size_t i = 0; i < n; i++)
			dst[i] = scale * (float)((int8_t)s[i] - zero_point);
		return 0;
	default:
		for (size_t i = 0; i < n; i++)
			dst[i] = scale * (float)(s[i] - zero_point);
		return 0;
	}
}
