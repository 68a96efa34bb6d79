/* SPDX-License-Identifier: MIT */
/* Vacation messages, with jabberd2's protocol: <query
 * xmlns='http://jabber.org/protocol/vacation'> with <start/>, <end/> (XEP-0082
 * times, empty = open) and <message/>; a get returns the settings (an empty
 * query when none), a set stores them, an empty set removes them. Between
 * start and end, a chat or normal message with a body from another user
 * gets one automatic reply per sender (bare JID) and is delivered as usual,
 * whether or not the user is online (jabberd2 answered only while offline;
 * the period is the user's explicit wish, as with e-mail vacation replies).
 * Messages refused earlier in the pipeline (privacy, blocking) get none.
 * Who has been answered is kept in memory for the vacation period: an sm
 * restart, or a change of the settings, may answer a sender once more. */
#include "sm.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

#define NS_VACATION "http://jabber.org/protocol/vacation"
#define MAX_PENDING 16
#define SWEEP_MIN   64

/* A message that arrived while the settings were loading. */
struct vacation_pending {
    char *to; /* the sender's full JID */
    char *type;
};

/* What the sm knows of one user's vacation. */
struct vacation {
    bool loading;
    bool set;
    int64_t start, end; /* 0 = open */
    char *message;
    struct hmap *replied; /* sender bare JIDs answered this period */
    struct vacation_pending pending[MAX_PENDING];
    size_t npending;
};

/* The feature's state (sm_feature_state). */
struct vacation_state {
    struct hmap *users; /* bare JID -> struct vacation: recent recipients, vacationers */
    size_t sweep_at;    /* entries before the next sweep */
};

extern const struct sm_feature sm_feat_vacation;

static struct vacation_state *state_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_vacation);
}

/* ---- XEP-0082 times ------------------------------------------------------- */

/* The value of n decimal digits at s, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* The time zone designator at s (Z or +hh:mm / -hh:mm) in seconds east of
 * UTC; -1 with *ok false when malformed or followed by anything. */
static long tzd(const char *s, bool *ok)
{
    *ok = (s[0] == 'Z' && s[1] == '\0');
    if (*ok)
        return 0;
    if ((s[0] != '+' && s[0] != '-') || s[3] != ':' || s[6] != '\0')
        return -1;
    int h = digits(s + 1, 2), m = digits(s + 4, 2);
    *ok = h >= 0 && h < 24 && m >= 0 && m < 60;
    return (s[0] == '-' ? -1 : 1) * (h * 3600L + m * 60L);
}

/* Parses CCYY-MM-DDThh:mm:ss[.sss]TZD into microseconds; -1 if malformed. */
static int parse_time(const char *s, int64_t *us_r)
{
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    struct tm tm = {.tm_year = digits(s, 4) - 1900,
                    .tm_mon = digits(s + 5, 2) - 1,
                    .tm_mday = digits(s + 8, 2),
                    .tm_hour = digits(s + 11, 2),
                    .tm_min = digits(s + 14, 2),
                    .tm_sec = digits(s + 17, 2)};
    if (tm.tm_year < 0 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
        tm.tm_sec > 60)
        return -1;
    const char *r = s + 19;
    int64_t frac = 0, scale = 100000;
    if (*r == '.') {
        if (r[1] < '0' || r[1] > '9')
            return -1;
        for (r++; *r >= '0' && *r <= '9'; r++, scale /= 10)
            frac += (*r - '0') * scale;
    }
    bool ok;
    long off = tzd(r, &ok);
    if (!ok)
        return -1;
    *us_r = ((int64_t)timegm(&tm) - off) * 1000000 + frac;
    return 0;
}

/* Reads an optional time child: 0 when absent or empty. */
static int read_time(struct sm_pkt *p, struct xml_node *q, const char *name, int64_t *us_r)
{
    const char *t = xml_child_text(p->a, q, NS_VACATION, name);
    *us_r = 0;
    if (t == NULL || t[strspn(t, " \t\r\n")] == '\0')
        return 0;
    while (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n')
        t++;
    char *c = arena_strdup(p->a, t);
    c[strcspn(c, " \t\r\n")] = '\0';
    return parse_time(c, us_r);
}

/* ---- the cache and the replies ------------------------------------------- */

static void forget_replies(struct vacation *v)
{
    if (v->replied != NULL)
        hmap_free(&v->replied);
}

static void apply(struct vacation *v, bool set, int64_t start, int64_t end, const char *message)
{
    v->set = set;
    v->start = start;
    v->end = end;
    free(v->message);
    v->message = set ? xstrdup(message) : NULL;
    forget_replies(v); /* a new period */
}

static bool worth_keeping(const struct vacation *v, int64_t now)
{
    return v->loading || (v->set && (v->end == 0 || v->end > now));
}

static void vacation_free(struct vacation *v)
{
    for (size_t i = 0; i < v->npending; i++) {
        free(v->pending[i].to);
        free(v->pending[i].type);
    }
    forget_replies(v);
    free(v->message);
    free(v);
}

/* Drops what is not worth keeping for users the sm has unloaded. */
static void sweep(struct sm *sm, struct vacation_state *vs)
{
    int64_t now = sm_now_us();
    const char *drop[256];
    size_t n = 0;
    struct hmap_iter it = {0};
    const char *k;
    void *v;
    while (n < 256 && hmap_next(vs->users, &it, &k, &v)) {
        if (!worth_keeping(v, now) && hmap_get(sm->users, k) == NULL)
            drop[n++] = k;
    }
    for (size_t i = 0; i < n; i++)
        vacation_free(hmap_del(vs->users, drop[i]));
    size_t count = hmap_count(vs->users);
    vs->sweep_at = count * 2 > SWEEP_MIN ? count * 2 : SWEEP_MIN;
}

/* Answers to (a full JID) on behalf of u when v is in effect and that
 * sender has not been answered in this period. */
static void reply(struct sm_user *u, struct vacation *v, const char *to, const char *type)
{
    int64_t now = sm_now_us();
    if (!v->set || (v->start != 0 && now < v->start) || (v->end != 0 && now >= v->end) ||
        !sm_allow_out(u, SM_MESSAGE, to))
        return;
    struct arena *a = arena_new(1024);
    struct jid j;
    if (jid_parse_str(a, to, &j, NULL) == 0) {
        const char *bare = jid_bare(a, &j);
        if (v->replied == NULL)
            v->replied = hmap_new();
        if (hmap_get(v->replied, bare) == NULL) {
            hmap_put(v->replied, bare, v);
            bool chat = strcmp(type, "chat") == 0;
            struct xml_node *m =
                sm_stanza_new(a, "message", u->jid, to, chat ? "chat" : "normal", NULL);
            if (!chat)
                xml_text_add(a, xml_elem_add(a, m, NULL, "subject"), "Automated reply", 15);
            xml_text_add(a, xml_elem_add(a, m, NULL, "body"), v->message, strlen(v->message));
            sm_send(u->sm, m, NULL);
        }
    }
    arena_free(&a);
}

/* A load in flight. */
struct vacation_load {
    struct sm *sm;
    char *bare;
};

static void on_loaded(const struct store_res *res, void *arg)
{
    struct vacation_load *l = arg;
    struct vacation *v = hmap_get(state_of(l->sm)->users, l->bare);
    if (v != NULL && v->loading) {
        v->loading = false;
        if (res->status != STORE_OK) {
            log_warn(&l->sm->lc, "loading the vacation of %s: %s", l->bare, res->err.text);
        } else if (res->nrows > 0) {
            const struct store_rec *r = res->rows[0];
            apply(v, true, store_rec_get_int(r, "start", 0), store_rec_get_int(r, "end", 0),
                  store_rec_get_str(r, "message", ""));
        }
        struct sm_user *u = hmap_get(l->sm->users, l->bare);
        for (size_t i = 0; i < v->npending; i++) {
            if (u != NULL && u->state == SM_USER_READY)
                reply(u, v, v->pending[i].to, v->pending[i].type);
            free(v->pending[i].to);
            free(v->pending[i].type);
        }
        v->npending = 0;
    }
    free(l->bare);
    free(l);
}

static struct vacation *entry(struct sm *sm, const char *bare)
{
    struct vacation_state *vs = state_of(sm);
    struct vacation *v = hmap_get(vs->users, bare);
    if (v != NULL)
        return v;
    if (hmap_count(vs->users) >= vs->sweep_at)
        sweep(sm, vs);
    v = xcalloc(1, sizeof(*v));
    v->loading = true;
    hmap_put(vs->users, bare, v);
    struct vacation_load *l = xmalloc(sizeof(*l));
    l->sm = sm;
    l->bare = xstrdup(bare);
    store_get(sm->st, "vacation-settings", bare, NULL, on_loaded, l);
    return v;
}

/* A message that may deserve a reply: chat or normal with a body, from
 * another user (a JID with a localpart: not a server or a service). */
static bool answerable(const struct sm_pkt *p)
{
    return p->kind == SM_MESSAGE && p->route == SM_TO_USER && p->user != NULL &&
           p->user->state == SM_USER_READY &&
           (p->type[0] == '\0' || !strcmp(p->type, "normal") || !strcmp(p->type, "chat")) &&
           xml_child(p->st, XML_NS_CLIENT, "body") != NULL && p->from.local != NULL;
}

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (!answerable(p) || strcmp(jid_bare(p->a, &p->from), p->user->jid) == 0)
        return SM_PASS;
    struct vacation *v = entry(p->sm, p->user->jid);
    const char *to = jid_full(p->a, &p->from);
    if (!v->loading) {
        reply(p->user, v, to, p->type);
    } else if (v->npending < MAX_PENDING) {
        v->pending[v->npending].to = xstrdup(to);
        v->pending[v->npending].type = xstrdup(p->type);
        v->npending++;
    }
    return SM_PASS; /* delivered as usual */
}

/* ---- the iq ------------------------------------------------------------------------ */

static void text_child(struct sm_pkt *p, struct xml_node *q, const char *name, const char *text)
{
    struct xml_node *n = xml_elem_add(p->a, q, NS_VACATION, name);
    if (text != NULL)
        xml_text_add(p->a, n, text, strlen(text));
}

static void time_child(struct sm_pkt *p, struct xml_node *q, const char *name, int64_t us)
{
    char stamp[40];
    if (us != 0)
        sm_stamp(us, stamp, sizeof(stamp));
    text_child(p, q, name, us != 0 ? stamp : NULL);
}

static void on_got(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "reading a vacation: %s", res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        sm_pkt_free(p);
        return;
    }
    struct xml_node *q = xml_elem_new(p->a, NS_VACATION, "query");
    if (res->nrows > 0) {
        const struct store_rec *r = res->rows[0];
        time_child(p, q, "start", store_rec_get_int(r, "start", 0));
        time_child(p, q, "end", store_rec_get_int(r, "end", 0));
        text_child(p, q, "message", store_rec_get_str(r, "message", ""));
    }
    sm_iq_result(p, q);
    sm_pkt_free(p);
}

/* A set in flight: the cache follows the store once it has succeeded. */
struct vacation_set {
    struct sm_pkt *p;
    bool set;
    int64_t start, end;
    const char *message;
};

static void on_written(const struct store_res *res, void *arg)
{
    struct vacation_set *op = arg;
    struct sm_pkt *p = op->p;
    const char *bare = jid_bare(p->a, &p->from);
    if (res->status == STORE_OK) {
        struct vacation *v = hmap_get(state_of(p->sm)->users, bare);
        if (v != NULL && !v->loading)
            apply(v, op->set, op->start, op->end, op->message);
        sm_iq_result(p, NULL);
    } else {
        log_info(&p->sm->lc, "storing the vacation of %s: %s", bare, res->err.text);
        sm_error(p,
                 res->status == STORE_ERR_INPUT ? XMPP_COND_NOT_ACCEPTABLE
                                                : XMPP_COND_INTERNAL_SERVER_ERROR,
                 NULL);
    }
    sm_pkt_free(p);
}

static void vacation_set(struct sm_pkt *p, struct xml_node *q)
{
    struct vacation_set *op = arena_alloc(p->a, sizeof(*op));
    op->p = p;
    op->set = xml_first_elem(q) != NULL;
    op->message = xml_child_text(p->a, q, NS_VACATION, "message");
    if (op->set && (op->message == NULL || op->message[0] == '\0')) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "a vacation has a <message/>");
        return;
    }
    if (read_time(p, q, "start", &op->start) < 0 || read_time(p, q, "end", &op->end) < 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "times are CCYY-MM-DDThh:mm:ss[.sss]TZD");
        return;
    }
    if (op->start != 0 && op->end != 0 && op->end <= op->start) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "the vacation ends before it starts");
        return;
    }
    sm_pkt_keep(p);
    if (!op->set) {
        store_delete(p->sm->st, "vacation-settings", p->user->jid, NULL, on_written, op);
        return;
    }
    struct store_rec *r = store_rec_new(p->a);
    if (op->start != 0)
        store_rec_time(p->a, r, "start", op->start);
    else
        store_rec_null(p->a, r, "start", STORE_T_TIME);
    if (op->end != 0)
        store_rec_time(p->a, r, "end", op->end);
    else
        store_rec_null(p->a, r, "end", STORE_T_TIME);
    store_rec_str(p->a, r, "message", op->message);
    store_put(p->sm->st, "vacation-settings", p->user->jid, r, on_written, op);
}

static void on_vacation(struct sm_pkt *p, struct xml_node *q)
{
    if (p->route != SM_FROM_SESSION) {
        sm_error(p, XMPP_COND_FORBIDDEN, NULL); /* another user's settings */
    } else if (strcmp(q->name, "query") != 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
    } else if (strcmp(p->type, "set") == 0) {
        vacation_set(p, q);
    } else {
        sm_pkt_keep(p);
        store_get(p->sm->st, "vacation-settings", p->user->jid, NULL, on_got, p);
    }
}

/* ---- the feature ----------------------------------------------------------------------- */

static int init(struct sm *sm, struct err *err)
{
    (void)err;
    struct vacation_state *vs = xcalloc(1, sizeof(*vs));
    vs->users = hmap_new();
    vs->sweep_at = SWEEP_MIN;
    sm_feature_set_state(sm, &sm_feat_vacation, vs);
    return 0;
}

static void fini(struct sm *sm)
{
    struct vacation_state *vs = state_of(sm);
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(vs->users, &it, NULL, &v))
        vacation_free(v);
    hmap_free(&vs->users);
    free(vs);
    sm_feature_set_state(sm, &sm_feat_vacation, NULL);
}

/* A deleted account: its settings and the senders already answered go (a
 * load in flight finds no entry and is dropped). */
static void on_user_forget(struct sm *sm, const char *jid)
{
    struct vacation_state *vs = state_of(sm);
    struct vacation *v = vs ? hmap_del(vs->users, jid) : NULL;
    if (v != NULL)
        vacation_free(v);
}

static const struct sm_iq_handler iqs[] = {
    {NS_VACATION, SM_IQ_ACCOUNT | SM_IQ_USER, on_vacation},
};
static const char *const features[] = {NS_VACATION, NULL};

const struct sm_feature sm_feat_vacation = {
    .name = "vacation",
    .order = 60, /* late: after whatever may refuse the message */
    .server_features = features,
    .account_features = features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = init,
    .fini = fini,
    .on_stanza = on_stanza,
    .on_user_forget = on_user_forget,
};
