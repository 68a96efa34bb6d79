/* SPDX-License-Identifier: MIT */
/* Sessions and their links to the c2s (docs/protocol.md §8): start with
 * the resource conflict policy, end, sequence numbers and cumulative acks,
 * unacknowledged envelopes kept and replayed, and what happens when a c2s
 * goes away. */
#include "sm.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "sm_link.h"
#include "xml.h"

#define ACK_DELAY_MS 20 /* protocol.md §8: a lone ack goes within 20 ms */

/* An envelope sent to a c2s and not yet acknowledged. */
struct sm_unacked {
    uint64_t seq;
    char *stanza; /* the inner stanza, serialised in jabber:client */
    char *origin;
    struct sm_unacked *next;
};

/* "c2s/sid" into out (truncated to len - 1 bytes, as snprintf would):
 * computed for every envelope, so without a format string. */
static void key_of(char *out, size_t len, const char *c2s, const char *sid)
{
    size_t cl = strlen(c2s), sl = strlen(sid);
    if (cl + 1 + sl >= len) {
        snprintf(out, len, "%s/%s", c2s, sid);
        return;
    }
    memcpy(out, c2s, cl);
    out[cl] = '/';
    memcpy(out + cl + 1, sid, sl + 1);
}

/* The origin of envelope seq of session sid (docs/protocol.md §8):
 * "sid:seq" into out, truncated as snprintf would. */
static void origin_of(char *out, size_t len, const char *sid, uint64_t seq)
{
    char digits[24];
    size_t i = sizeof(digits);
    do {
        digits[--i] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq != 0);
    size_t sl = strlen(sid), dl = sizeof(digits) - i;
    if (sl + 1 + dl >= len) {
        snprintf(out, len, "%s:%.*s", sid, (int)dl, digits + i);
        return;
    }
    memcpy(out, sid, sl);
    out[sl] = ':';
    memcpy(out + sl + 1, digits + i, dl);
    out[sl + 1 + dl] = '\0';
}

static void ack_unlink(struct sm_session *s)
{
    if (!s->ack_owed)
        return;
    s->ack_owed = false;
    if (s->ack_prev != NULL)
        s->ack_prev->ack_next = s->ack_next;
    else
        s->user->sm->acks = s->ack_next;
    if (s->ack_next != NULL)
        s->ack_next->ack_prev = s->ack_prev;
    s->ack_prev = s->ack_next = NULL;
}

/* Serialises and sends envelope number seq of s (ack piggybacked). */
static void send_envelope(struct sm_session *s, uint64_t seq, const char *inner, const char *origin)
{
    struct sm *sm = s->user->sm;
    ack_unlink(s); /* this envelope carries the ack */
    struct buf b = BUF_INIT;
    buf_reserve(&b, (inner ? strlen(inner) : 0) + 256); /* one allocation */
    buf_append_str(&b, "<route xmlns='" PL_NS_ROUTER "'");
    xml_append_attr(&b, "from", sm->name);
    xml_append_attr(&b, "to", s->c2s);
    xml_append_attr(&b, "sid", s->sid);
    if (seq > 0)
        xml_append_attr_u64(&b, "seq", seq);
    xml_append_attr_u64(&b, "ack", s->in_seq);
    if (origin != NULL)
        xml_append_attr(&b, "o", origin);
    if (inner == NULL) {
        buf_append_str(&b, "/>");
    } else {
        buf_append_char(&b, '>');
        buf_append_str(&b, inner);
        buf_append_str(&b, "</route>");
    }
    /* A failed send is not lost: the envelope stays unacked and is
     * replayed when the c2s or the router link returns. */
    (void)sm_link_send(sm, b.data, b.len);
    buf_fini(&b);
}

/* Queues inner (serialised, heap; the queue takes it) for the session's
 * c2s and sends it. */
static void session_send_owned(struct sm_session *s, char *inner, const char *origin)
{
    struct sm_unacked *u = xcalloc(1, sizeof(*u));
    u->seq = ++s->out_seq;
    u->stanza = inner;
    u->origin = origin ? xstrdup(origin) : NULL;
    if (s->unacked_tail != NULL)
        s->unacked_tail->next = u;
    else
        s->unacked_head = u;
    s->unacked_tail = u;
    s->nunacked++;
    send_envelope(s, u->seq, u->stanza, u->origin);
}

static void session_send_raw(struct sm_session *s, const char *inner, const char *origin)
{
    session_send_owned(s, xstrdup(inner), origin);
}

void sm_session_write(struct sm_session *s, const struct xml_node *st, const char *origin)
{
    if (s->ended)
        return; /* a feature finishing late for a session that is gone */
    struct buf b = BUF_INIT;
    buf_reserve(&b, 1024); /* most stanzas: one allocation, not four */
    xml_serialize(&b, st, PL_NS_ROUTER);
    log_debug(&s->user->sm->lc, "to %s: %s", s->jid, buf_cstr(&b));
    size_t len = 0;
    char *inner = buf_detach(&b, &len);
    /* kept until acked: shrunk to its size (in place, no copy) */
    session_send_owned(s, xrealloc(inner, len + 1), origin);
    s->user->sm->stats.delivered++;
}

static void on_ack_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sm *sm = arg;
    (void)fd;
    (void)what;
    while (sm->acks != NULL)
        send_envelope(sm->acks, 0, NULL, NULL); /* unlinks it */
}

/* The ack for a handled envelope rides on the next envelope to the c2s
 * (a delivery to the same client, often within the same read) or goes
 * alone after ACK_DELAY_MS: one ack envelope per stanza would be a third
 * of the router's and the c2s's traffic under load. */
static void owe_ack(struct sm_session *s)
{
    struct sm *sm = s->user->sm;
    if (s->ack_owed)
        return;
    s->ack_owed = true;
    s->ack_prev = NULL;
    s->ack_next = sm->acks;
    if (sm->acks != NULL)
        sm->acks->ack_prev = s;
    sm->acks = s;
    if (sm->ack_timer == NULL)
        sm->ack_timer = evtimer_new(sm->base, on_ack_timer, sm);
    if (!evtimer_pending(sm->ack_timer, NULL)) {
        struct timeval tv = {0, ACK_DELAY_MS * 1000};
        evtimer_add(sm->ack_timer, &tv);
    }
}

void sm_acks_free(struct sm *sm)
{
    while (sm->acks != NULL)
        ack_unlink(sm->acks);
    if (sm->ack_timer != NULL)
        event_free(sm->ack_timer);
    sm->ack_timer = NULL;
}

static void ack_upto(struct sm_session *s, uint64_t ack)
{
    while (s->unacked_head != NULL && s->unacked_head->seq <= ack) {
        struct sm_unacked *u = s->unacked_head;
        s->unacked_head = u->next;
        if (s->unacked_head == NULL)
            s->unacked_tail = NULL;
        free(u->stanza);
        free(u->origin);
        free(u);
        s->nunacked--;
    }
    if (ack > s->out_acked)
        s->out_acked = ack;
}

static void replay(struct sm_session *s)
{
    for (struct sm_unacked *u = s->unacked_head; u != NULL; u = u->next)
        send_envelope(s, u->seq, u->stanza, u->origin);
}

static void session_destroy(struct sm_session *s)
{
    free(s->jid);
    free(s->res);
    free(s->c2s);
    free(s->sid);
    free(s->presence);
    free(s);
}

void sm_session_free(struct sm_session *s)
{
    struct sm_user *u = s->user;
    char key[512];
    key_of(key, sizeof(key), s->c2s, s->sid);
    hmap_del(u->sm->sessions, key);
    for (struct sm_session **pp = &u->sessions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    ack_upto(s, UINT64_MAX);
    ack_unlink(s);
    if (s->directed != NULL)
        hmap_free(&s->directed);
    s->ended = true;
    s->available = false;
    if (s->refs == 0)
        session_destroy(s);
}

void sm_pkt_set_session(struct sm_pkt *p, struct sm_session *s)
{
    struct sm_session *old = p->sess;
    p->sess = s;
    if (s != NULL)
        s->refs++;
    if (old != NULL && --old->refs == 0 && old->ended)
        session_destroy(old);
}

/* Moves unacknowledged messages of a session that cannot be reached any
 * more to the offline queue (chat and normal ones; RFC 6121 §8.5.2). */
static void unacked_to_offline(struct sm_session *s)
{
    struct sm *sm = s->user->sm;
    for (struct sm_unacked *u = s->unacked_head; u != NULL; u = u->next) {
        struct arena *a = arena_new(1024);
        struct xml_node *st = xml_parse_fragment(a, u->stanza);
        struct sm_pkt *q = NULL;
        if (st != NULL && strcmp(st->name, "message") == 0)
            q = sm_pkt_from_node(sm, st, SM_TO_USER); /* copies st */
        arena_free(&a);
        if (q == NULL)
            continue;
        q->user = s->user;
        if (u->origin != NULL)
            q->origin = arena_strdup(q->a, u->origin);
        sm_offline_store(q);
        if (!q->kept)
            sm_pkt_free(q);
    }
}

void sm_session_end(struct sm_session *s, const char *reason, bool tell_c2s)
{
    struct sm *sm = s->user->sm;
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i]->on_session_end != NULL)
            sm->features[i]->on_session_end(s);
    }
    if (tell_c2s) {
        struct buf b = BUF_INIT;
        buf_append_str(&b, "<end xmlns='" SM_NS_SESSION "'");
        if (reason != NULL)
            buf_printf(&b, " reason='%s'", reason);
        buf_append_str(&b, "/>");
        session_send_raw(s, b.data, NULL);
        buf_fini(&b);
    } else {
        unacked_to_offline(s);
    }
    log_info(&sm->lc, "session %s ended%s%s", s->jid, reason ? ": " : "", reason ? reason : "");
    struct sm_user *u = s->user;
    sm_session_free(s);
    if (u->anonymous && u->sessions == NULL)
        sm_user_forget(u);
}

static void send_started(struct sm_session *s, bool fresh)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<started xmlns='" SM_NS_SESSION "'");
    xml_append_attr(&b, "jid", s->jid);
    if (fresh)
        buf_append_str(&b, " fresh='1'");
    buf_append_str(&b, "/>");
    session_send_raw(s, b.data, NULL);
    buf_fini(&b);
}

/* A reply that is not part of any session yet (a refused start). */
static void refuse(struct sm *sm, const char *c2s, const char *sid, enum xmpp_cond cond)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "<route xmlns='" PL_NS_ROUTER "' from='%s' to='%s' sid='%s'>"
             "<failed xmlns='" SM_NS_SESSION "' cond='%s'/></route>",
             sm->name, c2s, sid, xmpp_cond_name(cond));
    (void)sm_link_send(sm, buf, strlen(buf));
}

static char *random_resource(void)
{
    char id[COMP_STREAM_ID_LEN + 1];
    comp_stream_id(id);
    char *r = xmalloc(sizeof("parley-") + 12);
    memcpy(r, "parley-", 7);
    memcpy(r + 7, id, 12);
    r[19] = '\0';
    return r;
}

static void session_create(struct sm *sm, struct sm_user *u, const char *c2s, const char *sid,
                           struct jid *j, bool resume, uint64_t handled, struct arena *a)
{
    char *res = xstrdup(j->resource);
    struct sm_session *old = sm_user_session(u, res);
    if (old != NULL) {
        switch ((enum sm_conflict)sm->cfg->resource_conflict) {
        case SM_CONFLICT_REPLACE:
            sm_presence_broadcast_unavailable(old, "Replaced by new connection");
            sm_session_end(old, "conflict", true);
            break;
        case SM_CONFLICT_REFUSE:
            free(res);
            refuse(sm, c2s, sid, XMPP_COND_CONFLICT);
            return;
        case SM_CONFLICT_GENERATE:
            free(res);
            res = random_resource();
            break;
        }
    }
    struct sm_session *s = xcalloc(1, sizeof(*s));
    s->user = u;
    s->res = res;
    s->jid = arena_printf(a, "%s/%s", u->jid, res);
    s->jid = xstrdup(s->jid);
    s->c2s = xstrdup(c2s);
    s->sid = xstrdup(sid);
    s->next = u->sessions;
    u->sessions = s;
    char key[512];
    key_of(key, sizeof(key), c2s, sid);
    hmap_put(sm->sessions, key, s);
    s->in_seq = handled; /* acked in <started/> */
    send_started(s, resume);
    log_info(&sm->lc, "session %s started on %s", s->jid, c2s);
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i]->on_session_start != NULL)
            sm->features[i]->on_session_start(s);
    }
}

/* A start waits for the user to be loaded: it runs as a pkt. */
static void on_start(struct sm *sm, const char *c2s, const char *sid, uint64_t seq,
                     const struct xml_node *start)
{
    struct sm_session *s;
    char key[512];
    key_of(key, sizeof(key), c2s, sid);
    bool resume = xml_attr_get(start, "resume") != NULL;
    const char *next = xml_attr_get(start, "next");
    uint64_t handled = resume && next ? strtoull(next, NULL, 10) - 1 : seq;
    if ((s = hmap_get(sm->sessions, key)) != NULL) {
        /* Resumed after the router or the c2s's link came back: what we
         * sent and was not acknowledged goes first, then the new base. */
        s->c2s_down = false;
        replay(s);
        send_started(s, false);
        return;
    }
    struct arena *a = arena_new(512);
    struct jid j;
    const char *jid = xml_attr_get(start, "jid");
    if (jid == NULL || jid_parse_str(a, jid, &j, NULL) < 0 || j.local == NULL ||
        j.resource == NULL || !sm_is_local_domain(sm, j.domain)) {
        refuse(sm, c2s, sid, XMPP_COND_JID_MALFORMED);
        arena_free(&a);
        return;
    }
    struct sm_user *u = sm_user_get(sm, jid_bare(a, &j));
    if (u->state == SM_USER_LOADING) {
        /* Come back when loaded: wrap as a pkt whose resume re-enters here. */
        sm_start_wait(sm, u, c2s, sid, seq, start);
        arena_free(&a);
        return;
    }
    if (u->state == SM_USER_MISSING && xml_attr_get(start, "anonymous") != NULL) {
        /* SASL ANONYMOUS: no account; the user lives as long as its
         * sessions and leaves nothing stored (docs/protocol.md §8). */
        u->state = SM_USER_READY;
        u->anonymous = true;
    }
    if (u->state == SM_USER_MISSING) {
        refuse(sm, c2s, sid, XMPP_COND_NOT_AUTHORIZED);
        arena_free(&a);
        return;
    }
    session_create(sm, u, c2s, sid, &j, resume, handled, a);
    arena_free(&a);
}

static void resume_start(struct sm_pkt *p)
{
    struct sm *sm = p->sm;
    const struct xml_node *env = p->st;
    const char *seq = xml_attr_get(env, "seq");
    on_start(sm, xml_attr_get(env, "from"), xml_attr_get(env, "sid"),
             seq ? strtoull(seq, NULL, 10) : 0, xml_child(env, SM_NS_SESSION, "start"));
    sm_pkt_free(p);
}

void sm_start_wait(struct sm *sm, struct sm_user *u, const char *c2s, const char *sid, uint64_t seq,
                   const struct xml_node *start)
{
    struct sm_pkt *p = sm_pkt_new(sm);
    struct xml_node *env = xml_elem_new(p->a, PL_NS_ROUTER, "route");
    xml_attr_set(p->a, env, "from", c2s);
    xml_attr_set(p->a, env, "sid", sid);
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64, seq);
    xml_attr_set(p->a, env, "seq", num);
    xml_append(env, xml_node_copy(p->a, start));
    p->st = env;
    p->resume = resume_start;
    sm_user_wait(u, p);
}

static void resume_envelope(struct sm_pkt *p)
{
    sm_session_on_envelope(p->sm, p->st, NULL, 0);
    sm_pkt_free(p);
}

/* An envelope for a session whose start waits for its user to load goes
 * behind that start, so nothing is refused and no seq is skipped. */
static bool wait_for_start(struct sm *sm, const struct xml_node *env)
{
    const char *to = xml_attr_get(env, "to");
    struct arena *a = arena_new(512);
    struct jid j;
    struct sm_user *u = NULL;
    if (to != NULL && jid_parse_str(a, to, &j, NULL) == 0 && j.local != NULL)
        u = hmap_get(sm->users, jid_bare(a, &j));
    arena_free(&a);
    if (u == NULL || u->state != SM_USER_LOADING)
        return false;
    struct sm_pkt *p = sm_pkt_new(sm);
    p->st = xml_node_copy(p->a, env);
    p->resume = resume_envelope;
    sm_user_wait(u, p);
    return true;
}

static uint64_t attr_u64(const struct xml_node *n, const char *name)
{
    const char *v = xml_attr_get(n, name);
    return v ? strtoull(v, NULL, 10) : 0;
}

/* A stanza from a client: checked, then into the pipeline. */
static void on_client_stanza(struct sm_session *s, const struct xml_node *st, const char *origin)
{
    struct sm *sm = s->user->sm;
    struct sm_pkt *p = sm_pkt_from_node(sm, st, SM_FROM_SESSION);
    if (p == NULL)
        return;
    if (strcmp(jid_full(p->a, &p->from), s->jid) != 0) {
        /* The c2s stamps from; anything else is a bug between daemons. */
        log_warn(&sm->lc, "session %s sent a stanza from %s; dropped", s->jid,
                 jid_full(p->a, &p->from));
        sm_pkt_free(p);
        return;
    }
    sm_pkt_set_session(p, s);
    p->origin = arena_strdup(p->a, origin);
    sm_dispatch(sm, p);
}

void sm_session_on_envelope(struct sm *sm, struct xml_node *env, const char *raw, size_t len)
{
    (void)raw;
    (void)len;
    const char *c2s = xml_attr_get(env, "from");
    const char *sid = xml_attr_get(env, "sid");
    const char *type = xml_attr_get(env, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        /* Our envelope bounced: that c2s is gone; its down notice follows. */
        log_info(&sm->lc, "envelope to %s bounced: %s", xml_attr_get(env, "from"),
                 xml_attr_get(env, "cond") ? xml_attr_get(env, "cond") : "?");
        return;
    }
    if (c2s == NULL || sid == NULL) {
        log_warn(&sm->lc, "envelope without from or sid dropped");
        return;
    }
    uint64_t seq = attr_u64(env, "seq");
    struct xml_node *child = xml_first_elem(env);
    char key[512];
    key_of(key, sizeof(key), c2s, sid);
    struct sm_session *s = hmap_get(sm->sessions, key);
    if (child != NULL && xml_is(child, SM_NS_SESSION, "start")) {
        on_start(sm, c2s, sid, seq, child);
        return;
    }
    if (s == NULL) {
        if (wait_for_start(sm, env))
            return;
        if (child != NULL && !xml_is(child, SM_NS_SESSION, "end"))
            refuse(sm, c2s, sid, XMPP_COND_ITEM_NOT_FOUND);
        return;
    }
    ack_upto(s, attr_u64(env, "ack"));
    if (seq == 0 && child != NULL && xml_is(child, SM_NS_SESSION, "end")) {
        /* outside the sequence: the c2s forgot the session (it restarted) */
        sm_presence_broadcast_unavailable(s, NULL);
        sm_session_end(s, NULL, false);
        return;
    }
    if (seq == 0)
        return; /* a pure ack */
    if (seq <= s->in_seq) {
        send_envelope(s, 0, NULL, NULL); /* a replayed duplicate: ack it again */
        return;
    }
    s->in_seq = seq;
    if (child == NULL)
        return;
    if (xml_is(child, SM_NS_SESSION, "end")) {
        sm_presence_broadcast_unavailable(s, NULL);
        /* Acknowledged, so that the c2s frees its lingering session now
         * rather than after its sm-grace (a minute of memory per logout). */
        send_envelope(s, 0, NULL, NULL);
        sm_session_end(s, NULL, false);
        return;
    }
    char origin[256];
    origin_of(origin, sizeof(origin), sid, seq);
    on_client_stanza(s, child, origin);
    /* Handled (delivered, stored, forwarded or answered): acknowledge. The
     * session may have ended meanwhile. */
    if ((s = hmap_get(sm->sessions, key)) != NULL)
        owe_ack(s);
}

struct sm_grace {
    struct sm *sm;
    char *c2s;
    struct event *ev;
    struct sm_grace *next;
};

static void grace_free(struct sm_grace *g)
{
    for (struct sm_grace **pp = &g->sm->graces; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    event_free(g->ev);
    free(g->c2s);
    free(g);
}

void sm_graces_free(struct sm *sm)
{
    while (sm->graces != NULL)
        grace_free(sm->graces);
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    struct sm_grace *g = arg;
    (void)fd;
    (void)what;
    struct sm *sm = g->sm;
    /* Every session still waiting on that c2s ends now, in batches because
     * ending one changes the map being walked. */
    struct sm_session *victims[256];
    size_t n;
    do {
        n = 0;
        struct hmap_iter it = {0};
        void *v;
        while (n < 256 && hmap_next(sm->sessions, &it, NULL, &v)) {
            struct sm_session *s = v;
            if (strcmp(s->c2s, g->c2s) == 0 && s->c2s_down)
                victims[n++] = s;
        }
        for (size_t i = 0; i < n; i++) {
            sm_presence_broadcast_unavailable(victims[i], NULL);
            sm_session_end(victims[i], NULL, false);
        }
    } while (n == 256);
    grace_free(g);
}

/* The router link dropped: every c2s is out of reach until the router
 * announces it again; sessions wait for their grace period. */
void sm_sessions_link_down(struct sm *sm)
{
    const char *names[64];
    size_t n = 0;
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(sm->sessions, &it, NULL, &v)) {
        struct sm_session *s = v;
        bool seen = false;
        for (size_t i = 0; i < n; i++)
            seen = seen || strcmp(names[i], s->c2s) == 0;
        if (!seen && n < 64)
            names[n++] = s->c2s;
    }
    for (size_t i = 0; i < n; i++)
        sm_sessions_c2s_down(sm, names[i]);
}

void sm_sessions_c2s_down(struct sm *sm, const char *c2s)
{
    size_t n = 0;
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(sm->sessions, &it, NULL, &v)) {
        struct sm_session *s = v;
        if (strcmp(s->c2s, c2s) == 0) {
            s->c2s_down = true;
            n++;
        }
    }
    if (n == 0)
        return;
    log_notice(&sm->lc, "%s went down with %zu sessions; waiting %ld ms for it", c2s, n,
               sm->cfg->session_grace_ms);
    struct sm_grace *g = xcalloc(1, sizeof(*g));
    g->sm = sm;
    g->c2s = xstrdup(c2s);
    g->next = sm->graces;
    sm->graces = g;
    g->ev = evtimer_new(sm->base, on_grace, g);
    struct timeval tv = {sm->cfg->session_grace_ms / 1000,
                         (sm->cfg->session_grace_ms % 1000) * 1000};
    evtimer_add(g->ev, &tv);
}

void sm_sessions_c2s_up(struct sm *sm, const char *c2s)
{
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(sm->sessions, &it, NULL, &v)) {
        struct sm_session *s = v;
        if (strcmp(s->c2s, c2s) == 0 && s->c2s_down) {
            s->c2s_down = false;
            replay(s);
        }
    }
}
