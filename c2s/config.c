/* SPDX-License-Identifier: MIT */
/* The <c2s> section of parley.xml: the typed table and the cross-key
 * checks. docs/configuration.md and c2s/README.md describe every key. */
#include "c2s.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "jid.h"
#include "scram.h"

static const struct conf_key cert_keys[] = {
    CONF_STR("@domain", struct tls_cert_cfg, domain, NULL, true,
             "the domain this certificate serves (SNI)"),
    CONF_PATH("certfile", struct tls_cert_cfg, cert_file, NULL, true,
              "PEM certificate chain, leaf first"),
    CONF_PATH("keyfile", struct tls_cert_cfg, key_file, NULL, true, "PEM private key"),
};
static const struct conf_table cert_table = CONF_TABLE(struct tls_cert_cfg, cert_keys);

static const struct conf_key keys[] = {
    CONF_STR("c2s.name", struct c2s_cfg, name, "c2s", false,
             "component name on the router (-n overrides)"),
    CONF_STR("c2s.listen", struct c2s_cfg, listen, NULL, false,
             "address to listen on for clients; default: <router-link><address>"),
    CONF_INT("c2s.port", struct c2s_cfg, port, 0, 65535, "5222",
             "client port with STARTTLS; 0: off"),
    CONF_INT("c2s.tls-port", struct c2s_cfg, tls_port, 0, 65535, "5223",
             "client port with direct TLS (XEP-0368); 0: off"),
    CONF_INT("c2s.http-port", struct c2s_cfg, http_port, 0, 65535, "5280",
             "BOSH and WebSocket port (not served yet); 0: off"),
    CONF_GROUP("c2s.tls.cert", struct c2s_cfg, certs, ncerts, &cert_table, false,
               "a certificate and key for one domain; the first is the default"),
    CONF_STR("c2s.tls.priority", struct c2s_cfg, tls_priority, NULL, false,
             "GnuTLS priority string; default: TLS 1.3 and 1.2 with secure ciphers"),
    CONF_PATH("c2s.tls.ca-file", struct c2s_cfg, tls_ca_file, NULL, false,
              "CA certificates for client certificates (SASL EXTERNAL)"),
    CONF_BOOL("c2s.require-tls", struct c2s_cfg, require_tls, "true",
              "clients must use TLS before authenticating"),
    CONF_BOOL("c2s.allow-plaintext-auth", struct c2s_cfg, allow_plaintext_auth, "false",
              "allow PLAIN and registration without TLS (tests only)"),
    CONF_BOOL("c2s.registration", struct c2s_cfg, registration, "false",
              "in-band registration (XEP-0077): clients may create accounts"),
    CONF_LIST("c2s.anonymous", struct c2s_cfg, anonymous, nanonymous, false,
              "a domain where SASL ANONYMOUS logins are allowed"),
    CONF_SIZE("c2s.max-stanza", struct c2s_cfg, max_stanza, 1024, 16L << 20, "64K",
              "largest stanza a client may send (larger: policy-violation)"),
    CONF_DURATION("c2s.idle-timeout", struct c2s_cfg, idle_timeout_ms, 0, 86400000, "10m",
                  "close a connection after this long without input; 0: never"),
    CONF_DURATION("c2s.keepalive", struct c2s_cfg, keepalive_ms, 0, 86400000, "2m",
                  "send a space after this long without output; 0: never"),
    CONF_SIZE("c2s.rate", struct c2s_cfg, rate, 0, 1L << 30, "0",
              "bytes per second one connection may send (throttled beyond); 0: unlimited"),
    CONF_INT("c2s.auth-fail-limit", struct c2s_cfg, auth_fail_limit, 0, 100000, "5",
             "failed logins per minute from one IP address before a minute's block; 0: none"),
    CONF_INT("c2s.max-connections", struct c2s_cfg, max_connections, 1, 10000000, "20000",
             "client connections at most; beyond, new ones get resource-constraint"),
    CONF_INT("c2s.scram-iterations", struct c2s_cfg, scram_iterations, SCRAM_ITERATIONS_MIN,
             SCRAM_ITERATIONS_MAX, "4096", "PBKDF2 iterations for passwords set in-band"),
    CONF_DURATION("c2s.sm-grace", struct c2s_cfg, sm_grace_ms, 100, 86400000, "60s",
                  "how long sessions wait for an unreachable session manager"),
};

const struct conf_table c2s_cfg_table = CONF_TABLE(struct c2s_cfg, keys);

static bool hosted(const struct common_cfg *common, const char *domain)
{
    for (size_t i = 0; i < common->ndomains; i++) {
        if (strcmp(common->domains[i], domain) == 0)
            return true;
    }
    return false;
}

static int check_ports(const struct c2s_cfg *cfg, struct err *err)
{
    const long ports[] = {cfg->port, cfg->tls_port, cfg->http_port};
    const char *names[] = {"port", "tls-port", "http-port"};
    for (size_t i = 0; i < 3; i++) {
        for (size_t j = i + 1; j < 3; j++) {
            if (ports[i] != 0 && ports[i] == ports[j])
                return err_set(err, XMPP_COND_BAD_REQUEST, "<c2s>: <%s> and <%s> are both %ld",
                               names[i], names[j], ports[i]);
        }
    }
    if (cfg->port == 0 && cfg->tls_port == 0)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<c2s>: <port> and <tls-port> are both 0: no client could connect");
    return 0;
}

static int check_tls(const struct common_cfg *common, const struct c2s_cfg *cfg, struct err *err)
{
    if (cfg->ncerts == 0 && cfg->tls_port != 0)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<c2s><tls-port> %ld needs a certificate: add <c2s><tls><cert> or set "
                       "<tls-port>0</tls-port>",
                       cfg->tls_port);
    if (cfg->ncerts == 0 && cfg->require_tls)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<c2s><require-tls> needs a certificate: add <c2s><tls><cert> or set "
                       "<require-tls>false</require-tls>");
    for (size_t i = 0; i < cfg->ncerts; i++) {
        if (!hosted(common, cfg->certs[i].domain))
            return err_set(err, XMPP_COND_BAD_REQUEST,
                           "<c2s><tls><cert domain='%s'>: not a hosted <domain>",
                           cfg->certs[i].domain);
    }
    return 0;
}

int c2s_cfg_validate(const struct common_cfg *common, const void *cfgp, struct err *err)
{
    const struct c2s_cfg *cfg = cfgp;
    if (common->ndomains == 0)
        return err_set(err, XMPP_COND_BAD_REQUEST, "no <domain> is configured: c2s serves none");
    if (check_ports(cfg, err) < 0 || check_tls(common, cfg, err) < 0)
        return -1;
    for (size_t i = 0; i < cfg->nanonymous; i++) {
        if (!hosted(common, cfg->anonymous[i]))
            return err_set(err, XMPP_COND_BAD_REQUEST, "<c2s><anonymous>%s: not a hosted <domain>",
                           cfg->anonymous[i]);
    }
    return 0;
}

/* A hosted domain, interned: clients point at name across reloads. */
struct domain {
    bool hosted;
    char name[];
};

const char *c2s_hosted_domain(struct c2s *c2s, const char *domain)
{
    const struct domain *d = hmap_get(c2s->domains, domain);
    return d != NULL && d->hosted ? d->name : NULL;
}

/* Interns the normalised form of every configured domain. Entries live as
 * long as the process; a domain dropped by a reload is only marked as no
 * longer hosted. */
void c2s_domains_update(struct c2s *c2s, const struct common_cfg *common)
{
    struct hmap_iter it = {0};
    void *v;
    while (hmap_next(c2s->domains, &it, NULL, &v))
        ((struct domain *)v)->hosted = false;
    struct arena *a = arena_new(0);
    for (size_t i = 0; i < common->ndomains; i++) {
        struct jid j;
        const char *name = common->domains[i];
        if (jid_parse_str(a, name, &j, NULL) == 0)
            name = j.domain;
        struct domain *d = hmap_get(c2s->domains, name);
        if (d == NULL) {
            d = xcalloc(1, sizeof(*d) + strlen(name) + 1);
            memcpy(d->name, name, strlen(name) + 1);
            hmap_put(c2s->domains, d->name, d);
        }
        d->hosted = true;
    }
    arena_free(&a);
}

void c2s_domains_free(struct c2s *c2s)
{
    struct hmap_iter it = {0};
    void *v;
    while (c2s->domains != NULL && hmap_next(c2s->domains, &it, NULL, &v))
        free(v);
    hmap_free(&c2s->domains);
}
