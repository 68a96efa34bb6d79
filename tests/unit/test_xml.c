/* SPDX-License-Identifier: MIT */
/* Unit tests for the stanza tree and serialiser (libcommon/xml.c): builder,
 * lookup, deep copy, an escaping table, namespace scoping, and golden
 * round-trip files in tests/unit/xml/ (parsed with xstream). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <dirent.h>

#include <cmocka.h>

#include "arena.h"
#include "attr.h"
#include "buf.h"
#include "err.h"
#include "xml.h"
#include "xstream.h"

#define NS_ROSTER "jabber:iq:roster"
#define NS_X      "urn:example:x"
#define NS_Y      "urn:example:y"
#define NS_TLS    "urn:ietf:params:xml:ns:xmpp-tls"

static char *serialize(const struct xml_node *n, const char *parent_ns)
{
    struct buf b = BUF_INIT;
    xml_serialize(&b, n, parent_ns);
    return buf_detach(&b, NULL);
}

static void assert_serializes(const struct xml_node *n, const char *parent_ns, const char *want)
{
    char *got = serialize(n, parent_ns);
    assert_string_equal(got, want);
    free(got);
}

/* ---- builder and lookup ------------------------------------------------ */

static void test_build_lookup(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct xml_node *m = xml_elem_new(a, XML_NS_CLIENT, "message");
    assert_int_equal(m->kind, XML_ELEM);
    assert_string_equal(m->ns, XML_NS_CLIENT);
    assert_string_equal(m->name, "message");
    assert_null(m->parent);

    struct xml_node *body = xml_elem_add(a, m, NULL, "body");
    struct xml_node *x1 = xml_elem_add(a, m, NS_X, "x");
    xml_text_add(a, m, "between", 7);
    struct xml_node *x2 = xml_elem_add(a, m, NS_X, "x");
    struct xml_node *y = xml_elem_add(a, m, NS_Y, "x");
    assert_string_equal(body->ns, XML_NS_CLIENT); /* NULL ns inherits */
    assert_ptr_equal(body->parent, m);

    assert_ptr_equal(xml_child(m, NULL, NULL), body);
    assert_ptr_equal(xml_child(m, NS_X, "x"), x1);
    assert_ptr_equal(xml_next(x1, NS_X, "x"), x2);
    assert_null(xml_next(x2, NS_X, "x"));
    assert_ptr_equal(xml_next(x2, NULL, "x"), y);
    assert_ptr_equal(xml_child(m, NS_Y, NULL), y);
    assert_null(xml_child(m, NS_Y, "body"));
    assert_null(xml_child(m, "urn:none", NULL));
    assert_null(xml_child(body, NULL, NULL));

    /* Element iteration skips the text node. */
    const struct xml_node *want[] = {body, x1, x2, y};
    size_t i = 0;
    for (struct xml_node *c = xml_first_elem(m); c != NULL; c = xml_next_elem(c)) {
        assert_true(i < PL_ARRAY_LEN(want));
        assert_ptr_equal(c, want[i++]);
    }
    assert_int_equal(i, PL_ARRAY_LEN(want));

    assert_true(xml_is(m, XML_NS_CLIENT, "message"));
    assert_true(xml_is(m, NULL, "message"));
    assert_true(xml_is(m, XML_NS_CLIENT, NULL));
    assert_false(xml_is(m, XML_NS_SERVER, "message"));
    assert_false(xml_is(m, XML_NS_CLIENT, "iq"));
    assert_false(xml_is(NULL, NULL, NULL));
    assert_false(xml_is(x1->next, NULL, NULL)); /* the text node */
    arena_free(&a);
}

static void test_attrs(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct xml_node *n = xml_elem_new(a, XML_NS_CLIENT, "iq");
    assert_null(xml_attr_get(n, "id"));

    char value[8] = "v1";
    xml_attr_set(a, n, "id", value);
    strcpy(value, "XX"); /* the value was copied */
    assert_string_equal(xml_attr_get(n, "id"), "v1");
    xml_attr_set(a, n, "type", "get");
    xml_attr_set_ns(a, n, XML_NS_XML, "lang", "en");
    xml_attr_set_ns(a, n, NS_X, "id", "namespaced");
    assert_int_equal(n->nattrs, 4);

    /* Unqualified and namespaced attributes of the same name are distinct. */
    assert_string_equal(xml_attr_get(n, "id"), "v1");
    assert_string_equal(xml_attr_get_ns(n, NS_X, "id"), "namespaced");
    assert_string_equal(xml_attr_get_ns(n, NULL, "id"), "v1");
    assert_string_equal(xml_attr_get_ns(n, "", "id"), "v1");
    assert_string_equal(xml_attr_get_ns(n, XML_NS_XML, "lang"), "en");
    assert_null(xml_attr_get(n, "lang"));

    /* Replace keeps the count; growth past the initial capacity keeps all. */
    xml_attr_set(a, n, "id", "v2");
    assert_int_equal(n->nattrs, 4);
    assert_string_equal(xml_attr_get(n, "id"), "v2");
    char name[16];
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        xml_attr_set(a, n, name, name);
    }
    assert_int_equal(n->nattrs, 24);
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "a%d", i);
        assert_string_equal(xml_attr_get(n, name), name);
    }
    assert_string_equal(xml_attr_get(n, "type"), "get");

    /* NULL removes; removing a missing attribute is a no-op. */
    xml_attr_set(a, n, "type", NULL);
    assert_null(xml_attr_get(n, "type"));
    assert_int_equal(n->nattrs, 23);
    xml_attr_set(a, n, "type", NULL);
    assert_int_equal(n->nattrs, 23);
    xml_attr_set_ns(a, n, NS_X, "id", NULL);
    assert_null(xml_attr_get_ns(n, NS_X, "id"));
    assert_string_equal(xml_attr_get(n, "id"), "v2");
    assert_string_equal(xml_attr_get(n, "a19"), "a19");
    arena_free(&a);
}

static void test_text(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct xml_node *m = xml_elem_new(a, XML_NS_CLIENT, "message");
    assert_string_equal(xml_text(a, m), "");
    assert_null(xml_child_text(a, m, NULL, "body"));

    struct xml_node *body = xml_elem_add(a, m, NULL, "body");
    assert_string_equal(xml_child_text(a, m, NULL, "body"), "");

    /* Adjacent text merges into one node, which xml_text returns in place. */
    xml_text_add(a, body, "hello", 5);
    xml_text_add(a, body, ", world!!", 7);
    xml_text_add(a, body, "", 0);
    assert_ptr_equal(body->first, body->last);
    assert_int_equal(body->first->kind, XML_TEXT);
    assert_null(body->first->name);
    assert_int_equal(body->first->text_len, 12);
    assert_ptr_equal(xml_text(a, body), body->first->text);
    assert_string_equal(xml_child_text(a, m, XML_NS_CLIENT, "body"), "hello, world");

    /* Text split by an element is concatenated into a copy. */
    struct xml_node *p = xml_elem_new(a, "urn:p", "p");
    xml_text_add(a, p, "one ", 4);
    xml_elem_add(a, p, NULL, "b");
    xml_text_add(a, p, "two", 3);
    assert_ptr_not_equal(p->first, p->last);
    assert_string_equal(xml_text(a, p), "one two");

    /* Binary-safe: embedded NUL kept with its length. */
    struct xml_node *bin = xml_elem_new(a, "", "bin");
    xml_text_add(a, bin, "a\0b", 3);
    assert_int_equal(bin->first->text_len, 3);
    assert_memory_equal(bin->first->text, "a\0b", 4);
    arena_free(&a);
}

static void test_append_remove(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct xml_node *r = xml_elem_new(a, "urn:r", "r");
    struct xml_node *c1 = xml_elem_add(a, r, NULL, "c1");
    struct xml_node *c2 = xml_elem_add(a, r, NULL, "c2");
    struct xml_node *c3 = xml_elem_add(a, r, NULL, "c3");
    assert_serializes(r, NULL, "<r xmlns='urn:r'><c1/><c2/><c3/></r>");

    xml_remove(c2); /* middle */
    assert_null(c2->parent);
    assert_null(c2->next);
    assert_serializes(r, NULL, "<r xmlns='urn:r'><c1/><c3/></r>");
    xml_remove(c3); /* last: last pointer moves back */
    assert_ptr_equal(r->last, c1);
    xml_append(r, c3);
    assert_serializes(r, NULL, "<r xmlns='urn:r'><c1/><c3/></r>");
    xml_remove(c1); /* first */
    assert_ptr_equal(r->first, c3);
    xml_append(c3, c2);
    xml_append(c3, c1);
    assert_serializes(r, "urn:r", "<r><c3><c2/><c1/></c3></r>");
    xml_remove(c3);
    xml_remove(c3); /* detached: no-op */
    assert_null(r->first);
    assert_null(r->last);
    assert_serializes(r, "urn:r", "<r/>");
    arena_free(&a);
}

static void test_copy(void **state)
{
    (void)state;
    struct arena *src = arena_new(0), *dst = arena_new(0);
    struct xml_node *iq = xml_elem_new(src, XML_NS_CLIENT, "iq");
    xml_attr_set(src, iq, "type", "result");
    xml_attr_set_ns(src, iq, XML_NS_XML, "lang", "en");
    struct xml_node *q = xml_elem_add(src, iq, NS_ROSTER, "query");
    struct xml_node *it = xml_elem_add(src, q, NULL, "item");
    xml_attr_set(src, it, "jid", "a@b");
    xml_text_add(src, it, "x & y", 5);
    struct xml_node *f = xml_elem_add(src, iq, XML_NS_STREAM, "features");
    f->prefix = "stream";

    char *before = serialize(iq, XML_NS_CLIENT);
    struct xml_node *c = xml_node_copy(dst, iq);
    assert_null(c->parent);
    assert_ptr_not_equal(c, iq);
    assert_ptr_not_equal(c->attrs, iq->attrs);
    assert_ptr_not_equal(c->first->first->first->text, it->first->text);
    /* Scribble over and free the source: the copy must not share memory. */
    memset(it->first->text, 'Z', it->first->text_len);
    arena_free(&src);
    char *after = serialize(c, XML_NS_CLIENT);
    assert_string_equal(after, before);
    assert_string_equal(after, "<iq type='result' xml:lang='en'><query xmlns='jabber:iq:roster'>"
                               "<item jid='a@b'>x &amp; y</item></query><stream:features "
                               "xmlns:stream='http://etherx.jabber.org/streams'/></iq>");
    free(before);
    free(after);
    arena_free(&dst);
}

/* ---- escaping ---------------------------------------------------------- */

#define FFFD "\xEF\xBF\xBD"

struct escape_row {
    const char *name;
    const char *in;
    size_t len; /* 0: strlen(in) */
    bool attr;
    const char *want;
};

static const struct escape_row escape_rows[] = {
    {"empty text", "", 0, false, ""},
    {"plain", "hello world", 0, false, "hello world"},
    {"markup in text", "a&b<c>d", 0, false, "a&amp;b&lt;c&gt;d"},
    {"markup in attr", "a&b<c>d", 0, true, "a&amp;b&lt;c&gt;d"},
    {"quotes in text stay", "'\"", 0, false, "'\""},
    {"quotes in attr", "it's \"x\"", 0, true, "it&apos;s &quot;x&quot;"},
    {"cdata end in text", "]]>", 0, false, "]]&gt;"},
    {"entity-like text", "&amp;", 0, false, "&amp;amp;"},
    {"tab lf in text stay", "a\tb\nc", 0, false, "a\tb\nc"},
    {"cr in text", "a\rb", 0, false, "a&#xD;b"},
    {"whitespace in attr", "a\tb\nc\rd", 0, true, "a&#x9;b&#xA;c&#xD;d"},
    {"NUL", "a\0b", 3, false, "a" FFFD "b"},
    {"C0 control", "\x01\x08\x0b\x0c\x1f", 0, true, FFFD FFFD FFFD FFFD FFFD},
    {"DEL allowed", "\x7f", 0, false, "\x7f"},
    {"C1 control allowed", "\xc2\x85", 0, false, "\xc2\x85"},
    {"latin",
     "gr\xc3\xbc\xc3\x9f"
     "e",
     0, true,
     "gr\xc3\xbc\xc3\x9f"
     "e"},
    {"euro", "\xe2\x82\xac", 0, false, "\xe2\x82\xac"},
    {"emoji", "\xf0\x9f\x8e\x89", 0, false, "\xf0\x9f\x8e\x89"},
    {"max code point", "\xf4\x8f\xbf\xbf", 0, false, "\xf4\x8f\xbf\xbf"},
    {"U+FFFD itself", FFFD, 0, false, FFFD},
    {"truncated sequence", "a\xc3", 0, false, "a" FFFD},
    {"truncated 3-byte",
     "\xe2\x82"
     "x",
     0, false, FFFD FFFD "x"},
    {"lone continuation", "\x80", 0, false, FFFD},
    {"overlong 2-byte", "\xc0\xaf", 0, false, FFFD FFFD},
    {"overlong 3-byte", "\xe0\x80\xaf", 0, false, FFFD FFFD FFFD},
    {"surrogate", "\xed\xa0\x80", 0, false, FFFD FFFD FFFD},
    {"U+FFFE", "\xef\xbf\xbe", 0, false, FFFD FFFD FFFD},
    {"U+FFFF", "\xef\xbf\xbf", 0, false, FFFD FFFD FFFD},
    {"beyond U+10FFFF", "\xf4\x90\x80\x80", 0, false, FFFD FFFD FFFD FFFD},
    {"invalid lead", "\xff\xfe", 0, false, FFFD FFFD},
    {"bad then markup", "\x02<", 0, false, FFFD "&lt;"},
};

static void test_escape_table(void **state)
{
    (void)state;
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < PL_ARRAY_LEN(escape_rows); i++) {
        const struct escape_row *r = &escape_rows[i];
        buf_reset(&b);
        buf_append_str(&b, "["); /* escaping appends */
        xml_escape(&b, r->in, r->len ? r->len : strlen(r->in), r->attr);
        if (strcmp(buf_cstr(&b) + 1, r->want) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", r->name, buf_cstr(&b) + 1, r->want);
    }
    buf_fini(&b);
}

/* ---- serialisation and namespace scoping ------------------------------- */

typedef struct xml_node *build_fn(struct arena *a);

static struct xml_node *build_same_ns(struct arena *a)
{
    struct xml_node *m = xml_elem_new(a, XML_NS_CLIENT, "message");
    xml_attr_set(a, m, "to", "bob@example.org");
    xml_text_add(a, xml_elem_add(a, m, NULL, "body"), "hi", 2);
    return m;
}

static struct xml_node *build_nested_ns(struct arena *a)
{
    struct xml_node *iq = xml_elem_new(a, XML_NS_CLIENT, "iq");
    struct xml_node *q = xml_elem_add(a, iq, NS_ROSTER, "query");
    struct xml_node *it = xml_elem_add(a, q, NULL, "item");
    xml_elem_add(a, it, XML_NS_CLIENT, "back");
    xml_elem_add(a, q, NULL, "item");
    xml_elem_add(a, iq, NULL, "error");
    return iq;
}

static struct xml_node *build_no_ns(struct arena *a)
{
    struct xml_node *m = xml_elem_new(a, XML_NS_CLIENT, "message");
    struct xml_node *p = xml_elem_add(a, m, "", "plain");
    xml_elem_add(a, p, NULL, "inner");
    xml_elem_add(a, m, NULL, "after");
    return m;
}

static struct xml_node *build_stream_prefix(struct arena *a)
{
    struct xml_node *f = xml_elem_new(a, XML_NS_STREAM, "features");
    f->prefix = "stream";
    struct xml_node *tls = xml_elem_add(a, f, NS_TLS, "starttls");
    xml_elem_add(a, tls, NULL, "required");
    struct xml_node *inner = xml_elem_add(a, f, XML_NS_STREAM, "inner");
    inner->prefix = "stream"; /* already in scope: not declared again */
    xml_elem_add(a, f, XML_NS_CLIENT, "client");
    return f;
}

static struct xml_node *build_xml_lang(struct arena *a)
{
    struct xml_node *m = xml_elem_new(a, XML_NS_CLIENT, "message");
    xml_attr_set_ns(a, m, XML_NS_XML, "lang", "de");
    xml_attr_set(a, m, "type", "chat");
    return m;
}

static struct xml_node *build_attr_ns(struct arena *a)
{
    struct xml_node *r = xml_elem_new(a, "urn:r", "r");
    xml_attr_set_ns(a, r, NS_X, "a", "1");
    xml_attr_set_ns(a, r, NS_Y, "b", "2");
    xml_attr_set_ns(a, r, NS_X, "c", "3");
    xml_attr_set(a, r, "plain", "4");
    struct xml_node *child = xml_elem_add(a, r, NULL, "child");
    xml_attr_set_ns(a, child, NS_X, "d", "5"); /* ns1 is in scope */
    struct xml_node *other = xml_elem_add(a, r, NULL, "other");
    xml_attr_set_ns(a, other, "urn:z", "e", "6");
    return r;
}

static struct xml_node *build_prefix_hint(struct arena *a)
{
    struct xml_node *x = xml_elem_new(a, NS_X, "info");
    x->prefix = "x";
    xml_attr_set_ns(a, x, NS_X, "level", "3"); /* reuses x */
    xml_attr_set(a, x, "plain", "p");
    struct xml_node *item = xml_elem_add(a, x, NULL, "item");
    item->prefix = "x";
    xml_elem_add(a, x, XML_NS_CLIENT, "item");
    struct xml_node *rebind = xml_elem_add(a, x, NS_Y, "y");
    rebind->prefix = "x"; /* shadows x for its subtree */
    xml_attr_set_ns(a, rebind, NS_X, "old", "o");
    return x;
}

static struct xml_node *build_bad_hints(struct arena *a)
{
    struct xml_node *r = xml_elem_new(a, "urn:r", "r");
    r->prefix = "xml"; /* reserved: ignored */
    struct xml_node *e = xml_elem_add(a, r, "", "e");
    e->prefix = "p"; /* no namespace: ignored */
    struct xml_node *n1 = xml_elem_add(a, r, NS_X, "n");
    n1->prefix = "ns1"; /* a generated prefix must avoid it */
    xml_attr_set_ns(a, n1, NS_Y, "a", "1");
    return r;
}

static struct xml_node *build_xmlns_attrs(struct arena *a)
{
    struct xml_node *r = xml_elem_new(a, "urn:r", "r");
    xml_attr_set(a, r, "xmlns", "urn:evil");
    xml_attr_set_ns(a, r, "http://www.w3.org/2000/xmlns/", "p", "urn:evil");
    xml_attr_set(a, r, "ok", "1");
    return r;
}

/* Declarations made on one element do not leak to its siblings. */
static struct xml_node *build_sibling_scopes(struct arena *a)
{
    struct xml_node *r = xml_elem_new(a, "urn:r", "r");
    xml_elem_add(a, r, "urn:p", "s1")->prefix = "p";
    xml_elem_add(a, r, "urn:p", "s2")->prefix = "p";
    xml_attr_set_ns(a, xml_elem_add(a, r, NULL, "s3"), "urn:z", "a", "1");
    xml_attr_set_ns(a, xml_elem_add(a, r, NULL, "s4"), "urn:z", "a", "2");
    xml_elem_add(a, r, "urn:q", "s5");
    xml_elem_add(a, r, NULL, "s6");
    return r;
}

static struct xml_node *build_escaping(struct arena *a)
{
    struct xml_node *m = xml_elem_new(a, XML_NS_CLIENT, "m");
    xml_attr_set(a, m, "v", "'<&>\"\t\x01");
    xml_text_add(a, m, "<&>'\"\r\x02", 7);
    return m;
}

static struct xml_node *build_many_ns(struct arena *a)
{
    struct xml_node *r = xml_elem_new(a, "urn:r", "r");
    char ns[32];
    for (int i = 0; i < 12; i++) {
        snprintf(ns, sizeof(ns), "urn:n%d", i);
        xml_attr_set_ns(a, r, ns, "a", "v");
    }
    xml_attr_set_ns(a, xml_elem_add(a, r, NULL, "c"), "urn:n11", "b", "w");
    return r;
}

static struct xml_node *build_text_only(struct arena *a)
{
    struct xml_node *p = xml_elem_new(a, "", "p");
    xml_text_add(a, p, "a<b", 3);
    return p->first;
}

struct ser_row {
    const char *name;
    build_fn *build;
    const char *parent_ns;
    const char *want;
};

static const struct ser_row ser_rows[] = {
    {"same ns as scope", build_same_ns, XML_NS_CLIENT,
     "<message to='bob@example.org'><body>hi</body></message>"},
    {"nothing in scope", build_same_ns, NULL,
     "<message xmlns='jabber:client' to='bob@example.org'><body>hi</body></message>"},
    {"other ns in scope", build_same_ns, XML_NS_SERVER,
     "<message xmlns='jabber:client' to='bob@example.org'><body>hi</body></message>"},
    {"nested scopes", build_nested_ns, XML_NS_CLIENT,
     "<iq><query xmlns='jabber:iq:roster'><item><back xmlns='jabber:client'/></item><item/>"
     "</query><error/></iq>"},
    {"undeclare default", build_no_ns, XML_NS_CLIENT,
     "<message><plain xmlns=''><inner/></plain><after/></message>"},
    {"no ns at top", build_no_ns, NULL,
     "<message xmlns='jabber:client'><plain xmlns=''><inner/></plain><after/></message>"},
    {"stream prefix", build_stream_prefix, XML_NS_CLIENT,
     "<stream:features xmlns:stream='http://etherx.jabber.org/streams'>"
     "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><stream:inner/>"
     "<client/></stream:features>"},
    {"xml:lang", build_xml_lang, XML_NS_CLIENT, "<message xml:lang='de' type='chat'/>"},
    {"namespaced attributes", build_attr_ns, "urn:r",
     "<r xmlns:ns1='urn:example:x' ns1:a='1' xmlns:ns2='urn:example:y' ns2:b='2' ns1:c='3' "
     "plain='4'><child ns1:d='5'/><other xmlns:ns3='urn:z' ns3:e='6'/></r>"},
    {"prefix hints", build_prefix_hint, XML_NS_CLIENT,
     "<x:info xmlns:x='urn:example:x' x:level='3' plain='p'><x:item/><item/>"
     "<x:y xmlns:x='urn:example:y' xmlns:ns1='urn:example:x' ns1:old='o'/></x:info>"},
    {"unusable hints", build_bad_hints, "urn:r",
     "<r><e xmlns=''/><ns1:n xmlns:ns1='urn:example:x' xmlns:ns2='urn:example:y' ns2:a='1'/>"
     "</r>"},
    {"sibling scopes", build_sibling_scopes, "urn:r",
     "<r><p:s1 xmlns:p='urn:p'/><p:s2 xmlns:p='urn:p'/><s3 xmlns:ns1='urn:z' ns1:a='1'/>"
     "<s4 xmlns:ns2='urn:z' ns2:a='2'/><s5 xmlns='urn:q'/><s6/></r>"},
    {"xmlns attributes dropped", build_xmlns_attrs, NULL, "<r xmlns='urn:r' ok='1'/>"},
    {"escaping", build_escaping, XML_NS_CLIENT,
     "<m v='&apos;&lt;&amp;&gt;&quot;&#x9;" FFFD "'>&lt;&amp;&gt;'\"&#xD;" FFFD "</m>"},
    {"many namespaces", build_many_ns, "urn:r",
     "<r xmlns:ns1='urn:n0' ns1:a='v' xmlns:ns2='urn:n1' ns2:a='v' xmlns:ns3='urn:n2' ns3:a='v' "
     "xmlns:ns4='urn:n3' ns4:a='v' xmlns:ns5='urn:n4' ns5:a='v' xmlns:ns6='urn:n5' ns6:a='v' "
     "xmlns:ns7='urn:n6' ns7:a='v' xmlns:ns8='urn:n7' ns8:a='v' xmlns:ns9='urn:n8' ns9:a='v' "
     "xmlns:ns10='urn:n9' ns10:a='v' xmlns:ns11='urn:n10' ns11:a='v' xmlns:ns12='urn:n11' "
     "ns12:a='v'><c ns12:b='w'/></r>"},
    {"text node", build_text_only, NULL, "a&lt;b"},
};

static void test_serialize_table(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct buf b = BUF_INIT;
    for (size_t i = 0; i < PL_ARRAY_LEN(ser_rows); i++) {
        const struct ser_row *r = &ser_rows[i];
        buf_reset(&b);
        xml_serialize(&b, r->build(a), r->parent_ns);
        if (strcmp(buf_cstr(&b), r->want) != 0)
            fail_msg("%s:\n got  %s\n want %s", r->name, buf_cstr(&b), r->want);
        arena_reset(a);
    }
    buf_fini(&b);
    arena_free(&a);
}

/* ---- golden round trips ------------------------------------------------ */

#define GOLDEN_DIR PL_TEST_DATA_DIR "/xml"
#define GOLDEN_HEADER                                                                              \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "to='example.org' version='1.0'>"

struct golden_ctx {
    struct xstream *xs;
    struct buf out;
    int stanzas;
};

static int golden_on_stanza(void *arg, struct xml_node *st, const char *raw, size_t raw_len)
{
    struct golden_ctx *g = arg;
    (void)raw;
    (void)raw_len;
    xml_serialize(&g->out, st, xstream_default_ns(g->xs));
    buf_append_char(&g->out, '\n');
    g->stanzas++;
    return 0;
}

static char *read_file(const char *path, size_t *len_r)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct buf b = BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    return buf_detach(&b, len_r);
}

/* Parses body inside a client stream and returns the serialised stanzas,
 * one a line. */
static char *golden_parse(const char *name, const char *body, size_t len, int *stanzas_r)
{
    static const struct xstream_ops ops = {.on_stanza = golden_on_stanza};
    struct golden_ctx g = {.out = BUF_INIT};
    struct err err;
    g.xs = xstream_new(NULL, &ops, &g, 0);
    if (xstream_feed(g.xs, GOLDEN_HEADER, strlen(GOLDEN_HEADER), &err) != 0 ||
        xstream_feed(g.xs, body, len, &err) != 0 ||
        xstream_feed(g.xs, "</stream:stream>", 16, &err) != 0)
        fail_msg("%s: parse error %s: %s", name, xmpp_cond_name(err.cond), err.text);
    xstream_free(&g.xs);
    *stanzas_r = g.stanzas;
    return buf_detach(&g.out, NULL);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden(void **state)
{
    (void)state;
    DIR *d = opendir(GOLDEN_DIR);
    assert_non_null(d);
    char *names[64];
    size_t count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".xml") == 0) {
            assert_true(count < PL_ARRAY_LEN(names));
            names[count++] = strndup(de->d_name, l - 4);
        }
    }
    closedir(d);
    assert_true(count >= 6);
    qsort(names, count, sizeof(names[0]), cmp_names);

    char path[4096];
    for (size_t i = 0; i < count; i++) {
        size_t in_len, ref_len;
        snprintf(path, sizeof(path), "%s/%s.xml", GOLDEN_DIR, names[i]);
        char *in = read_file(path, &in_len);
        snprintf(path, sizeof(path), "%s/%s.ref", GOLDEN_DIR, names[i]);
        char *ref = read_file(path, &ref_len);
        if (in == NULL || ref == NULL) {
            fail_msg("%s: missing .xml or .ref", names[i]);
            return;
        }

        int n1, n2;
        char *out = golden_parse(names[i], in, in_len, &n1);
        if (strcmp(out, ref) != 0)
            fail_msg("%s:\n--- got\n%s--- want\n%s", names[i], out, ref);
        /* The output parses back to itself. */
        char *again = golden_parse(names[i], out, strlen(out), &n2);
        assert_int_equal(n1, n2);
        assert_true(n1 > 0);
        if (strcmp(again, out) != 0)
            fail_msg("%s: not a fixed point:\n%s", names[i], again);
        free(in);
        free(ref);
        free(out);
        free(again);
        free(names[i]);
    }
}

/* Whatever bytes the builder is given, the output is well-formed XML that
 * parses back to the same serialisation. */
static void test_builder_garbage_round_trip(void **state)
{
    (void)state;
    struct arena *a = arena_new(0);
    struct xml_node *m = xml_elem_new(a, XML_NS_CLIENT, "message");
    unsigned char all[257];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    all[256] = 0;
    xml_attr_set(a, m, "all", (const char *)all + 1); /* attribute values are C strings */
    xml_text_add(a, xml_elem_add(a, m, NULL, "body"), (const char *)all, 256);
    struct buf b = BUF_INIT;
    xml_serialize(&b, m, XML_NS_CLIENT);
    int n;
    char *out = golden_parse("garbage", b.data, b.len, &n);
    assert_int_equal(n, 1);
    buf_append_char(&b, '\n');
    assert_string_equal(out, buf_cstr(&b));
    free(out);
    buf_fini(&b);
    arena_free(&a);
}

/* xml_append_attr_u64 writes what printf's PRIu64 writes. */
static void test_append_attr_u64(void **state)
{
    (void)state;
    static const uint64_t values[] = {0,
                                      1,
                                      9,
                                      10,
                                      42,
                                      99,
                                      100,
                                      4294967295u,
                                      4294967296u,
                                      1000000000000000000u,
                                      UINT64_MAX - 1,
                                      UINT64_MAX};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct buf got = BUF_INIT, want = BUF_INIT;
        buf_append_str(&got, "<r");
        xml_append_attr_u64(&got, "seq", values[i]);
        buf_printf(&want, "<r seq='%" PRIu64 "'", values[i]);
        assert_string_equal(buf_cstr(&got), buf_cstr(&want));
        assert_int_equal(got.len, want.len);
        buf_fini(&got);
        buf_fini(&want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_lookup),
        cmocka_unit_test(test_attrs),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_append_remove),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_append_attr_u64),
        cmocka_unit_test(test_serialize_table),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_builder_garbage_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
