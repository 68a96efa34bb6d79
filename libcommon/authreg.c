/* SPDX-License-Identifier: MIT */
/* authreg records <-> SCRAM credentials. */
#include "authreg.h"

#include <stdio.h>
#include <string.h>

#include "arena.h"

const char *const authreg_user_collections[] = {
    "roster-items",  "roster-groups",   "queue",       "vcard",      "private",
    "privacy-items", "privacy-default", "disco-items", "motd-times", "vacation-settings",
    "archive",       "pep-nodes",       "pep-items",   "active",     "logout",
    "counters",      AUTHREG_COLL,      NULL};

struct prefix {
    const char *salt, *iter, *stored, *server;
};

static const struct prefix prefixes[] = {
    [SCRAM_SHA1] = {"scram1_salt", "scram1_iter", "scram1_stored", "scram1_server"},
    [SCRAM_SHA256] = {"scram256_salt", "scram256_iter", "scram256_stored", "scram256_server"},
};

struct store_rec *authreg_rec_new(struct arena *a, const char *password, size_t plen,
                                  unsigned iterations, int64_t now_us, struct err *err)
{
    struct store_rec *r = store_rec_new(a);
    for (int h = SCRAM_SHA1; h <= SCRAM_SHA256; h++) {
        struct scram_cred c;
        if (scram_cred_make((enum scram_hash)h, password, plen, iterations, &c, err) < 0)
            return NULL;
        const struct prefix *p = &prefixes[h];
        store_rec_str(a, r, p->salt, c.salt_b64);
        store_rec_int(a, r, p->iter, c.iterations);
        store_rec_str(a, r, p->stored, c.stored_key_b64);
        store_rec_str(a, r, p->server, c.server_key_b64);
    }
    store_rec_time(a, r, "created", now_us);
    return r;
}

static int copy_b64(char *dst, size_t size, const char *src, const char *what, struct err *err)
{
    if (src == NULL || strlen(src) >= size)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "authreg %s is missing or damaged",
                       what);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

int authreg_cred(const struct store_rec *r, enum scram_hash h, struct scram_cred *out,
                 struct err *err)
{
    const struct prefix *p = &prefixes[h];
    struct scram_cred c = {.hash = h};
    int64_t iter = store_rec_get_int(r, p->iter, 0);
    if (iter <= 0 || iter > SCRAM_ITERATIONS_MAX)
        return err_set(err, XMPP_COND_NOT_AUTHORIZED, "no %s credential", scram_hash_name(h));
    c.iterations = (unsigned)iter;
    if (copy_b64(c.salt_b64, sizeof(c.salt_b64), store_rec_get_str(r, p->salt, NULL), p->salt,
                 err) < 0 ||
        copy_b64(c.stored_key_b64, sizeof(c.stored_key_b64), store_rec_get_str(r, p->stored, NULL),
                 p->stored, err) < 0 ||
        copy_b64(c.server_key_b64, sizeof(c.server_key_b64), store_rec_get_str(r, p->server, NULL),
                 p->server, err) < 0)
        return -1;
    if (scram_cred_validate(&c, err) < 0)
        return -1;
    *out = c;
    return 0;
}

bool authreg_check_password(const struct store_rec *r, const char *password, size_t plen)
{
    struct scram_cred c;
    if (authreg_cred(r, SCRAM_SHA256, &c, NULL) == 0)
        return scram_check_password(&c, password, plen);
    if (authreg_cred(r, SCRAM_SHA1, &c, NULL) == 0)
        return scram_check_password(&c, password, plen);
    return false;
}
