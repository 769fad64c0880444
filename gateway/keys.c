/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device key file (auth_keys, docs/protocol.md 12.5): loaded at start, before the
 * dataplane that reads it, and again on SIGHUP by the builder thread, which hands the new
 * table to the RX lcores with dp_auth_keys_swap() and frees the old one once none reads it.
 * A file that fails to load on reload leaves the keys in use (the event log says why).
 */
#include "gateway/gw_int.h"

int
gw_keys_load(struct gw *g, struct tg_err *err)
{
	int rc;

	if (g->cfg.auth_keys[0] == '\0')
		return 0;
	rc = proto_keys_load(&g->keys, g->cfg.auth_keys, err);
	if (rc < 0)
		return rc;
	g->cfg.dp.keys = g->keys;
	return 0;
}

void
gw_keys_reload(struct gw *g, unsigned producer)
{
	struct tg_err err = { 0 };
	struct proto_keys *keys;

	if (g->cfg.auth_keys[0] == '\0')
		return;
	if (proto_keys_load(&keys, g->cfg.auth_keys, &err) < 0) {
		gw_log_event(g->log, producer, "reload: keys kept: %s", err.msg);
		return;
	}
	proto_keys_free((struct proto_keys *)dp_auth_keys_swap(g->dp, keys));
	g->keys = keys;
	gw_log_event(g->log, producer, "reload: %zu device key(s) from %s", keys->n,
		     g->cfg.auth_keys);
}
