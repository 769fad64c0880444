/* Logs: every record queued is written exactly once, a full ring drops and counts without
 * blocking, reopen after rotation, events and JSON lines as documented. */
#include "gateway/gateway.h"
#include "tests/harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static char dir[64];

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

struct prod {
	struct gw_log *l;
	unsigned p, n, queued;
};

static void *
producer(void *arg)
{
	struct prod *pr = arg;

	for (unsigned i = 0; i < pr->n; i++) {
		struct gw_access_rec r = { .t_ns = 1764000000000000000ull + i, .client_id = pr->p,
					   .request_id = i, .model = 1, .batch = 8, .status = 0,
					   .exit_taken = 0xFF, .dtype = TG_DT_U8 };

		pr->queued += gw_log_access(pr->l, pr->p, &r);
	}
	return NULL;
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
	gw_log_close(l);
	TH_CHECK_MSG(count_lines(acc) == pr[0].queued + pr[1].queued, "%u lines, %u queued",
		     count_lines(acc), pr[0].queued + pr[1].queued);
	TH_CHECK(pr[0].queued == 5000 && pr[1].queued == 5000);	/* rings large enough */
	TH_CHECK(count_lines(ev) == 1);
	(void)st;
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
	gw_log_stats(l, &st);
	gw_log_close(l);
	/* a 16-record ring cannot keep up with a tight loop: some are dropped, all counted */
	TH_CHECK_MSG(pr.queued < 20000 && st.dropped == 20000 - pr.queued,
		     "queued %u dropped %llu", pr.queued, (unsigned long long)st.dropped);
	TH_CHECK(count_lines(acc) == pr.queued);
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
	for (int i = 0; i < 1000; i++) {	/* bounded: 10 s (a loaded machine starves the writer) */
		gw_log_stats(l, &st);
		if (st.written == 10)
			break;
		usleep(10000);
	}
	TH_CHECK_MSG(st.written == 10, "writer wrote %llu of 10 in 10 s",
		     (unsigned long long)st.written);
	TH_CHECK(rename(acc, old) == 0);
	gw_log_reopen(l);
	for (int i = 0; i < 1000; i++) {
		gw_log_stats(l, &st);
		if (st.reopens == 1)
			break;
		usleep(10000);
	}
	TH_CHECK_MSG(st.reopens == 1, "no reopen in 10 s");
	pr.n = 7;
	producer(&pr);
	gw_log_close(l);
	TH_CHECK(count_lines(old) == 10 && count_lines(acc) == 7);
	f = fopen(acc, "r");
	TH_CHECK(f != NULL && fgets(line, sizeof(line), f) != NULL);
	TH_CHECK_MSG(strstr(line, "\"client\":0,\"request\":0,\"model\":1") &&
		     strstr(line, "\"dtype\":\"u8\"") && strstr(line, "\"exit\":-1") &&
		     strstr(line, "\"time\":\"2025-"), "%s", line);
	if (f)
		fclose(f);
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/tg_log_XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	TH_RUN(test_every_queued_record_is_written_once);
	TH_RUN(test_full_ring_drops_and_counts);
	TH_RUN(test_reopen_after_rotation);
	{
		char cmd[96];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	TH_DONE();
}
