/* SPDX-License-Identifier: MIT */
/* The router link: session envelopes from c2s daemons, plain stanzas from
 * everyone else, and component notices. */
#include "sm_link.h"

#include <string.h>

#include "comp_client.h"
#include "comp_handshake.h"
#include "sm.h"
#include "xml.h"

static void on_up(struct comp_client *cc, void *arg)
{
    struct sm *sm = arg;
    (void)cc;
    log_notice(&sm->lc, "connected to the router");
}

/* Hands a component notice (NULL: the link is down) to every feature. */
static void features_notice(struct sm *sm, const struct xml_node *n)
{
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i]->on_component != NULL)
            sm->features[i]->on_component(sm, n);
    }
}

static void on_down(struct comp_client *cc, void *arg)
{
    struct sm *sm = arg;
    (void)cc;
    log_warn(&sm->lc, "router link down; sessions are kept for the c2s to resume");
    sm_sessions_link_down(sm);
    features_notice(sm, NULL);
}

static void on_notice(struct sm *sm, const struct xml_node *n)
{
    features_notice(sm, n);
    const char *name = xml_attr_get(n, "name");
    const char *state = xml_attr_get(n, "state");
    if (name == NULL || state == NULL)
        return;
    if (strcmp(state, "down") == 0)
        sm_sessions_c2s_down(sm, name);
    else if (strcmp(state, "up") == 0)
        sm_sessions_c2s_up(sm, name);
}

static void on_stanza(struct comp_client *cc, struct xml_node *st, const char *raw, size_t len,
                      void *arg)
{
    struct sm *sm = arg;
    (void)cc;
    if (strcmp(st->ns, PL_NS_ROUTER) == 0) {
        if (strcmp(st->name, "route") == 0)
            sm_session_on_envelope(sm, st, raw, len);
        else if (strcmp(st->name, "component") == 0)
            on_notice(sm, st);
        return;
    }
    if (strcmp(st->name, "message") && strcmp(st->name, "presence") && strcmp(st->name, "iq")) {
        log_info(&sm->lc, "ignored <%s/> from the router", st->name);
        return;
    }
    const char *to = xml_attr_get(st, "to");
    struct sm_pkt *p = sm_pkt_from_node(sm, st, SM_TO_USER);
    if (p == NULL)
        return;
    (void)to;
    sm_dispatch(sm, p);
}

int sm_link_start(struct sm *sm, struct err *err)
{
    const struct comp_cfg *cc = common_cfg_component(sm->common, sm->name);
    if (cc == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "no <component name='%s'> with a secret in the configuration", sm->name);
    struct comp_client_cfg cfg = {
        .address = sm->common->router_address,
        .port = (int)sm->common->router_port,
        .name = sm->name,
        .secret = cc->secret,
        .binds = sm->common->domains,
        .nbinds = sm->common->ndomains,
        .watch = true,
        .limits = {.max_stanza = 1 << 20},
    };
    static const struct comp_client_ops ops = {on_up, on_down, on_stanza, NULL};
    sm->link = comp_client_new(sm->base, &cfg, &ops, sm);
    return 0;
}

int sm_link_send(struct sm *sm, const char *data, size_t len)
{
    if (sm->link == NULL)
        return -1;
    return comp_client_send(sm->link, data, len);
}
