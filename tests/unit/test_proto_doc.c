/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto: the worked examples of docs/protocol.md are what the encoders produce, byte for
 * byte, and decode to what the text says. The examples are built here, so this program is
 * also their generator:
 *   test_proto_doc                    check the examples in docs/protocol.md (run from the
 *                                     repository root, as make test does)
 *   test_proto_doc --print            print the examples as the document's hex blocks
 *   test_proto_doc --write-corpus DIR write every example datagram to DIR (fuzz seeds)
 */
#include "tests/harness.h"
#include "proto/proto.h"

#include <errno.h>
#include <stdlib.h>

#define DOC_PATH "docs/protocol.md"

enum { EX_MAX = 16, EX_DGRAM = 120 };	/* the request example's (artificially small) MTU */

struct example {
	char name[32];
	uint8_t bytes[PROTO_HELLO_MIN_DGRAM];
	size_t len;
	size_t shown;			/* bytes the document shows (HELLO: its fixed part) */
};

static struct example ex[EX_MAX];
static unsigned n_ex;

/* The 64-byte u8 feature map of the example: post-ReLU, so mostly zeros. */
static const uint8_t ex_tensor[64] = {
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
	0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0, 17, 42,  0,  0,
	9, 88, 120, 3, 0, 61, 200, 14, 77, 5, 0, 0, 31, 255, 19, 64,
	2,  0, 45, 96, 0,  0, 12, 0,  0,  0,  0,  0,  0,  0,  0,  0,
};

static uint8_t ex_key[PROTO_KEY_LEN];	/* 00 01 .. 1f: the sealed example's key */

static const struct proto_hdr ex_hdr = {
	.client_id = 42, .request_id = 7, .session_id = 0x8f3a61c2d4b70e19ull,
};

static struct example *
ex_add(const char *name)
{
	struct example *e = &ex[n_ex++];

	snprintf(e->name, sizeof(e->name), "%s", name);
	return e;
}

static int
ex_build(void)
{
	static uint8_t out[4096];
	static struct proto_dgram dg[8];
	struct proto_catalog_entry cat[2] = {
		{ .model_id = PROTO_MODEL_ECHO, .dtype_mask = 0x1f, .name = "echo" },
		{ .model_id = 1, .variant_id = 0, .split_id = 3, .ndim = 4, .dtype_mask = 0x1e,
		  .n_classes = 10, .dims = { 1, 2, 4, 8 }, .head_kflop = 1840, .tail_kflop = 5230,
		  .tail_us = 410, .accuracy_bp = 9120, .n_exits = 1, .name = "fmnist-resnet" },
	};
	struct proto_hello hello = { .compute_mflops = 2000, .uplink_kbps = 10000,
				     .rtt_us = 3000, .slo_us = 25000, .accuracy_floor_bp = 9000,
				     .max_dgram = PROTO_DEFAULT_DGRAM, .catalog_start = 0 };
	struct proto_hello_reply hr = { .session_ttl_ms = 60000, .max_msg_bytes = 4u << 20,
					.catalog_gen = 1, .max_dgram = PROTO_DEFAULT_DGRAM,
					.max_chunks = 4096, .max_inflight = 8, .nack_gap_ms = 10,
					.reasm_timeout_ms = 200, .catalog_total = 2,
					.catalog_start = 0, .catalog_count = 2 };
	struct proto_request req = {
		.c = { .model_id = 1, .variant_id = 0, .split_id = 3,
		       .t = { .dtype = PROTO_DT_U8, .ndim = 4, .dims = { 1, 2, 4, 8 },
			      .raw_total = 64, .scale = 0.0625f, .zero_point = 0 } },
		.top_k = 3, .flags = 0, .deadline_us = 20000,
	};
	struct proto_nack nack = { .chunk_count = 3, .n_ranges = 1, .ranges = { { 1, 1 } } };
	struct proto_topk top[3] = { { 7, 0.8125f }, { 5, 0.125f }, { 9, 0.03125f } };
	struct proto_response resp = { .c = { .model_id = 1, .variant_id = 0, .split_id = 3 },
				       .status = PROTO_ST_OK, .exit_taken = 0,
				       .advice_variant = 0, .advice_split = 2,
				       .batch_size = 6, .queue_us = 350, .compute_us = 1420,
				       .advice_latency_us = 7800 };
	struct proto_hdr h = ex_hdr;
	uint8_t topk_scratch[24];
	uint8_t v2[48];
	struct example *e, *nk;
	unsigned n = 0;
	int rc;

	n_ex = 0;
	/* HELLO: a first one, no session yet; request_id is the client's nonce */
	h.session_id = 0;
	h.request_id = 1;
	e = ex_add("hello");
	rc = proto_encode_hello(e->bytes, sizeof(e->bytes), &h, &hello, PROTO_HELLO_MIN_DGRAM);
	if (rc < 0)
		return rc;
	e->len = (size_t)rc;
	e->shown = PROTO_HELLO_LEN;
	/* HELLO_REPLY: the session, the limits, the whole (two-entry) catalog */
	h.session_id = ex_hdr.session_id;
	e = ex_add("hello-reply");
	rc = proto_encode_hello_reply(e->bytes, sizeof(e->bytes), &h, &hr, cat);
	if (rc < 0)
		return rc;
	e->len = e->shown = (size_t)rc;
	/* REQUEST: 64 bytes of u8 in three chunks of at most EX_DGRAM bytes */
	rc = proto_request_chunk(&ex_hdr, &req, ex_tensor, EX_DGRAM, true, out, sizeof(out), dg,
				 8, &n);
	if (rc < 0)
		return rc;
	if (n != 3)
		return -EDOM;
	for (unsigned i = 0; i < n; i++) {
		e = ex_add(i == 0 ? "request-0" : i == 1 ? "request-1" : "request-2");
		memcpy(e->bytes, dg[i].data, dg[i].len);
		e->len = e->shown = dg[i].len;
	}
	/* NACK: chunk 1 went missing */
	e = ex_add("nack");
	rc = proto_encode_nack(e->bytes, sizeof(e->bytes), &ex_hdr, &nack);
	if (rc < 0)
		return rc;
	e->len = e->shown = (size_t)rc;
	/* The same NACK sealed: CRC32C, then keyed BLAKE2b-128 under the key 00 01 .. 1f. */
	nk = e;
	e = ex_add("nack-crc");
	memcpy(e->bytes, nk->bytes, (size_t)rc);
	e->len = e->shown = (size_t)rc;
	if (proto_seal_crc(e->bytes, e->len) < 0)
		return -EINVAL;
	e = ex_add("nack-mac");
	memcpy(e->bytes, nk->bytes, (size_t)rc);
	e->len = e->shown = (size_t)rc;
	for (unsigned i = 0; i < PROTO_KEY_LEN; i++)
		ex_key[i] = (uint8_t)i;
	if (proto_seal_mac(e->bytes, e->len, ex_key) < 0)
		return -EINVAL;
	/* RESPONSE: top-3 with timing and split advice */
	e = ex_add("response");
	rc = proto_response_set_topk(&resp, topk_scratch, top, 3);
	if (rc == 0)
		rc = proto_encode_response(e->bytes, sizeof(e->bytes), &ex_hdr, &resp);
	if (rc < 0)
		return rc;
	e->len = e->shown = (size_t)rc;
	/* ERROR: the answer to a 48-byte datagram of version 2 */
	memcpy(v2, ex[2].bytes, sizeof(v2));
	v2[PROTO_OFF_VERSION] = 2;
	e = ex_add("error-version");
	rc = proto_error_reply(e->bytes, sizeof(e->bytes), v2, sizeof(v2),
			       PROTO_ST_UNSUPPORTED_VERSION, PROTO_E_BAD_VERSION);
	if (rc < 0)
		return rc;
	e->len = e->shown = (size_t)rc;
	return 0;
}

static void
ex_print(void)
{
	for (unsigned i = 0; i < n_ex; i++) {
		printf("<!-- example:%s -->\n```text\n", ex[i].name);
		for (size_t o = 0; o < ex[i].shown; o += 16) {
			printf("%04zx ", o);
			for (size_t k = o; k < o + 16 && k < ex[i].shown; k++)
				printf("%s%02x", k == o + 8 ? "  " : " ", ex[i].bytes[k]);
			printf("\n");
		}
		printf("```\n(%zu bytes%s)\n\n", ex[i].len,
		       ex[i].shown < ex[i].len ? "; the rest is zero padding" : "");
	}
}

static int
ex_write_corpus(const char *dir)
{
	char path[4096];

	for (unsigned i = 0; i < n_ex; i++) {
		FILE *f;

		if (snprintf(path, sizeof(path), "%s/seed-%s", dir, ex[i].name) >=
		    (int)sizeof(path))
			return 1;
		f = fopen(path, "wb");
		if (f == NULL || fwrite(ex[i].bytes, 1, ex[i].len, f) != ex[i].len) {
			perror(path);
			if (f)
				fclose(f);
			return 1;
		}
		fclose(f);
	}
	return 0;
}

/*
 * The bytes of the block after "<!-- example:NAME -->": lines "OFFSET xx xx ...", until the
 * closing fence. Returns how many, or -1 when the block is missing or malformed.
 */
static long
doc_block(const char *doc, const char *name, uint8_t *out, size_t cap)
{
	char marker[64];
	const char *p;
	size_t n = 0;

	snprintf(marker, sizeof(marker), "<!-- example:%s -->", name);
	p = strstr(doc, marker);
	if (p == NULL || (p = strstr(p, "```text\n")) == NULL)
		return -1;
	p += 8;
	while (*p && strncmp(p, "```", 3) != 0) {
		const char *eol = strchr(p, '\n');
		char *end;

		if (eol == NULL)
			return -1;
		strtoul(p, &end, 16);	/* the offset column */
		p = end;
		while (p < eol) {
			unsigned long v = strtoul(p, &end, 16);

			if (end == p)
				break;
			if (n == cap || v > 0xff)
				return -1;
			out[n++] = (uint8_t)v;
			p = end;
		}
		p = eol + 1;
	}
	return (long)n;
}

static char *doc;

static void
test_doc_examples_are_the_encoders_bytes(void)
{
	uint8_t b[PROTO_HELLO_MIN_DGRAM];

	if (doc == NULL) {
		TH_SKIP("%s not found (run from the repository root)", DOC_PATH);
		return;
	}
	for (unsigned i = 0; i < n_ex; i++) {
		long n = doc_block(doc, ex[i].name, b, sizeof(b));

		TH_CHECK_MSG(n == (long)ex[i].shown, "example %s: %ld bytes, want %zu", ex[i].name,
			     n, ex[i].shown);
		if (n == (long)ex[i].shown)
			TH_CHECK_MSG(memcmp(b, ex[i].bytes, (size_t)n) == 0,
				     "example %s differs from the encoder's", ex[i].name);
	}
}

/* What the document says about its examples, checked on the document's own bytes. */
static void
test_doc_examples_decode_as_described(void)
{
	uint8_t b[PROTO_HELLO_MIN_DGRAM], slot[64];
	struct proto_catalog_entry ce;
	struct proto_topk k;
	struct proto_msg m;
	long n;

	if (doc == NULL) {
		TH_SKIP("%s not found (run from the repository root)", DOC_PATH);
		return;
	}
	memset(b, 0, sizeof(b));	/* the HELLO's padding, which the document leaves out */
	n = doc_block(doc, "hello", b, sizeof(b));
	TH_CHECK(n == PROTO_HELLO_LEN);
	TH_CHECK(proto_decode(b, PROTO_HELLO_MIN_DGRAM, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.h.type == PROTO_T_HELLO && m.h.client_id == 42 && m.h.session_id == 0);
	TH_CHECK(m.u.hello.slo_us == 25000 && m.u.hello.accuracy_floor_bp == 9000);

	n = doc_block(doc, "hello-reply", b, sizeof(b));
	TH_CHECK(n > 0 && proto_decode(b, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.h.type == PROTO_T_HELLO_REPLY && m.h.session_id == 0x8f3a61c2d4b70e19ull);
	TH_CHECK(m.u.hello_reply.catalog_count == 2);
	proto_catalog_get(&m.u.hello_reply, 1, &ce);
	TH_CHECK(ce.model_id == 1 && ce.split_id == 3 && strcmp(ce.name, "fmnist-resnet") == 0);

	memset(slot, 0xee, sizeof(slot));
	for (unsigned i = 0; i < 3; i++) {
		static const char *const names[] = { "request-0", "request-1", "request-2" };

		n = doc_block(doc, names[i], b, sizeof(b));
		TH_CHECK(n > 0 && n <= EX_DGRAM);
		TH_CHECK(proto_decode(b, (size_t)n, NULL, &m, NULL) == PROTO_OK);
		TH_CHECK(m.h.type == PROTO_T_REQUEST && m.h.request_id == 7);
		TH_CHECK(m.u.req.c.index == i && m.u.req.c.count == 3);
		TH_CHECK(m.u.req.c.model_id == 1 && m.u.req.c.split_id == 3);
		TH_CHECK(m.u.req.c.t.dtype == PROTO_DT_U8 && m.u.req.c.t.scale == 0.0625f);
		TH_CHECK(m.u.req.c.lz4 == (i == 0));	/* as the document describes them */
		TH_CHECK(proto_chunk_unpack(&m.u.req.c, slot, sizeof(slot), NULL) == PROTO_OK);
	}
	TH_CHECK(memcmp(slot, ex_tensor, 64) == 0);

	n = doc_block(doc, "nack", b, sizeof(b));
	TH_CHECK(n > 0 && proto_decode(b, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.nack.n_ranges == 1 && m.u.nack.ranges[0].first == 1);

	n = doc_block(doc, "nack-crc", b, sizeof(b));
	TH_CHECK(n == 52 && proto_crc_ok(b, (size_t)n));
	TH_CHECK(proto_decode(b, (size_t)n, NULL, &m, NULL) == PROTO_OK && m.h.flags == PROTO_F_CRC);
	n = doc_block(doc, "nack-mac", b, sizeof(b));
	TH_CHECK(n == 52 && proto_mac_ok(b, (size_t)n, ex_key));
	TH_CHECK(proto_decode(b, (size_t)n, NULL, &m, NULL) == PROTO_OK && m.h.flags == PROTO_F_MAC);

	n = doc_block(doc, "response", b, sizeof(b));
	TH_CHECK(n > 0 && proto_decode(b, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.resp.top_k == 3 && m.u.resp.advice_split == 2 && m.u.resp.batch_size == 6);
	proto_topk_get(&m.u.resp, 0, &k);
	TH_CHECK(k.class_id == 7 && k.score == 0.8125f);

	n = doc_block(doc, "error-version", b, sizeof(b));
	TH_CHECK(n == PROTO_ERROR_LEN && proto_decode(b, (size_t)n, NULL, &m, NULL) == PROTO_OK);
	TH_CHECK(m.u.error.status == PROTO_ST_UNSUPPORTED_VERSION && m.u.error.max_version == 1);
}

static void
test_doc_example_crc32c(void)
{
	/* the echo example in the document: CRC32C of the example tensor */
	uint32_t crc = proto_crc32c(0, ex_tensor, sizeof(ex_tensor));
	char want[32];

	if (doc == NULL) {
		TH_SKIP("%s not found (run from the repository root)", DOC_PATH);
		return;
	}
	snprintf(want, sizeof(want), "0x%08X", crc);
	TH_CHECK_MSG(strstr(doc, want) != NULL, "document lacks the example's CRC32C %s", want);
}

static void
upper(char *dst, const char *src, size_t cap)
{
	size_t i;

	for (i = 0; i + 1 < cap && src[i]; i++)
		dst[i] = src[i] >= 'a' && src[i] <= 'z' ? (char)(src[i] - 32) : src[i];
	dst[i] = 0;
}

/* Sections 10's tables list every status and reason with its wire value and label. */
static void
test_doc_code_tables_match_the_header(void)
{
	char row[160], a[48], b[48];

	if (doc == NULL) {
		TH_SKIP("%s not found (run from the repository root)", DOC_PATH);
		return;
	}
	for (unsigned i = 0; i < PROTO_ST__COUNT; i++) {
		upper(a, proto_status_name(i), sizeof(a));
		snprintf(row, sizeof(row), "\n| %u | %s | `%s` |", i, a, proto_status_name(i));
		TH_CHECK_MSG(strstr(doc, row) != NULL, "no status row \"%s\"", row + 1);
	}
	for (unsigned i = 0; i < PROTO_REASON__COUNT; i++) {
		upper(a, proto_reason_name(i), sizeof(a));
		upper(b, proto_status_name(proto_reason_status(i)), sizeof(b));
		snprintf(row, sizeof(row), "\n| %u | PROTO_%s%s | `%s` | %s |", i, i ? "E_" : "", a,
			 proto_reason_name(i), b);
		TH_CHECK_MSG(strstr(doc, row) != NULL, "no reason row \"%s\"", row + 1);
	}
}

int
main(int argc, char **argv)
{
	FILE *f;
	long sz;
	int rc = ex_build();

	if (rc < 0) {
		fprintf(stderr, "building the examples: %d\n", rc);
		return 1;
	}
	if (argc > 1 && strcmp(argv[1], "--print") == 0) {
		ex_print();
		printf("echo CRC32C of the example tensor: 0x%08X\n",
		       proto_crc32c(0, ex_tensor, sizeof(ex_tensor)));
		return 0;
	}
	if (argc > 2 && strcmp(argv[1], "--write-corpus") == 0)
		return ex_write_corpus(argv[2]);
	f = fopen(DOC_PATH, "rb");
	if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) > 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (doc = calloc(1, (size_t)sz + 1)) != NULL &&
	    fread(doc, 1, (size_t)sz, f) != (size_t)sz) {
		free(doc);
		doc = NULL;
	}
	if (f != NULL)
		fclose(f);
	TH_RUN(test_doc_examples_are_the_encoders_bytes);
	TH_RUN(test_doc_examples_decode_as_described);
	TH_RUN(test_doc_example_crc32c);
	TH_RUN(test_doc_code_tables_match_the_header);
	free(doc);
	TH_DONE();
}
