/* SPDX-License-Identifier: MIT */
/* Maps the common configuration's storage keys onto struct store_cfg. */
#include "store_cfg.h"

#include "arena.h"

void store_cfg_from_common(const struct common_cfg *c, struct arena *a, struct store_cfg *out)
{
    *out = (struct store_cfg){
        .driver = c->storage_driver == 1 ? STORE_DRIVER_PGSQL : STORE_DRIVER_SQLITE,
        .sqlite_path = c->sqlite_path,
        .pg_conninfo = c->pg_conninfo,
        .pg_pool = c->pg_pool,
        .pg_queue_timeout_ms = c->pg_queue_timeout_ms,
        .max_value = c->store_max_value,
    };
    if (out->sqlite_path == NULL)
        out->sqlite_path = arena_printf(a, "%s/parley.db", c->data_dir ? c->data_dir : ".");
}
