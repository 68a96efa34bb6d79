/* SPDX-License-Identifier: MIT */
/* parley-sm: sessions, presence, roster, delivery and the IM features.
 * main() hands the skeleton its hooks. */
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "alloc.h"
#include "comp_client.h"
#include "daemon.h"
#include "hmap.h"
#include "sm.h"
#include "sm_link.h"
#include "store_cfg.h"
#include "arena.h"

static void on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sm_user_housekeeping(arg);
}

static int by_order(const void *x, const void *y)
{
    const struct sm_feature *a = *(const struct sm_feature *const *)x;
    const struct sm_feature *b = *(const struct sm_feature *const *)y;
    return a->order != b->order ? (a->order > b->order) - (a->order < b->order)
                                : strcmp(a->name, b->name);
}

/* Only the features <sm><features> leaves on are in sm->features, so a
 * disabled one's iqs, hooks and disco vars are simply not there. */
static int features_init(struct sm *sm, struct err *err)
{
    sm->features = xcalloc(sm_feature_count + 1, sizeof(*sm->features));
    sm->feature_state = xcalloc(sm_feature_count + 1, sizeof(*sm->feature_state));
    for (size_t i = 0; i < sm_feature_count; i++) {
        if (!sm_cfg_disables(sm->cfg, sm_feature_registry[i]))
            sm->features[sm->nfeatures++] = sm_feature_registry[i];
        else if (sm_feature_registry[i]->part_of == NULL)
            log_notice(&sm->lc, "feature %s is disabled (<sm><features>)",
                       sm_feature_registry[i]->name);
    }
    qsort(sm->features, sm->nfeatures, sizeof(*sm->features), by_order);
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i]->init != NULL && sm->features[i]->init(sm, err) < 0) {
            while (i-- > 0) { /* undo the ones already up */
                if (sm->features[i]->fini != NULL)
                    sm->features[i]->fini(sm);
            }
            return -1;
        }
    }
    return 0;
}

static void features_free(struct sm *sm)
{
    free(sm->features);
    free(sm->feature_state);
    sm->features = NULL;
    sm->feature_state = NULL;
}

static void *sm_init(struct daemon *d, const struct common_cfg *common, const void *cfgp,
                     struct err *err)
{
    const struct sm_cfg *cfg = cfgp;
    struct sm *sm = xcalloc(1, sizeof(*sm));
    sm->base = daemon_base(d);
    sm->common = common;
    sm->cfg = cfg;
    sm->name = xstrdup(daemon_name_override(d) ? daemon_name_override(d) : cfg->name);
    sm->users = hmap_new();
    sm->sessions = hmap_new();
    sm->started_us = sm_now_us();
    log_ctx_set(&sm->lc, "sm %s", sm->name);
    struct arena *a = arena_new(0);
    struct store_cfg scfg;
    store_cfg_from_common(common, a, &scfg);
    sm->st = store_open(sm->base, &scfg, true, false, err);
    arena_free(&a);
    if (sm->st == NULL)
        goto fail;
    if (features_init(sm, err) < 0)
        goto fail_features; /* it undid what it had started */
    if (sm_link_start(sm, err) < 0)
        goto fail_fini;
    sm->housekeeping = event_new(sm->base, -1, EV_PERSIST, on_housekeeping, sm);
    struct timeval sec = {1, 0};
    event_add(sm->housekeeping, &sec);
    return sm;

fail_fini:
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i]->fini != NULL)
            sm->features[i]->fini(sm);
    }
fail_features:
    features_free(sm);
fail:
    store_close(&sm->st);
    hmap_free(&sm->users);
    hmap_free(&sm->sessions);
    free((char *)sm->name);
    free(sm);
    return NULL;
}

static void sm_stop(void *ctx)
{
    struct sm *sm = ctx;
    event_del(sm->housekeeping);
    comp_client_free(&sm->link);
}

static bool sm_busy(void *ctx)
{
    const struct sm *sm = ctx;
    return sm->st != NULL && store_pending(sm->st) > 0;
}

static void sm_fini(void *ctx)
{
    struct sm *sm = ctx;
    /* The store first: its last callbacks still see every feature and user. */
    store_close(&sm->st);
    for (size_t i = 0; i < sm->nfeatures; i++) {
        if (sm->features[i]->fini != NULL)
            sm->features[i]->fini(sm);
    }
    sm_users_free_all(sm);
    features_free(sm);
    sm_graces_free(sm);
    sm_acks_free(sm);
    sm_pkt_arenas_free(sm);
    event_free(sm->housekeeping);
    hmap_free(&sm->users);
    hmap_free(&sm->sessions);
    log_info(&sm->lc, "handled %llu stanzas, delivered %llu, stored offline %llu",
             (unsigned long long)sm->stats.stanzas_in, (unsigned long long)sm->stats.delivered,
             (unsigned long long)sm->stats.stored_offline);
    free((char *)sm->name);
    free(sm);
}

static const struct daemon_hooks hooks = {
    .prog = "parley-sm",
    .section = "sm",
    .table = &sm_cfg_table,
    .init = sm_init,
    .stop = sm_stop,
    .busy = sm_busy,
    .fini = sm_fini,
};

int main(int argc, char **argv)
{
    return daemon_run(argc, argv, &hooks);
}
