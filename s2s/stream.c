/* SPDX-License-Identifier: MIT */
/* What incoming and outgoing server streams share: the connection and its
 * parser, headers, writes, stream errors, restarts, closing, and the idle
 * timeout. The protocol states live in in.c and out.c. */
#include "s2s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "comp_client.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "xml.h"
#include "xstream.h"

#define CLOSE_GRACE_MS 2000

bool sconn_is_stanza(const struct xml_node *st)
{
    return strcmp(st->ns, XML_NS_SERVER) == 0 &&
           (strcmp(st->name, "message") == 0 || strcmp(st->name, "presence") == 0 ||
            strcmp(st->name, "iq") == 0);
}

static int xs_on_open(void *arg, const struct xml_node *hdr)
{
    struct s2s_conn *sc = arg;
    if (sc->state != SC_WAIT_HEADER) {
        sconn_stream_error(sc, XMPP_COND_STREAM_INVALID_XML, "a second stream header");
        return -1;
    }
    return sc->outgoing ? out_on_open(sc, hdr) : in_on_open(sc, hdr);
}

static int xs_on_stanza(void *arg, struct xml_node *st, const char *raw, size_t len)
{
    struct s2s_conn *sc = arg;
    (void)raw;
    (void)len;
    if (xml_is(st, XML_NS_STREAM, "error")) {
        const struct xml_node *cond = xml_first_elem(st);
        const char *text = xml_child_text(xstream_arena(sc->xs), st, XMPP_NS_STREAMS, "text");
        log_info(&sc->lc, "peer sent stream error %s%s%s", cond ? cond->name : "(none)",
                 text ? ": " : "", text ? text : "");
        if (sc->outgoing) {
            char why[256];
            snprintf(why, sizeof(why), "%s sent stream error %s%s%.100s", sc->remote,
                     cond ? cond->name : "(none)", text ? ": " : "", text ? text : "");
            out_detach(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, why);
        }
        sconn_close(sc, "peer stream error");
        return -1;
    }
    sc->last_ms = s2s_now_ms();
    if (sc->outgoing)
        out_on_stanza(sc, st);
    else
        in_on_stanza(sc, st);
    return sc->state == SC_CLOSING ? -1 : 0;
}

static void xs_on_close(void *arg)
{
    struct s2s_conn *sc = arg;
    log_info(&sc->lc, "peer closed the stream");
    sconn_close(sc, "peer closed the stream");
}

static const struct xstream_ops sconn_xs_ops = {xs_on_open, xs_on_stanza, xs_on_close};

static void on_read(struct conn *conn, struct evbuffer *in, void *arg)
{
    struct s2s_conn *sc = arg;
    (void)conn;
    struct err err = {0};
    sc->restarted = false;
    while (sc->state != SC_CLOSING && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        int rc = xstream_feed(sc->xs, v.iov_base, v.iov_len, &err);
        evbuffer_drain(in, v.iov_len);
        if (rc < 0 && sc->state != SC_CLOSING)
            sconn_stream_error(sc, err.cond, "%s", err.text);
        /* Bytes after a STARTTLS or SASL restart belong to the old stream. */
        if (sc->restarted)
            break;
    }
    if (sc->state == SC_CLOSING || sc->restarted)
        evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_tls(struct conn *conn, void *arg)
{
    struct s2s_conn *sc = arg;
    sc->tls = true;
    log_debug(&sc->lc, "TLS %s established", conn_tls_version(conn));
    if (sc->state != SC_TLS)
        return;
    sc->state = SC_WAIT_HEADER;
    if (sc->outgoing)
        out_on_tls(sc);
    else
        in_on_tls(sc);
}

static void sconn_free(struct s2s_conn *sc)
{
    s2s_list_del(&sc->link);
    ack_free(sc);
    xstream_free(&sc->xs);
    if (sc->connect_ev != NULL)
        event_free(sc->connect_ev);
    hmap_free(&sc->authed);
    hmap_free(&sc->pairs);
    free(sc->local);
    free(sc->remote);
    free(sc);
}

static void on_close(struct conn *conn, const char *reason, void *arg)
{
    struct s2s_conn *sc = arg;
    (void)conn;
    if (sc->state != SC_CLOSING) {
        log_info(&sc->lc, "connection closed: %s", reason ? reason : "?");
        if (sc->outgoing || sc->bidi)
            out_detach(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, reason ? reason : "closed");
    }
    sc->state = SC_CLOSING;
    sconn_free(sc);
}

static void on_drain(struct conn *conn, void *arg)
{
    struct s2s_conn *sc = arg;
    (void)conn;
    if ((sc->outgoing && sc->state == SC_UP) || (!sc->outgoing && sc->bidi))
        out_flush_all(sc);
}

static const struct conn_ops sconn_conn_ops = {on_read, on_drain, on_tls, on_close};

#define ROUTER_HIGH    (4u << 20) /* bytes queued for the router that pause peers */
#define ROUTER_LOW     (1u << 20)
#define RESUME_POLL_MS 50

static void on_resume_poll(evutil_socket_t fd, short what, void *arg)
{
    struct s2s *s2s = arg;
    (void)fd;
    (void)what;
    if (s2s->cc != NULL && comp_client_pending(s2s->cc) > ROUTER_LOW) {
        struct timeval tv = {0, RESUME_POLL_MS * 1000};
        evtimer_add(s2s->resume, &tv);
        return;
    }
    for (struct s2s_list *l = s2s->conns.next; l != &s2s->conns; l = l->next) {
        struct s2s_conn *sc = S2S_ENTRY(l, struct s2s_conn, link);
        if (sc->paused && sc->state != SC_CLOSING) {
            sc->paused = false;
            conn_pause_read(sc->conn, false);
        }
    }
}

void sconn_check_backlog(struct s2s_conn *sc)
{
    struct s2s *s2s = sc->s2s;
    if (sc->paused || s2s->cc == NULL || comp_client_pending(s2s->cc) <= ROUTER_HIGH)
        return;
    sc->paused = true;
    conn_pause_read(sc->conn, true);
    if (s2s->resume == NULL)
        s2s->resume = evtimer_new(s2s->base, on_resume_poll, s2s);
    if (!evtimer_pending(s2s->resume, NULL)) {
        struct timeval tv = {0, RESUME_POLL_MS * 1000};
        evtimer_add(s2s->resume, &tv);
    }
    log_debug(&sc->lc, "router link backed up: reading paused");
}

struct s2s_conn *sconn_new(struct s2s *s2s, int fd, bool outgoing)
{
    struct s2s_conn *sc = xcalloc(1, sizeof(*sc));
    sc->s2s = s2s;
    sc->id = ++s2s->next_id;
    sc->outgoing = outgoing;
    sc->fd = -1;
    sc->last_ms = sc->created_ms = s2s_now_ms();
    s2s_list_add(&s2s->conns, &sc->link);
    ack_init(sc);
    s2s_list_init(&sc->riders);
    struct xstream_limits lim = {.max_stanza = s2s->cfg->max_stanza};
    sc->xs = xstream_new(&lim, &sconn_xs_ops, sc, 0);
    if (fd >= 0)
        sc->conn = conn_new(s2s->base, fd, &sconn_conn_ops, sc);
    return sc;
}

void sconn_attach(struct s2s_conn *sc, int fd)
{
    sc->conn = conn_new(sc->s2s->base, fd, &sconn_conn_ops, sc);
}

void sconn_abandon(struct s2s_conn *sc)
{
    sconn_free(sc);
}

struct s2s_conn *sconn_find(struct s2s *s2s, uint64_t id)
{
    for (struct s2s_list *l = s2s->conns.next; l != &s2s->conns; l = l->next) {
        struct s2s_conn *sc = S2S_ENTRY(l, struct s2s_conn, link);
        if (sc->id == id)
            return sc;
    }
    return NULL;
}

void sconn_write(struct s2s_conn *sc, const char *data, size_t len)
{
    if (sc->state == SC_CLOSING || sc->conn == NULL)
        return;
    conn_write(sc->conn, data, len);
}

void sconn_write_str(struct s2s_conn *sc, const char *s)
{
    sconn_write(sc, s, strlen(s));
}

void sconn_send_header(struct s2s_conn *sc, const char *from, const char *to)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" XML_NS_SERVER
                       "' xmlns:stream='" XML_NS_STREAM "' xmlns:db='" S2S_NS_DB "'");
    if (from != NULL)
        xml_append_attr(&b, "from", from);
    if (to != NULL)
        xml_append_attr(&b, "to", to);
    if (!sc->outgoing) {
        comp_stream_id(sc->stream_id);
        xml_append_attr(&b, "id", sc->stream_id);
    }
    buf_append_str(&b, " version='1.0'>");
    sconn_write(sc, b.data, b.len);
    buf_fini(&b);
    sc->header_sent = true;
}

void sconn_close(struct s2s_conn *sc, const char *reason)
{
    if (sc->state == SC_CLOSING)
        return;
    if (sc->header_sent)
        sconn_write_str(sc, "</stream:stream>");
    if (sc->outgoing || sc->bidi)
        out_detach(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, reason);
    sc->state = SC_CLOSING;
    if (sc->conn != NULL)
        conn_close(sc->conn, reason, sc->s2s->stopping ? 500 : CLOSE_GRACE_MS);
}

void sconn_stream_error(struct s2s_conn *sc, enum xmpp_cond cond, const char *fmt, ...)
{
    if (sc->state == SC_CLOSING)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (!xmpp_cond_is_stream(cond))
        cond = XMPP_COND_STREAM_UNDEFINED_CONDITION;
    log_info(&sc->lc, "stream error %s: %s", xmpp_cond_name(cond), text);
    if (!sc->header_sent)
        sconn_send_header(sc, sc->local, sc->remote);
    struct buf b = BUF_INIT;
    xml_append_stream_error(&b, cond, text);
    sconn_write(sc, b.data, b.len);
    buf_fini(&b);
    char reason[300];
    snprintf(reason, sizeof(reason), "stream error %s: %s", xmpp_cond_name(cond), text);
    sconn_close(sc, reason);
}

void sconn_restart(struct s2s_conn *sc)
{
    sc->header_sent = false;
    sc->restarted = true;
    sc->state = SC_WAIT_HEADER;
    xstream_reset(sc->xs);
}

int sconn_start_client_tls(struct s2s_conn *sc, struct err *err)
{
    const struct s2s_cfg *cfg = sc->s2s->cfg;
    const struct tls_cert_cfg *mine = NULL;
    for (size_t i = 0; i < cfg->ncerts; i++) {
        if (strcmp(cfg->certs[i].domain, sc->local) == 0)
            mine = &cfg->certs[i];
    }
    /* verify false: a certificate that does not verify still allows
     * dialback; conn_tls_peer_verified tells the policy which it was.
     * RFC 6120 §13.7.2.1 and XEP-0368: SNI and the name to verify are the
     * remote domain, never the SRV target. */
    struct conn_tls_client_opts o = {
        .server_name = sc->remote,
        .ca_file = cfg->tls_ca_file,
        .verify = false,
        .cert_file = mine ? mine->cert_file : NULL,
        .key_file = mine ? mine->key_file : NULL,
        .priority = cfg->tls_priority,
    };
    sc->state = SC_TLS;
    return conn_starttls_client_opts(sc->conn, &o, err);
}

void sconn_close_all(struct s2s *s2s, enum xmpp_cond cond, const char *text)
{
    for (struct s2s_list *l = s2s->conns.next; l != &s2s->conns; l = l->next) {
        struct s2s_conn *sc = S2S_ENTRY(l, struct s2s_conn, link);
        if (sc->conn == NULL)
            continue; /* connecting: freed with its route */
        if (sc->header_sent && sc->state != SC_TLS)
            sconn_stream_error(sc, cond, "%s", text);
        else
            sconn_close(sc, text);
    }
}

void sconn_housekeeping(struct s2s *s2s, int64_t now)
{
    long idle = s2s->cfg->idle_timeout_ms;
    for (struct s2s_list *l = s2s->conns.next; l != &s2s->conns; l = l->next) {
        struct s2s_conn *sc = S2S_ENTRY(l, struct s2s_conn, link);
        bool authed = sc->outgoing ? sc->state == SC_UP : hmap_count(sc->authed) > 0;
        /* A peer that connects and never proves a domain holds a socket for
         * nothing (outgoing attempts have the route's deadline). */
        if (!sc->outgoing && !authed && sc->state != SC_CLOSING && sc->conn != NULL &&
            now - sc->created_ms >= s2s->cfg->connect_timeout_ms) {
            sconn_stream_error(sc, XMPP_COND_STREAM_CONNECTION_TIMEOUT,
                               "no domain authenticated within %ld ms",
                               s2s->cfg->connect_timeout_ms);
            continue;
        }
        if ((sc->outgoing && sc->state == SC_UP) || (!sc->outgoing && sc->bidi))
            ack_out_tick(sc);
        if (idle > 0 && authed && now - sc->last_ms >= idle) {
            log_info(&sc->lc, "idle for %ld ms: closing the stream", idle);
            sc->idle_closed = true;
            sconn_close(sc, "idle");
        }
    }
}
