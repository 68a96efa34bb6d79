/* SPDX-License-Identifier: MIT */
/* The initiating side of a server stream (RFC 6120 §§4-6): connect to one
 * target, direct TLS or STARTTLS, check the peer's certificate against the
 * policy, then authenticate with SASL EXTERNAL when the receiving server
 * offers it (XEP-0178), else with dialback (XEP-0220). */
#include "s2s.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "netaddr.h"
#include "xml.h"
#include "xstream.h"

/* Ends the attempt with cond and a reason that the bounces will carry. Its
 * callers are decisions (a policy, a refusal, TLS impossible), which no
 * retry would change: the route bounces at once. */
static void out_fail(struct s2s_conn *sc, enum xmpp_cond cond, const char *fmt, ...)
    PL_PRINTF(3, 4);
static void out_fail(struct s2s_conn *sc, enum xmpp_cond cond, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_info(&sc->lc, "%s", text);
    if (sc->route != NULL)
        sc->route->refused = true;
    out_detach(sc, cond, text);
    sconn_close(sc, text);
}

static void detach_riders(struct s2s_conn *sc, const char *text);

void out_detach(struct s2s_conn *sc, enum xmpp_cond cond, const char *text)
{
    /* Unacknowledged stanzas first: the routes restart with them queued. */
    sc->gone = true;
    ack_out_requeue(sc);
    detach_riders(sc, text);
    struct route *r = sc->route;
    if (r == NULL)
        return;
    sc->route = NULL;
    r->out = NULL;
    if (sc->state == SC_UP)
        route_down(r, text, !sc->idle_closed);
    else
        route_attempt_failed(r, cond, "%s", text);
}

static void on_connected(evutil_socket_t fd, short what, void *arg)
{
    struct s2s_conn *sc = arg;
    if (what & EV_TIMEOUT) {
        close(fd);
        out_detach(sc, XMPP_COND_REMOTE_SERVER_TIMEOUT, "TCP connect timed out");
        sconn_abandon(sc);
        return;
    }
    int e = 0;
    socklen_t elen = sizeof(e);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
        e = errno;
    if (e != 0) {
        char why[160];
        close(fd);
        snprintf(why, sizeof(why), "TCP connect failed: %s", strerror(e));
        log_info(&sc->lc, "%s", why);
        out_detach(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, why);
        sconn_abandon(sc);
        return;
    }
    event_free(sc->connect_ev);
    sc->connect_ev = NULL;
    sc->fd = -1;
    sconn_attach(sc, fd);
    log_info(&sc->lc, "connected to %s (%s)",
             sc->route ? sc->route->targets[sc->route->next - 1].host : "?",
             sc->direct_tls ? "direct TLS" : "STARTTLS");
    if (sc->direct_tls) {
        struct err err = {0};
        if (sconn_start_client_tls(sc, &err) < 0)
            out_fail(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "cannot start TLS: %s", err.text);
        return;
    }
    sc->state = SC_WAIT_HEADER;
    sconn_send_header(sc, sc->local, sc->remote);
}

void out_connect(struct route *r)
{
    struct s2s *s2s = r->s2s;
    const struct target *t = &r->targets[r->next++];
    struct sockaddr_storage ss;
    socklen_t len;
    struct err err = {0};
    if (netaddr_parse(t->address, t->port, &ss, &len, &err) < 0) {
        route_attempt_failed(r, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "%s", err.text);
        return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        route_attempt_failed(r, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "socket: %s", strerror(errno));
        return;
    }
    if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        route_attempt_failed(r, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "connect to %s:%d: %s",
                             t->address, t->port, strerror(e));
        return;
    }
    struct s2s_conn *sc = sconn_new(s2s, -1, true);
    sc->fd = fd;
    sc->route = r;
    r->out = sc;
    sc->local = xstrdup(r->local);
    sc->remote = xstrdup(r->remote);
    sc->direct_tls = t->direct_tls;
    sc->state = SC_CONNECTING;
    log_ctx_set(&sc->lc, "s2s out %s->%s %s:%d", r->local, r->remote, t->address, t->port);
    log_debug(&sc->lc, "connecting to %s (%s)", t->host, t->direct_tls ? "direct TLS" : "STARTTLS");
    long ms = s2s->cfg->connect_timeout_ms;
    r->deadline_ms = s2s_now_ms() + ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    sc->connect_ev = event_new(s2s->base, fd, EV_WRITE, on_connected, sc);
    event_add(sc->connect_ev, &tv);
}

void out_on_tls(struct s2s_conn *sc)
{
    sconn_send_header(sc, sc->local, sc->remote);
}

int out_on_open(struct s2s_conn *sc, const struct xml_node *hdr)
{
    const char *ns = xstream_default_ns(sc->xs);
    const char *id = xml_attr_get(hdr, "id");
    if (strcmp(ns, XML_NS_SERVER) != 0) {
        sconn_stream_error(sc, XMPP_COND_STREAM_INVALID_NAMESPACE,
                           "the stream's default namespace is '%.100s', not '" XML_NS_SERVER "'",
                           ns);
        return -1;
    }
    if (id == NULL || id[0] == '\0' || strlen(id) >= sizeof(sc->stream_id)) {
        sconn_stream_error(sc, XMPP_COND_STREAM_INVALID_XML,
                           "the stream header has no usable id (dialback needs one)");
        return -1;
    }
    snprintf(sc->stream_id, sizeof(sc->stream_id), "%s", id);
    sc->state = SC_OPEN;
    return 0;
}

static bool have_cert(const struct s2s_conn *sc)
{
    const struct s2s_cfg *cfg = sc->s2s->cfg;
    for (size_t i = 0; i < cfg->ncerts; i++) {
        if (strcmp(cfg->certs[i].domain, sc->local) == 0)
            return true;
    }
    return false;
}

/* <stream:features/>: STARTTLS first, then the policy's certificate check,
 * then SASL EXTERNAL if offered, else dialback (RFC 6120 §4.3.2 order). */
static void on_features(struct s2s_conn *sc, const struct xml_node *feats)
{
    enum s2s_auth auth;
    bool require_tls;
    s2s_policy(sc->s2s->cfg, sc->remote, &auth, &require_tls);
    sc->sm.offered = xml_child(feats, S2S_NS_SM, "sm") != NULL;
    if (sc->sasl_done) {
        sc->state = SC_UP;
        out_flush_verifies(sc);
        ack_out_start(sc);
        route_up(sc->route);
        return;
    }
    if (!sc->tls) {
        if (xml_child(feats, S2S_NS_TLS, "starttls") != NULL) {
            sconn_write_str(sc, "<starttls xmlns='" S2S_NS_TLS "'/>");
            sc->state = SC_STARTTLS;
            return;
        }
        if (require_tls) {
            out_fail(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND,
                     "%s offers no STARTTLS and TLS is required with it", sc->remote);
            return;
        }
    }
    bool cert_ok = sc->tls && conn_tls_peer_verified(sc->conn);
    if (auth == S2S_AUTH_CERT && !cert_ok) {
        out_fail(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND,
                 "the certificate of %s is not valid for it and the policy is "
                 "require-valid-cert",
                 sc->remote);
        return;
    }
    log_debug(&sc->lc, "the certificate of %s is %s", sc->remote,
              cert_ok ? "valid" : "not valid (dialback may still prove us)");
    sc->negotiated = true;
    out_flush_verifies(sc);
    /* XEP-0288 §2: after TLS, before authenticating. */
    if (sc->s2s->cfg->bidi && !sc->bidi && xml_child(feats, S2S_NS_BIDI_FEAT, "bidi") != NULL) {
        sconn_write_str(sc, "<bidi xmlns='" S2S_NS_BIDI "'/>");
        sc->bidi = true;
        log_info(&sc->lc, "bidi: %s may send its stanzas to us on this stream (XEP-0288)",
                 sc->remote);
    }
    if (sc->tls && !sc->sasl_failed && have_cert(sc) && sasl_offered(feats))
        sasl_out_start(sc);
    else
        dialback_out_start(sc);
}

void out_on_stanza(struct s2s_conn *sc, struct xml_node *st)
{
    if (strcmp(st->ns, S2S_NS_DB) == 0) {
        dialback_out_on_element(sc, st);
        return;
    }
    if (strcmp(st->ns, S2S_NS_SM) == 0 && sc->state == SC_UP) {
        ack_on_element(sc, st);
        return;
    }
    switch (sc->state) {
    case SC_OPEN:
        if (xml_is(st, XML_NS_STREAM, "features"))
            on_features(sc, st);
        else
            sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                               "<%s/> before the stream features", st->name);
        return;
    case SC_STARTTLS:
        if (xml_is(st, S2S_NS_TLS, "proceed")) {
            struct err err = {0};
            sconn_restart(sc);
            if (sconn_start_client_tls(sc, &err) < 0)
                out_fail(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "cannot start TLS: %s", err.text);
        } else {
            out_fail(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, "%s refused STARTTLS", sc->remote);
        }
        return;
    case SC_SASL:
        if (!sasl_out_on_element(sc, st))
            sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE, "<%s/> during SASL",
                               st->name);
        return;
    case SC_UP:
        /* A bidirectional stream (XEP-0288) carries the peer's stanzas too. */
        if (sc->bidi && sconn_is_stanza(st)) {
            in_forward(sc, st);
            return;
        }
        /* fall through */
    default:
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                           "<%s xmlns='%s'/> on a stream we initiated%s", st->name, st->ns,
                           sc->bidi ? "" : " (not bidirectional)");
        return;
    }
}

static void flush_route_verifies(struct s2s_conn *sc, struct route *r);

void out_flush_verifies(struct s2s_conn *sc)
{
    if (!sc->negotiated || sc->state == SC_CLOSING)
        return;
    struct route *rs[S2S_MAX_RIDERS];
    size_t n = out_routes(sc, rs, S2S_MAX_RIDERS);
    for (size_t i = 0; i < n; i++)
        flush_route_verifies(sc, rs[i]);
}

static void flush_route_verifies(struct s2s_conn *sc, struct route *r)
{
    for (struct s2s_list *l = r->verifies.next; l != &r->verifies; l = l->next) {
        struct verify *v = S2S_ENTRY(l, struct verify, link);
        if (v->sent)
            continue;
        struct buf b = BUF_INIT;
        buf_append_str(&b, "<db:verify");
        xml_append_attr(&b, "from", r->local);
        xml_append_attr(&b, "to", r->remote);
        xml_append_attr(&b, "id", v->stream_id);
        buf_append_char(&b, '>');
        xml_escape(&b, v->key, strlen(v->key), false);
        buf_append_str(&b, "</db:verify>");
        sconn_write(sc, b.data, b.len);
        buf_fini(&b);
        v->sent = true;
        log_debug(&sc->lc, "db:verify sent for stream %s", v->stream_id);
    }
}

/* ---- piggybacking (XEP-0220 §2.5) ------------------------------------------ */

size_t out_routes(const struct s2s_conn *sc, struct route **out, size_t max)
{
    size_t n = 0;
    if (sc->route != NULL && n < max)
        out[n++] = sc->route;
    for (struct s2s_list *l = sc->riders.next; l != &sc->riders && n < max; l = l->next)
        out[n++] = S2S_ENTRY(l, struct route, ride_link);
    return n;
}

void out_flush_all(struct s2s_conn *sc)
{
    struct route *rs[S2S_MAX_RIDERS];
    size_t n = out_routes(sc, rs, S2S_MAX_RIDERS);
    for (size_t i = 0; i < n; i++) {
        if (rs[i]->state == ROUTE_UP)
            route_flush(rs[i]);
    }
}

bool out_carries_local(const struct s2s_conn *sc, const char *local)
{
    struct route *rs[S2S_MAX_RIDERS];
    size_t n = out_routes(sc, rs, S2S_MAX_RIDERS);
    for (size_t i = 0; i < n; i++) {
        if (rs[i]->state == ROUTE_UP && strcmp(rs[i]->local, local) == 0)
            return true;
    }
    return false;
}

static size_t count_riders(const struct s2s_conn *sc)
{
    size_t n = 0;
    for (const struct s2s_list *l = sc->riders.next; l != &sc->riders; l = l->next)
        n++;
    return n;
}

/* An authenticated stream to r's remote that can carry r as well. */
static struct s2s_conn *find_host(const struct route *r)
{
    struct s2s *s2s = r->s2s;
    for (struct s2s_list *l = s2s->conns.next; l != &s2s->conns; l = l->next) {
        struct s2s_conn *sc = S2S_ENTRY(l, struct s2s_conn, link);
        if (sc->outgoing && sc->state == SC_UP && !sc->gone && sc->route != NULL &&
            sc->route != r && strcmp(sc->remote, r->remote) == 0 &&
            count_riders(sc) + 1 < S2S_MAX_RIDERS)
            return sc;
    }
    return NULL;
}

bool out_piggyback(struct route *r)
{
    if (r->s2s->stopping)
        return false;
    struct s2s_conn *host = find_host(r);
    if (host == NULL)
        return false;
    r->state = ROUTE_TRYING;
    r->out = host;
    r->riding = true;
    s2s_list_add(&host->riders, &r->ride_link);
    r->deadline_ms = s2s_now_ms() + r->s2s->cfg->connect_timeout_ms;
    log_info(&host->lc, "%s->%s rides this stream: dialback for %s", r->local, r->remote, r->local);
    dialback_out_send(host, r->local);
    out_flush_verifies(host);
    return true;
}

/* Takes a rider off its stream; the route keeps its queue. */
static void unride(struct route *r)
{
    s2s_list_del(&r->ride_link);
    r->riding = false;
    r->out = NULL;
}

void out_rider_failed(struct route *r, const char *why)
{
    log_info(&r->s2s->lc, "%s->%s cannot ride %s's stream (%s): connecting on its own", r->local,
             r->remote, r->out && r->out->route ? r->out->route->local : "?", why);
    unride(r);
    r->state = ROUTE_IDLE;
    route_start_own(r);
}

/* The stream is gone: every rider goes down with it. */
static void detach_riders(struct s2s_conn *sc, const char *text)
{
    while (sc->riders.next != &sc->riders) {
        struct route *r = S2S_ENTRY(sc->riders.next, struct route, ride_link);
        bool was_up = r->state == ROUTE_UP;
        unride(r);
        if (was_up) {
            route_down(r, text, !sc->idle_closed);
        } else {
            r->state = ROUTE_IDLE;
            route_start_own(r);
        }
    }
}
