/* SPDX-License-Identifier: MIT */
/* Unit tests for XMPP error conditions and struct err (libcommon/err.c). */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>

#include "attr.h"
#include "err.h"

/* RFC 6120 §8.3.3: every stanza condition with the error type the RFC says it
 * SHOULD carry (the first one where it names two). */
static const struct {
    enum xmpp_cond cond;
    const char *name;
    const char *type;
} stanza_conds[] = {
    {XMPP_COND_BAD_REQUEST, "bad-request", "modify"},
    {XMPP_COND_CONFLICT, "conflict", "cancel"},
    {XMPP_COND_FEATURE_NOT_IMPLEMENTED, "feature-not-implemented", "cancel"},
    {XMPP_COND_FORBIDDEN, "forbidden", "auth"},
    {XMPP_COND_GONE, "gone", "cancel"},
    {XMPP_COND_INTERNAL_SERVER_ERROR, "internal-server-error", "cancel"},
    {XMPP_COND_ITEM_NOT_FOUND, "item-not-found", "cancel"},
    {XMPP_COND_JID_MALFORMED, "jid-malformed", "modify"},
    {XMPP_COND_NOT_ACCEPTABLE, "not-acceptable", "modify"},
    {XMPP_COND_NOT_ALLOWED, "not-allowed", "cancel"},
    {XMPP_COND_NOT_AUTHORIZED, "not-authorized", "auth"},
    {XMPP_COND_POLICY_VIOLATION, "policy-violation", "modify"},
    {XMPP_COND_RECIPIENT_UNAVAILABLE, "recipient-unavailable", "wait"},
    {XMPP_COND_REDIRECT, "redirect", "modify"},
    {XMPP_COND_REGISTRATION_REQUIRED, "registration-required", "auth"},
    {XMPP_COND_REMOTE_SERVER_NOT_FOUND, "remote-server-not-found", "cancel"},
    {XMPP_COND_REMOTE_SERVER_TIMEOUT, "remote-server-timeout", "wait"},
    {XMPP_COND_RESOURCE_CONSTRAINT, "resource-constraint", "wait"},
    {XMPP_COND_SERVICE_UNAVAILABLE, "service-unavailable", "cancel"},
    {XMPP_COND_SUBSCRIPTION_REQUIRED, "subscription-required", "auth"},
    {XMPP_COND_UNDEFINED_CONDITION, "undefined-condition", "cancel"},
    {XMPP_COND_UNEXPECTED_REQUEST, "unexpected-request", "wait"},
};

/* RFC 6120 §4.9.3: every stream condition. */
static const struct {
    enum xmpp_cond cond;
    const char *name;
} stream_conds[] = {
    {XMPP_COND_STREAM_BAD_FORMAT, "bad-format"},
    {XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX, "bad-namespace-prefix"},
    {XMPP_COND_STREAM_CONFLICT, "conflict"},
    {XMPP_COND_STREAM_CONNECTION_TIMEOUT, "connection-timeout"},
    {XMPP_COND_STREAM_HOST_GONE, "host-gone"},
    {XMPP_COND_STREAM_HOST_UNKNOWN, "host-unknown"},
    {XMPP_COND_STREAM_IMPROPER_ADDRESSING, "improper-addressing"},
    {XMPP_COND_STREAM_INTERNAL_SERVER_ERROR, "internal-server-error"},
    {XMPP_COND_STREAM_INVALID_FROM, "invalid-from"},
    {XMPP_COND_STREAM_INVALID_NAMESPACE, "invalid-namespace"},
    {XMPP_COND_STREAM_INVALID_XML, "invalid-xml"},
    {XMPP_COND_STREAM_NOT_AUTHORIZED, "not-authorized"},
    {XMPP_COND_STREAM_NOT_WELL_FORMED, "not-well-formed"},
    {XMPP_COND_STREAM_POLICY_VIOLATION, "policy-violation"},
    {XMPP_COND_STREAM_REMOTE_CONNECTION_FAILED, "remote-connection-failed"},
    {XMPP_COND_STREAM_RESET, "reset"},
    {XMPP_COND_STREAM_RESOURCE_CONSTRAINT, "resource-constraint"},
    {XMPP_COND_STREAM_RESTRICTED_XML, "restricted-xml"},
    {XMPP_COND_STREAM_SEE_OTHER_HOST, "see-other-host"},
    {XMPP_COND_STREAM_SYSTEM_SHUTDOWN, "system-shutdown"},
    {XMPP_COND_STREAM_UNDEFINED_CONDITION, "undefined-condition"},
    {XMPP_COND_STREAM_UNSUPPORTED_ENCODING, "unsupported-encoding"},
    {XMPP_COND_STREAM_UNSUPPORTED_FEATURE, "unsupported-feature"},
    {XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE, "unsupported-stanza-type"},
    {XMPP_COND_STREAM_UNSUPPORTED_VERSION, "unsupported-version"},
};

/* The tables above cover the whole enum, so a condition added without a
 * test row (or a name) is caught. */
static void test_tables_cover_enum(void **state)
{
    (void)state;
    assert_int_equal(PL_ARRAY_LEN(stanza_conds), XMPP_COND_STREAM_FIRST - 1);
    assert_int_equal(PL_ARRAY_LEN(stream_conds), XMPP_COND_COUNT - XMPP_COND_STREAM_FIRST);
    for (size_t i = 0; i < PL_ARRAY_LEN(stanza_conds); i++)
        assert_int_equal(stanza_conds[i].cond, XMPP_COND_NONE + 1 + (int)i);
    for (size_t i = 0; i < PL_ARRAY_LEN(stream_conds); i++)
        assert_int_equal(stream_conds[i].cond, XMPP_COND_STREAM_FIRST + (int)i);
}

static void test_stanza_names_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < PL_ARRAY_LEN(stanza_conds); i++) {
        enum xmpp_cond c = stanza_conds[i].cond;
        assert_string_equal(xmpp_cond_name(c), stanza_conds[i].name);
        assert_int_equal(xmpp_cond_from_name(stanza_conds[i].name, false), c);
        assert_false(xmpp_cond_is_stream(c));
    }
}

static void test_stream_names_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < PL_ARRAY_LEN(stream_conds); i++) {
        enum xmpp_cond c = stream_conds[i].cond;
        assert_string_equal(xmpp_cond_name(c), stream_conds[i].name);
        assert_int_equal(xmpp_cond_from_name(stream_conds[i].name, true), c);
        assert_true(xmpp_cond_is_stream(c));
    }
}

/* A name is looked up in the requested list only. */
static void test_lookup_by_list(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool stream;
        enum xmpp_cond want;
    } rows[] = {
        {"conflict", false, XMPP_COND_CONFLICT},
        {"conflict", true, XMPP_COND_STREAM_CONFLICT},
        {"not-authorized", false, XMPP_COND_NOT_AUTHORIZED},
        {"not-authorized", true, XMPP_COND_STREAM_NOT_AUTHORIZED},
        {"undefined-condition", false, XMPP_COND_UNDEFINED_CONDITION},
        {"undefined-condition", true, XMPP_COND_STREAM_UNDEFINED_CONDITION},
        {"bad-request", true, XMPP_COND_NONE},         /* stanza only */
        {"item-not-found", true, XMPP_COND_NONE},      /* stanza only */
        {"bad-format", false, XMPP_COND_NONE},         /* stream only */
        {"see-other-host", false, XMPP_COND_NONE},     /* stream only */
        {"payment-required", false, XMPP_COND_NONE},   /* RFC 3920, dropped in 6120 */
        {"xml-not-well-formed", true, XMPP_COND_NONE}, /* RFC 3920 spelling */
        {"", false, XMPP_COND_NONE},
        {"", true, XMPP_COND_NONE},
        {"Conflict", false, XMPP_COND_NONE},
        {"conflict ", false, XMPP_COND_NONE},
    };
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++)
        assert_int_equal(xmpp_cond_from_name(rows[r].name, rows[r].stream), rows[r].want);
}

static void test_stanza_types(void **state)
{
    (void)state;
    for (size_t i = 0; i < PL_ARRAY_LEN(stanza_conds); i++)
        assert_string_equal(xmpp_cond_type(stanza_conds[i].cond), stanza_conds[i].type);
}

/* Values outside the stanza list still give something sendable. */
static void test_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(xmpp_cond_name(XMPP_COND_NONE), "undefined-condition");
    assert_string_equal(xmpp_cond_name(XMPP_COND_COUNT), "undefined-condition");
    assert_string_equal(xmpp_cond_name((enum xmpp_cond)1000), "undefined-condition");
    assert_string_equal(xmpp_cond_type(XMPP_COND_NONE), "cancel");
    assert_string_equal(xmpp_cond_type(XMPP_COND_STREAM_RESET), "cancel");
    assert_string_equal(xmpp_cond_type(XMPP_COND_COUNT), "cancel");
    assert_false(xmpp_cond_is_stream(XMPP_COND_NONE));
    assert_false(xmpp_cond_is_stream(XMPP_COND_COUNT));
    assert_true(xmpp_cond_is_stream(XMPP_COND_STREAM_FIRST));
    assert_false(xmpp_cond_is_stream(XMPP_COND_STREAM_FIRST - 1));
}

static int fails_with(struct err *err)
{
    return err_set(err, XMPP_COND_ITEM_NOT_FOUND, "no user %s on %s", "alice", "ex.org");
}

static void test_err_set(void **state)
{
    (void)state;
    struct err err = {XMPP_COND_NONE, "stale"};
    assert_int_equal(fails_with(&err), -1);
    assert_int_equal(err.cond, XMPP_COND_ITEM_NOT_FOUND);
    assert_string_equal(err.text, "no user alice on ex.org");

    assert_int_equal(fails_with(NULL), -1);
    assert_int_equal(err_set(NULL, XMPP_COND_BAD_REQUEST, "%s", "ignored"), -1);

    err_clear(&err);
    assert_int_equal(err.cond, XMPP_COND_NONE);
    assert_string_equal(err.text, "");
}

/* text holds at most 255 bytes plus its terminator. */
static void test_err_truncation(void **state)
{
    (void)state;
    static const struct {
        size_t in_len;
        size_t want_len;
    } rows[] = {
        {0, 0}, {1, 1}, {254, 254}, {255, 255}, {256, 255}, {300, 255}, {4000, 255},
    };
    char in[4001];
    for (size_t r = 0; r < PL_ARRAY_LEN(rows); r++) {
        memset(in, 'a', rows[r].in_len);
        in[rows[r].in_len] = '\0';
        in[0] = rows[r].in_len ? 'b' : '\0';
        struct err err;
        memset(&err, 0x7f, sizeof(err));
        err_set(&err, XMPP_COND_POLICY_VIOLATION, "%s", in);
        assert_int_equal(err.cond, XMPP_COND_POLICY_VIOLATION);
        assert_int_equal(strlen(err.text), rows[r].want_len);
        assert_memory_equal(err.text, in, rows[r].want_len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_cover_enum),
        cmocka_unit_test(test_stanza_names_round_trip),
        cmocka_unit_test(test_stream_names_round_trip),
        cmocka_unit_test(test_lookup_by_list),
        cmocka_unit_test(test_stanza_types),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_err_set),
        cmocka_unit_test(test_err_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
