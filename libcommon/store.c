/* SPDX-License-Identifier: MIT */
/* The storage core: checks and translates each operation, hands it to the
 * driver, and runs completion callbacks from the event loop in completion
 * order. Opening checks the schema version and migrates. */
#include "store_private.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "store_sql.h"

#define DEFAULT_MAX_VALUE (1024 * 1024)

struct store {
    struct event_base *base;
    struct store_cfg cfg;
    const struct store_driver_ops *ops;
    void *drv;
    int db_version;
    size_t pending;
    struct store_op *done_head, *done_tail;
    struct event *done_ev;
    bool closing;
};

const char *store_status_name(enum store_status s)
{
    switch (s) {
    case STORE_OK:
        return "ok";
    case STORE_ERR_INPUT:
        return "bad input";
    case STORE_ERR_CONFLICT:
        return "conflict";
    case STORE_ERR_UNAVAILABLE:
        return "database unavailable";
    case STORE_ERR_INTERNAL:
        break;
    }
    return "database error";
}

struct event_base *store_event_base(const struct store *st)
{
    return st->base;
}

const struct store_cfg *store_config(const struct store *st)
{
    return &st->cfg;
}

size_t store_pending(const struct store *st)
{
    return st->pending;
}

int store_db_version(struct store *st)
{
    return st->db_version;
}

static const struct store_migrations *migrations(enum store_driver d)
{
    return d == STORE_DRIVER_PGSQL ? &store_migrations_pgsql : &store_migrations_sqlite;
}

int store_schema_version(void)
{
    return (int)store_migrations_sqlite.count;
}

/* ---- completion ---------------------------------------------------------- */

static int cmp_seq(const void *x, const void *y)
{
    int64_t a = store_rec_get_int(*(struct store_rec *const *)x, "seq", 0);
    int64_t b = store_rec_get_int(*(struct store_rec *const *)y, "seq", 0);
    return (a > b) - (a < b);
}

static void submit(struct store *st, struct store_op *op);
static struct store_op *op_new(struct store *st, enum store_op_kind kind, const char *coll,
                               const char *owner, store_cb *cb, void *arg);
static void fail(struct store_op *op, enum store_status s, const struct err *err);

/* Turns the driver's rows into what the caller was promised. */
static void finish(struct store_op *op)
{
    struct store_res *res = &op->res;
    if (res->status != STORE_OK)
        return;
    switch (op->kind) {
    case STORE_OP_COUNT:
    case STORE_OP_COUNTER:
        res->value = res->nrows ? store_rec_get_int(res->rows[0], op->rcols[0].name, 0) : 0;
        res->nrows = 0;
        break;
    case STORE_OP_TAKE:
        if (res->nrows > 1) /* rows is NULL when there are none */
            qsort(res->rows, res->nrows, sizeof(*res->rows), cmp_seq);
        res->affected = (int64_t)res->nrows;
        break;
    case STORE_OP_RANGE:
        res->complete = res->nrows <= op->range.limit;
        if (!res->complete)
            res->nrows = op->range.limit;
        if (op->range.reverse) {
            for (size_t i = 0, j = res->nrows; i + 1 < j; i++, j--) {
                struct store_rec *t = res->rows[i];
                res->rows[i] = res->rows[j - 1];
                res->rows[j - 1] = t;
            }
        }
        break;
    default:
        break;
    }
}

static struct store_rec *rec_copy(struct arena *a, const struct store_rec *src)
{
    struct store_rec *f = store_rec_new(a);
    f->f = arena_alloc(a, (src->n ? src->n : 1) * sizeof(*f->f));
    f->n = f->cap = src->n;
    for (size_t i = 0; i < src->n; i++) {
        f->f[i] = src->f[i];
        f->f[i].name = arena_strdup(a, src->f[i].name);
        if (src->f[i].s != NULL)
            f->f[i].s = arena_strdup(a, src->f[i].s);
    }
    return f;
}

/* The anchor step of a range query found (or did not find) the id. */
static bool anchor_done(struct store_op *op)
{
    if (op->kind != STORE_OP_ANCHOR)
        return false;
    struct store *st = op->st;
    if (op->res.status != STORE_OK) {
        op->kind = STORE_OP_RANGE;
        return false;
    }
    if (op->res.nrows == 0) {
        struct err e;
        const char *id = op->range.after_id ? op->range.after_id : op->range.before_id;
        err_set(&e, XMPP_COND_ITEM_NOT_FOUND, "no item with id '%s'", id);
        op->kind = STORE_OP_RANGE;
        op->res.status = STORE_ERR_INPUT;
        op->res.err = e;
        return false;
    }
    int64_t seq = store_rec_get_int(op->res.rows[0], "seq", -1);
    struct store_op *next = op_new(st, STORE_OP_RANGE, op->coll->name, op->owner, op->cb, op->arg);
    struct arena *a = next->res.arena;
    next->range = op->range;
    next->range.after_id = op->range.after_id ? arena_strdup(a, op->range.after_id) : NULL;
    next->range.before_id = op->range.before_id ? arena_strdup(a, op->range.before_id) : NULL;
    if (op->range.filter != NULL)
        next->range.filter = rec_copy(a, op->range.filter);
    struct err err = {0};
    if (store_sql_build(a, next, next->range.filter, seq, st->cfg.max_value, &err) < 0)
        fail(next, STORE_ERR_INPUT, &err);
    else
        submit(st, next);
    struct arena *old = op->res.arena; /* op lives in its own arena */
    arena_free(&old);
    return true;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;
    (void)fd;
    (void)what;
    struct store_op *list = st->done_head;
    st->done_head = st->done_tail = NULL;
    while (list != NULL) {
        struct store_op *op = list;
        list = op->next;
        st->pending--;
        if (anchor_done(op))
            continue;
        finish(op);
        struct arena *a = op->res.arena;
        op->cb(&op->res, op->arg);
        arena_free(&a);
    }
}

void store_op_done(struct store_op *op)
{
    struct store *st = op->st;
    op->next = NULL;
    if (st->done_tail != NULL)
        st->done_tail->next = op;
    else
        st->done_head = op;
    st->done_tail = op;
    if (!st->closing)
        event_active(st->done_ev, EV_TIMEOUT, 0);
}

/* ---- submission ------------------------------------------------------------ */

static struct store_op *op_new(struct store *st, enum store_op_kind kind, const char *coll,
                               const char *owner, store_cb *cb, void *arg)
{
    struct arena *a = arena_new(2048);
    struct store_op *op = arena_alloc(a, sizeof(*op));
    op->st = st;
    op->kind = kind;
    op->res.arena = a;
    op->cb = cb;
    op->arg = arg;
    op->coll = store_schema_coll(coll);
    op->owner = arena_strdup(a, owner ? owner : "");
    op->owner_hash = hash_stable(op->owner, strlen(op->owner), 0);
    st->pending++;
    return op;
}

static void fail(struct store_op *op, enum store_status s, const struct err *err)
{
    op->res.status = s;
    op->res.err = *err;
    store_op_done(op);
}

static void submit(struct store *st, struct store_op *op)
{
    if (st->closing) {
        struct err e;
        err_set(&e, XMPP_COND_SERVICE_UNAVAILABLE, "the store is closing");
        fail(op, STORE_ERR_UNAVAILABLE, &e);
        return;
    }
    st->ops->submit(st->drv, op);
}

/* Builds and submits; any input error completes the op with it. */
static void run(struct store *st, enum store_op_kind kind, const char *coll, const char *owner,
                const struct store_rec *rec, const struct store_range *q, store_cb *cb, void *arg)
{
    struct store_op *op = op_new(st, kind, coll, owner, cb, arg);
    struct err err = {0};
    if (op->coll == NULL) {
        err_set(&err, XMPP_COND_BAD_REQUEST, "no collection '%s'", coll);
        fail(op, STORE_ERR_INPUT, &err);
        return;
    }
    if (kind != STORE_OP_OWNERS && (owner == NULL || owner[0] == '\0')) {
        err_set(&err, XMPP_COND_BAD_REQUEST, "%s: empty owner", coll);
        fail(op, STORE_ERR_INPUT, &err);
        return;
    }
    if (q != NULL) {
        struct arena *a = op->res.arena;
        op->range = *q;
        op->range.after_id = q->after_id ? arena_strdup(a, q->after_id) : NULL;
        op->range.before_id = q->before_id ? arena_strdup(a, q->before_id) : NULL;
        op->range.filter = q->filter ? rec_copy(a, q->filter) : NULL;
        if (op->range.limit == 0 || op->range.limit > 100000)
            op->range.limit = 100000;
    }
    if (store_sql_build(op->res.arena, op, rec, -1, st->cfg.max_value, &err) < 0) {
        fail(op, STORE_ERR_INPUT, &err);
        return;
    }
    submit(st, op);
}

void store_get(struct store *st, const char *coll, const char *owner,
               const struct store_rec *filter, store_cb *cb, void *arg)
{
    run(st, STORE_OP_GET, coll, owner, filter, NULL, cb, arg);
}

void store_put(struct store *st, const char *coll, const char *owner, const struct store_rec *rec,
               store_cb *cb, void *arg)
{
    run(st, STORE_OP_PUT, coll, owner, rec, NULL, cb, arg);
}

void store_insert(struct store *st, const char *coll, const char *owner,
                  const struct store_rec *rec, store_cb *cb, void *arg)
{
    run(st, STORE_OP_INSERT, coll, owner, rec, NULL, cb, arg);
}

void store_delete(struct store *st, const char *coll, const char *owner,
                  const struct store_rec *filter, store_cb *cb, void *arg)
{
    run(st, STORE_OP_DELETE, coll, owner, filter, NULL, cb, arg);
}

void store_count(struct store *st, const char *coll, const char *owner,
                 const struct store_rec *filter, store_cb *cb, void *arg)
{
    run(st, STORE_OP_COUNT, coll, owner, filter, NULL, cb, arg);
}

void store_take_all(struct store *st, const char *coll, const char *owner, store_cb *cb, void *arg)
{
    run(st, STORE_OP_TAKE, coll, owner, NULL, NULL, cb, arg);
}

void store_owners(struct store *st, const char *coll, store_cb *cb, void *arg)
{
    run(st, STORE_OP_OWNERS, coll, NULL, NULL, NULL, cb, arg);
}

void store_range(struct store *st, const char *coll, const char *owner, const struct store_range *q,
                 store_cb *cb, void *arg)
{
    bool anchored = q->after_id != NULL || q->before_id != NULL;
    run(st, anchored ? STORE_OP_ANCHOR : STORE_OP_RANGE, coll, owner, q->filter, q, cb, arg);
}

void store_expire(struct store *st, const char *coll, const char *owner, int64_t before,
                  store_cb *cb, void *arg)
{
    struct store_range q = {.end = before};
    run(st, STORE_OP_EXPIRE, coll, owner, NULL, &q, cb, arg);
}

void store_counter_add(struct store *st, const char *owner, const char *name, int64_t delta,
                       store_cb *cb, void *arg)
{
    struct arena *a = arena_new(256);
    struct store_rec *r = store_rec_new(a);
    store_rec_str(a, r, "name", name);
    store_rec_int(a, r, "value", delta);
    run(st, STORE_OP_COUNTER, "counters", owner, r, NULL, cb, arg);
    arena_free(&a);
}

/* ---- open and close ----------------------------------------------------------- */

static int migrate(struct store *st, bool create, bool allow, struct err *err)
{
    const struct store_migrations *m = migrations(st->cfg.driver);
    int have = st->db_version, want = (int)m->count;
    if (have > want)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "the database has schema version %d, newer than this build's %d: "
                       "upgrade Parley",
                       have, want);
    if (have == want)
        return 0;
    if (have == 0 && !create)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "the database has no Parley schema: run 'parleyctl db init'");
    if (have > 0 && !allow)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "the database has schema version %d, older than %d: run 'parleyctl db "
                       "migrate'",
                       have, want);
    for (int v = have; v < want; v++) {
        if (st->ops->migrate(st->drv, m->scripts[v], v + 1, err) < 0)
            return -1;
        st->db_version = v + 1;
    }
    return 0;
}

struct store *store_open(struct event_base *base, const struct store_cfg *cfg, bool create,
                         bool allow_migrate, struct err *err)
{
    struct store *st = xcalloc(1, sizeof(*st));
    st->base = base;
    st->cfg = *cfg;
    st->cfg.sqlite_path = cfg->sqlite_path ? xstrdup(cfg->sqlite_path) : NULL;
    st->cfg.pg_conninfo = cfg->pg_conninfo ? xstrdup(cfg->pg_conninfo) : NULL;
    if (st->cfg.max_value == 0)
        st->cfg.max_value = DEFAULT_MAX_VALUE;
    if (st->cfg.pg_pool <= 0)
        st->cfg.pg_pool = 4;
    if (st->cfg.pg_queue_timeout_ms <= 0)
        st->cfg.pg_queue_timeout_ms = 5000;
    st->ops = cfg->driver == STORE_DRIVER_PGSQL ? &store_driver_pgsql : &store_driver_sqlite;
    st->done_ev = event_new(base, -1, 0, on_done, st);
    if (st->ops->open(st, &st->cfg, &st->drv, &st->db_version, err) < 0) {
        st->drv = NULL;
        store_close(&st);
        return NULL;
    }
    if (migrate(st, create, allow_migrate, err) < 0) {
        store_close(&st);
        return NULL;
    }
    return st;
}

void store_close(struct store **stp)
{
    struct store *st = *stp;
    if (st == NULL)
        return;
    st->closing = true;
    if (st->drv != NULL)
        st->ops->close(st->drv);
    /* Whatever completed (or was failed by the driver) is delivered now. */
    while (st->done_head != NULL)
        on_done(-1, 0, st);
    event_free(st->done_ev);
    free((char *)st->cfg.sqlite_path);
    free((char *)st->cfg.pg_conninfo);
    free(st);
    *stp = NULL;
}
