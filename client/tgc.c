/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device's session: HELLO and the catalog at open, then one request at a time over a
 * connected kernel UDP socket (docs/protocol.md sections 4, 8, 12 and 15). Buffers for the
 * largest request are allocated at open; a request allocates nothing.
 */
#include "client/tgc_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ran_variant, ran_split and degraded live in what was tgc_result's tail padding: the size a
 * caller built against the previous header allocates is still the whole struct. */
#define TGC_RESULT_OLD_END (offsetof(struct tgc_result, device_conf) + sizeof(float))
_Static_assert(sizeof(struct tgc_result) ==
		       (TGC_RESULT_OLD_END + _Alignof(struct tgc_result) - 1) /
			       _Alignof(struct tgc_result) * _Alignof(struct tgc_result),
	       "tgc_result grew: an ABI break of libtailgate-client.so.1");

#include <sodium.h>

enum {
	TGC_MAX_ADVICE = 16,		/* models whose last advice is remembered */
	TGC_MSG_CAP = 16 << 20,		/* largest raw tensor buffered, whatever the gateway takes */
	TGC_RESP_NACKS = 3,		/* NACKs per TENSOR answer before the whole resend */
	TGC_NACK_RANGES = 64,		/* ranges per NACK: the default max_nack_ranges */
	TGC_RCVBUF = 4 << 20,		/* socket buffer asked for: a TENSOR answer comes as a
					 * burst (the kernel caps it at net.core.rmem_max) */
};

struct tgc_hmeas {			/* the measured head time of one (model, variant, split) */
	uint16_t model_id;
	uint8_t variant_id, split_id;
	uint32_t kflop;			/* the catalog's head work there, per sample */
	uint32_t n;			/* runs reported (halved with sum_ns past 1024) */
	uint64_t sum_ns;		/* their time */
};

struct tgc_memo {			/* the last advice of one model */
	uint16_t model_id;
	struct tgc_advice a;
};

struct tgc {
	int fd;				/* UDP socket connected to the gateway */
	struct tgc_config cfg;		/* a copy; its pointers are cleared (read at open only) */
	uint32_t client_id;
	uint64_t session;		/* from the HELLO_REPLY */
	uint32_t hello_nonce;		/* request_id of our HELLOs: grows across restarts */
	bool nonce_set;			/* hello_nonce holds one sent */
	uint8_t key[PROTO_KEY_LEN];	/* cfg.key's copy, when has_key */
	bool has_key;
	uint32_t next_req;		/* the next request id */
	struct proto_hello_reply gw;	/* the gateway's limits (entries NULL) */
	struct proto_limits rx_lim;	/* what we decode: the wire caps */
	struct proto_catalog_entry cat[TGC_MAX_CATALOG];
	unsigned n_cat;
	size_t max_dgram;		/* min(ours, the gateway's) */
	uint8_t *q;			/* quantized tensor, q_cap bytes */
	size_t q_cap;
	uint8_t *out;			/* the request's datagrams, out_cap bytes */
	size_t out_cap;
	struct proto_dgram *dg;		/* max_dg of them, pointing into out */
	unsigned max_dg;
	uint64_t *resend;		/* bitmap of chunks a NACK asked for */
	uint64_t *rx_got;		/* TENSOR answer: bitmap of chunks placed (any count) */
	uint32_t (*rx_span)[2];		/* [i]: raw offset and end of chunk i, once placed */
	struct tgc_pacer pacer;
	uint64_t rng;			/* xorshift64 state of the test impairment */
	uint32_t srv_us;		/* smoothed queue + compute of recent answers; 0 none */
	struct tgc_memo advice[TGC_MAX_ADVICE];
	unsigned n_advice;
	struct tgc_energy energy;	/* tgc_set_energy(); all 0: none sent */
	struct tgc_hmeas hm[TGC_HEAD_MAX_SPLITS];	/* tgc_head_report() */
	unsigned n_hm;
	uint32_t hm_since;		/* runs with head work since the rate was last sent */
	struct tgc_stats st;
	uint8_t rx[PROTO_MAX_DGRAM + 1];	/* one received datagram */
};

static uint64_t
tgc_rand(struct tgc *c)
{
	uint64_t x = c->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	c->rng = x;
	return x;
}

static void
tgc_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * A HELLO nonce larger than any this device sent before, also across restarts while the
 * gateway remembers it (docs/protocol.md 12.5): the wall clock in 2^26 ns (~67 ms) units,
 * or the last nonce + 1 when that is not larger.
 */
static uint32_t
tgc_hello_nonce(struct tgc *c)
{
	struct timespec ts;
	uint32_t t;

	clock_gettime(CLOCK_REALTIME, &ts);
	t = (uint32_t)((((uint64_t)ts.tv_sec * 1000000000u) + (uint64_t)ts.tv_nsec) >> 26);
	c->hello_nonce = !c->nonce_set || (int32_t)(t - c->hello_nonce) > 0 ? t
									      : c->hello_nonce + 1;
	c->nonce_set = true;
	return c->hello_nonce;
}

/*
 * Seal (MAC with a key, else CRC unless no_crc) and send one datagram; buf is sealed in
 * place, after every change to it (RETRANSMIT included). An ICMP error left on the
 * connected socket is not this send's fault.
 */
static int
tgc_send(struct tgc *c, uint8_t *buf, size_t len)
{
	if (c->has_key)
		(void)proto_seal_mac(buf, len, c->key);
	else if (!c->cfg.no_crc)
		(void)proto_seal_crc(buf, len);
	for (int tries = 0; tries < 3; tries++) {
		if (send(c->fd, buf, len, 0) == (ssize_t)len) {
			c->st.bytes_sent += len;
			return 0;
		}
		if (errno != ECONNREFUSED && errno != EINTR && errno != ENOBUFS &&
		    errno != EAGAIN)
			return -errno;
		if (errno == ENOBUFS || errno == EAGAIN)
			tgc_sleep_ns(100000);
	}
	return 0;	/* lost like any datagram: timers recover it */
}

/*
 * Receive one datagram, waiting until deadline_ns. @return its length, 0 on timeout,
 * -errno on a socket error.
 */
static ssize_t
tgc_recv(struct tgc *c, uint64_t deadline_ns)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

	for (;;) {
		uint64_t now = tg_now_ns();
		ssize_t n;
		int ms, pr;

		if (now >= deadline_ns)
			return 0;
		ms = (int)((deadline_ns - now + 999999) / 1000000);
		pr = poll(&pfd, 1, ms);
		if (pr < 0 && errno != EINTR)
			return -errno;
		if (pr <= 0)
			continue;
		n = recv(c->fd, c->rx, sizeof(c->rx), MSG_DONTWAIT);
		/* With a key, only the gateway's tagged datagrams count (a forged answer is
		 * dropped like a lost one); CRCs are the decoder's to check. */
		if (n > 0 && c->has_key && !proto_mac_ok(c->rx, (size_t)n, c->key)) {
			c->st.rx_unauth++;
			continue;
		}
		if (n > 0)
			return n;
		if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
			return -errno;
	}
}

/* One HELLO exchange: catalog page from start, echoing path token tok (0 none); on success
 * *r holds the reply (entries point into c->rx until the next receive); on an ERROR, *st is
 * its status. */
static int
tgc_hello(struct tgc *c, uint16_t start, uint32_t tok, struct proto_msg *r, uint8_t *st,
	  struct tg_err *err)
{
	uint8_t buf[PROTO_HELLO_MIN_DGRAM];
	struct proto_hdr h = { .client_id = c->client_id, .request_id = tgc_hello_nonce(c),
			       .session_id = c->session };
	struct proto_hello m = {
		.compute_mflops = c->cfg.profile.compute_mflops,
		.uplink_kbps = c->cfg.profile.uplink_kbps,
		.rtt_us = c->cfg.profile.rtt_us,
		.slo_us = c->cfg.profile.slo_us,
		.accuracy_floor_bp = c->cfg.profile.accuracy_floor_bp,
		.max_dgram = c->cfg.max_dgram,
		.catalog_start = start,
		.path_token = tok,
		.head_uj_per_mflop = c->energy.head_uj_per_mflop,
		.tx_pj_per_bit = c->energy.tx_pj_per_bit,
		.goal = c->energy.goal,
	};
	uint64_t wait_ns = (uint64_t)c->cfg.hello_timeout_ms * 1000000u;
	int n, rc;

	/* Padded to 1200 bytes: never smaller than the reply (docs/protocol.md 4.1, 12.4). */
	n = proto_encode_hello(buf, sizeof(buf), &h, &m, sizeof(buf));
	if (n < 0)
		return tg_err_set(err, n, "HELLO: encoding failed");
	for (unsigned t = 0; t < c->cfg.hello_tries; t++, wait_ns *= 2) {
		uint64_t deadline = tg_now_ns() + wait_ns;
		ssize_t len;

		rc = tgc_send(c, buf, (size_t)n);
		if (rc < 0)
			return tg_err_set(err, rc, "HELLO: send: %s", strerror(-rc));
		c->st.hellos++;
		while ((len = tgc_recv(c, deadline)) > 0) {
			if (proto_decode(c->rx, (size_t)len, &c->rx_lim, r, NULL) != PROTO_OK ||
			    r->h.request_id != h.request_id || r->h.client_id != c->client_id) {
				c->st.rx_ignored++;
				continue;
			}
			if (r->h.type == PROTO_T_HELLO_REPLY)
				return 0;
			if (r->h.type == PROTO_T_ERROR) {
				*st = r->u.error.status;
				return tg_err_set(err, -EPROTO, "HELLO answered with ERROR %s (%s)",
						  proto_status_name(r->u.error.status),
						  proto_reason_name(r->u.error.reason));
			}
			c->st.rx_ignored++;
		}
		if (len < 0)
			return tg_err_set(err, (int)len, "HELLO: receive: %s", strerror((int)-len));
	}
	return tg_err_set(err, -ETIMEDOUT, "HELLO: no reply from the gateway after %u tries",
			  (unsigned)c->cfg.hello_tries);
}

/*
 * One catalog page, following the gateway's answers (docs/protocol.md 12.1): a path challenge
 * (we moved: NAT rebinding) is answered by echoing its token from here, which moves the
 * session; a session the gateway no longer knows is replaced by a new one.
 */
static int
tgc_hello_page(struct tgc *c, uint16_t start, struct proto_msg *r, struct tg_err *err)
{
	uint32_t tok = 0;
	uint8_t st = 0;
	int rc;

	for (int round = 0; round < 4; round++) {
		rc = tgc_hello(c, start, tok, r, &st, err);
		if (rc == -EPROTO && st == PROTO_ST_UNKNOWN_SESSION && c->session != 0) {
			c->session = 0;	/* forgotten (or on another lcore): a new one */
			tok = 0;
			continue;
		}
		if (rc < 0)
			return rc;
		if (r->u.hello_reply.path_token == 0)
			return 0;
		c->session = r->h.session_id;
		tok = r->u.hello_reply.path_token;
		c->st.path_challenges++;
	}
	return tg_err_set(err, -EPROTO, "HELLO: the gateway keeps challenging this address");
}

/* A session (new, or the old one moved here) and every catalog page. */
static int
tgc_session(struct tgc *c, struct tg_err *err)
{
	struct proto_msg r;
	unsigned start = 0;
	int rc;

	c->n_cat = 0;
	do {
		rc = tgc_hello_page(c, (uint16_t)start, &r, err);
		if (rc < 0)
			return rc;
		c->session = r.h.session_id;
		c->gw = r.u.hello_reply;
		c->gw.entries = NULL;
		for (unsigned i = 0; i < r.u.hello_reply.catalog_count &&
		     c->n_cat < TGC_MAX_CATALOG; i++)
			proto_catalog_get(&r.u.hello_reply, i, &c->cat[c->n_cat++]);
		start = r.u.hello_reply.catalog_start + r.u.hello_reply.catalog_count;
		if (r.u.hello_reply.catalog_count == 0)
			break;	/* a gateway that sends no entries would loop forever */
	} while (start < r.u.hello_reply.catalog_total && c->n_cat < TGC_MAX_CATALOG);
	return 0;
}

static int
tgc_config_check(struct tgc_config *cfg, struct sockaddr_in *gw, struct sockaddr_in *local,
		 struct tg_err *err)
{
	memset(gw, 0, sizeof(*gw));
	memset(local, 0, sizeof(*local));
	gw->sin_family = AF_INET;
	local->sin_family = AF_INET;
	if (cfg->gateway == NULL || inet_pton(AF_INET, cfg->gateway, &gw->sin_addr) != 1)
		return tg_err_set(err, -EINVAL, "gateway: '%s' is not an IPv4 address",
				  cfg->gateway ? cfg->gateway : "(none)");
	gw->sin_port = htons(cfg->port ? cfg->port : PROTO_PORT);
	if (cfg->bind_addr != NULL && inet_pton(AF_INET, cfg->bind_addr, &local->sin_addr) != 1)
		return tg_err_set(err, -EINVAL, "bind_addr: '%s' is not an IPv4 address",
				  cfg->bind_addr);
	local->sin_port = htons(cfg->bind_port);
	if (cfg->max_dgram == 0)
		cfg->max_dgram = PROTO_DEFAULT_DGRAM;
	if (cfg->max_dgram < PROTO_HELLO_MIN_DGRAM || cfg->max_dgram > PROTO_MAX_DGRAM)
		return tg_err_set(err, -EINVAL, "max_dgram: %u not in %u..%u",
				  (unsigned)cfg->max_dgram, PROTO_HELLO_MIN_DGRAM, PROTO_MAX_DGRAM);
	if (cfg->profile.accuracy_floor_bp > 10000)
		return tg_err_set(err, -EINVAL, "accuracy_floor_bp: %u over 10000",
				  (unsigned)cfg->profile.accuracy_floor_bp);
	if (!(cfg->test_drop_chunks >= 0.0 && cfg->test_drop_chunks < 1.0))
		return tg_err_set(err, -EINVAL, "test_drop_chunks: %g not in [0, 1)",
				  cfg->test_drop_chunks);
	if (!(cfg->test_drop_rx >= 0.0 && cfg->test_drop_rx < 1.0))
		return tg_err_set(err, -EINVAL, "test_drop_rx: %g not in [0, 1)",
				  cfg->test_drop_rx);
	if (cfg->hello_timeout_ms == 0)
		cfg->hello_timeout_ms = 200;
	if (cfg->hello_tries == 0)
		cfg->hello_tries = 4;
	if (cfg->client_id == 0)
		cfg->client_id = (uint32_t)getpid() ^ (uint32_t)(tg_now_ns() >> 10);
	return 0;
}

/* Buffers for the largest request the gateway takes (capped at TGC_MSG_CAP). */
static int
tgc_buffers(struct tgc *c, struct tg_err *err)
{
	size_t msg = c->gw.max_msg_bytes < TGC_MSG_CAP ? c->gw.max_msg_bytes : TGC_MSG_CAP;
	unsigned max_dg = 0;
	size_t out_cap = 0;

	for (unsigned dt = PROTO_DT_F32; dt < PROTO_DT__COUNT; dt++) {
		unsigned k;
		size_t b;

		/* The largest whole-element tensor of this dtype that fits msg. */
		size_t raw = msg / proto_dtype_size(dt) * proto_dtype_size(dt);

		if (proto_chunk_bound(PROTO_T_REQUEST, dt, raw, c->max_dgram, &k, &b) < 0)
			return tg_err_set(err, -EINVAL, "max_dgram %zu leaves no room", c->max_dgram);
		max_dg = k > max_dg ? k : max_dg;
		out_cap = b > out_cap ? b : out_cap;
	}
	if (max_dg > c->gw.max_chunks)
		max_dg = c->gw.max_chunks;
	c->q_cap = msg;
	c->q = malloc(msg > 0 ? msg : 1);
	c->out = malloc(out_cap > 0 ? out_cap : 1);
	c->dg = calloc(max_dg > 0 ? max_dg : 1, sizeof(*c->dg));
	c->resend = calloc(tgc_bitmap_words(max_dg > 0 ? max_dg : 1), sizeof(uint64_t));
	c->rx_got = calloc(tgc_bitmap_words(PROTO_MAX_CHUNKS), sizeof(uint64_t));
	c->rx_span = calloc(PROTO_MAX_CHUNKS, sizeof(*c->rx_span));
	if (c->q == NULL || c->out == NULL || c->dg == NULL || c->resend == NULL ||
	    c->rx_got == NULL || c->rx_span == NULL)
		return tg_err_set(err, -ENOMEM, "buffers for %zu-byte requests: out of memory", msg);
	c->out_cap = out_cap;
	c->max_dg = max_dg;
	return 0;
}

int
tgc_open(struct tgc **out, const struct tgc_config *cfg_in, struct tg_err *err)
{
	struct sockaddr_in gw, local;
	struct tgc *c;
	int rc;

	if (out == NULL || cfg_in == NULL)
		return tg_err_set(err, -EINVAL, "tgc_open: out and cfg are required");
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return tg_err_set(err, -ENOMEM, "tgc_open: out of memory");
	c->fd = -1;
	c->cfg = *cfg_in;
	rc = tgc_config_check(&c->cfg, &gw, &local, err);
	if (rc < 0)
		goto out_free;
	c->cfg.gateway = NULL;
	c->cfg.bind_addr = NULL;
	c->client_id = c->cfg.client_id;
	if (c->cfg.key != NULL) {
		memcpy(c->key, c->cfg.key, PROTO_KEY_LEN);
		c->has_key = true;
		c->cfg.key = NULL;	/* read at open only, like the addresses */
	}
	c->rng = c->cfg.test_seed ? c->cfg.test_seed : 0x9E3779B97F4A7C15ull;
	c->rx_lim = (struct proto_limits){ .max_msg_bytes = PROTO_MAX_MSG_BYTES,
					   .max_dgram = PROTO_MAX_DGRAM,
					   .max_chunks = PROTO_MAX_CHUNKS,
					   .max_nack_ranges = PROTO_MAX_NACK_RANGES,
					   .max_top_k = PROTO_MAX_TOP_K };
	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		rc = tg_err_set(err, -errno, "socket: %s", strerror(errno));
		goto out_free;
	}
	if ((local.sin_addr.s_addr != 0 || local.sin_port != 0) &&
	    bind(c->fd, (const struct sockaddr *)&local, sizeof(local)) < 0) {
		rc = tg_err_set(err, -errno, "bind: %s", strerror(errno));
		goto out_close;
	}
	/* Best effort: without it a burst of answer chunks may overflow the default buffer
	 * (NACKs recover them). */
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &(int){ TGC_RCVBUF }, sizeof(int));
	if (connect(c->fd, (const struct sockaddr *)&gw, sizeof(gw)) < 0) {
		rc = tg_err_set(err, -errno, "connect to %s: %s", cfg_in->gateway, strerror(errno));
		goto out_close;
	}
	rc = tgc_session(c, err);
	if (rc < 0) {
		tg_err_prefix(err, "gateway %s:%u: ", cfg_in->gateway, ntohs(gw.sin_port));
		goto out_close;
	}
	c->max_dgram = c->cfg.max_dgram < c->gw.max_dgram ? c->cfg.max_dgram : c->gw.max_dgram;
	c->next_req = (uint32_t)tgc_rand(c) | 1u;
	rc = tgc_buffers(c, err);
	if (rc < 0)
		goto out_buffers;
	tgc_pacer_init(&c->pacer, c->cfg.profile.uplink_kbps, (uint32_t)c->max_dgram * 4,
		       tg_now_ns());
	*out = c;
	return 0;

out_buffers:
	free(c->q);
	free(c->out);
	free(c->dg);
	free(c->resend);
	free(c->rx_got);
	free(c->rx_span);
out_close:
	close(c->fd);
out_free:
	sodium_memzero(c->key, sizeof(c->key));
	free(c);
	return rc;
}

void
tgc_close(struct tgc *c)
{
	if (c == NULL)
		return;
	close(c->fd);
	free(c->q);
	free(c->out);
	free(c->dg);
	free(c->resend);
	free(c->rx_got);
	free(c->rx_span);
	sodium_memzero(c->key, sizeof(c->key));
	free(c);
}

uint64_t
tgc_session_id(const struct tgc *c)
{
	return c->session;
}

const struct proto_hello_reply *
tgc_gateway_limits(const struct tgc *c)
{
	return &c->gw;
}

unsigned
tgc_catalog(const struct tgc *c, const struct proto_catalog_entry **entries)
{
	*entries = c->cat;
	return c->n_cat;
}

const struct proto_catalog_entry *
tgc_catalog_find(const struct tgc *c, uint16_t model_id, uint8_t variant_id, uint8_t split_id)
{
	for (unsigned i = 0; i < c->n_cat; i++)
		if (c->cat[i].model_id == model_id && c->cat[i].variant_id == variant_id &&
		    c->cat[i].split_id == split_id)
			return &c->cat[i];
	return NULL;
}

uint8_t
tgc_split_for(const struct tgc *c, uint16_t model_id, uint8_t dflt)
{
	if (!c->cfg.follow_advice)
		return dflt;
	for (unsigned i = 0; i < c->n_advice; i++)
		if (c->advice[i].model_id == model_id &&
		    tgc_catalog_find(c, model_id, c->advice[i].a.variant_id,
				     c->advice[i].a.split_id) != NULL)
			return c->advice[i].a.split_id;
	return dflt;
}

bool
tgc_advice(const struct tgc *c, uint16_t model_id, struct tgc_advice *out)
{
	for (unsigned i = 0; i < c->n_advice; i++)
		if (c->advice[i].model_id == model_id) {
			*out = c->advice[i].a;
			return true;
		}
	return false;
}

int
tgc_set_energy(struct tgc *c, const struct tgc_energy *e, struct tg_err *err)
{
	struct tgc_energy old = c->energy;
	int rc;

	if (e->goal > PROTO_GOAL_ENERGY)
		return tg_err_set(err, -EINVAL, "energy: goal %u (0 none, 1 latency, 2 energy)",
				  (unsigned)e->goal);
	if (e->goal == PROTO_GOAL_NONE && (e->head_uj_per_mflop | e->tx_pj_per_bit) != 0)
		return tg_err_set(err, -EINVAL, "energy: a profile needs a goal (1 or 2)");
	c->energy = *e;
	rc = tgc_session(c, err);
	if (rc == -EPROTO && e->goal != PROTO_GOAL_NONE) {
		/* A gateway before the profile refuses its bytes (bad_padding): keep the
		 * session as it was, and say so. */
		c->energy = old;
		rc = tgc_session(c, NULL);
		return rc < 0 ? rc : tg_err_set(err, -EOPNOTSUPP,
						"energy: the gateway refused the profile");
	}
	return rc;
}

/* The triple's measurement slot index, -1 when none. */
static int
tgc_hmeas_find(const struct tgc *c, uint16_t model_id, uint8_t variant_id, uint8_t split_id)
{
	for (unsigned i = 0; i < c->n_hm; i++)
		if (c->hm[i].model_id == model_id && c->hm[i].variant_id == variant_id &&
		    c->hm[i].split_id == split_id)
			return (int)i;
	return -1;
}

/* The measured compute rate, MFLOP/s, over every split with head work; 0 before
 * TGC_HEAD_MIN_SAMPLES runs there. kFLOP per ns = 1e6 MFLOP/s. */
static uint32_t
tgc_measured_mflops(const struct tgc *c)
{
	double kflop = 0, ns = 0;
	uint64_t n = 0;

	for (unsigned i = 0; i < c->n_hm; i++)
		if (c->hm[i].kflop > 0) {
			kflop += (double)c->hm[i].kflop * c->hm[i].n;
			ns += (double)c->hm[i].sum_ns;
			n += c->hm[i].n;
		}
	if (n < TGC_HEAD_MIN_SAMPLES || ns <= 0)
		return 0;
	kflop = kflop / ns * 1e6;
	return kflop >= UINT32_MAX ? UINT32_MAX : kflop < 1 ? 1 : (uint32_t)kflop;
}

int
tgc_head_report(struct tgc *c, uint16_t model_id, uint8_t variant_id, uint8_t split_id,
		uint64_t head_ns, struct tg_err *err)
{
	const struct proto_catalog_entry *e;
	struct tgc_hmeas *m;
	uint32_t rate, told, old;
	int i, rc;

	if (c == NULL || head_ns == 0)
		return tg_err_set(err, -EINVAL, "head time: a session and a time are required");
	e = tgc_catalog_find(c, model_id, variant_id, split_id);
	if (e == NULL)
		return tg_err_set(err, -EINVAL, "head time: model %u variant %u split %u is not "
				  "in the catalog", model_id, variant_id, split_id);
	i = tgc_hmeas_find(c, model_id, variant_id, split_id);
	if (i < 0) {
		if (c->n_hm == TGC_HEAD_MAX_SPLITS)
			return tg_err_set(err, -ENOSPC, "head time: %d splits measured already",
					  TGC_HEAD_MAX_SPLITS);
		i = (int)c->n_hm++;
		c->hm[i] = (struct tgc_hmeas){ .model_id = model_id, .variant_id = variant_id,
					       .split_id = split_id };
	}
	m = &c->hm[i];
	m->kflop = e->head_kflop;
	if (m->n >= 1024) {	/* older runs fade: a device's speed changes */
		m->n /= 2;
		m->sum_ns /= 2;
	}
	m->n++;
	m->sum_ns += head_ns;
	if (m->kflop == 0)
		return 0;	/* the input: no head work to learn a rate from */
	c->hm_since++;
	rate = tgc_measured_mflops(c);
	told = c->cfg.profile.compute_mflops;
	if (rate == 0 || c->hm_since < TGC_HEAD_MIN_SAMPLES ||
	    (told != 0 && (uint64_t)(rate > told ? rate - told : told - rate) * 100 <=
			  (uint64_t)told * TGC_HEAD_RESEND_PCT))
		return 0;
	old = told;
	c->cfg.profile.compute_mflops = rate;
	rc = tgc_session(c, err);
	if (rc < 0) {
		c->cfg.profile.compute_mflops = old;	/* not told: try again next time */
		return rc;
	}
	c->hm_since = 0;
	return 1;
}

bool
tgc_head_time(const struct tgc *c, uint16_t model_id, uint8_t variant_id, uint8_t split_id,
	      uint64_t *mean_ns, uint32_t *samples)
{
	int i = tgc_hmeas_find(c, model_id, variant_id, split_id);

	if (i < 0 || c->hm[i].n == 0)
		return false;
	*mean_ns = c->hm[i].sum_ns / c->hm[i].n;
	*samples = c->hm[i].n;
	return true;
}

uint32_t
tgc_compute_mflops(const struct tgc *c)
{
	return c->cfg.profile.compute_mflops;
}

void
tgc_stats(const struct tgc *c, struct tgc_stats *out)
{
	*out = c->st;
}

const char *
tgc_status_name(unsigned status)
{
	return proto_status_name(status);
}

const char *
tgc_reason_name(unsigned reason)
{
	return proto_reason_name(reason);
}

/* Chunk i through the pacer; the test impairment may drop it after the "link". */
static int
tgc_send_chunk(struct tgc *c, unsigned i, bool resend)
{
	const struct proto_dgram *d = &c->dg[i];
	uint64_t now = tg_now_ns(), wait;

	if (resend)
		d->data[PROTO_OFF_FLAGS + 1] |= PROTO_F_RETRANSMIT;	/* low byte, big endian */
	wait = tgc_pacer_delay(&c->pacer, d->len, now);
	if (wait > 0) {
		tgc_sleep_ns(wait);
		c->st.pace_wait_ns += wait;
		now = tg_now_ns();
	}
	tgc_pacer_take(&c->pacer, d->len, now);
	if (c->cfg.test_drop_chunks > 0 &&
	    (double)(tgc_rand(c) >> 11) * 0x1.0p-53 < c->cfg.test_drop_chunks) {
		c->st.chunks_dropped++;
		return 0;
	}
	c->st.chunks_sent++;
	return tgc_send(c, d->data, d->len);
}

static int
tgc_send_all(struct tgc *c, unsigned n, bool resend, struct tgc_result *res)
{
	for (unsigned i = 0; i < n; i++) {
		int rc = tgc_send_chunk(c, i, resend);

		if (rc < 0)
			return rc;
	}
	if (resend) {
		c->st.chunks_resent += n;
		res->chunks_resent = (uint16_t)(res->chunks_resent + n);
	}
	return 0;
}

/* docs/protocol.md 12.2: the configured timer, else tgc_timer_us(). */
static uint64_t
tgc_timer_ns(const struct tgc *c, const struct proto_catalog_entry *e)
{
	if (c->cfg.request_timeout_ms != 0)
		return (uint64_t)c->cfg.request_timeout_ms * 1000000u;
	return tgc_timer_us(c->cfg.profile.rtt_us, c->gw.nack_gap_ms,
			    c->srv_us ? c->srv_us : e->tail_us) * 1000u;
}

/* The gateway's NACK gap: silence in a TENSOR answer before we NACK (at least 1 ms). */
static uint64_t
tgc_gap_ns(const struct tgc *c)
{
	return (uint64_t)(c->gw.nack_gap_ms ? c->gw.nack_gap_ms : 1) * 1000000u;
}

static void
tgc_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
tgc_take_response(struct tgc *c, const struct tgc_request_opts *o, const struct proto_response *r,
		  struct tgc_result *res)
{
	res->status = r->status;
	res->reason = r->reason;
	res->exit_taken = r->exit_taken;
	res->advice_variant = r->advice_variant;
	res->advice_split = r->advice_split;
	res->ran_variant = r->c.variant_id;
	res->ran_split = r->c.split_id;
	res->degraded = r->c.variant_id != o->variant_id;
	res->advice_differs = r->advice_split != PROTO_NONE &&
			      (r->advice_split != o->split_id || r->advice_variant != o->variant_id);
	res->batch_size = r->batch_size;
	res->queue_us = r->queue_us;
	res->compute_us = r->compute_us;
	res->advice_latency_us = r->advice_latency_us;
	res->top_k = 0;
	if (r->result_kind == PROTO_RES_TOPK)
		for (unsigned i = 0; i < r->top_k && i < TGC_MAX_TOP_K; i++)
			proto_topk_get(r, i, &res->top[res->top_k++]);
	if (r->status == PROTO_ST_OK && r->batch_size > 0) {
		uint32_t s = r->queue_us + r->compute_us;

		c->srv_us = c->srv_us ? c->srv_us - c->srv_us / 8 + s / 8 : s;
	}
	if (r->advice_split != PROTO_NONE || r->advice_flags != 0) {
		unsigned i;

		for (i = 0; i < c->n_advice && c->advice[i].model_id != o->model_id; i++)
			;
		if (i == c->n_advice && c->n_advice < TGC_MAX_ADVICE)
			c->n_advice++;
		if (i < c->n_advice)
			c->advice[i] = (struct tgc_memo){ o->model_id, {
				.variant_id = r->advice_variant, .split_id = r->advice_split,
				.flags = r->advice_flags, .latency_us = r->advice_latency_us } };
	}
}

/* A TENSOR answer being reassembled into the caller's tensor_out. */
struct tgc_rxt {
	struct proto_response first;	/* the first chunk seen: every other must agree */
	bool started;
	uint16_t got;			/* distinct chunks placed */
	uint8_t nacks;			/* NACKs sent since the last whole resend */
	uint64_t nack_at;		/* a NACK is due then; UINT64_MAX: none */
};

static inline bool
tgc_bit(const uint64_t *map, unsigned i)
{
	return (map[i / 64] >> (i % 64)) & 1u;
}

/* Chunk k meets its placed neighbours exactly, chunk 0 starts the tensor and the last ends
 * it: a complete answer tiles the tensor (docs/protocol.md 6.3), no stale byte left. */
static bool
tgc_span_fits(const struct tgc *c, const struct proto_chunk *k)
{
	uint32_t off = k->raw_offset, end = k->raw_offset + k->raw_len;
	unsigned i = k->index;

	if ((i == 0 && off != 0) || (i + 1u == k->count && end != k->t.raw_total))
		return false;
	if (i > 0 && tgc_bit(c->rx_got, i - 1) && c->rx_span[i - 1][1] != off)
		return false;
	if (i + 1u < k->count && tgc_bit(c->rx_got, i + 1) && c->rx_span[i + 1][0] != end)
		return false;
	return true;
}

/*
 * One chunk of a TENSOR answer, placed straight into o->tensor_out.
 * @return 2 placed, 1 placed and the answer is complete, 0 ignored (duplicate, disagrees
 *         with the first chunk, does not tile, does not decompress), -E2BIG (over tensor_cap)
 */
static int
tgc_tensor_chunk(struct tgc *c, struct tgc_rxt *x, const struct proto_response *r,
		 const struct tgc_request_opts *o)
{
	const struct proto_chunk *k = &r->c;

	if (!x->started) {
		if (k->t.raw_total > o->tensor_cap)
			return -E2BIG;
		x->first = *r;
		x->started = true;
		x->got = 0;
		memset(c->rx_got, 0, tgc_bitmap_words(k->count) * sizeof(uint64_t));
	} else if (!proto_response_same_msg(&x->first, r)) {
		c->st.rx_ignored++;
		return 0;
	}
	if (tgc_bit(c->rx_got, k->index))
		return 0;
	if (!tgc_span_fits(c, k) ||
	    proto_chunk_unpack(k, o->tensor_out, k->t.raw_total, NULL) != PROTO_OK) {
		c->st.rx_ignored++;
		return 0;
	}
	c->rx_got[k->index / 64] |= 1ull << (k->index % 64);
	c->rx_span[k->index][0] = k->raw_offset;
	c->rx_span[k->index][1] = k->raw_offset + k->raw_len;
	c->st.resp_chunks++;
	return ++x->got == k->count ? 1 : 2;
}

/* NACK the chunks of the TENSOR answer still missing (the first TGC_NACK_RANGES ranges). */
static int
tgc_send_nack(struct tgc *c, const struct proto_hdr *h, const struct tgc_rxt *x)
{
	uint8_t buf[PROTO_NACK_LEN + PROTO_NACK_RANGE_LEN * TGC_NACK_RANGES];
	struct proto_nack nk;
	int n;

	if (proto_nack_from_bitmap(&nk, c->rx_got, x->first.c.count, TGC_NACK_RANGES) == 0)
		return 0;
	n = proto_encode_nack(buf, sizeof(buf), h, &nk);
	if (n < 0)
		return 0;	/* cannot happen: the ranges come from a bitmap of count bits */
	c->st.resp_nacks++;
	return tgc_send(c, buf, (size_t)n);
}

/* One request being answered: what tgc_request()'s loop and its handlers share. */
struct tgc_req {
	const struct tgc_request_opts *o;
	struct tgc_result *res;
	struct proto_hdr h;		/* its ids (session patched after a re-HELLO) */
	unsigned n;			/* its chunks */
	uint64_t t0;			/* first send */
	uint64_t timer;			/* the request timer's length now (doubles per fire) */
	uint64_t fire_at;		/* when it fires */
	uint64_t give_up_at;		/* the retry budget's end (docs/protocol.md 12.2) */
	uint64_t stop_at;		/* opts.wait_us after the first send; UINT64_MAX none */
	uint64_t quiet_until;		/* ERRORs for the last whole resend ignored until */
	struct tgc_rxt x;		/* a TENSOR answer being reassembled */
};

static int
tgc_req_sock(struct tgc_req *q, int rc, struct tg_err *err)
{
	return tg_err_set(err, rc, "request %u: socket: %s", q->h.request_id, strerror(-rc));
}

/* The request timer fired: resend everything, unless the budget is spent. */
static int
tgc_req_timer(struct tgc *c, struct tgc_req *q, struct tg_err *err)
{
	uint64_t now = tg_now_ns();
	int rc;

	q->x.nacks = 0;
	q->x.nack_at = UINT64_MAX;	/* the whole answer comes again */
	c->st.timeouts++;
	if (q->res->timeouts < UINT8_MAX)
		q->res->timeouts++;
	if (now >= q->give_up_at ||
	    (c->cfg.request_retries != 0 && q->res->timeouts > c->cfg.request_retries))
		return tg_err_set(err, -ETIMEDOUT, "request %u: no answer in its budget of %llu ms "
				  "(%u resends)", q->h.request_id,
				  (unsigned long long)((q->give_up_at - q->t0) / 1000000u),
				  (unsigned)q->res->timeouts - 1u);
	rc = tgc_send_all(c, q->n, true, q->res);
	if (rc < 0)
		return tgc_req_sock(q, rc, err);
	q->timer *= 2;
	now = tg_now_ns();
	/* The last resend still gets a whole first timer for its answer (the budget's margin). */
	q->fire_at = now + q->timer < q->give_up_at ? now + q->timer : q->give_up_at;
	return 0;
}

/* A gap in a TENSOR answer: NACK what is missing, at most TGC_RESP_NACKS per round. */
static int
tgc_req_gap(struct tgc *c, struct tgc_req *q, struct tg_err *err)
{
	int rc;

	if (q->x.nacks++ >= TGC_RESP_NACKS) {
		q->x.nack_at = UINT64_MAX;	/* the request timer takes over */
		return 0;
	}
	rc = tgc_send_nack(c, &q->h, &q->x);
	if (rc < 0)
		return tgc_req_sock(q, rc, err);
	if (q->res->resp_nacks < UINT8_MAX)
		q->res->resp_nacks++;
	q->x.nack_at = tg_now_ns() + tgc_gap_ns(c);
	return 0;
}

/* The timer restarts (progress, a NACK's resends): a whole timer from now at least. */
static void
tgc_req_restart(struct tgc_req *q)
{
	uint64_t now = tg_now_ns();

	if (q->fire_at < now + q->timer)
		q->fire_at = now + q->timer;
	if (q->give_up_at < q->fire_at)
		q->give_up_at = q->fire_at;
}

/* A RESPONSE. @return 1 it ended the request, 0 keep waiting, -errno */
static int
tgc_req_response(struct tgc *c, struct tgc_req *q, const struct proto_response *r,
		 struct tg_err *err)
{
	const struct tgc_request_opts *o = q->o;
	struct tgc_result *res = q->res;
	int rc;

	if (r->status == PROTO_ST_PENDING) {
		/* Held whole, not answered yet (docs/protocol.md 12.2): not a resend, not an
		 * answer. The timer starts over, backed off (doubled: the answer is coming, a
		 * resend is only for its loss), and the budget makes room for one more resend
		 * and its answer. */
		c->st.pendings++;
		if (res->pendings < UINT8_MAX)
			res->pendings++;
		q->timer *= 2;
		q->fire_at = tg_now_ns() + q->timer;
		if (q->give_up_at < q->fire_at + q->timer)
			q->give_up_at = q->fire_at + q->timer;
		return 0;
	}
	if (r->result_kind == PROTO_RES_TENSOR && (o->req_flags & PROTO_RF_WANT_TENSOR)) {
		rc = tgc_tensor_chunk(c, &q->x, r, o);
		if (rc < 0)
			return tg_err_set(err, rc, "request %u: answer of %u bytes over tensor_cap %u",
					  q->h.request_id, r->c.t.raw_total, o->tensor_cap);
		if (rc == 2) {	/* progress: a gap from now, the timer too */
			q->x.nack_at = tg_now_ns() + tgc_gap_ns(c);
			tgc_req_restart(q);
		}
		if (rc != 1)
			return 0;
		res->tensor = q->x.first.c.t;
		res->resp_chunks = q->x.first.c.count;
	} else if (r->c.count != 1) {	/* a tensor result not asked for */
		c->st.rx_ignored++;
		return 0;
	}
	res->total_ns = tg_now_ns() - q->t0;
	c->st.responses++;
	tgc_take_response(c, o, r, res);
	return 1;
}

/* A NACK of our request: resend exactly the listed chunks. */
static int
tgc_req_nack(struct tgc *c, struct tgc_req *q, const struct proto_nack *nk, struct tg_err *err)
{
	unsigned marked;
	int rc;

	c->st.nacks++;
	if (q->res->nacks < UINT8_MAX)
		q->res->nacks++;
	marked = tgc_nack_mark(nk, (uint16_t)q->n, c->resend);
	for (unsigned i = 0; marked > 0 && i < q->n; i++) {
		if (!(c->resend[i / 64] & (1ull << (i % 64))))
			continue;
		c->resend[i / 64] &= ~(1ull << (i % 64));
		marked--;
		rc = tgc_send_chunk(c, i, true);
		if (rc < 0)
			return tgc_req_sock(q, rc, err);
		c->st.chunks_resent++;
		q->res->chunks_resent++;
	}
	/* The answer now needs a gap's worth more: give the resends a timer. */
	tgc_req_restart(q);
	return 0;
}

/*
 * An ERROR about our request. UNKNOWN_SESSION (re-HELLO, following a path challenge) and
 * UNKNOWN_REQUEST: resend everything, within the budget. A chunk's BAD_REQUEST lz4: that
 * chunk was refused alone (corrupted on the way); the gateway NACKs it. Anything else ends
 * the request. @return 0 keep waiting, or -errno (err set): the request ended
 */
static int
tgc_req_error(struct tgc *c, struct tgc_req *q, const struct proto_msg *m, struct tg_err *err)
{
	const struct proto_error *e = &m->u.error;
	int rc;

	/* A chunk of ours refused for its tag was changed on the way (ours are sealed right):
	 * lost like any other, NACKs and the timer resend it. */
	if (e->status == PROTO_ST_UNAUTHENTICATED && e->reason != PROTO_E_REPLAY) {
		c->st.rx_ignored++;
		return 0;
	}
	if (e->status == PROTO_ST_UNKNOWN_SESSION || e->status == PROTO_ST_UNKNOWN_REQUEST) {
		/* One ERROR per chunk of the last send: recover once for them. */
		if (tg_now_ns() < q->quiet_until) {
			c->st.rx_ignored++;
			return 0;
		}
		if (tg_now_ns() >= q->give_up_at)
			return tg_err_set(err, -EPROTO, "request %u: ERROR %s (%s) at the end of "
					  "its budget", q->h.request_id,
					  proto_status_name(e->status), proto_reason_name(e->reason));
		if (q->res->timeouts < UINT8_MAX)
			q->res->timeouts++;
		if (e->status == PROTO_ST_UNKNOWN_SESSION) {
			rc = tgc_session(c, err);
			if (rc < 0)
				return tg_err_prefix(err, "request %u: re-HELLO: ", q->h.request_id);
			q->h.session_id = c->session;
			for (unsigned i = 0; i < q->n; i++)
				tgc_put_be64(c->dg[i].data + PROTO_OFF_SESSION_ID, c->session);
		}
		rc = tgc_send_all(c, q->n, true, q->res);
		if (rc < 0)
			return tgc_req_sock(q, rc, err);
		q->fire_at = tg_now_ns() + q->timer;
		q->quiet_until = tg_now_ns() + q->timer / 2;
		return 0;
	}
	if (m->h.session_id != c->session ||
	    (e->status == PROTO_ST_BAD_REQUEST && e->reason == PROTO_E_LZ4 &&
	     e->chunk_index != 0xFFFF)) {
		c->st.rx_ignored++;
		return 0;
	}
	return tg_err_set(err, -EPROTO, "request %u: ERROR %s (%s)", q->h.request_id,
			  proto_status_name(e->status), proto_reason_name(e->reason));
}

/* One datagram for us. @return 1 the request ended, 0 keep waiting, -errno (err set) */
static int
tgc_req_input(struct tgc *c, struct tgc_req *q, size_t len, struct tg_err *err)
{
	struct proto_msg m;

	if (proto_decode(c->rx, len, &c->rx_lim, &m, NULL) != PROTO_OK ||
	    m.h.request_id != q->h.request_id || m.h.client_id != c->client_id ||
	    (m.h.session_id != c->session && m.h.type != PROTO_T_ERROR)) {
		c->st.rx_ignored++;
		return 0;
	}
	switch (m.h.type) {
	case PROTO_T_RESPONSE:
		return tgc_req_response(c, q, &m.u.resp, err);
	case PROTO_T_NACK:
		return tgc_req_nack(c, q, &m.u.nack, err);
	case PROTO_T_ERROR:
		return tgc_req_error(c, q, &m, err);
	default:
		c->st.rx_ignored++;
		return 0;
	}
}

/* Wait for the request's answer: datagrams, NACK gaps of a TENSOR answer, the timer. */
static int
tgc_wait(struct tgc *c, struct tgc_req *q, struct tg_err *err)
{
	for (;;) {
		uint64_t until = q->x.nack_at < q->fire_at ? q->x.nack_at : q->fire_at;
		ssize_t len;
		int rc;

		if (until > q->stop_at)
			until = q->stop_at;
		len = tgc_recv(c, until);
		if (len < 0)
			return tgc_req_sock(q, (int)len, err);
		if (len == 0 && tg_now_ns() >= q->stop_at)
			return tg_err_set(err, -ETIMEDOUT, "request %u: no answer within its wait of "
					  "%u us", q->h.request_id, q->o->wait_us);
		if (len > 0 && c->cfg.test_drop_rx > 0 &&
		    (double)(tgc_rand(c) >> 11) * 0x1.0p-53 < c->cfg.test_drop_rx) {
			c->st.rx_dropped++;
			continue;
		}
		if (len == 0)
			rc = tg_now_ns() < q->fire_at ? tgc_req_gap(c, q, err)
						      : tgc_req_timer(c, q, err);
		else
			rc = tgc_req_input(c, q, (size_t)len, err);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
}

int
tgc_request(struct tgc *c, const struct tgc_request_opts *o, const struct tg_tensor *t,
	    struct tgc_result *res, struct tg_err *err)
{
	struct tgc_req q = { .o = o, .res = res, .x = { .nack_at = UINT64_MAX },
			     .stop_at = UINT64_MAX };
	const struct proto_catalog_entry *e;
	struct proto_hdr h;
	struct proto_request rq;
	unsigned dtype, n = 0;
	uint64_t t0;
	int rc;

	if (c == NULL || o == NULL || t == NULL || res == NULL)
		return tg_err_set(err, -EINVAL, "tgc_request: c, o, t and out are required");
	memset(res, 0, sizeof(*res));
	res->exit_taken = res->advice_variant = res->advice_split = PROTO_NONE;
	res->ran_variant = res->ran_split = PROTO_NONE;
	dtype = tgc_wire_dtype(o->wire_dtype);
	if (dtype == PROTO_DT_RAW)
		return tg_err_set(err, -EINVAL, "wire dtype %s: not f32, f16, s8 or u8",
				  tg_dtype_name(o->wire_dtype));
	if (o->req_flags & ~(unsigned)PROTO_RF__ALL)
		return tg_err_set(err, -EINVAL, "req_flags 0x%x: unknown flags",
				  (unsigned)o->req_flags);
	if ((o->req_flags & PROTO_RF_WANT_TENSOR) && o->tensor_out == NULL)
		return tg_err_set(err, -EINVAL, "WANT_TENSOR without a tensor_out buffer");
	if (o->top_k > TGC_MAX_TOP_K)
		return tg_err_set(err, -EINVAL, "top_k %u over %u", (unsigned)o->top_k,
				  TGC_MAX_TOP_K);
	e = tgc_catalog_find(c, o->model_id, o->variant_id, o->split_id);
	if (e == NULL)
		return tg_err_set(err, -EINVAL, "model %u variant %u split %u: not in the catalog",
				  (unsigned)o->model_id, (unsigned)o->variant_id,
				  (unsigned)o->split_id);
	if (!(e->dtype_mask & (1u << dtype)))
		return tg_err_set(err, -EINVAL, "model %u split %u: dtype %s not accepted",
				  (unsigned)o->model_id, (unsigned)o->split_id,
				  tg_dtype_name(o->wire_dtype));
	if (e->model_id != PROTO_MODEL_ECHO) {
		bool same = t->ndim == e->ndim;

		for (int d = 0; same && d < t->ndim; d++)
			same = t->dims[d] == (int64_t)e->dims[d];
		if (!same)
			return tg_err_set(err, -EINVAL,
					  "model %u split %u: tensor shape is not the split's",
					  (unsigned)o->model_id, (unsigned)o->split_id);
	}

	memset(&h, 0, sizeof(h));
	h.client_id = c->client_id;
	h.request_id = c->next_req++;
	h.session_id = c->session;
	memset(&rq, 0, sizeof(rq));
	rq.c.model_id = o->model_id;
	rq.c.variant_id = o->variant_id;
	rq.c.split_id = o->split_id;
	rq.top_k = o->top_k;
	rq.flags = o->req_flags;
	rq.deadline_us = o->deadline_us;
	t0 = tg_now_ns();
	rc = tgc_build_request(&h, &rq, t, dtype, c->max_dgram, c->q, c->q_cap, c->out,
			       c->out_cap, c->dg, c->max_dg, &n, err);
	if (rc < 0)
		return tg_err_prefix(err, "model %u split %u: ", (unsigned)o->model_id,
				     (unsigned)o->split_id);
	if (rq.c.t.raw_total > c->gw.max_msg_bytes)
		return tg_err_set(err, -E2BIG, "tensor: %u bytes, the gateway takes %u",
				  rq.c.t.raw_total, c->gw.max_msg_bytes);
	res->request_id = h.request_id;
	res->raw_bytes = rq.c.t.raw_total;
	res->chunks = (uint16_t)n;
	for (unsigned i = 0; i < n; i++)
		res->wire_bytes += c->dg[i].len;
	res->quant_ns = tg_now_ns() - t0;
	memset(c->resend, 0, tgc_bitmap_words(n) * sizeof(uint64_t));
	c->st.requests++;

	q.h = h;
	q.n = n;
	q.t0 = tg_now_ns();
	rc = tgc_send_all(c, n, false, res);
	if (rc < 0)
		return tg_err_set(err, rc, "request %u: socket: %s", h.request_id, strerror(-rc));
	q.timer = tgc_timer_ns(c, e);
	q.fire_at = tg_now_ns() + q.timer;
	q.give_up_at = q.t0 + 1000u * tgc_budget_us(o->deadline_us, c->gw.reasm_timeout_ms,
						    q.timer / 1000u);
	if (o->wait_us != 0)
		q.stop_at = q.t0 + 1000ull * o->wait_us;
	return tgc_wait(c, &q, err);
}
