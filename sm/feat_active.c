/* SPDX-License-Identifier: MIT */
/* First activation (jabberd2's "active" table): the time a user's first
 * session ever started, written once and never changed. A login looks
 * first and inserts only when nothing is there, so that PostgreSQL does
 * not log a unique violation at every login; two sm processes racing on a
 * first login meet STORE_ERR_CONFLICT, which is the answer we wanted. */
#include "sm.h"

#include <stdlib.h>

#include "alloc.h"
#include "arena.h"

/* A first-activation check in flight. */
struct active_check {
    struct sm *sm;
    char *bare;
    int64_t when;
};

static void on_inserted(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK && res->status != STORE_ERR_CONFLICT)
        log_warn(&sm->lc, "recording a first activation: %s", res->err.text);
}

static void on_counted(const struct store_res *res, void *arg)
{
    struct active_check *c = arg;
    if (res->status != STORE_OK) {
        log_warn(&c->sm->lc, "looking up the first activation of %s: %s", c->bare, res->err.text);
    } else if (res->value == 0) {
        struct arena *a = arena_new(256);
        struct store_rec *r = store_rec_new(a);
        store_rec_time(a, r, "time", c->when);
        store_insert(c->sm->st, "active", c->bare, r, on_inserted, c->sm);
        arena_free(&a);
    }
    free(c->bare);
    free(c);
}

static void on_session_start(struct sm_session *s)
{
    struct active_check *c = xmalloc(sizeof(*c));
    c->sm = s->user->sm;
    c->bare = xstrdup(s->user->jid);
    c->when = sm_now_us();
    store_count(c->sm->st, "active", c->bare, NULL, on_counted, c);
}

const struct sm_feature sm_feat_active = {
    .name = "active",
    .order = 90,
    .on_session_start = on_session_start,
};
