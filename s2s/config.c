/* SPDX-License-Identifier: MIT */
/* The <s2s> section of parley.xml: the typed table, the cross-key checks
 * and the per-remote-domain policy. docs/configuration.md describes every
 * key. */
#include "s2s.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static const char *const auth_names[] = {"allow-dialback", "require-valid-cert", NULL};

static const struct conf_key cert_keys[] = {
    CONF_STR("@domain", struct tls_cert_cfg, domain, NULL, true,
             "the hosted domain this certificate proves (SNI, SASL EXTERNAL)"),
    CONF_PATH("certfile", struct tls_cert_cfg, cert_file, NULL, true,
              "PEM certificate chain, leaf first"),
    CONF_PATH("keyfile", struct tls_cert_cfg, key_file, NULL, true, "PEM private key"),
};
static const struct conf_table cert_table = CONF_TABLE(struct tls_cert_cfg, cert_keys);

static const struct conf_key remote_keys[] = {
    CONF_STR("@domain", struct s2s_remote_cfg, domain, NULL, true, "the remote domain"),
    CONF_ENUM("auth", struct s2s_remote_cfg, auth, auth_names, "allow-dialback",
              "allow-dialback or require-valid-cert"),
    CONF_BOOL("require-tls", struct s2s_remote_cfg, require_tls, "true",
              "refuse streams without TLS with this domain"),
};
static const struct conf_table remote_table = CONF_TABLE(struct s2s_remote_cfg, remote_keys);

static const struct conf_key keys[] = {
    CONF_STR("s2s.name", struct s2s_cfg, name, "s2s", false,
             "component name on the router (-n overrides)"),
    CONF_STR("s2s.listen", struct s2s_cfg, listen, NULL, false,
             "address to listen on for servers; default: <router-link><address>"),
    CONF_INT("s2s.port", struct s2s_cfg, port, 0, 65535, "5269",
             "server port with STARTTLS; 0: off"),
    CONF_INT("s2s.tls-port", struct s2s_cfg, tls_port, 0, 65535, "5270",
             "server port with direct TLS (XEP-0368); 0: off"),
    CONF_GROUP("s2s.tls.cert", struct s2s_cfg, certs, ncerts, &cert_table, false,
               "a certificate and key for one hosted domain; the first is the default"),
    CONF_STR("s2s.tls.priority", struct s2s_cfg, tls_priority, NULL, false,
             "GnuTLS priority string; default: TLS 1.3 and 1.2 with secure ciphers"),
    CONF_PATH("s2s.tls.ca-file", struct s2s_cfg, tls_ca_file, NULL, false,
              "CA certificates that remote servers' certificates must chain to; "
              "default: the system trust store"),
    CONF_SECRET("s2s.dialback-secret", struct s2s_cfg, dialback_secret, true,
                "secret for dialback keys (XEP-0185); random, from parleyctl init"),
    CONF_STR("s2s.resolver", struct s2s_cfg, resolver, "resolver", false,
             "component name of parley-resolver"),
    CONF_ENUM("s2s.auth", struct s2s_cfg, auth, auth_names, "allow-dialback",
              "default for remote domains: allow-dialback or require-valid-cert"),
    CONF_BOOL("s2s.require-tls", struct s2s_cfg, require_tls, "true",
              "default for remote domains: refuse streams without TLS"),
    CONF_GROUP("s2s.remote", struct s2s_cfg, remotes, nremotes, &remote_table, false,
               "the policy for one remote domain"),
    CONF_DURATION("s2s.idle-timeout", struct s2s_cfg, idle_timeout_ms, 0, 86400000, "10m",
                  "close a stream after this long without a stanza; 0: never"),
    CONF_DURATION("s2s.connect-timeout", struct s2s_cfg, connect_timeout_ms, 100, 600000, "20s",
                  "time for one target: TCP connect, TLS and authentication"),
    CONF_DURATION("s2s.resolve-timeout", struct s2s_cfg, resolve_timeout_ms, 100, 600000, "30s",
                  "time the resolver has to answer"),
    CONF_SIZE("s2s.queue.max-bytes", struct s2s_cfg, queue_bytes, 1024, 1L << 30, "1M",
              "stanza bytes waiting for one remote domain; beyond, stanzas bounce"),
    CONF_DURATION("s2s.queue.max-age", struct s2s_cfg, queue_age_ms, 1000, 86400000, "60s",
                  "how long a stanza waits for its route before it bounces"),
    CONF_SIZE("s2s.max-stanza", struct s2s_cfg, max_stanza, 1024, 16L << 20, "256K",
              "largest stanza a remote server may send (larger: policy-violation)"),
    CONF_BOOL("s2s.bidi", struct s2s_cfg, bidi, "true",
              "bidirectional streams (XEP-0288): offer them to peers and ask peers for them"),
};

const struct conf_table s2s_cfg_table = CONF_TABLE(struct s2s_cfg, keys);

static bool hosted(const struct common_cfg *common, const char *domain)
{
    for (size_t i = 0; i < common->ndomains; i++) {
        if (strcasecmp(common->domains[i], domain) == 0)
            return true;
    }
    return false;
}

int s2s_cfg_validate(const struct common_cfg *common, const void *cfgp, struct err *err)
{
    const struct s2s_cfg *cfg = cfgp;
    if (common->ndomains == 0)
        return err_set(err, XMPP_COND_BAD_REQUEST, "no <domain> is configured: s2s serves none");
    if (cfg->port != 0 && cfg->port == cfg->tls_port)
        return err_set(err, XMPP_COND_BAD_REQUEST, "<s2s>: <port> and <tls-port> are both %ld",
                       cfg->port);
    if (cfg->ncerts == 0 && cfg->tls_port != 0)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<s2s><tls-port> %ld needs a certificate: add <s2s><tls><cert> or set "
                       "<tls-port>0</tls-port>",
                       cfg->tls_port);
    if (cfg->ncerts == 0 && cfg->require_tls)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<s2s><require-tls> needs a certificate: add <s2s><tls><cert> or set "
                       "<require-tls>false</require-tls>");
    for (size_t i = 0; i < cfg->ncerts; i++) {
        if (!hosted(common, cfg->certs[i].domain))
            return err_set(err, XMPP_COND_BAD_REQUEST,
                           "<s2s><tls><cert domain='%s'>: not a hosted <domain>",
                           cfg->certs[i].domain);
    }
    if (strlen(cfg->dialback_secret) < 16)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<s2s><dialback-secret>: at least 16 characters, please (parleyctl init "
                       "writes 32 random hex digits)");
    for (size_t i = 0; i < cfg->nremotes; i++) {
        if (hosted(common, cfg->remotes[i].domain))
            return err_set(err, XMPP_COND_BAD_REQUEST,
                           "<s2s><remote domain='%s'>: that is a hosted <domain>",
                           cfg->remotes[i].domain);
    }
    return 0;
}

void s2s_policy(const struct s2s_cfg *cfg, const char *remote, enum s2s_auth *auth_r,
                bool *require_tls_r)
{
    *auth_r = (enum s2s_auth)cfg->auth;
    *require_tls_r = cfg->require_tls;
    for (size_t i = 0; remote != NULL && i < cfg->nremotes; i++) {
        if (strcasecmp(cfg->remotes[i].domain, remote) == 0) {
            *auth_r = (enum s2s_auth)cfg->remotes[i].auth;
            *require_tls_r = cfg->remotes[i].require_tls;
            return;
        }
    }
}
