/* SPDX-License-Identifier: MIT */
/* Which domains the resolver accepts: ASCII host names (A-labels, so IDNA
 * is the requester's job), or IP literals as XMPP allows them. */
#include "resolver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

/* "[v6]" as RFC 7622 writes an IPv6 domain part. */
static bool ipv6_literal(const char *d, size_t len)
{
    char inner[INET6_ADDRSTRLEN];
    struct in6_addr a6;
    if (len < 3 || d[0] != '[' || d[len - 1] != ']' || len - 2 >= sizeof(inner))
        return false;
    memcpy(inner, d + 1, len - 2);
    inner[len - 2] = '\0';
    return inet_pton(AF_INET6, inner, &a6) == 1;
}

bool rs_domain_check(const char *domain, char *out, const char **why_r)
{
    size_t len = strlen(domain);
    if (len == 0) {
        *why_r = "the domain is empty";
        return false;
    }
    if (len > RS_MAX_DOMAIN) {
        *why_r = "the domain is longer than 253 characters";
        return false;
    }
    for (size_t i = 0; i < len; i++)
        out[i] = (char)tolower((unsigned char)domain[i]);
    out[len] = '\0';
    if (ipv6_literal(out, len))
        return true;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c == '.' || c == '\0') {
            if (label == 0) {
                *why_r = "the domain has an empty label";
                return false;
            }
            if (out[i - 1] == '-' || out[i - label] == '-') {
                *why_r = "a label starts or ends with a hyphen";
                return false;
            }
            label = 0;
            continue;
        }
        if (c >= 0x80) {
            *why_r = "the domain is not ASCII (send its A-labels)";
            return false;
        }
        if (!isalnum(c) && c != '-') {
            *why_r = "the domain has a character a host name may not have";
            return false;
        }
        if (++label > 63) {
            *why_r = "a label is longer than 63 characters";
            return false;
        }
    }
    return true;
}
