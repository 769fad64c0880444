/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mk_slowtail: writes a model with a slow tail and one droppable block, for
 * tests/gateway_degrade.sh. Input [N,1,28,28] (Fashion-MNIST's shape, so gw_client's
 * --fmnist mode feeds it); a stem (3x3 conv 1->24, Relu) gives split "s1"; then one
 * residual block whose branch is a chain of 56 3x3 convs 24->24 (455 MFLOP per sample:
 * milliseconds even on a fast core), added back to s1 ("blk_add"); global average pool,
 * flatten, Gemm to 10 logits. Dropping blk_add (a model.conf drop= variant) leaves the stem
 * and the head: a tail thousands of times cheaper that takes the same tensor at the input
 * and at s1. The weights are a fixed pattern (identity at each conv's centre tap plus a small
 * deterministic ripple): the answers are not meant to classify anything, only to be
 * finite and the same every time.
 * Usage: mk_slowtail OUT.onnx   (exit 0 when written)
 */
#include "tests/onnx_builder.h"

#include <stdio.h>

enum { C = 24, K = 56 };

static float w_stem[C * 9], b_c[C], w_conv[C * C * 9], w_fc[10 * C], b_fc[10];

static void
weights(void)
{
	for (int o = 0; o < C; o++)
		for (int t = 0; t < 9; t++)
			w_stem[o * 9 + t] = (float)((o * 7 + t * 3) % 11 - 5) / 20.f;
	for (int o = 0; o < C; o++)
		for (int i = 0; i < C; i++)
			for (int t = 0; t < 9; t++)
				w_conv[(o * C + i) * 9 + t] = (o == i && t == 4 ? 1.f : 0.f) +
					(float)((o * 13 + i * 5 + t * 7) % 17 - 8) / 2000.f;
	for (int c = 0; c < 10; c++)
		for (int i = 0; i < C; i++)
			w_fc[c * C + i] = (float)((c * 11 + i * 3) % 13 - 6) / 10.f;
	for (int c = 0; c < 10; c++)
		b_fc[c] = (float)c / 100.f;
}

static void
conv(struct mb *b, const char *name, const char *in, const char *w, const char *out)
{
	static const int64_t pads[4] = { 1, 1, 1, 1 };
	const char *ins[3] = { in, w, "b_c" };
	Onnx__NodeProto *n = mb_node(b, "Conv", name, ins, 3, out);

	mb_attr_ints(b, n, "pads", pads, 4);
}

int
main(int argc, char **argv)
{
	static struct mb b;
	static char names[K][2][16];
	static const int64_t in_dims[4] = { 1, 1, 28, 28 }, d_stem[4] = { C, 1, 3, 3 },
			     d_conv[4] = { C, C, 3, 3 }, d_c[1] = { C }, d_fc[2] = { 10, C },
			     d_bfc[1] = { 10 }, one = 1;
	const char *prev = "s1";
	size_t len;
	uint8_t *buf;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: mk_slowtail OUT.onnx\n");
		return 2;
	}
	weights();
	mb_init(&b, 13);
	mb_init_tensor(&b, "w_stem", d_stem, 4, w_stem, NULL);
	mb_init_tensor(&b, "b_c", d_c, 1, b_c, NULL);
	mb_init_tensor(&b, "w_conv", d_conv, 4, w_conv, NULL);
	mb_init_tensor(&b, "w_fc", d_fc, 2, w_fc, NULL);
	mb_init_tensor(&b, "b_fc", d_bfc, 1, b_fc, NULL);
	conv(&b, "stem_conv", "input", "w_stem", "stem");
	mb_node(&b, "Relu", "stem_relu", (const char *[]){ "stem" }, 1, "s1");
	for (int k = 0; k < K; k++) {	/* one weight tensor for all: the file stays small */
		snprintf(names[k][0], sizeof(names[k][0]), "conv%d", k);
		snprintf(names[k][1], sizeof(names[k][1]), "c%d", k);
		conv(&b, names[k][0], prev, "w_conv", names[k][1]);
		prev = names[k][1];
	}
	mb_node(&b, "Add", "blk_add", (const char *[]){ "s1", prev }, 2, "blk");
	mb_node(&b, "GlobalAveragePool", "gap", (const char *[]){ "blk" }, 1, "gap");
	mb_node(&b, "Flatten", "flatten", (const char *[]){ "gap" }, 1, "flat");
	mb_attr_ints(&b, mb_node(&b, "Gemm", "fc", (const char *[]){ "flat", "w_fc", "b_fc" }, 3,
				 "logits"), "transB", &one, 1);
	mb_io(&b, "input", in_dims, 4, "logits");
	buf = mb_pack(&b, &len);
	f = fopen(argv[1], "wb");
	if (buf == NULL || f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "mk_slowtail: cannot write %s\n", argv[1]);
		free(buf);
		return 1;
	}
	free(buf);
	return 0;
}
