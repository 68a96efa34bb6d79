/* SPDX-License-Identifier: MIT */
/* Users: loaded on first use (account existence, roster, roster version),
 * cached while they have sessions or were used recently, and the roster
 * item store. */
#include "sm.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "authreg.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

#define USER_IDLE_US (60LL * 1000000)

struct load {
    struct sm_user *u;
    int pending;
};

static void item_free(struct sm_item *it)
{
    free(it->jid);
    free(it->name);
    free(it->ask_in_xml);
    for (size_t i = 0; i < it->ngroups; i++)
        free(it->groups[i]);
    free(it->groups);
    free(it);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void load_step_done(struct load *l)
{
    if (--l->pending > 0)
        return;
    struct sm_user *u = l->u;
    free(l);
    if (u->state == SM_USER_LOADING)
        u->state = SM_USER_READY;
    struct sm_pkt *list = u->waiting_head;
    u->waiting_head = u->waiting_tail = NULL;
    while (list != NULL) {
        struct sm_pkt *p = list;
        list = p->next;
        sm_dispatch_resume(p);
    }
}

static void on_authreg(const struct store_res *res, void *arg)
{
    struct load *l = arg;
    if (res->status != STORE_OK)
        log_error(&l->u->sm->lc, "loading %s: %s", l->u->jid, res->err.text);
    else if (res->value == 0)
        l->u->state = SM_USER_MISSING;
    load_step_done(l);
}

static void on_items(const struct store_res *res, void *arg)
{
    struct load *l = arg;
    struct sm_user *u = l->u;
    for (size_t i = 0; res->status == STORE_OK && i < res->nrows; i++) {
        const struct store_rec *r = res->rows[i];
        struct sm_item *it = xcalloc(1, sizeof(*it));
        it->jid = xstrdup(store_rec_get_str(r, "jid", ""));
        it->name = dup_or_null(store_rec_get_str(r, "name", NULL));
        it->sub_to = store_rec_get_bool(r, "sub_to", false);
        it->sub_from = store_rec_get_bool(r, "sub_from", false);
        it->ask_out = store_rec_get_bool(r, "ask_out", false);
        it->ask_in = store_rec_get_bool(r, "ask_in", false);
        it->approved = store_rec_get_bool(r, "approved", false);
        it->ask_in_xml = dup_or_null(store_rec_get_str(r, "ask_in_xml", NULL));
        it->in_roster = store_rec_get_bool(r, "in_roster", true);
        struct sm_item *old = hmap_put(u->roster, it->jid, it);
        if (old != NULL)
            item_free(old);
    }
    if (res->status != STORE_OK)
        log_error(&u->sm->lc, "loading the roster of %s: %s", u->jid, res->err.text);
    load_step_done(l);
}

static void on_groups(const struct store_res *res, void *arg)
{
    struct load *l = arg;
    struct sm_user *u = l->u;
    for (size_t i = 0; res->status == STORE_OK && i < res->nrows; i++) {
        const char *jid = store_rec_get_str(res->rows[i], "jid", "");
        struct sm_item *it = hmap_get(u->roster, jid);
        if (it == NULL)
            continue;
        it->groups = xrealloc(it->groups, (it->ngroups + 1) * sizeof(*it->groups));
        it->groups[it->ngroups++] = xstrdup(store_rec_get_str(res->rows[i], "grp", ""));
    }
    load_step_done(l);
}

static void on_version(const struct store_res *res, void *arg)
{
    struct load *l = arg;
    if (res->status == STORE_OK && res->nrows > 0)
        l->u->roster_ver = store_rec_get_int(res->rows[0], "value", 0);
    load_step_done(l);
}

struct sm_user *sm_user_get(struct sm *sm, const char *bare)
{
    struct sm_user *u = hmap_get(sm->users, bare);
    if (u != NULL) {
        u->last_used = sm_now_us();
        return u;
    }
    u = xcalloc(1, sizeof(*u));
    u->sm = sm;
    u->jid = xstrdup(bare);
    u->state = SM_USER_LOADING;
    u->roster = hmap_new();
    u->last_used = sm_now_us();
    hmap_put(sm->users, u->jid, u);

    /* One owner's operations complete in order, so the last callback
     * (the version) sees the others done. */
    struct load *l = xcalloc(1, sizeof(*l));
    l->u = u;
    l->pending = 4;
    struct arena *a = arena_new(256);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "name", "roster-version");
    store_count(sm->st, "authreg", bare, NULL, on_authreg, l);
    store_get(sm->st, "roster-items", bare, NULL, on_items, l);
    store_get(sm->st, "roster-groups", bare, NULL, on_groups, l);
    store_get(sm->st, "counters", bare, f, on_version, l);
    arena_free(&a);
    return u;
}

void sm_user_wait(struct sm_user *u, struct sm_pkt *p)
{
    sm_pkt_keep(p);
    p->next = NULL;
    if (u->waiting_tail != NULL)
        u->waiting_tail->next = p;
    else
        u->waiting_head = p;
    u->waiting_tail = p;
}

struct sm_item *sm_user_item(struct sm_user *u, const char *bare)
{
    return hmap_get(u->roster, bare);
}

static void on_saved(const struct store_res *res, void *arg)
{
    struct sm_user *u = arg;
    if (res->status != STORE_OK)
        log_error(&u->sm->lc, "saving the roster of %s: %s", u->jid, res->err.text);
}

static void bump_version(struct sm_user *u)
{
    u->roster_ver++;
    store_counter_add(u->sm->st, u->jid, "roster-version", 1, on_saved, u);
}

void sm_user_save_item(struct sm_user *u, struct sm_item *it)
{
    struct sm *sm = u->sm;
    if (hmap_get(u->roster, it->jid) != it) {
        struct sm_item *old = hmap_put(u->roster, it->jid, it);
        if (old != NULL && old != it)
            item_free(old);
    }
    struct arena *a = arena_new(1024);
    struct store_rec *r = store_rec_new(a);
    store_rec_str(a, r, "jid", it->jid);
    if (it->name != NULL)
        store_rec_str(a, r, "name", it->name);
    store_rec_bool(a, r, "sub_to", it->sub_to);
    store_rec_bool(a, r, "sub_from", it->sub_from);
    store_rec_bool(a, r, "ask_out", it->ask_out);
    store_rec_bool(a, r, "ask_in", it->ask_in);
    store_rec_bool(a, r, "approved", it->approved);
    if (it->ask_in_xml != NULL)
        store_rec_xml(a, r, "ask_in_xml", it->ask_in_xml);
    store_rec_bool(a, r, "in_roster", it->in_roster);
    store_put(sm->st, "roster-items", u->jid, r, on_saved, u);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "jid", it->jid);
    store_delete(sm->st, "roster-groups", u->jid, f, on_saved, u);
    for (size_t i = 0; i < it->ngroups; i++) {
        struct store_rec *g = store_rec_new(a);
        store_rec_str(a, g, "jid", it->jid);
        store_rec_str(a, g, "grp", it->groups[i]);
        store_put(sm->st, "roster-groups", u->jid, g, on_saved, u);
    }
    arena_free(&a);
    bump_version(u);
}

void sm_user_delete_item(struct sm_user *u, const char *bare)
{
    struct sm_item *it = hmap_del(u->roster, bare);
    if (it == NULL)
        return;
    struct arena *a = arena_new(256);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "jid", bare);
    store_delete(u->sm->st, "roster-items", u->jid, f, on_saved, u);
    store_delete(u->sm->st, "roster-groups", u->jid, f, on_saved, u);
    arena_free(&a);
    item_free(it);
    bump_version(u);
}

struct sm_session *sm_user_session(struct sm_user *u, const char *resource)
{
    for (struct sm_session *s = u->sessions; s != NULL; s = s->next) {
        if (strcmp(s->res, resource) == 0)
            return s;
    }
    return NULL;
}

size_t sm_user_available(struct sm_user *u, int min_priority, struct sm_session **out, size_t max)
{
    size_t n = 0;
    for (struct sm_session *s = u->sessions; s != NULL && n < max; s = s->next) {
        if (!s->available || s->priority < min_priority)
            continue;
        size_t i = n++;
        while (i > 0 && out[i - 1]->priority < s->priority) {
            out[i] = out[i - 1];
            i--;
        }
        out[i] = s;
    }
    return n;
}

void sm_user_forget(struct sm_user *u)
{
    for (size_t i = 0; i < u->sm->nfeatures; i++)
        if (u->sm->features[i]->on_user_forget != NULL)
            u->sm->features[i]->on_user_forget(u->sm, u->jid);
    for (size_t i = 0; authreg_user_collections[i] != NULL; i++)
        store_delete(u->sm->st, authreg_user_collections[i], u->jid, NULL, on_saved, u);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(u->roster, &it, NULL, &v))
        item_free(v);
    hmap_free(&u->roster);
    u->roster = hmap_new();
    u->anonymous = false;
    u->state = SM_USER_MISSING;
}

static void user_free(struct sm_user *u)
{
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(u->roster, &it, NULL, &v))
        item_free(v);
    hmap_free(&u->roster);
    while (u->waiting_head != NULL) {
        struct sm_pkt *p = u->waiting_head;
        u->waiting_head = p->next;
        sm_pkt_free(p);
    }
    free(u->jid);
    free(u);
}

void sm_user_housekeeping(struct sm *sm)
{
    int64_t now = sm_now_us();
    const char *drop[64];
    size_t n = 0;
    struct hmap_iter it = {0};
    const char *k;
    void *v;
    while (n < 64 && hmap_next(sm->users, &it, &k, &v)) {
        struct sm_user *u = v;
        if (u->sessions == NULL && u->waiting_head == NULL && u->state != SM_USER_LOADING &&
            now - u->last_used > USER_IDLE_US)
            drop[n++] = k;
    }
    for (size_t i = 0; i < n; i++) {
        struct sm_user *u = hmap_del(sm->users, drop[i]);
        user_free(u);
    }
}

void sm_users_free_all(struct sm *sm)
{
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(sm->users, &it, NULL, &v)) {
        struct sm_user *u = v;
        while (u->sessions != NULL)
            sm_session_free(u->sessions);
    }
    it = (struct hmap_iter){0};
    while (hmap_next(sm->users, &it, NULL, &v))
        user_free(v);
}
