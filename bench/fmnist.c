/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fashion-MNIST in its idx files (gzip'd as Debian ships them, or plain): the demo model's
 * test set for tailgate-model eval and the accuracy checks. The compressed file is read whole
 * with io_uring, then inflated in memory; the idx header is checked before anything sized by
 * it is allocated, so a corrupt or hostile file costs at most the bounds below.
 */
#include "bench/bench.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <zlib.h>

enum {
	BENCH_FMNIST_MAGIC_IMAGES = 0x00000803,	/* ubyte, 3 dims: count, rows, cols */
	BENCH_FMNIST_MAGIC_LABELS = 0x00000801,	/* ubyte, 1 dim: count */
	BENCH_FMNIST_PIXELS = BENCH_FMNIST_ROWS * BENCH_FMNIST_COLS,
	/* The training images gzip'd are 26 MB; anything far past that is not this data set. */
	BENCH_FMNIST_MAX_FILE = 256 << 20,
};

/* A byte source over a whole file image: gzip members inflated as they are read, or plain. */
struct bench_fmnist_src {
	const char *what;	/* names the file in errors */
	bool gz;
	z_stream zs;		/* gz: input is the whole image, output what read() asks for */
	const uint8_t *buf;	/* !gz: the image and how far we are in it */
	size_t len, pos;
	bool eof;		/* gz: the last member ended */
};

static int
bench_fmnist_src_open(struct bench_fmnist_src *s, const char *what, const uint8_t *buf, size_t len,
		   struct tg_err *err)
{
	memset(s, 0, sizeof(*s));
	s->what = what;
	s->buf = buf;
	s->len = len;
	s->gz = len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
	if (!s->gz)
		return 0;
	/* zlib's avail_in is a uInt; the file bound keeps us far below it. */
	if (len > UINT32_MAX)
		return tg_err_set(err, -EFBIG, "%s: %zu bytes is too large", what, len);
	s->zs.next_in = (Bytef *)(uintptr_t)buf;
	s->zs.avail_in = (uInt)len;
	/* 16 + MAX_WBITS: gzip wrapper only, so a plain file is never taken for zlib data. */
	if (inflateInit2(&s->zs, 16 + MAX_WBITS) != Z_OK)
		return tg_err_set(err, -ENOMEM, "%s: inflateInit2 failed", what);
	return 0;
}

static void
bench_fmnist_src_close(struct bench_fmnist_src *s)
{
	if (s->gz)
		inflateEnd(&s->zs);
}

/*
 * Read up to n bytes into dst; fewer only at the end of the data.
 * @return bytes read, or -EINVAL when the gzip stream is corrupt.
 */
static ssize_t
bench_fmnist_src_read(struct bench_fmnist_src *s, uint8_t *dst, size_t n, struct tg_err *err)
{
	if (!s->gz) {
		size_t k = s->len - s->pos < n ? s->len - s->pos : n;

		memcpy(dst, s->buf + s->pos, k);
		s->pos += k;
		return (ssize_t)k;
	}
	s->zs.next_out = dst;
	s->zs.avail_out = (uInt)n;
	while (s->zs.avail_out > 0 && !s->eof) {
		int zrc = inflate(&s->zs, Z_NO_FLUSH);

		if (zrc == Z_STREAM_END) {
			/* Concatenated gzip members are one file to gunzip; so they are to us. */
			if (s->zs.avail_in == 0) {
				s->eof = true;
				break;
			}
			if (inflateReset(&s->zs) != Z_OK)
				return tg_err_set(err, -EINVAL, "%s: gzip: reset failed", s->what);
			continue;
		}
		if (zrc == Z_BUF_ERROR && s->zs.avail_in == 0)
			return tg_err_set(err, -EINVAL, "%s: gzip: truncated stream", s->what);
		if (zrc != Z_OK)
			return tg_err_set(err, -EINVAL, "%s: gzip: %s", s->what,
					  s->zs.msg ? s->zs.msg : "corrupt stream");
	}
	return (ssize_t)(n - s->zs.avail_out);
}

static uint32_t
bench_fmnist_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Read and check an idx header: magic, then ndim big-endian u32 dims into dims.
 * The item count (dims[0]) is bounded by BENCH_FMNIST_MAX_ITEMS before the caller allocates.
 */
static int
bench_fmnist_header(struct bench_fmnist_src *s, uint32_t magic, uint32_t *dims, int ndim,
		 struct tg_err *err)
{
	uint8_t hdr[16];
	size_t want = 4 + 4 * (size_t)ndim;
	ssize_t n;

	n = bench_fmnist_src_read(s, hdr, want, err);
	if (n < 0)
		return (int)n;
	if ((size_t)n < want)
		return tg_err_set(err, -EINVAL, "%s: idx: truncated header (%zd of %zu bytes)",
				  s->what, n, want);
	if (bench_fmnist_be32(hdr) != magic)
		return tg_err_set(err, -EINVAL, "%s: idx: magic 0x%08x, expected 0x%08x",
				  s->what, bench_fmnist_be32(hdr), magic);
	for (int i = 0; i < ndim; i++)
		dims[i] = bench_fmnist_be32(hdr + 4 + 4 * i);
	if (dims[0] == 0 || dims[0] > BENCH_FMNIST_MAX_ITEMS)
		return tg_err_set(err, -EINVAL, "%s: idx: %u items, accepted 1..%u", s->what,
				  dims[0], (unsigned)BENCH_FMNIST_MAX_ITEMS);
	return 0;
}

/* After the last item the data must end: extra bytes mean the header lied. */
static int
bench_fmnist_expect_end(struct bench_fmnist_src *s, struct tg_err *err)
{
	uint8_t b;
	ssize_t n = bench_fmnist_src_read(s, &b, 1, err);

	if (n < 0)
		return (int)n;
	if (n > 0)
		return tg_err_set(err, -EINVAL, "%s: idx: data beyond the items the header counts",
				  s->what);
	return 0;
}

/* How many items to take: all when limit is 0. */
static uint32_t
bench_fmnist_take(uint32_t count, size_t limit)
{
	return limit == 0 || limit >= count ? count : (uint32_t)limit;
}

int
bench_fmnist_images_parse(const uint8_t *buf, size_t len, const char *what, size_t limit,
		       struct tg_tensor *out, struct tg_err *err)
{
	struct bench_fmnist_src s;
	struct tg_tensor t = { .dtype = TG_DT_F32, .ndim = 4 };
	uint8_t px[BENCH_FMNIST_PIXELS];
	uint32_t dims[3], take;
	float *dst;
	int rc;

	rc = bench_fmnist_src_open(&s, what ? what : "images", buf, len, err);
	if (rc < 0)
		return rc;
	rc = bench_fmnist_header(&s, BENCH_FMNIST_MAGIC_IMAGES, dims, 3, err);
	if (rc < 0)
		goto out_close;
	/* The model input contract is 28x28; other idx image sets are not ours to resize. */
	if (dims[1] != BENCH_FMNIST_ROWS || dims[2] != BENCH_FMNIST_COLS) {
		rc = tg_err_set(err, -EINVAL, "%s: idx: images are %ux%u, expected %ux%u", s.what,
				dims[1], dims[2], BENCH_FMNIST_ROWS, BENCH_FMNIST_COLS);
		goto out_close;
	}
	take = bench_fmnist_take(dims[0], limit);
	t.dims[0] = take;
	t.dims[1] = 1;
	t.dims[2] = BENCH_FMNIST_ROWS;
	t.dims[3] = BENCH_FMNIST_COLS;
	rc = tg_tensor_alloc(&t);
	if (rc < 0) {
		rc = tg_err_set(err, rc, "%s: %u images: out of memory", s.what, take);
		goto out_close;
	}
	dst = t.data;
	for (uint32_t i = 0; i < take; i++) {
		ssize_t n = bench_fmnist_src_read(&s, px, sizeof(px), err);

		if (n < 0) {
			rc = (int)n;
			goto out_free;
		}
		if ((size_t)n < sizeof(px)) {
			rc = tg_err_set(err, -EINVAL, "%s: idx: header counts %u images, data ends in image %u",
					s.what, dims[0], i);
			goto out_free;
		}
		/* pixel / 255: the scaling the model was trained with (ToTensor()). */
		for (size_t k = 0; k < sizeof(px); k++)
			dst[k] = (float)px[k] / 255.0f;
		dst += sizeof(px);
	}
	if (take == dims[0]) {
		rc = bench_fmnist_expect_end(&s, err);
		if (rc < 0)
			goto out_free;
	}
	bench_fmnist_src_close(&s);
	*out = t;
	return 0;

out_free:
	tg_tensor_free(&t);
out_close:
	bench_fmnist_src_close(&s);
	return rc;
}

int
bench_fmnist_labels_parse(const uint8_t *buf, size_t len, const char *what, size_t limit,
		       uint8_t **labels, size_t *n_out, struct tg_err *err)
{
	struct bench_fmnist_src s;
	uint32_t count, take;
	uint8_t *lab;
	ssize_t n;
	int rc;

	rc = bench_fmnist_src_open(&s, what ? what : "labels", buf, len, err);
	if (rc < 0)
		return rc;
	rc = bench_fmnist_header(&s, BENCH_FMNIST_MAGIC_LABELS, &count, 1, err);
	if (rc < 0)
		goto out_close;
	take = bench_fmnist_take(count, limit);
	lab = malloc(take);
	if (lab == NULL) {
		rc = tg_err_set(err, -ENOMEM, "%s: %u labels: out of memory", s.what, take);
		goto out_close;
	}
	n = bench_fmnist_src_read(&s, lab, take, err);
	if (n < 0) {
		rc = (int)n;
		goto out_free;
	}
	if ((size_t)n < take) {
		rc = tg_err_set(err, -EINVAL, "%s: idx: header counts %u labels, data holds %zd",
				s.what, count, n);
		goto out_free;
	}
	for (uint32_t i = 0; i < take; i++)
		if (lab[i] >= BENCH_FMNIST_CLASSES) {
			rc = tg_err_set(err, -EINVAL, "%s: label %u of item %u is not a class 0..%d",
					s.what, lab[i], i, BENCH_FMNIST_CLASSES - 1);
			goto out_free;
		}
	if (take == count) {
		rc = bench_fmnist_expect_end(&s, err);
		if (rc < 0)
			goto out_free;
	}
	bench_fmnist_src_close(&s);
	*labels = lab;
	*n_out = take;
	return 0;

out_free:
	free(lab);
out_close:
	bench_fmnist_src_close(&s);
	return rc;
}

/* Read path whole (io_uring) and hand it to parse. */
static int
bench_fmnist_read(const char *path, uint8_t **buf, size_t *len, struct tg_err *err)
{
	int rc = tg_file_read(path, BENCH_FMNIST_MAX_FILE, buf, len, err);

	if (rc < 0)
		tg_err_prefix(err, "fashion-mnist: ");
	return rc;
}

int
bench_fmnist_load(const char *dir, bool train, size_t limit, struct bench_fmnist *out,
	       struct tg_err *err)
{
	const char *pfx = train ? "train" : "t10k";
	char ipath[4096], lpath[4096];
	uint8_t *buf = NULL;
	size_t len, n_labels;
	struct bench_fmnist ds = { 0 };
	int rc;

	if (dir == NULL)
		dir = BENCH_FMNIST_DIR;
	if (snprintf(ipath, sizeof(ipath), "%s/%s-images-idx3-ubyte.gz", dir, pfx) >=
		    (int)sizeof(ipath) ||
	    snprintf(lpath, sizeof(lpath), "%s/%s-labels-idx1-ubyte.gz", dir, pfx) >=
		    (int)sizeof(lpath))
		return tg_err_set(err, -ENAMETOOLONG, "fashion-mnist: directory name too long");

	rc = bench_fmnist_read(ipath, &buf, &len, err);
	if (rc < 0)
		return rc;
	rc = bench_fmnist_images_parse(buf, len, ipath, limit, &ds.images, err);
	free(buf);
	if (rc < 0)
		return rc;
	rc = bench_fmnist_read(lpath, &buf, &len, err);
	if (rc < 0)
		goto out_images;
	rc = bench_fmnist_labels_parse(buf, len, lpath, limit, &ds.labels, &n_labels, err);
	free(buf);
	if (rc < 0)
		goto out_images;
	ds.n = (size_t)ds.images.dims[0];
	/* A label file from another split would score every image against the wrong class. */
	if (n_labels != ds.n) {
		rc = tg_err_set(err, -EINVAL, "fashion-mnist: %s has %zu labels for %zu images",
				lpath, n_labels, ds.n);
		goto out_labels;
	}
	*out = ds;
	return 0;

out_labels:
	free(ds.labels);
out_images:
	tg_tensor_free(&ds.images);
	return rc;
}

void
bench_fmnist_free(struct bench_fmnist *ds)
{
	if (ds == NULL)
		return;
	tg_tensor_free(&ds->images);
	free(ds->labels);
	ds->labels = NULL;
	ds->n = 0;
}
