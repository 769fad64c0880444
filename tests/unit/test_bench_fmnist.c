/* SPDX-License-Identifier: Apache-2.0 */
#include "bench/bench.h"
#include "tests/harness.h"
#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static void
be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A plain idx3 image file of n images rows x cols whose pixel k of image i is (i + k) & 255. */
static uint8_t *
idx3(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols, size_t n_data, size_t *len)
{
	uint8_t *b = calloc(1, 16 + n_data);

	be32(b, magic);
	be32(b + 4, n);
	be32(b + 8, rows);
	be32(b + 12, cols);
	for (size_t k = 0; k < n_data; k++)
		b[16 + k] = (uint8_t)((k / (rows * cols)) + (k % (rows * cols)));
	*len = 16 + n_data;
	return b;
}

/* gzip (not zlib) wrapping of buf, as Debian's files are. */
static uint8_t *
gzip(const uint8_t *buf, size_t len, size_t *out_len)
{
	z_stream zs = { 0 };
	size_t cap = len + len / 100 + 1024;
	uint8_t *out = malloc(cap);

	if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	zs.next_in = (Bytef *)(uintptr_t)buf;
	zs.avail_in = (uInt)len;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
		abort();
	*out_len = cap - zs.avail_out;
	deflateEnd(&zs);
	return out;
}

static void
test_fmnist_test_split_has_10000_labeled_images(void)
{
	struct bench_fmnist ds = { 0 };
	struct tg_err err = { 0 };
	unsigned per_class[BENCH_FMNIST_CLASSES] = { 0 };
	float lo = 1, hi = 0;
	int rc;

	if (access(BENCH_FMNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
		TH_SKIP("%s absent (Debian dataset-fashion-mnist)", BENCH_FMNIST_DIR);
		return;
	}
	rc = bench_fmnist_load(NULL, false, 0, &ds, &err);
	TH_CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc < 0)
		return;
	TH_CHECK(ds.n == 10000);
	TH_CHECK(ds.images.dtype == TG_DT_F32 && ds.images.ndim == 4);
	TH_CHECK(ds.images.dims[0] == 10000 && ds.images.dims[1] == 1 &&
		 ds.images.dims[2] == 28 && ds.images.dims[3] == 28);
	for (size_t i = 0; i < ds.n; i++) {
		TH_CHECK(ds.labels[i] < BENCH_FMNIST_CLASSES);
		if (ds.labels[i] < BENCH_FMNIST_CLASSES)
			per_class[ds.labels[i]]++;
	}
	/* The test split is balanced: 1,000 images per class. */
	for (int c = 0; c < BENCH_FMNIST_CLASSES; c++)
		TH_CHECK_MSG(per_class[c] == 1000, "class %d: %u", c, per_class[c]);
	for (size_t k = 0; k < tg_tensor_numel(&ds.images); k++) {
		float v = ((float *)ds.images.data)[k];

		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
	}
	TH_CHECK_MSG(lo == 0.0f && hi == 1.0f, "pixels in [%g, %g]", lo, hi);
	bench_fmnist_free(&ds);
}

static void
test_fmnist_limit_loads_a_prefix(void)
{
	struct bench_fmnist all = { 0 }, some = { 0 };
	struct tg_err err = { 0 };

	if (access(BENCH_FMNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
		TH_SKIP("%s absent (Debian dataset-fashion-mnist)", BENCH_FMNIST_DIR);
		return;
	}
	TH_CHECK_MSG(bench_fmnist_load(NULL, false, 0, &all, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(bench_fmnist_load(NULL, false, 37, &some, &err) == 0, "%s", err.msg);
	if (all.n == 10000 && some.n == 37) {
		TH_CHECK(some.images.dims[0] == 37);
		TH_CHECK(memcmp(all.images.data, some.images.data, tg_tensor_bytes(&some.images)) == 0);
		TH_CHECK(memcmp(all.labels, some.labels, 37) == 0);
	} else {
		TH_CHECK_MSG(0, "n %zu and %zu", all.n, some.n);
	}
	bench_fmnist_free(&all);
	bench_fmnist_free(&some);
}

static void
test_fmnist_missing_dir_is_enoent(void)
{
	struct bench_fmnist ds = { 0 };
	struct tg_err err = { 0 };

	TH_CHECK(bench_fmnist_load("/nonexistent/fmnist", false, 0, &ds, &err) == -ENOENT);
	TH_CHECK(ds.labels == NULL && ds.images.data == NULL);
}

static void
test_fmnist_plain_and_gzip_images_parse_alike(void)
{
	size_t len, zlen;
	uint8_t *raw = idx3(0x803, 3, 28, 28, 3 * 784, &len), *gz = gzip(raw, len, &zlen);
	struct tg_tensor a = { 0 }, b = { 0 };
	struct tg_err err = { 0 };

	TH_CHECK_MSG(bench_fmnist_images_parse(raw, len, "raw", 0, &a, &err) == 0, "%s", err.msg);
	TH_CHECK_MSG(bench_fmnist_images_parse(gz, zlen, "gz", 0, &b, &err) == 0, "%s", err.msg);
	TH_CHECK(a.ndim == 4 && a.dims[0] == 3 && b.dims[0] == 3);
	if (a.data && b.data) {
		TH_CHECK(memcmp(a.data, b.data, tg_tensor_bytes(&a)) == 0);
		/* image 2, pixel 5: (2 + 5) / 255 */
		TH_CHECK(((float *)a.data)[2 * 784 + 5] == 7.0f / 255.0f);
	}
	tg_tensor_free(&a);
	tg_tensor_free(&b);
	free(raw);
	free(gz);
}

static void
test_fmnist_rejects_bad_magic(void)
{
	size_t len;
	uint8_t *raw = idx3(0x801, 3, 28, 28, 3 * 784, &len);
	struct tg_tensor t = { 0 };
	struct tg_err err = { 0 };

	TH_CHECK(bench_fmnist_images_parse(raw, len, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "magic") != NULL, "%s", err.msg);
	TH_CHECK(t.data == NULL);
	free(raw);
}

static void
test_fmnist_rejects_count_over_bound_before_allocating(void)
{
	size_t len;
	uint8_t *raw = idx3(0x803, 0xffffffffu, 28, 28, 784, &len);
	struct tg_tensor t = { 0 };
	struct tg_err err = { 0 };

	TH_CHECK(bench_fmnist_images_parse(raw, len, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "items") != NULL, "%s", err.msg);
	be32(raw + 4, 0);
	TH_CHECK(bench_fmnist_images_parse(raw, len, NULL, 0, &t, &err) == -EINVAL);
	free(raw);
}

static void
test_fmnist_rejects_other_image_sizes(void)
{
	size_t len;
	uint8_t *raw = idx3(0x803, 1, 32, 32, 32 * 32, &len);
	struct tg_tensor t = { 0 };
	struct tg_err err = { 0 };

	TH_CHECK(bench_fmnist_images_parse(raw, len, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "32x32") != NULL, "%s", err.msg);
	free(raw);
}

static void
test_fmnist_rejects_data_shorter_or_longer_than_header(void)
{
	size_t len;
	uint8_t *raw = idx3(0x803, 3, 28, 28, 3 * 784, &len);
	struct tg_tensor t = { 0 };
	struct tg_err err = { 0 };

	TH_CHECK(bench_fmnist_images_parse(raw, len - 1, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "ends in image 2") != NULL, "%s", err.msg);
	TH_CHECK(t.data == NULL);
	TH_CHECK(bench_fmnist_images_parse(raw, 10, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "truncated header") != NULL, "%s", err.msg);
	be32(raw + 4, 2);
	TH_CHECK(bench_fmnist_images_parse(raw, len, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "beyond") != NULL, "%s", err.msg);
	/* A prefix is fine: the rest is not read. */
	TH_CHECK_MSG(bench_fmnist_images_parse(raw, len, NULL, 1, &t, &err) == 0, "%s", err.msg);
	TH_CHECK(t.dims[0] == 1);
	tg_tensor_free(&t);
	free(raw);
}

static void
test_fmnist_rejects_truncated_and_corrupt_gzip(void)
{
	size_t len, zlen;
	uint8_t *raw = idx3(0x803, 3, 28, 28, 3 * 784, &len), *gz = gzip(raw, len, &zlen);
	struct tg_tensor t = { 0 };
	struct tg_err err = { 0 };

	TH_CHECK(bench_fmnist_images_parse(gz, zlen / 2, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "gzip") != NULL || strstr(err.msg, "ends") != NULL, "%s",
		     err.msg);
	TH_CHECK(t.data == NULL);
	gz[3] = 0xff;	/* FLG with reserved bits set */
	TH_CHECK(bench_fmnist_images_parse(gz, zlen, NULL, 0, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "gzip") != NULL, "%s", err.msg);
	free(raw);
	free(gz);
}

static void
test_fmnist_labels_checked_for_range(void)
{
	uint8_t buf[8 + 4];
	uint8_t *lab = NULL;
	size_t n = 0;
	struct tg_err err = { 0 };

	be32(buf, 0x801);
	be32(buf + 4, 4);
	memcpy(buf + 8, "\0\3\11\5", 4);
	TH_CHECK_MSG(bench_fmnist_labels_parse(buf, sizeof(buf), NULL, 0, &lab, &n, &err) == 0, "%s",
		     err.msg);
	TH_CHECK(n == 4 && lab && lab[2] == 9);
	free(lab);
	lab = NULL;
	buf[10] = 10;
	TH_CHECK(bench_fmnist_labels_parse(buf, sizeof(buf), NULL, 0, &lab, &n, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "label 10") != NULL, "%s", err.msg);
	TH_CHECK(lab == NULL);
	be32(buf, 0x803);
	TH_CHECK(bench_fmnist_labels_parse(buf, sizeof(buf), NULL, 0, &lab, &n, &err) == -EINVAL);
}

int
main(void)
{
	TH_RUN(test_fmnist_test_split_has_10000_labeled_images);
	TH_RUN(test_fmnist_limit_loads_a_prefix);
	TH_RUN(test_fmnist_missing_dir_is_enoent);
	TH_RUN(test_fmnist_plain_and_gzip_images_parse_alike);
	TH_RUN(test_fmnist_rejects_bad_magic);
	TH_RUN(test_fmnist_rejects_count_over_bound_before_allocating);
	TH_RUN(test_fmnist_rejects_other_image_sizes);
	TH_RUN(test_fmnist_rejects_data_shorter_or_longer_than_header);
	TH_RUN(test_fmnist_rejects_truncated_and_corrupt_gzip);
	TH_RUN(test_fmnist_labels_checked_for_range);
	TH_DONE();
}
