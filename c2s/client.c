/* SPDX-License-Identifier: MIT */
/* One client connection: accept, read and parse, the stream state machine
 * (a switch on enum client_state calling one function per state), writes,
 * stream errors and the close. */
#include "c2s.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "alloc.h"
#include "buf.h"
#include "xml.h"
#include "xstream.h"

#define CLOSE_GRACE_MS 2000

static void client_shutdown(struct client *c);

/* ---- stanzas by state ---------------------------------------------------- */

static bool is_stanza(const struct xml_node *st)
{
    return strcmp(st->ns, XML_NS_CLIENT) == 0 &&
           (strcmp(st->name, "message") == 0 || strcmp(st->name, "presence") == 0 ||
            strcmp(st->name, "iq") == 0);
}

/* Neither a stanza nor a negotiation element this state knows. */
static void unexpected(struct client *c, const struct xml_node *st, const char *when)
{
    if (is_stanza(st))
        client_stream_error(c, XMPP_COND_STREAM_NOT_AUTHORIZED, "<%s/> %s", st->name, when);
    else if (strcmp(st->ns, C2S_NS_SASL) == 0 || strcmp(st->ns, C2S_NS_TLS) == 0)
        client_stream_error(c, XMPP_COND_STREAM_POLICY_VIOLATION, "<%s xmlns='%s'/> %s", st->name,
                            st->ns, when);
    else
        client_stream_error(c, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                            "<%s xmlns='%s'/> is not supported", st->name, st->ns);
}

static bool is_register_iq(const struct xml_node *st)
{
    return xml_is(st, XML_NS_CLIENT, "iq") && xml_child(st, C2S_NS_REGISTER, "query") != NULL;
}

static void on_pre_auth(struct client *c, struct xml_node *st)
{
    if (strcmp(st->ns, C2S_NS_TLS) == 0)
        starttls_on_element(c, st);
    else if (strcmp(st->ns, C2S_NS_SASL) == 0)
        sasl_on_element(c, st);
    else if (is_register_iq(st) && !features_tls_first(c) && register_on_iq(c, st))
        return;
    else
        unexpected(c, st,
                   features_tls_first(c) ? "before STARTTLS (TLS is required)"
                                         : "before authentication");
}

static void on_sasl(struct client *c, struct xml_node *st)
{
    if (strcmp(st->ns, C2S_NS_SASL) == 0)
        sasl_on_element(c, st);
    else
        unexpected(c, st, "during SASL negotiation");
}

static void on_authed(struct client *c, struct xml_node *st)
{
    const struct xml_node *q = NULL;
    if (xml_is(st, XML_NS_CLIENT, "iq") && (q = xml_child(st, C2S_NS_BIND, "bind")) != NULL)
        bind_on_iq(c, st, q);
    else if (xml_is(st, XML_NS_CLIENT, "iq") && xml_child(st, C2S_NS_SESSION, "session"))
        session_iq(c, st);
    else if (is_register_iq(st) && register_on_iq(c, st))
        return;
    else
        unexpected(c, st,
                   c->state == CLIENT_BINDING ? "before the resource binding completed"
                                              : "before resource binding");
}

static int xs_on_stanza(void *arg, struct xml_node *st, const char *raw, size_t len)
{
    struct client *c = arg;
    (void)raw;
    (void)len;
    if (xml_is(st, XML_NS_STREAM, "error")) {
        const struct xml_node *cond = xml_first_elem(st);
        log_info(&c->lc, "client sent stream error %s", cond ? cond->name : "(none)");
        client_close(c, "client stream error");
        return -1;
    }
    switch (c->state) {
    case CLIENT_PRE_AUTH:
        on_pre_auth(c, st);
        break;
    case CLIENT_SASL:
        on_sasl(c, st);
        break;
    case CLIENT_AUTHED:
    case CLIENT_BINDING:
        on_authed(c, st);
        break;
    case CLIENT_SESSION:
        if (is_stanza(st))
            stanza_from_client(c, st);
        else
            unexpected(c, st, "after resource binding");
        break;
    case CLIENT_TLS_HANDSHAKE:
    case CLIENT_WAIT_HEADER:
    case CLIENT_CLOSING:
        break;
    }
    return c->state == CLIENT_CLOSING ? -1 : 0;
}

static int xs_on_open(void *arg, const struct xml_node *hdr)
{
    struct client *c = arg;
    if (c->state != CLIENT_WAIT_HEADER) {
        client_stream_error(c, XMPP_COND_STREAM_INVALID_XML, "a second stream header");
        return -1;
    }
    return stream_on_open(c, hdr);
}

static void xs_on_close(void *arg)
{
    struct client *c = arg;
    log_info(&c->lc, "client closed the stream");
    client_close(c, "client closed the stream");
}

static const struct xstream_ops client_xs_ops = {xs_on_open, xs_on_stanza, xs_on_close};

/* ---- connection events --------------------------------------------------- */

static void on_read(struct conn *conn, struct evbuffer *in, void *arg)
{
    struct client *c = arg;
    (void)conn;
    size_t total = evbuffer_get_length(in);
    if (c->state != CLIENT_CLOSING)
        limits_on_input(c, total);
    struct err err = {0};
    c->restarted = false;
    while (c->state != CLIENT_CLOSING && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        int rc = xstream_feed(c->xs, v.iov_base, v.iov_len, &err);
        evbuffer_drain(in, v.iov_len);
        if (rc < 0 && c->state != CLIENT_CLOSING)
            client_stream_error(c, err.cond, "%s", err.text);
        /* Bytes after a STARTTLS or SASL restart belong to the old stream
         * (RFC 6120 §5.3.3, §6.4.6): dropped, never parsed. */
        if (c->restarted)
            break;
    }
    if (c->state == CLIENT_CLOSING || c->restarted)
        evbuffer_drain(in, evbuffer_get_length(in));
    /* Between stanzas the parser goes back to the pool, so an idle client
     * costs no parser; refused inside a stanza, kept until its end. A
     * closing client reads nothing more: its stream goes now, not after
     * the close grace period (a crowd leaving at once would otherwise hold
     * a parser each). */
    if (c->state != CLIENT_CLOSING)
        (void)xstream_release(c->xs);
    else
        xstream_free(&c->xs);
}

static void on_tls(struct conn *conn, void *arg)
{
    struct client *c = arg;
    c->tls = true;
    log_debug(&c->lc, "TLS %s established%s%s", conn_tls_version(conn),
              conn_tls_sni(conn) ? ", SNI " : "", conn_tls_sni(conn) ? conn_tls_sni(conn) : "");
    if (c->state == CLIENT_TLS_HANDSHAKE)
        c->state = CLIENT_WAIT_HEADER;
}

static void client_free(struct client *c)
{
    struct c2s *c2s = c->c2s;
    list_remove(&c->all_link);
    c2s->clients.count--;
    xstream_free(&c->xs);
    free(c->local);
    free(c->lang);
    free(c->bind_id);
    free(c);
}

static void on_close(struct conn *conn, const char *reason, void *arg)
{
    struct client *c = arg;
    (void)conn;
    if (c->state != CLIENT_CLOSING) {
        log_info(&c->lc, "connection closed: %s", reason ? reason : "?");
        client_shutdown(c);
    }
    client_free(c);
}

static const struct conn_ops client_conn_ops = {on_read, NULL, on_tls, on_close};

/* ---- accept ----------------------------------------------------------------- */

/* Over max-connections: a stream error on the STARTTLS port, a plain close
 * on the TLS port (speaking TLS would cost a handshake). */
static void refuse(struct c2s *c2s, int fd, bool direct_tls)
{
    static const char msg[] =
        "<?xml version='1.0'?><stream:stream xmlns='" XML_NS_CLIENT "' xmlns:stream='" XML_NS_STREAM
        "' version='1.0'><stream:error><resource-constraint xmlns='" XMPP_NS_STREAMS
        "'/><text xmlns='" XMPP_NS_STREAMS "'>too many connections; try again later</text>"
        "</stream:error></stream:stream>";
    c2s->stats.refused++;
    if (!direct_tls)
        (void)send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
    int64_t now = c2s_now_ms();
    if (now - c2s->clients.refused_logged_ms >= 1000) { /* a flood logs once a second */
        c2s->clients.refused_logged_ms = now;
        log_warn(&c2s->lc, "%zu connections: new connection refused (max-connections); %llu so far",
                 c2s->clients.count, (unsigned long long)c2s->stats.refused);
    }
}

void client_accept(struct c2s *c2s, int fd, const struct sockaddr *sa, bool direct_tls)
{
    if (c2s->stopping || c2s->clients.count >= (size_t)c2s->cfg->max_connections ||
        (direct_tls && c2s->tls.creds == NULL)) {
        refuse(c2s, fd, direct_tls);
        return;
    }
    struct client *c = xcalloc(1, sizeof(*c));
    c->c2s = c2s;
    c->direct_tls = direct_tls;
    c->state = direct_tls ? CLIENT_TLS_HANDSHAKE : CLIENT_WAIT_HEADER;
    list_init(&c->all_link);
    list_push_tail(&c2s->clients.all, &c->all_link);
    c2s->clients.count++;
    c2s->stats.accepted++;
    c->conn = conn_new(c2s->base, fd, &client_conn_ops, c);
    client_set_log_prefix(c);
    (void)sa;
    struct xstream_limits lim = {.max_stanza = c2s->cfg->max_stanza};
    c->xs = xstream_new(&lim, &client_xs_ops, c, 0);
    xstream_set_pool(c->xs, c2s->clients.parsers);
    limits_client_new(c);
    log_debug(&c->lc, "connection accepted%s", direct_tls ? " (direct TLS)" : "");
    if (direct_tls) {
        struct err err = {0};
        if (conn_starttls_server(c->conn, c2s->tls.creds, &err) < 0) {
            log_warn(&c->lc, "cannot start TLS: %s", err.text);
            client_shutdown(c);
            conn_close(c->conn, "TLS setup failed", 0);
        }
    }
}

/* ---- output ----------------------------------------------------------------- */

void client_write(struct client *c, const char *data, size_t len)
{
    if (c->state == CLIENT_CLOSING)
        return;
    conn_write(c->conn, data, len);
    limits_on_output(c);
}

void client_write_str(struct client *c, const char *s)
{
    client_write(c, s, strlen(s));
}

void client_write_node(struct client *c, const struct xml_node *st)
{
    struct buf b = BUF_INIT;
    buf_reserve(&b, 1024); /* most stanzas: one allocation, not four */
    xml_serialize(&b, st, XML_NS_CLIENT);
    client_write(c, b.data, b.len);
    buf_fini(&b);
}

void client_iq_reply(struct client *c, const char *id, const char *from,
                     const struct xml_node *payload, enum xmpp_cond cond)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "<iq type='%s'", cond == XMPP_COND_NONE ? "result" : "error");
    xml_append_attr(&b, "id", id ? id : "");
    if (from != NULL)
        xml_append_attr(&b, "from", from);
    if (payload == NULL && cond == XMPP_COND_NONE) {
        buf_append_str(&b, "/>");
    } else {
        buf_append_char(&b, '>');
        if (payload != NULL)
            xml_serialize(&b, payload, XML_NS_CLIENT);
        if (cond != XMPP_COND_NONE)
            buf_printf(&b, "<error type='%s'><%s xmlns='" XMPP_NS_STANZAS "'/></error>",
                       xmpp_cond_type(cond), xmpp_cond_name(cond));
        buf_append_str(&b, "</iq>");
    }
    client_write(c, b.data, b.len);
    buf_fini(&b);
}

void client_iq_error(struct client *c, const struct xml_node *iq, enum xmpp_cond cond)
{
    /* RFC 6120 §8.2.3: a result or an error is never answered. */
    const char *type = xml_attr_get(iq, "type");
    if (type != NULL && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0))
        return;
    client_iq_reply(c, xml_attr_get(iq, "id"), xml_attr_get(iq, "to"), NULL, cond);
}

void client_iq_result(struct client *c, const struct xml_node *iq, const struct xml_node *payload)
{
    client_iq_reply(c, xml_attr_get(iq, "id"), xml_attr_get(iq, "to"), payload, XMPP_COND_NONE);
}

/* ---- closing ------------------------------------------------------------------ */

/* Everything but the free: the session learns the client is gone, pending
 * store operations are orphaned, timers forget the client. */
static void client_shutdown(struct client *c)
{
    c->state = CLIENT_CLOSING;
    if (c->op != NULL) {
        c->op->client = NULL;
        c->op = NULL;
    }
    sasl_state_free(c);
    if (c->sess != NULL) {
        session_detach(c->sess, true);
        c->sess = NULL;
    }
    limits_client_gone(c);
}

void client_close(struct client *c, const char *reason)
{
    if (c->state == CLIENT_CLOSING)
        return;
    if (c->header_sent)
        client_write_str(c, "</stream:stream>");
    client_shutdown(c);
    conn_close(c->conn, reason, c->c2s->stopping ? 500 : CLOSE_GRACE_MS);
}

void client_stream_error(struct client *c, enum xmpp_cond cond, const char *fmt, ...)
{
    if (c->state == CLIENT_CLOSING)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (!xmpp_cond_is_stream(cond))
        cond = XMPP_COND_STREAM_UNDEFINED_CONDITION;
    log_info(&c->lc, "stream error %s: %s", xmpp_cond_name(cond), text);
    if (!c->header_sent)
        stream_send_header(c, NULL);
    struct buf b = BUF_INIT;
    xml_append_stream_error(&b, cond, text);
    client_write(c, b.data, b.len);
    buf_fini(&b);
    client_close(c, xmpp_cond_name(cond));
}

void client_close_all(struct c2s *c2s, enum xmpp_cond cond, const char *text)
{
    for (struct list *l = c2s->clients.all.next; l != &c2s->clients.all; l = l->next) {
        struct client *c = LIST_ENTRY(l, struct client, all_link);
        client_stream_error(c, cond, "%s", text);
    }
}

void client_parsers_tick(struct c2s *c2s)
{
    xstream_pool_trim(c2s->clients.parsers);
    if (!log_enabled(LOG_LEVEL_DEBUG))
        return;
    size_t lent, idle, created;
    xstream_pool_stats(c2s->clients.parsers, &lent, &idle, &created);
    char line[sizeof(c2s->clients.parsers_logged)];
    snprintf(line, sizeof(line), "%zu lent to %zu clients, %zu idle, %zu created so far", lent,
             c2s->clients.count, idle, created);
    if (strcmp(line, c2s->clients.parsers_logged) != 0) {
        memcpy(c2s->clients.parsers_logged, line, sizeof(line));
        log_debug(&c2s->lc, "parsers: %s", line);
    }
}

void client_restart(struct client *c)
{
    c->header_sent = false;
    c->restarted = true;
    c->state = CLIENT_WAIT_HEADER;
    xstream_reset(c->xs);
}

void client_pause(struct client *c, enum client_pause why, bool on)
{
    uint8_t before = c->pause;
    if (on)
        c->pause |= (uint8_t)why;
    else
        c->pause &= (uint8_t)~why;
    if ((before == 0) != (c->pause == 0) && c->state != CLIENT_CLOSING)
        conn_pause_read(c->conn, c->pause != 0);
}

/* ---- naming --------------------------------------------------------------------- */

void client_ip(const struct client *c, char *out, size_t len)
{
    const struct sockaddr *sa = conn_peer_addr(c->conn);
    out[0] = '\0';
    if (sa != NULL && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)len);
    else if (sa != NULL && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)len);
}

void client_set_log_prefix(struct client *c)
{
    const char *jid = c->sess != NULL ? session_jid(c->sess) : NULL;
    if (jid != NULL)
        log_ctx_set(&c->lc, "c2s %s %s", conn_peer(c->conn), jid);
    else if (c->local != NULL && c->domain != NULL)
        log_ctx_set(&c->lc, "c2s %s %s@%s", conn_peer(c->conn), c->local, c->domain);
    else
        log_ctx_set(&c->lc, "c2s %s", conn_peer(c->conn));
}
