/* SPDX-License-Identifier: Apache-2.0 */
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int
tg_err_set(struct tg_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

int
tg_err_prefix(struct tg_err *err, const char *fmt, ...)
{
	char head[256], tail[sizeof(err->msg)];
	va_list ap;

	if (err == NULL)
		return 0;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(tail, err->msg, sizeof(tail));
	/* Truncation keeps the head, the context an operator needs first. */
	size_t h = strnlen(head, sizeof(head));

	memcpy(err->msg, head, h);
	snprintf(err->msg + h, sizeof(err->msg) - h, "%.*s", (int)(sizeof(err->msg) - h - 1), tail);
	return err->code;
}

uint64_t
tg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
