/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control plane's HTTP server (/metrics, /healthz, /v1/models) on libmicrohttpd's own
 * polling thread, and Prometheus text helpers. Off the data path entirely.
 */
#include "gateway/gateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct gw_http {
	struct MHD_Daemon *d;
	gw_http_fn fn;
	void *ctx;
	size_t cap;
	uint16_t port;
};

static enum MHD_Result
gw_http_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	       const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct gw_http *h = cls;
	struct MHD_Response *resp;
	const char *ctype = "text/plain; charset=utf-8";
	size_t len = 0;
	char *buf;
	int status;
	enum MHD_Result ret;

	(void)version;
	(void)upload;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		static char msg[] = "only GET\n";

		*upload_size = 0;
		resp = MHD_create_response_from_buffer(sizeof(msg) - 1, msg, MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	buf = malloc(h->cap);
	if (buf == NULL)
		return MHD_NO;
	status = h->fn(h->ctx, url, buf, h->cap, &len, &ctype);
	resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", ctype);
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

int
gw_http_start(struct gw_http **out, const char *addr_port, gw_http_fn fn, void *ctx,
	      size_t buf_cap, struct tg_err *err)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[64];
	const char *colon = strrchr(addr_port, ':');
	char *end;
	unsigned long port;
	struct gw_http *h;
	socklen_t sl = sizeof(sa);
	const union MHD_DaemonInfo *info;

	if (colon == NULL || (size_t)(colon - addr_port) >= sizeof(host))
		return tg_err_set(err, -EINVAL, "metrics: '%s' is not ADDR:PORT", addr_port);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr_port), addr_port);
	port = strtoul(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port > 65535 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return tg_err_set(err, -EINVAL, "metrics: '%s' is not IPv4-ADDR:PORT", addr_port);
	sa.sin_port = htons((uint16_t)port);
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	h->fn = fn;
	h->ctx = ctx;
	h->cap = buf_cap;
	h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				gw_http_handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				MHD_OPTION_END);
	if (h->d == NULL) {
		free(h);
		return tg_err_set(err, -EADDRINUSE, "metrics: cannot listen on %s", addr_port);
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_LISTEN_FD);
	if (info != NULL && getsockname(info->listen_fd, (struct sockaddr *)&sa, &sl) == 0)
		h->port = ntohs(sa.sin_port);
	*out = h;
	return 0;
}

uint16_t
gw_http_port(const struct gw_http *h)
{
	return h->port;
}

void
gw_http_stop(struct gw_http *h)
{
	if (h == NULL)
		return;
	MHD_stop_daemon(h->d);
	free(h);
}

void
gw_prom_printf(struct gw_prom *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= p->cap - p->len) {
		p->overflow = true;
		return;
	}
	p->len += (size_t)n;
}

void
gw_prom_family(struct gw_prom *p, const char *name, const char *type, const char *help)
{
	gw_prom_printf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

const char *
gw_prom_escape(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	/* Label values from model files and configs: backslash, quote and newline escaped as
	 * the text format wants; a long one is cut whole escapes at a time. */
	for (; src && *src && n + 3 <= cap; src++) {
		char c = *src == '\n' ? 'n' : *src;

		if (*src == '\\' || *src == '"' || *src == '\n')
			dst[n++] = '\\';
		dst[n++] = c;
	}
	if (cap > 0)
		dst[n < cap ? n : cap - 1] = '\0';
	return dst;
}

void
gw_prom_sample(struct gw_prom *p, const char *name, const char *labels, double v)
{
	if (labels && labels[0])
		gw_prom_printf(p, "%s{%s} %.17g\n", name, labels, v);
	else
		gw_prom_printf(p, "%s %.17g\n", name, v);
}
