/* SPDX-License-Identifier: MIT */
/* The reliable link of one session to its sm (docs/protocol.md §8):
 * sequence numbers, envelopes kept until acknowledged, piggybacked or
 * delayed acks, suspend and resume around sm or router outages with replay
 * in order, duplicates dropped by seq and by origin, and the end. Choices
 * beyond protocol.md are in c2s/README.md. */
#include "c2s.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <gnutls/crypto.h>

#include "alloc.h"
#include "buf.h"
#include "comp_handshake.h"
#include "hmap.h"
#include "recent.h"
#include "xml.h"

#define UNACKED_MAX_N     512       /* envelopes kept before the client is paused */
#define UNACKED_MAX_BYTES (1 << 20) /* bytes kept before the client is paused */
#define ACK_DELAY_MS      20        /* protocol.md §8: a lone ack within 20 ms */

struct unacked {
    struct unacked *next;
    uint64_t seq;
    size_t len;
    char data[];
};

enum session_state {
    SESS_STARTING, /* <start/> queued or sent; the bind result waits */
    SESS_UP,       /* <started/> received */
    SESS_LINGER,   /* the client is gone; <end/> waits for its ack */
};

struct session {
    struct c2s *c2s;
    struct client *client; /* NULL once the client is gone */
    enum session_state state;
    bool started;     /* the sm has started it (resumes say resume='1') */
    bool link_down;   /* the sm is unreachable: envelopes wait in the queue */
    bool resume_sent; /* a resumed <start/> is out: the replay waits for <started/> */
    bool ack_owed;
    bool anonymous; /* authenticated with SASL ANONYMOUS */
    char sid[25];
    char ip[48];
    char *jid;
    const char *domain; /* interned */
    char *sm;           /* the component that started it */
    char *presence;     /* the client's last available presence, serialised */
    uint64_t out_seq, in_seq;
    struct unacked *head, *tail;
    size_t nunacked, unacked_bytes;
    int64_t deadline;       /* on c2s->sm.timed: link down or lingering */
    struct recent *origins; /* hashes of the last RECENT_MAX origins, made on first use */
    struct list all_link, timed_link, ack_link;
};

const char *session_jid(const struct session *s)
{
    return s->jid;
}

static void session_free(struct session *s)
{
    struct c2s *c2s = s->c2s;
    if (s->client != NULL)
        s->client->sess = NULL;
    hmap_del(c2s->sm.sessions, s->sid);
    list_remove(&s->all_link);
    list_remove(&s->timed_link);
    list_remove(&s->ack_link);
    for (struct unacked *u = s->head, *next; u != NULL; u = next) {
        next = u->next;
        free(u);
    }
    free(s->jid);
    free(s->sm);
    free(s->presence);
    recent_free(&s->origins);
    free(s);
}

/* ---- sending ------------------------------------------------------------------- */

static void set_link_down(struct session *s)
{
    s->resume_sent = false;
    if (s->link_down)
        return;
    s->link_down = true;
    list_remove(&s->ack_link);
    s->ack_owed = false;
    if (!list_linked(&s->timed_link)) {
        s->deadline = c2s_now_ms() + s->c2s->cfg->sm_grace_ms;
        list_push_tail(&s->c2s->sm.timed, &s->timed_link);
    }
    log_debug(&s->c2s->lc, "session %s (%s): the sm is unreachable", s->sid, s->jid);
}

/* One envelope: seq 0 for a pure ack or a control element outside the
 * sequence; payload NULL for none. Carries the current ack. */
static void send_envelope(struct session *s, uint64_t seq, const char *payload, size_t len)
{
    struct c2s *c2s = s->c2s;
    struct buf b = BUF_INIT;
    buf_reserve(&b, len + 256); /* one allocation, not a doubling per step */
    buf_append_str(&b, "<route xmlns='" PL_NS_ROUTER "'");
    xml_append_attr(&b, "from", c2s->name);
    xml_append_attr(&b, "to", s->jid);
    xml_append_attr(&b, "sid", s->sid);
    if (seq > 0)
        xml_append_attr_u64(&b, "seq", seq);
    xml_append_attr_u64(&b, "ack", s->in_seq);
    if (payload == NULL) {
        buf_append_str(&b, "/>");
    } else {
        buf_append_char(&b, '>');
        buf_append(&b, payload, len);
        buf_append_str(&b, "</route>");
    }
    list_remove(&s->ack_link);
    s->ack_owed = false;
    if (sm_link_send(c2s, b.data, b.len) < 0)
        set_link_down(s);
    buf_fini(&b);
}

static void backlog_check(struct session *s)
{
    struct client *c = s->client;
    if (c == NULL)
        return;
    bool over = s->nunacked > UNACKED_MAX_N || s->unacked_bytes > UNACKED_MAX_BYTES;
    bool under = s->nunacked <= UNACKED_MAX_N / 2 && s->unacked_bytes <= UNACKED_MAX_BYTES / 2;
    if (over && !(c->pause & PAUSE_BACKLOG))
        log_debug(&c->lc, "%zu envelopes unacknowledged by the sm: pausing input", s->nunacked);
    if (over)
        client_pause(c, PAUSE_BACKLOG, true);
    else if (under)
        client_pause(c, PAUSE_BACKLOG, false);
}

/* Queues payload as the next envelope of the sequence and sends it if the
 * sm can be reached. */
static void enqueue(struct session *s, const char *payload, size_t len)
{
    struct unacked *u = xmalloc(sizeof(*u) + len);
    u->next = NULL;
    u->seq = ++s->out_seq;
    u->len = len;
    memcpy(u->data, payload, len);
    if (s->tail != NULL)
        s->tail->next = u;
    else
        s->head = u;
    s->tail = u;
    s->nunacked++;
    s->unacked_bytes += len;
    if (s->link_down)
        ; /* queued: the resume replays it */
    else if (sm_link_domain_served(s->c2s, s->domain))
        send_envelope(s, u->seq, u->data, u->len);
    else
        set_link_down(s);
    backlog_check(s);
}

void session_forward(struct session *s, const char *payload, size_t len)
{
    enqueue(s, payload, len);
}

static void start_payload(const struct session *s, struct buf *b, uint64_t next)
{
    buf_append_str(b, "<start xmlns='" C2S_NS_SM_LINK "'");
    xml_append_attr(b, "jid", s->jid);
    xml_append_attr(b, "ip", s->ip);
    if (s->anonymous)
        buf_append_str(b, " anonymous='1'");
    if (next > 0)
        buf_printf(b, " resume='1' next='%" PRIu64 "'", next);
    buf_append_str(b, "/>");
}

struct session *session_start(struct client *c, const char *jid)
{
    struct c2s *c2s = c->c2s;
    struct session *s = xcalloc(1, sizeof(*s));
    s->c2s = c2s;
    s->client = c;
    s->jid = xstrdup(jid);
    s->domain = c->domain;
    list_init(&s->timed_link);
    list_init(&s->ack_link);
    list_init(&s->all_link);
    list_push_tail(&c2s->sm.all, &s->all_link);
    do {
        unsigned char rnd[12];
        if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) < 0)
            log_fatal(NULL, PL_EXIT_OSERR, "no random numbers");
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(s->sid + 2 * i, 3, "%02x", rnd[i]);
    } while (hmap_get(c2s->sm.sessions, s->sid) != NULL);
    hmap_put(c2s->sm.sessions, s->sid, s);
    client_ip(c, s->ip, sizeof(s->ip));
    s->anonymous = c->anonymous;
    struct buf b = BUF_INIT;
    start_payload(s, &b, 0);
    enqueue(s, b.data, b.len);
    buf_fini(&b);
    return s;
}

void session_detach(struct session *s, bool tell_sm)
{
    s->client = NULL;
    if (!tell_sm) {
        session_free(s);
        return;
    }
    static const char end[] = "<end xmlns='" C2S_NS_SM_LINK "'/>";
    enqueue(s, end, sizeof(end) - 1);
    s->state = SESS_LINGER;
    if (!list_linked(&s->timed_link)) {
        s->deadline = c2s_now_ms() + s->c2s->cfg->sm_grace_ms;
        list_push_tail(&s->c2s->sm.timed, &s->timed_link);
    }
}

/* ---- acks ---------------------------------------------------------------------------- */

static void on_ack_timer(evutil_socket_t fd, short what, void *arg)
{
    struct c2s *c2s = arg;
    (void)fd;
    (void)what;
    struct list *l;
    while ((l = list_first(&c2s->sm.acks)) != NULL) {
        struct session *s = LIST_ENTRY(l, struct session, ack_link);
        send_envelope(s, 0, NULL, 0); /* takes it off the list */
    }
}

static void owe_ack(struct session *s)
{
    if (s->ack_owed || s->link_down)
        return;
    s->ack_owed = true;
    list_push_tail(&s->c2s->sm.acks, &s->ack_link);
    if (!evtimer_pending(s->c2s->sm.ack_timer, NULL)) {
        struct timeval tv = {0, ACK_DELAY_MS * 1000};
        evtimer_add(s->c2s->sm.ack_timer, &tv);
    }
}

/* Drops what the sm acknowledged. Returns false when that finished a
 * lingering session (which is then freed). */
static bool ack_upto(struct session *s, uint64_t ack)
{
    while (s->head != NULL && s->head->seq <= ack) {
        struct unacked *u = s->head;
        s->head = u->next;
        if (s->head == NULL)
            s->tail = NULL;
        s->nunacked--;
        s->unacked_bytes -= u->len;
        free(u);
    }
    if (s->state == SESS_LINGER && s->head == NULL) {
        log_debug(&s->c2s->lc, "session %s (%s) ended", s->sid, s->jid);
        session_free(s);
        return false;
    }
    backlog_check(s);
    return true;
}

/* ---- suspend and resume -------------------------------------------------------------- */

/* The sm can be reached again: everything unacknowledged goes, in order. */
static void replay(struct session *s)
{
    s->link_down = false;
    s->resume_sent = false;
    if (s->state != SESS_LINGER)
        list_remove(&s->timed_link);
    log_debug(&s->c2s->lc, "session %s (%s): replaying %zu envelopes", s->sid, s->jid, s->nunacked);
    for (struct unacked *u = s->head; u != NULL && !s->link_down; u = u->next)
        send_envelope(s, u->seq, u->data, u->len);
}

/* protocol.md §8 "Resuming": <start resume='1' next='N'/> outside the
 * sequence, then every unacknowledged envelope in order. The replay (and
 * anything new) waits for <started/>: an sm that restarted refuses
 * envelopes for the session while it loads the user for the start, and
 * then accepts later ones, which would skip the refused (c2s/README.md).
 * A session the sm never started, whose original <start/> (seq 1) is
 * still queued, just replays its queue, which begins with that start. */
static void resume(struct session *s)
{
    if (!s->started && s->head != NULL && s->head->seq == 1) {
        replay(s);
        return;
    }
    if (s->resume_sent)
        return;
    uint64_t next = s->head ? s->head->seq : s->out_seq + 1;
    log_debug(&s->c2s->lc, "session %s (%s): resuming from seq %" PRIu64 ", %zu queued", s->sid,
              s->jid, next, s->nunacked);
    struct buf b = BUF_INIT;
    start_payload(s, &b, next);
    s->resume_sent = true;
    send_envelope(s, 0, b.data, b.len);
    buf_fini(&b);
}

void session_remember_presence(struct session *s, const char *payload, size_t len)
{
    free(s->presence);
    s->presence = payload != NULL ? xstrndup(payload, len) : NULL;
}

/* A session the sm has started belongs to that sm; one still starting
 * may be with any component that served its domain. */
static bool served_by(const struct session *s, const char *sm_name, const char *const *names,
                      size_t n)
{
    if (sm_name == NULL)
        return true;
    if (s->sm != NULL)
        return strcmp(s->sm, sm_name) == 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], s->domain) == 0)
            return true;
    }
    return false;
}

void sessions_link_down(struct c2s *c2s, const char *sm_name, const char *const *names, size_t n)
{
    for (struct list *l = c2s->sm.all.next; l != &c2s->sm.all; l = l->next) {
        struct session *s = LIST_ENTRY(l, struct session, all_link);
        if (served_by(s, sm_name, names, n))
            set_link_down(s);
    }
}

void sessions_domain_up(struct c2s *c2s, const char *domain)
{
    if (!sm_link_domain_served(c2s, domain))
        return;
    for (struct list *l = c2s->sm.timed.next, *next; l != &c2s->sm.timed; l = next) {
        next = l->next;
        struct session *s = LIST_ENTRY(l, struct session, timed_link);
        if (s->link_down && s->domain == domain)
            resume(s);
    }
}

void sessions_housekeeping(struct c2s *c2s, int64_t now)
{
    struct list *l;
    while ((l = list_first(&c2s->sm.timed)) != NULL) {
        struct session *s = LIST_ENTRY(l, struct session, timed_link);
        if (s->deadline > now)
            break;
        if (s->client != NULL) {
            struct client *c = s->client;
            session_free(s);
            client_stream_error(c, XMPP_COND_STREAM_INTERNAL_SERVER_ERROR,
                                "the session manager has been unreachable for %ld s",
                                c2s->cfg->sm_grace_ms / 1000);
        } else {
            log_info(&c2s->lc, "session %s (%s): the sm did not acknowledge its end; dropped",
                     s->sid, s->jid);
            session_free(s);
        }
    }
}

/* ---- from the sm ------------------------------------------------------------------------ */

/* Was this origin delivered already (a replay along another path)? */
static bool origin_seen(struct session *s, const char *o)
{
    if (s->origins == NULL)
        s->origins = recent_new();
    return recent_check_add(s->origins, hash_stable(o, strlen(o), 0x5a17));
}

/* The answer to a resume: a fresh sm (it had restarted) may have refused
 * the replays while it loaded the user, so they go again (duplicates are
 * dropped by seq), followed by the client's last presence. */
/* The answer to a resume: the queue goes out, and a fresh sm (one that
 * had restarted) gets the client's last presence again. */
static void on_resumed(struct session *s, const char *jid, bool fresh)
{
    if (jid != NULL && strcmp(jid, s->jid) != 0 && s->client != NULL) {
        client_stream_error(s->client, XMPP_COND_STREAM_RESET,
                            "the session manager resumed the session as %s", jid);
        return;
    }
    replay(s);
    if (fresh && s->presence != NULL && s->state != SESS_LINGER) {
        char *p = xstrdup(s->presence);
        enqueue(s, p, strlen(p));
        free(p);
    }
}

static void on_started(struct session *s, const struct xml_node *env, const struct xml_node *p)
{
    const char *sm = xml_attr_get(env, "from");
    const char *jid = xml_attr_get(p, "jid");
    free(s->sm);
    s->sm = xstrdup(sm ? sm : "");
    if (s->resume_sent) {
        s->started = true;
        on_resumed(s, jid, xml_attr_get(p, "fresh") != NULL);
        return;
    }
    if (s->started)
        return;
    s->started = true;
    if (s->state != SESS_STARTING)
        return;
    if (jid != NULL && strcmp(jid, s->jid) != 0) {
        free(s->jid);
        s->jid = xstrdup(jid);
    }
    s->state = SESS_UP;
    if (s->client != NULL)
        bind_on_started(s->client, s->jid);
}

/* The sm refused the start, or no longer knows the session. */
static void on_failed(struct session *s, const char *cond_name)
{
    enum xmpp_cond cond = cond_name ? xmpp_cond_from_name(cond_name, false) : XMPP_COND_NONE;
    if (cond == XMPP_COND_NONE)
        cond = XMPP_COND_UNDEFINED_CONDITION;
    struct client *c = s->client;
    enum session_state state = s->state;
    session_free(s);
    if (c != NULL && state == SESS_STARTING)
        bind_on_failed(c, cond);
    else if (c != NULL)
        client_stream_error(c, XMPP_COND_STREAM_RESET, "the session manager lost the session (%s)",
                            xmpp_cond_name(cond));
}

/* The sm ended the session: conflict (replaced by a new login),
 * not-authorized (account deleted), or another stream condition. */
static void on_end(struct session *s, const char *reason)
{
    enum xmpp_cond cond = reason ? xmpp_cond_from_name(reason, true) : XMPP_COND_NONE;
    if (cond == XMPP_COND_NONE)
        cond = XMPP_COND_STREAM_RESET;
    struct client *c = s->client;
    session_free(s);
    if (c != NULL)
        client_stream_error(c, cond, "the session manager ended the session%s%s",
                            reason ? ": " : "", reason ? reason : "");
}

static bool is_stanza(const struct xml_node *n)
{
    return strcmp(n->name, "message") == 0 || strcmp(n->name, "presence") == 0 ||
           strcmp(n->name, "iq") == 0;
}

/* Handles one payload. Returns false when the session is gone. */
static bool on_payload(struct session *s, const struct xml_node *env, struct xml_node *p)
{
    if (xml_is(p, C2S_NS_SM_LINK, "started")) {
        on_started(s, env, p);
        return hmap_get(s->c2s->sm.sessions, s->sid) == s;
    }
    if (xml_is(p, C2S_NS_SM_LINK, "failed")) {
        on_failed(s, xml_attr_get(p, "cond"));
        return false;
    }
    if (xml_is(p, C2S_NS_SM_LINK, "end")) {
        on_end(s, xml_attr_get(p, "reason"));
        return false;
    }
    if (!is_stanza(p)) {
        log_debug(&s->c2s->lc, "session %s: ignored <%s xmlns='%s'/>", s->sid, p->name, p->ns);
        return true;
    }
    const char *o = xml_attr_get(env, "o");
    if (o != NULL && origin_seen(s, o))
        log_debug(&s->c2s->lc, "session %s: duplicate of %s dropped", s->sid, o);
    else if (s->client != NULL && s->client->state == CLIENT_SESSION)
        stanza_to_client(s->client, p);
    return true;
}

/* An envelope for a session this process does not know (ended, or from
 * before a restart): the sm learns it is over. */
static void unknown_session(struct c2s *c2s, const struct xml_node *env, const char *sid)
{
    const char *from = xml_attr_get(env, "from");
    const struct xml_node *p = xml_first_elem(env);
    if (from == NULL || p == NULL || xml_is(p, C2S_NS_SM_LINK, "end") ||
        xml_is(p, C2S_NS_SM_LINK, "failed"))
        return;
    log_debug(&c2s->lc, "envelope for unknown session %s from %s: answering <end/>", sid, from);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<route xmlns='" PL_NS_ROUTER "'");
    xml_append_attr(&b, "from", c2s->name);
    xml_append_attr(&b, "to", from);
    xml_append_attr(&b, "sid", sid);
    buf_append_str(&b, "><end xmlns='" C2S_NS_SM_LINK "'/></route>");
    (void)sm_link_send(c2s, b.data, b.len);
    buf_fini(&b);
}

static uint64_t attr_u64(const struct xml_node *n, const char *name)
{
    const char *v = xml_attr_get(n, name);
    return v != NULL ? strtoull(v, NULL, 10) : 0;
}

void session_on_envelope(struct c2s *c2s, const struct xml_node *env)
{
    const char *sid = xml_attr_get(env, "sid");
    struct session *s = sid ? hmap_get(c2s->sm.sessions, sid) : NULL;
    const char *type = xml_attr_get(env, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        log_info(&c2s->lc, "envelope for session %s bounced by the router: %s", sid ? sid : "?",
                 xml_attr_get(env, "cond") ? xml_attr_get(env, "cond") : "?");
        if (s != NULL)
            set_link_down(s);
        return;
    }
    if (s == NULL) {
        unknown_session(c2s, env, sid ? sid : "");
        return;
    }
    if (!ack_upto(s, attr_u64(env, "ack")))
        return;
    uint64_t seq = attr_u64(env, "seq");
    struct xml_node *p = xml_first_elem(env);
    /* The answer to a resume is the new base of the sm's numbering (a
     * restarted sm counts from 1 again). */
    if (seq != 0 && s->resume_sent && p != NULL && xml_is(p, C2S_NS_SM_LINK, "started"))
        s->in_seq = seq - 1;
    if (seq != 0 && seq <= s->in_seq) { /* a replayed duplicate: ack again */
        owe_ack(s);
        return;
    }
    /* A lingering session handles only control elements: stanzas stay
     * unacknowledged, and the sm queues them offline once it ends. */
    if (s->state == SESS_LINGER && p != NULL && is_stanza(p))
        return;
    if (seq != 0)
        s->in_seq = seq;
    if ((p == NULL || on_payload(s, env, p)) && seq != 0)
        owe_ack(s);
}

/* ---- lifetime ------------------------------------------------------------------------------ */

void sessions_init(struct c2s *c2s)
{
    c2s->sm.sessions = hmap_new();
    list_init(&c2s->sm.all);
    list_init(&c2s->sm.timed);
    list_init(&c2s->sm.acks);
    c2s->sm.ack_timer = evtimer_new(c2s->base, on_ack_timer, c2s);
}

void sessions_free_all(struct c2s *c2s)
{
    struct list *l;
    while ((l = list_first(&c2s->sm.all)) != NULL)
        session_free(LIST_ENTRY(l, struct session, all_link));
    hmap_free(&c2s->sm.sessions);
    if (c2s->sm.ack_timer != NULL)
        event_free(c2s->sm.ack_timer);
    c2s->sm.ack_timer = NULL;
}
