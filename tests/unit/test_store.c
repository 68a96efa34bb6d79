/* SPDX-License-Identifier: MIT */
/* The shared storage suite: the same tests against the SQLite driver (a
 * temp file) and, when PL_PG_DIR/PL_PG_PORT name a PostgreSQL server that
 * ctest's fixture started, against the PostgreSQL driver. The program takes
 * the driver as its argument: "sqlite" or "pgsql". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "arena.h"
#include "store.h"

static enum store_driver driver;
static char sqlite_path[256];
static char pg_conninfo[512];

struct fixture {
    struct event_base *base;
    struct store *st;
    struct arena *a;
};

/* Empties the database between tests: every table's rows, not the schema. */
static void wipe(void)
{
    static const char *const tables[] = {
        "authreg",     "active",       "logout",     "roster_items",      "roster_groups",
        "queue",       "vcard",        "private",    "privacy_items",     "privacy_default",
        "disco_items", "motd_message", "motd_times", "vacation_settings", "archive",
        "pep_nodes",   "pep_items",    "caps",       "muc_rooms",         "muc_affiliations",
        "counters"};
    char sql[4096] = "";
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        strcat(sql, "DELETE FROM ");
        strcat(sql, tables[i]);
        strcat(sql, ";");
    }
    if (driver == STORE_DRIVER_SQLITE) {
        sqlite3 *db;
        assert_int_equal(sqlite3_open(sqlite_path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    } else {
        PGconn *c = PQconnectdb(pg_conninfo);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(c);
    }
}

static struct store_cfg cfg_for(size_t max_value)
{
    struct store_cfg cfg = {.driver = driver, .max_value = max_value, .pg_pool = 3};
    cfg.sqlite_path = sqlite_path;
    cfg.pg_conninfo = pg_conninfo;
    return cfg;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->base = event_base_new();
    struct err err = {0};
    struct store_cfg cfg = cfg_for(64 * 1024);
    f->st = store_open(f->base, &cfg, true, false, &err);
    if (f->st == NULL)
        fail_msg("store_open: %s", err.text);
    wipe();
    f->a = arena_new(0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(&f->st);
    event_base_free(f->base);
    arena_free(&f->a);
    free(f);
    return 0;
}

/* Runs the loop until every operation has completed. */
static void drain(struct fixture *f)
{
    for (int i = 0; i < 100000 && store_pending(f->st) > 0; i++)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_int_equal(store_pending(f->st), 0);
}

/* A captured result: status, rows copied into the fixture's arena. */
struct got {
    int calls;
    enum store_status status;
    enum xmpp_cond cond;
    char text[256];
    struct store_rec **rows;
    size_t nrows;
    int64_t value, affected;
    bool complete;
    struct arena *a;
};

static struct store_rec *copy_rec(struct arena *a, const struct store_rec *r)
{
    struct store_rec *c = store_rec_new(a);
    for (size_t i = 0; i < r->n; i++) {
        const struct store_field *x = &r->f[i];
        if (x->null)
            store_rec_null(a, c, x->name, x->type);
        else if (x->type == STORE_T_STR)
            store_rec_str(a, c, x->name, x->s);
        else if (x->type == STORE_T_XML)
            store_rec_xml(a, c, x->name, x->s);
        else if (x->type == STORE_T_BOOL)
            store_rec_bool(a, c, x->name, x->b);
        else if (x->type == STORE_T_TIME)
            store_rec_time(a, c, x->name, x->i);
        else
            store_rec_int(a, c, x->name, x->i);
    }
    return c;
}

static void on_result(const struct store_res *res, void *arg)
{
    struct got *g = arg;
    g->calls++;
    g->status = res->status;
    g->cond = res->err.cond;
    snprintf(g->text, sizeof(g->text), "%s", res->err.text);
    g->value = res->value;
    g->affected = res->affected;
    g->complete = res->complete;
    g->nrows = res->nrows;
    g->rows = arena_alloc(g->a, (res->nrows + 1) * sizeof(*g->rows));
    for (size_t i = 0; i < res->nrows; i++)
        g->rows[i] = copy_rec(g->a, res->rows[i]);
}

#define EXPECT_OK(g)                                                                               \
    do {                                                                                           \
        assert_int_equal((g).calls, 1);                                                            \
        if ((g).status != STORE_OK)                                                                \
            fail_msg("status %d: %s", (g).status, (g).text);                                       \
    } while (0)

/* ---- every collection round-trips every column ------------------------------ */

struct colspec {
    const char *name;
    enum store_type type;
};

struct collspec {
    const char *coll;
    struct colspec cols[10];
};

static const struct collspec colls[] = {
    {"authreg",
     {{"scram1_salt", STORE_T_STR},
      {"scram1_iter", STORE_T_INT},
      {"scram1_stored", STORE_T_STR},
      {"scram1_server", STORE_T_STR},
      {"scram256_salt", STORE_T_STR},
      {"scram256_iter", STORE_T_INT},
      {"scram256_stored", STORE_T_STR},
      {"scram256_server", STORE_T_STR},
      {"created", STORE_T_TIME}}},
    {"active", {{"time", STORE_T_TIME}}},
    {"logout", {{"time", STORE_T_TIME}, {"status", STORE_T_STR}}},
    {"roster-items",
     {{"jid", STORE_T_STR},
      {"name", STORE_T_STR},
      {"sub_to", STORE_T_BOOL},
      {"sub_from", STORE_T_BOOL},
      {"ask_out", STORE_T_BOOL},
      {"ask_in", STORE_T_BOOL},
      {"approved", STORE_T_BOOL},
      {"ask_in_xml", STORE_T_XML}}},
    {"roster-groups", {{"jid", STORE_T_STR}, {"grp", STORE_T_STR}}},
    {"vcard", {{"xml", STORE_T_XML}, {"photo_hash", STORE_T_STR}}},
    {"private", {{"ns", STORE_T_STR}, {"xml", STORE_T_XML}}},
    {"privacy-items",
     {{"list", STORE_T_STR},
      {"ord", STORE_T_INT},
      {"type", STORE_T_STR},
      {"value", STORE_T_STR},
      {"deny", STORE_T_BOOL},
      {"block", STORE_T_INT}}},
    {"privacy-default", {{"list", STORE_T_STR}}},
    {"disco-items", {{"jid", STORE_T_STR}, {"node", STORE_T_STR}, {"name", STORE_T_STR}}},
    {"motd-message", {{"xml", STORE_T_XML}}},
    {"motd-times", {{"time", STORE_T_TIME}}},
    {"vacation-settings",
     {{"start", STORE_T_TIME}, {"end", STORE_T_TIME}, {"message", STORE_T_STR}}},
    {"pep-nodes", {{"node", STORE_T_STR}, {"config", STORE_T_XML}}},
    {"pep-items",
     {{"node", STORE_T_STR},
      {"item", STORE_T_STR},
      {"ts", STORE_T_TIME},
      {"publisher", STORE_T_STR},
      {"payload", STORE_T_XML}}},
    {"caps", {{"xml", STORE_T_XML}}},
    {"muc-rooms", {{"config", STORE_T_XML}, {"subject", STORE_T_XML}}},
    {"muc-affiliations",
     {{"jid", STORE_T_STR}, {"affiliation", STORE_T_STR}, {"nick", STORE_T_STR}}},
    {"counters", {{"name", STORE_T_STR}, {"value", STORE_T_INT}}},
    {"queue", {{"ts", STORE_T_TIME}, {"xml", STORE_T_XML}, {"origin", STORE_T_STR}}},
    {"archive",
     {{"id", STORE_T_STR},
      {"ts", STORE_T_TIME},
      {"with_jid", STORE_T_STR},
      {"stanza", STORE_T_XML}}},
};

/* Strings that would break SQL built by concatenation. */
static const char *const nasty[] = {
    "'; DROP TABLE authreg; --",
    "\"quoted\" \\ back\\slash",
    "100% _wild_ [x]",
    "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80",
    "$1 ?1 :name @x",
    "line\nbreak\ttab",
};

static void fill(struct arena *a, struct store_rec *r, const struct collspec *cs, int variant)
{
    for (size_t i = 0; i < 10 && cs->cols[i].name; i++) {
        const struct colspec *c = &cs->cols[i];
        char buf[256];
        switch (c->type) {
        case STORE_T_STR:
            snprintf(buf, sizeof(buf), "%s #%d %s", c->name, variant,
                     nasty[(i + (size_t)variant) % (sizeof(nasty) / sizeof(nasty[0]))]);
            store_rec_str(a, r, c->name, buf);
            break;
        case STORE_T_XML:
            snprintf(buf, sizeof(buf), "<x xmlns='urn:test' n='%d'>a &amp; b &lt; '%s'</x>",
                     variant, c->name);
            store_rec_xml(a, r, c->name, buf);
            break;
        case STORE_T_INT:
            store_rec_int(a, r, c->name, (int64_t)variant * 1000003 - 7);
            break;
        case STORE_T_BOOL:
            store_rec_bool(a, r, c->name, ((int)i + variant) % 2 == 0);
            break;
        case STORE_T_TIME:
            store_rec_time(a, r, c->name, 1763769600000000LL + variant);
            break;
        }
    }
}

static void assert_same(const struct store_rec *want, const struct store_rec *got)
{
    for (size_t i = 0; i < want->n; i++) {
        const struct store_field *w = &want->f[i];
        const struct store_field *g = store_rec_field(got, w->name);
        if (g == NULL)
            fail_msg("field %s missing", w->name);
        assert_int_equal(g->type, w->type);
        assert_int_equal(g->null, w->null);
        if (w->type == STORE_T_STR || w->type == STORE_T_XML)
            assert_string_equal(g->s, w->s);
        else if (w->type == STORE_T_BOOL)
            assert_int_equal(g->b, w->b);
        else
            assert_int_equal(g->i, w->i);
    }
}

static void test_every_collection_round_trips(void **state)
{
    struct fixture *f = *state;
    for (size_t c = 0; c < sizeof(colls) / sizeof(colls[0]); c++) {
        const struct collspec *cs = &colls[c];
        bool log = !strcmp(cs->coll, "queue") || !strcmp(cs->coll, "archive");
        for (int variant = 1; variant <= 2; variant++) {
            /* Keyed: the same key twice, the second put replaces the first.
             * Logs: two rows (with distinct ids and origins). */
            struct store_rec *r = store_rec_new(f->a);
            fill(f->a, r, cs, log ? variant : 1);
            struct got put = {.a = f->a};
            store_put(f->st, cs->coll, "o'wner@example.org", r, on_result, &put);
            assert_int_equal(put.calls, 0); /* never from inside the call */
            drain(f);
            EXPECT_OK(put);
            struct got get = {.a = f->a};
            store_get(f->st, cs->coll, "o'wner@example.org", NULL, on_result, &get);
            drain(f);
            EXPECT_OK(get);
            assert_int_equal(get.nrows, log ? (size_t)variant : 1);
            assert_same(r, get.rows[get.nrows - 1]);
        }
    }
}

static void test_put_replaces_by_key_and_filters(void **state)
{
    struct fixture *f = *state;
    const char *owner = "alice@example.org";
    for (int i = 0; i < 5; i++) {
        struct store_rec *r = store_rec_new(f->a);
        char jid[64];
        snprintf(jid, sizeof(jid), "c%d@example.net", i);
        store_rec_str(f->a, r, "jid", jid);
        store_rec_str(f->a, r, "name", "first");
        store_rec_bool(f->a, r, "sub_to", i % 2 == 0);
        struct got g = {.a = f->a};
        store_put(f->st, "roster-items", owner, r, on_result, &g);
        drain(f);
        EXPECT_OK(g);
    }
    /* replace one: name changes, fields not given become NULL */
    struct store_rec *r = store_rec_new(f->a);
    store_rec_str(f->a, r, "jid", "c3@example.net");
    store_rec_str(f->a, r, "name", "second");
    struct got g = {.a = f->a};
    store_put(f->st, "roster-items", owner, r, on_result, &g);
    drain(f);
    EXPECT_OK(g);

    struct store_rec *flt = store_rec_new(f->a);
    store_rec_str(f->a, flt, "jid", "c3@example.net");
    struct got one = {.a = f->a};
    store_get(f->st, "roster-items", owner, flt, on_result, &one);
    drain(f);
    EXPECT_OK(one);
    assert_int_equal(one.nrows, 1);
    assert_string_equal(store_rec_get_str(one.rows[0], "name", ""), "second");
    assert_true(store_rec_field(one.rows[0], "sub_to")->null);

    struct store_rec *subs = store_rec_new(f->a);
    store_rec_bool(f->a, subs, "sub_to", true);
    struct got cnt = {.a = f->a};
    store_count(f->st, "roster-items", owner, subs, on_result, &cnt);
    drain(f);
    EXPECT_OK(cnt);
    assert_int_equal(cnt.value, 3); /* c0, c2, c4 */

    struct got all = {.a = f->a};
    store_get(f->st, "roster-items", owner, NULL, on_result, &all);
    drain(f);
    assert_int_equal(all.nrows, 5);
    for (size_t i = 0; i < all.nrows; i++) { /* ordered by jid */
        char want[64];
        snprintf(want, sizeof(want), "c%zu@example.net", i);
        assert_string_equal(store_rec_get_str(all.rows[i], "jid", ""), want);
    }

    struct got del = {.a = f->a};
    store_delete(f->st, "roster-items", owner, subs, on_result, &del);
    drain(f);
    EXPECT_OK(del);
    assert_int_equal(del.affected, 3);
    struct got other = {.a = f->a};
    store_count(f->st, "roster-items", "bob@example.org", NULL, on_result, &other);
    drain(f);
    assert_int_equal(other.value, 0); /* owners are separate */
}

static void test_insert_conflict(void **state)
{
    struct fixture *f = *state;
    struct store_rec *r = store_rec_new(f->a);
    store_rec_str(f->a, r, "scram256_salt", "c2FsdA==");
    struct got a = {.a = f->a}, b = {.a = f->a};
    store_insert(f->st, "authreg", "u@example.org", r, on_result, &a);
    store_insert(f->st, "authreg", "u@example.org", r, on_result, &b);
    drain(f);
    EXPECT_OK(a);
    assert_int_equal(b.status, STORE_ERR_CONFLICT);
    assert_int_equal(b.cond, XMPP_COND_CONFLICT);
}

/* The offline queue keeps one row per origin (a replayed stanza is stored
 * once); rows without an origin are never refused. */
static void test_queue_origin_is_unique(void **state)
{
    struct fixture *f = *state;
    struct got g[4];
    for (int i = 0; i < 4; i++) {
        g[i] = (struct got){.a = f->a};
        struct store_rec *r = store_rec_new(f->a);
        store_rec_time(f->a, r, "ts", i);
        store_rec_xml(f->a, r, "xml", "<message/>");
        if (i < 2)
            store_rec_str(f->a, r, "origin", "9f2c:17");
        store_insert(f->st, "queue", "q@example.org", r, on_result, &g[i]);
    }
    drain(f);
    EXPECT_OK(g[0]);
    assert_int_equal(g[1].status, STORE_ERR_CONFLICT);
    EXPECT_OK(g[2]);
    EXPECT_OK(g[3]);
    struct got c = {.a = f->a};
    store_count(f->st, "queue", "q@example.org", NULL, on_result, &c);
    drain(f);
    assert_int_equal(c.value, 3);
}

static void push_queue(struct fixture *f, const char *owner, int n)
{
    for (int i = 0; i < n; i++) {
        struct store_rec *r = store_rec_new(f->a);
        char xml[64];
        snprintf(xml, sizeof(xml), "<message id='%d'/>", i);
        store_rec_time(f->a, r, "ts", 1000 + i);
        store_rec_xml(f->a, r, "xml", xml);
        store_put(f->st, "queue", owner, r, on_result, &(struct got){.a = f->a});
    }
}

static void test_take_all_in_order_and_atomically(void **state)
{
    struct fixture *f = *state;
    struct got *sink = NULL;
    (void)sink;
    for (int i = 0; i < 30; i++) {
        struct store_rec *r = store_rec_new(f->a);
        char xml[64];
        snprintf(xml, sizeof(xml), "<message id='%d'/>", i);
        store_rec_time(f->a, r, "ts", 1000 + i);
        store_rec_xml(f->a, r, "xml", xml);
        struct got *g = arena_alloc(f->a, sizeof(*g));
        g->a = f->a;
        store_put(f->st, "queue", "q@example.org", r, on_result, g);
    }
    struct got take = {.a = f->a}, after = {.a = f->a};
    store_take_all(f->st, "queue", "q@example.org", on_result, &take);
    store_count(f->st, "queue", "q@example.org", NULL, on_result, &after);
    drain(f);
    EXPECT_OK(take);
    assert_int_equal(take.nrows, 30);
    for (size_t i = 0; i < 30; i++) {
        char want[64];
        snprintf(want, sizeof(want), "<message id='%zu'/>", i);
        assert_string_equal(store_rec_get_str(take.rows[i], "xml", ""), want);
    }
    EXPECT_OK(after);
    assert_int_equal(after.value, 0);
    struct got empty = {.a = f->a}; /* nothing queued: an empty answer, not an error */
    store_take_all(f->st, "queue", "nobody@example.org", on_result, &empty);
    drain(f);
    EXPECT_OK(empty);
    assert_int_equal(empty.nrows, 0);
    (void)push_queue;
}

static void archive_fill(struct fixture *f, const char *owner, int n)
{
    for (int i = 0; i < n; i++) {
        struct store_rec *r = store_rec_new(f->a);
        char id[32], st[64];
        snprintf(id, sizeof(id), "id-%03d", i);
        snprintf(st, sizeof(st), "<message id='m%d'/>", i);
        store_rec_str(f->a, r, "id", id);
        store_rec_time(f->a, r, "ts", 1000000LL * (i + 1));
        store_rec_str(f->a, r, "with_jid", i % 3 == 0 ? "bob@example.net" : "carol@example.net");
        store_rec_xml(f->a, r, "stanza", st);
        struct got *g = arena_alloc(f->a, sizeof(*g));
        g->a = f->a;
        store_put(f->st, "archive", owner, r, on_result, g);
    }
    drain(f);
}

static void range(struct fixture *f, const struct store_range *q, struct got *g)
{
    g->a = f->a;
    store_range(f->st, "archive", "a@example.org", q, on_result, g);
    drain(f);
}

static const char *row_id(const struct got *g, size_t i)
{
    return store_rec_get_str(g->rows[i], "id", "?");
}

static void test_archive_ranges(void **state)
{
    struct fixture *f = *state;
    archive_fill(f, "a@example.org", 50);

    struct got first = {0};
    range(f, &(struct store_range){.limit = 10}, &first);
    EXPECT_OK(first);
    assert_int_equal(first.nrows, 10);
    assert_false(first.complete);
    assert_string_equal(row_id(&first, 0), "id-000");
    assert_string_equal(row_id(&first, 9), "id-009");

    struct got next = {0};
    range(f, &(struct store_range){.limit = 10, .after_id = "id-009"}, &next);
    EXPECT_OK(next);
    assert_string_equal(row_id(&next, 0), "id-010");

    struct got last = {0}; /* the last page: newest, returned oldest first */
    range(f, &(struct store_range){.limit = 10, .reverse = true}, &last);
    EXPECT_OK(last);
    assert_int_equal(last.nrows, 10);
    assert_string_equal(row_id(&last, 0), "id-040");
    assert_string_equal(row_id(&last, 9), "id-049");

    struct got back = {0};
    range(f, &(struct store_range){.limit = 10, .reverse = true, .before_id = "id-040"}, &back);
    EXPECT_OK(back);
    assert_string_equal(row_id(&back, 0), "id-030");
    assert_string_equal(row_id(&back, 9), "id-039");

    struct got oldest = {0};
    range(f, &(struct store_range){.limit = 10, .reverse = true, .before_id = "id-005"}, &oldest);
    EXPECT_OK(oldest);
    assert_int_equal(oldest.nrows, 5);
    assert_true(oldest.complete);

    struct store_rec *bob = store_rec_new(f->a);
    store_rec_str(f->a, bob, "with_jid", "bob@example.net");
    struct got with = {0};
    range(f, &(struct store_range){.filter = bob, .start = 10000000, .end = 30000000}, &with);
    EXPECT_OK(with);
    /* ids 9..29 with i % 3 == 0: 9,12,...,27 */
    assert_int_equal(with.nrows, 7);
    assert_string_equal(row_id(&with, 0), "id-009");
    assert_true(with.complete);

    struct got missing = {0};
    range(f, &(struct store_range){.limit = 5, .after_id = "nope"}, &missing);
    assert_int_equal(missing.status, STORE_ERR_INPUT);
    assert_int_equal(missing.cond, XMPP_COND_ITEM_NOT_FOUND);

    struct got exp = {.a = f->a};
    store_expire(f->st, "archive", "a@example.org", 11000000, on_result, &exp);
    drain(f);
    EXPECT_OK(exp);
    assert_int_equal(exp.affected, 10);
}

static void test_counters_and_owners(void **state)
{
    struct fixture *f = *state;
    struct got a = {.a = f->a}, b = {.a = f->a}, c = {.a = f->a};
    store_counter_add(f->st, "x@example.org", "roster-version", 1, on_result, &a);
    store_counter_add(f->st, "x@example.org", "roster-version", 5, on_result, &b);
    store_counter_add(f->st, "y@example.org", "roster-version", 1, on_result, &c);
    drain(f);
    EXPECT_OK(a);
    assert_int_equal(a.value, 1);
    assert_int_equal(b.value, 6);
    assert_int_equal(c.value, 1);
    struct got o = {.a = f->a};
    store_owners(f->st, "counters", on_result, &o);
    drain(f);
    EXPECT_OK(o);
    assert_int_equal(o.nrows, 2);
    assert_string_equal(store_rec_get_str(o.rows[0], "owner", ""), "x@example.org");
}

static void expect_input_error(struct fixture *f, const char *coll, struct store_rec *r,
                               enum xmpp_cond cond)
{
    struct got g = {.a = f->a};
    store_put(f->st, coll, "bad@example.org", r, on_result, &g);
    assert_int_equal(g.calls, 0);
    drain(f);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, STORE_ERR_INPUT);
    assert_int_equal(g.cond, cond);
}

static void test_bad_input_is_refused(void **state)
{
    struct fixture *f = *state;
    /* a 1 MiB vCard over the 64 KiB limit of this fixture */
    char *big = malloc(1 << 20);
    memset(big, 'v', (1 << 20) - 1);
    big[(1 << 20) - 1] = '\0';
    struct store_rec *r = store_rec_new(f->a);
    store_rec_xml(f->a, r, "xml", big);
    free(big);
    expect_input_error(f, "vcard", r, XMPP_COND_NOT_ACCEPTABLE);

    r = store_rec_new(f->a);
    store_rec_str(f->a, r, "colour", "blue");
    expect_input_error(f, "vcard", r, XMPP_COND_BAD_REQUEST);

    r = store_rec_new(f->a);
    store_rec_int(f->a, r, "xml", 3); /* wrong type */
    expect_input_error(f, "vcard", r, XMPP_COND_BAD_REQUEST);

    r = store_rec_new(f->a);
    store_rec_str(f->a, r, "name", "no key"); /* roster item without jid */
    expect_input_error(f, "roster-items", r, XMPP_COND_BAD_REQUEST);

    r = store_rec_new(f->a);
    store_rec_str(f->a, r, "jid", "bad\xff\xfe utf-8");
    expect_input_error(f, "roster-items", r, XMPP_COND_BAD_REQUEST);

    r = store_rec_new(f->a);
    expect_input_error(f, "no-such-collection", r, XMPP_COND_BAD_REQUEST);

    /* and nothing was written */
    struct got c = {.a = f->a};
    store_count(f->st, "vcard", "bad@example.org", NULL, on_result, &c);
    drain(f);
    assert_int_equal(c.value, 0);
}

/* 10,000 interleaved operations over 100 owners: every callback exactly
 * once, and each owner's in submission order. */
struct order_ctx {
    int next_expected[100];
    int calls;
    int errors;
};

struct order_arg {
    struct order_ctx *ctx;
    int owner, n;
};

static void on_ordered(const struct store_res *res, void *arg)
{
    struct order_arg *oa = arg;
    oa->ctx->calls++;
    if (res->status != STORE_OK)
        oa->ctx->errors++;
    if (oa->ctx->next_expected[oa->owner] != oa->n)
        fail_msg("owner %d: callback %d arrived, %d expected", oa->owner, oa->n,
                 oa->ctx->next_expected[oa->owner]);
    oa->ctx->next_expected[oa->owner]++;
}

static void test_ten_thousand_interleaved_operations(void **state)
{
    struct fixture *f = *state;
    struct order_ctx ctx = {0};
    int per_owner[100] = {0};
    struct order_arg *args = calloc(10000, sizeof(*args));
    for (int i = 0; i < 10000; i++) {
        int o = (i * 37) % 100; /* every owner gets 100 operations, 25 of each kind */
        char owner[64];
        snprintf(owner, sizeof(owner), "user%d@example.org", o);
        args[i] = (struct order_arg){&ctx, o, per_owner[o]++};
        switch ((i / 100) % 4) {
        case 0:
            store_counter_add(f->st, owner, "n", 1, on_ordered, &args[i]);
            break;
        case 1: {
            struct store_rec *r = store_rec_new(f->a);
            store_rec_time(f->a, r, "ts", i);
            store_rec_xml(f->a, r, "xml", "<message/>");
            store_put(f->st, "queue", owner, r, on_ordered, &args[i]);
            break;
        }
        case 2:
            store_count(f->st, "queue", owner, NULL, on_ordered, &args[i]);
            break;
        default:
            store_get(f->st, "counters", owner, NULL, on_ordered, &args[i]);
            break;
        }
        if (i % 1000 == 999)
            event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    drain(f);
    assert_int_equal(ctx.calls, 10000);
    assert_int_equal(ctx.errors, 0);
    struct got g = {.a = f->a};
    store_get(f->st, "counters", "user7@example.org", NULL, on_result, &g);
    drain(f);
    assert_int_equal(store_rec_get_int(g.rows[0], "value", 0), 25);
    free(args);
}

static void test_schema_version_checks(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_db_version(f->st), store_schema_version());
    /* pretend a newer Parley wrote the database */
    const char *bump = "UPDATE schema_version SET version = 999";
    const char *back = "UPDATE schema_version SET version = 1";
    if (driver == STORE_DRIVER_SQLITE) {
        sqlite3 *db;
        sqlite3_open(sqlite_path, &db);
        assert_int_equal(sqlite3_exec(db, bump, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    } else {
        PGconn *c = PQconnectdb(pg_conninfo);
        PQclear(PQexec(c, bump));
        PQfinish(c);
    }
    struct err err = {0};
    struct store_cfg cfg = cfg_for(0);
    struct store *st = store_open(f->base, &cfg, true, true, &err);
    assert_null(st);
    assert_non_null(strstr(err.text, "newer"));
    if (driver == STORE_DRIVER_SQLITE) {
        sqlite3 *db;
        sqlite3_open(sqlite_path, &db);
        sqlite3_exec(db, back, NULL, NULL, NULL);
        sqlite3_close(db);
    } else {
        PGconn *c = PQconnectdb(pg_conninfo);
        PQclear(PQexec(c, back));
        PQfinish(c);
    }
}

/* PostgreSQL only: the server restarts under the store. Operations sent
 * to the dead connections fail with a clear error; every callback still
 * runs once; later operations succeed on the new connections. */
struct restart_ctx {
    int ok, unavailable, other, calls;
    char text[256];
};

static void on_restart_res(const struct store_res *res, void *arg)
{
    struct restart_ctx *c = arg;
    c->calls++;
    if (res->status == STORE_OK) {
        c->ok++;
    } else if (res->status == STORE_ERR_UNAVAILABLE) {
        c->unavailable++;
        snprintf(c->text, sizeof(c->text), "%s", res->err.text);
    } else {
        c->other++;
        snprintf(c->text, sizeof(c->text), "%s", res->err.text);
    }
}

static void counter_batch(struct fixture *f, struct restart_ctx *c, int n)
{
    for (int i = 0; i < n; i++) {
        char owner[64];
        snprintf(owner, sizeof(owner), "r%d@example.org", i);
        store_counter_add(f->st, owner, "n", 1, on_restart_res, c);
    }
    drain(f);
}

static void test_pg_restart_mid_run(void **state)
{
    struct fixture *f = *state;
    struct restart_ctx before = {0};
    counter_batch(f, &before, 30);
    assert_int_equal(before.ok, 30);

    /* Hold a lock so that the next statements wait inside the server: they
     * are in flight, sent and unanswered, when it goes down. */
    PGconn *locker = PQconnectdb(pg_conninfo);
    assert_int_equal(PQstatus(locker), CONNECTION_OK);
    PGresult *r = PQexec(locker, "BEGIN; LOCK TABLE counters IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);

    struct restart_ctx during = {0};
    for (int i = 0; i < 30; i++) {
        char owner[64];
        snprintf(owner, sizeof(owner), "r%d@example.org", i);
        store_counter_add(f->st, owner, "n", 1, on_restart_res, &during);
    }
    for (int i = 0; i < 20; i++) /* let the driver send them */
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(during.calls, 0);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s/../pg_fixture.sh restart %s >/dev/null", PL_TEST_DATA_DIR,
             getenv("PL_PG_DIR"));
    assert_int_equal(system(cmd), 0);
    PQfinish(locker);
    drain(f);
    assert_int_equal(during.calls, 30);
    assert_int_equal(during.other, 0);
    assert_int_equal(during.ok + during.unavailable, 30);
    if (during.unavailable < 1)
        fail_msg("no operation reported the lost connection");
    assert_non_null(strstr(during.text, "connection"));

    struct restart_ctx after = {0};
    counter_batch(f, &after, 30);
    assert_int_equal(after.calls, 30);
    if (after.ok != 30)
        fail_msg("%d of 30 failed after reconnection: %s", 30 - after.ok, after.text);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "sqlite";
    if (strcmp(which, "pgsql") == 0) {
        const char *dir = getenv("PL_PG_DIR"), *port = getenv("PL_PG_PORT");
        if (dir == NULL || port == NULL) {
            fprintf(stderr, "test_store pgsql needs PL_PG_DIR and PL_PG_PORT (ctest fixture)\n");
            return 1;
        }
        driver = STORE_DRIVER_PGSQL;
        snprintf(pg_conninfo, sizeof(pg_conninfo), "host=%s port=%s user=parley dbname=parley", dir,
                 port);
    } else {
        driver = STORE_DRIVER_SQLITE;
        snprintf(sqlite_path, sizeof(sqlite_path), "/tmp/parley-test-store-%d.db", (int)getpid());
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_collection_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_replaces_by_key_and_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_origin_is_unique, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_all_in_order_and_atomically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_archive_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_and_owners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ten_thousand_interleaved_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_version_checks, setup, teardown),
    };
    int rc = cmocka_run_group_tests_name(which, tests, NULL, NULL);
    if (driver == STORE_DRIVER_PGSQL) {
        const struct CMUnitTest pg_tests[] = {
            cmocka_unit_test_setup_teardown(test_pg_restart_mid_run, setup, teardown),
        };
        rc |= cmocka_run_group_tests_name("pgsql restart", pg_tests, NULL, NULL);
    }
    if (driver == STORE_DRIVER_SQLITE) {
        char p[300];
        unlink(sqlite_path);
        snprintf(p, sizeof(p), "%s-wal", sqlite_path);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", sqlite_path);
        unlink(p);
    }
    return rc;
}
