/*
 * Shared by the dataplane's .c files only: the per-lcore state, the hot-path helpers between rx.c, tx.c
 * and reasm.c. port.c is the init path (may allocate and log); rx.c, tx.c and reasm.c are the
 * hot path (bursts, no malloc, no log, no lock).
 */
#ifndef TG_DP_INT_H
#define TG_DP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane/dataplane.h"

enum {
	DP_BURST = 32,		/* mbufs per rx_burst and per tx_burst */
	DP_PREFETCH = 3,	/* prefetch distance within a burst */
	DP_TX_BUF = 2 * DP_BURST,	/* frames buffered before a forced flush */
	DP_TX_RETRIES = 2,	/* extra tx_burst calls before unsent frames are freed */
	DP_HDR_LEN = RTE_ETHER_HDR_LEN + 20 + 8,	/* Ethernet + IPv4 (no options) + UDP */
};

#define DP_DROP(lc, sym)	((lc)->stats.drop[DP_DROP_##sym]++)

/** Where a datagram came from, i.e. where its answers go (all in network order). */
struct dp_peer {
	struct rte_ether_addr mac;	/* Ethernet source of the datagram: the next hop back */
	rte_be32_t ip;
	rte_be16_t port;
};

/** A message's identity: who sent it (source address, client id, session) and which. */
struct dp_key {
	rte_be32_t ip;			/* IPv4 source */
	rte_be16_t port;		/* UDP source port */
	uint16_t zero;			/* padding, always 0: keys are hashed as bytes */
	uint32_t client_id;
	uint32_t request_id;
	uint64_t session_id;
};

/** A client holding messages on this lcore. */
struct dp_client {
	struct dp_key key;		/* request_id and session_id 0: the client part only */
	uint32_t inflight;		/* messages it holds (open, queued, or being answered) */
};

enum dp_slot_state {
	DP_SLOT_FREE,			/* on the free stack */
	DP_SLOT_OPEN,			/* reassembling: in the message table and the timer list */
	DP_SLOT_HELD,			/* complete: with the consumer or waiting to be answered */
};

/** A message slot: the consumer-visible request first, then the reassembly state. */
struct dp_slot {
	struct dp_req pub;		/* what dp_req_dequeue_burst() hands out */
	struct dp_lcore *lc;		/* owner: only its thread changes anything below */
	struct dp_client *client;
	struct dp_key key;
	struct dp_peer peer;		/* where answers go */
	TAILQ_ENTRY(dp_slot) timer;	/* OPEN: position in lc->open, by deadline */
	uint64_t first_tsc;		/* first chunk's arrival */
	uint64_t deadline_tsc;		/* OPEN: a gap after the last chunk or NACK: NACK again,
					 * or time out */
	uint32_t rx_bytes;		/* datagram bytes received for it: caps each NACK */
	uint16_t n_received;		/* distinct chunks placed */
	uint8_t state;			/* enum dp_slot_state */
	uint64_t *received;		/* bitmap, bit i: chunk i placed */
	uint32_t (*span)[2];		/* [i]: raw offset and end of chunk i, once placed */
};

TAILQ_HEAD(dp_slot_list, dp_slot);

/** A completed or refused message remembered for a while: its late chunks are dropped. */
struct dp_tomb {
	struct dp_key key;
	uint64_t expire_tsc;
};

/** Reassembly state of one lcore; sized at dp_create() from the limits, never grows. */
struct dp_reasm {
	struct rte_hash *msgs;		/* dp_key -> open slot, or tombstone (tagged index) */
	struct rte_hash *clients;	/* client key -> dp_client, while it holds messages */
	struct dp_slot *slots;		/* [n_slots] */
	struct dp_slot **free_slots;	/* stack of n_free */
	struct dp_client *client_mem;	/* [n_slots]: a client holds at least one slot */
	struct dp_client **free_clients;	/* stack of n_free_clients */
	struct dp_tomb *tombs;		/* FIFO ring [n_tombs_max], oldest at tomb_head */
	struct dp_slot_list open;	/* OPEN slots, earliest deadline first (every deadline
					 * is an event + one gap, events come in time order) */
	uint8_t *tensor_mem;		/* n_slots * stride bytes, mapped and touched at init */
	size_t tensor_mem_len;
	void *track_mem;		/* bitmaps and spans of every slot */
	struct rte_ring *resp;		/* answered requests posted by any thread, to send */
	uint32_t n_slots, n_free, n_free_clients;
	uint32_t n_tombs_max, tomb_head, n_tombs;
	uint64_t gap_tsc;		/* config gap_timeout_us */
	uint64_t msg_tsc;		/* config msg_timeout_us */
	struct proto_limits plim;	/* what the decoder enforces */
	bool echo;			/* answer PROTO_MODEL_ECHO here */
};

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
	uint16_t ip_id;			/* IPv4 identification of the next frame we originate */
	uint16_t max_payload;		/* UDP payload bytes that fit the MTU and an mbuf */

	/* TX: frames buffered until DP_BURST, the drain deadline, or an idle poll. */
	uint16_t tx_n;
	uint64_t tx_deadline;		/* TSC by which buffered frames must leave */
	uint64_t tx_drain_tsc;		/* config tx_drain_us in TSC cycles */
	struct rte_mbuf *tx_pkts[DP_TX_BUF];

	uint64_t timers_tsc;		/* reassembly timers run by then even under full bursts */

	/* Idle back-off. */
	uint64_t busy_tsc;		/* TSC of the last poll that found work */
	uint64_t spin_tsc;		/* config idle_spin_us in TSC cycles */
	uint32_t sleep_us;		/* next back-off sleep; 0 while spinning */

	struct dp_reasm re;
	struct dp_stats stats;
} __rte_cache_aligned;

struct dp {
	struct dp_config cfg;		/* copy of the caller's, port name dropped */
	uint16_t port_id;
	uint16_t n_queues;
	struct rte_mempool *pool;
	struct dp_lcore **lc;		/* [n_queues], each on its own cache lines */
	struct rte_ring *done;		/* completed requests, RX lcores -> consumers */
	int stop;			/* set by dp_stop(), read by the RX loops */
	bool running;			/* RX loops launched */
	bool port_started;
};

/* rx.c: the RX loop (dp_lcore_main() is what dp_start() launches) */
int dp_lcore_main(void *arg);

/* reasm.c, hot path: a datagram that passed the UDP checks (payload lies in an mbuf that
 * stays the caller's; now is the burst's TSC; returns the message it completed, for
 * dp_reasm_deliver()); NACKs and timeouts; answered requests. */
struct dp_slot *dp_udp_input(struct dp_lcore *lc, const struct dp_peer *from,
			     const uint8_t *payload, uint16_t len, uint64_t now);
void dp_reasm_deliver(struct dp_lcore *lc, struct dp_slot **done, unsigned n);
void dp_reasm_timers(struct dp_lcore *lc, uint64_t now);
unsigned dp_resp_drain(struct dp_lcore *lc);

/* reasm.c, init path */
int dp_reasm_init(struct dp_lcore *lc, unsigned n_slots, struct tg_err *err);
void dp_reasm_free(struct dp_lcore *lc);

/* tx.c */
void dp_tx_flush(struct dp_lcore *lc);
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
	if (lc->tx_n >= DP_BURST)
		dp_tx_flush(lc);
}

#endif
