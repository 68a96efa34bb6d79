/* SPDX-License-Identifier: MIT */
/* Who may use the sm's administrative functions (announcements, the MOTD):
 * the bare JIDs listed as <sm><admin> in parley.xml. */
#ifndef PL_SM_ADMINS_H
#define PL_SM_ADMINS_H

#include <stdbool.h>

struct sm;

/* Whether bare (a normalised bare JID, e.g. jid_bare() of a stanza's
 * from) is one of sm->cfg->admins. The configured JIDs are normalised
 * (RFC 7622) before comparing, so "Alice@Example.TEST" in the file matches
 * "alice@example.test"; a configured value that is not a valid JID never
 * matches. Nothing is allocated beyond the call. */
bool sm_is_admin(const struct sm *sm, const char *bare);

#endif
