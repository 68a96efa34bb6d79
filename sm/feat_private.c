/* SPDX-License-Identifier: MIT */
/* Private XML storage (XEP-0049): a user keeps XML fragments on the server,
 * one slot per namespace of the fragment's root element. Only the account
 * itself may read or write its slots. A slot holds every element of that
 * namespace from the last set, stored as <query xmlns='jabber:iq:private'>
 * wrapping them, so a set with several elements of one namespace comes
 * back whole. */
#include "sm.h"

#include <string.h>

#include "arena.h"
#include "buf.h"
#include "xml.h"

#define NS_PRIVATE "jabber:iq:private"

/* A set in flight: one store_put per namespace. */
struct private_set {
    struct sm_pkt *p;
    int pending;
    enum store_status worst;
};

/* XEP-0049 §3: namespaces starting with jabber: or http://jabber.org/, and
 * vcard-temp, are reserved; an element in no namespace has no slot. */
static bool reserved(const char *ns)
{
    return ns[0] == '\0' || strncmp(ns, "jabber:", 7) == 0 ||
           strncmp(ns, "http://jabber.org/", 18) == 0 || strcmp(ns, "vcard-temp") == 0;
}

static void on_got(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    struct xml_node *asked = xml_first_elem(xml_first_elem(p->st));
    struct xml_node *q = xml_elem_new(p->a, NS_PRIVATE, "query");
    struct xml_node *stored = NULL;
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "reading private data of %s: %s", jid_bare(p->a, &p->from),
                 res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        sm_pkt_free(p);
        return;
    }
    if (res->nrows > 0)
        stored = xml_parse_fragment(p->a, store_rec_get_str(res->rows[0], "xml", ""));
    struct xml_node *c = stored ? xml_first_elem(stored) : NULL;
    if (c == NULL) {
        xml_append(q, xml_node_copy(p->a, asked)); /* nothing stored: the empty slot */
    }
    while (c != NULL) {
        struct xml_node *next = xml_next_elem(c);
        xml_remove(c);
        xml_append(q, c);
        c = next;
    }
    sm_iq_result(p, q);
    sm_pkt_free(p);
}

static void private_get(struct sm_pkt *p, struct xml_node *q)
{
    struct xml_node *c = xml_first_elem(q);
    if (c == NULL || xml_next_elem(c) != NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "a private get names exactly one element");
        return;
    }
    if (reserved(c->ns)) {
        sm_error(p, XMPP_COND_NOT_ACCEPTABLE, "reserved namespace");
        return;
    }
    struct store_rec *f = store_rec_new(p->a);
    store_rec_str(p->a, f, "ns", c->ns);
    sm_pkt_keep(p);
    store_get(p->sm->st, "private", p->user->jid, f, on_got, p);
}

static void on_put(const struct store_res *res, void *arg)
{
    struct private_set *op = arg;
    struct sm_pkt *p = op->p;
    if (res->status != STORE_OK) {
        log_info(&p->sm->lc, "storing private data of %s: %s", jid_bare(p->a, &p->from),
                 res->err.text);
        if (op->worst == STORE_OK || op->worst == STORE_ERR_INPUT)
            op->worst = res->status;
    }
    if (--op->pending > 0)
        return;
    if (op->worst == STORE_OK)
        sm_iq_result(p, NULL);
    else if (op->worst == STORE_ERR_INPUT)
        sm_error(p, XMPP_COND_NOT_ACCEPTABLE, "the data is too large to store");
    else
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    sm_pkt_free(p);
}

/* Stores every element of q in namespace ns (one slot). */
static void put_slot(struct private_set *op, struct xml_node *q, const char *ns)
{
    struct sm_pkt *p = op->p;
    struct xml_node *w = xml_elem_new(p->a, NS_PRIVATE, "query");
    for (struct xml_node *c = xml_first_elem(q); c != NULL; c = xml_next_elem(c)) {
        if (strcmp(c->ns, ns) == 0)
            xml_append(w, xml_node_copy(p->a, c));
    }
    struct buf b = BUF_INIT;
    xml_serialize(&b, w, NULL);
    struct store_rec *r = store_rec_new(p->a);
    store_rec_str(p->a, r, "ns", ns);
    store_rec_xml(p->a, r, "xml", buf_cstr(&b));
    buf_fini(&b);
    op->pending++;
    store_put(p->sm->st, "private", p->user->jid, r, on_put, op);
}

static bool seen_before(struct xml_node *q, struct xml_node *upto)
{
    for (struct xml_node *c = xml_first_elem(q); c != upto; c = xml_next_elem(c)) {
        if (strcmp(c->ns, upto->ns) == 0)
            return true;
    }
    return false;
}

static void private_set(struct sm_pkt *p, struct xml_node *q)
{
    if (xml_first_elem(q) == NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "nothing to store");
        return;
    }
    for (struct xml_node *c = xml_first_elem(q); c != NULL; c = xml_next_elem(c)) {
        if (reserved(c->ns)) {
            sm_error(p, XMPP_COND_NOT_ACCEPTABLE, "reserved namespace");
            return;
        }
    }
    struct private_set *op = arena_alloc(p->a, sizeof(*op));
    op->p = p;
    sm_pkt_keep(p);
    for (struct xml_node *c = xml_first_elem(q); c != NULL; c = xml_next_elem(c)) {
        if (!seen_before(q, c))
            put_slot(op, q, c->ns);
    }
}

static void on_private(struct sm_pkt *p, struct xml_node *q)
{
    if (p->route != SM_FROM_SESSION) {
        /* XEP-0049 §3: another user's storage */
        sm_error(p, XMPP_COND_FORBIDDEN, NULL);
        return;
    }
    if (strcmp(q->name, "query") != 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
        return;
    }
    if (strcmp(p->type, "get") == 0)
        private_get(p, q);
    else
        private_set(p, q);
}

static const struct sm_iq_handler iqs[] = {
    {NS_PRIVATE, SM_IQ_ACCOUNT | SM_IQ_USER, on_private},
};
/* On the domain too: clients look for it there (XEP-0049 predates
 * account-level discovery). */
static const char *const features[] = {NS_PRIVATE, NULL};

const struct sm_feature sm_feat_private = {
    .name = "private",
    .order = 50,
    .server_features = features,
    .account_features = features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
};
