/* SPDX-License-Identifier: MIT */
/* Unit tests for the chunked bump allocator (libcommon/arena.c). */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>

#include "arena.h"
#include "attr.h"

#define ALIGN 16

static size_t align16(size_t n)
{
    n = n ? n : 1;
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

static bool is_aligned(const void *p)
{
    return (uintptr_t)p % ALIGN == 0;
}

/* Fresh memory is zero, and so is memory reused after a reset, even when the
 * previous user scribbled over it. */
static void test_zero_fill(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 7, 16, 17, 100, 255, 256, 257, 1000, 5000};
    struct arena *a = arena_new(1024);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < PL_ARRAY_LEN(sizes); i++) {
            unsigned char *p = arena_alloc(a, sizes[i]);
            assert_non_null(p);
            assert_true(all_zero(p, sizes[i]));
            memset(p, 0xa5, sizes[i]);
        }
        arena_reset(a);
    }
    arena_free(&a);
    assert_null(a);
}

/* Every pointer handed out is 16-aligned, whatever sizes came before it. */
static void test_alignment(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 3, 8, 15, 16, 17, 31, 33, 64, 200, 300, 1023, 4096};
    static const size_t chunks[] = {0, 64, 256, 1000, 4096};
    for (size_t c = 0; c < PL_ARRAY_LEN(chunks); c++) {
        struct arena *a = arena_new(chunks[c]);
        for (int round = 0; round < 4; round++) {
            for (size_t i = 0; i < PL_ARRAY_LEN(sizes); i++) {
                void *p = arena_alloc(a, sizes[i]);
                assert_true(is_aligned(p));
                assert_true(is_aligned(arena_strdup(a, "odd")));
                assert_true(is_aligned(arena_printf(a, "%zu", sizes[i])));
                assert_true(is_aligned(arena_strndup(a, "abcdefgh", i % 8)));
            }
            if (round == 1)
                arena_reset(a);
        }
        arena_free(&a);
    }
}

/* A big allocation that does not fit the current chunk's tail gets a chunk of
 * exactly its size, and the next small allocation continues in the tail. */
static void test_big_own_chunk(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t chunk;
        size_t small_count; /* 16-byte allocations made before the big one */
        size_t big;
    } rows[] = {
        {"just over a quarter, tail too short", 1024, 60, 257},
        {"half a chunk", 1024, 40, 512},
        {"exactly the tail plus one", 1024, 32, 513},
        {"larger than a chunk", 1024, 1, 5000},
        {"much larger than a chunk", 256, 3, 100000},
        {"default chunk size", 0, 200, 2000},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        size_t chunk = rows[r].chunk ? rows[r].chunk : 4096;
        struct arena *a = arena_new(rows[r].chunk);
        unsigned char *last = NULL;
        for (size_t i = 0; i < rows[r].small_count; i++)
            last = arena_alloc(a, 16);
        assert_int_equal(arena_footprint(a), chunk);
        assert_int_equal(arena_used(a), rows[r].small_count * 16);

        unsigned char *big = arena_alloc(a, rows[r].big);
        assert_true(is_aligned(big));
        assert_true(all_zero(big, rows[r].big));
        memset(big, 0x5a, rows[r].big); /* ASan catches a short chunk */
        assert_int_equal(arena_footprint(a), chunk + align16(rows[r].big));
        assert_int_equal(arena_used(a), rows[r].small_count * 16 + align16(rows[r].big));

        /* The current chunk's tail keeps being used. */
        unsigned char *next = arena_alloc(a, 16);
        assert_ptr_equal(next, last + 16);
        assert_int_equal(arena_footprint(a), chunk + align16(rows[r].big));
        assert_true(all_zero(next, 16));
        arena_free(&a);
    }
}

/* Reset keeps exactly one regular chunk, whatever mix of chunks was built up,
 * and the kept chunk serves the next allocations without growing. */
static void test_reset_keeps_one_chunk(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t sizes[8]; /* 0 ends the list */
        size_t repeat;   /* how often the list is allocated */
    } rows[] = {
        {"one chunk", {16, 32}, 1},
        {"many regular chunks", {100, 200, 50}, 40},
        {"big allocation behind the first chunk", {240, 240, 240, 240, 600}, 1},
        {"big allocations between regular chunks", {200, 600, 200, 2000}, 10},
        {"big allocation larger than a chunk", {16, 4096}, 3},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        struct arena *a = arena_new(1024);
        for (size_t k = 0; k < rows[r].repeat; k++) {
            for (size_t i = 0; i < PL_ARRAY_LEN(rows[r].sizes) && rows[r].sizes[i]; i++)
                memset(arena_alloc(a, rows[r].sizes[i]), 0xff, rows[r].sizes[i]);
        }
        size_t before = arena_footprint(a);
        assert_true(before >= 1024);

        arena_reset(a);
        assert_int_equal(arena_used(a), 0);
        assert_int_equal(arena_footprint(a), 1024);
        assert_true(arena_footprint(a) <= before);

        /* A chunk's worth of small allocations fits the kept chunk. */
        for (size_t i = 0; i < 1024 / 64; i++) {
            unsigned char *p = arena_alloc(a, 64);
            assert_true(all_zero(p, 64));
        }
        assert_int_equal(arena_footprint(a), 1024);
        assert_int_equal(arena_used(a), 1024);
        arena_free(&a);
    }
}

/* Reset when the very first allocation was big (so the arena began with a
 * chunk of its own): the big chunk is released, the arena still works. */
static void test_reset_after_big_first(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t big;
        size_t smalls; /* 16-byte allocations after the big one */
        size_t want_footprint_after_reset;
    } rows[] = {
        {"big only", 4000, 0, 0},
        {"big then small", 4000, 1, 1024},
        {"big then several chunks", 600, 200, 1024},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        struct arena *a = arena_new(1024);
        char *big = arena_alloc(a, rows[r].big);
        memset(big, 'x', rows[r].big);
        assert_int_equal(arena_footprint(a), align16(rows[r].big));
        for (size_t i = 0; i < rows[r].smalls; i++)
            memset(arena_alloc(a, 16), 'y', 16);
        assert_int_equal(arena_used(a), align16(rows[r].big) + 16 * rows[r].smalls);

        arena_reset(a);
        assert_int_equal(arena_used(a), 0);
        assert_int_equal(arena_footprint(a), rows[r].want_footprint_after_reset);

        char *s = arena_strdup(a, "after reset");
        assert_string_equal(s, "after reset");
        unsigned char *p = arena_alloc(a, 100);
        assert_true(all_zero(p, 100));
        assert_int_equal(arena_footprint(a), 1024);
        assert_int_equal(arena_used(a), 16 + 112);
        arena_free(&a);
    }
}

static void test_printf(void **state)
{
    (void)state;
    struct arena *a = arena_new(256);
    assert_string_equal(arena_printf(a, "%s-%d", "abc", 42), "abc-42");
    assert_string_equal(arena_printf(a, "%s", ""), "");
    assert_string_equal(arena_printf(a, "%05.1f|%x|%c", 3.14159, 255u, 'z'), "003.1|ff|z");
    assert_string_equal(arena_printf(a, "%%"), "%");

    /* Longer than a chunk: formatted into a chunk of its own. */
    char want[2001];
    memset(want, 'q', 2000);
    want[2000] = '\0';
    char *p = arena_printf(a, "%s", want);
    assert_int_equal(strlen(p), 2000);
    assert_string_equal(p, want);
    assert_int_equal(arena_used(a) % 16, 0);
    arena_free(&a);
}

static void test_strdup_strndup(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *in;
        size_t n;
        const char *want; /* compared over n + 1 bytes */
    } rows[] = {
        {"whole string", "hello", 5, "hello"},
        {"prefix", "hello", 3, "hel"},
        {"empty", "hello", 0, ""},
        {"embedded NUL kept", "a\0b", 3, "a\0b"},
        {"16 bytes exactly", "0123456789abcdef", 16, "0123456789abcdef"},
    };
    struct arena *a = arena_new(0);
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        char *p = arena_strndup(a, rows[r].in, rows[r].n);
        assert_memory_equal(p, rows[r].want, rows[r].n + 1);
    }

    /* Input that is not terminated at all (ASan reports any over-read). */
    char *raw = malloc(3);
    memcpy(raw, "xyz", 3);
    char *p = arena_strndup(a, raw, 3);
    free(raw);
    assert_string_equal(p, "xyz");

    char src[] = "copy me";
    char *d = arena_strdup(a, src);
    src[0] = 'C';
    assert_string_equal(d, "copy me");
    assert_ptr_not_equal(d, src);
    assert_string_equal(arena_strdup(a, ""), "");
    arena_free(&a);
}

/* Many small allocations never overlap and account exactly. */
static void test_many_small(void **state)
{
    (void)state;
    enum { N = 100000, CHUNK = 4096 };
    struct arena *a = arena_new(CHUNK);
    unsigned char **ptrs = calloc(N, sizeof(*ptrs));
    size_t want_used = 0;
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + i % 64;
        ptrs[i] = arena_alloc(a, n);
        memset(ptrs[i], (int)(i & 0xff), n);
        want_used += align16(n);
    }
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + i % 64;
        for (size_t k = 0; k < n; k++)
            assert_int_equal(ptrs[i][k], i & 0xff);
    }
    assert_int_equal(arena_used(a), want_used);
    /* No allocation here is big, so only regular chunks exist, and each one
     * wastes less than a quarter of itself. */
    assert_int_equal(arena_footprint(a) % CHUNK, 0);
    assert_true(arena_footprint(a) >= want_used);
    assert_true(arena_footprint(a) <= want_used + want_used / 3 + CHUNK);
    free(ptrs);
    arena_free(&a);
}

/* used and footprint after each step of a scripted sequence. */
static void test_accounting(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        size_t want_used;
        size_t want_footprint;
    } steps[] = {
        /* the first chunk, filled exactly */
        {0, 16, 256},
        {1, 32, 256},
        {16, 48, 256},
        {17, 80, 256},
        {64, 144, 256},
        {64, 208, 256},
        {48, 256, 256},
        /* a second chunk */
        {1, 272, 512},
        {64, 336, 512},
        /* big, and the tail is too short: chunks of their own */
        {200, 544, 720},
        {1000, 1552, 1728},
        /* the second chunk's tail again */
        {16, 1568, 1728},
    };
    struct arena *a = arena_new(256);
    assert_int_equal(arena_used(a), 0);
    assert_int_equal(arena_footprint(a), 0);
    for (size_t i = 0; i < PL_ARRAY_LEN(steps); i++) {
        arena_alloc(a, steps[i].n);
        assert_int_equal(arena_used(a), steps[i].want_used);
        assert_int_equal(arena_footprint(a), steps[i].want_footprint);
    }
    arena_reset(a);
    assert_int_equal(arena_used(a), 0);
    assert_int_equal(arena_footprint(a), 256);
    arena_free(&a);
    assert_null(a);
    arena_free(&a); /* freeing a NULL arena is a no-op */
    assert_null(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zero_fill),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_big_own_chunk),
        cmocka_unit_test(test_reset_keeps_one_chunk),
        cmocka_unit_test(test_reset_after_big_first),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_strdup_strndup),
        cmocka_unit_test(test_many_small),
        cmocka_unit_test(test_accounting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
