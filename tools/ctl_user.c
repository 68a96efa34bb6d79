/* SPDX-License-Identifier: MIT */
/* parleyctl user: accounts. A JID is checked and normalised (RFC 7622)
 * before it touches the store, and must be on a configured domain. */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "authreg.h"
#include "ctl.h"
#include "jid.h"

struct wait {
    bool done;
    enum store_status status;
    char text[256];
    int64_t value, affected;
    struct store_rec *row; /* first row, copied */
    struct arena *a;
    struct ctl *ctl;
    size_t nrows;
};

static void on_res(const struct store_res *res, void *arg)
{
    struct wait *w = arg;
    w->done = true;
    w->status = res->status;
    snprintf(w->text, sizeof(w->text), "%s", res->err.text);
    w->value = res->value;
    w->affected = res->affected;
    w->nrows = res->nrows;
    if (res->nrows > 0) {
        /* copy the fields we may read */
        const struct store_rec *r = res->rows[0];
        w->row = store_rec_new(w->a);
        for (size_t i = 0; i < r->n; i++) {
            const struct store_field *f = &r->f[i];
            if (f->null)
                continue;
            if (f->type == STORE_T_STR || f->type == STORE_T_XML)
                store_rec_str(w->a, w->row, f->name, f->s);
            else if (f->type == STORE_T_INT || f->type == STORE_T_TIME)
                store_rec_int(w->a, w->row, f->name, f->i);
        }
    }
}

static void on_list(const struct store_res *res, void *arg)
{
    struct wait *w = arg;
    w->done = true;
    w->status = res->status;
    snprintf(w->text, sizeof(w->text), "%s", res->err.text);
    for (size_t i = 0; res->status == STORE_OK && i < res->nrows; i++) {
        const char *o = store_rec_get_str(res->rows[i], "owner", "");
        const char *want = w->row ? store_rec_get_str(w->row, "domain", NULL) : NULL;
        const char *at = strchr(o, '@');
        if (want != NULL && (at == NULL || strcmp(at + 1, want) != 0))
            continue;
        printf("%s\n", o);
        w->nrows++;
    }
}

static int status_exit(const struct wait *w, const char *what)
{
    if (w->status == STORE_OK)
        return CTL_OK;
    fprintf(stderr, "parleyctl: %s: %s\n", what, w->text);
    return w->status == STORE_ERR_UNAVAILABLE ? CTL_UNAVAILABLE : CTL_FAIL;
}

/* Parses and checks the JID: a bare user JID on a hosted domain. */
static int user_jid(struct ctl *ctl, const char *s, const char **bare_r)
{
    struct jid j;
    struct err err = {0};
    if (jid_parse_str(ctl->a, s, &j, &err) < 0) {
        fprintf(stderr, "parleyctl: '%s' is not a valid JID: %s\n", s, err.text);
        return CTL_DATAERR;
    }
    if (j.local == NULL || j.resource != NULL) {
        fprintf(stderr, "parleyctl: '%s' is not a user JID (user@domain)\n", s);
        return CTL_DATAERR;
    }
    if (ctl->common->ndomains > 0) {
        bool hosted = false;
        for (size_t i = 0; i < ctl->common->ndomains; i++)
            hosted = hosted || strcmp(ctl->common->domains[i], j.domain) == 0;
        if (!hosted) {
            fprintf(stderr, "parleyctl: %s is not a domain of this server\n", j.domain);
            return CTL_DATAERR;
        }
    }
    *bare_r = jid_bare(ctl->a, &j);
    return CTL_OK;
}

/* The password from the command line, or the first line of stdin. */
static const char *password(struct ctl *ctl, int argc, char **argv, int idx)
{
    if (argc > idx)
        return argv[idx];
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "password: ");
    char line[1100];
    if (fgets(line, sizeof(line), stdin) == NULL)
        return NULL;
    line[strcspn(line, "\r\n")] = '\0';
    return arena_strdup(ctl->a, line);
}

static int64_t now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static bool exists(struct ctl *ctl, const char *jid, struct wait *w)
{
    *w = (struct wait){.a = ctl->a, .ctl = ctl};
    store_get(ctl->st, AUTHREG_COLL, jid, NULL, on_res, w);
    ctl_wait(ctl, &w->done);
    return w->status == STORE_OK && w->nrows > 0;
}

static int set_password(struct ctl *ctl, const char *jid, const char *pw, bool create)
{
    if (pw == NULL || pw[0] == '\0') {
        fprintf(stderr, "parleyctl: an empty password is not allowed\n");
        return CTL_DATAERR;
    }
    struct err err = {0};
    struct store_rec *r = authreg_rec_new(ctl->a, pw, strlen(pw), ctl->iterations, now_us(), &err);
    if (r == NULL) {
        fprintf(stderr, "parleyctl: password refused: %s\n", err.text);
        return CTL_DATAERR;
    }
    struct wait w = {.a = ctl->a};
    if (create)
        store_insert(ctl->st, AUTHREG_COLL, jid, r, on_res, &w);
    else
        store_put(ctl->st, AUTHREG_COLL, jid, r, on_res, &w);
    ctl_wait(ctl, &w.done);
    if (create && w.status == STORE_ERR_CONFLICT) {
        fprintf(stderr, "parleyctl: user %s already exists\n", jid);
        return CTL_FAIL;
    }
    return status_exit(&w, jid);
}

static int cmd_del(struct ctl *ctl, const char *jid)
{
    struct wait w;
    if (!exists(ctl, jid, &w)) {
        if (w.status != STORE_OK)
            return status_exit(&w, jid);
        fprintf(stderr, "parleyctl: no user %s\n", jid);
        return CTL_FAIL;
    }
    /* Everything the user owns, the credentials last: a failure half-way
     * leaves an account that can still be deleted again. */
    for (size_t i = 0; authreg_user_collections[i] != NULL; i++) {
        w = (struct wait){.a = ctl->a};
        store_delete(ctl->st, authreg_user_collections[i], jid, NULL, on_res, &w);
        ctl_wait(ctl, &w.done);
        if (w.status != STORE_OK)
            return status_exit(&w, jid);
    }
    return CTL_OK;
}

/* "label: time" in UTC, or "label: never" without a row. */
static void print_when(const char *label, const struct wait *w)
{
    if (w->nrows == 0) {
        printf("%s: never\n", label);
        return;
    }
    time_t t = (time_t)(store_rec_get_int(w->row, "time", 0) / 1000000);
    struct tm tm;
    char buf[32] = "?";
    if (gmtime_r(&t, &tm) != NULL)
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s: %s\n", label, buf);
}

/* What the sm recorded of the account: its first activation (the
 * "active" collection) and its last logout with the status it left. */
static int cmd_info(struct ctl *ctl, const char *jid)
{
    struct wait w = {.a = ctl->a};
    store_get(ctl->st, "active", jid, NULL, on_res, &w);
    ctl_wait(ctl, &w.done);
    if (w.status != STORE_OK)
        return status_exit(&w, jid);
    printf("jid: %s\n", jid);
    print_when("first-activation", &w);
    w = (struct wait){.a = ctl->a};
    store_get(ctl->st, "logout", jid, NULL, on_res, &w);
    ctl_wait(ctl, &w.done);
    if (w.status != STORE_OK)
        return status_exit(&w, jid);
    print_when("last-logout", &w);
    const char *status = w.nrows > 0 ? store_rec_get_str(w.row, "status", NULL) : NULL;
    if (status != NULL)
        printf("last-status: %s\n", status);
    return CTL_OK;
}

int ctl_user(struct ctl *ctl, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "parleyctl: user needs add, passwd, del, exists, check, list or info\n");
        return CTL_USAGE;
    }
    const char *cmd = argv[0];
    static const char *const known[] = {"add", "passwd", "del", "exists", "check", "list", "info"};
    bool is_known = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        is_known = is_known || strcmp(cmd, known[i]) == 0;
    if (!is_known) {
        fprintf(stderr, "parleyctl: unknown user command '%s'\n", cmd);
        return CTL_USAGE;
    }
    int rc = ctl_store_open(ctl, false, false);
    if (rc != CTL_OK)
        return rc;
    if (strcmp(cmd, "list") == 0) {
        struct wait w = {.a = ctl->a};
        if (argc > 1) {
            w.row = store_rec_new(ctl->a);
            store_rec_str(ctl->a, w.row, "domain", argv[1]);
        }
        store_owners(ctl->st, AUTHREG_COLL, on_list, &w);
        ctl_wait(ctl, &w.done);
        return status_exit(&w, "list");
    }
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "parleyctl: user %s needs a JID\n", cmd);
        return CTL_USAGE;
    }
    const char *jid;
    if ((rc = user_jid(ctl, argv[1], &jid)) != CTL_OK)
        return rc;
    struct wait w;
    if (strcmp(cmd, "add") == 0)
        return set_password(ctl, jid, password(ctl, argc, argv, 2), true);
    if (strcmp(cmd, "del") == 0)
        return cmd_del(ctl, jid);
    bool found = exists(ctl, jid, &w);
    if (w.status != STORE_OK)
        return status_exit(&w, jid);
    if (strcmp(cmd, "exists") == 0) {
        printf("%s\n", found ? "yes" : "no");
        return found ? CTL_OK : CTL_FAIL;
    }
    if (!found) {
        fprintf(stderr, "parleyctl: no user %s\n", jid);
        return CTL_FAIL;
    }
    if (strcmp(cmd, "passwd") == 0)
        return set_password(ctl, jid, password(ctl, argc, argv, 2), false);
    if (strcmp(cmd, "info") == 0)
        return cmd_info(ctl, jid);
    if (strcmp(cmd, "check") == 0) {
        const char *pw = password(ctl, argc, argv, 2);
        bool ok = pw != NULL && authreg_check_password(w.row, pw, strlen(pw));
        printf("%s\n", ok ? "password ok" : "wrong password");
        return ok ? CTL_OK : CTL_FAIL;
    }
    fprintf(stderr, "parleyctl: unknown user command '%s'\n", cmd);
    return CTL_USAGE;
}
