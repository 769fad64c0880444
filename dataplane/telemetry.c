/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gateway's own DPDK telemetry commands (dpdk-telemetry.py, /var/run/dpdk/<prefix>/
 * dpdk_telemetry.v2): a thin layer over rte_telemetry so that modules without DPDK's headers
 * (the gateway) can answer commands. DPDK's callbacks carry no context pointer and cannot be
 * unregistered, so commands live in a table here, looked up by name on each call under one
 * mutex; dp_tel_unregister_all() empties it and a command asked afterwards answers an error.
 * Init/control path: runs on DPDK's telemetry thread, may allocate.
 */
#include "dataplane/dataplane.h"
#include "dataplane/dp_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <rte_hash.h>
#include <rte_telemetry.h>

enum { DP_TEL_MAX_CMDS = 8 };

static struct {
	char cmd[64];
	dp_tel_fn fn;			/* NULL: unregistered (DPDK still knows the name) */
	void *ctx;
} dp_tel_cmds[DP_TEL_MAX_CMDS];
static pthread_mutex_t dp_tel_mu = PTHREAD_MUTEX_INITIALIZER;

static struct rte_tel_data *
dp_tel_data(struct dp_tel *t)
{
	return (struct rte_tel_data *)t;	/* struct dp_tel is rte_tel_data, opaque outside */
}

static int
dp_tel_cb(const char *cmd, const char *params, struct rte_tel_data *d)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&dp_tel_mu);
	for (unsigned i = 0; i < DP_TEL_MAX_CMDS; i++)
		if (dp_tel_cmds[i].fn != NULL && strcmp(dp_tel_cmds[i].cmd, cmd) == 0) {
			rc = dp_tel_cmds[i].fn(dp_tel_cmds[i].ctx, params, (struct dp_tel *)d);
			break;
		}
	pthread_mutex_unlock(&dp_tel_mu);
	if (rc == -ENOENT) {	/* the gateway is stopping: say so rather than answer null */
		rte_tel_data_start_dict(d);
		rte_tel_data_add_dict_string(d, "error", "not serving");
		rc = 0;
	}
	return rc;
}

int
dp_tel_register(const char *cmd, const char *help, dp_tel_fn fn, void *ctx, struct tg_err *err)
{
	unsigned i, free_i = DP_TEL_MAX_CMDS;
	int rc = 0;

	if (strlen(cmd) >= sizeof(dp_tel_cmds[0].cmd))
		return tg_err_set(err, -EINVAL, "telemetry command %s: name too long", cmd);
	pthread_mutex_lock(&dp_tel_mu);
	for (i = 0; i < DP_TEL_MAX_CMDS; i++) {
		if (strcmp(dp_tel_cmds[i].cmd, cmd) == 0)
			break;		/* known to DPDK already: take it over */
		if (dp_tel_cmds[i].cmd[0] == '\0' && free_i == DP_TEL_MAX_CMDS)
			free_i = i;
	}
	if (i == DP_TEL_MAX_CMDS) {
		if (free_i == DP_TEL_MAX_CMDS) {
			rc = tg_err_set(err, -ENOSPC, "telemetry command %s: table full", cmd);
			goto out;
		}
		rc = rte_telemetry_register_cmd(cmd, dp_tel_cb, help);
		if (rc < 0) {
			tg_err_set(err, rc, "telemetry command %s: %s", cmd, strerror(-rc));
			goto out;
		}
		i = free_i;
		snprintf(dp_tel_cmds[i].cmd, sizeof(dp_tel_cmds[i].cmd), "%s", cmd);
	}
	dp_tel_cmds[i].fn = fn;
	dp_tel_cmds[i].ctx = ctx;
out:
	pthread_mutex_unlock(&dp_tel_mu);
	return rc;
}

void
dp_tel_unregister_all(void)
{
	pthread_mutex_lock(&dp_tel_mu);	/* waits for a command being answered */
	for (unsigned i = 0; i < DP_TEL_MAX_CMDS; i++)
		dp_tel_cmds[i].fn = NULL;
	pthread_mutex_unlock(&dp_tel_mu);
}

void
dp_tel_dict(struct dp_tel *t)
{
	rte_tel_data_start_dict(dp_tel_data(t));
}

int
dp_tel_u64(struct dp_tel *t, const char *key, uint64_t v)
{
	return rte_tel_data_add_dict_u64(dp_tel_data(t), key, v);
}

int
dp_tel_str(struct dp_tel *t, const char *key, const char *v)
{
	return rte_tel_data_add_dict_string(dp_tel_data(t), key, v);
}

int
dp_tel_u64_array(struct dp_tel *t, const char *key, const uint64_t *v, unsigned n)
{
	struct rte_tel_data *a;

	if (key == NULL) {	/* the reply itself is the array */
		a = dp_tel_data(t);
		rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
	} else {
		a = rte_tel_data_alloc();
		if (a == NULL)
			return -ENOMEM;
		rte_tel_data_start_array(a, RTE_TEL_U64_VAL);
	}
	for (unsigned i = 0; i < n; i++)
		rte_tel_data_add_array_u64(a, v[i]);
	if (key != NULL && rte_tel_data_add_dict_container(dp_tel_data(t), key, a, 0) < 0) {
		rte_tel_data_free(a);
		return -E2BIG;
	}
	return 0;
}

void
dp_sessions_get(const struct dp *dp, unsigned *in_use, unsigned *max)
{
	*in_use = 0;
	for (unsigned q = 0; q < dp->n_queues; q++) {
		int32_t n = rte_hash_count(dp->lc[q]->re.sessions);

		*in_use += n > 0 ? (unsigned)n : 0;
	}
	*max = dp->cfg.limits.max_sessions;
}
