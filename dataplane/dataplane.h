/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dataplane: DPDK ports and queues, L2-L4 (ARP and ICMP echo answered for the gateway's own
 * IPv4 address, IPv4/UDP checked), chunk reassembly into request slots, and the TX path.
 * Prefix dp_. The only dataplane header other modules include.
 *
 * Threads. One RX lcore per port queue; it alone touches its queue, its TX queue, its flows
 * and its request slots (no locks between lcores; RSS keeps a client on one queue). Completed
 * requests leave in bursts through the consumer's deliver hook, called by the RX lcore
 * (dp_set_deliver()), or, without one, through one multi-producer/multi-consumer ring
 * (dp_req_dequeue_burst()); answers come back through the owner lcore's response ring
 * (dp_req_respond()), and the owner encodes and sends them, then frees the slot. What the RX
 * lcores read that others replace while they run (the catalog, the consumer's own state
 * behind its hook) is retired with RCU: dp_synchronize() returns once every RX lcore has
 * finished the loop pass it was in.
 *
 * Polling. An RX lcore spins while bursts bring packets and backs off (rte_pause(), then
 * nanosleep() doubling up to a cap) when they stop: on a 2-core host a spinning lcore would
 * take half of the engine's compute.
 */
#ifndef TG_DATAPLANE_H
#define TG_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/proto.h"
#include "util/util.h"

/*
 * Every reason the dataplane drops a frame, a chunk or a message: one line gives the enum
 * (DP_DROP_<sym>), the metric label (the lower-case sym, dp_drop_name()) and the help text
 * (dp_drop_help()). Exported as tailgate_dp_drops_total{reason="..."}. A limit that refuses
 * work is a reason too; where a reply is possible it is sent, and the help says which.
 */
#define DP_FOREACH_DROP(_)							\
	_(RUNT,            "frame shorter than an Ethernet header")		\
	_(MULTISEG,        "frame in more than one mbuf segment")		\
	_(ETH_DST,         "destination MAC neither ours nor broadcast")	\
	_(ETHERTYPE,       "neither IPv4 nor ARP (VLAN, IPv6, ...)")		\
	_(ARP_BAD,         "malformed ARP (not Ethernet/IPv4, short)")		\
	_(ARP_IGNORED,     "ARP not a request for our address")		\
	_(IP_RUNT,         "frame shorter than Ethernet + IPv4 header")		\
	_(IP_VERSION,      "IP version not 4")					\
	_(IP_IHL,          "IPv4 header length below 20 or beyond the frame")	\
	_(IP_LEN,          "IPv4 total length below its header or beyond the frame") \
	_(IP_CSUM,         "IPv4 header checksum wrong")			\
	_(IP_FRAG,         "IPv4 fragment (the protocol never fragments)")	\
	_(IP_DST,          "IPv4 destination not our address")			\
	_(IP_SRC,          "IPv4 source we must not answer (0, broadcast, multicast, loopback, ours)") \
	_(IP_PROTO,        "IPv4 protocol neither UDP nor ICMP")		\
	_(ICMP_BAD,        "ICMP shorter than its header or checksum wrong")	\
	_(ICMP_TYPE,       "ICMP other than echo request")			\
	_(UDP_RUNT,        "IPv4 payload shorter than a UDP header")		\
	_(UDP_LEN,         "UDP length differs from the IPv4 payload length")	\
	_(UDP_PORT,        "UDP destination port not ours")			\
	_(UDP_CSUM_ZERO,   "UDP checksum 0 (none) refused by policy")		\
	_(UDP_CSUM,        "UDP checksum wrong")				\
	_(PROTO,           "refused by the decoder (proto rejects say why; ERROR where due)") \
	_(SESSION_UNKNOWN, "session unknown (UNKNOWN_SESSION sent)")		\
	_(PATH_UNVERIFIED, "session bound to another address (UNKNOWN_SESSION path_unverified sent)") \
	_(PATH_TOKEN,      "HELLO with a wrong or spent path token (a new challenge sent)") \
	_(SESSION_FULL,    "HELLO found no free session (OVERLOADED sent)")		\
	_(SOURCE_SESSIONS, "HELLO from a source IP at max_sessions_source (OVERLOADED session_full sent)") \
	_(MSG_TYPE,        "message type not served here (NACK, ERROR, RESPONSE, HELLO_REPLY)") \
	_(CHUNK_DUP,       "chunk already placed (duplicate or resend)")	\
	_(CHUNK_LATE,      "chunk of a message already completed or refused (its answer, or PENDING, sent at most once per gap)") \
	_(CHUNK_MISMATCH,  "chunk disagrees with its message's first chunk (ERROR sent)") \
	_(CHUNK_PLACE,     "chunk overlaps or leaves a gap: message refused (ERROR sent)") \
	_(CHUNK_LZ4,       "chunk not decompressing to its size: chunk refused, stays missing (ERROR sent)") \
	_(CLIENT_INFLIGHT, "client at max in-flight messages (OVERLOADED sent)")	\
	_(SOURCE_INFLIGHT, "source IP at max_open_source unfinished messages (OVERLOADED sent)") \
	_(POOL_FULL,       "no free message slot on the lcore (OVERLOADED sent)")	\
	_(MSG_EVICTED,     "unfinished message's slot taken for fair share (UNKNOWN_REQUEST evicted sent)") \
	_(MSG_TIMEOUT,     "message incomplete at its timeout: slot freed (ERROR sent)") \
	_(RESP_ENCODE,     "response the encoder refused (INTERNAL ERROR sent)")	\
	_(NO_MBUF,         "reply not sent: mbuf pool empty")			\
	_(TX_FULL,         "reply not sent: TX queue full, mbuf freed")		\
	_(NACK_UNKNOWN,    "NACK of no answer kept here (UNKNOWN_REQUEST sent)")	\
	_(NACK_RATE,       "NACK within half a gap of the last send of its answer: ignored") \
	_(NACK_BUDGET,     "NACK not sent: it would pass the bytes its message brought") \
	_(AUTH,            "MAC missing or wrong (UNAUTHENTICATED sent to a verified source)") \
	_(REPLAY,          "request id already answered or below the window, or an old HELLO nonce (UNAUTHENTICATED sent to a verified source)")

enum dp_drop {
#define _(sym, help) DP_DROP_##sym,
	DP_FOREACH_DROP(_)
#undef _
	DP_DROP__COUNT
};

/** Counters of one RX lcore, or their sum (dp_stats_get()). Plain increments by the owner. */
struct dp_stats {
	uint64_t rx_pkts;		/* frames received from the port */
	uint64_t rx_bytes;		/* their bytes (Ethernet header on, no FCS) */
	uint64_t tx_pkts;		/* frames the port took */
	uint64_t tx_bytes;		/* their bytes */
	uint64_t arp_replies;		/* ARP requests for our address answered */
	uint64_t icmp_replies;		/* ICMP echo requests answered */
	uint64_t udp_rx;		/* datagrams to our port that passed IPv4/UDP checks */
	uint64_t hello_replies;		/* HELLO_REPLY datagrams sent */
	uint64_t sessions_opened;	/* sessions a HELLO opened */
	uint64_t sessions_expired;	/* sessions forgotten after session_ttl_ms idle */
	uint64_t sessions_evicted;	/* unverified sessions a HELLO took the place of */
	uint64_t sessions_moved;	/* sessions moved to an address that echoed its token */
	uint64_t path_challenges;	/* HELLO_REPLYs with a path token sent */
	uint64_t hello_dups;		/* retransmitted HELLOs given their session again */
	uint64_t pending_sent;		/* PENDING answers to chunks of held requests */
	uint64_t chunks_placed;		/* REQUEST chunks unpacked into their slot */
	uint64_t msgs_opened;		/* messages given a slot */
	uint64_t msgs_completed;	/* messages whose every chunk arrived */
	uint64_t msgs_echoed;		/* of those, answered by the echo model on the lcore */
	uint64_t msgs_delivered;	/* of those, handed to the consumer ring */
	uint64_t resp_sent;		/* RESPONSE datagrams sent */
	uint64_t nacks_sent;		/* NACK datagrams sent */
	uint64_t nacks_deferred;	/* gap timers of a slow uplink's message that sent no NACK:
					 * its next chunk was not due yet (docs/protocol.md 12.2) */
	uint64_t errors_sent;		/* ERROR datagrams sent */
	uint64_t answers_resent;	/* kept answers resent to a late chunk of their request */
	uint64_t tensor_answers;	/* TENSOR RESPONSEs built (one or more chunks each) */
	uint64_t resp_chunks_resent;	/* RESPONSE chunks resent (NACKs, duplicate requests) */
	uint64_t answers_lost;		/* kept tensor answers overwritten before their request
					 * was forgotten (a resend is then served anew) */
	uint64_t idle_sleeps;		/* sleeps of the idle back-off */
	uint64_t idle_wakes;		/* of those, ended early by an answer to send */
	uint64_t busy_sleeps;		/* of those, as long as the consumer's busy hint said */
	uint64_t busy_cycles;		/* TSC cycles of loop passes whose burst returned frames
					 * (rx, work, TX flush): the lcore's CPU cost without idle
					 * polling, as VPP counts clocks per packet (make bench) */
	uint64_t port_missed;		/* frames the port dropped before RX (ethdev imissed,
					 * rx_nombuf, ierrors; for net_af_packet, which reports
					 * none, its sockets' PACKET_STATISTICS drops; dp_stats_get()
					 * only) */
	uint64_t drop[DP_DROP__COUNT];	/* per reason, enum dp_drop */
	struct proto_stats proto;	/* decoded messages by type, refusals by reason */
};

/** Metric label of a drop reason ("ip_csum"); "?" when out of range. */
const char *dp_drop_name(enum dp_drop d);
/** One-line description of a drop reason; "?" when out of range. */
const char *dp_drop_help(enum dp_drop d);

/**
 * Limits on what clients may make the gateway hold; each enforced with its own counter and
 * reply. A message holds its slot from its first chunk until its response is sent (or it
 * is refused or times out). Slots are split evenly across RX lcores (RSS keeps a client on
 * one), and allocated, touched and bounded at dp_create(): nothing grows later.
 */
struct dp_limits {
	uint32_t max_msg_bytes;		/* largest raw (decompressed) tensor: sizes each slot */
	uint16_t max_chunks;		/* chunks per message */
	uint32_t max_inflight_client;	/* messages a client (its session) holds */
	uint32_t max_inflight_total;	/* messages all clients hold: the slot pool */
	uint32_t max_sessions;		/* sessions held at once (HELLO beyond: OVERLOADED, once
					 * no unverified session can be evicted) */
	uint32_t max_sessions_source;	/* sessions of one source IP (per lcore) */
	uint32_t max_open_source;	/* unfinished messages of one source IP (per lcore) */
};

/** Authentication (docs/protocol.md 12.5): what a datagram of a device with a key must carry. */
enum dp_auth_mode {
	DP_AUTH_OFF,			/* tags neither checked nor sent */
	DP_AUTH_OPTIONAL,		/* a tag, when present, must be valid */
	DP_AUTH_REQUIRED,		/* every datagram carries a valid tag */
};

/** Dataplane configuration; dp_config_default() fills every field with its default. */
struct dp_config {
	const char *port;		/* ethdev name ("net_af_xdp0"); NULL: the first port */
	uint32_t ipv4;			/* the gateway's own address, host order (required) */
	uint16_t udp_port;		/* the protocol's UDP port, host order (PROTO_PORT) */
	uint16_t n_queues;		/* RX/TX queue pairs, one RX lcore each; 0: as many as
					 * the port and the worker lcores allow, at least 1 */
	uint16_t rx_desc;		/* RX ring size per queue (1024) */
	uint16_t tx_desc;		/* TX ring size per queue (1024) */
	struct dp_limits limits;	/* (512 KiB, 1024 chunks, 16 per client, 256 in total,
					 * 4096 sessions, 4096 per source IP, 256 unfinished
					 * messages per source IP) */
	uint32_t session_ttl_ms;	/* an idle session is forgotten after this (60 s) */
	uint32_t gap_timeout_us;	/* no chunk of an open message for this long: NACK (2000) */
	uint32_t msg_timeout_us;	/* a message open this long is freed and counted (1 s) */
	uint32_t tx_drain_us;		/* buffered TX frames leave at least this often (100) */
	uint32_t resp_keep_bytes;	/* per RX lcore: ring keeping tensor answers (chunked
					 * RESPONSEs) for NACKs and resends (4 MiB; raised to hold
					 * at least one answer of max_msg_bytes) */
	uint32_t idle_spin_us;		/* keep spinning this long after the last work (50) */
	uint32_t idle_sleep_min_us;	/* first back-off sleep (10) */
	uint32_t idle_sleep_max_us;	/* back-off sleeps double up to this (100) */
	uint32_t idle_deep_after_us;	/* no work for this long and no message open: */
	uint32_t idle_deep_sleep_us;	/* sleep this long per pass instead (20000, 2000; 0: never).
					 * An idle lcore then costs under 1% of a core instead of
					 * about 16% (scripts/bench_idle.sh); the first chunk after
					 * a quiet spell waits up to one deep sleep. With a message
					 * open (gaps to NACK) it never does; requests handed out
					 * may be held meanwhile: an answer posted to the lcore
					 * ends any sleep at once (an eventfd it sleeps on). */
	bool udp_csum_zero_ok;		/* accept UDP checksum 0 ("none", legal in IPv4): false,
					 * since a chunk is CRC-less and LZ4 does not check data */
	bool no_echo;			/* deliver PROTO_MODEL_ECHO requests to the consumer
					 * instead of answering them on the RX lcore (false) */
	uint8_t auth;			/* enum dp_auth_mode (OFF) */
	bool integrity_required;	/* refuse datagrams with neither CRC nor MAC (false:
					 * devices that predate the CRC flag are served) */
	const struct proto_keys *keys;	/* device keys (NULL: none); borrowed: it must outlive
					 * the dataplane or be replaced by dp_auth_keys_swap() */
};

/** Fill cfg with the defaults above (ipv4 0: the caller must set it). */
void dp_config_default(struct dp_config *cfg);

/**
 * Initialise DPDK's EAL from command-line style arguments (argv[0] is the program name).
 * Call once per process, before dp_create().
 * @return the number of arguments EAL consumed (>= 1), or -errno with err set: EAL's error
 *         and, for the usual first-run problems (no hugepages reserved or mounted, not
 *         root), what to do about them.
 */
int dp_eal_init(int argc, char **argv, struct tg_err *err);

/** Release the EAL (after every dp_destroy()). */
void dp_eal_cleanup(void);

struct dp;	/* one port, its queues, pools, rings and per-lcore state */

enum { DP_REQ_PRIV_BYTES = 384 };	/* struct dp_req's priv[]: the consumer's state */

/**
 * Set up the configured port for serving: queues (RSS across them when there is more than
 * one), the mbuf pool and request slots sized from cfg's limits, rings; then start the port.
 * Thread: the main lcore, after dp_eal_init(). cfg is copied (cfg->port only read here).
 * @param out  set to the new dataplane, owned by the caller: dp_destroy() it
 * @return 0 or -errno with err set (-ENODEV no such port, -EINVAL bad config, -ENOMEM ...)
 */
int dp_create(struct dp **out, const struct dp_config *cfg, struct tg_err *err);

/**
 * Stop the RX lcores if running, stop and close the port, free everything. dp may be NULL.
 * Requests still held by a consumer become invalid: return them first.
 */
void dp_destroy(struct dp *dp);

/**
 * Set the catalog HELLO_REPLYs list (docs/protocol.md 4.2): n entries (copied), then the echo
 * diagnostic's entry, which is always there. gen is the catalog_gen devices see; change it
 * with every new catalog. Thread: any one control thread at a time (not an RX lcore), also
 * while the RX lcores run: the new catalog is published whole (a HELLO_REPLY lists the old
 * one or the new one, never a mix), and the old one is freed after dp_synchronize().
 * @return 0, -EINVAL (n + 1 over 65535, an entry the encoder refuses), -ENOMEM (err set);
 *         on error the catalog served is unchanged
 */
int dp_catalog_set(struct dp *dp, const struct proto_catalog_entry *e, unsigned n,
		   uint32_t gen, struct tg_err *err);

/**
 * Wait until every RX lcore has finished the loop pass it was in (an idle lcore asleep counts
 * as finished): a pointer an RX lcore read before this call, in the deliver hook or the
 * catalog, is no longer in use after it (DPDK's rte_rcu_qsbr). Returns at once when the RX
 * lcores are stopped. Thread: any thread but an RX lcore; blocks (spins) for at most about
 * one loop pass (an idle sleep ends with a quiescent state).
 */
void dp_synchronize(struct dp *dp);

/**
 * Replace the device keys while the RX lcores run (a reload): publishes keys, then waits
 * until every running RX lcore took them (each takes the table at the start of a loop pass,
 * so no datagram is judged by half of each; a stopping lcore, until it exited), and carries
 * the HELLO nonces of the devices both tables hold into the new one. Thread: any but an RX
 * lcore, one call at a time; it may wait for dp_stop() to return.
 * @param keys  the new table (NULL: no keys), borrowed like dp_config.keys
 * @return the table it replaced, no longer read by any lcore: the caller's to free
 */
const struct proto_keys *dp_auth_keys_swap(struct dp *dp, const struct proto_keys *keys);

/** Number of RX/TX queue pairs, i.e. RX lcores (queue q runs on the q-th worker lcore). */
unsigned dp_n_queues(const struct dp *dp);

/**
 * Launch one RX loop per queue on the worker lcores (queue q on the q-th worker).
 * @return 0, -EBUSY already running, -ENODEV fewer worker lcores than queues (err set)
 */
int dp_start(struct dp *dp, struct tg_err *err);

/**
 * Ask the RX loops to stop and wait for them. Before an RX loop returns it sends every
 * answer posted to it (dp_req_respond() before dp_stop()) and flushes its TX buffer, so an
 * answered request is never left unsent by a stop (a frame the port still refuses after
 * bounded retries is counted TX_FULL). Answer what you hold before: an answer posted after
 * dp_stop() waits for the next dp_start(), or is lost with dp_destroy().
 */
void dp_stop(struct dp *dp);

/**
 * One iteration of queue q's RX loop, run by the caller instead of dp_start(): a burst of RX,
 * responses posted by workers, timers, TX drain. For single-threaded drivers and tests.
 * Thread: one thread per q at a time, and never while dp_start() runs.
 * @return the frames and responses handled (0: idle)
 */
unsigned dp_poll(struct dp *dp, unsigned q);

/** Flush queue q's buffered TX frames now (same thread rules as dp_poll()). */
void dp_flush(struct dp *dp, unsigned q);

/*
 * Requests. A completed message is a struct dp_req in a slot the dataplane owns. The
 * consumer takes it with dp_req_dequeue_burst(), reads it, fills req->resp and hands it back
 * with dp_req_respond(): the owner lcore then encodes and sends the RESPONSE and frees the
 * slot. Until then the slot counts against the limits, so every request taken must be
 * answered, promptly.
 */
struct dp_req {
	/* Set by the dataplane; read-only for the consumer. */
	struct proto_hdr hdr;		/* the first chunk's header: client, request, session ids */
	struct proto_request req;	/* model, variant, split, tensor (dtype, shape, quant),
					 * top_k, flags, deadline; req.c.payload is NULL */
	void *tensor;			/* the raw tensor, req.c.t.raw_total bytes, 64-aligned;
					 * the consumer may overwrite it (e.g. with output) */
	uint32_t tensor_cap;		/* bytes at tensor (max_msg_bytes): a TENSOR result's
					 * raw_total must not pass it */
	uint64_t first_ns;		/* tg_now_ns() clock: first chunk's arrival */
	uint64_t done_ns;		/* tg_now_ns() clock: last chunk's arrival */
	struct proto_hello profile;	/* the device profile of its session's last HELLO (all
					 * zero without one): compute, uplink, RTT, SLO, floor */
	/* Filled by the consumer before dp_req_respond(); preset to status OK, result NONE,
	 * exit and advice PROTO_NONE. */
	struct proto_response resp;	/* status, reason, result kind, timing, advice; the chunk
					 * index and count are the dataplane's, model, variant
					 * and split ids preset to the request's (a consumer that
					 * ran another variant of the model sets resp.c.variant_id
					 * and split_id to it: docs/protocol.md 7.4). Results:
					 * NONE, ECHO, TOPK (see below), or TENSOR: the bytes at
					 * tensor, described by resp.c.t (dp_req_set_tensor()),
					 * chunked (LZ4 where it pays) by the owner lcore. An
					 * answer the encoder refuses goes out as INTERNAL */
	uint8_t topk[PROTO_MAX_TOP_K * PROTO_TOPK_ENTRY_LEN];	/* scratch for
					 * proto_response_set_topk(&resp, topk, ...) */
	/* The consumer's own per-request state (e.g. its scheduler's entry), so that it needs
	 * no pool of its own: the dataplane never reads or writes it. */
	_Alignas(64) uint8_t priv[DP_REQ_PRIV_BYTES];
};

/**
 * The deliver hook: called by an RX lcore with the n (1..32) requests a burst completed.
 * Every request is the consumer's from then on, exactly as from dp_req_dequeue_burst(): it
 * must be answered with dp_req_respond(), by the hook itself (a refusal, posted to this very
 * lcore) or later by any thread. Runs on the hot path: no allocation, no blocking, no log.
 * What it reads that another thread replaces must outlive dp_synchronize().
 */
typedef void (*dp_deliver_fn)(void *ctx, struct dp_req **reqs, unsigned n);

/**
 * Register the deliver hook (NULL: back to the ring of dp_req_dequeue_burst()).
 * Thread: the control thread, while the RX lcores are stopped.
 * @return 0, or -EBUSY (RX lcores running)
 */
int dp_set_deliver(struct dp *dp, dp_deliver_fn fn, void *ctx);

/**
 * The consumer's busy hint: how many ns from now a request delivered now could be delivered
 * instead without starting any later (every worker computing a batch: until the first
 * should end, or earlier if the request must be queued sooner to be batched in time), 0
 * when it could start or join a batch now.
 * Called by an RX lcore about to back off with no message open, in its read side (what it
 * reads must outlive dp_synchronize(), as for the deliver hook); no allocation, no lock.
 * The lcore then sleeps that long (at most idle_deep_sleep_us) instead of its short
 * back-off sleeps, leaving the cores to the computation: a request arriving meanwhile waits
 * in the RX ring rather than in the consumer's queue, and an answer posted ends the sleep.
 */
typedef uint64_t (*dp_busy_fn)(void *ctx);

/**
 * Register the busy hint (NULL: none, the back-off alone decides).
 * Thread: the control thread, while the RX lcores are stopped.
 * @return 0, or -EBUSY (RX lcores running)
 */
int dp_set_busy_hint(struct dp *dp, dp_busy_fn fn, void *ctx);

/**
 * Make req's answer a TENSOR result (docs/protocol.md 7.2): the t->raw_total bytes the
 * consumer wrote at req->tensor (at most req->tensor_cap), of dtype, shape and quantization
 * t (raw_total, dims, ndim, dtype, scale, zero_point; checked when encoding: a bad one goes
 * out as INTERNAL). The owner lcore chunks it at the device's max_dgram, sends every chunk
 * and keeps them (resp_keep_bytes) for the device's NACKs and for duplicates of the request.
 */
void dp_req_set_tensor(struct dp_req *req, const struct proto_tensor *t);

/**
 * Take up to n completed requests. Thread: any, several at once (multi-consumer ring).
 * @param reqs  receives the requests; each is the caller's until dp_req_respond()
 * @return how many were taken (0..n)
 */
unsigned dp_req_dequeue_burst(struct dp *dp, struct dp_req **reqs, unsigned n);

/**
 * Answer a request: posts it to the owner lcore's response ring; the lcore encodes
 * req->resp (status OK with a result, or an error status and reason with result NONE),
 * sends it to the request's session and frees the slot. Thread: any (multi-producer ring).
 * Takes req: it must not be touched afterwards. A request answered twice stops the process
 * (RTE_VERIFY): it would corrupt its lcore's pools.
 */
void dp_req_respond(struct dp_req *req);

/** Sum of every RX lcore's counters (read while they run: each value is a recent one). */
void dp_stats_get(const struct dp *dp, struct dp_stats *sum);

/**
 * Message (reassembly) slots held now, and the pool's size, over every RX lcore: a gauge for
 * /metrics. Thread: any (each lcore's free count is read once, relaxed: a value it had).
 */
void dp_slots_get(const struct dp *dp, unsigned *in_use, unsigned *total);

/**
 * CPU time the thread of queue q's RX lcore has used so far (its thread CPU clock, read from
 * the calling thread): polling, back-off and work alike. Thread: any.
 * @return 0 with *ns set; -ENOENT when q is out of range or its loop has not started yet
 */
int dp_lcore_cpu_ns(const struct dp *dp, unsigned q, uint64_t *ns);

/** The port's MAC address (6 bytes into mac). */
void dp_mac_get(const struct dp *dp, uint8_t mac[6]);

/**
 * Sessions held now over every RX lcore, and the configured maximum. Thread: any (each
 * lcore's table is counted without a lock while it runs: a value it had, for a gauge).
 */
void dp_sessions_get(const struct dp *dp, unsigned *in_use, unsigned *max);

/* ---- DPDK telemetry commands of tailgate's own (dataplane/telemetry.c) ---- */

/** A telemetry reply being built (DPDK's rte_tel_data; opaque outside the dataplane). */
struct dp_tel;
/**
 * Answer command cmd into reply: call dp_tel_dict() or dp_tel_u64_array(reply, NULL, ...)
 * first. params: what followed the command's comma (NULL or "" when nothing), from the
 * telemetry socket: check it. Thread: DPDK's telemetry thread, one command at a time.
 * @return 0, or a negative errno (the client gets null)
 */
typedef int (*dp_tel_fn)(void *ctx, const char *params, struct dp_tel *reply);
/**
 * Register (or take over) command cmd ("/tailgate/..."): fn(ctx, ...) answers it until
 * dp_tel_unregister_all(). Callable before or after dp_eal_init(). Thread: any.
 * @return 0, -EINVAL (name too long, or refused by DPDK), -ENOSPC (8 commands at most)
 */
int dp_tel_register(const char *cmd, const char *help, dp_tel_fn fn, void *ctx,
		    struct tg_err *err);
/** Forget every command's fn and ctx (DPDK cannot unregister: they answer {"error": "not
 * serving"}). Returns once no fn is running, so ctx may be freed then. */
void dp_tel_unregister_all(void);
/** Start reply as a dictionary. */
void dp_tel_dict(struct dp_tel *t);
/** Add a value to a dictionary. key: letters, digits, '_' and '/' only (DPDK's rule); a
 * string value longer than 127 bytes is cut. @return 0 or a negative errno */
int dp_tel_u64(struct dp_tel *t, const char *key, uint64_t v);
int dp_tel_str(struct dp_tel *t, const char *key, const char *v);
/** n numbers as an array: the reply itself (key NULL) or under key in a dictionary. */
int dp_tel_u64_array(struct dp_tel *t, const char *key, const uint64_t *v, unsigned n);

#endif
