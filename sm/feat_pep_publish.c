/* SPDX-License-Identifier: MIT */
/* The pubsub verbs of an account's PEP service (XEP-0060 §6-8 as XEP-0163
 * profiles them): publish (auto-creating the node, checking the
 * publish-options preconditions), retract, items (all, the newest N, by
 * id), subscribe and unsubscribe, create (and configure), and the
 * requester's subscriptions and affiliations. Only the owner publishes,
 * retracts and creates; others read and subscribe as the node's access
 * model allows. */
#include "pep.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "xml.h"

/* The account whose service a request is for, and whether its owner asks. */
static const char *owner_of(struct sm_pkt *p)
{
    return p->route == SM_FROM_SESSION ? p->user->jid : jid_bare(p->a, &p->to);
}

static bool by_owner(struct sm_pkt *p)
{
    return p->route == SM_FROM_SESSION;
}

/* <pubsub xmlns=NS_PUBSUB><name node='node'/></pubsub> for a result. */
static struct xml_node *reply(struct sm_pkt *p, const char *name, const char *node,
                              struct xml_node **inner_r)
{
    struct xml_node *ps = xml_elem_new(p->a, NS_PUBSUB, "pubsub");
    struct xml_node *inner = xml_elem_add(p->a, ps, NS_PUBSUB, name);
    if (node != NULL)
        xml_attr_set(p->a, inner, "node", node);
    if (inner_r != NULL)
        *inner_r = inner;
    return ps;
}

/* The node a request names, answering the errors of XEP-0060 when there
 * is none: NULL then. */
static struct pep_node *named_node(struct sm_pkt *p, struct xml_node *verb)
{
    const char *name = xml_attr_get(verb, "node");
    if (name == NULL || name[0] == '\0') {
        pep_error(p, XMPP_COND_BAD_REQUEST, "nodeid-required", NULL);
        return NULL;
    }
    struct pep_node *n = pep_node_get(p->sm, owner_of(p), name);
    if (n == NULL)
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
    return n;
}

static struct xml_node *event_items(struct arena *a, const char *node, struct xml_node **items_r)
{
    struct xml_node *ev = xml_elem_new(a, NS_PUBSUB_EVENT, "event");
    *items_r = xml_elem_add(a, ev, NS_PUBSUB_EVENT, "items");
    xml_attr_set(a, *items_r, "node", node);
    return ev;
}

/* ---- publish ---------------------------------------------------------------------- */

/* A publication in flight. */
struct pub {
    struct sm_pkt *p;
    const char *node, *id, *payload; /* in p->a */
};

/* After a publication: a node keeps its newest max_items (one when it does
 * not persist items: the last one is still sent on presence). */
struct trim {
    struct sm *sm;
    char *owner, *node;
    long max;
};

static void on_trimmed(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK)
        log_warn(&sm->lc, "dropping an old pep item: %s", res->err.text);
}

static void on_trim_read(const struct store_res *res, void *arg)
{
    struct trim *t = arg;
    for (size_t i = 0; res->status == STORE_OK && i + (size_t)t->max < res->nrows; i++) {
        struct store_rec *f = store_rec_new(res->arena);
        store_rec_str(res->arena, f, "node", t->node);
        store_rec_str(res->arena, f, "item", store_rec_get_str(res->rows[i], "item", ""));
        store_delete(t->sm->st, "pep-items", t->owner, f, on_trimmed, t->sm);
    }
    free(t->owner);
    free(t->node);
    free(t);
}

static void trim(struct sm *sm, const char *owner, const struct pep_node *n)
{
    struct trim *t = xmalloc(sizeof(*t));
    t->sm = sm;
    t->owner = xstrdup(owner);
    t->node = xstrdup(n->name);
    t->max = n->cfg.persist_items ? n->cfg.max_items : 1;
    struct arena *a = arena_new(256);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "node", n->name);
    store_get(sm->st, "pep-items", owner, f, on_trim_read, t);
    arena_free(&a);
}

static void on_published(const struct store_res *res, void *arg)
{
    struct pub *pb = arg;
    struct sm_pkt *p = pb->p;
    const char *owner = owner_of(p);
    if (res->status == STORE_ERR_INPUT) {
        pep_error(p, XMPP_COND_NOT_ACCEPTABLE, "payload-too-big", NULL);
    } else if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "storing a pep item of %s: %s", owner, res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    } else {
        struct xml_node *inner;
        struct xml_node *ps = reply(p, "publish", pb->node, &inner);
        xml_attr_set(p->a, xml_elem_add(p->a, inner, NS_PUBSUB, "item"), "id", pb->id);
        sm_iq_result(p, ps);
        const struct pep_node *n = pep_node_get(p->sm, owner, pb->node);
        if (n != NULL) {
            struct xml_node *items;
            struct xml_node *ev = event_items(p->a, pb->node, &items);
            pep_item_xml(p->a, items, pb->id, n->cfg.deliver_payloads ? pb->payload : NULL);
            pep_notify(p->sm, owner, n, ev);
            trim(p->sm, owner, n);
        }
    }
    sm_pkt_free(p);
}

/* The one item of a publish and its one payload; NULL after an error. */
static struct xml_node *publish_payload(struct sm_pkt *p, struct xml_node *verb,
                                        struct xml_node **item_r)
{
    struct xml_node *item = xml_child(verb, NS_PUBSUB, "item");
    struct xml_node *payload = item ? xml_first_elem(item) : NULL;
    if (item == NULL)
        pep_error(p, XMPP_COND_BAD_REQUEST, "item-required", NULL);
    else if (xml_next(item, NS_PUBSUB, "item") != NULL)
        pep_error(p, XMPP_COND_BAD_REQUEST, "invalid-payload", NULL);
    else if (payload == NULL)
        pep_error(p, XMPP_COND_BAD_REQUEST, "payload-required", NULL);
    else if (xml_next_elem(payload) != NULL)
        pep_error(p, XMPP_COND_BAD_REQUEST, "invalid-payload", NULL);
    else {
        *item_r = item;
        return payload;
    }
    return NULL;
}

/* The node to publish to: as it is when the preconditions hold (XEP-0060
 * §7.1.5), or created with them. NULL after an error. */
static struct pep_node *publish_node(struct sm_pkt *p, const char *name, struct xml_node *opts)
{
    const char *owner = owner_of(p);
    struct xml_node *x = opts ? xml_child(opts, NS_XDATA, "x") : NULL;
    struct pep_node *n = pep_node_get(p->sm, owner, name);
    if (n != NULL) {
        if (x == NULL || pep_form_matches(p->a, x, &n->cfg))
            return n;
        pep_error(p, XMPP_COND_CONFLICT, "precondition-not-met", NULL);
        return NULL;
    }
    struct pep_config cfg;
    pep_config_default(&cfg);
    struct pep_form_err e = {0};
    if (x != NULL && pep_form_apply(p->a, x, &cfg, true, &e) < 0)
        pep_error(p, e.cond, e.app, NULL);
    else if ((n = pep_node_create(p->sm, owner, name, &cfg)) == NULL)
        sm_error(p, XMPP_COND_POLICY_VIOLATION, "too many nodes");
    pep_config_fini(&cfg);
    return n;
}

static void do_publish(struct sm_pkt *p, struct xml_node *verb)
{
    const char *name = xml_attr_get(verb, "node");
    struct xml_node *item = NULL, *payload;
    if (!by_owner(p)) {
        sm_error(p, XMPP_COND_FORBIDDEN, NULL);
        return;
    }
    if (name == NULL || name[0] == '\0') {
        pep_error(p, XMPP_COND_BAD_REQUEST, "nodeid-required", NULL);
        return;
    }
    if ((payload = publish_payload(p, verb, &item)) == NULL)
        return;
    if (publish_node(p, name, xml_next(verb, NS_PUBSUB, "publish-options")) == NULL)
        return;
    struct pub *pb = arena_alloc(p->a, sizeof(*pb));
    struct buf b = BUF_INIT;
    xml_serialize(&b, payload, NULL);
    pb->p = p;
    pb->node = name;
    pb->id = xml_attr_get(item, "id");
    if (pb->id == NULL || pb->id[0] == '\0')
        pb->id = pep_item_id(p->a);
    pb->payload = arena_strdup(p->a, buf_cstr(&b));
    buf_fini(&b);
    struct store_rec *r = store_rec_new(p->a);
    store_rec_str(p->a, r, "node", name);
    store_rec_str(p->a, r, "item", pb->id);
    store_rec_time(p->a, r, "ts", pep_next_ts(p->sm));
    store_rec_str(p->a, r, "publisher", jid_full(p->a, &p->from));
    store_rec_xml(p->a, r, "payload", pb->payload);
    sm_pkt_keep(p);
    store_put(p->sm->st, "pep-items", owner_of(p), r, on_published, pb);
}

/* ---- retract ---------------------------------------------------------------------- */

struct retract {
    struct sm_pkt *p;
    const char *node, *id; /* in p->a */
    bool notify;
};

static void on_retracted(const struct store_res *res, void *arg)
{
    struct retract *rt = arg;
    struct sm_pkt *p = rt->p;
    const char *owner = owner_of(p);
    const struct pep_node *n = pep_node_get(p->sm, owner, rt->node);
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "retracting a pep item of %s: %s", owner, res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    } else if (res->affected == 0) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
    } else {
        sm_iq_result(p, NULL);
        if (n != NULL && rt->notify) {
            struct xml_node *items;
            struct xml_node *ev = event_items(p->a, rt->node, &items);
            xml_attr_set(p->a, xml_elem_add(p->a, items, NS_PUBSUB_EVENT, "retract"), "id", rt->id);
            pep_notify(p->sm, owner, n, ev);
        }
    }
    sm_pkt_free(p);
}

static bool truthy(const char *v)
{
    return v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static void do_retract(struct sm_pkt *p, struct xml_node *verb)
{
    if (!by_owner(p)) {
        sm_error(p, XMPP_COND_FORBIDDEN, NULL);
        return;
    }
    struct pep_node *n = named_node(p, verb);
    if (n == NULL)
        return;
    struct xml_node *item = xml_child(verb, NS_PUBSUB, "item");
    const char *id = item ? xml_attr_get(item, "id") : NULL;
    if (id == NULL || id[0] == '\0') {
        pep_error(p, XMPP_COND_BAD_REQUEST, "item-required", NULL);
        return;
    }
    struct retract *rt = arena_alloc(p->a, sizeof(*rt));
    const char *notify = xml_attr_get(verb, "notify");
    rt->p = p;
    rt->node = arena_strdup(p->a, n->name);
    rt->id = id;
    rt->notify = notify ? truthy(notify) : n->cfg.notify_retract;
    struct store_rec *f = store_rec_new(p->a);
    store_rec_str(p->a, f, "node", n->name);
    store_rec_str(p->a, f, "item", id);
    sm_pkt_keep(p);
    store_delete(p->sm->st, "pep-items", owner_of(p), f, on_retracted, rt);
}

/* ---- items ------------------------------------------------------------------------ */

static bool wanted(const struct xml_node *verb, const char *id)
{
    for (struct xml_node *c = xml_child(verb, NS_PUBSUB, "item"); c != NULL;
         c = xml_next(c, NS_PUBSUB, "item")) {
        const char *want = xml_attr_get(c, "id");
        if (want != NULL && strcmp(want, id) == 0)
            return true;
    }
    return false;
}

static void on_items(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    struct xml_node *verb = xml_first_elem(xml_first_elem(p->st));
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "reading pep items: %s", res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        sm_pkt_free(p);
        return;
    }
    bool by_id = xml_child(verb, NS_PUBSUB, "item") != NULL;
    const char *max = xml_attr_get(verb, "max_items");
    size_t first = 0, n = res->nrows;
    /* Just after a publication the oldest item may still wait for trim():
     * the node holds its newest max_items, whatever the store has yet. */
    const struct pep_node *node = pep_node_get(p->sm, owner_of(p), xml_attr_get(verb, "node"));
    size_t keep = node == NULL ? n : (size_t)(node->cfg.persist_items ? node->cfg.max_items : 1);
    if (keep < n)
        first = n - keep;
    if (!by_id && max != NULL && (size_t)strtol(max, NULL, 10) < n - first)
        first = n - (size_t)strtol(max, NULL, 10); /* the newest (XEP-0060 §6.5.7) */
    struct xml_node *items;
    struct xml_node *ps = reply(p, "items", xml_attr_get(verb, "node"), &items);
    for (size_t i = first; i < n; i++) {
        const char *id = store_rec_get_str(res->rows[i], "item", "");
        if (!by_id || wanted(verb, id))
            pep_item_xml(p->a, items, id, store_rec_get_str(res->rows[i], "payload", NULL));
    }
    sm_iq_result(p, ps);
    sm_pkt_free(p);
}

static void do_items(struct sm_pkt *p, struct xml_node *verb)
{
    const char *max = xml_attr_get(verb, "max_items");
    char *end = NULL;
    if (max != NULL && (strtol(max, &end, 10) < 1 || *end != '\0')) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "max_items is a positive integer");
        return;
    }
    struct pep_node *n = named_node(p, verb);
    if (n == NULL)
        return;
    enum pep_deny why = pep_access(p->user, owner_of(p), n, jid_bare(p->a, &p->from));
    if (why != PEP_ALLOWED) {
        pep_deny_error(p, why);
        return;
    }
    struct store_rec *f = store_rec_new(p->a);
    store_rec_str(p->a, f, "node", n->name);
    sm_pkt_keep(p);
    store_get(p->sm->st, "pep-items", owner_of(p), f, on_items, p);
}

/* ---- subscriptions ------------------------------------------------------------------ */

/* The normalised JID of a (un)subscription, which must be the requester's
 * (bare or full); NULL after answering the error. */
static const char *sub_jid(struct sm_pkt *p, struct xml_node *verb, enum xmpp_cond mismatch)
{
    const char *jid = xml_attr_get(verb, "jid");
    struct jid j;
    if (jid == NULL) {
        pep_error(p, XMPP_COND_BAD_REQUEST, "jid-required", NULL);
        return NULL;
    }
    if (jid_parse_str(p->a, jid, &j, NULL) < 0 || !jid_bare_eq(&j, &p->from)) {
        if (mismatch == XMPP_COND_FORBIDDEN)
            sm_error(p, mismatch, NULL);
        else
            pep_error(p, mismatch, "invalid-jid", NULL);
        return NULL;
    }
    return jid_full(p->a, &j);
}

static struct xml_node *subscription_xml(struct sm_pkt *p, const char *node, const char *jid,
                                         const char *state)
{
    struct xml_node *sub;
    struct xml_node *ps = reply(p, "subscription", node, &sub);
    xml_attr_set(p->a, sub, "jid", jid);
    xml_attr_set(p->a, sub, "subscription", state);
    return ps;
}

static void do_subscribe(struct sm_pkt *p, struct xml_node *verb)
{
    const char *owner = owner_of(p);
    const char *jid = sub_jid(p, verb, XMPP_COND_BAD_REQUEST);
    struct pep_node *n = jid ? named_node(p, verb) : NULL;
    if (n == NULL)
        return;
    enum pep_deny why = pep_access(p->user, owner, n, jid_bare(p->a, &p->from));
    if (why != PEP_ALLOWED) {
        pep_deny_error(p, why);
        return;
    }
    bool fresh = hmap_get(n->subs, jid) == NULL;
    if (fresh && hmap_count(n->subs) >= PEP_MAX_SUBS) {
        pep_error(p, XMPP_COND_POLICY_VIOLATION, "too-many-subscriptions", NULL);
        return;
    }
    hmap_put(n->subs, jid, n);
    if (fresh)
        pep_node_save(p->sm, owner, n);
    sm_iq_result(p, subscription_xml(p, n->name, jid, "subscribed"));
    if (n->cfg.send_last != PEP_SEND_NEVER)
        pep_send_last(p->sm, owner, n, jid); /* XEP-0060 §6.1.7 */
}

static void do_unsubscribe(struct sm_pkt *p, struct xml_node *verb)
{
    const char *jid = sub_jid(p, verb, XMPP_COND_FORBIDDEN);
    struct pep_node *n = jid ? named_node(p, verb) : NULL;
    if (n == NULL)
        return;
    if (hmap_del(n->subs, jid) == NULL) {
        pep_error(p, XMPP_COND_UNEXPECTED_REQUEST, "not-subscribed", NULL);
        return;
    }
    pep_node_save(p->sm, owner_of(p), n);
    sm_iq_result(p, subscription_xml(p, n->name, jid, "none"));
}

/* The requester's subscriptions (XEP-0060 §5.6), of one node or all. */
static void do_subscriptions(struct sm_pkt *p, struct xml_node *verb)
{
    const char *only = xml_attr_get(verb, "node");
    struct hmap *nodes = pep_nodes(p->sm, owner_of(p));
    if (only != NULL && hmap_get(nodes, only) == NULL) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
        return;
    }
    struct xml_node *list;
    struct xml_node *ps = reply(p, "subscriptions", only, &list);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(nodes, &it, NULL, &v)) {
        const struct pep_node *n = v;
        struct hmap_iter si = {0};
        const char *jid;
        struct jid j;
        while ((only == NULL || !strcmp(only, n->name)) && hmap_next(n->subs, &si, &jid, NULL)) {
            if (jid_parse_str(p->a, jid, &j, NULL) < 0 || !jid_bare_eq(&j, &p->from))
                continue;
            struct xml_node *s = xml_elem_add(p->a, list, NS_PUBSUB, "subscription");
            xml_attr_set(p->a, s, "node", n->name);
            xml_attr_set(p->a, s, "jid", jid);
            xml_attr_set(p->a, s, "subscription", "subscribed");
        }
    }
    sm_iq_result(p, ps);
}

/* The requester's affiliations (XEP-0060 §5.7): owner of every node for
 * the owner, member of the whitelists it is on for others. */
static void do_affiliations(struct sm_pkt *p, struct xml_node *verb)
{
    const char *only = xml_attr_get(verb, "node");
    const char *me = jid_bare(p->a, &p->from);
    struct xml_node *list;
    struct xml_node *ps = reply(p, "affiliations", only, &list);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(pep_nodes(p->sm, owner_of(p)), &it, NULL, &v)) {
        const struct pep_node *n = v;
        if ((only != NULL && strcmp(only, n->name)) ||
            (!by_owner(p) && hmap_get(n->members, me) == NULL))
            continue;
        struct xml_node *a = xml_elem_add(p->a, list, NS_PUBSUB, "affiliation");
        xml_attr_set(p->a, a, "node", n->name);
        xml_attr_set(p->a, a, "affiliation", by_owner(p) ? "owner" : "member");
    }
    sm_iq_result(p, ps);
}

/* ---- create ------------------------------------------------------------------------- */

static void do_create(struct sm_pkt *p, struct xml_node *verb)
{
    const char *name = xml_attr_get(verb, "node");
    const char *owner = owner_of(p);
    if (!by_owner(p)) {
        sm_error(p, XMPP_COND_FORBIDDEN, NULL);
        return;
    }
    if (name == NULL || name[0] == '\0') { /* no instant nodes in PEP */
        pep_error(p, XMPP_COND_NOT_ACCEPTABLE, "nodeid-required", NULL);
        return;
    }
    if (pep_node_get(p->sm, owner, name) != NULL) {
        sm_error(p, XMPP_COND_CONFLICT, NULL);
        return;
    }
    struct xml_node *conf = xml_next(verb, NS_PUBSUB, "configure");
    struct xml_node *x = conf ? xml_child(conf, NS_XDATA, "x") : NULL;
    struct pep_config cfg;
    pep_config_default(&cfg);
    struct pep_form_err e = {0};
    if (x != NULL && pep_form_apply(p->a, x, &cfg, false, &e) < 0)
        pep_error(p, e.cond, e.app, NULL);
    else if (pep_node_create(p->sm, owner, name, &cfg) == NULL)
        sm_error(p, XMPP_COND_POLICY_VIOLATION, "too many nodes");
    else
        sm_iq_result(p, NULL);
    pep_config_fini(&cfg);
}

/* ---- the namespace ------------------------------------------------------------------- */

struct verb {
    const char *name;
    bool set;
    pep_pkt_fn *fn;
};

static const struct verb verbs[] = {
    {"publish", true, do_publish},
    {"retract", true, do_retract},
    {"items", false, do_items},
    {"subscribe", true, do_subscribe},
    {"unsubscribe", true, do_unsubscribe},
    {"create", true, do_create},
    {"subscriptions", false, do_subscriptions},
    {"affiliations", false, do_affiliations},
};

static void on_pubsub(struct sm_pkt *p, struct xml_node *ps)
{
    struct xml_node *verb = xml_first_elem(ps);
    const struct verb *v = NULL;
    for (size_t i = 0; verb != NULL && i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (xml_is(verb, NS_PUBSUB, verbs[i].name))
            v = &verbs[i];
    }
    if (p->user == NULL || p->user->state != SM_USER_READY) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL); /* no such account */
    } else if (verb != NULL &&
               (xml_is(verb, NS_PUBSUB, "options") || xml_is(verb, NS_PUBSUB, "default"))) {
        pep_error(p, XMPP_COND_FEATURE_NOT_IMPLEMENTED, "unsupported", "subscription-options");
    } else if (v == NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "no pubsub request this service knows");
    } else if (v->set != (strcmp(p->type, "set") == 0)) {
        sm_error(p, XMPP_COND_BAD_REQUEST, v->set ? "this request is a set" : "this is a get");
    } else {
        pep_with_nodes(p, owner_of(p), v->fn, verb);
    }
}

static const struct sm_iq_handler iqs[] = {
    {NS_PUBSUB, SM_IQ_ACCOUNT | SM_IQ_USER, on_pubsub},
};

const struct sm_feature sm_feat_pep_publish = {
    .name = "pep_publish",
    .part_of = "pep",
    .order = 45,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
};
