/* SPDX-License-Identifier: MIT */
/* Numeric address parsing and formatting. */
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <event2/listener.h>
#include <event2/util.h>

#include "err.h"

int netaddr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len_r,
                  struct err *err)
{
    memset(ss, 0, sizeof(*ss));
    if (port < 0 || port > 65535)
        return err_set(err, XMPP_COND_BAD_REQUEST, "port %d is not in 0..65535", port);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *len_r = sizeof(*s4);
        return 0;
    }
    char tmp[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(tmp)) {
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *len_r = sizeof(*s6);
        return 0;
    }
    return err_set(err, XMPP_COND_BAD_REQUEST, "\"%s\" is not a numeric IPv4 or IPv6 address",
                   host);
}

void netaddr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%u", host, ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "[%s]:%u", host, ntohs(s6->sin6_port));
    } else {
        snprintf(out, outlen, "unix");
    }
}

struct evconnlistener *
netaddr_listen(struct event_base *base, const char *host, long port, int backlog,
               void (*accept_cb)(struct evconnlistener *, int, struct sockaddr *, int, void *),
               void (*error_cb)(struct evconnlistener *, void *), void *arg, struct err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (netaddr_parse(host, (int)port, &ss, &len, err) < 0)
        return NULL;
    struct evconnlistener *l = evconnlistener_new_bind(
        base, accept_cb, arg, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        backlog, (struct sockaddr *)&ss, (int)len);
    if (l == NULL) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "cannot listen on %s:%ld: %s", host, port,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return NULL;
    }
    evconnlistener_set_error_cb(l, error_cb);
    return l;
}
