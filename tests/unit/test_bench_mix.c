/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bench's device mix (bench/mix.c): specs that parse and what they draw, a rejection
 * with a useful message per kind of bad spec, mix files with file:line errors.
 */
#include "bench/bench.h"
#include "tests/harness.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static void
test_mix_default_parses(void)
{
	struct bench_mix m;
	struct bench_rng r;
	struct bench_profile p;

	bench_mix_default(&m);
	TH_CHECK(m.key[BENCH_MIX_SPLIT].n == 4 && m.key[BENCH_MIX_DTYPE].n == 4);
	TH_CHECK(bench_mix_split_mask(&m) == ((1u << 0) | (1u << 4) | (1u << 6) | (1u << 8)));
	TH_CHECK(bench_mix_dtype_mask(&m) == 0x1e);
	TH_CHECK(bench_mix_max_deadline(&m) == 100000);
	bench_rng_seed(&r, 1);
	for (int i = 0; i < 1000; i++) {
		bench_mix_draw(&m, &r, &p);
		TH_CHECK(p.uplink_kbps >= 20000 && p.uplink_kbps <= 100000);
		TH_CHECK(p.deadline_us == 100000);
	}
}

static void
test_mix_weights_and_ranges_draw_as_asked(void)
{
	struct bench_mix m;
	struct tg_err err = { 0 };
	struct bench_rng r;
	struct bench_profile p;
	unsigned n4 = 0, nu8 = 0, n_fast = 0;
	enum { N = 20000 };

	bench_mix_default(&m);
	TH_CHECK_MSG(bench_mix_parse(&m, "split=0:1,4:3; dtype=u8:9,f32 ;uplink=1-2mbps:1,0:1;"
				  "deadline=500us-1s", &err) == 0, "%s", err.msg);
	bench_rng_seed(&r, 42);
	for (int i = 0; i < N; i++) {
		bench_mix_draw(&m, &r, &p);
		TH_CHECK(p.split == 0 || p.split == 4);
		n4 += p.split == 4;
		nu8 += p.dtype == PROTO_DT_U8;
		TH_CHECK(p.uplink_kbps == 0 || (p.uplink_kbps >= 1000 && p.uplink_kbps <= 2000));
		n_fast += p.uplink_kbps != 0;
		TH_CHECK(p.deadline_us >= 500 && p.deadline_us <= 1000000);
	}
	/* 3 sigma of a binomial over N draws is under 1 point here. */
	TH_CHECK_MSG(abs((int)n4 - 3 * N / 4) < N / 100, "split 4: %u of %d", n4, N);
	TH_CHECK_MSG(abs((int)nu8 - 9 * N / 10) < N / 100, "u8: %u of %d", nu8, N);
	TH_CHECK_MSG(abs((int)n_fast - N / 2) < N / 100, "paced: %u of %d", n_fast, N);
}

static void
test_mix_keys_not_given_keep_theirs(void)
{
	struct bench_mix m;

	bench_mix_default(&m);
	TH_CHECK(bench_mix_parse(&m, "split=8", NULL) == 0);
	TH_CHECK(m.key[BENCH_MIX_SPLIT].n == 1 && m.key[BENCH_MIX_SPLIT].item[0].lo == 8);
	TH_CHECK(m.key[BENCH_MIX_DTYPE].n == 4);
	TH_CHECK(bench_mix_parse(&m, "deadline=0", NULL) == 0);
	TH_CHECK(bench_mix_max_deadline(&m) == 0);
}

static void
test_mix_format_reads_back(void)
{
	struct bench_mix m, n;
	char buf[1024];

	bench_mix_default(&m);
	TH_CHECK(bench_mix_parse(&m, "split=0:2.5,6;dtype=s8,f16:3;uplink=100-200kbps,5gbps;"
			      "deadline=20ms:1,1s:4", NULL) == 0);
	bench_mix_format(&m, buf, sizeof(buf));
	memset(&n, 0, sizeof(n));
	TH_CHECK_MSG(bench_mix_parse(&n, buf, NULL) == 0, "%s", buf);
	for (unsigned k = 0; k < BENCH_MIX__COUNT; k++) {
		TH_CHECK_MSG(m.key[k].n == n.key[k].n, "key %u: %s", k, buf);
		for (unsigned i = 0; i < m.key[k].n; i++)
			TH_CHECK_MSG(m.key[k].item[i].lo == n.key[k].item[i].lo &&
				     m.key[k].item[i].hi == n.key[k].item[i].hi &&
				     m.key[k].item[i].weight == n.key[k].item[i].weight,
				     "key %u item %u: %s", k, i, buf);
	}
}

/* Each bad spec is refused whole (m unchanged) with a message naming the problem. */
static void
test_mix_bad_specs_are_refused(void)
{
	static const struct {
		const char *spec, *says;
	} bad[] = {
		{ "color=red", "unknown key" },
		{ "split", "expected key=value" },
		{ "dtype=f64", "f32, f16, s8 or u8" },
		{ "split=4-6", "ranges are for uplink" },
		{ "split=64", "split row" },
		{ "split=1.5", "split row" },
		{ "split=-1", "split row" },
		{ "uplink=2000-1000", "backwards" },
		{ "uplink=10furlongs", "a rate" },
		{ "deadline=5min", "a time" },
		{ "split=4:0", "positive" },
		{ "split=4:-1", "positive" },
		{ "split=4:", "bad weight" },
		{ "split=4,,6", "empty item" },
		{ "split=", "empty item" },
		{ "uplink=99999999999mbps", "a rate" },
		{ "split=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,"
		  "27,28,29,30,31,32", "more than" },
	};
	struct bench_mix m, before;

	bench_mix_default(&m);
	before = m;
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tg_err err = { 0 };
		int rc = bench_mix_parse(&m, bad[i].spec, &err);

		TH_CHECK_MSG(rc == -EINVAL, "'%s' accepted", bad[i].spec);
		TH_CHECK_MSG(strstr(err.msg, bad[i].says) != NULL, "'%s': message '%s'",
			     bad[i].spec, err.msg);
		TH_CHECK(m.key[BENCH_MIX_SPLIT].n == before.key[BENCH_MIX_SPLIT].n &&
			 m.key[BENCH_MIX_DTYPE].n == before.key[BENCH_MIX_DTYPE].n &&
			 m.key[BENCH_MIX_UPLINK].item[0].lo == before.key[BENCH_MIX_UPLINK].item[0].lo);
	}
	TH_CHECK(bench_mix_parse(&m, NULL, NULL) == -EINVAL);
	memset(&m, 0, sizeof(m));
	TH_CHECK(bench_mix_parse(&m, "split=4", NULL) == -EINVAL);	/* dtype etc. missing */
}

static int
write_tmp(char *path, const char *text)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void
test_mix_file_loads_and_names_bad_lines(void)
{
	char good[] = "/tmp/tg_mix_XXXXXX", badp[] = "/tmp/tg_mix_XXXXXX";
	struct bench_mix m;
	struct tg_err err = { 0 };
	char want[64];

	TH_CHECK(write_tmp(good, "# devices of the field trial\n\nsplit = 4:3, 8\n"
			   "dtype=u8 ; uplink=5mbps   # LTE\ndeadline=50ms\n") == 0);
	TH_CHECK(write_tmp(badp, "split=4\ndtype=u8\nuplink=fast\n") == 0);
	bench_mix_default(&m);
	TH_CHECK_MSG(bench_mix_load(&m, good, &err) == 0, "%s", err.msg);
	TH_CHECK(m.key[BENCH_MIX_SPLIT].n == 2 && m.key[BENCH_MIX_SPLIT].item[0].weight == 3);
	TH_CHECK(m.key[BENCH_MIX_UPLINK].item[0].lo == 5000);
	TH_CHECK(m.key[BENCH_MIX_DEADLINE].item[0].lo == 50000);
	TH_CHECK(bench_mix_load(&m, badp, &err) == -EINVAL);
	snprintf(want, sizeof(want), "%s:3:", badp);
	TH_CHECK_MSG(strstr(err.msg, want) != NULL, "message '%s'", err.msg);
	TH_CHECK(bench_mix_load(&m, "/nonexistent/mix", &err) < 0);
	unlink(good);
	unlink(badp);
}

int
main(void)
{
	TH_RUN(test_mix_default_parses);
	TH_RUN(test_mix_weights_and_ranges_draw_as_asked);
	TH_RUN(test_mix_keys_not_given_keep_theirs);
	TH_RUN(test_mix_format_reads_back);
	TH_RUN(test_mix_bad_specs_are_refused);
	TH_RUN(test_mix_file_loads_and_names_bad_lines);
	TH_DONE();
}
