/* SPDX-License-Identifier: MIT */
/* parleyctl: the context its commands share. */
#ifndef PL_CTL_H
#define PL_CTL_H

#include <stdbool.h>

#include "common_cfg.h"
#include "store.h"

struct arena;
struct event_base;

/* Exit codes (sysexits.h values). */
enum ctl_exit {
    CTL_OK = 0,
    CTL_FAIL = 1, /* the command could not do what was asked */
    CTL_USAGE = 64,
    CTL_DATAERR = 65,     /* bad input: a JID, a password */
    CTL_UNAVAILABLE = 69, /* the database cannot be reached */
    CTL_CONFIG = 78,
};

struct ctl {
    const char *config_path;
    const struct common_cfg *common;
    struct arena *a;
    struct event_base *base;
    struct store *st;
    unsigned iterations;
};

/* Opens the store of the configuration (create/migrate as store_open).
 * Returns an exit code; CTL_OK when ctl->st is open. */
int ctl_store_open(struct ctl *ctl, bool create, bool migrate);
/* Runs the event loop until *done is true. */
void ctl_wait(struct ctl *ctl, const bool *done);

/* parleyctl init DIR --domain D [...]: writes a new deployment into DIR.
 * argv[0] is "init"; runs without a configuration (ctl->common is NULL). */
int ctl_init(struct ctl *ctl, int argc, char **argv);
int ctl_user(struct ctl *ctl, int argc, char **argv);
int ctl_db(struct ctl *ctl, int argc, char **argv);

#endif
