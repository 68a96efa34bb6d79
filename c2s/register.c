/* SPDX-License-Identifier: MIT */
/* In-band registration (XEP-0077), when <registration> is on: before
 * authentication the form and account creation; after it, password change
 * and account removal (every collection of the user, credentials last,
 * then a not-authorized stream error). Only iqs to this server (no 'to', or
 * the domain) are handled here; others (gateways) go to the sm. */
#include "c2s.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "alloc.h"
#include "arena.h"
#include "authreg.h"
#include "jid.h"
#include "store.h"
#include "xml.h"
#include "xstream.h"

enum reg_kind {
    REG_CREATE,
    REG_PASSWORD,
    REG_REMOVE,
};

struct reg_op {
    struct client_op base;
    struct c2s *c2s;
    enum reg_kind kind;
    char *id, *from, *bare;
    size_t next_coll; /* REG_REMOVE: the next of authreg_user_collections */
};

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void op_free(struct reg_op *op)
{
    free(op->id);
    free(op->from);
    free(op->bare);
    free(op);
}

static void on_done(const struct store_res *res, void *arg);

static void remove_next(struct reg_op *op)
{
    const char *coll = authreg_user_collections[op->next_coll++];
    store_delete(op->c2s->auth.st, coll, op->bare, NULL, on_done, op);
}

static void answer(struct client *c, struct reg_op *op, enum store_status st)
{
    enum xmpp_cond cond = XMPP_COND_NONE;
    if (st == STORE_ERR_CONFLICT)
        cond = XMPP_COND_CONFLICT;
    else if (st != STORE_OK)
        cond = XMPP_COND_INTERNAL_SERVER_ERROR;
    client_iq_reply(c, op->id, op->from, NULL, cond);
    if (cond == XMPP_COND_NONE && op->kind == REG_REMOVE)
        client_stream_error(c, XMPP_COND_STREAM_NOT_AUTHORIZED, "the account was removed");
}

static void on_done(const struct store_res *res, void *arg)
{
    struct reg_op *op = arg;
    struct client *c = op->base.client;
    const char *what = op->kind == REG_CREATE ? "registration" : "account change";
    if (res->status != STORE_OK && res->status != STORE_ERR_CONFLICT)
        log_warn(c ? &c->lc : &op->c2s->lc, "%s of %s failed: %s", what, op->bare, res->err.text);
    /* Removal goes on without the client: the user asked for it. */
    if (op->kind == REG_REMOVE && res->status == STORE_OK &&
        authreg_user_collections[op->next_coll] != NULL) {
        remove_next(op);
        return;
    }
    if (res->status == STORE_OK)
        log_info(c ? &c->lc : &op->c2s->lc, "%s %s",
                 op->kind == REG_CREATE     ? "registered"
                 : op->kind == REG_PASSWORD ? "password changed for"
                                            : "removed account",
                 op->bare);
    if (c != NULL) {
        c->op = NULL;
        answer(c, op, res->status);
    }
    op_free(op);
}

static struct reg_op *op_new(struct client *c, const struct xml_node *iq, enum reg_kind kind,
                             const char *bare)
{
    struct reg_op *op = xcalloc(1, sizeof(*op));
    op->base.client = c;
    op->c2s = c->c2s;
    op->kind = kind;
    op->id = xstrdup(xml_attr_get(iq, "id") ? xml_attr_get(iq, "id") : "");
    op->from = xml_attr_get(iq, "to") ? xstrdup(xml_attr_get(iq, "to")) : NULL;
    op->bare = xstrdup(bare);
    c->op = &op->base;
    return op;
}

/* The normalised localpart for username, or NULL (err: jid-malformed). */
static const char *username(struct client *c, struct arena *a, const char *user)
{
    struct jid j;
    if (strchr(user, '@') != NULL || strchr(user, '/') != NULL)
        return NULL;
    const char *s = arena_printf(a, "%s@%s", user, c->domain);
    if (jid_parse_str(a, s, &j, NULL) < 0 || j.local == NULL)
        return NULL;
    return j.local;
}

/* Create (before auth) or change the password (after): a set with
 * <username/> and <password/>. */
static void set_password(struct client *c, const struct xml_node *iq, const struct xml_node *q)
{
    struct arena *a = xstream_arena(c->xs);
    const char *user = xml_child_text(a, q, C2S_NS_REGISTER, "username");
    const char *pw = xml_child_text(a, q, C2S_NS_REGISTER, "password");
    if (user == NULL || pw == NULL || user[0] == '\0' || pw[0] == '\0') {
        client_iq_error(c, iq, XMPP_COND_NOT_ACCEPTABLE);
        return;
    }
    const char *local = username(c, a, user);
    if (local == NULL) {
        client_iq_error(c, iq, XMPP_COND_JID_MALFORMED);
        return;
    }
    if (c->authed && strcmp(local, c->local) != 0) {
        client_iq_error(c, iq, XMPP_COND_NOT_AUTHORIZED);
        return;
    }
    struct err err = {0};
    struct store_rec *rec =
        authreg_rec_new(a, pw, strlen(pw), (unsigned)c->c2s->cfg->scram_iterations, now_us(), &err);
    if (rec == NULL) {
        log_info(&c->lc, "registration: password refused: %s", err.text);
        client_iq_error(c, iq, XMPP_COND_NOT_ACCEPTABLE);
        return;
    }
    const char *bare = arena_printf(a, "%s@%s", local, c->domain);
    struct reg_op *op = op_new(c, iq, c->authed ? REG_PASSWORD : REG_CREATE, bare);
    if (c->authed)
        store_put(c->c2s->auth.st, AUTHREG_COLL, bare, rec, on_done, op);
    else
        store_insert(c->c2s->auth.st, AUTHREG_COLL, bare, rec, on_done, op);
}

static void get_form(struct client *c, const struct xml_node *iq)
{
    struct arena *a = xstream_arena(c->xs);
    struct xml_node *q = xml_elem_new(a, C2S_NS_REGISTER, "query");
    if (c->authed) {
        xml_elem_add(a, q, NULL, "registered");
        struct xml_node *u = xml_elem_add(a, q, NULL, "username");
        xml_text_add(a, u, c->local, strlen(c->local));
    } else {
        static const char text[] = "Choose a username and password for this server.";
        xml_text_add(a, xml_elem_add(a, q, NULL, "instructions"), text, sizeof(text) - 1);
        xml_elem_add(a, q, NULL, "username");
    }
    xml_elem_add(a, q, NULL, "password");
    client_iq_result(c, iq, q);
}

/* Only iqs to the server itself are ours. */
static bool to_server(const struct client *c, const struct xml_node *iq)
{
    const char *to = xml_attr_get(iq, "to");
    return to == NULL || (c->domain != NULL && strcmp(to, c->domain) == 0);
}

bool register_on_iq(struct client *c, const struct xml_node *iq)
{
    const struct xml_node *q = xml_child(iq, C2S_NS_REGISTER, "query");
    const char *type = xml_attr_get(iq, "type");
    if (q == NULL || !to_server(c, iq) || (c->authed && !c->c2s->cfg->registration))
        return false;
    if (!c->c2s->cfg->registration)
        client_iq_error(c, iq, XMPP_COND_SERVICE_UNAVAILABLE);
    else if (!c->authed && !features_password_ok(c))
        client_iq_error(c, iq, XMPP_COND_POLICY_VIOLATION);
    else if (type != NULL && strcmp(type, "get") == 0)
        get_form(c, iq);
    else if (type == NULL || strcmp(type, "set") != 0)
        client_iq_error(c, iq, XMPP_COND_BAD_REQUEST);
    else if (c->op != NULL)
        client_iq_error(c, iq, XMPP_COND_RESOURCE_CONSTRAINT);
    else if (xml_child(q, C2S_NS_REGISTER, "remove") == NULL)
        set_password(c, iq, q);
    else if (!c->authed)
        client_iq_error(c, iq, XMPP_COND_NOT_AUTHORIZED);
    else
        remove_next(op_new(c, iq, REG_REMOVE,
                           arena_printf(xstream_arena(c->xs), "%s@%s", c->local, c->domain)));
    return true;
}
