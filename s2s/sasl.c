/* SPDX-License-Identifier: MIT */
/* SASL EXTERNAL between servers (RFC 6120 §6, XEP-0178): the receiving
 * side offers it only when the peer's TLS certificate is PKIX-valid and
 * names the domain in the stream's 'from' (RFC 6125); the initiating side
 * uses it whenever it is offered and it has a certificate of its own. */
#include "s2s.h"

#include <string.h>

#include <gnutls/gnutls.h>

#include "buf.h"
#include "hmap.h"
#include "xml.h"
#include "xstream.h"

bool sasl_offered(const struct xml_node *features)
{
    const struct xml_node *mechs = xml_child(features, S2S_NS_SASL, "mechanisms");
    for (const struct xml_node *m = mechs ? xml_child(mechs, S2S_NS_SASL, "mechanism") : NULL;
         m != NULL; m = xml_next(m, S2S_NS_SASL, "mechanism")) {
        if (m->first != NULL && m->first->text != NULL && strcmp(m->first->text, "EXTERNAL") == 0)
            return true;
    }
    return false;
}

/* ---- initiating side ----------------------------------------------------------- */

void sasl_out_start(struct s2s_conn *sc)
{
    /* The authorization identity is our domain (XEP-0178 §3 step 7). */
    gnutls_datum_t in = {(unsigned char *)sc->local, (unsigned)strlen(sc->local)}, out = {0};
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<auth xmlns='" S2S_NS_SASL "' mechanism='EXTERNAL'>");
    if (gnutls_base64_encode2(&in, &out) >= 0) {
        buf_append(&b, out.data, out.size);
        gnutls_free(out.data);
    } else {
        buf_append_char(&b, '=');
    }
    buf_append_str(&b, "</auth>");
    sconn_write(sc, b.data, b.len);
    buf_fini(&b);
    sc->state = SC_SASL;
    log_debug(&sc->lc, "SASL EXTERNAL as %s", sc->local);
}

bool sasl_out_on_element(struct s2s_conn *sc, const struct xml_node *st)
{
    if (xml_is(st, S2S_NS_SASL, "success")) {
        sc->sasl_done = true;
        sc->s2s->stats.sasl_out++;
        log_notice(&sc->lc, "authenticated as %s to %s with SASL EXTERNAL", sc->local, sc->remote);
        sconn_restart(sc);
        sconn_send_header(sc, sc->local, sc->remote);
        return true;
    }
    if (xml_is(st, S2S_NS_SASL, "failure")) {
        const struct xml_node *c = xml_first_elem(st);
        log_info(&sc->lc, "%s refused SASL EXTERNAL (%s): trying dialback", sc->remote,
                 c ? c->name : "no reason");
        sc->sasl_failed = true;
        dialback_out_start(sc);
        return true;
    }
    return false;
}

/* ---- receiving side ---------------------------------------------------------------- */

bool sasl_in_offer(const struct s2s_conn *sc)
{
    return sc->tls && !sc->sasl_done && sc->remote != NULL &&
           s2s_local_domain(sc->s2s, sc->remote) == NULL &&
           conn_tls_peer_names(sc->conn, sc->remote);
}

static void failure(struct s2s_conn *sc, const char *cond, const char *why)
{
    log_info(&sc->lc, "SASL EXTERNAL refused: %s", why);
    struct buf b = BUF_INIT;
    buf_printf(&b, "<failure xmlns='" S2S_NS_SASL "'><%s/></failure>", cond);
    sconn_write(sc, b.data, b.len);
    buf_fini(&b);
}

/* The authorization identity: "=" or empty means the stream's 'from';
 * anything else must decode to it. */
static bool authzid_ok(struct s2s_conn *sc, const char *text)
{
    if (text[0] == '\0' || strcmp(text, "=") == 0)
        return true;
    gnutls_datum_t in = {(unsigned char *)text, (unsigned)strlen(text)}, out = {0};
    if (gnutls_base64_decode2(&in, &out) < 0)
        return false;
    bool ok = out.size == strlen(sc->remote) && memcmp(out.data, sc->remote, out.size) == 0;
    gnutls_free(out.data);
    return ok;
}

void sasl_in_on_element(struct s2s_conn *sc, const struct xml_node *st)
{
    if (xml_is(st, S2S_NS_SASL, "abort")) {
        failure(sc, "aborted", "the peer aborted");
        return;
    }
    if (!xml_is(st, S2S_NS_SASL, "auth")) {
        sconn_stream_error(sc, XMPP_COND_STREAM_POLICY_VIOLATION, "<%s/> out of a SASL exchange",
                           st->name);
        return;
    }
    const char *mech = xml_attr_get(st, "mechanism");
    if (mech == NULL || strcmp(mech, "EXTERNAL") != 0) {
        failure(sc, "invalid-mechanism", "only EXTERNAL is offered");
        return;
    }
    if (!sasl_in_offer(sc)) {
        failure(sc, "not-authorized", "no valid certificate for the stream's 'from'");
        return;
    }
    if (!authzid_ok(sc, xml_text(xstream_arena(sc->xs), st))) {
        failure(sc, "invalid-authzid", "the authorization identity is not the stream's 'from'");
        return;
    }
    in_authenticated(sc, sc->local, sc->remote);
    sc->sasl_done = true;
    sc->s2s->stats.sasl_in++;
    sc->s2s->stats.in_authed++;
    log_notice(&sc->lc, "%s authenticated with SASL EXTERNAL", sc->remote);
    sconn_write_str(sc, "<success xmlns='" S2S_NS_SASL "'/>");
    sconn_restart(sc);
}
