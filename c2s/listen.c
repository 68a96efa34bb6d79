/* SPDX-License-Identifier: MIT */
/* The client listeners: the STARTTLS port and the direct-TLS port
 * (XEP-0368), the file descriptor limit, and a pause when accept() runs out
 * of descriptors. */
#include "c2s.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "netaddr.h"

#define ACCEPT_BACKLOG  1024
#define FD_RESERVE      64 /* router link, store, logs, listeners */
#define EMFILE_PAUSE_MS 1000

static void on_accept_plain(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    (void)l;
    (void)salen;
    client_accept(arg, fd, sa, false);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    (void)l;
    (void)salen;
    client_accept(arg, fd, sa, true);
}

static void set_enabled(struct c2s *c2s, bool on)
{
    struct evconnlistener *ls[] = {c2s->listen.plain, c2s->listen.tls};
    for (size_t i = 0; i < 2; i++) {
        if (ls[i] != NULL) {
            if (on)
                evconnlistener_enable(ls[i]);
            else
                evconnlistener_disable(ls[i]);
        }
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    set_enabled(arg, true);
}

/* EMFILE and friends: stop accepting for a moment instead of spinning on a
 * listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct c2s *c2s = arg;
    int e = EVUTIL_SOCKET_ERROR();
    (void)l;
    log_error(&c2s->lc, "accept failed: %s; pausing new connections for %d ms",
              evutil_socket_error_to_string(e), EMFILE_PAUSE_MS);
    set_enabled(c2s, false);
    struct timeval tv = {EMFILE_PAUSE_MS / 1000, (EMFILE_PAUSE_MS % 1000) * 1000};
    evtimer_add(c2s->listen.resume, &tv);
}

static struct evconnlistener *open_one(struct c2s *c2s, long port, evconnlistener_cb cb,
                                       const char *what, struct err *err)
{
    const char *host = c2s->cfg->listen ? c2s->cfg->listen : c2s->common->router_address;
    struct evconnlistener *l =
        netaddr_listen(c2s->base, host, port, ACCEPT_BACKLOG, cb, on_accept_error, c2s, err);
    if (l == NULL)
        return NULL;
    log_notice(&c2s->lc, "listening for clients (%s) on %s:%ld", what, host, port);
    return l;
}

/* Raises the soft descriptor limit to the hard one and warns when
 * max-connections cannot be reached. */
static void check_fd_limit(struct c2s *c2s)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn(&c2s->lc, "cannot raise the descriptor limit: %s", strerror(errno));
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)c2s->cfg->max_connections + FD_RESERVE)
        log_notice(&c2s->lc,
                   "<max-connections> is %ld but the descriptor limit is %llu: at most about "
                   "%llu clients can connect",
                   c2s->cfg->max_connections, (unsigned long long)rl.rlim_cur,
                   (unsigned long long)(rl.rlim_cur > FD_RESERVE ? rl.rlim_cur - FD_RESERVE : 0));
}

int listen_start(struct c2s *c2s, struct err *err)
{
    check_fd_limit(c2s);
    c2s->listen.resume = evtimer_new(c2s->base, on_resume, c2s);
    if (c2s->cfg->port != 0) {
        c2s->listen.plain = open_one(c2s, c2s->cfg->port, on_accept_plain, "STARTTLS", err);
        if (c2s->listen.plain == NULL)
            return -1;
    }
    if (c2s->cfg->tls_port != 0) {
        c2s->listen.tls = open_one(c2s, c2s->cfg->tls_port, on_accept_tls, "direct TLS", err);
        if (c2s->listen.tls == NULL)
            return -1;
    }
    if (c2s->cfg->http_port != 0)
        log_notice(&c2s->lc, "<http-port> %ld: BOSH and WebSocket are not served yet",
                   c2s->cfg->http_port);
    return 0;
}

void listen_stop(struct c2s *c2s)
{
    if (c2s->listen.plain != NULL)
        evconnlistener_free(c2s->listen.plain);
    if (c2s->listen.tls != NULL)
        evconnlistener_free(c2s->listen.tls);
    c2s->listen.plain = c2s->listen.tls = NULL;
    if (c2s->listen.resume != NULL)
        event_free(c2s->listen.resume);
    c2s->listen.resume = NULL;
}
