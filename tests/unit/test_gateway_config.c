/* SPDX-License-Identifier: Apache-2.0 */
/* Configuration files: what is accepted, and one error per malformed input naming file,
 * line and key. */
#include "gateway/gateway.h"
#include "scheduler/sched.h"
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
		"degrade = false\n"
		"advice = no\n"
		"models = /srv/models\n"
		"max_msg_bytes = 1048576\r\n"
		"metrics = 127.0.0.1:9100\n";
	struct gw_config c;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(parse(text, &c, &err) == 0, "%s", err.msg);
	TH_CHECK(c.dp.ipv4 == (10u << 24 | 77u << 16 | 1));
	TH_CHECK(c.dp.udp_port == 7701 && c.workers == 2 && c.whole_tail == SCHED_MODE_SEGMENTS &&
		 !c.degrade && !c.advice);
	TH_CHECK(strcmp(c.models_dir, "/srv/models") == 0);
	TH_CHECK(c.dp.limits.max_msg_bytes == 1048576);
	TH_CHECK(strcmp(c.metrics_addr, "127.0.0.1:9100") == 0);
	TH_CHECK(c.queue_cap == 256);	/* untouched default */
	{
		struct gw_config d;

		gw_config_default(&d, NULL);
		TH_CHECK(d.advice);	/* advice is on unless the file says no */
	}
	c.dp.gap_timeout_us = 2000;	/* the dataplane's defaults are not linked here */
	c.dp.msg_timeout_us = 1000000;
	TH_CHECK_MSG(gw_config_validate(&c, &err) == 0, "%s", err.msg);
}

/* Degrade instead of shed is on unless the file says otherwise (README: devices without an
 * accuracy floor are never degraded, so the default changes nothing for them). */
static void
test_degrade_is_on_by_default(void)
{
	struct gw_config c;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(parse("workers = 1\n", &c, &err) == 0, "%s", err.msg);
	TH_CHECK(c.degrade);
	TH_CHECK_MSG(parse("degrade = true\n", &c, &err) == 0 && c.degrade, "%s", err.msg);
}

/* The scheduling mode: per model by default, either layout forced by true or false. */
static void
test_whole_tail_auto_by_default(void)
{
	struct gw_config c;
	struct tg_err err = { 0 };

	TH_CHECK_MSG(parse("workers = 1\n", &c, &err) == 0, "%s", err.msg);
	TH_CHECK(c.whole_tail == SCHED_MODE_AUTO);
	TH_CHECK_MSG(parse("whole_tail = yes\n", &c, &err) == 0 && c.whole_tail == SCHED_MODE_WHOLE,
		     "%s", err.msg);
	TH_CHECK_MSG(parse("whole_tail = false\n", &c, &err) == 0 &&
		     c.whole_tail == SCHED_MODE_SEGMENTS, "%s", err.msg);
	TH_CHECK_MSG(parse("whole_tail = auto\n", &c, &err) == 0 && c.whole_tail == SCHED_MODE_AUTO,
		     "%s", err.msg);
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
	expect_error("whole_tail = maybe\n", "whole_tail: 'maybe': true, false or auto");
	expect_error("degrade = sometimes\n", "degrade: 'sometimes' is not true or false");
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
		"batch_wait = fixed\n"
		"dtype = int8\n";
	struct gw_model_conf mc;
	struct tg_err err = { 0 };

	gw_model_conf_default(&mc);
	TH_CHECK_MSG(gw_model_conf_parse(text, sizeof(text) - 1, "m.conf", &mc, &err) == 0, "%s",
		     err.msg);
	TH_CHECK(mc.id == 3 && mc.n_splits == 3 && strcmp(mc.splits[1], "/layer1/Add_output_0") == 0);
	TH_CHECK(mc.n_exits == 2 && strcmp(mc.exit_name[1], "exit2") == 0 && mc.exit_conf[1] == 0.95f);
	TH_CHECK(mc.max_batch == 64 && mc.precision == KERN_PREC_INT8 && mc.top_k == 5);
	TH_CHECK(mc.batch_wait == SCHED_WAIT_FIXED);
	gw_model_conf_default(&mc);
	TH_CHECK(mc.batch_wait == SCHED_WAIT_ADAPTIVE);
	TH_CHECK(gw_model_conf_parse("id=1\nbatch_wait = adaptive\n",
				     strlen("id=1\nbatch_wait = adaptive\n"), "m.conf", &mc, &err) == 0 &&
		 mc.batch_wait == SCHED_WAIT_ADAPTIVE);
	TH_CHECK(gw_model_conf_parse("id=1\nbatch_wait = never\n",
				     strlen("id=1\nbatch_wait = never\n"), "m.conf", &mc, &err) ==
		 -EINVAL);
	TH_CHECK_MSG(strstr(err.msg, "m.conf:2: batch_wait: 'never': adaptive or fixed") != NULL,
		     "%s", err.msg);

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

/* model.conf variant and accuracy lines: a drop list and a file variant, and one error
 * naming the line per malformed line. */
static void
test_model_conf_variants(void)
{
	static const char text[] =
		"id = 1\n"
		"accuracy = exit1:87.53:87.46\n"
		"accuracy = final:92.40\n"
		"variant = 1 nob1 drop=0,/layer2/layer2.1/Add exits=exit1:0.97 accuracy=final:91.2:91\n"
		"variant = 7   bottleneck\tsplits=0,2  \n";
	static const struct { const char *line, *words; } bad[] = {
		{ "variant = 0 base", "id '0' is not a whole number in 1..254" },
		{ "variant = 255 x", "1..254" },
		{ "variant = 1", "expected 'ID NAME" },
		{ "variant = 1 a/b", "name 'a/b'" },
		{ "variant = 1 .hidden", "not starting with '.'" },
		{ "variant = 1 a drop", "'drop' is not key=value" },
		{ "variant = 1 a drop=", "empty entry" },
		{ "variant = 1 a colour=red", "unknown option 'colour'" },
		{ "variant = 1 a exits=e1:2", "confidence '2'" },
		{ "variant = 1 a accuracy=final:101", "'101' is not a percentage" },
		{ "variant = 1 a accuracy=final", "is not OUT:FP32[:INT8]" },
		{ "variant = 1 a accuracy=f:1:2:3", "is not OUT:FP32[:INT8]" },
		{ "variant = 1 a\nvariant = 1 b", "given twice" },
		{ "variant = 1 a\nvariant = 2 a", "given twice" },
		{ "accuracy = final:x", "'x' is not a percentage" },
		{ "accuracy = final:90\naccuracy = final:91", "exit 'final' given twice" },
	};
	struct gw_model_conf mc;
	struct tg_err err = { 0 };

	gw_model_conf_default(&mc);
	TH_CHECK_MSG(gw_model_conf_parse(text, sizeof(text) - 1, "m.conf", &mc, &err) == 0, "%s",
		     err.msg);
	TH_CHECK(mc.n_acc == 2 && mc.acc[0].fp32_bp == 8753 && mc.acc[0].int8_bp == 8746 &&
		 mc.acc[1].fp32_bp == 9240 && mc.acc[1].int8_bp == 0);
	TH_CHECK(mc.n_variants == 2);
	TH_CHECK(mc.variants[0].id == 1 && strcmp(mc.variants[0].name, "nob1") == 0 &&
		 mc.variants[0].n_drop == 2 && strcmp(mc.variants[0].drop[1],
						      "/layer2/layer2.1/Add") == 0);
	TH_CHECK(mc.variants[0].n_exits == 1 && mc.variants[0].exit_conf[0] == 0.97f &&
		 mc.variants[0].n_acc == 1 && mc.variants[0].acc[0].fp32_bp == 9120 &&
		 mc.variants[0].acc[0].int8_bp == 9100);
	TH_CHECK(mc.variants[1].id == 7 && strcmp(mc.variants[1].name, "bottleneck") == 0 &&
		 mc.variants[1].n_drop == 0 && mc.variants[1].n_splits == 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char t[256];
		int n = snprintf(t, sizeof(t), "id = 1\n%s\n", bad[i].line);

		gw_model_conf_default(&mc);
		TH_CHECK_MSG(gw_model_conf_parse(t, (size_t)n, "m.conf", &mc, &err) == -EINVAL &&
			     strstr(err.msg, bad[i].words) != NULL && strstr(err.msg, "m.conf:"),
			     "%s: %s", bad[i].line, err.msg);
	}
	{	/* 17 variants: one more than a model may declare */
		char t[2048];
		int n = snprintf(t, sizeof(t), "id = 1\n");

		for (int v = 1; v <= GW_MAX_VARIANTS + 1; v++)
			n += snprintf(t + n, sizeof(t) - (size_t)n, "variant = %d v%d drop=0\n", v, v);
		gw_model_conf_default(&mc);
		TH_CHECK(gw_model_conf_parse(t, (size_t)n, "m.conf", &mc, &err) == -EINVAL &&
			 strstr(err.msg, "more than 16 variants"));
	}
}

int
main(void)
{
	TH_RUN(test_good_file_sets_every_kind);
	TH_RUN(test_degrade_is_on_by_default);
	TH_RUN(test_whole_tail_auto_by_default);
	TH_RUN(test_errors_name_file_line_and_key);
	TH_RUN(test_nul_byte_and_long_line_are_refused);
	TH_RUN(test_validate_states_what_is_accepted);
	TH_RUN(test_auth_keys);
	TH_RUN(test_model_conf);
	TH_RUN(test_model_conf_variants);
	TH_DONE();
}
