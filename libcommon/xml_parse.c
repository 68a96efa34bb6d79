/* SPDX-License-Identifier: MIT */
/* Parsing one serialised element back into a tree (a stanza kept as text in
 * a queue or a database). */
#include "xml.h"

#include <string.h>

#include "err.h"
#include "xstream.h"

struct frag {
    struct arena *a;
    struct xml_node *out;
};

static int on_open(void *arg, const struct xml_node *hdr)
{
    (void)arg;
    (void)hdr;
    return 0;
}

static int on_stanza(void *arg, struct xml_node *st, const char *raw, size_t len)
{
    struct frag *f = arg;
    (void)raw;
    (void)len;
    if (f->out == NULL)
        f->out = xml_node_copy(f->a, st);
    return 0;
}

static void on_close(void *arg)
{
    (void)arg;
}

struct xml_node *xml_parse_fragment(struct arena *a, const char *text)
{
    static const struct xstream_ops ops = {on_open, on_stanza, on_close};
    static const char open[] = "<s:stream xmlns:s='" XML_NS_STREAM "' xmlns='" XML_NS_CLIENT "'>";
    struct frag f = {a, NULL};
    struct xstream_limits lim = {.max_stanza = strlen(text) + 1, .max_depth = 64, .max_attrs = 256};
    struct xstream *xs = xstream_new(&lim, &ops, &f, 0);
    struct err err = {0};
    if (xstream_feed(xs, open, sizeof(open) - 1, &err) < 0 ||
        xstream_feed(xs, text, strlen(text), &err) < 0)
        f.out = NULL;
    xstream_free(&xs);
    return f.out;
}
