/* SPDX-License-Identifier: MIT */
/* Component connections: accept, read and parse, write, back-pressure, and
 * the deferred close that keeps a conn valid until its callback returns. */
#include "router.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "alloc.h"
#include "buf.h"
#include "hmap.h"
#include "netaddr.h"
#include "xml.h"
#include "xstream.h"

#define MAX_IO_CHUNK  (256 * 1024)
#define CLOSE_FLUSH_S 5

static void peer_free(struct peer *c)
{
    struct router *r = c->r;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    xstream_free(&c->xs);
    event_free(c->timer);
    for (size_t i = 0; i < c->nbinds; i++)
        free(c->binds[i]);
    free(c->binds);
    free(c->name);
    free(c);
}

static void on_deferred_free(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    peer_free(arg);
}

static void schedule_free(struct peer *c)
{
    if (c->free_scheduled)
        return;
    c->free_scheduled = true;
    event_del(c->timer);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    struct timeval now = {0, 0};
    event_base_once(c->r->base, -1, EV_TIMEOUT, on_deferred_free, c, &now);
}

static void resume_paused(struct router *r)
{
    struct peer *list = r->paused;
    r->paused = NULL;
    for (struct peer *c = list, *next; c != NULL; c = next) {
        next = c->paused_next;
        c->paused_next = NULL;
        c->paused = false;
        if (c->state == PEER_CLOSING)
            continue;
        bufferevent_enable(c->bev, EV_READ);
        /* Input already buffered will not raise another read event. */
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
            bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
    }
}

void peer_pause(struct peer *src)
{
    if (src->paused || src->state == PEER_CLOSING)
        return;
    src->paused = true;
    src->r->stats.pauses++;
    bufferevent_disable(src->bev, EV_READ);
    src->paused_next = src->r->paused;
    src->r->paused = src;
    log_debug(&src->lc, "paused: a destination has more than %zu bytes queued",
              src->r->cfg->output_limit);
}

static void unpause(struct peer *c)
{
    if (!c->paused)
        return;
    for (struct peer **pp = &c->r->paused; *pp != NULL; pp = &(*pp)->paused_next) {
        if (*pp == c) {
            *pp = c->paused_next;
            break;
        }
    }
    c->paused = false;
    c->paused_next = NULL;
}

void peer_write(struct peer *c, const char *data, size_t len)
{
    if (c->state == PEER_CLOSING && c->free_scheduled)
        return;
    bufferevent_write(c->bev, data, len);
}

/* The output dropped below the low watermark (half the limit): whoever was
 * paused may go on. */
static void on_write(struct bufferevent *bev, void *arg)
{
    struct peer *c = arg;
    if (c->state == PEER_CLOSING) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
            schedule_free(c);
        return;
    }
    if (c->r->paused != NULL)
        resume_paused(c->r);
}

static int xs_on_open(void *arg, const struct xml_node *hdr)
{
    struct peer *c = arg;
    if (c->state != PEER_OPENING) {
        peer_stream_error(c, XMPP_COND_STREAM_INVALID_XML, "second stream header");
        return -1;
    }
    return handshake_on_open(c, hdr);
}

static int xs_on_stanza(void *arg, struct xml_node *st, const char *raw, size_t len)
{
    struct peer *c = arg;
    switch (c->state) {
    case PEER_HANDSHAKE:
        handshake_on_stanza(c, st, raw, len);
        break;
    case PEER_READY:
        route_stanza(c, st, raw, len);
        break;
    case PEER_OPENING:
    case PEER_CLOSING:
        break;
    }
    return c->state == PEER_CLOSING ? -1 : 0;
}

static void xs_on_close(void *arg)
{
    struct peer *c = arg;
    log_info(&c->lc, "component closed its stream");
    peer_write(c, "</stream:stream>", 16);
    peer_close(c);
}

static const struct xstream_ops peer_xs_ops = {xs_on_open, xs_on_stanza, xs_on_close};

static void on_read(struct bufferevent *bev, void *arg)
{
    struct peer *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct err err = {0};
    while (c->state != PEER_CLOSING && !c->paused && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        int rc = xstream_feed(c->xs, v.iov_base, v.iov_len, &err);
        evbuffer_drain(in, v.iov_len);
        if (rc < 0 && c->state != PEER_CLOSING)
            peer_stream_error(c, err.cond, "%s", err.text);
    }
    if (c->state == PEER_CLOSING)
        evbuffer_drain(in, evbuffer_get_length(in));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct peer *c = arg;
    (void)bev;
    if (c->state == PEER_CLOSING) {
        schedule_free(c);
        return;
    }
    if (what & BEV_EVENT_EOF)
        log_info(&c->lc, "connection closed without </stream:stream>");
    else
        log_info(&c->lc, "connection error: %s",
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    peer_close(c);
    schedule_free(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct peer *c = arg;
    (void)fd;
    (void)what;
    if (c->state == PEER_CLOSING)
        schedule_free(c); /* the peer did not read its stream error in time */
    else
        handshake_on_timeout(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    struct router *r = arg;
    (void)l;
    (void)salen;
    /* Stanzas are small and latency matters more than packet count. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct peer *c = xcalloc(1, sizeof(*c));
    c->r = r;
    netaddr_format(sa, c->peer, sizeof(c->peer));
    log_ctx_set(&c->lc, "%s", c->peer);
    c->bev = bufferevent_socket_new(r->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_set_max_single_read(c->bev, MAX_IO_CHUNK);
    bufferevent_set_max_single_write(c->bev, MAX_IO_CHUNK);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, r->cfg->output_limit / 2, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct xstream_limits lim = {.max_stanza = r->cfg->max_stanza};
    c->xs = xstream_new(&lim, &peer_xs_ops, c, XSTREAM_SHALLOW);
    c->timer = evtimer_new(r->base, on_timer, c);
    long ms = r->cfg->handshake_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    c->next = r->conns;
    if (r->conns != NULL)
        r->conns->prev = c;
    r->conns = c;
    log_debug(&c->lc, "connection accepted");
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    /* EMFILE and friends: logged, and the listener keeps going. */
    log_error(NULL, "accept failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

int router_listen(struct router *r, struct err *err)
{
    const char *host = r->cfg->listen ? r->cfg->listen : r->common->router_address;
    long port = r->cfg->port ? r->cfg->port : r->common->router_port;
    r->listener = netaddr_listen(r->base, host, port, 512, on_accept, on_accept_error, r, err);
    if (r->listener == NULL)
        return -1;
    log_notice(NULL, "listening for components on %s:%ld", host, port);
    return 0;
}

static void send_header(struct peer *c, const char *from)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns:stream='" XML_NS_STREAM
                       "' xmlns='" XML_NS_COMP "'");
    if (from != NULL)
        xml_append_attr(&b, "from", from);
    xml_append_attr(&b, "id", c->stream_id);
    buf_append_char(&b, '>');
    peer_write(c, b.data, b.len);
    buf_fini(&b);
    c->header_sent = true;
}

void peer_stream_error(struct peer *c, enum xmpp_cond cond, const char *fmt, ...)
{
    if (c->state == PEER_CLOSING)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (!xmpp_cond_is_stream(cond))
        cond = XMPP_COND_STREAM_UNDEFINED_CONDITION;
    log_warn(&c->lc, "stream error %s: %s", xmpp_cond_name(cond), text);
    if (!c->header_sent) {
        comp_stream_id(c->stream_id);
        send_header(c, NULL);
    }
    struct buf b = BUF_INIT;
    buf_printf(&b,
               "<stream:error><%s xmlns='" XMPP_NS_STREAMS "'/><text xmlns='" XMPP_NS_STREAMS "'>",
               xmpp_cond_name(cond));
    xml_escape(&b, text, strlen(text), false);
    buf_append_str(&b, "</text></stream:error></stream:stream>");
    peer_write(c, b.data, b.len);
    buf_fini(&b);
    peer_close(c);
}

void peer_send_header(struct peer *c, const char *from)
{
    send_header(c, from);
}

void peer_close(struct peer *c)
{
    if (c->state == PEER_CLOSING)
        return;
    bool was_ready = c->state == PEER_READY;
    c->state = PEER_CLOSING;
    unpause(c);
    if (was_ready) {
        bind_remove_all(c);
        hmap_del(c->r->by_name, c->name);
        notice_component(c->r, c, false);
        log_notice(&c->lc, "component %s down", c->name);
    }
    bufferevent_disable(c->bev, EV_READ);
    /* Flush what is queued, then free; give up after CLOSE_FLUSH_S. */
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        schedule_free(c);
        return;
    }
    struct timeval tv = {CLOSE_FLUSH_S, 0};
    evtimer_add(c->timer, &tv);
}

void peer_close_all(struct router *r, enum xmpp_cond cond)
{
    for (struct peer *c = r->conns; c != NULL; c = c->next) {
        if (c->state != PEER_CLOSING)
            peer_stream_error(c, cond, "the router is shutting down");
    }
}

void peer_free_all(struct router *r)
{
    /* Deferred frees still pending never run once the loop has ended. */
    while (r->conns != NULL)
        peer_free(r->conns);
}
