/* SPDX-License-Identifier: Apache-2.0 */
/* File reads through io_uring: a file of several 1 MiB parts arrives whole and in place; a
 * short read is queued again for the rest (a pipe returns at most what it holds, so a read
 * larger than the pipe is short every time); a file that ends early is an error, not a
 * buffer of zeroes. */
#include "util/util.h"
#include "tests/harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

static uint8_t
pattern(size_t i)
{
	return (uint8_t)(i * 131u + (i >> 12));	/* differs between parts and within pages */
}

static void
test_parts_arrive_whole_and_in_place(void)
{
	const size_t len = 3 * (1 << 20) + 12345;	/* four parts, the last one short */
	char path[96];
	uint8_t *src = malloc(len), *got = NULL;
	size_t n = 0, bad = 0;
	struct tg_err err = { 0 };

	TH_CHECK(src != NULL);
	if (src == NULL)
		return;
	for (size_t i = 0; i < len; i++)
		src[i] = pattern(i);
	snprintf(path, sizeof(path), "%s/parts.bin", dir);
	TH_CHECK(tg_file_write(path, src, len, &err) == 0);
	TH_CHECK_MSG(tg_file_read(path, len, &got, &n, &err) == 0, "%s", err.msg);
	TH_CHECK(n == len);
	for (size_t i = 0; got != NULL && i < n; i++)
		bad += got[i] != src[i];
	TH_CHECK_MSG(got != NULL && bad == 0, "%zu bytes differ", bad);
	free(got);
	free(src);
}

struct feeder {
	int fd;
	size_t len, piece;
};

/* Writes len bytes of the pattern in pieces, pausing now and then: the reader's reads find
 * the pipe holding less than they ask for. */
static void *
feed(void *arg)
{
	struct feeder *f = arg;
	uint8_t b[4096];

	for (size_t off = 0; off < f->len;) {
		size_t n = f->len - off < f->piece ? f->len - off : f->piece;

		for (size_t i = 0; i < n; i++)
			b[i] = pattern(off + i);
		if (write(f->fd, b, n) != (ssize_t)n)
			break;
		off += n;
		if ((off / f->piece) % 16 == 0)
			usleep(200);
	}
	close(f->fd);
	return NULL;
}

static void
test_short_reads_are_queued_again(void)
{
	/* 300 KB through a 64 KiB pipe: one read part, at least five short reads */
	struct feeder f = { .len = 300000, .piece = 1000 };
	uint8_t *buf = calloc(1, f.len);
	size_t bad = 0;
	pthread_t t;
	int p[2], rc;

	TH_CHECK(buf != NULL && pipe(p) == 0);
	if (buf == NULL)
		return;
	f.fd = p[1];
	pthread_create(&t, NULL, feed, &f);
	rc = tg_file_read_fd(p[0], buf, f.len);
	pthread_join(t, NULL);
	close(p[0]);
	TH_CHECK_MSG(rc == 0, "rc %d", rc);
	for (size_t i = 0; i < f.len; i++)
		bad += buf[i] != pattern(i);
	TH_CHECK_MSG(bad == 0, "%zu bytes differ", bad);
	free(buf);
}

static void
test_file_ending_early_is_an_error(void)
{
	struct feeder f = { .len = 1000, .piece = 1000 };
	uint8_t buf[5000];
	pthread_t t;
	int p[2], rc;

	TH_CHECK(pipe(p) == 0);
	f.fd = p[1];
	pthread_create(&t, NULL, feed, &f);
	rc = tg_file_read_fd(p[0], buf, sizeof(buf));	/* 1000 bytes, then end of file */
	pthread_join(t, NULL);
	close(p[0]);
	TH_CHECK_MSG(rc == -EIO, "rc %d", rc);
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tg_file_XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	TH_RUN(test_parts_arrive_whole_and_in_place);
	TH_RUN(test_short_reads_are_queued_again);
	TH_RUN(test_file_ending_early_is_an_error);
	{
		char cmd[96];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TH_DONE();
}
