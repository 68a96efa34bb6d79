/* SPDX-License-Identifier: MIT */
/* The s2s's link to the router: it binds the default route (*), so every
 * stanza for a domain no local component serves arrives here; answers of
 * parley-resolver arrive here too. Stanzas from remote servers and bounces
 * leave through it. */
#include "s2s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "comp_client.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "jid.h"
#include "xml.h"

#define LINK_MAX_STANZA (2u << 20)

static bool is_stanza_name(const char *name)
{
    return strcmp(name, "message") == 0 || strcmp(name, "presence") == 0 || strcmp(name, "iq") == 0;
}

/* Stanzas keep the namespace of the stream they travel in; the tree's own
 * (client, component or server) becomes the one of the next stream. */
static void rebase_ns(struct xml_node *n, const char *from_ns, const char *to_ns)
{
    if (n->kind != XML_ELEM)
        return;
    if (strcmp(n->ns, from_ns) == 0)
        n->ns = to_ns;
    for (struct xml_node *c = n->first; c != NULL; c = c->next)
        rebase_ns(c, from_ns, to_ns);
}

void router_link_send_node(struct s2s *s2s, const struct xml_node *st)
{
    struct buf b = BUF_INIT;
    xml_serialize(&b, st, XML_NS_COMP);
    (void)router_link_flushed(s2s); /* the last look before more is queued */
    if (s2s->cc == NULL || comp_client_send(s2s->cc, b.data, b.len) < 0)
        log_warn(&s2s->lc, "router link down: <%s/> from %s to %s lost", st->name,
                 xml_attr_get(st, "from") ? xml_attr_get(st, "from") : "?",
                 xml_attr_get(st, "to") ? xml_attr_get(st, "to") : "?");
    else
        s2s->link_bytes += b.len;
    buf_fini(&b);
}

/* What a lost link had not written is gone with it, and comp_client has
 * dropped its buffer by the time on_down runs: so the count of written
 * bytes is taken while the link is up, and frozen while it is down. */
uint64_t router_link_flushed(struct s2s *s2s)
{
    if (s2s->cc != NULL && comp_client_is_up(s2s->cc)) {
        size_t pending = comp_client_pending(s2s->cc);
        uint64_t now = pending < s2s->link_bytes ? s2s->link_bytes - pending : 0;
        if (now > s2s->link_flushed)
            s2s->link_flushed = now;
    }
    return s2s->link_flushed;
}

static void bounce_node(struct s2s *s2s, struct arena *a, struct xml_node *st, enum xmpp_cond cond,
                        const char *text)
{
    const char *type = xml_attr_get(st, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        log_debug(&s2s->lc, "error <%s/> to %s not bounced (%s)", st->name,
                  xml_attr_get(st, "to") ? xml_attr_get(st, "to") : "?", xmpp_cond_name(cond));
        return;
    }
    const char *from = xml_attr_get(st, "from");
    const char *to = xml_attr_get(st, "to");
    if (from == NULL)
        return;
    from = arena_strdup(a, from);
    to = to ? arena_strdup(a, to) : NULL;
    xml_attr_set(a, st, "from", to);
    xml_attr_set(a, st, "to", from);
    xml_attr_set(a, st, "type", "error");
    struct xml_node *e = xml_elem_add(a, st, NULL, "error");
    xml_attr_set(a, e, "type", xmpp_cond_type(cond));
    xml_elem_add(a, e, XMPP_NS_STANZAS, xmpp_cond_name(cond));
    if (text != NULL && text[0] != '\0') {
        struct xml_node *t = xml_elem_add(a, e, XMPP_NS_STANZAS, "text");
        xml_text_add(a, t, text, strlen(text));
    }
    s2s->stats.bounced++;
    router_link_send_node(s2s, st);
}

void router_link_bounce(struct s2s *s2s, const char *data, size_t len, enum xmpp_cond cond,
                        const char *text)
{
    (void)len;
    struct arena *a = arena_new(0);
    struct xml_node *st = xml_parse_fragment(a, data);
    if (st == NULL)
        log_error(&s2s->lc, "cannot parse a queued stanza to bounce it");
    else
        bounce_node(s2s, a, st, cond, text);
    arena_free(&a);
}

char *router_link_resolve(struct s2s *s2s, const char *domain)
{
    char *ace = NULL;
    if (idn2_to_ascii_8z(domain, &ace, IDN2_NONTRANSITIONAL) != IDN2_OK)
        return NULL;
    char id[32];
    snprintf(id, sizeof(id), "res%llu", (unsigned long long)++s2s->next_id);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<iq type='get'");
    xml_append_attr(&b, "id", id);
    xml_append_attr(&b, "from", s2s->name);
    xml_append_attr(&b, "to", s2s->cfg->resolver);
    buf_append_str(&b, "><resolve xmlns='" S2S_NS_RESOLVER "'");
    xml_append_attr(&b, "domain", ace);
    buf_append_str(&b, "/></iq>");
    free(ace);
    int rc = s2s->cc != NULL ? comp_client_send(s2s->cc, b.data, b.len) : -1;
    buf_fini(&b);
    return rc < 0 ? NULL : xstrdup(id);
}

static void on_resolver_answer(struct s2s *s2s, const struct xml_node *iq, const char *id)
{
    struct route *r = hmap_del(s2s->resolving, id);
    if (r == NULL)
        return;
    const char *type = xml_attr_get(iq, "type");
    const struct xml_node *res = xml_child(iq, S2S_NS_RESOLVER, "resolved");
    if (type != NULL && strcmp(type, "result") == 0 && res != NULL) {
        route_on_resolved(r, res, XMPP_COND_NONE);
        return;
    }
    const struct xml_node *e = xml_child(iq, NULL, "error");
    const struct xml_node *c = e ? xml_child(e, XMPP_NS_STANZAS, NULL) : NULL;
    log_warn(&s2s->lc, "the resolver could not resolve %s: %s", r->remote,
             c ? c->name : "no answer");
    route_on_resolved(r, NULL,
                      c ? xmpp_cond_from_name(c->name, false) : XMPP_COND_UNDEFINED_CONDITION);
}

/* A stanza for a remote domain. Its 'from' must be a domain we host: the
 * router sends us only what no local component serves, and a remote
 * server accepts only what we can prove. */
static void from_router(struct s2s *s2s, struct xml_node *st)
{
    struct arena *a = arena_new(0);
    const char *from = xml_attr_get(st, "from");
    const char *to = xml_attr_get(st, "to");
    struct jid jf, jt;
    struct err err = {0};
    if (from == NULL || to == NULL || jid_parse_str(a, from, &jf, &err) < 0 ||
        jid_parse_str(a, to, &jt, &err) < 0) {
        log_info(&s2s->lc, "<%s/> from the router with bad addresses dropped: %s", st->name,
                 err.text[0] ? err.text : "from or to missing");
        goto out;
    }
    if (s2s_local_domain(s2s, jt.domain) != NULL) {
        struct buf b = BUF_INIT;
        xml_serialize(&b, st, XML_NS_COMP);
        router_link_bounce(s2s, b.data, b.len, XMPP_COND_SERVICE_UNAVAILABLE,
                           "this domain is hosted here but its session manager is not running");
        buf_fini(&b);
        goto out;
    }
    const char *local = s2s_local_domain(s2s, jf.domain);
    if (local == NULL) {
        struct buf b = BUF_INIT;
        xml_serialize(&b, st, XML_NS_COMP);
        log_info(&s2s->lc, "<%s/> from %s: not a hosted domain, bounced", st->name, from);
        router_link_bounce(s2s, b.data, b.len, XMPP_COND_NOT_ALLOWED,
                           "only hosted domains may send to remote servers");
        buf_fini(&b);
        goto out;
    }
    rebase_ns(st, st->ns, XML_NS_SERVER);
    struct buf b = BUF_INIT;
    xml_serialize(&b, st, XML_NS_SERVER);
    route_send(route_get(s2s, local, jt.domain), b.data, b.len);
    buf_fini(&b);
out:
    arena_free(&a);
}

/* ---- who serves what: router notices (docs/protocol.md §4) ---------------- */

/* The names one connected component has bound. */
struct comp_names {
    char **names;
    size_t n;
};

static void unserve(struct s2s *s2s, struct comp_names *cn)
{
    for (size_t i = 0; i < cn->n; i++) {
        struct served *sv = hmap_get(s2s->served, cn->names[i]);
        if (sv != NULL && --sv->count == 0) {
            hmap_del(s2s->served, cn->names[i]);
            free(sv);
        }
        free(cn->names[i]);
    }
    free(cn->names);
    free(cn);
}

static void forget_all(struct s2s *s2s)
{
    struct hmap_iter it = {0};
    void *v;
    while (s2s->comps != NULL && hmap_next(s2s->comps, &it, NULL, &v))
        unserve(s2s, v);
    hmap_free(&s2s->comps);
    s2s->comps = hmap_new();
}

/* Only names that look like domains count: a bare component name ("sm",
 * "c2s") must never become a destination a remote server may address. */
static bool domain_like(const char *name)
{
    return strchr(name, '.') != NULL && strcmp(name, "*") != 0;
}

static void on_notice(struct s2s *s2s, const struct xml_node *n)
{
    const char *name = xml_attr_get(n, "name");
    const char *state = xml_attr_get(n, "state");
    if (name == NULL || state == NULL || strcmp(name, s2s->name) == 0)
        return;
    struct comp_names *old = hmap_del(s2s->comps, name);
    if (old != NULL)
        unserve(s2s, old);
    if (strcmp(state, "up") != 0)
        return;
    struct comp_names *cn = xcalloc(1, sizeof(*cn));
    for (const struct xml_node *b = xml_child(n, PL_NS_ROUTER, "bind"); b != NULL;
         b = xml_next(b, PL_NS_ROUTER, "bind")) {
        const char *bn = xml_attr_get(b, "name");
        if (bn == NULL || !domain_like(bn) || strcmp(bn, name) == 0)
            continue;
        cn->names = xrealloc(cn->names, (cn->n + 1) * sizeof(*cn->names));
        cn->names[cn->n++] = xstrdup(bn);
        struct served *sv = hmap_get(s2s->served, bn);
        if (sv == NULL) {
            sv = xcalloc(1, sizeof(*sv) + strlen(bn) + 1);
            memcpy(sv->name, bn, strlen(bn) + 1);
            hmap_put(s2s->served, sv->name, sv);
        }
        sv->count++;
    }
    hmap_put(s2s->comps, name, cn);
}

static void on_stanza(struct comp_client *cc, struct xml_node *st, const char *raw, size_t len,
                      void *arg)
{
    struct s2s *s2s = arg;
    (void)cc;
    (void)raw;
    (void)len;
    if (xml_is(st, PL_NS_ROUTER, "component")) {
        on_notice(s2s, st);
        return;
    }
    if (!is_stanza_name(st->name) || strcmp(st->ns, PL_NS_ROUTER) == 0) {
        log_debug(&s2s->lc, "ignored <%s xmlns='%s'/> from the router", st->name, st->ns);
        return;
    }
    const char *id = xml_attr_get(st, "id");
    const char *to = xml_attr_get(st, "to");
    if (strcmp(st->name, "iq") == 0 && id != NULL && to != NULL && strcmp(to, s2s->name) == 0) {
        on_resolver_answer(s2s, st, id);
        return;
    }
    from_router(s2s, st);
}

static void on_up(struct comp_client *cc, void *arg)
{
    struct s2s *s2s = arg;
    (void)cc;
    log_notice(&s2s->lc, "connected to the router as %s", s2s->name);
}

static void on_down(struct comp_client *cc, void *arg)
{
    struct s2s *s2s = arg;
    (void)cc;
    log_warn(&s2s->lc, "router link down");
    ack_in_link_lost(s2s);
    forget_all(s2s);
}

static void on_bind_error(struct comp_client *cc, const char *name, const char *cond, void *arg)
{
    struct s2s *s2s = arg;
    (void)cc;
    log_error(&s2s->lc,
              "the router refused to bind %s (%s): no stanza for remote domains will "
              "reach this s2s; check <component name='%s'><bind>*</bind>",
              name, cond, s2s->name);
}

int router_link_start(struct s2s *s2s, struct err *err)
{
    const struct comp_cfg *comp = common_cfg_component(s2s->common, s2s->name);
    if (comp == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "no <component name='%s'> with a secret: the s2s cannot join the router",
                       s2s->name);
    static const char *const binds[] = {"*"};
    size_t max =
        s2s->cfg->max_stanza * 2 > LINK_MAX_STANZA ? s2s->cfg->max_stanza * 2 : LINK_MAX_STANZA;
    struct comp_client_cfg cfg = {
        .address = s2s->common->router_address,
        .port = (int)s2s->common->router_port,
        .name = s2s->name,
        .secret = comp->secret,
        .binds = binds,
        .nbinds = 1,
        .watch = true,
        .limits = {.max_stanza = max},
    };
    static const struct comp_client_ops ops = {on_up, on_down, on_stanza, on_bind_error};
    s2s->comps = hmap_new();
    s2s->served = hmap_new();
    s2s->cc = comp_client_new(s2s->base, &cfg, &ops, s2s);
    return 0;
}

void router_link_free(struct s2s *s2s)
{
    comp_client_free(&s2s->cc);
    forget_all(s2s);
    hmap_free(&s2s->comps);
    hmap_free(&s2s->served);
}
