/* SPDX-License-Identifier: MIT */
/* Configuration: one XML file loaded through a typed table into a typed
 * struct. Every error names the file, the line and the key, e.g.
 *   parley.xml:42: <router><port>: "52x2" is not an integer in 1..65535 */
#ifndef PL_CONF_H
#define PL_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "attr.h"

struct arena;
struct buf;
struct err;

enum conf_type {
    CONF_T_INT,      /* long; bounded by min..max */
    CONF_T_STR,      /* const char * */
    CONF_T_PATH,     /* const char *, relative paths resolved against the file's folder */
    CONF_T_BOOL,     /* bool: true/false/yes/no/1/0, or an empty element meaning true */
    CONF_T_ENUM,     /* int: index into the NULL-terminated names list */
    CONF_T_SIZE,     /* size_t: bytes, with optional k/K, m/M, g/G (×1024) suffix */
    CONF_T_DURATION, /* long milliseconds: a number with ms, s, m or h (default s) */
    CONF_T_LIST,     /* a repeated element of text: const char **, count in a size_t */
    CONF_T_GROUP,    /* a repeated element with its own table: array of structs */
};

struct conf_table;

/* One key. path is relative to the table's root element: "port",
 * "router.port" (element router, child port) or "component@name" (attribute
 * name of element component). For CONF_T_LIST and CONF_T_GROUP, offset is
 * the array pointer's and count_offset the size_t count's; a group's
 * elements are sub.size bytes each and are filled from sub. */
struct conf_key {
    const char *path;
    enum conf_type type;
    size_t offset;
    size_t count_offset;
    long min, max;           /* CONF_T_INT, CONF_T_SIZE, CONF_T_DURATION; max 0 = none */
    const char *def;         /* default as text, parsed like file input; NULL = none */
    bool required;           /* an error if absent (and no default) */
    const char *const *enums; /* CONF_T_ENUM names */
    const struct conf_table *sub; /* CONF_T_GROUP */
    const char *help;        /* one line, printed by -t and parleyctl init */
};

struct conf_table {
    const struct conf_key *keys;
    size_t nkeys;
    size_t size; /* sizeof the struct the table fills */
};

#define CONF_TABLE(type, keys) {keys, sizeof(keys) / sizeof((keys)[0]), sizeof(type)}

#define CONF_INT(p, type, field, lo, hi, d, h)                                                     \
    {.path = p, .type = CONF_T_INT, .offset = offsetof(type, field), .min = lo, .max = hi,         \
     .def = d, .help = h}
#define CONF_STR(p, type, field, d, req, h)                                                        \
    {.path = p, .type = CONF_T_STR, .offset = offsetof(type, field), .def = d, .required = req,    \
     .help = h}
#define CONF_PATH(p, type, field, d, req, h)                                                       \
    {.path = p, .type = CONF_T_PATH, .offset = offsetof(type, field), .def = d, .required = req,   \
     .help = h}
#define CONF_BOOL(p, type, field, d, h)                                                            \
    {.path = p, .type = CONF_T_BOOL, .offset = offsetof(type, field), .def = d, .help = h}
#define CONF_ENUM(p, type, field, names, d, h)                                                     \
    {.path = p, .type = CONF_T_ENUM, .offset = offsetof(type, field), .enums = names, .def = d,    \
     .help = h}
#define CONF_SIZE(p, type, field, lo, hi, d, h)                                                    \
    {.path = p, .type = CONF_T_SIZE, .offset = offsetof(type, field), .min = lo, .max = hi,        \
     .def = d, .help = h}
#define CONF_DURATION(p, type, field, lo, hi, d, h)                                                \
    {.path = p, .type = CONF_T_DURATION, .offset = offsetof(type, field), .min = lo, .max = hi,    \
     .def = d, .help = h}
#define CONF_LIST(p, type, field, countfield, req, h)                                              \
    {.path = p, .type = CONF_T_LIST, .offset = offsetof(type, field),                              \
     .count_offset = offsetof(type, countfield), .required = req, .help = h}
#define CONF_GROUP(p, type, field, countfield, subtable, req, h)                                   \
    {.path = p, .type = CONF_T_GROUP, .offset = offsetof(type, field),                             \
     .count_offset = offsetof(type, countfield), .sub = subtable, .required = req, .help = h}

/* Loads the file at path. The root element must be <parley>. Keys under the
 * root are matched against the tables in order (a daemon passes the common
 * table and its own); a top-level element named in ignore (NULL-terminated;
 * other daemons' sections) is skipped whole. Each table fills its struct in
 * outs[i] (zeroed first, then defaults, then the file). Strings and arrays
 * are allocated in a. Unknown elements or attributes, bad values, repeated
 * single keys and missing required keys are errors: returns -1 with
 * err->text "file:line: <a><b>: reason" (line 0 when the key is missing).
 * Returns 0 on success. */
int conf_load(const char *path, const struct conf_table *const *tables, void *const *outs,
              size_t ntables, const char *const *ignore, struct arena *a,
              struct err *err) PL_WARN_UNUSED;
/* Same from a string in memory; name is used in messages and to resolve
 * relative paths (its folder). */
int conf_load_mem(const char *name, const char *data, size_t len,
                  const struct conf_table *const *tables, void *const *outs, size_t ntables,
                  const char *const *ignore, struct arena *a, struct err *err) PL_WARN_UNUSED;
/* Appends the effective values of out under table to b as XML, one key per
 * line with its help as a comment (what -t prints). */
void conf_dump(struct buf *b, const struct conf_table *table, const void *out);

#endif
