/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Answers: a request's RESPONSE encoded and sent (a TENSOR result chunked into the keep
 * ring), the echo model, ERRORs about whole messages; tombstones of finished messages, which
 * answer late chunks (PENDING while the consumer holds the request, the answer again once
 * sent) and the device's NACKs of a RESPONSE from the keep ring; answers posted by workers
 * (dp_req_respond()) drained and sent.
 *
 * Hot path (dp_nack_input, dp_resp_drain, what reasm.c calls): the owner lcore only, except
 * dp_req_respond() (any thread); no malloc, no log, no lock. Tombstones and the keep ring
 * are sized at init (dp_reasm_init(), dp_keep_init()); an old answer is overwritten, never
 * a buffer grown.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <rte_lcore.h>

#include "dataplane/dp_int.h"


/* ---- tombstones ---- */

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

static void
dp_tomb_pop(struct dp_reasm *re)
{
	rte_hash_del_key(re->msgs, &re->tombs[re->tomb_head].key);
	re->tomb_head = re->tomb_head + 1 == re->n_tombs_max ? 0 : re->tomb_head + 1;
	re->n_tombs--;
}

/* Tombstones past msg_timeout_us go, oldest first (the ring is in expiry order). */
void
dp_tombs_expire(struct dp_reasm *re, uint64_t now)
{
	while (re->n_tombs != 0 && re->tombs[re->tomb_head].expire_tsc <= now)
		dp_tomb_pop(re);
}

/*
 * Remember a finished message's key for msg_timeout_us (docs/protocol.md 12.2): its late or
 * duplicated chunks are then answered with its kept answer, not taken for a new message.
 * Replaces the key's slot in the table. When the ring is full the oldest goes first (a late
 * chunk of it would open a slot that times out). @return the tombstone's index
 */
uint32_t
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

void
dp_slot_hdr(const struct dp_slot *s, struct proto_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->client_id = s->pub.hdr.client_id;
	h->request_id = s->pub.hdr.request_id;
	h->session_id = s->pub.hdr.session_id;
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
void
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
bool
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

/* ---- late chunks and NACKs of answers ---- */

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

/* A finished message's answer again to session sess, at most once per gap, to the
 * session's (verified) address. */
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
 * A late chunk of the finished message tombstone i remembers: RESPONSE PENDING while the
 * consumer holds the request, its answer again once sent (the caller counted it).
 */
void
dp_tomb_input(struct dp_lcore *lc, const struct dp_session *sess, uint32_t i,
	      const struct proto_msg *msg, uint64_t now)
{
	struct dp_tomb *t = &lc->re.tombs[i];

	if (t->pending)
		dp_send_pending(lc, sess, t, msg, now);
	else
		dp_tomb_resend(lc, sess, i, now);
}

/*
 * A device's NACK of a RESPONSE (docs/protocol.md 8): the listed chunks of the kept answer
 * again, to the session's address (a verified source), at most once per half gap (the
 * device NACKs a gap after the last chunk it got, so a whole gap would race with it). A
 * NACK of no kept answer, or of another chunk count, gets ERROR UNKNOWN_REQUEST.
 */
void
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

	r->c.model_id = q->model_id;	/* variant and split: preset to the request's */
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
void
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

void
dp_req_set_tensor(struct dp_req *req, const struct proto_tensor *t)
{
	req->resp.result_kind = PROTO_RES_TENSOR;
	req->resp.top_k = 0;
	req->resp.c.t = *t;
}

/*
 * After an answer is in the ring: wake its lcore if it sleeps (dp_lcore_sleep() in rx.c).
 * The fence orders the enqueue before the flag's load; of several answerers, the one that
 * takes the flag writes, once per sleep. A failed write (EAGAIN: the counter is already
 * full of wakes) still leaves the eventfd readable.
 */
static void
dp_wake_answer(struct dp_wake *w)
{
	static const uint64_t one = 1;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (__atomic_load_n(&w->asleep, __ATOMIC_RELAXED) != 0 &&
	    __atomic_exchange_n(&w->asleep, 0, __ATOMIC_SEQ_CST) != 0) {
		ssize_t rc = write(w->fd, &one, sizeof(one));

		(void)rc;
	}
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
	dp_wake_answer(&s->lc->wake);
}

/* ---- init path ---- */

/*
 * The keep ring: at least the largest answer (max_msg_bytes of RAW at the smallest
 * max_dgram a device may ask for: the most chunks and header bytes), mapped and touched.
 */
int
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
