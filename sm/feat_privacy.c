/* SPDX-License-Identifier: MIT */
/* Privacy lists (XEP-0016): the per-user list cache shared with the
 * blocking command (sm/privacy.h), named lists with an active list per
 * session and a default list per user, and their enforcement: first in the
 * pipeline for stanzas to and from the user, and through allow_in /
 * allow_out for the presence the sm sends on the user's behalf. */
#include "privacy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

#define MAX_LISTS     64
#define MAX_NAME      1023
#define SWEEP_SECONDS 10

extern const struct sm_feature sm_feat_privacy;

/* The feature's state (sm_feature_state), made by init, freed by fini:
 * every cached user, and the timer that forgets the users the sm has
 * unloaded. */
struct privacy_state {
    struct sm *sm;
    struct hmap *users; /* bare jid -> struct privacy_user */
    struct event *sweep;
};

static struct privacy_state *state_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_privacy);
}

/* A peer as the rules see it: the JID and its bare form. */
struct peer {
    struct jid j;
    const char *bare;
};

static const char *const type_names[] = {NULL, "jid", "group", "subscription"};
/* the item children, bit i of 'block' each */
static const char *const kind_names[] = {"message", "iq", "presence-in", "presence-out"};

/* ---- lists in memory --------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static bool opt_eq(const char *x, const char *y)
{
    return x == NULL ? y == NULL : y != NULL && strcmp(x, y) == 0;
}

static void item_fini(struct privacy_item *it)
{
    free(it->value);
    free(it->local);
    free(it->domain);
    free(it->resource);
}

struct privacy_list *privacy_list_new(const char *name)
{
    struct privacy_list *l = xcalloc(1, sizeof(*l));
    l->name = xstrdup(name);
    return l;
}

void privacy_list_free(struct privacy_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        item_fini(&l->items[i]);
    free(l->items);
    free(l->name);
    free(l);
}

void privacy_list_append(struct privacy_list *l, const struct privacy_item *item)
{
    l->items = xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
    l->items[l->n++] = *item;
}

void privacy_list_delete(struct privacy_list *l, size_t i)
{
    item_fini(&l->items[i]);
    memmove(&l->items[i], &l->items[i + 1], (l->n - i - 1) * sizeof(*l->items));
    l->n--;
}

static int by_order(const void *x, const void *y)
{
    const struct privacy_item *a = x, *b = y;
    return (a->order > b->order) - (a->order < b->order);
}

void privacy_list_sort(struct privacy_list *l)
{
    if (l->n > 1)
        qsort(l->items, l->n, sizeof(*l->items), by_order);
}

struct privacy_list *privacy_list_find(const struct privacy_user *pu, const char *name)
{
    for (struct privacy_list *l = pu->lists; l != NULL; l = l->next) {
        if (strcmp(l->name, name) == 0)
            return l;
    }
    return NULL;
}

static struct privacy_list *default_list(const struct privacy_user *pu)
{
    return pu->default_name ? privacy_list_find(pu, pu->default_name) : NULL;
}

bool privacy_item_is_block(const struct privacy_item *it)
{
    return it->type == PRIVACY_T_JID && it->deny && it->block == 0;
}

void privacy_item_set_jid(struct privacy_item *it, const struct jid *j)
{
    struct arena *a = arena_new(256);
    it->type = PRIVACY_T_JID;
    it->value = xstrdup(jid_full(a, j));
    it->local = dup_or_null(j->local);
    it->domain = xstrdup(j->domain);
    it->resource = dup_or_null(j->resource);
    arena_free(&a);
}

static struct privacy_sess *sess_find(const struct privacy_user *pu, const struct sm_session *s)
{
    for (struct privacy_sess *ps = pu->sessions; ps != NULL; ps = ps->next) {
        if (ps->s == s)
            return ps;
    }
    return NULL;
}

struct privacy_sess *privacy_sess_get(struct privacy_user *pu, const struct sm_session *s)
{
    struct privacy_sess *ps = sess_find(pu, s);
    if (ps == NULL) {
        ps = xcalloc(1, sizeof(*ps));
        ps->s = s;
        ps->next = pu->sessions;
        pu->sessions = ps;
    }
    return ps;
}

static void drop_waiting(struct privacy_user *pu)
{
    while (pu->waiting_head != NULL) {
        struct sm_pkt *p = pu->waiting_head;
        pu->waiting_head = p->next;
        sm_pkt_free(p);
    }
    pu->waiting_tail = NULL;
}

static void user_free(struct privacy_user *pu)
{
    while (pu->lists != NULL) {
        struct privacy_list *l = pu->lists;
        pu->lists = l->next;
        privacy_list_free(l);
    }
    while (pu->sessions != NULL) {
        struct privacy_sess *ps = pu->sessions;
        pu->sessions = ps->next;
        free(ps->active);
        free(ps);
    }
    drop_waiting(pu);
    free(pu->default_name);
    free(pu->jid);
    free(pu);
}

/* ---- loading ------------------------------------------------------------------ */

static void load_done(struct privacy_user *pu)
{
    if (--pu->pending > 0)
        return;
    if (pu->orphan) {
        user_free(pu);
        return;
    }
    for (struct privacy_list *l = pu->lists; l != NULL; l = l->next)
        privacy_list_sort(l);
    if (pu->default_name != NULL && default_list(pu) == NULL) {
        free(pu->default_name);
        pu->default_name = NULL;
    }
    /* What waited runs through the pipeline again, now with the lists. */
    struct sm_pkt *p = pu->waiting_head;
    pu->waiting_head = pu->waiting_tail = NULL;
    while (p != NULL) {
        struct sm_pkt *next = p->next;
        p->kept = false;
        sm_dispatch(pu->sm, p);
        p = next;
    }
}

/* Appends l at the end of pu's lists. */
static void list_link(struct privacy_user *pu, struct privacy_list *l)
{
    struct privacy_list **pp = &pu->lists;
    while (*pp != NULL)
        pp = &(*pp)->next;
    l->next = NULL;
    *pp = l;
}

static int item_from_row(const struct store_rec *r, struct privacy_item *it)
{
    const char *type = store_rec_get_str(r, "type", NULL);
    const char *value = store_rec_get_str(r, "value", NULL);
    *it = (struct privacy_item){.order = store_rec_get_int(r, "ord", 0),
                                .deny = store_rec_get_bool(r, "deny", false),
                                .block = (unsigned)store_rec_get_int(r, "block", 0) & 0xfu};
    if (type == NULL || type[0] == '\0')
        return 0;
    if (value == NULL)
        return -1;
    if (strcmp(type, "jid") == 0) {
        struct arena *a = arena_new(256);
        struct jid j;
        int rc = jid_parse_str(a, value, &j, NULL);
        if (rc == 0)
            privacy_item_set_jid(it, &j);
        arena_free(&a);
        return rc;
    }
    it->type = strcmp(type, "group") == 0 ? PRIVACY_T_GROUP : PRIVACY_T_SUB;
    it->value = xstrdup(value);
    return strcmp(type, "group") == 0 || strcmp(type, "subscription") == 0 ? 0 : -1;
}

static void on_items(const struct store_res *res, void *arg)
{
    struct privacy_user *pu = arg;
    if (!pu->orphan && res->status != STORE_OK)
        log_error(&pu->sm->lc, "loading the privacy lists of %s: %s", pu->jid, res->err.text);
    for (size_t i = 0; !pu->orphan && res->status == STORE_OK && i < res->nrows; i++) {
        const char *name = store_rec_get_str(res->rows[i], "list", "");
        struct privacy_item it;
        if (item_from_row(res->rows[i], &it) < 0) {
            log_warn(&pu->sm->lc, "privacy list %s of %s: unreadable item skipped", name, pu->jid);
            item_fini(&it);
            continue;
        }
        struct privacy_list *l = privacy_list_find(pu, name);
        if (l == NULL) {
            l = privacy_list_new(name);
            list_link(pu, l);
        }
        privacy_list_append(l, &it);
    }
    load_done(pu);
}

static void on_default(const struct store_res *res, void *arg)
{
    struct privacy_user *pu = arg;
    if (!pu->orphan && res->status != STORE_OK)
        log_error(&pu->sm->lc, "loading the default list of %s: %s", pu->jid, res->err.text);
    if (!pu->orphan && res->status == STORE_OK && res->nrows > 0) {
        const char *name = store_rec_get_str(res->rows[0], "list", NULL);
        free(pu->default_name);
        pu->default_name = dup_or_null(name);
    }
    load_done(pu);
}

/* The cached user, created and loading when new. */
static struct privacy_user *user_get(struct sm *sm, const char *jid)
{
    struct privacy_user *pu = hmap_get(state_of(sm)->users, jid);
    if (pu != NULL)
        return pu;
    pu = xcalloc(1, sizeof(*pu));
    pu->sm = sm;
    pu->jid = xstrdup(jid);
    pu->pending = 2;
    hmap_put(state_of(sm)->users, pu->jid, pu);
    store_get(sm->st, "privacy-items", jid, NULL, on_items, pu);
    store_get(sm->st, "privacy-default", jid, NULL, on_default, pu);
    return pu;
}

struct privacy_user *privacy_user_ready(struct sm_pkt *p)
{
    struct privacy_user *pu = user_get(p->sm, p->user->jid);
    if (pu->pending == 0)
        return pu;
    log_debug(&p->sm->lc, "privacy: <%s/> waits for the lists of %s", p->st->name, pu->jid);
    sm_pkt_keep(p);
    p->next = NULL;
    if (pu->waiting_tail != NULL)
        pu->waiting_tail->next = p;
    else
        pu->waiting_head = p;
    pu->waiting_tail = p;
    return NULL;
}

/* ---- the store ------------------------------------------------------------------ */

static void on_saved(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK)
        log_error(&sm->lc, "saving privacy lists: %s", res->err.text);
}

static void store_list_delete(struct privacy_user *pu, const char *name)
{
    struct arena *a = arena_new(256);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "list", name);
    store_delete(pu->sm->st, "privacy-items", pu->jid, f, on_saved, pu->sm);
    arena_free(&a);
}

void privacy_list_save(struct privacy_user *pu, const struct privacy_list *l)
{
    store_list_delete(pu, l->name);
    struct arena *a = arena_new(1024);
    for (size_t i = 0; i < l->n; i++) {
        const struct privacy_item *it = &l->items[i];
        struct store_rec *r = store_rec_new(a);
        store_rec_str(a, r, "list", l->name);
        store_rec_int(a, r, "ord", it->order);
        if (it->type == PRIVACY_T_ANY) {
            store_rec_null(a, r, "type", STORE_T_STR);
            store_rec_null(a, r, "value", STORE_T_STR);
        } else {
            store_rec_str(a, r, "type", type_names[it->type]);
            store_rec_str(a, r, "value", it->value);
        }
        store_rec_bool(a, r, "deny", it->deny);
        store_rec_int(a, r, "block", it->block);
        store_put(pu->sm->st, "privacy-items", pu->jid, r, on_saved, pu->sm);
    }
    arena_free(&a);
}

void privacy_list_put(struct privacy_user *pu, struct privacy_list *l)
{
    struct privacy_list **pp = &pu->lists;
    while (*pp != NULL && strcmp((*pp)->name, l->name) != 0)
        pp = &(*pp)->next;
    l->next = NULL;
    if (*pp != NULL) {
        l->next = (*pp)->next;
        privacy_list_free(*pp);
    }
    *pp = l;
    privacy_list_save(pu, l);
}

void privacy_default_set(struct privacy_user *pu, const char *name)
{
    char *copy = dup_or_null(name);
    free(pu->default_name);
    pu->default_name = copy;
    struct arena *a = arena_new(256);
    if (copy != NULL) {
        struct store_rec *r = store_rec_new(a);
        store_rec_str(a, r, "list", copy);
        store_put(pu->sm->st, "privacy-default", pu->jid, r, on_saved, pu->sm);
    } else {
        store_delete(pu->sm->st, "privacy-default", pu->jid, NULL, on_saved, pu->sm);
    }
    arena_free(&a);
}

void privacy_list_remove(struct privacy_user *pu, const char *name)
{
    struct privacy_list **pp = &pu->lists;
    while (*pp != NULL && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    if (*pp == NULL)
        return;
    struct privacy_list *l = *pp;
    *pp = l->next;
    for (struct privacy_sess *ps = pu->sessions; ps != NULL; ps = ps->next) {
        if (ps->active != NULL && strcmp(ps->active, l->name) == 0) {
            free(ps->active);
            ps->active = NULL;
        }
    }
    if (pu->default_name != NULL && strcmp(pu->default_name, l->name) == 0)
        privacy_default_set(pu, NULL);
    store_list_delete(pu, l->name);
    privacy_list_free(l);
}

/* ---- matching (XEP-0016 §2.1) ----------------------------------------------------- */

/* Splits a JID that is already normalised (a stanza's, a roster key). */
static void peer_split(struct arena *a, const char *s, struct peer *pr)
{
    const char *slash = strchr(s, '/');
    size_t head = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = memchr(s, '@', head);
    pr->j.local = at ? arena_strndup(a, s, (size_t)(at - s)) : NULL;
    pr->j.domain =
        at ? arena_strndup(a, at + 1, head - (size_t)(at - s) - 1) : arena_strndup(a, s, head);
    pr->j.resource = slash ? arena_strdup(a, slash + 1) : NULL;
    pr->bare = arena_strndup(a, s, head);
}

static bool jid_matches(const struct privacy_item *it, const struct jid *j)
{
    if (strcmp(it->domain, j->domain) != 0)
        return false;
    if (it->local == NULL && it->resource == NULL)
        return true; /* a domain: itself, its users and its resources */
    return opt_eq(it->local, j->local) &&
           (it->resource == NULL || opt_eq(it->resource, j->resource));
}

static const char *subscription_of(const struct sm_item *ri)
{
    if (ri == NULL)
        return "none";
    if (ri->sub_to)
        return ri->sub_from ? "both" : "to";
    return ri->sub_from ? "from" : "none";
}

static bool in_group(const struct sm_item *ri, const char *group)
{
    for (size_t i = 0; ri != NULL && i < ri->ngroups; i++) {
        if (strcmp(ri->groups[i], group) == 0)
            return true;
    }
    return false;
}

static bool item_matches(const struct privacy_item *it, struct sm_user *u, const struct peer *pr)
{
    switch (it->type) {
    case PRIVACY_T_ANY:
        return true;
    case PRIVACY_T_JID:
        return jid_matches(it, &pr->j);
    case PRIVACY_T_GROUP:
        return in_group(sm_user_item(u, pr->bare), it->value);
    case PRIVACY_T_SUB:
        return strcmp(subscription_of(sm_user_item(u, pr->bare)), it->value) == 0;
    }
    return false;
}

/* The first item of l that applies to a stanza of class cls exchanged
 * with the peer, or NULL (none does: allowed). */
static const struct privacy_item *decide(const struct privacy_list *l, struct sm_user *u,
                                         const struct peer *pr, unsigned cls)
{
    for (size_t i = 0; l != NULL && i < l->n; i++) {
        const struct privacy_item *it = &l->items[i];
        if ((it->block == 0 || (it->block & cls) != 0) && item_matches(it, u, pr))
            return it;
    }
    return NULL;
}

static bool denies(const struct privacy_list *l, struct sm_user *u, const struct peer *pr,
                   unsigned cls)
{
    const struct privacy_item *it = decide(l, u, pr, cls);
    return it != NULL && it->deny;
}

/* The list that applies to session s: its active list, else the default
 * (the default alone when s is NULL). */
static const struct privacy_list *effective(const struct privacy_user *pu,
                                            const struct sm_session *s)
{
    const struct privacy_sess *ps = s ? sess_find(pu, s) : NULL;
    const struct privacy_list *l = ps && ps->active ? privacy_list_find(pu, ps->active) : NULL;
    return l ? l : default_list(pu);
}

/* Whether the user's lists deny a stanza of class cls with the peer: the
 * list of session s when it is given; else every list that applies to one
 * of the user's sessions must deny it (the default list when there is no
 * session), so a hook without a session never contradicts a session's. */
static bool denied(const struct privacy_user *pu, struct sm_user *u, const struct sm_session *s,
                   const struct peer *pr, unsigned cls)
{
    if (s != NULL || u->sessions == NULL)
        return denies(effective(pu, s), u, pr, cls);
    for (const struct sm_session *o = u->sessions; o != NULL; o = o->next) {
        if (!denies(effective(pu, o), u, pr, cls))
            return false;
    }
    return true;
}

/* Never filtered: the user's own JIDs (XEP-0016 §2.1 note) and the
 * server itself. */
static bool exempt(const struct sm_user *u, const struct peer *pr)
{
    if (strcmp(pr->bare, u->jid) == 0)
        return true;
    return pr->j.local == NULL && pr->j.resource == NULL && sm_is_local_domain(u->sm, pr->j.domain);
}

/* ---- changes and what follows them ----------------------------------------------- */

/* A contact a session shows its presence to, and whether it was blocked. */
struct seen {
    struct sm_session *s;
    const char *to;
    struct peer peer;
    bool blocked;
};

struct privacy_change {
    struct privacy_user *pu;
    struct sm_user *u;
    struct arena *a;
    const char **blocked; /* the blocklist before */
    size_t nblocked;
    struct seen *seen;
    size_t nseen;
};

static struct xml_node *push_iq(struct arena *a, struct sm *sm, const struct sm_session *s)
{
    char id[48];
    snprintf(id, sizeof(id), "push%" PRIu64, ++sm->origin_counter);
    return sm_stanza_new(a, "iq", NULL, s->jid, "set", id);
}

static void push_list(struct privacy_user *pu, struct sm_user *u, const char *name, bool users)
{
    struct arena *a = arena_new(512);
    for (struct sm_session *s = u->sessions; s != NULL; s = s->next) {
        const struct privacy_sess *ps = sess_find(pu, s);
        if (users && (ps == NULL || !ps->privacy))
            continue;
        struct xml_node *iq = push_iq(a, u->sm, s);
        struct xml_node *q = xml_elem_add(a, iq, NS_PRIVACY, "query");
        xml_attr_set(a, xml_elem_add(a, q, NS_PRIVACY, "list"), "name", name);
        sm_session_write(s, iq, NULL);
    }
    arena_free(&a);
}

void privacy_push_blocking(struct privacy_user *pu, struct sm_user *u, const char *verb,
                           const char *const *jids, size_t n)
{
    struct arena *a = arena_new(512);
    for (struct sm_session *s = u->sessions; s != NULL; s = s->next) {
        const struct privacy_sess *ps = sess_find(pu, s);
        if (ps == NULL || !ps->blocklist)
            continue;
        struct xml_node *iq = push_iq(a, u->sm, s);
        struct xml_node *cmd = xml_elem_add(a, iq, NS_BLOCKING, verb);
        for (size_t i = 0; i < n; i++)
            xml_attr_set(a, xml_elem_add(a, cmd, NS_BLOCKING, "item"), "jid", jids[i]);
        sm_session_write(s, iq, NULL);
    }
    arena_free(&a);
}

size_t privacy_blocklist(const struct privacy_user *pu, struct arena *a, const char ***jids_r)
{
    const struct privacy_list *l = default_list(pu);
    const char **v = arena_alloc(a, ((l ? l->n : 0) + 1) * sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; l != NULL && i < l->n; i++) {
        if (privacy_item_is_block(&l->items[i]))
            v[n++] = arena_strdup(a, l->items[i].value);
    }
    *jids_r = v;
    return n;
}

static bool contains(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0)
            return true;
    }
    return false;
}

/* Pushes the blocklist's change made through privacy lists (XEP-0191 §5). */
static void push_blocklist_diff(struct privacy_change *ch)
{
    const char **now;
    size_t n = privacy_blocklist(ch->pu, ch->a, &now), na = 0, ng = 0;
    const char **added = arena_alloc(ch->a, (n + 1) * sizeof(*added));
    const char **gone = arena_alloc(ch->a, (ch->nblocked + 1) * sizeof(*gone));
    for (size_t i = 0; i < n; i++) {
        if (!contains(ch->blocked, ch->nblocked, now[i]))
            added[na++] = now[i];
    }
    for (size_t i = 0; i < ch->nblocked; i++) {
        if (!contains(now, n, ch->blocked[i]))
            gone[ng++] = ch->blocked[i];
    }
    if (na > 0)
        privacy_push_blocking(ch->pu, ch->u, "block", added, na);
    if (ng > 0)
        privacy_push_blocking(ch->pu, ch->u, "unblock", gone, ng);
}

static void seen_add(struct privacy_change *ch, struct sm_session *s, const char *to)
{
    struct seen *e = &ch->seen[ch->nseen++];
    e->s = s;
    e->to = arena_strdup(ch->a, to);
    peer_split(ch->a, e->to, &e->peer);
    e->blocked = denies(effective(ch->pu, s), ch->u, &e->peer, PRIVACY_PRES_OUT);
}

/* Whom each available session shows its presence: subscribers and
 * directed-presence targets. */
static void seen_collect(struct privacy_change *ch)
{
    size_t cap = 1;
    for (struct sm_session *s = ch->u->sessions; s != NULL; s = s->next)
        cap += hmap_count(ch->u->roster) + (s->directed ? hmap_count(s->directed) : 0);
    ch->seen = arena_alloc(ch->a, cap * sizeof(*ch->seen));
    for (struct sm_session *s = ch->u->sessions; s != NULL; s = s->next) {
        if (!s->available)
            continue;
        struct hmap_iter it = {0};
        const char *k;
        void *v;
        while (hmap_next(ch->u->roster, &it, NULL, &v)) {
            const struct sm_item *ri = v;
            if (ri->sub_from)
                seen_add(ch, s, ri->jid);
        }
        it = (struct hmap_iter){0};
        while (s->directed != NULL && hmap_next(s->directed, &it, &k, NULL))
            seen_add(ch, s, k);
    }
}

/* Unavailable to whom the change blocks, the current presence to whom it
 * unblocks. */
static void seen_update(struct privacy_change *ch)
{
    for (size_t i = 0; i < ch->nseen; i++) {
        struct seen *e = &ch->seen[i];
        bool now = denies(effective(ch->pu, e->s), ch->u, &e->peer, PRIVACY_PRES_OUT);
        if (now == e->blocked)
            continue;
        struct xml_node *st = NULL;
        if (!now && e->s->presence != NULL)
            st = xml_parse_fragment(ch->a, e->s->presence);
        if (st == NULL)
            st = sm_stanza_new(ch->a, "presence", NULL, NULL, now ? "unavailable" : NULL, NULL);
        xml_attr_set(ch->a, st, "from", e->s->jid);
        xml_attr_set(ch->a, st, "to", e->to);
        sm_send(ch->u->sm, st, NULL);
    }
}

struct privacy_change *privacy_change_begin(struct privacy_user *pu, struct sm_user *u)
{
    struct privacy_change *ch = xcalloc(1, sizeof(*ch));
    ch->pu = pu;
    ch->u = u;
    ch->a = arena_new(4096);
    ch->nblocked = privacy_blocklist(pu, ch->a, &ch->blocked);
    seen_collect(ch);
    return ch;
}

void privacy_change_end(struct privacy_change **chp, const char *pushed, bool by_blocking)
{
    struct privacy_change *ch = *chp;
    if (pushed != NULL)
        push_list(ch->pu, ch->u, pushed, by_blocking);
    if (!by_blocking)
        push_blocklist_diff(ch);
    seen_update(ch);
    arena_free(&ch->a);
    free(ch);
    *chp = NULL;
}

/* ---- enforcement ---------------------------------------------------------------------- */

/* Presence notifications (XEP-0016 §2): no type, or unavailable. */
static bool is_notification(const char *type)
{
    return type[0] == '\0' || strcmp(type, "unavailable") == 0;
}

static unsigned class_in(const struct sm_pkt *p)
{
    if (p->kind == SM_MESSAGE)
        return PRIVACY_MESSAGE;
    if (p->kind == SM_IQ)
        return PRIVACY_IQ;
    return is_notification(p->type) ? PRIVACY_PRES_IN : PRIVACY_OTHER;
}

/* <not-acceptable/> (and <blocked/> for a blocklist item) back to the
 * sending session itself: through the pipeline, the user's own lists
 * would drop an error coming from that peer. */
static void bounce(struct sm_pkt *p, bool blocked)
{
    if (strcmp(p->type, "error") == 0 || strcmp(p->type, "result") == 0)
        return;
    struct xml_node *e = xml_elem_new(p->a, XML_NS_CLIENT, p->st->name);
    for (unsigned i = 0; i < p->st->nattrs; i++) {
        const struct xml_attr *at = &p->st->attrs[i];
        xml_attr_set_ns(p->a, e, at->ns, at->name, at->value);
    }
    xml_attr_set(p->a, e, "from", jid_full(p->a, &p->to));
    xml_attr_set(p->a, e, "to", p->sess->jid);
    xml_attr_set(p->a, e, "type", "error");
    for (struct xml_node *c = p->st->first; c != NULL && p->kind != SM_PRESENCE; c = c->next) {
        if (c->kind == XML_ELEM)
            xml_append(e, xml_node_copy(p->a, c));
    }
    struct xml_node *err = xml_elem_add(p->a, e, XML_NS_CLIENT, "error");
    xml_attr_set(p->a, err, "type", "cancel");
    xml_elem_add(p->a, err, XMPP_NS_STANZAS, xmpp_cond_name(XMPP_COND_NOT_ACCEPTABLE));
    if (blocked)
        xml_elem_add(p->a, err, NS_BLOCKING_ERRORS, "blocked");
    sm_session_write(p->sess, e, NULL);
}

/* XEP-0016 §2.14: messages and iq get/set from a blocked peer get
 * <service-unavailable/>, the rest is dropped without a word. */
static enum sm_verdict inbound(struct sm_pkt *p, struct privacy_user *pu)
{
    struct peer pr = {p->from, jid_bare(p->a, &p->from)};
    if (pu->lists == NULL || exempt(p->user, &pr))
        return SM_PASS;
    const struct sm_session *s = p->to.resource ? sm_user_session(p->user, p->to.resource) : NULL;
    bool deny = denied(pu, p->user, s, &pr, class_in(p));
    /* a probe is answered with the user's presence: presence-out rules */
    if (!deny && p->kind == SM_PRESENCE && strcmp(p->type, "probe") == 0)
        deny = denied(pu, p->user, NULL, &pr, PRIVACY_PRES_OUT);
    if (!deny)
        return SM_PASS;
    log_debug(&p->sm->lc, "privacy: <%s/> from %s to %s refused", p->st->name,
              jid_full(p->a, &p->from), jid_full(p->a, &p->to));
    if (p->kind != SM_PRESENCE)
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
    return SM_HANDLED;
}

/* The sending session's list decides; presence without 'to' is the
 * broadcast, filtered per contact by allow_out. */
static enum sm_verdict outbound(struct sm_pkt *p, struct privacy_user *pu)
{
    if (!p->has_to || pu->lists == NULL)
        return SM_PASS;
    struct peer pr = {p->to, jid_bare(p->a, &p->to)};
    if (exempt(p->user, &pr))
        return SM_PASS;
    unsigned cls =
        p->kind == SM_PRESENCE && is_notification(p->type) ? PRIVACY_PRES_OUT : PRIVACY_OTHER;
    const struct privacy_list *l = effective(pu, p->sess);
    const struct privacy_item *it = decide(l, p->user, &pr, cls);
    if (it == NULL || !it->deny)
        return SM_PASS;
    log_debug(&p->sm->lc, "privacy: <%s/> from %s to %s refused", p->st->name, p->sess->jid,
              jid_full(p->a, &p->to));
    bounce(p, l == default_list(pu) && privacy_item_is_block(it));
    return SM_HANDLED;
}

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->route == SM_TO_DOMAIN || p->user == NULL || p->user->state != SM_USER_READY)
        return SM_PASS;
    struct privacy_user *pu = privacy_user_ready(p);
    if (pu == NULL)
        return SM_HANDLED; /* kept: runs again once the lists are loaded */
    return p->route == SM_FROM_SESSION ? outbound(p, pu) : inbound(p, pu);
}

/* For what the sm sends or delivers outside the pipeline. Lists still
 * loading (the load starts at session start) do not block. */
static bool allow(struct sm_user *u, const char *peer, unsigned cls)
{
    if (state_of(u->sm) == NULL)
        return true;
    struct privacy_user *pu = user_get(u->sm, u->jid);
    if (pu->pending > 0 || pu->lists == NULL)
        return true;
    struct arena *a = arena_new(512);
    struct peer pr;
    peer_split(a, peer, &pr);
    bool ok = exempt(u, &pr) || !denied(pu, u, NULL, &pr, cls);
    arena_free(&a);
    return ok;
}

static bool allow_in(struct sm_user *u, enum sm_kind kind, const char *peer)
{
    unsigned cls = kind == SM_MESSAGE ? PRIVACY_MESSAGE
                   : kind == SM_IQ    ? PRIVACY_IQ
                                      : PRIVACY_PRES_IN;
    return allow(u, peer, cls);
}

static bool allow_out(struct sm_user *u, enum sm_kind kind, const char *peer)
{
    return allow(u, peer, kind == SM_PRESENCE ? PRIVACY_PRES_OUT : PRIVACY_OTHER);
}

/* ---- jabber:iq:privacy ------------------------------------------------------------ */

static void name_child(struct sm_pkt *p, struct xml_node *q, const char *el, const char *name)
{
    xml_attr_set(p->a, xml_elem_add(p->a, q, NS_PRIVACY, el), "name", name);
}

static void reply_names(struct sm_pkt *p, struct privacy_user *pu)
{
    struct xml_node *q = xml_elem_new(p->a, NS_PRIVACY, "query");
    const struct privacy_sess *ps = sess_find(pu, p->sess);
    if (ps != NULL && ps->active != NULL)
        name_child(p, q, "active", ps->active);
    if (pu->default_name != NULL)
        name_child(p, q, "default", pu->default_name);
    for (const struct privacy_list *l = pu->lists; l != NULL; l = l->next)
        name_child(p, q, "list", l->name);
    sm_iq_result(p, q);
}

static void item_xml(struct arena *a, struct xml_node *parent, const struct privacy_item *it)
{
    struct xml_node *n = xml_elem_add(a, parent, NS_PRIVACY, "item");
    char order[24];
    if (it->type != PRIVACY_T_ANY) {
        xml_attr_set(a, n, "type", type_names[it->type]);
        xml_attr_set(a, n, "value", it->value);
    }
    xml_attr_set(a, n, "action", it->deny ? "deny" : "allow");
    snprintf(order, sizeof(order), "%" PRId64, it->order);
    xml_attr_set(a, n, "order", order);
    for (unsigned i = 0; i < 4; i++) {
        if (it->block & (1u << i))
            xml_elem_add(a, n, NS_PRIVACY, kind_names[i]);
    }
}

static void privacy_get(struct sm_pkt *p, struct privacy_user *pu, const struct xml_node *q)
{
    const struct xml_node *req = xml_first_elem(q);
    if (req == NULL) {
        reply_names(p, pu);
        return;
    }
    const char *name = xml_attr_get(req, "name");
    if (xml_next_elem(req) != NULL || !xml_is(req, NS_PRIVACY, "list") || name == NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "one <list name=''/> at a time");
        return;
    }
    const struct privacy_list *l = privacy_list_find(pu, name);
    if (l == NULL) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
        return;
    }
    struct xml_node *r = xml_elem_new(p->a, NS_PRIVACY, "query");
    struct xml_node *ln = xml_elem_add(p->a, r, NS_PRIVACY, "list");
    xml_attr_set(p->a, ln, "name", l->name);
    for (size_t i = 0; i < l->n; i++)
        item_xml(p->a, ln, &l->items[i]);
    sm_iq_result(p, r);
}

static bool parse_order(const char *s, int64_t *order_r)
{
    int64_t v = 0;
    if (s == NULL || s[0] == '\0' || strlen(s) > 10)
        return false;
    for (const char *c = s; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (*c - '0');
    }
    *order_r = v;
    return v <= PRIVACY_MAX_ORDER;
}

static bool parse_kinds(const struct xml_node *n, unsigned *block_r)
{
    unsigned block = 0;
    for (const struct xml_node *c = xml_first_elem(n); c != NULL; c = xml_next_elem(c)) {
        unsigned i = 0;
        while (i < 4 && !xml_is(c, NS_PRIVACY, kind_names[i]))
            i++;
        if (i == 4)
            return false;
        block |= 1u << i;
    }
    *block_r = block;
    return true;
}

static bool group_exists(struct sm_user *u, const char *group)
{
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(u->roster, &it, NULL, &v)) {
        if (in_group(v, group))
            return true;
    }
    return false;
}

static enum xmpp_cond parse_value(struct sm_pkt *p, const char *type, const char *value,
                                  struct privacy_item *it)
{
    if (strcmp(type, "jid") == 0) {
        struct jid j;
        if (jid_parse_str(p->a, value, &j, NULL) < 0)
            return XMPP_COND_BAD_REQUEST;
        privacy_item_set_jid(it, &j);
        return XMPP_COND_NONE;
    }
    bool group = strcmp(type, "group") == 0;
    if (group && !group_exists(p->user, value))
        return XMPP_COND_ITEM_NOT_FOUND; /* §2.1: not a group of the roster */
    if (!group &&
        (strcmp(type, "subscription") != 0 || (strcmp(value, "none") && strcmp(value, "to") &&
                                               strcmp(value, "from") && strcmp(value, "both"))))
        return XMPP_COND_BAD_REQUEST;
    it->type = group ? PRIVACY_T_GROUP : PRIVACY_T_SUB;
    it->value = xstrdup(value);
    return XMPP_COND_NONE;
}

static enum xmpp_cond parse_item(struct sm_pkt *p, const struct xml_node *n,
                                 struct privacy_item *it)
{
    const char *action = xml_attr_get(n, "action");
    const char *type = xml_attr_get(n, "type");
    const char *value = xml_attr_get(n, "value");
    *it = (struct privacy_item){0};
    if (!xml_is(n, NS_PRIVACY, "item") || action == NULL ||
        (strcmp(action, "allow") != 0 && strcmp(action, "deny") != 0) ||
        !parse_order(xml_attr_get(n, "order"), &it->order) || !parse_kinds(n, &it->block))
        return XMPP_COND_BAD_REQUEST;
    it->deny = action[0] == 'd';
    if (type == NULL)
        return XMPP_COND_NONE; /* fall-through */
    if (value == NULL)
        return XMPP_COND_BAD_REQUEST;
    return parse_value(p, type, value, it);
}

/* Reads the items of a <list/> into l, sorted; the condition to answer
 * with when one is invalid. */
static enum xmpp_cond read_items(struct sm_pkt *p, const struct xml_node *ln,
                                 struct privacy_list *l, const char **why_r)
{
    for (const struct xml_node *c = xml_first_elem(ln); c != NULL; c = xml_next_elem(c)) {
        struct privacy_item it;
        if (l->n >= PRIVACY_MAX_ITEMS) {
            *why_r = "too many items";
            return XMPP_COND_NOT_ACCEPTABLE;
        }
        enum xmpp_cond cond = parse_item(p, c, &it);
        if (cond != XMPP_COND_NONE) {
            item_fini(&it);
            *why_r = cond == XMPP_COND_ITEM_NOT_FOUND ? "no such roster group" : "invalid item";
            return cond;
        }
        privacy_list_append(l, &it);
    }
    privacy_list_sort(l);
    for (size_t i = 1; i < l->n; i++) {
        if (l->items[i].order == l->items[i - 1].order) {
            *why_r = "order values must be unique";
            return XMPP_COND_BAD_REQUEST;
        }
    }
    return XMPP_COND_NONE;
}

/* Whether list name applies to a session of the user other than self. */
static bool used_elsewhere(const struct privacy_user *pu, const struct sm_user *u,
                           const struct sm_session *self, const char *name)
{
    for (const struct sm_session *o = u->sessions; o != NULL; o = o->next) {
        const struct privacy_list *l = o != self ? effective(pu, o) : NULL;
        if (l != NULL && strcmp(l->name, name) == 0)
            return true;
    }
    return false;
}

/* Whether the default list applies to a session other than self (one
 * without an active list). */
static bool default_used_elsewhere(const struct privacy_user *pu, const struct sm_user *u,
                                   const struct sm_session *self)
{
    for (const struct sm_session *o = u->sessions; o != NULL; o = o->next) {
        const struct privacy_sess *ps = sess_find(pu, o);
        if (o != self && (ps == NULL || ps->active == NULL))
            return true;
    }
    return false;
}

static void remove_list(struct sm_pkt *p, struct privacy_user *pu, const char *name)
{
    if (privacy_list_find(pu, name) == NULL) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (used_elsewhere(pu, p->user, p->sess, name)) {
        sm_error(p, XMPP_COND_CONFLICT, "the list applies to another resource");
        return;
    }
    struct privacy_change *ch = privacy_change_begin(pu, p->user);
    privacy_list_remove(pu, name);
    sm_iq_result(p, NULL);
    privacy_change_end(&ch, name, false);
}

static size_t count_lists(const struct privacy_user *pu)
{
    size_t n = 0;
    for (const struct privacy_list *l = pu->lists; l != NULL; l = l->next)
        n++;
    return n;
}

static void set_list(struct sm_pkt *p, struct privacy_user *pu, const struct xml_node *ln)
{
    const char *name = xml_attr_get(ln, "name"), *why = NULL;
    if (name == NULL || name[0] == '\0' || strlen(name) > MAX_NAME) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "a list needs a name");
        return;
    }
    if (xml_first_elem(ln) == NULL) {
        remove_list(p, pu, name);
        return;
    }
    if (privacy_list_find(pu, name) == NULL && count_lists(pu) >= MAX_LISTS) {
        sm_error(p, XMPP_COND_NOT_ACCEPTABLE, "too many privacy lists");
        return;
    }
    struct privacy_list *l = privacy_list_new(name);
    enum xmpp_cond cond = read_items(p, ln, l, &why);
    if (cond != XMPP_COND_NONE) {
        privacy_list_free(l);
        sm_error(p, cond, why);
        return;
    }
    struct privacy_change *ch = privacy_change_begin(pu, p->user);
    privacy_list_put(pu, l);
    sm_iq_result(p, NULL);
    privacy_change_end(&ch, name, false);
}

static void set_active(struct sm_pkt *p, struct privacy_user *pu, const struct xml_node *n)
{
    const char *name = xml_attr_get(n, "name");
    if (name != NULL && privacy_list_find(pu, name) == NULL) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
        return;
    }
    struct privacy_change *ch = privacy_change_begin(pu, p->user);
    struct privacy_sess *ps = privacy_sess_get(pu, p->sess);
    free(ps->active);
    ps->active = dup_or_null(name);
    sm_iq_result(p, NULL);
    privacy_change_end(&ch, NULL, false);
}

static void set_default(struct sm_pkt *p, struct privacy_user *pu, const struct xml_node *n)
{
    const char *name = xml_attr_get(n, "name");
    if (name != NULL && privacy_list_find(pu, name) == NULL) {
        sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
        return;
    }
    if (opt_eq(name, pu->default_name)) {
        sm_iq_result(p, NULL);
        return;
    }
    if (pu->default_name != NULL && default_used_elsewhere(pu, p->user, p->sess)) {
        sm_error(p, XMPP_COND_CONFLICT, "the default list applies to another resource");
        return;
    }
    struct privacy_change *ch = privacy_change_begin(pu, p->user);
    privacy_default_set(pu, name);
    sm_iq_result(p, NULL);
    privacy_change_end(&ch, NULL, false);
}

static void privacy_set(struct sm_pkt *p, struct privacy_user *pu, const struct xml_node *q)
{
    const struct xml_node *c = xml_first_elem(q);
    if (c == NULL || xml_next_elem(c) != NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "one <active/>, <default/> or <list/>");
        return;
    }
    if (xml_is(c, NS_PRIVACY, "active"))
        set_active(p, pu, c);
    else if (xml_is(c, NS_PRIVACY, "default"))
        set_default(p, pu, c);
    else if (xml_is(c, NS_PRIVACY, "list"))
        set_list(p, pu, c);
    else
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
}

static void on_privacy(struct sm_pkt *p, struct xml_node *q)
{
    if (!xml_is(q, NS_PRIVACY, "query")) {
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
        return;
    }
    struct privacy_user *pu = privacy_user_ready(p);
    if (pu == NULL)
        return;
    privacy_sess_get(pu, p->sess)->privacy = true;
    if (strcmp(p->type, "get") == 0)
        privacy_get(p, pu, q);
    else
        privacy_set(p, pu, q);
}

/* ---- the feature ---------------------------------------------------------------------- */

/* Forgets the users the sm has unloaded (their lists are in the store). */
static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct privacy_state *sp = arg;
    const char *drop[64];
    size_t n = 0;
    struct hmap_iter it = {0};
    const char *k;
    void *v;
    (void)fd;
    (void)what;
    while (n < 64 && hmap_next(sp->users, &it, &k, &v)) {
        const struct privacy_user *pu = v;
        if (pu->pending == 0 && pu->waiting_head == NULL && pu->sessions == NULL &&
            hmap_get(sp->sm->users, k) == NULL)
            drop[n++] = k;
    }
    for (size_t i = 0; i < n; i++)
        user_free(hmap_del(sp->users, drop[i]));
}

static int privacy_init(struct sm *sm, struct err *err)
{
    (void)err;
    struct privacy_state *sp = xcalloc(1, sizeof(*sp));
    struct timeval tv = {SWEEP_SECONDS, 0};
    sp->sm = sm;
    sp->users = hmap_new();
    sp->sweep = event_new(sm->base, -1, EV_PERSIST, on_sweep, sp);
    event_add(sp->sweep, &tv);
    sm_feature_set_state(sm, &sm_feat_privacy, sp);
    return 0;
}

static void privacy_fini(struct sm *sm)
{
    struct privacy_state *sp = state_of(sm);
    if (sp == NULL)
        return;
    event_free(sp->sweep);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(sp->users, &it, NULL, &v)) {
        struct privacy_user *pu = v;
        if (pu->pending == 0) {
            user_free(pu);
        } else {
            drop_waiting(pu);
            pu->orphan = true; /* its load callbacks free it */
        }
    }
    hmap_free(&sp->users);
    free(sp);
    sm_feature_set_state(sm, &sm_feat_privacy, NULL);
}

/* A deleted account: its cached lists go (its rows go from the store). */
static void on_user_forget(struct sm *sm, const char *jid)
{
    struct privacy_state *sp = state_of(sm);
    struct privacy_user *pu = sp ? hmap_del(sp->users, jid) : NULL;
    if (pu == NULL)
        return;
    if (pu->pending == 0) {
        user_free(pu);
    } else {
        drop_waiting(pu);
        pu->orphan = true; /* its load callbacks free it */
    }
}

static void on_session_start(struct sm_session *s)
{
    if (state_of(s->user->sm) != NULL)
        (void)user_get(s->user->sm, s->user->jid); /* loads ahead of the first stanza */
}

static void on_session_end(struct sm_session *s)
{
    struct privacy_state *sp = state_of(s->user->sm);
    struct privacy_user *pu = sp ? hmap_get(sp->users, s->user->jid) : NULL;
    if (pu == NULL)
        return;
    for (struct privacy_sess **pp = &pu->sessions; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->s == s) {
            struct privacy_sess *ps = *pp;
            *pp = ps->next;
            free(ps->active);
            free(ps);
            break;
        }
    }
    /* what the session sent while the lists were loading goes with it */
    struct sm_pkt *list = pu->waiting_head;
    pu->waiting_head = pu->waiting_tail = NULL;
    while (list != NULL) {
        struct sm_pkt *p = list;
        list = p->next;
        if (p->sess == s) {
            sm_pkt_free(p);
            continue;
        }
        p->next = NULL;
        if (pu->waiting_tail != NULL)
            pu->waiting_tail->next = p;
        else
            pu->waiting_head = p;
        pu->waiting_tail = p;
    }
}

static const struct sm_iq_handler iqs[] = {{NS_PRIVACY, SM_IQ_ACCOUNT, on_privacy}};
static const char *const server_features[] = {NS_PRIVACY, NULL};

const struct sm_feature sm_feat_privacy = {
    .name = "privacy",
    .order = 5, /* XEP-0016 §2.2: the first delivery rule */
    .server_features = server_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = privacy_init,
    .fini = privacy_fini,
    .on_stanza = on_stanza,
    .on_session_start = on_session_start,
    .on_session_end = on_session_end,
    .allow_out = allow_out,
    .allow_in = allow_in,
    .on_user_forget = on_user_forget,
};
