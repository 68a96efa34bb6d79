/* SPDX-License-Identifier: MIT */
/* Presence (RFC 6121 §4): initial presence with probes and broadcast,
 * updates, directed presence, unavailable on logout or disconnect, and
 * inbound presence delivered to the resources entitled to it. */
#include "presence.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "xml.h"

static int read_priority(const struct sm_pkt *p)
{
    const char *v = xml_child_text(p->a, p->st, XML_NS_CLIENT, "priority");
    if (v == NULL)
        return 0;
    long n = strtol(v, NULL, 10);
    return n < -128 ? -128 : n > 127 ? 127 : (int)n;
}

/* Sends st (a presence) from session s to to. */
static void send_from(struct sm_session *s, struct xml_node *st, const char *to)
{
    if (!sm_allow_out(s->user, SM_PRESENCE, to))
        return; /* presence-out blocked by privacy lists or blocking */
    struct arena *a = arena_new(512);
    struct xml_node *c = xml_node_copy(a, st);
    xml_attr_set(a, c, "from", s->jid);
    xml_attr_set(a, c, "to", to);
    sm_send(s->user->sm, c, NULL);
    arena_free(&a);
}

/* To every contact subscribed to the user, every directed-presence target
 * and the user's other available resources. */
static void broadcast(struct sm_session *s, struct xml_node *st)
{
    struct sm_user *u = s->user;
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(u->roster, &it, NULL, &v)) {
        struct sm_item *item = v;
        if (item->sub_from)
            send_from(s, st, item->jid);
    }
    for (struct sm_session *o = u->sessions; o != NULL; o = o->next) {
        if (o != s && o->available)
            send_from(s, st, o->jid);
    }
    if (s->directed != NULL) {
        it = (struct hmap_iter){0};
        const char *k;
        while (hmap_next(s->directed, &it, &k, NULL))
            send_from(s, st, k);
    }
}

static void probe_contacts(struct sm_session *s)
{
    struct sm_user *u = s->user;
    struct arena *a = arena_new(512);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(u->roster, &it, NULL, &v)) {
        struct sm_item *item = v;
        if (item->sub_to)
            sm_send(u->sm, sm_stanza_new(a, "presence", u->jid, item->jid, "probe", NULL), NULL);
    }
    /* and the user's own other resources show themselves to this one */
    for (struct sm_session *o = u->sessions; o != NULL; o = o->next) {
        if (o != s && o->available && o->presence != NULL) {
            struct xml_node *st = xml_parse_fragment(a, o->presence);
            if (st != NULL) {
                xml_attr_set(a, st, "from", o->jid);
                xml_attr_set(a, st, "to", s->jid);
                sm_session_write(s, st, NULL);
            }
        }
    }
    arena_free(&a);
}

static void from_session(struct sm_pkt *p)
{
    struct sm_session *s = p->sess;
    bool unavailable = !strcmp(p->type, "unavailable");
    if (p->has_to) {
        /* directed presence (§4.6): remembered for the unavailable broadcast */
        const char *to = jid_full(p->a, &p->to);
        if (s->directed == NULL)
            s->directed = hmap_new();
        if (unavailable)
            hmap_del(s->directed, to);
        else if (sm_user_item(s->user, jid_bare(p->a, &p->to)) == NULL ||
                 !sm_user_item(s->user, jid_bare(p->a, &p->to))->sub_from)
            hmap_put(s->directed, to, s);
        sm_send(p->sm, p->st, p->origin);
        return;
    }
    if (p->type[0] != '\0' && !unavailable)
        return; /* probe or error without 'to' from a client: nothing to do */
    bool initial = !s->available && !unavailable;
    xml_attr_set(p->a, p->st, "from", s->jid);
    broadcast(s, p->st);
    if (unavailable) {
        s->available = false;
        free(s->presence);
        s->presence = NULL;
        if (s->directed != NULL)
            hmap_free(&s->directed);
        return;
    }
    s->available = true;
    s->priority = read_priority(p);
    struct buf b = BUF_INIT;
    xml_serialize(&b, p->st, XML_NS_CLIENT);
    free(s->presence);
    s->presence = buf_detach(&b, NULL);
    if (initial) {
        probe_contacts(s);
        subscription_show_pending(s);
        if (s->priority >= 0)
            sm_offline_deliver(s);
    }
}

/* Whether u wants presence from sender: subscribed to it, sent it directed
 * presence, or it is u itself. */
static bool entitled(struct sm_pkt *p, struct sm_session *s)
{
    const char *bare = jid_bare(p->a, &p->from);
    if (strcmp(bare, p->user->jid) == 0)
        return true;
    struct sm_item *it = sm_user_item(p->user, bare);
    if (it != NULL && it->sub_to)
        return true;
    return s->directed != NULL && (hmap_get(s->directed, jid_full(p->a, &p->from)) != NULL ||
                                   hmap_get(s->directed, bare) != NULL);
}

static void answer_probe(struct sm_pkt *p)
{
    const char *bare = jid_bare(p->a, &p->from);
    struct sm_item *it = sm_user_item(p->user, bare);
    if (it == NULL || !it->sub_from)
        return; /* §4.3.2: not subscribed: nothing is revealed */
    presence_send_current(p->user, jid_full(p->a, &p->from));
}

static void to_user(struct sm_pkt *p)
{
    if (p->user->state != SM_USER_READY)
        return;
    if (!sm_allow_in(p->user, SM_PRESENCE, jid_full(p->a, &p->from)))
        return; /* presence-in blocked */
    if (!strcmp(p->type, "probe")) {
        answer_probe(p);
        return;
    }
    if (p->type[0] != '\0' && strcmp(p->type, "unavailable") && strcmp(p->type, "error"))
        return;
    if (p->to.resource != NULL) {
        struct sm_session *s = sm_user_session(p->user, p->to.resource);
        if (s != NULL)
            sm_session_write(s, p->st, p->origin);
        return;
    }
    for (struct sm_session *s = p->user->sessions; s != NULL; s = s->next) {
        if (s->available && entitled(p, s))
            sm_session_write(s, p->st, p->origin);
        else
            log_debug(&p->sm->lc, "presence from %s not shown to %s", jid_full(p->a, &p->from),
                      s->jid);
    }
}

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind != SM_PRESENCE)
        return SM_PASS;
    if (p->route == SM_FROM_SESSION)
        from_session(p);
    else if (p->route == SM_TO_USER)
        to_user(p);
    return SM_HANDLED;
}

void presence_send_current(struct sm_user *u, const char *contact)
{
    struct arena *a = arena_new(512);
    for (struct sm_session *s = u->sessions; s != NULL; s = s->next) {
        if (!s->available || s->presence == NULL)
            continue;
        struct xml_node *st = xml_parse_fragment(a, s->presence);
        if (st == NULL)
            continue;
        xml_attr_set(a, st, "from", s->jid);
        xml_attr_set(a, st, "to", contact);
        sm_send(u->sm, st, NULL);
    }
    arena_free(&a);
}

void presence_send_unavailable_to(struct sm_user *u, const char *contact)
{
    struct arena *a = arena_new(512);
    for (struct sm_session *s = u->sessions; s != NULL; s = s->next) {
        if (s->available)
            sm_send(u->sm, sm_stanza_new(a, "presence", s->jid, contact, "unavailable", NULL),
                    NULL);
    }
    arena_free(&a);
}

void sm_presence_broadcast_unavailable(struct sm_session *s, const char *status)
{
    if (!s->available && s->directed == NULL)
        return;
    struct arena *a = arena_new(512);
    struct xml_node *st = sm_stanza_new(a, "presence", s->jid, NULL, "unavailable", NULL);
    if (status != NULL) {
        struct xml_node *t = xml_elem_add(a, st, XML_NS_CLIENT, "status");
        xml_text_add(a, t, status, strlen(status));
    }
    broadcast(s, st);
    s->available = false;
    arena_free(&a);
}

const struct sm_feature sm_feat_presence = {
    .name = "presence",
    .core = true,
    .order = 30,
    .on_stanza = on_stanza,
};
