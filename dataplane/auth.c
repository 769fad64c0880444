/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Integrity and authentication on the RX lcores (docs/protocol.md 12.5): the tag of every
 * datagram of a device with a key, HELLO nonces that only grow, a per-session anti-replay
 * window over request ids, and the seal (MAC or CRC) on every datagram the gateway sends.
 *
 * Hot path (all but dp_auth_keys_swap): the owner lcore only; no allocation, no log, no lock.
 * The key table is immutable and shared by every lcore; its nonce array is the one mutable
 * part, updated with atomics (a device may reach two lcores). A new table is published by
 * dp_auth_keys_swap() and taken by each lcore at the start of a loop pass (dp_auth_poll());
 * the old one is handed back once every lcore took the new one or exited.
 */
#include <errno.h>
#include <time.h>

#include "dataplane/dp_int.h"

/*
 * One datagram refused for its tag or as a replay: counted under its reason instead of what
 * the decoder said (one datagram, one count), answered ERROR UNAUTHENTICATED only when the
 * session it names is bound to its source: a forger at another address gets nothing, not
 * even a tagged ERROR it could replay.
 */
static void
dp_auth_refuse(struct dp_lcore *lc, const struct dp_peer *from, const uint8_t *in,
	       uint16_t len, const struct proto_hdr *h, enum proto_reason decoded,
	       enum proto_reason why)
{
	struct dp_reasm *re = &lc->re;
	struct dp_session *s;
	void *v;

	if (decoded == PROTO_OK)
		lc->stats.proto.rx[h->type]--;
	else
		lc->stats.proto.reject[decoded]--;
	lc->stats.proto.reject[why]++;
	if (why == PROTO_E_REPLAY)
		DP_DROP(lc, REPLAY);
	else
		DP_DROP(lc, AUTH);
	if (h->session_id == 0 || rte_hash_lookup_data(re->sessions, &h->session_id, &v) < 0)
		return;
	s = v;
	if (s->client_id != h->client_id || s->peer.ip != from->ip || s->peer.port != from->port)
		return;
	dp_reply_error(lc, &s->peer, in, len, PROTO_ST_UNAUTHENTICATED, why);
}

/*
 * A tagged HELLO's nonce against the highest the device's tagged HELLOs carried: lower
 * (serial arithmetic, RFC 1982) is a replay, equal a retransmission. @return true if fresh
 */
static bool
dp_auth_nonce(const struct proto_keys *t, const struct proto_key *k, uint32_t nonce)
{
	uint64_t *slot = &t->nonce[k - t->k];
	uint64_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
	uint64_t want = UINT64_C(1) << 32 | nonce;

	do {
		if (cur != 0 && (int32_t)(nonce - (uint32_t)cur) < 0)
			return false;
		if (cur == want)
			return true;
	} while (!__atomic_compare_exchange_n(slot, &cur, want, false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return true;
}

bool
dp_auth_input(struct dp_lcore *lc, const struct dp_peer *from, const uint8_t *in,
	      uint16_t len, const struct proto_msg *m, enum proto_reason r, uint64_t now)
{
	const struct dp_config *cfg = &lc->dp->cfg;
	const struct proto_key *k;
	enum proto_reason why;

	(void)now;
	/* Only a header of ours (steps 1-4 passed) names a client and a seal. */
	if (len < PROTO_HDR_LEN || r == PROTO_E_BAD_MAGIC || r == PROTO_E_BAD_VERSION)
		return true;
	if (cfg->auth == DP_AUTH_OFF) {
		if (r != PROTO_OK || !cfg->integrity_required ||
		    (m->h.flags & (PROTO_F_CRC | PROTO_F_MAC)))
			return true;
		/* Step 9 under integrity = required; never answered, like a wrong CRC. */
		lc->stats.proto.rx[m->h.type]--;
		lc->stats.proto.reject[PROTO_E_BAD_CRC]++;
		DP_DROP(lc, PROTO);
		return false;
	}
	k = proto_keys_find(lc->keys, m->h.client_id);
	if (!(m->h.flags & PROTO_F_MAC)) {
		if (cfg->auth == DP_AUTH_OPTIONAL) {
			if (r != PROTO_OK || !cfg->integrity_required ||
			    (m->h.flags & PROTO_F_CRC))
				return true;
			lc->stats.proto.rx[m->h.type]--;
			lc->stats.proto.reject[PROTO_E_BAD_CRC]++;
			DP_DROP(lc, PROTO);
			return false;
		}
		why = PROTO_E_NO_MAC;
	} else if (k == NULL || !proto_mac_ok(in, len, k->key)) {
		why = PROTO_E_BAD_MAC;
	} else if (r == PROTO_OK && m->h.type == PROTO_T_HELLO &&
		   !dp_auth_nonce(lc->keys, k, m->h.request_id)) {
		why = PROTO_E_REPLAY;
	} else {
		return true;
	}
	dp_auth_refuse(lc, from, in, len, &m->h, r, why);
	return false;
}

bool
dp_auth_fresh(struct dp_lcore *lc, struct dp_session *s, const uint8_t *in, uint16_t len)
{
	struct dp_replay *w = &s->replay;
	struct dp_key key = { .session_id = s->id };
	struct proto_hdr h = { 0 };
	uint32_t rid, back;
	int32_t ahead;

	/* Untagged (auth optional) ids are anyone's: they must not move the window. */
	if (lc->dp->cfg.auth == DP_AUTH_OFF || !(in[PROTO_OFF_FLAGS + 1] & PROTO_F_MAC))
		return true;
	rid = (uint32_t)in[PROTO_OFF_REQUEST_ID] << 24 | (uint32_t)in[PROTO_OFF_REQUEST_ID + 1] << 16 |
	      (uint32_t)in[PROTO_OFF_REQUEST_ID + 2] << 8 | in[PROTO_OFF_REQUEST_ID + 3];
	key.request_id = rid;
	/* Held (open, queued, or answered with its answer kept): idempotency, not replay. */
	if (rte_hash_lookup(lc->re.msgs, &key) >= 0)
		return true;
	ahead = (int32_t)(rid - w->top);
	if (!w->any || ahead > 0) {
		w->answered = !w->any || ahead >= 64 ? 0 : w->answered << ahead;
		w->top = rid;
		w->any = true;
		return true;
	}
	back = w->top - rid;
	if (back < 64 && !(w->answered >> back & 1))
		return true;	/* within the window, never answered: late, not replayed */
	h.type = PROTO_T_REQUEST;
	h.client_id = s->client_id;
	h.session_id = s->id;
	dp_auth_refuse(lc, &s->peer, in, len, &h, PROTO_OK, PROTO_E_REPLAY);
	return false;
}

void
dp_auth_answered(struct dp_session *s, uint32_t request_id)
{
	uint32_t back = s->replay.top - request_id;

	if (s->replay.any && back < 64)
		s->replay.answered |= UINT64_C(1) << back;
}

void
dp_auth_seal(struct dp_lcore *lc, uint8_t *dg, uint16_t len, const struct dp_peer *to)
{
	const struct proto_key *k;
	uint32_t id;

	if (len < PROTO_HDR_LEN)
		return;
	if (lc->dp->cfg.auth != DP_AUTH_OFF && lc->keys != NULL) {
		id = (uint32_t)dg[PROTO_OFF_CLIENT_ID] << 24 |
		     (uint32_t)dg[PROTO_OFF_CLIENT_ID + 1] << 16 |
		     (uint32_t)dg[PROTO_OFF_CLIENT_ID + 2] << 8 | dg[PROTO_OFF_CLIENT_ID + 3];
		k = proto_keys_find(lc->keys, id);
		if (k != NULL) {
			proto_seal_mac(dg, len, k->key);
			return;
		}
	}
	if (to->crc)
		proto_seal_crc(dg, len);
}

/* ---- control path ---- */

/* Nonces of the devices both tables know, carried into dst (the larger one wins). */
static void
dp_auth_nonces_carry(const struct proto_keys *src, const struct proto_keys *dst)
{
	if (src == NULL || dst == NULL)
		return;
	for (size_t i = 0; i < src->n; i++) {
		const struct proto_key *k = proto_keys_find(dst, src->k[i].client_id);
		uint64_t from = __atomic_load_n(&src->nonce[i], __ATOMIC_RELAXED), cur;
		uint64_t *slot;

		if (k == NULL || from == 0)
			continue;
		slot = &dst->nonce[k - dst->k];
		cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
		while ((cur == 0 || (int32_t)((uint32_t)from - (uint32_t)cur) > 0) &&
		       !__atomic_compare_exchange_n(slot, &cur, from, false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED))
			;
	}
}

const struct proto_keys *
dp_auth_keys_swap(struct dp *dp, const struct proto_keys *keys)
{
	const struct proto_keys *old = dp->keys;
	struct timespec ts = { .tv_nsec = 50000 };

	dp_auth_nonces_carry(old, keys);
	__atomic_store_n(&dp->keys, keys, __ATOMIC_RELEASE);
	dp->cfg.keys = keys;
	if (!__atomic_load_n(&dp->running, __ATOMIC_ACQUIRE))
		for (unsigned q = 0; q < dp->n_queues; q++)	/* dp_poll() drivers */
			dp->lc[q]->keys = dp->lc[q]->keys_seen = keys;
	/*
	 * Each running lcore takes the table at its next pass (an idle one wakes within a deep
	 * sleep). Not dp_synchronize(): a lcore that stops meanwhile drains its last answers
	 * offline with the table it holds, so it is waited for until it took the new one or
	 * has exited (dp_stop() cleared running).
	 */
	for (unsigned q = 0; q < dp->n_queues; q++)
		while (__atomic_load_n(&dp->running, __ATOMIC_ACQUIRE) &&
		       __atomic_load_n(&dp->lc[q]->keys_seen, __ATOMIC_ACQUIRE) != keys)
			nanosleep(&ts, NULL);
	/* HELLOs the old table saw while the lcores moved over. */
	dp_auth_nonces_carry(old, keys);
	return old;
}
