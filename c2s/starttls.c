/* SPDX-License-Identifier: MIT */
/* TLS: the server credentials (one certificate per domain, by SNI), and
 * STARTTLS (RFC 6120 §5): <proceed/>, then the handshake, then a new
 * stream; plaintext sent after <starttls/> is discarded, never parsed. */
#include "c2s.h"

#include "xml.h"

int tls_setup(struct c2s *c2s, const struct c2s_cfg *cfg, struct err *err)
{
    struct tls_creds *creds = NULL;
    if (cfg->ncerts > 0) {
        creds = tls_creds_new(cfg->certs, cfg->ncerts, cfg->tls_priority, cfg->tls_ca_file, err);
        if (creds == NULL)
            return -1;
    }
    /* Connections that started TLS keep their own reference. */
    tls_creds_free(&c2s->tls.creds);
    c2s->tls.creds = creds;
    return 0;
}

void tls_fini(struct c2s *c2s)
{
    tls_creds_free(&c2s->tls.creds);
}

/* §5.4.2.2: <failure/>, then the stream and the connection close. */
static void tls_failure(struct client *c, const char *why)
{
    log_info(&c->lc, "STARTTLS refused: %s", why);
    client_write_str(c, "<failure xmlns='" C2S_NS_TLS "'/>");
    client_close(c, why);
}

void starttls_on_element(struct client *c, const struct xml_node *st)
{
    if (!xml_is(st, C2S_NS_TLS, "starttls")) {
        client_stream_error(c, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                            "<%s xmlns='" C2S_NS_TLS "'/> is not a request", st->name);
        return;
    }
    if (c->c2s->tls.creds == NULL) {
        tls_failure(c, "no TLS certificate is configured");
        return;
    }
    if (c->tls) {
        tls_failure(c, "TLS is already on");
        return;
    }
    client_write_str(c, "<proceed xmlns='" C2S_NS_TLS "'/>");
    client_restart(c);
    c->state = CLIENT_TLS_HANDSHAKE;
    struct err err = {0};
    if (conn_starttls_server(c->conn, c->c2s->tls.creds, &err) < 0) {
        log_warn(&c->lc, "cannot start TLS: %s", err.text);
        client_close(c, "TLS setup failed");
    }
}
