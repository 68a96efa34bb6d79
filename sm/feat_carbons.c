/* SPDX-License-Identifier: MIT */
/* Message Carbons (XEP-0280, urn:xmpp:carbons:2): a resource that enables
 * them gets a copy of the IM messages its account receives on its other
 * resources (<received/>) and sends from them (<sent/>), forwarded as in
 * XEP-0297. <private/> and the XEP-0334 <no-copy/> hint opt a message out. */
#include "sm.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "hmap.h"
#include "xml.h"

#define NS_CARBONS    "urn:xmpp:carbons:2"
#define NS_FORWARD    "urn:xmpp:forward:0"
#define NS_HINTS      "urn:xmpp:hints"
#define NS_SID        "urn:xmpp:sid:0"
#define NS_MUC_USER   "http://jabber.org/protocol/muc#user"
#define NS_CONFERENCE "jabber:x:conference"

#define KEY_MAX 512

extern const struct sm_feature sm_feat_carbons;

/* The carbons-enabled sessions, "c2s/sid" -> struct sm_session: the
 * feature's state (sm_feature_state). */
static struct hmap *enabled_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_carbons);
}

/* Payloads of XEP-0280 §6.1 that make a bodiless message worth copying:
 * receipts, chat states, chat markers and direct MUC invitations. */
static const char *const im_payloads[] = {
    "urn:xmpp:receipts",
    "http://jabber.org/protocol/chatstates",
    "urn:xmpp:chat-markers:0",
    NS_CONFERENCE,
    NULL,
};

static void key_of(const struct sm_session *s, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", s->c2s, s->sid);
}

static bool is_enabled(const struct sm_session *s)
{
    char key[KEY_MAX];
    key_of(s, key, sizeof(key));
    return hmap_get(enabled_of(s->user->sm), key) == s;
}

static bool has_im_payload(const struct xml_node *st)
{
    for (const struct xml_node *c = xml_first_elem(st); c != NULL; c = xml_next_elem(c)) {
        for (size_t i = 0; im_payloads[i] != NULL; i++) {
            if (strcmp(c->ns, im_payloads[i]) == 0)
                return true;
        }
    }
    return false;
}

/* XEP-0280 §6.1 (and §8): whether a message is copied. Errors are not:
 * nothing here tells which message an error answers. */
static bool eligible(const struct sm_pkt *p, bool received)
{
    const struct xml_node *st = p->st;
    if (xml_child(st, NS_CARBONS, "private") != NULL || xml_child(st, NS_HINTS, "no-copy") != NULL)
        return false;
    if (!strcmp(p->type, "error") || !strcmp(p->type, "groupchat") || !strcmp(p->type, "headline"))
        return false;
    const struct xml_node *muc = xml_child(st, NS_MUC_USER, "x");
    if (muc != NULL && xml_child(muc, NS_MUC_USER, "invite") != NULL)
        return true; /* a mediated invitation */
    if (received && muc != NULL && p->from.resource != NULL)
        return false; /* a private message from an occupant: the room copies those */
    if (!strcmp(p->type, "chat") || xml_child(st, XML_NS_CLIENT, "body") != NULL)
        return true;
    return has_im_payload(st);
}

/* Writes <message from=bare to=resource><dir><forwarded>st</forwarded></dir>
 * to one session. The copy carries <no-store/> so that it is never queued
 * offline should that session's c2s vanish before acknowledging it. */
static void send_copy(struct sm_session *to, const struct sm_pkt *p, const char *dir)
{
    struct arena *a = arena_new(2048);
    const char *type = p->type[0] ? p->type : NULL;
    struct xml_node *m = sm_stanza_new(a, "message", to->user->jid, to->jid, type, NULL);
    struct xml_node *w = xml_elem_add(a, m, NS_CARBONS, dir);
    struct xml_node *f = xml_elem_add(a, w, NS_FORWARD, "forwarded");
    xml_append(f, xml_node_copy(a, p->st));
    xml_elem_add(a, m, NS_HINTS, "no-store");
    sm_session_write(to, m, NULL);
    arena_free(&a);
}

/* The account's own stanza-id (stamped by the archive for the sent
 * carbons, XEP-0313 §3.4) is for its resources only: it never leaves. */
static void strip_own_stanza_id(struct sm_pkt *p)
{
    const char *own = p->user->jid;
    struct xml_node *c = xml_child(p->st, NS_SID, "stanza-id");
    while (c != NULL) {
        struct xml_node *next = xml_next(c, NS_SID, "stanza-id");
        const char *by = xml_attr_get(c, "by");
        struct jid j;
        if (by != NULL && jid_parse_str(p->a, by, &j, NULL) == 0 &&
            strcmp(jid_full(p->a, &j), own) == 0)
            xml_remove(c);
        c = next;
    }
}

/* XEP-0280 §8: copies of what a resource sends go to the account's other
 * enabled resources. A message to the account itself is left to the
 * received side, so that no resource gets it twice. */
static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind != SM_MESSAGE || p->route != SM_FROM_SESSION || p->user == NULL)
        return SM_PASS;
    if (p->has_to && !jid_bare_eq(&p->to, &p->from) && eligible(p, false) &&
        sm_allow_out(p->user, SM_MESSAGE, jid_full(p->a, &p->to))) {
        for (struct sm_session *s = p->user->sessions; s != NULL; s = s->next) {
            if (s != p->sess && s->available && is_enabled(s))
                send_copy(s, p, "sent");
        }
    }
    strip_own_stanza_id(p);
    return SM_PASS;
}

static bool delivered_to(const struct sm_session *s, struct sm_session *const *to, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (to[i] == s)
            return true;
    }
    return false;
}

/* XEP-0280 §7: after delivery, every enabled resource that did not get the
 * message itself gets a copy (never the resource that sent it). */
static void on_delivered(struct sm_pkt *p, struct sm_session *const *to, size_t n)
{
    if (p->kind != SM_MESSAGE || p->user == NULL || n == 0 || !eligible(p, true))
        return;
    const char *sender = jid_full(p->a, &p->from);
    for (struct sm_session *s = p->user->sessions; s != NULL; s = s->next) {
        if (!s->available || !is_enabled(s) || delivered_to(s, to, n) ||
            strcmp(s->jid, sender) == 0)
            continue;
        send_copy(s, p, "received");
    }
}

/* <enable/> and <disable/> (XEP-0280 §4, §5); repeating either is no
 * error (§11.1). Only the account's own resources may ask. */
static void on_iq(struct sm_pkt *p, struct xml_node *req)
{
    if (p->route != SM_FROM_SESSION || p->sess == NULL) {
        sm_error(p, XMPP_COND_NOT_ALLOWED, "carbons are for the account's own resources");
        return;
    }
    if (strcmp(p->type, "set") != 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "carbons are enabled or disabled with an iq set");
        return;
    }
    char key[KEY_MAX];
    key_of(p->sess, key, sizeof(key));
    struct hmap *enabled = enabled_of(p->sm);
    if (xml_is(req, NS_CARBONS, "enable")) {
        hmap_put(enabled, key, p->sess);
    } else if (xml_is(req, NS_CARBONS, "disable")) {
        if (hmap_get(enabled, key) == p->sess)
            hmap_del(enabled, key);
    } else {
        sm_error(p, XMPP_COND_BAD_REQUEST, "expected <enable/> or <disable/>");
        return;
    }
    sm_iq_result(p, NULL);
}

static void on_session_end(struct sm_session *s)
{
    char key[KEY_MAX];
    key_of(s, key, sizeof(key));
    struct hmap *enabled = enabled_of(s->user->sm);
    if (hmap_get(enabled, key) == s)
        hmap_del(enabled, key);
}

static int carbons_init(struct sm *sm, struct err *err)
{
    (void)err;
    sm_feature_map_new(sm, &sm_feat_carbons);
    return 0;
}

static void carbons_fini(struct sm *sm)
{
    sm_feature_map_free(sm, &sm_feat_carbons, NULL); /* values are sessions, not owned */
}

static const struct sm_iq_handler iqs[] = {
    {NS_CARBONS, SM_IQ_ACCOUNT | SM_IQ_USER, on_iq},
};
static const char *const server_features[] = {NS_CARBONS, NULL};

/* After the archive (order 80), whose stanza-id the sent copies carry. */
const struct sm_feature sm_feat_carbons = {
    .name = "carbons",
    .order = 90,
    .server_features = server_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = carbons_init,
    .fini = carbons_fini,
    .on_stanza = on_stanza,
    .on_session_end = on_session_end,
    .on_delivered = on_delivered,
};
