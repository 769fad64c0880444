/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access and event logs. Producers (RX lcores, scheduler workers, the main thread) put
 * fixed-size records in their own single-producer ring and never wait; one writer thread
 * formats them into a buffer per log and writes both buffers with io_uring, each write with a
 * linked fdatasync when one is due, in one submit (liburing's io_uring-cp queues and links
 * the same way). A record is counted written once every byte of it is on the file; a write
 * that fails cuts the file back to its last whole line, so no reader ever sees a torn JSON
 * line, and the records it carried are counted lost by reason (gateway.h: the life of a
 * record).
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
	GW_LOG_EVENT_LEN = 200,		/* bytes of one event line */
	GW_LOG_BUF = 1 << 16,		/* bytes formatted per log per write */
	GW_LOG_LINE_MAX = 512,		/* longest formatted line (access: ~260 bytes) */
	GW_LOG_LINES = GW_LOG_BUF / 16,	/* lines per buffer (an event line is >= 22 bytes) */
	GW_LOG_NOTE_ROOM = 8 * GW_LOG_LINE_MAX,	/* event buffer kept for the writer's notes */
	GW_LOG_TICK_MS = 2,		/* writer's sleep when the rings are empty, doubling */
	GW_LOG_IDLE_TICK_MS = 32,	/* up to this while they stay empty (a 4096-record ring
					 * then holds 128k records/s per producer) */
	GW_LOG_QD = 8,			/* SQEs: a write and an fdatasync per log */
	GW_LOG_SUBMIT_TRIES = 100,	/* submits refused (EAGAIN, EBUSY) before giving up */
	GW_LOG_IO_ROUNDS = 64,		/* submits of one gw_log_io(): short writes resumed */
};

static const char *const gw_log_kind_name[GW_LOG__KINDS] = { "access", "event" };

static const char *const gw_log_loss_label[GW_LOG_LOSS__COUNT] = {
#define _(sym, label, help) label,
	GW_LOG_FOREACH_LOSS(_)
#undef _
};

struct gw_log_rec {
	uint8_t kind;			/* enum gw_log_kind */
	union {
		struct gw_access_rec a;
		char ev[GW_LOG_EVENT_LEN];
	} u;
};

struct gw_log_ring {
	/* the producer's line */
	_Alignas(64) _Atomic uint64_t head;
	_Atomic uint64_t queued[GW_LOG__KINDS];	/* records queued, by log */
	_Atomic uint64_t full[GW_LOG__KINDS];	/* records refused: ring full */
	/* the writer's line */
	_Alignas(64) _Atomic uint64_t tail;	/* records taken into a buffer */
	_Atomic uint64_t done;			/* of those, written or counted lost */
	struct gw_log_rec *rec;
};

/* One log file and what the writer holds for it. Writer thread only, but the counters. */
struct gw_log_file {
	char path[GW_PATH_MAX];		/* "": none (access) or stderr (event) */
	int fd;				/* -1: no access log */
	bool own;			/* opened here: cut back, fdatasync, reopen, close */
	bool dirty;			/* written since its last fdatasync */
	char *buf;			/* formatted lines: [0, done) on the file, up to len */
	size_t len, done;
	uint32_t *ends;			/* end offset of each line in buf */
	unsigned n, n_done;		/* lines in buf; of those, counted written */
	int fail_err;			/* errno of the failure episode under way, 0: none */
	uint64_t ep_lost;		/* records lost in that episode */
	_Atomic uint64_t notes;		/* the writer's own lines (event log) */
	_Atomic uint64_t written, lost[GW_LOG_LOSS__COUNT], write_errors, reopen_failures;
	_Atomic bool failing;
};

struct gw_log {
	struct gw_log_file f[GW_LOG__KINDS];
	bool has_access;		/* set at open, read by producers */
	struct gw_log_ring *rings;
	unsigned n_rings, mask;
	unsigned fsync_ms;
	uint64_t last_sync_ns;
	bool sync_failing;		/* an fdatasync failed; noted once until one succeeds */
	struct io_uring ring;
	bool ring_up;
	pthread_t thr;
	pthread_mutex_t mu;		/* writer's sleep and flush waits; producers never take it */
	pthread_cond_t wake;		/* to the writer: stop, reopen or a flush asked */
	pthread_cond_t cycled;		/* to flush waiters: the writer finished a cycle */
	unsigned flush_waiters;		/* under mu */
	_Atomic bool stop, reopen;
	_Atomic uint64_t fsyncs, fsync_errors, reopens;
	_Atomic uint64_t io_submits, io_sqes, io_both;	/* io_uring submits, SQEs they
						 * carried, those with both logs' writes */
	_Atomic uint64_t no_ring[GW_LOG__KINDS];	/* records of producers without a ring */
};

/* ---- formatting ---- */

/*
 * One access record as one JSON line, through jansson as every JSON the gateway writes: the
 * record holds only numbers and names from fixed tables today, but a field added later
 * (a model name, a client string) is escaped by the library, never by hand. Formatting
 * here, on the writer thread, keeps jansson's allocations off the producers' paths.
 */
static size_t
gw_log_format_access(const struct gw_access_rec *a, char *out, size_t cap)
{
	time_t sec = (time_t)(a->t_ns / 1000000000ull);
	struct tm tm;
	char ts[48];
	json_t *o;
	size_t n;

	gmtime_r(&sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%06lluZ",
		 (unsigned long long)(a->t_ns % 1000000000ull / 1000));
	o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		      "time", ts,
		      "client", (json_int_t)a->client_id, "request", (json_int_t)a->request_id,
		      "model", (json_int_t)a->model, "split", (json_int_t)a->split,
		      "dtype", tg_dtype_name((enum tg_dtype)a->dtype), "bytes", (json_int_t)a->bytes,
		      "batch", (json_int_t)a->batch, "queue_us", (json_int_t)a->queue_us,
		      "compute_us", (json_int_t)a->compute_us, "status", (json_int_t)a->status,
		      "exit", (json_int_t)(a->exit_taken == 0xFF ? -1 : a->exit_taken),
		      /* the variant asked for, and what answered (degrade instead of shed) */
		      "variant", (json_int_t)a->variant, "ran_variant", (json_int_t)a->ran_variant,
		      "ran_split", (json_int_t)a->ran_split);
	n = o != NULL && cap > 1 ? json_dumpb(o, out, cap - 1, JSON_COMPACT) : 0;
	json_decref(o);
	if (n == 0 || n >= cap - 1)	/* no room, or jansson could not allocate */
		return 0;
	out[n] = '\n';
	return n + 1;
}

static size_t
gw_log_format(const struct gw_log_rec *r, char *out, size_t cap)
{
	int n;

	if (r->kind != GW_LOG_EVENT)
		return gw_log_format_access(&r->u.a, out, cap);
	n = snprintf(out, cap, "%.*s\n", GW_LOG_EVENT_LEN, r->u.ev);
	if (n <= 0 || (size_t)n >= cap)
		return 0;
	for (int i = 0; i < n - 1; i++)	/* one event, one line */
		if (out[i] == '\n' || out[i] == '\r')
			out[i] = ' ';
	return (size_t)n;
}

static void
gw_log_inc(_Atomic uint64_t *c, uint64_t n)
{
	/* one writing thread per counter: a plain add, atomic only for the readers */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static bool
gw_log_room(const struct gw_log_file *f, size_t keep)
{
	return f->n < GW_LOG_LINES && f->len + GW_LOG_LINE_MAX + keep <= GW_LOG_BUF;
}

static void
gw_log_line_added(struct gw_log_file *f, size_t n)
{
	f->len += n;
	f->ends[f->n++] = (uint32_t)f->len;
}

/*
 * A line of the writer's own (a failure episode, a reopen) into the event log's buffer: it
 * goes out with the next write. When the event log itself is failing, it also goes to
 * stderr: the operator hears of it somewhere. Writer thread only.
 */
static void __attribute__((format(printf, 2, 3)))
gw_log_note(struct gw_log *l, const char *fmt, ...)
{
	struct gw_log_file *f = &l->f[GW_LOG_EVENT];
	struct gw_log_rec r = { .kind = GW_LOG_EVENT };
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(r.u.ev, GW_LOG_EVENT_LEN, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	va_start(ap, fmt);
	vsnprintf(r.u.ev + n, GW_LOG_EVENT_LEN - n, fmt, ap);
	va_end(ap);
	gw_log_inc(&f->notes, 1);
	if (!gw_log_room(f, 0)) {	/* more than 8 notes in a cycle: cannot happen */
		gw_log_inc(&f->lost[GW_LOG_LOSS_RING_FULL], 1);
		return;
	}
	n = gw_log_format(&r, f->buf + f->len, GW_LOG_BUF - f->len);
	/* best effort: stderr is the last resort */
	if (f->fail_err != 0 && f->fd != STDERR_FILENO && write(STDERR_FILENO, f->buf + f->len, n) < 0)
		gw_log_inc(&f->write_errors, 1);
	gw_log_line_added(f, n);
}

/* ---- writing ---- */

static enum gw_log_loss
gw_log_loss_of(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EFBIG ? GW_LOG_LOSS_DISK_FULL
							      : GW_LOG_LOSS_WRITE_ERROR;
}

static void
gw_log_buf_reset(struct gw_log_file *f)
{
	f->len = f->done = 0;
	f->n = f->n_done = 0;
}

/*
 * A write of f failed with err: cut the file back to its last whole line (the failed write's
 * predecessors in this buffer may have left part of a line there), count the lines not
 * written as lost, and say so once per episode.
 */
static void
gw_log_fail(struct gw_log *l, struct gw_log_file *f, int err)
{
	enum gw_log_loss why = gw_log_loss_of(err);
	size_t whole = f->n_done ? f->ends[f->n_done - 1] : 0;
	size_t torn = f->done - whole;
	unsigned lost = f->n - f->n_done;
	bool cut = torn == 0;
	struct stat st;

	gw_log_inc(&f->write_errors, 1);
	/* Only we append to the file: its last torn bytes are ours. */
	if (torn > 0 && f->own && fstat(f->fd, &st) == 0 && (uint64_t)st.st_size >= torn)
		cut = ftruncate(f->fd, st.st_size - (off_t)torn) == 0;
	gw_log_inc(&f->lost[why], lost);
	f->ep_lost += lost;
	gw_log_buf_reset(f);
	if (f->fail_err == 0) {
		f->fail_err = err;
		atomic_store(&f->failing, true);
		gw_log_note(l, "log: %s log %s: write failed: %s; its records are dropped and "
			    "counted (tailgate_log_dropped_total) until a write succeeds",
			    gw_log_kind_name[f - l->f], f->path[0] ? f->path : "(stderr)",
			    strerror(err));
	}
	if (!cut)
		gw_log_note(l, "log: %s log %s: could not cut %zu bytes of a torn line: %s",
			    gw_log_kind_name[f - l->f], f->path[0] ? f->path : "(stderr)", torn,
			    strerror(errno));
}

/* res bytes of f's pending write are on the file. */
static void
gw_log_wrote(struct gw_log *l, struct gw_log_file *f, size_t res)
{
	unsigned n0 = f->n_done;

	f->done += res;
	f->dirty = true;
	while (f->n_done < f->n && f->ends[f->n_done] <= f->done)
		f->n_done++;
	gw_log_inc(&f->written, f->n_done - n0);
	if (f->done < f->len)
		return;		/* short: the rest goes in the next submit */
	gw_log_buf_reset(f);
	if (f->fail_err != 0) {
		f->fail_err = 0;
		atomic_store(&f->failing, false);
		gw_log_note(l, "log: %s log %s: writing again; %llu record(s) lost while it failed",
			    gw_log_kind_name[f - l->f], f->path[0] ? f->path : "(stderr)",
			    (unsigned long long)f->ep_lost);
		f->ep_lost = 0;
	}
}

static void
gw_log_synced(struct gw_log *l, struct gw_log_file *f, int res, bool *want)
{
	if (res == -ECANCELED)		/* its write was short or failed: asked again */
		return;
	*want = false;
	if (res < 0) {
		gw_log_inc(&l->fsync_errors, 1);
		if (!l->sync_failing)
			gw_log_note(l, "log: %s log %s: fdatasync failed: %s",
				    gw_log_kind_name[f - l->f], f->path, strerror(-res));
		l->sync_failing = true;
		return;
	}
	if (f->done == f->len)
		f->dirty = false;
	gw_log_inc(&l->fsyncs, 1);
	l->sync_failing = false;
}

/* user_data of an SQE: the log, and whether it is the fdatasync */
#define GW_LOG_UD(kind, sync) ((uint64_t)(kind) * 2u + (sync))

/*
 * Submit n queued SQEs and reap their n completions. A submit the kernel refuses outright
 * leaves SQEs we can no longer account for: the ring is rebuilt (dropping them) and what the
 * buffers held is lost, counted.
 */
static void
gw_log_submit(struct gw_log *l, unsigned n, unsigned writes, bool want[GW_LOG__KINDS])
{
	int rc;

	for (unsigned tries = 0;; tries++) {
		rc = io_uring_submit(&l->ring);
		if (rc >= 0 || (rc != -EAGAIN && rc != -EBUSY && rc != -EINTR) ||
		    tries == GW_LOG_SUBMIT_TRIES)
			break;
		usleep(1000);
	}
	if (rc < (int)n) {
		io_uring_queue_exit(&l->ring);
		l->ring_up = io_uring_queue_init(GW_LOG_QD, &l->ring, 0) == 0;
		for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
			want[k] = false;
			if (l->f[k].done < l->f[k].len)
				gw_log_fail(l, &l->f[k], rc < 0 ? -rc : EIO);
		}
		return;
	}
	gw_log_inc(&l->io_submits, 1);
	gw_log_inc(&l->io_sqes, n);
	if (writes == GW_LOG__KINDS)
		gw_log_inc(&l->io_both, 1);
	for (unsigned got = 0; got < n;) {
		struct io_uring_cqe *cqe;
		uint64_t ud;
		int res;

		rc = io_uring_wait_cqe(&l->ring, &cqe);
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			break;	/* cannot happen with a submitted SQE; the ring is ours */
		ud = io_uring_cqe_get_data64(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&l->ring, cqe);
		got++;
		if (ud % 2 == 1)
			gw_log_synced(l, &l->f[ud / 2], res, &want[ud / 2]);
		else if (res < 0)
			gw_log_fail(l, &l->f[ud / 2], -res);
		else if (res == 0)	/* no progress on a regular file: as good as an error */
			gw_log_fail(l, &l->f[ud / 2], EIO);
		else
			gw_log_wrote(l, &l->f[ud / 2], (size_t)res);
	}
}

/*
 * Write what both buffers hold: each log's write, with a linked fdatasync behind it when
 * sync, in one submit; a short write is submitted again from where it stopped. Returns
 * when both buffers are empty (written, or failed and counted).
 */
static void
gw_log_io(struct gw_log *l, bool sync)
{
	bool want[GW_LOG__KINDS];

	for (unsigned k = 0; k < GW_LOG__KINDS; k++)
		want[k] = sync && l->f[k].own && (l->f[k].dirty || l->f[k].len > 0);
	for (unsigned round = 0;; round++) {
		unsigned n = 0, writes = 0;

		if (round == GW_LOG_IO_ROUNDS)	/* no end of short writes: give up, counted */
			for (unsigned k = 0; k < GW_LOG__KINDS; k++)
				if (l->f[k].done < l->f[k].len)
					gw_log_fail(l, &l->f[k], EIO);

		for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
			struct gw_log_file *f = &l->f[k];
			struct io_uring_sqe *sqe;

			if (f->done < f->len && (f->fd < 0 || !l->ring_up)) {
				gw_log_fail(l, f, EBADF);	/* no file, or no ring */
				continue;
			}
			if (f->done < f->len) {
				sqe = io_uring_get_sqe(&l->ring);
				/* offset -1: the file's position; O_APPEND files append anyway */
				io_uring_prep_write(sqe, f->fd, f->buf + f->done,
						    (unsigned)(f->len - f->done), (uint64_t)-1);
				io_uring_sqe_set_data64(sqe, GW_LOG_UD(k, 0));
				if (want[k])	/* the fdatasync runs once the write is whole */
					io_uring_sqe_set_flags(sqe, IOSQE_IO_LINK);
				n++;
				writes++;
			}
			if (want[k] && l->ring_up) {
				sqe = io_uring_get_sqe(&l->ring);
				io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
				io_uring_sqe_set_data64(sqe, GW_LOG_UD(k, 1));
				n++;
			}
		}
		if (n == 0)
			return;
		/* A note added to the event buffer by a failure goes out in the next round. */
		gw_log_submit(l, n, writes, want);
	}
}

/*
 * Take records from every ring into the buffers, until the rings are empty or a buffer is
 * full (*more then). @return records taken.
 */
static unsigned
gw_log_take(struct gw_log *l, bool *more)
{
	unsigned n = 0;

	*more = false;
	for (unsigned i = 0; i < l->n_rings; i++) {
		struct gw_log_ring *rg = &l->rings[i];
		uint64_t t = atomic_load_explicit(&rg->tail, memory_order_relaxed);
		/* acquire: the record's bytes are visible once head says so */
		uint64_t h = atomic_load_explicit(&rg->head, memory_order_acquire);

		for (; t != h; t++) {
			const struct gw_log_rec *r = &rg->rec[t & l->mask];
			struct gw_log_file *f = &l->f[r->kind];
			size_t len;

			if (!gw_log_room(f, r->kind == GW_LOG_EVENT ? GW_LOG_NOTE_ROOM : 0)) {
				*more = true;
				break;
			}
			len = gw_log_format(r, f->buf + f->len, GW_LOG_BUF - f->len);
			if (len == 0)	/* lines are bounded: only when jansson cannot allocate */
				gw_log_inc(&f->lost[GW_LOG_LOSS_WRITE_ERROR], 1);
			else
				gw_log_line_added(f, len);
			n++;
		}
		/* release: the producer may reuse the slots only after we read them */
		atomic_store_explicit(&rg->tail, t, memory_order_release);
	}
	return n;
}

/* ---- reopen ---- */

static int
gw_log_open_fd(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	return fd < 0 ? -errno : fd;
}

/* Reopen both logs; a log that cannot be reopened keeps the file it had. Writer only. */
static void
gw_log_reopen_files(struct gw_log *l)
{
	gw_log_io(l, true);	/* what was taken before the reopen ends in the old files */
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		struct gw_log_file *f = &l->f[k];
		int fd;

		if (!f->own)
			continue;
		fd = gw_log_open_fd(f->path);
		if (fd < 0) {
			gw_log_inc(&f->reopen_failures, 1);
			gw_log_note(l, "log: %s log %s: reopen failed: %s; still writing to the "
				    "file open before", gw_log_kind_name[k], f->path, strerror(-fd));
			continue;
		}
		close(f->fd);
		f->fd = fd;
		f->dirty = false;
	}
	gw_log_inc(&l->reopens, 1);
}

/* ---- the writer ---- */

static void
gw_log_summary(struct gw_log *l)
{
	struct gw_log_stats st;
	char part[GW_LOG__KINDS][128];

	gw_log_stats(l, &st);
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		const uint64_t *lo = st.lost_by[k];

		snprintf(part[k], sizeof(part[k]),
			 "%llu produced, %llu written, %llu/%llu/%llu/%llu lost",
			 (unsigned long long)st.produced_by[k], (unsigned long long)st.written_by[k],
			 (unsigned long long)lo[GW_LOG_LOSS_RING_FULL],
			 (unsigned long long)lo[GW_LOG_LOSS_DISK_FULL],
			 (unsigned long long)lo[GW_LOG_LOSS_WRITE_ERROR],
			 (unsigned long long)lo[GW_LOG_LOSS_NO_RING]);
	}
	/* Counts before this line; lost: ring full/disk full/write error/no ring. */
	gw_log_note(l, "log: closed: access %s; event %s", part[GW_LOG_ACCESS], part[GW_LOG_EVENT]);
}

static void *
gw_log_writer(void *arg)
{
	struct gw_log *l = arg;
	unsigned tick_ms = GW_LOG_TICK_MS / 2;	/* the first empty pass waits one tick */
	sigset_t all;

	/* A signal caught here would cut a wait short; the daemon's handlers run elsewhere. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	l->last_sync_ns = tg_now_ns();
	for (;;) {
		bool stopping = atomic_load(&l->stop), more, sync;
		unsigned n = gw_log_take(l, &more);
		uint64_t now = tg_now_ns();

		sync = now - l->last_sync_ns >= (uint64_t)l->fsync_ms * 1000000ull;
		gw_log_io(l, sync);
		if (sync)
			l->last_sync_ns = now;
		if (atomic_exchange(&l->reopen, false))
			gw_log_reopen_files(l);
		/* Everything taken so far is written or counted: tell flush waiters. */
		for (unsigned i = 0; i < l->n_rings; i++)
			atomic_store_explicit(&l->rings[i].done,
					      atomic_load_explicit(&l->rings[i].tail,
								   memory_order_relaxed),
					      memory_order_release);
		pthread_mutex_lock(&l->mu);
		if (l->flush_waiters > 0)
			pthread_cond_broadcast(&l->cycled);
		if (stopping && n == 0 && !more) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		/* A flush, reopen or stop signals wake; one that comes before the wait waits
		 * a tick at most. Producers do not signal: the tick doubles while nothing
		 * comes, so an idle gateway's writer wakes about 30 times a second. */
		tick_ms = n != 0 || more ? GW_LOG_TICK_MS / 2
					 : (tick_ms * 2 > GW_LOG_IDLE_TICK_MS ? GW_LOG_IDLE_TICK_MS
									       : tick_ms * 2);
		if (n == 0 && !more && !atomic_load(&l->stop) && !atomic_load(&l->reopen)) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)tick_ms * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&l->wake, &l->mu, &ts);
		}
		pthread_mutex_unlock(&l->mu);
	}
	gw_log_summary(l);
	gw_log_io(l, true);
	return NULL;
}

/* ---- the API ---- */

static void
gw_log_free(struct gw_log *l)
{
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		if (l->f[k].own)
			close(l->f[k].fd);
		free(l->f[k].buf);
		free(l->f[k].ends);
	}
	for (unsigned i = 0; l->rings && i < l->n_rings; i++)
		free(l->rings[i].rec);
	free(l->rings);
	free(l);
}

static int
gw_log_file_init(struct gw_log_file *f, const char *path, int dflt_fd, struct tg_err *err)
{
	snprintf(f->path, sizeof(f->path), "%s", path ? path : "");
	f->fd = dflt_fd;
	f->buf = malloc(GW_LOG_BUF);
	f->ends = malloc(GW_LOG_LINES * sizeof(*f->ends));
	if (f->buf == NULL || f->ends == NULL)
		return tg_err_set(err, -ENOMEM, "log: out of memory");
	if (f->path[0] == '\0')
		return 0;
	f->fd = gw_log_open_fd(f->path);
	if (f->fd < 0)
		return tg_err_set(err, f->fd, "log %s: %s", f->path, strerror(-f->fd));
	f->own = true;
	return 0;
}

int
gw_log_open(struct gw_log **out, const char *access_path, const char *event_path,
	    unsigned n_producers, unsigned ring_size, unsigned fsync_ms, struct tg_err *err)
{
	pthread_condattr_t ca;
	struct gw_log *l;
	int rc;

	if (n_producers < 1 || n_producers > 256 || ring_size < 16 || ring_size > (1u << 22) ||
	    (ring_size & (ring_size - 1)))
		return tg_err_set(err, -EINVAL, "log: 1..256 producers, ring a power of two >= 16");
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return tg_err_set(err, -ENOMEM, "out of memory");
	l->f[GW_LOG_ACCESS].fd = l->f[GW_LOG_EVENT].fd = -1;
	l->n_rings = n_producers;
	l->mask = ring_size - 1;
	l->fsync_ms = fsync_ms ? fsync_ms : 1000;
	l->rings = calloc(n_producers, sizeof(*l->rings));
	if (l->rings == NULL) {
		rc = tg_err_set(err, -ENOMEM, "out of memory");
		goto out_free;
	}
	for (unsigned i = 0; i < n_producers; i++) {
		l->rings[i].rec = calloc(ring_size, sizeof(struct gw_log_rec));
		if (l->rings[i].rec == NULL) {
			rc = tg_err_set(err, -ENOMEM, "log: out of memory for %u records", ring_size);
			goto out_free;
		}
	}
	rc = gw_log_file_init(&l->f[GW_LOG_ACCESS], access_path, -1, err);
	if (rc == 0)
		rc = gw_log_file_init(&l->f[GW_LOG_EVENT], event_path, STDERR_FILENO, err);
	if (rc < 0)
		goto out_free;
	l->has_access = l->f[GW_LOG_ACCESS].fd >= 0;
	rc = io_uring_queue_init(GW_LOG_QD, &l->ring, 0);
	if (rc < 0) {
		tg_err_set(err, rc, "log: io_uring: %s", strerror(-rc));
		goto out_free;
	}
	l->ring_up = true;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->wake, &ca);
	pthread_cond_init(&l->cycled, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&l->thr, NULL, gw_log_writer, l);
	if (rc == 0)
		pthread_setname_np(l->thr, "tg-log");	/* top -H, perf; only a name */
	if (rc != 0) {
		rc = tg_err_set(err, -rc, "log: writer thread: %s", strerror(rc));
		goto out_sync;
	}
	*out = l;
	return 0;

out_sync:
	pthread_cond_destroy(&l->cycled);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->mu);
	io_uring_queue_exit(&l->ring);
out_free:
	gw_log_free(l);
	return rc;
}

static struct gw_log_rec *
gw_log_slot(struct gw_log *l, unsigned p, unsigned kind, uint64_t *h)
{
	struct gw_log_ring *rg;

	if (p >= l->n_rings) {	/* shared by every such thread: a real atomic add */
		atomic_fetch_add_explicit(&l->no_ring[kind], 1, memory_order_relaxed);
		return NULL;
	}
	rg = &l->rings[p];
	*h = atomic_load_explicit(&rg->head, memory_order_relaxed);
	/* acquire: pairs with the writer's release of tail, so the slot is free to reuse */
	if (*h - atomic_load_explicit(&rg->tail, memory_order_acquire) > l->mask) {
		gw_log_inc(&rg->full[kind], 1);
		return NULL;
	}
	return &rg->rec[*h & l->mask];
}

static void
gw_log_commit(struct gw_log *l, unsigned p, unsigned kind, uint64_t h)
{
	gw_log_inc(&l->rings[p].queued[kind], 1);
	/* release: the record's bytes before the new head */
	atomic_store_explicit(&l->rings[p].head, h + 1, memory_order_release);
}

bool
gw_log_access(struct gw_log *l, unsigned p, const struct gw_access_rec *r)
{
	uint64_t h;
	struct gw_log_rec *s;

	if (!l->has_access)
		return false;
	s = gw_log_slot(l, p, GW_LOG_ACCESS, &h);
	if (s == NULL)
		return false;
	s->kind = GW_LOG_ACCESS;
	s->u.a = *r;
	gw_log_commit(l, p, GW_LOG_ACCESS, h);
	return true;
}

bool
gw_log_event(struct gw_log *l, unsigned p, const char *fmt, ...)
{
	uint64_t h;
	struct gw_log_rec *s = gw_log_slot(l, p, GW_LOG_EVENT, &h);
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n;

	if (s == NULL)
		return false;
	s->kind = GW_LOG_EVENT;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(s->u.ev, GW_LOG_EVENT_LEN, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	va_start(ap, fmt);
	vsnprintf(s->u.ev + n, GW_LOG_EVENT_LEN - n, fmt, ap);
	va_end(ap);
	gw_log_commit(l, p, GW_LOG_EVENT, h);
	return true;
}

void
gw_log_reopen(struct gw_log *l)
{
	atomic_store(&l->reopen, true);
	pthread_mutex_lock(&l->mu);
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->mu);
}

static bool
gw_log_caught_up(const struct gw_log *l, const uint64_t *want)
{
	for (unsigned i = 0; i < l->n_rings; i++)
		if (atomic_load_explicit(&l->rings[i].done, memory_order_acquire) < want[i])
			return false;
	return true;
}

int
gw_log_flush(struct gw_log *l, unsigned timeout_ms)
{
	uint64_t want[256];
	struct timespec dl;
	int rc = 0;

	for (unsigned i = 0; i < l->n_rings; i++)
		want[i] = atomic_load_explicit(&l->rings[i].head, memory_order_acquire);
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->mu);
	l->flush_waiters++;
	pthread_cond_signal(&l->wake);
	while (!gw_log_caught_up(l, want) && rc == 0)
		rc = pthread_cond_timedwait(&l->cycled, &l->mu, &dl) == ETIMEDOUT ? -ETIMEDOUT : 0;
	if (rc < 0 && gw_log_caught_up(l, want))
		rc = 0;
	l->flush_waiters--;
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void
gw_log_stats(const struct gw_log *l, struct gw_log_stats *out)
{
	memset(out, 0, sizeof(*out));
	/* What the writer counts first, then what producers count: a record is produced
	 * before it is written, so produced >= written + lost holds in every snapshot. */
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		const struct gw_log_file *f = &l->f[k];

		out->written_by[k] = atomic_load_explicit(&f->written, memory_order_relaxed);
		for (unsigned r = 0; r < GW_LOG_LOSS__COUNT; r++)
			out->lost_by[k][r] = atomic_load_explicit(&f->lost[r], memory_order_relaxed);
		out->write_errors_by[k] = atomic_load_explicit(&f->write_errors,
							       memory_order_relaxed);
		out->reopen_failures_by[k] = atomic_load_explicit(&f->reopen_failures,
								  memory_order_relaxed);
		out->failing[k] = atomic_load_explicit(&f->failing, memory_order_relaxed);
		out->produced_by[k] = atomic_load_explicit(&f->notes, memory_order_relaxed);
	}
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		uint64_t stray = atomic_load_explicit(&l->no_ring[k], memory_order_relaxed);

		out->produced_by[k] += stray;
		out->lost_by[k][GW_LOG_LOSS_NO_RING] = stray;
	}
	for (unsigned i = 0; i < l->n_rings; i++)
		for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
			uint64_t full = atomic_load_explicit(&l->rings[i].full[k],
							     memory_order_relaxed);

			out->produced_by[k] += full + atomic_load_explicit(&l->rings[i].queued[k],
									   memory_order_relaxed);
			out->lost_by[k][GW_LOG_LOSS_RING_FULL] += full;
		}
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		out->written += out->written_by[k];
		out->write_errors += out->write_errors_by[k];
		for (unsigned r = 0; r < GW_LOG_LOSS__COUNT; r++)
			out->dropped += out->lost_by[k][r];
	}
	out->fsyncs = atomic_load(&l->fsyncs);
	out->fsync_errors = atomic_load(&l->fsync_errors);
	out->reopens = atomic_load(&l->reopens);
	out->io_submits = atomic_load(&l->io_submits);
	out->io_sqes = atomic_load(&l->io_sqes);
	out->io_both = atomic_load(&l->io_both);
}

static void
gw_log_prom_by_log(struct gw_prom *p, const char *name, const char *type, const char *help,
		   const uint64_t *v)
{
	char lab[32];

	gw_prom_family(p, name, type, help);
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		snprintf(lab, sizeof(lab), "log=\"%s\"", gw_log_kind_name[k]);
		gw_prom_sample(p, name, lab, (double)v[k]);
	}
}

void
gw_log_prom(const struct gw_log *l, struct gw_prom *p)
{
	struct gw_log_stats st;
	uint64_t failing[GW_LOG__KINDS];
	char lab[64];

	gw_log_stats(l, &st);
	gw_log_prom_by_log(p, "tailgate_log_produced_total", "counter",
			   "log records produced (queued, or refused by a full ring); "
			   "produced = written + dropped + in flight", st.produced_by);
	gw_log_prom_by_log(p, "tailgate_log_written_total", "counter",
			   "log records whose every byte is on the file", st.written_by);
	gw_prom_family(p, "tailgate_log_dropped_total", "counter",
		       "log records lost, by reason (ring_full, disk_full, write_error, no_ring)");
	for (unsigned k = 0; k < GW_LOG__KINDS; k++)
		for (unsigned r = 0; r < GW_LOG_LOSS__COUNT; r++) {
			snprintf(lab, sizeof(lab), "log=\"%s\",reason=\"%s\"", gw_log_kind_name[k],
				 gw_log_loss_label[r]);
			gw_prom_sample(p, "tailgate_log_dropped_total", lab,
				       (double)st.lost_by[k][r]);
		}
	gw_log_prom_by_log(p, "tailgate_log_write_errors_total", "counter",
			   "log writes that failed (each cut the file back to its last whole "
			   "line)", st.write_errors_by);
	for (unsigned k = 0; k < GW_LOG__KINDS; k++)
		failing[k] = st.failing[k];
	gw_log_prom_by_log(p, "tailgate_log_failing", "gauge",
			   "1 while writes to the log fail (between the event lines that open "
			   "and close the episode)", failing);
	gw_log_prom_by_log(p, "tailgate_log_reopen_failures_total", "counter",
			   "log reopens that failed (the previous file stays open)",
			   st.reopen_failures_by);
	gw_prom_family(p, "tailgate_log_reopens_total", "counter", "log reopens (SIGUSR1)");
	gw_prom_sample(p, "tailgate_log_reopens_total", NULL, (double)st.reopens);
	gw_prom_family(p, "tailgate_log_fsyncs_total", "counter", "fdatasyncs of the logs");
	gw_prom_sample(p, "tailgate_log_fsyncs_total", NULL, (double)st.fsyncs);
	gw_prom_family(p, "tailgate_log_fsync_errors_total", "counter",
		       "fdatasyncs of the logs that failed");
	gw_prom_sample(p, "tailgate_log_fsync_errors_total", NULL, (double)st.fsync_errors);
}

void
gw_log_close(struct gw_log *l)
{
	if (l == NULL)
		return;
	atomic_store(&l->stop, true);
	pthread_mutex_lock(&l->mu);
	pthread_cond_signal(&l->wake);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thr, NULL);
	pthread_cond_destroy(&l->cycled);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->mu);
	if (l->ring_up)
		io_uring_queue_exit(&l->ring);
	gw_log_free(l);
}
