/* SPDX-License-Identifier: MIT */
/* Personal eventing (XEP-0163) on a small persistent pubsub (XEP-0060) that
 * every account is: what the pep (nodes, access, notifications), pep_publish
 * (the pubsub verbs), pep_owner (node configuration) and caps (XEP-0115
 * interests) features share. */
#ifndef PL_SM_PEP_H
#define PL_SM_PEP_H

#include "sm.h"

#define NS_PUBSUB        "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER  "http://jabber.org/protocol/pubsub#owner"
#define NS_PUBSUB_EVENT  "http://jabber.org/protocol/pubsub#event"
#define NS_PUBSUB_ERRORS "http://jabber.org/protocol/pubsub#errors"
#define NS_PUBSUB_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_PUBSUB_PUBOPT "http://jabber.org/protocol/pubsub#publish-options"
#define NS_XDATA         "jabber:x:data"
#define NS_DISCO_INFO    "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS   "http://jabber.org/protocol/disco#items"

/* What pubsub#max_items 'max' means, and the most a node may keep; the
 * most nodes an account may have, and subscriptions a node. */
#define PEP_MAX_ITEMS 1000
#define PEP_MAX_NODES 256
#define PEP_MAX_SUBS  1000

enum pep_access {
    PEP_ACCESS_PRESENCE = 0, /* the owner and contacts subscribed to its presence */
    PEP_ACCESS_OPEN,         /* anyone */
    PEP_ACCESS_WHITELIST,    /* the owner and the node's members */
};

enum pep_send_last {
    PEP_SEND_NEVER = 0,
    PEP_SEND_ON_SUB,
    PEP_SEND_ON_SUB_AND_PRESENCE,
};

/* A node's configuration (pubsub#node_config). title is a heap string or
 * NULL. */
struct pep_config {
    enum pep_access access;
    enum pep_send_last send_last;
    bool persist_items;
    long max_items; /* 1..PEP_MAX_ITEMS */
    bool deliver_notifications, deliver_payloads, notify_retract, notify_delete;
    char *title;
};

/* One node of an account, cached while the account is in use. subs holds
 * the explicit subscriptions (the JID as subscribed, bare or full) and
 * members the whitelist (bare JIDs); the maps' values are the node. */
struct pep_node {
    char *name;
    struct pep_config cfg;
    struct hmap *subs;
    struct hmap *members;
};

/* Why an entity may not see a node (XEP-0060 §6.1.3, §6.5.9). */
enum pep_deny {
    PEP_ALLOWED = 0,
    PEP_DENY_PRESENCE,  /* not-authorized, presence-subscription-required */
    PEP_DENY_WHITELIST, /* not-allowed, closed-node */
};

/* ---- feat_pep.c: nodes, access, notifications ---------------------------- */

/* The values of pubsub#access_model and pubsub#send_last_published_item,
 * indexed by the enums, NULL-terminated. */
extern const char *const pep_access_names[];
extern const char *const pep_send_last_names[];

/* The defaults of a new node (XEP-0163 §5: presence access, last item on
 * presence; one item kept). */
void pep_config_default(struct pep_config *cfg);
/* Copies src into dst (title duplicated; dst's own title freed). */
void pep_config_copy(struct pep_config *dst, const struct pep_config *src);
void pep_config_fini(struct pep_config *cfg);

/* Runs fn(p, payload) once the nodes of owner (a bare JID) are cached: at
 * once, or after a store read while p is kept (p is freed after fn unless
 * fn keeps it again). A failed read answers internal-server-error. */
typedef void pep_pkt_fn(struct sm_pkt *p, struct xml_node *payload);
void pep_with_nodes(struct sm_pkt *p, const char *owner, pep_pkt_fn *fn, struct xml_node *payload);
/* The same for work that is not a stanza: fn(sm, owner, arg) runs once the
 * nodes are cached, or with ok false when they could not be read; arg
 * belongs to fn. */
typedef void pep_owner_fn(struct sm *sm, const char *owner, bool ok, void *arg);
void pep_with_owner(struct sm *sm, const char *owner, pep_owner_fn *fn, void *arg);

/* The cached nodes of owner (name -> struct pep_node), NULL when not
 * cached: valid until the next return to the event loop. */
struct hmap *pep_nodes(struct sm *sm, const char *owner);
struct pep_node *pep_node_get(struct sm *sm, const char *owner, const char *name);
/* Creates a cached node with cfg (copied) and stores it; NULL when the
 * account has PEP_MAX_NODES already. */
struct pep_node *pep_node_create(struct sm *sm, const char *owner, const char *name,
                                 const struct pep_config *cfg);
/* Stores a node's configuration, subscriptions and members after a change. */
void pep_node_save(struct sm *sm, const char *owner, const struct pep_node *n);
/* Removes a node and its items from the cache and the store. */
void pep_node_delete(struct sm *sm, const char *owner, const char *name);

/* Whether the entity bare may see node n of owner (loaded user u, or NULL
 * when the owner is not loaded: contacts then count as strangers). */
enum pep_deny pep_access(struct sm_user *u, const char *owner, const struct pep_node *n,
                         const char *bare);
/* Answers p with the error of a denial. */
void pep_deny_error(struct sm_pkt *p, enum pep_deny why);
/* Answers p with a stanza error carrying a pubsub#errors condition app
 * (NULL: none) and, for <unsupported/>, the feature. */
void pep_error(struct sm_pkt *p, enum xmpp_cond cond, const char *app, const char *feature);

/* A fresh item id and a publication time later than any before it. */
char *pep_item_id(struct arena *a);
int64_t pep_next_ts(struct sm *sm);

/* Sends event (a <event xmlns='...#event'/> built by the caller) to every
 * entity entitled to notifications of node n of owner (XEP-0163 §4.3):
 * the owner's resources and the contacts whose capabilities ask for the
 * node, and the explicit subscribers, as the access model allows. */
void pep_notify(struct sm *sm, const char *owner, const struct pep_node *n,
                const struct xml_node *event);
/* Sends the last item of node n of owner to to (a headline message) when
 * there is one. */
void pep_send_last(struct sm *sm, const char *owner, const struct pep_node *n, const char *to);
/* Appends <item id='id'>payload</item> (payload serialised XML, or NULL for
 * none) to parent. */
void pep_item_xml(struct arena *a, struct xml_node *parent, const char *id, const char *payload);

/* ---- feat_pep_owner.c: data forms ---------------------------------------- */

/* Why a form was refused: the stanza condition, a pubsub#errors condition
 * (or NULL) and a reason. */
struct pep_form_err {
    enum xmpp_cond cond;
    const char *app;
    const char *text;
};

/* Applies the fields of a submitted node_config or publish-options form
 * (x, a jabber:x:data <x/>) to cfg. Returns 0, or -1 with e set and cfg
 * partly changed (the caller works on a copy). */
int pep_form_apply(struct arena *a, const struct xml_node *x, struct pep_config *cfg,
                   bool publish_options, struct pep_form_err *e);
/* XEP-0060 §7.1.5: true when every field of the publish-options form x
 * holds for cfg (unknown fields never do). */
bool pep_form_matches(struct arena *a, const struct xml_node *x, const struct pep_config *cfg);
/* The node_config form of cfg (type 'form' or 'result') in a. */
struct xml_node *pep_form_build(struct arena *a, const struct pep_config *cfg, const char *type);

/* ---- feat_caps.c: what the peers of an account ask for --------------------- */

/* One set of capabilities (XEP-0115): identities and features of a caps
 * 'ver', cached for the life of the process. */
struct caps_entry;

/* Whether e advertises node+notify (XEP-0163 §4.2); false for NULL. */
bool caps_wants(const struct caps_entry *e, const char *node);
/* The full JIDs (in a, *n_r of them) of the available entities whose
 * presence owner received (its own resources included) and whose
 * capabilities ask for node. */
const char **caps_interested(struct sm *sm, const char *owner, const char *node, struct arena *a,
                             size_t *n_r);

/* feat_pep.c: entity full, whose presence owner receives, became available
 * with capabilities now, or changed them from before (NULL: none known):
 * the last items of the nodes it newly asks for go to it (XEP-0163 §4.3.4). */
void pep_peer_interest(struct sm *sm, const char *owner, const char *full,
                       const struct caps_entry *now, const struct caps_entry *before);

#endif
