/* SPDX-License-Identifier: MIT */
/* The PostgreSQL storage driver: a pool of libpq connections driven
 * non-blocking from the event loop. Each connection runs one statement at a
 * time from its own queue (an owner always maps to the same connection, so
 * its operations stay in order) and reconnects with backoff when the server
 * goes away. */
#include "store_private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "alloc.h"
#include "arena.h"
#include "err.h"
#include "hmap.h"
#include "log.h"

enum {
    PGSQL_POOL_DEFAULT = 4,
    PGSQL_QUEUE_TIMEOUT_DEFAULT_MS = 5000,
    PGSQL_BACKOFF_MIN_MS = 100,
    PGSQL_BACKOFF_MAX_MS = 5000,
    PGSQL_BACKOFF_WAITING_MS = 1000, /* the most while operations wait */
    PGSQL_STMT_CACHE_MAX = 512,      /* beyond this, statements run unnamed */
};

/* Built-in type OIDs (pg_type.dat), fixed since PostgreSQL 7. */
#define PGSQL_OID_BOOL 16
#define PGSQL_OID_INT8 20
#define PGSQL_OID_TEXT 25

enum pgsql_state {
    PGSQL_DOWN,       /* no connection; the retry timer is armed */
    PGSQL_CONNECTING, /* PQconnectPoll in progress */
    PGSQL_READY,      /* connected, nothing in flight */
    PGSQL_BUSY,       /* one operation in flight */
};

enum pgsql_step {
    PGSQL_STEP_PREPARE, /* PQsendPrepare of the op's statement */
    PGSQL_STEP_EXEC,    /* the op's statement itself */
};

/* An operation waiting for its connection. */
struct pgsql_wait {
    struct store_op *op;
    int64_t deadline_ms; /* monotonic; 0 while the connection is up */
    struct pgsql_wait *next;
};

/* A statement prepared on one connection, cached by SQL text. */
struct pgsql_stmt {
    char name[24];
    size_t nparams;
    char sig[]; /* parameter types, one char each, so a cached name is only
                   reused with the types it was prepared for */
};

struct pgsql_drv;

struct pgsql_conn {
    struct pgsql_drv *drv;
    struct log_ctx lc;
    enum pgsql_state state;
    PGconn *pg;
    int fd;
    struct event *rd, *wr; /* on fd, persistent, added as needed */
    struct event *retry;   /* reconnect timer */
    struct event *expire;  /* queue timeout */
    struct event *kick;    /* activated by submit: start the next op */
    long backoff_ms;
    int64_t retry_at_ms; /* monotonic, while DOWN */
    bool was_up;         /* lost at least once: log the reconnect */
    bool doomed;         /* the server sent FATAL: the connection is going */
    char why[200];       /* the last connection failure, for timeouts */
    struct hmap *stmts;  /* SQL text -> struct pgsql_stmt; NULL when down */
    unsigned stmt_seq;

    struct pgsql_wait *head, *tail;
    struct store_op *op; /* in flight */
    enum pgsql_step step;
    bool sent;                    /* op's statement may have run */
    struct pgsql_stmt *preparing; /* step PREPARE: cached once it succeeds */
    PGresult *res;                /* the result of the current step */
};

struct pgsql_drv {
    struct event_base *base;
    char *conninfo;
    int64_t queue_timeout_ms;
    struct pgsql_conn *conns;
    size_t nconns;
};

static bool pgsql_kick(struct pgsql_conn *c);
static void pgsql_free(struct pgsql_drv *drv);
static void pgsql_on_io(evutil_socket_t fd, short what, void *arg);

static int64_t pgsql_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies the first line of a libpq message (the rest is hints) into dst,
 * without the surrounding white space. */
static void pgsql_oneline(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    while (src != NULL && (*src == ' ' || *src == '\t' || *src == '\n'))
        src++;
    for (; src != NULL && *src != '\0' && *src != '\n' && n + 1 < size; src++)
        dst[n++] = *src;
    while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == '\t' || dst[n - 1] == '\r'))
        n--;
    dst[n] = '\0';
}

static enum xmpp_cond pgsql_cond(enum store_status s)
{
    switch (s) {
    case STORE_ERR_INPUT:
        return XMPP_COND_BAD_REQUEST;
    case STORE_ERR_CONFLICT:
        return XMPP_COND_CONFLICT;
    case STORE_ERR_UNAVAILABLE:
        return XMPP_COND_SERVICE_UNAVAILABLE;
    default:
        return XMPP_COND_INTERNAL_SERVER_ERROR;
    }
}

PL_PRINTF(3, 4)
static void pgsql_fail(struct store_op *op, enum store_status s, const char *fmt, ...)
{
    char text[sizeof(op->res.err.text)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    op->res.status = s;
    op->res.rows = NULL;
    op->res.nrows = 0;
    op->res.affected = 0;
    err_set(&op->res.err, pgsql_cond(s), "%s", text);
}

/* Maps a SQLSTATE to a status. */
static enum store_status pgsql_status_of(const char *state)
{
    if (state == NULL || strlen(state) != 5)
        return STORE_ERR_INTERNAL;
    if (strcmp(state, "23505") == 0) /* unique_violation */
        return STORE_ERR_CONFLICT;
    /* connection exceptions, insufficient resources, operator intervention,
     * serialization failure and deadlock: all worth a retry later */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
        strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0 ||
        strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return STORE_ERR_UNAVAILABLE;
    /* data exceptions (bad encoding, value too long, out of range) and
     * program limits (an index row too large) */
    if (strncmp(state, "22", 2) == 0 || strncmp(state, "54", 2) == 0)
        return STORE_ERR_INPUT;
    return STORE_ERR_INTERNAL;
}

/* True when the SQLSTATE means this connection cannot go on. */
static bool pgsql_state_fatal(const char *state)
{
    return state != NULL && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0);
}

/* ---- results ------------------------------------------------------------ */

/* Converts the rows of r into op->res. Returns 0, or -1 with op failed. */
static int pgsql_rows(struct store_op *op, const PGresult *r)
{
    struct arena *a = op->res.arena;
    int nrows = PQntuples(r), nfields = PQnfields(r);
    if (nfields < 0 || (size_t)nfields < op->nrcols) {
        pgsql_fail(op, STORE_ERR_INTERNAL, "statement returned %d columns, expected %zu", nfields,
                   op->nrcols);
        return -1;
    }
    struct store_rec **rows = arena_alloc(a, sizeof(*rows) * (size_t)(nrows > 0 ? nrows : 1));
    for (int i = 0; i < nrows; i++) {
        struct store_rec *rec = arena_alloc(a, sizeof(*rec));
        rec->f = arena_alloc(a, sizeof(*rec->f) * (op->nrcols > 0 ? op->nrcols : 1));
        rec->n = rec->cap = op->nrcols;
        for (size_t j = 0; j < op->nrcols; j++) {
            const struct store_rcol *rc = &op->rcols[j];
            struct store_field *f = &rec->f[j];
            f->name = rc->name;
            f->type = rc->type;
            f->null = PQgetisnull(r, i, (int)j);
            /* text format; booleans come back as "t" and "f" */
            if (!f->null && store_field_from_text(a, f, rc->type, PQgetvalue(r, i, (int)j)) < 0) {
                pgsql_fail(op, STORE_ERR_INTERNAL, "column %s: malformed value", rc->name);
                return -1;
            }
        }
        rows[i] = rec;
    }
    op->res.rows = rows;
    op->res.nrows = (size_t)nrows;
    return 0;
}

/* Fills op->res from the result of its statement (NULL if none came).
 * Returns true when the error says the connection is finished. */
static bool pgsql_fill(struct store_op *op, PGresult *r)
{
    if (r == NULL) {
        pgsql_fail(op, STORE_ERR_INTERNAL, "statement returned no result");
        return false;
    }
    switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK:
        if (pgsql_rows(op, r) < 0)
            return false;
        /* fall through */
    case PGRES_COMMAND_OK:
        if (strncmp(PQcmdStatus(r), "SELECT", 6) != 0)
            op->res.affected = strtoll(PQcmdTuples(r), NULL, 10);
        /* fall through */
    case PGRES_EMPTY_QUERY:
        op->res.status = STORE_OK;
        return false;
    default:
        break;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    char line[200];
    pgsql_oneline(line, sizeof(line), msg != NULL ? msg : PQresultErrorMessage(r));
    pgsql_fail(op, pgsql_status_of(state), "%s (SQLSTATE %s)", line,
               state != NULL ? state : "none");
    return pgsql_state_fatal(state);
}

/* ---- connection plumbing ------------------------------------------------ */

static void pgsql_drop_stmts(struct pgsql_conn *c)
{
    if (c->stmts != NULL) {
        struct hmap_iter it = {0};
        const char *key;
        void *v;
        while (hmap_next(c->stmts, &it, &key, &v))
            free(v);
        hmap_free(&c->stmts);
    }
    free(c->preparing);
    c->preparing = NULL;
}

/* Closes the socket and forgets everything tied to it (not the queue, not
 * the op in flight). */
static void pgsql_disconnect(struct pgsql_conn *c)
{
    if (c->rd != NULL)
        event_free(c->rd);
    if (c->wr != NULL)
        event_free(c->wr);
    c->rd = c->wr = NULL;
    c->fd = -1;
    if (c->res != NULL)
        PQclear(c->res);
    c->res = NULL;
    if (c->pg != NULL)
        PQfinish(c->pg);
    c->pg = NULL;
    c->doomed = false;
    pgsql_drop_stmts(c);
    c->state = PGSQL_DOWN;
}

/* Watches the connection's socket for what (EV_READ and/or EV_WRITE). libpq
 * may switch sockets while connecting, so the events follow PQsocket.
 * Returns false when there is no socket. */
static bool pgsql_watch(struct pgsql_conn *c, short what)
{
    int fd = PQsocket(c->pg);
    if (fd != c->fd) {
        if (c->rd != NULL)
            event_free(c->rd);
        if (c->wr != NULL)
            event_free(c->wr);
        c->rd = c->wr = NULL;
        c->fd = fd;
        if (fd < 0)
            return false;
        c->rd = event_new(c->drv->base, fd, EV_READ | EV_PERSIST, pgsql_on_io, c);
        c->wr = event_new(c->drv->base, fd, EV_WRITE | EV_PERSIST, pgsql_on_io, c);
        PL_ASSERT(c->rd != NULL && c->wr != NULL);
    }
    if (what & EV_READ)
        event_add(c->rd, NULL);
    else
        event_del(c->rd);
    if (what & EV_WRITE)
        event_add(c->wr, NULL);
    else
        event_del(c->wr);
    return true;
}

/* Server messages outside a result. A FATAL one (administrator shutdown
 * while idle) means the server is about to close: stop sending. */
static void pgsql_on_notice(void *arg, const PGresult *r)
{
    struct pgsql_conn *c = arg;
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    if (sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0)) {
        c->doomed = true;
        pgsql_oneline(c->why, sizeof(c->why), msg);
    }
    log_debug(&c->lc, "server: %s: %s", sev != NULL ? sev : "NOTICE", msg != NULL ? msg : "");
}

/* Arms the queue timeout for the first queued op waiting for a connection. */
static void pgsql_arm_expire(struct pgsql_conn *c)
{
    if (c->head == NULL || c->head->deadline_ms == 0) {
        event_del(c->expire);
        return;
    }
    int64_t left = c->head->deadline_ms - pgsql_now_ms();
    if (left < 0)
        left = 0;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    event_add(c->expire, &tv);
}

/* The connection went down: from now on the queue waits for it, each op at
 * most queue_timeout_ms. */
static void pgsql_queue_wait(struct pgsql_conn *c)
{
    int64_t deadline = pgsql_now_ms() + c->drv->queue_timeout_ms;
    for (struct pgsql_wait *w = c->head; w != NULL; w = w->next)
        w->deadline_ms = deadline;
    pgsql_arm_expire(c);
}

static void pgsql_retry_in(struct pgsql_conn *c, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    c->state = PGSQL_DOWN;
    c->retry_at_ms = pgsql_now_ms() + ms;
    event_add(c->retry, &tv);
}

/* Backoff doubles from 100 ms to 5 s, but while operations wait the next
 * attempt is at most a second away, so they see the server come back
 * before their queue timeout. */
static void pgsql_retry_later(struct pgsql_conn *c)
{
    c->backoff_ms = c->backoff_ms == 0 ? PGSQL_BACKOFF_MIN_MS : c->backoff_ms * 2;
    if (c->backoff_ms > PGSQL_BACKOFF_MAX_MS)
        c->backoff_ms = PGSQL_BACKOFF_MAX_MS;
    long ms = c->backoff_ms;
    if (c->head != NULL && ms > PGSQL_BACKOFF_WAITING_MS)
        ms = PGSQL_BACKOFF_WAITING_MS;
    pgsql_retry_in(c, ms);
}

static void pgsql_connect_failed(struct pgsql_conn *c)
{
    pgsql_oneline(c->why, sizeof(c->why), c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
    pgsql_disconnect(c);
    pgsql_retry_later(c);
    log_debug(&c->lc, "connect failed: %s; retrying in %ld ms", c->why, c->backoff_ms);
}

/* The connection broke. An op that may have run fails (its outcome is
 * unknown); one that never reached the server goes back to the head of the
 * queue, which waits for the reconnect. Returns false, for callers that
 * must stop touching the connection. */
static bool pgsql_lost(struct pgsql_conn *c)
{
    struct store_op *failed = NULL;
    if (!c->doomed) {
        const char *msg = NULL;
        if (c->res != NULL && PQresultStatus(c->res) == PGRES_FATAL_ERROR)
            msg = PQresultErrorField(c->res, PG_DIAG_MESSAGE_PRIMARY);
        pgsql_oneline(c->why, sizeof(c->why), msg != NULL ? msg : PQerrorMessage(c->pg));
    }
    if (c->op != NULL && c->sent) {
        failed = c->op;
    } else if (c->op != NULL) {
        struct pgsql_wait *w = xcalloc(1, sizeof(*w));
        w->op = c->op;
        w->next = c->head;
        c->head = w;
        if (c->tail == NULL)
            c->tail = w;
    }
    c->op = NULL;
    log_info(&c->lc, "connection lost: %s", c->why);
    pgsql_disconnect(c);
    c->was_up = true;
    c->backoff_ms = 0;
    pgsql_retry_later(c);
    pgsql_queue_wait(c);
    if (failed != NULL) {
        pgsql_fail(failed, STORE_ERR_UNAVAILABLE, "database connection lost: %s", c->why);
        store_op_done(failed);
    }
    return false;
}

static void pgsql_connect(struct pgsql_conn *c)
{
    c->pg = PQconnectStart(c->drv->conninfo);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        pgsql_connect_failed(c);
        return;
    }
    PQsetNoticeReceiver(c->pg, pgsql_on_notice, c);
    c->state = PGSQL_CONNECTING;
    /* as if PQconnectPoll had said PGRES_POLLING_WRITING */
    if (!pgsql_watch(c, EV_WRITE))
        pgsql_connect_failed(c);
}

/* The connection is usable: the queue stops counting down and runs. */
static bool pgsql_up(struct pgsql_conn *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0 || !pgsql_watch(c, EV_READ)) {
        pgsql_connect_failed(c);
        return false;
    }
    c->state = PGSQL_READY;
    c->backoff_ms = 0;
    c->stmts = hmap_new();
    if (c->was_up)
        log_info(&c->lc, "reconnected");
    for (struct pgsql_wait *w = c->head; w != NULL; w = w->next)
        w->deadline_ms = 0;
    event_del(c->expire);
    return pgsql_kick(c);
}

static void pgsql_connect_poll(struct pgsql_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        if (!pgsql_watch(c, EV_READ))
            pgsql_connect_failed(c);
        return;
    case PGRES_POLLING_WRITING:
        if (!pgsql_watch(c, EV_WRITE))
            pgsql_connect_failed(c);
        return;
    case PGRES_POLLING_OK:
        pgsql_up(c);
        return;
    default:
        pgsql_connect_failed(c);
        return;
    }
}

/* ---- running operations ------------------------------------------------- */

/* Sends what libpq has buffered; keeps watching for writability until it is
 * all out. Returns false when the connection was lost. */
static bool pgsql_flush(struct pgsql_conn *c)
{
    int r = PQflush(c->pg);
    if (r < 0)
        return pgsql_lost(c);
    pgsql_watch(c, r == 1 ? EV_READ | EV_WRITE : EV_READ);
    return true;
}

static Oid pgsql_oid(enum store_type t)
{
    switch (t) {
    case STORE_T_INT:
    case STORE_T_TIME:
        return PGSQL_OID_INT8;
    case STORE_T_BOOL:
        return PGSQL_OID_BOOL;
    default:
        return PGSQL_OID_TEXT;
    }
}

/* The op's parameter types, explicit so that no placeholder depends on
 * the server's inference. The caller frees the array. */
static Oid *pgsql_types(const struct store_op *op)
{
    Oid *types = xcalloc(op->nparams + 1, sizeof(*types));
    for (size_t i = 0; i < op->nparams; i++)
        types[i] = pgsql_oid(op->params[i].type);
    return types;
}

/* Sends the op's statement, prepared as s (NULL: unnamed). Parameters go
 * in text format: numbers in decimal, booleans as "true"/"false". */
static bool pgsql_send_exec(struct pgsql_conn *c, const struct pgsql_stmt *s)
{
    struct store_op *op = c->op;
    size_t n = op->nparams;
    const char **values = xcalloc(n + 1, sizeof(*values));
    char(*nums)[24] = xcalloc(n + 1, sizeof(*nums));
    for (size_t i = 0; i < n; i++) {
        const struct store_param *p = &op->params[i];
        if (p->null) {
            values[i] = NULL;
        } else if (p->type == STORE_T_INT || p->type == STORE_T_TIME) {
            snprintf(nums[i], sizeof(nums[i]), "%" PRId64, p->i);
            values[i] = nums[i];
        } else if (p->type == STORE_T_BOOL) {
            values[i] = p->b ? "true" : "false";
        } else {
            values[i] = p->s;
        }
    }
    int ok;
    if (s != NULL) {
        ok = PQsendQueryPrepared(c->pg, s->name, (int)n, values, NULL, NULL, 0);
    } else {
        Oid *types = pgsql_types(op);
        ok = PQsendQueryParams(c->pg, op->sql, (int)n, types, values, NULL, NULL, 0);
        free(types);
    }
    free(values);
    free(nums);
    c->step = PGSQL_STEP_EXEC;
    if (!ok)
        return pgsql_lost(c);
    c->sent = true;
    return pgsql_flush(c);
}

static void pgsql_sig(const struct store_op *op, char *sig)
{
    for (size_t i = 0; i < op->nparams; i++)
        sig[i] = (char)('0' + op->params[i].type);
    sig[op->nparams] = '\0';
}

static bool pgsql_stmt_fits(const struct pgsql_stmt *s, const struct store_op *op)
{
    if (s->nparams != op->nparams)
        return false;
    for (size_t i = 0; i < op->nparams; i++)
        if (s->sig[i] != (char)('0' + op->params[i].type))
            return false;
    return true;
}

/* Prepares the op's statement under a new name for this connection. */
static bool pgsql_send_prepare(struct pgsql_conn *c)
{
    struct store_op *op = c->op;
    size_t n = op->nparams;
    struct pgsql_stmt *s = xcalloc(1, sizeof(*s) + n + 1);
    snprintf(s->name, sizeof(s->name), "pl_%u", ++c->stmt_seq);
    s->nparams = n;
    pgsql_sig(op, s->sig);
    Oid *types = pgsql_types(op);
    int ok = PQsendPrepare(c->pg, s->name, op->sql, (int)n, types);
    free(types);
    c->preparing = s;
    c->step = PGSQL_STEP_PREPARE;
    if (!ok)
        return pgsql_lost(c);
    return pgsql_flush(c);
}

/* Takes the first queued op and sends it. */
static bool pgsql_start(struct pgsql_conn *c)
{
    struct pgsql_wait *w = c->head;
    c->head = w->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->op = w->op;
    free(w);
    c->state = PGSQL_BUSY;
    c->sent = false;
    struct pgsql_stmt *s = hmap_get(c->stmts, c->op->sql);
    if (s != NULL)
        return pgsql_send_exec(c, pgsql_stmt_fits(s, c->op) ? s : NULL);
    if (hmap_count(c->stmts) < PGSQL_STMT_CACHE_MAX)
        return pgsql_send_prepare(c);
    return pgsql_send_exec(c, NULL);
}

/* An idle connection may have been closed by the server since we last
 * looked (a restart): read what is pending, parse it (a FATAL arrives as a
 * notice while idle), and read once more to see an end of file. */
static bool pgsql_idle_alive(struct pgsql_conn *c)
{
    for (int i = 0; i < 2; i++) {
        if (!PQconsumeInput(c->pg))
            return false;
        (void)PQisBusy(c->pg);
    }
    return !c->doomed && PQstatus(c->pg) != CONNECTION_BAD;
}

/* Runs the next queued op if the connection is idle. Returns false when
 * the connection was lost. */
static bool pgsql_kick(struct pgsql_conn *c)
{
    if (c->state != PGSQL_READY || c->head == NULL)
        return true;
    /* find a dead connection before sending into it, so that the op stays
     * queued for the reconnect instead of failing */
    if (!pgsql_idle_alive(c))
        return pgsql_lost(c);
    return pgsql_start(c);
}

/* The current step has all its results. */
static bool pgsql_step_done(struct pgsql_conn *c)
{
    PGresult *r = c->res;
    c->res = NULL;
    struct store_op *op = c->op;
    if (c->step == PGSQL_STEP_PREPARE) {
        struct pgsql_stmt *s = c->preparing;
        c->preparing = NULL;
        if (r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            hmap_put(c->stmts, op->sql, s);
            return pgsql_send_exec(c, s);
        }
        free(s);
    }
    bool fatal = pgsql_fill(op, r);
    if (r != NULL)
        PQclear(r);
    c->op = NULL;
    c->state = PGSQL_READY;
    if (fatal || c->doomed || PQstatus(c->pg) == CONNECTION_BAD) {
        pgsql_lost(c);
        store_op_done(op);
        return false;
    }
    store_op_done(op);
    return pgsql_kick(c);
}

/* Input arrived: collect results until libpq would block. */
static void pgsql_read(struct pgsql_conn *c)
{
    if (c->state == PGSQL_READY) {
        if (!pgsql_idle_alive(c))
            pgsql_lost(c);
        return;
    }
    if (!PQconsumeInput(c->pg)) {
        pgsql_lost(c);
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            pgsql_step_done(c);
            return;
        }
        /* one statement, one result; keep the first, or an error */
        if (c->res == NULL || (PQresultStatus(c->res) != PGRES_FATAL_ERROR &&
                               PQresultStatus(r) == PGRES_FATAL_ERROR)) {
            if (c->res != NULL)
                PQclear(c->res);
            c->res = r;
        } else {
            PQclear(r);
        }
    }
    if (PQstatus(c->pg) == CONNECTION_BAD)
        pgsql_lost(c);
}

static void pgsql_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct pgsql_conn *c = arg;
    (void)fd;
    switch (c->state) {
    case PGSQL_CONNECTING:
        pgsql_connect_poll(c);
        return;
    case PGSQL_READY:
    case PGSQL_BUSY:
        if ((what & EV_WRITE) || event_pending(c->wr, EV_WRITE, NULL)) {
            /* libpq: while a flush is pending, read-ready also means retry it */
            if (!pgsql_flush(c))
                return;
        }
        if (what & EV_READ)
            pgsql_read(c);
        return;
    case PGSQL_DOWN:
        return;
    }
}

static void pgsql_on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgsql_connect(arg);
}

static void pgsql_on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgsql_kick(arg);
}

/* Fails the queued ops whose wait for a connection is over. */
static void pgsql_on_expire(evutil_socket_t fd, short what, void *arg)
{
    struct pgsql_conn *c = arg;
    (void)fd;
    (void)what;
    int64_t now = pgsql_now_ms();
    while (c->head != NULL && c->head->deadline_ms != 0 && c->head->deadline_ms <= now) {
        struct pgsql_wait *w = c->head;
        c->head = w->next;
        if (c->head == NULL)
            c->tail = NULL;
        struct store_op *op = w->op;
        free(w);
        pgsql_fail(op, STORE_ERR_UNAVAILABLE, "database unavailable for %" PRId64 " ms: %s",
                   c->drv->queue_timeout_ms, c->why[0] != '\0' ? c->why : "not connected");
        store_op_done(op);
    }
    pgsql_arm_expire(c);
}

/* ---- the driver --------------------------------------------------------- */

static void pgsql_conn_init(struct pgsql_drv *drv, struct pgsql_conn *c, size_t i)
{
    c->drv = drv;
    c->fd = -1;
    c->state = PGSQL_DOWN;
    log_ctx_set(&c->lc, "pgsql conn %zu", i);
    c->retry = evtimer_new(drv->base, pgsql_on_retry, c);
    c->expire = evtimer_new(drv->base, pgsql_on_expire, c);
    c->kick = event_new(drv->base, -1, 0, pgsql_on_kick, c);
    PL_ASSERT(c->retry != NULL && c->expire != NULL && c->kick != NULL);
}

static void pgsql_free(struct pgsql_drv *drv)
{
    for (size_t i = 0; i < drv->nconns; i++) {
        struct pgsql_conn *c = &drv->conns[i];
        pgsql_disconnect(c);
        event_free(c->retry);
        event_free(c->expire);
        event_free(c->kick);
        while (c->head != NULL) {
            struct pgsql_wait *w = c->head;
            c->head = w->next;
            free(w);
        }
    }
    free(drv->conns);
    free(drv->conninfo);
    free(drv);
}

/* Runs one statement synchronously; what names it in the error. */
static int pgsql_exec_sync(PGconn *pg, const char *sql, const char *what, struct err *err)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType s = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY) {
        char line[200];
        pgsql_oneline(line, sizeof(line), r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(pg));
        rc = err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "%s: %s", what, line);
    }
    PQclear(r);
    return rc;
}

/* Reads the schema version; a database without schema_version is at 0.
 * to_regclass first, so that a fresh database logs no error server-side. */
static int pgsql_read_version(PGconn *pg, int *version_r, struct err *err)
{
    int rc = -1;
    PGresult *r = PQexec(pg, "SELECT to_regclass('schema_version') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char line[200];
        pgsql_oneline(line, sizeof(line), PQerrorMessage(pg));
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "cannot read the schema version: %s", line);
        goto out;
    }
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    *version_r = 0;
    if (exists) {
        r = PQexec(pg, "SELECT max(version) FROM schema_version");
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            char line[200];
            pgsql_oneline(line, sizeof(line), PQerrorMessage(pg));
            err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "cannot read the schema version: %s",
                    line);
            goto out;
        }
        if (!PQgetisnull(r, 0, 0))
            *version_r = atoi(PQgetvalue(r, 0, 0));
    }
    rc = 0;
out:
    PQclear(r);
    return rc;
}

static int pgsql_open(struct store *st, const struct store_cfg *cfg, void **drv_r, int *version_r,
                      struct err *err)
{
    if (cfg->pg_conninfo == NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "pgsql: no connection string configured");
    struct pgsql_drv *drv = xcalloc(1, sizeof(*drv));
    drv->base = store_event_base(st);
    drv->conninfo = xstrdup(cfg->pg_conninfo);
    drv->queue_timeout_ms =
        cfg->pg_queue_timeout_ms > 0 ? cfg->pg_queue_timeout_ms : PGSQL_QUEUE_TIMEOUT_DEFAULT_MS;
    drv->nconns = cfg->pg_pool > 0 ? (size_t)cfg->pg_pool : PGSQL_POOL_DEFAULT;
    drv->conns = xcalloc(drv->nconns, sizeof(*drv->conns));
    for (size_t i = 0; i < drv->nconns; i++)
        pgsql_conn_init(drv, &drv->conns[i], i);

    struct pgsql_conn *c0 = &drv->conns[0];
    c0->pg = PQconnectdb(drv->conninfo);
    if (c0->pg == NULL || PQstatus(c0->pg) != CONNECTION_OK) {
        char line[200];
        pgsql_oneline(line, sizeof(line),
                      c0->pg != NULL ? PQerrorMessage(c0->pg) : "out of memory");
        err_set(err, XMPP_COND_SERVICE_UNAVAILABLE, "cannot connect to PostgreSQL: %s", line);
        goto fail;
    }
    PQsetNoticeReceiver(c0->pg, pgsql_on_notice, c0);
    if (pgsql_read_version(c0->pg, version_r, err) < 0)
        goto fail;
    if (PQsetnonblocking(c0->pg, 1) != 0 || !pgsql_watch(c0, EV_READ)) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "pgsql: cannot set non-blocking mode");
        goto fail;
    }
    c0->state = PGSQL_READY;
    c0->stmts = hmap_new();
    for (size_t i = 1; i < drv->nconns; i++)
        pgsql_connect(&drv->conns[i]);
    *drv_r = drv;
    return 0;
fail:
    pgsql_free(drv);
    return -1;
}

static int pgsql_migrate(void *p, const char *script, int new_version, struct err *err)
{
    struct pgsql_drv *drv = p;
    struct pgsql_conn *c0 = &drv->conns[0];
    if (c0->state != PGSQL_READY)
        return err_set(err, XMPP_COND_SERVICE_UNAVAILABLE,
                       "schema migration to version %d: not connected", new_version);
    PGconn *pg = c0->pg;
    char what[64], insert[96];
    snprintf(what, sizeof(what), "schema migration to version %d", new_version);
    snprintf(insert, sizeof(insert), "INSERT INTO schema_version (version) VALUES (%d)",
             new_version);
    int rc = -1;
    PQsetnonblocking(pg, 0);
    if (pgsql_exec_sync(pg, "BEGIN", what, err) < 0)
        goto out;
    if (pgsql_exec_sync(pg, script, what, err) < 0 ||
        pgsql_exec_sync(pg, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                        what, err) < 0 ||
        pgsql_exec_sync(pg, "DELETE FROM schema_version", what, err) < 0 ||
        pgsql_exec_sync(pg, insert, what, err) < 0 ||
        pgsql_exec_sync(pg, "COMMIT", what, err) < 0) {
        PQclear(PQexec(pg, "ROLLBACK"));
        goto out;
    }
    rc = 0;
out:
    PQsetnonblocking(pg, 1);
    return rc;
}

/* One owner, one connection: its operations run in submission order. */
static void pgsql_submit(void *p, struct store_op *op)
{
    struct pgsql_drv *drv = p;
    struct pgsql_conn *c = &drv->conns[op->owner_hash % drv->nconns];
    struct pgsql_wait *w = xcalloc(1, sizeof(*w));
    w->op = op;
    if (c->tail != NULL)
        c->tail->next = w;
    else
        c->head = w;
    c->tail = w;
    if (c->state == PGSQL_READY) {
        /* started from the loop, so that no op completes inside submit */
        event_active(c->kick, EV_TIMEOUT, 1);
    } else if (c->state != PGSQL_BUSY) {
        int64_t now = pgsql_now_ms();
        w->deadline_ms = now + drv->queue_timeout_ms;
        if (!evtimer_pending(c->expire, NULL))
            pgsql_arm_expire(c);
        if (c->state == PGSQL_DOWN && c->retry_at_ms - now > PGSQL_BACKOFF_WAITING_MS)
            pgsql_retry_in(c, PGSQL_BACKOFF_WAITING_MS);
    }
}

static void pgsql_close(void *p)
{
    struct pgsql_drv *drv = p;
    for (size_t i = 0; i < drv->nconns; i++) {
        struct pgsql_conn *c = &drv->conns[i];
        pgsql_disconnect(c);
        if (c->op != NULL) {
            pgsql_fail(c->op, STORE_ERR_UNAVAILABLE, "store closed");
            store_op_done(c->op);
            c->op = NULL;
        }
        while (c->head != NULL) {
            struct pgsql_wait *w = c->head;
            c->head = w->next;
            pgsql_fail(w->op, STORE_ERR_UNAVAILABLE, "store closed");
            store_op_done(w->op);
            free(w);
        }
        c->tail = NULL;
    }
    pgsql_free(drv);
}

const struct store_driver_ops store_driver_pgsql = {
    .name = "pgsql",
    .open = pgsql_open,
    .migrate = pgsql_migrate,
    .submit = pgsql_submit,
    .close = pgsql_close,
};
