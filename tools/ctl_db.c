/* SPDX-License-Identifier: MIT */
/* parleyctl db: create, migrate and inspect the schema. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static const char *where(const struct ctl *ctl)
{
    return ctl->common->storage_driver == STORE_DRIVER_PGSQL ? "pgsql" : "sqlite";
}

int ctl_db(struct ctl *ctl, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "parleyctl: db needs one of init, migrate, status\n");
        return CTL_USAGE;
    }
    if (strcmp(argv[0], "init") == 0) {
        int rc = ctl_store_open(ctl, true, false);
        if (rc == CTL_OK)
            printf("database (%s) at schema version %d\n", where(ctl), store_db_version(ctl->st));
        return rc;
    }
    if (strcmp(argv[0], "migrate") == 0) {
        int rc = ctl_store_open(ctl, false, true);
        if (rc == CTL_OK)
            printf("database (%s) at schema version %d\n", where(ctl), store_db_version(ctl->st));
        return rc;
    }
    if (strcmp(argv[0], "status") == 0) {
        /* Open without changing anything, to report what is there. */
        int rc = ctl_store_open(ctl, false, false);
        printf("driver: %s\nschema version of this build: %d\n", where(ctl),
               store_schema_version());
        if (rc == CTL_OK)
            printf("schema version of the database: %d (up to date)\n", store_db_version(ctl->st));
        return rc;
    }
    fprintf(stderr, "parleyctl: unknown db command '%s'\n", argv[0]);
    return CTL_USAGE;
}
