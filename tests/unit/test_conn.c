/* SPDX-License-Identifier: MIT */
/* Unit tests for conn: plaintext, STARTTLS and direct TLS between a server
 * and a client conn on loopback TCP in one event loop, with certificates
 * generated at run time (a test CA, two server names, client certificates). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "conn.h"
#include "err.h"

#define MIB           (1024 * 1024)
#define SMALL_SOCKBUF (16 * 1024)
#define RUN_LIMIT_S   20

/* ---- certificates ---- */

struct pki {
    char dir[64];
    char ca[128];
    char example_cert[128], example_key[128];
    char other_cert[128], other_key[128];
    char alice_cert[128], alice_key[128];     /* CA-signed, xmppAddr alice@example.test */
    char mallory_cert[128], mallory_key[128]; /* self-signed, xmppAddr mallory@example.test */
};

enum cert_kind { CERT_CA, CERT_SERVER, CERT_CLIENT };

static void write_file(const char *path, const gnutls_datum_t *d)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(d->data, 1, d->size, f), d->size);
    assert_int_equal(fclose(f), 0);
}

static gnutls_x509_privkey_t new_key(const char *path)
{
    gnutls_x509_privkey_t key;
    assert_int_equal(gnutls_x509_privkey_init(&key), 0);
    assert_int_equal(gnutls_x509_privkey_generate(
                         key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
                     0);
    gnutls_datum_t pem;
    assert_int_equal(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &pem), 0);
    write_file(path, &pem);
    gnutls_free(pem.data);
    return key;
}

/* name is the DNS name (servers), the xmppAddr (clients) or the CN (CA).
 * issuer NULL: self-signed. */
static gnutls_x509_crt_t new_cert(enum cert_kind kind, const char *name, unsigned char serial_no,
                                  gnutls_x509_privkey_t key, gnutls_x509_crt_t issuer,
                                  gnutls_x509_privkey_t issuer_key, const char *path)
{
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_set_version(crt, 3), 0);
    unsigned char serial[4] = {0x01, 0x02, 0x03, serial_no};
    assert_int_equal(gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)), 0);
    time_t now = time(NULL);
    assert_int_equal(gnutls_x509_crt_set_activation_time(crt, now - 3600), 0);
    assert_int_equal(gnutls_x509_crt_set_expiration_time(crt, now + 30 * 86400), 0);
    assert_int_equal(gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
                                                   (unsigned)strlen(name)),
                     0);
    assert_int_equal(gnutls_x509_crt_set_key(crt, key), 0);
    unsigned char kid[64];
    size_t kid_len = sizeof(kid);
    assert_int_equal(gnutls_x509_crt_get_key_id(crt, 0, kid, &kid_len), 0);
    assert_int_equal(gnutls_x509_crt_set_subject_key_id(crt, kid, kid_len), 0);
    switch (kind) {
    case CERT_CA:
        assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 1, -1), 0);
        assert_int_equal(
            gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN), 0);
        break;
    case CERT_SERVER:
        assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), 0);
        assert_int_equal(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
        assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0), 0);
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, name,
                                                              (unsigned)strlen(name),
                                                              GNUTLS_FSAN_APPEND),
                         0);
        break;
    case CERT_CLIENT:
        assert_int_equal(gnutls_x509_crt_set_basic_constraints(crt, 0, -1), 0);
        assert_int_equal(gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE), 0);
        assert_int_equal(gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), 0);
        /* A DNS name first, so the xmppAddr is not the first SAN. */
        assert_int_equal(gnutls_x509_crt_set_subject_alt_name(
                             crt, GNUTLS_SAN_DNSNAME, "client.test", 11, GNUTLS_FSAN_APPEND),
                         0);
        assert_int_equal(gnutls_x509_crt_set_subject_alt_othername(
                             crt, "1.3.6.1.5.5.7.8.5", name, (unsigned)strlen(name),
                             GNUTLS_FSAN_APPEND | GNUTLS_FSAN_ENCODE_UTF8_STRING),
                         0);
        break;
    }
    assert_int_equal(gnutls_x509_crt_sign2(crt, issuer != NULL ? issuer : crt,
                                           issuer_key != NULL ? issuer_key : key, GNUTLS_DIG_SHA256,
                                           0),
                     0);
    gnutls_datum_t pem;
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem), 0);
    write_file(path, &pem);
    gnutls_free(pem.data);
    return crt;
}

static void leaf(enum cert_kind kind, const char *name, unsigned char serial_no,
                 gnutls_x509_crt_t ca, gnutls_x509_privkey_t ca_key, const char *cert_path,
                 const char *key_path)
{
    gnutls_x509_privkey_t key = new_key(key_path);
    gnutls_x509_crt_t crt = new_cert(kind, name, serial_no, key, ca, ca_key, cert_path);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
}

static int group_setup(void **state)
{
    struct pki *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    snprintf(p->dir, sizeof(p->dir), "/tmp/test_conn.XXXXXX");
    assert_non_null(mkdtemp(p->dir));
#define PKI_PATH(field, file) snprintf(p->field, sizeof(p->field), "%s/" file, p->dir)
    PKI_PATH(ca, "ca.pem");
    PKI_PATH(example_cert, "example.pem");
    PKI_PATH(example_key, "example.key");
    PKI_PATH(other_cert, "other.pem");
    PKI_PATH(other_key, "other.key");
    PKI_PATH(alice_cert, "alice.pem");
    PKI_PATH(alice_key, "alice.key");
    PKI_PATH(mallory_cert, "mallory.pem");
    PKI_PATH(mallory_key, "mallory.key");
#undef PKI_PATH
    char ca_key_path[128];
    snprintf(ca_key_path, sizeof(ca_key_path), "%s/ca.key", p->dir);
    gnutls_x509_privkey_t ca_key = new_key(ca_key_path);
    gnutls_x509_crt_t ca = new_cert(CERT_CA, "Parley Test CA", 1, ca_key, NULL, NULL, p->ca);
    leaf(CERT_SERVER, "example.test", 2, ca, ca_key, p->example_cert, p->example_key);
    leaf(CERT_SERVER, "other.test", 3, ca, ca_key, p->other_cert, p->other_key);
    leaf(CERT_CLIENT, "alice@example.test", 4, ca, ca_key, p->alice_cert, p->alice_key);
    leaf(CERT_CLIENT, "mallory@example.test", 5, NULL, NULL, p->mallory_cert, p->mallory_key);
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_privkey_deinit(ca_key);
    unlink(ca_key_path);
    *state = p;
    return 0;
}

static int group_teardown(void **state)
{
    struct pki *p = *state;
    const char *files[] = {p->ca,         p->example_cert, p->example_key,
                           p->other_cert, p->other_key,    p->alice_cert,
                           p->alice_key,  p->mallory_cert, p->mallory_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(p->dir);
    free(p);
    return 0;
}

/* ---- two conns in one loop ---- */

struct env;

struct peer {
    struct env *env;
    struct conn *c;
    unsigned char *rx;
    size_t rx_len, rx_cap;
    int n_read, n_tls, n_drain, n_close;
    char reason[256];
    /* Test-specific behaviour; NULL: append everything to rx. */
    void (*read_hook)(struct peer *p, struct evbuffer *in);
    void (*tls_hook)(struct peer *p);
    void (*drain_hook)(struct peer *p);
    size_t expect; /* bulk: bytes to receive */
    bool jitter;   /* bulk: pause after every read, resume from a timer */
};

struct env {
    struct pki *pki;
    struct event_base *base;
    struct peer srv, cli;
    int raw_fd; /* a plain socket end when a test plays the peer by hand */
    bool timed_out;
};

static void rx_append(struct peer *p, const void *data, size_t len)
{
    if (p->rx_len + len > p->rx_cap) {
        p->rx_cap = (p->rx_len + len) * 2;
        p->rx = realloc(p->rx, p->rx_cap);
        assert_non_null(p->rx);
    }
    memcpy(p->rx + p->rx_len, data, len);
    p->rx_len += len;
}

static void rx_take(struct peer *p, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    rx_append(p, evbuffer_pullup(in, (ev_ssize_t)len), len);
    evbuffer_drain(in, len);
}

static bool rx_equals(const struct peer *p, const char *s)
{
    return p->rx_len == strlen(s) && memcmp(p->rx, s, p->rx_len) == 0;
}

static void on_read(struct conn *c, struct evbuffer *in, void *arg)
{
    struct peer *p = arg;
    assert_ptr_equal(c, p->c);
    p->n_read++;
    if (p->read_hook != NULL)
        p->read_hook(p, in);
    else
        rx_take(p, in);
}

static void on_drain(struct conn *c, void *arg)
{
    struct peer *p = arg;
    assert_ptr_equal(c, p->c);
    p->n_drain++;
    if (p->drain_hook != NULL)
        p->drain_hook(p);
}

static void on_tls(struct conn *c, void *arg)
{
    struct peer *p = arg;
    assert_ptr_equal(c, p->c);
    p->n_tls++;
    if (p->tls_hook != NULL)
        p->tls_hook(p);
}

static void on_close(struct conn *c, const char *reason, void *arg)
{
    struct peer *p = arg;
    assert_ptr_equal(c, p->c);
    p->n_close++;
    snprintf(p->reason, sizeof(p->reason), "%s", reason);
    /* Still valid inside the callback. */
    assert_non_null(conn_peer(c));
    conn_write_str(c, "ignored");
    conn_close(c, "again", 0);
    p->c = NULL;
}

static const struct conn_ops test_ops = {on_read, on_drain, on_tls, on_close};

static void tcp_pair(int fds[2], int bufsize)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bufsize > 0)
        assert_int_equal(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize)), 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    assert_int_equal(listen(lfd, 1), 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(cfd >= 0);
    if (bufsize > 0) {
        assert_int_equal(setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof(bufsize)), 0);
        assert_int_equal(setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize)), 0);
    }
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int sfd = accept(lfd, NULL, NULL);
    assert_true(sfd >= 0);
    if (bufsize > 0)
        assert_int_equal(setsockopt(sfd, SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof(bufsize)), 0);
    close(lfd);
    fds[0] = sfd;
    fds[1] = cfd;
}

static struct env *env_new(void **state, int bufsize)
{
    struct env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->pki = *state;
    e->base = event_base_new();
    assert_non_null(e->base);
    e->srv.env = e;
    e->cli.env = e;
    e->raw_fd = -1;
    int fds[2];
    tcp_pair(fds, bufsize);
    e->srv.c = conn_new(e->base, fds[0], &test_ops, &e->srv);
    e->cli.c = conn_new(e->base, fds[1], &test_ops, &e->cli);
    return e;
}

static void on_run_limit(evutil_socket_t fd, short what, void *arg)
{
    struct env *e = arg;
    (void)fd;
    (void)what;
    e->timed_out = true;
}

typedef bool done_fn(const struct env *e);

/* Runs the loop until done(e); fails the test after RUN_LIMIT_S. */
static void run_until(struct env *e, done_fn *done)
{
    struct timeval limit = {RUN_LIMIT_S, 0};
    struct event *t = evtimer_new(e->base, on_run_limit, e);
    assert_non_null(t);
    assert_int_equal(evtimer_add(t, &limit), 0);
    while (!done(e) && !e->timed_out)
        assert_true(event_base_loop(e->base, EVLOOP_ONCE) >= 0);
    event_free(t);
    assert_false(e->timed_out);
}

/* Runs the loop for ms milliseconds. */
static void run_for(struct env *e, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    assert_int_equal(event_base_loopexit(e->base, &tv), 0);
    assert_int_equal(event_base_dispatch(e->base), 0);
}

static bool both_closed(const struct env *e)
{
    return e->srv.c == NULL && e->cli.c == NULL;
}

static bool both_tls_or_closed(const struct env *e)
{
    return (e->srv.n_tls > 0 || e->srv.n_close > 0) && (e->cli.n_tls > 0 || e->cli.n_close > 0);
}

static void env_free(struct env *e)
{
    if (e->srv.c != NULL)
        conn_close(e->srv.c, "teardown", 0);
    if (e->cli.c != NULL)
        conn_close(e->cli.c, "teardown", 0);
    run_until(e, both_closed);
    /* The deferred frees are the only events left. */
    assert_int_equal(event_base_dispatch(e->base), 1);
    if (e->raw_fd >= 0)
        close(e->raw_fd);
    event_base_free(e->base);
    free(e->srv.rx);
    free(e->cli.rx);
    free(e);
}

static struct tls_creds *creds_new(const struct pki *p, bool with_other, const char *priority,
                                   const char *ca_file)
{
    const struct tls_cert_cfg certs[] = {
        {"example.test", p->example_cert, p->example_key},
        {"other.test", p->other_cert, p->other_key},
    };
    struct err err = {0};
    struct tls_creds *creds = tls_creds_new(certs, with_other ? 2 : 1, priority, ca_file, &err);
    if (creds == NULL)
        fail_msg("tls_creds_new: %s", err.text);
    return creds;
}

/* Direct TLS on both ends; runs until both handshakes are done or failed. */
static void start_tls(struct env *e, struct tls_creds *creds,
                      const struct conn_tls_client_opts *opts)
{
    struct err err = {0};
    assert_int_equal(conn_starttls_server(e->srv.c, creds, &err), 0);
    if (conn_starttls_client_opts(e->cli.c, opts, &err) != 0)
        fail_msg("conn_starttls_client_opts: %s", err.text);
    run_until(e, both_tls_or_closed);
}

static struct conn_tls_client_opts client_opts(const struct env *e, const char *name)
{
    struct conn_tls_client_opts o = {.server_name = name, .ca_file = e->pki->ca, .verify = true};
    return o;
}

/* ---- plaintext ---- */

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    (void)fd;
    (void)what;
    if (p->c != NULL)
        conn_pause_read(p->c, false);
}

static void echo_hook(struct peer *p, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    conn_write(p->c, evbuffer_pullup(in, (ev_ssize_t)len), len);
    evbuffer_drain(in, len);
}

static bool cli_got_hello(const struct env *e)
{
    return e->cli.rx_len >= 12;
}

static void test_plain_echo(void **state)
{
    struct env *e = env_new(state, 0);
    e->srv.read_hook = echo_hook;
    conn_write_str(e->cli.c, "hello ");
    conn_write(e->cli.c, "world!", 6);
    run_until(e, cli_got_hello);
    assert_true(rx_equals(&e->cli, "hello world!"));

    assert_false(conn_is_tls(e->srv.c));
    assert_null(conn_tls_version(e->srv.c));
    assert_null(conn_tls_sni(e->srv.c));
    assert_null(conn_tls_peer_xmpp_addr(e->srv.c));
    assert_false(conn_tls_peer_verified(e->srv.c));
    unsigned char cb[64];
    assert_int_equal(conn_tls_channel_binding(e->srv.c, "tls-exporter", cb, sizeof(cb)), -1);

    /* Each side sees the other's address. */
    assert_int_equal(conn_peer_addr(e->srv.c)->sa_family, AF_INET);
    assert_int_equal(strncmp(conn_peer(e->srv.c), "127.0.0.1:", 10), 0);
    const struct sockaddr_in *cli_addr = (const struct sockaddr_in *)conn_peer_addr(e->cli.c);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(cli_addr->sin_port));
    assert_string_equal(conn_peer(e->cli.c), want);

    conn_close(e->cli.c, "done", 1000);
    conn_close(e->cli.c, "twice", 1000); /* no-op */
    run_until(e, both_closed);
    assert_int_equal(e->cli.n_close, 1);
    assert_string_equal(e->cli.reason, "done");
    assert_int_equal(e->srv.n_close, 1);
    assert_string_equal(e->srv.reason, "connection closed by peer");
    env_free(e);
}

static void one_byte_then_pause(struct peer *p, struct evbuffer *in)
{
    unsigned char ch;
    assert_int_equal(evbuffer_remove(in, &ch, 1), 1);
    rx_append(p, &ch, 1);
    /* The rest stays in the buffer; no new bytes will come from the socket. */
    conn_pause_read(p->c, true);
    struct timeval tv = {0, 1000};
    assert_int_equal(event_base_once(p->env->base, -1, EV_TIMEOUT, on_resume, p, &tv), 0);
}

static bool srv_got_six(const struct env *e)
{
    return e->srv.rx_len >= 6;
}

static void test_resume_redelivers_buffered_input(void **state)
{
    struct env *e = env_new(state, 0);
    e->srv.read_hook = one_byte_then_pause;
    conn_write_str(e->cli.c, "abcdef");
    run_until(e, srv_got_six);
    assert_true(rx_equals(&e->srv, "abcdef"));
    assert_int_equal(e->srv.n_read, 6);
    env_free(e);
}

/* ---- STARTTLS ---- */

#define FILLER_LEN (256 * 1024)

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 31 + (i >> 11));
}

static void starttls_srv_read(struct peer *p, struct evbuffer *in)
{
    if (conn_is_tls(p->c) || p->n_tls > 0) {
        rx_take(p, in);
        return;
    }
    /* Plaintext: "<starttls/>" followed by bytes a client must not send. */
    size_t len = evbuffer_get_length(in);
    if (len < 11)
        return;
    assert_memory_equal(evbuffer_pullup(in, 11), "<starttls/>", 11);
    evbuffer_drain(in, 11);
    unsigned char *filler = malloc(FILLER_LEN);
    assert_non_null(filler);
    for (size_t i = 0; i < FILLER_LEN; i++)
        filler[i] = pattern(i);
    conn_write(p->c, filler, FILLER_LEN);
    free(filler);
    conn_write_str(p->c, "<proceed/>");
    struct err err = {0};
    struct tls_creds *creds = creds_new(p->env->pki, false, NULL, NULL);
    assert_int_equal(conn_starttls_server(p->c, creds, &err), 0);
    assert_int_not_equal(conn_starttls_server(p->c, creds, &err), 0); /* twice */
    tls_creds_free(&creds); /* the conn holds its own reference */
    assert_null(creds);
    /* Queued after the call: must travel encrypted. */
    conn_write_str(p->c, "secret-from-server");
}

static void starttls_cli_read(struct peer *p, struct evbuffer *in)
{
    rx_take(p, in);
    if (p->n_tls > 0 || p->rx_len < FILLER_LEN + 10)
        return;
    /* All of it in plaintext, in order, "<proceed/>" last. */
    assert_int_equal(p->rx_len, FILLER_LEN + 10);
    for (size_t i = 0; i < FILLER_LEN; i++) {
        if (p->rx[i] != pattern(i))
            fail_msg("filler byte %zu differs", i);
    }
    assert_memory_equal(p->rx + FILLER_LEN, "<proceed/>", 10);
    p->rx_len = 0;
    struct err err = {0};
    if (conn_starttls_client(p->c, "example.test", p->env->pki->ca, true, &err) != 0)
        fail_msg("conn_starttls_client: %s", err.text);
}

static void starttls_cli_tls(struct peer *p)
{
    conn_write_str(p->c, "hello-over-tls");
}

static bool starttls_done(const struct env *e)
{
    return (e->cli.rx_len >= 18 && e->srv.rx_len >= 14) || e->srv.n_close > 0 || e->cli.n_close > 0;
}

static void test_starttls_flushes_plaintext_first(void **state)
{
    struct env *e = env_new(state, SMALL_SOCKBUF);
    e->srv.read_hook = starttls_srv_read;
    e->cli.read_hook = starttls_cli_read;
    e->cli.tls_hook = starttls_cli_tls;
    conn_write_str(e->cli.c, "<starttls/>junk-after-starttls");
    run_until(e, starttls_done);
    assert_int_equal(e->srv.n_close, 0);
    assert_int_equal(e->cli.n_close, 0);
    assert_int_equal(e->srv.n_tls, 1);
    assert_int_equal(e->cli.n_tls, 1);
    assert_true(rx_equals(&e->cli, "secret-from-server"));
    assert_true(rx_equals(&e->srv, "hello-over-tls"));
    assert_true(conn_is_tls(e->srv.c));
    assert_string_equal(conn_tls_sni(e->srv.c), "example.test");
    assert_true(conn_tls_peer_verified(e->cli.c));
    env_free(e);
}

static bool cli_closed(const struct env *e)
{
    return e->cli.c == NULL;
}

/* Closing between <proceed/> and the handshake: the plaintext still goes
 * out, what was queued for TLS never does. */
static void test_close_during_starttls(void **state)
{
    struct env *e = env_new(state, 0);
    struct tls_creds *creds = creds_new(e->pki, false, NULL, NULL);
    struct err err = {0};
    conn_write_str(e->srv.c, "<proceed/>");
    assert_int_equal(conn_starttls_server(e->srv.c, creds, &err), 0);
    tls_creds_free(&creds);
    conn_write_str(e->srv.c, "for-tls-only");
    conn_close(e->srv.c, "abort", 1000);
    run_until(e, cli_closed);
    assert_true(rx_equals(&e->cli, "<proceed/>"));
    assert_string_equal(e->cli.reason, "connection closed by peer");
    assert_string_equal(e->srv.reason, "abort");
    env_free(e);
}

/* ---- direct TLS ---- */

static void greet_on_tls(struct peer *p)
{
    conn_write_str(p->c, p == &p->env->srv ? "from-server" : "from-client");
}

static bool greetings_done(const struct env *e)
{
    return e->srv.rx_len >= 11 && e->cli.rx_len >= 11;
}

static void test_direct_tls(void **state)
{
    struct env *e = env_new(state, 0);
    e->srv.tls_hook = greet_on_tls;
    e->cli.tls_hook = greet_on_tls;
    struct tls_creds *creds = creds_new(e->pki, true, NULL, NULL);
    struct conn_tls_client_opts o = client_opts(e, "example.test");
    start_tls(e, creds, &o);
    tls_creds_free(&creds);
    assert_int_equal(e->srv.n_tls, 1);
    assert_int_equal(e->cli.n_tls, 1);
    run_until(e, greetings_done);
    assert_true(rx_equals(&e->srv, "from-client"));
    assert_true(rx_equals(&e->cli, "from-server"));
    assert_string_equal(conn_tls_version(e->srv.c), "TLS1.3");
    assert_string_equal(conn_tls_version(e->cli.c), "TLS1.3");
    assert_string_equal(conn_tls_sni(e->srv.c), "example.test");
    assert_true(conn_tls_peer_verified(e->cli.c));
    assert_false(conn_tls_peer_verified(e->srv.c)); /* no client certificate */
    assert_null(conn_tls_peer_xmpp_addr(e->srv.c));
    env_free(e);
}

static void test_sni_picks_certificate(void **state)
{
    struct env *e = env_new(state, 0);
    struct tls_creds *creds = creds_new(e->pki, true, NULL, NULL);
    struct conn_tls_client_opts o = client_opts(e, "OTHER.test");
    start_tls(e, creds, &o);
    tls_creds_free(&creds);
    assert_int_equal(e->cli.n_close, 0);
    assert_int_equal(e->cli.n_tls, 1);
    assert_string_equal(conn_tls_sni(e->srv.c), "OTHER.test");
    assert_true(conn_tls_peer_verified(e->cli.c));
    env_free(e);
}

static void test_wrong_name_fails_verification(void **state)
{
    struct env *e = env_new(state, 0);
    struct tls_creds *creds = creds_new(e->pki, true, NULL, NULL);
    struct conn_tls_client_opts o = client_opts(e, "nope.test");
    start_tls(e, creds, &o);
    tls_creds_free(&creds);
    run_until(e, both_closed);
    assert_int_equal(e->cli.n_tls, 0);
    assert_int_equal(e->cli.n_close, 1);
    if (strstr(e->cli.reason, "certificate verification failed") == NULL)
        fail_msg("client reason: %s", e->cli.reason);
    assert_int_equal(e->srv.n_tls, 0);
    assert_int_equal(e->srv.n_close, 1);
    env_free(e);
}

static void test_no_verify_reports_unverified(void **state)
{
    struct env *e = env_new(state, 0);
    struct tls_creds *creds = creds_new(e->pki, true, NULL, NULL);
    struct conn_tls_client_opts o = client_opts(e, "nope.test");
    o.verify = false;
    start_tls(e, creds, &o);
    tls_creds_free(&creds);
    assert_int_equal(e->cli.n_tls, 1);
    assert_int_equal(e->srv.n_tls, 1);
    assert_false(conn_tls_peer_verified(e->cli.c));
    assert_string_equal(conn_tls_sni(e->srv.c), "nope.test"); /* unknown: the first cert */
    env_free(e);
}

/* ---- channel binding ---- */

struct cb_row {
    const char *name;
    const char *server_priority;
    const char *version;
    int unique_len;   /* -1: unavailable */
    int exporter_len; /* -1: unavailable */
};

static void test_channel_binding(void **state)
{
    static const struct cb_row rows[] = {
        {"tls13", NULL, "TLS1.3", -1, 32},
        {"tls12", "NORMAL:-VERS-ALL:+VERS-TLS1.2", "TLS1.2", 12, 32},
        {"tls12-no-ems", "NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_SESSION_HASH", "TLS1.2", 12, -1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct cb_row *r = &rows[i];
        struct env *e = env_new(state, 0);
        struct tls_creds *creds = creds_new(e->pki, false, r->server_priority, NULL);
        struct conn_tls_client_opts o = client_opts(e, "example.test");
        start_tls(e, creds, &o);
        tls_creds_free(&creds);
        if (e->cli.n_tls != 1 || e->srv.n_tls != 1)
            fail_msg("%s: handshake failed: %s / %s", r->name, e->srv.reason, e->cli.reason);
        assert_string_equal(conn_tls_version(e->srv.c), r->version);
        assert_string_equal(conn_tls_version(e->cli.c), r->version);
        const char *types[] = {"tls-unique", "tls-exporter"};
        const int want[] = {r->unique_len, r->exporter_len};
        for (size_t t = 0; t < 2; t++) {
            unsigned char a[64], b[64];
            int na = conn_tls_channel_binding(e->srv.c, types[t], a, sizeof(a));
            int nb = conn_tls_channel_binding(e->cli.c, types[t], b, sizeof(b));
            if (na != want[t] || nb != want[t])
                fail_msg("%s %s: got %d/%d, want %d", r->name, types[t], na, nb, want[t]);
            if (na > 0) {
                assert_memory_equal(a, b, (size_t)na);
                /* Too short a buffer is "unavailable", not truncation. */
                assert_int_equal(conn_tls_channel_binding(e->srv.c, types[t], a, (size_t)na - 1),
                                 -1);
            }
        }
        unsigned char x[64];
        assert_int_equal(conn_tls_channel_binding(e->srv.c, "tls-server-end-point", x, 64), -1);
        env_free(e);
    }
}

/* ---- client certificates ---- */

struct client_cert_row {
    const char *name;
    bool alice; /* CA-signed, else mallory's self-signed; ignored when !present */
    bool present;
    const char *want_addr;
};

static void test_client_cert_xmpp_addr(void **state)
{
    static const struct client_cert_row rows[] = {
        {"ca-signed", true, true, "alice@example.test"},
        {"self-signed", false, true, NULL},
        {"none", false, false, NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct client_cert_row *r = &rows[i];
        struct env *e = env_new(state, 0);
        struct tls_creds *creds = creds_new(e->pki, true, NULL, e->pki->ca);
        struct conn_tls_client_opts o = client_opts(e, "example.test");
        if (r->present) {
            o.cert_file = r->alice ? e->pki->alice_cert : e->pki->mallory_cert;
            o.key_file = r->alice ? e->pki->alice_key : e->pki->mallory_key;
        }
        start_tls(e, creds, &o);
        tls_creds_free(&creds);
        if (e->cli.n_tls != 1 || e->srv.n_tls != 1)
            fail_msg("%s: handshake failed: %s / %s", r->name, e->srv.reason, e->cli.reason);
        if (r->want_addr != NULL) {
            assert_true(conn_tls_peer_verified(e->srv.c));
            assert_non_null(conn_tls_peer_xmpp_addr(e->srv.c));
            assert_string_equal(conn_tls_peer_xmpp_addr(e->srv.c), r->want_addr);
        } else {
            assert_false(conn_tls_peer_verified(e->srv.c));
            assert_null(conn_tls_peer_xmpp_addr(e->srv.c));
        }
        env_free(e);
    }
}

/* Server-to-server identities (RFC 6125): the server checks the client's
 * certificate against a domain known only after TLS; the client against
 * the name it verified. */
struct peer_name_row {
    const char *name;
    const char *cert, *key; /* the client's certificate */
    const char *ask;        /* the name checked on the server side */
    bool want;
};

static void test_peer_names(void **state)
{
    const struct pki *p = *state;
    const struct peer_name_row rows[] = {
        {"dns-id", p->other_cert, p->other_key, "other.test", true},
        {"dns-id any case", p->other_cert, p->other_key, "OTHER.test", true},
        {"not a subdomain", p->other_cert, p->other_key, "x.other.test", false},
        {"another name", p->other_cert, p->other_key, "example.test", false},
        {"xmppaddr", p->alice_cert, p->alice_key, "alice@example.test", true},
        {"second dns-id", p->alice_cert, p->alice_key, "client.test", true},
        {"self-signed", p->mallory_cert, p->mallory_key, "client.test", false},
        {"no certificate", NULL, NULL, "other.test", false},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct peer_name_row *r = &rows[i];
        struct env *e = env_new(state, 0);
        struct tls_creds *creds = creds_new(e->pki, false, NULL, e->pki->ca);
        struct conn_tls_client_opts o = client_opts(e, "example.test");
        o.verify = false;
        o.cert_file = r->cert;
        o.key_file = r->key;
        start_tls(e, creds, &o);
        tls_creds_free(&creds);
        if (e->cli.n_tls != 1 || e->srv.n_tls != 1)
            fail_msg("%s: handshake failed: %s / %s", r->name, e->srv.reason, e->cli.reason);
        if (conn_tls_peer_names(e->srv.c, r->ask) != r->want)
            fail_msg("%s: conn_tls_peer_names(%s) is not %d", r->name, r->ask, r->want);
        assert_true(conn_tls_peer_names(e->cli.c, "example.test"));
        assert_false(conn_tls_peer_names(e->cli.c, "other.test"));
        env_free(e);
    }
}

/* Without a CA file the server still asks for certificates, checked
 * against the system store: a certificate of the test CA is not valid. */
static void test_trust_system(void **state)
{
    struct env *e = env_new(state, 0);
    struct tls_creds *creds = creds_new(e->pki, false, NULL, NULL);
    struct err err = {0};
    assert_int_equal(tls_creds_trust_system(creds, &err), 0);
    struct conn_tls_client_opts o = client_opts(e, "example.test");
    o.cert_file = e->pki->other_cert;
    o.key_file = e->pki->other_key;
    start_tls(e, creds, &o);
    tls_creds_free(&creds);
    assert_int_equal(e->srv.n_tls, 1);
    assert_false(conn_tls_peer_verified(e->srv.c));
    assert_false(conn_tls_peer_names(e->srv.c, "other.test"));
    env_free(e);
}

/* ---- bulk transfer with back-pressure ---- */

#define LOW_WM  (16 * 1024)
#define HIGH_WM (64 * 1024)

static void bulk_read(struct peer *p, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    const unsigned char *data = evbuffer_pullup(in, (ev_ssize_t)len);
    for (size_t i = 0; i < len; i++) {
        if (data[i] != pattern(p->rx_len + i))
            fail_msg("byte %zu differs", p->rx_len + i);
    }
    p->rx_len += len;
    evbuffer_drain(in, len);
    assert_true(p->rx_len <= p->expect);
    if (p->jitter && p->rx_len < p->expect) {
        /* Stop now; records left inside GnuTLS must still arrive later. */
        conn_pause_read(p->c, true);
        struct timeval tv = {0, 1000};
        assert_int_equal(event_base_once(p->env->base, -1, EV_TIMEOUT, on_resume, p, &tv), 0);
    }
}

static bool bulk_done(const struct env *e)
{
    return (e->srv.rx_len == e->srv.expect && e->cli.rx_len == e->cli.expect &&
            e->srv.n_drain > 0 && e->cli.n_drain > 0) ||
           e->srv.n_close > 0 || e->cli.n_close > 0;
}

static void test_bulk_tls_back_pressure(void **state)
{
    struct env *e = env_new(state, SMALL_SOCKBUF);
    struct tls_creds *creds = creds_new(e->pki, false, NULL, NULL);
    struct conn_tls_client_opts o = client_opts(e, "example.test");
    start_tls(e, creds, &o);
    tls_creds_free(&creds);
    assert_int_equal(e->cli.n_tls, 1);

    unsigned char *blob = malloc(MIB);
    assert_non_null(blob);
    for (size_t i = 0; i < MIB; i++)
        blob[i] = pattern(i);
    struct peer *peers[] = {&e->srv, &e->cli};
    for (size_t i = 0; i < 2; i++) {
        struct peer *p = peers[i];
        p->read_hook = bulk_read;
        p->expect = MIB;
        p->jitter = true;
        conn_set_watermark(p->c, LOW_WM, HIGH_WM);
        conn_pause_read(p->c, true);
        conn_write(p->c, blob, MIB);
        assert_int_equal(conn_output_len(p->c), MIB);
    }
    free(blob);

    /* Nobody reads: the output stays above the watermark, no on_drain. */
    run_for(e, 100);
    for (size_t i = 0; i < 2; i++) {
        assert_true(conn_output_len(peers[i]->c) > HIGH_WM);
        assert_int_equal(peers[i]->n_drain, 0);
        assert_int_equal(peers[i]->rx_len, 0);
    }
    conn_pause_read(e->srv.c, false);
    conn_pause_read(e->cli.c, false);
    run_until(e, bulk_done);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(peers[i]->n_close, 0);
        assert_int_equal(peers[i]->rx_len, MIB);
        assert_int_equal(peers[i]->n_drain, 1);
        assert_int_equal(conn_output_len(peers[i]->c), 0);
    }
    env_free(e);
}

/* Plaintext output is written from the loop without waiting for
 * writability, and waits for it only once the socket is full: many small
 * writes, then more while the socket is full, all arrive in order. */
static bool cli_got_all(const struct env *e)
{
    return e->cli.rx_len == e->cli.expect || e->srv.n_close > 0 || e->cli.n_close > 0;
}

static void test_small_writes_fill_and_drain(void **state)
{
    struct env *e = env_new(state, SMALL_SOCKBUF);
    unsigned char piece[1000];
    size_t sent = 0;
    e->cli.read_hook = bulk_read;
    e->cli.expect = 2 * MIB;
    conn_pause_read(e->cli.c, true);
    while (sent < MIB) {
        for (size_t i = 0; i < sizeof(piece); i++)
            piece[i] = pattern(sent + i);
        conn_write(e->srv.c, piece, sizeof(piece));
        sent += sizeof(piece);
    }
    run_for(e, 50); /* the socket fills; the rest waits for writability */
    assert_true(conn_output_len(e->srv.c) > 0);
    assert_true(conn_output_len(e->srv.c) < sent);
    conn_pause_read(e->cli.c, false);
    while (sent < 2 * MIB) {
        size_t n = 2 * MIB - sent < sizeof(piece) ? 2 * MIB - sent : sizeof(piece);
        for (size_t i = 0; i < n; i++)
            piece[i] = pattern(sent + i);
        conn_write(e->srv.c, piece, n);
        sent += n;
    }
    run_until(e, cli_got_all);
    assert_int_equal(e->cli.rx_len, 2 * MIB);
    assert_int_equal(conn_output_len(e->srv.c), 0);
    assert_int_equal(e->srv.n_close, 0);
    assert_int_equal(e->cli.n_close, 0);
    env_free(e);
}

/* ---- closing ---- */

static bool srv_closed(const struct env *e)
{
    return e->srv.c == NULL;
}

static void test_peer_close_once(void **state)
{
    struct env *e = env_new(state, 0);
    conn_close(e->cli.c, "leaving", 0);
    run_until(e, both_closed);
    assert_int_equal(e->cli.n_close, 1);
    assert_int_equal(e->srv.n_close, 1);
    assert_string_equal(e->srv.reason, "connection closed by peer");
    run_for(e, 20);
    assert_int_equal(e->srv.n_close, 1);
    assert_int_equal(e->cli.n_close, 1);
    env_free(e);

    /* A raw socket peer that resets: still exactly one on_close. */
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    struct env *u = calloc(1, sizeof(*u));
    assert_non_null(u);
    u->pki = *state;
    u->base = event_base_new();
    u->srv.env = u;
    u->srv.c = conn_new(u->base, fds[0], &test_ops, &u->srv);
    u->raw_fd = -1;
    assert_string_equal(conn_peer(u->srv.c), "unix");
    assert_int_equal(write(fds[1], "partial", 7), 7);
    close(fds[1]);
    run_until(u, srv_closed);
    assert_true(rx_equals(&u->srv, "partial")); /* data before EOF is delivered */
    assert_int_equal(u->srv.n_close, 1);
    assert_string_equal(u->srv.reason, "connection closed by peer");
    env_free(u);
}

static void quit_hook(struct peer *p, struct evbuffer *in)
{
    rx_take(p, in);
    if (p->rx_len >= 4 && memcmp(p->rx + p->rx_len - 4, "quit", 4) == 0) {
        conn_write_str(p->c, "bye");
        conn_close(p->c, "client quit", 5000);
        /* Valid until this callback returns; writes are now ignored. */
        conn_write_str(p->c, "late");
        assert_non_null(conn_peer(p->c));
        assert_int_equal(p->n_close, 0);
    }
}

static void big_then_close_on_tls(struct peer *p)
{
    unsigned char *blob = malloc(MIB / 2);
    assert_non_null(blob);
    for (size_t i = 0; i < MIB / 2; i++)
        blob[i] = pattern(i);
    conn_write(p->c, blob, MIB / 2);
    free(blob);
    conn_write_str(p->c, "quit");
}

static void test_close_flushes_over_tls(void **state)
{
    struct env *e = env_new(state, SMALL_SOCKBUF);
    e->srv.read_hook = quit_hook;
    e->cli.tls_hook = big_then_close_on_tls;
    struct tls_creds *creds = creds_new(e->pki, false, NULL, NULL);
    struct conn_tls_client_opts o = client_opts(e, "example.test");
    start_tls(e, creds, &o);
    tls_creds_free(&creds);
    run_until(e, srv_closed);
    /* The server closed after "quit": the client got "bye", then the end. */
    assert_int_equal(e->srv.rx_len, MIB / 2 + 4);
    for (size_t i = 0; i < MIB / 2; i++) {
        if (e->srv.rx[i] != pattern(i))
            fail_msg("byte %zu differs", i);
    }
    assert_int_equal(e->srv.n_close, 1);
    assert_string_equal(e->srv.reason, "client quit");
    run_until(e, both_closed);
    assert_true(rx_equals(&e->cli, "bye"));
    assert_int_equal(e->cli.n_close, 1);
    assert_string_equal(e->cli.reason, "connection closed by peer");
    env_free(e);
}

static void test_close_with_queued_output_plain(void **state)
{
    struct env *e = env_new(state, SMALL_SOCKBUF);
    unsigned char *blob = malloc(MIB);
    assert_non_null(blob);
    for (size_t i = 0; i < MIB; i++)
        blob[i] = pattern(i);
    conn_write(e->srv.c, blob, MIB);
    free(blob);
    conn_close(e->srv.c, "done sending", 10000);
    run_until(e, both_closed);
    assert_int_equal(e->cli.rx_len, MIB);
    assert_int_equal(e->srv.n_close, 1);
    assert_string_equal(e->srv.reason, "done sending");
    assert_int_equal(e->cli.n_close, 1);
    env_free(e);
}

static void test_close_grace_expires(void **state)
{
    struct env *e = env_new(state, SMALL_SOCKBUF);
    conn_pause_read(e->cli.c, true); /* never reads */
    unsigned char *blob = calloc(1, MIB);
    assert_non_null(blob);
    conn_write(e->srv.c, blob, MIB);
    free(blob);
    conn_close(e->srv.c, "gave up", 50);
    run_until(e, srv_closed);
    assert_int_equal(e->srv.n_close, 1);
    assert_string_equal(e->srv.reason, "gave up");
    env_free(e);
}

/* ---- configuration errors ---- */

static void test_bad_priority(void **state)
{
    const struct pki *p = *state;
    const struct tls_cert_cfg cert = {"example.test", p->example_cert, p->example_key};
    struct err err = {0};
    assert_null(tls_creds_new(&cert, 1, "NORMAL:+VERS-TLS1.3:+BOGUS-THING", NULL, &err));
    if (strstr(err.text, "position 20") == NULL || strstr(err.text, "BOGUS-THING") == NULL)
        fail_msg("err: %s", err.text);

    /* The client side checks its priority string the same way. */
    struct env *e = env_new(state, 0);
    struct conn_tls_client_opts o = client_opts(e, "example.test");
    o.priority = "NORMAL:%NOPE";
    err_clear(&err);
    assert_int_equal(conn_starttls_client_opts(e->cli.c, &o, &err), -1);
    if (strstr(err.text, "position") == NULL || strstr(err.text, "NOPE") == NULL)
        fail_msg("err: %s", err.text);
    assert_false(conn_is_tls(e->cli.c));
    /* The conn is unchanged and still works in plaintext. */
    e->srv.read_hook = echo_hook;
    conn_write_str(e->cli.c, "still here!!");
    run_until(e, cli_got_hello);
    assert_true(rx_equals(&e->cli, "still here!!"));
    env_free(e);
}

struct file_err_row {
    const char *name;
    bool missing_cert, missing_key, swap_key, missing_ca;
};

static void test_file_errors_name_the_file(void **state)
{
    static const struct file_err_row rows[] = {
        {"missing cert", true, false, false, false},
        {"missing key", false, true, false, false},
        {"key mismatch", false, false, true, false},
        {"missing ca", false, false, false, true},
    };
    const struct pki *p = *state;
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no-such-file.pem", p->dir);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct file_err_row *r = &rows[i];
        const struct tls_cert_cfg certs[] = {
            {"example.test", p->example_cert, p->example_key},
            {"other.test", r->missing_cert ? missing : p->other_cert,
             r->missing_key ? missing : (r->swap_key ? p->example_key : p->other_key)},
        };
        struct err err = {0};
        struct tls_creds *creds =
            tls_creds_new(certs, 2, NULL, r->missing_ca ? missing : NULL, &err);
        assert_null(creds);
        const char *want = r->swap_key ? p->other_cert : missing;
        if (strstr(err.text, want) == NULL)
            fail_msg("%s: err does not name %s: %s", r->name, want, err.text);
        if (r->swap_key && strstr(err.text, "do not match") == NULL)
            fail_msg("%s: err lacks GnuTLS's reason: %s", r->name, err.text);
        if (!r->swap_key && strstr(err.text, "No such file") == NULL)
            fail_msg("%s: err lacks the reason: %s", r->name, err.text);
    }
    struct err err = {0};
    assert_null(tls_creds_new(NULL, 0, NULL, NULL, &err));

    /* Client side: a missing client certificate is named too. */
    struct env *e = env_new(state, 0);
    struct conn_tls_client_opts o = client_opts(e, "example.test");
    o.cert_file = missing;
    o.key_file = p->alice_key;
    assert_int_equal(conn_starttls_client_opts(e->cli.c, &o, &err), -1);
    if (strstr(err.text, missing) == NULL)
        fail_msg("err: %s", err.text);
    o = client_opts(e, "example.test");
    o.ca_file = missing;
    assert_int_equal(conn_starttls_client_opts(e->cli.c, &o, &err), -1);
    if (strstr(err.text, missing) == NULL)
        fail_msg("err: %s", err.text);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_echo),
        cmocka_unit_test(test_resume_redelivers_buffered_input),
        cmocka_unit_test(test_starttls_flushes_plaintext_first),
        cmocka_unit_test(test_close_during_starttls),
        cmocka_unit_test(test_direct_tls),
        cmocka_unit_test(test_sni_picks_certificate),
        cmocka_unit_test(test_wrong_name_fails_verification),
        cmocka_unit_test(test_no_verify_reports_unverified),
        cmocka_unit_test(test_channel_binding),
        cmocka_unit_test(test_client_cert_xmpp_addr),
        cmocka_unit_test(test_peer_names),
        cmocka_unit_test(test_trust_system),
        cmocka_unit_test(test_bulk_tls_back_pressure),
        cmocka_unit_test(test_peer_close_once),
        cmocka_unit_test(test_close_flushes_over_tls),
        cmocka_unit_test(test_close_with_queued_output_plain),
        cmocka_unit_test(test_small_writes_fill_and_drain),
        cmocka_unit_test(test_close_grace_expires),
        cmocka_unit_test(test_bad_priority),
        cmocka_unit_test(test_file_errors_name_the_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
