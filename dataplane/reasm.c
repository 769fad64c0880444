/*
 * Reassembly: REQUEST chunks decoded with proto's decoder and placed into their message's
 * slot on arrival (decompressed straight to their raw offset); NACKs after a gap of silence,
 * a timeout that frees; completed messages answered by the echo model or handed to the
 * consumer; answers posted back by workers, encoded and sent.
 *
 * Hot path (dp_udp_input, dp_reasm_timers, dp_resp_drain): the owner lcore only; no malloc,
 * no log, no lock. Slots and tombstones come from pools sized at init; a bound
 * that bites is a counted refusal with an ERROR reply, never growth. Init at the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>

#include "dataplane/dp_int.h"

/* A msgs-table value is a slot pointer, or (low bit set) the index of a tombstone. */
static inline void *
dp_tomb_val(uint32_t i)
{
	return (void *)(((uintptr_t)i << 1) | 1u);
}

static inline bool
dp_is_tomb(const void *v)
{
	return ((uintptr_t)v & 1u) != 0;
}

static inline bool
dp_bit(const uint64_t *map, unsigned i)
{
	return (map[i / 64] >> (i % 64)) & 1u;
}

static inline uint64_t
dp_tsc_to_ns(uint64_t tsc)
{
	return (uint64_t)((double)tsc * 1e9 / (double)rte_get_tsc_hz());
}

/* ---- replies ---- */

/*
 * The ERROR answering datagram in, with status st and reason r; proto_error_reply() keeps
 * it no longer than in, and refuses to answer less than 48 bytes (the drop was counted).
 */
void
dp_reply_error(struct dp_lcore *lc, const struct dp_peer *to, const uint8_t *in,
	       uint16_t in_len, enum proto_status st, enum proto_reason r)
{
	struct rte_mbuf *m;
	uint8_t *buf = dp_tx_udp_alloc(lc, &m);
	int n;

	if (buf == NULL)
		return;
	n = proto_error_reply(buf, lc->max_payload, in, in_len, st, r);
	if (n < 0) {
		rte_pktmbuf_free(m);
		return;
	}
	dp_tx_udp_send(lc, m, to, (uint16_t)n);
	lc->stats.errors_sent++;
}

static inline void
dp_reply_reason(struct dp_lcore *lc, const struct dp_peer *to, const uint8_t *in,
		uint16_t in_len, enum proto_reason r)
{
	dp_reply_error(lc, to, in, in_len, proto_reason_status(r), r);
}

static void
dp_slot_hdr(const struct dp_slot *s, struct proto_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->client_id = s->pub.hdr.client_id;
	h->request_id = s->pub.hdr.request_id;
	h->session_id = s->pub.hdr.session_id;
}

/* The tombstone of a finished message, NULL when the ring wrapped while the consumer held
 * the request (it was evicted). */
static struct dp_tomb *
dp_slot_tomb(struct dp_reasm *re, const struct dp_slot *s)
{
	struct dp_tomb *t = &re->tombs[s->tomb];

	if (s->tomb >= re->n_tombs_max || memcmp(&t->key, &s->key, sizeof(t->key)) != 0)
		return NULL;
	return t;
}

/* Keep a copy of the answer to a finished message in its tombstone, if it still has one. */
static void
dp_tomb_keep(struct dp_reasm *re, const struct dp_slot *s, const uint8_t *buf, int n)
{
	struct dp_tomb *t = dp_slot_tomb(re, s);

	if (t == NULL)
		return;
	if (n > DP_ANSWER_MAX)
		return;	/* a long answer is not kept: a late chunk only gets counted */
	memcpy(t->answer, buf, (size_t)n);
	t->answer_len = (uint16_t)n;
	t->keep_chunks = 0;
	t->resent_tsc = rte_rdtsc();	/* sent now: the next copy a gap later at the earliest */
}

/* A copy of len bytes at data as one datagram to to; retransmit: flag RETRANSMIT set. */
static bool
dp_send_copy(struct dp_lcore *lc, const uint8_t *data, uint16_t len, const struct dp_peer *to,
	     bool retransmit)
{
	struct rte_mbuf *m;
	uint8_t *buf = dp_tx_udp_alloc(lc, &m);

	if (buf == NULL)
		return false;
	memcpy(buf, data, len);
	if (retransmit)
		buf[PROTO_OFF_FLAGS + 1] |= PROTO_F_RETRANSMIT;	/* low byte, big endian */
	dp_tx_udp_send(lc, m, to, len);
	return true;
}

/*
 * An ERROR about a whole message (48 bytes: smaller than any chunk of it), with the status
 * the spec gives reason r (PROTO_OK: INTERNAL, a fault of ours). keep: it is the message's
 * answer, for its tombstone.
 */
static void
dp_slot_error(struct dp_lcore *lc, const struct dp_slot *s, enum proto_reason r, bool keep)
{
	struct proto_error e = {
		.status = (uint8_t)(r == PROTO_OK ? PROTO_ST_INTERNAL : proto_reason_status(r)),
		.reason = (uint8_t)r,
		.ref_type = PROTO_T_REQUEST,
		.min_version = PROTO_VERSION_MIN,
		.max_version = PROTO_VERSION_MAX,
		.chunk_index = 0xFFFF,
	};
	struct proto_hdr h;
	struct rte_mbuf *m;
	uint8_t *buf = dp_tx_udp_alloc(lc, &m);
	int n;

	if (buf == NULL)
		return;
	dp_slot_hdr(s, &h);
	n = proto_encode_error(buf, lc->max_payload, &h, &e);
	if (n < 0) {
		rte_pktmbuf_free(m);
		return;
	}
	if (keep)
		dp_tomb_keep(&lc->re, s, buf, n);
	dp_tx_udp_send(lc, m, &s->sess->peer, (uint16_t)n);
	lc->stats.errors_sent++;
}

/*
 * NACK the chunks still missing: at most plim.max_nack_ranges ranges, the first ones; the
 * next NACK lists what is still missing then. The NACKs of an unfinished message, and the
 * ERROR that may end it, never add up to more bytes than its datagrams brought
 * (docs/protocol.md 12.4): a spoofed half-message cannot make the gateway send more than it
 * got.
 */
static void
dp_send_nack(struct dp_lcore *lc, struct dp_slot *s)
{
	struct proto_nack nk;
	struct proto_hdr h;
	struct rte_mbuf *m;
	uint8_t *buf;
	unsigned len;
	int n;

	if (proto_nack_from_bitmap(&nk, s->received, s->pub.req.c.count,
				   lc->re.plim.max_nack_ranges) == 0)
		return;
	/* The 48 bytes kept back are for the ERROR a timeout or an eviction sends. */
	len = PROTO_NACK_LEN + PROTO_NACK_RANGE_LEN * (unsigned)nk.n_ranges;
	if ((uint64_t)s->nack_bytes + len + PROTO_ERROR_LEN > s->rx_bytes) {
		DP_DROP(lc, NACK_BUDGET);
		return;
	}
	buf = dp_tx_udp_alloc(lc, &m);
	if (buf == NULL)
		return;
	dp_slot_hdr(s, &h);
	n = proto_encode_nack(buf, lc->max_payload, &h, &nk);
	if (n < 0) {
		rte_pktmbuf_free(m);
		return;
	}
	dp_tx_udp_send(lc, m, &s->sess->peer, (uint16_t)n);
	s->nack_bytes += (uint32_t)n;
	lc->stats.nacks_sent++;
}

/* ---- slots and tombstones ---- */

static inline void
dp_timer_arm(struct dp_reasm *re, struct dp_slot *s, uint64_t now)
{
	s->deadline_tsc = now + re->gap_tsc;
	TAILQ_INSERT_TAIL(&re->open, s, timer);
}

/* Give the slot back; its session lets go of it. */
static void
dp_slot_put(struct dp_lcore *lc, struct dp_slot *s)
{
	struct dp_reasm *re = &lc->re;

	s->sess->inflight--;
	s->sess = NULL;
	s->state = DP_SLOT_FREE;
	re->free_slots[re->n_free] = s;
	/* n_free is read by other threads for /metrics (dp_slots_get): one atomic store. */
	__atomic_store_n(&re->n_free, re->n_free + 1, __ATOMIC_RELAXED);
}

static void
dp_tomb_pop(struct dp_reasm *re)
{
	rte_hash_del_key(re->msgs, &re->tombs[re->tomb_head].key);
	re->tomb_head = re->tomb_head + 1 == re->n_tombs_max ? 0 : re->tomb_head + 1;
	re->n_tombs--;
}

/*
 * Remember a finished message's key for msg_timeout_us (docs/protocol.md 12.2): its late or
 * duplicated chunks are then answered with its kept answer, not taken for a new message.
 * Replaces the key's slot in the table. When the ring is full the oldest goes first (a late
 * chunk of it would open a slot that times out). @return the tombstone's index
 */
static uint32_t
dp_tomb_add(struct dp_reasm *re, const struct dp_key *key, uint64_t now)
{
	struct dp_tomb *t;
	uint32_t i;

	if (re->n_tombs == re->n_tombs_max)
		dp_tomb_pop(re);
	i = re->tomb_head + re->n_tombs;
	if (i >= re->n_tombs_max)
		i -= re->n_tombs_max;
	t = &re->tombs[i];
	t->key = *key;
	t->expire_tsc = now + re->msg_tsc;
	t->resent_tsc = 0;
	t->pending = false;
	t->answer_len = 0;
	t->keep_chunks = 0;
	re->n_tombs++;
	rte_hash_add_key_data(re->msgs, key, dp_tomb_val(i));
	return i;
}

/* ---- tensor answers kept in the keep ring ---- */

static inline uint8_t *
dp_keep_at(const struct dp_reasm *re, uint64_t pos)
{
	return re->keep + pos % re->keep_size;
}

/* Where len contiguous bytes start at the ring's head (its start when the end is short). */
static uint64_t
dp_keep_reserve(const struct dp_reasm *re, size_t len)
{
	uint64_t pos = re->keep_head, phys = pos % re->keep_size;

	if (phys + len > re->keep_size)
		pos += re->keep_size - phys;
	return pos;
}

/* A tombstone's tensor answer not yet overwritten by newer ones. */
static inline bool
dp_keep_intact(const struct dp_reasm *re, const struct dp_tomb *t)
{
	return t->keep_chunks != 0 && re->keep_head <= t->keep_pos + re->keep_size;
}

/*
 * A tensor answer overwritten while its tombstone lives: the request is forgotten, so that
 * a resend is served anew (docs/protocol.md 12.2) instead of being dropped as late until
 * the tombstone expires. The tombstone stays in its FIFO with a key no message has
 * (session 0), so popping it later deletes nothing. @return true if it was forgotten
 */
static bool
dp_tomb_forget_lost(struct dp_lcore *lc, uint32_t i)
{
	struct dp_reasm *re = &lc->re;
	struct dp_tomb *t = &re->tombs[i];

	if (t->keep_chunks == 0 || dp_keep_intact(re, t))
		return false;
	rte_hash_del_key(re->msgs, &t->key);
	t->key.session_id = 0;
	t->keep_chunks = 0;
	lc->stats.answers_lost++;
	return true;
}

static inline uint16_t
dp_dgram_len(const uint8_t *resp)
{
	return (uint16_t)(PROTO_RESPONSE_LEN +
			  ((unsigned)resp[PROTO_OFF_PAYLOAD_LEN] << 8 |
			   resp[PROTO_OFF_PAYLOAD_LEN + 1]));
}

/*
 * Resend a kept tensor answer's chunks to to: those nk lists (ascending ranges, checked by
 * the decoder), or every one (nk NULL). The chunks lie back to back in index order.
 * @return chunks resent
 */
static unsigned
dp_keep_resend(struct dp_lcore *lc, const struct dp_tomb *t, const struct proto_nack *nk,
	       const struct dp_peer *to)
{
	const uint8_t *p = dp_keep_at(&lc->re, t->keep_pos);
	unsigned r = 0, sent = 0;

	for (unsigned i = 0; i < t->keep_chunks; i++) {
		uint16_t len = dp_dgram_len(p);
		bool want = true;

		if (nk != NULL) {
			while (r < nk->n_ranges &&
			       i >= (unsigned)nk->ranges[r].first + nk->ranges[r].count)
				r++;
			if (r == nk->n_ranges)
				break;
			want = i >= nk->ranges[r].first;
		}
		if (want && dp_send_copy(lc, p, len, to, true))
			sent++;
		p += len;
	}
	return sent;
}

/*
 * A chunk of a request held whole and not answered yet (with the consumer: queued or
 * running): RESPONSE PENDING (docs/protocol.md 12.2), built from the chunk's own ids, to the
 * session's (verified) address, at most once per gap. queue_us: how long it has waited since
 * it completed. Not a final answer: the device keeps waiting.
 */
static void
dp_send_pending(struct dp_lcore *lc, const struct dp_session *sess, struct dp_tomb *t,
		const struct proto_msg *msg, uint64_t now)
{
	struct proto_response r;
	struct proto_hdr h;
	struct rte_mbuf *m;
	uint8_t *buf;
	int n;

	if (now < t->resent_tsc + lc->re.gap_tsc)
		return;
	memset(&r, 0, sizeof(r));
	r.c.model_id = msg->u.req.c.model_id;
	r.c.variant_id = msg->u.req.c.variant_id;
	r.c.split_id = msg->u.req.c.split_id;
	r.c.count = 1;
	r.c.t.dtype = PROTO_DT_RAW;
	r.c.t.scale = 1.0f;
	r.status = PROTO_ST_PENDING;
	r.reason = PROTO_E_PENDING;
	r.result_kind = PROTO_RES_NONE;
	r.exit_taken = r.advice_variant = r.advice_split = PROTO_NONE;
	r.queue_us = (uint32_t)RTE_MIN(dp_tsc_to_ns(now - (t->expire_tsc - lc->re.msg_tsc)) / 1000,
				       (uint64_t)UINT32_MAX);
	memset(&h, 0, sizeof(h));
	h.client_id = msg->h.client_id;
	h.request_id = msg->h.request_id;
	h.session_id = msg->h.session_id;
	buf = dp_tx_udp_alloc(lc, &m);
	if (buf == NULL)
		return;
	n = proto_encode_response(buf, lc->max_payload, &h, &r);
	if (n < 0) {	/* cannot happen: every field is in range */
		rte_pktmbuf_free(m);
		return;
	}
	dp_tx_udp_send(lc, m, &sess->peer, (uint16_t)n);
	t->resent_tsc = now;
	lc->stats.pending_sent++;
}

/* A late chunk of a finished message, from session sess: its answer again, at most once per
 * gap, to the session's (verified) address. */
static void
dp_tomb_resend(struct dp_lcore *lc, const struct dp_session *sess, uint32_t i, uint64_t now)
{
	struct dp_tomb *t = &lc->re.tombs[i];

	/* resent_tsc may lie after this burst's now: the answer left during the burst. */
	if (now < t->resent_tsc + lc->re.gap_tsc)
		return;
	if (t->answer_len != 0) {
		if (!dp_send_copy(lc, t->answer, t->answer_len, &sess->peer, false))
			return;
	} else if (dp_keep_intact(&lc->re, t)) {
		lc->stats.resp_chunks_resent += dp_keep_resend(lc, t, NULL, &sess->peer);
	} else {
		return;
	}
	t->resent_tsc = now;
	lc->stats.answers_resent++;
}

/*
 * A device's NACK of a RESPONSE (docs/protocol.md 8): the listed chunks of the kept answer
 * again, to the session's address (a verified source), at most once per half gap (the
 * device NACKs a gap after the last chunk it got, so a whole gap would race with it). A
 * NACK of no kept answer, or of another chunk count, gets ERROR UNKNOWN_REQUEST.
 */
static void
dp_nack_input(struct dp_lcore *lc, struct dp_session *sess, const struct proto_msg *msg,
	      const uint8_t *in, uint16_t in_len, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	const struct proto_nack *nk = &msg->u.nack;
	struct dp_key key = {
		.session_id = msg->h.session_id,
		.request_id = msg->h.request_id,
	};
	struct dp_tomb *t;
	void *v;

	if (rte_hash_lookup_data(re->msgs, &key, &v) < 0 || !dp_is_tomb(v) ||
	    dp_tomb_forget_lost(lc, (uint32_t)((uintptr_t)v >> 1)))
		goto unknown;
	t = &re->tombs[(uint32_t)((uintptr_t)v >> 1)];
	if (!(dp_keep_intact(re, t) && nk->chunk_count == t->keep_chunks) &&
	    !(t->answer_len != 0 && nk->chunk_count == 1))
		goto unknown;
	if (now < t->resent_tsc + re->gap_tsc / 2) {
		DP_DROP(lc, NACK_RATE);
		return;
	}
	if (t->answer_len != 0) {
		if (dp_send_copy(lc, t->answer, t->answer_len, &sess->peer, true))
			lc->stats.resp_chunks_resent++;
	} else {
		lc->stats.resp_chunks_resent += dp_keep_resend(lc, t, nk, &sess->peer);
	}
	t->resent_tsc = now;
	return;
unknown:
	DP_DROP(lc, NACK_UNKNOWN);
	dp_reply_error(lc, &sess->peer, in, in_len, PROTO_ST_UNKNOWN_REQUEST, PROTO_OK);
}

/* Refuse a message as a whole with reason r: its slot goes, a tombstone keeps the ERROR. */
static void
dp_msg_refuse(struct dp_lcore *lc, struct dp_slot *s, enum proto_reason r, uint64_t now)
{
	TAILQ_REMOVE(&lc->re.open, s, timer);
	dp_open_dec(&lc->re, s->sess);
	s->tomb = dp_tomb_add(&lc->re, &s->key, now);
	dp_auth_answered(s->sess, s->key.request_id);
	dp_slot_error(lc, s, r, true);
	dp_slot_put(lc, s);
}

/*
 * Fair share under exhaustion (docs/protocol.md 12.6): the pool is full and sess's source
 * holds fewer unfinished messages than its share (the pool over the sources holding any,
 * sess's counted). Take the slot of the most stalled unfinished message (earliest deadline:
 * the list's order) of the source holding the most, if that is more than sess's source
 * holds plus one; its session gets ERROR UNKNOWN_REQUEST evicted (48 bytes, which its NACK
 * budget kept) and resends it whole. Two passes over the open list: at most n_slots each,
 * and only when the pool is full. @return true if a slot was freed
 */
static bool
dp_slot_reclaim(struct dp_lcore *lc, const struct dp_session *sess)
{
	struct dp_reasm *re = &lc->re;
	unsigned sources = re->n_src_open + (sess->src->open == 0);
	struct dp_source *top = NULL;
	struct dp_slot *s;

	if (sess->src->open >= re->n_slots / (sources != 0 ? sources : 1))
		return false;
	TAILQ_FOREACH(s, &re->open, timer)
		if (top == NULL || s->sess->src->open > top->open)
			top = s->sess->src;
	if (top == NULL || top->open <= sess->src->open + 1)
		return false;
	TAILQ_FOREACH(s, &re->open, timer)
		if (s->sess->src == top)
			break;
	TAILQ_REMOVE(&re->open, s, timer);
	DP_DROP(lc, MSG_EVICTED);
	dp_slot_error(lc, s, PROTO_E_EVICTED, false);
	rte_hash_del_key(re->msgs, &s->key);
	dp_open_dec(re, s->sess);
	dp_slot_put(lc, s);
	return true;
}

/*
 * A new message: a slot if its session, its source and the pool allow (a full pool gives
 * one back to a source under its fair share), else a counted OVERLOADED.
 */
static struct dp_slot *
dp_msg_open(struct dp_lcore *lc, struct dp_session *sess, const struct dp_key *key,
	    const struct proto_msg *msg, const uint8_t *in, uint16_t in_len, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_slot *s;

	if (sess->inflight >= lc->dp->cfg.limits.max_inflight_client) {
		DP_DROP(lc, CLIENT_INFLIGHT);
		dp_reply_reason(lc, &sess->peer, in, in_len, PROTO_E_CLIENT_INFLIGHT);
		return NULL;
	}
	if (sess->src->open >= lc->dp->cfg.limits.max_open_source) {
		DP_DROP(lc, SOURCE_INFLIGHT);
		dp_reply_reason(lc, &sess->peer, in, in_len, PROTO_E_SOURCE_INFLIGHT);
		return NULL;
	}
	if (re->n_free == 0)
		dp_slot_reclaim(lc, sess);
	/* The table holds every slot and tombstone: the add cannot fail; were it to, the
	 * message is refused like any other that finds no room. */
	if (re->n_free == 0 ||
	    rte_hash_add_key_data(re->msgs, key, re->free_slots[re->n_free - 1]) < 0) {
		DP_DROP(lc, POOL_FULL);
		dp_reply_reason(lc, &sess->peer, in, in_len, PROTO_E_POOL_FULL);
		return NULL;
	}
	s = re->free_slots[re->n_free - 1];
	__atomic_store_n(&re->n_free, re->n_free - 1, __ATOMIC_RELAXED);
	sess->inflight++;
	dp_open_inc(re, sess);
	s->sess = sess;
	s->key = *key;
	s->state = DP_SLOT_OPEN;
	s->first_tsc = now;
	s->n_received = 0;
	s->nack_backoff = 0;
	s->next_nack_tsc = 0;
	s->rx_bytes = 0;
	s->nack_bytes = 0;
	s->pub.hdr = msg->h;
	s->pub.req = msg->u.req;
	/* The message's view: nothing of the chunk that happened to come first. */
	s->pub.req.c.index = 0;
	s->pub.req.c.raw_offset = 0;
	s->pub.req.c.raw_len = s->pub.req.c.t.raw_total;
	s->pub.req.c.lz4 = false;
	s->pub.req.c.payload = NULL;
	s->pub.req.c.payload_len = 0;
	memset(s->received, 0, ((msg->u.req.c.count + 63u) / 64u) * sizeof(uint64_t));
	dp_timer_arm(re, s, now);
	lc->stats.msgs_opened++;
	return s;
}

/*
 * Chunk c may sit where it says: chunk 0 starts the tensor, the last ends it, and it meets
 * its placed neighbours exactly. Checked for every pair as its later half arrives, so a
 * complete message tiles its tensor exactly (docs/protocol.md 6.3): no overlap, and no byte
 * of an earlier message's tensor left in the slot.
 */
static bool
dp_span_fits(const struct dp_slot *s, const struct proto_chunk *c)
{
	uint32_t off = c->raw_offset, end = c->raw_offset + c->raw_len;
	unsigned i = c->index, count = c->count;

	if (i == 0 && off != 0)
		return false;
	if (i + 1 == count && end != c->t.raw_total)
		return false;
	if (i > 0 && dp_bit(s->received, i - 1) && s->span[i - 1][1] != off)
		return false;
	if (i + 1 < count && dp_bit(s->received, i + 1) && s->span[i + 1][0] != end)
		return false;
	return true;
}

/* ---- responses ---- */

/*
 * A TENSOR result: the bytes at the slot's tensor chunked (LZ4 where it pays) at the
 * device's max_dgram straight into the keep ring, each chunk copied into an mbuf and sent,
 * the whole kept for NACKs and resends. The ring holds at least one answer of
 * max_msg_bytes (dp_reasm_init()), so the reservation always fits; what it overwrites,
 * older answers, are lost to their tombstones.
 * @return 0 or the encoder's -errno (nothing sent)
 */
static int
dp_send_tensor(struct dp_lcore *lc, struct dp_slot *s, const struct proto_hdr *h)
{
	struct dp_reasm *re = &lc->re;
	const struct proto_response *r = &s->pub.resp;
	size_t dgram = RTE_MIN((size_t)lc->max_payload, (size_t)s->sess->profile.max_dgram);
	size_t bytes, used = 0;
	unsigned max_n, n;
	struct dp_tomb *t;
	uint64_t pos;
	int rc;

	if (r->c.t.raw_total > s->pub.tensor_cap)
		return -EINVAL;
	rc = proto_chunk_bound(PROTO_T_RESPONSE, r->c.t.dtype, r->c.t.raw_total, dgram, &max_n,
			       &bytes);
	if (rc < 0)
		return rc;
	if (bytes > re->keep_size || max_n > re->keep_max_dg)
		return -ENOSPC;
	pos = dp_keep_reserve(re, bytes);
	/* Claimed before writing: a failure must not leave older answers looking intact. */
	re->keep_head = pos + bytes;
	rc = proto_response_chunk(h, r, s->pub.tensor, dgram, true, dp_keep_at(re, pos), bytes,
				  re->keep_dg, re->keep_max_dg, &n);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < n; i++)
		used += re->keep_dg[i].len;
	/* LZ4 may have scribbled up to a datagram past the last chunk while choosing. */
	re->keep_head = pos + RTE_MIN(bytes, used + dgram);
	t = dp_slot_tomb(re, s);
	if (t != NULL) {
		t->answer_len = 0;
		t->keep_pos = pos;
		t->keep_len = (uint32_t)used;
		t->keep_chunks = (uint16_t)n;
		t->resent_tsc = rte_rdtsc();
	}
	for (unsigned i = 0; i < n; i++)
		dp_send_copy(lc, re->keep_dg[i].data, (uint16_t)re->keep_dg[i].len,
			     &s->sess->peer, false);
	lc->stats.resp_sent += n;
	lc->stats.tensor_answers++;
	return 0;
}

/*
 * Encode req->resp (the chunk block is ours: ids, chunking, the result), send it and keep
 * it in the message's tombstone.
 */
static void
dp_send_response(struct dp_lcore *lc, struct dp_slot *s)
{
	struct proto_response *r = &s->pub.resp;
	const struct proto_chunk *q = &s->pub.req.c;
	struct proto_hdr h;
	struct rte_mbuf *m;
	uint8_t *buf;
	int n;

	r->c.model_id = q->model_id;
	r->c.variant_id = q->variant_id;
	r->c.split_id = q->split_id;
	r->c.index = 0;
	r->c.count = 1;
	if (r->result_kind == PROTO_RES_NONE || r->result_kind == PROTO_RES_ECHO) {
		memset(&r->c.t, 0, sizeof(r->c.t));
		r->c.t.dtype = PROTO_DT_RAW;
		r->c.t.scale = 1.0f;
		r->c.raw_offset = 0;
		r->c.raw_len = 0;
		r->c.lz4 = false;
		r->c.payload = NULL;
		r->c.payload_len = 0;
	}
	dp_slot_hdr(s, &h);
	if (r->result_kind == PROTO_RES_TENSOR) {
		if (dp_send_tensor(lc, s, &h) == 0)
			return;
		DP_DROP(lc, RESP_ENCODE);
		dp_slot_error(lc, s, PROTO_OK, true);
		return;
	}
	buf = dp_tx_udp_alloc(lc, &m);
	if (buf == NULL)
		return;
	n = proto_encode_response(buf, lc->max_payload, &h, r);
	if (n < 0) {
		rte_pktmbuf_free(m);
		DP_DROP(lc, RESP_ENCODE);
		dp_slot_error(lc, s, PROTO_OK, true);
		return;
	}
	dp_tomb_keep(&lc->re, s, buf, n);
	dp_tx_udp_send(lc, m, &s->sess->peer, (uint16_t)n);
	lc->stats.resp_sent++;
}

/*
 * The echo model (docs/protocol.md 13): CRC32C and length of the reassembled raw tensor,
 * or with WANT_TENSOR the tensor itself, answered here; it has variant 0 and split 0 only.
 */
static void
dp_echo(struct dp_lcore *lc, struct dp_slot *s)
{
	struct proto_response *r = &s->pub.resp;
	uint64_t t0 = rte_rdtsc();

	if (s->pub.req.c.variant_id != 0 || s->pub.req.c.split_id != 0) {
		r->status = PROTO_ST_UNKNOWN_SPLIT;
		dp_send_response(lc, s);
		dp_slot_put(lc, s);
		return;
	}
	if (s->pub.req.flags & PROTO_RF_WANT_TENSOR) {
		dp_req_set_tensor(&s->pub, &s->pub.req.c.t);
	} else {
		r->result_kind = PROTO_RES_ECHO;
		r->echo_crc32c = proto_crc32c(0, s->pub.tensor, s->pub.req.c.t.raw_total);
		r->echo_bytes = s->pub.req.c.t.raw_total;
	}
	r->compute_us = (uint32_t)(dp_tsc_to_ns(rte_rdtsc() - t0) / 1000);
	dp_send_response(lc, s);
	lc->stats.msgs_echoed++;
	dp_slot_put(lc, s);
}

/*
 * Every chunk arrived: the tombstone takes the slot's place in the table, the slot is held
 * for its answer. @return the slot for the consumer ring, or NULL (answered here).
 */
static struct dp_slot *
dp_msg_complete(struct dp_lcore *lc, struct dp_slot *s, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct proto_response *r = &s->pub.resp;

	TAILQ_REMOVE(&re->open, s, timer);
	dp_open_dec(re, s->sess);
	s->tomb = dp_tomb_add(re, &s->key, now);
	s->state = DP_SLOT_HELD;
	if (s->sess != NULL)
		dp_auth_answered(s->sess, s->key.request_id);
	s->pub.done_ns = tg_now_ns();
	s->pub.first_ns = s->pub.done_ns - dp_tsc_to_ns(now - s->first_tsc);
	if (s->sess != NULL)
		s->pub.profile = s->sess->profile;
	else
		memset(&s->pub.profile, 0, sizeof(s->pub.profile));
	memset(r, 0, sizeof(*r));
	r->status = PROTO_ST_OK;
	r->reason = PROTO_OK;
	r->result_kind = PROTO_RES_NONE;
	r->exit_taken = PROTO_NONE;
	r->advice_variant = PROTO_NONE;
	r->advice_split = PROTO_NONE;
	lc->stats.msgs_completed++;
	if (re->echo && s->pub.req.c.model_id == PROTO_MODEL_ECHO) {
		dp_echo(lc, s);
		return NULL;
	}
	re->tombs[s->tomb].pending = true;	/* until dp_resp_drain() sends its answer */
	return s;
}

/* One REQUEST chunk. @return its message's slot if this chunk completed it, else NULL. */
static struct dp_slot *
dp_chunk_input(struct dp_lcore *lc, struct dp_session *sess, const struct proto_msg *msg,
	       const uint8_t *in, uint16_t in_len, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	const struct proto_chunk *c = &msg->u.req.c;
	struct dp_key key = {
		.session_id = msg->h.session_id,
		.request_id = msg->h.request_id,
	};
	struct dp_slot *s;
	void *v;

	if (rte_hash_lookup_data(re->msgs, &key, &v) >= 0 &&
	    !(dp_is_tomb(v) && dp_tomb_forget_lost(lc, (uint32_t)((uintptr_t)v >> 1)))) {
		if (dp_is_tomb(v)) {
			struct dp_tomb *t = &re->tombs[(uint32_t)((uintptr_t)v >> 1)];

			DP_DROP(lc, CHUNK_LATE);
			if (t->pending)
				dp_send_pending(lc, sess, t, msg, now);
			else
				dp_tomb_resend(lc, sess, (uint32_t)((uintptr_t)v >> 1), now);
			return NULL;
		}
		s = v;
		if (!proto_request_same_msg(&s->pub.req, &msg->u.req)) {
			DP_DROP(lc, CHUNK_MISMATCH);
			dp_reply_reason(lc, &sess->peer, in, in_len, PROTO_E_CHUNK_MISMATCH);
			return NULL;
		}
	} else {
		s = dp_msg_open(lc, sess, &key, msg, in, in_len, now);
		if (s == NULL)
			return NULL;
	}
	s->rx_bytes = s->rx_bytes + in_len > s->rx_bytes ? s->rx_bytes + in_len : UINT32_MAX;
	if (dp_bit(s->received, c->index)) {
		DP_DROP(lc, CHUNK_DUP);
		return NULL;
	}
	if (!dp_span_fits(s, c)) {
		DP_DROP(lc, CHUNK_PLACE);
		dp_msg_refuse(lc, s, PROTO_E_CHUNK_TILE, now);
		return NULL;
	}
	/* Only the chunk is refused (docs/protocol.md 6.4, 11.1 step 13): it stays missing, is
	 * NACKed, and a correct resend is placed. What it wrote lies in its own range, which
	 * that resend overwrites. */
	if (proto_chunk_unpack(c, s->pub.tensor, c->t.raw_total, &lc->stats.proto) != PROTO_OK) {
		DP_DROP(lc, CHUNK_LZ4);
		dp_reply_reason(lc, &sess->peer, in, in_len, PROTO_E_LZ4);
		return NULL;
	}
	s->received[c->index / 64] |= UINT64_C(1) << (c->index % 64);
	s->span[c->index][0] = c->raw_offset;
	s->span[c->index][1] = c->raw_offset + c->raw_len;
	lc->stats.chunks_placed++;
	if (++s->n_received == c->count)
		return dp_msg_complete(lc, s, now);
	/* Progress: the next NACK is a whole gap of silence away, its backoff starts over. */
	s->nack_backoff = 0;
	s->next_nack_tsc = 0;
	TAILQ_REMOVE(&re->open, s, timer);
	dp_timer_arm(re, s, now);
	return NULL;
}

/*
 * A datagram the decoder refused, answered as docs/protocol.md 12.3 says: nothing to less
 * than 48 bytes or the wrong magic (proto_error_reply() refuses the first); an unknown
 * version always (the ERROR says which we speak); a HELLO always; anything else only when
 * its session is bound to its source (h is as far as proto_peek() got: zeroed beyond).
 */
static void
dp_refused(struct dp_lcore *lc, const struct dp_peer *from, const struct proto_hdr *h,
	   const uint8_t *in, uint16_t len, enum proto_reason r, uint64_t now)
{
	/* A wrong CRC may sit in the ids or the address: nobody to answer for sure. */
	if (r == PROTO_E_BAD_MAGIC || r == PROTO_E_BAD_CRC)
		return;
	enum proto_reason why;

	if (r == PROTO_E_BAD_VERSION || (len >= PROTO_HDR_LEN && h->type == PROTO_T_HELLO) ||
	    (len >= PROTO_HDR_LEN && dp_session_verify(lc, from, h, now, &why) != NULL))
		dp_reply_reason(lc, from, in, len, r);
}

struct dp_slot *
dp_udp_input(struct dp_lcore *lc, const struct dp_peer *from, const uint8_t *payload,
	     uint16_t len, uint64_t now)
{
	struct dp_session *sess;
	struct proto_msg msg;
	enum proto_reason r;

	memset(&msg.h, 0, sizeof(msg.h));
	r = proto_decode(payload, len, &lc->re.plim, &msg, &lc->stats.proto);
	/* The tag before anything else is judged (docs/protocol.md 11.1, 12.5). */
	if (!dp_auth_input(lc, from, payload, len, &msg, r, now))
		return NULL;
	if (r != PROTO_OK) {
		DP_DROP(lc, PROTO);
		dp_refused(lc, from, &msg.h, payload, len, r, now);
		return NULL;
	}
	if (msg.h.type == PROTO_T_HELLO) {
		dp_hello_input(lc, from, &msg, payload, len, now);
		return NULL;
	}
	/* Replies (RESPONSE, HELLO_REPLY, ERROR) are never answered: two gateways must not
	 * talk to each other forever. */
	if (msg.h.type != PROTO_T_REQUEST && msg.h.type != PROTO_T_NACK) {
		DP_DROP(lc, MSG_TYPE);
		return NULL;
	}
	sess = dp_session_verify(lc, from, &msg.h, now, &r);
	if (sess == NULL) {
		/* 48 bytes to an address that sent at least 48: never more than it sent. */
		if (r == PROTO_E_PATH_UNVERIFIED)
			DP_DROP(lc, PATH_UNVERIFIED);
		else
			DP_DROP(lc, SESSION_UNKNOWN);
		dp_reply_error(lc, from, payload, len, PROTO_ST_UNKNOWN_SESSION, r);
		return NULL;
	}
	if (msg.h.type == PROTO_T_REQUEST) {
		if (!dp_auth_fresh(lc, sess, payload, len))
			return NULL;
		return dp_chunk_input(lc, sess, &msg, payload, len, now);
	}
	dp_nack_input(lc, sess, &msg, payload, len, now);
	return NULL;
}

/*
 * Hand completed messages to the consumer ring in one operation. The ring holds every slot
 * of every lcore, so it cannot be full: a consumer that falls behind holds slots, and the
 * pool limit refuses new messages (POOL_FULL, OVERLOADED sent) long before.
 */
void
dp_reasm_deliver(struct dp_lcore *lc, struct dp_slot **done, unsigned n)
{
	struct dp *dp = lc->dp;
	void *objs[DP_BURST];
	unsigned i;

	for (i = 0; i < n; i++)
		objs[i] = &done[i]->pub;
	lc->stats.msgs_delivered += n;
	if (dp->deliver != NULL) {
		dp->deliver(dp->deliver_ctx, (struct dp_req **)objs, n);
		return;
	}
	RTE_VERIFY(rte_ring_mp_enqueue_bulk(dp->done, objs, n, NULL) == n);
}

/*
 * Timers, checked from the poll loop on the TSC (docs/protocol.md 12.2). A slot silent for a
 * gap is past its message timeout (freed, counted, ERROR UNKNOWN_REQUEST reasm_timeout sent)
 * or gets a NACK of what is missing, and another after 2, 4 ... 64 gaps without progress. The timeout is judged at these
 * checks, so it fires at most one gap late. The list is in deadline order, so only its head
 * is looked at; then tombstones and sessions.
 */
void
dp_reasm_timers(struct dp_lcore *lc, uint64_t now)
{
	struct dp_reasm *re = &lc->re;
	struct dp_slot *s;

	while ((s = TAILQ_FIRST(&re->open)) != NULL && s->deadline_tsc <= now) {
		TAILQ_REMOVE(&re->open, s, timer);
		if (now - s->first_tsc >= re->msg_tsc) {
			DP_DROP(lc, MSG_TIMEOUT);
			dp_slot_error(lc, s, PROTO_E_REASM_TIMEOUT, false);
			rte_hash_del_key(re->msgs, &s->key);
			dp_open_dec(re, s->sess);
			dp_slot_put(lc, s);
			continue;
		}
		/* A device that does not answer NACKs gets them ever more rarely (after a few
		 * a gap apart, 2, 4, 8 ... gaps apart) and at most DP_NACKS_MAX since its last
		 * chunk: an abandoned message used to cost one NACK per gap until its timeout
		 * (500 at the defaults); one that progresses gets a NACK a gap after each
		 * silence. */
		if (s->nack_backoff < DP_NACKS_MAX && now >= s->next_nack_tsc) {
			unsigned k = s->nack_backoff + 1u < DP_NACKS_STEADY
					     ? 0 : s->nack_backoff + 2u - DP_NACKS_STEADY;

			dp_send_nack(lc, s);
			s->next_nack_tsc = now - re->gap_tsc / 4 +
					  (re->gap_tsc << RTE_MIN(k, (unsigned)DP_NACK_BACKOFF_MAX));
			s->nack_backoff++;
		}
		dp_timer_arm(re, s, now);
	}
	while (re->n_tombs != 0 && re->tombs[re->tomb_head].expire_tsc <= now)
		dp_tomb_pop(re);
	dp_sessions_expire(lc, now);
}

/* Send the answers workers posted, free their slots. @return how many. */
unsigned
dp_resp_drain(struct dp_lcore *lc)
{
	size_t tensor_bytes = 0;
	unsigned n = 0;
	void *req;

	/* Tensor answers are chunked (and LZ4'd) here, on the lcore that must keep polling:
	 * at most DP_DRAIN_TENSOR_BYTES of them a pass, the rest wait for the next one. */
	while (n < DP_BURST && tensor_bytes < DP_DRAIN_TENSOR_BYTES &&
	       rte_ring_sc_dequeue(lc->re.resp, &req) == 0) {
		struct dp_slot *s = (struct dp_slot *)req;	/* pub is the first member */
		struct dp_tomb *t = dp_slot_tomb(&lc->re, s);

		if (t != NULL)
			t->pending = false;
		if (s->pub.resp.result_kind == PROTO_RES_TENSOR)
			tensor_bytes += s->pub.resp.c.t.raw_total;
		dp_send_response(lc, s);
		dp_slot_put(lc, s);
		n++;
	}
	return n;
}

/* ---- API for consumers ---- */

unsigned
dp_req_dequeue_burst(struct dp *dp, struct dp_req **reqs, unsigned n)
{
	return rte_ring_mc_dequeue_burst(dp->done, (void **)reqs, n, NULL);
}

void
dp_req_set_tensor(struct dp_req *req, const struct proto_tensor *t)
{
	req->resp.result_kind = PROTO_RES_TENSOR;
	req->resp.top_k = 0;
	req->resp.c.t = *t;
}

void
dp_req_respond(struct dp_req *req)
{
	struct dp_slot *s = (struct dp_slot *)req;

	/* A request answered twice, or never handed out, would corrupt its lcore's pools. */
	RTE_VERIFY(s->state == DP_SLOT_HELD);
	s->state = DP_SLOT_ANSWERED;
	/* The ring holds every slot of its lcore: it cannot be full. */
	RTE_VERIFY(rte_ring_mp_enqueue(s->lc->re.resp, req) == 0);
}

/* ---- init path ---- */

void
dp_reasm_free(struct dp_lcore *lc)
{
	struct dp_reasm *re = &lc->re;

	rte_hash_free(re->msgs);
	rte_ring_free(re->resp);
	if (re->keep != NULL)
		munmap(re->keep, re->keep_size);
	free(re->keep_dg);
	if (re->tensor_mem != NULL)
		munmap(re->tensor_mem, re->tensor_mem_len);
	free(re->track_mem);
	free(re->slots);
	free(re->free_slots);
	free(re->tombs);
	memset(re, 0, sizeof(*re));
}

static struct rte_hash *
dp_hash_create(const char *what, unsigned q, uint32_t entries, uint32_t key_len, int socket)
{
	static unsigned seq;	/* hash names are global to the process */
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters p = {
		.name = name,
		.entries = entries,
		.key_len = key_len,
		.hash_func = rte_hash_crc,
		.socket_id = socket,
		/* Extendable buckets: every one of `entries` keys fits, whatever their hashes. */
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	};

	snprintf(name, sizeof(name), "dp_%s_%u_%u", what, q, seq++);
	return rte_hash_create(&p);
}

/*
 * The keep ring: at least the largest answer (max_msg_bytes of RAW at the smallest
 * max_dgram a device may ask for: the most chunks and header bytes), mapped and touched.
 */
static int
dp_keep_init(struct dp_reasm *re, const struct dp_config *cfg)
{
	size_t bytes;
	unsigned n;
	void *m;

	if (proto_chunk_bound(PROTO_T_RESPONSE, PROTO_DT_RAW, cfg->limits.max_msg_bytes,
			      PROTO_HELLO_MIN_DGRAM, &n, &bytes) < 0)
		return -EINVAL;
	re->keep_max_dg = n;
	re->keep_size = RTE_ALIGN_CEIL(RTE_MAX((size_t)cfg->resp_keep_bytes, bytes), 4096);
	re->keep_dg = calloc(n, sizeof(*re->keep_dg));
	m = mmap(NULL, re->keep_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (m == MAP_FAILED || re->keep_dg == NULL) {
		if (m != MAP_FAILED)
			munmap(m, re->keep_size);
		return -ENOMEM;
	}
	re->keep = m;
	return 0;
}

/*
 * Size everything from the limits: n_slots slots of max_msg_bytes (mapped and touched now,
 * so the hot path never faults a page in), per-slot chunk tracking for max_chunks,
 * tombstones, the message table, the response ring.
 */
int
dp_reasm_init(struct dp_lcore *lc, unsigned n_slots, struct tg_err *err)
{
	static unsigned seq;	/* ring names are global to the process */
	const struct dp_config *cfg = &lc->dp->cfg;
	struct dp_reasm *re = &lc->re;
	unsigned q = lc->queue_id, words = (cfg->limits.max_chunks + 63u) / 64u;
	char name[RTE_RING_NAMESIZE];
	int socket = rte_socket_id();
	size_t stride = RTE_ALIGN_CEIL((size_t)RTE_MAX(cfg->limits.max_msg_bytes, 1u), 64);
	size_t track = words * sizeof(uint64_t) + (size_t)cfg->limits.max_chunks * 8;
	uint64_t hz = rte_get_tsc_hz();
	uint8_t *t;

	memset(re, 0, sizeof(*re));
	re->n_slots = n_slots;
	re->n_tombs_max = RTE_MAX(8 * n_slots, 4096u);
	re->gap_tsc = hz * cfg->gap_timeout_us / 1000000;
	re->msg_tsc = hz * cfg->msg_timeout_us / 1000000;
	re->echo = !cfg->no_echo;
	proto_limits_default(&re->plim);
	re->plim.max_msg_bytes = cfg->limits.max_msg_bytes;
	re->plim.max_chunks = cfg->limits.max_chunks;
	re->plim.max_dgram = (uint16_t)RTE_MAX(lc->max_payload, (uint16_t)PROTO_HELLO_MIN_DGRAM);
	if (proto_limits_check(&re->plim) != 0)
		return tg_err_set(err, -EINVAL, "dataplane: limits outside the wire's caps "
				  "(max_msg_bytes <= %u)", (unsigned)PROTO_MAX_MSG_BYTES);
	TAILQ_INIT(&re->open);

	re->slots = calloc(n_slots, sizeof(*re->slots));
	re->free_slots = calloc(n_slots, sizeof(*re->free_slots));
	re->tombs = calloc(re->n_tombs_max, sizeof(*re->tombs));
	re->track_mem = calloc(n_slots, track);
	if (re->slots == NULL || re->free_slots == NULL || re->tombs == NULL ||
	    re->track_mem == NULL)
		goto out_nomem;
	re->tensor_mem_len = stride * n_slots;
	t = mmap(NULL, re->tensor_mem_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (t == MAP_FAILED) {
		re->tensor_mem = NULL;
		goto out_nomem;
	}
	re->tensor_mem = t;
	for (unsigned i = 0; i < n_slots; i++) {
		struct dp_slot *s = &re->slots[i];
		uint8_t *tr = (uint8_t *)re->track_mem + (size_t)i * track;

		s->lc = lc;
		s->pub.tensor = t + (size_t)i * stride;
		s->pub.tensor_cap = cfg->limits.max_msg_bytes;
		s->received = (uint64_t *)tr;
		s->span = (uint32_t(*)[2])(tr + words * sizeof(uint64_t));
		re->free_slots[n_slots - 1 - i] = s;	/* slot 0 first */
	}
	re->n_free = n_slots;
	if (dp_keep_init(re, cfg) != 0)
		goto out_nomem;

	re->msgs = dp_hash_create("msgs", q, n_slots + re->n_tombs_max, sizeof(struct dp_key),
				  socket);
	if (re->msgs == NULL) {
		dp_reasm_free(lc);
		return tg_err_set(err, -ENOMEM, "dataplane: queue %u: hash tables: %s", q,
				  rte_strerror(rte_errno));
	}
	snprintf(name, sizeof(name), "dp_resp_%u_%u", q, seq++);
	re->resp = rte_ring_create(name, n_slots, socket, RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (re->resp == NULL) {
		dp_reasm_free(lc);
		return tg_err_set(err, -ENOMEM, "dataplane: queue %u: response ring: %s", q,
				  rte_strerror(rte_errno));
	}
	return 0;

out_nomem:
	dp_reasm_free(lc);
	return tg_err_set(err, -ENOMEM, "dataplane: queue %u: %u slots of %zu bytes: out of memory",
			  q, n_slots, stride);
}
