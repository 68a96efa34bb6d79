/* SPDX-License-Identifier: MIT */
/* SASL internals shared by sasl.c (the XMPP exchange), sasl_mech.c (GNU
 * SASL glue) and sasl_msg.c (parsing, base64, fake credentials). */
#ifndef PL_C2S_SASL_H
#define PL_C2S_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include "scram.h"
#include "str.h"

struct buf;
struct c2s;
struct client;

enum sasl_mech {
    MECH_SCRAM_SHA256_PLUS,
    MECH_SCRAM_SHA1_PLUS,
    MECH_SCRAM_SHA256,
    MECH_SCRAM_SHA1,
    MECH_PLAIN,
    MECH_EXTERNAL,
    MECH_ANONYMOUS,
    MECH_COUNT
};

/* SASL failure conditions (RFC 6120 §6.5). */
#define SASL_ABORTED        "aborted"
#define SASL_ENCRYPTION_REQ "encryption-required"
#define SASL_BAD_ENCODING   "incorrect-encoding"
#define SASL_INVALID_AUTHZ  "invalid-authzid"
#define SASL_INVALID_MECH   "invalid-mechanism"
#define SASL_MALFORMED      "malformed-request"
#define SASL_TOO_WEAK       "mechanism-too-weak"
#define SASL_NOT_AUTHORIZED "not-authorized"
#define SASL_TEMPORARY      "temporary-auth-failure"

/* One exchange in progress. */
struct sasl_state {
    void *gs; /* Gsasl_session * */
    enum sasl_mech mech;
    bool awaiting_first; /* no initial response yet: the next <response/> is it */
    bool exists;         /* the account exists */
    bool plain_ok;       /* PLAIN: the password matched */
    char *local;         /* the authentication identity's localpart */
    char *authzid;       /* as the client sent it, NULL if none */
    struct scram_cred cred;
    unsigned char *input; /* the first message, kept during the store lookup */
    size_t input_len;
};

/* sasl_mech.c */
const char *sasl_mech_name(enum sasl_mech m);
/* The mechanism of that name offered on c's stream, or MECH_COUNT. */
enum sasl_mech sasl_mech_offered(const struct client *c, const char *name);
/* Starts the GNU SASL session for s->mech; returns 0 or -1. */
int sasl_mech_start(struct client *c, struct sasl_state *s);
void sasl_mech_finish(struct sasl_state *s);
/* Runs one step. Returns 1 when done (out holds the success data), 0 when
 * a challenge (out) follows, -1 with *cond_r set on failure. out is
 * allocated (free it) and may be NULL with *out_len 0. */
int sasl_mech_step(struct client *c, const unsigned char *in, size_t in_len, char **out,
                   size_t *out_len, const char **cond_r);
bool sasl_mech_is_scram(enum sasl_mech m);
/* The connection has channel-binding data of some type (TLS only). */
bool sasl_cb_available(const struct client *c);
enum scram_hash sasl_mech_hash(enum sasl_mech m);

/* sasl_msg.c */
/* Strict RFC 4648 §4 base64: returns 0 with *out_r (xmalloc, NUL-terminated
 * past *len_r), or -1. */
int b64_decode(const char *in, size_t len, unsigned char **out_r, size_t *len_r);
void b64_encode(struct buf *b, const unsigned char *data, size_t len);
/* SCRAM client-first-message: the authzid (a=, NULL if none) and the
 * username (n=), decoded (=2C, =3D). Returns 0, or -1 when malformed.
 * Both results are xmalloc'd. */
int sasl_scram_parse(const unsigned char *msg, size_t len, char **authzid_r, char **user_r);
/* PLAIN: authzid NUL authcid NUL passwd. Returns 0 with slices into msg, or
 * -1 when malformed. */
int sasl_plain_parse(const unsigned char *msg, size_t len, struct str *authzid, struct str *authcid,
                     struct str *passwd);
/* A credential that fails every proof, with a salt that is stable for
 * bare (so an unknown user looks like a known one). */
void sasl_fake_cred(const struct c2s *c2s, enum scram_hash h, const char *bare,
                    struct scram_cred *out);

#endif
