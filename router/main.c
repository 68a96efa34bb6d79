/* SPDX-License-Identifier: MIT */
/* parley-router: the switchboard every other daemon and external component
 * connects to (XEP-0114). main() hands the skeleton its hooks. */
#include <stdlib.h>

#include <event2/listener.h>

#include "alloc.h"
#include "daemon.h"
#include "hmap.h"
#include "router.h"

static void *router_init(struct daemon *d, const struct common_cfg *common, const void *cfg,
                         struct err *err)
{
    struct router *r = xcalloc(1, sizeof(*r));
    r->base = daemon_base(d);
    r->common = common;
    r->cfg = cfg;
    r->routes = hmap_new();
    r->by_name = hmap_new();
    if (router_listen(r, err) < 0) {
        hmap_free(&r->routes);
        hmap_free(&r->by_name);
        free(r);
        return NULL;
    }
    return r;
}

static int router_reload(void *ctx, const struct common_cfg *common, const void *cfgp,
                         struct err *err)
{
    struct router *r = ctx;
    const struct router_cfg *cfg = cfgp;
    (void)err;
    if ((cfg->listen == NULL) != (r->cfg->listen == NULL) || cfg->port != r->cfg->port)
        log_warn(NULL, "reload: the listening address changes only at restart");
    r->common = common;
    r->cfg = cfg;
    bind_recheck_acl(r);
    return 0;
}

static void router_stop(void *ctx)
{
    struct router *r = ctx;
    if (r->listener != NULL) {
        evconnlistener_free(r->listener);
        r->listener = NULL;
    }
    peer_close_all(r, XMPP_COND_STREAM_SYSTEM_SHUTDOWN);
}

static bool router_busy(void *ctx)
{
    const struct router *r = ctx;
    return r->conns != NULL;
}

static void router_fini(void *ctx)
{
    struct router *r = ctx;
    log_info(NULL, "routed %llu stanzas, bounced %llu, dropped %llu, paused senders %llu times",
             (unsigned long long)r->stats.routed, (unsigned long long)r->stats.bounced,
             (unsigned long long)r->stats.dropped, (unsigned long long)r->stats.pauses);
    peer_free_all(r);
    hmap_free(&r->routes);
    hmap_free(&r->by_name);
    free(r);
}

static const struct daemon_hooks hooks = {
    .prog = "parley-router",
    .section = "router",
    .table = &router_cfg_table,
    .validate = router_cfg_validate,
    .init = router_init,
    .reload = router_reload,
    .stop = router_stop,
    .busy = router_busy,
    .fini = router_fini,
};

int main(int argc, char **argv)
{
    return daemon_run(argc, argv, &hooks);
}
