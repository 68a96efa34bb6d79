/* SPDX-License-Identifier: MIT */
/* Announcements and the message of the day, the jabberd2/ejabberd way: an
 * administrator (sm/admins.h) sends a message to
 *   DOMAIN/announce/online       sent now to every available session;
 *   DOMAIN/announce/motd         becomes the MOTD and is sent now too;
 *   DOMAIN/announce/motd/update  becomes the MOTD, shown at next logins;
 *   DOMAIN/announce/motd/delete  removes the MOTD.
 * Others get <forbidden/>. Every user is shown the MOTD once, at the first
 * initial presence after it was set. The store keeps the MOTD in
 * "motd-message" (owner: the domain) and its time in "motd-times" under
 * the domain; "motd-times" under a user is the time of the MOTD that user
 * last saw. An announcement carries the subject, body, thread and XHTML-IM
 * of the administrator's message, from the domain, type normal; a user
 * whose privacy lists refuse messages from the domain gets none.
 * Limit: with several sm processes sharing a domain, "now" reaches the
 * sessions of the sm that got the announcement; the MOTD reaches everyone
 * at login. The same logic serves the XEP-0133 commands (motd.h). */
#include "motd.h"

#include <string.h>

#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "xml.h"

#include "admins.h"
#include "sm.h"

#define NS_DELAY "urn:xmpp:delay"
#define NS_XHTML "http://jabber.org/protocol/xhtml-im"
#define ANNOUNCE "announce"

/* ---- sending ----------------------------------------------------------------- */

/* The announcement: the parts of the administrator's message worth
 * repeating, from the domain. */
static struct xml_node *announcement(struct sm_pkt *p)
{
    struct xml_node *m = sm_stanza_new(p->a, "message", p->to.domain, NULL, NULL, NULL);
    for (struct xml_node *c = xml_first_elem(p->st); c != NULL; c = xml_next_elem(c)) {
        if (strcmp(c->ns, XML_NS_CLIENT) == 0 || xml_is(c, NS_XHTML, "html"))
            xml_append(m, xml_node_copy(p->a, c));
    }
    return m;
}

static void on_logged(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK)
        log_warn(&sm->lc, "recording a seen MOTD: %s", res->err.text);
}

/* Records that u has seen the MOTD of time t. */
static void record_seen(struct sm *sm, const char *bare, int64_t t)
{
    struct arena *a = arena_new(256);
    struct store_rec *r = store_rec_new(a);
    store_rec_time(a, r, "time", t);
    store_put(sm->st, "motd-times", bare, r, on_logged, sm);
    arena_free(&a);
}

static bool in_domain(const char *bare, const char *domain)
{
    const char *at = strchr(bare, '@');
    return at != NULL && strcmp(at + 1, domain) == 0;
}

size_t sm_motd_broadcast(struct sm *sm, const char *domain, struct arena *a, struct xml_node *m,
                         int64_t motd_time)
{
    struct hmap_iter it = {0};
    void *v;
    size_t n = 0;
    while (hmap_next(sm->users, &it, NULL, &v)) {
        struct sm_user *u = v;
        bool sent = false;
        if (u->state != SM_USER_READY || !in_domain(u->jid, domain) ||
            !sm_allow_in(u, SM_MESSAGE, domain))
            continue;
        for (struct sm_session *s = u->sessions; s != NULL; s = s->next) {
            if (!s->available)
                continue;
            xml_attr_set(a, m, "to", s->jid);
            sm_session_write(s, m, NULL);
            sent = true;
            n++;
        }
        if (sent && motd_time != 0)
            record_seen(sm, u->jid, motd_time);
    }
    return n;
}

/* ---- setting, reading and deleting ------------------------------------------------ */

/* One MOTD operation in flight, in its own arena. */
struct motd_op {
    struct sm *sm;
    struct arena *a;
    char *domain;
    struct xml_node *msg;
    int64_t now;
    bool send;
    sm_motd_cb *cb;
    void *arg;
};

static struct motd_op *op_new(struct sm *sm, const char *domain, sm_motd_cb *cb, void *arg)
{
    struct arena *a = arena_new(1024);
    struct motd_op *op = arena_alloc(a, sizeof(*op));
    op->sm = sm;
    op->a = a;
    op->domain = arena_strdup(a, domain);
    op->cb = cb;
    op->arg = arg;
    return op;
}

static void op_done(struct motd_op *op, enum xmpp_cond cond, const struct xml_node *motd)
{
    struct arena *a = op->a;
    op->cb(op->arg, cond, motd);
    arena_free(&a);
}

static bool failed(struct motd_op *op, const struct store_res *res, const char *what)
{
    if (res->status == STORE_OK)
        return false;
    log_warn(&op->sm->lc, "%s the MOTD of %s: %s", what, op->domain, res->err.text);
    op_done(op,
            res->status == STORE_ERR_INPUT ? XMPP_COND_NOT_ACCEPTABLE
                                           : XMPP_COND_INTERNAL_SERVER_ERROR,
            NULL);
    return true;
}

static void on_time_set(const struct store_res *res, void *arg)
{
    struct motd_op *op = arg;
    if (failed(op, res, "dating"))
        return;
    if (op->send)
        sm_motd_broadcast(op->sm, op->domain, op->a, op->msg, op->now);
    op_done(op, XMPP_COND_NONE, NULL);
}

static void on_message_set(const struct store_res *res, void *arg)
{
    struct motd_op *op = arg;
    if (failed(op, res, "storing"))
        return;
    struct store_rec *r = store_rec_new(op->a);
    store_rec_time(op->a, r, "time", op->now);
    store_put(op->sm->st, "motd-times", op->domain, r, on_time_set, op);
}

void sm_motd_set(struct sm *sm, const char *domain, const struct xml_node *m, bool send,
                 sm_motd_cb *cb, void *arg)
{
    struct motd_op *op = op_new(sm, domain, cb, arg);
    op->msg = xml_node_copy(op->a, m);
    op->now = sm_now_us();
    op->send = send;
    struct buf b = BUF_INIT;
    xml_serialize(&b, op->msg, XML_NS_CLIENT);
    struct store_rec *r = store_rec_new(op->a);
    store_rec_xml(op->a, r, "xml", buf_cstr(&b));
    buf_fini(&b);
    store_put(sm->st, "motd-message", op->domain, r, on_message_set, op);
}

static void on_message_deleted(const struct store_res *res, void *arg)
{
    struct motd_op *op = arg;
    if (!failed(op, res, "deleting"))
        op_done(op, XMPP_COND_NONE, NULL);
}

static void on_time_deleted(const struct store_res *res, void *arg)
{
    struct motd_op *op = arg;
    if (failed(op, res, "deleting"))
        return;
    store_delete(op->sm->st, "motd-message", op->domain, NULL, on_message_deleted, op);
}

/* The time goes first: without it no MOTD is shown, whatever is left. */
void sm_motd_delete(struct sm *sm, const char *domain, sm_motd_cb *cb, void *arg)
{
    struct motd_op *op = op_new(sm, domain, cb, arg);
    store_delete(sm->st, "motd-times", op->domain, NULL, on_time_deleted, op);
}

static void on_message_got(const struct store_res *res, void *arg)
{
    struct motd_op *op = arg;
    if (failed(op, res, "reading"))
        return;
    struct xml_node *m = NULL;
    if (res->nrows > 0)
        m = xml_parse_fragment(op->a, store_rec_get_str(res->rows[0], "xml", ""));
    op_done(op, XMPP_COND_NONE, m);
}

static void on_time_got(const struct store_res *res, void *arg)
{
    struct motd_op *op = arg;
    if (failed(op, res, "reading"))
        return;
    if (res->nrows == 0) {
        op_done(op, XMPP_COND_NONE, NULL); /* no MOTD, whatever is left of one */
        return;
    }
    store_get(op->sm->st, "motd-message", op->domain, NULL, on_message_got, op);
}

void sm_motd_get(struct sm *sm, const char *domain, sm_motd_cb *cb, void *arg)
{
    struct motd_op *op = op_new(sm, domain, cb, arg);
    store_get(sm->st, "motd-times", op->domain, NULL, on_time_got, op);
}

/* ---- the announce/ resources ------------------------------------------------------- */

static void on_announce_done(void *arg, enum xmpp_cond cond, const struct xml_node *motd)
{
    struct sm_pkt *p = arg;
    (void)motd;
    if (cond != XMPP_COND_NONE)
        sm_error(p, cond, NULL);
    sm_pkt_free(p);
}

static void announce(struct sm_pkt *p, const char *what)
{
    bool motd = strcmp(what, "motd") == 0, update = strcmp(what, "motd/update") == 0;
    if (strcmp(what, "motd/delete") == 0) {
        sm_pkt_keep(p);
        sm_motd_delete(p->sm, p->to.domain, on_announce_done, p);
        return;
    }
    if (!motd && !update && strcmp(what, "online") != 0) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    struct xml_node *m = announcement(p);
    if (xml_first_elem(m) == NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "an announcement has a subject or a body");
    } else if (motd || update) {
        sm_pkt_keep(p);
        sm_motd_set(p->sm, p->to.domain, m, motd, on_announce_done, p);
    } else {
        sm_motd_broadcast(p->sm, p->to.domain, p->a, m, 0);
    }
}

/* ---- showing the MOTD at login --------------------------------------------------- */

/* A login being checked: the MOTD's time, then the user's, then the MOTD. */
struct motd_login {
    struct sm *sm;
    struct arena *a;
    char *bare, *res, *domain;
    int64_t motd_time;
};

static void login_done(struct motd_login *l)
{
    struct arena *a = l->a;
    arena_free(&a);
}

static void on_motd(const struct store_res *res, void *arg)
{
    struct motd_login *l = arg;
    struct sm_user *u = res->status == STORE_OK ? hmap_get(l->sm->users, l->bare) : NULL;
    struct sm_session *s = u ? sm_user_session(u, l->res) : NULL;
    if (s != NULL && !sm_allow_in(u, SM_MESSAGE, l->domain))
        s = NULL; /* refused by the user's privacy lists: not seen either */
    struct xml_node *m = NULL;
    if (s != NULL && res->nrows > 0)
        m = xml_parse_fragment(l->a, store_rec_get_str(res->rows[0], "xml", ""));
    if (m != NULL) {
        char stamp[40];
        sm_stamp(l->motd_time, stamp, sizeof(stamp));
        struct xml_node *d = xml_elem_add(l->a, m, NS_DELAY, "delay");
        xml_attr_set(l->a, d, "from", l->domain);
        xml_attr_set(l->a, d, "stamp", stamp);
        xml_attr_set(l->a, m, "to", s->jid);
        sm_session_write(s, m, NULL);
        record_seen(l->sm, l->bare, l->motd_time);
    }
    login_done(l);
}

static void on_user_time(const struct store_res *res, void *arg)
{
    struct motd_login *l = arg;
    if (res->status != STORE_OK ||
        (res->nrows > 0 && store_rec_get_int(res->rows[0], "time", 0) >= l->motd_time)) {
        login_done(l); /* seen already (or cannot tell: better not repeat it) */
        return;
    }
    store_get(l->sm->st, "motd-message", l->domain, NULL, on_motd, l);
}

static void on_motd_time(const struct store_res *res, void *arg)
{
    struct motd_login *l = arg;
    if (res->status != STORE_OK || res->nrows == 0) {
        login_done(l); /* no MOTD */
        return;
    }
    l->motd_time = store_rec_get_int(res->rows[0], "time", 0);
    store_get(l->sm->st, "motd-times", l->bare, NULL, on_user_time, l);
}

static void login_check(struct sm_pkt *p)
{
    struct arena *a = arena_new(1024);
    struct motd_login *l = arena_alloc(a, sizeof(*l));
    l->sm = p->sm;
    l->a = a;
    l->bare = arena_strdup(a, p->user->jid);
    l->res = arena_strdup(a, p->sess->res);
    l->domain = arena_strdup(a, p->from.domain);
    store_get(p->sm->st, "motd-times", l->domain, NULL, on_motd_time, l);
}

/* ---- the pipeline ----------------------------------------------------------------- */

static bool to_announce(const struct sm_pkt *p)
{
    const char *r = p->to.resource;
    return p->has_to && p->to.local == NULL && r != NULL &&
           strncmp(r, ANNOUNCE, strlen(ANNOUNCE)) == 0 &&
           (r[strlen(ANNOUNCE)] == '\0' || r[strlen(ANNOUNCE)] == '/') &&
           sm_is_local_domain(p->sm, p->to.domain);
}

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind == SM_PRESENCE) {
        /* before presence (30) has made the session available */
        if (p->route == SM_FROM_SESSION && !p->has_to && p->type[0] == '\0' && !p->sess->available)
            login_check(p);
        return SM_PASS;
    }
    if (p->kind != SM_MESSAGE || p->route == SM_TO_USER || !to_announce(p))
        return SM_PASS;
    if (strcmp(p->type, "error") == 0)
        return SM_HANDLED; /* nothing to answer */
    if (!sm_is_admin(p->sm, jid_bare(p->a, &p->from))) {
        sm_error(p, XMPP_COND_FORBIDDEN, "announcements are for administrators");
        return SM_HANDLED;
    }
    const char *r = p->to.resource + strlen(ANNOUNCE);
    announce(p, r[0] == '/' ? r + 1 : r);
    return SM_HANDLED;
}

const struct sm_feature sm_feat_motd = {
    .name = "motd",
    .order = 26,
    .on_stanza = on_stanza,
};
