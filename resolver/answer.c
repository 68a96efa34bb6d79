/* SPDX-License-Identifier: MIT */
/* The answer model: a resolved domain's targets with their addresses, all
 * in one arena so that it moves between a lookup and the cache whole. */
#include "resolver.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "arena.h"

struct rs_answer *rs_answer_new(void)
{
    struct rs_answer *ans = xcalloc(1, sizeof(*ans));
    ans->a = arena_new(1024);
    return ans;
}

void rs_answer_free(struct rs_answer **ansp)
{
    struct rs_answer *ans = *ansp;
    if (ans == NULL)
        return;
    arena_free(&ans->a);
    free(ans);
    *ansp = NULL;
}

struct rs_target *rs_answer_add_target(struct rs_answer *ans, const char *host, int port,
                                       enum rs_tls tls)
{
    if (ans->ntargets == ans->cap) {
        size_t cap = ans->cap ? ans->cap * 2 : 4;
        struct rs_target *grown = arena_alloc(ans->a, cap * sizeof(*grown));
        if (ans->ntargets > 0)
            memcpy(grown, ans->targets, ans->ntargets * sizeof(*grown));
        ans->targets = grown;
        ans->cap = cap;
    }
    struct rs_target *t = &ans->targets[ans->ntargets++];
    *t = (struct rs_target){.host = arena_strdup(ans->a, host), .port = port, .tls = tls};
    return t;
}

void rs_target_add_addr(struct rs_answer *ans, struct rs_target *t, const char *addr)
{
    for (size_t i = 0; i < t->naddrs; i++) {
        if (strcasecmp(t->addrs[i], addr) == 0)
            return;
    }
    if (t->naddrs == t->addr_cap) {
        size_t cap = t->addr_cap ? t->addr_cap * 2 : 4;
        const char **grown = arena_alloc(ans->a, cap * sizeof(*grown));
        if (t->naddrs > 0)
            memcpy(grown, t->addrs, t->naddrs * sizeof(*grown));
        t->addrs = grown;
        t->addr_cap = cap;
    }
    /* IPv4 first, whichever query answered first: s2s tries them in order */
    size_t at = t->naddrs;
    if (strchr(addr, ':') == NULL) {
        while (at > 0 && strchr(t->addrs[at - 1], ':') != NULL)
            at--;
        memmove(&t->addrs[at + 1], &t->addrs[at], (t->naddrs - at) * sizeof(*t->addrs));
    }
    t->addrs[at] = arena_strdup(ans->a, addr);
    t->naddrs++;
}

void rs_answer_prune(struct rs_answer *ans)
{
    size_t kept = 0;
    for (size_t i = 0; i < ans->ntargets; i++) {
        if (ans->targets[i].naddrs > 0)
            ans->targets[kept++] = ans->targets[i];
    }
    ans->ntargets = kept;
}

const char *rs_status_name(enum rs_status status)
{
    switch (status) {
    case RS_STATUS_OK:
        return "ok";
    case RS_STATUS_NO_SERVICE:
        return "no-service";
    case RS_STATUS_NXDOMAIN:
        return "nxdomain";
    case RS_STATUS_SERVFAIL:
        return "servfail";
    case RS_STATUS_TIMEOUT:
        return "timeout";
    }
    return "servfail";
}
