/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto: the device key file (docs/protocol.md 12.5). Every malformed input is refused with
 * an error naming the file and line; a well-formed file gives a sorted table that finds each
 * key; the file's mode is checked.
 */
#include "tests/harness.h"
#include "proto/proto.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define K0 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KA "A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5A5"

static int
parse(const char *text, struct proto_keys **t, struct tg_err *err)
{
	*t = NULL;
	memset(err, 0, sizeof(*err));
	return proto_keys_parse(t, text, strlen(text), "keys", err);
}

static void
test_parses_comments_blanks_and_sorts(void)
{
	const char *text = "# devices\n\n  7 " KA "  # the sensor\r\n"
			   "4294967295\t" K0 "\n"
			   "0 " K0 "\n   \n#end";
	struct proto_keys *t;
	struct tg_err err;
	const struct proto_key *k;

	TH_CHECK_MSG(parse(text, &t, &err) == 0, "%s", err.msg);
	if (t == NULL)
		return;
	TH_CHECK(t->n == 3);
	TH_CHECK(t->k[0].client_id == 0 && t->k[1].client_id == 7 &&
		 t->k[2].client_id == 4294967295u);
	k = proto_keys_find(t, 7);
	TH_CHECK(k != NULL && k->key[0] == 0xa5 && k->key[31] == 0xa5);
	k = proto_keys_find(t, 4294967295u);
	TH_CHECK(k != NULL && k->key[0] == 0x00 && k->key[31] == 0x1f);
	TH_CHECK(proto_keys_find(t, 8) == NULL && proto_keys_find(t, 1) == NULL);
	TH_CHECK(t->nonce[0] == 0 && t->nonce[2] == 0);
	TH_CHECK(proto_keys_find(NULL, 7) == NULL);
	proto_keys_free(t);
	proto_keys_free(NULL);
}

static void
test_empty_file_is_an_empty_table(void)
{
	struct proto_keys *t;
	struct tg_err err;

	TH_CHECK(parse("", &t, &err) == 0 && t != NULL && t->n == 0);
	TH_CHECK(proto_keys_find(t, 0) == NULL);
	proto_keys_free(t);
	TH_CHECK(parse("# nothing\n\n", &t, &err) == 0 && t != NULL && t->n == 0);
	proto_keys_free(t);
}

/* One malformed input per error, each naming the line and what is wrong. */
static void
test_refuses_each_malformed_line(void)
{
	static const struct {
		const char *text;
		const char *want;
	} bad[] = {
		{ "x " K0 "\n", "keys:1: client id 'x' is not a whole number" },
		{ "\n-1 " K0 "\n", "keys:2: client id '-1' is not a whole number" },
		{ "4294967296 " K0 "\n", "keys:1: client id '4294967296' is not a whole number" },
		{ "12a " K0 "\n", "keys:1: client id '12a' is not a whole number" },
		{ "7\n", "keys:1: client id 7 has no key" },
		{ "7 # " K0 "\n", "keys:1: client id 7 has no key" },
		{ "7 " K0 "0\n", "keys:1: key of client id 7 has 65 hex digits, not 64" },
		{ "7 0102\n", "keys:1: key of client id 7 has 4 hex digits, not 64" },
		{ "7 " "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		  "keys:1: key of client id 7: byte 0x67 is not a hex digit" },
		{ "7 " K0 " extra\n", "keys:1: text after the key of client id 7" },
		{ "7 " K0 "\n8 " KA "\n7 " KA "\n", "keys:3: client id 7 already has a key (line 1)" },
		{ "7 " K0 "\n\0" "8 " KA "\n", "keys:2: NUL byte" },
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proto_keys *t = NULL;
		struct tg_err err = { 0 };
		size_t len = strlen(bad[i].text);
		int rc;

		if (i == sizeof(bad) / sizeof(bad[0]) - 1)
			len = strlen(bad[i].text) + 1 + strlen(bad[i].text + strlen(bad[i].text) + 1);
		rc = proto_keys_parse(&t, bad[i].text, len, "keys", &err);
		TH_CHECK_MSG(rc == -EINVAL && t == NULL, "input %u: rc %d", i, rc);
		TH_CHECK_MSG(strstr(err.msg, bad[i].want) != NULL, "input %u: got \"%s\", want \"%s\"",
			     i, err.msg, bad[i].want);
	}
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror(path);
		close(fd);
	}
	chmod(path, mode);
}

static void
test_load_checks_the_file_mode(void)
{
	char dir[] = "/tmp/tg_keys_XXXXXX", path[64];
	struct proto_keys *t = NULL;
	struct tg_err err = { 0 };

	if (mkdtemp(dir) == NULL) {
		TH_SKIP("mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/keys", dir);
	write_file(path, "5 " K0 "\n", 0600);
	TH_CHECK_MSG(proto_keys_load(&t, path, &err) == 0, "%s", err.msg);
	TH_CHECK(t != NULL && t->n == 1 && proto_keys_find(t, 5) != NULL);
	proto_keys_free(t);
	t = NULL;
	write_file(path, "5 " K0 "\n", 0640);
	TH_CHECK(proto_keys_load(&t, path, &err) == -EPERM && t == NULL);
	TH_CHECK_MSG(strstr(err.msg, "mode 640 lets the group or others at the keys") != NULL,
		     "%s", err.msg);
	write_file(path, "5 " K0 "\n", 0604);
	TH_CHECK(proto_keys_load(&t, path, &err) == -EPERM && t == NULL);
	write_file(path, "5 " K0 "\n", 0602);
	TH_CHECK(proto_keys_load(&t, path, &err) == -EPERM && t == NULL);
	write_file(path, "5 " K0 "\n5 " K0 "\n", 0400);
	TH_CHECK(proto_keys_load(&t, path, &err) == -EINVAL && t == NULL);
	TH_CHECK_MSG(strstr(err.msg, "/keys:2: client id 5 already has a key (line 1)") != NULL,
		     "%s", err.msg);
	TH_CHECK(proto_keys_load(&t, dir, &err) == -EINVAL && strstr(err.msg, "not a regular"));
	unlink(path);
	TH_CHECK(proto_keys_load(&t, path, &err) == -ENOENT && t == NULL);
	rmdir(dir);
}

/* A table of many keys in random order finds every one. */
static void
test_many_keys_find_each(void)
{
	enum { N = 5000 };
	char *text = malloc((size_t)N * 80), *p = text;
	struct proto_keys *t = NULL;
	struct tg_err err;
	unsigned found = 0;

	if (text == NULL)
		return;
	for (unsigned i = 0; i < N; i++)
		p += sprintf(p, "%u %s\n", (i * 7919u) % N * 3u + 1u, i & 1 ? K0 : KA);
	TH_CHECK_MSG(parse(text, &t, &err) == 0, "%s", err.msg);
	free(text);
	if (t == NULL)
		return;
	TH_CHECK(t->n == N);
	for (unsigned i = 0; i < N; i++) {
		const struct proto_key *k = proto_keys_find(t, i * 3u + 1u);

		found += k != NULL && k->client_id == i * 3u + 1u;
		TH_CHECK(proto_keys_find(t, i * 3u + 2u) == NULL);
	}
	TH_CHECK(found == N);
	proto_keys_free(t);
}

int
main(void)
{
	TH_RUN(test_parses_comments_blanks_and_sorts);
	TH_RUN(test_empty_file_is_an_empty_table);
	TH_RUN(test_refuses_each_malformed_line);
	TH_RUN(test_load_checks_the_file_mode);
	TH_RUN(test_many_keys_find_each);
	TH_DONE();
}
