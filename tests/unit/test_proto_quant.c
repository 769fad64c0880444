/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto: quantization round trips within half a step, the rounding and clamping rules of
 * docs/protocol.md, little-endian elements at any alignment; CRC32C known vectors, and its
 * hardware path (SSE4.2) equal to the table one on random buffers.
 */
#include "tests/harness.h"
#include "proto/proto_int.h"

#include <errno.h>
#include <math.h>

static uint32_t rng = 777;

static float
rndf(float lo, float hi)
{
	rng = rng * 1664525u + 1013904223u;
	return lo + (hi - lo) * (float)(rng >> 8) / (float)(1u << 24);
}

static void
test_u8_round_trip_within_half_step(void)
{
	static float x[5000], y[5000];
	static uint8_t q[5000];
	float scale, worst = 0;
	int32_t zp;

	for (unsigned i = 0; i < 5000; i++)
		x[i] = i % 3 ? rndf(0, 6) : 0;	/* post-ReLU */
	TH_CHECK(proto_quant_params(PROTO_DT_U8, x, 5000, &scale, &zp) == 0);
	TH_CHECK(zp == 0 && fabsf(scale - 6.0f / 255) < 1e-3f);
	TH_CHECK(proto_quantize(PROTO_DT_U8, x, 5000, scale, zp, q) == 0);
	TH_CHECK(proto_dequantize(PROTO_DT_U8, q, 5000, scale, zp, y) == 0);
	for (unsigned i = 0; i < 5000; i++)
		worst = fmaxf(worst, fabsf(x[i] - y[i]));
	TH_CHECK_MSG(worst <= scale * 0.5f * 1.001f, "worst %g, scale %g", worst, scale);
	TH_CHECK(y[0] == 0);	/* real 0 is exact */
}

static void
test_u8_asymmetric_range_uses_zero_point(void)
{
	const float x[4] = { -1.0f, 0.0f, 2.0f, 3.0f };
	float scale, y[4];
	uint8_t q[4];
	int32_t zp;

	TH_CHECK(proto_quant_params(PROTO_DT_U8, x, 4, &scale, &zp) == 0);
	TH_CHECK(fabsf(scale - 4.0f / 255) < 1e-6f && zp == 64);	/* round(1 / (4/255)) */
	TH_CHECK(proto_quantize(PROTO_DT_U8, x, 4, scale, zp, q) == 0);
	TH_CHECK(q[0] == 0 && q[1] == 64 && q[3] == 255);
	TH_CHECK(proto_dequantize(PROTO_DT_U8, q, 4, scale, zp, y) == 0);
	for (unsigned i = 0; i < 4; i++)
		TH_CHECK(fabsf(x[i] - y[i]) <= scale * 0.5f + 1e-6f);
}

static void
test_s8_round_trip_symmetric(void)
{
	static float x[3000], y[3000];
	static int8_t q[3000];
	float scale, worst = 0;
	int32_t zp;

	for (unsigned i = 0; i < 3000; i++)
		x[i] = rndf(-2.5f, 2.0f);
	x[7] = -2.54f;
	TH_CHECK(proto_quant_params(PROTO_DT_S8, x, 3000, &scale, &zp) == 0);
	TH_CHECK(zp == 0 && fabsf(scale - 2.54f / 127) < 1e-6f);
	TH_CHECK(proto_quantize(PROTO_DT_S8, x, 3000, scale, zp, q) == 0);
	TH_CHECK(q[7] == -127);
	TH_CHECK(proto_dequantize(PROTO_DT_S8, q, 3000, scale, zp, y) == 0);
	for (unsigned i = 0; i < 3000; i++)
		worst = fmaxf(worst, fabsf(x[i] - y[i]));
	TH_CHECK_MSG(worst <= scale * 0.5f * 1.001f, "worst %g, scale %g", worst, scale);
}

static void
test_rounding_is_half_even_and_clamps(void)
{
	const float x[] = { 2.5f, 3.5f, -2.5f, 1000.0f, -1000.0f, INFINITY, -INFINITY, NAN, 0.49f };
	int8_t s[9];
	uint8_t u[9];

	TH_CHECK(proto_quantize(PROTO_DT_S8, x, 9, 1.0f, 0, s) == 0);
	TH_CHECK(s[0] == 2 && s[1] == 4 && s[2] == -2);
	TH_CHECK(s[3] == 127 && s[4] == -128 && s[5] == 127 && s[6] == -128);
	TH_CHECK(s[7] == 0 && s[8] == 0);	/* NaN -> zero point */
	TH_CHECK(proto_quantize(PROTO_DT_U8, x, 9, 1.0f, 10, u) == 0);
	TH_CHECK(u[0] == 12 && u[2] == 8 && u[3] == 255 && u[4] == 0 && u[7] == 10);
}

static void
test_f16_and_f32_little_endian_any_alignment(void)
{
	const float x[3] = { 1.0f, -2.0f, 0.333333f };
	uint8_t b[1 + 12];
	float y[3];

	TH_CHECK(proto_quantize(PROTO_DT_F32, x, 3, 1, 0, b + 1) == 0);	/* unaligned */
	TH_CHECK(b[1] == 0x00 && b[2] == 0x00 && b[3] == 0x80 && b[4] == 0x3f);
	TH_CHECK(proto_dequantize(PROTO_DT_F32, b + 1, 3, 1, 0, y) == 0);
	TH_CHECK(memcmp(x, y, sizeof(x)) == 0);
	TH_CHECK(proto_quantize(PROTO_DT_F16, x, 3, 1, 0, b + 1) == 0);
	TH_CHECK(b[1] == 0x00 && b[2] == 0x3c && b[3] == 0x00 && b[4] == 0xc0);
	TH_CHECK(proto_dequantize(PROTO_DT_F16, b + 1, 3, 1, 0, y) == 0);
	TH_CHECK(y[0] == 1.0f && y[1] == -2.0f && fabsf(y[2] - x[2]) < x[2] / 2048);
}

static void
test_f16_conversions_round_trip(void)
{
	const float v[] = { 0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f };

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		TH_CHECK_MSG(proto_f16_to_f32(proto_f32_to_f16(v[i])) == v[i], "%g", v[i]);
	TH_CHECK(isinf(proto_f16_to_f32(proto_f32_to_f16(1e6f))));
	TH_CHECK(proto_f32_to_f16(1.0f) == 0x3c00);
}

static void
test_quant_refuses_bad_parameters(void)
{
	const float x[2] = { 1, 2 };
	uint8_t q[8];
	float y[2], scale;
	int32_t zp;

	TH_CHECK(proto_quantize(PROTO_DT_RAW, x, 2, 1, 0, q) == -EINVAL);
	TH_CHECK(proto_quantize(9, x, 2, 1, 0, q) == -EINVAL);
	TH_CHECK(proto_quantize(PROTO_DT_U8, x, 2, 0, 0, q) == -EINVAL);
	TH_CHECK(proto_quantize(PROTO_DT_U8, x, 2, NAN, 0, q) == -EINVAL);
	TH_CHECK(proto_quantize(PROTO_DT_U8, x, 2, 1, 256, q) == -EINVAL);
	TH_CHECK(proto_quantize(PROTO_DT_S8, x, 2, 1, -129, q) == -EINVAL);
	TH_CHECK(proto_quantize(PROTO_DT_F16, x, 2, 2, 0, q) == -EINVAL);
	TH_CHECK(proto_dequantize(PROTO_DT_S8, q, 2, -1, 0, y) == -EINVAL);
	TH_CHECK(proto_quant_params(PROTO_DT_RAW, x, 2, &scale, &zp) == -EINVAL);
	/* all zero, or nothing finite: still a usable scale */
	TH_CHECK(proto_quant_params(PROTO_DT_U8, (const float[]){ 0, NAN }, 2, &scale, &zp) == 0);
	TH_CHECK(scale == 1.0f && zp == 0);
}

/* Bitwise reference: one bit at a time, straight from the definition. */
static uint32_t
crc32c_ref(const uint8_t *p, size_t n)
{
	uint32_t c = ~0u;

	while (n--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? c >> 1 ^ 0x82F63B78u : c >> 1;
	}
	return ~c;
}

static void
test_crc32c_known_vectors(void)
{
	uint8_t b[32];

	TH_CHECK(proto_crc32c(0, "123456789", 9) == 0xE3069283u);
	TH_CHECK(proto_crc32c(0, "", 0) == 0);
	/* RFC 3720 appendix B.4 */
	memset(b, 0, 32);
	TH_CHECK(proto_crc32c(0, b, 32) == 0x8A9136AAu);
	memset(b, 0xff, 32);
	TH_CHECK(proto_crc32c(0, b, 32) == 0x62A8AB43u);
	for (unsigned i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	TH_CHECK(proto_crc32c(0, b, 32) == 0x46DD794Eu);
	for (unsigned i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	TH_CHECK(proto_crc32c(0, b, 32) == 0x113FDB5Cu);
}

/* The crc32 instruction and the tables agree on random buffers of any length, alignment and
 * running CRC; proto_crc32c() is one of them. */
static void
test_crc32c_hw_equals_table(void)
{
	static uint8_t b[5000];
	uint32_t r = 12345;

	if (!proto_crc32c_hw_ok()) {
		TH_SKIP("no SSE4.2 crc32 instruction on this CPU");
		return;
	}
	for (unsigned i = 0; i < sizeof(b); i++) {
		r = r * 1103515245u + 12345u;
		b[i] = (uint8_t)(r >> 16);
	}
	for (unsigned k = 0; k < 400; k++) {
		size_t off, len;
		uint32_t seed;

		r = r * 1103515245u + 12345u;
		off = (r >> 8) % 16;
		len = k < 64 ? k : (r >> 4) % (sizeof(b) - 16);
		seed = k % 3 == 0 ? 0 : r;
		TH_CHECK_MSG(proto_crc32c_hw(seed, b + off, len) == proto_crc32c_sw(seed, b + off, len),
			     "len %zu off %zu", len, off);
	}
	TH_CHECK(proto_crc32c(0, b, 4096) == proto_crc32c_sw(0, b, 4096));
	TH_CHECK(proto_crc32c_hw(0, b + 1, 4095) == crc32c_ref(b + 1, 4095));
}

static void
test_crc32c_incremental_and_unaligned(void)
{
	static uint8_t b[4099];
	uint32_t whole, c;

	for (unsigned i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(i * 131 + 7);
	whole = proto_crc32c(0, b + 3, sizeof(b) - 3);
	TH_CHECK(whole == crc32c_ref(b + 3, sizeof(b) - 3));
	for (size_t cut = 0; cut < 40; cut += 3) {
		c = proto_crc32c(0, b + 3, cut);
		c = proto_crc32c(c, b + 3 + cut, sizeof(b) - 3 - cut);
		TH_CHECK_MSG(c == whole, "cut %zu", cut);
	}
}

int
main(void)
{
	TH_RUN(test_u8_round_trip_within_half_step);
	TH_RUN(test_u8_asymmetric_range_uses_zero_point);
	TH_RUN(test_s8_round_trip_symmetric);
	TH_RUN(test_rounding_is_half_even_and_clamps);
	TH_RUN(test_f16_and_f32_little_endian_any_alignment);
	TH_RUN(test_f16_conversions_round_trip);
	TH_RUN(test_quant_refuses_bad_parameters);
	TH_RUN(test_crc32c_known_vectors);
	TH_RUN(test_crc32c_incremental_and_unaligned);
	TH_RUN(test_crc32c_hw_equals_table);
	TH_DONE();
}
