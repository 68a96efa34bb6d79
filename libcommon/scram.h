/* SPDX-License-Identifier: MIT */
/* Salted SCRAM credentials (RFC 5802 SCRAM-SHA-1, RFC 7677 SCRAM-SHA-256):
 * derive them from a password, check a password against them (SASL PLAIN), and
 * verify a SCRAM client proof and sign the server's answer. Passwords are never stored. */
#ifndef PL_SCRAM_H
#define PL_SCRAM_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"
#include "err.h"

enum scram_hash {
    SCRAM_SHA1,
    SCRAM_SHA256,
};

/* Longest key or HMAC output (SHA-256), and the size of its base64 text with
 * the terminating NUL. */
#define SCRAM_KEY_MAX      32
#define SCRAM_KEY_B64_SIZE 45

/* Salt length in bytes: scram_cred_make() draws SCRAM_SALT_DEFAULT random
 * bytes; explicit and stored salts must be SCRAM_SALT_MIN..SCRAM_SALT_MAX. */
#define SCRAM_SALT_DEFAULT  16
#define SCRAM_SALT_MIN      8
#define SCRAM_SALT_MAX      64
#define SCRAM_SALT_B64_SIZE 89

/* Iteration counts accepted for new and stored credentials. The minimum is
 * RFC 7677's; the maximum keeps a corrupt row from stalling the process. */
#define SCRAM_ITERATIONS_MIN 4096u
#define SCRAM_ITERATIONS_MAX 10000000u

/* Longest password in bytes, before normalisation. */
#define SCRAM_PASSWORD_MAX 1024

/* One user's credential for one hash. The strings are NUL-terminated
 * canonical base64 (RFC 4648 §4, padded) so they fit text columns as they
 * are; salt_b64 is what goes into the server-first message's s=. The struct
 * holds no pointers and may be copied. */
struct scram_cred {
    enum scram_hash hash;
    char salt_b64[SCRAM_SALT_B64_SIZE];
    unsigned iterations;
    char stored_key_b64[SCRAM_KEY_B64_SIZE];
    char server_key_b64[SCRAM_KEY_B64_SIZE];
};

/* The SASL mechanism name, "SCRAM-SHA-1" or "SCRAM-SHA-256"; NULL for a value
 * outside the enum. */
const char *scram_hash_name(enum scram_hash h);

/* The key length in bytes, 20 or 32; 0 for a value outside the enum. */
size_t scram_hash_len(enum scram_hash h);

/* Sets *h_r from a mechanism name (exact, case-sensitive, as SASL names are
 * compared). Returns 0, or -1 with err set and *h_r unchanged. */
int scram_hash_from_name(const char *name, enum scram_hash *h_r, struct err *err) PL_WARN_UNUSED;

/* Derives a credential for password (UTF-8, plen bytes, need not be
 * NUL-terminated) with a fresh random salt of SCRAM_SALT_DEFAULT bytes.
 * The password is normalised with SASLprep (RFC 4013) first; the result must
 * be non-empty. Refuses iterations outside SCRAM_ITERATIONS_MIN..MAX, invalid
 * UTF-8, characters SASLprep prohibits and passwords longer than
 * SCRAM_PASSWORD_MAX. Returns 0 with *out filled, or -1 with err set and *out
 * unchanged. No copy of the password outlives the call. */
int scram_cred_make(enum scram_hash h, const char *password, size_t plen, unsigned iterations,
                    struct scram_cred *out, struct err *err) PL_WARN_UNUSED;

/* As scram_cred_make() with the given salt (saltlen in SCRAM_SALT_MIN..MAX),
 * for tests and for importing known values. */
int scram_cred_make_salt(enum scram_hash h, const char *password, size_t plen,
                         const unsigned char *salt, size_t saltlen, unsigned iterations,
                         struct scram_cred *out, struct err *err) PL_WARN_UNUSED;

/* Checks a credential read from storage: a known hash, iterations in range, a
 * salt of allowed length and keys of the hash's length, all in canonical
 * base64. Returns 0, or -1 with err set. */
int scram_cred_validate(const struct scram_cred *c, struct err *err) PL_WARN_UNUSED;

/* True when password (plen bytes) derives the StoredKey in c, compared in
 * constant time; this is how SASL PLAIN is checked. False for a wrong, empty,
 * unnormalisable or over-long password and for a credential that fails
 * scram_cred_validate(). Costs one PBKDF2 run at c->iterations. */
bool scram_check_password(const struct scram_cred *c, const char *password, size_t plen);

/* Decodes StoredKey and ServerKey into stored and server (SCRAM_KEY_MAX bytes
 * each, owned by the caller) and sets *len_r to their length. Returns 0, or
 * -1 with err set when c fails scram_cred_validate(); the outputs are then
 * unchanged. */
int scram_cred_keys(const struct scram_cred *c, unsigned char stored[SCRAM_KEY_MAX],
                    unsigned char server[SCRAM_KEY_MAX], size_t *len_r,
                    struct err *err) PL_WARN_UNUSED;

/* The server's check of a SCRAM client-final message (RFC 5802 §3): proof_b64
 * is the value of p= (proof_len bytes of base64) and auth_msg the AuthMessage
 * (client-first-bare "," server-first "," client-final-without-proof). True
 * when H(ClientProof XOR HMAC(StoredKey, AuthMessage)) equals StoredKey,
 * compared in constant time; false otherwise, including for malformed base64
 * and a credential that fails scram_cred_validate(). */
bool scram_verify_proof(const struct scram_cred *c, const char *auth_msg, size_t alen,
                        const char *proof_b64, size_t proof_len);

/* Writes the base64 ServerSignature, HMAC(ServerKey, AuthMessage), for the
 * server-final message's v= into sig_b64 (caller-owned, NUL-terminated).
 * Returns 0, or -1 with err set and sig_b64 unchanged. */
int scram_server_signature(const struct scram_cred *c, const char *auth_msg, size_t alen,
                           char sig_b64[SCRAM_KEY_B64_SIZE], struct err *err) PL_WARN_UNUSED;

#endif
