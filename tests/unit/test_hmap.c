/* SPDX-License-Identifier: MIT */
/* Unit tests for the string-keyed hash map and its hashes (libcommon/hmap.c). */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>

#include "attr.h"
#include "hmap.h"

/* Distinct non-NULL values to store. */
static int vals[8];

enum op { OP_PUT, OP_GET, OP_DEL };

/* One step of a script: the call, its key and value, what it must return and
 * the count afterwards. */
struct step {
    enum op op;
    const char *key;
    int *value;
    int *want;
    size_t want_count;
};

static void test_script(void **state)
{
    (void)state;
    int *a = &vals[0], *b = &vals[1], *c = &vals[2];
    const struct step steps[] = {
        {OP_GET, "alice", NULL, NULL, 0},
        {OP_DEL, "alice", NULL, NULL, 0},
        {OP_PUT, "alice", a, NULL, 1},
        {OP_GET, "alice", NULL, a, 1},
        {OP_PUT, "bob", b, NULL, 2},
        {OP_PUT, "alice", c, a, 2}, /* replace returns the old value */
        {OP_GET, "alice", NULL, c, 2},
        {OP_GET, "bob", NULL, b, 2},
        {OP_GET, "Alice", NULL, NULL, 2},
        {OP_PUT, "", a, NULL, 3}, /* the empty key is a key */
        {OP_GET, "", NULL, a, 3},
        {OP_DEL, "alice", NULL, c, 2},
        {OP_GET, "alice", NULL, NULL, 2},
        {OP_DEL, "alice", NULL, NULL, 2},
        {OP_DEL, "", NULL, a, 1},
        {OP_GET, "bob", NULL, b, 1},
        {OP_PUT, "alice", b, NULL, 2}, /* re-insert after delete */
        {OP_GET, "alice", NULL, b, 2},
    };
    struct hmap *m = hmap_new();
    assert_int_equal(hmap_count(m), 0);
    for (size_t i = 0; i < PL_ARRAY_LEN(steps); i++) {
        const struct step *s = &steps[i];
        void *got = NULL;
        switch (s->op) {
        case OP_PUT:
            got = hmap_put(m, s->key, s->value);
            break;
        case OP_GET:
            got = hmap_get(m, s->key);
            break;
        case OP_DEL:
            got = hmap_del(m, s->key);
            break;
        }
        assert_ptr_equal(got, s->want);
        assert_int_equal(hmap_count(m), s->want_count);
    }
    hmap_free(&m);
    assert_null(m);
    hmap_free(&m); /* freeing a NULL map is a no-op */
}

/* The map copies keys: the caller's buffer may change or go away. */
static void test_keys_copied(void **state)
{
    (void)state;
    struct hmap *m = hmap_new();
    char *key = strdup("transient");
    assert_null(hmap_put(m, key, &vals[0]));
    memcpy(key, "TRANSIENT", 9);
    assert_null(hmap_get(m, key));
    free(key);
    assert_ptr_equal(hmap_get(m, "transient"), &vals[0]);
    hmap_free(&m);
}

/* Keys that are prefixes of one another stay distinct. */
static void test_prefix_keys(void **state)
{
    (void)state;
    static const char *const keys[] = {"a", "ab", "abc", "abcdefgh", "abcdefghi", "b", "ba"};
    struct hmap *m = hmap_new();
    for (size_t i = 0; i < PL_ARRAY_LEN(keys); i++)
        assert_null(hmap_put(m, keys[i], &vals[i]));
    assert_int_equal(hmap_count(m), PL_ARRAY_LEN(keys));
    for (size_t i = 0; i < PL_ARRAY_LEN(keys); i++)
        assert_ptr_equal(hmap_get(m, keys[i]), &vals[i]);
    assert_null(hmap_get(m, "abcd"));

    /* Deleting one leaves its prefixes and extensions alone. */
    assert_ptr_equal(hmap_del(m, "ab"), &vals[1]);
    assert_null(hmap_get(m, "ab"));
    assert_ptr_equal(hmap_get(m, "a"), &vals[0]);
    assert_ptr_equal(hmap_get(m, "abc"), &vals[2]);
    assert_int_equal(hmap_count(m), PL_ARRAY_LEN(keys) - 1);
    hmap_free(&m);
}

/* Lookups by (pointer, length) into bytes that are not terminated. */
static void test_getn(void **state)
{
    (void)state;
    struct hmap *m = hmap_new();
    hmap_put(m, "alp", &vals[0]);
    hmap_put(m, "alpha", &vals[1]);
    hmap_put(m, "bet", &vals[2]);

    /* A heap copy without a terminator, so ASan reports any read past it. */
    static const char text[] = "alphabet";
    char *raw = malloc(8);
    memcpy(raw, text, 8);
    static const struct {
        size_t off, len;
        int want; /* index into vals, or -1 for absent */
    } rows[] = {
        {0, 3, 0}, {0, 5, 1}, {5, 3, 2}, {0, 4, -1}, {0, 8, -1}, {0, 0, -1}, {1, 2, -1},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        void *want = rows[r].want < 0 ? NULL : &vals[rows[r].want];
        assert_ptr_equal(hmap_getn(m, raw + rows[r].off, rows[r].len), want);
    }
    free(raw);

    /* An embedded NUL within len is part of the key, so "alp\0" is not "alp". */
    assert_null(hmap_getn(m, "alp\0", 4));
    assert_ptr_equal(hmap_getn(m, "alp\0", 3), &vals[0]);
    hmap_free(&m);
}

static void key_of(char *out, size_t size, size_t i)
{
    snprintf(out, size, "user%zu@example.org", i);
}

/* 100k keys through many doublings: all retrievable, then half deleted. */
static void test_many_keys(void **state)
{
    (void)state;
    enum { N = 100000 };
    int *v = calloc(N, sizeof(*v));
    char key[64];
    struct hmap *m = hmap_new();
    for (size_t i = 0; i < N; i++) {
        key_of(key, sizeof(key), i);
        assert_null(hmap_put(m, key, &v[i]));
        assert_int_equal(hmap_count(m), i + 1);
    }
    for (size_t i = 0; i < N; i++) {
        key_of(key, sizeof(key), i);
        assert_ptr_equal(hmap_get(m, key), &v[i]);
    }
    for (size_t i = 0; i < N; i += 2) {
        key_of(key, sizeof(key), i);
        assert_ptr_equal(hmap_del(m, key), &v[i]);
    }
    assert_int_equal(hmap_count(m), N / 2);
    for (size_t i = 0; i < N; i++) {
        key_of(key, sizeof(key), i);
        assert_ptr_equal(hmap_get(m, key), i % 2 ? &v[i] : NULL);
    }
    hmap_free(&m);
    free(v);
}

/* Iteration visits each entry exactly once with its own key and value. */
static void test_iteration(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000};
    enum { MAX = 1000 };
    int *v = calloc(MAX, sizeof(*v));
    int *seen = calloc(MAX, sizeof(*seen));
    char key[64];
    for (size_t s = 0; s < PL_ARRAY_LEN(sizes); s++) {
        struct hmap *m = hmap_new();
        for (size_t i = 0; i < sizes[s]; i++) {
            key_of(key, sizeof(key), i);
            hmap_put(m, key, &v[i]);
        }
        memset(seen, 0, MAX * sizeof(*seen));
        struct hmap_iter it = {0};
        const char *k;
        void *val;
        size_t visits = 0;
        while (hmap_next(m, &it, &k, &val)) {
            size_t i = (size_t)((int *)val - v);
            assert_true(i < sizes[s]);
            key_of(key, sizeof(key), i);
            assert_string_equal(k, key);
            seen[i]++;
            visits++;
        }
        assert_int_equal(visits, sizes[s]);
        for (size_t i = 0; i < sizes[s]; i++)
            assert_int_equal(seen[i], 1);
        /* An exhausted iterator stays exhausted. */
        assert_false(hmap_next(m, &it, &k, &val));

        /* key_r and value_r may be NULL. */
        struct hmap_iter it2 = {0};
        size_t visits2 = 0;
        while (hmap_next(m, &it2, NULL, NULL))
            visits2++;
        assert_int_equal(visits2, sizes[s]);
        hmap_free(&m);
    }
    free(seen);
    free(v);
}

static void test_hash_stable(void **state)
{
    (void)state;
    /* Inputs that exercise the 8-byte blocks and every tail length. */
    static const struct {
        const char *p;
        size_t len;
    } in[] = {
        {"", 0},
        {"a", 1},
        {"b", 1},
        {"a\0", 2},
        {"ab", 2},
        {"ba", 2},
        {"abcdefg", 7},
        {"abcdefgh", 8},
        {"abcdefgi", 8},
        {"bbcdefgh", 8},
        {"abcdefghi", 9},
        {"abcdefghabcdefgh", 16},
        {"abcdefghabcdefgi", 16},
        {"abcdefghabcdefgh\0", 17},
    };
    enum { N = PL_ARRAY_LEN(in) };
    uint64_t h[N];
    for (size_t i = 0; i < N; i++) {
        h[i] = hash_stable(in[i].p, in[i].len, 42);
        /* Deterministic across calls. */
        assert_int_equal(hash_stable(in[i].p, in[i].len, 42), h[i]);
        /* The seed matters. */
        assert_int_not_equal(hash_stable(in[i].p, in[i].len, 43), h[i]);
        assert_int_not_equal(hash_stable(in[i].p, in[i].len, 0), h[i]);
        /* Only the len bytes count. */
        char copy[32];
        memcpy(copy, in[i].p, in[i].len);
        memset(copy + in[i].len, 'X', sizeof(copy) - in[i].len);
        assert_int_equal(hash_stable(copy, in[i].len, 42), h[i]);
    }
    /* Distinct inputs, distinct hashes. */
    for (size_t i = 0; i < N; i++) {
        for (size_t j = i + 1; j < N; j++)
            assert_int_not_equal(h[i], h[j]);
    }
}

/* hash_stable is a wire contract between processes (rendezvous hashing), so
 * its values are pinned: changing them breaks mixed-version clusters. */
static void test_hash_stable_pinned(void **state)
{
    (void)state;
    static const struct {
        const char *p;
        uint64_t seed;
        uint64_t want;
    } rows[] = {
        {"", 0, UINT64_C(0x0000000000000000)},
        {"", 42, UINT64_C(0x810879608e4259cc)},
        {"sm-1", 0, UINT64_C(0xacfd3e375d64fcff)},
        {"abcdefghi", 7, UINT64_C(0x27411af0129a3a8d)},
        {"alice@example.org", 1, UINT64_C(0xd5401a8042a80844)},
        {"0123456789abcdef", UINT64_C(0x9e3779b97f4a7c15), UINT64_C(0x4e8944a52c2dde14)},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        assert_int_equal(hash_stable(rows[r].p, strlen(rows[r].p), rows[r].seed), rows[r].want);
    }
}

/* Each map draws its own seed; within a map the hash is stable. */
static void test_map_seeds(void **state)
{
    (void)state;
    struct hmap *m1 = hmap_new();
    struct hmap *m2 = hmap_new();
    static const char *const keys[] = {"", "a", "router", "alice@example.org/phone"};
    for (size_t i = 0; i < PL_ARRAY_LEN(keys); i++) {
        size_t len = strlen(keys[i]);
        uint64_t h1 = hmap_hash(m1, keys[i], len);
        assert_int_equal(hmap_hash(m1, keys[i], len), h1);
        assert_int_not_equal(hmap_hash(m2, keys[i], len), h1);
    }
    hmap_free(&m1);
    hmap_free(&m2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script),      cmocka_unit_test(test_keys_copied),
        cmocka_unit_test(test_prefix_keys), cmocka_unit_test(test_getn),
        cmocka_unit_test(test_many_keys),   cmocka_unit_test(test_iteration),
        cmocka_unit_test(test_hash_stable), cmocka_unit_test(test_hash_stable_pinned),
        cmocka_unit_test(test_map_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
