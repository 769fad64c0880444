/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dp_echo: the dataplane with only the built-in echo model, for tests/dataplane_echo.sh and
 * for operators checking a path end to end. Requests for any other model are answered
 * UNKNOWN_MODEL by the consumer thread (the main lcore), through the same response rings a
 * scheduler's workers use; with --worker-echo, echo requests take that path too.
 *
 * Usage: dp_echo EAL-ARGS -- --ip A.B.C.D [--port N] [--max-msg BYTES] [--max-chunks N]
 *            [--inflight-client N] [--inflight-total N] [--gap-us N] [--timeout-us N]
 *            [--rx-desc N] [--worker-echo] [--ready FILE] [--duration S]
 * Runs until SIGINT/SIGTERM (or --duration seconds), then prints every counter as
 * "name value" lines and exits 0. EAL needs a worker lcore per port queue (e.g. -l 0-1).
 *
 * Run without arguments (scripts/run_tests.sh runs every program built from tests/) it only
 * says what it is for: it is a helper, not a test.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include <rte_cycles.h>

#include "dataplane/dataplane.h"
#include "proto/proto.h"
#include "util/util.h"

static volatile sig_atomic_t stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
usage(void)
{
	fprintf(stderr, "usage: dp_echo EAL-ARGS -- --ip A.B.C.D [--port N] [--max-msg BYTES] "
		"[--max-chunks N] [--inflight-client N] [--inflight-total N] [--gap-us N] "
		"[--timeout-us N] [--rx-desc N] [--worker-echo] [--ready FILE] [--duration S]\n");
}

static int
parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int
parse_args(int argc, char **argv, struct dp_config *cfg, bool *worker_echo,
	   const char **ready, uint32_t *duration)
{
	struct in_addr a;
	uint32_t v;

	for (int i = 0; i < argc; i++) {
		const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(o, "--worker-echo") == 0) {
			*worker_echo = true;
			continue;
		}
		if (val == NULL)
			return -1;
		i++;
		if (strcmp(o, "--ip") == 0) {
			if (inet_pton(AF_INET, val, &a) != 1)
				return -1;
			cfg->ipv4 = ntohl(a.s_addr);
		} else if (strcmp(o, "--ready") == 0) {
			*ready = val;
		} else if (parse_u32(val, UINT32_MAX, &v) != 0) {
			return -1;
		} else if (strcmp(o, "--port") == 0 && v > 0 && v <= UINT16_MAX) {
			cfg->udp_port = (uint16_t)v;
		} else if (strcmp(o, "--max-msg") == 0) {
			cfg->limits.max_msg_bytes = v;
		} else if (strcmp(o, "--max-chunks") == 0 && v <= UINT16_MAX) {
			cfg->limits.max_chunks = (uint16_t)v;
		} else if (strcmp(o, "--inflight-client") == 0) {
			cfg->limits.max_inflight_client = v;
		} else if (strcmp(o, "--inflight-total") == 0) {
			cfg->limits.max_inflight_total = v;
		} else if (strcmp(o, "--gap-us") == 0) {
			cfg->gap_timeout_us = v;
		} else if (strcmp(o, "--timeout-us") == 0) {
			cfg->msg_timeout_us = v;
		} else if (strcmp(o, "--rx-desc") == 0 && v > 0 && v <= UINT16_MAX) {
			cfg->rx_desc = (uint16_t)v;
		} else if (strcmp(o, "--duration") == 0) {
			*duration = v;
		} else {
			return -1;
		}
	}
	return cfg->ipv4 != 0 ? 0 : -1;
}

/* The consumer: what a scheduler's worker would do, with the echo model only. */
static unsigned
consume(struct dp *dp)
{
	struct dp_req *reqs[32];
	unsigned n = dp_req_dequeue_burst(dp, reqs, 32);

	for (unsigned i = 0; i < n; i++) {
		struct dp_req *r = reqs[i];

		if (r->req.c.model_id == PROTO_MODEL_ECHO) {
			r->resp.result_kind = PROTO_RES_ECHO;
			r->resp.echo_crc32c = proto_crc32c(0, r->tensor, r->req.c.t.raw_total);
			r->resp.echo_bytes = r->req.c.t.raw_total;
		} else {
			r->resp.status = PROTO_ST_UNKNOWN_MODEL;
		}
		dp_req_respond(r);
	}
	return n;
}

static void
print_stats(const struct dp *dp)
{
	static const char *const types[PROTO_T__COUNT] = {
		"none", "hello", "hello_reply", "request", "response", "nack", "error"
	};
	struct dp_stats s;

	dp_stats_get(dp, &s);
	printf("rx_pkts %llu\nrx_bytes %llu\ntx_pkts %llu\ntx_bytes %llu\n",
	       (unsigned long long)s.rx_pkts, (unsigned long long)s.rx_bytes,
	       (unsigned long long)s.tx_pkts, (unsigned long long)s.tx_bytes);
	printf("arp_replies %llu\nicmp_replies %llu\nudp_rx %llu\nchunks_placed %llu\n",
	       (unsigned long long)s.arp_replies, (unsigned long long)s.icmp_replies,
	       (unsigned long long)s.udp_rx, (unsigned long long)s.chunks_placed);
	printf("msgs_opened %llu\nmsgs_completed %llu\nmsgs_echoed %llu\nmsgs_delivered %llu\n",
	       (unsigned long long)s.msgs_opened, (unsigned long long)s.msgs_completed,
	       (unsigned long long)s.msgs_echoed, (unsigned long long)s.msgs_delivered);
	printf("resp_sent %llu\nnacks_sent %llu\nerrors_sent %llu\nidle_sleeps %llu\n",
	       (unsigned long long)s.resp_sent, (unsigned long long)s.nacks_sent,
	       (unsigned long long)s.errors_sent, (unsigned long long)s.idle_sleeps);
	printf("port_missed %llu\nhello_replies %llu\nsessions_opened %llu\n"
	       "sessions_expired %llu\nanswers_resent %llu\n",
	       (unsigned long long)s.port_missed, (unsigned long long)s.hello_replies,
	       (unsigned long long)s.sessions_opened, (unsigned long long)s.sessions_expired,
	       (unsigned long long)s.answers_resent);
	/* For make bench's CPU cost per chunk: busy cycles and the TSC rate to convert them. */
	printf("busy_cycles %llu\ntsc_hz %llu\n", (unsigned long long)s.busy_cycles,
	       (unsigned long long)rte_get_tsc_hz());
	for (unsigned i = 0; i < DP_DROP__COUNT; i++)
		printf("drop_%s %llu\n", dp_drop_name((enum dp_drop)i),
		       (unsigned long long)s.drop[i]);
	for (unsigned i = 1; i < PROTO_T__COUNT; i++)
		printf("proto_rx_%s %llu\n", types[i], (unsigned long long)s.proto.rx[i]);
	for (unsigned i = 1; i < PROTO_REASON__COUNT; i++)
		if (s.proto.reject[i] != 0)
			printf("proto_reject_%s %llu\n", proto_reason_name(i),
			       (unsigned long long)s.proto.reject[i]);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	struct timespec idle = { 0, 100000 };	/* the consumer polls every 100 us when idle */
	struct tg_err err = { 0 };
	struct dp_config cfg;
	const char *ready = NULL;
	bool worker_echo = false;
	uint32_t duration = 0;
	uint64_t t_end;
	struct dp *dp;
	int n;

	if (argc < 2) {
		fprintf(stderr, "dp_echo: a helper of tests/dataplane_echo.sh, not a test\n");
		usage();
		printf("0 passed, 0 failed, 0 skipped\n");
		return 0;
	}
	n = dp_eal_init(argc, argv, &err);
	if (n < 0) {
		fprintf(stderr, "dp_echo: %s\n", err.msg);
		return 1;
	}
	dp_config_default(&cfg);
	/* EAL consumed n arguments; argv[n] stands for the program name (l2fwd does the same). */
	if (parse_args(argc - n - 1, argv + n + 1, &cfg, &worker_echo, &ready, &duration) != 0) {
		usage();
		dp_eal_cleanup();
		return 2;
	}
	cfg.no_echo = worker_echo;
	if (dp_create(&dp, &cfg, &err) != 0) {
		fprintf(stderr, "dp_echo: %s\n", err.msg);
		dp_eal_cleanup();
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (dp_start(dp, &err) != 0) {
		fprintf(stderr, "dp_echo: %s\n", err.msg);
		dp_destroy(dp);
		dp_eal_cleanup();
		return 1;
	}
	if (ready != NULL) {
		FILE *f = fopen(ready, "w");

		if (f != NULL)
			fclose(f);
	}
	fprintf(stderr, "dp_echo: serving %u queue(s)\n", dp_n_queues(dp));
	t_end = duration != 0 ? tg_now_ns() + (uint64_t)duration * 1000000000ull : UINT64_MAX;
	while (!stop_flag && tg_now_ns() < t_end)
		if (consume(dp) == 0)
			nanosleep(&idle, NULL);
	dp_stop(dp);
	print_stats(dp);
	dp_destroy(dp);
	dp_eal_cleanup();
	return 0;
}
