/* SPDX-License-Identifier: MIT */
/* Message Archive Management (XEP-0313, urn:xmpp:mam:2) for the user's own
 * archive: messages with a body are archived as they are sent and received
 * (the received copy is stamped with its XEP-0359 stanza-id), within the
 * user's preferences (XEP-0441), and queried with the data form (with,
 * start, end, before-id, after-id, ids), RSM paging (XEP-0059), flipped
 * pages and the archive metadata.
 *
 * Storage: the "archive" collection holds one row a message (id: 24 random
 * hex digits; ts; with_jid: the peer's bare JID, the account's own for a
 * message to itself; stanza: the message as it arrived). The preferences
 * are the row of the "private" collection whose ns is
 * 'urn:xmpp:mam:2#prefs', its xml a <prefs xmlns='urn:xmpp:mam:2'/>. */
#include "sm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "xml.h"

#define NS_MAM       "urn:xmpp:mam:2"
#define NS_MAM_EXT   "urn:xmpp:mam:2#extended"
#define NS_PREFS_KEY "urn:xmpp:mam:2#prefs"
#define NS_SID       "urn:xmpp:sid:0"
#define NS_RSM       "http://jabber.org/protocol/rsm"
#define NS_XDATA     "jabber:x:data"
#define NS_FORWARD   "urn:xmpp:forward:0"
#define NS_DELAY     "urn:xmpp:delay"
#define NS_HINTS     "urn:xmpp:hints"

#define KEY_MAX       512
#define ID_LEN        24  /* hex digits: 96 random bits */
#define MAX_PAGE      100 /* results a query returns at most */
#define SCAN_BATCH    100 /* rows read at a time when rows are checked one by one */
#define MAX_PREFS_JID 500 /* JIDs in each preference list */

enum mam_default {
    MAM_ALWAYS = 0,
    MAM_NEVER,
    MAM_ROSTER,
};
static const char *const default_names[] = {"always", "never", "roster", NULL};

struct mam_prefs {
    enum mam_default def;
    char **always, **never; /* normalised JIDs */
    size_t nalways, nnever;
};

/* A message waiting for its user's preferences to be read. */
struct mam_wait {
    struct sm_pkt *p;
    char *key; /* "c2s/sid" of the sending session; NULL for a received message */
    struct mam_wait *next;
};

/* The preferences of a user with sessions (or with messages waiting). */
struct mam_user {
    char *jid;
    bool loaded;
    struct mam_prefs prefs; /* heap copies */
    struct mam_wait *head, *tail;
};

struct mam_load {
    struct sm *sm;
    char jid[];
};

extern const struct sm_feature sm_feat_mam;

/* bare JID -> struct mam_user: the feature's state (sm_feature_state),
 * made by init, freed by fini (then NULL, which store callbacks still to
 * come read as "shutting down"). */
static struct hmap *users_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_mam);
}

/* ---- small helpers --------------------------------------------------------- */

static void key_of(const struct sm_session *s, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", s->c2s, s->sid);
}

static void new_id(char out[ID_LEN + 1])
{
    char rnd[COMP_STREAM_ID_LEN + 1];
    comp_stream_id(rnd);
    memcpy(out, rnd, ID_LEN);
    out[ID_LEN] = '\0';
}

/* The normalised form of a JID string, or NULL. */
static char *norm_jid(struct arena *a, const char *s)
{
    struct jid j;
    if (s == NULL || jid_parse_str(a, s, &j, NULL) < 0)
        return NULL;
    return jid_full(a, &j);
}

/* XEP-0359 §4: a stanza-id claiming to come from the archive was not made
 * here; it goes, whoever put it in. */
static void strip_ids(struct sm_pkt *p, const char *by)
{
    struct xml_node *c = xml_child(p->st, NS_SID, "stanza-id");
    while (c != NULL) {
        struct xml_node *next = xml_next(c, NS_SID, "stanza-id");
        const char *v = norm_jid(p->a, xml_attr_get(c, "by"));
        if (v != NULL && strcmp(v, by) == 0)
            xml_remove(c);
        c = next;
    }
}

/* XEP-0313 §7.1.1: chat and normal messages with a body (or the XEP-0334
 * <store/> hint); never errors, groupchat or headlines, nor what the
 * sender asked not to be stored. */
static bool archivable(const struct sm_pkt *p)
{
    if (!strcmp(p->type, "error") || !strcmp(p->type, "groupchat") || !strcmp(p->type, "headline"))
        return false;
    if (xml_child(p->st, NS_HINTS, "no-store") != NULL ||
        xml_child(p->st, NS_HINTS, "no-permanent-store") != NULL)
        return false;
    return xml_child(p->st, XML_NS_CLIENT, "body") != NULL ||
           xml_child(p->st, NS_HINTS, "store") != NULL;
}

/* The peer's bare JID when p is a message to archive, else NULL. A message
 * to the account itself is archived once, as it is received. */
static const char *candidate(struct sm_pkt *p)
{
    if (!archivable(p))
        return NULL;
    if (p->route == SM_TO_USER) {
        if (!sm_allow_in(p->user, SM_MESSAGE, jid_full(p->a, &p->from)))
            return NULL;
        return jid_bare(p->a, &p->from);
    }
    if (!p->has_to || jid_bare_eq(&p->to, &p->from))
        return NULL;
    if (!sm_allow_out(p->user, SM_MESSAGE, jid_full(p->a, &p->to)))
        return NULL;
    return jid_bare(p->a, &p->to);
}

/* XEP-0441 §2.3: a listed full JID matches as is, a listed bare JID
 * matches any resource. */
static bool listed(char *const *list, size_t n, const char *full, const char *bare)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], strchr(list[i], '/') != NULL ? full : bare) == 0)
            return true;
    }
    return false;
}

/* Whether the preferences let a message with peer in; <never/> wins over
 * <always/>. */
static bool wanted(const struct mam_prefs *pr, struct sm_user *u, const struct jid *peer,
                   struct arena *a)
{
    const char *full = jid_full(a, peer), *bare = jid_bare(a, peer);
    if (listed(pr->never, pr->nnever, full, bare))
        return false;
    if (listed(pr->always, pr->nalways, full, bare))
        return true;
    if (pr->def == MAM_ROSTER) {
        const struct sm_item *it = sm_user_item(u, bare);
        return it != NULL && it->in_roster;
    }
    return pr->def == MAM_ALWAYS;
}

/* ---- preferences: XML ------------------------------------------------------- */

static int jid_list(struct arena *a, const struct xml_node *prefs, const char *name, char ***list_r,
                    size_t *n_r, struct err *err)
{
    const struct xml_node *l = xml_child(prefs, NS_MAM, name);
    size_t n = 0;
    for (const struct xml_node *j = l ? xml_child(l, NS_MAM, "jid") : NULL; j != NULL;
         j = xml_next(j, NS_MAM, "jid"))
        n++;
    if (n > MAX_PREFS_JID)
        return err_set(err, XMPP_COND_POLICY_VIOLATION, "at most %d JIDs in <%s/>", MAX_PREFS_JID,
                       name);
    char **list = arena_alloc(a, (n + 1) * sizeof(*list));
    size_t k = 0;
    for (const struct xml_node *j = l ? xml_child(l, NS_MAM, "jid") : NULL; j != NULL;
         j = xml_next(j, NS_MAM, "jid")) {
        char *v = norm_jid(a, xml_text(a, j));
        if (v == NULL)
            return err_set(err, XMPP_COND_JID_MALFORMED, "a bad JID in <%s/>", name);
        list[k++] = v;
    }
    *list_r = list;
    *n_r = k;
    return 0;
}

/* Reads a <prefs/> element into r (strings in a); -1 with err. */
static int prefs_parse(struct arena *a, const struct xml_node *n, struct mam_prefs *r,
                       struct err *err)
{
    const char *def = xml_attr_get(n, "default");
    int k = 0;
    while (def != NULL && default_names[k] != NULL && strcmp(default_names[k], def) != 0)
        k++;
    if (def == NULL || default_names[k] == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST, "default is always, never or roster");
    r->def = (enum mam_default)k;
    if (jid_list(a, n, "always", &r->always, &r->nalways, err) < 0 ||
        jid_list(a, n, "never", &r->never, &r->nnever, err) < 0)
        return -1;
    return 0;
}

static struct xml_node *prefs_xml(struct arena *a, const struct mam_prefs *pr)
{
    struct xml_node *n = xml_elem_new(a, NS_MAM, "prefs");
    xml_attr_set(a, n, "default", default_names[pr->def]);
    struct xml_node *al = xml_elem_add(a, n, NS_MAM, "always");
    for (size_t i = 0; i < pr->nalways; i++) {
        struct xml_node *j = xml_elem_add(a, al, NS_MAM, "jid");
        xml_text_add(a, j, pr->always[i], strlen(pr->always[i]));
    }
    struct xml_node *nv = xml_elem_add(a, n, NS_MAM, "never");
    for (size_t i = 0; i < pr->nnever; i++) {
        struct xml_node *j = xml_elem_add(a, nv, NS_MAM, "jid");
        xml_text_add(a, j, pr->never[i], strlen(pr->never[i]));
    }
    return n;
}

/* The preferences stored in a row of "private"; the defaults when there is
 * none (or it cannot be read). */
static void prefs_from_row(struct arena *a, const struct store_rec *row, struct mam_prefs *r)
{
    struct err err = {0};
    const char *xml = row ? store_rec_get_str(row, "xml", NULL) : NULL;
    struct xml_node *n = xml ? xml_parse_fragment(a, xml) : NULL;
    struct mam_prefs pr = {.def = MAM_ALWAYS};
    if (n != NULL && xml_is(n, NS_MAM, "prefs") && prefs_parse(a, n, &pr, &err) == 0)
        *r = pr;
    else
        *r = (struct mam_prefs){.def = MAM_ALWAYS};
}

static char **strv_dup(char *const *v, size_t n)
{
    char **d = xcalloc(n + 1, sizeof(*d));
    for (size_t i = 0; i < n; i++)
        d[i] = xstrdup(v[i]);
    return d;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static void prefs_set_heap(struct mam_prefs *dst, const struct mam_prefs *src)
{
    strv_free(dst->always, dst->nalways);
    strv_free(dst->never, dst->nnever);
    dst->def = src->def;
    dst->always = strv_dup(src->always, src->nalways);
    dst->nalways = src->nalways;
    dst->never = strv_dup(src->never, src->nnever);
    dst->nnever = src->nnever;
}

/* ---- preferences: the per-user cache ---------------------------------------- */

static void entry_free(struct mam_user *mu)
{
    while (mu->head != NULL) {
        struct mam_wait *w = mu->head;
        mu->head = w->next;
        sm_pkt_free(w->p);
        free(w->key);
        free(w);
    }
    strv_free(mu->prefs.always, mu->prefs.nalways);
    strv_free(mu->prefs.never, mu->prefs.nnever);
    free(mu->jid);
    free(mu);
}

static void entry_free_cb(void *v)
{
    entry_free(v);
}

/* Forgets a user's preferences once nothing needs them (no session but
 * `ending`, nothing waiting), or at once when force is set. */
static void entry_release(struct sm *sm, struct mam_user *mu, const struct sm_session *ending,
                          bool force)
{
    if (!force && (!mu->loaded || mu->head != NULL))
        return; /* the load's completion decides */
    const struct sm_user *u = hmap_get(sm->users, mu->jid);
    for (const struct sm_session *s = u ? u->sessions : NULL; s != NULL && !force; s = s->next) {
        if (s != ending)
            return;
    }
    hmap_del(users_of(sm), mu->jid);
    entry_free(mu);
}

static void continue_pipeline(struct sm_pkt *p)
{
    size_t i = 0;
    while (i < p->sm->nfeatures && p->sm->features[i] != &sm_feat_mam)
        i++;
    for (i++; i < p->sm->nfeatures; i++) {
        const struct sm_feature *f = p->sm->features[i];
        if (f->on_stanza != NULL && f->on_stanza(p) == SM_HANDLED)
            return;
    }
    if (p->route == SM_TO_USER)
        sm_deliver(p);
    else if (p->has_to)
        sm_send(p->sm, p->st, p->origin);
}

static void archive(struct sm_pkt *p, const char *with);

/* A waiting message goes on: archived or not, then the rest of the
 * pipeline as sm.c would have run it. */
static void resume(struct mam_user *mu, struct mam_wait *w)
{
    struct sm_pkt *p = w->p;
    struct sm *sm = p->sm;
    p->kept = false;
    if (w->key != NULL && hmap_get(sm->sessions, w->key) != p->sess) {
        /* The sender's session ended meanwhile: the message still goes. */
        sm_pkt_set_session(p, NULL);
        p->user = NULL;
        if (p->has_to)
            sm_send(sm, p->st, p->origin);
        sm_pkt_free(p);
        return;
    }
    if (w->key == NULL && hmap_get(sm->users, mu->jid) != p->user) {
        p->user = NULL; /* unloaded meanwhile: from the start again */
        sm_dispatch(sm, p);
        return;
    }
    const char *with = candidate(p);
    const struct jid *peer = p->route == SM_TO_USER ? &p->from : &p->to;
    if (with != NULL && wanted(&mu->prefs, p->user, peer, p->a))
        archive(p, with);
    continue_pipeline(p);
    if (!p->kept)
        sm_pkt_free(p);
}

static void on_prefs_loaded(const struct store_res *res, void *arg)
{
    struct mam_load *l = arg;
    struct mam_user *mu = users_of(l->sm) ? hmap_get(users_of(l->sm), l->jid) : NULL;
    bool ok = res->status == STORE_OK;
    if (mu != NULL) {
        if (!ok) {
            log_error(&l->sm->lc, "reading the archive preferences of %s: %s", l->jid,
                      res->err.text);
        } else {
            struct mam_prefs pr;
            prefs_from_row(res->arena, res->nrows ? res->rows[0] : NULL, &pr);
            prefs_set_heap(&mu->prefs, &pr);
        }
        mu->loaded = true;
        struct mam_wait *w = mu->head;
        mu->head = mu->tail = NULL;
        while (w != NULL) {
            struct mam_wait *next = w->next;
            resume(mu, w);
            free(w->key);
            free(w);
            w = next;
        }
        entry_release(l->sm, mu, NULL, !ok); /* a failed read is not kept */
    }
    free(l);
}

/* The user's cache entry, made (and its preferences read) when absent. */
static struct mam_user *entry_get(struct sm *sm, const char *bare)
{
    struct mam_user *mu = hmap_get(users_of(sm), bare);
    if (mu != NULL)
        return mu;
    mu = xcalloc(1, sizeof(*mu));
    mu->jid = xstrdup(bare);
    hmap_put(users_of(sm), bare, mu);
    size_t len = strlen(bare);
    struct mam_load *l = xmalloc(sizeof(*l) + len + 1);
    l->sm = sm;
    memcpy(l->jid, bare, len + 1);
    struct arena *a = arena_new(256);
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "ns", NS_PREFS_KEY);
    store_get(sm->st, "private", bare, f, on_prefs_loaded, l);
    arena_free(&a);
    return mu;
}

static enum sm_verdict wait_prefs(struct mam_user *mu, struct sm_pkt *p)
{
    struct mam_wait *w = xcalloc(1, sizeof(*w));
    w->p = p;
    if (p->route == SM_FROM_SESSION) {
        char key[KEY_MAX];
        key_of(p->sess, key, sizeof(key));
        w->key = xstrdup(key);
    }
    if (mu->tail != NULL)
        mu->tail->next = w;
    else
        mu->head = w;
    mu->tail = w;
    sm_pkt_keep(p);
    return SM_HANDLED;
}

/* ---- archiving ----------------------------------------------------------------- */

static void on_archived(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status == STORE_OK || users_of(sm) == NULL)
        return;
    if (res->status == STORE_ERR_INPUT)
        log_warn(&sm->lc, "a message was not archived: %s", res->err.text);
    else
        log_error(&sm->lc, "archiving a message: %s", res->err.text);
}

/* Stores p as it is and stamps it with its stanza-id (XEP-0313 §3.4): the
 * recipient's copy keeps it; on a sent message the carbons feature copies
 * it into the <sent/> copies and takes it out before the message leaves. */
static void archive(struct sm_pkt *p, const char *with)
{
    const char *owner = p->user->jid;
    char id[ID_LEN + 1];
    new_id(id);
    struct buf b = BUF_INIT;
    xml_serialize(&b, p->st, XML_NS_CLIENT);
    struct store_rec *r = store_rec_new(p->a);
    store_rec_str(p->a, r, "id", id);
    store_rec_time(p->a, r, "ts", sm_now_us());
    store_rec_str(p->a, r, "with_jid", with);
    store_rec_xml(p->a, r, "stanza", buf_cstr(&b));
    buf_fini(&b);
    store_insert(p->sm->st, "archive", owner, r, on_archived, p->sm);
    struct xml_node *sid = xml_elem_add(p->a, p->st, NS_SID, "stanza-id");
    xml_attr_set(p->a, sid, "by", owner);
    xml_attr_set(p->a, sid, "id", id);
}

/* Messages to the user (received) and from its sessions (sent). While the
 * user's preferences are being read, its messages wait, in order. */
static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind != SM_MESSAGE || p->user == NULL || p->user->state != SM_USER_READY)
        return SM_PASS;
    if (p->route != SM_TO_USER && p->route != SM_FROM_SESSION)
        return SM_PASS;
    strip_ids(p, p->user->jid);
    const char *with = candidate(p);
    struct mam_user *mu = hmap_get(users_of(p->sm), p->user->jid);
    if (with == NULL && (mu == NULL || mu->loaded))
        return SM_PASS;
    if (mu == NULL)
        mu = entry_get(p->sm, p->user->jid);
    if (!mu->loaded)
        return wait_prefs(mu, p);
    const struct jid *peer = p->route == SM_TO_USER ? &p->from : &p->to;
    if (wanted(&mu->prefs, p->user, peer, p->a))
        archive(p, with);
    return SM_PASS;
}

static void on_expired(const struct store_res *res, void *arg)
{
    struct sm *sm = arg;
    if (res->status != STORE_OK && users_of(sm) != NULL)
        log_error(&sm->lc, "expiring archived messages: %s", res->err.text);
}

static void on_session_start(struct sm_session *s)
{
    struct sm *sm = s->user->sm;
    (void)entry_get(sm, s->user->jid);
    /* retention (<sm><archive-days>): what is older goes as the owner comes */
    long keep_days = sm->cfg->archive_days;
    if (keep_days > 0) {
        int64_t before = sm_now_us() - (int64_t)keep_days * 86400 * 1000000;
        store_expire(sm->st, "archive", s->user->jid, before, on_expired, sm);
    }
}

static void on_session_end(struct sm_session *s)
{
    struct mam_user *mu =
        users_of(s->user->sm) ? hmap_get(users_of(s->user->sm), s->user->jid) : NULL;
    if (mu != NULL)
        entry_release(s->user->sm, mu, s, false);
}

/* ---- preferences: the iq ---------------------------------------------------- */

struct prefs_set {
    struct sm_pkt *p;
    struct mam_prefs prefs; /* in p->a */
};

static void on_prefs_read(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    if (users_of(p->sm) == NULL) {
        sm_pkt_free(p);
        return;
    }
    if (res->status != STORE_OK) {
        log_error(&p->sm->lc, "reading archive preferences: %s", res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    } else {
        struct mam_prefs pr;
        prefs_from_row(p->a, res->nrows ? res->rows[0] : NULL, &pr);
        sm_iq_result(p, prefs_xml(p->a, &pr));
    }
    sm_pkt_free(p);
}

static void on_prefs_saved(const struct store_res *res, void *arg)
{
    struct prefs_set *ps = arg;
    struct sm_pkt *p = ps->p;
    if (users_of(p->sm) == NULL) {
        sm_pkt_free(p);
        return;
    }
    if (res->status != STORE_OK) {
        log_error(&p->sm->lc, "saving archive preferences: %s", res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    } else {
        struct mam_user *mu = hmap_get(users_of(p->sm), jid_bare(p->a, &p->from));
        if (mu != NULL && mu->loaded)
            prefs_set_heap(&mu->prefs, &ps->prefs);
        sm_iq_result(p, prefs_xml(p->a, &ps->prefs));
    }
    sm_pkt_free(p);
}

/* XEP-0441 §2.1: get answers what is stored, set stores and answers what
 * was applied. */
static void on_prefs(struct sm_pkt *p, struct xml_node *req)
{
    const char *owner = p->user->jid;
    struct store_rec *r = store_rec_new(p->a);
    store_rec_str(p->a, r, "ns", NS_PREFS_KEY);
    if (strcmp(p->type, "get") == 0) {
        sm_pkt_keep(p);
        store_get(p->sm->st, "private", owner, r, on_prefs_read, p);
        return;
    }
    struct prefs_set *ps = arena_alloc(p->a, sizeof(*ps));
    struct err err = {0};
    if (prefs_parse(p->a, req, &ps->prefs, &err) < 0) {
        sm_error(p, err.cond, err.text);
        return;
    }
    ps->p = p;
    struct buf b = BUF_INIT;
    xml_serialize(&b, prefs_xml(p->a, &ps->prefs), NULL);
    store_rec_xml(p->a, r, "xml", buf_cstr(&b));
    buf_fini(&b);
    sm_pkt_keep(p);
    store_put(p->sm->st, "private", owner, r, on_prefs_saved, ps);
}

/* ---- queries: parsing ---------------------------------------------------------- */

/* One archived message as a query sees it; strings in the query's arena
 * (or, before they are kept, in a store result's). */
struct mam_row {
    const char *id, *with, *stanza;
    int64_t ts, seq;
};

enum anchor_side {
    SIDE_AFTER = 0, /* after-id, RSM <after/>: results follow it */
    SIDE_BEFORE,    /* before-id, RSM <before/>: results precede it */
    SIDE_ID,        /* one of 'ids' */
};

struct mam_query {
    struct sm_pkt *p; /* the iq, kept until it is answered */
    char key[KEY_MAX];
    const char *owner, *queryid;
    const char *with_bare, *with_full; /* with_full: only with a resource */
    struct store_rec *filter;          /* with_jid = with_bare, or NULL */
    int64_t start, end;                /* 0 = open */
    const char *anchors[2][2];         /* [side][k]: ids given as bounds */
    size_t nanchors[2];
    const char **ids;
    size_t nids;
    struct mam_row *id_rows;
    size_t max;         /* page size */
    bool reverse, flip; /* RSM <before/>: the page ends where the range ends */
    /* progress */
    int64_t bound[2]; /* seq of the tightest after/before anchor; -1 none */
    const char *bound_id[2];
    size_t pending;
    enum xmpp_cond cond;
    const char *cursor; /* the next batch continues after (before) it */
    size_t batch;
    struct mam_row *page; /* traversal order, at most max + 1 */
    size_t npage;
};

static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Fractional seconds (".d+") as µs, and the precision they were given
 * in; t moves past them. */
static int64_t fraction(const char **t, int64_t *unit_r)
{
    int64_t us = 0, unit = 1000000;
    for ((*t)++; **t >= '0' && **t <= '9'; (*t)++) {
        if (unit > 1) {
            unit /= 10;
            us += unit * (**t - '0');
        }
    }
    *unit_r = unit;
    return us;
}

/* An XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.s+](Z|±hh:mm)) in µs, and
 * the precision it was given in (1 s, or that of its fraction). */
static int parse_stamp(const char *s, int64_t *us_r, int64_t *unit_r)
{
    if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 60)
        return -1;
    const char *t = s + 19;
    *unit_r = 1000000;
    int64_t us = *t == '.' && t[1] >= '0' && t[1] <= '9' ? fraction(&t, unit_r) : 0;
    long off = 0;
    if (*t == 'Z') {
        t++;
    } else if ((*t == '+' || *t == '-') && strlen(t) == 6 && t[3] == ':' && digits(t + 1, 2) >= 0 &&
               digits(t + 4, 2) >= 0) {
        off = (digits(t + 1, 2) * 60L + digits(t + 4, 2)) * (*t == '-' ? -1 : 1);
        t += 6;
    } else {
        return -1;
    }
    if (*t != '\0')
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    *us_r = ((int64_t)timegm(&tm) - off * 60) * 1000000 + us;
    return 0;
}

/* The one value of a form field (NULL when it has none); -1 if several. */
static int single_value(struct arena *a, const struct xml_node *f, const char **v_r)
{
    const struct xml_node *v = xml_child(f, NS_XDATA, "value");
    if (v != NULL && xml_next(v, NS_XDATA, "value") != NULL)
        return -1;
    *v_r = v ? xml_text(a, v) : NULL;
    return 0;
}

static int add_anchor(struct mam_query *q, enum anchor_side side, const char *id, struct err *err)
{
    if (id == NULL || id[0] == '\0')
        return err_set(err, XMPP_COND_BAD_REQUEST, "an empty archive id");
    q->anchors[side][q->nanchors[side]++] = id;
    return 0;
}

static int field_ids(struct mam_query *q, const struct xml_node *f, struct err *err)
{
    struct arena *a = q->p->a;
    size_t n = 0;
    for (const struct xml_node *v = xml_child(f, NS_XDATA, "value"); v != NULL;
         v = xml_next(v, NS_XDATA, "value"))
        n++;
    if (n > MAX_PAGE)
        return err_set(err, XMPP_COND_POLICY_VIOLATION, "at most %d ids", MAX_PAGE);
    q->ids = arena_alloc(a, (n + 1) * sizeof(*q->ids));
    q->nids = 0;
    for (const struct xml_node *v = xml_child(f, NS_XDATA, "value"); v != NULL;
         v = xml_next(v, NS_XDATA, "value")) {
        const char *id = xml_text(a, v);
        if (id[0] == '\0')
            return err_set(err, XMPP_COND_BAD_REQUEST, "an empty archive id");
        q->ids[q->nids++] = id;
    }
    return 0;
}

static int field_with(struct mam_query *q, const char *v, struct err *err)
{
    struct jid j;
    if (jid_parse_str(q->p->a, v, &j, NULL) < 0)
        return err_set(err, XMPP_COND_BAD_REQUEST, "'with' is not a JID");
    q->with_bare = jid_bare(q->p->a, &j);
    q->with_full = j.resource ? jid_full(q->p->a, &j) : NULL;
    q->filter = store_rec_new(q->p->a);
    store_rec_str(q->p->a, q->filter, "with_jid", q->with_bare);
    return 0;
}

/* One field of the query form (XEP-0313 §4.1). */
static int form_field(struct mam_query *q, const struct xml_node *f, bool *typed, struct err *err)
{
    const char *var = xml_attr_get(f, "var"), *v;
    if (var == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST, "a form field without var");
    if (strcmp(var, "ids") == 0)
        return field_ids(q, f, err);
    if (single_value(q->p->a, f, &v) < 0)
        return err_set(err, XMPP_COND_BAD_REQUEST, "field '%s' has several values", var);
    if (strcmp(var, "FORM_TYPE") == 0) {
        *typed = v != NULL && strcmp(v, NS_MAM) == 0;
        return *typed ? 0 : err_set(err, XMPP_COND_BAD_REQUEST, "FORM_TYPE is not " NS_MAM);
    }
    bool known = !strcmp(var, "with") || !strcmp(var, "start") || !strcmp(var, "end") ||
                 !strcmp(var, "after-id") || !strcmp(var, "before-id");
    if (!known)
        return err_set(err, XMPP_COND_FEATURE_NOT_IMPLEMENTED, "no field '%s'", var);
    if (v == NULL)
        return 0; /* an empty field filters nothing */
    if (strcmp(var, "with") == 0)
        return field_with(q, v, err);
    if (strcmp(var, "start") == 0 || strcmp(var, "end") == 0) {
        /* an end covers the whole of its last unit: "12:00:05Z" ends at
         * 12:00:05.999999, so a message's own delay stamp includes it */
        int64_t us, unit;
        if (parse_stamp(v, &us, &unit) < 0)
            return err_set(err, XMPP_COND_BAD_REQUEST, "'%s' is not an XEP-0082 DateTime", var);
        if (var[0] == 's')
            q->start = us;
        else
            q->end = us + unit - 1;
        return 0;
    }
    if (q->nanchors[var[0] == 'a' ? SIDE_AFTER : SIDE_BEFORE] > 0)
        return err_set(err, XMPP_COND_BAD_REQUEST, "'%s' given twice", var);
    return add_anchor(q, var[0] == 'a' ? SIDE_AFTER : SIDE_BEFORE, v, err);
}

static int parse_form(struct mam_query *q, const struct xml_node *x, struct err *err)
{
    const char *type = xml_attr_get(x, "type");
    if (type == NULL || strcmp(type, "submit") != 0)
        return err_set(err, XMPP_COND_BAD_REQUEST, "the query form is of type submit");
    bool typed = false;
    for (const struct xml_node *f = xml_child(x, NS_XDATA, "field"); f != NULL;
         f = xml_next(f, NS_XDATA, "field")) {
        if (form_field(q, f, &typed, err) < 0)
            return -1;
    }
    if (!typed)
        return err_set(err, XMPP_COND_BAD_REQUEST, "the form has no FORM_TYPE " NS_MAM);
    return 0;
}

/* XEP-0059: <max/>, <after/>, <before/> (empty: the last page). */
static int parse_rsm(struct mam_query *q, const struct xml_node *set, struct err *err)
{
    struct arena *a = q->p->a;
    if (xml_child(set, NS_RSM, "index") != NULL)
        return err_set(err, XMPP_COND_FEATURE_NOT_IMPLEMENTED, "no paging by index");
    const char *max = xml_child_text(a, set, NS_RSM, "max");
    if (max != NULL) {
        char *end;
        unsigned long n = strtoul(max, &end, 10);
        if (max[0] < '0' || max[0] > '9' || *end != '\0')
            return err_set(err, XMPP_COND_BAD_REQUEST, "<max/> is not a number");
        q->max = n < MAX_PAGE ? n : MAX_PAGE;
    }
    const char *after = xml_child_text(a, set, NS_RSM, "after");
    if (after != NULL && add_anchor(q, SIDE_AFTER, after, err) < 0)
        return -1;
    const char *before = xml_child_text(a, set, NS_RSM, "before");
    if (before != NULL) {
        q->reverse = true;
        if (before[0] != '\0' && add_anchor(q, SIDE_BEFORE, before, err) < 0)
            return -1;
    }
    return 0;
}

static int parse_query(struct mam_query *q, const struct xml_node *req, struct err *err)
{
    q->queryid = xml_attr_get(req, "queryid");
    q->max = MAX_PAGE;
    q->bound[SIDE_AFTER] = q->bound[SIDE_BEFORE] = -1;
    if (xml_attr_get(req, "node") != NULL)
        return err_set(err, XMPP_COND_FEATURE_NOT_IMPLEMENTED, "no pubsub archive here");
    const struct xml_node *x = xml_child(req, NS_XDATA, "x");
    if (x != NULL && parse_form(q, x, err) < 0)
        return -1;
    const struct xml_node *set = xml_child(req, NS_RSM, "set");
    if (set != NULL && parse_rsm(q, set, err) < 0)
        return -1;
    q->flip = xml_child(req, NS_MAM, "flip-page") != NULL;
    return 0;
}

/* ---- queries: reading and answering -------------------------------------------- */

static void row_read(const struct store_rec *r, struct mam_row *out)
{
    out->id = store_rec_get_str(r, "id", "");
    out->with = store_rec_get_str(r, "with_jid", "");
    out->stanza = store_rec_get_str(r, "stanza", "");
    out->ts = store_rec_get_int(r, "ts", 0);
    out->seq = store_rec_get_int(r, "seq", -1);
}

static void row_keep(struct arena *a, const struct mam_row *src, struct mam_row *dst)
{
    dst->id = arena_strdup(a, src->id);
    dst->with = arena_strdup(a, src->with);
    dst->stanza = arena_strdup(a, src->stanza);
    dst->ts = src->ts;
    dst->seq = src->seq;
}

/* A 'with' that names a resource matches the message's to or from. */
static bool peer_matches(const char *stanza, const char *full)
{
    struct arena *a = arena_new(1024);
    struct xml_node *st = xml_parse_fragment(a, stanza);
    const char *from = st ? norm_jid(a, xml_attr_get(st, "from")) : NULL;
    const char *to = st ? norm_jid(a, xml_attr_get(st, "to")) : NULL;
    bool ok = (from && !strcmp(from, full)) || (to && !strcmp(to, full));
    arena_free(&a);
    return ok;
}

static bool row_matches(const struct mam_query *q, const struct mam_row *r)
{
    if (q->with_bare != NULL && strcmp(r->with, q->with_bare) != 0)
        return false;
    if ((q->start && r->ts < q->start) || (q->end && r->ts > q->end))
        return false;
    if (q->bound[SIDE_AFTER] >= 0 && r->seq <= q->bound[SIDE_AFTER])
        return false;
    if (q->bound[SIDE_BEFORE] >= 0 && r->seq >= q->bound[SIDE_BEFORE])
        return false;
    return q->with_full == NULL || peer_matches(r->stanza, q->with_full);
}

/* Whether r lies past the far bound in the direction of travel. */
static bool beyond(const struct mam_query *q, const struct mam_row *r)
{
    if (q->reverse)
        return q->bound[SIDE_AFTER] >= 0 && r->seq <= q->bound[SIDE_AFTER];
    return q->bound[SIDE_BEFORE] >= 0 && r->seq >= q->bound[SIDE_BEFORE];
}

/* Takes rows (in time order) into the page in the direction of travel.
 * True when the page is settled: max + 1 rows (so more exist), the far
 * bound reached, or the rows exhausted (complete). */
static bool consume(struct mam_query *q, const struct mam_row *rows, size_t n, bool complete)
{
    for (size_t k = 0; k < n; k++) {
        const struct mam_row *r = &rows[q->reverse ? n - 1 - k : k];
        if (beyond(q, r))
            return true;
        if (!row_matches(q, r))
            continue;
        row_keep(q->p->a, r, &q->page[q->npage++]);
        if (q->npage > q->max)
            return true;
    }
    if (n > 0)
        q->cursor = arena_strdup(q->p->a, rows[q->reverse ? 0 : n - 1].id);
    return complete;
}

static void send_result(struct sm_session *s, const struct mam_query *q, const struct mam_row *r,
                        struct arena *a)
{
    struct xml_node *m = sm_stanza_new(a, "message", q->owner, s->jid, NULL, NULL);
    struct xml_node *res = xml_elem_add(a, m, NS_MAM, "result");
    if (q->queryid != NULL)
        xml_attr_set(a, res, "queryid", q->queryid);
    xml_attr_set(a, res, "id", r->id);
    struct xml_node *fwd = xml_elem_add(a, res, NS_FORWARD, "forwarded");
    char stamp[40];
    sm_stamp(r->ts, stamp, sizeof(stamp));
    xml_attr_set(a, xml_elem_add(a, fwd, NS_DELAY, "delay"), "stamp", stamp);
    struct xml_node *st = xml_parse_fragment(a, r->stanza);
    if (st != NULL)
        xml_append(fwd, st);
    else
        log_warn(&s->user->sm->lc, "archived message %s of %s is damaged", r->id, q->owner);
    /* never queued offline should the session's c2s vanish */
    xml_elem_add(a, m, NS_HINTS, "no-store");
    sm_session_write(s, m, NULL);
}

static struct xml_node *fin_xml(struct mam_query *q, const struct mam_row *first,
                                const struct mam_row *last, bool complete)
{
    struct arena *a = q->p->a;
    struct xml_node *fin = xml_elem_new(a, NS_MAM, "fin");
    xml_attr_set(a, fin, "complete", complete ? "true" : "false");
    struct xml_node *set = xml_elem_add(a, fin, NS_RSM, "set");
    if (first != NULL) {
        struct xml_node *f = xml_elem_add(a, set, NS_RSM, "first");
        xml_text_add(a, f, first->id, strlen(first->id));
        struct xml_node *l = xml_elem_add(a, set, NS_RSM, "last");
        xml_text_add(a, l, last->id, strlen(last->id));
    }
    return fin;
}

/* The results, in time order (newest first when flipped), then <fin/>. */
static void answer(struct mam_query *q)
{
    struct sm_pkt *p = q->p;
    struct sm_session *s = hmap_get(p->sm->sessions, q->key);
    size_t n = q->npage < q->max ? q->npage : q->max;
    if (s != NULL) {
        struct arena *a = arena_new(4096);
        for (size_t k = 0; k < n; k++) {
            size_t t = q->flip ? n - 1 - k : k;    /* time order index */
            size_t i = q->reverse ? n - 1 - t : t; /* page index */
            send_result(s, q, &q->page[i], a);
            arena_reset(a);
        }
        arena_free(&a);
        const struct mam_row *first = n ? &q->page[q->reverse ? n - 1 : 0] : NULL;
        const struct mam_row *last = n ? &q->page[q->reverse ? 0 : n - 1] : NULL;
        sm_iq_result(p, fin_xml(q, first, last, q->npage <= q->max));
    }
    sm_pkt_free(p);
}

static void query_failed(struct mam_query *q, const struct store_res *res)
{
    if (res->status == STORE_ERR_INPUT && res->err.cond == XMPP_COND_ITEM_NOT_FOUND) {
        sm_error(q->p, XMPP_COND_ITEM_NOT_FOUND, res->err.text);
    } else {
        log_error(&q->p->sm->lc, "querying the archive of %s: %s", q->owner, res->err.text);
        sm_error(q->p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    }
    sm_pkt_free(q->p);
}

static void next_batch(struct mam_query *q);

static void on_batch(const struct store_res *res, void *arg)
{
    struct mam_query *q = arg;
    if (users_of(q->p->sm) == NULL) {
        sm_pkt_free(q->p);
        return;
    }
    if (res->status != STORE_OK) {
        query_failed(q, res);
        return;
    }
    struct mam_row *rows = arena_alloc(res->arena, (res->nrows + 1) * sizeof(*rows));
    for (size_t i = 0; i < res->nrows; i++)
        row_read(res->rows[i], &rows[i]);
    if (consume(q, rows, res->nrows, res->complete))
        answer(q);
    else
        next_batch(q);
}

static void next_batch(struct mam_query *q)
{
    struct store_range r = {
        .filter = q->filter,
        .start = q->start,
        .end = q->end,
        .limit = q->batch,
        .reverse = q->reverse,
    };
    if (q->reverse)
        r.before_id = q->cursor;
    else
        r.after_id = q->cursor;
    store_range(q->p->sm->st, "archive", q->owner, &r, on_batch, q);
}

static int cmp_seq(const void *x, const void *y)
{
    const struct mam_row *a = x, *b = y;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* 'ids': the rows were read one by one; they are filtered and paged here. */
static void ids_page(struct mam_query *q)
{
    qsort(q->id_rows, q->nids, sizeof(*q->id_rows), cmp_seq);
    size_t n = 0;
    for (size_t i = 0; i < q->nids; i++) {
        if (n == 0 || q->id_rows[n - 1].seq != q->id_rows[i].seq)
            q->id_rows[n++] = q->id_rows[i];
    }
    (void)consume(q, q->id_rows, n, true);
    answer(q);
}

struct mam_lookup {
    struct mam_query *q;
    enum anchor_side side;
    size_t i;
};

/* Every id the query names was looked up; the query can run. */
static void lookups_done(struct mam_query *q)
{
    if (q->cond != XMPP_COND_NONE) {
        sm_error(q->p, q->cond, q->cond == XMPP_COND_ITEM_NOT_FOUND ? "no such archive id" : NULL);
        sm_pkt_free(q->p);
    } else if (q->ids != NULL) {
        ids_page(q);
    } else {
        q->cursor = q->bound_id[q->reverse ? SIDE_BEFORE : SIDE_AFTER];
        next_batch(q);
    }
}

static void on_lookup(const struct store_res *res, void *arg)
{
    struct mam_lookup *l = arg;
    struct mam_query *q = l->q;
    struct mam_row r;
    if (res->status != STORE_OK) {
        if (users_of(q->p->sm) != NULL)
            log_error(&q->p->sm->lc, "reading the archive of %s: %s", q->owner, res->err.text);
        q->cond = XMPP_COND_INTERNAL_SERVER_ERROR;
    } else if (res->nrows == 0) {
        if (q->cond == XMPP_COND_NONE)
            q->cond = XMPP_COND_ITEM_NOT_FOUND;
    } else {
        row_read(res->rows[0], &r);
        if (l->side == SIDE_ID) {
            row_keep(q->p->a, &r, &q->id_rows[l->i]);
        } else if (q->bound[l->side] < 0 ||
                   (l->side == SIDE_AFTER) == (r.seq > q->bound[l->side])) {
            q->bound[l->side] = r.seq;
            q->bound_id[l->side] = q->anchors[l->side][l->i];
        }
    }
    if (--q->pending > 0)
        return;
    if (users_of(q->p->sm) == NULL)
        sm_pkt_free(q->p);
    else
        lookups_done(q);
}

static void lookup(struct mam_query *q, enum anchor_side side, size_t i, const char *id)
{
    struct arena *a = q->p->a;
    struct mam_lookup *l = arena_alloc(a, sizeof(*l));
    l->q = q;
    l->side = side;
    l->i = i;
    struct store_rec *f = store_rec_new(a);
    store_rec_str(a, f, "id", id);
    q->pending++;
    store_get(q->p->sm->st, "archive", q->owner, f, on_lookup, l);
}

/* One anchor on the near side is what store_range does by itself; any
 * other mix of anchors, and 'ids', are looked up first to know where each
 * lies in the archive's order. */
static void query_start(struct mam_query *q)
{
    size_t near = q->nanchors[q->reverse ? SIDE_BEFORE : SIDE_AFTER];
    size_t far = q->nanchors[q->reverse ? SIDE_AFTER : SIDE_BEFORE];
    q->page = arena_alloc(q->p->a, (q->max + 1) * sizeof(*q->page));
    q->batch = q->with_full != NULL && q->max < SCAN_BATCH ? SCAN_BATCH : q->max + 1;
    if (q->ids == NULL && far == 0 && near <= 1) {
        q->cursor = near ? q->anchors[q->reverse ? SIDE_BEFORE : SIDE_AFTER][0] : NULL;
        next_batch(q);
        return;
    }
    q->pending = 1; /* held until every lookup is submitted */
    if (q->ids != NULL) {
        q->id_rows = arena_alloc(q->p->a, (q->nids + 1) * sizeof(*q->id_rows));
        for (size_t i = 0; i < q->nids; i++)
            lookup(q, SIDE_ID, i, q->ids[i]);
    }
    for (int side = SIDE_AFTER; side <= SIDE_BEFORE; side++) {
        for (size_t i = 0; i < q->nanchors[side]; i++)
            lookup(q, (enum anchor_side)side, i, q->anchors[side][i]);
    }
    if (--q->pending == 0)
        lookups_done(q);
}

static void on_query(struct sm_pkt *p, struct xml_node *req)
{
    struct mam_query *q = arena_alloc(p->a, sizeof(*q));
    struct err err = {0};
    q->p = p;
    q->owner = p->user->jid;
    key_of(p->sess, q->key, sizeof(q->key));
    if (parse_query(q, req, &err) < 0) {
        sm_error(p, err.cond, err.text);
        return;
    }
    sm_pkt_keep(p);
    query_start(q);
}

/* ---- the form, the metadata and the iq ------------------------------------------ */

static void form_add(struct arena *a, struct xml_node *x, const char *var, const char *type)
{
    struct xml_node *f = xml_elem_add(a, x, NS_XDATA, "field");
    xml_attr_set(a, f, "type", type);
    xml_attr_set(a, f, "var", var);
    if (strcmp(var, "FORM_TYPE") == 0) {
        struct xml_node *v = xml_elem_add(a, f, NS_XDATA, "value");
        xml_text_add(a, v, NS_MAM, strlen(NS_MAM));
    } else if (strcmp(var, "ids") == 0) {
        struct xml_node *val =
            xml_elem_add(a, f, "http://jabber.org/protocol/xdata-validate", "validate");
        xml_attr_set(a, val, "datatype", "xs:string");
        xml_elem_add(a, val, NULL, "open");
    }
}

/* XEP-0313 §4.1.5: the fields a query may use. */
static void on_form(struct sm_pkt *p)
{
    struct arena *a = p->a;
    struct xml_node *qn = xml_elem_new(a, NS_MAM, "query");
    struct xml_node *x = xml_elem_add(a, qn, NS_XDATA, "x");
    xml_attr_set(a, x, "type", "form");
    form_add(a, x, "FORM_TYPE", "hidden");
    form_add(a, x, "with", "jid-single");
    form_add(a, x, "start", "text-single");
    form_add(a, x, "end", "text-single");
    form_add(a, x, "before-id", "text-single");
    form_add(a, x, "after-id", "text-single");
    form_add(a, x, "ids", "list-multi");
    sm_iq_result(p, qn);
}

struct mam_meta {
    struct sm_pkt *p;
    struct xml_node *md;
    bool newest; /* the second step */
};

static void meta_step(struct mam_meta *m);

static void on_meta(const struct store_res *res, void *arg)
{
    struct mam_meta *m = arg;
    struct sm_pkt *p = m->p;
    if (users_of(p->sm) == NULL || res->status != STORE_OK) {
        if (users_of(p->sm) != NULL) {
            log_error(&p->sm->lc, "reading archive metadata: %s", res->err.text);
            sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        }
        sm_pkt_free(p);
        return;
    }
    if (res->nrows > 0) {
        struct mam_row r;
        row_read(res->rows[0], &r);
        char stamp[40];
        sm_stamp(r.ts, stamp, sizeof(stamp));
        struct xml_node *e = xml_elem_add(p->a, m->md, NS_MAM, m->newest ? "end" : "start");
        xml_attr_set(p->a, e, "id", r.id);
        xml_attr_set(p->a, e, "timestamp", stamp);
    }
    if (m->newest || res->nrows == 0) {
        sm_iq_result(p, m->md);
        sm_pkt_free(p);
        return;
    }
    m->newest = true;
    meta_step(m);
}

static void meta_step(struct mam_meta *m)
{
    struct store_range r = {.limit = 1, .reverse = m->newest};
    store_range(m->p->sm->st, "archive", m->p->user->jid, &r, on_meta, m);
}

/* XEP-0313 §5: the first and the last message of the archive. */
static void on_metadata(struct sm_pkt *p)
{
    struct mam_meta *m = arena_alloc(p->a, sizeof(*m));
    m->p = p;
    m->md = xml_elem_new(p->a, NS_MAM, "metadata");
    sm_pkt_keep(p);
    meta_step(m);
}

static void on_iq(struct sm_pkt *p, struct xml_node *req)
{
    if (p->route != SM_FROM_SESSION || p->sess == NULL) {
        sm_error(p, XMPP_COND_FORBIDDEN, "an archive is for its owner only");
        return;
    }
    bool get = strcmp(p->type, "get") == 0;
    if (xml_is(req, NS_MAM, "prefs"))
        on_prefs(p, req);
    else if (xml_is(req, NS_MAM, "query") && get)
        on_form(p);
    else if (xml_is(req, NS_MAM, "query"))
        on_query(p, req);
    else if (xml_is(req, NS_MAM, "metadata") && get)
        on_metadata(p);
    else
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
}

static int mam_init(struct sm *sm, struct err *err)
{
    (void)err;
    sm_feature_map_new(sm, &sm_feat_mam);
    return 0;
}

static void mam_fini(struct sm *sm)
{
    sm_feature_map_free(sm, &sm_feat_mam, entry_free_cb);
}

static const struct sm_iq_handler iqs[] = {
    {NS_MAM, SM_IQ_ACCOUNT | SM_IQ_USER, on_iq},
};
static const char *const account_features[] = {NS_MAM, NS_MAM_EXT, NS_SID, NULL};

/* After the features that may refuse a message (so that only what is
 * delivered is archived), before carbons (which copy the stanza-id). */
const struct sm_feature sm_feat_mam = {
    .name = "mam",
    .order = 80,
    .account_features = account_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = mam_init,
    .fini = mam_fini,
    .on_stanza = on_stanza,
    .on_session_start = on_session_start,
    .on_session_end = on_session_end,
};
