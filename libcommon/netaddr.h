/* SPDX-License-Identifier: MIT */
/* Turning configured host/port pairs into socket addresses. */
#ifndef PL_NETADDR_H
#define PL_NETADDR_H

#include <stddef.h>
#include <sys/socket.h>

#include "attr.h"

struct err;

/* Parses a numeric IPv4 or IPv6 address (no DNS: daemons bind and connect to
 * configured addresses) and a port into ss. Returns 0, or -1 with err. */
int netaddr_parse(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len_r,
                  struct err *err) PL_WARN_UNUSED;
/* Formats "host:port" ("[v6]:port") of sa into out. */
void netaddr_format(const struct sockaddr *sa, char *out, size_t outlen);

#endif
