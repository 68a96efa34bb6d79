/* SPDX-License-Identifier: MIT */
/* The <sm> section of parley.xml. */
#include "sm.h"

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
    CONF_DURATION("sm.session-grace", struct sm_cfg, session_grace_ms, 0, 3600000, "60s",
                  "how long sessions of a vanished c2s are kept for its return"),
};

const struct conf_table sm_cfg_table = CONF_TABLE(struct sm_cfg, keys);
