/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's event loop: every device is a small state machine driven by a timer heap
 * (next chunk its uplink allows, request timer, HELLO retry) and by the datagrams recvmmsg
 * hands back, demultiplexed by client id. One connected UDP socket carries every device:
 * the gateway binds a session to (client id, source address), so devices sharing an address
 * stay distinct. Datagrams leave in sendmmsg bursts, copied from the prepared inputs with
 * the device's ids patched in. Buffers, devices, bitmaps and the arrival backlog are
 * allocated at bench_run_create(); a phase allocates nothing.
 */
#include "bench/bench.h"
#include "client/tgc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
	BENCH_TX_BURST = 64,		/* datagrams per sendmmsg */
	BENCH_RX_BURST = 64,		/* datagrams per recvmmsg */
	BENCH_TX_LEN = 1500,		/* largest datagram sent (inputs are cut for <= this) */
	BENCH_ARRIVALS_PER_PASS = 1024,	/* open-loop arrivals started per event-loop pass */
	BENCH_RX_LEN = 2048,		/* answers are one small datagram; longer ones are refused */
	BENCH_HELLO_TRIES = 4,
	BENCH_HELLO_TIMEOUT_MS = 200,	/* as the client library: doubling per try */
	BENCH_BACKLOG = 1 << 20,		/* arrivals waiting for an idle device */
	BENCH_SOCKBUF = 8 << 20,
};

enum bench_state {
	BENCH_DS_NEW,			/* HELLO not sent yet */
	BENCH_DS_HELLO,			/* HELLO sent, waiting for the reply */
	BENCH_DS_IDLE,			/* has a session, no request */
	BENCH_DS_BUSY,			/* a request open */
	BENCH_DS_FAILED,			/* HELLO refused or unanswered */
};

struct bench_dev {
	uint32_t client_id;
	uint64_t session;
	uint16_t cat_start;		/* catalog_start of its next HELLO (a page after the first) */
	struct bench_profile prof;
	struct tgc_pacer pacer;
	uint8_t state;			/* enum bench_state */
	uint8_t hello_tries;
	uint8_t timeouts;		/* timers fired for the open request */
	bool rehello;			/* a request waits for a re-HELLO */
	uint32_t path_token;		/* echoed by the next HELLO (a path challenge); 0 none */
	bool measured;			/* the open request counts (scheduled after the warm-up) */
	uint32_t hello_nonce;
	uint32_t req_id;
	uint32_t item;
	const struct bench_msg *msg;
	uint64_t sched_ns;		/* the open request's scheduled time */
	uint64_t timer_ns;		/* its current timer length */
	uint64_t timeout_at;		/* 0 while chunks remain to send */
	uint64_t give_up_at;		/* the open request's retry budget ends (12.2) */
	uint64_t quiet_until;		/* ERRORs for the last whole resend are ignored until */
	uint64_t wake_ns;		/* heap key */
	int32_t heap_pos;		/* -1 when not in the heap */
	uint16_t cursor;		/* lowest chunk that may still be pending */
	uint16_t sent_hw;		/* chunks below this were sent before: resends */
	int32_t held;			/* chunk held back by the reorder impairment; -1 none */
	uint32_t srv_us;		/* smoothed server time of its answers */
	uint64_t *pending;		/* chunks still to send, bit i of word i / 64 */
	uint8_t cls;			/* its class (cfg.classes), when there are any */
	uint8_t variant;		/* the variant its requests name (the advice's) */
	uint8_t sent_variant, sent_split;	/* the open request's */
	const struct bench_inputs *sin;	/* the inputs d->msg is from (sent_variant's) */
	uint64_t head_until;		/* the open request's head runs until then (simulated) */
};

struct bench_run {
	struct bench_config cfg;
	int fd;
	struct bench_dev *dev;
	unsigned n_dev;
	uint64_t *bitmaps;		/* n_dev x words */
	unsigned words;
	struct proto_limits rx_lim;
	struct proto_hello_reply gw;	/* the first HELLO_REPLY (entries NULL) */
	bool have_gw;
	uint16_t cat_asked;		/* the furthest catalog page asked for (its first entry) */
	/* The catalog, per (variant, split) of our model: */
	uint32_t tail_us[BENCH_MAX_VARIANTS][64];	/* tail estimate, a timer seed; 0 not
							 * served */
	uint32_t head_kflop[BENCH_MAX_VARIANTS][64];	/* head work */
	uint16_t acc_bp[BENCH_MAX_VARIANTS][64];	/* accuracy_bp */
	const struct bench_inputs *vin[BENCH_MAX_VARIANTS];	/* inputs per variant: cfg.in
								 * at cfg.variant_id */
	struct bench_class_stats cls[BENCH_MAX_CLASSES];	/* cfg.n_classes of them */
	int fixed_split;		/* bench_run_fix(); -1 none */
	uint8_t fixed_variant;
	struct bench_rng rng;		/* items, fates */
	/* timer heap of device indices, by wake_ns */
	uint32_t *heap;
	unsigned heap_n;
	/* idle devices, FIFO so that every device gets its turn */
	uint32_t *idle;
	unsigned idle_head, idle_n;
	/* arrivals waiting for an idle device: scheduled times */
	uint64_t *backlog;
	unsigned bl_head, bl_n;
	/* outgoing burst */
	uint8_t (*tx)[BENCH_TX_LEN];
	struct mmsghdr txm[BENCH_TX_BURST];
	struct iovec txv[BENCH_TX_BURST];
	unsigned tx_n;
	/* incoming burst */
	uint8_t (*rx)[BENCH_RX_LEN];
	struct mmsghdr rxm[BENCH_RX_BURST];
	struct iovec rxv[BENCH_RX_BURST];
	uint32_t next_req;
	unsigned busy;			/* devices with a request open (or re-HELLOing) */
	unsigned hello_open;		/* devices in NEW or HELLO state */
	unsigned hello_failed;
	uint8_t hello_fail_status;
	uint64_t now;
	/* the phase */
	struct bench_results *res;
	uint64_t measure_from;
	uint64_t last_done;
	uint64_t last_sched;
	bool closed;			/* closed loop: each answer schedules the next request */
	uint64_t max_requests;		/* measured arrivals of the phase; 0 unbounded */
	bool arrivals_on;
};

/* ---- small pieces ---- */

static void
bench_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void
bench_be64(uint8_t *p, uint64_t v)
{
	bench_be32(p, (uint32_t)(v >> 32));
	bench_be32(p + 4, (uint32_t)v);
}

static size_t
bench_words(unsigned count)
{
	return (count + 63u) / 64u;
}

static bool
bench_bit(const uint64_t *b, unsigned i)
{
	return b[i / 64] >> (i % 64) & 1;
}

/* ---- timer heap ---- */

static void
bench_heap_swap(struct bench_run *r, unsigned a, unsigned b)
{
	uint32_t t = r->heap[a];

	r->heap[a] = r->heap[b];
	r->heap[b] = t;
	r->dev[r->heap[a]].heap_pos = (int32_t)a;
	r->dev[r->heap[b]].heap_pos = (int32_t)b;
}

static void
bench_heap_up(struct bench_run *r, unsigned i)
{
	while (i > 0) {
		unsigned p = (i - 1) / 2;

		if (r->dev[r->heap[p]].wake_ns <= r->dev[r->heap[i]].wake_ns)
			break;
		bench_heap_swap(r, i, p);
		i = p;
	}
}

static void
bench_heap_down(struct bench_run *r, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, m = i;

		if (l < r->heap_n && r->dev[r->heap[l]].wake_ns < r->dev[r->heap[m]].wake_ns)
			m = l;
		if (l + 1 < r->heap_n && r->dev[r->heap[l + 1]].wake_ns < r->dev[r->heap[m]].wake_ns)
			m = l + 1;
		if (m == i)
			return;
		bench_heap_swap(r, i, m);
		i = m;
	}
}

static void
bench_wake_at(struct bench_run *r, struct bench_dev *d, uint64_t when)
{
	d->wake_ns = when;
	if (d->heap_pos < 0) {
		d->heap_pos = (int32_t)r->heap_n;
		r->heap[r->heap_n++] = (uint32_t)(d - r->dev);
		bench_heap_up(r, (unsigned)d->heap_pos);
	} else {
		bench_heap_up(r, (unsigned)d->heap_pos);
		bench_heap_down(r, (unsigned)d->heap_pos);
	}
}

static void
bench_wake_cancel(struct bench_run *r, struct bench_dev *d)
{
	unsigned i = (unsigned)d->heap_pos;

	if (d->heap_pos < 0)
		return;
	d->heap_pos = -1;
	if (i == --r->heap_n)
		return;
	r->heap[i] = r->heap[r->heap_n];
	r->dev[r->heap[i]].heap_pos = (int32_t)i;
	bench_heap_up(r, i);
	bench_heap_down(r, i);
}

/* ---- sending ---- */

static void
bench_tx_flush(struct bench_run *r)
{
	unsigned done = 0;

	while (done < r->tx_n) {
		int n = sendmmsg(r->fd, r->txm + done, r->tx_n - done, 0);

		if (n > 0) {
			done += (unsigned)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* ENOBUFS, ECONNREFUSED (an ICMP error from an earlier send): this datagram is
		 * lost like any other; timers recover it. */
		if (r->res != NULL)
			r->res->send_errors++;
		done++;
	}
	r->tx_n = 0;
}

/* Queue one datagram (a prepared one, or NULL data to use the slot as it is). */
static uint8_t *
bench_tx_slot(struct bench_run *r, uint32_t len)
{
	uint8_t *b;

	if (r->tx_n == BENCH_TX_BURST)
		bench_tx_flush(r);
	b = r->tx[r->tx_n];
	r->txv[r->tx_n].iov_len = len;
	r->tx_n++;
	if (r->res != NULL)
		r->res->bytes_sent += len;
	return b;
}

/* The key device d signs with, or NULL (keys: device i is key table entry i). */
static inline const uint8_t *
bench_key(const struct bench_run *r, const struct bench_dev *d)
{
	return r->cfg.keys != NULL ? r->cfg.keys->k[d - r->dev].key : NULL;
}

/* Seal a datagram of d's as the last change to it: MAC with a key, else CRC (12.5). */
static void
bench_seal(const struct bench_run *r, const struct bench_dev *d, uint8_t *b, uint32_t len)
{
	const uint8_t *key = bench_key(r, d);

	if (key != NULL)
		(void)proto_seal_mac(b, len, key);
	else if (!r->cfg.no_crc)
		(void)proto_seal_crc(b, len);
}

/*
 * A HELLO nonce above any this device id sent before, across bench runs too (the gateway
 * refuses a tagged HELLO with a lower one: docs/protocol.md 12.5): the wall clock in 2^26 ns
 * units, or the last + 1.
 */
static uint32_t
bench_clock_nonce(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint32_t)(((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) >> 26);
}

static uint32_t
bench_hello_nonce(struct bench_dev *d)
{
	uint32_t t = bench_clock_nonce();

	d->hello_nonce = (int32_t)(t - d->hello_nonce) > 0 ? t : d->hello_nonce + 1;
	return d->hello_nonce;
}

/* ---- device classes: head time, energy, advice (bench_class_* hooks) ---- */

static const struct bench_class *
bench_class_of(const struct bench_run *r, const struct bench_dev *d)
{
	return r->cfg.n_classes ? &r->cfg.classes[d->cls] : NULL;
}

/* The HELLO's profile beyond the mix's: the class's compute rate, floor, energy, goal. */
static void
bench_class_hello(const struct bench_run *r, const struct bench_dev *d, struct proto_hello *m)
{
	const struct bench_class *c = bench_class_of(r, d);

	if (c == NULL)
		return;
	m->compute_mflops = c->compute_mflops;
	m->accuracy_floor_bp = c->floor_bp;
	m->goal = r->cfg.goal;
	if (r->cfg.goal != PROTO_GOAL_NONE) {
		m->head_uj_per_mflop = c->head_uj_per_mflop;
		m->tx_pj_per_bit = c->tx_pj_per_bit;
	}
}

/* The (variant, split) the next request goes from, and how long its head runs here. */
static void
bench_class_start(struct bench_run *r, struct bench_dev *d)
{
	const struct bench_class *c = bench_class_of(r, d);
	uint8_t s = r->fixed_split >= 0 ? (uint8_t)r->fixed_split : d->prof.split;
	uint8_t v = r->fixed_split >= 0 ? r->fixed_variant : d->variant;

	d->sent_split = s;
	d->sent_variant = v;
	d->sin = r->vin[v];
	d->head_until = 0;
	if (c == NULL)
		return;
	if (c->compute_mflops > 0)	/* kFLOP / (MFLOP/s) = ms */
		d->head_until = r->now + (uint64_t)r->head_kflop[v][s] * 1000000ull /
					 c->compute_mflops;
	/* A link, not a bucket: each datagram takes its time on the wire, the first too (a
	 * bucket's burst would send a small request in no time at 1 Mbit/s). */
	tgc_pacer_init(&d->pacer, c->uplink_kbps, r->cfg.in->max_dgram,
		       d->head_until ? d->head_until : r->now);
	d->pacer.tokens = 0;
}

/* A measured request ended: the class's latency, accuracy, energy and split. */
static void
bench_class_finish(struct bench_run *r, const struct bench_dev *d, bool ok, bool correct,
		   int64_t lat_us)
{
	const struct bench_class *c = bench_class_of(r, d);
	struct bench_class_stats *s;
	uint64_t bits = 0;

	if (c == NULL || !d->measured)
		return;
	s = &r->cls[d->cls];
	for (unsigned i = 0; i < d->msg->n_dg; i++)	/* one send: IPv4 + UDP included */
		bits += 8ull * (d->sin->dg[d->msg->first_dg + i].len + 28u);
	s->requests++;
	s->by_split[d->sent_variant][d->sent_split]++;
	s->energy_uj += (double)r->head_kflop[d->sent_variant][d->sent_split] / 1e3 *
			c->head_uj_per_mflop +
			(double)bits * c->tx_pj_per_bit / 1e6;
	if (ok) {
		s->ok++;
		s->correct += correct;
		bench_hdr_record(&s->lat_us, lat_us);
	}
}

/* --follow-advice: the next requests from the advised (variant, split), when its inputs
 * exist (the run's variant's, or another's added by bench_run_add_inputs()). */
static void
bench_class_advice(struct bench_run *r, struct bench_dev *d, const struct proto_response *rs)
{
	const struct bench_inputs *in;

	if (!r->cfg.follow_advice || rs->advice_split >= 64 ||
	    rs->advice_variant >= BENCH_MAX_VARIANTS || !bench_run_has(r, rs->advice_variant,
								    rs->advice_split))
		return;
	in = r->vin[rs->advice_variant];
	if (in->msg[rs->advice_split][d->prof.dtype] == NULL)
		return;
	d->variant = rs->advice_variant;
	d->prof.split = rs->advice_split;
}

const struct bench_class_stats *
bench_run_class(const struct bench_run *r, unsigned k)
{
	return &r->cls[k];
}

int
bench_run_fix(struct bench_run *r, unsigned variant, int split)
{
	if (split >= 0 && !bench_run_has(r, variant, (unsigned)split))
		return -EINVAL;	/* a device would have no message to send */
	r->fixed_split = split;
	r->fixed_variant = split >= 0 ? (uint8_t)variant : r->cfg.variant_id;
	bench_rng_seed(&r->rng, r->cfg.seed);
	return 0;
}

int
bench_run_catalog(const struct bench_run *r, unsigned variant, unsigned split)
{
	if (variant >= BENCH_MAX_VARIANTS || split >= 64 || r->tail_us[variant][split] == 0)
		return -1;
	return r->acc_bp[variant][split];
}

bool
bench_run_has(const struct bench_run *r, unsigned variant, unsigned split)
{
	return bench_run_catalog(r, variant, split) >= 0 && r->vin[variant] != NULL &&
	       (r->vin[variant]->split_mask >> split & 1);
}

static void
bench_send_hello(struct bench_run *r, struct bench_dev *d)
{
	struct proto_hdr h = { .client_id = d->client_id, .request_id = bench_hello_nonce(d),
			       .session_id = d->session };
	struct proto_hello m = { .uplink_kbps = d->prof.uplink_kbps, .slo_us = d->prof.deadline_us,
				 .max_dgram = (uint16_t)r->cfg.in->max_dgram,
				 .catalog_start = d->cat_start, .path_token = d->path_token };
	uint8_t *b = bench_tx_slot(r, PROTO_HELLO_MIN_DGRAM);
	int n;

	bench_class_hello(r, d, &m);
	n = proto_encode_hello(b, PROTO_HELLO_MIN_DGRAM, &h, &m, PROTO_HELLO_MIN_DGRAM);

	if (n != PROTO_HELLO_MIN_DGRAM)
		r->tx_n--;	/* cannot happen: the fields are in range */
	else
		bench_seal(r, d, b, PROTO_HELLO_MIN_DGRAM);
	d->state = BENCH_DS_HELLO;
	bench_wake_at(r, d, r->now + ((uint64_t)BENCH_HELLO_TIMEOUT_MS << d->hello_tries) * 1000000u);
	d->hello_tries++;
}

/* Copy chunk i of the open request into the burst with this device's ids. */
static void
bench_emit_chunk(struct bench_run *r, struct bench_dev *d, unsigned i, bool resend)
{
	const struct bench_dgram_ref *ref = &d->sin->dg[d->msg->first_dg + i];
	uint8_t *b = bench_tx_slot(r, ref->len);

	memcpy(b, d->sin->arena + ref->off, ref->len);
	bench_be32(b + PROTO_OFF_CLIENT_ID, d->client_id);
	bench_be32(b + PROTO_OFF_REQUEST_ID, d->req_id);
	bench_be64(b + PROTO_OFF_SESSION_ID, d->session);
	bench_be32(b + PROTO_OFF_DEADLINE, d->prof.deadline_us);
	if (resend)
		b[PROTO_OFF_FLAGS + 1] |= PROTO_F_RETRANSMIT;	/* low byte, big endian */
	bench_seal(r, d, b, ref->len);
	/* In flight, after the seal: one tensor byte changed, the UDP checksum (computed by
	 * the kernel over what we send) right for it, as a rewriting middlebox leaves it. */
	if (r->cfg.impair.corrupt > 0 && bench_rng_unit(&r->rng) < r->cfg.impair.corrupt &&
	    ref->len > PROTO_REQUEST_LEN) {
		uint32_t at = PROTO_REQUEST_LEN +
			      (uint32_t)(bench_rng_next(&r->rng) % (ref->len - PROTO_REQUEST_LEN));

		b[at] ^= (uint8_t)(1u + bench_rng_next(&r->rng) % 255u);
		r->res->corrupted++;
	}
	r->res->chunks_sent++;
}

/* One chunk through the impairment. */
static void
bench_send_chunk(struct bench_run *r, struct bench_dev *d, unsigned i, bool resend)
{
	switch (bench_impair_fate(&r->cfg.impair, &r->rng)) {
	case BENCH_FATE_DROP:
		r->res->dropped++;
		return;
	case BENCH_FATE_DUP:
		r->res->duped++;
		bench_emit_chunk(r, d, i, resend);
		bench_emit_chunk(r, d, i, true);
		return;
	case BENCH_FATE_REORDER:
		if (d->held < 0) {
			r->res->reordered++;
			d->held = (int32_t)i;	/* leaves after the next chunk */
			return;
		}
		break;
	case BENCH_FATE_SEND:
		break;
	}
	bench_emit_chunk(r, d, i, resend);
	if (d->held >= 0 && (unsigned)d->held != i) {
		bench_emit_chunk(r, d, (unsigned)d->held, resend);
		d->held = -1;
	}
}

/* The first pending chunk at or after the cursor; count when none. */
static unsigned
bench_next_pending(struct bench_dev *d)
{
	unsigned n = d->msg->n_dg;

	for (unsigned i = d->cursor; i < n; i++)
		if (bench_bit(d->pending, i))
			return i;
	return n;
}

/* Send what the uplink allows now; then wait for tokens or, everything sent, for the answer. */
static void
bench_pump(struct bench_run *r, struct bench_dev *d)
{
	unsigned n = d->msg->n_dg, i;

	if (r->now < d->head_until) {	/* the device still runs its head */
		bench_wake_at(r, d, d->head_until);
		return;
	}
	while ((i = bench_next_pending(d)) < n) {
		uint32_t len = d->sin->dg[d->msg->first_dg + i].len;
		uint64_t wait = tgc_pacer_delay(&d->pacer, len, r->now);

		if (wait > 0) {
			bench_wake_at(r, d, r->now + wait);
			return;
		}
		tgc_pacer_take(&d->pacer, len, r->now);
		d->pending[i / 64] &= ~(1ull << (i % 64));
		d->cursor = (uint16_t)(i + 1);
		if (i < d->sent_hw)
			r->res->chunks_resent++;
		bench_send_chunk(r, d, i, i < d->sent_hw);
		if (i >= d->sent_hw)
			d->sent_hw = (uint16_t)(i + 1);
	}
	if (d->held >= 0) {	/* nothing came after it: it leaves last */
		bench_emit_chunk(r, d, (unsigned)d->held, true);
		d->held = -1;
	}
	if (d->timeout_at == 0)	/* the last resend still gets its answer's time */
		d->timeout_at = (r->now + d->timer_ns < d->give_up_at ? r->now + d->timer_ns : d->give_up_at);
	bench_wake_at(r, d, d->timeout_at);
}

/* ---- requests ---- */

static void
bench_idle_push(struct bench_run *r, struct bench_dev *d)
{
	r->idle[(r->idle_head + r->idle_n++) % r->n_dev] = (uint32_t)(d - r->dev);
	d->state = BENCH_DS_IDLE;
}

static struct bench_dev *
bench_idle_pop(struct bench_run *r)
{
	struct bench_dev *d = &r->dev[r->idle[r->idle_head]];

	r->idle_head = (r->idle_head + 1) % r->n_dev;
	r->idle_n--;
	return d;
}

/* An arrival: it waits in the backlog until a device is idle; its latency runs from now. */
static void
bench_arrive(struct bench_run *r, uint64_t sched)
{
	if (sched >= r->measure_from) {
		r->res->scheduled++;
		r->last_sched = sched;
	}
	if (r->bl_n == BENCH_BACKLOG) {	/* 2^20 waiting: the run is hopelessly saturated */
		if (sched >= r->measure_from)
			r->res->unfinished++;
		return;
	}
	r->backlog[(r->bl_head + r->bl_n++) % BENCH_BACKLOG] = sched;
	if (r->bl_n > r->res->backlog_max)
		r->res->backlog_max = r->bl_n;
}

static void
bench_mark_all(struct bench_dev *d)
{
	unsigned n = d->msg->n_dg;

	memset(d->pending, 0, bench_words(n) * sizeof(uint64_t));
	for (unsigned i = 0; i < n; i++)
		d->pending[i / 64] |= 1ull << (i % 64);
	d->cursor = 0;
	d->timeout_at = 0;
	d->held = -1;
}

static void
bench_start(struct bench_run *r, struct bench_dev *d, uint64_t sched)
{
	const struct bench_inputs *in = r->cfg.in;
	uint32_t srv;

	d->state = BENCH_DS_BUSY;
	r->busy++;
	d->sched_ns = sched;
	d->measured = sched >= r->measure_from;
	d->item = (uint32_t)bench_rng_range(&r->rng, 0, in->n_items - 1);
	bench_class_start(r, d);
	d->msg = &d->sin->msg[d->sent_split][d->prof.dtype][d->item];
	d->req_id = r->next_req++;
	if (r->next_req == 0)
		r->next_req = 1;
	d->timeouts = 0;
	d->quiet_until = 0;
	d->sent_hw = 0;
	srv = d->srv_us ? d->srv_us : r->tail_us[d->sent_variant][d->sent_split];
	d->timer_ns = r->cfg.timer_ms ? (uint64_t)r->cfg.timer_ms * 1000000u :
		      tgc_timer_us(0, r->gw.nack_gap_ms, srv) * 1000u;
	d->give_up_at = r->now + 1000u * tgc_budget_us(d->prof.deadline_us,
						       r->gw.reasm_timeout_ms, d->timer_ns / 1000u);
	bench_mark_all(d);
	bench_pump(r, d);
}

static void
bench_dispatch(struct bench_run *r)
{
	while (r->bl_n > 0 && r->idle_n > 0) {
		uint64_t sched = r->backlog[r->bl_head];

		r->bl_head = (r->bl_head + 1) % BENCH_BACKLOG;
		r->bl_n--;
		bench_start(r, bench_idle_pop(r), sched);
	}
}

enum bench_end { BENCH_END_RESPONSE, BENCH_END_ERROR, BENCH_END_GAVE_UP };

/* The open request ended: count it, free the device, and in a closed loop start the next. */
static void
bench_finish(struct bench_run *r, struct bench_dev *d, enum bench_end how, unsigned status, unsigned reason,
	  uint32_t top1, unsigned exit)
{
	struct bench_results *res = r->res;
	int64_t lat_us = (int64_t)((r->now - d->sched_ns) / 1000u);

	if (r->arrivals_on && r->now >= r->measure_from && how != BENCH_END_GAVE_UP) {
		res->win_answered++;
		res->win_good += how == BENCH_END_RESPONSE && status == PROTO_ST_OK &&
				 (d->prof.deadline_us == 0 || lat_us <= (int64_t)d->prof.deadline_us);
	}
	if (d->measured) {
		r->last_done = r->now;
		if (how == BENCH_END_GAVE_UP) {
			res->gave_up++;
		} else {
			res->answered++;
			bench_hdr_record(&res->lat_all_us, lat_us);
			if (how == BENCH_END_ERROR)
				res->error[status < PROTO_ST__COUNT ? status : PROTO_ST_INTERNAL]++;
			else
				res->status[status < PROTO_ST__COUNT ? status : PROTO_ST_INTERNAL]++;
			if (status != PROTO_ST_OK && reason != PROTO_OK)	/* OK: none given */
				res->reason[reason < PROTO_REASON__COUNT ? reason : PROTO_OK]++;
		}
		if (how == BENCH_END_RESPONSE && status == PROTO_ST_OK) {
			res->ok++;
			bench_hdr_record(&res->lat_us, lat_us);
			if (d->prof.deadline_us == 0 || lat_us <= (int64_t)d->prof.deadline_us)
				res->ok_in_deadline++;
			/* The offline answer of the exit that answered (with early exits on). */
			uint16_t off = exit < BENCH_MAX_EXITS && d->msg->offline_at[exit] != UINT16_MAX &&
				      exit != d->sin->final_exit ? d->msg->offline_at[exit] :
				      d->msg->offline;

			res->by_exit[exit < BENCH_MAX_EXITS ? exit : BENCH_MAX_EXITS]++;
			res->correct += top1 == r->cfg.in->labels[d->item];
			bench_class_finish(r, d, true, top1 == r->cfg.in->labels[d->item], lat_us);
			res->offline_correct += off == r->cfg.in->labels[d->item];
			res->agree += top1 == off;
		}
	}
	if (!(how == BENCH_END_RESPONSE && status == PROTO_ST_OK))
		bench_class_finish(r, d, false, false, lat_us);
	r->busy--;
	d->rehello = false;
	bench_wake_cancel(r, d);
	bench_idle_push(r, d);
	if (r->closed && r->arrivals_on &&
	    (r->max_requests == 0 || res->scheduled < r->max_requests))
		bench_arrive(r, r->now);
}

/* The open request's budget is spent (or its resend count, when one is configured). */
static bool
bench_spent(const struct bench_run *r, const struct bench_dev *d)
{
	return r->now >= d->give_up_at || (r->cfg.retries != 0 && d->timeouts >= r->cfg.retries);
}

static void
bench_on_timer(struct bench_run *r, struct bench_dev *d)
{
	switch (d->state) {
	case BENCH_DS_NEW:
		bench_send_hello(r, d);
		return;
	case BENCH_DS_HELLO:
		if (d->hello_tries < BENCH_HELLO_TRIES) {
			bench_send_hello(r, d);
			return;
		}
		d->state = BENCH_DS_FAILED;
		if (d->rehello) {
			r->busy--;
			d->rehello = false;
			if (d->measured)
				r->res->gave_up++;
			/* Closed loop: the request in flight is over, so another takes its
			 * place, or the concurrency would shrink for good. */
			if (r->closed && r->arrivals_on)
				bench_arrive(r, r->now);
		} else {
			r->hello_open--;
			r->hello_failed++;
		}
		return;
	case BENCH_DS_BUSY:
		if (d->timeout_at != 0 && r->now >= d->timeout_at) {
			r->res->timer_fires++;
			if (bench_spent(r, d)) {
				bench_finish(r, d, BENCH_END_GAVE_UP, 0, 0, 0, PROTO_NONE);
				return;
			}
			d->timeouts++;
			d->timer_ns *= 2;
			bench_mark_all(d);
		}
		bench_pump(r, d);
		return;
	default:
		return;
	}
}

/* ---- receiving ---- */

/* Our model's (variant, split) rows in one page of the catalog. */
static void
bench_catalog_take(struct bench_run *r, const struct proto_hello_reply *hr)
{
	for (unsigned i = 0; i < hr->catalog_count; i++) {
		struct proto_catalog_entry e;

		proto_catalog_get(hr, i, &e);
		if (e.model_id == r->cfg.model_id && e.variant_id < BENCH_MAX_VARIANTS &&
		    e.split_id < 64) {
			r->tail_us[e.variant_id][e.split_id] = e.tail_us ? e.tail_us : 1;
			r->head_kflop[e.variant_id][e.split_id] = e.head_kflop;
			r->acc_bp[e.variant_id][e.split_id] = e.accuracy_bp;
		}
	}
}

/*
 * A catalog longer than one reply comes in pages (docs/protocol.md 4.2): the first device
 * to see a page with more after it asks for the next one with its session, and is open only
 * once that reply came (so every page is in before the load starts). @return true when it
 * asked (the device stays in HELLO)
 */
static bool
bench_catalog_next(struct bench_run *r, struct bench_dev *d, const struct proto_hello_reply *hr)
{
	unsigned next = (unsigned)hr->catalog_start + hr->catalog_count;

	if (d->rehello || hr->catalog_count == 0 || next >= hr->catalog_total ||
	    next <= r->cat_asked)
		return false;
	r->cat_asked = (uint16_t)next;
	d->cat_start = (uint16_t)next;
	d->hello_tries = 0;
	bench_send_hello(r, d);
	return true;
}

static void
bench_on_hello_reply(struct bench_run *r, struct bench_dev *d, const struct proto_msg *m)
{
	if (m->u.hello_reply.path_token != 0) {
		/* A path challenge (docs/protocol.md 12.1): our address is not the session's
		 * (the one socket rebound); echoing the token from here moves the session. */
		d->session = m->h.session_id;
		d->path_token = m->u.hello_reply.path_token;
		r->res->path_challenges++;
		bench_send_hello(r, d);
		d->path_token = 0;
		return;
	}
	if (!r->have_gw) {
		r->gw = m->u.hello_reply;
		r->gw.entries = NULL;
		r->have_gw = true;
	}
	bench_catalog_take(r, &m->u.hello_reply);
	d->session = m->h.session_id;
	if (bench_catalog_next(r, d, &m->u.hello_reply))
		return;
	d->cat_start = 0;
	if (d->rehello) {
		d->rehello = false;
		d->state = BENCH_DS_BUSY;
		bench_mark_all(d);
		d->quiet_until = r->now + d->timer_ns / 2;
		bench_pump(r, d);
		return;
	}
	r->hello_open--;
	bench_wake_cancel(r, d);
	bench_idle_push(r, d);
}

static void
bench_on_error(struct bench_run *r, struct bench_dev *d, const struct proto_msg *m)
{
	unsigned st = m->u.error.status;

	/* Our chunk's tag refused: it was changed on the way (a corrupted chunk); lost like
	 * any other, NACKs and the timer resend it. A replay refusal ends the request. */
	if (st == PROTO_ST_UNAUTHENTICATED && m->u.error.reason != PROTO_E_REPLAY) {
		r->res->rx_ignored++;
		return;
	}
	if (st == PROTO_ST_UNKNOWN_SESSION || st == PROTO_ST_UNKNOWN_REQUEST) {
		/* One ERROR per chunk of the last send: recover once for all of them. */
		if (r->now < d->quiet_until) {
			r->res->rx_ignored++;
			return;
		}
		if (bench_spent(r, d)) {
			bench_finish(r, d, BENCH_END_ERROR, st, m->u.error.reason, 0, PROTO_NONE);
			return;
		}
		d->timeouts++;
		if (st == PROTO_ST_UNKNOWN_SESSION) {
			r->res->rehellos++;
			d->rehello = true;
			d->hello_tries = 0;
			/* The gateway forgot the session (a restart, the TTL): a HELLO naming it
			 * would be refused UNKNOWN_SESSION again; 0 opens a new one (12.1). Bound
			 * elsewhere (path_unverified: our address changed), a HELLO naming it
			 * gets a path challenge, and echoing its token moves the session here. */
			if (m->u.error.reason != PROTO_E_PATH_UNVERIFIED)
				d->session = 0;
			bench_send_hello(r, d);
			return;
		}
		bench_mark_all(d);
		d->quiet_until = r->now + d->timer_ns / 2;
		bench_pump(r, d);
		return;
	}
	/* A chunk's lz4 refusal: that chunk alone was refused; the gateway NACKs it. */
	if (m->h.session_id != d->session ||
	    (st == PROTO_ST_BAD_REQUEST && m->u.error.reason == PROTO_E_LZ4 &&
	     m->u.error.chunk_index != 0xFFFF)) {
		r->res->rx_ignored++;
		return;
	}
	bench_finish(r, d, BENCH_END_ERROR, st, m->u.error.reason, 0, PROTO_NONE);
}

static void
bench_on_response(struct bench_run *r, struct bench_dev *d, const struct proto_response *rs)
{
	struct proto_topk t = { .class_id = UINT32_MAX };

	if (rs->c.count != 1) {		/* a tensor result: never asked for */
		r->res->rx_ignored++;
		return;
	}
	if (rs->status == PROTO_ST_PENDING) {
		/* Held whole, not answered yet (docs/protocol.md 12.2): not a resend; the timer
		 * starts over, backed off (doubled: the answer is coming, a resend is only for
		 * its loss), and the budget makes room for one more resend and its answer. */
		r->res->pendings++;
		d->timer_ns *= 2;
		if (d->timeout_at != 0) {
			d->timeout_at = r->now + d->timer_ns;
			bench_wake_at(r, d, d->timeout_at);
		}
		if (d->give_up_at < r->now + 2 * d->timer_ns)
			d->give_up_at = r->now + 2 * d->timer_ns;
		return;
	}
	if (rs->result_kind == PROTO_RES_TOPK && rs->top_k > 0)
		proto_topk_get(rs, 0, &t);
	/* The answer names the variant that ran: another one's class is not ours to check. */
	if (d->measured && rs->status == PROTO_ST_OK && rs->c.variant_id != d->sent_variant)
		r->res->other_variant++;
	if (rs->status == PROTO_ST_OK && rs->batch_size > 0) {
		uint32_t s = rs->queue_us + rs->compute_us;

		d->srv_us = d->srv_us ? d->srv_us - d->srv_us / 8 + s / 8 : s;
		if (d->measured) {
			bench_hdr_record(&r->res->srv_queue_us, rs->queue_us);
			bench_hdr_record(&r->res->srv_compute_us, rs->compute_us);
		}
	}
	bench_class_advice(r, d, rs);
	bench_finish(r, d, BENCH_END_RESPONSE, rs->status, rs->reason, t.class_id, rs->exit_taken);
}

static void
bench_on_datagram(struct bench_run *r, const uint8_t *buf, size_t len)
{
	struct proto_msg m;
	struct bench_dev *d;
	uint32_t idx;

	if (r->cfg.keys != NULL) {
		/* Only the gateway's tagged datagrams count: a forged answer is dropped. */
		const struct proto_key *k = NULL;

		if (len >= PROTO_HDR_LEN)
			k = proto_keys_find(r->cfg.keys, (uint32_t)buf[8] << 24 |
						(uint32_t)buf[9] << 16 | (uint32_t)buf[10] << 8 | buf[11]);
		if (k == NULL || (size_t)(k - r->cfg.keys->k) >= r->n_dev ||
		    !proto_mac_ok(buf, len, k->key)) {
			r->res->rx_unauth++;
			return;
		}
	}
	if (proto_decode(buf, len, &r->rx_lim, &m, NULL) != PROTO_OK)
		goto ignored;
	if (r->cfg.keys != NULL) {
		const struct proto_key *k = proto_keys_find(r->cfg.keys, m.h.client_id);

		idx = (uint32_t)(k - r->cfg.keys->k);	/* found above */
	} else {
		idx = m.h.client_id - r->dev[0].client_id;
	}
	if (idx >= r->n_dev)
		goto ignored;
	d = &r->dev[idx];
	if (d->state == BENCH_DS_HELLO) {
		if (m.h.request_id != d->hello_nonce)
			goto ignored;
		if (m.h.type == PROTO_T_HELLO_REPLY) {
			bench_on_hello_reply(r, d, &m);
			return;
		}
		if (m.h.type == PROTO_T_ERROR && d->session != 0 &&
		    m.u.error.status == PROTO_ST_UNKNOWN_SESSION) {
			d->session = 0;	/* forgotten: a new session, same HELLO tries */
			bench_send_hello(r, d);
			return;
		}
		if (m.h.type == PROTO_T_ERROR && !d->rehello) {	/* refused: e.g. too many sessions */
			bench_wake_cancel(r, d);
			d->state = BENCH_DS_FAILED;
			r->hello_open--;
			r->hello_failed++;
			r->hello_fail_status = m.u.error.status;
			return;
		}
		goto ignored;
	}
	if (d->state != BENCH_DS_BUSY || m.h.request_id != d->req_id)
		goto ignored;
	if (m.h.session_id != d->session && m.h.type != PROTO_T_ERROR)
		goto ignored;
	switch (m.h.type) {
	case PROTO_T_RESPONSE:
		bench_on_response(r, d, &m.u.resp);
		return;
	case PROTO_T_NACK:
		r->res->nacks++;
		if (tgc_nack_mark(&m.u.nack, d->msg->n_dg, d->pending) > 0) {
			d->cursor = 0;
			d->timeout_at = 0;	/* the resends get a whole timer */
			bench_pump(r, d);
		}
		return;
	case PROTO_T_ERROR:
		bench_on_error(r, d, &m);
		return;
	default:
		break;
	}
ignored:
	r->res->rx_ignored++;
}

static int
bench_rx(struct bench_run *r)
{
	for (int rounds = 0; rounds < 8; rounds++) {
		int n = recvmmsg(r->fd, r->rxm, BENCH_RX_BURST, MSG_DONTWAIT, NULL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED)
				return 0;
			return -errno;
		}
		r->now = tg_now_ns();
		for (int i = 0; i < n; i++) {
			if (r->rxm[i].msg_hdr.msg_flags & MSG_TRUNC) {
				r->res->rx_ignored++;
				continue;
			}
			bench_on_datagram(r, r->rx[i], r->rxm[i].msg_len);
		}
		if (n < BENCH_RX_BURST)
			return 0;
	}
	return 0;
}

static void
bench_timers(struct bench_run *r)
{
	/* Bounded: a handler always sets a wake in the future or leaves the heap. */
	while (r->heap_n > 0 && r->dev[r->heap[0]].wake_ns <= r->now) {
		struct bench_dev *d = &r->dev[r->heap[0]];

		bench_wake_cancel(r, d);
		bench_on_timer(r, d);
	}
}

/* Sleep until the socket is readable or until `until`. */
static void
bench_wait(struct bench_run *r, uint64_t until)
{
	struct pollfd pfd = { .fd = r->fd, .events = POLLIN };
	struct timespec ts;
	uint64_t now = tg_now_ns(), ns;

	if (r->heap_n > 0 && r->dev[r->heap[0]].wake_ns < until)
		until = r->dev[r->heap[0]].wake_ns;
	if (until <= now)
		return;
	ns = until - now;
	if (ns > 100000000u)
		ns = 100000000u;
	ts.tv_sec = (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	(void)ppoll(&pfd, 1, &ts, NULL);
}

/* ---- progress ---- */

static void
bench_progress(struct bench_run *r, uint64_t start, uint64_t *last_answered)
{
	const struct bench_results *s = r->res;
	uint64_t done = s->answered + s->gave_up;

	fprintf(stderr, "\r\033[K%s%s[%5.1fs] sched %llu answered %llu (%llu/s) ok %llu timeouts "
		"%llu open %u backlog %u p99 %.1f ms", r->cfg.progress_tag ? r->cfg.progress_tag : "",
		r->cfg.progress_tag ? " " : "", (double)(r->now - start) / 1e9,
		(unsigned long long)s->scheduled,
		(unsigned long long)s->answered, (unsigned long long)(done - *last_answered),
		(unsigned long long)s->ok, (unsigned long long)s->gave_up, r->busy, r->bl_n,
		(double)bench_hdr_value_at(&s->lat_all_us, 99) / 1000.0);
	*last_answered = done;
}

/* ---- results ---- */

int
bench_results_init(struct bench_results *res)
{
	memset(res, 0, sizeof(*res));
	if (bench_hdr_init(&res->lat_us, 1, 3600ll * 1000000, 3) < 0 ||
	    bench_hdr_init(&res->lat_all_us, 1, 3600ll * 1000000, 3) < 0 ||
	    bench_hdr_init(&res->srv_queue_us, 1, 3600ll * 1000000, 3) < 0 ||
	    bench_hdr_init(&res->srv_compute_us, 1, 3600ll * 1000000, 3) < 0) {
		bench_results_fini(res);
		return -ENOMEM;
	}
	return 0;
}

void
bench_results_fini(struct bench_results *res)
{
	if (res == NULL)
		return;
	bench_hdr_fini(&res->lat_us);
	bench_hdr_fini(&res->lat_all_us);
	bench_hdr_fini(&res->srv_queue_us);
	bench_hdr_fini(&res->srv_compute_us);
}

static void
bench_results_reset(struct bench_results *res)
{
	struct bench_hdr a = res->lat_us, b = res->lat_all_us, q = res->srv_queue_us;
	struct bench_hdr c = res->srv_compute_us;

	memset(res, 0, sizeof(*res));
	res->lat_us = a;
	res->lat_all_us = b;
	res->srv_queue_us = q;
	res->srv_compute_us = c;
	bench_hdr_reset(&res->lat_us);
	bench_hdr_reset(&res->lat_all_us);
	bench_hdr_reset(&res->srv_queue_us);
	bench_hdr_reset(&res->srv_compute_us);
}

double
bench_results_offered(const struct bench_results *r)
{
	return r->sched_s > 0 ? (double)r->scheduled / r->sched_s : 0;
}

double
bench_results_achieved(const struct bench_results *r)
{
	return r->sched_s > 0 ? (double)r->win_answered / r->sched_s : 0;
}

double
bench_results_goodput(const struct bench_results *r)
{
	return r->sched_s > 0 ? (double)r->win_good / r->sched_s : 0;
}

/* ---- the loop ---- */

/* Close whatever is still open at the end of a phase; counts measured ones as unfinished. */
static void
bench_phase_abort(struct bench_run *r)
{
	for (unsigned i = 0; i < r->n_dev; i++) {
		struct bench_dev *d = &r->dev[i];

		if (d->state == BENCH_DS_BUSY || (d->state == BENCH_DS_HELLO && d->rehello)) {
			r->res->unfinished += d->measured;
			r->busy--;
			if (d->state == BENCH_DS_BUSY) {
				bench_wake_cancel(r, d);
				bench_idle_push(r, d);
			} else {
				d->rehello = false;	/* the HELLO goes on; its reply idles it */
				r->hello_open++;
			}
		}
	}
	for (; r->bl_n > 0; r->bl_n--, r->bl_head = (r->bl_head + 1) % BENCH_BACKLOG)
		r->res->unfinished += r->backlog[r->bl_head] >= r->measure_from;
}

int
bench_run_phase(struct bench_run *r, double rate, unsigned concurrency, double warmup_s,
	     double duration_s, uint64_t max_requests, double drain_s, struct bench_results *res,
	     struct tg_err *err)
{
	uint64_t start, end, next_arrival = 0, tick, drain_until = UINT64_MAX, last_answered = 0;
	uint64_t stop_at = 0;
	int rc;

	if (!(rate > 0) && concurrency == 0)
		return tg_err_set(err, -EINVAL, "phase: a rate or a concurrency is required");
	bench_results_reset(res);
	for (unsigned k = 0; k < r->cfg.n_classes; k++)
		bench_class_stats_reset(&r->cls[k]);
	res->rate = rate;
	res->variant = r->cfg.variant_id;
	res->concurrency = rate > 0 ? 0 : concurrency;
	r->res = res;
	r->now = start = tg_now_ns();
	r->measure_from = start + (uint64_t)(warmup_s * 1e9);
	end = duration_s > 0 ? r->measure_from + (uint64_t)(duration_s * 1e9) : UINT64_MAX;
	r->closed = !(rate > 0);
	r->max_requests = max_requests;
	r->arrivals_on = true;
	r->last_done = r->last_sched = r->measure_from;
	tick = start + 1000000000u;
	if (r->closed)
		for (unsigned c = 0; c < concurrency; c++)
			bench_arrive(r, start);
	else
		next_arrival = start + bench_poisson_gap_ns(&r->rng, rate);
	for (;;) {
		r->now = tg_now_ns();
		if (r->arrivals_on) {
			bool stop = false;

			if (!r->closed) {
				/* At most BENCH_ARRIVALS_PER_PASS per pass, so answers and timers are
				 * served under overload; the schedule (and each request's latency,
				 * counted from it) is unchanged by the wait. */
				for (unsigned k = 0; next_arrival <= r->now && !stop &&
				     k < BENCH_ARRIVALS_PER_PASS; k++) {
					stop = next_arrival >= end ||
					       (max_requests && res->scheduled >= max_requests);
					if (!stop) {
						bench_arrive(r, next_arrival);
						next_arrival += bench_poisson_gap_ns(&r->rng, rate);
					}
				}
			}
			stop = stop || r->now >= end ||
			       (max_requests && res->scheduled >= max_requests);
			if (stop) {
				r->arrivals_on = false;
				stop_at = r->now < end ? r->now : end;
				drain_until = r->now + (uint64_t)(drain_s * 1e9);
			}
		}
		bench_dispatch(r);
		rc = bench_rx(r);
		if (rc < 0) {
			tg_err_set(err, rc, "receive: %s", strerror(-rc));
			goto out;
		}
		r->now = tg_now_ns();
		bench_timers(r);
		bench_dispatch(r);
		bench_tx_flush(r);
		if (r->cfg.progress && r->now >= tick) {
			bench_progress(r, start, &last_answered);
			tick += 1000000000u;
		}
		if (!r->arrivals_on && (r->busy == 0 && r->bl_n == 0))
			break;
		if (!r->arrivals_on && r->now >= drain_until)
			break;
		{
			uint64_t until = tick;

			if (r->arrivals_on && !r->closed && next_arrival < until)
				until = next_arrival;
			if (r->arrivals_on && end < until)
				until = end;
			if (!r->arrivals_on && drain_until < until)
				until = drain_until;
			bench_wait(r, until);
		}
	}
	rc = 0;
out:
	bench_phase_abort(r);
	bench_tx_flush(r);
	if (r->cfg.progress)
		fputs("\r\033[K", stderr);
	if (stop_at == 0)
		stop_at = r->now;	/* stopped by an error */
	res->window_s = (double)(r->last_done - r->measure_from) / 1e9;
	res->sched_s = stop_at > r->measure_from ? (double)(stop_at - r->measure_from) / 1e9 : 0;
	r->res = NULL;
	return rc;
}

/* ---- setup ---- */

static int
bench_socket(struct bench_run *r, struct tg_err *err)
{
	struct sockaddr_in gw = { .sin_family = AF_INET, .sin_addr.s_addr = r->cfg.gw_ip,
				  .sin_port = htons(r->cfg.gw_port) };
	struct sockaddr_in local = { .sin_family = AF_INET, .sin_addr.s_addr = r->cfg.bind_ip };
	int sz = BENCH_SOCKBUF;

	r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0)
		return tg_err_set(err, -errno, "socket: %s", strerror(errno));
	/* Deep buffers: 1,000 devices answering at once must not overflow the receive queue.
	 * The FORCE variants need CAP_NET_ADMIN; the plain ones are capped by rmem_max. */
	if (setsockopt(r->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(r->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (r->cfg.bind_ip != 0 &&
	    bind(r->fd, (const struct sockaddr *)&local, sizeof(local)) < 0)
		return tg_err_set(err, -errno, "bind: %s", strerror(errno));
	if (connect(r->fd, (const struct sockaddr *)&gw, sizeof(gw)) < 0)
		return tg_err_set(err, -errno, "connect: %s", strerror(errno));
	return 0;
}

static int
bench_alloc(struct bench_run *r, struct tg_err *err)
{
	unsigned n = r->n_dev;

	r->words = (unsigned)bench_words(r->cfg.in->max_chunks ? r->cfg.in->max_chunks : 1);
	r->dev = calloc(n, sizeof(*r->dev));
	r->bitmaps = calloc((size_t)n * r->words, sizeof(uint64_t));
	r->heap = calloc(n, sizeof(*r->heap));
	r->idle = calloc(n, sizeof(*r->idle));
	r->backlog = calloc(BENCH_BACKLOG, sizeof(*r->backlog));
	r->tx = calloc(BENCH_TX_BURST, sizeof(*r->tx));
	r->rx = calloc(BENCH_RX_BURST, sizeof(*r->rx));
	if (!r->dev || !r->bitmaps || !r->heap || !r->idle || !r->backlog || !r->tx || !r->rx)
		return tg_err_set(err, -ENOMEM, "bench: state for %u devices", n);
	for (unsigned i = 0; i < BENCH_TX_BURST; i++) {
		r->txv[i].iov_base = r->tx[i];
		r->txm[i].msg_hdr.msg_iov = &r->txv[i];
		r->txm[i].msg_hdr.msg_iovlen = 1;
	}
	for (unsigned i = 0; i < BENCH_RX_BURST; i++) {
		r->rxv[i] = (struct iovec){ .iov_base = r->rx[i], .iov_len = BENCH_RX_LEN };
		r->rxm[i].msg_hdr.msg_iov = &r->rxv[i];
		r->rxm[i].msg_hdr.msg_iovlen = 1;
	}
	return 0;
}

/* Open every device's session; HELLOs spread at hello_rate. */
static int
bench_open_sessions(struct bench_run *r, struct tg_err *err)
{
	struct bench_results scratch;
	uint64_t t0 = tg_now_ns(), limit;
	unsigned rate = r->cfg.hello_rate ? r->cfg.hello_rate : 2000;

	memset(&scratch, 0, sizeof(scratch));
	r->res = &scratch;
	/* The last HELLO's slot, plus every retry of it (200 + 400 + 800 + 1600 ms), plus 1 s. */
	limit = t0 + (uint64_t)r->n_dev * 1000000000u / rate + 4000000000ull;
	for (unsigned i = 0; i < r->n_dev; i++)
		bench_wake_at(r, &r->dev[i], t0 + (uint64_t)i * 1000000000u / rate);
	r->hello_open = r->n_dev;
	while (r->hello_open > 0) {
		int rc;

		r->now = tg_now_ns();
		if (r->now > limit)
			break;
		rc = bench_rx(r);
		if (rc < 0) {
			r->res = NULL;
			return tg_err_set(err, rc, "receive: %s", strerror(-rc));
		}
		r->now = tg_now_ns();
		bench_timers(r);
		bench_tx_flush(r);
		bench_wait(r, r->now + 100000000u);
	}
	r->res = NULL;
	if (r->hello_failed > 0 || r->hello_open > 0) {
		if (r->hello_fail_status != 0)
			return tg_err_set(err, -EPROTO, "%u of %u devices' HELLOs refused (%s), "
					  "%u unanswered: the gateway's session table is full (it "
					  "holds 4,096 by default; sessions of earlier runs stay %u ms "
					  "after their last use)", r->hello_failed, r->n_dev,
					  proto_status_name(r->hello_fail_status), r->hello_open,
					  r->have_gw ? r->gw.session_ttl_ms : 0);
		return tg_err_set(err, -ETIMEDOUT, "%u of %u devices got no HELLO_REPLY",
				  r->hello_failed + r->hello_open, r->n_dev);
	}
	return 0;
}

/* Everything the devices will send from in (variant v's), the gateway must take. */
static int
bench_check_gateway(struct bench_run *r, unsigned v, const struct bench_inputs *in,
		    struct tg_err *err)
{
	if (r->gw.max_dgram < in->max_dgram)
		return tg_err_set(err, -EINVAL, "the gateway takes %u-byte datagrams, inputs were "
				  "cut for %u", r->gw.max_dgram, in->max_dgram);
	if (r->gw.max_chunks < in->max_chunks)
		return tg_err_set(err, -EINVAL, "the gateway takes %u chunks per message, inputs "
				  "need %u", r->gw.max_chunks, in->max_chunks);
	for (unsigned s = 0; s < 64; s++)
		if ((in->split_mask >> s & 1) && r->tail_us[v][s] == 0)
			return tg_err_set(err, -EINVAL, "model %u variant %u split %u: not in the "
					  "gateway's catalog", r->cfg.model_id, v, s);
	return 0;
}

int
bench_run_add_inputs(struct bench_run *r, unsigned variant, const struct bench_inputs *in,
		     struct tg_err *err)
{
	unsigned words = (unsigned)bench_words(in->max_chunks ? in->max_chunks : 1);
	int rc;

	if (variant >= BENCH_MAX_VARIANTS || variant == r->cfg.variant_id)
		return tg_err_set(err, -EINVAL, "variant %u: not another variant the bench can "
				  "send (0..%d, not %u)", variant, BENCH_MAX_VARIANTS - 1,
				  r->cfg.variant_id);
	if (in->n_items != r->cfg.in->n_items || in->max_dgram != r->cfg.in->max_dgram)
		return tg_err_set(err, -EINVAL, "variant %u: inputs of %u samples cut for %u bytes, "
				  "the run's are %u cut for %u", variant, in->n_items,
				  in->max_dgram, r->cfg.in->n_items, r->cfg.in->max_dgram);
	rc = bench_check_gateway(r, variant, in, err);
	if (rc < 0)
		return rc;
	if (words > r->words) {	/* between phases: no request is open */
		uint64_t *b = calloc((size_t)r->n_dev * words, sizeof(uint64_t));

		if (b == NULL)
			return tg_err_set(err, -ENOMEM, "bench: out of memory");
		free(r->bitmaps);
		r->bitmaps = b;
		r->words = words;
		for (unsigned i = 0; i < r->n_dev; i++)
			r->dev[i].pending = b + (size_t)i * words;
	}
	r->vin[variant] = in;
	return 0;
}

int
bench_run_create(struct bench_run **out, const struct bench_config *cfg, struct tg_err *err)
{
	struct bench_run *r;
	struct bench_rng drng;
	uint32_t base;
	int rc;

	if (cfg->in == NULL || cfg->n_devices == 0 || cfg->gw_ip == 0)
		return tg_err_set(err, -EINVAL, "bench: inputs, devices and a gateway are required");
	if (cfg->in->max_dgram > BENCH_TX_LEN)
		return tg_err_set(err, -EINVAL, "bench: datagrams over %u bytes", BENCH_TX_LEN);
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return tg_err_set(err, -ENOMEM, "bench: out of memory");
	r->cfg = *cfg;
	r->n_dev = cfg->n_devices;
	r->fd = -1;
	r->rx_lim = (struct proto_limits){ .max_msg_bytes = PROTO_MAX_MSG_BYTES,
					   .max_dgram = PROTO_MAX_DGRAM,
					   .max_chunks = PROTO_MAX_CHUNKS,
					   .max_nack_ranges = PROTO_MAX_NACK_RANGES,
					   .max_top_k = PROTO_MAX_TOP_K };
	bench_rng_seed(&r->rng, cfg->seed);
	bench_rng_seed(&drng, cfg->seed ^ 0xD1CE);
	r->fixed_split = -1;
	if (cfg->variant_id >= BENCH_MAX_VARIANTS) {
		free(r);
		return tg_err_set(err, -EINVAL, "bench: variant %u: at most %d", cfg->variant_id,
				  BENCH_MAX_VARIANTS - 1);
	}
	r->vin[cfg->variant_id] = cfg->in;
	if (cfg->n_classes > BENCH_MAX_CLASSES || (cfg->n_classes > 0 && cfg->classes == NULL)) {
		free(r);
		return tg_err_set(err, -EINVAL, "bench: at most %d device classes",
				  BENCH_MAX_CLASSES);
	}
	for (unsigned k = 0; k < cfg->n_classes; k++)
		if (bench_class_stats_init(&r->cls[k]) < 0) {
			for (unsigned j = 0; j < k; j++)
				bench_class_stats_fini(&r->cls[j]);
			free(r);
			return tg_err_set(err, -ENOMEM, "bench: out of memory");
		}
	if (cfg->keys != NULL && cfg->keys->n < r->n_dev) {
		rc = tg_err_set(err, -EINVAL, "%u devices, but the key file holds %zu keys (one "
				"per device)", r->n_dev, cfg->keys->n);
		goto out_free;
	}
	rc = bench_alloc(r, err);
	if (rc < 0)
		goto out_free;
	rc = bench_socket(r, err);
	if (rc < 0)
		goto out_free;
	/* Client ids: a seeded random base, so two benches rarely collide; never 0. */
	base = 0x10000000u | ((uint32_t)bench_rng_next(&drng) & 0x3FF00000u);
	r->next_req = (uint32_t)bench_rng_next(&drng) | 1u;
	r->now = tg_now_ns();
	for (unsigned i = 0; i < r->n_dev; i++) {
		struct bench_dev *d = &r->dev[i];

		d->client_id = cfg->keys != NULL ? cfg->keys->k[i].client_id : base + i;
		d->heap_pos = -1;
		d->held = -1;
		d->pending = r->bitmaps + (size_t)i * r->words;
		d->variant = cfg->variant_id;
		(void)bench_rng_next(&drng);	/* the draw the nonce once was: same sequence */
		d->hello_nonce = bench_clock_nonce() - 1;
		bench_mix_draw(&cfg->mix, &drng, &d->prof);
		if (!(cfg->in->split_mask >> d->prof.split & 1) ||
		    !(cfg->in->dtype_mask >> d->prof.dtype & 1)) {
			rc = tg_err_set(err, -EINVAL, "device %u: split %u / dtype %u not built", i,
					d->prof.split, d->prof.dtype);
			goto out_free;
		}
		if (cfg->n_classes > 0) {
			d->cls = (uint8_t)(i % cfg->n_classes);
			d->prof.uplink_kbps = cfg->classes[d->cls].uplink_kbps;
		}
		tgc_pacer_init(&d->pacer, d->prof.uplink_kbps, 4u * cfg->in->max_dgram, r->now);
		d->state = BENCH_DS_NEW;
	}
	rc = bench_open_sessions(r, err);
	if (rc == 0)
		rc = bench_check_gateway(r, cfg->variant_id, cfg->in, err);
	if (rc < 0)
		goto out_free;
	*out = r;
	return 0;

out_free:
	bench_run_free(r);
	return rc;
}

void
bench_run_free(struct bench_run *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	for (unsigned k = 0; k < r->cfg.n_classes && k < BENCH_MAX_CLASSES; k++)
		bench_class_stats_fini(&r->cls[k]);
	free(r->dev);
	free(r->bitmaps);
	free(r->heap);
	free(r->idle);
	free(r->backlog);
	free(r->tx);
	free(r->rx);
	free(r);
}

const struct proto_hello_reply *
bench_run_gateway(const struct bench_run *r)
{
	return &r->gw;
}
