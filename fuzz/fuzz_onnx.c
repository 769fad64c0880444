/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the ONNX model loader (files an operator points the gateway at), and
 * on every model it accepts the residual block analysis and the skip-drop surgery (model.conf
 * drop= variants): dropping every droppable block must give a file that loads again. */
#include "kernels/kernels.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_drop_all(const struct kern_model *m, const struct kern_load_opts *o)
{
	struct kern_block b[16];
	unsigned n = kern_model_blocks(m, b, 16), idx[16], k = 0;
	struct kern_model *v = NULL;
	uint8_t *buf = NULL;
	size_t len;

	for (unsigned i = 0; i < n && i < 16; i++)
		if (b[i].droppable)
			idx[k++] = i;
	if (kern_model_drop(m, idx, k, &buf, &len, NULL) != 0)
		__builtin_trap();	/* droppable blocks of a loaded model always drop */
	if (kern_model_load_mem(buf, len, "dropped", o, &v, NULL) == 0)
		kern_model_free(v);
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Tight bounds keep each input's memory small; the loader must refuse, not grow. */
	struct kern_load_opts o = { .max_file_bytes = 1 << 20, .max_nodes = 256,
				    .max_tensor_elems = 1 << 16 };
	struct kern_model *m = NULL;

	if (kern_model_load_mem(data, size, "fuzz", &o, &m, NULL) == 0) {
		struct kern_model_info info;

		kern_model_get_info(m, &info);
		for (unsigned i = 0; i < info.n_splits; i++)
			if (kern_model_split(m, i) == NULL)
				__builtin_trap();
		fuzz_drop_all(m, &o);
		kern_model_free(m);
	}
	return 0;
}
