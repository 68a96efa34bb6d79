/* SPDX-License-Identifier: MIT */
/* Stream headers (RFC 6120 §4.2, §4.7): checking the client's (namespace,
 * 'to', version, xml:lang) and answering with ours, then the features. */
#include "c2s.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "comp_handshake.h"
#include "jid.h"
#include "xml.h"
#include "xstream.h"

/* RFC 6120 §4.7.5: a missing version means 0.9; we speak 1.x only. A
 * higher minor version is answered with 1.0. */
static bool version_ok(const char *v)
{
    if (v == NULL)
        return false;
    char *end;
    unsigned long major = strtoul(v, &end, 10);
    if (end == v || *end != '.' || end[1] < '0' || end[1] > '9')
        return false;
    strtoul(end + 1, &end, 10);
    return *end == '\0' && major == 1;
}

/* The hosted domain the header's 'to' names, or NULL (err says why). */
static const char *check_to(struct client *c, const char *to, struct err *err)
{
    if (to == NULL || to[0] == '\0') {
        err_set(err, XMPP_COND_STREAM_HOST_UNKNOWN, "the stream header has no 'to'");
        return NULL;
    }
    struct arena *a = xstream_arena(c->xs);
    struct jid j;
    const char *d = NULL;
    if (jid_parse_str(a, to, &j, NULL) == 0 && j.local == NULL && j.resource == NULL)
        d = c2s_hosted_domain(c->c2s, j.domain);
    if (d == NULL) {
        err_set(err, XMPP_COND_STREAM_HOST_UNKNOWN, "'%.200s' is not a domain served here", to);
        return NULL;
    }
    if (c->authed && d != c->domain) {
        err_set(err, XMPP_COND_STREAM_HOST_UNKNOWN, "the stream was authenticated for %s",
                c->domain);
        return NULL;
    }
    return d;
}

static void set_lang(struct client *c, const char *lang)
{
    free(c->lang);
    c->lang = NULL;
    if (lang != NULL && lang[0] != '\0' && strlen(lang) < 64)
        c->lang = xstrdup(lang);
}

int stream_on_open(struct client *c, const struct xml_node *hdr)
{
    struct err err = {0};
    const char *ns = xstream_default_ns(c->xs);
    const char *domain = NULL;
    if (strcmp(ns, XML_NS_CLIENT) != 0)
        err_set(&err, XMPP_COND_STREAM_INVALID_NAMESPACE,
                "the stream's default namespace is '%.100s', not '" XML_NS_CLIENT "'", ns);
    else if ((domain = check_to(c, xml_attr_get(hdr, "to"), &err)) != NULL)
        c->domain = domain;
    if (err.cond == XMPP_COND_NONE && !version_ok(xml_attr_get(hdr, "version")))
        err_set(&err, XMPP_COND_STREAM_UNSUPPORTED_VERSION, "version '%.20s' is not 1.x",
                xml_attr_get(hdr, "version") ? xml_attr_get(hdr, "version") : "(none)");
    set_lang(c, xml_attr_get_ns(hdr, XML_NS_XML, "lang"));
    /* §4.7.2: answer the client's 'from' (if it is a JID) in our 'to'. */
    const char *from = xml_attr_get(hdr, "from");
    struct jid j;
    if (from != NULL && jid_parse_str(xstream_arena(c->xs), from, &j, NULL) < 0)
        from = NULL;
    stream_send_header(c, from);
    if (err.cond != XMPP_COND_NONE) {
        client_stream_error(c, err.cond, "%s", err.text);
        return -1;
    }
    c->state = c->authed ? CLIENT_AUTHED : CLIENT_PRE_AUTH;
    features_send(c);
    return 0;
}

void stream_send_header(struct client *c, const char *to)
{
    char id[COMP_STREAM_ID_LEN + 1];
    comp_stream_id(id);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<?xml version='1.0'?><stream:stream xmlns='" XML_NS_CLIENT
                       "' xmlns:stream='" XML_NS_STREAM "'");
    if (c->domain != NULL)
        xml_append_attr(&b, "from", c->domain);
    if (to != NULL)
        xml_append_attr(&b, "to", to);
    xml_append_attr(&b, "id", id);
    buf_append_str(&b, " version='1.0'");
    xml_append_attr(&b, "xml:lang", c->lang ? c->lang : "en");
    buf_append_char(&b, '>');
    client_write(c, b.data, b.len);
    buf_fini(&b);
    c->header_sent = true;
}
