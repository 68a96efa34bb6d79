/* SPDX-License-Identifier: MIT */
/* The receiving side of a server stream: the header and features,
 * STARTTLS, then SASL EXTERNAL or dialback, then stanzas, each checked
 * (its 'from' must be a domain this stream authenticated, its 'to' one we
 * host) and handed to the router. */
#include "s2s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "comp_client.h"
#include "hmap.h"
#include "jid.h"
#include "xml.h"
#include "xstream.h"

void in_accept(struct s2s *s2s, int fd, bool direct_tls)
{
    struct s2s_conn *sc = sconn_new(s2s, fd, false);
    sc->direct_tls = direct_tls;
    sc->authed = hmap_new();
    sc->pairs = hmap_new();
    s2s->stats.in_accepted++;
    log_ctx_set(&sc->lc, "s2s in %s", conn_peer(sc->conn));
    log_debug(&sc->lc, "connection accepted%s", direct_tls ? " (direct TLS)" : "");
    if (s2s->stopping || (direct_tls && s2s->creds == NULL)) {
        sconn_close(sc, "not accepting");
        return;
    }
    sc->state = direct_tls ? SC_TLS : SC_WAIT_HEADER;
    if (direct_tls) {
        struct err err = {0};
        if (conn_starttls_server(sc->conn, s2s->creds, &err) < 0) {
            log_warn(&sc->lc, "cannot start TLS: %s", err.text);
            sconn_close(sc, "TLS setup failed");
        }
    }
}

void in_on_tls(struct s2s_conn *sc)
{
    (void)sc; /* the peer speaks first: its new stream header */
}

static bool version_ok(const char *v)
{
    return v != NULL && v[0] == '1' && v[1] == '.';
}

static bool require_tls(const struct s2s_conn *sc)
{
    enum s2s_auth auth;
    bool req;
    s2s_policy(sc->s2s->cfg, sc->remote, &auth, &req);
    return req;
}

static void send_features(struct s2s_conn *sc)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<stream:features>");
    bool tls_first = !sc->tls && require_tls(sc);
    if (!sc->tls && sc->s2s->creds != NULL)
        buf_printf(&b, "<starttls xmlns='" S2S_NS_TLS "'>%s</starttls>",
                   tls_first ? "<required/>" : "");
    if (!tls_first && !sc->sasl_done) {
        if (sasl_in_offer(sc))
            buf_append_str(&b, "<mechanisms xmlns='" S2S_NS_SASL
                               "'><mechanism>EXTERNAL</mechanism></mechanisms>");
        buf_append_str(&b, "<dialback xmlns='" S2S_NS_DB_FEAT "'><errors/></dialback>");
    }
    /* XEP-0288 §2: offered until the peer authenticates, never before TLS
     * when TLS is required. */
    if (!tls_first && sc->s2s->cfg->bidi && !sc->sasl_done && hmap_count(sc->authed) == 0)
        buf_append_str(&b, "<bidi xmlns='" S2S_NS_BIDI_FEAT "'/>");
    if (!tls_first)
        buf_append_str(&b, "<sm xmlns='" S2S_NS_SM "'/>");
    buf_append_str(&b, "</stream:features>");
    sconn_write(sc, b.data, b.len);
    buf_fini(&b);
}

int in_on_open(struct s2s_conn *sc, const struct xml_node *hdr)
{
    struct s2s *s2s = sc->s2s;
    struct arena *a = xstream_arena(sc->xs);
    const char *ns = xstream_default_ns(sc->xs);
    const char *to = xml_attr_get(hdr, "to");
    const char *from = xml_attr_get(hdr, "from");
    struct jid j;
    const char *local = NULL;
    if (to != NULL && jid_parse_str(a, to, &j, NULL) == 0 && j.local == NULL && j.resource == NULL)
        local = s2s_local_domain(s2s, j.domain);
    if (local != NULL) {
        free(sc->local);
        sc->local = xstrdup(local);
    }
    /* RFC 6120 §4.7.1: 'from' is how the peer names itself; a header without
     * one can still carry dialback, which names domains per element. */
    if (from != NULL && jid_parse_str(a, from, &j, NULL) == 0 && j.local == NULL &&
        j.resource == NULL) {
        free(sc->remote);
        sc->remote = xstrdup(j.domain);
    }
    if (strcmp(ns, XML_NS_SERVER) != 0) {
        sconn_stream_error(sc, XMPP_COND_STREAM_INVALID_NAMESPACE,
                           "the stream's default namespace is '%.100s', not '" XML_NS_SERVER "'",
                           ns);
        return -1;
    }
    if (local == NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_HOST_UNKNOWN,
                           "'%.200s' is not a domain served here", to ? to : "(no 'to')");
        return -1;
    }
    if (!version_ok(xml_attr_get(hdr, "version"))) {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_VERSION, "version '%.20s' is not 1.x",
                           xml_attr_get(hdr, "version") ? xml_attr_get(hdr, "version") : "(none)");
        return -1;
    }
    log_ctx_set(&sc->lc, "s2s in %s %s->%s", conn_peer(sc->conn), sc->remote ? sc->remote : "?",
                sc->local);
    sconn_send_header(sc, sc->local, sc->remote);
    sc->state = SC_OPEN;
    send_features(sc);
    /* After SASL, the restarted stream is the first we may send on. */
    if (sc->sasl_done)
        in_bidi_attach_all(sc);
    return 0;
}

void in_authenticated(struct s2s_conn *sc, const char *local, const char *remote)
{
    char key[1100];
    hmap_put(sc->authed, remote, (void *)1);
    snprintf(key, sizeof(key), "%s %s", local, remote);
    hmap_put(sc->pairs, key, (void *)1);
}

static void on_bidi(struct s2s_conn *sc, const struct xml_node *st)
{
    if (!sc->s2s->cfg->bidi || !xml_is(st, S2S_NS_BIDI, "bidi")) {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                           "<%s xmlns='" S2S_NS_BIDI "'/>: bidirectional streams are %s", st->name,
                           sc->s2s->cfg->bidi ? "requested with <bidi/>" : "off here");
        return;
    }
    if (sc->bidi)
        return; /* asked again (some peers ask after each restart) */
    sc->bidi = true;
    log_info(&sc->lc, "the peer asked for a bidirectional stream (bidi, XEP-0288)");
    in_bidi_attach_all(sc);
}

/* Makes r ride the incoming stream sc and brings it up. */
static void bidi_attach(struct s2s_conn *sc, struct route *r)
{
    r->out = sc;
    r->riding = true;
    s2s_list_add(&sc->riders, &r->ride_link);
    log_info(&sc->lc, "bidi: route %s->%s uses this incoming stream", r->local, r->remote);
    route_up(r);
}

static size_t count_riders(const struct s2s_conn *sc)
{
    size_t n = 0;
    for (const struct s2s_list *l = sc->riders.next; l != &sc->riders; l = l->next)
        n++;
    return n;
}

static bool can_carry(const struct s2s_conn *sc)
{
    return !sc->outgoing && sc->bidi && !sc->gone && sc->state == SC_OPEN &&
           count_riders(sc) + 1 < S2S_MAX_RIDERS;
}

void in_bidi_attach_all(struct s2s_conn *sc)
{
    if (!can_carry(sc) || sc->s2s->stopping)
        return;
    struct hmap_iter it = {0};
    const char *key;
    while (hmap_next(sc->pairs, &it, &key, NULL)) {
        char local[1100];
        snprintf(local, sizeof(local), "%s", key);
        char *sp = strchr(local, ' ');
        if (sp == NULL)
            continue;
        *sp = '\0';
        struct route *r = route_get(sc->s2s, local, sp + 1);
        /* A route with a stream of its own, or on its way to one, keeps it;
         * so does one waiting to send a db:verify. */
        if (r->state == ROUTE_IDLE && r->out == NULL && r->verifies.next == &r->verifies &&
            can_carry(sc)) {
            r->retry_at_ms = 0;
            bidi_attach(sc, r);
        }
    }
}

bool in_bidi_carry(struct route *r)
{
    struct s2s *s2s = r->s2s;
    if (s2s->stopping)
        return false;
    char key[1100];
    snprintf(key, sizeof(key), "%s %s", r->local, r->remote);
    for (struct s2s_list *l = s2s->conns.next; l != &s2s->conns; l = l->next) {
        struct s2s_conn *sc = S2S_ENTRY(l, struct s2s_conn, link);
        if (can_carry(sc) && hmap_get(sc->pairs, key) != NULL) {
            bidi_attach(sc, r);
            return true;
        }
    }
    return false;
}

static void on_starttls(struct s2s_conn *sc, const struct xml_node *st)
{
    if (!xml_is(st, S2S_NS_TLS, "starttls") || sc->tls || sc->s2s->creds == NULL) {
        log_info(&sc->lc, "STARTTLS refused: %s",
                 sc->tls ? "TLS is already on" : "not a request or no certificate");
        sconn_write_str(sc, "<failure xmlns='" S2S_NS_TLS "'/>");
        sconn_close(sc, "STARTTLS refused");
        return;
    }
    sconn_write_str(sc, "<proceed xmlns='" S2S_NS_TLS "'/>");
    sconn_restart(sc);
    sc->state = SC_TLS;
    struct err err = {0};
    if (conn_starttls_server(sc->conn, sc->s2s->creds, &err) < 0) {
        log_warn(&sc->lc, "cannot start TLS: %s", err.text);
        sconn_close(sc, "TLS setup failed");
    }
}

/* A stanza of an authenticated peer: addresses checked, then to the router
 * in jabber:server (the router accepts that namespace; the sm rebases). */
void in_forward(struct s2s_conn *sc, struct xml_node *st)
{
    struct s2s *s2s = sc->s2s;
    struct arena *a = xstream_arena(sc->xs);
    const char *from = xml_attr_get(st, "from");
    const char *to = xml_attr_get(st, "to");
    struct jid jf, jt;
    if (from == NULL || to == NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_IMPROPER_ADDRESSING,
                           "<%s/> without %s (RFC 6120 §8.1.1.1)", st->name,
                           from == NULL ? "'from'" : "'to'");
        return;
    }
    /* On our own bidirectional stream, the peer is the stream's remote
     * domain and may send to the local domains authenticated on it. */
    if (jid_parse_str(a, from, &jf, NULL) < 0 ||
        (sc->outgoing ? strcasecmp(jf.domain, sc->remote) != 0
                      : hmap_get(sc->authed, jf.domain) == NULL)) {
        sconn_stream_error(sc, XMPP_COND_STREAM_INVALID_FROM,
                           "'%.200s' is not of a domain this stream authenticated", from);
        return;
    }
    const char *local = NULL;
    if (jid_parse_str(a, to, &jt, NULL) == 0)
        local = s2s_local_domain(s2s, jt.domain);
    if (local == NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_HOST_UNKNOWN, "'%.200s' is not served here", to);
        return;
    }
    if (sc->outgoing && !out_carries_local(sc, local)) {
        sconn_stream_error(sc, XMPP_COND_STREAM_IMPROPER_ADDRESSING,
                           "'%.200s': %s did not authenticate to it on this stream", to,
                           sc->remote);
        return;
    }
    if (s2s->cc == NULL || !comp_client_is_up(s2s->cc)) {
        /* Not acknowledged: the peer keeps the stanza and sends it again. */
        sconn_stream_error(sc, XMPP_COND_STREAM_INTERNAL_SERVER_ERROR,
                           "the router is unreachable; try again later");
        return;
    }
    s2s->stats.stanzas_in++;
    router_link_send_node(s2s, st);
    ack_in_handled(sc);
    sconn_check_backlog(sc);
}

void in_on_stanza(struct s2s_conn *sc, struct xml_node *st)
{
    bool tls_first = !sc->tls && require_tls(sc);
    if (strcmp(st->ns, S2S_NS_TLS) == 0) {
        on_starttls(sc, st);
    } else if (tls_first) {
        sconn_stream_error(sc, XMPP_COND_STREAM_POLICY_VIOLATION,
                           "<%s/> before STARTTLS: TLS is required", st->name);
    } else if (strcmp(st->ns, S2S_NS_SASL) == 0) {
        sasl_in_on_element(sc, st);
    } else if (strcmp(st->ns, S2S_NS_DB) == 0) {
        dialback_in_on_element(sc, st);
    } else if (strcmp(st->ns, S2S_NS_SM) == 0) {
        ack_on_element(sc, st);
    } else if (strcmp(st->ns, S2S_NS_BIDI) == 0) {
        on_bidi(sc, st);
    } else if (sconn_is_stanza(st)) {
        if (hmap_count(sc->authed) == 0)
            sconn_stream_error(sc, XMPP_COND_STREAM_NOT_AUTHORIZED, "<%s/> before authentication",
                               st->name);
        else
            in_forward(sc, st);
    } else {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                           "<%s xmlns='%s'/> is not supported", st->name, st->ns);
    }
}
