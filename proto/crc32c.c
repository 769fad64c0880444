/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC32C (Castagnoli; iSCSI, ext4 and SCTP use it) for the echo diagnostic: the gateway
 * answers an echo request with the CRC32C of the tensor it reassembled, the client compares
 * it with its own. On x86-64 with SSE4.2 (checked at run time, once) the crc32 instruction
 * does 8 bytes a step (the echo runs on the RX lcore: ~1 byte per cycle in software is a
 * full core at 3 GB/s); elsewhere software slicing-by-8, its tables built on first use.
 */
#include "proto/proto_int.h"

#include <pthread.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define PROTO_CRC32C_POLY 0x82F63B78u	/* 0x1EDC6F41 bit-reversed */

static uint32_t proto_crc32c_tab[8][256];
static pthread_once_t proto_crc32c_once = PTHREAD_ONCE_INIT;

static void
proto_crc32c_init(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;

		for (int k = 0; k < 8; k++)
			c = c >> 1 ^ (PROTO_CRC32C_POLY & (0u - (c & 1)));
		proto_crc32c_tab[0][b] = c;
	}
	/* tab[k][b]: the CRC of byte b followed by k zero bytes. */
	for (uint32_t b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			proto_crc32c_tab[k][b] = proto_crc32c_tab[k - 1][b] >> 8 ^
						 proto_crc32c_tab[0][proto_crc32c_tab[k - 1][b] & 0xff];
}

uint32_t
proto_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	const uint32_t (*t)[256] = (const uint32_t (*)[256])proto_crc32c_tab;

	pthread_once(&proto_crc32c_once, proto_crc32c_init);
	crc = ~crc;
	for (; len >= 8; p += 8, len -= 8) {
		/* Bytes combined explicitly: the same result on any host byte order. */
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				     (uint32_t)p[3] << 24);

		crc = t[7][lo & 0xff] ^ t[6][lo >> 8 & 0xff] ^ t[5][lo >> 16 & 0xff] ^
		      t[4][lo >> 24] ^ t[3][p[4]] ^ t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
	}
	while (len--)
		crc = crc >> 8 ^ t[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
/* The SSE4.2 crc32 instruction computes exactly this CRC (reflected 0x82F63B78). */
__attribute__((target("sse4.2"))) static uint32_t
proto_crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = ~crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;

		memcpy(&w, p, sizeof(w));	/* little endian: the bytes in stream order */
		c = _mm_crc32_u64(c, w);
	}
	for (; len > 0; p++, len--)
		c = _mm_crc32_u8((uint32_t)c, *p);
	return ~(uint32_t)c;
}

static int proto_crc32c_have_hw = -1;	/* -1 not checked yet; racing first calls agree */

bool
proto_crc32c_hw_ok(void)
{
	if (__atomic_load_n(&proto_crc32c_have_hw, __ATOMIC_RELAXED) < 0) {
		__builtin_cpu_init();
		__atomic_store_n(&proto_crc32c_have_hw, __builtin_cpu_supports("sse4.2") ? 1 : 0,
				 __ATOMIC_RELAXED);
	}
	return __atomic_load_n(&proto_crc32c_have_hw, __ATOMIC_RELAXED) == 1;
}

uint32_t
proto_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return proto_crc32c_hw_ok() ? proto_crc32c_sse42(crc, buf, len)
				    : proto_crc32c_sw(crc, buf, len);
}
#else
bool
proto_crc32c_hw_ok(void)
{
	return false;
}

uint32_t
proto_crc32c_hw(uint32_t crc, const void *buf, size_t len)
{
	return proto_crc32c_sw(crc, buf, len);
}
#endif

uint32_t
proto_crc32c(uint32_t crc, const void *buf, size_t len)
{
	return proto_crc32c_hw(crc, buf, len);
}
