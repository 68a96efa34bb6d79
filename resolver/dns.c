/* SPDX-License-Identifier: MIT */
/* udns on the libevent loop: the UDP socket is watched by an event, udns's
 * timer requests drive one timer, and each query's result is turned into a
 * struct rs_dns_result that tells SERVFAIL from a timeout. */
#include "resolver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <udns.h>

#include "alloc.h"
#include "netaddr.h"

struct rs_query;

struct rs_dns {
    struct resolver *r;
    struct dns_ctx *ctx;
    struct event *io, *timer;
    struct rs_query *queries; /* in flight, freed with the context */
};

struct rs_query {
    struct rs_dns *d;
    enum rs_dns_type type;
    rs_dns_fn *fn;
    void *arg;
    /* A server answered SERVFAIL, REFUSED or NOTIMP: udns reports that and
     * a timeout alike (DNS_E_TEMPFAIL), so its debug hook tells us. */
    bool refused;
    long negative_ttl; /* from the SOA of a negative reply; -1 none */
    struct rs_query *prev, *next;
};

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct rs_dns *d = arg;
    (void)fd;
    (void)what;
    dns_ioevent(d->ctx, 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rs_dns *d = arg;
    (void)fd;
    (void)what;
    dns_timeouts(d->ctx, -1, 0);
}

/* udns asks for a wake-up in timeout seconds (0: at once; negative, or a
 * NULL ctx while closing: none). */
static void on_timer_request(struct dns_ctx *ctx, int timeout, void *arg)
{
    struct rs_dns *d = arg;
    if (ctx == NULL || timeout < 0) {
        evtimer_del(d->timer);
        return;
    }
    struct timeval tv = {timeout, 0};
    evtimer_add(d->timer, &tv);
}

/* udns.h names dns_skipdn's parameters (end, cur), but the library takes
 * (cur, end). */
long rs_dns_negative_ttl(const unsigned char *pkt, size_t len)
{
    if (len < DNS_HSIZE)
        return -1;
    dnscc_t *end = pkt + len, *cur = dns_payload(pkt);
    unsigned nan = dns_numan(pkt), nrr = nan + dns_numns(pkt);
    for (unsigned i = 0; i < dns_numqd(pkt); i++) {
        cur = dns_skipdn(cur, end);
        if (cur == NULL || end - cur < 4)
            return -1;
        cur += 4; /* type, class */
    }
    for (unsigned i = 0; i < nrr; i++) {
        cur = dns_skipdn(cur, end);
        if (cur == NULL || end - cur < 10)
            return -1;
        unsigned type = dns_get16(cur), ttl = dns_get32(cur + 4), rdlen = dns_get16(cur + 8);
        cur += 10;
        if ((size_t)(end - cur) < rdlen)
            return -1;
        if (i >= nan && type == DNS_T_SOA) {
            dnscc_t *rend = cur + rdlen;
            dnscc_t *r = dns_skipdn(cur, rend);         /* MNAME */
            r = r != NULL ? dns_skipdn(r, rend) : NULL; /* RNAME */
            if (r == NULL || rend - r < 20)
                return -1;
            unsigned minimum = dns_get32(r + 16); /* after serial, refresh, retry, expire */
            return (long)(ttl < minimum ? ttl : minimum);
        }
        cur += rdlen;
    }
    return -1;
}

/* Called by udns for every packet it sends (code 1) and every reply it
 * matched to a query (code 0); data is that query's callback argument. */
static void on_packet(int code, const struct sockaddr *sa, unsigned salen, dnscc_t *pkt, int plen,
                      const struct dns_query *q, void *data)
{
    (void)sa;
    (void)salen;
    if (code != 0 || q == NULL || data == NULL || plen < DNS_HSIZE)
        return;
    struct rs_query *rq = data;
    int rcode = dns_rcode(pkt);
    if (rcode == DNS_R_SERVFAIL || rcode == DNS_R_REFUSED || rcode == DNS_R_NOTIMPL)
        rq->refused = true;
    else if (rcode == DNS_R_NXDOMAIN || (rcode == DNS_R_NOERROR && dns_numan(pkt) == 0))
        rq->negative_ttl = rs_dns_negative_ttl(pkt, (size_t)plen);
}

static void query_unlink(struct rs_query *q)
{
    if (q->prev != NULL)
        q->prev->next = q->next;
    else
        q->d->queries = q->next;
    if (q->next != NULL)
        q->next->prev = q->prev;
}

static enum rs_dns_outcome outcome_of(const struct rs_query *q, int status)
{
    switch (status) {
    case DNS_E_NXDOMAIN:
        return RS_DNS_NXDOMAIN;
    case DNS_E_NODATA:
        return RS_DNS_NODATA;
    case DNS_E_TEMPFAIL:
        return q->refused ? RS_DNS_SERVFAIL : RS_DNS_TIMEOUT;
    default: /* a garbled reply, or udns out of memory */
        return RS_DNS_SERVFAIL;
    }
}

/* Ends q: calls back, then frees it. */
static void query_done(struct rs_query *q, const struct rs_dns_result *res)
{
    query_unlink(q);
    q->fn(q->arg, res);
    free(q);
}

static void on_srv(struct dns_ctx *ctx, struct dns_rr_srv *rr, void *data)
{
    struct rs_query *q = data;
    struct rs_dns_result res = {.outcome = RS_DNS_NODATA, .ttl = q->negative_ttl};
    struct rs_srv *srv = NULL;
    if (rr == NULL) {
        res.outcome = outcome_of(q, dns_status(ctx));
        res.ttl = q->negative_ttl;
    } else if (rr->dnssrv_nrr > 0) {
        srv = xcalloc((size_t)rr->dnssrv_nrr, sizeof(*srv));
        for (int i = 0; i < rr->dnssrv_nrr; i++) {
            const struct dns_srv *s = &rr->dnssrv_srv[i];
            for (char *c = s->name; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            /* udns writes the root name as "" */
            srv[i] = (struct rs_srv){s->name[0] ? s->name : ".", s->priority, s->weight, s->port};
        }
        res = (struct rs_dns_result){.outcome = RS_DNS_RECORDS,
                                     .ttl = (long)rr->dnssrv_ttl,
                                     .srv = srv,
                                     .nsrv = (size_t)rr->dnssrv_nrr};
    }
    query_done(q, &res);
    free(srv);
    free(rr);
}

static void on_addrs(struct rs_query *q, int status, int family, const void *addrs, int n,
                     unsigned ttl)
{
    struct rs_dns_result res = {.outcome = RS_DNS_NODATA, .ttl = q->negative_ttl};
    char(*text)[INET6_ADDRSTRLEN] = NULL;
    const char **list = NULL;
    if (status != 0) {
        res.outcome = outcome_of(q, status);
    } else if (n > 0) {
        size_t size = family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
        text = xcalloc((size_t)n, sizeof(*text));
        list = xcalloc((size_t)n, sizeof(*list));
        for (int i = 0; i < n; i++) {
            inet_ntop(family, (const char *)addrs + (size_t)i * size, text[i], sizeof(text[i]));
            list[i] = text[i];
        }
        res = (struct rs_dns_result){
            .outcome = RS_DNS_RECORDS, .ttl = (long)ttl, .addrs = list, .naddrs = (size_t)n};
    }
    query_done(q, &res);
    free(list);
    free(text);
}

static void on_a4(struct dns_ctx *ctx, struct dns_rr_a4 *rr, void *data)
{
    if (rr == NULL)
        on_addrs(data, dns_status(ctx), AF_INET, NULL, 0, 0);
    else
        on_addrs(data, 0, AF_INET, rr->dnsa4_addr, rr->dnsa4_nrr, rr->dnsa4_ttl);
    free(rr);
}

static void on_a6(struct dns_ctx *ctx, struct dns_rr_a6 *rr, void *data)
{
    if (rr == NULL)
        on_addrs(data, dns_status(ctx), AF_INET6, NULL, 0, 0);
    else
        on_addrs(data, 0, AF_INET6, rr->dnsa6_addr, rr->dnsa6_nrr, rr->dnsa6_ttl);
    free(rr);
}

int rs_dns_query(struct rs_dns *d, enum rs_dns_type type, const char *name, rs_dns_fn *fn,
                 void *arg)
{
    struct rs_query *q = xcalloc(1, sizeof(*q));
    *q = (struct rs_query){.d = d, .type = type, .fn = fn, .arg = arg, .negative_ttl = -1};
    struct dns_query *dq = NULL;
    char srvname[RS_MAX_DOMAIN + 32];
    switch (type) {
    case RS_DNS_SRV_XMPPS:
    case RS_DNS_SRV_XMPP:
        snprintf(srvname, sizeof(srvname), "%s.%s",
                 type == RS_DNS_SRV_XMPPS ? "_xmpps-server._tcp" : "_xmpp-server._tcp", name);
        dq = dns_submit_p(d->ctx, srvname, DNS_C_IN, DNS_T_SRV, DNS_NOSRCH, dns_parse_srv,
                          (dns_query_fn *)on_srv, q);
        break;
    case RS_DNS_A:
        dq = dns_submit_a4(d->ctx, name, DNS_NOSRCH, on_a4, q);
        break;
    case RS_DNS_AAAA:
        dq = dns_submit_a6(d->ctx, name, DNS_NOSRCH, on_a6, q);
        break;
    }
    if (dq == NULL) {
        free(q);
        return -1;
    }
    q->next = d->queries;
    if (d->queries != NULL)
        d->queries->prev = q;
    d->queries = q;
    return 0;
}

/* Sets the servers of ctx from the configuration (udns keeps a port per
 * server when it is given a sockaddr). */
static int add_servers(struct dns_ctx *ctx, const struct resolver_cfg *cfg, struct err *err)
{
    dns_add_serv(ctx, NULL);
    for (size_t i = 0; i < cfg->nnameservers; i++) {
        const struct rs_nameserver_cfg *ns = &cfg->nameservers[i];
        struct sockaddr_storage ss;
        socklen_t len;
        if (netaddr_parse(ns->address, (int)ns->port, &ss, &len, err) < 0)
            return -1;
        if (dns_add_serv_s(ctx, (struct sockaddr *)&ss) < 0)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                           "<resolver><nameserver address='%s'>: udns refuses it", ns->address);
    }
    return 0;
}

struct rs_dns *rs_dns_new(struct resolver *r, struct err *err)
{
    const struct resolver_cfg *cfg = r->cfg;
    /* udns copies new contexts from its default one: read /etc/resolv.conf
     * into it only when no nameserver is configured (tests must never
     * reach the machine's servers). */
    if (cfg->nnameservers > 0)
        dns_reset(NULL);
    else if (dns_init(NULL, 0) < 0) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "udns cannot read /etc/resolv.conf");
        return NULL;
    }
    struct dns_ctx *ctx = dns_new(NULL);
    if (ctx == NULL)
        log_fatal(NULL, PL_EXIT_NOMEM, "udns: out of memory");
    if (cfg->nnameservers > 0 && add_servers(ctx, cfg, err) < 0) {
        dns_free(ctx);
        return NULL;
    }
    dns_set_opt(ctx, DNS_OPT_TIMEOUT, (int)((cfg->timeout_ms + 999) / 1000));
    dns_set_opt(ctx, DNS_OPT_NTRIES, (int)cfg->attempts);
    struct rs_dns *d = xcalloc(1, sizeof(*d));
    d->r = r;
    d->ctx = ctx;
    d->timer = evtimer_new(r->base, on_timer, d);
    dns_set_dbgfn(ctx, on_packet);
    dns_set_tmcbck(ctx, on_timer_request, d);
    int fd = dns_open(ctx);
    if (fd < 0) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "udns cannot open its socket: %m");
        rs_dns_free(&d);
        return NULL;
    }
    d->io = event_new(r->base, fd, EV_READ | EV_PERSIST, on_io, d);
    event_add(d->io, NULL);
    return d;
}

void rs_dns_free(struct rs_dns **dp)
{
    struct rs_dns *d = *dp;
    if (d == NULL)
        return;
    if (d->io != NULL)
        event_free(d->io);
    dns_free(d->ctx); /* frees its queries without calling back, drops the timer */
    while (d->queries != NULL) {
        struct rs_query *q = d->queries;
        d->queries = q->next;
        free(q);
    }
    event_free(d->timer);
    free(d);
    *dp = NULL;
}
