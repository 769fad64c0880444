/*
 * Sessions (docs/protocol.md 4 and 12.1): a HELLO opens one (or re-binds it to a new source
 * address) and is answered with a HELLO_REPLY holding the session id, the gateway's limits and
 * a page of the catalog; every other datagram must name a session bound to its source address
 * (a verified source) to be served. Sessions idle for session_ttl_ms are forgotten.
 *
 * Hot path (dp_hello_input, dp_session_verify, dp_sessions_expire): the owner lcore only; no
 * malloc, no log, no lock; a fixed pool per lcore. Init at the end.
 *
 * With several RX queues a session lives on the lcore its HELLO reached; RSS keeps its
 * address there. A device that moves (NAT rebinding) may land on another lcore, which does
 * not know the session: it is answered UNKNOWN_SESSION and opens a new one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>

#include "dataplane/dp_int.h"

/* ---- session ids: SipHash-2-4 of a counter under a per-lcore random key ---- */

static inline uint64_t
dp_rotl(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

#define DP_SIPROUND(v0, v1, v2, v3)					\
	do {								\
		v0 += v1; v1 = dp_rotl(v1, 13); v1 ^= v0; v0 = dp_rotl(v0, 32); \
		v2 += v3; v3 = dp_rotl(v3, 16); v3 ^= v2;		\
		v0 += v3; v3 = dp_rotl(v3, 21); v3 ^= v0;		\
		v2 += v1; v1 = dp_rotl(v1, 17); v1 ^= v2; v2 = dp_rotl(v2, 32); \
	} while (0)

/* SipHash-2-4 of one 8-byte message m under key k (Aumasson and Bernstein). */
static uint64_t
dp_siphash(const uint64_t k[2], uint64_t m)
{
	uint64_t v0 = k[0] ^ 0x736f6d6570736575ull, v1 = k[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = k[0] ^ 0x6c7967656e657261ull, v3 = k[1] ^ 0x7465646279746573ull;
	uint64_t b = (uint64_t)8 << 56;

	v3 ^= m;
	DP_SIPROUND(v0, v1, v2, v3);
	DP_SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v3 ^= b;
	DP_SIPROUND(v0, v1, v2, v3);
	DP_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		DP_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/*
 * A new session id: random-looking to anyone without the lcore's key (an off-path sender
 * cannot guess a live one), non-zero, not in use here.
 */
static uint64_t
dp_session_id_new(struct dp_reasm *re)
{
	uint64_t id;

	do
		id = dp_siphash(re->sid_key, re->sid_seq++);
	while (id == 0 || rte_hash_lookup(re->sessions, &id) >= 0);
	return id;
}

/* ---- the table ---- */

static inline void
dp_session_touch(struct dp_reasm *re, struct dp_session *s, uint64_t now)
{
	s->last_tsc = now;
	TAILQ_REMOVE(&re->lru, s, lru);
	TAILQ_INSERT_TAIL(&re->lru, s, lru);
}

static void
dp_session_forget(struct dp_reasm *re, struct dp_session *s)
{
	rte_hash_del_key(re->sessions, &s->id);
	TAILQ_REMOVE(&re->lru, s, lru);
	re->free_sess[re->n_free_sess++] = s;
}

/*
 * Forget sessions idle for the TTL, oldest first. One holding messages is still in use
 * (its slot's answer goes to it): it counts as touched now.
 */
void
dp_sessions_expire(struct dp_lcore *lc, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_session *s;
	unsigned n = re->n_sess;	/* each session looked at once at most */

	while (n-- != 0 && (s = TAILQ_FIRST(&re->lru)) != NULL &&
	       now - s->last_tsc >= re->ttl_tsc) {
		if (s->inflight != 0) {
			dp_session_touch(re, s, now);
			continue;
		}
		dp_session_forget(re, s);
		lc->stats.sessions_expired++;
	}
}

struct dp_session *
dp_session_verify(struct dp_lcore *lc, const struct dp_peer *from, const struct proto_hdr *h,
		  uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_session *s;
	void *v;

	if (h->session_id == 0 || rte_hash_lookup_data(re->sessions, &h->session_id, &v) < 0)
		return NULL;
	s = v;
	if (s->client_id != h->client_id || s->peer.ip != from->ip || s->peer.port != from->port)
		return NULL;
	s->peer.mac = from->mac;	/* the next hop back may change; the address may not */
	dp_session_touch(re, s, now);
	return s;
}

/* ---- HELLO ---- */

static uint16_t
dp_u16_clamp(uint64_t v)
{
	return v > UINT16_MAX ? UINT16_MAX : (uint16_t)v;
}

/* The HELLO_REPLY for session s, answering the HELLO m of in_len bytes. */
static void
dp_hello_reply(struct dp_lcore *lc, struct dp_session *s, const struct proto_msg *m,
	       uint16_t in_len)
{
	const struct dp *dp = lc->dp;
	const struct dp_config *cfg = &dp->cfg;
	const struct dp_catalog *cat = dp_catalog_get(dp);	/* this pass's (RCU) */
	const struct proto_hello *hello = &m->u.hello;
	struct proto_hello_reply hr;
	struct proto_hdr h;
	struct rte_mbuf *mb;
	unsigned room, start;
	uint8_t *buf;
	int n;

	memset(&h, 0, sizeof(h));
	h.client_id = m->h.client_id;
	h.request_id = m->h.request_id;	/* the HELLO's nonce */
	h.session_id = s->id;
	/* Never longer than the HELLO, nor than either side's max_dgram (anti-amplification). */
	room = proto_hello_reply_room(in_len, lc->re.plim.max_dgram, hello->max_dgram);
	start = RTE_MIN((unsigned)hello->catalog_start, cat->n);
	memset(&hr, 0, sizeof(hr));
	hr.session_ttl_ms = cfg->session_ttl_ms;
	hr.max_msg_bytes = lc->re.plim.max_msg_bytes;
	hr.catalog_gen = cat->gen;
	hr.max_dgram = lc->re.plim.max_dgram;
	hr.max_chunks = lc->re.plim.max_chunks;
	hr.max_inflight = dp_u16_clamp(cfg->limits.max_inflight_client);
	hr.nack_gap_ms = dp_u16_clamp(RTE_MAX(1u, (cfg->gap_timeout_us + 999) / 1000));
	hr.reasm_timeout_ms = dp_u16_clamp(RTE_MAX(1u, cfg->msg_timeout_us / 1000));
	hr.catalog_total = (uint16_t)cat->n;
	hr.catalog_start = (uint16_t)start;
	hr.catalog_count = (uint16_t)RTE_MIN(room, cat->n - start);
	buf = dp_tx_udp_alloc(lc, &mb);
	if (buf == NULL)
		return;
	n = proto_encode_hello_reply(buf, lc->max_payload, &h, &hr, cat->e + start);
	if (n < 0) {	/* cannot happen: catalog entries are checked by dp_catalog_set() */
		rte_pktmbuf_free(mb);
		return;
	}
	dp_tx_udp_send(lc, mb, &s->peer, (uint16_t)n);
	lc->stats.hello_replies++;
}

/*
 * A HELLO: session 0 opens a session bound to the HELLO's client id and source address; a
 * known session (same client id) is re-bound to the HELLO's source. Either way the device's
 * profile is kept and a HELLO_REPLY sent.
 */
void
dp_hello_input(struct dp_lcore *lc, const struct dp_peer *from, const struct proto_msg *m,
	       const uint8_t *in, uint16_t in_len, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_session *s;
	void *v;

	if (m->h.session_id != 0) {
		if (rte_hash_lookup_data(re->sessions, &m->h.session_id, &v) < 0 ||
		    ((struct dp_session *)v)->client_id != m->h.client_id) {
			DP_DROP(lc, SESSION_UNKNOWN);
			dp_reply_error(lc, from, in, in_len, PROTO_ST_UNKNOWN_SESSION, PROTO_OK);
			return;
		}
		s = v;
		s->peer = *from;
		dp_session_touch(re, s, now);
	} else {
		if (re->n_free_sess == 0)
			dp_sessions_expire(lc, now);
		if (re->n_free_sess == 0) {
			DP_DROP(lc, SESSION_FULL);
			dp_reply_error(lc, from, in, in_len, PROTO_ST_OVERLOADED, PROTO_E_SESSION_FULL);
			return;
		}
		s = re->free_sess[re->n_free_sess - 1];
		s->id = dp_session_id_new(re);
		/* The table holds every session of the pool: the add cannot fail. */
		if (rte_hash_add_key_data(re->sessions, &s->id, s) < 0) {
			DP_DROP(lc, SESSION_FULL);
			dp_reply_error(lc, from, in, in_len, PROTO_ST_OVERLOADED, PROTO_E_SESSION_FULL);
			return;
		}
		re->n_free_sess--;
		s->client_id = m->h.client_id;
		s->inflight = 0;
		s->peer = *from;
		s->last_tsc = now;
		TAILQ_INSERT_TAIL(&re->lru, s, lru);
		lc->stats.sessions_opened++;
	}
	s->profile = m->u.hello;
	dp_hello_reply(lc, s, m, in_len);
}

/* ---- init path ---- */

void
dp_sessions_free(struct dp_lcore *lc)
{
	struct dp_reasm *re = &lc->re;

	rte_hash_free(re->sessions);
	free(re->sess_mem);
	free(re->free_sess);
	re->sessions = NULL;
	re->sess_mem = NULL;
	re->free_sess = NULL;
}

int
dp_sessions_init(struct dp_lcore *lc, unsigned n_sess, struct tg_err *err)
{
	static unsigned seq;	/* hash names are global to the process */
	struct dp_reasm *re = &lc->re;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters p = {
		.name = name,
		.entries = RTE_MAX(n_sess, 8u),	/* rte_hash takes no fewer (one bucket) */
		.key_len = sizeof(uint64_t),
		.hash_func = rte_hash_crc,
		.socket_id = (int)rte_socket_id(),
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	};

	if (getrandom(re->sid_key, sizeof(re->sid_key), 0) != (ssize_t)sizeof(re->sid_key))
		return tg_err_set(err, -EIO, "dataplane: no random key for session ids: %s",
				  strerror(errno));
	re->n_sess = n_sess;
	re->ttl_tsc = rte_get_tsc_hz() / 1000 * lc->dp->cfg.session_ttl_ms;
	TAILQ_INIT(&re->lru);
	re->sess_mem = calloc(n_sess, sizeof(*re->sess_mem));
	re->free_sess = calloc(n_sess, sizeof(*re->free_sess));
	snprintf(name, sizeof(name), "dp_sess_%u_%u", lc->queue_id, seq++);
	re->sessions = rte_hash_create(&p);
	if (re->sess_mem == NULL || re->free_sess == NULL || re->sessions == NULL) {
		dp_sessions_free(lc);
		return tg_err_set(err, -ENOMEM, "dataplane: queue %u: %u sessions: out of memory",
				  lc->queue_id, n_sess);
	}
	for (unsigned i = 0; i < n_sess; i++)
		re->free_sess[i] = &re->sess_mem[n_sess - 1 - i];
	re->n_free_sess = n_sess;
	return 0;
}
