/* SPDX-License-Identifier: MIT */
/* parley-resolver: the context, the configuration, the answer model and the
 * functions the resolver's files share. The wire protocol is
 * docs/protocol.md §9. */
#ifndef PL_RESOLVER_H
#define PL_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "attr.h"
#include "common_cfg.h"
#include "conf.h"
#include "err.h"
#include "log.h"

struct arena;
struct buf;
struct comp_client;
struct event;
struct event_base;
struct hmap;
struct rs_dns;
struct rs_cache;
struct xml_node;

#define RS_NS           "urn:parley:resolver:1"
#define RS_DEFAULT_PORT 5269
#define RS_MAX_DOMAIN   253 /* RFC 1035: a name of 255 octets on the wire */

/* ---- configuration (<resolver>) ---------------------------------------- */

enum rs_tls {
    RS_TLS_STARTTLS = 0, /* _xmpp-server._tcp: plain TCP, then STARTTLS */
    RS_TLS_DIRECT,       /* _xmpps-server._tcp: TLS from the first byte (XEP-0368) */
};

struct rs_nameserver_cfg {
    const char *address; /* numeric IPv4 or IPv6 */
    long port;
};

struct rs_static_target_cfg {
    const char *host;
    long port;
    int tls; /* enum rs_tls */
    const char **addresses;
    size_t naddresses;
};

struct rs_static_cfg {
    const char *domain;
    struct rs_static_target_cfg *targets;
    size_t ntargets; /* 0: the domain has no service */
};

struct resolver_cfg {
    const char *name;
    struct rs_nameserver_cfg *nameservers; /* none: /etc/resolv.conf */
    size_t nnameservers;
    long timeout_ms; /* per try, rounded up to whole seconds for udns */
    long attempts;
    long cache_size; /* answers kept; 0 disables the cache */
    long min_ttl_ms, max_ttl_ms;
    long negative_ttl_ms; /* nxdomain and no-service, when DNS gives no SOA */
    long failure_ttl_ms;  /* servfail and timeout; 0 = never cached */
    long max_pending;     /* requests waiting for DNS at once */
    struct rs_static_cfg *statics;
    size_t nstatics;
};

extern const struct conf_table resolver_cfg_table;
int resolver_cfg_validate(const struct common_cfg *common, const void *cfg, struct err *err);

/* ---- answers -------------------------------------------------------------- */

enum rs_status {
    RS_STATUS_OK = 0,
    RS_STATUS_NO_SERVICE, /* SRV ".", or nothing that resolves */
    RS_STATUS_NXDOMAIN,
    RS_STATUS_SERVFAIL,
    RS_STATUS_TIMEOUT,
};

struct rs_target {
    const char *host; /* lower case, no trailing dot */
    int port;
    int priority, weight; /* SRV; static targets keep their configured order */
    enum rs_tls tls;
    const char **addrs; /* numeric, A records first */
    size_t naddrs, addr_cap;
};

/* A resolved domain: everything lives in its own arena, so an answer moves
 * between a lookup and the cache as one pointer. */
struct rs_answer {
    struct arena *a;
    enum rs_status status;
    long ttl;     /* seconds, clamped by the configuration */
    bool ordered; /* static: keep the configured order, no shuffling */
    struct rs_target *targets;
    size_t ntargets, cap;
};

struct rs_answer *rs_answer_new(void);
void rs_answer_free(struct rs_answer **ans);
/* Appends a target (host copied into the answer's arena) and returns it. */
struct rs_target *rs_answer_add_target(struct rs_answer *ans, const char *host, int port,
                                       enum rs_tls tls);
/* Appends a numeric address (copied) unless the target has it already. */
void rs_target_add_addr(struct rs_answer *ans, struct rs_target *t, const char *addr);
/* Drops targets without an address, keeping the order of the rest. */
void rs_answer_prune(struct rs_answer *ans);
const char *rs_status_name(enum rs_status status);

/* RFC 2782 order for one use of ans: by priority, direct TLS before
 * STARTTLS at equal priority, weighted random within that. Fills order_r
 * (ans->ntargets indices). */
void rs_order(const struct rs_answer *ans, size_t *order_r);

/* ---- the context -------------------------------------------------------- */

/* Who asked, with which iq id. Borrowed strings while a request is
 * answered at once; heap copies owned by the lookup while it waits. */
struct rs_waiter {
    const char *requester; /* the iq's from: the answer's to */
    const char *self;      /* the iq's to: the answer's from (may be NULL) */
    const char *id;        /* may be NULL */
};

struct rs_stats {
    uint64_t requests, answered, bad, dns_lookups, cache_hits, static_hits;
};

struct resolver {
    struct event_base *base;
    const struct common_cfg *common;
    const struct resolver_cfg *cfg;
    const char *name;
    struct log_ctx lc;
    struct comp_client *link;
    struct rs_dns *dns;
    struct rs_cache *cache;
    struct hmap *lookups; /* domain -> struct rs_lookup in flight */
    struct event *housekeeping;
    size_t npending; /* waiters over all lookups */
    struct rs_stats stats;
};

/* link.c: the router link and the requests that arrive on it */
int rs_link_start(struct resolver *r, struct err *err) PL_WARN_UNUSED;
/* Sends the answer for domain to one waiter (source "dns", "cache" or
 * "static"); ttl is what the waiter is told. */
void rs_reply_answer(struct resolver *r, const struct rs_waiter *to, const char *domain,
                     const struct rs_answer *ans, long ttl, const char *source);

/* request.c: checking a requested domain */
/* Whether domain is an ASCII host name (A-labels) the resolver accepts;
 * on false, why_r says why. Writes the lower-cased name to out (size
 * RS_MAX_DOMAIN + 1). */
bool rs_domain_check(const char *domain, char *out, const char **why_r);

/* overrides.c: static answers from the configuration, and IP literals */
/* The static answer for domain (lower case), or NULL when none applies. The
 * caller frees it. */
struct rs_answer *rs_static_answer(const struct resolver *r, const char *domain);

/* lookup.c: one DNS resolution per domain, shared by its waiters */
/* Adds w (strings taken over) to the lookup for domain, starting one when
 * none is in flight. Returns 0, or -1 when too many requests wait already
 * (w is untouched). */
int rs_lookup_request(struct resolver *r, const char *domain, struct rs_waiter *w) PL_WARN_UNUSED;
/* Frees every lookup without answering (shutdown; the DNS context is gone). */
void rs_lookups_free_all(struct resolver *r);

/* dns.c: udns on the event loop */
enum rs_dns_type {
    RS_DNS_SRV_XMPPS, /* _xmpps-server._tcp.<name> */
    RS_DNS_SRV_XMPP,  /* _xmpp-server._tcp.<name> */
    RS_DNS_A,
    RS_DNS_AAAA,
};

enum rs_dns_outcome {
    RS_DNS_RECORDS,  /* at least one record of the type asked */
    RS_DNS_NODATA,   /* the name exists without such records */
    RS_DNS_NXDOMAIN, /* the name does not exist */
    RS_DNS_SERVFAIL, /* every server answered SERVFAIL or REFUSED, or garbage */
    RS_DNS_TIMEOUT,  /* no server answered in time */
};

struct rs_srv {
    const char *host; /* lower case; "." when the service is decidedly absent */
    int priority, weight, port;
};

/* The result of one query; records only with RS_DNS_RECORDS. */
struct rs_dns_result {
    enum rs_dns_outcome outcome;
    long ttl; /* seconds: the smallest TTL of the records; for NODATA and
               * NXDOMAIN the SOA's negative TTL (RFC 2308), -1 without one */
    const struct rs_srv *srv;
    size_t nsrv;
    const char *const *addrs; /* numeric A or AAAA */
    size_t naddrs;
};

/* Called once per query with its result, which lives until it returns. */
typedef void rs_dns_fn(void *arg, const struct rs_dns_result *res);

/* RFC 2308 §5: a negative reply stays valid for the smaller of its SOA's
 * TTL and MINIMUM. Returns that from the authority section of the DNS
 * message pkt (len bytes), or -1 when it has no SOA or is malformed. */
long rs_dns_negative_ttl(const unsigned char *pkt, size_t len);
/* Opens a udns context on r's loop with the configured nameservers (or
 * those of /etc/resolv.conf). Returns NULL with err. */
struct rs_dns *rs_dns_new(struct resolver *r, struct err *err);
/* Drops every query in flight without calling back; sets *d to NULL. */
void rs_dns_free(struct rs_dns **d);
/* Starts one query for name (absolute; no search list). fn is called
 * exactly once, from the event loop and never from inside this call, unless
 * the context is freed first. Returns 0, or -1 when udns refuses the query
 * (fn is then never called). */
int rs_dns_query(struct rs_dns *d, enum rs_dns_type type, const char *name, rs_dns_fn *fn,
                 void *arg) PL_WARN_UNUSED;

/* cache.c: answers by domain for their TTL, bounded, least recently used
 * evicted first */
struct rs_cache *rs_cache_new(void);
void rs_cache_free(struct rs_cache **c);
/* The live answer for domain and its remaining seconds in ttl_r, or NULL. */
const struct rs_answer *rs_cache_get(struct rs_cache *c, const char *domain, time_t now,
                                     long *ttl_r);
/* Takes ans over (it is freed when evicted); replaces an older answer. */
void rs_cache_put(struct rs_cache *c, const char *domain, struct rs_answer *ans, time_t now,
                  size_t max_entries);
/* Drops expired answers, and the oldest beyond max_entries. */
void rs_cache_expire(struct rs_cache *c, time_t now, size_t max_entries);
size_t rs_cache_count(const struct rs_cache *c);
/* Monotonic seconds, the cache's clock. */
time_t rs_now(void);

#endif
