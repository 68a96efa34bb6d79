/* SPDX-License-Identifier: MIT */
/* SCRAM credentials over GnuTLS's PBKDF2, HMAC and hash, with SASLprep from
 * GNU SASL. Every buffer that held a password or a key derived from it is wiped
 * before it is released. */
#include "scram.h"

#include <stdint.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gsasl.h>

#include "alloc.h"

struct hash_info {
    const char *name;
    size_t len;
    gnutls_mac_algorithm_t mac;
    gnutls_digest_algorithm_t dig;
};

static const struct hash_info hashes[] = {
    [SCRAM_SHA1] = {"SCRAM-SHA-1", 20, GNUTLS_MAC_SHA1, GNUTLS_DIG_SHA1},
    [SCRAM_SHA256] = {"SCRAM-SHA-256", 32, GNUTLS_MAC_SHA256, GNUTLS_DIG_SHA256},
};

/* The base64 text of n bytes, with its NUL. */
#define B64_SIZE(n) (((n) + 2) / 3 * 4 + 1)
_Static_assert(B64_SIZE(SCRAM_KEY_MAX) == SCRAM_KEY_B64_SIZE, "key text size");
_Static_assert(B64_SIZE(SCRAM_SALT_MAX) == SCRAM_SALT_B64_SIZE, "salt text size");

/* libidn's Stringprep_rc values that gsasl_saslprep() passes through; named
 * here so the build needs no libidn header. */
enum {
    STRINGPREP_RC_PROHIBITED = 2,
    STRINGPREP_RC_BIDI_BOTH = 3,
    STRINGPREP_RC_BIDI_LEADTRAIL = 4,
    STRINGPREP_RC_BIDI_PROHIBITED = 5,
};

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const struct hash_info *hash_info(enum scram_hash h)
{
    if ((unsigned)h >= PL_ARRAY_LEN(hashes))
        return NULL;
    return &hashes[h];
}

const char *scram_hash_name(enum scram_hash h)
{
    const struct hash_info *hi = hash_info(h);
    return hi ? hi->name : NULL;
}

size_t scram_hash_len(enum scram_hash h)
{
    const struct hash_info *hi = hash_info(h);
    return hi ? hi->len : 0;
}

int scram_hash_from_name(const char *name, enum scram_hash *h_r, struct err *err)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(hashes); i++) {
        if (strcmp(hashes[i].name, name) == 0) {
            *h_r = (enum scram_hash)i;
            return 0;
        }
    }
    return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "unknown SCRAM mechanism \"%.64s\"", name);
}

/* Writes the padded base64 of in[0..len) and a NUL; out holds B64_SIZE(len). */
static void b64_encode(const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t w = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            w |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            w |= in[i + 2];
        out[o++] = b64_alphabet[w >> 18 & 63];
        out[o++] = b64_alphabet[w >> 12 & 63];
        out[o++] = b64_alphabet[w >> 6 & 63];
        out[o++] = b64_alphabet[w & 63];
    }
    if (len % 3 != 0)
        out[o - 1] = '=';
    if (len % 3 == 1)
        out[o - 2] = '=';
    out[o] = '\0';
}

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* Decodes canonical base64 only (RFC 4648 §4 with padding, no whitespace,
 * zero pad bits), so each value has exactly one text form. At most max bytes
 * are written to out. Returns 0 with *len_r set, or -1. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t max, size_t *len_r)
{
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    if (len > 0 && in[len - 1] == '=')
        pad = in[len - 2] == '=' ? 2 : 1;
    size_t n = len / 4 * 3 - pad;
    if (n > max)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t w = 0;
        for (size_t j = 0; j < 4; j++) {
            int v = i + j < len - pad ? b64_value((unsigned char)in[i + j]) : 0;
            if (v < 0)
                return -1;
            w = w << 6 | (uint32_t)v;
        }
        unsigned char bytes[3] = {w >> 16 & 0xff, w >> 8 & 0xff, w & 0xff};
        for (size_t j = 0; j < 3 && o < n; j++)
            out[o++] = bytes[j];
        if (i + 4 == len && ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0)))
            return -1;
    }
    *len_r = n;
    return 0;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, surrogates or values past
 * U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* Runs SASLprep (RFC 4013) over the password. On success *norm_r is a
 * NUL-terminated string from gsasl's allocator, *nlen_r bytes long and never
 * empty; the caller wipes it and releases it with gsasl_free(). */
static int normalize(const char *pw, size_t plen, char **norm_r, size_t *nlen_r, struct err *err)
{
    if (plen == 0)
        return err_set(err, XMPP_COND_NOT_ACCEPTABLE, "password is empty");
    if (plen > SCRAM_PASSWORD_MAX)
        return err_set(err, XMPP_COND_NOT_ACCEPTABLE, "password is longer than %d bytes",
                       SCRAM_PASSWORD_MAX);
    if (memchr(pw, '\0', plen) != NULL)
        return err_set(err, XMPP_COND_NOT_ACCEPTABLE, "password contains a NUL byte");
    if (!utf8_valid((const unsigned char *)pw, plen))
        return err_set(err, XMPP_COND_NOT_ACCEPTABLE, "password is not valid UTF-8");

    char *copy = xstrndup(pw, plen);
    char *norm = NULL;
    int prep_rc = 0;
    /* Flags 0 lets unassigned code points through (RFC 3454 §7 "query"
     * rules, as a SCRAM client applies them), so passwords with characters
     * newer than Unicode 3.2, such as emoji, work. gsasl 2.2 maps
     * GSASL_ALLOW_UNASSIGNED to libidn's STRINGPREP_NO_UNASSIGNED, the
     * opposite of its name; test_scram pins the behaviour. */
    int rc = gsasl_saslprep(copy, 0, &norm, &prep_rc);
    gnutls_memset(copy, 0, plen);
    xfree(&copy);
    if (rc != GSASL_OK) {
        switch (prep_rc) {
        case STRINGPREP_RC_PROHIBITED:
        case STRINGPREP_RC_BIDI_PROHIBITED:
            return err_set(err, XMPP_COND_NOT_ACCEPTABLE,
                           "password contains a character SASLprep prohibits (a control, "
                           "private-use or non-character code point)");
        case STRINGPREP_RC_BIDI_BOTH:
        case STRINGPREP_RC_BIDI_LEADTRAIL:
            return err_set(err, XMPP_COND_NOT_ACCEPTABLE,
                           "password mixes right-to-left and left-to-right text in a way "
                           "SASLprep refuses");
        default:
            return err_set(err, XMPP_COND_NOT_ACCEPTABLE,
                           "password cannot be normalised with SASLprep (stringprep code %d)",
                           prep_rc);
        }
    }
    size_t nlen = strlen(norm);
    if (nlen == 0) {
        gsasl_free(norm);
        return err_set(err, XMPP_COND_NOT_ACCEPTABLE, "password is empty after SASLprep");
    }
    *norm_r = norm;
    *nlen_r = nlen;
    return 0;
}

/* StoredKey and ServerKey (hi->len bytes each) for a password and salt. */
static int derive(const struct hash_info *hi, const char *pw, size_t plen,
                  const unsigned char *salt, size_t saltlen, unsigned iterations,
                  unsigned char stored[SCRAM_KEY_MAX], unsigned char server[SCRAM_KEY_MAX],
                  struct err *err)
{
    char *norm = NULL;
    size_t nlen = 0;
    unsigned char salt_copy[SCRAM_SALT_MAX];
    unsigned char salted[SCRAM_KEY_MAX];
    unsigned char client_key[SCRAM_KEY_MAX];
    int rc = -1;

    if (normalize(pw, plen, &norm, &nlen, err) < 0)
        return -1;
    memcpy(salt_copy, salt, saltlen);
    gnutls_datum_t key = {(unsigned char *)norm, (unsigned)nlen};
    gnutls_datum_t salt_d = {salt_copy, (unsigned)saltlen};
    int grc = gnutls_pbkdf2(hi->mac, &key, &salt_d, iterations, salted, hi->len);
    if (grc < 0) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "PBKDF2 failed: %s", gnutls_strerror(grc));
        goto out;
    }
    grc = gnutls_hmac_fast(hi->mac, salted, hi->len, "Client Key", 10, client_key);
    if (grc >= 0)
        grc = gnutls_hash_fast(hi->dig, client_key, hi->len, stored);
    if (grc >= 0)
        grc = gnutls_hmac_fast(hi->mac, salted, hi->len, "Server Key", 10, server);
    if (grc < 0) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "%s failed: %s", hi->name,
                gnutls_strerror(grc));
        goto out;
    }
    rc = 0;
out:
    gnutls_memset(norm, 0, nlen);
    gsasl_free(norm);
    gnutls_memset(salted, 0, sizeof(salted));
    gnutls_memset(client_key, 0, sizeof(client_key));
    return rc;
}

static int check_iterations(unsigned iterations, struct err *err)
{
    if (iterations < SCRAM_ITERATIONS_MIN)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "SCRAM iteration count %u is below the minimum %u (RFC 7677)", iterations,
                       SCRAM_ITERATIONS_MIN);
    if (iterations > SCRAM_ITERATIONS_MAX)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "SCRAM iteration count %u is above the maximum %u", iterations,
                       SCRAM_ITERATIONS_MAX);
    return 0;
}

int scram_cred_make_salt(enum scram_hash h, const char *password, size_t plen,
                         const unsigned char *salt, size_t saltlen, unsigned iterations,
                         struct scram_cred *out, struct err *err)
{
    const struct hash_info *hi = hash_info(h);
    PL_ASSERT(hi != NULL);
    if (check_iterations(iterations, err) < 0)
        return -1;
    if (saltlen < SCRAM_SALT_MIN || saltlen > SCRAM_SALT_MAX)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "SCRAM salt of %zu bytes is outside %d..%d", saltlen, SCRAM_SALT_MIN,
                       SCRAM_SALT_MAX);

    unsigned char stored[SCRAM_KEY_MAX], server[SCRAM_KEY_MAX];
    if (derive(hi, password, plen, salt, saltlen, iterations, stored, server, err) < 0)
        return -1;
    struct scram_cred c = {.hash = h, .iterations = iterations};
    b64_encode(salt, saltlen, c.salt_b64);
    b64_encode(stored, hi->len, c.stored_key_b64);
    b64_encode(server, hi->len, c.server_key_b64);
    *out = c;
    gnutls_memset(&c, 0, sizeof(c));
    gnutls_memset(stored, 0, sizeof(stored));
    gnutls_memset(server, 0, sizeof(server));
    return 0;
}

int scram_cred_make(enum scram_hash h, const char *password, size_t plen, unsigned iterations,
                    struct scram_cred *out, struct err *err)
{
    unsigned char salt[SCRAM_SALT_DEFAULT];
    if (check_iterations(iterations, err) < 0)
        return -1;
    int grc = gnutls_rnd(GNUTLS_RND_RANDOM, salt, sizeof(salt));
    if (grc < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "no random salt: %s",
                       gnutls_strerror(grc));
    return scram_cred_make_salt(h, password, plen, salt, sizeof(salt), iterations, out, err);
}

/* Decodes one NUL-terminated base64 field of a credential into out. */
static int decode_field(const char *field, size_t size, const char *what, unsigned char *out,
                        size_t max, size_t *len_r, struct err *err)
{
    const char *end = memchr(field, '\0', size);
    if (end == NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "SCRAM %s is not terminated", what);
    if (b64_decode(field, (size_t)(end - field), out, max, len_r) < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "SCRAM %s is not canonical base64 of at most %zu bytes", what, max);
    return 0;
}

/* Validates c and decodes its salt and keys; any output may be NULL when the
 * caller does not need it. */
static int cred_decode(const struct scram_cred *c, unsigned char salt[SCRAM_SALT_MAX],
                       size_t *saltlen_r, unsigned char stored[SCRAM_KEY_MAX],
                       unsigned char server[SCRAM_KEY_MAX], struct err *err)
{
    unsigned char salt_buf[SCRAM_SALT_MAX], stored_buf[SCRAM_KEY_MAX], server_buf[SCRAM_KEY_MAX];
    size_t saltlen = 0, stored_len = 0, server_len = 0;
    const struct hash_info *hi = hash_info(c->hash);
    int rc = -1;

    if (hi == NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "unknown SCRAM hash %d", (int)c->hash);
    if (check_iterations(c->iterations, err) < 0)
        return -1;
    if (decode_field(c->salt_b64, sizeof(c->salt_b64), "salt", salt_buf, SCRAM_SALT_MAX, &saltlen,
                     err) < 0)
        return -1;
    if (saltlen < SCRAM_SALT_MIN)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "SCRAM salt of %zu bytes is shorter than %d", saltlen, SCRAM_SALT_MIN);
    if (decode_field(c->stored_key_b64, sizeof(c->stored_key_b64), "StoredKey", stored_buf,
                     SCRAM_KEY_MAX, &stored_len, err) < 0 ||
        decode_field(c->server_key_b64, sizeof(c->server_key_b64), "ServerKey", server_buf,
                     SCRAM_KEY_MAX, &server_len, err) < 0)
        goto out;
    if (stored_len != hi->len || server_len != hi->len) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "%s keys must be %zu bytes", hi->name,
                hi->len);
        goto out;
    }
    if (salt != NULL) {
        memcpy(salt, salt_buf, saltlen);
        *saltlen_r = saltlen;
    }
    if (stored != NULL)
        memcpy(stored, stored_buf, hi->len);
    if (server != NULL)
        memcpy(server, server_buf, hi->len);
    rc = 0;
out:
    gnutls_memset(stored_buf, 0, sizeof(stored_buf));
    gnutls_memset(server_buf, 0, sizeof(server_buf));
    return rc;
}

int scram_cred_validate(const struct scram_cred *c, struct err *err)
{
    return cred_decode(c, NULL, NULL, NULL, NULL, err);
}

int scram_cred_keys(const struct scram_cred *c, unsigned char stored[SCRAM_KEY_MAX],
                    unsigned char server[SCRAM_KEY_MAX], size_t *len_r, struct err *err)
{
    if (cred_decode(c, NULL, NULL, stored, server, err) < 0)
        return -1;
    *len_r = hashes[c->hash].len;
    return 0;
}

bool scram_check_password(const struct scram_cred *c, const char *password, size_t plen)
{
    unsigned char salt[SCRAM_SALT_MAX], stored[SCRAM_KEY_MAX];
    unsigned char want[SCRAM_KEY_MAX], server[SCRAM_KEY_MAX];
    size_t saltlen = 0;
    bool ok = false;

    if (cred_decode(c, salt, &saltlen, want, NULL, NULL) < 0)
        return false;
    const struct hash_info *hi = &hashes[c->hash];
    if (derive(hi, password, plen, salt, saltlen, c->iterations, stored, server, NULL) == 0)
        ok = gnutls_memcmp(stored, want, hi->len) == 0;
    gnutls_memset(stored, 0, sizeof(stored));
    gnutls_memset(server, 0, sizeof(server));
    gnutls_memset(want, 0, sizeof(want));
    return ok;
}

bool scram_verify_proof(const struct scram_cred *c, const char *auth_msg, size_t alen,
                        const char *proof_b64, size_t proof_len)
{
    unsigned char stored[SCRAM_KEY_MAX], proof[SCRAM_KEY_MAX];
    unsigned char client_sig[SCRAM_KEY_MAX], client_key[SCRAM_KEY_MAX], got[SCRAM_KEY_MAX];
    size_t plen;
    bool ok = false;

    if (cred_decode(c, NULL, NULL, stored, NULL, NULL) < 0)
        return false;
    const struct hash_info *hi = &hashes[c->hash];
    if (b64_decode(proof_b64, proof_len, proof, sizeof(proof), &plen) < 0 || plen != hi->len)
        goto out;
    if (gnutls_hmac_fast(hi->mac, stored, hi->len, auth_msg, alen, client_sig) < 0)
        goto out;
    for (size_t i = 0; i < hi->len; i++)
        client_key[i] = proof[i] ^ client_sig[i];
    if (gnutls_hash_fast(hi->dig, client_key, hi->len, got) < 0)
        goto out;
    ok = gnutls_memcmp(got, stored, hi->len) == 0;
out:
    gnutls_memset(stored, 0, sizeof(stored));
    gnutls_memset(client_key, 0, sizeof(client_key));
    return ok;
}

int scram_server_signature(const struct scram_cred *c, const char *auth_msg, size_t alen,
                           char sig_b64[SCRAM_KEY_B64_SIZE], struct err *err)
{
    unsigned char server[SCRAM_KEY_MAX], sig[SCRAM_KEY_MAX];

    if (cred_decode(c, NULL, NULL, NULL, server, err) < 0)
        return -1;
    const struct hash_info *hi = &hashes[c->hash];
    int grc = gnutls_hmac_fast(hi->mac, server, hi->len, auth_msg, alen, sig);
    gnutls_memset(server, 0, sizeof(server));
    if (grc < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "%s ServerSignature failed: %s",
                       hi->name, gnutls_strerror(grc));
    b64_encode(sig, hi->len, sig_b64);
    return 0;
}
