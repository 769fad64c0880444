/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integrity and authentication on a ring-backed port (docs/protocol.md 12.5): with auth =
 * required, signed devices are served and their answers tagged; missing, forged and wrong-key
 * tags are dropped (unverified source) or answered UNAUTHENTICATED (verified); replayed
 * chunks and HELLOs are refused; a key swap applies at once. Without keys, integrity =
 * required: a corrupted chunk is dropped bad_crc, never answered, and its good copy served.
 * Every refusal checks its reply and that exactly its counters moved.
 */
#include "tests/harness.h"
#include "dataplane/dp_testkit.h"

#include <time.h>

enum {
	GW_PORT = PROTO_PORT,
	MAX_DGRAM = 1472,
	MAX_RAW = 8192,
	MAX_CHUNKS = 16,
	OUT_CAP = MAX_RAW + MAX_CHUNKS * PROTO_REQUEST_LEN + 4096,
	DEV_A = 5,		/* has key A */
	DEV_B = 6,		/* has key B */
	DEV_NONE = 7,		/* no key */
	SPORT = 41000,
	SPORT_EVIL = 41999,	/* a forger's address: never a session's */
};

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5"

enum seal { SEAL_NONE, SEAL_CRC, SEAL_KEY_A, SEAL_KEY_B, SEAL_FORGED };

struct msg {
	struct proto_hdr h;
	struct proto_request rq;
	uint8_t raw[MAX_RAW];
	uint8_t out[OUT_CAP];
	struct proto_dgram dg[MAX_CHUNKS];
	unsigned n;
};

static struct dptk_port port;
static struct dp *dp;
static struct proto_keys *keys;
static uint8_t key_a[PROTO_KEY_LEN], key_b[PROTO_KEY_LEN];
static uint8_t rbuf[DPTK_MAX_FRAME];
static int rlen;
static struct msg ma;

static void
seal(uint8_t *b, size_t len, enum seal s)
{
	switch (s) {
	case SEAL_NONE:
		break;
	case SEAL_CRC:
		proto_seal_crc(b, len);
		break;
	case SEAL_KEY_A:
		proto_seal_mac(b, len, key_a);
		break;
	case SEAL_KEY_B:
		proto_seal_mac(b, len, key_b);
		break;
	case SEAL_FORGED:
		proto_seal_mac(b, len, key_a);
		b[PROTO_OFF_MAC + 3] ^= 0x40;	/* one bit of the tag */
		break;
	}
}

static void
pump(void)
{
	dp_poll(dp, 0);
	dp_flush(dp, 0);
}

/* Poll until a datagram comes back (ms at most): its bytes in rbuf/rlen, decoded into out. */
static bool
reply(struct proto_msg *out, unsigned ms)
{
	struct timespec t = { 0, 100000 };

	for (unsigned i = 0; i <= ms * 10; i++) {
		pump();
		rlen = dptk_take_udp(&port, rbuf, sizeof(rbuf), NULL);
		if (rlen >= 0)
			return proto_decode(rbuf, (size_t)rlen, NULL, out, NULL) == PROTO_OK;
		nanosleep(&t, NULL);
	}
	return false;
}

/* Nothing comes back within a few polls. */
static bool
silence(void)
{
	struct proto_msg r;

	return !reply(&r, 5);
}

static void
sleep_ms(unsigned ms)
{
	struct timespec t = { 0, (long)ms * 1000000L };

	nanosleep(&t, NULL);
}

/* A HELLO from client at sport with nonce, sealed s; the reply (if any) decoded into r. */
static bool
hello(uint32_t client, uint16_t sport, uint32_t nonce, enum seal s, struct proto_msg *r)
{
	uint8_t buf[PROTO_HELLO_MIN_DGRAM];
	struct proto_hdr h = { .client_id = client, .request_id = nonce };
	struct proto_hello m = { .max_dgram = 1472 };
	int n = proto_encode_hello(buf, sizeof(buf), &h, &m, sizeof(buf));

	if (n < 0)
		return false;
	seal(buf, (size_t)n, s);
	TH_CHECK(dptk_send(&port, sport, GW_PORT, buf, (size_t)n) == 0);
	return reply(r, 50);
}

/* An echo request of len random bytes in session sid, chunked at 1472 bytes, unsealed. */
static void
make_msg(struct msg *m, uint32_t client, uint64_t sid, uint32_t req_id, size_t len)
{
	uint32_t x = req_id * 2654435761u + 1;

	memset(&m->h, 0, sizeof(m->h));
	memset(&m->rq, 0, sizeof(m->rq));
	m->h.client_id = client;
	m->h.request_id = req_id;
	m->h.session_id = sid;
	m->rq.c.model_id = PROTO_MODEL_ECHO;
	m->rq.c.t.dtype = PROTO_DT_RAW;
	m->rq.c.t.raw_total = (uint32_t)len;
	m->rq.c.t.scale = 1.0f;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		m->raw[i] = (uint8_t)x;
	}
	TH_CHECK(proto_request_chunk(&m->h, &m->rq, m->raw, MAX_DGRAM, false, m->out,
				     sizeof(m->out), m->dg, MAX_CHUNKS, &m->n) == 0);
}

static void
send_chunk(struct msg *m, unsigned i, uint16_t sport, enum seal s)
{
	seal(m->dg[i].data, m->dg[i].len, s);
	TH_CHECK(dptk_send(&port, sport, GW_PORT, m->dg[i].data, m->dg[i].len) == 0);
}

static bool
is_echo_of(const struct proto_msg *r, const struct msg *m)
{
	return dptk_is_echo(r, &m->h, m->raw, m->rq.c.t.raw_total);
}

/* Send every chunk of m sealed s from sport; expect its echo, tagged with key. */
static void
expect_echo(struct msg *m, uint16_t sport, enum seal s, const uint8_t *key)
{
	struct proto_msg r;

	for (unsigned i = 0; i < m->n; i++)
		send_chunk(m, i, sport, s);
	TH_CHECK(reply(&r, 100) && is_echo_of(&r, m));
	TH_CHECK(key == NULL ? proto_crc_ok(rbuf, (size_t)rlen)
			     : proto_mac_ok(rbuf, (size_t)rlen, key));
	TH_CHECK(dptk_tx_count(&port) == 0);
}

/* Exactly one datagram refused: under drop d and proto reason why, nothing else moved. */
static void
expect_refused(const struct dp_stats *a, enum dp_drop d, enum proto_reason why)
{
	struct dp_stats b;
	uint64_t rx = 0, rej = 0;

	dp_stats_get(dp, &b);
	TH_CHECK(dptk_only_drop(a, &b, d, 1));
	TH_CHECK_MSG(b.proto.reject[why] - a->proto.reject[why] == 1, "reason %s moved by %llu",
		     proto_reason_name(why),
		     (unsigned long long)(b.proto.reject[why] - a->proto.reject[why]));
	for (unsigned t = 0; t < PROTO_T__COUNT; t++)
		rx += b.proto.rx[t] - a->proto.rx[t];
	for (unsigned i = 0; i < PROTO_REASON__COUNT; i++)
		rej += b.proto.reject[i] - a->proto.reject[i];
	TH_CHECK_MSG(rx == 0 && rej == 1, "one datagram, one count: %llu decoded, %llu refused",
		     (unsigned long long)rx, (unsigned long long)rej);
	TH_CHECK(b.udp_rx - a->udp_rx == 1);
}

static uint64_t sid_a;		/* DEV_A's session at SPORT */
static uint32_t nonce_a = 1000;	/* DEV_A's last HELLO nonce */

static void
test_signed_device_served_and_answers_tagged(void)
{
	struct proto_msg r;

	TH_CHECK(hello(DEV_A, SPORT, nonce_a, SEAL_KEY_A, &r) && r.h.type == PROTO_T_HELLO_REPLY);
	TH_CHECK(proto_mac_ok(rbuf, (size_t)rlen, key_a));
	TH_CHECK(!proto_mac_ok(rbuf, (size_t)rlen, key_b));
	sid_a = r.h.session_id;
	make_msg(&ma, DEV_A, sid_a, 10, 3000);
	TH_CHECK(ma.n == 3);
	expect_echo(&ma, SPORT, SEAL_KEY_A, key_a);
}

/* Missing, forged, other device's key, no key at all: dropped, counted, never answered. */
static void
test_unverified_bad_tags_dropped_silently(void)
{
	static const struct {
		uint32_t client;
		enum seal s;
		enum proto_reason why;
	} cases[] = {
		{ DEV_A, SEAL_NONE, PROTO_E_NO_MAC },
		{ DEV_A, SEAL_CRC, PROTO_E_NO_MAC },
		{ DEV_A, SEAL_FORGED, PROTO_E_BAD_MAC },
		{ DEV_A, SEAL_KEY_B, PROTO_E_BAD_MAC },
		{ DEV_NONE, SEAL_KEY_A, PROTO_E_BAD_MAC },
		{ DEV_NONE, SEAL_NONE, PROTO_E_NO_MAC },
	};
	struct proto_msg r;

	for (unsigned i = 0; i < RTE_DIM(cases); i++) {
		struct dp_stats a;

		dp_stats_get(dp, &a);
		TH_CHECK_MSG(!hello(cases[i].client, SPORT + 1, 2000 + i, cases[i].s, &r),
			     "case %u answered", i);
		expect_refused(&a, DP_DROP_AUTH, cases[i].why);
	}
	/* A chunk naming DEV_A's live session from another address: no answer either. */
	for (unsigned i = 0; i < 2; i++) {
		struct dp_stats a;

		dp_stats_get(dp, &a);
		make_msg(&ma, DEV_A, sid_a, 20 + i, 100);
		send_chunk(&ma, 0, SPORT_EVIL, i ? SEAL_FORGED : SEAL_NONE);
		TH_CHECK(silence());
		expect_refused(&a, DP_DROP_AUTH, i ? PROTO_E_BAD_MAC : PROTO_E_NO_MAC);
	}
}

/* From the session's own address: ERROR UNAUTHENTICATED with the reason, tagged. */
static void
test_verified_bad_tags_answered_unauthenticated(void)
{
	static const enum seal seals[] = { SEAL_NONE, SEAL_FORGED, SEAL_KEY_B };
	static const enum proto_reason why[] = { PROTO_E_NO_MAC, PROTO_E_BAD_MAC,
						 PROTO_E_BAD_MAC };
	struct proto_msg r;

	for (unsigned i = 0; i < RTE_DIM(seals); i++) {
		struct dp_stats a;

		dp_stats_get(dp, &a);
		make_msg(&ma, DEV_A, sid_a, 30 + i, 2000);
		send_chunk(&ma, 0, SPORT, seals[i]);
		TH_CHECK(reply(&r, 50) && dptk_is_error(&r, PROTO_ST_UNAUTHENTICATED, why[i]));
		TH_CHECK(r.h.request_id == 30 + i && r.u.error.chunk_index == 0);
		TH_CHECK(proto_mac_ok(rbuf, (size_t)rlen, key_a));
		expect_refused(&a, DP_DROP_AUTH, why[i]);
		TH_CHECK(dptk_tx_count(&port) == 0);
	}
	/* The session still serves its signed requests. */
	make_msg(&ma, DEV_A, sid_a, 40, 1000);
	expect_echo(&ma, SPORT, SEAL_KEY_A, key_a);
}

/*
 * Replays: a duplicate of an answer still kept is answered again; once forgotten, or below
 * the window, a chunk is refused replay; an id inside the window never answered is served.
 */
static void
test_replayed_chunks_refused(void)
{
	struct proto_msg r;
	struct dp_stats a, b;
	static struct msg old;

	make_msg(&old, DEV_A, sid_a, 50, 100);
	expect_echo(&old, SPORT, SEAL_KEY_A, key_a);
	dp_stats_get(dp, &a);
	send_chunk(&old, 0, SPORT, SEAL_KEY_A);
	sleep_ms(3);	/* a resend waits a gap (2 ms) after the answer */
	send_chunk(&old, 0, SPORT, SEAL_KEY_A);
	TH_CHECK(reply(&r, 50) && is_echo_of(&r, &old));	/* idempotency: kept answer */
	dp_stats_get(dp, &b);
	TH_CHECK(b.drop[DP_DROP_REPLAY] == a.drop[DP_DROP_REPLAY]);
	TH_CHECK(b.answers_resent - a.answers_resent >= 1);	/* 2 on a slow poll */
	sleep_ms(60);		/* past msg_timeout (50 ms): the answer is forgotten */
	pump();
	while (dptk_take_udp(&port, rbuf, sizeof(rbuf), NULL) >= 0)
		;		/* a second resend, if the first duplicate got one too */
	dp_stats_get(dp, &a);
	send_chunk(&old, 0, SPORT, SEAL_KEY_A);
	TH_CHECK(reply(&r, 50) && dptk_is_error(&r, PROTO_ST_UNAUTHENTICATED, PROTO_E_REPLAY));
	TH_CHECK(proto_mac_ok(rbuf, (size_t)rlen, key_a));
	expect_refused(&a, DP_DROP_REPLAY, PROTO_E_REPLAY);
	/* The window moves to 150: 60 is below it, 120 inside and never answered. */
	make_msg(&ma, DEV_A, sid_a, 150, 100);
	expect_echo(&ma, SPORT, SEAL_KEY_A, key_a);
	dp_stats_get(dp, &a);
	make_msg(&ma, DEV_A, sid_a, 60, 100);
	send_chunk(&ma, 0, SPORT, SEAL_KEY_A);
	TH_CHECK(reply(&r, 50) && dptk_is_error(&r, PROTO_ST_UNAUTHENTICATED, PROTO_E_REPLAY));
	expect_refused(&a, DP_DROP_REPLAY, PROTO_E_REPLAY);
	make_msg(&ma, DEV_A, sid_a, 120, 100);
	expect_echo(&ma, SPORT, SEAL_KEY_A, key_a);
	/* Replayed from elsewhere: the session's address is not the sender's. */
	dp_stats_get(dp, &a);
	send_chunk(&old, 0, SPORT_EVIL, SEAL_KEY_A);
	/* Not this session's address (section 12.1's path rules say which reason): never
	 * served, a 48-byte ERROR at most, and nothing counted as a replay. */
	TH_CHECK(reply(&r, 50) && r.h.type == PROTO_T_ERROR &&
		 r.u.error.status == PROTO_ST_UNKNOWN_SESSION && rlen == PROTO_ERROR_LEN);
	dp_stats_get(dp, &b);
	TH_CHECK(b.drop[DP_DROP_REPLAY] == a.drop[DP_DROP_REPLAY]);
	TH_CHECK(b.msgs_opened == a.msgs_opened);
}

/* HELLO nonces only grow per device: lower refused, equal (a retransmission) answered. */
static void
test_replayed_hello_refused(void)
{
	struct proto_msg r;
	struct dp_stats a;

	nonce_a += 10;
	TH_CHECK(hello(DEV_A, SPORT + 2, nonce_a, SEAL_KEY_A, &r) &&
		 r.h.type == PROTO_T_HELLO_REPLY && r.h.request_id == nonce_a);
	TH_CHECK(hello(DEV_A, SPORT + 2, nonce_a, SEAL_KEY_A, &r) &&
		 r.h.type == PROTO_T_HELLO_REPLY);
	dp_stats_get(dp, &a);
	TH_CHECK(!hello(DEV_A, SPORT + 3, nonce_a - 1, SEAL_KEY_A, &r));
	expect_refused(&a, DP_DROP_REPLAY, PROTO_E_REPLAY);
	/* Serial arithmetic: 2^31 behind is behind. */
	dp_stats_get(dp, &a);
	TH_CHECK(!hello(DEV_A, SPORT + 3, nonce_a + 0x80000000u, SEAL_KEY_A, &r));
	expect_refused(&a, DP_DROP_REPLAY, PROTO_E_REPLAY);
	/* Another device's nonces are its own. */
	TH_CHECK(hello(DEV_B, SPORT + 4, 1, SEAL_KEY_B, &r) && r.h.type == PROTO_T_HELLO_REPLY);
	TH_CHECK(proto_mac_ok(rbuf, (size_t)rlen, key_b));
}

/* A new key table applies at once; the device's HELLO nonce survives the swap. */
static void
test_key_swap(void)
{
	struct proto_keys *nk = NULL;
	const struct proto_keys *old;
	struct tg_err err;
	struct proto_msg r;
	struct dp_stats a;
	const char *text = "5 " KEY_B "\n";

	TH_CHECK(proto_keys_parse(&nk, text, strlen(text), "swap", &err) == 0);
	if (nk == NULL)
		return;
	old = dp_auth_keys_swap(dp, nk);
	TH_CHECK(old == keys);
	proto_keys_free((struct proto_keys *)old);
	keys = nk;
	dp_stats_get(dp, &a);
	TH_CHECK(!hello(DEV_A, SPORT + 5, nonce_a + 1, SEAL_KEY_A, &r));
	expect_refused(&a, DP_DROP_AUTH, PROTO_E_BAD_MAC);
	dp_stats_get(dp, &a);
	TH_CHECK(!hello(DEV_A, SPORT + 5, nonce_a - 1, SEAL_KEY_B, &r));
	expect_refused(&a, DP_DROP_REPLAY, PROTO_E_REPLAY);
	TH_CHECK(hello(DEV_A, SPORT + 5, nonce_a + 1, SEAL_KEY_B, &r) &&
		 r.h.type == PROTO_T_HELLO_REPLY && proto_mac_ok(rbuf, (size_t)rlen, key_b));
	make_msg(&ma, DEV_A, r.h.session_id, 1, 500);
	expect_echo(&ma, SPORT + 5, SEAL_KEY_B, key_b);
	dp_stats_get(dp, &a);
	TH_CHECK(!hello(DEV_B, SPORT + 6, 5, SEAL_KEY_B, &r));	/* no key any more */
	expect_refused(&a, DP_DROP_AUTH, PROTO_E_BAD_MAC);
}

/* ---- integrity without keys ---- */

static void
test_crc_sealed_served_and_answered_with_crc(void)
{
	struct proto_msg r;

	TH_CHECK(hello(DEV_NONE, SPORT, 1, SEAL_CRC, &r) && r.h.type == PROTO_T_HELLO_REPLY);
	TH_CHECK(proto_crc_ok(rbuf, (size_t)rlen));
	sid_a = r.h.session_id;
	make_msg(&ma, DEV_NONE, sid_a, 1, 3000);
	expect_echo(&ma, SPORT, SEAL_CRC, NULL);
}

/*
 * A payload byte changed in flight (UDP checksum right for it): dropped bad_crc, nothing
 * answered, the message stays open; the good copy completes it with the right answer.
 */
static void
test_corrupted_chunk_dropped_then_resend_served(void)
{
	struct proto_msg r;
	struct dp_stats a;

	make_msg(&ma, DEV_NONE, sid_a, 2, 3000);
	send_chunk(&ma, 0, SPORT, SEAL_CRC);
	send_chunk(&ma, 2, SPORT, SEAL_CRC);
	pump();
	TH_CHECK(dptk_tx_count(&port) == 0);
	dp_stats_get(dp, &a);
	ma.dg[1].data[PROTO_REQUEST_LEN + 17] ^= 0x01;
	TH_CHECK(dptk_send(&port, SPORT, GW_PORT, ma.dg[1].data, ma.dg[1].len) == 0);
	pump();
	expect_refused(&a, DP_DROP_PROTO, PROTO_E_BAD_CRC);
	ma.dg[1].data[PROTO_REQUEST_LEN + 17] ^= 0x01;
	/* Its NACK comes a gap later: the chunk is missing, not answered wrong. */
	TH_CHECK(reply(&r, 100) && r.h.type == PROTO_T_NACK && r.u.nack.ranges[0].first == 1);
	send_chunk(&ma, 1, SPORT, SEAL_CRC);
	TH_CHECK(reply(&r, 100) && is_echo_of(&r, &ma));
}

/* integrity = required: a datagram with neither CRC nor MAC is refused, never answered. */
static void
test_unsealed_refused_when_integrity_required(void)
{
	struct proto_msg r;
	struct dp_stats a;

	dp_stats_get(dp, &a);
	TH_CHECK(!hello(DEV_NONE, SPORT + 1, 2, SEAL_NONE, &r));
	expect_refused(&a, DP_DROP_PROTO, PROTO_E_BAD_CRC);
	make_msg(&ma, DEV_NONE, sid_a, 3, 100);
	dp_stats_get(dp, &a);
	send_chunk(&ma, 0, SPORT, SEAL_NONE);
	TH_CHECK(silence());
	expect_refused(&a, DP_DROP_PROTO, PROTO_E_BAD_CRC);
	expect_echo(&ma, SPORT, SEAL_CRC, NULL);
}

static int
make_dp(uint8_t auth, bool integrity, const struct proto_keys *k)
{
	struct dp_config cfg;
	struct tg_err err = { 0 };

	if (dptk_port_make(&port, 1024) != 0)
		return -1;
	dptk_config(&cfg, &port);
	cfg.gap_timeout_us = 2000;
	cfg.msg_timeout_us = 50000;
	cfg.auth = auth;
	cfg.integrity_required = integrity;
	cfg.keys = k;
	if (dp_create(&dp, &cfg, &err) != 0) {
		fprintf(stderr, "dp_create: %s\n", err.msg);
		return -1;
	}
	dp_mac_get(dp, port.mac);
	return 0;
}

int
main(void)
{
	const char *text = "# test devices\n5 " KEY_A "\n6 " KEY_B "\n";
	struct tg_err err;

	for (unsigned i = 0; i < PROTO_KEY_LEN; i++) {
		key_a[i] = (uint8_t)i;
		key_b[i] = 0xa5;
	}
	if (dptk_eal_init("dpauth") != 0 ||
	    proto_keys_parse(&keys, text, strlen(text), "keys", &err) != 0 ||
	    make_dp(DP_AUTH_REQUIRED, false, keys) != 0) {
		fprintf(stderr, "EAL, keys or ring port unavailable\n");
		printf("0 passed, 1 failed, 0 skipped\n");
		return 1;
	}
	TH_RUN(test_signed_device_served_and_answers_tagged);
	TH_RUN(test_unverified_bad_tags_dropped_silently);
	TH_RUN(test_verified_bad_tags_answered_unauthenticated);
	TH_RUN(test_replayed_chunks_refused);
	TH_RUN(test_replayed_hello_refused);
	TH_RUN(test_key_swap);
	dp_destroy(dp);
	dptk_port_free(&port);
	proto_keys_free(keys);

	if (make_dp(DP_AUTH_OFF, true, NULL) != 0) {
		printf("%d passed, %d failed, 0 skipped\n", th_passed, th_failed + 1);
		return 1;
	}
	TH_RUN(test_crc_sealed_served_and_answered_with_crc);
	TH_RUN(test_corrupted_chunk_dropped_then_resend_served);
	TH_RUN(test_unsealed_refused_when_integrity_required);
	dp_destroy(dp);
	dptk_port_free(&port);
	dp_eal_cleanup();
	TH_DONE();
}
