/* SPDX-License-Identifier: MIT */
/* JIDs per RFC 7622: parse, validate, normalise, format and compare. */
#ifndef PL_JID_H
#define PL_JID_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"

struct arena;
struct err;

#define JID_PART_MAX 1023

/* A normalised JID. Parts point into the arena passed to jid_parse; local
 * and resource are NULL when absent, domain is never NULL. */
struct jid {
    const char *local;
    const char *domain;
    const char *resource;
};

/* Parses and normalises len bytes of s (UTF-8, need not be terminated):
 * localpart per the PRECIS UsernameCaseMapped profile (case-folded, NFC,
 * forbidden characters " & ' / : < > @ and controls refused), domainpart
 * through IDNA2008 (libidn2) and lower-cased (a trailing dot dropped, IP
 * literals kept), resourcepart per OpaqueString (NFC, controls refused).
 * Each part must be 1..1023 bytes. Returns 0, or -1 with err set to
 * jid-malformed and the reason; *jid_r is unchanged on error.
 * Normal form of the domainpart (RFC 7622 §3.2.1): U-labels, i.e. UTF-8
 * after UTS #46 non-transitional mapping and NFC, so "xn--bcher-kva.example",
 * "BÜCHER.example." and "bücher.example" all give "bücher.example"; ASCII
 * labels must be LDH and are lower-cased; an IPv4 literal is kept, an IPv6
 * literal is kept in brackets in inet_ntop's canonical form ("[::1]"). */
int jid_parse(struct arena *a, const char *s, size_t len, struct jid *jid_r,
              struct err *err) PL_WARN_UNUSED;
/* Same for a NUL-terminated string. */
int jid_parse_str(struct arena *a, const char *s, struct jid *jid_r,
                  struct err *err) PL_WARN_UNUSED;

/* Formats into a: "local@domain/resource", or without the absent parts. */
char *jid_full(struct arena *a, const struct jid *j);
/* "local@domain" or "domain". */
char *jid_bare(struct arena *a, const struct jid *j);

bool jid_eq(const struct jid *x, const struct jid *y);
bool jid_bare_eq(const struct jid *x, const struct jid *y);
bool jid_is_bare(const struct jid *j);

#endif
