/* SPDX-License-Identifier: MIT */
/* XEP-0114 client: connect, open the stream, prove the secret, bind names,
 * then pass stanzas both ways. Any failure tears the link down and retries
 * after a delay that doubles up to a cap, with jitter so that restarted
 * daemons do not reconnect in lockstep. */
#include "comp_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "comp_handshake.h"
#include "err.h"
#include "log.h"
#include "netaddr.h"
#include "xml.h"

enum cc_state {
    CC_IDLE,       /* waiting for the retry timer */
    CC_CONNECTING, /* TCP connect in progress */
    CC_OPENING,    /* header sent, waiting for the router's */
    CC_HANDSHAKE,  /* handshake sent, waiting for <handshake/> */
    CC_BINDING,    /* binds sent, waiting for their answers */
    CC_UP,
};

struct comp_client {
    struct event_base *base;
    struct comp_client_cfg cfg;
    char **binds;
    size_t nbinds;
    struct comp_client_ops ops;
    void *arg;
    struct log_ctx lc;

    enum cc_state state;
    struct bufferevent *bev;
    struct xstream *xs;
    struct event *retry;
    long backoff_ms;
    size_t binds_pending;
};

static void cc_connect(struct comp_client *cc);

static void cc_schedule_retry(struct comp_client *cc)
{
    long lo = cc->cfg.backoff_min_ms, hi = cc->cfg.backoff_max_ms;
    if (cc->backoff_ms == 0)
        cc->backoff_ms = lo;
    unsigned r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) < 0)
        r = 0;
    long delay = cc->backoff_ms / 2 + (long)(r % (unsigned long)(cc->backoff_ms / 2 + 1));
    cc->backoff_ms = cc->backoff_ms * 2 > hi ? hi : cc->backoff_ms * 2;
    struct timeval tv = {delay / 1000, (delay % 1000) * 1000};
    cc->state = CC_IDLE;
    event_add(cc->retry, &tv);
    log_debug(&cc->lc, "reconnecting in %ld ms", delay);
}

/* Drops the link; notifies the owner if it was up. */
static void cc_drop(struct comp_client *cc, const char *why)
{
    bool was_up = cc->state == CC_UP;
    if (cc->bev != NULL) {
        bufferevent_free(cc->bev);
        cc->bev = NULL;
    }
    if (was_up)
        log_warn(&cc->lc, "link to router lost: %s", why);
    else
        log_info(&cc->lc, "cannot reach router: %s", why);
    cc_schedule_retry(cc);
    if (was_up && cc->ops.on_down != NULL)
        cc->ops.on_down(cc, cc->arg);
}

static void cc_write(struct comp_client *cc, const char *s, size_t n)
{
    bufferevent_write(cc->bev, s, n);
}

static void cc_send_bind(struct comp_client *cc, const char *name)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<bind xmlns='" PL_NS_ROUTER "'");
    xml_append_attr(&b, "name", name);
    buf_append_str(&b, "/>");
    cc_write(cc, b.data, b.len);
    buf_fini(&b);
}

static void cc_become_up(struct comp_client *cc)
{
    cc->state = CC_UP;
    cc->backoff_ms = 0;
    log_info(&cc->lc, "link to router up");
    if (cc->ops.on_up != NULL)
        cc->ops.on_up(cc, cc->arg);
}

static int on_open(void *arg, const struct xml_node *hdr)
{
    struct comp_client *cc = arg;
    const char *id = xml_attr_get(hdr, "id");
    if (cc->state != CC_OPENING || id == NULL || id[0] == '\0') {
        struct err e;
        err_set(&e, XMPP_COND_STREAM_INVALID_XML, "router stream header without id");
        xstream_fail(cc->xs, &e);
        return -1;
    }
    char digest[COMP_DIGEST_LEN + 1];
    comp_handshake_digest(id, cc->cfg.secret, digest);
    struct buf b = BUF_INIT;
    buf_printf(&b, "<handshake>%s</handshake>", digest);
    cc_write(cc, b.data, b.len);
    buf_fini(&b);
    cc->state = CC_HANDSHAKE;
    return 0;
}

static void on_bind_answer(struct comp_client *cc, const struct xml_node *st)
{
    const char *name = xml_attr_get(st, "name");
    const char *type = xml_attr_get(st, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        const struct xml_node *e = xml_child(st, NULL, "error");
        const struct xml_node *c = e ? xml_first_elem(e) : NULL;
        const char *cond = c ? c->name : "undefined-condition";
        log_error(&cc->lc, "router refused to bind %s: %s", name ? name : "?", cond);
        if (cc->ops.on_bind_error != NULL)
            cc->ops.on_bind_error(cc, name ? name : "", cond, cc->arg);
    }
    if (cc->state == CC_BINDING && cc->binds_pending > 0 && --cc->binds_pending == 0)
        cc_become_up(cc);
}

static int on_stanza(void *arg, struct xml_node *st, const char *raw, size_t len)
{
    struct comp_client *cc = arg;
    if (cc->state == CC_HANDSHAKE) {
        if (!xml_is(st, XML_NS_COMP, "handshake")) {
            struct err e;
            if (xml_is(st, XML_NS_STREAM, "error")) {
                const struct xml_node *c = xml_first_elem(st);
                err_set(&e, XMPP_COND_STREAM_NOT_AUTHORIZED, "router refused the handshake: %s",
                        c ? c->name : "?");
            } else {
                err_set(&e, XMPP_COND_STREAM_NOT_AUTHORIZED, "<%s/> before the handshake reply",
                        st->name);
            }
            xstream_fail(cc->xs, &e);
            return -1;
        }
        cc->binds_pending = cc->nbinds;
        if (cc->cfg.watch)
            cc_write(cc, "<watch xmlns='" PL_NS_ROUTER "'/>",
                     strlen("<watch xmlns='" PL_NS_ROUTER "'/>"));
        for (size_t i = 0; i < cc->nbinds; i++)
            cc_send_bind(cc, cc->binds[i]);
        if (cc->nbinds == 0)
            cc_become_up(cc);
        else
            cc->state = CC_BINDING;
        return 0;
    }
    if (xml_is(st, PL_NS_ROUTER, "bind")) {
        on_bind_answer(cc, st);
        return 0;
    }
    if (xml_is(st, XML_NS_STREAM, "error")) {
        const struct xml_node *c = xml_first_elem(st);
        struct err e;
        err_set(&e, XMPP_COND_STREAM_UNDEFINED_CONDITION, "router sent stream error %s",
                c ? c->name : "?");
        xstream_fail(cc->xs, &e);
        return -1;
    }
    if (cc->ops.on_stanza != NULL)
        cc->ops.on_stanza(cc, st, raw, len, cc->arg);
    return 0;
}

static void on_close(void *arg)
{
    struct comp_client *cc = arg;
    struct err e;
    err_set(&e, XMPP_COND_STREAM_RESET, "router closed the stream");
    xstream_fail(cc->xs, &e);
}

static const struct xstream_ops cc_xs_ops = {on_open, on_stanza, on_close};

static void on_read(struct bufferevent *bev, void *arg)
{
    struct comp_client *cc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct err err = {0};
    int rc = 0;
    while (rc == 0 && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        rc = xstream_feed(cc->xs, v.iov_base, v.iov_len, &err);
        /* The callbacks may have dropped the link (bev freed). */
        if (cc->bev != bev)
            return;
        evbuffer_drain(in, v.iov_len);
    }
    if (rc < 0)
        cc_drop(cc, err.text);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct comp_client *cc = arg;
    if (what & BEV_EVENT_CONNECTED) {
        /* Stanzas are small and latency matters more than packet count. */
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        static const char fmt[] =
            "<?xml version='1.0'?><stream:stream "
            "xmlns:stream='" XML_NS_STREAM "' xmlns='" XML_NS_COMP "' to='%s'>";
        struct buf b = BUF_INIT;
        struct buf name = BUF_INIT;
        xml_escape(&name, cc->cfg.name, strlen(cc->cfg.name), true);
        buf_printf(&b, fmt, buf_cstr(&name));
        cc->state = CC_OPENING;
        cc_write(cc, b.data, b.len);
        buf_fini(&b);
        buf_fini(&name);
        return;
    }
    if (what & BEV_EVENT_EOF)
        cc_drop(cc, "connection closed by the router");
    else if (what & BEV_EVENT_ERROR)
        cc_drop(cc, strerror(EVUTIL_SOCKET_ERROR()));
}

static void cc_connect(struct comp_client *cc)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct err err = {0};
    if (netaddr_parse(cc->cfg.address, cc->cfg.port, &ss, &len, &err) < 0) {
        log_error(&cc->lc, "router address: %s", err.text);
        cc_schedule_retry(cc);
        return;
    }
    xstream_reset(cc->xs);
    cc->bev = bufferevent_socket_new(cc->base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(cc->bev, on_read, NULL, on_event, cc);
    bufferevent_set_max_single_read(cc->bev, 256 * 1024);
    bufferevent_set_max_single_write(cc->bev, 256 * 1024);
    bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
    cc->state = CC_CONNECTING;
    if (bufferevent_socket_connect(cc->bev, (struct sockaddr *)&ss, (int)len) < 0)
        cc_drop(cc, strerror(errno));
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cc_connect(arg);
}

struct comp_client *comp_client_new(struct event_base *base, const struct comp_client_cfg *cfg,
                                    const struct comp_client_ops *ops, void *arg)
{
    struct comp_client *cc = xcalloc(1, sizeof(*cc));
    cc->base = base;
    cc->cfg = *cfg;
    cc->cfg.address = xstrdup(cfg->address);
    cc->cfg.name = xstrdup(cfg->name);
    cc->cfg.secret = xstrdup(cfg->secret);
    cc->cfg.binds = NULL;
    if (cc->cfg.backoff_min_ms <= 0)
        cc->cfg.backoff_min_ms = 100;
    if (cc->cfg.backoff_max_ms <= 0)
        cc->cfg.backoff_max_ms = 10000;
    cc->binds = xcalloc(cfg->nbinds + 1, sizeof(*cc->binds));
    for (size_t i = 0; i < cfg->nbinds; i++)
        cc->binds[i] = xstrdup(cfg->binds[i]);
    cc->nbinds = cfg->nbinds;
    cc->ops = *ops;
    cc->arg = arg;
    log_ctx_set(&cc->lc, "router link %s:%d as %s", cfg->address, cfg->port, cfg->name);
    cc->xs = xstream_new(&cfg->limits, &cc_xs_ops, cc, 0);
    cc->retry = evtimer_new(base, on_retry, cc);
    cc_connect(cc);
    return cc;
}

void comp_client_free(struct comp_client **ccp)
{
    struct comp_client *cc = *ccp;
    if (cc == NULL)
        return;
    if (cc->bev != NULL) {
        /* Best effort: the kernel sends what fits before the close. */
        if (cc->state >= CC_OPENING) {
            struct evbuffer *out = bufferevent_get_output(cc->bev);
            evbuffer_add(out, "</stream:stream>", 16);
            evbuffer_write(out, bufferevent_getfd(cc->bev));
        }
        bufferevent_free(cc->bev);
    }
    event_free(cc->retry);
    xstream_free(&cc->xs);
    for (size_t i = 0; i < cc->nbinds; i++)
        free(cc->binds[i]);
    free(cc->binds);
    free((char *)cc->cfg.address);
    free((char *)cc->cfg.name);
    free((char *)cc->cfg.secret);
    free(cc);
    *ccp = NULL;
}

bool comp_client_is_up(const struct comp_client *cc)
{
    return cc->state == CC_UP;
}

int comp_client_send(struct comp_client *cc, const char *data, size_t len)
{
    if (cc->state != CC_UP)
        return -1;
    cc_write(cc, data, len);
    return 0;
}

size_t comp_client_pending(const struct comp_client *cc)
{
    return cc->bev ? evbuffer_get_length(bufferevent_get_output(cc->bev)) : 0;
}

void comp_client_bind(struct comp_client *cc, const char *name)
{
    cc->binds = xrealloc(cc->binds, (cc->nbinds + 2) * sizeof(*cc->binds));
    cc->binds[cc->nbinds++] = xstrdup(name);
    if (cc->state == CC_UP)
        cc_send_bind(cc, name);
}
