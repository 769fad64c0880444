/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sessions (docs/protocol.md 4, 12.1 and 12.6): a HELLO opens one and is answered with a
 * HELLO_REPLY holding the session id, the gateway's limits and a page of the catalog; every
 * other datagram must name a session bound to its source address (a verified source) to be
 * served. Address validation before state, as QUIC does it: a session is unverified until a
 * datagram carrying its id comes from its address, and a HELLO naming it from another address
 * only gets a path challenge (a 72-byte HELLO_REPLY with a token bound to session, address and
 * port); the session moves when that token comes back from there. A full table evicts the
 * oldest unverified session first, never a verified one; a retransmitted HELLO gets its
 * session again; each source IP holds at most max_sessions_source sessions. Sessions idle for
 * session_ttl_ms are forgotten.
 *
 * Hot path (dp_hello_input, dp_session_verify, dp_sessions_expire): the owner lcore only; no
 * malloc, no log, no lock; fixed pools per lcore. Init at the end.
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

/* SipHash-2-4 of the n 8-byte words at m under key k (Aumasson and Bernstein). */
static uint64_t
dp_siphash(const uint64_t k[2], const uint64_t *m, unsigned n)
{
	uint64_t v0 = k[0] ^ 0x736f6d6570736575ull, v1 = k[1] ^ 0x646f72616e646f6dull;
	uint64_t v2 = k[0] ^ 0x6c7967656e657261ull, v3 = k[1] ^ 0x7465646279746573ull;
	uint64_t b = (uint64_t)(8 * n) << 56;

	for (unsigned i = 0; i < n; i++) {
		v3 ^= m[i];
		DP_SIPROUND(v0, v1, v2, v3);
		DP_SIPROUND(v0, v1, v2, v3);
		v0 ^= m[i];
	}
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

	do {
		uint64_t seq = re->sid_seq++;

		id = dp_siphash(re->sid_key, &seq, 1);
	} while (id == 0 || rte_hash_lookup(re->sessions, &id) >= 0);
	return id;
}

/*
 * The path token of session s for address to in epoch e: bound to all three and to the
 * session's move count (so it is spent once the session moved), unguessable without the
 * lcore's key, never 0. No state is kept per challenge.
 */
static uint32_t
dp_path_token(const struct dp_reasm *re, const struct dp_session *s, const struct dp_peer *to,
	      uint64_t e)
{
	uint64_t m[3] = {
		s->id,
		(uint64_t)to->ip << 32 | (uint64_t)to->port << 16,
		(uint64_t)s->moves << 32 | (uint32_t)e,
	};
	uint64_t h = dp_siphash(re->tok_key, m, 3);
	uint32_t t = (uint32_t)(h ^ (h >> 32));

	return t != 0 ? t : 1;
}

/* A token from this epoch or the one before: it lives one to two epochs. */
static bool
dp_path_token_ok(const struct dp_reasm *re, const struct dp_session *s,
		 const struct dp_peer *from, uint32_t token, uint64_t now)
{
	uint64_t e = now / re->tok_tsc;

	return token == dp_path_token(re, s, from, e) ||
	       (e > 0 && token == dp_path_token(re, s, from, e - 1));
}

static inline bool
dp_peer_same(const struct dp_peer *a, const struct dp_peer *b)
{
	return a->ip == b->ip && a->port == b->port;
}

/* ---- sources ---- */

static struct dp_source *
dp_source_find(struct dp_reasm *re, rte_be32_t ip)
{
	void *v;

	return rte_hash_lookup_data(re->sources, &ip, &v) >= 0 ? v : NULL;
}

/* The entry of ip, made if new. Every source has a session and there is a free session for
 * the caller, so the pool (one per session) always has one. */
static struct dp_source *
dp_source_get(struct dp_reasm *re, rte_be32_t ip)
{
	struct dp_source *src = dp_source_find(re, ip);

	if (src != NULL)
		return src;
	if (re->n_free_src == 0)
		return NULL;
	src = re->free_src[re->n_free_src - 1];
	if (rte_hash_add_key_data(re->sources, &ip, src) < 0)
		return NULL;
	re->n_free_src--;
	src->ip = ip;
	src->sessions = 0;
	src->open = 0;
	return src;
}

/* Session s leaves its source (forgotten, or moving). */
static void
dp_source_leave(struct dp_reasm *re, struct dp_session *s)
{
	struct dp_source *src = s->src;

	src->sessions--;
	if (s->open != 0) {
		src->open -= s->open;
		if (src->open == 0)
			re->n_src_open--;
	}
	s->src = NULL;
	if (src->sessions == 0) {
		rte_hash_del_key(re->sources, &src->ip);
		re->free_src[re->n_free_src++] = src;
	}
}

static void
dp_source_join(struct dp_reasm *re, struct dp_session *s, struct dp_source *src)
{
	s->src = src;
	src->sessions++;
	if (s->open != 0) {
		if (src->open == 0)
			re->n_src_open++;
		src->open += s->open;
	}
}

/* ---- the table ---- */

static inline struct dp_session_list *
dp_session_list(struct dp_reasm *re, const struct dp_session *s)
{
	return s->verified ? &re->lru : &re->unv;
}

static inline void
dp_session_touch(struct dp_reasm *re, struct dp_session *s, uint64_t now)
{
	struct dp_session_list *l = dp_session_list(re, s);

	s->last_tsc = now;
	TAILQ_REMOVE(l, s, lru);
	TAILQ_INSERT_TAIL(l, s, lru);
}

/* A datagram carrying s's id came from s's address: the address receives there. */
static void
dp_session_verified(struct dp_reasm *re, struct dp_session *s, uint64_t now)
{
	if (!s->verified) {
		TAILQ_REMOVE(&re->unv, s, lru);
		s->verified = true;
		TAILQ_INSERT_TAIL(&re->lru, s, lru);
	}
	dp_session_touch(re, s, now);
}

static void
dp_hello_key(struct dp_hello_key *k, uint32_t client_id, uint32_t nonce, const struct dp_peer *p)
{
	memset(k, 0, sizeof(*k));
	k->client_id = client_id;
	k->nonce = nonce;
	k->ip = p->ip;
	k->port = p->port;
}

static void
dp_session_forget(struct dp_reasm *re, struct dp_session *s)
{
	struct dp_hello_key k;
	void *v;

	dp_hello_key(&k, s->client_id, s->hello_nonce, &s->hello_from);
	/* A later session may have taken the key over: delete only our own entry. */
	if (rte_hash_lookup_data(re->hellos, &k, &v) >= 0 && v == s)
		rte_hash_del_key(re->hellos, &k);
	rte_hash_del_key(re->sessions, &s->id);
	TAILQ_REMOVE(dp_session_list(re, s), s, lru);
	dp_source_leave(re, s);
	re->free_sess[re->n_free_sess++] = s;
}

/* Forget idle sessions of list l, oldest first; one holding messages counts as touched. */
static void
dp_sessions_expire_list(struct dp_lcore *lc, struct dp_session_list *l, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_session *s;
	unsigned n = re->n_sess;	/* each session looked at once at most */

	while (n-- != 0 && (s = TAILQ_FIRST(l)) != NULL && now - s->last_tsc >= re->ttl_tsc) {
		if (s->inflight != 0) {
			dp_session_touch(re, s, now);
			continue;
		}
		dp_session_forget(re, s);
		lc->stats.sessions_expired++;
	}
}

/*
 * Forget sessions idle for the TTL, oldest first. One holding messages is still in use
 * (its slot's answer goes to it): it counts as touched now.
 */
void
dp_sessions_expire(struct dp_lcore *lc, uint64_t now)
{
	dp_sessions_expire_list(lc, &lc->re.lru, now);
	dp_sessions_expire_list(lc, &lc->re.unv, now);
}

struct dp_session *
dp_session_verify(struct dp_lcore *lc, const struct dp_peer *from, const struct proto_hdr *h,
		  uint64_t now, enum proto_reason *why)
{
	struct dp_reasm *re = &lc->re;
	struct dp_session *s;
	void *v;

	*why = PROTO_OK;
	if (h->session_id == 0 || rte_hash_lookup_data(re->sessions, &h->session_id, &v) < 0)
		return NULL;
	s = v;
	if (s->client_id != h->client_id)
		return NULL;
	if (!dp_peer_same(&s->peer, from)) {
		*why = PROTO_E_PATH_UNVERIFIED;
		return NULL;
	}
	s->peer.mac = from->mac;	/* the next hop back may change; the address may not */
	dp_session_verified(re, s, now);
	return s;
}

/* ---- HELLO ---- */

static uint16_t
dp_u16_clamp(uint64_t v)
{
	return v > UINT16_MAX ? UINT16_MAX : (uint16_t)v;
}

/*
 * The HELLO_REPLY for session s to address to, answering the HELLO m of in_len bytes. With
 * a path token (a challenge to an address the session is not bound to) it carries no
 * catalog: 72 bytes, and nothing the HELLO's sender did not know.
 */
static void
dp_hello_reply(struct dp_lcore *lc, struct dp_session *s, const struct dp_peer *to,
	       const struct proto_msg *m, uint16_t in_len, uint32_t token)
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
	room = token != 0 ? 0 : proto_hello_reply_room(in_len, lc->re.plim.max_dgram,
							hello->max_dgram);
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
	hr.path_token = token;
	buf = dp_tx_udp_alloc(lc, &mb);
	if (buf == NULL)
		return;
	n = proto_encode_hello_reply(buf, lc->max_payload, &h, &hr, cat->e + start);
	if (n < 0) {	/* cannot happen: catalog entries are checked by dp_catalog_set() */
		rte_pktmbuf_free(mb);
		return;
	}
	dp_tx_udp_send(lc, mb, to, (uint16_t)n);
	lc->stats.hello_replies++;
	lc->stats.path_challenges += token != 0;
}

/* Move s to from, which echoed its token. @return false: from's IP is at its session cap. */
static bool
dp_session_move(struct dp_lcore *lc, struct dp_session *s, const struct dp_peer *from)
{
	struct dp_reasm *re = &lc->re;
	struct dp_source *src = dp_source_find(re, from->ip);

	if (src != s->src) {
		if (src != NULL && src->sessions >= lc->dp->cfg.limits.max_sessions_source)
			return false;
		dp_source_leave(re, s);
		/* s's old entry may just have been freed: there is one for from. */
		dp_source_join(re, s, dp_source_get(re, from->ip));
	}
	s->peer = *from;
	s->moves++;	/* every token issued so far is spent */
	lc->stats.sessions_moved++;
	return true;
}

/*
 * A HELLO naming session s. From its address: it proves the address (the id was sent only
 * there) and is served. From elsewhere with the right token: the session moves there. From
 * elsewhere without: a path challenge to that address, and the session stays where it is.
 */
static void
dp_hello_known(struct dp_lcore *lc, struct dp_session *s, const struct dp_peer *from,
	       const struct proto_msg *m, const uint8_t *in, uint16_t in_len, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	uint32_t token = m->u.hello.path_token;

	if (!dp_peer_same(&s->peer, from)) {
		if (token == 0 || !dp_path_token_ok(re, s, from, token, now)) {
			if (token != 0)
				DP_DROP(lc, PATH_TOKEN);
			dp_hello_reply(lc, s, from, m, in_len,
				       dp_path_token(re, s, from, now / re->tok_tsc));
			return;
		}
		if (!dp_session_move(lc, s, from)) {
			DP_DROP(lc, SOURCE_SESSIONS);
			dp_reply_error(lc, from, in, in_len, PROTO_ST_OVERLOADED,
				       PROTO_E_SESSION_FULL);
			return;
		}
	}
	s->peer.mac = from->mac;
	dp_session_verified(re, s, now);
	s->profile = m->u.hello;
	dp_hello_reply(lc, s, from, m, in_len, 0);
}

/* A free session, making room if the table is full: idle ones expire, then the oldest
 * unverified one is evicted. NULL when every session is verified and in use. */
static struct dp_session *
dp_session_take(struct dp_lcore *lc, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_session *s;

	if (re->n_free_sess == 0)
		dp_sessions_expire(lc, now);
	if (re->n_free_sess == 0 && (s = TAILQ_FIRST(&re->unv)) != NULL) {
		/* Unverified: it holds no message (a datagram from its address would have
		 * verified it), so it goes without a trace. */
		dp_session_forget(re, s);
		lc->stats.sessions_evicted++;
	}
	return re->n_free_sess != 0 ? re->free_sess[re->n_free_sess - 1] : NULL;
}

/* A HELLO with session 0: its session again if it is a retransmission, else a new one. */
static struct dp_session *
dp_session_open(struct dp_lcore *lc, const struct dp_peer *from, const struct proto_msg *m,
		const uint8_t *in, uint16_t in_len, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_source *src = dp_source_find(re, from->ip);
	struct dp_hello_key k;
	struct dp_session *s;
	void *v;

	dp_hello_key(&k, m->h.client_id, m->h.request_id, from);
	if (rte_hash_lookup_data(re->hellos, &k, &v) >= 0 &&
	    dp_peer_same(&((struct dp_session *)v)->peer, from)) {
		lc->stats.hello_dups++;
		return v;
	}
	if (src != NULL && src->sessions >= lc->dp->cfg.limits.max_sessions_source) {
		DP_DROP(lc, SOURCE_SESSIONS);
		dp_reply_error(lc, from, in, in_len, PROTO_ST_OVERLOADED, PROTO_E_SESSION_FULL);
		return NULL;
	}
	s = dp_session_take(lc, now);
	if (s == NULL) {
		DP_DROP(lc, SESSION_FULL);
		dp_reply_error(lc, from, in, in_len, PROTO_ST_OVERLOADED, PROTO_E_SESSION_FULL);
		return NULL;
	}
	s->id = dp_session_id_new(re);
	/* The tables hold every session of the pool: the adds cannot fail. */
	if (rte_hash_add_key_data(re->sessions, &s->id, s) < 0) {
		DP_DROP(lc, SESSION_FULL);
		dp_reply_error(lc, from, in, in_len, PROTO_ST_OVERLOADED, PROTO_E_SESSION_FULL);
		return NULL;
	}
	rte_hash_add_key_data(re->hellos, &k, s);	/* replaces an entry of a moved session */
	re->n_free_sess--;
	s->client_id = m->h.client_id;
	s->hello_nonce = m->h.request_id;
	s->inflight = 0;
	s->open = 0;
	s->replay = (struct dp_replay){ .any = false };
	s->moves = 0;
	s->up_kbps = s->up_n = s->rtt_us = s->rtt_n = 0;
	s->verified = false;
	s->peer = *from;
	s->hello_from = *from;
	s->last_tsc = now;
	dp_source_join(re, s, dp_source_get(re, from->ip));
	TAILQ_INSERT_TAIL(&re->unv, s, lru);
	lc->stats.sessions_opened++;
	return s;
}

/*
 * A HELLO: session 0 opens a session bound to the HELLO's client id and source address (or
 * finds the one a retransmission of it opened); a known session is served, challenged or
 * moved (dp_hello_known()). The device's profile is kept from HELLOs of its address only.
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
		dp_hello_known(lc, v, from, m, in, in_len, now);
		return;
	}
	s = dp_session_open(lc, from, m, in, in_len, now);
	if (s == NULL)
		return;
	s->profile = m->u.hello;
	dp_hello_reply(lc, s, from, m, in_len, 0);
}

/* ---- init path ---- */

void
dp_sessions_free(struct dp_lcore *lc)
{
	struct dp_reasm *re = &lc->re;

	rte_hash_free(re->sessions);
	rte_hash_free(re->hellos);
	rte_hash_free(re->sources);
	free(re->sess_mem);
	free(re->free_sess);
	free(re->src_mem);
	free(re->free_src);
	re->sessions = NULL;
	re->hellos = NULL;
	re->sources = NULL;
	re->sess_mem = NULL;
	re->free_sess = NULL;
	re->src_mem = NULL;
	re->free_src = NULL;
}

static struct rte_hash *
dp_sessions_hash(const char *what, unsigned q, unsigned n, uint32_t key_len)
{
	static unsigned seq;	/* hash names are global to the process */
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters p = {
		.name = name,
		.entries = RTE_MAX(n, 8u),	/* rte_hash takes no fewer (one bucket) */
		.key_len = key_len,
		.hash_func = rte_hash_crc,
		.socket_id = (int)rte_socket_id(),
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	};

	snprintf(name, sizeof(name), "dp_%s_%u_%u", what, q, seq++);
	return rte_hash_create(&p);
}

int
dp_sessions_init(struct dp_lcore *lc, unsigned n_sess, struct tg_err *err)
{
	struct dp_reasm *re = &lc->re;
	unsigned q = lc->queue_id;

	if (getrandom(re->sid_key, sizeof(re->sid_key), 0) != (ssize_t)sizeof(re->sid_key) ||
	    getrandom(re->tok_key, sizeof(re->tok_key), 0) != (ssize_t)sizeof(re->tok_key))
		return tg_err_set(err, -EIO, "dataplane: no random keys for sessions: %s",
				  strerror(errno));
	re->n_sess = n_sess;
	re->ttl_tsc = rte_get_tsc_hz() / 1000 * lc->dp->cfg.session_ttl_ms;
	/* A challenge is answered within a round trip: 2 s epochs let a token live 2 to 4 s. */
	re->tok_tsc = 2 * rte_get_tsc_hz();
	TAILQ_INIT(&re->lru);
	TAILQ_INIT(&re->unv);
	re->sess_mem = calloc(n_sess, sizeof(*re->sess_mem));
	re->free_sess = calloc(n_sess, sizeof(*re->free_sess));
	re->src_mem = calloc(n_sess, sizeof(*re->src_mem));
	re->free_src = calloc(n_sess, sizeof(*re->free_src));
	re->sessions = dp_sessions_hash("sess", q, n_sess, sizeof(uint64_t));
	re->hellos = dp_sessions_hash("hello", q, n_sess, sizeof(struct dp_hello_key));
	re->sources = dp_sessions_hash("src", q, n_sess, sizeof(rte_be32_t));
	if (re->sess_mem == NULL || re->free_sess == NULL || re->src_mem == NULL ||
	    re->free_src == NULL || re->sessions == NULL || re->hellos == NULL ||
	    re->sources == NULL) {
		dp_sessions_free(lc);
		return tg_err_set(err, -ENOMEM, "dataplane: queue %u: %u sessions: out of memory",
				  q, n_sess);
	}
	for (unsigned i = 0; i < n_sess; i++) {
		re->free_sess[i] = &re->sess_mem[n_sess - 1 - i];
		re->free_src[i] = &re->src_mem[n_sess - 1 - i];
	}
	re->n_free_sess = n_sess;
	re->n_free_src = n_sess;
	return 0;
}
