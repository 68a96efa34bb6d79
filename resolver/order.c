/* SPDX-License-Identifier: MIT */
/* The order in which s2s tries a domain's targets: RFC 2782 (priority, then
 * weighted random), with direct TLS before STARTTLS at equal priority
 * (XEP-0368). Done for every answer sent, so a cached answer still spreads
 * connections over equal targets. */
#include "resolver.h"

#include <stdint.h>

#include <event2/util.h>

/* Sorts first: lower priority, then direct TLS. */
static bool before(const struct rs_target *x, const struct rs_target *y)
{
    if (x->priority != y->priority)
        return x->priority < y->priority;
    return x->tls == RS_TLS_DIRECT && y->tls != RS_TLS_DIRECT;
}

static bool same_group(const struct rs_target *x, const struct rs_target *y)
{
    return x->priority == y->priority && x->tls == y->tls;
}

/* Moves order[from] to order[to] (to <= from), shifting the rest right, so
 * the others keep their relative order. */
static void move_to(size_t *order, size_t to, size_t from)
{
    size_t v = order[from];
    for (size_t i = from; i > to; i--)
        order[i] = order[i - 1];
    order[to] = v;
}

static uint32_t random_u32(void)
{
    uint32_t v;
    evutil_secure_rng_get_bytes(&v, sizeof(v));
    return v;
}

/* RFC 2782's selection within one group [lo, hi): weight-0 records first,
 * then repeatedly the first whose running weight sum reaches a random
 * number in 0..sum. */
static void weigh(const struct rs_target *t, size_t *order, size_t lo, size_t hi)
{
    size_t zeros = lo;
    for (size_t i = lo; i < hi; i++) {
        if (t[order[i]].weight == 0)
            move_to(order, zeros++, i);
    }
    for (size_t pos = lo; pos + 1 < hi; pos++) {
        uint64_t sum = 0;
        for (size_t i = pos; i < hi; i++)
            sum += (uint64_t)t[order[i]].weight;
        uint64_t pick = random_u32() % (sum + 1);
        uint64_t running = 0;
        size_t chosen = hi - 1;
        for (size_t i = pos; i < hi; i++) {
            running += (uint64_t)t[order[i]].weight;
            if (running >= pick) {
                chosen = i;
                break;
            }
        }
        move_to(order, pos, chosen);
    }
}

void rs_order(const struct rs_answer *ans, size_t *order)
{
    size_t n = ans->ntargets;
    const struct rs_target *t = ans->targets;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    if (ans->ordered)
        return;
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable, and n is small */
        size_t j = i;
        while (j > 0 && before(&t[order[i]], &t[order[j - 1]]))
            j--;
        move_to(order, j, i);
    }
    size_t lo = 0;
    while (lo < n) {
        size_t hi = lo + 1;
        while (hi < n && same_group(&t[order[lo]], &t[order[hi]]))
            hi++;
        weigh(t, order, lo, hi);
        lo = hi;
    }
}
