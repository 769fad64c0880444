/* SPDX-License-Identifier: Apache-2.0 */
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

/* IEEE 754 binary16: the wire's F16 dtype, and ONNX's float16 initializers (kernels/). */
float
proto_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
	float f;

	if (exp == 0) {
		if (man == 0) {
			u = sign;
		} else {	/* subnormal: normalise */
			exp = 127 - 15 + 1;
			while (!(man & 0x400)) {
				man <<= 1;
				exp--;
			}
			man &= 0x3ff;
			u = sign | exp << 23 | man << 13;
		}
	} else if (exp == 31) {
		u = sign | 0x7f800000u | man << 13;
	} else {
		u = sign | (exp + 127 - 15) << 23 | man << 13;
	}
	memcpy(&f, &u, 4);
	return f;
}

uint16_t
proto_f32_to_f16(float f)
{
	uint32_t u, sign, man;
	int32_t exp;

	memcpy(&u, &f, 4);
	sign = (u >> 16) & 0x8000;
	exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
	man = u & 0x7fffff;
	if (((u >> 23) & 0xff) == 0xff)
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	if (exp >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (exp <= 0) {
		if (exp < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - exp);
		uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);

		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t half = sign | (uint32_t)exp << 10 | man >> 13, rem = man & 0x1fff;

	if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
		half++;	/* may carry into the exponent, which is the right rounding */
	return (uint16_t)half;
}

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
			uint16_t h = proto_f32_to_f16(x[i]);

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
			dst[i] = proto_f16_to_f32((uint16_t)(s[2 * i] | s[2 * i + 1] << 8));
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
