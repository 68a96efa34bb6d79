/* SPDX-License-Identifier: MIT */
/* Turning configured host/port pairs into socket addresses. */
#ifndef PL_NETADDR_H
#define PL_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "attr.h"

struct err;
struct event_base;
struct evconnlistener;

/* Parses a numeric IPv4 or IPv6 address (no DNS: daemons bind and connect to
 * configured addresses) and a port into ss. Returns 0, or -1 with err. */
int netaddr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len_r,
                  struct err *err) PL_WARN_UNUSED;
/* Listens on host:port (numeric, as netaddr_parse) with libevent: reusable,
 * close-on-exec; accept_cb and error_cb get arg. Returns the listener, or
 * NULL with err naming host and port. The three daemons that listen differ
 * only in these arguments and in what they log on success. */
struct evconnlistener *
netaddr_listen(struct event_base *base, const char *host, long port, int backlog,
               void (*accept_cb)(struct evconnlistener *, int, struct sockaddr *, int, void *),
               void (*error_cb)(struct evconnlistener *, void *), void *arg, struct err *err);
/* Formats "host:port" ("[v6]:port") of sa into out. */
void netaddr_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
