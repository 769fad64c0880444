/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the proto module (its .c files only): byte-order access and the checks both
 * the decoder and the encoders apply, so nothing is ever encoded that would be refused.
 */
#ifndef TG_PROTO_INT_H
#define TG_PROTO_INT_H

#include "proto/proto.h"

#include <string.h>

/* Header fields are big endian; these compile to a load and a bswap on x86. */
static inline uint16_t
proto_ld16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
proto_ld32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t
proto_ld64(const uint8_t *p)
{
	return (uint64_t)proto_ld32(p) << 32 | proto_ld32(p + 4);
}

static inline float
proto_ldf(const uint8_t *p)
{
	uint32_t u = proto_ld32(p);
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline void
proto_st16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
proto_st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void
proto_st64(uint8_t *p, uint64_t v)
{
	proto_st32(p, (uint32_t)(v >> 32));
	proto_st32(p + 4, (uint32_t)v);
}

static inline void
proto_stf(uint8_t *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	proto_st32(p, u);
}

/* The limits encoders check against: the wire's own caps, so any valid message encodes. */
extern const struct proto_limits proto_limits_wire;

/* Tensor descriptor and quantization (decode steps 4-8). */
enum proto_reason proto_tensor_check(const struct proto_tensor *t,
				     const struct proto_limits *lim);
/* Chunk placement against its tensor and limits (decode steps 9-14). */
enum proto_reason proto_chunk_check(const struct proto_chunk *c,
				    const struct proto_limits *lim);
/* Quantization parameters valid for the dtype. */
bool proto_quant_ok(unsigned dtype, float scale, int32_t zero_point);

/* CRC32C, the two ways proto_crc32c() may take, for tests that compare them: software
 * slicing-by-8 always; the CPU's crc32 instruction when proto_crc32c_hw_ok() (SSE4.2, checked
 * at run time), else software as well. */
uint32_t proto_crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t proto_crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool proto_crc32c_hw_ok(void);

/* libsodium initialised (once, any thread): before sodium_malloc() or BLAKE2b. */
void proto_sodium_ready(void);

/* Write the chunk block (bytes 40..95) shared by REQUEST and RESPONSE. */
void proto_chunk_put(uint8_t *buf, const struct proto_chunk *c);
/* Write the common header; flags must already hold LZ4 as wanted. */
void proto_hdr_put(uint8_t *buf, const struct proto_hdr *h, uint8_t type, uint16_t flags,
		   uint16_t payload_len);

#endif
