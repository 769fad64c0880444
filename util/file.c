/* SPDX-License-Identifier: Apache-2.0 */
/* Whole-file I/O. Model files are read through io_uring (DESIGN.md: file and log I/O). */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { TG_FILE_QD = 4, TG_FILE_CHUNK = 1 << 20 };	/* 4 x 1 MiB reads in flight */

/* A read in flight: the part of the buffer it fills, resumed where a short read stopped. */
struct tg_file_io {
	size_t off, end;
};

static void
tg_file_queue(struct io_uring *ring, int fd, uint8_t *buf, struct tg_file_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);	/* never NULL: QD reads at most */

	io_uring_prep_read(sqe, fd, buf + io->off, (unsigned)(io->end - io->off), io->off);
	io_uring_sqe_set_data(sqe, io);
}

/*
 * Read the file's chunks with up to TG_FILE_QD reads in flight, until all are in. A short
 * read is queued again for the rest of its chunk (io_uring-cp's way), in the same submit
 * as the next chunks; a read of 0 bytes means the file shrank under us.
 */
static int
tg_file_read_uring(int fd, uint8_t *buf, size_t len)
{
	struct tg_file_io io[TG_FILE_QD], *idle[TG_FILE_QD];
	struct io_uring ring;
	size_t next = 0, done = 0;
	unsigned n_idle = TG_FILE_QD;
	int rc;

	rc = io_uring_queue_init(TG_FILE_QD, &ring, 0);
	if (rc < 0)
		return rc;
	for (unsigned i = 0; i < TG_FILE_QD; i++)
		idle[i] = &io[i];
	while (done < len) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		while (n_idle > 0 && next < len) {
			struct tg_file_io *r = idle[--n_idle];

			r->off = next;
			r->end = len - next < TG_FILE_CHUNK ? len : next + TG_FILE_CHUNK;
			next = r->end;
			tg_file_queue(&ring, fd, buf, r);
		}
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			goto out_drain;
		rc = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			struct tg_file_io *r = io_uring_cqe_get_data(cqe);

			seen++;
			if (cqe->res == 0 ||
			    (cqe->res < 0 && cqe->res != -EINTR && cqe->res != -EAGAIN)) {
				/* 0: the file shrank under us */
				rc = cqe->res < 0 ? cqe->res : -EIO;
				idle[n_idle++] = r;	/* nothing of it in flight any more */
				break;
			}
			if (cqe->res > 0) {
				r->off += (size_t)cqe->res;
				done += (size_t)cqe->res;
			}
			if (r->off < r->end)	/* short (or interrupted): the rest, queued */
				tg_file_queue(&ring, fd, buf, r);
			else
				idle[n_idle++] = r;
		}
		io_uring_cq_advance(&ring, seen);
		if (rc < 0)
			goto out_drain;
	}
	io_uring_queue_exit(&ring);
	return 0;

out_drain:
	/* Reads still in flight write into buf, which the caller frees: wait for them (each
	 * read not idle has one SQE out, submitted or not). */
	for (unsigned out = TG_FILE_QD - n_idle; out > 0;) {
		struct io_uring_cqe *cqe;
		int r = io_uring_submit_and_wait(&ring, 1);

		if (r < 0 && r != -EINTR)
			break;	/* the ring is broken: nothing more to wait for */
		while (out > 0 && io_uring_peek_cqe(&ring, &cqe) == 0) {
			io_uring_cqe_seen(&ring, cqe);
			out--;
		}
	}
	io_uring_queue_exit(&ring);
	return rc;
}

static int
tg_file_read_plain(int fd, uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t r = pread(fd, buf + off, len - off, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		off += (size_t)r;
	}
	return 0;
}

int
tg_file_read_fd(int fd, void *buf, size_t len)
{
	int rc = tg_file_read_uring(fd, buf, len);

	if (rc == -ENOSYS || rc == -EPERM)	/* io_uring disabled (seccomp, sysctl) */
		rc = tg_file_read_plain(fd, buf, len);
	return rc;
}

int
tg_file_read(const char *path, size_t max_bytes, uint8_t **out, size_t *len, struct tg_err *err)
{
	struct stat st;
	uint8_t *buf;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tg_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = tg_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = tg_err_set(err, -EINVAL, "%s: not a regular file", path);
		goto out_close;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		rc = tg_err_set(err, -EFBIG, "%s: %lld bytes, limit is %zu", path,
				(long long)st.st_size, max_bytes);
		goto out_close;
	}
	buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (buf == NULL) {
		rc = tg_err_set(err, -ENOMEM, "%s: out of memory", path);
		goto out_close;
	}
	rc = tg_file_read_fd(fd, buf, (size_t)st.st_size);
	if (rc < 0) {
		tg_err_set(err, rc, "%s: read: %s", path, strerror(-rc));
		goto out_free;
	}
	*out = buf;
	*len = (size_t)st.st_size;
	close(fd);
	return 0;

out_free:
	free(buf);
out_close:
	close(fd);
	return rc;
}

int
tg_file_write(const char *path, const void *buf, size_t len, struct tg_err *err)
{
	const uint8_t *p = buf;
	size_t off = 0;
	int fd, rc = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return tg_err_set(err, -errno, "%s: %s", path, strerror(errno));
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = tg_err_set(err, -errno, "%s: write: %s", path, strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	if (close(fd) < 0 && rc == 0)
		rc = tg_err_set(err, -errno, "%s: close: %s", path, strerror(errno));
	return rc;
}
