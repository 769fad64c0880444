/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the device key file parser (docs/protocol.md 12.5). What it accepts is
 * a table ascending by client id with no repeats, every entry found by its own id.
 */
#include "proto/proto.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_keys *t = NULL;
	struct tg_err err;

	if (proto_keys_parse(&t, (const char *)data, size, "fuzz", &err) != 0) {
		if (t != NULL || err.msg[0] == '\0')
			__builtin_trap();	/* a refusal leaves nothing and says why */
		return 0;
	}
	for (size_t i = 0; i < t->n; i++)
		if ((i > 0 && t->k[i - 1].client_id >= t->k[i].client_id) ||
		    proto_keys_find(t, t->k[i].client_id) != &t->k[i])
			__builtin_trap();
	proto_keys_free(t);
	return 0;
}
