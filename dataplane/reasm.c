/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reassembly: REQUEST chunks decoded with proto's decoder and placed into their message's
 * slot on arrival (decompressed straight to their raw offset); NACKs after a gap of silence,
 * a timeout that frees; completed messages handed to the consumer (or to the echo model).
 * What the gateway answers (responses, tombstones, the keep ring) is response.c's.
 *
 * Hot path (dp_udp_input, dp_reasm_timers): the owner lcore only; no malloc, no log, no
 * lock. Slots come from a pool sized at init; a bound that bites is a counted refusal with
 * an ERROR reply, never growth. Init at the end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <rte_errno.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>

#include "dataplane/dp_int.h"


static inline bool
dp_bit(const uint64_t *map, unsigned i)
{
	return (map[i / 64] >> (i % 64)) & 1u;
}

/* ---- NACKs of missing chunks ---- */

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
	s->nack_tsc = rte_get_tsc_cycles();
	lc->stats.nacks_sent++;
}

/* ---- slots ---- */

static inline void
dp_timer_arm(struct dp_reasm *re, struct dp_slot *s, uint64_t now)
{
	s->deadline_tsc = now + re->gap_tsc;
	TAILQ_INSERT_TAIL(&re->open, s, timer);
}

/* Give the slot back; its session lets go of it. */
void
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
	s->gap_tsc = re->gap_tsc;
	s->rx_bytes = 0;
	s->nack_bytes = 0;
	s->nack_tsc = 0;
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

/* ---- messages ---- */

enum {
	DP_UPLINK_MIN_CHUNKS = 8,	/* fewer: the device's first burst (its pacer starts with
					 * 4 datagrams of tokens) is most of the time measured */
	DP_UPLINK_SAMPLES = 4,		/* messages measured before the measurement replaces the
					 * HELLO's declared uplink in the advice */
	DP_RTT_SAMPLES = 2,		/* NACK round trips before the measured RTT does */
};

/*
 * The device's uplink measured from chunk arrivals (docs/protocol.md 7.3): the raw bytes
 * after the first chunk over the time from the first chunk's arrival to the last's, smoothed
 * by 1/4 per message. Raw, not wire, bytes: the advice predicts uploads from raw bytes too, so
 * LZ4's gain is part of the rate. Resends lengthen the time: a lossy link counts as slower.
 * After DP_UPLINK_SAMPLES messages the measurement is what the consumer sees; the RTT likewise
 * after DP_RTT_SAMPLES (dp_rtt_sample()).
 */
/*
 * The device's RTT, measured by the one exchange the gateway starts (docs/protocol.md 7.3): a
 * NACK sent, the first resent chunk back (RETRANSMIT), smoothed by 1/4 per sample; after
 * DP_RTT_SAMPLES it replaces the HELLO's declaration. It includes the device's turnaround,
 * so it errs long: an RTT without loss is never measured.
 */
static void
dp_rtt_sample(struct dp_session *ss, uint64_t ns)
{
	uint32_t us = (uint32_t)RTE_MIN(ns / 1000, (uint64_t)UINT32_MAX);

	ss->rtt_us = ss->rtt_n == 0 ? us : (uint32_t)(((uint64_t)ss->rtt_us * 3 + us) / 4);
	ss->rtt_n += ss->rtt_n < UINT32_MAX;
}

static void
dp_measured(struct dp_session *ss, struct dp_req *q)
{
	uint64_t dt = q->done_ns - q->first_ns, bits;
	unsigned n = q->req.c.count;
	uint32_t kbps;

	if (n >= DP_UPLINK_MIN_CHUNKS && dt > 0) {
		bits = 8ull * q->req.c.t.raw_total * (n - 1) / n;
		kbps = (uint32_t)RTE_MIN(bits * 1000000ull / dt, (uint64_t)UINT32_MAX);
		ss->up_kbps = ss->up_n == 0 ? kbps :
			      (uint32_t)(((uint64_t)ss->up_kbps * 3 + kbps) / 4);
		ss->up_n += ss->up_n < UINT32_MAX;
	}
	if (ss->up_n >= DP_UPLINK_SAMPLES)
		q->profile.uplink_kbps = ss->up_kbps;
	if (ss->rtt_n >= DP_RTT_SAMPLES)
		q->profile.rtt_us = ss->rtt_us;
}

/*
 * A session's gap of silence before its open message is NACKed (docs/protocol.md 12.2): the
 * configured gap, plus twice the time a datagram of len bytes (and its IPv4 and UDP headers)
 * takes at the session's uplink: measured once there are DP_UPLINK_SAMPLES, else declared
 * in its HELLO, else unknown (the gap alone). A 1 Mbit/s device sends a 1472-byte datagram
 * every 12 ms: a fixed 2 ms gap NACKed, between any two of them, chunks not sent yet. At
 * most a quarter of the message timeout, so a device that declares a crawl still has its
 * losses NACKed well before its message is given up; a longer gap only means fewer NACKs.
 */
static uint64_t
dp_gap_tsc(const struct dp_reasm *re, const struct dp_session *ss, unsigned len)
{
	uint32_t kbps = ss->up_n >= DP_UPLINK_SAMPLES ? ss->up_kbps : ss->profile.uplink_kbps;
	uint64_t gap = re->gap_tsc, cap = RTE_MAX(re->msg_tsc / 4, re->gap_tsc);

	if (kbps == 0)
		return gap;
	/* bits / (kbps * 1000) s, in TSC cycles: below 2^63 for any len and hz < 2^40 */
	gap += 2 * (rte_get_tsc_hz() * 8ull * (len + 28u) / (1000ull * kbps));
	return RTE_MIN(gap, cap);
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
	if (s->sess != NULL) {
		s->pub.profile = s->sess->profile;
		dp_measured(s->sess, &s->pub);
	} else
		memset(&s->pub.profile, 0, sizeof(s->pub.profile));
	memset(r, 0, sizeof(*r));
	/* The request's ids; a consumer that ran another variant names it (protocol.md 7). */
	r->c.model_id = s->pub.req.c.model_id;
	r->c.variant_id = s->pub.req.c.variant_id;
	r->c.split_id = s->pub.req.c.split_id;
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
			DP_DROP(lc, CHUNK_LATE);
			dp_tomb_input(lc, sess, (uint32_t)((uintptr_t)v >> 1), msg, now);
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
	if (s->nack_tsc != 0 && (msg->h.flags & PROTO_F_RETRANSMIT) && now > s->nack_tsc) {
		dp_rtt_sample(sess, dp_tsc_to_ns(now - s->nack_tsc));
		s->nack_tsc = 0;
	}
	s->received[c->index / 64] |= UINT64_C(1) << (c->index % 64);
	s->span[c->index][0] = c->raw_offset;
	s->span[c->index][1] = c->raw_offset + c->raw_len;
	lc->stats.chunks_placed++;
	if (++s->n_received == c->count)
		return dp_msg_complete(lc, s, now);
	/* Progress: the next NACK is a whole gap of silence away (the session's: on a slow
	 * uplink longer than the timer list's), its backoff starts over. */
	s->gap_tsc = dp_gap_tsc(re, sess, in_len);
	s->nack_backoff = 0;
	s->next_nack_tsc = now + s->gap_tsc;
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
			s->next_nack_tsc = now - s->gap_tsc / 4 +
					  (s->gap_tsc << RTE_MIN(k, (unsigned)DP_NACK_BACKOFF_MAX));
			s->nack_backoff++;
		} else if (s->nack_backoff == 0 && s->gap_tsc > re->gap_tsc) {
			lc->stats.nacks_deferred++;	/* its next chunk is not due yet */
		}
		dp_timer_arm(re, s, now);
	}
	dp_tombs_expire(re, now);
	dp_sessions_expire(lc, now);
}

/* ---- API for consumers ---- */

unsigned
dp_req_dequeue_burst(struct dp *dp, struct dp_req **reqs, unsigned n)
{
	return rte_ring_mc_dequeue_burst(dp->done, (void **)reqs, n, NULL);
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
