/* SPDX-License-Identifier: MIT */
/* From the <storage> part of parley.xml to an open store. */
#ifndef PL_STORE_CFG_H
#define PL_STORE_CFG_H

#include "common_cfg.h"
#include "store.h"

struct arena;

/* Fills out from c; strings are borrowed from c or allocated in a. */
void store_cfg_from_common(const struct common_cfg *c, struct arena *a, struct store_cfg *out);

#endif
