/*
 * util: what every tailgate module shares and nothing else: the error carrier, .npy tensor
 * files, whole-file reads through io_uring, and a monotonic clock.
 * Prefix tg_. No DPDK, no oneDNN.
 */
#ifndef TG_UTIL_H
#define TG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/**
 * An error an operator can read. Callers pass one (or NULL) to functions that can fail for
 * reasons worth words; the callee fills it and returns the same negative errno it stored.
 */
struct tg_err {
	int code;		/* 0 or -errno */
	char msg[512];		/* human-readable, names the object that failed */
};

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

enum tg_dtype {
	TG_DT_F32 = 1,
	TG_DT_F16 = 2,
	TG_DT_S8 = 3,
	TG_DT_U8 = 4,
	TG_DT_S32 = 5,
	TG_DT_S64 = 6,
	TG_DT_F64 = 7,
};

enum { TG_MAX_DIMS = 8 };

/** Bytes per element of a dtype, 0 for an unknown value. */
size_t tg_dtype_size(enum tg_dtype dt);
/** "f32", "f16", "s8", "u8", ...; "?" for an unknown value. */
const char *tg_dtype_name(enum tg_dtype dt);
/** Parse "f32"|"f16"|"s8"|"u8"|"int8"(= s8)|"fp32". @return 0 or -EINVAL. */
int tg_dtype_parse(const char *s, enum tg_dtype *out);

/** A dense tensor, owner of data (malloc'd). */
struct tg_tensor {
	enum tg_dtype dtype;
	int ndim;
	int64_t dims[TG_MAX_DIMS];
	void *data;
};

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

/* ---- Fashion-MNIST (idx files, gzip'd as Debian ships them, or plain) ---- */

#define TG_FMNIST_DIR "/usr/share/datasets/fashion-mnist"	/* Debian dataset-fashion-mnist */

enum {
	TG_FMNIST_ROWS = 28,
	TG_FMNIST_COLS = 28,
	TG_FMNIST_CLASSES = 10,
	TG_FMNIST_MAX_ITEMS = 100000,	/* the set has 60,000 + 10,000; bounds a hostile header */
};

/** A loaded split of the data set. Owner of both buffers; release with tg_fmnist_free(). */
struct tg_fmnist {
	struct tg_tensor images;	/* f32 [n,1,28,28], pixel / 255 (the model input contract) */
	uint8_t *labels;		/* [n], classes 0..9, malloc'd */
	size_t n;			/* images (= labels) loaded */
};

/**
 * Load the test split (train false: t10k-*) or the training split (train-*) from dir
 * (NULL: TG_FMNIST_DIR). Files are read with io_uring and inflated in memory; idx headers are
 * checked (magic, 28x28, count <= TG_FMNIST_MAX_ITEMS, labels < 10, data exactly as long as the
 * header says) before anything is allocated from them.
 * @param limit  load only the first limit items; 0 = all
 * @param out    filled on success; the caller frees it with tg_fmnist_free()
 * @return 0, -ENOENT (and other read errors) when the files are absent, -EINVAL malformed
 */
int tg_fmnist_load(const char *dir, bool train, size_t limit, struct tg_fmnist *out,
		   struct tg_err *err);
/** Release what tg_fmnist_load() filled; ds may be NULL. */
void tg_fmnist_free(struct tg_fmnist *ds);

/**
 * Parse an idx3 image file image (gzip'd or plain) held in memory (the caller keeps buf).
 * @param what   names the file in errors (NULL: "images")
 * @param out    set to a new f32 [n,1,28,28] tensor (n = min(count, limit), limit 0 = all)
 * @return 0 or -EINVAL/-ENOMEM with err set
 */
int tg_fmnist_images_parse(const uint8_t *buf, size_t len, const char *what, size_t limit,
			   struct tg_tensor *out, struct tg_err *err);
/** As tg_fmnist_images_parse() for an idx1 label file: *labels malloc'd, *n its length. */
int tg_fmnist_labels_parse(const uint8_t *buf, size_t len, const char *what, size_t limit,
			   uint8_t **labels, size_t *n, struct tg_err *err);


/* ---- HDR latency histogram (HdrHistogram's bucketing: fixed relative precision) ---- */

/**
 * Counts of integer values (e.g. microseconds) in [1, highest], each recorded with a
 * relative error of at most 10^-sigfigs: 2^k sub-buckets per power of two, as HdrHistogram
 * (Gil Tene) lays them out, so its percentile files (.hgrm) read the same. The counts array
 * is allocated once by tg_hdr_init(); recording allocates nothing. Thread: one owner.
 */
struct tg_hdr {
	int64_t lowest;			/* smallest distinguishable value (>= 1) */
	int64_t highest;		/* largest trackable value; larger ones are clamped */
	int sigfigs;			/* significant decimal digits, 1..5 */
	int unit_magnitude;		/* floor(log2(lowest)) */
	int sub_bucket_half_count_magnitude;
	int32_t sub_bucket_count;	/* 2^(magnitude + 1) */
	int32_t sub_bucket_half_count;
	int64_t sub_bucket_mask;
	int32_t bucket_count;
	int32_t counts_len;
	int64_t *counts;		/* counts_len slots, malloc'd */
	int64_t total;			/* values recorded */
	int64_t clamped;		/* values over highest, recorded as highest */
	int64_t min, max;		/* exact extremes recorded (after clamping) */
	double sum;			/* for the mean */
	double sum_sq;			/* for the standard deviation */
};

/**
 * @param lowest   >= 1
 * @param highest  >= 2 * lowest
 * @param sigfigs  1..5
 * @return 0, -EINVAL (bounds), -ENOMEM
 */
int tg_hdr_init(struct tg_hdr *h, int64_t lowest, int64_t highest, int sigfigs);
/** Release the counts; h may be NULL or never initialised (zeroed). */
void tg_hdr_fini(struct tg_hdr *h);
/** Forget every value, keep the layout. */
void tg_hdr_reset(struct tg_hdr *h);
/** Record v count times (v < lowest counts as lowest, > highest as highest). */
void tg_hdr_record_n(struct tg_hdr *h, int64_t v, int64_t count);
static inline void
tg_hdr_record(struct tg_hdr *h, int64_t v)
{
	tg_hdr_record_n(h, v, 1);
}
/** Add every count of src to dst (same lowest, highest and sigfigs). @return 0 or -EINVAL. */
int tg_hdr_add(struct tg_hdr *dst, const struct tg_hdr *src);
/**
 * The value at percentile p (0..100): the highest value equivalent to the recorded value
 * below which p % of the values lie (HdrHistogram's getValueAtPercentile). 0 when empty.
 */
int64_t tg_hdr_value_at(const struct tg_hdr *h, double p);
double tg_hdr_mean(const struct tg_hdr *h);
double tg_hdr_stddev(const struct tg_hdr *h);
/** Whether a and b fall in the same bucket (they are recorded as the same value). */
bool tg_hdr_equivalent(const struct tg_hdr *h, int64_t a, int64_t b);
/**
 * Write the percentile distribution in HdrHistogram's text format (.hgrm: "Value Percentile
 * TotalCount 1/(1-Percentile)" lines, ticks_per_half 5 as its tools use, then the
 * Mean/Max/Buckets footer), values divided by scale (1000: microseconds shown as ms).
 * @return 0 or -EIO
 */
int tg_hdr_write_hgrm(const struct tg_hdr *h, FILE *f, double scale, int ticks_per_half);

#endif
