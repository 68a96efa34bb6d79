/* SPDX-License-Identifier: MIT */
/* Names on the router: bind and unbind under the configured ACL, the route
 * table they fill, and the component up/down notices sent to watchers. */
#include "router.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "hmap.h"
#include "xml.h"

struct route *route_get(const struct router *r, const char *name, size_t len)
{
    return hmap_getn(r->routes, name, len);
}

bool bind_allowed(const struct router *r, const char *comp, const char *name)
{
    if (strcmp(comp, name) == 0)
        return true;
    const struct comp_cfg *cc = common_cfg_component(r->common, comp);
    if (cc == NULL)
        return false;
    for (size_t i = 0; i < cc->nbinds; i++) {
        if (strcasecmp(cc->binds[i], name) == 0)
            return true;
    }
    return false;
}

static bool has_bind(const struct peer *c, const char *name)
{
    for (size_t i = 0; i < c->nbinds; i++) {
        if (strcmp(c->binds[i], name) == 0)
            return true;
    }
    return false;
}

bool bind_add(struct peer *c, const char *name)
{
    if (has_bind(c, name))
        return false;
    struct route *rt = hmap_get(c->r->routes, name);
    if (rt == NULL) {
        rt = xcalloc(1, sizeof(*rt));
        rt->name = xstrdup(name);
        hmap_put(c->r->routes, name, rt);
    }
    if (rt->n == rt->cap) {
        rt->cap = rt->cap ? rt->cap * 2 : 2;
        rt->conns = xrealloc(rt->conns, rt->cap * sizeof(*rt->conns));
    }
    rt->conns[rt->n++] = c;
    if (c->nbinds == c->bind_cap) {
        c->bind_cap = c->bind_cap ? c->bind_cap * 2 : 4;
        c->binds = xrealloc(c->binds, c->bind_cap * sizeof(*c->binds));
    }
    c->binds[c->nbinds++] = xstrdup(name);
    if (strcmp(name, "*") == 0)
        c->is_default = true;
    return true;
}

static void route_drop_conn(struct router *r, const char *name, struct peer *c)
{
    struct route *rt = hmap_get(r->routes, name);
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->n; i++) {
        if (rt->conns[i] == c) {
            rt->conns[i] = rt->conns[--rt->n];
            break;
        }
    }
    if (rt->n == 0) {
        hmap_del(r->routes, name);
        free(rt->conns);
        free(rt->name);
        free(rt);
    }
}

static void bind_remove(struct peer *c, size_t i)
{
    route_drop_conn(c->r, c->binds[i], c);
    if (strcmp(c->binds[i], "*") == 0)
        c->is_default = false;
    free(c->binds[i]);
    c->binds[i] = c->binds[--c->nbinds];
}

void bind_remove_all(struct peer *c)
{
    while (c->nbinds > 0)
        bind_remove(c, c->nbinds - 1);
}

static void reply(struct peer *c, const char *elem, const char *name, const char *id,
                  enum xmpp_cond cond)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "<%s xmlns='" PL_NS_ROUTER "'", elem);
    if (name != NULL)
        xml_append_attr(&b, "name", name);
    if (id != NULL)
        xml_append_attr(&b, "id", id);
    if (cond == XMPP_COND_NONE) {
        buf_append_str(&b, " type='result'/>");
    } else {
        buf_printf(&b,
                   " type='error'><error type='%s'><%s xmlns='" XMPP_NS_STANZAS "'/></error></%s>",
                   xmpp_cond_type(cond), xmpp_cond_name(cond), elem);
    }
    peer_write(c, b.data, b.len);
    buf_fini(&b);
}

static char *lower_dup(const char *s)
{
    char *p = xstrdup(s);
    for (char *q = p; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    return p;
}

static void on_bind(struct peer *c, const struct xml_node *st)
{
    const char *raw_name = xml_attr_get(st, "name");
    const char *id = xml_attr_get(st, "id");
    if (raw_name == NULL || raw_name[0] == '\0') {
        reply(c, "bind", NULL, id, XMPP_COND_BAD_REQUEST);
        return;
    }
    char *name = lower_dup(raw_name);
    if (!bind_allowed(c->r, c->name, name)) {
        log_warn(&c->lc, "bind %s refused: not in the component's <bind> list", name);
        reply(c, "bind", name, id, XMPP_COND_NOT_ALLOWED);
    } else {
        if (bind_add(c, name)) {
            log_info(&c->lc, "bound %s", name);
            notice_component(c->r, c, true);
        }
        reply(c, "bind", name, id, XMPP_COND_NONE);
    }
    free(name);
}

static void on_unbind(struct peer *c, const struct xml_node *st)
{
    const char *raw_name = xml_attr_get(st, "name");
    const char *id = xml_attr_get(st, "id");
    if (raw_name == NULL || raw_name[0] == '\0') {
        reply(c, "unbind", NULL, id, XMPP_COND_BAD_REQUEST);
        return;
    }
    char *name = lower_dup(raw_name);
    size_t i = 0;
    while (i < c->nbinds && strcmp(c->binds[i], name) != 0)
        i++;
    if (strcmp(name, c->name) == 0) {
        reply(c, "unbind", name, id, XMPP_COND_NOT_ALLOWED);
    } else if (i == c->nbinds) {
        reply(c, "unbind", name, id, XMPP_COND_ITEM_NOT_FOUND);
    } else {
        bind_remove(c, i);
        log_info(&c->lc, "unbound %s", name);
        reply(c, "unbind", name, id, XMPP_COND_NONE);
        notice_component(c->r, c, true);
    }
    free(name);
}

static void notice_build(struct buf *b, const struct peer *subject, bool up)
{
    buf_append_str(b, "<component xmlns='" PL_NS_ROUTER "'");
    xml_append_attr(b, "name", subject->name);
    xml_append_attr(b, "state", up ? "up" : "down");
    if (!up || subject->nbinds == 0) {
        buf_append_str(b, "/>");
        return;
    }
    buf_append_char(b, '>');
    for (size_t i = 0; i < subject->nbinds; i++) {
        buf_append_str(b, "<bind");
        xml_append_attr(b, "name", subject->binds[i]);
        buf_append_str(b, "/>");
    }
    buf_append_str(b, "</component>");
}

void notice_component(struct router *r, struct peer *subject, bool up)
{
    struct buf b = BUF_INIT;
    notice_build(&b, subject, up);
    for (struct peer *c = r->conns; c != NULL; c = c->next) {
        if (c != subject && c->watching && c->state == PEER_READY)
            peer_write(c, b.data, b.len);
    }
    buf_fini(&b);
}

static void on_watch(struct peer *c)
{
    if (c->watching)
        return;
    c->watching = true;
    struct buf b = BUF_INIT;
    for (struct peer *o = c->r->conns; o != NULL; o = o->next) {
        if (o != c && o->state == PEER_READY)
            notice_build(&b, o, true);
    }
    if (b.len > 0)
        peer_write(c, b.data, b.len);
    buf_fini(&b);
}

void bind_on_element(struct peer *c, const struct xml_node *st)
{
    if (strcmp(st->name, "bind") == 0)
        on_bind(c, st);
    else if (strcmp(st->name, "unbind") == 0)
        on_unbind(c, st);
    else if (strcmp(st->name, "watch") == 0)
        on_watch(c);
    else
        peer_stream_error(c, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                          "unknown router element <%s/>", st->name);
}

void bind_recheck_acl(struct router *r)
{
    for (struct peer *c = r->conns; c != NULL; c = c->next) {
        if (c->state != PEER_READY)
            continue;
        if (common_cfg_component(r->common, c->name) == NULL)
            log_warn(&c->lc,
                     "component %s is no longer configured; it stays connected until "
                     "it disconnects",
                     c->name);
        bool changed = false;
        for (size_t i = 0; i < c->nbinds;) {
            if (!bind_allowed(r, c->name, c->binds[i])) {
                log_warn(&c->lc, "unbinding %s: no longer allowed by the configuration",
                         c->binds[i]);
                bind_remove(c, i);
                changed = true;
            } else {
                i++;
            }
        }
        if (changed)
            notice_component(r, c, true);
    }
}
