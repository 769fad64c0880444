/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon's wiring (programs/tailgate.c's main() calls gw_daemon_main()). Loads the model repository into a first
 * generation (gen.c), opens the logs, brings up the dataplane with the request path as its
 * deliver hook (path.c), the control plane (metrics.c), then waits for signals:
 *
 *   SIGTERM/SIGINT  stop admitting (requests still arriving are answered OVERLOADED), let the
 *                   scheduler finish what it accepted, send every answer, exit 0
 *   SIGHUP          reload the model repository on a builder thread; the loaded generation
 *                   serves until the new one is published (gen.c)
 *   SIGUSR1         reopen the logs (after rotation)
 *
 *   tailgate [options] -- [EAL args]        (tailgate --help)
 *
 * The main thread is on no request's path: RX lcores deliver to the scheduler and answer
 * refusals; workers answer results (gw_int.h says which thread touches what).
 */
#include "dataplane/dataplane.h"
#include "gateway/gateway.h"
#include "gateway/gw_int.h"
#include "kernels/kernels.h"
#include "proto/proto.h"
#include "scheduler/sched.h"
#include "util/util.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	GW_HTTP_BUF = 1 << 18,		/* bytes of one rendered /metrics or /v1/models body */
	GW_SIGNAL_POLL_MS = 20,		/* the main thread's look at the signal flags */
	GW_DRAIN_QUIET_MS = 200,	/* stopping: answer until nothing arrived this long, */
	GW_DRAIN_MAX_MS = 3000,		/* at most this long */
};

static volatile sig_atomic_t gw_stop_flag, gw_hup_flag, gw_usr1_flag;

static void
gw_on_signal(int sig)
{
	if (sig == SIGHUP)
		gw_hup_flag = 1;
	else if (sig == SIGUSR1)
		gw_usr1_flag = 1;
	else
		gw_stop_flag = 1;
}

static void
gw_usage(FILE *f)
{
	fprintf(f,
		"usage: tailgate [options] -- [EAL args]\n"
		"Serve the tails of split DNNs from a model repository over UDP (DPDK).\n\n"
		"  -c, --config FILE         configuration file (key = value; README.md)\n"
		"  -a, --address A.B.C.D     the gateway's IPv4 address on the port (address)\n"
		"  -p, --port N              UDP port of the protocol (udp_port)\n"
		"  -m, --models DIR          the model repository (models)\n"
		"  -M, --metrics ADDR:PORT   control plane: /metrics /healthz /v1/models (metrics)\n"
		"  -w, --workers N           scheduler worker threads (workers)\n"
		"  -t, --engine-threads N    oneDNN threads, 0: all cores (engine_threads)\n"
		"  -A, --access-log FILE     JSON-lines access log (access_log)\n"
		"  -E, --event-log FILE      event log; empty: stderr (event_log)\n"
		"  -r, --ready FILE          create FILE once serving (for scripts)\n"
		"  -C, --check-config FILE   load FILE (as --config) and the models it names, print\n"
		"                            what would be served, exit 0 if valid (no DPDK)\n"
		"  -V, --version             the version\n"
		"  -h, --help                this text\n\n"
		"Options override the file, which overrides the defaults. EAL needs a worker lcore\n"
		"per RX queue, e.g.: tailgate -c gw.conf -- -l 0-1 --vdev net_af_xdp0,iface=eth1\n"
		"Signals: SIGTERM/SIGINT: answer every request held, drain, exit 0. SIGHUP:\n"
		"reload the model repository on a thread of its own while the loaded models\n"
		"serve, then switch (on error the loaded models keep serving). SIGUSR1: reopen\n"
		"the access and event logs (after rotation). Under systemd (Type=notify) it\n"
		"reports READY, RELOADING, STOPPING and, with WatchdogSec, keep-alives.\n");
}

struct gw_opt_set {
	const char *opt;		/* long option name, for errors */
	const char *key;		/* config key it sets */
	const char *val;
};

/* Apply one option through the config parser, so it is checked like the file's key. */
static int
gw_apply_opt(struct gw_config *c, const char *opt, const char *key, const char *val,
	     struct tg_err *err)
{
	char line[GW_PATH_MAX + 64], name[64];
	int n;

	if (strchr(val, '\n') != NULL || strchr(val, '#') != NULL)
		return tg_err_set(err, -EINVAL, "--%s: '%s': no newline or '#' allowed", opt, val);
	n = snprintf(line, sizeof(line), "%s = %s\n", key, val);
	if (n < 0 || (size_t)n >= sizeof(line))
		return tg_err_set(err, -EINVAL, "--%s: value too long", opt);
	snprintf(name, sizeof(name), "option --%s", opt);
	return gw_config_parse(line, (size_t)n, name, c, err);
}

static void
gw_touch(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f != NULL)
		fclose(f);
}

/* The main thread while serving: signals. Reloads run one at a time, a SIGHUP during one
 * starts another after it (the files may have changed since it read them). */
static void
gw_serve(struct gw *g)
{
	struct timespec t = { 0, GW_SIGNAL_POLL_MS * 1000000L };
	uint64_t wd_ns = gw_watchdog_interval_ns(), wd_last = 0;
	bool pending = false, reloading = false;

	while (!gw_stop_flag) {
		nanosleep(&t, NULL);
		if (wd_ns != 0 && tg_now_ns() - wd_last >= wd_ns) {
			wd_last = tg_now_ns();
			gw_notify("WATCHDOG=1");
		}
		if (gw_usr1_flag) {
			gw_usr1_flag = 0;
			gw_log_event(g->log, gw_producer(g, NULL), "SIGUSR1: reopening the logs");
			gw_log_reopen(g->log);
		}
		if (gw_hup_flag) {
			gw_hup_flag = 0;
			pending = true;
		}
		gw_reload_reap(g, false);
		if (reloading && atomic_load(&g->build_state) == GW_BUILD_IDLE) {
			reloading = false;
			gw_notify("READY=1\nSTATUS=serving generation %u",
				  atomic_load(&g->cur)->id);
		}
		if (pending && atomic_load(&g->build_state) == GW_BUILD_IDLE) {
			pending = false;
			reloading = true;
			gw_notify("RELOADING=1\nSTATUS=reloading the model repository");
			gw_reload_start(g);
		}
	}
	gw_notify("STOPPING=1\nSTATUS=draining");
}

/*
 * SIGTERM: every request the dataplane delivered is answered, and every answer sent. The
 * hook stops submitting (answers OVERLOADED) once no RX lcore can be inside a submission;
 * the scheduler finishes what it accepted; then the RX lcores stop, sending every answer
 * posted to them before they return (dp_stop()).
 */
static void
gw_drain(struct gw *g)
{
	struct gw_gen *cur = atomic_load(&g->cur);
	struct timespec t = { 0, 1000000L };
	unsigned p = gw_producer(g, NULL);
	struct dp_stats ds;
	uint64_t taken, answered;

	atomic_store(&g->stopping, true);
	gw_reload_reap(g, true);	/* a build running is discarded, a drain finished */
	cur = atomic_load(&g->cur);
	gw_log_event(g->log, p, "tailgate: stopping, draining %llu request(s)",
		     (unsigned long long)(atomic_load(&g->taken) - atomic_load(&g->answered)));
	dp_synchronize(g->dp);
	sched_stop(cur->sched);
	/*
	 * The hook answers at once (OVERLOADED) what still arrives: keep answering until
	 * nothing was delivered for GW_DRAIN_QUIET_MS (a client told to stop still has
	 * requests on the wire), at most GW_DRAIN_MAX_MS.
	 */
	for (unsigned i = 0, quiet = 0; i < GW_DRAIN_MAX_MS && quiet < GW_DRAIN_QUIET_MS; i++) {
		uint64_t before = atomic_load(&g->taken);

		nanosleep(&t, NULL);
		quiet = atomic_load(&g->taken) == before &&
				atomic_load(&g->answered) == before ? quiet + 1 : 0;
	}
	dp_stop(g->dp);
	dp_stats_get(g->dp, &ds);
	answered = atomic_load(&g->answered);
	taken = atomic_load(&g->taken);
	gw_log_event(g->log, p,
		     "tailgate: stopped: %llu requests delivered by the dataplane, %llu taken, "
		     "%llu answered, %llu after the port stopped; %llu frames unsent (TX full)",
		     (unsigned long long)ds.msgs_delivered, (unsigned long long)taken,
		     (unsigned long long)answered, (unsigned long long)(taken - answered),
		     (unsigned long long)ds.drop[DP_DROP_TX_FULL]);
}

/*
 * Bring everything up, in order: EAL (argv: DPDK's arguments), the port, the logs, the first
 * generation and its catalog, signals, the RX lcores with the deliver hook, the control
 * plane. @return 0, or -errno with err set, everything acquired released.
 */
static int
gw_start(struct gw *g, int argc, char **argv, struct tg_err *err)
{
	char **eal_argv;
	cpu_set_t cpus;
	bool have_cpus;
	struct sigaction sa;
	struct gw_gen *gen;
	int rc;

	/* EAL pins the calling thread to its main lcore's CPU; threads created later inherit
	 * that. Give it back its CPUs after EAL init, so the scheduler's workers and oneDNN's
	 * threads use every core; only the RX lcores stay pinned. */
	have_cpus = sched_getaffinity(0, sizeof(cpus), &cpus) == 0;
	eal_argv = calloc((size_t)argc + 2, sizeof(*eal_argv));
	if (eal_argv == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	eal_argv[0] = (char *)"tailgate";
	for (int i = 0; i < argc; i++)
		eal_argv[i + 1] = argv[i];
	rc = dp_eal_init(argc + 1, eal_argv, err);
	free(eal_argv);	/* EAL keeps no pointer to the array */
	if (rc < 0)
		return rc;
	if (have_cpus)
		pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	kern_set_threads(g->cfg.engine_threads);
	rc = dp_create(&g->dp, &g->cfg.dp, err);
	if (rc < 0)
		goto out_eal;
	/* Log rings: two generations' workers, main, builder, one per RX lcore. */
	g->n_producers = 2 * g->cfg.workers + GW_RING_FIRST_FREE + dp_n_queues(g->dp);
	rc = gw_log_open(&g->log, g->cfg.access_log, g->cfg.event_log, g->n_producers,
			 g->cfg.log_ring, g->cfg.fsync_ms, err);
	if (rc < 0)
		goto out_dp;
	rc = gw_gen_build(g, 1, &gen, err);
	if (rc < 0)
		goto out_log;
	rc = gw_gen_publish(g, gen, err);
	if (rc == 0)
		rc = dp_set_deliver(g->dp, gw_path_deliver, g);
	if (rc == 0 && g->cfg.rx_busy_sleep)
		rc = dp_set_busy_hint(g->dp, gw_path_busy, g);
	if (rc < 0)
		goto out_gen;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = gw_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	rc = dp_start(g->dp, err);
	if (rc < 0)
		goto out_gen;
	rc = gw_telemetry_start(g, err);
	if (rc < 0)
		goto out_stop;
	if (g->cfg.metrics_addr[0] != '\0') {
		rc = gw_http_start(&g->http, g->cfg.metrics_addr, gw_http_render, g, GW_HTTP_BUF,
				   err);
		if (rc < 0)
			goto out_stop;
	}
	return 0;

out_stop:
	dp_tel_unregister_all();
	dp_stop(g->dp);
out_gen:
	g->live = NULL;
	sched_free(gen->sched);
	gw_repo_free(gen->repo);
	free(gen);
out_log:
	gw_log_close(g->log);
out_dp:
	dp_destroy(g->dp);
out_eal:
	dp_eal_cleanup();
	return rc;
}

/* After gw_drain(): the port, EAL, the logs (flushed). */
static void
gw_stop_all(struct gw *g)
{
	dp_destroy(g->dp);
	dp_eal_cleanup();
	gw_log_close(g->log);
}

int
gw_daemon_main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "models", required_argument, NULL, 'm' },
		{ "metrics", required_argument, NULL, 'M' },
		{ "workers", required_argument, NULL, 'w' },
		{ "engine-threads", required_argument, NULL, 't' },
		{ "access-log", required_argument, NULL, 'A' },
		{ "event-log", required_argument, NULL, 'E' },
		{ "ready", required_argument, NULL, 'r' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct gw gw;	/* static: large, and the threads outlive this frame */
	struct gw *g = &gw;
	struct gw_opt_set sets[16];
	unsigned n_sets = 0;
	struct dp_config dpd;
	struct tg_err err = { 0 };
	const char *conf_path = NULL, *ready = NULL;
	bool check_only = false;
	struct gw_gen *gen;
	int opt, li;

	/* oneDNN's OpenMP threads must sleep, not spin, beside the RX lcore (kernels.h). */
	kern_prefer_passive_wait(argv);
	g->main_clock_set = pthread_getcpuclockid(pthread_self(), &g->main_clock) == 0;

	while ((opt = getopt_long(argc, argv, "+c:a:p:m:M:w:t:A:E:r:C:Vh", lopts, &li)) != -1) {
		const char *key = NULL;

		switch (opt) {
		case 'c': conf_path = optarg; continue;
		case 'r': ready = optarg; continue;
		case 'C': conf_path = optarg; check_only = true; continue;
		case 'V': gw_version_print(stdout, "tailgate"); return 0;
		case 'h': gw_usage(stdout); return 0;
		case 'a': key = "address"; break;
		case 'p': key = "udp_port"; break;
		case 'm': key = "models"; break;
		case 'M': key = "metrics"; break;
		case 'w': key = "workers"; break;
		case 't': key = "engine_threads"; break;
		case 'A': key = "access_log"; break;
		case 'E': key = "event_log"; break;
		default: gw_usage(stderr); return 2;
		}
		if (n_sets == sizeof(sets) / sizeof(sets[0])) {
			fprintf(stderr, "tailgate: too many options\n");
			return 2;
		}
		sets[n_sets].opt = NULL;
		for (unsigned k = 0; lopts[k].name != NULL; k++)
			if (lopts[k].val == opt)
				sets[n_sets].opt = lopts[k].name;
		sets[n_sets].key = key;
		sets[n_sets++].val = optarg;
	}

	/* Defaults, then the file, then the options. */
	dp_config_default(&dpd);
	gw_config_default(&g->cfg, &dpd);
	if (conf_path != NULL && gw_config_load(conf_path, &g->cfg, &err) < 0)
		goto out_err;
	for (unsigned i = 0; i < n_sets; i++)
		if (gw_apply_opt(&g->cfg, sets[i].opt, sets[i].key, sets[i].val, &err) < 0)
			goto out_err;
	if (check_only) {	/* exit 2: the file or options; 1: the keys or models */
		if (gw_config_validate(&g->cfg, &err) < 0)
			goto out_err;
		if (gw_check_config(g, stdout, &err) < 0) {
			fprintf(stderr, "tailgate: %s: %s\n", conf_path, err.msg);
			return 1;
		}
		printf("tailgate: %s: valid\n", conf_path);
		proto_keys_free(g->keys);
		return 0;
	}
	if (gw_config_validate(&g->cfg, &err) < 0 || gw_keys_load(g, &err) < 0)
		goto out_err;
	if (pthread_mutex_init(&g->gen_mu, NULL) != 0)
		return 1;
	atomic_store(&g->next_producer, GW_RING_FIRST_FREE);
	gw_producer_set(g, GW_RING_MAIN);
	if (gw_start(g, argc - optind, argv + optind, &err) < 0) {
		fprintf(stderr, "tailgate: %s\n", err.msg);
		proto_keys_free(g->keys);
		return 1;
	}
	gw_log_event(g->log, gw_producer(g, NULL),
		     "tailgate: serving %u model(s) on %u queue(s), %u worker(s)%s%s",
		     atomic_load(&g->cur)->repo->n, dp_n_queues(g->dp), g->cfg.workers,
		     g->http ? ", control plane on " : "", g->http ? g->cfg.metrics_addr : "");
	if (g->http)
		fprintf(stderr, "tailgate: control plane on port %u\n", gw_http_port(g->http));
	if (ready != NULL)
		gw_touch(ready);
	gw_notify("READY=1\nSTATUS=serving %u model(s), generation %u",
		  atomic_load(&g->cur)->repo->n, atomic_load(&g->cur)->id);

	gw_serve(g);
	gw_http_stop(g->http);
	g->http = NULL;
	dp_tel_unregister_all();
	gw_drain(g);
	while ((gen = g->live) != NULL) {	/* all drained: retiring only frees now */
		g->live = gen->next;
		sched_free(gen->sched);
		gw_repo_free(gen->repo);
		free(gen);
	}
	gw_stop_all(g);
	proto_keys_free(g->keys);
	return 0;

out_err:
	fprintf(stderr, "tailgate: %s\n", err.msg);
	return 2;
}
