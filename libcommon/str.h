/* SPDX-License-Identifier: MIT */
/* A read-only slice of bytes, for reading parsed input without strlen. */
#ifndef PL_STR_H
#define PL_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct str {
    const char *p;
    size_t len;
};

static inline struct str str_from(const char *s)
{
    return (struct str){s, s ? strlen(s) : 0};
}

static inline bool str_eq(struct str a, struct str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool str_eq_cstr(struct str a, const char *s)
{
    return str_eq(a, str_from(s));
}

#endif
