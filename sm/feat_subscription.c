/* SPDX-License-Identifier: MIT */
/* Presence subscriptions (RFC 6121 §3): the state machine of roster items
 * for outbound and inbound subscribe / subscribed / unsubscribe /
 * unsubscribed, pre-approval, requests kept while the user is offline, and
 * probes answered for subscribed contacts. */
#include "presence.h"
#include "roster.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "xml.h"

static bool is_sub_type(const char *t)
{
    return !strcmp(t, "subscribe") || !strcmp(t, "subscribed") || !strcmp(t, "unsubscribe") ||
           !strcmp(t, "unsubscribed");
}

static struct sm_item *item_for(struct sm_user *u, const char *bare, bool create)
{
    struct sm_item *it = sm_user_item(u, bare);
    if (it == NULL && create)
        it = roster_item_new(bare);
    return it;
}

/* Saves and pushes (pushes only when the roster shows it). */
static void changed(struct sm_user *u, struct sm_item *it)
{
    sm_user_save_item(u, it);
    if (it->in_roster)
        roster_push(u, it, false);
}

/* The user's bare JID is stamped on outbound subscription stanzas, and the
 * 'to' is the contact's bare JID (RFC 6121 §3.1.2). */
static void route_bare(struct sm_pkt *p, const char *contact)
{
    xml_attr_set(p->a, p->st, "from", p->user->jid);
    xml_attr_set(p->a, p->st, "to", contact);
    sm_send(p->sm, p->st, p->origin);
}

static void outbound(struct sm_pkt *p)
{
    struct sm_user *u = p->user;
    const char *contact = jid_bare(p->a, &p->to);
    struct sm_item *it = item_for(u, contact, true);
    bool route = true, show_presence = false;
    if (!strcmp(p->type, "subscribe")) {
        if (!it->sub_to && !it->ask_out) {
            it->ask_out = true;
            it->in_roster = true;
            changed(u, it);
        }
    } else if (!strcmp(p->type, "subscribed")) {
        if (it->ask_in) {
            it->sub_from = true;
            it->ask_in = false;
            free(it->ask_in_xml);
            it->ask_in_xml = NULL;
            it->in_roster = true;
            changed(u, it);
            show_presence = true; /* §3.1.5, after the subscribed itself */
        } else if (!it->sub_from && !it->approved) {
            it->approved = true; /* §3.4 pre-approval */
            changed(u, it);
            route = false;
        } else {
            route = false;
        }
    } else if (!strcmp(p->type, "unsubscribe")) {
        if (it->sub_to || it->ask_out) {
            it->sub_to = false;
            it->ask_out = false;
            changed(u, it);
        }
    } else { /* unsubscribed */
        bool had_from = it->sub_from;
        if (it->sub_from || it->ask_in || it->approved) {
            it->sub_from = false;
            it->ask_in = false;
            it->approved = false;
            free(it->ask_in_xml);
            it->ask_in_xml = NULL;
            changed(u, it);
        }
        if (had_from)
            presence_send_unavailable_to(u, contact);
    }
    if (sm_user_item(u, contact) != it) {
        free(it->jid);
        free(it); /* never saved: nothing changed */
    }
    if (route)
        route_bare(p, contact);
    if (show_presence)
        presence_send_current(u, contact);
}

/* Delivers an inbound subscription stanza to the user's available
 * resources (non-negative priority). */
static size_t deliver_sub(struct sm_pkt *p)
{
    struct sm_session *res[64];
    size_t n = sm_user_available(p->user, 0, res, 64);
    xml_attr_set(p->a, p->st, "to", p->user->jid);
    for (size_t i = 0; i < n; i++)
        sm_session_write(res[i], p->st, p->origin);
    return n;
}

static void auto_reply(struct sm_pkt *p, const char *contact, const char *type)
{
    sm_send(p->sm, sm_stanza_new(p->a, "presence", p->user->jid, contact, type, NULL), NULL);
}

static void inbound(struct sm_pkt *p)
{
    struct sm_user *u = p->user;
    const char *contact = jid_bare(p->a, &p->from);
    xml_attr_set(p->a, p->st, "from", contact);
    struct sm_item *it = sm_user_item(u, contact);
    if (!strcmp(p->type, "subscribe")) {
        if (it != NULL && it->sub_from) {
            auto_reply(p, contact, "subscribed"); /* §3.1.3: already approved */
            return;
        }
        if (it != NULL && it->approved) {
            it->sub_from = true;
            it->approved = false;
            changed(u, it);
            auto_reply(p, contact, "subscribed");
            return;
        }
        if (it == NULL)
            it = roster_item_new(contact);
        it->ask_in = true;
        struct buf b = BUF_INIT;
        xml_serialize(&b, p->st, XML_NS_CLIENT);
        free(it->ask_in_xml);
        it->ask_in_xml = buf_detach(&b, NULL);
        sm_user_save_item(u, it);
        deliver_sub(p); /* and again at every login until answered */
        return;
    }
    if (it == NULL)
        return; /* §3.2.3, §3.3.3: no item, nothing to change or show */
    if (!strcmp(p->type, "subscribed")) {
        if (!it->ask_out)
            return; /* §3.1.6: not asked for: ignore */
        it->ask_out = false;
        it->sub_to = true;
        changed(u, it);
    } else if (!strcmp(p->type, "unsubscribe")) {
        if (!it->sub_from && !it->ask_in)
            return;
        it->sub_from = false;
        it->ask_in = false;
        free(it->ask_in_xml);
        it->ask_in_xml = NULL;
        changed(u, it);
    } else { /* unsubscribed */
        if (!it->sub_to && !it->ask_out)
            return;
        it->sub_to = false;
        it->ask_out = false;
        changed(u, it);
    }
    deliver_sub(p);
}

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind != SM_PRESENCE || !is_sub_type(p->type))
        return SM_PASS;
    if (p->route == SM_FROM_SESSION) {
        if (!p->has_to) {
            sm_error(p, XMPP_COND_BAD_REQUEST, "a subscription request needs a 'to'");
            return SM_HANDLED;
        }
        outbound(p);
    } else if (p->route == SM_TO_USER && p->user->state == SM_USER_READY) {
        inbound(p);
    } else if (p->route == SM_TO_USER && !strcmp(p->type, "subscribe")) {
        /* RFC 6121 §3.1.3: no such user: unsubscribed on its behalf */
        sm_send(p->sm,
                sm_stanza_new(p->a, "presence", jid_bare(p->a, &p->to), jid_bare(p->a, &p->from),
                              "unsubscribed", NULL),
                NULL);
    }
    return SM_HANDLED;
}

/* At login (initial presence): pending requests are shown again. */
void subscription_show_pending(struct sm_session *s)
{
    struct hmap_iter it = {0};
    void *v;
    struct arena *a = arena_new(1024);
    while (hmap_next(s->user->roster, &it, NULL, &v)) {
        struct sm_item *item = v;
        if (!item->ask_in || item->ask_in_xml == NULL)
            continue;
        struct xml_node *st = xml_parse_fragment(a, item->ask_in_xml);
        if (st != NULL) {
            xml_attr_set(a, st, "to", s->user->jid);
            sm_session_write(s, st, NULL);
        }
    }
    arena_free(&a);
}

const struct sm_feature sm_feat_subscription = {
    .name = "subscription",
    .core = true,
    .order = 20,
    .on_stanza = on_stanza,
};
