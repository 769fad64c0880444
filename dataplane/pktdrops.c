/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Frames the kernel dropped in front of an af_packet port. DPDK 22.11's net_af_packet never
 * reads its sockets' PACKET_STATISTICS (it reports no imissed), so a frame dropped because
 * the packet ring was full was counted nowhere: a client's request lost without a trace.
 * The PMD keeps its sockets private; they are found by what they are (AF_PACKET, bound to
 * the port's interface) among the process's descriptors, once at dp_create(). Reading the
 * statistics resets them in the kernel: dp_pktdrops_read() adds them up under a lock.
 */
#include "dataplane/dp_int.h"

#include <dirent.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct dp_pktdrops {
	pthread_mutex_t mu;
	uint64_t drops;			/* tp_drops summed over every read */
	unsigned n;
	int fd[DP_PKTDROPS_MAX_FDS];
};

/* fd is an AF_PACKET socket bound to interface ifindex. */
static bool
dp_pktdrops_is_port_socket(int fd, int ifindex)
{
	struct sockaddr_ll sll;
	socklen_t len = sizeof(sll);
	int domain = 0;
	socklen_t dlen = sizeof(domain);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dlen) != 0 || domain != AF_PACKET)
		return false;
	memset(&sll, 0, sizeof(sll));
	return getsockname(fd, (struct sockaddr *)&sll, &len) == 0 && sll.sll_ifindex == ifindex;
}

int
dp_pktdrops_open(struct dp_pktdrops **out, int ifindex)
{
	struct dp_pktdrops *p;
	struct dirent *e;
	DIR *d;

	*out = NULL;
	if (ifindex <= 0)
		return -EINVAL;
	d = opendir("/proc/self/fd");
	if (d == NULL)
		return -errno;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		closedir(d);
		return -ENOMEM;
	}
	while ((e = readdir(d)) != NULL && p->n < DP_PKTDROPS_MAX_FDS) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end != '\0' || end == e->d_name || fd < 0 || fd == dirfd(d))
			continue;
		if (dp_pktdrops_is_port_socket((int)fd, ifindex))
			p->fd[p->n++] = (int)fd;
	}
	closedir(d);
	if (p->n == 0) {
		free(p);
		return -ENOENT;
	}
	pthread_mutex_init(&p->mu, NULL);
	/* What the kernel dropped before the port was ours (setup, other traffic) is not
	 * this dataplane's: start from zero. */
	dp_pktdrops_read(p);
	p->drops = 0;
	*out = p;
	return 0;
}

uint64_t
dp_pktdrops_read(struct dp_pktdrops *p)
{
	uint64_t sum;

	if (p == NULL)
		return 0;
	pthread_mutex_lock(&p->mu);
	for (unsigned i = 0; i < p->n; i++) {
		struct tpacket_stats st;
		socklen_t len = sizeof(st);

		if (getsockopt(p->fd[i], SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
			p->drops += st.tp_drops;
	}
	sum = p->drops;
	pthread_mutex_unlock(&p->mu);
	return sum;
}

unsigned
dp_pktdrops_sockets(const struct dp_pktdrops *p)
{
	return p == NULL ? 0 : p->n;
}

void
dp_pktdrops_close(struct dp_pktdrops *p)
{
	if (p == NULL)
		return;
	pthread_mutex_destroy(&p->mu);
	free(p);	/* the sockets are the PMD's */
}
