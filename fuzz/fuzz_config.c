/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the gateway's configuration and model.conf parsers (variant lines included). */
#include "gateway/gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_config c;
	struct gw_model_conf mc;

	gw_config_default(&c, NULL);
	if (gw_config_parse((const char *)data, size, "fuzz", &c, NULL) == 0)
		gw_config_validate(&c, NULL);
	gw_model_conf_default(&mc);
	if (gw_model_conf_parse((const char *)data, size, "fuzz", &mc, NULL) == 0 &&
	    (mc.n_splits > GW_MAX_SPLITS || mc.n_exits > GW_MAX_EXITS ||
	     mc.n_acc > GW_MAX_EXITS || mc.n_variants > GW_MAX_VARIANTS))
		__builtin_trap();
	for (unsigned v = 0; v < mc.n_variants && v < GW_MAX_VARIANTS; v++)
		if (mc.variants[v].id == 0 || mc.variants[v].n_drop > GW_MAX_DROP ||
		    mc.variants[v].name[0] == '\0')
			__builtin_trap();
	return 0;
}
