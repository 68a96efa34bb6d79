/* SPDX-License-Identifier: MIT */
/* A stream connection on libevent: non-blocking reads and writes through
 * evbuffers, STARTTLS or direct TLS with GnuTLS driven by socket readiness,
 * output watermarks, and a close that flushes first and frees later. */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/x509-ext.h>

#include "alloc.h"
#include "err.h"
#include "log.h"
#include "netaddr.h"
#include "conn_private.h"

#define READ_MAX        (64 * 1024) /* plaintext bytes taken per read callback */
#define TLS_CHUNK       16384       /* the plaintext of one full TLS record */
#define SEND_IOV_MAX    16
#define CLOSE_DRAIN_MAX (64 * 1024) /* unread input swallowed before close() */
#define RETRY_MAX       64          /* non-fatal GnuTLS results retried in one go */
#define XMPP_ADDR_OID   "1.3.6.1.5.5.7.8.5"
#define XMPP_ADDR_MAX   3071 /* RFC 7622: a JID is at most 3071 bytes */

enum conn_state {
    CONN_OPEN,      /* plaintext, or TLS once tls_up */
    CONN_TLS_FLUSH, /* STARTTLS asked: plain_left bytes of plaintext go out first */
    CONN_HANDSHAKE,
    CONN_CLOSING, /* conn_close: flushing, then close_notify; input discarded */
    CONN_CLOSED,  /* fd closed, on_close called, free scheduled */
};

struct conn {
    struct event_base *base;
    int fd;
    const struct conn_ops *ops;
    void *arg;
    enum conn_state state;
    struct event *rev, *wev;
    struct event *grace; /* created by conn_close with a grace period */
    bool rev_on, wev_on;
    bool write_blocked; /* the last write hit EAGAIN: wait for the socket */
    bool flush_queued;  /* wev made active by update_events, not yet run */
    struct evbuffer *in, *out;
    bool read_paused;
    bool read_eof;  /* CLOSING: the peer has finished sending */
    bool close_now; /* CLOSING with no grace: one flush attempt, then close */
    size_t wm_low, wm_high;
    bool above_high;

    gnutls_session_t tls;
    gnutls_certificate_credentials_t client_cred; /* client side, owned */
    struct tls_creds *creds;                      /* server side, one reference */
    bool tls_up;
    bool hs_wants_write;
    bool recv_wants_write; /* gnutls_record_recv must be retried once writable */
    bool bye_done;
    size_t plain_left;   /* TLS_FLUSH: plaintext bytes still to write */
    size_t send_pending; /* length of the gnutls_record_send that hit EAGAIN */
    const char *version; /* GnuTLS's static name */
    char *sni;
    char *verify_name; /* client side: the name the server must prove */
    bool peer_verified;
    char *xmpp_addr;

    /* Only the families conn_new formats; an idle conn is mostly this
     * struct, so no sockaddr_storage (128 bytes). */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer_addr;
    char peer[56]; /* "[v6]:port" */
    char *reason;  /* why it closes, from conn_close or shut on */
};

static void set_reason(struct conn *c, const char *reason)
{
    char *copy = xstrdup(reason != NULL ? reason : "closed");
    free(c->reason);
    c->reason = copy;
}

/* libevent reports allocation failure as a plain -1 or NULL; treated like
 * xmalloc's (alloc.h). */
static void must(bool ok)
{
    if (!ok)
        log_fatal(NULL, PL_EXIT_NOMEM, "out of memory in libevent");
}

static void set_event(struct event *ev, bool *on, bool want)
{
    if (want && !*on)
        must(event_add(ev, NULL) == 0);
    else if (!want && *on)
        event_del(ev);
    *on = want;
}

/* As set_event for wev. libevent silently leaves an event that is active
 * out of epoll when it is added, so a queued flush is taken off the active
 * queue first (update_events queues it again if still useful); event_del
 * also drops it from the queue. */
static void set_write_event(struct conn *c, bool want)
{
    if (want && !c->wev_on && c->flush_queued) {
        event_del(c->wev);
        c->flush_queued = false;
    } else if (!want && c->wev_on) {
        c->flush_queued = false;
    }
    set_event(c->wev, &c->wev_on, want);
}

/* Registers exactly the readiness the current state waits for. */
static void update_events(struct conn *c)
{
    bool want_r = false, want_w = false;
    switch (c->state) {
    case CONN_OPEN:
        want_r = !c->read_paused;
        want_w = (evbuffer_get_length(c->out) > 0 && c->write_blocked) || c->recv_wants_write;
        break;
    case CONN_TLS_FLUSH:
        /* Anything read now would be plaintext the client must not send. */
        want_w = true;
        break;
    case CONN_HANDSHAKE:
        want_r = true;
        want_w = c->hs_wants_write;
        break;
    case CONN_CLOSING:
        want_r = !c->read_eof;
        want_w = true;
        break;
    case CONN_CLOSED:
        break;
    }
    set_event(c->rev, &c->rev_on, want_r);
    set_write_event(c, want_w);
    /* Output on a socket that has room is written once per loop iteration,
     * after the callbacks that queued it, without registering for
     * writability: enabling and disabling the write event around every
     * write cost two epoll_ctl calls each time. An event already active
     * stays so once. */
    if (c->state == CONN_OPEN && !c->write_blocked && !c->flush_queued &&
        evbuffer_get_length(c->out) > 0) {
        c->flush_queued = true;
        event_active(c->wev, EV_WRITE, 1);
    }
}

static void conn_free(struct conn *c)
{
    event_free(c->rev);
    event_free(c->wev);
    if (c->grace != NULL)
        event_free(c->grace);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    if (c->tls != NULL)
        gnutls_deinit(c->tls);
    if (c->client_cred != NULL)
        gnutls_certificate_free_credentials(c->client_cred);
    tls_creds_unref(c->creds);
    free(c->sni);
    free(c->verify_name);
    free(c->xmpp_addr);
    free(c->reason);
    free(c);
}

static void on_deferred_free(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_free(arg);
}

/* The one way a conn ends: close the fd, tell the owner, free later. */
static void shut(struct conn *c, const char *reason)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    if (reason != c->reason || c->reason == NULL)
        set_reason(c, reason);
    event_del(c->rev);
    event_del(c->wev);
    if (c->grace != NULL)
        event_del(c->grace);
    c->rev_on = c->wev_on = false;
    close(c->fd);
    c->fd = -1;
    if (c->ops->on_close != NULL)
        c->ops->on_close(c, c->reason, c->arg);
    struct timeval now = {0, 0};
    must(event_base_once(c->base, -1, EV_TIMEOUT, on_deferred_free, c, &now) == 0);
}

static void shut_errno(struct conn *c, const char *what, int e)
{
    char reason[256];
    snprintf(reason, sizeof(reason), "%s failed: %s", what, strerror(e));
    shut(c, reason);
}

static void shut_tls(struct conn *c, const char *what, int rc)
{
    char reason[256];
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        snprintf(reason, sizeof(reason), "%s failed: %s (%s)", what, gnutls_strerror(rc),
                 gnutls_alert_get_name(gnutls_alert_get(c->tls)));
    } else if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t txt = {NULL, 0};
        unsigned status = gnutls_session_get_verify_cert_status(c->tls);
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) < 0)
            txt.data = NULL;
        snprintf(reason, sizeof(reason), "%s failed: certificate verification failed: %s", what,
                 txt.data != NULL ? (const char *)txt.data : "unknown reason");
        gnutls_free(txt.data);
    } else {
        snprintf(reason, sizeof(reason), "%s failed: %s", what, gnutls_strerror(rc));
    }
    shut(c, reason);
}

/* A graceful end: swallow what the peer sent so close() sends FIN, not a
 * reset that could destroy our last bytes in the peer's receive queue. */
static void finish(struct conn *c)
{
    char buf[4096];
    for (size_t n = 0; n < CLOSE_DRAIN_MAX; n += sizeof(buf)) {
        if (recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0)
            break;
    }
    shut(c, c->reason);
}

static void peer_gone(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        c->read_eof = true;
    else
        shut(c, "connection closed by peer");
}

static void deliver(struct conn *c)
{
    if (c->state == CONN_CLOSING) {
        evbuffer_drain(c->in, evbuffer_get_length(c->in));
        return;
    }
    if (c->state == CONN_OPEN && !c->read_paused && evbuffer_get_length(c->in) > 0)
        c->ops->on_read(c, c->in, c->arg);
}

static void read_plain(struct conn *c)
{
    int n = evbuffer_read(c->in, c->fd, READ_MAX);
    if (n == 0) {
        peer_gone(c);
        return;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        if (c->state == CONN_CLOSING)
            c->read_eof = true;
        else
            shut_errno(c, "read", errno);
        return;
    }
    /* Also after EAGAIN: conn_pause_read(false) asks for buffered input. */
    deliver(c);
}

/* Up to READ_MAX bytes of records; renegotiation requests are ignored (the
 * channel bindings must stay those of the first handshake). */
static void read_tls(struct conn *c)
{
    size_t total = 0;
    bool eof = false;
    for (int retries = 0; total < READ_MAX && retries < RETRY_MAX;) {
        struct evbuffer_iovec v;
        must(evbuffer_reserve_space(c->in, TLS_CHUNK, &v, 1) == 1);
        ssize_t r = gnutls_record_recv(c->tls, v.iov_base, TLS_CHUNK);
        if (r > 0) {
            v.iov_len = (size_t)r;
            must(evbuffer_commit_space(c->in, &v, 1) == 0);
            total += (size_t)r;
            continue;
        }
        if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) {
            eof = true;
            break;
        }
        if (r == GNUTLS_E_AGAIN) {
            if (gnutls_record_get_direction(c->tls) == 1)
                c->recv_wants_write = true;
            break;
        }
        if (r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_REHANDSHAKE || !gnutls_error_is_fatal(r)) {
            retries++;
            continue;
        }
        if (c->state == CONN_CLOSING) {
            c->read_eof = true;
            return;
        }
        shut_tls(c, "TLS read", (int)r);
        return;
    }
    deliver(c);
    if (eof && c->state != CONN_CLOSED) {
        peer_gone(c);
        return;
    }
    /* Decrypted records inside GnuTLS do not make the fd readable. */
    if (c->state == CONN_OPEN && !c->read_paused && gnutls_record_check_pending(c->tls) > 0)
        event_active(c->rev, EV_READ, 1);
}

/* Writes up to limit bytes of plaintext; returns how many, or -1 once the
 * conn is shut. */
static ssize_t send_plain(struct conn *c, size_t limit)
{
    size_t sent = 0;
    while (sent < limit && evbuffer_get_length(c->out) > 0) {
        struct evbuffer_iovec v[SEND_IOV_MAX];
        struct iovec iov[SEND_IOV_MAX];
        int n = evbuffer_peek(c->out, -1, NULL, v, SEND_IOV_MAX);
        if (n > SEND_IOV_MAX)
            n = SEND_IOV_MAX;
        size_t budget = limit - sent;
        int k = 0;
        for (int i = 0; i < n && budget > 0; i++) {
            size_t len = v[i].iov_len < budget ? v[i].iov_len : budget;
            iov[k].iov_base = v[i].iov_base;
            iov[k].iov_len = len;
            budget -= len;
            k++;
        }
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)k};
        ssize_t r = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->write_blocked = true;
                break;
            }
            shut_errno(c, "write", errno);
            return -1;
        }
        evbuffer_drain(c->out, (size_t)r);
        sent += (size_t)r;
    }
    return (ssize_t)sent;
}

/* GnuTLS keeps a record it could not write whole and must be called again
 * with the same data: those bytes stay at the head of out until accepted. */
static int send_tls(struct conn *c)
{
    for (;;) {
        size_t n = c->send_pending;
        if (n == 0) {
            n = evbuffer_get_length(c->out);
            if (n == 0)
                return 0;
            if (n > TLS_CHUNK)
                n = TLS_CHUNK;
        }
        const void *data = evbuffer_pullup(c->out, (ev_ssize_t)n);
        ssize_t r = gnutls_record_send(c->tls, data, n);
        if (r > 0) {
            evbuffer_drain(c->out, (size_t)r);
            c->send_pending = 0;
            continue;
        }
        if (r == GNUTLS_E_AGAIN) {
            c->send_pending = n;
            c->write_blocked = true;
            return 0;
        }
        if (r == GNUTLS_E_INTERRUPTED) {
            c->send_pending = n;
            continue;
        }
        shut_tls(c, "TLS write", (int)r);
        return -1;
    }
}

static int send_output(struct conn *c)
{
    if (c->tls_up)
        return send_tls(c);
    return send_plain(c, SIZE_MAX) < 0 ? -1 : 0;
}

static void check_drain(struct conn *c)
{
    if (c->above_high && evbuffer_get_length(c->out) <= c->wm_low) {
        c->above_high = false;
        if (c->ops->on_drain != NULL)
            c->ops->on_drain(c, c->arg);
    }
}

/* The first identity in an id-on-xmppAddr otherName, or NULL. */
static char *cert_xmpp_addr(const gnutls_datum_t *der)
{
    gnutls_x509_crt_t crt;
    char *found = NULL;
    if (gnutls_x509_crt_init(&crt) < 0)
        return NULL;
    if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0)
        goto out;
    for (unsigned seq = 0; seq < 1024 && found == NULL; seq++) {
        char oid[128];
        size_t oid_len = sizeof(oid);
        int t = gnutls_x509_crt_get_subject_alt_othername_oid(crt, seq, oid, &oid_len);
        if (t == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            break;
        if (t < 0 || (t != GNUTLS_SAN_OTHERNAME_XMPP && strcmp(oid, XMPP_ADDR_OID) != 0))
            continue;
        char val[XMPP_ADDR_MAX + 1];
        size_t val_len = sizeof(val);
        int r = gnutls_x509_crt_get_subject_alt_name(crt, seq, val, &val_len, NULL);
        if (r == GNUTLS_SAN_OTHERNAME_XMPP) {
            /* GnuTLS decoded the UTF8String. */
            if (val_len > 0 && memchr(val, '\0', val_len) == NULL)
                found = xstrndup(val, val_len);
        } else if (r == GNUTLS_SAN_OTHERNAME) {
            gnutls_datum_t raw = {(unsigned char *)val, (unsigned)val_len}, virt = {NULL, 0};
            unsigned vtype;
            if (gnutls_x509_othername_to_virtual(XMPP_ADDR_OID, &raw, &vtype, &virt) == 0 &&
                virt.size > 0 && memchr(virt.data, '\0', virt.size) == NULL)
                found = xstrndup((const char *)virt.data, virt.size);
            gnutls_free(virt.data);
        }
    }
out:
    gnutls_x509_crt_deinit(crt);
    return found;
}

/* Verification that does not fail the handshake: server side for client
 * certificates, client side with verify off (with verify on GnuTLS already
 * checked, and this agrees). */
static void check_peer(struct conn *c)
{
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(c->tls, &n);
    if (chain == NULL || n == 0)
        return;
    if (c->creds != NULL && !c->creds->request_client_cert)
        return;
    unsigned status = 0;
    if (gnutls_certificate_verify_peers3(c->tls, c->verify_name, &status) < 0 || status != 0)
        return;
    c->peer_verified = true;
    if (c->creds != NULL)
        c->xmpp_addr = cert_xmpp_addr(&chain[0]);
}

static void handshake_step(struct conn *c)
{
    int r;
    int retries = 0;
    do {
        r = gnutls_handshake(c->tls);
    } while (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r) && ++retries < RETRY_MAX);
    if (r == GNUTLS_E_AGAIN || (r < 0 && !gnutls_error_is_fatal(r))) {
        c->hs_wants_write = gnutls_record_get_direction(c->tls) == 1;
        return;
    }
    if (r < 0) {
        shut_tls(c, "TLS handshake", r);
        return;
    }
    c->hs_wants_write = false;
    c->tls_up = true;
    c->state = CONN_OPEN;
    c->version = gnutls_protocol_get_name(gnutls_protocol_get_version(c->tls));
    check_peer(c);
    if (c->ops->on_tls != NULL)
        c->ops->on_tls(c, c->arg);
    /* Application data may have come with the last handshake flight. */
    if (c->state == CONN_OPEN && !c->read_paused && gnutls_record_check_pending(c->tls) > 0)
        event_active(c->rev, EV_READ, 1);
}

static void flush_closing(struct conn *c)
{
    if (send_output(c) < 0)
        return;
    if (evbuffer_get_length(c->out) == 0 && c->send_pending == 0) {
        if (c->tls_up && !c->bye_done) {
            int r = gnutls_bye(c->tls, GNUTLS_SHUT_WR);
            if (r != GNUTLS_E_AGAIN && r != GNUTLS_E_INTERRUPTED)
                c->bye_done = true;
        }
        if (!c->tls_up || c->bye_done) {
            finish(c);
            return;
        }
    }
    if (c->close_now)
        finish(c);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    switch (c->state) {
    case CONN_OPEN:
    case CONN_CLOSING:
        if (c->tls_up)
            read_tls(c);
        else
            read_plain(c);
        break;
    case CONN_HANDSHAKE:
        handshake_step(c);
        break;
    case CONN_TLS_FLUSH:
    case CONN_CLOSED:
        break;
    }
    if (c->state != CONN_CLOSED)
        update_events(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    c->write_blocked = false; /* writable, or asked to try */
    c->flush_queued = false;
    if (c->recv_wants_write) {
        c->recv_wants_write = false;
        event_active(c->rev, EV_READ, 1);
    }
    switch (c->state) {
    case CONN_OPEN:
        if (send_output(c) == 0)
            check_drain(c);
        break;
    case CONN_TLS_FLUSH: {
        ssize_t n = send_plain(c, c->plain_left);
        if (n < 0)
            return;
        c->plain_left -= (size_t)n;
        if (c->plain_left == 0) {
            c->state = CONN_HANDSHAKE;
            handshake_step(c);
        }
        break;
    }
    case CONN_HANDSHAKE:
        handshake_step(c);
        break;
    case CONN_CLOSING:
        flush_closing(c);
        break;
    case CONN_CLOSED:
        break;
    }
    if (c->state != CONN_CLOSED)
        update_events(c);
}

static void on_grace_expired(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CONN_CLOSING)
        finish(c);
}

struct conn *conn_new(struct event_base *base, int fd, const struct conn_ops *ops, void *arg)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->fd = fd;
    c->ops = ops;
    c->arg = arg;
    c->state = CONN_OPEN;
    evutil_make_socket_nonblocking(fd);
    socklen_t len = sizeof(c->peer_addr);
    if (getpeername(fd, &c->peer_addr.sa, &len) == 0) {
        netaddr_format(&c->peer_addr.sa, c->peer, sizeof(c->peer));
        if (c->peer_addr.sa.sa_family == AF_INET || c->peer_addr.sa.sa_family == AF_INET6) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
    } else {
        memset(&c->peer_addr, 0, sizeof(c->peer_addr));
        snprintf(c->peer, sizeof(c->peer), "unknown");
    }
    c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    must(c->rev != NULL && c->wev != NULL && c->in != NULL && c->out != NULL);
    update_events(c);
    return c;
}

static int check_can_start(const struct conn *c, struct err *err)
{
    if (c->tls != NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "TLS already started on %s", c->peer);
    if (c->state != CONN_OPEN)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "connection %s is closing", c->peer);
    return 0;
}

/* Leftover plaintext input is dropped (see conn.h); queued output goes out
 * in plaintext before the handshake. */
static void begin_tls(struct conn *c, gnutls_session_t s)
{
    c->tls = s;
    gnutls_session_set_ptr(s, c);
    gnutls_transport_set_int(s, c->fd);
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    c->plain_left = evbuffer_get_length(c->out);
    c->state = c->plain_left > 0 ? CONN_TLS_FLUSH : CONN_HANDSHAKE;
    /* The first handshake step runs from the write callback, never here. */
    c->hs_wants_write = true;
    update_events(c);
}

static int on_client_hello(gnutls_session_t s)
{
    struct conn *c = gnutls_session_get_ptr(s);
    char name[260];
    size_t len = sizeof(name);
    unsigned type = 0;
    if (gnutls_server_name_get(s, name, &len, &type, 0) == 0 && type == GNUTLS_NAME_DNS &&
        len > 0 && memchr(name, '\0', len) == NULL) {
        free(c->sni);
        c->sni = xstrndup(name, len);
    }
    const struct tls_creds_entry *e = tls_creds_select(c->creds, c->sni);
    int rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, e->cred);
    return rc < 0 ? rc : 0;
}

int conn_starttls_server(struct conn *c, struct tls_creds *creds, struct err *err)
{
    if (check_can_start(c, err) < 0)
        return -1;
    gnutls_session_t s;
    int rc = gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (rc < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "TLS session: %s",
                       gnutls_strerror(rc));
    rc = gnutls_priority_set(s, creds->prio);
    if (rc >= 0)
        rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, creds->entries[0].cred);
    if (rc < 0) {
        gnutls_deinit(s);
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "TLS session: %s",
                       gnutls_strerror(rc));
    }
    if (creds->request_client_cert)
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUEST);
    gnutls_handshake_set_post_client_hello_function(s, on_client_hello);
    tls_creds_ref(creds);
    c->creds = creds;
    begin_tls(c, s);
    return 0;
}

int conn_starttls_client(struct conn *c, const char *server_name, const char *ca_file, bool verify,
                         struct err *err)
{
    struct conn_tls_client_opts opts = {
        .server_name = server_name,
        .ca_file = ca_file,
        .verify = verify,
    };
    return conn_starttls_client_opts(c, &opts, err);
}

static bool is_ip_literal(const char *name)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
}

static int load_client_cred(const struct conn_tls_client_opts *o,
                            gnutls_certificate_credentials_t cred, struct err *err)
{
    int rc;
    if (o->ca_file != NULL) {
        rc = gnutls_certificate_set_x509_trust_file(cred, o->ca_file, GNUTLS_X509_FMT_PEM);
        if (rc < 0)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls ca_file %s: %s", o->ca_file,
                           gnutls_strerror(rc));
        if (rc == 0)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                           "tls ca_file %s: no PEM certificates found", o->ca_file);
    } else {
        rc = gnutls_certificate_set_x509_system_trust(cred);
        if (rc <= 0 && o->verify)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls system trust store: %s",
                           rc < 0 ? gnutls_strerror(rc) : "no certificates");
    }
    if (o->cert_file == NULL && o->key_file == NULL)
        return 0;
    if (o->cert_file == NULL || o->key_file == NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "tls client certificate needs both cert_file and key_file");
    const char *paths[] = {o->cert_file, o->key_file};
    for (size_t i = 0; i < PL_ARRAY_LEN(paths); i++) {
        if (access(paths[i], R_OK) < 0)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls %s %s: %s",
                           i == 0 ? "certificate" : "key", paths[i], strerror(errno));
    }
    rc = gnutls_certificate_set_x509_key_file2(cred, o->cert_file, o->key_file, GNUTLS_X509_FMT_PEM,
                                               NULL, 0);
    if (rc < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls certificate %s with key %s: %s",
                       o->cert_file, o->key_file, gnutls_strerror(rc));
    return 0;
}

static int init_client_session(const struct conn_tls_client_opts *o,
                               gnutls_certificate_credentials_t cred, gnutls_session_t s,
                               struct err *err)
{
    const char *prio = o->priority != NULL ? o->priority : TLS_DEFAULT_PRIORITY;
    const char *err_pos = NULL;
    int rc = gnutls_priority_set_direct(s, prio, &err_pos);
    if (rc == GNUTLS_E_INVALID_REQUEST && err_pos != NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "tls priority string \"%s\": error at position %zu (\"%s\")", prio,
                       (size_t)(err_pos - prio), err_pos);
    if (rc >= 0)
        rc = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
    if (rc >= 0 && o->server_name != NULL && !is_ip_literal(o->server_name))
        rc = gnutls_server_name_set(s, GNUTLS_NAME_DNS, o->server_name, strlen(o->server_name));
    if (rc < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "TLS session: %s",
                       gnutls_strerror(rc));
    if (o->verify)
        gnutls_session_set_verify_cert(s, o->server_name, 0);
    return 0;
}

int conn_starttls_client_opts(struct conn *c, const struct conn_tls_client_opts *opts,
                              struct err *err)
{
    if (check_can_start(c, err) < 0)
        return -1;
    if (opts->verify && opts->server_name == NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "TLS verification needs a server name");
    int result = -1;
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_session_t s = NULL;
    int rc = gnutls_certificate_allocate_credentials(&cred);
    if (rc < 0) {
        cred = NULL;
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls credentials: %s", gnutls_strerror(rc));
        goto out;
    }
    if (load_client_cred(opts, cred, err) < 0)
        goto out;
    rc = gnutls_init(&s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
    if (rc < 0) {
        s = NULL;
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "TLS session: %s", gnutls_strerror(rc));
        goto out;
    }
    if (init_client_session(opts, cred, s, err) < 0)
        goto out;
    c->client_cred = cred;
    cred = NULL;
    if (opts->server_name != NULL) {
        c->verify_name = xstrdup(opts->server_name);
        if (!is_ip_literal(opts->server_name))
            c->sni = xstrdup(opts->server_name);
    }
    begin_tls(c, s);
    s = NULL;
    result = 0;
out:
    if (s != NULL)
        gnutls_deinit(s);
    if (cred != NULL)
        gnutls_certificate_free_credentials(cred);
    return result;
}

void conn_write(struct conn *c, const void *data, size_t len)
{
    if (len == 0 || c->state == CONN_CLOSING || c->state == CONN_CLOSED)
        return;
    must(evbuffer_add(c->out, data, len) == 0);
    if (c->wm_high > 0 && evbuffer_get_length(c->out) > c->wm_high)
        c->above_high = true;
    update_events(c);
}

void conn_write_str(struct conn *c, const char *s)
{
    conn_write(c, s, strlen(s));
}

size_t conn_output_len(const struct conn *c)
{
    return evbuffer_get_length(c->out);
}

void conn_set_watermark(struct conn *c, size_t low, size_t high)
{
    c->wm_low = low;
    c->wm_high = high;
    c->above_high = high > 0 && evbuffer_get_length(c->out) > high;
}

void conn_pause_read(struct conn *c, bool paused)
{
    c->read_paused = paused;
    if (c->state == CONN_CLOSED)
        return;
    update_events(c);
    if (!paused && c->state == CONN_OPEN &&
        (evbuffer_get_length(c->in) > 0 || (c->tls_up && gnutls_record_check_pending(c->tls) > 0)))
        event_active(c->rev, EV_READ, 1);
}

void conn_close(struct conn *c, const char *reason, int grace_ms)
{
    if (c->state == CONN_CLOSING || c->state == CONN_CLOSED)
        return;
    set_reason(c, reason);
    if (c->state == CONN_TLS_FLUSH) {
        /* Keep the plaintext; what was queued for TLS can never be sent. */
        struct evbuffer *keep = evbuffer_new();
        must(keep != NULL);
        evbuffer_remove_buffer(c->out, keep, c->plain_left);
        evbuffer_free(c->out);
        c->out = keep;
    } else if (c->state == CONN_HANDSHAKE) {
        evbuffer_drain(c->out, evbuffer_get_length(c->out));
    }
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    c->state = CONN_CLOSING;
    if (grace_ms > 0) {
        struct timeval tv = {grace_ms / 1000, (grace_ms % 1000) * 1000};
        c->grace = evtimer_new(c->base, on_grace_expired, c);
        must(c->grace != NULL && evtimer_add(c->grace, &tv) == 0);
    } else {
        c->close_now = true;
    }
    update_events(c);
    /* Run the flush (and the close) soon even if the socket is full. */
    event_active(c->wev, EV_WRITE, 1);
}

bool conn_is_tls(const struct conn *c)
{
    return c->tls_up;
}

const char *conn_tls_sni(const struct conn *c)
{
    return c->sni;
}

const char *conn_tls_version(const struct conn *c)
{
    return c->tls_up ? c->version : NULL;
}

int conn_tls_channel_binding(const struct conn *c, const char *type, unsigned char *out,
                             size_t outlen)
{
    if (!c->tls_up)
        return -1;
    gnutls_protocol_t v = gnutls_protocol_get_version(c->tls);
    gnutls_channel_binding_t cbtype;
    if (strcmp(type, "tls-unique") == 0) {
        if (v != GNUTLS_TLS1_2)
            return -1;
        cbtype = GNUTLS_CB_TLS_UNIQUE;
    } else if (strcmp(type, "tls-exporter") == 0) {
        if (v != GNUTLS_TLS1_3 &&
            (v != GNUTLS_TLS1_2 || !gnutls_session_ext_master_secret_status(c->tls)))
            return -1;
        cbtype = GNUTLS_CB_TLS_EXPORTER;
    } else {
        return -1;
    }
    gnutls_datum_t cb = {NULL, 0};
    if (gnutls_session_channel_binding(c->tls, cbtype, &cb) < 0)
        return -1;
    int n = -1;
    if (cb.size <= outlen) {
        memcpy(out, cb.data, cb.size);
        n = (int)cb.size;
    }
    gnutls_free(cb.data);
    return n;
}

const char *conn_tls_peer_xmpp_addr(const struct conn *c)
{
    return c->xmpp_addr;
}

bool conn_tls_peer_verified(const struct conn *c)
{
    return c->peer_verified;
}

bool conn_tls_peer_names(const struct conn *c, const char *domain)
{
    unsigned n = 0;
    if (!c->peer_verified || c->tls == NULL || domain == NULL)
        return false;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(c->tls, &n);
    if (chain == NULL || n == 0)
        return false;
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return false;
    bool ok = false;
    if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) >= 0)
        ok = gnutls_x509_crt_check_hostname2(crt, domain, 0) != 0;
    gnutls_x509_crt_deinit(crt);
    if (!ok) {
        char *addr = cert_xmpp_addr(&chain[0]);
        ok = addr != NULL && strcasecmp(addr, domain) == 0;
        free(addr);
    }
    return ok;
}

const char *conn_peer(const struct conn *c)
{
    return c->peer;
}

const struct sockaddr *conn_peer_addr(const struct conn *c)
{
    return &c->peer_addr.sa;
}
