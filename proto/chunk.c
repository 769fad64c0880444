/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A tensor into datagrams and back. Each chunk is its own LZ4 block (or raw bytes), so the
 * receiver decompresses a chunk the moment it arrives, in any order, straight into place.
 * Sender side (device, bench, gateway's tensor answers) and receiver side (gateway RX lcore,
 * client) alike: no allocation; LZ4 keeps its compression state on the stack.
 */
#include "proto/proto_int.h"

#include <errno.h>
#include <limits.h>
#include <lz4.h>

static unsigned
proto_chunk_hdr_len(enum proto_type type)
{
	return type == PROTO_T_REQUEST ? PROTO_REQUEST_LEN
	       : type == PROTO_T_RESPONSE ? PROTO_RESPONSE_LEN : 0;
}

int
proto_chunk_bound(enum proto_type type, unsigned dtype, size_t raw_total, size_t max_dgram,
		  unsigned *max_chunks, size_t *max_bytes)
{
	unsigned hdr = proto_chunk_hdr_len(type), esize = proto_dtype_size(dtype);
	size_t cap, acap, n;

	if (hdr == 0 || esize == 0 || raw_total > PROTO_MAX_MSG_BYTES)
		return -EINVAL;
	if (max_dgram > PROTO_MAX_DGRAM)
		max_dgram = PROTO_MAX_DGRAM;
	if (max_dgram < hdr + esize)
		return -EINVAL;
	cap = max_dgram - hdr;
	acap = cap - cap % esize;
	/* Every chunk but the last covers more than acap raw bytes (LZ4) or exactly acap (raw),
	 * and no chunk puts more payload on the wire than the raw bytes it covers. */
	n = raw_total == 0 ? 1 : (raw_total + acap - 1) / acap;
	*max_chunks = n > UINT_MAX ? UINT_MAX : (unsigned)n;
	*max_bytes = n * hdr + raw_total;
	return 0;
}

/* liblz4 1.8.2 to 1.9.1 could emit a destSize block that needs one byte more room to
 * decompress than it holds (lz4 issue #859); receivers decompress with exactly raw_len. */
static bool
proto_lz4_destsize_exact(void)
{
	return LZ4_versionNumber() >= 10902;
}

/*
 * Decide one chunk at src (rem raw bytes left): how many raw bytes it covers and whether it
 * is LZ4 (written to dst, at most cap bytes) or raw. Returns the raw bytes covered.
 */
static uint32_t
proto_chunk_pick(const uint8_t *src, size_t rem, unsigned esize, size_t cap, bool lz4,
		 uint8_t *dst, uint32_t *csize)
{
	size_t acap = cap - cap % esize;
	int n, c;

	*csize = 0;
	if (!lz4 || rem == 0)
		return (uint32_t)(rem < acap ? rem : acap);
	if (rem <= acap) {
		/* The last chunk fits raw: LZ4 only if it is strictly smaller. */
		c = LZ4_compress_default((const char *)src, (char *)dst, (int)rem, (int)rem - 1);
		if (c > 0)
			*csize = (uint32_t)c;
		return (uint32_t)rem;
	}
	n = rem > INT_MAX ? INT_MAX : (int)rem;
	c = LZ4_compress_destSize((const char *)src, (char *)dst, &n, (int)cap);
	if (c <= 0 || (size_t)n - (size_t)n % esize <= acap)
		return (uint32_t)acap;	/* LZ4 does not beat a raw datagram here */
	if (n % (int)esize != 0 || !proto_lz4_destsize_exact()) {
		/* Whole elements only, so the receiver can dequantize chunk by chunk. */
		n -= n % (int)esize;
		c = LZ4_compress_default((const char *)src, (char *)dst, n, (int)cap);
		if (c <= 0)
			return (uint32_t)acap;
	}
	*csize = (uint32_t)c;
	return (uint32_t)n;
}

/*
 * The chunker behind proto_request_chunk and proto_response_chunk: c is the message's chunk
 * template inside msg (a request or response), rewritten per chunk and encoded by enc.
 */
static int
proto_chunk_msg(enum proto_type type, const struct proto_hdr *h, void *msg,
		struct proto_chunk *c, const uint8_t *raw, size_t max_dgram, bool lz4,
		uint8_t *out, size_t out_cap, struct proto_dgram *dg, unsigned max_dg,
		unsigned *n_dg)
{
	unsigned hdr = proto_chunk_hdr_len(type), esize = proto_dtype_size(c->t.dtype);
	unsigned bound, n = 0;
	uint32_t off = 0, total = c->t.raw_total;
	size_t used = 0, cap, need, bytes;
	struct proto_hdr hc = *h;
	bool crc = (h->flags & PROTO_F_CRC) != 0;
	int rc;

	/* The count is patched once every chunk is made: the CRC goes on after that. */
	hc.flags &= (uint16_t)~PROTO_F_CRC;
	h = &hc;

	rc = proto_chunk_bound(type, c->t.dtype, total, max_dgram, &bound, &bytes);
	if (rc < 0)
		return rc;
	if (max_dgram > PROTO_MAX_DGRAM)
		max_dgram = PROTO_MAX_DGRAM;
	cap = max_dgram - hdr;
	do {
		size_t rem = total - off;
		uint8_t *dst = out + used + hdr;
		uint32_t csize, take;

		if (n == max_dg || n == PROTO_MAX_CHUNKS)
			return -E2BIG;
		/* Room for this chunk whatever it turns out to be: raw rem, or a full datagram. */
		need = hdr + (rem <= cap - cap % esize ? rem : cap);
		if (out_cap - used < need)
			return -ENOSPC;
		take = proto_chunk_pick(raw + off, rem, esize, cap, lz4, dst, &csize);
		c->index = (uint16_t)n;
		/* A provisional count the decoder accepts (>= the final one); patched below. */
		c->count = (uint16_t)(bound < PROTO_MAX_CHUNKS ? bound : PROTO_MAX_CHUNKS);
		c->raw_offset = off;
		c->raw_len = take;
		c->lz4 = csize != 0;
		c->payload = csize != 0 ? dst : raw + off;
		c->payload_len = csize != 0 ? csize : take;
		rc = type == PROTO_T_REQUEST
			     ? proto_encode_request(out + used, out_cap - used, h, msg)
			     : proto_encode_response(out + used, out_cap - used, h, msg);
		if (rc < 0)
			return rc;
		dg[n].data = out + used;
		dg[n].len = (uint32_t)rc;
		used += (size_t)rc;
		off += take;
		n++;
	} while (off < total);
	for (unsigned i = 0; i < n; i++) {
		proto_st16(dg[i].data + PROTO_OFF_CHUNK_COUNT, (uint16_t)n);
		if (crc)
			(void)proto_seal_crc(dg[i].data, dg[i].len);
	}
	*n_dg = n;
	return 0;
}

int
proto_request_chunk(const struct proto_hdr *h, const struct proto_request *m, const void *raw,
		    size_t max_dgram, bool lz4, uint8_t *out, size_t out_cap,
		    struct proto_dgram *dg, unsigned max_dg, unsigned *n_dg)
{
	struct proto_request r = *m;

	return proto_chunk_msg(PROTO_T_REQUEST, h, &r, &r.c, raw, max_dgram, lz4, out, out_cap,
			       dg, max_dg, n_dg);
}

int
proto_response_chunk(const struct proto_hdr *h, const struct proto_response *m,
		     const void *raw, size_t max_dgram, bool lz4, uint8_t *out, size_t out_cap,
		     struct proto_dgram *dg, unsigned max_dg, unsigned *n_dg)
{
	struct proto_response r = *m;

	return proto_chunk_msg(PROTO_T_RESPONSE, h, &r, &r.c, raw, max_dgram, lz4, out,
			       out_cap, dg, max_dg, n_dg);
}

enum proto_reason
proto_chunk_unpack(const struct proto_chunk *c, void *dst, size_t dst_len,
		   struct proto_stats *st)
{
	enum proto_reason r = PROTO_OK;
	uint8_t none;
	uint8_t *to;
	int n;

	if (c->raw_offset > dst_len || c->raw_len > dst_len - c->raw_offset) {
		r = PROTO_E_CHUNK_RANGE;
		goto out;
	}
	/* An empty chunk still has a valid address to hand LZ4 (dst may be NULL then). */
	to = c->raw_len != 0 ? (uint8_t *)dst + c->raw_offset : &none;
	if (!c->lz4) {
		if (c->payload_len != c->raw_len)
			r = PROTO_E_RAW_LEN;
		else if (c->raw_len != 0)
			memcpy(to, c->payload, c->raw_len);
		goto out;
	}
	if (c->payload_len > INT_MAX || c->raw_len > INT_MAX) {
		r = PROTO_E_LZ4;
		goto out;
	}
	/* Bounded to raw_len: a block that would grow past it fails; one that ends short of it
	 * is refused too, or stale bytes of the slot would pass for data. */
	n = LZ4_decompress_safe((const char *)c->payload, (char *)to, (int)c->payload_len,
				(int)c->raw_len);
	if (n < 0 || (uint32_t)n != c->raw_len)
		r = PROTO_E_LZ4;
out:
	if (r != PROTO_OK && st != NULL)
		st->reject[r]++;
	return r;
}
