/* SPDX-License-Identifier: MIT */
/* parley-resolver: DNS for s2s (SRV, then A/AAAA) with udns, a TTL cache
 * and static overrides, answering over the router (docs/protocol.md §9).
 * main() hands the skeleton its hooks. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "comp_client.h"
#include "daemon.h"
#include "hmap.h"
#include "resolver.h"

#define HOUSEKEEPING_SEC 5

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    struct resolver *r = arg;
    (void)fd;
    (void)what;
    rs_cache_expire(r->cache, rs_now(), (size_t)r->cfg->cache_size);
}

static void *resolver_init(struct daemon *d, const struct common_cfg *common, const void *cfgp,
                           struct err *err)
{
    const struct resolver_cfg *cfg = cfgp;
    struct resolver *r = xcalloc(1, sizeof(*r));
    r->base = daemon_base(d);
    r->common = common;
    r->cfg = cfg;
    r->name = xstrdup(daemon_name_override(d) ? daemon_name_override(d) : cfg->name);
    log_ctx_set(&r->lc, "resolver %s", r->name);
    r->dns = rs_dns_new(r, err);
    if (r->dns == NULL)
        goto fail;
    r->cache = rs_cache_new();
    r->lookups = hmap_new();
    if (rs_link_start(r, err) < 0)
        goto fail;
    r->housekeeping = event_new(r->base, -1, EV_PERSIST, on_housekeeping, r);
    struct timeval tick = {HOUSEKEEPING_SEC, 0};
    event_add(r->housekeeping, &tick);
    log_info(&r->lc, "asking %s; cache of %ld answers",
             cfg->nnameservers ? "the configured nameservers" : "the servers of /etc/resolv.conf",
             cfg->cache_size);
    return r;
fail:
    rs_dns_free(&r->dns);
    rs_cache_free(&r->cache);
    hmap_free(&r->lookups);
    free((char *)r->name);
    free(r);
    return NULL;
}

static bool same_servers(const struct resolver_cfg *a, const struct resolver_cfg *b)
{
    if (a->nnameservers != b->nnameservers || a->timeout_ms != b->timeout_ms ||
        a->attempts != b->attempts)
        return false;
    for (size_t i = 0; i < a->nnameservers; i++) {
        if (strcmp(a->nameservers[i].address, b->nameservers[i].address) != 0 ||
            a->nameservers[i].port != b->nameservers[i].port)
            return false;
    }
    return true;
}

/* Static overrides and cache limits apply at once; the DNS servers and the
 * component name only at restart (lookups in flight hold the udns context). */
static int resolver_reload(void *ctx, const struct common_cfg *common, const void *cfgp,
                           struct err *err)
{
    struct resolver *r = ctx;
    const struct resolver_cfg *cfg = cfgp;
    (void)err;
    if (!same_servers(r->cfg, cfg))
        log_warn(&r->lc, "reload: nameservers, timeout and attempts change only at restart");
    if (strcmp(r->cfg->name, cfg->name) != 0)
        log_warn(&r->lc, "reload: the component name changes only at restart");
    r->common = common;
    r->cfg = cfg;
    rs_cache_expire(r->cache, rs_now(), (size_t)cfg->cache_size);
    return 0;
}

static void resolver_stop(void *ctx)
{
    struct resolver *r = ctx;
    event_del(r->housekeeping);
    comp_client_free(&r->link);
}

static void resolver_fini(void *ctx)
{
    struct resolver *r = ctx;
    rs_dns_free(&r->dns); /* first: no callback may reach a freed lookup */
    rs_lookups_free_all(r);
    rs_cache_free(&r->cache);
    hmap_free(&r->lookups);
    event_free(r->housekeeping);
    log_info(&r->lc,
             "%llu requests (%llu bad), %llu answered: %llu from static, %llu from the cache, "
             "%llu DNS queries",
             (unsigned long long)r->stats.requests, (unsigned long long)r->stats.bad,
             (unsigned long long)r->stats.answered, (unsigned long long)r->stats.static_hits,
             (unsigned long long)r->stats.cache_hits, (unsigned long long)r->stats.dns_lookups);
    free((char *)r->name);
    free(r);
}

static const struct daemon_hooks hooks = {
    .prog = "parley-resolver",
    .section = "resolver",
    .table = &resolver_cfg_table,
    .validate = resolver_cfg_validate,
    .init = resolver_init,
    .reload = resolver_reload,
    .stop = resolver_stop,
    .fini = resolver_fini,
};

int main(int argc, char **argv)
{
    return daemon_run(argc, argv, &hooks);
}
