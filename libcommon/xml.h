/* SPDX-License-Identifier: MIT */
/* The stanza tree: elements with a namespace URI, a local name, attributes
 * and children (elements and text), all allocated in one arena; plus a
 * serialiser that escapes correctly and declares namespaces. */
#ifndef PL_XML_H
#define PL_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct arena;
struct buf;

#define XML_NS_XML    "http://www.w3.org/XML/1998/namespace"
#define XML_NS_STREAM "http://etherx.jabber.org/streams"
#define XML_NS_CLIENT "jabber:client"
#define XML_NS_SERVER "jabber:server"
#define XML_NS_COMP   "jabber:component:accept"

struct xml_attr {
    const char *ns; /* NULL for an unqualified attribute */
    const char *name;
    const char *value;
};

enum xml_kind {
    XML_ELEM = 0,
    XML_TEXT,
};

struct xml_node {
    enum xml_kind kind;
    const char *ns;     /* element namespace URI ("" for none); NULL for text */
    const char *name;   /* local name; NULL for text */
    const char *prefix; /* serialisation hint, e.g. "stream"; NULL = default ns */
    struct xml_attr *attrs;
    unsigned nattrs, attr_cap;
    char *text; /* text nodes: the unescaped bytes, NUL-terminated */
    size_t text_len;
    struct xml_node *parent, *first, *last, *next;
};

/* Creates a detached element; ns and name are copied into a. */
struct xml_node *xml_elem_new(struct arena *a, const char *ns, const char *name);
/* Appends a new child element; a NULL ns inherits the parent's. */
struct xml_node *xml_elem_add(struct arena *a, struct xml_node *parent, const char *ns,
                              const char *name);
/* Appends text (copied) to parent, merging with a preceding text node. */
void xml_text_add(struct arena *a, struct xml_node *parent, const char *text, size_t len);
/* Appends an existing detached node as parent's last child. */
void xml_append(struct xml_node *parent, struct xml_node *child);
/* Unlinks child from its parent. */
void xml_remove(struct xml_node *child);

/* Sets (replacing) an unqualified attribute; a NULL value removes it.
 * Strings are copied into a. */
void xml_attr_set(struct arena *a, struct xml_node *n, const char *name, const char *value);
/* Same for a namespaced attribute (e.g. XML_NS_XML "lang"). */
void xml_attr_set_ns(struct arena *a, struct xml_node *n, const char *ns, const char *name,
                     const char *value);
/* Returns the value or NULL. */
const char *xml_attr_get(const struct xml_node *n, const char *name);
const char *xml_attr_get_ns(const struct xml_node *n, const char *ns, const char *name);

/* The first child element with this ns (NULL = any) and name (NULL = any). */
struct xml_node *xml_child(const struct xml_node *n, const char *ns, const char *name);
/* The next sibling element after n matching ns and name (NULL = any). */
struct xml_node *xml_next(const struct xml_node *n, const char *ns, const char *name);
/* Iterates child elements: for (c = xml_first_elem(n); c; c = xml_next_elem(c)). */
struct xml_node *xml_first_elem(const struct xml_node *n);
struct xml_node *xml_next_elem(const struct xml_node *n);
bool xml_is(const struct xml_node *n, const char *ns, const char *name);

/* The concatenated text of n's direct text children, in a ("" if none).
 * When n has a single text child the result points at it without copying. */
const char *xml_text(struct arena *a, const struct xml_node *n);
/* The text of the first child element ns/name, or NULL if there is none. */
const char *xml_child_text(struct arena *a, const struct xml_node *n, const char *ns,
                           const char *name);

/* Deep-copies n (and its subtree) into dst; the copy is detached. */
struct xml_node *xml_node_copy(struct arena *dst, const struct xml_node *n);

/* Appends the serialisation of n to b. parent_ns is the default namespace in
 * scope where the output will be placed (e.g. "jabber:client" inside a
 * client stream), so xmlns is written only where it differs; NULL means
 * none in scope. Attribute values and text are escaped (&, <, >, ", ' and
 * control characters as character references where XML allows them).
 * Declarations come from the tree alone: an element's prefix hint is kept
 * (xmlns:p declared where not in scope) unless it starts with "xml" or the
 * element has no namespace; attributes in XML_NS_XML are written xml:name,
 * other namespaced ones with a prefix in scope or a generated one (ns1,
 * ns2, ...); attributes named xmlns or in the xmlns namespace are dropped. */
void xml_serialize(struct buf *b, const struct xml_node *n, const char *parent_ns);
/* Escapes len bytes of s for text (attr false) or an attribute value
 * quoted with ' (attr true). Bytes that are not valid UTF-8 and characters
 * XML 1.0 forbids (NUL and other C0 controls but tab, LF and CR; U+FFFE,
 * U+FFFF) are written as U+FFFD, one for each offending byte. */
void xml_escape(struct buf *b, const char *s, size_t len, bool attr);

/* Appends ` name='value'` with value escaped: the way hand-built XML in
 * Parley writes an attribute. */
void xml_append_attr(struct buf *b, const char *name, const char *value);
/* Appends ` name='v'` with v in decimal (sequence numbers on hot paths). */
void xml_append_attr_u64(struct buf *b, const char *name, uint64_t v);
/* Appends <stream:error> with the condition (a stream one; anything else
 * becomes undefined-condition) and, when text is not empty, a <text/>. The
 * stream prefix must be declared on the stream header. */
void xml_append_stream_error(struct buf *b, enum xmpp_cond cond, const char *text);

/* Parses one serialised element (default namespace jabber:client unless it
 * declares its own) into a tree in a; NULL if it is not one well-formed
 * element. Used for stanzas kept as text (queues, the store). */
struct xml_node *xml_parse_fragment(struct arena *a, const char *text);

#endif
