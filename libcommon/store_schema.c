/* SPDX-License-Identifier: MIT */
/* The collections of the store: every table, its typed columns and keys.
 * The SQL in store/sql/<driver>/ creates exactly these; the shared storage
 * test writes and reads every collection on both drivers. */
#include "store_private.h"

#include <string.h>

#define COLS(...)                                                                                  \
    (const struct store_col[])                                                                     \
    {                                                                                              \
        __VA_ARGS__                                                                                \
    }
#define NCOLS(...) (sizeof((const struct store_col[]){__VA_ARGS__}) / sizeof(struct store_col))
#define KEYED(api, tbl, ord, ...)                                                                  \
    {                                                                                              \
        .name = api, .table = tbl, .kind = STORE_KIND_KEYED, .cols = COLS(__VA_ARGS__),            \
        .ncols = NCOLS(__VA_ARGS__), .order = ord                                                  \
    }

#define S(n)                                                                                       \
    {                                                                                              \
        n, STORE_T_STR, false                                                                      \
    }
#define SK(n)                                                                                      \
    {                                                                                              \
        n, STORE_T_STR, true                                                                       \
    }
#define I(n)                                                                                       \
    {                                                                                              \
        n, STORE_T_INT, false                                                                      \
    }
#define IK(n)                                                                                      \
    {                                                                                              \
        n, STORE_T_INT, true                                                                       \
    }
#define B(n)                                                                                       \
    {                                                                                              \
        n, STORE_T_BOOL, false                                                                     \
    }
#define T(n)                                                                                       \
    {                                                                                              \
        n, STORE_T_TIME, false                                                                     \
    }
#define X(n)                                                                                       \
    {                                                                                              \
        n, STORE_T_XML, false                                                                      \
    }

/* c2s: credentials (RFC 5802/7677 salted keys; never a password). */
static const struct store_coll authreg =
    KEYED("authreg", "authreg", "\"owner\"", S("scram1_salt"), I("scram1_iter"), S("scram1_stored"),
          S("scram1_server"), S("scram256_salt"), I("scram256_iter"), S("scram256_stored"),
          S("scram256_server"), T("created"));

static const struct store_coll active = KEYED("active", "active", "\"owner\"", T("time"));
static const struct store_coll logout =
    KEYED("logout", "logout", "\"owner\"", T("time"), S("status"));

/* RFC 6121 roster: subscription state as flags, pending inbound request
 * kept as the stanza that carried it. */
static const struct store_coll roster_items =
    KEYED("roster-items", "roster_items", "\"jid\"", SK("jid"), S("name"), B("sub_to"),
          B("sub_from"), B("ask_out"), B("ask_in"), B("approved"), X("ask_in_xml"), B("in_roster"));
static const struct store_coll roster_groups =
    KEYED("roster-groups", "roster_groups", "\"jid\", \"grp\"", SK("jid"), SK("grp"));

static const struct store_col queue_cols[] = {T("ts"), X("xml"), S("origin")};
static const struct store_coll queue = {.name = "queue",
                                        .table = "queue",
                                        .kind = STORE_KIND_LOG,
                                        .cols = queue_cols,
                                        .ncols = sizeof(queue_cols) / sizeof(queue_cols[0]),
                                        .order = "\"seq\"",
                                        .time_col = "ts"};

static const struct store_coll vcard =
    KEYED("vcard", "vcard", "\"owner\"", X("xml"), S("photo_hash"));
static const struct store_coll private_ = KEYED("private", "private", "\"ns\"", SK("ns"), X("xml"));
static const struct store_coll privacy_items =
    KEYED("privacy-items", "privacy_items", "\"list\", \"ord\"", SK("list"), IK("ord"), S("type"),
          S("value"), B("deny"), I("block"));
static const struct store_coll privacy_default =
    KEYED("privacy-default", "privacy_default", "\"owner\"", S("list"));
static const struct store_coll disco_items =
    KEYED("disco-items", "disco_items", "\"jid\", \"node\"", SK("jid"), SK("node"), S("name"));
static const struct store_coll motd_message =
    KEYED("motd-message", "motd_message", "\"owner\"", X("xml"));
static const struct store_coll motd_times =
    KEYED("motd-times", "motd_times", "\"owner\"", T("time"));
static const struct store_coll vacation = KEYED("vacation-settings", "vacation_settings",
                                                "\"owner\"", T("start"), T("end"), S("message"));

/* XEP-0313 archive: id is the stanza-id (XEP-0359), unique per owner. */
static const struct store_col archive_cols[] = {S("id"), T("ts"), S("with_jid"), X("stanza")};
static const struct store_coll archive = {.name = "archive",
                                          .table = "archive",
                                          .kind = STORE_KIND_LOG,
                                          .cols = archive_cols,
                                          .ncols = sizeof(archive_cols) / sizeof(archive_cols[0]),
                                          .order = "\"seq\"",
                                          .time_col = "ts",
                                          .id_col = "id"};

static const struct store_coll pep_nodes =
    KEYED("pep-nodes", "pep_nodes", "\"node\"", SK("node"), X("config"));
static const struct store_coll pep_items = KEYED("pep-items", "pep_items", "\"ts\"", SK("node"),
                                                 SK("item"), T("ts"), S("publisher"), X("payload"));
static const struct store_coll caps = KEYED("caps", "caps", "\"owner\"", X("xml"));
static const struct store_coll muc_rooms =
    KEYED("muc-rooms", "muc_rooms", "\"owner\"", X("config"), X("subject"));
static const struct store_coll muc_affiliations = KEYED(
    "muc-affiliations", "muc_affiliations", "\"jid\"", SK("jid"), S("affiliation"), S("nick"));
static const struct store_coll counters =
    KEYED("counters", "counters", "\"name\"", SK("name"), I("value"));

const struct store_coll *const store_schema_colls[] = {
    &authreg,    &active,           &logout,        &roster_items,    &roster_groups, &queue,
    &vcard,      &private_,         &privacy_items, &privacy_default, &disco_items,   &motd_message,
    &motd_times, &vacation,         &archive,       &pep_nodes,       &pep_items,     &caps,
    &muc_rooms,  &muc_affiliations, &counters,
};
const size_t store_schema_ncolls = sizeof(store_schema_colls) / sizeof(store_schema_colls[0]);

const struct store_coll *store_schema_coll(const char *name)
{
    for (size_t i = 0; i < store_schema_ncolls; i++) {
        if (strcmp(store_schema_colls[i]->name, name) == 0)
            return store_schema_colls[i];
    }
    return NULL;
}
