/* SPDX-License-Identifier: MIT */
/* Internals shared by the storage core (store.c), its SQL generator
 * (store_sql.c), its schema (store_schema.c) and the drivers
 * (store_sqlite.c, store_pgsql.c). Not for other callers. */
#ifndef PL_STORE_PRIVATE_H
#define PL_STORE_PRIVATE_H

#include "store.h"

struct event_base;

/* ---- schema ---------------------------------------------------------- */

struct store_col {
    const char *name; /* SQL column (always double-quoted in SQL) and field name */
    enum store_type type;
    bool key; /* part of the primary key after owner */
};

enum store_kind {
    STORE_KIND_KEYED, /* primary key (owner, key columns...) */
    STORE_KIND_LOG,   /* append-only, ordered by an auto-increment "seq" */
};

struct store_coll {
    const char *name;  /* API name, e.g. "roster-items" */
    const char *table; /* SQL table, e.g. "roster_items" */
    enum store_kind kind;
    const struct store_col *cols; /* every column except owner and seq */
    size_t ncols;
    const char *order;    /* ORDER BY for store_get, a column name */
    const char *time_col; /* LOG: the time column for ranges and expiry */
    const char *id_col;   /* LOG: the unique-per-owner id for after/before */
};

/* NULL when no collection has that name. */
const struct store_coll *store_schema_coll(const char *name);
extern const struct store_coll *const store_schema_colls[];
extern const size_t store_schema_ncolls;

/* The migration scripts of a driver: scripts[v-1] moves version v-1 to v.
 * Each is SQL text of several statements, embedded at build time from
 * libcommon/store/sql/<driver>/NNN_*.sql. */
struct store_migrations {
    const char *const *scripts;
    size_t count; /* == store_schema_version() */
};
extern const struct store_migrations store_migrations_sqlite;
extern const struct store_migrations store_migrations_pgsql;

/* ---- operations as drivers see them ------------------------------------- */

enum store_op_kind {
    STORE_OP_GET,
    STORE_OP_PUT,
    STORE_OP_INSERT,
    STORE_OP_DELETE,
    STORE_OP_COUNT,
    STORE_OP_TAKE,
    STORE_OP_OWNERS,
    STORE_OP_RANGE,
    STORE_OP_ANCHOR, /* first step of a range with after/before: find the seq */
    STORE_OP_EXPIRE,
    STORE_OP_COUNTER,
};

/* A bound parameter. Drivers bind param i as $i+1 (the SQL uses $1, $2...
 * in increasing order of first appearance, so SQLite's numbering agrees). */
struct store_param {
    enum store_type type;
    bool null;
    const char *s;
    int64_t i;
    bool b;
};

/* A result column: its field name in the result records and its type. */
struct store_rcol {
    const char *name;
    enum store_type type;
};

struct store_op {
    struct store *st;
    enum store_op_kind kind;
    const struct store_coll *coll;
    const char *owner;
    uint64_t owner_hash; /* PostgreSQL: picks the connection, so one owner's
                            operations run in order on one connection */

    /* What the driver executes: one statement. */
    const char *sql;
    struct store_param *params;
    size_t nparams;
    const struct store_rcol *rcols; /* columns the statement returns, in order */
    size_t nrcols;

    /* What the driver fills in before store_op_done. Result records go in
     * res.arena, fields named and typed per rcols (SQL NULL -> field.null). */
    struct store_res res;

    /* Core bookkeeping (drivers do not touch). */
    store_cb *cb;
    void *arg;
    struct store_range range;
    struct store_op *next;
};

/* What a driver provides. */
struct store_driver_ops {
    const char *name;
    /* Connects (may block: it runs once at start, before the event loop),
     * reads the schema version into *version_r (0: empty database). */
    int (*open)(struct store *st, const struct store_cfg *cfg, void **drv_r, int *version_r,
                struct err *err);
    /* Runs a migration script in one transaction, then sets the version
     * (table schema_version). Blocking, at start only. */
    int (*migrate)(void *drv, const char *script, int new_version, struct err *err);
    /* Queues op for execution. Must not call store_op_done from inside this
     * call when the event loop can do it later (SQLite may run the
     * statement here; the core defers the callback anyway). */
    void (*submit)(void *drv, struct store_op *op);
    /* Fails (status STORE_ERR_UNAVAILABLE) every queued or in-flight op
     * through store_op_done, then frees everything. */
    void (*close)(void *drv);
};

extern const struct store_driver_ops store_driver_sqlite;
extern const struct store_driver_ops store_driver_pgsql;

/* Drivers call this exactly once per op, with op->res filled in. */
void store_op_done(struct store_op *op);
struct event_base *store_event_base(const struct store *st);
const struct store_cfg *store_config(const struct store *st);

/* Helpers for drivers: parse a database text value of a type into a field
 * (PostgreSQL returns text). Returns 0 or -1 if the text is malformed. */
int store_field_from_text(struct arena *a, struct store_field *f, enum store_type t,
                          const char *text);

#endif
