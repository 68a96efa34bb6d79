/* SPDX-License-Identifier: MIT */
/* parley-c2s: the context, the client connection and session structs, and
 * the functions the c2s's files share. docs: c2s/README.md. */
#ifndef PL_C2S_H
#define PL_C2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attr.h"
#include "common_cfg.h"
#include "conf.h"
#include "conn.h"
#include "err.h"
#include "list.h"
#include "log.h"

struct buf;
struct comp_client;
struct daemon;
struct event;
struct event_base;
struct evconnlistener;
struct hmap;
struct session;
struct store;
struct xml_node;
struct xstream;
struct xstream_pool;

#define C2S_NS_TLS       "urn:ietf:params:xml:ns:xmpp-tls"
#define C2S_NS_SASL      "urn:ietf:params:xml:ns:xmpp-sasl"
#define C2S_NS_BIND      "urn:ietf:params:xml:ns:xmpp-bind"
#define C2S_NS_SESSION   "urn:ietf:params:xml:ns:xmpp-session"
#define C2S_NS_REGISTER  "jabber:iq:register"
#define C2S_NS_REG_FEAT  "http://jabber.org/features/iq-register"
#define C2S_NS_SASL_CB   "urn:xmpp:sasl-cb:0"
#define C2S_NS_SM_LINK   "urn:parley:session:1"
#define C2S_NS_ROSTERVER "urn:xmpp:features:rosterver"

/* ---- configuration (<c2s>) ------------------------------------------------ */

struct c2s_cfg {
    const char *name;
    const char *listen; /* NULL: <router-link><address> */
    long port;          /* STARTTLS; 0 = off */
    long tls_port;      /* direct TLS (XEP-0368); 0 = off */
    long http_port;     /* BOSH/WebSocket: accepted, not served yet */
    struct tls_cert_cfg *certs;
    size_t ncerts;
    const char *tls_priority;
    const char *tls_ca_file;
    bool require_tls;
    bool allow_plaintext_auth;
    bool registration;
    const char **anonymous; /* domains allowing SASL ANONYMOUS */
    size_t nanonymous;
    size_t max_stanza;
    long idle_timeout_ms; /* 0 = none */
    long keepalive_ms;    /* whitespace after this much output silence; 0 = none */
    size_t rate;          /* bytes/s per connection; 0 = unlimited */
    long auth_fail_limit; /* failures per minute per IP; 0 = no limit */
    long max_connections;
    long scram_iterations;
    long sm_grace_ms; /* how long sessions wait for an unreachable sm */
};

extern const struct conf_table c2s_cfg_table;
int c2s_cfg_validate(const struct common_cfg *common, const void *cfg, struct err *err);

/* ---- clients ---------------------------------------------------------------- */

enum client_state {
    CLIENT_TLS_HANDSHAKE, /* waiting for conn's on_tls */
    CLIENT_WAIT_HEADER,   /* a new stream (start, after TLS, after SASL) */
    CLIENT_PRE_AUTH,      /* features sent: STARTTLS, SASL, registration */
    CLIENT_SASL,          /* a SASL exchange is in progress */
    CLIENT_AUTHED,        /* authenticated stream: bind, session, password change */
    CLIENT_BINDING,       /* bind sent to the sm, result held until <started/> */
    CLIENT_SESSION,       /* stanzas flow both ways */
    CLIENT_CLOSING,       /* closed or closing; input ignored */
};

/* Why reading from a client is paused (bits; reading resumes at 0). */
enum client_pause {
    PAUSE_RATE = 1 << 0,    /* over its byte rate: wait for the budget */
    PAUSE_BACKLOG = 1 << 1, /* too many envelopes unacknowledged by the sm */
    PAUSE_ROUTER = 1 << 2,  /* the router link's output is backed up */
};

/* An asynchronous store operation on behalf of a client. The module that
 * starts it embeds this first; when the client goes away first, client is
 * set to NULL and the completion only frees the op. */
struct client_op {
    struct client *client;
};

struct sasl_state;

struct client {
    struct c2s *c2s;
    struct conn *conn;
    struct xstream *xs; /* NULL once closing (after the read that closed) */
    enum client_state state;
    bool tls;         /* the stream is encrypted */
    bool direct_tls;  /* accepted on the tls-port */
    bool authed;      /* SASL succeeded (kept across the restart) */
    bool anonymous;   /* ... with ANONYMOUS: the sm keeps no account for it */
    bool header_sent; /* our stream header for the current stream */
    bool restarted;   /* a new stream began inside the current read */
    uint8_t pause;    /* enum client_pause bits */
    uint8_t auth_failures;
    const char *domain; /* interned hosted domain (stream 'to') */
    char *local;        /* authenticated localpart */
    char *lang;         /* the stream's xml:lang, NULL if none */
    struct sasl_state *sasl;
    struct client_op *op;      /* outstanding store operation */
    struct session *sess;      /* after bind */
    char *bind_id;             /* the bind iq's id while CLIENT_BINDING */
    int64_t last_in_ms;        /* idle timeout */
    int64_t last_out_ms;       /* keepalive */
    int64_t budget;            /* rate: bytes left (may go negative) */
    int64_t budget_ms;         /* when budget was last refilled */
    struct list idle_link;     /* ctx->clients.idle, by last input */
    struct list out_link;      /* ctx->clients.quiet, by last output */
    struct list throttle_link; /* ctx->clients.throttled */
    struct list block_link;    /* ctx->clients.blocked */
    struct list all_link;      /* ctx->clients.all */
    struct log_ctx lc;
};

/* ---- the context --------------------------------------------------------------- */

struct c2s_stats {
    uint64_t accepted, refused, auth_ok, auth_failed, stanzas_in, stanzas_out;
};

struct c2s {
    struct event_base *base;
    struct daemon *daemon;
    const struct common_cfg *common;
    const struct c2s_cfg *cfg;
    char *name; /* component name */
    struct log_ctx lc;
    struct hmap *domains; /* interned domain strings, kept for the process' life */
    struct {
        struct evconnlistener *plain, *tls;
        struct event *resume; /* re-enables accepting after EMFILE */
    } listen;
    struct {
        struct tls_creds *creds; /* NULL: no TLS configured */
    } tls;
    struct {
        struct list all, idle, quiet, throttled, blocked;
        size_t count;
        /* XML parsers, lent to a client while it is inside a stanza: an
         * idle client holds none (xstream_release). */
        struct xstream_pool *parsers;
        char parsers_logged[96]; /* the last debug line about them */
        struct event *tick;      /* one-second housekeeping */
        struct event *fast_tick; /* rate and back-pressure resumes, 50 ms */
        int64_t refused_logged_ms;
    } clients;
    struct {
        void *gsasl; /* Gsasl * */
        struct store *st;
        unsigned char fake_key[32]; /* fake SCRAM salts for unknown users */
        struct hmap *fails;         /* ip -> struct authfail */
        struct list fail_list;      /* by window start, for expiry */
    } auth;
    struct {
        struct comp_client *cc;
        struct hmap *comps;    /* component name -> struct comp_names */
        struct hmap *served;   /* domain -> (uintptr_t) number of serving components */
        struct hmap *sessions; /* sid -> struct session */
        struct list all;       /* every session */
        struct list timed;     /* sessions with a deadline (link down, lingering) */
        struct list acks;      /* sessions owing the sm an ack */
        struct event *ack_timer;
    } sm;
    struct c2s_stats stats;
    bool stopping;
};

/* main.c */
/* Monotonic milliseconds, for timeouts. */
int64_t c2s_now_ms(void);

/* config.c: hosted domains, normalised and interned */
/* The interned copy of a hosted domain (normalised), or NULL. */
const char *c2s_hosted_domain(struct c2s *c2s, const char *domain);
/* (Re)marks the configured domains as hosted; interned names stay valid
 * for the process' life. */
void c2s_domains_update(struct c2s *c2s, const struct common_cfg *common);
void c2s_domains_free(struct c2s *c2s);

/* listen.c */
/* Opens the STARTTLS and direct-TLS listeners (raising the descriptor
 * limit first). Returns 0 or -1 with err. */
int listen_start(struct c2s *c2s, struct err *err) PL_WARN_UNUSED;
/* Closes the listeners; safe to call twice. */
void listen_stop(struct c2s *c2s);

/* client.c: the connection and its stream state machine */
/* Takes an accepted socket: a new client, or a refusal over
 * max-connections. fd is owned from now on. */
void client_accept(struct c2s *c2s, int fd, const struct sockaddr *sa, bool direct_tls);
/* Queues bytes for the client (ignored once it is closing). */
void client_write(struct client *c, const char *data, size_t len);
void client_write_str(struct client *c, const char *s);
/* Serialises st (namespace jabber:client in scope) to the client. */
void client_write_node(struct client *c, const struct xml_node *st);
/* Sends the stream error (after our header if it is not out yet) and
 * closes; logs the cause at info (the peer's fault) level. */
void client_stream_error(struct client *c, enum xmpp_cond cond, const char *fmt, ...)
    PL_PRINTF(3, 4);
/* Sends </stream:stream> and closes. */
void client_close(struct client *c, const char *reason);
/* Expects a new stream header (after STARTTLS or SASL). */
void client_restart(struct client *c);
/* Sets or clears one reason to stop reading from the client. */
void client_pause(struct client *c, enum client_pause why, bool on);
/* Sends every client the stream error (shutdown). */
void client_close_all(struct c2s *c2s, enum xmpp_cond cond, const char *text);
/* Once a second: idle parsers not needed lately are freed. */
void client_parsers_tick(struct c2s *c2s);
/* Sets the log prefix: "c2s IP:PORT JID:" */
void client_set_log_prefix(struct client *c);
/* The peer's IP address as text. */
void client_ip(const struct client *c, char *out, size_t len);
/* Answers an iq: a result with payload (may be NULL) when cond is
 * XMPP_COND_NONE, else an error of the condition's default type. from is
 * the request's 'to' (may be NULL). For answers after a store callback. */
void client_iq_reply(struct client *c, const char *id, const char *from,
                     const struct xml_node *payload, enum xmpp_cond cond);
/* Answers an iq with an error (condition's default type). */
void client_iq_error(struct client *c, const struct xml_node *iq, enum xmpp_cond cond);
/* Answers an iq with type result and optional payload (may be NULL). */
void client_iq_result(struct client *c, const struct xml_node *iq, const struct xml_node *payload);

/* stream.c: stream headers */
/* Checks the client's header (RFC 6120 §4.7), answers it and sends the
 * features. Returns 0, or -1 after a stream error. */
int stream_on_open(struct client *c, const struct xml_node *hdr);
/* Writes our stream header; to echoes the client's 'from' (may be NULL). */
void stream_send_header(struct client *c, const char *to);

/* features.c */
/* Sends <stream:features/> for the stream's state. */
void features_send(struct client *c);
/* PLAIN and registration send passwords: allowed over TLS, or with
 * allow-plaintext-auth. */
bool features_password_ok(const struct client *c);
/* True when TLS must come first (require-tls on an unencrypted stream). */
bool features_tls_first(const struct client *c);

/* starttls.c */
/* Loads cfg's certificates (at start and on reload; the old credentials
 * stay with connections that use them). Returns 0 or -1 with err. */
int tls_setup(struct c2s *c2s, const struct c2s_cfg *cfg, struct err *err) PL_WARN_UNUSED;
void tls_fini(struct c2s *c2s);
/* An element in the xmpp-tls namespace: <starttls/>. */
void starttls_on_element(struct client *c, const struct xml_node *st);

/* sasl.c, sasl_mech.c, sasl_msg.c */
/* GNU SASL and the fake-credential key. Returns 0 or -1 with err. */
int sasl_init(struct c2s *c2s, struct err *err) PL_WARN_UNUSED;
void sasl_fini(struct c2s *c2s);
/* <auth/>, <response/> or <abort/>. */
void sasl_on_element(struct client *c, const struct xml_node *st);
/* Ends an exchange in progress (and orphans its store lookup). */
void sasl_state_free(struct client *c);
/* Appends the mechanism names offered on c's stream (NULL-terminated). */
size_t sasl_offered(const struct client *c, const char **out, size_t max);

/* limits.c: rate, idle, keepalive, per-IP auth failures */
void limits_init(struct c2s *c2s);
void limits_fini(struct c2s *c2s);
/* A client joins or leaves the idle, keepalive and rate lists. */
void limits_client_new(struct client *c);
void limits_client_gone(struct client *c);
/* n bytes came in: idle timer restarted, rate budget charged. */
void limits_on_input(struct client *c, size_t n);
/* Bytes went out: the keepalive waits again. */
void limits_on_output(struct client *c);
/* Pauses c until the router link drains. */
void limits_block_router(struct client *c);
/* True when c's address is blocked after too many failed logins. */
bool authfail_blocked(struct c2s *c2s, const struct client *c);
/* Counts one failed login (wrong credentials) from c's address. */
void authfail_record(struct c2s *c2s, const struct client *c);

/* bind.c */
/* A bind request: validated, then <start/> to the sm; the result waits. */
void bind_on_iq(struct client *c, const struct xml_node *iq, const struct xml_node *bind);
/* The sm answered the start: the held bind result or its error. */
void bind_on_started(struct client *c, const char *jid);
void bind_on_failed(struct client *c, enum xmpp_cond cond);
/* The legacy session iq (RFC 3921): an empty result. */
void session_iq(struct client *c, const struct xml_node *iq);

/* register.c: XEP-0077. Returns true when the iq was handled. */
bool register_on_iq(struct client *c, const struct xml_node *iq);

/* stanza.c */
/* A stanza of a bound client: 'from' checked and stamped, to the sm. */
void stanza_from_client(struct client *c, struct xml_node *st);
/* A stanza from the sm, written to the client in jabber:client. */
void stanza_to_client(struct client *c, struct xml_node *st);

/* sm_link.c: the router link, component notices */
/* Connects to the router as the configured component (watching notices).
 * Returns 0 or -1 with err (no such component in the configuration). */
int sm_link_start(struct c2s *c2s, struct err *err) PL_WARN_UNUSED;
void sm_link_free(struct c2s *c2s);
/* Sends bytes to the router; returns 0 or -1 when the link is down. */
int sm_link_send(struct c2s *c2s, const char *data, size_t len);
/* True when the router link is up. */
bool sm_link_up(const struct c2s *c2s);
/* True when some connected component has bound domain. */
bool sm_link_domain_served(const struct c2s *c2s, const char *domain);
/* True when the router link is too backed up to accept more input. */
bool sm_link_congested(const struct c2s *c2s);

/* session.c: the reliable c2s <-> sm link of one session (protocol.md §8) */
/* The session table and the ack timer; sessions_free_all frees every
 * session without telling the sm (at exit). */
void sessions_init(struct c2s *c2s);
void sessions_free_all(struct c2s *c2s);
/* Creates the session for c and asks the sm to start it. */
struct session *session_start(struct client *c, const char *jid);
/* Forwards one serialised stanza to the sm. */
void session_forward(struct session *s, const char *payload, size_t len);
/* Keeps the client's last available presence (NULL: none), re-sent when
 * a restarted sm resumes the session. */
void session_remember_presence(struct session *s, const char *payload, size_t len);
/* The client is gone: tell the sm (<end/>) and linger until it is acked. */
void session_detach(struct session *s, bool tell_sm);
/* An envelope from the router (a session's, or a bounce). */
void session_on_envelope(struct c2s *c2s, const struct xml_node *env);
/* The component sm_name, which had bound names[0..n), is gone (sm_name
 * NULL: the router link): its sessions, and starting ones of those
 * domains, wait and queue for sm-grace. */
void sessions_link_down(struct c2s *c2s, const char *sm_name, const char *const *names, size_t n);
/* A component serving domain came up: waiting sessions of it resume. */
void sessions_domain_up(struct c2s *c2s, const char *domain);
/* Once a second: sessions past their deadline end. */
void sessions_housekeeping(struct c2s *c2s, int64_t now);
/* The session's full JID (the sm's choice once started). */
const char *session_jid(const struct session *s);

#endif
