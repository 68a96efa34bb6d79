/* SPDX-License-Identifier: MIT */
/* The storage API: every durable thing c2s, sm and muc keep goes through
 * it. Asynchronous (a completion callback per operation, never a blocking
 * call on the event loop), typed (records of named, typed fields, never SQL
 * from callers), with two drivers behind it: SQLite (embedded default) and
 * PostgreSQL (libpq, non-blocking, pooled). Both behave the same; one test
 * suite proves it (tests/unit/test_store.c). */
#ifndef PL_STORE_H
#define PL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attr.h"
#include "err.h"

struct arena;
struct event_base;
struct store;

/* ---- typed records ---------------------------------------------------- */

enum store_type {
    STORE_T_STR = 1,
    STORE_T_INT,  /* int64_t */
    STORE_T_BOOL, /* bool */
    STORE_T_TIME, /* int64_t microseconds since the Unix epoch, UTC */
    STORE_T_XML,  /* serialised XML fragment, stored as text */
};

struct store_field {
    const char *name;
    enum store_type type;
    bool null;     /* absent value (SQL NULL) */
    const char *s; /* STR, XML */
    int64_t i;     /* INT, TIME */
    bool b;        /* BOOL */
};

/* A record: an array of fields, allocated in an arena. */
struct store_rec {
    struct store_field *f;
    size_t n, cap;
};

/* Creates an empty record in a. */
struct store_rec *store_rec_new(struct arena *a);
/* Setters add a field (or replace the one of that name); strings are
 * copied into a. */
void store_rec_str(struct arena *a, struct store_rec *r, const char *name, const char *v);
void store_rec_xml(struct arena *a, struct store_rec *r, const char *name, const char *v);
void store_rec_int(struct arena *a, struct store_rec *r, const char *name, int64_t v);
void store_rec_bool(struct arena *a, struct store_rec *r, const char *name, bool v);
void store_rec_time(struct arena *a, struct store_rec *r, const char *name, int64_t us);
void store_rec_null(struct arena *a, struct store_rec *r, const char *name, enum store_type t);
/* Getters: the field's value, or the fallback when absent or NULL. */
const struct store_field *store_rec_field(const struct store_rec *r, const char *name);
const char *store_rec_get_str(const struct store_rec *r, const char *name, const char *fallback);
int64_t store_rec_get_int(const struct store_rec *r, const char *name, int64_t fallback);
bool store_rec_get_bool(const struct store_rec *r, const char *name, bool fallback);

/* ---- results ------------------------------------------------------------ */

enum store_status {
    STORE_OK = 0,
    STORE_ERR_INPUT,       /* refused: bad value, too large, unknown field */
    STORE_ERR_CONFLICT,    /* a unique key already exists (store_insert) */
    STORE_ERR_UNAVAILABLE, /* the database cannot be reached; retry later */
    STORE_ERR_INTERNAL,    /* the database failed the statement */
};

/* Handed to the callback; everything in it lives in res->arena, which is
 * freed when the callback returns. */
struct store_res {
    enum store_status status;
    struct err err;          /* reason when status != STORE_OK */
    struct store_rec **rows; /* get, take, range */
    size_t nrows;
    int64_t affected; /* rows written or deleted */
    int64_t value;    /* count, counter */
    bool complete;    /* range: no more rows beyond these in that direction */
    struct arena *arena;
};

typedef void store_cb(const struct store_res *res, void *arg);

/* ---- the store ---------------------------------------------------------- */

enum store_driver {
    STORE_DRIVER_SQLITE = 0,
    STORE_DRIVER_PGSQL,
};

struct store_cfg {
    enum store_driver driver;
    const char *sqlite_path;  /* the database file */
    const char *pg_conninfo;  /* libpq connection string, e.g. "host=/run/pg dbname=parley" */
    long pg_pool;             /* connections; 0 = 4 */
    long pg_queue_timeout_ms; /* how long queued operations wait for a reconnect; 0 = 5000 */
    size_t max_value;         /* largest string/XML value accepted; 0 = 1 MiB */
};

/* Opens the store and checks the schema version: creates the schema on an
 * empty database (when create is true), refuses a newer one, and an older
 * one unless migrate is true (then moves it forward). PostgreSQL
 * connections are opened in the background; operations queue meanwhile.
 * Returns NULL with err. */
struct store *store_open(struct event_base *base, const struct store_cfg *cfg, bool create,
                         bool migrate, struct err *err);
/* Fails every pending operation with STORE_ERR_UNAVAILABLE (callbacks run
 * from inside this call), closes, frees, sets *st to NULL. */
void store_close(struct store **st);
/* Operations submitted and not yet completed. */
size_t store_pending(const struct store *st);

/* The schema version this build writes, and the one the database has
 * (-1 when it cannot be read). */
int store_schema_version(void);
int store_db_version(struct store *st);

/* ---- operations ----------------------------------------------------------
 * coll names a collection (table) of store_schema.c; owner is the bare JID
 * (or domain) the data belongs to. Operations on one owner complete in the
 * order they were submitted. Every callback runs exactly once, always from
 * the event loop and never from inside the submitting call. filter is a
 * record of fields that must all be equal (NULL: every row of owner). */

/* Rows of owner, ordered by the collection's order. */
void store_get(struct store *st, const char *coll, const char *owner,
               const struct store_rec *filter, store_cb *cb, void *arg);
/* Inserts or replaces the row with the same key. */
void store_put(struct store *st, const char *coll, const char *owner, const struct store_rec *rec,
               store_cb *cb, void *arg);
/* Inserts; STORE_ERR_CONFLICT when the key exists. */
void store_insert(struct store *st, const char *coll, const char *owner,
                  const struct store_rec *rec, store_cb *cb, void *arg);
/* Deletes matching rows; res->affected is how many. */
void store_delete(struct store *st, const char *coll, const char *owner,
                  const struct store_rec *filter, store_cb *cb, void *arg);
/* res->value is how many rows match. */
void store_count(struct store *st, const char *coll, const char *owner,
                 const struct store_rec *filter, store_cb *cb, void *arg);
/* Atomically returns and deletes every row of owner, in insertion order
 * (the offline queue). */
void store_take_all(struct store *st, const char *coll, const char *owner, store_cb *cb, void *arg);
/* Every distinct owner of a collection (parleyctl user list). */
void store_owners(struct store *st, const char *coll, store_cb *cb, void *arg);

/* A range query over an ordered collection (the archive): rows of owner
 * whose time is in [start, end] (0 = open), optionally equal to filter,
 * after or before the row whose id is after_id / before_id, at most limit
 * rows, newest first when reverse (the rows are still returned in time
 * order). res->complete tells whether the range was exhausted. */
struct store_range {
    const struct store_rec *filter;
    int64_t start, end;
    const char *after_id, *before_id;
    size_t limit;
    bool reverse;
};
void store_range(struct store *st, const char *coll, const char *owner, const struct store_range *q,
                 store_cb *cb, void *arg);
/* Deletes rows of owner older than before (archive retention). */
void store_expire(struct store *st, const char *coll, const char *owner, int64_t before,
                  store_cb *cb, void *arg);

/* Adds delta to the counter name of owner (created at 0); res->value is
 * the new value. */
void store_counter_add(struct store *st, const char *owner, const char *name, int64_t delta,
                       store_cb *cb, void *arg);

const char *store_status_name(enum store_status s);

#endif
