/* SPDX-License-Identifier: MIT */
/* Stream features (RFC 6120 §4.3.2): STARTTLS before TLS, SASL mechanisms
 * (with XEP-0440 channel-binding types) and XEP-0077 registration before
 * authentication, resource binding and the optional legacy session after. */
#include "c2s.h"

#include "buf.h"
#include "xml.h"

bool features_tls_first(const struct client *c)
{
    return c->c2s->cfg->require_tls && !c->tls && c->c2s->tls.creds != NULL;
}

bool features_password_ok(const struct client *c)
{
    return c->tls || c->c2s->cfg->allow_plaintext_auth;
}

static void channel_bindings(const struct client *c, struct buf *b)
{
    static const char *const types[] = {"tls-exporter", "tls-unique"};
    unsigned char data[64];
    bool any = false;
    for (size_t i = 0; i < PL_ARRAY_LEN(types); i++) {
        if (conn_tls_channel_binding(c->conn, types[i], data, sizeof(data)) < 0)
            continue;
        if (!any)
            buf_append_str(b, "<sasl-channel-binding xmlns='" C2S_NS_SASL_CB "'>");
        any = true;
        buf_printf(b, "<channel-binding type='%s'/>", types[i]);
    }
    if (any)
        buf_append_str(b, "</sasl-channel-binding>");
}

static void pre_auth(const struct client *c, struct buf *b)
{
    const struct c2s_cfg *cfg = c->c2s->cfg;
    if (c->c2s->tls.creds != NULL && !c->tls)
        buf_append_str(b, cfg->require_tls ? "<starttls xmlns='" C2S_NS_TLS
                                             "'><required/></starttls>"
                                           : "<starttls xmlns='" C2S_NS_TLS "'/>");
    if (features_tls_first(c))
        return;
    const char *mechs[16];
    size_t n = sasl_offered(c, mechs, PL_ARRAY_LEN(mechs));
    if (n > 0) {
        buf_append_str(b, "<mechanisms xmlns='" C2S_NS_SASL "'>");
        for (size_t i = 0; i < n; i++)
            buf_printf(b, "<mechanism>%s</mechanism>", mechs[i]);
        buf_append_str(b, "</mechanisms>");
    }
    if (c->tls)
        channel_bindings(c, b);
    if (cfg->registration && features_password_ok(c))
        buf_append_str(b, "<register xmlns='" C2S_NS_REG_FEAT "'/>");
}

void features_send(struct client *c)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<stream:features>");
    /* Roster versioning (XEP-0237) is served by the sm. */
    if (c->authed)
        buf_append_str(&b, "<bind xmlns='" C2S_NS_BIND "'/><session xmlns='" C2S_NS_SESSION
                           "'><optional/></session><ver xmlns='" C2S_NS_ROSTERVER "'/>");
    else
        pre_auth(c, &b);
    buf_append_str(&b, "</stream:features>");
    client_write(c, b.data, b.len);
    buf_fini(&b);
}
