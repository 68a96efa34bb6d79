/* SPDX-License-Identifier: MIT */
/* GNU SASL glue: which mechanisms a stream is offered, the server session,
 * and the callback that answers GNU SASL from the credentials the c2s
 * fetched from the store beforehand (the store is asynchronous, GNU SASL's
 * callbacks are not). */
#include "sasl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gsasl.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "c2s.h"
#include "jid.h"

static const char *const mech_names[MECH_COUNT] = {
    "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN",
    "EXTERNAL",           "ANONYMOUS",
};

const char *sasl_mech_name(enum sasl_mech m)
{
    return m < MECH_COUNT ? mech_names[m] : "?";
}

bool sasl_mech_is_scram(enum sasl_mech m)
{
    return m <= MECH_SCRAM_SHA1;
}

enum scram_hash sasl_mech_hash(enum sasl_mech m)
{
    return m == MECH_SCRAM_SHA1 || m == MECH_SCRAM_SHA1_PLUS ? SCRAM_SHA1 : SCRAM_SHA256;
}

bool sasl_cb_available(const struct client *c)
{
    unsigned char data[64];
    return c->tls && (conn_tls_channel_binding(c->conn, "tls-exporter", data, sizeof(data)) >= 0 ||
                      conn_tls_channel_binding(c->conn, "tls-unique", data, sizeof(data)) >= 0);
}

static bool anonymous_ok(const struct client *c)
{
    const struct c2s_cfg *cfg = c->c2s->cfg;
    for (size_t i = 0; i < cfg->nanonymous; i++) {
        if (c2s_hosted_domain(c->c2s, cfg->anonymous[i]) == c->domain)
            return true;
    }
    return false;
}

/* EXTERNAL: a verified client certificate naming a user of this domain. */
static bool external_ok(const struct client *c)
{
    const char *addr = c->tls ? conn_tls_peer_xmpp_addr(c->conn) : NULL;
    if (addr == NULL)
        return false;
    struct arena *a = arena_new(256);
    struct jid j;
    bool ok = jid_parse_str(a, addr, &j, NULL) == 0 && j.local != NULL && j.resource == NULL &&
              c2s_hosted_domain(c->c2s, j.domain) == c->domain;
    arena_free(&a);
    return ok;
}

static bool available(const struct client *c, enum sasl_mech m)
{
    if (!gsasl_server_support_p(c->c2s->auth.gsasl, mech_names[m]))
        return false;
    switch (m) {
    case MECH_SCRAM_SHA256_PLUS:
    case MECH_SCRAM_SHA1_PLUS:
        return sasl_cb_available(c);
    case MECH_SCRAM_SHA256:
    case MECH_SCRAM_SHA1:
        return true;
    case MECH_PLAIN:
        return features_password_ok(c);
    case MECH_EXTERNAL:
        return external_ok(c);
    case MECH_ANONYMOUS:
        return anonymous_ok(c);
    case MECH_COUNT:
        break;
    }
    return false;
}

size_t sasl_offered(const struct client *c, const char **out, size_t max)
{
    size_t n = 0;
    if (features_tls_first(c))
        return 0;
    for (int m = 0; m < MECH_COUNT && n < max; m++) {
        if (available(c, (enum sasl_mech)m))
            out[n++] = mech_names[m];
    }
    return n;
}

enum sasl_mech sasl_mech_offered(const struct client *c, const char *name)
{
    if (features_tls_first(c))
        return MECH_COUNT;
    for (int m = 0; m < MECH_COUNT; m++) {
        if (strcmp(name, mech_names[m]) == 0)
            return available(c, (enum sasl_mech)m) ? (enum sasl_mech)m : MECH_COUNT;
    }
    return MECH_COUNT;
}

/* ---- the callback ------------------------------------------------------------ */

static int set_cb(struct client *c, Gsasl_session *gs, Gsasl_property prop, const char *type)
{
    unsigned char data[64];
    int n = conn_tls_channel_binding(c->conn, type, data, sizeof(data));
    if (!c->tls || n < 0)
        return GSASL_NO_CALLBACK;
    struct buf b = BUF_INIT;
    b64_encode(&b, data, (size_t)n);
    int rc = gsasl_property_set(gs, prop, buf_cstr(&b));
    buf_fini(&b);
    return rc;
}

static int on_gsasl(Gsasl *ctx, Gsasl_session *gs, Gsasl_property prop)
{
    (void)ctx;
    struct client *c = gs ? gsasl_session_hook_get(gs) : NULL;
    struct sasl_state *s = c ? c->sasl : NULL;
    if (s == NULL)
        return GSASL_NO_CALLBACK;
    char num[16];
    switch (prop) {
    case GSASL_SCRAM_ITER:
        snprintf(num, sizeof(num), "%u", s->cred.iterations);
        return gsasl_property_set(gs, prop, num);
    case GSASL_SCRAM_SALT:
        return gsasl_property_set(gs, prop, s->cred.salt_b64);
    /* GNU SASL 2.2's SCRAM server decodes these as base64 (lib/scram/
     * server.c, extract_serverkey), as the store keeps them. */
    case GSASL_SCRAM_STOREDKEY:
        return gsasl_property_set(gs, prop, s->cred.stored_key_b64);
    case GSASL_SCRAM_SERVERKEY:
        return gsasl_property_set(gs, prop, s->cred.server_key_b64);
    case GSASL_CB_TLS_UNIQUE:
        return set_cb(c, gs, prop, "tls-unique");
    case GSASL_CB_TLS_EXPORTER:
        return set_cb(c, gs, prop, "tls-exporter");
    case GSASL_VALIDATE_SIMPLE:
        return s->plain_ok ? GSASL_OK : GSASL_AUTHENTICATION_ERROR;
    case GSASL_VALIDATE_EXTERNAL:
        return s->exists ? GSASL_OK : GSASL_AUTHENTICATION_ERROR;
    case GSASL_VALIDATE_ANONYMOUS:
        return GSASL_OK;
    default:
        return GSASL_NO_CALLBACK;
    }
}

/* ---- sessions --------------------------------------------------------------------- */

int sasl_init(struct c2s *c2s, struct err *err)
{
    Gsasl *ctx = NULL;
    int rc = gsasl_init(&ctx);
    if (rc != GSASL_OK)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "GNU SASL: %s", gsasl_strerror(rc));
    gsasl_callback_set(ctx, on_gsasl);
    c2s->auth.gsasl = ctx;
    if (gnutls_rnd(GNUTLS_RND_KEY, c2s->auth.fake_key, sizeof(c2s->auth.fake_key)) < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "no random numbers");
    for (int m = 0; m < MECH_COUNT; m++) {
        if (!gsasl_server_support_p(ctx, mech_names[m]))
            log_warn(&c2s->lc, "GNU SASL does not support %s: not offered", mech_names[m]);
    }
    return 0;
}

void sasl_fini(struct c2s *c2s)
{
    if (c2s->auth.gsasl != NULL)
        gsasl_done(c2s->auth.gsasl);
    c2s->auth.gsasl = NULL;
}

int sasl_mech_start(struct client *c, struct sasl_state *s)
{
    Gsasl_session *gs = NULL;
    int rc = gsasl_server_start(c->c2s->auth.gsasl, mech_names[s->mech], &gs);
    if (rc != GSASL_OK) {
        log_warn(&c->lc, "GNU SASL cannot start %s: %s", mech_names[s->mech], gsasl_strerror(rc));
        return -1;
    }
    gsasl_session_hook_set(gs, c);
    s->gs = gs;
    return 0;
}

void sasl_mech_finish(struct sasl_state *s)
{
    if (s->gs != NULL)
        gsasl_finish(s->gs);
    s->gs = NULL;
}

static const char *cond_of(int rc)
{
    switch (rc) {
    case GSASL_MECHANISM_PARSE_ERROR:
        return SASL_MALFORMED;
    case GSASL_BASE64_ERROR:
        return SASL_BAD_ENCODING;
    case GSASL_MALLOC_ERROR:
    case GSASL_CRYPTO_ERROR:
        return SASL_TEMPORARY;
    default:
        return SASL_NOT_AUTHORIZED;
    }
}

int sasl_mech_step(struct client *c, const unsigned char *in, size_t in_len, char **out,
                   size_t *out_len, const char **cond_r)
{
    char *o = NULL;
    size_t olen = 0;
    int rc = gsasl_step(c->sasl->gs, (const char *)in, in_len, &o, &olen);
    *out = NULL;
    *out_len = 0;
    if (rc == GSASL_OK || rc == GSASL_NEEDS_MORE) {
        if (o != NULL) {
            *out = xmalloc(olen + 1);
            memcpy(*out, o, olen);
            (*out)[olen] = '\0';
            *out_len = olen;
        }
        gsasl_free(o);
        return rc == GSASL_OK ? 1 : 0;
    }
    gsasl_free(o);
    log_debug(&c->lc, "SASL %s step failed: %s", mech_names[c->sasl->mech], gsasl_strerror(rc));
    *cond_r = cond_of(rc);
    return -1;
}
