/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the Fashion-MNIST idx parsers (gzip'd or plain), images and labels. */
#include "bench/bench.h"
#include "util/util.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_tensor t = { 0 };
	uint8_t *labels = NULL;
	size_t n = 0;

	/* A limit keeps a hostile count from sizing a large buffer in the fuzzer. */
	if (bench_fmnist_images_parse(data, size, "fuzz", 64, &t, NULL) == 0) {
		if (t.ndim != 4 || t.dims[2] != 28 || t.dims[3] != 28)
			__builtin_trap();
		tg_tensor_free(&t);
	}
	if (bench_fmnist_labels_parse(data, size, "fuzz", 64, &labels, &n, NULL) == 0) {
		for (size_t i = 0; i < n; i++)
			if (labels[i] > 9)
				__builtin_trap();
		free(labels);
	}
	return 0;
}
