/* SPDX-License-Identifier: MIT */
/* parleyctl init: writes a complete, commented one-host deployment into a
 * folder (parley.xml with random component secrets, a self-signed
 * certificate and key, the SQLite database) and says what to do next. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <idn2.h>

#include "arena.h"
#include "buf.h"
#include "conf.h"
#include "ctl.h"
#include "err.h"
#include "jid.h"

#define CERT_DAYS 365

enum init_port {
    PORT_C2S,
    PORT_C2S_TLS,
    PORT_S2S,
    PORT_S2S_TLS,
    PORT_ROUTER,
    PORT_HTTP,
    PORT_COUNT,
};

static const char *const port_names[PORT_COUNT] = {"c2s-port",     "c2s-tls-port", "s2s-port",
                                                   "s2s-tls-port", "router-port",  "http-port"};
static const long port_defaults[PORT_COUNT] = {5222, 5223, 5269, 5270, 5347, 5280};

struct init_opts {
    const char *dir;
    const char *domain;  /* normalised (RFC 7622), U-labels */
    const char *address; /* where every listener binds */
    const char *link;    /* where the daemons reach the router */
    long ports[PORT_COUNT];
    bool allow_plaintext, registration, force;
};

/* Random component secrets, 32 hex characters each. */
struct init_secrets {
    char c2s[33], sm[33], s2s[33], resolver[33], dialback[33];
};

static void usage_init(FILE *out)
{
    fprintf(out, "usage: parleyctl init DIR --domain DOMAIN [--address IP] [--c2s-port N]\n"
                 "         [--c2s-tls-port N] [--s2s-port N] [--s2s-tls-port N] [--router-port N]\n"
                 "         [--http-port N] [--allow-plaintext] [--registration] [--force]\n"
                 "  writes DIR/parley.xml, a self-signed certificate in DIR/tls and the\n"
                 "  database in DIR/data; --force overwrites an existing parley.xml\n");
}

static int parse_port(const char *name, const char *s, long *port_r)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535) {
        fprintf(stderr, "parleyctl: init: --%s: \"%s\" is not a port in 1..65535\n", name, s);
        return CTL_USAGE;
    }
    *port_r = v;
    return CTL_OK;
}

static int parse_args(int argc, char **argv, struct init_opts *o)
{
    enum { OPT_PORT = 256, OPT_PLAIN = OPT_PORT + PORT_COUNT, OPT_REG, OPT_FORCE, OPT_HELP };
    const struct option opts[] = {
        {"domain", required_argument, NULL, 'd'},
        {"address", required_argument, NULL, 'a'},
        {port_names[PORT_C2S], required_argument, NULL, OPT_PORT + PORT_C2S},
        {port_names[PORT_C2S_TLS], required_argument, NULL, OPT_PORT + PORT_C2S_TLS},
        {port_names[PORT_S2S], required_argument, NULL, OPT_PORT + PORT_S2S},
        {port_names[PORT_S2S_TLS], required_argument, NULL, OPT_PORT + PORT_S2S_TLS},
        {port_names[PORT_ROUTER], required_argument, NULL, OPT_PORT + PORT_ROUTER},
        {port_names[PORT_HTTP], required_argument, NULL, OPT_PORT + PORT_HTTP},
        {"allow-plaintext", no_argument, NULL, OPT_PLAIN},
        {"registration", no_argument, NULL, OPT_REG},
        {"force", no_argument, NULL, OPT_FORCE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 0; /* glibc: start a fresh scan of this argv (main's getopt used the global state) */
    while ((opt = getopt_long(argc, argv, "d:a:h", opts, NULL)) != -1) {
        if (opt == 'd') {
            o->domain = optarg;
        } else if (opt == 'a') {
            o->address = optarg;
        } else if (opt >= OPT_PORT && opt < OPT_PORT + PORT_COUNT) {
            int i = opt - OPT_PORT;
            if (parse_port(port_names[i], optarg, &o->ports[i]) != CTL_OK)
                return CTL_USAGE;
        } else if (opt == OPT_PLAIN) {
            o->allow_plaintext = true;
        } else if (opt == OPT_REG) {
            o->registration = true;
        } else if (opt == OPT_FORCE) {
            o->force = true;
        } else if (opt == OPT_HELP || opt == 'h') {
            usage_init(stdout);
            return -1;
        } else {
            usage_init(stderr);
            return CTL_USAGE;
        }
    }
    if (optind != argc - 1 || o->domain == NULL) {
        usage_init(stderr);
        return CTL_USAGE;
    }
    o->dir = argv[optind];
    return CTL_OK;
}

/* Normalises the domain (a DNS name: it goes into the certificate) and
 * checks the address and that no two ports are the same. */
static int check_opts(struct ctl *ctl, struct init_opts *o)
{
    struct jid j;
    struct err err = {0};
    if (jid_parse_str(ctl->a, o->domain, &j, &err) < 0 || j.local != NULL || j.resource != NULL) {
        fprintf(stderr, "parleyctl: init: --domain: \"%s\" is not a domain%s%s\n", o->domain,
                err.text[0] ? ": " : "", err.text);
        return CTL_DATAERR;
    }
    unsigned char addr[16];
    if (j.domain[0] == '[' || inet_pton(AF_INET, j.domain, addr) == 1) {
        fprintf(stderr, "parleyctl: init: --domain: use a DNS name, not an IP address\n");
        return CTL_DATAERR;
    }
    o->domain = j.domain;
    bool v4 = inet_pton(AF_INET, o->address, addr) == 1;
    if (!v4 && inet_pton(AF_INET6, o->address, addr) != 1) {
        fprintf(stderr, "parleyctl: init: --address: \"%s\" is not a numeric IP address\n",
                o->address);
        return CTL_DATAERR;
    }
    /* Daemons cannot connect to a wildcard; the router then stays on loopback. */
    o->link = o->address;
    if (strcmp(o->address, "0.0.0.0") == 0)
        o->link = "127.0.0.1";
    else if (!v4 && memcmp(addr, &in6addr_any, sizeof(in6addr_any)) == 0)
        o->link = "::1";
    for (int i = 0; i < PORT_COUNT; i++) {
        for (int k = 0; k < i; k++) {
            if (o->ports[i] == o->ports[k]) {
                fprintf(stderr, "parleyctl: init: --%s and --%s are both %ld\n", port_names[k],
                        port_names[i], o->ports[i]);
                return CTL_USAGE;
            }
        }
    }
    return CTL_OK;
}

/* mkdir -p; existing folders are fine. */
static int make_dirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) < 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Writes data to path with exactly this mode: a temporary file in the same
 * folder, then rename, so a reader never sees half a file. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkstemp(tmp);
    if (fd < 0)
        return -1;
    const char *p = data;
    size_t left = len;
    int rc = fchmod(fd, mode);
    while (rc == 0 && left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -1;
        } else {
            p += n;
            left -= (size_t)n;
        }
    }
    if (rc == 0)
        rc = fsync(fd);
    if (close(fd) < 0)
        rc = -1;
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc < 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
    }
    return rc;
}

static int random_hex(char out[33])
{
    unsigned char raw[16];
    if (gnutls_rnd(GNUTLS_RND_KEY, raw, sizeof(raw)) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

static int make_secrets(struct init_secrets *s)
{
    if (random_hex(s->c2s) < 0 || random_hex(s->sm) < 0 || random_hex(s->s2s) < 0 ||
        random_hex(s->resolver) < 0 || random_hex(s->dialback) < 0) {
        fprintf(stderr, "parleyctl: init: no random numbers from GnuTLS\n");
        return CTL_FAIL;
    }
    return CTL_OK;
}

/* Name, SANs (domain and *.domain, in A-labels), validity and extensions of
 * a leaf certificate for a server; the key is set by the caller. */
static int cert_fill(gnutls_x509_crt_t crt, const char *domain, struct err *err)
{
    char *ace = NULL;
    if (idn2_to_ascii_8z(domain, &ace, IDN2_NONTRANSITIONAL) != IDN2_OK)
        return err_set(err, XMPP_COND_UNDEFINED_CONDITION, "%s has no ASCII form", domain);
    char wild[512];
    snprintf(wild, sizeof(wild), "*.%s", ace);
    unsigned char serial[16];
    time_t now = time(NULL);
    int r = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
    serial[0] &= 0x7f; /* a positive serial number */
    if (r >= 0)
        r = gnutls_x509_crt_set_version(crt, 3);
    if (r >= 0)
        r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
    if (r >= 0)
        r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, ace, strlen(ace));
    if (r >= 0)
        r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, ace,
                                                 (unsigned)strlen(ace), GNUTLS_FSAN_SET);
    if (r >= 0)
        r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, wild,
                                                 (unsigned)strlen(wild), GNUTLS_FSAN_APPEND);
    if (r >= 0)
        r = gnutls_x509_crt_set_activation_time(crt, now);
    if (r >= 0)
        r = gnutls_x509_crt_set_expiration_time(crt, now + (time_t)CERT_DAYS * 86400);
    if (r >= 0)
        r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
    if (r >= 0)
        r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
    if (r >= 0)
        r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
    if (r >= 0) /* s2s presents the same certificate as a client */
        r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
    free(ace);
    if (r < 0)
        return err_set(err, XMPP_COND_UNDEFINED_CONDITION, "certificate: %s", gnutls_strerror(r));
    return 0;
}

/* A self-signed ECDSA P-256 certificate for domain, PEM: certificate in
 * cert_r, PKCS#8 key in key_r (the caller frees both with gnutls_free). */
static int make_cert(const char *domain, gnutls_datum_t *cert_r, gnutls_datum_t *key_r,
                     struct err *err)
{
    int rc = -1;
    gnutls_x509_privkey_t key = NULL;
    gnutls_x509_crt_t crt = NULL;
    int r = gnutls_x509_privkey_init(&key);
    if (r >= 0)
        r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
    if (r >= 0)
        r = gnutls_x509_crt_init(&crt);
    if (r < 0) {
        err_set(err, XMPP_COND_UNDEFINED_CONDITION, "key: %s", gnutls_strerror(r));
        goto out;
    }
    if (cert_fill(crt, domain, err) < 0)
        goto out;
    unsigned char id[64];
    size_t idlen = sizeof(id);
    r = gnutls_x509_crt_set_key(crt, key);
    if (r >= 0)
        r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &idlen);
    if (r >= 0)
        r = gnutls_x509_crt_set_subject_key_id(crt, id, idlen);
    if (r >= 0)
        r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
    if (r >= 0)
        r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, cert_r);
    if (r >= 0) {
        r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                              key_r);
        if (r < 0)
            gnutls_free(cert_r->data);
    }
    if (r < 0) {
        err_set(err, XMPP_COND_UNDEFINED_CONDITION, "certificate: %s", gnutls_strerror(r));
        goto out;
    }
    rc = 0;
out:
    if (crt != NULL)
        gnutls_x509_crt_deinit(crt);
    if (key != NULL)
        gnutls_x509_privkey_deinit(key);
    return rc;
}

/* Writes DIR/tls/D.pem and D.key, unless both exist already (kept on
 * --force, so clients that accepted the certificate keep working). Sets
 * *kept_r. */
static int write_cert(struct ctl *ctl, const struct init_opts *o, bool *kept_r)
{
    const char *tls = arena_printf(ctl->a, "%s/tls", o->dir);
    const char *crt_path = arena_printf(ctl->a, "%s/%s.pem", tls, o->domain);
    const char *key_path = arena_printf(ctl->a, "%s/%s.key", tls, o->domain);
    *kept_r = access(crt_path, F_OK) == 0 && access(key_path, F_OK) == 0;
    if (*kept_r)
        return CTL_OK;
    if (make_dirs(tls, 0755) < 0) {
        fprintf(stderr, "parleyctl: init: cannot create %s: %s\n", tls, strerror(errno));
        return CTL_FAIL;
    }
    gnutls_datum_t crt, key;
    struct err err = {0};
    if (make_cert(o->domain, &crt, &key, &err) < 0) {
        fprintf(stderr, "parleyctl: init: %s\n", err.text);
        return CTL_FAIL;
    }
    int rc = CTL_OK;
    if (write_file(key_path, key.data, key.size, 0600) < 0) {
        fprintf(stderr, "parleyctl: init: cannot write %s: %s\n", key_path, strerror(errno));
        rc = CTL_FAIL;
    } else if (write_file(crt_path, crt.data, crt.size, 0644) < 0) {
        fprintf(stderr, "parleyctl: init: cannot write %s: %s\n", crt_path, strerror(errno));
        rc = CTL_FAIL;
    }
    gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
    gnutls_free(crt.data);
    return rc;
}

/* The common part. Every value written here is safe in XML as it stands:
 * the domain is LDH or IDNA U-labels, the address numeric, secrets hex.
 * Comments may not hold a double hyphen, so options are written short. */
static void config_common(struct buf *b, const struct init_opts *o, const struct init_secrets *s)
{
    buf_printf(b,
               "<?xml version='1.0' encoding='UTF-8'?>\n"
               "<!-- Parley configuration for %s, written by parleyctl init.\n"
               "     One file for every daemon: the common part that all of them read, then\n"
               "     one section per daemon. Relative paths are relative to this file's folder.\n"
               "     Reference: docs/configuration.md. Check it with: parleyd -t -c parley.xml\n"
               "     It holds the component secrets: keep it private (mode 0600). -->\n"
               "<parley>\n",
               o->domain);
    buf_printf(b,
               "  <!-- The XMPP domains this server hosts (repeat for more). -->\n"
               "  <domain>%s</domain>\n\n"
               "  <!-- Logging. level: error, warn, notice, info or debug; add\n"
               "       <sink>syslog</sink>, or <sink>file</sink> with <file>PATH</file>,\n"
               "       to log elsewhere than stderr (journald under systemd). -->\n"
               "  <log>\n    <level>info</level>\n  </log>\n\n",
               o->domain);
    buf_printf(b,
               "  <!-- Where parley-router listens; every other daemon connects there. -->\n"
               "  <router-link>\n    <address>%s</address>\n    <port>%ld</port>\n"
               "  </router-link>\n\n",
               o->link, o->ports[PORT_ROUTER]);
    buf_printf(b,
               "  <!-- The components allowed to connect to the router: each has its own\n"
               "       random secret for the XEP-0114 handshake, and <bind> lists the further\n"
               "       names it may take (* is the default route, for remote domains).\n"
               "       External components (gateways, bots) get a <component> here too. -->\n"
               "  <component name='c2s' secret='%s'/>\n"
               "  <component name='sm' secret='%s'><bind>%s</bind></component>\n"
               "  <component name='s2s' secret='%s'><bind>*</bind></component>\n"
               "  <component name='resolver' secret='%s'/>\n\n",
               s->c2s, s->sm, o->domain, s->s2s, s->resolver);
    buf_printf(b, "  <!-- State: the SQLite database is data/parley.db. For PostgreSQL add\n"
                  "       <storage><driver>pgsql</driver><pgsql><conninfo>...</conninfo></pgsql>\n"
                  "       </storage> (docs/deployment.md). -->\n"
                  "  <data-dir>data</data-dir>\n\n");
}

/* The daemon sections. */
static void config_sections(struct buf *b, const struct init_opts *o, const struct init_secrets *s)
{
    const char *plain = o->allow_plaintext ? "true" : "false";
    buf_printf(b, "  <!-- parley-router: the switchboard between the daemons. It listens on\n"
                  "       <router-link>; add <listen> for other hosts to reach it. -->\n"
                  "  <router/>\n\n");
    buf_printf(b,
               "  <!-- parley-c2s: client connections. STARTTLS on <port>, direct TLS on\n"
               "       <tls-port>, BOSH and WebSocket on <http-port>; one <cert> per domain\n"
               "       (self-signed by parleyctl init: replace it with one from a CA).\n"
               "       <allow-plaintext-auth> allows passwords over connections without TLS\n"
               "       (for tests only); <registration> lets clients create accounts\n"
               "       (XEP-0077). -->\n"
               "  <c2s>\n    <name>c2s</name>\n    <listen>%s</listen>\n    <port>%ld</port>\n"
               "    <tls-port>%ld</tls-port>\n    <http-port>%ld</http-port>\n",
               o->address, o->ports[PORT_C2S], o->ports[PORT_C2S_TLS], o->ports[PORT_HTTP]);
    buf_printf(b,
               "    <tls>\n      <cert domain='%s'><certfile>tls/%s.pem</certfile>"
               "<keyfile>tls/%s.key</keyfile></cert>\n    </tls>\n"
               "    <allow-plaintext-auth>%s</allow-plaintext-auth>\n",
               o->domain, o->domain, o->domain, plain);
    if (o->allow_plaintext)
        buf_printf(b, "    <require-tls>false</require-tls>\n");
    buf_printf(b, "    <registration>%s</registration>\n  </c2s>\n\n",
               o->registration ? "true" : "false");
    buf_printf(b, "  <!-- parley-sm: sessions, rosters, presence and offline messages for\n"
                  "       the hosted domains. -->\n"
                  "  <sm>\n    <name>sm</name>\n"
                  "    <!-- Every IM feature is on. To switch some off (at the next start\n"
                  "         of parley-sm), name them: active, adhoc, basic, blocking, caps,\n"
                  "         carbons, last, mam, motd, pep, privacy, private, vacation, vcard\n"
                  "         (blocking needs privacy; roster, presence, subscriptions, disco\n"
                  "         and offline storage are always on).\n"
                  "    <features>\n"
                  "      <disable>vcard</disable>\n"
                  "      <disable>mam</disable>\n"
                  "    </features>\n"
                  "    -->\n"
                  "  </sm>\n\n");
    buf_printf(b,
               "  <!-- parley-s2s: federation with other servers. STARTTLS on <port>,\n"
               "       direct TLS on <tls-port> (XEP-0368), the same certificate as c2s\n"
               "       (a remote server checks it for SASL EXTERNAL; with a self-signed one\n"
               "       servers fall back to dialback, keyed with <dialback-secret>).\n"
               "       <auth> is allow-dialback or require-valid-cert; add\n"
               "       <remote domain='...'><auth>...</auth></remote> per remote domain. -->\n"
               "  <s2s>\n    <name>s2s</name>\n    <listen>%s</listen>\n    <port>%ld</port>\n"
               "    <tls-port>%ld</tls-port>\n",
               o->address, o->ports[PORT_S2S], o->ports[PORT_S2S_TLS]);
    buf_printf(b,
               "    <tls>\n      <cert domain='%s'><certfile>tls/%s.pem</certfile>"
               "<keyfile>tls/%s.key</keyfile></cert>\n    </tls>\n"
               "    <dialback-secret>%s</dialback-secret>\n"
               "    <auth>allow-dialback</auth>\n    <require-tls>true</require-tls>\n"
               "  </s2s>\n\n",
               o->domain, o->domain, o->domain, s->dialback);
    buf_printf(b, "  <!-- parley-resolver: DNS for s2s (SRV, then A/AAAA). With no\n"
                  "       <nameserver> it asks the ones in /etc/resolv.conf. -->\n"
                  "  <resolver>\n  </resolver>\n"
                  "</parley>\n");
}

/* Loads the common part of what was just written, as every daemon will,
 * and creates the database schema so that parleyctl user add works. */
static int init_store(struct ctl *ctl, const char *config_path)
{
    struct common_cfg common;
    const struct conf_table *tables[] = {&common_cfg_table};
    void *const outs[] = {&common};
    struct err err = {0};
    if (conf_load(config_path, tables, outs, 1, common_cfg_sections, ctl->a, &err) < 0 ||
        common_cfg_validate(&common, &err) < 0) {
        fprintf(stderr, "parleyctl: init: the new configuration does not load: %s\n", err.text);
        return CTL_CONFIG;
    }
    ctl->common = &common;
    ctl->base = event_base_new();
    if (ctl->base == NULL) {
        fprintf(stderr, "parleyctl: init: cannot create an event loop\n");
        return CTL_FAIL;
    }
    int rc = ctl_store_open(ctl, true, false);
    store_close(&ctl->st);
    event_base_free(ctl->base);
    ctl->base = NULL;
    ctl->common = NULL;
    return rc;
}

static void print_next(const struct init_opts *o, const char *dir, bool kept)
{
    printf("Parley is configured for %s in %s:\n"
           "  parley.xml       the configuration (it holds secrets: keep it private)\n"
           "  tls/%s.pem, tls/%s.key\n"
           "                   %s\n"
           "  data/parley.db   the SQLite database\n\n",
           o->domain, dir, o->domain, o->domain,
           kept ? "the existing certificate and key, kept"
                : "a self-signed certificate for it and its subdomains, valid one year");
    printf("Next steps:\n"
           "  1. Start the server (foreground; under systemd use Type=notify):\n"
           "       parleyd --config %s/parley.xml --foreground\n"
           "     or check the configuration first:\n"
           "       parleyd --config %s/parley.xml --check\n"
           "  2. Add a user (the password is asked for on stdin):\n"
           "       parleyctl --config %s/parley.xml user add alice@%s\n",
           dir, dir, dir, o->domain);
    printf("  3. Connect a client (Gajim, Dino, Conversations, ...) as alice@%s.\n"
           "     If %s does not resolve to this host, set the client's server\n"
           "     to %s, port %ld (STARTTLS) or %ld (direct TLS).\n"
           "     The certificate is self-signed: accept it in the client, or replace\n"
           "     tls/%s.pem and tls/%s.key with a certificate from a CA.\n",
           o->domain, o->domain, o->address, o->ports[PORT_C2S], o->ports[PORT_C2S_TLS], o->domain,
           o->domain);
    if (o->allow_plaintext)
        printf("     Plaintext passwords without TLS are allowed (--allow-plaintext):\n"
               "     for tests only.\n");
    if (o->registration)
        printf("     In-band registration is on: clients can create their own accounts.\n");
}

/* Creates DIR and refuses to replace DIR/parley.xml without --force. */
static int prepare_dir(struct ctl *ctl, struct init_opts *o, const char **config_r)
{
    if (make_dirs(o->dir, 0755) < 0) {
        fprintf(stderr, "parleyctl: init: cannot create %s: %s\n", o->dir, strerror(errno));
        return CTL_FAIL;
    }
    char real[PATH_MAX];
    if (realpath(o->dir, real) == NULL) {
        fprintf(stderr, "parleyctl: init: %s: %s\n", o->dir, strerror(errno));
        return CTL_FAIL;
    }
    o->dir = arena_strdup(ctl->a, real);
    *config_r = arena_printf(ctl->a, "%s/parley.xml", o->dir);
    if (!o->force && access(*config_r, F_OK) == 0) {
        fprintf(stderr, "parleyctl: init: %s exists; use --force to overwrite it\n", *config_r);
        return CTL_FAIL;
    }
    const char *data = arena_printf(ctl->a, "%s/data", o->dir);
    if (make_dirs(data, 0750) < 0) {
        fprintf(stderr, "parleyctl: init: cannot create %s: %s\n", data, strerror(errno));
        return CTL_FAIL;
    }
    return CTL_OK;
}

int ctl_init(struct ctl *ctl, int argc, char **argv)
{
    struct init_opts o = {.address = "127.0.0.1"};
    memcpy(o.ports, port_defaults, sizeof(o.ports));
    int rc = parse_args(argc, argv, &o);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    if ((rc = check_opts(ctl, &o)) != CTL_OK)
        return rc;
    const char *config;
    if ((rc = prepare_dir(ctl, &o, &config)) != CTL_OK)
        return rc;
    struct init_secrets s;
    bool kept;
    if ((rc = make_secrets(&s)) != CTL_OK || (rc = write_cert(ctl, &o, &kept)) != CTL_OK)
        return rc;
    struct buf b = BUF_INIT;
    config_common(&b, &o, &s);
    config_sections(&b, &o, &s);
    if (write_file(config, b.data, b.len, 0600) < 0) {
        fprintf(stderr, "parleyctl: init: cannot write %s: %s\n", config, strerror(errno));
        rc = CTL_FAIL;
    }
    explicit_bzero(b.data, b.len);
    explicit_bzero(&s, sizeof(s));
    buf_fini(&b);
    if (rc == CTL_OK)
        rc = init_store(ctl, config);
    if (rc == CTL_OK)
        print_next(&o, o.dir, kept);
    return rc;
}
