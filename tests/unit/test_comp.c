/* SPDX-License-Identifier: MIT */
/* Unit tests for the XEP-0114 handshake digest and stream ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "comp_handshake.h"

struct digest_row {
    const char *stream_id;
    const char *secret;
    const char *want;
};

/* Expected values computed independently (SHA-1 of id || secret). */
static const struct digest_row digests[] = {
    {"3BF96D32", "sesame", "7a98dc4c9e92493d7fd66a25364c862637789c45"},
    {"", "x", "11f6ad8ec52a2984abaafd7c3b516503785c2072"},
    {"abc", "", "a9993e364706816aba3e25717850c26c9cd0d89d"},
};

static void test_digest(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(digests) / sizeof(digests[0]); i++) {
        char out[COMP_DIGEST_LEN + 1];
        comp_handshake_digest(digests[i].stream_id, digests[i].secret, out);
        assert_string_equal(out, digests[i].want);
    }
}

struct check_row {
    const char *digest;
    bool ok;
};

static void test_check(void **state)
{
    (void)state;
    static const struct check_row rows[] = {
        {"7a98dc4c9e92493d7fd66a25364c862637789c45", true},
        {"7A98DC4C9E92493D7FD66A25364C862637789C45", true}, /* upper-case hex accepted */
        {"7a98dc4c9e92493d7fd66a25364c862637789c46", false},
        {"7a98dc4c9e92493d7fd66a25364c862637789c4", false}, /* short */
        {"7a98dc4c9e92493d7fd66a25364c862637789c455", false},
        {"", false},
        {"xa98dc4c9e92493d7fd66a25364c862637789c45", false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool got =
            comp_handshake_check("3BF96D32", "sesame", rows[i].digest, strlen(rows[i].digest));
        assert_int_equal(got, rows[i].ok);
    }
    assert_false(
        comp_handshake_check("3BF96D32", "sesamE", "7a98dc4c9e92493d7fd66a25364c862637789c45", 40));
}

static void test_stream_ids_are_random_hex(void **state)
{
    (void)state;
    char a[COMP_STREAM_ID_LEN + 1], b[COMP_STREAM_ID_LEN + 1];
    comp_stream_id(a);
    comp_stream_id(b);
    assert_int_equal(strlen(a), COMP_STREAM_ID_LEN);
    assert_string_not_equal(a, b);
    for (size_t i = 0; i < COMP_STREAM_ID_LEN; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_stream_ids_are_random_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
