/* SPDX-License-Identifier: MIT */
/* The administrators of the sm: bare JIDs from <sm><admin>, compared in
 * their normalised form. */
#include "admins.h"

#include <string.h>

#include "arena.h"
#include "jid.h"
#include "sm.h"

bool sm_is_admin(const struct sm *sm, const char *bare)
{
    if (bare == NULL || sm->cfg == NULL)
        return false;
    bool found = false;
    struct arena *a = arena_new(512);
    for (size_t i = 0; i < sm->cfg->nadmins && !found; i++) {
        struct jid j;
        if (jid_parse_str(a, sm->cfg->admins[i], &j, NULL) < 0 || j.resource != NULL)
            continue;
        found = strcmp(jid_bare(a, &j), bare) == 0;
    }
    arena_free(&a);
    return found;
}
