/* SPDX-License-Identifier: MIT */
/* Internals shared by conn.c and tls_creds.c only: the server credential set
 * (one GnuTLS credential structure per domain, picked by SNI) and its
 * reference count, which lets a reload swap credentials under live conns. */
#ifndef PL_CONN_PRIVATE_H
#define PL_CONN_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>

/* Used by both ends when no priority string is given. */
#define TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* One certificate and key with the client trust list (if any), for one
 * domain. A whole credential structure per domain, so that choosing by SNI
 * is just gnutls_credentials_set() in the post-client-hello hook. */
struct tls_creds_entry {
    char *domain;
    gnutls_certificate_credentials_t cred;
};

struct tls_creds {
    unsigned refs; /* the tls_creds_new caller's plus one per conn using it */
    struct tls_creds_entry *entries;
    size_t nentries; /* >= 1; entries[0] is the default */
    gnutls_priority_t prio;
    bool request_client_cert; /* ca_file was given */
};

void tls_creds_ref(struct tls_creds *creds);
/* Drops one reference and frees the set with the last one. */
void tls_creds_unref(struct tls_creds *creds);
/* The entry whose domain equals name (ASCII case-insensitive), or the first
 * when name is NULL or matches none. */
const struct tls_creds_entry *tls_creds_select(const struct tls_creds *creds, const char *name);

#endif
