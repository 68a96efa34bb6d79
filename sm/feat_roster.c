/* SPDX-License-Identifier: MIT */
/* Roster management (RFC 6121 §2): get with versioning (XEP-0237), set and
 * remove with names and groups, and pushes to every interested resource. */
#include "roster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

struct sm_item *roster_item_new(const char *bare)
{
    struct sm_item *it = xcalloc(1, sizeof(*it));
    it->jid = xstrdup(bare);
    return it;
}

static const char *subscription(const struct sm_item *it)
{
    if (it->sub_to && it->sub_from)
        return "both";
    if (it->sub_to)
        return "to";
    if (it->sub_from)
        return "from";
    return "none";
}

void roster_item_xml(struct arena *a, struct xml_node *parent, const struct sm_item *it,
                     bool removed)
{
    struct xml_node *n = xml_elem_add(a, parent, NS_ROSTER, "item");
    xml_attr_set(a, n, "jid", it->jid);
    if (removed) {
        xml_attr_set(a, n, "subscription", "remove");
        return;
    }
    if (it->name != NULL)
        xml_attr_set(a, n, "name", it->name);
    xml_attr_set(a, n, "subscription", subscription(it));
    if (it->ask_out)
        xml_attr_set(a, n, "ask", "subscribe");
    if (it->approved)
        xml_attr_set(a, n, "approved", "true");
    for (size_t i = 0; i < it->ngroups; i++) {
        struct xml_node *g = xml_elem_add(a, n, NS_ROSTER, "group");
        xml_text_add(a, g, it->groups[i], strlen(it->groups[i]));
    }
}

void roster_push(struct sm_user *u, const struct sm_item *it, bool removed)
{
    struct arena *a = arena_new(1024);
    char ver[32];
    snprintf(ver, sizeof(ver), "%" PRId64, u->roster_ver);
    for (struct sm_session *s = u->sessions; s != NULL; s = s->next) {
        if (!s->interested)
            continue;
        char id[48];
        snprintf(id, sizeof(id), "push%" PRIu64, ++u->sm->origin_counter);
        struct xml_node *iq = sm_stanza_new(a, "iq", NULL, s->jid, "set", id);
        struct xml_node *q = xml_elem_add(a, iq, NS_ROSTER, "query");
        xml_attr_set(a, q, "ver", ver);
        roster_item_xml(a, q, it, removed);
        sm_session_write(s, iq, NULL);
    }
    arena_free(&a);
}

static void roster_get(struct sm_pkt *p, struct xml_node *q)
{
    struct sm_user *u = p->user;
    p->sess->interested = true;
    char ver[32];
    snprintf(ver, sizeof(ver), "%" PRId64, u->roster_ver);
    const char *asked = xml_attr_get(q, "ver");
    if (asked != NULL && strcmp(asked, ver) == 0) {
        sm_iq_result(p, NULL); /* XEP-0237: unchanged; pushes follow */
        return;
    }
    struct xml_node *r = xml_elem_new(p->a, NS_ROSTER, "query");
    xml_attr_set(p->a, r, "ver", ver);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(u->roster, &it, NULL, &v)) {
        struct sm_item *item = v;
        if (item->in_roster)
            roster_item_xml(p->a, r, item, false);
    }
    sm_iq_result(p, r);
}

/* Sends a subscription presence on the user's behalf (stamped bare). */
static void send_sub(struct sm_user *u, const char *to, const char *type)
{
    struct arena *a = arena_new(256);
    sm_send(u->sm, sm_stanza_new(a, "presence", u->jid, to, type, NULL), NULL);
    arena_free(&a);
}

static void roster_remove(struct sm_pkt *p, const char *bare)
{
    struct sm_user *u = p->user;
    struct sm_item *it = sm_user_item(u, bare);
    if (it == NULL || !it->in_roster) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
        return;
    }
    /* RFC 6121 §2.5.2: cancel both directions with the contact */
    if (it->sub_to || it->ask_out)
        send_sub(u, bare, "unsubscribe");
    if (it->sub_from || it->ask_in)
        send_sub(u, bare, "unsubscribed");
    struct sm_item gone = {.jid = (char *)bare};
    sm_user_delete_item(u, bare);
    sm_iq_result(p, NULL);
    roster_push(u, &gone, true);
}

/* Reads the groups of an <item/>; -1 with an error sent when invalid. */
static int read_groups(struct sm_pkt *p, struct xml_node *item, char ***groups_r, size_t *n_r)
{
    char **g = NULL;
    size_t n = 0;
    for (struct xml_node *c = xml_child(item, NS_ROSTER, "group"); c != NULL;
         c = xml_next(c, NS_ROSTER, "group")) {
        const char *name = xml_text(p->a, c);
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup = dup || strcmp(g[i], name) == 0;
        if (name[0] == '\0' || dup || strlen(name) > 1023) {
            for (size_t i = 0; i < n; i++)
                free(g[i]);
            free(g);
            sm_error(p, name[0] == '\0' ? XMPP_COND_NOT_ACCEPTABLE : XMPP_COND_BAD_REQUEST,
                     name[0] == '\0' ? "empty group name" : "duplicate group");
            return -1;
        }
        g = xrealloc(g, (n + 1) * sizeof(*g));
        g[n++] = xstrdup(name);
    }
    *groups_r = g;
    *n_r = n;
    return 0;
}

static void roster_set(struct sm_pkt *p, struct xml_node *q)
{
    struct sm_user *u = p->user;
    struct xml_node *item = xml_child(q, NS_ROSTER, "item");
    if (item == NULL || xml_next(item, NS_ROSTER, "item") != NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "a roster set carries exactly one item");
        return;
    }
    const char *jid = xml_attr_get(item, "jid");
    struct jid j;
    if (jid == NULL || jid_parse_str(p->a, jid, &j, NULL) < 0) {
        sm_error(p, XMPP_COND_JID_MALFORMED, NULL);
        return;
    }
    const char *bare = jid_full(p->a, &j);
    if (strcmp(bare, u->jid) == 0) {
        sm_error(p, XMPP_COND_NOT_ALLOWED, "your own JID cannot be in your roster");
        return;
    }
    const char *sub = xml_attr_get(item, "subscription");
    if (sub != NULL && strcmp(sub, "remove") == 0) {
        roster_remove(p, bare);
        return;
    }
    char **groups;
    size_t ngroups;
    if (read_groups(p, item, &groups, &ngroups) < 0)
        return;
    struct sm_item *it = sm_user_item(u, bare);
    if (it == NULL)
        it = roster_item_new(bare);
    it->in_roster = true;
    free(it->name);
    const char *name = xml_attr_get(item, "name");
    it->name = name && name[0] ? xstrdup(name) : NULL;
    for (size_t i = 0; i < it->ngroups; i++)
        free(it->groups[i]);
    free(it->groups);
    it->groups = groups;
    it->ngroups = ngroups;
    sm_user_save_item(u, it);
    sm_iq_result(p, NULL);
    roster_push(u, it, false);
}

static void on_roster(struct sm_pkt *p, struct xml_node *q)
{
    if (!strcmp(p->type, "get"))
        roster_get(p, q);
    else
        roster_set(p, q);
}

static const struct sm_iq_handler iqs[] = {{NS_ROSTER, SM_IQ_ACCOUNT, on_roster}};
static const char *const account_features[] = {NULL};
static const char *const server_features[] = {NULL};

const struct sm_feature sm_feat_roster = {
    .name = "roster",
    .core = true,
    .order = 10,
    .server_features = server_features,
    .account_features = account_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
};
