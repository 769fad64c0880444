/* libFuzzer target: the gateway's configuration and model.conf parsers. */
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
	    (mc.n_splits > GW_MAX_SPLITS || mc.n_exits > GW_MAX_EXITS))
		__builtin_trap();
	return 0;
}
