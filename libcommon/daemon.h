/* SPDX-License-Identifier: MIT */
/* The daemon skeleton: command line, configuration, logging, signals,
 * readiness and orderly shutdown, the same for every Parley daemon. A
 * daemon's main() fills struct daemon_hooks and calls daemon_run. */
#ifndef PL_DAEMON_H
#define PL_DAEMON_H

#include <stdbool.h>

#include "attr.h"
#include "common_cfg.h"
#include "conf.h"

struct daemon;
struct err;
struct event_base;

struct daemon_hooks {
    const char *prog;               /* program name for logs and usage */
    const char *section;            /* its element in parley.xml, e.g. "router" */
    const struct conf_table *table; /* the section's keys, paths from <parley> */
    /* Cross-key checks of a freshly loaded configuration (may be NULL). */
    int (*validate)(const struct common_cfg *common, const void *cfg, struct err *err);
    /* Creates the daemon context: listeners, connections, timers. Returns
     * NULL with err on failure, after which the process exits non-zero. */
    void *(*init)(struct daemon *d, const struct common_cfg *common, const void *cfg,
                  struct err *err);
    /* SIGHUP: the new configuration, validated. Returns 0 once the daemon
     * uses it (the old one is then freed), or -1 with err to keep the old. */
    int (*reload)(void *ctx, const struct common_cfg *common, const void *cfg, struct err *err);
    /* SIGTERM/SIGINT: stop listening, close connections and timers. */
    void (*stop)(void *ctx);
    /* While stopping: true as long as connections are still flushing; the
     * loop ends when it turns false (or after a grace period). May be NULL. */
    bool (*busy)(void *ctx);
    /* Frees the context after the loop has ended. */
    void (*fini)(void *ctx);
};

/* Runs the daemon; returns the process exit code. Options:
 *   -c FILE  configuration (default /etc/parley/parley.xml)
 *   -n NAME  component name, overriding the section's <name>
 *   -t       check the configuration, print the effective values, exit
 *   -f       stay in the foreground (default: detach, after listeners are bound)
 *   -h       usage */
int daemon_run(int argc, char **argv, const struct daemon_hooks *hooks);

struct event_base *daemon_base(struct daemon *d);
/* The -n name, or NULL when none was given. */
const char *daemon_name_override(struct daemon *d);

#endif
