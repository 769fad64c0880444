/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Configuration files: "key = value" lines, each key described once in a table that gives
 * its parser, bounds and where it lands, so the parser, the errors and the README agree.
 */
#include "gateway/gateway.h"
#include "scheduler/sched.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum gw_kind { GW_U32, GW_BOOL, GW_STR, GW_IPV4, GW_SPLITS, GW_EXIT, GW_DTYPE, GW_AUTH,
	       GW_INTEGRITY, GW_ACCURACY, GW_VARIANT, GW_TAILMODE, GW_BATCHWAIT };

struct gw_key {
	const char *key;
	enum gw_kind kind;
	size_t off;			/* in the struct being parsed */
	size_t size;			/* GW_U32: 1, 2 or 4 bytes; GW_STR: buffer size */
	uint64_t lo, hi;		/* GW_U32 bounds */
	const char *help;
};

#define U32(k, st, f, lo, hi, h) { k, GW_U32, offsetof(st, f), sizeof(((st *)0)->f), lo, hi, h }
#define STR(k, st, f, h) { k, GW_STR, offsetof(st, f), sizeof(((st *)0)->f), 0, 0, h }
#define BOOL(k, st, f, h) { k, GW_BOOL, offsetof(st, f), sizeof(bool), 0, 1, h }

static const struct gw_key gw_keys[] = {
	{ "address", GW_IPV4, offsetof(struct gw_config, dp.ipv4), 4, 0, 0,
	  "the gateway's IPv4 address on the port (required)" },
	U32("udp_port", struct gw_config, dp.udp_port, 1, 65535, "UDP port of the protocol"),
	U32("rx_queues", struct gw_config, dp.n_queues, 0, 64, "RX queues/lcores; 0: auto"),
	U32("rx_desc", struct gw_config, dp.rx_desc, 64, 32768, "RX ring size per queue"),
	U32("tx_desc", struct gw_config, dp.tx_desc, 64, 32768, "TX ring size per queue"),
	U32("max_msg_bytes", struct gw_config, dp.limits.max_msg_bytes, 1, 1u << 30,
	    "largest raw tensor accepted"),
	U32("max_chunks", struct gw_config, dp.limits.max_chunks, 1, 65535, "chunks per message"),
	U32("max_inflight_client", struct gw_config, dp.limits.max_inflight_client, 1, 1u << 20,
	    "messages one client may hold"),
	U32("max_inflight_messages", struct gw_config, dp.limits.max_inflight_total, 1, 1u << 20,
	    "messages all clients may hold (the slot pool)"),
	U32("max_open_source", struct gw_config, dp.limits.max_open_source, 1, 1u << 20,
	    "unfinished messages one source IP may hold (per RX lcore)"),
	U32("max_sessions", struct gw_config, dp.limits.max_sessions, 1, 1u << 24,
	    "sessions held at once (the oldest unverified one is evicted first)"),
	U32("max_sessions_source", struct gw_config, dp.limits.max_sessions_source, 1, 1u << 24,
	    "sessions one source IP may hold (per RX lcore)"),
	U32("session_ttl_ms", struct gw_config, dp.session_ttl_ms, 1000, 86400000,
	    "an idle session is forgotten after this"),
	U32("gap_timeout_us", struct gw_config, dp.gap_timeout_us, 100, 60000000,
	    "silence before a NACK"),
	U32("msg_timeout_us", struct gw_config, dp.msg_timeout_us, 1000, 600000000,
	    "an unfinished message is freed after this"),
	U32("idle_sleep_max_us", struct gw_config, dp.idle_sleep_max_us, 1, 100000,
	    "longest idle back-off sleep of an RX lcore"),
	U32("idle_deep_sleep_us", struct gw_config, dp.idle_deep_sleep_us, 0, 100000,
	    "sleep of an RX lcore idle for 20 ms with no message open; 0: never"),
	STR("models", struct gw_config, models_dir, "the model repository"),
	U32("workers", struct gw_config, workers, 1, 16, "scheduler worker threads"),
	U32("engine_threads", struct gw_config, engine_threads, 0, 1024,
	    "oneDNN threads per worker; 0: all cores"),
	U32("queue_cap", struct gw_config, queue_cap, 1, 1u << 20, "requests waiting per queue"),
	U32("max_inflight", struct gw_config, max_inflight, 1, 1u << 20,
	    "requests inside the scheduler"),
	{ "whole_tail", GW_TAILMODE, offsetof(struct gw_config, whole_tail), sizeof(unsigned), 0, 0,
	  "whole tails per batch (true), segments (false), or per model the cheaper (auto)" },
	BOOL("degrade", struct gw_config, degrade,
	     "run a request a lighter variant meeting its floor instead of shedding it"),
	BOOL("advice", struct gw_config, advice, "advise devices (docs/protocol.md 7.3); no: never"),
	BOOL("rx_busy_sleep", struct gw_config, rx_busy_sleep,
	     "RX lcores sleep while every worker computes a batch (up to idle_deep_sleep_us)"),
	STR("access_log", struct gw_config, access_log, "JSON-lines access log; empty: none"),
	STR("event_log", struct gw_config, event_log, "event log; empty: stderr"),
	U32("log_ring", struct gw_config, log_ring, 16, 1u << 22, "log records per lcore ring"),
	U32("fsync_ms", struct gw_config, fsync_ms, 10, 3600000, "fdatasync period of the logs"),
	STR("metrics", struct gw_config, metrics_addr, "ADDR:PORT of /metrics; empty: off"),
	{ "auth", GW_AUTH, offsetof(struct gw_config, dp.auth), 1, 0, 0,
	  "device MACs: off, optional (checked when present) or required" },
	STR("auth_keys", struct gw_config, auth_keys, "key file: one 'CLIENT_ID HEX64' per device"),
	{ "integrity", GW_INTEGRITY, offsetof(struct gw_config, dp.integrity_required), 1, 0, 0,
	  "optional: datagrams without CRC or MAC served; required: refused" },
};

static const struct gw_key gw_model_keys[] = {
	U32("id", struct gw_model_conf, id, 0, 0xFFFE, "model id on the wire"),
	{ "splits", GW_SPLITS, 0, 0, 0, 0, "served splits, rows or tensor names, comma separated" },
	{ "exit", GW_EXIT, 0, 0, 0, 0, "NAME:CONF: answer at exit NAME at softmax >= CONF" },
	U32("max_batch", struct gw_model_conf, max_batch, 1, 4096, "largest batch"),
	U32("max_delay_us", struct gw_model_conf, max_delay_us, 0, 10000000,
	    "longest wait for a batch to fill"),
	{ "batch_wait", GW_BATCHWAIT, offsetof(struct gw_model_conf, batch_wait), sizeof(unsigned),
	  0, 0, "adaptive: wait for a batch only while waiting pays; fixed: up to max_delay_us" },
	U32("deadline_ms", struct gw_model_conf, deadline_ms, 1, 3600000,
	    "deadline of requests that carry none"),
	{ "dtype", GW_DTYPE, offsetof(struct gw_model_conf, precision), 0, 0, 0,
	  "tail arithmetic: f32 or int8 (needs model.calib)" },
	U32("top_k", struct gw_model_conf, top_k, 1, 16, "classes in a response by default"),
	U32("accuracy_bp", struct gw_model_conf, accuracy_bp, 0, 10000,
	    "top-1 accuracy in 1/100 % (catalog, split advice); 0 unknown"),
	{ "accuracy", GW_ACCURACY, 0, 0, 0, 0,
	  "OUT:FP32[:INT8]: top-1 % of exit OUT from the card, repeatable" },
	U32("accuracy_exits_bp", struct gw_model_conf, accuracy_exits_bp, 0, 10000,
	    "top-1 with the early exits at their thresholds, 1/100 % (advice); 0 unknown"),
	{ "variant", GW_VARIANT, 0, 0, 0, 0,
	  "ID NAME [drop=B,...] [splits=S,...] [exits=OUT:CONF,...] [accuracy=OUT:FP32[:INT8],...]" },
};

void
gw_config_default(struct gw_config *c, const struct dp_config *dp)
{
	memset(c, 0, sizeof(*c));
	if (dp != NULL)
		c->dp = *dp;
	snprintf(c->models_dir, sizeof(c->models_dir), "models");
	c->workers = 1;
	c->queue_cap = 256;
	c->max_inflight = 1024;
	c->whole_tail = SCHED_MODE_AUTO;	/* README, "Scheduling mode" */
	/* Only devices that declared an accuracy floor are degraded, only to a variant whose
	 * card meets it, and the answer names it: what they said they accept, over a refusal. */
	c->degrade = true;
	c->advice = true;
	/* Measured on 2 shared cores: the RX lcore's wakes preempt oneDNN's threads (README). */
	c->rx_busy_sleep = true;
	c->log_ring = 4096;
	c->fsync_ms = 1000;
}

void
gw_model_conf_default(struct gw_model_conf *mc)
{
	memset(mc, 0, sizeof(*mc));
	mc->id = 0xFFFF;	/* unset: required */
	mc->max_batch = 32;
	mc->max_delay_us = 2000;
	mc->batch_wait = SCHED_WAIT_ADAPTIVE;	/* README, model.conf's batch_wait */
	mc->deadline_ms = 100;
	mc->precision = KERN_PREC_F32;
	mc->top_k = 5;
}

static int __attribute__((format(printf, 5, 6)))
gw_bad(struct tg_err *err, const char *name, unsigned line, const char *key, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return tg_err_set(err, -EINVAL, "%s:%u: %s%s%s", name, line, key ? key : "",
			  key ? ": " : "", what);
}

static char *
gw_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* "OUT:FP32[:INT8]", percentages with up to two decimals, into a (why set on error). */
static int
gw_acc_parse(const char *v, struct gw_exit_acc *a, char *why, size_t wlen)
{
	char buf[GW_NAME_MAX + 32], *f[3], *rest = buf;
	unsigned n = 0;

	if (strlen(v) >= sizeof(buf))
		return snprintf(why, wlen, "'%.40s...' too long", v), -EINVAL;
	snprintf(buf, sizeof(buf), "%s", v);
	while (n < 3 && (f[n] = strsep(&rest, ":")) != NULL)
		n++;
	if (rest != NULL || n < 2 || f[0][0] == '\0' || strlen(f[0]) >= GW_NAME_MAX)
		return snprintf(why, wlen, "'%.60s' is not OUT:FP32[:INT8]", v), -EINVAL;
	snprintf(a->exit, sizeof(a->exit), "%s", f[0]);
	for (unsigned i = 1; i < n; i++) {
		char *end;
		double pct = strtod(f[i], &end);

		if (f[i][0] == '\0' || *end != '\0' || !(pct >= 0 && pct <= 100))
			return snprintf(why, wlen, "'%.60s' is not a percentage in 0..100", f[i]),
			       -EINVAL;
		*(i == 1 ? &a->fp32_bp : &a->int8_bp) = (uint16_t)lround(pct * 100);
	}
	return 0;
}

/* "OUT:CONF" with CONF in [0, 1]. */
static int
gw_exit_parse(const char *v, char *out, float *conf, char *why, size_t wlen)
{
	const char *colon = strrchr(v, ':');
	char *end;

	if (colon == NULL || colon == v || (size_t)(colon - v) >= GW_NAME_MAX)
		return snprintf(why, wlen, "'%.60s' is not NAME:CONF", v), -EINVAL;
	*conf = strtof(colon + 1, &end);
	if (colon[1] == '\0' || *end != '\0' || !(*conf >= 0.f && *conf <= 1.f))
		return snprintf(why, wlen, "confidence '%.60s' is not in [0, 1]", colon + 1), -EINVAL;
	snprintf(out, GW_NAME_MAX, "%.*s", (int)(colon - v), v);
	return 0;
}

/* A comma list of at most max names, each shorter than GW_NAME_MAX, into names. */
static int
gw_names_parse(const char *v, char (*names)[GW_NAME_MAX], unsigned max, unsigned *n, char *why,
	       size_t wlen)
{
	char buf[4096], *rest = buf, *tok;

	if (strlen(v) >= sizeof(buf))
		return snprintf(why, wlen, "too long"), -EINVAL;
	snprintf(buf, sizeof(buf), "%s", v);
	*n = 0;
	while ((tok = strsep(&rest, ",")) != NULL) {	/* strsep keeps empty entries */
		tok = gw_trim(tok);
		if (*tok == '\0')
			return snprintf(why, wlen, "empty entry"), -EINVAL;
		if (*n == max)
			return snprintf(why, wlen, "more than %u entries", max), -EINVAL;
		if (strlen(tok) >= GW_NAME_MAX)
			return snprintf(why, wlen, "'%.60s' too long", tok), -EINVAL;
		snprintf(names[(*n)++], GW_NAME_MAX, "%s", tok);
	}
	return 0;
}

/* One key=value of a variant line. */
static int
gw_variant_opt(struct gw_variant_conf *vc, const char *key, const char *val, char *why, size_t wlen)
{
	char items[GW_MAX_EXITS / 4][GW_NAME_MAX];
	unsigned n, max = GW_MAX_EXITS / 4;

	if (strcmp(key, "drop") == 0)
		return gw_names_parse(val, vc->drop, GW_MAX_DROP, &vc->n_drop, why, wlen);
	if (strcmp(key, "splits") == 0)
		return gw_names_parse(val, vc->splits, GW_MAX_SPLITS / 4, &vc->n_splits, why, wlen);
	if (strcmp(key, "exits") != 0 && strcmp(key, "accuracy") != 0)
		return snprintf(why, wlen, "unknown option '%.60s' (drop, splits, exits, accuracy)",
				key), -EINVAL;
	if (gw_names_parse(val, items, max, &n, why, wlen) < 0)
		return -EINVAL;
	for (unsigned i = 0; i < n; i++) {
		int rc = key[0] == 'e' ? gw_exit_parse(items[i], vc->exit_name[i], &vc->exit_conf[i],
						       why, wlen)
				       : gw_acc_parse(items[i], &vc->acc[i], why, wlen);

		if (rc < 0)
			return rc;
	}
	*(key[0] == 'e' ? &vc->n_exits : &vc->n_acc) = n;
	return 0;
}

/* "ID NAME [key=value ...]": checked here for syntax and uniqueness, resolved at load. */
static int
gw_variant_parse(struct gw_model_conf *mc, const char *v, char *why, size_t wlen)
{
	struct gw_variant_conf *vc;
	char buf[8192], *rest = buf, *tok, *end;
	unsigned long id;
	unsigned n = 0;

	if (mc->n_variants == GW_MAX_VARIANTS)
		return snprintf(why, wlen, "more than %d variants", GW_MAX_VARIANTS), -EINVAL;
	vc = &mc->variants[mc->n_variants];
	memset(vc, 0, sizeof(*vc));
	snprintf(buf, sizeof(buf), "%s", v);
	while ((tok = strsep(&rest, " \t")) != NULL) {
		char *eq;

		if (*tok == '\0')
			continue;
		if (n == 0) {
			id = strtoul(tok, &end, 10);
			if (tok[0] < '0' || tok[0] > '9' || *end != '\0' || id < 1 ||
			    id > GW_VARIANT_ID_MAX)
				return snprintf(why, wlen, "id '%.60s' is not a whole number in 1..%d",
						tok, GW_VARIANT_ID_MAX), -EINVAL;
			vc->id = (uint8_t)id;
		} else if (n == 1) {
			if (strlen(tok) >= GW_NAME_MAX || strspn(tok, "abcdefghijklmnopqrstuvwxyz"
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != strlen(tok) ||
			    tok[0] == '.' || strchr(tok, '=') != NULL)
				return snprintf(why, wlen, "name '%.60s': letters, digits, '_', '.', '-', "
						"at most %d, not starting with '.'", tok,
						GW_NAME_MAX - 1), -EINVAL;
			snprintf(vc->name, sizeof(vc->name), "%s", tok);
		} else {
			if ((eq = strchr(tok, '=')) == NULL)
				return snprintf(why, wlen, "'%.60s' is not key=value", tok), -EINVAL;
			*eq = '\0';
			if (gw_variant_opt(vc, tok, eq + 1, why, wlen) < 0)
				return -EINVAL;
		}
		n++;
	}
	if (n < 2)
		return snprintf(why, wlen, "expected 'ID NAME [drop=...] [splits=...] [exits=...] "
				"[accuracy=...]'"), -EINVAL;
	for (unsigned i = 0; i < mc->n_variants; i++)
		if (mc->variants[i].id == vc->id || strcmp(mc->variants[i].name, vc->name) == 0)
			return snprintf(why, wlen, "variant %u '%.60s' given twice (id or name)", vc->id,
					vc->name), -EINVAL;
	mc->n_variants++;
	return 0;
}

/* batch_wait: enum sched_batch_wait into *dst. */
static int
gw_set_batch_wait(const struct gw_key *k, unsigned *dst, const char *v, const char *name,
		  unsigned line, struct tg_err *err)
{
	if (strcmp(v, "adaptive") == 0)
		*dst = SCHED_WAIT_ADAPTIVE;
	else if (strcmp(v, "fixed") == 0)
		*dst = SCHED_WAIT_FIXED;
	else
		return gw_bad(err, name, line, k->key, "'%s': adaptive or fixed", v);
	return 0;
}

static int
gw_set(const struct gw_key *k, void *base, const char *v, const char *name, unsigned line,
       struct tg_err *err)
{
	uint8_t *dst = (uint8_t *)base + k->off;

	switch (k->kind) {
	case GW_U32: {
		char *end;
		unsigned long long x;

		errno = 0;
		x = strtoull(v, &end, 10);
		if (v[0] == '\0' || v[0] == '-' || *end != '\0' || errno || x < k->lo || x > k->hi)
			return gw_bad(err, name, line, k->key, "'%s' is not a whole number in %llu..%llu",
				      v, (unsigned long long)k->lo, (unsigned long long)k->hi);
		if (k->size == 1)
			*(uint8_t *)dst = (uint8_t)x;
		else if (k->size == 2)
			*(uint16_t *)dst = (uint16_t)x;
		else
			*(uint32_t *)dst = (uint32_t)x;
		return 0;
	}
	case GW_BOOL:
		if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0)
			*(bool *)dst = true;
		else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0)
			*(bool *)dst = false;
		else
			return gw_bad(err, name, line, k->key, "'%s' is not true or false", v);
		return 0;
	case GW_STR:
		if (strlen(v) >= k->size)
			return gw_bad(err, name, line, k->key, "longer than %zu characters", k->size - 1);
		memcpy(dst, v, strlen(v) + 1);
		return 0;
	case GW_IPV4: {
		struct in_addr a;

		if (inet_pton(AF_INET, v, &a) != 1)
			return gw_bad(err, name, line, k->key, "'%s' is not an IPv4 address", v);
		*(uint32_t *)dst = ntohl(a.s_addr);
		return 0;
	}
	case GW_DTYPE:
		if (strcmp(v, "f32") == 0 || strcmp(v, "fp32") == 0)
			*(enum kern_precision *)dst = KERN_PREC_F32;
		else if (strcmp(v, "int8") == 0)
			*(enum kern_precision *)dst = KERN_PREC_INT8;
		else
			return gw_bad(err, name, line, k->key, "'%s': f32 or int8", v);
		return 0;
	case GW_AUTH:
		if (strcmp(v, "off") == 0)
			*dst = DP_AUTH_OFF;
		else if (strcmp(v, "optional") == 0)
			*dst = DP_AUTH_OPTIONAL;
		else if (strcmp(v, "required") == 0)
			*dst = DP_AUTH_REQUIRED;
		else
			return gw_bad(err, name, line, k->key, "'%s': off, optional or required", v);
		return 0;
	case GW_TAILMODE:
		if (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "1") == 0)
			*(unsigned *)dst = SCHED_MODE_WHOLE;
		else if (strcmp(v, "false") == 0 || strcmp(v, "no") == 0 || strcmp(v, "0") == 0)
			*(unsigned *)dst = SCHED_MODE_SEGMENTS;
		else if (strcmp(v, "auto") == 0)
			*(unsigned *)dst = SCHED_MODE_AUTO;
		else
			return gw_bad(err, name, line, k->key, "'%s': true, false or auto", v);
		return 0;
	case GW_BATCHWAIT:
		return gw_set_batch_wait(k, (unsigned *)dst, v, name, line, err);
	case GW_INTEGRITY:
		if (strcmp(v, "optional") == 0)
			*(bool *)dst = false;
		else if (strcmp(v, "required") == 0)
			*(bool *)dst = true;
		else
			return gw_bad(err, name, line, k->key, "'%s': optional or required", v);
		return 0;
	case GW_SPLITS: {
		struct gw_model_conf *mc = base;
		char buf[4096], *rest = buf, *tok;

		if (strlen(v) >= sizeof(buf))
			return gw_bad(err, name, line, k->key, "too long");
		snprintf(buf, sizeof(buf), "%s", v);
		mc->n_splits = 0;
		while ((tok = strsep(&rest, ",")) != NULL) {	/* strsep keeps empty entries */
			tok = gw_trim(tok);
			if (*tok == '\0')
				return gw_bad(err, name, line, k->key, "empty entry");
			if (mc->n_splits == GW_MAX_SPLITS)
				return gw_bad(err, name, line, k->key, "more than %d splits",
					      GW_MAX_SPLITS);
			if (strlen(tok) >= GW_NAME_MAX)
				return gw_bad(err, name, line, k->key, "'%s' too long", tok);
			snprintf(mc->splits[mc->n_splits++], GW_NAME_MAX, "%s", tok);
		}
		if (mc->n_splits == 0)
			return gw_bad(err, name, line, k->key, "no splits listed");
		return 0;
	}
	case GW_ACCURACY: {
		struct gw_model_conf *mc = base;
		char why[200];

		if (mc->n_acc == GW_MAX_EXITS)
			return gw_bad(err, name, line, k->key, "more than %d exits", GW_MAX_EXITS);
		if (gw_acc_parse(v, &mc->acc[mc->n_acc], why, sizeof(why)) < 0)
			return gw_bad(err, name, line, k->key, "%s", why);
		for (unsigned i = 0; i < mc->n_acc; i++)
			if (strcmp(mc->acc[i].exit, mc->acc[mc->n_acc].exit) == 0)
				return gw_bad(err, name, line, k->key, "exit '%s' given twice",
					      mc->acc[i].exit);
		mc->n_acc++;
		return 0;
	}
	case GW_VARIANT: {
		char why[200];

		if (gw_variant_parse(base, v, why, sizeof(why)) < 0)
			return gw_bad(err, name, line, k->key, "%s", why);
		return 0;
	}
	case GW_EXIT: {
		struct gw_model_conf *mc = base;
		const char *colon = strrchr(v, ':');
		char *end;
		float conf;

		if (colon == NULL || colon == v || (size_t)(colon - v) >= GW_NAME_MAX)
			return gw_bad(err, name, line, k->key, "'%s' is not NAME:CONF", v);
		conf = strtof(colon + 1, &end);
		if (colon[1] == '\0' || *end != '\0' || !(conf >= 0.f && conf <= 1.f))
			return gw_bad(err, name, line, k->key, "confidence '%s' is not in [0, 1]",
				      colon + 1);
		if (mc->n_exits == GW_MAX_EXITS)
			return gw_bad(err, name, line, k->key, "more than %d exits", GW_MAX_EXITS);
		for (unsigned i = 0; i < mc->n_exits; i++)
			if (strncmp(mc->exit_name[i], v, (size_t)(colon - v)) == 0 &&
			    mc->exit_name[i][colon - v] == '\0')
				return gw_bad(err, name, line, k->key, "exit '%.*s' given twice",
					      (int)(colon - v), v);
		snprintf(mc->exit_name[mc->n_exits], GW_NAME_MAX, "%.*s", (int)(colon - v), v);
		mc->exit_conf[mc->n_exits++] = conf;
		return 0;
	}
	}
	return gw_bad(err, name, line, k->key, "internal: unknown kind");
}

static int
gw_parse(const char *text, size_t len, const char *name, const struct gw_key *keys,
	 size_t n_keys, void *base, struct tg_err *err)
{
	uint8_t seen[64] = { 0 };
	unsigned line = 0;
	size_t pos = 0;

	if (len > (1u << 20))
		return tg_err_set(err, -EINVAL, "%s: larger than 1 MiB", name);
	while (pos < len) {
		char buf[8192], *s, *eq, *key, *val;
		size_t end = pos;
		const struct gw_key *k = NULL;
		size_t ki;

		while (end < len && text[end] != '\n')
			end++;
		line++;
		if (end - pos >= sizeof(buf))
			return gw_bad(err, name, line, NULL, "line longer than %zu bytes",
				      sizeof(buf) - 1);
		if (memchr(text + pos, '\0', end - pos) != NULL)
			return gw_bad(err, name, line, NULL, "NUL byte in the line");
		memcpy(buf, text + pos, end - pos);
		buf[end - pos] = '\0';
		pos = end + 1;
		if ((s = strchr(buf, '#')) != NULL)
			*s = '\0';
		s = gw_trim(buf);
		if (*s == '\0')
			continue;
		eq = strchr(s, '=');
		if (eq == NULL)
			return gw_bad(err, name, line, NULL, "expected 'key = value'");
		*eq = '\0';
		key = gw_trim(s);
		val = gw_trim(eq + 1);
		for (ki = 0; ki < n_keys; ki++)
			if (strcmp(keys[ki].key, key) == 0) {
				k = &keys[ki];
				break;
			}
		if (k == NULL)
			return gw_bad(err, name, line, key, "unknown key");
		if (seen[ki] && k->kind != GW_EXIT && k->kind != GW_ACCURACY &&
		    k->kind != GW_VARIANT)
			return gw_bad(err, name, line, key, "given twice");
		seen[ki] = 1;
		if (gw_set(k, base, val, name, line, err) < 0)
			return -EINVAL;
	}
	return 0;
}

int
gw_config_parse(const char *text, size_t len, const char *name, struct gw_config *c,
		struct tg_err *err)
{
	return gw_parse(text, len, name, gw_keys, sizeof(gw_keys) / sizeof(gw_keys[0]), c, err);
}

int
gw_model_conf_parse(const char *text, size_t len, const char *name, struct gw_model_conf *mc,
		    struct tg_err *err)
{
	int rc = gw_parse(text, len, name, gw_model_keys,
			  sizeof(gw_model_keys) / sizeof(gw_model_keys[0]), mc, err);

	if (rc == 0 && mc->id == 0xFFFF)
		return tg_err_set(err, -EINVAL, "%s: id: required (a model id 0..65534)", name);
	return rc;
}

int
gw_config_load(const char *path, struct gw_config *c, struct tg_err *err)
{
	uint8_t *buf;
	size_t len;
	int rc;

	rc = tg_file_read(path, 1u << 20, &buf, &len, err);
	if (rc < 0)
		return rc;
	rc = gw_config_parse((const char *)buf, len, path, c, err);
	free(buf);
	return rc;
}

int
gw_config_validate(const struct gw_config *c, struct tg_err *err)
{
	if (c->dp.ipv4 == 0)
		return tg_err_set(err, -EINVAL, "address: required (the gateway's IPv4 address)");
	if (c->models_dir[0] == '\0')
		return tg_err_set(err, -EINVAL, "models: required (the model repository)");
	if (c->max_inflight < c->queue_cap)
		return tg_err_set(err, -EINVAL, "max_inflight (%u) must be at least queue_cap (%u)",
				  c->max_inflight, c->queue_cap);
	if (c->dp.limits.max_inflight_client > c->dp.limits.max_inflight_total)
		return tg_err_set(err, -EINVAL,
				  "max_inflight_client (%u) exceeds max_inflight_messages (%u)",
				  c->dp.limits.max_inflight_client, c->dp.limits.max_inflight_total);
	if (c->dp.auth != DP_AUTH_OFF && c->auth_keys[0] == '\0')
		return tg_err_set(err, -EINVAL, "auth = %s needs auth_keys (the device key file)",
				  c->dp.auth == DP_AUTH_REQUIRED ? "required" : "optional");
	if (c->dp.auth == DP_AUTH_OFF && c->auth_keys[0] != '\0')
		return tg_err_set(err, -EINVAL, "auth_keys is set but auth = off: set auth to "
				  "optional or required");
	if (c->dp.gap_timeout_us >= c->dp.msg_timeout_us)
		return tg_err_set(err, -EINVAL, "gap_timeout_us (%u) must be below msg_timeout_us (%u)",
				  c->dp.gap_timeout_us, c->dp.msg_timeout_us);
	return 0;
}
