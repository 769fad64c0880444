/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto: the CRC and MAC seals (docs/protocol.md 12.5). Known answers computed outside this
 * code (Python's hashlib.blake2b(data, key=key, digest_size=16) and a bitwise CRC32C, see the
 * comments), every single-bit change refused, and the decoder's own CRC check.
 */
#include "tests/harness.h"
#include "proto/proto.h"

#include <errno.h>

/* Section 14.6's ERROR example (48 bytes). */
static const uint8_t ex_error[48] = {
	0x54, 0x47, 0x01, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x07,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x03, 0x00, 0x01, 0x01, 0x00, 0xff, 0xff,
};

/* Section 14.1's HELLO: its 64-byte fixed part, zero padding to 1200. */
static const uint8_t ex_hello_head[64] = {
	0x54, 0x47, 0x01, 0x01, 0x00, 0x00, 0x04, 0x70, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0xd0, 0x00, 0x00, 0x27, 0x10,
	0x00, 0x00, 0x0b, 0xb8, 0x00, 0x00, 0x61, 0xa8, 0x23, 0x28, 0x05, 0xc0, 0x00, 0x00, 0x00, 0x00,
};

static uint8_t key_seq[PROTO_KEY_LEN];		/* 00 01 02 ... 1f */
static uint8_t key_a5[PROTO_KEY_LEN];		/* a5 x 32 */
static uint8_t buf[PROTO_MAX_DGRAM];

static void
keys_init(void)
{
	for (unsigned i = 0; i < PROTO_KEY_LEN; i++) {
		key_seq[i] = (uint8_t)i;
		key_a5[i] = 0xa5;
	}
}

static size_t
hello_at(uint8_t *b)
{
	memset(b, 0, 1200);
	memcpy(b, ex_hello_head, sizeof(ex_hello_head));
	return 1200;
}

static bool
bytes_are(const uint8_t *p, const char *hex)
{
	for (size_t i = 0; hex[2 * i]; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1 || p[i] != v)
			return false;
	}
	return true;
}

/*
 * python3 -c 'import hashlib; d=bytearray(ERROR); d[5]|=2;
 *   print(hashlib.blake2b(bytes(d), key=bytes(range(32)), digest_size=16).hexdigest())'
 */
static void
test_mac_known_answers(void)
{
	size_t n;

	memcpy(buf, ex_error, sizeof(ex_error));
	TH_CHECK(proto_seal_mac(buf, sizeof(ex_error), key_seq) == 0);
	TH_CHECK(buf[4] == 0x00 && buf[5] == PROTO_F_MAC);
	TH_CHECK(bytes_are(buf + PROTO_OFF_MAC, "0bc9aa6abff1caffd69f4ee2e4228cca"));
	TH_CHECK(memcmp(buf + PROTO_HDR_LEN, ex_error + PROTO_HDR_LEN, 8) == 0);
	TH_CHECK(proto_mac_ok(buf, sizeof(ex_error), key_seq));

	n = hello_at(buf);
	TH_CHECK(proto_seal_mac(buf, n, key_seq) == 0);
	TH_CHECK(bytes_are(buf + PROTO_OFF_MAC, "8e83d283276739fdbb9ef66d856cd3f0"));
	n = hello_at(buf);
	TH_CHECK(proto_seal_mac(buf, n, key_a5) == 0);
	TH_CHECK(bytes_are(buf + PROTO_OFF_MAC, "ac0c7f8a5b1b0c1feafa77d07659f9be"));
	TH_CHECK(proto_mac_ok(buf, n, key_a5));
	TH_CHECK(!proto_mac_ok(buf, n, key_seq));
}

/* CRC32C by the bitwise definition (poly 0x82F63B78) of the ERROR with flag CRC, mac zero. */
static void
test_crc_known_answer(void)
{
	struct proto_msg m;

	memcpy(buf, ex_error, sizeof(ex_error));
	TH_CHECK(proto_seal_crc(buf, sizeof(ex_error)) == 0);
	TH_CHECK(buf[5] == PROTO_F_CRC);
	TH_CHECK(bytes_are(buf + PROTO_OFF_MAC, "e6977287000000000000000000000000"));
	TH_CHECK(proto_crc_ok(buf, sizeof(ex_error)));
	TH_CHECK(proto_decode(buf, sizeof(ex_error), NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.error.status == PROTO_ST_UNSUPPORTED_VERSION);
}

/* Resealing replaces the other seal: MAC and CRC never stand together. */
static void
test_seals_replace_each_other(void)
{
	struct proto_msg m;

	memcpy(buf, ex_error, sizeof(ex_error));
	TH_CHECK(proto_seal_mac(buf, sizeof(ex_error), key_seq) == 0);
	TH_CHECK(proto_seal_crc(buf, sizeof(ex_error)) == 0);
	TH_CHECK(buf[5] == PROTO_F_CRC && proto_crc_ok(buf, sizeof(ex_error)));
	TH_CHECK(!proto_mac_ok(buf, sizeof(ex_error), key_seq));
	TH_CHECK(proto_seal_mac(buf, sizeof(ex_error), key_seq) == 0);
	TH_CHECK(buf[5] == PROTO_F_MAC && proto_mac_ok(buf, sizeof(ex_error), key_seq));
	TH_CHECK(!proto_crc_ok(buf, sizeof(ex_error)));
	TH_CHECK(proto_decode(buf, sizeof(ex_error), NULL, &m, NULL) == PROTO_OK);
	buf[5] |= PROTO_F_CRC;
	TH_CHECK(proto_decode(buf, sizeof(ex_error), NULL, &m, NULL) == PROTO_E_BAD_FLAGS);
	TH_CHECK(proto_seal_mac(buf, 39, key_seq) == -EINVAL);
	TH_CHECK(proto_seal_crc(buf, 39) == -EINVAL);
	TH_CHECK(!proto_mac_ok(buf, 39, key_seq) && !proto_crc_ok(buf, 39));
}

/* A REQUEST chunk from the encoder, sealed: every single-bit flip anywhere is refused. */
static size_t
request_at(uint8_t *b, uint16_t flags)
{
	static const uint8_t payload[64] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	struct proto_hdr h = { .flags = flags, .client_id = 42, .request_id = 7,
			       .session_id = 0x8f3a61c2d4b70e19ull };
	struct proto_request r = {
		.c = { .model_id = 1, .split_id = 3, .count = 1,
		       .t = { .dtype = PROTO_DT_U8, .ndim = 4, .dims = { 1, 2, 4, 8 },
			      .raw_total = 64, .scale = 0.0625f },
		       .raw_len = 64, .payload = payload, .payload_len = 64 },
		.top_k = 3,
		.deadline_us = 20000,
	};
	int n = proto_encode_request(b, PROTO_MAX_DGRAM, &h, &r);

	return n > 0 ? (size_t)n : 0;
}

static void
test_mac_refuses_every_bit_flip(void)
{
	size_t n = request_at(buf, 0);
	unsigned bad = 0;

	TH_CHECK(n == 168);
	TH_CHECK(proto_seal_mac(buf, n, key_seq) == 0 && proto_mac_ok(buf, n, key_seq));
	for (size_t i = 0; i < n; i++)
		for (unsigned bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1u << bit);
			bad += proto_mac_ok(buf, n, key_seq);
			buf[i] ^= (uint8_t)(1u << bit);
		}
	TH_CHECK_MSG(bad == 0, "%u flipped datagrams passed", bad);
	TH_CHECK(proto_mac_ok(buf, n, key_seq));
	TH_CHECK(!proto_mac_ok(buf, n - 1, key_seq));	/* truncation */
	TH_CHECK(!proto_mac_ok(buf, n, key_a5));	/* another device's key */
	buf[5] &= (uint8_t)~PROTO_F_MAC;
	TH_CHECK(!proto_mac_ok(buf, n, key_seq));	/* flag cleared */
}

/*
 * The decoder checks a CRC itself: a flip in the ids, the mac or the body is refused bad_crc
 * (step 9, before the body's fields are believed); one in bytes 0-7 fails its own earlier
 * step, never PROTO_OK.
 */
static void
test_decoder_refuses_corrupt_crc(void)
{
	struct proto_stats st = { 0 };
	struct proto_msg m;
	size_t n = request_at(buf, PROTO_F_CRC);
	unsigned ok = 0, not_crc = 0;

	TH_CHECK(n == 168 && buf[5] == PROTO_F_CRC && proto_crc_ok(buf, n));
	TH_CHECK(proto_decode(buf, n, NULL, &m, NULL) == PROTO_OK);
	for (size_t i = 0; i < n; i++)
		for (unsigned bit = 0; bit < 8; bit++) {
			enum proto_reason r;

			buf[i] ^= (uint8_t)(1u << bit);
			r = proto_decode(buf, n, NULL, &m, &st);
			ok += r == PROTO_OK;
			not_crc += i >= 8 && r != PROTO_E_BAD_CRC;
			buf[i] ^= (uint8_t)(1u << bit);
		}
	TH_CHECK_MSG(ok == 0, "%u corrupted datagrams decoded", ok);
	TH_CHECK_MSG(not_crc == 0, "%u flips past byte 7 not refused bad_crc", not_crc);
	TH_CHECK(st.reject[PROTO_E_BAD_CRC] >= (n - 8) * 8);
	/* mac bytes 4-15 belong to the seal: not zero is a bad CRC, whatever bytes 0-3 say. */
	buf[PROTO_OFF_MAC + 15] = 1;
	TH_CHECK(proto_decode(buf, n, NULL, &m, NULL) == PROTO_E_BAD_CRC);
	buf[PROTO_OFF_MAC + 15] = 0;
	TH_CHECK(proto_decode(buf, n, NULL, &m, NULL) == PROTO_OK);
	/* Without the flag, a non-zero mac is still reserved. */
	buf[5] &= (uint8_t)~PROTO_F_CRC;
	TH_CHECK(proto_decode(buf, n, NULL, &m, NULL) == PROTO_E_RESERVED);
}

/* The chunker seals each chunk after patching its count. */
static void
test_chunker_seals_every_chunk(void)
{
	static uint8_t raw[4000], out[8192];
	struct proto_dgram dg[16];
	struct proto_hdr h = { .flags = PROTO_F_CRC, .client_id = 9, .request_id = 1,
			       .session_id = 5 };
	struct proto_request r = {
		.c = { .model_id = 1, .t = { .dtype = PROTO_DT_U8, .ndim = 1, .dims = { 4000 },
					     .raw_total = 4000, .scale = 1.0f } },
	};
	struct proto_msg m;
	unsigned n = 0;

	for (unsigned i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(i * 2654435761u >> 13);
	TH_CHECK(proto_request_chunk(&h, &r, raw, 1200, false, out, sizeof(out), dg, 16, &n) == 0);
	TH_CHECK(n >= 4);
	for (unsigned i = 0; i < n; i++) {
		TH_CHECK(proto_crc_ok(dg[i].data, dg[i].len));
		TH_CHECK(proto_decode(dg[i].data, dg[i].len, NULL, &m, NULL) == PROTO_OK);
		TH_CHECK(m.u.req.c.count == n);
	}
}

int
main(void)
{
	keys_init();
	TH_RUN(test_mac_known_answers);
	TH_RUN(test_crc_known_answer);
	TH_RUN(test_seals_replace_each_other);
	TH_RUN(test_mac_refuses_every_bit_flip);
	TH_RUN(test_decoder_refuses_corrupt_crc);
	TH_RUN(test_chunker_seals_every_chunk);
	TH_DONE();
}
