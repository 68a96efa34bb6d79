/* SPDX-License-Identifier: MIT */
/* A set of the last N 64-bit values seen (hashes of message origins): a ring
 * in arrival order with an open-addressing index over it, so asking "seen
 * lately?" costs a probe or two instead of a scan of the ring. */
#ifndef PL_RECENT_H
#define PL_RECENT_H

#include <stdbool.h>
#include <stdint.h>

#define RECENT_MAX 1024 /* values remembered; the oldest is forgotten first */

struct recent;

/* An empty set (about 12 KiB); recent_free frees it. */
struct recent *recent_new(void);
/* Frees r; sets *r to NULL. */
void recent_free(struct recent **r);
/* Whether v is among the last RECENT_MAX values added; if not, adds it
 * (forgetting the oldest when full). A value found is not added again. */
bool recent_check_add(struct recent *r, uint64_t v);

#endif
