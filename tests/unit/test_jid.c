/* SPDX-License-Identifier: MIT */
/* Unit tests for jid: a table of valid and invalid JIDs with their normal
 * forms or the part the error names, part-length boundaries, comparison and
 * formatting; the ASCII fast path checked against the full PRECIS/IDNA path
 * on the table, on edge cases and on random input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "err.h"
#include "jid.h"
#include "jid_private.h"

struct jid_case {
    const char *input;
    const char *want; /* normalised full JID, or NULL when parsing must fail */
    const char *why;  /* for failures: a substring of the error text */
};

static const struct jid_case cases[] = {
    /* plain and case-insensitive parts */
    {"example.com", "example.com", NULL},
    {"EXAMPLE.Com", "example.com", NULL},
    {"user@example.com", "user@example.com", NULL},
    {"User@Example.COM", "user@example.com", NULL},
    {"user@example.com/res", "user@example.com/res", NULL},
    {"user@example.com/Res Ource", "user@example.com/Res Ource", NULL},
    {"example.com/res", "example.com/res", NULL},
    {"localhost", "localhost", NULL},
    {"juliet@localhost", "juliet@localhost", NULL},
    {"juliet@ex-ample.com", "juliet@ex-ample.com", NULL},
    {"123", "123", NULL},
    /* separators: the first '/' starts the resource, '@' only counts before it */
    {"a/b@c", "a/b@c", NULL},
    {"u@d/r/s", "u@d/r/s", NULL},
    {"u@d/@", "u@d/@", NULL},
    {"u@d/a@b/c", "u@d/a@b/c", NULL},
    /* trailing dot, IDNA label separators */
    {"example.com.", "example.com", NULL},
    {"user@example.com./r", "user@example.com/r", NULL},
    {"a\xE3\x80\x82"
     "b",
     "a.b", NULL},
    {"a\xEF\xBC\x8E"
     "b",
     "a.b", NULL},
    /* IP literals */
    {"u@127.0.0.1", "u@127.0.0.1", NULL},
    {"1.2.3.4/r", "1.2.3.4/r", NULL},
    {"u@[::1]", "u@[::1]", NULL},
    {"u@[2001:DB8:0:0::1]/r", "u@[2001:db8::1]/r", NULL},
    /* internationalised domains: stored as U-labels */
    {"b\xC3\xBC"
     "cher.example",
     "b\xC3\xBC"
     "cher.example",
     NULL},
    {"xn--bcher-kva.example",
     "b\xC3\xBC"
     "cher.example",
     NULL},
    {"XN--BCHER-KVA.example",
     "b\xC3\xBC"
     "cher.example",
     NULL},
    {"B\xC3\x9C"
     "CHER.example.",
     "b\xC3\xBC"
     "cher.example",
     NULL},
    {"u@\xEF\xBD\x81\xEF\xBD\x82\xEF\xBD\x83.example", "u@abc.example", NULL},
    /* localpart: UsernameCaseMapped */
    {"\xC3\x9Cn\xC3\xAF"
     "c\xC3\xB6"
     "d\xC3\xA9@example.com",
     "\xC3\xBCn\xC3\xAF"
     "c\xC3\xB6"
     "d\xC3\xA9@example.com",
     NULL},
    {"\xEF\xBD\x8A\xEF\xBD\x95\xEF\xBD\x8C\xEF\xBD\x89\xEF\xBD\x85\xEF\xBD\x94@example.com",
     "juliet@example.com", NULL},                                       /* fullwidth */
    {"u\xCC\x88ser@d", "\xC3\xBCser@d", NULL},                          /* NFC */
    {"\xCE\xA3\xCE\x91\xCE\xA3@d", "\xCF\x83\xCE\xB1\xCF\x83@d", NULL}, /* ΣΑΣ -> σασ */
    {"stra\xC3\x9F"
     "e@d",
     "strasse@d", NULL}, /* case folding */
    {"\xD8\xA7\xD9\x84\xD9\x81@example.com", "\xD8\xA7\xD9\x84\xD9\x81@example.com", NULL},
    {"col\xC2\xB7lecci\xC3\xB3@d", "col\xC2\xB7lecci\xC3\xB3@d", NULL}, /* l·l */
    {"a.b-c_d+e@d", "a.b-c_d+e@d", NULL},
    /* resourcepart: OpaqueString */
    {"d/e\xCC\x81", "d/\xC3\xA9", NULL}, /* NFC */
    {"d/a\xC2\xA0"
     "b",
     "d/a b", NULL},                            /* NBSP -> space */
    {"d/\xE2\x99\x9A", "d/\xE2\x99\x9A", NULL}, /* symbol */
    {"d/\xEF\xBD\x92", "d/\xEF\xBD\x92", NULL}, /* no width mapping */
    {"d/ lead and trail ", "d/ lead and trail ", NULL},

    /* empty parts */
    {"", NULL, "domainpart is empty"},
    {"@d", NULL, "localpart is empty"},
    {"u@", NULL, "domainpart is empty"},
    {"u@/r", NULL, "domainpart is empty"},
    {"d/", NULL, "resourcepart is empty"},
    {"u@d/", NULL, "resourcepart is empty"},
    {"u@.", NULL, "domainpart is empty"},
    /* localpart */
    {"a b@d", NULL, "localpart contains forbidden character U+0020"},
    {"a\"b@d", NULL, "localpart contains forbidden character '\"'"},
    {"a&b@d", NULL, "localpart contains forbidden character '&'"},
    {"a'b@d", NULL, "localpart contains forbidden character '''"},
    {"a:b@d", NULL, "localpart contains forbidden character ':'"},
    {"a<b@d", NULL, "localpart contains forbidden character '<'"},
    {"a>b@d", NULL, "localpart contains forbidden character '>'"},
    {"a\xEF\xBC\xA0"
     "b@d",
     NULL, "localpart contains forbidden character '@'"}, /* fullwidth @ */
    {"u\x01@d", NULL, "localpart contains forbidden character U+0001"},
    {"\xC3\x28@d", NULL, "localpart is not valid UTF-8"},
    {"\xED\xA0\x80@d", NULL, "localpart is not valid UTF-8"}, /* surrogate */
    {"\xE2\x99\x9A@d", NULL, "localpart contains forbidden character U+265A"},
    {"a\xE2\x80\x8D"
     "b@d",
     NULL, "localpart contains character U+200D where"},
    {"l\xC2\xB7x@d", NULL, "localpart contains character U+00B7 where"},
    {"\xCD\xB8@d", NULL, "localpart contains forbidden character U+0378"}, /* unassigned */
    {"a\xD7\x90@d", NULL, "localpart breaks the bidi rule"},
    /* domainpart */
    {"u@d@e", NULL, "domainpart contains forbidden character '@'"},
    {"a_b.com", NULL, "domainpart contains forbidden character '_'"},
    {"a b.com", NULL, "domainpart contains forbidden character U+0020"},
    {"-a.com", NULL, "starting or ending with a hyphen"},
    {"a-.com", NULL, "starting or ending with a hyphen"},
    {"a..b", NULL, "empty label"},
    {".a", NULL, "empty label"},
    {"ab--cd.com", NULL, "reserved label"},
    {"xn--zz.com", NULL, "invalid A-label"},
    {"xn--n3h.com", NULL, "invalid A-label"},
    {"\xE2\x98\x83.com", NULL, "domainpart is not a valid internationalised name"},
    {"\xC3\xBC_b.com", NULL, "domainpart contains forbidden character '_'"},
    {"\xFF.com", NULL, "domainpart is not valid UTF-8"},
    {"[::1", NULL, "not a valid IPv6 literal"},
    {"[1.2.3.4]", NULL, "not a valid IPv6 literal"},
    {"[::1%eth0]", NULL, "not a valid IPv6 literal"},
    {"[]", NULL, "not a valid IPv6 literal"},
    {"1.2.3.256", NULL, "not a valid IPv4 address"},
    {"1.2.3", NULL, "not a valid IPv4 address"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", NULL,
     "label longer than 63 bytes"},
    /* resourcepart */
    {"d/r\x07", NULL, "resourcepart contains forbidden character U+0007"},
    {"d/\xFF", NULL, "resourcepart is not valid UTF-8"},
    {"d/a\xE2\x80\x8B"
     "b",
     NULL, "resourcepart contains forbidden character U+200B"},
    {"d/\xEF\xBF\xBE", NULL, "resourcepart contains forbidden character U+FFFE"},
    {"d/a\xE2\x80\xA8"
     "b",
     NULL, "resourcepart contains forbidden character U+2028"},
};

static void test_table(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    size_t nvalid = 0, ninvalid = 0;
    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        const struct jid_case *c = &cases[i];
        struct jid j = {NULL, "untouched", NULL};
        struct err err = {XMPP_COND_NONE, ""};
        int rc = jid_parse_str(a, c->input, &j, &err);
        if (c->want != NULL) {
            if (rc != 0)
                fail_msg("row %zu \"%s\": %s", i, c->input, err.text);
            assert_string_equal(jid_full(a, &j), c->want);
            nvalid++;
        } else {
            if (rc != -1)
                fail_msg("row %zu \"%s\": accepted as \"%s\"", i, c->input, jid_full(a, &j));
            assert_int_equal(err.cond, XMPP_COND_JID_MALFORMED);
            if (strstr(err.text, c->why) == NULL)
                fail_msg("row %zu \"%s\": error \"%s\" lacks \"%s\"", i, c->input, err.text,
                         c->why);
            assert_string_equal(j.domain, "untouched"); /* *jid_r unchanged */
            ninvalid++;
        }
    }
    assert_true(nvalid >= 20 && ninvalid >= 20);
    arena_free(&a);
}

static void test_parse_len(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct jid j;
    struct err err;
    const char *s = "user@example.com/resXYZ";
    assert_int_equal(jid_parse(a, s, strlen(s) - 3, &j, &err), 0);
    assert_string_equal(jid_full(a, &j), "user@example.com/res");
    assert_int_equal(jid_parse(a, s, 4, &j, &err), 0);
    assert_string_equal(jid_full(a, &j), "user");

    static const char nul[] = "a\0b@example.com";
    assert_int_equal(jid_parse(a, nul, sizeof(nul) - 1, &j, &err), -1);
    assert_string_equal(err.text, "localpart contains forbidden character U+0000");
    static const char nul_res[] = "example.com/a\0b";
    assert_int_equal(jid_parse(a, nul_res, sizeof(nul_res) - 1, &j, &err), -1);
    assert_string_equal(err.text, "resourcepart contains forbidden character U+0000");

    static const char nul_dom[] = "u@a\0b.example";
    assert_int_equal(jid_parse(a, nul_dom, sizeof(nul_dom) - 1, &j, &err), -1);
    assert_string_equal(err.text, "domainpart contains forbidden character U+0000");

    /* err may be NULL */
    assert_int_equal(jid_parse_str(a, "@d", &j, NULL), -1);
    assert_int_equal(jid_parse_str(a, "a b@d", &j, NULL), -1);
    arena_free(&a);
}

/* Returns a NUL-terminated string of n copies of unit (which is ulen bytes). */
static char *repeat(struct arena *a, const char *unit, size_t n)
{
    size_t ulen = strlen(unit);
    char *s = arena_alloc(a, n * ulen + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * ulen, unit, ulen);
    return s;
}

static int parse_printf(struct arena *a, struct jid *j, struct err *err, const char *fmt, ...)
    PL_PRINTF(4, 5);

static int parse_printf(struct arena *a, struct jid *j, struct err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = arena_vprintf(a, fmt, ap);
    va_end(ap);
    return jid_parse_str(a, s, j, err);
}

static void test_boundaries(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct jid j;
    struct err err;

    /* localpart */
    assert_int_equal(parse_printf(a, &j, &err, "%s@d", repeat(a, "a", 1023)), 0);
    assert_int_equal(strlen(j.local), 1023);
    assert_int_equal(parse_printf(a, &j, &err, "%s@d", repeat(a, "a", 1024)), -1);
    assert_string_equal(err.text, "localpart is longer than 1023 bytes");
    /* multi-byte: 511 x "é" + "a" = 1023 bytes, one more "é" is 1025 */
    assert_int_equal(parse_printf(a, &j, &err, "%sa@d", repeat(a, "\xC3\xA9", 511)), 0);
    assert_int_equal(parse_printf(a, &j, &err, "%s@d", repeat(a, "\xC3\xA9", 512)), -1);
    /* the limit applies after normalisation: 1200 decomposed bytes compose to 800 */
    assert_int_equal(parse_printf(a, &j, &err, "%s@d", repeat(a, "e\xCC\x81", 400)), 0);
    assert_int_equal(strlen(j.local), 800);
    /* case folding can grow a part past the limit: "ß" (2 bytes) folds to "ss" */
    assert_int_equal(parse_printf(a, &j, &err, "%s@d", repeat(a, "\xC3\x9F", 512)), -1);
    assert_string_equal(err.text, "localpart is longer than 1023 bytes");
    /* and huge input is refused before any work */
    assert_int_equal(parse_printf(a, &j, &err, "%s@d", repeat(a, "a", 100000)), -1);

    /* resourcepart */
    assert_int_equal(parse_printf(a, &j, &err, "d/%s", repeat(a, "r", 1023)), 0);
    assert_int_equal(strlen(j.resource), 1023);
    assert_int_equal(parse_printf(a, &j, &err, "d/%s", repeat(a, "r", 1024)), -1);
    assert_string_equal(err.text, "resourcepart is longer than 1023 bytes");

    /* domainpart: 16 labels of 63 with 15 dots is 1023 bytes */
    char *l63 = repeat(a, "b", 63);
    char *d1023 = arena_printf(a, "%s", l63);
    for (int i = 1; i < 16; i++)
        d1023 = arena_printf(a, "%s.%s", d1023, l63);
    assert_int_equal(strlen(d1023), 1023);
    assert_int_equal(jid_parse_str(a, d1023, &j, &err), 0);
    assert_int_equal(strlen(j.domain), 1023);
    assert_int_equal(parse_printf(a, &j, &err, "u@%s./r", d1023), 0); /* trailing dot */
    assert_int_equal(strlen(j.domain), 1023);
    /* 15 labels of 63, then labels of 32 and 31: 945 + 63 + 16 dots = 1024 */
    char *d1024 = arena_printf(a, "%s", l63);
    for (int i = 1; i < 15; i++)
        d1024 = arena_printf(a, "%s.%s", d1024, l63);
    d1024 = arena_printf(a, "%s.%s.%s", d1024, repeat(a, "c", 32), repeat(a, "c", 31));
    assert_int_equal(strlen(d1024), 1024);
    assert_int_equal(jid_parse_str(a, d1024, &j, &err), -1);
    assert_string_equal(err.text, "domainpart is longer than 1023 bytes");
    /* 63-byte label fine, 64 not */
    assert_int_equal(parse_printf(a, &j, &err, "%s.com", l63), 0);
    assert_int_equal(parse_printf(a, &j, &err, "%sb.com", l63), -1);
    arena_free(&a);
}

static struct jid parse_ok(struct arena *a, const char *s)
{
    struct jid j;
    struct err err;
    if (jid_parse_str(a, s, &j, &err) != 0)
        fail_msg("\"%s\": %s", s, err.text);
    return j;
}

static void test_compare(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct jid full = parse_ok(a, "Juliet@Example.COM/Balcony");
    struct jid full2 = parse_ok(a, "juliet@example.com./Balcony");
    struct jid other_res = parse_ok(a, "juliet@example.com/balcony");
    struct jid bare = parse_ok(a, "juliet@example.com");
    struct jid domain = parse_ok(a, "example.com");
    struct jid domain_res = parse_ok(a, "example.com/juliet");
    struct jid idn_u = parse_ok(a, "romeo@b\xC3\xBC"
                                   "cher.example");
    struct jid idn_a = parse_ok(a, "Romeo@xn--bcher-kva.example");

    assert_true(jid_eq(&full, &full2));
    assert_false(jid_eq(&full, &other_res)); /* resources are case-sensitive */
    assert_true(jid_bare_eq(&full, &other_res));
    assert_false(jid_eq(&full, &bare));
    assert_true(jid_bare_eq(&full, &bare));
    assert_true(jid_eq(&bare, &bare));
    assert_false(jid_bare_eq(&bare, &domain)); /* no localpart vs localpart */
    assert_false(jid_bare_eq(&domain, &bare));
    assert_true(jid_bare_eq(&domain, &domain_res));
    assert_false(jid_eq(&domain, &domain_res));
    assert_true(jid_eq(&idn_u, &idn_a));

    assert_false(jid_is_bare(&full));
    assert_true(jid_is_bare(&bare));
    assert_true(jid_is_bare(&domain));
    assert_null(domain.local);
    assert_null(bare.resource);

    assert_string_equal(jid_bare(a, &full), "juliet@example.com");
    assert_string_equal(jid_full(a, &full), "juliet@example.com/Balcony");
    assert_string_equal(jid_bare(a, &domain_res), "example.com");
    assert_string_equal(jid_full(a, &domain_res), "example.com/juliet");
    assert_string_equal(jid_full(a, &domain), "example.com");
    assert_string_equal(jid_bare(a, &domain), "example.com");
    assert_string_equal(jid_full(a, &bare), "juliet@example.com");

    /* a JID built by hand formats the same way */
    struct jid hand = {"x", "y.example", "z"};
    assert_string_equal(jid_full(a, &hand), "x@y.example/z");
    arena_free(&a);
}

/* The normal form is stable: parsing a normalised JID gives it back. */
static void test_idempotent(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        if (cases[i].want == NULL)
            continue;
        struct jid j = parse_ok(a, cases[i].want);
        assert_string_equal(jid_full(a, &j), cases[i].want);
    }
    arena_free(&a);
}

/* jid_parse (fast path first) and jid_parse_full (PRECIS and IDNA only)
 * agree on s: both fail with the same text, or give the same JID. */
static void assert_same(struct arena *a, const char *s, size_t len)
{
    struct jid jf = {NULL, "untouched", NULL}, js = {NULL, "untouched", NULL};
    struct err ef = {XMPP_COND_NONE, ""}, es = {XMPP_COND_NONE, ""};
    int rf = jid_parse(a, s, len, &jf, &ef);
    int rs = jid_parse_full(a, s, len, &js, &es);
    if (rf != rs)
        fail_msg("\"%.*s\": fast %d (%s), full %d (%s)", (int)len, s, rf, ef.text, rs, es.text);
    if (rf < 0) {
        assert_int_equal(ef.cond, es.cond);
        assert_string_equal(ef.text, es.text);
        assert_string_equal(jf.domain, "untouched");
        return;
    }
    if ((jf.local == NULL) != (js.local == NULL) || (jf.resource == NULL) != (js.resource == NULL))
        fail_msg("\"%.*s\": parts differ", (int)len, s);
    const char *ff = jid_full(a, &jf), *fs = jid_full(a, &js);
    if (strcmp(ff, fs) != 0)
        fail_msg("\"%.*s\": fast \"%s\", full \"%s\"", (int)len, s, ff, fs);
}

static void test_fast_table(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        assert_same(a, cases[i].input, strlen(cases[i].input));
        if (cases[i].want != NULL)
            assert_same(a, cases[i].want, strlen(cases[i].want));
    }
    arena_free(&a);
}

static void test_fast_edges(void **state)
{
    (void)state;
    static const char *const edges[] = {
        "",
        "@",
        "/",
        "@/",
        "a@",
        "@d",
        "d/",
        "a@d/",
        "A@D/R",
        "UPPER@CASE.ORG/Res",
        "u@d.",
        "u@d./r",
        "u@.d",
        "u@d..e",
        "u@-d",
        "u@d-",
        "u@a-b",
        "u@ab--c",
        "u@xn--d",
        "u@XN--bcher-kva.example",
        "u@xn--",
        "u@123",
        "u@1.2.3.4",
        "u@1.2.3.999",
        "u@1.2.3",
        "u@1a.2",
        "u@[::1]",
        "u@[::1",
        "u@d_e",
        "u@d e",
        "u@d/ ",
        "u@d/ a ",
        "u@d/\t",
        "u@d/\x7f",
        "a b@d",
        "a\"b@d",
        "a&b@d",
        "a'b@d",
        "a:b@d",
        "a<b@d",
        "a>b@d",
        "a\\b@d",
        "a~!#$%^*()=+{}|;,?`b@d",
        "u@d/~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./",
        "\x01@d",
        "u@d/\x01",
        "\xC3\xA9@d",
        "u@d/\xC3\xA9",
        "u@\xC3\xA9.d",
        "\xE2\x84\xAA@d",
        "K@d",
        "u\xEF\xBC\xA1@d",
        "u@a\xE3\x80\x82"
        "b",
        "u@d/\xE3\x80\x80",
        "\xFF@d",
        "u@d/\xFF",
        "u@\xFF",
    };
    struct arena *a = arena_new(0);
    for (size_t i = 0; i < PL_ARRAY_LEN(edges); i++)
        assert_same(a, edges[i], strlen(edges[i]));
    /* lengths around the part limits, in both paths */
    static const size_t lens[] = {1, 62, 63, 64, 1022, 1023, 1024, 1025, 5000};
    for (size_t i = 0; i < PL_ARRAY_LEN(lens); i++) {
        char *p = repeat(a, "x", lens[i]);
        assert_same(a, arena_printf(a, "%s@d", p), lens[i] + 2);
        assert_same(a, arena_printf(a, "d/%s", p), lens[i] + 2);
        assert_same(a, p, lens[i]); /* one label of that length */
        char *labels = repeat(a, "ab.", lens[i]);
        labels[3 * lens[i] - 1] = '\0';
        assert_same(a, labels, strlen(labels)); /* many short labels */
    }
    /* every byte value in every part, alone and between letters */
    static const char *const around[][2] = {{"", "@d"},       {"x", "y@d"}, {"u@", ""},
                                            {"u@x", "y.org"}, {"u@d/", ""}, {"u@d/x", "y"}};
    for (unsigned c = 0; c < 256; c++) {
        for (size_t f = 0; f < PL_ARRAY_LEN(around); f++) {
            char b[16];
            size_t n = strlen(around[f][0]);
            memcpy(b, around[f][0], n);
            b[n++] = (char)c;
            memcpy(b + n, around[f][1], strlen(around[f][1]) + 1);
            assert_same(a, b, n + strlen(around[f][1]));
        }
    }
    /* the fast path must not read past len */
    assert_same(a, "user@example.com/resXYZ", 20);
    assert_same(a, "user@example.com/resXYZ", 16);
    arena_free(&a);
}

/* A small deterministic generator, so a failure can be replayed. */
static uint32_t next_rand(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void test_fast_random(void **state)
{
    (void)state;
    /* Mostly what the fast path accepts, plus every kind of byte that must
     * send a part to the full path. */
    static const char *const pieces[] = {
        "a",
        "z",
        "A",
        "Z",
        "0",
        "9",
        "x",
        "n",
        "-",
        "-",
        "--",
        ".",
        ".",
        "@",
        "/",
        " ",
        "\"",
        "&",
        "'",
        ":",
        "<",
        ">",
        "[",
        "]",
        "\\",
        "_",
        "~",
        "\x01",
        "\x7f",
        "\t",
        "\xC3\xA9",
        "\xC3\x89",
        "\xE2\x84\xAA",
        "\xEF\xBC\xA1",
        "\xE3\x80\x82",
        "\xC3\x9F",
        "\xD7\x90",
        "\xE2\x80\x8D",
        "\xFF",
        "xn--",
        "1",
        "2",
    };
    struct arena *a = arena_new(0);
    uint32_t x = 0x9e3779b9u;
    for (int iter = 0; iter < 40000; iter++) {
        char s[96];
        size_t len = 0;
        size_t n = next_rand(&x) % 12;
        for (size_t k = 0; k < n; k++) {
            /* a quarter of the pieces are the plain letters most of the time */
            size_t r = next_rand(&x);
            size_t pi = (r & 3) ? (r >> 2) % 8 : (r >> 2) % PL_ARRAY_LEN(pieces);
            size_t pl = strlen(pieces[pi]);
            memcpy(s + len, pieces[pi], pl);
            len += pl;
        }
        /* half of them shaped like local@domain/resource */
        if (next_rand(&x) & 1) {
            memcpy(s + len, "@Ex.org/R", 9);
            len += 9;
            if (next_rand(&x) & 1) {
                memmove(s + 1, s, len);
                s[0] = 'U';
                len++;
            }
        }
        assert_same(a, s, len);
        if (iter % 1000 == 999)
            arena_reset(a);
    }
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),      cmocka_unit_test(test_parse_len),
        cmocka_unit_test(test_boundaries), cmocka_unit_test(test_compare),
        cmocka_unit_test(test_idempotent), cmocka_unit_test(test_fast_table),
        cmocka_unit_test(test_fast_edges), cmocka_unit_test(test_fast_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
