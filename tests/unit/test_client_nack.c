/* SPDX-License-Identifier: Apache-2.0 */
/*
 * client: NACK bookkeeping. The chunks a NACK lists are marked once each, across bitmap
 * words; a NACK about another chunk count or with a range past the message is ignored whole.
 */
#include "tests/harness.h"
#include "client/tgc_int.h"

#include <string.h>

static unsigned
popcount_words(const uint64_t *w, size_t n)
{
	unsigned c = 0;

	for (size_t i = 0; i < n; i++)
		c += (unsigned)__builtin_popcountll(w[i]);
	return c;
}

static void
test_one_range_marks_exactly_its_chunks(void)
{
	struct proto_nack n = { .chunk_count = 10, .n_ranges = 1, .ranges = { { 3, 2 } } };
	uint64_t bm[1] = { 0 };

	TH_CHECK(tgc_nack_mark(&n, 10, bm) == 2);
	TH_CHECK(bm[0] == ((1ull << 3) | (1ull << 4)));
}

static void
test_ranges_across_words_and_the_last_chunk(void)
{
	struct proto_nack n = { .chunk_count = 200, .n_ranges = 3,
				.ranges = { { 0, 1 }, { 62, 4 }, { 199, 1 } } };
	uint64_t bm[4] = { 0 };

	TH_CHECK(tgc_bitmap_words(200) == 4);
	TH_CHECK(tgc_nack_mark(&n, 200, bm) == 6);
	TH_CHECK(bm[0] == (1ull | (1ull << 62) | (1ull << 63)));
	TH_CHECK(bm[1] == 3ull);
	TH_CHECK(bm[3] == (1ull << (199 - 192)));
	TH_CHECK(popcount_words(bm, 4) == 6);
}

static void
test_a_repeated_nack_marks_nothing_new(void)
{
	struct proto_nack n = { .chunk_count = 70, .n_ranges = 1, .ranges = { { 10, 5 } } };
	uint64_t bm[2] = { 0 };

	TH_CHECK(tgc_nack_mark(&n, 70, bm) == 5);
	TH_CHECK(tgc_nack_mark(&n, 70, bm) == 0);
	TH_CHECK(popcount_words(bm, 2) == 5);
}

static void
test_nack_for_another_message_is_ignored(void)
{
	struct proto_nack n = { .chunk_count = 12, .n_ranges = 1, .ranges = { { 0, 1 } } };
	uint64_t bm[1] = { 0 };

	TH_CHECK(tgc_nack_mark(&n, 10, bm) == 0);
	TH_CHECK(bm[0] == 0);
}

static void
test_range_past_the_message_ignores_the_whole_nack(void)
{
	struct proto_nack n = { .chunk_count = 10, .n_ranges = 2,
				.ranges = { { 1, 1 }, { 8, 3 } } };
	uint64_t bm[1] = { 0 };

	TH_CHECK(tgc_nack_mark(&n, 10, bm) == 0);
	TH_CHECK(bm[0] == 0);
}

static void
test_nack_from_bitmap_round_trips(void)
{
	/* The gateway's side builds NACKs with proto_nack_from_bitmap: what it lists as missing
	 * is exactly what the client marks. */
	uint64_t received[2] = { ~0ull, ~0ull }, bm[2] = { 0 };
	struct proto_nack n;

	received[0] &= ~((1ull << 5) | (1ull << 6) | (1ull << 40));
	received[1] &= ~(1ull << 2);
	TH_CHECK(proto_nack_from_bitmap(&n, received, 100, PROTO_MAX_NACK_RANGES) == 3);
	n.chunk_count = 100;
	TH_CHECK(tgc_nack_mark(&n, 100, bm) == 4);
	TH_CHECK(bm[0] == ((1ull << 5) | (1ull << 6) | (1ull << 40)));
	TH_CHECK(bm[1] == (1ull << 2));
}

static void
test_wire_dtypes(void)
{
	TH_CHECK(tgc_wire_dtype(TG_DT_F32) == PROTO_DT_F32);
	TH_CHECK(tgc_wire_dtype(TG_DT_F16) == PROTO_DT_F16);
	TH_CHECK(tgc_wire_dtype(TG_DT_S8) == PROTO_DT_S8);
	TH_CHECK(tgc_wire_dtype(TG_DT_U8) == PROTO_DT_U8);
	TH_CHECK(tgc_wire_dtype(TG_DT_S32) == PROTO_DT_RAW);
	TH_CHECK(tgc_wire_dtype(TG_DT_F64) == PROTO_DT_RAW);
}

int
main(void)
{
	TH_RUN(test_one_range_marks_exactly_its_chunks);
	TH_RUN(test_ranges_across_words_and_the_last_chunk);
	TH_RUN(test_a_repeated_nack_marks_nothing_new);
	TH_RUN(test_nack_for_another_message_is_ignored);
	TH_RUN(test_range_past_the_message_ignores_the_whole_nack);
	TH_RUN(test_nack_from_bitmap_round_trips);
	TH_RUN(test_wire_dtypes);
	TH_DONE();
}
