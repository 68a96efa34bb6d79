/* SPDX-License-Identifier: MIT */
/* Answers that need no DNS: the static overrides of the configuration (for
 * closed deployments and tests) and domains that are IP literals. */
#include "resolver.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static struct rs_answer *from_config(const struct resolver_cfg *cfg, const struct rs_static_cfg *s)
{
    struct rs_answer *ans = rs_answer_new();
    ans->status = s->ntargets > 0 ? RS_STATUS_OK : RS_STATUS_NO_SERVICE;
    ans->ttl = cfg->max_ttl_ms / 1000;
    ans->ordered = true;
    for (size_t i = 0; i < s->ntargets; i++) {
        const struct rs_static_target_cfg *tc = &s->targets[i];
        struct rs_target *t =
            rs_answer_add_target(ans, tc->host, (int)tc->port, (enum rs_tls)tc->tls);
        t->priority = (int)i;
        if (tc->naddresses == 0) /* validate() made sure the host is numeric */
            rs_target_add_addr(ans, t, tc->host);
        for (size_t j = 0; j < tc->naddresses; j++)
            rs_target_add_addr(ans, t, tc->addresses[j]);
    }
    return ans;
}

/* The address inside an IP-literal domain ("192.0.2.1", "[2001:db8::1]"),
 * written to buf; NULL when domain is a name. */
static const char *ip_literal(const char *domain, char *buf, size_t size)
{
    unsigned char bin[sizeof(struct in6_addr)];
    size_t len = strlen(domain);
    if (inet_pton(AF_INET, domain, bin) == 1) {
        snprintf(buf, size, "%s", domain);
        return buf;
    }
    if (len > 2 && domain[0] == '[' && len - 2 < size) {
        memcpy(buf, domain + 1, len - 2);
        buf[len - 2] = '\0';
        if (inet_pton(AF_INET6, buf, bin) == 1)
            return buf;
    }
    return NULL;
}

struct rs_answer *rs_static_answer(const struct resolver *r, const char *domain)
{
    const struct resolver_cfg *cfg = r->cfg;
    for (size_t i = 0; i < cfg->nstatics; i++) {
        if (strcasecmp(cfg->statics[i].domain, domain) == 0)
            return from_config(cfg, &cfg->statics[i]);
    }
    char addr[INET6_ADDRSTRLEN];
    if (ip_literal(domain, addr, sizeof(addr)) == NULL)
        return NULL;
    struct rs_answer *ans = rs_answer_new();
    ans->status = RS_STATUS_OK;
    ans->ttl = cfg->max_ttl_ms / 1000;
    struct rs_target *t = rs_answer_add_target(ans, addr, RS_DEFAULT_PORT, RS_TLS_STARTTLS);
    rs_target_add_addr(ans, t, addr);
    return ans;
}
