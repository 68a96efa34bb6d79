/* SPDX-License-Identifier: MIT */
/* Answers by domain, each kept until its TTL runs out. The cache is bounded:
 * beyond its size the least recently used answer goes first. */
#include "resolver.h"

#include <stdlib.h>

#include "alloc.h"
#include "hmap.h"

struct rs_entry {
    char *domain;
    struct rs_answer *ans;
    time_t expires;                 /* monotonic seconds */
    struct rs_entry *newer, *older; /* the recency list */
};

struct rs_cache {
    struct hmap *by_domain;
    struct rs_entry *newest, *oldest;
};

time_t rs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

struct rs_cache *rs_cache_new(void)
{
    struct rs_cache *c = xcalloc(1, sizeof(*c));
    c->by_domain = hmap_new();
    return c;
}

static void unlink_entry(struct rs_cache *c, struct rs_entry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void push_newest(struct rs_cache *c, struct rs_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest != NULL)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
}

static void drop(struct rs_cache *c, struct rs_entry *e)
{
    unlink_entry(c, e);
    hmap_del(c->by_domain, e->domain);
    rs_answer_free(&e->ans);
    free(e->domain);
    free(e);
}

void rs_cache_free(struct rs_cache **cp)
{
    struct rs_cache *c = *cp;
    if (c == NULL)
        return;
    while (c->oldest != NULL)
        drop(c, c->oldest);
    hmap_free(&c->by_domain);
    free(c);
    *cp = NULL;
}

const struct rs_answer *rs_cache_get(struct rs_cache *c, const char *domain, time_t now,
                                     long *ttl_r)
{
    struct rs_entry *e = hmap_get(c->by_domain, domain);
    if (e == NULL)
        return NULL;
    if (e->expires <= now) {
        drop(c, e);
        return NULL;
    }
    unlink_entry(c, e);
    push_newest(c, e);
    *ttl_r = (long)(e->expires - now);
    return e->ans;
}

void rs_cache_put(struct rs_cache *c, const char *domain, struct rs_answer *ans, time_t now,
                  size_t max_entries)
{
    struct rs_entry *old = hmap_get(c->by_domain, domain);
    if (old != NULL)
        drop(c, old);
    struct rs_entry *e = xcalloc(1, sizeof(*e));
    e->domain = xstrdup(domain);
    e->ans = ans;
    e->expires = now + ans->ttl;
    hmap_put(c->by_domain, domain, e);
    push_newest(c, e);
    rs_cache_expire(c, now, max_entries);
}

void rs_cache_expire(struct rs_cache *c, time_t now, size_t max_entries)
{
    for (struct rs_entry *e = c->oldest, *next; e != NULL; e = next) {
        next = e->newer;
        if (e->expires <= now)
            drop(c, e);
    }
    while (c->oldest != NULL && hmap_count(c->by_domain) > max_entries)
        drop(c, c->oldest);
}

size_t rs_cache_count(const struct rs_cache *c)
{
    return hmap_count(c->by_domain);
}
