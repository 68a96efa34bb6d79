/* SPDX-License-Identifier: MIT */
/* The <resolver> section of parley.xml. */
#include "resolver.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <udns.h>

#include "netaddr.h"

static const char *const tls_names[] = {"starttls", "direct", NULL};

static const struct conf_key ns_keys[] = {
    CONF_STR("@address", struct rs_nameserver_cfg, address, NULL, true,
             "numeric IPv4 or IPv6 address of a DNS server"),
    CONF_INT("@port", struct rs_nameserver_cfg, port, 1, 65535, "53", "its UDP port"),
};
static const struct conf_table ns_table = CONF_TABLE(struct rs_nameserver_cfg, ns_keys);

static const struct conf_key target_keys[] = {
    CONF_STR("@host", struct rs_static_target_cfg, host, NULL, true,
             "host name or numeric address of the target"),
    CONF_INT("@port", struct rs_static_target_cfg, port, 1, 65535, "5269", "its port"),
    CONF_ENUM("@tls", struct rs_static_target_cfg, tls, tls_names, "starttls",
              "starttls, or direct for TLS from the first byte"),
    CONF_LIST("address", struct rs_static_target_cfg, addresses, naddresses, false,
              "a numeric address of the host (needed when host is a name)"),
};
static const struct conf_table target_table = CONF_TABLE(struct rs_static_target_cfg, target_keys);

static const struct conf_key static_keys[] = {
    CONF_STR("@domain", struct rs_static_cfg, domain, NULL, true, "the domain answered"),
    CONF_GROUP("target", struct rs_static_cfg, targets, ntargets, &target_table, false,
               "a target, in the order to try; none means the domain has no service"),
};
static const struct conf_table static_table = CONF_TABLE(struct rs_static_cfg, static_keys);

static const struct conf_key keys[] = {
    CONF_STR("resolver.name", struct resolver_cfg, name, "resolver", false,
             "component name on the router (-n overrides)"),
    CONF_GROUP("resolver.nameserver", struct resolver_cfg, nameservers, nnameservers, &ns_table,
               false, "a DNS server to ask (up to 6); none: those of /etc/resolv.conf"),
    CONF_DURATION("resolver.timeout", struct resolver_cfg, timeout_ms, 1000, 300000, "5s",
                  "wait for an answer before asking again (whole seconds)"),
    CONF_INT("resolver.attempts", struct resolver_cfg, attempts, 1, 10, "2",
             "rounds over all nameservers before a query times out"),
    CONF_INT("resolver.cache.size", struct resolver_cfg, cache_size, 0, 10000000, "10000",
             "answers kept; 0 disables the cache"),
    CONF_DURATION("resolver.cache.min-ttl", struct resolver_cfg, min_ttl_ms, 0, 604800000, "30s",
                  "answers are kept at least this long, whatever their TTL"),
    CONF_DURATION("resolver.cache.max-ttl", struct resolver_cfg, max_ttl_ms, 0, 604800000, "1h",
                  "and at most this long; also the TTL of static answers"),
    CONF_DURATION("resolver.cache.negative-ttl", struct resolver_cfg, negative_ttl_ms, 0, 604800000,
                  "60s", "nxdomain and no-service kept when DNS gives no SOA (RFC 2308)"),
    CONF_DURATION("resolver.cache.failure-ttl", struct resolver_cfg, failure_ttl_ms, 0, 3600000,
                  "0s", "how long servfail and timeout are kept; 0: not at all"),
    CONF_INT("resolver.max-pending", struct resolver_cfg, max_pending, 1, 1000000, "10000",
             "requests waiting for DNS at once; more get resource-constraint"),
    CONF_GROUP("resolver.static", struct resolver_cfg, statics, nstatics, &static_table, false,
               "a domain answered from here, without DNS"),
};

const struct conf_table resolver_cfg_table = CONF_TABLE(struct resolver_cfg, keys);

static int check_address(const char *what, const char *addr, struct err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct err ignored = {0};
    if (netaddr_parse(addr, 1, &ss, &len, &ignored) < 0)
        return err_set(err, XMPP_COND_BAD_REQUEST, "%s: \"%s\" is not a numeric IP address", what,
                       addr);
    return 0;
}

static int check_static(const struct rs_static_cfg *s, struct err *err)
{
    char norm[RS_MAX_DOMAIN + 1];
    const char *why = NULL;
    if (!rs_domain_check(s->domain, norm, &why))
        return err_set(err, XMPP_COND_BAD_REQUEST, "<resolver><static domain='%s'>: %s", s->domain,
                       why);
    for (size_t i = 0; i < s->ntargets; i++) {
        const struct rs_static_target_cfg *t = &s->targets[i];
        char what[RS_MAX_DOMAIN + 64];
        snprintf(what, sizeof(what), "<resolver><static domain='%s'><target>", s->domain);
        if (t->naddresses == 0 && check_address(what, t->host, err) < 0)
            return err_set(err, XMPP_COND_BAD_REQUEST,
                           "%s: host '%s' is a name: give its <address>", what, t->host);
        for (size_t j = 0; j < t->naddresses; j++) {
            if (check_address(what, t->addresses[j], err) < 0)
                return -1;
        }
    }
    return 0;
}

int resolver_cfg_validate(const struct common_cfg *common, const void *cfgp, struct err *err)
{
    const struct resolver_cfg *cfg = cfgp;
    (void)common;
    if (cfg->nnameservers > DNS_MAXSERV)
        return err_set(err, XMPP_COND_BAD_REQUEST, "<resolver><nameserver>: at most %d",
                       DNS_MAXSERV);
    for (size_t i = 0; i < cfg->nnameservers; i++) {
        if (check_address("<resolver><nameserver @address>", cfg->nameservers[i].address, err) < 0)
            return -1;
    }
    if (cfg->min_ttl_ms > cfg->max_ttl_ms)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<resolver><cache>: <min-ttl> is longer than <max-ttl>");
    for (size_t i = 0; i < cfg->nstatics; i++) {
        if (check_static(&cfg->statics[i], err) < 0)
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(cfg->statics[j].domain, cfg->statics[i].domain) == 0)
                return err_set(err, XMPP_COND_BAD_REQUEST,
                               "<resolver><static domain='%s'>: given twice",
                               cfg->statics[i].domain);
        }
    }
    return 0;
}
