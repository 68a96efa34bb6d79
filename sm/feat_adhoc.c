/* SPDX-License-Identifier: MIT */
/* Ad-Hoc Commands (XEP-0050) on the server's JID with the Service
 * Administration commands of XEP-0133, for the <sm><admin> administrators
 * only (others get <forbidden/> and see no command): users and passwords
 * (authreg.h), the online users, announcements and the MOTD (motd.h).
 * A command with a form runs in two stages: execute answers with the form in
 * an executing session (sessionid) that its requester's full JID completes
 * with the submitted form or cancels; it expires after ADHOC_TTL_US, and a
 * refused submission leaves it open for another try. Limits: "online" means
 * this sm's sessions, and delete-user ends those only (the features drop
 * what they cache of a deleted user: on_user_forget). */
#include "sm.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "authreg.h"
#include "buf.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "xml.h"

#include "admins.h"
#include "motd.h"

#define NS_COMMANDS "http://jabber.org/protocol/commands"
#define NS_ADMIN    "http://jabber.org/protocol/admin"
#define NS_XDATA    "jabber:x:data"
#define NS_INFO     "http://jabber.org/protocol/disco#info"
#define NS_ITEMS    "http://jabber.org/protocol/disco#items"

#define ADHOC_TTL_US       (10LL * 60 * 1000000) /* an unfinished session's life */
#define ADHOC_MAX_SESSIONS 256                   /* open sessions, all admins together */
#define ADHOC_MAX_JIDS     100                   /* accounts in one delete-user */
#define ADHOC_ITERATIONS   4096u                 /* SCRAM iterations of new credentials */

extern const struct sm_feature sm_feat_adhoc;

struct adhoc_run;

/* One field of a command's form. */
struct adhoc_field {
    const char *var, *type, *label;
    bool required;
    const char *const *options; /* list-single: the values offered */
};

/* One command: its node after NS_ADMIN "#", its name, the form of its first
 * stage (NULL: it runs at once, with no session to continue), a custom
 * first stage (NULL: the plain form), what it does on submission, and the
 * feature it belongs to (NULL: none; the command is neither listed nor run
 * when that feature is disabled). */
struct adhoc_cmd {
    const char *node, *name;
    const struct adhoc_field *fields;
    void (*form)(struct adhoc_run *r);
    void (*run)(struct adhoc_run *r);
    const char *feature;
};

/* An executing session: its form was sent, its submission is awaited. */
struct adhoc_session {
    char *id;
    char *owner; /* the requester's full JID */
    const struct adhoc_cmd *cmd;
    int64_t expires;
    bool busy; /* a submission is being carried out */
};

struct adhoc_state {
    struct hmap *sessions; /* id -> struct adhoc_session */
};

/* One request being answered, in its pkt's arena (the pkt is kept while a
 * command waits for the store). */
struct adhoc_run {
    struct sm_pkt *p;
    struct arena *a;
    const struct adhoc_cmd *cmd;
    const char *node, *sid;
    struct xml_node *form; /* the submitted form */
    const char **jids;     /* the accounts worked on */
    size_t njids;
    struct store_rec *rec; /* new credentials */
    size_t pending;        /* store operations not back yet */
    enum xmpp_cond cond;   /* the first failure among them */
    const char *missing;   /* delete-user: an account that does not exist */
};

static struct adhoc_state *state_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_adhoc);
}

/* ---- sessions ---------------------------------------------------------------------- */

static void session_free(struct adhoc_session *s)
{
    free(s->id);
    free(s->owner);
    free(s);
}

static void session_end(struct sm *sm, const char *id)
{
    struct adhoc_state *st = state_of(sm);
    struct adhoc_session *s = st != NULL && id != NULL ? hmap_del(st->sessions, id) : NULL;
    if (s != NULL)
        session_free(s);
}

/* Forgets idle sessions that expired or, when owner is not NULL, that
 * owner opened. */
static void sweep(struct sm *sm, const char *owner)
{
    struct adhoc_state *st = state_of(sm);
    struct adhoc_session *drop[64];
    size_t n = 0;
    int64_t now = sm_now_us();
    struct hmap_iter it = {0};
    void *v;
    while (st != NULL && n < 64 && hmap_next(st->sessions, &it, NULL, &v)) {
        struct adhoc_session *s = v;
        if (!s->busy && (s->expires < now || (owner != NULL && !strcmp(s->owner, owner))))
            drop[n++] = s;
    }
    for (size_t i = 0; i < n; i++) {
        hmap_del(st->sessions, drop[i]->id);
        session_free(drop[i]);
    }
}

/* A fresh session id: the command and 64 random bits. */
static const char *random_sid(struct adhoc_run *r)
{
    char rnd[COMP_STREAM_ID_LEN + 1];
    comp_stream_id(rnd);
    return arena_printf(r->a, "%s:%.16s", r->cmd->node, rnd);
}

static const char *session_new(struct adhoc_run *r)
{
    struct adhoc_state *st = state_of(r->p->sm);
    struct adhoc_session *s = xcalloc(1, sizeof(*s));
    s->id = xstrdup(random_sid(r));
    s->owner = xstrdup(jid_full(r->a, &r->p->from));
    s->cmd = r->cmd;
    s->expires = sm_now_us() + ADHOC_TTL_US;
    struct adhoc_session *old = hmap_put(st->sessions, s->id, s);
    if (old != NULL)
        session_free(old); /* 64 random bits: not expected */
    return arena_strdup(r->a, s->id);
}

/* ---- answers ----------------------------------------------------------------------- */

/* An error to the requester; app is a condition of NS_COMMANDS (XEP-0050
 * §4.6) or NULL. The submitted form is not echoed: it may hold passwords. */
static void cmd_error(struct sm_pkt *p, enum xmpp_cond cond, const char *app, const char *text)
{
    struct arena *a = p->a;
    const char *to = xml_attr_get(p->st, "to");
    struct xml_node *e = sm_stanza_new(a, "iq", to ? to : jid_bare(a, &p->from),
                                       jid_full(a, &p->from), "error", xml_attr_get(p->st, "id"));
    struct xml_node *c = xml_first_elem(p->st);
    if (c != NULL) {
        struct xml_node *echo = xml_elem_add(a, e, c->ns, c->name);
        for (unsigned i = 0; i < c->nattrs; i++)
            xml_attr_set_ns(a, echo, c->attrs[i].ns, c->attrs[i].name, c->attrs[i].value);
    }
    struct xml_node *err = xml_elem_add(a, e, XML_NS_CLIENT, "error");
    xml_attr_set(a, err, "type", xmpp_cond_type(cond));
    xml_elem_add(a, err, XMPP_NS_STANZAS, xmpp_cond_name(cond));
    if (text != NULL) {
        struct xml_node *t = xml_elem_add(a, err, XMPP_NS_STANZAS, "text");
        xml_text_add(a, t, text, strlen(text));
    }
    if (app != NULL)
        xml_elem_add(a, err, NS_COMMANDS, app);
    p->sm->stats.bounced++;
    sm_send(p->sm, e, NULL);
}

/* The request is answered: a pkt kept for the store is let go. */
static void finish(struct adhoc_run *r)
{
    if (r->p->kept)
        sm_pkt_free(r->p);
}

static struct xml_node *command_el(struct adhoc_run *r, const char *status)
{
    struct xml_node *c = xml_elem_new(r->a, NS_COMMANDS, "command");
    xml_attr_set(r->a, c, "node", r->node);
    xml_attr_set(r->a, c, "sessionid", r->sid);
    xml_attr_set(r->a, c, "status", status);
    return c;
}

/* The first stage: the form to fill, completing being the one way on. */
static void reply_form(struct adhoc_run *r, struct xml_node *x)
{
    struct xml_node *c = command_el(r, "executing");
    struct xml_node *acts = xml_elem_add(r->a, c, NS_COMMANDS, "actions");
    xml_attr_set(r->a, acts, "execute", "complete");
    xml_elem_add(r->a, acts, NS_COMMANDS, "complete");
    xml_append(c, x);
    sm_iq_result(r->p, c);
    finish(r);
}

/* The session is over: completed with a note and, maybe, a result form. */
static void reply_done(struct adhoc_run *r, const char *note, struct xml_node *x)
{
    session_end(r->p->sm, r->sid);
    struct xml_node *c = command_el(r, "completed");
    if (note != NULL) {
        struct xml_node *n = xml_elem_add(r->a, c, NS_COMMANDS, "note");
        xml_attr_set(r->a, n, "type", "info");
        xml_text_add(r->a, n, note, strlen(note));
    }
    if (x != NULL)
        xml_append(c, x);
    sm_iq_result(r->p, c);
    finish(r);
}

/* The session is waiting for the requester again. */
static void session_idle(struct adhoc_run *r)
{
    struct adhoc_state *st = state_of(r->p->sm);
    struct adhoc_session *s = st != NULL && r->sid ? hmap_get(st->sessions, r->sid) : NULL;
    if (s != NULL)
        s->busy = false;
}

/* A refused submission: the session stays open for another one. */
static void reply_error(struct adhoc_run *r, enum xmpp_cond cond, const char *app, const char *text)
{
    session_idle(r);
    cmd_error(r->p, cond, app, text);
    finish(r);
}

static void bad_payload(struct adhoc_run *r, const char *text)
{
    reply_error(r, XMPP_COND_BAD_REQUEST, "bad-payload", text);
}

/* ---- data forms (XEP-0004) --------------------------------------------------------- */

static struct xml_node *field_add(struct arena *a, struct xml_node *x, const char *type,
                                  const char *var, const char *label)
{
    struct xml_node *f = xml_elem_add(a, x, NS_XDATA, "field");
    if (type != NULL)
        xml_attr_set(a, f, "type", type);
    xml_attr_set(a, f, "var", var);
    if (label != NULL)
        xml_attr_set(a, f, "label", label);
    return f;
}

static void value_add(struct arena *a, struct xml_node *f, const char *text, size_t len)
{
    struct xml_node *v = xml_elem_add(a, f, NS_XDATA, "value");
    xml_text_add(a, v, text, len);
}

/* A form of type form or result, with the XEP-0133 FORM_TYPE. */
static struct xml_node *form_new(struct adhoc_run *r, const char *type, const char *title)
{
    struct xml_node *x = xml_elem_new(r->a, NS_XDATA, "x");
    xml_attr_set(r->a, x, "type", type);
    if (title != NULL)
        xml_text_add(r->a, xml_elem_add(r->a, x, NS_XDATA, "title"), title, strlen(title));
    struct xml_node *ft = field_add(r->a, x, "hidden", "FORM_TYPE", NULL);
    value_add(r->a, ft, NS_ADMIN, strlen(NS_ADMIN));
    return x;
}

/* The form of the command's first stage. */
static struct xml_node *plain_form(struct adhoc_run *r)
{
    struct xml_node *x = form_new(r, "form", r->cmd->name);
    for (const struct adhoc_field *d = r->cmd->fields; d->var != NULL; d++) {
        struct xml_node *f = field_add(r->a, x, d->type, d->var, d->label);
        if (d->required)
            xml_elem_add(r->a, f, NS_XDATA, "required");
        for (size_t i = 0; d->options != NULL && d->options[i] != NULL; i++) {
            struct xml_node *o = xml_elem_add(r->a, f, NS_XDATA, "option");
            xml_attr_set(r->a, o, "label", d->options[i]);
            value_add(r->a, o, d->options[i], strlen(d->options[i]));
        }
    }
    return x;
}

static struct xml_node *field_of(const struct xml_node *x, const char *var)
{
    for (struct xml_node *f = xml_child(x, NS_XDATA, "field"); f != NULL;
         f = xml_next(f, NS_XDATA, "field")) {
        const char *v = xml_attr_get(f, "var");
        if (v != NULL && strcmp(v, var) == 0)
            return f;
    }
    return NULL;
}

/* The first value of a submitted field, or NULL. */
static const char *field_value(struct adhoc_run *r, const char *var)
{
    struct xml_node *f = field_of(r->form, var);
    return f != NULL ? xml_child_text(r->a, f, NS_XDATA, "value") : NULL;
}

/* The values of a submitted text-multi as lines; NULL when all are empty. */
static const char *field_lines(struct adhoc_run *r, const char *var)
{
    struct xml_node *f = field_of(r->form, var);
    struct buf b = BUF_INIT;
    bool first = true, any = false;
    for (struct xml_node *v = f ? xml_child(f, NS_XDATA, "value") : NULL; v != NULL;
         v = xml_next(v, NS_XDATA, "value")) {
        const char *t = xml_text(r->a, v);
        if (!first)
            buf_append_char(&b, '\n');
        buf_append_str(&b, t);
        first = false;
        any = any || t[0] != '\0';
    }
    const char *out = any ? arena_strdup(r->a, buf_cstr(&b)) : NULL;
    buf_fini(&b);
    return out;
}

/* An account on one of our domains: its normalised bare JID, or NULL (and
 * the request answered with bad-payload). */
static const char *account_of(struct adhoc_run *r, const char *s)
{
    struct jid j;
    if (s == NULL || s[0] == '\0') {
        bad_payload(r, "an account JID is required");
        return NULL;
    }
    if (jid_parse_str(r->a, s, &j, NULL) < 0 || j.local == NULL || j.resource != NULL) {
        bad_payload(r, arena_printf(r->a, "'%s' is not the bare JID of an account", s));
        return NULL;
    }
    if (!sm_is_local_domain(r->p->sm, j.domain)) {
        bad_payload(r, arena_printf(r->a, "%s is not a domain of this server", j.domain));
        return NULL;
    }
    return jid_bare(r->a, &j);
}

/* A message from the domain with this subject (may be NULL) and body. */
static struct xml_node *message_of(struct adhoc_run *r, const char *subject, const char *body)
{
    struct xml_node *m = sm_stanza_new(r->a, "message", r->p->to.domain, NULL, NULL, NULL);
    if (subject != NULL && subject[0] != '\0')
        xml_text_add(r->a, xml_elem_add(r->a, m, XML_NS_CLIENT, "subject"), subject,
                     strlen(subject));
    xml_text_add(r->a, xml_elem_add(r->a, m, XML_NS_CLIENT, "body"), body, strlen(body));
    return m;
}

/* ---- users ------------------------------------------------------------------------- */

/* A store failure ends the request with internal-server-error. */
static bool store_failed(struct adhoc_run *r, const struct store_res *res, const char *what)
{
    if (res->status == STORE_OK)
        return false;
    log_warn(&r->p->sm->lc, "%s %s: %s", what, r->jids[0], res->err.text);
    reply_error(r, XMPP_COND_INTERNAL_SERVER_ERROR, NULL, NULL);
    return true;
}

static void on_user_added(const struct store_res *res, void *arg)
{
    struct adhoc_run *r = arg;
    struct sm *sm = r->p->sm;
    if (res->status == STORE_ERR_CONFLICT) {
        reply_error(r, XMPP_COND_CONFLICT, NULL, "the account exists already");
        return;
    }
    if (store_failed(r, res, "adding user"))
        return;
    /* A cached "no such account" is not true any more. */
    struct sm_user *u = hmap_get(sm->users, r->jids[0]);
    if (u != NULL && u->state == SM_USER_MISSING)
        u->state = SM_USER_READY;
    log_notice(&sm->lc, "%s added user %s", jid_bare(r->a, &r->p->from), r->jids[0]);
    reply_done(r, arena_printf(r->a, "The account %s was added.", r->jids[0]), NULL);
}

/* The form's account and new credentials from its password (and its
 * copy, when given); false when refused (and answered). */
static bool account_and_password(struct adhoc_run *r)
{
    const char *jid = account_of(r, field_value(r, "accountjid"));
    const char *pw = field_value(r, "password");
    const char *again = field_value(r, "password-verify");
    struct err err = {0};
    if (jid == NULL)
        return false;
    if (pw == NULL || pw[0] == '\0') {
        bad_payload(r, "a password is required");
        return false;
    }
    if (again != NULL && strcmp(pw, again) != 0) {
        bad_payload(r, "the passwords do not match");
        return false;
    }
    r->rec = authreg_rec_new(r->a, pw, strlen(pw), ADHOC_ITERATIONS, sm_now_us(), &err);
    if (r->rec == NULL) {
        bad_payload(r, arena_printf(r->a, "password refused: %s", err.text));
        return false;
    }
    r->jids = arena_alloc(r->a, sizeof(*r->jids));
    r->jids[0] = jid;
    r->njids = 1;
    return true;
}

static void add_user_run(struct adhoc_run *r)
{
    if (!account_and_password(r))
        return;
    sm_pkt_keep(r->p);
    store_insert(r->p->sm->st, AUTHREG_COLL, r->jids[0], r->rec, on_user_added, r);
}

static void on_password_set(const struct store_res *res, void *arg)
{
    struct adhoc_run *r = arg;
    if (store_failed(r, res, "changing the password of"))
        return;
    log_notice(&r->p->sm->lc, "%s changed the password of %s", jid_bare(r->a, &r->p->from),
               r->jids[0]);
    reply_done(r, arena_printf(r->a, "The password of %s was changed.", r->jids[0]), NULL);
}

static void on_password_account(const struct store_res *res, void *arg)
{
    struct adhoc_run *r = arg;
    if (store_failed(r, res, "looking up"))
        return;
    if (res->value == 0)
        reply_error(r, XMPP_COND_ITEM_NOT_FOUND, NULL,
                    arena_printf(r->a, "no account %s", r->jids[0]));
    else
        store_put(r->p->sm->st, AUTHREG_COLL, r->jids[0], r->rec, on_password_set, r);
}

static void change_password_run(struct adhoc_run *r)
{
    if (!account_and_password(r))
        return;
    sm_pkt_keep(r->p);
    store_count(r->p->sm->st, AUTHREG_COLL, r->jids[0], NULL, on_password_account, r);
}

/* Ends the sessions of a deleted account (its contacts see it go
 * unavailable) and forgets what the sm caches of it (sm_user_forget), so
 * that it starts afresh should the account come back. */
static void forget_user(struct sm *sm, const char *jid)
{
    struct sm_user *u = hmap_get(sm->users, jid);
    if (u == NULL || u->state != SM_USER_READY)
        return;
    while (u->sessions != NULL) {
        struct sm_session *s = u->sessions;
        sm_presence_broadcast_unavailable(s, NULL);
        sm_session_end(s, "not-authorized", true);
    }
    sm_user_forget(u);
    u->roster_ver = 0; /* its counter is deleted too */
}

static void on_user_data_deleted(const struct store_res *res, void *arg)
{
    struct adhoc_run *r = arg;
    if (res->status != STORE_OK) {
        log_warn(&r->p->sm->lc, "deleting an account's data: %s", res->err.text);
        r->cond = XMPP_COND_INTERNAL_SERVER_ERROR;
    }
    if (--r->pending > 0)
        return;
    if (r->cond != XMPP_COND_NONE) {
        reply_error(r, r->cond, NULL, "some data could not be deleted; try again");
        return;
    }
    reply_done(r, arena_printf(r->a, "%zu account(s) deleted.", r->njids), NULL);
}

/* Every account exists: sessions end, then everything they own goes, the
 * credentials last (authreg_user_collections). */
static void delete_users(struct adhoc_run *r)
{
    struct sm *sm = r->p->sm;
    size_t ncoll = 0;
    while (authreg_user_collections[ncoll] != NULL)
        ncoll++;
    r->pending = r->njids * ncoll;
    for (size_t i = 0; i < r->njids; i++) {
        log_notice(&sm->lc, "%s deletes user %s", jid_bare(r->a, &r->p->from), r->jids[i]);
        forget_user(sm, r->jids[i]);
        for (size_t k = 0; k < ncoll; k++)
            store_delete(sm->st, authreg_user_collections[k], r->jids[i], NULL,
                         on_user_data_deleted, r);
    }
}

/* The existence check of one account of a delete-user. */
struct adhoc_check {
    struct adhoc_run *r;
    const char *jid;
};

static void on_delete_account(const struct store_res *res, void *arg)
{
    const struct adhoc_check *check = arg;
    struct adhoc_run *r = check->r;
    if (res->status != STORE_OK) {
        log_warn(&r->p->sm->lc, "looking up %s: %s", check->jid, res->err.text);
        r->cond = XMPP_COND_INTERNAL_SERVER_ERROR;
    } else if (res->value == 0 && r->missing == NULL) {
        r->missing = check->jid;
    }
    if (--r->pending > 0)
        return;
    if (r->cond != XMPP_COND_NONE)
        reply_error(r, r->cond, NULL, NULL);
    else if (r->missing != NULL)
        reply_error(r, XMPP_COND_ITEM_NOT_FOUND, NULL,
                    arena_printf(r->a, "no account %s; nothing was deleted", r->missing));
    else
        delete_users(r);
}

static void delete_user_run(struct adhoc_run *r)
{
    struct xml_node *f = field_of(r->form, "accountjids");
    r->jids = arena_alloc(r->a, ADHOC_MAX_JIDS * sizeof(*r->jids));
    for (struct xml_node *v = f ? xml_child(f, NS_XDATA, "value") : NULL; v != NULL;
         v = xml_next(v, NS_XDATA, "value")) {
        const char *jid = account_of(r, xml_text(r->a, v));
        if (jid == NULL)
            return;
        bool dup = false;
        for (size_t i = 0; i < r->njids && !dup; i++)
            dup = strcmp(r->jids[i], jid) == 0;
        if (!dup && r->njids == ADHOC_MAX_JIDS) {
            bad_payload(r, "too many accounts at once");
            return;
        }
        if (!dup)
            r->jids[r->njids++] = jid;
    }
    if (r->njids == 0) {
        bad_payload(r, "an account JID is required");
        return;
    }
    /* Nothing is deleted unless every account exists. */
    struct adhoc_check *checks = arena_alloc(r->a, r->njids * sizeof(*checks));
    sm_pkt_keep(r->p);
    r->pending = r->njids;
    for (size_t i = 0; i < r->njids; i++) {
        checks[i] = (struct adhoc_check){r, r->jids[i]};
        store_count(r->p->sm->st, AUTHREG_COLL, r->jids[i], NULL, on_delete_account, &checks[i]);
    }
}

/* ---- online users ------------------------------------------------------------------ */

static int by_jid(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The users of the domain with an available session, sorted. */
static size_t online_users(struct adhoc_run *r, const char ***out)
{
    struct sm *sm = r->p->sm;
    size_t n = 0, cap = hmap_count(sm->users);
    const char **list = arena_alloc(r->a, (cap + 1) * sizeof(*list));
    struct hmap_iter it = {0};
    void *v;
    while (n < cap && hmap_next(sm->users, &it, NULL, &v)) {
        const struct sm_user *u = v;
        const char *at = strchr(u->jid, '@');
        if (at == NULL || strcmp(at + 1, r->p->to.domain) != 0)
            continue;
        bool on = false;
        for (const struct sm_session *s = u->sessions; s != NULL && !on; s = s->next)
            on = s->available;
        if (on)
            list[n++] = u->jid;
    }
    if (n > 1)
        qsort(list, n, sizeof(*list), by_jid);
    *out = list;
    return n;
}

static void online_num_run(struct adhoc_run *r)
{
    const char **users;
    size_t n = online_users(r, &users);
    struct xml_node *x = form_new(r, "result", NULL);
    struct xml_node *f =
        field_add(r->a, x, "text-single", "onlineusersnum", "The number of online users");
    const char *num = arena_printf(r->a, "%zu", n);
    value_add(r->a, f, num, strlen(num));
    reply_done(r, NULL, x);
}

static void online_list_run(struct adhoc_run *r)
{
    const char *max = field_value(r, "max_items");
    long limit = 0;
    if (max != NULL && max[0] != '\0' && strcmp(max, "none") != 0) {
        char *end;
        limit = strtol(max, &end, 10);
        if (*end != '\0' || limit <= 0) {
            bad_payload(r, "max_items is a positive number or none");
            return;
        }
    }
    const char **users;
    size_t n = online_users(r, &users);
    if (limit > 0 && (size_t)limit < n)
        n = (size_t)limit;
    struct xml_node *x = form_new(r, "result", NULL);
    struct xml_node *f =
        field_add(r->a, x, "jid-multi", "onlineuserjids", "The list of all online users");
    for (size_t i = 0; i < n; i++)
        value_add(r->a, f, users[i], strlen(users[i]));
    reply_done(r, NULL, x);
}

/* ---- announcements and the message of the day -------------------------------------- */

static void announce_run(struct adhoc_run *r)
{
    const char *body = field_lines(r, "announcement");
    if (body == NULL) {
        bad_payload(r, "the announcement is empty");
        return;
    }
    struct xml_node *m = message_of(r, field_value(r, "subject"), body);
    size_t n = sm_motd_broadcast(r->p->sm, r->p->to.domain, r->a, m, 0);
    reply_done(r, arena_printf(r->a, "The announcement was sent to %zu session(s).", n), NULL);
}

static void on_motd_done(void *arg, enum xmpp_cond cond, const struct xml_node *motd)
{
    struct adhoc_run *r = arg;
    (void)motd;
    if (cond != XMPP_COND_NONE)
        reply_error(r, cond, NULL, NULL);
    else
        reply_done(r,
                   strcmp(r->cmd->node, "delete-motd") == 0 ? "The message of the day was deleted."
                                                            : "The message of the day was set.",
                   NULL);
}

/* set-motd sends the new MOTD to the online users at once; edit-motd
 * corrects it, shown at next logins (as announce/motd and motd/update). */
static void motd_run(struct adhoc_run *r)
{
    const char *body = field_lines(r, "motd");
    if (body == NULL) {
        bad_payload(r, "the message of the day is empty");
        return;
    }
    struct xml_node *m = message_of(r, field_value(r, "subject"), body);
    sm_pkt_keep(r->p);
    sm_motd_set(r->p->sm, r->p->to.domain, m, strcmp(r->cmd->node, "set-motd") == 0, on_motd_done,
                r);
}

static void delete_motd_run(struct adhoc_run *r)
{
    sm_pkt_keep(r->p);
    sm_motd_delete(r->p->sm, r->p->to.domain, on_motd_done, r);
}

/* The edit-motd form holds the current MOTD, one value a line. */
static void on_motd_got(void *arg, enum xmpp_cond cond, const struct xml_node *motd)
{
    struct adhoc_run *r = arg;
    if (cond != XMPP_COND_NONE) {
        session_end(r->p->sm, r->sid);
        reply_error(r, cond, NULL, NULL);
        return;
    }
    struct xml_node *x = plain_form(r);
    const char *subject = motd ? xml_child_text(r->a, motd, XML_NS_CLIENT, "subject") : NULL;
    const char *body = motd ? xml_child_text(r->a, motd, XML_NS_CLIENT, "body") : NULL;
    if (subject != NULL)
        value_add(r->a, field_of(x, "subject"), subject, strlen(subject));
    for (const char *line = body; line != NULL;) {
        const char *nl = strchr(line, '\n');
        value_add(r->a, field_of(x, "motd"), line, nl ? (size_t)(nl - line) : strlen(line));
        line = nl ? nl + 1 : NULL;
    }
    session_idle(r);
    reply_form(r, x);
}

static void edit_motd_form(struct adhoc_run *r)
{
    struct adhoc_state *st = state_of(r->p->sm);
    struct adhoc_session *s = hmap_get(st->sessions, r->sid);
    s->busy = true; /* until its form is out */
    sm_pkt_keep(r->p);
    sm_motd_get(r->p->sm, r->p->to.domain, on_motd_got, r);
}

/* ---- the commands ------------------------------------------------------------------ */

static const char *const max_items[] = {"25", "50", "75", "100", "150", "200", "none", NULL};

static const struct adhoc_field add_user_fields[] = {
    {"accountjid", "jid-single", "The Jabber ID for the account to be added", true, NULL},
    {"password", "text-private", "The password for this account", true, NULL},
    {"password-verify", "text-private", "Retype password", true, NULL},
    {NULL, NULL, NULL, false, NULL},
};
static const struct adhoc_field delete_user_fields[] = {
    {"accountjids", "jid-multi", "The Jabber ID(s) to delete", true, NULL},
    {NULL, NULL, NULL, false, NULL},
};
static const struct adhoc_field password_fields[] = {
    {"accountjid", "jid-single", "The Jabber ID for this account", true, NULL},
    {"password", "text-private", "The password for this account", true, NULL},
    {NULL, NULL, NULL, false, NULL},
};
static const struct adhoc_field online_fields[] = {
    {"max_items", "list-single", "Maximum number of items to show", false, max_items},
    {NULL, NULL, NULL, false, NULL},
};
static const struct adhoc_field announce_fields[] = {
    {"subject", "text-single", "Subject", false, NULL},
    {"announcement", "text-multi", "Announcement", true, NULL},
    {NULL, NULL, NULL, false, NULL},
};
static const struct adhoc_field motd_fields[] = {
    {"subject", "text-single", "Subject", false, NULL},
    {"motd", "text-multi", "Message of the Day", true, NULL},
    {NULL, NULL, NULL, false, NULL},
};

/* get-online-users is the node older clients and servers use for the list. */
static const struct adhoc_cmd commands[] = {
    {"add-user", "Add a User", add_user_fields, NULL, add_user_run, NULL},
    {"delete-user", "Delete a User", delete_user_fields, NULL, delete_user_run, NULL},
    {"change-user-password", "Change User Password", password_fields, NULL, change_password_run,
     NULL},
    {"get-online-users-num", "Get Number of Online Users", NULL, NULL, online_num_run, NULL},
    {"get-online-users-list", "Get List of Online Users", online_fields, NULL, online_list_run,
     NULL},
    {"get-online-users", "Get List of Online Users", online_fields, NULL, online_list_run, NULL},
    {"announce", "Send Announcement to Online Users", announce_fields, NULL, announce_run, "motd"},
    {"set-motd", "Set Message of the Day", motd_fields, NULL, motd_run, "motd"},
    {"edit-motd", "Edit Message of the Day", motd_fields, edit_motd_form, motd_run, "motd"},
    {"delete-motd", "Delete Message of the Day", NULL, NULL, delete_motd_run, "motd"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static bool cmd_enabled(const struct sm *sm, const struct adhoc_cmd *cmd)
{
    return cmd->feature == NULL || sm_feature_enabled(sm, cmd->feature);
}

static const struct adhoc_cmd *find_cmd(const struct sm *sm, const char *node)
{
    static const char prefix[] = NS_ADMIN "#";
    if (node == NULL || strncmp(node, prefix, sizeof(prefix) - 1) != 0)
        return NULL;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(node + sizeof(prefix) - 1, commands[i].node) == 0)
            return cmd_enabled(sm, &commands[i]) ? &commands[i] : NULL;
    }
    return NULL;
}

/* ---- execution --------------------------------------------------------------------- */

/* A new execution: the form, or (no form) the command at once. */
static void start(struct adhoc_run *r, const char *action)
{
    bool at_once = r->cmd->fields == NULL;
    if (strcmp(action, "execute") != 0 && !(at_once && strcmp(action, "complete") == 0)) {
        cmd_error(r->p, XMPP_COND_BAD_REQUEST, "bad-action", "no session to continue");
        return;
    }
    if (at_once) {
        r->sid = random_sid(r);
        r->cmd->run(r);
        return;
    }
    if (hmap_count(state_of(r->p->sm)->sessions) >= ADHOC_MAX_SESSIONS) {
        cmd_error(r->p, XMPP_COND_RESOURCE_CONSTRAINT, NULL, "too many open command sessions");
        return;
    }
    r->sid = session_new(r);
    if (r->cmd->form != NULL)
        r->cmd->form(r);
    else
        reply_form(r, plain_form(r));
}

/* The next request of an executing session: its submission or its end. */
static void resume(struct adhoc_run *r, const char *sid, const char *action,
                   const struct xml_node *c)
{
    struct adhoc_session *s = hmap_get(state_of(r->p->sm)->sessions, sid);
    if (s == NULL || s->cmd != r->cmd || strcmp(s->owner, jid_full(r->a, &r->p->from)) != 0) {
        cmd_error(r->p, XMPP_COND_BAD_REQUEST, "bad-sessionid", NULL);
        return;
    }
    if (s->busy) {
        cmd_error(r->p, XMPP_COND_UNEXPECTED_REQUEST, NULL, "the session is busy");
        return;
    }
    r->sid = arena_strdup(r->a, s->id);
    if (strcmp(action, "cancel") == 0) {
        session_end(r->p->sm, r->sid);
        sm_iq_result(r->p, command_el(r, "canceled"));
        return;
    }
    if (strcmp(action, "execute") != 0 && strcmp(action, "complete") != 0) {
        cmd_error(r->p, XMPP_COND_BAD_REQUEST, "bad-action", NULL);
        return;
    }
    /* XEP-0050 §4.4: a form of type cancel counts as submitted */
    r->form = xml_child(c, NS_XDATA, "x");
    const char *type = r->form ? xml_attr_get(r->form, "type") : NULL;
    if (type == NULL || (strcmp(type, "submit") != 0 && strcmp(type, "cancel") != 0)) {
        cmd_error(r->p, XMPP_COND_BAD_REQUEST, "bad-payload", "submit the form");
        return;
    }
    s->busy = true;
    s->expires = sm_now_us() + ADHOC_TTL_US;
    r->cmd->run(r);
}

static bool known_action(const char *action)
{
    static const char *const actions[] = {"execute", "cancel", "prev", "next", "complete"};
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcmp(action, actions[i]) == 0)
            return true;
    }
    return false;
}

static void on_command(struct sm_pkt *p, struct xml_node *c)
{
    if (strcmp(p->type, "set") != 0 || strcmp(c->name, "command") != 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "commands are executed with an iq set");
        return;
    }
    if (!sm_is_admin(p->sm, jid_bare(p->a, &p->from))) {
        cmd_error(p, XMPP_COND_FORBIDDEN, NULL, "the commands are for administrators");
        return;
    }
    struct adhoc_run *r = arena_alloc(p->a, sizeof(*r));
    r->p = p;
    r->a = p->a;
    r->node = xml_attr_get(c, "node");
    r->cmd = find_cmd(p->sm, r->node);
    const char *action = xml_attr_get(c, "action");
    const char *sid = xml_attr_get(c, "sessionid");
    if (r->cmd == NULL) {
        cmd_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL, NULL);
        return;
    }
    if (action == NULL)
        action = "execute";
    if (!known_action(action)) {
        cmd_error(p, XMPP_COND_BAD_REQUEST, "malformed-action", NULL);
        return;
    }
    sweep(p->sm, NULL);
    if (sid == NULL)
        start(r, action);
    else
        resume(r, sid, action, c);
}

/* ---- discovery --------------------------------------------------------------------- */

static void disco_identity(struct sm_pkt *p, struct xml_node *q, const char *type, const char *name)
{
    struct xml_node *id = xml_elem_add(p->a, q, NS_INFO, "identity");
    xml_attr_set(p->a, id, "category", "automation");
    xml_attr_set(p->a, id, "type", type);
    xml_attr_set(p->a, id, "name", name);
}

/* XEP-0050 §2.2: the command list (empty for who may not use it), and
 * each command's node. */
static enum sm_verdict on_disco_node(struct sm_pkt *p, struct xml_node *req)
{
    const char *node = xml_attr_get(req, "node");
    bool list = strcmp(node, NS_COMMANDS) == 0;
    const struct adhoc_cmd *cmd = find_cmd(p->sm, node);
    if (p->to.local != NULL || !p->has_to || (!list && cmd == NULL))
        return SM_PASS;
    bool admin = sm_is_admin(p->sm, jid_bare(p->a, &p->from));
    struct xml_node *q = xml_elem_new(p->a, req->ns, "query");
    xml_attr_set(p->a, q, "node", node);
    if (strcmp(req->ns, NS_INFO) == 0 && list) {
        disco_identity(p, q, "command-list", "Commands");
    } else if (strcmp(req->ns, NS_INFO) == 0) {
        if (!admin) {
            sm_error(p, XMPP_COND_FORBIDDEN, NULL);
            return SM_HANDLED;
        }
        disco_identity(p, q, "command-node", cmd->name);
        xml_attr_set(p->a, xml_elem_add(p->a, q, NS_INFO, "feature"), "var", NS_COMMANDS);
        xml_attr_set(p->a, xml_elem_add(p->a, q, NS_INFO, "feature"), "var", NS_XDATA);
    } else {
        for (size_t i = 0; admin && list && i < NCOMMANDS; i++) {
            if (!cmd_enabled(p->sm, &commands[i]))
                continue;
            struct xml_node *it = xml_elem_add(p->a, q, NS_ITEMS, "item");
            xml_attr_set(p->a, it, "jid", p->to.domain);
            xml_attr_set(p->a, it, "node", arena_printf(p->a, NS_ADMIN "#%s", commands[i].node));
            xml_attr_set(p->a, it, "name", commands[i].name);
        }
    }
    sm_iq_result(p, q);
    return SM_HANDLED;
}

/* ---- the feature ------------------------------------------------------------------- */

static int init(struct sm *sm, struct err *err)
{
    (void)err;
    struct adhoc_state *st = xcalloc(1, sizeof(*st));
    st->sessions = hmap_new();
    sm_feature_set_state(sm, &sm_feat_adhoc, st);
    return 0;
}

static void fini(struct sm *sm)
{
    struct adhoc_state *st = state_of(sm);
    if (st == NULL)
        return;
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(st->sessions, &it, NULL, &v))
        session_free(v);
    hmap_free(&st->sessions);
    free(st);
    sm_feature_set_state(sm, &sm_feat_adhoc, NULL);
}

/* The sessions a client opened end with it. */
static void on_session_end(struct sm_session *s)
{
    sweep(s->user->sm, s->jid);
}

static const struct sm_iq_handler iqs[] = {
    {NS_COMMANDS, SM_IQ_SERVER, on_command},
};
static const char *const server_features[] = {NS_COMMANDS, NULL};

const struct sm_feature sm_feat_adhoc = {
    .name = "adhoc",
    .order = 55,
    .server_features = server_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = init,
    .fini = fini,
    .on_session_end = on_session_end,
    .on_disco_node = on_disco_node,
};
