/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the dataplane's .c files only: the per-lcore state and the helpers between them.
 * port.c is the init path (may allocate and log); rx.c, tx.c, session.c, auth.c, reasm.c
 * (reassembly) and response.c (answers, tombstones, the keep ring) are the hot path (bursts,
 * no malloc, no log, no lock), their init functions excepted.
 */
#ifndef TG_DP_INT_H
#define TG_DP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <time.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "dataplane/dataplane.h"
#include "dataplane/dp_parse.h"

enum {
	DP_BURST = 32,		/* mbufs per rx_burst and per tx_burst */
	DP_DRAIN_TENSOR_BYTES = 256 << 10,	/* tensor answer bytes chunked per drain pass */
	DP_PREFETCH = 3,	/* prefetch distance within a burst */
	DP_TX_BUF = 2 * DP_BURST,	/* frames buffered before a forced flush */
	DP_TX_RETRIES = 2,	/* extra tx_burst calls before unsent frames are freed */
	DP_HDR_LEN = RTE_ETHER_HDR_LEN + 20 + 8,	/* Ethernet + IPv4 (no options) + UDP */
	DP_NACKS_MAX = 48,	/* NACKs without progress: an abandoned message costs no more */
	DP_NACKS_STEADY = 32,	/* the first ones a gap apart (a device under load may take
				 * several to get a resend through), */
	DP_NACK_BACKOFF_MAX = 6,	/* then 2, 4 ... 64 gaps apart */
};

#define DP_DROP(lc, sym)	((lc)->stats.drop[DP_DROP_##sym]++)

/** Where a datagram came from, i.e. where its answers go (all in network order). */
struct dp_peer {
	struct rte_ether_addr mac;	/* Ethernet source of the datagram: the next hop back */
	rte_be32_t ip;
	rte_be16_t port;
	bool crc;			/* it seals (CRC or MAC): our datagrams to it carry CRC */
};

/**
 * Anti-replay window of a session (docs/protocol.md 12.5, RFC 4303 3.4.3): the highest
 * request id a tagged REQUEST opened, and which of the 64 ids up to it were answered.
 */
struct dp_replay {
	uint32_t top;			/* highest request id opened */
	bool any;			/* top is set */
	uint64_t answered;		/* bit i: request id top - i was answered */
};

/**
 * A source IP address holding sessions on this lcore (docs/protocol.md 12.6): what the
 * per-source caps and the fair share of message slots count. Exists while it has sessions.
 */
struct dp_source {
	rte_be32_t ip;			/* the key of lc->re.sources */
	uint32_t sessions;		/* sessions bound to an address of this IP */
	uint32_t open;			/* unfinished (OPEN) messages of those sessions */
};

/**
 * A session (docs/protocol.md 12.1): opened by a HELLO, bound to the client id and source
 * address it came from; a datagram naming it from elsewhere is from an unverified source.
 * It is unverified until a datagram carrying its id comes from its address (the id was sent
 * only there), and moves to another address only when that address echoes a path token.
 */
struct dp_session {
	uint64_t id;			/* random, non-zero; the key of lc->re.sessions */
	uint32_t client_id;
	uint32_t inflight;		/* messages it holds (open, queued, or being answered) */
	uint32_t open;			/* of those, unfinished (OPEN): counted in src->open */
	uint32_t hello_nonce;		/* request id of the HELLO that opened it (idempotency) */
	uint32_t moves;			/* validated moves: part of every path token, so a token
					 * is spent once the session moved */
	bool verified;			/* its address proved it receives there */
	struct dp_peer peer;		/* the address it is bound to: where answers go */
	struct dp_peer hello_from;	/* the opening HELLO's address (key of re.hellos) */
	struct dp_source *src;		/* peer.ip's entry */
	uint64_t last_tsc;		/* its last datagram: idle past the TTL, it is forgotten */
	TAILQ_ENTRY(dp_session) lru;	/* in re.lru (verified) or re.unv, least recent first */
	struct proto_hello profile;	/* the device's last HELLO, for split advice */
	uint32_t up_kbps;		/* its uplink as measured (dp_uplink_sample), smoothed */
	uint32_t up_n;			/* messages measured (capped) */
	uint32_t rtt_us;		/* its RTT as measured (NACK to resent chunk), smoothed */
	uint32_t rtt_n;			/* samples of it (capped) */
	struct dp_replay replay;	/* auth: request ids tagged REQUESTs opened */
};

/** Key of re.hellos: a retransmitted HELLO (same client, nonce and address) finds its
 * session again instead of opening another (docs/protocol.md 12.1). */
struct dp_hello_key {
	uint32_t client_id;
	uint32_t nonce;
	rte_be32_t ip;
	rte_be16_t port;
	uint16_t zero;			/* padding, always 0: keys are hashed as bytes */
};

TAILQ_HEAD(dp_session_list, dp_session);

/** A message's identity: the gateway keys a message by (session, request id). */
struct dp_key {
	uint64_t session_id;
	uint32_t request_id;
	uint32_t zero;			/* padding, always 0: keys are hashed as bytes */
};

enum dp_slot_state {
	DP_SLOT_FREE,			/* on the free stack */
	DP_SLOT_OPEN,			/* reassembling: in the message table and the timer list */
	DP_SLOT_HELD,			/* complete: with the echo model or the consumer */
	DP_SLOT_ANSWERED,		/* dp_req_respond() posted it to the owner's ring */
};

/** A message slot: the consumer-visible request first, then the reassembly state. */
struct dp_slot {
	struct dp_req pub;		/* what dp_req_dequeue_burst() hands out */
	struct dp_lcore *lc;		/* owner: only its thread changes anything below */
	struct dp_session *sess;	/* holds it (a session holding slots is never forgotten) */
	struct dp_key key;
	TAILQ_ENTRY(dp_slot) timer;	/* OPEN: position in lc->re.open, by deadline */
	uint64_t first_tsc;		/* first chunk's arrival */
	uint64_t deadline_tsc;		/* OPEN: a gap after the last chunk or NACK: NACK again,
					 * or time out */
	uint32_t tomb;			/* HELD: its tombstone, which keeps its answer */
	uint16_t n_received;		/* distinct chunks placed */
	uint8_t state;			/* enum dp_slot_state */
	uint8_t nack_backoff;		/* OPEN: NACKs since the last chunk placed */
	uint64_t next_nack_tsc;		/* OPEN: no NACK before this (its gap, then backoff) */
	uint64_t gap_tsc;		/* OPEN: its gap of silence before a NACK: the session's
					 * (dp_gap_tsc()), set at each chunk placed */
	uint32_t rx_bytes;		/* OPEN: datagram bytes received for it (duplicates too) */
	uint32_t nack_bytes;		/* OPEN: NACK bytes sent for it: never above rx_bytes */
	uint64_t nack_tsc;		/* OPEN: its last NACK, until a resent chunk came; 0 */
	uint64_t *received;		/* bitmap, bit i: chunk i placed */
	uint32_t (*span)[2];		/* [i]: raw offset and end of chunk i, once placed */
};

TAILQ_HEAD(dp_slot_list, dp_slot);

enum {
	/* An answer a tombstone keeps: a RESPONSE with up to 16 top-k entries, or an ERROR. */
	DP_ANSWER_MAX = PROTO_RESPONSE_LEN + 16 * PROTO_TOPK_ENTRY_LEN,
};

/**
 * A completed or refused message, remembered for msg_timeout_us after it finished: its late
 * chunks are dropped, not taken for a new message, and answered by resending its answer, at
 * most once per gap (docs/protocol.md 12.2).
 */
struct dp_tomb {
	struct dp_key key;
	uint64_t expire_tsc;
	uint64_t resent_tsc;		/* last send or resend of the answer (or of NACKed chunks,
					 * or of PENDING) */
	bool pending;			/* whole, with the consumer, not answered yet */
	uint16_t answer_len;		/* 0: none here (the consumer has it, or it is kept in the
					 * keep ring, or it was too long to keep) */
	uint16_t keep_chunks;		/* chunks of a tensor answer in the keep ring; 0 none */
	uint32_t keep_len;		/* their bytes, back to back from keep_pos */
	uint64_t keep_pos;		/* virtual position in lc->re.keep (dp_keep_at()) */
	uint8_t answer[DP_ANSWER_MAX];
};

/** Sessions and reassembly of one lcore; sized at dp_create() from the limits, never grow. */
struct dp_reasm {
	struct rte_hash *msgs;		/* dp_key -> open slot, or tombstone (tagged index) */
	struct rte_hash *sessions;	/* session id -> dp_session */
	struct rte_hash *hellos;	/* dp_hello_key of its opening HELLO -> dp_session */
	struct rte_hash *sources;	/* source IP -> dp_source */
	struct dp_source *src_mem;	/* [n_sess] */
	struct dp_source **free_src;	/* stack of n_free_src */
	uint32_t n_free_src;
	uint32_t n_src_open;		/* sources holding unfinished messages */
	struct dp_session_list unv;	/* unverified sessions, least recently used first */
	struct dp_slot *slots;		/* [n_slots] */
	struct dp_slot **free_slots;	/* stack of n_free */
	struct dp_session *sess_mem;	/* [n_sess] */
	struct dp_session **free_sess;	/* stack of n_free_sess */
	struct dp_session_list lru;	/* verified sessions, least recently used first */
	struct dp_tomb *tombs;		/* FIFO ring [n_tombs_max], oldest at tomb_head */
	struct dp_slot_list open;	/* OPEN slots, earliest deadline first (every deadline
					 * is an event + one gap, events come in time order) */
	uint8_t *tensor_mem;		/* n_slots * stride bytes, mapped and touched at init */
	size_t tensor_mem_len;
	void *track_mem;		/* bitmaps and spans of every slot */
	struct rte_ring *resp;		/* answered requests posted by any thread, to send */
	/* Tensor answers (chunked RESPONSEs) kept for resends: a byte ring written FIFO, an
	 * answer contiguous in it. keep_head only grows (virtual positions); an answer at pos
	 * is intact while keep_head <= pos + keep_size, then overwritten by newer ones. */
	uint8_t *keep;
	size_t keep_size;
	uint64_t keep_head;
	struct proto_dgram *keep_dg;	/* chunker scratch: keep_max_dg entries */
	unsigned keep_max_dg;
	uint32_t n_slots, n_free, n_sess, n_free_sess;
	uint32_t n_tombs_max, tomb_head, n_tombs;
	uint64_t gap_tsc;		/* config gap_timeout_us */
	uint64_t msg_tsc;		/* config msg_timeout_us */
	uint64_t ttl_tsc;		/* config session_ttl_ms */
	uint64_t sid_key[2];		/* SipHash key making session ids unguessable */
	uint64_t tok_key[2];		/* SipHash key making path tokens unguessable */
	uint64_t tok_tsc;		/* path token epoch: a token lives 1 to 2 of them */
	uint64_t sid_seq;		/* session ids hashed so far */
	struct proto_limits plim;	/* what the decoder enforces */
	bool echo;			/* answer PROTO_MODEL_ECHO here */
};

/*
 * How an answer wakes a sleeping RX lcore: the lcore sets `asleep` and sleeps in ppoll() on
 * the eventfd; whoever posts an answer and takes `asleep` from 1 to 0 writes the eventfd.
 * Both sides' flag and ring accesses are sequentially consistent, so either the lcore sees
 * the answer in its ring before it sleeps or the answerer sees the flag.
 */
struct dp_wake {
	int fd;				/* eventfd, nonblocking; -1 before init */
	uint32_t asleep;		/* 1 while the lcore is (about to be) asleep */
} __rte_cache_aligned;

/** One RX lcore: its queue pair, TX buffer, idle state and counters. Owner thread only. */
struct dp_lcore {
	struct dp *dp;			/* the dataplane this lcore serves */
	struct rte_mempool *pool;	/* mbufs for RX and for replies */
	uint16_t port_id;
	uint16_t queue_id;		/* RX and TX queue of this lcore */
	struct rte_ether_addr mac;	/* the port's address */
	rte_be32_t ip;			/* the gateway's address */
	rte_be16_t udp_port;		/* the protocol's port */
	bool csum_zero_ok;		/* config udp_csum_zero_ok */
	struct dp_parse_cfg parse;	/* the same, for dp_parse_frame() */
	uint16_t ip_id;			/* IPv4 identification of the next frame we originate */
	uint16_t max_payload;		/* UDP payload bytes that fit the MTU and an mbuf */

	/* TX: frames buffered until DP_BURST, the drain deadline, or an idle poll. */
	uint16_t tx_n;
	uint64_t tx_deadline;		/* TSC by which buffered frames must leave */
	uint64_t tx_drain_tsc;		/* config tx_drain_us in TSC cycles */
	struct rte_mbuf *tx_pkts[DP_TX_BUF];

	uint64_t timers_tsc;		/* reassembly timers run by then even under full bursts */
	bool stopping;			/* dp_stop(): sending its last answers, TX waits */

	/* Idle back-off. */
	uint64_t busy_tsc;		/* TSC of the last poll that found work */
	uint64_t spin_tsc;		/* config idle_spin_us in TSC cycles */
	uint64_t deep_tsc;		/* config idle_deep_after_us in TSC cycles */
	uint32_t sleep_us;		/* next back-off sleep; 0 while spinning */

	struct dp_reasm re;
	clockid_t cpu_clock;		/* this lcore thread's CPU clock (dp_lcore_cpu_ns()) */
	bool cpu_clock_set;		/* cpu_clock valid: set once by the loop at its start */
	/* Authentication (auth.c): the keys of this loop pass, and the last table taken (what
	 * dp_auth_keys_swap() waits for). */
	const struct proto_keys *keys;
	const struct proto_keys *keys_seen;
	struct dp_stats stats;
	/* Written by the threads that answer (dp_req_respond()): a line of its own. */
	struct dp_wake wake;
} __rte_cache_aligned;

/** What HELLO_REPLYs list: published whole, replaced whole (dp_catalog_set()). */
struct dp_catalog {
	uint32_t gen;			/* catalog_gen devices see */
	unsigned n;			/* entries, the echo diagnostic's last */
	struct proto_catalog_entry e[];
};

struct dp {
	struct dp_config cfg;		/* copy of the caller's, port name dropped */
	uint16_t port_id;
	uint16_t n_queues;
	struct rte_mempool *pool;
	struct dp_lcore **lc;		/* [n_queues], each on its own cache lines */
	struct rte_ring *done;		/* completed requests, RX lcores -> consumers (when no
					 * deliver hook is set) */
	dp_deliver_fn deliver;		/* or this hook, called by the RX lcores */
	void *deliver_ctx;
	dp_busy_fn busy;		/* the consumer's busy hint, or NULL */
	void *busy_ctx;
	/* RCU: RX lcores read catalog once per HELLO; dp_catalog_set() swaps the pointer and
	 * frees the old one after every lcore passed a quiescent state (end of a loop pass,
	 * or an idle sleep, during which it is offline). */
	struct dp_catalog *catalog;
	struct rte_rcu_qsbr *qsbr;	/* one reader per queue, thread id = queue */
	const struct proto_keys *keys;	/* device keys, published by dp_auth_keys_swap() */
	int stop;			/* set by dp_stop(), read by the RX loops */
	bool running;			/* RX loops launched */
	bool port_started;
	struct dp_pktdrops *pktdrops;	/* af_packet ports: the kernel's ring drops; or NULL */
};

/** The catalog published now: valid until the caller's next quiescent state. */
static inline const struct dp_catalog *
dp_catalog_get(const struct dp *dp)
{
	return __atomic_load_n(&dp->catalog, __ATOMIC_ACQUIRE);
}

/* pktdrops.c, init path and dp_stats_get(): an af_packet port's sockets' ring drops (the
 * PMD reports none); open returns -ENOENT when no socket is bound to ifindex. */
enum { DP_PKTDROPS_MAX_FDS = 16 };
struct dp_pktdrops;
int dp_pktdrops_open(struct dp_pktdrops **out, int ifindex);
uint64_t dp_pktdrops_read(struct dp_pktdrops *p);
unsigned dp_pktdrops_sockets(const struct dp_pktdrops *p);
void dp_pktdrops_close(struct dp_pktdrops *p);

/* rx.c: the RX loop (dp_lcore_main() is what dp_start() launches) */
int dp_lcore_main(void *arg);

/* reasm.c, hot path: a datagram that passed the UDP checks (payload lies in an mbuf that
 * stays the caller's; now is the burst's TSC; returns the message it completed, for
 * dp_reasm_deliver()); NACKs and timeouts; a slot given back. */
struct dp_slot *dp_udp_input(struct dp_lcore *lc, const struct dp_peer *from,
			     const uint8_t *payload, uint16_t len, uint64_t now);
void dp_reasm_deliver(struct dp_lcore *lc, struct dp_slot **done, unsigned n);
void dp_reasm_timers(struct dp_lcore *lc, uint64_t now);
void dp_slot_put(struct dp_lcore *lc, struct dp_slot *s);

/* reasm.c, init path */
int dp_reasm_init(struct dp_lcore *lc, unsigned n_slots, struct tg_err *err);
void dp_reasm_free(struct dp_lcore *lc);

/* response.c, hot path: replies (dp_reply_error: the ERROR answering datagram in;
 * dp_slot_error: an ERROR about slot s's whole message, kept in its tombstone when keep);
 * tombstones of finished messages (dp_tomb_add: returns its index; dp_tomb_forget_lost: a
 * tensor answer overwritten in the keep ring, true if the request was forgotten;
 * dp_tomb_input: a late chunk answered from tombstone i); a device's NACK of a RESPONSE;
 * the echo model (answers and frees s); answers posted by workers (dp_resp_drain()). */
void dp_reply_error(struct dp_lcore *lc, const struct dp_peer *to, const uint8_t *in,
		    uint16_t in_len, enum proto_status st, enum proto_reason r);
void dp_slot_hdr(const struct dp_slot *s, struct proto_hdr *h);
void dp_slot_error(struct dp_lcore *lc, const struct dp_slot *s, enum proto_reason r, bool keep);
uint32_t dp_tomb_add(struct dp_reasm *re, const struct dp_key *key, uint64_t now);
void dp_tombs_expire(struct dp_reasm *re, uint64_t now);
bool dp_tomb_forget_lost(struct dp_lcore *lc, uint32_t i);
void dp_tomb_input(struct dp_lcore *lc, const struct dp_session *sess, uint32_t i,
		   const struct proto_msg *msg, uint64_t now);
void dp_nack_input(struct dp_lcore *lc, struct dp_session *sess, const struct proto_msg *msg,
		   const uint8_t *in, uint16_t in_len, uint64_t now);
void dp_echo(struct dp_lcore *lc, struct dp_slot *s);
unsigned dp_resp_drain(struct dp_lcore *lc);

/* response.c, init path: the keep ring (called by dp_reasm_init()) */
int dp_keep_init(struct dp_reasm *re, const struct dp_config *cfg);

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

static inline uint64_t
dp_tsc_to_ns(uint64_t tsc)
{
	return (uint64_t)((double)tsc * 1e9 / (double)rte_get_tsc_hz());
}

static inline void
dp_reply_reason(struct dp_lcore *lc, const struct dp_peer *to, const uint8_t *in,
		uint16_t in_len, enum proto_reason r)
{
	dp_reply_error(lc, to, in, in_len, proto_reason_status(r), r);
}

/* session.c, hot path: HELLO answered; a datagram's session checked against its source
 * (NULL: unknown, *why PROTO_OK, or bound elsewhere, *why PROTO_E_PATH_UNVERIFIED; the
 * caller counts and answers); idle sessions forgotten. */
void dp_hello_input(struct dp_lcore *lc, const struct dp_peer *from, const struct proto_msg *m,
		    const uint8_t *in, uint16_t in_len, uint64_t now);
struct dp_session *dp_session_verify(struct dp_lcore *lc, const struct dp_peer *from,
				     const struct proto_hdr *h, uint64_t now,
				     enum proto_reason *why);
void dp_sessions_expire(struct dp_lcore *lc, uint64_t now);

/* session.c, init path */
int dp_sessions_init(struct dp_lcore *lc, unsigned n_sess, struct tg_err *err);
void dp_sessions_free(struct dp_lcore *lc);

/* Unfinished-message accounting of a session and its source (fair share, caps). */
static inline void
dp_open_inc(struct dp_reasm *re, struct dp_session *s)
{
	s->open++;
	if (s->src->open++ == 0)
		re->n_src_open++;
}

static inline void
dp_open_dec(struct dp_reasm *re, struct dp_session *s)
{
	s->open--;
	if (--s->src->open == 0)
		re->n_src_open--;
}

/* auth.c, hot path (docs/protocol.md 12.5). dp_auth_input: the tag of a datagram that
 * passed the header checks (r: the decoder's verdict; m->h as far as it got), and a HELLO's
 * nonce; false: refused, counted and answered here. dp_auth_fresh: a REQUEST chunk of a
 * message the lcore does not hold is no replay (and opens its id in the window);
 * dp_auth_answered: its request id was answered. dp_auth_seal: our datagram at dg sealed
 * for its client (MAC under its key, CRC when the peer seals, else nothing). */
bool dp_auth_input(struct dp_lcore *lc, const struct dp_peer *from, const uint8_t *in,
		   uint16_t len, const struct proto_msg *m, enum proto_reason r, uint64_t now);
bool dp_auth_fresh(struct dp_lcore *lc, struct dp_session *s, const uint8_t *in, uint16_t len);
void dp_auth_answered(struct dp_session *s, uint32_t request_id);
void dp_auth_seal(struct dp_lcore *lc, uint8_t *dg, uint16_t len, const struct dp_peer *to);

/** At the start of a loop pass: the keys dp_auth_keys_swap() published, acknowledged in
 * keys_seen; held until the next pass (or through the drain at stop). */
static inline void
dp_auth_poll(struct dp_lcore *lc)
{
	lc->keys = __atomic_load_n(&lc->dp->keys, __ATOMIC_ACQUIRE);
	if (lc->keys_seen != lc->keys)
		__atomic_store_n(&lc->keys_seen, lc->keys, __ATOMIC_RELEASE);
}

/* tx.c */
void dp_tx_flush(struct dp_lcore *lc);
void dp_tx_flush_wait(struct dp_lcore *lc);
uint8_t *dp_tx_udp_alloc(struct dp_lcore *lc, struct rte_mbuf **m);
void dp_tx_udp_send(struct dp_lcore *lc, struct rte_mbuf *m, const struct dp_peer *to,
		    uint16_t payload_len);

/** Queue a complete frame for TX; takes m. Flushes when the buffer holds a burst. */
static inline void
dp_tx_enqueue(struct dp_lcore *lc, struct rte_mbuf *m)
{
	if (lc->tx_n == 0)
		lc->tx_deadline = rte_rdtsc() + lc->tx_drain_tsc;
	lc->tx_pkts[lc->tx_n++] = m;
	if (lc->tx_n >= DP_BURST) {
		if (unlikely(lc->stopping))
			dp_tx_flush_wait(lc);	/* its last answers: no later pass */
		else
			dp_tx_flush(lc);
	}
}

#endif
