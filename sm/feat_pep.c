/* SPDX-License-Identifier: MIT */
/* Personal eventing (XEP-0163): every account is a pubsub service whose
 * nodes this file keeps. It caches each account's nodes while in use,
 * decides who may see a node (access models presence, open and whitelist),
 * fans notifications out to the owner's resources, the contacts whose
 * capabilities ask for the node (feat_caps.c) and the explicit subscribers,
 * and sends the last item to a resource that comes online. It also answers
 * the account's disco#info with the pubsub/pep identity and the nodes'
 * disco#info and disco#items.
 *
 * Storage: "pep-nodes" holds a node's configuration, subscriptions and
 * whitelist as one <node xmlns='urn:parley:pep:0'/> element; "pep-items"
 * one row an item (ts orders them; the payload is the item's one child). */
#include "pep.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "xml.h"

#define NS_STORED       "urn:parley:pep:0"
#define OWNER_IDLE_US   (60LL * 1000000)
#define HOUSEKEEPING_MS 15000
#define ITEM_ID_LEN     16

extern const struct sm_feature sm_feat_pep;

/* Work waiting for an owner's nodes to be read. */
struct pep_wait {
    pep_owner_fn *fn;
    void *arg;
    struct pep_wait *next;
};

/* One account's nodes, cached while in use. */
struct pep_owner {
    bool ready;
    bool forgotten;     /* the account was deleted while its nodes were loading */
    struct hmap *nodes; /* name -> struct pep_node */
    struct pep_wait *head, *tail;
    int64_t last_used;
};

struct pep_state {
    struct hmap *owners; /* bare JID -> struct pep_owner */
    struct event *timer;
    int64_t last_ts;
};

const char *const pep_access_names[] = {"presence", "open", "whitelist", NULL};
const char *const pep_send_last_names[] = {"never", "on_sub", "on_sub_and_presence", NULL};

static struct pep_state *state_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_pep);
}

static int name_index(const char *const *names, const char *s, int fallback)
{
    for (int i = 0; s != NULL && names[i] != NULL; i++) {
        if (strcmp(names[i], s) == 0)
            return i;
    }
    return fallback;
}

/* ---- configuration --------------------------------------------------------- */

void pep_config_default(struct pep_config *cfg)
{
    *cfg = (struct pep_config){
        .access = PEP_ACCESS_PRESENCE,
        .send_last = PEP_SEND_ON_SUB_AND_PRESENCE,
        .persist_items = true,
        .max_items = 1,
        .deliver_notifications = true,
        .deliver_payloads = true,
        .notify_retract = true,
        .notify_delete = true,
    };
}

void pep_config_copy(struct pep_config *dst, const struct pep_config *src)
{
    char *title = src->title ? xstrdup(src->title) : NULL;
    free(dst->title);
    *dst = *src;
    dst->title = title;
}

void pep_config_fini(struct pep_config *cfg)
{
    free(cfg->title);
    cfg->title = NULL;
}

static bool attr_bool(const struct xml_node *n, const char *name, bool fallback)
{
    const char *v = xml_attr_get(n, name);
    return v == NULL ? fallback : strcmp(v, "1") == 0;
}

static void jids_read(const struct xml_node *x, const char *name, struct hmap *set, void *value)
{
    for (struct xml_node *c = xml_child(x, NS_STORED, name); c != NULL;
         c = xml_next(c, NS_STORED, name)) {
        const char *jid = xml_attr_get(c, "jid");
        if (jid != NULL)
            hmap_put(set, jid, value);
    }
}

static struct pep_node *node_new(const char *name, const struct pep_config *cfg)
{
    struct pep_node *n = xcalloc(1, sizeof(*n));
    n->name = xstrdup(name);
    pep_config_copy(&n->cfg, cfg);
    n->subs = hmap_new();
    n->members = hmap_new();
    return n;
}

static void node_free(struct pep_node *n)
{
    pep_config_fini(&n->cfg);
    hmap_free(&n->subs);
    hmap_free(&n->members);
    free(n->name);
    free(n);
}

/* A node as stored; NULL when the row is not one. */
static struct pep_node *node_parse(struct arena *a, const char *name, const char *xml)
{
    struct xml_node *x = xml_parse_fragment(a, xml);
    if (x == NULL || !xml_is(x, NS_STORED, "node"))
        return NULL;
    struct pep_config cfg;
    pep_config_default(&cfg);
    cfg.access = name_index(pep_access_names, xml_attr_get(x, "access"), PEP_ACCESS_PRESENCE);
    cfg.send_last = name_index(pep_send_last_names, xml_attr_get(x, "send-last"), cfg.send_last);
    cfg.persist_items = attr_bool(x, "persist", true);
    const char *max = xml_attr_get(x, "max");
    long m = max ? strtol(max, NULL, 10) : 1;
    cfg.max_items = m < 1 ? 1 : m > PEP_MAX_ITEMS ? PEP_MAX_ITEMS : m;
    cfg.deliver_notifications = attr_bool(x, "notify", true);
    cfg.deliver_payloads = attr_bool(x, "payloads", true);
    cfg.notify_retract = attr_bool(x, "notify-retract", true);
    cfg.notify_delete = attr_bool(x, "notify-delete", true);
    cfg.title = (char *)xml_attr_get(x, "title"); /* copied by node_new */
    struct pep_node *n = node_new(name, &cfg);
    jids_read(x, "subscription", n->subs, n);
    jids_read(x, "member", n->members, n);
    return n;
}

static void jids_write(struct arena *a, struct xml_node *x, const char *name,
                       const struct hmap *set)
{
    struct hmap_iter it = {0};
    const char *k;
    while (hmap_next(set, &it, &k, NULL))
        xml_attr_set(a, xml_elem_add(a, x, NS_STORED, name), "jid", k);
}

static struct xml_node *node_xml(struct arena *a, const struct pep_node *n)
{
    const struct pep_config *c = &n->cfg;
    struct xml_node *x = xml_elem_new(a, NS_STORED, "node");
    xml_attr_set(a, x, "access", pep_access_names[c->access]);
    xml_attr_set(a, x, "send-last", pep_send_last_names[c->send_last]);
    xml_attr_set(a, x, "persist", c->persist_items ? "1" : "0");
    xml_attr_set(a, x, "max", arena_printf(a, "%ld", c->max_items));
    xml_attr_set(a, x, "notify", c->deliver_notifications ? "1" : "0");
    xml_attr_set(a, x, "payloads", c->deliver_payloads ? "1" : "0");
    xml_attr_set(a, x, "notify-retract", c->notify_retract ? "1" : "0");
    xml_attr_set(a, x, "notify-delete", c->notify_delete ? "1" : "0");
    if (c->title != NULL)
        xml_attr_set(a, x, "title", c->title);
    jids_write(a, x, "subscription", n->subs);
    jids_write(a, x, "member", n->members);
    return x;
}

/* ---- the cache of an owner's nodes -------------------------------------------- */

static void owner_free(struct pep_owner *o)
{
    struct hmap_iter it = {0};
    void *v;
    while (o->nodes != NULL && hmap_next(o->nodes, &it, NULL, &v))
        node_free(v);
    hmap_free(&o->nodes);
    free(o);
}

/* A read of an owner's nodes in flight. */
struct pep_load {
    struct sm *sm;
    char *owner;
};

static void run_waiters(struct sm *sm, const char *owner, struct pep_wait *w, bool ok)
{
    while (w != NULL) {
        struct pep_wait *next = w->next;
        w->fn(sm, owner, ok, w->arg);
        free(w);
        w = next;
    }
}

static void on_nodes_loaded(const struct store_res *res, void *arg)
{
    struct pep_load *l = arg;
    struct pep_state *ps = state_of(l->sm);
    struct pep_owner *o = hmap_get(ps->owners, l->owner);
    struct pep_wait *w = o->head;
    o->head = o->tail = NULL;
    if (res->status != STORE_OK) {
        log_warn(&l->sm->lc, "reading the pep nodes of %s: %s", l->owner, res->err.text);
        hmap_del(ps->owners, l->owner);
        owner_free(o);
        run_waiters(l->sm, l->owner, w, false);
    } else {
        for (size_t i = 0; !o->forgotten && i < res->nrows; i++) {
            const char *name = store_rec_get_str(res->rows[i], "node", "");
            struct pep_node *n =
                node_parse(res->arena, name, store_rec_get_str(res->rows[i], "config", ""));
            if (n == NULL)
                log_warn(&l->sm->lc, "pep node %s of %s is unreadable", name, l->owner);
            else
                hmap_put(o->nodes, name, n);
        }
        o->ready = true;
        o->last_used = sm_now_us();
        run_waiters(l->sm, l->owner, w, true);
    }
    free(l->owner);
    free(l);
}

void pep_with_owner(struct sm *sm, const char *owner, pep_owner_fn *fn, void *arg)
{
    struct pep_state *ps = state_of(sm);
    struct pep_owner *o = hmap_get(ps->owners, owner);
    if (o != NULL && o->ready) {
        o->last_used = sm_now_us();
        fn(sm, owner, true, arg);
        return;
    }
    struct pep_wait *w = xcalloc(1, sizeof(*w));
    w->fn = fn;
    w->arg = arg;
    if (o == NULL) {
        o = xcalloc(1, sizeof(*o));
        o->nodes = hmap_new();
        hmap_put(ps->owners, owner, o);
        struct pep_load *l = xmalloc(sizeof(*l));
        l->sm = sm;
        l->owner = xstrdup(owner);
        store_get(sm->st, "pep-nodes", owner, NULL, on_nodes_loaded, l);
    }
    if (o->tail != NULL)
        o->tail->next = w;
    else
        o->head = w;
    o->tail = w;
}

/* A stanza waiting for its owner's nodes. */
struct pep_pkt_wait {
    struct sm_pkt *p;
    pep_pkt_fn *fn;
    struct xml_node *payload;
};

static void pkt_resume(struct sm *sm, const char *owner, bool ok, void *arg)
{
    struct pep_pkt_wait *w = arg;
    struct sm_pkt *p = w->p;
    (void)sm;
    (void)owner;
    p->kept = false;
    if (ok)
        w->fn(p, w->payload);
    else
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    if (!p->kept)
        sm_pkt_free(p);
}

void pep_with_nodes(struct sm_pkt *p, const char *owner, pep_pkt_fn *fn, struct xml_node *payload)
{
    if (pep_nodes(p->sm, owner) != NULL) {
        fn(p, payload);
        return;
    }
    struct pep_pkt_wait *w = arena_alloc(p->a, sizeof(*w));
    w->p = p;
    w->fn = fn;
    w->payload = payload;
    sm_pkt_keep(p);
    pep_with_owner(p->sm, owner, pkt_resume, w);
}

struct hmap *pep_nodes(struct sm *sm, const char *owner)
{
    struct pep_owner *o = hmap_get(state_of(sm)->owners, owner);
    if (o == NULL || !o->ready)
        return NULL;
    o->last_used = sm_now_us();
    return o->nodes;
}

struct pep_node *pep_node_get(struct sm *sm, const char *owner, const char *name)
{
    struct hmap *nodes = pep_nodes(sm, owner);
    return nodes ? hmap_get(nodes, name) : NULL;
}

static void on_written(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK)
        log_warn(&sm->lc, "writing pep data: %s", res->err.text);
}

void pep_node_save(struct sm *sm, const char *owner, const struct pep_node *n)
{
    struct arena *a = arena_new(1024);
    struct buf b = BUF_INIT;
    xml_serialize(&b, node_xml(a, n), NULL);
    struct store_rec *r = store_rec_new(a);
    store_rec_str(a, r, "node", n->name);
    store_rec_xml(a, r, "config", buf_cstr(&b));
    store_put(sm->st, "pep-nodes", owner, r, on_written, sm);
    buf_fini(&b);
    arena_free(&a);
}

struct pep_node *pep_node_create(struct sm *sm, const char *owner, const char *name,
                                 const struct pep_config *cfg)
{
    struct hmap *nodes = pep_nodes(sm, owner);
    PL_ASSERT(nodes != NULL);
    if (hmap_count(nodes) >= PEP_MAX_NODES)
        return NULL;
    struct pep_node *n = node_new(name, cfg);
    hmap_put(nodes, name, n);
    pep_node_save(sm, owner, n);
    return n;
}

void pep_node_delete(struct sm *sm, const char *owner, const char *name)
{
    struct arena *a = arena_new(512);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "node", name); /* copied: name may be the node's own */
    store_delete(sm->st, "pep-items", owner, f, on_written, sm);
    store_delete(sm->st, "pep-nodes", owner, f, on_written, sm);
    struct hmap *nodes = pep_nodes(sm, owner);
    struct pep_node *n = nodes ? hmap_del(nodes, name) : NULL;
    if (n != NULL)
        node_free(n);
    arena_free(&a);
}

/* Forgets the nodes of accounts unused for a while (they are read again
 * when needed). */
static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    struct sm *sm = arg;
    struct pep_state *ps = state_of(sm);
    (void)fd;
    (void)what;
    int64_t now = sm_now_us();
    char *drop[64];
    size_t n = 0;
    struct hmap_iter it = {0};
    const char *k;
    void *v;
    while (n < 64 && hmap_next(ps->owners, &it, &k, &v)) {
        const struct pep_owner *o = v;
        if (o->ready && o->head == NULL && now - o->last_used > OWNER_IDLE_US)
            drop[n++] = xstrdup(k);
    }
    for (size_t i = 0; i < n; i++) {
        owner_free(hmap_del(ps->owners, drop[i]));
        free(drop[i]);
    }
}

/* ---- access and errors ---------------------------------------------------------- */

enum pep_deny pep_access(struct sm_user *u, const char *owner, const struct pep_node *n,
                         const char *bare)
{
    if (strcmp(bare, owner) == 0)
        return PEP_ALLOWED;
    switch (n->cfg.access) {
    case PEP_ACCESS_OPEN:
        return PEP_ALLOWED;
    case PEP_ACCESS_WHITELIST:
        return hmap_get(n->members, bare) != NULL ? PEP_ALLOWED : PEP_DENY_WHITELIST;
    case PEP_ACCESS_PRESENCE:
        break;
    }
    const struct sm_item *it =
        u != NULL && u->state == SM_USER_READY ? sm_user_item(u, bare) : NULL;
    return it != NULL && it->sub_from ? PEP_ALLOWED : PEP_DENY_PRESENCE;
}

void pep_deny_error(struct sm_pkt *p, enum pep_deny why)
{
    if (why == PEP_DENY_WHITELIST)
        pep_error(p, XMPP_COND_NOT_ALLOWED, "closed-node", NULL);
    else
        pep_error(p, XMPP_COND_NOT_AUTHORIZED, "presence-subscription-required", NULL);
}

void pep_error(struct sm_pkt *p, enum xmpp_cond cond, const char *app, const char *feature)
{
    if (app == NULL || !strcmp(p->type, "error") || !strcmp(p->type, "result")) {
        sm_error(p, cond, NULL);
        return;
    }
    const char *to = xml_attr_get(p->st, "to");
    struct xml_node *e =
        sm_stanza_new(p->a, p->st->name, to ? to : jid_bare(p->a, &p->from),
                      jid_full(p->a, &p->from), "error", xml_attr_get(p->st, "id"));
    for (struct xml_node *c = xml_first_elem(p->st); c != NULL; c = xml_next_elem(c))
        xml_append(e, xml_node_copy(p->a, c));
    struct xml_node *err = xml_elem_add(p->a, e, XML_NS_CLIENT, "error");
    xml_attr_set(p->a, err, "type", xmpp_cond_type(cond));
    xml_elem_add(p->a, err, XMPP_NS_STANZAS, xmpp_cond_name(cond));
    struct xml_node *ac = xml_elem_add(p->a, err, NS_PUBSUB_ERRORS, app);
    if (feature != NULL)
        xml_attr_set(p->a, ac, "feature", feature);
    p->sm->stats.bounced++;
    sm_send(p->sm, e, NULL);
}

char *pep_item_id(struct arena *a)
{
    char id[COMP_STREAM_ID_LEN + 1];
    comp_stream_id(id);
    return arena_strndup(a, id, ITEM_ID_LEN);
}

int64_t pep_next_ts(struct sm *sm)
{
    struct pep_state *ps = state_of(sm);
    int64_t now = sm_now_us();
    ps->last_ts = now > ps->last_ts ? now : ps->last_ts + 1;
    return ps->last_ts;
}

/* ---- notifications ----------------------------------------------------------- */

void pep_item_xml(struct arena *a, struct xml_node *parent, const char *id, const char *payload)
{
    struct xml_node *item = xml_elem_add(a, parent, NULL, "item");
    xml_attr_set(a, item, "id", id);
    struct xml_node *x = payload ? xml_parse_fragment(a, payload) : NULL;
    if (x != NULL)
        xml_append(item, x);
}

/* The bare part of a JID we built (normalised: the first '/' ends it). */
static char *bare_of(struct arena *a, const char *jid)
{
    const char *slash = strchr(jid, '/');
    return slash ? arena_strndup(a, jid, (size_t)(slash - jid)) : arena_strdup(a, jid);
}

/* One notification: at most once to each address, as access and the
 * owner's blocking (XEP-0163 §4.3.3, XEP-0191) allow. */
struct fanout {
    struct sm *sm;
    struct arena *a;
    struct sm_user *u;
    const char *owner;
    const struct pep_node *n;
    struct xml_node *msg;
    struct hmap *sent;
};

static void send_one(struct fanout *f, const char *to)
{
    if (hmap_get(f->sent, to) != NULL)
        return;
    hmap_put(f->sent, to, f);
    if (pep_access(f->u, f->owner, f->n, bare_of(f->a, to)) != PEP_ALLOWED)
        return;
    if (f->u != NULL && !sm_allow_out(f->u, SM_MESSAGE, to))
        return;
    xml_attr_set(f->a, f->msg, "to", to);
    xml_attr_set(f->a, f->msg, "id", pep_item_id(f->a));
    sm_send(f->sm, f->msg, NULL);
}

void pep_notify(struct sm *sm, const char *owner, const struct pep_node *n,
                const struct xml_node *event)
{
    if (!n->cfg.deliver_notifications)
        return;
    struct arena *a = arena_new(2048);
    struct fanout f = {sm, a, hmap_get(sm->users, owner), owner, n, NULL, hmap_new()};
    f.msg = sm_stanza_new(a, "message", owner, NULL, "headline", NULL);
    xml_append(f.msg, xml_node_copy(a, event));
    size_t ni = 0;
    const char **implicit = caps_interested(sm, owner, n->name, a, &ni);
    struct hmap *covered = hmap_new(); /* bare JIDs reached at full JIDs */
    for (size_t i = 0; i < ni; i++) {
        send_one(&f, implicit[i]);
        hmap_put(covered, bare_of(a, implicit[i]), a);
    }
    /* XEP-0163 §4.3.2: a bare subscription goes to the interested resources
     * when there are some, else once to the bare JID. */
    struct hmap_iter it = {0};
    const char *sub;
    while (hmap_next(n->subs, &it, &sub, NULL)) {
        if (strchr(sub, '/') != NULL || hmap_get(covered, sub) == NULL)
            send_one(&f, sub);
    }
    hmap_free(&covered);
    hmap_free(&f.sent);
    arena_free(&a);
}

/* A read of a node's items for its last one. */
struct pep_last {
    struct sm *sm;
    char *owner, *node, *to;
};

static void on_last(const struct store_res *res, void *arg)
{
    struct pep_last *l = arg;
    struct sm_user *u = hmap_get(l->sm->users, l->owner);
    if (res->status != STORE_OK) {
        log_warn(&l->sm->lc, "reading pep items of %s: %s", l->owner, res->err.text);
    } else if (res->nrows > 0 && (u == NULL || sm_allow_out(u, SM_MESSAGE, l->to))) {
        const struct store_rec *r = res->rows[res->nrows - 1];
        struct arena *a = res->arena;
        struct xml_node *msg =
            sm_stanza_new(a, "message", l->owner, l->to, "headline", pep_item_id(a));
        struct xml_node *ev = xml_elem_add(a, msg, NS_PUBSUB_EVENT, "event");
        struct xml_node *items = xml_elem_add(a, ev, NS_PUBSUB_EVENT, "items");
        xml_attr_set(a, items, "node", l->node);
        pep_item_xml(a, items, store_rec_get_str(r, "item", ""),
                     store_rec_get_str(r, "payload", NULL));
        sm_send(l->sm, msg, NULL);
    }
    free(l->owner);
    free(l->node);
    free(l->to);
    free(l);
}

void pep_send_last(struct sm *sm, const char *owner, const struct pep_node *n, const char *to)
{
    if (!n->cfg.deliver_notifications)
        return;
    struct pep_last *l = xmalloc(sizeof(*l));
    l->sm = sm;
    l->owner = xstrdup(owner);
    l->node = xstrdup(n->name);
    l->to = xstrdup(to);
    struct arena *a = arena_new(512);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "node", n->name);
    store_get(sm->st, "pep-items", owner, f, on_last, l);
    arena_free(&a);
}

/* A peer's new interests, waiting for the owner's nodes. */
struct pep_interest {
    char *full;
    const struct caps_entry *now, *before;
};

static void on_interest(struct sm *sm, const char *owner, bool ok, void *arg)
{
    struct pep_interest *in = arg;
    struct hmap *nodes = ok ? pep_nodes(sm, owner) : NULL;
    struct sm_user *u = hmap_get(sm->users, owner);
    struct arena *a = arena_new(512);
    const char *bare = bare_of(a, in->full);
    struct hmap_iter it = {0};
    void *v;
    while (nodes != NULL && hmap_next(nodes, &it, NULL, &v)) {
        const struct pep_node *n = v;
        if (n->cfg.send_last == PEP_SEND_ON_SUB_AND_PRESENCE && caps_wants(in->now, n->name) &&
            !caps_wants(in->before, n->name) && pep_access(u, owner, n, bare) == PEP_ALLOWED)
            pep_send_last(sm, owner, n, in->full);
    }
    arena_free(&a);
    free(in->full);
    free(in);
}

void pep_peer_interest(struct sm *sm, const char *owner, const char *full,
                       const struct caps_entry *now, const struct caps_entry *before)
{
    if (state_of(sm) == NULL)
        return; /* PEP disabled in <sm><features>: caps runs alone */
    struct pep_interest *in = xmalloc(sizeof(*in));
    in->full = xstrdup(full);
    in->now = now;
    in->before = before;
    pep_with_owner(sm, owner, on_interest, in);
}

/* ---- service discovery ------------------------------------------------------------ */

/* The next feature's handler of the same query (feat_disco.c). */
static void pass_on(struct sm_pkt *p, struct xml_node *q)
{
    unsigned target = p->route == SM_FROM_SESSION ? SM_IQ_ACCOUNT : SM_IQ_USER;
    bool after = false;
    for (size_t i = 0; i < p->sm->nfeatures; i++) {
        const struct sm_feature *f = p->sm->features[i];
        for (size_t k = 0; after && k < f->niqs; k++) {
            if ((f->iqs[k].targets & target) && strcmp(f->iqs[k].ns, q->ns) == 0) {
                f->iqs[k].fn(p, q);
                return;
            }
        }
        after = after || f == &sm_feat_pep;
    }
    sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
}

static const char *owner_of(struct sm_pkt *p)
{
    return p->route == SM_FROM_SESSION ? p->user->jid : jid_bare(p->a, &p->to);
}

static void add_identity(struct arena *a, struct xml_node *q, const char *category,
                         const char *type)
{
    struct xml_node *id = xml_elem_add(a, q, NS_DISCO_INFO, "identity");
    xml_attr_set(a, id, "category", category);
    xml_attr_set(a, id, "type", type);
}

static void add_var(struct arena *a, struct xml_node *q, const char *var)
{
    xml_attr_set(a, xml_elem_add(a, q, NS_DISCO_INFO, "feature"), "var", var);
}

/* XEP-0163 §6.1: the account's identities with pubsub/pep, and every
 * feature's account vars, as feat_disco.c lists them. */
static void account_info(struct sm_pkt *p)
{
    struct xml_node *q = xml_elem_new(p->a, NS_DISCO_INFO, "query");
    add_identity(p->a, q, "account", "registered");
    add_identity(p->a, q, "pubsub", "pep");
    add_var(p->a, q, NS_DISCO_INFO);
    add_var(p->a, q, NS_DISCO_ITEMS);
    for (size_t i = 0; i < p->sm->nfeatures; i++) {
        const char *const *vars = p->sm->features[i]->account_features;
        for (size_t k = 0; vars != NULL && vars[k] != NULL; k++)
            add_var(p->a, q, vars[k]);
    }
    sm_iq_result(p, q);
}

/* The node a disco query names, when the asker may see it. */
static const struct pep_node *visible_node(struct sm_pkt *p, struct xml_node *q)
{
    const char *owner = owner_of(p);
    const struct pep_node *n = pep_node_get(p->sm, owner, xml_attr_get(q, "node"));
    if (n == NULL || pep_access(p->user, owner, n, jid_bare(p->a, &p->from)) != PEP_ALLOWED)
        return NULL;
    return n;
}

static void node_info(struct sm_pkt *p, struct xml_node *req)
{
    const struct pep_node *n = visible_node(p, req);
    if (n == NULL) {
        pass_on(p, req);
        return;
    }
    struct xml_node *q = xml_elem_new(p->a, NS_DISCO_INFO, "query");
    xml_attr_set(p->a, q, "node", n->name);
    add_identity(p->a, q, "pubsub", "leaf");
    add_var(p->a, q, NS_PUBSUB);
    sm_iq_result(p, q);
}

static void on_node_items(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    if (res->status != STORE_OK) {
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        sm_pkt_free(p);
        return;
    }
    const char *owner = owner_of(p);
    struct xml_node *q = xml_elem_new(p->a, NS_DISCO_ITEMS, "query");
    xml_attr_set(p->a, q, "node", xml_attr_get(xml_first_elem(p->st), "node"));
    for (size_t i = 0; i < res->nrows; i++) {
        struct xml_node *item = xml_elem_add(p->a, q, NS_DISCO_ITEMS, "item");
        xml_attr_set(p->a, item, "jid", owner);
        xml_attr_set(p->a, item, "name", store_rec_get_str(res->rows[i], "item", ""));
    }
    sm_iq_result(p, q);
    sm_pkt_free(p);
}

static void node_items(struct sm_pkt *p, struct xml_node *req)
{
    const struct pep_node *n = visible_node(p, req);
    if (n == NULL) {
        pass_on(p, req);
        return;
    }
    struct store_rec *f = store_rec_new(p->a);
    store_rec_str(p->a, f, "node", n->name);
    sm_pkt_keep(p);
    store_get(p->sm->st, "pep-items", owner_of(p), f, on_node_items, p);
}

static bool is_contact(struct sm_pkt *p)
{
    if (p->route == SM_FROM_SESSION)
        return true;
    const struct sm_item *it = sm_user_item(p->user, jid_bare(p->a, &p->from));
    return it != NULL && it->sub_from;
}

static void on_disco(struct sm_pkt *p, struct xml_node *q)
{
    bool info = strcmp(q->ns, NS_DISCO_INFO) == 0;
    if (strcmp(p->type, "get") != 0 || p->user == NULL || p->user->state != SM_USER_READY) {
        pass_on(p, q);
    } else if (xml_attr_get(q, "node") != NULL) {
        pep_with_nodes(p, owner_of(p), info ? node_info : node_items, q);
    } else if (info && is_contact(p)) {
        account_info(p);
    } else {
        pass_on(p, q);
    }
}

/* ---- the feature ------------------------------------------------------------------ */

static int init(struct sm *sm, struct err *err)
{
    (void)err;
    struct pep_state *ps = xcalloc(1, sizeof(*ps));
    ps->owners = hmap_new();
    ps->timer = event_new(sm->base, -1, EV_PERSIST, on_housekeeping, sm);
    struct timeval tv = {HOUSEKEEPING_MS / 1000, (HOUSEKEEPING_MS % 1000) * 1000};
    event_add(ps->timer, &tv);
    sm_feature_set_state(sm, &sm_feat_pep, ps);
    return 0;
}

static void fini(struct sm *sm)
{
    struct pep_state *ps = state_of(sm);
    if (ps == NULL)
        return;
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(ps->owners, &it, NULL, &v))
        owner_free(v);
    hmap_free(&ps->owners);
    event_free(ps->timer);
    free(ps);
    sm_feature_set_state(sm, &sm_feat_pep, NULL);
}

/* A deleted account: its cached nodes go (their rows go from the store);
 * a load in flight ends with none. */
static void on_user_forget(struct sm *sm, const char *jid)
{
    struct pep_state *ps = state_of(sm);
    struct pep_owner *o = ps ? hmap_get(ps->owners, jid) : NULL;
    if (o == NULL)
        return;
    if (o->ready) {
        owner_free(hmap_del(ps->owners, jid));
        return;
    }
    o->forgotten = true;
}

static const struct sm_iq_handler iqs[] = {
    {NS_DISCO_INFO, SM_IQ_ACCOUNT | SM_IQ_USER, on_disco},
    {NS_DISCO_ITEMS, SM_IQ_ACCOUNT | SM_IQ_USER, on_disco},
};

static const char *const account_features[] = {
    NS_PUBSUB,
    NS_PUBSUB "#access-open",
    NS_PUBSUB "#access-presence",
    NS_PUBSUB "#access-whitelist",
    NS_PUBSUB "#auto-create",
    NS_PUBSUB "#auto-subscribe",
    NS_PUBSUB "#config-node",
    NS_PUBSUB "#create-and-configure",
    NS_PUBSUB "#create-nodes",
    NS_PUBSUB "#delete-items",
    NS_PUBSUB "#delete-nodes",
    NS_PUBSUB "#filtered-notifications",
    NS_PUBSUB "#last-published",
    NS_PUBSUB "#member-affiliation",
    NS_PUBSUB "#modify-affiliations",
    NS_PUBSUB "#persistent-items",
    NS_PUBSUB "#publish",
    NS_PUBSUB "#publish-options",
    NS_PUBSUB "#purge-nodes",
    NS_PUBSUB "#retract-items",
    NS_PUBSUB "#retrieve-affiliations",
    NS_PUBSUB "#retrieve-default",
    NS_PUBSUB "#retrieve-items",
    NS_PUBSUB "#retrieve-subscriptions",
    NS_PUBSUB "#subscribe",
    NULL,
};

const struct sm_feature sm_feat_pep = {
    .name = "pep",
    .order = 45, /* its disco handlers come before feat_disco.c's (50) */
    .account_features = account_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = init,
    .fini = fini,
    .on_user_forget = on_user_forget,
};
