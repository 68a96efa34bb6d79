/* SPDX-License-Identifier: MIT */
/* Sending stanzas: to local sessions by the delivery rules of RFC 6121 §8.5,
 * or to the router for everything else; replies and stanza errors. */
#include "sm.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "buf.h"
#include "comp_handshake.h"
#include "sm_link.h"
#include "xml.h"

#define MAX_RESOURCES 64

struct xml_node *sm_stanza_new(struct arena *a, const char *name, const char *from, const char *to,
                               const char *type, const char *id)
{
    struct xml_node *n = xml_elem_new(a, XML_NS_CLIENT, name);
    if (from != NULL)
        xml_attr_set(a, n, "from", from);
    if (to != NULL)
        xml_attr_set(a, n, "to", to);
    if (type != NULL)
        xml_attr_set(a, n, "type", type);
    if (id != NULL)
        xml_attr_set(a, n, "id", id);
    return n;
}

static void to_router(struct sm *sm, const struct xml_node *st)
{
    struct buf b = BUF_INIT;
    buf_reserve(&b, 1024); /* most stanzas: one allocation, not four */
    xml_serialize(&b, st, XML_NS_COMP);
    if (sm_link_send(sm, b.data, b.len) < 0)
        log_warn(&sm->lc, "router link down: <%s/> to %s not sent", st->name,
                 xml_attr_get(st, "to"));
    buf_fini(&b);
}

/* Whether the domain of to is one we host. A plain-ASCII domain (nearly
 * every stanza) is compared case-insensitively in place; anything else goes
 * through the full RFC 7622 parse. The stanza's addresses are parsed once
 * more, fully, when it becomes a pkt, so this only has to pick the path. */
static bool to_is_local(struct sm *sm, const char *to)
{
    const char *slash = strchr(to, '/');
    size_t end = slash ? (size_t)(slash - to) : strlen(to);
    const char *at = memchr(to, '@', end);
    const char *d = at ? at + 1 : to;
    size_t len = (size_t)(to + end - d);
    if (len > 1 && d[len - 1] == '.')
        len--; /* "example.org." is example.org */
    bool ascii = true;
    for (size_t i = 0; i < len && ascii; i++)
        ascii = (unsigned char)d[i] < 0x80;
    if (ascii) {
        for (size_t i = 0; i < sm->common->ndomains; i++) {
            const char *h = sm->common->domains[i];
            if (strlen(h) == len && strncasecmp(h, d, len) == 0)
                return true;
        }
        return false;
    }
    struct jid j;
    struct arena *a = arena_new(512);
    bool local = jid_parse_str(a, to, &j, NULL) == 0 && sm_is_local_domain(sm, j.domain);
    arena_free(&a);
    return local;
}

void sm_send(struct sm *sm, struct xml_node *st, const char *origin)
{
    const char *to = xml_attr_get(st, "to");
    if (to == NULL || !to_is_local(sm, to)) {
        to_router(sm, st);
        return;
    }
    /* Ours: straight into the pipeline as a stanza to a local entity. */
    struct sm_pkt *p = sm_pkt_from_node(sm, st, SM_TO_USER);
    if (p == NULL)
        return;
    if (origin != NULL)
        p->origin = arena_strdup(p->a, origin);
    sm_dispatch(sm, p);
}

void sm_iq_result(struct sm_pkt *p, struct xml_node *payload)
{
    const char *to = xml_attr_get(p->st, "to");
    char *from = jid_full(p->a, &p->from);
    if (to == NULL)
        to = jid_bare(p->a, &p->from);
    struct xml_node *r = sm_stanza_new(p->a, "iq", to, from, "result", xml_attr_get(p->st, "id"));
    if (payload != NULL)
        xml_append(r, payload);
    sm_send(p->sm, r, NULL);
}

void sm_error(struct sm_pkt *p, enum xmpp_cond cond, const char *text)
{
    const char *type = xml_attr_get(p->st, "type");
    if (type != NULL && (!strcmp(type, "error") || !strcmp(type, "result")))
        return; /* RFC 6120 §8.3.1: never answer an error or a result */
    const char *from = xml_attr_get(p->st, "from");
    if (from == NULL)
        return;
    const char *to = xml_attr_get(p->st, "to");
    if (to == NULL)
        to = jid_bare(p->a, &p->from);
    struct xml_node *e = xml_elem_new(p->a, XML_NS_CLIENT, p->st->name);
    for (unsigned i = 0; i < p->st->nattrs; i++) {
        const struct xml_attr *at = &p->st->attrs[i];
        xml_attr_set_ns(p->a, e, at->ns, at->name, at->value);
    }
    xml_attr_set(p->a, e, "from", to);
    xml_attr_set(p->a, e, "to", from);
    xml_attr_set(p->a, e, "type", "error");
    /* The original payload comes back for messages and iqs (RFC 6120 §8.3.1). */
    for (struct xml_node *c = p->st->first; c != NULL && p->kind != SM_PRESENCE; c = c->next)
        if (c->kind == XML_ELEM)
            xml_append(e, xml_node_copy(p->a, c));
    struct xml_node *err = xml_elem_add(p->a, e, XML_NS_CLIENT, "error");
    xml_attr_set(p->a, err, "type", xmpp_cond_type(cond));
    xml_elem_add(p->a, err, XMPP_NS_STANZAS, xmpp_cond_name(cond));
    if (text != NULL) {
        struct xml_node *t = xml_elem_add(p->a, err, XMPP_NS_STANZAS, "text");
        xml_text_add(p->a, t, text, strlen(text));
    }
    p->sm->stats.bounced++;
    sm_send(p->sm, e, NULL);
}

static void delivered(struct sm_pkt *p, struct sm_session *const *to, size_t n)
{
    for (size_t i = 0; i < p->sm->nfeatures; i++) {
        const struct sm_feature *f = p->sm->features[i];
        if (f->on_delivered != NULL)
            f->on_delivered(p, to, n);
    }
}

/* RFC 6121 §8.5.2: a message to a bare JID. */
static void message_to_bare(struct sm_pkt *p)
{
    struct sm_session *res[MAX_RESOURCES];
    const char *type = p->type[0] ? p->type : "normal";
    if (!strcmp(type, "error"))
        return;
    if (!strcmp(type, "groupchat")) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    size_t n = sm_user_available(p->user, 0, res, MAX_RESOURCES);
    if (!strcmp(type, "headline")) {
        for (size_t i = 0; i < n; i++)
            sm_session_write(res[i], p->st, p->origin);
        delivered(p, res, n);
        return; /* no available resource: silently dropped */
    }
    if (n == 0) {
        delivered(p, res, 0);
        sm_offline_store(p);
        return;
    }
    /* chat and normal: every resource of the highest priority */
    size_t k = 0;
    while (k < n && res[k]->priority == res[0]->priority)
        sm_session_write(res[k++], p->st, p->origin);
    delivered(p, res, k);
}

void sm_deliver(struct sm_pkt *p)
{
    struct sm_user *u = p->user;
    if (u == NULL || u->state == SM_USER_MISSING) {
        /* RFC 6121 §8.5.1: no such account */
        if (p->kind != SM_PRESENCE)
            sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    if (!sm_allow_in(u, p->kind, jid_full(p->a, &p->from))) {
        if (p->kind != SM_PRESENCE)
            sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    struct sm_session *s = p->to.resource ? sm_user_session(u, p->to.resource) : NULL;
    if (s != NULL) {
        sm_session_write(s, p->st, p->origin);
        if (p->kind == SM_MESSAGE)
            delivered(p, &s, 1);
        return;
    }
    switch (p->kind) {
    case SM_MESSAGE:
        /* §8.5.3.2.1: no such resource; chat and normal go to the bare JID */
        if (p->to.resource != NULL && (!strcmp(p->type, "groupchat"))) {
            sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
            return;
        }
        if (p->to.resource != NULL && !strcmp(p->type, "headline"))
            return;
        message_to_bare(p);
        break;
    case SM_IQ:
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        break;
    case SM_PRESENCE:
        break; /* presence features handle what is deliverable */
    }
}
