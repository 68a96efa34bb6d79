/* SPDX-License-Identifier: MIT */
/* Service discovery (XEP-0030) for the server and for accounts. disco#info:
 * the identity, every enabled feature's vars and, on the server, the
 * contact addresses of <sm><contact> (XEP-0157). disco#items: on the server,
 * the services bound on the router (a MUC service, a gateway), learnt from
 * the router's component notices; on an account, the items kept for it in
 * the "disco-items" collection (publishing them is deprecated and not
 * offered). A query with a node goes to the feature that owns the node
 * (on_disco_node), e.g. the ad-hoc commands. */
#include "sm.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

#define NS_INFO       "http://jabber.org/protocol/disco#info"
#define NS_ITEMS      "http://jabber.org/protocol/disco#items"
#define NS_XDATA      "jabber:x:data"
#define NS_SERVERINFO "http://jabber.org/network/serverinfo"

extern const struct sm_feature sm_feat_disco;

/* What a connected component binds that is worth listing. */
struct disco_comp {
    char **names;
    size_t n;
};

struct disco_state {
    struct hmap *comps; /* component name -> struct disco_comp */
};

/* Who a query is about. */
enum disco_target {
    DISCO_SERVER,
    DISCO_OWN,   /* the sender's own account */
    DISCO_OTHER, /* another local user's account */
};

/* ---- the components on the router ------------------------------------------------- */

static void comp_free(struct disco_comp *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->names[i]);
    free(c->names);
    free(c);
}

static void comps_clear(struct disco_state *ds)
{
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(ds->comps, &it, NULL, &v))
        comp_free(v);
    hmap_free(&ds->comps);
    ds->comps = hmap_new();
}

/* Whether a name bound by component comp is a service of its own: not one
 * of our domains, not the default route, and not the plain name of a
 * Parley daemon (c2s-1, s2s, resolver: its own name, with no dot). */
static bool worth_listing(const struct sm *sm, const char *comp, const char *name)
{
    if (strcmp(name, "*") == 0 || sm_is_local_domain(sm, name))
        return false;
    return strcmp(name, comp) != 0 || strchr(name, '.') != NULL;
}

/* A component binding one of our domains is an sm: none of its names is a
 * service. Every other component's notice replaces what it had. */
static struct disco_comp *comp_from_notice(struct sm *sm, const char *name,
                                           const struct xml_node *n)
{
    struct disco_comp *c = xcalloc(1, sizeof(*c));
    for (struct xml_node *b = xml_child(n, NULL, "bind"); b != NULL;
         b = xml_next(b, NULL, "bind")) {
        const char *bound = xml_attr_get(b, "name");
        if (bound == NULL)
            continue;
        if (sm_is_local_domain(sm, bound)) {
            comp_free(c);
            return NULL;
        }
        if (!worth_listing(sm, name, bound))
            continue;
        c->names = xrealloc(c->names, (c->n + 1) * sizeof(*c->names));
        c->names[c->n++] = xstrdup(bound);
    }
    return c;
}

static void on_component(struct sm *sm, const struct xml_node *n)
{
    struct disco_state *ds = sm_feature_state(sm, &sm_feat_disco);
    if (ds == NULL)
        return;
    if (n == NULL) {
        comps_clear(ds); /* the link is down: the next one tells us again */
        return;
    }
    const char *name = xml_attr_get(n, "name");
    const char *state = xml_attr_get(n, "state");
    if (name == NULL || state == NULL)
        return;
    comp_free(hmap_del(ds->comps, name));
    struct disco_comp *c = strcmp(state, "up") == 0 ? comp_from_notice(sm, name, n) : NULL;
    if (c != NULL && c->n > 0)
        hmap_put(ds->comps, name, c);
    else
        comp_free(c);
}

/* With several hosted domains, a service under one of them is listed on
 * that one only; a service under none of them is listed on all. */
static bool belongs(const struct sm *sm, const char *name, const char *domain)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < sm->common->ndomains; i++) {
        const char *d = sm->common->domains[i];
        size_t dl = strlen(d);
        if (len > dl && name[len - dl - 1] == '.' && strcmp(name + len - dl, d) == 0)
            return strcmp(d, domain) == 0;
    }
    return true;
}

static int by_name(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static void server_items(struct sm_pkt *p, struct xml_node *q)
{
    struct disco_state *ds = sm_feature_state(p->sm, &sm_feat_disco);
    size_t n = 0, cap = 0;
    const char **names = NULL;
    struct hmap_iter it = {0};
    void *v;
    while (ds != NULL && hmap_next(ds->comps, &it, NULL, &v)) {
        const struct disco_comp *c = v;
        for (size_t i = 0; i < c->n; i++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                names = xrealloc(names, cap * sizeof(*names));
            }
            names[n++] = c->names[i];
        }
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && strcmp(names[i], names[i - 1]) == 0) ||
            !belongs(p->sm, names[i], p->to.domain))
            continue; /* several components may bind one name */
        struct xml_node *item = xml_elem_add(p->a, q, NS_ITEMS, "item");
        xml_attr_set(p->a, item, "jid", names[i]);
    }
    free(names);
}

/* ---- queries ------------------------------------------------------------------------ */

static enum disco_target target_of(const struct sm_pkt *p)
{
    if (!p->has_to && p->route == SM_FROM_SESSION)
        return DISCO_OWN; /* no 'to' from a client: its own account */
    if (p->to.local == NULL)
        return DISCO_SERVER;
    return p->route == SM_TO_USER ? DISCO_OTHER : DISCO_OWN;
}

/* The common checks: a get; another user's account only for the contacts
 * it shares presence with; a node for the feature that owns it. Returns
 * false when the query was answered here. */
static bool query_ok(struct sm_pkt *p, struct xml_node *req, enum disco_target t)
{
    if (strcmp(p->type, "get") != 0) {
        sm_error(p, XMPP_COND_NOT_ALLOWED, NULL);
        return false;
    }
    if (t == DISCO_OTHER) {
        struct sm_item *it = sm_user_item(p->user, jid_bare(p->a, &p->from));
        if (p->user->state != SM_USER_READY || it == NULL || !it->sub_from) {
            sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
            return false;
        }
    }
    if (xml_attr_get(req, "node") == NULL)
        return true;
    for (size_t i = 0; i < p->sm->nfeatures; i++) {
        const struct sm_feature *f = p->sm->features[i];
        if (f->on_disco_node != NULL && f->on_disco_node(p, req) == SM_HANDLED)
            return false;
    }
    sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
    return false;
}

static void add_var(struct sm_pkt *p, struct xml_node *q, const char *var)
{
    struct xml_node *f = xml_elem_add(p->a, q, NS_INFO, "feature");
    xml_attr_set(p->a, f, "var", var);
}

static void add_field(struct sm_pkt *p, struct xml_node *x, const char *var,
                      const char *const *values, size_t n)
{
    struct xml_node *f = xml_elem_add(p->a, x, NS_XDATA, "field");
    xml_attr_set(p->a, f, "var", var);
    xml_attr_set(p->a, f, "type", strcmp(var, "FORM_TYPE") == 0 ? "hidden" : "list-multi");
    for (size_t i = 0; i < n; i++) {
        struct xml_node *val = xml_elem_add(p->a, f, NS_XDATA, "value");
        xml_text_add(p->a, val, values[i], strlen(values[i]));
    }
}

/* The XEP-0157 kinds of contact address, as configured. */
struct contact_kind {
    const char *var;
    const char *const *v;
    size_t n;
};

#define NKINDS 7

static void contact_kinds(const struct sm_cfg *c, struct contact_kind kinds[NKINDS])
{
    const struct contact_kind all[NKINDS] = {
        {"abuse-addresses", c->contact_abuse, c->ncontact_abuse},
        {"admin-addresses", c->contact_admin, c->ncontact_admin},
        {"feedback-addresses", c->contact_feedback, c->ncontact_feedback},
        {"sales-addresses", c->contact_sales, c->ncontact_sales},
        {"security-addresses", c->contact_security, c->ncontact_security},
        {"status-addresses", c->contact_status, c->ncontact_status},
        {"support-addresses", c->contact_support, c->ncontact_support},
    };
    memcpy(kinds, all, sizeof(all));
}

/* XEP-0157: the contact addresses, as an extended info form (XEP-0128)
 * holding only the kinds that have addresses. */
static void add_contacts(struct sm_pkt *p, struct xml_node *q)
{
    struct contact_kind kinds[NKINDS];
    struct xml_node *x = NULL;
    contact_kinds(p->sm->cfg, kinds);
    for (size_t i = 0; i < NKINDS; i++) {
        if (kinds[i].n == 0)
            continue;
        if (x == NULL) {
            static const char *const form_type[] = {NS_SERVERINFO};
            x = xml_elem_add(p->a, q, NS_XDATA, "x");
            xml_attr_set(p->a, x, "type", "result");
            add_field(p, x, "FORM_TYPE", form_type, 1);
        }
        add_field(p, x, kinds[i].var, kinds[i].v, kinds[i].n);
    }
}

static void on_info(struct sm_pkt *p, struct xml_node *req)
{
    enum disco_target t = target_of(p);
    bool server = t == DISCO_SERVER;
    if (!query_ok(p, req, t))
        return;
    struct xml_node *q = xml_elem_new(p->a, NS_INFO, "query");
    struct xml_node *id = xml_elem_add(p->a, q, NS_INFO, "identity");
    xml_attr_set(p->a, id, "category", server ? "server" : "account");
    xml_attr_set(p->a, id, "type", server ? "im" : "registered");
    if (server)
        xml_attr_set(p->a, id, "name", "Parley");
    add_var(p, q, NS_INFO);
    add_var(p, q, NS_ITEMS);
    for (size_t i = 0; i < p->sm->nfeatures; i++) {
        const struct sm_feature *f = p->sm->features[i];
        const char *const *vars = server ? f->server_features : f->account_features;
        for (size_t k = 0; vars != NULL && vars[k] != NULL; k++)
            add_var(p, q, vars[k]);
    }
    if (server)
        add_contacts(p, q);
    sm_iq_result(p, q);
}

static void on_user_items(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "reading disco items: %s", res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        sm_pkt_free(p);
        return;
    }
    struct xml_node *q = xml_elem_new(p->a, NS_ITEMS, "query");
    for (size_t i = 0; i < res->nrows; i++) {
        const char *jid = store_rec_get_str(res->rows[i], "jid", "");
        const char *node = store_rec_get_str(res->rows[i], "node", "");
        const char *name = store_rec_get_str(res->rows[i], "name", "");
        if (jid[0] == '\0')
            continue;
        struct xml_node *item = xml_elem_add(p->a, q, NS_ITEMS, "item");
        xml_attr_set(p->a, item, "jid", jid);
        if (node[0] != '\0')
            xml_attr_set(p->a, item, "node", node);
        if (name[0] != '\0')
            xml_attr_set(p->a, item, "name", name);
    }
    sm_iq_result(p, q);
    sm_pkt_free(p);
}

static void on_items(struct sm_pkt *p, struct xml_node *req)
{
    enum disco_target t = target_of(p);
    if (!query_ok(p, req, t))
        return;
    if (t == DISCO_SERVER) {
        struct xml_node *q = xml_elem_new(p->a, NS_ITEMS, "query");
        server_items(p, q);
        sm_iq_result(p, q);
        return;
    }
    const char *owner = t == DISCO_OWN ? jid_bare(p->a, &p->from) : jid_bare(p->a, &p->to);
    sm_pkt_keep(p);
    store_get(p->sm->st, "disco-items", owner, NULL, on_user_items, p);
}

/* ---- the feature -------------------------------------------------------------------- */

/* A URI starts with a scheme (RFC 3986 §3.1): mailto:, xmpp:, https: */
static bool is_uri(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0' && (isalnum((unsigned char)s[n]) || (n > 0 && strchr("+.-", s[n]))))
        n++;
    return n > 0 && isalpha((unsigned char)s[0]) && s[n] == ':' && s[n + 1] != '\0';
}

static int init(struct sm *sm, struct err *err)
{
    struct contact_kind kinds[NKINDS];
    contact_kinds(sm->cfg, kinds);
    for (size_t i = 0; i < NKINDS; i++) {
        for (size_t k = 0; k < kinds[i].n; k++) {
            if (!is_uri(kinds[i].v[k]))
                return err_set(err, XMPP_COND_BAD_REQUEST,
                               "<sm><contact>: '%s' is not a URI (mailto:, xmpp:, https:)",
                               kinds[i].v[k]);
        }
    }
    struct disco_state *ds = xcalloc(1, sizeof(*ds));
    ds->comps = hmap_new();
    sm_feature_set_state(sm, &sm_feat_disco, ds);
    return 0;
}

static void fini(struct sm *sm)
{
    struct disco_state *ds = sm_feature_state(sm, &sm_feat_disco);
    if (ds == NULL)
        return;
    comps_clear(ds);
    hmap_free(&ds->comps);
    free(ds);
    sm_feature_set_state(sm, &sm_feat_disco, NULL);
}

static const struct sm_iq_handler iqs[] = {
    {NS_INFO, SM_IQ_SERVER | SM_IQ_ACCOUNT | SM_IQ_USER, on_info},
    {NS_ITEMS, SM_IQ_SERVER | SM_IQ_ACCOUNT | SM_IQ_USER, on_items},
};

const struct sm_feature sm_feat_disco = {
    .name = "disco",
    .core = true,
    .order = 50,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = init,
    .fini = fini,
    .on_component = on_component,
};
