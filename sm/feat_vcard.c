/* SPDX-License-Identifier: MIT */
/* vcard-temp (XEP-0054) and vCard-based avatars (XEP-0153). A user reads
 * and replaces their own vCard and reads anyone's; the store keeps it with
 * the SHA-1 of its PHOTO/BINVAL, which the sm adds to the user's available
 * presence as <x xmlns='vcard-temp:x:update'><photo/></x>.
 *
 * Choices: a user's own missing vCard is an empty <vCard/> result; another
 * user's missing vCard, like a missing account, is <service-unavailable/>
 * (XEP-0054 1.3 §3.3: one answer for both, against harvesting). The photo
 * element is added only to presence that carries no update element of its
 * own: a client that sends one (even an empty one, "not ready yet") knows
 * better, e.g. right after an upload whose hash the sm has not stored yet,
 * or an avatar from PEP (XEP-0398). Nothing is added for a user who has
 * never stored a vCard; <photo/> empty means "a vCard without an image".
 * The hash is read from the store at session start; if the session's
 * presence went out before that read completed, it is sent once more with
 * the photo element (one extra presence update, rather than holding and
 * reordering what the client sends). */
#include "sm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "alloc.h"
#include "arena.h"
#include "buf.h"
#include "hmap.h"
#include "xml.h"

#define NS_VCARD  "vcard-temp"
#define NS_UPDATE "vcard-temp:x:update"

/* What the sm knows of an online user's avatar: loaded at session start,
 * kept while the user has a session. Nothing waits for the load (that
 * would reorder what the session sends): presence that goes out before it
 * completes has no photo element, and the session's current presence is
 * sent again with it once the hash is known. */
struct vcard_user {
    bool loading;
    bool known; /* the store answered */
    char *hash; /* hex SHA-1, "" for no image; NULL when no vCard is stored */
};

extern const struct sm_feature sm_feat_vcard;

/* bare JID -> struct vcard_user: the feature's state (sm_feature_state). */
static struct hmap *users_of(const struct sm *sm)
{
    return sm_feature_state(sm, &sm_feat_vcard);
}

/* ---- the avatar hash ---------------------------------------------------- */

/* The hex SHA-1 of the decoded PHOTO/BINVAL of v into *hash_r (in a; ""
 * when there is no image). -1 when BINVAL is not base64. */
static int photo_hash(struct arena *a, const struct xml_node *v, const char **hash_r)
{
    struct xml_node *photo = xml_child(v, NS_VCARD, "PHOTO");
    const char *b64 = photo ? xml_child_text(a, photo, NS_VCARD, "BINVAL") : NULL;
    *hash_r = "";
    if (b64 == NULL)
        return 0;
    size_t len = strlen(b64), n = 0;
    char *clean = arena_alloc(a, len + 1);
    for (size_t i = 0; i < len; i++) {
        if (!strchr(" \t\r\n", b64[i])) /* XEP-0153 §5.5: whitespace is ignored */
            clean[n++] = b64[i];
    }
    if (n == 0)
        return 0;
    gnutls_datum_t in = {(unsigned char *)clean, (unsigned)n}, out = {NULL, 0};
    if (gnutls_base64_decode2(&in, &out) < 0)
        return -1;
    unsigned char d[20];
    int rc = gnutls_hash_fast(GNUTLS_DIG_SHA1, out.data, out.size, d);
    gnutls_free(out.data);
    if (rc < 0)
        return -1;
    char *hex = arena_alloc(a, 41);
    for (size_t i = 0; i < sizeof(d); i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    *hash_r = hex;
    return 0;
}

static void set_hash(struct vcard_user *vu, const char *hash)
{
    free(vu->hash);
    vu->hash = hash ? xstrdup(hash) : NULL;
    vu->known = true;
}

/* Adds the photo element to an available presence that has none. */
static void add_update(struct arena *a, struct xml_node *st, const struct vcard_user *vu)
{
    if (!vu->known || vu->hash == NULL || xml_child(st, NS_UPDATE, "x") != NULL)
        return;
    struct xml_node *x = xml_elem_add(a, st, NS_UPDATE, "x");
    struct xml_node *photo = xml_elem_add(a, x, NS_UPDATE, "photo");
    if (vu->hash[0] != '\0')
        xml_text_add(a, photo, vu->hash, strlen(vu->hash));
}

/* ---- the per-user cache -------------------------------------------------- */

/* Sends the current presence of s again through the pipeline, as if the
 * client had repeated it, now that it can carry the hash. */
static void resend_presence(struct sm_session *s, const struct vcard_user *vu)
{
    struct sm *sm = s->user->sm;
    struct arena *a = arena_new(1024);
    struct xml_node *st = xml_parse_fragment(a, s->presence);
    if (st != NULL && xml_child(st, NS_UPDATE, "x") == NULL) {
        xml_attr_set(a, st, "from", s->jid);
        add_update(a, st, vu);
        struct sm_pkt *p = sm_pkt_from_node(sm, st, SM_FROM_SESSION);
        if (p != NULL) {
            sm_pkt_set_session(p, s);
            sm_dispatch(sm, p);
        }
    }
    arena_free(&a);
}

/* A load in flight; it outlives the entry when the user leaves first. */
struct vcard_load {
    struct sm *sm;
    char *bare;
};

static void on_loaded(const struct store_res *res, void *arg)
{
    struct vcard_load *l = arg;
    struct vcard_user *vu = hmap_get(users_of(l->sm), l->bare);
    if (vu != NULL && vu->loading) {
        vu->loading = false;
        if (res->status != STORE_OK)
            log_warn(&l->sm->lc, "loading the avatar hash of %s: %s", l->bare, res->err.text);
        else
            set_hash(vu, res->nrows ? store_rec_get_str(res->rows[0], "photo_hash", "") : NULL);
        /* an entry exists only while the user has sessions */
        struct sm_user *u = vu->hash != NULL ? hmap_get(l->sm->users, l->bare) : NULL;
        for (struct sm_session *s = u ? u->sessions : NULL; s != NULL; s = s->next) {
            if (s->available && s->presence != NULL)
                resend_presence(s, vu);
        }
    }
    free(l->bare);
    free(l);
}

static void on_session_start(struct sm_session *s)
{
    struct sm_user *u = s->user;
    if (hmap_get(users_of(u->sm), u->jid) != NULL)
        return;
    struct vcard_user *vu = xcalloc(1, sizeof(*vu));
    vu->loading = true;
    hmap_put(users_of(u->sm), u->jid, vu);
    struct vcard_load *l = xmalloc(sizeof(*l));
    l->sm = u->sm;
    l->bare = xstrdup(u->jid);
    store_get(u->sm->st, "vcard", u->jid, NULL, on_loaded, l);
}

static void entry_free(struct vcard_user *vu)
{
    free(vu->hash);
    free(vu);
}

static void entry_free_cb(void *v)
{
    entry_free(v);
}

static void on_session_end(struct sm_session *s)
{
    struct sm_user *u = s->user;
    if (u->sessions == s && s->next == NULL) {
        struct vcard_user *vu = hmap_del(users_of(u->sm), u->jid); /* the last one: forget */
        if (vu != NULL)
            entry_free(vu);
    }
}

/* ---- presence ------------------------------------------------------------ */

static enum sm_verdict on_stanza(struct sm_pkt *p)
{
    if (p->kind != SM_PRESENCE || p->route != SM_FROM_SESSION || p->type[0] != '\0')
        return SM_PASS;
    struct vcard_user *vu = hmap_get(users_of(p->sm), p->user->jid);
    if (vu != NULL)
        add_update(p->a, p->st, vu);
    return SM_PASS;
}

/* ---- the iq ---------------------------------------------------------------- */

static void on_got(const struct store_res *res, void *arg)
{
    struct sm_pkt *p = arg;
    bool own = p->route == SM_FROM_SESSION;
    struct xml_node *v = NULL;
    if (res->status != STORE_OK) {
        log_warn(&p->sm->lc, "reading a vCard: %s", res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
        sm_pkt_free(p);
        return;
    }
    if (res->nrows > 0)
        v = xml_parse_fragment(p->a, store_rec_get_str(res->rows[0], "xml", ""));
    if (v == NULL && !own)
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
    else
        sm_iq_result(p, v ? v : xml_elem_new(p->a, NS_VCARD, "vCard"));
    sm_pkt_free(p);
}

/* A vCard being stored. */
struct vcard_put {
    struct sm_pkt *p;
    const char *hash; /* in p->a */
};

static void on_put(const struct store_res *res, void *arg)
{
    struct vcard_put *op = arg;
    struct sm_pkt *p = op->p;
    const char *bare = jid_bare(p->a, &p->from);
    if (res->status == STORE_OK) {
        struct vcard_user *vu = hmap_get(users_of(p->sm), bare);
        if (vu != NULL && !vu->loading)
            set_hash(vu, op->hash);
        sm_iq_result(p, NULL);
    } else if (res->status == STORE_ERR_INPUT) {
        log_info(&p->sm->lc, "vCard of %s refused: %s", bare, res->err.text);
        sm_error(p, XMPP_COND_NOT_ACCEPTABLE, "the vCard is too large");
    } else {
        log_warn(&p->sm->lc, "storing the vCard of %s: %s", bare, res->err.text);
        sm_error(p, XMPP_COND_INTERNAL_SERVER_ERROR, NULL);
    }
    sm_pkt_free(p);
}

static void vcard_set(struct sm_pkt *p, struct xml_node *v)
{
    struct vcard_put *op = arena_alloc(p->a, sizeof(*op));
    op->p = p;
    if (photo_hash(p->a, v, &op->hash) < 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "PHOTO/BINVAL is not base64");
        return;
    }
    struct buf b = BUF_INIT;
    xml_serialize(&b, v, NULL);
    struct store_rec *r = store_rec_new(p->a);
    store_rec_xml(p->a, r, "xml", buf_cstr(&b));
    store_rec_str(p->a, r, "photo_hash", op->hash);
    buf_fini(&b);
    sm_pkt_keep(p);
    store_put(p->sm->st, "vcard", p->user->jid, r, on_put, op);
}

static void on_vcard(struct sm_pkt *p, struct xml_node *v)
{
    bool own = p->route == SM_FROM_SESSION;
    bool get = strcmp(p->type, "get") == 0;
    if (strcmp(v->name, "vCard") != 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
    } else if (!own && !get) {
        sm_error(p, XMPP_COND_FORBIDDEN, "only the owner may change a vCard");
    } else if (!own && (p->user == NULL || p->user->state != SM_USER_READY)) {
        sm_error(p, XMPP_COND_SERVICE_UNAVAILABLE, NULL);
    } else if (!get) {
        vcard_set(p, v);
    } else {
        sm_pkt_keep(p);
        store_get(p->sm->st, "vcard", p->user->jid, NULL, on_got, p);
    }
}

/* ---- the feature ------------------------------------------------------------ */

static int init(struct sm *sm, struct err *err)
{
    (void)err;
    sm_feature_map_new(sm, &sm_feat_vcard);
    return 0;
}

static void fini(struct sm *sm)
{
    sm_feature_map_free(sm, &sm_feat_vcard, entry_free_cb);
}

static const struct sm_iq_handler iqs[] = {
    {NS_VCARD, SM_IQ_ACCOUNT | SM_IQ_USER, on_vcard},
};
static const char *const features[] = {NS_VCARD, NULL};

const struct sm_feature sm_feat_vcard = {
    .name = "vcard",
    .order = 24, /* before presence (30), which consumes every presence */
    .server_features = features,
    .account_features = features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
    .init = init,
    .fini = fini,
    .on_stanza = on_stanza,
    .on_session_start = on_session_start,
    .on_session_end = on_session_end,
};
