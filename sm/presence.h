/* SPDX-License-Identifier: MIT */
/* Presence helpers shared by the presence and subscription features. */
#ifndef PL_SM_PRESENCE_H
#define PL_SM_PRESENCE_H

#include "sm.h"

/* Sends the current presence of each available resource of u to contact. */
void presence_send_current(struct sm_user *u, const char *contact);
/* Sends unavailable from each available resource of u to contact. */
void presence_send_unavailable_to(struct sm_user *u, const char *contact);
/* Shows subscription requests still pending to a session at login. */
void subscription_show_pending(struct sm_session *s);

#endif
