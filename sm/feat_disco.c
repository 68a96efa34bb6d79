/* SPDX-License-Identifier: MIT */
/* Service discovery (XEP-0030) for the server and for accounts: the
 * identity and every enabled feature's vars. */
#include "sm.h"

#include <string.h>

#include "arena.h"
#include "xml.h"

#define NS_INFO  "http://jabber.org/protocol/disco#info"
#define NS_ITEMS "http://jabber.org/protocol/disco#items"

static void add_var(struct sm_pkt *p, struct xml_node *q, const char *var)
{
    struct xml_node *f = xml_elem_add(p->a, q, NS_INFO, "feature");
    xml_attr_set(p->a, f, "var", var);
}

static void info(struct sm_pkt *p, struct xml_node *req, bool server)
{
    if (strcmp(p->type, "get") != 0) {
        sm_error(p, XMPP_COND_NOT_ALLOWED, NULL);
        return;
    }
    if (xml_attr_get(req, "node") != NULL) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
        return;
    }
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
    sm_iq_result(p, q);
}

static void on_info(struct sm_pkt *p, struct xml_node *req)
{
    bool server = p->to.local == NULL;
    if (!server && p->route == SM_TO_USER) {
        /* another user's account: only for contacts it shares presence with */
        struct sm_item *it = sm_user_item(p->user, jid_bare(p->a, &p->from));
        if (p->user->state != SM_USER_READY || it == NULL || !it->sub_from) {
            sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
            return;
        }
    }
    if (!p->has_to && p->route == SM_FROM_SESSION)
        server = false; /* no 'to' from a client: its own account */
    info(p, req, server);
}

static void on_items(struct sm_pkt *p, struct xml_node *req)
{
    (void)req;
    if (strcmp(p->type, "get") != 0) {
        sm_error(p, XMPP_COND_NOT_ALLOWED, NULL);
        return;
    }
    sm_iq_result(p, xml_elem_new(p->a, NS_ITEMS, "query"));
}

static const struct sm_iq_handler iqs[] = {
    {NS_INFO, SM_IQ_SERVER | SM_IQ_ACCOUNT | SM_IQ_USER, on_info},
    {NS_ITEMS, SM_IQ_SERVER | SM_IQ_ACCOUNT, on_items},
};

const struct sm_feature sm_feat_disco = {
    .name = "disco",
    .order = 50,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
};
