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
