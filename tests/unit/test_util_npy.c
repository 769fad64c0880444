/* SPDX-License-Identifier: Apache-2.0 */
#include "tests/harness.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static void
test_npy_roundtrip_keeps_shape_and_data(void)
{
	struct tg_tensor t = { .dtype = TG_DT_F32, .ndim = 3, .dims = { 2, 3, 4 } }, u = { 0 };
	char path[] = "/tmp/tg_npy_XXXXXX";
	struct tg_err err = { 0 };
	int fd = mkstemp(path);

	TH_CHECK(fd >= 0);
	close(fd);
	TH_CHECK(tg_tensor_alloc(&t) == 0);
	for (size_t i = 0; i < tg_tensor_numel(&t); i++)
		((float *)t.data)[i] = (float)i * 0.5f - 3;
	TH_CHECK(tg_npy_save(path, &t, &err) == 0);
	TH_CHECK_MSG(tg_npy_load(path, 1 << 20, &u, &err) == 0, "%s", err.msg);
	TH_CHECK(u.dtype == TG_DT_F32 && u.ndim == 3 && u.dims[0] == 2 && u.dims[2] == 4);
	if (u.data)
		TH_CHECK(memcmp(t.data, u.data, tg_tensor_bytes(&t)) == 0);
	unlink(path);
	tg_tensor_free(&t);
	tg_tensor_free(&u);
}

static void
test_npy_roundtrip_1d_and_u8(void)
{
	struct tg_tensor t = { .dtype = TG_DT_U8, .ndim = 1, .dims = { 5 } }, u = { 0 };
	char path[] = "/tmp/tg_npy_XXXXXX";
	int fd = mkstemp(path);

	close(fd);
	TH_CHECK(tg_tensor_alloc(&t) == 0);
	memcpy(t.data, "\1\2\3\4\5", 5);
	TH_CHECK(tg_npy_save(path, &t, NULL) == 0);
	TH_CHECK(tg_npy_load(path, 1 << 20, &u, NULL) == 0);
	TH_CHECK(u.ndim == 1 && u.dims[0] == 5 && u.dtype == TG_DT_U8);
	unlink(path);
	tg_tensor_free(&t);
	tg_tensor_free(&u);
}

/* Build a .npy image from a header text and n data bytes; returns its length. */
static size_t
npy_image(uint8_t *buf, const char *hdr, size_t n_data)
{
	size_t h = strlen(hdr);

	memcpy(buf, "\x93NUMPY\x01\x00", 8);
	buf[8] = (uint8_t)h;
	buf[9] = 0;
	memcpy(buf + 10, hdr, h);
	memset(buf + 10 + h, 0, n_data);
	return 10 + h + n_data;
}

static void
test_npy_rejects_shape_larger_than_data(void)
{
	uint8_t buf[512];
	struct tg_tensor t = { 0 };
	struct tg_err err = { 0 };
	size_t n = npy_image(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }\n", 16);

	TH_CHECK(tg_npy_parse(buf, n, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "shape") != NULL, "%s", err.msg);
	TH_CHECK(t.data == NULL);
	n = npy_image(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", 16);
	TH_CHECK_MSG(tg_npy_parse(buf, n, &t, &err) == 0, "%s", err.msg);
	tg_tensor_free(&t);
	n = npy_image(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", 15);
	TH_CHECK(tg_npy_parse(buf, n, &t, &err) == -EINVAL);
}

static void
test_npy_rejects_bad_magic_and_fortran(void)
{
	uint8_t buf[512];
	struct tg_tensor t = { 0 };
	struct tg_err err = { 0 };
	size_t n = npy_image(buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n", 4);

	TH_CHECK(tg_npy_parse((const uint8_t *)"hello world", 11, &t, NULL) == -EINVAL);
	TH_CHECK(tg_npy_parse(buf, n, &t, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "fortran") != NULL, "%s", err.msg);
	n = npy_image(buf, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n", 4);
	TH_CHECK(tg_npy_parse(buf, n, &t, &err) == -EINVAL);
}

static void
test_file_read_refuses_over_limit(void)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	struct tg_err err = { 0 };

	TH_CHECK(tg_file_read("/etc/passwd", 4, &buf, &len, &err) == -EFBIG);
	TH_CHECK(buf == NULL);
	TH_CHECK(tg_file_read("/nonexistent/x", 4, &buf, &len, &err) == -ENOENT);
	TH_CHECK(tg_file_read("/etc/passwd", 1 << 20, &buf, &len, &err) == 0 && len > 0);
	free(buf);
}

int
main(void)
{
	TH_RUN(test_npy_roundtrip_keeps_shape_and_data);
	TH_RUN(test_npy_roundtrip_1d_and_u8);
	TH_RUN(test_npy_rejects_shape_larger_than_data);
	TH_RUN(test_npy_rejects_bad_magic_and_fortran);
	TH_RUN(test_file_read_refuses_over_limit);
	TH_DONE();
}
