/* SPDX-License-Identifier: MIT */
/* parley-s2s: the context, the route and connection structs, and the
 * functions the s2s's files share. The protocol is RFC 6120 with STARTTLS,
 * SASL EXTERNAL (XEP-0178) and dialback (XEP-0220, keys per XEP-0185). */
#ifndef PL_S2S_H
#define PL_S2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attr.h"
#include "common_cfg.h"
#include "conf.h"
#include "conn.h"
#include "err.h"
#include "log.h"

struct comp_client;
struct daemon;
struct event;
struct event_base;
struct evconnlistener;
struct hmap;
struct xml_node;
struct xstream;

#define S2S_NS_TLS       "urn:ietf:params:xml:ns:xmpp-tls"
#define S2S_NS_SASL      "urn:ietf:params:xml:ns:xmpp-sasl"
#define S2S_NS_DB        "jabber:server:dialback"
#define S2S_NS_DB_FEAT   "urn:xmpp:features:dialback"
#define S2S_NS_RESOLVER  "urn:parley:resolver:1"
#define S2S_NS_SM        "urn:xmpp:sm:3"
#define S2S_NS_BIDI      "urn:xmpp:bidi"
#define S2S_NS_BIDI_FEAT "urn:xmpp:features:bidi"

/* ---- a small intrusive list ------------------------------------------------ */

struct s2s_list {
    struct s2s_list *prev, *next;
};

#define S2S_ENTRY(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void s2s_list_init(struct s2s_list *l)
{
    l->prev = l->next = l;
}

static inline void s2s_list_del(struct s2s_list *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

static inline void s2s_list_add(struct s2s_list *head, struct s2s_list *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

/* ---- configuration (<s2s>) -------------------------------------------------- */

/* How a remote domain may prove who it is, and how we accept its proof. */
enum s2s_auth {
    S2S_AUTH_DIALBACK = 0, /* a valid certificate (SASL EXTERNAL), else dialback */
    S2S_AUTH_CERT,         /* a PKIX-valid certificate only; never dialback */
};

struct s2s_remote_cfg {
    const char *domain;
    int auth; /* enum s2s_auth */
    bool require_tls;
};

struct s2s_cfg {
    const char *name;
    const char *listen; /* NULL: <router-link><address> */
    long port;          /* STARTTLS; 0 = off */
    long tls_port;      /* direct TLS (XEP-0368); 0 = off */
    struct tls_cert_cfg *certs;
    size_t ncerts;
    const char *tls_priority;
    const char *tls_ca_file; /* trust anchors for peers; NULL: the system store */
    const char *dialback_secret;
    const char *resolver; /* the resolver's component name */
    int auth;             /* the default enum s2s_auth */
    bool require_tls;     /* the default: refuse plaintext streams */
    struct s2s_remote_cfg *remotes;
    size_t nremotes;
    long idle_timeout_ms;
    long connect_timeout_ms; /* one target: TCP, TLS and authentication */
    long resolve_timeout_ms;
    size_t queue_bytes; /* per route */
    long queue_age_ms;  /* a stanza waits at most this long */
    size_t max_stanza;
    bool bidi; /* XEP-0288: offer, and ask for, bidirectional streams */
};

extern const struct conf_table s2s_cfg_table;
int s2s_cfg_validate(const struct common_cfg *common, const void *cfg, struct err *err);

/* The policy for remote, from its <remote> entry or the defaults. */
void s2s_policy(const struct s2s_cfg *cfg, const char *remote, enum s2s_auth *auth_r,
                bool *require_tls_r);

/* ---- queue.c: stanzas waiting for a route ----------------------------------- */

struct queued {
    struct s2s_list link;
    struct route *route; /* on a stream's unacked list: the route it was sent for */
    int64_t at_ms;
    uint32_t serial; /* on a stream's unacked list: its XEP-0198 count */
    size_t len;
    char data[]; /* serialised in jabber:server, NUL-terminated */
};

struct s2s_queue {
    struct s2s_list items;
    size_t bytes, count;
};

/* ---- routes: one per (local domain, remote domain) ------------------------- */

enum route_state {
    ROUTE_IDLE,      /* no connection; the next stanza starts one */
    ROUTE_RESOLVING, /* waiting for the resolver */
    ROUTE_TRYING,    /* connecting and negotiating with targets[next - 1] */
    ROUTE_UP,        /* authenticated: stanzas go straight out */
};

/* One address to try, flattened from the resolver's answer. */
struct target {
    char *host; /* the SRV target, for logs */
    char *address;
    int port;
    bool direct_tls;
};

/* A db:verify we must send to the remote's authoritative server on behalf
 * of an incoming stream that sent db:result (XEP-0220 §2.1.2). */
struct verify {
    struct s2s_list link;
    uint64_t in_id; /* the incoming s2s_conn's id (it may be gone by the answer) */
    char *stream_id;
    char *key;
    bool sent;
};

struct route {
    struct s2s *s2s;
    char *key; /* "local remote" */
    char *local, *remote;
    enum route_state state;
    struct s2s_conn *out;
    struct s2s_queue q;
    struct s2s_list verifies;
    struct target *targets;
    size_t ntargets, next;
    char *resolve_id;
    int64_t deadline_ms; /* resolving, or the current attempt */
    int64_t used_ms;     /* last stanza or verify, for forgetting idle routes */
    /* After an authenticated stream died: until retry_until_ms, a failed
     * attempt waits and tries again (backoff) instead of bouncing the
     * queue; the stanzas' own max-age still applies. */
    int64_t retry_until_ms, retry_at_ms;
    int64_t up_since_ms; /* when the route last came up */
    long backoff_ms;
    bool refused; /* the last attempt ended in a decision, not a fault: no retry */
    /* Dialback piggybacking (XEP-0220 §2.5): the route rides another
     * route's authenticated stream to the same remote server (out is that
     * stream; ride_link is on its riders list). */
    bool riding;
    struct s2s_list ride_link;
    enum xmpp_cond fail_cond;
    char fail_text[200];
};

/* ---- connections ------------------------------------------------------------- */

enum sconn_state {
    SC_CONNECTING,  /* out: TCP connect in progress */
    SC_TLS,         /* TLS handshake (direct TLS or after <proceed/>) */
    SC_WAIT_HEADER, /* the peer's stream header */
    SC_OPEN,        /* in: negotiating or authenticated; out: waiting for features */
    SC_STARTTLS,    /* out: <starttls/> sent */
    SC_SASL,        /* out: <auth/> sent */
    SC_DIALBACK,    /* out: <db:result/> sent */
    SC_UP,          /* out: authenticated */
    SC_CLOSING,
};

struct s2s_conn {
    struct s2s *s2s;
    uint64_t id;
    bool outgoing;
    bool direct_tls;
    enum sconn_state state;
    struct conn *conn;
    int fd; /* SC_CONNECTING only */
    struct event *connect_ev;
    struct xstream *xs;
    bool tls, header_sent, restarted, sasl_done, sasl_failed;
    bool negotiated;  /* out: TLS settled, db:verify may be sent */
    bool paused;      /* in: reading stopped while the router link is backed up */
    bool idle_closed; /* out: we closed it for idleness */
    bool gone;        /* out: detached from its routes, closing */
    /* XEP-0288. In: the peer sent <bidi/>, so routes for the domain pairs
     * it authenticated ride this stream (on riders). Out: we sent <bidi/>,
     * so the peer may send stanzas for our authenticated pairs here. */
    bool bidi;
    struct {
        bool offered;            /* out: the peer's features offer XEP-0198 */
        bool on;                 /* acks counted (out: <enable/> sent; in: <enable/> received) */
        bool asked;              /* an <r/> of ours is unanswered */
        uint32_t h;              /* stanzas received and handled since acks went on */
        uint32_t sent;           /* stanzas sent since acks went on (the last serial) */
        struct s2s_list unacked; /* what we sent: struct queued, oldest first */
        size_t unacked_bytes;
        /* in: where each stanza not yet counted in h ends in the router
         * link's byte stream (struct s2s .link_bytes); a ring */
        uint64_t *ends;
        size_t nends, cap, head;
    } sm;
    char stream_id[128];    /* in: ours; out: the peer's */
    char *local;            /* in: the header's 'to'; out: the route's local domain */
    char *remote;           /* in: the header's 'from' (may be NULL); out: the route's */
    struct route *route;    /* out only: the route that opened it */
    struct s2s_list riders; /* out: routes of other local domains riding it */
    struct hmap *authed;    /* in: remote domains authenticated on this stream */
    struct hmap *pairs;     /* in: "local remote" pairs authenticated on it */
    int64_t last_ms;        /* last stanza either way, for the idle timeout */
    int64_t created_ms;     /* in: authentication must come within connect-timeout */
    struct s2s_list link;
    struct log_ctx lc;
};

/* ---- the context --------------------------------------------------------------- */

struct s2s_stats {
    uint64_t out_ok, out_failed, in_accepted, in_authed, stanzas_out, stanzas_in, bounced;
    uint64_t sasl_out, dialback_out, sasl_in, dialback_in;
};

struct s2s {
    struct event_base *base;
    struct daemon *daemon;
    const struct common_cfg *common;
    const struct s2s_cfg *cfg;
    char *name;
    struct log_ctx lc;
    char db_key[65]; /* hex SHA-256 of the dialback secret (XEP-0185) */
    struct tls_creds *creds;
    struct {
        struct evconnlistener *plain, *tls;
    } listen;
    struct comp_client *cc;
    uint64_t link_bytes;    /* bytes ever handed to the router link */
    uint64_t link_flushed;  /* of those, known to have been written (router_link.c) */
    struct hmap *comps;     /* component name -> struct comp_names (router notices) */
    struct hmap *served;    /* domain bound by a local component -> struct served */
    struct hmap *routes;    /* "local remote" -> struct route */
    struct hmap *resolving; /* resolver iq id -> struct route */
    struct s2s_list conns;  /* every struct s2s_conn */
    struct event *tick;
    struct event *resume; /* polls the router link while incoming streams are paused */
    uint64_t next_id;
    struct s2s_stats stats;
    bool stopping;
};

/* main.c */
int64_t s2s_now_ms(void);
/* The local domain equal to domain (ASCII case-insensitively): a hosted
 * <domain>, or a domain a local component has bound (a MUC service, a
 * gateway), as the router's notices say. NULL when it is neither. The
 * string stays valid until the next router notice or reload. */
const char *s2s_local_domain(const struct s2s *s2s, const char *domain);

/* router_link.c: a domain bound by local components */
struct served {
    unsigned count; /* components that bound it */
    char name[];
};

/* listen.c */
int listen_start(struct s2s *s2s, struct err *err) PL_WARN_UNUSED;
void listen_stop(struct s2s *s2s);

/* stream.c: what incoming and outgoing connections share */
/* Wraps fd (connected or accepted) in a new s2s_conn on s2s->conns. */
struct s2s_conn *sconn_new(struct s2s *s2s, int fd, bool outgoing);
void sconn_write(struct s2s_conn *sc, const char *data, size_t len);
void sconn_write_str(struct s2s_conn *sc, const char *s);
/* Our stream header: from/to as given (to may be NULL), a fresh id when
 * the stream is ours to name (incoming). */
void sconn_send_header(struct s2s_conn *sc, const char *from, const char *to);
/* Sends the stream error (after our header if needed), logs the cause and
 * closes. */
void sconn_stream_error(struct s2s_conn *sc, enum xmpp_cond cond, const char *fmt, ...)
    PL_PRINTF(3, 4);
/* Sends </stream:stream> and closes. */
void sconn_close(struct s2s_conn *sc, const char *reason);
/* Expects a new stream header (after STARTTLS or SASL). */
void sconn_restart(struct s2s_conn *sc);
/* An outgoing socket whose connect() completed: the conn takes it over. */
void sconn_attach(struct s2s_conn *sc, int fd);
/* A connection that never got its socket (connect failed): freed now. */
void sconn_abandon(struct s2s_conn *sc);
/* The connection with this id, or NULL. */
struct s2s_conn *sconn_find(struct s2s *s2s, uint64_t id);
/* True for message, presence and iq in jabber:server. */
bool sconn_is_stanza(const struct xml_node *st);
/* TLS options for an outgoing handshake from local to remote. */
int sconn_start_client_tls(struct s2s_conn *sc, struct err *err) PL_WARN_UNUSED;
/* Closes every connection with a stream error (shutdown). */
void sconn_close_all(struct s2s *s2s, enum xmpp_cond cond, const char *text);
/* Once a second: idle connections close. */
void sconn_housekeeping(struct s2s *s2s, int64_t now);
/* Above this many bytes waiting in a stream's output, stanzas wait in the
 * route's queue instead (bounded, and bounced when they age). */
#define SCONN_OUT_HIGH (256u * 1024)
#define SCONN_OUT_LOW  (64u * 1024)
/* After a stanza went to the router: stops reading from sc while the link
 * is backed up (resumed from a timer once it drains). */
void sconn_check_backlog(struct s2s_conn *sc);

/* in.c: the receiving side's state machine */
void in_accept(struct s2s *s2s, int fd, bool direct_tls);
int in_on_open(struct s2s_conn *sc, const struct xml_node *hdr);
void in_on_stanza(struct s2s_conn *sc, struct xml_node *st);
void in_on_tls(struct s2s_conn *sc);
/* remote proved itself to local on the incoming stream sc (SASL or
 * dialback). */
void in_authenticated(struct s2s_conn *sc, const char *local, const char *remote);
/* Routes for the stream's authenticated pairs ride it, if the peer asked
 * for a bidirectional stream (XEP-0288) and may be sent to now. */
void in_bidi_attach_all(struct s2s_conn *sc);
/* Rides an incoming bidirectional stream that authenticated r's pair: r
 * is up at once. Returns false when there is none. */
bool in_bidi_carry(struct route *r);
/* A stanza of an authenticated peer (an incoming stream, or the peer's
 * side of a bidirectional outgoing one): its 'from' and 'to' checked
 * against what the stream authenticated, then to the router. Ends the
 * stream with the right error otherwise. */
void in_forward(struct s2s_conn *sc, struct xml_node *st);
/* The authoritative server answered our db:verify for an incoming stream. */
void in_verify_done(struct s2s *s2s, uint64_t in_id, const char *remote, const char *local,
                    bool valid, enum xmpp_cond cond);

/* out.c: the initiating side */
/* Starts the next target of route (TCP connect). */
void out_connect(struct route *r);
int out_on_open(struct s2s_conn *sc, const struct xml_node *hdr);
void out_on_stanza(struct s2s_conn *sc, struct xml_node *st);
void out_on_tls(struct s2s_conn *sc);
/* Sends the unsent db:verify requests of every route on the stream, if
 * the stream allows. */
void out_flush_verifies(struct s2s_conn *sc);
/* The routes a stream carries (its own, then its riders), at most max;
 * returns how many. */
size_t out_routes(const struct s2s_conn *sc, struct route **out, size_t max);
/* Writes what waits in the queue of every route on the stream. */
void out_flush_all(struct s2s_conn *sc);
/* Rides an authenticated stream of another local domain to r's remote:
 * sends db:result for r's domain on it. Returns false when there is none. */
bool out_piggyback(struct route *r);
/* A rider's dialback failed or timed out: it leaves the stream and starts
 * on its own (resolve, connect). */
void out_rider_failed(struct route *r, const char *why);
/* Unlinks an outgoing connection from its route, telling the route why:
 * route_down when it was authenticated, else route_attempt_failed with
 * cond and text (the next target is tried). No-op once detached. */
void out_detach(struct s2s_conn *sc, enum xmpp_cond cond, const char *text);
/* Outgoing bidirectional stream: true when a route from local to the
 * stream's remote is up on it (the peer may then send to local). */
bool out_carries_local(const struct s2s_conn *sc, const char *local);

/* sasl.c: SASL EXTERNAL (XEP-0178) */
/* Incoming: true when EXTERNAL may be offered for the stream's 'from'. */
bool sasl_in_offer(const struct s2s_conn *sc);
void sasl_in_on_element(struct s2s_conn *sc, const struct xml_node *st);
/* Outgoing: sends <auth mechanism='EXTERNAL'/> with our domain. */
void sasl_out_start(struct s2s_conn *sc);
/* Outgoing: <success/> or <failure/>; returns true when handled. */
bool sasl_out_on_element(struct s2s_conn *sc, const struct xml_node *st);
/* True when features offer EXTERNAL. */
bool sasl_offered(const struct xml_node *features);

/* dialback.c: XEP-0220 with XEP-0185 keys */
/* The most routes one stream carries (its own and riders). */
#define S2S_MAX_RIDERS 64
/* Writes the hex key for (receiving, originating, stream id) to out. */
void dialback_key(const char *secret_hash, const char *receiving, const char *originating,
                  const char *stream_id, char out[65]);
/* Outgoing: sends <db:result/> with our key. */
void dialback_out_start(struct s2s_conn *sc);
/* Outgoing: <db:result/> for local on the stream sc (piggybacking). */
void dialback_out_send(struct s2s_conn *sc, const char *local);
/* Outgoing stream: <db:result type=…/> or <db:verify type=…/>. */
void dialback_out_on_element(struct s2s_conn *sc, const struct xml_node *st);
/* Incoming stream: <db:result>KEY</db:result> or <db:verify>KEY</db:verify>. */
void dialback_in_on_element(struct s2s_conn *sc, const struct xml_node *st);

/* route.c */
/* Resolves and connects for r alone (no piggybacking). */
void route_start_own(struct route *r);
/* The route for (local, remote), created idle when absent. */
struct route *route_get(struct s2s *s2s, const char *local, const char *remote);
/* A stanza from the router for a remote domain (already checked). */
void route_send(struct route *r, const char *data, size_t len);
/* Bounces the queue and fails pending verifies with cond; the route goes
 * idle. */
void route_fail(struct route *r, enum xmpp_cond cond, const char *text);
void route_verify_free(struct verify *v);
/* The outgoing stream is authenticated: flush the queue. */
void route_up(struct route *r);
/* The outgoing stream's output drained: write what waited. */
void route_flush(struct route *r);
/* The current attempt failed: try the next target, or fail the route. */
void route_attempt_failed(struct route *r, enum xmpp_cond cond, const char *fmt, ...)
    PL_PRINTF(3, 4);
/* An authenticated stream closed: reconnect if stanzas wait; when it
 * died unexpectedly (not our idle close), failed attempts are retried for
 * a while (see struct route). */
void route_down(struct route *r, const char *reason, bool unexpected);
/* The resolver answered (node is <resolved/>, NULL when the iq failed). */
void route_on_resolved(struct route *r, const struct xml_node *resolved, enum xmpp_cond cond);
/* Queues a db:verify for an incoming stream (starting the route if idle). */
void route_add_verify(struct route *r, uint64_t in_id, const char *stream_id, const char *key);
/* Once a second: aged stanzas bounce, stuck attempts time out. */
void route_housekeeping(struct s2s *s2s, int64_t now);
void routes_free_all(struct s2s *s2s);

/* queue.c */
void queue_init(struct s2s_queue *q);
/* Appends a copy of data. Returns 0, or -1 when the queue is full. */
int queue_push(struct s2s_queue *q, const char *data, size_t len, size_t max_bytes,
               int64_t now) PL_WARN_UNUSED;
/* The oldest item, unlinked (caller frees), or NULL. */
struct queued *queue_pop(struct s2s_queue *q);
/* The oldest item without unlinking it, or NULL. */
const struct queued *queue_peek(const struct s2s_queue *q);
/* Puts the items of list (struct queued, oldest first) back at the head of
 * q, in order, emptying list; they keep their age. */
void queue_unshift_all(struct s2s_queue *q, struct s2s_list *list);
/* Bounces every item with cond and text, emptying q. */
void queue_bounce_all(struct s2s *s2s, struct s2s_queue *q, enum xmpp_cond cond, const char *text);

/* ack.c: stanza acknowledgements between servers (XEP-0198 without
 * resumption): what was written but not acknowledged when a stream dies
 * goes back to its route's queue, to be sent again or bounced. On a
 * bidirectional stream (XEP-0288) both sides count and ask, as XEP-0198
 * has it; "out" functions are then about what we send, on either kind of
 * stream. */
void ack_init(struct s2s_conn *sc);
/* Out: the stream is authenticated; <enable/> if the peer offered it. */
void ack_out_start(struct s2s_conn *sc);
/* Out: a stanza was written for r (at_ms: when it was first queued). */
void ack_out_sent(struct s2s_conn *sc, struct route *r, const char *data, size_t len,
                  int64_t at_ms);
/* Out: the unacknowledged stanzas go back to the head of their routes'
 * queues, in order. */
void ack_out_requeue(struct s2s_conn *sc);
/* The same for r's stanzas only (r leaves the stream, which stays). */
void ack_out_requeue_route(struct s2s_conn *sc, struct route *r);
/* Once a second: asks for an ack when stanzas wait for one. */
void ack_out_tick(struct s2s_conn *sc);
/* Bytes written and not yet acknowledged. */
size_t ack_out_pending(const struct s2s_conn *sc);
/* Elements in S2S_NS_SM, either direction. */
void ack_on_element(struct s2s_conn *sc, const struct xml_node *st);
/* In: one more stanza handled. */
void ack_in_handled(struct s2s_conn *sc);
/* The router link went down: what it had not written is lost, so each
 * incoming stream holding stanzas not yet acknowledged ends with a stream
 * error, and its peer sends them again on a new stream. */
void ack_in_link_lost(struct s2s *s2s);
void ack_free(struct s2s_conn *sc);

/* router_link.c */
int router_link_start(struct s2s *s2s, struct err *err) PL_WARN_UNUSED;
void router_link_free(struct s2s *s2s);
/* Serialises st (jabber:server or jabber:client) to the router. */
void router_link_send_node(struct s2s *s2s, const struct xml_node *st);
/* Bytes handed to the router link known to have left this process
 * (written to the socket), counted like s2s->link_bytes; updates
 * s2s->link_flushed while the link is up. */
uint64_t router_link_flushed(struct s2s *s2s);
/* Bounces a stanza (serialised text) back through the router with cond;
 * errors are never bounced (logged at debug and dropped). */
void router_link_bounce(struct s2s *s2s, const char *data, size_t len, enum xmpp_cond cond,
                        const char *text);
/* Asks the resolver for domain; the answer reaches route_on_resolved.
 * Returns the request id (heap, the caller keeps it) or NULL when the router
 * link is down. */
char *router_link_resolve(struct s2s *s2s, const char *domain);

#endif
