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

/* Queue reads of the file's chunks, keeping up to TG_FILE_QD in flight, until all are in. */
static int
tg_file_read_uring(int fd, uint8_t *buf, size_t len)
{
	struct io_uring ring;
	size_t next = 0, done = 0;
	unsigned inflight = 0;
	int rc;

	rc = io_uring_queue_init(TG_FILE_QD, &ring, 0);
	if (rc < 0)
		return rc;
	while (done < len) {
		while (inflight < TG_FILE_QD && next < len) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			size_t n = len - next < TG_FILE_CHUNK ? len - next : TG_FILE_CHUNK;

			if (sqe == NULL)
				break;
			io_uring_prep_read(sqe, fd, buf + next, (unsigned)n, next);
			/* The chunk's offset rides in user_data so a short read can be resumed. */
			io_uring_sqe_set_data64(sqe, next);
			next += n;
			inflight++;
		}
		rc = io_uring_submit_and_wait(&ring, 1);
		if (rc < 0)
			goto out;
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			if (cqe->res < 0) {
				rc = cqe->res;
				io_uring_cq_advance(&ring, seen);
				goto out;
			}
			if (cqe->res == 0) {	/* file shrank under us */
				rc = -EIO;
				io_uring_cq_advance(&ring, seen);
				goto out;
			}
			done += (size_t)cqe->res;
			/* A short read: fetch the rest of that chunk synchronously; rare on files. */
			size_t off = (size_t)cqe->user_data + (size_t)cqe->res;
			size_t end = (size_t)cqe->user_data +
				     (len - cqe->user_data < TG_FILE_CHUNK ? len - cqe->user_data :
									     TG_FILE_CHUNK);
			while (off < end) {
				ssize_t r = pread(fd, buf + off, end - off, (off_t)off);

				if (r <= 0) {
					rc = r < 0 ? -errno : -EIO;
					io_uring_cq_advance(&ring, seen);
					goto out;
				}
				off += (size_t)r;
				done += (size_t)r;
			}
			inflight--;
		}
		io_uring_cq_advance(&ring, seen);
	}
	rc = 0;
out:
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
	rc = tg_file_read_uring(fd, buf, (size_t)st.st_size);
	if (rc == -ENOSYS || rc == -EPERM)
		rc = tg_file_read_plain(fd, buf, (size_t)st.st_size);
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
