/* SPDX-License-Identifier: MIT */
/* parley-s2s: federation with other XMPP servers (RFC 6120 server streams,
 * STARTTLS, SASL EXTERNAL, dialback). main() hands the skeleton its hooks;
 * this file also owns the TLS credentials and the one-second tick. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "alloc.h"
#include "comp_client.h"
#include "daemon.h"
#include "hmap.h"
#include "s2s.h"

int64_t s2s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *s2s_local_domain(const struct s2s *s2s, const char *domain)
{
    if (domain == NULL)
        return NULL;
    for (size_t i = 0; i < s2s->common->ndomains; i++) {
        if (strcasecmp(s2s->common->domains[i], domain) == 0)
            return s2s->common->domains[i];
    }
    char lower[1024];
    size_t n = strlen(domain);
    if (s2s->served == NULL || n >= sizeof(lower))
        return NULL;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)((domain[i] >= 'A' && domain[i] <= 'Z') ? domain[i] + 32 : domain[i]);
    const struct served *sv = hmap_get(s2s->served, lower);
    return sv != NULL ? sv->name : NULL;
}

/* XEP-0185: the HMAC key is the hex SHA-256 of the secret, so the secret
 * itself never sits in memory longer than the configuration does. */
static void hash_secret(struct s2s *s2s, const char *secret)
{
    unsigned char d[32];
    gnutls_hash_fast(GNUTLS_DIG_SHA256, secret, strlen(secret), d);
    for (size_t i = 0; i < sizeof(d); i++) {
        static const char hex[] = "0123456789abcdef";
        s2s->db_key[2 * i] = hex[d[i] >> 4];
        s2s->db_key[2 * i + 1] = hex[d[i] & 15];
    }
    s2s->db_key[64] = '\0';
}

/* Server credentials: peers are asked for a certificate (SASL EXTERNAL),
 * checked against the ca-file or the system trust store. */
static int tls_setup(struct s2s *s2s, const struct s2s_cfg *cfg, struct err *err)
{
    struct tls_creds *creds = NULL;
    if (cfg->ncerts > 0) {
        creds = tls_creds_new(cfg->certs, cfg->ncerts, cfg->tls_priority, cfg->tls_ca_file, err);
        if (creds == NULL)
            return -1;
        if (cfg->tls_ca_file == NULL && tls_creds_trust_system(creds, err) < 0) {
            tls_creds_free(&creds);
            return -1;
        }
    }
    tls_creds_free(&s2s->creds);
    s2s->creds = creds;
    return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct s2s *s2s = arg;
    (void)fd;
    (void)what;
    int64_t now = s2s_now_ms();
    (void)router_link_flushed(s2s); /* keeps the written count fresh */
    route_housekeeping(s2s, now);
    sconn_housekeeping(s2s, now);
}

static void s2s_free(struct s2s *s2s)
{
    listen_stop(s2s);
    router_link_free(s2s);
    routes_free_all(s2s);
    if (s2s->tick != NULL)
        event_free(s2s->tick);
    if (s2s->resume != NULL)
        event_free(s2s->resume);
    tls_creds_free(&s2s->creds);
    hmap_free(&s2s->routes);
    hmap_free(&s2s->resolving);
    free(s2s->name);
    free(s2s);
}

static void *s2s_init(struct daemon *d, const struct common_cfg *common, const void *cfgp,
                      struct err *err)
{
    const struct s2s_cfg *cfg = cfgp;
    struct s2s *s2s = xcalloc(1, sizeof(*s2s));
    s2s->base = daemon_base(d);
    s2s->daemon = d;
    s2s->common = common;
    s2s->cfg = cfg;
    s2s->name = xstrdup(daemon_name_override(d) ? daemon_name_override(d) : cfg->name);
    log_ctx_set(&s2s->lc, "s2s %s", s2s->name);
    s2s->routes = hmap_new();
    s2s->resolving = hmap_new();
    s2s_list_init(&s2s->conns);
    hash_secret(s2s, cfg->dialback_secret);
    s2s->tick = event_new(s2s->base, -1, EV_PERSIST, on_tick, s2s);
    struct timeval sec = {1, 0};
    event_add(s2s->tick, &sec);
    if (tls_setup(s2s, cfg, err) < 0 || router_link_start(s2s, err) < 0 ||
        listen_start(s2s, err) < 0) {
        s2s_free(s2s);
        return NULL;
    }
    return s2s;
}

static int s2s_reload(void *ctx, const struct common_cfg *common, const void *cfgp, struct err *err)
{
    struct s2s *s2s = ctx;
    const struct s2s_cfg *cfg = cfgp;
    if (tls_setup(s2s, cfg, err) < 0)
        return -1;
    if (cfg->port != s2s->cfg->port || cfg->tls_port != s2s->cfg->tls_port)
        log_warn(&s2s->lc, "reload: listening ports change only at restart");
    s2s->common = common;
    s2s->cfg = cfg;
    hash_secret(s2s, cfg->dialback_secret);
    return 0;
}

static void s2s_stop(void *ctx)
{
    struct s2s *s2s = ctx;
    s2s->stopping = true;
    listen_stop(s2s);
    /* Routes first: their queues bounce while the router link is up, and
     * streams closed afterwards are no longer tied to a route that would
     * try its next target. */
    routes_free_all(s2s);
    sconn_close_all(s2s, XMPP_COND_STREAM_SYSTEM_SHUTDOWN, "the server is shutting down");
}

static bool s2s_busy(void *ctx)
{
    const struct s2s *s2s = ctx;
    return s2s->conns.next != &s2s->conns || (s2s->cc != NULL && comp_client_pending(s2s->cc) > 0);
}

static void s2s_fini(void *ctx)
{
    struct s2s *s2s = ctx;
    const struct s2s_stats *st = &s2s->stats;
    log_info(&s2s->lc,
             "out: %llu streams up (%llu SASL EXTERNAL, %llu dialback), %llu failed; in: %llu "
             "accepted, %llu authenticated; stanzas %llu out, %llu in, %llu bounced",
             (unsigned long long)st->out_ok, (unsigned long long)st->sasl_out,
             (unsigned long long)st->dialback_out, (unsigned long long)st->out_failed,
             (unsigned long long)st->in_accepted, (unsigned long long)st->in_authed,
             (unsigned long long)st->stanzas_out, (unsigned long long)st->stanzas_in,
             (unsigned long long)st->bounced);
    sconn_close_all(s2s, XMPP_COND_STREAM_SYSTEM_SHUTDOWN, "the server is shutting down");
    s2s_free(s2s);
}

static const struct daemon_hooks hooks = {
    .prog = "parley-s2s",
    .section = "s2s",
    .table = &s2s_cfg_table,
    .validate = s2s_cfg_validate,
    .init = s2s_init,
    .reload = s2s_reload,
    .stop = s2s_stop,
    .busy = s2s_busy,
    .fini = s2s_fini,
};

int main(int argc, char **argv)
{
    return daemon_run(argc, argv, &hooks);
}
