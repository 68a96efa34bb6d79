/* SPDX-License-Identifier: MIT */
/* SASL negotiation (RFC 6120 §6): <auth/>, challenges and responses,
 * <abort/>, success with a stream restart, and failures with the §6.5
 * conditions. The account is fetched from the store before GNU SASL runs,
 * and an unknown account behaves exactly like a wrong password. */
#include "sasl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "alloc.h"
#include "arena.h"
#include "authreg.h"
#include "buf.h"
#include "c2s.h"
#include "jid.h"
#include "store.h"
#include "xml.h"
#include "xstream.h"

#define MAX_STREAM_FAILURES 5 /* §6.4.5: then a policy-violation stream error */

void sasl_state_free(struct client *c)
{
    struct sasl_state *s = c->sasl;
    if (s == NULL)
        return;
    if (c->op != NULL) { /* a lookup for this exchange is pending */
        c->op->client = NULL;
        c->op = NULL;
    }
    sasl_mech_finish(s);
    if (s->input != NULL) {
        gnutls_memset(s->input, 0, s->input_len);
        free(s->input);
    }
    free(s->local);
    free(s->authzid);
    free(s);
    c->sasl = NULL;
}

/* Sends <failure/> with cond. credentials: a password (or certificate)
 * was actually checked and found wrong; only those count towards the
 * per-address limit, so a client probing mechanisms is not locked out. */
static void failure(struct client *c, const char *cond, bool credentials, const char *fmt, ...)
    PL_PRINTF(4, 5);

static void failure(struct client *c, const char *cond, bool credentials, const char *fmt, ...)
{
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_info(&c->lc, "authentication failed: %s: %s", cond, why);
    struct buf b = BUF_INIT;
    buf_printf(&b, "<failure xmlns='" C2S_NS_SASL "'><%s/><text xml:lang='en'>", cond);
    /* The log has the reason; the client learns nothing about accounts. */
    const char *text = strcmp(cond, SASL_NOT_AUTHORIZED) == 0 ? "authentication failed" : why;
    xml_escape(&b, text, strlen(text), false);
    buf_append_str(&b, "</text></failure>");
    client_write(c, b.data, b.len);
    buf_fini(&b);
    sasl_state_free(c);
    c->state = CLIENT_PRE_AUTH;
    if (credentials) {
        c->c2s->stats.auth_failed++;
        authfail_record(c->c2s, c);
    }
    if (++c->auth_failures >= MAX_STREAM_FAILURES)
        client_stream_error(c, XMPP_COND_STREAM_POLICY_VIOLATION,
                            "%d failed authentication attempts on this stream",
                            MAX_STREAM_FAILURES);
}

static bool authzid_ok(const struct client *c, const struct sasl_state *s)
{
    if (s->authzid == NULL || s->authzid[0] == '\0')
        return true;
    struct arena *a = arena_new(256);
    struct jid j;
    bool ok = jid_parse_str(a, s->authzid, &j, NULL) == 0 && j.resource == NULL &&
              j.local != NULL && s->local != NULL && strcmp(j.local, s->local) == 0 &&
              c2s_hosted_domain(c->c2s, j.domain) == c->domain;
    arena_free(&a);
    return ok;
}

static void success(struct client *c, const char *data, size_t len)
{
    struct sasl_state *s = c->sasl;
    if (!authzid_ok(c, s)) {
        failure(c, SASL_INVALID_AUTHZ, true, "may not act as '%.100s'", s->authzid);
        return;
    }
    if (!s->exists || s->local == NULL) {
        failure(c, SASL_NOT_AUTHORIZED, true, "no such account");
        return;
    }
    struct buf b = BUF_INIT;
    if (len == 0) {
        buf_append_str(&b, "<success xmlns='" C2S_NS_SASL "'/>");
    } else {
        buf_append_str(&b, "<success xmlns='" C2S_NS_SASL "'>");
        b64_encode(&b, (const unsigned char *)data, len);
        buf_append_str(&b, "</success>");
    }
    client_write(c, b.data, b.len);
    buf_fini(&b);
    c->authed = true;
    c->anonymous = s->mech == MECH_ANONYMOUS;
    c->local = s->local;
    s->local = NULL;
    c->c2s->stats.auth_ok++;
    client_set_log_prefix(c);
    log_info(&c->lc, "authenticated with %s", sasl_mech_name(s->mech));
    sasl_state_free(c);
    client_restart(c);
}

static void challenge(struct client *c, const char *data, size_t len)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<challenge xmlns='" C2S_NS_SASL "'>");
    if (len == 0)
        buf_append_char(&b, '='); /* §6.4.2: present but empty */
    else
        b64_encode(&b, (const unsigned char *)data, len);
    buf_append_str(&b, "</challenge>");
    client_write(c, b.data, b.len);
    buf_fini(&b);
}

static void step(struct client *c, const unsigned char *in, size_t len)
{
    char *out;
    size_t olen;
    const char *cond = SASL_NOT_AUTHORIZED;
    int rc = sasl_mech_step(c, in, len, &out, &olen, &cond);
    if (rc < 0)
        failure(c, cond, strcmp(cond, SASL_NOT_AUTHORIZED) == 0, "%s exchange failed",
                sasl_mech_name(c->sasl->mech));
    else if (rc == 0)
        challenge(c, out, olen);
    else
        success(c, out, olen);
    free(out);
}

/* ---- who is authenticating ---------------------------------------------------- */

/* The normalised localpart of a SASL authentication identity: a localpart
 * (RFC 6120 §6.3.8 "simple user name") or a bare JID of this domain. NULL
 * when it cannot be one of our accounts. */
static char *localpart_of(const struct client *c, const char *user, size_t len)
{
    struct arena *a = arena_new(512);
    struct jid j;
    char *out = NULL;
    const char *s = memchr(user, '@', len) ? arena_strndup(a, user, len)
                                           : arena_printf(a, "%.*s@%s", (int)len, user, c->domain);
    if (memchr(user, '\0', len) == NULL && jid_parse_str(a, s, &j, NULL) == 0 && j.local != NULL &&
        j.resource == NULL && c2s_hosted_domain(c->c2s, j.domain) == c->domain)
        out = xstrdup(j.local);
    arena_free(&a);
    return out;
}

/* Fills in what GNU SASL's callback will need once the record (or NULL) is
 * known, then runs the first step. */
static void lookup_done(struct client *c, const struct store_rec *rec)
{
    struct sasl_state *s = c->sasl;
    s->exists = rec != NULL;
    if (sasl_mech_is_scram(s->mech)) {
        enum scram_hash h = sasl_mech_hash(s->mech);
        struct err err = {0};
        if (rec != NULL && authreg_cred(rec, h, &s->cred, &err) < 0) {
            log_warn(&c->lc, "account %s@%s: %s", s->local, c->domain, err.text);
            s->exists = false;
        }
        if (!s->exists) {
            char bare[2048];
            snprintf(bare, sizeof(bare), "%s@%s", s->local ? s->local : "", c->domain);
            sasl_fake_cred(c->c2s, h, bare, &s->cred);
        }
    } else if (s->mech == MECH_PLAIN) {
        struct str az, ac, pw;
        if (sasl_plain_parse(s->input, s->input_len, &az, &ac, &pw) == 0 && rec != NULL) {
            s->plain_ok = authreg_check_password(rec, pw.p, pw.len);
        } else {
            /* Same cost as a real check, so timing tells nothing either. */
            struct scram_cred dummy;
            static const unsigned char salt[SCRAM_SALT_MIN] = {0};
            if (scram_cred_make_salt(SCRAM_SHA256, "x", 1, salt, sizeof(salt),
                                     (unsigned)c->c2s->cfg->scram_iterations, &dummy, NULL) < 0)
                log_debug(&c->lc, "dummy password check failed");
        }
    }
    unsigned char *in = s->input;
    size_t len = s->input_len;
    s->input = NULL;
    step(c, in, len);
    gnutls_memset(in, 0, len);
    free(in);
}

static void on_lookup(const struct store_res *res, void *arg)
{
    struct client_op *op = arg;
    struct client *c = op->client;
    free(op);
    if (c == NULL)
        return;
    c->op = NULL;
    if (c->sasl == NULL)
        return;
    if (res->status != STORE_OK) {
        log_warn(&c->lc, "account lookup failed: %s", res->err.text);
        failure(c, SASL_TEMPORARY, false, "the account database is unavailable");
        return;
    }
    lookup_done(c, res->nrows > 0 ? res->rows[0] : NULL);
}

static void lookup(struct client *c)
{
    struct sasl_state *s = c->sasl;
    if (s->local == NULL) {
        lookup_done(c, NULL);
        return;
    }
    struct client_op *op = xcalloc(1, sizeof(*op));
    op->client = c;
    c->op = op;
    char *bare = NULL;
    if (asprintf(&bare, "%s@%s", s->local, c->domain) < 0)
        log_fatal(NULL, PL_EXIT_NOMEM, "out of memory");
    store_get(c->c2s->auth.st, AUTHREG_COLL, bare, NULL, on_lookup, op);
    free(bare);
}

/* RFC 5802 §6, RFC 9266: the gs2 channel-binding flag must fit the
 * mechanism and this connection. Sends the failure and returns false. */
static bool cb_flag_ok(struct client *c, const unsigned char *d, size_t len)
{
    enum sasl_mech m = c->sasl->mech;
    bool plus = m == MECH_SCRAM_SHA256_PLUS || m == MECH_SCRAM_SHA1_PLUS;
    if (len > 2 && d[0] == 'p' && d[1] == '=') {
        const unsigned char *comma = memchr(d, ',', len);
        char type[32] = "";
        size_t n = comma ? (size_t)(comma - d - 2) : 0;
        unsigned char cb[64];
        if (n > 0 && n < sizeof(type))
            memcpy(type, d + 2, n);
        if (!plus)
            failure(c, SASL_MALFORMED, false, "channel binding with %s", sasl_mech_name(m));
        else if (conn_tls_channel_binding(c->conn, type, cb, sizeof(cb)) < 0)
            failure(c, SASL_NOT_AUTHORIZED, false, "channel binding '%s' is not available", type);
        return plus && c->sasl != NULL;
    }
    if (plus)
        failure(c, SASL_NOT_AUTHORIZED, false, "%s without channel binding", sasl_mech_name(m));
    else if (len > 0 && d[0] == 'y' && sasl_cb_available(c))
        failure(c, SASL_NOT_AUTHORIZED, false,
                "flag 'y' (no channel binding on the server?) but the server has it");
    else
        return true;
    return false;
}

/* The mechanism's first message (the initial response, or the response
 * to our empty challenge); takes ownership of data. */
static void first_message(struct client *c, unsigned char *data, size_t len)
{
    struct sasl_state *s = c->sasl;
    s->input = data;
    s->input_len = len;
    struct str az, ac, pw;
    char *user = NULL;
    switch (s->mech) {
    case MECH_PLAIN:
        if (sasl_plain_parse(data, len, &az, &ac, &pw) < 0) {
            failure(c, SASL_MALFORMED, false,
                    "PLAIN message is not authzid NUL authcid NUL passwd");
            return;
        }
        s->authzid = az.len ? xstrndup(az.p, az.len) : NULL;
        s->local = localpart_of(c, ac.p, ac.len);
        break;
    case MECH_EXTERNAL: {
        const char *addr = conn_tls_peer_xmpp_addr(c->conn);
        s->authzid = len ? xstrndup((const char *)data, len) : NULL;
        s->local = addr ? localpart_of(c, addr, strlen(addr)) : NULL;
        break;
    }
    case MECH_ANONYMOUS: {
        char id[9];
        unsigned char rnd[4];
        (void)gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd));
        snprintf(id, sizeof(id), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
        s->local = xstrdup(id);
        s->exists = true;
        /* RFC 4505: the trace is optional; GNU SASL wants one. */
        if (len == 0)
            step(c, (const unsigned char *)"anonymous", 9);
        else
            step(c, data, len);
        return;
    }
    default:
        if (!cb_flag_ok(c, data, len))
            return;
        if (sasl_scram_parse(data, len, &s->authzid, &user) < 0) {
            failure(c, SASL_MALFORMED, false, "not a SCRAM client-first-message");
            return;
        }
        s->local = localpart_of(c, user, strlen(user));
        free(user);
        break;
    }
    lookup(c);
}

/* ---- elements ------------------------------------------------------------------- */

/* Returns 1 with the decoded data, 0 when the element is empty (no data),
 * -1 when the base64 is bad. "=" is present but empty (§6.4.2). */
static int payload(struct client *c, const struct xml_node *st, unsigned char **out, size_t *len)
{
    const char *text = xml_text(xstream_arena(c->xs), st);
    *out = NULL;
    *len = 0;
    if (text[0] == '\0')
        return 0;
    if (strcmp(text, "=") == 0) {
        *out = xcalloc(1, 1);
        return 1;
    }
    return b64_decode(text, strlen(text), out, len) < 0 ? -1 : 1;
}

/* Sends the failure and returns true when this <auth/> cannot start. */
static bool auth_refused(struct client *c, const char *name, enum sasl_mech m)
{
    if (c->op != NULL)
        failure(c, SASL_TEMPORARY, false, "a registration is still in progress");
    else if (features_tls_first(c))
        failure(c, SASL_ENCRYPTION_REQ, false, "TLS is required before authentication");
    else if (authfail_blocked(c->c2s, c))
        failure(c, SASL_TEMPORARY, false,
                "too many failed logins from this address; try again later");
    else if (name == NULL)
        failure(c, SASL_INVALID_MECH, false, "<auth/> names no mechanism");
    else if (m == MECH_COUNT && strcmp(name, "PLAIN") == 0 && !features_password_ok(c))
        failure(c, SASL_ENCRYPTION_REQ, false, "PLAIN needs TLS");
    else if (m == MECH_COUNT)
        failure(c, SASL_INVALID_MECH, false, "%.60s is not offered on this stream", name);
    else
        return false;
    return true;
}

static void on_auth(struct client *c, const struct xml_node *st)
{
    sasl_state_free(c); /* a new <auth/> abandons an exchange in progress */
    c->state = CLIENT_PRE_AUTH;
    const char *name = xml_attr_get(st, "mechanism");
    enum sasl_mech m = name ? sasl_mech_offered(c, name) : MECH_COUNT;
    if (auth_refused(c, name, m))
        return;
    unsigned char *data;
    size_t len;
    int r = payload(c, st, &data, &len);
    if (r < 0) {
        failure(c, SASL_BAD_ENCODING, false, "the initial response is not base64");
        return;
    }
    c->sasl = xcalloc(1, sizeof(*c->sasl));
    c->sasl->mech = m;
    c->state = CLIENT_SASL;
    if (sasl_mech_start(c, c->sasl) < 0) {
        free(data);
        failure(c, SASL_TEMPORARY, false, "cannot start %s", name);
    } else if (r == 0) {
        c->sasl->awaiting_first = true;
        client_write_str(c, "<challenge xmlns='" C2S_NS_SASL "'/>");
    } else {
        first_message(c, data, len);
    }
}

static void on_response(struct client *c, const struct xml_node *st)
{
    struct sasl_state *s = c->sasl;
    if (s == NULL || c->op != NULL) {
        failure(c, SASL_MALFORMED, false, "no SASL exchange is waiting for a response");
        return;
    }
    unsigned char *data;
    size_t len;
    int r = payload(c, st, &data, &len);
    if (r < 0) {
        failure(c, SASL_BAD_ENCODING, false, "the response is not base64");
        return;
    }
    if (s->awaiting_first) {
        s->awaiting_first = false;
        first_message(c, data ? data : xcalloc(1, 1), len);
        return;
    }
    step(c, data ? data : (const unsigned char *)"", len);
    if (data != NULL)
        gnutls_memset(data, 0, len);
    free(data);
}

void sasl_on_element(struct client *c, const struct xml_node *st)
{
    if (xml_is(st, C2S_NS_SASL, "auth"))
        on_auth(c, st);
    else if (xml_is(st, C2S_NS_SASL, "response"))
        on_response(c, st);
    else if (xml_is(st, C2S_NS_SASL, "abort"))
        failure(c, SASL_ABORTED, false, "the client aborted");
    else
        client_stream_error(c, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                            "<%s xmlns='" C2S_NS_SASL "'/> is not a client request", st->name);
}
