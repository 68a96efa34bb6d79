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

/* A check of one value of a list key, beyond being text, made once the
 * whole file is loaded: out is the struct the key's table filled (every
 * value of every key in it, so a value may be checked against the others).
 * Returns true when value is acceptable, else false with the reason in why
 * (len bytes, NUL terminated), which the loader reports as
 * "file:line: <key>: "value": why" with the value's line. */
typedef bool conf_check_fn(const char *value, const void *out, char *why, size_t len);

/* One key. path is relative to the table's root element: "port",
 * "router.port" (element router, child port) or "component@name" (attribute
 * name of element component); "@name" is an attribute of the root itself
 * (<parley> for a top-level table, the group's element for a sub-table). For
 * CONF_T_LIST and CONF_T_GROUP, offset is the array pointer's and
 * count_offset the size_t count's; a group's elements are sub.size bytes
 * each and are filled from sub, whose paths are relative to the group's
 * element. Arrays are allocated in the arena passed to conf_load. A value is
 * the element's text trimmed of surrounding whitespace, or the attribute's
 * value; an element that is not a key may not hold text. */
struct conf_key {
    const char *path;
    enum conf_type type;
    size_t offset;
    size_t count_offset;
    long min, max;                /* CONF_T_INT, CONF_T_SIZE, CONF_T_DURATION; max 0 = none */
    const char *def;              /* default as text, parsed like file input; NULL = none */
    bool required;                /* an error if absent (and no default) */
    const char *const *enums;     /* CONF_T_ENUM names */
    const struct conf_table *sub; /* CONF_T_GROUP */
    const char *help;             /* one line, printed by -t and parleyctl init */
    bool secret;                  /* never printed: conf_dump writes (hidden) */
    conf_check_fn *check;         /* CONF_T_LIST: each value from the file; NULL = any */
};

struct conf_table {
    const struct conf_key *keys;
    size_t nkeys;
    size_t size; /* sizeof the struct the table fills */
};

#define CONF_TABLE(type, keys)                                                                     \
    {                                                                                              \
        keys, sizeof(keys) / sizeof((keys)[0]), sizeof(type)                                       \
    }

#define CONF_INT(p, T, field, lo, hi, d, h)                                                        \
    {                                                                                              \
        .path = p, .type = CONF_T_INT, .offset = offsetof(T, field), .min = lo, .max = hi,         \
        .def = d, .help = h                                                                        \
    }
#define CONF_STR(p, T, field, d, req, h)                                                           \
    {                                                                                              \
        .path = p, .type = CONF_T_STR, .offset = offsetof(T, field), .def = d, .required = req,    \
        .help = h                                                                                  \
    }
#define CONF_PATH(p, T, field, d, req, h)                                                          \
    {                                                                                              \
        .path = p, .type = CONF_T_PATH, .offset = offsetof(T, field), .def = d, .required = req,   \
        .help = h                                                                                  \
    }
#define CONF_BOOL(p, T, field, d, h)                                                               \
    {                                                                                              \
        .path = p, .type = CONF_T_BOOL, .offset = offsetof(T, field), .def = d, .help = h          \
    }
#define CONF_ENUM(p, T, field, names, d, h)                                                        \
    {                                                                                              \
        .path = p, .type = CONF_T_ENUM, .offset = offsetof(T, field), .enums = names, .def = d,    \
        .help = h                                                                                  \
    }
#define CONF_SIZE(p, T, field, lo, hi, d, h)                                                       \
    {                                                                                              \
        .path = p, .type = CONF_T_SIZE, .offset = offsetof(T, field), .min = lo, .max = hi,        \
        .def = d, .help = h                                                                        \
    }
#define CONF_DURATION(p, T, field, lo, hi, d, h)                                                   \
    {                                                                                              \
        .path = p, .type = CONF_T_DURATION, .offset = offsetof(T, field), .min = lo, .max = hi,    \
        .def = d, .help = h                                                                        \
    }
/* A string that conf_dump never shows (secrets, passwords). */
#define CONF_SECRET(p, T, field, req, h)                                                           \
    {                                                                                              \
        .path = p, .type = CONF_T_STR, .offset = offsetof(T, field), .required = req, .help = h,   \
        .secret = true                                                                             \
    }
#define CONF_LIST(p, T, field, countfield, req, h)                                                 \
    {                                                                                              \
        .path = p, .type = CONF_T_LIST, .offset = offsetof(T, field),                              \
        .count_offset = offsetof(T, countfield), .required = req, .help = h                        \
    }
/* A list whose every value from the file must pass check (conf_check_fn). */
#define CONF_LIST_CHECKED(p, T, field, countfield, fn, h)                                          \
    {                                                                                              \
        .path = p, .type = CONF_T_LIST, .offset = offsetof(T, field),                              \
        .count_offset = offsetof(T, countfield), .check = fn, .help = h                            \
    }
#define CONF_GROUP(p, T, field, countfield, subtable, req, h)                                      \
    {                                                                                              \
        .path = p, .type = CONF_T_GROUP, .offset = offsetof(T, field),                             \
        .count_offset = offsetof(T, countfield), .sub = subtable, .required = req, .help = h       \
    }

/* Loads the file at path. The root element must be <parley>. Keys under the
 * root are matched against the tables in order (a daemon passes the common
 * table and its own); a top-level element named in ignore (NULL-terminated;
 * other daemons' sections) is skipped whole. Each table fills its struct in
 * outs[i] (zeroed first, then defaults, then the file). Strings and arrays
 * are allocated in a. Unknown elements or attributes, bad values, repeated
 * single keys and missing required keys are errors: returns -1 with
 * err->text "file:line: <a><b>: reason" (line 0 when the key is missing).
 * Returns 0 on success.
 * Details: an element or attribute is known when some key of some table
 * (or, inside a group, of the group's table) has its path or a path below
 * it; a key that several tables declare fills each of them. Attributes are
 * written "<a @name>" in messages. A missing required key inside a group
 * names the group element's line; a required list or group needs at least
 * one occurrence. A bad default is reported like bad input with "default"
 * before the value and no line (it is a bug in the table: load "<parley/>"
 * in a test to catch it). A DOCTYPE (and so any entity declaration) is
 * refused; xmlns attributes are ignored. err->cond is
 * XMPP_COND_UNDEFINED_CONDITION; long names and values are shortened with
 * "..." so the text fits. On error the structs in outs are partly filled:
 * load into fresh structs and swap on success. CONF_T_PATH values are made
 * absolute against the real folder of path. */
int conf_load(const char *path, const struct conf_table *const *tables, void *const *outs,
              size_t ntables, const char *const *ignore, struct arena *a,
              struct err *err) PL_WARN_UNUSED;
/* Same from a string in memory; name is used in messages and to resolve
 * relative paths against its folder, textually (no file system access): a
 * name without '/' leaves relative paths as written. */
int conf_load_mem(const char *name, const char *data, size_t len,
                  const struct conf_table *const *tables, void *const *outs, size_t ntables,
                  const char *const *ignore, struct arena *a, struct err *err) PL_WARN_UNUSED;
/* Appends the effective values of out under table to b as XML, one key per
 * line with its help as a comment (what -t prints). The lines are the
 * content of <parley>, indented by two spaces, without the <parley> element
 * itself (the caller wraps the dumps of all its tables); attributes of
 * <parley> and unset strings are written as comments. Sizes and durations
 * use the largest exact suffix ("64K", "30s"), so the output loads again. */
void conf_dump(struct buf *b, const struct conf_table *table, const void *out);

#endif
