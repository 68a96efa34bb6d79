/* SPDX-License-Identifier: MIT */
/* Roster helpers shared by the roster and subscription features. */
#ifndef PL_SM_ROSTER_H
#define PL_SM_ROSTER_H

#include "sm.h"

#define NS_ROSTER "jabber:iq:roster"

/* Appends <item/> for it to parent (subscription='remove' when removed). */
void roster_item_xml(struct arena *a, struct xml_node *parent, const struct sm_item *it,
                     bool removed);
/* Pushes the item (RFC 6121 §2.1.6) to every interested session of u. */
void roster_push(struct sm_user *u, const struct sm_item *it, bool removed);
/* Creates (not saved) an item for bare. */
struct sm_item *roster_item_new(const char *bare);

#endif
