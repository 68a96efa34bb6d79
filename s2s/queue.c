/* SPDX-License-Identifier: MIT */
/* The per-route queue: stanzas waiting for their outgoing stream, bounded
 * in bytes (new stanzas bounce when full) and in age (route.c bounces the
 * old ones), bounced whole when the route fails. Never dropped silently. */
#include "s2s.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void queue_init(struct s2s_queue *q)
{
    s2s_list_init(&q->items);
    q->bytes = q->count = 0;
}

int queue_push(struct s2s_queue *q, const char *data, size_t len, size_t max_bytes, int64_t now)
{
    if (q->bytes + len > max_bytes)
        return -1;
    struct queued *e = xmalloc(sizeof(*e) + len + 1);
    s2s_list_init(&e->link);
    e->at_ms = now;
    e->len = len;
    memcpy(e->data, data, len);
    e->data[len] = '\0';
    s2s_list_add(&q->items, &e->link);
    q->bytes += len;
    q->count++;
    return 0;
}

const struct queued *queue_peek(const struct s2s_queue *q)
{
    if (q->items.next == &q->items)
        return NULL;
    return S2S_ENTRY(q->items.next, struct queued, link);
}

struct queued *queue_pop(struct s2s_queue *q)
{
    if (q->items.next == &q->items)
        return NULL;
    struct queued *e = S2S_ENTRY(q->items.next, struct queued, link);
    s2s_list_del(&e->link);
    q->bytes -= e->len;
    q->count--;
    return e;
}

void queue_unshift_all(struct s2s_queue *q, struct s2s_list *list)
{
    while (list->prev != list) {
        struct queued *e = S2S_ENTRY(list->prev, struct queued, link);
        s2s_list_del(&e->link);
        /* Insert at the head: the last of list first, so the order holds. */
        e->link.next = q->items.next;
        e->link.prev = &q->items;
        q->items.next->prev = &e->link;
        q->items.next = &e->link;
        q->bytes += e->len;
        q->count++;
    }
}

void queue_bounce_all(struct s2s *s2s, struct s2s_queue *q, enum xmpp_cond cond, const char *text)
{
    struct queued *e;
    while ((e = queue_pop(q)) != NULL) {
        router_link_bounce(s2s, e->data, e->len, cond, text);
        free(e);
    }
}
