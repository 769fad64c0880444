/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integrity (flag CRC: CRC32C) and authentication (flag MAC: keyed BLAKE2b-128, libsodium) of
 * a whole datagram, docs/protocol.md 12.5. Both cover every byte of the datagram with the mac
 * field (bytes 24-39) taken as zero, so the datagram is hashed in three pieces and never
 * copied. Hot path on the gateway's RX lcores: no allocation, no lock (sodium_init() runs
 * once, under pthread_once: it selects the AVX2/SSE4.1 BLAKE2b the CPU has).
 */
#include "proto/proto_int.h"

#include <errno.h>
#include <pthread.h>

#include <sodium.h>

static pthread_once_t proto_sodium_once = PTHREAD_ONCE_INIT;

static void
proto_sodium_init(void)
{
	/* -1 only when no random source can be opened; hashing never needs one. */
	if (sodium_init() < 0)
		return;
}

void
proto_sodium_ready(void)
{
	pthread_once(&proto_sodium_once, proto_sodium_init);
}

static const uint8_t proto_zero_mac[PROTO_MAC_LEN];

static uint32_t
proto_dgram_crc(const uint8_t *dg, size_t len)
{
	uint32_t crc;

	crc = proto_crc32c(0, dg, PROTO_OFF_MAC);
	crc = proto_crc32c(crc, proto_zero_mac, PROTO_MAC_LEN);
	return proto_crc32c(crc, dg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
}

static void
proto_dgram_tag(uint8_t tag[PROTO_MAC_LEN], const uint8_t *dg, size_t len, const uint8_t *key)
{
	crypto_generichash_state st;

	proto_sodium_ready();
	crypto_generichash_init(&st, key, PROTO_KEY_LEN, PROTO_MAC_LEN);
	crypto_generichash_update(&st, dg, PROTO_OFF_MAC);
	crypto_generichash_update(&st, proto_zero_mac, PROTO_MAC_LEN);
	crypto_generichash_update(&st, dg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
	crypto_generichash_final(&st, tag, PROTO_MAC_LEN);
	sodium_memzero(&st, sizeof(st));	/* the state holds the keyed chaining value */
}

/* Flags are big endian at bytes 4-5; every flag we touch lives in the low byte. */
static void
proto_flags_set(uint8_t *dg, unsigned set, unsigned clear)
{
	uint16_t f = proto_ld16(dg + PROTO_OFF_FLAGS);

	proto_st16(dg + PROTO_OFF_FLAGS, (uint16_t)((f & ~clear) | set));
}

int
proto_seal_crc(uint8_t *dg, size_t len)
{
	if (len < PROTO_HDR_LEN)
		return -EINVAL;
	proto_flags_set(dg, PROTO_F_CRC, PROTO_F_MAC);
	memset(dg + PROTO_OFF_MAC, 0, PROTO_MAC_LEN);
	proto_st32(dg + PROTO_OFF_MAC, proto_dgram_crc(dg, len));
	return 0;
}

int
proto_seal_mac(uint8_t *dg, size_t len, const uint8_t *key)
{
	if (len < PROTO_HDR_LEN)
		return -EINVAL;
	proto_flags_set(dg, PROTO_F_MAC, PROTO_F_CRC);
	/* The tag is over the datagram with the mac field zero: hashed as zeros, never read. */
	proto_dgram_tag(dg + PROTO_OFF_MAC, dg, len, key);
	return 0;
}

bool
proto_crc_ok(const uint8_t *dg, size_t len)
{
	if (len < PROTO_HDR_LEN || !(proto_ld16(dg + PROTO_OFF_FLAGS) & PROTO_F_CRC))
		return false;
	if (memcmp(dg + PROTO_OFF_MAC + PROTO_CRC_LEN, proto_zero_mac,
		   PROTO_MAC_LEN - PROTO_CRC_LEN) != 0)
		return false;
	return proto_ld32(dg + PROTO_OFF_MAC) == proto_dgram_crc(dg, len);
}

bool
proto_mac_ok(const uint8_t *dg, size_t len, const uint8_t *key)
{
	uint8_t tag[PROTO_MAC_LEN];
	bool ok;

	if (len < PROTO_HDR_LEN || !(proto_ld16(dg + PROTO_OFF_FLAGS) & PROTO_F_MAC))
		return false;
	proto_dgram_tag(tag, dg, len, key);
	ok = sodium_memcmp(tag, dg + PROTO_OFF_MAC, PROTO_MAC_LEN) == 0;
	sodium_memzero(tag, sizeof(tag));
	return ok;
}
