/* SPDX-License-Identifier: MIT */
/* One resolution of a domain, shared by every request for it that arrives
 * meanwhile: both SRV services at once, then A and AAAA of each target (or
 * of the domain itself on 5269 when it has no SRV record), then one answer
 * for all waiters, kept in the cache for its TTL. */
#include "resolver.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"

#define MAX_TARGETS 32 /* more SRV records than this are ignored */

struct rs_lookup {
    struct resolver *r;
    char *domain;
    struct rs_waiter *waiters;
    size_t nwaiters, cap;
    struct rs_answer *ans; /* built here; its arena holds the query args */
    unsigned pending;      /* queries in flight */
    bool fallback;         /* no SRV: the domain's own addresses on 5269 */
    bool srv_dot;          /* a service said "." */
    bool seen_timeout, seen_servfail, seen_nxdomain;
    long ttl;          /* the smallest TTL of the records used; -1 none yet */
    long negative_ttl; /* the smallest TTL of the negative replies and "."; -1 none */
};

/* What a query's callback needs to know. */
struct rs_qarg {
    struct rs_lookup *lk;
    enum rs_dns_type type;
    const char *host; /* A/AAAA: the target name */
};

static rs_dns_fn on_result;
static void addresses_start(struct rs_lookup *lk);
static void finish(struct rs_lookup *lk);

static void note_ttl(struct rs_lookup *lk, long ttl)
{
    if (lk->ttl < 0 || ttl < lk->ttl)
        lk->ttl = ttl;
}

static void note_negative(struct rs_lookup *lk, long ttl)
{
    if (ttl >= 0 && (lk->negative_ttl < 0 || ttl < lk->negative_ttl))
        lk->negative_ttl = ttl;
}

static void note_failure(struct rs_lookup *lk, enum rs_dns_outcome o)
{
    if (o == RS_DNS_TIMEOUT)
        lk->seen_timeout = true;
    else if (o == RS_DNS_SERVFAIL)
        lk->seen_servfail = true;
    else if (o == RS_DNS_NXDOMAIN)
        lk->seen_nxdomain = true;
}

static void query(struct rs_lookup *lk, enum rs_dns_type type, const char *name)
{
    struct rs_qarg *qa = arena_alloc(lk->ans->a, sizeof(*qa));
    *qa = (struct rs_qarg){lk, type, arena_strdup(lk->ans->a, name)};
    if (rs_dns_query(lk->r->dns, type, name, on_result, qa) < 0) {
        log_warn(&lk->r->lc, "udns refused a query for %s", name);
        lk->seen_servfail = true;
        return;
    }
    lk->pending++;
    lk->r->stats.dns_lookups++;
}

static void on_srv(struct rs_lookup *lk, enum rs_tls tls, const struct rs_dns_result *res)
{
    if (res->outcome != RS_DNS_RECORDS) {
        /* NXDOMAIN of _xmpp-server._tcp.D says nothing of D itself */
        if (res->outcome == RS_DNS_TIMEOUT || res->outcome == RS_DNS_SERVFAIL)
            note_failure(lk, res->outcome);
        else
            note_negative(lk, res->ttl);
        return;
    }
    /* RFC 2782: a single record with target "." means no service here */
    if (res->nsrv == 1 && strcmp(res->srv[0].host, ".") == 0) {
        lk->srv_dot = true;
        note_negative(lk, res->ttl);
        return;
    }
    note_ttl(lk, res->ttl);
    for (size_t i = 0; i < res->nsrv && lk->ans->ntargets < MAX_TARGETS; i++) {
        const struct rs_srv *s = &res->srv[i];
        if (strcmp(s->host, ".") == 0 || s->port <= 0)
            continue;
        struct rs_target *t = rs_answer_add_target(lk->ans, s->host, s->port, tls);
        t->priority = s->priority;
        t->weight = s->weight;
    }
}

static void on_addrs(struct rs_lookup *lk, const char *host, const struct rs_dns_result *res)
{
    if (res->outcome != RS_DNS_RECORDS) {
        note_failure(lk, res->outcome);
        note_negative(lk, res->ttl);
        return;
    }
    note_ttl(lk, res->ttl);
    for (size_t i = 0; i < lk->ans->ntargets; i++) {
        struct rs_target *t = &lk->ans->targets[i];
        if (strcasecmp(t->host, host) != 0)
            continue;
        for (size_t j = 0; j < res->naddrs; j++)
            rs_target_add_addr(lk->ans, t, res->addrs[j]);
    }
}

/* Every DNS result of a lookup arrives here. */
static void on_result(void *arg, const struct rs_dns_result *res)
{
    struct rs_qarg *qa = arg;
    struct rs_lookup *lk = qa->lk;
    static const char *const outcomes[] = {"records", "nodata", "nxdomain", "servfail", "timeout"};
    log_debug(&lk->r->lc, "%s: query %d for %s: %s (%zu, ttl %ld)", lk->domain, (int)qa->type,
              qa->host, outcomes[res->outcome], res->nsrv + res->naddrs, res->ttl);
    lk->pending--;
    if (qa->type == RS_DNS_SRV_XMPPS || qa->type == RS_DNS_SRV_XMPP)
        on_srv(lk, qa->type == RS_DNS_SRV_XMPPS ? RS_TLS_DIRECT : RS_TLS_STARTTLS, res);
    else
        on_addrs(lk, qa->host, res);
    if (lk->pending > 0)
        return;
    if (qa->type == RS_DNS_SRV_XMPPS || qa->type == RS_DNS_SRV_XMPP)
        addresses_start(lk);
    if (lk->pending == 0)
        finish(lk);
}

/* The SRV answers are in: ask for the targets' addresses, or the domain's
 * own when no service was published at all. */
static void addresses_start(struct rs_lookup *lk)
{
    struct rs_answer *ans = lk->ans;
    if (ans->ntargets == 0) {
        /* a "." or a failed SRV query decides; only silence falls back */
        if (lk->srv_dot || lk->seen_timeout || lk->seen_servfail)
            return;
        lk->fallback = true;
        rs_answer_add_target(ans, lk->domain, RS_DEFAULT_PORT, RS_TLS_STARTTLS);
    }
    for (size_t i = 0; i < ans->ntargets; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcasecmp(ans->targets[j].host, ans->targets[i].host) == 0;
        if (seen)
            continue;
        query(lk, RS_DNS_A, ans->targets[i].host);
        query(lk, RS_DNS_AAAA, ans->targets[i].host);
    }
}

static long seconds(long ms)
{
    return ms / 1000;
}

static long clamp_ttl(const struct resolver_cfg *cfg, long ttl)
{
    if (ttl < seconds(cfg->min_ttl_ms))
        ttl = seconds(cfg->min_ttl_ms);
    if (ttl > seconds(cfg->max_ttl_ms))
        ttl = seconds(cfg->max_ttl_ms);
    return ttl;
}

/* Settles status and TTL from what the queries found. */
static void conclude(struct rs_lookup *lk)
{
    const struct resolver_cfg *cfg = lk->r->cfg;
    struct rs_answer *ans = lk->ans;
    rs_answer_prune(ans);
    if (ans->ntargets > 0) {
        ans->status = RS_STATUS_OK;
        ans->ttl = clamp_ttl(cfg, lk->ttl < 0 ? 0 : lk->ttl);
        return;
    }
    if (lk->srv_dot)
        ans->status = RS_STATUS_NO_SERVICE;
    else if (lk->seen_timeout)
        ans->status = RS_STATUS_TIMEOUT;
    else if (lk->seen_servfail)
        ans->status = RS_STATUS_SERVFAIL;
    else if (lk->fallback && lk->seen_nxdomain)
        ans->status = RS_STATUS_NXDOMAIN;
    else
        ans->status = RS_STATUS_NO_SERVICE;
    if (ans->status == RS_STATUS_TIMEOUT || ans->status == RS_STATUS_SERVFAIL)
        ans->ttl = seconds(cfg->failure_ttl_ms);
    else /* the servers' own negative TTL (SOA), else the configured one */
        ans->ttl = clamp_ttl(cfg, lk->negative_ttl >= 0 ? lk->negative_ttl
                                                        : seconds(cfg->negative_ttl_ms));
}

static void waiter_free(struct rs_waiter *w)
{
    free((char *)w->requester);
    free((char *)w->self);
    free((char *)w->id);
}

static void lookup_free(struct rs_lookup *lk)
{
    for (size_t i = 0; i < lk->nwaiters; i++)
        waiter_free(&lk->waiters[i]);
    lk->r->npending -= lk->nwaiters;
    free(lk->waiters);
    rs_answer_free(&lk->ans);
    free(lk->domain);
    free(lk);
}

/* Answers every waiter, hands the answer to the cache and frees lk. */
static void finish(struct rs_lookup *lk)
{
    struct resolver *r = lk->r;
    conclude(lk);
    hmap_del(r->lookups, lk->domain);
    log_info(&r->lc, "%s: %s, %zu target(s), ttl %ld, for %zu request(s)", lk->domain,
             rs_status_name(lk->ans->status), lk->ans->ntargets, lk->ans->ttl, lk->nwaiters);
    for (size_t i = 0; i < lk->nwaiters; i++)
        rs_reply_answer(r, &lk->waiters[i], lk->domain, lk->ans, lk->ans->ttl, "dns");
    if (r->cfg->cache_size > 0 && lk->ans->ttl > 0) {
        rs_cache_put(r->cache, lk->domain, lk->ans, rs_now(), (size_t)r->cfg->cache_size);
        lk->ans = NULL;
    }
    lookup_free(lk);
}

int rs_lookup_request(struct resolver *r, const char *domain, struct rs_waiter *w)
{
    if (r->npending >= (size_t)r->cfg->max_pending)
        return -1;
    struct rs_lookup *lk = hmap_get(r->lookups, domain);
    bool fresh = lk == NULL;
    if (fresh) {
        lk = xcalloc(1, sizeof(*lk));
        lk->r = r;
        lk->domain = xstrdup(domain);
        lk->ans = rs_answer_new();
        lk->ttl = -1;
        lk->negative_ttl = -1;
        hmap_put(r->lookups, domain, lk);
        query(lk, RS_DNS_SRV_XMPPS, domain);
        query(lk, RS_DNS_SRV_XMPP, domain);
    }
    if (lk->nwaiters == lk->cap) {
        lk->cap = lk->cap ? lk->cap * 2 : 2;
        lk->waiters = xrealloc(lk->waiters, lk->cap * sizeof(*lk->waiters));
    }
    lk->waiters[lk->nwaiters++] = *w;
    r->npending++;
    log_debug(&r->lc, "%s: %s lookup for %s (id %s)", domain, fresh ? "new" : "joined",
              w->requester, w->id);
    if (fresh && lk->pending == 0)
        finish(lk); /* udns refused both queries: answer servfail now */
    return 0;
}

void rs_lookups_free_all(struct resolver *r)
{
    const char *key;
    void *value;
    struct hmap_iter it = {0};
    while (hmap_next(r->lookups, &it, &key, &value)) {
        lookup_free(value);
        hmap_del(r->lookups, key); /* the iterator restarts: the map changed */
        it = (struct hmap_iter){0};
    }
}
