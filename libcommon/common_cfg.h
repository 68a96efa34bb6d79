/* SPDX-License-Identifier: MIT */
/* The common part of parley.xml that every daemon reads: hosted domains,
 * logging, where the router is, and the component names with their secrets
 * and the names each may bind (the router's ACL). */
#ifndef PL_COMMON_CFG_H
#define PL_COMMON_CFG_H

#include <stddef.h>

#include "attr.h"
#include "conf.h"

struct err;

/* One <component name='' secret=''><bind>name</bind>...</component>. */
struct comp_cfg {
    const char *name;
    const char *secret;
    const char **binds; /* names beyond its own it may bind; "*" = default route */
    size_t nbinds;
};

struct common_cfg {
    const char **domains;
    size_t ndomains;
    int log_level; /* enum log_level */
    int log_sink;  /* enum log_sink */
    const char *log_file;
    const char *router_address;
    long router_port;
    struct comp_cfg *components;
    size_t ncomponents;
    const char *data_dir;
    int storage_driver; /* enum store_driver */
    const char *sqlite_path;
    const char *pg_conninfo;
    long pg_pool;
    long pg_queue_timeout_ms;
    size_t store_max_value;
};

extern const struct conf_table common_cfg_table;
/* Every daemon section name, NULL-terminated: a daemon ignores the others'. */
extern const char *const common_cfg_sections[];

/* Cross-key checks: unique component names, non-empty secrets, a log file
 * when logging to a file. Returns 0 or -1 with err. */
int common_cfg_validate(const struct common_cfg *c, struct err *err) PL_WARN_UNUSED;
/* The component named name, or NULL. */
const struct comp_cfg *common_cfg_component(const struct common_cfg *c, const char *name);

#endif
