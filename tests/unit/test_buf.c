/* SPDX-License-Identifier: MIT */
/* Unit tests for the growable byte buffer (libcommon/buf.c): contents, length
 * and the NUL past len are checked after every operation. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>

#include "attr.h"
#include "buf.h"

/* Asserts b holds exactly the n bytes want, with a terminator past them. */
static void check_buf(const struct buf *b, const void *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_non_null(b->data);
    assert_true(b->cap > b->len);
    if (n)
        assert_memory_equal(b->data, want, n);
    assert_int_equal(b->data[b->len], '\0');
    assert_ptr_equal(buf_cstr(b), b->data);
}

enum op { OP_APPEND, OP_APPEND_STR, OP_APPEND_CHAR, OP_PRINTF_INT, OP_CONSUME, OP_RESET };

/* One step of a script: an operation with its argument and the whole
 * buffer expected afterwards. */
struct step {
    enum op op;
    const char *arg; /* bytes for append/append_str; the char for append_char */
    size_t n;        /* byte count for append and consume; the int for printf */
    const char *want;
    size_t want_len;
};

static void run_step(struct buf *b, const struct step *s)
{
    switch (s->op) {
    case OP_APPEND:
        buf_append(b, s->arg, s->n);
        break;
    case OP_APPEND_STR:
        buf_append_str(b, s->arg);
        break;
    case OP_APPEND_CHAR:
        buf_append_char(b, s->arg[0]);
        break;
    case OP_PRINTF_INT:
        buf_printf(b, "<%zu>", s->n);
        break;
    case OP_CONSUME:
        buf_consume(b, s->n);
        break;
    case OP_RESET:
        buf_reset(b);
        break;
    }
}

#define S(lit) lit, sizeof(lit) - 1

static void test_script(void **state)
{
    (void)state;
    static const struct step steps[] = {
        {OP_APPEND, S("hello"), S("hello")},
        {OP_APPEND_STR, " world", 0, S("hello world")},
        {OP_APPEND_CHAR, "!", 0, S("hello world!")},
        {OP_PRINTF_INT, NULL, 42, S("hello world!<42>")},
        {OP_CONSUME, NULL, 6, S("world!<42>")},
        {OP_CONSUME, NULL, 0, S("world!<42>")},
        {OP_APPEND, "", 0, S("world!<42>")},
        {OP_APPEND_STR, "", 0, S("world!<42>")},
        {OP_CONSUME, NULL, 10, S("")},
        {OP_APPEND, S("abc"), S("abc")},
        {OP_RESET, NULL, 0, S("")},
        {OP_RESET, NULL, 0, S("")},
        {OP_PRINTF_INT, NULL, 7, S("<7>")},
        {OP_APPEND, S("a\0b"), S("<7>a\0b")},
        {OP_APPEND_CHAR, "\0", 0, S("<7>a\0b\0")},
        {OP_CONSUME, NULL, 4, S("\0b\0")},
        {OP_APPEND_STR, "z", 0, S("\0b\0z")},
    };
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < PL_ARRAY_LEN(steps); i++) {
        run_step(&b, &steps[i]);
        check_buf(&b, steps[i].want, steps[i].want_len);
    }
    buf_fini(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

/* Reset and consume keep the storage; only fini and detach give it up. */
static void test_reset_keeps_storage(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "some text that is kept around");
    char *data = b.data;
    size_t cap = b.cap;
    buf_reset(&b);
    check_buf(&b, "", 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    buf_append_str(&b, "again");
    buf_consume(&b, 2);
    check_buf(&b, S("ain"));
    assert_ptr_equal(b.data, data);
    buf_fini(&b);
}

static void test_printf(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    buf_printf(&b, "%s", "");
    check_buf(&b, "", 0);
    buf_printf(&b, "%s=%d;", "a", -1);
    buf_printf(&b, "%05.2f|%x|%c", 2.5, 0xbeefu, 'q');
    check_buf(&b, S("a=-1;02.50|beef|q"));

    /* One printf far larger than the buffer: grows in one go. */
    char big[5000];
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    buf_reset(&b);
    buf_printf(&b, "[%s]", big);
    assert_int_equal(b.len, sizeof(big) + 1);
    assert_int_equal(b.data[0], '[');
    assert_memory_equal(b.data + 1, big, sizeof(big) - 1);
    assert_int_equal(b.data[sizeof(big)], ']');
    assert_int_equal(b.data[b.len], '\0');
    buf_fini(&b);
}

/* A byte at a time from nothing: every intermediate state is correct and
 * capacity always leaves room for the terminator. */
static void test_growth_from_empty(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct buf b = BUF_INIT;
    size_t reallocs = 0;
    char *last = NULL;
    for (size_t i = 0; i < N; i++) {
        buf_append_char(&b, (char)('a' + i % 26));
        assert_int_equal(b.len, i + 1);
        assert_true(b.cap > b.len);
        assert_int_equal(b.data[b.len], '\0');
        assert_int_equal(b.data[i], 'a' + i % 26);
        if (b.data != last)
            reallocs++;
        last = b.data;
    }
    for (size_t i = 0; i < N; i++)
        assert_int_equal(b.data[i], 'a' + i % 26);
    /* Doubling: a handful of reallocations, not one per append. */
    assert_in_range(reallocs, 1, 16);
    buf_fini(&b);
}

static void test_reserve(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 63, 64, 65, 1000};
    for (size_t i = 0; i < PL_ARRAY_LEN(sizes); i++) {
        struct buf b = BUF_INIT;
        buf_reserve(&b, sizes[i]);
        assert_true(b.cap > sizes[i]);
        check_buf(&b, "", 0);
        assert_string_equal(buf_cstr(&b), "");
        char *data = b.data;
        for (size_t k = 0; k < sizes[i]; k++)
            buf_append_char(&b, 'r');
        assert_ptr_equal(b.data, data); /* the reserved room sufficed */
        assert_int_equal(b.len, sizes[i]);
        assert_int_equal(b.data[b.len], '\0');
        buf_fini(&b);
    }
}

static void test_detach(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *in;
        size_t n;
        bool touch; /* false: detach a buffer never written to */
    } rows[] = {
        {"text", S("stanza"), true},
        {"binary", S("x\0y\0"), true},
        {"emptied by reset", S(""), true},
        {"never used", S(""), false},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        struct buf b = BUF_INIT;
        if (rows[r].touch) {
            buf_append_str(&b, "to be dropped");
            buf_reset(&b);
            buf_append(&b, rows[r].in, rows[r].n);
        }
        size_t len = 12345;
        char *p = buf_detach(&b, &len);
        assert_non_null(p);
        assert_int_equal(len, rows[r].n);
        assert_memory_equal(p, rows[r].in, rows[r].n);
        assert_int_equal(p[len], '\0');
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.cap, 0);
        assert_string_equal(buf_cstr(&b), "");
        free(p);

        /* The emptied buffer is reusable. */
        buf_append_str(&b, "next");
        check_buf(&b, S("next"));
        p = buf_detach(&b, NULL);
        assert_string_equal(p, "next");
        free(p);
    }
}

static void test_cstr_empty(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    assert_null(b.data);
    assert_non_null(buf_cstr(&b));
    assert_string_equal(buf_cstr(&b), "");

    buf_append(&b, "", 0); /* a use, even of nothing, allocates */
    check_buf(&b, "", 0);
    buf_fini(&b);
    assert_string_equal(buf_cstr(&b), "");

    buf_printf(&b, "%d", 5);
    buf_consume(&b, 1);
    check_buf(&b, "", 0);
    buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script),     cmocka_unit_test(test_reset_keeps_storage),
        cmocka_unit_test(test_printf),     cmocka_unit_test(test_growth_from_empty),
        cmocka_unit_test(test_reserve),    cmocka_unit_test(test_detach),
        cmocka_unit_test(test_cstr_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
