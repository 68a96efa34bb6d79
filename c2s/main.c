/* SPDX-License-Identifier: MIT */
/* parley-c2s: client connections (RFC 6120): TLS, SASL, resource binding,
 * and each session's reliable link to the sm. main() hands the skeleton
 * its hooks. */
#include <stdlib.h>
#include <time.h>

#include "alloc.h"
#include "arena.h"
#include "c2s.h"
#include "comp_client.h"
#include "daemon.h"
#include "hmap.h"
#include "store.h"
#include "store_cfg.h"

int64_t c2s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *c2s_init(struct daemon *d, const struct common_cfg *common, const void *cfgp,
                      struct err *err)
{
    const struct c2s_cfg *cfg = cfgp;
    struct c2s *c2s = xcalloc(1, sizeof(*c2s));
    c2s->base = daemon_base(d);
    c2s->daemon = d;
    c2s->common = common;
    c2s->cfg = cfg;
    c2s->name = xstrdup(daemon_name_override(d) ? daemon_name_override(d) : cfg->name);
    log_ctx_set(&c2s->lc, "c2s %s", c2s->name);
    c2s->domains = hmap_new();
    c2s_domains_update(c2s, common);
    limits_init(c2s);
    sessions_init(c2s);
    struct arena *a = arena_new(0);
    struct store_cfg scfg;
    store_cfg_from_common(common, a, &scfg);
    c2s->auth.st = store_open(c2s->base, &scfg, true, false, err);
    arena_free(&a);
    if (c2s->auth.st == NULL || sasl_init(c2s, err) < 0 || tls_setup(c2s, cfg, err) < 0 ||
        sm_link_start(c2s, err) < 0 || listen_start(c2s, err) < 0) {
        listen_stop(c2s);
        sm_link_free(c2s);
        tls_fini(c2s);
        sasl_fini(c2s);
        store_close(&c2s->auth.st);
        sessions_free_all(c2s);
        limits_fini(c2s);
        c2s_domains_free(c2s);
        free(c2s->name);
        free(c2s);
        return NULL;
    }
    return c2s;
}

static int c2s_reload(void *ctx, const struct common_cfg *common, const void *cfgp, struct err *err)
{
    struct c2s *c2s = ctx;
    const struct c2s_cfg *cfg = cfgp;
    const struct c2s_cfg *old = c2s->cfg;
    if (tls_setup(c2s, cfg, err) < 0)
        return -1;
    if (cfg->port != old->port || cfg->tls_port != old->tls_port ||
        (cfg->listen == NULL) != (old->listen == NULL))
        log_warn(&c2s->lc, "reload: listening addresses and ports change only at restart");
    c2s->common = common;
    c2s->cfg = cfg;
    c2s_domains_update(c2s, common);
    return 0;
}

static void c2s_stop(void *ctx)
{
    struct c2s *c2s = ctx;
    c2s->stopping = true;
    listen_stop(c2s);
    client_close_all(c2s, XMPP_COND_STREAM_SYSTEM_SHUTDOWN, "the server is shutting down");
}

static bool c2s_busy(void *ctx)
{
    const struct c2s *c2s = ctx;
    return c2s->clients.count > 0 || (c2s->sm.cc != NULL && comp_client_pending(c2s->sm.cc) > 0);
}

static void c2s_fini(void *ctx)
{
    struct c2s *c2s = ctx;
    log_info(&c2s->lc, "accepted %llu connections, refused %llu; %llu logins, %llu failed",
             (unsigned long long)c2s->stats.accepted, (unsigned long long)c2s->stats.refused,
             (unsigned long long)c2s->stats.auth_ok, (unsigned long long)c2s->stats.auth_failed);
    client_close_all(c2s, XMPP_COND_STREAM_SYSTEM_SHUTDOWN, "the server is shutting down");
    sm_link_free(c2s);
    sessions_free_all(c2s);
    store_close(&c2s->auth.st);
    sasl_fini(c2s);
    tls_fini(c2s);
    limits_fini(c2s);
    c2s_domains_free(c2s);
    free(c2s->name);
    free(c2s);
}

static const struct daemon_hooks hooks = {
    .prog = "parley-c2s",
    .section = "c2s",
    .table = &c2s_cfg_table,
    .validate = c2s_cfg_validate,
    .init = c2s_init,
    .reload = c2s_reload,
    .stop = c2s_stop,
    .busy = c2s_busy,
    .fini = c2s_fini,
};

int main(int argc, char **argv)
{
    return daemon_run(argc, argv, &hooks);
}
