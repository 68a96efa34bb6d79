/* SPDX-License-Identifier: MIT */
/* The privacy model shared by privacy lists (XEP-0016, feat_privacy.c) and
 * the blocking command (XEP-0191, feat_blocking.c): one cache of each
 * user's lists in the privacy feature's state (sm_feature_state), loaded
 * from the store on first use and written through on every change. The
 * blocklist is the set of jid/deny items for every stanza kind of the
 * user's default list (XEP-0191 §5). */
#ifndef PL_SM_PRIVACY_H
#define PL_SM_PRIVACY_H

#include "sm.h"

#define NS_PRIVACY         "jabber:iq:privacy"
#define NS_BLOCKING        "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"

/* The list the blocking command creates, and makes the default, when the
 * user has no default list yet. */
#define PRIVACY_BLOCKING_LIST "urn:xmpp:blocking"

/* The most items a list may have (privacy lists and blocklist alike), and
 * the largest order (xs:unsignedInt). */
#define PRIVACY_MAX_ITEMS 1024
#define PRIVACY_MAX_ORDER 4294967295LL

/* Stanza classes. The first four are the store's 'block' bits of an item
 * (0 there means every kind, subscriptions and probes included); OTHER is
 * what only such every-kind items match: outbound messages and iqs,
 * subscription presence, probes and presence errors. */
#define PRIVACY_MESSAGE  0x1u
#define PRIVACY_IQ       0x2u
#define PRIVACY_PRES_IN  0x4u
#define PRIVACY_PRES_OUT 0x8u
#define PRIVACY_OTHER    0x10u

enum privacy_type {
    PRIVACY_T_ANY = 0, /* no type: the fall-through item */
    PRIVACY_T_JID,
    PRIVACY_T_GROUP,
    PRIVACY_T_SUB,
};

/* One rule. value is the normalised JID, the group name or
 * none/to/from/both (NULL for fall-through); a jid item also keeps its
 * parts (local and resource NULL when absent). All heap strings. */
struct privacy_item {
    int64_t order;
    enum privacy_type type;
    char *value;
    char *local, *domain, *resource;
    bool deny;
    unsigned block; /* PRIVACY_MESSAGE..PRIVACY_PRES_OUT bits; 0 = every kind */
};

/* A named list, items in ascending order. */
struct privacy_list {
    char *name;
    struct privacy_item *items;
    size_t n;
    struct privacy_list *next;
};

/* What a session chose: its active list and which pushes it wants. */
struct privacy_sess {
    const struct sm_session *s;
    char *active;   /* the active list's name, or NULL: the default applies */
    bool blocklist; /* asked for the blocklist: gets block/unblock pushes */
    bool privacy;   /* used jabber:iq:privacy: gets list pushes for blocking changes */
    struct privacy_sess *next;
};

/* One user's lists, keyed by bare JID in the privacy feature's state. */
struct privacy_user {
    struct sm *sm;
    char *jid;
    int pending; /* store loads in flight; the lists are usable at 0 */
    bool orphan; /* freed by its last load callback (the sm is stopping) */
    struct privacy_list *lists;
    char *default_name; /* NULL: no default list */
    struct privacy_sess *sessions;
    struct sm_pkt *waiting_head, *waiting_tail; /* stanzas waiting for the load */
};

/* The loaded lists of p->user. When they are not loaded yet, keeps p,
 * starts the load and returns NULL: p runs through the pipeline again once
 * they are (so an iq handler or hook just returns). */
struct privacy_user *privacy_user_ready(struct sm_pkt *p);
/* The session's state, created on first use (owned by pu). */
struct privacy_sess *privacy_sess_get(struct privacy_user *pu, const struct sm_session *s);

/* pu's list of that name, or NULL. */
struct privacy_list *privacy_list_find(const struct privacy_user *pu, const char *name);
/* A new empty list (heap, owned by the caller until privacy_list_put). */
struct privacy_list *privacy_list_new(const char *name);
/* Appends item, taking its strings. */
void privacy_list_append(struct privacy_list *l, const struct privacy_item *item);
/* Sorts the items by ascending order. */
void privacy_list_sort(struct privacy_list *l);
/* Removes item i (freeing its strings). */
void privacy_list_delete(struct privacy_list *l, size_t i);
/* Frees a list that is not (or no longer) in a privacy_user; NULL is fine. */
void privacy_list_free(struct privacy_list *l);
/* A jid/deny item for every kind: what the blocklist is made of. */
bool privacy_item_is_block(const struct privacy_item *it);
/* Fills it as a jid item for j (normalised); its old strings are not freed. */
void privacy_item_set_jid(struct privacy_item *it, const struct jid *j);

/* Changes, in memory at once and then written to the store. */
/* Adds l to pu (taking it) or, when pu has a list of that name, replaces
 * that one (freed); saves it. */
void privacy_list_put(struct privacy_user *pu, struct privacy_list *l);
/* Saves l (already in pu, changed in place). */
void privacy_list_save(struct privacy_user *pu, const struct privacy_list *l);
/* Removes the list; the default and active lists naming it are cleared. */
void privacy_list_remove(struct privacy_user *pu, const char *name);
/* Sets the default list (NULL: none); name must be a list of pu. */
void privacy_default_set(struct privacy_user *pu, const char *name);

/* The jids of the blocklist (in a), in list order; returns how many. */
size_t privacy_blocklist(const struct privacy_user *pu, struct arena *a, const char ***jids_r);
/* Sends <verb xmlns='urn:xmpp:blocking'> (block or unblock) with these
 * items to every session of u that asked for the blocklist. */
void privacy_push_blocking(struct privacy_user *pu, struct sm_user *u, const char *verb,
                           const char *const *jids, size_t n);

/* A change to pu's lists, bracketed by begin and end: end sends what the
 * XEPs ask for after it. A privacy list push naming `pushed` (when not
 * NULL) to every session, or with by_blocking only to the sessions that
 * use privacy lists; block/unblock pushes for a blocklist changed through
 * privacy lists (by_blocking: the blocking command pushes its own);
 * unavailable presence to each contact that stopped receiving the user's
 * presence and the current presence to each that receives it again
 * (XEP-0016 §2.11, XEP-0191 §3.3, §3.4). end frees *ch. */
struct privacy_change;
struct privacy_change *privacy_change_begin(struct privacy_user *pu, struct sm_user *u);
void privacy_change_end(struct privacy_change **ch, const char *pushed, bool by_blocking);

#endif
