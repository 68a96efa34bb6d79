/* SPDX-License-Identifier: MIT */
/* Last Activity (XEP-0012): the sm's uptime when asked at the domain; for a
 * user's bare JID, 0 while the user has a session, else the seconds since
 * the last session ended and the status of the unavailable presence sent
 * then. Only the user and contacts subscribed to the user's presence may
 * ask (others get <forbidden/>, also for a full JID: such a query is not
 * delivered, XEP-0012 §5). */
#include "sm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

#define NS_LAST "jabber:iq:last"

extern const struct sm_feature sm_feat_last;

/* Full session JID -> the status text (heap) of the unavailable presence
 * that session broadcast, until it ends or becomes available again: the
 * feature's state (sm_feature_state). */
static struct hmap *statuses(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_last);
}

static void reply(struct sm_pkt *p, int64_t secs, const char *status)
{
    struct xml_node *q = xml_elem_new(p->a, NS_LAST, "query");
    char num[32];
    snprintf(num, sizeof(num), "%" PRId64, secs < 0 ? 0 : secs);
    xml_attr_set(p->a, q, "seconds", num);
    if (status != NULL && status[0] != '\0')
        xml_text_add(p->a, q, status, strlen(status));
    sm_iq_result(p, q);
}

/* Whether the sender of p may see the presence of p->user: subscribed to
 * it and not refused presence by the user's privacy lists or blocking
 * (XEP-0012 §7). */
static bool authorized(struct sm_pkt *p)
{
    const char *bare = jid_bare(p->a, &p->from);
    if (strcmp(bare, p->user->jid) == 0)
        return true;
    struct sm_item *it = sm_user_item(p->user, bare);
    return it != NULL && it->sub_from &&
           sm_allow_out(p->user, SM_PRESENCE, jid_full(p->a, &p->from));
}

static void on_logout(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "reading the logout time of %s: %s", jid_bare(p->a, &p->to),
                 res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    } else if (res->nrows == 0) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, "no recorded activity");
    } else {
        const struct store_rec *r = res->rows[0];
        int64_t when = store_rec_get_int(r, "time", 0);
        reply(p, (sm_now_us() - when) / 1000000, store_rec_get_str(r, "status", NULL));
    }
    sm_pkt_free(p);
}

static void user_last(struct sm_pkt *p)
{
    if (p->user == NULL || p->user->state != SM_USER_READY) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL); /* RFC 6121 §8.5.1 */
        return;
    }
    if (!authorized(p)) {
        sm_error(p, XMPP_COND_FORBIDDEN, NULL);
        return;
    }
    if (p->user->sessions != NULL) {
        reply(p, 0, NULL); /* XEP-0012 §4: a connected resource */
        return;
    }
    sm_pkt_keep(p);
    store_get(p->sm->st, "logout", p->user->jid, NULL, on_logout, p);
}

static void on_last(struct sm_pkt *p, struct xml_node *q)
{
    if (strcmp(p->type, "get") != 0 || strcmp(q->name, "query") != 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
        return;
    }
    bool server = p->route == SM_TO_DOMAIN || (p->has_to && p->to.local == NULL);
    if (server)
        reply(p, (sm_now_us() - p->sm->started_us) / 1000000, NULL);
    else if (p->route == SM_FROM_SESSION)
        reply(p, 0, NULL); /* one's own account: this very session is connected */
    else
        user_last(p);
}

/* A query to a full JID reaches the resource only if the sender could
 * have asked the bare JID. */
static enum sm_verdict guard_full_jid(struct sm_pkt *p)
{
    struct xml_node *payload = xml_first_elem(p->st);
    if (p->to.resource == NULL || strcmp(p->type, "get") != 0 || payload == NULL ||
        strcmp(payload->ns, NS_LAST) != 0 || p->user == NULL || p->user->state != SM_USER_READY ||
        authorized(p))
        return SM_PASS;
    sm_error(p, XMPP_COND_FORBIDDEN, NULL);
    return SM_HANDLED;
}

/* Remembers the status of a session's unavailable broadcast. */
static void track_status(struct sm_pkt *p)
{
    char *old = NULL;
    if (strcmp(p->type, "unavailable") == 0) {
        const char *status = xml_child_text(p->a, p->st, XML_NS_CLIENT, "status");
        old = hmap_put(statuses(p->sm), p->sess->jid, xstrdup(status ? status : ""));
    } else if (p->type[0] == '\0') {
        old = hmap_del(statuses(p->sm), p->sess->jid);
    }
    free(old);
}

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind == SM_IQ && p->route == SM_TO_USER)
        return guard_full_jid(p);
    if (p->kind == SM_PRESENCE && p->route == SM_FROM_SESSION && !p->has_to)
        track_status(p);
    return SM_PASS;
}

static void on_saved(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK)
        log_warn(&sm->lc, "recording a logout: %s", res->err.text);
}

static void on_session_end(struct sm_session *s)
{
    struct sm_user *u = s->user;
    char *status = hmap_del(statuses(u->sm), s->jid);
    if (u->sessions == s && s->next == NULL) {
        struct arena *a = arena_new(512);
        struct store_rec *r = store_rec_new(a);
        store_rec_time(a, r, "time", sm_now_us());
        if (status != NULL && status[0] != '\0')
            store_rec_str(a, r, "status", status);
        else
            store_rec_null(a, r, "status", STORE_T_STR);
        store_put(u->sm->st, "logout", u->jid, r, on_saved, u->sm);
        arena_free(&a);
    }
    free(status);
}

static int init(struct sm *sm, struct err *err)
{
    (void)err;
    sm_feature_map_new(sm, &sm_feat_last);
    return 0;
}

static void fini(struct sm *sm)
{
    sm_feature_map_free(sm, &sm_feat_last, free);
}

static const struct sm_iq_handler iqs[] = {
    {NS_LAST, SM_IQ_SERVER | SM_IQ_ACCOUNT | SM_IQ_USER, on_last},
};
static const char *const features[] = {NS_LAST, NULL};

const struct sm_feature sm_feat_last = {
    .name = "last",
    .order = 25, /* before presence (30), which consumes every presence */
    .server_features = features,
    .account_features = features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = init,
    .fini = fini,
    .on_stanza = on_stanza,
    .on_session_end = on_session_end,
};
