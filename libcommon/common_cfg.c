/* SPDX-License-Identifier: MIT */
/* The table of the common configuration part. */
#include "common_cfg.h"

#include <string.h>

#include "err.h"
#include "log.h"

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug", NULL};
static const char *const sink_names[] = {"stderr", "syslog", "file", NULL};
static const char *const driver_names[] = {"sqlite", "pgsql", NULL};

static const struct conf_key comp_keys[] = {
    CONF_STR("@name", struct comp_cfg, name, NULL, true,
             "component name: its stream 'to' and its first bound name"),
    CONF_SECRET("@secret", struct comp_cfg, secret, true, "shared secret for the handshake"),
    CONF_LIST("bind", struct comp_cfg, binds, nbinds, false,
              "a further name this component may bind; * is the default route"),
};
static const struct conf_table comp_table = CONF_TABLE(struct comp_cfg, comp_keys);

static const struct conf_key common_keys[] = {
    CONF_LIST("domain", struct common_cfg, domains, ndomains, false, "a hosted XMPP domain"),
    CONF_ENUM("log.level", struct common_cfg, log_level, level_names, "info",
              "error, warn, notice, info or debug"),
    CONF_ENUM("log.sink", struct common_cfg, log_sink, sink_names, "stderr",
              "stderr, syslog or file"),
    CONF_PATH("log.file", struct common_cfg, log_file, NULL, false, "log file for sink file"),
    CONF_STR("router-link.address", struct common_cfg, router_address, "127.0.0.1", false,
             "address of parley-router, numeric"),
    CONF_INT("router-link.port", struct common_cfg, router_port, 1, 65535, "5347",
             "port of parley-router"),
    CONF_GROUP("component", struct common_cfg, components, ncomponents, &comp_table, false,
               "a component allowed to connect to the router"),
    CONF_PATH("data-dir", struct common_cfg, data_dir, ".", false,
              "where the SQLite database and other state live"),
    CONF_ENUM("storage.driver", struct common_cfg, storage_driver, driver_names, "sqlite",
              "sqlite (embedded) or pgsql"),
    CONF_PATH("storage.sqlite.path", struct common_cfg, sqlite_path, NULL, false,
              "SQLite database file; default <data-dir>/parley.db"),
    CONF_SECRET("storage.pgsql.conninfo", struct common_cfg, pg_conninfo, false,
                "libpq connection string, e.g. host=db.example.org dbname=parley sslmode=require"),
    CONF_INT("storage.pgsql.pool", struct common_cfg, pg_pool, 1, 64, "4",
             "PostgreSQL connections per daemon"),
    CONF_DURATION("storage.pgsql.queue-timeout", struct common_cfg, pg_queue_timeout_ms, 100,
                  600000, "5s", "how long operations wait for a lost connection to return"),
    CONF_SIZE("storage.max-value", struct common_cfg, store_max_value, 1024, 64L << 20, "1M",
              "largest single value (a vCard, an archived stanza) the store accepts"),
};

const struct conf_table common_cfg_table = CONF_TABLE(struct common_cfg, common_keys);

const char *const common_cfg_sections[] = {"router",   "c2s", "sm",      "s2s",
                                           "resolver", "muc", "parleyd", NULL};

int common_cfg_validate(const struct common_cfg *c, struct err *err)
{
    for (size_t i = 0; i < c->ncomponents; i++) {
        const struct comp_cfg *ci = &c->components[i];
        if (ci->secret[0] == '\0')
            return err_set(err, XMPP_COND_BAD_REQUEST, "<component name='%s'>: empty secret",
                           ci->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(c->components[j].name, ci->name) == 0)
                return err_set(err, XMPP_COND_BAD_REQUEST, "<component name='%s'>: defined twice",
                               ci->name);
        }
    }
    if (c->storage_driver == 1 && c->pg_conninfo == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST,
                       "<storage><driver>pgsql needs <storage><pgsql><conninfo>");
    if (c->log_sink == LOG_SINK_FILE && c->log_file == NULL)
        return err_set(err, XMPP_COND_BAD_REQUEST, "<log><sink>file needs <log><file>");
    return 0;
}

const struct comp_cfg *common_cfg_component(const struct common_cfg *c, const char *name)
{
    for (size_t i = 0; i < c->ncomponents; i++) {
        if (strcmp(c->components[i].name, name) == 0)
            return &c->components[i];
    }
    return NULL;
}
