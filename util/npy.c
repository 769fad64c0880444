/* SPDX-License-Identifier: Apache-2.0 */
/* NumPy .npy files: the tensor format of tailgate-model, the fixtures and the tests. */
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *descr;
	enum tg_dtype dt;
} tg_npy_descrs[] = {
	{ "<f4", TG_DT_F32 }, { "<f2", TG_DT_F16 }, { "|i1", TG_DT_S8 },  { "|u1", TG_DT_U8 },
	{ "<i4", TG_DT_S32 }, { "<i8", TG_DT_S64 }, { "<f8", TG_DT_F64 }, { "i1", TG_DT_S8 },
	{ "u1", TG_DT_U8 },
};

size_t
tg_dtype_size(enum tg_dtype dt)
{
	switch (dt) {
	case TG_DT_F32: case TG_DT_S32: return 4;
	case TG_DT_F16: return 2;
	case TG_DT_S8: case TG_DT_U8: return 1;
	case TG_DT_S64: case TG_DT_F64: return 8;
	}
	return 0;
}

const char *
tg_dtype_name(enum tg_dtype dt)
{
	switch (dt) {
	case TG_DT_F32: return "f32";
	case TG_DT_F16: return "f16";
	case TG_DT_S8: return "s8";
	case TG_DT_U8: return "u8";
	case TG_DT_S32: return "s32";
	case TG_DT_S64: return "s64";
	case TG_DT_F64: return "f64";
	}
	return "?";
}

int
tg_dtype_parse(const char *s, enum tg_dtype *out)
{
	static const struct { const char *name; enum tg_dtype dt; } names[] = {
		{ "f32", TG_DT_F32 }, { "fp32", TG_DT_F32 }, { "float32", TG_DT_F32 },
		{ "f16", TG_DT_F16 }, { "fp16", TG_DT_F16 }, { "float16", TG_DT_F16 },
		{ "s8", TG_DT_S8 },   { "int8", TG_DT_S8 },  { "i8", TG_DT_S8 },
		{ "u8", TG_DT_U8 },   { "uint8", TG_DT_U8 },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0) {
			*out = names[i].dt;
			return 0;
		}
	return -EINVAL;
}

size_t
tg_tensor_numel(const struct tg_tensor *t)
{
	size_t n = 1;

	for (int i = 0; i < t->ndim; i++)
		n *= (size_t)t->dims[i];
	return n;
}

size_t
tg_tensor_bytes(const struct tg_tensor *t)
{
	return tg_tensor_numel(t) * tg_dtype_size(t->dtype);
}

int
tg_tensor_alloc(struct tg_tensor *t)
{
	size_t n = 1, es = tg_dtype_size(t->dtype);

	if (es == 0 || t->ndim < 0 || t->ndim > TG_MAX_DIMS)
		return -EINVAL;
	for (int i = 0; i < t->ndim; i++) {
		if (t->dims[i] < 0 || (t->dims[i] > 0 && n > SIZE_MAX / 2 / (size_t)t->dims[i]))
			return -EINVAL;
		n *= (size_t)t->dims[i];
	}
	if (n > SIZE_MAX / 2 / es)
		return -EINVAL;
	t->data = calloc(n ? n : 1, es);
	return t->data ? 0 : -ENOMEM;
}

void
tg_tensor_free(struct tg_tensor *t)
{
	if (t == NULL)
		return;
	free(t->data);
	t->data = NULL;
}

/* Find the value text after 'key': in a header dict. */
static const char *
tg_npy_field(const char *hdr, const char *key)
{
	const char *p = strstr(hdr, key);

	if (p == NULL)
		return NULL;
	p += strlen(key);
	while (*p == ' ' || *p == '\'' || *p == '"')
		p++;
	if (*p != ':')
		return NULL;
	p++;
	while (*p == ' ')
		p++;
	return p;
}

static int
tg_npy_parse_shape(const char *p, struct tg_tensor *t, struct tg_err *err)
{
	if (*p != '(')
		return tg_err_set(err, -EINVAL, "npy: shape is not a tuple");
	p++;
	t->ndim = 0;
	for (;;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == ')')
			return 0;
		if (*p < '0' || *p > '9')
			return tg_err_set(err, -EINVAL, "npy: bad shape");
		if (t->ndim == TG_MAX_DIMS)
			return tg_err_set(err, -EINVAL, "npy: more than %d dims", TG_MAX_DIMS);
		char *end;
		unsigned long long v = strtoull(p, &end, 10);

		if (v > (1ull << 40))
			return tg_err_set(err, -EINVAL, "npy: dim %llu too large", v);
		t->dims[t->ndim++] = (int64_t)v;
		p = end;
	}
}

int
tg_npy_parse(const uint8_t *buf, size_t len, struct tg_tensor *out, struct tg_err *err)
{
	struct tg_tensor t = { 0 };
	size_t hlen, hoff;
	char hdr[4096];
	const char *v;
	int rc;

	if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
		return tg_err_set(err, -EINVAL, "npy: bad magic");
	if (buf[6] == 1) {
		hlen = buf[8] | (size_t)buf[9] << 8;
		hoff = 10;
	} else if (buf[6] == 2 || buf[6] == 3) {
		if (len < 12)
			return tg_err_set(err, -EINVAL, "npy: truncated header");
		hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
		hoff = 12;
	} else {
		return tg_err_set(err, -EINVAL, "npy: unsupported version %u", buf[6]);
	}
	if (hlen >= sizeof(hdr) || hoff + hlen > len)
		return tg_err_set(err, -EINVAL, "npy: header length %zu out of bounds", hlen);
	memcpy(hdr, buf + hoff, hlen);
	hdr[hlen] = '\0';

	v = tg_npy_field(hdr, "descr");
	if (v == NULL || (*v != '\'' && *v != '"'))
		return tg_err_set(err, -EINVAL, "npy: no descr");
	v++;
	t.dtype = 0;
	for (size_t i = 0; i < sizeof(tg_npy_descrs) / sizeof(tg_npy_descrs[0]); i++) {
		size_t n = strlen(tg_npy_descrs[i].descr);

		if (strncmp(v, tg_npy_descrs[i].descr, n) == 0 && (v[n] == '\'' || v[n] == '"')) {
			t.dtype = tg_npy_descrs[i].dt;
			break;
		}
	}
	if (t.dtype == 0)
		return tg_err_set(err, -EINVAL, "npy: unsupported descr %.8s", v);
	v = tg_npy_field(hdr, "fortran_order");
	if (v == NULL || strncmp(v, "False", 5) != 0)
		return tg_err_set(err, -EINVAL, "npy: fortran_order must be False");
	v = tg_npy_field(hdr, "shape");
	if (v == NULL)
		return tg_err_set(err, -EINVAL, "npy: no shape");
	rc = tg_npy_parse_shape(v, &t, err);
	if (rc < 0)
		return rc;
	/* Check the declared size against the bytes present before allocating. */
	size_t numel = 1, es = tg_dtype_size(t.dtype);

	for (int i = 0; i < t.ndim; i++) {
		if (t.dims[i] != 0 && numel > (len / es + 1) / (size_t)t.dims[i])
			return tg_err_set(err, -EINVAL, "npy: shape larger than the file");
		numel *= (size_t)t.dims[i];
	}
	if (numel * es != len - hoff - hlen)
		return tg_err_set(err, -EINVAL, "npy: %zu data bytes, shape needs %zu",
				  len - hoff - hlen, numel * es);
	rc = tg_tensor_alloc(&t);
	if (rc < 0)
		return tg_err_set(err, rc, "npy: out of memory");
	memcpy(t.data, buf + hoff + hlen, numel * es);
	*out = t;
	return 0;
}

int
tg_npy_load(const char *path, size_t max_bytes, struct tg_tensor *out, struct tg_err *err)
{
	uint8_t *buf;
	size_t len;
	int rc;

	rc = tg_file_read(path, max_bytes, &buf, &len, err);
	if (rc < 0)
		return rc;
	rc = tg_npy_parse(buf, len, out, err);
	if (rc < 0)
		tg_err_prefix(err, "%s: ", path);
	free(buf);
	return rc;
}

int
tg_npy_save(const char *path, const struct tg_tensor *t, struct tg_err *err)
{
	char hdr[256], shape[192];
	const char *descr = NULL;
	size_t off = 0, hlen, total;
	uint8_t *buf;
	int rc;

	for (size_t i = 0; i < sizeof(tg_npy_descrs) / sizeof(tg_npy_descrs[0]); i++)
		if (tg_npy_descrs[i].dt == t->dtype) {
			descr = tg_npy_descrs[i].descr;
			break;
		}
	if (descr == NULL)
		return tg_err_set(err, -EINVAL, "%s: unsupported dtype", path);
	shape[0] = '\0';
	for (int i = 0; i < t->ndim; i++)
		off += (size_t)snprintf(shape + off, sizeof(shape) - off, "%lld,%s",
					(long long)t->dims[i], i + 1 < t->ndim ? " " : "");
	if (t->ndim > 1)	/* numpy writes (1,) but (1, 2) */
		shape[off - 1] = '\0';
	hlen = (size_t)snprintf(hdr, sizeof(hdr),
				"{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr,
				shape);
	/* Pad with spaces so the data starts 64-byte aligned, newline last. */
	size_t padded = ((10 + hlen + 1 + 63) / 64) * 64 - 10;

	total = 10 + padded + tg_tensor_bytes(t);
	buf = malloc(total);
	if (buf == NULL)
		return tg_err_set(err, -ENOMEM, "%s: out of memory", path);
	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (uint8_t)(padded & 0xff);
	buf[9] = (uint8_t)(padded >> 8);
	memcpy(buf + 10, hdr, hlen);
	memset(buf + 10 + hlen, ' ', padded - hlen - 1);
	buf[10 + padded - 1] = '\n';
	memcpy(buf + 10 + padded, t->data, tg_tensor_bytes(t));
	rc = tg_file_write(path, buf, total, err);
	free(buf);
	return rc;
}
