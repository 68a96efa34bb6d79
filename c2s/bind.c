/* SPDX-License-Identifier: MIT */
/* Resource binding (RFC 6120 §7): the client's resource (or one we make
 * up) goes to the sm in <start/>; the iq result waits for <started/>, which
 * carries the resource the sm settled on. Also the optional legacy session
 * iq (RFC 3921 §3, answered with an empty result). */
#include "c2s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "alloc.h"
#include "arena.h"
#include "jid.h"
#include "xml.h"
#include "xstream.h"

static char *make_resource(void)
{
    unsigned char rnd[8];
    char *r = xmalloc(2 * sizeof(rnd) + 1);
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) < 0)
        memset(rnd, 0, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(r + 2 * i, 3, "%02x", rnd[i]);
    return r;
}

/* The full JID for the requested resource, in a; NULL when the resource
 * is not a valid resourcepart (§7.7.2.1: bad-request). */
static const char *full_jid(struct client *c, struct arena *a, const char *res)
{
    struct jid j;
    const char *s = arena_printf(a, "%s@%s/%s", c->local, c->domain, res);
    if (jid_parse_str(a, s, &j, NULL) < 0 || j.resource == NULL)
        return NULL;
    return jid_full(a, &j);
}

void bind_on_iq(struct client *c, const struct xml_node *iq, const struct xml_node *bind)
{
    const char *type = xml_attr_get(iq, "type");
    if (type == NULL || strcmp(type, "set") != 0) {
        client_iq_error(c, iq, XMPP_COND_BAD_REQUEST);
        return;
    }
    if (c->state != CLIENT_AUTHED || c->sess != NULL) {
        /* One resource per stream. */
        client_iq_error(c, iq, XMPP_COND_NOT_ALLOWED);
        return;
    }
    struct arena *a = xstream_arena(c->xs);
    const char *res = xml_child_text(a, bind, C2S_NS_BIND, "resource");
    char *made = NULL;
    if (res == NULL || res[0] == '\0')
        res = made = make_resource();
    const char *jid = full_jid(c, a, res);
    if (jid == NULL)
        log_info(&c->lc, "bind: '%.100s' is not a valid resource", res);
    free(made);
    if (jid == NULL) {
        client_iq_error(c, iq, XMPP_COND_BAD_REQUEST);
        return;
    }
    const char *id = xml_attr_get(iq, "id");
    c->bind_id = xstrdup(id ? id : "");
    c->state = CLIENT_BINDING;
    c->sess = session_start(c, jid);
    log_debug(&c->lc, "bind %s requested", jid);
}

void bind_on_started(struct client *c, const char *jid)
{
    if (c->state != CLIENT_BINDING)
        return;
    struct arena *a = arena_new(512);
    struct xml_node *b = xml_elem_new(a, C2S_NS_BIND, "bind");
    struct xml_node *j = xml_elem_add(a, b, NULL, "jid");
    xml_text_add(a, j, jid, strlen(jid));
    client_iq_reply(c, c->bind_id, NULL, b, XMPP_COND_NONE);
    arena_free(&a);
    free(c->bind_id);
    c->bind_id = NULL;
    c->state = CLIENT_SESSION;
    client_set_log_prefix(c);
    log_info(&c->lc, "session started");
}

void bind_on_failed(struct client *c, enum xmpp_cond cond)
{
    if (c->state != CLIENT_BINDING)
        return;
    log_info(&c->lc, "bind refused by the session manager: %s", xmpp_cond_name(cond));
    client_iq_reply(c, c->bind_id, NULL, NULL, cond);
    free(c->bind_id);
    c->bind_id = NULL;
    c->sess = NULL;
    c->state = CLIENT_AUTHED;
}

void session_iq(struct client *c, const struct xml_node *iq)
{
    const char *type = xml_attr_get(iq, "type");
    if (type != NULL && strcmp(type, "set") == 0)
        client_iq_result(c, iq, NULL);
    else
        client_iq_error(c, iq, XMPP_COND_BAD_REQUEST);
}
