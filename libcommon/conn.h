/* SPDX-License-Identifier: MIT */
/* A stream connection on the event loop that hides TLS from protocol code:
 * bytes in through a callback, bytes out through conn_write, STARTTLS or
 * direct TLS (GnuTLS, server or client side, SNI, channel binding), output
 * watermarks for back-pressure, and a deferred close that keeps the conn
 * valid until the current callback returns. */
#ifndef PL_CONN_H
#define PL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "attr.h"

struct conn;
struct err;
struct event_base;
struct evbuffer;
struct tls_creds;

struct conn_ops {
    /* Plaintext bytes arrived in in (decrypted when TLS is on). The
     * callback consumes what it uses (evbuffer_drain). */
    void (*on_read)(struct conn *c, struct evbuffer *in, void *arg);
    /* The output dropped below the low watermark (see conn_set_watermark). */
    void (*on_drain)(struct conn *c, void *arg);
    /* The TLS handshake completed (after conn_starttls or a direct-TLS accept). */
    void (*on_tls)(struct conn *c, void *arg);
    /* The peer closed, an I/O or TLS error happened, or the close deadline
     * passed: the conn is about to be freed; reason says why. */
    void (*on_close)(struct conn *c, const char *reason, void *arg);
};

/* Lifecycle. A conn ends exactly once, in one of two ways: conn_close (the
 * output is flushed first) or the peer closing / an I/O or TLS error. Either
 * way the fd is closed, then ops->on_close runs once, and the memory is
 * freed later from its own event (event_base_once), never inside a callback
 * of this conn. Every conn_* call stays safe on c until on_close returns
 * (writes are then ignored); after that c is invalid. on_close is never
 * called from inside a conn_* call: only from the event loop. Before freeing
 * the event_base, close every conn and let the loop run until it has no
 * events left, so the deferred frees happen. */

/* Wraps an accepted or connected socket (non-blocking is set here; TCP_NODELAY
 * too for TCP). The conn owns fd from now on and closes it. ops and arg must
 * outlive the conn; any op except on_read may be NULL. */
struct conn *conn_new(struct event_base *base, int fd, const struct conn_ops *ops, void *arg);
/* Starts a TLS handshake as server (creds from tls_creds_new). Bytes
 * already written are flushed in plaintext first, so "<proceed/>" then
 * conn_starttls is correct. Input received after the call is TLS.
 * Plaintext input still in the on_read buffer at the call is discarded: a
 * client must send nothing after <starttls/> until <proceed/> (RFC 6120
 * 5.4.3.3), so those bytes can only be an attack or a bug. The conn holds a
 * reference to creds (tls_creds_free may come first). Writes made after the
 * call go out encrypted once the handshake is done. Returns 0, or -1 with err
 * (TLS already on, or a GnuTLS setup failure) and the conn unchanged. */
int conn_starttls_server(struct conn *c, struct tls_creds *creds, struct err *err) PL_WARN_UNUSED;
/* Client side: verifies the peer against the system trust store or
 * ca_file and server_name (RFC 6125, SNI sent) unless verify is false. */
int conn_starttls_client(struct conn *c, const char *server_name, const char *ca_file, bool verify,
                         struct err *err) PL_WARN_UNUSED;

/* The full set of client-side options; conn_starttls_client is this with
 * no certificate and the default priority. Strings are copied. */
struct conn_tls_client_opts {
    /* Sent as SNI (unless an IP literal) and, with verify, matched against
     * the certificate (RFC 6125). May be NULL only when verify is false. */
    const char *server_name;
    const char *ca_file; /* PEM trust anchors; NULL: the system trust store */
    /* false: the handshake succeeds whatever the certificate, and
     * conn_tls_peer_verified says whether it would have verified. */
    bool verify;
    const char *cert_file; /* optional client certificate and key, PEM */
    const char *key_file;
    const char *priority; /* NULL: "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" */
};
/* As conn_starttls_client, with a client certificate (s2s, SASL EXTERNAL)
 * and a priority string. Loading the system trust store costs a few ms per
 * call. Returns 0, or -1 with err (naming the file) and the conn unchanged. */
int conn_starttls_client_opts(struct conn *c, const struct conn_tls_client_opts *opts,
                              struct err *err) PL_WARN_UNUSED;

void conn_write(struct conn *c, const void *data, size_t len);
void conn_write_str(struct conn *c, const char *s);
size_t conn_output_len(const struct conn *c);
/* on_drain fires when the output falls to low or below after having been
 * above high (conn_output_len). high 0 (the default) turns it off. */
void conn_set_watermark(struct conn *c, size_t low, size_t high);
/* Stops or resumes reading (back-pressure, rate limits). Input already
 * buffered (in the on_read buffer or decrypted inside GnuTLS) is delivered
 * after resuming without waiting for the socket. A TLS handshake in progress
 * reads regardless. */
void conn_pause_read(struct conn *c, bool paused);

/* Flushes the output (at most grace_ms; 0: what the socket takes now),
 * sends a TLS close_notify (best effort), and closes; on_close is then
 * called with reason (copied), from the event loop. Input arriving
 * meanwhile is read and discarded, never delivered. Output queued for a TLS
 * handshake that has not finished is dropped. The conn stays valid until the
 * callback that called this returns. Safe to call twice. */
void conn_close(struct conn *c, const char *reason, int grace_ms);

bool conn_is_tls(const struct conn *c);
/* After the handshake: the SNI name the client sent (server side; on the
 * client side the name this end sent) or NULL; the negotiated version,
 * e.g. "TLS1.3", or NULL before the handshake. */
const char *conn_tls_sni(const struct conn *c);
const char *conn_tls_version(const struct conn *c);
/* Channel binding data (RFC 5929 tls-unique for TLS 1.2, RFC 9266
 * tls-exporter for TLS 1.3 and 1.2). type is "tls-unique" or
 * "tls-exporter". Returns the length written to out (<= outlen), or -1 if
 * that type is unavailable on this connection. tls-exporter (32 bytes,
 * label "EXPORTER-Channel-Binding", empty context) needs TLS 1.3, or TLS 1.2
 * with the extended master secret (RFC 7627); tls-unique needs TLS 1.2. -1
 * too before the handshake, for an unknown type, or when outlen is short. */
int conn_tls_channel_binding(const struct conn *c, const char *type, unsigned char *out,
                             size_t outlen);
/* The verified client certificate's identities (for SASL EXTERNAL):
 * returns the first XMPP address (id-on-xmppAddr) or NULL. */
const char *conn_tls_peer_xmpp_addr(const struct conn *c);
/* After the handshake: the peer presented a certificate that verified: on
 * the server side against tls_creds_new's ca_file (an unverifiable client
 * certificate does not fail the handshake, it only leaves this false); on
 * the client side against the trust anchors and server_name. */
bool conn_tls_peer_verified(const struct conn *c);
/* After the handshake: true when the peer's certificate verified (as
 * conn_tls_peer_verified) and names domain (RFC 6125 §6: a DNS-ID equal to
 * it, or a wildcard in its leftmost label, or an id-on-xmppAddr equal to it;
 * RFC 6120 §13.7.1.4). For server-to-server authentication, where the name
 * to prove is known only from the stream header, after TLS. */
bool conn_tls_peer_names(const struct conn *c, const char *domain);

/* The peer's address as "ip:port" ("[v6]:port"; "unix" for AF_UNIX), taken
 * at conn_new and owned by the conn. */
const char *conn_peer(const struct conn *c);
const struct sockaddr *conn_peer_addr(const struct conn *c);

/* Server credentials: one certificate and key per domain, chosen by SNI
 * (the first is the default). priority is a GnuTLS priority string (NULL:
 * "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"). ca_file, if set, asks
 * clients for certificates and verifies them (SASL EXTERNAL). */
struct tls_cert_cfg {
    const char *domain;
    const char *cert_file;
    const char *key_file;
};
/* Files are read now (PEM); every string is copied. A client certificate
 * that does not verify against ca_file leaves the conn without a verified
 * identity; it never fails the handshake. SNI names match domains ASCII
 * case-insensitively. Returns NULL with err naming the file and GnuTLS's
 * reason, or the priority string and the position of the bad element. */
struct tls_creds *tls_creds_new(const struct tls_cert_cfg *certs, size_t ncerts,
                                const char *priority, const char *ca_file, struct err *err);
/* Drops the caller's reference and sets *creds to NULL; conns that started
 * TLS with it keep theirs, so a reload can swap credentials at any time. */
void tls_creds_free(struct tls_creds **creds);
/* Asks peers for certificates and verifies them against the system trust
 * store (for a server that has no ca_file but must see its peers'
 * certificates: s2s). Returns 0, or -1 with err and creds unchanged. */
int tls_creds_trust_system(struct tls_creds *creds, struct err *err) PL_WARN_UNUSED;

#endif
