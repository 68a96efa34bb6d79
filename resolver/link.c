/* SPDX-License-Identifier: MIT */
/* The router link: resolve requests in, answers and stanza errors out
 * (docs/protocol.md §9). A bad request gets an error and a log line; the
 * link and every other request carry on. */
#include "resolver.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "comp_client.h"
#include "comp_handshake.h"
#include "xml.h"

static void send_bytes(struct resolver *r, const struct buf *b)
{
    if (r->link == NULL || comp_client_send(r->link, b->data, b->len) < 0)
        log_warn(&r->lc, "router link down: an answer was dropped");
}

/* Writes `<iq type='T' id='' from='' to=''` (unterminated). */
static void iq_open(struct buf *b, const char *type, const char *id, const char *from,
                    const char *to)
{
    buf_append_str(b, "<iq");
    xml_append_attr(b, "type", type);
    if (id != NULL)
        xml_append_attr(b, "id", id);
    if (from != NULL)
        xml_append_attr(b, "from", from);
    xml_append_attr(b, "to", to);
}

static void reply_error(struct resolver *r, const struct xml_node *iq, enum xmpp_cond cond,
                        const char *text)
{
    struct buf b = BUF_INIT;
    iq_open(&b, "error", xml_attr_get(iq, "id"), xml_attr_get(iq, "to"), xml_attr_get(iq, "from"));
    buf_printf(&b, "><error type='%s'><%s xmlns='" XMPP_NS_STANZAS "'/>", xmpp_cond_type(cond),
               xmpp_cond_name(cond));
    if (text != NULL) {
        buf_append_str(&b, "<text xmlns='" XMPP_NS_STANZAS "'>");
        xml_escape(&b, text, strlen(text), false);
        buf_append_str(&b, "</text>");
    }
    buf_append_str(&b, "</error></iq>");
    send_bytes(r, &b);
    buf_fini(&b);
}

void rs_reply_answer(struct resolver *r, const struct rs_waiter *w, const char *domain,
                     const struct rs_answer *ans, long ttl, const char *source)
{
    struct buf b = BUF_INIT;
    iq_open(&b, "result", w->id, w->self, w->requester);
    buf_append_str(&b, "><resolved xmlns='" RS_NS "'");
    xml_append_attr(&b, "domain", domain);
    xml_append_attr(&b, "status", rs_status_name(ans->status));
    buf_printf(&b, " ttl='%ld'", ttl);
    xml_append_attr(&b, "source", source);
    buf_append_str(&b, ">");
    size_t *order = xcalloc(ans->ntargets + 1, sizeof(*order));
    rs_order(ans, order);
    for (size_t i = 0; i < ans->ntargets; i++) {
        const struct rs_target *t = &ans->targets[order[i]];
        buf_append_str(&b, "<target");
        xml_append_attr(&b, "host", t->host);
        buf_printf(&b, " port='%d'", t->port);
        xml_append_attr(&b, "tls", t->tls == RS_TLS_DIRECT ? "direct" : "starttls");
        buf_append_str(&b, ">");
        for (size_t j = 0; j < t->naddrs; j++) {
            buf_append_str(&b, "<address>");
            xml_escape(&b, t->addrs[j], strlen(t->addrs[j]), false);
            buf_append_str(&b, "</address>");
        }
        buf_append_str(&b, "</target>");
    }
    free(order);
    buf_append_str(&b, "</resolved></iq>");
    send_bytes(r, &b);
    buf_fini(&b);
    r->stats.answered++;
    log_debug(&r->lc, "%s: answered %s (%s, %s) to %s", domain, rs_status_name(ans->status), source,
              w->id ? w->id : "", w->requester);
}

static void on_resolve(struct resolver *r, const struct xml_node *iq, const struct xml_node *q)
{
    const char *from = xml_attr_get(iq, "from");
    const char *domain = xml_attr_get(q, "domain");
    char norm[RS_MAX_DOMAIN + 1];
    const char *why = NULL;
    r->stats.requests++;
    if (domain == NULL)
        why = "no domain attribute";
    if (why != NULL || !rs_domain_check(domain, norm, &why)) {
        r->stats.bad++;
        log_warn(&r->lc, "bad request from %s: %s", from, why);
        reply_error(r, iq, XMPP_COND_BAD_REQUEST, why);
        return;
    }
    struct rs_waiter w = {from, xml_attr_get(iq, "to"), xml_attr_get(iq, "id")};
    struct rs_answer *st = rs_static_answer(r, norm);
    if (st != NULL) {
        r->stats.static_hits++;
        rs_reply_answer(r, &w, norm, st, st->ttl, "static");
        rs_answer_free(&st);
        return;
    }
    long ttl = 0;
    const struct rs_answer *cached =
        r->cfg->cache_size > 0 ? rs_cache_get(r->cache, norm, rs_now(), &ttl) : NULL;
    if (cached != NULL) {
        r->stats.cache_hits++;
        rs_reply_answer(r, &w, norm, cached, ttl, "cache");
        return;
    }
    struct rs_waiter owned = {xstrdup(from), w.self ? xstrdup(w.self) : NULL,
                              w.id ? xstrdup(w.id) : NULL};
    if (rs_lookup_request(r, norm, &owned) < 0) {
        log_warn(&r->lc, "%s: %zu requests wait for DNS already; refused the one from %s", norm,
                 r->npending, from);
        reply_error(r, iq, XMPP_COND_RESOURCE_CONSTRAINT, "too many requests in flight");
        free((char *)owned.requester);
        free((char *)owned.self);
        free((char *)owned.id);
    }
}

static void on_iq(struct resolver *r, const struct xml_node *iq)
{
    const char *type = xml_attr_get(iq, "type");
    const char *from = xml_attr_get(iq, "from");
    if (type != NULL && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)) {
        log_debug(&r->lc, "ignored an iq %s from %s", type, from);
        return;
    }
    const struct xml_node *q = xml_first_elem(iq);
    if (type != NULL && strcmp(type, "get") == 0 && q != NULL && xml_is(q, RS_NS, "resolve") &&
        xml_next_elem(q) == NULL) {
        on_resolve(r, iq, q);
        return;
    }
    r->stats.bad++;
    if (type == NULL || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0)) {
        log_warn(&r->lc, "bad request from %s: iq type '%s'", from, type ? type : "");
        reply_error(r, iq, XMPP_COND_BAD_REQUEST, "iq type must be get or set");
        return;
    }
    log_warn(&r->lc, "unsupported request from %s: <%s xmlns='%s'/> in an iq %s", from,
             q ? q->name : "", q ? q->ns : "", type);
    reply_error(r, iq, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
}

static void on_stanza(struct comp_client *cc, struct xml_node *st, const char *raw, size_t len,
                      void *arg)
{
    struct resolver *r = arg;
    (void)cc;
    (void)raw;
    (void)len;
    if (strcmp(st->ns, PL_NS_ROUTER) == 0)
        return; /* no watch was asked for: nothing here is for us */
    if (xml_attr_get(st, "from") == NULL) {
        log_warn(&r->lc, "dropped a <%s/> without from", st->name);
        return;
    }
    const char *type = xml_attr_get(st, "type");
    if (strcmp(st->name, "iq") == 0) {
        on_iq(r, st);
    } else if (strcmp(st->name, "message") == 0 && (type == NULL || strcmp(type, "error") != 0)) {
        log_warn(&r->lc, "unsupported message from %s", xml_attr_get(st, "from"));
        struct buf b = BUF_INIT;
        buf_append_str(&b, "<message");
        xml_append_attr(&b, "type", "error");
        if (xml_attr_get(st, "id") != NULL)
            xml_append_attr(&b, "id", xml_attr_get(st, "id"));
        xml_append_attr(&b, "from", xml_attr_get(st, "to"));
        xml_append_attr(&b, "to", xml_attr_get(st, "from"));
        buf_append_str(&b, "><error type='cancel'><service-unavailable xmlns='" XMPP_NS_STANZAS
                           "'/></error></message>");
        send_bytes(r, &b);
        buf_fini(&b);
    }
}

static void on_up(struct comp_client *cc, void *arg)
{
    struct resolver *r = arg;
    (void)cc;
    log_notice(&r->lc, "connected to the router");
}

static void on_down(struct comp_client *cc, void *arg)
{
    struct resolver *r = arg;
    (void)cc;
    log_warn(&r->lc, "router link down; reconnecting");
}

int rs_link_start(struct resolver *r, struct err *err)
{
    const struct comp_cfg *cc = common_cfg_component(r->common, r->name);
    if (cc == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "no <component name='%s'> with a secret in the configuration", r->name);
    struct comp_client_cfg cfg = {
        .address = r->common->router_address,
        .port = (int)r->common->router_port,
        .name = r->name,
        .secret = cc->secret,
        .limits = {.max_stanza = 1 << 20},
    };
    static const struct comp_client_ops ops = {on_up, on_down, on_stanza, NULL};
    r->link = comp_client_new(r->base, &cfg, &ops, r);
    return 0;
}
