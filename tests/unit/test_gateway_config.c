/* Configuration files: what is accepted, and one error per malformed input naming file,
 * line and key. */
#include "gateway/gateway.h"
#include "tests/harness.h"

#include <errno.h>

static int
parse(const char *text, struct gw_config *c, struct tg_err *err)
{
	gw_config_default(c, NULL);
	return gw_config_parse(text, strlen(text), "t.conf", c, err);
}

static void
test_good_file_sets_every_kind(void)
{
	static const char text[] =
		"# a comment\n"
		"\n"
		"address = 10.77.0.1   # trailing comment\n"
		"udp_port=7701\n"
		"  workers = 2\n"
		"whole_tail = no\n"
		"models = /srv/models\n"
		"max_msg_bytes = 1048576\r\n"
		"metrics = 127.0.0.1:9100\n";
	struct gw_config c;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(parse(text, &c, &err) == 0, "%s", err.msg);
	TH_CHECK(c.dp.ipv4 == (10u << 24 | 77u << 16 | 1));
	TH_CHECK(c.dp.udp_port == 7701 && c.workers == 2 && !c.whole_tail);
	TH_CHECK(strcmp(c.models_dir, "/srv/models") == 0);
	TH_CHECK(c.dp.limits.max_msg_bytes == 1048576);
	TH_CHECK(strcmp(c.metrics_addr, "127.0.0.1:9100") == 0);
	TH_CHECK(c.queue_cap == 256);	/* untouched default */
	c.dp.gap_timeout_us = 2000;	/* the dataplane's defaults are not linked here */
	c.dp.msg_timeout_us = 1000000;
	TH_CHECK_MSG(gw_config_validate(&c, &err) == 0, "%s", err.msg);
}

static void
expect_error(const char *text, const char *want)
{
	struct gw_config c;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(parse(text, &c, &err) == -EINVAL, "accepted: %s", text);
	TH_CHECK_MSG(strstr(err.msg, want) != NULL, "'%s' not in '%s'", want, err.msg);
}

static void
test_errors_name_file_line_and_key(void)
{
	expect_error("workers = 1\nbogus = 3\n", "t.conf:2: bogus: unknown key");
	expect_error("workers = 1\nworkers = 2\n", "t.conf:2: workers: given twice");
	expect_error("workers = two\n", "t.conf:1: workers: 'two' is not a whole number in 1..16");
	expect_error("workers = 17\n", "workers: '17' is not a whole number in 1..16");
	expect_error("workers = -1\n", "workers: '-1'");
	expect_error("udp_port = 99999999999999999999\n", "udp_port:");
	expect_error("address = 10.0.0\n", "t.conf:1: address: '10.0.0' is not an IPv4 address");
	expect_error("\n\nworkers\n", "t.conf:3: expected 'key = value'");
	expect_error("whole_tail = maybe\n", "whole_tail: 'maybe' is not true or false");
}

static void
test_nul_byte_and_long_line_are_refused(void)
{
	static const char nul[] = "workers = 1\nwork\0ers = 2\n";
	char longline[9000];
	struct gw_config c;
	struct tg_err err = { 0 };

	gw_config_default(&c, NULL);
	TH_CHECK(gw_config_parse(nul, sizeof(nul) - 1, "t.conf", &c, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "t.conf:2: NUL byte") != NULL, "%s", err.msg);
	memset(longline, 'a', sizeof(longline));
	TH_CHECK(gw_config_parse(longline, sizeof(longline), "t.conf", &c, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "line longer") != NULL, "%s", err.msg);
	memcpy(longline, "models = ", 9);
	longline[2000] = '\0';
	TH_CHECK(gw_config_parse(longline, 2000, "t.conf", &c, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "models: longer than") != NULL, "%s", err.msg);
}

static void
test_validate_states_what_is_accepted(void)
{
	struct gw_config c;
	struct tg_err err = { 0 };

	gw_config_default(&c, NULL);
	TH_CHECK(gw_config_validate(&c, &err) == -EINVAL && strstr(err.msg, "address: required"));
	TH_CHECK(parse("address = 10.77.0.1\nqueue_cap = 2000\nmax_inflight = 100\n"
		       "gap_timeout_us = 2000\nmsg_timeout_us = 1000000\n", &c, &err) == 0);
	TH_CHECK(gw_config_validate(&c, &err) == -EINVAL && strstr(err.msg, "max_inflight (100)"));
	TH_CHECK(parse("address = 10.77.0.1\ngap_timeout_us = 5000\nmsg_timeout_us = 4000\n", &c,
		       &err) == 0);
	TH_CHECK(gw_config_validate(&c, &err) == -EINVAL && strstr(err.msg, "gap_timeout_us"));
}

/* auth, auth_keys, integrity (docs/protocol.md 12.5): values, errors, what validate needs. */
static void
test_auth_keys(void)
{
	struct gw_config c;
	struct tg_err err = { 0 };

	TH_CHECK(parse("address = 10.77.0.1\ngap_timeout_us = 2000\nmsg_timeout_us = 1000000\n",
		       &c, &err) == 0);
	TH_CHECK(c.dp.auth == DP_AUTH_OFF && !c.dp.integrity_required && c.auth_keys[0] == 0);
	TH_CHECK(parse("address = 10.77.0.1\ngap_timeout_us = 2000\nmsg_timeout_us = 1000000\n"
		       "auth = required\nauth_keys = /etc/tailgate/keys\nintegrity = required\n",
		       &c, &err) == 0);
	TH_CHECK(c.dp.auth == DP_AUTH_REQUIRED && c.dp.integrity_required);
	TH_CHECK(strcmp(c.auth_keys, "/etc/tailgate/keys") == 0);
	TH_CHECK_MSG(gw_config_validate(&c, &err) == 0, "%s", err.msg);
	TH_CHECK(parse("auth = optional\n", &c, &err) == 0 && c.dp.auth == DP_AUTH_OPTIONAL);
	expect_error("auth = on\n", "t.conf:1: auth: 'on': off, optional or required");
	expect_error("integrity = yes\n", "t.conf:1: integrity: 'yes': optional or required");
	TH_CHECK(parse("address = 10.77.0.1\ngap_timeout_us = 2000\nmsg_timeout_us = 1000000\n"
		       "auth = optional\n", &c, &err) == 0);
	TH_CHECK(gw_config_validate(&c, &err) == -EINVAL &&
		 strstr(err.msg, "auth = optional needs auth_keys"));
	TH_CHECK(parse("address = 10.77.0.1\ngap_timeout_us = 2000\nmsg_timeout_us = 1000000\n"
		       "auth_keys = k\n", &c, &err) == 0);
	TH_CHECK(gw_config_validate(&c, &err) == -EINVAL &&
		 strstr(err.msg, "auth_keys is set but auth = off"));
}

static void
test_model_conf(void)
{
	static const char text[] =
		"id = 3\n"
		"splits = 0, /layer1/Add_output_0 ,7\n"
		"exit = exit1:0.9\n"
		"exit = exit2:0.95\n"
		"max_batch = 64\n"
		"dtype = int8\n";
	struct gw_model_conf mc;
	struct tg_err err = { 0 };

	gw_model_conf_default(&mc);
	TH_CHECK_MSG(gw_model_conf_parse(text, sizeof(text) - 1, "m.conf", &mc, &err) == 0, "%s",
		     err.msg);
	TH_CHECK(mc.id == 3 && mc.n_splits == 3 && strcmp(mc.splits[1], "/layer1/Add_output_0") == 0);
	TH_CHECK(mc.n_exits == 2 && strcmp(mc.exit_name[1], "exit2") == 0 && mc.exit_conf[1] == 0.95f);
	TH_CHECK(mc.max_batch == 64 && mc.precision == KERN_PREC_INT8 && mc.top_k == 5);

	gw_model_conf_default(&mc);
	TH_CHECK(gw_model_conf_parse("max_batch = 8\n", strlen("max_batch = 8\n"), "m.conf", &mc, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "id: required") != NULL, "%s", err.msg);
	gw_model_conf_default(&mc);
	TH_CHECK(gw_model_conf_parse("id=1\nexit = e1:1.5\n", strlen("id=1\nexit = e1:1.5\n"), "m.conf", &mc, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "m.conf:2: exit: confidence '1.5'") != NULL, "%s", err.msg);
	gw_model_conf_default(&mc);
	TH_CHECK(gw_model_conf_parse("id=1\nexit = e1:0.5\nexit = e1:0.6\n", strlen("id=1\nexit = e1:0.5\nexit = e1:0.6\n"), "m.conf", &mc, &err) == -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "given twice") != NULL, "%s", err.msg);
	gw_model_conf_default(&mc);
	TH_CHECK(gw_model_conf_parse("id=1\nsplits = 1,,2\n", strlen("id=1\nsplits = 1,,2\n"), "m.conf", &mc, &err) == -EINVAL);
	TH_CHECK(gw_model_conf_parse("id=1\ndtype = bf16\n", strlen("id=1\ndtype = bf16\n"), "m.conf", &mc, &err) == -EINVAL);
	TH_CHECK(gw_model_conf_parse("id=65535\n", strlen("id=65535\n"), "m.conf", &mc, &err) == -EINVAL);
}

int
main(void)
{
	TH_RUN(test_good_file_sets_every_kind);
	TH_RUN(test_errors_name_file_line_and_key);
	TH_RUN(test_nul_byte_and_long_line_are_refused);
	TH_RUN(test_validate_states_what_is_accepted);
	TH_RUN(test_auth_keys);
	TH_RUN(test_model_conf);
	TH_DONE();
}
