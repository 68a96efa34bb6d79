/* SPDX-License-Identifier: MIT */
/* store_bench: operations per second and completion latency of the asynchronous storage API
 * (libcommon/store.h) on the SQLite or PostgreSQL driver, and how late a 1 ms timer fires while
 * the database works, which shows how long the event loop is blocked. --driver sqlite-sync runs
 * the same SQL through sqlite3 directly and synchronously, as a baseline. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "alloc.h"
#include "arena.h"
#include "attr.h"
#include "store.h"

#define QUEUE_PER_LOGIN     10      /* offline messages waiting for each take_all */
#define ROSTER_PER_OWNER    50      /* roster items of each owner */
#define TICK_NS             1000000 /* the responsiveness timer's period: 1 ms */
#define IDLE_MS             1000
#define LOCK_WATCHDOG_MS    60000 /* after the release: give up waiting for the appends */
#define MAX_REPORTED_ERRORS 5

/* Exit codes. */
enum bench_exit {
    BENCH_OK = 0,
    BENCH_SETUP = 1,  /* bad options, the database cannot be opened or filled */
    BENCH_FAILED = 2, /* an operation failed or returned other rows than expected */
};

enum bench_mode {
    BENCH_MODE_SQLITE,
    BENCH_MODE_PGSQL,
    BENCH_MODE_SQLITE_SYNC,
};

struct opts {
    enum bench_mode mode;
    const char *driver; /* as given: sqlite, pgsql or sqlite-sync */
    const char *sqlite_path;
    const char *pg_conninfo;
    long ops, owners, inflight, pool;
    long busy_ms, lock_ms;
    bool coarse_clock;
};

/* Durations in nanoseconds. */
struct samples {
    int64_t *v;
    size_t n, cap;
};

struct bench;

/* Submits operation i of a run (asynchronous modes). */
typedef void submit_fn(struct bench *b, long i, store_cb *cb, void *arg);
/* Whether a successful result has the expected shape. */
typedef bool check_fn(const struct store_res *res);

struct run {
    const char *name;
    submit_fn *submit;
    check_fn *check;
    long target;     /* operations to submit in all; LONG_MAX while a stream runs */
    int64_t stop_at; /* a stream stops submitting at this time (0: no stream) */
    long submitted, completed, failed, bad;
    int64_t t_start, t_last; /* first submission, last completion */
    struct samples lat;      /* submission to callback */
};

/* What an operation in flight carries to its callback. */
struct slot {
    struct bench *b;
    struct run *run;
    int64_t t0;
    struct slot *next; /* free list */
};

struct bench {
    struct opts o;
    const char *driver;
    struct event_base *base;
    struct store *st;
    struct arena *scratch; /* records being built; reset after each submission */
    struct run *run;       /* the run in progress */
    struct event *refill;  /* zero-delay timer: fills the room that completions made */
    struct slot *free_slots;
    char tag[40]; /* makes this process's owners and ids unique */
    long archive_seq;
    char archive_phase; /* in archive ids: w(orkload), b(usy), l(ocked) */

    struct event *tick;
    int64_t tick_due;
    int64_t tick_until;       /* record lateness until then (0: no limit) */
    struct samples *tick_lat; /* NULL: not recording */
    bool tick_submits;        /* lock test: one more append per tick */

    PGconn *lock_pg;
    int64_t released_at;
    long completed_in_lock;
    struct samples *after_lat; /* tick lateness from the release on */
    int rc;
};

static void die(const char *fmt, ...) PL_PRINTF(1, 2) PL_NORETURN;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("store_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(BENCH_SETUP);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- samples ---------------------------------------------------------------------------- */

static void samples_add(struct samples *s, int64_t v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = v;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static void samples_sort(struct samples *s)
{
    qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
}

/* Nearest-rank percentile of sorted samples (100: the maximum), in microseconds; 0 when
 * there are none. */
static double pct_us(const struct samples *s, unsigned pct)
{
    if (s->n == 0)
        return 0;
    size_t rank = (pct * s->n + 99) / 100;
    if (rank == 0)
        rank = 1;
    return (double)s->v[rank - 1] / 1e3;
}

static void samples_fini(struct samples *s)
{
    free(s->v);
    *s = (struct samples){0};
}

/* ---- what the workloads write ------------------------------------------------------------ */

static const char *user_jid(struct bench *b, long n)
{
    return arena_printf(b->scratch, "user%ld-%s@bench.example", n, b->tag);
}

static const char *login_jid(struct bench *b, long n)
{
    return arena_printf(b->scratch, "login%ld-%s@bench.example", n, b->tag);
}

/* A chat message of about 230 bytes, as c2s would hand it to the sm. */
static const char *stanza(struct bench *b, const char *to, long n)
{
    return arena_printf(b->scratch,
                        "<message xmlns='jabber:client' from='contact%ld@example.net/phone' "
                        "to='%s' type='chat' id='m%ld'><body>Message %ld: the quick brown fox "
                        "jumps over the lazy dog.</body></message>",
                        n % ROSTER_PER_OWNER, to, n, n);
}

static struct store_rec *queue_rec(struct bench *b, const char *owner, long n)
{
    struct arena *a = b->scratch;
    struct store_rec *r = store_rec_new(a);
    store_rec_time(a, r, "ts", wall_us());
    store_rec_xml(a, r, "xml", stanza(b, owner, n));
    return r;
}

static struct store_rec *roster_rec(struct bench *b, long n)
{
    struct arena *a = b->scratch;
    struct store_rec *r = store_rec_new(a);
    store_rec_str(a, r, "jid", arena_printf(a, "contact%ld@example.net", n));
    store_rec_str(a, r, "name", arena_printf(a, "Contact %ld", n));
    store_rec_bool(a, r, "sub_to", true);
    store_rec_bool(a, r, "sub_from", true);
    store_rec_bool(a, r, "ask_out", false);
    store_rec_bool(a, r, "ask_in", false);
    store_rec_bool(a, r, "approved", false);
    store_rec_null(a, r, "ask_in_xml", STORE_T_XML);
    store_rec_bool(a, r, "in_roster", true);
    return r;
}

static struct store_rec *archive_rec(struct bench *b, const char *owner, long n)
{
    struct arena *a = b->scratch;
    struct store_rec *r = store_rec_new(a);
    store_rec_str(a, r, "id",
                  arena_printf(a, "%s-%c%ld", b->tag, b->archive_phase, b->archive_seq++));
    store_rec_time(a, r, "ts", wall_us());
    store_rec_str(a, r, "with_jid",
                  arena_printf(a, "contact%ld@example.net", n % ROSTER_PER_OWNER));
    store_rec_xml(a, r, "stanza", stanza(b, owner, n));
    return r;
}

/* ---- asynchronous workloads -------------------------------------------------------------- */

static void submit_warm(struct bench *b, long i, store_cb *cb, void *arg)
{
    store_count(b->st, "queue", user_jid(b, i), NULL, cb, arg);
}

static void submit_queue_put(struct bench *b, long i, store_cb *cb, void *arg)
{
    const char *owner = user_jid(b, i % b->o.owners);
    store_put(b->st, "queue", owner, queue_rec(b, owner, i), cb, arg);
}

static void submit_login_fill(struct bench *b, long i, store_cb *cb, void *arg)
{
    const char *owner = login_jid(b, i / QUEUE_PER_LOGIN);
    store_put(b->st, "queue", owner, queue_rec(b, owner, i), cb, arg);
}

static void submit_take(struct bench *b, long i, store_cb *cb, void *arg)
{
    store_take_all(b->st, "queue", login_jid(b, i), cb, arg);
}

static void submit_roster_fill(struct bench *b, long i, store_cb *cb, void *arg)
{
    const char *owner = user_jid(b, i / ROSTER_PER_OWNER);
    store_put(b->st, "roster-items", owner, roster_rec(b, i % ROSTER_PER_OWNER), cb, arg);
}

static void submit_roster_get(struct bench *b, long i, store_cb *cb, void *arg)
{
    store_get(b->st, "roster-items", user_jid(b, i % b->o.owners), NULL, cb, arg);
}

static void submit_archive(struct bench *b, long i, store_cb *cb, void *arg)
{
    const char *owner = user_jid(b, i % b->o.owners);
    store_put(b->st, "archive", owner, archive_rec(b, owner, i), cb, arg);
}

static bool check_written(const struct store_res *res)
{
    return res->affected == 1;
}

static bool check_take(const struct store_res *res)
{
    return res->nrows == QUEUE_PER_LOGIN;
}

static bool check_roster(const struct store_res *res)
{
    return res->nrows == ROSTER_PER_OWNER;
}

/* ---- the asynchronous engine ------------------------------------------------------------- */

static struct slot *slot_get(struct bench *b)
{
    struct slot *s = b->free_slots;
    if (s != NULL)
        b->free_slots = s->next;
    else
        s = xcalloc(1, sizeof(*s));
    s->b = b;
    return s;
}

static void slot_put(struct bench *b, struct slot *s)
{
    s->next = b->free_slots;
    b->free_slots = s;
}

static void on_op_done(const struct store_res *res, void *arg);

static void submit_one(struct bench *b, struct run *r)
{
    struct slot *s = slot_get(b);
    s->run = r;
    s->t0 = now_ns();
    if (r->submitted == 0)
        r->t_start = s->t0;
    r->submit(b, r->submitted++, on_op_done, s);
    arena_reset(b->scratch);
}

/* Submits until the run has its target or --inflight operations outstanding. */
static void fill_window(struct bench *b, struct run *r)
{
    while (r->submitted < r->target && r->submitted - r->completed < b->o.inflight) {
        if (r->stop_at != 0 && now_ns() >= r->stop_at) {
            r->target = r->submitted;
            break;
        }
        submit_one(b, r);
    }
}

/* New operations are submitted from a zero-delay timer, never from inside a completion
 * callback: like work arriving on sockets, they wait for the loop's next turn. */
static void on_op_done(const struct store_res *res, void *arg)
{
    static const struct timeval zero = {0, 0};
    struct slot *s = arg;
    struct bench *b = s->b;
    struct run *r = s->run;
    int64_t now = now_ns();
    samples_add(&r->lat, now - s->t0);
    slot_put(b, s);
    r->completed++;
    r->t_last = now;
    if (res->status != STORE_OK) {
        if (r->failed++ < MAX_REPORTED_ERRORS)
            fprintf(stderr, "store_bench: %s: %s: %s\n", r->name, store_status_name(res->status),
                    res->err.text);
    } else if (r->check != NULL && !r->check(res)) {
        if (r->bad++ < MAX_REPORTED_ERRORS)
            fprintf(stderr, "store_bench: %s: unexpected result: %zu rows, %" PRId64 " affected\n",
                    r->name, res->nrows, res->affected);
    }
    if (r->submitted < r->target && !evtimer_pending(b->refill, NULL)) {
        /* Due now, not at the time cached before this turn's callbacks: otherwise it would
         * always sort before the tick, which would then wait for two turns, not one. */
        event_base_update_cache_time(b->base);
        evtimer_add(b->refill, &zero);
    }
}

static void on_refill(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    (void)fd;
    (void)what;
    if (b->run != NULL)
        fill_window(b, b->run);
}

/* Runs r until every operation it submits has completed. */
static void run_async(struct bench *b, struct run *r)
{
    b->run = r;
    fill_window(b, r);
    while (r->completed < r->target)
        event_base_loop(b->base, EVLOOP_ONCE);
    b->run = NULL;
}

static void report_run(struct bench *b, const char *key, struct run *r)
{
    samples_sort(&r->lat);
    double secs = (double)(r->t_last - r->t_start) / 1e9;
    double rate = secs > 0 ? (double)r->completed / secs : 0;
    printf("%-16s %8ld ops %8.3f s %9.0f ops/s   latency p50 %9.1f us  p99 %9.1f us   "
           "failed %ld  wrong %ld\n",
           r->name, r->completed, secs, rate, pct_us(&r->lat, 50), pct_us(&r->lat, 99), r->failed,
           r->bad);
    printf("RESULT driver=%s test=%s ops=%ld seconds=%.3f ops_per_s=%.0f p50_us=%.1f "
           "p99_us=%.1f failed=%ld wrong=%ld\n",
           b->driver, key, r->completed, secs, rate, pct_us(&r->lat, 50), pct_us(&r->lat, 99),
           r->failed, r->bad);
    fflush(stdout);
    if (r->failed != 0 || r->bad != 0)
        b->rc = BENCH_FAILED;
    samples_fini(&r->lat);
}

/* ---- responsiveness: a 1 ms timer while the database works -------------------------------- */

static void arm_tick(struct bench *b)
{
    static const struct timeval one_ms = {0, TICK_NS / 1000};
    /* Inside a callback libevent counts from the time it cached before running callbacks. */
    event_base_update_cache_time(b->base);
    b->tick_due = now_ns() + TICK_NS;
    evtimer_add(b->tick, &one_ms);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    (void)fd;
    (void)what;
    int64_t now = now_ns();
    if (b->tick_lat != NULL && (b->tick_until == 0 || now <= b->tick_until))
        samples_add(b->tick_lat, now - b->tick_due);
    if (b->tick_submits && b->run != NULL)
        submit_one(b, b->run);
    arm_tick(b);
}

static void stop_ticks(struct bench *b)
{
    event_del(b->tick);
    b->tick_lat = NULL;
    b->tick_until = 0;
    b->tick_submits = false;
}

static void report_ticks(struct bench *b, const char *key, struct samples *s, const char *extra)
{
    samples_sort(s);
    double min = s->n ? (double)s->v[0] / 1e3 : 0;
    printf("%-16s %8zu ticks  lateness p50 %8.1f us  p99 %8.1f us  max %9.1f us  (min %.1f)%s%s\n",
           key, s->n, pct_us(s, 50), pct_us(s, 99), pct_us(s, 100), min, extra[0] ? "  " : "",
           extra);
    printf("RESULT driver=%s test=%s ticks=%zu p50_us=%.1f p99_us=%.1f max_us=%.1f min_us=%.1f\n",
           b->driver, key, s->n, pct_us(s, 50), pct_us(s, 99), pct_us(s, 100), min);
    fflush(stdout);
}

/* The timer alone: the floor of what the loop can do. */
static void timer_idle(struct bench *b)
{
    struct samples s = {0};
    struct timeval tv = {IDLE_MS / 1000, (IDLE_MS % 1000) * 1000};
    b->tick_lat = &s;
    arm_tick(b);
    event_base_loopexit(b->base, &tv);
    event_base_dispatch(b->base);
    stop_ticks(b);
    report_ticks(b, "timer_idle", &s, "");
    samples_fini(&s);
}

/* The timer while --inflight archive appends are outstanding all the time. */
static void timer_busy(struct bench *b)
{
    struct samples s = {0};
    struct run r = {.name = "archive append (busy)",
                    .submit = submit_archive,
                    .check = check_written,
                    .target = LONG_MAX};
    b->archive_phase = 'b';
    r.stop_at = now_ns() + b->o.busy_ms * 1000000;
    b->tick_lat = &s;
    b->tick_until = r.stop_at;
    arm_tick(b);
    run_async(b, &r);
    stop_ticks(b);

    report_ticks(b, "timer_busy", &s, "");
    samples_fini(&s);
    r.name = "  the appends";
    report_run(b, "timer_busy_appends", &r);
}

/* ---- PostgreSQL: the timer while another session holds the archive locked ----------------- */

static void pg_exec(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die("lock session: %s: %s", sql, PQerrorMessage(pg));
    PQclear(r);
}

static void on_release(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    (void)fd;
    (void)what;
    b->released_at = now_ns();
    b->completed_in_lock = b->run->completed;
    b->run->target = b->run->submitted; /* the stream of appends ends here */
    b->tick_submits = false;
    b->tick_lat = b->after_lat;
    if (!PQsendQuery(b->lock_pg, "COMMIT") || PQflush(b->lock_pg) != 0)
        die("lock session: COMMIT: %s", PQerrorMessage(b->lock_pg));
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    struct bench *b = arg;
    (void)fd;
    (void)what;
    fprintf(stderr,
            "store_bench: lock test: %ld of %ld appends still pending %d s after the "
            "release\n",
            b->run->target - b->run->completed, b->run->target, LOCK_WATCHDOG_MS / 1000);
    exit(BENCH_FAILED);
}

/* Rows of the lock test that reached the table. */
static long count_locked_rows(struct bench *b)
{
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "%s-l%%", b->tag);
    const char *values[] = {pattern};
    PGresult *r = PQexecParams(b->lock_pg, "SELECT count(*) FROM archive WHERE id LIKE $1", 1, NULL,
                               values, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        die("lock session: count: %s", PQerrorMessage(b->lock_pg));
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* LOCK TABLE archive from a second session for --lock-ms while appends keep arriving (the
 * --inflight first ones, then one per tick). None can complete until the lock goes; the loop
 * must stay free meanwhile, and every append must complete after. */
static void lock_test(struct bench *b)
{
    b->lock_pg = PQconnectdb(b->o.pg_conninfo);
    if (PQstatus(b->lock_pg) != CONNECTION_OK)
        die("lock session: %s", PQerrorMessage(b->lock_pg));
    pg_exec(b->lock_pg, "BEGIN");
    pg_exec(b->lock_pg, "LOCK TABLE archive IN ACCESS EXCLUSIVE MODE");

    struct samples during = {0}, after = {0};
    struct run r = {.name = "archive append (locked)",
                    .submit = submit_archive,
                    .check = check_written,
                    .target = LONG_MAX};
    struct timeval lock_tv = {b->o.lock_ms / 1000, (b->o.lock_ms % 1000) * 1000};
    struct timeval dog_tv = {(b->o.lock_ms + LOCK_WATCHDOG_MS) / 1000, 0};
    struct event *release = evtimer_new(b->base, on_release, b);
    struct event *dog = evtimer_new(b->base, on_watchdog, b);
    b->archive_phase = 'l';
    b->after_lat = &after;
    b->tick_lat = &during;
    b->tick_submits = true;
    b->run = &r;
    evtimer_add(release, &lock_tv);
    evtimer_add(dog, &dog_tv);
    int64_t locked_at = now_ns();
    arm_tick(b);
    run_async(b, &r);
    stop_ticks(b);
    event_free(release);
    event_free(dog);

    PGresult *res;
    while ((res = PQgetResult(b->lock_pg)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            die("lock session: COMMIT: %s", PQerrorMessage(b->lock_pg));
        PQclear(res);
    }
    long rows = count_locked_rows(b);
    PQfinish(b->lock_pg);
    b->lock_pg = NULL;

    char extra[160];
    snprintf(extra, sizeof(extra), "locked %.0f ms, %ld appends queued, %ld completed meanwhile",
             (double)(b->released_at - locked_at) / 1e6, r.submitted, b->completed_in_lock);
    report_ticks(b, "timer_locked", &during, extra);
    snprintf(extra, sizeof(extra), "until the last queued append completed");
    report_ticks(b, "timer_after", &after, extra);

    samples_sort(&r.lat);
    double drain_ms = (double)(r.t_last - b->released_at) / 1e6;
    bool ok = r.completed == r.submitted && r.failed == 0 && r.bad == 0 && rows == r.submitted &&
              b->completed_in_lock == 0;
    printf("lock result      %ld queued, %ld completed (%ld during the lock), %ld failed, "
           "%ld rows in the table; last one %.1f ms after the release; append latency p50 "
           "%.1f ms, max %.1f ms: %s\n",
           r.submitted, r.completed, b->completed_in_lock, r.failed + r.bad, rows, drain_ms,
           pct_us(&r.lat, 50) / 1e3, pct_us(&r.lat, 100) / 1e3, ok ? "ok" : "FAILED");
    printf("RESULT driver=%s test=lock queued=%ld completed=%ld completed_during_lock=%ld "
           "failed=%ld rows=%ld drain_ms=%.1f append_p50_ms=%.1f append_max_ms=%.1f ok=%d\n",
           b->driver, r.submitted, r.completed, b->completed_in_lock, r.failed + r.bad, rows,
           drain_ms, pct_us(&r.lat, 50) / 1e3, pct_us(&r.lat, 100) / 1e3, ok);
    fflush(stdout);
    if (!ok)
        b->rc = BENCH_FAILED;
    b->after_lat = NULL;
    samples_fini(&during);
    samples_fini(&after);
    samples_fini(&r.lat);
}

/* ---- the synchronous SQLite baseline ----------------------------------------------------- */

/* The statements store_sql.c generated for these operations at commit 234c552, word for word.
 * A column added to these tables since is absent here: NULL on insert, not read. */
enum sync_stmt { SYNC_QUEUE_PUT, SYNC_TAKE, SYNC_ROSTER_GET, SYNC_ROSTER_PUT, SYNC_ARCHIVE_PUT };
static const char *const sync_sql[] = {
    [SYNC_QUEUE_PUT] = "INSERT INTO \"queue\" (\"owner\", \"ts\", \"xml\") VALUES ($1, $2, $3)",
    [SYNC_TAKE] = "DELETE FROM \"queue\" WHERE \"owner\" = $1 RETURNING \"seq\", \"ts\", \"xml\"",
    [SYNC_ROSTER_GET] =
        "SELECT \"jid\", \"name\", \"sub_to\", \"sub_from\", \"ask_out\", "
        "\"ask_in\", \"approved\", \"ask_in_xml\", \"in_roster\" FROM \"roster_items\" "
        "WHERE \"owner\" = $1 ORDER BY \"jid\"",
    [SYNC_ROSTER_PUT] =
        "INSERT INTO \"roster_items\" (\"owner\", \"jid\", \"name\", "
        "\"sub_to\", \"sub_from\", \"ask_out\", \"ask_in\", \"approved\", "
        "\"ask_in_xml\", \"in_roster\") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (\"owner\", \"jid\") DO UPDATE SET "
        "\"name\" = excluded.\"name\", \"sub_to\" = excluded.\"sub_to\", "
        "\"sub_from\" = excluded.\"sub_from\", "
        "\"ask_out\" = excluded.\"ask_out\", \"ask_in\" = excluded.\"ask_in\", "
        "\"approved\" = excluded.\"approved\", "
        "\"ask_in_xml\" = excluded.\"ask_in_xml\", \"in_roster\" = excluded.\"in_roster\"",
    [SYNC_ARCHIVE_PUT] = "INSERT INTO \"archive\" (\"owner\", \"id\", \"ts\", \"with_jid\", "
                         "\"stanza\") VALUES ($1, $2, $3, $4, $5)",
};

struct sync_db {
    sqlite3 *db;
    sqlite3_stmt *stmt[PL_ARRAY_LEN(sync_sql)];
};

/* Runs operation i: 0, -1 on a database error, 1 when the rows are not the expected ones. */
typedef int sync_fn(struct bench *b, struct sync_db *d, long i);

/* The schema comes from store_open, the connection settings are the driver's. */
static void sync_open(struct bench *b, struct sync_db *d)
{
    struct store_cfg cfg = {.driver = STORE_DRIVER_SQLITE, .sqlite_path = b->o.sqlite_path};
    struct err err = {0};
    struct store *st = store_open(b->base, &cfg, true, false, &err);
    if (st == NULL)
        die("%s", err.text);
    store_close(&st);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(b->o.sqlite_path, &d->db, flags, NULL) != SQLITE_OK)
        die("sqlite %s: %s", b->o.sqlite_path, sqlite3_errmsg(d->db));
    if (sqlite3_exec(d->db,
                     "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; "
                     "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
                     NULL, NULL, NULL) != SQLITE_OK)
        die("sqlite %s: %s", b->o.sqlite_path, sqlite3_errmsg(d->db));
    for (size_t i = 0; i < PL_ARRAY_LEN(sync_sql); i++) {
        if (sqlite3_prepare_v3(d->db, sync_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->stmt[i],
                               NULL) != SQLITE_OK)
            die("sqlite: %s: %s", sync_sql[i], sqlite3_errmsg(d->db));
    }
}

static void sync_close(struct sync_db *d)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(sync_sql); i++)
        sqlite3_finalize(d->stmt[i]);
    sqlite3_close(d->db);
}

/* Binds a record's fields in order as $2, $3...; owner is $1. The strings live in scratch
 * until the statement is reset. */
static void sync_bind(sqlite3_stmt *stmt, const char *owner, const struct store_rec *r)
{
    sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
    for (size_t i = 0; i < r->n; i++) {
        const struct store_field *f = &r->f[i];
        int idx = (int)i + 2;
        if (f->null)
            sqlite3_bind_null(stmt, idx);
        else if (f->type == STORE_T_STR || f->type == STORE_T_XML)
            sqlite3_bind_text(stmt, idx, f->s, -1, SQLITE_STATIC);
        else if (f->type == STORE_T_BOOL)
            sqlite3_bind_int(stmt, idx, f->b);
        else
            sqlite3_bind_int64(stmt, idx, f->i);
    }
}

/* Steps a statement to its end, copying every row's values into scratch as the driver
 * does. Returns the number of rows, or -1. */
static long sync_step(struct bench *b, sqlite3_stmt *stmt)
{
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        int n = sqlite3_column_count(stmt);
        for (int c = 0; c < n; c++) {
            if (sqlite3_column_type(stmt, c) == SQLITE_TEXT)
                arena_strndup(b->scratch, (const char *)sqlite3_column_text(stmt, c),
                              (size_t)sqlite3_column_bytes(stmt, c));
            else
                (void)sqlite3_column_int64(stmt, c);
        }
        rows++;
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return rc == SQLITE_DONE ? rows : -1;
}

static int sync_write(struct bench *b, struct sync_db *d, sqlite3_stmt *stmt, const char *owner,
                      const struct store_rec *r)
{
    sync_bind(stmt, owner, r);
    if (sync_step(b, stmt) < 0)
        return -1;
    return sqlite3_changes(d->db) == 1 ? 0 : 1;
}

static int sync_queue_put(struct bench *b, struct sync_db *d, long i)
{
    const char *owner = user_jid(b, i % b->o.owners);
    return sync_write(b, d, d->stmt[SYNC_QUEUE_PUT], owner, queue_rec(b, owner, i));
}

static int sync_login_fill(struct bench *b, struct sync_db *d, long i)
{
    const char *owner = login_jid(b, i / QUEUE_PER_LOGIN);
    return sync_write(b, d, d->stmt[SYNC_QUEUE_PUT], owner, queue_rec(b, owner, i));
}

static int sync_take(struct bench *b, struct sync_db *d, long i)
{
    sqlite3_bind_text(d->stmt[SYNC_TAKE], 1, login_jid(b, i), -1, SQLITE_STATIC);
    long rows = sync_step(b, d->stmt[SYNC_TAKE]);
    return rows < 0 ? -1 : rows == QUEUE_PER_LOGIN ? 0 : 1;
}

static int sync_roster_fill(struct bench *b, struct sync_db *d, long i)
{
    const char *owner = user_jid(b, i / ROSTER_PER_OWNER);
    return sync_write(b, d, d->stmt[SYNC_ROSTER_PUT], owner, roster_rec(b, i % ROSTER_PER_OWNER));
}

static int sync_roster_get(struct bench *b, struct sync_db *d, long i)
{
    sqlite3_bind_text(d->stmt[SYNC_ROSTER_GET], 1, user_jid(b, i % b->o.owners), -1, SQLITE_STATIC);
    long rows = sync_step(b, d->stmt[SYNC_ROSTER_GET]);
    return rows < 0 ? -1 : rows == ROSTER_PER_OWNER ? 0 : 1;
}

static int sync_archive(struct bench *b, struct sync_db *d, long i)
{
    const char *owner = user_jid(b, i % b->o.owners);
    return sync_write(b, d, d->stmt[SYNC_ARCHIVE_PUT], owner, archive_rec(b, owner, i));
}

/* Latency is the time of the call: there is no queue. */
static void run_sync(struct bench *b, struct sync_db *d, struct run *r, sync_fn *fn)
{
    r->t_start = now_ns();
    for (long i = 0; i < r->target; i++) {
        int64_t t0 = now_ns();
        int rc = fn(b, d, i);
        int64_t t1 = now_ns();
        samples_add(&r->lat, t1 - t0);
        arena_reset(b->scratch);
        r->submitted++;
        r->completed++;
        r->t_last = t1;
        if (rc < 0 && r->failed++ < MAX_REPORTED_ERRORS)
            fprintf(stderr, "store_bench: %s: %s\n", r->name, sqlite3_errmsg(d->db));
        if (rc > 0 && r->bad++ < MAX_REPORTED_ERRORS)
            fprintf(stderr, "store_bench: %s: unexpected result\n", r->name);
    }
}

/* ---- the workloads ------------------------------------------------------------------------ */

/* A step of the benchmark: measured, or preparing the data of the next one. It runs
 * ops_x * --ops + owners_x * --owners operations. */
struct workload {
    const char *key, *name;
    long ops_x, owners_x;
    bool measured;
    submit_fn *submit;
    sync_fn *sync; /* NULL: not part of the synchronous baseline */
    check_fn *check;
};

static const struct workload workloads[] = {
    /* Every PostgreSQL connection of the pool up, every owner's pages read once. */
    {"warm_up", "warm-up", 0, 1, false, submit_warm, NULL, NULL},
    {"queue_put", "queue put", 1, 0, true, submit_queue_put, sync_queue_put, check_written},
    /* Each take_all is another user logging in with QUEUE_PER_LOGIN messages waiting. */
    {"queue_fill", "queue fill", QUEUE_PER_LOGIN, 0, false, submit_login_fill, sync_login_fill,
     check_written},
    {"queue_take_all", "queue take_all", 1, 0, true, submit_take, sync_take, check_take},
    {"roster_fill", "roster fill", 0, ROSTER_PER_OWNER, false, submit_roster_fill, sync_roster_fill,
     check_written},
    {"roster_get", "roster get", 1, 0, true, submit_roster_get, sync_roster_get, check_roster},
    {"archive_append", "archive append", 1, 0, true, submit_archive, sync_archive, check_written},
};

/* Through the store (d NULL) or the synchronous baseline. A preparing step that fails ends
 * the benchmark. */
static void run_workloads(struct bench *b, struct sync_db *d)
{
    b->archive_phase = 'w';
    for (size_t i = 0; i < PL_ARRAY_LEN(workloads); i++) {
        const struct workload *w = &workloads[i];
        struct run r = {.name = w->name,
                        .submit = w->submit,
                        .check = w->check,
                        .target = w->ops_x * b->o.ops + w->owners_x * b->o.owners};
        if (d == NULL)
            run_async(b, &r);
        else if (w->sync != NULL)
            run_sync(b, d, &r, w->sync);
        else
            continue;
        if (w->measured)
            report_run(b, w->key, &r);
        else if (r.failed != 0 || r.bad != 0)
            die("%s: %ld of %ld operations failed", w->name, r.failed + r.bad, r.target);
        else
            samples_fini(&r.lat);
    }
}

/* ---- options and main --------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fputs("usage: store_bench --driver sqlite|pgsql|sqlite-sync [options]\n"
          "  --driver D        sqlite or pgsql: the store API with that driver;\n"
          "                    sqlite-sync: the same SQL through sqlite3, synchronously\n"
          "  --sqlite PATH     the SQLite database file (created with the schema if empty)\n"
          "  --pg CONNINFO     the libpq connection string (the schema is created if absent)\n"
          "  --ops N           operations per workload (20000)\n"
          "  --owners N        distinct owners (users) the operations spread over (1000)\n"
          "  --inflight N      operations outstanding at once (256)\n"
          "  --pool N          PostgreSQL connections (4, the driver's default)\n"
          "  --busy-ms MS      how long the timer runs against a stream of appends (5000)\n"
          "  --lock-ms MS      pgsql: how long a second session holds the archive locked (2000)\n"
          "  --coarse-clock    the event loop as the daemons create it (event_base_new: timers\n"
          "                    on the coarse monotonic clock) instead of a precise timer\n"
          "The database gets rows under owners unique to this run; use a throwaway one.\n"
          "Exit status: 0 ok, 1 setup failed, 2 an operation failed or returned wrong rows.\n",
          f);
}

static long parse_num(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        die("%s: \"%s\" is not an integer in %ld..%ld", opt, s, min, max);
    return v;
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"driver", required_argument, NULL, 'd'},  {"sqlite", required_argument, NULL, 's'},
        {"pg", required_argument, NULL, 'p'},      {"ops", required_argument, NULL, 'n'},
        {"owners", required_argument, NULL, 'o'},  {"inflight", required_argument, NULL, 'i'},
        {"pool", required_argument, NULL, 'P'},    {"busy-ms", required_argument, NULL, 'b'},
        {"lock-ms", required_argument, NULL, 'l'}, {"coarse-clock", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.mode = -1,
                       .ops = 20000,
                       .owners = 1000,
                       .inflight = 256,
                       .pool = 4,
                       .busy_ms = 5000,
                       .lock_ms = 2000};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            if (strcmp(optarg, "sqlite") == 0)
                o->mode = BENCH_MODE_SQLITE;
            else if (strcmp(optarg, "pgsql") == 0)
                o->mode = BENCH_MODE_PGSQL;
            else if (strcmp(optarg, "sqlite-sync") == 0)
                o->mode = BENCH_MODE_SQLITE_SYNC;
            else
                die("--driver: \"%s\" is not sqlite, pgsql or sqlite-sync", optarg);
            o->driver = optarg;
            break;
        case 's':
            o->sqlite_path = optarg;
            break;
        case 'p':
            o->pg_conninfo = optarg;
            break;
        case 'n':
            o->ops = parse_num("--ops", optarg, 1, 100000000);
            break;
        case 'o':
            o->owners = parse_num("--owners", optarg, 1, 10000000);
            break;
        case 'i':
            o->inflight = parse_num("--inflight", optarg, 1, 1000000);
            break;
        case 'P':
            o->pool = parse_num("--pool", optarg, 1, 1000);
            break;
        case 'b':
            o->busy_ms = parse_num("--busy-ms", optarg, 100, 3600000);
            break;
        case 'l':
            o->lock_ms = parse_num("--lock-ms", optarg, 100, 600000);
            break;
        case 'c':
            o->coarse_clock = true;
            break;
        case 'h':
            usage(stdout);
            exit(BENCH_OK);
        default:
            usage(stderr);
            exit(BENCH_SETUP);
        }
    }
    if (optind != argc)
        die("unexpected argument \"%s\"", argv[optind]);
    if ((int)o->mode == -1)
        die("--driver is required (sqlite, pgsql or sqlite-sync)");
    if (o->mode != BENCH_MODE_PGSQL && o->sqlite_path == NULL)
        die("--sqlite PATH is required with --driver sqlite or sqlite-sync");
    if (o->mode == BENCH_MODE_PGSQL && o->pg_conninfo == NULL)
        die("--pg CONNINFO is required with --driver pgsql");
}

/* The daemons use event_base_new(), whose timers run on CLOCK_MONOTONIC_COARSE (a tick of
 * the kernel's jiffy, 4 ms at HZ=250): too coarse to see a loop blocked for less. By default
 * the benchmark asks for the precise clock, so that the timer measures the loop, not the clock. */
static struct event_base *new_base(bool coarse)
{
    struct event_config *cfg = event_config_new();
    if (cfg == NULL)
        die("cannot create the event loop");
    if (!coarse)
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    struct event_base *base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (base == NULL)
        die("cannot create the event loop");
    return base;
}

static void run_async_all(struct bench *b)
{
    struct store_cfg cfg = {
        .sqlite_path = b->o.sqlite_path, .pg_conninfo = b->o.pg_conninfo, .pg_pool = b->o.pool};
    cfg.driver = b->o.mode == BENCH_MODE_PGSQL ? STORE_DRIVER_PGSQL : STORE_DRIVER_SQLITE;
    struct err err = {0};
    b->st = store_open(b->base, &cfg, true, false, &err);
    if (b->st == NULL)
        die("%s", err.text);
    b->refill = evtimer_new(b->base, on_refill, b);
    b->tick = evtimer_new(b->base, on_tick, b);

    run_workloads(b, NULL);
    timer_idle(b);
    timer_busy(b);
    if (b->o.mode == BENCH_MODE_PGSQL)
        lock_test(b);

    store_close(&b->st);
    event_free(b->refill);
    event_free(b->tick);
}

int main(int argc, char **argv)
{
    struct bench b = {.rc = BENCH_OK};
    parse_opts(argc, argv, &b.o);
    b.driver = b.o.driver;
    snprintf(b.tag, sizeof(b.tag), "%llx%x", (unsigned long long)wall_us(), (unsigned)getpid());
    b.scratch = arena_new(0);
    b.base = new_base(b.o.coarse_clock);

    printf("# store_bench driver=%s ops=%ld owners=%ld inflight=%ld", b.driver, b.o.ops, b.o.owners,
           b.o.inflight);
    if (b.o.mode == BENCH_MODE_PGSQL)
        printf(" pool=%ld", b.o.pool);
    printf("; sqlite %s, libpq %d, libevent %s (%s, %s timer)\n", sqlite3_libversion(),
           PQlibVersion(), event_get_version(), event_base_get_method(b.base),
           b.o.coarse_clock ? "coarse" : "precise");
    fflush(stdout);
    if (b.o.mode == BENCH_MODE_SQLITE_SYNC) {
        struct sync_db d = {0};
        sync_open(&b, &d);
        run_workloads(&b, &d);
        sync_close(&d);
    } else {
        run_async_all(&b);
    }

    while (b.free_slots != NULL) {
        struct slot *s = b.free_slots;
        b.free_slots = s->next;
        free(s);
    }
    arena_free(&b.scratch);
    event_base_free(b.base);
    return b.rc;
}
