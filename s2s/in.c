/* SPDX-License-Identifier: MIT */
/* The receiving side of a server stream: the header and features,
 * STARTTLS, then SASL EXTERNAL or dialback, then stanzas, each checked
 * (its 'from' must be a domain this stream authenticated, its 'to' one we
 * host) and handed to the router. */
#include "s2s.h"

#include <stdlib.h>
#include <string.h>

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
    return 0;
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
static void forward(struct s2s_conn *sc, struct xml_node *st)
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
    if (jid_parse_str(a, from, &jf, NULL) < 0 || hmap_get(sc->authed, jf.domain) == NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_INVALID_FROM,
                           "'%.200s' is not of a domain this stream authenticated", from);
        return;
    }
    if (jid_parse_str(a, to, &jt, NULL) < 0 || s2s_local_domain(s2s, jt.domain) == NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_HOST_UNKNOWN, "'%.200s' is not served here", to);
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
    } else if (sconn_is_stanza(st)) {
        if (hmap_count(sc->authed) == 0)
            sconn_stream_error(sc, XMPP_COND_STREAM_NOT_AUTHORIZED, "<%s/> before authentication",
                               st->name);
        else
            forward(sc, st);
    } else {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                           "<%s xmlns='%s'/> is not supported", st->name, st->ns);
    }
}
