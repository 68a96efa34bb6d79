/* SPDX-License-Identifier: MIT */
/* Unit tests for parley-resolver's pure parts: which domains it accepts
 * (resolver/request.c), the RFC 2782 order (resolver/order.c) and the
 * bounded TTL cache (resolver/cache.c). */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>

#include "resolver.h"

struct domain_row {
    const char *in;
    bool ok;
    const char *norm; /* when ok */
};

static void test_domain_check(void **state)
{
    (void)state;
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".test");
    for (size_t i = 0; i < 254; i++)
        long_name[i] = i % 2 ? '.' : 'a';
    long_name[253] = 'a';
    long_name[254] = '\0';
    const struct domain_row rows[] = {
        {"b.test", true, "b.test"},
        {"XMPP.Example.ORG", true, "xmpp.example.org"},
        {"xn--bcher-kva.test", true, "xn--bcher-kva.test"},
        {"localhost", true, "localhost"},
        {"192.0.2.1", true, "192.0.2.1"},
        {"[2001:DB8::1]", true, "[2001:db8::1]"},
        {"", false, NULL},
        {"b\xc3\xbc"
         "cher.test",
         false, NULL},
        {"a..test", false, NULL},
        {".test", false, NULL},
        {"test.", false, NULL},
        {"-a.test", false, NULL},
        {"a-.test", false, NULL},
        {"a_b.test", false, NULL},
        {"a b.test", false, NULL},
        {"[not-v6]", false, NULL},
        {long_label, false, NULL},
        {long_name, false, NULL},
    };
    for (size_t i = 0; i < PL_ARRAY_LEN(rows); i++) {
        char out[RS_MAX_DOMAIN + 1];
        const char *why = NULL;
        bool ok = rs_domain_check(rows[i].in, out, &why);
        if (ok != rows[i].ok)
            fail_msg("row %zu (%s): got %d (%s)", i, rows[i].in, ok, why ? why : "");
        if (ok)
            assert_string_equal(out, rows[i].norm);
        else
            assert_non_null(why);
    }
}

static struct rs_answer *answer_of(const int (*spec)[3], size_t n)
{
    struct rs_answer *ans = rs_answer_new();
    for (size_t i = 0; i < n; i++) {
        char host[32];
        snprintf(host, sizeof(host), "t%zu", i);
        struct rs_target *t = rs_answer_add_target(ans, host, 5269, (enum rs_tls)spec[i][2]);
        t->priority = spec[i][0];
        t->weight = spec[i][1];
    }
    return ans;
}

/* Priority first, direct TLS before STARTTLS at equal priority. */
static void test_order_by_priority(void **state)
{
    (void)state;
    static const int spec[][3] = {
        {20, 0, RS_TLS_STARTTLS}, {10, 0, RS_TLS_STARTTLS}, {10, 0, RS_TLS_DIRECT},
        {0, 0, RS_TLS_STARTTLS},  {30, 0, RS_TLS_DIRECT},
    };
    struct rs_answer *ans = answer_of(spec, PL_ARRAY_LEN(spec));
    size_t order[8];
    rs_order(ans, order);
    const size_t want[] = {3, 2, 1, 0, 4};
    for (size_t i = 0; i < PL_ARRAY_LEN(want); i++)
        assert_int_equal(order[i], want[i]);
    ans->ordered = true; /* static answers keep their order */
    rs_order(ans, order);
    for (size_t i = 0; i < PL_ARRAY_LEN(want); i++)
        assert_int_equal(order[i], i);
    rs_answer_free(&ans);
    assert_null(ans);
}

/* Weighted random within a priority: a weight 3 target comes first about
 * three times as often as a weight 1 one. */
static void test_order_weights(void **state)
{
    (void)state;
    static const int spec[][3] = {{0, 1, RS_TLS_STARTTLS},
                                  {0, 3, RS_TLS_STARTTLS},
                                  {0, 0, RS_TLS_STARTTLS},
                                  {1, 100, RS_TLS_STARTTLS}};
    struct rs_answer *ans = answer_of(spec, PL_ARRAY_LEN(spec));
    unsigned first[4] = {0};
    for (int round = 0; round < 4000; round++) {
        size_t order[4];
        rs_order(ans, order);
        first[order[0]]++;
        assert_int_equal(order[3], 3); /* the lower priority always last */
        bool seen[3] = {false};
        for (size_t i = 0; i < 3; i++)
            seen[order[i]] = true;
        assert_true(seen[0] && seen[1] && seen[2]);
    }
    /* a draw in 0..4: 0 picks the weight-0 record (placed first), 1 the
     * weight-1 one, 2..4 the weight-3 one: about 800, 2400, 800 */
    assert_in_range(first[0], 600, 1000);
    assert_in_range(first[1], 2100, 2700);
    assert_in_range(first[2], 600, 1000);
    rs_answer_free(&ans);
}

static void test_addresses_ipv4_first(void **state)
{
    (void)state;
    struct rs_answer *ans = rs_answer_new();
    struct rs_target *t = rs_answer_add_target(ans, "x.test", 5269, RS_TLS_STARTTLS);
    const char *in[] = {"::1", "2001:db8::2", "192.0.2.1", "::1", "192.0.2.2", "192.0.2.1"};
    for (size_t i = 0; i < PL_ARRAY_LEN(in); i++)
        rs_target_add_addr(ans, t, in[i]);
    const char *want[] = {"192.0.2.1", "192.0.2.2", "::1", "2001:db8::2"};
    assert_int_equal(t->naddrs, PL_ARRAY_LEN(want));
    for (size_t i = 0; i < PL_ARRAY_LEN(want); i++)
        assert_string_equal(t->addrs[i], want[i]);
    rs_answer_add_target(ans, "none.test", 5269, RS_TLS_DIRECT);
    rs_answer_prune(ans);
    assert_int_equal(ans->ntargets, 1);
    rs_answer_free(&ans);
}

static struct rs_answer *with_ttl(long ttl)
{
    struct rs_answer *ans = rs_answer_new();
    ans->ttl = ttl;
    return ans;
}

static void test_cache(void **state)
{
    (void)state;
    struct rs_cache *c = rs_cache_new();
    long ttl = 0;
    rs_cache_put(c, "a.test", with_ttl(10), 100, 3);
    rs_cache_put(c, "b.test", with_ttl(50), 100, 3);
    rs_cache_put(c, "c.test", with_ttl(50), 100, 3);
    assert_non_null(rs_cache_get(c, "a.test", 105, &ttl));
    assert_int_equal(ttl, 5);
    /* a.test was used last: d.test pushes out b.test, the least recent */
    rs_cache_put(c, "d.test", with_ttl(50), 106, 3);
    assert_int_equal(rs_cache_count(c), 3);
    assert_null(rs_cache_get(c, "b.test", 106, &ttl));
    assert_non_null(rs_cache_get(c, "c.test", 106, &ttl));
    /* expiry: a.test is gone at 110, on lookup and on the sweep alike */
    assert_null(rs_cache_get(c, "a.test", 110, &ttl));
    rs_cache_expire(c, 200, 3);
    assert_int_equal(rs_cache_count(c), 0);
    /* a replaced answer is freed (ASan checks), and the size shrinks on reload */
    rs_cache_put(c, "e.test", with_ttl(50), 300, 3);
    rs_cache_put(c, "e.test", with_ttl(60), 300, 3);
    assert_non_null(rs_cache_get(c, "e.test", 300, &ttl));
    assert_int_equal(ttl, 60);
    rs_cache_put(c, "f.test", with_ttl(60), 300, 3);
    rs_cache_expire(c, 300, 1);
    assert_int_equal(rs_cache_count(c), 1);
    rs_cache_free(&c);
    assert_null(c);
}

/* A DNS reply for gone.test with the given counts, then the question, then
 * `an` A records and `ns` SOA records (TTL ttl, MINIMUM minimum); owner
 * names compressed when compress is set. Returns its length. */
static size_t reply(unsigned char *p, int rcode, unsigned an, unsigned ns, unsigned ttl,
                    unsigned minimum, bool compress)
{
    static const unsigned char qname[] = "\4gone\4test";
    static const unsigned char rdata_names[] = "\2ns\4test\0\12hostmaster\4test";
    size_t n = 0;
    const unsigned char head[12] = {0x12, 0x34,
                                    0x81, (unsigned char)(0x80 | rcode),
                                    0,    1,
                                    0,    (unsigned char)an,
                                    0,    (unsigned char)ns,
                                    0,    0};
    memcpy(p, head, sizeof(head));
    n = sizeof(head);
    memcpy(p + n, qname, sizeof(qname)); /* with its final zero */
    n += sizeof(qname);
    const unsigned char typecls[4] = {0, 1, 0, 1};
    memcpy(p + n, typecls, 4);
    n += 4;
    for (unsigned i = 0; i < an + ns; i++) {
        bool soa = i >= an;
        if (compress) {
            p[n++] = 0xc0;
            p[n++] = 12;
        } else {
            memcpy(p + n, qname, sizeof(qname));
            n += sizeof(qname);
        }
        size_t rdlen = soa ? sizeof(rdata_names) + 20 : 4;
        const unsigned char rr[10] = {0,
                                      soa ? 6 : 1,
                                      0,
                                      1,
                                      (unsigned char)(ttl >> 24),
                                      (unsigned char)(ttl >> 16),
                                      (unsigned char)(ttl >> 8),
                                      (unsigned char)ttl,
                                      0,
                                      (unsigned char)rdlen};
        memcpy(p + n, rr, sizeof(rr));
        n += sizeof(rr);
        if (!soa) {
            const unsigned char a[4] = {192, 0, 2, 1};
            memcpy(p + n, a, 4);
            n += 4;
            continue;
        }
        memcpy(p + n, rdata_names, sizeof(rdata_names));
        n += sizeof(rdata_names);
        memset(p + n, 0, 16); /* serial, refresh, retry, expire */
        n += 16;
        p[n++] = (unsigned char)(minimum >> 24);
        p[n++] = (unsigned char)(minimum >> 16);
        p[n++] = (unsigned char)(minimum >> 8);
        p[n++] = (unsigned char)minimum;
    }
    return n;
}

struct soa_row {
    int rcode;
    unsigned an, ns, ttl, minimum;
    bool compress;
    long want;
};

/* RFC 2308: the smaller of the SOA's TTL and MINIMUM, only from the
 * authority section; and no read past the end of a truncated reply (ASan). */
static void test_negative_ttl(void **state)
{
    (void)state;
    const struct soa_row rows[] = {
        {3, 0, 1, 600, 45, false, 45}, {3, 0, 1, 30, 45, false, 30},  {0, 0, 1, 600, 45, true, 45},
        {3, 0, 0, 600, 45, false, -1}, {0, 1, 0, 600, 45, false, -1}, {0, 2, 1, 20, 900, true, 20},
    };
    for (size_t i = 0; i < PL_ARRAY_LEN(rows); i++) {
        const struct soa_row *r = &rows[i];
        unsigned char pkt[512];
        size_t n = reply(pkt, r->rcode, r->an, r->ns, r->ttl, r->minimum, r->compress);
        if (rs_dns_negative_ttl(pkt, n) != r->want)
            fail_msg("row %zu: got %ld, want %ld", i, rs_dns_negative_ttl(pkt, n), r->want);
        for (size_t cut = 0; cut < n; cut++) {
            unsigned char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
            memcpy(copy, pkt, cut);
            long got = rs_dns_negative_ttl(copy, cut);
            free(copy);
            assert_true(got == -1 || got == r->want);
        }
    }
    /* every length of a reply with an SOA but the full one lacks its SOA */
    unsigned char pkt[512];
    size_t n = reply(pkt, 3, 0, 1, 600, 45, false);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(rs_dns_negative_ttl(pkt, cut), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_domain_check),  cmocka_unit_test(test_order_by_priority),
        cmocka_unit_test(test_order_weights), cmocka_unit_test(test_addresses_ipv4_first),
        cmocka_unit_test(test_cache),         cmocka_unit_test(test_negative_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
