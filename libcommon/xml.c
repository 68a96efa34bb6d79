/* SPDX-License-Identifier: MIT */
/* The stanza tree (builder, lookup, deep copy) and its serialiser. The
 * serialiser declares namespaces only where the scope changes and never
 * emits a character XML 1.0 forbids: such bytes become U+FFFD. */
#include "xml.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "attr.h"
#include "buf.h"

#define NS_XMLNS "http://www.w3.org/2000/xmlns/"

/* U+FFFD REPLACEMENT CHARACTER, written in place of every byte or code point
 * that may not appear in an XML 1.0 document. */
static const char replacement[] = "\xEF\xBF\xBD";

static bool str_eq_opt(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

/* NULL and "" both mean "no namespace" for attributes. */
static const char *attr_ns_norm(const char *ns)
{
    return ns != NULL && ns[0] != '\0' ? ns : NULL;
}

static bool match(const struct xml_node *n, const char *ns, const char *name)
{
    if (n == NULL || n->kind != XML_ELEM)
        return false;
    if (ns != NULL && strcmp(n->ns ? n->ns : "", ns) != 0)
        return false;
    if (name != NULL && strcmp(n->name, name) != 0)
        return false;
    return true;
}

/* ---- building ---------------------------------------------------------- */

struct xml_node *xml_elem_new(struct arena *a, const char *ns, const char *name)
{
    PL_ASSERT(name != NULL);
    struct xml_node *n = arena_alloc(a, sizeof(*n));
    n->kind = XML_ELEM;
    n->ns = arena_strdup(a, ns ? ns : "");
    n->name = arena_strdup(a, name);
    return n;
}

struct xml_node *xml_elem_add(struct arena *a, struct xml_node *parent, const char *ns,
                              const char *name)
{
    struct xml_node *n = xml_elem_new(a, ns ? ns : parent->ns, name);
    xml_append(parent, n);
    return n;
}

void xml_append(struct xml_node *parent, struct xml_node *child)
{
    PL_ASSERT(parent->kind == XML_ELEM);
    PL_ASSERT(child->parent == NULL && child->next == NULL);
    child->parent = parent;
    if (parent->last != NULL)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
}

void xml_remove(struct xml_node *child)
{
    struct xml_node *parent = child->parent;
    if (parent == NULL)
        return;
    struct xml_node *prev = NULL;
    for (struct xml_node *c = parent->first; c != child; c = c->next) {
        PL_ASSERT(c != NULL);
        prev = c;
    }
    if (prev != NULL)
        prev->next = child->next;
    else
        parent->first = child->next;
    if (parent->last == child)
        parent->last = prev;
    child->parent = NULL;
    child->next = NULL;
}

/* Merging copies both parts into a new buffer, so many small appends to one
 * node are quadratic; the parser collects text itself and adds it once. */
void xml_text_add(struct arena *a, struct xml_node *parent, const char *text, size_t len)
{
    if (len == 0)
        return;
    struct xml_node *last = parent->last;
    if (last != NULL && last->kind == XML_TEXT) {
        char *t = arena_alloc(a, last->text_len + len + 1);
        memcpy(t, last->text, last->text_len);
        memcpy(t + last->text_len, text, len);
        last->text = t;
        last->text_len += len;
        return;
    }
    struct xml_node *n = arena_alloc(a, sizeof(*n));
    n->kind = XML_TEXT;
    n->text = arena_strndup(a, text, len);
    n->text_len = len;
    xml_append(parent, n);
}

/* ---- attributes -------------------------------------------------------- */

static struct xml_attr *attr_find(const struct xml_node *n, const char *ns, const char *name)
{
    for (unsigned i = 0; i < n->nattrs; i++) {
        struct xml_attr *at = &n->attrs[i];
        if (str_eq_opt(attr_ns_norm(at->ns), ns) && strcmp(at->name, name) == 0)
            return at;
    }
    return NULL;
}

void xml_attr_set_ns(struct arena *a, struct xml_node *n, const char *ns, const char *name,
                     const char *value)
{
    PL_ASSERT(n->kind == XML_ELEM && name != NULL);
    ns = attr_ns_norm(ns);
    struct xml_attr *at = attr_find(n, ns, name);
    if (value == NULL) {
        if (at != NULL) {
            size_t i = (size_t)(at - n->attrs);
            memmove(at, at + 1, (n->nattrs - i - 1) * sizeof(*at));
            n->nattrs--;
        }
        return;
    }
    if (at != NULL) {
        at->value = arena_strdup(a, value);
        return;
    }
    if (n->nattrs == n->attr_cap) {
        unsigned cap = n->attr_cap ? n->attr_cap * 2 : 4;
        struct xml_attr *v = arena_alloc(a, cap * sizeof(*v));
        if (n->nattrs)
            memcpy(v, n->attrs, n->nattrs * sizeof(*v));
        n->attrs = v;
        n->attr_cap = cap;
    }
    at = &n->attrs[n->nattrs++];
    at->ns = ns ? arena_strdup(a, ns) : NULL;
    at->name = arena_strdup(a, name);
    at->value = arena_strdup(a, value);
}

void xml_attr_set(struct arena *a, struct xml_node *n, const char *name, const char *value)
{
    xml_attr_set_ns(a, n, NULL, name, value);
}

const char *xml_attr_get_ns(const struct xml_node *n, const char *ns, const char *name)
{
    if (n == NULL || n->kind != XML_ELEM)
        return NULL;
    const struct xml_attr *at = attr_find(n, attr_ns_norm(ns), name);
    return at ? at->value : NULL;
}

const char *xml_attr_get(const struct xml_node *n, const char *name)
{
    return xml_attr_get_ns(n, NULL, name);
}

/* ---- lookup ------------------------------------------------------------ */

struct xml_node *xml_next(const struct xml_node *n, const char *ns, const char *name)
{
    if (n == NULL)
        return NULL;
    for (struct xml_node *c = n->next; c != NULL; c = c->next) {
        if (match(c, ns, name))
            return c;
    }
    return NULL;
}

struct xml_node *xml_child(const struct xml_node *n, const char *ns, const char *name)
{
    if (n == NULL)
        return NULL;
    struct xml_node *c = n->first;
    if (c == NULL || match(c, ns, name))
        return c;
    return xml_next(c, ns, name);
}

struct xml_node *xml_first_elem(const struct xml_node *n)
{
    return xml_child(n, NULL, NULL);
}

struct xml_node *xml_next_elem(const struct xml_node *n)
{
    return xml_next(n, NULL, NULL);
}

bool xml_is(const struct xml_node *n, const char *ns, const char *name)
{
    return match(n, ns, name);
}

const char *xml_text(struct arena *a, const struct xml_node *n)
{
    if (n == NULL)
        return "";
    if (n->kind == XML_TEXT)
        return n->text ? n->text : "";
    const struct xml_node *only = NULL;
    size_t len = 0, count = 0;
    for (const struct xml_node *c = n->first; c != NULL; c = c->next) {
        if (c->kind == XML_TEXT && c->text_len > 0) {
            only = c;
            len += c->text_len;
            count++;
        }
    }
    if (count == 0)
        return "";
    if (count == 1)
        return only->text;
    char *t = arena_alloc(a, len + 1), *p = t;
    for (const struct xml_node *c = n->first; c != NULL; c = c->next) {
        if (c->kind == XML_TEXT && c->text_len > 0) {
            memcpy(p, c->text, c->text_len);
            p += c->text_len;
        }
    }
    return t;
}

const char *xml_child_text(struct arena *a, const struct xml_node *n, const char *ns,
                           const char *name)
{
    const struct xml_node *c = xml_child(n, ns, name);
    return c ? xml_text(a, c) : NULL;
}

/* ---- copying ----------------------------------------------------------- */

struct xml_node *xml_node_copy(struct arena *dst, const struct xml_node *n)
{
    struct xml_node *c = arena_alloc(dst, sizeof(*c));
    c->kind = n->kind;
    if (n->kind == XML_TEXT) {
        c->text = arena_strndup(dst, n->text ? n->text : "", n->text_len);
        c->text_len = n->text_len;
        return c;
    }
    c->ns = arena_strdup(dst, n->ns ? n->ns : "");
    c->name = arena_strdup(dst, n->name);
    c->prefix = n->prefix ? arena_strdup(dst, n->prefix) : NULL;
    if (n->nattrs > 0) {
        c->attrs = arena_alloc(dst, n->nattrs * sizeof(*c->attrs));
        c->nattrs = c->attr_cap = n->nattrs;
        for (unsigned i = 0; i < n->nattrs; i++) {
            const struct xml_attr *at = &n->attrs[i];
            c->attrs[i].ns = at->ns ? arena_strdup(dst, at->ns) : NULL;
            c->attrs[i].name = arena_strdup(dst, at->name);
            c->attrs[i].value = arena_strdup(dst, at->value);
        }
    }
    for (const struct xml_node *k = n->first; k != NULL; k = k->next)
        xml_append(c, xml_node_copy(dst, k));
    return c;
}

/* ---- escaping ---------------------------------------------------------- */

/* Byte classes for the escaper: 0 passes through; anything else needs a
 * look. */
enum esc_class {
    ESC_PLAIN = 0,
    ESC_SPECIAL, /* & < > ' " \t \n \r: escaped depending on the context */
    ESC_BAD,     /* a C0 control XML 1.0 forbids, or a byte no UTF-8 starts with */
    ESC_UTF8,    /* the lead byte of a multi-byte sequence */
};

static unsigned char esc_class_of(unsigned char c)
{
    switch (c) {
    case '&':
    case '<':
    case '>':
    case '\'':
    case '"':
    case '\t':
    case '\n':
    case '\r':
        return ESC_SPECIAL;
    default:
        break;
    }
    if (c < 0x20)
        return ESC_BAD;
    if (c < 0x80)
        return ESC_PLAIN;
    if (c >= 0xC2 && c <= 0xF4)
        return ESC_UTF8;
    return ESC_BAD; /* continuation bytes, C0, C1, F5..FF */
}

/* Returns the length of the valid UTF-8 sequence at s (lead byte >= 0xC2)
 * encoding a character XML 1.0 allows, or 0. */
static size_t utf8_valid_len(const unsigned char *s, size_t avail)
{
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
    if (avail < n)
        return 0;
    uint32_t cp = s[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0; /* overlong or beyond Unicode */
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0; /* surrogates and the two non-characters XML excludes */
    return n;
}

static const char *esc_special(unsigned char c, bool attr)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '\'':
        return attr ? "&apos;" : NULL;
    case '"':
        return attr ? "&quot;" : NULL;
    case '\t':
        return attr ? "&#x9;" : NULL; /* attribute normalisation would eat it */
    case '\n':
        return attr ? "&#xA;" : NULL;
    case '\r':
        return "&#xD;"; /* line-end normalisation would eat it anywhere */
    default:
        return NULL;
    }
}

void xml_escape(struct buf *b, const char *s, size_t len, bool attr)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    while (p < end) {
        unsigned char cls = esc_class_of(*p);
        if (cls == ESC_PLAIN) {
            p++;
            continue;
        }
        if (cls == ESC_UTF8) {
            size_t n = utf8_valid_len(p, (size_t)(end - p));
            if (n > 0) {
                p += n;
                continue;
            }
        }
        const char *rep = cls == ESC_SPECIAL ? esc_special(*p, attr) : replacement;
        if (rep == NULL) {
            p++;
            continue;
        }
        buf_append(b, run, (size_t)(p - run));
        buf_append_str(b, rep);
        p++;
        run = p;
    }
    buf_append(b, run, (size_t)(p - run));
}

/* ---- serialising ------------------------------------------------------- */

#define NS_GEN_LEN 16

/* A prefix binding in scope. Generated prefixes ("ns1") live in gen, since
 * the binding array may move when it grows. */
struct ns_binding {
    const char *prefix; /* NULL: the prefix is gen */
    char gen[NS_GEN_LEN];
    const char *uri;
};

struct ser {
    struct buf *b;
    struct ns_binding *v;
    size_t n, cap;
    unsigned next_gen;
    struct ns_binding inline_v[8];
};

static const char *binding_prefix(const struct ns_binding *nb)
{
    return nb->prefix ? nb->prefix : nb->gen;
}

static struct ns_binding *ser_push(struct ser *s, const char *prefix, const char *uri)
{
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        struct ns_binding *v = xmalloc(cap * sizeof(*v));
        memcpy(v, s->v, s->n * sizeof(*v));
        if (s->v != s->inline_v)
            free(s->v);
        s->v = v;
        s->cap = cap;
    }
    struct ns_binding *nb = &s->v[s->n++];
    nb->prefix = prefix;
    nb->gen[0] = '\0';
    nb->uri = uri;
    return nb;
}

/* The URI prefix is bound to in scope, or NULL. */
static const char *ser_lookup(const struct ser *s, const char *prefix)
{
    if (strcmp(prefix, "xml") == 0)
        return XML_NS_XML;
    for (size_t i = s->n; i-- > 0;) {
        if (strcmp(binding_prefix(&s->v[i]), prefix) == 0)
            return s->v[i].uri;
    }
    return NULL;
}

/* A prefix bound to uri and not shadowed, or NULL. */
static const char *ser_prefix_for(const struct ser *s, const char *uri)
{
    for (size_t i = s->n; i-- > 0;) {
        const char *p = binding_prefix(&s->v[i]), *bound;
        if (strcmp(s->v[i].uri, uri) == 0 && (bound = ser_lookup(s, p)) != NULL &&
            strcmp(bound, uri) == 0)
            return p;
    }
    return NULL;
}

/* The element's prefix hint if it can be used: a name outside the reserved
 * xml* space, on an element that has a namespace. */
static const char *elem_prefix(const struct xml_node *n)
{
    const char *p = n->prefix;
    if (p == NULL || p[0] == '\0' || n->ns == NULL || n->ns[0] == '\0')
        return NULL;
    if ((p[0] == 'x' || p[0] == 'X') && (p[1] == 'm' || p[1] == 'M') &&
        (p[2] == 'l' || p[2] == 'L'))
        return NULL;
    return p;
}

static void ser_xmlns(struct ser *s, const char *prefix, const char *uri)
{
    buf_append_str(s->b, prefix ? " xmlns:" : " xmlns");
    if (prefix)
        buf_append_str(s->b, prefix);
    buf_append(s->b, "='", 2);
    xml_escape(s->b, uri, strlen(uri), true);
    buf_append_char(s->b, '\'');
}

static void ser_attr(struct ser *s, const struct xml_attr *at)
{
    const char *ns = attr_ns_norm(at->ns), *prefix = NULL;
    if (ns == NULL) {
        if (strcmp(at->name, "xmlns") == 0)
            return; /* declarations follow from the tree, never from attributes */
    } else if (strcmp(ns, NS_XMLNS) == 0) {
        return;
    } else if (strcmp(ns, XML_NS_XML) == 0) {
        prefix = "xml";
    } else if ((prefix = ser_prefix_for(s, ns)) == NULL) {
        char gen[NS_GEN_LEN];
        do
            snprintf(gen, sizeof(gen), "ns%u", ++s->next_gen);
        while (ser_lookup(s, gen) != NULL);
        struct ns_binding *nb = ser_push(s, NULL, ns);
        memcpy(nb->gen, gen, sizeof(gen));
        prefix = nb->gen;
        ser_xmlns(s, prefix, ns);
    }
    buf_append_char(s->b, ' ');
    if (prefix) {
        buf_append_str(s->b, prefix);
        buf_append_char(s->b, ':');
    }
    buf_append_str(s->b, at->name);
    buf_append(s->b, "='", 2);
    xml_escape(s->b, at->value, strlen(at->value), true);
    buf_append_char(s->b, '\'');
}

static void ser_node(struct ser *s, const struct xml_node *n, const char *dns)
{
    if (n->kind == XML_TEXT) {
        xml_escape(s->b, n->text ? n->text : "", n->text_len, false);
        return;
    }
    size_t mark = s->n;
    const char *ns = n->ns ? n->ns : "";
    const char *prefix = elem_prefix(n);
    buf_append_char(s->b, '<');
    if (prefix != NULL) {
        buf_append_str(s->b, prefix);
        buf_append_char(s->b, ':');
    }
    buf_append_str(s->b, n->name);
    if (prefix != NULL) {
        const char *bound = ser_lookup(s, prefix);
        if (bound == NULL || strcmp(bound, ns) != 0) {
            ser_push(s, prefix, ns);
            ser_xmlns(s, prefix, ns);
        }
    } else if (strcmp(ns, dns) != 0) {
        ser_xmlns(s, NULL, ns);
        dns = ns;
    }
    for (unsigned i = 0; i < n->nattrs; i++)
        ser_attr(s, &n->attrs[i]);
    if (n->first == NULL) {
        buf_append(s->b, "/>", 2);
    } else {
        buf_append_char(s->b, '>');
        for (const struct xml_node *c = n->first; c != NULL; c = c->next)
            ser_node(s, c, dns);
        buf_append(s->b, "</", 2);
        if (prefix != NULL) {
            buf_append_str(s->b, prefix);
            buf_append_char(s->b, ':');
        }
        buf_append_str(s->b, n->name);
        buf_append_char(s->b, '>');
    }
    s->n = mark;
}

void xml_serialize(struct buf *b, const struct xml_node *n, const char *parent_ns)
{
    struct ser s = {.b = b, .n = 0, .cap = PL_ARRAY_LEN(s.inline_v), .next_gen = 0};
    s.v = s.inline_v;
    ser_node(&s, n, parent_ns ? parent_ns : "");
    if (s.v != s.inline_v)
        free(s.v);
}

void xml_append_attr(struct buf *b, const char *name, const char *value)
{
    buf_append_char(b, ' ');
    buf_append_str(b, name);
    buf_append_str(b, "='");
    xml_escape(b, value, strlen(value), true);
    buf_append_char(b, '\'');
}

void xml_append_attr_u64(struct buf *b, const char *name, uint64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    buf_append_char(b, ' ');
    buf_append_str(b, name);
    buf_append_str(b, "='");
    buf_append(b, digits + i, sizeof(digits) - i);
    buf_append_char(b, '\'');
}

void xml_append_stream_error(struct buf *b, enum xmpp_cond cond, const char *text)
{
    if (!xmpp_cond_is_stream(cond))
        cond = XMPP_COND_STREAM_UNDEFINED_CONDITION;
    buf_printf(b, "<stream:error><%s xmlns='" XMPP_NS_STREAMS "'/>", xmpp_cond_name(cond));
    if (text != NULL && text[0] != '\0') {
        buf_append_str(b, "<text xmlns='" XMPP_NS_STREAMS "'>");
        xml_escape(b, text, strlen(text), false);
        buf_append_str(b, "</text>");
    }
    buf_append_str(b, "</stream:error>");
}
