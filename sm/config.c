/* SPDX-License-Identifier: MIT */
/* The <sm> section of parley.xml, and which features it switches off. */
#include "sm.h"

#include <stdio.h>
#include <string.h>

/* Parts of the sm that are not registry features but that an operator may
 * think of as such: always on, like the core features. */
static const char *const core_parts[] = {"offline", "session", "delivery", NULL};

static const struct sm_feature *registry_find(const char *name)
{
    for (size_t i = 0; i < sm_feature_count; i++) {
        if (strcmp(sm_feature_registry[i]->name, name) == 0)
            return sm_feature_registry[i];
    }
    return NULL;
}

/* The names <features><disable> takes, for the error about another one. */
static void switchable_names(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sm_feature_count && used < len; i++) {
        const struct sm_feature *f = sm_feature_registry[i];
        if (f->core || f->part_of != NULL)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", f->name);
        used += n > 0 ? (size_t)n : 0;
    }
}

static bool named(const struct sm_cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->ndisabled; i++) {
        if (strcmp(cfg->disabled[i], name) == 0)
            return true;
    }
    return false;
}

bool sm_cfg_disables(const struct sm_cfg *cfg, const struct sm_feature *f)
{
    return named(cfg, f->part_of != NULL ? f->part_of : f->name);
}

/* A feature left on that needs value (sm_feature.needs), or NULL. */
static const struct sm_feature *needed_by(const struct sm_cfg *cfg, const char *value)
{
    for (size_t i = 0; i < sm_feature_count; i++) {
        const struct sm_feature *f = sm_feature_registry[i];
        for (size_t k = 0; f->needs != NULL && f->needs[k] != NULL; k++) {
            if (strcmp(f->needs[k], value) == 0 && !sm_cfg_disables(cfg, f))
                return f;
        }
    }
    return NULL;
}

/* One <features><disable> value, checked against the whole section. */
static bool check_disable(const char *value, const void *out, char *why, size_t len)
{
    const struct sm_feature *f = registry_find(value);
    for (size_t i = 0; f == NULL && core_parts[i] != NULL; i++) {
        if (strcmp(core_parts[i], value) == 0) {
            snprintf(why, len, "core (RFC 6120/6121), always on");
            return false;
        }
    }
    if (f == NULL) {
        char names[128];
        switchable_names(names, sizeof(names));
        snprintf(why, len, "unknown feature; one of: %s", names);
        return false;
    }
    if (f->core) {
        snprintf(why, len, "core (RFC 6120/6121), always on");
        return false;
    }
    if (f->part_of != NULL) {
        snprintf(why, len, "a part of %s: disable %s", f->part_of, f->part_of);
        return false;
    }
    const struct sm_feature *user = needed_by(out, value);
    if (user != NULL) {
        snprintf(why, len, "%s, which is on, needs it: disable %s too, or keep %s", user->name,
                 user->name, value);
        return false;
    }
    return true;
}

static const char *const conflict_names[] = {"replace", "refuse", "generate", NULL};

static const struct conf_key keys[] = {
    CONF_STR("sm.name", struct sm_cfg, name, "sm", false,
             "component name on the router (-n overrides)"),
    CONF_ENUM("sm.resource-conflict", struct sm_cfg, resource_conflict, conflict_names, "replace",
              "a login with a resource in use: replace the old session, refuse, or generate"),
    CONF_INT("sm.offline-quota", struct sm_cfg, offline_quota, 0, 1000000, "1000",
             "offline messages kept per user; 0 stores none"),
    CONF_LIST("sm.admin", struct sm_cfg, admins, nadmins, false,
              "a bare JID allowed the announcements and admin commands"),
    CONF_LIST("sm.contact.abuse", struct sm_cfg, contact_abuse, ncontact_abuse, false,
              "an address (URI: mailto:, xmpp:, https:) for reporting abuse (XEP-0157)"),
    CONF_LIST("sm.contact.admin", struct sm_cfg, contact_admin, ncontact_admin, false,
              "an address (URI) of the service administrators (XEP-0157)"),
    CONF_LIST("sm.contact.feedback", struct sm_cfg, contact_feedback, ncontact_feedback, false,
              "an address (URI) for feedback (XEP-0157)"),
    CONF_LIST("sm.contact.sales", struct sm_cfg, contact_sales, ncontact_sales, false,
              "an address (URI) for sales and business (XEP-0157)"),
    CONF_LIST("sm.contact.security", struct sm_cfg, contact_security, ncontact_security, false,
              "an address (URI) for reporting security issues (XEP-0157)"),
    CONF_LIST("sm.contact.status", struct sm_cfg, contact_status, ncontact_status, false,
              "an address (URI) where the service status is published (XEP-0157)"),
    CONF_LIST("sm.contact.support", struct sm_cfg, contact_support, ncontact_support, false,
              "an address (URI) for user support (XEP-0157)"),
    CONF_INT("sm.archive-days", struct sm_cfg, archive_days, 0, 36500, "0",
             "days an archived message (XEP-0313) is kept; 0 keeps it for ever"),
    CONF_LIST_CHECKED("sm.features.disable", struct sm_cfg, disabled, ndisabled, check_disable,
                      "a feature switched off (its registry name: vcard, mam, carbons...); "
                      "all are on by default"),
    CONF_DURATION("sm.session-grace", struct sm_cfg, session_grace_ms, 0, 3600000, "60s",
                  "how long sessions of a vanished c2s are kept for its return"),
};

const struct conf_table sm_cfg_table = CONF_TABLE(struct sm_cfg, keys);
