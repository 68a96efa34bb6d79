/* SPDX-License-Identifier: MIT */
/* Stanzas of a bound session: from the client, 'from' checked and stamped
 * (RFC 6120 §8.1.2.1) and forwarded to the sm; from the sm, written to the
 * client in jabber:client. */
#include "c2s.h"

#include <string.h>

#include "arena.h"
#include "buf.h"
#include "comp_handshake.h"
#include "jid.h"
#include "xml.h"
#include "xstream.h"

#define OUTPUT_MAX (4u << 20) /* bytes queued to a client before it is dropped */

/* Subscription-related presence may carry the bare JID (§8.1.2.1, RFC
 * 6121 §3). */
static bool is_subscription(const struct xml_node *st)
{
    static const char *const types[] = {"subscribe", "subscribed", "unsubscribe", "unsubscribed"};
    const char *type = xml_attr_get(st, "type");
    if (!xml_is(st, XML_NS_CLIENT, "presence") || type == NULL)
        return false;
    for (size_t i = 0; i < PL_ARRAY_LEN(types); i++) {
        if (strcmp(type, types[i]) == 0)
            return true;
    }
    return false;
}

/* A 'from' the client may write: its full JID, or its bare JID on
 * subscription presence. Anything else is invalid-from. */
static bool from_ok(struct client *c, const struct xml_node *st, const char *from)
{
    struct arena *a = xstream_arena(c->xs);
    struct jid j;
    if (jid_parse_str(a, from, &j, NULL) < 0)
        return false;
    if (j.resource != NULL)
        return strcmp(jid_full(a, &j), session_jid(c->sess)) == 0;
    return is_subscription(st) && j.local != NULL && strcmp(j.local, c->local) == 0 &&
           strcmp(j.domain, c->domain) == 0;
}

static bool is_ours(const struct xml_node *st, const char *ns, const char *name)
{
    return xml_is(st, XML_NS_CLIENT, "iq") && xml_child(st, ns, name) != NULL;
}

void stanza_from_client(struct client *c, struct xml_node *st)
{
    if (is_ours(st, C2S_NS_BIND, "bind")) {
        bind_on_iq(c, st, xml_child(st, C2S_NS_BIND, "bind"));
        return;
    }
    if (is_ours(st, C2S_NS_SESSION, "session")) {
        session_iq(c, st);
        return;
    }
    if (is_ours(st, C2S_NS_REGISTER, "query") && register_on_iq(c, st))
        return;
    const char *from = xml_attr_get(st, "from");
    if (from != NULL && !from_ok(c, st, from)) {
        client_stream_error(c, XMPP_COND_STREAM_INVALID_FROM,
                            "'from' is '%.100s', not the session's %s", from, session_jid(c->sess));
        return;
    }
    struct arena *a = xstream_arena(c->xs);
    xml_attr_set(a, st, "from", session_jid(c->sess));
    /* §4.7.4: the stream's default language goes with each stanza. */
    if (c->lang != NULL && xml_attr_get_ns(st, XML_NS_XML, "lang") == NULL)
        xml_attr_set_ns(a, st, XML_NS_XML, "lang", c->lang);
    struct buf b = BUF_INIT;
    buf_reserve(&b, 1024); /* most stanzas: one allocation, not four */
    xml_serialize(&b, st, PL_NS_ROUTER);
    session_forward(c->sess, b.data, b.len);
    if (xml_is(st, XML_NS_CLIENT, "presence") && xml_attr_get(st, "to") == NULL) {
        const char *type = xml_attr_get(st, "type");
        if (type == NULL)
            session_remember_presence(c->sess, b.data, b.len);
        else if (strcmp(type, "unavailable") == 0)
            session_remember_presence(c->sess, NULL, 0);
    }
    buf_fini(&b);
    c->c2s->stats.stanzas_in++;
    if (sm_link_congested(c->c2s))
        limits_block_router(c);
}

/* A stanza the sm wrapped in another namespace (jabber:server or
 * jabber:component:accept) is moved to jabber:client, children included. */
static void to_client_ns(struct xml_node *n, const char *from_ns)
{
    if (n->kind != XML_ELEM || strcmp(n->ns, from_ns) != 0)
        return;
    n->ns = XML_NS_CLIENT;
    for (struct xml_node *ch = xml_first_elem(n); ch != NULL; ch = xml_next_elem(ch))
        to_client_ns(ch, from_ns);
}

void stanza_to_client(struct client *c, struct xml_node *st)
{
    if (strcmp(st->ns, XML_NS_CLIENT) != 0)
        to_client_ns(st, st->ns);
    client_write_node(c, st);
    c->c2s->stats.stanzas_out++;
    /* A client that stops reading cannot hold the c2s's memory hostage. */
    size_t cap = 8 * c->c2s->cfg->max_stanza;
    if (cap < OUTPUT_MAX)
        cap = OUTPUT_MAX;
    if (conn_output_len(c->conn) > cap)
        client_stream_error(c, XMPP_COND_STREAM_RESOURCE_CONSTRAINT,
                            "more than %zu bytes wait for the client to read them", cap);
}
