/* SPDX-License-Identifier: MIT */
/* Routing: plain stanzas by the domain of 'to', Parley envelopes by
 * component name; several components on one name share it by rendezvous
 * hashing of the bare destination JID; the unroutable are bounced. */
#include "router.h"

#include <ctype.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "jid.h"
#include "str.h"
#include "xml.h"
#include "xstream.h"

#define DOMAIN_MAX 1024

/* Slices the domain out of a JID: after the first '@' before any '/', up to
 * the first '/'. */
static struct str jid_domain_slice(const char *jid)
{
    const char *slash = strchr(jid, '/');
    size_t end = slash ? (size_t)(slash - jid) : strlen(jid);
    const char *at = memchr(jid, '@', end);
    size_t start = at ? (size_t)(at - jid) + 1 : 0;
    return (struct str){jid + start, end - start};
}

/* Lower-cases an ASCII domain into out (DOMAIN_MAX bytes). Returns false
 * if it does not fit or is empty. */
static bool domain_key(const char *jid, char *out, size_t *len_r)
{
    struct str d = jid_domain_slice(jid);
    if (d.len == 0 || d.len >= DOMAIN_MAX)
        return false;
    for (size_t i = 0; i < d.len; i++)
        out[i] = (char)tolower((unsigned char)d.p[i]);
    if (out[d.len - 1] == '.' && d.len > 1)
        d.len--; /* "example.com." is example.com */
    out[d.len] = '\0';
    *len_r = d.len;
    return true;
}

/* Rendezvous (highest random weight) hashing: each candidate scores the key
 * with its own name as seed and the highest wins. The choice depends only
 * on the names, not on connection order, and a component joining or
 * leaving moves only the keys it wins or held. */
static struct peer *pick(struct router *r, const struct route *rt, const char *to)
{
    if (rt->n == 1)
        return rt->conns[0];
    struct arena *a = arena_new(1024);
    struct jid j;
    const char *key = to;
    if (jid_parse_str(a, to, &j, NULL) == 0)
        key = jid_bare(a, &j);
    size_t klen = strlen(key);
    struct peer *best = NULL;
    uint64_t best_score = 0;
    for (size_t i = 0; i < rt->n; i++) {
        struct peer *c = rt->conns[i];
        uint64_t seed = hash_stable(c->name, strlen(c->name), 0x70617273u);
        uint64_t score = hash_stable(key, klen, seed);
        if (best == NULL || score > best_score ||
            (score == best_score && strcmp(c->name, best->name) < 0)) {
            best = c;
            best_score = score;
        }
    }
    arena_free(&a);
    (void)r;
    return best;
}

static void forward(struct peer *src, struct peer *dst, const char *raw, size_t len)
{
    peer_write(dst, raw, len);
    src->r->stats.routed++;
    if (evbuffer_get_length(bufferevent_get_output(dst->bev)) > src->r->cfg->output_limit)
        peer_pause(src);
}

void raw_inner(const char *raw, size_t len, const char **inner_r, size_t *inner_len_r)
{
    char quote = 0;
    size_t i = 0;
    for (; i < len; i++) {
        char ch = raw[i];
        if (quote) {
            if (ch == quote)
                quote = 0;
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if (ch == '>') {
            break;
        }
    }
    if (i >= len || (i > 0 && raw[i - 1] == '/')) {
        *inner_r = raw + len;
        *inner_len_r = 0;
        return;
    }
    size_t start = i + 1, end = len;
    while (end > start && raw[end - 1] != '<')
        end--;
    end = end > start ? end - 1 : start;
    *inner_r = raw + start;
    *inner_len_r = end - start;
}

/* True when c may send with this 'from': its domain is one c has bound, or
 * c holds the default route and the domain is not served locally. */
static bool from_allowed(const struct peer *c, const char *key, size_t klen)
{
    for (size_t i = 0; i < c->nbinds; i++) {
        if (strlen(c->binds[i]) == klen && memcmp(c->binds[i], key, klen) == 0)
            return true;
    }
    return c->is_default && route_get(c->r, key, klen) == NULL;
}

static void bounce_plain(struct peer *c, const struct xml_node *st, enum xmpp_cond cond)
{
    struct router *r = c->r;
    const char *type = xml_attr_get(st, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        r->stats.dropped++;
        log_debug(&c->lc, "dropped unroutable error stanza to %s", xml_attr_get(st, "to"));
        return;
    }
    struct arena *a = arena_new(1024);
    struct xml_node *e = xml_elem_new(a, st->ns, st->name);
    for (unsigned i = 0; i < st->nattrs; i++) {
        const struct xml_attr *at = &st->attrs[i];
        if (at->ns == NULL &&
            (!strcmp(at->name, "to") || !strcmp(at->name, "from") || !strcmp(at->name, "type")))
            continue;
        xml_attr_set_ns(a, e, at->ns, at->name, at->value);
    }
    xml_attr_set(a, e, "from", xml_attr_get(st, "to"));
    xml_attr_set(a, e, "to", xml_attr_get(st, "from"));
    xml_attr_set(a, e, "type", "error");
    struct xml_node *err = xml_elem_add(a, e, NULL, "error");
    xml_attr_set(a, err, "type", xmpp_cond_type(cond));
    xml_elem_add(a, err, XMPP_NS_STANZAS, xmpp_cond_name(cond));
    struct buf b = BUF_INIT;
    xml_serialize(&b, e, xstream_default_ns(c->xs));
    peer_write(c, b.data, b.len);
    buf_fini(&b);
    arena_free(&a);
    r->stats.bounced++;
    log_info(&c->lc, "bounced <%s/> to %s: %s", st->name, xml_attr_get(st, "to"),
             xmpp_cond_name(cond));
}

static void bounce_envelope(struct peer *c, const struct xml_node *st, const char *raw, size_t len,
                            enum xmpp_cond cond)
{
    const char *type = xml_attr_get(st, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        c->r->stats.dropped++;
        log_debug(&c->lc, "dropped unroutable error envelope to %s", xml_attr_get(st, "to"));
        return;
    }
    struct buf b = BUF_INIT;
    buf_append_str(&b, "<route xmlns='" PL_NS_ROUTER "'");
    for (unsigned i = 0; i < st->nattrs; i++) {
        const struct xml_attr *at = &st->attrs[i];
        if (at->ns != NULL)
            continue;
        const char *name = at->name;
        if (!strcmp(name, "type") || !strcmp(name, "cond"))
            continue;
        if (!strcmp(name, "to"))
            name = "from";
        else if (!strcmp(name, "from"))
            name = "to";
        xml_append_attr(&b, name, at->value);
    }
    buf_printf(&b, " type='error' cond='%s'>", xmpp_cond_name(cond));
    const char *inner;
    size_t ilen;
    raw_inner(raw, len, &inner, &ilen);
    buf_append(&b, inner, ilen);
    buf_append_str(&b, "</route>");
    peer_write(c, b.data, b.len);
    buf_fini(&b);
    c->r->stats.bounced++;
    log_info(&c->lc, "bounced envelope to %s: %s", xml_attr_get(st, "to"), xmpp_cond_name(cond));
}

/* Reads and checks to/from; on a violation sends the stream error and
 * returns false. */
static bool addresses(struct peer *c, const struct xml_node *st, const char **to_r, char *key,
                      size_t *klen_r)
{
    const char *to = xml_attr_get(st, "to");
    const char *from = xml_attr_get(st, "from");
    char fkey[DOMAIN_MAX];
    size_t flen;
    if (from == NULL || to == NULL) {
        peer_stream_error(c, XMPP_COND_STREAM_IMPROPER_ADDRESSING, "<%s/> without '%s'", st->name,
                          from == NULL ? "from" : "to");
        return false;
    }
    if (!domain_key(from, fkey, &flen) || !from_allowed(c, fkey, flen)) {
        peer_stream_error(c, XMPP_COND_STREAM_INVALID_FROM,
                          "'%s' is not a name this component has bound", from);
        return false;
    }
    if (!domain_key(to, key, klen_r)) {
        peer_stream_error(c, XMPP_COND_STREAM_IMPROPER_ADDRESSING, "'to' has no domain: '%s'", to);
        return false;
    }
    *to_r = to;
    return true;
}

static void route_plain(struct peer *c, const struct xml_node *st, const char *raw, size_t len)
{
    char key[DOMAIN_MAX];
    size_t klen;
    const char *to;
    if (!addresses(c, st, &to, key, &klen))
        return;
    struct route *rt = route_get(c->r, key, klen);
    if (rt == NULL && !c->is_default)
        rt = route_get(c->r, "*", 1);
    if (rt == NULL) {
        bounce_plain(c, st,
                     c->is_default ? XMPP_COND_ITEM_NOT_FOUND : XMPP_COND_REMOTE_SERVER_NOT_FOUND);
        return;
    }
    forward(c, pick(c->r, rt, to), raw, len);
}

static void route_envelope(struct peer *c, const struct xml_node *st, const char *raw, size_t len)
{
    char key[DOMAIN_MAX];
    size_t klen;
    const char *to;
    if (!addresses(c, st, &to, key, &klen))
        return;
    struct route *rt = route_get(c->r, key, klen);
    if (rt == NULL) {
        bounce_envelope(c, st, raw, len, XMPP_COND_SERVICE_UNAVAILABLE);
        return;
    }
    forward(c, pick(c->r, rt, to), raw, len);
}

void route_stanza(struct peer *c, struct xml_node *st, const char *raw, size_t len)
{
    if (strcmp(st->ns, PL_NS_ROUTER) == 0) {
        if (strcmp(st->name, "route") == 0)
            route_envelope(c, st, raw, len);
        else
            bind_on_element(c, st);
        return;
    }
    bool stanza_ns = !strcmp(st->ns, XML_NS_COMP) || !strcmp(st->ns, XML_NS_CLIENT) ||
                     !strcmp(st->ns, XML_NS_SERVER);
    bool stanza_name =
        !strcmp(st->name, "message") || !strcmp(st->name, "presence") || !strcmp(st->name, "iq");
    if (!stanza_ns || !stanza_name) {
        peer_stream_error(c, XMPP_COND_STREAM_UNSUPPORTED_STANZA_TYPE,
                          "<%s xmlns='%s'/> is not a stanza", st->name, st->ns);
        return;
    }
    route_plain(c, st, raw, len);
}
