/* SPDX-License-Identifier: MIT */
/* Server dialback (XEP-0220) with keys per XEP-0185: HMAC-SHA256, keyed
 * with the hex SHA-256 of the secret, over "receiving originating id". The
 * originating side sends db:result; the receiving side checks it with the
 * authoritative server through db:verify on its own outgoing stream. */
#include "s2s.h"

#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "jid.h"
#include "xml.h"
#include "xstream.h"

void dialback_key(const char *secret_hash, const char *receiving, const char *originating,
                  const char *stream_id, char out[65])
{
    struct buf text = BUF_INIT;
    buf_printf(&text, "%s %s %s", receiving, originating, stream_id);
    unsigned char mac[32];
    gnutls_hmac_fast(GNUTLS_MAC_SHA256, secret_hash, strlen(secret_hash), text.data, text.len, mac);
    buf_fini(&text);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(mac); i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

/* Compares in time independent of where the strings differ. */
static bool key_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* ---- originating side ------------------------------------------------------- */

void dialback_out_send(struct s2s_conn *sc, const char *local)
{
    char key[65];
    dialback_key(sc->s2s->db_key, sc->remote, local, sc->stream_id, key);
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<db:result");
    xml_append_attr(&b, "from", local);
    xml_append_attr(&b, "to", sc->remote);
    buf_printf(&b, ">%s</db:result>", key);
    sconn_write(sc, b.data, b.len);
    buf_fini(&b);
    log_debug(&sc->lc, "db:result for %s sent", local);
}

void dialback_out_start(struct s2s_conn *sc)
{
    dialback_out_send(sc, sc->local);
    sc->state = SC_DIALBACK;
}

static enum xmpp_cond error_cond(const struct xml_node *st)
{
    const struct xml_node *e = xml_child(st, NULL, "error");
    const struct xml_node *c = e ? xml_child(e, XMPP_NS_STANZAS, NULL) : NULL;
    enum xmpp_cond cond = c ? xmpp_cond_from_name(c->name, false) : XMPP_COND_NONE;
    return cond != XMPP_COND_NONE ? cond : XMPP_COND_REMOTE_SERVER_NOT_FOUND;
}

/* The answer of an authoritative server to one of our db:verify. */
static bool verify_answer_for(struct s2s_conn *sc, struct route *r, const struct xml_node *st,
                              const char *type, const char *id);

static void on_verify_answer(struct s2s_conn *sc, const struct xml_node *st, const char *type)
{
    const char *id = xml_attr_get(st, "id");
    if (id == NULL)
        return;
    struct route *rs[S2S_MAX_RIDERS];
    size_t n = out_routes(sc, rs, S2S_MAX_RIDERS);
    const char *to = xml_attr_get(st, "to");
    for (size_t i = 0; i < n; i++) {
        if ((to == NULL || strcmp(to, rs[i]->local) == 0) &&
            verify_answer_for(sc, rs[i], st, type, id))
            return;
    }
    log_info(&sc->lc, "db:verify answer for unknown stream id %.64s ignored", id);
}

static bool verify_answer_for(struct s2s_conn *sc, struct route *r, const struct xml_node *st,
                              const char *type, const char *id)
{
    for (struct s2s_list *l = r->verifies.next; l != &r->verifies; l = l->next) {
        struct verify *v = S2S_ENTRY(l, struct verify, link);
        if (!v->sent || strcmp(v->stream_id, id) != 0)
            continue;
        s2s_list_del(&v->link);
        bool valid = strcmp(type, "valid") == 0;
        enum xmpp_cond cond = strcmp(type, "error") == 0 ? error_cond(st) : XMPP_COND_NONE;
        uint64_t in_id = v->in_id;
        route_verify_free(v);
        in_verify_done(sc->s2s, in_id, r->remote, r->local, valid, cond);
        return true;
    }
    return false;
}

/* A <db:result type=…/> for a route riding this stream. Returns false when
 * it is for the stream's own domain. */
static bool on_rider_result(struct s2s_conn *sc, const struct xml_node *st, const char *type)
{
    const char *to = xml_attr_get(st, "to");
    if (to == NULL || (sc->local != NULL && strcmp(to, sc->local) == 0))
        return false;
    for (struct s2s_list *l = sc->riders.next; l != &sc->riders; l = l->next) {
        struct route *r = S2S_ENTRY(l, struct route, ride_link);
        if (strcmp(r->local, to) != 0 || r->state != ROUTE_TRYING)
            continue;
        if (strcmp(type, "valid") == 0) {
            sc->s2s->stats.dialback_out++;
            log_notice(&sc->lc, "authenticated as %s to %s with dialback (piggybacked)", r->local,
                       r->remote);
            route_up(r);
        } else {
            out_rider_failed(r, type);
        }
        return true;
    }
    log_info(&sc->lc, "<db:result type='%.20s'/> for %.100s: no such route here", type, to);
    return true;
}

static void db_reply(struct s2s_conn *sc, const char *name, const char *from, const char *to,
                     const char *id, const char *type, enum xmpp_cond cond);

void dialback_out_on_element(struct s2s_conn *sc, const struct xml_node *st)
{
    const char *type = xml_attr_get(st, "type");
    /* XEP-0288 lets the peer piggyback its other domains on our
     * bidirectional stream; we do not take that (a dialback error, not a
     * stream error: the peer connects on its own for them). */
    if (type == NULL && sc->bidi && strcmp(st->name, "result") == 0) {
        const char *from = xml_attr_get(st, "from");
        const char *to = xml_attr_get(st, "to");
        log_info(&sc->lc, "bidi: db:result from '%.100s' on our stream refused (not supported)",
                 from ? from : "");
        db_reply(sc, "result", to ? to : sc->local, from ? from : sc->remote, NULL, "error",
                 XMPP_COND_FEATURE_NOT_IMPLEMENTED);
        return;
    }
    if (type == NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                           "a dialback request on a stream we initiated");
        return;
    }
    if (strcmp(st->name, "verify") == 0) {
        on_verify_answer(sc, st, type);
        return;
    }
    if (strcmp(st->name, "result") == 0 && on_rider_result(sc, st, type))
        return;
    if (strcmp(st->name, "result") != 0 || sc->state != SC_DIALBACK) {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE, "unexpected <db:%s/>",
                           st->name);
        return;
    }
    if (strcmp(type, "valid") == 0) {
        sc->s2s->stats.dialback_out++;
        log_notice(&sc->lc, "authenticated as %s to %s with dialback", sc->local, sc->remote);
        sc->state = SC_UP;
        ack_out_start(sc);
        route_up(sc->route);
        return;
    }
    enum xmpp_cond cond = strcmp(type, "error") == 0 ? error_cond(st) : XMPP_COND_NONE;
    char why[200];
    snprintf(why, sizeof(why), "%s refused our dialback key (%s%s%s)", sc->remote, type,
             cond != XMPP_COND_NONE ? " " : "", cond != XMPP_COND_NONE ? xmpp_cond_name(cond) : "");
    log_info(&sc->lc, "%s", why);
    /* An invalid key is a verdict; an error in reaching our authoritative
     * server (or the peer's own trouble) may pass, and is retried. */
    bool transient =
        cond == XMPP_COND_REMOTE_SERVER_NOT_FOUND || cond == XMPP_COND_REMOTE_SERVER_TIMEOUT ||
        cond == XMPP_COND_INTERNAL_SERVER_ERROR || cond == XMPP_COND_RESOURCE_CONSTRAINT;
    if (sc->route != NULL && !transient)
        sc->route->refused = true;
    out_detach(sc, XMPP_COND_REMOTE_SERVER_NOT_FOUND, why);
    sconn_close(sc, why);
}

/* ---- receiving side ------------------------------------------------------------ */

static void db_reply(struct s2s_conn *sc, const char *name, const char *from, const char *to,
                     const char *id, const char *type, enum xmpp_cond cond)
{
    struct buf b = BUF_INIT;
    buf_printf(&b, "<db:%s", name);
    xml_append_attr(&b, "from", from);
    xml_append_attr(&b, "to", to);
    if (id != NULL)
        xml_append_attr(&b, "id", id);
    xml_append_attr(&b, "type", type);
    if (cond == XMPP_COND_NONE)
        buf_append_str(&b, "/>");
    else
        buf_printf(&b, "><error type='%s'><%s xmlns='" XMPP_NS_STANZAS "'/></error></db:%s>",
                   xmpp_cond_type(cond), xmpp_cond_name(cond), name);
    sconn_write(sc, b.data, b.len);
    buf_fini(&b);
}

/* The domain a peer names in from/to, normalised; NULL if it is not one. */
static const char *domain_of(struct s2s_conn *sc, const char *s)
{
    struct jid j;
    if (s == NULL || jid_parse_str(xstream_arena(sc->xs), s, &j, NULL) < 0 || j.local != NULL ||
        j.resource != NULL)
        return NULL;
    return j.domain;
}

void in_verify_done(struct s2s *s2s, uint64_t in_id, const char *remote, const char *local,
                    bool valid, enum xmpp_cond cond)
{
    struct s2s_conn *sc = sconn_find(s2s, in_id);
    if (sc == NULL || sc->state == SC_CLOSING) {
        log_debug(&s2s->lc, "dialback of %s answered after its stream closed", remote);
        return;
    }
    if (valid) {
        in_authenticated(sc, local, remote);
        s2s->stats.dialback_in++;
        s2s->stats.in_authed++;
        log_notice(&sc->lc, "%s authenticated with dialback (to %s)", remote, local);
        db_reply(sc, "result", local, remote, NULL, "valid", XMPP_COND_NONE);
        in_bidi_attach_all(sc);
        return;
    }
    log_info(&sc->lc, "dialback of %s failed: %s", remote,
             cond != XMPP_COND_NONE ? xmpp_cond_name(cond) : "the key is invalid");
    db_reply(sc, "result", local, remote, NULL, cond != XMPP_COND_NONE ? "error" : "invalid", cond);
}

static void on_result_request(struct s2s_conn *sc, const struct xml_node *st)
{
    struct s2s *s2s = sc->s2s;
    const char *from = domain_of(sc, xml_attr_get(st, "from"));
    const char *to = domain_of(sc, xml_attr_get(st, "to"));
    const char *key = xml_text(xstream_arena(sc->xs), st);
    if (from == NULL || s2s_local_domain(s2s, from) != NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_INVALID_FROM,
                           "db:result from '%.100s': not a remote domain",
                           xml_attr_get(st, "from") ? xml_attr_get(st, "from") : "");
        return;
    }
    const char *local = s2s_local_domain(s2s, to);
    if (local == NULL) {
        log_info(&sc->lc, "db:result from %s to '%.100s': not hosted here", from, to ? to : "");
        db_reply(sc, "result", to ? to : "", from, NULL, "error", XMPP_COND_ITEM_NOT_FOUND);
        return;
    }
    enum s2s_auth auth;
    bool require_tls;
    s2s_policy(s2s->cfg, from, &auth, &require_tls);
    /* A certificate valid for the domain proves more than dialback would:
     * accept it at once (as XEP-0344 allows). */
    if (sc->tls && conn_tls_peer_names(sc->conn, from)) {
        in_verify_done(s2s, sc->id, from, local, true, XMPP_COND_NONE);
        return;
    }
    if (auth == S2S_AUTH_CERT) {
        log_info(&sc->lc,
                 "dialback from %s refused: the policy is require-valid-cert and its "
                 "certificate is not valid for it",
                 from);
        db_reply(sc, "result", local, from, NULL, "error", XMPP_COND_NOT_AUTHORIZED);
        return;
    }
    if (key[0] == '\0' || strlen(key) > 256) {
        db_reply(sc, "result", local, from, NULL, "error", XMPP_COND_BAD_REQUEST);
        return;
    }
    log_debug(&sc->lc, "db:result from %s: asking its authoritative server", from);
    route_add_verify(route_get(s2s, local, from), sc->id, sc->stream_id, key);
}

static void on_verify_request(struct s2s_conn *sc, const struct xml_node *st)
{
    struct s2s *s2s = sc->s2s;
    const char *from = domain_of(sc, xml_attr_get(st, "from"));
    const char *to = domain_of(sc, xml_attr_get(st, "to"));
    const char *id = xml_attr_get(st, "id");
    const char *key = xml_text(xstream_arena(sc->xs), st);
    if (from == NULL || to == NULL || id == NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_IMPROPER_ADDRESSING,
                           "db:verify needs from, to and id");
        return;
    }
    const char *local = s2s_local_domain(s2s, to);
    if (local == NULL) {
        db_reply(sc, "verify", to, from, id, "error", XMPP_COND_ITEM_NOT_FOUND);
        return;
    }
    char want[65];
    dialback_key(s2s->db_key, from, local, id, want);
    bool ok = key_equal(key, want);
    log_info(&sc->lc, "db:verify from %s for stream %.64s: %s", from, id, ok ? "valid" : "invalid");
    db_reply(sc, "verify", local, from, id, ok ? "valid" : "invalid", XMPP_COND_NONE);
}

void dialback_in_on_element(struct s2s_conn *sc, const struct xml_node *st)
{
    if (xml_attr_get(st, "type") != NULL) {
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                           "a dialback answer on a stream the peer initiated");
        return;
    }
    if (strcmp(st->name, "result") == 0)
        on_result_request(sc, st);
    else if (strcmp(st->name, "verify") == 0)
        on_verify_request(sc, st);
    else
        sconn_stream_error(sc, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE, "<db:%s/> is not dialback",
                           st->name);
}
