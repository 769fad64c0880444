/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tailgate: the gateway daemon (README "Running the gateway"). Its wiring is the gateway
 * module's (gateway/daemon.c): configuration, the model repository, the logs, the dataplane
 * with the request path, the control plane, signals.
 *
 *   tailgate [options] -- [EAL args]        (tailgate --help)
 */
#include "gateway/gateway.h"

int
main(int argc, char **argv)
{
	return gw_daemon_main(argc, argv);
}
