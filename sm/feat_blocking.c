/* SPDX-License-Identifier: MIT */
/* The blocking command (XEP-0191) as a front end to privacy lists, on the
 * same data (sm/privacy.h, XEP-0191 §5): the blocklist is the jid/deny
 * items for every stanza kind of the user's default list. Blocking adds
 * such items at the top of the default list, creating the list
 * "urn:xmpp:blocking" and making it the default when there is none;
 * unblocking removes them (a default list left empty is removed). The
 * privacy feature enforces the result. */
#include "privacy.h"

#include <string.h>

#include "arena.h"
#include "xml.h"

static bool has(const char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0)
            return true;
    }
    return false;
}

static void blocklist_get(struct sm_pkt *p, struct privacy_user *pu)
{
    privacy_sess_get(pu, p->sess)->blocklist = true;
    struct xml_node *b = xml_elem_new(p->a, NS_BLOCKING, "blocklist");
    const char **jids;
    size_t n = privacy_blocklist(pu, p->a, &jids);
    for (size_t i = 0; i < n; i++)
        xml_attr_set(p->a, xml_elem_add(p->a, b, NS_BLOCKING, "item"), "jid", jids[i]);
    sm_iq_result(p, b);
}

/* The <item jid=''/> children of a block or unblock, normalised and
 * without duplicates (in p->a); -1 when one is invalid (answered). */
static int read_jids(struct sm_pkt *p, const struct xml_node *cmd, const char ***jids_r,
                     struct jid **js_r, size_t *n_r)
{
    size_t cap = 1, n = 0;
    for (const struct xml_node *c = xml_first_elem(cmd); c != NULL; c = xml_next_elem(c))
        cap++;
    const char **jids = arena_alloc(p->a, cap * sizeof(*jids));
    struct jid *js = arena_alloc(p->a, cap * sizeof(*js));
    for (const struct xml_node *c = xml_first_elem(cmd); c != NULL; c = xml_next_elem(c)) {
        const char *jid = xml_attr_get(c, "jid");
        if (!xml_is(c, NS_BLOCKING, "item") || jid == NULL) {
            sm_error(p, XMPP_COND_BAD_REQUEST, "<item jid=''/> expected");
            return -1;
        }
        struct err err = {0};
        if (jid_parse_str(p->a, jid, &js[n], &err) < 0) {
            sm_error(p, XMPP_COND_JID_MALFORMED, err.text);
            return -1;
        }
        jids[n] = jid_full(p->a, &js[n]);
        if (!has(jids, n, jids[n]))
            n++;
    }
    *jids_r = jids;
    *js_r = js;
    *n_r = n;
    return 0;
}

/* Adds the jids not blocked yet at the top of l (XEP-0191 §5: blocked
 * items first), moving the other items down when the orders below the
 * first one run out. Returns how many were added. */
static size_t add_blocks(struct privacy_list *l, const char *const *jids, const struct jid *js,
                         size_t n)
{
    const char **have;
    struct arena *a = arena_new(512);
    size_t nhave = 0, k = 0;
    have = arena_alloc(a, (l->n + 1) * sizeof(*have));
    for (size_t i = 0; i < l->n; i++) {
        if (privacy_item_is_block(&l->items[i]))
            have[nhave++] = l->items[i].value;
    }
    for (size_t i = 0; i < n; i++)
        k += !has(have, nhave, jids[i]);
    int64_t first = l->n > 0 ? l->items[0].order : (int64_t)k;
    if (k > 0 && first < (int64_t)k) {
        int64_t shift = (int64_t)k - first;
        bool room = l->items[l->n - 1].order + shift <= PRIVACY_MAX_ORDER;
        for (size_t i = 0; i < l->n; i++)
            l->items[i].order = room ? l->items[i].order + shift : (int64_t)(k + i);
        first = (int64_t)k;
    }
    for (size_t i = 0, added = 0; i < n; i++) {
        if (has(have, nhave, jids[i]))
            continue;
        struct privacy_item it = {.order = first - (int64_t)k + (int64_t)added++, .deny = true};
        privacy_item_set_jid(&it, &js[i]);
        privacy_list_append(l, &it);
    }
    privacy_list_sort(l);
    arena_free(&a);
    return k;
}

static void block(struct sm_pkt *p, struct privacy_user *pu, const struct xml_node *cmd)
{
    const char **jids;
    struct jid *js;
    size_t n;
    if (read_jids(p, cmd, &jids, &js, &n) < 0)
        return;
    if (n == 0) {
        sm_error(p, XMPP_COND_BAD_REQUEST, "nothing to block");
        return;
    }
    const char *name = pu->default_name ? pu->default_name : PRIVACY_BLOCKING_LIST;
    struct privacy_list *l = privacy_list_find(pu, name);
    if ((l != NULL ? l->n : 0) + n > PRIVACY_MAX_ITEMS) {
        sm_error(p, XMPP_COND_NOT_ACCEPTABLE, "too many items");
        return;
    }
    name = arena_strdup(p->a, name);
    struct privacy_change *ch = privacy_change_begin(pu, p->user);
    bool fresh = l == NULL;
    if (fresh)
        l = privacy_list_new(name);
    size_t added = add_blocks(l, jids, js, n);
    if (fresh)
        privacy_list_put(pu, l);
    else if (added > 0)
        privacy_list_save(pu, l);
    if (pu->default_name == NULL)
        privacy_default_set(pu, name);
    sm_iq_result(p, NULL);
    privacy_push_blocking(pu, p->user, "block", jids, n);
    privacy_change_end(&ch, added > 0 ? name : NULL, true);
}

/* Unblocks the jids (every blocked JID when n is 0). */
static void unblock(struct sm_pkt *p, struct privacy_user *pu, const struct xml_node *cmd)
{
    const char **jids;
    struct jid *js;
    size_t n, removed = 0;
    if (read_jids(p, cmd, &jids, &js, &n) < 0)
        return;
    struct privacy_list *l = pu->default_name ? privacy_list_find(pu, pu->default_name) : NULL;
    const char *name = l ? arena_strdup(p->a, l->name) : NULL;
    struct privacy_change *ch = privacy_change_begin(pu, p->user);
    for (size_t i = l ? l->n : 0; i-- > 0;) {
        const struct privacy_item *it = &l->items[i];
        if (privacy_item_is_block(it) && (n == 0 || has(jids, n, it->value))) {
            privacy_list_delete(l, i);
            removed++;
        }
    }
    if (removed > 0 && l->n == 0)
        privacy_list_remove(pu, name); /* an empty list is no list: no default */
    else if (removed > 0)
        privacy_list_save(pu, l);
    sm_iq_result(p, NULL);
    privacy_push_blocking(pu, p->user, "unblock", jids, n);
    privacy_change_end(&ch, removed > 0 ? name : NULL, true);
}

static void on_blocking(struct sm_pkt *p, struct xml_node *cmd)
{
    bool get = strcmp(p->type, "get") == 0;
    bool ok = get ? xml_is(cmd, NS_BLOCKING, "blocklist")
                  : xml_is(cmd, NS_BLOCKING, "block") || xml_is(cmd, NS_BLOCKING, "unblock");
    if (!ok) {
        sm_error(p, XMPP_COND_BAD_REQUEST, NULL);
        return;
    }
    struct privacy_user *pu = privacy_user_ready(p);
    if (pu == NULL)
        return; /* runs again once the lists are loaded */
    if (get)
        blocklist_get(p, pu);
    else if (strcmp(cmd->name, "block") == 0)
        block(p, pu, cmd);
    else
        unblock(p, pu, cmd);
}

static const struct sm_iq_handler iqs[] = {{NS_BLOCKING, SM_IQ_ACCOUNT, on_blocking}};
static const char *const server_features[] = {NS_BLOCKING, NULL};

/* The blocklist is the privacy feature's default list, kept in its state
 * and enforced by its hooks (privacy.h). */
static const char *const needs[] = {"privacy", NULL};

const struct sm_feature sm_feat_blocking = {
    .name = "blocking",
    .needs = needs,
    .order = 6, /* enforced by the privacy feature, on the same lists */
    .server_features = server_features,
    .iqs = iqs,
    .niqs = sizeof(iqs) / sizeof(iqs[0]),
};
