/* SPDX-License-Identifier: MIT */
/* Credentials in the store: the authreg record of a user holds SCRAM-SHA-1
 * and SCRAM-SHA-256 salted keys, never a password. Used by c2s (SASL) and
 * parleyctl (user management). */
#ifndef PL_AUTHREG_H
#define PL_AUTHREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attr.h"
#include "scram.h"
#include "store.h"

struct arena;

#define AUTHREG_COLL "authreg"

/* Builds an authreg record for password: both hashes, fresh salts,
 * iterations each (>= 4096), created at now_us. Returns NULL with err when
 * the password is refused (empty, too long, not SASLprep-able). */
struct store_rec *authreg_rec_new(struct arena *a, const char *password, size_t plen,
                                  unsigned iterations, int64_t now_us, struct err *err);
/* Reads the credential for hash h from an authreg record. Returns 0, or -1
 * with err when the record has none or it is damaged. */
int authreg_cred(const struct store_rec *r, enum scram_hash h, struct scram_cred *out,
                 struct err *err) PL_WARN_UNUSED;
/* True when password matches the record (SASL PLAIN): checked against the
 * SCRAM-SHA-256 keys, or the SCRAM-SHA-1 ones if that is all there is. */
bool authreg_check_password(const struct store_rec *r, const char *password, size_t plen);

/* Every collection that holds a user's data, for deleting an account. */
extern const char *const authreg_user_collections[];

#endif
