/* SPDX-License-Identifier: MIT */
/* Unit tests for the incremental stream parser (libcommon/xstream.c): trees
 * and raw bytes per stanza, chunking independence, limits, restricted XML,
 * one row per stream error condition, and the same events, bytes and errors
 * when the parser is released between stanzas. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <time.h>

#include <cmocka.h>

#include "arena.h"
#include "attr.h"
#include "buf.h"
#include "err.h"
#include "xml.h"
#include "xstream.h"

#define HEADER                                                                                     \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "to='example.org' version='1.0' xml:lang='en'>"
#define SHORT_HEADER "<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client'>"

/* Records every event as text so two runs can be compared byte for byte. */
struct rec {
    struct xstream *xs;
    struct buf log;
    struct buf last_raw;
    struct xml_node *last; /* copy of the last stanza, in keep */
    struct arena *keep;
    int opens, stanzas, closes;
    const char *chunk; /* the last chunk fed, to check zero-copy raw */
    size_t chunk_len;
    int raw_in_chunk;
    int fail_at;        /* fail from the n-th stanza (1-based); 0 never */
    bool fail_silently; /* return -1 without xstream_fail */
    int reset_at;       /* call xstream_reset from the n-th stanza */
    bool refuse_open;
    int releases_in_cb; /* xstream_release calls from callbacks that released */
};

static int rec_open(void *arg, const struct xml_node *hdr)
{
    struct rec *r = arg;
    r->opens++;
    buf_printf(&r->log, "OPEN ns=%s prefix=%s default=%s\n", hdr->ns,
               hdr->prefix ? hdr->prefix : "-", xstream_default_ns(r->xs));
    for (unsigned i = 0; i < hdr->nattrs; i++)
        buf_printf(&r->log, "  @%s|%s=%s\n", hdr->attrs[i].ns ? hdr->attrs[i].ns : "",
                   hdr->attrs[i].name, hdr->attrs[i].value);
    if (r->refuse_open) {
        struct err e;
        err_set(&e, XMPP_COND_STREAM_HOST_UNKNOWN, "no such host");
        xstream_fail(r->xs, &e);
        return -1;
    }
    return 0;
}

static int rec_stanza(void *arg, struct xml_node *st, const char *raw, size_t raw_len)
{
    struct rec *r = arg;
    r->stanzas++;
    assert_null(st->parent);
    buf_append_str(&r->log, "STANZA ");
    xml_serialize(&r->log, st, xstream_default_ns(r->xs));
    buf_append_str(&r->log, "\nRAW ");
    buf_append(&r->log, raw, raw_len);
    buf_append_char(&r->log, '\n');
    buf_reset(&r->last_raw);
    buf_append(&r->last_raw, raw, raw_len);
    if (r->chunk != NULL && raw >= r->chunk && raw + raw_len <= r->chunk + r->chunk_len)
        r->raw_in_chunk++;
    if (r->keep != NULL)
        r->last = xml_node_copy(r->keep, st);
    /* The stanza arena is usable for replies. */
    assert_non_null(arena_strdup(xstream_arena(r->xs), "scratch"));
    if (xstream_release(r->xs))
        r->releases_in_cb++;
    if (r->reset_at == r->stanzas)
        xstream_reset(r->xs);
    if (r->fail_at == r->stanzas) {
        if (!r->fail_silently) {
            struct err e;
            err_set(&e, XMPP_COND_STREAM_NOT_AUTHORIZED, "refused stanza %d", r->stanzas);
            xstream_fail(r->xs, &e);
        }
        return -1;
    }
    return 0;
}

static void rec_close(void *arg)
{
    struct rec *r = arg;
    r->closes++;
    buf_append_str(&r->log, "CLOSE\n");
}

static const struct xstream_ops rec_ops = {rec_open, rec_stanza, rec_close};

static void rec_init(struct rec *r, const struct xstream_limits *lim, unsigned flags)
{
    memset(r, 0, sizeof(*r));
    r->xs = xstream_new(lim, &rec_ops, r, flags);
}

static void rec_fini(struct rec *r)
{
    xstream_free(&r->xs);
    assert_null(r->xs);
    buf_fini(&r->log);
    buf_fini(&r->last_raw);
    arena_free(&r->keep);
}

/* Feeds s in pieces of step bytes (0: all at once); returns the first
 * failure's result and stops there. With releases_r, xstream_release is
 * tried after every piece and the successful ones are counted. */
static int feed_steps_release(struct rec *r, const char *s, size_t len, size_t step,
                              struct err *err, int *releases_r)
{
    if (step == 0)
        step = len ? len : 1;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        /* Copy each piece so raw bytes cannot accidentally point into s. */
        char *piece = malloc(n);
        memcpy(piece, s + off, n);
        r->chunk = piece;
        r->chunk_len = n;
        int rc = xstream_feed(r->xs, piece, n, err);
        r->chunk = NULL;
        free(piece);
        if (rc != 0)
            return rc;
        if (releases_r != NULL && xstream_release(r->xs))
            (*releases_r)++;
    }
    return 0;
}

static int feed_steps(struct rec *r, const char *s, size_t len, size_t step, struct err *err)
{
    return feed_steps_release(r, s, len, step, err, NULL);
}

/* ---- a realistic stream ------------------------------------------------ */

#define X10   "xxxxxxxxxx"
#define X100  X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X1000 X100 X100 X100 X100 X100 X100 X100 X100 X100 X100
/* 50 bytes of attribute value with the other quote and '>' inside */
#define Q50  "\"quoted\" > and more \"\" tail >> padding......."
#define Q500 Q50 Q50 Q50 Q50 Q50 Q50 Q50 Q50 Q50 Q50
#define S100                                                                                       \
    "                                                                                            " \
    "        "

static const char *const stanzas[] = {
    "<message from='alice@example.org/phone' to=\"bob@example.org\" type='chat' id='m1' "
    "xml:lang='de'><body>Tom &amp; Jerry &lt;3 &gt; &#x41;&#66; \"q\" 'a' gr\xc3\xbc\xc3\x9f"
    "e \xe2\x9c\x93 \xf0\x9f\x8e\x89</body><active "
    "xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<iq type='get' id='i1'><query xmlns='jabber:iq:roster' ver='v1'><item "
    "jid='carol@example.org' name='Carol &quot;C&quot; O&apos;Neil'><group>Friends</group>"
    "</item></query></iq>",
    "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"
    "<x:y xmlns:x='urn:x' x:attr='1' plain='2'><x:z>deep <![CDATA[<cdata> & stuff]]> "
    "text</x:z></x:y></presence>",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>"
    "</starttls></stream:features>",
    "<message to='x@y'><body>line1\r\nline2\ttab</body>\n  <thread>t</thread>\n</message>",
    "<r xmlns='urn:xmpp:sm:3'/>",
    "<iq type='result' id='deep'><a xmlns='urn:a'><b><c><d><e xmlns='urn:e' k='v'>"
    "&#x10FFFF;</e></d></c></b></a></iq>",
    /* Tags longer than DEFER_MIN in xstream.c: quotes and '>' inside values,
     * and an end tag padded with whitespace. */
    "<message id='long' a='" Q500 "' b='" Q500 Q500 "' c=\"it's > '" X100 "'\"><body>" X1000 X1000
    "</body></message" S100 S100 S100 S100 S100 S100 S100 S100 S100 S100 S100 S100 ">",
};

static const char *const separators[] = {"\n  ", "", "\t\r\n", " ", "\n\n\n", "", "\n", ""};

static char *realistic_stream(size_t *len_r)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<?xml version='1.0' encoding='UTF-8'?>\n" HEADER);
    for (size_t i = 0; i < PL_ARRAY_LEN(stanzas); i++) {
        buf_append_str(&b, separators[i]);
        buf_append_str(&b, stanzas[i]);
    }
    buf_append_str(&b, "\n</stream:stream>\n");
    return buf_detach(&b, len_r);
}

static void test_open_header(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    assert_string_equal(xstream_default_ns(r.xs), "");
    const char *in = "<?xml version='1.0'?>" HEADER;
    assert_int_equal(feed_steps(&r, in, strlen(in), 0, &err), 0);
    assert_int_equal(r.opens, 1);
    assert_int_equal(r.stanzas, 0);
    assert_string_equal(xstream_default_ns(r.xs), "jabber:client");
    assert_string_equal(buf_cstr(&r.log), "OPEN ns=http://etherx.jabber.org/streams prefix=stream "
                                          "default=jabber:client\n"
                                          "  @|to=example.org\n"
                                          "  @|version=1.0\n"
                                          "  @http://www.w3.org/XML/1998/namespace|lang=en\n");
    rec_fini(&r);
}

/* What stanza i of the realistic stream must parse into. */
static void check_tree(size_t i, const struct xml_node *st, struct arena *a)
{
    const struct xml_node *c;
    switch (i) {
    case 0:
        assert_true(xml_is(st, XML_NS_CLIENT, "message"));
        assert_null(st->prefix);
        assert_string_equal(xml_attr_get(st, "to"), "bob@example.org");
        assert_string_equal(xml_attr_get_ns(st, XML_NS_XML, "lang"), "de");
        assert_null(xml_attr_get(st, "lang"));
        assert_string_equal(xml_child_text(a, st, XML_NS_CLIENT, "body"),
                            "Tom & Jerry <3 > AB \"q\" 'a' gr\xc3\xbc\xc3\x9f"
                            "e \xe2\x9c\x93 \xf0\x9f\x8e\x89");
        /* One text node, however expat split the data. */
        c = xml_child(st, NULL, "body");
        assert_ptr_equal(c->first, c->last);
        assert_non_null(xml_child(st, "http://jabber.org/protocol/chatstates", "active"));
        break;
    case 1:
        c = xml_child(xml_child(st, "jabber:iq:roster", "query"), "jabber:iq:roster", "item");
        assert_string_equal(xml_attr_get(c, "name"), "Carol \"C\" O'Neil");
        assert_string_equal(xml_child_text(a, c, NULL, "group"), "Friends");
        break;
    case 2:
        c = xml_child(st, "urn:x", "y");
        assert_non_null(c);
        assert_string_equal(c->prefix, "x");
        assert_string_equal(xml_attr_get_ns(c, "urn:x", "attr"), "1");
        assert_null(xml_attr_get(c, "attr"));
        assert_string_equal(xml_attr_get(c, "plain"), "2");
        assert_string_equal(xml_child_text(a, c, "urn:x", "z"), "deep <cdata> & stuff text");
        break;
    case 3:
        assert_true(xml_is(st, XML_NS_STREAM, "features"));
        assert_string_equal(st->prefix, "stream");
        assert_non_null(
            xml_child(xml_child(st, "urn:ietf:params:xml:ns:xmpp-tls", NULL), NULL, "required"));
        break;
    case 4:
        /* Line ends normalised; whitespace-only text between children kept. */
        assert_string_equal(xml_child_text(a, st, NULL, "body"), "line1\nline2\ttab");
        assert_int_equal(st->first->next->kind, XML_TEXT);
        assert_string_equal(st->first->next->text, "\n  ");
        break;
    case 5:
        assert_true(xml_is(st, "urn:xmpp:sm:3", "r"));
        assert_null(st->first);
        break;
    case 6:
        c = xml_child(st, "urn:a", "a");
        for (const char *n = "bcd"; *n; n++)
            c = xml_child(c, "urn:a", (char[]){*n, 0});
        c = xml_child(c, "urn:e", "e");
        assert_string_equal(xml_attr_get(c, "k"), "v");
        assert_string_equal(xml_text(a, c), "\xf4\x8f\xbf\xbf");
        break;
    case 7:
        assert_string_equal(xml_attr_get(st, "a"), Q500);
        assert_string_equal(xml_attr_get(st, "c"), "it's > '" X100 "'");
        assert_string_equal(xml_attr_get(st, "b"), Q500 Q500);
        assert_string_equal(xml_child_text(a, st, NULL, "body"), X1000 X1000);
        break;
    default:
        fail();
    }
}

static void test_tree(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    size_t len;
    char *in = realistic_stream(&len);
    rec_init(&r, NULL, 0);
    r.keep = arena_new(0);

    /* Feed up to the end of each stanza and look at the tree it produced. */
    const char *p = in;
    for (size_t i = 0; i < PL_ARRAY_LEN(stanzas); i++) {
        const char *at = strstr(p, stanzas[i]);
        assert_non_null(at);
        const char *end = at + strlen(stanzas[i]);
        assert_int_equal(feed_steps(&r, p, (size_t)(end - p), 0, &err), 0);
        p = end;
        assert_int_equal(r.stanzas, (int)i + 1);
        assert_string_equal(buf_cstr(&r.last_raw), stanzas[i]);
        check_tree(i, r.last, r.keep);
    }
    assert_int_equal(r.closes, 0);
    assert_int_equal(feed_steps(&r, p, strlen(p), 0, &err), 0);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.stanzas, (int)PL_ARRAY_LEN(stanzas));
    free(in);
    rec_fini(&r);
}

/* The same events, trees and raw bytes whatever the chunking; and each
 * stanza is delivered by the feed that brings its last byte, never later. */
static void test_chunking_equivalence(void **state)
{
    (void)state;
    static const size_t steps[] = {1, 2, 3, 5, 7, 16, 61, 256, 4096};
    static const unsigned flags[] = {0, XSTREAM_SHALLOW};
    size_t len;
    char *in = realistic_stream(&len);
    struct err err;

    size_t ends[PL_ARRAY_LEN(stanzas)];
    const char *at = in;
    for (size_t i = 0; i < PL_ARRAY_LEN(stanzas); i++) {
        at = strstr(at, stanzas[i]);
        assert_non_null(at);
        at += strlen(stanzas[i]);
        ends[i] = (size_t)(at - in);
    }

    for (size_t f = 0; f < PL_ARRAY_LEN(flags); f++) {
        struct rec whole;
        rec_init(&whole, NULL, flags[f]);
        assert_int_equal(feed_steps(&whole, in, len, 0, &err), 0);
        assert_int_equal(whole.opens, 1);
        assert_int_equal(whole.stanzas, (int)PL_ARRAY_LEN(stanzas));
        assert_int_equal(whole.closes, 1);
        assert_int_equal(whole.raw_in_chunk, whole.stanzas); /* zero-copy */

        /* Every RAW line is exactly the input slice. */
        const char *p = buf_cstr(&whole.log);
        for (size_t i = 0; i < PL_ARRAY_LEN(stanzas); i++) {
            p = strstr(p, "\nRAW ");
            assert_non_null(p);
            p += 5;
            assert_memory_equal(p, stanzas[i], strlen(stanzas[i]));
            assert_int_equal(p[strlen(stanzas[i])], '\n');
        }

        for (size_t s = 0; s < PL_ARRAY_LEN(steps); s++) {
            struct rec part;
            rec_init(&part, NULL, flags[f]);
            for (size_t off = 0; off < len; off += steps[s]) {
                size_t n = len - off < steps[s] ? len - off : steps[s];
                assert_int_equal(feed_steps(&part, in + off, n, 0, &err), 0);
                int due = 0;
                while (due < (int)PL_ARRAY_LEN(stanzas) && ends[due] <= off + n)
                    due++;
                if (part.stanzas != due)
                    fail_msg("flags %u step %zu: %d stanzas after %zu bytes, want %d", flags[f],
                             steps[s], part.stanzas, off + n, due);
            }
            if (strcmp(buf_cstr(&part.log), buf_cstr(&whole.log)) != 0)
                fail_msg("flags %u step %zu:\n%s\n--- want\n%s", flags[f], steps[s],
                         buf_cstr(&part.log), buf_cstr(&whole.log));
            rec_fini(&part);
        }
        rec_fini(&whole);
    }
    free(in);
}

/* SHALLOW builds the top element and its attributes only, but raw bytes
 * still carry the children and the children are still checked. */
static void test_shallow(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    rec_init(&r, NULL, XSTREAM_SHALLOW);
    r.keep = arena_new(0);
    const char *st = "<message to='a@b' xml:lang='fr'><body>x</body><x xmlns='urn:x'/></message>";
    assert_int_equal(feed_steps(&r, HEADER, strlen(HEADER), 0, &err), 0);
    assert_int_equal(feed_steps(&r, st, strlen(st), 0, &err), 0);
    assert_int_equal(r.stanzas, 1);
    assert_true(xml_is(r.last, XML_NS_CLIENT, "message"));
    assert_string_equal(xml_attr_get(r.last, "to"), "a@b");
    assert_string_equal(xml_attr_get_ns(r.last, XML_NS_XML, "lang"), "fr");
    assert_null(r.last->first);
    assert_string_equal(buf_cstr(&r.last_raw), st);

    const char *bad = "<message><body><x:y/></body></message>";
    assert_int_equal(feed_steps(&r, bad, strlen(bad), 0, &err), -1);
    assert_int_equal(err.cond, XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX);
    assert_int_equal(r.stanzas, 1);
    rec_fini(&r);
}

/* ---- errors ------------------------------------------------------------ */

struct err_row {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen(in) */
    struct xstream_limits lim;
    unsigned flags;
    enum xmpp_cond want; /* XMPP_COND_NONE: must succeed */
};

#define H           SHORT_HEADER
#define BIG_ATTR(n) "<m a='" n "'/>"

static const struct err_row err_rows[] = {
    /* well-formed streams at the limits */
    {"utf-8 declaration",
     "<?xml version='1.0' encoding='utf-8'?>" H "<m/>",
     0,
     {0},
     0,
     XMPP_COND_NONE},
    {"utf-8 bom", "\xef\xbb\xbf" H "<m/>", 0, {0}, 0, XMPP_COND_NONE},
    {"depth at limit", H "<a><b><c/></b></a>", 0, {.max_depth = 3}, 0, XMPP_COND_NONE},
    {"attrs at limit", H "<a x='1' y='2' xmlns='urn:a'/>", 0, {.max_attrs = 3}, 0, XMPP_COND_NONE},
    /* "<m a='" + 100 + "'/>" is 109 bytes */
    {"stanza at limit", H BIG_ATTR(X100), 0, {.max_stanza = 109}, 0, XMPP_COND_NONE},
    {"cdata", H "<m><![CDATA[<&>]]></m><![CDATA[ \n]]>", 0, {0}, 0, XMPP_COND_NONE},
    {"close and trailing space", H "<m/></s:stream>\n ", 0, {0}, 0, XMPP_COND_NONE},

    {"mismatched tag", H "<message><body></message>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"duplicate attribute", H "<m a='1' a='2'/>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"unquoted attribute", H "<m a=1/>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"invalid utf-8", H "<m>\xc3\x28</m>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"control character", H "<m>\x01</m>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"control character ref", H "<m>&#x1;</m>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"lt in attribute", H "<m a='<'/>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"second root", H "<m/></s:stream><m/>", 0, {0}, 0, XMPP_COND_STREAM_NOT_WELL_FORMED},
    {"late xml declaration",
     H "<?xml version='1.0'?>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_NOT_WELL_FORMED},

    {"root not stream",
     "<foo xmlns='http://etherx.jabber.org/streams'>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_INVALID_NAMESPACE},
    {"stream in wrong ns",
     "<stream:stream xmlns:stream='urn:wrong'>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_INVALID_NAMESPACE},
    {"stream in client ns",
     "<stream xmlns='jabber:client'>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_INVALID_NAMESPACE},
    {"stream without ns", "<stream>", 0, {0}, 0, XMPP_COND_STREAM_INVALID_NAMESPACE},

    {"unbound stream prefix",
     "<stream:stream xmlns='jabber:client'>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX},
    {"unbound element prefix", H "<foo:bar/>", 0, {0}, 0, XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX},
    {"unbound attribute prefix",
     H "<m foo:a='1'/>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_BAD_NAMESPACE_PREFIX},

    {"doctype", "<!DOCTYPE s:stream>" H, 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"doctype with subset",
     "<?xml version='1.0'?><!DOCTYPE s:stream [<!ENTITY e 'x'>]>" H "<m>&e;</m>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_RESTRICTED_XML},
    {"external doctype",
     "<!DOCTYPE s:stream SYSTEM 'http://example.org/x.dtd'>" H,
     0,
     {0},
     0,
     XMPP_COND_STREAM_RESTRICTED_XML},
    {"comment in prolog", "<!-- hi -->" H, 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"comment between stanzas",
     H "<m/><!-- hi --><m/>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_RESTRICTED_XML},
    {"comment in stanza", H "<m><!-- hi --></m>", 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"comment in shallow stanza",
     H "<m><b><!-- hi --></b></m>",
     0,
     {0},
     XSTREAM_SHALLOW,
     XMPP_COND_STREAM_RESTRICTED_XML},
    {"pi in prolog", "<?php echo 1; ?>" H, 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"pi in stanza", H "<m><?foo bar?></m>", 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"undeclared entity in text", H "<m>&foo;</m>", 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"undeclared entity in attr", H "<m a='&foo;'/>", 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"undeclared entity in shallow",
     H "<m><b>&nbsp;</b></m>",
     0,
     {0},
     XSTREAM_SHALLOW,
     XMPP_COND_STREAM_RESTRICTED_XML},

    {"latin-1 declaration",
     "<?xml version='1.0' encoding='ISO-8859-1'?>" H,
     0,
     {0},
     0,
     XMPP_COND_STREAM_UNSUPPORTED_ENCODING},
    {"utf-16 declaration",
     "<?xml version='1.0' encoding='UTF-16'?>" H,
     0,
     {0},
     0,
     XMPP_COND_STREAM_UNSUPPORTED_ENCODING},
    {"unknown encoding",
     "<?xml version='1.0' encoding='EBCDIC-XYZ'?>" H,
     0,
     {0},
     0,
     XMPP_COND_STREAM_UNSUPPORTED_ENCODING},
    {"utf-16le bom", "\xff\xfe<\0s\0", 6, {0}, 0, XMPP_COND_STREAM_UNSUPPORTED_ENCODING},
    {"utf-16be bom", "\xfe\xff\0<\0s", 6, {0}, 0, XMPP_COND_STREAM_UNSUPPORTED_ENCODING},
    {"utf-16be no bom", "\0<\0s", 4, {0}, 0, XMPP_COND_STREAM_UNSUPPORTED_ENCODING},

    {"text between stanzas", H "<m/>hello<m/>", 0, {0}, 0, XMPP_COND_STREAM_BAD_FORMAT},
    {"text before first stanza", H "x", 0, {0}, 0, XMPP_COND_STREAM_BAD_FORMAT},
    {"escaped text between stanzas", H "&amp;", 0, {0}, 0, XMPP_COND_STREAM_BAD_FORMAT},
    {"cdata text between stanzas", H "<![CDATA[x]]>", 0, {0}, 0, XMPP_COND_STREAM_BAD_FORMAT},

    {"stanza over limit",
     H BIG_ATTR(X100 "x"),
     0,
     {.max_stanza = 109},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"stanza over limit by text",
     H "<m>" X100 X100 "</m>",
     0,
     {.max_stanza = 150},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"stanza over limit shallow",
     H "<m><b>" X100 X100 "</b></m>",
     0,
     {.max_stanza = 150},
     XSTREAM_SHALLOW,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"depth over limit",
     H "<a><b><c><d/></c></b></a>",
     0,
     {.max_depth = 3},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"depth over limit shallow",
     H "<a><b><c><d/></c></b></a>",
     0,
     {.max_depth = 3},
     XSTREAM_SHALLOW,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"attrs over limit",
     H "<a x='1' y='2' z='3'/>",
     0,
     {.max_attrs = 2},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"ns decls count as attrs",
     H "<a x='1' y='2' xmlns:p='urn:p'/>",
     0,
     {.max_attrs = 2},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"attrs over limit on child",
     H "<a><b x='1' y='2' z='3'/></a>",
     0,
     {.max_attrs = 2},
     XSTREAM_SHALLOW,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"attrs over limit on header",
     "<s:stream xmlns:s='http://etherx.jabber.org/streams' a='1' b='2'>",
     0,
     {.max_attrs = 2},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"long comment", H "<m><!--" X1000 X1000 "--></m>", 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"long pi", H "<m><?pi " X1000 X1000 "?></m>", 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"long doctype", "<!DOCTYPE s" X1000 X1000 ">" H, 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"long entity", H "<m>&e" X1000 X1000 ";</m>", 0, {0}, 0, XMPP_COND_STREAM_RESTRICTED_XML},
    {"long tag over limit",
     H "<m a='" X1000 X1000 "'/>",
     0,
     {.max_stanza = 1500},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
    {"long header",
     "<s:stream xmlns:s='http://etherx.jabber.org/streams' a='" X1000 X1000 "'>"
     "<m/>",
     0,
     {0},
     0,
     XMPP_COND_NONE},
    {"long empty tag", H "<m a='" X1000 X1000 "' b=\"'>'\"   />", 0, {0}, 0, XMPP_COND_NONE},
    {"default depth limit",
     H "<a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
       "<a><a><a><a><a><a><a><a><a><a><a><a><a>",
     0,
     {0},
     0,
     XMPP_COND_STREAM_POLICY_VIOLATION},
};

static void run_err_row(const struct err_row *row, size_t step)
{
    struct rec r;
    struct err err = {XMPP_COND_NONE, ""};
    rec_init(&r, &row->lim, row->flags);
    int rc = feed_steps(&r, row->in, row->len ? row->len : strlen(row->in), step, &err);
    if (row->want == XMPP_COND_NONE) {
        if (rc != 0)
            fail_msg("%s (step %zu): unexpected %s: %s", row->name, step, xmpp_cond_name(err.cond),
                     err.text);
    } else {
        if (rc != -1)
            fail_msg("%s (step %zu): accepted, want %s", row->name, step,
                     xmpp_cond_name(row->want));
        if (err.cond != row->want)
            fail_msg("%s (step %zu): got %s (%s), want %s", row->name, step,
                     xmpp_cond_name(err.cond), err.text, xmpp_cond_name(row->want));
        assert_true(err.text[0] != '\0');
        /* The stream stays dead. */
        struct err again;
        assert_int_equal(xstream_feed(r.xs, "<m/>", 4, &again), -1);
        assert_int_equal(again.cond, row->want);
    }
    rec_fini(&r);
}

static void test_error_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < PL_ARRAY_LEN(err_rows); i++) {
        run_err_row(&err_rows[i], 0);
        run_err_row(&err_rows[i], 1);
    }
}

/* ---- releasing the parser between stanzas ------------------------------- */

/* Feeds in pieces of step bytes, with or without trying xstream_release
 * after each; returns the event log followed by the result and the error. */
static char *run_logged(const char *in, size_t len, const struct xstream_limits *lim,
                        unsigned flags, size_t step, bool release, int *releases_r)
{
    struct rec r;
    struct err err = {XMPP_COND_NONE, ""};
    rec_init(&r, lim, flags);
    int releases = 0;
    int rc = feed_steps_release(&r, in, len, step, &err, release ? &releases : NULL);
    buf_printf(&r.log, "RESULT %d %s %s\n", rc, rc ? xmpp_cond_name(err.cond) : "-",
               rc ? err.text : "");
    assert_int_equal(r.releases_in_cb, 0);
    if (releases_r != NULL)
        *releases_r = releases;
    char *out = buf_detach(&r.log, NULL);
    rec_fini(&r);
    return out;
}

static void assert_same_with_release(const char *name, const char *in, size_t len,
                                     const struct xstream_limits *lim, unsigned flags, size_t step,
                                     int min_releases)
{
    int releases = 0;
    char *want = run_logged(in, len, lim, flags, step, false, NULL);
    char *got = run_logged(in, len, lim, flags, step, true, &releases);
    if (strcmp(got, want) != 0)
        fail_msg("%s (step %zu, flags %u), with releases:\n%s\n--- without:\n%s", name, step, flags,
                 got, want);
    if (releases < min_releases)
        fail_msg("%s (step %zu): %d releases, want at least %d", name, step, releases,
                 min_releases);
    free(want);
    free(got);
}

/* Prefixes declared on the stream header are used by stanzas after every
 * release, including a URI that only survives if escaped back exactly, and
 * the header's own prefix closes the stream. */
#define PREFIX_HEADER                                                                              \
    "<?xml version='1.0'?>\n<S:stream xmlns:S='http://etherx.jabber.org/streams' "                 \
    "xmlns='jabber:client' xmlns:db=\"jabber:server:dialback\" "                                   \
    "xmlns:odd='urn:a&amp;b&lt;&apos;&quot;&#xA;&#x9;&#xD;c \xc3\xa9' to='example.org' "           \
    "version='1.0'>\n"

static const char prefix_stream[] =
    PREFIX_HEADER "<db:result from='a.example' to='b.example'>key</db:result>\n"
                  "<message><odd:x odd:k='v'><S:text/></odd:x><body>hi</body></message>"
                  "<S:features><odd:y/></S:features>  \r\n"
                  "<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>"
                  "<db:verify id='2'/>\n</S:stream>\n";

static void test_release_equivalence(void **state)
{
    (void)state;
    static const size_t steps[] = {0, 1, 2, 3, 7, 61, 4096};
    static const unsigned flags[] = {0, XSTREAM_SHALLOW};
    size_t len;
    char *realistic = realistic_stream(&len);
    for (size_t f = 0; f < PL_ARRAY_LEN(flags); f++) {
        for (size_t s = 0; s < PL_ARRAY_LEN(steps); s++) {
            /* A byte at a time, the parser is released after every stanza
             * and every whitespace byte between them. */
            assert_same_with_release("realistic", realistic, len, NULL, flags[f], steps[s],
                                     steps[s] == 1 ? (int)PL_ARRAY_LEN(stanzas) : 0);
            assert_same_with_release("prefixes", prefix_stream, sizeof(prefix_stream) - 1, NULL,
                                     flags[f], steps[s], steps[s] == 1 ? 5 : 0);
        }
    }

    /* One feed per stanza, released after each: every stanza is parsed by
     * a rebuilt parser. */
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    r.keep = arena_new(0);
    const char *p = realistic;
    for (size_t i = 0; i < PL_ARRAY_LEN(stanzas); i++) {
        const char *end = strstr(p, stanzas[i]) + strlen(stanzas[i]);
        assert_int_equal(feed_steps(&r, p, (size_t)(end - p), 0, &err), 0);
        p = end;
        assert_string_equal(buf_cstr(&r.last_raw), stanzas[i]);
        check_tree(i, r.last, r.keep);
        assert_true(xstream_release(r.xs));
        assert_true(xstream_release(r.xs)); /* twice is harmless */
        assert_string_equal(xstream_default_ns(r.xs), "jabber:client");
    }
    assert_int_equal(feed_steps(&r, p, strlen(p), 0, &err), 0);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.stanzas, (int)PL_ARRAY_LEN(stanzas));
    free(realistic);
    rec_fini(&r);
}

/* Errors after a release: the same condition and text (line numbers
 * included) as without; every row of the error table too. */
static void test_release_errors(void **state)
{
    (void)state;
    static const char *const streams[] = {
        H "\n<m/>\n\n<m>\n<b></m>",
        H "<m/>\n<foo:bar/>",
        PREFIX_HEADER "<m/>\n<nope:x/>",
        PREFIX_HEADER "<m/>\n<S:x/>hello",
        H "<m/>\n</s:stream><m/>",
        PREFIX_HEADER "<m/></stream:stream>",
        H "<m/>\n<!-- c -->",
        H "<m/>\n<m a='1' a='2'/>",
        H "<m/> \n <m>&e;</m>",
        H "<m/>\n<?xml version='1.0'?>",
    };
    for (size_t i = 0; i < PL_ARRAY_LEN(streams); i++) {
        assert_same_with_release(streams[i], streams[i], strlen(streams[i]), NULL, 0, 1, 1);
        assert_same_with_release(streams[i], streams[i], strlen(streams[i]), NULL, 0, 5, 0);
    }
    /* A limit still counts from the stanza's start. */
    struct xstream_limits lim = {.max_stanza = 109};
    const char *big = H "<m/>\n" BIG_ATTR(X100) "\n" BIG_ATTR(X100 "x");
    assert_same_with_release("limit", big, strlen(big), &lim, 0, 1, 2);
    for (size_t i = 0; i < PL_ARRAY_LEN(err_rows); i++) {
        const struct err_row *row = &err_rows[i];
        size_t len = row->len ? row->len : strlen(row->in);
        assert_same_with_release(row->name, row->in, len, &row->lim, row->flags, 1, 0);
    }
}

/* Streams sharing a pool, fed in turns of step bytes with a release after
 * each turn: each stream's events, bytes and errors are those of the same
 * stream parsed alone without releases. Returns the parsers created. */
static size_t interleave_pooled(const char *const *ins, size_t n, size_t step)
{
    struct rec r[8];
    struct err err[8];
    int rc[8] = {0};
    size_t off[8] = {0};
    PL_ASSERT(n <= PL_ARRAY_LEN(r));
    struct xstream_pool *pool = xstream_pool_new();
    for (size_t i = 0; i < n; i++) {
        rec_init(&r[i], NULL, 0);
        xstream_set_pool(r[i].xs, pool);
        err[i] = (struct err){XMPP_COND_NONE, ""};
    }
    for (bool more = true; more;) {
        more = false;
        for (size_t i = 0; i < n; i++) {
            size_t len = strlen(ins[i]);
            if (rc[i] != 0 || off[i] >= len)
                continue;
            size_t k = len - off[i] < step ? len - off[i] : step;
            rc[i] = feed_steps_release(&r[i], ins[i] + off[i], k, 0, &err[i], &(int){0});
            off[i] += k;
            more = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        buf_printf(&r[i].log, "RESULT %d %s %s\n", rc[i], rc[i] ? xmpp_cond_name(err[i].cond) : "-",
                   rc[i] ? err[i].text : "");
        char *want = run_logged(ins[i], strlen(ins[i]), NULL, 0, step, false, NULL);
        if (strcmp(buf_cstr(&r[i].log), want) != 0)
            fail_msg("stream %zu (step %zu), pooled:\n%s\n--- alone:\n%s", i, step,
                     buf_cstr(&r[i].log), want);
        free(want);
    }
    size_t lent, idle, created;
    xstream_pool_stats(pool, &lent, &idle, &created);
    /* The pool outlives its creator's reference until its last stream. */
    xstream_pool_free(&pool);
    assert_null(pool);
    for (size_t i = 0; i < n; i++)
        rec_fini(&r[i]);
    return created;
}

static void test_pool_shared(void **state)
{
    (void)state;
    static const size_t steps[] = {1, 3, 16, 200, 4096};
    size_t len;
    char *realistic = realistic_stream(&len);
    /* The same header three times, other headers, and streams that fail
     * after a few stanzas (streams that end or fail keep their engine). */
    const char *const ins[] = {
        realistic,
        prefix_stream,
        realistic,
        H "<m/>\n<m>\n<x:y xmlns:x='urn:x'/></m>\n<foo:bar/>",
        realistic,
        PREFIX_HEADER "<m/>\n<odd:a/>\n\n<m>\n<b></m>",
        "<?xml version='1.0'?>\n" HEADER "<iq id='1'/>\n <iq id='2'/>",
    };
    for (size_t s = 0; s < PL_ARRAY_LEN(steps); s++) {
        (void)interleave_pooled(ins, PL_ARRAY_LEN(ins), steps[s]);
    }
    /* Stanza by stanza in turns, one engine serves every stream. */
    const char *const same[] = {HEADER "<a/>", HEADER "<b/>", HEADER "<c/>"};
    assert_int_equal(interleave_pooled(same, PL_ARRAY_LEN(same), strlen(HEADER)), 1);
    free(realistic);
}

/* Idle parsers the streams stopped taking are trimmed; a parser that has
 * parsed a lot is freed instead of pooled. */
static void test_pool_trim_and_retire(void **state)
{
    (void)state;
    struct xstream_pool *pool = xstream_pool_new();
    struct rec r[3];
    struct err err;
    size_t lent, idle, created;
    for (size_t i = 0; i < PL_ARRAY_LEN(r); i++) {
        rec_init(&r[i], NULL, 0);
        xstream_set_pool(r[i].xs, pool);
        /* All inside a stanza at once: three engines. */
        assert_int_equal(feed_steps(&r[i], H "<m>", strlen(H "<m>"), 0, &err), 0);
    }
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(lent, 3);
    for (size_t i = 0; i < PL_ARRAY_LEN(r); i++) {
        assert_false(xstream_release(r[i].xs));
        assert_int_equal(feed_steps(&r[i], "</m>", 4, 0, &err), 0);
        assert_true(xstream_release(r[i].xs));
    }
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(lent, 0);
    assert_int_equal(idle, 3);
    assert_int_equal(created, 3);
    /* One stream active between trims: one engine stays. */
    xstream_pool_trim(pool);
    assert_int_equal(feed_steps(&r[0], "<m/>", 4, 0, &err), 0);
    assert_true(xstream_release(r[0].xs));
    xstream_pool_trim(pool);
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(idle, 1);
    xstream_pool_trim(pool);
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(idle, 0);
    /* Parsing goes on with a new engine. */
    assert_int_equal(feed_steps(&r[1], "<n/>", 4, 0, &err), 0);
    assert_string_equal(buf_cstr(&r[1].last_raw), "<n/>");
    assert_true(xstream_release(r[1].xs));
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(idle, 1);
    assert_int_equal(created, 4);

    /* More than 256 KiB through one engine: freed at the release. */
    struct buf big = BUF_INIT;
    while (big.len < (300u << 10))
        buf_append_str(&big, "<message to='a@b'><body>" X100 "</body></message>");
    assert_int_equal(feed_steps(&r[2], big.data, big.len, 4096, &err), 0);
    assert_true(xstream_release(r[2].xs));
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(idle, 0);
    assert_int_equal(feed_steps(&r[2], "<o/>", 4, 0, &err), 0);
    assert_string_equal(buf_cstr(&r[2].last_raw), "<o/>");
    assert_true(xstream_release(r[2].xs));
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(created, 5);
    buf_fini(&big);

    /* A stream that failed or ended gives its engine back restarted: a new
     * stream parses its own header with it. */
    assert_int_equal(feed_steps(&r[0], "<m a='1' a='2'/>", 16, 0, &err), -1);
    rec_fini(&r[0]);
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(idle, 1);
    rec_init(&r[0], NULL, 0);
    xstream_set_pool(r[0].xs, pool);
    assert_int_equal(feed_steps(&r[0], SHORT_HEADER "<p/>", strlen(SHORT_HEADER "<p/>"), 0, &err),
                     0);
    assert_int_equal(r[0].opens, 1);
    assert_string_equal(buf_cstr(&r[0].last_raw), "<p/>");
    xstream_pool_stats(pool, &lent, &idle, &created);
    assert_int_equal(created, 5);

    xstream_pool_free(&pool);
    for (size_t i = 0; i < PL_ARRAY_LEN(r); i++)
        rec_fini(&r[i]);
}

/* When a release is refused: nothing changes and parsing goes on. */
static void test_release_refused(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool released;
    } rows[] = {
        {"", true},                        /* nothing fed: no parser yet */
        {"<?xml version='1.0'?>", false},  /* still before it */
        {H "<message", false},             /* a partial start tag */
        {H "<m>", false},                  /* inside a stanza */
        {H "<m>hi</m", false},             /* a partial end tag */
        {H "<m/>\r", false},               /* a CR expat keeps for a following LF */
        {H "<![CDATA[ ", false},           /* inside a CDATA section between stanzas */
        {H "<m/></s:stream>", false},      /* after the end of the stream */
        {H "<m/><m a='1' a='1'/>", false}, /* after a failure */
        {H, true},
        {H "<m/> \n", true},
    };
    for (size_t i = 0; i < PL_ARRAY_LEN(rows); i++) {
        struct rec r;
        struct err err;
        rec_init(&r, NULL, 0);
        (void)feed_steps(&r, rows[i].in, strlen(rows[i].in), 0, &err);
        if (xstream_release(r.xs) != rows[i].released)
            fail_msg("row %zu \"%s\": release %s", i, rows[i].in,
                     rows[i].released ? "refused" : "accepted");
        rec_fini(&r);
    }

    /* Refused inside a stanza, then accepted once it is complete. */
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    assert_int_equal(feed_steps(&r, H "<m><b>", strlen(H "<m><b>"), 0, &err), 0);
    assert_false(xstream_release(r.xs));
    assert_int_equal(feed_steps(&r, "x</b></m>", 9, 0, &err), 0);
    assert_true(xstream_release(r.xs));
    assert_int_equal(feed_steps(&r, "<n/>", 4, 0, &err), 0);
    assert_int_equal(r.stanzas, 2);
    assert_string_equal(buf_cstr(&r.last_raw), "<n/>");

    /* A reset after a release expects a new header, as without. */
    assert_true(xstream_release(r.xs));
    xstream_reset(r.xs);
    assert_string_equal(xstream_default_ns(r.xs), "");
    assert_int_equal(feed_steps(&r, H "<o/>", strlen(H "<o/>"), 0, &err), 0);
    assert_int_equal(r.opens, 2);
    assert_int_equal(r.stanzas, 3);
    assert_string_equal(buf_cstr(&r.last_raw), "<o/>");
    rec_fini(&r);
}

static void test_not_well_formed_text(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    const char *in = H "\n<m>\n<b></m>";
    assert_int_equal(feed_steps(&r, in, strlen(in), 0, &err), -1);
    assert_int_equal(err.cond, XMPP_COND_STREAM_NOT_WELL_FORMED);
    assert_non_null(strstr(err.text, "mismatched tag"));
    assert_non_null(strstr(err.text, "line 3"));
    rec_fini(&r);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define LAUGHS                                                                                     \
    "<?xml version='1.0'?>\n"                                                                      \
    "<!DOCTYPE s:stream [\n"                                                                       \
    " <!ENTITY lol 'lol'>\n"                                                                       \
    " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"                       \
    " <!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>\n"             \
    " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"             \
    " <!ENTITY lol4 '&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;'>\n"             \
    " <!ENTITY lol5 '&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;'>\n"             \
    " <!ENTITY lol6 '&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;'>\n"             \
    " <!ENTITY lol7 '&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;'>\n"             \
    " <!ENTITY lol8 '&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;'>\n"             \
    " <!ENTITY lol9 '&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;'>\n"             \
    "]>\n" SHORT_HEADER "<message><body>&lol9;</body></message><m a='&lol9;'/>"

static void test_billion_laughs(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    double t0 = now();
    assert_int_equal(feed_steps(&r, LAUGHS, strlen(LAUGHS), 0, &err), -1);
    double elapsed = now() - t0;
    assert_int_equal(err.cond, XMPP_COND_STREAM_RESTRICTED_XML);
    assert_int_equal(r.opens, 0);
    assert_int_equal(r.stanzas, 0);
    assert_true(elapsed < 0.5);
    rec_fini(&r);

    /* Refused as soon as the DOCTYPE opens, before any declaration is read. */
    const char *prefix = strstr(LAUGHS, "[") + 1;
    rec_init(&r, NULL, 0);
    assert_int_equal(feed_steps(&r, LAUGHS, (size_t)(prefix - LAUGHS), 0, &err), -1);
    assert_int_equal(err.cond, XMPP_COND_STREAM_RESTRICTED_XML);
    rec_fini(&r);
}

/* A 10 MB stanza arriving in 1 KiB pieces fails as soon as it crosses the
 * limit, without the rest being fed or buffered. */
static void test_oversize_in_pieces(void **state)
{
    (void)state;
    static const char *const openers[] = {
        "<message><body>", /* big text */
        "<message a='",    /* a start tag that never ends */
        "<message>",       /* many small children */
    };
    static const unsigned flags[] = {0, XSTREAM_SHALLOW};
    const size_t total = 10u << 20, piece = 1024, max = 65536;
    char chunk[1024];
    for (size_t o = 0; o < PL_ARRAY_LEN(openers); o++) {
        for (size_t f = 0; f < PL_ARRAY_LEN(flags); f++) {
            struct rec r;
            struct err err;
            rec_init(&r, NULL, flags[f]);
            assert_int_equal(xstream_feed(r.xs, HEADER, strlen(HEADER), &err), 0);
            assert_int_equal(xstream_feed(r.xs, openers[o], strlen(openers[o]), &err), 0);
            if (o == 2) {
                for (size_t i = 0; i + 4 <= sizeof(chunk); i += 4)
                    memcpy(chunk + i, "<b/>", 4);
            } else {
                memset(chunk, 'x', sizeof(chunk));
            }
            size_t fed = 0;
            int rc = 0;
            while (fed < total && (rc = xstream_feed(r.xs, chunk, piece, &err)) == 0)
                fed += piece;
            assert_int_equal(rc, -1);
            assert_int_equal(err.cond, XMPP_COND_STREAM_POLICY_VIOLATION);
            assert_true(fed <= max);
            assert_true(fed + piece + strlen(openers[o]) > max);
            assert_int_equal(r.stanzas, 0);
            rec_fini(&r);
        }
    }
}

/* A start tag near the size limit sent a byte at a time costs linear time:
 * expat alone would rescan the partial tag on every byte. */
static void test_long_tag_linear(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    rec_init(&r, NULL, XSTREAM_SHALLOW);
    struct buf in = BUF_INIT;
    buf_append_str(&in, H "<message a='");
    for (int i = 0; i < 60000; i++)
        buf_append_char(&in, i % 100 == 0 ? '"' : 'x');
    buf_append_str(&in, "'><body>hi</body></message>");
    double t0 = now();
    assert_int_equal(feed_steps(&r, in.data, in.len, 1, &err), 0);
    double elapsed = now() - t0;
    assert_int_equal(r.stanzas, 1);
    assert_int_equal(r.last_raw.len, in.len - strlen(H));
    assert_true(elapsed < 1.0);
    buf_fini(&in);
    rec_fini(&r);
}

/* Whitespace keepalives forever do not add up to a stanza. */
static void test_keepalives(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    struct xstream_limits lim = {.max_stanza = 200};
    rec_init(&r, &lim, 0);
    assert_int_equal(feed_steps(&r, H, strlen(H), 0, &err), 0);
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(xstream_feed(r.xs, i % 2 ? " " : "\n", 1, &err), 0);
        if (i % 1000 == 0)
            assert_int_equal(xstream_feed(r.xs, "<m/>", 4, &err), 0);
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(feed_steps(&r, "<![CDATA[]]>", 12, 0, &err), 0);
    assert_int_equal(feed_steps(&r, "<m>x</m>", 8, 1, &err), 0);
    assert_int_equal(r.stanzas, 6);
    assert_string_equal(buf_cstr(&r.last_raw), "<m>x</m>");
    rec_fini(&r);
}

/* ---- callbacks, close, reset ------------------------------------------- */

static void test_callback_fail(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    const char *in = H "<m id='1'/><m id='2'/><m id='3'/>";

    rec_init(&r, NULL, 0);
    r.fail_at = 2;
    assert_int_equal(feed_steps(&r, in, strlen(in), 0, &err), -1);
    assert_int_equal(err.cond, XMPP_COND_STREAM_NOT_AUTHORIZED);
    assert_string_equal(err.text, "refused stanza 2");
    assert_int_equal(r.stanzas, 2); /* the third was never delivered */
    assert_int_equal(xstream_feed(r.xs, " ", 1, &err), -1);
    assert_int_equal(err.cond, XMPP_COND_STREAM_NOT_AUTHORIZED);
    rec_fini(&r);

    rec_init(&r, NULL, 0);
    r.fail_at = 1;
    r.fail_silently = true;
    assert_int_equal(feed_steps(&r, in, strlen(in), 1, &err), -1);
    assert_int_equal(err.cond, XMPP_COND_STREAM_UNDEFINED_CONDITION);
    assert_int_equal(r.stanzas, 1);
    rec_fini(&r);

    rec_init(&r, NULL, 0);
    r.refuse_open = true;
    assert_int_equal(feed_steps(&r, in, strlen(in), 0, &err), -1);
    assert_int_equal(err.cond, XMPP_COND_STREAM_HOST_UNKNOWN);
    assert_string_equal(err.text, "no such host");
    assert_int_equal(r.stanzas, 0);
    rec_fini(&r);
}

static void test_reset(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    const char *s1 = H "<m id='1'/><m id='2'/></s:stream>";
    assert_int_equal(feed_steps(&r, s1, strlen(s1), 0, &err), 0);
    assert_int_equal(r.closes, 1);
    assert_int_equal(r.stanzas, 2);

    /* After a reset a new header (and XML declaration) is expected. */
    xstream_reset(r.xs);
    assert_string_equal(xstream_default_ns(r.xs), "");
    const char *s2 = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams'><m id='3'/>";
    assert_int_equal(feed_steps(&r, s2, strlen(s2), 3, &err), 0);
    assert_int_equal(r.opens, 2);
    assert_int_equal(r.stanzas, 3);
    assert_string_equal(xstream_default_ns(r.xs), "jabber:server");
    assert_string_equal(buf_cstr(&r.last_raw), "<m id='3'/>");

    /* A failed stream comes back to life. */
    assert_int_equal(feed_steps(&r, "<m>", 3, 0, &err), 0);
    assert_int_equal(feed_steps(&r, "</x>", 4, 0, &err), -1);
    xstream_reset(r.xs);
    assert_int_equal(feed_steps(&r, s1, strlen(s1), 0, &err), 0);
    assert_int_equal(r.stanzas, 5);
    assert_string_equal(xstream_default_ns(r.xs), "jabber:client");
    rec_fini(&r);
}

/* xstream_reset from on_stanza (after <starttls/> or SASL success): the
 * rest of that chunk is dropped and the next bytes must be a new header. */
static void test_reset_from_callback(void **state)
{
    (void)state;
    static const size_t steps[] = {0, 1, 7};
    const char *before = H "<m id='1'/><starttls/>";
    const char *after = H "<m id='3'/>";
    for (size_t s = 0; s < PL_ARRAY_LEN(steps); s++) {
        struct rec r;
        struct err err;
        rec_init(&r, NULL, 0);
        r.reset_at = 2;
        assert_int_equal(feed_steps(&r, before, strlen(before), steps[s], &err), 0);
        assert_int_equal(r.stanzas, 2);
        assert_int_equal(feed_steps(&r, after, strlen(after), steps[s], &err), 0);
        assert_int_equal(r.opens, 2);
        assert_int_equal(r.stanzas, 3);
        assert_string_equal(buf_cstr(&r.last_raw), "<m id='3'/>");
        rec_fini(&r);
    }

    /* Bytes after the reset point in the same chunk are discarded: here they
     * would be a stanza injected before the TLS handshake. */
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    r.reset_at = 2;
    const char *in = H "<m id='1'/><starttls/><injected/>";
    assert_int_equal(feed_steps(&r, in, strlen(in), 0, &err), 0);
    assert_int_equal(r.stanzas, 2);
    assert_int_equal(feed_steps(&r, after, strlen(after), 0, &err), 0);
    assert_int_equal(r.opens, 2);
    assert_int_equal(r.stanzas, 3);
    assert_null(strstr(buf_cstr(&r.log), "injected"));
    assert_string_equal(buf_cstr(&r.last_raw), "<m id='3'/>");
    rec_fini(&r);
}

/* The stanza arena is reset after each stanza and reaches a steady size. */
static void test_arena_steady(void **state)
{
    (void)state;
    struct rec r;
    struct err err;
    rec_init(&r, NULL, 0);
    assert_int_equal(feed_steps(&r, H, strlen(H), 0, &err), 0);
    const char *st = "<message to='a@b' from='c@d/e' id='x'><body>hello</body></message>";
    size_t footprint = 0;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(xstream_feed(r.xs, st, strlen(st), &err), 0);
        assert_int_equal(arena_used(xstream_arena(r.xs)), 0);
        if (i == 10)
            footprint = arena_footprint(xstream_arena(r.xs));
        else if (i > 10)
            assert_int_equal(arena_footprint(xstream_arena(r.xs)), footprint);
    }
    assert_true(footprint > 0);
    assert_int_equal(r.stanzas, 2000);
    rec_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_header),          cmocka_unit_test(test_tree),
        cmocka_unit_test(test_chunking_equivalence), cmocka_unit_test(test_shallow),
        cmocka_unit_test(test_error_table),          cmocka_unit_test(test_not_well_formed_text),
        cmocka_unit_test(test_billion_laughs),       cmocka_unit_test(test_oversize_in_pieces),
        cmocka_unit_test(test_long_tag_linear),      cmocka_unit_test(test_keepalives),
        cmocka_unit_test(test_callback_fail),        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_reset_from_callback),  cmocka_unit_test(test_arena_steady),
        cmocka_unit_test(test_release_equivalence),  cmocka_unit_test(test_release_errors),
        cmocka_unit_test(test_release_refused),      cmocka_unit_test(test_pool_shared),
        cmocka_unit_test(test_pool_trim_and_retire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
