/* SPDX-License-Identifier: MIT */
/* The server listeners: the STARTTLS port (5269) and the direct-TLS port
 * (5270, XEP-0368). */
#include "s2s.h"

#include <string.h>

#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include "netaddr.h"

#define ACCEPT_BACKLOG 512

static void on_accept_plain(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                            int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    in_accept(arg, fd, false);
}

static void on_accept_tls(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    in_accept(arg, fd, true);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    struct s2s *s2s = arg;
    (void)l;
    log_error(&s2s->lc, "accept failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static struct evconnlistener *open_one(struct s2s *s2s, long port, evconnlistener_cb cb,
                                       const char *what, struct err *err)
{
    const char *host = s2s->cfg->listen ? s2s->cfg->listen : s2s->common->router_address;
    struct evconnlistener *l =
        netaddr_listen(s2s->base, host, port, ACCEPT_BACKLOG, cb, on_accept_error, s2s, err);
    if (l == NULL)
        return NULL;
    log_notice(&s2s->lc, "listening for servers (%s) on %s:%ld", what, host, port);
    return l;
}

int listen_start(struct s2s *s2s, struct err *err)
{
    if (s2s->cfg->port != 0) {
        s2s->listen.plain = open_one(s2s, s2s->cfg->port, on_accept_plain, "STARTTLS", err);
        if (s2s->listen.plain == NULL)
            return -1;
    }
    if (s2s->cfg->tls_port != 0) {
        s2s->listen.tls = open_one(s2s, s2s->cfg->tls_port, on_accept_tls, "direct TLS", err);
        if (s2s->listen.tls == NULL)
            return -1;
    }
    return 0;
}

void listen_stop(struct s2s *s2s)
{
    if (s2s->listen.plain != NULL)
        evconnlistener_free(s2s->listen.plain);
    if (s2s->listen.tls != NULL)
        evconnlistener_free(s2s->listen.tls);
    s2s->listen.plain = s2s->listen.tls = NULL;
}
