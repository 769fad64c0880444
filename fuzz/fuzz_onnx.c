/* libFuzzer target: the ONNX model loader (files an operator points the gateway at). */
#include "kernels/kernels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
		kern_model_free(m);
	}
	return 0;
}
