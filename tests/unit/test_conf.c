/* SPDX-License-Identifier: MIT */
/* Unit tests for conf: every value type accepted and refused, the structural
 * errors with their exact file:line text, groups, lists, ignore, defaults,
 * path resolution, DOCTYPE refusal and the -t dump. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "arena.h"
#include "buf.h"
#include "conf.h"
#include "err.h"

/* ---- the tables under test ---- */

struct comp_cfg {
    const char *name;
    const char *secret;
    long port;
    bool tls;
    const char **hosts;
    size_t nhosts;
};

static const struct conf_key comp_keys[] = {
    {.path = "@name",
     .type = CONF_T_STR,
     .offset = offsetof(struct comp_cfg, name),
     .required = true,
     .help = "component name"},
    CONF_BOOL("@tls", struct comp_cfg, tls, "no", "use TLS"),
    CONF_STR("secret", struct comp_cfg, secret, NULL, true, "shared secret"),
    CONF_INT("port", struct comp_cfg, port, 1, 65535, "5347", "component port"),
    CONF_LIST("host", struct comp_cfg, hosts, nhosts, false, "extra host names"),
};
static const struct conf_table comp_table = CONF_TABLE(struct comp_cfg, comp_keys);

static const char *const levels[] = {"error", "warn", "notice", "info", "debug", NULL};

struct test_cfg {
    const char *version;
    long port;
    const char *host;
    bool router_tls;
    const char *cert;
    const char *key;
    bool tls_required;
    int level;
    size_t stanza;
    long idle;
    long offset;
    const char **domains;
    size_t ndomains;
    struct comp_cfg *comps;
    size_t ncomps;
};

static const struct conf_key test_keys[] = {
    {.path = "@version",
     .type = CONF_T_STR,
     .offset = offsetof(struct test_cfg, version),
     .help = "file format version"},
    CONF_INT("router.port", struct test_cfg, port, 1, 65535, "5347", "router port"),
    CONF_STR("router.host", struct test_cfg, host, "localhost", false, "router host"),
    CONF_BOOL("router@tls", struct test_cfg, router_tls, "false", "TLS to the router"),
    CONF_PATH("tls.cert", struct test_cfg, cert, NULL, false, "certificate"),
    CONF_PATH("tls.key", struct test_cfg, key, "key.pem", false, "private key"),
    CONF_BOOL("tls.required", struct test_cfg, tls_required, "false", "require TLS"),
    CONF_ENUM("log.level", struct test_cfg, level, levels, "notice", "log level"),
    CONF_SIZE("limits.stanza", struct test_cfg, stanza, 1024, 16L * 1024 * 1024, "64k",
              "largest stanza"),
    CONF_DURATION("limits.idle", struct test_cfg, idle, 1000, 3600000, "5m", "idle timeout"),
    CONF_INT("offset", struct test_cfg, offset, -100, 100, "0", "an offset"),
    CONF_LIST("domain", struct test_cfg, domains, ndomains, true, "served domains"),
    CONF_GROUP("component", struct test_cfg, comps, ncomps, &comp_table, false, "components"),
};
static const struct conf_table test_table = CONF_TABLE(struct test_cfg, test_keys);

/* A second table as a daemon would pass next to the common one. */
struct extra_cfg {
    long workers;
    long port; /* the same key as test_cfg's */
};

static const struct conf_key extra_keys[] = {
    CONF_INT("extra.workers", struct extra_cfg, workers, 1, 64, "4", "worker threads"),
    CONF_INT("router.port", struct extra_cfg, port, 1, 65535, "5347", "router port"),
};
static const struct conf_table extra_table = CONF_TABLE(struct extra_cfg, extra_keys);

/* ---- helpers ---- */

struct fixture {
    struct arena *a;
    struct test_cfg cfg;
    struct err err;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->a = arena_new(0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    arena_free(&f->a);
    free(f);
    return 0;
}

static int load_named(struct fixture *f, const char *name, const char *xml,
                      const char *const *ignore)
{
    const struct conf_table *tables[] = {&test_table};
    void *outs[] = {&f->cfg};
    err_clear(&f->err);
    return conf_load_mem(name, xml, strlen(xml), tables, outs, 1, ignore, f->a, &f->err);
}

static int load(struct fixture *f, const char *xml)
{
    return load_named(f, "parley.xml", xml, NULL);
}

/* Loads the body inside <parley> with the required <domain>, all on line 1. */
static int load_body(struct fixture *f, const char *body)
{
    char *xml = arena_printf(f->a, "<parley><domain>d</domain>%s</parley>", body);
    return load(f, xml);
}

static void load_ok(struct fixture *f, const char *xml)
{
    if (load(f, xml) != 0)
        fail_msg("load failed: %s", f->err.text);
}

static void load_fails(struct fixture *f, const char *xml, const char *want)
{
    if (load(f, xml) != -1)
        fail_msg("loaded, expected: %s", want);
    assert_string_equal(f->err.text, want);
}

/* The value of a field as text, to compare table rows against. */
static const char *field_text(struct arena *a, const struct test_cfg *c, size_t offset,
                              enum conf_type type)
{
    const char *p = (const char *)c + offset;
    switch (type) {
    case CONF_T_INT:
    case CONF_T_DURATION:
        return arena_printf(a, "%ld", *(const long *)(const void *)p);
    case CONF_T_STR:
    case CONF_T_PATH: {
        const char *s = *(const char *const *)(const void *)p;
        return s ? s : "(null)";
    }
    case CONF_T_BOOL:
        return *(const bool *)(const void *)p ? "true" : "false";
    case CONF_T_ENUM:
        return arena_printf(a, "%d", *(const int *)(const void *)p);
    case CONF_T_SIZE:
        return arena_printf(a, "%zu", *(const size_t *)(const void *)p);
    case CONF_T_LIST:
    case CONF_T_GROUP:
        break;
    }
    return "?";
}

/* ---- values of every type ---- */

#define F(field, type) offsetof(struct test_cfg, field), type

struct value_case {
    const char *body; /* inside <parley>, after <domain>d</domain> */
    size_t offset;
    enum conf_type type;
    const char *want;     /* field as text on success */
    const char *want_err; /* or the whole error text */
};

static const struct value_case value_cases[] = {
    /* integers */
    {"<router><port>80</port></router>", F(port, CONF_T_INT), "80", NULL},
    {"<router><port> 8080\n </port></router>", F(port, CONF_T_INT), "8080", NULL},
    {"<router><port>65535</port></router>", F(port, CONF_T_INT), "65535", NULL},
    {"<router><port>1</port></router>", F(port, CONF_T_INT), "1", NULL},
    {"<offset>-100</offset>", F(offset, CONF_T_INT), "-100", NULL},
    {"<router><port>52x2</port></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"52x2\" is not an integer in 1..65535"},
    {"<router><port>0</port></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"0\" is not an integer in 1..65535"},
    {"<router><port>65536</port></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"65536\" is not an integer in 1..65535"},
    {"<router><port>+80</port></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"+80\" is not an integer in 1..65535"},
    {"<router><port>0x50</port></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"0x50\" is not an integer in 1..65535"},
    {"<router><port>8 0</port></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"8 0\" is not an integer in 1..65535"},
    {"<router><port/></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"\" is not an integer in 1..65535"},
    {"<router><port>99999999999999999999999</port></router>", F(port, CONF_T_INT), NULL,
     "parley.xml:1: <router><port>: \"99999999999999999999999\" is not an integer in 1..65535"},
    {"<offset>-0</offset>", F(offset, CONF_T_INT), "0", NULL},
    {"<offset>-9223372036854775808</offset>", F(offset, CONF_T_INT), NULL,
     "parley.xml:1: <offset>: \"-9223372036854775808\" is not an integer in -100..100"},
    {"<offset>-</offset>", F(offset, CONF_T_INT), NULL,
     "parley.xml:1: <offset>: \"-\" is not an integer in -100..100"},
    {"<offset>-101</offset>", F(offset, CONF_T_INT), NULL,
     "parley.xml:1: <offset>: \"-101\" is not an integer in -100..100"},
    /* strings */
    {"<router><host>example.org</host></router>", F(host, CONF_T_STR), "example.org", NULL},
    {"<router><host>  a &amp; b  </host></router>", F(host, CONF_T_STR), "a & b", NULL},
    {"<router><host></host></router>", F(host, CONF_T_STR), "", NULL},
    /* booleans, as element and as attribute */
    {"<tls><required>true</required></tls>", F(tls_required, CONF_T_BOOL), "true", NULL},
    {"<tls><required>yes</required></tls>", F(tls_required, CONF_T_BOOL), "true", NULL},
    {"<tls><required>1</required></tls>", F(tls_required, CONF_T_BOOL), "true", NULL},
    {"<tls><required/></tls>", F(tls_required, CONF_T_BOOL), "true", NULL},
    {"<tls><required>false</required></tls>", F(tls_required, CONF_T_BOOL), "false", NULL},
    {"<tls><required>no</required></tls>", F(tls_required, CONF_T_BOOL), "false", NULL},
    {"<tls><required>0</required></tls>", F(tls_required, CONF_T_BOOL), "false", NULL},
    {"<router tls=\"yes\"/>", F(router_tls, CONF_T_BOOL), "true", NULL},
    {"<tls><required>maybe</required></tls>", F(tls_required, CONF_T_BOOL), NULL,
     "parley.xml:1: <tls><required>: \"maybe\" is not a boolean (true, false, yes, no, 1 or 0)"},
    {"<tls><required>TRUE</required></tls>", F(tls_required, CONF_T_BOOL), NULL,
     "parley.xml:1: <tls><required>: \"TRUE\" is not a boolean (true, false, yes, no, 1 or 0)"},
    {"<router tls=\"on\"/>", F(router_tls, CONF_T_BOOL), NULL,
     "parley.xml:1: <router @tls>: \"on\" is not a boolean (true, false, yes, no, 1 or 0)"},
    /* enums */
    {"<log><level>debug</level></log>", F(level, CONF_T_ENUM), "4", NULL},
    {"<log><level>error</level></log>", F(level, CONF_T_ENUM), "0", NULL},
    {"<log><level>verbose</level></log>", F(level, CONF_T_ENUM), NULL,
     "parley.xml:1: <log><level>: \"verbose\" is not one of: error, warn, notice, info, debug"},
    {"<log><level>Debug</level></log>", F(level, CONF_T_ENUM), NULL,
     "parley.xml:1: <log><level>: \"Debug\" is not one of: error, warn, notice, info, debug"},
    /* sizes */
    {"<limits><stanza>2048</stanza></limits>", F(stanza, CONF_T_SIZE), "2048", NULL},
    {"<limits><stanza>64k</stanza></limits>", F(stanza, CONF_T_SIZE), "65536", NULL},
    {"<limits><stanza>64K</stanza></limits>", F(stanza, CONF_T_SIZE), "65536", NULL},
    {"<limits><stanza>1m</stanza></limits>", F(stanza, CONF_T_SIZE), "1048576", NULL},
    {"<limits><stanza>16M</stanza></limits>", F(stanza, CONF_T_SIZE), "16777216", NULL},
    {"<limits><stanza>512</stanza></limits>", F(stanza, CONF_T_SIZE), NULL,
     "parley.xml:1: <limits><stanza>: \"512\" is not a size in 1K..16M (suffix k, m or g)"},
    {"<limits><stanza>1g</stanza></limits>", F(stanza, CONF_T_SIZE), NULL,
     "parley.xml:1: <limits><stanza>: \"1g\" is not a size in 1K..16M (suffix k, m or g)"},
    {"<limits><stanza>10X</stanza></limits>", F(stanza, CONF_T_SIZE), NULL,
     "parley.xml:1: <limits><stanza>: \"10X\" is not a size in 1K..16M (suffix k, m or g)"},
    {"<limits><stanza>1.5m</stanza></limits>", F(stanza, CONF_T_SIZE), NULL,
     "parley.xml:1: <limits><stanza>: \"1.5m\" is not a size in 1K..16M (suffix k, m or g)"},
    {"<limits><stanza>k</stanza></limits>", F(stanza, CONF_T_SIZE), NULL,
     "parley.xml:1: <limits><stanza>: \"k\" is not a size in 1K..16M (suffix k, m or g)"},
    {"<limits><stanza>99999999999999999g</stanza></limits>", F(stanza, CONF_T_SIZE), NULL,
     "parley.xml:1: <limits><stanza>: \"99999999999999999g\" is not a size in 1K..16M "
     "(suffix k, m or g)"},
    /* durations */
    {"<limits><idle>30</idle></limits>", F(idle, CONF_T_DURATION), "30000", NULL},
    {"<limits><idle>30s</idle></limits>", F(idle, CONF_T_DURATION), "30000", NULL},
    {"<limits><idle>1500ms</idle></limits>", F(idle, CONF_T_DURATION), "1500", NULL},
    {"<limits><idle>5m</idle></limits>", F(idle, CONF_T_DURATION), "300000", NULL},
    {"<limits><idle>1h</idle></limits>", F(idle, CONF_T_DURATION), "3600000", NULL},
    {"<limits><idle>2h</idle></limits>", F(idle, CONF_T_DURATION), NULL,
     "parley.xml:1: <limits><idle>: \"2h\" is not a duration in 1s..1h (suffix ms, s, m or h)"},
    {"<limits><idle>500ms</idle></limits>", F(idle, CONF_T_DURATION), NULL,
     "parley.xml:1: <limits><idle>: \"500ms\" is not a duration in 1s..1h "
     "(suffix ms, s, m or h)"},
    {"<limits><idle>5x</idle></limits>", F(idle, CONF_T_DURATION), NULL,
     "parley.xml:1: <limits><idle>: \"5x\" is not a duration in 1s..1h (suffix ms, s, m or h)"},
    {"<limits><idle>-5s</idle></limits>", F(idle, CONF_T_DURATION), NULL,
     "parley.xml:1: <limits><idle>: \"-5s\" is not a duration in 1s..1h (suffix ms, s, m or h)"},
    {"<limits><idle>5 s</idle></limits>", F(idle, CONF_T_DURATION), NULL,
     "parley.xml:1: <limits><idle>: \"5 s\" is not a duration in 1s..1h (suffix ms, s, m or h)"},
    /* paths; the name "parley.xml" has no folder, so relative paths stay */
    {"<tls><cert>/etc/ssl/x.pem</cert></tls>", F(cert, CONF_T_PATH), "/etc/ssl/x.pem", NULL},
    {"<tls><cert>x.pem</cert></tls>", F(cert, CONF_T_PATH), "x.pem", NULL},
    {"<tls><cert></cert></tls>", F(cert, CONF_T_PATH), NULL,
     "parley.xml:1: <tls><cert>: empty path"},
    /* the root's attribute */
    {"", F(version, CONF_T_STR), "(null)", NULL},
};

static void test_values(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < PL_ARRAY_LEN(value_cases); i++) {
        const struct value_case *c = &value_cases[i];
        int rc = load_body(f, c->body);
        if (c->want_err == NULL) {
            if (rc != 0)
                fail_msg("row %zu %s: %s", i, c->body, f->err.text);
            assert_string_equal(field_text(f->a, &f->cfg, c->offset, c->type), c->want);
        } else {
            if (rc != -1)
                fail_msg("row %zu %s: loaded, expected %s", i, c->body, c->want_err);
            if (strcmp(f->err.text, c->want_err) != 0)
                fail_msg("row %zu %s:\n got  %s\n want %s", i, c->body, f->err.text, c->want_err);
            assert_int_equal(f->err.cond, XMPP_COND_UNDEFINED_CONDITION);
        }
    }
}

/* ---- structure ---- */

struct struct_case {
    const char *xml;
    const char *want_err; /* NULL: loads */
};

static const struct struct_case struct_cases[] = {
    /* unknown keys, with the element and attribute paths */
    {"<parley><domain>d</domain><router><prot>1</prot></router></parley>",
     "parley.xml:1: <router><prot>: unknown element"},
    {"<parley><domain>d</domain><bogus/></parley>", "parley.xml:1: <bogus>: unknown element"},
    {"<parley><domain>d</domain><router tsl=\"1\"/></parley>",
     "parley.xml:1: <router @tsl>: unknown attribute"},
    {"<parley x=\"1\"><domain>d</domain></parley>", "parley.xml:1: <parley @x>: unknown attribute"},
    {"<parley><domain>d</domain><router><port x=\"1\">5</port></router></parley>",
     "parley.xml:1: <router><port @x>: unknown attribute"},
    {"<parley><domain>d</domain><router><port>5<x/></port></router></parley>",
     "parley.xml:1: <router><port><x>: unknown element"},
    {"<parley><domain x=\"1\">d</domain></parley>", "parley.xml:1: <domain @x>: unknown attribute"},
    /* repeated single keys; lists may repeat */
    {"<parley><domain>d</domain>\n<router><port>1</port>\n<port>2</port></router></parley>",
     "parley.xml:3: <router><port>: given twice (first at line 2)"},
    {"<parley><domain>d</domain>\n<router><port>1</port></router>\n<router><port>2</port>"
     "</router></parley>",
     "parley.xml:3: <router><port>: given twice (first at line 2)"},
    {"<parley><domain>d</domain><router tls=\"1\"/>\n<router tls=\"0\"/></parley>",
     "parley.xml:2: <router @tls>: given twice (first at line 1)"},
    {"<parley><domain>a</domain><domain>b</domain></parley>", NULL},
    /* text where no value belongs */
    {"<parley><domain>d</domain><router>junk<port>1</port></router></parley>",
     "parley.xml:1: <router>: unexpected text \"junk\""},
    {"<parley>junk<domain>d</domain></parley>", "parley.xml:1: <parley>: unexpected text \"junk\""},
    {"<parley><domain>d</domain><component name=\"c\">x<secret>s</secret></component></parley>",
     "parley.xml:1: <component>: unexpected text \"x\""},
    {"<parley>\n  <!-- comments are fine -->\n  <domain>d</domain>\n</parley>\n", NULL},
    /* missing required values: top level (no line) and inside groups (the group's line) */
    {"<parley/>", "parley.xml: <domain>: missing required value"},
    {"<parley><router><port>1</port></router></parley>",
     "parley.xml: <domain>: missing required value"},
    {"<parley><domain>d</domain>\n<component name=\"c\"/></parley>",
     "parley.xml:2: <component><secret>: missing required value"},
    {"<parley><domain>d</domain>\n\n<component><secret>s</secret></component></parley>",
     "parley.xml:3: <component @name>: missing required value"},
    /* errors inside groups */
    {"<parley><domain>d</domain><component name=\"c\"><secret>s</secret><bogus/>"
     "</component></parley>",
     "parley.xml:1: <component><bogus>: unknown element"},
    {"<parley><domain>d</domain><component name=\"c\" x=\"1\"><secret>s</secret>"
     "</component></parley>",
     "parley.xml:1: <component @x>: unknown attribute"},
    {"<parley><domain>d</domain><component name=\"c\"><secret>s</secret>\n<port>0</port>"
     "</component></parley>",
     "parley.xml:2: <component><port>: \"0\" is not an integer in 1..65535"},
    {"<parley><domain>d</domain><component name=\"c\"><secret>s</secret>\n<secret>t</secret>"
     "</component></parley>",
     "parley.xml:2: <component><secret>: given twice (first at line 1)"},
    {"<parley><domain>d</domain><component name=\"c\" tls=\"x\"><secret>s</secret>"
     "</component></parley>",
     "parley.xml:1: <component @tls>: \"x\" is not a boolean (true, false, yes, no, 1 or 0)"},
    /* a group key is per occurrence, so the same key in two groups is fine */
    {"<parley><domain>d</domain><component name=\"a\"><secret>s</secret></component>"
     "<component name=\"b\"><secret>s</secret></component></parley>",
     NULL},
    /* the document itself */
    {"<config/>", "parley.xml:1: root element is <config>, expected <parley>"},
    {"<?xml version=\"1.0\"?>\n<!DOCTYPE parley [\n<!ENTITY x \"y\">\n]>\n<parley/>",
     "parley.xml:2: DOCTYPE is not allowed"},
    {"<!DOCTYPE parley SYSTEM \"/etc/passwd\"><parley/>", "parley.xml:1: DOCTYPE is not allowed"},
    {"<parley>\n<domain>d</domain>\n<router>\n</parley>",
     "parley.xml:4: malformed XML: mismatched tag"},
    {"<parley>\n<domain>&foo;</domain></parley>", "parley.xml:2: malformed XML: undefined entity"},
    {"", "parley.xml:1: malformed XML: no element found"},
    {"<parley/><parley/>", "parley.xml:1: malformed XML: junk after document element"},
    {"<parley><domain>d</domain></parley>\n<!-- trailing comment -->\n", NULL},
    {"<parley xmlns=\"urn:example\" xmlns:x=\"urn:x\"><domain>d</domain></parley>", NULL},
};

static void test_structure(void **state)
{
    struct fixture *f = *state;
    for (size_t i = 0; i < PL_ARRAY_LEN(struct_cases); i++) {
        const struct struct_case *c = &struct_cases[i];
        int rc = load(f, c->xml);
        if (c->want_err == NULL) {
            if (rc != 0)
                fail_msg("row %zu: %s", i, f->err.text);
        } else {
            if (rc != -1)
                fail_msg("row %zu: loaded, expected %s", i, c->want_err);
            if (strcmp(f->err.text, c->want_err) != 0)
                fail_msg("row %zu:\n got  %s\n want %s", i, f->err.text, c->want_err);
        }
    }
}

/* The example from the style guide, over several lines. */
static void test_file_line(void **state)
{
    struct fixture *f = *state;
    load_fails(f,
               "<?xml version=\"1.0\"?>\n"
               "<parley>\n"
               "  <domain>example.org</domain>\n"
               "  <router>\n"
               "    <host>localhost</host>\n"
               "    <port>52x2</port>\n"
               "  </router>\n"
               "</parley>\n",
               "parley.xml:6: <router><port>: \"52x2\" is not an integer in 1..65535");
    load_fails(f,
               "<parley>\n"
               "  <domain>example.org</domain>\n"
               "  <log>\n"
               "    <level>\n"
               "      loud\n"
               "    </level>\n"
               "  </log>\n"
               "</parley>\n",
               "parley.xml:4: <log><level>: \"loud\" is not one of: error, warn, notice, info, "
               "debug");
    load_fails(f,
               "<parley>\n"
               "  <domain>example.org</domain>\n"
               "\n"
               "  <limits stanza=\"1k\"/>\n"
               "</parley>\n",
               "parley.xml:4: <limits @stanza>: unknown attribute");
}

static void test_defaults(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "<parley><domain>example.org</domain></parley>");
    assert_null(f->cfg.version);
    assert_int_equal(f->cfg.port, 5347);
    assert_string_equal(f->cfg.host, "localhost");
    assert_false(f->cfg.router_tls);
    assert_null(f->cfg.cert);
    assert_string_equal(f->cfg.key, "key.pem");
    assert_false(f->cfg.tls_required);
    assert_int_equal(f->cfg.level, 2);
    assert_int_equal(f->cfg.stanza, 65536);
    assert_int_equal(f->cfg.idle, 300000);
    assert_int_equal(f->cfg.offset, 0);
    assert_int_equal(f->cfg.ndomains, 1);
    assert_string_equal(f->cfg.domains[0], "example.org");
    assert_int_equal(f->cfg.ncomps, 0);
    assert_null(f->cfg.comps);

    /* the file overrides defaults; a stale struct is zeroed first */
    f->cfg.ncomps = 99;
    load_ok(f, "<parley version=\"2\"><domain>a</domain><router tls=\"true\"><port>1</port>"
               "<host>h</host></router><log><level>warn</level></log></parley>");
    assert_string_equal(f->cfg.version, "2");
    assert_int_equal(f->cfg.port, 1);
    assert_string_equal(f->cfg.host, "h");
    assert_true(f->cfg.router_tls);
    assert_int_equal(f->cfg.level, 1);
    assert_int_equal(f->cfg.ncomps, 0);
}

struct bad_default_cfg {
    long n;
    int e;
    const char **list;
    size_t nlist;
};

static void test_bad_defaults(void **state)
{
    struct fixture *f = *state;
    static const char *const names[] = {"a", "b", NULL};
    static const struct conf_key int_keys[] = {
        CONF_INT("limits.n", struct bad_default_cfg, n, 1, 10, "11", "n"),
    };
    static const struct conf_key enum_keys[] = {
        CONF_ENUM("e", struct bad_default_cfg, e, names, "c", "e"),
    };
    static const struct conf_key list_keys[] = {
        {.path = "item",
         .type = CONF_T_LIST,
         .offset = offsetof(struct bad_default_cfg, list),
         .count_offset = offsetof(struct bad_default_cfg, nlist),
         .def = "only"},
    };
    static const struct conf_table int_table = CONF_TABLE(struct bad_default_cfg, int_keys);
    static const struct conf_table enum_table = CONF_TABLE(struct bad_default_cfg, enum_keys);
    static const struct conf_table list_table = CONF_TABLE(struct bad_default_cfg, list_keys);
    struct bad_default_cfg out;
    void *outs[] = {&out};
    const char *xml = "<parley/>";

    const struct conf_table *t1[] = {&int_table};
    assert_int_equal(conf_load_mem("p.xml", xml, strlen(xml), t1, outs, 1, NULL, f->a, &f->err),
                     -1);
    assert_string_equal(f->err.text,
                        "p.xml: <limits><n>: default \"11\" is not an integer in 1..10");
    /* the default is parsed even when the file gives the key */
    const char *given = "<parley><limits><n>5</n></limits></parley>";
    assert_int_equal(conf_load_mem("p.xml", given, strlen(given), t1, outs, 1, NULL, f->a, &f->err),
                     -1);

    const struct conf_table *t2[] = {&enum_table};
    assert_int_equal(conf_load_mem("p.xml", xml, strlen(xml), t2, outs, 1, NULL, f->a, &f->err),
                     -1);
    assert_string_equal(f->err.text, "p.xml: <e>: default \"c\" is not one of: a, b");

    /* a list default applies only when the file has none */
    const struct conf_table *t3[] = {&list_table};
    assert_int_equal(conf_load_mem("p.xml", xml, strlen(xml), t3, outs, 1, NULL, f->a, &f->err), 0);
    assert_int_equal(out.nlist, 1);
    assert_string_equal(out.list[0], "only");
    const char *two = "<parley><item>x</item><item>y</item></parley>";
    assert_int_equal(conf_load_mem("p.xml", two, strlen(two), t3, outs, 1, NULL, f->a, &f->err), 0);
    assert_int_equal(out.nlist, 2);
    assert_string_equal(out.list[1], "y");
}

/* A checked list: every value from the file goes through the check, and a
 * refusal names the file, the value's line and the key. */
static bool no_x(const char *value, const void *out, char *why, size_t len)
{
    const struct bad_default_cfg *cfg = out;
    if (value[0] != 'x')
        return true;
    snprintf(why, len, "no x here (of %zu)", cfg->nlist);
    return false;
}

static void test_list_check(void **state)
{
    struct fixture *f = *state;
    static const struct conf_key keys[] = {
        CONF_LIST_CHECKED("set.item", struct bad_default_cfg, list, nlist, no_x, "items"),
    };
    static const struct conf_table table = CONF_TABLE(struct bad_default_cfg, keys);
    const struct conf_table *t[] = {&table};
    struct bad_default_cfg out;
    void *outs[] = {&out};
    const char *good = "<parley><set><item>a</item><item>b</item></set></parley>";
    assert_int_equal(conf_load_mem("p.xml", good, strlen(good), t, outs, 1, NULL, f->a, &f->err),
                     0);
    assert_int_equal(out.nlist, 2);
    const char *bad =
        "<parley>\n<set>\n<item>a</item>\n<item>xy</item></set><set><item>c</item></set></parley>";
    assert_int_equal(conf_load_mem("p.xml", bad, strlen(bad), t, outs, 1, NULL, f->a, &f->err), -1);
    /* checked once all are loaded: the check sees the third value too */
    assert_string_equal(f->err.text, "p.xml:4: <set><item>: \"xy\": no x here (of 3)");
}

static void test_groups(void **state)
{
    struct fixture *f = *state;
    struct buf xml = BUF_INIT;
    buf_append_str(&xml, "<parley>\n<domain>a.example</domain>\n");
    /* nine occurrences: the array grows past 4 and 8 */
    for (int i = 0; i < 9; i++) {
        buf_printf(&xml, "<component name=\"c%d\"%s>\n  <secret>s%d</secret>\n", i,
                   i == 1 ? " tls=\"yes\"" : "", i);
        for (int h = 0; h < i; h++)
            buf_printf(&xml, "  <host>h%d.c%d</host>\n", h, i);
        if (i == 2)
            buf_append_str(&xml, "  <port>6000</port>\n");
        buf_append_str(&xml, "</component>\n");
    }
    buf_append_str(&xml, "<domain>b.example</domain>\n</parley>\n");
    load_ok(f, buf_cstr(&xml));
    buf_fini(&xml);

    assert_int_equal(f->cfg.ndomains, 2);
    assert_string_equal(f->cfg.domains[1], "b.example");
    assert_int_equal(f->cfg.ncomps, 9);
    for (size_t i = 0; i < 9; i++) {
        const struct comp_cfg *c = &f->cfg.comps[i];
        char want[32];
        snprintf(want, sizeof(want), "c%zu", i);
        assert_string_equal(c->name, want);
        snprintf(want, sizeof(want), "s%zu", i);
        assert_string_equal(c->secret, want);
        assert_int_equal(c->port, i == 2 ? 6000 : 5347); /* default per occurrence */
        assert_int_equal(c->tls, i == 1);
        assert_int_equal(c->nhosts, i);
        for (size_t h = 0; h < i; h++) {
            snprintf(want, sizeof(want), "h%zu.c%zu", h, i);
            assert_string_equal(c->hosts[h], want);
        }
    }
    assert_null(f->cfg.comps[0].hosts);
}

static void test_ignore(void **state)
{
    struct fixture *f = *state;
    static const char *const ignore[] = {"c2s", "s2s", NULL};
    const char *xml = "<parley><domain>d</domain>\n"
                      "<c2s port=\"5222\"><anything deep=\"1\"><x/>text</anything></c2s>\n"
                      "<s2s/>\n"
                      "</parley>";
    assert_int_equal(load_named(f, "parley.xml", xml, ignore), 0);
    assert_int_equal(load_named(f, "parley.xml", xml, NULL), -1);
    assert_string_equal(f->err.text, "parley.xml:2: <c2s>: unknown element");
    /* ignore applies to top-level elements only */
    const char *nested = "<parley><domain>d</domain><router><c2s/></router></parley>";
    assert_int_equal(load_named(f, "parley.xml", nested, ignore), -1);
    assert_string_equal(f->err.text, "parley.xml:1: <router><c2s>: unknown element");
}

static void test_two_tables(void **state)
{
    struct fixture *f = *state;
    struct extra_cfg extra;
    const struct conf_table *tables[] = {&test_table, &extra_table};
    void *outs[] = {&f->cfg, &extra};
    const char *xml = "<parley><domain>d</domain><router><port>7000</port></router>"
                      "<extra><workers>8</workers></extra></parley>";
    assert_int_equal(
        conf_load_mem("parley.xml", xml, strlen(xml), tables, outs, 2, NULL, f->a, &f->err), 0);
    assert_int_equal(f->cfg.port, 7000);
    assert_int_equal(extra.port, 7000); /* a key in both tables fills both */
    assert_int_equal(extra.workers, 8);

    /* each table's keys are known in both tables' elements */
    const char *bad = "<parley><domain>d</domain><extra><workers>99</workers></extra></parley>";
    assert_int_equal(
        conf_load_mem("parley.xml", bad, strlen(bad), tables, outs, 2, NULL, f->a, &f->err), -1);
    assert_string_equal(f->err.text,
                        "parley.xml:1: <extra><workers>: \"99\" is not an integer in 1..64");
    /* without the second table <extra> is unknown */
    assert_int_equal(load(f, xml), -1);
    assert_string_equal(f->err.text, "parley.xml:1: <extra>: unknown element");
}

static void test_paths(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *name, *cert, *want_cert, *want_key;
    } rows[] = {
        {"/etc/parley/parley.xml", "certs/x.pem", "/etc/parley/certs/x.pem", "/etc/parley/key.pem"},
        {"/etc/parley/parley.xml", "./certs/x.pem", "/etc/parley/certs/x.pem",
         "/etc/parley/key.pem"},
        {"/etc/parley/parley.xml", "/srv/x.pem", "/srv/x.pem", "/etc/parley/key.pem"},
        {"/etc/parley/parley.xml", "../x.pem", "/etc/parley/../x.pem", "/etc/parley/key.pem"},
        {"conf/parley.xml", "x.pem", "conf/x.pem", "conf/key.pem"},
        {"/parley.xml", "x.pem", "/x.pem", "/key.pem"},
        {"parley.xml", "x.pem", "x.pem", "key.pem"},
    };
    for (size_t i = 0; i < PL_ARRAY_LEN(rows); i++) {
        char *xml = arena_printf(f->a,
                                 "<parley><domain>d</domain><tls><cert>%s</cert></tls>"
                                 "</parley>",
                                 rows[i].cert);
        if (load_named(f, rows[i].name, xml, NULL) != 0)
            fail_msg("row %zu: %s", i, f->err.text);
        assert_string_equal(f->cfg.cert, rows[i].want_cert);
        assert_string_equal(f->cfg.key, rows[i].want_key);
    }
}

static void test_load_file(void **state)
{
    struct fixture *f = *state;
    char dir[] = "/tmp/test_conf.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = arena_printf(f->a, "%s/parley.xml", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("<parley>\n  <domain>d</domain>\n  <tls><cert>certs/x.pem</cert></tls>\n</parley>\n", fp);
    fclose(fp);

    const struct conf_table *tables[] = {&test_table};
    void *outs[] = {&f->cfg};
    assert_int_equal(conf_load(path, tables, outs, 1, NULL, f->a, &f->err), 0);
    char *real = realpath(dir, NULL);
    assert_non_null(real);
    assert_string_equal(f->cfg.cert, arena_printf(f->a, "%s/certs/x.pem", real));
    assert_string_equal(f->cfg.key, arena_printf(f->a, "%s/key.pem", real));

    /* errors name the file as given */
    fp = fopen(path, "w");
    fputs("<parley>\n  <domain>d</domain>\n  <router><port>0</port></router>\n</parley>\n", fp);
    fclose(fp);
    assert_int_equal(conf_load(path, tables, outs, 1, NULL, f->a, &f->err), -1);
    assert_string_equal(f->err.text,
                        arena_printf(f->a,
                                     "%s:3: <router><port>: \"0\" is not an integer in "
                                     "1..65535",
                                     path));

    unlink(path);
    assert_int_equal(conf_load(path, tables, outs, 1, NULL, f->a, &f->err), -1);
    assert_string_equal(f->err.text,
                        arena_printf(f->a, "%s: cannot open: No such file or directory", path));
    rmdir(dir);
    free(real);
}

/* Long names and values are shortened, never cut mid-character. */
static void test_long_text(void **state)
{
    struct fixture *f = *state;
    struct buf v = BUF_INIT;
    for (int i = 0; i < 300; i++)
        buf_append_str(&v, "\xC3\xA9"); /* é */
    char *xml = arena_printf(f->a,
                             "<parley><domain>d</domain><router><port>%s</port></router>"
                             "</parley>",
                             buf_cstr(&v));
    assert_int_equal(load(f, xml), -1);
    size_t n = strlen(f->err.text);
    assert_true(n < sizeof(f->err.text));
    const char *end = "...\" is not an integer in 1..65535";
    assert_string_equal(f->err.text + n - strlen(end), end);
    assert_memory_equal(f->err.text, "parley.xml:1: <router><port>: \"\xC3\xA9", 33);

    /* a long file name keeps its tail; the reason stays whole */
    struct buf name = BUF_INIT;
    buf_append_str(&name, "/");
    for (int i = 0; i < 40; i++)
        buf_append_str(&name, "deep/");
    buf_append_str(&name, "parley.xml");
    assert_int_equal(load_named(f, buf_cstr(&name), "<parley><bogus/></parley>", NULL), -1);
    assert_true(strncmp(f->err.text, "...", 3) == 0);
    assert_non_null(strstr(f->err.text, "deep/parley.xml:1: <bogus>: unknown element"));

    /* control characters in values are not echoed */
    assert_int_equal(load_body(f, "<router><port>1&#10;2</port></router>"), -1);
    assert_string_equal(f->err.text,
                        "parley.xml:1: <router><port>: \"1?2\" is not an integer in 1..65535");
    buf_fini(&v);
    buf_fini(&name);
}

static void test_dump(void **state)
{
    struct fixture *f = *state;
    load_ok(f, "<parley version=\"3\"><domain>a.example</domain><domain>b &amp; c</domain>"
               "<router tls=\"yes\"><port>7000</port></router>"
               "<limits><stanza>1m</stanza><idle>90s</idle></limits>"
               "<component name=\"muc\"><secret>s</secret><host>h1</host></component>"
               "<component name=\"pubsub\"><secret>t</secret></component></parley>");
    struct buf b = BUF_INIT;
    conf_dump(&b, &test_table, &f->cfg);
    const char *out = buf_cstr(&b);
    static const char *const lines[] = {
        "  <!-- <parley version=\"3\">: file format version -->\n",
        "  <!-- @tls: TLS to the router -->\n  <router tls=\"true\">\n",
        "    <port>7000</port> <!-- router port -->\n",
        "    <host>localhost</host> <!-- router host -->\n",
        "  <tls>\n    <!-- <cert/>: not set, certificate -->\n",
        "    <key>key.pem</key> <!-- private key -->\n",
        "    <required>false</required> <!-- require TLS -->\n",
        "    <level>notice</level> <!-- log level -->\n",
        "    <stanza>1M</stanza> <!-- largest stanza -->\n",
        "    <idle>90s</idle> <!-- idle timeout -->\n",
        "  <offset>0</offset> <!-- an offset -->\n",
        "  <domain>a.example</domain> <!-- served domains -->\n  <domain>b &amp; c</domain>\n",
        "  <!-- <component>: 2, components -->\n",
        "  <component name=\"muc\" tls=\"false\">\n    <secret>s</secret>",
        "    <host>h1</host> <!-- extra host names -->\n  </component>\n",
        "  <component name=\"pubsub\" tls=\"false\">\n",
        "    <!-- <host>: none, extra host names -->\n",
    };
    for (size_t i = 0; i < PL_ARRAY_LEN(lines); i++) {
        if (strstr(out, lines[i]) == NULL)
            fail_msg("dump lacks:\n%s\nin:\n%s", lines[i], out);
    }

    /* the dump loads again to the same values */
    struct test_cfg first = f->cfg;
    char *again = arena_printf(f->a, "<parley>\n%s</parley>\n", out);
    load_ok(f, again);
    assert_int_equal(f->cfg.port, first.port);
    assert_true(f->cfg.router_tls);
    assert_int_equal(f->cfg.stanza, first.stanza);
    assert_int_equal(f->cfg.idle, first.idle);
    assert_int_equal(f->cfg.ndomains, 2);
    assert_string_equal(f->cfg.domains[1], "b & c");
    assert_int_equal(f->cfg.ncomps, 2);
    assert_string_equal(f->cfg.comps[1].name, "pubsub");
    assert_int_equal(f->cfg.comps[0].nhosts, 1);
    assert_null(f->cfg.version); /* root attributes are only a comment */
    buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ignore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_tables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
