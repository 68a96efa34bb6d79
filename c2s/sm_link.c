/* SPDX-License-Identifier: MIT */
/* The c2s's link to the router (XEP-0114 through comp_client): session
 * envelopes in, component notices (who serves which domain) turned into
 * session suspends and resumes, and back-pressure on the link. */
#include "c2s.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "comp_client.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "xml.h"

#define ROUTER_OUTPUT_HIGH (4u << 20) /* clients pause above this many queued bytes */
#define ENVELOPE_MAX       (2u << 20)

/* The names a connected component has bound (from its notices). */
struct comp_names {
    char **names;
    size_t n;
};

static void names_free(struct c2s *c2s, struct comp_names *cn)
{
    for (size_t i = 0; i < cn->n; i++) {
        uintptr_t k = (uintptr_t)hmap_get(c2s->sm.served, cn->names[i]);
        if (k <= 1)
            hmap_del(c2s->sm.served, cn->names[i]);
        else
            hmap_put(c2s->sm.served, cn->names[i], (void *)(k - 1));
        free(cn->names[i]);
    }
    free(cn->names);
    free(cn);
}

static void forget(struct c2s *c2s, const char *name)
{
    struct comp_names *cn = hmap_del(c2s->sm.comps, name);
    if (cn != NULL)
        names_free(c2s, cn);
}

static void forget_all(struct c2s *c2s)
{
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(c2s->sm.comps, &it, NULL, &v))
        names_free(c2s, v);
    hmap_free(&c2s->sm.comps);
    c2s->sm.comps = hmap_new();
}

/* <component name='sm-1' state='up'><bind name='example.org'/>...</component> */
static void on_notice(struct c2s *c2s, const struct xml_node *n)
{
    const char *name = xml_attr_get(n, "name");
    const char *state = xml_attr_get(n, "state");
    if (name == NULL || state == NULL || strcmp(name, c2s->name) == 0)
        return;
    if (strcmp(state, "up") != 0) {
        const struct comp_names *gone = hmap_get(c2s->sm.comps, name);
        log_info(&c2s->lc, "component %s is down", name);
        sessions_link_down(c2s, name, gone ? (const char *const *)gone->names : NULL,
                           gone ? gone->n : 0);
        forget(c2s, name);
        return;
    }
    forget(c2s, name);
    struct comp_names *cn = xcalloc(1, sizeof(*cn));
    for (const struct xml_node *b = xml_child(n, PL_NS_ROUTER, "bind"); b != NULL;
         b = xml_next(b, PL_NS_ROUTER, "bind")) {
        const char *bn = xml_attr_get(b, "name");
        if (bn == NULL)
            continue;
        cn->names = xrealloc(cn->names, (cn->n + 1) * sizeof(*cn->names));
        cn->names[cn->n++] = xstrdup(bn);
        uintptr_t k = (uintptr_t)hmap_get(c2s->sm.served, bn);
        hmap_put(c2s->sm.served, bn, (void *)(k + 1));
    }
    hmap_put(c2s->sm.comps, name, cn);
    log_debug(&c2s->lc, "component %s is up with %zu names", name, cn->n);
    for (size_t i = 0; i < cn->n; i++) {
        if (c2s_hosted_domain(c2s, cn->names[i]) != NULL)
            sessions_domain_up(c2s, c2s_hosted_domain(c2s, cn->names[i]));
    }
}

static void on_up(struct comp_client *cc, void *arg)
{
    struct c2s *c2s = arg;
    (void)cc;
    log_notice(&c2s->lc, "connected to the router as %s", c2s->name);
}

static void on_down(struct comp_client *cc, void *arg)
{
    struct c2s *c2s = arg;
    (void)cc;
    forget_all(c2s);
    sessions_link_down(c2s, NULL, NULL, 0);
}

static void on_stanza(struct comp_client *cc, struct xml_node *st, const char *raw, size_t len,
                      void *arg)
{
    struct c2s *c2s = arg;
    (void)cc;
    (void)raw;
    (void)len;
    if (xml_is(st, PL_NS_ROUTER, "route"))
        session_on_envelope(c2s, st);
    else if (xml_is(st, PL_NS_ROUTER, "component"))
        on_notice(c2s, st);
    else
        log_debug(&c2s->lc, "ignored <%s xmlns='%s'/> from the router", st->name, st->ns);
}

int sm_link_start(struct c2s *c2s, struct err *err)
{
    const struct comp_cfg *comp = common_cfg_component(c2s->common, c2s->name);
    if (comp == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "no <component name='%s'> with a secret: the c2s cannot join the router",
                       c2s->name);
    c2s->sm.comps = hmap_new();
    c2s->sm.served = hmap_new();
    size_t max = c2s->cfg->max_stanza * 2 > ENVELOPE_MAX ? c2s->cfg->max_stanza * 2 : ENVELOPE_MAX;
    struct comp_client_cfg cfg = {
        .address = c2s->common->router_address,
        .port = (int)c2s->common->router_port,
        .name = c2s->name,
        .secret = comp->secret,
        .watch = true,
        .limits = {.max_stanza = max},
    };
    static const struct comp_client_ops ops = {on_up, on_down, on_stanza, NULL};
    c2s->sm.cc = comp_client_new(c2s->base, &cfg, &ops, c2s);
    return 0;
}

void sm_link_free(struct c2s *c2s)
{
    comp_client_free(&c2s->sm.cc);
    if (c2s->sm.comps != NULL) {
        forget_all(c2s);
        hmap_free(&c2s->sm.comps);
    }
    hmap_free(&c2s->sm.served);
}

int sm_link_send(struct c2s *c2s, const char *data, size_t len)
{
    if (c2s->sm.cc == NULL)
        return -1;
    return comp_client_send(c2s->sm.cc, data, len);
}

bool sm_link_up(const struct c2s *c2s)
{
    return c2s->sm.cc != NULL && comp_client_is_up(c2s->sm.cc);
}

bool sm_link_domain_served(const struct c2s *c2s, const char *domain)
{
    return sm_link_up(c2s) && hmap_get(c2s->sm.served, domain) != NULL;
}

bool sm_link_congested(const struct c2s *c2s)
{
    return c2s->sm.cc != NULL && comp_client_pending(c2s->sm.cc) > ROUTER_OUTPUT_HIGH;
}
