/* SPDX-License-Identifier: MIT */
/* XEP-0114 on the accepting end: the component's header names it, we answer
 * with a stream id, and its <handshake/> must prove the configured secret. */
#include "router.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "hmap.h"
#include "xml.h"
#include "xstream.h"

static char *lower_dup(const char *s)
{
    char *p = xstrdup(s);
    for (char *q = p; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    return p;
}

int handshake_on_open(struct peer *c, const struct xml_node *hdr)
{
    comp_stream_id(c->stream_id);
    const char *ns = xstream_default_ns(c->xs);
    const char *to = xml_attr_get(hdr, "to");
    if (strcmp(ns, XML_NS_COMP) != 0) {
        peer_stream_error(c, XMPP_COND_STREAM_INVALID_NAMESPACE,
                          "default namespace '%s' is not " XML_NS_COMP, ns);
        return -1;
    }
    if (to == NULL || to[0] == '\0') {
        peer_stream_error(c, XMPP_COND_STREAM_HOST_UNKNOWN, "stream header has no 'to'");
        return -1;
    }
    c->name = lower_dup(to);
    log_ctx_set(&c->lc, "%s %s", c->peer, c->name);
    if (common_cfg_component(c->r->common, c->name) == NULL) {
        peer_send_header(c, c->name);
        peer_stream_error(c, XMPP_COND_STREAM_HOST_UNKNOWN, "no component '%s' is configured",
                          c->name);
        return -1;
    }
    peer_send_header(c, c->name);
    c->state = PEER_HANDSHAKE;
    return 0;
}

void handshake_on_stanza(struct peer *c, const struct xml_node *st, const char *raw, size_t len)
{
    if (!xml_is(st, XML_NS_COMP, "handshake")) {
        peer_stream_error(c, XMPP_COND_STREAM_NOT_AUTHORIZED, "<%s/> before the handshake",
                          st->name);
        return;
    }
    /* The stream is parsed shallowly, so the digest is read from the raw
     * bytes; it is plain hex, and anything else fails the comparison. */
    const char *digest;
    size_t dlen;
    raw_inner(raw, len, &digest, &dlen);
    const struct comp_cfg *cc = common_cfg_component(c->r->common, c->name);
    if (cc == NULL || !comp_handshake_check(c->stream_id, cc->secret, digest, dlen)) {
        peer_stream_error(c, XMPP_COND_STREAM_NOT_AUTHORIZED, "wrong handshake for '%s'", c->name);
        return;
    }
    if (hmap_get(c->r->by_name, c->name) != NULL) {
        peer_stream_error(c, XMPP_COND_STREAM_CONFLICT, "component '%s' is already connected",
                          c->name);
        return;
    }
    event_del(c->timer);
    hmap_put(c->r->by_name, c->name, c);
    c->state = PEER_READY;
    bind_add(c, c->name);
    peer_write(c, "<handshake/>", 12);
    log_notice(&c->lc, "component %s up", c->name);
    notice_component(c->r, c, true);
}

void handshake_on_timeout(struct peer *c)
{
    peer_stream_error(c, XMPP_COND_STREAM_CONNECTION_TIMEOUT,
                      "no successful handshake within %ld ms", c->r->cfg->handshake_timeout_ms);
}
