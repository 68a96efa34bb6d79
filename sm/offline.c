/* SPDX-License-Identifier: MIT */
/* Offline messages (XEP-0160): stored with a delay stamp (XEP-0203) when no
 * resource can take them, within a per-user quota, and delivered in order
 * when the user next sends available presence with a non-negative
 * priority. Headlines, errors and messages with the no-store hint
 * (XEP-0334) are never stored. */
#include "sm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "buf.h"
#include "xml.h"

#define NS_DELAY "urn:xmpp:delay"
#define NS_HINTS "urn:xmpp:hints"

static void on_stored(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    if (res->status == STORE_ERR_CONFLICT) {
        /* the same origin again: a replay of a message already stored */
        log_debug(&p->sm->lc, "offline message %s for %s already stored", p->origin, p->user->jid);
    } else if (res->status == STORE_OK) {
        p->sm->stats.stored_offline++;
        /* The user may have come online (and emptied the queue) while this
         * was being stored: deliver it now rather than at the next login. */
        struct sm_session *best[1];
        if (sm_user_available(p->user, 0, best, 1) == 1)
            sm_offline_deliver(best[0]);
    } else {
        log_error(&p->sm->lc, "storing an offline message for %s: %s", p->user->jid, res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, "the message could not be stored");
    }
    sm_pkt_free(p);
}

static void on_counted(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    struct sm *sm = p->sm;
    if (res->status != STORE_OK) {
        log_error(&sm->lc, "counting offline messages of %s: %s", p->user->jid, res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        sm_pkt_free(p);
        return;
    }
    if (res->value >= sm->cfg->offline_quota) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, "the recipient's offline storage is full");
        sm_pkt_free(p);
        return;
    }
    char stamp[40];
    int64_t now = sm_now_us();
    sm_stamp(now, stamp, sizeof(stamp));
    struct xml_node *d = xml_elem_add(p->a, p->st, NS_DELAY, "delay");
    xml_attr_set(p->a, d, "from", p->to.domain);
    xml_attr_set(p->a, d, "stamp", stamp);
    struct buf b = BUF_INIT;
    xml_serialize(&b, p->st, XML_NS_CLIENT);
    struct store_rec *r = store_rec_new(p->a);
    store_rec_time(p->a, r, "ts", now);
    store_rec_xml(p->a, r, "xml", buf_cstr(&b));
    if (p->origin != NULL)
        store_rec_str(p->a, r, "origin", p->origin);
    buf_fini(&b);
    store_insert(sm->st, "queue", p->user->jid, r, on_stored, p);
}

void sm_offline_store(struct sm_pkt *p)
{
    const char *type = p->type[0] ? p->type : "normal";
    if (strcmp(type, "normal") != 0 && strcmp(type, "chat") != 0)
        return;
    if (xml_child(p->st, NS_HINTS, "no-store") != NULL ||
        xml_child(p->st, NS_HINTS, "no-permanent-store") != NULL)
        return;
    if (p->sm->cfg->offline_quota == 0) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    sm_pkt_keep(p);
    store_count(p->sm->st, "queue", p->user->jid, NULL, on_counted, p);
}

/* The session may end before the queue comes back: it is found again by
 * its key. */
struct offline_ctx {
    struct sm *sm;
    char key[512];
    char user[1100];
};

static void on_requeued(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK)
        log_error(&sm->lc, "putting an offline message back: %s", res->err.text);
}

static void on_queue(const struct store_res *res, void *arg)
{
    struct offline_ctx *c = arg;
    struct sm *sm = c->sm;
    struct sm_session *s = hmap_get(sm->sessions, c->key);
    if (res->status != STORE_OK) {
        log_error(&sm->lc, "reading offline messages for %s: %s", c->key, res->err.text);
    } else if (s == NULL && res->nrows > 0) {
        /* Gone meanwhile: put them back (same order) for the next login. */
        for (size_t i = 0; i < res->nrows; i++) {
            struct store_rec *r = store_rec_new(res->arena);
            store_rec_time(res->arena, r, "ts", store_rec_get_int(res->rows[i], "ts", 0));
            store_rec_xml(res->arena, r, "xml", store_rec_get_str(res->rows[i], "xml", ""));
            const char *origin = store_rec_get_str(res->rows[i], "origin", NULL);
            if (origin != NULL)
                store_rec_str(res->arena, r, "origin", origin);
            store_put(sm->st, "queue", c->user, r, on_requeued, sm);
        }
    } else {
        for (size_t i = 0; i < res->nrows; i++) {
            struct sm_pkt *p = sm_pkt_new(sm);
            struct xml_node *st =
                xml_parse_fragment(p->a, store_rec_get_str(res->rows[i], "xml", ""));
            const char *from = st ? xml_attr_get(st, "from") : NULL;
            if (st != NULL && from != NULL && !sm_allow_in(s->user, SM_MESSAGE, from)) {
                /* blocked since it was stored */
            } else if (st != NULL) {
                xml_attr_set(p->a, st, "to", s->jid);
                /* With its origin, so that a c2s that already delivered it
                 * (before an sm restart replayed it into the queue) drops it. */
                sm_session_write(s, st, store_rec_get_str(res->rows[i], "origin", NULL));
            } else {
                log_error(&sm->lc, "an offline message of %s is damaged; dropped", s->jid);
            }
            sm_pkt_free(p);
        }
    }
    free(c);
}

void sm_offline_deliver(struct sm_session *s)
{
    struct sm *sm = s->user->sm;
    struct offline_ctx *c = xcalloc(1, sizeof(*c));
    c->sm = sm;
    snprintf(c->key, sizeof(c->key), "%s/%s", s->c2s, s->sid);
    snprintf(c->user, sizeof(c->user), "%s", s->user->jid);
    store_take_all(sm->st, "queue", s->user->jid, on_queue, c);
}
