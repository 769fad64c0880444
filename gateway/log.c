/*
 * Access and event logs. Producers (RX lcores, scheduler workers) put fixed-size records in
 * their own single-producer ring and never wait; one writer thread formats them and writes
 * with io_uring, so no producer ever blocks on a disk. A full ring drops and counts.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
	GW_LOG_EVENT_LEN = 200,		/* bytes of one event line */
	GW_LOG_BUF = 1 << 16,		/* bytes formatted per write */
	GW_LOG_TICK_US = 2000,		/* writer's sleep when the rings are empty */
};

struct gw_log_rec {
	uint8_t kind;			/* 0 access, 1 event */
	union {
		struct gw_access_rec a;
		char ev[GW_LOG_EVENT_LEN];
	} u;
};

struct gw_log_ring {
	_Atomic uint64_t head;		/* written by the producer */
	char pad1[56];
	_Atomic uint64_t tail;		/* written by the writer */
	char pad2[56];
	struct gw_log_rec *rec;
};

struct gw_log {
	char access_path[GW_PATH_MAX], event_path[GW_PATH_MAX];
	int fd_access, fd_event;	/* -1: none / stderr */
	uint64_t off_access, off_event;
	struct gw_log_ring *rings;
	unsigned n_rings, mask;
	unsigned fsync_ms;
	struct io_uring ring;
	pthread_t thr;
	_Atomic bool stop, reopen;
	_Atomic uint64_t written, dropped, write_errors, fsyncs, reopens;
	char *buf;
};

static int
gw_log_open_file(const char *path, int *fd, uint64_t *off, struct tg_err *err)
{
	*fd = -1;
	*off = 0;
	if (path[0] == '\0')
		return 0;
	*fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (*fd < 0)
		return tg_err_set(err, -errno, "log %s: %s", path, strerror(errno));
	*off = (uint64_t)lseek(*fd, 0, SEEK_END);
	return 0;
}

/* Write len bytes with io_uring at the file's end; short writes are resumed. */
static void
gw_log_write(struct gw_log *l, int fd, uint64_t *off, const char *p, size_t len)
{
	if (fd < 0) {	/* the event log defaults to stderr: a plain write is fine there */
		if (write(STDERR_FILENO, p, len) < 0)
			atomic_fetch_add(&l->write_errors, 1);
		return;
	}
	while (len > 0) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
		struct io_uring_cqe *cqe;
		int res;

		if (sqe == NULL)
			break;
		io_uring_prep_write(sqe, fd, p, (unsigned)len, *off);
		if (io_uring_submit_and_wait(&l->ring, 1) < 0 ||
		    io_uring_wait_cqe(&l->ring, &cqe) < 0) {
			atomic_fetch_add(&l->write_errors, 1);
			return;
		}
		res = cqe->res;
		io_uring_cqe_seen(&l->ring, cqe);
		if (res <= 0) {
			atomic_fetch_add(&l->write_errors, 1);
			return;
		}
		*off += (uint64_t)res;
		p += res;
		len -= (size_t)res;
	}
}

static void
gw_log_fsync(struct gw_log *l, int fd)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;

	if (fd < 0 || (sqe = io_uring_get_sqe(&l->ring)) == NULL)
		return;
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	if (io_uring_submit_and_wait(&l->ring, 1) >= 0 && io_uring_wait_cqe(&l->ring, &cqe) == 0) {
		if (cqe->res < 0)
			atomic_fetch_add(&l->write_errors, 1);
		io_uring_cqe_seen(&l->ring, cqe);
		atomic_fetch_add(&l->fsyncs, 1);
	}
}

static size_t
gw_log_format(const struct gw_log_rec *r, char *out, size_t cap)
{
	const struct gw_access_rec *a = &r->u.a;
	time_t sec;
	struct tm tm;
	char ts[32];
	int n;

	if (r->kind == 1) {
		n = snprintf(out, cap, "%s\n", r->u.ev);
		return n > 0 && (size_t)n < cap ? (size_t)n : 0;
	}
	sec = (time_t)(a->t_ns / 1000000000ull);
	gmtime_r(&sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(out, cap,
		     "{\"time\":\"%s.%06lluZ\",\"client\":%u,\"request\":%u,\"model\":%u,"
		     "\"split\":%u,\"dtype\":\"%s\",\"bytes\":%u,\"batch\":%u,\"queue_us\":%u,"
		     "\"compute_us\":%u,\"status\":%u,\"exit\":%d}\n",
		     ts, (unsigned long long)(a->t_ns % 1000000000ull / 1000), a->client_id,
		     a->request_id, a->model, a->split, tg_dtype_name((enum tg_dtype)a->dtype),
		     a->bytes, a->batch, a->queue_us, a->compute_us, a->status,
		     a->exit_taken == 0xFF ? -1 : a->exit_taken);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Drain every ring once; returns records written. */
static unsigned
gw_log_drain(struct gw_log *l)
{
	size_t na = 0, ne = 0;
	char *ev = l->buf + GW_LOG_BUF;	/* second half: event lines */
	unsigned n = 0;

	for (unsigned i = 0; i < l->n_rings; i++) {
		struct gw_log_ring *rg = &l->rings[i];
		uint64_t t = atomic_load_explicit(&rg->tail, memory_order_relaxed);
		/* acquire: the record's bytes are visible once head says so */
		uint64_t h = atomic_load_explicit(&rg->head, memory_order_acquire);

		for (; t != h; t++) {
			const struct gw_log_rec *r = &rg->rec[t & l->mask];
			size_t room;

			if (na + 512 > GW_LOG_BUF) {
				gw_log_write(l, l->fd_access, &l->off_access, l->buf, na);
				na = 0;
			}
			if (ne + 512 > GW_LOG_BUF) {
				gw_log_write(l, l->fd_event, &l->off_event, ev, ne);
				ne = 0;
			}
			if (r->kind == 0) {
				room = gw_log_format(r, l->buf + na, GW_LOG_BUF - na);
				na += room;
			} else {
				room = gw_log_format(r, ev + ne, GW_LOG_BUF - ne);
				ne += room;
			}
			n++;
		}
		/* release: the producer may reuse the slots only after we read them */
		atomic_store_explicit(&rg->tail, t, memory_order_release);
	}
	if (na)
		gw_log_write(l, l->fd_access, &l->off_access, l->buf, na);
	if (ne)
		gw_log_write(l, l->fd_event, &l->off_event, ev, ne);
	atomic_fetch_add(&l->written, n);
	return n;
}

static void *
gw_log_writer(void *arg)
{
	struct gw_log *l = arg;
	uint64_t last_sync = tg_now_ns();

	for (;;) {
		bool stopping = atomic_load(&l->stop);
		unsigned n = gw_log_drain(l);

		if (atomic_exchange(&l->reopen, false)) {
			struct tg_err err = { 0 };

			gw_log_fsync(l, l->fd_access);
			gw_log_fsync(l, l->fd_event);
			if (l->fd_access >= 0)
				close(l->fd_access);
			if (l->fd_event >= 0)
				close(l->fd_event);
			if (gw_log_open_file(l->access_path, &l->fd_access, &l->off_access, &err) < 0 ||
			    gw_log_open_file(l->event_path, &l->fd_event, &l->off_event, &err) < 0)
				atomic_fetch_add(&l->write_errors, 1);
			atomic_fetch_add(&l->reopens, 1);
		}
		if (tg_now_ns() - last_sync >= (uint64_t)l->fsync_ms * 1000000ull) {
			gw_log_fsync(l, l->fd_access);
			gw_log_fsync(l, l->fd_event);
			last_sync = tg_now_ns();
		}
		if (stopping && n == 0)
			break;
		if (n == 0)
			usleep(GW_LOG_TICK_US);
	}
	gw_log_fsync(l, l->fd_access);
	gw_log_fsync(l, l->fd_event);
	return NULL;
}

int
gw_log_open(struct gw_log **out, const char *access_path, const char *event_path,
	    unsigned n_producers, unsigned ring_size, unsigned fsync_ms, struct tg_err *err)
{
	struct gw_log *l;
	int rc;

	if (n_producers < 1 || n_producers > 256 || ring_size < 16 || ring_size > (1u << 22) ||
	    (ring_size & (ring_size - 1)))
		return tg_err_set(err, -EINVAL, "log: 1..256 producers, ring a power of two >= 16");
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	l->fd_access = l->fd_event = -1;
	snprintf(l->access_path, sizeof(l->access_path), "%s", access_path ? access_path : "");
	snprintf(l->event_path, sizeof(l->event_path), "%s", event_path ? event_path : "");
	l->n_rings = n_producers;
	l->mask = ring_size - 1;
	l->fsync_ms = fsync_ms ? fsync_ms : 1000;
	l->rings = calloc(n_producers, sizeof(*l->rings));
	l->buf = malloc(2 * GW_LOG_BUF);
	if (l->rings == NULL || l->buf == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < n_producers; i++) {
		l->rings[i].rec = calloc(ring_size, sizeof(struct gw_log_rec));
		if (l->rings[i].rec == NULL) {
			rc = tg_err_set(err, -ENOMEM, "log: out of memory for %u records", ring_size);
			goto fail;
		}
	}
	rc = gw_log_open_file(l->access_path, &l->fd_access, &l->off_access, err);
	if (rc == 0)
		rc = gw_log_open_file(l->event_path, &l->fd_event, &l->off_event, err);
	if (rc < 0)
		goto fail;
	rc = io_uring_queue_init(8, &l->ring, 0);
	if (rc < 0) {
		tg_err_set(err, rc, "log: io_uring: %s", strerror(-rc));
		goto fail;
	}
	rc = pthread_create(&l->thr, NULL, gw_log_writer, l);
	if (rc != 0) {
		io_uring_queue_exit(&l->ring);
		rc = tg_err_set(err, -rc, "log: writer thread: %s", strerror(rc));
		goto fail;
	}
	*out = l;
	return 0;

fail:
	if (l->fd_access >= 0)
		close(l->fd_access);
	if (l->fd_event >= 0)
		close(l->fd_event);
	for (unsigned i = 0; l->rings && i < n_producers; i++)
		free(l->rings[i].rec);
	free(l->rings);
	free(l->buf);
	free(l);
	return rc;
}

static struct gw_log_rec *
gw_log_slot(struct gw_log *l, unsigned p, uint64_t *h)
{
	struct gw_log_ring *rg;

	if (p >= l->n_rings)
		return NULL;
	rg = &l->rings[p];
	*h = atomic_load_explicit(&rg->head, memory_order_relaxed);
	/* acquire: pairs with the writer's release of tail, so the slot is free to reuse */
	if (*h - atomic_load_explicit(&rg->tail, memory_order_acquire) > l->mask) {
		atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
		return NULL;
	}
	return &rg->rec[*h & l->mask];
}

static void
gw_log_commit(struct gw_log *l, unsigned p, uint64_t h)
{
	/* release: the record's bytes before the new head */
	atomic_store_explicit(&l->rings[p].head, h + 1, memory_order_release);
}

bool
gw_log_access(struct gw_log *l, unsigned p, const struct gw_access_rec *r)
{
	uint64_t h;
	struct gw_log_rec *s = gw_log_slot(l, p, &h);

	if (s == NULL)
		return false;
	s->kind = 0;
	s->u.a = *r;
	gw_log_commit(l, p, h);
	return true;
}

bool
gw_log_event(struct gw_log *l, unsigned p, const char *fmt, ...)
{
	uint64_t h;
	struct gw_log_rec *s = gw_log_slot(l, p, &h);
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (s == NULL)
		return false;
	s->kind = 1;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = (int)strftime(s->u.ev, GW_LOG_EVENT_LEN, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	va_start(ap, fmt);
	vsnprintf(s->u.ev + n, GW_LOG_EVENT_LEN - (size_t)n, fmt, ap);
	va_end(ap);
	gw_log_commit(l, p, h);
	return true;
}

void
gw_log_reopen(struct gw_log *l)
{
	atomic_store(&l->reopen, true);
}

void
gw_log_stats(const struct gw_log *l, struct gw_log_stats *out)
{
	out->written = atomic_load(&l->written);
	out->dropped = atomic_load(&l->dropped);
	out->write_errors = atomic_load(&l->write_errors);
	out->fsyncs = atomic_load(&l->fsyncs);
	out->reopens = atomic_load(&l->reopens);
}

void
gw_log_close(struct gw_log *l)
{
	if (l == NULL)
		return;
	atomic_store(&l->stop, true);
	pthread_join(l->thr, NULL);
	io_uring_queue_exit(&l->ring);
	if (l->fd_access >= 0)
		close(l->fd_access);
	if (l->fd_event >= 0)
		close(l->fd_event);
	for (unsigned i = 0; i < l->n_rings; i++)
		free(l->rings[i].rec);
	free(l->rings);
	free(l->buf);
	free(l);
}
