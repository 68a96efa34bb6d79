/* SPDX-License-Identifier: MIT */
/* The stanza pipeline: every stanza becomes an sm_pkt, waits for its user
 * to be loaded, then goes through the iq handlers or the features'
 * message/presence hooks, and finally the default rules. */
#include "sm.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "alloc.h"
#include "arena.h"
#include "hmap.h"
#include "xml.h"

int64_t sm_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

void sm_stamp(int64_t us, char *buf, size_t len)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", base, (int)((us % 1000000) / 1000));
}

bool sm_is_local_domain(const struct sm *sm, const char *domain)
{
    for (size_t i = 0; i < sm->common->ndomains; i++) {
        if (strcmp(sm->common->domains[i], domain) == 0)
            return true;
    }
    return false;
}

/* Every stanza gets a pkt and its own arena, two per message delivered: a
 * few reset arenas are kept for the next pkts, so that the 4 KiB chunk is
 * not allocated, zeroed and freed each time. Not under AddressSanitizer,
 * which must see a pkt's memory freed to catch a use after free. */
#if defined(__SANITIZE_ADDRESS__)
static const bool keep_spares = false;
#else
static const bool keep_spares = true;
#endif

struct sm_pkt *sm_pkt_new(struct sm *sm)
{
    struct arena *a =
        sm->nspare_arenas > 0 ? sm->spare_arenas[--sm->nspare_arenas] : arena_new(4096);
    struct sm_pkt *p = arena_alloc(a, sizeof(*p));
    p->sm = sm;
    p->a = a;
    return p;
}

void sm_pkt_keep(struct sm_pkt *p)
{
    p->kept = true;
}

void sm_pkt_free(struct sm_pkt *p)
{
    sm_pkt_set_session(p, NULL);
    struct sm *sm = p->sm;
    struct arena *a = p->a;
    if (keep_spares && sm->nspare_arenas < PL_ARRAY_LEN(sm->spare_arenas)) {
        arena_reset(a); /* p lived in a: gone from here on */
        sm->spare_arenas[sm->nspare_arenas++] = a;
        return;
    }
    arena_free(&a);
}

void sm_pkt_arenas_free(struct sm *sm)
{
    while (sm->nspare_arenas > 0)
        arena_free(&sm->spare_arenas[--sm->nspare_arenas]);
}

/* Stanzas from other components arrive in their stream's namespace; the
 * sm works in jabber:client throughout. */
static void rebase_ns(struct xml_node *n, const char *from_ns)
{
    if (n->kind != XML_ELEM)
        return;
    if (strcmp(n->ns, from_ns) == 0)
        n->ns = XML_NS_CLIENT;
    for (struct xml_node *c = n->first; c != NULL; c = c->next)
        rebase_ns(c, from_ns);
}

struct sm_pkt *sm_pkt_from_node(struct sm *sm, const struct xml_node *st, enum sm_route route)
{
    struct sm_pkt *p = sm_pkt_new(sm);
    p->st = xml_node_copy(p->a, st);
    if (strcmp(p->st->ns, XML_NS_CLIENT) != 0)
        rebase_ns(p->st, p->st->ns);
    p->kind = !strcmp(st->name, "message")    ? SM_MESSAGE
              : !strcmp(st->name, "presence") ? SM_PRESENCE
                                              : SM_IQ;
    const char *type = xml_attr_get(p->st, "type");
    p->type = type ? type : "";
    p->route = route;
    const char *from = xml_attr_get(p->st, "from");
    const char *to = xml_attr_get(p->st, "to");
    struct err err = {0};
    if (from == NULL || jid_parse_str(p->a, from, &p->from, &err) < 0) {
        log_info(&sm->lc, "dropped <%s/> with a bad or missing from: %s", st->name, err.text);
        sm_pkt_free(p);
        return NULL;
    }
    if (to != NULL && jid_parse_str(p->a, to, &p->to, &err) < 0) {
        sm_error(p, XMPP_COND_JID_MALFORMED, err.text);
        sm_pkt_free(p);
        return NULL;
    }
    p->has_to = to != NULL;
    if (route == SM_TO_USER && p->has_to && p->to.local == NULL)
        p->route = SM_TO_DOMAIN;
    return p;
}

static const struct sm_iq_handler *find_iq(const struct sm *sm, const char *ns, unsigned target)
{
    for (size_t i = 0; i < sm->nfeatures; i++) {
        const struct sm_feature *f = sm->features[i];
        for (size_t k = 0; k < f->niqs; k++) {
            if ((f->iqs[k].targets & target) && strcmp(f->iqs[k].ns, ns) == 0)
                return &f->iqs[k];
        }
    }
    return NULL;
}

/* RFC 6120 §8.2.3 and RFC 6121 §8.5: iq handled by the server on behalf of
 * a domain or an account, or delivered to a full JID. */
static void dispatch_iq(struct sm_pkt *p, unsigned target)
{
    bool request = !strcmp(p->type, "get") || !strcmp(p->type, "set");
    struct xml_node *payload = xml_first_elem(p->st);
    if (!request) {
        p->sm->stats.bounced += 0;
        return; /* a result or error for the server itself: nothing to answer */
    }
    if (payload == NULL || xml_next_elem(payload) != NULL) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "an iq get/set has exactly one child");
        return;
    }
    const struct sm_iq_handler *h = find_iq(p->sm, payload->ns, target);
    if (h == NULL) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        return;
    }
    h->fn(p, payload);
}

static bool run_features(struct sm_pkt *p)
{
    for (size_t i = 0; i < p->sm->nfeatures; i++) {
        const struct sm_feature *f = p->sm->features[i];
        if (f->on_stanza != NULL && f->on_stanza(p) == SM_HANDLED)
            return true;
    }
    return false;
}

/* Leaves the session's hands: turns into a stanza to its destination. */
static void from_session(struct sm_pkt *p)
{
    if (p->kind == SM_IQ) {
        bool own = !p->has_to || (jid_is_bare(&p->to) && jid_bare_eq(&p->to, &p->from));
        if (own) {
            dispatch_iq(p, SM_IQ_ACCOUNT);
            return;
        }
        if (p->to.local == NULL && p->to.resource == NULL &&
            sm_is_local_domain(p->sm, p->to.domain)) {
            dispatch_iq(p, SM_IQ_SERVER);
            return;
        }
    }
    if (run_features(p))
        return;
    if (!p->has_to)
        return; /* e.g. a message to nobody: nothing to do */
    sm_send(p->sm, p->st, p->origin);
}

static void to_user(struct sm_pkt *p)
{
    if (p->kind == SM_IQ && jid_is_bare(&p->to)) {
        /* answered by the server for the account, unless the account
         * refuses the sender (privacy lists, blocking) */
        if (p->user != NULL && p->user->state == SM_USER_READY &&
            !sm_allow_in(p->user, SM_IQ, jid_full(p->a, &p->from)))
            sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
        else
            dispatch_iq(p, SM_IQ_USER);
        return;
    }
    if (run_features(p))
        return;
    sm_deliver(p);
}

static void to_domain(struct sm_pkt *p)
{
    if (p->kind == SM_IQ) {
        dispatch_iq(p, SM_IQ_SERVER);
        return;
    }
    run_features(p);
}

static void run(struct sm_pkt *p)
{
    p->sm->stats.stanzas_in++;
    switch (p->route) {
    case SM_FROM_SESSION:
        from_session(p);
        break;
    case SM_TO_USER:
        to_user(p);
        break;
    case SM_TO_DOMAIN:
        to_domain(p);
        break;
    }
    if (!p->kept)
        sm_pkt_free(p);
}

void sm_dispatch(struct sm *sm, struct sm_pkt *p)
{
    if (p->route == SM_TO_USER) {
        if (!sm_is_local_domain(sm, p->to.domain)) {
            /* Not ours after all (a stanza for a domain we do not host). */
            sm_error(p, XMPP_COND_ITEM_NOT_FOUND, NULL);
            sm_pkt_free(p);
            return;
        }
        p->user = sm_user_get(sm, jid_bare(p->a, &p->to));
    } else if (p->route == SM_FROM_SESSION) {
        p->user = p->sess->user;
    }
    if (p->user != NULL && p->user->state == SM_USER_LOADING) {
        sm_user_wait(p->user, p);
        return;
    }
    run(p);
}

void sm_dispatch_resume(struct sm_pkt *p)
{
    p->kept = false;
    if (p->resume != NULL)
        p->resume(p);
    else
        run(p);
}

bool sm_allow_out(struct sm_user *u, enum sm_kind kind, const char *peer)
{
    for (size_t i = 0; i < u->sm->nfeatures; i++) {
        const struct sm_feature *f = u->sm->features[i];
        if (f->allow_out != NULL && !f->allow_out(u, kind, peer))
            return false;
    }
    return true;
}

bool sm_allow_in(struct sm_user *u, enum sm_kind kind, const char *peer)
{
    for (size_t i = 0; i < u->sm->nfeatures; i++) {
        const struct sm_feature *f = u->sm->features[i];
        if (f->allow_in != NULL && !f->allow_in(u, kind, peer))
            return false;
    }
    return true;
}

bool sm_feature_enabled(const struct sm *sm, const char *name)
{
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (strcmp(sm->features[i]->name, name) == 0)
            return true;
    }
    return false;
}

void *sm_feature_state(const struct sm *sm, const struct sm_feature *f)
{
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i] == f)
            return sm->feature_state[i];
    }
    return NULL;
}

void sm_feature_set_state(struct sm *sm, const struct sm_feature *f, void *state)
{
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i] == f)
            sm->feature_state[i] = state;
    }
}

void sm_feature_map_new(struct sm *sm, const struct sm_feature *f)
{
    sm_feature_set_state(sm, f, hmap_new());
}

void sm_feature_map_free(struct sm *sm, const struct sm_feature *f, void (*free_value)(void *))
{
    struct hmap *m = sm_feature_state(sm, f);
    struct hmap_iter it = {0};
    void *v;
    while (free_value != NULL && hmap_next(m, &it, NULL, &v))
        free_value(v);
    hmap_free(&m);
    sm_feature_set_state(sm, f, NULL);
}
