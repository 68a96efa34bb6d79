/* SPDX-License-Identifier: MIT */
/* The ring holds the values in arrival order; the index is linear probing
 * over twice as many slots, holding ring positions, with backward-shift
 * deletion when the ring forgets its oldest value, so no tombstones pile up. */
#include "recent.h"

#include <stddef.h>
#include <stdlib.h>

#include "alloc.h"

#define SLOTS (2 * RECENT_MAX) /* a power of two: the index is at most half full */

struct recent {
    uint64_t ring[RECENT_MAX];
    uint16_t slot[SLOTS]; /* ring position + 1; 0 = free */
    unsigned n;           /* values added, saturated to [RECENT_MAX, 2 * RECENT_MAX) */
};

static size_t home(uint64_t v)
{
    /* The values are hashes already; the mixing spreads any other input. */
    v ^= v >> 29;
    v *= 0xbf58476d1ce4e5b9ULL;
    v ^= v >> 32;
    return (size_t)(v & (SLOTS - 1));
}

static size_t next(size_t i)
{
    return (i + 1) & (SLOTS - 1);
}

struct recent *recent_new(void)
{
    return xcalloc(1, sizeof(struct recent));
}

void recent_free(struct recent **r)
{
    free(*r);
    *r = NULL;
}

/* Takes ring position pos out of the index, moving later entries of the
 * same probe run back so that every remaining value is still found. */
static void unindex(struct recent *r, unsigned pos)
{
    size_t i = home(r->ring[pos]);
    while (r->slot[i] != pos + 1)
        i = next(i);
    for (size_t j = next(i); r->slot[j] != 0; j = next(j)) {
        size_t k = home(r->ring[r->slot[j] - 1]);
        /* The entry at j stays unless its home is cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            r->slot[i] = r->slot[j];
            i = j;
        }
    }
    r->slot[i] = 0;
}

bool recent_check_add(struct recent *r, uint64_t v)
{
    size_t i = home(v);
    for (; r->slot[i] != 0; i = next(i)) {
        if (r->ring[r->slot[i] - 1] == v)
            return true;
    }
    unsigned pos = r->n % RECENT_MAX;
    if (r->n >= RECENT_MAX) {
        unindex(r, pos);
        /* the deletion may have moved entries: find the free slot again */
        for (i = home(v); r->slot[i] != 0; i = next(i))
            ;
    }
    r->ring[pos] = v;
    r->slot[i] = (uint16_t)(pos + 1);
    r->n++;
    if (r->n == 2 * RECENT_MAX)
        r->n = RECENT_MAX; /* same position modulo RECENT_MAX, never wraps */
    return false;
}
