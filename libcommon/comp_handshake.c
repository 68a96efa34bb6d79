/* SPDX-License-Identifier: MIT */
/* XEP-0114 §3: handshake = hex(SHA-1(stream id || secret)). */
#include "comp_handshake.h"

#include <string.h>
#include <sys/random.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "attr.h"

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void comp_handshake_digest(const char *stream_id, const char *secret, char out[COMP_DIGEST_LEN + 1])
{
    gnutls_hash_hd_t h;
    unsigned char md[20];
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA1) < 0)
        pl_panic(__FILE__, __LINE__, "gnutls has no SHA-1");
    gnutls_hash(h, stream_id, strlen(stream_id));
    gnutls_hash(h, secret, strlen(secret));
    gnutls_hash_deinit(h, md);
    hex(md, sizeof(md), out);
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'F') ? (unsigned char)(c + 32) : c;
}

bool comp_handshake_check(const char *stream_id, const char *secret, const char *digest, size_t len)
{
    char want[COMP_DIGEST_LEN + 1];
    comp_handshake_digest(stream_id, secret, want);
    if (len != COMP_DIGEST_LEN)
        return false;
    unsigned diff = 0;
    for (size_t i = 0; i < COMP_DIGEST_LEN; i++)
        diff |= (unsigned)(lower((unsigned char)digest[i]) ^ (unsigned char)want[i]);
    return diff == 0;
}

void comp_stream_id(char out[COMP_STREAM_ID_LEN + 1])
{
    unsigned char rnd[COMP_STREAM_ID_LEN / 2];
    if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) < 0)
        pl_panic(__FILE__, __LINE__, "gnutls_rnd failed");
    hex(rnd, sizeof(rnd), out);
}
