/* SPDX-License-Identifier: MIT */
/* Internals of jid.c shown to its unit test only. */
#ifndef PL_JID_PRIVATE_H
#define PL_JID_PRIVATE_H

#include <stddef.h>

struct arena;
struct err;
struct jid;

/* jid_parse without the ASCII fast path: every part through PRECIS and
 * IDNA. The reference the fast path is tested against. */
int jid_parse_full(struct arena *a, const char *s, size_t len, struct jid *jid_r, struct err *err);

#endif
