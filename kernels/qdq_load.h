/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to kernels/ (onnx.c and qdq_load.c): a QDQ file read as the float model it
 * quantizes (see qdq_load.c).
 */
#ifndef TG_KERNELS_QDQ_LOAD_H
#define TG_KERNELS_QDQ_LOAD_H

#include "onnx/onnx.pb-c.h"
#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>

struct kern_qdq_view {
	Onnx__GraphProto g;		/* used: the graph to build the IR from */
	bool used;			/* false: the file has no Q/DQ; read its own graph */
	const char **alias_from;	/* a removed DequantizeLinear's output ... */
	const char **alias_to;		/* ... stands for its QuantizeLinear's input */
	size_t n_alias;
	void **owned;			/* every allocation of the view */
	size_t n_owned, cap_owned;
};

/**
 * The view of g without its constant DequantizeLinears (folded to f32 initializers) and its
 * QuantizeLinear -> DequantizeLinear pairs (removed). It shares g's nodes and tensors: g
 * must outlive it. Release with kern_qdq_view_free() (also when unused).
 * @return 0 (v->used says whether there was anything to do), -EINVAL (a DequantizeLinear of
 *         constants it cannot read: err names it), -ENOMEM
 */
int kern_qdq_view_build(const Onnx__GraphProto *g, struct kern_qdq_view *v, struct tg_err *err);
void kern_qdq_view_free(struct kern_qdq_view *v);

#endif
