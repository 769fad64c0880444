/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client: the token-bucket pacer on a virtual clock. Unpaced sends at once; a full bucket
 * lets a burst go; the long-run rate is the configured one; idle time refills only up to the
 * bucket; a datagram larger than the bucket waits for a full bucket, never forever.
 */
#include "tests/harness.h"
#include "client/tgc_int.h"

#include <math.h>

static void
test_unpaced_never_waits(void)
{
	struct tgc_pacer p;

	tgc_pacer_init(&p, 0, 1472, 1000);
	for (unsigned i = 0; i < 1000; i++) {
		TH_CHECK(tgc_pacer_delay(&p, 1472, 1000) == 0);
		tgc_pacer_take(&p, 1472, 1000);
	}
}

static void
test_full_bucket_sends_a_burst_then_waits_one_datagram_time(void)
{
	struct tgc_pacer p;
	uint64_t d;

	/* 8000 kbit/s = 1 byte per microsecond. */
	tgc_pacer_init(&p, 8000, 4 * 1000, 0);
	for (unsigned i = 0; i < 4; i++) {
		TH_CHECK(tgc_pacer_delay(&p, 1000, 0) == 0);
		tgc_pacer_take(&p, 1000, 0);
	}
	d = tgc_pacer_delay(&p, 1000, 0);
	TH_CHECK_MSG(d >= 999000 && d <= 1001000, "delay %llu ns, want 1 ms", (unsigned long long)d);
	/* Half way there: half the wait left. */
	d = tgc_pacer_delay(&p, 1000, 500000);
	TH_CHECK_MSG(d >= 499000 && d <= 501000, "delay %llu ns, want 0.5 ms",
		     (unsigned long long)d);
}

static void
test_long_run_rate_is_the_configured_rate(void)
{
	struct tgc_pacer p;
	uint64_t now = 0, burst = 4 * 1472;
	double want_s, got_s;

	tgc_pacer_init(&p, 1000, (uint32_t)burst, 0);	/* 1 Mbit/s */
	for (unsigned i = 0; i < 2000; i++) {
		now += tgc_pacer_delay(&p, 1000, now);
		tgc_pacer_take(&p, 1000, now);
	}
	/* 2,000,000 bytes less the first burst, at 125,000 bytes/s. */
	want_s = (2000.0 * 1000 - (double)burst + 1000) / 125000.0;
	got_s = (double)now / 1e9;
	TH_CHECK_MSG(fabs(got_s - want_s) / want_s < 0.01, "took %.4f s, want %.4f s", got_s,
		     want_s);
}

static void
test_idle_refills_only_up_to_the_bucket(void)
{
	struct tgc_pacer p;
	unsigned free_sends = 0;

	tgc_pacer_init(&p, 8000, 3000, 0);
	tgc_pacer_take(&p, 3000, 0);
	/* Ten idle seconds would be 10 MB of tokens: only 3000 bytes may be kept. */
	for (unsigned i = 0; i < 10; i++) {
		if (tgc_pacer_delay(&p, 1000, 10000000000ull) != 0)
			break;
		tgc_pacer_take(&p, 1000, 10000000000ull);
		free_sends++;
	}
	TH_CHECK_MSG(free_sends == 3, "%u sends without waiting, want 3", free_sends);
}

static void
test_datagram_larger_than_the_bucket_waits_for_a_full_one(void)
{
	struct tgc_pacer p;
	uint64_t d;

	tgc_pacer_init(&p, 8000, 1000, 0);
	TH_CHECK(tgc_pacer_delay(&p, 5000, 0) == 0);	/* full bucket: goes, into debt */
	tgc_pacer_take(&p, 5000, 0);
	d = tgc_pacer_delay(&p, 5000, 0);		/* 4000 debt + 1000 to fill: 5 ms */
	TH_CHECK_MSG(d >= 4999000 && d <= 5001000, "delay %llu ns, want 5 ms",
		     (unsigned long long)d);
}

int
main(void)
{
	TH_RUN(test_unpaced_never_waits);
	TH_RUN(test_full_bucket_sends_a_burst_then_waits_one_datagram_time);
	TH_RUN(test_long_run_rate_is_the_configured_rate);
	TH_RUN(test_idle_refills_only_up_to_the_bucket);
	TH_RUN(test_datagram_larger_than_the_bucket_waits_for_a_full_one);
	TH_DONE();
}
