/* SPDX-License-Identifier: MIT */
/* The sm's link to the router. */
#ifndef PL_SM_LINK_H
#define PL_SM_LINK_H

#include <stddef.h>

#include "attr.h"

struct sm;
struct err;

/* Connects to the router as the sm's component, binds every hosted domain
 * and watches component notices. Returns 0, or -1 with err. */
int sm_link_start(struct sm *sm, struct err *err) PL_WARN_UNUSED;
/* Sends bytes to the router. Returns 0, or -1 when the link is down. */
int sm_link_send(struct sm *sm, const char *data, size_t len);

#endif
