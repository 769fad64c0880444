/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device key file (docs/protocol.md 12.5): one `CLIENT_ID HEX64` line per device, `#`
 * comments, blank lines. Init path (the gateway at start and on reload, tailgate-bench and
 * tgc-example at start): reads a file, allocates, reports every malformed line by file and
 * line. Keys live in sodium_malloc() memory: locked against swapping, guard pages around,
 * zeroed by sodium_free(); the text they came from is zeroed once parsed.
 */
#include "proto/proto_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "util/util.h"

enum {
	PROTO_KEYS_FILE_MAX = 16 << 20,	/* a million devices' lines, with room for comments */
	PROTO_KEY_HEX = 2 * PROTO_KEY_LEN,
};

struct proto_keys_line {		/* parse scratch: where each entry came from */
	uint32_t client_id;
	uint32_t line;
	uint32_t idx;			/* its place in the unsorted table */
};

static bool
proto_keys_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

static int
proto_hex_val(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * One line's content, comment and trailing space removed (p..end, non-empty): the client id
 * and key into e. @return 0 or -EINVAL with err naming name:line.
 */
static int
proto_keys_line(const char *p, const char *end, const char *name, unsigned line,
		struct proto_key *e, struct tg_err *err)
{
	const char *q = p, *tok = p;
	uint64_t id = 0;
	unsigned n;

	while (q < end && *q >= '0' && *q <= '9' && id <= UINT32_MAX)
		id = id * 10 + (uint64_t)(*q++ - '0');
	if (q == p || id > UINT32_MAX || (q < end && !proto_keys_space(*q))) {
		while (tok < end && !proto_keys_space(*tok) && tok - p < 24)
			tok++;
		return tg_err_set(err, -EINVAL, "%s:%u: client id '%.*s' is not a whole number "
				  "in 0..4294967295", name, line, (int)(tok - p), p);
	}
	while (q < end && proto_keys_space(*q))
		q++;
	if (q == end)
		return tg_err_set(err, -EINVAL, "%s:%u: client id %llu has no key (want "
				  "'CLIENT_ID HEX64')", name, line, (unsigned long long)id);
	for (n = 0; q + n < end && !proto_keys_space(q[n]); n++)
		if (proto_hex_val(q[n]) < 0)
			return tg_err_set(err, -EINVAL, "%s:%u: key of client id %llu: byte 0x%02x "
					  "is not a hex digit", name, line,
					  (unsigned long long)id, (unsigned)(uint8_t)q[n]);
	if (n != PROTO_KEY_HEX)
		return tg_err_set(err, -EINVAL, "%s:%u: key of client id %llu has %u hex digits, "
				  "not 64 (32 bytes)", name, line, (unsigned long long)id, n);
	for (unsigned i = 0; i < PROTO_KEY_LEN; i++)
		e->key[i] = (uint8_t)(proto_hex_val(q[2 * i]) << 4 | proto_hex_val(q[2 * i + 1]));
	q += n;
	while (q < end && proto_keys_space(*q))
		q++;
	if (q != end)
		return tg_err_set(err, -EINVAL, "%s:%u: text after the key of client id %llu",
				  name, line, (unsigned long long)id);
	e->client_id = (uint32_t)id;
	return 0;
}

static int
proto_keys_cmp(const void *a, const void *b)
{
	const struct proto_keys_line *x = a, *y = b;

	if (x->client_id != y->client_id)
		return x->client_id < y->client_id ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

void
proto_keys_free(struct proto_keys *t)
{
	if (t == NULL)
		return;
	if (t->k != NULL)
		sodium_free(t->k);	/* zeroes, unlocks, unmaps */
	free(t->nonce);
	free(t);
}

/* Lines holding an entry: an upper bound on the entries (each needs a line). */
static size_t
proto_keys_count(const char *text, size_t len)
{
	size_t n = 1;

	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	return n;
}

/*
 * Sort by client id (ties by line, so a duplicate names its first line) and refuse repeats.
 * The keys are copied into a new locked array in that order: a generic sort would move
 * them through unlocked scratch memory.
 */
static int
proto_keys_sort(struct proto_keys *t, struct proto_keys_line *ln, const char *name,
		struct tg_err *err)
{
	struct proto_key *k;

	qsort(ln, t->n, sizeof(*ln), proto_keys_cmp);
	for (size_t i = 1; i < t->n; i++)
		if (ln[i].client_id == ln[i - 1].client_id)
			return tg_err_set(err, -EINVAL, "%s:%u: client id %u already has a key "
					  "(line %u)", name, ln[i].line, ln[i].client_id,
					  ln[i - 1].line);
	k = sodium_allocarray(t->n ? t->n : 1, sizeof(*k));
	if (k == NULL)
		return tg_err_set(err, -ENOMEM, "%s: %zu keys: out of memory", name, t->n);
	for (size_t i = 0; i < t->n; i++)
		k[i] = t->k[ln[i].idx];
	sodium_free(t->k);
	t->k = k;
	return 0;
}

int
proto_keys_parse(struct proto_keys **out, const char *text, size_t len, const char *name,
		 struct tg_err *err)
{
	struct proto_keys_line *ln = NULL;
	struct proto_keys *t;
	const char *p = text, *end = text + len;
	size_t cap = proto_keys_count(text, len);
	unsigned line = 0;
	int rc;

	proto_sodium_ready();
	t = calloc(1, sizeof(*t));
	ln = calloc(cap, sizeof(*ln));
	if (t == NULL || ln == NULL) {
		rc = tg_err_set(err, -ENOMEM, "%s: out of memory", name);
		goto out_free;
	}
	/* One entry per line at most (and a million lines fit PROTO_KEYS_FILE_MAX). */
	if (cap > UINT32_MAX) {
		rc = tg_err_set(err, -EFBIG, "%s: too many lines", name);
		goto out_free;
	}
	t->k = sodium_allocarray(cap, sizeof(*t->k));
	t->nonce = calloc(cap, sizeof(*t->nonce));
	if (t->k == NULL || t->nonce == NULL) {
		rc = tg_err_set(err, -ENOMEM, "%s: %zu keys: out of memory", name, cap);
		goto out_free;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end;
		const char *c = memchr(p, '#', (size_t)(le - p)), *ce = c ? c : le;

		line++;
		if (memchr(p, '\0', (size_t)(le - p)) != NULL) {
			rc = tg_err_set(err, -EINVAL, "%s:%u: NUL byte", name, line);
			goto out_free;
		}
		while (p < ce && proto_keys_space(*p))
			p++;
		while (ce > p && proto_keys_space(ce[-1]))
			ce--;
		if (p < ce) {
			rc = proto_keys_line(p, ce, name, line, &t->k[t->n], err);
			if (rc < 0)
				goto out_free;
			ln[t->n].client_id = t->k[t->n].client_id;
			ln[t->n].line = line;
			ln[t->n].idx = (uint32_t)t->n;
			t->n++;
		}
		p = le + (nl != NULL);
	}
	rc = proto_keys_sort(t, ln, name, err);
	if (rc < 0)
		goto out_free;
	free(ln);
	*out = t;
	return 0;

out_free:
	free(ln);
	proto_keys_free(t);
	return rc;
}

int
proto_keys_load(struct proto_keys **out, const char *path, struct tg_err *err)
{
	struct stat st;
	size_t got = 0;
	char *text;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return tg_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = tg_err_set(err, -errno, "%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = tg_err_set(err, -EINVAL, "%s: not a regular file", path);
		goto out_close;
	}
	/* Keys readable by others are keys others have: refuse, as ssh does. */
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		rc = tg_err_set(err, -EPERM, "%s: mode %03o lets the group or others at the keys "
				"(chmod 600 it)", path, (unsigned)(st.st_mode & 0777));
		goto out_close;
	}
	if (st.st_size > PROTO_KEYS_FILE_MAX) {
		rc = tg_err_set(err, -EFBIG, "%s: %lld bytes, over %d", path,
				(long long)st.st_size, PROTO_KEYS_FILE_MAX);
		goto out_close;
	}
	proto_sodium_ready();
	/* Locked like the table: the hex text is the keys too. +1: never a zero-size malloc. */
	text = sodium_malloc((size_t)st.st_size + 1);
	if (text == NULL) {
		rc = tg_err_set(err, -ENOMEM, "%s: out of memory", path);
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = tg_err_set(err, n < 0 ? -errno : -EIO, "%s: read: %s", path,
					n < 0 ? strerror(errno) : "file shrank");
			goto out_text;
		}
		got += (size_t)n;
	}
	rc = proto_keys_parse(out, text, got, path, err);
out_text:
	sodium_free(text);	/* zeroes it */
out_close:
	close(fd);
	return rc;
}

const struct proto_key *
proto_keys_find(const struct proto_keys *t, uint32_t client_id)
{
	size_t lo = 0, hi;

	if (t == NULL)
		return NULL;
	hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->k[mid].client_id < client_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->n && t->k[lo].client_id == client_id ? &t->k[lo] : NULL;
}
