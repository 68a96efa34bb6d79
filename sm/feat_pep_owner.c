/* SPDX-License-Identifier: MIT */
/* The owner's side of an account's PEP service (XEP-0060 §8, namespace
 * pubsub#owner): node configuration (get and set, and the defaults),
 * deletion, purge, the whitelist as 'member' affiliations, and the list of
 * subscribers. Also the data forms of node configuration and of
 * publish-options preconditions (XEP-0060 §7.1.5). */
#include "pep.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

/* ---- the node_config fields ------------------------------------------------------- */

enum field {
    F_ACCESS,
    F_SEND_LAST,
    F_PERSIST,
    F_MAX_ITEMS,
    F_NOTIFY,
    F_PAYLOADS,
    F_NOTIFY_RETRACT,
    F_NOTIFY_DELETE,
    F_TITLE,
    F_PUBLISH_MODEL,
    F_COUNT
};

static const struct {
    const char *var, *type, *label;
} fields[F_COUNT] = {
    [F_ACCESS] = {"pubsub#access_model", "list-single", "Who may subscribe and retrieve items"},
    [F_SEND_LAST] = {"pubsub#send_last_published_item", "list-single",
                     "When to send the last published item"},
    [F_PERSIST] = {"pubsub#persist_items", "boolean", "Persist items to storage"},
    [F_MAX_ITEMS] = {"pubsub#max_items", "text-single", "Max # of items to persist"},
    [F_NOTIFY] = {"pubsub#deliver_notifications", "boolean", "Deliver event notifications"},
    [F_PAYLOADS] = {"pubsub#deliver_payloads", "boolean", "Deliver payloads with notifications"},
    [F_NOTIFY_RETRACT] = {"pubsub#notify_retract", "boolean", "Notify when items are removed"},
    [F_NOTIFY_DELETE] = {"pubsub#notify_delete", "boolean", "Notify when the node is deleted"},
    [F_TITLE] = {"pubsub#title", "text-single", "A friendly name for the node"},
    [F_PUBLISH_MODEL] = {"pubsub#publish_model", "list-single", "Who may publish"},
};

static const char *const publish_models[] = {"publishers", NULL};

static int field_of(const char *var)
{
    for (int i = 0; var != NULL && i < F_COUNT; i++) {
        if (strcmp(fields[i].var, var) == 0)
            return i;
    }
    return -1;
}

static int choice(const char *const *names, const char *v)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], v) == 0)
            return i;
    }
    return -1;
}

/* XEP-0004 §3.3 booleans; -1 for anything else. */
static int parse_bool(const char *v)
{
    if (!strcmp(v, "1") || !strcmp(v, "true"))
        return 1;
    return !strcmp(v, "0") || !strcmp(v, "false") ? 0 : -1;
}

/* A field's value in a canonical spelling, to show and to compare. */
static const char *field_value(struct arena *a, const struct pep_config *c, enum field f)
{
    switch (f) {
    case F_ACCESS:
        return pep_access_names[c->access];
    case F_SEND_LAST:
        return pep_send_last_names[c->send_last];
    case F_PERSIST:
        return c->persist_items ? "1" : "0";
    case F_MAX_ITEMS:
        return c->max_items == PEP_MAX_ITEMS ? "max" : arena_printf(a, "%ld", c->max_items);
    case F_NOTIFY:
        return c->deliver_notifications ? "1" : "0";
    case F_PAYLOADS:
        return c->deliver_payloads ? "1" : "0";
    case F_NOTIFY_RETRACT:
        return c->notify_retract ? "1" : "0";
    case F_NOTIFY_DELETE:
        return c->notify_delete ? "1" : "0";
    case F_TITLE:
        return c->title ? c->title : "";
    case F_PUBLISH_MODEL:
    case F_COUNT:
        break;
    }
    return "publishers";
}

static int set_bool(bool *b, const char *v, struct pep_form_err *e)
{
    int x = parse_bool(v);
    if (x < 0) {
        *e = (struct pep_form_err){XMPP_COND_NOT_ACCEPTABLE, NULL, "not a boolean"};
        return -1;
    }
    *b = x == 1;
    return 0;
}

static int set_max_items(struct pep_config *c, const char *v, struct pep_form_err *e)
{
    char *end = NULL;
    long n = strcmp(v, "max") == 0 ? PEP_MAX_ITEMS : strtol(v, &end, 10);
    if ((end != NULL && (*end != '\0' || end == v)) || n < 1 || n > PEP_MAX_ITEMS) {
        *e = (struct pep_form_err){XMPP_COND_NOT_ACCEPTABLE, NULL, "max_items out of range"};
        return -1;
    }
    c->max_items = n;
    return 0;
}

static int set_list(int *dst, const char *const *names, const char *v, const char *app,
                    struct pep_form_err *e)
{
    int i = choice(names, v);
    if (i < 0) {
        *e = (struct pep_form_err){XMPP_COND_NOT_ACCEPTABLE, app, "unsupported value"};
        return -1;
    }
    *dst = i;
    return 0;
}

static int field_set(struct pep_config *c, enum field f, const char *v, struct pep_form_err *e)
{
    int i = 0, rc;
    switch (f) {
    case F_ACCESS:
        rc = set_list(&i, pep_access_names, v, "unsupported-access-model", e);
        c->access = rc == 0 ? (enum pep_access)i : c->access;
        return rc;
    case F_SEND_LAST:
        rc = set_list(&i, pep_send_last_names, v, NULL, e);
        c->send_last = rc == 0 ? (enum pep_send_last)i : c->send_last;
        return rc;
    case F_PERSIST:
        return set_bool(&c->persist_items, v, e);
    case F_MAX_ITEMS:
        return set_max_items(c, v, e);
    case F_NOTIFY:
        return set_bool(&c->deliver_notifications, v, e);
    case F_PAYLOADS:
        return set_bool(&c->deliver_payloads, v, e);
    case F_NOTIFY_RETRACT:
        return set_bool(&c->notify_retract, v, e);
    case F_NOTIFY_DELETE:
        return set_bool(&c->notify_delete, v, e);
    case F_TITLE:
        free(c->title);
        c->title = v[0] ? xstrdup(v) : NULL;
        return 0;
    case F_PUBLISH_MODEL:
    case F_COUNT:
        break;
    }
    return set_list(&i, publish_models, v, NULL, e);
}

/* The first value of a form field ("" when it has none). */
static const char *value_of(struct arena *a, const struct xml_node *field)
{
    const char *v = xml_child_text(a, field, NS_XDATA, "value");
    return v ? v : "";
}

/* Options a node has but its owner cannot change: a request for their one
 * value holds, any other does not. */
static const struct {
    const char *var, *type, *value;
} fixed[] = {
    {"pubsub#node_type", "list-single", "leaf"},
    {"pubsub#notification_type", "list-single", "headline"},
    {"pubsub#subscribe", "boolean", "1"},
    {"pubsub#notify_config", "boolean", "0"},
    {"pubsub#notify_sub", "boolean", "0"},
    {"pubsub#purge_offline", "boolean", "0"},
};

/* 1 when var is a fixed option and v its value, 0 when v is not, -1 when
 * var is no fixed option. */
static int fixed_holds(const char *var, const char *v)
{
    for (size_t i = 0; var != NULL && i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(fixed[i].var, var) != 0)
            continue;
        if (strcmp(fixed[i].type, "boolean") == 0)
            return parse_bool(v) == (fixed[i].value[0] == '1');
        return strcmp(v, fixed[i].value) == 0;
    }
    return -1;
}

/* A field that is none of the node's options: publish-options fail on it
 * (XEP-0060 §7.1.5), a configuration ignores it unless it asks to change
 * what cannot change. Returns -1 with e set to refuse. */
static int other_field(const char *var, const char *v, bool publish_options, struct pep_form_err *e)
{
    int holds = fixed_holds(var, v);
    if (holds == 1 || (holds < 0 && !publish_options))
        return 0;
    if (publish_options)
        *e = (struct pep_form_err){XMPP_COND_CONFLICT, "precondition-not-met", "unknown option"};
    else
        *e = (struct pep_form_err){XMPP_COND_NOT_ACCEPTABLE, NULL, "this option cannot change"};
    return -1;
}

int pep_form_apply(struct arena *a, const struct xml_node *x, struct pep_config *cfg,
                   bool publish_options, struct pep_form_err *e)
{
    const char *form_type = publish_options ? NS_PUBSUB_PUBOPT : NS_PUBSUB_CONFIG;
    for (struct xml_node *fl = xml_child(x, NS_XDATA, "field"); fl != NULL;
         fl = xml_next(fl, NS_XDATA, "field")) {
        const char *var = xml_attr_get(fl, "var");
        const char *v = value_of(a, fl);
        int f = field_of(var);
        if (var != NULL && strcmp(var, "FORM_TYPE") == 0) {
            if (strcmp(v, form_type) == 0)
                continue;
            *e = (struct pep_form_err){XMPP_COND_BAD_REQUEST, NULL, "wrong FORM_TYPE"};
            return -1;
        }
        if (f < 0 ? other_field(var, v, publish_options, e) < 0
                  : field_set(cfg, (enum field)f, v, e) < 0)
            return -1;
    }
    return 0;
}

bool pep_form_matches(struct arena *a, const struct xml_node *x, const struct pep_config *cfg)
{
    for (struct xml_node *fl = xml_child(x, NS_XDATA, "field"); fl != NULL;
         fl = xml_next(fl, NS_XDATA, "field")) {
        const char *var = xml_attr_get(fl, "var");
        if (var != NULL && strcmp(var, "FORM_TYPE") == 0)
            continue;
        int f = field_of(var);
        if (f < 0 && fixed_holds(var, value_of(a, fl)) == 1)
            continue;
        if (f < 0)
            return false; /* XEP-0060 §7.1.5: unknown preconditions fail */
        struct pep_config want = {0};
        struct pep_form_err e;
        pep_config_copy(&want, cfg);
        bool same = field_set(&want, (enum field)f, value_of(a, fl), &e) == 0 &&
                    strcmp(field_value(a, &want, f), field_value(a, cfg, f)) == 0;
        pep_config_fini(&want);
        if (!same)
            return false;
    }
    return true;
}

static void add_value(struct arena *a, struct xml_node *parent, const char *v)
{
    struct xml_node *val = xml_elem_add(a, parent, NS_XDATA, "value");
    xml_text_add(a, val, v, strlen(v));
}

static void add_options(struct arena *a, struct xml_node *fl, const char *const *names)
{
    for (size_t i = 0; names[i] != NULL; i++)
        add_value(a, xml_elem_add(a, fl, NS_XDATA, "option"), names[i]);
}

struct xml_node *pep_form_build(struct arena *a, const struct pep_config *cfg, const char *type)
{
    struct xml_node *x = xml_elem_new(a, NS_XDATA, "x");
    xml_attr_set(a, x, "type", type);
    struct xml_node *ft = xml_elem_add(a, x, NS_XDATA, "field");
    xml_attr_set(a, ft, "var", "FORM_TYPE");
    xml_attr_set(a, ft, "type", "hidden");
    add_value(a, ft, NS_PUBSUB_CONFIG);
    for (int f = 0; f < F_COUNT; f++) {
        struct xml_node *fl = xml_elem_add(a, x, NS_XDATA, "field");
        xml_attr_set(a, fl, "var", fields[f].var);
        xml_attr_set(a, fl, "type", fields[f].type);
        xml_attr_set(a, fl, "label", fields[f].label);
        if (f == F_ACCESS)
            add_options(a, fl, pep_access_names);
        else if (f == F_SEND_LAST)
            add_options(a, fl, pep_send_last_names);
        else if (f == F_PUBLISH_MODEL)
            add_options(a, fl, publish_models);
        const char *v = field_value(a, cfg, f);
        if (f != F_TITLE || v[0] != '\0')
            add_value(a, fl, v);
    }
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        struct xml_node *fl = xml_elem_add(a, x, NS_XDATA, "field");
        xml_attr_set(a, fl, "var", fixed[i].var);
        xml_attr_set(a, fl, "type", fixed[i].type);
        add_value(a, fl, fixed[i].value);
    }
    return x;
}

/* ---- the requests ------------------------------------------------------------------- */

static struct xml_node *reply(struct sm_pkt *p, const char *name, const char *node,
                              struct xml_node **inner_r)
{
    struct xml_node *ps = xml_elem_new(p->a, NS_PUBSUB_OWNER, "pubsub");
    struct xml_node *inner = xml_elem_add(p->a, ps, NS_PUBSUB_OWNER, name);
    if (node != NULL)
        xml_attr_set(p->a, inner, "node", node);
    *inner_r = inner;
    return ps;
}

static struct pep_node *named_node(struct sm_pkt *p, struct xml_node *verb)
{
    const char *name = xml_attr_get(verb, "node");
    if (name == NULL || name[0] == '\0') {
        pep_error(p, XMPP_COND_BAD_REQUEST, "nodeid-required", NULL);
        return NULL;
    }
    struct pep_node *n = pep_node_get(p->sm, p->user->jid, name);
    if (n == NULL)
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
    return n;
}

static void configure_set(struct sm_pkt *p, struct pep_node *n, struct xml_node *x)
{
    const char *type = x ? xml_attr_get(x, "type") : NULL;
    if (x == NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "a configuration is a data form");
        return;
    }
    if (type != NULL && strcmp(type, "cancel") == 0) {
        sm_iq_result(p, NULL);
        return;
    }
    struct pep_config cfg = {0};
    struct pep_form_err e = {0};
    pep_config_copy(&cfg, &n->cfg);
    if (pep_form_apply(p->a, x, &cfg, false, &e) < 0) {
        pep_error(p, e.cond, e.app, NULL);
    } else {
        pep_config_copy(&n->cfg, &cfg);
        pep_node_save(p->sm, p->user->jid, n);
        sm_iq_result(p, NULL);
    }
    pep_config_fini(&cfg);
}

static void do_configure(struct sm_pkt *p, struct xml_node *verb)
{
    struct pep_node *n = named_node(p, verb);
    if (n == NULL)
        return;
    if (strcmp(p->type, "set") == 0) {
        configure_set(p, n, xml_child(verb, NS_XDATA, "x"));
        return;
    }
    struct xml_node *inner;
    struct xml_node *ps = reply(p, "configure", n->name, &inner);
    xml_append(inner, pep_form_build(p->a, &n->cfg, "form"));
    sm_iq_result(p, ps);
}

static void do_default(struct sm_pkt *p, struct xml_node *verb)
{
    struct pep_config cfg;
    struct xml_node *inner;
    (void)verb;
    pep_config_default(&cfg);
    struct xml_node *ps = reply(p, "default", NULL, &inner);
    xml_append(inner, pep_form_build(p->a, &cfg, "form"));
    sm_iq_result(p, ps);
}

static struct xml_node *event_of(struct arena *a, const char *what, const char *node)
{
    struct xml_node *ev = xml_elem_new(a, NS_PUBSUB_EVENT, "event");
    xml_attr_set(a, xml_elem_add(a, ev, NS_PUBSUB_EVENT, what), "node", node);
    return ev;
}

static void do_delete(struct sm_pkt *p, struct xml_node *verb)
{
    struct pep_node *n = named_node(p, verb);
    if (n == NULL)
        return;
    if (n->cfg.notify_delete)
        pep_notify(p->sm, p->user->jid, n, event_of(p->a, "delete", n->name));
    pep_node_delete(p->sm, p->user->jid, n->name);
    sm_iq_result(p, NULL);
}

static void on_purged(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    const char *name = xml_attr_get(xml_first_elem(xml_first_elem(p->st)), "node");
    const struct pep_node *n = pep_node_get(p->sm, jid_bare(p->a, &p->from), name);
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "purging a pep node: %s", res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    } else {
        sm_iq_result(p, NULL);
        if (n != NULL && n->cfg.notify_retract)
            pep_notify(p->sm, jid_bare(p->a, &p->from), n, event_of(p->a, "purge", name));
    }
    sm_pkt_free(p);
}

static void do_purge(struct sm_pkt *p, struct xml_node *verb)
{
    struct pep_node *n = named_node(p, verb);
    if (n == NULL)
        return;
    struct store_rec *f = store_rec_new(p->a);
    store_rec_str(p->a, f, "node", n->name);
    sm_pkt_keep(p);
    store_delete(p->sm->st, "pep-items", p->user->jid, f, on_purged, p);
}

static void affiliation_xml(struct sm_pkt *p, struct xml_node *list, const char *jid,
                            const char *aff)
{
    struct xml_node *a = xml_elem_add(p->a, list, NS_PUBSUB_OWNER, "affiliation");
    xml_attr_set(p->a, a, "jid", jid);
    xml_attr_set(p->a, a, "affiliation", aff);
}

/* XEP-0060 §8.9.2: 'member' puts a bare JID on the whitelist, 'none' takes
 * it off; the owner stays owner. Checked whole before any change. */
static void affiliations_set(struct sm_pkt *p, struct pep_node *n, struct xml_node *verb)
{
    struct xml_node *c;
    for (c = xml_child(verb, NS_PUBSUB_OWNER, "affiliation"); c != NULL;
         c = xml_next(c, NS_PUBSUB_OWNER, "affiliation")) {
        const char *jid = xml_attr_get(c, "jid"), *aff = xml_attr_get(c, "affiliation");
        struct jid j;
        if (jid == NULL || aff == NULL || jid_parse_str(p->a, jid, &j, NULL) < 0) {
            sm_error(p, XMPP_COND_BAD_REQUEST, "an affiliation has a jid and an affiliation");
            return;
        }
        bool owner = strcmp(jid_bare(p->a, &j), p->user->jid) == 0;
        if (owner ? strcmp(aff, "owner") != 0 : strcmp(aff, "member") && strcmp(aff, "none")) {
            sm_error(p, XMPP_COND_NOT_ACCEPTABLE, "only 'member' and 'none' may be set");
            return;
        }
    }
    for (c = xml_child(verb, NS_PUBSUB_OWNER, "affiliation"); c != NULL;
         c = xml_next(c, NS_PUBSUB_OWNER, "affiliation")) {
        struct jid j;
        if (jid_parse_str(p->a, xml_attr_get(c, "jid"), &j, NULL) < 0)
            continue;
        const char *bare = jid_bare(p->a, &j);
        if (strcmp(xml_attr_get(c, "affiliation"), "member") == 0)
            hmap_put(n->members, bare, n);
        else if (strcmp(bare, p->user->jid) != 0)
            hmap_del(n->members, bare);
    }
    pep_node_save(p->sm, p->user->jid, n);
    sm_iq_result(p, NULL);
}

static void do_affiliations(struct sm_pkt *p, struct xml_node *verb)
{
    struct pep_node *n = named_node(p, verb);
    if (n == NULL)
        return;
    if (strcmp(p->type, "set") == 0) {
        affiliations_set(p, n, verb);
        return;
    }
    struct xml_node *list;
    struct xml_node *ps = reply(p, "affiliations", n->name, &list);
    affiliation_xml(p, list, p->user->jid, "owner");
    struct hmap_iter it = {0};
    const char *k;
    while (hmap_next(n->members, &it, &k, NULL))
        affiliation_xml(p, list, k, "member");
    sm_iq_result(p, ps);
}

static void do_subscriptions(struct sm_pkt *p, struct xml_node *verb)
{
    if (strcmp(p->type, "set") == 0) {
        pep_error(p, XMPP_COND_FEATURE_NOT_IMPLEMENTED, "unsupported", "manage-subscriptions");
        return;
    }
    struct pep_node *n = named_node(p, verb);
    if (n == NULL)
        return;
    struct xml_node *list;
    struct xml_node *ps = reply(p, "subscriptions", n->name, &list);
    struct hmap_iter it = {0};
    const char *k;
    while (hmap_next(n->subs, &it, &k, NULL)) {
        struct xml_node *s = xml_elem_add(p->a, list, NS_PUBSUB_OWNER, "subscription");
        xml_attr_set(p->a, s, "jid", k);
        xml_attr_set(p->a, s, "subscription", "subscribed");
    }
    sm_iq_result(p, ps);
}

/* ---- the namespace ------------------------------------------------------------------- */

struct verb {
    const char *name;
    int set; /* 1: a set, 0: a get, -1: either */
    pep_pkt_fn *fn;
};

static const struct verb verbs[] = {
    {"configure", -1, do_configure},
    {"default", 0, do_default},
    {"delete", 1, do_delete},
    {"purge", 1, do_purge},
    {"affiliations", -1, do_affiliations},
    {"subscriptions", -1, do_subscriptions},
};

static void on_owner(struct sm_pkt *p, struct xml_node *ps)
{
    struct xml_node *verb = xml_first_elem(ps);
    const struct verb *v = NULL;
    for (size_t i = 0; verb != NULL && i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        if (xml_is(verb, NS_PUBSUB_OWNER, verbs[i].name))
            v = &verbs[i];
    }
    bool set = strcmp(p->type, "set") == 0;
    if (p->route != SM_FROM_SESSION) {
        sm_error(p, XMPP_COND_FORBIDDEN, "only the owner manages its nodes");
    } else if (v == NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "no pubsub#owner request this service knows");
    } else if (v->set >= 0 && v->set != (int)set) {
        sm_error(p, XMPP_COND_BAD_REQUEST, v->set ? "this request is a set" : "this is a get");
    } else {
        pep_with_nodes(p, p->user->jid, v->fn, verb);
    }
}

static const struct sm_iq_handler iqs[] = {
    {NS_PUBSUB_OWNER, SM_IQ_ACCOUNT | SM_IQ_USER, on_owner},
};

const struct sm_feature sm_feat_pep_owner = {
    .name = "pep_owner",
    .part_of = "pep",
    .order = 45,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
};
