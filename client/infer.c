/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Progressive inference on the device: the head's own exits answer when confident, the
 * gateway otherwise, and when the gateway cannot answer in time the best exit the head
 * computed answers, marked as such (tgc_result.source).
 */
#include "client/tgc.h"
#include "proto/proto.h"
#include "util/util.h"

#include <errno.h>
#include <string.h>

/* A result answered on the device from loc (exit or best). */
static void
tgc_local_result(struct tgc_result *r, const struct tgc_local *loc, uint8_t exit,
		 enum tgc_source src)
{
	r->status = PROTO_ST_OK;
	r->reason = PROTO_OK;
	r->exit_taken = exit;
	r->source = (uint8_t)src;
	r->device_conf = loc->conf;
	r->ran_variant = r->ran_split = PROTO_NONE;	/* no gateway tail answered */
	r->degraded = false;
	r->top_k = loc->top_k;
	memcpy(r->top, loc->top, loc->top_k * sizeof(loc->top[0]));
}

/* The gateway's refusals a device exit may stand in for: load, not a wrong request. */
static bool
tgc_fallback_status(uint8_t st)
{
	return st == PROTO_ST_OVERLOADED || st == PROTO_ST_DEADLINE_INFEASIBLE ||
	       st == PROTO_ST_INTERNAL;
}

int
tgc_infer(struct tgc *c, struct tgc_head *h, const struct tgc_request_opts *o,
	  const float *input, size_t numel, struct tgc_result *out, struct tg_err *err)
{
	struct tgc_request_opts ro;
	struct tgc_local loc;
	struct tg_tensor t;
	uint64_t t0 = tg_now_ns();
	bool early, can_fall;
	int rc;

	if (c == NULL || h == NULL || o == NULL || out == NULL)
		return tg_err_set(err, -EINVAL, "tgc_infer: c, h, o and out are required");
	memset(out, 0, sizeof(*out));
	out->exit_taken = out->advice_variant = out->advice_split = out->gw_status = PROTO_NONE;
	out->ran_variant = out->ran_split = PROTO_NONE;
	rc = tgc_run_head(h, o->split_id, input, numel, &t, err);
	if (rc == 0)
		rc = tgc_head_exits(h, o->split_id, o->top_k, &loc, err);
	if (rc < 0)
		return rc;
	/* The device's own head time, for the advice (measurements win over the declared
	 * rate). Not this call's business when it fails: a HELLO that did not go through is
	 * tried again at the next report, and the request below says what is wrong. */
	if (tgc_head_last_ns(h) > 0)
		(void)tgc_head_report(c, o->model_id, o->variant_id, o->split_id,
				      tgc_head_last_ns(h), NULL);
	early = !(o->req_flags & PROTO_RF_NO_EARLY_EXIT) && !(o->req_flags & PROTO_RF_WANT_TENSOR);
	if (early && loc.exit != PROTO_NONE) {
		tgc_local_result(out, &loc, loc.exit, TGC_SRC_DEVICE);
		out->total_ns = tg_now_ns() - t0;
		return 0;
	}
	can_fall = early && loc.best != PROTO_NONE;
	ro = *o;
	if (can_fall && o->deadline_us != 0 && (o->wait_us == 0 || o->wait_us > o->deadline_us))
		ro.wait_us = o->deadline_us;
	rc = tgc_request(c, &ro, &t, out, err);
	if (can_fall && (rc == -ETIMEDOUT || (rc == 0 && tgc_fallback_status(out->status)))) {
		out->gw_status = rc == 0 ? out->status : PROTO_NONE;
		tgc_local_result(out, &loc, loc.best, TGC_SRC_DEVICE_FALLBACK);
		out->total_ns = tg_now_ns() - t0;
		return 0;
	}
	if (rc == 0)
		out->source = TGC_SRC_GATEWAY;
	return rc;
}
