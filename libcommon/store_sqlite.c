/* SPDX-License-Identifier: MIT */
/* The SQLite storage driver: one connection in WAL mode, statements run at
 * once inside submit (each is short and local), prepared once and cached by
 * their SQL text. */
#include "store_private.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "alloc.h"
#include "arena.h"
#include "attr.h"
#include "err.h"
#include "hmap.h"

/* Beyond this many distinct statements, new ones are run once and
 * finalised instead of cached (the core generates a bounded set, so this
 * only guards against a bug). */
#define STMT_CACHE_MAX 512

struct store_sqlite {
    sqlite3 *db;
    char *path;
    struct hmap *stmts; /* SQL text -> sqlite3_stmt * */
};

static void drv_free(struct store_sqlite *s)
{
    if (s == NULL)
        return;
    if (s->stmts != NULL) {
        struct hmap_iter it = {0};
        const char *key;
        void *value;
        while (hmap_next(s->stmts, &it, &key, &value))
            sqlite3_finalize(value);
        hmap_free(&s->stmts);
    }
    if (s->db != NULL)
        sqlite3_close_v2(s->db);
    xfree(&s->path);
    xfree(&s);
}

/* ---- open and migrate --------------------------------------------------- */

static int db_error(const struct store_sqlite *s, struct err *err)
{
    return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "sqlite %s: %s", s->path,
                   sqlite3_errmsg(s->db));
}

static int exec_sql(struct store_sqlite *s, const char *sql, struct err *err)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return db_error(s, err);
    return 0;
}

/* Runs a query expected to return at most one integer. Returns 1 with
 * *v_r set, 0 when there is no row, -1 with err. */
static int query_int(struct store_sqlite *s, const char *sql, int64_t *v_r, struct err *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        db_error(s, err);
        goto out;
    }
    int src = sqlite3_step(stmt);
    if (src == SQLITE_DONE) {
        rc = 0;
        goto out;
    }
    if (src != SQLITE_ROW) {
        db_error(s, err);
        goto out;
    }
    if (sqlite3_column_type(stmt, 0) != SQLITE_INTEGER) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "sqlite %s: %s: not an integer", s->path,
                sql);
        goto out;
    }
    *v_r = sqlite3_column_int64(stmt, 0);
    rc = 1;
out:
    sqlite3_finalize(stmt);
    return rc;
}

/* WAL lets parleyctl read while a daemon writes. An in-memory database
 * (":memory:", used by tests) cannot use WAL and answers "memory". */
static int set_wal(struct store_sqlite *s, struct err *err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = -1;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &stmt, NULL) != SQLITE_OK ||
        sqlite3_step(stmt) != SQLITE_ROW) {
        db_error(s, err);
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(stmt, 0);
    if (mode == NULL)
        mode = "";
    const char *file = sqlite3_db_filename(s->db, "main");
    bool in_memory = file == NULL || *file == '\0';
    if (strcasecmp(mode, "wal") != 0 && !(in_memory && strcasecmp(mode, "memory") == 0)) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                "sqlite %s: cannot enable WAL journal (journal_mode is \"%s\")", s->path, mode);
        goto out;
    }
    rc = 0;
out:
    sqlite3_finalize(stmt);
    return rc;
}

static int read_version(struct store_sqlite *s, int *version_r, struct err *err)
{
    int64_t v = 0;
    int found = query_int(s,
                          "SELECT count(*) FROM sqlite_master"
                          " WHERE type = 'table' AND name = 'schema_version'",
                          &v, err);
    if (found < 0)
        return -1;
    if (found == 0 || v == 0) {
        *version_r = 0;
        return 0;
    }
    found = query_int(s, "SELECT version FROM schema_version", &v, err);
    if (found < 0)
        return -1;
    if (found == 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "sqlite %s: table schema_version has no row", s->path);
    if (v < 0 || v > INT_MAX)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "sqlite %s: schema version %lld is out of range", s->path, (long long)v);
    *version_r = (int)v;
    return 0;
}

static int drv_open(struct store *st, const struct store_cfg *cfg, void **drv_r, int *version_r,
                    struct err *err)
{
    (void)st;
    if (cfg->sqlite_path == NULL || cfg->sqlite_path[0] == '\0')
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "sqlite: no database path set");

    int rc = -1;
    struct store_sqlite *s = xcalloc(1, sizeof(*s));
    s->path = xstrdup(cfg->sqlite_path);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int src = sqlite3_open_v2(s->path, &s->db, flags, NULL);
    if (src != SQLITE_OK) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "sqlite %s: %s", s->path,
                s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* The busy timeout first: switching to WAL needs a lock that another
     * process (parleyctl) may hold for a moment. */
    if (exec_sql(s, "PRAGMA busy_timeout=5000", err) < 0 || set_wal(s, err) < 0 ||
        exec_sql(s, "PRAGMA synchronous=NORMAL", err) < 0 ||
        exec_sql(s, "PRAGMA foreign_keys=ON", err) < 0 || read_version(s, version_r, err) < 0)
        goto out;
    s->stmts = hmap_new();
    *drv_r = s;
    rc = 0;
out:
    if (rc < 0)
        drv_free(s);
    return rc;
}

static int drv_migrate(void *drv, const char *script, int new_version, struct err *err)
{
    struct store_sqlite *s = drv;
    char set_version[160];
    snprintf(set_version, sizeof(set_version),
             "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
             "DELETE FROM schema_version;"
             "INSERT INTO schema_version VALUES(%d)",
             new_version);

    if (exec_sql(s, "BEGIN IMMEDIATE", err) < 0)
        return -1;
    int rc = -1;
    if (sqlite3_exec(s->db, script, NULL, NULL, NULL) != SQLITE_OK) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "sqlite %s: migration to version %d: %s",
                s->path, new_version, sqlite3_errmsg(s->db));
        goto out;
    }
    if (exec_sql(s, set_version, err) < 0 || exec_sql(s, "COMMIT", err) < 0)
        goto out;
    rc = 0;
out:
    /* Some errors (SQLITE_FULL, SQLITE_IOERR) end the transaction already. */
    if (rc < 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- operations --------------------------------------------------------- */

static void op_fail(struct store_op *op, enum store_status status, enum xmpp_cond cond,
                    const char *msg)
{
    op->res.status = status;
    op->res.rows = NULL;
    op->res.nrows = 0;
    op->res.affected = 0;
    err_set(&op->res.err, cond, "sqlite: %s", msg);
}

/* Maps an (extended) result code to the store's statuses. */
static void op_fail_rc(struct store_op *op, int code, const char *msg)
{
    switch (code) {
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_ROWID:
        op_fail(op, STORE_ERR_CONFLICT, XMPP_COND_CONFLICT, msg);
        return;
    }
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
        op_fail(op, STORE_ERR_UNAVAILABLE, XMPP_COND_RESOURCE_CONSTRAINT, msg);
        return;
    case SQLITE_IOERR:
        op_fail(op, STORE_ERR_UNAVAILABLE, XMPP_COND_INTERNAL_SERVER_ERROR, msg);
        return;
    default:
        op_fail(op, STORE_ERR_INTERNAL, XMPP_COND_INTERNAL_SERVER_ERROR, msg);
        return;
    }
}

static void op_fail_db(struct store_sqlite *s, struct store_op *op, int code)
{
    op_fail_rc(op, code, sqlite3_errmsg(s->db));
}

static bool only_blanks(const char *p)
{
    for (; *p != '\0'; p++)
        if (!strchr(" \t\r\n;", *p))
            return false;
    return true;
}

/* The prepared statement for op->sql, from the cache or prepared now;
 * *cached_r tells whether it stays in the cache after use. NULL with the
 * op failed. */
static sqlite3_stmt *stmt_get(struct store_sqlite *s, struct store_op *op, bool *cached_r)
{
    sqlite3_stmt *stmt = hmap_get(s->stmts, op->sql);
    if (stmt != NULL) {
        *cached_r = true;
        return stmt;
    }
    bool cache = hmap_count(s->stmts) < STMT_CACHE_MAX;
    const char *tail = NULL;
    int rc =
        sqlite3_prepare_v3(s->db, op->sql, -1, cache ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, &tail);
    if (rc != SQLITE_OK) {
        op_fail_db(s, op, rc);
        return NULL;
    }
    if (stmt == NULL || (tail != NULL && !only_blanks(tail))) {
        /* The contract is one statement: a second one would be ignored. */
        sqlite3_finalize(stmt);
        op_fail(op, STORE_ERR_INTERNAL, XMPP_COND_INTERNAL_SERVER_ERROR,
                stmt == NULL ? "empty statement" : "more than one statement");
        return NULL;
    }
    if (cache)
        hmap_put(s->stmts, op->sql, stmt);
    *cached_r = cache;
    return stmt;
}

static int bind_params(struct store_sqlite *s, sqlite3_stmt *stmt, struct store_op *op)
{
    for (size_t i = 0; i < op->nparams; i++) {
        char name[32];
        snprintf(name, sizeof(name), "$%zu", i + 1);
        int idx = sqlite3_bind_parameter_index(stmt, name);
        if (idx == 0)
            continue;
        const struct store_param *p = &op->params[i];
        int rc;
        if (p->null) {
            rc = sqlite3_bind_null(stmt, idx);
        } else {
            switch (p->type) {
            case STORE_T_STR:
            case STORE_T_XML:
                /* op->params outlive the statement's use: it is reset
                 * before store_op_done. */
                rc = p->s != NULL ? sqlite3_bind_text(stmt, idx, p->s, -1, SQLITE_STATIC)
                                  : sqlite3_bind_null(stmt, idx);
                break;
            case STORE_T_INT:
            case STORE_T_TIME:
                rc = sqlite3_bind_int64(stmt, idx, p->i);
                break;
            case STORE_T_BOOL:
                rc = sqlite3_bind_int(stmt, idx, p->b ? 1 : 0);
                break;
            default:
                op_fail(op, STORE_ERR_INTERNAL, XMPP_COND_INTERNAL_SERVER_ERROR,
                        "parameter of unknown type");
                return -1;
            }
        }
        if (rc != SQLITE_OK) {
            op_fail_db(s, op, rc);
            return -1;
        }
    }
    return 0;
}

/* Builds one result record from the current row, named and typed per
 * op->rcols; names are copies in res.arena made once per op. */
static struct store_rec *read_row(struct store_sqlite *s, sqlite3_stmt *stmt, struct store_op *op,
                                  const char *const *names)
{
    struct arena *a = op->res.arena;
    struct store_rec *rec = arena_alloc(a, sizeof(*rec));
    if (op->nrcols == 0)
        return rec;
    rec->f = arena_alloc(a, op->nrcols * sizeof(*rec->f));
    rec->n = rec->cap = op->nrcols;
    for (size_t i = 0; i < op->nrcols; i++) {
        struct store_field *f = &rec->f[i];
        int col = (int)i;
        f->name = names[i];
        f->type = op->rcols[i].type;
        if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
            f->null = true;
            continue;
        }
        switch (f->type) {
        case STORE_T_STR:
        case STORE_T_XML: {
            const char *text = (const char *)sqlite3_column_text(stmt, col);
            if (text == NULL) {
                op_fail_db(s, op, sqlite3_errcode(s->db));
                return NULL;
            }
            f->s = arena_strndup(a, text, (size_t)sqlite3_column_bytes(stmt, col));
            break;
        }
        case STORE_T_INT:
        case STORE_T_TIME:
            f->i = sqlite3_column_int64(stmt, col);
            break;
        case STORE_T_BOOL:
            f->b = sqlite3_column_int64(stmt, col) != 0;
            break;
        default:
            op_fail(op, STORE_ERR_INTERNAL, XMPP_COND_INTERNAL_SERVER_ERROR,
                    "result column of unknown type");
            return NULL;
        }
    }
    return rec;
}

static int step_rows(struct store_sqlite *s, sqlite3_stmt *stmt, struct store_op *op)
{
    struct arena *a = op->res.arena;
    struct store_rec **rows = NULL;
    size_t nrows = 0, cap = 0;
    const char **names = NULL;
    for (;;) {
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            op_fail_db(s, op, rc);
            return -1;
        }
        if (names == NULL && op->nrcols > 0) {
            names = arena_alloc(a, op->nrcols * sizeof(*names));
            for (size_t i = 0; i < op->nrcols; i++)
                names[i] = arena_strdup(a, op->rcols[i].name);
        }
        if (nrows == cap) {
            /* The arena cannot grow in place; the old arrays are at most
             * as large as the final one. */
            size_t ncap = cap == 0 ? 8 : cap * 2;
            struct store_rec **grown = arena_alloc(a, ncap * sizeof(*grown));
            if (nrows > 0)
                memcpy(grown, rows, nrows * sizeof(*rows));
            rows = grown;
            cap = ncap;
        }
        struct store_rec *rec = read_row(s, stmt, op, names);
        if (rec == NULL)
            return -1;
        rows[nrows++] = rec;
    }
    op->res.rows = rows;
    op->res.nrows = nrows;
    /* sqlite3_changes keeps the count of the last write, so a read must
     * not report it. Writes with RETURNING (take) report it too. */
    op->res.affected = sqlite3_stmt_readonly(stmt) ? 0 : (int64_t)sqlite3_changes64(s->db);
    return 0;
}

static void run_op(struct store_sqlite *s, struct store_op *op)
{
    PL_ASSERT(op->sql != NULL && op->res.arena != NULL);
    op->res.status = STORE_OK;
    err_clear(&op->res.err);
    op->res.rows = NULL;
    op->res.nrows = 0;
    op->res.affected = 0;

    bool cached = false;
    sqlite3_stmt *stmt = stmt_get(s, op, &cached);
    if (stmt == NULL)
        return;
    if (bind_params(s, stmt, op) == 0) {
        if ((size_t)sqlite3_column_count(stmt) < op->nrcols) {
            char msg[96];
            snprintf(msg, sizeof(msg), "statement returns %d columns, %zu expected",
                     sqlite3_column_count(stmt), op->nrcols);
            op_fail(op, STORE_ERR_INTERNAL, XMPP_COND_INTERNAL_SERVER_ERROR, msg);
        } else {
            step_rows(s, stmt, op);
        }
    }
    if (cached) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    } else {
        sqlite3_finalize(stmt);
    }
}

/* Runs the statement now; the core defers the user's callback, so
 * completing from inside submit is allowed for this driver. */
static void drv_submit(void *drv, struct store_op *op)
{
    run_op(drv, op);
    store_op_done(op);
}

/* Nothing is ever queued: every op completed inside its submit. */
static void drv_close(void *drv)
{
    drv_free(drv);
}

const struct store_driver_ops store_driver_sqlite = {
    .name = "sqlite",
    .open = drv_open,
    .migrate = drv_migrate,
    .submit = drv_submit,
    .close = drv_close,
};
