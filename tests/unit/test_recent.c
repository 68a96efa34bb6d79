/* SPDX-License-Identifier: MIT */
/* Unit tests for recent: the indexed ring answers exactly as a plain scan of
 * the last RECENT_MAX values added would, on random streams with many
 * repeats, past the point where the ring wraps many times. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "recent.h"

/* The reference: what c2s/session.c did before the index. */
struct scan {
    uint64_t ring[RECENT_MAX];
    unsigned long n;
};

static bool scan_check_add(struct scan *s, uint64_t v)
{
    unsigned long n = s->n < RECENT_MAX ? s->n : RECENT_MAX;
    for (unsigned long i = 0; i < n; i++) {
        if (s->ring[i] == v)
            return true;
    }
    s->ring[s->n++ % RECENT_MAX] = v;
    return false;
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* universe: how many distinct values the stream draws from; a small one
 * gives mostly hits, a large one mostly misses and constant forgetting. */
static void run_stream(uint64_t seed, uint64_t universe, unsigned long ops)
{
    struct recent *r = recent_new();
    static struct scan s;
    memset(&s, 0, sizeof(s));
    uint64_t x = seed;
    unsigned long hits = 0;
    for (unsigned long k = 0; k < ops; k++) {
        uint64_t v = next_rand(&x) % universe * 0x9e3779b97f4a7c15ULL;
        bool want = scan_check_add(&s, v);
        bool got = recent_check_add(r, v);
        if (got != want)
            fail_msg("op %lu, value %llx: recent says %d, the scan %d", k, (unsigned long long)v,
                     got, want);
        hits += want;
    }
    assert_true(hits < ops);
    if (universe < ops)
        assert_true(hits > 0); /* both answers were exercised */
    recent_free(&r);
    assert_null(r);
}

static void test_against_scan(void **state)
{
    (void)state;
    run_stream(1, 1100, 200000); /* just over the ring: hits and forgetting */
    run_stream(2, 1500, 200000);
    run_stream(3, 4000, 200000);   /* mostly misses */
    run_stream(4, 700, 50000);     /* everything fits: mostly hits */
    run_stream(5, 1u << 30, 5000); /* all new: the ring wraps five times */
}

/* Exactly RECENT_MAX values are remembered, and the oldest goes first. */
static void test_window(void **state)
{
    (void)state;
    struct recent *r = recent_new();
    for (uint64_t v = 1; v <= RECENT_MAX; v++)
        assert_false(recent_check_add(r, v));
    for (uint64_t v = 1; v <= RECENT_MAX; v++)
        assert_true(recent_check_add(r, v));           /* a hit does not add */
    assert_false(recent_check_add(r, RECENT_MAX + 1)); /* forgets 1 */
    assert_false(recent_check_add(r, 1));              /* forgets 2, adds 1 again */
    assert_true(recent_check_add(r, 3));
    assert_false(recent_check_add(r, 2));
    assert_true(recent_check_add(r, 0) == false &&
                recent_check_add(r, 0) == true); /* 0 is a value */
    recent_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_scan),
        cmocka_unit_test(test_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
