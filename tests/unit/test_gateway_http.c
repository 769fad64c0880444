/* SPDX-License-Identifier: Apache-2.0 */
/* The control-plane HTTP server scraped over loopback, and the Prometheus text helpers. */
#include "gateway/gateway.h"
#include "tests/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int
render(void *ctx, const char *path, char *buf, size_t cap, size_t *len, const char **ctype)
{
	struct gw_prom p = { .buf = buf, .cap = cap };

	(*(unsigned *)ctx)++;
	if (strcmp(path, "/healthz") == 0) {
		*len = (size_t)snprintf(buf, cap, "ok\n");
		return 200;
	}
	if (strcmp(path, "/metrics") != 0) {
		*len = (size_t)snprintf(buf, cap, "not found\n");
		return 404;
	}
	gw_prom_family(&p, "tailgate_requests_total", "counter", "Requests answered, by status.");
	gw_prom_sample(&p, "tailgate_requests_total", "status=\"ok\",model=\"m\"", 42);
	gw_prom_sample(&p, "tailgate_requests_total", "status=\"overloaded\",model=\"m\"", 3);
	gw_prom_sample(&p, "tailgate_up", NULL, 1);
	*len = p.len;
	*ctype = "text/plain; version=0.0.4";
	return 200;
}

/* A minimal HTTP/1.0 GET over loopback, bounded by a 2 s receive timeout. */
static int
get(uint16_t port, const char *path, char *out, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 2, 0 };
	char req[256];
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n;

	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -errno;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
	if (write(fd, req, strlen(req)) < 0) {
		close(fd);
		return -errno;
	}
	while (got + 1 < cap && (n = read(fd, out + got, cap - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(fd);
	return (int)got;
}

static void
test_metrics_are_scraped_over_loopback(void)
{
	struct gw_http *h = NULL;
	struct tg_err err = { 0 };
	unsigned calls = 0;
	char body[4096];

	TH_CHECK_MSG(gw_http_start(&h, "127.0.0.1:0", render, &calls, 1 << 16, &err) == 0, "%s",
		     err.msg);
	if (h == NULL)
		return;
	TH_CHECK(gw_http_port(h) != 0);
	TH_CHECK(get(gw_http_port(h), "/metrics", body, sizeof(body)) > 0);
	TH_CHECK_MSG(strstr(body, "200 OK") && strstr(body, "# TYPE tailgate_requests_total counter") &&
		     strstr(body, "tailgate_requests_total{status=\"ok\",model=\"m\"} 42\n") &&
		     strstr(body, "tailgate_up 1\n"), "%s", body);
	TH_CHECK(get(gw_http_port(h), "/healthz", body, sizeof(body)) > 0 && strstr(body, "\r\n\r\nok\n"));
	TH_CHECK(get(gw_http_port(h), "/nope", body, sizeof(body)) > 0 && strstr(body, " 404 "));
	TH_CHECK(calls == 3);
	gw_http_stop(h);
}

static void
test_bad_address_is_refused(void)
{
	struct gw_http *h = NULL;
	struct tg_err err = { 0 };

	TH_CHECK(gw_http_start(&h, "localhost", render, NULL, 64, &err) == -EINVAL);
	TH_CHECK(gw_http_start(&h, "300.1.1.1:80", render, NULL, 64, &err) == -EINVAL);
	TH_CHECK(gw_http_start(&h, "127.0.0.1:99999", render, NULL, 64, &err) == -EINVAL);
	TH_CHECK(h == NULL);
}

static void
test_prom_overflow_is_sticky(void)
{
	char buf[40];
	struct gw_prom p = { .buf = buf, .cap = sizeof(buf) };

	gw_prom_sample(&p, "a", NULL, 1);
	gw_prom_sample(&p, "a_very_long_metric_name_that_does_not_fit", NULL, 1);
	gw_prom_sample(&p, "b", NULL, 2);
	TH_CHECK(p.overflow && p.len == 4 && memcmp(buf, "a 1\n", 4) == 0);
}

/* Label values from model files are escaped for the text format and cut whole escapes at a
 * time, never leaving half an escape or an unterminated string. */
static void
test_prom_label_values_are_escaped(void)
{
	char b[16];

	TH_CHECK(strcmp(gw_prom_escape(b, sizeof(b), "plain"), "plain") == 0);
	TH_CHECK(strcmp(gw_prom_escape(b, sizeof(b), "a\"b\\c\nd"), "a\\\"b\\\\c\\nd") == 0);
	gw_prom_escape(b, 8, "\"\"\"\"\"\"");
	TH_CHECK(strlen(b) <= 7 && strlen(b) % 2 == 0);
	TH_CHECK(strcmp(gw_prom_escape(b, sizeof(b), NULL), "") == 0);
}

int
main(void)
{
	TH_RUN(test_prom_label_values_are_escaped);
	TH_RUN(test_metrics_are_scraped_over_loopback);
	TH_RUN(test_bad_address_is_refused);
	TH_RUN(test_prom_overflow_is_sticky);
	TH_DONE();
}
