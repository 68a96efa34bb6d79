/* SPDX-License-Identifier: MIT */
/* Server TLS credentials: one PEM certificate and key per domain, chosen by
 * SNI, a checked priority string, and an optional CA list for client
 * certificates (SASL EXTERNAL). */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "alloc.h"
#include "err.h"
#include "conn_private.h"

void tls_creds_ref(struct tls_creds *creds)
{
    creds->refs++;
}

void tls_creds_unref(struct tls_creds *creds)
{
    if (creds == NULL)
        return;
    PL_ASSERT(creds->refs > 0);
    if (--creds->refs > 0)
        return;
    for (size_t i = 0; i < creds->nentries; i++) {
        if (creds->entries[i].cred != NULL)
            gnutls_certificate_free_credentials(creds->entries[i].cred);
        free(creds->entries[i].domain);
    }
    free(creds->entries);
    if (creds->prio != NULL)
        gnutls_priority_deinit(creds->prio);
    free(creds);
}

void tls_creds_free(struct tls_creds **creds)
{
    if (*creds == NULL)
        return;
    tls_creds_unref(*creds);
    *creds = NULL;
}

int tls_creds_trust_system(struct tls_creds *creds, struct err *err)
{
    for (size_t i = 0; i < creds->nentries; i++) {
        int rc = gnutls_certificate_set_x509_system_trust(creds->entries[i].cred);
        if (rc <= 0)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls system trust store: %s",
                           rc < 0 ? gnutls_strerror(rc) : "no certificates");
    }
    creds->request_client_cert = true;
    return 0;
}

const struct tls_creds_entry *tls_creds_select(const struct tls_creds *creds, const char *name)
{
    if (name != NULL) {
        for (size_t i = 0; i < creds->nentries; i++) {
            if (strcasecmp(creds->entries[i].domain, name) == 0)
                return &creds->entries[i];
        }
    }
    return &creds->entries[0];
}

/* GnuTLS reports a missing file as "Error while reading file." without the
 * name or the errno; checking first gives the operator both. */
static int check_readable(const char *what, const char *path, struct err *err)
{
    if (access(path, R_OK) < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls %s %s: %s", what, path,
                       strerror(errno));
    return 0;
}

static int load_entry(struct tls_creds_entry *e, const struct tls_cert_cfg *cfg,
                      const char *ca_file, struct err *err)
{
    if (cfg->domain == NULL || cfg->cert_file == NULL || cfg->key_file == NULL)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                       "tls certificate entry needs a domain, a cert_file and a key_file");
    e->domain = xstrdup(cfg->domain);
    if (check_readable("certificate", cfg->cert_file, err) < 0 ||
        check_readable("key", cfg->key_file, err) < 0)
        return -1;
    int rc = gnutls_certificate_allocate_credentials(&e->cred);
    if (rc < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls credentials: %s",
                       gnutls_strerror(rc));
    rc = gnutls_certificate_set_x509_key_file2(e->cred, cfg->cert_file, cfg->key_file,
                                               GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0)
        return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls certificate %s with key %s: %s",
                       cfg->cert_file, cfg->key_file, gnutls_strerror(rc));
    if (ca_file != NULL) {
        rc = gnutls_certificate_set_x509_trust_file(e->cred, ca_file, GNUTLS_X509_FMT_PEM);
        if (rc < 0)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls ca_file %s: %s", ca_file,
                           gnutls_strerror(rc));
        if (rc == 0)
            return err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                           "tls ca_file %s: no PEM certificates found", ca_file);
    }
    return 0;
}

struct tls_creds *tls_creds_new(const struct tls_cert_cfg *certs, size_t ncerts,
                                const char *priority, const char *ca_file, struct err *err)
{
    if (ncerts == 0) {
        err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls: no certificate configured");
        return NULL;
    }
    if (ca_file != NULL && check_readable("ca_file", ca_file, err) < 0)
        return NULL;
    struct tls_creds *creds = xcalloc(1, sizeof(*creds));
    creds->refs = 1;
    creds->entries = xcalloc(ncerts, sizeof(*creds->entries));
    creds->nentries = ncerts;
    creds->request_client_cert = ca_file != NULL;

    if (priority == NULL)
        priority = TLS_DEFAULT_PRIORITY;
    const char *err_pos = NULL;
    int rc = gnutls_priority_init(&creds->prio, priority, &err_pos);
    if (rc < 0) {
        creds->prio = NULL;
        if (rc == GNUTLS_E_INVALID_REQUEST && err_pos != NULL)
            err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR,
                    "tls priority string \"%s\": error at position %zu (\"%s\")", priority,
                    (size_t)(err_pos - priority), err_pos);
        else
            err_set(err, XMPP_COND_INTERNAL_SERVER_ERROR, "tls priority string \"%s\": %s",
                    priority, gnutls_strerror(rc));
        goto fail;
    }
    for (size_t i = 0; i < ncerts; i++) {
        if (load_entry(&creds->entries[i], &certs[i], ca_file, err) < 0)
            goto fail;
    }
    return creds;

fail:
    tls_creds_unref(creds);
    return NULL;
}
