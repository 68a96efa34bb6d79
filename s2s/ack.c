/* SPDX-License-Identifier: MIT */
/* Stanza acknowledgements on server streams (XEP-0198 §4 without
 * resumption). TCP only says the peer's kernel took the bytes; a server
 * that dies takes what it had read but not yet routed with it. So the
 * initiating side keeps each stanza until the receiving side's <a h=''/>
 * counts it, and when the stream dies the rest goes back to the route's
 * queue: sent again on the next stream (a duplicate is possible when only
 * the ack was lost) or bounced, never dropped silently. */
#include "s2s.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "hmap.h"
#include "xml.h"

#define ASK_EVERY 10 /* an <r/> after this many unacknowledged stanzas */

void ack_init(struct s2s_conn *sc)
{
    s2s_list_init(&sc->sm.unacked);
}

void ack_free(struct s2s_conn *sc)
{
    free(sc->sm.ends);
    sc->sm.ends = NULL;
    sc->sm.nends = sc->sm.cap = sc->sm.head = 0;
    while (sc->sm.unacked.next != &sc->sm.unacked) {
        struct queued *e = S2S_ENTRY(sc->sm.unacked.next, struct queued, link);
        s2s_list_del(&e->link);
        free(e);
    }
    sc->sm.unacked_bytes = 0;
}

void ack_out_start(struct s2s_conn *sc)
{
    if (!sc->sm.offered || sc->sm.on)
        return;
    sconn_write_str(sc, "<enable xmlns='" S2S_NS_SM "'/>");
    /* The peer counts from here: every stanza after <enable/> is numbered. */
    sc->sm.on = true;
    sc->sm.sent = 0;
}

static void ask(struct s2s_conn *sc)
{
    if (sc->sm.asked)
        return;
    sc->sm.asked = true;
    sconn_write_str(sc, "<r xmlns='" S2S_NS_SM "'/>");
}

void ack_out_sent(struct s2s_conn *sc, struct route *r, const char *data, size_t len, int64_t at_ms)
{
    if (!sc->sm.on)
        return;
    struct queued *e = xmalloc(sizeof(*e) + len + 1);
    s2s_list_init(&e->link);
    e->route = r;
    e->at_ms = at_ms;
    e->serial = ++sc->sm.sent;
    e->len = len;
    memcpy(e->data, data, len);
    e->data[len] = '\0';
    s2s_list_add(&sc->sm.unacked, &e->link);
    sc->sm.unacked_bytes += len;
    struct queued *first = S2S_ENTRY(sc->sm.unacked.next, struct queued, link);
    if (sc->sm.sent - first->serial + 1 >= ASK_EVERY)
        ask(sc);
}

size_t ack_out_pending(const struct s2s_conn *sc)
{
    return sc->sm.unacked_bytes;
}

void ack_out_tick(struct s2s_conn *sc)
{
    if (sc->sm.on && sc->sm.unacked.next != &sc->sm.unacked)
        ask(sc);
}

void ack_out_requeue_route(struct s2s_conn *sc, struct route *r)
{
    struct s2s_list mine;
    s2s_list_init(&mine);
    struct s2s_list *l = sc->sm.unacked.next;
    while (l != &sc->sm.unacked) {
        struct queued *e = S2S_ENTRY(l, struct queued, link);
        l = l->next;
        if (e->route != r)
            continue;
        s2s_list_del(&e->link);
        sc->sm.unacked_bytes -= e->len;
        s2s_list_add(&mine, &e->link);
    }
    queue_unshift_all(&r->q, &mine);
}

void ack_out_requeue(struct s2s_conn *sc)
{
    if (sc->sm.unacked.next == &sc->sm.unacked)
        return;
    log_info(&sc->lc, "%zu bytes of stanzas not acknowledged by %s go back to the queue",
             sc->sm.unacked_bytes, sc->remote);
    /* Newest first, each to the head of its own route's queue: every
     * queue keeps its order. */
    while (sc->sm.unacked.prev != &sc->sm.unacked) {
        struct queued *e = S2S_ENTRY(sc->sm.unacked.prev, struct queued, link);
        s2s_list_del(&e->link);
        struct s2s_list one;
        s2s_list_init(&one);
        s2s_list_add(&one, &e->link);
        queue_unshift_all(&e->route->q, &one);
    }
    sc->sm.unacked_bytes = 0;
}

/* <a h='N'/>: every stanza numbered up to N arrived (mod 2^32). */
static void on_ack(struct s2s_conn *sc, const struct xml_node *st)
{
    const char *hs = xml_attr_get(st, "h");
    char *end;
    unsigned long long h = hs ? strtoull(hs, &end, 10) : 0;
    if (hs == NULL || *end != '\0' || h > UINT32_MAX || (int32_t)((uint32_t)h - sc->sm.sent) > 0) {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNDEFINED_CONDITION,
                           "<a h='%.20s'/> acknowledges stanzas never sent (%" PRIu32 ")",
                           hs ? hs : "", sc->sm.sent);
        return;
    }
    sc->sm.asked = false;
    while (sc->sm.unacked.next != &sc->sm.unacked) {
        struct queued *e = S2S_ENTRY(sc->sm.unacked.next, struct queued, link);
        if ((int32_t)((uint32_t)h - e->serial) < 0)
            break;
        s2s_list_del(&e->link);
        sc->sm.unacked_bytes -= e->len;
        free(e);
    }
    out_flush_all(sc);
}

static void count_flushed(struct s2s_conn *sc)
{
    uint64_t flushed = router_link_flushed(sc->s2s);
    while (sc->sm.nends > 0 && sc->sm.ends[sc->sm.head] <= flushed) {
        sc->sm.head = (sc->sm.head + 1) % sc->sm.cap;
        sc->sm.nends--;
        sc->sm.h++;
    }
}

static void answer(struct s2s_conn *sc)
{
    count_flushed(sc);
    char a[80];
    snprintf(a, sizeof(a), "<a xmlns='" S2S_NS_SM "' h='%" PRIu32 "'/>", sc->sm.h);
    sconn_write_str(sc, a);
}

static void on_out_element(struct s2s_conn *sc, const struct xml_node *st)
{
    if (strcmp(st->name, "a") == 0) {
        on_ack(sc, st);
    } else if (strcmp(st->name, "enabled") == 0) {
        /* The peer numbers what it sends us from here (a bidirectional
         * stream's; on others none come). */
        log_debug(&sc->lc, "stanza acknowledgements on");
        sc->sm.h = 0;
        sc->sm.nends = sc->sm.head = 0;
    } else if (strcmp(st->name, "failed") == 0) {
        /* What was sent since <enable/> can no longer be tracked. */
        log_info(&sc->lc, "%s refused stanza acknowledgements", sc->remote);
        ack_free(sc);
        sc->sm.on = false;
    } else if (strcmp(st->name, "r") == 0) {
        answer(sc);
    }
}

static void on_in_element(struct s2s_conn *sc, const struct xml_node *st)
{
    if (strcmp(st->name, "enable") == 0) {
        if (hmap_count(sc->authed) == 0 || sc->sm.on) {
            sconn_write_str(sc, "<failed xmlns='" S2S_NS_SM
                                "'><unexpected-request xmlns='" XMPP_NS_STANZAS "'/></failed>");
            return;
        }
        sc->sm.on = true;
        sc->sm.h = sc->sm.sent = 0;
        sconn_write_str(sc, "<enabled xmlns='" S2S_NS_SM "'/>");
    } else if (strcmp(st->name, "r") == 0) {
        answer(sc);
    } else if (strcmp(st->name, "a") == 0) {
        if (sc->sm.on && sc->bidi) /* what we sent on a bidirectional stream */
            on_ack(sc, st);
    } else {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                           "<%s xmlns='" S2S_NS_SM "'/> is not supported here", st->name);
    }
}

void ack_in_link_lost(struct s2s *s2s)
{
    for (struct s2s_list *l = s2s->conns.next; l != &s2s->conns; l = l->next) {
        struct s2s_conn *sc = S2S_ENTRY(l, struct s2s_conn, link);
        if ((sc->outgoing && !sc->bidi) || !sc->sm.on || sc->state == SC_CLOSING)
            continue;
        count_flushed(sc);
        if (sc->sm.nends > 0)
            sconn_stream_error(sc, XMPP_COND_STREAM_INTERNAL_SERVER_ERROR,
                               "the router is unreachable: %zu stanzas not delivered, send them "
                               "again later",
                               sc->sm.nends);
    }
}

void ack_on_element(struct s2s_conn *sc, const struct xml_node *st)
{
    if (sc->outgoing)
        on_out_element(sc, st);
    else
        on_in_element(sc, st);
}

/* A stanza counts as handled once its bytes have left for the router: a
 * crash before that would lose it, and the sender must then still hold it. */
void ack_in_handled(struct s2s_conn *sc)
{
    if (!sc->sm.on)
        return;
    if (sc->sm.nends == sc->sm.cap) {
        size_t cap = sc->sm.cap ? sc->sm.cap * 2 : 16;
        uint64_t *ends = xcalloc(cap, sizeof(*ends));
        for (size_t i = 0; i < sc->sm.nends; i++)
            ends[i] = sc->sm.ends[(sc->sm.head + i) % sc->sm.cap];
        free(sc->sm.ends);
        sc->sm.ends = ends;
        sc->sm.cap = cap;
        sc->sm.head = 0;
    }
    sc->sm.ends[(sc->sm.head + sc->sm.nends) % sc->sm.cap] = sc->s2s->link_bytes;
    sc->sm.nends++;
}
