/* SPDX-License-Identifier: MIT */
/* parley-sm: the context, users, sessions, the stanza pipeline and the
 * feature registry shared by the sm's files. */
#ifndef PL_SM_H
#define PL_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common_cfg.h"
#include "conf.h"
#include "err.h"
#include "jid.h"
#include "log.h"
#include "store.h"

struct arena;
struct comp_client;
struct event;
struct event_base;
struct hmap;
struct sm;
struct sm_feature;
struct sm_grace;
struct sm_unacked;
struct xml_node;

#define SM_NS_SESSION "urn:parley:session:1"

/* ---- configuration (<sm>) ------------------------------------------------ */

enum sm_conflict {
    SM_CONFLICT_REPLACE = 0, /* the old session ends with <conflict/> */
    SM_CONFLICT_REFUSE,      /* the new session is refused */
    SM_CONFLICT_GENERATE,    /* the new session gets a server-made resource */
};

struct sm_cfg {
    const char *name;
    int resource_conflict; /* enum sm_conflict */
    long offline_quota;    /* messages per user; 0 = none stored */
    long session_grace_ms; /* how long a vanished c2s may take to come back */
    long archive_days;     /* archived messages kept (XEP-0313); 0 = for ever */
    const char **admins;   /* bare JIDs allowed the admin commands */
    size_t nadmins;
    /* Contact addresses (URIs) shown in the server's disco#info (XEP-0157) */
    const char **contact_abuse, **contact_admin, **contact_feedback, **contact_sales;
    const char **contact_security, **contact_status, **contact_support;
    size_t ncontact_abuse, ncontact_admin, ncontact_feedback, ncontact_sales;
    size_t ncontact_security, ncontact_status, ncontact_support;
    /* <features><disable>: registry names of features switched off */
    const char **disabled;
    size_t ndisabled;
};

extern const struct conf_table sm_cfg_table;

/* Whether the registry feature f is switched off by cfg's <features>
 * (itself, or the feature it is part of). */
bool sm_cfg_disables(const struct sm_cfg *cfg, const struct sm_feature *f);

/* ---- users and sessions ---------------------------------------------------- */

/* One roster item (RFC 6121 §2.1). */
struct sm_item {
    char *jid; /* bare, normalised */
    char *name;
    bool sub_to, sub_from; /* subscription = none/to/from/both */
    bool ask_out;          /* pending out: we asked them */
    bool ask_in;           /* pending in: they asked us, not yet answered */
    bool approved;         /* pre-approval of their future request */
    char *ask_in_xml;      /* the subscribe stanza to show at login */
    bool in_roster;        /* shown in the roster (not only a pending request) */
    char **groups;
    size_t ngroups;
};

struct sm_session {
    struct sm_user *user;
    char *jid; /* full JID */
    char *res; /* resource part */
    char *c2s; /* component name of the c2s holding it */
    char *sid; /* the c2s's session id */
    bool available;
    bool interested; /* asked for the roster: receives pushes */
    int priority;
    char *presence;        /* last available presence the client sent, serialised */
    struct hmap *directed; /* full JIDs sent directed presence (not via roster) */
    /* link state (docs/protocol.md §8) */
    uint64_t in_seq;  /* highest seq handled from the c2s */
    uint64_t out_seq; /* last seq sent to the c2s */
    uint64_t out_acked;
    struct sm_unacked *unacked_head, *unacked_tail;
    size_t nunacked;
    bool ack_owed;                          /* in sm->acks: a lone ack is due */
    struct sm_session *ack_prev, *ack_next; /* in sm->acks */
    bool c2s_down;           /* its c2s vanished; ended when the grace period is over */
    bool ended;              /* unlinked; freed when the last pkt holding it lets go */
    unsigned refs;           /* pkts (p->sess) holding it across asynchronous steps */
    struct sm_session *next; /* in user->sessions */
};

enum sm_user_state {
    SM_USER_LOADING,
    SM_USER_READY,
    SM_USER_MISSING, /* no such account */
};

struct sm_pkt;

struct sm_user {
    struct sm *sm;
    char *jid; /* bare */
    enum sm_user_state state;
    struct hmap *roster; /* bare jid -> struct sm_item */
    int64_t roster_ver;
    struct sm_session *sessions;
    struct sm_pkt *waiting_head, *waiting_tail; /* stanzas waiting for the load */
    int64_t last_used; /* housekeeping: unloaded when idle and sessionless */
    bool anonymous;    /* SASL ANONYMOUS: no account, nothing kept after logout */
};

/* ---- the stanza pipeline ------------------------------------------------------ */

enum sm_kind {
    SM_MESSAGE,
    SM_PRESENCE,
    SM_IQ,
};

enum sm_route {
    SM_FROM_SESSION, /* sent by a local session; p->sess is it, p->user its user */
    SM_TO_USER,      /* to a local user's bare or full JID; p->user is the recipient */
    SM_TO_DOMAIN,    /* to one of our domains itself */
};

enum sm_verdict {
    SM_PASS = 0, /* not mine: next handler */
    SM_HANDLED,  /* consumed (answered, delivered, stored or dropped) */
};

/* One stanza being processed. Lives in its own arena; a handler that must
 * finish later (after a store callback) calls sm_pkt_keep and later
 * sm_pkt_free. */
struct sm_pkt {
    struct sm *sm;
    struct arena *a;
    struct xml_node *st; /* the stanza, namespace jabber:client */
    enum sm_kind kind;
    enum sm_route route;
    const char *type; /* the type attribute, or "" when absent */
    struct jid from, to;
    bool has_to;
    struct sm_session *sess; /* SM_FROM_SESSION */
    struct sm_user *user;
    const char *origin; /* docs/protocol.md §8 'o' */
    bool kept;
    void (*resume)(struct sm_pkt *p); /* instead of the pipeline, after a wait */
    struct sm_pkt *next;              /* in a user's waiting list */
};

/* An iq handler: a namespace of the iq's child, where the iq is addressed. */
enum sm_iq_target {
    SM_IQ_SERVER = 1 << 0,  /* to a domain */
    SM_IQ_ACCOUNT = 1 << 1, /* to the sender's own bare JID (or no 'to') */
    SM_IQ_USER = 1 << 2,    /* to another local user's bare JID */
};

struct sm_iq_handler {
    const char *ns;
    unsigned targets;
    void (*fn)(struct sm_pkt *p, struct xml_node *payload);
};

/* A feature: one sm/feat_<name>.c file defines `const struct sm_feature
 * sm_feat_<name>`; the build lists every such file in the registry, so
 * adding a feature never means editing a central switch. */
struct sm_feature {
    const char *name;
    int order; /* lower runs first in the pipelines */
    /* Always on: RFC 6120/6121 need it; <features><disable> refuses it. */
    bool core;
    /* A piece of the named feature, split into its own file: on and off
     * with it, and not named in <features> itself. */
    const char *part_of;
    /* Features (NULL-terminated names) whose state this one uses: it may
     * not be on while one of them is disabled. */
    const char *const *needs;
    const char *const *server_features;  /* disco#info vars on the domain */
    const char *const *account_features; /* disco#info vars on accounts */
    const struct sm_iq_handler *iqs;
    size_t niqs;
    int (*init)(struct sm *sm, struct err *err);
    void (*fini)(struct sm *sm);
    /* message/presence pipelines (iq goes through iqs) */
    enum sm_verdict (*on_stanza)(struct sm_pkt *p);
    /* session life */
    void (*on_session_start)(struct sm_session *s);
    void (*on_session_end)(struct sm_session *s);
    /* A message to a local user was written to these sessions (n == 0:
     * none took it; it was stored offline or dropped). For carbons. */
    void (*on_delivered)(struct sm_pkt *p, struct sm_session *const *to, size_t n);
    /* Whether u may send a stanza of this kind to peer (full or bare JID)
     * and whether u accepts one from peer; false blocks it (privacy lists,
     * blocking). Both may be NULL. */
    bool (*allow_out)(struct sm_user *u, enum sm_kind kind, const char *peer);
    bool (*allow_in)(struct sm_user *u, enum sm_kind kind, const char *peer);
    /* A component notice from the router (docs/protocol.md §4), as it came;
     * NULL when the router link went down: every component is then gone
     * until the notices of the next link come. */
    void (*on_component)(struct sm *sm, const struct xml_node *notice);
    /* A disco#info or disco#items get with a node (XEP-0030), to a domain
     * or an account: SM_HANDLED when the feature owns the node and has
     * answered; SM_PASS otherwise (item-not-found when nobody owns it). */
    enum sm_verdict (*on_disco_node)(struct sm_pkt *p, struct xml_node *query);
    /* The account's data is being deleted (sm_user_forget: delete-user, or
     * an anonymous account's last session ending): drop what is cached of
     * it, so that an account made again with that name starts afresh. */
    void (*on_user_forget)(struct sm *sm, const char *jid);
};

/* Every feature, generated by the build from sm/feat_*.c (features.c). */
extern const struct sm_feature *const sm_feature_registry[];
extern const size_t sm_feature_count;

/* ---- the context ----------------------------------------------------------- */

struct sm_stats {
    uint64_t stanzas_in, delivered, stored_offline, bounced;
};

struct sm {
    struct event_base *base;
    const struct common_cfg *common;
    const struct sm_cfg *cfg;
    const char *name;
    struct comp_client *link;
    struct store *st;
    struct hmap *users;    /* bare jid -> struct sm_user */
    struct hmap *sessions; /* "c2s/sid" -> struct sm_session */
    struct event *housekeeping;
    const struct sm_feature **features; /* the registry sorted by order */
    void **feature_state;               /* features[i]'s own state */
    size_t nfeatures;
    struct sm_grace *graces;        /* c2s daemons being waited for */
    struct arena *spare_arenas[16]; /* reset pkt arenas, reused (sm.c) */
    size_t nspare_arenas;
    struct sm_session *acks; /* sessions owing the c2s a lone ack */
    struct event *ack_timer; /* sends them; created on first use */
    struct log_ctx lc;
    uint64_t origin_counter;
    int64_t started_us;
    struct sm_stats stats;
};

/* sm.c: the pipeline */
bool sm_is_local_domain(const struct sm *sm, const char *domain);
/* Runs a stanza through the pipeline (the user is loaded first). */
void sm_dispatch(struct sm *sm, struct sm_pkt *p);
struct sm_pkt *sm_pkt_new(struct sm *sm);
/* Frees the spare pkt arenas (at exit). */
void sm_pkt_arenas_free(struct sm *sm);
void sm_pkt_keep(struct sm_pkt *p);
void sm_pkt_free(struct sm_pkt *p);
/* Builds a pkt from a stanza tree (copied into the pkt's arena). Returns
 * NULL (and answers with an error where the rules say so) when the
 * addresses are malformed. */
struct sm_pkt *sm_pkt_from_node(struct sm *sm, const struct xml_node *st, enum sm_route route);

/* Whether the feature of that registry name runs in this sm (it is not
 * disabled in <sm><features>). */
bool sm_feature_enabled(const struct sm *sm, const char *name);

/* A feature's own per-process state: set by its init, read by its hooks,
 * freed by its fini. NULL until set. */
void *sm_feature_state(const struct sm *sm, const struct sm_feature *f);
void sm_feature_set_state(struct sm *sm, const struct sm_feature *f, void *state);

/* Most features' state is one string-keyed map: these make it the
 * feature's state and, at fini, free every value with free_value (may be
 * NULL) and the map. */
void sm_feature_map_new(struct sm *sm, const struct sm_feature *f);
void sm_feature_map_free(struct sm *sm, const struct sm_feature *f, void (*free_value)(void *));

/* The features' allow_out / allow_in verdicts (true when none objects). */
bool sm_allow_out(struct sm_user *u, enum sm_kind kind, const char *peer);
bool sm_allow_in(struct sm_user *u, enum sm_kind kind, const char *peer);

/* Continues a pkt that waited for its user to load. */
void sm_dispatch_resume(struct sm_pkt *p);

/* deliver.c: sending */
/* The default for a stanza to a local user (RFC 6121 §8.5). */
void sm_deliver(struct sm_pkt *p);
/* Sends a stanza: to local sessions (by full JID, or the bare-JID rules of
 * RFC 6121 §8) when the destination is ours, else to the router. */
void sm_send(struct sm *sm, struct xml_node *st, const char *origin);
/* Writes st to one session through its c2s. */
void sm_session_write(struct sm_session *s, const struct xml_node *st, const char *origin);
/* Answers an iq with a result (payload may be NULL). */
void sm_iq_result(struct sm_pkt *p, struct xml_node *payload);
/* Answers with a stanza error (never for type error/result). */
void sm_error(struct sm_pkt *p, enum xmpp_cond cond, const char *text);
/* Builds a new stanza in a: <name xmlns='jabber:client' from to type id>. */
struct xml_node *sm_stanza_new(struct arena *a, const char *name, const char *from, const char *to,
                               const char *type, const char *id);

/* user.c */
/* The user, loading it (roster) if needed; NULL if jid is not ours. */
struct sm_user *sm_user_get(struct sm *sm, const char *bare);
struct sm_item *sm_user_item(struct sm_user *u, const char *bare);
/* Saves an item (and its groups) and bumps the roster version. */
void sm_user_save_item(struct sm_user *u, struct sm_item *it);
void sm_user_delete_item(struct sm_user *u, const char *bare);
struct sm_session *sm_user_session(struct sm_user *u, const char *resource);
/* Available sessions with priority >= min, highest priority first. */
size_t sm_user_available(struct sm_user *u, int min_priority, struct sm_session **out, size_t max);
void sm_user_housekeeping(struct sm *sm);
/* Deletes everything stored for u (an anonymous user gone); u stays
 * cached until housekeeping drops it, marked missing. */
void sm_user_forget(struct sm_user *u);
/* Frees every user and session (at exit). */
void sm_users_free_all(struct sm *sm);
/* Queues p until u is loaded (sm_dispatch_resume then runs it). */
void sm_user_wait(struct sm_user *u, struct sm_pkt *p);

/* session.c */
void sm_session_on_envelope(struct sm *sm, struct xml_node *env, const char *raw, size_t len);
void sm_session_end(struct sm_session *s, const char *reason, bool tell_c2s);
void sm_sessions_c2s_down(struct sm *sm, const char *c2s);
void sm_sessions_c2s_up(struct sm *sm, const char *c2s);
void sm_graces_free(struct sm *sm);
/* Frees the ack timer (at exit; owed acks are not sent: the c2s replays
 * and the sm drops the duplicates). */
void sm_acks_free(struct sm *sm);
void sm_sessions_link_down(struct sm *sm);
/* Unlinks a session without telling anyone; its memory is freed once no
 * pkt holds it (sm_pkt_set_session). */
void sm_session_free(struct sm_session *s);
/* Makes s the pkt's session, holding it until the pkt is freed or given
 * another (NULL lets go). */
void sm_pkt_set_session(struct sm_pkt *p, struct sm_session *s);
/* A session start that waits for its user to load. */
void sm_start_wait(struct sm *sm, struct sm_user *u, const char *c2s, const char *sid, uint64_t seq,
                   const struct xml_node *start);

/* presence.c */
void sm_presence_broadcast_unavailable(struct sm_session *s, const char *status);

/* offline.c */
void sm_offline_store(struct sm_pkt *p);
void sm_offline_deliver(struct sm_session *s);

int64_t sm_now_us(void);
/* An XEP-0082 timestamp of us into buf (>= 32 bytes). */
void sm_stamp(int64_t us, char *buf, size_t len);

#endif
