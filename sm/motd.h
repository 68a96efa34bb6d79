/* SPDX-License-Identifier: MIT */
/* The message of the day and announcements to online users: the logic
 * behind the DOMAIN/announce/... resources (feat_motd.c) and the XEP-0133
 * announce and MOTD commands (feat_adhoc.c). */
#ifndef PL_SM_MOTD_H
#define PL_SM_MOTD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct arena;
struct sm;
struct xml_node;

/* A MOTD operation is over: cond is XMPP_COND_NONE on success, else the
 * stanza error to report (the reason is logged already). motd is the
 * stored MOTD for sm_motd_get (NULL when there is none, and for the other
 * operations); it lives until the callback returns. */
typedef void sm_motd_cb(void *arg, enum xmpp_cond cond, const struct xml_node *motd);

/* Sends m (a <message/> from the domain, built in a) now to every available
 * session of domain's users who accept messages from the domain; m's 'to'
 * is set to each session in turn (allocated in a). When motd_time is not
 * 0, records that those users have seen the MOTD of that time. Returns how
 * many sessions it reached. Only the sessions of this sm are reached. */
size_t sm_motd_broadcast(struct sm *sm, const char *domain, struct arena *a, struct xml_node *m,
                         int64_t motd_time);

/* Makes m (a <message/> with a subject or a body, from the domain) the MOTD
 * of domain, shown once to every user at their next initial presence; when
 * send, it is also sent now to the online users. m and domain are copied.
 * cb runs once, from the event loop, after the store has answered. */
void sm_motd_set(struct sm *sm, const char *domain, const struct xml_node *m, bool send,
                 sm_motd_cb *cb, void *arg);

/* Removes the MOTD of domain (nothing to remove is a success). */
void sm_motd_delete(struct sm *sm, const char *domain, sm_motd_cb *cb, void *arg);

/* Reads the MOTD of domain: cb gets it, or NULL when none is set. */
void sm_motd_get(struct sm *sm, const char *domain, sm_motd_cb *cb, void *arg);

#endif
