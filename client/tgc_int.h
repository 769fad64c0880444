/*
 * The client's internal pieces that need no network, shared by the client's .c files and its
 * unit tests (tests/unit/test_client_*.c) only: the token-bucket pacer, NACK bookkeeping and
 * building a request's datagrams.
 */
#ifndef TG_CLIENT_TGC_INT_H
#define TG_CLIENT_TGC_INT_H

#include "client/tgc.h"

/*
 * Token bucket in bytes: refilled at rate_bps / 8 bytes per second, holding at most burst
 * bytes. A datagram of n bytes may leave when the bucket holds n (or, for n > burst, when
 * it is full; the debt is then carried), and takes n tokens. rate 0: unpaced.
 */
struct tgc_pacer {
	uint64_t rate_bps;		/* bits per second; 0 = unpaced */
	double burst;			/* bucket depth, bytes */
	double tokens;			/* current fill, bytes; may go negative (debt) */
	uint64_t last_ns;		/* time of the last refill */
};

/** A pacer at kbps (0 unpaced), starting full, with burst bytes of depth (>= 1 datagram). */
void tgc_pacer_init(struct tgc_pacer *p, uint32_t kbps, uint32_t burst, uint64_t now_ns);
/** Nanoseconds to wait from now_ns before n bytes may be sent; 0 = now. */
uint64_t tgc_pacer_delay(struct tgc_pacer *p, uint32_t n, uint64_t now_ns);
/** Take n bytes' tokens at now_ns (call when sending). */
void tgc_pacer_take(struct tgc_pacer *p, uint32_t n, uint64_t now_ns);

/**
 * Mark in resend (bit i of word i / 64) the chunks a NACK lists for a message of count
 * chunks. A NACK about another chunk count (not this message) or with ranges past count is
 * ignored entirely.
 * @return chunks newly marked (0 for an ignored NACK)
 */
unsigned tgc_nack_mark(const struct proto_nack *n, uint16_t count, uint64_t *resend);

/** Words of a bitmap for count chunks. */
static inline size_t
tgc_bitmap_words(unsigned count)
{
	return (count + 63u) / 64u;
}

/** proto dtype of a wire dtype; 0 (RAW) when it cannot be sent. */
unsigned tgc_wire_dtype(enum tg_dtype dt);

/**
 * Quantize t (f32, numel elements) to dtype into q (numel * size bytes, the caller's), and
 * chunk it as REQUEST datagrams into out, dg[] pointing at each (all the caller's).
 * h: ids and session; rq: model, variant, split, top_k, flags, deadline (tensor and chunk
 * fields are set here).
 * @return 0 with *n_dg set, -EINVAL, -E2BIG, -ENOSPC (as proto_request_chunk)
 */
int tgc_build_request(const struct proto_hdr *h, struct proto_request *rq,
		      const struct tg_tensor *t, unsigned dtype, size_t max_dgram, uint8_t *q,
		      size_t q_cap, uint8_t *out, size_t out_cap, struct proto_dgram *dg,
		      unsigned max_dg, unsigned *n_dg, struct tg_err *err);

#endif
