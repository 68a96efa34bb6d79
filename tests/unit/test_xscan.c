/* SPDX-License-Identifier: MIT */
/* Unit tests for the stanza scanner of shallow streams (libcommon/xstream.c):
 * every input is parsed twice, once with the scanner and once by expat
 * alone (XSTREAM_EXPAT_ONLY), fed in the same pieces, and the two must give
 * the same events, outer elements, attributes, raw bytes and errors (error
 * texts carry expat's line numbers). Hand-written cases, then random streams
 * of random and mutated stanzas under random limits and pieces. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"
#include "xml.h"
#include "xstream.h"

#define COMP_HEADER                                                                                \
    "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' "         \
    "xmlns='jabber:component:accept' to='c.example'>"

struct rec {
    struct xstream *xs;
    struct buf log;
    const char *chunk;
    size_t chunk_len;
    unsigned stanzas;
    unsigned fail_at, reset_at; /* 1-based stanza number; 0 never */
    unsigned raw_outside;       /* stanzas whose raw bytes were not in the chunk fed */
};

static void log_attrs(struct buf *b, const struct xml_node *n)
{
    for (unsigned i = 0; i < n->nattrs; i++)
        buf_printf(b, " @%s|%s=[%s]", n->attrs[i].ns ? n->attrs[i].ns : "-", n->attrs[i].name,
                   n->attrs[i].value);
}

static int rec_open(void *arg, const struct xml_node *hdr)
{
    struct rec *r = arg;
    buf_printf(&r->log, "OPEN %s|%s default=%s", hdr->ns, hdr->name, xstream_default_ns(r->xs));
    log_attrs(&r->log, hdr);
    buf_append_char(&r->log, '\n');
    return 0;
}

static int rec_stanza(void *arg, struct xml_node *st, const char *raw, size_t len)
{
    struct rec *r = arg;
    r->stanzas++;
    assert_int_equal(st->kind, XML_ELEM);
    assert_null(st->first);
    buf_printf(&r->log, "STANZA %s|%s|%s", st->ns, st->prefix ? st->prefix : "-", st->name);
    log_attrs(&r->log, st);
    buf_append_str(&r->log, " RAW[");
    buf_append(&r->log, raw, len);
    buf_append_str(&r->log, "]\n");
    if (r->chunk != NULL && (raw < r->chunk || raw + len > r->chunk + r->chunk_len))
        r->raw_outside++;
    if (r->reset_at == r->stanzas) {
        buf_append_str(&r->log, "RESET\n");
        xstream_reset(r->xs);
    }
    if (r->fail_at == r->stanzas) {
        struct err e;
        err_set(&e, XMPP_COND_STREAM_NOT_AUTHORIZED, "refused stanza %u", r->stanzas);
        xstream_fail(r->xs, &e);
        return -1;
    }
    return 0;
}

static void rec_close(void *arg)
{
    struct rec *r = arg;
    buf_append_str(&r->log, "CLOSE\n");
}

static const struct xstream_ops rec_ops = {rec_open, rec_stanza, rec_close};

struct run {
    const struct xstream_limits *lim;
    size_t first;         /* the first piece's size; 0: as the others */
    const size_t *pieces; /* piece sizes, cycled; NULL: all at once */
    size_t npieces;
    unsigned fail_at, reset_at;
};

/* The log of one parse; *scanned_r: stanzas the scanner handed out. */
static char *run_one(const char *in, size_t len, const struct run *run, unsigned flags,
                     unsigned long *scanned_r, unsigned *raw_outside_r)
{
    struct rec r;
    memset(&r, 0, sizeof(r));
    r.fail_at = run->fail_at;
    r.reset_at = run->reset_at;
    r.xs = xstream_new(run->lim, &rec_ops, &r, flags);
    size_t k = 0;
    for (size_t off = 0; off < len;) {
        size_t n = run->pieces ? run->pieces[k++ % run->npieces] : len;
        if (off == 0 && run->first > 0)
            n = run->first;
        if (n == 0 || n > len - off)
            n = len - off;
        /* A copy of each piece, so raw bytes cannot point into in. */
        char *piece = malloc(n);
        memcpy(piece, in + off, n);
        r.chunk = piece;
        r.chunk_len = n;
        struct err err = {XMPP_COND_NONE, ""};
        int rc = xstream_feed(r.xs, piece, n, &err);
        r.chunk = NULL;
        free(piece);
        off += n;
        if (rc != 0) {
            buf_printf(&r.log, "ERROR at %zu %s: %s\n", off, xmpp_cond_name(err.cond), err.text);
            break;
        }
    }
    buf_append_str(&r.log, "END\n");
    *scanned_r = xstream_scanned(r.xs);
    if (raw_outside_r != NULL)
        *raw_outside_r = r.raw_outside;
    xstream_free(&r.xs);
    return buf_detach(&r.log, NULL);
}

/* Parses in with and without the scanner; fails on any difference. Returns
 * the stanzas the scanner handed out. */
static unsigned long check_same(const char *what, const char *in, size_t len, const struct run *run)
{
    unsigned long scanned, none;
    char *want = run_one(in, len, run, XSTREAM_SHALLOW | XSTREAM_EXPAT_ONLY, &none, NULL);
    char *got = run_one(in, len, run, XSTREAM_SHALLOW, &scanned, NULL);
    assert_int_equal(none, 0);
    if (strcmp(got, want) != 0)
        fail_msg("%s: the scanner differs from expat.\ninput (%zu bytes): %.*s\n--- scanner:\n%s\n"
                 "--- expat:\n%s",
                 what, len, (int)len, in, got, want);
    free(want);
    free(got);
    return scanned;
}

/* Whole, a byte at a time, and in pieces of 2, 3, 7, 61 and mixed sizes;
 * each with the first first bytes (the header) alone and not. */
static unsigned long check_splits(const char *what, const char *in, size_t len, size_t first,
                                  const struct xstream_limits *lim)
{
    static const size_t one[] = {1}, two[] = {2}, three[] = {3}, seven[] = {7}, big[] = {61},
                        mixed[] = {5, 40, 1, 13, 200, 2};
    static const struct {
        const size_t *p;
        size_t n;
    } splits[] = {{NULL, 0}, {one, 1}, {two, 1}, {three, 1}, {seven, 1}, {big, 1}, {mixed, 6}};
    unsigned long scanned = 0;
    for (size_t i = 0; i < PL_ARRAY_LEN(splits); i++) {
        struct run run = {.lim = lim, .pieces = splits[i].p, .npieces = splits[i].n};
        scanned += check_same(what, in, len, &run);
        run.first = first;
        scanned += check_same(what, in, len, &run);
    }
    return scanned;
}

static char *in_stream(const char *header, const char *body, const char *tail, size_t *len_r)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, header);
    buf_append_str(&b, body);
    buf_append_str(&b, tail);
    return buf_detach(&b, len_r);
}

/* ---- the scanner takes ordinary traffic ------------------------------- */

static const char traffic[] =
    "<route xmlns='http://parley.im/protocol/router' to='sm' from='c2s' type='deliver'>"
    "<message xmlns='jabber:client' from='u1@d/b1' to='u2@d' type='chat' id='m1'>"
    "<body>hello &amp; &lt;3 &apos;q&apos; &quot;x&quot; a]b ]] > done</body></message></route>\n"
    "<message to='x@y' from='c.example' xml:lang='en'><body>two\r\nlines\ttab</body>"
    "<x xmlns='urn:x' a=\"it's\" b='say &quot;hi&quot;' c='1\n'/></message>"
    " \t\r\n"
    "<iq type='get' id='i1' to='x@y' from='c.example'/>"
    "<presence xmlns='' to='x@y' from='c.example'><show>away</show></presence>"
    "<message\n to = 'x@y'\r\n from=\"c.example\"\t><body\n>hi</body\n></message >";

static void test_traffic_is_scanned(void **state)
{
    (void)state;
    size_t len;
    char *in = in_stream(COMP_HEADER, traffic, "\n", &len);
    struct run run = {0};
    unsigned long scanned, none;
    unsigned outside;
    char *got = run_one(in, len, &run, XSTREAM_SHALLOW, &scanned, &outside);
    char *want = run_one(in, len, &run, XSTREAM_SHALLOW | XSTREAM_EXPAT_ONLY, &none, NULL);
    assert_string_equal(got, want);
    /* The header's chunk goes to expat, which reads its stanzas too; fed
     * after the header, every stanza is the scanner's. */
    free(got);
    free(want);
    free(in);
    struct rec r;
    memset(&r, 0, sizeof(r));
    r.xs = xstream_new(NULL, &rec_ops, &r, XSTREAM_SHALLOW);
    struct err err;
    assert_int_equal(xstream_feed(r.xs, COMP_HEADER, strlen(COMP_HEADER), &err), 0);
    r.chunk = traffic;
    r.chunk_len = strlen(traffic);
    assert_int_equal(xstream_feed(r.xs, traffic, strlen(traffic), &err), 0);
    assert_int_equal(r.stanzas, 5);
    assert_int_equal(xstream_scanned(r.xs), 5);
    assert_int_equal(r.raw_outside, 0);
    assert_non_null(strstr(r.log.data, "STANZA http://parley.im/protocol/router|-|route @-|to=[sm]"
                                       " @-|from=[c2s] @-|type=[deliver] RAW[<route "));
    assert_non_null(strstr(r.log.data,
                           "STANZA jabber:component:accept|-|message @-|to=[x@y] @-|from=[c.exam"
                           "ple] @" XML_NS_XML "|lang=[en] RAW[<message to="));
    assert_non_null(strstr(r.log.data, "STANZA |-|presence"));
    xstream_free(&r.xs);
    buf_fini(&r.log);
    /* Whole, in pieces and a byte at a time: the same as expat. */
    in = in_stream(COMP_HEADER, traffic, "</stream:stream>", &len);
    assert_true(check_splits("traffic", in, len, strlen(COMP_HEADER), NULL) > 0);
    free(in);
}

/* After a stanza expat had to read, or one split across feeds, expat stops
 * at that stanza's end and the scanner takes the next ones. */
static void test_resume(void **state)
{
    (void)state;
    static const char *const feeds[] = {
        "<message to='a' from='b'><body>&#65;</body></message><iq to='a' from='b'/>\n",
        "<iq to='a' from='b'/><message to='a' from='b'><b",
        "ody a='/>'>x</body><c/></message> <iq to='a' from='b'/><iq/>",
        "<message to='a' from='b'><x/><y",
        "/></message><iq to='a' from='b'/>",
        "<message to='\xc3\xa9' from='b'/><message/><iq><!-- c",
        " --></iq><iq/>",
    };
    /* Stanzas the scanner has handed out after each feed. */
    static const unsigned long want[] = {1, 2, 4, 4, 5, 6, 6};
    struct rec r;
    memset(&r, 0, sizeof(r));
    r.xs = xstream_new(NULL, &rec_ops, &r, XSTREAM_SHALLOW);
    struct err err;
    assert_int_equal(xstream_feed(r.xs, COMP_HEADER, strlen(COMP_HEADER), &err), 0);
    struct buf all = BUF_INIT;
    buf_append_str(&all, COMP_HEADER);
    for (size_t i = 0; i < PL_ARRAY_LEN(feeds); i++) {
        int rc = xstream_feed(r.xs, feeds[i], strlen(feeds[i]), &err);
        if (i + 1 < PL_ARRAY_LEN(feeds)) {
            assert_int_equal(rc, 0);
        } else {
            /* The comment: expat refuses it. */
            assert_int_equal(rc, -1);
            assert_int_equal(err.cond, XMPP_COND_STREAM_RESTRICTED_XML);
        }
        if (xstream_scanned(r.xs) != want[i])
            fail_msg("after feed %zu: %lu scanned, want %lu", i, xstream_scanned(r.xs), want[i]);
        buf_append_str(&all, feeds[i]);
    }
    assert_int_equal(r.stanzas, 10);
    xstream_free(&r.xs);
    buf_fini(&r.log);
    /* And the same as expat's in these pieces. */
    static size_t sizes[PL_ARRAY_LEN(feeds)];
    for (size_t i = 0; i < PL_ARRAY_LEN(feeds); i++)
        sizes[i] = strlen(feeds[i]);
    struct run run = {
        .first = strlen(COMP_HEADER), .pieces = sizes, .npieces = PL_ARRAY_LEN(sizes)};
    check_same("resume", all.data, all.len, &run);
    buf_fini(&all);
}

/* ---- hand-written cases at the edges of the subset --------------------- */

static const char *const cases[] = {
    /* well-formed, outside the subset: expat reads them */
    "<message to='a' from='b'><body>&#65;&#x42;</body></message>",
    "<message to='a&amp;b' from='b'/>",
    "<message to='a\tb' from='b\nc' id='x\r\ny'/>",
    "<message to='a' from='b'><![CDATA[<x>]]></message>",
    "<message to='a' from='b'><p:x xmlns:p='urn:p'/></message>",
    "<message xmlns:p='urn:p' p:a='1' to='a' from='b'/>",
    "<message to='gr\xc3\xbc\xc3\x9f' from='b'><body>\xe2\x9c\x93</body></message>",
    "<message to='a' from='b'><body>\x7f</body></message>",
    "<message to='a' from='b' xml:lang='en' xml:space='preserve'/>",
    "<message to='a' from='b'><body xmlns='http://www.w3.org/1999/xhtml'/></message>",
    "<message to='a' from='b'>]</message>",
    "<message to='a' from='b'>]]</message>",
    "<message to='a' from='b' x=']]>'/>",
    "<message to='a' from='b'><a><a><a/></a></a></message>",
    /* not well-formed or refused */
    "<message to='a' from='b'>]]></message>",
    "<message to='a' from='b'><body>&nbsp;</body></message>",
    "<message to='a' from='b'><body>&#0;</body></message>",
    "<message to='a' from='b'><body>\x01</body></message>",
    "<message to='a' from='b'><body>\xff</body></message>",
    "<message to='a' from='b'><body>\xc0\x80</body></message>",
    "<message to='a' from='b'><body>\xed\xa0\x80</body></message>",
    "<message to='a' from='b'><body>\xef\xbf\xbe</body></message>",
    "<message to='a' from='b'></body></message>",
    "<message to='a' from='b'><body></bod></message>",
    "<message to='a' from='b'><body></bodyx></message>",
    "<message to='a' from='b'><body></body:x></message>",
    "<message to='a' from='b' to='c'/>",
    "<message to='a' from='b' xmlns='x' xmlns='y'/>",
    "<message to='a' from='b' xml:lang='a' xml:lang='b'/>",
    "<message to='a'from='b'/>",
    "<message to='a' from='b' / >",
    "<message to='a' from=b/>",
    "<message to='a' from='<'/>",
    "<message to='a' from='b'><x a='<'/></message>",
    "<message to='a' from='b'><x a='&bogus;'/></message>",
    "<message to='a' from='b' xmlns='" XML_NS_XML "'/>",
    "<message to='a' from='b' xmlns='http://www.w3.org/2000/xmlns/'/>",
    "<message to='a' from='b'><x xmlns='" XML_NS_XML "'/></message>",
    "<message to='a' from='b'><p:x/></message>",
    "<p:message to='a' from='b'/>",
    "<message to='a' from='b' p:a='1'/>",
    "<message to='a' from='b' xmlns:xml='urn:no'/>",
    "<message to='a' from='b' xmlns:p=''/>",
    "<message to='a' from='b'><!-- c --></message>",
    "<message to='a' from='b'><?pi x?></message>",
    "<message to='a' from='b'><!DOCTYPE x></message>",
    "<message to='a' from='b'>&amp</message>",
    "<message to='a' from='b'>&</message>",
    "<message to='a' from='b'><1x/></message>",
    "<message to='a' from='b'><-x/></message>",
    "<message to='a' from='b'>< x/></message>",
    "<.message/>",
    "<message to='a' from='b'><x.y-z_1 a.b-c_2='v'/></message>",
    "text <message/>",
    "<message/> text",
    "<!-- c --><message/>",
    "<?pi?><message/>",
    "<![CDATA[]]><message/>",
    "<message/></stream:stream>",
    "<message/></stream:strea>",
    "<message to='a' from='b'",
    "<message to='a' from='b'><body>unfinished",
};

static void test_cases(void **state)
{
    (void)state;
    static const struct xstream_limits tight = {.max_stanza = 90, .max_depth = 3, .max_attrs = 3};
    for (size_t i = 0; i < PL_ARRAY_LEN(cases); i++) {
        char what[32];
        snprintf(what, sizeof(what), "case %zu", i);
        size_t len;
        /* Alone, after scanned stanzas and lines, and before more. */
        char *in = in_stream(COMP_HEADER, cases[i], "", &len);
        check_splits(what, in, len, strlen(COMP_HEADER), NULL);
        free(in);
        struct buf body = BUF_INIT;
        buf_printf(&body, "<iq to='a' from='b'/>\n\n<iq to='a'\nfrom='b'/>\r\n%s\n<iq/>", cases[i]);
        in = in_stream(COMP_HEADER, buf_cstr(&body), "\n</stream:stream>", &len);
        check_splits(what, in, len, strlen(COMP_HEADER), NULL);
        check_splits(what, in, len, strlen(COMP_HEADER), &tight);
        free(in);
        buf_fini(&body);
    }
}

/* The limits: the scanner leaves a stanza at or past each one to expat. */
static void test_limits(void **state)
{
    (void)state;
    static const char body[] =
        "<m to='a' from='b'><a><b><c/></b></a></m>"           /* 4 levels */
        "<m to='a' from='b' c='1' d='2'/>"                    /* 4 attributes */
        "<m to='a' from='b' xmlns='x' c='1'/>"                /* 3 and a declaration */
        "<m to='a' from='b'><x a='1' b='2' c='3' d='4'/></m>" /* 4 on a child */
        "<m to='a' from='b'>"
        "0123456789012345678901234567890123456789"
        "</m>";
    for (unsigned v = 1; v <= 6; v++) {
        struct xstream_limits lim = {.max_depth = v, .max_attrs = v, .max_stanza = 30 + 10 * v};
        size_t len;
        char *in = in_stream(COMP_HEADER, body, "</stream:stream>", &len);
        check_splits("limits", in, len, strlen(COMP_HEADER), &lim);
        lim.max_stanza = 0;
        check_splits("limits", in, len, strlen(COMP_HEADER), &lim);
        free(in);
    }
}

/* A callback that fails or resets the stream stops the scanner where
 * expat would stop. */
static void test_callbacks(void **state)
{
    (void)state;
    size_t len;
    char *in = in_stream(COMP_HEADER, traffic, "<message to='a' from='b'/>", &len);
    for (unsigned k = 1; k <= 6; k++) {
        for (int mode = 0; mode < 3; mode++) {
            static const size_t mixed[] = {300, 5, 1000};
            struct run run = {.fail_at = mode != 1 ? k : 0,
                              .reset_at = mode != 0 ? k : 0,
                              .pieces = mixed,
                              .npieces = 3};
            check_same("callback", in, len, &run);
            run.pieces = NULL;
            check_same("callback", in, len, &run);
        }
    }
    free(in);
}

/* ---- random streams ------------------------------------------------------ */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

#define PICK(a) ((a)[rnd(PL_ARRAY_LEN(a))])

static const char *const names[] = {"message", "iq", "presence", "body",  "x",     "a", "_q",
                                    "a.b-c",   "A9", "xml",      "xmlns", "route", "m"};
static const char *const anames[] = {"to",    "from", "id", "type", "xml:lang",
                                     "xmlns", "a",    "b",  "_"};
static const char *const odd_anames[] = {"xmlns:p", "p:a", "xml:space", "xmlx", "xml:", ":a"};
static const char *const values[] = {"",
                                     "a@b/c",
                                     "chat",
                                     "urn:x",
                                     "jabber:client",
                                     "x'y",
                                     "x\"y",
                                     "a&amp;b",
                                     "&lt;&gt;&quot;&apos;",
                                     "&#65;",
                                     "&bad;",
                                     "x\ty",
                                     "x\ny",
                                     "x\r\ny",
                                     "x\ry",
                                     "\xc3\xa9",
                                     "<",
                                     ">",
                                     "]]>",
                                     XML_NS_XML,
                                     "http://www.w3.org/2000/xmlns/",
                                     "http://www.w3.org/1999/xhtml",
                                     "\x7f",
                                     "\x01"};
static const char *const texts[] = {"hi",
                                    " ",
                                    "\n",
                                    "\r\n",
                                    "\r",
                                    "a &amp; b",
                                    "&lt;3",
                                    "&#x41;",
                                    "]",
                                    "]]",
                                    "]]>",
                                    "a]b",
                                    "\t",
                                    "gr\xc3\xbc",
                                    "\x01",
                                    "\x7f",
                                    "<![CDATA[x]]>",
                                    "<!-- c -->",
                                    "<?pi x?>",
                                    "&nope;",
                                    "'\"",
                                    ">",
                                    "&amp",
                                    "\xff"};
static const char *const spaces[] = {" ", " ", " ", "  ", "\n", "\t", "\r\n", "\r"};
static const char *const seps[] = {"", "", " ", "\n", "\r\n", "\r", "\t", "  \n  ", "x", "\r\r"};

/* 1 in odd picks is something unusual; a third of the streams have none. */
static unsigned odd = 8;

static void gen_elem(struct buf *b, unsigned level)
{
    const char *name = PICK(names);
    bool prefixed = rnd(3 * odd) == 0;
    buf_printf(b, "<%s%s", prefixed ? "p:" : "", name);
    unsigned nattrs = rnd(5);
    const char *used[5];
    unsigned nused = 0;
    for (unsigned i = 0; i < nattrs; i++) {
        char q = rnd(3) == 0 ? '"' : '\'';
        const char *an = rnd(2 * odd) == 0 ? PICK(odd_anames) : PICK(anames);
        /* Mostly no duplicates, or few elements would be well-formed. */
        bool dup = false;
        for (unsigned j = 0; j < nused; j++)
            dup |= strcmp(used[j], an) == 0;
        if (dup && rnd(10) != 0)
            continue;
        used[nused++] = an;
        buf_printf(b, "%s%s%s=%s%c%s%c", PICK(spaces), an, rnd(8) == 0 ? " " : "",
                   rnd(8) == 0 ? "\n" : "", q, rnd(odd) == 0 ? PICK(values) : "v", q);
    }
    if (rnd(8) == 0)
        buf_append_str(b, PICK(spaces));
    if (rnd(4) == 0) {
        buf_append_str(b, "/>");
        return;
    }
    buf_append_char(b, '>');
    unsigned n = level < 6 ? rnd(4) : 0;
    for (unsigned i = 0; i < n; i++) {
        if (rnd(2) == 0)
            buf_append_str(b, rnd(odd) == 0 ? PICK(texts) : "text");
        else
            gen_elem(b, level + 1);
    }
    buf_printf(b, "</%s%s%s>", prefixed ? "p:" : "", name, rnd(10) == 0 ? PICK(spaces) : "");
}

static const char mutation_bytes[] = "<>/'\"=&;:! \n\r\t]x#\x80\xff\x01";

static void mutate(struct buf *b)
{
    if (b->len == 0)
        return;
    size_t at = rnd((unsigned)b->len);
    switch (rnd(4)) {
    case 0: /* delete a byte */
        memmove(b->data + at, b->data + at + 1, b->len - at - 1);
        b->len--;
        break;
    case 1: /* replace one */
        b->data[at] = mutation_bytes[rnd(sizeof(mutation_bytes) - 1)];
        break;
    case 2: { /* insert one */
        char c = mutation_bytes[rnd(sizeof(mutation_bytes) - 1)];
        buf_append_char(b, c);
        memmove(b->data + at + 1, b->data + at, b->len - at - 1);
        b->data[at] = c;
        break;
    }
    default: /* cut the end */
        b->len = at;
        break;
    }
}

static void test_random(void **state)
{
    (void)state;
    static const char *const headers[] = {
        COMP_HEADER,
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:p='urn:p'>",
        "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'\n>\n",
    };
    static const struct xstream_limits limits[] = {
        {0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {400, 5, 4}, {64, 2, 2}, {0, 3, 1}, {1000, 64, 64}};
    unsigned long scanned = 0;
    unsigned streams = 3000;
    for (unsigned i = 0; i < streams; i++) {
        struct buf in = BUF_INIT;
        odd = i % 3 == 0 ? 1u << 30 : 8;
        buf_append_str(&in, PICK(headers));
        size_t header_len = in.len;
        unsigned n = 1 + rnd(12);
        for (unsigned k = 0; k < n; k++) {
            buf_append_str(&in, rnd(4) == 0 ? PICK(seps) : "");
            struct buf st = BUF_INIT;
            gen_elem(&st, 1);
            if (rnd(20) == 0 && i % 3 != 0) {
                for (unsigned m = 1 + rnd(2); m > 0; m--)
                    mutate(&st);
            }
            buf_append(&in, st.data, st.len);
            buf_fini(&st);
        }
        if (rnd(2) == 0)
            buf_append_str(&in, "</stream:stream>");
        size_t pieces[4];
        for (size_t k = 0; k < 4; k++)
            pieces[k] = 1 + rnd(rnd(2) ? 8 : 300);
        struct run run = {.lim = &PICK(limits), .first = header_len};
        char what[48];
        snprintf(what, sizeof(what), "random stream %u", i);
        /* The header alone, then the rest at once or in random pieces;
         * random pieces from the start; and with a callback that fails or
         * resets the stream. */
        scanned += check_same(what, in.data, in.len, &run);
        run.pieces = pieces;
        run.npieces = 4;
        scanned += check_same(what, in.data, in.len, &run);
        run.first = 0;
        scanned += check_same(what, in.data, in.len, &run);
        run.first = rnd(2) ? header_len : 0;
        run.pieces = rnd(2) ? pieces : NULL;
        run.fail_at = 1 + rnd(4);
        run.reset_at = rnd(3) == 0 ? run.fail_at : 0;
        scanned += check_same(what, in.data, in.len, &run);
        buf_fini(&in);
    }
    /* The scanner took a good share of the stanzas, so the comparison is
     * not vacuous. */
    printf("random: %lu stanzas scanned in %u streams\n", scanned, streams);
    if (scanned < 4 * streams / 3)
        fail_msg("the scanner handed out only %lu stanzas", scanned);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traffic_is_scanned),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
