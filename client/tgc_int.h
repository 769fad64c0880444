/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client's internal pieces that need no network, shared by the client's .c files and its
 * unit tests (tests/unit/test_client_*.c) only: building a request's datagrams. (The pacer,
 * NACK bookkeeping and the request timer are in client/tgc.h: tailgate-bench uses them.)
 */
#ifndef TG_CLIENT_TGC_INT_H
#define TG_CLIENT_TGC_INT_H

#include "client/tgc.h"
#include "proto/proto.h"
#include "util/util.h"

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
