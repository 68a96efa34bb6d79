/* SPDX-License-Identifier: MIT */
/* SASL message helpers: strict base64 (RFC 6120 §6.4.2 asks for
 * incorrect-encoding on anything else), the parts of SCRAM's and PLAIN's
 * first messages the c2s needs before GNU SASL sees them (who to look up in
 * the store), and fake SCRAM credentials for unknown users. */
#include "sasl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "alloc.h"
#include "buf.h"
#include "c2s.h"

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char ch)
{
    const char *p = ch != '\0' ? strchr(b64_chars, ch) : NULL;
    return p != NULL ? (int)(p - b64_chars) : -1;
}

#define B64_PAD (-2)

int b64_decode(const char *in, size_t len, unsigned char **out_r, size_t *len_r)
{
    if (len % 4 != 0)
        return -1;
    unsigned char *out = xmalloc(len / 4 * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        int v0 = b64_value(in[i]), v1 = b64_value(in[i + 1]);
        int v2 = last && in[i + 2] == '=' && in[i + 3] == '=' ? B64_PAD : b64_value(in[i + 2]);
        int v3 = last && in[i + 3] == '=' ? B64_PAD : b64_value(in[i + 3]);
        if (v0 < 0 || v1 < 0 || v2 == -1 || v3 == -1) {
            free(out);
            return -1;
        }
        uint32_t w = (uint32_t)v0 << 18 | (uint32_t)v1 << 12;
        out[n++] = (unsigned char)(w >> 16);
        if (v2 != B64_PAD) {
            w |= (uint32_t)v2 << 6;
            out[n++] = (unsigned char)(w >> 8);
        }
        if (v3 != B64_PAD) {
            w |= (uint32_t)v3;
            out[n++] = (unsigned char)w;
        }
    }
    out[n] = '\0';
    *out_r = out;
    *len_r = n;
    return 0;
}

void b64_encode(struct buf *b, const unsigned char *data, size_t len)
{
    for (size_t i = 0; i < len; i += 3) {
        uint32_t w = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            w |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            w |= data[i + 2];
        char q[4] = {b64_chars[w >> 18 & 63], b64_chars[w >> 12 & 63],
                     i + 1 < len ? b64_chars[w >> 6 & 63] : '=',
                     i + 2 < len ? b64_chars[w & 63] : '='};
        buf_append(b, q, 4);
    }
}

/* RFC 5802 saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an
 * error. */
static char *saslname(const char *p, size_t len)
{
    char *out = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\0') {
            free(out);
            return NULL;
        }
        if (p[i] != '=') {
            out[n++] = p[i];
        } else if (i + 2 < len && p[i + 1] == '2' && p[i + 2] == 'C') {
            out[n++] = ',';
            i += 2;
        } else if (i + 2 < len && p[i + 1] == '3' && p[i + 2] == 'D') {
            out[n++] = '=';
            i += 2;
        } else {
            free(out);
            return NULL;
        }
    }
    out[n] = '\0';
    return out;
}

/* gs2-header = gs2-cbind-flag "," [ authzid ] ","
 * client-first-message-bare = [reserved-mext ","] username "," nonce ... */
int sasl_scram_parse(const unsigned char *umsg, size_t len, char **authzid_r, char **user_r)
{
    const char *msg = (const char *)umsg, *end = msg + len;
    const char *c1 = memchr(msg, ',', len);
    if (c1 == NULL || !(msg[0] == 'n' || msg[0] == 'y' || (msg[0] == 'p' && msg[1] == '=')))
        return -1;
    const char *az = c1 + 1;
    const char *c2 = memchr(az, ',', (size_t)(end - az));
    if (c2 == NULL || (c2 != az && (c2 - az < 3 || az[0] != 'a' || az[1] != '=')))
        return -1;
    const char *u = c2 + 1;
    const char *c3 = memchr(u, ',', (size_t)(end - u));
    if (c3 == NULL || c3 - u < 3 || u[0] != 'n' || u[1] != '=' || end - c3 < 4 || c3[1] != 'r' ||
        c3[2] != '=')
        return -1;
    char *user = saslname(u + 2, (size_t)(c3 - u - 2));
    char *authzid = c2 != az ? saslname(az + 2, (size_t)(c2 - az - 2)) : NULL;
    if (user == NULL || user[0] == '\0' || (c2 != az && authzid == NULL)) {
        free(user);
        free(authzid);
        return -1;
    }
    *user_r = user;
    *authzid_r = authzid;
    return 0;
}

int sasl_plain_parse(const unsigned char *umsg, size_t len, struct str *authzid,
                     struct str *authcid, struct str *passwd)
{
    const char *msg = (const char *)umsg;
    const char *n1 = memchr(msg, '\0', len);
    if (n1 == NULL)
        return -1;
    const char *a = n1 + 1;
    const char *n2 = memchr(a, '\0', len - (size_t)(a - msg));
    if (n2 == NULL)
        return -1;
    const char *p = n2 + 1;
    size_t plen = len - (size_t)(p - msg);
    if (memchr(p, '\0', plen) != NULL || n2 == a || plen == 0)
        return -1;
    *authzid = (struct str){msg, (size_t)(n1 - msg)};
    *authcid = (struct str){a, (size_t)(n2 - a)};
    *passwd = (struct str){p, plen};
    return 0;
}

void sasl_fake_cred(const struct c2s *c2s, enum scram_hash h, const char *bare,
                    struct scram_cred *out)
{
    unsigned char mac[32], keys[2 * SCRAM_KEY_MAX];
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, c2s->auth.fake_key, sizeof(c2s->auth.fake_key), bare,
                     strlen(bare), mac);
    if (gnutls_rnd(GNUTLS_RND_NONCE, keys, sizeof(keys)) < 0)
        memset(keys, 0x5a, sizeof(keys));
    size_t klen = scram_hash_len(h);
    struct buf b = BUF_INIT;
    *out = (struct scram_cred){.hash = h, .iterations = (unsigned)c2s->cfg->scram_iterations};
    b64_encode(&b, mac, SCRAM_SALT_DEFAULT);
    memcpy(out->salt_b64, b.data, b.len + 1);
    buf_reset(&b);
    b64_encode(&b, keys, klen);
    memcpy(out->stored_key_b64, b.data, b.len + 1);
    buf_reset(&b);
    b64_encode(&b, keys + SCRAM_KEY_MAX, klen);
    memcpy(out->server_key_b64, b.data, b.len + 1);
    buf_fini(&b);
}
