/* SPDX-License-Identifier: MIT */
/* Entity capabilities (XEP-0115) for personal eventing: what each entity
 * whose presence an account receives (its own resources and its contacts)
 * asks to be notified of (XEP-0163 §4.2, "+notify" features).
 *
 * An available presence with <c node ver hash/> names a 'ver'; its
 * identities and features are looked up by "node#ver" in memory, then in
 * the "caps" collection, and on a miss asked with disco#info of the
 * entity. The answer is cached (in memory and in the store) only when it
 * hashes to the 'ver' (§5.4); a wrong one is remembered as telling
 * nothing. Presence without caps, or with a hash this server does not
 * compute, tells nothing either.
 *
 * The query goes from a full JID with the resource CAPS_RESOURCE, since the
 * sm pipeline hands no feature an iq result addressed to a bare JID or a
 * domain: from the server's domain to a local entity (its answer comes from
 * its session), from the account's JID to a remote one (its answer comes
 * through the router, where only a user's full JID reaches the features). */
#include "pep.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "xml.h"

#define NS_CAPS        "http://jabber.org/protocol/caps"
#define CAPS_RESOURCE  "parley-pep-caps"
#define CAPS_RETRY_US  (30LL * 1000000)
#define CAPS_PENDING   1024 /* queries in flight at most */
#define CAPS_PEERS     1024 /* entities known to one account at most */
#define CAPS_HASH_MAX  64
#define CAPS_NOTIFY    "+notify"
#define CAPS_NOTIFY_SZ (sizeof(CAPS_NOTIFY) - 1)

extern const struct sm_feature sm_feat_caps;

struct caps_entry {
    char **notify; /* the nodes of the +notify features */
    size_t n;
};

/* An entity waiting for a ver to be known. */
struct caps_waiter {
    char *owner, *full;
    const struct caps_entry *before;
    struct caps_waiter *next;
};

/* A ver being looked up in the store, then asked of an entity. */
struct caps_pending {
    char *key;   /* node#ver */
    char *ver;   /* as advertised */
    char *hash;  /* its algorithm */
    char *jid;   /* the entity asked */
    char *asker; /* the account asking (bare) */
    char *id;    /* of the disco#info query; NULL while in the store */
    int64_t sent_us;
    struct caps_waiter *waiters;
};

/* What an account knows of one entity whose presence it receives. */
struct caps_peer {
    char *key; /* node#ver, NULL without usable caps */
};

/* A contact just allowed to see the account's presence: its resources'
 * interests are looked at again once the subscription is recorded. */
struct caps_recheck {
    struct sm *sm;
    struct event *ev;
    char *owner, *contact;
    struct caps_recheck *next;
};

struct caps_state {
    struct hmap *cache;   /* node#ver -> struct caps_entry */
    struct hmap *pending; /* node#ver -> struct caps_pending */
    struct hmap *by_id;   /* query id -> struct caps_pending */
    struct hmap *peers;   /* owner bare JID -> hmap: full JID -> struct caps_peer */
    struct caps_recheck *rechecks;
};

static struct caps_state *state_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_caps);
}

/* ---- the verification string (XEP-0115 §5.1) -------------------------------------- */

static const struct {
    const char *name;
    gnutls_digest_algorithm_t alg;
} hashes[] = {
    {"sha-1", GNUTLS_DIG_SHA1},     {"sha-224", GNUTLS_DIG_SHA224}, {"sha-256", GNUTLS_DIG_SHA256},
    {"sha-384", GNUTLS_DIG_SHA384}, {"sha-512", GNUTLS_DIG_SHA512},
};

static bool hash_known(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        if (strcmp(hashes[i].name, name) == 0)
            return true;
    }
    return false;
}

/* RFC 4648 §4 base64 of len bytes into out (>= 4 * ceil(len / 3) + 1). */
static void b64(const unsigned char *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        unsigned w = (unsigned)in[i] << 16;
        w |= i + 1 < len ? (unsigned)in[i + 1] << 8 : 0;
        w |= i + 2 < len ? in[i + 2] : 0;
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        out[o++] = i + 1 < len ? abc[w >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? abc[w & 63] : '=';
    }
    out[o] = '\0';
}

/* A string sorted by a key (a form by its FORM_TYPE, a field by its var). */
struct keyed {
    const char *key, *text;
};

static int by_key(const void *x, const void *y)
{
    return strcmp(((const struct keyed *)x)->key, ((const struct keyed *)y)->key);
}

/* Sorts n keyed strings and appends them to b; false on a repeated key. */
static bool append_sorted(struct buf *b, struct keyed *v, size_t n)
{
    qsort(v, n, sizeof(*v), by_key);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i].key, v[i - 1].key) == 0)
            return false;
        buf_append_str(b, v[i].text);
    }
    return true;
}

static size_t count(const struct xml_node *n, const char *ns, const char *name)
{
    size_t k = 0;
    for (struct xml_node *c = xml_child(n, ns, name); c != NULL; c = xml_next(c, ns, name))
        k++;
    return k;
}

/* One field: var '<' then each value, sorted, each followed by '<'. */
static struct keyed field_text(struct arena *a, const struct xml_node *f)
{
    size_t n = count(f, NS_XDATA, "value"), k = 0;
    struct keyed *vals = arena_alloc(a, (n + 1) * sizeof(*vals));
    for (struct xml_node *v = xml_child(f, NS_XDATA, "value"); v != NULL;
         v = xml_next(v, NS_XDATA, "value")) {
        const char *t = xml_text(a, v);
        vals[k++] = (struct keyed){t, arena_printf(a, "%s<", t)};
    }
    qsort(vals, n, sizeof(*vals), by_key); /* equal values are allowed here */
    struct buf b = BUF_INIT;
    const char *var = xml_attr_get(f, "var");
    buf_printf(&b, "%s<", var ? var : "");
    for (size_t i = 0; i < n; i++)
        buf_append_str(&b, vals[i].text);
    struct keyed out = {var ? var : "", arena_strdup(a, buf_cstr(&b))};
    buf_fini(&b);
    return out;
}

/* One extended form (XEP-0128): FORM_TYPE '<' then its fields by var.
 * key NULL when the form is to be ignored; false when ill-formed. */
static bool form_text(struct arena *a, const struct xml_node *x, struct keyed *out)
{
    size_t n = count(x, NS_XDATA, "field"), k = 0;
    struct keyed *f = arena_alloc(a, (n + 1) * sizeof(*f));
    const struct xml_node *ft = NULL;
    *out = (struct keyed){NULL, NULL};
    for (struct xml_node *c = xml_child(x, NS_XDATA, "field"); c != NULL;
         c = xml_next(c, NS_XDATA, "field")) {
        const char *var = xml_attr_get(c, "var");
        if (var != NULL && strcmp(var, "FORM_TYPE") == 0)
            ft = c;
        else
            f[k++] = field_text(a, c);
    }
    const char *type = ft ? xml_attr_get(ft, "type") : NULL;
    if (ft == NULL || type == NULL || strcmp(type, "hidden") != 0)
        return true; /* §5.4: ignored */
    const char *form_type = xml_child_text(a, ft, NS_XDATA, "value");
    for (struct xml_node *v = xml_child(ft, NS_XDATA, "value"); v != NULL;
         v = xml_next(v, NS_XDATA, "value")) {
        if (form_type == NULL || strcmp(xml_text(a, v), form_type) != 0)
            return false;
    }
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s<", form_type ? form_type : "");
    bool ok = append_sorted(&b, f, k);
    *out = (struct keyed){form_type ? form_type : "", arena_strdup(a, buf_cstr(&b))};
    buf_fini(&b);
    return ok;
}

/* Appends the identities, the features, then the forms of q to b; false
 * when q is ill-formed (§5.4: a repeated identity, feature or form). */
static bool caps_string(struct arena *a, const struct xml_node *q, struct buf *b)
{
    size_t ni = count(q, NS_DISCO_INFO, "identity"), nf = count(q, NS_DISCO_INFO, "feature");
    size_t nx = count(q, NS_XDATA, "x"), k = 0;
    struct keyed *v = arena_alloc(a, (ni + nf + nx + 1) * sizeof(*v));
    for (struct xml_node *c = xml_child(q, NS_DISCO_INFO, "identity"); c != NULL;
         c = xml_next(c, NS_DISCO_INFO, "identity")) {
        const char *cat = xml_attr_get(c, "category"), *type = xml_attr_get(c, "type");
        const char *lang = xml_attr_get_ns(c, XML_NS_XML, "lang"), *nm = xml_attr_get(c, "name");
        cat = cat ? cat : "", type = type ? type : "", lang = lang ? lang : "", nm = nm ? nm : "";
        /* by category, then type, then lang: \1 sorts below any XML character */
        v[k++] = (struct keyed){arena_printf(a, "%s\1%s\1%s\1%s", cat, type, lang, nm),
                                arena_printf(a, "%s/%s/%s/%s<", cat, type, lang, nm)};
    }
    if (!append_sorted(b, v, k))
        return false;
    k = 0;
    for (struct xml_node *c = xml_child(q, NS_DISCO_INFO, "feature"); c != NULL;
         c = xml_next(c, NS_DISCO_INFO, "feature")) {
        const char *var = xml_attr_get(c, "var");
        v[k++] = (struct keyed){var ? var : "", arena_printf(a, "%s<", var ? var : "")};
    }
    if (!append_sorted(b, v, k))
        return false;
    k = 0;
    for (struct xml_node *c = xml_child(q, NS_XDATA, "x"); c != NULL;
         c = xml_next(c, NS_XDATA, "x")) {
        if (!form_text(a, c, &v[k]))
            return false;
        k += v[k].key != NULL;
    }
    return append_sorted(b, v, k);
}

/* Whether the disco#info answer q hashes (with algorithm hash) to ver. */
static bool caps_verify(struct arena *a, const struct xml_node *q, const char *hash,
                        const char *ver)
{
    struct buf b = BUF_INIT;
    bool ok = caps_string(a, q, &b);
    for (size_t i = 0; ok && i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        if (strcmp(hashes[i].name, hash) != 0)
            continue;
        unsigned char d[CAPS_HASH_MAX];
        char text[CAPS_HASH_MAX * 2];
        ok = gnutls_hash_fast(hashes[i].alg, b.data, b.len, d) == 0;
        if (ok) {
            b64(d, gnutls_hash_get_len(hashes[i].alg), text);
            ok = strcmp(text, ver) == 0;
        }
    }
    buf_fini(&b);
    return ok && hash_known(hash);
}

/* ---- the cache ---------------------------------------------------------------------- */

static struct caps_entry *entry_new(const struct xml_node *q)
{
    struct caps_entry *e = xcalloc(1, sizeof(*e));
    for (struct xml_node *c = xml_child(q, NS_DISCO_INFO, "feature"); c != NULL;
         c = xml_next(c, NS_DISCO_INFO, "feature")) {
        const char *var = xml_attr_get(c, "var");
        size_t len = var ? strlen(var) : 0;
        if (len <= CAPS_NOTIFY_SZ || strcmp(var + len - CAPS_NOTIFY_SZ, CAPS_NOTIFY) != 0)
            continue;
        e->notify = xrealloc(e->notify, (e->n + 1) * sizeof(*e->notify));
        e->notify[e->n++] = xstrndup(var, len - CAPS_NOTIFY_SZ);
    }
    return e;
}

static void entry_free(struct caps_entry *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->notify[i]);
    free(e->notify);
    free(e);
}

bool caps_wants(const struct caps_entry *e, const char *node)
{
    for (size_t i = 0; e != NULL && i < e->n; i++) {
        if (strcmp(e->notify[i], node) == 0)
            return true;
    }
    return false;
}

static struct caps_peer *peer_get(struct sm *sm, const char *owner, const char *full)
{
    struct hmap *pm = hmap_get(state_of(sm)->peers, owner);
    return pm ? hmap_get(pm, full) : NULL;
}

const char **caps_interested(struct sm *sm, const char *owner, const char *node, struct arena *a,
                             size_t *n_r)
{
    struct caps_state *cs = state_of(sm); /* NULL: caps disabled, nobody is implied */
    struct hmap *pm = cs != NULL ? hmap_get(cs->peers, owner) : NULL;
    const char **out = arena_alloc(a, ((pm ? hmap_count(pm) : 0) + 1) * sizeof(*out));
    size_t n = 0;
    struct hmap_iter it = {0};
    const char *full;
    void *v;
    while (pm != NULL && hmap_next(pm, &it, &full, &v)) {
        const struct caps_peer *peer = v;
        if (peer->key != NULL && caps_wants(hmap_get(cs->cache, peer->key), node))
            out[n++] = arena_strdup(a, full);
    }
    *n_r = n;
    return out;
}

static void pending_free(struct caps_pending *pd)
{
    while (pd->waiters != NULL) {
        struct caps_waiter *w = pd->waiters;
        pd->waiters = w->next;
        free(w->owner);
        free(w->full);
        free(w);
    }
    free(pd->key);
    free(pd->ver);
    free(pd->hash);
    free(pd->jid);
    free(pd->asker);
    free(pd->id);
    free(pd);
}

/* A ver is known: cached, and the entities that waited for it get what
 * they newly ask for. */
static void resolve(struct sm *sm, struct caps_pending *pd, struct caps_entry *e)
{
    struct caps_state *cs = state_of(sm);
    hmap_del(cs->pending, pd->key);
    if (pd->id != NULL)
        hmap_del(cs->by_id, pd->id);
    struct caps_entry *old = hmap_put(cs->cache, pd->key, e);
    PL_ASSERT(old == NULL);
    for (struct caps_waiter *w = pd->waiters; e->n > 0 && w != NULL; w = w->next) {
        const struct caps_peer *peer = peer_get(sm, w->owner, w->full);
        if (peer != NULL && peer->key != NULL && strcmp(peer->key, pd->key) == 0)
            pep_peer_interest(sm, w->owner, w->full, e, w->before);
    }
    pending_free(pd);
}

/* ---- asking ----------------------------------------------------------------------- */

static void send_query(struct sm *sm, struct caps_pending *pd)
{
    struct caps_state *cs = state_of(sm);
    if (pd->id != NULL)
        hmap_del(cs->by_id, pd->id);
    free(pd->id);
    struct arena *a = arena_new(512);
    pd->id = xstrdup(arena_printf(a, "caps-%s", pep_item_id(a)));
    hmap_put(cs->by_id, pd->id, pd);
    pd->sent_us = sm_now_us();
    /* from the server to a local entity; from the account to a remote one,
     * whose answer comes back through the router */
    struct jid j;
    const char *from = pd->asker;
    if (jid_parse_str(a, pd->jid, &j, NULL) == 0 && sm_is_local_domain(sm, j.domain))
        from = j.domain;
    struct xml_node *iq = sm_stanza_new(a, "iq", arena_printf(a, "%s/%s", from, CAPS_RESOURCE),
                                        pd->jid, "get", pd->id);
    struct xml_node *q = xml_elem_add(a, iq, NS_DISCO_INFO, "query");
    xml_attr_set(a, q, "node", pd->key);
    sm_send(sm, iq, NULL);
    arena_free(&a);
}

/* A store read of a ver. */
struct caps_lookup {
    struct sm *sm;
    char *key;
};

/* Forgets a ver that could not be learnt; the next presence with it tries
 * again. */
static void drop(struct sm *sm, struct caps_pending *pd)
{
    struct caps_state *cs = state_of(sm);
    hmap_del(cs->pending, pd->key);
    if (pd->id != NULL)
        hmap_del(cs->by_id, pd->id);
    pending_free(pd);
}

static void on_looked_up(const struct store_res *res, void *arg)
{
    struct caps_lookup *l = arg;
    struct caps_pending *pd = hmap_get(state_of(l->sm)->pending, l->key);
    const char *xml = res->status == STORE_OK && res->nrows > 0
                          ? store_rec_get_str(res->rows[0], "xml", NULL)
                          : NULL;
    struct xml_node *q = xml ? xml_parse_fragment(res->arena, xml) : NULL;
    if (pd == NULL) {
        /* nothing waits any more */
    } else if (q != NULL) {
        resolve(l->sm, pd, entry_new(q));
    } else if (res->status != STORE_OK) {
        log_warn(&l->sm->lc, "reading capabilities %s: %s", l->key, res->err.text);
        drop(l->sm, pd);
    } else {
        send_query(l->sm, pd);
    }
    free(l->key);
    free(l);
}

/* Forgets the queries unanswered for CAPS_RETRY_US, to make room. */
static void sweep(struct sm *sm)
{
    struct caps_state *cs = state_of(sm);
    int64_t now = sm_now_us();
    struct caps_pending *stale[64];
    size_t n = 0;
    struct hmap_iter it = {0};
    void *v;
    while (n < 64 && hmap_next(cs->pending, &it, NULL, &v)) {
        struct caps_pending *pd = v;
        if (pd->id != NULL && now - pd->sent_us > CAPS_RETRY_US)
            stale[n++] = pd;
    }
    for (size_t i = 0; i < n; i++)
        drop(sm, stale[i]);
}

/* Entity full (a peer of owner) advertises key: wait for it. */
static void wait_for(struct sm *sm, const char *owner, const char *full, const char *key,
                     const struct xml_node *c, const struct caps_entry *before)
{
    struct caps_state *cs = state_of(sm);
    struct caps_pending *pd = hmap_get(cs->pending, key);
    if (pd == NULL && hmap_count(cs->pending) >= CAPS_PENDING)
        sweep(sm);
    if (pd == NULL) {
        if (hmap_count(cs->pending) >= CAPS_PENDING) {
            log_info(&sm->lc, "too many caps queries in flight; %s ignored", key);
            return;
        }
        pd = xcalloc(1, sizeof(*pd));
        pd->key = xstrdup(key);
        pd->ver = xstrdup(xml_attr_get(c, "ver"));
        pd->hash = xstrdup(xml_attr_get(c, "hash"));
        pd->jid = xstrdup(full);
        pd->asker = xstrdup(owner);
        hmap_put(cs->pending, key, pd);
        struct caps_lookup *l = xmalloc(sizeof(*l));
        l->sm = sm;
        l->key = xstrdup(key);
        store_get(sm->st, "caps", key, NULL, on_looked_up, l);
    } else if (pd->id != NULL && sm_now_us() - pd->sent_us > CAPS_RETRY_US) {
        free(pd->jid); /* unanswered: ask this one */
        free(pd->asker);
        pd->jid = xstrdup(full);
        pd->asker = xstrdup(owner);
        send_query(sm, pd);
    }
    struct caps_waiter *w = xcalloc(1, sizeof(*w));
    w->owner = xstrdup(owner);
    w->full = xstrdup(full);
    w->before = before;
    w->next = pd->waiters;
    pd->waiters = w;
}

static void on_stored(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK)
        log_warn(&sm->lc, "storing capabilities: %s", res->err.text);
}

/* The answer to a query (XEP-0115 §5.4). */
static void on_answer(struct sm_pkt *p, struct caps_pending *pd)
{
    struct xml_node *q = xml_child(p->st, NS_DISCO_INFO, "query");
    if (strcmp(p->type, "result") != 0 || q == NULL) {
        log_info(&p->sm->lc, "no capabilities from %s for %s", pd->jid, pd->key);
        drop(p->sm, pd);
        return;
    }
    if (!caps_verify(p->a, q, pd->hash, pd->ver)) {
        /* §5.4: never cached; the entities that advertise it get nothing */
        log_info(&p->sm->lc, "capabilities of %s do not match %s", pd->jid, pd->key);
        drop(p->sm, pd);
        return;
    }
    struct buf b = BUF_INIT;
    xml_serialize(&b, q, NULL);
    struct store_rec *r = store_rec_new(p->a);
    store_rec_xml(p->a, r, "xml", buf_cstr(&b));
    store_put(p->sm->st, "caps", pd->key, r, on_stored, p->sm);
    buf_fini(&b);
    resolve(p->sm, pd, entry_new(q));
}

static enum sm_verdict on_iq(struct sm_pkt *p)
{
    if ((strcmp(p->type, "result") && strcmp(p->type, "error")) || !p->has_to ||
        p->to.resource == NULL || strcmp(p->to.resource, CAPS_RESOURCE) != 0)
        return SM_PASS;
    const char *id = xml_attr_get(p->st, "id");
    struct caps_pending *pd = id ? hmap_get(state_of(p->sm)->by_id, id) : NULL;
    if (pd != NULL && strcmp(pd->jid, jid_full(p->a, &p->from)) == 0)
        on_answer(p, pd);
    return SM_HANDLED; /* ours, late or not */
}

/* ---- presence ------------------------------------------------------------------------ */

static void peer_gone(struct sm *sm, const char *owner, const char *full)
{
    struct caps_state *cs = state_of(sm);
    struct hmap *pm = hmap_get(cs->peers, owner);
    struct caps_peer *peer = pm ? hmap_del(pm, full) : NULL;
    if (peer != NULL) {
        free(peer->key);
        free(peer);
    }
    if (pm != NULL && hmap_count(pm) == 0) {
        hmap_del(cs->peers, owner);
        hmap_free(&pm);
    }
}

/* The caps key of a presence (node#ver), NULL without usable caps. */
static const char *key_of(struct arena *a, const struct xml_node *c)
{
    const char *node = c ? xml_attr_get(c, "node") : NULL;
    const char *ver = c ? xml_attr_get(c, "ver") : NULL;
    if (node == NULL || ver == NULL || !hash_known(xml_attr_get(c, "hash")))
        return NULL; /* no caps, legacy caps (§13) or an unknown hash */
    return arena_printf(a, "%s#%s", node, ver);
}

static void peer_seen(struct sm_pkt *p, const char *owner, const char *full)
{
    struct caps_state *cs = state_of(p->sm);
    const struct xml_node *c = xml_child(p->st, NS_CAPS, "c");
    const char *key = key_of(p->a, c);
    struct hmap *pm = hmap_get(cs->peers, owner);
    if (pm == NULL) {
        pm = hmap_new();
        hmap_put(cs->peers, owner, pm);
    }
    struct caps_peer *peer = hmap_get(pm, full);
    if (peer != NULL && (peer->key == key || (peer->key && key && !strcmp(peer->key, key))))
        return; /* not initial presence, nor new caps */
    if (peer == NULL && hmap_count(pm) >= CAPS_PEERS) {
        log_info(&p->sm->lc, "%s knows too many entities; %s ignored", owner, full);
        return;
    }
    if (peer == NULL) {
        peer = xcalloc(1, sizeof(*peer));
        hmap_put(pm, full, peer);
    }
    const struct caps_entry *before = peer->key ? hmap_get(cs->cache, peer->key) : NULL;
    free(peer->key);
    peer->key = key ? xstrdup(key) : NULL;
    if (key == NULL)
        return;
    const struct caps_entry *now = hmap_get(cs->cache, key);
    if (now == NULL)
        wait_for(p->sm, owner, full, key, c, before);
    else if (now->n > 0)
        pep_peer_interest(p->sm, owner, full, now, before);
}

static void recheck_free(struct caps_state *cs, struct caps_recheck *r)
{
    for (struct caps_recheck **pp = &cs->rechecks; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    event_free(r->ev);
    free(r->owner);
    free(r->contact);
    free(r);
}

static void on_recheck(evutil_socket_t fd, short what, void *arg)
{
    struct caps_recheck *r = arg;
    struct caps_state *cs = state_of(r->sm);
    (void)fd;
    (void)what;
    struct hmap *pm = hmap_get(cs->peers, r->owner);
    size_t len = strlen(r->contact);
    struct hmap_iter it = {0};
    const char *full;
    void *v;
    while (pm != NULL && hmap_next(pm, &it, &full, &v)) {
        const struct caps_peer *peer = v;
        const struct caps_entry *e = peer->key ? hmap_get(cs->cache, peer->key) : NULL;
        if (e != NULL && e->n > 0 && strncmp(full, r->contact, len) == 0 && full[len] == '/')
            pep_peer_interest(r->sm, r->owner, full, e, NULL);
    }
    recheck_free(cs, r);
}

/* XEP-0163 §7.1: access is recalculated when a subscription changes. An
 * approval (subscribed) lets the contact see presence-model nodes: after the
 * subscription feature has recorded it, the contact's resources get the
 * last items they ask for. */
static void subscribed(struct sm_pkt *p)
{
    struct caps_state *cs = state_of(p->sm);
    struct caps_recheck *r = xcalloc(1, sizeof(*r));
    r->sm = p->sm;
    r->owner = xstrdup(p->user->jid);
    r->contact = xstrdup(jid_bare(p->a, &p->to));
    r->ev = evtimer_new(p->sm->base, on_recheck, r);
    r->next = cs->rechecks;
    cs->rechecks = r;
    struct timeval now = {0, 0};
    evtimer_add(r->ev, &now);
}

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind == SM_IQ)
        return on_iq(p);
    if (p->kind == SM_PRESENCE && p->route == SM_FROM_SESSION && p->has_to &&
        strcmp(p->type, "subscribed") == 0) {
        subscribed(p);
        return SM_PASS;
    }
    bool unavailable = strcmp(p->type, "unavailable") == 0;
    if (p->kind != SM_PRESENCE || (p->type[0] != '\0' && !unavailable))
        return SM_PASS;
    const char *owner, *full;
    if (p->route == SM_FROM_SESSION && !p->has_to) {
        owner = p->user->jid; /* the account's own resource */
        full = p->sess->jid;
    } else if (p->route == SM_TO_USER && p->user != NULL && p->user->state == SM_USER_READY) {
        owner = p->user->jid; /* a contact, or a directed presence */
        full = jid_full(p->a, &p->from);
    } else {
        return SM_PASS;
    }
    if (unavailable)
        peer_gone(p->sm, owner, full);
    else
        peer_seen(p, owner, full);
    return SM_PASS;
}

static void on_session_end(struct sm_session *s)
{
    peer_gone(s->user->sm, s->user->jid, s->jid);
}

/* ---- the feature -------------------------------------------------------------------- */

static int init(struct sm *sm, struct err *err)
{
    (void)err;
    struct caps_state *cs = xcalloc(1, sizeof(*cs));
    cs->cache = hmap_new();
    cs->pending = hmap_new();
    cs->by_id = hmap_new();
    cs->peers = hmap_new();
    sm_feature_set_state(sm, &sm_feat_caps, cs);
    return 0;
}

static void fini(struct sm *sm)
{
    struct caps_state *cs = state_of(sm);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(cs->cache, &it, NULL, &v))
        entry_free(v);
    it = (struct hmap_iter){0};
    while (hmap_next(cs->pending, &it, NULL, &v))
        pending_free(v);
    it = (struct hmap_iter){0};
    while (hmap_next(cs->peers, &it, NULL, &v)) {
        struct hmap *pm = v;
        struct hmap_iter pi = {0};
        void *pv;
        while (hmap_next(pm, &pi, NULL, &pv)) {
            free(((struct caps_peer *)pv)->key);
            free(pv);
        }
        hmap_free(&pm);
    }
    while (cs->rechecks != NULL)
        recheck_free(cs, cs->rechecks);
    hmap_free(&cs->cache);
    hmap_free(&cs->pending);
    hmap_free(&cs->by_id);
    hmap_free(&cs->peers);
    free(cs);
    sm_feature_set_state(sm, &sm_feat_caps, NULL);
}

const struct sm_feature sm_feat_caps = {
    .name = "caps",
    .order = 19, /* sees presence before the subscription (20) and presence (30) features */
    .init = init,
    .fini = fini,
    .on_stanza = on_stanza,
    .on_session_end = on_session_end,
};
