/* SPDX-License-Identifier: MIT */
/* Unit tests for scram: the RFC 5802 and RFC 7677 exchanges end to end, keys
 * checked against values computed independently (Python hashlib.pbkdf2_hmac
 * and hmac), SASLprep on non-ASCII passwords, refusals, and corrupt stored
 * credentials. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "err.h"
#include "scram.h"

/* Decodes base64 with GnuTLS, independently of scram.c's decoder. */
static size_t gnutls_b64(const char *text, unsigned char *out, size_t max)
{
    gnutls_datum_t in = {(unsigned char *)text, (unsigned)strlen(text)};
    gnutls_datum_t dec = {NULL, 0};
    assert_int_equal(gnutls_base64_decode2(&in, &dec), 0);
    assert_true(dec.size <= max);
    memcpy(out, dec.data, dec.size);
    size_t n = dec.size;
    gnutls_free(dec.data);
    return n;
}

static void make_from_b64_salt(enum scram_hash h, const char *pw, size_t plen, const char *salt_b64,
                               unsigned iterations, struct scram_cred *c)
{
    unsigned char salt[SCRAM_SALT_MAX];
    size_t saltlen = gnutls_b64(salt_b64, salt, sizeof(salt));
    struct err err = {0};
    int rc = scram_cred_make_salt(h, pw, plen, salt, saltlen, iterations, c, &err);
    if (rc != 0)
        fail_msg("scram_cred_make_salt: %s", err.text);
}

/* ---- the RFC exchanges ---- */

struct rfc_case {
    const char *name;
    enum scram_hash hash;
    const char *password;
    const char *salt_b64;
    unsigned iterations;
    const char *want_stored; /* from hashlib.pbkdf2_hmac + hmac */
    const char *want_server;
    const char *client_first_bare;
    const char *server_first;
    const char *client_final; /* with ",p=" proof, as on the wire */
    const char *server_final; /* "v=..." */
};

static const struct rfc_case rfc_cases[] = {
    {"RFC 5802 §5", SCRAM_SHA1, "pencil", "QSXCR+Q6sek8bf92", 4096, "6dlGYMOdZcOPutkcNY8U2g7vK9Y=",
     "D+CSWLOshSulAsxiupA+qs2/fTE=", "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
     "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="},
    {"RFC 7677 §3", SCRAM_SHA256, "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096,
     "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=", "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
     "n=user,r=rOprNGfwEbeRWgbNEkqO",
     "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
     "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
};

/* Splits client-final at ",p=" and builds the AuthMessage (RFC 5802 §3). */
static void auth_message(const struct rfc_case *t, char *am, size_t size, const char **proof_r)
{
    const char *p = strstr(t->client_final, ",p=");
    assert_non_null(p);
    int n = snprintf(am, size, "%s,%s,%.*s", t->client_first_bare, t->server_first,
                     (int)(p - t->client_final), t->client_final);
    assert_true(n > 0 && (size_t)n < size);
    *proof_r = p + 3;
}

static void test_rfc_exchanges(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc_cases) / sizeof(rfc_cases[0]); i++) {
        const struct rfc_case *t = &rfc_cases[i];
        struct scram_cred c;
        struct err err = {0};
        make_from_b64_salt(t->hash, t->password, strlen(t->password), t->salt_b64, t->iterations,
                           &c);
        assert_int_equal(c.hash, t->hash);
        assert_int_equal(c.iterations, t->iterations);
        assert_string_equal(c.salt_b64, t->salt_b64);
        assert_string_equal(c.stored_key_b64, t->want_stored);
        assert_string_equal(c.server_key_b64, t->want_server);
        assert_int_equal(scram_cred_validate(&c, &err), 0);

        /* the raw keys are the decoded text */
        unsigned char stored[SCRAM_KEY_MAX], server[SCRAM_KEY_MAX];
        unsigned char want[SCRAM_KEY_MAX];
        size_t len = 0;
        assert_int_equal(scram_cred_keys(&c, stored, server, &len, &err), 0);
        assert_int_equal(len, scram_hash_len(t->hash));
        assert_int_equal(gnutls_b64(t->want_stored, want, sizeof(want)), len);
        assert_memory_equal(stored, want, len);
        assert_int_equal(gnutls_b64(t->want_server, want, sizeof(want)), len);
        assert_memory_equal(server, want, len);

        /* the server accepts the RFC's proof and answers with its signature */
        char am[512];
        const char *proof;
        auth_message(t, am, sizeof(am), &proof);
        assert_true(scram_verify_proof(&c, am, strlen(am), proof, strlen(proof)));
        char sig[SCRAM_KEY_B64_SIZE];
        assert_int_equal(scram_server_signature(&c, am, strlen(am), sig, &err), 0);
        assert_string_equal(sig, t->server_final + 2);

        /* PLAIN with the same password */
        assert_true(scram_check_password(&c, t->password, strlen(t->password)));
    }
}

static void test_rfc_proof_rejected(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc_cases) / sizeof(rfc_cases[0]); i++) {
        const struct rfc_case *t = &rfc_cases[i];
        struct scram_cred c;
        make_from_b64_salt(t->hash, t->password, strlen(t->password), t->salt_b64, t->iterations,
                           &c);
        char am[512];
        const char *proof;
        auth_message(t, am, sizeof(am), &proof);
        size_t alen = strlen(am), plen = strlen(proof);

        /* one character of the proof changed */
        char bad[64];
        memcpy(bad, proof, plen + 1);
        bad[3] = bad[3] == 'A' ? 'B' : 'A';
        assert_false(scram_verify_proof(&c, am, alen, bad, plen));
        /* proof cut short, padded wrongly, not base64, empty */
        assert_false(scram_verify_proof(&c, am, alen, proof, plen - 4));
        assert_false(scram_verify_proof(&c, am, alen, proof, plen - 1));
        memcpy(bad, proof, plen + 1);
        bad[5] = '*';
        assert_false(scram_verify_proof(&c, am, alen, bad, plen));
        assert_false(scram_verify_proof(&c, am, alen, "", 0));
        /* the same bytes with non-zero pad bits: only canonical base64 counts */
        memcpy(bad, proof, plen + 1);
        assert_int_equal(bad[plen - 1], '=');
        bad[plen - 2]++;
        assert_false(scram_verify_proof(&c, am, alen, bad, plen));
        /* the AuthMessage differs in one byte, or is cut short */
        char am2[512];
        memcpy(am2, am, alen + 1);
        am2[alen - 1] ^= 1;
        assert_false(scram_verify_proof(&c, am2, alen, proof, plen));
        assert_false(scram_verify_proof(&c, am, alen - 1, proof, plen));
        /* the right proof against a credential for another password */
        struct scram_cred other;
        make_from_b64_salt(t->hash, "pencil2", 7, t->salt_b64, t->iterations, &other);
        assert_false(scram_verify_proof(&other, am, alen, proof, plen));
    }
}

/* The SHA-1 exchange with the client nonce taken as
 * "fyko+d2lbbFgONRv9qkxdawL3rfc" (part of the server's half glued on): a
 * different AuthMessage, so the RFC's proof must not verify. */
static void test_rfc_wrong_nonce_split(void **state)
{
    (void)state;
    struct scram_cred c;
    make_from_b64_salt(SCRAM_SHA1, "pencil", 6, "QSXCR+Q6sek8bf92", 4096, &c);
    const char *am = "n=user,r=fyko+d2lbbFgONRv9qkxdawL3rfc,"
                     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,"
                     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
    const char *proof = "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
    assert_false(scram_verify_proof(&c, am, strlen(am), proof, strlen(proof)));
}

/* ---- SASLprep on non-ASCII passwords ---- */

struct prep_case {
    const char *name;
    const char *password;
    const char *want_stored; /* SHA-256, salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096 */
    const char *want_server;
};

/* Expected keys computed in Python from the SASLprep output written in the
 * name, so they also pin the normalisation. */
static const struct prep_case prep_cases[] = {
    {"IX", "IX", "jm4XkHvFe7q0xZ4vmAKJUiTKPr1F+7MXnYyksTUVeBE=",
     "EqXM4c5+I7lQ5vHl5Ngu2rY8DBMM1XjG0dY6GEjwLx0="},
    {"U+2168 ROMAN NUMERAL NINE -> IX", "\xE2\x85\xA8",
     "jm4XkHvFe7q0xZ4vmAKJUiTKPr1F+7MXnYyksTUVeBE=",
     "EqXM4c5+I7lQ5vHl5Ngu2rY8DBMM1XjG0dY6GEjwLx0="},
    {"I, SOFT HYPHEN, X -> IX", "I\xC2\xADX", "jm4XkHvFe7q0xZ4vmAKJUiTKPr1F+7MXnYyksTUVeBE=",
     "EqXM4c5+I7lQ5vHl5Ngu2rY8DBMM1XjG0dY6GEjwLx0="},
    {"caf\xC3\xA9 precomposed", "caf\xC3\xA9", "r0ZyW76qmGRwkIEz1ddjxD/yMgwbPkObxAVa2EW3pTI=",
     "o8MRSG1fDu7D2fTzMnvlgGbrRRZq2RdaE9aamBjrK20="},
    {"cafe + U+0301 -> caf\xC3\xA9 (NFKC)", "cafe\xCC\x81",
     "r0ZyW76qmGRwkIEz1ddjxD/yMgwbPkObxAVa2EW3pTI=",
     "o8MRSG1fDu7D2fTzMnvlgGbrRRZq2RdaE9aamBjrK20="},
    /* U+1F511 is unassigned in Unicode 3.2: accepted as it is */
    {"U+1F511 KEY, pw", "\xF0\x9F\x94\x91pw", "eAT+T1Tl9ncT1zaZMPWs61cYqkjhqMXrwbk/YbOSKHE=",
     "4P6c/+c+mDVnEI0HO+HdbT85As+ue+t1OLmRVHeIHZ8="},
};

static void test_saslprep_keys(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(prep_cases) / sizeof(prep_cases[0]); i++) {
        const struct prep_case *t = &prep_cases[i];
        struct scram_cred c;
        make_from_b64_salt(SCRAM_SHA256, t->password, strlen(t->password),
                           "W22ZaJ0SNY7soEsUEjb6gQ==", 4096, &c);
        if (strcmp(c.stored_key_b64, t->want_stored) != 0 ||
            strcmp(c.server_key_b64, t->want_server) != 0)
            fail_msg("%s: got %s / %s", t->name, c.stored_key_b64, c.server_key_b64);
    }
}

/* ---- PLAIN: scram_check_password ---- */

struct check_case {
    const char *name;
    enum scram_hash hash;
    const char *stored; /* the password the credential is made from */
    const char *given;
    size_t given_len; /* 0: strlen(given) */
    bool want;
};

static const struct check_case check_cases[] = {
    {"same", SCRAM_SHA256, "pencil", "pencil", 0, true},
    {"same, SHA-1", SCRAM_SHA1, "pencil", "pencil", 0, true},
    {"wrong", SCRAM_SHA256, "pencil", "pen", 0, false},
    {"wrong, SHA-1", SCRAM_SHA1, "pencil", "crayon", 0, false},
    {"trailing space", SCRAM_SHA256, "pencil", "pencil ", 0, false},
    {"first letter upper", SCRAM_SHA256, "pencil", "Pencil", 0, false},
    {"all upper", SCRAM_SHA1, "pencil", "PENCIL", 0, false},
    {"empty", SCRAM_SHA256, "pencil", "", 0, false},
    {"NUL then more", SCRAM_SHA256, "pencil", "pencil\0x", 8, false},
    {"prefix only", SCRAM_SHA256, "pencil", "pencil", 5, false},
    {"non-ASCII same", SCRAM_SHA256,
     "gr\xC3\xBC\xC3\x9F"
     "e",
     "gr\xC3\xBC\xC3\x9F"
     "e",
     0, true},
    {"non-ASCII case differs", SCRAM_SHA256,
     "\xC3\xA4"
     "bc",
     "\xC3\x84"
     "bc",
     0, false},
    {"sharp s is not ss", SCRAM_SHA256,
     "stra\xC3\x9F"
     "e",
     "strasse", 0, false},
    {"decomposed matches precomposed", SCRAM_SHA1, "caf\xC3\xA9", "cafe\xCC\x81", 0, true},
    {"NBSP maps to space", SCRAM_SHA256, "a b",
     "a\xC2\xA0"
     "b",
     0, true},
    {"soft hyphen dropped", SCRAM_SHA256, "IX", "I\xC2\xADX", 0, true},
    {"fullwidth folds (NFKC)", SCRAM_SHA256, "abc", "\xEF\xBD\x81\xEF\xBD\x82\xEF\xBD\x83", 0,
     true},
    {"Cyrillic a is not Latin a", SCRAM_SHA256, "pencil", "p\xD0\xB5ncil", 0, false},
    {"emoji", SCRAM_SHA256, "\xF0\x9F\x94\x91pw", "\xF0\x9F\x94\x91pw", 0, true},
    {"emoji missing", SCRAM_SHA256, "\xF0\x9F\x94\x91pw", "pw", 0, false},
    {"invalid UTF-8 given", SCRAM_SHA256, "pencil", "pencil\xFF", 0, false},
    {"control character given", SCRAM_SHA256, "pencil", "pencil\x07", 0, false},
};

static void test_check_password(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
        const struct check_case *t = &check_cases[i];
        struct scram_cred c;
        struct err err = {0};
        if (scram_cred_make(t->hash, t->stored, strlen(t->stored), 4096, &c, &err) != 0)
            fail_msg("%s: make: %s", t->name, err.text);
        size_t len = t->given_len ? t->given_len : strlen(t->given);
        if (scram_check_password(&c, t->given, len) != t->want)
            fail_msg("%s: check_password gave %s", t->name, t->want ? "false" : "true");
    }
}

/* ---- refusals ---- */

struct refuse_case {
    const char *name;
    const char *password;
    size_t plen;         /* 0: strlen(password) */
    unsigned iterations; /* 0: 4096 */
    size_t saltlen;      /* 0: 16 */
    const char *why;     /* substring of err.text */
};

/* Filled with 'a' by test_make_refused. */
static char long_password[SCRAM_PASSWORD_MAX + 2];

static const struct refuse_case refuse_cases[] = {
    {"iterations 4095", "pencil", 0, 4095, 0, "below the minimum 4096"},
    {"iterations 1", "pencil", 0, 1, 0, "below the minimum 4096"},
    {"iterations too high", "pencil", 0, SCRAM_ITERATIONS_MAX + 1, 0, "above the maximum"},
    {"empty password", "", 0, 0, 0, "password is empty"},
    {"empty after SASLprep", "\xC2\xAD", 0, 0, 0, "empty after SASLprep"},
    {"too long", long_password, SCRAM_PASSWORD_MAX + 1, 0, 0, "longer than 1024 bytes"},
    {"embedded NUL", "a\0b", 3, 0, 0, "NUL byte"},
    {"invalid byte", "abc\xFF", 0, 0, 0, "not valid UTF-8"},
    {"overlong '/'", "\xC0\xAF", 0, 0, 0, "not valid UTF-8"},
    {"surrogate", "\xED\xA0\x80", 0, 0, 0, "not valid UTF-8"},
    {"above U+10FFFF", "\xF4\x90\x80\x80", 0, 0, 0, "not valid UTF-8"},
    /* plen ends inside the sequence; the byte after it would complete it */
    {"truncated sequence", "ab\xC3\xA9", 3, 0, 0, "not valid UTF-8"},
    {"BEL", "pass\x07word", 0, 0, 0, "prohibits"},
    {"DEL", "pass\x7Fword", 0, 0, 0, "prohibits"},
    {"private use U+E000", "a\xEE\x80\x80", 0, 0, 0, "prohibits"},
    {"RTL then digit",
     "\xD8\xA7"
     "1",
     0, 0, 0, "right-to-left"},
    {"salt too short", "pencil", 0, 0, SCRAM_SALT_MIN - 1, "outside 8..64"},
    {"salt too long", "pencil", 0, 0, SCRAM_SALT_MAX + 1, "outside 8..64"},
};

static void test_make_refused(void **state)
{
    (void)state;
    static const unsigned char salt[SCRAM_SALT_MAX + 1] = {1, 2, 3};
    memset(long_password, 'a', SCRAM_PASSWORD_MAX + 1);
    for (size_t i = 0; i < sizeof(refuse_cases) / sizeof(refuse_cases[0]); i++) {
        const struct refuse_case *t = &refuse_cases[i];
        size_t plen = t->plen ? t->plen : strlen(t->password);
        unsigned iterations = t->iterations ? t->iterations : 4096;
        size_t saltlen = t->saltlen ? t->saltlen : 16;
        for (int with_salt = 0; with_salt < 2; with_salt++) {
            if (!with_salt && t->saltlen != 0)
                continue;
            struct scram_cred out, before;
            memset(&out, 0xa5, sizeof(out));
            before = out;
            struct err err = {0};
            int rc = with_salt
                         ? scram_cred_make_salt(SCRAM_SHA256, t->password, plen, salt, saltlen,
                                                iterations, &out, &err)
                         : scram_cred_make(SCRAM_SHA1, t->password, plen, iterations, &out, &err);
            if (rc != -1)
                fail_msg("%s: accepted", t->name);
            if (strstr(err.text, t->why) == NULL)
                fail_msg("%s: error \"%s\" lacks \"%s\"", t->name, err.text, t->why);
            assert_int_not_equal(err.cond, XMPP_COND_NONE);
            assert_memory_equal(&out, &before, sizeof(out));
        }
    }
}

static void test_iteration_bounds_accepted(void **state)
{
    (void)state;
    static const unsigned counts[] = {SCRAM_ITERATIONS_MIN, SCRAM_ITERATIONS_MIN + 1, 10000};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct scram_cred c;
        struct err err = {0};
        assert_int_equal(scram_cred_make(SCRAM_SHA256, "pencil", 6, counts[i], &c, &err), 0);
        assert_int_equal(c.iterations, counts[i]);
        assert_true(scram_check_password(&c, "pencil", 6));
    }
}

/* ---- fresh salts ---- */

static void test_make_fresh_salts(void **state)
{
    (void)state;
    static const enum scram_hash hs[] = {SCRAM_SHA1, SCRAM_SHA256};
    for (size_t i = 0; i < 2; i++) {
        struct scram_cred a, b;
        struct err err = {0};
        assert_int_equal(scram_cred_make(hs[i], "pencil", 6, 4096, &a, &err), 0);
        assert_int_equal(scram_cred_make(hs[i], "pencil", 6, 4096, &b, &err), 0);
        unsigned char salt[SCRAM_SALT_MAX];
        assert_int_equal(gnutls_b64(a.salt_b64, salt, sizeof(salt)), SCRAM_SALT_DEFAULT);
        assert_int_equal(strlen(a.salt_b64), 24);
        assert_string_not_equal(a.salt_b64, b.salt_b64);
        assert_string_not_equal(a.stored_key_b64, b.stored_key_b64);
        assert_string_not_equal(a.server_key_b64, b.server_key_b64);
        assert_int_equal(strlen(a.stored_key_b64), hs[i] == SCRAM_SHA1 ? 28 : 44);
        assert_true(scram_check_password(&a, "pencil", 6));
        assert_true(scram_check_password(&b, "pencil", 6));
    }
}

/* ---- corrupt stored credentials ---- */

struct corrupt_case {
    const char *name;
    int hash; /* -1: keep */
    unsigned iterations;
    const char *salt_b64; /* NULL: keep */
    const char *stored_key_b64;
    const char *server_key_b64;
    bool unterminated_salt;
    const char *why;
};

static const struct corrupt_case corrupt_cases[] = {
    {"unknown hash", 7, 0, NULL, NULL, NULL, false, "unknown SCRAM hash"},
    {"iterations 100", -1, 100, NULL, NULL, NULL, false, "below the minimum"},
    {"iterations huge", -1, 4000000000u, NULL, NULL, NULL, false, "above the maximum"},
    {"salt too short", -1, 0, "AAAA", NULL, NULL, false, "shorter than 8"},
    {"salt not base64", -1, 0, "W22ZaJ0SNY7soEsU*jb6gQ==", NULL, NULL, false, "salt is not"},
    {"salt non-zero pad bits", -1, 0, "W22ZaJ0SNY7soEsUEjb6gR==", NULL, NULL, false, "salt is not"},
    {"salt unpadded", -1, 0, "W22ZaJ0SNY7soEsUEjb6gQ", NULL, NULL, false, "salt is not"},
    {"salt with newline", -1, 0, "W22ZaJ0SNY7soEsU\nEjb6gQ==", NULL, NULL, false, "salt is not"},
    {"salt unterminated", -1, 0, NULL, NULL, NULL, true, "not terminated"},
    {"stored key empty", -1, 0, NULL, "", NULL, false, "keys must be 32 bytes"},
    {"stored key of SHA-1 length", -1, 0, NULL, "6dlGYMOdZcOPutkcNY8U2g7vK9Y=", NULL, false,
     "keys must be 32 bytes"},
    {"server key of SHA-1 length", -1, 0, NULL, NULL, "D+CSWLOshSulAsxiupA+qs2/fTE=", false,
     "keys must be 32 bytes"},
    {"server key non-zero pad bits", -1, 0, NULL, NULL,
     "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dV=", false, "ServerKey is not"},
    {"server key with space", -1, 0, NULL, NULL, "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU ",
     false, "ServerKey is not"},
    {"SHA-256 keys labelled SHA-1", SCRAM_SHA1, 0, NULL, NULL, NULL, false,
     "keys must be 20 bytes"},
};

static void test_corrupt_creds(void **state)
{
    (void)state;
    struct scram_cred good;
    make_from_b64_salt(SCRAM_SHA256, "pencil", 6, "W22ZaJ0SNY7soEsUEjb6gQ==", 4096, &good);
    const char *am = "n=user,r=x,r=xy,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=xy";
    for (size_t i = 0; i < sizeof(corrupt_cases) / sizeof(corrupt_cases[0]); i++) {
        const struct corrupt_case *t = &corrupt_cases[i];
        struct scram_cred c = good;
        if (t->hash >= 0)
            c.hash = (enum scram_hash)t->hash;
        if (t->iterations)
            c.iterations = t->iterations;
        if (t->salt_b64)
            snprintf(c.salt_b64, sizeof(c.salt_b64), "%s", t->salt_b64);
        if (t->stored_key_b64)
            snprintf(c.stored_key_b64, sizeof(c.stored_key_b64), "%s", t->stored_key_b64);
        if (t->server_key_b64)
            snprintf(c.server_key_b64, sizeof(c.server_key_b64), "%s", t->server_key_b64);
        if (t->unterminated_salt)
            memset(c.salt_b64, 'A', sizeof(c.salt_b64));

        struct err err = {0};
        if (scram_cred_validate(&c, &err) != -1)
            fail_msg("%s: validated", t->name);
        if (strstr(err.text, t->why) == NULL)
            fail_msg("%s: error \"%s\" lacks \"%s\"", t->name, err.text, t->why);

        unsigned char stored[SCRAM_KEY_MAX], server[SCRAM_KEY_MAX];
        memset(stored, 0x5a, sizeof(stored));
        memset(server, 0x5a, sizeof(server));
        size_t len = 99;
        assert_int_equal(scram_cred_keys(&c, stored, server, &len, &err), -1);
        assert_int_equal(len, 99);
        assert_int_equal(stored[0], 0x5a);
        assert_int_equal(server[0], 0x5a);

        assert_false(scram_check_password(&c, "pencil", 6));
        char sig[SCRAM_KEY_B64_SIZE] = "unchanged";
        assert_int_equal(scram_server_signature(&c, am, strlen(am), sig, &err), -1);
        assert_string_equal(sig, "unchanged");
        assert_false(scram_verify_proof(&c, am, strlen(am), good.stored_key_b64,
                                        strlen(good.stored_key_b64)));
    }
}

/* ---- hash names ---- */

static void test_hash_names(void **state)
{
    (void)state;
    static const struct {
        enum scram_hash h;
        const char *name;
        size_t len;
    } rows[] = {
        {SCRAM_SHA1, "SCRAM-SHA-1", 20},
        {SCRAM_SHA256, "SCRAM-SHA-256", 32},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        enum scram_hash h = (enum scram_hash)99;
        struct err err = {0};
        assert_string_equal(scram_hash_name(rows[i].h), rows[i].name);
        assert_int_equal(scram_hash_len(rows[i].h), rows[i].len);
        assert_int_equal(scram_hash_from_name(rows[i].name, &h, &err), 0);
        assert_int_equal(h, rows[i].h);
    }
    static const char *const unknown[] = {"scram-sha-1", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-512",
                                          "PLAIN", ""};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        enum scram_hash h = SCRAM_SHA256;
        struct err err = {0};
        assert_int_equal(scram_hash_from_name(unknown[i], &h, &err), -1);
        assert_int_equal(h, SCRAM_SHA256);
        assert_non_null(strstr(err.text, "unknown SCRAM mechanism"));
    }
    assert_null(scram_hash_name((enum scram_hash)2));
    assert_int_equal(scram_hash_len((enum scram_hash)2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_exchanges),
        cmocka_unit_test(test_rfc_proof_rejected),
        cmocka_unit_test(test_rfc_wrong_nonce_split),
        cmocka_unit_test(test_saslprep_keys),
        cmocka_unit_test(test_check_password),
        cmocka_unit_test(test_make_refused),
        cmocka_unit_test(test_iteration_bounds_accepted),
        cmocka_unit_test(test_make_fresh_salts),
        cmocka_unit_test(test_corrupt_creds),
        cmocka_unit_test(test_hash_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
