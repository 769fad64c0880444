/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A device program built against the *installed* libtailgate-client, through pkg-config only
 * (tests/install_lib.sh): the header must compile alone, the library must link and run.
 * It runs the shipped model's head to its split 1 and opens a session with a gateway that is
 * not there (the error path the library must report, not crash on).
 * Usage: device-c MODEL.onnx PORT
 */
#include <tailgate/tgc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
	struct tgc_config cfg = { 0 };
	struct tgc_head *head = NULL;
	struct tgc *c = NULL;
	struct tg_tensor t;
	struct tg_err err = { 0 };
	float image[28 * 28];
	int pass = 0, fail = 0, rc;
	unsigned i;

	if (argc != 3) {
		fprintf(stderr, "usage: %s MODEL.onnx PORT\n", argv[0]);
		return 2;
	}
	for (i = 0; i < 28 * 28; i++)
		image[i] = (float)(i % 17) / 17.0f;
	rc = tgc_head_open(&head, argv[1], &err);
	if (rc == 0 && tgc_head_n_splits(head) > 1 &&
	    tgc_run_head(head, 1, image, 28 * 28, &t, &err) == 0 && t.ndim >= 2 &&
	    t.dims[0] == 1) {
		printf("ok   head: split 1 of %u computed, rank %u\n", tgc_head_n_splits(head),
		       (unsigned)t.ndim);
		pass++;
	} else {
		printf("FAIL head: rc %d: %s\n", rc, err.msg);
		fail++;
	}
	tgc_head_close(head);

	/* The wire's values a device reads come with the installed headers. */
	{
		struct tgc_result r = { 0 };
		struct proto_catalog_entry e = { 0 };

		r.status = PROTO_ST_OVERLOADED;
		r.reason = 35;	/* queue_full, docs/protocol.md */
		r.exit_taken = PROTO_NONE;
		e.dtype_mask = 1u << TG_DT_U8;
		if (strcmp(tgc_status_name(r.status), "overloaded") == 0 &&
		    strcmp(tgc_reason_name(r.reason), "queue_full") == 0 &&
		    strcmp(tgc_status_name(PROTO_ST__COUNT), "?") == 0 &&
		    sizeof(e.name) == PROTO_NAME_LEN && sizeof(r.top) / sizeof(r.top[0]) ==
		    PROTO_MAX_TOP_K && (e.dtype_mask >> PROTO_DT_U8 & 1)) {
			printf("ok   status and reason names: %s, %s\n", tgc_status_name(r.status),
			       tgc_reason_name(r.reason));
			pass++;
		} else {
			printf("FAIL status and reason names: %s, %s\n", tgc_status_name(r.status),
			       tgc_reason_name(r.reason));
			fail++;
		}
	}

	cfg.gateway = "127.0.0.1";
	cfg.port = (uint16_t)atoi(argv[2]);
	cfg.hello_timeout_ms = 50;
	cfg.hello_tries = 1;
	rc = tgc_open(&c, &cfg, &err);
	if (rc < 0 && err.msg[0] != '\0' && c == NULL) {
		printf("ok   no gateway: tgc_open says %d (%s)\n", rc, err.msg);
		pass++;
	} else {
		printf("FAIL no gateway: tgc_open returned %d\n", rc);
		fail++;
		tgc_close(c);
	}
	printf("%d passed, %d failed\n", pass, fail);
	return fail != 0;
}
