/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the .npy parser (tensor files given to tailgate-model). */
#include "util/util.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_tensor t = { 0 };

	if (tg_npy_parse(data, size, &t, NULL) == 0) {
		/* What we accept is exactly what the bytes hold. */
		if (tg_tensor_bytes(&t) > size)
			__builtin_trap();
		tg_tensor_free(&t);
	}
	return 0;
}
