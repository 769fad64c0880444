// SPDX-License-Identifier: Apache-2.0
// The same check from C++ (tests/install_lib.sh): tgc.h under g++, extern "C" linkage.
// Usage: device-cxx MODEL.onnx
#include <tailgate/tgc.h>

#include <cstdio>
#include <string>
#include <vector>

int
main(int argc, char **argv)
{
	if (argc != 2) {
		std::fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
		return 2;
	}
	struct tgc_head *head = nullptr;
	struct tg_err err = {};
	int pass = 0, fail = 0;
	if (tgc_head_open(&head, argv[1], &err) == 0) {
		std::vector<float> image(28 * 28, 0.5f);
		struct tg_tensor t;
		unsigned n = tgc_head_n_splits(head);
		if (tgc_run_head(head, n - 1, image.data(), image.size(), &t, &err) == 0) {
			std::printf("ok   head from C++: split %u of %u\n", n - 1, n);
			pass++;
		} else {
			std::printf("FAIL head from C++: %s\n", err.msg);
			fail++;
		}
	} else {
		std::printf("FAIL open from C++: %s\n", err.msg);
		fail++;
	}
	tgc_head_close(head);
	struct tgc_pacer p;
	tgc_pacer_init(&p, 8, 1500, 0);	/* 1 kB/s: a second datagram must wait */
	tgc_pacer_take(&p, 1500, 0);
	if (tgc_pacer_delay(&p, 1500, 0) > 0) {
		std::printf("ok   pacer from C++ waits when the bucket is empty\n");
		pass++;
	} else {
		std::printf("FAIL pacer from C++ did not wait\n");
		fail++;
	}
	if (std::string(tgc_status_name(PROTO_ST_PENDING)) == "pending" &&
	    std::string(tgc_reason_name(0)) == "ok" && PROTO_PORT == 7700) {
		std::printf("ok   status names from C++\n");
		pass++;
	} else {
		std::printf("FAIL status names from C++: %s\n", tgc_status_name(PROTO_ST_PENDING));
		fail++;
	}
	std::printf("%d passed, %d failed\n", pass, fail);
	return fail != 0;
}
