/* SPDX-License-Identifier: Apache-2.0 */
/*
 * util: what every tailgate module shares and nothing else: the error carrier, .npy tensor
 * files, whole-file reads through io_uring, and a monotonic clock.
 * Prefix tg_. No DPDK, no oneDNN.
 */
#ifndef TG_UTIL_H
#define TG_UTIL_H

#include <tailgate/types.h>	/* errors and tensors, shared with the device API */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* struct tg_err: <tailgate/types.h> */

/**
 * Record an error. Thread: any; err may be NULL (then only the code is returned).
 * @return code, so callers can write `return tg_err_set(err, -EINVAL, "...")`.
 */
int tg_err_set(struct tg_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** Prepend context ("model m1: ") to an error already set; keeps its code. */
int tg_err_prefix(struct tg_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Monotonic time in nanoseconds. */
uint64_t tg_now_ns(void);

/**
 * Read a whole file into a new buffer with io_uring (falls back to read(2) where io_uring is
 * unavailable, e.g. under a seccomp policy that forbids it).
 * @param max_bytes  files larger than this are refused before anything is allocated
 * @param out        set to a malloc'd buffer the caller frees; *len its size
 * @return 0 or -errno (with err set)
 */
int tg_file_read(const char *path, size_t max_bytes, uint8_t **out, size_t *len,
		 struct tg_err *err);

/**
 * Read the first len bytes of fd into buf (the caller's, len bytes) with io_uring: up to 4
 * reads of 1 MiB in flight, a short read queued again for the rest of its part (read(2)
 * where io_uring is disabled). fd stays the caller's; a file shorter than len is -EIO. A
 * pipe or socket works when len fits one part (1 MiB): parts are read in order then.
 * Thread: any; blocks until done. @return 0 or -errno.
 */
int tg_file_read_fd(int fd, void *buf, size_t len);

/** Write a whole buffer to a file (created or truncated). @return 0 or -errno. */
int tg_file_write(const char *path, const void *buf, size_t len, struct tg_err *err);

/* ---- .npy tensors (NumPy format 1.0/2.0/3.0, C order, little endian) ---- */

/* enum tg_dtype, TG_MAX_DIMS: <tailgate/types.h> */

/** Bytes per element of a dtype, 0 for an unknown value. */
size_t tg_dtype_size(enum tg_dtype dt);
/** "f32", "f16", "s8", "u8", ...; "?" for an unknown value. */
const char *tg_dtype_name(enum tg_dtype dt);
/** Parse "f32"|"f16"|"s8"|"u8"|"int8"(= s8)|"fp32". @return 0 or -EINVAL. */
int tg_dtype_parse(const char *s, enum tg_dtype *out);

/* struct tg_tensor (here its owner of data, malloc'd): <tailgate/types.h> */

/** Elements in t (product of dims; 1 for a scalar). */
size_t tg_tensor_numel(const struct tg_tensor *t);
/** Bytes of t's data. */
size_t tg_tensor_bytes(const struct tg_tensor *t);
/** Allocate data for the dtype and dims already set in t. @return 0 or -ENOMEM/-EINVAL. */
int tg_tensor_alloc(struct tg_tensor *t);
/** Free t's data; t may be NULL. */
void tg_tensor_free(struct tg_tensor *t);

/**
 * Parse a .npy image held in memory into a new tensor (data copied).
 * Accepted dtypes: <f4 <f2 |i1 |u1 <i4 <i8 <f8, fortran_order False.
 * @return 0 or -EINVAL/-ENOMEM with err naming what is wrong.
 */
int tg_npy_parse(const uint8_t *buf, size_t len, struct tg_tensor *out, struct tg_err *err);
/** Load a .npy file (io_uring read, at most max_bytes). */
int tg_npy_load(const char *path, size_t max_bytes, struct tg_tensor *out, struct tg_err *err);
/** Save t as a .npy (format 1.0) file. */
int tg_npy_save(const char *path, const struct tg_tensor *t, struct tg_err *err);

#ifdef __cplusplus
}
#endif

#endif
