/* SPDX-License-Identifier: MIT */
/* Routes: one per (local domain, remote domain) pair. A route resolves the
 * remote domain through parley-resolver, tries its targets in order until
 * one gives an authenticated stream, keeps stanzas queued meanwhile, and
 * on failure bounces every one of them with the reason. It also carries the
 * db:verify requests that incoming streams need answered by the remote's
 * authoritative server. */
#include "s2s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "hmap.h"
#include "xml.h"

/* An idle route with nothing waiting is forgotten after this long: the map
 * holds the domains contacted lately, not every domain ever contacted. */
#define ROUTE_FORGET_MS (10 * 60 * 1000)
#define RETRY_FIRST_MS  250
#define RETRY_MAX_MS    10000
#define STABLE_MS       10000 /* a stream up this long resets the backoff */

struct route *route_get(struct s2s *s2s, const char *local, const char *remote)
{
    char key[1100];
    snprintf(key, sizeof(key), "%s %s", local, remote);
    struct route *r = hmap_get(s2s->routes, key);
    if (r != NULL)
        return r;
    r = xcalloc(1, sizeof(*r));
    r->s2s = s2s;
    r->key = xstrdup(key);
    r->local = xstrdup(local);
    r->remote = xstrdup(remote);
    queue_init(&r->q);
    s2s_list_init(&r->verifies);
    s2s_list_init(&r->ride_link);
    r->used_ms = s2s_now_ms();
    hmap_put(s2s->routes, r->key, r);
    return r;
}

static void targets_free(struct route *r)
{
    for (size_t i = 0; i < r->ntargets; i++) {
        free(r->targets[i].host);
        free(r->targets[i].address);
    }
    free(r->targets);
    r->targets = NULL;
    r->ntargets = r->next = 0;
}

void route_verify_free(struct verify *v)
{
    free(v->stream_id);
    free(v->key);
    free(v);
}

/* The stream takes more: its output is not backed up, and what it holds
 * unacknowledged stays within the queue's byte bound. */
static bool writable(const struct route *r)
{
    return conn_output_len(r->out->conn) < SCONN_OUT_HIGH &&
           ack_out_pending(r->out) < r->s2s->cfg->queue_bytes;
}

static void write_one(struct route *r, const char *data, size_t len, int64_t at_ms)
{
    sconn_write(r->out, data, len);
    ack_out_sent(r->out, r, data, len, at_ms);
    r->out->last_ms = s2s_now_ms();
    r->s2s->stats.stanzas_out++;
}

/* Resolves and connects, unless an incoming bidirectional stream from the
 * remote already authenticated the pair, or a stream of another local
 * domain to the same remote can carry this route too. */
static void start(struct route *r)
{
    /* db:verify needs a stream of our own (route_add_verify). */
    bool verifying = r->verifies.next != &r->verifies;
    if ((!verifying && in_bidi_carry(r)) || out_piggyback(r))
        return;
    route_start_own(r);
}

void route_start_own(struct route *r)
{
    struct s2s *s2s = r->s2s;
    r->state = ROUTE_RESOLVING;
    r->refused = false;
    r->fail_cond = XMPP_COND_REMOTE_SERVER_NOT_FOUND;
    r->fail_text[0] = '\0';
    r->resolve_id = router_link_resolve(s2s, r->remote);
    if (r->resolve_id == NULL) {
        route_fail(r, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "the router link is down");
        return;
    }
    hmap_put(s2s->resolving, r->resolve_id, r);
    r->deadline_ms = s2s_now_ms() + s2s->cfg->resolve_timeout_ms;
    log_debug(&s2s->lc, "resolving %s for %s", r->remote, r->local);
}

void route_send(struct route *r, const char *data, size_t len)
{
    struct s2s *s2s = r->s2s;
    r->used_ms = s2s_now_ms();
    if (s2s->stopping) {
        router_link_bounce(s2s, data, len, XMPP_COND_REMOTE_SERVER_TIMEOUT,
                           "the server is shutting down");
        return;
    }
    /* Straight out, unless older stanzas wait (order) or the stream's
     * output is backed up (the queue's bounds then apply). */
    if (r->state == ROUTE_UP && r->out != NULL && r->q.count == 0 && writable(r)) {
        write_one(r, data, len, s2s_now_ms());
        return;
    }
    if (queue_push(&r->q, data, len, s2s->cfg->queue_bytes, s2s_now_ms()) < 0) {
        log_warn(&s2s->lc, "queue for %s full (%zu bytes): stanza bounced", r->remote, r->q.bytes);
        router_link_bounce(s2s, data, len, XMPP_COND_RESOURCE_CONSTRAINT,
                           "too many stanzas are waiting for this server");
        return;
    }
    if (r->state == ROUTE_IDLE && r->retry_at_ms == 0)
        start(r);
}

/* Writes queued stanzas until the stream's output is backed up; returns
 * how many went. */
static size_t flush_queue(struct route *r)
{
    struct queued *e;
    size_t n = 0;
    while (r->state == ROUTE_UP && r->out != NULL && writable(r) &&
           (e = queue_pop(&r->q)) != NULL) {
        write_one(r, e->data, e->len, e->at_ms);
        free(e);
        n++;
    }
    return n;
}

void route_up(struct route *r)
{
    if (r == NULL)
        return; /* the stream outlived its route (shutdown) */
    struct s2s *s2s = r->s2s;
    r->state = ROUTE_UP;
    r->retry_until_ms = r->retry_at_ms = 0;
    r->up_since_ms = s2s_now_ms(); /* the backoff is kept until the stream proves stable */
    s2s->stats.out_ok++;
    targets_free(r);
    if (r->out != NULL)
        conn_set_watermark(r->out->conn, SCONN_OUT_LOW, SCONN_OUT_HIGH);
    size_t n = flush_queue(r);
    log_info(&s2s->lc, "route %s->%s up; %zu queued stanzas sent", r->local, r->remote, n);
}

void route_flush(struct route *r)
{
    flush_queue(r);
}

/* The server was there a moment ago (a restart, a network blip): the
 * stanzas wait for the next attempt rather than bounce. */
static bool retry_later(struct route *r, const char *text)
{
    int64_t now = s2s_now_ms();
    if (r->s2s->stopping || r->refused || r->q.count == 0 || now >= r->retry_until_ms)
        return false;
    r->backoff_ms = r->backoff_ms == 0 ? RETRY_FIRST_MS : r->backoff_ms * 2;
    if (r->backoff_ms > RETRY_MAX_MS)
        r->backoff_ms = RETRY_MAX_MS;
    r->retry_at_ms = now + r->backoff_ms;
    log_info(&r->s2s->lc, "%s->%s: %s; %zu stanzas wait, next attempt in %ld ms", r->local,
             r->remote, text, r->q.count, r->backoff_ms);
    return true;
}

void route_fail(struct route *r, enum xmpp_cond cond, const char *text)
{
    struct s2s *s2s = r->s2s;
    bool later = retry_later(r, text);
    while (r->verifies.next != &r->verifies) {
        struct verify *v = S2S_ENTRY(r->verifies.next, struct verify, link);
        s2s_list_del(&v->link);
        uint64_t in_id = v->in_id;
        route_verify_free(v);
        in_verify_done(s2s, in_id, r->remote, r->local, false, cond);
    }
    targets_free(r);
    r->state = ROUTE_IDLE;
    if (later)
        return;
    r->retry_until_ms = r->retry_at_ms = 0;
    r->backoff_ms = 0;
    log_notice(&s2s->lc, "cannot reach %s (for %s): %s; bouncing %zu stanzas", r->remote, r->local,
               text, r->q.count);
    s2s->stats.out_failed++;
    char why[300];
    snprintf(why, sizeof(why), "cannot reach %s: %s", r->remote, text);
    queue_bounce_all(s2s, &r->q, cond, why);
}

void route_attempt_failed(struct route *r, enum xmpp_cond cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->fail_text, sizeof(r->fail_text), fmt, ap);
    va_end(ap);
    r->fail_cond = cond;
    if (r->state != ROUTE_TRYING)
        return;
    log_info(&r->s2s->lc, "%s->%s: target %zu of %zu failed: %s", r->local, r->remote, r->next,
             r->ntargets, r->fail_text);
    /* Verifies sent on the failed stream go again on the next one. */
    for (struct s2s_list *l = r->verifies.next; l != &r->verifies; l = l->next)
        S2S_ENTRY(l, struct verify, link)->sent = false;
    if (r->next < r->ntargets && !r->s2s->stopping) {
        out_connect(r);
        return;
    }
    char text[sizeof(r->fail_text)];
    memcpy(text, r->fail_text, sizeof(text));
    route_fail(r, r->fail_cond, text);
}

void route_down(struct route *r, const char *reason, bool unexpected)
{
    int64_t now = s2s_now_ms();
    log_info(&r->s2s->lc, "route %s->%s down: %s", r->local, r->remote, reason);
    r->state = ROUTE_IDLE;
    r->retry_until_ms = unexpected ? now + r->s2s->cfg->queue_age_ms : 0;
    for (struct s2s_list *l = r->verifies.next; l != &r->verifies; l = l->next)
        S2S_ENTRY(l, struct verify, link)->sent = false;
    if (r->s2s->stopping || (r->q.count == 0 && r->verifies.next == &r->verifies))
        return;
    /* A stream that dies soon after it came up (a peer that ends every
     * stream, say while its own router is away) is retried with backoff,
     * not in a tight loop. */
    if (unexpected && now - r->up_since_ms < STABLE_MS) {
        r->backoff_ms = r->backoff_ms == 0 ? RETRY_FIRST_MS : r->backoff_ms * 2;
        if (r->backoff_ms > RETRY_MAX_MS)
            r->backoff_ms = RETRY_MAX_MS;
        r->retry_at_ms = now + r->backoff_ms;
        log_info(&r->s2s->lc, "%s->%s: next attempt in %ld ms", r->local, r->remote, r->backoff_ms);
        return;
    }
    r->backoff_ms = 0;
    start(r);
}

static int add_target(struct route *r, const struct xml_node *t, const char *address)
{
    const char *port = xml_attr_get(t, "port");
    const char *tls = xml_attr_get(t, "tls");
    char *end;
    long p = port ? strtol(port, &end, 10) : 0;
    if (port == NULL || *end != '\0' || p < 1 || p > 65535)
        return -1;
    r->targets = xrealloc(r->targets, (r->ntargets + 1) * sizeof(*r->targets));
    struct target *x = &r->targets[r->ntargets++];
    x->host = xstrdup(xml_attr_get(t, "host") ? xml_attr_get(t, "host") : "?");
    x->address = xstrdup(address);
    x->port = (int)p;
    x->direct_tls = tls != NULL && strcmp(tls, "direct") == 0;
    return 0;
}

void route_on_resolved(struct route *r, const struct xml_node *resolved, enum xmpp_cond cond)
{
    free(r->resolve_id);
    r->resolve_id = NULL;
    if (r->state != ROUTE_RESOLVING)
        return;
    if (resolved == NULL) {
        route_fail(r, XMPP_COND_REMOTE_SERVER_NOT_FOUND,
                   cond == XMPP_COND_NONE ? "no answer from the resolver" : xmpp_cond_name(cond));
        return;
    }
    const char *status = xml_attr_get(resolved, "status");
    if (status == NULL || strcmp(status, "ok") != 0) {
        char why[100];
        snprintf(why, sizeof(why), "DNS lookup failed (%s)", status ? status : "no status");
        route_fail(r,
                   status && strcmp(status, "timeout") == 0 ? XMPP_COND_REMOTE_SERVER_TIMEOUT
                                                            : XMPP_COND_REMOTE_SERVER_NOT_FOUND,
                   why);
        return;
    }
    targets_free(r);
    for (const struct xml_node *t = xml_child(resolved, S2S_NS_RESOLVER, "target"); t != NULL;
         t = xml_next(t, S2S_NS_RESOLVER, "target")) {
        for (const struct xml_node *a = xml_child(t, S2S_NS_RESOLVER, "address"); a != NULL;
             a = xml_next(a, S2S_NS_RESOLVER, "address")) {
            if (a->first != NULL && a->first->text != NULL && add_target(r, t, a->first->text) < 0)
                log_warn(&r->s2s->lc, "resolver: bad target for %s ignored", r->remote);
        }
    }
    if (r->ntargets == 0) {
        route_fail(r, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "the resolver gave no address");
        return;
    }
    r->state = ROUTE_TRYING;
    r->next = 0;
    out_connect(r);
}

void route_add_verify(struct route *r, uint64_t in_id, const char *stream_id, const char *key)
{
    struct verify *v = xcalloc(1, sizeof(*v));
    v->in_id = in_id;
    v->stream_id = xstrdup(stream_id);
    v->key = xstrdup(key);
    s2s_list_add(&r->verifies, &v->link);
    r->used_ms = s2s_now_ms();
    if (r->out != NULL && !r->out->outgoing) {
        /* A db:verify goes to the authoritative server on a stream of our
         * own, never over the peer's bidirectional one: leave it. */
        log_info(&r->s2s->lc, "%s->%s leaves the incoming bidi stream to send a db:verify",
                 r->local, r->remote);
        ack_out_requeue_route(r->out, r);
        s2s_list_del(&r->ride_link);
        r->riding = false;
        r->out = NULL;
        r->state = ROUTE_IDLE;
        route_start_own(r);
        return;
    }
    if (r->out != NULL)
        out_flush_verifies(r->out);
    else if (r->state == ROUTE_IDLE)
        start(r);
}

static void check_route(struct route *r, int64_t now)
{
    struct s2s *s2s = r->s2s;
    if (r->state == ROUTE_RESOLVING && now >= r->deadline_ms) {
        hmap_del(s2s->resolving, r->resolve_id);
        free(r->resolve_id);
        r->resolve_id = NULL;
        route_fail(r, XMPP_COND_REMOTE_SERVER_TIMEOUT, "the resolver did not answer in time");
    } else if (r->state == ROUTE_TRYING && r->riding && now >= r->deadline_ms) {
        out_rider_failed(r, "no answer to our dialback key in time");
    } else if (r->state == ROUTE_TRYING && r->out != NULL && r->out->conn != NULL &&
               now >= r->deadline_ms) {
        struct s2s_conn *sc = r->out;
        out_detach(sc, XMPP_COND_REMOTE_SERVER_TIMEOUT, "no authenticated stream in time");
        sconn_close(sc, "negotiation timed out");
    }
    if (r->state == ROUTE_UP && r->backoff_ms != 0 && now - r->up_since_ms >= STABLE_MS)
        r->backoff_ms = 0;
    if (r->state == ROUTE_IDLE && r->retry_at_ms != 0 && now >= r->retry_at_ms) {
        r->retry_at_ms = 0;
        if (r->q.count > 0 || r->verifies.next != &r->verifies)
            start(r);
    }
    const struct queued *e;
    while ((e = queue_peek(&r->q)) != NULL && now - e->at_ms >= s2s->cfg->queue_age_ms) {
        struct queued *old = queue_pop(&r->q);
        router_link_bounce(s2s, old->data, old->len, XMPP_COND_REMOTE_SERVER_TIMEOUT,
                           "the remote server could not be reached in time");
        free(old);
    }
}

static bool forgettable(const struct route *r, int64_t now)
{
    return r->state == ROUTE_IDLE && r->out == NULL && r->q.count == 0 &&
           r->verifies.next == &r->verifies && now - r->used_ms >= ROUTE_FORGET_MS;
}

static void route_free(struct route *r)
{
    free(r->resolve_id);
    targets_free(r);
    free(r->key);
    free(r->local);
    free(r->remote);
    free(r);
}

void route_housekeeping(struct s2s *s2s, int64_t now)
{
    struct hmap_iter it = {0};
    void *v;
    size_t nold = 0;
    while (hmap_next(s2s->routes, &it, NULL, &v)) {
        check_route(v, now);
        nold += forgettable(v, now);
    }
    if (nold == 0)
        return;
    /* The map must not change while it is iterated: collect, then drop. */
    struct route **old = xcalloc(nold, sizeof(*old));
    size_t n = 0;
    memset(&it, 0, sizeof(it));
    while (hmap_next(s2s->routes, &it, NULL, &v) && n < nold) {
        if (forgettable(v, now))
            old[n++] = v;
    }
    for (size_t i = 0; i < n; i++) {
        hmap_del(s2s->routes, old[i]->key);
        route_free(old[i]);
    }
    free(old);
}

void routes_free_all(struct s2s *s2s)
{
    struct hmap_iter it = {0};
    void *v;
    /* Unacknowledged stanzas may or may not have arrived: they bounce too,
     * since an error the sender can retry beats a silent loss. First all of
     * them, to whichever route (a stream may carry several) they are for. */
    while (s2s->routes != NULL && hmap_next(s2s->routes, &it, NULL, &v)) {
        struct route *r = v;
        if (r->out != NULL && (!r->riding || !r->out->outgoing))
            ack_out_requeue(r->out); /* its own stream, or an incoming bidi one */
    }
    memset(&it, 0, sizeof(it));
    while (s2s->routes != NULL && hmap_next(s2s->routes, &it, NULL, &v)) {
        struct route *r = v;
        queue_bounce_all(s2s, &r->q, XMPP_COND_REMOTE_SERVER_TIMEOUT,
                         "the server is shutting down");
        while (r->verifies.next != &r->verifies) {
            struct verify *x = S2S_ENTRY(r->verifies.next, struct verify, link);
            s2s_list_del(&x->link);
            route_verify_free(x);
        }
        if (r->riding) {
            s2s_list_del(&r->ride_link);
            r->riding = false;
        } else if (r->out != NULL) {
            r->out->route = NULL;
            if (r->out->conn == NULL) {
                close(r->out->fd);
                sconn_abandon(r->out);
            }
        }
        route_free(r);
    }
    hmap_free(&s2s->routes);
    s2s->routes = hmap_new();
    hmap_free(&s2s->resolving);
    s2s->resolving = hmap_new();
}
