/* SPDX-License-Identifier: Apache-2.0 */
/* Logs: every record queued is written exactly once, a full ring drops and counts without
 * blocking, reopen after rotation (and a failed reopen keeps the file), a full disk leaves
 * no torn line and counts what it lost, once per episode, and logging resumes when the disk
 * has room; produced = written + lost by reason, and gw_log_flush() makes that exact. */
#include "gateway/gateway.h"
#include "tests/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static char no_mount[160];	/* why the full-disk test cannot mount a tmpfs; "" it can */

static unsigned
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned n = 0;
	int c;

	if (f == NULL)
		return 0;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Lines of path that contain s. */
static unsigned
count_matching(const char *path, const char *s)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	unsigned n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

/* ---- the access log's lines: each one JSON object with every field, parsed by jansson ---- */

static const char *const access_ints[] = { "client", "request", "model", "split", "bytes",
					   "batch", "queue_us", "compute_us", "status", "exit",
					   "variant", "ran_variant", "ran_split" };

/* NULL when o is an access record with every field of its type, else what is wrong. */
static const char *
access_record_wrong(json_t *o)
{
	if (!json_is_object(o))
		return "not a JSON object";
	if (!json_is_string(json_object_get(o, "time")) ||
	    !json_is_string(json_object_get(o, "dtype")))
		return "time or dtype missing or not a string";
	for (size_t i = 0; i < sizeof(access_ints) / sizeof(access_ints[0]); i++)
		if (!json_is_integer(json_object_get(o, access_ints[i])))
			return access_ints[i];
	return NULL;
}

/* Every line of path is one access record and ends with a newline; @return lines, or -1
 * (with the bad line printed) when one is not. */
static long
json_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	long n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t len = strlen(line);
		json_error_t jerr;
		json_t *o;
		const char *wrong;

		if (len == 0 || line[len - 1] != '\n') {
			fprintf(stderr, "  line %ld has no newline (torn): %.80s\n", n + 1, line);
			n = -1;
			break;
		}
		o = json_loadb(line, len, 0, &jerr);
		wrong = o != NULL ? access_record_wrong(o) : jerr.text;
		json_decref(o);
		if (wrong != NULL) {
			fprintf(stderr, "  line %ld: %s: %.80s\n", n + 1, wrong, line);
			n = -1;
			break;
		}
		n++;
	}
	fclose(f);
	return n;
}

/* ---- producers ---- */

struct prod {
	struct gw_log *l;
	unsigned p, n, queued;
	uint32_t first;		/* request id of the first record */
};

static void *
producer(void *arg)
{
	struct prod *pr = arg;

	for (unsigned i = 0; i < pr->n; i++) {
		struct gw_access_rec r = { .t_ns = 1764000000000000000ull + i, .client_id = pr->p,
					   .request_id = pr->first + i, .model = 1, .batch = 8,
					   .status = 0, .exit_taken = 0xFF, .dtype = TG_DT_U8 };

		pr->queued += gw_log_access(pr->l, pr->p, &r);
	}
	pr->first += pr->n;
	return NULL;
}

/* produced = written + lost (every reason) for both logs: nothing in flight. */
static bool
adds_up(const struct gw_log_stats *st)
{
	for (unsigned k = 0; k < GW_LOG__KINDS; k++) {
		uint64_t lost = 0;

		for (unsigned r = 0; r < GW_LOG_LOSS__COUNT; r++)
			lost += st->lost_by[k][r];
		if (st->produced_by[k] != st->written_by[k] + lost) {
			fprintf(stderr, "  log %u: produced %llu, written %llu, lost %llu\n", k,
				(unsigned long long)st->produced_by[k],
				(unsigned long long)st->written_by[k], (unsigned long long)lost);
			return false;
		}
	}
	return true;
}

static void
flush_stats(struct gw_log *l, struct gw_log_stats *st)
{
	TH_CHECK_MSG(gw_log_flush(l, 30000) == 0, "flush timed out after 30 s");
	gw_log_stats(l, st);
}

/* The closing line's "access P produced, W written" against what the file holds. */
static void
check_closing_line(const char *ev, unsigned lines)
{
	FILE *f = fopen(ev, "r");
	char line[1024], last[1024] = "";
	unsigned long long p = 0, w = 0;

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		memcpy(last, line, sizeof(last));
	if (f != NULL)
		fclose(f);
	TH_CHECK_MSG(strstr(last, "log: closed: access ") != NULL &&
		     sscanf(strstr(last, "access "), "access %llu produced, %llu written", &p,
			    &w) == 2 && w == lines,
		     "last event line '%s' against %u access lines", last, lines);
}

static void
test_every_queued_record_is_written_once(void)
{
	char acc[128], ev[128];
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	struct tg_err err = { 0 };
	struct prod pr[2];
	pthread_t t[2];

	snprintf(acc, sizeof(acc), "%s/access.log", dir);
	snprintf(ev, sizeof(ev), "%s/event.log", dir);
	/* ring 2 is this thread's: each ring has exactly one producer */
	TH_CHECK_MSG(gw_log_open(&l, acc, ev, 3, 1 << 14, 50, &err) == 0, "%s", err.msg);
	if (l == NULL)
		return;
	for (unsigned i = 0; i < 2; i++) {
		pr[i] = (struct prod){ .l = l, .p = i, .n = 5000 };
		pthread_create(&t[i], NULL, producer, &pr[i]);
	}
	gw_log_event(l, 2, "started %d", 42);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	/* The flush returns once all 10,000 are on the file: no polling needed. */
	flush_stats(l, &st);
	TH_CHECK_MSG(st.written_by[GW_LOG_ACCESS] == 10000 && st.written_by[GW_LOG_EVENT] == 1,
		     "after the flush: %llu access, %llu event records written",
		     (unsigned long long)st.written_by[GW_LOG_ACCESS],
		     (unsigned long long)st.written_by[GW_LOG_EVENT]);
	TH_CHECK(count_lines(acc) == 10000);
	TH_CHECK(adds_up(&st) && st.dropped == 0 && st.write_errors == 0);
	gw_log_close(l);
	TH_CHECK_MSG(count_lines(acc) == pr[0].queued + pr[1].queued, "%u lines, %u queued",
		     count_lines(acc), pr[0].queued + pr[1].queued);
	TH_CHECK(pr[0].queued == 5000 && pr[1].queued == 5000);	/* rings large enough */
	TH_CHECK(json_lines(acc) == 10000);
	TH_CHECK(count_lines(ev) == 2 && count_matching(ev, "started 42") == 1);
	check_closing_line(ev, 10000);
}

/*
 * The writer's I/O is batched (liburing's io_uring-cp way): each log's write and its linked
 * fdatasync go in one submit, and both logs' writes share one; a submit-and-wait per write
 * would carry one SQE per submit.
 */
static void
test_both_logs_share_one_submit(void)
{
	char acc[128], ev[128];
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	struct tg_err err = { 0 };
	unsigned queued = 0;

	snprintf(acc, sizeof(acc), "%s/access-batch.log", dir);
	snprintf(ev, sizeof(ev), "%s/event-batch.log", dir);
	/* fsync_ms 1: a pass of the writer that follows its 2 ms sleep puts an fdatasync
	 * behind each write */
	TH_CHECK_MSG(gw_log_open(&l, acc, ev, 1, 1 << 14, 1, &err) == 0, "%s", err.msg);
	if (l == NULL)
		return;
	for (unsigned i = 0; i < 2000; i++) {
		struct gw_access_rec r = { .t_ns = 1764000000000000000ull + i, .client_id = 7,
					   .request_id = i, .model = 1, .batch = 1,
					   .exit_taken = 0xFF, .dtype = TG_DT_U8 };

		queued += gw_log_access(l, 0, &r);
		queued += gw_log_event(l, 0, "event %u", i);
	}
	usleep(5000);	/* the writer's own tick takes them, a sleep after its last pass */
	flush_stats(l, &st);
	TH_CHECK_MSG(queued == 4000 && st.written_by[GW_LOG_ACCESS] == 2000 &&
		     st.written_by[GW_LOG_EVENT] == 2000, "%u queued, %llu + %llu written", queued,
		     (unsigned long long)st.written_by[GW_LOG_ACCESS],
		     (unsigned long long)st.written_by[GW_LOG_EVENT]);
	TH_CHECK_MSG(st.io_submits > 0 && st.io_sqes > st.io_submits && st.io_both > 0 &&
		     st.fsyncs > 0, "%llu submits carried %llu SQEs, %llu with both logs' writes, "
		     "%llu fdatasyncs", (unsigned long long)st.io_submits,
		     (unsigned long long)st.io_sqes, (unsigned long long)st.io_both,
		     (unsigned long long)st.fsyncs);
	TH_CHECK(adds_up(&st) && st.dropped == 0);
	gw_log_close(l);
	TH_CHECK(count_lines(acc) == 2000 && json_lines(acc) == 2000);
}

static bool
same_str(const char *got, const char *want)
{
	if (got == NULL || strcmp(got, want) != 0)
		fprintf(stderr, "  got \"%s\", want \"%s\"\n", got ? got : "(missing)", want);
	return got != NULL && strcmp(got, want) == 0;
}

/* One record's line holds the record's values: the time in UTC with microseconds, the
 * dtype's name, exit -1 for "no exit", the widest values unclipped. */
static void
test_access_line_holds_the_record(void)
{
	char acc[128], ev[128], line[512] = "";
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	struct tg_err err = { 0 };
	struct gw_access_rec r = { .t_ns = 1764000000123456789ull, .client_id = UINT32_MAX,
				   .request_id = 4000000000u, .model = 65535, .split = 7,
				   .dtype = TG_DT_S8, .bytes = 123456, .batch = 64,
				   .queue_us = 4321, .compute_us = 765, .status = 6,
				   .exit_taken = 0xFF, .variant = 0, .ran_variant = 254,
				   .ran_split = 9 };
	json_error_t jerr;
	json_t *o = NULL;
	FILE *f;

	snprintf(acc, sizeof(acc), "%s/access-one.log", dir);
	snprintf(ev, sizeof(ev), "%s/event-one.log", dir);
	TH_CHECK_MSG(gw_log_open(&l, acc, ev, 1, 1 << 10, 0, &err) == 0, "%s", err.msg);
	if (l == NULL)
		return;
	TH_CHECK(gw_log_access(l, 0, &r));
	r.exit_taken = 2;
	r.t_ns += 1000000000ull;
	TH_CHECK(gw_log_access(l, 0, &r));
	flush_stats(l, &st);
	gw_log_close(l);
	f = fopen(acc, "r");
	TH_CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL);
	o = json_loads(line, 0, &jerr);
	TH_CHECK_MSG(o != NULL && access_record_wrong(o) == NULL, "%s", line);
	TH_CHECK(same_str(json_string_value(json_object_get(o, "time")),
			  "2025-11-24T16:00:00.123456Z"));
	TH_CHECK(same_str(json_string_value(json_object_get(o, "dtype")), "s8"));
	TH_CHECK(json_integer_value(json_object_get(o, "client")) == UINT32_MAX);
	TH_CHECK(json_integer_value(json_object_get(o, "request")) == 4000000000);
	TH_CHECK(json_integer_value(json_object_get(o, "model")) == 65535);
	TH_CHECK(json_integer_value(json_object_get(o, "split")) == 7);
	TH_CHECK(json_integer_value(json_object_get(o, "bytes")) == 123456);
	TH_CHECK(json_integer_value(json_object_get(o, "batch")) == 64);
	TH_CHECK(json_integer_value(json_object_get(o, "queue_us")) == 4321);
	TH_CHECK(json_integer_value(json_object_get(o, "compute_us")) == 765);
	TH_CHECK(json_integer_value(json_object_get(o, "status")) == 6);
	TH_CHECK(json_integer_value(json_object_get(o, "exit")) == -1);
	TH_CHECK(json_integer_value(json_object_get(o, "variant")) == 0);
	TH_CHECK(json_integer_value(json_object_get(o, "ran_variant")) == 254);
	TH_CHECK(json_integer_value(json_object_get(o, "ran_split")) == 9);
	json_decref(o);
	o = NULL;
	TH_CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL);
	o = json_loads(line, 0, &jerr);
	TH_CHECK_MSG(o != NULL && json_integer_value(json_object_get(o, "exit")) == 2, "%s", line);
	TH_CHECK(same_str(json_string_value(json_object_get(o, "time")),
			  "2025-11-24T16:00:01.123456Z"));
	json_decref(o);
	if (f != NULL)
		fclose(f);
}

static void
test_full_ring_drops_and_counts(void)
{
	char acc[128];
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	struct prod pr;

	snprintf(acc, sizeof(acc), "%s/small.log", dir);
	if (gw_log_open(&l, acc, "", 1, 16, 50, NULL) < 0)
		{ TH_CHECK(0); return; }
	pr = (struct prod){ .l = l, .p = 0, .n = 20000 };
	producer(&pr);
	TH_CHECK(!gw_log_access(l, 7, &(struct gw_access_rec){ 0 }));	/* no such producer */
	flush_stats(l, &st);
	gw_log_close(l);
	/* a 16-record ring cannot keep up with a tight loop: some are dropped, all counted */
	TH_CHECK_MSG(pr.queued < 20000 && st.lost_by[GW_LOG_ACCESS][GW_LOG_LOSS_RING_FULL] ==
					  20000 - pr.queued,
		     "queued %u dropped %llu", pr.queued,
		     (unsigned long long)st.lost_by[GW_LOG_ACCESS][GW_LOG_LOSS_RING_FULL]);
	TH_CHECK(st.lost_by[GW_LOG_ACCESS][GW_LOG_LOSS_NO_RING] == 1);
	TH_CHECK(st.produced_by[GW_LOG_ACCESS] == 20001 && adds_up(&st));
	TH_CHECK(count_lines(acc) == pr.queued && st.written_by[GW_LOG_ACCESS] == pr.queued);
}

static void
test_no_access_log_produces_nothing(void)
{
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	char ev[128];

	snprintf(ev, sizeof(ev), "%s/noacc-event.log", dir);
	if (gw_log_open(&l, "", ev, 1, 16, 50, NULL) < 0)
		{ TH_CHECK(0); return; }
	/* no access log: nothing queued, nothing counted, nothing on stderr */
	TH_CHECK(!gw_log_access(l, 0, &(struct gw_access_rec){ 0 }));
	flush_stats(l, &st);
	TH_CHECK(st.produced_by[GW_LOG_ACCESS] == 0 && st.written_by[GW_LOG_ACCESS] == 0);
	gw_log_close(l);
}

static bool
wait_reopens(struct gw_log *l, uint64_t n)
{
	struct gw_log_stats st;

	for (int i = 0; i < 1000; i++) {	/* bounded: 10 s (a loaded machine starves it) */
		gw_log_stats(l, &st);
		if (st.reopens == n)
			return true;
		usleep(10000);
	}
	return false;
}

static void
test_reopen_after_rotation(void)
{
	char acc[128], old[140], line[512];
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	struct prod pr = { 0 };
	FILE *f;

	snprintf(acc, sizeof(acc), "%s/rot.log", dir);
	snprintf(old, sizeof(old), "%s.1", acc);
	if (gw_log_open(&l, acc, "", 1, 1024, 50, NULL) < 0)
		{ TH_CHECK(0); return; }
	pr = (struct prod){ .l = l, .p = 0, .n = 10 };
	producer(&pr);
	flush_stats(l, &st);
	TH_CHECK_MSG(st.written == 10, "writer wrote %llu of 10", (unsigned long long)st.written);
	TH_CHECK(rename(acc, old) == 0);
	gw_log_reopen(l);
	TH_CHECK_MSG(wait_reopens(l, 1), "no reopen in 10 s");
	pr.n = 7;
	producer(&pr);
	gw_log_close(l);
	TH_CHECK(count_lines(old) == 10 && count_lines(acc) == 7);
	f = fopen(acc, "r");
	TH_CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL);
	TH_CHECK_MSG(strstr(line, "\"client\":0,\"request\":10,\"model\":1") &&
		     strstr(line, "\"dtype\":\"u8\"") && strstr(line, "\"exit\":-1") &&
		     strstr(line, "\"time\":\"2025-"), "%s", line);
	if (f)
		fclose(f);
}

/*
 * A reopen that cannot open the path (its folder was moved away) keeps both files open:
 * access and event lines go on in the moved files, the event log says the reopen failed,
 * and reopen_failures counts it. Nothing goes to stderr instead, nothing is lost.
 */
static void
test_failed_reopen_keeps_the_file(void)
{
	char sub[96], moved[104], acc[128], ev[128], acc2[140], ev2[140];
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	struct prod pr = { 0 };

	snprintf(sub, sizeof(sub), "%s/logs", dir);
	snprintf(moved, sizeof(moved), "%s/logs.old", dir);
	snprintf(acc, sizeof(acc), "%s/access.log", sub);
	snprintf(ev, sizeof(ev), "%s/event.log", sub);
	snprintf(acc2, sizeof(acc2), "%s/access.log", moved);
	snprintf(ev2, sizeof(ev2), "%s/event.log", moved);
	TH_CHECK(mkdir(sub, 0755) == 0);
	if (gw_log_open(&l, acc, ev, 1, 1024, 50, NULL) < 0)
		{ TH_CHECK(0); return; }
	pr = (struct prod){ .l = l, .p = 0, .n = 5 };
	producer(&pr);
	flush_stats(l, &st);
	TH_CHECK(rename(sub, moved) == 0);	/* the path no longer exists */
	gw_log_reopen(l);
	TH_CHECK_MSG(wait_reopens(l, 1), "no reopen in 10 s");
	producer(&pr);
	gw_log_event(l, 0, "after the failed reopen");
	flush_stats(l, &st);
	TH_CHECK_MSG(st.reopen_failures_by[GW_LOG_ACCESS] == 1 &&
		     st.reopen_failures_by[GW_LOG_EVENT] == 1, "reopen failures %llu %llu",
		     (unsigned long long)st.reopen_failures_by[GW_LOG_ACCESS],
		     (unsigned long long)st.reopen_failures_by[GW_LOG_EVENT]);
	TH_CHECK(st.written_by[GW_LOG_ACCESS] == 10 && adds_up(&st) && st.dropped == 0);
	gw_log_close(l);
	TH_CHECK(count_lines(acc2) == 10 && json_lines(acc2) == 10);
	TH_CHECK(count_matching(ev2, "access log") == 1 && count_matching(ev2, "reopen failed") == 2);
	TH_CHECK(count_matching(ev2, "still writing to the file open before") == 2);
	TH_CHECK(count_matching(ev2, "after the failed reopen") == 1);
	TH_CHECK(access(acc, F_OK) != 0);	/* not recreated elsewhere either */
}

/*
 * Every write fails (/dev/full answers ENOSPC): every record is lost and counted as
 * disk_full, and the event log has one line for the whole episode, not one per record.
 * Needs no privilege.
 */
static void
test_failing_writes_counted_once_per_episode(void)
{
	char ev[128], prom[8192], want[128];
	struct gw_log *l = NULL;
	struct gw_log_stats st;
	struct prod pr = { 0 };
	struct gw_prom p = { .buf = prom, .cap = sizeof(prom) };

	if (access("/dev/full", W_OK) != 0) {
		TH_SKIP("no writable /dev/full");
		return;
	}
	snprintf(ev, sizeof(ev), "%s/devfull-event.log", dir);
	if (gw_log_open(&l, "/dev/full", ev, 1, 1024, 50, NULL) < 0)
		{ TH_CHECK(0); return; }
	pr = (struct prod){ .l = l, .p = 0, .n = 100 };
	for (int i = 0; i < 3; i++) {	/* three batches at least: three failed writes */
		producer(&pr);
		flush_stats(l, &st);
	}
	TH_CHECK_MSG(st.lost_by[GW_LOG_ACCESS][GW_LOG_LOSS_DISK_FULL] == 300 &&
		     st.written_by[GW_LOG_ACCESS] == 0 && st.write_errors_by[GW_LOG_ACCESS] >= 3,
		     "lost %llu written %llu errors %llu",
		     (unsigned long long)st.lost_by[GW_LOG_ACCESS][GW_LOG_LOSS_DISK_FULL],
		     (unsigned long long)st.written_by[GW_LOG_ACCESS],
		     (unsigned long long)st.write_errors_by[GW_LOG_ACCESS]);
	TH_CHECK(st.failing[GW_LOG_ACCESS] && !st.failing[GW_LOG_EVENT] && adds_up(&st));
	gw_log_prom(l, &p);
	snprintf(want, sizeof(want), "tailgate_log_dropped_total{log=\"access\",reason=\"disk_full\"} 300\n");
	TH_CHECK_MSG(!p.overflow && strstr(prom, want) != NULL &&
		     strstr(prom, "tailgate_log_failing{log=\"access\"} 1\n") != NULL, "%s", prom);
	gw_log_close(l);
	TH_CHECK(count_matching(ev, "write failed: No space left on device") == 1);
	TH_CHECK(count_matching(ev, "writing again") == 0);
}

/* ---- a real full disk: a 256 KiB tmpfs in this process's own mount namespace ---- */

/* Fill path's file system with a file of zeroes; @return its size. */
static off_t
fill(const char *path)
{
	static const char zero[4096];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	off_t n = 0;
	ssize_t w;

	if (fd < 0)
		return -1;
	while ((w = write(fd, zero, sizeof(zero))) > 0)
		n += w;
	close(fd);
	return n;
}

static void
test_full_disk_no_torn_line_and_resume(void)
{
	char mnt[96], acc[128], ev[128], filler[128];
	struct gw_log *l = NULL;
	struct gw_log_stats st, st1;
	struct prod pr = { 0 };
	long lines;
	off_t full;

	if (no_mount[0] != '\0') {
		TH_SKIP("full disk: %s", no_mount);
		return;
	}
	snprintf(mnt, sizeof(mnt), "%s/full", dir);
	snprintf(acc, sizeof(acc), "%s/access.log", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	snprintf(ev, sizeof(ev), "%s/full-event.log", dir);	/* another file system */
	TH_CHECK(mkdir(mnt, 0755) == 0);
	if (mount("tg_log_test", mnt, "tmpfs", 0, "size=256k") < 0) {
		TH_SKIP("mount tmpfs: %s", strerror(errno));
		return;
	}
	if (gw_log_open(&l, acc, ev, 1, 4096, 50, NULL) < 0) {
		TH_CHECK(0);
		goto out_umount;
	}
	pr = (struct prod){ .l = l, .p = 0, .n = 10 };
	producer(&pr);
	flush_stats(l, &st);
	TH_CHECK(st.written_by[GW_LOG_ACCESS] == 10);

	/* Leave 8 KiB: the next writes are short (a line torn at the page), then ENOSPC. */
	full = fill(filler);
	TH_CHECK(full > 0 && truncate(filler, full - 8192) == 0);
	for (int i = 0; i < 4; i++) {
		pr.n = 250;
		producer(&pr);
		flush_stats(l, &st);
	}
	lines = json_lines(acc);
	TH_CHECK_MSG(lines >= 10 && (uint64_t)lines == st.written_by[GW_LOG_ACCESS],
		     "file: %ld whole JSON lines (-1: a torn or bad one), written %llu", lines,
		     (unsigned long long)st.written_by[GW_LOG_ACCESS]);
	TH_CHECK_MSG(st.lost_by[GW_LOG_ACCESS][GW_LOG_LOSS_DISK_FULL] > 0 &&
		     st.written_by[GW_LOG_ACCESS] < 1010 && st.failing[GW_LOG_ACCESS] &&
		     adds_up(&st) && st.produced_by[GW_LOG_ACCESS] == 1010,
		     "produced %llu written %llu disk_full %llu",
		     (unsigned long long)st.produced_by[GW_LOG_ACCESS],
		     (unsigned long long)st.written_by[GW_LOG_ACCESS],
		     (unsigned long long)st.lost_by[GW_LOG_ACCESS][GW_LOG_LOSS_DISK_FULL]);
	TH_CHECK(count_matching(ev, "write failed: No space left on device") == 1);

	/* Room again: the next records are written whole, after the last whole line. */
	TH_CHECK(unlink(filler) == 0);
	pr.n = 100;
	producer(&pr);
	flush_stats(l, &st1);
	TH_CHECK_MSG(st1.written_by[GW_LOG_ACCESS] == st.written_by[GW_LOG_ACCESS] + 100 &&
		     !st1.failing[GW_LOG_ACCESS] && adds_up(&st1),
		     "written %llu -> %llu", (unsigned long long)st.written_by[GW_LOG_ACCESS],
		     (unsigned long long)st1.written_by[GW_LOG_ACCESS]);
	lines = json_lines(acc);
	TH_CHECK_MSG((uint64_t)lines == st1.written_by[GW_LOG_ACCESS], "%ld lines", lines);
	TH_CHECK(count_matching(ev, "writing again") == 1);
	gw_log_close(l);
	check_closing_line(ev, (unsigned)lines);
out_umount:
	TH_CHECK(umount(mnt) == 0);
	rmdir(mnt);
}

/* A private mount namespace, before any thread exists (unshare refuses threaded callers). */
static void
mount_ns_setup(void)
{
	if (geteuid() != 0)
		snprintf(no_mount, sizeof(no_mount), "needs root to mount a tmpfs (uid %u)",
			 (unsigned)geteuid());
	else if (unshare(CLONE_NEWNS) < 0)
		snprintf(no_mount, sizeof(no_mount), "unshare(CLONE_NEWNS): %s", strerror(errno));
	else if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		snprintf(no_mount, sizeof(no_mount), "make / private: %s", strerror(errno));
}

int
main(void)
{
	mount_ns_setup();
	snprintf(dir, sizeof(dir), "/tmp/tg_log_XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	TH_RUN(test_every_queued_record_is_written_once);
	TH_RUN(test_both_logs_share_one_submit);
	TH_RUN(test_access_line_holds_the_record);
	TH_RUN(test_full_ring_drops_and_counts);
	TH_RUN(test_no_access_log_produces_nothing);
	TH_RUN(test_reopen_after_rotation);
	TH_RUN(test_failed_reopen_keeps_the_file);
	TH_RUN(test_failing_writes_counted_once_per_episode);
	TH_RUN(test_full_disk_no_torn_line_and_resume);
	{
		char cmd[96];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TH_DONE();
}
