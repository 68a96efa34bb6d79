/* SPDX-License-Identifier: MIT */
/* The <router> section of parley.xml. */
#include "router.h"

#include <stddef.h>

static const struct conf_key keys[] = {
    CONF_STR("router.listen", struct router_cfg, listen, NULL, false,
             "address to listen on; default: <router-link><address>"),
    CONF_INT("router.port", struct router_cfg, port, 0, 65535, "0",
             "port to listen on; 0: <router-link><port>"),
    CONF_SIZE("router.max-stanza", struct router_cfg, max_stanza, 1024, 64L << 20, "1M",
              "largest stanza a component may send"),
    CONF_SIZE("router.output-limit", struct router_cfg, output_limit, 4096, 1L << 30, "1M",
              "bytes queued to one component before its senders are paused"),
    CONF_DURATION("router.handshake-timeout", struct router_cfg, handshake_timeout_ms, 100, 3600000,
                  "10s", "time a new connection has to authenticate"),
};

const struct conf_table router_cfg_table = CONF_TABLE(struct router_cfg, keys);

int router_cfg_validate(const struct common_cfg *common, const void *cfgp, struct err *err)
{
    const struct router_cfg *cfg = cfgp;
    (void)cfg;
    if (common->ncomponents == 0)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "no <component> is configured: nothing could connect to the router");
    return 0;
}
