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
    CONF_DURATION("sm.session-grace", struct sm_cfg, session_grace_ms, 0, 3600000, "60s",
                  "how long sessions of a vanished c2s are kept for its return"),
};

const struct conf_table sm_cfg_table = CONF_TABLE(struct sm_cfg, keys);
